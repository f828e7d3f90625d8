"""The training logic behind ``tools/train_net.py``: a detectron2 ``DefaultTrainer`` that
adds the DropBlock keep_prob schedule, picks the evaluator from the dataset, applies Cutout
when configured, loads data with errors that name the broken file, and writes checkpoints
atomically; plus the check of the tools' launch (tools/tool_args.py launches). What the
tools check before a run is in ``config_checks.py`` (the config, and a --resume against its
checkpoint), ``checkpoint.py`` (the weights, the checkpoint an --eval-only loads),
``evaluation.py`` (an evaluator for each test set) and ``output_dir.py`` (the run's folder).

Everything here runs on detectron2 v0.6 (with or without its compiled operators) and on
current detectron2 main.
"""
from __future__ import annotations

import importlib
import logging
import os
import warnings
from collections import OrderedDict
from typing import Any, Dict, List, Optional

import detectron2.utils.comm as comm
import torch
from detectron2.config import CfgNode
from detectron2.data import build_detection_test_loader, build_detection_train_loader
from detectron2.data import transforms as T
from detectron2.engine import DefaultTrainer, TrainerBase, hooks
from detectron2.evaluation import DatasetEvaluator
from detectron2.solver.lr_scheduler import LRMultiplier

from .. import solver
from ..data.file_errors import DatasetMapperNamingFiles, check_training_files, naming_dataset_files
from .checkpoint import AtomicCheckpointer
from .config_checks import check_dropblock_placed, check_rcnn_features
from .evaluation import build_evaluator
from .output_dir import TTA_INFERENCE_DIR


__all__ = [
    "build_train_augmentation",
    "check_launch_processes",
    "DropBlockTrainer",
]


# ----------------------------------------------------------------------------- data
def build_train_augmentation(cfg: CfgNode) -> List[T.Augmentation]:
    """Training augmentations: resize (+ the semantic-segmentation crop when
    INPUT.CROP.ENABLED on a SemanticSegmentor) + horizontal flip, then Cutout when
    INPUT.CUTOUT.ENABLED."""
    augs: List[T.Augmentation] = [T.ResizeShortestEdge(
        cfg.INPUT.MIN_SIZE_TRAIN, cfg.INPUT.MAX_SIZE_TRAIN, cfg.INPUT.MIN_SIZE_TRAIN_SAMPLING)]
    if cfg.INPUT.CROP.ENABLED:
        if cfg.MODEL.META_ARCHITECTURE == "SemanticSegmentor":
            augs.append(T.RandomCrop_CategoryAreaConstraint(
                cfg.INPUT.CROP.TYPE, cfg.INPUT.CROP.SIZE,
                cfg.INPUT.CROP.SINGLE_CATEGORY_MAX_AREA, cfg.MODEL.SEM_SEG_HEAD.IGNORE_VALUE))
        else:
            augs.insert(0, T.RandomCrop(cfg.INPUT.CROP.TYPE, cfg.INPUT.CROP.SIZE))
    if cfg.INPUT.RANDOM_FLIP != "none":
        augs.append(T.RandomFlip(horizontal=cfg.INPUT.RANDOM_FLIP == "horizontal",
                                 vertical=cfg.INPUT.RANDOM_FLIP == "vertical"))
    if cfg.INPUT.CUTOUT.ENABLED:
        from ..data.cutout import build_cutout_augmentation

        # After resizing: INPUT.CUTOUT.SIZE is in pixels of the network input.
        augs.extend(build_cutout_augmentation(cfg))
    return augs


# ----------------------------------------------------------------------------- launch
def check_launch_processes(num_gpus: int, num_machines: int) -> None:
    """ValueError naming --num-gpus where detectron2's `launch` would fail on it with a bare
    AssertionError in every process it started (after each had imported everything): more
    processes per machine than the CUDA devices torch sees (both detectron2 versions assert
    it, with no message), or several processes on a machine without CUDA where the
    installed launch asserts CUDA (v0.6; detectron2 main starts them with GLOO there)."""
    if num_gpus * num_machines <= 1:
        return  # launch runs `main` in this process: no process group, nothing asserted
    # The module: `detectron2.engine.launch` as an attribute is the function of that name.
    launch_module = importlib.import_module("detectron2.engine.launch")
    gpus = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if gpus and num_gpus > gpus:
        raise ValueError(f"--num-gpus {num_gpus}: torch sees {gpus} CUDA device(s) on this machine, and "
                         "detectron2's launch starts one process per GPU; give at most that many")
    worker = getattr(launch_module, "_distributed_worker", None)
    asserts_cuda = worker is not None and "GLOO" not in worker.__code__.co_consts
    if not gpus and asserts_cuda:
        raise ValueError(f"--num-gpus {num_gpus} --num-machines {num_machines}: torch sees no CUDA device here, "
                         "and this detectron2's launch (v0.6) needs one per process; train in one process "
                         "(--num-gpus 1)")


