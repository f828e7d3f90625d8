"""dropblock-det with detectron2's R-CNN family (GeneralizedRCNN: Faster / Mask R-CNN, FPN
and C4), as a detectron2 user configures it: detectron2's Base-RCNN-* keys with
MODEL.BACKBONE.NAME switched to a dropblock-det builder."""
import json
import re

import pytest
import torch

from conftest import CONFIGS, lazy_cfg, lazy_rcnn_cfg, own_coco_set, rcnn_cfg, register_coco_json


# ----------------------------------------------------------------------------- evaluation
def _coco_with_masks(tmp_path, name, with_masks: bool = True):
    polygon = [4.0, 4.0, 20.0, 4.0, 20.0, 20.0, 4.0, 20.0]
    coco = {
        "images": [{"id": 1, "file_name": "a.jpg", "height": 32, "width": 32}],
        "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "bbox": [4, 4, 16, 16],
                         "area": 256.0, "iscrowd": 0, **({"segmentation": [polygon]} if with_masks else {})}],
        "categories": [{"id": 1, "name": "square"}],
    }
    register_coco_json(name, coco, tmp_path)
    return polygon


def _predictions(polygon, with_masks: bool):
    from detectron2.structures import Boxes, Instances
    from detectron2.structures.masks import polygons_to_bitmask

    instances = Instances((32, 32))
    instances.pred_boxes = Boxes(torch.tensor([[4.0, 4.0, 20.0, 20.0]]))
    instances.scores = torch.tensor([0.9])
    instances.pred_classes = torch.tensor([0])
    if with_masks:
        instances.pred_masks = torch.from_numpy(polygons_to_bitmask([polygon], 32, 32))[None]
    return [{"image_id": 1}], [{"instances": instances}]


@pytest.mark.parametrize("with_masks, tasks", [(True, ["bbox", "segm"]), (False, ["bbox"])])
def test_the_coco_evaluator_evaluates_the_masks_of_a_mask_rcnn(tmp_path, with_masks, tasks):
    # Hard-coded tasks=("bbox",) gave a Mask R-CNN no mask AP, and said nothing.
    from dropblock_det.engine.evaluation import dataset_evaluator

    polygon = _coco_with_masks(tmp_path, "dropblock_test_coco_masks")
    evaluator = dataset_evaluator("dropblock_test_coco_masks", None)
    evaluator.reset()
    evaluator.process(*_predictions(polygon, with_masks))
    results = evaluator.evaluate()
    assert sorted(results) == tasks
    assert all(results[task]["AP"] == pytest.approx(100.0) for task in tasks)


def test_a_faster_rcnn_is_refused_a_semantic_segmentation_test_set_before_training():
    # Else it trains to the end and the SemSegEvaluator fails: KeyError: 'sem_seg'.
    from dropblock_det.engine.evaluation import check_evaluator_types

    cfg = rcnn_cfg()
    cfg.DATASETS.TEST = ("synthetic_sem_seg_val",)
    with pytest.raises(ValueError, match=r"DATASETS\.TEST names 'synthetic_sem_seg_val'.*GeneralizedRCNN"):
        check_evaluator_types(cfg)
    cfg.DATASETS.TEST = ("synthetic_det_val",)
    check_evaluator_types(cfg)


def test_an_rcnn_class_count_the_datasets_do_not_have_is_refused_yacs_and_lazy():
    # Else it trains fully and the COCO evaluation fails on class ids the dataset lacks.
    from dropblock_det.engine.lazy_config_checks import check_lazy_model, lazy_meta_model
    from dropblock_det.engine.config_checks import check_config_before_run

    cfg = rcnn_cfg("DATASETS.TRAIN", "('synthetic_det_train',)", "DATASETS.TEST", "('synthetic_det_val',)")
    check_config_before_run(cfg, check_files=False)
    cfg.MODEL.ROI_HEADS.NUM_CLASSES = 80
    with pytest.raises(ValueError, match=r"^MODEL\.ROI_HEADS\.NUM_CLASSES=80, but DATASETS\.TRAIN names "
                                         r"'synthetic_det_train', which has 3 classes"):
        check_config_before_run(cfg, check_files=False)
    lazy = lazy_rcnn_cfg()
    check_lazy_model(lazy, lazy_meta_model(lazy))
    lazy.model.roi_heads.box_predictor.num_classes = 5  # the box predictor's own count, given by hand
    with pytest.raises(ValueError, match=r"^model\.roi_heads\.box_predictor\.num_classes=5, but "
                                         r"dataloader\.train\.dataset\.names names 'synthetic_det_train', which has 3"):
        check_lazy_model(lazy, lazy_meta_model(lazy))


def test_a_panoptic_fpn_semantic_class_count_the_datasets_do_not_have_is_refused_yacs_and_lazy():
    # detectron2's *_panoptic_separated sets label every thing pixel "things" (0), then the 53
    # stuff classes: 54 stuff_classes, as its PanopticFPN configs have. With 53 the loss fails
    # at the first step on label 53; another ignore value trains or fails on the 255 pixels.
    from detectron2.config import LazyCall as L
    from detectron2.layers import ShapeSpec
    from detectron2.modeling import PanopticFPN
    from detectron2.modeling.meta_arch.semantic_seg import SemSegFPNHead

    from dropblock_det.engine.lazy_config_checks import check_lazy_model, lazy_meta_model
    from dropblock_det.engine.config_checks import check_config_before_run

    train, test = "coco_2017_train_panoptic_separated", "coco_2017_val_panoptic_stuffonly"
    cfg = rcnn_cfg("MODEL.META_ARCHITECTURE", "PanopticFPN", "MODEL.ROI_HEADS.NUM_CLASSES", "80",
                   "DATASETS.TRAIN", f"('{train}',)", "DATASETS.TEST", f"('{test}',)")
    assert cfg.MODEL.SEM_SEG_HEAD.NUM_CLASSES == 54  # detectron2's default
    check_config_before_run(cfg, check_files=False)
    cfg.MODEL.SEM_SEG_HEAD.NUM_CLASSES = 53
    with pytest.raises(ValueError, match=rf"^MODEL\.SEM_SEG_HEAD\.NUM_CLASSES=53, but DATASETS\.TRAIN names '{train}', "
                                         r"which has 54 classes \(its metadata stuff_classes: \['things', .*set "
                                         r"MODEL\.SEM_SEG_HEAD\.NUM_CLASSES to 54 \(the loss fails at the first step"):
        check_config_before_run(cfg, check_files=False)
    with pytest.raises(ValueError, match=rf"^MODEL\.SEM_SEG_HEAD\.NUM_CLASSES=53, but DATASETS\.TEST names '{test}'"):
        check_config_before_run(cfg, train=False, check_files=False)
    cfg.MODEL.SEM_SEG_HEAD.NUM_CLASSES, cfg.MODEL.SEM_SEG_HEAD.IGNORE_VALUE = 54, 0
    with pytest.raises(ValueError, match=rf"^MODEL\.SEM_SEG_HEAD\.IGNORE_VALUE=0, but DATASETS\.TRAIN names '{train}', "
                                         r"whose labels mark the pixels to ignore with 255"):
        check_config_before_run(cfg, check_files=False)

    # As detectron2's configs/common/models/panoptic_fpn.py makes one from its Mask R-CNN.
    lazy = lazy_rcnn_cfg()
    lazy.model._target_ = PanopticFPN
    lazy.model.sem_seg_head = L(SemSegFPNHead)(
        input_shape={f: L(ShapeSpec)(stride=s, channels=32) for f, s in zip(["p2", "p3", "p4", "p5"], [4, 8, 16, 32])},
        ignore_value=255, num_classes=54, conv_dims=32, common_stride=4, loss_weight=0.5, norm="GN")
    lazy.model.roi_heads.num_classes = lazy.model.roi_heads.box_predictor.num_classes = 80
    lazy.dataloader.train.dataset.names = train
    check_lazy_model(lazy, lazy_meta_model(lazy))
    lazy.model.sem_seg_head.num_classes = 53
    with pytest.raises(ValueError, match=rf"^model\.sem_seg_head\.num_classes=53, but dataloader\.train\.dataset\.names "
                                         rf"names '{train}', which has 54 classes"):
        check_lazy_model(lazy, lazy_meta_model(lazy))


