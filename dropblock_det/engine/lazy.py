"""The training logic behind ``tools/lazyconfig_train_net.py``: detectron2's LazyConfig
(Python config) loop, as in detectron2's own ``tools/lazyconfig_train_net.py``, plus the
DropBlock keep_prob schedule and the checks and safeguards of ``tools/train_net.py``
(inputs checked before data loading, one run per output folder, an earlier run's files
moved aside, checkpoints written atomically and loaded strictly).

A config is what detectron2's LazyConfig training expects (``model``, ``dataloader.train``,
``dataloader.test``, ``dataloader.evaluator``, ``optimizer``, ``lr_multiplier``, ``train``:
see ``configs/common/``), with one more optional key, ``train.dropblock_schedule``: the
:class:`DropBlockScheduleHook` that ramps keep_prob (``L(DropBlockScheduleHook)(start_iter=0,
end_iter=None)``: over the whole training); None keeps every regularizer at its target.
A config without the key gets that default hook when its model has a regularizer.

The checks before a run (the config read, each key checked, the checkpoint to resume) are
in ``lazy_config_checks.py``; this module builds and trains.
"""
from __future__ import annotations

import logging
from typing import Any, Dict, Optional, Tuple

import detectron2.utils.comm as comm
import torch
from detectron2.config import instantiate
from detectron2.engine import AMPTrainer, SimpleTrainer, default_writers, hooks
from detectron2.engine.defaults import create_ddp_model
from detectron2.evaluation import inference_on_dataset, print_csv_format
from omegaconf import DictConfig

from ..data.file_errors import DatasetMapperNamingFiles, check_training_files, naming_dataset_files
from .checkpoint import AtomicCheckpointer, check_checkpoint_fits
from .hooks import unwrap_model
from .lazy_config_checks import (
    RESUME_ADVICE,
    check_lazy_model,
    check_lazy_rcnn_training_data,
    instantiate_naming_key,
    lazy_schedule_hook,
    lazy_split_names,
)

__all__ = [
    "build_lazy_model",
    "build_lazy_train_loader",
    "do_test",
    "do_train",
]

logger = logging.getLogger("dropblock_det.lazy")


def build_lazy_model(cfg: DictConfig, train: bool = True) -> torch.nn.Module:
    """`instantiate(cfg.model)` on `train.device` (errors naming the key), checked by
    :func:`check_lazy_model`."""
    model = instantiate_naming_key(cfg.model, "model")
    model.to(cfg.train.device)
    check_lazy_model(cfg, model, train)
    return model


def _build_loader(cfg: DictConfig, split: str) -> Any:
    """instantiate(dataloader.<split>), whose errors loading a dataset (a corrupt annotation
    file) name the dataset and its files, as train_net's loaders' do."""
    key, names = lazy_split_names(cfg, split)
    with naming_dataset_files(names):
        return instantiate(cfg.dataloader[split])


def build_lazy_train_loader(cfg: DictConfig, model: torch.nn.Module) -> Any:
    """instantiate(dataloader.train) (errors naming the dataset files); its dataset is built
    first and checked, before the first step: every item's files there
    (:func:`check_training_files`), and, for a model with an R-CNN mask or keypoint head, what
    the head trains on (:func:`check_lazy_rcnn_training_data`)."""
    node = cfg.dataloader.train
    labels = _sem_seg_label_range(model)
    if not isinstance(node.get("dataset"), DictConfig):
        return _build_loader(cfg, "train")
    from detectron2.utils.registry import locate

    key, names = lazy_split_names(cfg, "train")
    with naming_dataset_files(names):
        dataset = instantiate(node.dataset)
    check_lazy_rcnn_training_data(dataset, model, names)
    check_training_files(dataset, f"{key}={names}")
    with naming_dataset_files(names):
        # The rest of the node as detectron2's instantiate builds it, with that dataset.
        kwargs = {k: instantiate(v) for k, v in node.items() if k != "dataset"}
        if labels and isinstance(kwargs.get("mapper"), DatasetMapperNamingFiles):
            kwargs["mapper"].expect_sem_seg_labels(*labels)
        target = kwargs.pop("_target_")
        return (locate(target) if isinstance(target, str) else target)(dataset=dataset, **kwargs)


