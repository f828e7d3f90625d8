"""Deploying a model trained with dropblock-det on stock detectron2, without the plugin.

At inference every regularizer is the identity, and no component adds a parameter or a
buffer or renames one: a dropblock-det checkpoint is a checkpoint of the stock detectron2
model. `stock_config(cfg)` is the config that builds that model from detectron2's own
components (`RetinaNet`, `build_retinanet_resnet_fpn_backbone`, `DeepLabV3PlusHead`, ...)
with only keys stock detectron2 knows, so it can be served or exported with detectron2's
own tools (`DefaultPredictor`, `tools/deploy/export_model.py`, `torch.export`) where
dropblock-det is not installed. It gives the dropblock-det model's outputs in eval mode,
with one exception: the stock DeepLabV3+ ASPP pools with a fixed kernel taken from
INPUT.CROP and raises on a feature map that is not a multiple of it, where `DropBlockASPP`
pools globally (dropblock_det/modeling/deeplab.py); with INPUT.CROP.ENABLED False the stock
one always pools globally, as `DropBlockASPP` does on every map that is not a multiple.

TorchScript: the dropblock-det modules trace and `torch.export` in eval mode but do not
script; the stock RetinaNet scripts (detectron2's `scripting_with_instances`), the stock
segmentation heads (`SemSegFPNHead`, `DeepLabV3PlusHead`) only trace.

`lazy_stock_config(cfg)` is the same for a LazyConfig: the model, test loader and evaluator
nodes with detectron2's own targets, which `LazyConfig.load` + `instantiate` build without
dropblock-det.

`tools/export_stock_config.py` writes either config as a YAML file, checked against the
dropblock-det model and a checkpoint.
"""
from typing import Any, Dict, Iterator, List, Optional, Sequence, Set, Tuple

from detectron2.config import CfgNode, get_cfg

from .modeling.retinanet import PER_LEVEL_NORMS, head_levels_error, stock_retinanet_head_error

__all__ = ["STOCK_COMPONENTS", "stock_config", "needs_deeplab_project", "empty_stock_config",
           "dropblock_component_advice", "lazy_stock_config", "lazy_plugin_nodes", "LAZY_EVAL_NODES",
           "in_lazy_eval_nodes", "datasets_not_registered_by_detectron2"]

# Config key -> {dropblock-det component: the stock detectron2 component with the same
# parameters, names and inference outputs}.
STOCK_COMPONENTS: Dict[str, Dict[str, str]] = {
    "MODEL.META_ARCHITECTURE": {"DropBlockRetinaNet": "RetinaNet"},
    "MODEL.BACKBONE.NAME": {
        "build_dropblock_resnet_backbone": "build_resnet_backbone",
        "build_dropblock_resnet_fpn_backbone": "build_resnet_fpn_backbone",
        "build_dropblock_retinanet_resnet_fpn_backbone": "build_retinanet_resnet_fpn_backbone",
        "build_dropblock_resnet_deeplab_backbone": "build_resnet_deeplab_backbone",
    },
    "MODEL.SEM_SEG_HEAD.NAME": {
        "DropBlockDeepLabV3PlusHead": "DeepLabV3PlusHead",
        "DropBlockFCNHead": "SemSegFPNHead",
    },
    "MODEL.ROI_HEADS.NAME": {"DropBlockRes5ROIHeads": "Res5ROIHeads"},
}

# The config key whose component holds each MODEL.DROPBLOCK location (see locations_on).
_LOCATION_COMPONENT_KEY = {
    "HEAD.ENABLED": "MODEL.META_ARCHITECTURE",
    "SEM_SEG_HEAD.ENABLED": "MODEL.SEM_SEG_HEAD.NAME",
}


# Meta-architectures (detectron2's and dropblock-det's) that read no MODEL.SEM_SEG_HEAD.
_NO_SEM_SEG_HEAD_ARCHS = ("GeneralizedRCNN", "ProposalNetwork", "RetinaNet", "DropBlockRetinaNet")
# Meta-architectures (detectron2's) that build no RetinaNet head, the HEAD location's towers.
_NO_RETINANET_HEAD_ARCHS = ("GeneralizedRCNN", "ProposalNetwork", "SemanticSegmentor", "PanopticFPN")


