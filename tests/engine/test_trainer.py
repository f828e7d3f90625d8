"""The trainer logic behind tools/train_net.py that needs no training: evaluator choice,
train augmentations (Cutout), LR schedule delegation, config loading errors."""
import re
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import REPO, dropblock_everywhere_cfg

SYNTH = str(REPO / "configs" / "Synthetic" / "retinanet_R18_GN_dropblock_res45_kp0.9_b3.yaml")


def _cfg(*opts):
    from dropblock_det.engine.trainer import load_config

    return load_config(SYNTH, list(opts))


def test_evaluator_follows_the_dataset_type_and_uses_fast_coco_only_with_compiled_ops(tmp_path):
    from detectron2.data import MetadataCatalog
    from detectron2.evaluation import COCOEvaluator, PascalVOCDetectionEvaluator, SemSegEvaluator

    from dropblock_det.data.synthetic import (
        make_synthetic_detection,
        make_synthetic_sem_seg,
        register_synthetic_datasets,
    )
    from dropblock_det.engine.trainer import build_evaluator, has_compiled_ops

    tiny = dict(num_train=1, num_val=1, image_size=32, min_object_size=8, max_object_size=16)
    make_synthetic_detection(tmp_path, **tiny)
    make_synthetic_sem_seg(tmp_path, **tiny)  # SemSegEvaluator reads the dataset when built
    register_synthetic_datasets(tmp_path)
    try:
        cfg = _cfg("OUTPUT_DIR", str(tmp_path))
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

    from dropblock_det.data.synthetic import make_synthetic_sem_seg, register_synthetic_datasets
    from dropblock_det.engine.trainer import dataset_evaluator

    make_synthetic_sem_seg(tmp_path, num_train=1, num_val=1, image_size=32, min_object_size=8, max_object_size=16)
    register_synthetic_datasets(tmp_path)
    try:
        evaluator = dataset_evaluator("synthetic_sem_seg_val", output_dir=str(tmp_path / "inference"))
    finally:
        register_synthetic_datasets()
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
    from dropblock_det.engine.trainer import dataset_evaluator

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

    from dropblock_det.engine.trainer import has_compiled_ops

    placeholder = "placeholder" in (_C.__doc__ or "").lower()
    assert has_compiled_ops() is not placeholder


def test_cutout_is_appended_after_resize_only_when_enabled():
    from detectron2.data import transforms as T

    from dropblock_det.data.cutout import Cutout
    from dropblock_det.engine.trainer import build_train_augmentation

    off = build_train_augmentation(_cfg())
    assert isinstance(off[0], T.ResizeShortestEdge) and not any(isinstance(a, Cutout) for a in off)
    on = build_train_augmentation(_cfg("INPUT.CUTOUT.ENABLED", "True", "INPUT.CUTOUT.SIZE", "16"))
    assert isinstance(on[-1], Cutout) and isinstance(on[0], T.ResizeShortestEdge)


def test_train_augmentations_follow_detectron2s_order_and_the_flip_key():
    # detectron2's own order: a detector's crop before the resize (train_net's
    # build_augmentation), a SemanticSegmentor's category-area crop after it.
    from detectron2.data import transforms as T

    from dropblock_det.engine.trainer import build_train_augmentation

    crop = ("INPUT.CROP.ENABLED", "True", "INPUT.CROP.TYPE", "absolute", "INPUT.CROP.SIZE", "[32, 32]")
    detector = build_train_augmentation(_cfg(*crop))
    assert [type(a) for a in detector] == [T.RandomCrop, T.ResizeShortestEdge, T.RandomFlip]
    segmentor = build_train_augmentation(_cfg(*crop, "MODEL.META_ARCHITECTURE", "SemanticSegmentor"))
    assert [type(a) for a in segmentor] == [T.ResizeShortestEdge, T.RandomCrop_CategoryAreaConstraint, T.RandomFlip]
    for flip, horizontal, vertical in (("horizontal", True, False), ("vertical", False, True)):
        (random_flip,) = [a for a in build_train_augmentation(_cfg("INPUT.RANDOM_FLIP", flip))
                          if isinstance(a, T.RandomFlip)]
        assert (random_flip.horizontal, random_flip.vertical) == (horizontal, vertical)
    # "none": no flip at all (detectron2's RandomFlip refuses one with neither direction).
    assert [type(a) for a in build_train_augmentation(_cfg("INPUT.RANDOM_FLIP", "none"))] == [T.ResizeShortestEdge]


def test_lr_scheduler_comes_from_the_project_solver_for_poly():
    from dropblock_det.engine.trainer import DropBlockTrainer
    from dropblock_det.solver import WarmupPolyLR

    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1)
    poly = DropBlockTrainer.build_lr_scheduler(
        _cfg("SOLVER.LR_SCHEDULER_NAME", "WarmupPolyLR"), opt)
    assert isinstance(poly, WarmupPolyLR)
    cosine = DropBlockTrainer.build_lr_scheduler(_cfg(), opt)  # WarmupCosineLR: detectron2's
    assert not isinstance(cosine, WarmupPolyLR)


def test_odd_number_of_opts_is_refused():
    with pytest.raises(ValueError, match="odd number"):
        _cfg("SOLVER.MAX_ITER")
    with pytest.raises(ValueError, match="SOLVER.MAX_ITER"):
        _cfg("SOLVER.MAX_ITER", "'many'")


@pytest.mark.parametrize("opts, match", [
    # yacs named the key only: "Non-existent key: SOLVER.MAX_ITERS".
    (("SOLVER.MAX_ITERS", "3"), r"Non-existent key: SOLVER\.MAX_ITERS \(did you mean SOLVER\.MAX_ITER[,?]"),
    # Every close spelling, not the closest only.
    (("SOLVER.MAX_ITERS", "3"), r'\(did you mean SOLVER\.MAX_ITER, SOLVER\.WARMUP_ITERS\?\)"$'),
    # A typo in a key typed in lower case: the parts before it in the config's case too.
    (("model.dropblok.block_size", "5"), r'\(did you mean MODEL\.DROPBLOCK\.BLOCK_SIZE\?\)"$'),
    (("model.dropblock.schedule.end_itr", "5"), r'\(did you mean MODEL\.DROPBLOCK\.SCHEDULE\.END_ITER\?\)"$'),
    (("MODEL.DROPBLOCK.KEEP_PROBB", "0.8"), r'\(did you mean MODEL\.DROPBLOCK\.KEEP_PROB\?\)"$'),
    # yacs keys are upper case; the rest of the key is completed under the closest node.
    (("model.dropblock.keep_prob", "0.8"), r'\(did you mean MODEL\.DROPBLOCK\.KEEP_PROB\?\)"$'),
    (("MODEL.DROPBLOK.BLOCK_SIZE", "5"), r'\(did you mean MODEL\.DROPBLOCK\.BLOCK_SIZE\?\)"$'),
    (("MODEL.DROPBLOK.BLOCK_SIZ", "5"), r'\(did you mean MODEL\.DROPBLOCK\?\)"$'),
    (("ZZZQX", "5"), r'Non-existent key: ZZZQX"$'),
    # yacs tested `in` on the value: a bare "TypeError: argument of type 'float' is not iterable".
    (("SOLVER.BASE_LR.MIN", "0.1"), r"^\"command-line opt SOLVER\.BASE_LR\.MIN='0\.1': SOLVER\.BASE_LR is a value "
                                    r"\(0\.02\), not a group of keys\"$"),
    (("MODEL.DROPBLOCK.KEEP_PROB.A.B", "1"), r"MODEL\.DROPBLOCK\.KEEP_PROB is a value \(0\.9\), not a group"),
])
def test_an_unknown_opt_key_names_the_closest_keys(opts, match):
    with pytest.raises(KeyError, match=match):
        _cfg(*opts)


def test_an_unknown_key_in_a_config_file_names_the_closest_keys(tmp_path):
    from dropblock_det.engine.trainer import load_config

    typo = tmp_path / "typo.yaml"
    typo.write_text(f"_BASE_: {SYNTH}\nMODEL:\n  RETINANET:\n    NUM_CLASS: 3\n")
    with pytest.raises(KeyError, match=r"Non-existent config key: MODEL\.RETINANET\.NUM_CLASS \(did you mean "
                                       r"MODEL\.RETINANET\.NUM_CLASSES[,?].*\(add_dropblock_config and "):
        load_config(str(typo))
    # detectron2's configs before v1 named the weights MODEL.WEIGHT.
    old = tmp_path / "old.yaml"
    old.write_text(f"_BASE_: {SYNTH}\nMODEL:\n  WEIGHT: x.pkl\n")
    with pytest.raises(KeyError, match=r"Non-existent config key: MODEL\.WEIGHT \(did you mean MODEL\.WEIGHTS\?\)"):
        load_config(str(old))
    # A value of the wrong type names the file too (yacs names the key only).
    wrong = tmp_path / "wrong.yaml"
    wrong.write_text(f"_BASE_: {SYNTH}\nSOLVER:\n  MAX_ITER: many\n")
    with pytest.raises(ValueError, match=rf"^config file '{re.escape(str(wrong))}': Type mismatch .*SOLVER\.MAX_ITER$"):
        load_config(str(wrong))


# ----------------------------------------------------------------------------- DropBlock placed
@pytest.mark.parametrize("change, key", [
    ({}, None),
    # Stock detectron2 components ignore MODEL.DROPBLOCK: the run would train without it.
    ({"MODEL.META_ARCHITECTURE": "RetinaNet"}, "HEAD.ENABLED"),
    ({"MODEL.BACKBONE.NAME": "build_retinanet_resnet_fpn_backbone"}, "RESNET.ENABLED"),
    ({"MODEL.DROPBLOCK.SEM_SEG_HEAD.ENABLED": True}, "SEM_SEG_HEAD.ENABLED"),
])
def test_the_trainer_refuses_a_model_without_dropblock_where_the_config_turns_it_on(change, key):
    from dropblock_det.engine.trainer import DropBlockTrainer

    cfg = dropblock_everywhere_cfg(head_norm="")  # a head that v0.6's stock RetinaNet builds too
    cfg.merge_from_list([item for pair in change.items() for item in pair])
    if key is None:
        DropBlockTrainer.build_model(cfg)
        return
    with pytest.raises(ValueError, match=rf"MODEL\.DROPBLOCK\.{key}=True.*has no DropBlock there"):
        DropBlockTrainer.build_model(cfg)



def test_detectron2s_own_retinanet_with_a_head_norm_it_cannot_build_is_refused_naming_the_key():
    # v0.6's RetinaNetHead builds GN as GroupNorm(32, 1): a bare "num_channels (1) must be
    # divisible by num_groups (32)". Current detectron2 builds it: the config is accepted.
    from detectron2.modeling.meta_arch.retinanet import RetinaNetHead

    from dropblock_det.engine.trainer import check_model_config

    cfg = _cfg("MODEL.META_ARCHITECTURE", "RetinaNet", "MODEL.DROPBLOCK.RESNET.ENABLED", "False")
    assert cfg.MODEL.RETINANET.NORM == "GN"
    try:
        RetinaNetHead(input_shape=[type("S", (), {"channels": 32})()], num_classes=1, num_anchors=1,
                      conv_dims=[32], norm="GN")
    except ValueError:
        with pytest.raises(ValueError, match=r"^MODEL\.RETINANET\.NORM='GN': this detectron2's own RetinaNetHead "
                                             r".*num_groups.*use MODEL\.META_ARCHITECTURE 'DropBlockRetinaNet'"):
            check_model_config(cfg)
    else:
        assert type(check_model_config(cfg)).__name__ == "RetinaNet"


