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

`tools/export_stock_config.py` writes this config as a YAML file, checked against the
dropblock-det model and a checkpoint.
"""
import contextlib
from typing import Dict, Optional, Set

import torch
from detectron2.config import CfgNode, get_cfg
from detectron2.layers import ShapeSpec

__all__ = ["STOCK_COMPONENTS", "stock_config", "needs_deeplab_project", "empty_stock_config",
           "dropblock_component_advice"]

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


def dropblock_component_advice(cfg: CfgNode, location: str) -> str:
    """What to configure so that the MODEL.DROPBLOCK `location` ("RESNET.ENABLED",
    "FPN.ENABLED", "HEAD.ENABLED", ...) gets a regularizer: dropblock-det's counterpart of
    the stock component `cfg` names for it (e.g. MODEL.BACKBONE.NAME
    'build_dropblock_resnet_fpn_backbone' for a Faster R-CNN's 'build_resnet_fpn_backbone'),
    else the dropblock-det components of that key."""
    key = _LOCATION_COMPONENT_KEY.get(location, "MODEL.BACKBONE.NAME")
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


def _stock_retinanet_head_error(norm: str) -> Optional[Exception]:
    """Why this detectron2's own RetinaNetHead cannot build `norm`, or None where it can
    (v0.6 builds GN as GroupNorm(32, 1), which fails; current detectron2 builds it per
    conv)."""
    from detectron2.modeling.meta_arch.retinanet import RetinaNetHead

    meta = torch.device("meta") if hasattr(torch.device("meta"), "__enter__") else contextlib.nullcontext()
    try:
        with meta:
            RetinaNetHead(input_shape=[ShapeSpec(channels=32)], num_classes=1, num_anchors=1,
                          conv_dims=[32], norm=norm)
    except (ValueError, RuntimeError, KeyError) as e:
        return e
    return None


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
    error = _stock_retinanet_head_error(norm) if stock.MODEL.META_ARCHITECTURE == "RetinaNet" else None
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
