"""Learning-rate schedules for the segmentation configs: DeepLab's warm-up + poly decay.

detectron2's own `WarmupPolyLR` (in `detectron2.projects.deeplab`) cannot serve both
detectron2 versions this project supports: current main's `build_solver.py` imports
`detectron2.solver.LRScheduler`, which v0.6 lacks, and v0.6's `hooks.LRScheduler` only
checkpoints schedulers that are `torch.optim.lr_scheduler._LRScheduler` instances. The
schedule here subclasses `_LRScheduler` (itself a subclass of torch's public
`LRScheduler`), so both versions' hooks save and restore its state on resume.
"""
import math
from typing import Any, Dict, List, Optional

import torch
from detectron2.config import CfgNode
from detectron2.solver import build_lr_scheduler as build_d2_lr_scheduler
from fvcore.common.param_scheduler import ParamScheduler

from .layers.base import is_real_number

__all__ = ["WarmupPolyLR", "WarmupPolyParamScheduler", "warmup_factor_at_iter", "build_lr_scheduler"]

_WARMUP_METHODS = ("constant", "linear")


def warmup_factor_at_iter(
    method: str, iteration: int, warmup_iters: int, warmup_factor: float
) -> float:
    """LR multiplier of the warm-up at `iteration` (1.0 once warm-up is over).

    Args:
        method: "constant" (multiplier `warmup_factor` during warm-up) or "linear" (from
            `warmup_factor` at iteration 0 up to 1.0 at `warmup_iters`).
        iteration: current iteration (0-based).
        warmup_iters: length of the warm-up; 0 disables it.
        warmup_factor: multiplier at iteration 0.
    """
    if iteration >= warmup_iters:
        return 1.0
    if method == "constant":
        return warmup_factor
    if method == "linear":
        alpha = iteration / warmup_iters
        return warmup_factor * (1.0 - alpha) + alpha
    raise ValueError(f"SOLVER.WARMUP_METHOD must be one of {_WARMUP_METHODS}, got {method!r}")


def _warmup_poly_factor(progress: float, warmup: float, power: float, constant_ending: float) -> float:
    """warmup * (1 - progress) ** power, and constant_ending where that is lower once the
    warm-up is over (warmup 1.0). `progress` is the fraction of training done."""
    # Clamp at 0: iterations past the end (e.g. an extended resume) keep lr at its floor
    # instead of raising a negative number to a fractional power.
    poly = math.pow(max(0.0, 1.0 - progress), power)
    if constant_ending > 0 and warmup == 1.0 and poly < constant_ending:
        return constant_ending
    return warmup * poly


# What WarmupPolyLR's errors call its arguments: the yacs keys build_lr_scheduler reads
# them from. WarmupPolyParamScheduler (a LazyConfig's lr_multiplier) names the arguments.
_SOLVER_KEYS = {"warmup_method": "SOLVER.WARMUP_METHOD", "power": "SOLVER.POLY_LR_POWER",
                "constant_ending": "SOLVER.POLY_LR_CONSTANT_ENDING", "warmup_factor": "SOLVER.WARMUP_FACTOR"}


def _check_poly_arguments(warmup_method: str, power: float, constant_ending: float, warmup_factor: float,
                          names: Optional[Dict[str, str]] = None) -> None:
    name = (names or {}).get
    if warmup_method not in _WARMUP_METHODS:
        raise ValueError(f"{name('warmup_method', 'warmup_method')} must be one of {_WARMUP_METHODS}, "
                         f"got {warmup_method!r}")
    # A NaN power gives lr NaN, an infinite one lr 0, from the second iteration on (YAML
    # reads .nan and .inf as floats); a negative warm-up factor a negative lr (gradient ascent).
    for argument, value in (("power", power), ("warmup_factor", warmup_factor)):
        if not (is_real_number(value) and math.isfinite(value)):
            raise ValueError(f"{name(argument, argument)} must be a finite number, got {value!r}")
        if value < 0:
            raise ValueError(f"{name(argument, argument)} must be >= 0, got {value!r}")
    if not (is_real_number(constant_ending) and 0.0 <= constant_ending <= 1.0):
        raise ValueError(f"{name('constant_ending', 'constant_ending')} must be in [0, 1], got {constant_ending!r}")


