"""The analyses: robustness to DropBlock at inference (tools/analyze_robustness.py) and the
block_size x keep_prob sweep (tools/sweep.py), on tiny models and grids."""
import csv
import json
import math
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch import nn

from conftest import REPO, load_tool
from tools_helpers import (
    BASELINE_CONFIG,
    DB_CONFIG,
    TINY_OPTS,
    another_process_holding,
    tiny_dropblock_net,
    tiny_rcnn_tta_config,
    tiny_synthetic_datasets,
)


@pytest.fixture(scope="module")
def tiny_datasets(module_tmp_path_factory):
    with tiny_synthetic_datasets(module_tmp_path_factory.mktemp("datasets"), num_val=2) as root:
        yield root


# ----------------------------------------------------------------------------- robustness
def test_regularizers_are_on_at_inference_only_during_the_evaluation():
    from dropblock_det.analysis import evaluate_with_dropblock_at_inference

    torch.manual_seed(0)
    net = tiny_dropblock_net()
    x = torch.randn(2, 1, 16, 16)
    net.eval()
    clean = net(x).sum().item()
    seen = []

    def evaluate(model):
        seen.append((model.training, model.drop.training, model.drop.keep_prob))
        with torch.no_grad():
            return {"v": model(x).sum().item()}

    curves = evaluate_with_dropblock_at_inference(net, evaluate, [1.0, 0.5], [0, 1],
                                                  lambda r: r["v"])
    assert curves[1.0] == [pytest.approx(clean)]  # keep_prob 1: once, identical to eval
    assert len(curves[0.5]) == 2 and curves[0.5][0] != curves[0.5][1]  # seeds differ
    assert all(v != pytest.approx(clean) for v in curves[0.5])
    assert seen[1:] == [(False, True, 0.5)] * 2  # model in eval(), regularizer training
    assert not net.training and not net.drop.training and net.drop.keep_prob == 0.9


def test_a_model_without_regularizers_is_refused():
    from dropblock_det.analysis import evaluate_with_dropblock_at_inference

    with pytest.raises(ValueError, match="no DropBlock"):
        evaluate_with_dropblock_at_inference(nn.Conv2d(1, 1, 1), lambda m: {}, [0.9], [0],
                                             lambda r: 0.0)


def test_a_bad_keep_prob_is_refused_before_the_first_evaluation():
    from dropblock_det.analysis import evaluate_with_dropblock_at_inference

    evaluations = []
    with pytest.raises(ValueError, match="keep_prob must be in \\(0, 1\\], got 1.5"):
        evaluate_with_dropblock_at_inference(tiny_dropblock_net(), lambda m: evaluations.append(m) or {}, [0.9, 1.5], [0],
                                             lambda r: 0.0)
    assert evaluations == []


@pytest.mark.parametrize("stock, ours", [
    ("build_resnet_backbone", "build_dropblock_resnet_backbone"),
    ("build_resnet_fpn_backbone", "build_dropblock_resnet_fpn_backbone"),
    ("build_retinanet_resnet_fpn_backbone", "build_dropblock_retinanet_resnet_fpn_backbone"),
    ("build_resnet_deeplab_backbone", "build_dropblock_resnet_deeplab_backbone"),
    ("build_dropblock_resnet_backbone", "build_dropblock_resnet_backbone"),
])
def test_robustness_config_swaps_a_stock_backbone_for_its_dropblock_equivalent(tiny_datasets, stock, ours):
    # A checkpoint trained with stock detectron2 is evaluated with DropBlock inserted.
    cfg = load_tool("analyze_robustness").robustness_config(BASELINE_CONFIG, TINY_OPTS + ["MODEL.BACKBONE.NAME", stock])
    assert cfg.MODEL.BACKBONE.NAME == ours
    assert cfg.MODEL.DROPBLOCK.RESNET.ENABLED


def test_robustness_config_swaps_a_stock_c4_rcnns_res5_head_so_its_res5_gets_dropblock(tmp_path):
    # A C4 R-CNN's res5 is in its ROI head: a stock Res5ROIHeads would stay without DropBlock,
    # and the evaluations would switch on res4's alone.
    from conftest import rcnn_cfg

    config = tmp_path / "faster_rcnn_c4.yaml"
    config.write_text(rcnn_cfg("MODEL.BACKBONE.NAME", "build_resnet_backbone", "MODEL.DROPBLOCK.RESNET.ENABLED", "False",
                               "MODEL.DROPBLOCK.RESNET.STAGES", "['res4', 'res5']",
                               "DATASETS.TEST", "('synthetic_det_val',)", c4=True).dump())
    cfg = load_tool("analyze_robustness").robustness_config(str(config), [])
    assert (cfg.MODEL.BACKBONE.NAME, cfg.MODEL.ROI_HEADS.NAME) == ("build_dropblock_resnet_backbone",
                                                                   "DropBlockRes5ROIHeads")
    assert cfg.MODEL.DROPBLOCK.RESNET.ENABLED and list(cfg.MODEL.DROPBLOCK.RESNET.STAGES) == ["res4", "res5"]


def test_detectron2_evaluation_keeps_the_switched_on_regularizers_active(tiny_datasets, tmp_path):
    # inference_on_dataset calls model.eval() on an nn.Module, which would silently turn
    # DropBlock off again; the tool hands it a plain callable instead.
    from dropblock_det.engine.config_checks import load_config
    from dropblock_det.engine.trainer import DropBlockTrainer
    from dropblock_det.layers import iter_regularizers, set_keep_prob

    tool = load_tool("analyze_robustness")
    cfg = load_config(DB_CONFIG, TINY_OPTS + ["OUTPUT_DIR", str(tmp_path)])  # its inference/ folder
    model = DropBlockTrainer.build_model(cfg)
    model.eval()
    modes = []
    for _, reg in iter_regularizers(model):
        reg.train()
        reg.register_forward_hook(lambda m, i, o: modes.append((m.training, m.keep_prob)))
    set_keep_prob(model, 0.5)
    DropBlockTrainer.test(cfg, tool._ForwardOnly(model))
    assert modes and all(m == (True, 0.5) for m in modes)
    assert not model.training


def test_robustness_refuses_test_aug_which_its_evaluations_do_not_run(tiny_datasets, tmp_path):
    # train_net runs an R-CNN's TTA; this tool evaluates the model itself with DropBlock on,
    # so TEST.AUG.ENABLED would be ignored, unannounced. Refused before anything is built.
    from conftest import rcnn_cfg

    config = tmp_path / "faster_rcnn.yaml"
    config.write_text(rcnn_cfg("DATASETS.TEST", "('synthetic_det_val',)", "TEST.AUG.ENABLED", "True").dump())
    (tmp_path / "model.pth").write_bytes(b"")
    with pytest.raises(ValueError, match=r"^TEST\.AUG\.ENABLED=True: this evaluation runs no test-time augmentation "
                                         r"\(MODEL\.META_ARCHITECTURE='GeneralizedRCNN'\)"):
        load_tool("analyze_robustness").main(["--config-file", str(config), "--checkpoint", str(tmp_path / "model.pth"),
                                              "--keep-probs", "0.9", "--output-dir", str(tmp_path / "out")])
    assert not (tmp_path / "out").exists()


def test_robustness_tool_compares_a_dropblock_and_a_stock_checkpoint(tiny_datasets, tmp_path,
                                                                    capsys, monkeypatch):
    from detectron2.checkpoint import DetectionCheckpointer

    from dropblock_det.engine.checkpoint import CheckpointMismatchError
    from dropblock_det.engine.config_checks import load_config
    from dropblock_det.engine.trainer import DropBlockTrainer
    from dropblock_det.layers import iter_regularizers

    # Two checkpoints of the same architecture: one built with DropBlock, one without (its
    # weights must load into the DropBlock model the tool builds).
    paths = {}
    for label, config in (("dropblock", DB_CONFIG), ("baseline", BASELINE_CONFIG)):
        cfg = load_config(config, TINY_OPTS)
        model = DropBlockTrainer.build_model(cfg)
        if label == "baseline":
            assert not list(iter_regularizers(model))
        DetectionCheckpointer(model, save_dir=str(tmp_path)).save(label)
        paths[label] = str(tmp_path / f"{label}.pth")
    tool = load_tool("analyze_robustness")
    out = tmp_path / "robustness"
    # The training run's folder: its evaluation files must not be replaced by the tool's.
    run = tmp_path / "run"
    (run / "inference").mkdir(parents=True)
    (run / "inference" / "coco_instances_results.json").write_text("[]")
    argv = ["--config-file", BASELINE_CONFIG,
            "--checkpoint", paths["dropblock"] + ":DropBlock",
            "--checkpoint", paths["baseline"] + ":baseline",
            "--keep-probs", "1.0", "0.5", "--seeds", "0", "1", "--output-dir", str(out),
            ] + TINY_OPTS + ["OUTPUT_DIR", str(run)]
    # Bad arguments are refused before any evaluation, by name.
    for flag, bad_value, error in (("--keep-probs", "1.5", ValueError), ("--checkpoint", str(tmp_path / "no.pth"), FileNotFoundError)):
        bad_argv = list(argv)
        bad_argv[bad_argv.index(flag) + 1] = bad_value
        with pytest.raises(error, match=flag):
            tool.main(bad_argv)
    # Two checkpoints under one label (here both default to the file name): one curve would
    # silently replace the other.
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    same_name = [str(shutil.copy(paths[k], tmp_path / d / "model_final.pth")) for k, d in (("dropblock", "a"), ("baseline", "b"))]
    for specs in ([same_name[0], same_name[1]], [paths["dropblock"] + ":x", paths["baseline"] + ":x"]):
        bad_argv = argv[:2] + [a for spec in specs for a in ("--checkpoint", spec)] + argv[6:]
        with pytest.raises(ValueError, match=r"--checkpoint: label '(model_final|x)' names 2 checkpoints"):
            tool.main(bad_argv)
    # A checkpoint of another architecture after a good one: refused before the good one's
    # evaluations (whose results its error would lose), and before anything is written.
    other = load_config(BASELINE_CONFIG, TINY_OPTS + ["MODEL.RETINANET.NUM_CONVS", "2"])
    DetectionCheckpointer(DropBlockTrainer.build_model(other), save_dir=str(tmp_path)).save("other")
    evaluations = []
    real_test = DropBlockTrainer.test
    monkeypatch.setattr(DropBlockTrainer, "test", classmethod(
        lambda cls, *a, **k: evaluations.append(a) or real_test.__func__(cls, *a, **k)))
    with pytest.raises(CheckpointMismatchError, match=r"^--checkpoint: .*other\.pth.*head\.cls_subnet"):
        tool.main(argv[:4] + ["--checkpoint", str(tmp_path / "other.pth")] + argv[6:])
    # A file that is no checkpoint: named with the flag too (the file alone before).
    (tmp_path / "notes.pth").write_text("not a checkpoint\n")
    with pytest.raises(RuntimeError, match=r"^--checkpoint: .*notes\.pth"):
        tool.main(argv[:4] + ["--checkpoint", str(tmp_path / "notes.pth")] + argv[6:])
    assert evaluations == [] and not out.exists()
    curves = tool.main(argv)
    assert len(evaluations) == 2 * 3  # the table's evaluations: 2 checkpoints x (1 + 2 seeds)
    assert sorted(p.name for p in (run / "inference").iterdir()) == ["coco_instances_results.json"]
    assert (run / "inference" / "coco_instances_results.json").read_text() == "[]"
    assert set(curves) == {"DropBlock", "baseline"}
    for c in curves.values():
        assert len(c[1.0]) == 1 and len(c[0.5]) == 2
        assert all(math.isfinite(v) and 0 <= v <= 100 for v in c[1.0] + c[0.5])
    printed = capsys.readouterr().out
    assert "keep_prob" in printed and "DropBlock AP" in printed and "baseline AP" in printed
    assert (out / "robustness.png").stat().st_size > 0
    table = (out / "robustness.txt").read_text()
    assert table.startswith("keep_prob")
    # Its log.txt beside them (stop 55; none before): the evaluations' lines and what it printed.
    log = (out / "log.txt").read_text()
    assert "dropblock_det.printed INFO: switched on at inference, each at every --keep-probs value: " in log
    assert log.count("Start inference on") == len(evaluations) and table in log and "robustness.png" in log
    # A rerun into the same --output-dir moves the earlier results aside; a checkpoint kept
    # in the folder that moves (evaluation/) is copied, so the rerun still finds it.
    kept = out / "evaluation" / "kept.pth"
    shutil.copy(paths["baseline"], kept)
    rerun = argv[:2] + ["--checkpoint", f"{kept}:baseline"] + argv[6:]
    tool.main(rerun[:4] + ["--keep-probs", "1.0", "--seeds", "0"] + rerun[10:])
    (archived,) = (out / "previous_runs").iterdir()
    assert sorted(p.name for p in archived.iterdir()) == ["evaluation", "log.txt", "robustness.png", "robustness.txt"]
    assert (archived / "robustness.txt").read_text() == table != (out / "robustness.txt").read_text()
    assert (archived / "log.txt").read_text() == log and table not in (out / "log.txt").read_text()
    assert f"the earlier results in {out} were moved to {archived}" in (out / "log.txt").read_text()
    assert kept.is_file() and (archived / "evaluation" / "kept.pth").is_file()


