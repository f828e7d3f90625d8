"""tools/train_net.py end to end on a tiny synthetic set: training + COCO evaluation,
--eval-only on the written checkpoint, --resume, and one clear error per bad input."""
import json
import logging
import math
import re

import pytest
import torch

from conftest import load_tool
from tools_helpers import (
    DB_CONFIG,
    TINY_OPTS,
    another_process_holding,
    file_mtimes,
    run_copy_and_truncated_weights,
    tiny_synthetic_datasets,
)


@pytest.fixture(scope="module")
def tiny_datasets(module_tmp_path_factory):
    with tiny_synthetic_datasets(module_tmp_path_factory.mktemp("datasets")) as root:
        yield root


@pytest.fixture(scope="module")
def train_net():
    return load_tool("train_net")


@pytest.fixture(scope="module")
def trained(tiny_datasets, train_net, module_tmp_path_factory):
    """(output dir, results) of a 3-iteration training with DropBlock + evaluation."""
    out = module_tmp_path_factory.mktemp("train")
    args = train_net.parser().parse_args(
        ["--config-file", DB_CONFIG] + TINY_OPTS + ["OUTPUT_DIR", str(out)])
    torch.manual_seed(0)
    results = train_net.main(args)
    return out, results


def _records(out):
    return [json.loads(line) for line in (out / "metrics.json").read_text().splitlines() if line]


def test_training_then_evaluation_reports_a_finite_coco_ap(trained):
    out, results = trained
    ap = results["bbox"]["AP"]
    assert isinstance(ap, float) and math.isfinite(ap) and 0.0 <= ap <= 100.0
    assert (out / "model_final.pth").is_file()
    records = _records(out)
    # The schedule hook ran: keep_prob recorded, ramping down towards the target 0.9.
    kp = [r["dropblock/keep_prob"] for r in records if "dropblock/keep_prob" in r]
    assert kp and 0.9 <= kp[-1] < 1.0
    assert records[-1]["bbox/AP"] == pytest.approx(ap)


def test_the_packages_log_lines_reach_the_runs_log(trained):
    # default_setup sets up detectron2's loggers only: the training files' check (dropblock_det's
    # logger) logged into nothing, where lazyconfig_train_net set its logger up.
    out, _ = trained
    assert "the files of the 6 training items are there" in (out / "log.txt").read_text()


def test_eval_only_on_the_written_checkpoint_reproduces_the_final_ap(trained, train_net,
                                                                     tmp_path):
    out, results = trained
    args = train_net.parser().parse_args(
        ["--config-file", DB_CONFIG, "--eval-only"] + TINY_OPTS
        + ["MODEL.WEIGHTS", str(out / "model_final.pth"), "OUTPUT_DIR", str(tmp_path)])
    evaluated = train_net.main(args)
    assert evaluated["bbox"]["AP"] == pytest.approx(results["bbox"]["AP"], abs=1e-6)


def test_eval_only_needs_the_test_data_not_the_training_data(trained, train_net, tmp_path):
    # Evaluating a checkpoint with only the validation set at hand (COCO val2017 without
    # train2017): the training set's files were required too.
    from dropblock_det.data.dataset_check import missing_dataset_paths

    out, results = trained
    assert missing_dataset_paths(["coco_2017_train"])  # not in the test datasets folder
    argv = ["--config-file", DB_CONFIG, "--eval-only"] + TINY_OPTS + [
        "MODEL.WEIGHTS", str(out / "model_final.pth"), "DATASETS.TRAIN", "('coco_2017_train',)"]
    evaluated = train_net.main(train_net.parser().parse_args(argv + ["OUTPUT_DIR", str(tmp_path / "eval")]))
    assert evaluated["bbox"]["AP"] == pytest.approx(results["bbox"]["AP"], abs=1e-6)
    # A training does need them: refused by name, before anything is written.
    with pytest.raises(FileNotFoundError, match="coco_2017_train"):
        train_net.main(train_net.parser().parse_args(
            [a for a in argv if a != "--eval-only"] + ["OUTPUT_DIR", str(tmp_path / "train")]))
    assert not (tmp_path / "train").exists()


class _Messages(logging.Handler):
    def __init__(self):
        super().__init__()
        self.messages = []

    def emit(self, record):
        self.messages.append(record.getMessage())


def test_resume_continues_from_the_saved_iteration(trained, train_net, tmp_path):
    import shutil

    out, _ = trained
    resumed = tmp_path / "resumed"
    shutil.copytree(out, resumed)
    handler = _Messages()
    logging.getLogger("detectron2").addHandler(handler)
    try:
        args = train_net.parser().parse_args(
            ["--config-file", DB_CONFIG, "--resume"] + TINY_OPTS
            + ["SOLVER.MAX_ITER", "5", "OUTPUT_DIR", str(resumed)])
        train_net.main(args)
    finally:
        logging.getLogger("detectron2").removeHandler(handler)
    assert any("Starting training from iteration 3" in m for m in handler.messages)
    assert torch.load(resumed / "model_final.pth", map_location="cpu",
                      weights_only=False)["iteration"] == 4
    # The finished run's model_final.pth, its only checkpoint, was replaced: it is kept.
    (kept,) = (resumed / "previous_runs").glob("*/model_final.pth")
    assert torch.load(kept, map_location="cpu", weights_only=False)["iteration"] == 2
    assert kept.read_bytes() == (out / "model_final.pth").read_bytes()


def test_unknown_config_file_is_named(train_net, tiny_datasets):
    args = train_net.parser().parse_args(["--config-file", "configs/no_such_config.yaml"])
    with pytest.raises(FileNotFoundError, match="no_such_config.yaml"):
        train_net.setup(args)