def dropblock_component_advice(cfg: CfgNode, location: str, key: Optional[str] = None) -> str:
    """What to configure so that the MODEL.DROPBLOCK `location` ("RESNET.ENABLED",
    "FPN.ENABLED", "HEAD.ENABLED", ...) gets a regularizer: dropblock-det's counterpart of
    the stock component `cfg` names for it (e.g. MODEL.BACKBONE.NAME
    'build_dropblock_resnet_fpn_backbone' for a Faster R-CNN's 'build_resnet_fpn_backbone'),
    else the dropblock-det components of that key. `key`: the config key of the component
    (default: the location's; a C4 R-CNN's res5 is MODEL.ROI_HEADS.NAME's). SEM_SEG_HEAD on a
    model that builds no semantic-segmentation head (an R-CNN, a RetinaNet), and HEAD on one
    that builds no RetinaNet head (an R-CNN, a segmenter): turn it off."""
    if location == "HEAD.ENABLED" and cfg.MODEL.META_ARCHITECTURE in _NO_RETINANET_HEAD_ARCHS:
        # Switching MODEL.META_ARCHITECTURE to DropBlockRetinaNet would make another detector.
        segments = cfg.MODEL.META_ARCHITECTURE in ("SemanticSegmentor", "PanopticFPN")
        return (f"MODEL.META_ARCHITECTURE={cfg.MODEL.META_ARCHITECTURE!r} builds no RetinaNet head - the HEAD "
                "location is the class and box towers of a RetinaNet"
                + (" (this model's segmentation head is the SEM_SEG_HEAD location)" if segments else "")
                + ": set MODEL.DROPBLOCK.HEAD.ENABLED False for this model")
    if location == "SEM_SEG_HEAD.ENABLED" and cfg.MODEL.META_ARCHITECTURE in _NO_SEM_SEG_HEAD_ARCHS:
        # Naming a head under MODEL.SEM_SEG_HEAD.NAME would change nothing: the model builds none.
        return (f"MODEL.META_ARCHITECTURE={cfg.MODEL.META_ARCHITECTURE!r} builds no semantic-segmentation "
                "head (MODEL.SEM_SEG_HEAD.NAME is unused) - the SEM_SEG_HEAD location is the head of a "
                "SemanticSegmentor or PanopticFPN: set MODEL.DROPBLOCK.SEM_SEG_HEAD.ENABLED False for this model")
    key = key or _LOCATION_COMPONENT_KEY.get(location, "MODEL.BACKBONE.NAME")
    value = _get(cfg, key)
    ours = [name for name, stock in STOCK_COMPONENTS[key].items() if stock == value]
    if ours:
        return f"use dropblock-det's counterpart of {value!r}: {key} {ours[0]!r}"
    return (f"use one of dropblock-det's {key} components ({', '.join(STOCK_COMPONENTS[key])})"
            + (" - the HEAD location is RetinaNet's head" if location == "HEAD.ENABLED" else ""))


# Stock components that live in detectron2's DeepLab project (detectron2.projects.deeplab),
# not in detectron2 itself: a config naming them needs that project's keys and import.
_DEEPLAB_PROJECT_COMPONENTS = ("build_resnet_deeplab_backbone", "DeepLabV3PlusHead", "DeepLabV3Head")


def _get(cfg: CfgNode, key: str):
    node = cfg
    for part in key.split("."):
        node = node[part]
    return node


def _set(cfg: CfgNode, key: str, value) -> None:
    *parents, last = key.split(".")
    node = cfg
    for part in parents:
        node = node[part]
    node[last] = value


def _key_paths(node: CfgNode, prefix: str = "") -> Set[str]:
    """Every key of a config, nodes and leaves, as dotted paths."""
    paths = set()
    for key, value in node.items():
        path = prefix + key
        paths.add(path)
        if isinstance(value, CfgNode):
            paths |= _key_paths(value, path + ".")
    return paths


def empty_stock_config(deeplab: bool) -> CfgNode:
    """What stock detectron2 reads a config file into: get_cfg(), plus the DeepLab project's
    keys (`add_deeplab_config`) for a DeepLab model (`needs_deeplab_project`)."""
    from detectron2.projects.deeplab import add_deeplab_config

    cfg = get_cfg()
    if deeplab:
        add_deeplab_config(cfg)
    return cfg


