"""tools/analyze_robustness.py and tools/sweep.py with a LazyConfig (a `.py` config, `key=value`
opts), on the tiny synthetic set: the same numbers as the yacs tool on the twin config, the
evaluator's predictions kept out of the training run's folder, the refusals, and the sweep's
resumable, fingerprinted cells."""
import csv
import json
import math

import pytest

from conftest import CONFIGS, load_tool
from tools_helpers import DB_CONFIG, TINY_OPTS, tiny_synthetic_datasets

LAZY_CONFIG = str(CONFIGS / "Synthetic" / "retinanet_R18_GN_dropblock_res45_kp0.9_b3.py")
# The yacs TINY_OPTS' model and test input in LazyConfig overrides (the .py twin already has
# 64 FPN channels): one head conv, score threshold 0, 64 px test images.
TINY_LAZY_EVAL_OPTS = [
    "model.head.conv_dims=[64]", "model.test_score_thresh=0.0",
    "dataloader.test.mapper.augmentations.0.short_edge_length=64",
    "dataloader.test.mapper.augmentations.0.max_size=64",
]
# ... and training: 64 px, batches of 2, 2 iterations.
TINY_LAZY_OPTS = TINY_LAZY_EVAL_OPTS + [
    "dataloader.train.mapper.augmentations.0.short_edge_length=[64]",
    "dataloader.train.mapper.augmentations.0.max_size=64",
    "dataloader.train.total_batch_size=2", "train.max_iter=2", "train.log_period=1",
    "train.device=cpu",
]


@pytest.fixture(scope="module")
def tiny_datasets(tmp_path_factory):
    with tiny_synthetic_datasets(tmp_path_factory.mktemp("datasets"), num_val=2) as root:
        yield root


@pytest.fixture(scope="module")
def checkpoints(tiny_datasets, tmp_path_factory):
    """{label: path}: a DropBlock model of the yacs twin (tiny), and one of another
    architecture (two head convs)."""
    from detectron2.checkpoint import DetectionCheckpointer

    from dropblock_det.engine.trainer import DropBlockTrainer, load_config

    folder = tmp_path_factory.mktemp("checkpoints")
    paths = {}
    for label, opts in (("dropblock", TINY_OPTS), ("other", TINY_OPTS + ["MODEL.RETINANET.NUM_CONVS", "2"])):
        model = DropBlockTrainer.build_model(load_config(DB_CONFIG, opts))
        DetectionCheckpointer(model, save_dir=str(folder)).save(label)
        paths[label] = str(folder / f"{label}.pth")
    return paths


def _robustness_argv(config, checkpoint, out, keep_probs=("1.0", "0.5"), seeds=("0", "1")):
    return ["--config-file", config, "--checkpoint", checkpoint + ":DropBlock",
            "--keep-probs", *keep_probs, "--seeds", *seeds, "--output-dir", str(out)]


# ----------------------------------------------------------------------------- robustness
def test_lazy_robustness_gives_the_yacs_tools_numbers_on_the_twin_config(checkpoints, tmp_path, capsys):
    # The .py config is the .yaml's twin (tests/engine/test_lazy.py: the same model), so the
    # same checkpoint with the same keep_probs and seeds draws the same DropBlock masks and
    # gives the same detections.
    tool = load_tool("analyze_robustness")
    run = tmp_path / "run"  # the training run's folder: its predictions must stay its own
    (run / "inference").mkdir(parents=True)
    (run / "inference" / "coco_instances_results.json").write_text("[]")
    yacs = tool.main(_robustness_argv(DB_CONFIG, checkpoints["dropblock"], tmp_path / "yacs")
                     + TINY_OPTS + ["OUTPUT_DIR", str(run)])
    lazy = tool.main(_robustness_argv(LAZY_CONFIG, checkpoints["dropblock"], tmp_path / "lazy")
                     + TINY_LAZY_EVAL_OPTS + [f"train.output_dir={run}"])
    assert lazy == yacs
    (curve,) = lazy.values()
    assert len(curve[1.0]) == 1 and len(curve[0.5]) == 2
    assert all(math.isfinite(v) and 0 <= v <= 100 for v in curve[1.0] + curve[0.5])
    # The last evaluation's (keep_prob 0.5, seed 1) detections, written where the yacs
    # tool's go: identical, and not the training run's.
    predictions = [tmp_path / kind / "evaluation" / "inference" / "synthetic_det_val" / "coco_instances_results.json"
                   for kind in ("yacs", "lazy")]
    assert predictions[0].read_text() == predictions[1].read_text() != "[]"
    assert [p.name for p in (run / "inference").iterdir()] == ["coco_instances_results.json"]
    assert (run / "inference" / "coco_instances_results.json").read_text() == "[]"
    printed = capsys.readouterr().out
    assert "DropBlock AP" in printed and (tmp_path / "lazy" / "robustness.png").stat().st_size > 0
    assert (tmp_path / "lazy" / "robustness.txt").read_text() == (tmp_path / "yacs" / "robustness.txt").read_text()