def test_nonexistent_config_key_names_the_file_or_the_opt(train_net, tiny_datasets, tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text('_BASE_: "%s"\nMODEL:\n  DROPBLOCK:\n    KEEP_PROBABILITY: 0.9\n' % DB_CONFIG)
    with pytest.raises(KeyError, match=r"bad\.yaml.*KEEP_PROBABILITY"):
        train_net.setup(train_net.parser().parse_args(["--config-file", str(bad)]))
    args = train_net.parser().parse_args(
        ["--config-file", DB_CONFIG, "MODEL.DROPBLOCK.BLOCKSIZE", "3"])
    with pytest.raises(KeyError, match="MODEL.DROPBLOCK.BLOCKSIZE"):
        train_net.setup(args)


def test_unregistered_dataset_is_named(train_net, tiny_datasets):
    args = train_net.parser().parse_args(
        ["--config-file", DB_CONFIG, "DATASETS.TEST", "('synthetic_det_vall',)"])
    with pytest.raises(KeyError, match="synthetic_det_vall"):
        train_net.setup(args)


def test_missing_dataset_folder_is_listed_before_training(train_net, tiny_datasets):
    args = train_net.parser().parse_args(
        ["--config-file", DB_CONFIG, "DATASETS.TRAIN", "('coco_2017_train',)"])
    with pytest.raises(FileNotFoundError, match=r"coco_2017_train \(DATASETS\.TRAIN\): .*coco[/\\]train2017"):
        train_net.setup(args)


def test_eval_only_with_missing_or_mismatched_checkpoint_is_an_error(train_net, trained,
                                                                     tmp_path):
    from dropblock_det.engine.checkpoint import CheckpointMismatchError

    out, _ = trained
    missing = train_net.parser().parse_args(
        ["--config-file", DB_CONFIG, "--eval-only"] + TINY_OPTS
        + ["MODEL.WEIGHTS", str(tmp_path / "nope.pth"), "OUTPUT_DIR", str(tmp_path)])
    with pytest.raises(FileNotFoundError, match="nope.pth"):
        train_net.main(missing)
    # Same checkpoint, a model with fewer anchors per location (the class count must stay the
    # dataset's, checked first): the classifier's shape differs.
    mismatched = train_net.parser().parse_args(
        ["--config-file", DB_CONFIG, "--eval-only"] + TINY_OPTS
        + ["MODEL.ANCHOR_GENERATOR.ASPECT_RATIOS", "[[0.5, 1.0]]", "MODEL.WEIGHTS", str(out / "model_final.pth"),
           "OUTPUT_DIR", str(tmp_path)])
    with pytest.raises(CheckpointMismatchError, match="cls_score"):
        train_net.main(mismatched)


@pytest.mark.parametrize("opts, error, match", [
    (["SOLVER.LR_SCHEDULER_NAME", "WarmupCosine"], ValueError, r"SOLVER\.LR_SCHEDULER_NAME='WarmupCosine'"),
    # The stock backbone ignores MODEL.DROPBLOCK: found on the meta device, not after data loading.
    (["MODEL.BACKBONE.NAME", "build_retinanet_resnet_fpn_backbone"], ValueError, r"MODEL\.DROPBLOCK\.RESNET\.ENABLED=True.*no DropBlock"),
    # detectron2: a ZeroDivisionError in the checkpoint hook after the first step, an assertion
    # in the data loader, an error resizing the first image, messages naming no key.
    (["SOLVER.CHECKPOINT_PERIOD", "0"], ValueError, r"SOLVER\.CHECKPOINT_PERIOD=0"),
    (["SOLVER.IMS_PER_BATCH", "0"], ValueError, r"SOLVER\.IMS_PER_BATCH=0"),
    (["INPUT.MAX_SIZE_TRAIN", "0"], ValueError, r"INPUT\.MAX_SIZE_TRAIN=0"),
    (["INPUT.MIN_SIZE_TRAIN_SAMPLING", "rand"], ValueError, r"INPUT\.MIN_SIZE_TRAIN_SAMPLING='rand'"),
    (["INPUT.RANDOM_FLIP", "sideways"], ValueError, r"INPUT\.RANDOM_FLIP='sideways'"),
    # Bare AssertionErrors when the training loader was built, after config.yaml was written,
    # or at the first image (a relative crop above 1, an absolute range smallest last).
    (["INPUT.CROP.ENABLED", "True", "INPUT.CROP.TYPE", "bogus"], ValueError,
     r"^INPUT\.CROP\.TYPE='bogus': expected one of \['relative_range', "),
    (["INPUT.CROP.ENABLED", "True", "INPUT.CROP.TYPE", "relative", "INPUT.CROP.SIZE", "[1.5, 0.5]"], ValueError,
     r"^INPUT\.CROP\.SIZE=\[1\.5, 0\.5\] with INPUT\.CROP\.TYPE='relative': expected two fractions"),
    (["INPUT.CROP.ENABLED", "True", "INPUT.CROP.TYPE", "absolute_range", "INPUT.CROP.SIZE", "[64, 32]"], ValueError,
     r"^INPUT\.CROP\.SIZE=\[64, 32\] with INPUT\.CROP\.TYPE='absolute_range': expected two sizes in pixels >= 1, "
     r"smallest first"),
    (["DATASETS.TRAIN", "()"], ValueError, r"^DATASETS\.TRAIN=\(\): no dataset to train on"),
    # Raised when the trainer built its loader: one-channel images, a three-value fill.
    (["INPUT.FORMAT", "L", "INPUT.CUTOUT.ENABLED", "True", "INPUT.CUTOUT.SIZE", "16"], ValueError,
     r"^INPUT\.CUTOUT fills with MODEL\.PIXEL_MEAN=\[.*\], which has 3 values, but INPUT\.FORMAT='L' images have 1"),
    # It was blamed on the DropBlock ramp ("SCHEDULE.START_ITER=0: the ramp ends at SOLVER.MAX_ITER=-1").
    (["SOLVER.MAX_ITER", "-1"], ValueError, r"^SOLVER\.MAX_ITER=-1: expected a number of iterations >= 1$"),
    (["SOLVER.MAX_ITER", "0"], ValueError, r"^SOLVER\.MAX_ITER=0: expected a number of iterations >= 1$"),
    # Failed after the whole training (the evaluation), naming a val image or no key at all,
    # at the first step naming a train image, or after config.yaml was written.
    (["MODEL.RETINANET.NUM_CLASSES", "80"], ValueError, r"MODEL\.RETINANET\.NUM_CLASSES=80, .*3 classes"),
    (["INPUT.MAX_SIZE_TEST", "0"], ValueError, r"INPUT\.MAX_SIZE_TEST=0"),
    (["INPUT.FORMAT", "FOO"], ValueError, r"INPUT\.FORMAT='FOO'"),
    (["DATALOADER.SAMPLER_TRAIN", "Foo"], ValueError, r"DATALOADER\.SAMPLER_TRAIN='Foo'"),
    (["OUTPUT_DIR", ""], ValueError, r"^OUTPUT_DIR='': expected a folder"),  # was a bare FileNotFoundError: ''
])
def test_errors_that_used_to_come_after_data_loading_come_from_setup(train_net, tiny_datasets, tmp_path,
                                                                    opts, error, match):
    out = tmp_path / "run"
    args = train_net.parser().parse_args(["--config-file", DB_CONFIG, "OUTPUT_DIR", str(out)] + opts)
    with pytest.raises(error, match=match):
        train_net.setup(args)
    assert not out.exists()  # default_setup (config.yaml, log.txt) was not reached


def test_weights_at_a_url_that_cannot_be_fetched_are_refused_from_setup(train_net, tiny_datasets, served, tmp_path):
    # The trainer fetched them when it loaded them, after building the data loader and
    # writing config.yaml; a URL that is there is fetched now, into the cache its load reads.
    url, _ = served
    out = tmp_path / "run"
    args = train_net.parser().parse_args(["--config-file", DB_CONFIG, "OUTPUT_DIR", str(out), "MODEL.WEIGHTS",
                                          f"{url}/gone.pth"])
    with pytest.raises(RuntimeError, match=r"^MODEL\.WEIGHTS='http://127\.0\.0\.1:\d+/gone\.pth' cannot be fetched"):
        train_net.setup(args)
    assert not out.exists()


def test_training_in_several_processes_on_the_cpu_is_refused_from_setup(train_net, tiny_datasets, tmp_path,
                                                                         monkeypatch):
    # `--num-gpus 2` with MODEL.DEVICE cpu (what setup sees in each launched process): detectron2
    # main failed in DistributedDataParallel, after data loading, with config.yaml and log.txt written.
    import detectron2.utils.comm as comm

    monkeypatch.setattr(comm, "get_world_size", lambda: 2)
    out = tmp_path / "run"
    args = train_net.parser().parse_args(["--num-gpus", "2", "--config-file", DB_CONFIG] + TINY_OPTS
                                         + ["OUTPUT_DIR", str(out)])
    with pytest.raises(ValueError, match=r"^MODEL\.DEVICE='cpu' with 2 training processes"):
        train_net.setup(args)
    assert not out.exists()


def test_a_fresh_run_into_a_used_output_dir_moves_the_earlier_run_aside(trained, train_net, tmp_path):
    import shutil

    out, _ = trained
    used = tmp_path / "used"
    shutil.copytree(out, used)
    weights = (used / "model_final.pth").read_bytes()
    train_net.setup(train_net.parser().parse_args(["--config-file", DB_CONFIG, "OUTPUT_DIR", str(used)]))
    (archived,) = (used / "previous_runs").iterdir()
    assert (archived / "model_final.pth").read_bytes() == weights
    assert not (used / "model_final.pth").exists() and (used / "config.yaml").is_file()  # the new run's
    # --resume continues the run in place (to a larger SOLVER.MAX_ITER): nothing moves; the
    # model_final.pth it resumes from, which the continued run replaces, is kept beside.
    kept = tmp_path / "kept"
    shutil.copytree(out, kept)
    before = sorted(p.name for p in kept.iterdir())
    train_net.setup(train_net.parser().parse_args(
        ["--config-file", DB_CONFIG, "--resume"] + TINY_OPTS + ["SOLVER.MAX_ITER", "5", "OUTPUT_DIR", str(kept)]))
    (archived,) = (kept / "previous_runs").iterdir()
    # With it the config.yaml that the larger SOLVER.MAX_ITER rewrote (report_resumed_config).
    assert sorted(p.name for p in archived.iterdir()) == ["config.yaml", "model_final.pth"]
    assert (archived / "config.yaml").read_text() == (out / "config.yaml").read_text()
    assert (archived / "model_final.pth").read_bytes() == (kept / "model_final.pth").read_bytes() == weights
    assert sorted(p.name for p in kept.iterdir() if p.name != "previous_runs") == before


def test_eval_only_into_a_run_folder_moves_aside_only_what_it_would_overwrite(trained, train_net, tmp_path):
    # default_setup rewrites config.yaml and the evaluators rewrite inference/: the run's own
    # record of how it was trained, and its predictions, go to previous_runs/ first.
    import shutil

    out, _ = trained
    run = tmp_path / "run"
    shutil.copytree(out, run)
    trained_config = (run / "config.yaml").read_text()
    predictions = {p.relative_to(run): p.read_bytes() for p in (run / "inference").rglob("*") if p.is_file()}
    assert predictions
    evaluated = train_net.main(train_net.parser().parse_args(
        ["--config-file", DB_CONFIG, "--eval-only", "--resume"] + TINY_OPTS
        + ["MODEL.RETINANET.SCORE_THRESH_TEST", "0.3", "OUTPUT_DIR", str(run)]))
    assert set(evaluated) == {"bbox"}
    (archived,) = (run / "previous_runs").iterdir()
    assert sorted(p.name for p in archived.iterdir()) == ["config.yaml", "inference"]
    assert (archived / "config.yaml").read_text() == trained_config
    assert {p: (archived / p).read_bytes() for p in predictions} == predictions
    assert "SCORE_THRESH_TEST: 0.3" in (run / "config.yaml").read_text()  # the evaluation's
    assert (run / "model_final.pth").is_file() and (run / "metrics.json").is_file()  # untouched


def test_eval_only_without_weights_is_refused_before_anything_is_written(train_net, tiny_datasets, tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.yaml").write_text("the trained run's config")
    for flags, match in ((["--eval-only"], r"--eval-only needs weights to evaluate: MODEL\.WEIGHTS is empty; give "
                                           r"MODEL\.WEIGHTS <checkpoint>, or --resume with the OUTPUT_DIR of a run$"),
                         (["--eval-only", "--resume"], r"MODEL\.WEIGHTS is empty and OUTPUT_DIR=.* has no checkpoint; ")):
        with pytest.raises(ValueError, match=match):
            train_net.setup(train_net.parser().parse_args(
                ["--config-file", DB_CONFIG] + flags + ["OUTPUT_DIR", str(run)]))
        assert sorted(p.name for p in run.iterdir()) == ["config.yaml"]
        assert (run / "config.yaml").read_text() == "the trained run's config"
    # Nor is an OUTPUT_DIR that did not exist created.
    with pytest.raises(ValueError, match="--eval-only needs weights to evaluate"):
        train_net.setup(train_net.parser().parse_args(
            ["--config-file", DB_CONFIG, "--eval-only", "OUTPUT_DIR", str(tmp_path / "new")]))
    assert not (tmp_path / "new").exists()


def test_eval_only_with_no_test_set_is_refused_before_the_runs_files_are_moved(trained, train_net, tmp_path):
    # DefaultTrainer.test evaluated nothing, said nothing and returned {}, after moving the
    # run's config.yaml and inference/ aside.
    out, _ = trained
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.yaml").write_text("the trained run's config")
    with pytest.raises(ValueError, match=r"^--eval-only with DATASETS\.TEST=\(\): no dataset to evaluate on"):
        train_net.setup(train_net.parser().parse_args(
            ["--config-file", DB_CONFIG, "--eval-only"] + TINY_OPTS + ["OUTPUT_DIR", str(run), "DATASETS.TEST", "()",
             "MODEL.WEIGHTS", str(out / "model_final.pth")]))
    assert sorted(p.name for p in run.iterdir()) == ["config.yaml"]


def test_eval_only_checks_its_weights_before_the_runs_files_are_moved(trained, train_net, tmp_path):
    # Weights that are missing or of another model failed in the strict load, after the run's
    # config.yaml and inference/ had been moved to previous_runs/ and config.yaml rewritten.
    import shutil

    from dropblock_det.engine.checkpoint import CheckpointMismatchError

    out, _ = trained
    run = tmp_path / "run"
    shutil.copytree(out, run)
    config = (run / "config.yaml").read_text()
    before = {p.name: p.stat().st_mtime_ns for p in run.iterdir() if p.name != "last_checkpoint"}

    def evaluate(flags, *opts):
        return train_net.setup(train_net.parser().parse_args(
            ["--config-file", DB_CONFIG, "--eval-only", *flags] + TINY_OPTS + list(opts) + ["OUTPUT_DIR", str(run)]))

    with pytest.raises(CheckpointMismatchError, match=r"^MODEL\.WEIGHTS: checkpoint .*model_final\.pth.*cls_score"):
        evaluate([], "MODEL.WEIGHTS", str(out / "model_final.pth"), "MODEL.ANCHOR_GENERATOR.ASPECT_RATIOS", "[[0.5, 1.0]]")
    with pytest.raises(FileNotFoundError, match=r"MODEL\.WEIGHTS=.*no\.pth' does not exist"):
        evaluate([], "MODEL.WEIGHTS", str(tmp_path / "no.pth"))
    # With --resume it is the run's last checkpoint that must fit.
    with pytest.raises(CheckpointMismatchError, match=r"^--resume: checkpoint .*model_final\.pth.*cls_score"):
        evaluate(["--resume"], "MODEL.ANCHOR_GENERATOR.ASPECT_RATIOS", "[[0.5, 1.0]]")
    (run / "last_checkpoint").write_text("model_gone.pth")
    with pytest.raises(FileNotFoundError, match=r"last_checkpoint names 'model_gone\.pth', which is not a file there"):
        evaluate(["--resume"])
    assert {p.name: p.stat().st_mtime_ns for p in run.iterdir() if p.name != "last_checkpoint"} == before
    assert (run / "config.yaml").read_text() == config and not (run / "previous_runs").exists()


def test_a_fresh_run_from_the_earlier_runs_config_or_weights_still_finds_them(trained, train_net, tmp_path):
    import shutil

    out, _ = trained
    used = tmp_path / "used"
    shutil.copytree(out, used)
    # detectron2's habit: rerun from the dumped config; or fine-tune from the run's weights.
    train_net.setup(train_net.parser().parse_args(
        ["--config-file", str(used / "config.yaml"), "OUTPUT_DIR", str(used),
         "MODEL.WEIGHTS", str(used / "model_final.pth")]))
    (archived,) = (used / "previous_runs").iterdir()
    assert (used / "model_final.pth").read_bytes() == (archived / "model_final.pth").read_bytes()
    assert (archived / "config.yaml").is_file() and (used / "config.yaml").is_file()
    assert not (used / "metrics.json").exists() and (archived / "metrics.json").is_file()


def test_a_truncated_model_weights_is_refused_before_the_earlier_run_is_moved(trained, train_net, tmp_path):
    # detectron2 reads MODEL.WEIGHTS after building the data loader, moving the earlier run
    # aside and writing config.yaml: a partial copy failed there with torch's bare
    # "OSError: [Errno 22] Invalid argument".
    run, partial, before = run_copy_and_truncated_weights(trained[0], tmp_path)
    with pytest.raises(RuntimeError, match=r"^MODEL\.WEIGHTS='.*partial\.pth': checkpoint .* cannot be read, "
                                           r"it is truncated or corrupt"):
        train_net.main(train_net.parser().parse_args(
            ["--config-file", DB_CONFIG] + TINY_OPTS + ["MODEL.WEIGHTS", str(partial), "OUTPUT_DIR", str(run)]))
    assert file_mtimes(run) == before


def test_a_checkpoint_write_stopped_midway_leaves_the_checkpoint_resumed_from_whole(
        trained, train_net, tmp_path, monkeypatch):
    # A finished run (its only checkpoint model_final.pth, as the synthetic configs save)
    # extended with --resume rewrites model_final.pth; a full disk or Ctrl-C in that write
    # left it truncated, with last_checkpoint still naming it: the whole training lost.
    import shutil

    out, _ = trained
    run = tmp_path / "run"
    shutil.copytree(out, run)
    for extra in run.glob("model_0*.pth"):
        extra.unlink()
    weights = (run / "model_final.pth").read_bytes()

    def disk_full(obj, f, *args, **kwargs):
        f.write(weights[:1000])
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(torch, "save", disk_full)
    with pytest.raises(OSError, match="No space left"):
        train_net.main(train_net.parser().parse_args(
            ["--config-file", DB_CONFIG, "--resume"] + TINY_OPTS + ["SOLVER.MAX_ITER", "4", "OUTPUT_DIR", str(run)]))
    assert (run / "model_final.pth").read_bytes() == weights
    assert (run / "last_checkpoint").read_text() == "model_final.pth"
    assert not list(run.glob("*.tmp"))


def test_resume_checks_its_checkpoint_before_anything_is_loaded_or_written(trained, train_net, tmp_path):
    # detectron2 reads it after building the data loader and loads it non-strictly: a changed
    # model failed in the first step with a bare torch shape error, after config.yaml was
    # overwritten; a MAX_ITER below the checkpoint's silently trained nothing.
    import shutil

    from dropblock_det.engine.checkpoint import CheckpointMismatchError

    out, _ = trained
    run = tmp_path / "run"
    shutil.copytree(out, run)
    config = (run / "config.yaml").read_text()

    def resume(*opts):
        return train_net.setup(train_net.parser().parse_args(
            ["--config-file", DB_CONFIG, "--resume"] + TINY_OPTS + list(opts) + ["OUTPUT_DIR", str(run)]))

    with pytest.raises(CheckpointMismatchError, match=r"--resume: checkpoint .*model_final\.pth.*head\.cls_score\.weight"):
        resume("SOLVER.MAX_ITER", "6", "MODEL.ANCHOR_GENERATOR.ASPECT_RATIOS", "[[0.5, 1.0]]")
    with pytest.raises(ValueError, match=r"has trained 3 iterations, more than SOLVER\.MAX_ITER=2 asks for"):
        resume("SOLVER.MAX_ITER", "2")
    # The finished run's own MAX_ITER: its model_final (iteration 2) has trained all 3, and a
    # resume would only evaluate it again over the run's config.yaml and predictions.
    with pytest.raises(ValueError, match=r"has trained 3 iterations, all SOLVER\.MAX_ITER=3 asks for: "
                                         r"nothing would be trained.*--eval-only --resume"):
        resume()
    (run / "model_final.pth").write_bytes((out / "model_final.pth").read_bytes()[:4096])  # a partial copy
    with pytest.raises(RuntimeError, match=r"checkpoint .*model_final\.pth' cannot be read, it is truncated"):
        resume("SOLVER.MAX_ITER", "6")
    assert (run / "config.yaml").read_text() == config and not (run / "previous_runs").exists()


def test_resume_builds_the_meta_model_once_for_the_config_and_checkpoint_checks(trained, train_net, tmp_path,
                                                                              monkeypatch):
    import shutil

    from dropblock_det.engine import config_checks

    out, _ = trained
    run = tmp_path / "run"
    shutil.copytree(out, run)
    built = []
    real = config_checks.meta_model
    monkeypatch.setattr(config_checks, "meta_model", lambda cfg: built.append(cfg) or real(cfg))
    train_net.setup(train_net.parser().parse_args(
        ["--config-file", DB_CONFIG, "--resume"] + TINY_OPTS + ["SOLVER.MAX_ITER", "6", "OUTPUT_DIR", str(run)]))
    assert len(built) == 1


def test_resume_with_no_checkpoint_moves_the_earlier_runs_files_aside(trained, train_net, tmp_path):
    # A run stopped before its first checkpoint, resumed: detectron2 starts at iteration 0 and
    # appended to the earlier run's metrics.json, two runs' records in one file.
    import shutil

    out, _ = trained
    run = tmp_path / "run"
    shutil.copytree(out, run)
    for checkpoint in list(run.glob("*.pth")) + [run / "last_checkpoint"]:
        checkpoint.unlink()
    metrics = (run / "metrics.json").read_text()
    train_net.setup(train_net.parser().parse_args(
        ["--config-file", DB_CONFIG, "--resume"] + TINY_OPTS + ["OUTPUT_DIR", str(run)]))
    (archived,) = (run / "previous_runs").iterdir()
    assert (archived / "metrics.json").read_text() == metrics and not (run / "metrics.json").exists()


def test_a_second_run_into_a_folder_another_run_holds_is_refused_before_moving_anything(
        trained, train_net, tmp_path):
    # Two runs in one OUTPUT_DIR: the second moved the first's files aside while the first
    # kept writing, and the first then overwrote the second's model_final.pth.
    import shutil

    out, _ = trained
    run = tmp_path / "run"
    shutil.copytree(out, run)
    before = sorted(p.name for p in run.iterdir())
    args = train_net.parser().parse_args(["--config-file", DB_CONFIG] + TINY_OPTS + ["OUTPUT_DIR", str(run)])
    with another_process_holding(run):
        with pytest.raises(RuntimeError, match=r"OUTPUT_DIR=.*run' is in use by another run"):
            train_net.setup(args)
        assert sorted(p.name for p in run.iterdir()) == before  # nothing moved or written
    train_net.setup(args)  # the lock ends with its process
    assert (run / "previous_runs").is_dir()


def test_an_rcnn_with_test_aug_is_evaluated_with_and_without_tta_after_training_and_with_eval_only(
        train_net, tiny_datasets, tmp_path):
    # As detectron2's own train_net: an EvalHook(0) after the plain evaluation, and --eval-only
    # adds the TTA results to the plain ones; the key was refused (before, silently ignored).
    from tools_helpers import tiny_rcnn_tta_config

    config = tmp_path / "faster_rcnn_tta.yaml"
    config.write_text(tiny_rcnn_tta_config())
    run = tmp_path / "run"
    torch.manual_seed(0)
    trained = train_net.main(train_net.parser().parse_args(["--config-file", str(config), "OUTPUT_DIR", str(run)]))
    assert list(trained) == ["bbox", "bbox_TTA"]
    assert _records(run)[-1]["bbox_TTA/AP"] == pytest.approx(trained["bbox_TTA"]["AP"], nan_ok=True)
    predictions = {kind: (run / kind / "synthetic_det_val" / "coco_instances_results.json").read_text()
                   for kind in ("inference", "inference_TTA")}
    assert json.loads(predictions["inference_TTA"]) and predictions["inference_TTA"] != predictions["inference"]

    evaluated = train_net.main(train_net.parser().parse_args(
        ["--config-file", str(config), "--eval-only", "--resume", "OUTPUT_DIR", str(run)]))
    assert list(evaluated) == ["bbox", "bbox_TTA"]
    for key in evaluated:
        assert evaluated[key] == pytest.approx(trained[key], nan_ok=True)
    (archived,) = (run / "previous_runs").iterdir()  # the training's predictions, both kinds
    assert sorted(p.name for p in archived.iterdir()) == ["config.yaml", "inference", "inference_TTA"]
    for kind, text in predictions.items():
        assert (archived / kind / "synthetic_det_val" / "coco_instances_results.json").read_text() == text
        assert (run / kind / "synthetic_det_val" / "coco_instances_results.json").read_text() == text


def test_resume_does_not_read_model_weights_which_only_a_fresh_run_loads(trained, train_net, tmp_path):
    # detectron2 loads the run's last checkpoint and ignores MODEL.WEIGHTS when resuming: the
    # starting weights since moved or half-copied must not stop the run from continuing.
    run, partial, _ = run_copy_and_truncated_weights(trained[0], tmp_path)
    for weights in (str(partial), str(tmp_path / "moved.pth")):
        train_net.setup(train_net.parser().parse_args(
            ["--config-file", DB_CONFIG, "--resume"] + TINY_OPTS
            + ["SOLVER.MAX_ITER", "6", "MODEL.WEIGHTS", weights, "OUTPUT_DIR", str(run)]))


def test_eval_only_with_resume_evaluates_the_runs_checkpoint_over_model_weights(trained, train_net, tmp_path):
    # As detectron2's train_net (resume_or_load): with --resume the run's last checkpoint wins
    # over MODEL.WEIGHTS; without it, or with no checkpoint there, MODEL.WEIGHTS is evaluated.
    run, partial, _ = run_copy_and_truncated_weights(trained[0], tmp_path)
    empty = tmp_path / "empty"
    empty.mkdir()

    def weights(folder, *flags):
        args = train_net.parser().parse_args(["--config-file", DB_CONFIG, "--eval-only", *flags] + TINY_OPTS
                                             + ["MODEL.WEIGHTS", str(partial), "OUTPUT_DIR", str(folder)])
        return train_net.eval_weights(train_net.setup(args), args)

    assert weights(run, "--resume") == str(run / "model_final.pth")  # the partial file is not even read
    with pytest.raises(RuntimeError, match=r"partial\.pth.*truncated"):
        weights(run)
    with pytest.raises(RuntimeError, match=r"partial\.pth.*truncated"):
        weights(empty, "--resume")


def test_eval_only_exits_1_when_the_results_miss_test_expected_results(trained, train_net, tmp_path):
    # detectron2's train_net checks TEST.EXPECTED_RESULTS after --eval-only (as after training):
    # a CI job comparing a checkpoint's AP against its expected value must fail when it differs.
    out, results = trained
    argv = ["--config-file", DB_CONFIG, "--eval-only"] + TINY_OPTS + ["MODEL.WEIGHTS", str(out / "model_final.pth"),
                                                                      "OUTPUT_DIR", str(tmp_path / "eval")]
    ap = results["bbox"]["AP"]
    with pytest.raises(SystemExit) as exit_info:
        train_net.main(train_net.parser().parse_args(
            argv + ["TEST.EXPECTED_RESULTS", f"[['bbox', 'AP', {ap + 50.0}, 1.0]]"]))
    assert exit_info.value.code == 1


def test_the_command_line_refuses_a_flag_after_the_opts_before_anything_is_written(tiny_datasets, tmp_path,
                                                                                   monkeypatch, capsys):
    # `train_net.py --config-file C OUTPUT_DIR d --resume`: argparse alone took --resume for
    # a config opt and the run failed in yacs on an odd number of opts, or trained anew.
    import runpy
    import sys

    from conftest import REPO

    out = tmp_path / "run"
    monkeypatch.setattr(sys, "path", list(sys.path))
    monkeypatch.setattr(sys, "argv", ["train_net.py", "--config-file", DB_CONFIG, "OUTPUT_DIR", str(out), "--resume"])
    with pytest.raises(SystemExit) as exit_info:
        runpy.run_path(str(REPO / "tools" / "train_net.py"), run_name="__main__")
    assert exit_info.value.code == 2
    assert f"--resume comes after the config opts 'OUTPUT_DIR {out}'" in capsys.readouterr().err
    assert not out.exists()


def test_eval_only_evaluates_model_weights_and_with_resume_the_runs_last_checkpoint(trained, train_net, tmp_path,
                                                                                  monkeypatch):
    # What main loads and evaluates, not only what setup checks: with --resume the run's
    # last checkpoint wins over MODEL.WEIGHTS, as in detectron2's train_net.
    import shutil

    out, _ = trained
    run = tmp_path / "run"
    shutil.copytree(out, run)
    bias = "head.cls_score.bias"
    other = tmp_path / "other.pth"  # another checkpoint of the same model: its classifier bias moved
    checkpoint = torch.load(out / "model_final.pth", map_location="cpu", weights_only=False)
    checkpoint["model"][bias] = checkpoint["model"][bias] + 1.0
    torch.save(checkpoint, other)
    monkeypatch.setattr(train_net.Trainer, "test", classmethod(
        lambda cls, cfg, model, evaluators=None: {k: v.clone() for k, v in model.state_dict().items()}))

    def evaluated_bias(*flags):
        return train_net.main(train_net.parser().parse_args(
            ["--config-file", DB_CONFIG, "--eval-only", *flags] + TINY_OPTS
            + ["MODEL.WEIGHTS", str(other), "OUTPUT_DIR", str(run)]))[bias]

    assert torch.equal(evaluated_bias(), checkpoint["model"][bias])
    run_bias = torch.load(run / "model_final.pth", map_location="cpu", weights_only=False)["model"][bias]
    assert torch.equal(evaluated_bias("--resume"), run_bias)


def test_eval_only_resume_without_a_checkpoint_names_model_weights_it_evaluates_instead(trained, train_net, tmp_path):
    # Nothing to resume: the weights checked (and refused) are MODEL.WEIGHTS, named as such.
    from dropblock_det.engine.checkpoint import CheckpointMismatchError

    out, _ = trained
    with pytest.raises(CheckpointMismatchError, match=r"^MODEL\.WEIGHTS: checkpoint .*model_final\.pth.*cls_score"):
        train_net.setup(train_net.parser().parse_args(
            ["--config-file", DB_CONFIG, "--eval-only", "--resume"] + TINY_OPTS
            + ["MODEL.WEIGHTS", str(out / "model_final.pth"), "MODEL.ANCHOR_GENERATOR.ASPECT_RATIOS", "[[0.5, 1.0]]",
               "OUTPUT_DIR", str(tmp_path / "empty")]))
    assert not (tmp_path / "empty").exists()


def test_setup_returns_the_config_frozen(train_net, tiny_datasets, tmp_path):
    # As detectron2's train_net: nothing after setup (the trainer, a hook) changes the config
    # that config.yaml recorded.
    cfg = train_net.setup(train_net.parser().parse_args(["--config-file", DB_CONFIG] + TINY_OPTS
                                                        + ["OUTPUT_DIR", str(tmp_path / "run")]))
    assert cfg.is_frozen()


def test_the_command_line_runs_main_through_detectrons_launch(tiny_datasets, tmp_path, monkeypatch):
    # --num-gpus, --num-machines, --machine-rank and --dist-url reach detectron2's launch,
    # which starts one process per GPU (main called directly trained in one, ignoring them).
    import runpy
    import sys

    import detectron2.engine

    from conftest import REPO
    from dropblock_det.engine import config_checks, trainer

    launched = []
    monkeypatch.setattr(detectron2.engine, "launch", lambda main, num_gpus, **kwargs: launched.append(
        (main, num_gpus, kwargs)))
    monkeypatch.setattr(trainer, "check_launch_processes", lambda num_gpus, num_machines: None)  # no GPUs here
    # (nor for MODEL.DEVICE: the CPU is refused for several processes before the launch)
    monkeypatch.setattr(config_checks, "check_training_processes_device", lambda cfg, device, world=None: None)
    monkeypatch.setattr(sys, "path", list(sys.path))
    out = tmp_path / "run"
    monkeypatch.setattr(sys, "argv", ["train_net.py", "--num-gpus", "2", "--num-machines", "2", "--machine-rank", "1",
                                      "--dist-url", "tcp://127.0.0.1:29512", "--config-file", DB_CONFIG]
                        + TINY_OPTS + ["OUTPUT_DIR", str(out)])
    runpy.run_path(str(REPO / "tools" / "train_net.py"), run_name="__main__")
    ((launched_main, num_gpus, kwargs),) = launched
    import tool_args  # on sys.path once the tool ran

    # Each process runs main through the tools' refusal in one line (tools/tool_args.py).
    assert launched_main.func is tool_args.in_a_launched_process
    (main,) = launched_main.args
    assert main.__name__ == "main" and main.__globals__["__file__"] == str(REPO / "tools" / "train_net.py")
    (args,) = kwargs.pop("args")
    assert (num_gpus, kwargs) == (2, {"num_machines": 2, "machine_rank": 1, "dist_url": "tcp://127.0.0.1:29512"})
    assert args.config_file == DB_CONFIG and args.opts[-2:] == ["OUTPUT_DIR", str(out)]
    assert not out.exists()  # only the launched processes set up and train


def test_a_refusal_in_the_processes_of_num_gpus_2_is_one_line_once_and_exit_status_1(tiny_datasets, tmp_path):
    # Each process detectron2's launch starts runs the checks: a refusal reached the tool as
    # torch's ProcessRaisedException, printed with the process's traceback under the launch's.
    import os
    import subprocess
    import sys

    from conftest import REPO
    from dropblock_det.engine.trainer import check_launch_processes

    try:
        check_launch_processes(2, 1)
    except ValueError as e:  # detectron2 v0.6 without 2 CUDA devices, detectron2 main with 1
        pytest.skip(f"detectron2's launch starts no 2 processes here: {e}")
    out = tmp_path / "run"
    result = subprocess.run(
        # (--eval-only: a training on the CPU in 2 processes is refused before the launch)
        [sys.executable, str(REPO / "tools" / "train_net.py"), "--num-gpus", "2", "--eval-only", "--config-file",
         DB_CONFIG, "MODEL.DROPBLOCK.KEEP_PROB", "1.5", "SOLVER.MAX_ITER", "2", "OUTPUT_DIR", str(out)],
        cwd=str(tmp_path), capture_output=True, text=True, timeout=300,
        env={**os.environ, "DETECTRON2_DATASETS": str(tiny_datasets)})
    assert result.returncode == 1, result.stderr[-3000:]
    assert "Traceback" not in result.stderr, result.stderr[-3000:]
    assert "Terminating process" not in result.stderr, result.stderr[-3000:]  # torch's, for the other process
    refusal = "train_net.py: error: ValueError: MODEL.DROPBLOCK.KEEP_PROB=1.5: expected 0 < keep_prob <= 1\n"
    assert result.stderr.count(refusal) == 1, result.stderr[-3000:]
    assert not out.exists()


def _own_dataset_script(folder, tool: str = "train_net") -> None:
    """The README's "Your own dataset" script as train_mine.py in `folder`, with this
    checkout's tools/ (and `tool` for train_net), beside the COCO-format set it registers:
    mine/images and mine/annotations/{train,val}.json, 4 images of a cat (category 1) and a
    dog (2) each."""
    from PIL import Image, ImageDraw

    from conftest import REPO

    text = (REPO / "README.md").read_text()
    script = text.split("<!-- own-dataset-script -->\n```python\n", 1)[1].split("```", 1)[0]
    assert "/path/to/dropblock-det/tools" in script and "train_net.cli()" in script
    script = script.replace("/path/to/dropblock-det/tools", str(REPO / "tools")).replace("train_net", tool)
    (folder / "train_mine.py").write_text(script)
    (folder / "mine" / "images").mkdir(parents=True)
    (folder / "mine" / "annotations").mkdir()
    images, annotations = [], []
    for i in range(4):
        image = Image.new("RGB", (64, 64), (90, 90, 90))
        for category, box in ((1, [4 + 4 * i, 6, 24, 20]), (2, [34, 30 - 4 * i, 22, 26])):
            x, y, w, h = box
            ImageDraw.Draw(image).rectangle([x, y, x + w, y + h], fill=(230, 40, 40) if category == 1 else (40, 40, 230))
            annotations.append({"id": len(annotations) + 1, "image_id": i + 1, "category_id": category, "bbox": box,
                                "area": w * h, "iscrowd": 0})
        image.save(folder / "mine" / "images" / f"{i}.jpg")
        images.append({"id": i + 1, "file_name": f"{i}.jpg", "width": 64, "height": 64})
    categories = [{"id": 1, "name": "cat"}, {"id": 2, "name": "dog"}]
    for split in ("train", "val"):
        (folder / "mine" / "annotations" / f"{split}.json").write_text(
            json.dumps({"images": images, "annotations": annotations, "categories": categories}))


def _run_own_dataset_script(folder, *argv):
    import subprocess
    import sys

    return subprocess.run([sys.executable, "train_mine.py", *argv], cwd=str(folder), capture_output=True, text=True,
                          timeout=300)


OWN_SETS = ["DATASETS.TRAIN", "('mine_train',)", "DATASETS.TEST", "('mine_val',)"]
OWN_SET_REFUSAL = ("which has 2 classes (the categories of its json_file 'mine/annotations/train.json': "
                   "['cat', 'dog']): set MODEL.RETINANET.NUM_CLASSES to 2")


def test_the_readmes_own_dataset_script_trains_and_evaluates_on_the_set_it_registers(tmp_path):
    # Its class count is checked against the json before the run: 3 for the 2 categories
    # trained fully and failed in the evaluation ("A prediction has class=2, but the dataset
    # only has 2 classes").
    _own_dataset_script(tmp_path)
    refused = _run_own_dataset_script(tmp_path, "--config-file", DB_CONFIG, *OWN_SETS, *TINY_OPTS,
                                      "MODEL.RETINANET.NUM_CLASSES", "3", "OUTPUT_DIR", "refused")
    assert refused.returncode == 1, refused.stderr[-3000:]
    assert "train_net.py: error: ValueError: MODEL.RETINANET.NUM_CLASSES=3, but DATASETS.TRAIN names 'mine_train', " \
           + OWN_SET_REFUSAL in refused.stderr, refused.stderr[-3000:]
    assert not (tmp_path / "refused").exists()
    ran = _run_own_dataset_script(tmp_path, "--config-file", DB_CONFIG, *OWN_SETS, *TINY_OPTS,
                                  "MODEL.RETINANET.NUM_CLASSES", "2", "OUTPUT_DIR", "run")
    assert ran.returncode == 0, ran.stderr[-3000:]
    assert "Evaluation results for mine_val in csv format" in ran.stderr + ran.stdout
    predictions = json.loads((tmp_path / "run" / "inference" / "mine_val" / "coco_instances_results.json").read_text())
    assert predictions and {p["category_id"] for p in predictions} <= {1, 2}  # the json's own ids


def test_the_readmes_own_dataset_script_runs_the_lazyconfig_tool_by_its_cli_too(tmp_path):
    from conftest import REPO

    _own_dataset_script(tmp_path, "lazyconfig_train_net")
    result = _run_own_dataset_script(
        tmp_path, "--config-file", str(REPO / "configs" / "Synthetic" / "retinanet_R18_GN_dropblock_res45_kp0.9_b3.py"),
        "dataloader.train.dataset.names=mine_train", "dataloader.test.dataset.names=mine_val",
        "dataloader.evaluator.dataset_name=mine_val", "train.output_dir=refused")
    assert result.returncode == 1, result.stderr[-3000:]
    assert "lazyconfig_train_net.py: error: ValueError: model.num_classes=3, but dataloader.train.dataset.names names " \
           "'mine_train', which has 2 classes (the categories of its json_file" in result.stderr, result.stderr[-3000:]
    assert not (tmp_path / "refused").exists()


@pytest.mark.parametrize("tool", ["train_net", "lazyconfig_train_net", "sweep", "analyze_robustness",
                                  "export_stock_config"])
def test_every_tool_has_the_cli_the_readmes_own_dataset_script_calls(tool, monkeypatch, capsys):
    import sys

    monkeypatch.setattr(sys, "argv", [f"{tool}.py", "--help"])
    with pytest.raises(SystemExit) as exit_info:
        load_tool(tool).cli()
    assert exit_info.value.code == 0
    assert capsys.readouterr().out.startswith("usage: ")


def test_the_readmes_own_dataset_script_registers_the_set_in_each_process_of_num_gpus_2(tmp_path):
    # Each process detectron2's launch starts imports the script as its main module: the
    # checks there find the set (a refusal of its class count, not "not a registered dataset").
    from dropblock_det.engine.trainer import check_launch_processes

    try:
        check_launch_processes(2, 1)
    except ValueError as e:  # detectron2 v0.6 without 2 CUDA devices, detectron2 main with 1
        pytest.skip(f"detectron2's launch starts no 2 processes here: {e}")
    _own_dataset_script(tmp_path)
    # (--eval-only: a training on the CPU in 2 processes is refused before the launch)
    result = _run_own_dataset_script(tmp_path, "--num-gpus", "2", "--eval-only", "--config-file", DB_CONFIG, *OWN_SETS,
                                     *TINY_OPTS, "MODEL.RETINANET.NUM_CLASSES", "3", "OUTPUT_DIR", "refused")
    assert result.returncode == 1, result.stderr[-3000:]
    assert result.stderr.count(OWN_SET_REFUSAL.replace("train.json", "val.json")) == 1, result.stderr[-3000:]


def test_the_readmes_own_dataset_script_without_its_main_guard_under_num_gpus_2_gets_the_runs_own_outcome(tmp_path):
    # Each process --num-gpus 2 spawns imports the script: without the guard its cli() ran the
    # tool again there, and the launch failed with Python's "bootstrapping phase" error, printed
    # as a refusal by the checks in each process, then the parent's traceback. Now the processes
    # run what they were started for: here the class-count refusal of the test set, once
    # (--eval-only: a training on the CPU in 2 processes is refused before the launch;
    # detectron2 v0.6: the refusal of --num-gpus 2 without CUDA, before the launch).
    _own_dataset_script(tmp_path)
    script = tmp_path / "train_mine.py"
    text = script.read_text()
    assert 'if __name__ == "__main__":\n    train_net.cli()' in text
    script.write_text(text.replace('if __name__ == "__main__":\n    train_net.cli()', "train_net.cli()"))
    ran = _run_own_dataset_script(tmp_path, "--num-gpus", "2", "--eval-only", "--config-file", DB_CONFIG, *OWN_SETS,
                                  *TINY_OPTS, "MODEL.RETINANET.NUM_CLASSES", "3", "MODEL.DEVICE", "cpu",
                                  "OUTPUT_DIR", "run")
    assert ran.returncode == 1, ran.stderr[-3000:]
    assert "bootstrapping phase" not in ran.stderr and "Traceback" not in ran.stderr, ran.stderr[-3000:]
    assert ran.stderr.count("train_net.py: error: ValueError: ") == 1, ran.stderr[-3000:]
    assert (OWN_SET_REFUSAL.replace("train.json", "val.json") in ran.stderr
            or "--num-gpus 2 --num-machines 1: torch sees no CUDA device" in ran.stderr), ran.stderr[-3000:]


# --- stop 54 ---
def test_the_warnings_a_run_shows_are_written_into_its_log_txt_too(tiny_datasets, train_net, tmp_path):
    # A ramp's END_ITER after MAX_ITER warned on the console only: log.txt, read after the
    # run (or a cluster job's log of stdout), did not say it. The checks warn before log.txt
    # exists (kept until setup_run makes it); a warning shown during the run is logged at once.
    import sys
    import warnings

    tool_args = sys.modules["tool_args"]
    out = tmp_path / "run"
    args = train_net.parser().parse_args(["--config-file", DB_CONFIG] + TINY_OPTS + [
        "SOLVER.MAX_ITER", "2", "MODEL.DROPBLOCK.SCHEDULE.END_ITER", "50", "OUTPUT_DIR", str(out)])
    with warnings.catch_warnings(record=True) as shown:
        warnings.simplefilter("default")  # as on the command line: each shown once
        tool_args.run_tool("train_net.py", lambda: train_net.main(args))
        warnings.warn("a warning shown after the run's setup")
    assert [w for w in shown if "SCHEDULE.END_ITER=50 is after" in str(w.message)]  # still shown
    log = (out / "log.txt").read_text()
    assert re.search(r"dropblock_det\.warnings WARNING: .*config\.py:\d+: UserWarning: "
                     r"MODEL\.DROPBLOCK\.SCHEDULE\.END_ITER=50 is after SOLVER\.MAX_ITER=2", log), log[-3000:]
    assert log.index("SCHEDULE.END_ITER=50") > log.index("Full config saved")  # written once log.txt was there
    assert "a warning shown after the run's setup" in log
    assert log.count("SCHEDULE.END_ITER=50 is after") == 1


# --- stop 58 ---
def test_training_in_several_processes_on_the_cpu_is_refused_before_the_launch(train_net, tmp_path, monkeypatch,
                                                                                capsys):
    # MODEL.DEVICE cpu with --num-gpus 2 was refused by each launched process, ~15 s after
    # the launch (each imported torch and detectron2 first); now once, before it.
    from tools_helpers import cli_launches

    argv = ["--config-file", DB_CONFIG, "OUTPUT_DIR", str(tmp_path / "run")]
    assert cli_launches(train_net, ["--num-gpus", "2", *argv], monkeypatch) == ([], 1)
    assert re.search(r"train_net\.py: error: ValueError: MODEL\.DEVICE='cpu' with 2 training processes \(--num-gpus "
                     r"x --num-machines\)", capsys.readouterr().err)
    assert cli_launches(train_net, ["--num-machines", "2", *argv], monkeypatch) == ([], 1)
    assert "MODEL.DEVICE='cpu' with 2 training processes" in capsys.readouterr().err
    # An evaluation puts no model in DistributedDataParallel; one process trains on the CPU.
    assert cli_launches(train_net, ["--num-gpus", "2", "--eval-only", *argv], monkeypatch) == ([2], None)
    assert cli_launches(train_net, argv, monkeypatch) == ([1], None)
    assert not (tmp_path / "run").exists()
