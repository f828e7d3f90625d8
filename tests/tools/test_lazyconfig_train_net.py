"""tools/lazyconfig_train_net.py end to end on a tiny synthetic set: training with the
keep_prob ramp + COCO evaluation, --eval-only on the written checkpoint, --resume, and the
safeguards train_net.py has (nothing written before the checks, earlier runs kept)."""
import contextlib
import json
import math
import re

import pytest
import torch

from conftest import CONFIGS, load_tool
from tools_helpers import another_process_holding, file_mtimes, run_copy_and_truncated_weights, tiny_synthetic_datasets

LAZY_CONFIG = str(CONFIGS / "Synthetic" / "retinanet_R18_GN_dropblock_res45_kp0.9_b3.py")
# As tools_helpers.TINY_OPTS: 64 px images, one head conv, 3 iterations of 2 images, score
# threshold 0 (a barely trained model still detects something).
TINY_LAZY_OPTS = [
    "model.head.conv_dims=[64]", "model.test_score_thresh=0.0",
    "dataloader.train.mapper.augmentations.0.short_edge_length=[64]",
    "dataloader.train.mapper.augmentations.0.max_size=64",
    "dataloader.test.mapper.augmentations.0.short_edge_length=64",
    "dataloader.test.mapper.augmentations.0.max_size=64",
    "dataloader.train.total_batch_size=2", "train.max_iter=3", "train.log_period=1",
]


@pytest.fixture(scope="module")
def tiny_datasets(module_tmp_path_factory):
    with tiny_synthetic_datasets(module_tmp_path_factory.mktemp("datasets")) as root:
        yield root


@pytest.fixture(scope="module")
def tool():
    return load_tool("lazyconfig_train_net")


def _parse(tool, out, flags=(), opts=()):
    return tool.parser().parse_args(["--config-file", LAZY_CONFIG, *flags, *TINY_LAZY_OPTS,
                                     f"train.output_dir={out}", *opts])


@pytest.fixture(scope="module")
def trained(tiny_datasets, tool, module_tmp_path_factory):
    """(output dir, results) of a 3-iteration training with DropBlock + evaluation."""
    out = module_tmp_path_factory.mktemp("lazy_train")
    results = tool.main(_parse(tool, out))
    return out, results


def _records(out):
    return [json.loads(line) for line in (out / "metrics.json").read_text().splitlines() if line]


def test_training_ramps_keep_prob_over_max_iter_and_reports_a_finite_coco_ap(trained):
    out, results = trained
    ap = results["bbox"]["AP"]
    assert isinstance(ap, float) and math.isfinite(ap) and 0.0 <= ap <= 100.0
    assert (out / "model_final.pth").is_file() and (out / "config.yaml").is_file()
    ramp = [(r["iteration"], r["dropblock/keep_prob"]) for r in _records(out) if "dropblock/keep_prob" in r]
    # end_iter None: the ramp ends at train.max_iter (3, an override), towards the lowest
    # target (res5's 0.9; res4's is 0.975).
    assert ramp == [(0, 1.0), (1, pytest.approx(1 - 0.1 / 3)), (2, pytest.approx(1 - 0.2 / 3))]
    saved = (out / "config.yaml").read_text()
    assert "max_iter: 3" in saved and "dropblock_schedule" in saved
    # The model is logged (as detectron2's tool does), with its DropBlocks.
    log = (out / "log.txt").read_text()
    assert "Model:" in log and "dropblock_conv1): DropBlock2d(" in log


def test_eval_only_on_the_written_checkpoint_reproduces_the_final_ap(trained, tool, tmp_path):
    out, results = trained
    evaluated = tool.main(_parse(tool, tmp_path, ["--eval-only"], [f"train.init_checkpoint={out / 'model_final.pth'}"]))
    assert evaluated["bbox"]["AP"] == pytest.approx(results["bbox"]["AP"], abs=1e-6)


def test_eval_only_without_weights_is_refused_before_anything_is_written(tool, tiny_datasets, tmp_path):
    out = tmp_path / "never"
    with pytest.raises(ValueError, match=r"--eval-only needs weights.*train\.init_checkpoint is empty"):
        tool.main(_parse(tool, out, ["--eval-only"]))
    assert not out.exists()


def test_an_output_dir_interpolation_that_does_not_resolve_is_refused_in_one_line(tool, tmp_path):
    # The tool reads train.output_dir before the checks (for --resume): OmegaConf's 3-line
    # InterpolationKeyError came out of it, where the checks refuse such a key in one line.
    for flags in ([], ["--eval-only"], ["--resume"]):
        with pytest.raises(ValueError, match=r"^train\.output_dir=\$\{nope\}: InterpolationKeyError: Interpolation key "
                                             r"'nope' not found \(the run reads it: point it to a key that has a value\)$"):
            tool.main(_parse(tool, tmp_path / "never", flags, ["train.output_dir=${nope}"]))