# ----------------------------------------------------------------------------- early checks
def test_a_bad_lr_schedule_is_refused_before_anything_is_built():
    from dropblock_det.engine.trainer import check_lr_scheduler

    check_lr_scheduler(_cfg())
    check_lr_scheduler(_cfg("SOLVER.LR_SCHEDULER_NAME", "WarmupPolyLR"))
    with pytest.raises(ValueError, match=r"SOLVER\.LR_SCHEDULER_NAME='WarmupCosine'.*Unknown LR scheduler"):
        check_lr_scheduler(_cfg("SOLVER.LR_SCHEDULER_NAME", "WarmupCosine"))
    with pytest.raises(ValueError, match=r"'WarmupPolyLR'.*SOLVER\.WARMUP_METHOD.*'exp'"):
        check_lr_scheduler(_cfg("SOLVER.LR_SCHEDULER_NAME", "WarmupPolyLR", "SOLVER.WARMUP_METHOD", "exp"))
    with pytest.raises(ValueError, match=r"SOLVER\.MAX_ITER=0"):
        check_lr_scheduler(_cfg("SOLVER.MAX_ITER", "0"))


@pytest.mark.parametrize("opts, match", [
    (["SOLVER.BASE_LR", "-0.1"], r"^SOLVER\.BASE_LR=-0\.1: the optimizer .*Invalid learning rate: -0\.1$"),
    (["SOLVER.MOMENTUM", "-1.0"], r"^SOLVER\.MOMENTUM=-1\.0: .*Invalid momentum value: -1\.0$"),
    (["SOLVER.WEIGHT_DECAY", "-1.0"], r"^SOLVER\.WEIGHT_DECAY=-1\.0: .*Invalid weight_decay value"),
    (["SOLVER.NESTEROV", "True", "SOLVER.MOMENTUM", "0.0"], r"^SOLVER\.NESTEROV=True: .*requires a momentum"),
    (["SOLVER.CLIP_GRADIENTS.ENABLED", "True", "SOLVER.CLIP_GRADIENTS.CLIP_TYPE", "norms"],
     r"^SOLVER\.CLIP_GRADIENTS\.CLIP_TYPE='norms': .*not a valid GradientClipType"),
    (["DATALOADER.NUM_WORKERS", "-1"], r"^DATALOADER\.NUM_WORKERS=-1: expected a number of loader processes >= 0$"),
])
def test_solver_and_loader_values_torch_refuses_late_are_refused_before_the_run(opts, match):
    # SGD and the DataLoader refuse them only once the trainer builds them, after the run's
    # config and log are in OUTPUT_DIR; the optimizer is built on the meta-device model.
    from dropblock_det.engine.trainer import check_config_before_run, check_optimizer

    with pytest.raises(ValueError, match=match):
        check_config_before_run(_cfg(*opts), check_files=False)
    assert isinstance(check_optimizer(_cfg()), torch.optim.SGD)


def test_impl_triton_is_checked_against_the_device_for_training_only(monkeypatch):
    from dropblock_det.engine.trainer import check_config_before_run

    monkeypatch.delenv("TRITON_INTERPRET", raising=False)
    cfg = _cfg("MODEL.DROPBLOCK.IMPL", "triton", "MODEL.DEVICE", "cpu", "DATASETS.TRAIN", "()", "DATASETS.TEST", "()")
    with pytest.raises(ValueError, match=r"MODEL\.DROPBLOCK\.IMPL='triton'.*MODEL\.DEVICE='cpu'"):
        check_config_before_run(cfg)
    check_config_before_run(cfg, train=False)  # evaluation: DropBlock is the identity


def test_a_test_dataset_without_an_evaluator_is_refused_before_training():
    from detectron2.data import MetadataCatalog

    from dropblock_det.engine.trainer import check_evaluator_types

    check_evaluator_types(_cfg())  # synthetic_det_val: coco
    MetadataCatalog.get("dropblock_test_unevaluable").set(evaluator_type="lvis_like")
    cfg = _cfg()
    cfg.DATASETS.TEST = ("synthetic_det_val", "dropblock_test_unevaluable")
    with pytest.raises(ValueError, match="dropblock_test_unevaluable.*'lvis_like'.*supported: 'coco'"):
        check_evaluator_types(cfg)


@pytest.mark.parametrize("meta_architecture, test_set", [
    ("DropBlockRetinaNet", "synthetic_sem_seg_val"),
    ("RetinaNet", "voc_2012_sem_seg_val"),
    ("SemanticSegmentor", "synthetic_det_val"),
    ("SemanticSegmentor", "voc_2007_test"),
    ("ProposalNetwork", "voc_2007_test"),  # proposals only: the VOC evaluator read "instances" (KeyError)
])
def test_a_test_set_the_model_cannot_be_evaluated_on_is_refused_before_training(meta_architecture, test_set):
    # Else training runs to the end and the evaluator fails on the first batch.
    from dropblock_det.engine.trainer import check_evaluator_types

    cfg = _cfg("MODEL.META_ARCHITECTURE", meta_architecture)
    cfg.DATASETS.TEST = (test_set,)
    with pytest.raises(ValueError, match=rf"DATASETS\.TEST names '{test_set}'.*MODEL\.META_ARCHITECTURE='{meta_architecture}'"):
        check_evaluator_types(cfg)


def test_an_rpn_is_evaluated_on_a_coco_set_whose_evaluator_scores_proposals():
    from dropblock_det.engine.trainer import check_evaluator_types

    check_evaluator_types(_cfg("MODEL.META_ARCHITECTURE", "ProposalNetwork"))  # synthetic_det_val: coco


def test_a_segmentation_test_set_without_the_metadata_its_evaluator_reads_is_refused_before_training():
    # SemSegEvaluator reads stuff_classes and ignore_label from the metadata when it is built,
    # after the whole training: "Attribute 'ignore_label' does not exist in the metadata".
    from detectron2.data import MetadataCatalog

    from dropblock_det.engine.trainer import check_evaluator_types, sem_seg_metadata_missing

    MetadataCatalog.get("dropblock_test_seg_no_ignore").set(evaluator_type="sem_seg", stuff_classes=["a", "b"])
    MetadataCatalog.get("dropblock_test_seg_no_classes").set(evaluator_type="sem_seg", ignore_label=255)
    cfg = _cfg("MODEL.META_ARCHITECTURE", "SemanticSegmentor")
    for name, missing in (("dropblock_test_seg_no_ignore", "'ignore_label'"),
                          ("dropblock_test_seg_no_classes", "'stuff_classes'")):
        cfg.DATASETS.TEST = ("synthetic_sem_seg_val", name)
        with pytest.raises(ValueError, match=rf"^DATASETS\.TEST names '{name}', a 'sem_seg' dataset whose metadata "
                                             rf"has no {missing}, which detectron2's SemSegEvaluator reads"):
            check_evaluator_types(cfg)
    assert sem_seg_metadata_missing("dropblock_test_seg_no_ignore", ignore_label_given=True) == ""
    assert sem_seg_metadata_missing("synthetic_sem_seg_val") == sem_seg_metadata_missing("synthetic_det_val") == ""


def test_a_model_of_the_users_own_is_not_refused_a_test_set_it_may_evaluate_on():
    # A meta-architecture that is neither (e.g. PanopticFPN-like) may give both outputs.
    from detectron2.modeling import META_ARCH_REGISTRY, GeneralizedRCNN

    from dropblock_det.engine.trainer import check_evaluator_types

    if "DropBlockTestBothOutputs" not in META_ARCH_REGISTRY:
        META_ARCH_REGISTRY.register(type("DropBlockTestBothOutputs", (GeneralizedRCNN,), {}))
    for test_set in ("synthetic_sem_seg_val", "synthetic_det_val"):
        cfg = _cfg("MODEL.META_ARCHITECTURE", "DropBlockTestBothOutputs")
        cfg.DATASETS.TEST = (test_set,)
        check_evaluator_types(cfg)


# ----------------------------------------------------------------------------- REFERENCE_WORLD_SIZE
def test_auto_scale_workers_scales_the_dropblock_ramp_as_max_iter():
    from dropblock_det.engine.trainer import DropBlockTrainer

    cfg = _cfg("SOLVER.REFERENCE_WORLD_SIZE", "8", "SOLVER.IMS_PER_BATCH", "16", "SOLVER.MAX_ITER", "1000",
               "MODEL.DROPBLOCK.SCHEDULE.START_ITER", "100", "MODEL.DROPBLOCK.SCHEDULE.END_ITER", "801")
    cfg.freeze()
    scaled = DropBlockTrainer.auto_scale_workers(cfg, 16)
    assert (scaled.SOLVER.MAX_ITER, scaled.SOLVER.IMS_PER_BATCH, scaled.SOLVER.REFERENCE_WORLD_SIZE) == (500, 32, 16)
    assert (scaled.MODEL.DROPBLOCK.SCHEDULE.START_ITER, scaled.MODEL.DROPBLOCK.SCHEDULE.END_ITER) == (50, 400)
    assert scaled.is_frozen() and cfg.MODEL.DROPBLOCK.SCHEDULE.END_ITER == 801  # a new config
    quarter = DropBlockTrainer.auto_scale_workers(cfg, 2)
    assert (quarter.MODEL.DROPBLOCK.SCHEDULE.START_ITER, quarter.MODEL.DROPBLOCK.SCHEDULE.END_ITER) == (400, 3204)
    assert DropBlockTrainer.auto_scale_workers(cfg, 8) is cfg  # already the reference size
    to_max_iter = _cfg("SOLVER.REFERENCE_WORLD_SIZE", "8", "SOLVER.IMS_PER_BATCH", "16")
    assert DropBlockTrainer.auto_scale_workers(to_max_iter, 4).MODEL.DROPBLOCK.SCHEDULE.END_ITER == -1


@pytest.mark.parametrize("opts, match", [
    # 10 iterations for 1 process are 2 for 4 (round(2.5)): the ramp from 8 starts at 2 = MAX_ITER.
    (["SOLVER.MAX_ITER", "10", "MODEL.DROPBLOCK.SCHEDULE.START_ITER", "8"],
     r"SCHEDULE\.START_ITER.*, once scaled to SOLVER\.MAX_ITER=2 \(SOLVER\.REFERENCE_WORLD_SIZE=1 scales"),
    (["SOLVER.MAX_ITER", "2"], r"SOLVER\.MAX_ITER=2 becomes 0 iterations"),  # round(0.5)
    (["SOLVER.REFERENCE_WORLD_SIZE", "3"], r"SOLVER\.IMS_PER_BATCH=2 is not divisible by SOLVER\.REFERENCE_WORLD_SIZE=3"),
    # A negative one was said to be a reference the batch "is not divisible by" (2 by -2).
    (["SOLVER.REFERENCE_WORLD_SIZE", "-2"], r"^SOLVER\.REFERENCE_WORLD_SIZE=-2: expected the number of processes the "
                                            r"config was set for \(0: no scaling\)$"),
])
def test_a_config_that_cannot_be_scaled_to_this_runs_processes_is_refused_before_the_run(monkeypatch, opts, match):
    # DropBlockTrainer scales the config to the world size when it is built, after the tool
    # has moved an earlier run's files aside: the tools check the scaled config first.
    from dropblock_det.engine import trainer

    monkeypatch.setattr(trainer.comm, "get_world_size", lambda: 4)
    cfg = _cfg("SOLVER.REFERENCE_WORLD_SIZE", "1", "SOLVER.IMS_PER_BATCH", "2", *opts)
    with pytest.raises(ValueError, match=match):
        trainer.check_config_before_run(cfg, check_files=False)
    # Scaled fine: only the last check, 4 training processes on the config's CPU, is left.
    with pytest.raises(ValueError, match=r"^MODEL\.DEVICE='cpu' with 4 training processes"):
        trainer.check_config_before_run(_cfg("SOLVER.REFERENCE_WORLD_SIZE", "1", "SOLVER.IMS_PER_BATCH", "2",
                                             "SOLVER.MAX_ITER", "100"), check_files=False)


