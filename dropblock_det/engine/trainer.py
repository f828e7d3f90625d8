"""The training logic behind ``tools/train_net.py``: a detectron2 ``DefaultTrainer`` that
adds the DropBlock keep_prob schedule, picks the evaluator from the dataset, applies Cutout
when configured, and checks its inputs (config, datasets, checkpoint) before any training.

Everything here runs on detectron2 v0.6 (with or without its compiled operators) and on
current detectron2 main.
"""
from __future__ import annotations

import contextlib
import difflib
import fnmatch
import functools
import importlib
import logging
import math
import os
import re
import shutil
import time
import warnings
from collections import OrderedDict
from pathlib import Path
from typing import IO, Any, Callable, Dict, Iterator, List, Optional, Sequence, Tuple

import detectron2
import detectron2.utils.comm as comm
import numpy as np
import torch
from detectron2.checkpoint import DetectionCheckpointer
from detectron2.config import CfgNode, get_cfg
from detectron2.data import (
    DatasetCatalog,
    MetadataCatalog,
    build_detection_test_loader,
    build_detection_train_loader,
)
from detectron2.data import transforms as T
from detectron2.engine import DefaultTrainer, TrainerBase, hooks
from detectron2.evaluation import (
    COCOEvaluator,
    DatasetEvaluator,
    PascalVOCDetectionEvaluator,
    SemSegEvaluator,
)
from detectron2.utils.file_io import PathManager
from fvcore.common.checkpoint import Checkpointer

from .. import data as _data  # noqa: F401  (registers the datasets)
from .. import modeling as _modeling  # noqa: F401  (registers backbones, meta-archs, heads)
from .. import solver
from ..config import add_dropblock_config, check_impl_device, locations_on, validate_dropblock_config
from ..data.file_errors import DatasetMapperNamingFiles, check_evaluation_files, naming_dataset_files
from ..layers.base import is_integer, is_real_number


__all__ = [
    "AtomicCheckpointer",
    "DropBlockTrainer",
    "EVAL_FILES",
    "RUN_FILES",
    "archive_previous_run",
    "build_evaluator",
    "dataset_evaluator",
    "evaluator_cannot_read",
    "build_train_augmentation",
    "check_class_counts",
    "check_config_before_run",
    "check_dataset_classes",
    "checked_device",
    "check_dataset_names",
    "check_model_config",
    "check_evaluator_types",
    "sem_seg_metadata_missing",
    "check_lr_scheduler",
    "check_optimizer",
    "check_checkpoint_fits",
    "check_ddp_device",
    "check_eval_checkpoint",
    "check_resume_checkpoint",
    "check_resume_grad_scaler",
    "check_resume_optimizer",
    "check_scaled_to_world_size",
    "check_stock_retinanet_norm",
    "check_test_inputs",
    "check_test_time_augmentation",
    "check_crop",
    "check_train_inputs",
    "claim_output_dir",
    "has_compiled_ops",
    "image_format_error",
    "resize_error",
    "is_url",
    "last_checkpoint",
    "launch_tool",
    "check_launch_processes",
    "load_config",
    "load_checkpoint_strict",
    "build_on_meta_device",
    "deepest_existing_path",
    "is_meta_device_limit",
    "meta_model",
    "missing_config_file",
    "prepare_output_dir",
    "read_checkpoint",
    "state_dict_problems",
    "TTA_INFERENCE_DIR",
    "train_samplers",
    "check_weights_path",
    "check_weights_readable",
    "keep_resumed_final_checkpoint",
    "local_checkpoint",
    "CheckpointMismatchError",
]


# ----------------------------------------------------------------------------- config
def missing_config_file(config_file: str) -> str:
    """How a config file path that is not a file fails: "does not exist", or is a folder."""
    return "is a folder, not a config file" if config_file and Path(config_file).is_dir() else "does not exist"


def load_config(config_file: str, opts: Sequence[str] = (), extra_setup=None) -> CfgNode:
    """get_cfg -> add_dropblock_config -> [extra_setup(cfg)] -> merge file -> merge opts.

    Errors name what is wrong: FileNotFoundError for a missing ``config_file`` or _BASE_; KeyError
    naming the file (or the opt) for a key that does not exist; ValueError for an odd
    number of opts, and naming the file and tools/lazyconfig_train_net.py for a LazyConfig
    (`engine.lazy.is_lazy_config_file`, e.g. a LazyConfig run's config.yaml). The returned
    config is not frozen.
    """
    cfg = get_cfg()
    add_dropblock_config(cfg)  # includes the DeepLab keys the segmentation configs need
    if extra_setup is not None:
        extra_setup(cfg)
    if config_file:
        if not Path(config_file).is_file():
            raise FileNotFoundError(f"config file {config_file!r} {missing_config_file(config_file)}")
        if config_file.endswith(".py"):  # yacs would read it as YAML: a ParserError
            raise ValueError(f"config file {config_file!r} is a LazyConfig (a Python config), not a "
                             "yacs config: train it with tools/lazyconfig_train_net.py")
        try:
            cfg.merge_from_file(config_file)
        except KeyError as e:
            from .lazy import is_lazy_config_file

            if is_lazy_config_file(config_file):  # e.g. a LazyConfig run's config.yaml
                raise ValueError(f"config file {config_file!r} is a LazyConfig (its top level has "
                                 "`model:`), not a yacs config: train it with "
                                 "tools/lazyconfig_train_net.py") from None
            message = e.args[0] if e.args else str(e)
            raise KeyError(f"config file {config_file!r}: {message}{_did_you_mean(cfg, message)} "
                           "(add_dropblock_config and detectron2's get_cfg define the "
                           "known keys)") from None
        except ValueError as e:  # type mismatch
            raise ValueError(f"config file {config_file!r}: {e}") from None
        except FileNotFoundError as e:  # the file exists (checked above): a _BASE_ does not
            if not e.filename:
                raise
            base = os.path.normpath(e.filename)  # yacs joins "<dir>/../Base.yaml" as it is
            raise FileNotFoundError(f"config file {config_file!r}: the _BASE_ {base!r} does not exist "
                                    "(a _BASE_ path is relative to the config file that names it: a config "
                                    "copied elsewhere needs its bases beside it, or absolute _BASE_ paths)") from None
    opts = list(opts or [])
    if len(opts) % 2:
        raise ValueError(f"command-line opts must be KEY VALUE pairs, got an odd number: {opts}")
    for key, value in zip(opts[0::2], opts[1::2]):
        try:
            cfg.merge_from_list([key, value])
        # yacs reports an unknown key in opts with an AssertionError ("Non-existent key").
        except (KeyError, AssertionError) as e:
            message = e.args[0] if e.args else str(e)
            raise KeyError(f"command-line opt {key}={value!r}: {message}"
                           f"{_did_you_mean(cfg, message)}") from None
        except ValueError as e:  # type mismatch
            raise ValueError(f"command-line opt {key}={value!r}: {e}") from None
        except TypeError:  # yacs tested `in` on a value: "argument of type 'float' is not iterable"
            parts, node = key.split("."), cfg
            for depth, part in enumerate(parts[:-1], 1):
                if not isinstance(node, CfgNode) or part not in node:
                    break
                node = node[part]
                if not isinstance(node, CfgNode):
                    raise KeyError(f"command-line opt {key}={value!r}: {'.'.join(parts[:depth])} is a value "
                                   f"({node!r}), not a group of keys") from None
            raise
    return cfg


def _resolve_key(node: Any, parts: Sequence[str]) -> Optional[List[str]]:
    """The spelling in `node` of the dotted key `parts`, matching case aside (yacs keys are
    upper case; a user may type model.dropblock.keep_prob); None when it is not there."""
    path: List[str] = []
    for part in parts:
        if not isinstance(node, CfgNode):
            return None
        by_upper = {str(name).upper(): name for name in node.keys()}
        if part.upper() not in by_upper:
            return None
        path.append(by_upper[part.upper()])
        node = node[path[-1]]
    return path


def close_config_keys(cfg: CfgNode, key: str, n: int = 3) -> List[str]:
    """The keys of `cfg` closest to the dotted `key` it does not have: the same key in the
    config's case, or the closest spellings of the first part that is not there (with the
    rest of the key where it exists under them). Empty when nothing is close or `key` goes
    into a value."""
    parts = key.split(".")
    node: Any = cfg
    path: List[str] = []  # the config's spelling of the parts found so far
    for depth, part in enumerate(parts):
        if not isinstance(node, CfgNode):
            return []
        by_upper = {str(name).upper(): name for name in node.keys()}
        if part.upper() in by_upper:
            path.append(by_upper[part.upper()])
            node = node[path[-1]]
            continue
        return [".".join(path + [by_upper[name]] + (_resolve_key(node[by_upper[name]], parts[depth + 1:]) or []))
                for name in difflib.get_close_matches(part.upper(), list(by_upper), n=n)]
    spelled = ".".join(path)
    return [spelled] if spelled != key else []


def _did_you_mean(cfg: CfgNode, yacs_message: str) -> str:
    """" (did you mean A, B?)" for yacs' unknown-key message, else "" (a renamed key's
    message already says what to write)."""
    match = re.match(r"Non-existent (?:config )?key: (\S+)$", yacs_message)
    close = close_config_keys(cfg, match.group(1)) if match else []
    return f" (did you mean {', '.join(close)}?)" if close else ""


# ----------------------------------------------------------------------------- datasets
def check_dataset_names(cfg: CfgNode, check_files: bool = True,
                        keys: Sequence[str] = ("TRAIN", "TEST"),
                        files_made_later: Sequence[str] = ()) -> None:
    """Fail early for the DATASETS.<key> names (of ``keys``) that are not registered
    (KeyError naming the name and the key), a DATASETS.TEST name given twice (ValueError:
    detectron2 keys the evaluation results by name, so one entry's would stand for both)
    or whose expected files are missing (FileNotFoundError listing each missing file or
    folder), except the files of ``files_made_later`` (sets the caller makes afterwards:
    main_job's synthetic ones)."""
    from ..data.dataset_check import check_datasets

    registered = set(DatasetCatalog.list())
    names: Dict[str, str] = {}  # name -> the key that names it first
    for key in keys:
        if key == "TEST":
            repeated = sorted({name for name in cfg.DATASETS.TEST if list(cfg.DATASETS.TEST).count(name) > 1})
            if repeated:
                raise ValueError(f"DATASETS.TEST={tuple(cfg.DATASETS.TEST)!r} names {', '.join(map(repr, repeated))} "
                                 "more than once: detectron2 keys the evaluation results by dataset name")
        for name in cfg.DATASETS[key]:
            if name not in registered:
                raise KeyError(
                    f"DATASETS.{key} names {name!r}, which is not a registered dataset. "
                    f"Registered: {', '.join(sorted(registered))}")
            names.setdefault(name, f"DATASETS.{key}")
    if check_files:
        checked = {name: key for name, key in names.items() if name not in files_made_later}
        check_datasets(checked, keys=checked)


# The metadata field that lists a dataset's classes, by the kind of class a model predicts.
_CLASS_FIELDS = {"thing": "thing_classes", "stuff": "stuff_classes"}