def test_eval_only_without_an_evaluator_is_refused_before_anything_is_written(trained, tool, tmp_path):
    # do_test ran the inference (or not even that), scored it with nothing and said nothing.
    out, _ = trained
    with pytest.raises(ValueError, match=r"^--eval-only needs an evaluator: dataloader\.evaluator is None"):
        tool.main(_parse(tool, tmp_path / "never", ["--eval-only"], [
            f"train.init_checkpoint={out / 'model_final.pth'}", "dataloader.evaluator=null"]))
    assert not (tmp_path / "never").exists()


def test_eval_only_refuses_a_checkpoint_of_another_model(trained, tool, tmp_path):
    from dropblock_det.engine.checkpoint import CheckpointMismatchError

    out, _ = trained
    with pytest.raises(CheckpointMismatchError, match=r"train\.init_checkpoint: .*head\.cls_subnet\.3\.weight"):
        tool.main(_parse(tool, tmp_path / "never", ["--eval-only"], [
            f"train.init_checkpoint={out / 'model_final.pth'}", "model.head.conv_dims=[64,64]"]))
    assert not (tmp_path / "never").exists()


def test_resume_continues_the_run_and_its_ramp(trained, tool, tmp_path, monkeypatch):
    import shutil

    from dropblock_det.engine import checkpoint

    out, _ = trained
    run = tmp_path / "run"
    shutil.copytree(out, run)
    reads = []
    read_checkpoint = checkpoint.read_checkpoint
    monkeypatch.setattr(checkpoint, "read_checkpoint", lambda path, **kwargs: reads.append(path) or read_checkpoint(path, **kwargs))
    # A resumed run never loads train.init_checkpoint, so it is not read: a partial file there
    # (the starting weights since moved or half-copied) does not stop it, as with train_net.py.
    partial = tmp_path / "partial.pth"
    partial.write_bytes((out / "model_final.pth").read_bytes()[:4096])
    tool.main(_parse(tool, run, ["--resume"], ["train.max_iter=5", f"train.init_checkpoint={partial}"]))
    # Checked once, before the run's files are touched (not again by do_train).
    assert reads == [str(run / "model_final.pth")]
    records = _records(run)
    ramp = {r["iteration"]: r["dropblock/keep_prob"] for r in records if "dropblock/keep_prob" in r}
    # Iterations 3 and 4 are new, on the ramp to max_iter 5 (the earlier ones stay logged).
    assert ramp[3] == pytest.approx(1 - 0.1 * 3 / 5) and ramp[4] == pytest.approx(1 - 0.1 * 4 / 5)
    assert torch.load(run / "model_final.pth", map_location="cpu", weights_only=False)["iteration"] == 4
    # Nothing moved; the finished run's model_final.pth, which the continued run replaced, is
    # kept, with the config.yaml that train.max_iter=5 rewrote.
    (kept,) = (run / "previous_runs").iterdir()
    assert sorted(p.name for p in kept.iterdir()) == ["config.yaml", "model_final.pth"]
    assert "max_iter: 3" in (kept / "config.yaml").read_text()
    assert (kept / "model_final.pth").read_bytes() == (out / "model_final.pth").read_bytes()
    # Each iteration trained once: the resumed run starts after the checkpoint's.
    assert [r["iteration"] for r in records if "total_loss" in r] == [0, 1, 2, 3, 4]
    # Its first iteration trains at the LR of the schedule to max_iter 5, not at the one the
    # checkpoint's optimizer holds (the schedule to 3's, which differs), as the yacs trainer does.
    from detectron2.config import LazyConfig, instantiate

    config = LazyConfig.load(LAZY_CONFIG)
    multiplier = instantiate(config.lr_multiplier)
    lrs = {r["iteration"]: r["lr"] for r in records if "lr" in r}
    assert multiplier(3 / 5) != pytest.approx(multiplier(3 / 3))
    assert lrs[3] == pytest.approx(config.optimizer.lr * multiplier(3 / 5))
    assert lrs[4] == pytest.approx(config.optimizer.lr * multiplier(4 / 5))


def test_eval_only_with_resume_evaluates_the_runs_last_checkpoint(trained, tool, tmp_path):
    import shutil

    out, results = trained
    run = tmp_path / "run"
    shutil.copytree(out, run)
    # train.init_checkpoint is empty: the weights are the run's last checkpoint.
    evaluated = tool.main(_parse(tool, run, ["--eval-only", "--resume"]))
    assert evaluated["bbox"]["AP"] == pytest.approx(results["bbox"]["AP"], abs=1e-6)


