"""The analyses: robustness to DropBlock at inference (tools/analyze_robustness.py) and the
block_size x keep_prob sweep (tools/sweep.py), on tiny models and grids."""
import csv
import math

import pytest
import torch
from torch import nn

from conftest import load_tool
from tools_helpers import (
    BASELINE_CONFIG,
    DB_CONFIG,
    TINY_OPTS,
    tiny_synthetic_datasets,
)


@pytest.fixture(scope="module")
def tiny_datasets(tmp_path_factory):
    with tiny_synthetic_datasets(tmp_path_factory.mktemp("datasets"), num_val=2) as root:
        yield root


# ----------------------------------------------------------------------------- robustness
class _Net(nn.Module):
    def __init__(self):
        super().__init__()
        from dropblock_det.layers import DropBlock2d

        self.conv = nn.Conv2d(1, 4, 3, padding=1)
        self.drop = DropBlock2d(keep_prob=0.9, block_size=3)

    def forward(self, x):
        return self.drop(self.conv(x))


def test_regularizers_are_on_at_inference_only_during_the_evaluation():
    from dropblock_det.analysis import evaluate_with_dropblock_at_inference

    torch.manual_seed(0)
    net = _Net()
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
        evaluate_with_dropblock_at_inference(_Net(), lambda m: evaluations.append(m) or {}, [0.9, 1.5], [0],
                                             lambda r: 0.0)
    assert evaluations == []


def test_detectron2_evaluation_keeps_the_switched_on_regularizers_active(tiny_datasets):
    # inference_on_dataset calls model.eval() on an nn.Module, which would silently turn
    # DropBlock off again; the tool hands it a plain callable instead.
    from dropblock_det.engine.trainer import DropBlockTrainer, load_config
    from dropblock_det.layers import iter_regularizers, set_keep_prob

    tool = load_tool("analyze_robustness")
    cfg = load_config(DB_CONFIG, TINY_OPTS)
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


def test_robustness_tool_compares_a_dropblock_and_a_stock_checkpoint(tiny_datasets, tmp_path,
                                                                    capsys):
    from detectron2.checkpoint import DetectionCheckpointer

    from dropblock_det.engine.trainer import DropBlockTrainer, load_config
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
    assert not (out / "evaluation").exists()
    curves = tool.main(argv)
    assert sorted(p.name for p in (run / "inference").iterdir()) == ["coco_instances_results.json"]
    assert (run / "inference" / "coco_instances_results.json").read_text() == "[]"
    assert set(curves) == {"DropBlock", "baseline"}
    for c in curves.values():
        assert len(c[1.0]) == 1 and len(c[0.5]) == 2
        assert all(math.isfinite(v) and 0 <= v <= 100 for v in c[1.0] + c[0.5])
    printed = capsys.readouterr().out
    assert "keep_prob" in printed and "DropBlock AP" in printed and "baseline AP" in printed
    assert (out / "robustness.png").stat().st_size > 0
    assert (out / "robustness.txt").read_text().startswith("keep_prob")


# ----------------------------------------------------------------------------- sweep
def test_sweep_writes_csv_and_heatmap_and_skips_finished_cells(tiny_datasets, tmp_path):
    tool = load_tool("sweep")
    out = tmp_path / "sweep"
    argv = ["--config-file", DB_CONFIG, "--block-sizes", "1", "3", "--keep-probs", "0.8",
            "--output-dir", str(out)] + TINY_OPTS + ["SOLVER.MAX_ITER", "2"]
    # Two TEST datasets: a cell is evaluated on the first (DefaultTrainer.test would key
    # its results by dataset name).
    values = tool.main(argv + ["DATASETS.TEST", "('synthetic_det_val', 'synthetic_det_train')"])
    assert set(values) == {(1, 0.8), (3, 0.8)}
    with open(out / "sweep.csv") as f:
        rows = list(csv.DictReader(f))
    assert [(r["block_size"], r["keep_prob"]) for r in rows] == [("1", "0.8"), ("3", "0.8")]
    assert all(math.isfinite(float(r["value"])) for r in rows)
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


def test_sweep_rejects_bad_grid_values_before_training(tiny_datasets, tmp_path):
    tool = load_tool("sweep")
    with pytest.raises(ValueError, match="keep_prob 1.5"):
        tool.main(["--config-file", DB_CONFIG, "--block-sizes", "3", "--keep-probs", "1.5",
                   "--output-dir", str(tmp_path)])
    with pytest.raises(ValueError, match="DATASETS.TEST is empty"):
        tool.main(["--config-file", DB_CONFIG, "--block-sizes", "3", "--keep-probs", "0.9",
                   "--output-dir", str(tmp_path), "DATASETS.TEST", "()"])
    assert not list(tmp_path.iterdir())
