"""tools/main_job.py end to end at toy size: makes the synthetic set, trains, evaluates,
writes metrics.json + the PNG + a summary, prints the final AP."""
import json
import math
import re
import shlex
import shutil
import subprocess

import pytest

from conftest import REPO, load_tool
from tools_helpers import BASELINE_CONFIG, DB_CONFIG, TINY_OPTS, another_process_holding


@pytest.fixture
def toy_defaults(monkeypatch, tmp_path):
    """Toy-sized synthetic datasets instead of the real defaults (the job reads these at
    call time)."""
    from dropblock_det.data import synthetic

    monkeypatch.setitem(synthetic.DEFAULT_DET_PARAMS, "num_train", 6)
    monkeypatch.setitem(synthetic.DEFAULT_DET_PARAMS, "num_val", 2)
    monkeypatch.setitem(synthetic.DEFAULT_DET_PARAMS, "image_size", 64)
    monkeypatch.setitem(synthetic.DEFAULT_DET_PARAMS, "min_object_size", 14)
    monkeypatch.setitem(synthetic.DEFAULT_DET_PARAMS, "max_object_size", 36)
    monkeypatch.setitem(synthetic.DEFAULT_SEM_SEG_PARAMS, "num_train", 2)
    monkeypatch.setitem(synthetic.DEFAULT_SEM_SEG_PARAMS, "num_val", 1)
    monkeypatch.setenv("DETECTRON2_DATASETS", str(tmp_path / "unused"))
    yield
    monkeypatch.undo()  # first: re-registering reads DETECTRON2_DATASETS
    synthetic.register_synthetic_datasets()


def test_main_job_makes_data_trains_evaluates_and_writes_its_outputs(tmp_path, toy_defaults, capsys):
    root, out = tmp_path / "datasets", tmp_path / "out"
    summary = load_tool("main_job").main(["--datasets-root", str(root), "--output-dir", str(out)] + TINY_OPTS)
    assert (root / "synthetic_det" / "manifest.json").is_file()
    assert (root / "synthetic_sem_seg" / "manifest.json").is_file()
    ap = summary["final_AP"]
    assert isinstance(ap, float) and math.isfinite(ap)
    records = [json.loads(x) for x in (out / "metrics.json").read_text().splitlines() if x]
    assert any("dropblock/keep_prob" in r for r in records)
    assert records[-1]["bbox/AP"] == ap
    assert (out / "main_job.png").stat().st_size > 0
    assert json.loads((out / "main_job_summary.json").read_text())["final_AP"] == ap
    assert summary["bbox_by_test_set"] == {"synthetic_det_val": summary["bbox"]}
    printed = capsys.readouterr().out
    assert f"final COCO box AP on synthetic_det_val: {ap:.2f}" in printed
    assert summary["final_AP_metric"] == "COCO box AP"
    assert "eta:" in printed  # detectron2's progress lines with the ETA are visible
    # dropblock_det's own lines too (its logger set up as train_net sets it up).
    assert re.search(r"the files of the \d+ training items are there", (out / "log.txt").read_text())
    # What README says the job writes and prints: where the outputs are, the AP and the time.
    assert (summary["config_file"], summary["datasets_test"], summary["max_iter"]) == (
        load_tool("main_job").DEFAULT_CONFIG, ["synthetic_det_val"], 3)
    assert 0 < summary["train_and_eval_seconds"] <= summary["wall_seconds"]
    assert f"[main_job] metrics: {out / 'metrics.json'}\n" in printed
    assert f"[main_job] plot:    {out / 'main_job.png'}\n" in printed
    assert re.search(rf"final COCO box AP on synthetic_det_val: {ap:.2f}  "
                     r"\(train\+eval \d+\.\d min, total \d+\.\d min\)\n", printed)


def test_with_two_test_sets_the_ap_of_each_is_printed_and_summarised_as_in_metrics(tmp_path, toy_defaults, capsys):
    # detectron2 nests the results by test set only when there are several (and writes
    # `<set>/bbox/AP` into metrics.json): the job printed "n/a" and summarised nothing.
    root, out = tmp_path / "datasets", tmp_path / "out"
    sets = ["synthetic_det_val", "synthetic_det_train"]
    summary = load_tool("main_job").main(["--datasets-root", str(root), "--output-dir", str(out)] + TINY_OPTS
                                         + ["DATASETS.TEST", str(tuple(sets))])
    last = [json.loads(x) for x in (out / "metrics.json").read_text().splitlines() if x][-1]
    aps = {name: last[f"{name}/bbox/AP"] for name in sets}
    assert all(isinstance(ap, float) and math.isfinite(ap) for ap in aps.values())
    assert {name: bbox["AP"] for name, bbox in summary["bbox_by_test_set"].items()} == aps
    assert summary["final_AP"] == aps["synthetic_det_val"] == summary["bbox"]["AP"]  # the first set's
    assert json.loads((out / "main_job_summary.json").read_text())["bbox_by_test_set"] == summary["bbox_by_test_set"]
    printed = capsys.readouterr().out
    assert (f"final COCO box AP on synthetic_det_val: {aps['synthetic_det_val']:.2f}, "
            f"on synthetic_det_train: {aps['synthetic_det_train']:.2f}") in printed


