"""Resume through tools/train_net.py: a run interrupted right after a checkpoint and resumed
with `--resume` sees exactly the keep_prob, LR and iterations of an uninterrupted run, and
its checkpoints hold nothing specific to the plugin (they load into stock RetinaNet)."""
import json

import pytest
import torch

from detectron2.engine import HookBase
from detectron2.engine import hooks as d2_hooks
from detectron2.modeling import build_model
from detectron2.modeling.meta_arch.retinanet import RetinaNet
from detectron2.utils.events import JSONWriter

from conftest import REPO, load_tool, stock_retinanet_cfg, tiny_synthetic_datasets
from reliability_helpers import nested_keys, plugin_specific_keys

CONFIG = str(REPO / "configs" / "Synthetic" / "retinanet_R18_GN_dropblock_res45_kp0.9_b3.yaml")
MAX_ITER = 5
INTERRUPT_AFTER = 2  # iterations 0, 1 run; the checkpoint of iteration 1 is written
OPTS = [
    # Tiny model; no norm in the head so detectron2 v0.6's stock RetinaNet can build it too.
    "MODEL.FPN.OUT_CHANNELS", "64", "MODEL.RETINANET.NUM_CONVS", "1",
    "MODEL.RETINANET.NORM", "",
    # DropBlock in the ResNet (from the config file), the FPN and the head as well.
    "MODEL.DROPBLOCK.FPN.ENABLED", "True", "MODEL.DROPBLOCK.HEAD.ENABLED", "True",
    "INPUT.MIN_SIZE_TRAIN", "(64,)", "INPUT.MAX_SIZE_TRAIN", "64",
    "SOLVER.IMS_PER_BATCH", "1", "SOLVER.MAX_ITER", str(MAX_ITER),
    # Warmup then cosine: the LR changes at every iteration, so a shifted one shows.
    "SOLVER.WARMUP_ITERS", "2", "SOLVER.CHECKPOINT_PERIOD", str(INTERRUPT_AFTER),
    "DATALOADER.NUM_WORKERS", "0", "DATASETS.TEST", "()", "SEED", "0",
]


class _Interrupted(Exception):
    """Stands for a job killed between two iterations."""


class _InterruptAfter(HookBase):
    def __init__(self, iterations: int):
        self.iterations = iterations

    def after_step(self):
        if self.trainer.iter + 1 == self.iterations:
            raise _Interrupted(f"stopped after iteration {self.trainer.iter}")


class _EveryStepWriter(d2_hooks.PeriodicWriter):
    """DefaultTrainer writes metrics every 20 iterations, keeping only the latest value of
    each scalar: also write metrics.json after every iteration, so it holds the whole
    sequence (the console printer keeps its period)."""

    def after_step(self):
        for writer in self._writers:
            if isinstance(writer, JSONWriter):
                writer.write()
        super().after_step()


@pytest.fixture(scope="module")
def runs(module_tmp_path_factory):
    """{"uninterrupted": dir, "resumed": dir}: the same config trained MAX_ITER iterations in
    one go, and interrupted after INTERRUPT_AFTER iterations then resumed with --resume."""
    monkeypatch = pytest.MonkeyPatch()
    monkeypatch.setattr(d2_hooks, "PeriodicWriter", _EveryStepWriter)
    train_net = load_tool("train_net")
    out = {}
    try:
        with tiny_synthetic_datasets(module_tmp_path_factory.mktemp("datasets")):
            out["uninterrupted"] = module_tmp_path_factory.mktemp("uninterrupted")
            args = train_net.parser().parse_args(
                ["--config-file", CONFIG] + OPTS + ["OUTPUT_DIR", str(out["uninterrupted"])])
            train_net.main(args)

            out["resumed"] = module_tmp_path_factory.mktemp("resumed")
            opts = OPTS + ["OUTPUT_DIR", str(out["resumed"])]
            stock_build_hooks = train_net.Trainer.build_hooks
            monkeypatch.setattr(
                train_net.Trainer, "build_hooks",
                lambda self: stock_build_hooks(self) + [_InterruptAfter(INTERRUPT_AFTER)])
            with pytest.raises(_Interrupted):
                train_net.main(train_net.parser().parse_args(["--config-file", CONFIG] + opts))
            monkeypatch.setattr(train_net.Trainer, "build_hooks", stock_build_hooks)
            train_net.main(train_net.parser().parse_args(
                ["--config-file", CONFIG, "--resume"] + opts))
    finally:
        monkeypatch.undo()
    return out


