"""The evaluator of a dataset (dropblock_det/engine/evaluation.py): the choice by dataset type,
mIoU over the ground-truth classes, a label it cannot score named, the compiled operators
detected, and the refusal of a test set no evaluator can score."""
import numpy as np
import pytest
import torch

from conftest import register_coco_json, synthetic_cfg


def test_evaluator_follows_the_dataset_type_and_uses_fast_coco_only_with_compiled_ops(tmp_path):
    from detectron2.data import MetadataCatalog
    from detectron2.evaluation import COCOEvaluator, PascalVOCDetectionEvaluator, SemSegEvaluator

    from dropblock_det.data.synthetic import (
        make_synthetic_detection,
        make_synthetic_sem_seg,
        register_synthetic_datasets,
    )
    from dropblock_det.engine.evaluation import build_evaluator, has_compiled_ops

    tiny = dict(num_train=1, num_val=1, image_size=32, min_object_size=8, max_object_size=16)
    make_synthetic_detection(tmp_path, **tiny)
    make_synthetic_sem_seg(tmp_path, **tiny)  # SemSegEvaluator reads the dataset when built
    register_synthetic_datasets(tmp_path)
    try:
        cfg = synthetic_cfg("OUTPUT_DIR", str(tmp_path))
        coco = build_evaluator(cfg, "synthetic_det_val")
        assert isinstance(coco, COCOEvaluator)
        assert coco._use_fast_impl is has_compiled_ops()
        # One folder per test set: several sets' predictions would overwrite each other.
        assert coco._output_dir == str(tmp_path / "inference" / "synthetic_det_val")
        assert isinstance(build_evaluator(cfg, "voc_2007_test"), PascalVOCDetectionEvaluator)
        assert isinstance(build_evaluator(cfg, "synthetic_sem_seg_val"), SemSegEvaluator)
    finally:
        register_synthetic_datasets()
    MetadataCatalog.get("dropblock_test_no_evaluator").set(evaluator_type="lvis_like")
    with pytest.raises(ValueError, match="dropblock_test_no_evaluator.*lvis_like"):
        build_evaluator(cfg, "dropblock_test_no_evaluator")


def test_miou_is_the_mean_over_the_ground_truth_classes_on_every_detectron2_version(tmp_path):
    # detectron2 v0.6 divided the ground-truth classes' IoUs by the number of classes in the
    # ground truth or the predictions: the same predictions scored 1.01 there, 2.52 on main.
    import torch

    evaluator = _synthetic_sem_seg_evaluator(tmp_path, output_dir=str(tmp_path / "inference"))
    n = evaluator._num_classes
    assert n >= 3
    evaluator.reset()
    # Rows: predicted class, columns: ground truth; the last row / column: ignored pixels.
    matrix = np.zeros((n + 1, n + 1), dtype=np.int64)
    matrix[0, 0], matrix[1, 0] = 6, 2  # class 0: 6 of its 8 pixels, nothing else called 0
    matrix[1, 1], matrix[2, 1] = 1, 3  # class 1: 1 of 4, plus the 2 of class 0 called 1
    # Class 2 is never in the ground truth, yet predicted (3 times); the rest neither.
    evaluator._conf_matrix = matrix
    result = evaluator.evaluate()["sem_seg"]
    iou_0, iou_1 = 6 / (8 + 6 - 6), 1 / (4 + 3 - 1)
    assert result["IoU-" + evaluator._class_names[0]] == pytest.approx(100 * iou_0)
    assert result["IoU-" + evaluator._class_names[1]] == pytest.approx(100 * iou_1)
    assert result["mIoU"] == pytest.approx(100 * (iou_0 + iou_1) / 2)  # v0.6: / 3 (class 2 predicted)
    saved = torch.load(tmp_path / "inference" / "sem_seg_evaluation.pth", weights_only=False)
    assert saved["mIoU"] == result["mIoU"]


