"""DropBlockScheduleHook: keep_prob over iterations in detectron2's trainers, the value in
the EventStorage / metrics.json, resume, and wrapped (DDP-style) models."""
import itertools
import json
from pathlib import Path
import warnings

import pytest
import torch
from torch import nn

from detectron2.engine import AMPTrainer, HookBase, SimpleTrainer
from detectron2.utils.events import EventStorage

import dropblock_det  # noqa: F401
from dropblock_det.engine import DropBlockScheduleHook, unwrap_model
from dropblock_det.layers import DropBlock2d

from conftest import CONFIGS, detection_batch, small_retinanet_cfg


class TinyModel(nn.Module):
    """Two regularizers with different targets, like a res4 (scaled) and a res5 stage."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.res4_dropblock = DropBlock2d(keep_prob=0.975, block_size=3)
        self.res5_dropblock = DropBlock2d(keep_prob=0.9, block_size=3)

    def forward(self, images):
        x = self.res5_dropblock(self.res4_dropblock(self.conv(images)))
        return {"loss": x.pow(2).mean()}


class RecordKeepProbs(HookBase):
    """Records, at every step, each regularizer's keep_prob as the step sees it."""

    def __init__(self, model):
        self.model = model
        self.seen = {}

    def before_step(self):
        self.seen[self.trainer.iter] = (
            self.model.res4_dropblock.keep_prob,
            self.model.res5_dropblock.keep_prob,
        )


def _expected(iteration, start=2, end=6):
    progress = min(max((iteration - start) / (end - start), 0.0), 1.0)
    return 1 - progress * 0.025, 1 - progress * 0.1


def _data(device="cpu"):
    return itertools.repeat(torch.randn(2, 3, 8, 8, device=device))


def _run(start_iter, max_iter, wrap=lambda m: m, trainer_class=SimpleTrainer, device="cpu",
         schedule=dict(start_iter=2, end_iter=6, keep_prob=0.9)):
    torch.manual_seed(0)
    model = TinyModel().to(device)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
    trainer = trainer_class(wrap(model), _data(device), optimizer)
    recorder = RecordKeepProbs(model)
    schedule_hook = DropBlockScheduleHook(**schedule)
    trainer.register_hooks([schedule_hook, recorder])
    trainer.train(start_iter, max_iter)
    return recorder.seen, trainer.storage


def test_simple_trainer_ramps_every_regularizer_to_its_own_target():
    seen, _ = _run(0, 9)
    assert sorted(seen) == list(range(9))
    for iteration, values in seen.items():
        assert values == pytest.approx(_expected(iteration)), iteration
    assert seen[0] == (1.0, 1.0) and seen[8] == pytest.approx((0.975, 0.9))


def test_scheduled_keep_prob_is_recorded_in_event_storage_every_iteration():
    _, storage = _run(0, 9)
    history = storage.history("dropblock/keep_prob").values()
    assert [it for _, it in history] == list(range(9))
    assert [v for v, _ in history] == pytest.approx([_expected(i)[1] for i in range(9)])


def test_an_explicit_keep_prob_is_the_one_recorded_not_the_lowest_target():
    # The config's KEEP_PROB (here 0.95, no regularizer's target: 0.975 and 0.9) is what
    # metrics.json shows; the regularizers still ramp to their own targets.
    seen, storage = _run(0, 9, schedule=dict(start_iter=2, end_iter=6, keep_prob=0.95))
    history = storage.history("dropblock/keep_prob").values()
    assert [v for v, _ in history] == pytest.approx([1 - min(max((i - 2) / 4, 0.0), 1.0) * 0.05 for i in range(9)])
    assert seen[8] == pytest.approx((0.975, 0.9))


def test_by_default_the_ramp_ends_at_the_trainers_max_iter_and_records_the_lowest_target():
    # DropBlockScheduleHook() in a LazyConfig: the paper's ramp over the whole training,
    # whatever train.max_iter an override gives.
    seen, storage = _run(0, 9, schedule=dict(start_iter=2))
    for iteration, values in seen.items():
        assert values == pytest.approx(_expected(iteration, end=9)), iteration
    history = storage.history("dropblock/keep_prob").values()
    assert [v for v, _ in history] == pytest.approx([_expected(i, end=9)[1] for i in range(9)])
    # Resumed at 5 of 9: the same values (the ramp's end comes from max_iter, not start).
    resumed, _ = _run(5, 9, schedule=dict(start_iter=2))
    assert resumed == {i: seen[i] for i in range(5, 9)}


def test_a_default_ramp_that_would_start_after_max_iter_is_refused_before_the_first_step():
    with pytest.raises(ValueError, match=r"start_iter=20 with the trainer's max_iter=9: keep_prob would stay 1\.0"):
        _run(0, 9, schedule=dict(start_iter=20))


