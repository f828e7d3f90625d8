"""Shared pieces of the reliability tests: tiny configs with DropBlock at every location and
the checks for plugin-specific state in checkpoints (the stock-detectron2 config, the tiny
synthetic set and `load_tool` are in conftest.py).

Imported by the test files of tests/reliability as `from reliability_helpers import ...`
(pytest puts each test file's folder on sys.path).
"""
from typing import Any, Iterator, List

from conftest import small_retinanet_cfg

# Every location the plugin can regularize in a ResNet-FPN RetinaNet.
ALL_RESNET_STAGES = ["res2", "res3", "res4", "res5"]
ALL_FPN_POSITIONS = ["lateral", "output", "top_block"]

# Keys whose names a leaked plugin state would carry (in a checkpoint, a state_dict...).
PLUGIN_WORDS = ("dropblock", "drop_block", "drop_path", "keep_prob", "regularizer")


def dropblock_everywhere_cfg(
    keep_prob: float = 0.9,
    block_size: int = 3,
    drop_path_rate: float = 0.1,
    head_norm: str = "GN",
    fpn_channels: int = 64,
):
    """A tiny R18 GN RetinaNet config (from Base-RetinaNet-Scratch.yaml) with DropBlock in
    every ResNet stage and position, every FPN position, both head towers, and DropPath.

    64 FPN channels: GN with 32 groups needs >= 2 values per group on the 1x1 P7 map of a
    64 px image. `head_norm=""` gives a head that detectron2 v0.6's stock RetinaNet can
    also build (for strict-loading comparisons).
    """
    cfg = small_retinanet_cfg("Base-RetinaNet-Scratch.yaml")
    cfg.MODEL.FPN.OUT_CHANNELS = fpn_channels
    cfg.MODEL.RETINANET.NORM = head_norm
    cfg.INPUT.MIN_SIZE_TEST = 64
    cfg.INPUT.MAX_SIZE_TEST = 64
    db = cfg.MODEL.DROPBLOCK
    db.KEEP_PROB = keep_prob
    db.BLOCK_SIZE = block_size
    db.RESNET.ENABLED = True
    db.RESNET.STAGES = list(ALL_RESNET_STAGES)
    db.FPN.ENABLED = True
    db.FPN.POSITIONS = list(ALL_FPN_POSITIONS)
    db.HEAD.ENABLED = True
    db.HEAD.TOWERS = ["cls", "bbox"]
    db.DROP_PATH_RATE = drop_path_rate
    return cfg


def nested_keys(obj: Any, prefix: str = "") -> Iterator[str]:
    """Every dict key of a nested checkpoint structure, as dotted paths."""
    if isinstance(obj, dict):
        for key, value in obj.items():
            path = f"{prefix}.{key}" if prefix else str(key)
            yield path
            yield from nested_keys(value, path)
    elif isinstance(obj, (list, tuple)):
        for i, value in enumerate(obj):
            yield from nested_keys(value, f"{prefix}[{i}]")


def plugin_specific_keys(obj: Any) -> List[str]:
    """The nested keys of `obj` whose names mention a plugin concept (see PLUGIN_WORDS)."""
    return [k for k in nested_keys(obj) if any(w in k.lower() for w in PLUGIN_WORDS)]