def test_resume_checks_its_checkpoint_before_anything_is_written(trained, tool, tmp_path):
    import shutil

    from dropblock_det.engine.checkpoint import CheckpointMismatchError

    out, _ = trained
    run = tmp_path / "run"
    shutil.copytree(out, run)
    before = {p.name: p.stat().st_mtime_ns for p in run.iterdir()}
    with pytest.raises(CheckpointMismatchError, match=r"--resume: checkpoint .*model_final\.pth"):
        tool.main(_parse(tool, run, ["--resume"], ["model.head.conv_dims=[64,64]"]))
    with pytest.raises(ValueError, match=r"has trained 3 iterations, more than train\.max_iter=2 asks for"):
        tool.main(_parse(tool, run, ["--resume"], ["train.max_iter=2"]))
    # The finished run's own max_iter: nothing would train, the run would only be evaluated again.
    with pytest.raises(ValueError, match=r"has trained 3 iterations, all train\.max_iter=3 asks for: nothing"):
        tool.main(_parse(tool, run, ["--resume"]))
    # An --eval-only --resume loads the run's last checkpoint strictly: named as --resume's.
    with pytest.raises(CheckpointMismatchError, match=r"^--resume: checkpoint .*model_final\.pth.*cls_subnet\.3"):
        tool.main(_parse(tool, run, ["--eval-only", "--resume"], ["model.head.conv_dims=[64,64]"]))
    assert {p.name: p.stat().st_mtime_ns for p in run.iterdir()} == before


def test_resume_checks_its_checkpoint_where_the_model_cannot_be_built_on_the_meta_device(
        trained, tool, tmp_path, monkeypatch):
    # (detectron2's ViT, MViT, Swin.) The tool skipped the whole check then, and told do_train
    # it was done: a resume of a finished run trained nothing and evaluated it again over its
    # config.yaml and predictions; a truncated checkpoint failed after the data loader was built.
    import shutil

    out, _ = trained
    run = tmp_path / "run"
    shutil.copytree(out, run)
    checked = tool.check_lazy_config_before_run

    def without_meta_model(*args, **kwargs):
        checked(*args, **kwargs)
        return None

    monkeypatch.setattr(tool, "check_lazy_config_before_run", without_meta_model)
    before = {p.name: p.stat().st_mtime_ns for p in run.iterdir()}
    with pytest.raises(ValueError, match=r"has trained 3 iterations, all train\.max_iter=3 asks for: nothing"):
        tool.main(_parse(tool, run, ["--resume"]))
    (run / "model_final.pth").write_bytes((out / "model_final.pth").read_bytes()[:4096])
    before["model_final.pth"] = (run / "model_final.pth").stat().st_mtime_ns
    with pytest.raises(RuntimeError, match=r"checkpoint .*model_final\.pth' cannot be read, it is truncated"):
        tool.main(_parse(tool, run, ["--resume"], ["train.max_iter=6"]))
    assert {p.name: p.stat().st_mtime_ns for p in run.iterdir()} == before


def test_do_train_from_a_finished_runs_checkpoint_evaluates_it_again(trained, tmp_path):
    # What a lazy sweep cell stopped after its last step but before its row was written
    # does on the next sweep: no step trained, the evaluation of the checkpoint returned.
    import shutil

    from dropblock_det.engine.lazy_config_checks import load_lazy_config
    from dropblock_det.engine.lazy import do_train

    out, results = trained
    run = tmp_path / "run"
    shutil.copytree(out, run)
    steps_before = [r["iteration"] for r in _records(run) if "total_loss" in r]
    cfg = load_lazy_config(LAZY_CONFIG, [*TINY_LAZY_OPTS, f"train.output_dir={run}"])
    again = do_train(cfg, str(run / "model_final.pth"))
    assert again["bbox"]["AP"] == pytest.approx(results["bbox"]["AP"], abs=1e-6)
    assert [r["iteration"] for r in _records(run) if "total_loss" in r] == steps_before


def test_do_train_refuses_a_resume_from_checkpoint_of_another_model_before_loading_the_data(
        trained, tmp_path, monkeypatch):
    # What a lazy sweep's do_train call gets unchecked by the tool: the strict load came only
    # after the training set was loaded.
    from dropblock_det.engine import lazy
    from dropblock_det.engine.checkpoint import CheckpointMismatchError
    from dropblock_det.engine.lazy_config_checks import load_lazy_config

    out, _ = trained
    monkeypatch.setattr(lazy, "build_lazy_train_loader", lambda *args: pytest.fail("the training data was loaded"))
    cfg = load_lazy_config(LAZY_CONFIG, [*TINY_LAZY_OPTS, f"train.output_dir={tmp_path / 'run'}",
                                         "model.head.conv_dims=[64,64]"])
    with pytest.raises(CheckpointMismatchError, match=r"^--resume: checkpoint '.*model_final\.pth' does not match "
                                                      r".*missing in checkpoint: head\.cls_subnet\.3\.weight"):
        lazy.do_train(cfg, str(out / "model_final.pth"))


