"""LinearKeepProbSchedule, set_keep_prob, iter_regularizers, scaled_keep_prob."""
import pytest
import torch
from torch import nn

from dropblock_det.layers import (
    DropBlock2d,
    DropPath,
    Dropout,
    LinearKeepProbSchedule,
    SpatialDropout,
    iter_regularizers,
    scaled_keep_prob,
    set_keep_prob,
)


def _model() -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(3, 4, 3),
        DropBlock2d(keep_prob=0.9, block_size=3),
        nn.Sequential(nn.ReLU(), DropBlock2d(keep_prob=scaled_keep_prob(0.9, 0.25), block_size=3)),
        DropPath(keep_prob=0.8),
    )


def test_progress_is_zero_before_start_linear_then_one_after_end():
    schedule = LinearKeepProbSchedule(start_iter=100, end_iter=300)
    assert [schedule.progress(i) for i in (0, 100, 150, 200, 299, 300, 10_000)] == [
        0.0, 0.0, 0.25, 0.5, pytest.approx(0.995), 1.0, 1.0
    ]


def test_keep_prob_ramps_linearly_from_one_to_the_target_as_the_official_code():
    schedule = LinearKeepProbSchedule(start_iter=0, end_iter=1000)
    for step in (0, 1, 250, 999, 1000, 5000):
        official = 1 - (min(step, 1000) / 1000) * (1 - 0.9)  # kp_t = 1 - (t / T) * (1 - kp)
        assert schedule.keep_prob(0.9, step) == pytest.approx(official, abs=1e-12)


@pytest.mark.parametrize("target", [0.1, 0.2, 0.3, 0.9, 0.975])
def test_keep_prob_equals_the_target_exactly_from_end_iter(target):
    # "end_iter: first iteration at which keep_prob equals the target": exactly, not
    # 1 - (1 - target), which is 0.30000000000000004 for 0.3.
    schedule = LinearKeepProbSchedule(start_iter=0, end_iter=10)
    assert schedule.keep_prob(target, 10) == target and schedule.keep_prob(target, 11) == target
    model = nn.Sequential(DropBlock2d(target, 3), DropPath(target))
    schedule.apply(model, 10)
    assert [m.keep_prob for _, m in iter_regularizers(model)] == [target, target]


def test_start_equal_to_end_is_a_step():
    schedule = LinearKeepProbSchedule(start_iter=50, end_iter=50)
    assert schedule.keep_prob(0.9, 49) == 1.0
    assert schedule.keep_prob(0.9, 50) == pytest.approx(0.9)


def test_apply_sets_each_regularizer_from_its_own_target():
    model = _model()
    schedule = LinearKeepProbSchedule(0, 100)
    schedule.apply(model, 50)
    values = {name: m.keep_prob for name, m in iter_regularizers(model)}
    assert values == {
        "1": pytest.approx(0.95),
        "2.1": pytest.approx(1 - 0.5 * 0.025),
        "3": pytest.approx(0.9),
    }
    # targets are untouched
    assert [m.target_keep_prob for _, m in iter_regularizers(model)] == [
        0.9, pytest.approx(0.975), 0.8
    ]


def test_value_depends_only_on_the_iteration_so_resuming_matches_a_continuous_run():
    continuous, resumed = _model(), _model()
    schedule = LinearKeepProbSchedule(10, 90)
    for step in range(0, 60):
        schedule.apply(continuous, step)
    # a fresh process resuming at iteration 59 (nothing carried over)
    LinearKeepProbSchedule(10, 90).apply(resumed, 59)
    assert [m.keep_prob for _, m in iter_regularizers(continuous)] == [
        m.keep_prob for _, m in iter_regularizers(resumed)
    ]


def test_apply_at_start_makes_the_model_deterministic_in_training():
    model = _model().train()
    LinearKeepProbSchedule(0, 10).apply(model, 0)
    x = torch.randn(2, 3, 12, 12)
    assert torch.equal(model(x), model(x))


def test_set_keep_prob_sets_every_regularizer_and_counts_them():
    model = nn.Sequential(_model(), Dropout(0.7), nn.Linear(2, 2))
    assert set_keep_prob(model, 0.6) == 4
    assert all(m.keep_prob == 0.6 for _, m in iter_regularizers(model))
    assert set_keep_prob(nn.Linear(2, 2), 0.5) == 0
    with pytest.raises(ValueError, match="keep_prob"):
        set_keep_prob(model, 0.0)


def test_iter_regularizers_yields_qualified_names_in_module_order():
    assert [name for name, _ in iter_regularizers(_model())] == ["1", "2.1", "3"]


def test_scaled_keep_prob_scales_the_drop_rate():
    assert scaled_keep_prob(0.9, 0.25) == pytest.approx(0.975)
    assert scaled_keep_prob(0.9, 1.0) == pytest.approx(0.9)
    assert scaled_keep_prob(0.9, 0.0) == 1.0
    with pytest.raises(ValueError, match="drop_scale.*-1"):
        scaled_keep_prob(0.9, -1)
    with pytest.raises(ValueError, match="drop_scale=20"):
        scaled_keep_prob(0.9, 20)