def test_each_checkpoints_curve_is_evaluated_with_its_own_weights(tiny_datasets, tmp_path, monkeypatch):
    # Every checkpoint is loaded once before the evaluations (to refuse one that does not
    # fit the model); each curve must then be evaluated with its own weights loaded again,
    # not every label with the last checkpoint checked.
    from detectron2.checkpoint import DetectionCheckpointer

    from dropblock_det.engine.config_checks import load_config
    from dropblock_det.engine.trainer import DropBlockTrainer

    model = DropBlockTrainer.build_model(load_config(DB_CONFIG, TINY_OPTS))
    for label, value in (("first", 1.0), ("second", 2.0)):
        with torch.no_grad():
            for p in model.parameters():
                p.fill_(value)
        DetectionCheckpointer(model, save_dir=str(tmp_path)).save(label)

    def weight_as_ap(cls, cfg, forward_only, evaluators=None):  # the weights the evaluation ran with
        return {"bbox": {"AP": next(forward_only.model.parameters()).flatten()[0].item()}}

    monkeypatch.setattr(DropBlockTrainer, "test", classmethod(weight_as_ap))
    curves = load_tool("analyze_robustness").main(
        ["--config-file", DB_CONFIG, "--checkpoint", f"{tmp_path / 'first.pth'}:first",
         "--checkpoint", f"{tmp_path / 'second.pth'}:second", "--keep-probs", "1.0", "0.5", "--seeds", "0",
         "--output-dir", str(tmp_path / "out")] + TINY_OPTS)
    assert curves == {"first": {1.0: [1.0], 0.5: [1.0]}, "second": {1.0: [2.0], 0.5: [2.0]}}


def test_a_segmentation_test_sets_curves_are_its_miou_and_a_detectors_its_box_ap():
    import dropblock_det  # noqa: F401  (registers the synthetic sets)

    tool = load_tool("analyze_robustness")
    results = {"sem_seg": {"mIoU": 61.5}, "bbox": {"AP": 12.5}}
    name, read = tool.dataset_metric("synthetic_sem_seg_val")
    assert (name, read(results)) == ("mIoU", 61.5)
    name, read = tool.dataset_metric("synthetic_det_val")
    assert (name, read(results)) == ("AP", 12.5)


def test_robustness_defaults_are_the_papers_keep_probs_and_three_seeds():
    # The table's rows and its n (the std over the seeds) when the flags are left out.
    args = load_tool("analyze_robustness").parse_args(["--config-file", "c.yaml", "--checkpoint", "m.pth"])
    assert args.keep_probs == [1.0, 0.95, 0.9, 0.85, 0.8, 0.75] and args.seeds == [0, 1, 2]
    assert args.output_dir == "output/robustness"


# ----------------------------------------------------------------------------- sweep
def _files(root):
    """{relative path: (size, mtime)} of every file under root: "untouched" means equal."""
    return {str(p.relative_to(root)): (p.stat().st_size, p.stat().st_mtime_ns)
            for p in sorted(root.rglob("*")) if p.is_file()}


def test_sweep_writes_csv_and_heatmap_and_skips_finished_cells(tiny_datasets, tmp_path):
    from dropblock_det.analysis import SweepMismatchError

    tool = load_tool("sweep")
    out = tmp_path / "sweep"
    argv = ["--config-file", DB_CONFIG, "--block-sizes", "1", "3", "--keep-probs", "0.8",
            "--output-dir", str(out)] + TINY_OPTS + ["SOLVER.MAX_ITER", "2"]
    # Two TEST datasets: a cell is evaluated on the first (DefaultTrainer.test would key
    # its results by dataset name).
    argv += ["DATASETS.TEST", "('synthetic_det_val', 'synthetic_det_train')"]
    values = tool.main(argv)
    assert set(values) == {(1, 0.8), (3, 0.8)}
    with open(out / "sweep.csv") as f:
        rows = list(csv.DictReader(f))
    assert [(r["block_size"], r["keep_prob"]) for r in rows] == [("1", "0.8"), ("3", "0.8")]
    assert all(math.isfinite(float(r["value"])) for r in rows)
    # Each row's fingerprint is the one its cell folder records; the cells' differ.
    for r in rows:
        record = json.loads((out / f"b{r['block_size']}_kp0.8" / "sweep_cell.json").read_text())
        assert len(r["fingerprint"]) == 64 and record["fingerprint"] == r["fingerprint"]
        assert record["config"]["SOLVER"]["MAX_ITER"] == 2 and "OUTPUT_DIR" not in record["config"]
    assert rows[0]["fingerprint"] != rows[1]["fingerprint"]
    assert (out / "sweep.png").stat().st_size > 0
    weights = out / "b3_kp0.8" / "model_final.pth"
    mtime = weights.stat().st_mtime_ns
    # Rerun with one more cell: only the new one trains.
    again = tool.main(argv[:6] + ["0.8", "0.9"] + argv[7:])
    assert weights.stat().st_mtime_ns == mtime
    assert set(again) == {(1, 0.8), (3, 0.8), (1, 0.9), (3, 0.9)}
    assert again[(3, 0.8)] == values[(3, 0.8)]
    with open(out / "sweep.csv") as f:
        assert len(list(csv.DictReader(f))) == 4
    # A rerun with part of the grid: the heatmap is redrawn from every CSV row, not from the
    # one cell named (it used to shrink to that cell).
    from dropblock_det import analysis

    drawn = []
    real_plot = analysis.plot_sweep_heatmap
    try:
        analysis.plot_sweep_heatmap = lambda values, *a, **k: drawn.append(dict(values)) or real_plot(values, *a, **k)
        assert set(tool.main(argv[:4] + ["1"] + argv[5:])) == {(1, 0.8)}
    finally:
        analysis.plot_sweep_heatmap = real_plot
    assert drawn == [{(1, 0.8): values[(1, 0.8)], (3, 0.8): values[(3, 0.8)],
                      (1, 0.9): again[(1, 0.9)], (3, 0.9): again[(3, 0.9)]}]
    # Another configuration into the same folder (changed opt, another config file): refused
    # before anything trains, naming the CSV, the cells and the changed key; nothing touched.
    before = _files(out)
    for changed, key in ((argv + ["SOLVER.MAX_ITER", "3"], "SOLVER.MAX_ITER: 2 -> 3"),
                         (argv[:1] + [BASELINE_CONFIG] + argv[2:] + ["MODEL.DROPBLOCK.RESNET.ENABLED", "True"],
                          "MODEL.DROPBLOCK.RESNET.STAGE_DROP_SCALES: [0.25, 1.0] -> []")):
        with pytest.raises(SweepMismatchError) as e:
            # kp 0.7 first: a new cell that would train before a lazy check
            tool.main(changed[:6] + ["0.7", "0.8", "0.9"] + changed[7:])
        msg = str(e.value)
        assert str(out / "sweep.csv") in msg and "--output-dir" in msg and key in msg
        assert all(f"block_size={b} keep_prob={kp}" in msg
                   for b in (1, 3) for kp in ("0.8", "0.9"))
        assert _files(out) == before  # no new cell (kp 0.7) either
    # A config without DropBlock: every cell would be the same baseline. Refused by name.
    with pytest.raises(ValueError, match=r"Base-RetinaNet-Synthetic\.yaml .*enables no MODEL\.DROPBLOCK location"):
        tool.main(argv[:1] + [BASELINE_CONFIG] + argv[2:])
    assert _files(out) == before


def test_a_sweep_whose_seed_is_random_warns_that_its_cells_differ_by_more_than_the_grid(tiny_datasets, tmp_path):
    # detectron2's default SEED -1 seeds each cell at random: other weights and data per cell.
    argv = ["--config-file", DB_CONFIG, "--block-sizes", "3", "--keep-probs", "0.9", "--output-dir",
            str(tmp_path / "sweep")] + TINY_OPTS + ["SEED", "-1", "SOLVER.MAX_ITER", "2"]
    with pytest.warns(UserWarning, match=r"^SEED=-1 \(a random seed per cell\): the cells differ by more than "
                                         r"block_size and keep_prob .*set SEED to a seed >= 0"):
        load_tool("sweep").main(argv)


def test_a_sweep_of_an_rcnn_with_test_aug_records_the_tta_box_ap(tiny_datasets, tmp_path, capsys):
    # train_net evaluates such a model with and without test-time augmentation; the cell's
    # value is the augmented one the config asks for (it was the plain bbox/AP, unannounced).
    from dropblock_det.analysis import read_metrics

    config = tmp_path / "faster_rcnn_tta.yaml"
    # A seed whose two APs differ (detectron2's SEED -1 drew one per run: with some, both
    # were 0.0 after the two steps, and the test failed at random).
    config.write_text(tiny_rcnn_tta_config("SEED", "4"))
    out = tmp_path / "sweep"
    argv = ["--config-file", str(config), "--block-sizes", "3", "--keep-probs", "0.9", "--output-dir", str(out)]
    values = load_tool("sweep").main(argv)
    (record,) = [r for r in read_metrics(out / "b3_kp0.9" / "metrics.json") if "bbox_TTA/AP" in r]
    assert record["bbox_TTA/AP"] != record["bbox/AP"]  # else this test could not tell them apart
    assert values == {(3, 0.9): pytest.approx(record["bbox_TTA/AP"])}
    with open(out / "sweep.csv") as f:
        (row,) = csv.DictReader(f)
    assert float(row["value"]) == pytest.approx(record["bbox_TTA/AP"])
    # A rerun reuses the row and names the metric it is.
    capsys.readouterr()
    assert load_tool("sweep").main(argv) == values
    assert f"bbox_TTA/AP={values[(3, 0.9)]:.3f}" in capsys.readouterr().out