def test_a_batch_indivisible_by_the_processes_it_was_set_for_is_refused(monkeypatch):
    # REFERENCE_WORLD_SIZE equal to the world size scales nothing: the batch must still
    # split over the processes (detectron2 asserts it only once the data loader is built).
    from dropblock_det.engine import trainer

    monkeypatch.setattr(trainer.comm, "get_world_size", lambda: 2)
    for reference in ("0", "2"):
        with pytest.raises(ValueError, match=r"^SOLVER\.IMS_PER_BATCH=3: not divisible by the 2 processes$"):
            trainer.check_config_before_run(_cfg("SOLVER.REFERENCE_WORLD_SIZE", reference, "SOLVER.IMS_PER_BATCH", "3"),
                                            check_files=False)
        # A batch that divides: only the last check, 2 training processes on the config's CPU, is left.
        with pytest.raises(ValueError, match=r"^MODEL\.DEVICE='cpu' with 2 training processes"):
            trainer.check_config_before_run(_cfg("SOLVER.REFERENCE_WORLD_SIZE", reference, "SOLVER.IMS_PER_BATCH", "4"),
                                            check_files=False)


def test_training_in_several_processes_on_the_cpu_is_refused_before_the_run_and_evaluating_is_not(monkeypatch):
    # detectron2's trainer gives each process's model its GPU in DistributedDataParallel:
    # `--num-gpus 2 MODEL.DEVICE cpu` failed there with torch's "device_ids ... only work with
    # ... GPU modules", after data loading and after config.yaml and log.txt were written.
    from dropblock_det.engine import trainer

    monkeypatch.setattr(trainer.comm, "get_world_size", lambda: 2)
    with pytest.raises(ValueError, match=r"^MODEL\.DEVICE='cpu' with 2 training processes \(--num-gpus x "
                                         r"--num-machines\).*--num-gpus 1"):
        trainer.check_config_before_run(_cfg(), check_files=False)
    trainer.check_config_before_run(_cfg(), train=False, check_files=False)  # no DDP: runs there
    monkeypatch.setattr(trainer.comm, "get_world_size", lambda: 1)
    trainer.check_config_before_run(_cfg(), check_files=False)


def _launch_tool_with(monkeypatch, num_gpus, num_machines=1):
    """Call launch_tool as the tools do, with detectron2's launch replaced by a recorder."""
    import argparse

    import detectron2.engine
    from dropblock_det.engine import trainer

    launched = []
    monkeypatch.setattr(detectron2.engine, "launch", lambda main, n, **kwargs: launched.append(n))
    args = argparse.Namespace(num_gpus=num_gpus, num_machines=num_machines, machine_rank=0, dist_url="auto")
    trainer.launch_tool(lambda args: None, args)
    return launched


def test_more_processes_than_the_machines_gpus_are_refused_naming_num_gpus_before_launch(monkeypatch):
    # detectron2's launch started the processes, each imported everything, then failed with a
    # bare `assert num_gpus_per_machine <= torch.cuda.device_count()` (no message).
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    with pytest.raises(ValueError, match=r"^--num-gpus 4: torch sees 2 CUDA device\(s\) on this machine"):
        _launch_tool_with(monkeypatch, 4)
    assert _launch_tool_with(monkeypatch, 2) == [2]
    assert _launch_tool_with(monkeypatch, 1, num_machines=2) == [1]


def test_several_processes_without_cuda_are_refused_before_launch_only_where_launch_asserts_cuda(monkeypatch):
    # detectron2 v0.6's launch asserted "cuda is not available" in every process it started;
    # detectron2 main's starts them with GLOO (DDP on the CPU, LazyConfig's train.device=cpu).
    import importlib
    import inspect

    # The module, not the function of that name that detectron2.engine exports.
    source = inspect.getsource(importlib.import_module("detectron2.engine.launch")._distributed_worker)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert _launch_tool_with(monkeypatch, 1) == [1]  # one process: nothing distributed
    if "cuda is not available" in source:
        with pytest.raises(ValueError, match=r"^--num-gpus 2 --num-machines 1: torch sees no CUDA device here.*"
                                             r"--num-gpus 1\)"):
            _launch_tool_with(monkeypatch, 2)
        with pytest.raises(ValueError, match=r"^--num-gpus 1 --num-machines 2: torch sees no CUDA device"):
            _launch_tool_with(monkeypatch, 1, num_machines=2)
    else:
        assert _launch_tool_with(monkeypatch, 2) == [2]


def test_a_test_set_named_twice_is_refused_and_a_repeated_training_set_is_not():
    # detectron2 keys the evaluation results by name: one entry's would stand for both (the
    # main job then found no per-set results and printed n/a). Repeating a training set is
    # oversampling it.
    from dropblock_det.engine.trainer import check_config_before_run

    with pytest.raises(ValueError, match=r"^DATASETS\.TEST=\('synthetic_det_val', 'synthetic_det_val'\) names "
                                         r"'synthetic_det_val' more than once"):
        check_config_before_run(_cfg("DATASETS.TEST", "('synthetic_det_val','synthetic_det_val')"), check_files=False)
    check_config_before_run(_cfg("DATASETS.TRAIN", "('synthetic_det_train','synthetic_det_train')"), check_files=False)


@pytest.mark.parametrize("opts, match", [
    (["MODEL.DEVICE", "gpu"], r"^MODEL\.DEVICE='gpu': not a device torch knows"),
    (["MODEL.DEVICE", "cuda:x"], r"^MODEL\.DEVICE='cuda:x': not a device torch knows"),
    (["MODEL.DEVICE", "cuda:64"], r"^MODEL\.DEVICE='cuda:64': torch sees (no CUDA device|\d+ CUDA device)"),
    (["MODEL.DEVICE", "cpu", "SOLVER.AMP.ENABLED", "True"],
     r"^SOLVER\.AMP\.ENABLED=True needs a CUDA MODEL\.DEVICE, got 'cpu'$"),
])
def test_a_device_the_run_cannot_use_is_refused_before_anything_is_written(opts, match):
    # detectron2 fails moving the model (or, for AMP, at the first step) with a message
    # naming no key, after the output folder has the run's config and log.
    from dropblock_det.engine.trainer import check_config_before_run

    with pytest.raises(ValueError, match=match):
        check_config_before_run(_cfg(*opts), check_files=False)
    if "SOLVER.AMP.ENABLED" in opts:  # an evaluation does not use AMP
        check_config_before_run(_cfg(*opts), train=False, check_files=False)
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match=r"^MODEL\.DEVICE='cuda': torch sees no CUDA device here; use 'cpu'$"):
            check_config_before_run(_cfg("MODEL.DEVICE", "cuda"), train=False, check_files=False)


def test_a_cuda_device_index_past_the_devices_torch_sees_is_refused_naming_the_key(monkeypatch):
    # cuda:2 on a machine with 2 GPUs (cuda:0, cuda:1) failed moving the model there, after
    # the run's files were written.
    from dropblock_det.engine.trainer import checked_device

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    assert checked_device("MODEL.DEVICE", "cuda:1") == torch.device("cuda:1")
    with pytest.raises(ValueError, match=r"^MODEL\.DEVICE='cuda:2': torch sees 2 CUDA device\(s\) here$"):
        checked_device("MODEL.DEVICE", "cuda:2")


@pytest.mark.parametrize("opts, match", [
    # The synthetic set has 3 classes: with 80 the run trained fully and its evaluation failed
    # ("A prediction has class=48, but the dataset only has 3 classes"); with 2 class id 2
    # trained as background, silently.
    (["MODEL.RETINANET.NUM_CLASSES", "80"],
     r"^MODEL\.RETINANET\.NUM_CLASSES=80, but DATASETS\.TRAIN names 'synthetic_det_train', which has 3 classes "
     r"\(its metadata thing_classes: \['circle', 'square', 'triangle'\]\): set MODEL\.RETINANET\.NUM_CLASSES to 3 "
     r"\(.*evaluation fails after the whole training\)$"),
    (["MODEL.RETINANET.NUM_CLASSES", "2"], r"^MODEL\.RETINANET\.NUM_CLASSES=2, .*which has 3 classes.*as background"),
    # An image resized to nothing: "height and width must be > 0" naming a val image, after training.
    (["INPUT.MAX_SIZE_TEST", "0"], r"^INPUT\.MIN_SIZE_TEST=96 with INPUT\.MAX_SIZE_TEST=0: a longest edge < 1"),
    (["INPUT.MIN_SIZE_TEST", "-5"], r"^INPUT\.MIN_SIZE_TEST=-5 with INPUT\.MAX_SIZE_TEST=96: a negative shortest edge"),
    # At the first step, naming a train image.
    # (PIL's words differ by version: "conversion from RGB to FOO not supported", "image has wrong mode")
    (["INPUT.FORMAT", "FOO"], r"^INPUT\.FORMAT='FOO': detectron2's convert_PIL_to_numpy refuses it \(ValueError: .*\)"),
    (["INPUT.FORMAT", "RGBA"], r"^INPUT\.FORMAT='RGBA': it gives 4-channel images, the model normalizes 3 channels "
                               r".*MODEL\.PIXEL_MEAN has 3 values"),
    (["INPUT.FORMAT", "I"], r"^INPUT\.FORMAT='I': detectron2 reads it as images without a channel axis"),
    # After the output folder was prepared and config.yaml written.
    (["DATALOADER.SAMPLER_TRAIN", "Foo"], r"^DATALOADER\.SAMPLER_TRAIN='Foo': not a sampler .* expected one of "
                                          r"\['TrainingSampler', 'RepeatFactorTrainingSampler', 'RandomSubsetTrainingSampler'"),
    # A bare "FileNotFoundError: ''" from archive_previous_run.
    (["OUTPUT_DIR", ""], r"^OUTPUT_DIR='': expected a folder"),
])
def test_inputs_that_failed_late_naming_a_file_are_refused_by_key_before_the_run(opts, match):
    from dropblock_det.engine.trainer import check_config_before_run

    with pytest.raises(ValueError, match=match):
        check_config_before_run(_cfg(*opts), check_files=False)
    if opts[0] != "DATALOADER.SAMPLER_TRAIN":  # an evaluation uses these too (not the training sampler)
        with pytest.raises(ValueError, match=match.replace("DATASETS\\.TRAIN names 'synthetic_det_train'",
                                                           "DATASETS\\.TEST names 'synthetic_det_val'")):
            check_config_before_run(_cfg(*opts), train=False, check_files=False)
    else:
        check_config_before_run(_cfg(*opts), train=False, check_files=False)


@pytest.mark.parametrize("opts", [
    ["INPUT.MIN_SIZE_TEST", "0", "INPUT.MAX_SIZE_TEST", "0"],  # detectron2's "no resizing"
    ["INPUT.FORMAT", "RGB"], ["INPUT.FORMAT", "L"],  # one channel broadcasts to PIXEL_MEAN's three
    ["INPUT.FORMAT", "YUV-BT.601"],
    ["DATALOADER.SAMPLER_TRAIN", "RepeatFactorTrainingSampler"],
])
def test_inputs_detectron2_accepts_are_not_refused(opts):
    from dropblock_det.engine.trainer import check_config_before_run

    check_config_before_run(_cfg(*opts), check_files=False)


@pytest.mark.parametrize("crop_type, size", [
    ("relative", [1.0, 1.0]), ("relative_range", [0.5, 1.0]),  # up to the whole image
    ("absolute", [32, 48]), ("absolute_range", [32, 32]),  # a range of one size
])
def test_crops_detectron2_takes_are_not_refused(crop_type, size):
    from dropblock_det.engine.trainer import check_crop

    check_crop(crop_type, size)


@pytest.mark.parametrize("crop_type, size", [
    ("relative", [0.5, 0.5, 0.5]), ("absolute", [32]),  # not (height, width): detectron2 unpacks two
    ("absolute", [True, 32]), ("relative", [0.5, False]),  # a bool is no size
    ("absolute", [32.5, 32]), ("relative_range", [0.0, 0.5]), ("absolute", "32"),
])
def test_crops_detectron2_fails_on_are_refused_naming_the_keys(crop_type, size):
    from dropblock_det.engine.trainer import check_crop

    with pytest.raises(ValueError, match=rf"^INPUT\.CROP\.SIZE={re.escape(repr(size))} with "
                                         rf"INPUT\.CROP\.TYPE='{crop_type}': expected two"):
        check_crop(crop_type, size)


