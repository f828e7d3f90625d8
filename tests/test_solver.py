"""dropblock_det.solver: the warm-up + poly LR schedule of the segmentation configs."""
import math
import re

import pytest
import torch
from detectron2.config import get_cfg
from detectron2.engine import hooks

from dropblock_det import add_dropblock_config
from dropblock_det.modeling.deeplab import add_dropblock_deeplab_config
from dropblock_det.solver import WarmupPolyLR, build_lr_scheduler


def _optimizer(lr: float = 0.1) -> torch.optim.Optimizer:
    return torch.optim.SGD([torch.nn.Parameter(torch.zeros(2))], lr=lr, momentum=0.9)


def _lrs(scheduler, n: int):
    out = []
    for _ in range(n):
        out.append(scheduler.optimizer.param_groups[0]["lr"])
        scheduler.optimizer.step()
        scheduler.step()
    return out


def _seg_cfg(**solver):
    cfg = get_cfg()
    add_dropblock_config(cfg)
    add_dropblock_deeplab_config(cfg)
    cfg.SOLVER.LR_SCHEDULER_NAME = "WarmupPolyLR"
    for key, value in solver.items():
        cfg.SOLVER[key] = value
    return cfg


def test_poly_lr_follows_warmup_then_poly_decay():
    base_lr, max_iter, warmup_iters, warmup_factor, power = 0.1, 20, 5, 0.01, 0.9
    scheduler = WarmupPolyLR(
        _optimizer(base_lr), max_iter, warmup_factor=warmup_factor, warmup_iters=warmup_iters,
        warmup_method="linear", power=power,
    )
    lrs = _lrs(scheduler, max_iter)
    for t, lr in enumerate(lrs):
        warm = 1.0 if t >= warmup_iters else warmup_factor + (1 - warmup_factor) * t / warmup_iters
        assert lr == pytest.approx(base_lr * warm * (1 - t / max_iter) ** power, rel=1e-9), t
    assert lrs[0] == pytest.approx(base_lr * warmup_factor)
    assert all(a > b for a, b in zip(lrs[warmup_iters:], lrs[warmup_iters + 1:]))


def test_poly_lr_constant_ending_is_a_floor_after_warmup():
    scheduler = WarmupPolyLR(_optimizer(1.0), 10, warmup_iters=0, power=1.0, constant_ending=0.25)
    lrs = _lrs(scheduler, 12)
    assert lrs[:8] == pytest.approx([1.0, 0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3])
    assert lrs[8:] == pytest.approx([0.25] * 4)


def test_poly_lr_past_max_iter_stays_at_zero_instead_of_failing():
    scheduler = WarmupPolyLR(_optimizer(1.0), 4, warmup_iters=0, power=0.9)
    lrs = _lrs(scheduler, 7)
    assert lrs[4:] == [0.0, 0.0, 0.0]
    assert all(isinstance(lr, float) and not math.isnan(lr) for lr in lrs)


def test_lr_scheduler_hook_checkpoints_the_schedule_and_resume_continues_it():
    """detectron2 v0.6's hooks.LRScheduler only saves `_LRScheduler` instances; main saves
    any LRScheduler. Resuming from the saved state must give the same LRs."""
    assert issubclass(WarmupPolyLR, torch.optim.lr_scheduler._LRScheduler)
    cfg = _seg_cfg(MAX_ITER=30, WARMUP_ITERS=4, BASE_LR=0.2)
    optimizer = _optimizer(0.2)
    scheduler = build_lr_scheduler(cfg, optimizer)
    hook = hooks.LRScheduler(optimizer, scheduler)
    _lrs(scheduler, 11)
    state = hook.state_dict()
    optimizer_state = optimizer.state_dict()  # the checkpointer saves both
    assert state and state["last_epoch"] == 11
    expected = _lrs(scheduler, 5)

    resumed_optimizer = _optimizer(0.2)
    resumed = build_lr_scheduler(cfg, resumed_optimizer)
    resumed_optimizer.load_state_dict(optimizer_state)
    hooks.LRScheduler(resumed_optimizer, resumed).load_state_dict(state)
    assert _lrs(resumed, 5) == pytest.approx(expected)