def check_class_counts(counts: Sequence[Tuple[str, Any, str]], datasets: Sequence[Tuple[str, str]],
                       ignore: Sequence[Tuple[str, Any]] = (), ignore_datasets: Sequence[Tuple[str, str]] = ()) -> None:
    """The model's class counts against the datasets' metadata, before anything is loaded:
    `counts` are (config key, its value, "thing" or "stuff"), `datasets` (config key, dataset
    name). A dataset whose metadata has no such class list (thing_classes / stuff_classes) is
    left alone: only its loading would tell. ValueError naming both keys, the value and the
    dataset's class count: with more classes than the dataset, a detector trains fully and the
    evaluation fails ("A prediction has class=48, but the dataset only has 3 classes"); with
    fewer, the classes past the count train as background, silently. `ignore` (config key,
    value) is the segmentation loss's ignore value, checked against the metadata
    ignore_label of `ignore_datasets` (the training sets: their labels mark the pixels to
    leave out with it; a different value trains those pixels as a class, or fails at the
    first step with "Target 255 is out of bounds")."""
    from detectron2.data import MetadataCatalog

    for dataset_key, name in datasets:
        metadata = MetadataCatalog.get(name)
        for key, value, kind in counts:
            classes = getattr(metadata, _CLASS_FIELDS[kind], None)
            if classes is None or value == len(classes):
                continue
            shown = "[" + ", ".join(map(repr, list(classes)[:10])) + (", ...]" if len(classes) > 10 else "]")
            raise ValueError(
                f"{key}={value!r}, but {dataset_key} names {name!r}, which has {len(classes)} classes "
                f"(its metadata {_CLASS_FIELDS[kind]}: {shown}): set {key} to {len(classes)} "
                + ("(a model with more classes predicts ids the dataset does not have, and its evaluation "
                   "fails after the whole training)" if isinstance(value, int) and value > len(classes) else
                   ("(the loss fails at the first step on the dataset's labels past the model's count)"
                    if kind == "stuff" else "(the dataset's classes past the model's count would train as "
                    "background, silently)")))
    for dataset_key, name in ignore_datasets:
        label = getattr(MetadataCatalog.get(name), "ignore_label", None)
        for key, value in ignore:
            if label is not None and value != label:
                raise ValueError(
                    f"{key}={value!r}, but {dataset_key} names {name!r}, whose labels mark the pixels to "
                    f"ignore with {label} (its metadata ignore_label): set {key} to {label} (the loss would "
                    "train those pixels as a class, or fail at the first step)")


def check_dataset_classes(cfg: CfgNode, keys: Sequence[str] = ("TRAIN", "TEST")) -> None:
    """:func:`check_class_counts` for the class count of the model MODEL.META_ARCHITECTURE
    builds (a RetinaNet: MODEL.RETINANET.NUM_CLASSES; an R-CNN: MODEL.ROI_HEADS.NUM_CLASSES,
    against thing_classes; a SemanticSegmentor, and a PanopticFPN's semantic head besides its
    ROI heads: MODEL.SEM_SEG_HEAD.NUM_CLASSES against stuff_classes, and
    MODEL.SEM_SEG_HEAD.IGNORE_VALUE against the training sets' ignore_label) and the
    DATASETS.<key> sets (of `keys`). A model of the user's own that is none of these is not
    judged."""
    from detectron2.modeling import META_ARCH_REGISTRY, GeneralizedRCNN, PanopticFPN, SemanticSegmentor
    from detectron2.modeling.meta_arch.retinanet import RetinaNet

    try:
        model_class = META_ARCH_REGISTRY.get(cfg.MODEL.META_ARCHITECTURE)
    except KeyError:  # the model check names it
        return
    if not isinstance(model_class, type):
        return
    counts: List[Tuple[str, Any, str]] = []
    ignore: List[Tuple[str, Any]] = []
    if issubclass(model_class, RetinaNet):
        counts.append(("MODEL.RETINANET.NUM_CLASSES", cfg.MODEL.RETINANET.NUM_CLASSES, "thing"))
    elif issubclass(model_class, GeneralizedRCNN):
        counts.append(("MODEL.ROI_HEADS.NUM_CLASSES", cfg.MODEL.ROI_HEADS.NUM_CLASSES, "thing"))
    # A PanopticFPN's semantic labels are the stuff_classes too: in detectron2's
    # *_panoptic_separated sets every thing pixel is class 0 ("things"), then 53 stuff (54).
    if issubclass(model_class, (SemanticSegmentor, PanopticFPN)):
        counts.append(("MODEL.SEM_SEG_HEAD.NUM_CLASSES", cfg.MODEL.SEM_SEG_HEAD.NUM_CLASSES, "stuff"))
        ignore.append(("MODEL.SEM_SEG_HEAD.IGNORE_VALUE", cfg.MODEL.SEM_SEG_HEAD.IGNORE_VALUE))
    datasets = [(f"DATASETS.{key}", name) for key in keys for name in dict.fromkeys(cfg.DATASETS[key])]
    check_class_counts(counts, datasets, ignore, [d for d in datasets if d[0] == "DATASETS.TRAIN"])


# ----------------------------------------------------------------------------- evaluation
def has_compiled_ops() -> bool:
    """Whether detectron2's compiled operators exist (the fast COCO evaluation needs them)."""
    try:
        from detectron2 import _C

        _C.COCOevalAccumulate  # noqa: B018 - the placeholder _C raises ImportError here
    except (ImportError, AttributeError):
        return False
    return True


def build_evaluator(cfg: CfgNode, dataset_name: str,
                    output_folder: Optional[str] = None) -> DatasetEvaluator:
    """:func:`dataset_evaluator` writing into ``output_folder`` (default
    OUTPUT_DIR/inference/<dataset>)."""
    if output_folder is None:
        output_folder = os.path.join(cfg.OUTPUT_DIR, "inference", dataset_name)
    return dataset_evaluator(dataset_name, output_folder)


def dataset_evaluator(dataset_name: str, output_dir: Optional[str] = None) -> DatasetEvaluator:
    """The evaluator for ``dataset_name``, chosen by its metadata ``evaluator_type``:
    "coco" -> COCOEvaluator (the tasks the predictions have, as detectron2's own train_net:
    bbox, and segm / keypoints for Mask / Keypoint R-CNN, where the dataset's annotations
    have them; fast implementation only with compiled operators),
    "pascal_voc" -> PascalVOCDetectionEvaluator, "sem_seg" -> SemSegEvaluator; predictions
    are written into ``output_dir`` (None: not written). Raises ValueError naming the
    dataset and type otherwise. A LazyConfig's ``dataloader.evaluator =
    L(dataset_evaluator)(dataset_name=...)``."""
    evaluator_type = _evaluator_type(dataset_name)
    if evaluator_type == "coco":
        # tasks=None: inferred from the predictions, so a Mask R-CNN gets its segm AP.
        return _GroundTruthCOCOEvaluator(dataset_name, tasks=None, distributed=True,
                                         output_dir=output_dir, use_fast_impl=has_compiled_ops())
    if evaluator_type == "pascal_voc":
        return _NamingPascalVOCDetectionEvaluator(dataset_name)
    if evaluator_type == "sem_seg":
        return _GroundTruthClassesSemSegEvaluator(dataset_name, distributed=True, output_dir=output_dir)
    raise _no_evaluator(dataset_name, evaluator_type)


class _GroundTruthClassesSemSegEvaluator(SemSegEvaluator):
    """SemSegEvaluator whose mIoU is the mean IoU over the classes in the ground truth on every
    detectron2 version, as current detectron2 computes it. v0.6 divided that sum by the
    classes in the ground truth *or* the predictions, so the same predictions scored another
    mIoU there (2.52 on main, 1.01 on v0.6) wherever a class was predicted that the images
    do not have: a subset, the synthetic and mini sets. Per-class IoUs, fwIoU, mACC and pACC
    are the same on both and left as they are. A label it cannot score is named (detectron2
    failed on it with "cannot reshape array of size 221 into shape (5,5)", naming no file:
    an --eval-only or an analysis evaluates a test set it has not checked)."""

    def process(self, inputs, outputs):
        try:
            super().process(inputs, outputs)
        except Exception as error:  # noqa: BLE001 - looking for the label that fails
            from ..data.file_errors import DatasetFileError, sem_seg_label_problem

            for item, output in zip(inputs, outputs):
                path = self.input_file_to_gt_file.get(item.get("file_name"))
                if path is None:
                    continue
                try:
                    problem = sem_seg_label_problem(path, self._num_classes, self._ignore_label,
                                                    tuple(output["sem_seg"].shape[-2:]))
                except (OSError, SyntaxError) as e:  # PIL: not an image, truncated
                    problem = f"unreadable ({type(e).__name__}: {e})"
                if problem:
                    raise DatasetFileError(f"dataset {self._dataset_name!r}: the label {path} (of image "
                                           f"{item['file_name']}) is {problem}; its evaluator cannot score it "
                                           f"({type(error).__name__}: {error})") from error
            raise

    def evaluate(self):
        results = super().evaluate()
        if not results:  # not the main process
            return results
        matrix = self._conf_matrix[:-1, :-1].astype(np.float64)  # (predicted, ground truth)
        true_positives, in_ground_truth = matrix.diagonal(), matrix.sum(axis=0)
        union = in_ground_truth + matrix.sum(axis=1) - true_positives
        scored = (in_ground_truth > 0) & (union > 0)
        miou = 100 * float(np.mean(true_positives[scored] / union[scored])) if scored.any() else math.nan
        res = results["sem_seg"]
        if res["mIoU"] != miou and not (math.isnan(miou) and math.isnan(res["mIoU"])):
            self._logger.info(f"mIoU over the classes in the ground truth: {miou:.4f} (detectron2 "
                              f"{detectron2.__version__} gave {res['mIoU']:.4f}, dividing by the predicted ones too)")
            res["mIoU"] = miou
            if self._output_dir:  # what super() saved, with the mIoU returned
                with PathManager.open(os.path.join(self._output_dir, "sem_seg_evaluation.pth"), "wb") as f:
                    torch.save(res, f)
        return results


class _NamingPascalVOCDetectionEvaluator(PascalVOCDetectionEvaluator):
    """PascalVOCDetectionEvaluator whose failure to read an annotation names the file: it
    reads them only after the whole inference, and detectron2 failed with "'NoneType' object
    has no attribute 'text'" (an object without <pose>), naming none (an --eval-only or an
    analysis evaluates a test set it has not checked)."""

    def evaluate(self):
        try:
            return super().evaluate()
        except Exception as error:  # noqa: BLE001 - looking for the annotation that fails
            from ..data.file_errors import VOC_EVALUATION_FIELDS, DatasetFileError, unparsable_voc_annotation

            unparsable = unparsable_voc_annotation(self._dataset_name)
            if unparsable is None:
                raise
            path, e = unparsable
            raise DatasetFileError(f"dataset {self._dataset_name!r}: detectron2's PASCAL VOC evaluator cannot read "
                                   f"its annotation {path} ({type(e).__name__}: {e}; {VOC_EVALUATION_FIELDS})") from error


class _GroundTruthCOCOEvaluator(COCOEvaluator):
    """COCOEvaluator whose tasks, inferred from the predictions, leave out those the
    dataset's annotations cannot score: a Mask R-CNN evaluated on a set with boxes only
    (the synthetic one) gets its box AP and a warning, where pycocotools raised
    "KeyError: 'segmentation'" after the whole inference (after the whole training)."""

    _GROUND_TRUTH_FIELDS = {"segm": "segmentation", "keypoints": "keypoints"}

    def _tasks_from_predictions(self, predictions):
        tasks = super()._tasks_from_predictions(predictions)
        annotations = self._coco_api.dataset.get("annotations", [])
        unscored = [task for task in tasks if task in self._GROUND_TRUTH_FIELDS
                    and any(self._GROUND_TRUTH_FIELDS[task] not in a for a in annotations)]
        if unscored:
            self._logger.warning(
                f"{self._metadata.name}: the model predicts {', '.join(unscored)}, but the dataset's "
                f"annotations have no {', '.join(repr(self._GROUND_TRUTH_FIELDS[t]) for t in unscored)}: "
                "not evaluated")
        return [task for task in tasks if task not in unscored]


EVALUATOR_TYPES = ("coco", "pascal_voc", "sem_seg")


def _evaluator_type(dataset_name: str) -> Optional[str]:
    return getattr(MetadataCatalog.get(dataset_name), "evaluator_type", None)


