"""Shared by the tests of tools/: tiny configs and data (`load_tool` is in conftest.py)."""
import collections
import contextlib
import subprocess
import sys

from conftest import REPO
from conftest import tiny_synthetic_datasets as conftest_tiny_synthetic_datasets

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


def tiny_rcnn_tta_config(*opts):
    """The yaml text of a tiny GN Faster R-CNN on the synthetic sets that trains in seconds and
    is evaluated with detectron2's test-time augmentation (TEST.AUG.ENABLED, one extra size
    and the flip) after training; opts are appended."""
    from conftest import rcnn_cfg

    return rcnn_cfg(
        "DATASETS.TRAIN", "('synthetic_det_train',)", "DATASETS.TEST", "('synthetic_det_val',)",
        "INPUT.MIN_SIZE_TRAIN", "(64,)", "INPUT.MAX_SIZE_TRAIN", "64", "INPUT.MIN_SIZE_TEST", "64",
        "INPUT.MAX_SIZE_TEST", "64", "SOLVER.IMS_PER_BATCH", "1", "SOLVER.MAX_ITER", "2", "SOLVER.BASE_LR", "0.001",
        "SOLVER.WARMUP_ITERS", "1", "DATALOADER.NUM_WORKERS", "0", "MODEL.ROI_HEADS.BATCH_SIZE_PER_IMAGE", "32",
        "MODEL.RPN.POST_NMS_TOPK_TRAIN", "100", "MODEL.RPN.POST_NMS_TOPK_TEST", "50", "TEST.DETECTIONS_PER_IMAGE", "10",
        "MODEL.ROI_HEADS.SCORE_THRESH_TEST", "0.0",
        # GN: from scratch, FrozenBN's identity lets the activations blow up, and no box survives 2 steps.
        "MODEL.RESNETS.NORM", "GN", "MODEL.FPN.NORM", "GN",
        "TEST.AUG.ENABLED", "True", "TEST.AUG.MIN_SIZES", "(48,)", "TEST.AUG.MAX_SIZE", "128",  # + flipped
        *opts).dump()


def tiny_synthetic_datasets(root, **params):
    """conftest's tiny synthetic set, at TINY_DATA's size unless `params` say otherwise."""
    return conftest_tiny_synthetic_datasets(root, **{**TINY_DATA, **params})


@contextlib.contextmanager
def another_process_holding(folder):
    """While in the block, another process holds the folder's flock, as a running
    train_net / main_job / sweep does (claim_output_dir)."""
    holder = subprocess.Popen(
        [sys.executable, "-c",
         "import fcntl, os, sys, time; fd = os.open(sys.argv[1], os.O_RDONLY); "
         "fcntl.flock(fd, fcntl.LOCK_EX); print('held', flush=True); time.sleep(60)", str(folder)],
        stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        yield
    finally:
        holder.kill()
        holder.wait()


def tiny_dropblock_net():
    """Conv + DropBlock on 1-channel inputs: the smallest model the robustness evaluation
    switches DropBlock on in (its regularizer is `.drop`)."""
    from torch import nn

    from dropblock_det.layers import DropBlock2d

    return nn.Sequential(collections.OrderedDict(
        conv=nn.Conv2d(1, 4, 3, padding=1), drop=DropBlock2d(keep_prob=0.9, block_size=3)))


def run_copy_and_truncated_weights(out, tmp_path):
    """(run, partial, mtimes): a copy of the trained run `out` at tmp_path/run, the first
    4 KiB of its model_final.pth at tmp_path/partial.pth (a partial copy of a checkpoint),
    and {name: mtime} of the run's files, to check that a refused run touched none."""
    import shutil

    run = tmp_path / "run"
    shutil.copytree(out, run)
    partial = tmp_path / "partial.pth"
    partial.write_bytes((out / "model_final.pth").read_bytes()[:4096])
    return run, partial, file_mtimes(run)


def file_mtimes(folder):
    return {p.name: p.stat().st_mtime_ns for p in folder.iterdir()}


def cli_launches(tool, argv, monkeypatch):
    """Run `tool.cli()` (a training tool loaded by `load_tool`) on `argv` through a detectron2
    `launch` that only records the process count it is given, with no check of this
    machine's GPUs (--num-gpus 2 runs here): (those counts, the exit code; None where cli()
    returned)."""
    import detectron2.engine

    from dropblock_det.engine import trainer

    import tool_args  # (on sys.path once a tool is loaded)

    launched = []
    # A fresh command line's: an earlier test's run in this process passed its checks.
    monkeypatch.setattr(tool_args, "_checks_passed", False)
    monkeypatch.setattr(detectron2.engine, "launch", lambda main, num_gpus, **kwargs: launched.append(num_gpus))
    monkeypatch.setattr(trainer, "check_launch_processes", lambda num_gpus, num_machines: None)
    monkeypatch.setattr(sys, "argv", ["tool.py", *argv])
    try:
        tool.cli()
    except SystemExit as exit_info:
        return launched, exit_info.code
    return launched, None