def test_lazy_robustness_evaluates_the_first_test_dataset_only(checkpoints, tmp_path):
    tool = load_tool("analyze_robustness")
    cfg = tool.lazy_robustness_config(
        LAZY_CONFIG, ["dataloader.test.dataset.names=[synthetic_det_val,synthetic_det_train]"], str(tmp_path))
    assert cfg.dataloader.test.dataset.names == cfg.dataloader.evaluator.dataset_name == "synthetic_det_val"
    assert cfg.dataloader.evaluator.output_dir == str(tmp_path / "evaluation" / "inference" / "synthetic_det_val")
    assert cfg.train.output_dir == str(tmp_path / "evaluation")
    with pytest.raises(ValueError, match=r"dataloader\.evaluator\.dataset_name='synthetic_det_train'.*'synthetic_det_val'"):
        tool.lazy_robustness_config(LAZY_CONFIG, ["dataloader.evaluator.dataset_name=synthetic_det_train"])
    with pytest.raises(ValueError, match=r"dataloader\.test\.dataset\.names is empty"):
        tool.lazy_robustness_config(LAZY_CONFIG, ["dataloader.test.dataset.names=[]"])


@pytest.mark.parametrize("opts, keep_probs, error, match", [
    # No regularizer anywhere (the res4/res5 ones are the only ones the synthetic twin has).
    (["model.backbone.bottom_up.stages.dropblock_stages=[]", "model.backbone.bottom_up.stages.stage_drop_scales=[]"],
     ("0.9",), ValueError,
     r"retinanet_R18_GN_dropblock_res45_kp0\.9_b3\.py \(\+ opts\) builds a model with no DropBlock.*"
     r"DropBlock config of the same architecture.*adds no parameters"),
    ([], ("0.9", "1.5"), ValueError, "--keep-probs"),
    (["dataloader.evaluator=null"], ("0.9",), ValueError, r"has no dataloader\.evaluator"),
    (["train.output_dir"], ("0.9",), ValueError, r"command-line opt 'train\.output_dir': expected key=value"),
    (["dataloader.test.dataset.names=nope"], ("0.9",), KeyError, r"dataloader\.test\.dataset\.names names 'nope'"),
    # DropBlock runs in these evaluations: its kernels must run on train.device.
    (["dropblock.impl=triton"], ("0.9",), ValueError, r"impl='triton' cannot run on train\.device='cpu'"),
])
def test_lazy_robustness_refuses_before_any_evaluation(checkpoints, tmp_path, monkeypatch, opts, keep_probs,
                                                       error, match):
    from dropblock_det.engine import lazy

    evaluations = []
    monkeypatch.setattr(lazy, "do_test", lambda *a: evaluations.append(a))
    argv = _robustness_argv(LAZY_CONFIG, checkpoints["dropblock"], tmp_path / "out", keep_probs=keep_probs)
    with pytest.raises(error, match=match):
        load_tool("analyze_robustness").main(argv + TINY_LAZY_EVAL_OPTS + ["train.device=cpu"] + opts)
    assert evaluations == [] and not (tmp_path / "out").exists()


def test_lazy_robustness_checks_every_checkpoint_before_the_first_evaluation(checkpoints, tmp_path, monkeypatch):
    from dropblock_det.engine import lazy
    from dropblock_det.engine.trainer import CheckpointMismatchError

    evaluations = []
    monkeypatch.setattr(lazy, "do_test", lambda *a: evaluations.append(a))
    out = tmp_path / "out"
    argv = _robustness_argv(LAZY_CONFIG, checkpoints["dropblock"], out) + [
        "--checkpoint", checkpoints["other"]]
    with pytest.raises(CheckpointMismatchError, match=r"other\.pth.*head\.cls_subnet"):
        load_tool("analyze_robustness").main(argv + TINY_LAZY_EVAL_OPTS)
    assert evaluations == [] and not out.exists()