# ----------------------------------------------------------------------------- model checks
def test_faster_rcnn_fpn_gets_dropblock_in_the_configured_stages_and_the_fpn():
    from dropblock_det.engine.config_checks import check_model_config
    from dropblock_det.layers import iter_regularizers

    cfg = rcnn_cfg("MODEL.MASK_ON", "True")
    names = [name for name, _ in iter_regularizers(check_model_config(cfg))]
    assert {name.split(".")[2] for name in names if ".bottom_up." in name} == {"res4", "res5"}
    assert {name for name in names if ".bottom_up." not in name} == {
        f"backbone.dropblock_{position}{level}" for position in ("lateral", "output") for level in (2, 3, 4, 5)}


def test_c4_res5_in_the_roi_head_is_refused_naming_the_key_not_placed_in_an_unused_backbone_res5():
    # Res5ROIHeads builds its own res5; a backbone res5 (OUT_FEATURES res4 + res5) is
    # computed but feeds nothing, so DropBlock there regularizes nothing.
    from dropblock_det.config import validate_dropblock_config
    from dropblock_det.engine.config_checks import check_model_config
    from dropblock_det.layers import iter_regularizers

    cfg = rcnn_cfg("MODEL.DROPBLOCK.RESNET.STAGES", "['res4', 'res5']", c4=True)
    with pytest.raises(ValueError, match=r"RESNET\.STAGES=\['res4', 'res5'\].*Res5ROIHeads.*\['res4'\]"):
        validate_dropblock_config(cfg)
    cfg.MODEL.RESNETS.OUT_FEATURES = ["res4", "res5"]
    with pytest.raises(ValueError, match=r"MODEL\.DROPBLOCK\.RESNET\.STAGES=.*Res5ROIHeads.*not used"):
        check_model_config(cfg)
    model = check_model_config(rcnn_cfg(c4=True))  # res4 only: accepted
    assert {name.split(".")[1] for name, _ in iter_regularizers(model)} == {"res4"}


def test_a_c4_stage_or_block_a_stock_part_builds_is_refused_where_the_other_part_has_dropblock():
    # A stock backbone beside DropBlockRes5ROIHeads (detectron2's C4 configs name
    # build_resnet_backbone): DropBlock in res5 only, DropPath in 3 of the blocks, accepted
    # and trained so. And the other way round for DropPath.
    from dropblock_det.engine.config_checks import check_model_config
    from dropblock_det.layers import iter_regularizers

    stock_backbone = ("MODEL.BACKBONE.NAME", "build_resnet_backbone", "MODEL.ROI_HEADS.NAME", "DropBlockRes5ROIHeads")
    with pytest.raises(ValueError, match=r"^MODEL\.DROPBLOCK\.RESNET\.STAGES=\['res4', 'res5'\] lists 'res4', but the "
                                         r"model's res4 \(backbone\.res4\) has no DropBlock: use dropblock-det's "
                                         r"counterpart of 'build_resnet_backbone': MODEL\.BACKBONE\.NAME "
                                         r"'build_dropblock_resnet_backbone'$"):
        check_model_config(rcnn_cfg(*stock_backbone, "MODEL.DROPBLOCK.RESNET.STAGES", "['res4', 'res5']", c4=True))
    with pytest.raises(ValueError, match=r"^MODEL\.DROPBLOCK\.DROP_PATH_RATE=0\.2, but \d+ of the model's \d+ residual "
                                         r"blocks have no DropPath \(backbone\.res2\.0, "):
        check_model_config(rcnn_cfg(*stock_backbone, "MODEL.DROPBLOCK.RESNET.STAGES", "['res5']",
                                    "MODEL.DROPBLOCK.DROP_PATH_RATE", "0.2", c4=True))
    with pytest.raises(ValueError, match=r"^MODEL\.DROPBLOCK\.DROP_PATH_RATE=0\.2, but 3 of the model's \d+ residual blocks "
                                         r"have no DropPath \(roi_heads\.res5\.0, roi_heads\.res5\.1, roi_heads\.res5\.2\): "
                                         r"use dropblock-det's counterpart of 'Res5ROIHeads': MODEL\.ROI_HEADS\.NAME "
                                         r"'DropBlockRes5ROIHeads'$"):
        check_model_config(rcnn_cfg("MODEL.DROPBLOCK.DROP_PATH_RATE", "0.2", c4=True))
    # Both parts dropblock-det's: every block has DropPath, res4 and res5 DropBlock.
    model = check_model_config(rcnn_cfg("MODEL.ROI_HEADS.NAME", "DropBlockRes5ROIHeads", "MODEL.DROPBLOCK.RESNET.STAGES",
                                        "['res4', 'res5']", "MODEL.DROPBLOCK.DROP_PATH_RATE", "0.2", c4=True))
    names = [name for name, _ in iter_regularizers(model)]
    assert {name.split(".")[1] for name in names if ".dropblock_" in name} == {"res4", "res5"}
    assert sum(name.endswith(".drop_path") for name in names) == 2 + 2 + 2 + 3  # R18 res2..res4, R50-style res5


def test_head_modules_keyed_by_a_resnet_feature_name_are_not_taken_for_blocks_without_droppath(tmp_path):
    # A DeepLab decoder's dropblock_decoder.res2.0 and a SemSegFPN head's towers fed with
    # ResNet features (sem_seg_head.res3.0) are named like blocks: DROP_PATH_RATE was refused.
    from conftest import small_voc_sem_seg_cfg
    from dropblock_det.engine.config_checks import check_model_config
    from dropblock_det.layers import iter_regularizers

    deeplab = "deeplab_v3_plus_R_52_GN_scratch_dropblock_res45_head_kp0.9_b7_os16_poly_330k_bs16.yaml"
    model = check_model_config(small_voc_sem_seg_cfg(deeplab, tmp_path, ["MODEL.DROPBLOCK.DROP_PATH_RATE", 0.1]))
    names = [name for name, _ in iter_regularizers(model)]
    assert "sem_seg_head.dropblock_decoder.res2.0" in names and sum(n.endswith(".drop_path") for n in names) == 16
    fpn_head_on_resnet = rcnn_cfg("MODEL.META_ARCHITECTURE", "SemanticSegmentor", "MODEL.BACKBONE.NAME",
                                  "build_dropblock_resnet_backbone", "MODEL.SEM_SEG_HEAD.NAME", "SemSegFPNHead",
                                  "MODEL.SEM_SEG_HEAD.IN_FEATURES", "['res2', 'res3', 'res4', 'res5']",
                                  "MODEL.SEM_SEG_HEAD.NUM_CLASSES", "4", "MODEL.DROPBLOCK.FPN.ENABLED", "False",
                                  "MODEL.DROPBLOCK.DROP_PATH_RATE", "0.1")
    model = check_model_config(fpn_head_on_resnet)
    assert sum(name.endswith(".drop_path") for name, _ in iter_regularizers(model)) == 8  # R18's blocks