def test_the_ap_is_named_by_the_test_sets_evaluator_and_a_segmentation_set_is_refused():
    # A VOC test set's AP was printed as "COCO box AP", a segmentation set's mIoU as "n/a".
    from detectron2.data import MetadataCatalog

    import dropblock_det  # noqa: F401  (registers the synthetic sets, as main() does before this check)

    tool = load_tool("main_job")
    MetadataCatalog.get("dropblock_test_main_job_voc").set(evaluator_type="pascal_voc")
    assert tool.box_ap_names(["synthetic_det_val", "dropblock_test_main_job_voc"]) == {
        "synthetic_det_val": "COCO box AP", "dropblock_test_main_job_voc": "PASCAL VOC box AP"}
    with pytest.raises(ValueError, match=r"^DATASETS\.TEST names 'synthetic_sem_seg_val', a 'sem_seg' dataset: the "
                                         r"main job reports the box AP of a detector .*tools/train_net\.py$"):
        tool.box_ap_names(["synthetic_det_val", "synthetic_sem_seg_val"])


def test_without_a_test_set_the_job_trains_and_writes_its_outputs_with_no_ap(tmp_path, toy_defaults, capsys):
    # The plot read the first test set's AP key and failed after training: no PNG, no summary.
    root, out = tmp_path / "datasets", tmp_path / "out"
    summary = load_tool("main_job").main(["--datasets-root", str(root), "--output-dir", str(out)] + TINY_OPTS
                                         + ["DATASETS.TEST", "()"])
    assert summary["final_AP"] is None and summary["bbox_by_test_set"] == {}
    assert (out / "main_job.png").stat().st_size > 0 and (out / "main_job_summary.json").is_file()
    assert "final box AP n/a (DATASETS.TEST is empty)" in capsys.readouterr().out


def test_a_bad_config_is_refused_before_the_earlier_run_is_moved_or_data_is_made(tmp_path, toy_defaults):
    out, root = tmp_path / "out", tmp_path / "datasets"
    out.mkdir()
    (out / "model_final.pth").write_bytes(b"weights of the earlier run")
    with pytest.raises(ValueError, match=r"MODEL\.DROPBLOCK\.RESNET\.ENABLED=True.*no DropBlock"):
        load_tool("main_job").main(["--datasets-root", str(root), "--output-dir", str(out),
                                    # a backbone that ignores MODEL.DROPBLOCK
                                    "MODEL.BACKBONE.NAME", "build_retinanet_resnet_fpn_backbone"])
    assert sorted(p.name for p in out.iterdir()) == ["model_final.pth"]
    assert not root.exists()  # the synthetic sets are made only for a config that passed


@pytest.mark.parametrize("argv, match", [
    (["--output-dir", ""], r"--output-dir '' is empty"),
    (["--datasets-root", " "], r"--datasets-root ' ' is empty"),
    (["--num-threads", "-2"], r"--num-threads -2: expected >= 0"),
])
def test_an_empty_folder_or_a_negative_thread_count_is_refused_not_read_as_the_default(
        tmp_path, toy_defaults, monkeypatch, argv, match):
    # An empty --output-dir fell back to output/main_job, moving the earlier main job aside.
    monkeypatch.chdir(tmp_path)
    (tmp_path / "output" / "main_job").mkdir(parents=True)
    (tmp_path / "output" / "main_job" / "model_final.pth").write_bytes(b"the earlier main job")
    with pytest.raises(ValueError, match=match):
        load_tool("main_job").main(argv + TINY_OPTS)
    assert [p.name for p in (tmp_path / "output" / "main_job").iterdir()] == ["model_final.pth"]
    assert not (tmp_path / "datasets").exists()


def test_the_synthetic_files_are_checked_once_made(tmp_path, toy_defaults, monkeypatch):
    # The file check of the synthetic sets moved after their making: it must still run.
    from dropblock_det.data import synthetic

    def register_without_making(root):
        synthetic.register_synthetic_datasets(root)

    monkeypatch.setattr(synthetic, "ensure_synthetic_datasets", register_without_making)
    out = tmp_path / "out"
    with pytest.raises(FileNotFoundError, match="synthetic_det"):
        load_tool("main_job").main(["--datasets-root", str(tmp_path / "datasets"), "--output-dir", str(out)]
                                   + TINY_OPTS)
    assert not out.exists()


