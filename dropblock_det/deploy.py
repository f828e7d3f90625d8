"""Deploying a model trained with dropblock-det on stock detectron2, without the plugin.

At inference every regularizer is the identity, and no component adds a parameter or a
buffer or renames one: a dropblock-det checkpoint is a checkpoint of the stock detectron2
model, and gives that model's outputs. `stock_config(cfg)` is the config that builds it from
detectron2's own components (`RetinaNet`, `build_retinanet_resnet_fpn_backbone`,
`DeepLabV3PlusHead`, ...) with only keys stock detectron2 knows, so the stock model can be
served or exported with detectron2's own tools (`DefaultPredictor`,
`tools/deploy/export_model.py` with tracing or scripting, `torch.export`) where the
dropblock-det package is not installed. The dropblock-det modules themselves trace and
`torch.export` in eval mode, but do not TorchScript-script (detectron2's
`scripting_with_instances`): the stock model does.

`tools/export_stock_config.py` writes this config as a YAML file and checks a checkpoint
against the stock model.
"""
import contextlib
from typing import Dict, Set

import torch
from detectron2.config import CfgNode, get_cfg
from detectron2.layers import ShapeSpec

__all__ = ["STOCK_COMPONENTS", "stock_config", "needs_deeplab_project"]

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
}

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


def _schema(deeplab: bool, plugin: bool) -> Set[str]:
    from detectron2.projects.deeplab import add_deeplab_config

    from .config import add_dropblock_config

    cfg = get_cfg()
    if deeplab:
        add_deeplab_config(cfg)
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


def _stock_retinanet_head_builds(norm: str) -> bool:
    """Whether this detectron2's own RetinaNetHead builds `norm` (v0.6 builds GN as
    GroupNorm(32, 1), which fails; current detectron2 builds it per conv)."""
    from detectron2.modeling.meta_arch.retinanet import RetinaNetHead

    meta = torch.device("meta") if hasattr(torch.device("meta"), "__enter__") else contextlib.nullcontext()
    try:
        with meta:
            RetinaNetHead(input_shape=[ShapeSpec(channels=32)], num_classes=1, num_anchors=1,
                          conv_dims=[32], norm=norm)
    except (ValueError, RuntimeError, KeyError):
        return False
    return True


def stock_config(cfg: CfgNode) -> CfgNode:
    """The config of the stock detectron2 model that a dropblock-det model of `cfg` is at
    inference: the same config with every dropblock-det component replaced by its stock
    detectron2 counterpart (`STOCK_COMPONENTS`), and without the keys stock detectron2 does
    not know: `MODEL.DROPBLOCK` and `INPUT.CUTOUT` (training-only), and the DeepLab
    project's keys unless the stock model is a DeepLab one (see `needs_deeplab_project`).
    Keys of the user's own (neither detectron2's nor dropblock-det's) are kept.

    A checkpoint of the dropblock-det model loads strictly into the stock model, which gives
    the same outputs in eval mode. The config is for building, evaluating and exporting the
    model; training with the DropBlock schedule stays with dropblock-det's trainer.

    Raises:
        ValueError: naming MODEL.RETINANET.NORM, where this detectron2 (v0.6) cannot build
            the head's norm itself ("GN": dropblock-det's head builds it on every version).
    """
    stock = cfg.clone()
    stock.defrost()
    for key, names in STOCK_COMPONENTS.items():
        name = _get(stock, key)
        _set(stock, key, names.get(name, name))
    deeplab = needs_deeplab_project(stock)
    removable = _schema(deeplab=True, plugin=True) - _schema(deeplab=deeplab, plugin=False)
    _drop_keys(stock, removable)
    if stock.MODEL.META_ARCHITECTURE == "RetinaNet" and not _stock_retinanet_head_builds(stock.MODEL.RETINANET.NORM):
        raise ValueError(
            f"MODEL.RETINANET.NORM={stock.MODEL.RETINANET.NORM!r}: this detectron2's own "
            "RetinaNetHead cannot build that norm (detectron2 v0.6 builds GN for 1 channel; "
            "current detectron2 builds it), so there is no stock model to deploy it as; "
            "serve the DropBlockRetinaNet model in eval mode, or use current detectron2"
        )
    return stock

