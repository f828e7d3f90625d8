"""The keep_prob schedule: a pure function of the training iteration.

The paper ramps keep_prob linearly from 1.0 to its target over training (the official TF
code: kp_t = 1 - (step / train_steps) * (1 - kp)). Because the value here depends only on
the iteration (no counter advanced by forward calls, nothing stored in the modules),
resuming at iteration k, or running k in several processes, gives the same keep_prob.

Per-stage scaling (the official code gives group 3 a quarter of group 4's drop rate) is a
property of each regularizer's `target_keep_prob`, fixed when the model is built with
`scaled_keep_prob`; the schedule then ramps every regularizer towards its own target.
"""
import math
from typing import Any, Iterator, Tuple

from torch import nn

from .base import KeepProbRegularizer, check_keep_prob, is_integer, is_real_number

__all__ = ["LinearKeepProbSchedule", "set_keep_prob", "iter_regularizers", "scaled_keep_prob"]


def _check_iteration(value: object, name: str) -> int:
    if not is_integer(value) or value < 0:
        raise ValueError(f"{name} must be an integer >= 0, got {value!r}")
    return int(value)


class LinearKeepProbSchedule:
    """keep_prob = 1.0 up to `start_iter`, linear to the target at `end_iter`, then constant.

    Args:
        start_iter: last iteration at which keep_prob is still 1.0 (>= 0), unless end_iter
            equals it.
        end_iter: first iteration at which keep_prob equals the target (>= start_iter;
            equal to start_iter means a step from 1.0 to the target there).
    """

    def __init__(self, start_iter: int, end_iter: int) -> None:
        self.start_iter = _check_iteration(start_iter, "start_iter")
        self.end_iter = _check_iteration(end_iter, "end_iter")
        if self.end_iter < self.start_iter:
            raise ValueError(
                f"end_iter must be >= start_iter, got end_iter={end_iter!r} < start_iter={start_iter!r}"
            )

    def progress(self, iteration: int) -> float:
        """Fraction of the ramp done at `iteration`: 0 up to start_iter, 1 from end_iter."""
        iteration = _check_iteration(iteration, "iteration")
        if iteration >= self.end_iter:
            return 1.0
        if iteration <= self.start_iter:
            return 0.0
        return (iteration - self.start_iter) / (self.end_iter - self.start_iter)

    def keep_prob(self, target: float, iteration: int) -> float:
        """keep_prob at `iteration` for a regularizer whose final keep_prob is `target`."""
        target = check_keep_prob(target, "target")
        return _ramp(target, self.progress(iteration))

    def apply(self, model: nn.Module, iteration: int) -> int:
        """Set every regularizer's keep_prob in `model` from its own target_keep_prob.
        Returns how many regularizers were set."""
        progress = self.progress(iteration)
        count = 0
        for _, module in iter_regularizers(model):
            module.keep_prob = _ramp(module.target_keep_prob, progress)
            count += 1
        return count

    def __repr__(self) -> str:
        return f"LinearKeepProbSchedule(start_iter={self.start_iter}, end_iter={self.end_iter})"


def _ramp(target: float, progress: float) -> float:
    """1 - progress * (1 - target), and exactly `target` once the ramp is done: in floating
    point 1 - (1 - t) is not always t (0.3 would end at 0.30000000000000004)."""
    return target if progress >= 1.0 else 1.0 - progress * (1.0 - target)


def iter_regularizers(model: nn.Module) -> Iterator[Tuple[str, KeepProbRegularizer]]:
    """(qualified name, module) of every KeepProbRegularizer inside `model`, in module order.

    Raises:
        ValueError: naming `model` if it is not an nn.Module (at the call, not at the first
            `next`: e.g. a trainer passed for its `.model`).
    """
    if not isinstance(model, nn.Module):
        # Else "'DefaultTrainer' object has no attribute 'named_modules'" from inside here.
        raise ValueError(f"model must be an nn.Module (e.g. trainer.model), got {type(model).__name__}: {model!r}"[:300])
    return _iter_regularizers(model)


def _iter_regularizers(model: nn.Module) -> Iterator[Tuple[str, KeepProbRegularizer]]:
    for name, module in model.named_modules():
        if isinstance(module, KeepProbRegularizer):
            yield name, module


def set_keep_prob(model: nn.Module, keep_prob: float) -> int:
    """Set the current keep_prob of every regularizer in `model` to one value (targets are
    unchanged), e.g. to probe robustness with DropBlock at inference. Returns how many."""
    keep_prob = check_keep_prob(keep_prob)
    count = 0
    for _, module in iter_regularizers(model):
        module.keep_prob = keep_prob
        count += 1
    return count


def is_drop_scale(value: Any) -> bool:
    """Whether `value` can scale a drop rate (`scaled_keep_prob`): a finite number >= 0, not
    a bool (True is no scale, though Python counts it as 1)."""
    return is_real_number(value) and 0 <= value < math.inf


def scaled_keep_prob(keep_prob: float, drop_scale: float) -> float:
    """Keep probability whose drop rate is `drop_scale` times that of `keep_prob`:
    1 - drop_scale * (1 - keep_prob). E.g. (0.9, 0.25) -> 0.975 for the official code's
    group 3. Raises ValueError if drop_scale < 0 or the result falls outside (0, 1]."""
    keep_prob = check_keep_prob(keep_prob)
    if not is_drop_scale(drop_scale):
        raise ValueError(f"drop_scale must be a finite number >= 0, got {drop_scale!r}")
    scaled = 1.0 - float(drop_scale) * (1.0 - keep_prob)
    if not scaled > 0.0:
        raise ValueError(
            f"drop_scale={drop_scale!r} with keep_prob={keep_prob!r} gives keep_prob {scaled!r} <= 0"
        )
    return scaled