class _StopAtTheCheck(Exception):
    pass


@pytest.fixture
def output_dirs_checked(tmp_path, monkeypatch):
    """The OUTPUT_DIR of each config main_job hands to check_config_before_run, which then
    raises _StopAtTheCheck (nothing is trained); the working folder is tmp_path."""
    from dropblock_det.engine import config_checks

    seen = []

    def stop_at_the_check(cfg, *args, **kwargs):
        seen.append(cfg.OUTPUT_DIR)
        raise _StopAtTheCheck

    monkeypatch.setattr(config_checks, "check_config_before_run", stop_at_the_check)
    monkeypatch.chdir(tmp_path)
    return seen


def test_an_output_dir_opt_is_where_the_default_config_writes(tmp_path, toy_defaults, output_dirs_checked):
    # The default config's output/main_job used to be appended after the user's opts, so
    # an `OUTPUT_DIR d` opt was ignored (and the earlier main job there archived instead).
    mine, flag = str(tmp_path / "mine"), str(tmp_path / "flag")
    for argv in (["OUTPUT_DIR", mine], [], ["--output-dir", flag, "OUTPUT_DIR", mine]):
        with pytest.raises(_StopAtTheCheck):
            load_tool("main_job").main(["--datasets-root", str(tmp_path / "datasets")] + argv)
    assert output_dirs_checked == [mine, "output/main_job", flag]
    # Another config keeps its own OUTPUT_DIR (detectron2's ./output here): output/main_job,
    # and the main job's run archived there, are the default config's alone.
    with pytest.raises(_StopAtTheCheck):
        load_tool("main_job").main(["--datasets-root", str(tmp_path / "datasets"), "--config-file", BASELINE_CONFIG])
    assert output_dirs_checked[-1] == "./output"


def test_an_output_dir_that_reads_as_a_number_is_a_folder_name(tmp_path, toy_defaults, output_dirs_checked):
    # `--output-dir 42` went through yacs' literal_eval as an opt: "Type mismatch (str vs int)".
    for folder in ("42", "1e3", "None", "[1, 2]"):
        with pytest.raises(_StopAtTheCheck):
            load_tool("main_job").main(["--datasets-root", str(tmp_path / "datasets"), "--output-dir", folder])
    assert output_dirs_checked == ["42", "1e3", "None", "[1, 2]"]


def _files(root):
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_an_output_dir_in_use_or_under_a_file_is_refused_before_data_is_made(tmp_path, toy_defaults):
    # The synthetic sets were made (or rewritten) first, for a run that then failed.
    root = tmp_path / "datasets"
    out = tmp_path / "out"
    out.mkdir()
    (out / "model_final.pth").write_bytes(b"weights of the run in progress")
    with another_process_holding(out), pytest.raises(RuntimeError, match=r"OUTPUT_DIR=.*out' is in use by another run"):
        load_tool("main_job").main(["--datasets-root", str(root), "--output-dir", str(out)] + TINY_OPTS)
    assert not root.exists() and _files(out) == {"model_final.pth": b"weights of the run in progress"}
    (tmp_path / "a_file").write_text("")
    with pytest.raises(NotADirectoryError, match=r"a_file is a file"):
        load_tool("main_job").main(["--datasets-root", str(root), "--output-dir", str(tmp_path / "a_file" / "out")]
                                   + TINY_OPTS)
    assert not root.exists()


def test_an_output_dir_that_cannot_be_created_is_refused_before_data_is_made(tmp_path, toy_defaults, monkeypatch):
    import os

    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    # As the OS answers a user without write access (root, as on CI, may write anyway).
    access = os.access
    monkeypatch.setattr(os, "access", lambda path, mode, **kw: (
        not mode & os.W_OK and access(path, mode, **kw)) if os.path.realpath(path) == str(locked.resolve())
        else access(path, mode, **kw))
    try:
        with pytest.raises(PermissionError, match=r"OUTPUT_DIR=.*locked/out' cannot be created: .*locked is not writable"):
            load_tool("main_job").main(["--datasets-root", str(tmp_path / "datasets"),
                                        "--output-dir", str(locked / "out")] + TINY_OPTS)
    finally:
        locked.chmod(0o700)
    assert not (tmp_path / "datasets").exists()


