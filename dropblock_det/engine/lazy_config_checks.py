"""Reading a LazyConfig (Python or YAML config for detectron2's LazyConfig training) and checking
it before a run, as ``config_checks.py`` checks a yacs config: the overrides, the datasets,
loaders and evaluators, the model (built on the meta device) and its inputs, the sampler,
optimizer and schedule, the devices, the starting weights, and the checkpoint a --resume
continues (an --eval-only's is checked by ``checkpoint.check_eval_checkpoint``). Each error names
the config key (``dataloader.train.total_batch_size``, ``model.backbone...``) and comes before
data loading or anything is written to ``train.output_dir``.
"""
from __future__ import annotations

import contextlib
import difflib
import importlib
import inspect
import logging
import math
import re
import sys
import warnings
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Callable, Dict, Iterator, List, Optional, Sequence, Tuple

import detectron2.utils.comm as comm
import torch
from detectron2.config import LazyConfig, instantiate
from detectron2.data import DatasetCatalog, MetadataCatalog
from detectron2.engine import hooks
from detectron2.evaluation import COCOEvaluator, SemSegEvaluator
from omegaconf import DictConfig, ListConfig, OmegaConf
from omegaconf.errors import InterpolationResolutionError, OmegaConfBaseException

from ..config import check_channels, check_feature_names, check_norm
from ..data.file_errors import ANNOTATION_FIELDS, check_evaluation_files, missing_annotation_field
from ..layers import DropBlock2d, LinearKeepProbSchedule, iter_regularizers, triton_unavailable_reason
from ..layers.base import is_integer, is_real_number
from .checkpoint import (
    check_checkpoint_fits,
    check_resume_grad_scaler,
    check_resume_optimizer,
    check_weights_readable,
)
from .config_checks import (
    build_on_meta_device,
    check_anchor_aspect_ratios,
    check_anchor_offset,
    check_anchor_sizes,
    check_box_loss_type,
    check_box_weights,
    check_class_counts,
    check_ddp_device,
    check_detections_kept,
    check_focal_loss_alpha,
    check_focal_loss_gamma,
    check_json_training_annotations,
    check_loss_weight,
    check_matcher_values,
    check_nms_threshold,
    check_pooler_levels,
    check_pooler_resolution,
    check_pooler_type,
    check_positive_fraction,
    check_proposal_count,
    check_sample_count,
    check_score_threshold,
    checked_device,
    error_description,
    finite_at_least_zero,
    YACS_TO_LAZY_KEYS,
    image_format_error,
    is_meta_device_limit,
    missing_config_file,
    pixel_normalization_error,
    resize_error,
    warn_anchor_sizes_order,
)
from .evaluation import (dataset_evaluator, evaluator_cannot_read, has_compiled_ops, model_cannot_train_on,
                         sem_seg_metadata_missing)
from .hooks import DropBlockScheduleHook, unwrap_model

__all__ = [
    "check_lazy_model",
    "check_lazy_model_values",
    "check_lazy_checkpoint",
    "lazy_optimizer",
    "check_lazy_class_counts",
    "check_lazy_inputs",
    "lazy_meta_model",
    "check_lazy_config_before_run",
    "check_lazy_loaders",
    "check_lazy_loader_values",
    "check_lazy_train_parts",
    "check_lazy_train_sampler",
    "check_lazy_ddp_device",
    "check_lazy_lr_multiplier_values",
    "check_lazy_optimizer_values",
    "lazy_evaluator_nodes",
    "check_lazy_head_inputs",
    "check_lazy_resnet_stages",
    "check_lazy_dropblock_positions",
    "check_lazy_rcnn_mapper",
    "check_lazy_rcnn_training_data",
    "check_lazy_interpolations_resolve",
    "check_override_key",
    "instantiate_naming_key",
    "is_lazy_config_file",
    "lazy_config_value",
    "lazy_dataset_names",
    "lazy_split_names",
    "load_lazy_config",
    "lazy_schedule_hook",
    "DATASET_NAME_KEYS",
    "RESUME_ADVICE",
    "rcnn_heads_needing_data",
]

logger = logging.getLogger("dropblock_det.lazy")

# The keys detectron2's LazyConfig loop reads (its configs/common/train.py), by use.
_TRAIN_KEYS = ("output_dir", "max_iter", "device", "amp.enabled", "checkpointer.period",
               "eval_period", "log_period", "init_checkpoint")
DATASET_NAME_KEYS = {"dataloader.train": "dataloader.train.dataset.names",
                     "dataloader.test": "dataloader.test.dataset.names"}


def is_lazy_config_file(path: str) -> bool:
    """Whether the config file `path` is a LazyConfig: a Python config, or the config.yaml a
    LazyConfig run saved (its top level has a lower-case `model` node; a yacs config's keys
    are upper-case). The tools that read both kinds decide with this."""
    if path.endswith((".py", ".yaml.pkl")):  # .yaml.pkl: LazyConfig.save's pickled fallback
        return True
    try:
        with open(path) as f:
            return any(line.startswith("model:") for line in f)
    except (OSError, UnicodeDecodeError):
        return False  # the yacs reader names the file


def _unreadable_lazy_file(config_file: str, error: Exception) -> str:
    """Why the LazyConfig file `config_file` (a run's config.yaml, or the config.yaml.pkl
    beside it) does not load, and what to give instead. detectron2's LazyConfig.save writes
    a config holding a value YAML cannot name (a function or lambda defined in the config
    file) as a config.yaml that does not load, plus the config pickled to config.yaml.pkl,
    which LazyConfig.load does not read."""
    pickled = config_file if config_file.endswith(".pkl") else config_file + ".pkl"
    why = " ".join(str(error).split())  # yaml's errors span lines: the value and where it is
    saved = ("it is detectron2's pickled copy of a run's config (LazyConfig.save's fallback), "
             "which LazyConfig.load does not read" if config_file.endswith(".pkl") else
             f"detectron2 saved it from a config holding a value YAML cannot name (e.g. a function or "
             f"lambda defined in the config file), which its LazyConfig.save logs, and pickled the config "
             f"to {pickled!r}, which LazyConfig.load does not read" if Path(pickled).is_file() else "")
    return (f"--config-file {config_file!r} is a LazyConfig that does not load "
            f"({type(error).__name__}: {why})" + (f": {saved}" if saved else "")
            + "; give the Python config it was made from (a value defined in an importable module, "
              "not in the config file, saves as YAML that loads)")


def _config_code_error(config_file: str, error: Exception) -> str:
    """One line naming `config_file` and the line of its code (or of a config it imports)
    that raised `error` while LazyConfig.load ran it. An ImportError, NameError or
    SyntaxError of a user's config printed detectron2's whole traceback, a RuntimeError
    its message alone, naming no file."""
    why = " ".join(str(error).split())  # detectron2's ImportError of a missing module spans lines
    cause = error.__cause__
    if isinstance(cause, SyntaxError) and cause.lineno:  # detectron2's "Config file X has syntax error!"
        why += f" ({cause.msg}, line {cause.lineno})"
    where = ""
    tb = error.__traceback__
    while tb is not None:  # the innermost frame of a config file (detectron2 loads each in its package)
        if str(tb.tb_frame.f_globals.get("__package__") or "").startswith("detectron2._cfg_loader"):
            where = f" at {tb.tb_frame.f_code.co_filename}:{tb.tb_lineno}"
        tb = tb.tb_next
    return f"--config-file {config_file!r} does not load: {type(error).__name__}: {why}{where}"


def load_lazy_config(config_file: str, opts: Sequence[str] = ()) -> DictConfig:
    """LazyConfig.load + apply_overrides ("key=value" opts, as detectron2's tool takes them),
    with errors naming the file or the opt."""
    if not config_file or not Path(config_file).is_file():
        raise FileNotFoundError(f"--config-file {config_file!r} {missing_config_file(config_file)}")
    if not config_file.endswith(".py"):
        # A yacs .yaml would load as a DictConfig without a model: say which tool reads it.
        try:
            LazyConfig.load(config_file).model  # noqa: B018 - a saved LazyConfig has one
        except Exception as e:  # noqa: BLE001 - any failure means it is not a LazyConfig
            if is_lazy_config_file(config_file):  # one that does not load: say why, not "yacs"
                raise ValueError(_unreadable_lazy_file(config_file, e)) from None
            raise ValueError(f"--config-file {config_file!r} is not a LazyConfig (a Python config, or the "
                             "config.yaml a LazyConfig run saved); a yacs .yaml config is for "
                             "tools/train_net.py") from None
    try:
        cfg = LazyConfig.load(config_file)
    except Exception as e:  # noqa: BLE001 - the config's own code ran: any error is the input's
        raise ValueError(_config_code_error(config_file, e)) from e
    for i, opt in enumerate(opts):
        if "=" not in opt:
            raise ValueError(f"command-line opt {opt!r}: expected key=value (LazyConfig overrides)"
                             + _as_override(cfg, opts[i:i + 2]))
        check_override_key(cfg, opt)
        try:
            cfg = LazyConfig.apply_overrides(cfg, [opt])
        except (OmegaConfBaseException, KeyError, ValueError, NotImplementedError) as e:
            raise ValueError(f"command-line opt {opt!r}: {e}") from None
    return cfg


def _as_override(cfg: DictConfig, pair: Sequence[str]) -> str:
    """For opts written as a yacs KEY VALUE pair (`MODEL.DROPBLOCK.KEEP_PROB 0.8`, `train.max_iter
    100`): the override to write, with the config's own spelling of the key where it has it
    (`dropblock.keep_prob=0.8`), or the config's key of a yacs key named otherwise
    (`SOLVER.MAX_ITER 100`: `train.max_iter=100`); '' for anything else."""
    if len(pair) != 2 or "=" in pair[1]:
        return ""
    keys = _yacs_key_equivalents(cfg, pair[0]) or [_key_from_the_top(cfg, pair[0].split("."))]
    if not keys[0] and not pair[0][:1].islower():
        return ""
    return ": write " + " ".join(f"{key or pair[0]}={pair[1]}" for key in keys)


def _yacs_key_equivalents(cfg: DictConfig, key: str) -> List[str]:
    """The keys of `cfg` that stand for the yacs `key` (any case) in YACS_TO_LAZY_KEYS, as
    the config spells them; [] where it has none of them."""
    lazy_keys = YACS_TO_LAZY_KEYS.get(key.upper(), ())
    spelt = [_key_from_the_top(cfg, lazy.split(".")) for lazy in lazy_keys]
    # (_key_from_the_top may name a tail of the key instead, at the top level: not this key)
    return [found for found, lazy in zip(spelt, lazy_keys) if found.lower() == lazy]


# Keys the tools read that a config may leave out, so an override may add them without "+".
_OPTIONAL_KEYS = ("train.dropblock_schedule",)


def _yacs_only_key_advice(cfg: DictConfig, key: str) -> str:
    """For a yacs key of dropblock-det's that a LazyConfig has in another form, not as a key
    (INPUT.CUTOUT.*, MODEL.DROPBLOCK.DROP_PATH_RATE, any case): where that form is; '' for
    any other key. Added with "+" as the refusal of a missing key offered, such a key was
    read by nothing: the run trained without Cutout or DropPath, silently."""
    upper = key.upper()
    if upper == "INPUT.CUTOUT" or upper.startswith("INPUT.CUTOUT."):
        return ("a LazyConfig has no INPUT.CUTOUT: append L(Cutout)(size=..., num_holes=..., prob=..., "
                "fill_value=\"${model.pixel_mean}\") (dropblock_det.data.cutout) to "
                "dataloader.train.mapper.augmentations, after the resize, in a config file")
    if upper == "MODEL.DROPBLOCK.DROP_PATH_RATE":
        stages = [k for k, _ in _nodes_building(cfg, "", "make_dropblock_resnet_stages")]
        where = ", ".join(f"{k.lstrip('.')}.drop_path_rate=..." for k in stages)
        return ("in a LazyConfig DropPath is the drop_path_rate argument of make_dropblock_resnet_stages"
                + (f": {where}" if where else " (the config builds none)"))
    return ""


def _lazy_form_of_yacs_key(cfg: DictConfig, key: str) -> List[str]:
    """The keys of `cfg` that a yacs-style `key` (its first part upper case and no key of the
    config's top level) stands for: YACS_TO_LAZY_KEYS' (SOLVER.MAX_ITER: train.max_iter), else
    the config's spelling of the key or of a tail of two parts or more (DROPBLOCK.TYPE and
    MODEL.DROPBLOCK.TYPE: dropblock.type); [] for any other key. A tail of one part is left
    out: a top-level `lr` is no optimizer.lr."""
    parts = key.split(".")
    if not parts[0].isupper() or parts[0] in cfg.keys():
        return []
    found = _yacs_key_equivalents(cfg, key)
    if found:
        return found
    for start in range(len(parts) - 1):  # the whole key too: DROPBLOCK.TYPE is dropblock.type in yacs' case
        spelt = _key_from_the_top(cfg, parts[start:])
        if spelt and spelt.count(".") == len(parts) - start - 1:
            return [spelt]
    return []