def _schema(deeplab: bool, plugin: bool) -> Set[str]:
    from .config import add_dropblock_config

    cfg = empty_stock_config(deeplab)
    if plugin:
        add_dropblock_config(cfg)
    return _key_paths(cfg)


def _drop_keys(node: CfgNode, removable: Set[str], prefix: str = "") -> None:
    for key in list(node.keys()):
        path = prefix + key
        if path in removable:
            del node[key]
        elif isinstance(node[key], CfgNode):
            _drop_keys(node[key], removable, path + ".")


def needs_deeplab_project(cfg: CfgNode) -> bool:
    """Whether the stock model of `cfg` uses detectron2's DeepLab project: its config then
    needs `detectron2.projects.deeplab.add_deeplab_config` before `merge_from_file`, and
    `import detectron2.projects.deeplab` to register the components."""
    return any(
        STOCK_COMPONENTS[key].get(_get(cfg, key), _get(cfg, key)) in _DEEPLAB_PROJECT_COMPONENTS
        for key in ("MODEL.BACKBONE.NAME", "MODEL.SEM_SEG_HEAD.NAME")
    )


def stock_config(cfg: CfgNode) -> CfgNode:
    """The config of the stock detectron2 model that a dropblock-det model of `cfg` is at
    inference: the same config with every dropblock-det component replaced by its stock
    detectron2 counterpart (`STOCK_COMPONENTS`), and without the keys stock detectron2 does
    not know: `MODEL.DROPBLOCK` and `INPUT.CUTOUT` (training-only), and the DeepLab
    project's keys unless the stock model is a DeepLab one (see `needs_deeplab_project`).
    Keys of the user's own (neither detectron2's nor dropblock-det's) are kept.

    A checkpoint of the dropblock-det model loads strictly into the stock model, which gives
    the same outputs in eval mode (for DeepLabV3+ see the module docstring: INPUT.CROP). The
    config is for building, evaluating and exporting the model; training with the DropBlock
    schedule stays with dropblock-det's trainer.

    Raises:
        ValueError: naming MODEL.RETINANET.NORM, where this detectron2's RetinaNetHead
            cannot build the head's norm ("GN" on v0.6: dropblock-det's head builds it on
            every version).
    """
    stock = cfg.clone()
    stock.defrost()
    for key, names in STOCK_COMPONENTS.items():
        name = _get(stock, key)
        _set(stock, key, names.get(name, name))
    deeplab = needs_deeplab_project(stock)
    removable = _schema(deeplab=True, plugin=True) - _schema(deeplab=deeplab, plugin=False)
    _drop_keys(stock, removable)
    norm = stock.MODEL.RETINANET.NORM
    error = stock_retinanet_head_error(norm) if stock.MODEL.META_ARCHITECTURE == "RetinaNet" else None
    if error is not None and norm == "GN":
        raise ValueError(
            f"MODEL.RETINANET.NORM={norm!r}: this detectron2's own "
            "RetinaNetHead cannot build that norm (detectron2 v0.6 builds GN for 1 channel; "
            "current detectron2 builds it), so there is no stock model to deploy it as; "
            "serve the DropBlockRetinaNet model in eval mode, or use current detectron2"
        )
    if error is not None:
        raise ValueError(f"MODEL.RETINANET.NORM={norm!r}: RetinaNetHead cannot build it "
                         f"({type(error).__name__}: {error})")
    return stock


# --- LazyConfig (Python configs) --------------------------------------------------------

# The arguments a dropblock-det component takes beyond its stock counterpart's: they only
# place regularizers, so the stock component is built without them.
_REGULARIZER_ARGUMENTS = ("dropblock", "dropblock_positions", "dropblock_towers", "drop_path_keep_prob")