def test_do_train_returns_the_last_evaluations_results_not_an_earlier_ones(tiny_datasets, tmp_path, monkeypatch):
    # COCOEvaluator gives {} for a model that detects nothing: the last evaluation's {} is the
    # result (a sweep's row), not the AP of the evaluation before it.
    from dropblock_det.engine import lazy
    from dropblock_det.engine.lazy_config_checks import load_lazy_config

    outcomes = iter([{"bbox": {"AP": 12.5}}, {}])
    monkeypatch.setattr(lazy, "do_test", lambda cfg, model: next(outcomes))
    cfg = load_lazy_config(LAZY_CONFIG, [*TINY_LAZY_OPTS, f"train.output_dir={tmp_path / 'run'}",
                                         "train.max_iter=2", "train.eval_period=1"])
    assert lazy.do_train(cfg) == {}
    assert next(outcomes, None) is None  # evaluated after step 0 and at the end


def test_do_train_without_resume_from_starts_from_init_checkpoint_not_the_folders_last_checkpoint(
        trained, tmp_path, monkeypatch):
    # '' is a fresh start: the run's own checkpoint in train.output_dir is not loaded.
    import shutil

    from detectron2.engine import SimpleTrainer

    from dropblock_det.engine.lazy_config_checks import load_lazy_config
    from dropblock_det.engine.lazy import do_train

    out, _ = trained
    run = tmp_path / "run"
    shutil.copytree(out, run)
    started = []
    monkeypatch.setattr(SimpleTrainer, "train", lambda self, start, end: started.append(
        (start, end, self.iter, {k: v.clone() for k, v in self.model.state_dict().items()})))
    do_train(load_lazy_config(LAZY_CONFIG, [*TINY_LAZY_OPTS, f"train.output_dir={run}"]))
    ((start, end, iteration, weights),) = started
    saved = torch.load(run / "model_final.pth", map_location="cpu", weights_only=False)["model"]
    assert (start, end) == (0, 3) and iteration == 0
    assert not torch.equal(weights["head.cls_score.weight"], saved["head.cls_score.weight"])


def test_a_fresh_run_into_a_used_folder_moves_the_earlier_run_aside(trained, tool, tmp_path):
    import shutil

    out, _ = trained
    run = tmp_path / "run"
    shutil.copytree(out, run)
    tool.main(_parse(tool, run, [], ["train.max_iter=2"]))  # 1 would never regularize: refused
    (archived,) = (run / "previous_runs").iterdir()
    assert (archived / "model_final.pth").is_file() and (archived / "metrics.json").is_file()
    assert [r["iteration"] for r in _records(run) if "total_loss" in r] == [0, 1]


def test_a_truncated_init_checkpoint_is_refused_before_the_earlier_run_is_moved(trained, tool, tmp_path):
    # detectron2 reads it after building the data loader, moving the earlier run aside and
    # writing config.yaml: a partial copy failed there with "OSError: [Errno 22] Invalid argument".
    run, partial, before = run_copy_and_truncated_weights(trained[0], tmp_path)
    with pytest.raises(RuntimeError, match=r"^train\.init_checkpoint='.*partial\.pth': checkpoint .* cannot be read, "
                                           r"it is truncated or corrupt"):
        tool.main(_parse(tool, run, [], [f"train.init_checkpoint={partial}"]))
    assert file_mtimes(run) == before


@pytest.mark.parametrize("opts, error, match", [
    (["train.max_iter=0"], ValueError, r"train\.max_iter=0"),
    (["dataloader.train.dataset.names=no_such_set"], KeyError, r"'no_such_set'"),
    (["model.backbone.bottom_up.stages.depth=42"], ValueError, r"model\.backbone\.bottom_up\.stages .*depth=42"),
    (["dataloader.test.dataset.names=synthetic_sem_seg_val"], ValueError, r"dataloader\.evaluator\.dataset_name"),
    (["train.dropblock_schedule.keep_prob=1.5"], ValueError, r"train\.dropblock_schedule"),
    (["dataloader.train.total_batch_size=0"], ValueError, r"dataloader\.train\.total_batch_size=0"),
    (["model.num_classes=80"], ValueError, r"model\.num_classes=80, .*3 classes"),  # failed in the evaluation
    (["dataloader.test.mapper.augmentations.0.max_size=0"], ValueError, r"dataloader\.test\.mapper\.augmentations\.0: "),
])
def test_bad_inputs_are_refused_before_the_output_folder_is_made(tool, tiny_datasets, tmp_path, opts, error, match):
    out = tmp_path / "never"
    with pytest.raises(error, match=match):
        tool.main(_parse(tool, out, [], opts))
    assert not out.exists()


