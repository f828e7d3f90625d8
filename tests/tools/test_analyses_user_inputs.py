"""The analysis tools (tools/analyze_robustness.py, tools/sweep.py) against a user's inputs:
keep_probs the table must name exactly, values given twice, checkpoint paths with ':' or
given by URL, a sweep.csv row cut short, matplotlib missing."""
import csv
import sys

import pytest
import torch

from conftest import load_tool
from tools_helpers import DB_CONFIG, TINY_OPTS, tiny_dropblock_net, tiny_synthetic_datasets


# ----------------------------------------------------------------------------- robustness
def test_the_robustness_table_names_each_keep_prob_as_evaluated():
    # Two decimals made 0.975 a second "0.97" row and 0.925 a "0.93" one.
    from dropblock_det.analysis import format_robustness_table

    table = format_robustness_table({"DB": {1.0: [1.0], 0.975: [2.0], 0.97: [3.0], 0.925: [4.0], 0.9125: [5.0]}})
    assert [line.split()[0] for line in table.splitlines()[1:]] == ["1.00", "0.975", "0.97", "0.925", "0.9125"]


def test_a_seed_or_keep_prob_given_twice_is_one_evaluation():
    # `--seeds 0 0 1` counted seed 0 twice: n=3, its draw weighed double in the mean and the
    # std shrunk by a copy; `--keep-probs 0.5 0.5` evaluated 0.5 twice for one row.
    from dropblock_det.analysis import evaluate_with_dropblock_at_inference, summarize_runs

    torch.manual_seed(0)
    net = tiny_dropblock_net()
    x = torch.randn(2, 1, 16, 16)
    evaluations = []

    def evaluate(model):
        evaluations.append(model.drop.keep_prob)
        with torch.no_grad():
            return {"v": model(x).sum().item()}

    curves = evaluate_with_dropblock_at_inference(net, evaluate, [0.5, 1.0, 0.5], [0, 0, 1], lambda r: r["v"])
    assert evaluations == [0.5, 0.5, 1.0]
    assert list(curves) == [0.5, 1.0] and len(curves[0.5]) == 2 and curves[0.5][0] != curves[0.5][1]
    assert [n for _, _, _, n in summarize_runs(curves)] == [1, 2]


def test_a_checkpoint_path_with_a_colon_is_parsed_as_the_user_means(tmp_path):
    tool = load_tool("analyze_robustness")
    timed = tmp_path / "model_12:00.pth"  # a ':' in the file's own name
    plain = tmp_path / "model.pth"
    for path in (timed, plain):
        path.write_bytes(b"")
    assert tool._checkpoint_and_label(str(timed)) == (str(timed), "model_12:00")
    assert tool._checkpoint_and_label(f"{timed}:DB") == (str(timed), "DB")
    assert tool._checkpoint_and_label(f"{plain}:DB") == (str(plain), "DB")
    folder = tmp_path / "run:2" / "model_final.pth"  # in a folder's name
    assert tool._checkpoint_and_label(str(folder)) == (str(folder), "model_final")
    # Neither the whole nor the part before the ':' exists: the missing one is the path.
    assert tool._checkpoint_and_label(str(tmp_path / "gone.pth:DB")) == (str(tmp_path / "gone.pth"), "DB")


def test_a_checkpoint_path_given_with_a_tilde_is_in_the_users_home(tmp_path, monkeypatch):
    # `--checkpoint=~/model.pth` (no shell expansion after "=") was refused as "no such file".
    monkeypatch.setenv("HOME", str(tmp_path))
    tool = load_tool("analyze_robustness")
    (tmp_path / "model_12:00.pth").write_bytes(b"")
    assert tool._checkpoint_and_label("~/model.pth:DB") == (str(tmp_path / "model.pth"), "DB")
    assert tool._checkpoint_and_label("~/model.pth") == (str(tmp_path / "model.pth"), "model")
    assert tool._checkpoint_and_label("~/model_12:00.pth") == (str(tmp_path / "model_12:00.pth"), "model_12:00")