def test_a_model_without_regularizers_gets_no_keep_prob_scalar():
    # A baseline config trained with the hook: no ramp in metrics.json claiming DropBlock.
    model = Baseline()  # defined below, beside the other tests of baseline models
    trainer = SimpleTrainer(model, _data(), torch.optim.SGD(model.parameters(), lr=0.01))
    trainer.register_hooks([DropBlockScheduleHook(start_iter=0, end_iter=4, keep_prob=0.9)])
    trainer.train(0, 3)
    assert "dropblock/keep_prob" not in trainer.storage.histories()
    assert "total_loss" in trainer.storage.histories()


def test_resumed_run_sees_exactly_the_uninterrupted_values():
    uninterrupted, _ = _run(0, 9)
    resumed, _ = _run(4, 9)  # what a trainer restarted at iteration 4 does
    assert sorted(resumed) == list(range(4, 9))
    assert all(resumed[i] == uninterrupted[i] for i in resumed)


class FakeDDP:
    """Stands in for DistributedDataParallel: not the model itself, the model in `.module`."""

    def __init__(self, module):
        self.module = module

    def __call__(self, *args, **kwargs):
        return self.module(*args, **kwargs)

    def train(self, mode=True):
        self.module.train(mode)
        return self

    @property
    def training(self):
        return self.module.training


def test_wrapped_model_is_unwrapped_and_scheduled():
    plain, _ = _run(0, 9)
    fake_ddp, _ = _run(0, 9, wrap=FakeDDP)
    data_parallel, _ = _run(0, 9, wrap=nn.DataParallel)  # on CPU it just calls the module
    assert fake_ddp == plain and data_parallel == plain


def test_unwrap_model_keeps_plain_modules_even_with_a_child_named_module():
    model = TinyModel()
    assert unwrap_model(nn.DataParallel(model)) is model
    assert unwrap_model(FakeDDP(FakeDDP(model))) is model
    container = nn.Module()
    container.module = model
    assert unwrap_model(container) is container
    with pytest.raises(TypeError):
        unwrap_model(object())


def test_hook_with_amp_trainer_sets_values_before_each_step():
    # detectron2's AMPTrainer.run_step asserts CUDA (v0.6 and main), so on CPU only the hook
    # side of the loop runs here; test_amp_trainer_trains_with_hook_on_cuda runs it fully.
    model = TinyModel()
    trainer = AMPTrainer(model, _data(), torch.optim.SGD(model.parameters(), lr=0.01))
    _check_ramp_before_each_step(trainer, DropBlockScheduleHook(start_iter=2, end_iter=6, keep_prob=0.9), model)


def _check_ramp_before_each_step(trainer, hook, model, untouched=None):
    """Iterations 0..8 of `trainer` with `hook`: before each step `model` has the keep_probs
    of the ramp 2 -> 6 (`_expected`), and `untouched` keeps its targets."""
    trainer.register_hooks([hook])
    with EventStorage(0) as trainer.storage:
        for trainer.iter in range(9):
            trainer.before_step()
            seen = (model.res4_dropblock.keep_prob, model.res5_dropblock.keep_prob)
            assert seen == pytest.approx(_expected(trainer.iter))
            if untouched is not None:
                assert (untouched.res4_dropblock.keep_prob, untouched.res5_dropblock.keep_prob) == (0.975, 0.9)


@pytest.mark.cuda
def test_amp_trainer_trains_with_hook_on_cuda():
    seen_cpu, _ = _run(0, 9)
    seen_amp, storage = _run(0, 9, trainer_class=AMPTrainer, device="cuda")
    assert seen_amp == seen_cpu
    assert len(storage.history("dropblock/keep_prob").values()) == 9


def test_from_config_resolves_end_minus_one_to_max_iter_and_validates():
    cfg = small_retinanet_cfg()
    cfg.SOLVER.MAX_ITER = 300
    cfg.MODEL.DROPBLOCK.KEEP_PROB = 0.8
    cfg.MODEL.DROPBLOCK.SCHEDULE.START_ITER = 100
    hook = DropBlockScheduleHook.from_config(cfg)
    assert (hook.schedule.start_iter, hook.schedule.end_iter, hook.keep_prob) == (100, 300, 0.8)
    cfg.MODEL.DROPBLOCK.SCHEDULE.END_ITER = 50
    with pytest.raises(ValueError, match=r"MODEL\.DROPBLOCK\.SCHEDULE\.END_ITER=50"):
        DropBlockScheduleHook.from_config(cfg)