def _per_iteration(out_dir, key):
    """{iteration: value of `key`} from metrics.json (later records win)."""
    values = {}
    for line in (out_dir / "metrics.json").read_text().splitlines():
        record = json.loads(line) if line.strip() else {}
        if key in record:
            values[record["iteration"]] = record[key]
    return values


def test_interrupted_run_wrote_the_checkpoint_it_resumes_from(runs):
    resumed = runs["resumed"]
    assert (resumed / f"model_{INTERRUPT_AFTER - 1:07d}.pth").is_file()
    # The interrupted part recorded iterations 0..1; the resumed part 2..MAX_ITER-1.
    iterations = sorted(_per_iteration(resumed, "dropblock/keep_prob"))
    assert iterations == list(range(MAX_ITER))


@pytest.mark.parametrize("key", ["dropblock/keep_prob", "lr"])
def test_resumed_run_has_the_uninterrupted_sequence(runs, key):
    uninterrupted = _per_iteration(runs["uninterrupted"], key)
    resumed = _per_iteration(runs["resumed"], key)
    assert sorted(uninterrupted) == list(range(MAX_ITER))
    assert resumed == pytest.approx(uninterrupted, rel=0, abs=1e-12)
    # The sequence really moves (a constant would hide an off-by-one iteration).
    assert len(set(uninterrupted.values())) == MAX_ITER


def test_keep_prob_ramps_from_one_towards_the_target(runs):
    keep_prob = _per_iteration(runs["uninterrupted"], "dropblock/keep_prob")
    assert keep_prob[0] == 1.0
    assert all(keep_prob[i] > keep_prob[i + 1] for i in range(MAX_ITER - 1))
    # END_ITER -1 = SOLVER.MAX_ITER: the target 0.9 is reached at MAX_ITER, not before.
    assert keep_prob[MAX_ITER - 1] == pytest.approx(1 - (MAX_ITER - 1) / MAX_ITER * 0.1)


def test_final_checkpoints_are_at_the_same_iteration(runs):
    finals = [torch.load(runs[name] / "model_final.pth", map_location="cpu", weights_only=False)
              for name in ("uninterrupted", "resumed")]
    assert [f["iteration"] for f in finals] == [MAX_ITER - 1, MAX_ITER - 1]
    assert list(finals[0]["model"]) == list(finals[1]["model"])


def test_checkpoint_keeps_the_optimizer_state_for_resume(runs):
    # SGD momentum and the LR of the next iteration live in the optimizer's state; a
    # checkpoint without it resumes with zero momentum and the LR of iteration 0.
    checkpoint = torch.load(runs["resumed"] / f"model_{INTERRUPT_AFTER - 1:07d}.pth",
                            map_location="cpu", weights_only=False)
    keys = list(nested_keys(checkpoint))
    assert any(k == "optimizer" or k.endswith(".optimizer") for k in keys), keys


def test_checkpoint_has_no_plugin_state_and_loads_strictly_into_stock_retinanet(runs):
    from dropblock_det.engine.config_checks import load_config

    for name in ("model_final.pth", f"model_{INTERRUPT_AFTER - 1:07d}.pth"):
        checkpoint = torch.load(runs["resumed"] / name, map_location="cpu", weights_only=False)
        assert plugin_specific_keys(checkpoint) == []
        cfg = load_config(CONFIG, OPTS)
        stock = build_model(stock_retinanet_cfg(cfg))
        assert type(stock) is RetinaNet
        stock.load_state_dict(checkpoint["model"], strict=True)


def test_eval_only_with_resume_evaluates_the_runs_last_checkpoint(runs, tmp_path, monkeypatch):
    # As detectron2's train_net: --eval-only --resume loads OUTPUT_DIR's last checkpoint (these
    # configs train from scratch: MODEL.WEIGHTS is empty, which alone would be an error).
    train_net = load_tool("train_net")
    loaded = []
    load = train_net.load_checkpoint_strict
    monkeypatch.setattr(train_net, "load_checkpoint_strict", lambda model, path: (loaded.append(path), load(model, path)))
    out_dir = runs["resumed"]
    with tiny_synthetic_datasets(tmp_path / "datasets"):
        args = ["--config-file", CONFIG] + OPTS + ["OUTPUT_DIR", str(out_dir), "DATASETS.TEST", "('synthetic_det_val',)"]
        results = train_net.main(train_net.parser().parse_args(["--eval-only", "--resume"] + args))
        assert loaded == [str(out_dir / "model_final.pth")] and set(results) == {"bbox"}
        with pytest.raises(ValueError, match="--eval-only needs weights to evaluate: MODEL.WEIGHTS is empty"):
            train_net.main(train_net.parser().parse_args(["--eval-only"] + args))