def _sem_seg_label_range(model: torch.nn.Module) -> Optional[Tuple[int, int, str]]:
    """(classes, ignore value, their keys) of the segmentation labels `model`'s head trains on
    (detectron2's DeepLab and SemSegFPN heads: a predictor conv and ignore_value), None for a
    model without one."""
    head = getattr(unwrap_model(model), "sem_seg_head", None)
    predictor, ignore = getattr(head, "predictor", None), getattr(head, "ignore_value", None)
    if not isinstance(getattr(predictor, "out_channels", None), int) or not isinstance(ignore, int):
        return None
    return (predictor.out_channels, ignore,
            f"model.sem_seg_head.num_classes={predictor.out_channels}, ignore_value={ignore}")


def do_test(cfg: DictConfig, model: torch.nn.Module) -> Optional[Dict[str, Any]]:
    """Evaluate `model` on dataloader.test with dataloader.evaluator (None without one)."""
    if "evaluator" not in cfg.dataloader:
        return None
    results = inference_on_dataset(model, _build_loader(cfg, "test"), instantiate(cfg.dataloader.evaluator))
    if comm.is_main_process():
        print_csv_format(results)
    return results


def do_train(cfg: DictConfig, resume_from: str = "", resume_checked: bool = False) -> Optional[Dict[str, Any]]:
    """detectron2's LazyConfig training loop with the DropBlock schedule hook first, atomic
    checkpoints, and `resume_from` (the run's last checkpoint, checked against the model
    before the data loader is built unless the caller did, `resume_checked`, as
    tools/lazyconfig_train_net.py does with `lazy_config_checks.check_lazy_checkpoint`; ''
    starts from train.init_checkpoint, loaded as detectron2 does: non-strictly, so ImageNet
    backbone weights load into a detector).
    Returns the last evaluation's results ({} when there was none)."""
    model = build_lazy_model(cfg)
    logger.info("Model:\n%s", model)
    if resume_from and not resume_checked:
        # Its fit only: a checkpoint that has reached train.max_iter is evaluated again (a
        # sweep cell stopped after its last step); the tool refuses that for a --resume.
        check_checkpoint_fits(model, resume_from, "--resume", RESUME_ADVICE)
    schedule = lazy_schedule_hook(cfg, model)
    cfg.optimizer.params.model = model
    optimizer = instantiate(cfg.optimizer)
    train_loader = build_lazy_train_loader(cfg, model)

    model = create_ddp_model(model, **cfg.train.get("ddp", {}))
    trainer = (AMPTrainer if cfg.train.amp.enabled else SimpleTrainer)(model, train_loader, optimizer)
    checkpointer = AtomicCheckpointer(model, cfg.train.output_dir, trainer=trainer)
    results: Dict[str, Any] = {}

    def test_and_keep() -> Optional[Dict[str, Any]]:
        outcome = do_test(cfg, model)
        if outcome is not None:
            results.clear()
            results.update(outcome)
        return outcome

    trainer.register_hooks([
        schedule,  # first: keep_prob is set before any other hook or the step reads the model
        hooks.IterationTimer(),
        hooks.LRScheduler(scheduler=instantiate(cfg.lr_multiplier)),
        hooks.PeriodicCheckpointer(checkpointer, **cfg.train.checkpointer) if comm.is_main_process() else None,
        hooks.EvalHook(cfg.train.eval_period, test_and_keep),
        hooks.PeriodicWriter(default_writers(cfg.train.output_dir, cfg.train.max_iter), period=cfg.train.log_period)
        if comm.is_main_process() else None,
    ])
    if resume_from:
        checkpointer.resume_or_load(resume_from, resume=True)
        # The checkpoint holds the iteration that had just finished.
        start_iter = trainer.iter + 1
    else:
        checkpointer.resume_or_load(cfg.train.init_checkpoint, resume=False)
        start_iter = 0
    trainer.train(start_iter, cfg.train.max_iter)
    return results