def test_a_segmentation_sweeps_cells_are_their_miou_and_seed_0_is_not_said_to_be_random(tiny_datasets, tmp_path,
                                                                                      monkeypatch):
    # A cell's value is its test set's metric: sem_seg/mIoU for a segmentation set (a misnamed
    # key failed only after the cell had trained). SEED 0 is a seed: only a negative one warns.
    # The trainer is replaced by one that returns an evaluation's results: this pins the
    # sweep's bookkeeping, not a training.
    import warnings

    from dropblock_det.data.synthetic import make_synthetic_sem_seg
    from dropblock_det.engine import trainer

    make_synthetic_sem_seg(tiny_datasets, num_train=1, num_val=1, image_size=32, min_object_size=8,
                           max_object_size=16)
    built = []

    class Evaluated(trainer.DropBlockTrainer):  # its class methods build and check as the real one
        def __init__(self, cfg):
            built.append(cfg.OUTPUT_DIR)

        def resume_or_load(self, resume):
            pass

        def train(self):
            return {"sem_seg": {"mIoU": 42.5, "fwIoU": 50.0}}

    monkeypatch.setattr(trainer, "DropBlockTrainer", Evaluated)
    config = REPO / "configs" / "PascalVOC-SemanticSegmentation" / "fcn_R_50_FPN_GN_scratch_dropblock_head_kp0.9_b7_poly_330k_bs16.yaml"
    out = tmp_path / "sweep"
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        values = load_tool("sweep").main([
            "--config-file", str(config), "--block-sizes", "3", "--keep-probs", "0.9", "--output-dir", str(out),
            "MODEL.DEVICE", "cpu", "MODEL.SEM_SEG_HEAD.NUM_CLASSES", "4", "SEED", "0",
            "DATASETS.TRAIN", "('synthetic_sem_seg_train',)", "DATASETS.TEST", "('synthetic_sem_seg_val',)"])
    assert values == {(3, 0.9): 42.5} and built == [str(out / "b3_kp0.9")]
    with open(out / "sweep.csv") as f:
        (row,) = csv.DictReader(f)
    assert (row["metric"], float(row["value"])) == ("sem_seg/mIoU", 42.5)
    assert not [w for w in caught if "a random seed per cell" in str(w.message)]


def test_sweep_cells_start_from_the_same_seed_and_record_their_config(tiny_datasets, tmp_path):
    # keep_prob 1.0: DropBlock never drops, so block 1 and block 3 are the same training and
    # must log the same losses; before each cell was seeded, the second one started from
    # the random state the first left (other weights, other data order).
    out = tmp_path / "sweep"
    load_tool("sweep").main(["--config-file", DB_CONFIG, "--block-sizes", "1", "3", "--keep-probs", "1.0",
                             "--output-dir", str(out)] + TINY_OPTS + ["SOLVER.MAX_ITER", "2"])
    from dropblock_det.analysis import read_metrics

    losses = [[r["total_loss"] for r in read_metrics(out / f"b{b}_kp1" / "metrics.json") if "total_loss" in r]
              for b in (1, 3)]
    assert losses[0] and losses[0] == losses[1]
    config = (out / "b3_kp1" / "config.yaml").read_text()
    assert "BLOCK_SIZE: 3" in config and "SEED: 7" in config
    # Each cell's log.txt holds its own training only (the handler leaves with the cell).
    logs = [(out / f"b{b}_kp1" / "log.txt").read_text() for b in (1, 3)]
    for b, log in zip((1, 3), logs):
        assert "Starting training from iteration 0" in log and f"b{b}_kp1" in log
    assert "b3_kp1" not in logs[0] and "b1_kp1" not in logs[1]


def test_reset_torchscript_functions_makes_the_next_call_run_as_a_first_call():
    # RetinaNet's focal loss: its first call's gradients are eager autograd's, its later
    # calls' those of the optimized graph (other last bits on these logits).
    from fvcore.nn import sigmoid_focal_loss, sigmoid_focal_loss_jit

    from dropblock_det.analysis import reset_torchscript_functions

    generator = torch.Generator().manual_seed(0)
    logits = torch.randn(2000, 3, generator=generator)
    targets = (torch.rand(2000, 3, generator=generator) > 0.9).float()

    def gradient(loss):
        x = logits.clone().requires_grad_()
        loss(x, targets, alpha=0.25, gamma=2.0, reduction="sum").backward()
        return x.grad

    eager = gradient(sigmoid_focal_loss)
    later = [gradient(sigmoid_focal_loss_jit) for _ in range(2)][-1]
    assert not torch.equal(later, eager)  # else this test could not fail
    assert reset_torchscript_functions() >= 1
    assert torch.equal(gradient(sigmoid_focal_loss_jit), eager)