@pytest.mark.slow
def test_default_trainer_resume_or_load_continues_the_ramp_and_writes_metrics(tmp_path):
    from detectron2.engine import DefaultTrainer

    class Trainer(DefaultTrainer):
        @classmethod
        def build_train_loader(cls, cfg):
            return (detection_batch(seed=i) for i in itertools.count())

        def build_hooks(self):
            return super().build_hooks() + [DropBlockScheduleHook.from_config(self.cfg)]

    cfg = small_retinanet_cfg("Base-RetinaNet-Scratch-DropBlock.yaml")
    cfg.OUTPUT_DIR = str(tmp_path)
    cfg.DATASETS.TEST = ()
    cfg.SOLVER.IMS_PER_BATCH = 2
    cfg.SOLVER.BASE_LR = 0.001
    cfg.SOLVER.STEPS = ()
    cfg.SOLVER.MAX_ITER = 3
    cfg.SOLVER.CHECKPOINT_PERIOD = 2  # saves model_0000001.pth (after iteration 1) and model_final

    first = Trainer(cfg)
    first.resume_or_load(resume=False)
    first.train()
    uninterrupted = dict(
        (it, v) for v, it in first.storage.history("dropblock/keep_prob").values()
    )
    # END_ITER -1: the ramp ends at SOLVER.MAX_ITER = 3
    assert uninterrupted == pytest.approx({0: 1.0, 1: 1 - 0.1 / 3, 2: 1 - 0.2 / 3})
    metrics = [json.loads(line) for line in (tmp_path / "metrics.json").read_text().splitlines()]
    assert metrics[-1]["dropblock/keep_prob"] == pytest.approx(1 - 0.2 / 3)

    # Resume from the checkpoint written after iteration 1, as after a crash there.
    (tmp_path / "last_checkpoint").write_text("model_0000001.pth")
    second = Trainer(cfg)
    second.resume_or_load(resume=True)
    assert second.start_iter == 2
    second.train()
    resumed = dict((it, v) for v, it in second.storage.history("dropblock/keep_prob").values())
    assert resumed == {2: uninterrupted[2]}
    res5 = second.model.backbone.bottom_up.res5[0].dropblock_conv1
    assert res5.keep_prob == pytest.approx(1 - 0.2 / 3)


@pytest.mark.parametrize("via_config", [False, True])
def test_an_explicit_model_is_scheduled_instead_of_the_trainers(via_config):
    # `model=` (e.g. the model inside a wrapper without `.module`) is what the hook schedules,
    # also through from_config; the trainer's own model is left alone.
    scheduled, trained = TinyModel(), TinyModel()
    trainer = SimpleTrainer(trained, _data(), torch.optim.SGD(trained.parameters(), lr=0.01))
    if via_config:
        cfg = small_retinanet_cfg()
        cfg.SOLVER.MAX_ITER = 6  # END_ITER -1: the ramp ends at 6
        cfg.MODEL.DROPBLOCK.SCHEDULE.START_ITER = 2
        hook = DropBlockScheduleHook.from_config(cfg, model=scheduled)
    else:
        hook = DropBlockScheduleHook(start_iter=2, end_iter=6, keep_prob=0.9, model=scheduled)
    _check_ramp_before_each_step(trainer, hook, scheduled, untouched=trained)


def test_keep_prob_out_of_range_is_refused_when_the_hook_is_built():
    # Not at the first step (after data loading), and under the argument's own name.
    for keep_prob in (0.0, 1.5, float("nan")):
        with pytest.raises(ValueError, match="keep_prob must be"):
            DropBlockScheduleHook(start_iter=0, end_iter=4, keep_prob=keep_prob)


def test_end_iter_minus_one_is_refused_pointing_to_none():
    # MODEL.DROPBLOCK.SCHEDULE.END_ITER -1 means SOLVER.MAX_ITER; the hook's spelling is None.
    # The error said only "must be an integer >= 0", not how to end at max_iter.
    with pytest.raises(ValueError, match=r"got -1: end_iter=None ends the ramp at the trainer's max_iter"):
        DropBlockScheduleHook(start_iter=0, end_iter=-1)
    with pytest.raises(ValueError, match=r"end_iter must be an integer >= 0, got -2"):
        DropBlockScheduleHook(start_iter=0, end_iter=-2)