def check_override_key(cfg: DictConfig, opt: str) -> None:
    """KeyError naming the opt and the key when the override `opt` ("key=value") would add
    a key the config does not have, with the config's closest keys: detectron2's
    apply_overrides adds any key, so a misspelt `train.max_iters=3` trained with the
    config's max_iter. A key may be added where it is an argument of its node's
    `_target_` (an argument the L(...) call left at its default), where the tools read it
    (train.dropblock_schedule), or on purpose with Hydra's "+key=value". ValueError naming
    the opt for an unquoted None in its value, which Hydra reads as the string 'None'."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    try:
        override = OverridesParser.create().parse_overrides([opt])[0]
    except Exception as e:  # noqa: BLE001 - Hydra's grammar errors have several types
        raise ValueError(f"command-line opt {opt!r}: {e}") from None
    if override.is_sweep_override():
        # detectron2's apply_overrides set the sweep's fields as a dict (`x=interval(0,1)`:
        # {'start': 0, 'end': 1, ...}), failing where the value was used, e.g. in the
        # evaluation after the training, or refused it naming no key (`a,b`).
        raise ValueError(f"command-line opt {opt!r}: Hydra's grammar reads the value as a sweep "
                         f"({type(override._value).__name__}), which one run cannot take: write a list in "
                         "brackets ([a,b]), quote a string holding a comma ('a,b'); a grid of block sizes and "
                         "keep_probs is tools/sweep.py's")
    if _has_unquoted_none(override._value):
        # Hydra's grammar reads None as the string 'None' (its None is null): the component
        # then failed on the string, e.g. "TypeError: not all arguments converted during
        # string formatting" for model.sem_seg_head.train_size=None, or
        # "dataloader.train.sampler='None': expected ... or None".
        raise ValueError(f"command-line opt {opt!r}: None in an override is the string 'None' (Hydra's "
                         f"grammar): for None write null ({opt.replace('None', 'null')}); for the string, "
                         "quote it ('None')")
    key = override.key_or_group
    advice = _yacs_only_key_advice(cfg, key)
    if advice and key.split(".")[0] not in cfg.keys():  # (a config of one's own may have such a node)
        raise KeyError(f"command-line opt {opt!r}: {advice}")
    lazy_form = _lazy_form_of_yacs_key(cfg, key)
    if lazy_form and (override.is_add() or getattr(override, "is_force_add", lambda: False)()):
        # The refusal below offered "+": added so, the yacs key is stored and read by nothing
        # (+MODEL.DROPBLOCK.TYPE=Dropout trained DropBlock), silently.
        value = opt.split("=", 1)[1]
        raise KeyError(f"command-line opt {opt!r}: {key} is a yacs key, which nothing reads in this "
                       f"LazyConfig (added with +, it is only stored): write "
                       + " ".join(f"{found}={value}" for found in lazy_form))
    if override.is_add() or override.is_delete() or key in _OPTIONAL_KEYS:
        return  # a deletion is refused by apply_overrides itself
    node: Any = cfg
    parts = key.split(".")
    for depth, part in enumerate(parts):
        if isinstance(node, ListConfig):
            if not (part.isdigit() and int(part) < len(node)):
                return  # apply_overrides names what is wrong with a list index
            node = node[int(part)]
            continue
        if not isinstance(node, DictConfig):
            return  # a value, not a node: apply_overrides refuses to go into it
        if part in node.keys():
            try:
                node = node[part]
            except OmegaConfBaseException:
                return  # a "???" or a broken interpolation: the build names it
            continue
        arguments = _target_arguments(node)
        if arguments is None or part in arguments:
            return
        where = ".".join(parts[:depth]) or "the config's top level"
        # Near names here, case aside.
        by_lower: Dict[str, str] = {}
        for name in sorted({str(k) for k in node.keys()} | arguments):
            by_lower.setdefault(name.lower(), name)
        close = ['.'.join(parts[:depth] + [by_lower[c]])
                 for c in difflib.get_close_matches(part.lower(), list(by_lower), n=3)]
        # The whole key case aside (a yacs habit: TRAIN.MAX_ITER for train.max_iter, where the
        # near names here reach only "train"), or the yacs spelling of a node kept at another
        # level (model.dropblock.keep_prob or MODEL.DROPBLOCK.KEEP_PROB for the top-level
        # dropblock.keep_prob, where the near name "model" leads only to model.dropblock, which
        # is not there either): named first.
        elsewhere = _key_from_the_top(cfg, parts[depth:])
        if elsewhere:
            close = [elsewhere] + [c for c in close if c != elsewhere]
        # A yacs key whose LazyConfig key has another name (SOLVER.MAX_ITER: train.max_iter).
        equivalents = _yacs_key_equivalents(cfg, key)
        close = equivalents + [c for c in close if c not in equivalents]
        raise KeyError(
            f"command-line opt {opt!r}: {where} has no key {part!r}"
            + (f" (did you mean {', '.join(close)}?)" if close else "")
            + ("" if lazy_form else f"; to add it on purpose write +{opt}"))


def _key_from_the_top(cfg: DictConfig, parts: Sequence[str]) -> str:
    """The first tail of `parts` (the whole first) that names a key from the config's top
    level, case aside, as it is spelt there; '' when none does."""
    for start in range(len(parts)):
        node: Any = cfg
        found: List[str] = []
        for part in parts[start:]:
            keys = {str(k).lower(): str(k) for k in node.keys()} if isinstance(node, DictConfig) else {}
            if part.lower() not in keys:
                break
            found.append(keys[part.lower()])
            try:
                node = node[found[-1]]
            except OmegaConfBaseException:
                node = None  # "???" or a broken interpolation: the key is there, its value is not read
        else:
            if found:
                return ".".join(found)
    return ""


def _has_unquoted_none(value: Any) -> bool:
    """Whether a parsed override value is, or holds in a list or dict, an unquoted `None`
    (a quoted one is Hydra's QuotedString, not a str)."""
    if isinstance(value, list):
        return any(_has_unquoted_none(v) for v in value)
    if isinstance(value, dict):
        return any(_has_unquoted_none(v) for v in value.values())
    return type(value) is str and value == "None"


def _forwarded_kwargs_targets(target: Any) -> List[Any]:
    """The callables a target known to pass its **kwargs on hands them to: detectron2
    main's build_detection_train_loader gives them to build_batch_data_loader, which gives
    them to torch's DataLoader, so a misspelt `dataloader.train.total_batch_sizes` was taken
    as a keyword and failed inside DataLoader, after the training set was loaded."""
    from detectron2.data import build
    from torch.utils.data import DataLoader

    if target is getattr(build, "build_detection_train_loader", None):
        return [getattr(build, "build_batch_data_loader", None), DataLoader]
    return []


def _project_kwargs_targets(target: Any) -> Optional[List[Any]]:
    """What the **kwargs of one of this project's callables go to (None for another's): the
    regularizers take them only to refuse any (reject_unknown_kwargs: a ValueError, not
    Python's TypeError), make_dropblock_resnet_stages hands them to
    stock_resnet_stage_arguments, and a model class whose own __init__ takes them to the
    detectron2 class it extends. Without this a misspelt `model.head.prior_probb=0.01` or
    `dropblock.blocksize=5` was not refused with the closest keys, as the override of a key
    the config lacks is, but at the model build."""
    from ..layers import KeepProbRegularizer, build_regularizer, drop_block_2d, drop_path, dropout, spatial_dropout
    from ..modeling.resnet import make_dropblock_resnet_stages, stock_resnet_stage_arguments

    if target in (build_regularizer, drop_block_2d, dropout, spatial_dropout, drop_path) or (
            isinstance(target, type) and issubclass(target, KeepProbRegularizer)):
        return []
    if target is make_dropblock_resnet_stages:
        return [stock_resnet_stage_arguments]
    if isinstance(target, type) and target.__module__.startswith("dropblock_det.") and "__init__" in vars(target):
        stock = [c for c in target.__mro__[1:] if not c.__module__.startswith("dropblock_det.")]
        return stock[:1]
    return None


def _accepted_arguments(target: Any) -> Tuple[Dict[str, inspect.Parameter], bool]:
    """({name: parameter} of the target's named arguments, whether any other name goes too).
    A target that passes its **kwargs on to known callables (_forwarded_kwargs_targets,
    _project_kwargs_targets) takes their named arguments as well, and any name only if the
    last of them does (none, where they go to none). TypeError / ValueError when a
    signature cannot be read."""
    parameters = list(inspect.signature(target).parameters.values())
    named = {p.name: p for p in parameters if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)}
    takes_any = any(p.kind is p.VAR_KEYWORD for p in parameters)
    project = _project_kwargs_targets(target) if takes_any else None
    if project == []:
        return named, False
    if takes_any:
        forwarded = [f for f in (project or _forwarded_kwargs_targets(target)) if f is not None]
        for callee in forwarded:
            more, takes_any = _accepted_arguments(callee)
            for name, p in more.items():
                # the callee's required arguments are the target's to give, not the config's
                named.setdefault(name, p.replace(default=None) if p.default is p.empty else p)
    return named, takes_any


def _target_arguments(node: DictConfig) -> Optional[set]:
    """The argument names the node's `_target_` takes: an empty set for a node without one
    (a plain dict, such as `train`), None when any name goes (**kwargs, or a target that
    cannot be located or inspected: its build reports it)."""
    if "_target_" not in node.keys():
        return set()
    try:
        named, takes_any = _accepted_arguments(_located(node._target_))
    except Exception:  # noqa: BLE001 - any failure: leave it to the build
        return None
    return None if takes_any else set(named)


def _select(cfg: DictConfig, key: str) -> Any:
    """cfg's value at the dotted `key`; KeyError naming the key when it is missing, ValueError
    naming an interpolation on the way that does not resolve (:func:`lazy_config_value`)."""
    lazy_config_value(cfg, key)
    try:
        value = OmegaConf.select(cfg, key, throw_on_missing=True)
    except OmegaConfBaseException as e:
        raise KeyError(f"{key}: {e}") from None
    missing = object()
    if value is None and OmegaConf.select(cfg, key, default=missing) is missing:
        raise KeyError(f"the config has no {key} (detectron2's LazyConfig training reads it; see configs/common/)")
    return value


def lazy_dataset_names(cfg: DictConfig, train: bool = True) -> List[Tuple[str, str]]:
    """(key, dataset name) of every dataset the config's loaders name in detectron2's way
    (`dataloader.<split>.dataset.names`, a name or a list; the training loader's only with
    `train`) and the evaluator's `dataset_name`. A loader built some other way is not looked
    into."""
    found = []
    for node, key in DATASET_NAME_KEYS.items():
        if node == "dataloader.train" and not train:
            continue
        value = lazy_config_value(cfg, key)
        if value is not None:
            found += [(key, name) for name in _dataset_names(key, value)]
    for key, evaluator in lazy_evaluator_nodes(cfg):
        value = evaluator.get("dataset_name")
        if value is not None:
            found += [(f"{key}.dataset_name", name) for name in _dataset_names(f"{key}.dataset_name", value)]
    return found


def lazy_split_names(cfg: DictConfig, split: str) -> Tuple[str, List[str]]:
    """The key `dataloader.<split>.dataset.names` ("train" or "test") and the dataset names
    it gives: :func:`lazy_dataset_names`' of that loader alone ([] for a loader built some
    other way)."""
    key = DATASET_NAME_KEYS[f"dataloader.{split}"]
    value = lazy_config_value(cfg, key)
    return key, [] if value is None else _dataset_names(key, value)


def _dataset_names(key: str, value: Any) -> List[str]:
    """The names of a loader's `names` (a name or a list of names), refused naming the key
    where one is no string: Hydra reads an unquoted number as an int, and names=[1, 2] failed
    in the closest names' search with a bare "TypeError: 'int' object is not iterable"."""
    names = [value] if isinstance(value, str) else list(value) if isinstance(value, (list, tuple, ListConfig)) else None
    if names is None or not all(isinstance(name, str) for name in names):
        raise ValueError(f"{key}={_plain(value)!r}: expected a dataset name or a list of names (strings; "
                         f"quote a name Hydra reads as another type: {key}=\"'123'\")")
    return names


def lazy_evaluator_nodes(cfg: DictConfig) -> List[Tuple[str, DictConfig]]:
    """(key, node) of each evaluator `dataloader.evaluator` builds: the node itself, or each
    entry of a list of them (inference_on_dataset takes a list and runs them all, as
    detectron2's PanopticFPN LazyConfig gives COCO, semantic and panoptic evaluators)."""
    evaluator = lazy_config_value(cfg, "dataloader.evaluator")
    if isinstance(evaluator, DictConfig):
        return [("dataloader.evaluator", evaluator)]
    if isinstance(evaluator, ListConfig):
        # (an entry that does not resolve refused naming it, as inference_on_dataset reads it)
        return [(f"dataloader.evaluator.{i}", node)  # the overrides' spelling of an entry
                for i, (_, node, _) in enumerate(_children(evaluator, "dataloader.evaluator", _refuse_unresolved))
                if isinstance(node, DictConfig)]
    return []


def _check_int(key: str, value: Any, minimum: int) -> None:
    if not is_integer(value) or value < minimum:
        raise ValueError(f"{key}={value!r}: expected an integer >= {minimum}")


def check_lazy_loaders(cfg: DictConfig, train: bool = True) -> None:
    """`dataloader.test` (and with `train` `dataloader.train`) and `dataloader.evaluator`: the
    arguments of every `L(...)` node in them (the loader, its dataset, mapper and
    augmentations, the evaluator) fit its target and the interpolations the build resolves
    resolve (the test loader and the evaluator are built only after the whole training, the
    training mapper after its data is loaded), `num_workers` an integer >= 0 (torch refused
    -1 only when the loader was built), and `dataset.names` not empty (detectron2 asserted
    "No valid data found in ." once the training was set up). ValueError naming the key."""
    for split in (["train"] if train else []) + ["test"]:
        key = f"dataloader.{split}"
        node = lazy_config_value(cfg, key)
        if not isinstance(node, DictConfig):
            continue
        _check_arguments_under(node, key)
        workers = lazy_config_value(cfg, f"{key}.num_workers")
        if workers is not None:
            _check_int(f"{key}.num_workers", workers, 0)
        if split == "test" and lazy_config_value(cfg, f"{key}.batch_size") is not None:
            # (detectron2 main's argument) torch refused 0 when the loader was built, after the training.
            _check_int(f"{key}.batch_size", lazy_config_value(cfg, f"{key}.batch_size"), 1)
        names = lazy_config_value(cfg, DATASET_NAME_KEYS[key])
        if names is not None and not _dataset_names(DATASET_NAME_KEYS[key], names):
            raise ValueError(f"{DATASET_NAME_KEYS[key]}={list(names)!r}: no dataset to "
                             f"{'train on' if split == 'train' else 'evaluate'}; name at least one")
    for key, evaluator in lazy_evaluator_nodes(cfg):
        _check_arguments_under(evaluator, key)
    check_lazy_loader_values(cfg, train)
    if train:
        check_lazy_cutout(cfg)


# The tasks detectron2's COCOEvaluator evaluates (it asserts each, after the inference).
_COCO_TASKS = ("bbox", "segm", "keypoints")


def check_lazy_loader_values(cfg: DictConfig, train: bool = True) -> None:
    """Values in the loaders and the evaluator that detectron2 reads only once the data is
    loaded, at the first step or at an evaluation, failing there: a training DatasetMapper's
    `instance_mask_format` other than 'polygon' / 'bitmask' with `use_instance_mask`
    ("AssertionError: rle" in the loader, at the first step), a dataset's
    `proposal_files` that is not one file per name (get_detection_dataset_dicts asserted it
    bare, once the output folder was set up), a COCOEvaluator's `tasks` other than a list
    of 'bbox', 'segm', 'keypoints' ("Got unknown task" at the first evaluation, after the
    training). The test loader's (and the evaluator's) always, the training loader's with
    `train`. ValueError naming the key."""
    from detectron2.data import DatasetMapper, get_detection_dataset_dicts

    for split in (["train"] if train else []) + ["test"]:
        key = f"dataloader.{split}"
        mapper = lazy_config_value(cfg, f"{key}.mapper")
        target = _located(mapper.get("_target_")) if isinstance(mapper, DictConfig) else None
        if split == "train" and isinstance(target, type) and issubclass(target, DatasetMapper):
            mask_format = _plain_number(mapper, "instance_mask_format")
            if _plain_number(mapper, "use_instance_mask") and mask_format not in (None, "polygon", "bitmask"):
                raise ValueError(f"{key}.mapper.instance_mask_format={mask_format!r}: expected 'polygon' or "
                                 "'bitmask' (detectron2's DatasetMapper asserts it on the first image with masks)")
        dataset = lazy_config_value(cfg, f"{key}.dataset")
        if not (isinstance(dataset, DictConfig) and _located(dataset.get("_target_")) is get_detection_dataset_dicts):
            continue
        files, names = _plain_number(dataset, "proposal_files"), _plain_number(dataset, "names")
        if files is None or names is None:
            continue
        names = [names] if isinstance(names, str) else names
        if not isinstance(files, list) or len(files) != len(names):
            raise ValueError(f"{key}.dataset.proposal_files={files!r}: expected a list of one proposal file per "
                             f"name in {key}.dataset.names={names!r}, in the same order (get_detection_dataset_dicts "
                             "asserts it once the data is loaded)")
    for key, evaluator in lazy_evaluator_nodes(cfg):
        target = _located(evaluator.get("_target_"))
        if not (isinstance(target, type) and issubclass(target, COCOEvaluator)):
            continue
        tasks = _plain_number(evaluator, "tasks")
        if tasks is not None and (not isinstance(tasks, (list, tuple))
                                  or any(task not in _COCO_TASKS for task in tasks)):
            raise ValueError(f"{key}.tasks={tasks!r}: expected a list of {', '.join(map(repr, _COCO_TASKS))}, or None "
                             "(the tasks the predictions have); COCOEvaluator asserts each at the first "
                             "evaluation, after the training")
        max_dets = _plain_number(evaluator, "max_dets_per_image")
        if max_dets is not None and not (is_integer(max_dets) and max_dets >= 1):
            # COCOEvaluator makes COCOeval's maxDets [1, 10, max_dets_per_image]: a list failed
            # in COCOeval at the first evaluation, after the training ("'<' not supported between
            # instances of 'list' and 'int'"), 0 or below scored AP on a cut of no detections.
            raise ValueError(f"{key}.max_dets_per_image={max_dets!r}: expected an integer >= 1, the most "
                             "detections per image scored (COCOEvaluator gives COCOeval maxDets=[1, 10, it]; "
                             "None: 100)")


def check_lazy_cutout(cfg: DictConfig) -> None:
    """An `L(Cutout)` in `dataloader.train.mapper.augmentations` as the yacs INPUT.CUTOUT is
    checked against the resize before it (`check_cutout_size`: ValueError for a size whose
    hole covers every resized image whole, a warning above their shorter side), and a
    warning, naming both keys, where it comes before the first ResizeShortestEdge: its size
    is then in pixels of the image as read, and the resize scales its holes (the README's
    "after the resize"). Its `fill_value` is checked against the channels of the mapper's
    `image_format`, as the yacs INPUT.CUTOUT's MODEL.PIXEL_MEAN is: one that cannot fill them
    failed only in the data loader, after the earlier run was moved aside. Values that are
    not plain numbers are left to the build."""
    from ..data.cutout import check_cutout_size, check_fill_channels

    key = "dataloader.train.mapper.augmentations"
    augmentations = OmegaConf.select(cfg, key, default=None, throw_on_resolution_failure=False)
    if not isinstance(augmentations, ListConfig):
        return
    image_format = OmegaConf.select(cfg, "dataloader.train.mapper.image_format", default=None,
                                    throw_on_resolution_failure=False)
    resize = None  # (index, node) of the last ResizeShortestEdge so far
    for index, aug in enumerate(augmentations):
        if _is_target(aug, "ResizeShortestEdge"):
            resize = (index, aug)
        if not _is_target(aug, "Cutout"):
            continue
        try:
            fill = _plain(aug.get("fill_value"), resolve=True)  # "${model.pixel_mean}" as the build resolves it
        except OmegaConfBaseException:  # an interpolation that does not resolve: refused naming its key later
            fill = None
        if isinstance(fill, (list, tuple)):
            check_fill_channels(fill, image_format, f"{key}.{index}.fill_value={fill!r} (Cutout)",
                                "dataloader.train.mapper.image_format")
        size = aug.get("size")
        if resize is None:
            if any(_is_target(later, "ResizeShortestEdge") for later in augmentations[index + 1:]):
                warnings.warn(
                    f"{key}.{index} (Cutout, size={size!r}) comes before the resize: its size is in pixels of the "
                    "image as read, and the resize scales its holes; INPUT.CUTOUT's Cutout comes after it "
                    "(append it to the list)", UserWarning, stacklevel=2)
            continue
        at, node = resize
        lengths, max_size = node.get("short_edge_length"), node.get("max_size", sys.maxsize)
        if isinstance(lengths, ListConfig):
            lengths = OmegaConf.to_container(lengths)
        if is_integer(size):
            check_cutout_size(size, lengths, max_size, f"{key}.{index}.size",
                              f"{key}.{at}: ResizeShortestEdge(short_edge_length={lengths!r}, max_size={max_size!r})")