def _no_evaluator(dataset_name: str, evaluator_type: Optional[str]) -> ValueError:
    return ValueError(
        f"no evaluator for dataset {dataset_name!r}: its metadata evaluator_type is "
        f"{evaluator_type!r}; supported: {', '.join(map(repr, EVALUATOR_TYPES))}")


def evaluator_cannot_read(model_class: Any, dataset_name: str) -> str:
    """Why `dataset_name`'s evaluator ("a 'sem_seg' dataset, which ...") cannot read the outputs of a `model_class` model ('' when
    it can, or when that is not certain): a segmentation set for a RetinaNet or for
    detectron2's own GeneralizedRCNN / ProposalNetwork (Faster / Mask R-CNN, RPN), a
    detection set for a SemanticSegmentor, a PASCAL VOC set for a ProposalNetwork (its
    evaluator reads detected "instances", an RPN gives "proposals": KeyError: 'instances'
    on the first batch; the COCO evaluator scores proposals). A model of the user's own
    (PanopticFPN-like, a GeneralizedRCNN subclass) may give both kinds of outputs, so only
    these are judged."""
    from detectron2.modeling import GeneralizedRCNN, ProposalNetwork, SemanticSegmentor
    from detectron2.modeling.meta_arch.retinanet import RetinaNet

    evaluator_type = _evaluator_type(dataset_name)
    if not isinstance(model_class, type) or evaluator_type not in EVALUATOR_TYPES:
        return ""
    detector_only = issubclass(model_class, RetinaNet) or model_class in (GeneralizedRCNN, ProposalNetwork)
    if detector_only if evaluator_type == "sem_seg" else issubclass(model_class, SemanticSegmentor):
        return (f"a {evaluator_type!r} dataset, which a {model_class.__name__} cannot "
                f"be evaluated on (it gives {'segmentation' if evaluator_type != 'sem_seg' else 'detection'} outputs)")
    if evaluator_type == "pascal_voc" and model_class is ProposalNetwork:
        return (f"a {evaluator_type!r} dataset, whose evaluator scores detections, which a {model_class.__name__} "
                "cannot be evaluated on (it gives proposals only; a 'coco' dataset's evaluator scores them)")
    return ""


def sem_seg_metadata_missing(dataset_name: str, ignore_label_given: bool = False) -> str:
    """For a "sem_seg" dataset, what detectron2's SemSegEvaluator needs from its metadata and
    does not find there ('' when nothing, or another kind of dataset): `stuff_classes` and,
    unless given to the evaluator (`ignore_label_given`), `ignore_label`. The evaluator is
    built after the whole training, which then ended in "Attribute 'ignore_label' does not
    exist in the metadata"."""
    if _evaluator_type(dataset_name) != "sem_seg":
        return ""
    metadata = MetadataCatalog.get(dataset_name)
    missing = [key for key in ("stuff_classes", "ignore_label")
               if not hasattr(metadata, key) and not (key == "ignore_label" and ignore_label_given)]
    if not missing:
        return ""
    return (f"a 'sem_seg' dataset whose metadata has no {' and no '.join(map(repr, missing))}, which detectron2's "
            f"SemSegEvaluator reads (set MetadataCatalog.get({dataset_name!r}).{missing[0]} where the dataset is "
            "registered; ignore_label is the label of the pixels left out of training and evaluation)")


def check_evaluator_types(cfg: CfgNode) -> None:
    """ValueError (as build_evaluator's) for a DATASETS.TEST entry with no evaluator, one
    whose evaluator cannot read the model's outputs (:func:`evaluator_cannot_read`), or a
    segmentation set without the metadata its evaluator reads (:func:`sem_seg_metadata_missing`), before
    anything is built: detectron2 builds the evaluators only after training, and the second
    kind fails only on the first batch of the evaluation (KeyError: 'sem_seg'), after the
    whole training."""
    from detectron2.modeling import META_ARCH_REGISTRY

    try:
        model_class = META_ARCH_REGISTRY.get(cfg.MODEL.META_ARCHITECTURE)
    except KeyError:  # the model check names it
        model_class = None
    for name in cfg.DATASETS.TEST:
        evaluator_type = _evaluator_type(name)
        if evaluator_type not in EVALUATOR_TYPES:
            raise _no_evaluator(name, evaluator_type)
        why = evaluator_cannot_read(model_class, name)
        if why:
            raise ValueError(f"DATASETS.TEST names {name!r}, {why} "
                             f"(MODEL.META_ARCHITECTURE={cfg.MODEL.META_ARCHITECTURE!r})")
        missing = sem_seg_metadata_missing(name)
        if missing:
            raise ValueError(f"DATASETS.TEST names {name!r}, {missing}")


# The words of torch's and detectron2's optimizer errors, and the key each comes from
# (first match: "Nesterov momentum requires a momentum" is NESTEROV's).
_OPTIMIZER_ERROR_KEYS = (("Nesterov", "SOLVER.NESTEROV"), ("learning rate", "SOLVER.BASE_LR"),
                         ("momentum", "SOLVER.MOMENTUM"), ("weight_decay", "SOLVER.WEIGHT_DECAY"),
                         ("GradientClipType", "SOLVER.CLIP_GRADIENTS.CLIP_TYPE"))


def check_optimizer(cfg: CfgNode, model: Optional[torch.nn.Module] = None) -> torch.optim.Optimizer:
    """The trainer's optimizer (detectron2's SGD, with CLIP_GRADIENTS) built from the SOLVER
    values on `model` (built on the meta device is enough; a one-layer stand-in without one),
    so a value it refuses (a negative MOMENTUM or BASE_LR, NESTEROV without momentum, an
    unknown CLIP_TYPE) fails before data loading rather than after the run's files are
    written. Errors name the key. Returns the optimizer."""
    try:
        return DropBlockTrainer.build_optimizer(cfg, model if model is not None else torch.nn.Linear(1, 1))
    except (ValueError, KeyError, TypeError, AssertionError) as error:
        message = error.args[0] if error.args else type(error).__name__
        key = next((key for word, key in _OPTIMIZER_ERROR_KEYS if word in str(message)), None)
        named = f"{key}={functools.reduce(getattr, key.split('.'), cfg)!r}" if key else "the SOLVER values"
        raise type(error)(f"{named}: the optimizer (detectron2's build_optimizer) cannot be built from it: "
                          f"{message}") from None


def check_lr_scheduler(cfg: CfgNode, optimizer: Optional[torch.optim.Optimizer] = None) -> None:
    """Build SOLVER.LR_SCHEDULER_NAME's schedule on `optimizer` (:func:`check_optimizer`'s) or
    a throwaway one, so an unknown name or a value the schedule refuses fails before data
    loading (DefaultTrainer builds the scheduler after the training data loader). Errors
    name the key."""
    if cfg.SOLVER.MAX_ITER < 1:
        raise ValueError(f"SOLVER.MAX_ITER={cfg.SOLVER.MAX_ITER!r}: expected >= 1 iteration to train")
    try:
        if optimizer is None:
            optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=cfg.SOLVER.BASE_LR)
        solver.build_lr_scheduler(cfg, optimizer)
    except (ValueError, KeyError, AssertionError, TypeError, ZeroDivisionError) as error:
        message = error.args[0] if error.args else type(error).__name__
        raise type(error)(f"the LR schedule SOLVER.LR_SCHEDULER_NAME={cfg.SOLVER.LR_SCHEDULER_NAME!r} "
                          f"cannot be built from the SOLVER values: {message}") from None


_SAMPLING_STYLES = ("choice", "range")
_FLIPS = ("none", "horizontal", "vertical")


def check_train_inputs(cfg: CfgNode) -> None:
    """ValueError naming the key for SOLVER / INPUT values that detectron2 trips over only
    after data loading or inside the first step (SOLVER.CHECKPOINT_PERIOD 0: a
    ZeroDivisionError in the checkpoint hook; SOLVER.IMS_PER_BATCH 0: an assertion in the
    data loader; INPUT.MAX_SIZE_TRAIN 0: an error resizing the first image), or with a
    message that names no key (INPUT.MIN_SIZE_TRAIN_SAMPLING: "AssertionError: rand";
    INPUT.RANDOM_FLIP: "At least one of horiz or vert has to be True!")."""
    period = cfg.SOLVER.CHECKPOINT_PERIOD
    if not isinstance(period, int) or period < 1:
        raise ValueError(f"SOLVER.CHECKPOINT_PERIOD={period!r}: expected iterations between "
                         "checkpoints >= 1 (a period past SOLVER.MAX_ITER saves model_final.pth only)")
    batch, world = cfg.SOLVER.IMS_PER_BATCH, comm.get_world_size()
    if not isinstance(batch, int) or batch < 1:
        raise ValueError(f"SOLVER.IMS_PER_BATCH={batch!r}: expected >= 1 image per batch")
    if cfg.SOLVER.REFERENCE_WORLD_SIZE in (0, world) and batch % world:
        # (Scaled from another REFERENCE_WORLD_SIZE, the batch is checked against that one.)
        raise ValueError(f"SOLVER.IMS_PER_BATCH={batch!r}: not divisible by the {world} processes")
    sampling = cfg.INPUT.MIN_SIZE_TRAIN_SAMPLING
    if sampling not in _SAMPLING_STYLES:
        raise ValueError(f"INPUT.MIN_SIZE_TRAIN_SAMPLING={sampling!r}: expected one of {list(_SAMPLING_STYLES)}")
    sizes = cfg.INPUT.MIN_SIZE_TRAIN
    sizes = list(sizes) if isinstance(sizes, (list, tuple)) else [sizes]
    # 0 is a size detectron2's ResizeShortestEdge takes in training too: no resizing.
    if not sizes or any(not is_integer(v) or v < 0 for v in sizes) or (
            sampling == "range" and len(sizes) != 2):
        raise ValueError(f"INPUT.MIN_SIZE_TRAIN={cfg.INPUT.MIN_SIZE_TRAIN!r}: expected sizes >= 1 "
                         + ("(two: the range's ends; 0: no resizing)" if sampling == "range"
                            else "to choose from (0: no resizing)"))
    max_size = cfg.INPUT.MAX_SIZE_TRAIN
    if not is_integer(max_size) or resize_error(sizes, max_size):
        raise ValueError(f"INPUT.MAX_SIZE_TRAIN={max_size!r}: expected a size >= 1"
                         + (f" (INPUT.MIN_SIZE_TRAIN={cfg.INPUT.MIN_SIZE_TRAIN!r} resizes)" if is_integer(max_size) else ""))
    if cfg.INPUT.RANDOM_FLIP not in _FLIPS:
        raise ValueError(f"INPUT.RANDOM_FLIP={cfg.INPUT.RANDOM_FLIP!r}: expected one of {list(_FLIPS)}")
    if cfg.INPUT.CROP.ENABLED:
        check_crop(cfg.INPUT.CROP.TYPE, cfg.INPUT.CROP.SIZE)
    from ..data.cutout import build_cutout_augmentation

    # INPUT.CUTOUT's values, and a fill (MODEL.PIXEL_MEAN) that fits INPUT.FORMAT's channels:
    # checked when the trainer built its loader, after config.yaml was written.
    build_cutout_augmentation(cfg)
    if not cfg.DATASETS.TRAIN:
        # detectron2 asserted "No valid data found in ." once the trainer was being built.
        raise ValueError(f"DATASETS.TRAIN={tuple(cfg.DATASETS.TRAIN)!r}: no dataset to train on; name at least one")
    sampler, samplers = cfg.DATALOADER.SAMPLER_TRAIN, train_samplers()
    if samplers is not None and sampler not in samplers:
        # detectron2 refuses it when the trainer builds the training loader, after
        # default_setup has written config.yaml into OUTPUT_DIR.
        raise ValueError(f"DATALOADER.SAMPLER_TRAIN={sampler!r}: not a sampler this detectron2's "
                         f"build_detection_train_loader knows; expected one of {list(samplers)}")