def test_a_users_synthetic_set_of_other_parameters_is_not_replaced_and_nothing_is_moved(tmp_path, toy_defaults):
    # `datasets/make_synthetic.py --num-train 4` then main_job: the job replaced the set
    # with its default one, silently.
    from dropblock_det.data import synthetic
    from dropblock_det.data.synthetic import make_synthetic_detection, make_synthetic_sem_seg

    root, out = tmp_path / "datasets", tmp_path / "out"
    make_synthetic_detection(root, **{**synthetic.DEFAULT_DET_PARAMS, "num_train": 4})
    make_synthetic_sem_seg(root)
    users = _files(root)
    out.mkdir()
    (out / "model_final.pth").write_bytes(b"weights of the earlier run")
    with pytest.raises(FileExistsError, match=r"synthetic_det holds a synthetic set made with other parameters: "
                                              r"num_train=4 \(asked: 6\).*DETECTRON2_DATASETS.*--datasets-root"):
        load_tool("main_job").main(["--datasets-root", str(root), "--output-dir", str(out)] + TINY_OPTS)
    assert _files(root) == users
    assert _files(out) == {"model_final.pth": b"weights of the earlier run"}  # the earlier run not moved aside


@pytest.mark.parametrize("given", ["--datasets-root", "DETECTRON2_DATASETS"])
def test_a_datasets_root_under_a_file_is_named_by_where_it_came_from(tmp_path, toy_defaults, monkeypatch, given):
    # It failed making the data with "[Errno 20] Not a directory: '<file>/synthetic_det'",
    # naming neither the flag nor the variable that gave the folder.
    (tmp_path / "notes").write_text("the user's own file")
    root, out = tmp_path / "notes" / "datasets", tmp_path / "out"
    args = ["--output-dir", str(out)] + TINY_OPTS
    if given == "--datasets-root":
        args = ["--datasets-root", str(root)] + args
    else:
        monkeypatch.setenv("DETECTRON2_DATASETS", str(root))
    with pytest.raises(NotADirectoryError, match=rf"^{given}={re.escape(repr(str(root)))} is not a folder: "
                                                 rf"{re.escape(str(tmp_path / 'notes'))} is a file; give") as error:
        load_tool("main_job").main(args)
    # The flag that sets the folder instead is named when the variable gave it.
    assert str(error.value).endswith("give a folder for the datasets"
                                     + ("" if given == "--datasets-root" else " (--datasets-root)"))
    assert (tmp_path / "notes").read_text() == "the user's own file" and not out.exists()


def test_a_fresh_run_makes_no_output_folder_when_the_data_step_fails(tmp_path, toy_defaults):
    from dropblock_det.data import synthetic
    from dropblock_det.data.synthetic import make_synthetic_detection

    root, out = tmp_path / "datasets", tmp_path / "out"
    make_synthetic_detection(root, **{**synthetic.DEFAULT_DET_PARAMS, "seed": 5})
    with pytest.raises(FileExistsError, match=r"seed=5 \(asked: 0\)"):
        load_tool("main_job").main(["--datasets-root", str(root), "--output-dir", str(out)] + TINY_OPTS)
    assert not out.exists()


@pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")
@pytest.mark.parametrize("target", ["env", "main", "test"])
def test_the_makefile_passes_a_venv_path_with_spaces_as_one_argument(tmp_path, target):
    # `make main VENV=/path/to/your/env` (README): a path with a space split into two words
    # ran `/path/to/your` with `env/bin/python` as its argument.
    venv = str(tmp_path / "my env")
    dry_run = subprocess.run(["make", "-n", "--no-print-directory", "-C", str(REPO), target, f"VENV={venv}",
                              "PYTHON=python3"], capture_output=True, text=True, check=True).stdout
    commands = [shlex.split(line) for line in dry_run.splitlines() if line.strip()]
    assert commands[0] == ["python3", "tools/setup_env.py", "--venv", venv]
    if target != "env":
        assert [c[0] for c in commands[1:]] == [f"{venv}/bin/python"]


@pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")
@pytest.mark.parametrize("target", ["env", "main"])
def test_the_makefile_expands_a_leading_tilde_in_venv(target):
    # zsh hands `make main VENV=~/envs/x` over unexpanded: quoted, "~" stayed literal and the
    # environment was made in a folder named "~" inside the checkout.
    home = "/home/someone"
    dry_run = subprocess.run(["make", "-n", "--no-print-directory", "-C", str(REPO), target, "VENV=~/envs/x",
                              "PYTHON=python3", f"HOME={home}"], capture_output=True, text=True, check=True).stdout
    commands = [shlex.split(line) for line in dry_run.splitlines() if line.strip()]
    assert commands[0] == ["python3", "tools/setup_env.py", "--venv", f"{home}/envs/x"]
    if target != "env":
        assert [c[0] for c in commands[1:]] == [f"{home}/envs/x/bin/python"]
    # Only a leading "~" or "~/": another user's "~bob" and a "~" later in the path stay.
    for venv, expected in (("~", home), ("~/my env", f"{home}/my env"), ("~bob/x", "~bob/x"),
                           ("/a b/~x", "/a b/~x")):
        dry_run = subprocess.run(["make", "-n", "--no-print-directory", "-C", str(REPO), "env", f"VENV={venv}",
                                  "PYTHON=python3", f"HOME={home}"], capture_output=True, text=True, check=True).stdout
        assert shlex.split(dry_run.splitlines()[0])[-1] == expected, venv


@pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")
def test_every_phony_make_target_runs_something():
    # A target listed as .PHONY without a rule ("clean-outputs") did nothing and exited 0.
    phony = next(line for line in (REPO / "Makefile").read_text().splitlines() if line.startswith(".PHONY:"))
    for target in phony.split(":", 1)[1].split():
        dry_run = subprocess.run(["make", "-n", "--no-print-directory", "-C", str(REPO), target],
                                 capture_output=True, text=True)
        assert dry_run.returncode == 0 and "Nothing to be done" not in dry_run.stdout, target
        assert "tools/setup_env.py" in dry_run.stdout, target  # each one sets up the environment first


class _StopBeforeTraining(Exception):
    pass


@pytest.fixture
def stop_before_training(monkeypatch):
    """main_job stops where it builds the trainer (after the data step, the output folder's
    claim, the earlier run's move and default_setup); the list gets, at that point, whether
    another process could lock OUTPUT_DIR (False: this run holds it)."""
    import os
    import sys

    from dropblock_det.engine import trainer

    lockable = []

    def stop(self, cfg):
        probe = subprocess.run(
            [sys.executable, "-c", "import fcntl, os, sys; fd = os.open(sys.argv[1], os.O_RDONLY); "
             "fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)", os.path.abspath(cfg.OUTPUT_DIR)], capture_output=True)
        lockable.append(probe.returncode == 0)
        raise _StopBeforeTraining

    monkeypatch.setattr(trainer.DropBlockTrainer, "__init__", stop)
    return lockable


def test_a_rerun_moves_the_earlier_run_aside_and_holds_its_folder_while_training(tmp_path, toy_defaults,
                                                                                stop_before_training, capsys):
    # The earlier run's metrics.json would be appended to and its model_final.pth overwritten;
    # a rerun from its own config.yaml (detectron2's habit) must still find that file.
    from dropblock_det.engine.config_checks import load_config

    root, new, out = tmp_path / "datasets", tmp_path / "new", tmp_path / "out"
    with pytest.raises(_StopBeforeTraining):
        load_tool("main_job").main(["--datasets-root", str(root), "--output-dir", str(new)] + TINY_OPTS)
    assert stop_before_training == [False]  # a folder the job created is held as well
    out.mkdir()
    earlier_config = load_config(DB_CONFIG, TINY_OPTS).dump()
    (out / "config.yaml").write_text(earlier_config)
    (out / "metrics.json").write_text('{"iteration": 2}\n')
    with pytest.raises(_StopBeforeTraining):
        load_tool("main_job").main(["--datasets-root", str(root), "--config-file", str(out / "config.yaml"),
                                    "--output-dir", str(out)])
    (archived,) = (out / "previous_runs").iterdir()
    assert (archived / "metrics.json").read_text() == '{"iteration": 2}\n' and not (out / "metrics.json").exists()
    assert (archived / "config.yaml").read_text() == earlier_config and (out / "config.yaml").is_file()
    assert f"[main_job] the earlier run in {out} was moved to {archived}" in capsys.readouterr().out
    assert stop_before_training == [False, False]


@pytest.mark.parametrize("num_threads, expected", [(None, 2), ("1", 1), ("0", "unchanged")])
def test_num_threads_sets_torchs_threads_and_0_leaves_torchs_default(tmp_path, toy_defaults, monkeypatch,
                                                                     num_threads, expected):
    # README: `--num-threads 0` for torch's own default (all cores); the job's default is 2.
    import torch

    from dropblock_det.engine import config_checks

    before = torch.get_num_threads()
    seen = []

    def stop_at_the_check(cfg, *args, **kwargs):
        seen.append(torch.get_num_threads())
        raise _StopAtTheCheck

    monkeypatch.setattr(config_checks, "check_config_before_run", stop_at_the_check)
    torch.set_num_threads(3)
    try:
        with pytest.raises(_StopAtTheCheck):
            load_tool("main_job").main(["--datasets-root", str(tmp_path / "datasets"), "--output-dir",
                                        str(tmp_path / "out")] + (["--num-threads", num_threads] if num_threads else []))
    finally:
        torch.set_num_threads(before)
    assert seen == [3 if expected == "unchanged" else expected]