def test_an_init_checkpoint_at_a_url_is_fetched_before_the_output_folder_is_made(trained, tool, served, tmp_path):
    import shutil

    url, folder = served
    out = tmp_path / "never"
    with pytest.raises(RuntimeError, match=r"^train\.init_checkpoint='http://127\.0\.0\.1:\d+/gone\.pth' cannot be "
                                           r"fetched \(HTTPError: HTTP Error 404"):
        tool.main(_parse(tool, out, [], [f"train.init_checkpoint={url}/gone.pth"]))
    assert not out.exists()
    # One that is there: fetched into the cache, and an --eval-only of another model's is
    # refused before anything is written, as a local one (it was left to the load).
    from dropblock_det.engine.checkpoint import CheckpointMismatchError

    shutil.copy(trained[0] / "model_final.pth", folder / "model_final.pth")
    with pytest.raises(CheckpointMismatchError, match=r"^train\.init_checkpoint='http://.*/model_final\.pth': "
                                                      r"checkpoint .* does not match.*head\.cls_subnet\.3\.weight"):
        tool.main(_parse(tool, out, ["--eval-only"], [f"train.init_checkpoint={url}/model_final.pth",
                                                      "model.head.conv_dims=[64,64]"]))
    assert not out.exists() and list((tmp_path / "cache").rglob("model_final.pth"))


def test_a_folder_another_run_holds_is_refused_before_anything_is_moved(trained, tool, tmp_path):
    import shutil

    out, _ = trained
    run = tmp_path / "run"
    shutil.copytree(out, run)
    with another_process_holding(run):
        with pytest.raises(RuntimeError, match=r"train\.output_dir=.* is in use by another run"):
            tool.main(_parse(tool, run))
    assert not (run / "previous_runs").exists()


def test_the_command_line_trains_through_launch(tiny_datasets, tmp_path):
    # As the README runs it: a process of its own, opts after the flags, detectron2's launch.
    import os
    import subprocess
    import sys

    from conftest import REPO

    out = tmp_path / "cli"
    result = subprocess.run(
        [sys.executable, str(REPO / "tools" / "lazyconfig_train_net.py"), "--config-file", LAZY_CONFIG,
         *TINY_LAZY_OPTS, "train.max_iter=2", f"train.output_dir={out}"],
        capture_output=True, text=True, timeout=300, env={**os.environ, "DETECTRON2_DATASETS": str(tiny_datasets)})
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Command Line Args:" in result.stdout and (out / "model_final.pth").is_file()
    assert "bbox" in (out / "metrics.json").read_text()
    # The command line is parsed by tool_args: a flag after the opts is refused, not taken for one.
    late_flag = subprocess.run(
        [sys.executable, str(REPO / "tools" / "lazyconfig_train_net.py"), "--config-file", LAZY_CONFIG,
         f"train.output_dir={tmp_path / 'never'}", "--resume"], capture_output=True, text=True, timeout=300)
    assert late_flag.returncode == 2 and "--resume comes after the config opts" in late_flag.stderr
    refused = subprocess.run(
        [sys.executable, str(REPO / "tools" / "train_net.py"), "--config-file",
         str(REPO / "configs" / "Synthetic" / "retinanet_R18_GN_dropblock_res45_kp0.9_b3.yaml"), "--eval-only",
         "OUTPUT_DIR", str(tmp_path / "never")],
        capture_output=True, text=True, timeout=300, env={**os.environ, "DETECTRON2_DATASETS": str(tiny_datasets)})
    assert refused.returncode != 0 and "--eval-only needs weights" in refused.stderr
    assert not (tmp_path / "never").exists()


def _evaluated_weights(tool, monkeypatch):
    """Makes tool.main return the weights of the model it evaluates, without the inference."""
    monkeypatch.setattr(tool, "do_test", lambda cfg, model: {k: v.clone() for k, v in model.state_dict().items()})


