"""Config keys of dropblock-det: one `MODEL.DROPBLOCK` node (plus `INPUT.CUTOUT`).

Every default leaves the model identical to stock detectron2: nothing is inserted until a
`*.ENABLED` key turns a location on.
"""
import functools
import math
import warnings
from typing import Any, Callable, Dict, Iterable, List, Optional, Sequence, Tuple

from detectron2.config import CfgNode as CN
from torch import nn

from .layers import (
    GAMMA_MODES,
    IMPLS,
    REGULARIZER_TYPES,
    LinearKeepProbSchedule,
    build_regularizer,
    scaled_keep_prob,
    triton_unavailable_reason,
)
from .layers.base import is_integer


def add_dropblock_config(cfg: CN) -> None:
    """Add dropblock-det's keys, with their defaults, to a detectron2 config (in place).

    Keys (defaults in brackets):

    MODEL.DROPBLOCK
      TYPE ["DropBlock"]       regularizer inserted at every enabled location: "DropBlock"
                               (the paper), or for ablations "Dropout", "SpatialDropout"
                               (which ignore BLOCK_SIZE, and warn naming SHARED_MASK or
                               GAMMA set away from their defaults, or IMPL "triton").
      KEEP_PROB [0.9]          target keep probability, reached at the end of the ramp.
      BLOCK_SIZE [7]           side of the dropped square (odd or even; clipped to the map).
      SHARED_MASK [False]      one mask shared by all channels (timm's default) instead of
                               one per channel (the paper).
      GAMMA ["paper"]          seed rate: "paper" (Algorithm 1's formula, drops a little less
                               than 1 - KEEP_PROB because blocks overlap) or "calibrated"
                               (expected dropped fraction equals 1 - KEEP_PROB exactly).
      IMPL ["auto"]            "auto" (fused Triton kernels on a CUDA GPU of compute
                               capability >= 7.0, PyTorch elsewhere; if Triton cannot
                               build them for the GPU: one warning, then PyTorch),
                               "torch" (always the pure-PyTorch reference), "triton"
                               (always the kernels; Triton's errors are raised, and the
                               tools refuse a MODEL.DEVICE they cannot run on before
                               training: see check_impl_device).
      RESNET.ENABLED [False]   DropBlock inside ResNet blocks.
      RESNET.STAGES [["res4", "res5"]]   stages that get it (the paper's groups 3 and 4);
                               each must be built (MODEL.RESNETS.OUT_FEATURES decides;
                               a C4 R-CNN's res5 is its ROI head's: MODEL.ROI_HEADS.NAME
                               "DropBlockRes5ROIHeads" places it there).
      RESNET.POSITIONS [["conv1", "conv2", "conv3", "shortcut"]]   after which conv+norm of
                               a block, and on the shortcut (as the official code). Basic
                               blocks (R18/R34) have no conv3.
      RESNET.STAGE_DROP_SCALES [[]]   drop rate of each stage in STAGES relative to
                               1 - KEEP_PROB; empty = 1.0 for all. The official code uses
                               [0.25, 1.0] for res4, res5.
      FPN.ENABLED [False]      DropBlock inside the FPN.
      FPN.POSITIONS [["lateral", "output"]]   after lateral 1x1 convs, after output 3x3
                               convs, and/or "top_block" (after P6 and P7 of RetinaNet).
      HEAD.ENABLED [False]     DropBlock in the RetinaNet head.
      HEAD.TOWERS [["cls", "bbox"]]   which subnet towers; after every conv(+norm)+ReLU.
      SEM_SEG_HEAD.ENABLED [False]   DropBlock in the semantic-segmentation heads.
      SEM_SEG_HEAD.POSITIONS [["aspp", "project", "decoder"]]   DeepLabV3+: after each ASPP
                               branch, after the ASPP projection, after each decoder conv;
                               the FCN head uses "decoder" for its convs.
      DROP_PATH_RATE [0.0]     stochastic depth on every ResNet residual branch, the same
                               rate in every block (0 = off; < 1); ramped by the schedule.
      SCHEDULE.START_ITER [0]  iteration at which the ramp from keep_prob 1.0 starts.
      SCHEDULE.END_ITER [-1]   iteration at which the target is reached; -1 = SOLVER.MAX_ITER
                               (the paper ramps over the whole training). The ramp is
                               applied by `dropblock_det.engine.DropBlockScheduleHook`
                               (register it with the trainer); without the hook every
                               regularizer stays at its target keep_prob from iteration 0.

    INPUT.CUTOUT (image augmentation, for the paper's Cutout comparison)
      ENABLED [False], SIZE [64] side of the square in pixels of the resized image,
      NUM_HOLES [1], PROB [1.0] probability of applying it to an image.

    Impossible values are rejected by :func:`validate_dropblock_config`, which every
    dropblock-det builder calls when the model is built.

    It also adds the keys of detectron2's DeepLab project (`add_deeplab_config`: SOLVER.
    POLY_LR_*, MODEL.SEM_SEG_HEAD.ASPP_* / PROJECT_*, MODEL.RESNETS.RES5_MULTI_GRID,
    STEM_TYPE, ...), which the segmentation configs use; they change no other default.

    Idempotent, as `add_dropblock_deeplab_config` is: a config that has the keys already
    (a project's setup and a library both calling it) keeps its values.
    """
    if "DROPBLOCK" in cfg.MODEL and "CUTOUT" in cfg.INPUT:
        # A second call reset every MODEL.DROPBLOCK and INPUT.CUTOUT value merged since the first.
        return
    cfg.MODEL.DROPBLOCK = CN()
    db = cfg.MODEL.DROPBLOCK
    db.TYPE = "DropBlock"
    db.KEEP_PROB = 0.9
    db.BLOCK_SIZE = 7
    db.SHARED_MASK = False
    db.GAMMA = "paper"
    db.IMPL = "auto"

    db.RESNET = CN()
    db.RESNET.ENABLED = False
    db.RESNET.STAGES = ["res4", "res5"]
    db.RESNET.POSITIONS = ["conv1", "conv2", "conv3", "shortcut"]
    db.RESNET.STAGE_DROP_SCALES = []

    db.FPN = CN()
    db.FPN.ENABLED = False
    db.FPN.POSITIONS = ["lateral", "output"]

    db.HEAD = CN()
    db.HEAD.ENABLED = False
    db.HEAD.TOWERS = ["cls", "bbox"]

    db.SEM_SEG_HEAD = CN()
    db.SEM_SEG_HEAD.ENABLED = False
    db.SEM_SEG_HEAD.POSITIONS = ["aspp", "project", "decoder"]

    db.DROP_PATH_RATE = 0.0

    db.SCHEDULE = CN()
    db.SCHEDULE.START_ITER = 0
    db.SCHEDULE.END_ITER = -1

    cfg.INPUT.CUTOUT = CN()
    cfg.INPUT.CUTOUT.ENABLED = False
    cfg.INPUT.CUTOUT.SIZE = 64
    cfg.INPUT.CUTOUT.NUM_HOLES = 1
    cfg.INPUT.CUTOUT.PROB = 1.0

    # The keys of detectron2's DeepLab project (SOLVER.POLY_LR_*, MODEL.SEM_SEG_HEAD.ASPP_*,
    # MODEL.RESNETS.RES5_MULTI_GRID, ...): the segmentation configs need them, and with them
    # one call reads every config of the project. Imported here: modeling imports this module.
    from .modeling.deeplab import add_dropblock_deeplab_config

    add_dropblock_deeplab_config(cfg)