def test_the_c4_dropblock_head_on_an_fpn_rcnn_is_refused_naming_the_key():
    # detectron2 asserted len(in_features) == 1, naming no key.
    from dropblock_det.engine.config_checks import check_model_config

    with pytest.raises(ValueError, match=r"^MODEL\.ROI_HEADS\.IN_FEATURES=\['p2', 'p3', 'p4', 'p5'\]: "
                                         r"DropBlockRes5ROIHeads is the C4 head"):
        check_model_config(rcnn_cfg("MODEL.ROI_HEADS.NAME", "DropBlockRes5ROIHeads"))


@pytest.mark.parametrize("opts, c4, error", [
    # A RetinaNet backbone (p3..p7) in a GeneralizedRCNN: the RPN's default reads the C4 res4.
    (("MODEL.BACKBONE.NAME", "build_dropblock_retinanet_resnet_fpn_backbone", "MODEL.FPN.IN_FEATURES",
      "['res3', 'res4', 'res5']", "MODEL.DROPBLOCK.FPN.ENABLED", "False", "MODEL.RPN.IN_FEATURES", "['res4']"), False,
     r"MODEL\.RPN\.IN_FEATURES=\['res4'\]: 'res4' not among the backbone's outputs \['p3', 'p4', 'p5', 'p6', 'p7'\] "
     r"\(MODEL\.BACKBONE\.NAME='build_dropblock_retinanet_resnet_fpn_backbone'\)"),
    (("MODEL.RPN.IN_FEATURES", "['p2', 'p3', 'p4', 'p5', 'p7']"), False,
     r"MODEL\.RPN\.IN_FEATURES=\['p2', 'p3', 'p4', 'p5', 'p7'\]: 'p7' not among the backbone's outputs"),
    (("MODEL.ROI_HEADS.IN_FEATURES", "['p2', 'p3', 'p4', 'p7']"), False,
     r"MODEL\.ROI_HEADS\.IN_FEATURES=\['p2', 'p3', 'p4', 'p7'\]: 'p7' not among the backbone's outputs"),
    (("MODEL.ROI_HEADS.IN_FEATURES", "['res5']"), True,
     r"MODEL\.ROI_HEADS\.IN_FEATURES=\['res5'\]: 'res5' not among the backbone's outputs \['res4'\]"),
    (("MODEL.ROI_HEADS.IN_FEATURES", "['res4', 'res5']"), True,
     r"MODEL\.ROI_HEADS\.IN_FEATURES=\['res4', 'res5'\]: Res5ROIHeads is the C4 head"),
    (("MODEL.RESNETS.OUT_FEATURES", "['res3']", "MODEL.ROI_HEADS.NAME", "DropBlockRes5ROIHeads",
      "MODEL.DROPBLOCK.RESNET.STAGES", "['res3']"), True,
     r"MODEL\.RPN\.IN_FEATURES=\['res4'\]: 'res4' not among the backbone's outputs \['res3'\]"),
    # The anchors' sizes against the RPN's levels: detectron2 asserted it naming no key.
    (("MODEL.RPN.IN_FEATURES", "['p2', 'p3', 'p4', 'p5']"), False,
     r"MODEL\.ANCHOR_GENERATOR\.SIZES=\[\[32\], \[64\], \[128\], \[256\], \[512\]\]: 5 entries for the 4 levels "
     r"of MODEL\.RPN\.IN_FEATURES=\['p2', 'p3', 'p4', 'p5'\]: give one per level, or one for every level"),
    (("MODEL.ANCHOR_GENERATOR.ASPECT_RATIOS", "[[0.5], [1.0]]"), False,
     r"MODEL\.ANCHOR_GENERATOR\.ASPECT_RATIOS=\[\[0\.5\], \[1\.0\]\]: 2 entries for the 5 levels"),
], ids=["retinanet-backbone", "fpn-rpn", "fpn-roi-heads", "c4-roi-heads", "c4-two-features", "c4-backbone-to-res3",
        "rpn-anchor-sizes", "rpn-aspect-ratios"])
def test_rpn_and_roi_head_features_the_backbone_lacks_are_refused_naming_the_key(opts, c4, error):
    # detectron2 failed on them at model build with a bare KeyError (e.g. 'res4'), or an
    # AssertionError for a C4 head given two features.
    from dropblock_det.engine.config_checks import check_model_config

    with pytest.raises(ValueError, match="^" + error):
        check_model_config(rcnn_cfg(*opts, c4=c4))


def test_a_retinanet_config_made_a_generalized_rcnn_is_refused_naming_the_rpn_key_at_any_build():
    from dropblock_det.engine.config_checks import check_config_before_run, load_config
    from dropblock_det.engine.trainer import DropBlockTrainer

    cfg = load_config(str(CONFIGS / "Synthetic" / "retinanet_R18_GN_dropblock_res45_kp0.9_b3.yaml"),
                      ["MODEL.META_ARCHITECTURE", "GeneralizedRCNN", "MODEL.DEVICE", "cpu", "MODEL.WEIGHTS", ""])
    error = r"^MODEL\.RPN\.IN_FEATURES=\['res4'\]: 'res4' not among the backbone's outputs \['p3',"
    with pytest.raises(ValueError, match=error):
        check_config_before_run(cfg, check_files=False)
    with pytest.raises(ValueError, match=error):  # the trainer's own build, for a loop without the tool's check
        DropBlockTrainer.build_model(cfg)


@pytest.mark.parametrize("backbone, counterpart", [
    ("build_resnet_fpn_backbone", "build_dropblock_resnet_fpn_backbone"),
    ("build_resnet_backbone", "build_dropblock_resnet_backbone"),
])
def test_a_stock_rcnn_backbone_is_refused_naming_its_dropblock_counterpart(backbone, counterpart):
    # Not the RetinaNet backbone: in a GeneralizedRCNN it builds another model (P6 by a conv,
    # an unused P7), and the check accepts it.
    from dropblock_det.engine.config_checks import check_model_config

    cfg = rcnn_cfg("MODEL.BACKBONE.NAME", backbone, "MODEL.DROPBLOCK.FPN.ENABLED", "False",
                   c4=backbone == "build_resnet_backbone")
    with pytest.raises(ValueError, match=rf"RESNET\.ENABLED=True.*has no DropBlock there.*"
                                         rf"MODEL\.BACKBONE\.NAME '{counterpart}'") as error:
        check_model_config(cfg)
    assert "retinanet" not in str(error.value).lower()


def test_the_schedule_hook_names_the_rcnn_backbone_counterpart():
    from detectron2.modeling import build_model

    from dropblock_det.engine.hooks import DropBlockScheduleHook

    cfg = rcnn_cfg("MODEL.BACKBONE.NAME", "build_resnet_fpn_backbone", "MODEL.DROPBLOCK.FPN.ENABLED", "False")
    hook = DropBlockScheduleHook.from_config(cfg, model=build_model(cfg))
    hook.trainer = type("Trainer", (), {"max_iter": cfg.SOLVER.MAX_ITER})()
    with pytest.raises(ValueError, match=r"no DropBlock regularizer.*'build_dropblock_resnet_fpn_backbone'"):
        hook.before_train()