def test_eval_only_evaluates_init_checkpoint_and_with_resume_the_runs_last_checkpoint_when_there_is_one(
        trained, tool, tmp_path, monkeypatch):
    import shutil

    out, _ = trained
    run = tmp_path / "run"
    shutil.copytree(out, run)
    # Another checkpoint of the same model: its classifier bias moved.
    other = tmp_path / "other.pth"
    checkpoint = torch.load(out / "model_final.pth", map_location="cpu", weights_only=False)
    checkpoint["model"]["head.cls_score.bias"] = checkpoint["model"]["head.cls_score.bias"] + 1.0
    torch.save(checkpoint, other)
    _evaluated_weights(tool, monkeypatch)
    bias = "head.cls_score.bias"
    run_bias = torch.load(run / "model_final.pth", map_location="cpu", weights_only=False)["model"][bias]
    # Without --resume the run's own checkpoint in the folder is not what is evaluated.
    weights = tool.main(_parse(tool, run, ["--eval-only"], [f"train.init_checkpoint={other}"]))
    assert torch.equal(weights[bias], checkpoint["model"][bias])
    # With it, the run's last checkpoint wins over train.init_checkpoint ...
    weights = tool.main(_parse(tool, run, ["--eval-only", "--resume"], [f"train.init_checkpoint={other}"]))
    assert torch.equal(weights[bias], run_bias)
    # ... which is evaluated where the folder has none.
    weights = tool.main(_parse(tool, tmp_path / "empty", ["--eval-only", "--resume"], [f"train.init_checkpoint={other}"]))
    assert torch.equal(weights[bias], checkpoint["model"][bias])


def test_eval_only_does_not_check_what_only_training_reads(trained, tool, tmp_path, monkeypatch):
    # A test set on this machine, the training set not: the evaluation needs only the former.
    # And a model trained with the Triton DropBlock (an identity in evaluation) on a CPU.
    out, _ = trained
    _evaluated_weights(tool, monkeypatch)
    weights = tool.main(_parse(tool, tmp_path / "eval", ["--eval-only"], [
        f"train.init_checkpoint={out / 'model_final.pth'}", "dataloader.train.dataset.names=no_such_set",
        "train.max_iter=0", "dropblock.impl=triton"]))
    assert "head.cls_score.bias" in weights


@pytest.mark.parametrize("flags, match", [
    (["--eval-only"], r"^--eval-only needs weights to evaluate: train\.init_checkpoint is empty; give "
                      r"train\.init_checkpoint=<checkpoint>, or --resume with the train\.output_dir of a run$"),
    (["--eval-only", "--resume"], r"^--eval-only needs weights to evaluate: train\.init_checkpoint is empty and "
                                  r"train\.output_dir='.*never' has no checkpoint; give "),
])
def test_eval_only_without_weights_says_where_it_looked(tool, tiny_datasets, tmp_path, flags, match):
    out = tmp_path / "never"
    with pytest.raises(ValueError, match=match):
        tool.main(_parse(tool, out, flags))
    assert not out.exists()


@pytest.mark.parametrize("evaluator, shown", [([], r"\[\]"), (None, "missing")])
def test_eval_only_with_an_empty_or_no_evaluator_is_refused(trained, tool, tmp_path, monkeypatch, evaluator, shown):
    # As a config file may give it: an empty list ran the inference and scored it with nothing.
    out, _ = trained
    load = tool.load_lazy_config

    def with_evaluator(*args):
        cfg = load(*args)
        if evaluator is None:
            del cfg.dataloader["evaluator"]
        else:
            cfg.dataloader.evaluator = evaluator
        return cfg

    monkeypatch.setattr(tool, "load_lazy_config", with_evaluator)
    with pytest.raises(ValueError, match=rf"^--eval-only needs an evaluator: dataloader\.evaluator is {shown} "):
        tool.main(_parse(tool, tmp_path / "never", ["--eval-only"], [f"train.init_checkpoint={out / 'model_final.pth'}"]))
    assert not (tmp_path / "never").exists()


def test_a_resume_into_an_output_dir_that_is_no_folder_name_is_refused_naming_it(tool, tiny_datasets, tmp_path):
    # Hydra reads train.output_dir=123 as an int: a bare TypeError where the run's last
    # checkpoint was looked for.
    with pytest.raises(ValueError, match=r"^train\.output_dir=123: expected a folder"):
        tool.main(_parse(tool, tmp_path, ["--resume"], ["train.output_dir=123"]))


class _Stop(Exception):
    pass


def _stopped_after_the_output_dir_is_prepared(tool, monkeypatch, args):
    """Runs tool.main(args) up to setup_run's default_setup (the first write after the folder
    is prepared)."""
    def stop(*_):
        raise _Stop

    monkeypatch.setattr(tool, "setup_run", stop)
    with pytest.raises(_Stop):
        tool.main(args)