def test_robustness_evaluates_a_checkpoint_given_by_url(served, tmp_path):
    # detectron2 loads weights from a URL (detectron2://, https://), as train_net --eval-only
    # does; the tool refused every URL as "no such file".
    from detectron2.checkpoint import DetectionCheckpointer

    from dropblock_det.engine.config_checks import load_config
    from dropblock_det.engine.trainer import DropBlockTrainer

    url, folder = served
    with tiny_synthetic_datasets(tmp_path / "datasets", num_val=2):
        model = DropBlockTrainer.build_model(load_config(DB_CONFIG, TINY_OPTS))
        DetectionCheckpointer(model, save_dir=str(folder)).save("model_final")
        tool = load_tool("analyze_robustness")
        argv = ["--keep-probs", "1.0", "--seeds", "0", "--config-file", DB_CONFIG] + TINY_OPTS
        by_url = tool.main(["--checkpoint", f"{url}/model_final.pth", "--output-dir", str(tmp_path / "url")] + argv)
        by_path = tool.main(["--checkpoint", str(folder / "model_final.pth"),
                             "--output-dir", str(tmp_path / "path")] + argv)
    assert by_url == by_path and list(by_url) == ["model_final"] and len(by_url["model_final"][1.0]) == 1
    assert list((tmp_path / "cache").rglob("model_final.pth"))  # downloaded, into the cache


# ----------------------------------------------------------------------------- sweep
def _config(tmp_path, b, kp):
    return {"OUTPUT_DIR": str(tmp_path / f"b{b}_kp{kp:g}"), "SOLVER": {"MAX_ITER": 2},
            "MODEL": {"DROPBLOCK": {"BLOCK_SIZE": b, "KEEP_PROB": kp}}}


@pytest.mark.parametrize("cut", ["value", "fingerprint"])
def test_a_sweep_csv_row_cut_short_is_named_by_file_and_line(tmp_path, cut):
    # A sweep stopped (or a disk filled) while it appended a row: the rerun failed with
    # "TypeError: 'NoneType' object is not subscriptable", or blamed another configuration.
    from dropblock_det.analysis import SweepMismatchError, run_sweep

    trained = []

    def sweep(cells):
        return run_sweep(cells, lambda b, kp, cfg, resume: trained.append((b, kp)) or 1.0,
                         tmp_path / "sweep.csv", log=lambda m: None,
                         cell_config=lambda b, kp: _config(tmp_path, b, kp))

    sweep([(1, 0.8), (3, 0.8)])
    text = (tmp_path / "sweep.csv").read_text()
    last = text.splitlines()[-1]
    cut_at = last.index(",bbox/AP,") + len(",bbox/AP,") + 2 if cut == "value" else len(last) - 20
    (tmp_path / "sweep.csv").write_text(text[:text.index(last)] + last[:cut_at])
    before = (tmp_path / "sweep.csv").read_text()
    with pytest.raises(SweepMismatchError, match=r"sweep\.csv, line 3: .*cut short") as e:
        sweep([(1, 0.8), (3, 0.8)])
    assert str(tmp_path / "sweep.csv") in str(e.value)
    assert trained == [(1, 0.8), (3, 0.8)] and (tmp_path / "sweep.csv").read_text() == before
    # Without that line, the cell's training is found again (here: trained again).
    (tmp_path / "sweep.csv").write_text(text[:text.index(last)])
    assert sweep([(1, 0.8), (3, 0.8)]) == {(1, 0.8): 1.0, (3, 0.8): 1.0} and trained[-1] == (3, 0.8)
    with open(tmp_path / "sweep.csv") as f:
        assert len(list(csv.DictReader(f))) == 2


# ----------------------------------------------------------------------------- matplotlib
@pytest.mark.parametrize("tool_name, argv", [
    ("sweep", ["--config-file", DB_CONFIG, "--block-sizes", "3", "--keep-probs", "0.9"]),
    ("analyze_robustness", ["--config-file", DB_CONFIG, "--checkpoint", "model_final.pth", "--keep-probs", "0.9"]),
])
def test_a_missing_matplotlib_is_named_before_any_training_or_evaluation(tmp_path, monkeypatch, tool_name, argv):
    # The plot is drawn last: a sweep trained every cell (an evaluation run evaluated every
    # checkpoint) and only then failed on `import matplotlib`.
    from dropblock_det.engine.trainer import DropBlockTrainer

    tool = load_tool(tool_name)
    started = []
    monkeypatch.setattr(DropBlockTrainer, "build_model", classmethod(lambda cls, cfg: started.append(cfg)))
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    monkeypatch.setitem(sys.modules, "matplotlib.pyplot", None)
    out = tmp_path / "out"
    with pytest.raises(ImportError, match=r"matplotlib.*pip install matplotlib"):
        tool.main(argv + ["--output-dir", str(out)] + TINY_OPTS)
    assert started == [] and not out.exists()