# ----------------------------------------------------------------------------- data
@pytest.mark.parametrize("key", ["MODEL.MASK_ON", "MODEL.KEYPOINT_ON"])
def test_training_a_mask_or_keypoint_rcnn_on_boxes_only_names_the_key(key):
    # detectron2 fails inside the loss: "Cannot find field 'gt_masks' in the given Instances!"
    from dropblock_det.data.file_errors import DatasetMapperNamingFiles

    item = {"file_name": "/nonexistent/000001.jpg", "height": 32, "width": 32, "image_id": 1,
            "annotations": [{"bbox": [4, 4, 16, 16], "bbox_mode": 1, "category_id": 0, "iscrowd": 0}]}
    # The arguments DatasetMapper.from_config gives for `key` (no keypoint dataset needed).
    mapper = DatasetMapperNamingFiles(is_train=True, augmentations=[], image_format="BGR",
                                      use_instance_mask=key == "MODEL.MASK_ON",
                                      use_keypoint=key == "MODEL.KEYPOINT_ON")
    with pytest.raises(ValueError, match=rf"{key}=True, but the annotations of /nonexistent/000001.jpg have no"):
        mapper(dict(item))


@pytest.mark.parametrize("roi_heads, dropblock_roi_heads, stages", [
    ("Res5ROIHeads", "DropBlockRes5ROIHeads", ["res4", "res5"]),
    ("StandardROIHeads", "StandardROIHeads", ["res4"]),  # on res4 features: no res5 anywhere
])
def test_robustness_config_of_a_c4_baseline_places_dropblock_in_the_stages_the_model_runs(
        tmp_path, roi_heads, dropblock_roi_heads, stages):
    # The tool turns RESNET on for a baseline; with its default stages (res4, res5) a C4
    # config was refused for a key the user never set. Its res5 is the ROI head's: that
    # head becomes DropBlockRes5ROIHeads, as the backbone becomes dropblock-det's.
    from conftest import load_tool

    from dropblock_det.config import validate_dropblock_config
    from dropblock_det.engine.config_checks import check_model_config

    cfg = rcnn_cfg("MODEL.BACKBONE.NAME", "build_resnet_backbone", "MODEL.DROPBLOCK.RESNET.ENABLED", "False",
                   "MODEL.DROPBLOCK.RESNET.STAGES", "['res4', 'res5']", "MODEL.ROI_HEADS.NAME", roi_heads,
                   "MODEL.ROI_BOX_HEAD.NAME", "FastRCNNConvFCHead", "MODEL.ROI_BOX_HEAD.NUM_FC", "1", c4=True)
    cfg.DATASETS.TEST = ("synthetic_det_val",)
    config_file = tmp_path / "c4_baseline.yaml"
    config_file.write_text(cfg.dump())
    robust = load_tool("analyze_robustness").robustness_config(str(config_file), [])
    assert robust.MODEL.BACKBONE.NAME == "build_dropblock_resnet_backbone"
    assert robust.MODEL.ROI_HEADS.NAME == dropblock_roi_heads
    assert list(robust.MODEL.DROPBLOCK.RESNET.STAGES) == stages
    validate_dropblock_config(robust)
    check_model_config(robust)


# ----------------------------------------------------------------------------- LazyConfig
def _lazy_check(cfg):
    from dropblock_det.engine.lazy_config_checks import check_lazy_model, lazy_meta_model

    model = lazy_meta_model(cfg)
    check_lazy_model(cfg, model, train=True)
    return model


def test_lazy_dropblock_in_a_resnet_stage_the_backbone_drops_is_refused_naming_the_key():
    # A C4 backbone (out_features res4, as detectron2's mask_rcnn_c4.py) drops res5: with
    # make_dropblock_resnet_stages' default stages (res4, res5) the run trained without
    # DropBlock in res5, accepted by every check.
    from dropblock_det.layers import iter_regularizers

    with pytest.raises(ValueError, match=r"^model\.backbone\.stages\.dropblock_stages=\['res4', 'res5'\]: res5 not "
                                         r"built: model\.backbone\.out_features=\['res4'\].*model\.roi_heads\.res5"):
        _lazy_check(lazy_rcnn_cfg(c4=True))
    cfg = lazy_rcnn_cfg()
    cfg.model.backbone.bottom_up.out_features = ["res2", "res3", "res4"]
    cfg.model.backbone.in_features = ["res2", "res3", "res4"]
    # (the RPN on the levels that FPN gives, p2-p4: the max-pooled top level reads a p5 it no longer has)
    cfg.model.backbone.top_block = None
    cfg.model.proposal_generator.in_features = ["p2", "p3", "p4"]
    cfg.model.proposal_generator.anchor_generator.update(sizes=[[32], [64], [128]], strides=[4, 8, 16])
    cfg.model.roi_heads.box_in_features = ["p2", "p3", "p4"]  # and the ROI heads, with their pooler's scales
    cfg.model.roi_heads.box_pooler.scales = [1.0 / 4, 1.0 / 8, 1.0 / 16]
    with pytest.raises(ValueError, match=r"^model\.backbone\.bottom_up\.stages\.dropblock_stages=.*res5 not built"):
        _lazy_check(cfg)
    # Accepted: the stages that are built (C4 res4), and an FPN's res4 + res5.
    cfg = lazy_rcnn_cfg(c4=True)
    cfg.model.backbone.stages.dropblock_stages = ["res4"]
    assert {name.split(".")[1] for name, _ in iter_regularizers(_lazy_check(cfg))} == {"res4"}
    names = [name for name, _ in iter_regularizers(_lazy_check(lazy_rcnn_cfg()))]
    assert {name.split(".")[2] for name in names if ".bottom_up." in name} == {"res4", "res5"}
    # A baseline (dropblock=None) places nothing: its default stages are not judged.
    cfg = lazy_rcnn_cfg(c4=True)
    cfg.model.backbone.stages.dropblock = None
    assert next(iter_regularizers(_lazy_check(cfg)), None) is None


@pytest.mark.parametrize("c4, mask, key, value, error", [
    # A level the backbone lacks: built, then a bare KeyError: 'p7' at the first step.
    (False, False, "box_in_features", ["p2", "p3", "p4", "p7"],
     r"model\.roi_heads\.box_in_features=\['p2', 'p3', 'p4', 'p7'\]: 'p7' not among the backbone's outputs"),
    (False, True, "mask_in_features", ["p2", "p3", "p4", "p7"],
     r"model\.roi_heads\.mask_in_features=\['p2', 'p3', 'p4', 'p7'\]: 'p7' not among the backbone's outputs"),
    (True, False, "in_features", ["res5"],
     r"model\.roi_heads\.in_features=\['res5'\]: 'res5' not among the backbone's outputs \['res4'\]"),
    # Other levels with the config's pooler scales (1/4 .. 1/32): trained, pooling every box
    # from the wrong place.
    (False, False, "box_in_features", ["p3", "p4", "p5", "p6"],
     r"model\.roi_heads\.box_pooler\.scales=\[0\.25, 0\.125, 0\.0625, 0\.03125\]: the features "
     r"model\.roi_heads\.box_in_features=\['p3', 'p4', 'p5', 'p6'\] have strides \[8, 16, 32, 64\].*"
     r"set model\.roi_heads\.box_pooler\.scales=\[1\.0 / 8, 1\.0 / 16, 1\.0 / 32, 1\.0 / 64\]"),
    # One scale too few: an AssertionError at the first step.
    (False, False, "box_pooler.scales", [0.25, 0.125, 0.0625], r"model\.roi_heads\.box_pooler\.scales=\[0\.25, "),
], ids=["box-level", "mask-level", "c4-feature", "box-scales", "scale-count"])
def test_lazy_roi_head_features_the_backbone_lacks_or_pools_at_other_scales_are_refused_naming_the_key(
        c4, mask, key, value, error):
    from omegaconf import OmegaConf

    cfg = lazy_rcnn_cfg(c4=c4, mask=mask, use_instance_mask=mask)
    if c4:
        cfg.model.backbone.stages.dropblock_stages = ["res4"]
    _lazy_check(cfg)  # accepted as it is
    OmegaConf.update(cfg, f"model.roi_heads.{key}", value, merge=False)
    with pytest.raises(ValueError, match="^" + error):
        _lazy_check(cfg)