# detectron2's RandomCrop types (it asserts the type when the training loader is built).
_CROP_TYPES = ("relative_range", "relative", "absolute", "absolute_range")


def check_crop(crop_type: Any, size: Any) -> None:
    """INPUT.CROP.TYPE / SIZE as detectron2's RandomCrop takes them: ValueError naming the key
    (detectron2 raised a bare AssertionError building the training loader, or at the first
    image: a relative size above 1, an absolute range whose ends are reversed)."""
    if crop_type not in _CROP_TYPES:
        raise ValueError(f"INPUT.CROP.TYPE={crop_type!r}: expected one of {list(_CROP_TYPES)}")
    relative = crop_type.startswith("relative")
    values = list(size) if isinstance(size, (list, tuple)) else None
    if (values is None or len(values) != 2
            or not all(is_real_number(v) for v in values)
            or (relative and not all(0 < v <= 1 for v in values))
            or (not relative and not all(is_integer(v) and v >= 1 for v in values))
            or (crop_type == "absolute_range" and values[0] > values[1])):
        expected = {"relative": "two fractions of the image in (0, 1]: height, width",
                    "relative_range": "two fractions in (0, 1]: the smallest height and width, up to the whole image",
                    "absolute": "two sizes in pixels >= 1: height, width",
                    "absolute_range": "two sizes in pixels >= 1, smallest first: the range of the crop's sides"}
        raise ValueError(f"INPUT.CROP.SIZE={size!r} with INPUT.CROP.TYPE={crop_type!r}: expected {expected[crop_type]}")


def train_samplers() -> Optional[Tuple[str, ...]]:
    """The DATALOADER.SAMPLER_TRAIN names the installed detectron2's training loader knows,
    read from its source (v0.6 has 3; main adds WeightedTrainingSampler and
    WeightedCategoryTrainingSampler); None where the source cannot be read or has none
    (then the loader alone judges the name)."""
    import inspect

    from detectron2.data import build as d2_build

    try:
        source = inspect.getsource(d2_build._train_loader_from_config)
    except (AttributeError, OSError, TypeError):
        return None
    return tuple(dict.fromkeys(re.findall(r"""sampler_name\s*==\s*["'](\w+)["']""", source))) or None


def resize_error(short_edge_length: Any, max_size: Any) -> str:
    """Why detectron2's ResizeShortestEdge(short_edge_length, max_size) fails on every image
    ('' when it does not): a negative shortest edge, or a positive one with a max_size < 1
    (a 0 x 0 or negative target: "height and width must be > 0", naming the image, at its
    first use). A shortest edge of 0 resizes nothing, whatever max_size."""
    sizes = list(short_edge_length) if isinstance(short_edge_length, (list, tuple)) else [short_edge_length]
    if not all(is_real_number(v) for v in sizes + [max_size]):
        return "expected numbers of pixels"
    if any(v < 0 for v in sizes):
        return "a negative shortest edge gives an image of negative size (0: no resizing)"
    if any(v > 0 for v in sizes) and max_size < 1:
        return "a longest edge < 1 resizes every image to nothing (a large one keeps the shortest edge)"
    return ""


def image_format_error(image_format: Any, channels: Optional[int] = None) -> str:
    """Why detectron2's read_image cannot give the model an image in `image_format` ('' when it
    can): detectron2's convert_PIL_to_numpy refuses it for an RGB image (an unknown name:
    "conversion from RGB to FOO not supported", naming the image, at the first step), or
    gives an image without a channel axis ("I", "P", ...), or one whose channels neither
    match the model's `channels` (the MODEL.PIXEL_MEAN values) nor broadcast to them."""
    import numpy as np
    from detectron2.data.detection_utils import convert_PIL_to_numpy
    from PIL import Image

    try:
        image = np.asarray(convert_PIL_to_numpy(Image.new("RGB", (2, 2)), image_format))
    except Exception as error:  # noqa: BLE001 - PIL raises ValueError, KeyError, ... by mode
        return f"detectron2's convert_PIL_to_numpy refuses it ({type(error).__name__}: {error})"
    if image.ndim != 3:
        return f"detectron2 reads it as images without a channel axis (shape {image.shape})"
    if channels is not None and image.shape[2] not in (1, channels):
        return f"it gives {image.shape[2]}-channel images, the model normalizes {channels} channels"
    return ""


def check_test_time_augmentation(cfg: CfgNode) -> None:
    """ValueError naming the key for a TEST.AUG.ENABLED run whose test-time augmentation
    (detectron2's GeneralizedRCNNWithTTA, run by :meth:`DropBlockTrainer.test_with_TTA` after
    training and with --eval-only) would fail only after the whole training: a
    MODEL.META_ARCHITECTURE that is no GeneralizedRCNN (detectron2 has no TTA for RetinaNet, a
    SemanticSegmentor, a PanopticFPN, an RPN alone), MODEL.KEYPOINT_ON / MODEL.LOAD_PROPOSALS
    (the wrapper asserts against both), TEST.AUG.MIN_SIZES / MAX_SIZE that resize every image
    to nothing (:func:`resize_error`, as for the plain test resize; an empty MIN_SIZES
    evaluates no image), a TEST.AUG.FLIP that is not a bool. Nothing is judged when
    TEST.AUG.ENABLED is off (the keys are then unread) or the meta-architecture is unknown
    (the model check names it)."""
    from detectron2.modeling import META_ARCH_REGISTRY, GeneralizedRCNN, PanopticFPN

    aug = cfg.TEST.AUG
    if not aug.ENABLED:
        return
    try:
        model_class = META_ARCH_REGISTRY.get(cfg.MODEL.META_ARCHITECTURE)
    except KeyError:
        return
    enabled = f"TEST.AUG.ENABLED={aug.ENABLED!r}"
    if isinstance(model_class, type) and (not issubclass(model_class, GeneralizedRCNN)
                                          or issubclass(model_class, PanopticFPN)):
        # GeneralizedRCNNWithTTA asserts a GeneralizedRCNN; a PanopticFPN is one, but its
        # inference() takes no detected boxes (TypeError) and the wrapper returns only
        # "instances", not the panoptic / semantic outputs.
        raise ValueError(
            f"{enabled}: detectron2 has test-time augmentation for R-CNN models only (GeneralizedRCNNWithTTA: "
            f"MODEL.META_ARCHITECTURE 'GeneralizedRCNN'), not for MODEL.META_ARCHITECTURE="
            f"{cfg.MODEL.META_ARCHITECTURE!r}: set TEST.AUG.ENABLED False")
    for key, what in (("KEYPOINT_ON", "keypoints"), ("LOAD_PROPOSALS", "precomputed proposals")):
        if cfg.MODEL[key]:
            raise ValueError(f"{enabled} with MODEL.{key}={cfg.MODEL[key]!r}: detectron2's GeneralizedRCNNWithTTA "
                             f"has no test-time augmentation for {what} (it asserts, after the training): "
                             "set TEST.AUG.ENABLED False")
    sizes = aug.MIN_SIZES
    if not isinstance(sizes, (list, tuple)) or not sizes:
        raise ValueError(f"TEST.AUG.MIN_SIZES={sizes!r}: expected a non-empty list of shortest edges, each "
                         "an evaluation of every image (with TEST.AUG.ENABLED)")
    why = resize_error(list(sizes), aug.MAX_SIZE)
    if why:
        raise ValueError(f"TEST.AUG.MIN_SIZES={sizes!r} with TEST.AUG.MAX_SIZE={aug.MAX_SIZE!r}: {why}")
    if not isinstance(aug.FLIP, bool):
        raise ValueError(f"TEST.AUG.FLIP={aug.FLIP!r}: expected True or False (each size evaluated "
                         "flipped too, or not)")


def check_test_inputs(cfg: CfgNode, test_time_augmentation: bool = True) -> None:
    """ValueError naming the key for INPUT values an evaluation (a training's too, at its end)
    trips over only when it reads the images, naming an image instead of the key:
    INPUT.MIN_SIZE_TEST / INPUT.MAX_SIZE_TEST that resize every image to nothing
    (:func:`resize_error`; MIN_SIZE_TEST 0 is detectron2's "no resizing"), an INPUT.FORMAT
    detectron2 cannot read images in (:func:`image_format_error`; a training fails at its
    first step), and the TEST.AUG values (:func:`check_test_time_augmentation`). A caller
    that runs no test-time augmentation (`test_time_augmentation` False: an analysis that
    evaluates its own way) refuses TEST.AUG.ENABLED, which it would ignore, unannounced."""
    if cfg.TEST.AUG.ENABLED and not test_time_augmentation:
        raise ValueError(
            f"TEST.AUG.ENABLED={cfg.TEST.AUG.ENABLED!r}: this evaluation runs no test-time augmentation "
            f"(MODEL.META_ARCHITECTURE={cfg.MODEL.META_ARCHITECTURE!r}), so it would run on the plain test "
            "resize (INPUT.MIN_SIZE_TEST / MAX_SIZE_TEST), not TEST.AUG.MIN_SIZES / MAX_SIZE / FLIP: set "
            "TEST.AUG.ENABLED False (tools/train_net.py runs it, for R-CNN models)")
    check_test_time_augmentation(cfg)
    why = resize_error(cfg.INPUT.MIN_SIZE_TEST, cfg.INPUT.MAX_SIZE_TEST)
    if why:
        raise ValueError(f"INPUT.MIN_SIZE_TEST={cfg.INPUT.MIN_SIZE_TEST!r} with INPUT.MAX_SIZE_TEST="
                         f"{cfg.INPUT.MAX_SIZE_TEST!r}: {why}")
    why = image_format_error(cfg.INPUT.FORMAT, len(cfg.MODEL.PIXEL_MEAN))
    if why:
        raise ValueError(f"INPUT.FORMAT={cfg.INPUT.FORMAT!r}: {why} (e.g. 'BGR', 'RGB'"
                         + (f"; MODEL.PIXEL_MEAN has {len(cfg.MODEL.PIXEL_MEAN)} values)" if "channels" in why else ")"))


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


# ----------------------------------------------------------------------------- checkpoints
class CheckpointMismatchError(RuntimeError):
    """A checkpoint's weights do not fit the model (missing/unexpected keys, shapes)."""


def _mismatch_problems(incorrect_shapes, missing_keys, unexpected_keys) -> List[str]:
    problems = []
    if incorrect_shapes:
        problems.append("shape mismatch: " + ", ".join(
            f"{k} (checkpoint {tuple(a)} vs model {tuple(b)})" for k, a, b in incorrect_shapes))
    if missing_keys:
        problems.append("missing in checkpoint: " + ", ".join(missing_keys))
    if unexpected_keys:
        problems.append("not in model: " + ", ".join(unexpected_keys))
    return problems


def _naming_the_file(path: str, read: Callable[[str], Dict[str, Any]]) -> Dict[str, Any]:
    """read(path) (a checkpointer's file reading); an unreadable file (a truncated write, a
    partial copy) raises a RuntimeError naming it: torch's own message names none."""
    try:
        return read(path)
    except Exception as e:  # noqa: BLE001 - torch, pickle and zip raise many kinds
        reason = f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"
        try:
            with open(path, "rb") as f:
                head = f.read(4)
        except OSError:
            head = b""
        # torch.save writes a zip archive (older torch, and detectron2's .pkl, a pickle): a
        # file that starts as neither (a config, an image) is not a damaged checkpoint.
        if head and not head.startswith((b"PK", b"\x80")):
            raise RuntimeError(f"{path!r} is not a checkpoint: its first bytes {head!r} are neither a "
                               f"zip archive's (torch.save) nor a pickle's ({reason})") from e
        raise RuntimeError(f"checkpoint {path!r} cannot be read, it is truncated or corrupt ({reason})") from e