@pytest.mark.parametrize("seed", ["18446744073709551616", "-9223372036854775809"])
def test_a_seed_torch_cannot_take_is_refused_naming_the_flag_before_anything_is_moved(tmp_path, capsys, seed):
    # torch.manual_seed raised "Overflow when unpacking long long" after the tool had moved
    # the earlier results aside and evaluated the seeds before it.
    tool = load_tool("analyze_robustness")
    out = tmp_path / "out"
    out.mkdir()
    (out / "robustness.txt").write_text("earlier results\n")  # what a run moves aside
    with pytest.raises(SystemExit):
        tool.main(["--config-file", DB_CONFIG, "--checkpoint", str(tmp_path / "model.pth"), "--keep-probs", "0.9",
                   "--seeds", "0", seed, "--output-dir", str(out)] + TINY_OPTS)
    assert f"argument --seeds: expected an integer from {-2**63} to {2**64 - 1}, got '{seed}'" in capsys.readouterr().err
    assert sorted(p.name for p in out.iterdir()) == ["robustness.txt"]
    assert tool.parse_args(["--config-file", "c", "--checkpoint", "m.pth", "--seeds", str(2**64 - 1),
                            str(-2**63)]).seeds == [2**64 - 1, -2**63]


# --- mutation run 51b: behaviour the tests above left unpinned -------------------------------


def test_a_windows_checkpoint_path_is_not_split_at_its_drive_letter():
    # "C:\runs\model.pth": the ':' after a one-letter drive is no label separator.
    tool = load_tool("analyze_robustness")
    assert tool._checkpoint_and_label("C:\\runs\\model.pth")[0] == "C:\\runs\\model.pth"
    assert tool._checkpoint_and_label("C:\\runs\\model.pth:DB") == ("C:\\runs\\model.pth", "DB")


# --- bad-input journey 54 ---
def test_a_folder_given_for_a_checkpoint_is_named_as_a_folder_not_as_missing(tmp_path):
    # `--checkpoint output/run` (the run's folder for its model_final.pth) was refused as
    # "no such file: output/run", though it is there.
    tool = load_tool("analyze_robustness")
    run = tmp_path / "run"
    run.mkdir()
    argv = ["--config-file", DB_CONFIG, "--keep-probs", "0.9", "--seeds", "0", "--output-dir", str(tmp_path / "out")]
    with pytest.raises(FileNotFoundError, match=rf"^--checkpoint: a folder, not a checkpoint file: {run} \(give the "
                                                r"checkpoint in it, e.g. a run's model_final\.pth\)$"):
        tool.main(["--checkpoint", str(run)] + argv + TINY_OPTS)
    gone = tmp_path / "gone.pth"
    with pytest.raises(FileNotFoundError, match=rf"^--checkpoint: no such file: {gone}; a folder, not a checkpoint "
                                                rf"file: {run} "):
        tool.main(["--checkpoint", str(gone), "--checkpoint", f"{run}:R"] + argv + TINY_OPTS)
    assert not (tmp_path / "out").exists()


# --- mutation 58A ---
def test_a_sweep_csv_row_with_more_fields_than_its_header_is_named_by_file_and_line(tmp_path):
    # A field too many (a comma in a hand edit, two rows run together) shifts what each column
    # reads: the row is refused as one cut short is, not taken for its cell's result.
    from dropblock_det.analysis import SweepMismatchError, read_sweep_csv, run_sweep

    run_sweep([(1, 0.8), (3, 0.8)], lambda b, kp, cfg, resume: 1.0, tmp_path / "sweep.csv", log=lambda m: None,
              cell_config=lambda b, kp: _config(tmp_path, b, kp))
    lines = (tmp_path / "sweep.csv").read_text().splitlines()
    (tmp_path / "sweep.csv").write_text("\n".join(lines[:2] + [lines[2] + ",0.5"]) + "\n")
    with pytest.raises(SweepMismatchError, match=r"sweep\.csv, line 3: cannot read this row \(7 fields\)"):
        read_sweep_csv(tmp_path / "sweep.csv")
