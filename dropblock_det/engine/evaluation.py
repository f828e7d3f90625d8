"""The evaluator of a dataset, chosen from its metadata's ``evaluator_type`` (COCO, PASCAL VOC,
semantic segmentation), with errors that name the dataset, and the check that every
DATASETS.TEST entry has one before a run.
"""
from __future__ import annotations

import math
import os
from typing import Any, Optional, Sequence

import detectron2
import numpy as np
import torch
from detectron2.config import CfgNode
from detectron2.data import MetadataCatalog
from detectron2.evaluation import (
    COCOEvaluator,
    DatasetEvaluator,
    PascalVOCDetectionEvaluator,
    SemSegEvaluator,
)
from detectron2.utils.file_io import PathManager


__all__ = [
    "build_evaluator",
    "check_evaluator_types",
    "check_training_sets",
    "dataset_evaluator",
    "evaluator_cannot_read",
    "EVALUATOR_TYPES",
    "has_compiled_ops",
    "model_cannot_train_on",
    "sem_seg_metadata_missing",
]


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
    OUTPUT_DIR/inference/<dataset>), with the config's TEST.KEYPOINT_OKS_SIGMAS (detectron2's
    own train_net leaves them out, so COCO's 17 were used whatever the config said)."""
    if output_folder is None:
        output_folder = os.path.join(cfg.OUTPUT_DIR, "inference", dataset_name)
    return dataset_evaluator(dataset_name, output_folder, kpt_oks_sigmas=tuple(cfg.TEST.KEYPOINT_OKS_SIGMAS))


def dataset_evaluator(dataset_name: str, output_dir: Optional[str] = None,
                      kpt_oks_sigmas: Sequence[float] = ()) -> DatasetEvaluator:
    """The evaluator for ``dataset_name``, chosen by its metadata ``evaluator_type``:
    "coco" -> COCOEvaluator (the tasks the predictions have, as detectron2's own train_net:
    bbox, and segm / keypoints for Mask / Keypoint R-CNN, where the dataset's annotations
    have them; fast implementation only with compiled operators),
    "pascal_voc" -> PascalVOCDetectionEvaluator, "sem_seg" -> SemSegEvaluator; predictions
    are written into ``output_dir`` (None: not written); ``kpt_oks_sigmas``, one per
    keypoint, score a COCO keypoint AP (empty: COCO's 17 person sigmas). Raises ValueError
    naming the dataset and type otherwise. A LazyConfig's ``dataloader.evaluator =
    L(dataset_evaluator)(dataset_name=...)``."""
    evaluator_type = _evaluator_type(dataset_name)
    if evaluator_type == "coco":
        # tasks=None: inferred from the predictions, so a Mask R-CNN gets its segm AP.
        return _GroundTruthCOCOEvaluator(dataset_name, tasks=None, distributed=True, output_dir=output_dir,
                                         use_fast_impl=has_compiled_ops(), kpt_oks_sigmas=tuple(kpt_oks_sigmas))
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


# The metadata evaluator_type values dataset_evaluator builds an evaluator for.
EVALUATOR_TYPES = ("coco", "pascal_voc", "sem_seg")


def _evaluator_type(dataset_name: str) -> Optional[str]:
    return getattr(MetadataCatalog.get(dataset_name), "evaluator_type", None)


def _no_evaluator(dataset_name: str, evaluator_type: Optional[str]) -> ValueError:
    return ValueError(
        f"no evaluator for dataset {dataset_name!r}: its metadata evaluator_type is "
        f"{evaluator_type!r}; supported: {', '.join(map(repr, EVALUATOR_TYPES))}")


def _other_kind(model_class: type, evaluator_type: str) -> bool:
    """Whether a `model_class` model and a set of `evaluator_type` are of two kinds: a
    'sem_seg' set (labels per pixel) and a detector-only model (a RetinaNet, detectron2's own
    GeneralizedRCNN / ProposalNetwork), or a detection set and a SemanticSegmentor. A model of
    the user's own (PanopticFPN-like, a GeneralizedRCNN subclass) may take both, so only these
    are judged."""
    from detectron2.modeling import GeneralizedRCNN, ProposalNetwork, SemanticSegmentor
    from detectron2.modeling.meta_arch.retinanet import RetinaNet

    if evaluator_type == "sem_seg":
        return issubclass(model_class, RetinaNet) or model_class in (GeneralizedRCNN, ProposalNetwork)
    return issubclass(model_class, SemanticSegmentor)


