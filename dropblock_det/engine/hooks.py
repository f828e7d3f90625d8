"""The training hook that ramps keep_prob over iterations (the paper's linear schedule).

The schedule is a pure function of the iteration, so the hook keeps no state: after
`resume_or_load` the trainer restarts at its saved iteration and the hook sets exactly the
values an uninterrupted run has there. Outside training (evaluation, export) no hook and no
`EventStorage` are needed: regularizers are identity in eval mode.
"""
import math
import warnings
from typing import List, Optional

from torch import nn
from torch.nn.parallel import DataParallel, DistributedDataParallel

from detectron2.config import CfgNode
from detectron2.engine import HookBase

from ..config import check_impl_device, dropblock_schedule_range, locations_on, validate_dropblock_config
from ..layers import LinearKeepProbSchedule, iter_regularizers
from ..layers.base import check_keep_prob

__all__ = ["DropBlockScheduleHook", "unwrap_model"]


def unwrap_model(model) -> nn.Module:
    """The model inside DistributedDataParallel / DataParallel (or any non-Module wrapper
    exposing `.module`). A plain nn.Module is returned as is, even if it has a child
    named "module"."""
    while isinstance(model, (DataParallel, DistributedDataParallel)) or not isinstance(
        model, nn.Module
    ):
        if not hasattr(model, "module"):
            raise TypeError(f"expected an nn.Module or a wrapper with `.module`, got {model!r}")
        model = model.module
    return model