def test_a_run_continued_with_a_larger_max_iter_follows_the_new_schedule():
    # The trainer asks for a larger SOLVER.MAX_ITER to continue a finished run; the saved
    # schedule must not bring the old length back (lr 0 from the old end on).
    optimizer = _optimizer(0.2)
    scheduler = build_lr_scheduler(_seg_cfg(MAX_ITER=10, WARMUP_ITERS=2, BASE_LR=0.2), optimizer)
    hook = hooks.LRScheduler(optimizer, scheduler)
    _lrs(scheduler, 10)
    state = hook.state_dict()
    assert set(state) == {"base_lrs", "last_epoch"}

    longer = _seg_cfg(MAX_ITER=20, WARMUP_ITERS=2, BASE_LR=0.2)
    resumed_optimizer = _optimizer(0.2)
    resumed = build_lr_scheduler(longer, resumed_optimizer)
    hooks.LRScheduler(resumed_optimizer, resumed).load_state_dict(state)
    resumed_optimizer.load_state_dict(optimizer.state_dict())  # after the hooks, as the trainer does
    fresh = build_lr_scheduler(longer, _optimizer(0.2))
    expected = _lrs(fresh, 15)[10:]
    # The first iteration takes the lr the optimizer was saved with (detectron2's own
    # schedulers do too); every later one the longer schedule's.
    assert _lrs(resumed, 5)[1:] == pytest.approx(expected[1:]) and min(expected) > 0


def test_build_lr_scheduler_reads_the_poly_keys():
    cfg = _seg_cfg(MAX_ITER=100, WARMUP_ITERS=0, POLY_LR_POWER=2.0, POLY_LR_CONSTANT_ENDING=0.0)
    scheduler = build_lr_scheduler(cfg, _optimizer(1.0))
    assert isinstance(scheduler, WarmupPolyLR)
    lrs = _lrs(scheduler, 51)
    assert lrs[50] == pytest.approx(0.25)  # (1 - 50/100) ** 2


def test_other_scheduler_names_are_delegated_to_detectron2():
    cfg = _seg_cfg(MAX_ITER=10, WARMUP_ITERS=0, STEPS=(5,), GAMMA=0.1)
    cfg.SOLVER.LR_SCHEDULER_NAME = "WarmupMultiStepLR"
    scheduler = build_lr_scheduler(cfg, _optimizer(1.0))
    assert not isinstance(scheduler, WarmupPolyLR)
    lrs = _lrs(scheduler, 7)
    assert lrs[:5] == pytest.approx([1.0] * 5) and lrs[5:] == pytest.approx([0.1] * 2)


def test_poly_keys_missing_from_config_name_the_setup_function():
    cfg = get_cfg()
    cfg.SOLVER.LR_SCHEDULER_NAME = "WarmupPolyLR"
    with pytest.raises(KeyError, match="SOLVER.POLY_LR_POWER.*add_dropblock_deeplab_config"):
        build_lr_scheduler(cfg, _optimizer())


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(max_iters=0), "SOLVER.MAX_ITER"),
        (dict(max_iters=10, warmup_method="cosine"), "SOLVER.WARMUP_METHOD"),
        (dict(max_iters=10, power=-1.0), "SOLVER.POLY_LR_POWER"),
        (dict(max_iters=10, constant_ending=2.0), "SOLVER.POLY_LR_CONSTANT_ENDING"),
    ],
)
def test_impossible_poly_settings_name_the_key(kwargs, message):
    with pytest.raises(ValueError, match=message):
        WarmupPolyLR(_optimizer(), **kwargs)