def test_a_resume_with_changed_opts_keeps_the_config_the_run_was_trained_with_so_far(runs, tmp_path, capsys):
    # default_setup rewrote config.yaml without a word: a run resumed with another KEEP_PROB
    # (which a resume takes) no longer said what its first iterations were trained with.
    import shutil

    train_net = load_tool("train_net")
    out_dir = tmp_path / "run"
    shutil.copytree(runs["resumed"], out_dir)
    (out_dir / "last_checkpoint").write_text(f"model_{INTERRUPT_AFTER - 1:07d}.pth")
    args = ["--resume", "--config-file", CONFIG] + OPTS + ["OUTPUT_DIR", str(out_dir)]
    with tiny_synthetic_datasets(tmp_path / "datasets"):
        # The run's config.yaml names its old OUTPUT_DIR, or is an --eval-only test's.
        train_net.setup(train_net.parser().parse_args(args))
        shutil.rmtree(out_dir / "previous_runs", ignore_errors=True)
        capsys.readouterr()
        train_net.setup(train_net.parser().parse_args(args))
        # The same config: nothing kept, no empty previous_runs/ left.
        printed = capsys.readouterr().out
        assert not (out_dir / "previous_runs").exists() and "differs" not in printed, printed
        earlier = (out_dir / "config.yaml").read_text()
        train_net.setup(train_net.parser().parse_args(args + ["MODEL.DROPBLOCK.KEEP_PROB", "0.8"]))
    (kept,) = (out_dir / "previous_runs").glob("*/config.yaml")
    assert kept.read_text() == earlier and "KEEP_PROB: 0.8" in (out_dir / "config.yaml").read_text()
    assert (f"This resumed run's config differs from the one the run in OUTPUT_DIR='{out_dir}' was trained with so "
            f"far (MODEL.DROPBLOCK.KEEP_PROB: 0.9 -> 0.8): that config.yaml is kept as {kept}") in capsys.readouterr().out
    assert sorted(p.name for p in kept.parent.iterdir()) == ["config.yaml"]  # the checkpoints stay


# --- stop 55 ---
def test_a_resume_that_lengthens_the_schedule_trains_its_first_iteration_at_the_new_schedules_lr(runs, tmp_path):
    # The optimizer state holds the LR the run's schedule (MAX_ITER 5) gave iteration 2; the
    # continued run's (MAX_ITER 10) gives another, which its first iteration did not train at.
    import shutil

    train_net = load_tool("train_net")
    out_dir = tmp_path / "run"
    shutil.copytree(runs["resumed"], out_dir)
    (out_dir / "last_checkpoint").write_text(f"model_{INTERRUPT_AFTER - 1:07d}.pth")
    opts = OPTS + ["OUTPUT_DIR", str(out_dir), "SOLVER.MAX_ITER", "10"]
    with tiny_synthetic_datasets(tmp_path / "datasets"):
        cfg = train_net.setup(train_net.parser().parse_args(["--resume", "--config-file", CONFIG] + opts))
        trainer = train_net.Trainer(cfg)
        trainer.resume_or_load(resume=True)
    assert trainer.start_iter == INTERRUPT_AFTER
    # The new schedule's LR at that iteration, from a scheduler stepped there from scratch.
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=cfg.SOLVER.BASE_LR)
    scheduler = train_net.Trainer.build_lr_scheduler(cfg, optimizer)
    for _ in range(INTERRUPT_AFTER):
        optimizer.step()
        scheduler.step()
    saved = torch.load(out_dir / f"model_{INTERRUPT_AFTER - 1:07d}.pth", weights_only=False)
    saved_groups = saved["trainer"]["_trainer"]["optimizer"]["param_groups"]
    factor = optimizer.param_groups[0]["lr"] / cfg.SOLVER.BASE_LR
    expected = [group["initial_lr"] * factor for group in saved_groups]
    # The two schedules differ there, so the test can fail: the checkpoint holds the old one's.
    assert [group["lr"] for group in saved_groups] != pytest.approx(expected, rel=1e-3)
    assert [group["lr"] for group in trainer.optimizer.param_groups] == pytest.approx(expected, rel=1e-6)