# ----------------------------------------------------------------------------- trainer
# Current detectron2 adds the inner SimpleTrainer/AMPTrainer state (optimizer, grad scaler)
# to DefaultTrainer's checkpoints under "_trainer"; v0.6 inherits TrainerBase's, which has
# only the iteration and the hooks.
_DEFAULT_TRAINER_SAVES_OPTIMIZER = DefaultTrainer.state_dict is not TrainerBase.state_dict


def _trains_on_sem_seg_labels(cfg: CfgNode) -> bool:
    """Whether MODEL.META_ARCHITECTURE's loss reads segmentation labels with MODEL.SEM_SEG_HEAD's
    classes and ignore value (a SemanticSegmentor, a PanopticFPN)."""
    from detectron2.modeling import META_ARCH_REGISTRY, PanopticFPN, SemanticSegmentor

    try:
        model_class = META_ARCH_REGISTRY.get(cfg.MODEL.META_ARCHITECTURE)
    except KeyError:
        return False
    return isinstance(model_class, type) and issubclass(model_class, (SemanticSegmentor, PanopticFPN))


class DropBlockTrainer(DefaultTrainer):
    """DefaultTrainer + the DropBlock schedule hook, evaluator by dataset type, Cutout,
    the project's LR schedules (``dropblock_det.solver``), data loaders whose errors name
    the broken dataset file, and (on detectron2 v0.6) the optimizer in checkpoints. The
    model is checked to have DropBlock wherever MODEL.DROPBLOCK turns it on, and
    auto_scale_workers scales the DropBlock schedule's iterations too."""

    def __init__(self, cfg: CfgNode):
        # DefaultTrainer.__init__ calls DefaultTrainer.auto_scale_workers by name, which
        # would leave the DropBlock schedule unscaled; scaled here first, its own call then
        # finds REFERENCE_WORLD_SIZE equal to the world size and changes nothing.
        super().__init__(self.auto_scale_workers(cfg, comm.get_world_size()))

    @staticmethod
    def auto_scale_workers(cfg: CfgNode, num_workers: int) -> CfgNode:
        """DefaultTrainer.auto_scale_workers (batch, LR, iterations scaled from
        SOLVER.REFERENCE_WORLD_SIZE to `num_workers`) plus MODEL.DROPBLOCK.SCHEDULE's
        START_ITER and END_ITER, scaled as SOLVER.MAX_ITER is, so the ramp keeps its place
        in training (END_ITER -1 follows MAX_ITER by itself)."""
        reference = cfg.SOLVER.REFERENCE_WORLD_SIZE
        scaled = DefaultTrainer.auto_scale_workers(cfg, num_workers)
        if scaled is cfg:  # REFERENCE_WORLD_SIZE 0 or already num_workers
            return cfg
        frozen = scaled.is_frozen()
        scaled.defrost()
        factor = num_workers / reference
        schedule = scaled.MODEL.DROPBLOCK.SCHEDULE
        schedule.START_ITER = int(round(schedule.START_ITER / factor))
        if schedule.END_ITER != -1:
            schedule.END_ITER = int(round(schedule.END_ITER / factor))
        if frozen:
            scaled.freeze()
        return scaled

    @classmethod
    def build_model(cls, cfg: CfgNode) -> torch.nn.Module:
        check_rcnn_features(cfg)
        model = super().build_model(cfg)
        check_dropblock_placed(cfg, model)
        return model

    @classmethod
    def build_evaluator(cls, cfg: CfgNode, dataset_name: str,
                        output_folder: Optional[str] = None) -> DatasetEvaluator:
        return build_evaluator(cfg, dataset_name, output_folder)

    @classmethod
    def test_with_TTA(cls, cfg: CfgNode, model: torch.nn.Module) -> "OrderedDict[str, Any]":
        """Evaluate an R-CNN `model` with detectron2's test-time augmentation, as detectron2's
        tools/train_net.py does: DefaultTrainer.test of GeneralizedRCNNWithTTA(cfg, model) (each
        image at every TEST.AUG.MIN_SIZES, capped at TEST.AUG.MAX_SIZE, and flipped too with
        TEST.AUG.FLIP; the detections merged), in eval mode, so DropBlock is off. The results
        are DefaultTrainer.test's with "_TTA" added to each top-level key (`bbox_TTA`,
        `segm_TTA` for one DATASETS.TEST entry; `<dataset>_TTA` for several); the
        predictions go to OUTPUT_DIR/inference_TTA/<dataset>, not over the plain ones."""
        from detectron2.modeling import GeneralizedRCNNWithTTA

        # detectron2's train_net logs it there too (log.txt has the "detectron2" loggers).
        logging.getLogger("detectron2.trainer").info("Running inference with test-time augmentation ...")
        # inference_on_dataset puts the wrapper, and so the model it holds, in eval mode, then
        # back in the wrapper's mode: the model's own, not a new module's (training).
        tta_model = GeneralizedRCNNWithTTA(cfg, model).train(model.training)
        # One folder per dataset, as the plain evaluation's: detectron2's single inference_TTA
        # folder had each test set's predictions overwrite the previous one's.
        evaluators = [cls.build_evaluator(cfg, name, os.path.join(cfg.OUTPUT_DIR, TTA_INFERENCE_DIR, name))
                      for name in cfg.DATASETS.TEST]
        results = cls.test(cfg, tta_model, evaluators)
        return OrderedDict((f"{key}_TTA", value) for key, value in results.items())

    def _test_with_TTA_and_save_results(self) -> "OrderedDict[str, Any]":
        results = self.test_with_TTA(self.cfg, self.model)
        # train() returns (and DefaultTrainer checks TEST.EXPECTED_RESULTS against) the plain
        # results and these together, as --eval-only gives them.
        merged = OrderedDict(getattr(self, "_last_eval_results", None) or {})
        merged.update(results)
        self._last_eval_results = merged
        return results

    @classmethod
    def build_train_loader(cls, cfg: CfgNode):
        # Errors name the broken file: annotation files while the loader is built, images
        # and labels while it runs (detectron2's own messages do not).
        mapper = DatasetMapperNamingFiles(
            cfg, is_train=True, augmentations=build_train_augmentation(cfg))
        if _trains_on_sem_seg_labels(cfg):
            head = cfg.MODEL.SEM_SEG_HEAD
            mapper.expect_sem_seg_labels(head.NUM_CLASSES, head.IGNORE_VALUE,
                                         f"MODEL.SEM_SEG_HEAD.NUM_CLASSES={head.NUM_CLASSES}, "
                                         f"IGNORE_VALUE={head.IGNORE_VALUE}")
        # The sampler's shuffle seed drawn from the RNG that SEED initialised, as detectron2
        # v0.6 and the LazyConfig loaders draw it. detectron2 main seeds it with SEED itself:
        # a yacs run and its LazyConfig twin would see the images in another order, and
        # SEED -1 ("random") would give every run the same order.
        loader_cfg = cfg.clone()
        loader_cfg.defrost()
        loader_cfg.SEED = None
        with naming_dataset_files(cfg.DATASETS.TRAIN):
            # detectron2's own loader arguments for the config, its dataset dicts loaded once:
            # checked against MODEL.MASK_ON / KEYPOINT_ON before the first step.
            arguments = build_detection_train_loader.from_config(loader_cfg, mapper=mapper)
        mapper.check_training_items(arguments["dataset"], f"DATASETS.TRAIN={tuple(cfg.DATASETS.TRAIN)}")
        check_training_files(arguments["dataset"], f"DATASETS.TRAIN={tuple(cfg.DATASETS.TRAIN)}")
        return build_detection_train_loader(**arguments)

    @classmethod
    def build_test_loader(cls, cfg: CfgNode, dataset_name: str):
        mapper = DatasetMapperNamingFiles(cfg, is_train=False)
        with naming_dataset_files([dataset_name]):
            return build_detection_test_loader(cfg, dataset_name, mapper=mapper)

    @classmethod
    def build_lr_scheduler(cls, cfg: CfgNode, optimizer: torch.optim.Optimizer):
        # WarmupPolyLR (segmentation) there, every other name delegated to detectron2.
        return solver.build_lr_scheduler(cfg, optimizer)

    def state_dict(self) -> Dict[str, Any]:
        ret = super().state_dict()
        if not _DEFAULT_TRAINER_SAVES_OPTIMIZER:
            # detectron2 v0.6's DefaultTrainer saves neither the optimizer nor AMP's grad
            # scaler: a resumed run would restart with zero momentum and the LR of
            # iteration 0. Same key as current detectron2, so checkpoints are interchangeable.
            ret["_trainer"] = self._trainer.state_dict()
        return ret

    def load_state_dict(self, state_dict: Dict[str, Any]) -> None:
        if "_trainer" not in state_dict:
            # A checkpoint of detectron2 v0.6's own DefaultTrainer: the iteration and the hooks'
            # state, no optimizer. Current detectron2 failed on it after the data loader was
            # built (KeyError: '_trainer'); resumed here as on v0.6, with a fresh optimizer state.
            warnings.warn("The checkpoint resumed from holds no optimizer state (saved by detectron2 v0.6's "
                          "own DefaultTrainer?): the run resumes with zero momentum", UserWarning, stacklevel=2)
            TrainerBase.load_state_dict(self, state_dict)
            self._set_the_resumed_iterations_lr()
            return
        super().load_state_dict(state_dict)
        if not _DEFAULT_TRAINER_SAVES_OPTIMIZER:
            self._trainer.load_state_dict(state_dict["_trainer"])
        self._set_the_resumed_iterations_lr()

    def _set_the_resumed_iterations_lr(self) -> None:
        """The optimizer state holds the LR the run's schedule gave its next iteration; this
        config's scheduler, restored to the run's progress, gives that iteration its own. They
        differ when the resume changes the schedule (a larger SOLVER.MAX_ITER, other STEPS), and
        the first resumed iteration trained at the old one (0 after a finished poly run), the
        next at the new; now every resumed iteration has this config's. Only for detectron2's
        LRMultiplier and WarmupPolyLR, whose get_lr is a function of the progress alone (torch's
        chainable schedulers compute from the optimizer's current LR). After a checkpoint
        without optimizer state too, whose fresh optimizer held the LR of iteration 0."""
        if isinstance(self.scheduler, (LRMultiplier, solver.WarmupPolyLR)):
            for group, lr in zip(self.optimizer.param_groups, self.scheduler.get_lr()):
                group["lr"] = lr

    def build_hooks(self) -> List[hooks.HookBase]:
        # DefaultTrainer.__init__ makes its checkpointer just before it calls build_hooks, whose
        # PeriodicCheckpointer keeps it: replaced here so checkpoints are written atomically.
        old = self.checkpointer
        self.checkpointer = AtomicCheckpointer(old.model, old.save_dir, save_to_disk=old.save_to_disk,
                                               **old.checkpointables)
        ret = super().build_hooks()
        from fvcore.nn.precise_bn import get_bn_modules

        from .hooks import DropBlockScheduleHook

        if self.cfg.TEST.PRECISE_BN.ENABLED and not get_bn_modules(self.model):
            # detectron2 adds its PreciseBN hook only for BatchNorm layers that train, and
            # drops it without a word for a model normalised by FrozenBN, GN or none.
            warnings.warn("TEST.PRECISE_BN.ENABLED=True, but the model has no BatchNorm layer that trains (its "
                          "norms are FrozenBN, GN or none): detectron2 skips Precise BN without a word, so no "
                          "statistics are recomputed; set TEST.PRECISE_BN.ENABLED=False, or train BN or SyncBN "
                          "layers", UserWarning, stacklevel=2)

        # First, so keep_prob is set before any other hook or the step reads the model.
        ret.insert(0, DropBlockScheduleHook.from_config(self.cfg))
        if self.cfg.TEST.AUG.ENABLED:
            # After training only (period 0), after the plain evaluation, as detectron2's
            # train_net adds it; before the writers (last, on the main process), so its
            # results reach metrics.json as the plain evaluation's do.
            writers = [i for i, hook in enumerate(ret) if isinstance(hook, hooks.PeriodicWriter)]
            ret.insert(writers[0] if writers else len(ret), hooks.EvalHook(0, self._test_with_TTA_and_save_results))
        return ret

    def train(self) -> Optional["OrderedDict[str, Any]"]:
        """Train, then return the last evaluation's results ({} or None if there was
        none), with TEST.AUG.ENABLED the test-time augmented ones too (:meth:`test_with_TTA`'s
        keys). DefaultTrainer returns them only when TEST.EXPECTED_RESULTS is set."""
        results = super().train()
        if results is None:
            # Set by DefaultTrainer's EvalHook callback (v0.6 and current main).
            results = getattr(self, "_last_eval_results", None)
        return results