class _StrictCheckpointer(DetectionCheckpointer):
    """DetectionCheckpointer that raises instead of logging incompatible keys."""

    def _log_incompatible_keys(self, incompatible) -> None:
        problems = _mismatch_problems(incompatible.incorrect_shapes, incompatible.missing_keys,
                                      incompatible.unexpected_keys)
        if problems:
            raise CheckpointMismatchError(
                f"checkpoint {self._loading_path!r} does not match the model built from the "
                "config: " + "; ".join(problems))

    def _load_file(self, f: str) -> Dict[str, Any]:
        self._loading_path = f
        if is_url(f):  # fetched by detectron2's path manager: its errors say what failed
            return super()._load_file(f)
        return _naming_the_file(f, super()._load_file)


@contextlib.contextmanager
def _replacing(path: str, mode: str) -> Iterator[IO]:
    """A file opened for writing beside `path`; on a clean exit it is synced to disk and
    os.replace-d onto `path`, else deleted: a write stopped midway (Ctrl-C, kill, a full
    disk) leaves the earlier `path` whole."""
    tmp = path + ".tmp"
    try:
        with open(tmp, mode) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.remove(tmp)
        raise


class _ReplacingWrites:
    """A path manager (fvcore / detectron2 PathManager) whose writes of local files go
    through `_replacing`; everything else is the wrapped one's."""

    def __init__(self, path_manager: Any) -> None:
        self._path_manager = path_manager

    def open(self, path: str, mode: str = "r", **kwargs: Any):
        if "w" in mode and not is_url(path):
            return _replacing(path, mode)
        return self._path_manager.open(path, mode, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._path_manager, name)