def test_a_sampling_range_of_one_size_is_refused_naming_the_key():
    # detectron2's ResizeShortestEdge asserted "short_edge_length must be two values using
    # 'range' sample style" once the training loader was built.
    from dropblock_det.engine.trainer import check_train_inputs

    check_train_inputs(_cfg("INPUT.MIN_SIZE_TRAIN_SAMPLING", "range", "INPUT.MIN_SIZE_TRAIN", "(48, 64)"))
    for sizes in ("(64,)", "(32, 48, 64)"):
        with pytest.raises(ValueError, match=r"^INPUT\.MIN_SIZE_TRAIN=\(.*\): expected sizes >= 1 \(two: the range's ends; 0: "):
            check_train_inputs(_cfg("INPUT.MIN_SIZE_TRAIN_SAMPLING", "range", "INPUT.MIN_SIZE_TRAIN", sizes))
    check_train_inputs(_cfg("INPUT.MIN_SIZE_TRAIN", "(32, 48, 64)"))  # "choice" picks one of any number


def test_a_training_shortest_edge_of_zero_is_no_resizing_as_in_detectron2():
    # ResizeShortestEdge returns no transform for a drawn size of 0, in training too; it was
    # refused as "expected sizes >= 1". A longest edge < 1 still fails wherever a size resizes.
    from detectron2.data import transforms as T

    from dropblock_det.engine.trainer import build_train_augmentation, check_train_inputs

    cfg = _cfg("INPUT.MIN_SIZE_TRAIN", "(0,)", "INPUT.MAX_SIZE_TRAIN", "0")
    check_train_inputs(cfg)
    resize = build_train_augmentation(cfg)[0]
    image = np.zeros((30, 50, 3), dtype=np.uint8)
    assert T.AugInput(image).apply_augmentations([resize]).apply_image(image).shape == (30, 50, 3)
    for opts, match in (((0, 64), r"^INPUT\.MAX_SIZE_TRAIN=0: expected a size >= 1 \(INPUT\.MIN_SIZE_TRAIN=\(0, 64\) resizes\)"),
                        ((-1,), r"^INPUT\.MIN_SIZE_TRAIN=\(-1,\): expected sizes >= 1 to choose from \(0: no resizing\)"),
                        ((True,), r"^INPUT\.MIN_SIZE_TRAIN=\(True,\): expected sizes >= 1")):
        with pytest.raises(ValueError, match=match):
            check_train_inputs(_cfg("INPUT.MIN_SIZE_TRAIN", repr(opts), "INPUT.MAX_SIZE_TRAIN", "0" if 0 in opts else "64"))


@pytest.mark.parametrize("key, value", [("SOLVER.MAX_ITER", True), ("DATALOADER.NUM_WORKERS", True),
                                        ("DATALOADER.NUM_WORKERS", 1.0)])
def test_a_count_set_in_code_to_a_bool_or_float_is_refused_naming_the_key(key, value):
    # yacs refuses them from a file or the command line; a config built in code need not.
    from dropblock_det.engine.trainer import check_config_before_run

    cfg = _cfg()
    node, leaf = key.split(".")
    cfg[node][leaf] = value
    with pytest.raises(ValueError, match=rf"^{re.escape(key)}={value!r}: expected a number of"):
        check_config_before_run(cfg, check_files=False)


def test_an_output_dir_set_in_code_to_no_string_is_refused_naming_the_key():
    # yacs refuses it from a file or the command line; a config built in code need not.
    from dropblock_det.engine.trainer import check_config_before_run

    cfg = _cfg()
    cfg.OUTPUT_DIR = ("./output",)
    for train in (True, False):
        with pytest.raises(ValueError, match=r"^OUTPUT_DIR=\('\./output',\): expected a folder"):
            check_config_before_run(cfg, train=train, check_files=False)


def test_a_training_checks_the_files_its_evaluations_will_read_and_an_evaluation_does_not(tmp_path):
    # A test image missing: the run trained to the end and failed at its evaluation.
    from dropblock_det.data.file_errors import DatasetFileError
    from dropblock_det.data.synthetic import make_synthetic_detection, register_synthetic_datasets
    from dropblock_det.engine.trainer import check_config_before_run

    make_synthetic_detection(tmp_path, num_train=1, num_val=1, image_size=32, min_object_size=8, max_object_size=16)
    register_synthetic_datasets(tmp_path)
    try:
        cfg = _cfg("MODEL.DEVICE", "cpu")
        check_config_before_run(cfg)
        (val_image,) = (tmp_path / "synthetic_det" / "val").iterdir()
        val_image.unlink()
        with pytest.raises(DatasetFileError, match=rf"^DATASETS\.TEST names 'synthetic_det_val', whose file_name "
                                                   rf".*{re.escape(val_image.name)} does not exist"):
            check_config_before_run(cfg)
        check_config_before_run(cfg, train=False)  # an evaluation reads the set itself, naming the file
        check_config_before_run(cfg, check_files=False)
    finally:
        register_synthetic_datasets()


@pytest.mark.parametrize("meta_architecture", ["DropBlockRetinaNet", "RetinaNet", "SemanticSegmentor", "PanopticFPN",
                                               "ProposalNetwork"])
def test_test_time_augmentation_is_refused_for_models_detectron2_has_none_for(meta_architecture):
    # DefaultTrainer never reads TEST.AUG; the trainer's TTA is detectron2's GeneralizedRCNNWithTTA,
    # which asserts an R-CNN (a PanopticFPN is one, but its inference takes no boxes) after the training.
    from dropblock_det.engine.trainer import check_config_before_run, check_test_inputs

    cfg = _cfg("MODEL.META_ARCHITECTURE", meta_architecture, "TEST.AUG.ENABLED", "True")
    with pytest.raises(ValueError, match=rf"^TEST\.AUG\.ENABLED=True: detectron2 has test-time augmentation for R-CNN "
                                         rf"models only .*MODEL\.META_ARCHITECTURE='{meta_architecture}': set "
                                         rf"TEST\.AUG\.ENABLED False$"):
        check_test_inputs(cfg)
    check_test_inputs(_cfg("MODEL.META_ARCHITECTURE", meta_architecture, "TEST.AUG.MIN_SIZES", "(-1,)"))  # unread
    if meta_architecture == "DropBlockRetinaNet":  # an --eval-only run's check too
        with pytest.raises(ValueError, match=r"^TEST\.AUG\.ENABLED=True"):
            check_config_before_run(cfg, train=False, check_files=False)


@pytest.mark.parametrize("opts, match", [
    (["TEST.AUG.MIN_SIZES", "()"], r"^TEST\.AUG\.MIN_SIZES=\(\): expected a non-empty list of shortest edges"),
    (["TEST.AUG.MIN_SIZES", "(400, -1)"], r"^TEST\.AUG\.MIN_SIZES=\(400, -1\) with TEST\.AUG\.MAX_SIZE=4000: a "
                                          r"negative shortest edge"),
    (["TEST.AUG.MIN_SIZES", "('400',)"], r"^TEST\.AUG\.MIN_SIZES=\('400',\) with .*: expected numbers of pixels"),
    (["TEST.AUG.MAX_SIZE", "0"], r"^TEST\.AUG\.MIN_SIZES=\(400, .*\) with TEST\.AUG\.MAX_SIZE=0: a longest edge < 1"),
    (["MODEL.KEYPOINT_ON", "True"], r"^TEST\.AUG\.ENABLED=True with MODEL\.KEYPOINT_ON=True: .* no test-time "
                                    r"augmentation for keypoints"),
    (["MODEL.LOAD_PROPOSALS", "True"], r"^TEST\.AUG\.ENABLED=True with MODEL\.LOAD_PROPOSALS=True: .*precomputed "
                                       r"proposals"),
])
def test_rcnn_test_time_augmentation_values_it_would_fail_on_are_refused_naming_the_key(opts, match):
    # GeneralizedRCNNWithTTA runs after the whole training: an empty MIN_SIZES failed there
    # in torch.cat, a negative size on the first image, KEYPOINT_ON / LOAD_PROPOSALS on its asserts.
    from dropblock_det.engine.trainer import check_test_inputs

    cfg = _cfg("MODEL.META_ARCHITECTURE", "GeneralizedRCNN", "TEST.AUG.ENABLED", "True")
    check_test_inputs(cfg)  # detectron2's defaults: 400..1200, MAX_SIZE 4000, FLIP
    cfg.merge_from_list(opts)
    with pytest.raises(ValueError, match=match):
        check_test_inputs(cfg)
    cfg.TEST.AUG.ENABLED = False
    check_test_inputs(cfg)  # unread without TTA


def test_rcnn_test_time_augmentation_accepts_what_resizes_and_refuses_a_flip_that_is_no_bool():
    from conftest import rcnn_cfg

    from dropblock_det.engine.trainer import check_config_before_run, check_test_inputs

    cfg = rcnn_cfg("TEST.AUG.ENABLED", "True", "TEST.AUG.MIN_SIZES", "(0, 96)", "TEST.AUG.MAX_SIZE", "96",
                   "TEST.AUG.FLIP", "False")
    # 0: detectron2's "no resizing" (the image at the test resize), as for INPUT.MIN_SIZE_TEST.
    check_config_before_run(cfg, train=False, check_files=False)
    cfg.TEST.AUG.FLIP = 1  # yacs keeps a YAML/opts value a bool; a config built in code need not
    with pytest.raises(ValueError, match=r"^TEST\.AUG\.FLIP=1: expected True or False"):
        check_test_inputs(cfg)
    # A tool that evaluates its own way (tools/analyze_robustness.py) runs no TTA: refused there.
    cfg.TEST.AUG.FLIP = True
    with pytest.raises(ValueError, match=r"^TEST\.AUG\.ENABLED=True: this evaluation runs no test-time augmentation "
                                         r"\(MODEL\.META_ARCHITECTURE='GeneralizedRCNN'\).*set TEST\.AUG\.ENABLED False"):
        check_test_inputs(cfg, test_time_augmentation=False)
    with pytest.raises(ValueError, match=r"^TEST\.AUG\.ENABLED=True: this evaluation runs no"):
        check_config_before_run(cfg, train=False, check_files=False, test_time_augmentation=False)


def test_the_training_samplers_are_read_from_the_installed_detectron2():
    # v0.6 knows 3; main adds the weighted ones (built by _build_weighted_sampler).
    from detectron2.data import build

    from dropblock_det.engine.trainer import train_samplers

    weighted = ("WeightedTrainingSampler", "WeightedCategoryTrainingSampler")
    expected = ("TrainingSampler", "RepeatFactorTrainingSampler", "RandomSubsetTrainingSampler")
    assert train_samplers() == expected + (weighted if hasattr(build, "_build_weighted_sampler") else ())


def test_a_segmentation_class_count_or_ignore_value_the_datasets_do_not_have_is_refused():
    # VOC: 21 stuff_classes (background first), ignore_label 255. Fewer classes: cross-entropy
    # fails on the labels past them; more: the SemSegEvaluator fails after training; another
    # ignore value: the boundary band (255) is a label the loss cannot take.
    from dropblock_det.engine.trainer import check_dataset_classes, load_config

    def voc(*opts):
        return load_config(str(REPO / "configs" / "PascalVOC-SemanticSegmentation" / "Base-DeepLabV3-Plus.yaml"), list(opts))

    check_dataset_classes(voc())
    with pytest.raises(ValueError, match=r"^MODEL\.SEM_SEG_HEAD\.NUM_CLASSES=20, but DATASETS\.TRAIN names "
                                         r"'voc_2012_sem_seg_train_aug', which has 21 classes \(its metadata "
                                         r"stuff_classes: \['background', .*'chair', \.\.\.\]\).*the loss fails at the first step"):
        check_dataset_classes(voc("MODEL.SEM_SEG_HEAD.NUM_CLASSES", "20"))
    with pytest.raises(ValueError, match=r"^MODEL\.SEM_SEG_HEAD\.IGNORE_VALUE=0, but DATASETS\.TRAIN names "
                                         r"'voc_2012_sem_seg_train_aug', whose labels mark the pixels to ignore with 255"):
        check_dataset_classes(voc("MODEL.SEM_SEG_HEAD.IGNORE_VALUE", "0"))
    # An evaluation reads no training labels.
    check_dataset_classes(voc("MODEL.SEM_SEG_HEAD.IGNORE_VALUE", "0"), keys=("TEST",))
    with pytest.raises(ValueError, match=r"^MODEL\.SEM_SEG_HEAD\.NUM_CLASSES=4, but DATASETS\.TEST names "
                                         r"'voc_2012_sem_seg_val', which has 21"):
        check_dataset_classes(voc("MODEL.SEM_SEG_HEAD.NUM_CLASSES", "4", "DATASETS.TRAIN", "('synthetic_sem_seg_train',)"))