def test_a_cell_trained_after_another_gives_what_it_gives_alone_in_a_fresh_process(tiny_datasets, tmp_path):
    # Cell b3 trained second in this process, and alone in a fresh one: the same weights,
    # losses and recorded AP. Before each cell reset TorchScript's state, the cell after
    # another took the optimized focal loss's gradients from iteration 0, and the cell alone
    # the first call's eager ones: other weights after one step, another AP at 20.
    from dropblock_det.analysis import read_metrics, read_sweep_csv

    def argv(out, *block_sizes):
        return ["--config-file", DB_CONFIG, "--block-sizes", *block_sizes, "--keep-probs", "0.8",
                "--output-dir", str(out)] + TINY_OPTS + ["SOLVER.MAX_ITER", "20"]

    after, alone = tmp_path / "after", tmp_path / "alone"
    load_tool("sweep").main(argv(after, "1", "3"))
    # This process's thread count: the CPU kernels' rounding depends on it.
    env = {**os.environ, "OMP_NUM_THREADS": str(torch.get_num_threads())}
    result = subprocess.run([sys.executable, str(REPO / "tools" / "sweep.py"), *argv(alone, "3")],
                            capture_output=True, text=True, timeout=300, env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    weights = [torch.load(out / "b3_kp0.8" / "model_final.pth", map_location="cpu", weights_only=False)["model"]
               for out in (alone, after)]
    assert [k for k, w in weights[0].items() if not torch.equal(w, weights[1][k])] == []
    losses = [[r["total_loss"] for r in read_metrics(out / "b3_kp0.8" / "metrics.json") if "total_loss" in r]
              for out in (alone, after)]
    assert losses[0] and losses[0] == losses[1]
    values = [read_sweep_csv(out / "sweep.csv")[(3, 0.8)]["value"] for out in (alone, after)]
    assert math.isfinite(values[0]) and values[0] == values[1]


@pytest.fixture(scope="module")
def swept_cell(tiny_datasets, module_tmp_path_factory):
    """One trained cell (block 3, keep_prob 0.8) with a checkpoint after each of its 2
    iterations, and the argv that trained it (minus --output-dir); tests copy it."""
    out = module_tmp_path_factory.mktemp("swept") / "sweep"
    argv = ["--config-file", DB_CONFIG, "--block-sizes", "3", "--keep-probs", "0.8"]
    opts = TINY_OPTS + ["SOLVER.MAX_ITER", "2", "SOLVER.CHECKPOINT_PERIOD", "1"]
    load_tool("sweep").main(argv + ["--output-dir", str(out)] + opts)
    assert (out / "b3_kp0.8" / "model_0000000.pth").is_file()
    return out, argv, opts


def _interrupted_copy(swept_cell, tmp_path):
    """A copy of the swept cell as if killed after its first iteration: no CSV row, the
    last checkpoint is model_0000000.pth."""
    src, argv, opts = swept_cell
    out = tmp_path / "sweep"
    shutil.copytree(src, out)  # another folder: OUTPUT_DIR is not in the fingerprint
    (out / "sweep.csv").unlink()
    cell = out / "b3_kp0.8"
    (cell / "model_final.pth").unlink()
    (cell / "last_checkpoint").write_text("model_0000000.pth")
    return out, cell, argv + ["--output-dir", str(out)], opts


def _spy_resume_or_load(monkeypatch):
    """[(resume, start_iter)] of every trainer the sweep builds."""
    from dropblock_det.engine.trainer import DropBlockTrainer

    calls = []
    real = DropBlockTrainer.resume_or_load

    def spy(self, resume=True):
        real(self, resume=resume)
        calls.append((resume, self.start_iter))

    monkeypatch.setattr(DropBlockTrainer, "resume_or_load", spy)
    return calls


def test_sweep_resumes_an_interrupted_cell_of_the_same_config(swept_cell, tmp_path, monkeypatch):
    out, cell, argv, opts = _interrupted_copy(swept_cell, tmp_path)
    first = cell / "model_0000000.pth"
    mtime = first.stat().st_mtime_ns
    calls = _spy_resume_or_load(monkeypatch)
    values = load_tool("sweep").main(argv + opts)
    assert calls == [(True, 1)]  # continued after the checkpoint's iteration 0
    assert math.isfinite(values[(3, 0.8)]) and (cell / "model_final.pth").is_file()
    assert first.stat().st_mtime_ns == mtime
    with open(out / "sweep.csv") as f:
        (row,) = list(csv.DictReader(f))
    assert row["fingerprint"] == json.loads((cell / "sweep_cell.json").read_text())["fingerprint"]


def test_sweep_refuses_an_interrupted_cell_it_cannot_vouch_for(swept_cell, tmp_path, monkeypatch):
    from dropblock_det.analysis import SweepMismatchError

    out, cell, argv, opts = _interrupted_copy(swept_cell, tmp_path)
    calls = _spy_resume_or_load(monkeypatch)
    tool = load_tool("sweep")
    before = _files(out)
    # Its checkpoint is of another config: named with the changed key, not overwritten.
    with pytest.raises(SweepMismatchError, match="SOLVER.MAX_ITER: 2 -> 3") as e:
        tool.main(argv + opts + ["SOLVER.MAX_ITER", "3"])
    assert str(cell / "sweep_cell.json") in str(e.value)
    assert "model_0000000.pth" in str(e.value)
    # A checkpoint without a record (an earlier tools/sweep.py): cannot be checked.
    (cell / "sweep_cell.json").unlink()
    del before["b3_kp0.8/sweep_cell.json"]
    with pytest.raises(SweepMismatchError, match="no sweep_cell.json") as e:
        tool.main(argv + opts)
    assert str(cell) in str(e.value) and "block_size=3 keep_prob=0.8" in str(e.value)
    assert calls == [] and _files(out) == before


def _fake_config(tmp_path, b, kp, max_iter=2):
    return {"OUTPUT_DIR": str(tmp_path / f"b{b}_kp{kp:g}"), "SOLVER": {"MAX_ITER": max_iter},
            "MODEL": {"DROPBLOCK": {"BLOCK_SIZE": b, "KEEP_PROB": kp}}}


def test_config_fingerprint_covers_all_but_the_output_dir(tmp_path):
    from dropblock_det.analysis import config_fingerprint

    cfg = _fake_config(tmp_path, 3, 0.8)
    fp = config_fingerprint(cfg)
    assert fp == config_fingerprint({**cfg, "OUTPUT_DIR": "elsewhere"})
    assert fp != config_fingerprint(_fake_config(tmp_path, 3, 0.8, max_iter=3))
    assert fp != config_fingerprint(_fake_config(tmp_path, 3, 0.9))


def test_config_fingerprint_of_a_partial_is_the_same_in_every_process():
    # A LazyConfig's `norm=partial(get_norm, "GN")` went into the fingerprint as its repr,
    # "functools.partial(<function get_norm at 0x7f48...>, 'GN')": another process has another
    # address, so rerunning the same sweep was refused as "another configuration". Here two
    # function objects of one name at two addresses stand for one function in two processes.
    import functools
    import types

    from omegaconf import DictConfig

    from dropblock_det.analysis import config_fingerprint

    def norm(kind, channels):
        return nn.GroupNorm(32, channels) if kind == "GN" else nn.BatchNorm2d(channels)

    copy = types.FunctionType(norm.__code__, norm.__globals__, norm.__name__)
    copy.__qualname__ = norm.__qualname__

    def config(function, kind="GN"):
        return DictConfig({"model": {"norm": functools.partial(function, kind)}, "train": {"output_dir": "x"}},
                          flags={"allow_objects": True})

    assert config_fingerprint(config(norm)) == config_fingerprint(config(copy))
    assert config_fingerprint(config(norm)) != config_fingerprint(config(norm, "BN"))
    # A function of that name from another module is another configuration.
    elsewhere = types.FunctionType(norm.__code__, norm.__globals__, norm.__name__)
    elsewhere.__qualname__, elsewhere.__module__ = norm.__qualname__, "another.module"
    assert config_fingerprint(config(norm)) != config_fingerprint(config(elsewhere))

    class Anchors:  # any other object: its str without the address ("<...Anchors object at 0x...>")
        pass

    def with_object():
        return DictConfig({"model": {"anchors": Anchors()}, "train": {"output_dir": "x"}}, flags={"allow_objects": True})

    assert config_fingerprint(with_object()) == config_fingerprint(with_object())


def test_run_sweep_refuses_a_csv_without_fingerprints(tmp_path):
    # Written by the earlier tools/sweep.py: its rows cannot be checked, so none is reused
    # (nor mixed with fingerprinted rows under its header).
    from dropblock_det.analysis import SweepMismatchError, run_sweep

    csv_path = tmp_path / "sweep.csv"
    csv_path.write_text("block_size,keep_prob,metric,value,output_dir\n"
                        f"3,0.8,bbox/AP,12.5,{tmp_path / 'b3_kp0.8'}\n")
    before = _files(tmp_path)
    trained = []
    with pytest.raises(SweepMismatchError, match="no 'fingerprint' column") as e:
        run_sweep([(3, 0.8), (3, 0.9)], lambda *a: trained.append(a) or 1.0, csv_path,
                  log=lambda m: None, cell_config=lambda b, kp: _fake_config(tmp_path, b, kp))
    assert str(csv_path) in str(e.value) and "--output-dir" in str(e.value)
    assert trained == [] and _files(tmp_path) == before


def test_run_sweep_reuses_only_rows_of_the_same_config(tmp_path):
    from dropblock_det.analysis import SweepMismatchError, run_sweep

    trained = []

    def train_cell(b, kp, cfg, resume):
        trained.append((b, kp, resume))
        return b * kp

    def sweep(max_iter, cells=((1, 0.8), (3, 0.8))):
        return run_sweep(list(cells), train_cell, tmp_path / "sweep.csv", log=lambda m: None,
                         cell_config=lambda b, kp: _fake_config(tmp_path, b, kp, max_iter))

    assert sweep(2) == {(1, 0.8): 0.8, (3, 0.8): pytest.approx(2.4)}
    assert trained == [(1, 0.8, False), (3, 0.8, False)]
    assert sweep(2) == {(1, 0.8): 0.8, (3, 0.8): pytest.approx(2.4)} and len(trained) == 2
    before = _files(tmp_path)
    with pytest.raises(SweepMismatchError, match="SOLVER.MAX_ITER: 2 -> 3"):
        sweep(3, cells=((5, 0.8), (1, 0.8), (3, 0.8)))  # the new cell first
    assert len(trained) == 2 and _files(tmp_path) == before
    # Only a new cell, under another configuration: the CSV's other rows are checked too,
    # else the CSV (and the heatmap drawn from it) would mix the two experiments.
    with pytest.raises(SweepMismatchError) as e:
        sweep(3, cells=((5, 0.8),))
    msg = str(e.value)
    assert "block_size=1 keep_prob=0.8 (not in this command's grid)" in msg
    assert "block_size=3 keep_prob=0.8 (not in this command's grid)" in msg
    assert "SOLVER.MAX_ITER: 2 -> 3" in msg
    assert len(trained) == 2 and _files(tmp_path) == before
    assert sweep(2, cells=((5, 0.8),)) == {(5, 0.8): 4.0} and trained[-1] == (5, 0.8, False)


def test_sweep_rejects_bad_grid_values_before_training(tiny_datasets, tmp_path):
    tool = load_tool("sweep")
    with pytest.raises(ValueError, match="--keep-probs 1.5 must be in"):
        tool.main(["--config-file", DB_CONFIG, "--block-sizes", "3", "--keep-probs", "1.5",
                   "--output-dir", str(tmp_path)])
    with pytest.raises(ValueError, match="--block-sizes 0 must be a positive integer"):
        tool.main(["--config-file", DB_CONFIG, "--block-sizes", "3", "0", "--keep-probs", "0.9",
                   "--output-dir", str(tmp_path)])
    with pytest.raises(ValueError, match="DATASETS.TEST is empty"):
        tool.main(["--config-file", DB_CONFIG, "--block-sizes", "3", "--keep-probs", "0.9",
                   "--output-dir", str(tmp_path), "DATASETS.TEST", "()"])
    assert not list(tmp_path.iterdir())


def test_a_sweep_cell_whose_values_its_config_refuses_is_refused_before_any_cell_trains(tiny_datasets, tmp_path,
                                                                                       monkeypatch):
    # The base config was checked at its own KEEP_PROB; with STAGE_DROP_SCALES [1, 2] the cell
    # keep_prob 0.4 drives res5's to 1 - 2 * 0.6 < 0. Each cell's config is checked before the
    # first trains, not when its turn comes after the cells before it trained.
    from dropblock_det.engine.trainer import DropBlockTrainer

    monkeypatch.setattr(DropBlockTrainer, "__init__", lambda self, cfg: pytest.fail("a cell trained"))
    out = tmp_path / "sweep"
    with pytest.raises(ValueError, match=r"MODEL\.DROPBLOCK\.RESNET\.STAGE_DROP_SCALES.*scale 2\.0 with "
                                         r"MODEL\.DROPBLOCK\.KEEP_PROB=0\.4 gives a keep probability <= 0"):
        load_tool("sweep").main(["--config-file", DB_CONFIG, "--block-sizes", "3", "--keep-probs", "0.9", "0.4",
                                 "--output-dir", str(out)] + TINY_OPTS
                                + ["MODEL.DROPBLOCK.RESNET.STAGE_DROP_SCALES", "[1.0, 2.0]"])
    assert not list(out.glob("b3_*")) and not (out / "sweep.csv").exists()


# ----------------------------------------------------------------------------- small pieces
def test_inference_evaluation_is_seeded_and_puts_a_training_model_in_eval():
    from dropblock_det.analysis import evaluate_with_dropblock_at_inference

    torch.manual_seed(0)
    net = tiny_dropblock_net()
    net.bn = nn.BatchNorm2d(4)  # a child that must run on its running statistics
    x = torch.randn(2, 1, 16, 16)
    seen = []

    def evaluate(model):
        seen.append((model.training, model.bn.training, model.drop.training))
        with torch.no_grad():
            return {"v": model(x).sum().item()}

    net.train()
    first = evaluate_with_dropblock_at_inference(net, evaluate, [0.5], [3, 4], lambda r: r["v"])
    torch.manual_seed(123)  # whatever the global RNG holds, each seed draws the same masks
    again = evaluate_with_dropblock_at_inference(net, evaluate, [0.5], [3, 4], lambda r: r["v"])
    assert first == again and first[0.5][0] != first[0.5][1]
    assert seen == [(False, False, True)] * 4
    assert not net.training and not net.drop.training


def test_final_metric_is_the_last_value_written_and_blank_lines_are_skipped(tmp_path):
    from dropblock_det.analysis import final_metric, read_metrics

    path = tmp_path / "metrics.json"
    path.write_text('{"iteration": 9, "bbox/AP": 10.0}\n\n{"iteration": 19, "total_loss": 1.0}\n'
                    '{"iteration": 19, "bbox/AP": 12.5}\n{"iteration": 29, "total_loss": 0.5}\n\n')
    records = read_metrics(path)
    assert [r["iteration"] for r in records] == [9, 19, 19, 29]
    assert final_metric(records) == 12.5
    assert final_metric(records, "sem_seg/mIoU") is None


def test_robustness_table_rows_go_from_keep_prob_1_down_with_a_dash_for_missing_cells():
    from dropblock_det.analysis import format_robustness_table

    table = format_robustness_table(
        {"DropBlock": {0.5: [1.0, 3.0], 1.0: [4.0]}, "baseline": {1.0: [2.0]}}, "AP")
    rows = [line.split() for line in table.splitlines()]
    assert rows[0] == ["keep_prob", "DropBlock", "AP", "baseline", "AP"]
    assert rows[1] == ["1.00", "4.00", "+-", "0.00", "(n=1)", "2.00", "+-", "0.00", "(n=1)"]
    # sample std of [1, 3]: sqrt(2) (the population's, 1.00, understates a few seeds' spread)
    assert rows[2] == ["0.50", "2.00", "+-", "1.41", "(n=2)", "-"]


def test_a_cell_given_twice_is_trained_once_and_bad_block_sizes_are_refused(tmp_path):
    from dropblock_det.analysis import run_sweep, sweep_cells

    trained = []
    values = run_sweep(sweep_cells([3, 3], [0.8]), lambda b, kp, cfg, resume: trained.append(b) or 1.0,
                       tmp_path / "sweep.csv", log=lambda m: None,
                       cell_config=lambda b, kp: _fake_config(tmp_path, b, kp))
    assert trained == [3] and values == {(3, 0.8): 1.0}
    for bad in (0, -1, 2.5):
        with pytest.raises(ValueError, match=f"block_size {bad!r} must be a positive integer"):
            sweep_cells([bad], [0.9])
    with pytest.raises(ValueError, match="keep_prob 0.0 must be in"):
        sweep_cells([3], [0.0])
    assert sweep_cells([3], [1.0]) == [(3, 1.0)]  # no drop: the grid's baseline column


@pytest.mark.parametrize("config, opts, match", [
    (DB_CONFIG, ["OUTPUT_DIR", "sw"], r"OUTPUT_DIR 'sw' is set by each cell from --output-dir: give --output-dir sw"),
    (DB_CONFIG, ["MODEL.DROPBLOCK.KEEP_PROB", "0.8"],
     r"MODEL\.DROPBLOCK\.KEEP_PROB '0\.8' is set by each cell from --keep-probs: give --keep-probs 0\.8"),
    (str(REPO / "configs" / "Synthetic" / "retinanet_R18_GN_dropblock_res45_kp0.9_b3.py"), ["train.output_dir=sw"],
     r"train\.output_dir 'sw' is set by each cell from --output-dir: give --output-dir sw"),
    (str(REPO / "configs" / "Synthetic" / "retinanet_R18_GN_dropblock_res45_kp0.9_b3.py"), ["dropblock.block_size=5"],
     r"dropblock\.block_size '5' is set by each cell from --block-sizes: give --block-sizes 5"),
    # (an override adding the key: the same key)
    (str(REPO / "configs" / "Synthetic" / "retinanet_R18_GN_dropblock_res45_kp0.9_b3.py"), ["+dropblock.keep_prob=0.5"],
     r"\+dropblock\.keep_prob '0\.5' is set by each cell from --keep-probs: give --keep-probs 0\.5"),
])
def test_an_opt_that_each_sweep_cell_sets_is_refused_naming_its_flag(tmp_path, config, opts, match):
    # Each cell sets these itself: given as opts they were overwritten without a word
    # (OUTPUT_DIR sw: the cells trained in the default output/sweep).
    with pytest.raises(ValueError, match=rf"^{match}"):
        load_tool("sweep").main(["--config-file", config, "--block-sizes", "3", "--keep-probs", "0.9",
                                 "--output-dir", str(tmp_path / "sweep")] + opts)
    assert not (tmp_path / "sweep").exists()


def test_two_keep_probs_sharing_a_cell_folder_are_refused():
    # The folder keeps 6 significant digits: the second value would have resumed the
    # first's training (its checkpoint, its fingerprint aside) as a cell of its own.
    from dropblock_det.analysis import sweep_cell_dir, sweep_cells

    assert sweep_cell_dir("s", 3, 0.8000001) == sweep_cell_dir("s", 3, 0.8)
    with pytest.raises(ValueError, match=r"--keep-probs 0.8 and 0.8000001 are one cell \(folder suffix kp0.8"):
        sweep_cells([3], [0.8, 0.9, 0.8000001], names=("--block-sizes", "--keep-probs"))
    assert sweep_cells([3, 5], [0.8, 0.8, 0.80001]) == [(3, 0.8), (3, 0.8), (3, 0.80001),
                                                          (5, 0.8), (5, 0.8), (5, 0.80001)]


def test_two_keep_probs_with_two_cell_folders_are_two_cells(tmp_path):
    # 0.05 and 0.0500004 get two folders (6 significant digits) but were one cell of the
    # plan (6 decimals): the second was never trained, with no message.
    from dropblock_det.analysis import run_sweep, sweep_cells

    trained = []
    values = run_sweep(sweep_cells([3], [0.05, 0.0500004]), lambda b, kp, cfg, resume: trained.append(kp) or kp,
                       tmp_path / "sweep.csv", log=lambda m: None,
                       cell_config=lambda b, kp: _fake_config(tmp_path, b, kp))
    assert trained == [0.05, 0.0500004] and values == {(3, 0.05): 0.05, (3, 0.0500004): 0.0500004}
    reran = run_sweep(sweep_cells([3], [0.0500004]), lambda *a: pytest.fail("retrained a recorded cell"),
                      tmp_path / "sweep.csv", log=lambda m: None,
                      cell_config=lambda b, kp: _fake_config(tmp_path, b, kp))
    assert reran == {(3, 0.0500004): 0.0500004}


def test_run_sweep_moves_a_cells_earlier_attempt_aside_before_training_it_again(tmp_path):
    # A cell stopped before its first checkpoint is trained again from iteration 0 in its
    # folder: detectron2 would append to the attempt's metrics.json, two runs in one file.
    from dropblock_det.analysis import run_sweep

    def sweep(train_cell):
        return run_sweep([(3, 0.8)], train_cell, tmp_path / "sweep.csv", log=lambda m: None,
                         cell_config=lambda b, kp: _fake_config(tmp_path, b, kp))

    def stopped(b, kp, cfg, resume):
        (Path(cfg["OUTPUT_DIR"]) / "metrics.json").write_text('{"iteration": 0}\n')
        raise KeyboardInterrupt

    def finishes(b, kp, cfg, resume):
        assert not resume
        with open(Path(cfg["OUTPUT_DIR"]) / "metrics.json", "a") as f:
            f.write('{"iteration": 1}\n')
        return 1.0

    with pytest.raises(KeyboardInterrupt):
        sweep(stopped)
    assert sweep(finishes) == {(3, 0.8): 1.0}
    cell = tmp_path / "b3_kp0.8"
    assert (cell / "metrics.json").read_text() == '{"iteration": 1}\n'
    (attempt,) = (cell / "previous_runs").iterdir()
    assert (attempt / "metrics.json").read_text() == '{"iteration": 0}\n'
    assert (cell / "sweep_cell.json").is_file()


def test_run_sweep_goes_on_after_a_diverged_cell_and_names_it_at_the_end(tmp_path):
    # A low keep_prob may diverge (detectron2's FloatingPointError) where the other cells
    # train: the sweep stopped at that cell and left the rest of the grid untrained.
    from dropblock_det.analysis import SweepCellsDivergedError, read_sweep_csv, run_sweep

    trained, logged = [], []

    def train_cell(b, kp, cfg, resume):
        trained.append((b, kp, resume))
        if kp == 0.5 and b == 3:
            raise FloatingPointError("Loss became infinite or NaN at iteration=1!")
        return b * kp

    def sweep(train_cell):
        return run_sweep([(1, 0.5), (3, 0.5), (3, 0.9)], train_cell, tmp_path / "sweep.csv", log=logged.append,
                         cell_config=lambda b, kp: _fake_config(tmp_path, b, kp))

    with pytest.raises(SweepCellsDivergedError, match=r"^1 of 3 cells diverged and have no value in .*sweep\.csv:\n"
                                                      r"  - block_size=3 keep_prob=0\.5: Loss became infinite") as e:
        sweep(train_cell)
    assert trained == [(1, 0.5, False), (3, 0.5, False), (3, 0.9, False)]
    assert e.value.values == {(1, 0.5): 0.5, (3, 0.9): pytest.approx(2.7)} and list(e.value.diverged) == [(3, 0.5)]
    assert isinstance(e.value, FloatingPointError)  # what detectron2's own divergence raises
    assert set(read_sweep_csv(tmp_path / "sweep.csv")) == {(1, 0.5), (3, 0.9)}
    assert any("block_size=3 keep_prob=0.5: diverged" in m and "going on" in m for m in logged)
    assert (tmp_path / "b3_kp0.5" / "sweep_cell.json").is_file()  # the cell's folder is kept
    # A rerun trains the diverged cell alone (resumed where it has a checkpoint).
    trained.clear()
    assert sweep(lambda b, kp, cfg, resume: trained.append((b, kp)) or 7.0) == {
        (1, 0.5): 0.5, (3, 0.5): 7.0, (3, 0.9): pytest.approx(2.7)}
    assert trained == [(3, 0.5)]
    # Any other failure is not the cell's alone: it stops the sweep, as before.
    with pytest.raises(RuntimeError, match="disk full"):
        run_sweep([(5, 0.5), (5, 0.9)], lambda *a: (_ for _ in ()).throw(RuntimeError("disk full")),
                  tmp_path / "sweep.csv", log=lambda m: None, cell_config=lambda b, kp: _fake_config(tmp_path, b, kp))


def test_a_sweep_whose_cells_diverge_keeps_their_folders_and_says_which(tiny_datasets, tmp_path):
    # A real divergence (a learning rate no model survives): every cell is tried, none is
    # recorded, and the tool fails naming them, with no empty heatmap drawn.
    from dropblock_det.analysis import SweepCellsDivergedError

    out = tmp_path / "sweep"
    argv = ["--config-file", DB_CONFIG, "--block-sizes", "1", "3", "--keep-probs", "0.8",
            "--output-dir", str(out)] + TINY_OPTS + ["SOLVER.MAX_ITER", "3", "SOLVER.BASE_LR", "1e12",
                                                     "SOLVER.WARMUP_ITERS", "0"]
    with pytest.raises(SweepCellsDivergedError, match=r"2 of 2 cells diverged") as e:
        load_tool("sweep").main(argv)
    assert set(e.value.diverged) == {(1, 0.8), (3, 0.8)} and e.value.values == {}
    assert all("infinite or NaN" in m for m in e.value.diverged.values())
    assert not (out / "sweep.csv").exists() and not (out / "sweep.png").exists()
    assert (out / "b1_kp0.8" / "log.txt").is_file() and (out / "b3_kp0.8" / "sweep_cell.json").is_file()


def test_a_second_robustness_run_into_a_folder_another_process_holds_is_refused(tiny_datasets, tmp_path):
    # It would move the first run's table and plot aside while that run writes them.
    from detectron2.checkpoint import DetectionCheckpointer

    from dropblock_det.engine.config_checks import load_config
    from dropblock_det.engine.trainer import DropBlockTrainer

    model = DropBlockTrainer.build_model(load_config(BASELINE_CONFIG, TINY_OPTS))
    DetectionCheckpointer(model, save_dir=str(tmp_path)).save("baseline")
    out = tmp_path / "robustness"
    out.mkdir()
    (out / "robustness.txt").write_text("the first run's table")
    with another_process_holding(out):
        with pytest.raises(RuntimeError, match=r"--output-dir=.*robustness' is in use by another run"):
            load_tool("analyze_robustness").main(
                ["--config-file", BASELINE_CONFIG, "--checkpoint", str(tmp_path / "baseline.pth"),
                 "--keep-probs", "1.0", "--seeds", "0", "--output-dir", str(out)] + TINY_OPTS)
    assert [p.name for p in out.iterdir()] == ["robustness.txt"]


def test_a_second_sweep_into_a_folder_another_process_holds_is_refused(tiny_datasets, tmp_path):
    # Two sweeps in one folder would train the same cells and append to one sweep.csv.
    out = tmp_path / "sweep"
    out.mkdir()
    with another_process_holding(out):
        with pytest.raises(RuntimeError, match=r"--output-dir=.*sweep' is in use by another run"):
            load_tool("sweep").main(["--config-file", DB_CONFIG, "--block-sizes", "3", "--keep-probs", "0.9",
                                     "--output-dir", str(out)])
        assert not list(out.iterdir())


def test_run_sweep_holds_each_cells_folder_and_refuses_one_another_run_holds(tmp_path):
    # A train_net run given a cell's folder as OUTPUT_DIR, while the sweep trained that cell,
    # moved the cell's files aside and the two wrote one model_final.pth.
    import fcntl
    import os

    from dropblock_det.analysis import run_sweep

    held_while_training = []

    def train_cell(b, kp, cfg, resume):
        fd = os.open(cfg["OUTPUT_DIR"], os.O_RDONLY)
        try:  # another open file description: refused while the sweep holds the folder
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            held_while_training.append(False)
        except OSError:
            held_while_training.append(True)
        finally:
            os.close(fd)
        return 1.0

    def sweep(cells, train=train_cell):
        return run_sweep(list(cells), train, tmp_path / "sweep.csv", log=lambda m: None,
                         cell_config=lambda b, kp: _fake_config(tmp_path, b, kp, 2))

    sweep([(1, 0.8)])
    assert held_while_training == [True]
    other = _fake_config(tmp_path, 3, 0.8, 2)["OUTPUT_DIR"]
    os.makedirs(other)
    before = _files(tmp_path)
    with another_process_holding(other):
        with pytest.raises(RuntimeError, match=r"the folder of cell block_size=3 keep_prob=0\.8=.* is in use by "
                                               r"another run"):
            sweep([(5, 0.8), (3, 0.8)], train=lambda *a: pytest.fail("trained a cell"))
    assert _files(tmp_path) == before  # nothing trained, moved or recorded


def test_a_record_differing_only_by_keys_one_side_lacks_is_said_to_be_another_version(tmp_path):
    # detectron2 main's get_cfg() has keys v0.6's lacks: a sweep begun under one was refused
    # under the other as "another configuration", with nothing pointing at the version.
    from dropblock_det.analysis import _config_diff

    recorded = _fake_config(tmp_path, 3, 0.8)
    now = {**recorded, "FLOAT32_PRECISION": "", "DATALOADER": {"REPEAT_SQRT": True}}
    assert _config_diff(recorded, now).endswith("each a key that one side lacks: typically a sweep begun under "
                                                "another detectron2 (or dropblock-det) version, whose default "
                                                "config has other keys")
    changed = {**now, "SOLVER": {"MAX_ITER": 3}}
    assert "another detectron2" not in _config_diff(recorded, changed)


def test_an_analysis_evaluates_the_first_test_dataset_and_refuses_none():
    from detectron2.config import CfgNode

    from dropblock_det.analysis import first_test_dataset

    cfg = CfgNode({"DATASETS": CfgNode({"TEST": ("synthetic_det_val", "synthetic_det_train")})})
    assert first_test_dataset(cfg, "c.yaml") == "synthetic_det_val"
    cfg.DATASETS.TEST = ()
    with pytest.raises(ValueError, match=r"^DATASETS\.TEST is empty in c\.yaml \(\+ opts\)"):
        first_test_dataset(cfg, "c.yaml")


def test_robustness_config_inserts_dropblock_only_in_the_stages_the_resnet_builds(tiny_datasets):
    # A baseline whose ResNet ends at res4: the default stages res4, res5 (and a stage scale
    # per stage) would be refused as a stage the model does not build.
    cfg = load_tool("analyze_robustness").robustness_config(
        BASELINE_CONFIG, TINY_OPTS + ["MODEL.RESNETS.OUT_FEATURES", "['res3', 'res4']",
                                      "MODEL.DROPBLOCK.RESNET.STAGE_DROP_SCALES", "[0.25, 1.0]"])
    assert cfg.MODEL.DROPBLOCK.RESNET.ENABLED and list(cfg.MODEL.DROPBLOCK.RESNET.STAGES) == ["res4"]
    assert list(cfg.MODEL.DROPBLOCK.RESNET.STAGE_DROP_SCALES) == []


def test_a_sweep_csv_row_names_the_cells_metric_and_folder_and_the_last_row_of_a_cell_wins(tmp_path):
    # The columns a reader of sweep.csv takes the numbers by: the metric the tool computed
    # (mIoU for a segmentation set, bbox_TTA/AP), and the folder the cell trained in.
    from dropblock_det.analysis import read_sweep_csv, run_sweep

    csv_path = tmp_path / "sweep.csv"
    run_sweep([(3, 0.8)], lambda b, kp, cfg, resume: 41.5, csv_path, "sem_seg/mIoU", log=lambda m: None,
              cell_config=lambda b, kp: _fake_config(tmp_path, b, kp))
    with open(csv_path) as f:
        (row,) = csv.DictReader(f)
    assert row["metric"] == "sem_seg/mIoU" and row["output_dir"] == str(tmp_path / "b3_kp0.8")
    assert (row["block_size"], row["keep_prob"], float(row["value"])) == ("3", "0.8", 41.5)
    with open(csv_path, "a") as f:  # the same cell recorded again (e.g. two CSVs joined)
        f.write(",".join([row["block_size"], row["keep_prob"], row["metric"], "42.5", row["output_dir"],
                          row["fingerprint"]]) + "\n")
    assert read_sweep_csv(csv_path)[(3, 0.8)]["value"] == 42.5


def test_the_sweep_heatmap_has_keep_prob_falling_left_to_right_and_block_size_growing_down(tmp_path, monkeypatch):
    # As the paper's grid: from no drop (1.0) on the left; each value in its cell, none where a
    # cell has no value.
    import matplotlib.pyplot as plt

    from dropblock_det.analysis import plot_sweep_heatmap

    drawn = []
    real_close = plt.close
    monkeypatch.setattr(plt, "close", drawn.append)
    plot_sweep_heatmap({(3, 0.8): 1.0, (1, 0.9): 2.0, (1, 0.8): 3.0}, tmp_path / "sweep.png")
    (fig,) = drawn
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["0.9", "0.8"]
    assert [t.get_text() for t in ax.get_yticklabels()] == ["1", "3"]
    assert {tuple(t.get_position()): t.get_text() for t in ax.texts} == {(0, 0): "2.0", (1, 0): "3.0", (1, 1): "1.0"}
    real_close(fig)
    # A cell whose AP is NaN (nothing scored) is said to be; one not trained stays blank.
    plot_sweep_heatmap({(3, 0.8): math.nan, (1, 0.9): math.nan, (1, 0.8): 3.0}, tmp_path / "sweep.png")
    ax = drawn[-1].axes[0]
    assert {tuple(t.get_position()): t.get_text() for t in ax.texts} == {(0, 0): "nan", (1, 0): "3.0", (1, 1): "nan"}
    plot_sweep_heatmap({(3, 0.8): math.nan}, tmp_path / "sweep.png")  # every cell NaN: no colour scale to draw
    assert [t.get_text() for t in drawn[-1].axes[0].texts] == ["nan"]
    for fig in drawn[1:]:
        real_close(fig)


def test_a_sweep_csv_with_its_columns_in_another_order_is_refused_untouched(tmp_path):
    # Rows are appended in SWEEP_FIELDS order: under another header each value would land in
    # another column (the folder read as the fingerprint on the next run).
    from dropblock_det.analysis import SWEEP_FIELDS, SweepMismatchError, run_sweep

    csv_path = tmp_path / "sweep.csv"
    reordered = SWEEP_FIELDS[::-1]
    csv_path.write_text(",".join(reordered) + "\n")
    trained = []
    with pytest.raises(SweepMismatchError, match=r"sweep\.csv has the columns \['fingerprint', .*expected "
                                                 r"\['block_size', .*use another --output-dir"):
        run_sweep([(3, 0.8)], lambda *a: trained.append(a) or 1.0, csv_path, log=lambda m: None,
                  cell_config=lambda b, kp: _fake_config(tmp_path, b, kp))
    assert trained == [] and csv_path.read_text() == ",".join(reordered) + "\n"


@pytest.mark.parametrize("record", ['{"fingerprint": "ab', '{"block_size": 3}', '[]'])
def test_a_cell_record_that_cannot_be_read_is_named_and_nothing_trains(tmp_path, record):
    # A sweep_cell.json cut short, or without its fingerprint, cannot vouch for the cell's
    # checkpoint: a bare JSONDecodeError / KeyError / AttributeError named no file.
    from dropblock_det.analysis import SweepMismatchError, run_sweep

    cell = tmp_path / "b3_kp0.8"
    cell.mkdir()
    (cell / "sweep_cell.json").write_text(record)
    before = _files(tmp_path)
    with pytest.raises(SweepMismatchError, match=r"sweep_cell\.json: cannot read the cell's record .*move the "
                                                 r"folder .*b3_kp0\.8 away or use another --output-dir"):
        run_sweep([(1, 0.8), (3, 0.8)], lambda *a: pytest.fail("trained a cell"), tmp_path / "sweep.csv",
                  log=lambda m: None, cell_config=lambda b, kp: _fake_config(tmp_path, b, kp))
    assert _files(tmp_path) == before


def _recording_sweep(tmp_path, trained):
    """run_sweep of some cells into tmp_path/sweep.csv with _fake_config's cells, whose
    training appends (block_size, keep_prob) to `trained` and reports keep_prob as its AP."""
    from dropblock_det.analysis import run_sweep

    def sweep(cells):
        return run_sweep(cells, lambda b, kp, cfg, resume: trained.append((b, kp)) or kp, tmp_path / "sweep.csv",
                         log=lambda m: None, cell_config=lambda b, kp: _fake_config(tmp_path, b, kp))

    return sweep


def test_a_row_whose_keep_prob_has_more_digits_than_its_folder_is_checked_as_written(tmp_path):
    # The CSV's rows outside the grid are checked with the config of their keep_prob as
    # written (0.12345678), not as the folder rounds it (0.123457): that config's fingerprint
    # is another, and a rerun with a new cell was refused as "another configuration".
    trained = []
    sweep = _recording_sweep(tmp_path, trained)

    sweep([(3, 0.12345678)])
    assert sweep([(5, 0.8)]) == {(5, 0.8): 0.8}
    assert trained == [(3, 0.12345678), (5, 0.8)]


def test_run_sweep_writes_the_header_into_an_empty_sweep_csv(tmp_path):
    # An empty file (a sweep stopped as it created it) has no header yet: without one, the
    # row appended would be read as the header on the next run.
    from dropblock_det.analysis import SWEEP_FIELDS, read_sweep_csv, run_sweep

    csv_path = tmp_path / "sweep.csv"
    csv_path.write_text("")
    run_sweep([(3, 0.8)], lambda b, kp, cfg, resume: 1.5, csv_path, log=lambda m: None,
              cell_config=lambda b, kp: _fake_config(tmp_path, b, kp))
    assert csv_path.read_text().splitlines()[0] == ",".join(SWEEP_FIELDS)
    assert read_sweep_csv(csv_path)[(3, 0.8)]["value"] == 1.5


def test_config_fingerprint_of_a_lazy_config_is_as_written_without_its_output_dir():
    # train.output_dir is the cell's folder, and an interpolation of it (the evaluator's
    # output_dir) would be that folder once resolved: the same sweep into another
    # --output-dir must have the same fingerprints (its cells resume, its rows are reused).
    from omegaconf import DictConfig

    from dropblock_det.analysis import config_fingerprint, fingerprinted_config

    def lazy(output_dir, max_iter=2):
        return DictConfig({"train": {"output_dir": output_dir, "max_iter": max_iter},
                           "dataloader": {"evaluator": {"output_dir": "${train.output_dir}/inference"}}})

    fp = config_fingerprint(lazy("sweep/b3_kp0.8"))
    assert fp == config_fingerprint(lazy("elsewhere/b3_kp0.8"))
    assert fp != config_fingerprint(lazy("sweep/b3_kp0.8", max_iter=3))
    assert fingerprinted_config(lazy("sweep/b3_kp0.8")) == {
        "train": {"max_iter": 2}, "dataloader": {"evaluator": {"output_dir": "${train.output_dir}/inference"}}}
    # Key order is not configuration (a key set by an opt comes last).
    assert config_fingerprint({"a": 1, "b": {"c": 2, "d": 3}}) == config_fingerprint({"b": {"d": 3, "c": 2}, "a": 1})


@pytest.mark.parametrize("key", ["dataloader.test.dataset.names", "dataloader.evaluator.dataset_name"])
def test_the_first_lazy_test_dataset_refuses_an_interpolation_that_does_not_resolve_in_one_line(key):
    # OmegaConf's 3-line error (full_key on a line of its own) came out of the analyses' read.
    from omegaconf import OmegaConf

    from dropblock_det.analysis import first_lazy_test_dataset

    cfg = OmegaConf.create({"dataloader": {"test": {"dataset": {"names": ["synthetic_det_val"]}},
                                           "evaluator": {"dataset_name": "synthetic_det_val"}}})
    assert first_lazy_test_dataset(cfg, "c.py") == "synthetic_det_val"
    OmegaConf.update(cfg, key, "${nope}")
    with pytest.raises(ValueError, match=rf"^{re.escape(key)}=\$\{{nope\}}: InterpolationKeyError: [^\n]*$"):
        first_lazy_test_dataset(cfg, "c.py")


# --- mutation run 51: behaviour the tests above left unpinned --------------------------------


def test_a_foreign_row_is_said_what_changed_only_when_its_folder_records_that_rows_configuration(tmp_path):
    # The cell folder's record of a third configuration says nothing of the row's: no
    # "changed:" list is drawn from it (it would name keys the row never had).
    from dropblock_det.analysis import SWEEP_CELL_FILE, SweepMismatchError, run_sweep

    def sweep(max_iter):
        return run_sweep([(1, 0.8)], lambda b, kp, cfg, resume: b * kp, tmp_path / "sweep.csv", log=lambda m: None,
                         cell_config=lambda b, kp: _fake_config(tmp_path, b, kp, max_iter))

    sweep(2)
    record_path = tmp_path / "b1_kp0.8" / SWEEP_CELL_FILE
    record = json.loads(record_path.read_text())
    record["fingerprint"], record["config"]["SOLVER"]["MAX_ITER"] = "0" * 64, 7
    record_path.write_text(json.dumps(record))
    with pytest.raises(SweepMismatchError) as e:
        sweep(3)
    row_line = [line for line in str(e.value).splitlines() if "its row in" in line]
    assert len(row_line) == 1 and "changed:" not in row_line[0] and "7 ->" not in row_line[0]


def test_the_first_lazy_test_dataset_refuses_an_evaluator_of_another_dataset():
    # Predictions of the first test set would be scored against another set's annotations.
    from omegaconf import OmegaConf

    from dropblock_det.analysis import first_lazy_test_dataset

    cfg = OmegaConf.create({"dataloader": {"test": {"dataset": {"names": ["set_a", "set_b"]}},
                                           "evaluator": {"dataset_name": "set_b"}}})
    with pytest.raises(ValueError, match=r"^dataloader\.evaluator\.dataset_name='set_b' in c\.py \(\+ opts\) is not "
                                         r"the dataset the analysis evaluates, .* 'set_a'"):
        first_lazy_test_dataset(cfg, "c.py")
    cfg.dataloader.evaluator.dataset_name = "${..test.dataset.names}"
    assert first_lazy_test_dataset(cfg, "c.py") == "set_a"
    assert cfg.dataloader.evaluator.dataset_name == "set_a"


# --- mutation run 51b: behaviour the tests above left unpinned -------------------------------


def test_robustness_config_keeps_the_dropblock_locations_the_config_enables(tiny_datasets):
    # DropBlock is inserted in the ResNet only where the config enables no location: a model
    # whose DropBlock is in its head is evaluated with that DropBlock alone, not the ResNet's too.
    cfg = load_tool("analyze_robustness").robustness_config(
        DB_CONFIG, TINY_OPTS + ["MODEL.DROPBLOCK.RESNET.ENABLED", "False", "MODEL.DROPBLOCK.HEAD.ENABLED", "True"])
    assert cfg.MODEL.DROPBLOCK.HEAD.ENABLED and not cfg.MODEL.DROPBLOCK.RESNET.ENABLED


def test_a_robustness_run_whose_kernels_cannot_run_on_its_device_is_refused_before_any_checkpoint_loads(
        tiny_datasets, tmp_path, monkeypatch):
    # DropBlock runs in these evaluations: MODEL.DROPBLOCK.IMPL triton where the kernels cannot
    # run is named first, not found by the checkpoint's load or the first evaluation.
    from dropblock_det import config

    monkeypatch.setattr(config, "triton_unavailable_reason", lambda device: "no Triton (test)")
    (tmp_path / "model.pth").write_bytes(b"")  # never read: the refusal comes first
    with pytest.raises(ValueError, match=r"MODEL\.DROPBLOCK\.IMPL.*'triton'.*cannot run on MODEL\.DEVICE='cpu': "
                                         r"no Triton \(test\)"):
        load_tool("analyze_robustness").main(
            ["--config-file", DB_CONFIG, "--checkpoint", str(tmp_path / "model.pth"), "--keep-probs", "0.9",
             "--seeds", "0", "--output-dir", str(tmp_path / "out")]
            + TINY_OPTS + ["MODEL.DEVICE", "cpu", "MODEL.DROPBLOCK.IMPL", "triton"])
    assert not (tmp_path / "out").exists()


def test_a_sweep_whose_training_set_is_not_registered_is_refused_before_its_folder_is_made(tiny_datasets, tmp_path):
    # The shared config is checked once before the first cell: the unregistered training set
    # is named with its key, not found by the first cell's training inside the new folder.
    out = tmp_path / "sweep"
    with pytest.raises(KeyError, match=r"DATASETS\.TRAIN names 'not_registered_here', which is not a registered dataset"):
        load_tool("sweep").main(["--config-file", DB_CONFIG, "--block-sizes", "3", "--keep-probs", "0.9",
                                 "--output-dir", str(out)] + TINY_OPTS
                                + ["SOLVER.MAX_ITER", "2", "DATASETS.TRAIN", "('not_registered_here',)"])
    assert not out.exists()


# --- mutation run 51b: behaviour the tests above left unpinned -------------------------------


def test_a_sweep_checks_and_evaluates_only_the_first_test_dataset(tiny_datasets, tmp_path):
    # The cells are evaluated on DATASETS.TEST[0] alone: a later entry (here one not registered
    # in this process) is neither checked nor evaluated, so it does not refuse the sweep.
    out = tmp_path / "sweep"
    values = load_tool("sweep").main(
        ["--config-file", DB_CONFIG, "--block-sizes", "3", "--keep-probs", "0.9", "--output-dir", str(out)]
        + TINY_OPTS + ["SOLVER.MAX_ITER", "2", "DATASETS.TEST", "('synthetic_det_val', 'not_registered_here')"])
    assert set(values) == {(3, 0.9)} and math.isfinite(values[(3, 0.9)])
    assert "- synthetic_det_val\n" in (out / "b3_kp0.9" / "config.yaml").read_text()
    assert "not_registered_here" not in (out / "b3_kp0.9" / "config.yaml").read_text()


def test_a_yacs_block_size_opt_is_refused_naming_block_sizes(tmp_path):
    # Every cell sets MODEL.DROPBLOCK.BLOCK_SIZE from --block-sizes: the opt would be
    # overwritten without a word.
    with pytest.raises(ValueError, match=r"^MODEL\.DROPBLOCK\.BLOCK_SIZE '5' is set by each cell from "
                                         r"--block-sizes: give --block-sizes 5"):
        load_tool("sweep").main(["--config-file", DB_CONFIG, "--block-sizes", "3", "--keep-probs", "0.9",
                                 "--output-dir", str(tmp_path / "sweep")] + TINY_OPTS
                                + ["SOLVER.MAX_ITER", "2", "MODEL.DROPBLOCK.BLOCK_SIZE", "5"])
    assert not (tmp_path / "sweep").exists()


def test_a_changed_configuration_names_six_keys_and_counts_the_others():
    # A sweep refused for another configuration says the first six changed keys and how many
    # more there are, not every one of them (nor only six as if they were all).
    from dropblock_det.analysis import _config_diff

    diff = _config_diff({"SOLVER": {f"K{i}": i for i in range(8)}}, {"SOLVER": {f"K{i}": i + 1 for i in range(8)}})
    assert diff.count(" -> ") == 6 and "SOLVER.K0: 0 -> 1" in diff and diff.endswith("... 2 more")


def test_robustness_config_evaluates_only_the_first_test_dataset(tiny_datasets):
    # detectron2's test keys its results by dataset name when there are several: the curves
    # read one set's box AP, so the config keeps the first set alone.
    cfg = load_tool("analyze_robustness").robustness_config(
        DB_CONFIG, TINY_OPTS + ["DATASETS.TEST", "('synthetic_det_val', 'synthetic_det_train')"])
    assert tuple(cfg.DATASETS.TEST) == ("synthetic_det_val",)


# Regularizer-comparison journey (stop 53)
@pytest.mark.parametrize("regularizer", ["Dropout", "SpatialDropout"])
def test_a_sweep_of_a_regularizer_without_a_block_refuses_several_block_sizes(regularizer, tiny_datasets, tmp_path):
    # Dropout and SpatialDropout ignore MODEL.DROPBLOCK.BLOCK_SIZE: the cells of one keep_prob
    # trained the same model, and the heatmap showed noise along block_size.
    out = tmp_path / "sweep"
    argv = ["--config-file", DB_CONFIG, "--block-sizes", "1", "3", "--keep-probs", "0.9", "--output-dir",
            str(out)] + TINY_OPTS + ["SOLVER.MAX_ITER", "2", "MODEL.DROPBLOCK.TYPE", regularizer]
    with pytest.raises(ValueError, match=rf"^--block-sizes 1 3: MODEL\.DROPBLOCK\.TYPE='{regularizer}' has no "
                                         r"block size .*give one --block-sizes value"):
        load_tool("sweep").main(argv)
    assert not out.exists()


def test_robustness_names_the_regularizers_it_switches_on_for_a_droppath_run(tiny_datasets, tmp_path, capsys):
    # A config with DropPath alone enables no DropBlock location, so the tool inserts DropBlock
    # in the ResNet beside it, and both take every keep_prob: the table said neither.
    from detectron2.checkpoint import DetectionCheckpointer

    from dropblock_det.engine.config_checks import load_config
    from dropblock_det.engine.trainer import DropBlockTrainer

    opts = TINY_OPTS + ["MODEL.DROPBLOCK.RESNET.ENABLED", "False", "MODEL.DROPBLOCK.DROP_PATH_RATE", "0.2"]
    DetectionCheckpointer(DropBlockTrainer.build_model(load_config(DB_CONFIG, opts)),
                          save_dir=str(tmp_path)).save("droppath")
    load_tool("analyze_robustness").main(
        ["--config-file", DB_CONFIG, "--checkpoint", str(tmp_path / "droppath.pth"), "--keep-probs", "1.0",
         "--seeds", "0", "--output-dir", str(tmp_path / "out")] + opts)
    printed = capsys.readouterr().out
    assert ("switched on at inference, each at every --keep-probs value: 8 DropPath in backbone.bottom_up.res2, "
            "backbone.bottom_up.res3, backbone.bottom_up.res4, backbone.bottom_up.res5; 12 DropBlock2d (block_size 3) "
            "in backbone.bottom_up.res4, backbone.bottom_up.res5\n") in printed


# Mutation run 53
def test_describe_regularizers_names_an_unindexed_module_whole_with_its_level_starred():
    # An FPN's lateral / output convs have no block index and sit in "backbone" beside the
    # ResNet: each kind is named whole, its levels in one starred entry, not as "backbone".
    from dropblock_det.analysis import describe_regularizers
    from dropblock_det.layers import DropBlock2d, Dropout

    model = nn.Module()
    model.backbone = nn.Module()
    model.backbone.res4 = nn.Sequential(nn.Module(), nn.Module())
    for block in model.backbone.res4:
        block.dropblock = DropBlock2d(0.9, 3)
    for level in (3, 4, 5):
        setattr(model.backbone, f"dropblock_lateral{level}", DropBlock2d(0.9, 3))
    model.fpn_output2 = nn.Module()
    model.fpn_output2.dropblock = DropBlock2d(0.9, 3)
    model.dropout = Dropout(0.9)  # at the top: its own name
    assert describe_regularizers(model) == (
        "6 DropBlock2d (block_size 3) in backbone.res4, backbone.dropblock_lateral*, fpn_output2.dropblock; "
        "1 Dropout in dropout")
    assert describe_regularizers(nn.Module()) == ""


@pytest.mark.parametrize("block_sizes", [["3"], ["3", "3"]])
def test_a_sweep_of_dropout_at_one_block_size_is_not_refused(block_sizes, tiny_datasets, tmp_path):
    # One block size (given twice, one cell) sweeps Dropout's keep_prob: the tool goes on to
    # its warning for the random seed, made an error here so that nothing trains.
    import warnings

    argv = ["--config-file", DB_CONFIG, "--block-sizes", *block_sizes, "--keep-probs", "0.9", "--output-dir",
            str(tmp_path / "sweep")] + TINY_OPTS + ["SOLVER.MAX_ITER", "2", "MODEL.DROPBLOCK.TYPE", "Dropout",
                                                    "SEED", "-1"]
    with warnings.catch_warnings():
        warnings.filterwarnings("error", message=r"SEED=-1 \(a random seed per cell\)")
        with pytest.raises(UserWarning, match=r"^SEED=-1 \(a random seed per cell\)"):
            load_tool("sweep").main(argv)


# --- stop 54 ---
def test_each_sweep_cells_log_txt_holds_the_warnings_its_training_showed(tiny_datasets, tmp_path, monkeypatch):
    # The warnings a cell's training shows reached only the console, as in train_net's runs;
    # those shown before the first cell (SEED=-1's) reach the sweep's own log.txt (stop 55).
    import warnings

    from dropblock_det.engine.trainer import DropBlockTrainer

    train = DropBlockTrainer.train

    def train_and_warn(self):
        warnings.warn(f"shown while training {Path(self.cfg.OUTPUT_DIR).name}")
        return train(self)

    monkeypatch.setattr(DropBlockTrainer, "train", train_and_warn)
    sweep = load_tool("sweep")
    out = tmp_path / "sweep"
    with warnings.catch_warnings(record=True) as shown:
        warnings.simplefilter("always")
        sweep.run_tool("sweep.py", lambda: sweep.main([
            "--config-file", DB_CONFIG, "--block-sizes", "1", "3", "--keep-probs", "1.0", "--output-dir", str(out)]
            + TINY_OPTS + ["SOLVER.MAX_ITER", "2", "SEED", "-1"]))
    assert [str(w.message) for w in shown if "shown while" in str(w.message)] == [
        "shown while training b1_kp1", "shown while training b3_kp1"]  # on the console as before
    for cell, other in (("b1_kp1", "b3_kp1"), ("b3_kp1", "b1_kp1")):
        log = (out / cell / "log.txt").read_text()
        assert "dropblock_det.warnings WARNING: " in log and f"UserWarning: shown while training {cell}" in log
        assert f"shown while training {other}" not in log and "SEED=-1" not in log
    # The sweep's log.txt: the warning before the first cell, first; then each cell's lines, its
    # progress and where its results went.
    log = (out / "log.txt").read_text()
    assert log.index("UserWarning: SEED=-1 (a random seed per cell)") < log.index(
        "dropblock_det.printed INFO: [sweep] cell 1/2 block_size=1 keep_prob=1.0: training") < log.index(
        "UserWarning: shown while training b1_kp1") < log.index("[sweep] cell 2/2 block_size=3") < log.index(
        "UserWarning: shown while training b3_kp1") < log.index(f"heatmap: {out / 'sweep.png'} (2 cells)")
    assert log.count("SEED=-1") == 1 and "Starting training from iteration 0" in log


# --- coverage audit 56 ---
def test_a_rerun_appends_to_the_folders_log_and_a_refused_one_writes_no_log(tiny_datasets, tmp_path):
    # The sweep's log.txt is appended to by a rerun (the first run's lines stay), and opened
    # only at run_sweep's first line: a sweep its CSV refuses leaves the folder as it was.
    from dropblock_det.analysis import SWEEP_FIELDS, SweepMismatchError

    tool = load_tool("sweep")
    out = tmp_path / "sweep"
    argv = ["--config-file", DB_CONFIG, "--block-sizes", "3", "--keep-probs", "1.0", "--output-dir", str(out)]
    tool.main(argv + TINY_OPTS + ["SOLVER.MAX_ITER", "2"])
    first = (out / "log.txt").read_text()
    assert "[sweep] cell 1/1 block_size=3 keep_prob=1.0: training" in first
    # The rerun adds a cell: each of its lines is written once (one log.txt handler, not one per line).
    tool.main(argv[:2] + ["--block-sizes", "3", "1"] + argv[4:] + TINY_OPTS + ["SOLVER.MAX_ITER", "2"])
    log = (out / "log.txt").read_text()
    rerun = log[len(first):]
    assert log.startswith(first) and "[sweep] cell 1/2 block_size=3 keep_prob=1.0: already in" in rerun
    assert rerun.count("[sweep] cell 2/2 block_size=1 keep_prob=1.0: training") == 1 == rerun.count("heatmap: ")
    other = tmp_path / "other"
    other.mkdir()
    (other / "sweep.csv").write_text(",".join(SWEEP_FIELDS[::-1]) + "\n")
    with pytest.raises(SweepMismatchError, match=r"sweep\.csv has the columns"):
        tool.main(argv[:-1] + [str(other)] + TINY_OPTS + ["SOLVER.MAX_ITER", "2"])
    assert [p.name for p in other.iterdir()] == ["sweep.csv"]


def test_the_warnings_robustness_shows_before_its_log_exists_are_written_into_it(tiny_datasets, tmp_path,
                                                                                  monkeypatch):
    # Those of the checks before the folder is claimed (here the checkpoint's first load)
    # reached the console only; those shown later go into log.txt as they are shown.
    import warnings

    from detectron2.checkpoint import DetectionCheckpointer

    from dropblock_det.engine import checkpoint
    from dropblock_det.engine.config_checks import load_config
    from dropblock_det.engine.trainer import DropBlockTrainer

    DetectionCheckpointer(DropBlockTrainer.build_model(load_config(DB_CONFIG, TINY_OPTS)),
                          save_dir=str(tmp_path)).save("dropblock")
    real_load, loads = checkpoint.load_checkpoint_strict, []

    def load_and_warn(model, path):
        loads.append(path)
        warnings.warn(f"shown at load {len(loads)}")
        return real_load(model, path)

    monkeypatch.setattr(checkpoint, "load_checkpoint_strict", load_and_warn)
    tool = load_tool("analyze_robustness")
    out = tmp_path / "robustness"
    with warnings.catch_warnings(record=True) as shown:
        warnings.simplefilter("always")
        tool.run_tool("analyze_robustness.py", lambda: tool.main([
            "--config-file", DB_CONFIG, "--checkpoint", str(tmp_path / "dropblock.pth") + ":DropBlock",
            "--keep-probs", "1.0", "--seeds", "0", "--output-dir", str(out)] + TINY_OPTS))
    assert [str(w.message) for w in shown if "shown at load" in str(w.message)] == ["shown at load 1",
                                                                                 "shown at load 2"]
    log = (out / "log.txt").read_text()
    assert log.index("UserWarning: shown at load 1") < log.index("switched on at inference") < log.index(
        "UserWarning: shown at load 2")
    assert log.count("UserWarning: shown at load") == 2


# --- mutation 58A ---
def test_every_regularizer_is_switched_on_and_every_keep_prob_below_1_gets_each_seed():
    # A model has many regularizers (each ResNet block's): all are on at the evaluated
    # keep_prob, all are back at their own targets afterwards; and only keep_prob 1.0, the
    # deterministic one, is evaluated once (0.99 is a curve point with its seed spread).
    from collections import OrderedDict

    from dropblock_det.analysis import evaluate_with_dropblock_at_inference
    from dropblock_det.layers import DropBlock2d

    net = nn.Sequential(OrderedDict(conv=nn.Conv2d(1, 4, 3, padding=1), first=DropBlock2d(keep_prob=0.9, block_size=3),
                                    second=DropBlock2d(keep_prob=0.8, block_size=3)))
    seen = []

    def evaluate(model):
        seen.append([(m.training, m.keep_prob) for m in (model.first, model.second)])
        return {"v": 0.0}

    curves = evaluate_with_dropblock_at_inference(net, evaluate, [1.0, 0.99, 0.5], [0, 1], lambda r: r["v"])
    assert {kp: len(v) for kp, v in curves.items()} == {1.0: 1, 0.99: 2, 0.5: 2}
    assert seen[1:] == [[(True, 0.99)] * 2] * 2 + [[(True, 0.5)] * 2] * 2
    assert [(m.training, m.keep_prob) for m in (net.first, net.second)] == [(False, 0.9), (False, 0.8)]


def test_robustness_table_has_a_row_for_a_keep_prob_only_a_later_model_was_evaluated_at():
    from dropblock_det.analysis import format_robustness_table

    table = format_robustness_table({"baseline": {1.0: [2.0]}, "DropBlock": {1.0: [4.0], 0.8: [3.0]}}, "AP")
    rows = [line.split() for line in table.splitlines()]
    assert rows[2] == ["0.80", "-", "3.00", "+-", "0.00", "(n=1)"]


def test_sweep_cells_keep_the_order_given_and_each_keep_prob_has_its_own_folder(tmp_path):
    # The cells train block_size-major in the order the flags give them; each keep_prob's
    # folder names it to 6 significant digits: two-decimal names would put 0.971 and 0.974 in
    # one folder, the second resuming the first's training as its own.
    from dropblock_det.analysis import sweep_cell_dir, sweep_cells

    assert sweep_cells([5, 3], [0.9, 0.8]) == [(5, 0.9), (5, 0.8), (3, 0.9), (3, 0.8)]
    folders = [sweep_cell_dir(str(tmp_path), 3, kp) for kp in (0.9, 0.971, 0.974, 0.975)]
    assert [os.path.basename(f) for f in folders] == ["b3_kp0.9", "b3_kp0.971", "b3_kp0.974", "b3_kp0.975"]


# --- mutation 58R ---
def test_training_curves_plot_training_records_only_and_title_the_ap_key_asked_for(tmp_path, monkeypatch):
    # metrics.json interleaves evaluation-only records (no losses) with the training ones: the
    # curves are the training records' alone, and the title gives the AP of the key asked for
    # (`<first set>/bbox/AP` with several test sets), not bbox/AP.
    import matplotlib.pyplot as plt

    from dropblock_det.analysis import KEEP_PROB_KEY, plot_training_curves

    drawn = []
    real_close = plt.close
    monkeypatch.setattr(plt, "close", drawn.append)
    records = [{"iteration": 0, "total_loss": 2.0, "loss_cls": 1.5, KEEP_PROB_KEY: 1.0},
               {"iteration": 1, "bbox/AP": 99.0},
               {"iteration": 1, "total_loss": 1.0, "loss_cls": 0.5, KEEP_PROB_KEY: 0.9},
               {"iteration": 4, "val/bbox/AP": 12.5}]
    assert plot_training_curves(records, tmp_path / "curves.png", ap_key="val/bbox/AP") == tmp_path / "curves.png"
    (fig,) = drawn
    ax_loss, ax_kp = fig.axes
    curves = {line.get_label(): (list(line.get_xdata()), list(line.get_ydata())) for line in ax_loss.get_lines()}
    assert curves == {"loss_cls": ([0, 1], [1.5, 0.5]), "total_loss": ([0, 1], [2.0, 1.0])}
    assert [(list(line.get_xdata()), list(line.get_ydata())) for line in ax_kp.get_lines()] == [([0, 1], [1.0, 0.9])]
    assert [t.get_text() for t in fig.texts] == ["final val/bbox/AP = 12.50"]  # the suptitle
    real_close(fig)


def test_a_csv_row_whose_keep_prob_shares_the_asked_cells_folder_is_that_cell_and_refused(tmp_path):
    # A row of keep_prob 0.9000001 (folder b3_kp0.9) is cell (3, 0.9)'s row: a rerun asking for
    # 0.9 is refused as another configuration, even with the folder deleted, rather than
    # training 0.9 beside it (two rows, two heatmap columns, for one folder).
    from dropblock_det.analysis import SweepMismatchError

    trained = []
    sweep = _recording_sweep(tmp_path, trained)

    sweep([(3, 0.9000001)])
    shutil.rmtree(tmp_path / "b3_kp0.9")
    with pytest.raises(SweepMismatchError, match=r"block_size=3 keep_prob=0\.9: its row in .*sweep\.csv was made by "
                                                 r"another configuration"):
        sweep([(3, 0.9)])
    assert trained == [(3, 0.9000001)] and not (tmp_path / "b3_kp0.9").exists()