class WarmupPolyLR(torch.optim.lr_scheduler._LRScheduler):
    """DeepLab's "poly" schedule with a warm-up, stepped once per iteration.

    lr(t) = base_lr * warmup(t) * (1 - t / max_iters) ** power, and, when
    `constant_ending > 0`, never below base_lr * constant_ending once warm-up is over.
    As in detectron2, torch's "epoch" counter (`last_epoch`) counts iterations here.
    """

    def __init__(
        self,
        optimizer: torch.optim.Optimizer,
        max_iters: int,
        warmup_factor: float = 0.001,
        warmup_iters: int = 1000,
        warmup_method: str = "linear",
        last_epoch: int = -1,
        power: float = 0.9,
        constant_ending: float = 0.0,
    ):
        if max_iters <= 0:
            raise ValueError(f"SOLVER.MAX_ITER must be positive for WarmupPolyLR, got {max_iters}")
        _check_poly_arguments(warmup_method, power, constant_ending, warmup_factor, _SOLVER_KEYS)
        self.max_iters = max_iters
        self.warmup_factor = warmup_factor
        self.warmup_iters = warmup_iters
        self.warmup_method = warmup_method
        self.power = power
        self.constant_ending = constant_ending
        super().__init__(optimizer, last_epoch)

    def _factor(self, iteration: int) -> float:
        warmup = warmup_factor_at_iter(
            self.warmup_method, iteration, self.warmup_iters, self.warmup_factor
        )
        return _warmup_poly_factor(iteration / self.max_iters, warmup, self.power, self.constant_ending)

    def get_lr(self) -> List[float]:
        factor = self._factor(self.last_epoch)
        return [base_lr * factor for base_lr in self.base_lrs]

    def _compute_values(self) -> List[float]:
        # detectron2 main's LRScheduler-based classes expose this name; keep it for parity.
        return self.get_lr()

    def state_dict(self) -> Dict[str, Any]:
        # Only the progress, as detectron2's LRMultiplier keeps: torch's default (the whole
        # __dict__) would put a resumed run's max_iters back, so continuing a run with a
        # larger SOLVER.MAX_ITER would train every added iteration at lr 0.
        return {"base_lrs": self.base_lrs, "last_epoch": self.last_epoch}


class WarmupPolyParamScheduler(ParamScheduler):
    """:class:`WarmupPolyLR`'s multiplier as a function of the fraction of training done,
    `where` in [0, 1): an fvcore ParamScheduler, which a LazyConfig's `lr_multiplier` is
    (detectron2's LRScheduler hook wraps it in an LRMultiplier over train.max_iter).

    Args:
        warmup_length: the warm-up's share of the training (SOLVER.WARMUP_ITERS / MAX_ITER).
        warmup_factor, warmup_method, power, constant_ending: as WarmupPolyLR.
    """

    def __init__(self, warmup_length: float = 0.0, warmup_factor: float = 0.001,
                 warmup_method: str = "linear", power: float = 0.9, constant_ending: float = 0.0):
        _check_poly_arguments(warmup_method, power, constant_ending, warmup_factor)
        if not (is_real_number(warmup_length) and 0.0 <= warmup_length <= 1.0):
            raise ValueError(f"warmup_length must be in [0, 1] (a share of the training), got {warmup_length!r}")
        self.warmup_length = warmup_length
        self.warmup_factor = warmup_factor
        self.warmup_method = warmup_method
        self.power = power
        self.constant_ending = constant_ending

    def __call__(self, where: float) -> float:
        warmup = warmup_factor_at_iter(self.warmup_method, where, self.warmup_length, self.warmup_factor)
        return _warmup_poly_factor(where, warmup, self.power, self.constant_ending)


def build_lr_scheduler(
    cfg: CfgNode, optimizer: torch.optim.Optimizer
) -> torch.optim.lr_scheduler._LRScheduler:
    """Build the LR scheduler named by `cfg.SOLVER.LR_SCHEDULER_NAME`.

    "WarmupPolyLR" is built here (reads SOLVER.MAX_ITER, WARMUP_FACTOR, WARMUP_ITERS,
    WARMUP_METHOD, POLY_LR_POWER, POLY_LR_CONSTANT_ENDING); every other name is delegated to
    `detectron2.solver.build_lr_scheduler`. Use it from a trainer's `build_lr_scheduler`.
    """
    name = cfg.SOLVER.LR_SCHEDULER_NAME
    if name != "WarmupPolyLR":
        return build_d2_lr_scheduler(cfg, optimizer)
    for key in ("POLY_LR_POWER", "POLY_LR_CONSTANT_ENDING"):
        if key not in cfg.SOLVER:
            raise KeyError(
                f"SOLVER.LR_SCHEDULER_NAME 'WarmupPolyLR' needs SOLVER.{key}: call "
                "dropblock_det.modeling.deeplab.add_dropblock_deeplab_config(cfg) before "
                "merging the config file"
            )
    return WarmupPolyLR(
        optimizer,
        cfg.SOLVER.MAX_ITER,
        warmup_factor=cfg.SOLVER.WARMUP_FACTOR,
        warmup_iters=cfg.SOLVER.WARMUP_ITERS,
        warmup_method=cfg.SOLVER.WARMUP_METHOD,
        power=cfg.SOLVER.POLY_LR_POWER,
        constant_ending=cfg.SOLVER.POLY_LR_CONSTANT_ENDING,
    )