def _lazy_stock_targets() -> Dict[Any, Any]:
    """dropblock-det LazyConfig target -> its stock detectron2 counterpart (same arguments
    but `_REGULARIZER_ARGUMENTS`, same parameters, the same outputs in eval mode)."""
    from detectron2.data import DatasetMapper
    from detectron2.modeling.backbone.fpn import FPN, LastLevelP6P7
    from detectron2.modeling.backbone.resnet import BasicBlock, BottleneckBlock
    from detectron2.modeling.meta_arch.retinanet import RetinaNet, RetinaNetHead
    from detectron2.modeling.meta_arch.semantic_seg import SemSegFPNHead
    from detectron2.modeling.roi_heads import Res5ROIHeads
    from detectron2.projects.deeplab import DeepLabV3PlusHead

    from .data.file_errors import DatasetMapperNamingFiles
    from .modeling import (
        DropBlockBasicBlock,
        DropBlockBottleneckBlock,
        DropBlockDeepLabV3PlusHead,
        DropBlockFCNHead,
        DropBlockFPN,
        DropBlockLastLevelP6P7,
        DropBlockRes5ROIHeads,
        DropBlockRetinaNet,
        DropBlockRetinaNetHead,
    )

    return {
        DropBlockRetinaNet: RetinaNet,
        DropBlockRetinaNetHead: RetinaNetHead,
        DropBlockFPN: FPN,
        DropBlockLastLevelP6P7: LastLevelP6P7,
        DropBlockBasicBlock: BasicBlock,
        DropBlockBottleneckBlock: BottleneckBlock,
        DropBlockRes5ROIHeads: Res5ROIHeads,
        DropBlockDeepLabV3PlusHead: DeepLabV3PlusHead,
        DropBlockFCNHead: SemSegFPNHead,
        DatasetMapperNamingFiles: DatasetMapper,  # its errors name the file; same outputs
    }


def _target(node: Any) -> Any:
    """The callable a LazyConfig node builds (a config read from YAML names it by string,
    located here; the string itself where it does not import), None for a node that builds
    nothing."""
    from detectron2.utils.registry import locate
    from omegaconf import DictConfig

    if not isinstance(node, DictConfig) or "_target_" not in node:
        return None
    target = node._target_
    if isinstance(target, str):
        try:
            return locate(target)
        except Exception:  # noqa: BLE001 - kept by name: _is_plugin_target still reads it
            return target
    return target


def _target_path(target: Any) -> str:
    if isinstance(target, str):
        return target
    return f"{getattr(target, '__module__', '?')}.{getattr(target, '__qualname__', repr(target))}"


def _is_plugin_target(target: Any) -> bool:
    return _target_path(target).startswith("dropblock_det.")


def _lazy_nodes(node: Any, prefix: str = "") -> Iterator[Tuple[str, Any, Any]]:
    """(dotted key, parent, name in parent) of every node under `node` (keys below `prefix`,
    the key of `node`), children first, so replacing a node does not change what is visited
    after it; missing values aside, and an interpolation (`${dropblock}`) not entered: what it
    points at is visited where it is."""
    from omegaconf import DictConfig, ListConfig

    if isinstance(node, (DictConfig, ListConfig)):
        names = range(len(node)) if isinstance(node, ListConfig) else list(node.keys())
        for name in names:
            raw = node._get_node(name)
            if raw is None or raw._is_missing():
                continue
            key = f"{prefix}.{name}" if prefix else str(name)
            if not raw._is_interpolation():
                yield from _lazy_nodes(node[name], key)
            yield key, node, name


def _stock_resnet_stages(node: Any) -> Any:
    """The stages `L(make_dropblock_resnet_stages)(...)` builds, as stock detectron2 writes
    them: one `L(ResNet.make_stage)(block_class=BottleneckBlock or BasicBlock, ...)` per stage."""
    import inspect

    from detectron2.config import LazyCall
    from detectron2.modeling.backbone.resnet import ResNet
    from omegaconf import ListConfig, OmegaConf

    from .modeling.resnet import make_dropblock_resnet_stages, stock_resnet_stage_arguments

    # Its own (regularizer) arguments are the named ones besides depth; the ResNet's go on.
    own = [name for name, parameter in inspect.signature(make_dropblock_resnet_stages).parameters.items()
           if name != "depth" and parameter.kind is parameter.KEYWORD_ONLY]
    arguments = {k: v for k, v in node.items() if k != "_target_" and k not in own}
    arguments = {k: OmegaConf.to_object(v) if OmegaConf.is_config(v) else v for k, v in arguments.items()}
    stages = [LazyCall(ResNet.make_stage)(**stage) for stage in stock_resnet_stage_arguments(**arguments).values()]
    return ListConfig(stages, flags={"allow_objects": True})