def test_hook_from_a_config_with_dropblock_on_refuses_a_model_without_regularizers():
    # A stock detectron2 model ignores MODEL.DROPBLOCK: training it would silently run
    # without DropBlock. The error comes before the first step.
    cfg = small_retinanet_cfg()
    cfg.MODEL.DROPBLOCK.RESNET.ENABLED = True
    cfg.MODEL.DROPBLOCK.DROP_PATH_RATE = 0.1
    cfg.SOLVER.MAX_ITER = 3

    class Stock(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(3, 4, 3)
            self.steps = 0

        def forward(self, images):
            self.steps += 1
            return {"loss": self.conv(images).pow(2).mean()}

    model = Stock()
    trainer = SimpleTrainer(model, _data(), torch.optim.SGD(model.parameters(), lr=0.01))
    trainer.register_hooks([DropBlockScheduleHook.from_config(cfg)])
    match = r"MODEL\.DROPBLOCK\.RESNET\.ENABLED, MODEL\.DROPBLOCK\.DROP_PATH_RATE is on.*no DropBlock"
    with pytest.raises(ValueError, match=match):
        trainer.train(0, 3)
    assert model.steps == 0
    # The same config with a model that has regularizers trains.
    model = TinyModel()
    trainer = SimpleTrainer(model, _data(), torch.optim.SGD(model.parameters(), lr=0.01))
    trainer.register_hooks([DropBlockScheduleHook.from_config(cfg)])
    trainer.train(0, 3)
    assert trainer.iter == 3  # detectron2 leaves iter one past the last step


def test_the_refusal_of_a_stock_model_names_the_dropblock_counterpart_of_its_configs_component():
    # A config naming detectron2's own backbone: the error says which of ours to name instead.
    cfg = small_retinanet_cfg()
    cfg.MODEL.BACKBONE.NAME = "build_retinanet_resnet_fpn_backbone"
    cfg.MODEL.DROPBLOCK.RESNET.ENABLED = True
    cfg.SOLVER.MAX_ITER = 3
    model = Baseline()
    trainer = SimpleTrainer(model, _data(), torch.optim.SGD(model.parameters(), lr=0.01))
    trainer.register_hooks([DropBlockScheduleHook.from_config(cfg)])
    with pytest.raises(ValueError, match=r"RESNET\.ENABLED is on, .*use dropblock-det's counterpart of "
                                         r"'build_retinanet_resnet_fpn_backbone': MODEL\.BACKBONE\.NAME "
                                         r"'build_dropblock_retinanet_resnet_fpn_backbone'"):
        trainer.train(0, 3)


def test_hook_from_a_config_warns_naming_a_location_that_is_on_but_has_no_dropblock():
    # In a trainer of the user's own, a stock RetinaNet beside dropblock-det's backbone has
    # DropBlock in the ResNet but ignores MODEL.DROPBLOCK.HEAD: the run would train without
    # it there, unannounced (the hook only refused a model with no regularizer at all).
    from detectron2.modeling import build_model

    cfg = small_retinanet_cfg()
    cfg.MODEL.META_ARCHITECTURE = "RetinaNet"
    cfg.MODEL.BACKBONE.NAME = "build_dropblock_retinanet_resnet_fpn_backbone"
    cfg.MODEL.DROPBLOCK.RESNET.ENABLED = True
    cfg.MODEL.DROPBLOCK.HEAD.ENABLED = True
    cfg.SOLVER.MAX_ITER = 3

    def warnings_before_train(cfg):
        model = build_model(cfg)
        trainer = SimpleTrainer(model, _data(), torch.optim.SGD(model.parameters(), lr=0.01))
        hook = DropBlockScheduleHook.from_config(cfg)
        trainer.register_hooks([hook])
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            hook.before_train()
        return [str(w.message) for w in caught if "DropBlockScheduleHook" in str(w.message)]

    (message,) = warnings_before_train(cfg)
    assert message.startswith("DropBlockScheduleHook: MODEL.DROPBLOCK.HEAD.ENABLED=True, but the model built from "
                              "MODEL.META_ARCHITECTURE='RetinaNet'")
    assert "'DropBlockRetinaNet'" in message  # the component that places it
    cfg.MODEL.META_ARCHITECTURE = "DropBlockRetinaNet"
    assert warnings_before_train(cfg) == []


def test_hook_from_a_lazy_config_is_refused_naming_what_to_use():
    # omegaconf's "Missing key MODEL" said neither what was wrong nor what to do.
    from detectron2.config import LazyConfig

    cfg = LazyConfig.load(str(CONFIGS / "Synthetic" / "retinanet_R18_GN_dropblock_res45_kp0.9_b3.py"))
    with pytest.raises(TypeError, match=r"takes a yacs config .* got a DictConfig; .*DropBlockScheduleHook\(start_iter, "
                                        r"end_iter\)"):
        DropBlockScheduleHook.from_config(cfg)


def test_hook_warns_when_the_trainer_runs_past_its_configs_max_iter():
    # DefaultTrainer rescales SOLVER.MAX_ITER for SOLVER.REFERENCE_WORLD_SIZE; a hook built
    # from the unscaled config would end the ramp early.
    cfg = small_retinanet_cfg()
    cfg.SOLVER.MAX_ITER = 3
    # Fewer iterations too: with SOLVER.REFERENCE_WORLD_SIZE below the world size
    # DefaultTrainer shortens the run, and the ramp would never reach the target.
    for max_iter, warns in ((3, False), (6, True), (2, True)):
        model = TinyModel()
        trainer = SimpleTrainer(model, _data(), torch.optim.SGD(model.parameters(), lr=0.01))
        trainer.register_hooks([DropBlockScheduleHook.from_config(cfg)])
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            trainer.train(0, max_iter)
        messages = [str(w.message) for w in caught if "DropBlockScheduleHook" in str(w.message)]
        assert bool(messages) == warns, messages
        if warns:
            assert f"SOLVER.MAX_ITER=3, the trainer runs to {max_iter}" in messages[0]
            assert "from_config(trainer.cfg)" in messages[0]


@pytest.mark.parametrize("schedule", [
    dict(start_iter=9),  # end_iter None: a step to the target at max_iter, never trained
    dict(start_iter=8),  # the last iteration trained, 8, is the ramp's start: still 1.0
    dict(start_iter=20, end_iter=30, keep_prob=0.9),  # an explicit end: the start was not checked
])
def test_a_ramp_that_starts_at_or_after_max_iter_is_refused_before_the_first_step(schedule):
    # Iterations 0..8 would all run at keep_prob 1.0: the run would train without DropBlock
    # (refused as the yacs check refuses such a SCHEDULE.START_ITER).
    model = TinyModel()
    before = model.conv.weight.detach().clone()
    trainer = SimpleTrainer(model, _data(), torch.optim.SGD(model.parameters(), lr=0.01))
    trainer.register_hooks([DropBlockScheduleHook(**schedule)])
    start = schedule["start_iter"]
    with pytest.raises(ValueError, match=rf"start_iter={start} with the trainer's max_iter=9: keep_prob would "
                                         r"stay 1\.0 through the last iteration, 8"):
        trainer.train(0, 9)
    assert torch.equal(model.conv.weight, before)  # no step was taken


def test_a_lazy_config_whose_ramp_starts_after_train_max_iter_is_refused_before_data_loading():
    # README: the LazyConfig tool checks train.dropblock_schedule's start against train.max_iter;
    # with an explicit end_iter it did not, and the run trained at keep_prob 1.0 throughout.
    from conftest import CONFIGS
    from dropblock_det.engine.lazy_config_checks import check_lazy_config_before_run, load_lazy_config

    for opts in (["train.dropblock_schedule.start_iter=10"],
                 ["train.dropblock_schedule.start_iter=20", "train.dropblock_schedule.end_iter=30"]):
        cfg = load_lazy_config(str(CONFIGS / "Synthetic/retinanet_R18_GN_dropblock_res45_kp0.9_b3.py"),
                               ["train.max_iter=10", *opts])
        with pytest.raises(ValueError, match=r"train\.dropblock_schedule with train\.max_iter=10: .*start_iter="):
            check_lazy_config_before_run(cfg, check_files=False)


def test_an_end_iter_after_max_iter_warns_with_the_keep_prob_the_run_reaches():
    # As MODEL.DROPBLOCK.SCHEDULE.END_ITER after SOLVER.MAX_ITER does for a yacs config.
    # keep_prob None (a LazyConfig's hook): the lowest target, 0.9, as it records.
    for keep_prob in (0.9, None):
        model = TinyModel()
        trainer = SimpleTrainer(model, _data(), torch.optim.SGD(model.parameters(), lr=0.01))
        trainer.register_hooks([DropBlockScheduleHook(start_iter=0, end_iter=30, keep_prob=keep_prob)])
        with pytest.warns(UserWarning, match=r"end_iter=30 is after the trainer's max_iter=9: "
                                             r"keep_prob reaches only 0\.9733 instead of 0\.9 ") as shown:
            trainer.train(0, 9)
        assert model.res5_dropblock.keep_prob == pytest.approx(1 - 0.1 * 8 / 30)
        # Shown as from the hook: with stacklevel 2 it was from detectron2/engine/train_loop.py,
        # before_train's caller, and read as detectron2's own warning.
        (ramp,) = [w for w in shown if "keep_prob reaches only" in str(w.message)]
        assert Path(ramp.filename).parts[-3:] == ("dropblock_det", "engine", "hooks.py"), ramp.filename
    # From a config the config's own check warns (naming the key), the hook not again.
    cfg = small_retinanet_cfg()
    cfg.MODEL.DROPBLOCK.HEAD.ENABLED = True
    cfg.SOLVER.MAX_ITER = 9
    cfg.MODEL.DROPBLOCK.SCHEDULE.END_ITER = 30
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        hook = DropBlockScheduleHook.from_config(cfg)
        model = TinyModel()
        trainer = SimpleTrainer(model, _data(), torch.optim.SGD(model.parameters(), lr=0.01))
        trainer.register_hooks([hook])
        trainer.train(0, 9)
    messages = [str(w.message) for w in caught if "after" in str(w.message) and "30" in str(w.message)]
    assert len(messages) == 1 and "MODEL.DROPBLOCK.SCHEDULE.END_ITER=30" in messages[0], messages


def test_a_config_with_drop_path_alone_records_the_drop_path_keep_prob_not_keep_prob():
    # MODEL.DROPBLOCK.KEEP_PROB (0.9 by default) is no regularizer's target when only
    # DROP_PATH_RATE is on: metrics.json showed a DropBlock ramp to 0.9 while every
    # regularizer ramped to 0.8.
    from detectron2.modeling import build_model

    from dropblock_det.layers import iter_regularizers

    cfg = small_retinanet_cfg("Base-RetinaNet-Scratch-DropBlock.yaml")
    db = cfg.MODEL.DROPBLOCK
    for location in (db.RESNET, db.FPN, db.HEAD, db.SEM_SEG_HEAD):
        location.ENABLED = False
    db.DROP_PATH_RATE = 0.2
    cfg.SOLVER.MAX_ITER = 3
    model = build_model(cfg)
    assert {type(m).__name__ for _, m in iter_regularizers(model)} == {"DropPath"}
    seen = []

    class Record(HookBase):
        def before_step(self):
            seen.append({m.keep_prob for _, m in iter_regularizers(model)})

    data = (detection_batch(seed=i) for i in itertools.count())
    trainer = SimpleTrainer(model, data, torch.optim.SGD(model.parameters(), lr=0.0))
    trainer.register_hooks([DropBlockScheduleHook.from_config(cfg), Record()])
    trainer.train(0, 3)
    recorded = [v for v, _ in trainer.storage.history("dropblock/keep_prob").values()]
    assert [len(values) for values in seen] == [1, 1, 1]
    assert recorded == pytest.approx([next(iter(values)) for values in seen]) == [1.0, 1 - 0.2 / 3, 1 - 0.4 / 3]


class Baseline(nn.Module):
    """A model without regularizers (a baseline config)."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3)

    def forward(self, images):
        return {"loss": self.conv(images).pow(2).mean()}


def test_a_model_without_regularizers_trains_whatever_the_ramps_start():
    # The start-after-max_iter refusal is for a run that would lose its DropBlock; a baseline
    # has none to lose (e.g. a shared hook list used for the baseline run of a comparison).
    for schedule in (dict(start_iter=20), dict(start_iter=20, end_iter=30)):
        model = Baseline()
        trainer = SimpleTrainer(model, _data(), torch.optim.SGD(model.parameters(), lr=0.01))
        trainer.register_hooks([DropBlockScheduleHook(**schedule)])
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            trainer.train(0, 3)
        assert trainer.iter == 3 and "dropblock/keep_prob" not in trainer.storage.histories()
        # nor an end_iter-after-max_iter warning about a keep_prob no module has
        assert [str(w.message) for w in caught if "DropBlockScheduleHook" in str(w.message)] == [], schedule
    # So too from a baseline yacs config shortened below the START_ITER it inherits.
    cfg = small_retinanet_cfg()  # a stock RetinaNet config: no DropBlock location on
    cfg.SOLVER.MAX_ITER, cfg.MODEL.DROPBLOCK.SCHEDULE.START_ITER = 3, 20
    model = Baseline()
    trainer = SimpleTrainer(model, _data(), torch.optim.SGD(model.parameters(), lr=0.01))
    trainer.register_hooks([DropBlockScheduleHook.from_config(cfg)])
    trainer.train(0, 3)
    assert trainer.iter == 3 and "dropblock/keep_prob" not in trainer.storage.histories()


def test_a_one_iteration_run_is_refused_as_it_would_train_at_keep_prob_one():
    # max_iter 1 trains iteration 0 only, where a ramp starting at 0 is still at 1.0.
    hook = DropBlockScheduleHook(start_iter=0)
    with pytest.raises(ValueError, match=r"start_iter=0 with the trainer's max_iter=1: keep_prob would stay 1\.0"):
        hook.schedule_for(1, TinyModel())
    assert hook.schedule_for(2, TinyModel()).end_iter == 2


def test_an_end_iter_at_max_iter_does_not_warn():
    # The ramp reaches its target exactly as the run ends: nothing to warn about.
    model = TinyModel()
    trainer = SimpleTrainer(model, _data(), torch.optim.SGD(model.parameters(), lr=0.01))
    trainer.register_hooks([DropBlockScheduleHook(start_iter=0, end_iter=9, keep_prob=0.9)])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        trainer.train(0, 9)
    assert [str(w.message) for w in caught if "DropBlockScheduleHook" in str(w.message)] == []
    assert model.res5_dropblock.keep_prob == pytest.approx(1 - 0.1 * 8 / 9)


def test_a_default_end_without_a_trainer_max_iter_is_refused_naming_end_iter():
    # A trainer of the user's own may have no max_iter: say what to give, not a TypeError.
    with pytest.raises(ValueError, match=r"end_iter=None\) ends the ramp at the trainer's max_iter, which this "
                                         r"trainer does not have: give end_iter"):
        DropBlockScheduleHook(start_iter=0).schedule_for(None, TinyModel())
    explicit = DropBlockScheduleHook(start_iter=0, end_iter=5).schedule_for(None, TinyModel())
    assert (explicit.start_iter, explicit.end_iter) == (0, 5)


def test_the_keep_prob_recorded_by_default_is_the_lowest_target_not_a_probed_keep_prob():
    # keep_prob None (a LazyConfig's hook) records the ramp to the lowest target_keep_prob,
    # not to the current keep_prob a robustness probe (set_keep_prob) left in the modules.
    from dropblock_det.layers import set_keep_prob

    model = TinyModel()
    set_keep_prob(model, 0.5)
    trainer = SimpleTrainer(model, _data(), torch.optim.SGD(model.parameters(), lr=0.01))
    trainer.register_hooks([DropBlockScheduleHook(start_iter=2, end_iter=6)])
    trainer.train(0, 9)
    history = trainer.storage.history("dropblock/keep_prob").values()
    assert [v for v, _ in history] == pytest.approx([_expected(i)[1] for i in range(9)])
    assert (model.res4_dropblock.keep_prob, model.res5_dropblock.keep_prob) == pytest.approx((0.975, 0.9))


def test_from_a_config_with_drop_path_beside_a_dropblock_location_records_keep_prob():
    # Only with DROP_PATH_RATE alone is KEEP_PROB no regularizer's target; beside a DropBlock
    # location metrics.json shows the ramp to KEEP_PROB, not to 1 - DROP_PATH_RATE.
    cfg = small_retinanet_cfg()
    cfg.MODEL.DROPBLOCK.KEEP_PROB, cfg.MODEL.DROPBLOCK.DROP_PATH_RATE = 0.85, 0.2
    for location in ("RESNET", "FPN", "HEAD", "SEM_SEG_HEAD"):
        cfg.MODEL.DROPBLOCK[location].ENABLED = True
        assert DropBlockScheduleHook.from_config(cfg).keep_prob == 0.85, location
        cfg.MODEL.DROPBLOCK[location].ENABLED = False
    assert DropBlockScheduleHook.from_config(cfg).keep_prob is None


# --- a training with no keep_prob ramp is said once (stop 52) --------------------------------


@pytest.mark.parametrize("with_hook", [False, True])
def test_detectron2s_loop_without_the_schedule_hook_warns_that_nothing_ramps_keep_prob(with_hook, unscheduled_warnings):
    # detectron2's own tools/lazyconfig_train_net.py builds this loop (SimpleTrainer and its
    # own hooks) and runs no train.dropblock_schedule: the model trained at its targets from
    # the first step, and nothing said so. With the hook, the ramp sets keep_prob first.
    model = TinyModel()
    trainer = SimpleTrainer(model, _data(), torch.optim.SGD(model.parameters(), lr=0.01))
    if with_hook:
        trainer.register_hooks([DropBlockScheduleHook(0, 4)])
    trainer.train(0, 4)
    messages = unscheduled_warnings()
    assert len(messages) == (0 if with_hook else 1)
    if not with_hook:  # the first regularizer to run, res4's at its scaled target
        assert messages[0].startswith("DropBlock2d trains at keep_prob 0.975 from its first step")


def test_a_lazy_config_without_a_ramp_asked_for_trains_at_the_targets_without_the_warning(unscheduled_warnings):
    # train.dropblock_schedule=null asks for the targets throughout: no ramp is missing.
    from conftest import lazy_cfg
    from dropblock_det.engine.lazy_config_checks import lazy_schedule_hook

    model = TinyModel().train()
    cfg = lazy_cfg(CONFIGS / "Synthetic" / "retinanet_R18_GN_dropblock_res45_kp0.9_b3.py",
                   "train.dropblock_schedule=null")
    assert lazy_schedule_hook(cfg, model) is None
    model(torch.randn(2, 3, 8, 8))
    assert unscheduled_warnings() == []
    assert (model.res4_dropblock.keep_prob, model.res5_dropblock.keep_prob) == (0.975, 0.9)


# --- own-trainer journey (stop 52) ---


def _warnings_of_training(model, hooks, phrase):
    """The messages holding `phrase` of the warnings 4 steps of detectron2's SimpleTrainer with
    `hooks` give on `model`."""
    trainer = SimpleTrainer(model, _data(), torch.optim.SGD(model.parameters(), lr=0.01))
    trainer.register_hooks(hooks)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        trainer.train(0, 4)
    return [str(w.message) for w in caught if phrase in str(w.message)]


@pytest.mark.parametrize("keep_prob, warns", [(0.5, True), (0.9, False), (0.975, False), (None, False)])
def test_a_keep_prob_none_of_the_targets_is_said_to_be_only_the_recorded_value(keep_prob, warns):
    # DropBlockScheduleHook(start_iter, end_iter, keep_prob), as the README's "without a
    # config": keep_prob=0.5 logged a ramp to 0.5 in metrics.json while every regularizer
    # ramped to its own target (0.9, 0.975), without a word.
    model = TinyModel()
    said = _warnings_of_training(model, [DropBlockScheduleHook(0, 4, keep_prob)], "only the value recorded")
    assert len(said) == (1 if warns else 0)
    if warns:
        assert "keep_prob=0.5" in said[0] and "0.9, 0.975" in said[0]
    # The targets, as built, are what the regularizers reach in any case.
    assert (model.res4_dropblock.keep_prob, model.res5_dropblock.keep_prob) == pytest.approx((0.98125, 0.925))


def test_from_a_config_whose_stages_all_scale_keep_prob_does_not_warn_of_the_recorded_value():
    # From a config KEEP_PROB is the recorded value even where every stage scales it.
    model = TinyModel()
    cfg = small_retinanet_cfg()
    cfg.MODEL.DROPBLOCK.RESNET.ENABLED = True
    cfg.MODEL.DROPBLOCK.KEEP_PROB = 0.8
    hook = DropBlockScheduleHook.from_config(cfg, model=model)
    trainer = SimpleTrainer(model, _data(), torch.optim.SGD(model.parameters(), lr=0.01))
    trainer.max_iter = cfg.SOLVER.MAX_ITER
    hook.trainer = trainer
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        hook.before_train()
    assert not [w for w in caught if "only the value recorded" in str(w.message)]


@pytest.mark.parametrize("second", [None, (0, 3), (0, 6)])
def test_a_second_schedule_hook_on_the_same_model_is_said_to_override_the_first(second):
    # A DropBlockTrainer (which registers its own hook from the config) given the README's
    # DropBlockScheduleHook as well: the later hook's ramp was trained, the config's
    # MODEL.DROPBLOCK.SCHEDULE ignored, without a word.
    hooks = [DropBlockScheduleHook(0, 6)] + ([DropBlockScheduleHook(*second)] if second else [])
    said = _warnings_of_training(TinyModel(), hooks, "another DropBlockScheduleHook")
    assert len(said) == (1 if second else 0)
    if second:
        assert f"end_iter=6)), registered before this one (LinearKeepProbSchedule(start_iter=0, end_iter={second[1]})" \
            in said[0]


def test_schedule_hooks_on_two_models_do_not_warn_of_each_other():
    first, other = TinyModel(), TinyModel()
    hooks = [DropBlockScheduleHook(0, 4), DropBlockScheduleHook(0, 2, model=other)]
    assert _warnings_of_training(first, hooks, "another DropBlockScheduleHook") == []
    assert other.res5_dropblock.keep_prob == 0.9 and first.res5_dropblock.keep_prob == pytest.approx(0.925)


# --- API bad-input 54 ---


@pytest.mark.parametrize("model", ["model", 3, nn.Sequential], ids=["str", "int", "a class"])
def test_hook_names_a_model_that_is_not_a_module_when_built(model):
    # Was accepted, and unwrap_model's TypeError came only at before_train.
    with pytest.raises(ValueError, match=r"model must be an nn.Module, a wrapper of one with `.module`, or None"):
        DropBlockScheduleHook(0, 10, 0.9, model=model)


def test_hook_still_takes_a_wrapper_with_module_as_its_model():
    class Wrapper:
        module = nn.Sequential(DropBlock2d(0.9, 3))

    assert DropBlockScheduleHook(0, 10, 0.9, model=Wrapper())._model is not None


# --- mutation 58D ---


def test_schedule_for_without_a_model_refuses_a_ramp_that_starts_at_the_last_iteration():
    # check_lazy_config_before_run asks schedule_for(train.max_iter) with no model where the
    # config is checked before one is built: no model is no baseline, the ramp is judged.
    with pytest.raises(ValueError, match=r"start_iter=8 with the trainer's max_iter=9: keep_prob would stay 1\.0"):
        DropBlockScheduleHook(start_iter=8).schedule_for(9)
    assert DropBlockScheduleHook(start_iter=7).schedule_for(9).end_iter == 9


def test_a_real_distributed_data_parallel_model_is_unwrapped_and_scheduled(tmp_path):
    # FakeDDP is no nn.Module; torch's DistributedDataParallel is one, whose regularizers
    # would be found under "module." names: unwrap_model must still return the model inside
    # (the hook compares it with another hook's model and checks the placement by name).
    import torch.distributed as dist
    from torch.nn.parallel import DistributedDataParallel

    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'store'}", rank=0, world_size=1)
    try:
        plain, _ = _run(0, 9)
        model = TinyModel()
        wrapped = DistributedDataParallel(model)
        assert unwrap_model(wrapped) is model
        ddp, _ = _run(0, 9, wrap=DistributedDataParallel)
        assert ddp == plain
    finally:
        dist.destroy_process_group()