def check_lazy_config_before_run(cfg: DictConfig, train: bool = True, check_files: bool = True,
                                 check_weights: bool = True) -> Optional[torch.nn.Module]:
    """Every check of a LazyConfig that loads no data: the keys the loop reads (KeyError
    naming a missing one), their values (`train.max_iter` >= 1, the periods, `train.device`
    present on this machine, AMP only on CUDA, with `train` and `check_weights` a
    `train.init_checkpoint` that exists or, a URL, is fetched, and is read: False for a
    resumed run, which loads its own checkpoint instead),
    the datasets the loaders and the evaluator name (registered; with `check_files` their
    files present), and the model, built on the meta device (:func:`lazy_meta_model`,
    :func:`check_lazy_model`), which is returned (None where it cannot be built there), and
    with `train` what the loop instantiates later (:func:`check_lazy_train_parts`). Errors
    name the key."""
    from ..data.dataset_check import check_datasets, unregistered_dataset_error

    needed = ["model", "train.output_dir", "train.device", "dataloader.test"]
    if train:
        needed += ["dataloader.train", "optimizer", "lr_multiplier"] + [f"train.{k}" for k in _TRAIN_KEYS]
    for key in needed:
        _select(cfg, key)
    if train and lazy_config_value(cfg, "dataloader.evaluator") is None:
        # detectron2's loop (do_test) then evaluates nothing, at eval_period and at the end, unsaid.
        warnings.warn("dataloader.evaluator is missing (or null): the run trains and evaluates nothing; give "
                      "one (e.g. L(dataset_evaluator)(dataset_name=..., output_dir=...)) to have AP", stacklevel=2)
    output_dir = cfg.train.output_dir
    if not isinstance(output_dir, str) or not output_dir:
        raise ValueError(f"train.output_dir={output_dir!r}: expected a folder")
    weights = lazy_config_value(cfg, "train.init_checkpoint", "")
    if weights is not None and not isinstance(weights, str):
        # e.g. Hydra reads train.init_checkpoint=123 as an int: it failed, unnamed, in the path check.
        raise ValueError(f"train.init_checkpoint={_plain(weights)!r}: expected a checkpoint's path or URL "
                         "(a string; quote a name Hydra reads as another type: train.init_checkpoint=\"'123'\")")
    device = checked_device("train.device", cfg.train.device)
    if train:
        _check_int("train.max_iter", cfg.train.max_iter, 1)
        _check_int("train.checkpointer.period", cfg.train.checkpointer.period, 1)
        _check_int("train.eval_period", cfg.train.eval_period, 0)
        _check_int("train.log_period", cfg.train.log_period, 1)
        if cfg.train.amp.enabled and device.type != "cuda":
            # detectron2's AMPTrainer asserts CUDA at its first step (v0.6 and main).
            raise ValueError(f"train.amp.enabled=True needs a CUDA train.device, got {cfg.train.device!r}")
        check_lazy_ddp_device(cfg, device)
        if check_weights and cfg.train.init_checkpoint:  # a URL is fetched (and cached) now, and the file read
            check_weights_readable("train.init_checkpoint", cfg.train.init_checkpoint)
    check_lazy_loaders(cfg, train)
    for key, evaluator in lazy_evaluator_nodes(cfg):
        evaluated = evaluator.get("dataset_name")
        if evaluated is not None and not isinstance(evaluated, str):
            # detectron2's evaluators (and dataset_evaluator) evaluate one dataset, by name: a
            # list would pass every check and fail at the first evaluation, after training.
            listed = isinstance(evaluated, (list, tuple, ListConfig))
            raise ValueError(f"{key}.dataset_name={_plain(evaluated)!r}: expected one dataset "
                             "name, a string (it is dataloader.test.dataset.names in configs/common: give "
                             + ("that one name, not a list)" if listed else
                                f"it quoted where Hydra reads another type: {key}.dataset_name=\"'name'\")"))
    registered = set(DatasetCatalog.list())
    names: Dict[str, str] = {}  # name -> the key that names it first
    for key, name in lazy_dataset_names(cfg, train):
        if name not in registered:
            raise unregistered_dataset_error(key, name)
        names.setdefault(name, key)
    check_lazy_model_values(cfg)
    model = lazy_meta_model(cfg)
    if model is not None:
        check_lazy_model(cfg, model, train)
    check_lazy_inputs(cfg, model, train)
    if train:
        check_lazy_train_parts(cfg, model)
    if check_files:
        check_datasets(names, keys=names)
        _check_proposal_files(cfg, train)
    if train and check_files:
        if model is not None:
            train_key, train_names = lazy_split_names(cfg, "train")
            needed = {flag: (f"{head} trains on {ANNOTATION_FIELDS[flag][1]}", "build the model without the head")
                      for flag, head in rcnn_heads_needing_data(model).items()}
            needed.setdefault("use_instance_mask", _recompute_boxes_need(cfg))
            check_json_training_annotations({flag: need for flag, need in needed.items() if need},
                                            [(train_key, name) for name in train_names])
        # What the evaluations after training will read (the test loader loads them then).
        test_key, test_names = lazy_split_names(cfg, "test")
        check_evaluation_files(test_names, test_key)
    return model


def _check_proposal_files(cfg: DictConfig, train: bool) -> None:
    """FileNotFoundError naming the key for a local `dataloader.<split>.dataset.proposal_files`
    file that is not there: get_detection_dataset_dicts opened it only when the loader was
    built (the test loader's after the whole training). A URL is left to detectron2."""
    for split in (["train"] if train else []) + ["test"]:
        key = f"dataloader.{split}.dataset.proposal_files"
        files = lazy_config_value(cfg, key)
        for index, path in enumerate(files if isinstance(files, ListConfig) else []):
            if isinstance(path, str) and "://" not in path and not Path(path).is_file():
                raise FileNotFoundError(f"{key}.{index}={path!r}: no such file (the proposals of "
                                        f"dataloader.{split}.dataset.names, in order)")


def _recompute_boxes_need(cfg: DictConfig) -> Optional[Tuple[str, str]]:
    """(what needs masks, how to do without) for a training DatasetMapper with
    `recompute_boxes=True` (detectron2's new_baselines set it, for their crop), which reads
    every box from its instance mask, whatever the model: on a set without masks (a Faster
    R-CNN made from those configs as the README says) it failed at the first step with
    "Cannot find field 'gt_masks' in the given Instances!". None where it is not set."""
    from detectron2.data import DatasetMapper

    key = "dataloader.train.mapper"
    mapper = lazy_config_value(cfg, key)
    if not isinstance(mapper, DictConfig) or not mapper.get("recompute_boxes", False):
        return None
    target = _located(mapper.get("_target_"))
    if not (isinstance(target, type) and issubclass(target, DatasetMapper)):
        return None
    return (f"{key}.recompute_boxes=True reads every training box from its instance mask",
            f"set {key}.recompute_boxes=False (boxes as annotated)")


def check_lazy_ddp_device(cfg: DictConfig, device: torch.device, world: Optional[int] = None) -> None:
    """config_checks.check_ddp_device for train.device, unless train.ddp gives `device_ids`
    (`train.ddp.device_ids=null` is DDP on the CPU), which create_ddp_model then keeps; and
    DDP on the CPU only in processes that can reduce CPU tensors (not NCCL's). train.ddp's
    values are read (`**cfg.train.ddp`) once the training data is loaded: one that does not
    resolve is refused now. `world`: the training processes, where this is not one of them
    (the tool's check before the launch); this process's world by default."""
    _check_resolves(cfg, "train.ddp", unpacked=True)
    if "device_ids" not in (lazy_config_value(cfg, "train.ddp") or {}):
        check_ddp_device("train.device", cfg.train.device, device,
                         "on CUDA, or with train.ddp.device_ids=null (+train.ddp.device_ids=null where "
                         "train.ddp has no such key)", world)
        return
    if world is not None:
        return  # (the backend is known once the processes are started)
    world = comm.get_world_size()
    if (world > 1 and device.type != "cuda" and torch.distributed.is_initialized()
            and torch.distributed.get_backend() == "nccl"):
        # detectron2's launch picks NCCL on a machine with GPUs (v0.6: always, after asserting
        # CUDA); DDP then fails on the CPU model, after the data loader is built.
        raise ValueError(f"train.device={cfg.train.device!r} with {world} training processes: detectron2's "
                         "launch started them with the NCCL backend (it does on a machine with GPUs; "
                         "detectron2 v0.6 always), which cannot reduce CPU tensors; train on CUDA, or in "
                         "one process (--num-gpus 1)")


def check_lazy_model(cfg: DictConfig, model: torch.nn.Module, train: bool = True) -> None:
    """The checks that need the config's model (which may be on the meta device): an
    evaluator dataset the model cannot be evaluated on, (with `train`) a training set it cannot
    train on (:func:`evaluation.model_cannot_train_on`), a class count the datasets do not
    have (:func:`check_lazy_class_counts`), and (with `train`) a DropBlock whose
    `impl="triton"` cannot run on `train.device`, DropBlock stages the ResNet does not build
    (:func:`check_lazy_resnet_stages`), an R-CNN mask / keypoint head whose training mapper
    does not load its annotations (:func:`check_lazy_rcnn_mapper`), and a segmentation
    or RetinaNet head's hand-given inputs that do not fit (:func:`check_lazy_head_inputs`).
    ValueError naming the key."""
    check_lazy_head_inputs(cfg, model, train)
    for key, name in lazy_dataset_names(cfg, train) if train else ():
        why = model_cannot_train_on(type(model), name) if key == DATASET_NAME_KEYS["dataloader.train"] else ""
        if why:
            raise ValueError(f"{key}={name!r}: {why}")
    check_lazy_class_counts(cfg, model, train)
    for key, name in lazy_dataset_names(cfg, train=False):
        if key.startswith("dataloader.evaluator") and key.endswith(".dataset_name"):
            why = evaluator_cannot_read(type(model), name)
            if why:
                raise ValueError(f"{key}={name!r}: {why}")
    for key, evaluator in lazy_evaluator_nodes(cfg):
        # dataset_evaluator builds a SemSegEvaluator for a "sem_seg" set; one given by hand
        # may pass ignore_label itself.
        target = _located(evaluator.get("_target_"))
        name = evaluator.get("dataset_name")
        if isinstance(name, str) and (target is dataset_evaluator or (
                isinstance(target, type) and issubclass(target, SemSegEvaluator))):
            missing = sem_seg_metadata_missing(name, ignore_label_given=evaluator.get("ignore_label") is not None)
            if missing:
                raise ValueError(f"{key}.dataset_name={name!r}: {missing}")
        metadata = MetadataCatalog.get(name) if isinstance(name, str) else None
        if (metadata is not None and evaluator.get("output_dir") is None and not hasattr(metadata, "json_file")
                and (target is dataset_evaluator and getattr(metadata, "evaluator_type", None) == "coco"
                     or isinstance(target, type) and issubclass(target, COCOEvaluator))):
            # COCOEvaluator writes such a set's annotations as COCO json into output_dir, and
            # refuses to be built without one: after the whole training.
            raise ValueError(f"{key}.output_dir=None: {name!r} has no COCO json_file, which COCOEvaluator "
                             "writes into its output_dir; give one (e.g. \"${train.output_dir}/inference\")")
        if (isinstance(target, type) and issubclass(target, COCOEvaluator)
                and evaluator.get("use_fast_impl", True) and not has_compiled_ops() and _fast_coco_eval_imported()):
            # Its default: detectron2's own configs (common/data/coco.py) leave it so, and
            # without the compiled operators it raised an ImportError in its first evaluation,
            # after the whole training. dataset_evaluator picks for itself. A false value
            # (None too) is the official COCOeval, as COCOEvaluator reads it.
            raise ValueError(f"{key}.use_fast_impl={evaluator.get('use_fast_impl', True)!r}: COCOEvaluator's "
                             "fast evaluation needs detectron2's compiled operators, which this detectron2 "
                             f"lacks; set {key}.use_fast_impl=False (pycocotools' COCOeval, the official one)")
    _check_evaluator_tasks(cfg, model)
    _check_keypoint_count(cfg, model, train)
    if train:
        check_lazy_resnet_stages(cfg, model)
        check_lazy_dropblock_positions(cfg)
        check_lazy_rcnn_mapper(cfg, model)
        for qualified, module in iter_regularizers(model):
            if isinstance(module, DropBlock2d) and module.impl == "triton":
                reason = triton_unavailable_reason(cfg.train.device)
                if reason:
                    raise ValueError(f"model.{qualified}: impl='triton' cannot run on train.device="
                                     f"{cfg.train.device!r}: {reason}; use 'auto' or 'torch'")


def _model_coco_tasks(model: torch.nn.Module) -> Optional[Tuple[str, ...]]:
    """The COCOEvaluator tasks `model`'s predictions have, where that is certain: detectron2's
    own GeneralizedRCNN / PanopticFPN by their ROI heads' mask_on / keypoint_on, a RetinaNet
    (or FCOS) boxes only. None for another model (a user's own may add outputs)."""
    from detectron2.modeling import GeneralizedRCNN, PanopticFPN
    from detectron2.modeling.meta_arch.retinanet import RetinaNet

    model = unwrap_model(model)
    fcos = getattr(importlib.import_module("detectron2.modeling.meta_arch"), "FCOS", None)  # (main only)
    if isinstance(model, RetinaNet) or fcos is not None and isinstance(model, fcos):
        return ("bbox",)
    if type(model) in (GeneralizedRCNN, PanopticFPN):
        roi_heads = getattr(model, "roi_heads", None)
        return ("bbox",) + tuple(task for task, flag in (("segm", "mask_on"), ("keypoints", "keypoint_on"))
                                 if getattr(roi_heads, flag, False))
    return None


def _check_evaluator_tasks(cfg: DictConfig, model: torch.nn.Module) -> None:
    """A COCOEvaluator's `tasks` naming 'segm' / 'keypoints' for a model whose predictions
    have no masks / keypoints: COCOEvaluator scored each task named, and failed in pycocotools
    at the first evaluation, after the training ("list indices must be integers or slices, not
    str", KeyError: 'keypoints'). ValueError naming the key."""
    given = _model_coco_tasks(model)
    if given is None:
        return
    for key, evaluator in lazy_evaluator_nodes(cfg):
        target = _located(evaluator.get("_target_"))
        tasks = _plain_number(evaluator, "tasks")
        if not (isinstance(target, type) and issubclass(target, COCOEvaluator) and isinstance(tasks, (list, tuple))):
            continue
        missing = [task for task in tasks if task not in given]
        if missing:
            raise ValueError(f"{key}.tasks={tasks!r}: the model ({type(unwrap_model(model)).__name__}) predicts no "
                             f"{' / '.join('masks' if task == 'segm' else task for task in missing)} for "
                             f"{', '.join(map(repr, missing))}; give tasks={list(given)!r} (or None: the tasks the "
                             "predictions have)")


def _check_keypoint_count(cfg: DictConfig, model: torch.nn.Module, train: bool = True) -> None:
    """A Keypoint R-CNN head's keypoints (`model.roi_heads.keypoint_head.num_keypoints`, its
    heatmaps) against the `keypoint_names` of the datasets the loaders and the evaluator name,
    where their metadata has them (detectron2's COCO person sets: 17): a count changed alone
    failed at the first step with a bare IndexError in the heatmap loss. ValueError naming it."""
    from detectron2.modeling.roi_heads.keypoint_head import BaseKeypointRCNNHead

    head = getattr(getattr(unwrap_model(model), "roi_heads", None), "keypoint_head", None)
    count = getattr(head, "num_keypoints", None)
    if not isinstance(head, BaseKeypointRCNNHead) or not isinstance(count, int):
        return
    for key, name in dict.fromkeys(lazy_dataset_names(cfg, train)):
        names = MetadataCatalog.get(name).get("keypoint_names") if isinstance(name, str) else None
        if names is not None and len(names) != count:
            raise ValueError(
                f"model.roi_heads.keypoint_head.num_keypoints={count}, but {key} names {name!r}, whose metadata "
                f"keypoint_names has {len(names)} keypoints: set it to {len(names)} (the head predicts one "
                "heatmap per keypoint of the annotations)")