def _as_dict_node(mapping: Any) -> Any:
    """A mapping argument such as a head's `input_shape={"res2": L(ShapeSpec)(...)}`, as a
    node that instantiate builds into a dict: it does not enter a mapping without a
    _target_, and the stock heads take a dict of ShapeSpecs (DropBlockDeepLabV3PlusHead
    builds the nodes itself)."""
    from omegaconf import DictConfig

    if isinstance(mapping, DictConfig) and "_target_" not in mapping:
        # by name: OmegaConf takes the type `dict` for a structured-config class
        return DictConfig({"_target_": "builtins.dict", **{k: mapping[k] for k in mapping.keys()}},
                          flags={"allow_objects": True})
    return mapping


# The top-level LazyConfig nodes that detectron2's LazyConfig tools build to evaluate and
# export a model (tools/lazyconfig_train_net.py --eval-only): the stock config must build
# them without dropblock-det.
LAZY_EVAL_NODES = ("model", "dataloader.test", "dataloader.evaluator")


def lazy_stock_config(cfg: Any) -> Any:
    """The LazyConfig of the stock detectron2 model that the dropblock-det model of the
    LazyConfig `cfg` is at inference (the counterpart of :func:`stock_config`): a copy with
    every dropblock-det component replaced by its stock
    counterpart without the arguments that place regularizers (`make_dropblock_resnet_stages`
    by one `ResNet.make_stage` per stage, `DropBlockRetinaNetHead` by `RetinaNetHead`,
    `DatasetMapperNamingFiles` by `DatasetMapper`, `dataset_evaluator` by the evaluator it
    picks for the test set, ...), and without the training-only nodes `train.dropblock_schedule`
    and the top-level `dropblock` (interpolations into them replaced by their values, the
    others kept). `cfg` is not changed.

    The model, `dataloader.test` and `dataloader.evaluator` then build without dropblock-det
    (`LAZY_EVAL_NODES`); what else still names a dropblock-det component (a training
    augmentation, an LR schedule) is listed by :func:`lazy_plugin_nodes`.

    Raises:
        ValueError: naming the key, for a dropblock-det component with no stock counterpart
            in the model, the test loader or the evaluator (a Cutout in the test mapper,
            written there or read through an interpolation), for a RetinaNet head norm this
            detectron2's RetinaNetHead cannot build (GN on v0.6), and for a `dataset_evaluator` whose dataset is not one
            name registered here with an evaluator type it picks an evaluator for, and for
            an interpolation that does not resolve (check_lazy_interpolations_resolve).
    """
    import copy

    from detectron2.modeling.meta_arch.retinanet import RetinaNet, RetinaNetHead
    from omegaconf import DictConfig, OmegaConf

    from .engine.evaluation import dataset_evaluator
    from .engine.lazy_config_checks import check_lazy_interpolations_resolve
    from .modeling import make_dropblock_resnet_stages

    # Every node is read below: one that does not resolve is named in one line, where
    # OmegaConf's 3-line error came out of the rewrite.
    check_lazy_interpolations_resolve(cfg)
    stock = copy.deepcopy(cfg)
    targets = _lazy_stock_targets()
    _copy_plugin_interpolations_into_eval_nodes(stock)
    # Interpolations are kept (`${train.output_dir}/inference` follows the output folder),
    # except those into the nodes removed or rebuilt below, which are replaced by their values.
    _resolve_interpolations_into(stock, _PLUGIN_ONLY_NODES + _rewritten_keys(stock, targets))
    for key, parent, name in list(_lazy_nodes(stock)):
        node = parent[name]
        target = _target(node)
        if target is make_dropblock_resnet_stages:
            parent[name] = _stock_resnet_stages(node)
        elif target is dataset_evaluator:
            parent[name] = _stock_evaluator(node, key)
        else:
            for argument in _dropped_regularizer_arguments(node, targets):
                del node[argument]
            if target in targets:
                node._target_ = targets[target]
                if "input_shape" in node:
                    node.input_shape = _as_dict_node(node.input_shape)
            if isinstance(node, DictConfig):
                _stock_block_classes(node, targets)
    for key in _PLUGIN_ONLY_NODES:
        parent_key, _, name = key.rpartition(".")
        parent = OmegaConf.select(stock, parent_key, default=None) if parent_key else stock
        if isinstance(parent, DictConfig) and name in parent and _is_plugin_target(_target(parent[name])):
            del parent[name]
    for key, target in lazy_plugin_nodes(stock):
        if in_lazy_eval_nodes(key):
            raise ValueError(f"{key}: {_target_path(target)} has no stock detectron2 counterpart "
                             "(dropblock-det's components with one: see deploy._lazy_stock_targets)"
                             + ("" if key == "model" or key.startswith("model.") else
                                "; evaluating builds this node: leave the component out of it"))
    for key, parent, name in _lazy_nodes(stock):
        node = parent[name]
        if _target(node) is RetinaNet:
            _one_head_input_shape_per_level(node, key)
        if _target(node) is RetinaNetHead:
            error = stock_retinanet_head_error(node.get("norm", ""))
            if error is not None:
                raise ValueError(
                    f"{key}.norm={node.get('norm')!r}: this detectron2's own RetinaNetHead cannot "
                    f"build that norm ({type(error).__name__}: {error}; detectron2 v0.6 builds GN for 1 "
                    "channel, current detectron2 builds it), so there is no stock model to deploy it "
                    "as; serve the DropBlockRetinaNet model in eval mode, or use current detectron2")
    return stock