@pytest.mark.parametrize("mapper", ["detectron2", "dropblock_det"])
def test_a_lazy_mask_rcnn_whose_mapper_loads_no_masks_is_refused_naming_the_key(mapper):
    # Else the first step fails: "Cannot find field 'gt_masks' in the given Instances!", even
    # on a dataset with masks (dropblock-det's coco_detection.py loader leaves the flag off).
    from dropblock_det.data.file_errors import DatasetMapperNamingFiles

    mapper = DatasetMapperNamingFiles if mapper == "dropblock_det" else None
    for c4 in (False, True):
        cfg = lazy_rcnn_cfg(c4=c4, mask=True, mapper=mapper)
        cfg.model.backbone.get("bottom_up", cfg.model.backbone).stages.dropblock_stages = ["res4"]
        with pytest.raises(ValueError, match=r"^dataloader\.train\.mapper\.use_instance_mask=False, but the "
                                             r"model's model\.roi_heads\.mask_head trains on instance masks"):
            _lazy_check(cfg)
        cfg.dataloader.train.mapper.use_instance_mask = True
        _lazy_check(cfg)
        # Left out, as dropblock-det's coco_detection.py loader does: DatasetMapper's default, False.
        del cfg.dataloader.train.mapper["use_instance_mask"]
        with pytest.raises(ValueError, match=r"^dataloader\.train\.mapper\.use_instance_mask=False, but"):
            _lazy_check(cfg)
    _lazy_check(lazy_rcnn_cfg(mapper=mapper))  # a Faster R-CNN needs no masks


def test_a_lazy_mask_rcnn_on_a_box_only_training_set_names_the_head_and_the_dataset(tmp_path):
    # detectron2's DatasetMapper maps the items without masks and the loss fails: "Cannot
    # find field 'gt_masks' in the given Instances!", naming neither.
    from conftest import tiny_synthetic_datasets

    from dropblock_det.engine.lazy_config_checks import lazy_meta_model
    from dropblock_det.engine.lazy import build_lazy_train_loader

    with tiny_synthetic_datasets(tmp_path):
        cfg = lazy_rcnn_cfg(mask=True, use_instance_mask=True)
        with pytest.raises(ValueError, match=r"^model\.roi_heads\.mask_head trains on instance masks, but the "
                                             r"annotations of .*000000\.jpg in dataloader\.train\.dataset\.names="
                                             r"\['synthetic_det_train'\] have no 'segmentation'"):
            build_lazy_train_loader(cfg, lazy_meta_model(cfg))
        cfg = lazy_rcnn_cfg()
        batch = next(iter(build_lazy_train_loader(cfg, lazy_meta_model(cfg))))
        assert len(batch) == 2 and batch[0]["instances"].has("gt_boxes")


def test_a_lazy_mask_rcnn_training_set_is_checked_past_its_first_image():
    # A set whose first images have masks and a later one none failed at that image's step.
    from dropblock_det.engine.lazy_config_checks import check_lazy_rcnn_training_data, lazy_meta_model

    cfg = lazy_rcnn_cfg(mask=True, use_instance_mask=True)
    box = dict(bbox=[1, 1, 8, 8], bbox_mode=1, category_id=0, iscrowd=0)
    items = [dict(file_name="a.jpg", annotations=[dict(box, segmentation=[[1, 1, 8, 1, 8, 8]])]),
             dict(file_name="b.jpg", annotations=[dict(box, iscrowd=1)]),  # a crowd box needs no mask
             dict(file_name="c.jpg", annotations=[box])]
    model = lazy_meta_model(cfg)
    check_lazy_rcnn_training_data(items[:2], model, ["mixed"])
    with pytest.raises(ValueError, match=r"^model\.roi_heads\.mask_head trains on instance masks, but the "
                                         r"annotations of c\.jpg in dataloader\.train\.dataset\.names=\['mixed'\] "
                                         r"have no 'segmentation'"):
        check_lazy_rcnn_training_data(items, model, ["mixed"])


def test_a_yacs_mask_rcnn_on_a_box_only_training_set_is_refused_when_its_loader_is_built(tmp_path):
    # It was refused at the first item the mapper mapped, in the first step, naming the
    # image only; now every item is checked when the trainer builds the loader.
    from conftest import tiny_synthetic_datasets

    from dropblock_det.engine.trainer import DropBlockTrainer

    with tiny_synthetic_datasets(tmp_path):
        cfg = rcnn_cfg("MODEL.MASK_ON", "True", "DATASETS.TRAIN", "('synthetic_det_train',)",
                       "SOLVER.IMS_PER_BATCH", "2", "DATALOADER.NUM_WORKERS", "0")
        with pytest.raises(ValueError, match=r"^MODEL\.MASK_ON=True, but the annotations of .*000000\.jpg in "
                                             r"DATASETS\.TRAIN=\('synthetic_det_train',\) have no 'segmentation'"):
            DropBlockTrainer.build_train_loader(cfg)
        cfg = rcnn_cfg("DATASETS.TRAIN", "('synthetic_det_train',)", "SOLVER.IMS_PER_BATCH", "2",
                       "DATALOADER.NUM_WORKERS", "0")
        batch = next(iter(DropBlockTrainer.build_train_loader(cfg)))
        assert len(batch) == 2 and batch[0]["instances"].has("gt_boxes")


def test_a_mask_rcnn_on_a_coco_json_without_masks_is_refused_before_the_run(tmp_path):
    # A set of one's own in a json without "segmentation": refused when the loader was built,
    # after the run's folder was prepared; the file is scanned before the run now.
    from dropblock_det.engine.config_checks import check_config_before_run

    with own_coco_set(tmp_path / "boxes", "test_rcnn_own_boxes") as boxes, \
            own_coco_set(tmp_path / "masks", "test_rcnn_own_masks", segmentation=True) as masks:
        cfg = rcnn_cfg("MODEL.MASK_ON", "True", "MODEL.ROI_HEADS.NUM_CLASSES", "2", "DATASETS.TRAIN", f"('{boxes}',)")
        with pytest.raises(ValueError, match=(
                rf"^MODEL\.MASK_ON=True, but DATASETS\.TRAIN names '{boxes}', whose json_file "
                rf"'{re.escape(str(tmp_path / 'boxes' / 'train.json'))}' has no 'segmentation' \(instance masks\) in "
                r"any annotation: give DATASETS\.TRAIN a dataset with instance masks, or set MODEL\.MASK_ON False$")):
            check_config_before_run(cfg)
        check_config_before_run(cfg, train=False)  # an evaluation loads no training set
        check_config_before_run(rcnn_cfg("MODEL.ROI_HEADS.NUM_CLASSES", "2", "DATASETS.TRAIN", f"('{boxes}',)"))
        check_config_before_run(rcnn_cfg("MODEL.MASK_ON", "True", "MODEL.ROI_HEADS.NUM_CLASSES", "2",
                                         "DATASETS.TRAIN", f"('{masks}',)"))
        with pytest.raises(ValueError, match=r"^MODEL\.KEYPOINT_ON=True, but DATASETS\.TRAIN names .*has no "
                                             r"'keypoints' \(keypoints\) in any annotation"):
            check_config_before_run(rcnn_cfg("MODEL.KEYPOINT_ON", "True", "MODEL.ROI_HEADS.NUM_CLASSES", "2",
                                             "DATASETS.TRAIN", f"('{masks}',)"))


