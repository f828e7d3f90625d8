"""Shared by the tests of tools/: tiny configs and data, and loading a tool as a module."""
import contextlib
import importlib.util
import os

from conftest import REPO

DB_CONFIG = str(REPO / "configs" / "Synthetic" / "retinanet_R18_GN_dropblock_res45_kp0.9_b3.yaml")
BASELINE_CONFIG = str(REPO / "configs" / "Synthetic" / "Base-RetinaNet-Synthetic.yaml")
# A RetinaNet small enough to train a few iterations in seconds on 2 cores (64 FPN channels:
# GN with 32 groups needs 2 values per group on the 1x1 P7 of a 64 px image). Score threshold
# 0: a barely trained model must still produce detections, so AP is a real number.
TINY_OPTS = [
    "MODEL.FPN.OUT_CHANNELS", "64", "MODEL.RETINANET.NUM_CONVS", "1",
    "MODEL.RETINANET.SCORE_THRESH_TEST", "0.0",
    "INPUT.MIN_SIZE_TRAIN", "(64,)", "INPUT.MAX_SIZE_TRAIN", "64",
    "INPUT.MIN_SIZE_TEST", "64", "INPUT.MAX_SIZE_TEST", "64",
    "SOLVER.IMS_PER_BATCH", "2", "SOLVER.MAX_ITER", "3", "SOLVER.WARMUP_ITERS", "1",
    "DATALOADER.NUM_WORKERS", "0",
]
TINY_DATA = dict(num_train=6, num_val=3, image_size=64, min_object_size=14, max_object_size=36)


def load_tool(name: str):
    """tools/<name>.py imported as a module (tools/ is not a package)."""
    spec = importlib.util.spec_from_file_location(f"tool_{name}", REPO / "tools" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@contextlib.contextmanager
def tiny_synthetic_datasets(root, **params):
    """A tiny synthetic detection set under ``root``, registered there and named by
    DETECTRON2_DATASETS while the context lasts; both restored afterwards."""
    from dropblock_det.data.synthetic import make_synthetic_detection, register_synthetic_datasets

    make_synthetic_detection(root, **{**TINY_DATA, **params})
    old = os.environ.get("DETECTRON2_DATASETS")
    os.environ["DETECTRON2_DATASETS"] = str(root)
    register_synthetic_datasets(root)
    try:
        yield root
    finally:
        if old is None:
            del os.environ["DETECTRON2_DATASETS"]
        else:
            os.environ["DETECTRON2_DATASETS"] = old
        register_synthetic_datasets()