# Allowed names of the list-valued keys (TYPE, GAMMA and IMPL take the layers' names).
RESNET_STAGES = ("res2", "res3", "res4", "res5")
RESNET_POSITIONS = ("conv1", "conv2", "conv3", "shortcut")
FPN_POSITIONS = ("lateral", "output", "top_block")
HEAD_TOWERS = ("cls", "bbox")
SEM_SEG_HEAD_POSITIONS = ("aspp", "project", "decoder")


def _bad(key: str, value: Any, why: str) -> ValueError:
    return ValueError(f"{key}={value!r}: {why}")


def _check_number(key: str, value: Any) -> float:
    # bool is an int subclass: True for KEEP_PROB is a typo, not 1.0.
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise _bad(key, value, f"expected a number, got {type(value).__name__}")
    if not math.isfinite(value):
        raise _bad(key, value, "expected a finite number")
    return float(value)


def _check_int(key: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise _bad(key, value, f"expected an integer, got {type(value).__name__}")
    return value


def _check_bool(key: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise _bad(key, value, f"expected True or False, got {type(value).__name__}")
    return value


def _check_choice(key: str, value: Any, choices: Sequence[str]) -> str:
    if value not in choices:
        raise _bad(key, value, f"expected one of {list(choices)}")
    return value


def _check_names(key: str, value: Any, allowed: Sequence[str]) -> List[str]:
    if isinstance(value, str) or not isinstance(value, (list, tuple)):
        raise _bad(key, value, f"expected a list of names from {list(allowed)}")
    for name in value:
        if name not in allowed:
            raise _bad(key, value, f"unknown name {name!r}; expected names from {list(allowed)}")
    if len(set(value)) != len(value):
        raise _bad(key, value, "a name is listed twice")
    return list(value)


def check_feature_names(key: str, names: Sequence[str], outputs: Sequence[str], whose: str,
                        kind: str = "feature", note: str = "") -> List[str]:
    """`names` (the features a component reads, given by `key`) against `outputs`, the names
    `whose` (e.g. "the backbone's outputs") gives: ValueError naming the key for none, for
    one that is not there (detectron2 fails on it with a bare KeyError, at build or at the
    first forward), or for one listed twice (the FPN and ROI poolers assert on it naming no
    key; the RetinaNet and RPN heads ran that level twice, silently). `note` is added in
    parentheses. Returns the names as a list."""
    if isinstance(names, str):  # its letters are not names (a LazyConfig override `...=p3`)
        raise ValueError(f"{key}={names!r}: expected a list of names from {whose} {list(outputs)} "
                         f"(e.g. [{names!r}])")
    names = list(names)
    missing = [name for name in names if name not in outputs]
    if missing or not names:
        raise ValueError(
            f"{key}={names}: "
            + (f"{', '.join(map(repr, missing))} not among" if missing else f"no {kind}; expected names from")
            + f" {whose} {list(outputs)}" + (f" ({note})" if note else "")
        )
    repeated = [name for index, name in enumerate(names) if name in names[:index]]
    if repeated:
        raise ValueError(f"{key}={names}: {repeated[0]!r} is listed twice" + (f" ({note})" if note else ""))
    return names


def check_anchor_levels(cfg: CN, levels_key: str, levels: Sequence[str]) -> None:
    """MODEL.ANCHOR_GENERATOR.SIZES and ASPECT_RATIOS (and a rotated generator's ANGLES)
    against the levels the anchors are made for (`levels`, given by `levels_key`, e.g.
    MODEL.RPN.IN_FEATURES): one entry, used for every level, or one per level, as
    detectron2's anchor generators take them (they assert it, naming no key: "Got sizes of
    length 2 in anchor generator, but the number of input features is 5!"); no entry empty
    (no anchors: the model builds, and its head's empty conv fails at the first step); and
    as many anchors per position at every level, which detectron2's RetinaNet and RPN heads
    assert naming no key. ValueError naming the key; a generator of another name is not
    looked into."""
    anchors = cfg.MODEL.ANCHOR_GENERATOR
    if anchors.NAME not in ("DefaultAnchorGenerator", "RotatedAnchorGenerator"):
        return
    levels = list(levels)
    names = ("SIZES", "ASPECT_RATIOS") + (("ANGLES",) if anchors.NAME == "RotatedAnchorGenerator" else ())
    counts = [1] * len(levels)  # anchors per position at each level
    for name in names:
        value = anchors[name]
        if not value:
            raise _bad(f"MODEL.ANCHOR_GENERATOR.{name}", value, f"expected one list for every level of "
                       f"{levels_key}={levels}, or one per level")
        if isinstance(value[0], (list, tuple)) and len(value) not in (1, len(levels)):
            raise _bad(f"MODEL.ANCHOR_GENERATOR.{name}", value,
                       f"{len(value)} entries for the {len(levels)} levels of {levels_key}={levels}: give one "
                       "per level, or one for every level")
        entries = value if isinstance(value[0], (list, tuple)) else [value]
        if not all(isinstance(entry, (list, tuple)) and not any(isinstance(v, (list, tuple)) for v in entry)
                   for entry in entries):
            # detectron2 fails on these at the build with a bare TypeError ("'int' object is
            # not iterable", "unsupported operand type(s) for ** or pow()").
            raise _bad(f"MODEL.ANCHOR_GENERATOR.{name}", value, "lists mixed with numbers: give one list of numbers "
                       f"for every level of {levels_key}={levels}, or one list per level")
        for index, entry in enumerate(entries):
            if not entry:
                level = f"level {levels[index]!r}" if len(entries) > 1 else "any level"
                raise _bad(f"MODEL.ANCHOR_GENERATOR.{name}", value, f"an empty list: no anchors at {level} of "
                           f"{levels_key}={levels}")
        counts = [count * len(entries[index if len(entries) > 1 else 0]) for index, count in enumerate(counts)]
    if len(set(counts)) > 1:
        given = ", ".join(f"{name}={anchors[name]}" for name in names)
        raise ValueError(
            f"MODEL.ANCHOR_GENERATOR: {given} give {counts} anchors per position at the levels {levels_key}={levels}: "
            "detectron2's RetinaNet and RPN heads need the same number at every level"
        )


GN_GROUPS = 32  # detectron2's get_norm("GN", C) is GroupNorm(32, C)


def is_positive_int(value: Any) -> bool:
    """Whether value is an integer >= 1 (not a bool, which Python counts as an integer)."""
    return is_integer(value) and value >= 1


def check_channels(norm: Any, channels: Dict[str, Any]) -> None:
    """ValueError naming the first key (or argument) of `channels` (each mapped to a channel
    count or a list of them) with a count that is not an integer >= 1 (a conv of 0 outputs
    builds, and fails at the first forward with torch's error naming no key) or, with
    `norm` "GN", not a multiple of `GN_GROUPS` (GroupNorm cannot split it)."""
    for key, value in channels.items():
        counts = list(value) if isinstance(value, (list, tuple)) else [value]
        bad = [c for c in counts if not is_positive_int(c)]
        if bad:
            raise ValueError(f"{key}={value!r}: channel counts must be integers >= 1 ({bad[0]!r} is not)")
        if norm == "GN":
            bad = [c for c in counts if c % GN_GROUPS]
            if bad:
                raise ValueError(
                    f"{key}={value!r}: NORM 'GN' uses {GN_GROUPS} groups, so channel counts must be "
                    f"multiples of {GN_GROUPS} ({bad[0]} is not; e.g. {-(-bad[0] // GN_GROUPS) * GN_GROUPS} "
                    f"instead of {bad[0]})"
                )


def check_norm(key: str, norm: Any) -> None:
    """ValueError naming `key` (e.g. MODEL.RESNETS.NORM) for a norm name the installed
    detectron2's `get_norm` does not know: it raises a bare KeyError (e.g. 'gn'), which names
    none of the model's norm keys. "" (no norm) and callables are left to it."""
    if not isinstance(norm, str) or not norm:
        return
    from detectron2.layers import get_norm

    try:
        get_norm(norm, 32)
    except KeyError:
        raise ValueError(
            f"{key}={norm!r}: not a norm detectron2's get_norm knows (e.g. 'BN', 'SyncBN', 'FrozenBN', "
            "'GN'; '' for none)"
        ) from None


def check_placement(argument: str, names: Any, allowed: Sequence[str], dropblock: Optional[Callable],
                    owner: str) -> List[str]:
    """The plain-argument `names` of a component's regularized locations (`argument`, e.g.
    "dropblock_positions") as a list, checked: an iterable of names from `allowed` (a list,
    a tuple, LazyConfig's ListConfig; not a str, whose letters would be taken as names), and
    a `dropblock` factory when any is named. ValueError naming `owner` and `argument` else."""
    if isinstance(names, str) or not isinstance(names, Iterable):
        raise ValueError(f"{owner}: {argument}={names!r}: expected a list of names from {list(allowed)}")
    names = list(names)
    unknown = [name for name in names if name not in allowed]
    if unknown:
        raise ValueError(
            f"{owner}: {argument}={names}: unknown name {unknown[0]!r}; expected names from {list(allowed)}"
        )
    repeated = [name for index, name in enumerate(names) if name in names[:index]]
    if repeated:  # as the yacs keys: a stage named twice would take its last drop scale, silently
        raise ValueError(f"{owner}: {argument}={names}: {repeated[0]!r} is listed twice")
    if names and dropblock is None:
        raise ValueError(f"{owner}: {argument}={names} needs a `dropblock` factory")
    return names


def built_resnet_stages(cfg: CN) -> List[str]:
    """The ResNet stages the model built from `cfg` contains, where MODEL.DROPBLOCK.RESNET
    can place DropBlock.

    detectron2's `ResNet` drops every stage after the last one named in
    MODEL.RESNETS.OUT_FEATURES (e.g. OUT_FEATURES ["res4"] builds res2..res4 only); a C4
    R-CNN with MODEL.ROI_HEADS.NAME "DropBlockRes5ROIHeads" has res5 in its ROI head.
    """
    depth_index = {name: i for i, name in enumerate(RESNET_STAGES, start=1)}
    last = max([depth_index.get(f, 0) for f in cfg.MODEL.RESNETS.OUT_FEATURES], default=0)
    stages = list(RESNET_STAGES[:last])
    if _res5_in_dropblock_roi_head(cfg) and "res5" not in stages:
        stages.append("res5")
    return stages


def _res5_in_dropblock_roi_head(cfg: CN) -> bool:
    """Whether the model has a res5 in its ROI head: a GeneralizedRCNN (or a meta-architecture
    subclassing it, which builds MODEL.ROI_HEADS.NAME as it does) with DropBlockRes5ROIHeads
    (or a subclass) as its ROI heads. Looked up in the registries, where a comparison of the
    names refused a registered subclass's res5 as "not built"."""
    from detectron2.modeling import META_ARCH_REGISTRY, ROI_HEADS_REGISTRY, GeneralizedRCNN

    from .modeling.roi_heads import DropBlockRes5ROIHeads  # here: that module imports this one

    try:
        meta_arch = META_ARCH_REGISTRY.get(cfg.MODEL.META_ARCHITECTURE)
        roi_heads = ROI_HEADS_REGISTRY.get(cfg.MODEL.ROI_HEADS.NAME)
    except KeyError:  # not registered: check_registered_names refuses it, naming the key
        return False
    return (isinstance(meta_arch, type) and issubclass(meta_arch, GeneralizedRCNN)
            and isinstance(roi_heads, type) and issubclass(roi_heads, DropBlockRes5ROIHeads))


def flatten_config(node: Dict[str, Any], prefix: str = "") -> Dict[str, Any]:
    """{dotted key: value} of the values of a config (a yacs CfgNode, or the dict a JSON file
    recorded of one), groups of keys left out."""
    flat: Dict[str, Any] = {}
    for key, value in node.items():
        if isinstance(value, dict):  # a CfgNode is a dict
            flat.update(flatten_config(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


# What config_changes gives for a key one config lacks.
ABSENT = "<absent>"


def config_changes(old: Dict[str, Any], new: Dict[str, Any]) -> List[Tuple[str, Any, Any]]:
    """(dotted key, old value, new value) of each value that differs between two configs (as
    :func:`flatten_config` takes them), sorted by key; ABSENT for a key one of them lacks."""
    before, after = flatten_config(old), flatten_config(new)
    return [(key, before.get(key, ABSENT), after.get(key, ABSENT)) for key in sorted(before.keys() | after.keys())
            if before.get(key, ABSENT) != after.get(key, ABSENT)]


def dropblock_schedule_range(cfg: CN) -> Tuple[int, int]:
    """(start, end) iterations of the keep_prob ramp, with END_ITER -1 resolved to
    SOLVER.MAX_ITER (to START_ITER where that is later: only a config with no regularizer
    on passes validate_dropblock_config so, and its ramp is moot)."""
    schedule = cfg.MODEL.DROPBLOCK.SCHEDULE
    end = schedule.END_ITER
    if end == -1:
        end = max(schedule.START_ITER, cfg.SOLVER.MAX_ITER)
    return schedule.START_ITER, end


def resnet_stage_drop_scales(cfg: CN) -> Dict[str, float]:
    """Drop-rate scale of every stage in MODEL.DROPBLOCK.RESNET.STAGES (1.0 when
    STAGE_DROP_SCALES is empty)."""
    resnet = cfg.MODEL.DROPBLOCK.RESNET
    scales = list(resnet.STAGE_DROP_SCALES) or [1.0] * len(resnet.STAGES)
    return {stage: float(scale) for stage, scale in zip(resnet.STAGES, scales)}


def regularizer_factory(cfg: CN, drop_scale: float = 1.0) -> Callable[[], nn.Module]:
    """A function of no arguments that builds one regularizer as MODEL.DROPBLOCK says
    (TYPE, BLOCK_SIZE, SHARED_MASK, GAMMA, IMPL), with target keep probability
    `scaled_keep_prob(KEEP_PROB, drop_scale)`. Builders call it once per location, so
    every location gets its own module (and its own name in the module tree)."""
    db = cfg.MODEL.DROPBLOCK
    return functools.partial(
        build_regularizer,
        db.TYPE,
        scaled_keep_prob(db.KEEP_PROB, drop_scale),
        block_size=db.BLOCK_SIZE,
        shared_mask=db.SHARED_MASK,
        gamma_mode=db.GAMMA,
        impl=db.IMPL,
    )


def validate_dropblock_config(cfg: CN) -> None:
    """Reject impossible MODEL.DROPBLOCK (and INPUT.CUTOUT) values.

    Raises:
        KeyError: `cfg` has no MODEL.DROPBLOCK node (add_dropblock_config was not called).
        ValueError: naming the full key and its value, for a value of the wrong type, a
            probability out of range, BLOCK_SIZE < 1, an unknown TYPE/GAMMA/IMPL or
            position/tower/stage name, a stage the ResNet does not build (see
            :func:`built_resnet_stages`), STAGE_DROP_SCALES that do not match STAGES or
            drive a keep probability to <= 0, an enabled location with nothing listed,
            or a schedule that ends before it starts.
    """
    if "DROPBLOCK" not in cfg.MODEL:
        raise KeyError(
            "MODEL.DROPBLOCK is missing from the config: call "
            "dropblock_det.add_dropblock_config(cfg) before merging config files"
        )
    p = "MODEL.DROPBLOCK."
    db = cfg.MODEL.DROPBLOCK
    _check_choice(p + "TYPE", db.TYPE, REGULARIZER_TYPES)
    _check_choice(p + "GAMMA", db.GAMMA, GAMMA_MODES)
    _check_choice(p + "IMPL", db.IMPL, IMPLS)
    keep_prob = _check_number(p + "KEEP_PROB", db.KEEP_PROB)
    if not 0.0 < keep_prob <= 1.0:
        raise _bad(p + "KEEP_PROB", db.KEEP_PROB, "expected 0 < keep_prob <= 1")
    if _check_int(p + "BLOCK_SIZE", db.BLOCK_SIZE) < 1:
        raise _bad(p + "BLOCK_SIZE", db.BLOCK_SIZE, "expected an integer >= 1")
    _check_bool(p + "SHARED_MASK", db.SHARED_MASK)

    resnet_enabled = _check_bool(p + "RESNET.ENABLED", db.RESNET.ENABLED)
    stages = _check_names(p + "RESNET.STAGES", db.RESNET.STAGES, RESNET_STAGES)
    positions = _check_names(p + "RESNET.POSITIONS", db.RESNET.POSITIONS, RESNET_POSITIONS)
    scales = db.RESNET.STAGE_DROP_SCALES
    if isinstance(scales, str) or not isinstance(scales, (list, tuple)):
        raise _bad(p + "RESNET.STAGE_DROP_SCALES", scales, "expected a list of numbers")
    if resnet_enabled and not stages:  # before the scales, whose count it would be told to match
        raise _bad(p + "RESNET.STAGES", db.RESNET.STAGES, "RESNET.ENABLED but no stage")
    if scales and len(scales) != len(stages):
        raise _bad(
            p + "RESNET.STAGE_DROP_SCALES",
            scales,
            f"expected one scale per stage of {p}RESNET.STAGES={stages} (or an empty list)",
        )
    for scale in scales:
        if isinstance(scale, bool) or not isinstance(scale, (int, float)) or not math.isfinite(scale):
            # (inf would pass the product check below at KEEP_PROB 1: inf * 0 is NaN)
            raise _bad(p + "RESNET.STAGE_DROP_SCALES", scales, "expected a list of finite numbers")
        if scale < 0:
            raise _bad(p + "RESNET.STAGE_DROP_SCALES", scales, "scales must be >= 0")
        if 1.0 - scale * (1.0 - keep_prob) <= 0:
            raise _bad(
                p + "RESNET.STAGE_DROP_SCALES",
                scales,
                f"scale {scale} with {p}KEEP_PROB={keep_prob} gives a keep probability <= 0",
            )
    if resnet_enabled:
        if not positions:
            raise _bad(
                p + "RESNET.POSITIONS", db.RESNET.POSITIONS, "RESNET.ENABLED but no position"
            )
        built = built_resnet_stages(cfg)
        for stage in stages:
            if stage not in built:
                raise _bad(
                    p + "RESNET.STAGES",
                    db.RESNET.STAGES,
                    f"stage {stage!r} is not built: MODEL.RESNETS.OUT_FEATURES="
                    f"{list(cfg.MODEL.RESNETS.OUT_FEATURES)} builds only {built}"
                    + ("; with MODEL.ROI_HEADS.NAME='Res5ROIHeads' (C4) res5 is built by the ROI "
                       "head: MODEL.ROI_HEADS.NAME 'DropBlockRes5ROIHeads' puts DropBlock there, or "
                       f"list only backbone stages (e.g. {[s for s in stages if s in built] or ['res4']})"
                       if stage == "res5" and cfg.MODEL.META_ARCHITECTURE == "GeneralizedRCNN"
                       and cfg.MODEL.ROI_HEADS.NAME == "Res5ROIHeads" else ""),
                )

    fpn_enabled = _check_bool(p + "FPN.ENABLED", db.FPN.ENABLED)
    fpn_positions = _check_names(p + "FPN.POSITIONS", db.FPN.POSITIONS, FPN_POSITIONS)
    if fpn_enabled and not fpn_positions:
        raise _bad(p + "FPN.POSITIONS", db.FPN.POSITIONS, "FPN.ENABLED but no position")

    head_enabled = _check_bool(p + "HEAD.ENABLED", db.HEAD.ENABLED)
    towers = _check_names(p + "HEAD.TOWERS", db.HEAD.TOWERS, HEAD_TOWERS)
    if head_enabled and not towers:
        raise _bad(p + "HEAD.TOWERS", db.HEAD.TOWERS, "HEAD.ENABLED but no tower")

    seg_enabled = _check_bool(p + "SEM_SEG_HEAD.ENABLED", db.SEM_SEG_HEAD.ENABLED)
    seg_positions = _check_names(
        p + "SEM_SEG_HEAD.POSITIONS", db.SEM_SEG_HEAD.POSITIONS, SEM_SEG_HEAD_POSITIONS
    )
    if seg_enabled and not seg_positions:
        raise _bad(
            p + "SEM_SEG_HEAD.POSITIONS",
            db.SEM_SEG_HEAD.POSITIONS,
            "SEM_SEG_HEAD.ENABLED but no position",
        )

    drop_path_rate = _check_number(p + "DROP_PATH_RATE", db.DROP_PATH_RATE)
    if not 0.0 <= drop_path_rate < 1.0:
        raise _bad(p + "DROP_PATH_RATE", db.DROP_PATH_RATE, "expected 0 <= rate < 1")

    start = _check_int(p + "SCHEDULE.START_ITER", db.SCHEDULE.START_ITER)
    if db.SCHEDULE.END_ITER is None:  # a LazyConfig's end_iter=None, written in a yacs config (yacs takes None for any key)
        raise _bad(p + "SCHEDULE.END_ITER", None, "expected an integer; -1 ends the ramp at SOLVER.MAX_ITER "
                   "(what end_iter=None means in a LazyConfig)")
    end = _check_int(p + "SCHEDULE.END_ITER", db.SCHEDULE.END_ITER)
    if start < 0:
        raise _bad(p + "SCHEDULE.START_ITER", start, "expected an iteration >= 0")
    max_iter = cfg.SOLVER.MAX_ITER
    dropblock_on = resnet_enabled or fpn_enabled or head_enabled or seg_enabled
    regularized = dropblock_on or drop_path_rate > 0
    if end == -1:
        # Only a run with a regularizer follows the ramp: a baseline that shortens
        # SOLVER.MAX_ITER below a START_ITER it inherits is no contradiction.
        if max_iter < start and regularized:
            raise _bad(
                p + "SCHEDULE.START_ITER",
                start,
                f"the ramp ends at SOLVER.MAX_ITER={max_iter} ({p}SCHEDULE.END_ITER=-1), "
                "before it starts",
            )
    elif end < start:
        raise _bad(
            p + "SCHEDULE.END_ITER",
            end,
            f"the ramp ends before it starts ({p}SCHEDULE.START_ITER={start}); "
            "use -1 for SOLVER.MAX_ITER",
        )
    if regularized and max_iter >= 1:
        ramp = LinearKeepProbSchedule(start, max_iter if end == -1 else end)
        last = max_iter - 1  # detectron2 trains iterations 0 .. MAX_ITER - 1
        if ramp.progress(last) == 0.0:
            # keep_prob is 1.0 through START_ITER: the run would never regularize.
            raise _bad(
                p + "SCHEDULE.START_ITER",
                start,
                f"keep_prob stays 1.0 through it, and the last iteration is SOLVER.MAX_ITER - 1 = {last}: "
                "no iteration would regularize",
            )
        if end > max_iter:
            # Each ramped target: KEEP_PROB for the DropBlock locations, 1 - DROP_PATH_RATE for DropPath.
            targets = [(keep_prob, f"{p}KEEP_PROB={keep_prob:g}")] if dropblock_on else []
            if drop_path_rate > 0:
                targets.append((1.0 - drop_path_rate, f"1 - {p}DROP_PATH_RATE={1.0 - drop_path_rate:g}"))
            reached = ", ".join(f"{ramp.keep_prob(target, last):.4g} instead of {name}" for target, name in targets)
            warnings.warn(
                f"{p}SCHEDULE.END_ITER={end} is after SOLVER.MAX_ITER={max_iter}: keep_prob reaches only "
                f"{reached} (END_ITER -1 ends the ramp at SOLVER.MAX_ITER)",
                UserWarning,
                # Attributed here, not to the caller: every builder validates the config,
                # and one location makes Python show the warning once, not once per builder.
                stacklevel=1,
            )

    if "CUTOUT" in cfg.INPUT:
        cutout = cfg.INPUT.CUTOUT
        _check_bool("INPUT.CUTOUT.ENABLED", cutout.ENABLED)
        if _check_int("INPUT.CUTOUT.SIZE", cutout.SIZE) < 1:
            raise _bad("INPUT.CUTOUT.SIZE", cutout.SIZE, "expected a side >= 1 pixel")
        if _check_int("INPUT.CUTOUT.NUM_HOLES", cutout.NUM_HOLES) < 1:
            raise _bad("INPUT.CUTOUT.NUM_HOLES", cutout.NUM_HOLES, "expected >= 1 hole")
        if not 0.0 <= _check_number("INPUT.CUTOUT.PROB", cutout.PROB) <= 1.0:
            raise _bad("INPUT.CUTOUT.PROB", cutout.PROB, "expected 0 <= prob <= 1")


def locations_on(cfg: CN) -> List[str]:
    """The MODEL.DROPBLOCK keys (under that node) that put a regularizer into the model and
    are on: "RESNET.ENABLED", "DROP_PATH_RATE" (> 0), "FPN.ENABLED", "HEAD.ENABLED",
    "SEM_SEG_HEAD.ENABLED"."""
    db = cfg.MODEL.DROPBLOCK
    on = {
        "RESNET.ENABLED": db.RESNET.ENABLED,
        "DROP_PATH_RATE": db.DROP_PATH_RATE > 0,
        "FPN.ENABLED": db.FPN.ENABLED,
        "HEAD.ENABLED": db.HEAD.ENABLED,
        "SEM_SEG_HEAD.ENABLED": db.SEM_SEG_HEAD.ENABLED,
    }
    return [key for key, value in on.items() if value]


def dropblock_enabled(cfg: CN) -> bool:
    """Whether any MODEL.DROPBLOCK location (RESNET, FPN, HEAD, SEM_SEG_HEAD) is on."""
    db = cfg.MODEL.DROPBLOCK
    return bool(db.RESNET.ENABLED or db.FPN.ENABLED or db.HEAD.ENABLED or db.SEM_SEG_HEAD.ENABLED)


def check_impl_device(cfg: CN) -> None:
    """ValueError naming MODEL.DROPBLOCK.IMPL and MODEL.DEVICE when IMPL is "triton", a
    DropBlock location is on, and the Triton kernels cannot run on MODEL.DEVICE (CPU without
    Triton's interpreter, no CUDA, an old GPU). The kernels run only where DropBlock is
    active (training, or the robustness analysis), so a model for evaluation builds on any
    device: the tools call this before training, not the builders. Without it the first
    step with DropBlock active (after data loading and the ramp's keep_prob 1.0 stretch)
    would be the first to notice."""
    db = cfg.MODEL.DROPBLOCK
    if db.IMPL != "triton" or db.TYPE != "DropBlock" or not dropblock_enabled(cfg):
        return
    reason = triton_unavailable_reason(cfg.MODEL.DEVICE)
    if reason:
        raise _bad(
            "MODEL.DROPBLOCK.IMPL",
            db.IMPL,
            f"the Triton kernels cannot run on MODEL.DEVICE={cfg.MODEL.DEVICE!r}: {reason}; "
            "use 'auto' (the kernels where they run, PyTorch elsewhere) or 'torch'",
        )