@pytest.mark.parametrize(
    "start, end, fragment",
    [(-1, 10, "start_iter"), (10, 5, "end_iter"), (10, 9, "end_iter must be >= start_iter"), (0, 1.5, "end_iter"), ("0", 10, "start_iter"),
     (True, 10, "start_iter"), (0, True, "end_iter")],  # a bool is no iteration, though an int
)
def test_bad_schedule_bounds_raise_value_error_naming_them(start, end, fragment):
    with pytest.raises(ValueError, match=fragment):
        LinearKeepProbSchedule(start, end)


def test_negative_iteration_and_bad_target_are_rejected():
    schedule = LinearKeepProbSchedule(0, 10)
    with pytest.raises(ValueError, match="iteration"):
        schedule.progress(-1)
    with pytest.raises(ValueError, match="target"):
        schedule.keep_prob(1.2, 5)


def test_scaled_keep_prob_refuses_a_keep_prob_of_exactly_zero_or_nan():
    with pytest.raises(ValueError, match="drop_scale=2 with keep_prob=0.5 gives keep_prob 0.0"):
        scaled_keep_prob(0.5, 2)  # 1 - 2 * 0.5 is exactly 0.0: nothing would survive
    for scale in (float("inf"), float("nan")):  # inf * 0 is NaN, not a keep probability
        with pytest.raises(ValueError, match=f"drop_scale must be a finite number >= 0, got {scale}"):
            scaled_keep_prob(1.0, scale)


@pytest.mark.parametrize("module", [
    DropBlock2d(keep_prob=0.5, block_size=1, impl="torch"), Dropout(keep_prob=0.5),
    SpatialDropout(keep_prob=0.5), DropPath(keep_prob=0.5),
], ids=lambda m: type(m).__name__)
def test_forward_drops_at_the_scheduled_keep_prob_not_the_target(module):
    # Mid-ramp (progress 0.2) the keep_prob is 0.9, the target 0.5: forward must drop 10%,
    # not 50%. 4096 samples x 8 channels x 4 x 4: the fewest independent draws (DropPath,
    # one per sample) give a standard deviation of sqrt(0.09 / 4096) = 0.0047, so the
    # tolerance of 0.03 is over 6 of them, and a forward at the target is 0.4 away.
    torch.manual_seed(0)
    model = nn.Sequential(module).train()
    LinearKeepProbSchedule(0, 10).apply(model, 2)
    assert module.keep_prob == pytest.approx(0.9) and module.target_keep_prob == 0.5
    out = model(torch.ones(4096, 8, 4, 4))
    assert (out == 0).float().mean().item() == pytest.approx(0.1, abs=0.03)


def test_set_keep_prob_leaves_the_targets_and_apply_counts_the_regularizers():
    # A robustness probe sets keep_prob only: the schedule afterwards still ramps every
    # regularizer to its own configured target.
    model = _model()
    targets = [m.target_keep_prob for _, m in iter_regularizers(model)]
    assert set_keep_prob(model, 0.5) == 3
    assert [m.target_keep_prob for _, m in iter_regularizers(model)] == targets
    assert LinearKeepProbSchedule(0, 10).apply(model, 10) == 3
    assert [m.keep_prob for _, m in iter_regularizers(model)] == targets


def test_scaled_keep_prob_refuses_a_bool_drop_scale():
    # True is an int in Python: it would pass as a drop_scale of 1.0 unnoticed.
    with pytest.raises(ValueError, match="drop_scale must be a finite number >= 0, got True"):
        scaled_keep_prob(0.9, True)


def test_set_keep_prob_checks_the_value_even_when_the_model_has_no_regularizer():
    # A bad probe value is refused, naming it, not returned as "0 regularizers set".
    with pytest.raises(ValueError, match=r"keep_prob must be in \(0, 1\], got 1\.5"):
        set_keep_prob(nn.Linear(2, 2), 1.5)


@pytest.mark.parametrize("keep_prob", [0.0, 1.5, float("nan")])
def test_scaled_keep_prob_refuses_a_keep_prob_out_of_range_whatever_the_scale(keep_prob):
    # A scale of 0 would turn keep_prob 0.0 into 1.0, and 1.5 at scale 1 would come back as
    # 1.5, to be refused later naming a value the user never gave.
    for drop_scale in (0.0, 1.0):
        with pytest.raises(ValueError, match=rf"^keep_prob must be in \(0, 1\], got {keep_prob}$"):
            scaled_keep_prob(keep_prob, drop_scale)


def test_schedule_repr_names_start_and_end():
    assert repr(LinearKeepProbSchedule(10, 90)) == "LinearKeepProbSchedule(start_iter=10, end_iter=90)"


# --- API bad-input 54 ---


class _TrainerLike:
    """What a user may pass for the model: a trainer, which holds it as `.model`."""

    model = nn.Sequential(DropBlock2d(0.9, 3))


@pytest.mark.parametrize("call", [
    lambda m: iter_regularizers(m),
    lambda m: set_keep_prob(m, 0.9),
    lambda m: LinearKeepProbSchedule(0, 10).apply(m, 5),
], ids=["iter_regularizers", "set_keep_prob", "schedule_apply"])
@pytest.mark.parametrize("model", [None, _TrainerLike()], ids=["None", "trainer"])
def test_schedule_functions_name_a_model_that_is_not_a_module(call, model):
    # Was AttributeError "... has no attribute 'named_modules'" (iter_regularizers: only at
    # the first next()), naming neither the argument nor what it should be.
    with pytest.raises(ValueError, match=rf"model must be an nn.Module \(e.g. trainer.model\), got {type(model).__name__}"):
        call(model)