def _one_head_input_shape_per_level(retinanet: Any, key: str) -> None:
    """A RetinaNet node whose head has one `input_shape` for all its levels (which
    DropBlockRetinaNetHead takes without per-level norms) gets one per level: the stock
    RetinaNetHead asserts as many as the features it is given (detectron2's configs write
    `[ShapeSpec(...)] * 5`). With per-level BN the count is part of the model (one BN per
    entry), so a mismatch has no stock counterpart: ValueError naming the key."""
    import copy

    head, levels = retinanet.get("head"), retinanet.get("head_in_features")
    shapes = head.get("input_shape") if hasattr(head, "get") else None
    if shapes is None or levels is None:
        return
    error = head_levels_error(head.get("norm", "") in PER_LEVEL_NORMS, len(shapes), levels)
    if error is not None:
        raise ValueError(f"{key}.head.input_shape: {error}")
    if len(shapes) == 1 < len(levels):
        head.input_shape = [copy.deepcopy(shapes[0]) for _ in levels]


def _dropped_regularizer_arguments(node: Any, targets: Dict[Any, Any]) -> List[str]:
    """The regularizer arguments (`_REGULARIZER_ARGUMENTS`, also as `<argument>_per_block`)
    that the stock config leaves out of `node`: those of a node built from a dropblock-det
    component, or given one as a value (`L(ResNet.make_stage)(block_class=
    DropBlockBottleneckBlock, dropblock=..., ...)`, a C4 head's res5); none elsewhere."""
    from omegaconf import DictConfig

    if not isinstance(node, DictConfig) or not (_target(node) in targets or any(
            isinstance(node[name], type) and node[name] in targets for name in _given(node))):
        return []
    return [name for argument in _REGULARIZER_ARGUMENTS for name in (argument, argument + "_per_block")
            if name in node]


def _given(node: Any) -> Iterator[Any]:
    """The keys of the DictConfig `node` whose values are given: a missing one (`???`) is
    kept as written, for LazyConfig.load or the build to name."""
    return (name for name in node.keys() if not node._get_node(name)._is_missing())


def _stock_block_classes(node: Any, targets: Dict[Any, Any]) -> None:
    """The stock class for every dropblock-det class `node` is given as a value
    (`block_class=DropBlockBottleneckBlock`); its regularizer arguments are left out by
    the caller (`_dropped_regularizer_arguments`)."""
    for key in list(_given(node)):
        value = node[key]
        if isinstance(value, type) and value in targets:
            node[key] = targets[value]