@pytest.mark.parametrize("label, problem", [
    (lambda shape: np.full(shape, 220, np.uint8), r"values \[220\] that are neither a class 0\.\.3"),
    (lambda shape: np.zeros((shape[0] // 2, shape[1]), np.uint8), r"\d+x\d+, but its image is \d+x\d+"),
])
def test_a_label_the_segmentation_evaluator_cannot_score_is_named(tmp_path, label, problem):
    # An --eval-only (or an analysis) reads a test set unchecked: detectron2 failed on such a
    # label with "cannot reshape array of size 221 into shape (5,5)", naming no file.
    from PIL import Image

    from dropblock_det.data.file_errors import DatasetFileError
    from dropblock_det.data.synthetic import make_synthetic_sem_seg, register_synthetic_datasets
    from dropblock_det.engine.evaluation import dataset_evaluator

    make_synthetic_sem_seg(tmp_path, num_train=1, num_val=2, image_size=32, min_object_size=8, max_object_size=16)
    register_synthetic_datasets(tmp_path)
    try:
        evaluator = dataset_evaluator("synthetic_sem_seg_val")
    finally:
        register_synthetic_datasets()
    evaluator.reset()
    good, bad = sorted(evaluator.input_file_to_gt_file.items())
    evaluator.process([{"file_name": good[0]}], [{"sem_seg": torch.zeros(4, 32, 32)}])
    Image.fromarray(label((32, 32))).save(bad[1])
    with pytest.raises(DatasetFileError, match=rf"^dataset 'synthetic_sem_seg_val': the label {bad[1]} \(of image "
                                               rf"{bad[0]}\) is {problem}.*its evaluator cannot score it"):
        evaluator.process([{"file_name": bad[0]}], [{"sem_seg": torch.zeros(4, 32, 32)}])


def test_compiled_ops_are_detected_as_absent_with_the_placeholder():
    from detectron2 import _C

    from dropblock_det.engine.evaluation import has_compiled_ops

    placeholder = "placeholder" in (_C.__doc__ or "").lower()
    assert has_compiled_ops() is not placeholder


def test_a_test_dataset_without_an_evaluator_is_refused_before_training():
    from detectron2.data import MetadataCatalog

    from dropblock_det.engine.evaluation import check_evaluator_types

    check_evaluator_types(synthetic_cfg())  # synthetic_det_val: coco
    MetadataCatalog.get("dropblock_test_unevaluable").set(evaluator_type="lvis_like")
    cfg = synthetic_cfg()
    cfg.DATASETS.TEST = ("synthetic_det_val", "dropblock_test_unevaluable")
    with pytest.raises(ValueError, match="dropblock_test_unevaluable.*'lvis_like'.*supported: 'coco'"):
        check_evaluator_types(cfg)


@pytest.mark.parametrize("meta_architecture, test_set, gives", [
    ("DropBlockRetinaNet", "synthetic_sem_seg_val", "it gives detection outputs"),
    ("RetinaNet", "voc_2012_sem_seg_val", "it gives detection outputs"),
    ("GeneralizedRCNN", "synthetic_sem_seg_val", "it gives detection outputs"),
    ("ProposalNetwork", "synthetic_sem_seg_val", "it gives detection outputs"),
    ("SemanticSegmentor", "synthetic_det_val", "it gives segmentation outputs"),
    ("SemanticSegmentor", "voc_2007_test", "it gives segmentation outputs"),
    ("ProposalNetwork", "voc_2007_test", "it gives proposals only"),  # the VOC evaluator read "instances" (KeyError)
])
def test_a_test_set_the_model_cannot_be_evaluated_on_is_refused_before_training(meta_architecture, test_set, gives):
    # Else training runs to the end and the evaluator fails on the first batch.
    from dropblock_det.engine.evaluation import check_evaluator_types

    cfg = synthetic_cfg("MODEL.META_ARCHITECTURE", meta_architecture)
    cfg.DATASETS.TEST = (test_set,)
    with pytest.raises(ValueError, match=rf"DATASETS\.TEST names '{test_set}'.*{gives}.*"
                                         rf"MODEL\.META_ARCHITECTURE='{meta_architecture}'"):
        check_evaluator_types(cfg)


def test_an_rpn_is_evaluated_on_a_coco_set_whose_evaluator_scores_proposals():
    from dropblock_det.engine.evaluation import check_evaluator_types

    check_evaluator_types(synthetic_cfg("MODEL.META_ARCHITECTURE", "ProposalNetwork"))  # synthetic_det_val: coco


def test_a_segmentation_test_set_without_the_metadata_its_evaluator_reads_is_refused_before_training():
    # SemSegEvaluator reads stuff_classes and ignore_label from the metadata when it is built,
    # after the whole training: "Attribute 'ignore_label' does not exist in the metadata".
    from detectron2.data import MetadataCatalog

    from dropblock_det.engine.evaluation import check_evaluator_types, sem_seg_metadata_missing

    MetadataCatalog.get("dropblock_test_seg_no_ignore").set(evaluator_type="sem_seg", stuff_classes=["a", "b"])
    MetadataCatalog.get("dropblock_test_seg_no_classes").set(evaluator_type="sem_seg", ignore_label=255)
    cfg = synthetic_cfg("MODEL.META_ARCHITECTURE", "SemanticSegmentor")
    for name, missing in (("dropblock_test_seg_no_ignore", "'ignore_label'"),
                          ("dropblock_test_seg_no_classes", "'stuff_classes'")):
        cfg.DATASETS.TEST = ("synthetic_sem_seg_val", name)
        with pytest.raises(ValueError, match=rf"^DATASETS\.TEST names '{name}', a 'sem_seg' dataset whose metadata "
                                             rf"has no {missing}, which detectron2's SemSegEvaluator reads"):
            check_evaluator_types(cfg)
    assert sem_seg_metadata_missing("dropblock_test_seg_no_ignore", ignore_label_given=True) == ""
    assert sem_seg_metadata_missing("synthetic_sem_seg_val") == sem_seg_metadata_missing("synthetic_det_val") == ""


def test_a_model_of_the_users_own_is_not_refused_a_test_set_it_may_evaluate_on(monkeypatch):
    # A meta-architecture that is neither (e.g. PanopticFPN-like) may give both outputs.
    from detectron2.modeling import META_ARCH_REGISTRY, GeneralizedRCNN

    from dropblock_det.engine.evaluation import check_evaluator_types

    # Registered for this test only: left in the registry it is a near name in other tests'
    # registry messages.
    monkeypatch.setitem(META_ARCH_REGISTRY._obj_map, "DropBlockTestBothOutputs",
                        type("DropBlockTestBothOutputs", (GeneralizedRCNN,), {}))
    for test_set in ("synthetic_sem_seg_val", "synthetic_det_val"):
        cfg = synthetic_cfg("MODEL.META_ARCHITECTURE", "DropBlockTestBothOutputs")
        cfg.DATASETS.TEST = (test_set,)
        check_evaluator_types(cfg)


def test_a_test_dataset_whose_metadata_has_no_evaluator_type_is_refused_before_training():
    # dataset_evaluator fails on it after the whole training ("evaluator_type is None").
    from detectron2.data import DatasetCatalog, MetadataCatalog

    from dropblock_det.engine.evaluation import check_evaluator_types

    name = "dropblock_test_no_evaluator_type"
    DatasetCatalog.register(name, lambda: [])
    try:
        MetadataCatalog.get(name).set(thing_classes=["a", "b", "c"])
        cfg = synthetic_cfg()
        cfg.DATASETS.TEST = (name,)
        with pytest.raises(ValueError, match=rf"^no evaluator for dataset '{name}': its metadata evaluator_type is None"):
            check_evaluator_types(cfg)
    finally:
        DatasetCatalog.remove(name)
        MetadataCatalog.remove(name)


def test_the_evaluator_check_judges_the_datasets_of_a_meta_architecture_it_cannot_judge_the_model_of(monkeypatch):
    # A MODEL.META_ARCHITECTURE registered as a builder function (detectron2 calls whatever the
    # registry holds) or not registered (the model check names it): the test sets are still
    # judged, with no TypeError from issubclass nor a KeyError from the registry.
    from detectron2.data import MetadataCatalog
    from detectron2.modeling import META_ARCH_REGISTRY
    from detectron2.modeling.meta_arch.retinanet import RetinaNet

    from dropblock_det.engine.evaluation import check_evaluator_types

    def dropblock_test_built_by_a_function(cfg):
        return RetinaNet(cfg)

    monkeypatch.setitem(META_ARCH_REGISTRY._obj_map, "dropblock_test_built_by_a_function",
                        dropblock_test_built_by_a_function)
    MetadataCatalog.get("dropblock_test_unevaluable").set(evaluator_type="lvis_like")
    try:
        for meta_architecture in ("dropblock_test_built_by_a_function", "DropBlockTestNoSuchArch"):
            for test_set in ("synthetic_det_val", "synthetic_sem_seg_val"):
                cfg = synthetic_cfg("MODEL.META_ARCHITECTURE", meta_architecture)
                cfg.DATASETS.TEST = (test_set,)
                check_evaluator_types(cfg)
            cfg.DATASETS.TEST = ("dropblock_test_unevaluable",)
            with pytest.raises(ValueError, match="dropblock_test_unevaluable.*'lvis_like'"):
                check_evaluator_types(cfg)
    finally:
        MetadataCatalog.remove("dropblock_test_unevaluable")


def test_a_voc_evaluation_failing_for_another_reason_than_an_annotation_keeps_its_own_error(monkeypatch):
    # The annotation search finds none it cannot read: the evaluator's own error is raised, not
    # a "cannot unpack non-iterable NoneType object" from the search's answer.
    from detectron2.evaluation import PascalVOCDetectionEvaluator

    from dropblock_det.data import file_errors
    from dropblock_det.engine.evaluation import dataset_evaluator

    def fails(self):
        raise RuntimeError("the evaluator's own failure")

    monkeypatch.setattr(PascalVOCDetectionEvaluator, "evaluate", fails)
    monkeypatch.setattr(file_errors, "unparsable_voc_annotation", lambda name: None)
    with pytest.raises(RuntimeError, match="^the evaluator's own failure$"):
        dataset_evaluator("voc_2007_test").evaluate()


def _synthetic_sem_seg_evaluator(tmp_path, output_dir=None):
    """dataset_evaluator of a one-image synthetic sem_seg val set written under tmp_path (the
    registration put back to the default root after)."""
    from dropblock_det.data.synthetic import make_synthetic_sem_seg, register_synthetic_datasets
    from dropblock_det.engine.evaluation import dataset_evaluator

    make_synthetic_sem_seg(tmp_path, num_train=1, num_val=1, image_size=32, min_object_size=8, max_object_size=16)
    register_synthetic_datasets(tmp_path)
    try:
        return dataset_evaluator("synthetic_sem_seg_val", output_dir=output_dir)
    finally:
        register_synthetic_datasets()


def _one_square_coco(*more_annotations: dict, **fields) -> dict:
    """COCO annotations of one 32x32 image with one 16x16 square of category 1 ("square"), its
    annotation given `fields` (a segmentation), `more_annotations` after it."""
    return {"images": [{"id": 1, "file_name": "a.jpg", "height": 32, "width": 32}],
            "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "bbox": [4, 4, 16, 16], "area": 256.0,
                             "iscrowd": 0, **fields}, *more_annotations],
            "categories": [{"id": 1, "name": "square"}]}


def test_the_coco_evaluator_leaves_out_keypoints_a_box_only_set_cannot_score(tmp_path):
    # A Keypoint R-CNN evaluated on a set without "keypoints" in its annotations: pycocotools
    # failed after the whole inference; the boxes are scored alone, as for masks.
    from dropblock_det.engine.evaluation import dataset_evaluator

    name = "dropblock_test_coco_boxes_for_keypoints"
    coco = _one_square_coco()
    register_coco_json(name, coco, tmp_path)
    evaluator = dataset_evaluator(name, None)
    prediction = {"image_id": 1, "category_id": 1, "bbox": [4, 4, 16, 16], "score": 0.9,
                  "keypoints": [8.0, 8.0, 2.0] * 17}
    assert evaluator._tasks_from_predictions([prediction]) == ["bbox"]


def test_a_training_set_of_another_kind_than_the_model_trains_on_is_refused_naming_it():
    # detectron2 failed at the first step: "AssertionError: Instance annotations are missing in
    # training!" (a RetinaNet on a 'sem_seg' set); "cross_entropy_loss(): argument 'target' ...
    # must be Tensor, not NoneType" (a SemanticSegmentor on a detection set).
    from dropblock_det.engine.config_checks import check_config_before_run
    from dropblock_det.engine.evaluation import check_training_sets

    cfg = synthetic_cfg()
    check_training_sets(cfg)  # synthetic_det_train: coco
    cfg.DATASETS.TRAIN = ("synthetic_det_train", "synthetic_sem_seg_train")
    with pytest.raises(ValueError, match=r"^DATASETS.TRAIN names 'synthetic_sem_seg_train', a 'sem_seg' dataset "
                                         r"\(labels per pixel, no boxes\), which a DropBlockRetinaNet cannot train "
                                         r"on \(it trains on boxes\) \(MODEL.META_ARCHITECTURE='DropBlockRetinaNet'\)$"):
        check_config_before_run(cfg, check_files=False)
    check_config_before_run(cfg, train=False, check_files=False)  # an evaluation reads no training set
    cfg = synthetic_cfg("MODEL.META_ARCHITECTURE", "SemanticSegmentor")
    with pytest.raises(ValueError, match=r"^DATASETS.TRAIN names 'synthetic_det_train', a 'coco' dataset \(boxes, "
                                         r"no labels per pixel\), which a SemanticSegmentor cannot train on"):
        check_training_sets(cfg)
    cfg.DATASETS.TRAIN = ("voc_2007_trainval",)
    with pytest.raises(ValueError, match=r"'voc_2007_trainval', a 'pascal_voc' dataset"):
        check_training_sets(cfg)
    cfg.DATASETS.TRAIN = ("synthetic_sem_seg_train",)
    check_training_sets(cfg)


def test_which_models_cannot_train_on_a_set_is_told_only_where_certain():
    # An R-CNN / proposal network trains on boxes; a subclass of its own (PanopticFPN also
    # trains on labels per pixel) is left alone. Any SemanticSegmentor, a subclass of one's
    # own included, trains on labels per pixel. A set without an evaluator type, or a model
    # given as no class, says nothing certain.
    from detectron2.data import DatasetCatalog, MetadataCatalog
    from detectron2.modeling import GeneralizedRCNN, PanopticFPN, ProposalNetwork, SemanticSegmentor

    from dropblock_det.engine.evaluation import check_training_sets, model_cannot_train_on

    for model_class in (GeneralizedRCNN, ProposalNetwork):
        assert model_cannot_train_on(model_class, "synthetic_sem_seg_train") == (
            f"a 'sem_seg' dataset (labels per pixel, no boxes), which a {model_class.__name__} cannot train on "
            "(it trains on boxes)")
    assert model_cannot_train_on(PanopticFPN, "synthetic_sem_seg_train") == ""

    class MySegmentor(SemanticSegmentor):
        pass

    assert model_cannot_train_on(MySegmentor, "synthetic_det_train") == (
        "a 'coco' dataset (boxes, no labels per pixel), which a MySegmentor cannot train on "
        "(it trains on labels per pixel)")
    assert model_cannot_train_on(MySegmentor, "synthetic_sem_seg_train") == ""
    assert model_cannot_train_on(lambda cfg: None, "synthetic_det_train") == ""
    name = "test_evaluation_set_without_evaluator_type"
    DatasetCatalog.register(name, list)
    try:
        assert model_cannot_train_on(SemanticSegmentor, name) == ""
    finally:
        DatasetCatalog.remove(name)
        MetadataCatalog.remove(name)
    cfg = synthetic_cfg("MODEL.META_ARCHITECTURE", "NoSuchArchitecture")
    cfg.DATASETS.TRAIN = ("synthetic_sem_seg_train",)
    assert check_training_sets(cfg) is None  # the model check names the architecture


# --- mutation run 51: behaviour the tests above left unpinned --------------------------------


def test_build_evaluator_writes_into_the_output_folder_it_is_given(tmp_path):
    # A trainer's build_evaluator(cfg, name, output_folder): the folder given is the one written.
    from dropblock_det.engine.evaluation import build_evaluator

    name = "dropblock_test_coco_output_folder"
    coco = _one_square_coco()
    register_coco_json(name, coco, tmp_path)
    cfg = synthetic_cfg("OUTPUT_DIR", str(tmp_path / "run"))
    evaluator = build_evaluator(cfg, name, str(tmp_path / "elsewhere"))
    assert evaluator._output_dir == str(tmp_path / "elsewhere")


def test_a_coco_set_with_masks_scores_a_mask_models_masks_too(tmp_path):
    # The tasks come from the predictions: a Mask R-CNN's segm AP beside its box AP.
    import pycocotools.mask as mask_util

    from dropblock_det.engine.evaluation import dataset_evaluator

    name = "dropblock_test_coco_with_masks"
    square = [4.0, 4.0, 20.0, 4.0, 20.0, 20.0, 4.0, 20.0]
    coco = _one_square_coco(segmentation=[square])
    register_coco_json(name, coco, tmp_path)
    mask = np.zeros((32, 32), dtype=np.uint8, order="F")
    mask[4:20, 4:20] = 1
    rle = mask_util.encode(mask)
    rle["counts"] = rle["counts"].decode("utf-8")
    evaluator = dataset_evaluator(name, None)
    evaluator.reset()
    evaluator._predictions = [{"image_id": 1, "instances": [
        {"image_id": 1, "category_id": 0, "bbox": [4.0, 4.0, 16.0, 16.0], "score": 0.9, "segmentation": rle}]}]
    results = evaluator.evaluate()
    assert sorted(results) == ["bbox", "segm"]
    assert results["bbox"]["AP"] > 50 and results["segm"]["AP"] > 50


def test_the_miou_leaves_out_the_pixels_the_ground_truth_ignores_as_detectron2s_per_class_ious_do(tmp_path):
    # Predictions on ignore_label pixels (the matrix's last column) score nothing either way.
    evaluator = _synthetic_sem_seg_evaluator(tmp_path)
    n = evaluator._num_classes
    evaluator.reset()
    matrix = np.zeros((n + 1, n + 1), dtype=np.int64)
    matrix[0, 0], matrix[1, 0] = 6, 2
    matrix[1, 1], matrix[2, 1] = 1, 3
    matrix[0, n], matrix[1, n] = 5, 7  # ignored pixels, predicted as class 0 and 1
    evaluator._conf_matrix = matrix
    result = evaluator.evaluate()["sem_seg"]
    iou_0, iou_1 = 6 / (8 + 6 - 6), 1 / (4 + 3 - 1)
    assert result["IoU-" + evaluator._class_names[0]] == pytest.approx(100 * iou_0)
    assert result["mIoU"] == pytest.approx(100 * (iou_0 + iou_1) / 2)


def test_the_coco_evaluator_leaves_out_masks_when_any_annotation_of_the_set_has_none(tmp_path):
    # pycocotools reads the segmentation of every annotation: one without fails the whole
    # evaluation (KeyError: 'segmentation'), so a set where only some have masks scores boxes.
    from dropblock_det.engine.evaluation import dataset_evaluator

    name = "dropblock_test_coco_some_masks"
    square = [4.0, 4.0, 20.0, 4.0, 20.0, 20.0, 4.0, 20.0]
    coco = _one_square_coco({"id": 2, "image_id": 1, "category_id": 1, "bbox": [20, 20, 8, 8], "area": 64.0,
                             "iscrowd": 0}, segmentation=[square])
    register_coco_json(name, coco, tmp_path)
    evaluator = dataset_evaluator(name, None)
    prediction = {"image_id": 1, "category_id": 1, "bbox": [4, 4, 16, 16], "score": 0.9,
                  "segmentation": {"size": [32, 32], "counts": "abc"}}
    assert evaluator._tasks_from_predictions([prediction]) == ["bbox"]


# --- mutation run 54b ---
def test_on_a_process_other_than_the_main_one_the_evaluators_gather_and_score_nothing(tmp_path, monkeypatch):
    # With several GPUs each process sees a part of the test set: the main process scores what
    # all of them gathered, the others return nothing. Not distributed, each would score (and
    # log) its own part as if it were the whole set.
    import detectron2.evaluation.sem_seg_evaluation as sem_seg_evaluation
    import detectron2.utils.comm as comm

    from dropblock_det.engine.evaluation import dataset_evaluator

    name = "dropblock_test_coco_other_process"
    register_coco_json(name, _one_square_coco(), tmp_path)
    sem_seg = _synthetic_sem_seg_evaluator(tmp_path)
    coco = dataset_evaluator(name, None)
    sem_seg.reset()
    coco.reset()
    sem_seg._conf_matrix[0, 0] = 4
    coco._predictions = [{"image_id": 1, "instances": [
        {"image_id": 1, "category_id": 0, "bbox": [4.0, 4.0, 16.0, 16.0], "score": 0.9}]}]
    monkeypatch.setattr(comm, "is_main_process", lambda: False)
    monkeypatch.setattr(sem_seg_evaluation, "is_main_process", lambda: False)
    assert not sem_seg.evaluate()
    assert not coco.evaluate()
    monkeypatch.undo()
    assert sem_seg.evaluate()["sem_seg"]["mIoU"] == pytest.approx(100.0)
    assert coco.evaluate()["bbox"]["AP"] > 50


def test_the_miou_of_a_ground_truth_with_every_pixel_ignored_is_nan_as_detectron2s_not_zero(tmp_path):
    # No class to average over: 0 would read as a model that got every pixel wrong.
    import math

    evaluator = _synthetic_sem_seg_evaluator(tmp_path)
    n = evaluator._num_classes
    evaluator.reset()
    evaluator._conf_matrix[0, n], evaluator._conf_matrix[1, n] = 5, 7  # ignored pixels only
    with np.errstate(divide="ignore", invalid="ignore"):  # detectron2's own 0 / 0
        assert math.isnan(evaluator.evaluate()["sem_seg"]["mIoU"])


def test_a_segmentation_batch_failing_with_good_labels_keeps_its_own_error(tmp_path, monkeypatch):
    # The label check only adds the file to blame: with no bad label the batch's own error
    # must still stop the evaluation, not be dropped with the batch's pixels left unscored.
    from detectron2.evaluation import SemSegEvaluator

    evaluator = _synthetic_sem_seg_evaluator(tmp_path)
    evaluator.reset()
    (image, _), = evaluator.input_file_to_gt_file.items()

    def fails(self, inputs, outputs):
        raise RuntimeError("out of memory")

    monkeypatch.setattr(SemSegEvaluator, "process", fails)
    for file_name in (image, "not/in/the/dataset.jpg"):
        with pytest.raises(RuntimeError, match="out of memory"):
            evaluator.process([{"file_name": file_name}], [{"sem_seg": torch.zeros(evaluator._num_classes, 32, 32)}])


def test_a_detection_test_set_needs_no_segmentation_metadata():
    # stuff_classes / ignore_label are what SemSegEvaluator reads: a COCO or VOC detection
    # set has neither and must not be refused for it.
    from dropblock_det.engine.evaluation import sem_seg_metadata_missing

    for name in ("voc_2007_test", "coco_2017_val"):
        assert sem_seg_metadata_missing(name) == "", name


# --- coverage audit 55 ---
@pytest.mark.parametrize("content", [b"not an image", b"\x89PNG\r\n\x1a\n" + b"\x00" * 20])
def test_a_segmentation_label_that_is_not_an_image_is_named_as_unreadable(tmp_path, content):
    # PIL's own error named no file; an --eval-only reads the test set unchecked.
    from dropblock_det.data.file_errors import DatasetFileError

    evaluator = _synthetic_sem_seg_evaluator(tmp_path)
    evaluator.reset()
    (image, label), = evaluator.input_file_to_gt_file.items()
    with open(label, "wb") as f:
        f.write(content)
    with pytest.raises(DatasetFileError, match=rf"^dataset 'synthetic_sem_seg_val': the label {label} \(of image "
                                               rf"{image}\) is unreadable \((UnidentifiedImageError|SyntaxError|OSError)"):
        evaluator.process([{"file_name": image}], [{"sem_seg": torch.zeros(evaluator._num_classes, 32, 32)}])


# --- stop 56 ---
def test_a_keypoint_evaluation_scores_the_configs_oks_sigmas(tmp_path):
    # build_evaluator passes TEST.KEYPOINT_OKS_SIGMAS, as detectron2's own train_net does not:
    # a 5-keypoint set was scored with COCO's 17 person sigmas, and failed detectron2's count
    # assertion after the whole inference.
    from detectron2.structures import Boxes, Instances

    from dropblock_det.engine.evaluation import build_evaluator

    name = "stop56_coco_five_keypoints"
    keypoints = [6.0, 6.0, 2, 10.0, 6.0, 2, 14.0, 6.0, 2, 8.0, 14.0, 2, 12.0, 14.0, 2]
    register_coco_json(name, _one_square_coco(keypoints=keypoints, num_keypoints=5), tmp_path)

    def evaluate(*opts):
        # The exact keypoints (detectron2 takes 0.5 off the predicted ones, in place: new each time).
        instances = Instances((32, 32), pred_boxes=Boxes(torch.tensor([[4.0, 4.0, 20.0, 20.0]])),
                              scores=torch.tensor([0.9]), pred_classes=torch.tensor([0]),
                              pred_keypoints=torch.tensor(keypoints).view(1, 5, 3) + torch.tensor([0.5, 0.5, 0.0]))
        evaluator = build_evaluator(synthetic_cfg("OUTPUT_DIR", str(tmp_path), *opts), name)
        evaluator.reset()
        evaluator.process([{"image_id": 1}], [{"instances": instances}])
        return evaluator.evaluate()

    with pytest.raises(AssertionError, match="The length of cfg.TEST.KEYPOINT_OKS_SIGMAS is 17"):
        evaluate()  # COCO's 17 sigmas: what detectron2's own evaluator builder gives
    results = evaluate("TEST.KEYPOINT_OKS_SIGMAS", "[0.05, 0.05, 0.05, 0.08, 0.08]")
    assert results["keypoints"]["AP"] == pytest.approx(100.0)


# --- mutation 57 ---
def test_the_trainers_evaluator_of_every_test_set_scores_the_configs_oks_sigmas(tmp_path):
    # DefaultTrainer.test (training's evaluations and --eval-only) builds each DATASETS.TEST
    # set's evaluator with the trainer's build_evaluator: each must get TEST.KEYPOINT_OKS_SIGMAS,
    # not COCO's 17 (detectron2's own train_net passes none).
    from dropblock_det.engine.trainer import DropBlockTrainer

    names = ["mutation57_keypoints_a", "mutation57_keypoints_b"]
    for name in names:
        (tmp_path / name).mkdir()
        register_coco_json(name, _one_square_coco(keypoints=[6.0, 6.0, 2, 10.0, 6.0, 2], num_keypoints=2),
                           tmp_path / name)
    sigmas = [0.05, 0.08]
    cfg = synthetic_cfg("OUTPUT_DIR", str(tmp_path), "DATASETS.TEST", str(tuple(names)), "TEST.KEYPOINT_OKS_SIGMAS",
                        str(sigmas))
    for name in cfg.DATASETS.TEST:
        evaluator = DropBlockTrainer.build_evaluator(cfg, name)
        assert list(evaluator._kpt_oks_sigmas) == sigmas