class DropBlockScheduleHook(HookBase):
    """Before every step, set each regularizer's keep_prob from `trainer.iter` with
    :class:`LinearKeepProbSchedule`, and record the scheduled value of the configured
    keep_prob as the scalar "dropblock/keep_prob" in the trainer's EventStorage (so it is in
    metrics.json and TensorBoard), when the model has any regularizer.

    Each regularizer ramps from 1.0 to its own `target_keep_prob` (stage-scaled targets
    differ); the recorded scalar is the ramp applied to `keep_prob`, the config's KEEP_PROB
    (with DROP_PATH_RATE the only location on: 1 - DROP_PATH_RATE, DropPath's target).
    Works with any detectron2 trainer (DefaultTrainer, SimpleTrainer, AMPTrainer, which in
    detectron2 v0.6 and main needs CUDA to run a step) whose `model` (or the `model` given
    here) is the model or a wrapper with `.module` (DDP). Register it with
    `trainer.register_hooks([DropBlockScheduleHook.from_config(trainer.cfg)])`: the trainer's
    config, which DefaultTrainer rescales for SOLVER.REFERENCE_WORLD_SIZE.

    Built from a config, the hook checks before training that the model has a regularizer
    when a MODEL.DROPBLOCK location is on (stock detectron2 components ignore the keys),
    warns, naming the key, when a location that is on has none (by the module names of
    dropblock-det's components), and warns when the trainer runs to another iteration than
    the config's SOLVER.MAX_ITER.
    For a model with regularizers, a ramp that would leave keep_prob at 1.0 through the
    trainer's last iteration (max_iter - 1) is refused before training, and an explicit
    end_iter after max_iter warns with the keep_prob reached.
    """

    def __init__(
        self,
        start_iter: int = 0,
        end_iter: Optional[int] = None,
        keep_prob: Optional[float] = None,
        model: Optional[nn.Module] = None,
    ):
        """
        Args:
            start_iter, end_iter: the ramp: keep_prob 1.0 up to start_iter, the targets at
                and after end_iter, linear in between. end_iter None = the trainer's
                `max_iter` (the paper ramps over the whole training), read before training.
            keep_prob: the value whose schedule is recorded (MODEL.DROPBLOCK.KEEP_PROB); None =
                the lowest target_keep_prob of the model's regularizers, read before training.
                It sets no regularizer's keep_prob: given here and none of the model's targets,
                it warns before training.
            model: the model to schedule; None = the trainer's `model` at every step.
        """
        if end_iter is not None and not isinstance(end_iter, bool) and end_iter == -1:
            # The yacs key's spelling of "the end of training" (END_ITER -1), here None.
            raise ValueError("end_iter must be an integer >= 0 or None, got -1: end_iter=None ends the ramp at "
                             "the trainer's max_iter (what MODEL.DROPBLOCK.SCHEDULE.END_ITER -1 means)")
        # Checked now, by name, even when end_iter waits for the trainer.
        self.schedule = LinearKeepProbSchedule(start_iter, start_iter if end_iter is None else end_iter)
        self._end_at_max_iter = end_iter is None
        # Checked here, not at the first step (after data loading), under the caller's name.
        self.keep_prob = None if keep_prob is None else check_keep_prob(keep_prob, "keep_prob")
        self._keep_prob_given = keep_prob is not None
        if model is not None:
            # Checked now, by name: else unwrap_model's TypeError comes at before_train.
            try:
                unwrap_model(model)
            except TypeError:
                raise ValueError(f"model must be an nn.Module, a wrapper of one with `.module`, or None "
                                 f"(the trainer's model), got {type(model).__name__}: {model!r}"[:300]) from None
        self._model = model
        # Set by from_config: what the config promises, checked against the trainer.
        self._config_keys_on: List[str] = []
        self._config_max_iter: Optional[int] = None
        self._config: Optional[CfgNode] = None
        self._config_advice = ("build it with dropblock-det's (e.g. MODEL.BACKBONE.NAME "
                               "'build_dropblock_resnet_fpn_backbone' for an R-CNN, "
                               "'build_dropblock_retinanet_resnet_fpn_backbone' for a RetinaNet)")

    @classmethod
    def from_config(cls, cfg, model: Optional[nn.Module] = None) -> "DropBlockScheduleHook":
        """The hook for MODEL.DROPBLOCK.SCHEDULE (END_ITER -1 = SOLVER.MAX_ITER) and
        MODEL.DROPBLOCK.KEEP_PROB; raises ValueError for impossible values, and for IMPL
        "triton" on a MODEL.DEVICE the kernels cannot run on (the hook means training)."""
        if not isinstance(cfg, CfgNode):
            # A LazyConfig (DictConfig) has no MODEL.DROPBLOCK: omegaconf's "Missing key MODEL"
            # would not say what to use instead.
            raise TypeError(
                f"DropBlockScheduleHook.from_config takes a yacs config (a CfgNode with MODEL.DROPBLOCK, "
                f"from add_dropblock_config), got a {type(cfg).__name__}; with a LazyConfig build the hook "
                "from its arguments: DropBlockScheduleHook(start_iter, end_iter) "
                "(train.dropblock_schedule = L(DropBlockScheduleHook)(...))")
        validate_dropblock_config(cfg)
        check_impl_device(cfg)
        start, end = dropblock_schedule_range(cfg)
        on = locations_on(cfg)
        # KEEP_PROB is no regularizer's target when DROP_PATH_RATE alone is on: record the
        # lowest target then (1 - DROP_PATH_RATE), not a DropBlock ramp the run does not have.
        keep_prob = None if on == ["DROP_PATH_RATE"] else cfg.MODEL.DROPBLOCK.KEEP_PROB
        hook = cls(start, end, keep_prob, model=model)
        hook._config_keys_on = [f"MODEL.DROPBLOCK.{key}" for key in on]
        if hook._config_keys_on:
            from ..deploy import dropblock_component_advice

            hook._config_advice = dropblock_component_advice(cfg, locations_on(cfg)[0])
        hook._config_max_iter = cfg.SOLVER.MAX_ITER
        hook._config = cfg
        return hook

    def _scheduled_model(self) -> nn.Module:
        return unwrap_model(self._model if self._model is not None else self.trainer.model)

    def schedule_for(self, max_iter: Optional[int], model: Optional[nn.Module] = None) -> LinearKeepProbSchedule:
        """The ramp a trainer that runs to `max_iter` gets: end_iter None ends it there.
        ValueError when that cannot be (no max_iter), and, unless `model` is given and has
        no regularizer, when keep_prob would be 1.0 at every iteration trained (the ramp
        starts at max_iter - 1 or later)."""
        schedule = self.schedule
        start = schedule.start_iter
        if self._end_at_max_iter:
            if max_iter is None:
                raise ValueError("DropBlockScheduleHook(end_iter=None) ends the ramp at the trainer's "
                                 "max_iter, which this trainer does not have: give end_iter")
            schedule = LinearKeepProbSchedule(start, max(start, max_iter))
        baseline = model is not None and next(iter_regularizers(unwrap_model(model)), None) is None
        # As the yacs check of SCHEDULE.START_ITER: the last iteration trained, max_iter - 1,
        # must be past the ramp's start, or no iteration would regularize.
        if max_iter is not None and max_iter >= 1 and schedule.progress(max_iter - 1) == 0.0 and not baseline:
            raise ValueError(f"DropBlockScheduleHook: start_iter={start} with the trainer's max_iter={max_iter}: "
                             f"keep_prob would stay 1.0 through the last iteration, {max_iter - 1}, so no "
                             "iteration would regularize")
        return schedule

    # Its warnings name this file (the default stacklevel): the frames above it are
    # detectron2's training loop, whose line read as a warning of detectron2's own.
    def before_train(self) -> None:
        model = self._scheduled_model()
        targets = sorted({m.target_keep_prob for _, m in iter_regularizers(model)})
        if self.keep_prob is None:
            self.keep_prob = targets[0] if targets else None
        elif self._keep_prob_given and self._config is None and targets and not any(
                math.isclose(self.keep_prob, t) for t in targets):
            # keep_prob only names the recorded scalar: read as the target, the run logged a
            # ramp to it while every regularizer ramped to the target it was built with.
            warnings.warn(
                f"DropBlockScheduleHook: keep_prob={self.keep_prob:g} is only the value recorded as "
                f"dropblock/keep_prob; the model's regularizers ramp to the targets they were built with, "
                f"{', '.join(f'{t:g}' for t in targets)}, none of them {self.keep_prob:g}. Set the target "
                "where the model is built (its dropblock's keep_prob; a LazyConfig's dropblock.keep_prob), "
                "or leave keep_prob out to record the ramp of the lowest target",
                UserWarning,
            )
        max_iter = getattr(self.trainer, "max_iter", None)
        self.schedule = self.schedule_for(max_iter, model)
        if (self._config_max_iter is None and max_iter is not None and self.schedule.end_iter > max_iter
                and self.keep_prob is not None):
            # As for MODEL.DROPBLOCK.SCHEDULE.END_ITER (from a config, its check warns, by key).
            reached = self.schedule.keep_prob(self.keep_prob, max_iter - 1)  # the last iteration
            warnings.warn(
                f"DropBlockScheduleHook: end_iter={self.schedule.end_iter} is after the trainer's "
                f"max_iter={max_iter}: keep_prob reaches only {reached:.4g} instead of "
                f"{self.keep_prob:g} (end_iter=None ends the ramp at max_iter)",
                UserWarning,
            )
        self._warn_an_earlier_schedule_hook(model)
        # Only a model with no regularizer at all: a model of the user's own may name its
        # modules unlike ours (check_dropblock_placed's per-location check is for ours).
        if self._config_keys_on and next(iter_regularizers(model), None) is None:
            # Else the run trains without DropBlock while its config says otherwise.
            raise ValueError(
                f"{', '.join(self._config_keys_on)} is on, but the model "
                f"({type(model).__name__}) has no DropBlock regularizer: stock "
                f"detectron2 components ignore MODEL.DROPBLOCK; {self._config_advice} (see the README)"
            )
        if self._config is not None and self._config_keys_on:
            self._warn_locations_without_dropblock(model)
        if self._config_max_iter is not None and max_iter is not None and max_iter != self._config_max_iter:
            warnings.warn(
                f"DropBlockScheduleHook: its config has SOLVER.MAX_ITER={self._config_max_iter}, the "
                f"trainer runs to {max_iter}, and the keep_prob ramp ends at iteration "
                f"{self.schedule.end_iter}. DefaultTrainer rescales SOLVER.MAX_ITER for "
                "SOLVER.REFERENCE_WORLD_SIZE: build the hook from the trainer's config "
                "(DropBlockScheduleHook.from_config(trainer.cfg)), and scale explicit "
                "MODEL.DROPBLOCK.SCHEDULE iterations with DropBlockTrainer.auto_scale_workers",
                UserWarning,
            )

    def _warn_an_earlier_schedule_hook(self, model: nn.Module) -> None:
        # A second hook on the same model (registered in a trainer that has one already, such
        # as DropBlockTrainer) sets keep_prob after the first at every step: its ramp is the
        # one trained, whatever the first's (its config's MODEL.DROPBLOCK.SCHEDULE) says.
        hooks = list(getattr(self.trainer, "_hooks", ()))
        for earlier in hooks[:hooks.index(self)] if self in hooks else ():
            if isinstance(earlier, DropBlockScheduleHook) and earlier._scheduled_model() is model:
                warnings.warn(
                    f"DropBlockScheduleHook: the trainer has another DropBlockScheduleHook on this model "
                    f"({earlier.schedule}), registered before this one ({self.schedule}): both set "
                    "keep_prob before every step and this one's ramp is the one trained. Register one "
                    "(dropblock-det's DropBlockTrainer registers its own from the config)",
                    UserWarning,
                )
                return

    def _warn_locations_without_dropblock(self, model: nn.Module) -> None:
        # The model has regularizers, but a location that is on may have none (a stock head
        # beside a dropblock-det backbone). dropblock-det's trainers refuse that; here it
        # warns, naming the key: the check goes by dropblock-det's module names, which a
        # model of the user's own need not follow.
        from .config_checks import check_dropblock_placed

        try:
            check_dropblock_placed(self._config, model)
        except ValueError as error:
            warnings.warn(
                f"DropBlockScheduleHook: {error}. (Found by the module names of dropblock-det's "
                "components: a model of your own that names its modules otherwise may ignore this.)",
                UserWarning,
            )

    def before_step(self) -> None:
        iteration = self.trainer.iter
        # A model without regularizers (a baseline config) gets no scalar: a ramp in its
        # metrics.json would say DropBlock was on.
        if self.schedule.apply(self._scheduled_model(), iteration) and self.keep_prob is not None:
            self.trainer.storage.put_scalar(
                "dropblock/keep_prob",
                self.schedule.keep_prob(self.keep_prob, iteration),
                smoothing_hint=False,
            )