@pytest.mark.parametrize("flags, moved, hint", [
    ([], ["config.yaml", "last_checkpoint", "metrics.json", "model_final.pth"], "--resume continues a run instead"),
    (["--resume"], ["config.yaml", "metrics.json"], "--resume found no checkpoint there: training starts at iteration 0"),
    (["--eval-only"], ["config.yaml"], None),
])
def test_what_a_run_moves_aside_from_its_folder_and_says_so(trained, tool, tmp_path, monkeypatch, capsys, flags, moved,
                                                            hint):
    import shutil

    out, _ = trained
    run = tmp_path / "run"
    run.mkdir()
    for name in ("config.yaml", "last_checkpoint", "metrics.json", "model_final.pth"):
        shutil.copy(out / name, run / name)
    if "--resume" in flags:  # a run that wrote no checkpoint yet
        (run / "last_checkpoint").unlink()
        (run / "model_final.pth").unlink()
    weights = [f"train.init_checkpoint={out / 'model_final.pth'}"] if "--eval-only" in flags else []
    _stopped_after_the_output_dir_is_prepared(tool, monkeypatch, _parse(tool, run, flags, weights))
    (archived,) = (run / "previous_runs").iterdir()
    assert sorted(p.name for p in archived.iterdir()) == moved
    printed = capsys.readouterr().out
    if hint:
        assert f"The earlier run in train.output_dir={str(run)!r} was moved to {archived} ({hint})" in printed
    else:
        # It names what moved: the run's config.yaml only (no inference/ there).
        assert f"The earlier config.yaml in train.output_dir={str(run)!r} moved to {archived}\n" in printed
        # The evaluation leaves the run's checkpoints and metrics where they are.
        assert {"last_checkpoint", "metrics.json", "model_final.pth"} <= {p.name for p in run.iterdir()}


def test_a_fresh_run_from_its_folders_config_and_weights_keeps_both_there(trained, tool, tmp_path, monkeypatch):
    # Starting anew from a run's saved config.yaml and model_final.pth, into the same folder:
    # moved aside with the rest of the run, neither could be read by the new one.
    import shutil

    out, _ = trained
    run = tmp_path / "run"
    shutil.copytree(out, run)
    args = tool.parser().parse_args(["--config-file", str(run / "config.yaml"), f"train.output_dir={run}",
                                     f"train.init_checkpoint={run / 'model_final.pth'}"])
    _stopped_after_the_output_dir_is_prepared(tool, monkeypatch, args)
    (archived,) = (run / "previous_runs").iterdir()
    for name in ("config.yaml", "model_final.pth"):
        assert (run / name).read_bytes() == (archived / name).read_bytes() == (out / name).read_bytes()
    assert not (run / "metrics.json").exists()


def test_a_dataset_whose_files_are_not_there_is_refused_before_the_output_folder_is_made(tool, tiny_datasets, tmp_path):
    from dropblock_det.data.synthetic import register_synthetic_datasets

    register_synthetic_datasets(tmp_path / "elsewhere")  # the sets' files are not there
    try:
        with pytest.raises(FileNotFoundError, match=r"synthetic_det_train"):
            tool.main(_parse(tool, tmp_path / "never"))
    finally:
        register_synthetic_datasets(tiny_datasets)
    assert not (tmp_path / "never").exists()


def test_eval_only_resume_without_a_checkpoint_names_init_checkpoint_it_evaluates_instead(trained, tool, tmp_path):
    # Nothing to resume: the weights checked (and refused) are train.init_checkpoint, named as such.
    from dropblock_det.engine.checkpoint import CheckpointMismatchError

    out, _ = trained
    with pytest.raises(CheckpointMismatchError, match=r"^train\.init_checkpoint: checkpoint .*model_final\.pth.*"
                                                      r"head\.cls_subnet\.3\.weight"):
        tool.main(_parse(tool, tmp_path / "empty", ["--eval-only", "--resume"], [
            f"train.init_checkpoint={out / 'model_final.pth'}", "model.head.conv_dims=[64,64]"]))
    assert not (tmp_path / "empty").exists()


# Multi-process journey (stop 53)
def _run_in_two_processes(tiny_datasets, tmp_path, *args):
    """lazyconfig_train_net.py --num-gpus 2 ARGS in a process of its own (the README's "Several
    processes on the CPU"), or a skip where detectron2's launch starts no 2 processes here."""
    import os
    import subprocess
    import sys

    from conftest import REPO
    from dropblock_det.engine.trainer import check_launch_processes

    try:
        check_launch_processes(2, 1)
    except ValueError as e:  # detectron2 v0.6 without 2 CUDA devices, detectron2 main with 1
        pytest.skip(f"detectron2's launch starts no 2 processes here: {e}")
    return subprocess.run(
        [sys.executable, str(REPO / "tools" / "lazyconfig_train_net.py"), "--num-gpus", "2", *args],
        cwd=str(tmp_path), capture_output=True, text=True, timeout=300,
        env={**os.environ, "DETECTRON2_DATASETS": str(tiny_datasets), "OMP_NUM_THREADS": "1"})