def test_a_segmentation_training_set_without_an_ignore_label_is_not_judged_for_the_ignore_value():
    # Only a set whose metadata says which label marks the pixels to leave out is checked
    # against MODEL.SEM_SEG_HEAD.IGNORE_VALUE; one of the user's own without it is not refused.
    from detectron2.data import DatasetCatalog, MetadataCatalog

    from dropblock_det.engine.trainer import check_dataset_classes, load_config

    name = "dropblock_test_sem_seg_without_ignore_label"
    DatasetCatalog.register(name, lambda: [])
    try:
        MetadataCatalog.get(name).set(stuff_classes=[f"c{i}" for i in range(21)])
        cfg = load_config(str(REPO / "configs" / "PascalVOC-SemanticSegmentation" / "Base-DeepLabV3-Plus.yaml"),
                          ["DATASETS.TRAIN", f"('{name}',)", "MODEL.SEM_SEG_HEAD.IGNORE_VALUE", "0"])
        check_dataset_classes(cfg)
    finally:
        DatasetCatalog.remove(name)
        MetadataCatalog.remove(name)


def test_a_dataset_without_class_metadata_is_not_loaded_to_count_its_classes():
    from detectron2.data import DatasetCatalog, MetadataCatalog

    from dropblock_det.engine.trainer import check_dataset_classes

    def never_loaded():
        raise AssertionError("the class check loaded the dataset")

    name = "dropblock_test_no_class_metadata"
    DatasetCatalog.register(name, never_loaded)
    try:
        check_dataset_classes(_cfg("DATASETS.TRAIN", f"('{name}',)", "MODEL.RETINANET.NUM_CLASSES", "7",
                                   "DATASETS.TEST", "()"))
    finally:
        DatasetCatalog.remove(name)
        MetadataCatalog.remove(name)


@pytest.mark.parametrize("seed", [-1, 5])
def test_the_training_order_is_drawn_from_the_seeded_rng_on_every_detectron2(tmp_path, monkeypatch, seed):
    # As detectron2 v0.6 and the LazyConfig loaders do; detectron2 main's yacs loader would
    # seed the sampler with SEED itself (one fixed order for SEED -1, another order than the
    # LazyConfig twin's for any SEED).
    from detectron2.utils import comm
    from detectron2.utils.env import seed_all_rng

    from conftest import tiny_synthetic_datasets
    from dropblock_det.engine import trainer

    built = {}
    real = trainer.build_detection_train_loader

    class Recording:
        from_config = staticmethod(real.from_config)

        def __call__(self, **arguments):
            built.update(arguments)

    monkeypatch.setattr(trainer, "build_detection_train_loader", Recording())
    with tiny_synthetic_datasets(tmp_path):
        cfg = _cfg("SEED", str(seed), "DATALOADER.NUM_WORKERS", "0")
        for rng_seed in (7, 8):
            seed_all_rng(rng_seed)
            expected = comm.shared_random_seed()
            seed_all_rng(rng_seed)
            trainer.DropBlockTrainer.build_train_loader(cfg)
            assert built["sampler"]._seed == expected != seed


def test_the_trainer_ramps_over_the_scaled_iterations(monkeypatch, tmp_path):
    from dropblock_det.engine.hooks import DropBlockScheduleHook
    from dropblock_det.engine.trainer import DropBlockTrainer

    # One process against a reference of 2: half the batch, twice the iterations.
    cfg = _cfg("SOLVER.REFERENCE_WORLD_SIZE", "2", "SOLVER.IMS_PER_BATCH", "4", "SOLVER.MAX_ITER", "100",
               "MODEL.DROPBLOCK.SCHEDULE.START_ITER", "10", "MODEL.DROPBLOCK.SCHEDULE.END_ITER", "60",
               "DATASETS.TEST", "()", "MODEL.DEVICE", "cpu", "OUTPUT_DIR", str(tmp_path))  # its writers
    monkeypatch.setattr(DropBlockTrainer, "build_train_loader", classmethod(lambda cls, cfg: []))
    trainer = DropBlockTrainer(cfg)
    (hook,) = [h for h in trainer._hooks if isinstance(h, DropBlockScheduleHook)]
    assert trainer.max_iter == 200
    assert (hook.schedule.start_iter, hook.schedule.end_iter) == (20, 120)


def test_a_checkpoint_without_optimizer_state_resumes_on_every_detectron2(monkeypatch, tmp_path):
    # detectron2 v0.6's own DefaultTrainer saves no "_trainer" (optimizer) state: resumed with
    # DropBlockTrainer, v0.6 continued from it, current detectron2 failed after the data
    # loader was built with "KeyError: '_trainer'".
    from dropblock_det.engine.trainer import DropBlockTrainer

    cfg = _cfg("SOLVER.MAX_ITER", "10", "DATASETS.TEST", "()", "MODEL.DEVICE", "cpu", "OUTPUT_DIR", str(tmp_path))
    monkeypatch.setattr(DropBlockTrainer, "build_train_loader", classmethod(lambda cls, cfg: []))
    saved = DropBlockTrainer(cfg)
    saved.iter = 4
    saved.checkpointer.save("model_0000004", iteration=4)
    checkpoint = torch.load(tmp_path / "model_0000004.pth", weights_only=False)
    del checkpoint["trainer"]["_trainer"]
    torch.save(checkpoint, tmp_path / "model_0000004.pth")
    resumed = DropBlockTrainer(cfg)
    with pytest.warns(UserWarning, match="holds no optimizer state"):
        resumed.resume_or_load(resume=True)
    assert resumed.start_iter == 5


# ----------------------------------------------------------------------------- output folder
def test_a_rerun_moves_the_earlier_run_aside_instead_of_deleting_it(tmp_path):
    from dropblock_det.engine.trainer import archive_previous_run as archive

    out = tmp_path / "out"
    assert archive(str(out)) is None and out.is_dir()  # nothing there yet
    (out / "model_final.pth").write_bytes(b"weights of the first run")
    (out / "metrics.json").write_text('{"iteration": 0}\n')
    (out / "inference").mkdir()
    (out / "inference" / "coco_instances_results.json").write_text("[]")
    first = archive(str(out))
    assert sorted(p.name for p in out.iterdir()) == ["previous_runs"]
    (out / "model_final.pth").write_bytes(b"weights of the second run")
    second = archive(str(out))
    assert first != second  # same second: a distinct folder, nothing overwritten
    assert (Path(first) / "model_final.pth").read_bytes() == b"weights of the first run"
    assert (Path(first) / "inference" / "coco_instances_results.json").is_file()
    assert (Path(second) / "model_final.pth").read_bytes() == b"weights of the second run"


def test_only_a_runs_own_files_are_moved_from_a_shared_output_dir(tmp_path):
    from dropblock_det.engine.trainer import archive_previous_run

    # OUTPUT_DIR "." in a project folder: its code, data and other runs are not a run's files.
    for name in ("train.py", "notes.txt", "datasets/coco.json", "other_run/model_final.pth"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(name)
    assert archive_previous_run(str(tmp_path)) is None
    run = ("config.yaml", "log.txt", "log.txt.rank1", "last_checkpoint", "model_0000999.pth",
           "metrics.json", "events.out.tfevents.1.host.2.0", "inference/x.json")
    for name in run:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(name)
    target = archive_previous_run(str(tmp_path))
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "datasets", "notes.txt", "other_run", "previous_runs", "train.py"]
    assert all((Path(target) / name).read_text() == name for name in run)


def test_a_lazy_runs_pickled_config_is_moved_aside_with_its_config_yaml(tmp_path):
    # detectron2's LazyConfig.save writes config.yaml.pkl (the only loadable copy) when the
    # config holds a lambda (its new_baselines configs); the next run overwrote it.
    from dropblock_det.engine.trainer import EVAL_FILES, archive_previous_run

    for patterns in (None, EVAL_FILES):
        for name in ("config.yaml", "config.yaml.pkl"):
            (tmp_path / name).write_text(name)
        target = Path(archive_previous_run(str(tmp_path), (), *([patterns] if patterns else [])))
        assert sorted(p.name for p in target.iterdir()) == ["config.yaml", "config.yaml.pkl"]
        assert not (tmp_path / "config.yaml.pkl").exists()