def test_a_lazy_mask_rcnn_on_a_coco_json_without_masks_is_refused_before_the_run(tmp_path):
    from dropblock_det.engine.lazy_config_checks import check_lazy_config_before_run

    with own_coco_set(tmp_path / "boxes", "test_rcnn_lazy_own_boxes") as boxes, \
            own_coco_set(tmp_path / "masks", "test_rcnn_lazy_own_masks", segmentation=True) as masks:
        # The synthetic twin's training, test loader and evaluator around the Mask R-CNN, on 2 classes.
        cfg = lazy_cfg(CONFIGS / "Synthetic" / "retinanet_R18_GN_dropblock_res45_kp0.9_b3.py")
        rcnn = lazy_rcnn_cfg(mask=True, use_instance_mask=True)
        cfg.model, cfg.dropblock, cfg.dataloader.train = rcnn.model, rcnn.dropblock, rcnn.dataloader.train
        heads = cfg.model.roi_heads
        heads.num_classes = heads.box_predictor.num_classes = heads.mask_head.num_classes = 2
        cfg.dataloader.test.dataset.names = cfg.dataloader.evaluator.dataset_name = masks
        cfg.dataloader.train.dataset.names = boxes
        with pytest.raises(ValueError, match=(
                rf"^model\.roi_heads\.mask_head trains on instance masks, but dataloader\.train\.dataset\.names "
                rf"names '{boxes}', whose json_file .*boxes/train\.json' has no 'segmentation' \(instance masks\) in "
                r"any annotation: give dataloader\.train\.dataset\.names a dataset with instance masks, or build "
                r"the model without the head$")):
            check_lazy_config_before_run(cfg)
        cfg.dataloader.train.dataset.names = masks
        check_lazy_config_before_run(cfg)


def test_the_coco_evaluator_scores_a_mask_rcnn_on_a_box_only_set_by_its_boxes(tmp_path):
    # pycocotools raised KeyError: 'segmentation' after the whole inference (after training).
    from dropblock_det.engine.evaluation import dataset_evaluator

    polygon = _coco_with_masks(tmp_path, "dropblock_test_coco_boxes_only", with_masks=False)
    evaluator = dataset_evaluator("dropblock_test_coco_boxes_only", None)
    evaluator.reset()
    evaluator.process(*_predictions(polygon, with_masks=True))
    results = evaluator.evaluate()
    assert sorted(results) == ["bbox"] and results["bbox"]["AP"] == pytest.approx(100.0)



def test_the_coco_evaluator_scores_masks_only_where_every_annotation_has_one(tmp_path):
    # One annotation without "segmentation" is enough for pycocotools' segm evaluation to fail
    # (KeyError: 'segmentation', after the whole inference): the boxes are scored alone.
    from dropblock_det.engine.evaluation import dataset_evaluator

    name = "dropblock_test_coco_some_masks"
    polygon = [4.0, 4.0, 20.0, 4.0, 20.0, 20.0, 4.0, 20.0]
    box = {"image_id": 1, "category_id": 1, "bbox": [4, 4, 16, 16], "area": 256.0, "iscrowd": 0}
    coco = {"images": [{"id": 1, "file_name": "a.jpg", "height": 32, "width": 32}],
            "annotations": [{"id": 1, **box, "segmentation": [polygon]},
                            {"id": 2, **box, "bbox": [24, 24, 6, 6], "area": 36.0}],
            "categories": [{"id": 1, "name": "square"}]}
    register_coco_json(name, coco, tmp_path)
    evaluator = dataset_evaluator(name, None)
    evaluator.reset()
    evaluator.process(*_predictions(polygon, with_masks=True))
    assert sorted(evaluator.evaluate()) == ["bbox"]

# ----------------------------------------------------------------------------- test-time augmentation
def _tta_cfg(tmp_path, *opts):
    """A tiny Mask R-CNN with TEST.AUG.ENABLED, tested on a one-image COCO set with masks
    (a 32 x 32 image, resized to 40 for the plain evaluation), predictions under tmp_path."""
    from PIL import Image

    name = "dropblock_test_tta_masks"
    _coco_with_masks(tmp_path, name)
    image = Image.new("RGB", (32, 32))
    image.paste((200, 120, 40), (4, 4, 20, 20))  # the annotated square
    image.save(tmp_path / "a.jpg")
    return rcnn_cfg("MODEL.MASK_ON", "True", "MODEL.ROI_HEADS.NUM_CLASSES", "1", "DATASETS.TEST", f"('{name}',)",
                    "DATALOADER.NUM_WORKERS", "0", "INPUT.MIN_SIZE_TEST", "40", "INPUT.MAX_SIZE_TEST", "100",
                    # Few boxes, a small mask head: seconds on CPU, each augmented image a mask head pass.
                    "MODEL.RPN.POST_NMS_TOPK_TEST", "50", "TEST.DETECTIONS_PER_IMAGE", "10",
                    "MODEL.ROI_MASK_HEAD.NUM_CONV", "1", "MODEL.ROI_MASK_HEAD.CONV_DIM", "16",
                    "MODEL.ROI_HEADS.SCORE_THRESH_TEST", "0.0", "TEST.AUG.ENABLED", "True", "TEST.AUG.MAX_SIZE", "100",
                    "OUTPUT_DIR", str(tmp_path / "out"), *opts)


def _predictions_file(folder):
    (dataset,) = folder.iterdir()
    rows = json.loads((dataset / "coco_instances_results.json").read_text())
    return sorted(rows, key=lambda r: (r["score"], r["bbox"]))


def test_tta_of_one_unflipped_test_size_gives_the_plain_predictions_in_its_own_folder(tmp_path):
    # The wrapper maps its detections back through the test resize (32 -> 40 px): with one
    # augmentation, the test resize itself, it must predict what the plain evaluation does.
    from dropblock_det.engine.config_checks import check_config_before_run
    from dropblock_det.engine.trainer import DropBlockTrainer

    cfg = _tta_cfg(tmp_path, "TEST.AUG.MIN_SIZES", "(40,)", "TEST.AUG.FLIP", "False")
    check_config_before_run(cfg, train=False, check_files=False)
    torch.manual_seed(0)
    model = DropBlockTrainer.build_model(cfg)
    plain = DropBlockTrainer.test(cfg, model)
    tta = DropBlockTrainer.test_with_TTA(cfg, model)
    assert list(plain) == ["bbox", "segm"] and list(tta) == ["bbox_TTA", "segm_TTA"]
    for task in plain:
        assert tta[f"{task}_TTA"] == pytest.approx(plain[task], nan_ok=True)
    out = tmp_path / "out"
    assert sorted(p.name for p in out.iterdir()) == ["inference", "inference_TTA"]
    ours, theirs = _predictions_file(out / "inference_TTA"), _predictions_file(out / "inference")
    assert len(ours) == len(theirs) > 0
    for a, b in zip(ours, theirs):
        assert (a["category_id"], a["segmentation"]) == (b["category_id"], b["segmentation"])
        assert a["bbox"] == pytest.approx(b["bbox"], abs=1e-3) and a["score"] == pytest.approx(b["score"], abs=1e-6)