# Training-only nodes of dropblock-det's LazyConfigs (configs/common): the regularizer every
# location copies and the keep_prob ramp. The stock config goes without them.
_PLUGIN_ONLY_NODES = ("dropblock", "train.dropblock_schedule")


def in_lazy_eval_nodes(key: str) -> bool:
    """Whether the dotted LazyConfig `key` is one of LAZY_EVAL_NODES or under one."""
    return any(key == node or key.startswith(node + ".") for node in LAZY_EVAL_NODES)


def _copy_plugin_interpolations_into_eval_nodes(cfg: Any) -> None:
    """Replaces every interpolation inside `LAZY_EVAL_NODES` whose value builds a dropblock-det
    component (`dataloader.test.mapper.augmentations = "${dataloader.train.mapper.augmentations}"`,
    `model.backbone = "${my_backbone}"`) by a copy of its value, so that the rewrite (or the
    refusal) of lazy_stock_config reaches the component: through the interpolation the
    stock config would build it from the node it reads. Repeated until none is left, for an
    interpolation inside a copied value."""
    import copy

    from omegaconf import DictConfig, ListConfig

    copied = True
    while copied:
        copied = False
        for key, parent, name in list(_lazy_nodes(cfg)):
            raw = parent._get_node(name)
            if not (in_lazy_eval_nodes(key) and raw._is_interpolation()):
                continue
            value = parent[name]  # it resolves: lazy_stock_config checked it
            if isinstance(value, (DictConfig, ListConfig)) and (_is_plugin_target(_target(value))
                                                                 or lazy_plugin_nodes(value)):
                parent[name] = copy.deepcopy(value)
                copied = True


def _interpolated_keys(value: str, parent_key: str) -> Iterator[str]:
    """The absolute keys the interpolations in `value` (`${dropblock}`, `kp_${dropblock.keep_prob}`,
    `${..dropblock}`; resolvers left out) of a node under `parent_key` read."""
    import re

    for reference in re.findall(r"\$\{([^${}:]*)\}", value):
        relative = reference.lstrip(".")
        up = len(reference) - len(relative) - 1  # `${.x}`: a sibling, `${..x}`: the parent's
        parts = parent_key.split(".") if parent_key else []
        if up < 0:
            yield relative
        elif up <= len(parts):
            yield ".".join(parts[:len(parts) - up] + ([relative] if relative else []))


def _rewritten_keys(cfg: Any, targets: Dict[Any, Any]) -> Tuple[str, ...]:
    """The keys of `cfg` that lazy_stock_config rebuilds or removes besides _PLUGIN_ONLY_NODES:
    each `make_dropblock_resnet_stages` node (a list of stages in the stock config, so
    `${..stages.norm}` reads nothing there) and the regularizer arguments of the nodes built
    from a dropblock-det component or given one (`block_class=`)."""
    from .modeling import make_dropblock_resnet_stages

    keys: List[str] = []
    for key, parent, name in _lazy_nodes(cfg):
        node = parent[name]
        if _target(node) is make_dropblock_resnet_stages:
            keys.append(key)
        else:
            keys += [f"{key}.{argument}" for argument in _dropped_regularizer_arguments(node, targets)]
    return tuple(keys)


def _resolve_interpolations_into(cfg: Any, keys: Sequence[str]) -> None:
    """Replaces every interpolation of `cfg` into one of the nodes `keys` (`${dropblock}`,
    `${dropblock.keep_prob}`, `kp_${dropblock.keep_prob}`, `${..dropblock}`) by a copy of its
    value, so that the nodes can be removed."""
    import copy

    for key, parent, name in list(_lazy_nodes(cfg)):
        raw = parent._get_node(name)
        if raw is not None and raw._is_interpolation():
            read = _interpolated_keys(raw._value(), key.rpartition(".")[0])
            if any(ref == node or ref.startswith(node + ".") for ref in read for node in keys):
                parent[name] = copy.deepcopy(parent[name])


def _raw(node: Any, key: str) -> Any:
    """node[key], an interpolation as written (`"${..test.dataset.names}"`)."""
    raw = node._get_node(key)
    return raw._value() if raw is not None and raw._is_interpolation() else node.get(key)


