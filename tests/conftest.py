"""Shared fixtures: small CPU detectron2 configs built from the project's own base files."""
import os
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parent.parent
CONFIGS = REPO / "configs"


def pytest_collection_modifyitems(config, items):
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA device")
    for item in items:
        if "cuda" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(autouse=True)
def _deterministic_threads():
    # Keep CPU timing-insensitive tests lean on the 2-core CI machine.
    torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))
    yield


def small_retinanet_cfg(config_file: str = "Base-RetinaNet.yaml", depth: int = 18):
    """A RetinaNet config from the project's configs, shrunk to run in seconds on CPU."""
    from detectron2.config import get_cfg

    from dropblock_det import add_dropblock_config

    cfg = get_cfg()
    add_dropblock_config(cfg)
    cfg.merge_from_file(str(CONFIGS / config_file))
    cfg.MODEL.DEVICE = "cpu"
    cfg.MODEL.WEIGHTS = ""
    cfg.MODEL.RESNETS.DEPTH = depth
    if depth < 50:
        cfg.MODEL.RESNETS.RES2_OUT_CHANNELS = 64
    cfg.MODEL.FPN.OUT_CHANNELS = 32
    cfg.MODEL.RETINANET.NUM_CLASSES = 3
    cfg.MODEL.RETINANET.NUM_CONVS = 1
    cfg.INPUT.MIN_SIZE_TEST = 64
    cfg.INPUT.MAX_SIZE_TEST = 96
    return cfg