def test_tta_evaluates_every_size_and_its_flip_with_dropblock_off(tmp_path):
    from dropblock_det.engine.trainer import DropBlockTrainer
    from dropblock_det.layers import iter_regularizers

    cfg = _tta_cfg(tmp_path, "TEST.AUG.MIN_SIZES", "(24, 56)", "TEST.AUG.FLIP", "True")
    torch.manual_seed(0)
    model = DropBlockTrainer.build_model(cfg)
    regularizers = [m for _, m in iter_regularizers(model)]
    assert regularizers
    seen = []
    inference = model.inference

    def recording(inputs, *args, **kwargs):
        seen.extend((x["image"], model.training, [m.training for m in regularizers]) for x in inputs)
        return inference(inputs, *args, **kwargs)

    model.inference = recording
    model.eval()
    results = DropBlockTrainer.test_with_TTA(cfg, model)
    assert sorted(results) == ["bbox_TTA", "segm_TTA"]
    assert not model.training  # left in the mode it was given in
    # Boxes for each augmented image, then masks for the merged boxes on each again.
    images = [image for image, _, _ in seen]
    assert [tuple(image.shape[1:]) for image in images] == [(24, 24), (24, 24), (56, 56), (56, 56)] * 2
    assert torch.equal(images[1], images[0].flip(-1)) and torch.equal(images[3], images[2].flip(-1))
    assert not any(training or any(flags) for _, training, flags in seen)  # eval mode: DropBlock is the identity


@pytest.mark.parametrize("opts, c4, error", [
    # The carried item: built, then the FPN box head trained on 0 features (C4: failed at the
    # first step with torch's "Kernel size can't be greater than actual input size").
    (("MODEL.ROI_BOX_HEAD.POOLER_RESOLUTION", "0"), False, r"MODEL\.ROI_BOX_HEAD\.POOLER_RESOLUTION=0: expected the side >= 1"),
    (("MODEL.ROI_BOX_HEAD.POOLER_RESOLUTION", "0"), True, r"MODEL\.ROI_BOX_HEAD\.POOLER_RESOLUTION=0: expected the side >= 1"),
    # "Unknown pooler type: foo" at the build; a bare AssertionError at the first step.
    (("MODEL.ROI_BOX_HEAD.POOLER_TYPE", "ROIAlignRotated"), False,
     r"MODEL\.ROI_BOX_HEAD\.POOLER_TYPE='ROIAlignRotated': expected one of \['ROIAlign', 'ROIAlignV2', 'ROIPool'\] "
     r"for MODEL\.ROI_HEADS\.NAME='StandardROIHeads'"),
    (("MODEL.ROI_BOX_HEAD.POOLER_TYPE", "foo"), True, r"MODEL\.ROI_BOX_HEAD\.POOLER_TYPE='foo': expected one of"),
    (("MODEL.ROI_BOX_HEAD.FC_DIM", "0"), False,
     r"MODEL\.ROI_BOX_HEAD\.FC_DIM=0: expected a number of channels >= 1 for the MODEL\.ROI_BOX_HEAD\.NUM_FC=2 layer"),
    (("MODEL.ROI_BOX_HEAD.NUM_FC", "-1"), False, r"MODEL\.ROI_BOX_HEAD\.NUM_FC=-1: expected a number of layers >= 0"),
    # A bare IndexError, "not enough values to unpack", "Invalid bbox reg loss type" at the
    # first step; a weight of 0: infinite proposals ("Training has diverged").
    (("MODEL.ROI_BOX_HEAD.BBOX_REG_WEIGHTS", "[10.0, 10.0]"), True,
     r"MODEL\.ROI_BOX_HEAD\.BBOX_REG_WEIGHTS=\[10\.0, 10\.0\]: expected 4 weights, none 0"),
    (("MODEL.RPN.BBOX_REG_WEIGHTS", "[0.0, 0.0, 0.0, 0.0]"), False, r"MODEL\.RPN\.BBOX_REG_WEIGHTS=\[0\.0, 0\.0, 0\.0, 0\.0\]: "),
    (("MODEL.ROI_BOX_HEAD.BBOX_REG_LOSS_TYPE", "foo"), False, r"MODEL\.ROI_BOX_HEAD\.BBOX_REG_LOSS_TYPE='foo': not a box loss"),
    (("MODEL.RPN.BBOX_REG_LOSS_TYPE", "foo"), False, r"MODEL\.RPN\.BBOX_REG_LOSS_TYPE='foo': not a box loss"),
    # NaN RPN losses from the first step; ROI losses 0; no foreground sampled.
    (("MODEL.RPN.BATCH_SIZE_PER_IMAGE", "0"), False, r"MODEL\.RPN\.BATCH_SIZE_PER_IMAGE=0: expected a number of samples"),
    (("MODEL.ROI_HEADS.BATCH_SIZE_PER_IMAGE", "0"), True, r"MODEL\.ROI_HEADS\.BATCH_SIZE_PER_IMAGE=0: expected"),
    (("MODEL.ROI_HEADS.POSITIVE_FRACTION", "0.0"), False, r"MODEL\.ROI_HEADS\.POSITIVE_FRACTION=0\.0: expected a fraction in \(0, 1\]"),
    (("MODEL.RPN.POSITIVE_FRACTION", "1.5"), False, r"MODEL\.RPN\.POSITIVE_FRACTION=1\.5: expected a fraction"),
    (("MODEL.ROI_HEADS.IOU_THRESHOLDS", "[1.5]"), False, r"MODEL\.ROI_HEADS\.IOU_THRESHOLDS=\[1\.5\]: expected IoU values"),
    (("MODEL.RPN.IOU_THRESHOLDS", "[0.7, 0.3]"), True, r"MODEL\.RPN\.IOU_THRESHOLDS=\[0\.7, 0\.3\]: expected the IoU values lowest first"),
    # "narrow(): length must be non-negative" in the evaluation after training; no proposal.
    (("MODEL.RPN.PRE_NMS_TOPK_TEST", "-1"), False, r"MODEL\.RPN\.PRE_NMS_TOPK_TEST=-1: expected a number of proposals >= 1"),
    (("MODEL.RPN.POST_NMS_TOPK_TRAIN", "0"), False, r"MODEL\.RPN\.POST_NMS_TOPK_TRAIN=0: expected"),
    (("MODEL.RPN.NMS_THRESH", "-1.0"), False, r"MODEL\.RPN\.NMS_THRESH=-1\.0: expected an IoU threshold"),
    (("MODEL.ROI_HEADS.SCORE_THRESH_TEST", "1.5"), False, r"MODEL\.ROI_HEADS\.SCORE_THRESH_TEST=1\.5: scores are"),
    (("MODEL.ROI_HEADS.NMS_THRESH_TEST", "-1.0"), True, r"MODEL\.ROI_HEADS\.NMS_THRESH_TEST=-1\.0: expected"),
    # C4's res5 (the ROI head's bottleneck blocks) reads the width: a conv of 0 outputs.
    (("MODEL.RESNETS.WIDTH_PER_GROUP", "0"), True, r"MODEL\.RESNETS\.WIDTH_PER_GROUP=0: expected an integer >= 1"),
    # The mask and keypoint heads' own poolers and widths, as the box head's.
    (("MODEL.MASK_ON", "True", "MODEL.ROI_MASK_HEAD.POOLER_RESOLUTION", "0"), False,
     r"MODEL\.ROI_MASK_HEAD\.POOLER_RESOLUTION=0: expected the side >= 1"),
    (("MODEL.KEYPOINT_ON", "True", "MODEL.ROI_KEYPOINT_HEAD.POOLER_TYPE", "ROIAlignV3"), False,
     r"MODEL\.ROI_KEYPOINT_HEAD\.POOLER_TYPE='ROIAlignV3': expected one of"),
    (("MODEL.MASK_ON", "True", "MODEL.ROI_MASK_HEAD.CONV_DIM", "0"), True,
     r"MODEL\.ROI_MASK_HEAD\.CONV_DIM=0: channel counts must be integers >= 1 \(0 is not\)$"),
    (("MODEL.KEYPOINT_ON", "True", "MODEL.ROI_KEYPOINT_HEAD.CONV_DIMS", "[64, 0]"), False,
     r"MODEL\.ROI_KEYPOINT_HEAD\.CONV_DIMS=\[64, 0\]: channel counts must be integers >= 1 \(0 is not\)$"),
])
def test_rcnn_head_values_detectron2_fails_on_late_are_refused_naming_the_key(opts, c4, error):
    from dropblock_det.engine.config_checks import check_model_config

    with pytest.raises(ValueError, match="^" + error):
        check_model_config(rcnn_cfg(*opts, c4=c4))