def evaluator_cannot_read(model_class: Any, dataset_name: str) -> str:
    """Why `dataset_name`'s evaluator ("a 'sem_seg' dataset, which ...") cannot read the outputs of a `model_class` model ('' when
    it can, or when that is not certain): a segmentation set for a RetinaNet or for
    detectron2's own GeneralizedRCNN / ProposalNetwork (Faster / Mask R-CNN, RPN), a
    detection set for a SemanticSegmentor, a PASCAL VOC set for a ProposalNetwork (its
    evaluator reads detected "instances", an RPN gives "proposals": KeyError: 'instances'
    on the first batch; the COCO evaluator scores proposals). A model of the user's own
    (PanopticFPN-like, a GeneralizedRCNN subclass) may give both kinds of outputs, so only
    these are judged."""
    from detectron2.modeling import ProposalNetwork

    evaluator_type = _evaluator_type(dataset_name)
    if not isinstance(model_class, type) or evaluator_type not in EVALUATOR_TYPES:
        return ""
    if _other_kind(model_class, evaluator_type):
        return (f"a {evaluator_type!r} dataset, which a {model_class.__name__} cannot "
                f"be evaluated on (it gives {'segmentation' if evaluator_type != 'sem_seg' else 'detection'} outputs)")
    if evaluator_type == "pascal_voc" and model_class is ProposalNetwork:
        return (f"a {evaluator_type!r} dataset, whose evaluator scores detections, which a {model_class.__name__} "
                "cannot be evaluated on (it gives proposals only; a 'coco' dataset's evaluator scores them)")
    return ""


def model_cannot_train_on(model_class: Any, dataset_name: str) -> str:
    """Why a `model_class` model cannot train on `dataset_name` ("a 'pascal_voc' dataset ...";
    '' when it can, or when that is not certain), told by the set's evaluator_type as
    :func:`evaluator_cannot_read` tells it: a 'sem_seg' set (labels per pixel, no boxes) for a
    detector-only model, a 'coco' / 'pascal_voc' set (boxes, no labels per pixel) for a
    SemanticSegmentor. detectron2 failed at the first step, after the output folder was
    prepared: "Instance annotations are missing in training!", "cross_entropy_loss():
    argument 'target' ... must be Tensor, not NoneType"."""
    evaluator_type = _evaluator_type(dataset_name)
    if not isinstance(model_class, type) or evaluator_type not in EVALUATOR_TYPES:
        return ""
    if not _other_kind(model_class, evaluator_type):
        return ""
    if evaluator_type == "sem_seg":
        return (f"a 'sem_seg' dataset (labels per pixel, no boxes), which a {model_class.__name__} cannot "
                "train on (it trains on boxes)")
    return (f"a {evaluator_type!r} dataset (boxes, no labels per pixel), which a {model_class.__name__} cannot "
            "train on (it trains on labels per pixel)")


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


def check_training_sets(cfg: CfgNode) -> None:
    """ValueError naming the DATASETS.TRAIN entry that the model cannot train on
    (:func:`model_cannot_train_on`), before anything is built."""
    from detectron2.modeling import META_ARCH_REGISTRY

    try:
        model_class = META_ARCH_REGISTRY.get(cfg.MODEL.META_ARCHITECTURE)
    except KeyError:  # the model check names it
        return
    for name in cfg.DATASETS.TRAIN:
        why = model_cannot_train_on(model_class, name)
        if why:
            raise ValueError(f"DATASETS.TRAIN names {name!r}, {why} "
                             f"(MODEL.META_ARCHITECTURE={cfg.MODEL.META_ARCHITECTURE!r})")


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
