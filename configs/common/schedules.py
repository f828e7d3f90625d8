"""LR multipliers (detectron2's param schedulers) of the yacs configs' schedules: a linear
warm-up, then steps or a cosine."""
from detectron2.config import LazyCall as L
from detectron2.solver import WarmupParamScheduler
from fvcore.common.param_scheduler import CosineParamScheduler, MultiStepParamScheduler


def step_schedule(max_iter: int, steps, warmup_iters: int = 1000, warmup_factor: float = 0.001):
    """x0.1 at every iteration of `steps` (SOLVER.STEPS), after a linear warm-up."""
    return L(WarmupParamScheduler)(
        scheduler=L(MultiStepParamScheduler)(
            values=[0.1 ** i for i in range(len(steps) + 1)], milestones=list(steps), num_updates=max_iter
        ),
        warmup_length=warmup_iters / max_iter,
        warmup_method="linear",
        warmup_factor=warmup_factor,
    )


def cosine_schedule(max_iter: int, warmup_iters: int = 1000, warmup_factor: float = 0.001):
    """A cosine from 1 to 0 over the training (SOLVER.LR_SCHEDULER_NAME WarmupCosineLR), after
    a linear warm-up."""
    return L(WarmupParamScheduler)(
        scheduler=L(CosineParamScheduler)(start_value=1.0, end_value=0.0),
        warmup_length=warmup_iters / max_iter,
        warmup_method="linear",
        warmup_factor=warmup_factor,
    )


# COCO 3x (270k iterations at batch 16), the scratch RetinaNet configs' schedule.
lr_multiplier_3x = step_schedule(270000, (210000, 250000))