def test_a_file_the_new_run_reads_is_copied_not_moved(tmp_path):
    from dropblock_det.engine.trainer import archive_previous_run

    # `--config-file out/config.yaml`, or MODEL.WEIGHTS out/model_final.pth (fine-tuning).
    for name in ("config.yaml", "model_final.pth", "metrics.json", "inference/weights/x.pth"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(name)
    needed = [str(tmp_path / "config.yaml"), str(tmp_path / "model_final.pth"),
              str(tmp_path / "inference" / "weights" / "x.pth"), "https://host/w.pkl", ""]
    target = Path(archive_previous_run(str(tmp_path), needed))
    for name in ("config.yaml", "model_final.pth", "inference/weights/x.pth"):
        assert (tmp_path / name).read_text() == name == (target / name).read_text()
    assert not (tmp_path / "metrics.json").exists() and (target / "metrics.json").read_text() == "metrics.json"


def test_a_copy_that_fails_for_room_leaves_the_folder_as_it_was(tmp_path, monkeypatch):
    # MODEL.WEIGHTS out/model_final.pth is copied aside; on a full disk the copy failed after
    # the other files had moved, leaving in previous_runs/ a run whose last_checkpoint named a
    # truncated model_final.pth.
    import shutil

    from dropblock_det.engine.trainer import archive_previous_run

    run = {"config.yaml": "config", "last_checkpoint": "model_final.pth", "metrics.json": "{}",
           "model_final.pth": "weights " * 1000}
    for name, text in run.items():
        (tmp_path / name).write_text(text)

    def disk_full(source, destination, **kwargs):
        Path(destination).write_text(Path(source).read_text()[:100])
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(shutil, "copy2", disk_full)
    with pytest.raises(OSError, match="No space left"):
        archive_previous_run(str(tmp_path), [str(tmp_path / "model_final.pth")])
    assert {p.name: p.read_text() for p in tmp_path.iterdir() if p.is_file()} == run
    assert not list((tmp_path / "previous_runs").iterdir())


def test_a_file_system_without_flock_is_warned_of_not_called_in_use(tmp_path, monkeypatch):
    # Lustre mounted without flock refuses every flock (ENOSYS): each run there was refused
    # with "is in use by another run", though none was.
    import errno
    import fcntl

    from dropblock_det.engine.trainer import claim_output_dir

    def no_flock(fd, operation):
        raise OSError(errno.ENOSYS, "Function not implemented")

    monkeypatch.setattr(fcntl, "flock", no_flock)
    with pytest.warns(RuntimeWarning, match=r"OUTPUT_DIR='.*out' cannot be locked on its file system "
                                            r"\(Function not implemented\): a second run .* would not be refused"):
        claim_output_dir(str(tmp_path / "out"))
    assert (tmp_path / "out").is_dir()


def test_three_runs_archived_within_one_second_each_get_their_own_folder(tmp_path, monkeypatch):
    import time

    from dropblock_det.engine.trainer import archive_previous_run

    monkeypatch.setattr(time, "strftime", lambda fmt, *a: "20240101-000000")
    targets = []
    for run in range(3):
        (tmp_path / "metrics.json").write_text(f"run {run}")
        targets.append(archive_previous_run(str(tmp_path)))
    assert [Path(t).name for t in targets] == ["20240101-000000", "20240101-000000-1", "20240101-000000-2"]
    assert [(Path(t) / "metrics.json").read_text() for t in targets] == ["run 0", "run 1", "run 2"]


def test_a_needed_file_whose_name_extends_a_run_file_does_not_keep_that_file(tmp_path):
    # MODEL.WEIGHTS out/log.txt.bak is not inside out/log.txt: log.txt moves as usual.
    from dropblock_det.engine.trainer import archive_previous_run

    for name in ("log.txt", "log.txt.bak", "inference/x.json", "inference_old.pth"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(name)
    target = Path(archive_previous_run(str(tmp_path), [str(tmp_path / "log.txt.bak"),
                                                       str(tmp_path / "inference_old.pth")]))
    assert sorted(p.name for p in target.iterdir()) == ["inference", "log.txt"]
    assert not (tmp_path / "log.txt").exists() and not (tmp_path / "inference").exists()
    assert (tmp_path / "log.txt.bak").is_file() and (tmp_path / "inference_old.pth").is_file()


def test_auto_scale_workers_rounds_the_dropblock_ramp_as_detectron2_rounds_max_iter():
    from dropblock_det.engine.trainer import DropBlockTrainer

    # 8 -> 16 workers halves the iterations: 1001 -> 500.5 -> 500 (round half to even, as
    # detectron2's int(round(...)) for MAX_ITER), 103 -> 51.5 -> 52, 807 -> 403.5 -> 404.
    cfg = _cfg("SOLVER.REFERENCE_WORLD_SIZE", "8", "SOLVER.IMS_PER_BATCH", "16", "SOLVER.MAX_ITER", "1001",
               "MODEL.DROPBLOCK.SCHEDULE.START_ITER", "103", "MODEL.DROPBLOCK.SCHEDULE.END_ITER", "807")
    scaled = DropBlockTrainer.auto_scale_workers(cfg, 16)
    assert scaled.SOLVER.MAX_ITER == 500
    assert (scaled.MODEL.DROPBLOCK.SCHEDULE.START_ITER, scaled.MODEL.DROPBLOCK.SCHEDULE.END_ITER) == (52, 404)


def test_weights_given_as_urls_are_fetched_into_the_cache_the_checkpointer_reads(served, tmp_path):
    from detectron2.checkpoint import DetectionCheckpointer

    from dropblock_det.engine.trainer import (
        CheckpointMismatchError,
        check_eval_checkpoint,
        check_weights_path,
        local_checkpoint,
    )

    url, folder = served
    model = torch.nn.Sequential(torch.nn.Linear(2, 2))
    DetectionCheckpointer(model, save_dir=str(folder)).save("w")
    local = local_checkpoint("MODEL.WEIGHTS", f"{url}/w.pth")
    assert Path(local).is_file() and Path(local).is_relative_to(tmp_path / "cache")
    check_weights_path(_cfg("MODEL.WEIGHTS", f"{url}/w.pth"))
    check_weights_path(_cfg("MODEL.WEIGHTS", ""))
    # A URL that cannot be fetched failed when the trainer loaded it, after the data loader
    # was built and config.yaml written.
    with pytest.raises(RuntimeError, match=r"^MODEL\.WEIGHTS='http://127\.0\.0\.1:\d+/gone\.pth' cannot be "
                                           r"fetched \(HTTPError: HTTP Error 404"):
        check_weights_path(_cfg("MODEL.WEIGHTS", f"{url}/gone.pth"))
    with pytest.raises(FileNotFoundError, match=r"MODEL\.WEIGHTS='no/such/model\.pth'"):
        check_weights_path(_cfg("MODEL.WEIGHTS", "no/such/model.pth"))
    # An --eval-only checkpoint given by URL is checked against the model as a local one is
    # (it was left to the load, after the evaluation's folder was claimed).
    check_eval_checkpoint(model, f"{url}/w.pth", "MODEL.WEIGHTS")
    with pytest.raises(CheckpointMismatchError, match=r"^MODEL\.WEIGHTS='http://127\.0\.0\.1:\d+/w\.pth': checkpoint '.*cache.*w\.pth' does not match"):
        check_eval_checkpoint(torch.nn.Sequential(torch.nn.Linear(3, 2)), f"{url}/w.pth", "MODEL.WEIGHTS")


@pytest.mark.parametrize("change, match", [
    ("extra", r"not in model: extra\.weight"),
    ("missing", r"missing in checkpoint: 0\.bias"),
    ("shape", r"shape mismatch: 0\.weight \(checkpoint \(3, 2\) vs model \(2, 2\)\)"),
])
def test_strict_checkpoint_loading_names_every_kind_of_mismatch(tmp_path, change, match):
    from dropblock_det.engine.trainer import CheckpointMismatchError, load_checkpoint_strict

    model = torch.nn.Sequential(torch.nn.Linear(2, 2))
    state = dict(model.state_dict())
    load_checkpoint_strict(model, _save(tmp_path / "same.pth", state))  # a matching one loads
    if change == "extra":
        state["extra.weight"] = torch.zeros(1)
    elif change == "missing":
        del state["0.bias"]
    else:
        state["0.weight"] = torch.zeros(3, 2)
    with pytest.raises(CheckpointMismatchError, match=match):
        load_checkpoint_strict(model, _save(tmp_path / "bad.pth", state))


def _save(path, state):
    torch.save({"model": state}, path)
    return str(path)


def test_the_run_check_refuses_a_test_dataset_without_an_evaluator():
    from detectron2.data import DatasetCatalog, MetadataCatalog

    from dropblock_det.engine.trainer import check_config_before_run

    name = "dropblock_test_registered_unevaluable"
    DatasetCatalog.register(name, lambda: [])
    try:
        MetadataCatalog.get(name).set(evaluator_type="lvis_like")
        cfg = _cfg("DATASETS.TRAIN", "()", "MODEL.DEVICE", "cpu")
        cfg.DATASETS.TEST = (name,)
        for train in (True, False):
            with pytest.raises(ValueError, match=f"{name}.*'lvis_like'"):
                check_config_before_run(cfg, train=train, check_files=False)
    finally:  # the catalogs are global: later tests must not see it
        DatasetCatalog.remove(name)
        MetadataCatalog.remove(name)


def test_the_run_check_names_an_unregistered_training_dataset_only_for_training():
    from dropblock_det.engine.trainer import check_config_before_run

    cfg = _cfg("DATASETS.TRAIN", "('dropblock_no_such_train',)", "DATASETS.TEST", "()", "MODEL.DEVICE", "cpu")
    with pytest.raises(KeyError, match=r"DATASETS\.TRAIN names 'dropblock_no_such_train'"):
        check_config_before_run(cfg, check_files=False)
    check_config_before_run(cfg, train=False, check_files=False)  # an evaluation needs no training data


def test_fpn_dropblock_on_a_model_without_an_fpn_is_refused_despite_dropblock_elsewhere(tmp_path):
    # DeepLab has no FPN: its ResNet's DropBlocks must not count for MODEL.DROPBLOCK.FPN.ENABLED.
    from conftest import small_voc_sem_seg_cfg

    from dropblock_det.engine.trainer import DropBlockTrainer

    cfg = small_voc_sem_seg_cfg(
        "deeplab_v3_plus_R_52_GN_scratch_dropblock_res45_head_kp0.9_b7_os16_poly_330k_bs16.yaml", tmp_path,
        ["MODEL.DROPBLOCK.FPN.ENABLED", True])
    with pytest.raises(ValueError, match=r"MODEL\.DROPBLOCK\.FPN\.ENABLED=True.*has no DropBlock there \(\d+ elsewhere\)"):
        DropBlockTrainer.build_model(cfg)


def test_every_kind_of_file_a_run_writes_is_archived(tmp_path):
    # main_job.py's plot and summary too: a rerun would overwrite them. And the temporary file
    # of a checkpoint write killed before its rename, which stayed behind in a fresh run's folder.
    from dropblock_det.engine.trainer import archive_previous_run

    run = ("config.yaml", "log.txt", "log.txt.rank3", "last_checkpoint", "model_final.pth", "model_0000004.pth.tmp",
           "metrics.json",
           "events.out.tfevents.1.host", "inference", "inference_TTA", "main_job.png", "main_job_summary.json")
    for name in run:
        (tmp_path / name).write_text(name)
    target = Path(archive_previous_run(str(tmp_path)))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["previous_runs"]
    assert sorted(p.name for p in target.iterdir()) == sorted(run)


def test_prepare_output_dir_moves_what_the_run_would_overwrite_and_says_why(tmp_path, capsys):
    from dropblock_det.engine.trainer import prepare_output_dir

    def earlier_run(name):
        folder = tmp_path / name
        (folder / "inference").mkdir(parents=True)
        for f in ("config.yaml", "metrics.json", "model_final.pth"):
            (folder / f).write_text("x")
        return str(folder)

    cases = [  # eval_only, resume, resuming -> what is moved, the message's end
        (False, False, False, ["config.yaml", "inference", "metrics.json", "model_final.pth"],
         r"The earlier run in OUTPUT_DIR='.*fresh' was moved to .* \(--resume continues a run instead\)"),
        (False, True, False, ["config.yaml", "inference", "metrics.json", "model_final.pth"],
         r"The earlier run in OUTPUT_DIR='.*empty' was moved to .* \(--resume found no checkpoint there: "
         r"training starts at iteration 0\)"),
        (True, True, True, ["config.yaml", "inference"],
         r"The earlier config.yaml / inference/ in OUTPUT_DIR='.*eval' was moved to \S+\n"),
        (False, True, True, [], None),
    ]
    for name, (eval_only, resume, resuming, moved, message) in zip(("fresh", "empty", "eval", "resumed"), cases):
        folder = earlier_run(name)
        prepare_output_dir(folder, "OUTPUT_DIR", eval_only, resume, resuming)
        out = capsys.readouterr().out
        left = sorted(p.name for p in (tmp_path / name).iterdir() if p.name != "previous_runs")
        assert left == sorted({"config.yaml", "inference", "metrics.json", "model_final.pth"} - set(moved)), name
        if message:
            assert re.search(message, out), out
        else:
            assert out == ""


def test_prepare_output_dir_says_nothing_where_nothing_moved_and_names_the_key_of_a_kept_checkpoint(tmp_path, capsys):
    from dropblock_det.engine.trainer import prepare_output_dir

    for eval_only, resume in ((False, False), (True, False), (False, True)):
        prepare_output_dir(str(tmp_path / "new"), "OUTPUT_DIR", eval_only, resume, False)
        assert capsys.readouterr().out == ""  # no "moved to None"
    finished = tmp_path / "finished"
    finished.mkdir()
    (finished / "model_final.pth").write_bytes(b"PK final")
    (finished / "last_checkpoint").write_text("model_final.pth")
    prepare_output_dir(str(finished), "train.output_dir", False, True, True)
    assert re.fullmatch(rf"The finished run's model_final\.pth in train\.output_dir='{re.escape(str(finished))}', "
                        r"which this continued run replaces when it ends, is kept as \S+previous_runs/\S+/model_final\.pth\n",
                        capsys.readouterr().out)


def test_a_resume_keeps_the_finished_runs_model_final_only(tmp_path, monkeypatch):
    # model_final.pth is what the continued run replaces when it ends; a periodic checkpoint
    # is not. Without hard links (a file system without them) it is copied; a copy that
    # fails leaves no empty previous_runs/<time>/ behind.
    import errno
    import os
    import shutil

    from dropblock_det.engine.trainer import keep_resumed_final_checkpoint

    (tmp_path / "model_0000004.pth").write_bytes(b"PK iteration 4")
    (tmp_path / "model_final.pth").write_bytes(b"PK final")
    (tmp_path / "last_checkpoint").write_text("model_0000004.pth")
    assert keep_resumed_final_checkpoint(str(tmp_path)) is None and not (tmp_path / "previous_runs").exists()
    (tmp_path / "last_checkpoint").write_text("model_final.pth")
    kept = Path(keep_resumed_final_checkpoint(str(tmp_path)))
    assert kept.parent.parent == tmp_path / "previous_runs" and kept.name == "model_final.pth"
    os.replace(tmp_path / "model_0000004.pth", tmp_path / "model_final.pth")  # as AtomicCheckpointer writes
    assert kept.read_bytes() == b"PK final"

    def no_links(source, destination):
        raise OSError(errno.EPERM, "Operation not permitted")

    monkeypatch.setattr(os, "link", no_links)
    copied = Path(keep_resumed_final_checkpoint(str(tmp_path)))
    assert copied != kept and copied.read_bytes() == b"PK iteration 4"

    def disk_full(source, destination, **kwargs):
        Path(destination).write_bytes(b"PK")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(shutil, "copy2", disk_full)
    with pytest.raises(OSError, match="No space left"):
        keep_resumed_final_checkpoint(str(tmp_path))
    assert sorted(p.parent for p in (tmp_path / "previous_runs").rglob("*.pth")) == sorted([kept.parent, copied.parent])
    assert len(list((tmp_path / "previous_runs").iterdir())) == 2


def test_a_file_the_new_run_reads_through_a_link_to_the_folder_is_copied_not_moved(tmp_path):
    # MODEL.WEIGHTS alias/model_final.pth, alias a link to OUTPUT_DIR: the same file.
    from dropblock_det.engine.trainer import archive_previous_run

    out = tmp_path / "out"
    out.mkdir()
    (out / "model_final.pth").write_text("weights")
    (tmp_path / "alias").symlink_to(out)
    target = Path(archive_previous_run(str(out), [str(tmp_path / "alias" / "model_final.pth")]))
    assert (out / "model_final.pth").read_text() == "weights" == (target / "model_final.pth").read_text()


def test_a_claimed_output_dir_is_held_exclusively_for_the_process_and_claimed_again_freely(tmp_path):
    # The lock is what refuses a second run into the folder: held until the process ends,
    # exclusive (a shared one lets a second shared one in), and the same folder claimed
    # again by this process (by another path too) is no other run.
    import fcntl
    import os

    from dropblock_det.engine.trainer import claim_output_dir

    out = tmp_path / "out"
    claim_output_dir(str(out))
    (tmp_path / "alias").symlink_to(out)
    claim_output_dir(str(out))
    claim_output_dir(str(tmp_path / "alias"))
    fd = os.open(out, os.O_RDONLY)  # another open file description: as another process's
    try:
        with pytest.raises(BlockingIOError):
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    finally:
        os.close(fd)


def test_a_folder_another_run_holds_is_refused_naming_the_key_that_gave_it(tmp_path):
    import fcntl
    import os

    from dropblock_det.engine.trainer import claim_output_dir

    out = tmp_path / "held"
    out.mkdir()
    fd = os.open(out, os.O_RDONLY)  # another open file description: as another run's lock
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        with pytest.raises(RuntimeError, match=rf"^train\.output_dir='{re.escape(str(out))}' is in use by another "
                                               r"run .*give this run another train\.output_dir$"):
            claim_output_dir(str(out), "train.output_dir")
    finally:
        os.close(fd)
    claim_output_dir(str(out), "train.output_dir")  # released with its holder


def test_a_checkpoint_write_interrupted_by_ctrl_c_leaves_the_earlier_checkpoint_and_no_partial_file(
        tmp_path, monkeypatch):
    from dropblock_det.engine.trainer import AtomicCheckpointer

    checkpointer = AtomicCheckpointer(torch.nn.Linear(2, 2), save_dir=str(tmp_path))
    checkpointer.save("model_final", iteration=2)
    weights = (tmp_path / "model_final.pth").read_bytes()

    def interrupted(obj, f, *args, **kwargs):
        f.write(weights[:100])
        raise KeyboardInterrupt

    monkeypatch.setattr(torch, "save", interrupted)
    with pytest.raises(KeyboardInterrupt):
        checkpointer.save("model_final", iteration=4)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last_checkpoint", "model_final.pth"]
    assert (tmp_path / "model_final.pth").read_bytes() == weights


@pytest.mark.parametrize("inside", [False, True])
def test_an_output_folder_that_is_a_file_is_refused_naming_the_key(tmp_path, inside):
    from dropblock_det.engine.trainer import claim_output_dir

    a_file = tmp_path / "results.txt"
    a_file.write_text("a user's file")
    output_dir = a_file / "run" if inside else a_file
    with pytest.raises(NotADirectoryError, match=rf"--output-dir='{re.escape(str(output_dir))}' is not a folder: "
                                                 rf"{re.escape(str(a_file))} is a file"):
        claim_output_dir(str(output_dir), "--output-dir")
    assert a_file.read_text() == "a user's file"


def test_a_config_file_that_is_a_folder_is_named_as_one(tmp_path):
    from dropblock_det.engine.lazy import load_lazy_config
    from dropblock_det.engine.trainer import load_config

    with pytest.raises(FileNotFoundError, match=rf"config file '{re.escape(str(tmp_path))}' is a folder, not a config file"):
        load_config(str(tmp_path))
    with pytest.raises(FileNotFoundError, match=r"--config-file '.*' is a folder, not a config file"):
        load_lazy_config(str(tmp_path))
    with pytest.raises(FileNotFoundError, match=r"config file '.*nothing\.yaml' does not exist"):
        load_config(str(tmp_path / "nothing.yaml"))


def test_a_lazy_runs_config_yaml_is_told_from_a_yacs_config_with_an_unknown_key(tmp_path):
    # yacs fails on a LazyConfig run's config.yaml with "Non-existent config key: model"; the
    # user is sent to the LazyConfig tool instead. A yacs config with an unknown key is named
    # as such, with its file.
    from dropblock_det.engine.trainer import load_config

    lazy = tmp_path / "config.yaml"
    lazy.write_text("dataloader:\n  train:\n    total_batch_size: 2\nmodel:\n  _target_: x.Y\n")
    with pytest.raises(ValueError, match=rf"^config file '{re.escape(str(lazy))}' is a LazyConfig \(its top level "
                                         r"has `model:`\), not a yacs config: train it with tools/lazyconfig_train_net\.py$"):
        load_config(str(lazy))
    yacs = tmp_path / "typo.yaml"
    yacs.write_text("MODEL:\n  DROPBLOK:\n    KEEP_PROB: 0.9\n")
    with pytest.raises(KeyError, match=rf"config file '{re.escape(str(yacs))}': .*DROPBLOK"):
        load_config(str(yacs))

def test_keys_extra_setup_adds_can_be_set_by_the_config_file_and_the_opts(tmp_path):
    # extra_setup runs before the file is merged (as detectron2 projects add their keys):
    # after it, a file setting the key failed with "Non-existent config key".
    from detectron2.config import CfgNode

    from dropblock_det.engine.trainer import load_config

    def add_my_keys(cfg):
        cfg.MY_PROJECT = CfgNode({"SIZE": 1, "NAME": "a"})

    config = tmp_path / "mine.yaml"
    config.write_text(f"_BASE_: {SYNTH}\nMY_PROJECT:\n  SIZE: 2\n")
    cfg = load_config(str(config), ["MY_PROJECT.NAME", "b"], extra_setup=add_my_keys)
    assert (cfg.MY_PROJECT.SIZE, cfg.MY_PROJECT.NAME, cfg.MODEL.DROPBLOCK.KEEP_PROB) == (2, "b", 0.9)

def test_a_config_copied_away_from_its_base_names_itself_and_the_missing_base(tmp_path):
    # yacs reads _BASE_ relative to the file naming it: a leaf config copied into a project
    # failed with open()'s bare "No such file or directory: '.../Base-...yaml'".
    import shutil

    from dropblock_det.engine.trainer import load_config

    leaf = tmp_path / "project" / "my_retinanet.yaml"
    leaf.parent.mkdir()
    shutil.copy(REPO / "configs" / "COCO-Detection" / "retinanet_R_50_FPN_GN_scratch_3x.yaml", leaf)
    with pytest.raises(FileNotFoundError, match=rf"^config file '{re.escape(str(leaf))}': the _BASE_ "
                                                rf"'{re.escape(str(tmp_path / 'Base-RetinaNet-Scratch.yaml'))}' "
                                                r"does not exist \(a _BASE_ path is relative to the config file"):
        load_config(str(leaf))
    for base in ("Base-RetinaNet-Scratch.yaml", "Base-RetinaNet.yaml"):
        shutil.copy(REPO / "configs" / base, tmp_path / base)
    assert load_config(str(leaf)).SOLVER.MAX_ITER == 270000


@pytest.mark.parametrize("content, match", [
    (b"MODEL:\n  WEIGHTS: ''\n", r"'.*weights' is not a checkpoint: its first bytes b'MODE' are neither"),
    (b"\xff\xd8\xff\xe0JFIF", r"'.*weights' is not a checkpoint: its first bytes b'\\xff\\xd8\\xff\\xe0'"),
    (None, r"checkpoint '.*weights' cannot be read, it is truncated or corrupt"),  # a partial torch.save
])
def test_weights_that_are_no_checkpoint_are_told_from_a_damaged_one(tmp_path, content, match):
    import io

    from dropblock_det.engine.trainer import read_checkpoint

    if content is None:
        buffer = io.BytesIO()
        torch.save({"model": {"w": torch.zeros(1000)}}, buffer)
        content = buffer.getvalue()[:200]
    path = tmp_path / "weights"
    path.write_bytes(content)
    with pytest.raises(RuntimeError, match=match):
        read_checkpoint(str(path))


def test_starting_weights_are_read_as_the_trainer_reads_them(tmp_path):
    # A detectron2 model-zoo .pkl (a pickle of numpy arrays, which torch.load refuses) is
    # read as detectron2 reads it; a damaged one, and a damaged .pth, are named with the key.
    import pickle

    import numpy as np

    from dropblock_det.engine.trainer import check_weights_readable

    zoo = tmp_path / "R-18.pkl"
    zoo.write_bytes(pickle.dumps({"model": {"stem.conv1.weight": np.zeros((4, 3, 7, 7), np.float32)},
                                  "__author__": "test"}))
    check_weights_readable("MODEL.WEIGHTS", str(zoo))
    (tmp_path / "partial.pkl").write_bytes(zoo.read_bytes()[:60])
    with pytest.raises(RuntimeError, match=r"^MODEL\.WEIGHTS='.*partial\.pkl': checkpoint .* cannot be read"):
        check_weights_readable("MODEL.WEIGHTS", str(tmp_path / "partial.pkl"))
    torch.save({"model": {"w": torch.zeros(1000)}}, tmp_path / "whole.pth")
    check_weights_readable("train.init_checkpoint", str(tmp_path / "whole.pth"))
    (tmp_path / "partial.pth").write_bytes((tmp_path / "whole.pth").read_bytes()[:200])
    with pytest.raises(RuntimeError, match=r"^train\.init_checkpoint='.*partial\.pth': checkpoint .* truncated"):
        check_weights_readable("train.init_checkpoint", str(tmp_path / "partial.pth"))
    with pytest.raises(FileNotFoundError, match=r"^MODEL\.WEIGHTS='.*gone\.pth' does not exist"):
        check_weights_readable("MODEL.WEIGHTS", str(tmp_path / "gone.pth"))


def test_the_run_check_reads_the_starting_weights_of_a_training_and_only_finds_an_evaluations(tmp_path):
    # An evaluation's weights are read once, strictly, by check_eval_checkpoint (or not at all:
    # --eval-only --resume evaluates the run's checkpoint); a training's are read here.
    from dropblock_det.engine.trainer import check_config_before_run

    not_weights = tmp_path / "notes.txt"
    not_weights.write_text("not a checkpoint")
    cfg = _cfg("MODEL.WEIGHTS", str(not_weights), "MODEL.DEVICE", "cpu")
    check_config_before_run(cfg, train=False, check_files=False)
    with pytest.raises(RuntimeError, match=r"^MODEL\.WEIGHTS='.*notes\.txt': '.*notes\.txt' is not a checkpoint"):
        check_config_before_run(cfg, check_files=False)
    with pytest.raises(FileNotFoundError, match=r"^MODEL\.WEIGHTS='.*gone\.pth' does not exist"):
        check_config_before_run(_cfg("MODEL.WEIGHTS", str(tmp_path / "gone.pth")), train=False, check_files=False)


def test_a_last_checkpoint_file_naming_a_missing_or_no_file_is_refused_naming_it(tmp_path):
    # A resumed run failed on it with "cannot be read, it is truncated or corrupt
    # (FileNotFoundError)", or, for an empty file, named the folder (IsADirectoryError).
    from dropblock_det.engine.trainer import last_checkpoint

    assert last_checkpoint(str(tmp_path)) == ""  # no last_checkpoint: a fresh run
    (tmp_path / "model_0000009.pth").write_bytes(b"PK")
    (tmp_path / "last_checkpoint").write_text("model_0000009.pth")
    assert last_checkpoint(str(tmp_path)) == str(tmp_path / "model_0000009.pth")
    (tmp_path / "last_checkpoint").write_text("model_final.pth")
    with pytest.raises(FileNotFoundError, match=r"last_checkpoint names 'model_final.pth', which is not a file "
                                                r"there: .*moved or deleted"):
        last_checkpoint(str(tmp_path))
    (tmp_path / "last_checkpoint").write_text("")
    with pytest.raises(FileNotFoundError, match=r"last_checkpoint is empty"):
        last_checkpoint(str(tmp_path))


def _trainer_checkpoint(tmp_path, cfg, **inner_state):
    """(path, optimizer): a checkpoint of iteration 4 as DropBlockTrainer saves it (the inner
    trainer's optimizer state, and `inner_state`, under trainer/_trainer) for cfg's model."""
    from dropblock_det.engine.trainer import DropBlockTrainer

    model = DropBlockTrainer.build_model(cfg)
    optimizer = DropBlockTrainer.build_optimizer(cfg, model)
    path = tmp_path / "model_0000004.pth"
    trainer = {"iteration": 4, "_trainer": {"iteration": 4, "optimizer": optimizer.state_dict(), **inner_state}}
    torch.save({"model": model.state_dict(), "trainer": trainer, "iteration": 4}, path)
    return path, optimizer


def test_a_resume_whose_optimizer_groups_the_parameters_otherwise_is_refused_naming_the_keys(tmp_path):
    # The checkpoint fits the model, but its optimizer state does not fit the optimizer the
    # changed SOLVER values (or frozen stages) build: detectron2 loads it after building the
    # data loader and rewriting config.yaml, and torch refused it there, naming no key.
    from dropblock_det.engine.trainer import DropBlockTrainer, check_resume_checkpoint, meta_model

    cfg = _cfg("SOLVER.MAX_ITER", "10")
    path, optimizer = _trainer_checkpoint(tmp_path, cfg)
    check_resume_checkpoint(cfg, str(path))  # the run's own values resume
    for opts in (("SOLVER.BIAS_LR_FACTOR", "2.0"), ("MODEL.BACKBONE.FREEZE_AT", "2")):
        changed = _cfg("SOLVER.MAX_ITER", "10", *opts)
        with pytest.raises(ValueError, match="parameter group"):  # what the resumed run hit
            DropBlockTrainer.build_optimizer(changed, meta_model(changed)).load_state_dict(optimizer.state_dict())
        with pytest.raises(ValueError, match=r"--resume: checkpoint '.*model_0000004\.pth' holds the optimizer "
                                             r"state of \d+ parameter groups .*SOLVER\.WEIGHT_DECAY.*BIAS_LR_FACTOR"
                                             r".*MODEL\.BACKBONE\.FREEZE_AT"):
            check_resume_checkpoint(changed, str(path))


def test_a_resume_with_amp_of_a_checkpoint_saved_without_it_is_refused_naming_the_key(tmp_path):
    # AMPTrainer.load_state_dict reads the grad scaler's state unconditionally: turning
    # SOLVER.AMP.ENABLED on for a resume failed with "KeyError: 'grad_scaler'" after the data
    # loader was built (the run needs CUDA; the checkpoint check does not).
    import warnings

    from detectron2.engine import AMPTrainer

    from dropblock_det.engine.trainer import check_resume_checkpoint

    cfg = _cfg("SOLVER.MAX_ITER", "10", "SOLVER.AMP.ENABLED", "True")
    path, optimizer = _trainer_checkpoint(tmp_path, cfg)
    saved = torch.load(path, weights_only=False)["trainer"]["_trainer"]
    with warnings.catch_warnings():  # on the CPU: "GradScaler is enabled, but CUDA is not available"
        warnings.simplefilter("ignore")
        amp_trainer = AMPTrainer(torch.nn.Linear(1, 1), iter([]), optimizer)
    with pytest.raises(KeyError, match="grad_scaler"):  # what the resumed run hit
        amp_trainer.load_state_dict(saved)
    with pytest.raises(ValueError, match=r"--resume: checkpoint '.*model_0000004\.pth' was saved by a run without "
                                         r"mixed precision .*SOLVER\.AMP\.ENABLED=True"):
        check_resume_checkpoint(cfg, str(path))
    check_resume_checkpoint(_cfg("SOLVER.MAX_ITER", "10"), str(path))  # resumed without AMP, as it ran
    path, _ = _trainer_checkpoint(tmp_path, cfg, grad_scaler={"scale": 1024.0})
    check_resume_checkpoint(cfg, str(path))  # an AMP run's checkpoint resumes with AMP


def test_a_resume_is_judged_against_the_max_iter_scaled_to_this_runs_processes(tmp_path, monkeypatch):
    # REFERENCE_WORLD_SIZE 1 on 2 processes: MAX_ITER 10 trains 5 iterations, which the
    # checkpoint of iteration 4 has done: the resumed run would train nothing.
    from dropblock_det.engine import trainer

    opts = ("SOLVER.MAX_ITER", "10", "SOLVER.REFERENCE_WORLD_SIZE", "1", "SOLVER.IMS_PER_BATCH", "2")
    path, _ = _trainer_checkpoint(tmp_path, _cfg(*opts))
    trainer.check_resume_checkpoint(_cfg(*opts), str(path))
    monkeypatch.setattr(trainer.comm, "get_world_size", lambda: 2)
    with pytest.raises(ValueError, match=r"has trained 5 iterations, all SOLVER\.MAX_ITER=5 asks for"):
        trainer.check_resume_checkpoint(_cfg(*opts), str(path))


def test_a_resume_with_amp_of_a_checkpoint_without_optimizer_state_is_not_refused(tmp_path):
    # detectron2 v0.6's own DefaultTrainer saves no trainer state: the resume loads the
    # iteration only (DropBlockTrainer.load_state_dict), no grad scaler is read.
    from dropblock_det.engine.trainer import DropBlockTrainer, check_resume_checkpoint

    cfg = _cfg("SOLVER.MAX_ITER", "10", "SOLVER.AMP.ENABLED", "True")
    path = tmp_path / "model_0000004.pth"
    torch.save({"model": DropBlockTrainer.build_model(cfg).state_dict(), "trainer": {"iteration": 4},
                "iteration": 4}, path)
    check_resume_checkpoint(cfg, str(path))


def test_checkpoint_checks_take_a_distributed_models_prefix_and_name_a_folder_given_as_weights(tmp_path):
    # detectron2's checkpointer strips DistributedDataParallel's "module." when it loads.
    from dropblock_det.engine.trainer import local_checkpoint, state_dict_problems

    model = torch.nn.Sequential(torch.nn.Linear(2, 2))
    assert state_dict_problems(model, {f"module.{k}": v for k, v in model.state_dict().items()}) == []
    assert state_dict_problems(model, {"module.0.weight": torch.zeros(2, 2)}) == ["missing in checkpoint: 0.bias"]
    # A run's folder for its checkpoint: named as a folder, not read as a damaged checkpoint.
    with pytest.raises(FileNotFoundError, match=r"^MODEL\.WEIGHTS='.*' is a folder, not a checkpoint file: give the "
                                                r"checkpoint in it \(e\.g\. a run's model_final\.pth\)$"):
        local_checkpoint("MODEL.WEIGHTS", str(tmp_path))


def test_strict_loading_names_weights_that_are_missing_or_empty(tmp_path):
    # fvcore asserted "Checkpoint ... not found!" (AssertionError).
    from dropblock_det.engine.trainer import load_checkpoint_strict

    model = torch.nn.Sequential(torch.nn.Linear(2, 2))
    with pytest.raises(FileNotFoundError, match=r"^MODEL\.WEIGHTS is empty: give the checkpoint to evaluate$"):
        load_checkpoint_strict(model, "")
    with pytest.raises(FileNotFoundError, match=r"^checkpoint MODEL\.WEIGHTS='.*gone\.pth' does not exist$"):
        load_checkpoint_strict(model, str(tmp_path / "gone.pth"))


def test_an_evaluations_weights_given_as_a_folder_are_named_as_one(tmp_path):
    # lazyconfig_train_net --eval-only train.init_checkpoint=<the run's folder> was told the
    # folder "does not exist" (its run check reads no weights for an evaluation).
    from dropblock_det.engine.trainer import check_eval_checkpoint

    with pytest.raises(FileNotFoundError, match=rf"^train\.init_checkpoint='{re.escape(str(tmp_path))}' is a folder, "
                                                r"not a checkpoint file: give the checkpoint in it"):
        check_eval_checkpoint(None, str(tmp_path), "train.init_checkpoint")
    with pytest.raises(FileNotFoundError, match=r"^MODEL\.WEIGHTS='.*gone\.pth' does not exist$"):
        check_eval_checkpoint(None, str(tmp_path / "gone.pth"), "MODEL.WEIGHTS")


def test_a_last_checkpoint_that_is_no_text_file_is_refused_naming_it(tmp_path):
    # fvcore reads it as text: a checkpoint copied over it (the name suggests one) failed a
    # --resume with a bare UnicodeDecodeError, a folder of that name with IsADirectoryError.
    import io

    from dropblock_det.engine.trainer import last_checkpoint

    buffer = io.BytesIO()
    torch.save({"model": {"w": torch.zeros(3)}}, buffer)
    marker = tmp_path / "last_checkpoint"
    marker.write_bytes(buffer.getvalue())
    match = r"last_checkpoint is not the text file detectron2 writes there, naming the checkpoint to resume from"
    with pytest.raises(ValueError, match=match):
        last_checkpoint(str(tmp_path))
    marker.unlink()
    marker.mkdir()
    with pytest.raises(ValueError, match=match):
        last_checkpoint(str(tmp_path))


def test_missing_dataset_files_are_named_with_the_key_that_names_the_set(tmp_path):
    # "missing dataset files under ...: <set>: <path>" said which set, not which key of the
    # config named it (DATASETS.TRAIN or DATASETS.TEST).
    from detectron2.data import DatasetCatalog
    from detectron2.data.datasets import register_coco_instances

    from dropblock_det.engine.trainer import check_dataset_names

    name = "test_trainer_set_without_files"
    if name not in DatasetCatalog.list():
        register_coco_instances(name, {}, str(tmp_path / "none.json"), str(tmp_path / "images"))
    with pytest.raises(FileNotFoundError, match=rf"\n  {name} \(DATASETS\.TEST\): .*none\.json"):
        check_dataset_names(_cfg("DATASETS.TEST", f"('{name}',)"))


def test_a_set_named_by_both_keys_is_listed_once_with_the_training_key(tmp_path):
    # A set trained on and evaluated on is named once, with DATASETS.TRAIN (the key that
    # names it first), not once per key nor as a test set only.
    from detectron2.data import DatasetCatalog
    from detectron2.data.datasets import register_coco_instances

    from dropblock_det.engine.trainer import check_dataset_names

    name = "test_trainer_train_and_test_set_without_files"
    if name not in DatasetCatalog.list():
        register_coco_instances(name, {}, str(tmp_path / "none.json"), str(tmp_path / "images"))
    with pytest.raises(FileNotFoundError) as error:
        check_dataset_names(_cfg("DATASETS.TRAIN", f"('{name}',)", "DATASETS.TEST", f"('{name}',)"))
    listed = [line for line in str(error.value).splitlines() if name in line]
    assert listed and all(line.startswith(f"  {name} (DATASETS.TRAIN): ") for line in listed), listed
    assert len(listed) == len(set(listed))