def _stock_evaluator(node: Any, key: str) -> Any:
    """detectron2's own evaluator node for the `L(dataset_evaluator)(dataset_name=...)` node
    `node` at `key` (what dataset_evaluator returns for that dataset). ValueError naming
    the key where that is not known here: not one dataset name, a dataset not registered
    in this process, or one whose evaluator_type dataset_evaluator has no evaluator for."""
    from detectron2.config import LazyCall
    from detectron2.data import MetadataCatalog
    from detectron2.evaluation import COCOEvaluator, PascalVOCDetectionEvaluator, SemSegEvaluator
    from omegaconf import OmegaConf

    from .engine.evaluation import EVALUATOR_TYPES, has_compiled_ops

    name = node.get("dataset_name")
    evaluator_type = (getattr(MetadataCatalog.get(name), "evaluator_type", None)
                      if isinstance(name, str) and name in MetadataCatalog.list() else None)
    if evaluator_type not in EVALUATOR_TYPES:
        why = ("not one dataset name (detectron2's evaluators take one)" if not isinstance(name, str) else
               "not a dataset registered in this process" if name not in MetadataCatalog.list() else
               f"a dataset whose metadata evaluator_type is {evaluator_type!r}, which dataset_evaluator has "
               f"no evaluator for (supported: {', '.join(map(repr, EVALUATOR_TYPES))})")
        name = OmegaConf.to_object(name) if OmegaConf.is_config(name) else name
        raise ValueError(f"{key}.dataset_name={name!r}: {why}, so the detectron2 evaluator dataset_evaluator "
                         f"would pick for it is not known; give one registered dataset name, or write {key} as "
                         "detectron2's evaluator itself (e.g. L(COCOEvaluator)(dataset_name=...)), which is kept")
    name, output_dir = _raw(node, "dataset_name"), _raw(node, "output_dir")
    if evaluator_type == "coco":
        # As dataset_evaluator: detectron2's default, the fast implementation, raises at the
        # end of the evaluation where detectron2 has no compiled operators.
        return LazyCall(COCOEvaluator)(dataset_name=name, output_dir=output_dir, use_fast_impl=has_compiled_ops())
    if evaluator_type == "pascal_voc":
        return LazyCall(PascalVOCDetectionEvaluator)(dataset_name=name)
    return LazyCall(SemSegEvaluator)(dataset_name=name, output_dir=output_dir)


def lazy_plugin_nodes(cfg: Any) -> List[Tuple[str, Any]]:
    """(dotted key, target) of every node of the LazyConfig `cfg` that builds a
    dropblock-det component, and of every dropblock-det class or function given as a
    value (`block_class=DropBlockBottleneckBlock`)."""
    found = []
    for key, parent, name in _lazy_nodes(cfg):
        if name == "_target_":  # counted as its node's
            continue
        value = parent[name]
        target = _target(value)
        if target is None and callable(value):
            target = value  # a class or function given as a value (`block_class=...`)
        if target is not None and _is_plugin_target(target):
            found.append((key, target))
    return found


def datasets_not_registered_by_detectron2(names: Sequence[str]) -> List[Tuple[str, str]]:
    """(name, the module of its loader) of each dataset of `names` registered in this process
    with a loader defined outside detectron2: dropblock-det's synthetic and VOC segmentation
    sets, or a user's own loader. A process with detectron2 alone lacks them, and
    detectron2's `train_net.py --eval-only` with the stock config stops there with
    "Dataset '...' is not registered". Names not registered here are left out, and so are
    sets registered through detectron2's helpers (`register_coco_instances`): their loader is
    detectron2's, like its builtin sets' (telling them apart would mean importing
    detectron2 afresh in another process)."""
    from detectron2.data import DatasetCatalog

    found = []
    for name in names:
        if name not in DatasetCatalog.list():
            continue
        func = DatasetCatalog[name]  # the loader registered, not called
        # detectron2's own loaders (builtin COCO, VOC, LVIS, ...) are defined in its modules;
        # a partial's module is its function's.
        module = getattr(getattr(func, "func", func), "__module__", None) or "?"
        if module.split(".")[0] != "detectron2":
            found.append((name, module))
    return found