def test_deeplab_config_setup_is_idempotent_and_keeps_merged_values():
    cfg = _seg_cfg(POLY_LR_POWER=2.5)
    cfg.MODEL.SEM_SEG_HEAD.PROJECT_CHANNELS = [64]
    add_dropblock_deeplab_config(cfg)
    assert cfg.SOLVER.POLY_LR_POWER == 2.5
    assert cfg.MODEL.SEM_SEG_HEAD.PROJECT_CHANNELS == [64]
    assert cfg.MODEL.RESNETS.RES5_MULTI_GRID == [1, 2, 4]


def test_constant_warmup_holds_the_factor_and_the_floor_waits_for_the_warmup_to_end():
    # detectron2's WarmupPolyLR: constant_ending floors the poly decay only once warm-up is over.
    scheduler = WarmupPolyLR(_optimizer(1.0), 10, warmup_factor=0.1, warmup_iters=7,
                             warmup_method="constant", power=1.0, constant_ending=0.5)
    lrs = _lrs(scheduler, 10)
    # factor x poly during warm-up, even where poly (0.4 at iteration 6) is below the floor
    assert lrs[:7] == pytest.approx([0.1, 0.09, 0.08, 0.07, 0.06, 0.05, 0.04])
    assert lrs[7:] == pytest.approx([0.5, 0.5, 0.5])


def test_power_zero_is_a_constant_lr_after_warmup():
    scheduler = WarmupPolyLR(_optimizer(1.0), 5, warmup_iters=0, power=0.0)
    assert _lrs(scheduler, 5) == pytest.approx([1.0] * 5)


@pytest.mark.parametrize("max_iter, warmup_iters, method, factor, power, ending", [
    (1000, 100, "linear", 0.001, 0.9, 0.0),
    (1000, 100, "constant", 0.25, 0.9, 0.0),
    (1000, 100, "linear", 0.1, 2.0, 0.2),  # the floor waits for the warm-up's end
    (997, 333, "linear", 0.001, 0.9, 0.05),
    (100, 0, "linear", 0.001, 0.9, 0.3),
])
def test_warmup_poly_param_scheduler_gives_warmup_poly_lr_at_every_iteration(
        max_iter, warmup_iters, method, factor, power, ending):
    # As detectron2's LRScheduler hook runs it (LRMultiplier over max_iter), past the end too.
    from detectron2.solver import LRMultiplier

    from dropblock_det.solver import WarmupPolyParamScheduler

    ours, theirs = (torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.01) for _ in range(2))
    lazy = LRMultiplier(ours, WarmupPolyParamScheduler(
        warmup_length=warmup_iters / max_iter, warmup_factor=factor, warmup_method=method, power=power,
        constant_ending=ending), max_iter)
    yacs = WarmupPolyLR(theirs, max_iter, warmup_factor=factor, warmup_iters=warmup_iters,
                        warmup_method=method, power=power, constant_ending=ending)
    for iteration in range(max_iter + 20):
        assert ours.param_groups[0]["lr"] == pytest.approx(theirs.param_groups[0]["lr"], rel=1e-12, abs=1e-15), iteration
        lazy.step()
        yacs.step()


@pytest.mark.parametrize("kwargs, message", [
    # A LazyConfig's lr_multiplier: its errors name its arguments, not the yacs keys.
    (dict(warmup_method="cosine"), r"^warmup_method must be one of"),
    (dict(power=-1.0), r"^power must be >= 0, got -1\.0"),
    (dict(constant_ending=1.5), r"^constant_ending must be in \[0, 1\]"),
    (dict(warmup_length=1.5), "warmup_length must be in"),
    # A LazyConfig override "lr_multiplier.warmup_length=1000/330000" stays a string: it was
    # "TypeError: '<=' not supported between instances of 'float' and 'str'", naming nothing.
    (dict(warmup_length="1000/330000"), r"^warmup_length must be in \[0, 1\] .*got '1000/330000'$"),
    (dict(warmup_length=None), r"^warmup_length must be in .*got None$"),
    (dict(warmup_length=True), r"^warmup_length must be in .*got True$"),  # not the whole training
])
def test_warmup_poly_param_scheduler_refuses_what_warmup_poly_lr_refuses(kwargs, message):
    from dropblock_det.solver import WarmupPolyParamScheduler

    with pytest.raises(ValueError, match=message):
        WarmupPolyParamScheduler(**kwargs)