@pytest.mark.parametrize("opts, c4", [
    (("MODEL.ROI_BOX_HEAD.POOLER_RESOLUTION", "1"), False),
    (("MODEL.ROI_BOX_HEAD.POOLER_TYPE", "ROIPool"), True),
    (("MODEL.ROI_BOX_HEAD.POOLER_SAMPLING_RATIO", "-1"), False),  # adaptive, as 0
    (("MODEL.ROI_BOX_HEAD.NUM_FC", "0", "MODEL.ROI_BOX_HEAD.NUM_CONV", "1"), False),
    (("MODEL.ROI_BOX_HEAD.FC_DIM", "0"), True),  # C4 has no FastRCNNConvFCHead
    (("MODEL.ROI_BOX_HEAD.BBOX_REG_LOSS_TYPE", "giou", "MODEL.RPN.BBOX_REG_LOSS_TYPE", "giou"), False),
    (("MODEL.ROI_HEADS.POSITIVE_FRACTION", "1.0", "MODEL.RPN.NMS_THRESH", "1.0"), False),
    (("MODEL.ROI_HEADS.SCORE_THRESH_TEST", "0.0", "TEST.DETECTIONS_PER_IMAGE", "-1"), True),  # no limit
    (("MODEL.RESNETS.WIDTH_PER_GROUP", "0"), False),  # unread by ResNet-18-FPN
    (("MODEL.MASK_ON", "True", "MODEL.ROI_MASK_HEAD.POOLER_RESOLUTION", "0"), True),  # C4 pools once, for both
])
def test_rcnn_head_values_detectron2_takes_are_not_refused(opts, c4):
    from dropblock_det.engine.config_checks import check_model_config

    check_model_config(rcnn_cfg(*opts, c4=c4))


@pytest.mark.parametrize("node, name, value, error", [
    # As the yacs keys: the box head on 0 features, a bare torch error or "Unknown pooler type".
    ("roi_heads.box_pooler", "output_size", 0, r"model\.roi_heads\.box_pooler\.output_size=0: expected the side >= 1"),
    ("roi_heads.box_pooler", "pooler_type", "ROIAlignV3",
     r"model\.roi_heads\.box_pooler\.pooler_type='ROIAlignV3': expected one of \['ROIAlign', "),
    ("roi_heads.box_head", "fc_dims", [0],
     r"model\.roi_heads\.box_head\.fc_dims=\[0\]: channel counts must be integers >= 1 \(0 is not\)$"),
    ("roi_heads.mask_head", "conv_dims", [16, 0],
     r"model\.roi_heads\.mask_head\.conv_dims=\[16, 0\]: channel counts must be integers >= 1 \(0 is not\)$"),
    ("roi_heads.mask_pooler", "output_size", -1, r"model\.roi_heads\.mask_pooler\.output_size=-1: expected the side"),
    # "narrow(): length must be non-negative" in the evaluation after training; no foreground.
    ("proposal_generator", "pre_nms_topk", [200, -1],
     r"model\.proposal_generator\.pre_nms_topk\.1=-1: expected a number of proposals >= 1"),
    ("proposal_generator", "positive_fraction", 1.5, r"model\.proposal_generator\.positive_fraction=1\.5: expected a fraction"),
    ("roi_heads", "batch_size_per_image", 0, r"model\.roi_heads\.batch_size_per_image=0: expected a number of samples"),
    ("roi_heads.proposal_matcher", "labels", [0], r"model\.roi_heads\.proposal_matcher\.labels=\[0\]: expected 2 labels"),
    ("roi_heads.box_predictor", "test_score_thresh", 1.0, r"model\.roi_heads\.box_predictor\.test_score_thresh=1\.0: "),
    ("roi_heads.box_predictor.box2box_transform", "weights", [10, 10, 0, 5],
     r"model\.roi_heads\.box_predictor\.box2box_transform\.weights=\[10, 10, 0, 5\]: expected 4 weights, none 0"),
])
def test_lazy_rcnn_head_values_detectron2_fails_on_late_are_refused_naming_the_key(node, name, value, error):
    from omegaconf import OmegaConf

    from dropblock_det.engine.lazy_config_checks import check_lazy_model_values

    cfg = lazy_rcnn_cfg(mask=True)
    check_lazy_model_values(cfg)  # the config as written passes
    OmegaConf.select(cfg.model, node)[name] = value
    with pytest.raises(ValueError, match="^" + error):
        check_lazy_model_values(cfg)


# --- stop 56 ---
@pytest.mark.parametrize("heads", ["Res5ROIHeads", "DropBlockRes5ROIHeads"])
def test_a_dilated_res5_under_a_c4_head_that_builds_it_undilated_is_refused(heads):
    # The C4 head builds res5 itself and reads no MODEL.RESNETS.RES5_DILATION: a C4 config
    # given 2 trained undilated, silently (detectron2's DC5 model dilates the backbone's res5).
    from detectron2.modeling.roi_heads import build_roi_heads
    from detectron2.layers import ShapeSpec

    from dropblock_det.engine.config_checks import check_model_config

    opts = ["MODEL.ROI_HEADS.NAME", heads, "MODEL.DROPBLOCK.RESNET.STAGES", "['res4']", "MODEL.RESNETS.DEPTH", "50",
            "MODEL.RESNETS.RES2_OUT_CHANNELS", "256"]  # ResNet-18/34 take no dilation at all
    cfg = rcnn_cfg(*opts, "MODEL.RESNETS.RES5_DILATION", "2", c4=True)
    res5 = build_roi_heads(cfg, {"res4": ShapeSpec(channels=1024, stride=16)}).res5
    assert {block.conv2.dilation for block in res5} == {(1, 1)}  # what the run trained with
    with pytest.raises(ValueError, match=re.escape(
            f"MODEL.RESNETS.RES5_DILATION=2: MODEL.ROI_HEADS.NAME='{heads}' builds res5 itself, undilated")):
        check_model_config(cfg)
    check_model_config(rcnn_cfg(*opts, c4=True))