def test_eval_only_in_two_processes_on_the_cpu_gives_the_one_process_ap(trained, tiny_datasets, tmp_path):
    # The evaluation wrapped the model in detectron2's create_ddp_model(model), device_ids=[local
    # rank]: a CPU model failed in each process with DistributedDataParallel's ValueError.
    out, results = trained
    result = _run_in_two_processes(tiny_datasets, tmp_path, "--eval-only", "--config-file", LAZY_CONFIG,
                                   *TINY_LAZY_OPTS, f"train.init_checkpoint={out / 'model_final.pth'}",
                                   f"train.output_dir={tmp_path / 'eval'}")
    assert result.returncode == 0, result.stderr[-3000:]
    (ap,) = re.findall(r"copypaste: ([-\d.na]+),[-\d.na]+,[-\d.na]+,[-\d.na]+,[-\d.na]+,[-\d.na]+\n",
                       result.stdout + result.stderr)
    assert float(ap) == pytest.approx(results["bbox"]["AP"], abs=1e-3)


@pytest.fixture(scope="module")
def two_processes(tiny_datasets, module_tmp_path_factory):
    """(output dir, the command's result) of a 3-iteration training in 2 processes on the CPU
    (+train.ddp.device_ids=null, as the README says) of 4 images a step, whose ramp ends after
    train.max_iter (a warning)."""
    import socket

    from detectron2.engine import default_argument_parser

    tmp_path = module_tmp_path_factory.mktemp("two_processes")
    out = tmp_path / "run"
    # As another run in several processes on this machine would: it held detectron2's default
    # --dist-url port, and this launch failed with torch's EADDRINUSE traceback.
    port = int(default_argument_parser().get_default("dist_url").rsplit(":", 1)[1])
    held = socket.socket()
    with contextlib.suppress(OSError):  # (held by something else already: as good)
        held.bind(("127.0.0.1", port))
        held.listen()
    with held:
        result = _run_in_two_processes(tiny_datasets, tmp_path, "--config-file", LAZY_CONFIG, *TINY_LAZY_OPTS,
                                       "dataloader.train.total_batch_size=4", "+train.ddp.device_ids=null",
                                       "train.dropblock_schedule.end_iter=10", f"train.output_dir={out}")
    assert result.returncode == 0, result.stderr[-3000:]
    return out, result


def test_two_processes_warn_of_the_ramp_once_on_the_console_and_in_each_processs_log(two_processes):
    # Each process printed the hook's warning on the console: the same line twice.
    out, result = two_processes
    warning = "DropBlockScheduleHook: end_iter=10 is after the trainer's max_iter=3"
    assert (result.stdout + result.stderr).count(warning) == 1, result.stderr[-3000:]
    assert warning in (out / "log.txt.rank1").read_text()
    assert warning in (out / "log.txt").read_text()  # the main process's: on the console and in its log


def test_two_processes_log_the_ramp_once_and_split_the_batch(two_processes):
    out, _ = two_processes
    ramp = [(r["iteration"], r["dropblock/keep_prob"]) for r in _records(out) if "dropblock/keep_prob" in r]
    assert ramp == [(0, 1.0), (1, pytest.approx(0.99)), (2, pytest.approx(0.98))]  # rank 0's metrics.json only
    # detectron2 splits dataloader.train.total_batch_size across the processes.
    assert "Making batched data loader with batch_size=2" in (out / "log.txt").read_text()
    assert sorted(p.name for p in out.iterdir() if p.suffix in (".pth", ".yaml")) == ["config.yaml", "model_final.pth"]


# --- stop 58 ---
def test_training_in_several_processes_on_the_cpu_is_refused_before_the_launch(tool, tmp_path, monkeypatch, capsys):
    # train.device cpu with --num-gpus 2 (no train.ddp.device_ids) was refused by each
    # launched process, after each imported torch and detectron2; now once, before the launch.
    from tools_helpers import cli_launches

    argv = ["--config-file", LAZY_CONFIG, f"train.output_dir={tmp_path / 'run'}"]
    assert cli_launches(tool, ["--num-gpus", "2", *argv], monkeypatch) == ([], 1)
    assert re.search(r"lazyconfig_train_net\.py: error: ValueError: train\.device='cpu' with 2 training processes "
                     r".*train\.ddp\.device_ids=null", capsys.readouterr().err)
    # DDP on the CPU (its backend is known in the processes), an evaluation, one process: launched.
    assert cli_launches(tool, ["--num-gpus", "2", *argv, "+train.ddp.device_ids=null"], monkeypatch) == ([2], None)
    assert cli_launches(tool, ["--num-gpus", "2", "--eval-only", *argv], monkeypatch) == ([2], None)
    assert cli_launches(tool, argv, monkeypatch) == ([1], None)
    assert not (tmp_path / "run").exists()