def test_a_test_image_missing_after_the_data_step_is_named_before_the_output_dir_is_touched(
        tmp_path, toy_defaults, monkeypatch):
    # The evaluation reads the test set only after the whole training: a val image gone (a
    # synthetic folder cleaned by hand, made by another version) failed there.
    from dropblock_det.data import synthetic
    from dropblock_det.data.file_errors import DatasetFileError

    make = synthetic.ensure_synthetic_datasets

    def make_then_lose_an_image(root):
        make(root)
        (root / "synthetic_det" / "val" / "000001.jpg").unlink()

    monkeypatch.setattr(synthetic, "ensure_synthetic_datasets", make_then_lose_an_image)
    out = tmp_path / "out"
    out.mkdir()
    (out / "model_final.pth").write_bytes(b"weights of the earlier run")
    with pytest.raises(DatasetFileError, match=r"DATASETS\.TEST names 'synthetic_det_val', whose file_name .* "
                                                r"does not exist"):
        load_tool("main_job").main(["--datasets-root", str(tmp_path / "datasets"), "--output-dir", str(out)]
                                   + TINY_OPTS)
    assert _files(out) == {"model_final.pth": b"weights of the earlier run"}


def test_a_segmentation_config_is_refused_before_data_is_made(tmp_path, toy_defaults, stop_before_training):
    # An FCN on the synthetic segmentation set passes the config checks: the job trained it,
    # then printed its mIoU-less results as "final COCO box AP on synthetic_sem_seg_val: n/a".
    root, out = tmp_path / "datasets", tmp_path / "out"
    config = REPO / "configs" / "PascalVOC-SemanticSegmentation" / "fcn_R_50_FPN_GN_scratch_poly_330k_bs16.yaml"
    with pytest.raises(ValueError, match=r"^DATASETS\.TEST names 'synthetic_sem_seg_val', a 'sem_seg' dataset: the main "
                                         r"job reports the box AP of a detector"):
        load_tool("main_job").main(["--datasets-root", str(root), "--output-dir", str(out), "--config-file", str(config),
                                    "MODEL.DEVICE", "cpu", "MODEL.SEM_SEG_HEAD.NUM_CLASSES", "4",
                                    "DATASETS.TRAIN", "('synthetic_sem_seg_train',)",
                                    "DATASETS.TEST", "('synthetic_sem_seg_val',)"])
    assert not root.exists() and not out.exists()


@pytest.fixture
def trained_by(monkeypatch):
    """trained_by(results, records): main_job's trainer trains nothing; it writes `records`
    as OUTPUT_DIR/metrics.json and returns `results` (what DropBlockTrainer.train returns).
    Returns the list of the configs it is built with."""
    import os

    from dropblock_det.engine import trainer

    built = []

    def replace(results, records):
        class NoTraining(trainer.DropBlockTrainer):  # its class methods are what the checks build with
            def __init__(self, cfg):
                built.append(cfg)
                self.cfg = cfg

            def resume_or_load(self, resume):
                pass

            def train(self):
                with open(os.path.join(self.cfg.OUTPUT_DIR, "metrics.json"), "w") as f:
                    f.writelines(json.dumps(record) + "\n" for record in records)
                return results

        monkeypatch.setattr(trainer, "DropBlockTrainer", NoTraining)
        return built

    return replace


def test_the_command_line_exits_0_and_leaves_the_runs_config_and_log_in_its_folder(
        tmp_path, toy_defaults, monkeypatch, capsys, trained_by):
    # `python tools/main_job.py` (make main): main() returns the summary, which as an exit
    # status would print it and exit 1; default_setup's config.yaml is what a rerun starts from.
    import runpy
    import sys

    from dropblock_det.engine.config_checks import load_config

    built = trained_by({"bbox": {"AP": 12.5}}, [{"iteration": 2, "total_loss": 1.0}, {"iteration": 2, "bbox/AP": 12.5}])
    out = tmp_path / "out"
    monkeypatch.setattr(sys, "path", list(sys.path))
    monkeypatch.setattr(sys, "argv", ["main_job.py", "--datasets-root", str(tmp_path / "datasets"),
                                      "--output-dir", str(out)] + TINY_OPTS)
    try:
        runpy.run_path(str(REPO / "tools" / "main_job.py"), run_name="__main__")
    except SystemExit as exit_info:
        assert exit_info.code in (None, 0)
    assert "final COCO box AP on synthetic_det_val: 12.50" in capsys.readouterr().out
    ((cfg,),) = [built]
    assert cfg.is_frozen() and cfg.OUTPUT_DIR == str(out)
    saved = load_config(str(out / "config.yaml"))
    assert (saved.SOLVER.MAX_ITER, saved.OUTPUT_DIR, saved.MODEL.FPN.OUT_CHANNELS) == (3, str(out), 64)
    assert (out / "log.txt").is_file()
    assert json.loads((out / "main_job_summary.json").read_text())["final_AP"] == 12.5