class AtomicCheckpointer(DetectionCheckpointer):
    """DetectionCheckpointer whose checkpoints and ``last_checkpoint`` tag replace the old
    files atomically. fvcore truncates and rewrites in place: a finished run resumed with a
    longer SOLVER.MAX_ITER rewrites model_final.pth, the very checkpoint ``last_checkpoint``
    names (the only one when CHECKPOINT_PERIOD exceeds MAX_ITER, as in the synthetic
    configs), and a run stopped during that write lost all its training."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # fvcore's save and tag_last_checkpoint write through self.path_manager.open.
        self.path_manager = _ReplacingWrites(self.path_manager)


def is_url(path: str) -> bool:
    """Whether `path` is fetched by detectron2's path manager (https://, detectron2://, ...)
    rather than read from the local disk, so it cannot be checked before it is loaded."""
    return "://" in path


def load_checkpoint_strict(model: torch.nn.Module, path: str) -> None:
    """Load ``path`` into ``model``; FileNotFoundError if it does not exist,
    CheckpointMismatchError naming every missing/unexpected/shape-mismatched key."""
    if not path:
        raise FileNotFoundError("MODEL.WEIGHTS is empty: give the checkpoint to evaluate")
    if not is_url(path) and not Path(path).is_file():
        raise FileNotFoundError(f"checkpoint MODEL.WEIGHTS={path!r} does not exist")
    _StrictCheckpointer(model).load(path)


def last_checkpoint(output_dir: str) -> str:
    """The checkpoint a resumed run in ``output_dir`` loads: the one its detectron2
    ``last_checkpoint`` file names ('' when there is none). ValueError naming that file when
    it is no text file (a checkpoint copied over it, a folder), FileNotFoundError when it is
    empty or names no file there."""
    checkpointer = DetectionCheckpointer(None, save_dir=output_dir)
    if not checkpointer.has_checkpoint():
        return ""
    marker = os.path.join(output_dir, "last_checkpoint")
    try:
        # fvcore reads it as text: a binary file (a checkpoint copied over it) failed with a
        # bare UnicodeDecodeError, a folder there with IsADirectoryError, naming neither.
        named = Path(marker).read_text().strip()
    except (UnicodeDecodeError, IsADirectoryError):
        raise ValueError(f"{marker} is not the text file detectron2 writes there, naming the checkpoint to "
                         "resume from (e.g. 'model_final.pth'): write that name into it, or move it away "
                         "to start anew") from None
    path = checkpointer.get_checkpoint_file()
    if not os.path.isfile(path):
        # Else the resumed run's load fails on the file, blaming it as truncated or corrupt.
        what = f"names {named!r}, which is not a file there" if named else "is empty"
        raise FileNotFoundError(
            f"{marker} {what}: the checkpoint a resumed run would load was moved or deleted. "
            "Put it back to resume from it, or move the folder's files away to start anew")
    return path


def local_checkpoint(key: str, path: str) -> str:
    """The local file of the checkpoint `path` that `key` (a config key or a flag) names. A
    URL (https://, detectron2://) is fetched now by detectron2's path manager, which keeps
    it in its cache, so the load later reads that file without fetching it again: a URL
    that cannot be fetched is a RuntimeError naming `key` before anything is written (it
    failed when the trainer loaded the weights, after the data loader was built and
    config.yaml written). FileNotFoundError naming `key` when the file does not exist or
    is a folder (a run's folder given for its checkpoint)."""
    if is_url(path):
        try:
            local = PathManager.get_local_path(path)
        except Exception as e:  # urllib's URLError / HTTPError, a handler's own error
            raise RuntimeError(f"{key}={path!r} cannot be fetched ({type(e).__name__}: {e})") from e
        if not os.path.isfile(local):
            raise FileNotFoundError(f"{key}={path!r} was fetched to {local!r}, which is not a file")
        return local
    if not Path(path).is_file():
        raise FileNotFoundError(f"{key}={path!r} " + (
            "is a folder, not a checkpoint file: give the checkpoint in it (e.g. a run's model_final.pth)"
            if Path(path).is_dir() else "does not exist"))
    return path


def check_weights_readable(key: str, path: str) -> None:
    """The starting weights `path` that `key` names (MODEL.WEIGHTS, train.init_checkpoint)
    found by :func:`local_checkpoint` and read as the trainer's checkpointer reads them (a
    .pkl / .pyth as detectron2 does, else torch.load): RuntimeError naming `key` and the
    file when it cannot be read. The trainer reads them only after the data loader is built,
    the folder's earlier run moved aside and config.yaml written, where a truncated file
    failed with torch's bare "OSError: [Errno 22] Invalid argument". Whether they fit the
    model is not judged: detectron2 loads them non-strictly (ImageNet weights into a
    detector)."""
    local = local_checkpoint(key, path)
    if local.endswith((".pkl", ".pyth")):  # detectron2's own readers (no torch.load's zip)
        read = DetectionCheckpointer(None)._load_file
    else:
        read = Checkpointer(None)._load_file
    try:
        _naming_the_file(local, read)
    except RuntimeError as e:
        raise RuntimeError(f"{key}={path!r}: {e}") from e.__cause__


def check_weights_path(cfg: CfgNode, fetch: bool = True, read: bool = False) -> None:
    """MODEL.WEIGHTS, when given, as :func:`local_checkpoint` finds it: a local file that
    exists, or a URL that is fetched (and cached) now; with `fetch` False a URL is left
    alone (a tool that only writes a config naming it); with `read` the file is read too
    (:func:`check_weights_readable`: the starting weights of a training)."""
    if cfg.MODEL.WEIGHTS and (fetch or not is_url(cfg.MODEL.WEIGHTS)):
        if read:
            check_weights_readable("MODEL.WEIGHTS", cfg.MODEL.WEIGHTS)
        else:
            local_checkpoint("MODEL.WEIGHTS", cfg.MODEL.WEIGHTS)


def read_checkpoint(path: str) -> Dict[str, Any]:
    """The checkpoint file at local `path` as a dict with its weights under "model" (a bare
    state_dict is put there); RuntimeError naming the file when it cannot be read."""
    # fvcore's reading of a trainer's .pth (detectron2 main's own _load_file may only run
    # inside its load()).
    checkpoint = _naming_the_file(path, Checkpointer(None)._load_file)
    return checkpoint if "model" in checkpoint else {"model": checkpoint}


def state_dict_problems(model: torch.nn.Module, saved: Dict[str, Any]) -> List[str]:
    """What keeps the weights `saved` (a state_dict; DistributedDataParallel's "module."
    prefix allowed) from loading strictly into `model`: shape mismatches, missing and
    unexpected keys, each listed by name. Empty when they fit. `model` may be on the meta
    device."""
    saved = {k[len("module."):] if k.startswith("module.") else k: v for k, v in saved.items()}
    expected = model.state_dict()
    return _mismatch_problems(
        [(k, saved[k].shape, v.shape) for k, v in expected.items()
         if k in saved and tuple(getattr(saved[k], "shape", ())) != tuple(v.shape)],
        [k for k in expected if k not in saved], [k for k in saved if k not in expected])


def check_resume_checkpoint(cfg: CfgNode, path: str, model: Optional[torch.nn.Module] = None) -> None:
    """Before data loading, the checkpoint a --resume continues from: RuntimeError naming it
    when it cannot be read; CheckpointMismatchError naming the keys when it does not fit the
    model `cfg` builds (detectron2 resumes non-strictly: a changed model fails at the first
    step with a bare torch shape error, or trains freshly initialised layers); ValueError
    naming SOLVER.MAX_ITER when the checkpoint has reached it (nothing would train, and the
    earlier model would only be evaluated again as if it were this run's); ValueError when
    its optimizer state does not fit the config's optimizer (:func:`check_resume_optimizer`),
    or when SOLVER.AMP.ENABLED resumes a checkpoint saved without AMP's grad scaler.
    `model`: the config's model if already built (e.g. on the meta device by
    check_config_before_run)."""
    if model is None:
        model = meta_model(cfg)  # None: the real load checks for itself
    max_iter = DropBlockTrainer.auto_scale_workers(cfg, comm.get_world_size()).SOLVER.MAX_ITER
    checkpoint = check_checkpoint_fits(
        model, path, "--resume", "resume continues a run with its own config; start a fresh "
        "run or use another OUTPUT_DIR for a changed model", ("SOLVER.MAX_ITER", max_iter))
    if model is not None:
        check_resume_optimizer(checkpoint, check_optimizer(cfg, model), path)
    if cfg.SOLVER.AMP.ENABLED:
        check_resume_grad_scaler(checkpoint, path, "SOLVER.AMP.ENABLED")


def _saved_trainer_state(checkpoint: Dict[str, Any]) -> Dict[str, Any]:
    """The SimpleTrainer / AMPTrainer state a resume loads (the optimizer, AMP's grad scaler):
    DefaultTrainer saves it under "trainer"/"_trainer", a LazyConfig loop (whose checkpointer
    holds the SimpleTrainer itself) under "trainer"; no "optimizer" in it when there is none
    (detectron2 v0.6's own DefaultTrainer)."""
    trainer = checkpoint.get("trainer")
    inner = trainer.get("_trainer", trainer) if isinstance(trainer, dict) else None
    return inner if isinstance(inner, dict) else {}


def check_resume_grad_scaler(checkpoint: Dict[str, Any], path: str, amp_key: str,
                             weights_key: str = "MODEL.WEIGHTS") -> None:
    """For a resume with AMP on (`amp_key` names the setting): ValueError naming the file and
    the key when `checkpoint` (read from `path`) has the trainer state of a run without AMP,
    which has no grad scaler: AMPTrainer.load_state_dict reads it unconditionally (v0.6 and
    main), a bare "KeyError: 'grad_scaler'" after the data loader is built."""
    saved = _saved_trainer_state(checkpoint)
    if "optimizer" in saved and "grad_scaler" not in saved:
        raise ValueError(
            f"--resume: checkpoint {path!r} was saved by a run without mixed precision (it holds no AMP "
            f"grad scaler), and {amp_key}=True: detectron2's AMPTrainer fails loading it "
            f"(KeyError: 'grad_scaler') after the data loader is built. Resume with {amp_key} "
            f"False, or start a fresh run from the checkpoint ({weights_key})")


# What decides detectron2's optimizer parameter groups (get_default_optimizer_params), by yacs key.
_YACS_GROUPING = ("SOLVER.WEIGHT_DECAY, WEIGHT_DECAY_NORM, WEIGHT_DECAY_BIAS and BIAS_LR_FACTOR, and "
                  "by which of them train (MODEL.BACKBONE.FREEZE_AT)")


def check_resume_optimizer(checkpoint: Dict[str, Any], optimizer: torch.optim.Optimizer, path: str,
                           grouping: str = _YACS_GROUPING, weights_key: str = "MODEL.WEIGHTS") -> None:
    """ValueError naming the file and the keys when the optimizer state saved in `checkpoint`
    (read from `path`) groups the parameters otherwise than `optimizer`, the one the config
    builds: torch refuses to load it ("loaded state dict has a different number of parameter
    groups"), which detectron2 does after the data loader is built and config.yaml
    rewritten. `grouping`: what decides the groups, by the config's keys; `weights_key`: the
    key a fresh run starts from a checkpoint with. A checkpoint without optimizer state is
    not judged."""
    saved = _saved_trainer_state(checkpoint).get("optimizer")
    if not isinstance(saved, dict) or not isinstance(saved.get("param_groups"), list):
        return
    saved_sizes = [len(group.get("params", ())) for group in saved["param_groups"]]
    sizes = [len(group["params"]) for group in optimizer.param_groups]
    if saved_sizes != sizes:
        raise ValueError(
            f"--resume: checkpoint {path!r} holds the optimizer state of {len(saved_sizes)} parameter groups "
            f"(of {saved_sizes} parameters), and this config's optimizer has {len(sizes)} (of {sizes}): "
            f"detectron2 groups the parameters by {grouping}. Resume with the run's values, or start a "
            f"fresh run from the checkpoint ({weights_key}) to change them")


def check_checkpoint_fits(model: Optional[torch.nn.Module], path: str, what: str, advice: str = "",
                          max_iter: Optional[Tuple[str, int]] = None) -> Dict[str, Any]:
    """The checkpoint at local `path` (`what` loads it: "--resume", a config key) against the
    model (None: not checked): RuntimeError naming the file when it cannot be read;
    CheckpointMismatchError naming every key that does not fit (with `advice`); with
    `max_iter` (its key, its value) ValueError when the checkpoint has trained that many
    iterations or more (a finished run's model_final is saved at iteration max_iter - 1), so
    that resuming would train nothing and only evaluate the earlier model again, overwriting
    the run's config.yaml and predictions. Returns the checkpoint (:func:`read_checkpoint`)."""
    checkpoint = read_checkpoint(path)
    problems = state_dict_problems(model, checkpoint["model"]) if model is not None else []
    if problems:
        raise CheckpointMismatchError(
            f"{what}: checkpoint {path!r} does not match the model built from the config"
            + (f" ({advice})" if advice else "") + ": " + "; ".join(problems))
    iteration = checkpoint.get("iteration")
    # detectron2 resumes at the checkpoint's "iteration" + 1.
    if max_iter is not None and isinstance(iteration, int) and iteration + 1 >= max_iter[1]:
        key, value = max_iter
        raise ValueError(f"{what}: checkpoint {path!r} has trained {iteration + 1} iterations, "
                         f"{'all' if iteration + 1 == value else 'more than'} {key}={value} asks for: "
                         f"nothing would be trained; give a larger {key} to continue the run "
                         "(--eval-only --resume evaluates its last checkpoint)")
    return checkpoint


def check_eval_checkpoint(model: Optional[torch.nn.Module], path: str, what: str) -> None:
    """Before anything is written, the checkpoint an --eval-only loads strictly (`what`: the
    key or flag that names it, e.g. "MODEL.WEIGHTS", "--resume"): FileNotFoundError when a
    local `path` does not exist or is a folder, RuntimeError when a URL cannot be fetched (it
    is fetched now, into detectron2's cache), both naming `what` (:func:`local_checkpoint`),
    then check_checkpoint_fits of the file against `model` (None: not checked)."""
    local = local_checkpoint(what, path)
    if model is not None:  # a URL's error names it and the cached file that was read
        check_checkpoint_fits(model, local, f"{what}={path!r}" if local != path else what)


# ----------------------------------------------------------------------------- output folder
PREVIOUS_RUNS = "previous_runs"
# Where DropBlockTrainer.test_with_TTA's evaluators write, beside the plain evaluation's
# inference/ (OUTPUT_DIR/inference_TTA/<dataset>), as detectron2's train_net names it.
TTA_INFERENCE_DIR = "inference_TTA"
# What a run writes into OUTPUT_DIR (detectron2's default_setup, trainer, checkpointer,
# event writers and evaluators; tools/main_job.py's plot and summary). Only these move: an
# OUTPUT_DIR may be a folder that holds other things too (".", a project folder).
# config.yaml.pkl: detectron2's LazyConfig.save writes the config there too (cloudpickle)
# when its config.yaml cannot be loaded back (a lambda or other object in the config, as
# in detectron2's new_baselines configs): then the run's only loadable config.
# model_*.pth.tmp: a checkpoint write killed before its rename (AtomicCheckpointer).
RUN_FILES = ("config.yaml", "config.yaml.pkl", "log.txt", "log.txt.rank*", "last_checkpoint",
             "model_*.pth", "model_*.pth.tmp", "metrics.json", "events.out.tfevents.*", "inference", TTA_INFERENCE_DIR,
             "main_job.png", "main_job_summary.json")
# What an evaluation (train_net --eval-only) overwrites: default_setup's config.yaml (and a
# LazyConfig's config.yaml.pkl) and the evaluators' predictions (inference_TTA: with
# TEST.AUG.ENABLED). It appends to log.txt and leaves the checkpoints alone.
EVAL_FILES = ("config.yaml", "config.yaml.pkl", "inference", TTA_INFERENCE_DIR)


# Folders this process holds the lock of (path -> open descriptor), for its whole life.
_CLAIMED_OUTPUT_DIRS: Dict[str, int] = {}


def claim_output_dir(output_dir: str, key: str = "OUTPUT_DIR") -> None:
    """Create OUTPUT_DIR and hold an exclusive lock on it for the rest of this process, or
    raise a RuntimeError naming it (as `key`: the config key or the tool's argument that
    gave it) when another process holds it: two runs in one folder
    move each other's files aside and overwrite each other's checkpoints. A POSIX advisory
    lock (flock on the folder itself: nothing is written into it), released by the OS when
    the process ends, however it ends; where there is no flock (Windows, a file system
    without it), nothing is held (the latter is warned of)."""
    try:
        import fcntl
    except ImportError:
        return
    path = os.path.realpath(output_dir)
    if path in _CLAIMED_OUTPUT_DIRS:
        return
    try:
        os.makedirs(path, exist_ok=True)
    except (FileExistsError, NotADirectoryError):  # a file where a folder must go
        in_the_way = deepest_existing_path(path)
        raise NotADirectoryError(f"{key}={output_dir!r} is not a folder: {in_the_way} is a file; "
                                 f"give another {key}") from None
    fd = os.open(path, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:  # EWOULDBLOCK: held
        os.close(fd)
        raise RuntimeError(
            f"{key}={output_dir!r} is in use by another run (a process holds its lock): "
            "two runs in one folder would overwrite each other's files. Wait for it to "
            f"end, or give this run another {key}") from None
    except OSError as e:
        # A file system without flock (Lustre mounted without it: ENOSYS; some NFS: ENOLCK)
        # holds nothing for anyone: as where there is no fcntl, the run goes on, warned.
        warnings.warn(f"{key}={output_dir!r} cannot be locked on its file system ({e.strerror}): a second run "
                      "started into it would not be refused; make sure that none is", RuntimeWarning, stacklevel=2)
    _CLAIMED_OUTPUT_DIRS[path] = fd


def deepest_existing_path(path: str) -> str:
    """`path` itself or its deepest ancestor that exists: what a folder to be made at `path`
    meets first (a file there is in the way; a dangling link counts as there, as it is for
    os.makedirs)."""
    while not os.path.lexists(path):
        path = os.path.dirname(path)
    return path


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


def launch_tool(main: Callable[[Any], Any], args: Any) -> None:
    """Run `main(args)` in `args.num_gpus` processes per machine (detectron2's `launch`), with
    the distributed arguments of detectron2's `default_argument_parser`: the tools' entry."""
    from detectron2.engine import launch

    print("Command Line Args:", args)
    check_launch_processes(args.num_gpus, args.num_machines)
    launch(main, args.num_gpus, num_machines=args.num_machines, machine_rank=args.machine_rank,
           dist_url=args.dist_url, args=(args,))


def prepare_output_dir(output_dir: str, key: str, eval_only: bool, resume: bool, resuming: bool,
                       still_needed: Sequence[str] = ()) -> None:
    """What the tools do to their output folder after their checks and before
    default_setup: claim it (:func:`claim_output_dir`; `key` names it in errors), then move
    aside what the run would overwrite (:func:`archive_previous_run`): for an evaluation
    (`eval_only`) the earlier config.yaml (a LazyConfig's config.yaml.pkl too) and
    inference/ (inference_TTA/); for a training that does not continue a checkpoint (not
    `resuming`: a fresh run, or a --resume, `resume`, that found none, where detectron2
    starts at iteration 0 and would append to the earlier metrics.json) the earlier run's
    files; for a training that continues a finished run's
    model_final.pth, that checkpoint (:func:`keep_resumed_final_checkpoint`). Says what it
    moved or kept; every process waits for it."""
    if comm.is_main_process():
        # Before anything in the folder is moved or written: one run per folder at a time.
        claim_output_dir(output_dir, key=key)
    hint = ""
    if eval_only:
        archive, what = EVAL_FILES, "The earlier config.yaml / inference/"
    elif not resuming:
        archive, what = RUN_FILES, "The earlier run"
        hint = (" (--resume found no checkpoint there: training starts at iteration 0)" if resume
                else " (--resume continues a run instead)")
    else:
        if comm.is_main_process():
            kept = keep_resumed_final_checkpoint(output_dir)
            if kept:
                print(f"The finished run's model_final.pth in {key}={output_dir!r}, which this continued "
                      f"run replaces when it ends, is kept as {kept}", flush=True)
        comm.synchronize()
        return
    if comm.is_main_process():
        archived = archive_previous_run(output_dir, still_needed, archive)
        if archived:
            print(f"{what} in {key}={output_dir!r} was moved to {archived}{hint}", flush=True)
    comm.synchronize()


def _new_previous_run_folder(output_dir: str) -> str:
    """A new, empty ``output_dir/previous_runs/<YYYYmmdd-HHMMSS>[-n]/``."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    target = os.path.join(output_dir, PREVIOUS_RUNS, stamp)
    suffix = 1
    while os.path.exists(target):  # two runs within a second
        target = os.path.join(output_dir, PREVIOUS_RUNS, f"{stamp}-{suffix}")
        suffix += 1
    os.makedirs(target)
    return target


def keep_resumed_final_checkpoint(output_dir: str) -> Optional[str]:
    """Where a run resumed from its ``model_final.pth`` (a finished run continued with a
    larger SOLVER.MAX_ITER) keeps that checkpoint: ``previous_runs/<time>/model_final.pth``,
    returned (None when the run resumes from another checkpoint). The continued run writes
    its own model_final.pth when it ends, and the finished run's was lost where it was its
    only checkpoint (CHECKPOINT_PERIOD above MAX_ITER, as in the synthetic configs). A hard
    link where the file system has them (no copy: AtomicCheckpointer replaces the file, the
    link keeps the old one), else a copy."""
    checkpoint = last_checkpoint(output_dir)
    if os.path.basename(checkpoint) != "model_final.pth":
        return None
    target = _new_previous_run_folder(output_dir)
    kept = os.path.join(target, "model_final.pth")
    try:
        try:
            os.link(checkpoint, kept)
        except OSError:
            shutil.copy2(checkpoint, kept)
    except BaseException:
        shutil.rmtree(target, ignore_errors=True)
        raise
    return kept


def archive_previous_run(
    output_dir: str, still_needed: Sequence[str] = (), patterns: Sequence[str] = RUN_FILES
) -> Optional[str]:
    """Move an earlier run's files (those matching ``patterns``: RUN_FILES for a training,
    EVAL_FILES for an evaluation) in ``output_dir`` into
    ``output_dir/previous_runs/<YYYYmmdd-HHMMSS>/``; return that folder, or None when
    there was nothing to move. Creates ``output_dir``; other files there stay where they are.
    A file the new run still reads (``still_needed``: its config file, its MODEL.WEIGHTS,
    e.g. ``out/config.yaml`` or ``out/model_final.pth``), or a folder holding one, is
    copied instead of moved.

    A fresh run into a used folder would otherwise append to the earlier metrics.json and
    overwrite its checkpoints (detectron2 does both), and an evaluation would overwrite the
    run's config.yaml and predictions; moving keeps every file."""
    os.makedirs(output_dir, exist_ok=True)
    entries = [e for e in sorted(os.listdir(output_dir))
               if any(fnmatch.fnmatchcase(e, pattern) for pattern in patterns)]
    if not entries:
        return None
    target = _new_previous_run_folder(output_dir)
    needed = [os.path.realpath(p) for p in still_needed if p and not is_url(p) and os.path.exists(p)]

    def is_needed(entry: str) -> bool:
        real = os.path.realpath(os.path.join(output_dir, entry))
        return any(n == real or n.startswith(real + os.sep) for n in needed)

    copied = [e for e in entries if is_needed(e)]
    # The copies first: they are what can fail for room (a full disk), and then the folder
    # is left as it was, without a truncated copy of a checkpoint in previous_runs/ (the
    # moves, renames within the folder, need none).
    try:
        for entry in copied:
            source = os.path.join(output_dir, entry)
            copy = shutil.copytree if os.path.isdir(source) else shutil.copy2
            copy(source, os.path.join(target, entry))
    except BaseException:
        shutil.rmtree(target, ignore_errors=True)
        raise
    for entry in entries:
        if entry not in copied:
            shutil.move(os.path.join(output_dir, entry), os.path.join(target, entry))
    return target


# ----------------------------------------------------------------------------- trainer
# Current detectron2 adds the inner SimpleTrainer/AMPTrainer state (optimizer, grad scaler)
# to DefaultTrainer's checkpoints under "_trainer"; v0.6 inherits TrainerBase's, which has
# only the iteration and the hooks.
_DEFAULT_TRAINER_SAVES_OPTIMIZER = DefaultTrainer.state_dict is not TrainerBase.state_dict


# ----------------------------------------------------------------------------- model
# Where each MODEL.DROPBLOCK location puts its modules (qualified names in a built model):
# ResNet blocks (under an FPN's bottom_up or as the backbone itself), the FPN's own
# convolutions and top block, the RetinaNet head, the segmentation head.
_LOCATION_PATTERNS = {
    "RESNET.ENABLED": re.compile(r"(^|\.)res[2-5]\.\d+\.dropblock_"),
    "DROP_PATH_RATE": re.compile(r"(^|\.)res[2-5]\.\d+\.drop_path$"),
    "FPN.ENABLED": re.compile(r"^backbone\.(?!bottom_up\.)(top_block\.)?dropblock_"),
    "HEAD.ENABLED": re.compile(r"^head\."),
    "SEM_SEG_HEAD.ENABLED": re.compile(r"^sem_seg_head\."),
}


# A residual block of a ResNet stage (backbone.bottom_up.res4.0, roi_heads.res5.2), and its stage.
_RESNET_BLOCK = re.compile(r"(^|\.)(res[2-5])\.\d+$")


def _check_every_stage_regularized(cfg: CfgNode, model: torch.nn.Module, names: Sequence[str]) -> None:
    """Per stage what check_dropblock_placed asks per location: a C4 R-CNN runs res2..res4 in
    its backbone and res5 in its ROI head, so dropblock-det's part beside a stock one had
    DropBlock somewhere while a stage in RESNET.STAGES (or every block, for DROP_PATH_RATE)
    trained without it. ValueError naming the key, the stage and the component to switch."""
    from detectron2.layers import CNNBlockBase

    from ..deploy import dropblock_component_advice

    db = cfg.MODEL.DROPBLOCK
    regularized = set(names)
    # A block by its class too: a head keys modules by feature name (a DeepLab decoder's
    # dropblock_decoder.res2.0, a SemSegFPN tower sem_seg_head.res3.0), which are no blocks.
    blocks = [(name, match.group(2)) for name, module in model.named_modules()
              for match in [_RESNET_BLOCK.search(name)] if match and isinstance(module, CNNBlockBase)]

    def advice(block: str) -> str:
        key = "MODEL.ROI_HEADS.NAME" if block.startswith("roi_heads.") else "MODEL.BACKBONE.NAME"
        return dropblock_component_advice(cfg, "RESNET.ENABLED", key)

    if db.RESNET.ENABLED:
        for stage in db.RESNET.STAGES:
            in_stage = [block for block, of in blocks if of == stage]
            if in_stage and not any(name.startswith(block + ".dropblock_") for block in in_stage for name in names):
                raise ValueError(
                    f"MODEL.DROPBLOCK.RESNET.STAGES={list(db.RESNET.STAGES)} lists {stage!r}, but the model's "
                    f"{stage} ({in_stage[0].rsplit('.', 1)[0]}) has no DropBlock: {advice(in_stage[0])}")
    if db.DROP_PATH_RATE > 0:
        bare = [block for block, _ in blocks if f"{block}.drop_path" not in regularized]
        if bare:
            raise ValueError(
                f"MODEL.DROPBLOCK.DROP_PATH_RATE={db.DROP_PATH_RATE!r}, but {len(bare)} of the model's {len(blocks)} "
                f"residual blocks have no DropPath ({', '.join(bare[:3])}{', ...' if len(bare) > 3 else ''}): "
                f"{advice(bare[0])}")


def check_dropblock_placed(cfg: CfgNode, model: torch.nn.Module) -> None:
    """ValueError naming the key when a MODEL.DROPBLOCK location is on but the built model
    has no regularizer there: stock detectron2 components (RetinaNet,
    build_retinanet_resnet_fpn_backbone, ...) ignore the keys, and a run would otherwise
    train without DropBlock while the schedule hook logs a falling keep_prob."""
    from detectron2.modeling.roi_heads import Res5ROIHeads

    from ..deploy import dropblock_component_advice
    from ..layers import iter_regularizers

    db = cfg.MODEL.DROPBLOCK
    names = [name for name, _ in iter_regularizers(model)]
    for key in locations_on(cfg):
        node, _, leaf = key.rpartition(".")
        value = db[node][leaf] if node else db[leaf]
        if not any(_LOCATION_PATTERNS[key].search(name) for name in names):
            raise ValueError(
                f"MODEL.DROPBLOCK.{key}={value!r}, but the model built from MODEL.META_ARCHITECTURE="
                f"{cfg.MODEL.META_ARCHITECTURE!r}, MODEL.BACKBONE.NAME={cfg.MODEL.BACKBONE.NAME!r}"
                f" (MODEL.SEM_SEG_HEAD.NAME={cfg.MODEL.SEM_SEG_HEAD.NAME!r}) has no DropBlock there"
                f" ({len(names)} elsewhere): {dropblock_component_advice(cfg, key)} (see the README),"
                f" or check the location's STAGES / POSITIONS for this model")
    _check_every_stage_regularized(cfg, model, names)
    # C4 (Res5ROIHeads): the res5 that runs is the ROI head's own, which dropblock-det does
    # not regularize; a res5 in the backbone (OUT_FEATURES with "res5") is computed, unused.
    roi_heads = getattr(model, "roi_heads", None)
    if (db.RESNET.ENABLED and "res5" in db.RESNET.STAGES and isinstance(roi_heads, Res5ROIHeads)
            and not any(name.startswith("roi_heads.res5.") for name in names)):
        raise ValueError(
            f"MODEL.DROPBLOCK.RESNET.STAGES={list(db.RESNET.STAGES)}: with MODEL.ROI_HEADS.NAME="
            f"{cfg.MODEL.ROI_HEADS.NAME!r} (C4) res5 is built by the ROI head (roi_heads.res5), which "
            "has no DropBlock; the backbone's res5 is not used by the model, so DropBlock there "
            "would not regularize anything. Use MODEL.ROI_HEADS.NAME 'DropBlockRes5ROIHeads' (DropBlock "
            "in the ROI head's res5), or list only backbone stages (e.g. ['res4'])")


def check_model_config(cfg: CfgNode) -> Optional[torch.nn.Module]:
    """Build the model described by `cfg` on PyTorch's meta device (shapes, no memory or
    initialisation cost: ~0.1 s for R50-FPN) and check where DropBlock went
    (:func:`check_dropblock_placed`), so a model-config error is raised before data loading
    and before a tool writes anything. A component that cannot be built on the meta device
    is left to the real build, which makes the same checks. Returns the meta model (None
    where it could not be built)."""
    check_stock_retinanet_norm(cfg)
    check_rcnn_features(cfg)
    model = meta_model(cfg)
    if model is not None:
        check_dropblock_placed(cfg, model)
    return model


def check_rcnn_features(cfg: CfgNode) -> None:
    """MODEL.RPN.IN_FEATURES and MODEL.ROI_HEADS.IN_FEATURES of an R-CNN (a GeneralizedRCNN or
    ProposalNetwork MODEL.META_ARCHITECTURE, with detectron2's RPN and ROI heads) against the
    outputs of the backbone MODEL.BACKBONE.NAME builds (on the meta device): detectron2 fails
    on one it lacks with a bare KeyError (e.g. 'res4': a RetinaNet config given
    GeneralizedRCNN, whose RPN and ROI heads default to the C4 model's res4); and the RPN's
    anchor sizes and aspect ratios against its levels (check_anchor_levels). ValueError
    naming the key and the backbone."""
    from detectron2.modeling import META_ARCH_REGISTRY, GeneralizedRCNN, ProposalNetwork, build_backbone
    from detectron2.modeling.roi_heads import ROI_HEADS_REGISTRY, Res5ROIHeads, StandardROIHeads

    from ..config import check_anchor_levels, check_feature_names
    from ..modeling.roi_heads import check_c4_head_features

    try:
        model_class = META_ARCH_REGISTRY.get(cfg.MODEL.META_ARCHITECTURE)
    except KeyError:  # detectron2's registry names it, at the build
        return
    if not (isinstance(model_class, type) and issubclass(model_class, (GeneralizedRCNN, ProposalNetwork))):
        return
    head_class = None
    if issubclass(model_class, GeneralizedRCNN):
        try:
            head_class = ROI_HEADS_REGISTRY.get(cfg.MODEL.ROI_HEADS.NAME)
        except KeyError:
            pass
        if not (isinstance(head_class, type) and issubclass(head_class, (StandardROIHeads, Res5ROIHeads))):
            head_class = None  # a head of the user's own may read other keys
    rpn = cfg.MODEL.PROPOSAL_GENERATOR.NAME in ("RPN", "RRPN")
    if not rpn and head_class is None:
        return
    backbone = build_on_meta_device(lambda: build_backbone(cfg))
    if backbone is None:
        return
    outputs = list(backbone.output_shape())
    note = f"MODEL.BACKBONE.NAME={cfg.MODEL.BACKBONE.NAME!r}"
    if rpn:
        levels = check_feature_names("MODEL.RPN.IN_FEATURES", cfg.MODEL.RPN.IN_FEATURES, outputs,
                                     "the backbone's outputs", note=note)
        check_anchor_levels(cfg, "MODEL.RPN.IN_FEATURES", levels)
    if head_class is not None and issubclass(head_class, Res5ROIHeads):
        check_c4_head_features(cfg, outputs)
    elif head_class is not None:
        check_feature_names("MODEL.ROI_HEADS.IN_FEATURES", cfg.MODEL.ROI_HEADS.IN_FEATURES, outputs,
                            "the backbone's outputs", note=note)


def check_stock_retinanet_norm(cfg: CfgNode) -> None:
    """ValueError naming MODEL.RETINANET.NORM when MODEL.META_ARCHITECTURE is detectron2's own
    "RetinaNet" and this detectron2's RetinaNetHead cannot build that norm (GN on v0.6,
    which builds GroupNorm(32, 1): a bare "num_channels (1) must be divisible by
    num_groups (32)"), pointing to DropBlockRetinaNet, whose head builds it everywhere."""
    from ..modeling.retinanet import stock_retinanet_head_error

    norm = cfg.MODEL.RETINANET.NORM
    if cfg.MODEL.META_ARCHITECTURE != "RetinaNet" or not norm:
        return
    error = stock_retinanet_head_error(norm)
    if error is not None:
        raise ValueError(
            f"MODEL.RETINANET.NORM={norm!r}: this detectron2's own RetinaNetHead (MODEL.META_ARCHITECTURE "
            f"'RetinaNet') cannot build it ({type(error).__name__}: {error}; detectron2 v0.6 builds GN "
            "for 1 channel); use MODEL.META_ARCHITECTURE 'DropBlockRetinaNet', whose head builds it on "
            "every version (with MODEL.DROPBLOCK.HEAD off it is RetinaNet's head)")


def is_meta_device_limit(error: BaseException) -> bool:
    """Whether `error` is what the meta device cannot do, not a fault of the config: an
    operator with no meta kernel (NotImplementedError), or a tensor's value read in a
    component's __init__ (detectron2's ViT, MViT and Swin take their drop-path rates with
    `.item()`: "Tensor.item() cannot be called on meta tensors")."""
    return isinstance(error, NotImplementedError) or (
        isinstance(error, RuntimeError) and "meta tensor" in str(error))


def build_on_meta_device(build: Callable[[], torch.nn.Module]) -> Optional[torch.nn.Module]:
    """build() on PyTorch's meta device (shapes only, no memory or initialisation cost); None
    where it cannot be (torch < 2.0 has no device context; a component whose __init__ the
    meta device cannot run: `is_meta_device_limit`): the real build then makes the same
    checks."""
    if not hasattr(torch.device("meta"), "__enter__"):
        return None
    try:
        with torch.device("meta"):
            return build()
    except Exception as error:  # noqa: BLE001 - only the meta device's limits are looked into
        if is_meta_device_limit(error):
            return None
        raise


def meta_model(cfg: CfgNode) -> Optional[torch.nn.Module]:
    """The model `cfg` describes, built on the meta device (:func:`build_on_meta_device`)."""
    from detectron2.modeling import META_ARCH_REGISTRY

    return build_on_meta_device(lambda: META_ARCH_REGISTRY.get(cfg.MODEL.META_ARCHITECTURE)(cfg))


def check_scaled_to_world_size(cfg: CfgNode) -> None:
    """With SOLVER.REFERENCE_WORLD_SIZE the trainer rescales the batch, the LR and the
    iterations (the DropBlock ramp's too) to this run's processes: ValueError naming the key
    when what it would train cannot be (detectron2's assertion, zero iterations, a ramp that
    never leaves 1.0 once rounded), before the run's files move (the trainer scales the
    config only when it is built, after they have moved)."""
    reference, world = cfg.SOLVER.REFERENCE_WORLD_SIZE, comm.get_world_size()
    if not reference or reference == world:
        return
    scaling = (f"(SOLVER.REFERENCE_WORLD_SIZE={reference} scales the batch, the LR and the iterations "
               f"to the {world} processes of this run)")
    if isinstance(reference, bool) or not isinstance(reference, int) or reference < 0:
        # Else named as a batch "not divisible" by it (4 by -2), which it is.
        raise ValueError(f"SOLVER.REFERENCE_WORLD_SIZE={reference!r}: expected the number of processes the "
                         "config was set for (0: no scaling)")
    if cfg.SOLVER.IMS_PER_BATCH % reference:
        raise ValueError(f"SOLVER.IMS_PER_BATCH={cfg.SOLVER.IMS_PER_BATCH!r} is not divisible by "
                         f"SOLVER.REFERENCE_WORLD_SIZE={reference!r}, the processes it was set for {scaling}")
    scaled = DropBlockTrainer.auto_scale_workers(cfg, world)
    if scaled.SOLVER.MAX_ITER < 1:
        raise ValueError(f"SOLVER.MAX_ITER={cfg.SOLVER.MAX_ITER} becomes {scaled.SOLVER.MAX_ITER} iterations {scaling}")
    try:
        validate_dropblock_config(scaled)
    except ValueError as error:
        raise ValueError(f"{error}, once scaled to SOLVER.MAX_ITER={scaled.SOLVER.MAX_ITER} {scaling}") from None


def checked_device(key: str, value: Any) -> torch.device:
    """`value` as a torch.device; ValueError naming `key` where torch does not know it or
    sees no such CUDA device (detectron2 would fail moving the model there, with a message
    that names no key, after the run's files are written)."""
    try:
        device = torch.device(value)
    except (RuntimeError, TypeError):
        raise ValueError(f"{key}={value!r}: not a device torch knows (e.g. 'cuda', 'cpu')") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"{key}={value!r}: torch sees no CUDA device here; use 'cpu'")
    if device.type == "cuda" and device.index is not None and device.index >= torch.cuda.device_count():
        raise ValueError(f"{key}={value!r}: torch sees {torch.cuda.device_count()} CUDA device(s) here")
    return device


def check_training_processes_device(cfg: CfgNode, device: torch.device) -> None:
    """ValueError naming MODEL.DEVICE when this run trains in several processes (--num-gpus,
    --num-machines) on a device other than CUDA (:func:`check_ddp_device`; detectron2 main
    launches such processes, v0.6's launch asserts CUDA first). An evaluation (no DDP) runs
    there."""
    check_ddp_device("MODEL.DEVICE", cfg.MODEL.DEVICE, device, "on CUDA (MODEL.DEVICE cuda)")


def check_ddp_device(key: str, value: Any, device: torch.device, other_ways: str) -> None:
    """ValueError naming `key` (its `value`: `device`) when this run trains in several
    processes on a device other than CUDA: detectron2's trainers put each process's model in
    DistributedDataParallel on that process's GPU (`create_ddp_model` gives it
    `device_ids=[local rank]`), which a CPU model fails at with torch's own error, after the
    data loader is built and config.yaml written. `other_ways`: what else the user may do
    besides training in one process."""
    world = comm.get_world_size()
    if world > 1 and device.type != "cuda":
        raise ValueError(f"{key}={value!r} with {world} training processes (--num-gpus x --num-machines): "
                         "detectron2 gives each process's model its GPU in DistributedDataParallel "
                         f"(device_ids=[local rank]), which a model on {device.type} cannot take; train in one "
                         f"process (--num-gpus 1) or {other_ways}")


def check_config_before_run(cfg: CfgNode, train: bool = True, check_weights: bool = True,
                            check_files: bool = True,
                            test_time_augmentation: bool = True) -> Optional[torch.nn.Module]:
    """Every check of `cfg` that loads no data: MODEL.DROPBLOCK values, the model (built on
    the meta device), the DATASETS.TEST names (and with `train` DATASETS.TRAIN's: an
    evaluation needs no training data) with, if `check_files`, their files, an evaluator
    for every DATASETS.TEST entry, MODEL.DEVICE (:func:`checked_device`) and
    DATALOADER.NUM_WORKERS, with `train` MODEL.DEVICE for IMPL "triton" (check_impl_device)
    and for SOLVER.AMP and several training processes (check_training_processes_device),
    the optimizer and the LR schedule, and the SOLVER / INPUT values,
    with `check_weights` MODEL.WEIGHTS (with `train` read: :func:`check_weights_readable`), and the TEST.AUG values (refused with TEST.AUG.ENABLED
    where the caller runs no test-time augmentation: not `test_time_augmentation`). The tools
    call it first: each error names its key, and comes before data loading or anything is
    written to OUTPUT_DIR. Returns the model it built on the meta device (None where it
    could not)."""
    max_iter = cfg.SOLVER.MAX_ITER
    if train and (isinstance(max_iter, bool) or not isinstance(max_iter, int) or max_iter < 1):
        # Before the DropBlock checks, whose ramp would be blamed for it.
        raise ValueError(f"SOLVER.MAX_ITER={max_iter!r}: expected a number of iterations >= 1")
    validate_dropblock_config(cfg)
    model = check_model_config(cfg)
    check_dataset_names(cfg, check_files=check_files, keys=("TRAIN", "TEST") if train else ("TEST",))
    check_evaluator_types(cfg)
    check_dataset_classes(cfg, keys=("TRAIN", "TEST") if train else ("TEST",))
    output_dir = cfg.OUTPUT_DIR
    if not isinstance(output_dir, str) or not output_dir:
        # archive_previous_run would fail on it with a bare "FileNotFoundError: ''".
        raise ValueError(f"OUTPUT_DIR={output_dir!r}: expected a folder (e.g. './output')")
    check_test_inputs(cfg, test_time_augmentation)
    device = checked_device("MODEL.DEVICE", cfg.MODEL.DEVICE)
    workers = cfg.DATALOADER.NUM_WORKERS  # both loaders' (torch's DataLoader refuses it, late)
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 0:
        raise ValueError(f"DATALOADER.NUM_WORKERS={workers!r}: expected a number of loader processes >= 0")
    if train:
        if cfg.SOLVER.AMP.ENABLED and device.type != "cuda":
            # detectron2's AMPTrainer asserts CUDA at its first step (v0.6 and main).
            raise ValueError(f"SOLVER.AMP.ENABLED=True needs a CUDA MODEL.DEVICE, got {cfg.MODEL.DEVICE!r}")
        check_impl_device(cfg)
        check_lr_scheduler(cfg, check_optimizer(cfg, model))
        check_train_inputs(cfg)
        check_scaled_to_world_size(cfg)
        check_training_processes_device(cfg, device)
    if check_weights:
        # A training's starting weights are read now (an evaluation's are read by
        # check_eval_checkpoint, which loads them strictly).
        check_weights_path(cfg, read=train)
    if train and check_files:
        # What the evaluations after training will read (detectron2 loads the test sets then).
        check_evaluation_files(list(cfg.DATASETS.TEST))
    return model


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
            return
        super().load_state_dict(state_dict)
        if not _DEFAULT_TRAINER_SAVES_OPTIMIZER:
            self._trainer.load_state_dict(state_dict["_trainer"])

    def build_hooks(self) -> List[hooks.HookBase]:
        # DefaultTrainer.__init__ makes its checkpointer just before it calls build_hooks, whose
        # PeriodicCheckpointer keeps it: replaced here so checkpoints are written atomically.
        old = self.checkpointer
        self.checkpointer = AtomicCheckpointer(old.model, old.save_dir, save_to_disk=old.save_to_disk,
                                               **old.checkpointables)
        ret = super().build_hooks()
        from .hooks import DropBlockScheduleHook

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