def _lazy_class_counts(model: torch.nn.Module) -> Tuple[List[Tuple[str, Any, str]], List[Tuple[str, Any]]]:
    """(key, count, "thing" / "stuff") of the class counts the built `model` predicts, read
    from the model (a value the config interpolates is what counts), each with the config key
    that sets it in configs/common/models (detectron2's LazyConfigs use the same), and the
    (key, value) of a segmentation head's ignore value: a RetinaNet's `model.num_classes`, an
    R-CNN's `model.roi_heads.num_classes` and its box predictor's, a SemanticSegmentor's (and
    a PanopticFPN's, besides its R-CNN counts) `model.sem_seg_head.num_classes` (its
    predictor's outputs) and `.ignore_value`. A model of the user's own is not judged."""
    from detectron2.modeling import GeneralizedRCNN, PanopticFPN, SemanticSegmentor
    from detectron2.modeling.meta_arch.retinanet import RetinaNet

    model = unwrap_model(model)
    counts: List[Tuple[str, Any, str]] = []
    ignore: List[Tuple[str, Any]] = []
    if isinstance(model, RetinaNet) or (
            type(model).__name__ == "FCOS" and isinstance(getattr(model, "num_classes", None), int)):
        counts.append(("model.num_classes", model.num_classes, "thing"))
        # The head's classes, given apart (configs/common/models: "${..num_classes}"): a
        # `model.head.num_classes` of its own failed at the first step with a bare IndexError.
        head = getattr(model, "head", None)
        cls_score, bbox_pred = getattr(head, "cls_score", None), getattr(head, "bbox_pred", None)
        if isinstance(cls_score, torch.nn.Conv2d) and isinstance(bbox_pred, torch.nn.Conv2d):
            anchors = bbox_pred.out_channels // 4  # 4 box deltas per anchor
            if anchors and cls_score.out_channels % anchors == 0:
                counts.append(("model.head.num_classes", cls_score.out_channels // anchors, "thing"))
    elif isinstance(model, GeneralizedRCNN):
        roi_heads = model.roi_heads
        if hasattr(roi_heads, "num_classes"):
            counts.append(("model.roi_heads.num_classes", roi_heads.num_classes, "thing"))
        predictor = getattr(roi_heads, "box_predictor", None)
        if isinstance(getattr(predictor, "num_classes", None), int):
            counts.append(("model.roi_heads.box_predictor.num_classes", predictor.num_classes, "thing"))
        elif isinstance(predictor, torch.nn.ModuleList):  # CascadeROIHeads: one per stage, each its own count
            counts.extend((f"model.roi_heads.box_predictors.{i}.num_classes", stage.num_classes, "thing")
                          for i, stage in enumerate(predictor) if isinstance(getattr(stage, "num_classes", None), int))
    # A PanopticFPN's semantic labels are the stuff_classes too (see config_checks.check_dataset_classes).
    if isinstance(model, (SemanticSegmentor, PanopticFPN)):
        head = model.sem_seg_head
        predictor = getattr(head, "predictor", None)
        if isinstance(getattr(predictor, "out_channels", None), int):
            counts.append(("model.sem_seg_head.num_classes", predictor.out_channels, "stuff"))
        if hasattr(head, "ignore_value"):
            ignore.append(("model.sem_seg_head.ignore_value", head.ignore_value))
    return counts, ignore


def _fast_coco_eval_imported() -> bool:
    """Whether COCOEvaluator's fast evaluation would be used where asked for: detectron2 main
    falls back to the official COCOeval by itself when its fast_eval_api did not import (no
    compiled operators, no placeholder `_C`); v0.6 has no fallback."""
    from detectron2.evaluation import coco_evaluation

    return getattr(coco_evaluation, "COCOeval_opt", None) is not getattr(coco_evaluation, "COCOeval", None)


def check_lazy_class_counts(cfg: DictConfig, model: torch.nn.Module, train: bool = True) -> None:
    """config_checks.check_class_counts for the LazyConfig: the class counts the model predicts
    (:func:`_lazy_class_counts`) against the metadata of every dataset the loaders and the
    evaluator name (the training loader's only with `train`), and a segmentation head's
    ignore_value against the training sets' ignore_label. ValueError naming the keys, the
    value and the dataset's class count."""
    counts, ignore = _lazy_class_counts(model)
    datasets = list(dict.fromkeys(lazy_dataset_names(cfg, train)))
    check_class_counts(counts, datasets, ignore,
                       [d for d in datasets if d[0] == DATASET_NAME_KEYS["dataloader.train"]])


def check_lazy_inputs(cfg: DictConfig, model: Optional[torch.nn.Module], train: bool = True) -> None:
    """The loaders' inputs that fail only on the first image read, naming the image: a
    mapper's `image_format` detectron2 cannot read images in (config_checks.image_format_error,
    against the channels of the model's pixel_mean where it was built), and a
    ResizeShortestEdge among a mapper's augmentations that resizes every image to nothing
    (config_checks.resize_error: the test loader's fails after the whole training), and the
    model's pixel_std against its pixel_mean (config_checks.pixel_normalization_error). The
    training loader's only with `train`. ValueError naming the key."""
    mean, std = (OmegaConf.select(cfg, f"model.{key}", default=None) for key in ("pixel_mean", "pixel_std"))
    if all(isinstance(values, ListConfig) for values in (mean, std)):
        why = pixel_normalization_error(mean, std)
        if why:
            raise ValueError(f"model.pixel_std={list(std)!r}: {why} (model.pixel_mean={list(mean)!r})")
    pixel_mean = getattr(unwrap_model(model), "pixel_mean", None) if model is not None else None
    channels = pixel_mean.numel() if isinstance(pixel_mean, torch.Tensor) else None
    input_format = lazy_config_value(cfg, "model.input_format")
    for split in ("train", "test") if train else ("test",):
        key = f"dataloader.{split}.mapper"
        mapper = lazy_config_value(cfg, key)
        if not isinstance(mapper, DictConfig):
            continue
        image_format = mapper.get("image_format")
        if isinstance(image_format, str):
            why = image_format_error(image_format, channels)
            if why:
                raise ValueError(f"{key}.image_format={image_format!r}: {why} (e.g. 'BGR', 'RGB')")
            if {image_format, input_format} == {"RGB", "BGR"}:
                # The yacs INPUT.FORMAT sets both; here one changed alone trains on channels in the
                # other order than model.pixel_mean / pixel_std (and a checkpoint's first conv) expect.
                warnings.warn(f"{key}.image_format={image_format!r} is not model.input_format={input_format!r}: "
                              "the images reach the model in the other channel order than its pixel_mean, "
                              "pixel_std and starting weights are written for; change both (and pixel_mean, "
                              "pixel_std), as detectron2's RGB configs do", UserWarning, stacklevel=2)
                break  # (the test mapper's copies the training mapper's)
        for node_key, node in _nodes_building(mapper.get("augmentations"), f"{key}.augmentations",
                                              "ResizeShortestEdge"):
            short_edge, max_size = node.get("short_edge_length"), node.get("max_size", sys.maxsize)
            short_edge = _plain(short_edge, resolve=True)  # a list's interpolations, as the build resolves them
            why = resize_error(short_edge, max_size) if short_edge is not None else ""
            if why:
                raise ValueError(f"{node_key}: short_edge_length={short_edge!r}, max_size={max_size!r}: {why}")


def _plain(value: Any, resolve: bool = False) -> Any:
    return OmegaConf.to_container(value, resolve=resolve) if isinstance(value, (DictConfig, ListConfig)) else value


def check_lazy_head_inputs(cfg: DictConfig, model: torch.nn.Module, train: bool = True) -> None:
    """What the yacs builder derives and a LazyConfig gives by hand, checked against what it
    derives from: a RetinaNet head's `model.head.input_shape` against the levels it runs on
    (`model.head_in_features`) where its BN statistics are per level (one BN per entry),
    its `model.head.num_anchors` against the anchor generator's anchors per location and
    the generator's strides against those levels' (an R-CNN's RPN's alike), an
    FPN top block's `model.backbone.top_block.in_channels` against the feature its P6
    conv reads, `model.sem_seg_head.input_shape` against the backbone's output_shape()
    (build_model passes the latter), and with `train` `model.sem_seg_head.train_size`
    against the training crop (INPUT.CROP.SIZE there). A DeepLab head sizes its ASPP
    image-pooling kernel from both, so a `model.backbone.stages.res5_dilation=...` or crop
    override alone would otherwise train another model than the .yaml's, silently (local
    instead of image pooling). ValueError naming the key."""
    from detectron2.layers import CycleBatchNormList
    from detectron2.modeling.meta_arch.retinanet import RetinaNetHead
    from detectron2.modeling.proposal_generator import RPN

    from ..modeling.retinanet import head_levels_error

    head, levels = getattr(model, "head", None), getattr(model, "head_in_features", None)
    if isinstance(head, RetinaNetHead) and levels is not None:
        per_level = any(isinstance(module, CycleBatchNormList) for module in head.modules())
        error = head_levels_error(per_level, head._num_features, levels)
        if error is not None:
            raise ValueError(f"model.head.input_shape (against model.head_in_features): {error}")
        if head._num_features != len(levels) and type(head).forward.__module__.startswith("detectron2."):
            # detectron2's own RetinaNetHead / FCOSHead forward asserts one entry per level, bare,
            # at the first step (DropBlockRetinaNetHead runs on any count but with per-level BN).
            raise ValueError(
                f"model.head.input_shape: {head._num_features} ShapeSpec(s) for the {len(levels)} levels "
                f"model.head_in_features={list(levels)}: detectron2's {type(head).__name__} asserts one per "
                f"level at the first step; give one per level, e.g. [ShapeSpec(channels=256)] * {len(levels)}")
    backbone = getattr(model, "backbone", None)
    shapes = backbone.output_shape() if hasattr(backbone, "output_shape") else {}
    if isinstance(head, RetinaNetHead):
        bbox_pred = getattr(head, "bbox_pred", None)  # 4 box deltas per anchor
        _check_anchor_count(bbox_pred.out_channels // 4 if isinstance(bbox_pred, torch.nn.Conv2d) else None,
                            getattr(model, "anchor_generator", None), "model.head.num_anchors", "model.anchor_generator")
        _check_anchor_strides(cfg, getattr(model, "anchor_generator", None), levels, shapes,
                              "model.anchor_generator", "model.head_in_features")
    rpn = getattr(model, "proposal_generator", None)
    if isinstance(rpn, RPN):
        logits = getattr(rpn.rpn_head, "objectness_logits", None)  # one per anchor
        key = "model.proposal_generator"
        _check_anchor_count(logits.out_channels if isinstance(logits, torch.nn.Conv2d) else None,
                            rpn.anchor_generator, f"{key}.head.num_anchors", f"{key}.anchor_generator")
        _check_anchor_strides(cfg, rpn.anchor_generator, rpn.in_features, shapes, f"{key}.anchor_generator",
                              f"{key}.in_features")
    _check_roi_head_features(getattr(model, "roi_heads", None), shapes)
    _check_head_input_channels(model, shapes)
    _check_roi_predictor_inputs(getattr(model, "roi_heads", None), shapes)
    _check_resnet_stem(model)
    _check_top_block_input(backbone)
    shapes = OmegaConf.select(cfg, "model.sem_seg_head.input_shape", default=None)
    if isinstance(shapes, DictConfig) and backbone is not None and hasattr(backbone, "output_shape"):
        actual = backbone.output_shape()
        for name in shapes:
            given, have = instantiate(shapes[name]), actual.get(name)
            if have is not None and (given.channels, given.stride) != (have.channels, have.stride):
                raise ValueError(
                    f"model.sem_seg_head.input_shape.{name}: channels={given.channels}, stride={given.stride}, "
                    f"but the backbone's {name} has channels={have.channels}, stride={have.stride} "
                    "(set it to match, e.g. after a res4_dilation / res5_dilation override)")
    size = OmegaConf.select(cfg, "model.sem_seg_head.train_size", default=None)
    # (the training mapper's: an evaluation does not read it)
    augmentations = lazy_config_value(cfg, "dataloader.train.mapper.augmentations") if train else None
    if train and size is not None and isinstance(augmentations, ListConfig):
        for index, aug in enumerate(augmentations):
            if not (isinstance(aug, DictConfig) and "crop_type" in aug):
                continue  # not a crop
            if aug.crop_type != "absolute":
                # detectron2's yacs DeepLab head asserts it (INPUT.CROP.TYPE): crops of a size
                # relative to each image have no one size to size the pooling from.
                raise ValueError(
                    f"model.sem_seg_head.train_size={list(size)}: the training crop "
                    f"dataloader.train.mapper.augmentations.{index}.crop_type={aug.crop_type!r} is not of one "
                    "size (the ASPP's image pooling is sized from train_size): use crop_type 'absolute' with "
                    "crop_size=train_size, or train_size=null (global pooling)")
            if "crop_size" in aug and list(aug.crop_size) != list(size):
                raise ValueError(
                    f"model.sem_seg_head.train_size={list(size)}: not the training crop "
                    f"dataloader.train.mapper.augmentations.{index}.crop_size={list(aug.crop_size)} "
                    "(the ASPP's image pooling is sized from it: set both)")


def _check_anchor_count(predicted: Optional[int], anchor_generator: Any, head_key: str, generator_key: str) -> None:
    """A head's anchors per location (`head_key`, e.g. model.head.num_anchors, given by hand;
    `predicted`: what its output convs predict, None where not known) against the anchor
    generator's (sizes x aspect_ratios per level, from which the yacs builder derives it):
    `model.anchor_generator.aspect_ratios=[1.0]` alone failed at the first step ("IndexError:
    The shape of the mask [2, 582] ... does not match ... [2, 1746, 3]"), naming no key.
    ValueError naming it."""
    per_cell = getattr(anchor_generator, "num_cell_anchors", None)
    if predicted is None or not per_cell or set(per_cell) == {predicted}:
        return
    raise ValueError(
        f"{head_key}={predicted}: the anchor generator ({generator_key}: sizes x aspect_ratios per level) gives "
        + (f"{per_cell[0]}" if len(set(per_cell)) == 1 else f"{', '.join(map(str, per_cell))} (per level)")
        + " anchors per location"
        + (f": set {head_key}={per_cell[0]}" if len(set(per_cell)) == 1 else
           ": the head predicts one count for every level, so give every level as many"))


def _check_anchor_strides(cfg: DictConfig, anchor_generator: Any, levels: Any, shapes: Dict[str, Any],
                          generator_key: str, levels_key: str) -> None:
    """The anchor generator's `strides` (given by hand; the yacs builder takes them from the
    features) against the strides of the levels it is run on: detectron2 pairs them in
    order and drops what is left over, so `model.head_in_features=[p4,p5,p6,p7]` alone placed
    p4's anchors at stride 8 on a stride-16 map (a quarter of the image), silently. Strides
    left over after the levels' own, in order, are accepted: detectron2 drops them
    (`head_in_features=[p3,p4,p5]` with the five strides of P3-P7). A level the backbone does
    not give (built without complaint, a KeyError at the first forward) is refused too.
    ValueError naming the key. The generator's `sizes`, one entry per level, giving a
    coarser level smaller anchors than a finer one warn (warn_anchor_sizes_order), as the
    yacs check does."""
    strides = getattr(anchor_generator, "strides", None)
    if strides is None or levels is None or not shapes:
        return
    # The model is built without a missing one, and fails at its first forward (a KeyError).
    levels = check_feature_names(levels_key, levels, list(shapes), "the backbone's outputs", "level")
    have = [shapes[level].stride for level in levels]
    if list(strides)[:len(have)] != have:
        raise ValueError(
            f"{generator_key}.strides={list(strides)}: the levels {levels_key}={list(levels)} have strides {have} "
            "(the generator places each level's anchors at its stride, pairing them in order, and drops "
            f"extra ones): set {generator_key}.strides={have}, with one {generator_key}.sizes entry per level")
    from detectron2.modeling.anchor_generator import DefaultAnchorGenerator, RotatedAnchorGenerator

    if isinstance(anchor_generator, (DefaultAnchorGenerator, RotatedAnchorGenerator)):
        sizes = _plain(lazy_config_value(cfg, f"{generator_key}.sizes"), resolve=True)
        warn_anchor_sizes_order(levels_key, levels, f"{generator_key}.sizes", sizes, have)


# An R-CNN ROI head's features and the pooler given by hand for them (StandardROIHeads').
_ROI_HEAD_POOLERS = (("box_in_features", "box_pooler"), ("mask_in_features", "mask_pooler"),
                     ("keypoint_in_features", "keypoint_pooler"))


def _check_roi_head_features(roi_heads: Any, shapes: Dict[str, Any]) -> None:
    """An R-CNN's ROI-head features (`model.roi_heads.box_in_features`, `mask_...`,
    `keypoint_...`; a C4 head's `in_features`) against the backbone's outputs, and the
    `scales` of the pooler given by hand for them (the yacs builder takes them from the
    features) against their strides: the head was built with a level the backbone lacks and
    failed at the first step with a bare KeyError (e.g. 'p7'), after data loading, and the
    pooler asserted one scale per feature there too; with another level's scale (p3..p6 with
    the p2..p5 config's scales) it pooled each box from the wrong place, silently.
    ValueError naming the key."""
    from detectron2.modeling.roi_heads import Res5ROIHeads, ROIHeads

    if not isinstance(roi_heads, ROIHeads) or not shapes:
        return
    # StandardROIHeads keeps box_in_features as `in_features` too: named by its own key.
    pairs = (("in_features", "pooler"),) if isinstance(roi_heads, Res5ROIHeads) else _ROI_HEAD_POOLERS
    for features_name, pooler_name in pairs:
        features = getattr(roi_heads, features_name, None)
        if features is None:
            continue
        key = f"model.roi_heads.{features_name}"
        features = check_feature_names(key, features, list(shapes), "the backbone's outputs")
        poolers = getattr(getattr(roi_heads, pooler_name, None), "level_poolers", None)
        scales = [getattr(pooler, "spatial_scale", None) for pooler in poolers or []]
        if poolers is None or None in scales:
            continue  # a pooler of another kind: not looked into
        # The features' pyramid first, as the yacs check: for features listed coarsest first the
        # scales that would fit them (coarsest first too) are what the pooler cannot build.
        check_pooler_levels(key, features, shapes, f"with model.roi_heads.{pooler_name}.scales in their order")
        strides = [shapes[f].stride for f in features]
        if len(scales) != len(strides) or not all(math.isclose(a, 1.0 / b) for a, b in zip(scales, strides)):
            raise ValueError(
                f"model.roi_heads.{pooler_name}.scales={scales}: the features {key}={features} have strides "
                f"{strides} (the pooler takes one scale, 1/stride, per feature, in order): set "
                f"model.roi_heads.{pooler_name}.scales=[{', '.join(f'1.0 / {b}' for b in strides)}]")


# The layers a head's features can enter first (a mask head without convs starts at its deconv).
_CONVS = (torch.nn.Conv2d, torch.nn.ConvTranspose2d)


def _first_layer(head: torch.nn.Module, kinds: Tuple[type, ...]) -> Optional[torch.nn.Module]:
    """The first registered submodule of `head` of one of `kinds`: for detectron2's heads, the
    layer their features enter."""
    return next((module for module in head.modules() if isinstance(module, kinds)), None)


def _check_head_input_channels(model: torch.nn.Module, shapes: Dict[str, Any]) -> None:
    """The channels a head's first layer takes, which a LazyConfig states by hand
    (`model.head.input_shape`, `model.proposal_generator.head.in_channels`,
    `model.roi_heads.box_head.input_shape`, ...; the yacs builder reads them from the
    backbone), against those of the features it runs on: a `model.backbone.out_channels`
    override alone, or a backbone's channels not copied to the R-CNN's heads, failed at the
    first step in a conv or matmul ("expected input[2, 128, 8, 8] to have 64 channels"),
    after the earlier run was moved aside, naming no key. ValueError naming it."""
    from detectron2.modeling.meta_arch.retinanet import RetinaNetHead
    from detectron2.modeling.proposal_generator import RPN
    from detectron2.modeling.proposal_generator.rpn import StandardRPNHead
    from detectron2.modeling.roi_heads import (
        FastRCNNConvFCHead,
        KRCNNConvDeconvUpsampleHead,
        MaskRCNNConvUpsampleHead,
        Res5ROIHeads,
        ROIHeads,
    )

    # detectron2's heads (and subclasses, the project's among them), whose first registered
    # conv or linear layer is the one the features enter; a head of the user's own may
    # register its layers in another order.
    known = (RetinaNetHead, StandardRPNHead, FastRCNNConvFCHead, MaskRCNNConvUpsampleHead, KRCNNConvDeconvUpsampleHead)

    heads = [(getattr(model, "head", None), getattr(model, "head_in_features", None), "model.head.input_shape", None)]
    rpn = getattr(model, "proposal_generator", None)
    if isinstance(rpn, RPN):
        heads.append((rpn.rpn_head, rpn.in_features, "model.proposal_generator.head.in_channels", None))
    roi_heads = getattr(model, "roi_heads", None)
    if isinstance(roi_heads, ROIHeads) and not isinstance(roi_heads, Res5ROIHeads):
        for (features_name, pooler_name), head_name in zip(_ROI_HEAD_POOLERS, ("box_head", "mask_head", "keypoint_head")):
            pooler = getattr(roi_heads, pooler_name, None)
            heads.append((getattr(roi_heads, head_name, None), getattr(roi_heads, features_name, None),
                          f"model.roi_heads.{head_name}.input_shape", getattr(pooler, "output_size", None)))
    for head, features, key, pooled in heads:
        if not isinstance(head, known) or not features or any(f not in shapes for f in features):
            continue
        channels = {shapes[f].channels for f in features}
        layer = _first_layer(head, _CONVS + (torch.nn.Linear,))
        if len(channels) != 1 or layer is None:
            continue  # features of several widths: detectron2's own assertion names them
        (have,) = channels
        if isinstance(layer, _CONVS) and layer.in_channels != have:
            raise ValueError(
                f"{key}: the head's first conv takes {layer.in_channels} channels, but the features it runs on, "
                f"{list(features)}, have {have}: set its channels to {have} (the backbone's, which the yacs "
                "builder copies)")
        if isinstance(layer, torch.nn.Linear) and pooled is not None and layer.in_features != have * pooled[0] * pooled[1]:
            # a head of FC layers only: it takes the pooled features flattened
            raise ValueError(
                f"{key}: the head's first layer takes {layer.in_features} values, but the features it runs on, "
                f"{list(features)}, pooled to {pooled[0]}x{pooled[1]}, give {have * pooled[0] * pooled[1]}: set it "
                f"to channels={have}, height={pooled[0]}, width={pooled[1]} (the backbone's channels and the "
                "pooler's output_size, which the yacs builder copies)")


def _check_roi_predictor_inputs(roi_heads: Any, shapes: Dict[str, Any]) -> None:
    """What an R-CNN's ROI heads hand on inside themselves, which a LazyConfig states by hand
    (the yacs builder reads each from the part before it), against what that part gives: a
    box predictor's `input_shape` against its box head's output (`box_head.fc_dims=[512]`
    alone), a C4 head's `res5.in_channels` against the backbone's feature and the box
    predictor's and mask head's `input_shape` against res5's `out_channels`. Each failed at
    the first step in a matmul or conv ("mat1 and mat2 shapes cannot be multiplied"), naming
    no key. ValueError naming it."""
    from detectron2.modeling.roi_heads import FastRCNNConvFCHead, Res5ROIHeads, ROIHeads

    if not isinstance(roi_heads, ROIHeads):
        return
    key = "model.roi_heads"
    checks = []  # (key, channels the layer takes, channels it is given, what gives them)
    if isinstance(roi_heads, Res5ROIHeads):
        blocks = list(getattr(roi_heads, "res5", None) or [])
        first, last = (blocks[0], blocks[-1]) if blocks else (None, None)
        for i, block in enumerate(blocks):
            # detectron2's BottleneckBlock / BasicBlock build their shortcut conv (which strides
            # with the block) only where in_channels != out_channels: a block that strides
            # without one adds its strided output to its unstrided input, a size mismatch at
            # the first step ("The size of tensor a (7) must match the size of tensor b (14)").
            if getattr(block, "stride", 1) != 1 and getattr(block, "shortcut", 0) is None:
                raise ValueError(
                    f"{key}.res5.out_channels={block.out_channels}: equal to its in_channels, so detectron2's "
                    f"{type(block).__name__} builds no shortcut conv for block {i}, which strides by {block.stride} "
                    f"({key}.res5.stride_per_block): the residual sum fails at the first step; give res5 other "
                    f"out_channels than in_channels (configs/common/models/mask_rcnn_c4.py: 1024 -> 2048), "
                    "with the box predictor's and mask head's input_shape channels to match")
        feature = (roi_heads.in_features or [None])[0]
        if isinstance(getattr(first, "in_channels", None), int) and feature in shapes:
            checks.append((f"{key}.res5.in_channels", first.in_channels, shapes[feature].channels,
                           f"the backbone's {feature} ({key}.in_features)"))
        out = getattr(last, "out_channels", None)
        if isinstance(out, int):
            predictor = getattr(getattr(roi_heads, "box_predictor", None), "cls_score", None)
            if isinstance(predictor, torch.nn.Linear):  # on res5's output, averaged to 1x1
                checks.append((f"{key}.box_predictor.input_shape", predictor.in_features, out,
                               f"{key}.res5 (its out_channels)"))
            mask_head = getattr(roi_heads, "mask_head", None)
            layer = _first_layer(mask_head, _CONVS) if isinstance(mask_head, torch.nn.Module) else None
            if layer is not None:
                checks.append((f"{key}.mask_head.input_shape", layer.in_channels, out, f"{key}.res5 (its out_channels)"))
    else:
        box_heads, predictors = getattr(roi_heads, "box_head", None), getattr(roi_heads, "box_predictor", None)
        if isinstance(box_heads, torch.nn.ModuleList) and isinstance(predictors, torch.nn.ModuleList):
            pairs = [(f"{key}.box_heads.{i}", h, f"{key}.box_predictors.{i}", p)  # CascadeROIHeads' stages
                     for i, (h, p) in enumerate(zip(box_heads, predictors))]
        else:
            pairs = [(f"{key}.box_head", box_heads, f"{key}.box_predictor", predictors)]
        for head_key, head, predictor_key, predictor in pairs:
            if not isinstance(head, FastRCNNConvFCHead):
                continue  # a head of the user's own is left to its own output_shape
            shape = getattr(head, "output_shape", None)  # a property of detectron2's box heads
            shape = shape() if callable(shape) else shape
            cls_score = getattr(predictor, "cls_score", None)
            if shape is None or not isinstance(cls_score, torch.nn.Linear) or shape.channels is None:
                continue
            given = shape.channels * (shape.height or 1) * (shape.width or 1)  # flattened
            checks.append((f"{predictor_key}.input_shape", cls_score.in_features, given,
                           f"{head_key} (its output_shape)",
                           f"channels={shape.channels}, height={shape.height}, width={shape.width}"
                           if shape.height or shape.width else None))
    for name, takes, given, source, *written in checks:
        if takes != given:
            to = written[0] if written and written[0] else f"channels={given}"
            raise ValueError(f"{name}: the layer it builds takes {takes} values, but {source} gives {given}: "
                             f"set it to {to} (the yacs builder reads them from there)")


def _check_resnet_stem(model: torch.nn.Module) -> None:
    """A detectron2 ResNet's stem (`model.backbone.stem`, or `.bottom_up.stem` under an FPN)
    against what is around it, both stated by hand in a LazyConfig: its `in_channels` against
    the image channels (one per `model.pixel_mean` value) and its `out_channels` against its
    first stage's input (`ResNet.make_default_stages` starts res2 at 64 channels). A stem
    override alone failed at the first step in a conv, naming no key. ValueError naming it."""
    from detectron2.modeling.backbone import ResNet

    backbone = getattr(model, "backbone", None)
    for key, resnet in (("model.backbone", backbone), ("model.backbone.bottom_up", getattr(backbone, "bottom_up", None))):
        if not isinstance(resnet, ResNet):
            continue
        stem, stages = getattr(resnet, "stem", None), getattr(resnet, "stages", None)
        takes = getattr(stem, "in_channels", None)
        mean = getattr(model, "pixel_mean", None)
        if isinstance(takes, int) and isinstance(mean, torch.Tensor) and mean.dim() and mean.shape[0] not in (1, takes):
            raise ValueError(f"{key}.stem.in_channels={takes}: the images have {mean.shape[0]} channels "
                             f"(one per model.pixel_mean value): set it to {mean.shape[0]}")
        gives = getattr(stem, "out_channels", None)
        first = next(iter(stages[0]), None) if stages else None
        if isinstance(gives, int) and isinstance(getattr(first, "in_channels", None), int) and first.in_channels != gives:
            raise ValueError(f"{key}.stem.out_channels={gives}: its first stage ({key}.stages, "
                             f"{resnet.stage_names[0] if getattr(resnet, 'stage_names', None) else 'res2'}) takes "
                             f"{first.in_channels} channels: set it to {first.in_channels}, or {key}.stages.in_channels="
                             f"{gives} with make_dropblock_resnet_stages (detectron2's ResNet.make_default_stages "
                             "starts at 64)")


def _check_top_block_input(backbone: Any) -> None:
    """An FPN's top block that reads a feature the FPN does not have (detectron2's FPN
    builds it and fails at the first forward), and a P6/P7 top block against the feature it
    reads (`in_feature`: the bottom-up output of that name, else the FPN's own output): its
    P6 conv's `in_channels`, which the yacs builder reads from the ResNet and a LazyConfig
    states by hand, so a `model.backbone.bottom_up.stages.depth` override alone
    (ResNet-18/34 res5: 512 channels, deeper: 2048) failed at the first step, in a conv,
    naming no key. ValueError naming the keys."""
    from detectron2.modeling import FPN

    from ..modeling.fpn import top_block_input_error

    error = top_block_input_error(backbone) if isinstance(backbone, FPN) else None
    if error is not None:
        raise ValueError(f"model.backbone.in_features={list(backbone.in_features)}, model.backbone.top_block: "
                         f"the FPN's {error}; detectron2's FPN would fail at the first forward")
    top_block = getattr(backbone, "top_block", None)
    p6, feature = getattr(top_block, "p6", None), getattr(top_block, "in_feature", None)
    bottom_up = getattr(backbone, "bottom_up", None)
    if not isinstance(p6, torch.nn.Conv2d) or not hasattr(bottom_up, "output_shape"):
        return
    bottom_up_shapes = bottom_up.output_shape()
    if feature in bottom_up_shapes:
        have, where = bottom_up_shapes[feature].channels, f"model.backbone.bottom_up's {feature}"
    elif feature in backbone.output_shape():
        have, where = backbone.output_shape()[feature].channels, f"the FPN's {feature}"
    else:
        return
    if p6.in_channels != have:
        raise ValueError(
            f"model.backbone.top_block.in_channels={p6.in_channels}: its P6 conv reads {where} "
            f"(in_feature={feature!r}), which has {have} channels: set it to {have} (e.g. after a "
            "model.backbone.bottom_up.stages.depth override: res5 has 512 channels in ResNet-18/34, 2048 deeper)")


def _is_target(node: Any, name: str) -> bool:
    """Whether the config node builds `name` (its _target_ the object, or its dotted path
    as a saved config.yaml has it)."""
    return isinstance(node, DictConfig) and "_target_" in node and _target_name(node).rsplit(".", 1)[-1] == name


def _nodes_building(node: Any, key: str, name: str) -> Iterator[Tuple[str, DictConfig]]:
    """(dotted key, node) of every node at or under `node` (at `key`) that builds `name`;
    interpolations (`"${dropblock}"`) are not followed: they are copies of another key."""
    return ((k, n) for k, n in _target_nodes(node, key) if _is_target(n, name))


def _target_nodes(node: Any, key: str) -> Iterator[Tuple[str, DictConfig]]:
    """(dotted key, node) of every node with a `_target_` at or under `node` (at `key`),
    parents first; interpolations are not followed (copies of another key)."""
    if isinstance(node, DictConfig) and "_target_" in node:
        yield key, node
    if isinstance(node, (DictConfig, ListConfig)):
        for child_key, child, interpolation in _children(node, key):
            if not interpolation:
                yield from _target_nodes(child, child_key)


def check_lazy_model_values(cfg: DictConfig) -> None:
    """The values given to detectron2's heads and their parts in `model` that it builds and
    then fails on at the first step or trains or evaluates on silently wrong, judged as the
    yacs MODEL keys are (config_checks.check_model_values): a Matcher's thresholds and
    labels, a Box2BoxTransform's weights, DefaultAnchorGenerator's (and RotatedAnchorGenerator's)
    sizes, aspect ratios and offset, an ROIPooler's output size and type (ROIAlignRotated only under RROIHeads, as
    the yacs ROI_HEADS.NAME), a RetinaNet's focal loss, box loss and
    test-time thresholds and limits, an RPN's sampler, top-k, NMS threshold and box loss,
    the ROI heads' sampler, FastRCNNOutputLayers' test-time values and box loss, the layer
    widths of the box, mask and keypoint heads, and a semantic segmentation head's loss weight and
    norm. Only arguments the config gives (the defaults are detectron2's own), read as the
    build reads them: through interpolations (`thresholds="${...}"`, a whole node
    `proposal_matcher="${matcher}"`), named by the model's key and the key the value is
    written at. Runs before the meta build, where some of them are asserted naming no key.
    ValueError naming the key; for an interpolation in the model that does not resolve
    too (:func:`_built_nodes`)."""
    raw = cfg._get_node("model")
    if raw is None:
        return
    via = f"model={raw._value()}" if raw._is_interpolation() else ""
    for key, node, ancestors, node_via in _built_nodes(lazy_config_value(cfg, "model"), "model", [], via, True):
        try:
            _check_model_node_values(key, node, ancestors)
        except ValueError as error:
            raise ValueError(f"{error}{_written_at(str(error), key, node, node_via)}") from None


def _built_nodes(node: Any, key: str, ancestors: List[Tuple[str, DictConfig]], via: str, built: bool
                 ) -> Iterator[Tuple[str, DictConfig, List[Tuple[str, DictConfig]], str]]:
    """(key, node, its ancestors' (key, node), the interpolation it is read through, e.g.
    `model.roi_heads.proposal_matcher=${matcher}`, or '') of every node with a `_target_` at
    or under `node` (at `key`), parents first, into interpolations: the build of `node` (the
    model, a loader, the evaluator, the optimizer, ...) builds the node an interpolation
    reads, which may be elsewhere in the config. `built`: whether detectron2's instantiate
    resolves `node`'s children (those of a `_target_` node or a list, all the way from the
    top; a plain dict goes to its component as it is). There an interpolation that does not
    resolve is refused naming the key (ValueError,
    :func:`_unresolved_message`): OmegaConf's error at the build named it only on
    a line of its own."""
    if isinstance(node, DictConfig) and "_target_" in node:
        yield key, node, ancestors, via
    if not isinstance(node, (DictConfig, ListConfig)):
        return
    built = built and (isinstance(node, ListConfig) or "_target_" in node)
    inner = ancestors + [(key, node)]
    for child_key, child, interpolation in _children(node, key, _refuse_unresolved if built else _left_out):
        if any(child is parent for _, parent in inner):
            continue  # a node that reads itself: instantiate's own recursion error names it
        yield from _built_nodes(child, child_key, inner,
                                via or (f"{child_key}={interpolation}" if interpolation else ""), built)


def _left_out(key: str, interpolation: str, error: Exception) -> None:
    """_children's `unresolved` callback where nothing resolves the child (a plain dict's
    entry, passed on as it is): not looked into; whether it is read is its component's."""


def _written_at(message: str, key: str, node: DictConfig, via: str) -> str:
    """For an error naming an argument of the node at `key` (`{key}.{name}=...`) whose value
    the config writes elsewhere, read through an interpolation (the argument's own, or
    `via`, the node's): where it is written, '; it is matcher.labels, read through
    model.roi_heads.proposal_matcher=${matcher}'; '' otherwise."""
    named = message.split("=", 1)[0]
    if not named.startswith(key + "."):
        return ""
    name = named[len(key) + 1:].split(".")[0]
    raw = node._get_node(name)
    if raw is None:
        return ""
    through = via or (f"{key}.{name}={raw._value()}" if raw._is_interpolation() else "")
    try:
        target = raw._dereference_node() if raw._is_interpolation() else raw
        # Its parent's name for it: a list entry's own _get_full_key(None) is 'topks0' for
        # topks[0]; a resolver's value (${oc.create:...}) is at no key.
        parent, at = target._get_parent(), target._key()
        written = parent._get_full_key(at) if parent is not None and at is not None else ""
    except OmegaConfBaseException:
        return ""
    written = re.sub(r"\[(\d+)\]", r".\1", str(written))  # OmegaConf's a[0].b as the project's a.0.b
    return f"; it is {written}, read through {through}" if through and written and written != f"{key}.{name}" else ""


def _check_pooler_scales_order(key: str, scales: Any, ancestors: List[Tuple[str, DictConfig]]) -> None:
    """An ROIPooler's `scales` given coarsest first (1/32 ... 1/4), with its features in the
    same order (p5 ... p2): detectron2's pooler asserted "Sizes of input featuremaps do not form
    a pyramid!" at the build, naming neither key, and the check of the built model that names
    the features never ran. ValueError naming the features' key too (where the pooler is an
    ROI head's `*_pooler`, whose features are its `*_in_features`)."""
    if (not isinstance(scales, (list, tuple)) or len(scales) < 2
            or not all(is_real_number(scale) and scale > 0 for scale in scales) or scales[0] >= scales[-1]):
        return
    pooler = key.rsplit(".", 1)[-1]
    features = dict((p, f) for f, p in _ROI_HEAD_POOLERS + (("in_features", "pooler"),)).get(pooler)
    parent_key, parent = ancestors[-1] if ancestors else ("", None)
    try:
        given = _plain(parent.get(features), resolve=True) if features and isinstance(parent, DictConfig) else None
    except OmegaConfBaseException:
        given = None  # an interpolation that does not resolve: refused at its own key
    named = (f" with {parent_key}.{features}={given}" if isinstance(given, list)
             else f" and {parent_key}.{features}" if features and parent_key else "")
    raise ValueError(f"{key}.scales={list(scales)}{named}: coarsest level first, where detectron2's ROIPooler "
                     "takes a pyramid finest first (the largest scale, 1/4 for p2, first): list the features "
                     "finest first and their scales in the same order")


def _check_model_node_values(key: str, node: DictConfig, ancestors: List[Tuple[str, DictConfig]]) -> None:
    """check_lazy_model_values' judgement of the node at `key` (with its `ancestors`, by
    key), by its target."""
    from detectron2.modeling import RetinaNet
    from detectron2.modeling.anchor_generator import DefaultAnchorGenerator, RotatedAnchorGenerator
    from detectron2.modeling.box_regression import Box2BoxTransform, Box2BoxTransformRotated
    from detectron2.modeling.matcher import Matcher
    from detectron2.modeling.poolers import ROIPooler
    from detectron2.modeling.proposal_generator import RPN
    from detectron2.modeling.roi_heads import (
        FastRCNNConvFCHead,
        FastRCNNOutputLayers,
        KRCNNConvDeconvUpsampleHead,
        MaskRCNNConvUpsampleHead,
        ROIHeads,
    )

    try:
        target = _located(node.get("_target_"))
    except OmegaConfBaseException:
        return  # an interpolated _target_ that does not resolve: the build names it
    if not isinstance(target, type):
        return
    given: Dict[str, Any] = {}
    for name in node.keys():
        if name == "_target_" or node._get_node(name)._is_missing():
            continue
        try:
            # Plain values, as the build passes them: output_size=[7, 7] is a list, not a ListConfig.
            given[name] = _plain(node[name], resolve=True)
        except OmegaConfBaseException:
            continue  # an interpolation that does not resolve: refused at its own key by the walk

    def check(name: str, judge: Callable[..., None], *args: Any) -> None:
        if name in given:
            judge(f"{key}.{name}", given[name], *args)

    if issubclass(target, Matcher) and {"thresholds", "labels"} <= set(given):
        check_matcher_values(f"{key}.thresholds", given["thresholds"], f"{key}.labels", given["labels"])
    elif issubclass(target, Box2BoxTransform):
        check("weights", check_box_weights)
    elif issubclass(target, Box2BoxTransformRotated):
        check("weights", check_box_weights, 5)
    elif issubclass(target, (DefaultAnchorGenerator, RotatedAnchorGenerator)):  # the same sizes, ratios, offset
        check("sizes", check_anchor_sizes)
        check("aspect_ratios", check_anchor_aspect_ratios)
        check("offset", check_anchor_offset)
    elif issubclass(target, ROIPooler):
        check("output_size", check_pooler_resolution)
        check("pooler_type", check_pooler_type, *_pooler_types(ancestors, given.get("pooler_type")))
        _check_pooler_scales_order(key, given.get("scales"), ancestors)
    elif issubclass(target, RetinaNet):
        check("focal_loss_gamma", check_focal_loss_gamma)
        check("focal_loss_alpha", check_focal_loss_alpha)
        check("box_reg_loss_type", check_box_loss_type, "retinanet")
        check("test_score_thresh", check_score_threshold)
        check("test_nms_thresh", check_nms_threshold)
        check("test_topk_candidates", check_detections_kept)
        check("max_detections_per_image", check_detections_kept)
    elif issubclass(target, RPN):
        check("batch_size_per_image", check_sample_count)
        check("positive_fraction", check_positive_fraction)
        check("box_reg_loss_type", check_box_loss_type, "rpn")
        check("nms_thresh", check_nms_threshold)
        for name in ("pre_nms_topk", "post_nms_topk"):  # (training, test)
            for i, count in enumerate(given.get(name, ())):
                check_proposal_count(f"{key}.{name}.{i}", count)
    elif issubclass(target, ROIHeads):
        check("batch_size_per_image", check_sample_count)
        check("positive_fraction", check_positive_fraction)
    elif issubclass(target, FastRCNNOutputLayers):
        check("box_reg_loss_type", check_box_loss_type, "roi")
        check("test_score_thresh", check_score_threshold)
        check("test_nms_thresh", check_nms_threshold)
        check("test_topk_per_image", check_detections_kept)
        weight = given.get("loss_weight")
        if "loss_weight" in given and not isinstance(weight, (float, dict)):
            # detectron2 makes a float a weight per loss and reads anything else as a dict:
            # loss_weight=2 (or null) built and failed at the first step ("'int' object has no
            # attribute 'get'").
            raise ValueError(f"{key}.loss_weight={weight!r}: expected a float (one weight for both losses) or a "
                             "dict {'loss_cls': ..., 'loss_box_reg': ...}"
                             + (f"; write {float(weight)}" if is_real_number(weight) else ""))
    elif issubclass(target, (FastRCNNConvFCHead, MaskRCNNConvUpsampleHead, KRCNNConvDeconvUpsampleHead)):
        check_channels("", {f"{key}.{name}": given[name] for name in ("conv_dims", "fc_dims") if name in given})
    elif issubclass(target, _semantic_segmentation_heads()):
        check("loss_weight", check_loss_weight)
        check("norm", check_norm)


def _pooler_types(ancestors: List[Tuple[str, DictConfig]], pooler_type: Any) -> Tuple[Tuple[str, ...], str]:
    """(the pooler types, the context for check_pooler_type's message) for an ROIPooler under
    the `ancestors` (by key): under an ROI heads node, those of its boxes, as the yacs check
    of ROI_HEADS.NAME (config_checks._check_roi_box_head): detectron2 builds either kind and
    fails at the first step, asserting in the pooler's layer that the boxes have 6 columns
    (ROIAlignRotated: batch index, centre, size, angle) or 5 (the others: batch index,
    corners); elsewhere any of detectron2's."""
    from detectron2.modeling.roi_heads import ROIHeads, RROIHeads

    for heads_key, heads in reversed(ancestors):
        target = _located(heads.get("_target_"))
        if isinstance(target, type) and issubclass(target, ROIHeads):
            rotated = issubclass(target, RROIHeads)
            types = ("ROIAlignRotated",) if rotated else tuple(t for t in _POOLER_TYPES if t != "ROIAlignRotated")
            context = f" for {heads_key} ({target.__qualname__})"
            if pooler_type in _POOLER_TYPES and pooler_type not in types:
                context += (", whose proposals are rotated boxes: the others pool axis-aligned ones (detectron2 "
                            "failed at the first step, asserting boxes of 5 columns)" if rotated else
                            ", whose proposals are axis-aligned boxes: ROIAlignRotated pools rotated ones, RROIHeads' "
                            "(detectron2 failed at the first step, asserting boxes of 6 columns)")
            return types, context
    return _POOLER_TYPES, ""


# detectron2's ROIPooler types (ROIAlignRotated for rotated boxes).
_POOLER_TYPES = ("ROIAlign", "ROIAlignV2", "ROIPool", "ROIAlignRotated")


def _semantic_segmentation_heads() -> Tuple[type, ...]:
    from detectron2.modeling.meta_arch.semantic_seg import SemSegFPNHead
    from detectron2.projects.deeplab import DeepLabV3Head, DeepLabV3PlusHead

    return (SemSegFPNHead, DeepLabV3Head, DeepLabV3PlusHead)


def check_lazy_resnet_stages(cfg: DictConfig, model: torch.nn.Module) -> None:
    """Every `make_dropblock_resnet_stages` node with a `dropblock` against the ResNet the
    model has: detectron2's ResNet drops the stages after its last out_feature, so a
    `dropblock_stages` entry past it (res5 of a C4 R-CNN backbone, `out_features=["res4"]`,
    where res5 is the ROI head's) would give no DropBlock there, silently (the yacs configs
    refuse it: MODEL.DROPBLOCK.RESNET.STAGES). ValueError naming the key."""
    from detectron2.modeling.backbone import ResNet

    from ..modeling.resnet import DEFAULT_DROPBLOCK_STAGES
    for key, node in _nodes_building(cfg.model, "model", "make_dropblock_resnet_stages"):
        if node.get("dropblock") is None or "." not in key:
            continue
        parent_key = key.rsplit(".", 1)[0]
        try:
            resnet = model.get_submodule(parent_key[len("model."):] if parent_key != "model" else "")
        except AttributeError:
            continue
        if not isinstance(resnet, ResNet):
            continue
        stages = list(node.get("dropblock_stages") or ())
        if node.get("dropblock_stages") is None:  # not given: the paper's, with the dropblock
            stages = list(DEFAULT_DROPBLOCK_STAGES)
        built = set(resnet.stage_names)
        missing = [stage for stage in stages if stage not in built]
        if not missing:
            continue
        message = (f"{key}.dropblock_stages={stages}: {', '.join(missing)} not built: "
                   f"{parent_key}.out_features={list(resnet._out_features)} ends at "
                   f"{resnet.stage_names[-1]!r} (detectron2's ResNet drops the stages after its last "
                   "out_feature), so DropBlock there would regularize nothing; list only built stages "
                   f"(e.g. {[s for s in stages if s in built] or [resnet.stage_names[-1]]}, with one "
                   "stage_drop_scales entry each)")
        if hasattr(getattr(model, "roi_heads", None), "res5"):
            message += ("; in a C4 R-CNN res5 is the ROI head's (model.roi_heads.res5): for DropBlock there "
                        "set model.roi_heads.res5.block_class=DropBlockBottleneckBlock, "
                        "model.roi_heads.res5.dropblock=\"${dropblock}\" and "
                        "model.roi_heads.res5.dropblock_positions=[...]")
        raise ValueError(message)


def check_lazy_dropblock_positions(cfg: DictConfig) -> None:
    """Every model node that gives a `dropblock` to a component whose `dropblock_positions`
    default to none (DropBlockFPN; a res5 `ResNet.make_stage` with `block_class=
    DropBlockBottleneckBlock`, as a C4 R-CNN's ROI head; the segmentation heads) and leaves
    those positions out: the component then places no regularizer, and the run trained
    without DropBlock there, silently. An explicit `dropblock_positions=[]` turns the
    location off and is accepted. ValueError naming the key."""
    for key, node in _target_nodes(cfg.model, "model"):
        if "dropblock_positions" in node or "dropblock" not in node:
            continue
        try:
            if node.get("dropblock") is None:
                continue
        except OmegaConfBaseException:  # an unresolvable interpolation is named by other checks
            continue
        # ResNet.make_stage passes its other arguments to every block_class(...)
        target = _located(node.get("block_class") if _target_name(node).endswith("make_stage")
                          else node.get("_target_"))
        try:
            default = inspect.signature(target).parameters["dropblock_positions"].default
        except (TypeError, ValueError, KeyError):
            continue
        if default is inspect.Parameter.empty or len(default):
            continue
        name = getattr(target, "__name__", str(target))
        example = list(getattr(target, "_POSITIONS", ())) or "[...]"  # the blocks' positions
        raise ValueError(f"{key}.dropblock_positions is not given, so {name} places {key}.dropblock "
                         "nowhere and the run would train without DropBlock there: list the positions "
                         f"({key}.dropblock_positions={example}), or set {key}.dropblock=None (or "
                         f"{key}.dropblock_positions=[]) for none")


# (the ROI heads' flag, the DatasetMapper argument that loads the head's annotations (a key
# of ANNOTATION_FIELDS), the head)
_RCNN_HEAD_DATA = (("mask_on", "use_instance_mask", "mask_head"), ("keypoint_on", "use_keypoint", "keypoint_head"))


def rcnn_heads_needing_data(model: torch.nn.Module) -> Dict[str, str]:
    """{mapper argument: head key} of every R-CNN ROI head of `model` that trains on more
    than boxes (Mask / Keypoint R-CNN)."""
    roi_heads = getattr(unwrap_model(model), "roi_heads", None)
    return {argument: f"model.roi_heads.{head}"
            for flag, argument, head in _RCNN_HEAD_DATA if getattr(roi_heads, flag, False)}


def check_lazy_rcnn_mapper(cfg: DictConfig, model: torch.nn.Module) -> None:
    """A Mask (Keypoint) R-CNN whose `dataloader.train.mapper` (a detectron2 DatasetMapper)
    does not load the masks (keypoints): detectron2 fails at the first step with
    "Cannot find field 'gt_masks' in the given Instances!", naming no key. The yacs
    configs set the mapper's flag from MODEL.MASK_ON; a LazyConfig states it by hand
    (detectron2's configs/common/data/coco.py does, dropblock-det's RetinaNet
    coco_detection.py does not). ValueError naming the key."""
    from detectron2.data import DatasetMapper

    key = "dataloader.train.mapper"
    mapper = lazy_config_value(cfg, key)
    if not isinstance(mapper, DictConfig) or "_target_" not in mapper:
        return
    target = _located(mapper._target_)  # None where it cannot be found: instantiating it names that
    if not (isinstance(target, type) and issubclass(target, DatasetMapper)):
        return
    for argument, head in rcnn_heads_needing_data(model).items():
        what = ANNOTATION_FIELDS[argument][1]
        if not mapper.get(argument, False):
            raise ValueError(
                f"{key}.{argument}={mapper.get(argument, False)!r}, but the model's {head} trains on "
                f"{what}, which the mapper then does not load (detectron2 fails at the first step: "
                f"\"Cannot find field ... in the given Instances!\"): set {key}.{argument}=True, "
                "as detectron2's configs/common/data/coco.py does, or build the model without the head")


def check_lazy_rcnn_training_data(dataset: Any, model: torch.nn.Module, names: Sequence[str]) -> None:
    """The training items (dicts, as `get_detection_dataset_dicts` gives) against what the
    model's R-CNN heads train on: ValueError naming the head's key, the dataset and the
    first image whose (non-crowd) annotations lack the masks / keypoints
    (`missing_annotation_field`)."""
    needed = rcnn_heads_needing_data(model)
    if not needed or not isinstance(dataset, list):
        return
    for item in dataset:
        flag = missing_annotation_field(item, needed)
        if flag is not None:
            field, what = ANNOTATION_FIELDS[flag]
            raise ValueError(
                f"{needed[flag]} trains on {what}, but the annotations of "
                f"{item.get('file_name', 'a dataset item')} in dataloader.train.dataset.names="
                f"{list(names)} have no {field!r}: give the training loader a dataset with "
                f"{what}, or build the model without the head")


def _building(key: str, build):
    """build(); a ValueError naming `key` for what instantiating it raises (a value the
    component refuses, an unknown argument, an assertion)."""
    try:
        return build()
    except InterpolationResolutionError as e:
        # One in a plain dict its component resolves while it builds (optimizer.params.overrides):
        # the walk before the build does not look into those. OmegaConf's message named the
        # key only on a line of its own.
        node = getattr(e, "child_node", None)
        if not (getattr(e, "full_key", None) and node is not None and node._is_interpolation()):
            raise ValueError(f"{key}: {error_description(e)}") from None
        raise ValueError(_unresolved_message(e.full_key, node._value(), e)) from None
    except (ValueError, TypeError, AssertionError, KeyError) as e:
        raise ValueError(f"{key}: {error_description(e)}") from None


def _located(target: Any) -> Any:
    """A `_target_` as the object it names (a saved config.yaml names it by a dotted path);
    None where it cannot be found (instantiating it names the problem)."""
    if not isinstance(target, str):
        return target
    from detectron2.utils.registry import locate

    try:
        return locate(target)
    except Exception:  # noqa: BLE001 - locate raises ImportError, AttributeError, ...
        return None


def _arguments_error(node: DictConfig) -> str:
    """Why the node's arguments do not fit its `_target_`'s signature ('' when they do, or
    when the signature cannot be read): an argument it does not take, or a required one left
    out, or one left at '???' (a value the config leaves to the command line). instantiate
    would raise the TypeError, naming neither the node nor the key, or omegaconf's
    MissingMandatoryValue, when it builds the node (the test loader's and the evaluator's
    after the whole training)."""
    target = _located(node.get("_target_"))
    try:
        named, takes_any = _accepted_arguments(target)
    except (TypeError, ValueError):
        return ""
    left = [str(k) for k in node.keys() if k != "_target_" and node._get_node(k)._is_missing()]
    given = {str(k) for k in node.keys() if k != "_target_"}
    unknown = sorted(given - set(named)) if not takes_any else []
    missing = [name for name, p in named.items() if p.default is p.empty and name not in given
               and p.kind is not p.POSITIONAL_ONLY]
    problems = [f"no argument {name!r}" + (f" (did you mean {close[0]!r}?)" if close else "")
                for name in unknown for close in [difflib.get_close_matches(name, list(named), n=1)]]
    problems += [f"the argument {name!r} is left at '???', without a value (give it, e.g. on the command line)"
                 for name in left if name not in unknown]
    problems += [f"the required argument {name!r} is not given" for name in missing]
    return "; ".join(problems) + (f" (it takes {', '.join(named) or 'no arguments'})" if problems else "")


def check_lazy_train_sampler(cfg: DictConfig) -> None:
    """`dataloader.train.sampler`, which detectron2's build_detection_train_loader gets only
    once the training set is loaded (a failure came after train.output_dir was set up and the
    data read, naming no key): None or absent is the loader's default TrainingSampler;
    otherwise an `L(...)` node whose target, where it is a class, is a torch Sampler (the
    loader asserts it: a name, as the yacs DATALOADER.SAMPLER_TRAIN takes it, reached it as a
    string), and whose arguments fit its target, as do those of the `L(...)` nodes inside it
    (RepeatFactorTrainingSampler.repeat_factors_from_category_frequency's). A sampler of
    detectron2's own with nothing to build inside it (no dataset to read) is built, so a value
    it refuses (`size=0`, `subset_ratio=2`) is named too. A training loader other than
    detectron2's is not looked into. ValueError naming the key."""
    from detectron2.data import build_detection_train_loader

    key = "dataloader.train.sampler"
    loader = lazy_config_value(cfg, "dataloader.train")
    if not isinstance(loader, DictConfig) or _located(loader.get("_target_")) is not build_detection_train_loader:
        return
    try:
        sampler = lazy_config_value(cfg, key)
        OmegaConf.select(cfg, key, default=None, throw_on_missing=True)
    except OmegaConfBaseException as e:  # left at '???'
        raise ValueError(f"{key}: {e}") from None
    if sampler is None or isinstance(sampler, torch.utils.data.Sampler):
        return  # the default, or a sampler built in the config file: instantiate passes it on
    if not (isinstance(sampler, DictConfig) and "_target_" in sampler):
        raise ValueError(
            f"{key}={_plain(sampler)!r}: expected L(SamplerClass)(...), e.g. L(RepeatFactorTrainingSampler)("
            "repeat_factors=...) as detectron2's LVIS configs write it, or None for the default TrainingSampler "
            "(build_detection_train_loader asserts a torch Sampler, once the training set is loaded)")
    target = _located(sampler._target_)
    if target is None:
        raise ValueError(f"{key}._target_={sampler._target_!r}: not found (expected a sampler class)")
    if isinstance(target, type) and not issubclass(target, torch.utils.data.Sampler):
        raise ValueError(
            f"{key} builds a {target.__qualname__}, not a torch Sampler (build_detection_train_loader "
            "asserts one once the training set is loaded): use TrainingSampler, RepeatFactorTrainingSampler "
            "or RandomSubsetTrainingSampler from detectron2.data.samplers, or a Sampler of your own")
    try:
        _check_sampler_node(key, sampler, target)
    except OmegaConfBaseException as e:  # a value that does not resolve fails instantiate too
        raise ValueError(f"{key}: {type(e).__name__}: {e}") from None


def _check_arguments_under(node: Any, key: str, arguments: bool = True) -> None:
    """_arguments_error for `node` (at `key`) and every `L(...)` node under it, in lists too,
    in the order instantiate builds them: ValueError naming the key of the first whose
    `_target_` does not import or (with `arguments`) whose arguments do not fit it. Without
    `arguments` the targets alone, where the arguments are the build's to judge
    (optimizer.params gets the model only then): detectron2's ImportError took three lines.
    A node read through an interpolation (`dataset_dicts="${dataloader.train.dataset}"`) is
    not judged (the node it copies is, at its own key), but is walked: an interpolation that
    does not resolve where the build resolves it is refused naming the key
    (:func:`_built_nodes`), where OmegaConf's error came out of the check (the build of the
    test loader and the evaluator came only after the whole training)."""
    for node_key, target_node, _, via in _built_nodes(node, key, [], "", True):
        if via:
            continue
        why = _unimportable_target(target_node.get("_target_")) or (_arguments_error(target_node) if arguments else "")
        if why:
            raise ValueError(f"{node_key} ({_target_name(target_node)}): {why}")


def _check_sampler_node(key: str, sampler: DictConfig, target: Any) -> None:
    """check_lazy_train_sampler's arguments check (and build) of the sampler node."""
    _check_arguments_under(sampler, key)
    if (isinstance(target, type) and target.__module__.startswith("detectron2.data.samplers")
            and not any(_builds_something(child) for _, child, _ in _children(sampler, key))):
        arguments = {k: v for k, v in OmegaConf.to_container(sampler, resolve=True).items() if k != "_target_"}
        for name in ("seed", "seed_shuffle", "seed_subset"):
            if name in inspect.signature(target).parameters and arguments.get(name) is None:
                arguments[name] = 0  # else drawn by comm.shared_random_seed, a collective call
        try:
            target(**arguments)
        except (ValueError, TypeError, AssertionError) as e:
            given = ", ".join(f"{k}={v!r}" for k, v in arguments.items() if k in sampler)
            raise ValueError(f"{key}={target.__qualname__}({given}): the sampler refuses it ({type(e).__name__}"
                             + (f": {e})" if str(e) else ")")) from None


def check_lazy_train_parts(cfg: DictConfig, model: Optional[torch.nn.Module]) -> None:
    """What do_train instantiates only after train.output_dir is made, the earlier run moved
    aside and the training data loaded, built now (all cheap; the optimizer on the meta
    `model`'s parameters): `train.dropblock_schedule` (and its start against train.max_iter),
    `train.seed`, `dataloader.train.total_batch_size` (for this many processes), the train
    sampler (:func:`check_lazy_train_sampler`) and augmentations, `optimizer`,
    `lr_multiplier`, `train.checkpointer`. ValueError naming the key."""
    seed = lazy_config_value(cfg, "train.seed", -1)  # default_setup reads it
    if not is_integer(seed):
        raise ValueError(f"train.seed={seed!r}: expected an integer (< 0: a random seed per run)")
    batch = lazy_config_value(cfg, "dataloader.train.total_batch_size")
    if batch is not None:
        _check_int("dataloader.train.total_batch_size", batch, 1)
        if batch % comm.get_world_size():
            raise ValueError(f"dataloader.train.total_batch_size={batch}: not divisible by the "
                             f"{comm.get_world_size()} processes")
    # Each built below, where OmegaConf's error named an interpolation that does not resolve
    # only on a line of its own: refused naming its key first.
    for key, unpacked in (("train.dropblock_schedule", False), ("optimizer", False), ("lr_multiplier", False),
                          ("train.checkpointer", True)):
        _check_resolves(cfg, key, unpacked)
        if not unpacked and OmegaConf.select(cfg, key, default=None) is not None:
            _check_arguments_under(OmegaConf.select(cfg, key), key, arguments=False)
    if model is not None or cfg.train.get("dropblock_schedule") is not None:
        hook = _building("train.dropblock_schedule", lambda: lazy_schedule_hook(cfg, model))
        if hook is not None:
            _building(f"train.dropblock_schedule with train.max_iter={cfg.train.max_iter}",
                      lambda: hook.schedule_for(cfg.train.max_iter, model))
    check_lazy_train_sampler(cfg)
    augmentations = "dataloader.train.mapper.augmentations"
    items = OmegaConf.select(cfg, augmentations, default=None)
    if isinstance(items, ListConfig):
        # Each built on its own: a value one of them refuses is named with its index and target
        # (augmentations.2 (Cutout)), where the list's key alone left which one to guess.
        for index in range(len(items)):
            raw = items._get_node(index)  # not resolved: an interpolation's error is _building's
            targeted = isinstance(raw, DictConfig) and "_target_" in raw
            where = f"{augmentations}.{index}" + (f" ({_target_name(raw)})" if targeted else "")
            _building(where, lambda index=index: instantiate(items[index]))
    elif items is not None:
        _building(augmentations, lambda: instantiate(items))
    check_lazy_optimizer_values(cfg, lazy_optimizer(cfg, model))
    check_lazy_lr_multiplier_values(cfg)
    _building("lr_multiplier", lambda: instantiate(cfg.lr_multiplier)(0.0))
    # (its __init__ reads only the checkpointer's path_manager)
    _building("train.checkpointer", lambda: hooks.PeriodicCheckpointer(
        SimpleNamespace(path_manager=None), **cfg.train.checkpointer))


def _plain_number(node: DictConfig, name: str) -> Any:
    """`node.name` resolved (None where absent or not resolving: the build names that)."""
    try:
        return _plain(node.get(name), resolve=True)
    except OmegaConfBaseException:
        return None


# fvcore's ParamSchedulers' arguments that are values of the schedule (in lr_multiplier: a
# multiple of optimizer.lr).
_SCHEDULE_VALUE_ARGUMENTS = ("value", "values", "start_value", "end_value", "base_value")


def check_lazy_lr_multiplier_values(cfg: DictConfig) -> None:
    """`lr_multiplier`'s values that detectron2 and fvcore take without a word and train on:
    a WarmupParamScheduler's `warmup_length` outside [0, 1] (a share of train.max_iter: 1000
    meant as iterations failed with fvcore's "where in ParamScheduler must be in [0, 1]: got
    1000", naming no key, or, with main's rescale_interval and below 0, trained on a broken
    schedule, NaN losses from the first step) and a negative `warmup_factor`, and a
    schedule's value (`values`, `start_value`, ...) below 0: a negative or NaN learning rate
    (gradient ascent) at those iterations. ValueError naming the key."""
    for key, node in _target_nodes(lazy_config_value(cfg, "lr_multiplier"), "lr_multiplier"):
        if _is_target(node, "WarmupParamScheduler"):
            length = _plain_number(node, "warmup_length")
            if length is not None and not (is_real_number(length) and 0.0 <= length <= 1.0):
                raise ValueError(f"{key}.warmup_length={length!r}: expected the warm-up's share of train.max_iter, in "
                                 "[0, 1] (1000 iterations of 90000: 1000 / 90000, as detectron2's coco_schedule.py "
                                 "writes it)")
            factor = _plain_number(node, "warmup_factor")
            if factor is not None and not finite_at_least_zero(factor):
                raise ValueError(f"{key}.warmup_factor={factor!r}: expected a finite number >= 0 (the multiple "
                                 "of the schedule's first value the warm-up starts at, e.g. 0.001): a negative "
                                 "one gives a negative learning rate")
        for name in _SCHEDULE_VALUE_ARGUMENTS:
            value = _plain_number(node, name)
            values = value if isinstance(value, list) else [value]
            if value is not None and any(is_real_number(v) and not finite_at_least_zero(v) for v in values):
                raise ValueError(f"{key}.{name}={value!r}: expected multiples of optimizer.lr that are finite and "
                                 ">= 0: a negative one gives a negative learning rate (the loss ascended)")


def check_lazy_optimizer_values(cfg: DictConfig, optimizer: Optional[torch.optim.Optimizer]) -> None:
    """The optimizer's values torch checks only for its defaults, and detectron2's
    get_default_optimizer_params passes on to its parameter groups, where they trained
    without a word: a negative `optimizer.params.weight_decay`, `weight_decay_norm`,
    `weight_decay_bias`, `base_lr` or `bias_lr_factor` (a negative decay grows the weights, a
    negative rate ascends the loss), and `optimizer.momentum` above 1 (the velocity grows
    without bound: torch refuses only < 0). With `optimizer` (built on the meta model), its
    groups' lr, weight_decay and momentum too (from optimizer.params.overrides or
    lr_factor_func). ValueError naming the key."""
    node = lazy_config_value(cfg, "optimizer")
    if not isinstance(node, DictConfig):
        return
    params = node.get("params")
    if isinstance(params, DictConfig):
        for name in ("weight_decay", "weight_decay_norm", "weight_decay_bias", "base_lr", "bias_lr_factor"):
            value = _plain_number(params, name)
            if is_real_number(value) and not finite_at_least_zero(value):
                raise ValueError(f"optimizer.params.{name}={value!r}: expected a finite number >= 0 (torch refuses "
                                 "a negative one for the optimizer's own value, not for the parameter groups "
                                 "detectron2's get_default_optimizer_params gives it to)")
    momentum = _plain_number(node, "momentum")
    if is_real_number(momentum) and momentum > 1:
        raise ValueError(f"optimizer.momentum={momentum!r}: expected a value in [0, 1] (e.g. 0.9): above 1 the "
                         "momentum buffer grows without bound")
    for index, group in enumerate(optimizer.param_groups if optimizer is not None else ()):
        for name, high in (("lr", None), ("weight_decay", None), ("momentum", 1.0)):
            value = group.get(name)
            if is_real_number(value) and not (finite_at_least_zero(value) and (high is None or value <= high)):
                raise ValueError(f"optimizer.params gives parameter group {index} ({len(group['params'])} "
                                 f"parameters) {name}={value!r}: expected a finite number >= 0"
                                 + (f" and <= {high}" if high is not None else "")
                                 + " (see optimizer.params.overrides, and lr_factor_func on detectron2 main)")


def lazy_optimizer(cfg: DictConfig, model: Optional[torch.nn.Module]) -> Optional[torch.optim.Optimizer]:
    """`optimizer` built on `model`'s parameters (the meta device is enough) as do_train builds
    it, ValueError naming the key when it cannot be; None without a model, or where
    optimizer.params is no node do_train gives the model to."""
    params = cfg.optimizer.get("params") if isinstance(cfg.optimizer, DictConfig) else None
    if model is None or not isinstance(params, DictConfig) or "model" in params:
        return None
    params.model = model  # as do_train does
    try:
        return _building("optimizer", lambda: instantiate(cfg.optimizer))
    finally:
        del params["model"]  # not in the saved config.yaml


def _target_name(node: Any) -> str:
    target = node.get("_target_") if isinstance(node, DictConfig) else None
    return getattr(target, "__qualname__", None) or str(target)


def _children(node: Any, key: str, unresolved: Optional[Callable[[str, str, Exception], None]] = None
              ) -> Iterator[Tuple[str, Any, str]]:
    """(dotted key, child, the interpolation the child is, e.g. `"${dropblock}"`, or "") of a
    DictConfig's or ListConfig's children, `_target_` and missing values aside, in the order
    detectron2's instantiate builds them. A child that does not resolve (an interpolation of
    a key the config lacks) raises OmegaConf's error, or, given `unresolved`, is handed to it
    (key, interpolation, error) and left out."""
    names = range(len(node)) if isinstance(node, ListConfig) else [k for k in node.keys() if k != "_target_"]
    for name in names:
        found = _child(node, key, name, unresolved)
        if found is not None:
            yield found


def _child(node: Any, key: str, name: Any, unresolved: Optional[Callable[[str, str, Exception], None]] = None
           ) -> Optional[Tuple[str, Any, str]]:
    """_children's (dotted key, child, interpolation) of the child `name` of `node` (at `key`;
    '' at the top); None where it is absent or missing, or does not resolve and `unresolved`
    took it."""
    raw = node._get_node(name)
    if raw is None or raw._is_missing():
        return None
    child_key = f"{key}.{name}" if key else str(name)
    interpolation = raw._value() if raw._is_interpolation() else ""
    try:
        child = node[name]
    except OmegaConfBaseException as error:
        if unresolved is None:
            raise
        unresolved(child_key, interpolation, error)
        return None
    return child_key, child, interpolation


# Who reads an interpolation that does not resolve, by the dotted key it is at (the first
# that matches): the one-line refusal says so.
_READERS = (("model", "the model's build"), ("dataloader.train", "the training loader's build"),
            ("dataloader.test", "the test loader's build"), ("dataloader.evaluator", "the evaluator's build"),
            ("optimizer", "the optimizer's build"), ("lr_multiplier", "the LR schedule's build"),
            ("train.dropblock_schedule", "the DropBlock schedule's build"),
            ("train.checkpointer", "the checkpointer's build"), ("train.ddp", "the DDP wrapper's build"))


def _unresolved_message(key: str, interpolation: str, error: Exception) -> str:
    """The one-line refusal of the interpolation at the dotted `key` that does not resolve
    (OmegaConf's `error`), naming the key, the interpolation, the first line of the error and
    what reads it: 'dataloader.test.mapper.image_format=${nope}: InterpolationKeyError:
    Interpolation key 'nope' not found (the test loader's build reads it: point it to a key
    that has a value)', where OmegaConf's message named the key only on a line of its own."""
    reader = next((who for prefix, who in _READERS if key == prefix or key.startswith(prefix + ".")),
                  "the run")
    return (f"{key}={interpolation}: {type(error).__name__}: {str(error).splitlines()[0]} "
            f"({reader} reads it: point it to a key that has a value)")


def _refuse_unresolved(key: str, interpolation: str, error: Exception) -> None:
    """_children's `unresolved` callback where the interpolation is read: refused, in one line."""
    raise ValueError(_unresolved_message(key, interpolation, error)) from None


def lazy_config_value(cfg: DictConfig, key: str, default: Any = None) -> Any:
    """cfg's value at the dotted `key` (`default` where a part of it is absent or missing),
    each interpolation on the way resolved: one that does not is refused naming its own key
    (`dataloader.train=${nope}` for dataloader.train.total_batch_size), in the one line of
    :func:`_unresolved_message`. For the keys the checks and the run read (a tool reading
    one before the checks too: OmegaConf.select let OmegaConf's error through)."""
    node: Any = cfg
    at = ""
    for name in key.split("."):
        if isinstance(node, ListConfig) and name.isdigit() and int(name) < len(node):
            name = int(name)
        elif not isinstance(node, DictConfig) or name not in node.keys():
            return default
        found = _child(node, at, name, _refuse_unresolved)
        if found is None:
            return default
        at, node, _ = found
    return node


def check_lazy_interpolations_resolve(node: Any, key: str = "") -> None:
    """Refuse (ValueError, the one line of :func:`_unresolved_message`, naming the key) an
    interpolation anywhere under `node` (at `key`; the whole config by default) that does not
    resolve: for a tool that reads every key, as exporting the stock config does, where the
    run reads only what it builds (:func:`check_lazy_config_before_run`). A node read
    through an interpolation is looked into where it is written."""
    if isinstance(node, (DictConfig, ListConfig)):
        for child_key, child, interpolation in _children(node, key, _refuse_unresolved):
            if not interpolation:
                check_lazy_interpolations_resolve(child, child_key)


def _check_resolves(cfg: DictConfig, key: str, unpacked: bool = False) -> None:
    """Refuse (ValueError, one line, naming the key) an interpolation that does not resolve
    at `key`, on the way to it, or where detectron2's instantiate of the node there resolves
    one (:func:`_built_nodes`), with `unpacked` in each entry of a plain dict the run passes
    as keyword arguments (`**cfg.train.checkpointer`): the run read it only after the data
    was loaded (the test loader's after the whole training), with OmegaConf's error."""
    node = lazy_config_value(cfg, key)
    parts = (list(_children(node, key, _refuse_unresolved)) if unpacked and isinstance(node, DictConfig)
             else [(key, node, "")])
    for part_key, part, _ in parts:
        for _ in _built_nodes(part, part_key, [], "", True):
            pass


def _builds_something(node: Any) -> bool:
    if isinstance(node, DictConfig) and "_target_" in node:
        return True
    return isinstance(node, (DictConfig, ListConfig)) and any(_builds_something(c) for _, c, _ in _children(node, ""))


def _failing_node(node: Any, key: str, copied_from: Optional[str] = None) -> Tuple[str, Any, Optional[str]]:
    """The dotted key (with its target) and the node of the innermost node under `node` (at
    `key`) whose instantiation raises: detectron2's instantiate builds a node's children
    first, in order, so the first child that fails on its own is where the error came from.
    Third: where the failing node is a copy of another (`${dropblock}`, or a node inside
    one), the key of that other node (`dropblock`), else None."""
    for child_key, child, interpolation in _children(node, key):
        if not _builds_something(child):
            continue
        try:
            instantiate(child)
        except Exception as error:  # noqa: BLE001 - any error a component raises is looked into
            if is_meta_device_limit(error):
                raise
            # A copy of another node is named with it: that is the key an override changes.
            if interpolation:
                source = interpolation[2:-1] if re.fullmatch(r"\$\{[A-Za-z_][\w.]*\}", interpolation) else None
                return _failing_node(child, f"{child_key}={interpolation}", source)
            inner = f"{copied_from}.{child_key[len(key) + 1:]}" if copied_from is not None else None
            return _failing_node(child, child_key, inner)
    if isinstance(node, DictConfig) and "_target_" in node:
        return f"{key} ({_target_name(node)})", node, copied_from
    return key, node, copied_from


def _copied_argument(failing: Any, copied_from: Optional[str], error: BaseException) -> str:
    """'dropblock.keep_prob=1.5: ' where the failing node is a copy of the node `copied_from`
    and the component's message begins with one of its arguments ("keep_prob must be in
    (0, 1], got 1.5"): the key the user writes, which the copy's key does not say; else ''."""
    if copied_from is None or not isinstance(failing, DictConfig):
        return ""
    first = re.match(r"[A-Za-z_]\w*", str(error))
    if first is None or first.group() == "_target_" or first.group() not in failing:
        return ""
    try:
        value = _plain(failing.get(first.group()), resolve=True)
    except OmegaConfBaseException:
        return ""
    return f"{copied_from}.{first.group()}={value!r}: "


def instantiate_naming_key(node: Any, key: str) -> Any:
    """detectron2's `instantiate(node)` (the config node at the dotted `key`), where an error
    a component raises is re-raised as a ValueError that names the config key of the node
    that raised it and its target: `model.backbone.bottom_up.stages
    (make_dropblock_resnet_stages): ValueError: depth=42: ...` where the component's own
    message names only its argument; for arguments that do not fit the target, which
    ones, with the closest names it takes. Finding the node rebuilds the failing subtrees, on
    the error path only. What the meta device cannot do (`is_meta_device_limit`: a missing
    meta kernel, a tensor's value read) passes unchanged, for :func:`build_on_meta_device`."""
    with _instantiate_errors_unlogged():
        try:
            return instantiate(node)
        except Exception as error:  # noqa: BLE001 - re-raised, naming the key
            if is_meta_device_limit(error):
                raise
            where, failing, copied_from = _failing_node(node, key)
            # A target that does not import (misspelt in the config file): the closest names its
            # module has, where detectron2's ImportError took three lines. An argument its target
            # does not take: named with the closest ones, where Python's TypeError names the
            # class a component passes it on to.
            targeted = isinstance(failing, DictConfig) and "_target_" in failing
            why = (_unimportable_target(failing.get("_target_")) or _arguments_error(failing)) if targeted else ""
            named = "" if why else _copied_argument(failing, copied_from, error)
            raise ValueError(f"{named}{where}: {why or error_description(error)}") from error


@contextlib.contextmanager
def _instantiate_errors_unlogged() -> Iterator[None]:
    """detectron2's instantiate logs "Error when instantiating X!" for each node an error
    passes through (twice and more while _failing_node rebuilds the subtrees) above the
    refusal, which names the node itself."""
    instantiate_logger = logging.getLogger("detectron2.config.instantiate")
    drop = logging.Filter("not a logger name")  # filters out every record
    instantiate_logger.addFilter(drop)
    try:
        yield
    finally:
        instantiate_logger.removeFilter(drop)


def _unimportable_target(target: Any) -> str:
    """Why a `_target_` written as a dotted path names nothing: the first part that its
    module (or class) does not have, with the closest names it has; '' where it imports."""
    if not isinstance(target, str) or _located(target) is not None:
        return ""
    parts = target.split(".")
    found, i = None, len(parts)
    failed: Dict[str, Exception] = {}  # a module that is there and raised its own error on import
    while found is None and i > 0:
        module = ".".join(parts[:i])
        try:
            found = importlib.import_module(module)
        except Exception as e:  # noqa: BLE001 - an ImportError, or the module's own error: try its package
            missing = e.name if isinstance(e, ModuleNotFoundError) else None
            if not (missing and (module == missing or module.startswith(missing + "."))):
                failed[module] = e  # not this module's absence (or its package's): its own error
            i -= 1
    if found is None:
        return f"_target_={target!r} does not import: no module {parts[0]!r}"
    for j in range(i, len(parts)):
        error = failed.get(".".join(parts[:j + 1]))
        if error is not None:  # its own error, where "has no 'broken'" hid that the module is there
            why = " ".join(str(error).split())
            return f"_target_={target!r} does not import: importing {'.'.join(parts[:j + 1])} raised {type(error).__name__}: {why}"
        if not hasattr(found, parts[j]):
            owner = ".".join(parts[:j])
            close = difflib.get_close_matches(parts[j], [n for n in dir(found) if not n.startswith("_")], n=3)
            return (f"_target_={target!r} does not import: {owner} has no {parts[j]!r}"
                    + (f" (did you mean {', '.join(f'{owner}.{name}' for name in close)}?)" if close else ""))
        found = getattr(found, parts[j])
    return ""


def lazy_meta_model(cfg: DictConfig) -> Optional[torch.nn.Module]:
    """`instantiate(cfg.model)` on PyTorch's meta device (shapes only, ~0.1 s for R50-FPN),
    so a model that cannot be built fails before anything is written, naming the key
    (:func:`instantiate_naming_key`); None where a component cannot be built there (the real
    build then checks)."""
    return build_on_meta_device(lambda: instantiate_naming_key(cfg.model, "model"))


def lazy_schedule_hook(cfg: DictConfig, model: torch.nn.Module) -> Optional[DropBlockScheduleHook]:
    """The hook `train.dropblock_schedule` gives (None: no ramp); without the key, the
    paper's ramp over the whole training when the model has a regularizer."""
    if "dropblock_schedule" in cfg.train:
        spec = cfg.train.dropblock_schedule
        if spec is None:
            # The targets throughout, as asked: set, so that the regularizers do not warn of a
            # training with no ramp.
            LinearKeepProbSchedule(0, 0).apply(model, 0)
            return None
        hook = instantiate(spec)
        if not isinstance(hook, DropBlockScheduleHook):
            raise ValueError(f"train.dropblock_schedule gives a value of type {type(hook).__name__}"
                             + (f" ({hook!r})" if isinstance(hook, str) else "")
                             + ": expected L(DropBlockScheduleHook)(...) or None (written null in a "
                             "command-line override: train.dropblock_schedule=null)")
        return hook
    if next(iter_regularizers(model), None) is None:
        return None
    logger.info("train.dropblock_schedule is not set: keep_prob ramps from 1.0 over the whole training")
    return DropBlockScheduleHook()


RESUME_ADVICE = "start a fresh run or use another train.output_dir for a changed model"


def check_lazy_checkpoint(cfg: DictConfig, model: Optional[torch.nn.Module], path: str) -> None:
    """Before data loading, the checkpoint a --resume continues from: RuntimeError naming it
    when it cannot be read; CheckpointMismatchError
    naming the keys when it does not fit the model (which may be on the meta device; None:
    neither the fit nor the optimizer state is judged),
    ValueError when it has reached train.max_iter (as train_net's check of --resume), when
    its optimizer state does not fit `optimizer` built on the model, or when
    train.amp.enabled resumes a checkpoint saved without AMP. An --eval-only checkpoint:
    checkpoint.check_eval_checkpoint."""
    checkpoint = check_checkpoint_fits(model, path, "--resume", RESUME_ADVICE, ("train.max_iter", cfg.train.max_iter))
    optimizer = lazy_optimizer(cfg, model)
    if optimizer is not None:
        # Else torch refuses the saved optimizer state after the data loader is built.
        check_resume_optimizer(checkpoint, optimizer, path, "optimizer.params (weight_decay, weight_decay_norm, "
                               "weight_decay_bias, bias_lr_factor, overrides) and by which of them train",
                               "train.init_checkpoint", "optimizer (lr, momentum, weight_decay, ...) and optimizer.params")
    if OmegaConf.select(cfg, "train.amp.enabled", default=False):
        check_resume_grad_scaler(checkpoint, path, "train.amp.enabled", "train.init_checkpoint")