def test_a_nan_ap_is_summarised_as_null_and_each_test_sets_ap_is_named_by_its_evaluator(
        tmp_path, toy_defaults, monkeypatch, capsys, trained_by):
    # detectron2's COCOEvaluator reports COCOeval's -1 (no ground truth) as NaN, which is no
    # JSON: written as null, not refused by json.dump after the whole training. The summary
    # and the printed line name each set's AP as its evaluator reports it.
    tool = load_tool("main_job")
    names = {"synthetic_det_val": "PASCAL VOC box AP", "synthetic_det_train": "COCO box AP"}
    monkeypatch.setattr(tool, "box_ap_names", lambda test_sets: {name: names[name] for name in test_sets})
    trained_by({"synthetic_det_val": {"bbox": {"AP": math.nan, "AP50": 50.0}},
                "synthetic_det_train": {"bbox": {"AP": 12.5, "AP50": math.nan}}},
               [{"iteration": 2, "total_loss": 1.0}])
    out = tmp_path / "out"
    summary = tool.main(["--datasets-root", str(tmp_path / "datasets"), "--output-dir", str(out)] + TINY_OPTS
                        + ["DATASETS.TEST", str(tuple(names))])
    assert summary["final_AP"] is None and summary["final_AP_metric"] == "PASCAL VOC box AP"
    assert summary["bbox_by_test_set"] == {"synthetic_det_val": {"AP": None, "AP50": 50.0},
                                           "synthetic_det_train": {"AP": 12.5, "AP50": None}}
    assert json.loads((out / "main_job_summary.json").read_text()) == summary
    printed = capsys.readouterr().out
    assert re.search(r"final box AP on synthetic_det_val \(PASCAL VOC box AP\): \S+, "
                     r"on synthetic_det_train \(COCO box AP\): 12\.50  \(train\+eval", printed)


def _real_set_not_on_disk(name: str) -> str:
    """`name` registered (once) as a COCO-format set of the synthetic classes whose files are
    not on this disk; returns `name`."""
    from detectron2.data import DatasetCatalog, MetadataCatalog
    from detectron2.data.datasets import register_coco_instances

    if name not in DatasetCatalog.list():
        register_coco_instances(name, {}, f"/nonexistent/{name}/annotations.json", f"/nonexistent/{name}/images")
        MetadataCatalog.get(name).set(thing_classes=list(MetadataCatalog.get("synthetic_det_train").thing_classes))
    return name


def test_a_real_training_set_missing_beside_the_generated_test_set_is_named_and_nothing_is_moved(
        tmp_path, toy_defaults):
    # The synthetic test set's files are checked once it is made; the real training set's
    # must still be checked before the earlier run is moved aside and the training starts.
    real = _real_set_not_on_disk("dropblock_test_main_job_real_train")
    root, out = tmp_path / "datasets", tmp_path / "out"
    out.mkdir()
    (out / "model_final.pth").write_bytes(b"weights of the earlier run")
    with pytest.raises(FileNotFoundError, match=rf"{real} \(DATASETS\.TRAIN\)") as error:
        load_tool("main_job").main(["--datasets-root", str(root), "--output-dir", str(out)] + TINY_OPTS
                                   + ["DATASETS.TRAIN", f"('{real}',)"])
    assert "synthetic_det_val" not in str(error.value)  # made by the job, so not missing
    assert _files(out) == {"model_final.pth": b"weights of the earlier run"}
    assert not root.exists()  # refused before the synthetic sets were made (time, not files)


def test_a_rerun_fine_tuning_from_the_earlier_runs_weights_in_its_folder_still_finds_them(
        tmp_path, toy_defaults, stop_before_training):
    # MODEL.WEIGHTS out/model_final.pth into out: the file must stay (copied, not moved aside).
    import torch

    out = tmp_path / "out"
    out.mkdir()
    torch.save({"model": {}, "iteration": 2}, out / "model_final.pth")
    weights = (out / "model_final.pth").read_bytes()
    with pytest.raises(_StopBeforeTraining):
        load_tool("main_job").main(["--datasets-root", str(tmp_path / "datasets"), "--output-dir", str(out)]
                                   + TINY_OPTS + ["MODEL.WEIGHTS", str(out / "model_final.pth")])
    (archived,) = (out / "previous_runs").iterdir()
    assert (out / "model_final.pth").read_bytes() == (archived / "model_final.pth").read_bytes() == weights