@pytest.mark.parametrize("key, value", [
    ("POLY_LR_POWER", float("nan")),  # passed `power < 0`: lr NaN from the second iteration on
    ("POLY_LR_POWER", float("inf")),  # lr 0 from the second iteration on: a run that trains nothing
    ("POLY_LR_POWER", "0.9"),  # was a bare TypeError naming no key
    ("WARMUP_FACTOR", float("nan")),  # lr NaN through the warm-up
    ("WARMUP_FACTOR", float("inf")),
    ("WARMUP_FACTOR", -0.001),  # a negative lr: gradient ascent through the warm-up
    ("POLY_LR_CONSTANT_ENDING", "0.1"),
])
def test_a_poly_setting_giving_a_nan_zero_or_negative_lr_is_refused_naming_the_key(key, value):
    # YAML reads `.nan` and `.inf` as floats, so a config file carries them past yacs' type check.
    from dropblock_det.solver import WarmupPolyParamScheduler

    cfg = _seg_cfg(MAX_ITER=100, WARMUP_ITERS=10)
    cfg.SOLVER[key] = value
    with pytest.raises(ValueError, match=rf"^SOLVER\.{key} must be .*, got {re.escape(repr(value))}$"):
        build_lr_scheduler(cfg, _optimizer())
    argument = {"POLY_LR_POWER": "power", "WARMUP_FACTOR": "warmup_factor",
                "POLY_LR_CONSTANT_ENDING": "constant_ending"}[key]
    with pytest.raises(ValueError, match=rf"^{argument} must be .*, got {re.escape(repr(value))}$"):
        WarmupPolyParamScheduler(**{argument: value})


def test_poly_settings_at_their_limits_are_accepted():
    # power 0 (a constant lr), warm-up factor 0 (lr 0 at iteration 0 only) and above 1, ending 0 and 1.
    for power, factor, ending in [(0.0, 0.0, 0.0), (0, 2.0, 1.0), (0.9, 1.0, 1)]:
        cfg = _seg_cfg(MAX_ITER=10, WARMUP_ITERS=2, POLY_LR_POWER=power, WARMUP_FACTOR=factor,
                       POLY_LR_CONSTANT_ENDING=ending)
        lrs = _lrs(build_lr_scheduler(cfg, _optimizer(1.0)), 10)
        assert lrs[0] == pytest.approx(factor) and all(math.isfinite(lr) and lr >= 0 for lr in lrs)


def test_build_lr_scheduler_reads_the_warmup_method():
    # A constant warm-up holds WARMUP_FACTOR; linear (the default) would climb from it.
    cfg = _seg_cfg(MAX_ITER=10, WARMUP_ITERS=4, WARMUP_FACTOR=0.1, WARMUP_METHOD="constant", POLY_LR_POWER=1.0)
    lrs = _lrs(build_lr_scheduler(cfg, _optimizer(1.0)), 5)
    assert lrs == pytest.approx([0.1, 0.09, 0.08, 0.07, 0.6])


def test_warmup_factor_at_iter_refuses_an_unknown_method():
    from dropblock_det.solver import warmup_factor_at_iter

    with pytest.raises(ValueError, match=r"^SOLVER\.WARMUP_METHOD must be one of .*got 'cosine'"):
        warmup_factor_at_iter("cosine", 0, 10, 0.1)


def test_defaults_are_detectron2_deeplabs_and_the_lazy_multiplier_shares_them():
    # WarmupPolyLR stands in for detectron2's DeepLab WarmupPolyLR: a caller relying on its
    # defaults (warm-up 1000 iterations from 0.001, linear, power 0.9, no floor) gets the
    # same lr, and a LazyConfig's WarmupPolyParamScheduler, given only the warm-up's
    # length, the same schedule again.
    from detectron2.projects.deeplab.lr_scheduler import WarmupPolyLR as D2WarmupPolyLR
    from detectron2.solver import LRMultiplier

    from dropblock_det.solver import WarmupPolyParamScheduler

    max_iter = 1500
    ours, theirs, lazy = (torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.01) for _ in range(3))
    schedulers = [WarmupPolyLR(ours, max_iter), D2WarmupPolyLR(theirs, max_iter),
                  LRMultiplier(lazy, WarmupPolyParamScheduler(warmup_length=1000 / max_iter), max_iter)]
    for iteration in range(max_iter):
        lr = ours.param_groups[0]["lr"]
        assert [theirs.param_groups[0]["lr"], lazy.param_groups[0]["lr"]] == pytest.approx([lr, lr], rel=1e-12), iteration
        for scheduler in schedulers:
            scheduler.step()


def test_a_warmup_over_the_whole_training_is_accepted():
    from dropblock_det.solver import WarmupPolyParamScheduler

    # warmup_length 1.0 is in [0, 1]: halfway the linear warm-up is halfway from 0.001 to 1
    assert WarmupPolyParamScheduler(warmup_length=1.0, power=0.0)(0.5) == pytest.approx(0.5005)


def test_poly_keys_missing_from_config_name_the_first_one_missing():
    # A setup adding SOLVER.POLY_LR_POWER alone: the schedule must not fail with a bare
    # AttributeError on POLY_LR_CONSTANT_ENDING.
    cfg = get_cfg()
    cfg.SOLVER.LR_SCHEDULER_NAME = "WarmupPolyLR"
    cfg.SOLVER.POLY_LR_POWER = 0.9
    with pytest.raises(KeyError, match="needs SOLVER.POLY_LR_CONSTANT_ENDING.*add_dropblock_deeplab_config"):
        build_lr_scheduler(cfg, _optimizer())


def test_poly_lr_scales_each_param_groups_own_lr():
    # detectron2's build_optimizer gives norm and bias parameters groups of their own lr.
    weights, biases = torch.nn.Parameter(torch.zeros(2)), torch.nn.Parameter(torch.zeros(2))
    optimizer = torch.optim.SGD([{"params": [weights]}, {"params": [biases], "lr": 0.02}], lr=0.1)
    scheduler = WarmupPolyLR(optimizer, 10, warmup_iters=0, power=1.0)
    _lrs(scheduler, 5)
    assert [group["lr"] for group in optimizer.param_groups] == pytest.approx([0.05, 0.01])


def test_a_cosine_schedule_is_detectron2s():
    # The synthetic configs' SOLVER.LR_SCHEDULER_NAME: cosine from BASE_LR to 0 over MAX_ITER.
    cfg = _seg_cfg(MAX_ITER=10, WARMUP_ITERS=0)
    cfg.SOLVER.LR_SCHEDULER_NAME = "WarmupCosineLR"
    scheduler = build_lr_scheduler(cfg, _optimizer(1.0))
    assert not isinstance(scheduler, WarmupPolyLR)
    lrs = _lrs(scheduler, 10)
    assert lrs == pytest.approx([0.5 * (1 + math.cos(math.pi * t / 10)) for t in range(10)])


# --- mutation run 51: behaviour the tests above left unpinned --------------------------------


def test_a_negative_constant_ending_is_refused_not_taken_for_no_floor():
    # A floor below 0 is no floor: a typo (-0.01 for 0.01) was trained without one, silently.
    from dropblock_det.solver import WarmupPolyParamScheduler

    cfg = _seg_cfg(MAX_ITER=100, WARMUP_ITERS=10, POLY_LR_CONSTANT_ENDING=-0.01)
    with pytest.raises(ValueError, match=r"^SOLVER\.POLY_LR_CONSTANT_ENDING must be in \[0, 1\], got -0\.01$"):
        build_lr_scheduler(cfg, _optimizer())
    with pytest.raises(ValueError, match=r"^constant_ending must be in \[0, 1\], got -0\.01$"):
        WarmupPolyParamScheduler(constant_ending=-0.01)