def test_a_config_of_real_sets_only_has_their_files_checked_before_the_earlier_run_is_moved(
        tmp_path, toy_defaults, stop_before_training):
    # With no synthetic set, check_config_before_run is the only check of the sets' files
    # before the earlier run is moved aside (the data loader would fail only after that).
    real = _real_set_not_on_disk("dropblock_test_main_job_real_only")
    root, out = tmp_path / "datasets", tmp_path / "out"
    out.mkdir()
    (out / "model_final.pth").write_bytes(b"weights of the earlier run")
    with pytest.raises(FileNotFoundError, match=rf"{real} \(DATASETS\.TRAIN\)"):
        load_tool("main_job").main(["--datasets-root", str(root), "--output-dir", str(out)] + TINY_OPTS
                                   + ["DATASETS.TRAIN", f"('{real}',)", "DATASETS.TEST", f"('{real}',)"])
    assert _files(out) == {"model_final.pth": b"weights of the earlier run"}
    assert not root.exists() and stop_before_training == []


def test_the_summary_holds_the_evaluations_box_metrics_and_falls_back_to_metrics_json_for_the_ap(
        tmp_path, toy_defaults, trained_by):
    # One test set: DefaultTrainer.test's results are that set's own dict ({"bbox": {...}}),
    # not one per set by name. Without results, the AP is the one the last record of
    # metrics.json holds (`bbox/AP` for one test set).
    tool = load_tool("main_job")
    trained_by({"bbox": {"AP": 12.5, "AP50": 30.0}}, [{"iteration": 2, "bbox/AP": 12.5}])
    summary = tool.main(["--datasets-root", str(tmp_path / "datasets"), "--output-dir", str(tmp_path / "a")]
                        + TINY_OPTS)
    assert summary["bbox"] == {"AP": 12.5, "AP50": 30.0} and summary["final_AP"] == 12.5
    assert summary["bbox_by_test_set"] == {"synthetic_det_val": {"AP": 12.5, "AP50": 30.0}}
    trained_by({}, [{"iteration": 2, "total_loss": 1.0}, {"iteration": 2, "bbox/AP": 7.0}])
    summary = tool.main(["--datasets-root", str(tmp_path / "datasets"), "--output-dir", str(tmp_path / "b")]
                        + TINY_OPTS)
    assert summary["final_AP"] == 7.0 and summary["bbox"] == {}


# --- mutation run 55 ---
def test_a_thread_count_of_minus_one_is_refused_before_anything_is_made(tmp_path, toy_defaults, monkeypatch):
    # -1 (a common "all cores" spelling) was not to be read as torch's default either.
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ValueError, match=r"--num-threads -1: expected >= 0 \(0 = torch's default\)"):
        load_tool("main_job").main(["--num-threads", "-1", "--datasets-root", str(tmp_path / "datasets"),
                                    "--output-dir", str(tmp_path / "out")] + TINY_OPTS)
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def test_the_plot_shows_the_ap_metrics_json_holds_for_one_test_set_or_the_first_of_several(
        tmp_path, toy_defaults, trained_by, monkeypatch):
    # main_job.png's AP is the one metrics.json records: `bbox/AP` for one test set,
    # `<first set>/bbox/AP` for several.
    from dropblock_det import analysis

    asked, real_plot = [], analysis.plot_training_curves
    monkeypatch.setattr(analysis, "plot_training_curves",
                        lambda records, out_png, ap_key, title: asked.append(ap_key) or real_plot(
                            records, out_png, ap_key=ap_key, title=title))
    trained_by({}, [{"iteration": 2, "total_loss": 1.0, "bbox/AP": 7.0}])
    tool = load_tool("main_job")
    tool.main(["--datasets-root", str(tmp_path / "datasets"), "--output-dir", str(tmp_path / "a")] + TINY_OPTS)
    sets = ["synthetic_det_val", "synthetic_det_train"]
    tool.main(["--datasets-root", str(tmp_path / "datasets"), "--output-dir", str(tmp_path / "b")] + TINY_OPTS
              + ["DATASETS.TEST", str(tuple(sets))])
    assert asked == ["bbox/AP", "synthetic_det_val/bbox/AP"]
    assert (tmp_path / "a" / "main_job.png").is_file()
