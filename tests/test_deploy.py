"""dropblock_det.deploy: the stock detectron2 config of a dropblock-det model."""
import inspect
import re

import pytest
import torch
from detectron2.config import CfgNode, get_cfg
from detectron2.modeling import build_model
from detectron2.modeling.meta_arch.retinanet import RetinaNet, RetinaNetHead

from conftest import CONFIGS, detection_batch, dropblock_everywhere_cfg
from dropblock_det.deploy import empty_stock_config, needs_deeplab_project, stock_config
from dropblock_det.engine.config_checks import load_config, meta_model
from dropblock_det.layers import iter_regularizers

# Every config of the project that builds a model (the segmentation base config has no head
# inputs of its own).
PROJECT_CONFIGS = sorted(
    str(p.relative_to(CONFIGS)) for p in CONFIGS.rglob("*.yaml") if p.name != "Base-VOC-SemSeg.yaml"
)
# detectron2 v0.6's RetinaNetHead builds its norm with get_norm(norm, 1): GN cannot be built.
STOCK_HEAD_BUILDS_GN = "get_norm(norm, 1)" not in inspect.getsource(RetinaNetHead.__init__)
OUR_NAMES = ("DropBlock", "dropblock")


def _read_as_stock_detectron2(stock: CfgNode) -> CfgNode:
    """`stock` dumped to YAML and read back the way stock detectron2 reads a config file."""
    cfg = empty_stock_config(needs_deeplab_project(stock))
    # load_cfg + merge is what merge_from_file does with the file's text.
    cfg.merge_from_other_cfg(cfg.load_cfg(stock.dump()))
    return cfg


@pytest.mark.parametrize("config", PROJECT_CONFIGS)
def test_every_project_config_has_a_stock_config_with_the_same_parameters(config):
    cfg = load_config(str(CONFIGS / config))
    if cfg.MODEL.META_ARCHITECTURE == "DropBlockRetinaNet" and cfg.MODEL.RETINANET.NORM == "GN" \
            and not STOCK_HEAD_BUILDS_GN:
        with pytest.raises(ValueError, match=r"MODEL\.RETINANET\.NORM='GN'"):
            stock_config(cfg)
        return
    stock = _read_as_stock_detectron2(stock_config(cfg))
    names = [stock.MODEL.META_ARCHITECTURE, stock.MODEL.BACKBONE.NAME, stock.MODEL.SEM_SEG_HEAD.NAME]
    assert not [n for n in names if any(word in n for word in OUR_NAMES)]
    assert "DROPBLOCK" not in stock.MODEL and "CUTOUT" not in stock.INPUT
    ours, theirs = meta_model(cfg), meta_model(stock)
    assert type(theirs).__module__.startswith("detectron2.")
    assert [(k, v.shape) for k, v in theirs.state_dict().items()] == \
        [(k, v.shape) for k, v in ours.state_dict().items()]


def test_a_retinanet_stock_config_reads_into_plain_get_cfg():
    # Without the DeepLab project's keys (SOLVER.POLY_LR_POWER, ...), which get_cfg() lacks:
    # detectron2's tools/deploy/export_model.py reads configs with get_cfg() alone.
    cfg = dropblock_everywhere_cfg(head_norm="")
    stock = stock_config(cfg)
    assert not needs_deeplab_project(stock)
    assert "POLY_LR_POWER" in cfg.SOLVER and "POLY_LR_POWER" not in stock.SOLVER
    assert "SINGLE_CATEGORY_MAX_AREA" not in stock.INPUT.CROP
    plain = get_cfg()
    plain.merge_from_other_cfg(plain.load_cfg(stock.dump()))
    assert plain.MODEL.BACKBONE.NAME == "build_retinanet_resnet_fpn_backbone"


def test_a_deeplab_stock_config_keeps_the_deeplab_projects_keys():
    cfg = load_config(str(CONFIGS / "PascalVOC-SemanticSegmentation" /
                          "deeplab_v3_plus_R_52_GN_scratch_dropblock_res45_head_kp0.9_b7_os16_poly_330k_bs16.yaml"))
    stock = stock_config(cfg)
    assert needs_deeplab_project(stock)
    assert stock.MODEL.SEM_SEG_HEAD.NAME == "DeepLabV3PlusHead"
    assert stock.MODEL.SEM_SEG_HEAD.ASPP_DILATIONS == cfg.MODEL.SEM_SEG_HEAD.ASPP_DILATIONS
    assert stock.MODEL.RESNETS.RES5_MULTI_GRID == cfg.MODEL.RESNETS.RES5_MULTI_GRID


def test_a_deeplab_head_on_a_plain_resnet_backbone_still_needs_the_deeplab_project():
    # DeepLabV3PlusHead reads the DeepLab project's keys (MODEL.SEM_SEG_HEAD.PROJECT_FEATURES,
    # ...) whatever the backbone: dropping them wrote a config stock detectron2 cannot build.
    cfg = load_config(str(CONFIGS / "PascalVOC-SemanticSegmentation" /
                          "deeplab_v3_plus_R_52_GN_scratch_dropblock_res45_head_kp0.9_b7_os16_poly_330k_bs16.yaml"))
    cfg.MODEL.BACKBONE.NAME = "build_dropblock_resnet_backbone"
    assert needs_deeplab_project(cfg)
    stock = stock_config(cfg)
    assert stock.MODEL.BACKBONE.NAME == "build_resnet_backbone" and needs_deeplab_project(stock)
    assert stock.MODEL.SEM_SEG_HEAD.PROJECT_FEATURES == cfg.MODEL.SEM_SEG_HEAD.PROJECT_FEATURES


@pytest.mark.parametrize("backbone, head", [
    ("build_dropblock_resnet_deeplab_backbone", "DropBlockFCNHead"),  # the DeepLab project's backbone alone
    ("build_dropblock_resnet_backbone", "DeepLabV3Head"),  # the DeepLab project's stock V3 head
])
def test_either_a_deeplab_backbone_or_a_deeplab_v3_head_keeps_the_deeplab_projects_keys(backbone, head):
    # The stock model reads the DeepLab project's keys (MODEL.RESNETS.RES5_MULTI_GRID for its
    # backbone, MODEL.SEM_SEG_HEAD.ASPP_* for its heads): dropped, the written config could not
    # be read or built by stock detectron2.
    cfg = load_config(str(CONFIGS / "PascalVOC-SemanticSegmentation" /
                          "deeplab_v3_plus_R_52_GN_scratch_dropblock_res45_head_kp0.9_b7_os16_poly_330k_bs16.yaml"))
    cfg.MODEL.BACKBONE.NAME, cfg.MODEL.SEM_SEG_HEAD.NAME = backbone, head
    stock = stock_config(cfg)
    assert needs_deeplab_project(stock)
    assert stock.MODEL.RESNETS.RES5_MULTI_GRID == cfg.MODEL.RESNETS.RES5_MULTI_GRID
    assert stock.MODEL.SEM_SEG_HEAD.ASPP_CHANNELS == cfg.MODEL.SEM_SEG_HEAD.ASPP_CHANNELS
    assert _read_as_stock_detectron2(stock).MODEL.BACKBONE.NAME == backbone.replace("dropblock_", "")


def test_a_retinanet_head_norm_is_not_checked_on_a_model_without_a_retinanet():
    # MODEL.RETINANET.NORM is read by RetinaNet alone: an R-CNN is deployed whatever it says.
    from conftest import rcnn_cfg

    cfg = rcnn_cfg(c4=True)
    cfg.MODEL.RETINANET.NORM = "GNN"
    assert stock_config(cfg).MODEL.META_ARCHITECTURE == "GeneralizedRCNN"


def test_the_component_advice_names_the_counterpart_or_the_components_of_the_key():
    from conftest import rcnn_cfg
    from dropblock_det.deploy import dropblock_component_advice

    cfg = rcnn_cfg()
    cfg.MODEL.BACKBONE.NAME = "build_resnet_fpn_backbone"
    assert dropblock_component_advice(cfg, "RESNET.ENABLED") == (
        "use dropblock-det's counterpart of 'build_resnet_fpn_backbone': MODEL.BACKBONE.NAME "
        "'build_dropblock_resnet_fpn_backbone'")
    # An R-CNN has no RetinaNet head: it is told to turn the location off, not to become a RetinaNet.
    assert dropblock_component_advice(cfg, "HEAD.ENABLED") == (
        "MODEL.META_ARCHITECTURE='GeneralizedRCNN' builds no RetinaNet head - the HEAD location is the class "
        "and box towers of a RetinaNet: set MODEL.DROPBLOCK.HEAD.ENABLED False for this model")
    cfg.MODEL.META_ARCHITECTURE = "MyDetector"  # not known to build none: the components, as before
    assert dropblock_component_advice(cfg, "HEAD.ENABLED") == (
        "use one of dropblock-det's MODEL.META_ARCHITECTURE components (DropBlockRetinaNet) - the HEAD "
        "location is RetinaNet's head")
    cfg.MODEL.META_ARCHITECTURE = "PanopticFPN"  # builds a semantic-segmentation head
    cfg.MODEL.SEM_SEG_HEAD.NAME = "PanopticFPNHead"  # not the HEAD location: no such sentence
    assert dropblock_component_advice(cfg, "SEM_SEG_HEAD.ENABLED") == (
        "use one of dropblock-det's MODEL.SEM_SEG_HEAD.NAME components (DropBlockDeepLabV3PlusHead, DropBlockFCNHead)")


@pytest.mark.parametrize("arch", ["GeneralizedRCNN", "ProposalNetwork", "RetinaNet", "DropBlockRetinaNet"])
def test_the_sem_seg_head_advice_for_each_model_without_one_is_to_turn_it_off(arch):
    from conftest import rcnn_cfg
    from dropblock_det.deploy import dropblock_component_advice

    cfg = rcnn_cfg()
    cfg.MODEL.META_ARCHITECTURE = arch
    cfg.MODEL.SEM_SEG_HEAD.NAME = "SemSegFPNHead"
    assert dropblock_component_advice(cfg, "SEM_SEG_HEAD.ENABLED").startswith(
        f"MODEL.META_ARCHITECTURE={arch!r} builds no semantic-segmentation head (MODEL.SEM_SEG_HEAD.NAME is unused)")


@pytest.mark.parametrize("arch", ["GeneralizedRCNN", "DropBlockRetinaNet"])
def test_sem_seg_head_on_a_model_without_one_is_told_to_turn_it_off_not_to_name_a_head(arch):
    # These models build no semantic-segmentation head whatever MODEL.SEM_SEG_HEAD.NAME says:
    # the advice was "use dropblock-det's counterpart of 'SemSegFPNHead': MODEL.SEM_SEG_HEAD.NAME
    # 'DropBlockFCNHead'", and with that set, the same refusal again.
    from conftest import rcnn_cfg
    from dropblock_det.engine.config_checks import check_dropblock_placed

    synthetic = CONFIGS / "Synthetic" / "retinanet_R18_GN_dropblock_res45_kp0.9_b3.yaml"
    cfg = rcnn_cfg() if arch == "GeneralizedRCNN" else load_config(str(synthetic), [])
    cfg.MODEL.DROPBLOCK.SEM_SEG_HEAD.ENABLED = True
    for head in ("SemSegFPNHead", "DropBlockFCNHead"):
        cfg.MODEL.SEM_SEG_HEAD.NAME = head
        with pytest.raises(ValueError) as error:
            check_dropblock_placed(cfg, meta_model(cfg))
        message = str(error.value)
        assert message.startswith("MODEL.DROPBLOCK.SEM_SEG_HEAD.ENABLED=True, but the model")
        assert f"MODEL.META_ARCHITECTURE={arch!r} builds no semantic-segmentation head" in message
        assert "set MODEL.DROPBLOCK.SEM_SEG_HEAD.ENABLED False" in message
        assert "MODEL.SEM_SEG_HEAD.NAME 'DropBlockFCNHead'" not in message and "components (" not in message


@pytest.mark.parametrize("arch", ["GeneralizedRCNN", "SemanticSegmentor"])
def test_head_on_a_model_without_a_retinanet_head_is_told_to_turn_it_off_not_to_become_a_retinanet(arch):
    # The advice was "use one of dropblock-det's MODEL.META_ARCHITECTURE components
    # (DropBlockRetinaNet)": another detector, where an R-CNN or a segmenter user meant their own.
    from conftest import rcnn_cfg
    from dropblock_det.engine.config_checks import check_dropblock_placed

    fcn = CONFIGS / "PascalVOC-SemanticSegmentation" / "fcn_R_50_FPN_GN_scratch_dropblock_head_kp0.9_b7_poly_330k_bs16.yaml"
    cfg = rcnn_cfg() if arch == "GeneralizedRCNN" else load_config(str(fcn), [])
    cfg.MODEL.DROPBLOCK.HEAD.ENABLED = True
    with pytest.raises(ValueError) as error:
        check_dropblock_placed(cfg, meta_model(cfg))
    message = str(error.value)
    assert message.startswith("MODEL.DROPBLOCK.HEAD.ENABLED=True, but the model")
    assert f"MODEL.META_ARCHITECTURE={arch!r} builds no RetinaNet head" in message
    assert "set MODEL.DROPBLOCK.HEAD.ENABLED False for this model" in message
    assert "DropBlockRetinaNet" not in message
    assert ("segmentation head is the SEM_SEG_HEAD location" in message) == (arch == "SemanticSegmentor")


def test_a_c4_rcnns_dropblock_res5_head_is_deployed_as_stock_res5roiheads_with_its_parameters():
    from conftest import rcnn_cfg

    cfg = rcnn_cfg("MODEL.ROI_HEADS.NAME", "DropBlockRes5ROIHeads", "MODEL.DROPBLOCK.RESNET.STAGES", "['res4', 'res5']",
                   c4=True)
    stock = _read_as_stock_detectron2(stock_config(cfg))
    assert (stock.MODEL.BACKBONE.NAME, stock.MODEL.ROI_HEADS.NAME) == ("build_resnet_backbone", "Res5ROIHeads")
    shapes = {k: v.shape for k, v in meta_model(cfg).state_dict().items()}
    assert {k: v.shape for k, v in meta_model(stock).state_dict().items()} == shapes


def test_the_users_own_keys_are_kept_and_the_given_config_is_not_changed():
    cfg = dropblock_everywhere_cfg(head_norm="")
    cfg.MODEL.MY_PROJECT = CfgNode({"WIDTH": 3})  # a key of the user's own project
    cfg.freeze()
    before = cfg.dump()
    stock = stock_config(cfg)
    assert stock.MODEL.MY_PROJECT.WIDTH == 3
    assert cfg.dump() == before and cfg.is_frozen()
    assert not stock.is_frozen()


@pytest.mark.parametrize("head_norm", ["", "GN"])
def test_the_stock_model_gives_the_dropblock_models_eval_outputs(head_norm):
    cfg = dropblock_everywhere_cfg(keep_prob=0.7, head_norm=head_norm)
    cfg.MODEL.RETINANET.SCORE_THRESH_TEST = 0.0
    if head_norm == "GN" and not STOCK_HEAD_BUILDS_GN:
        with pytest.raises(ValueError, match=r"MODEL\.RETINANET\.NORM='GN'.*cannot build"):
            stock_config(cfg)
        return
    torch.manual_seed(0)
    ours = build_model(cfg)
    assert len(list(iter_regularizers(ours))) > 40
    with torch.no_grad():  # weights away from their initial values, norms included
        for p in ours.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    stock = build_model(_read_as_stock_detectron2(stock_config(cfg)))
    assert type(stock) is RetinaNet
    stock.load_state_dict(ours.state_dict(), strict=True)
    ours.eval(), stock.eval()
    images = detection_batch(with_instances=False)
    with torch.no_grad():
        for a, b in zip(ours(images), stock(images)):
            a, b = a["instances"], b["instances"]
            assert len(a) > 0
            assert torch.equal(a.pred_boxes.tensor, b.pred_boxes.tensor)
            assert torch.equal(a.scores, b.scores) and torch.equal(a.pred_classes, b.pred_classes)


def test_the_stock_deeplab_model_runs_where_the_training_crops_pooling_kernel_does_not_fit(tmp_path):
    # DropBlockASPP pools globally on a feature map that is not a multiple of the training
    # crop's (almost every PASCAL VOC image); the stock ASPP with that crop's kernel raises.
    from conftest import small_voc_sem_seg_cfg

    cfg = small_voc_sem_seg_cfg(
        "deeplab_v3_plus_R_52_GN_scratch_dropblock_res45_head_kp0.9_b7_os16_poly_330k_bs16.yaml", tmp_path)
    torch.manual_seed(0)
    ours = build_model(cfg).eval()
    with_crop = build_model(_read_as_stock_detectron2(stock_config(cfg))).eval()
    with_crop.load_state_dict(ours.state_dict(), strict=True)
    image = (torch.rand((3, 64, 96), generator=torch.Generator().manual_seed(1)) * 255).to(torch.uint8)
    with pytest.raises(ValueError, match="pool_kernel_size"), torch.no_grad():
        with_crop([{"image": image}])
    # What tools/export_stock_config.py advises: the same model with INPUT.CROP.ENABLED False.
    cfg.INPUT.CROP.ENABLED = False
    stock = build_model(_read_as_stock_detectron2(stock_config(cfg))).eval()
    stock.load_state_dict(ours.state_dict(), strict=True)
    with torch.no_grad():  # res5 4x6 against the 64 px crop's 4x4 kernel
        assert torch.equal(ours([{"image": image}])[0]["sem_seg"], stock([{"image": image}])[0]["sem_seg"])


def test_a_head_norm_no_detectron2_builds_is_named_with_the_real_error():
    cfg = dropblock_everywhere_cfg(head_norm="GNN")
    with pytest.raises(ValueError, match=r"MODEL\.RETINANET\.NORM='GNN': RetinaNetHead cannot build it \(KeyError"):
        stock_config(cfg)


# ----------------------------------------------------------------------------- LazyConfig
LAZY_PROJECT_CONFIGS = sorted(str(p.relative_to(CONFIGS)) for p in CONFIGS.rglob("*.py") if p.parent.name != "common"
                              and "common" not in p.parts)
SYNTHETIC_LAZY = "Synthetic/retinanet_R18_GN_dropblock_res45_kp0.9_b3.py"


def _lazy(config: str, *opts: str):
    from dropblock_det.engine.lazy_config_checks import load_lazy_config

    return load_lazy_config(str(CONFIGS / config), list(opts))


def _perturbed(model: torch.nn.Module) -> torch.nn.Module:
    with torch.no_grad():  # weights away from their initial values, norms included
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    return model.eval()


def _saved_and_loaded(cfg, tmp_path):
    """`cfg` written with LazyConfig.save and read back, as a stock detectron2 user reads it."""
    from detectron2.config import LazyConfig

    path = tmp_path / "stock.yaml"
    LazyConfig.save(cfg, str(path))
    assert not (tmp_path / "stock.yaml.pkl").exists()  # YAML, not the pickle fallback
    return LazyConfig.load(str(path))


def test_lazy_project_configs_are_the_four_twins():
    assert len(LAZY_PROJECT_CONFIGS) == 4 and SYNTHETIC_LAZY in LAZY_PROJECT_CONFIGS


# The evaluator dataset_evaluator picks for each twin's test set (its metadata's evaluator_type).
LAZY_STOCK_EVALUATORS = {"COCO-Detection": "COCOEvaluator", "PascalVOC-Detection": "PascalVOCDetectionEvaluator",
                         "PascalVOC-SemanticSegmentation": "SemSegEvaluator", "Synthetic": "COCOEvaluator"}


@pytest.mark.parametrize("config", LAZY_PROJECT_CONFIGS)
def test_every_lazy_project_config_has_a_stock_config_with_the_same_parameters(config, tmp_path):
    from omegaconf import OmegaConf

    from dropblock_det.deploy import LAZY_EVAL_NODES, lazy_plugin_nodes, lazy_stock_config
    from dropblock_det.engine.lazy_config_checks import lazy_meta_model
    from dropblock_det.engine.checkpoint import state_dict_problems

    cfg = _lazy(config)
    if "retinanet" in config and not STOCK_HEAD_BUILDS_GN:
        with pytest.raises(ValueError, match=r"^model\.head\.norm='GN': this detectron2's own RetinaNetHead cannot"):
            lazy_stock_config(cfg)
        cfg = _lazy(config, "model.head.norm=''")
    before = OmegaConf.to_container(cfg, resolve=False)
    stock = _saved_and_loaded(lazy_stock_config(cfg), tmp_path)
    assert OmegaConf.to_container(cfg, resolve=False) == before  # the given config is not changed
    assert "dropblock" not in stock and "dropblock_schedule" not in stock.train
    left = [key for key, _ in lazy_plugin_nodes(stock)]
    assert not [key for key in left if key.split(".")[0] == "model" or key.startswith(LAZY_EVAL_NODES[1:])]
    assert set(left) <= {"lr_multiplier"}  # the segmentation twin's poly schedule: training only
    text = (tmp_path / "stock.yaml").read_text()
    assert "DropBlock" not in text and all(line.startswith("lr_multiplier:")
                                           for line in text.splitlines() if "dropblock_det" in line)
    ours, theirs = lazy_meta_model(cfg), lazy_meta_model(stock)
    assert not [name for name, _ in iter_regularizers(theirs)]
    assert len(ours.state_dict()) == len(theirs.state_dict()) > 90
    assert state_dict_problems(theirs, ours.state_dict()) == []
    # dataset_evaluator's pick for the test set, which the evaluator still follows.
    from detectron2.utils.registry import locate

    evaluator, name = stock.dataloader.evaluator, LAZY_STOCK_EVALUATORS[config.split("/")[0]]
    assert locate(evaluator._target_).__name__ == name
    assert evaluator._get_node("dataset_name")._value() == "${..test.dataset.names}"
    if name != "PascalVOCDetectionEvaluator":  # which takes no output_dir
        assert evaluator._get_node("output_dir")._value() == "${train.output_dir}/inference"


@pytest.mark.parametrize("shapes_per_level", [True, False])
def test_the_lazy_stock_model_gives_the_dropblock_models_eval_outputs(tmp_path, shapes_per_level):
    from detectron2.config import instantiate

    from dropblock_det.deploy import lazy_stock_config

    head_norm = "GN" if STOCK_HEAD_BUILDS_GN else ""
    cfg = _lazy(SYNTHETIC_LAZY, f"model.head.norm='{head_norm}'", "model.test_score_thresh=0.0",
                "model.head.dropblock_towers=['cls','bbox']", "model.backbone.dropblock_positions=['lateral','output']",
                "model.backbone.bottom_up.stages.drop_path_rate=0.1")
    if not shapes_per_level:  # one shape for every level, which DropBlockRetinaNetHead takes and
        # the stock head asserts against at its first forward
        cfg.model.head.input_shape = cfg.model.head.input_shape[:1]
    torch.manual_seed(0)
    ours = instantiate(cfg.model)
    assert len(list(iter_regularizers(ours))) > 20
    _perturbed(ours)
    stock = _saved_and_loaded(lazy_stock_config(cfg), tmp_path)
    theirs = instantiate(stock.model)
    assert type(theirs) is RetinaNet
    theirs.load_state_dict(ours.state_dict(), strict=True)
    theirs.eval()
    images = detection_batch(with_instances=False)
    with torch.no_grad():
        for a, b in zip(ours(images), theirs(images)):
            a, b = a["instances"], b["instances"]
            assert len(a) > 0
            assert torch.equal(a.pred_boxes.tensor, b.pred_boxes.tensor) and torch.equal(a.scores, b.scores)
    # The evaluation parts build from stock detectron2 too.
    from detectron2.data import DatasetMapper
    from detectron2.evaluation import COCOEvaluator

    assert type(instantiate(stock.dataloader.test.mapper)) is DatasetMapper
    from detectron2.utils.registry import locate

    assert locate(stock.dataloader.evaluator._target_) is COCOEvaluator
    assert stock.dataloader.evaluator.dataset_name == "synthetic_det_val"


def test_the_lazy_stock_deeplab_model_gives_the_dropblock_models_eval_outputs(tmp_path):
    from detectron2.config import instantiate
    from detectron2.layers import ShapeSpec
    from detectron2.modeling import SemanticSegmentor

    from dropblock_det.deploy import lazy_stock_config

    cfg = _lazy("PascalVOC-SemanticSegmentation/deeplab_v3_plus_R_52_GN_scratch_dropblock_res45_head_kp0.9_b7_"
                "os16_poly_330k_bs16.py", "model.sem_seg_head.train_size=[64,64]", "model.sem_seg_head.num_classes=3")
    torch.manual_seed(0)
    ours = _perturbed(instantiate(cfg.model))
    stock = _saved_and_loaded(lazy_stock_config(cfg), tmp_path)
    # The stock head gets a dict of ShapeSpecs, as its signature says (instantiate does not
    # enter a mapping without a _target_: it would get the config nodes, which duck-type).
    assert {k: type(v) for k, v in instantiate(stock.model.sem_seg_head.input_shape).items()} == {
        "res2": ShapeSpec, "res5": ShapeSpec}
    theirs = instantiate(stock.model)
    assert type(theirs) is SemanticSegmentor and type(theirs.sem_seg_head).__name__ == "DeepLabV3PlusHead"
    assert [len(stage) for stage in (theirs.backbone.res4, theirs.backbone.res5)] == [6, 3]
    assert [block.conv2.dilation for block in theirs.backbone.res5] == [(2, 2), (4, 4), (8, 8)]  # multi-grid
    theirs.load_state_dict(ours.state_dict(), strict=True)
    theirs.eval()
    image = (torch.rand((3, 64, 64), generator=torch.Generator().manual_seed(1)) * 255).to(torch.uint8)
    with torch.no_grad():  # the stock ASPP pools with the 64 px crop's 4x4 kernel: the whole map here
        assert torch.equal(ours([{"image": image}])[0]["sem_seg"], theirs([{"image": image}])[0]["sem_seg"])


def test_a_lazy_c4_rcnn_with_dropblock_blocks_in_its_roi_head_gets_stock_blocks(tmp_path):
    from detectron2.config import instantiate
    from detectron2.modeling.backbone.resnet import BasicBlock

    from conftest import lazy_rcnn_cfg
    from dropblock_det.deploy import lazy_plugin_nodes, lazy_stock_config
    from dropblock_det.modeling import DropBlockBasicBlock

    cfg = lazy_rcnn_cfg(c4=True)
    cfg.model.backbone.stages.dropblock_stages = ["res4"]
    cfg.model.roi_heads.res5.update(block_class=DropBlockBasicBlock, dropblock="${dropblock}",
                                    dropblock_positions=["conv1", "shortcut"], drop_path_keep_prob_per_block=[0.9])
    torch.manual_seed(0)
    ours = _perturbed(instantiate(cfg.model))
    assert [n for n, _ in iter_regularizers(ours) if n.startswith("roi_heads.res5")]
    stock = _saved_and_loaded(lazy_stock_config(cfg), tmp_path)
    assert stock.model.roi_heads.res5.block_class is BasicBlock
    assert not {"dropblock", "dropblock_positions", "drop_path_keep_prob_per_block"} & set(stock.model.roi_heads.res5)
    assert lazy_plugin_nodes(stock) == []
    theirs = instantiate(stock.model)
    theirs.load_state_dict(ours.state_dict(), strict=True)
    theirs.eval()
    image = (torch.rand((3, 64, 64), generator=torch.Generator().manual_seed(2)) * 255).to(torch.uint8)
    with torch.no_grad():
        a, b = ours([{"image": image}])[0]["instances"], theirs([{"image": image}])[0]["instances"]
    assert torch.equal(a.pred_boxes.tensor, b.pred_boxes.tensor) and torch.equal(a.scores, b.scores)


class _StemWithDropout(torch.nn.Module):  # a user's own component taking a regularizer
    def __init__(self, dropout=None):
        super().__init__()
        self.dropout = dropout


@pytest.mark.parametrize("given_as", ["a node", "a class", "a target that does not import", "the model"])
def test_a_dropblock_component_with_no_stock_counterpart_in_the_model_is_named(given_as):
    # Not refused, each was written into a "stock" config that builds only where
    # dropblock-det is installed (or nowhere).
    from detectron2.config import LazyCall as L

    from dropblock_det.deploy import lazy_stock_config
    from dropblock_det.layers import DropBlock2d

    cfg = _lazy(SYNTHETIC_LAZY, "model.head.norm=''")
    key, target = "model.backbone.bottom_up.stem.dropout", r"dropblock_det\.layers\..*DropBlock2d"
    if given_as == "a node":
        cfg.model.backbone.bottom_up.stem = L(_StemWithDropout)(dropout=L(DropBlock2d)(keep_prob=0.9, block_size=3))
    elif given_as == "a class":  # built by the component itself
        cfg.model.backbone.bottom_up.stem = L(_StemWithDropout)(dropout=DropBlock2d)
    elif given_as == "a target that does not import":  # e.g. a config of another dropblock-det version
        cfg.model.backbone.bottom_up.stem = L(_StemWithDropout)(dropout={"_target_": "dropblock_det.layers.DropBlock3d"})
        target = r"dropblock_det\.layers\.DropBlock3d"
    else:
        cfg.model._target_ = "dropblock_det.modeling.DropBlockPanopticFPN"
        key, target = "model", r"dropblock_det\.modeling\.DropBlockPanopticFPN"
    with pytest.raises(ValueError, match=rf"^{re.escape(key)}: {target} has no stock detectron2 counterpart"):
        lazy_stock_config(cfg)


def test_the_regularizer_arguments_of_a_users_own_component_are_kept():
    # Only dropblock-det's components (or those given one of its classes) go without them.
    from detectron2.config import LazyCall as L

    from dropblock_det.deploy import lazy_stock_config

    cfg = _lazy(SYNTHETIC_LAZY, "model.head.norm=''")
    cfg.model.backbone.bottom_up.stem = L(_StemWithDropout)(dropout=0.1, drop_path_keep_prob=0.8)
    stem = lazy_stock_config(cfg).model.backbone.bottom_up.stem
    assert (stem.dropout, stem.drop_path_keep_prob) == (0.1, 0.8)


@pytest.mark.parametrize("norm", ["", "BN"])
def test_a_lazy_head_with_one_input_shape_gets_one_per_level_or_is_refused_with_per_level_bn(norm):
    # Without per-level norms one shape stands for all five levels, and the stock head
    # needs five; with BN the count is part of the model (one BN per entry): no stock twin.
    from detectron2.config import LazyCall as L, instantiate
    from detectron2.layers import ShapeSpec

    from dropblock_det.deploy import lazy_stock_config

    cfg = _lazy(SYNTHETIC_LAZY, f"model.head.norm='{norm}'")
    cfg.model.head.input_shape = [L(ShapeSpec)(channels=64)]
    if norm == "BN":
        with pytest.raises(ValueError, match=r"^model\.head\.input_shape: 1 ShapeSpec\(s\) for the 5 levels"):
            lazy_stock_config(cfg)
        return
    stock = lazy_stock_config(cfg)
    assert len(stock.model.head.input_shape) == 5
    ours, theirs = instantiate(cfg.model), instantiate(stock.model)
    assert list(ours.state_dict()) == list(theirs.state_dict())


def test_lazy_interpolations_are_kept_except_those_into_the_removed_nodes(tmp_path):
    from dropblock_det.deploy import lazy_stock_config

    cfg = _lazy(SYNTHETIC_LAZY, "model.head.norm=''")
    cfg.train.note = "${dropblock.block_size}"  # a user's key reading the removed node
    stock = _saved_and_loaded(lazy_stock_config(cfg), tmp_path)
    assert stock.train.note == 3
    text = (tmp_path / "stock.yaml").read_text()
    assert "${dropblock" not in text
    stock.train.output_dir = "elsewhere"
    assert stock.dataloader.evaluator.output_dir == "elsewhere/inference"
    assert stock.model.head.input_shape[0].channels == 64  # `${....backbone.out_channels}`, kept


def test_lazy_interpolations_inside_a_string_or_relative_into_the_removed_nodes_are_replaced(tmp_path):
    from dropblock_det.deploy import lazy_stock_config

    cfg = _lazy(SYNTHETIC_LAZY, "model.head.norm=''")
    cfg.train.note = "kp${dropblock.keep_prob}_b${dropblock.block_size}"  # e.g. a run name
    cfg.train.relative = "${..dropblock.keep_prob}"  # the top-level node, from train
    cfg.train.kept = "${.note}"
    stock = _saved_and_loaded(lazy_stock_config(cfg), tmp_path)
    assert (stock.train.note, stock.train.relative, stock.train.kept) == ("kp0.9_b3", 0.9, "kp0.9_b3")
    assert "${dropblock" not in (tmp_path / "stock.yaml").read_text()


@pytest.mark.parametrize("names, why", [
    ("my_own_val", "not a dataset registered in this process"),
    ("[synthetic_det_val]", r"not one dataset name \(detectron2's evaluators take one\)"),
    ("lvis_v1_val", r"a dataset whose metadata evaluator_type is 'lvis', which dataset_evaluator has no evaluator for "
                    r"\(supported: 'coco', 'pascal_voc', 'sem_seg'\)"),
])
def test_a_lazy_dataset_evaluator_whose_evaluator_is_unknown_here_is_named(names, why):
    from dropblock_det.deploy import lazy_stock_config

    cfg = _lazy(SYNTHETIC_LAZY, "model.head.norm=''", f"dataloader.test.dataset.names={names}")
    with pytest.raises(ValueError, match=rf"^dataloader\.evaluator\.dataset_name=.*{why}.*write "
                                         r"dataloader\.evaluator as detectron2's evaluator itself"):
        lazy_stock_config(cfg)


@pytest.mark.parametrize("compiled", [True, False])
def test_the_lazy_stock_coco_evaluator_uses_the_fast_implementation_only_with_compiled_operators(
        monkeypatch, compiled):
    from dropblock_det.engine import evaluation
    from dropblock_det.deploy import lazy_stock_config

    # Without them detectron2's default (fast) COCOEvaluator raises ImportError at the end of
    # the evaluation; dataset_evaluator, which the config had, does not use it there.
    monkeypatch.setattr(evaluation, "has_compiled_ops", lambda: compiled)
    stock = lazy_stock_config(_lazy(SYNTHETIC_LAZY, "model.head.norm=''"))
    assert stock.dataloader.evaluator.use_fast_impl is compiled


def test_lazy_interpolations_into_the_resnet_stages_node_or_a_removed_argument_are_replaced_by_their_values(tmp_path):
    from dropblock_det.deploy import lazy_stock_config

    # make_dropblock_resnet_stages' node becomes a list of stages: its keys are gone there.
    cfg = _lazy(SYNTHETIC_LAZY, "model.head.norm=''")
    cfg.model.backbone.bottom_up.stem.norm = "${..stages.norm}"  # one norm for the whole ResNet
    cfg.model.backbone.norm = "${.bottom_up.stages.norm}"
    cfg.train.depth = "${model.backbone.bottom_up.stages.depth}"
    cfg.train.positions = "${model.backbone.dropblock_positions}"  # an argument the stock FPN goes without
    stock = _saved_and_loaded(lazy_stock_config(cfg), tmp_path)
    assert (stock.model.backbone.bottom_up.stem.norm, stock.model.backbone.norm, stock.train.depth) == ("GN", "GN", 18)
    assert stock.train.positions == [] and "dropblock_positions" not in stock.model.backbone
    assert stock.model.head.input_shape[0].channels == 64 and "${....backbone.out_channels}" in (
        tmp_path / "stock.yaml").read_text()  # the others kept


@pytest.mark.parametrize("given_as", ["written in the test mapper", "read from the train mapper"])
def test_a_training_augmentation_in_the_lazy_test_loader_is_named_even_through_an_interpolation(given_as):
    # The stock test loader would build Cutout, which only dropblock-det has; through an
    # interpolation it used to stay unseen (the interpolation was kept, its node not visited).
    from detectron2.config import LazyCall as L

    from dropblock_det.data.cutout import Cutout
    from dropblock_det.deploy import lazy_stock_config

    cfg = _lazy(SYNTHETIC_LAZY, "model.head.norm=''")
    cutout = L(Cutout)(size=8)
    if given_as == "written in the test mapper":
        cfg.dataloader.test.mapper.augmentations.append(cutout)
        key = "dataloader.test.mapper.augmentations.1"
    else:
        cfg.dataloader.train.mapper.augmentations.append(cutout)
        cfg.dataloader.test.mapper.augmentations = "${dataloader.train.mapper.augmentations}"
        key = "dataloader.test.mapper.augmentations.2"
    with pytest.raises(ValueError, match=rf"^{re.escape(key)}: dropblock_det\.data\.cutout\.Cutout has no stock "
                                         r"detectron2 counterpart .*evaluating builds this node"):
        lazy_stock_config(cfg)


def test_a_component_with_no_stock_counterpart_read_into_the_model_through_an_interpolation_is_named():
    # `model.backbone.bottom_up.stem = "${my_stem}"`: the stock model would build the user's
    # node, DropBlock2d and all; it used to be taken as a training-only node.
    from detectron2.config import LazyCall as L

    from dropblock_det.deploy import lazy_stock_config
    from dropblock_det.layers import DropBlock2d

    cfg = _lazy(SYNTHETIC_LAZY, "model.head.norm=''")
    cfg.my_stem = L(_StemWithDropout)(dropout=L(DropBlock2d)(keep_prob=0.9, block_size=3))
    cfg.model.backbone.bottom_up.stem = "${my_stem}"
    with pytest.raises(ValueError, match=r"^model\.backbone\.bottom_up\.stem\.dropout: dropblock_det\.layers\..*"
                                         r"DropBlock2d has no stock detectron2 counterpart \(dropblock-det's [^;]*$"):
        lazy_stock_config(cfg)
    del cfg.my_stem.dropout  # the user's own stem then stays read through the interpolation
    stock = lazy_stock_config(cfg)
    assert stock.model.backbone.bottom_up._get_node("stem")._value() == "${my_stem}"


def test_a_set_registered_by_detectron2_is_told_apart_from_the_plugins_and_a_users_own():
    from detectron2.data import DatasetCatalog

    from dropblock_det.deploy import datasets_not_registered_by_detectron2

    DatasetCatalog.register("my_own_set_for_deploy_test", lambda: [])
    try:
        assert datasets_not_registered_by_detectron2(
            ["coco_2017_val", "voc_2007_test", "voc_2012_sem_seg_val", "my_own_set_for_deploy_test", "unregistered"]
        ) == [("voc_2012_sem_seg_val", "dropblock_det.data.voc_sem_seg"), ("my_own_set_for_deploy_test", __name__)]
    finally:
        DatasetCatalog.remove("my_own_set_for_deploy_test")


# --- mutation run 51: behaviour the tests above left unpinned --------------------------------


@pytest.mark.skipif(STOCK_HEAD_BUILDS_GN, reason="this detectron2's RetinaNetHead builds GN: nothing to refuse")
def test_a_gn_retinanet_head_this_detectron2_cannot_build_is_refused_with_what_to_do_instead():
    # detectron2 v0.6's RetinaNetHead cannot build GN: the refusal says how to serve the model
    # anyway, not only which error the stock head raised.
    with pytest.raises(ValueError, match=r"^MODEL\.RETINANET\.NORM='GN': this detectron2's own RetinaNetHead "
                                         r".*serve the DropBlockRetinaNet model in eval mode, or use current detectron2$"):
        stock_config(dropblock_everywhere_cfg(head_norm="GN"))


def test_a_lazy_node_reading_the_model_through_an_interpolation_reads_the_stock_model():
    # `train.ema_model = "${model}"`: the interpolation is kept, and reads the rewritten model;
    # the model's components are not counted a second time under the reading key.
    from dropblock_det.deploy import lazy_plugin_nodes, lazy_stock_config

    cfg = _lazy(SYNTHETIC_LAZY, "model.head.norm=''")
    cfg.train.ema_model = "${model}"
    stock = lazy_stock_config(cfg)
    assert stock.train._get_node("ema_model")._value() == "${model}"
    assert lazy_plugin_nodes(stock) == []
    assert stock.train.ema_model._target_ is RetinaNet


def test_a_dropblock_component_with_no_stock_counterpart_in_the_lazy_evaluator_is_named():
    # detectron2's --eval-only builds dataloader.evaluator too: a dropblock-det function there
    # (the yacs tools' build_evaluator) is refused, not listed as a training-only node.
    from detectron2.config import LazyCall as L

    from dropblock_det.deploy import lazy_stock_config
    from dropblock_det.engine.evaluation import build_evaluator

    cfg = _lazy(SYNTHETIC_LAZY, "model.head.norm=''")
    cfg.dataloader.evaluator = L(build_evaluator)(cfg=None, dataset_name="${..test.dataset.names}")
    with pytest.raises(ValueError, match=r"^dataloader\.evaluator: dropblock_det\.engine\.evaluation\.build_evaluator "
                                         r"has no stock detectron2 counterpart .*evaluating builds this node"):
        lazy_stock_config(cfg)


def test_a_users_own_top_level_dropblock_node_that_builds_nothing_of_dropblock_det_is_kept():
    # Only dropblock-det's training-only nodes are left out: a user's node of the same name
    # that builds no dropblock-det component stays, as every other key of the user's own.
    from dropblock_det.deploy import lazy_stock_config

    cfg = _lazy(SYNTHETIC_LAZY, "model.head.norm=''")
    cfg.dropblock = {"note": "the user's own"}
    cfg.train.dropblock_schedule = {"note": "the user's own too"}
    stock = lazy_stock_config(cfg)
    assert stock.dropblock.note == "the user's own"
    assert stock.train.dropblock_schedule.note == "the user's own too"


def test_the_lazy_eval_nodes_are_the_three_and_what_is_under_them_only():
    from dropblock_det.deploy import in_lazy_eval_nodes

    for key in ("model", "model.backbone.bottom_up", "dataloader.test", "dataloader.test.mapper.augmentations.0",
                "dataloader.evaluator", "dataloader.evaluator.dataset_name"):
        assert in_lazy_eval_nodes(key), key
    # Keys that only begin like one: a teacher model, a second test loader the user's own code builds.
    for key in ("model_teacher", "model_teacher.backbone", "dataloader.test_hard", "dataloader.evaluators",
                "dataloader.train", "dataloader", "train.model"):
        assert not in_lazy_eval_nodes(key), key


def test_a_lazy_training_node_reading_a_dropblock_det_component_through_an_interpolation_keeps_it():
    # Only interpolations inside the eval nodes are replaced by their values: the training
    # loader's stays as the user wrote it, and still reads the (training-only) Cutout.
    from detectron2.config import LazyCall as L

    from dropblock_det.data.cutout import Cutout
    from dropblock_det.deploy import lazy_plugin_nodes, lazy_stock_config

    cfg = _lazy(SYNTHETIC_LAZY, "model.head.norm=''")
    cfg.train_augmentations = list(cfg.dataloader.train.mapper.augmentations) + [L(Cutout)(size=8)]
    cfg.dataloader.train.mapper.augmentations = "${train_augmentations}"
    stock = lazy_stock_config(cfg)
    assert stock.dataloader.train.mapper._get_node("augmentations")._value() == "${train_augmentations}"
    assert [key for key, _ in lazy_plugin_nodes(stock)] == [f"train_augmentations.{len(cfg.train_augmentations) - 1}"]


# Mutation run 53
@pytest.mark.parametrize("arch, segments", [("GeneralizedRCNN", False), ("ProposalNetwork", False),
                                            ("SemanticSegmentor", True), ("PanopticFPN", True)])
def test_the_head_advice_for_each_model_without_a_retinanet_head_is_to_turn_it_off(arch, segments):
    from conftest import rcnn_cfg
    from dropblock_det.deploy import dropblock_component_advice

    cfg = rcnn_cfg()
    cfg.MODEL.META_ARCHITECTURE = arch
    assert dropblock_component_advice(cfg, "HEAD.ENABLED") == (
        f"MODEL.META_ARCHITECTURE={arch!r} builds no RetinaNet head - the HEAD location is the class and box towers "
        "of a RetinaNet" + (" (this model's segmentation head is the SEM_SEG_HEAD location)" if segments else "")
        + ": set MODEL.DROPBLOCK.HEAD.ENABLED False for this model")


# --- coverage audit 55b ---
def test_lazy_stock_config_names_an_interpolation_that_does_not_resolve_in_one_line():
    # The rewrite read every node: OmegaConf's 3-line InterpolationKeyError came out of it.
    from dropblock_det.deploy import lazy_stock_config

    cfg = _lazy("Synthetic/retinanet_R18_GN_dropblock_res45_kp0.9_b3.py", "model.head.norm=''")
    cfg.dataloader.test.num_workers = "${nope}"
    with pytest.raises(ValueError, match=r"^dataloader\.test\.num_workers=\$\{nope\}: InterpolationKeyError: "
                                         r"Interpolation key 'nope' not found[^\n]*$"):
        lazy_stock_config(cfg)


def test_lazy_stock_config_keeps_missing_values_and_a_head_without_shapes():
    # What the stock config cannot know is kept as written for LazyConfig.load / the build to
    # name: a missing value (???), a head whose input_shape the RetinaNet is left to give (no
    # per-level copies made of nothing).
    from dropblock_det.deploy import lazy_stock_config

    cfg = _lazy("Synthetic/retinanet_R18_GN_dropblock_res45_kp0.9_b3.py", "model.head.norm=''")
    cfg.train.coverage_audit_missing = "???"
    del cfg.model.head.input_shape
    stock = lazy_stock_config(cfg)
    assert stock.train._get_node("coverage_audit_missing")._is_missing()
    assert "input_shape" not in stock.model.head
    assert stock.model.head._target_.__name__ == "RetinaNetHead"


# --- mutation 59D ---


def _away_from(value):
    """A value of the same type as the config value `value` that differs from it."""
    if isinstance(value, bool):
        return not value
    if isinstance(value, (int, float)):
        return value + 7
    if isinstance(value, str):
        return value + "_other"
    if isinstance(value, (list, tuple)) and value:
        return type(value)(list(value) + [value[-1]])
    return None  # an empty list, or a key of no stock default


def _plain(value):
    return [_plain(v) for v in value] if isinstance(value, (list, tuple)) else value


@pytest.mark.parametrize("config", [None, "PascalVOC-SemanticSegmentation/deeplab_v3_plus_R_52_GN_scratch_"
                                          "dropblock_res45_head_kp0.9_b7_os16_poly_330k_bs16.yaml"])
def test_every_key_stock_detectron2_reads_keeps_the_trained_configs_value(config):
    # Each key of stock detectron2's schema (the DeepLab project's too, for a DeepLab model)
    # set away from its value: a key the stock config dropped or changed would be read back
    # as detectron2's default, building another model (norm, FREEZE_AT, strides, widths,
    # anchors, NUM_CLASSES, pixel mean/std, INPUT.FORMAT, test sizes and thresholds).
    from dropblock_det.config import flatten_config
    from dropblock_det.deploy import STOCK_COMPONENTS

    cfg = dropblock_everywhere_cfg(head_norm="") if config is None else load_config(str(CONFIGS / config))
    cfg.defrost()
    deeplab = needs_deeplab_project(stock_config(cfg))
    assert deeplab == (config is not None)
    schema = flatten_config(empty_stock_config(deeplab))
    changed = {}
    for key, value in flatten_config(cfg).items():
        new = _away_from(schema.get(key))  # away from the default a dropped key is read back as
        # The head norm is the one value not taken as given (a norm no stock head builds is refused).
        if key in schema and key not in STOCK_COMPONENTS and key != "MODEL.RETINANET.NORM" and new is not None:
            *parents, last = key.split(".")
            node = cfg
            for part in parents:
                node = node[part]
            node[last] = changed[key] = new
    assert len(changed) > 150
    stock = flatten_config(_read_as_stock_detectron2(stock_config(cfg)))
    assert {key: _plain(stock[key]) for key in changed if _plain(stock[key]) != _plain(changed[key])} == {}


def test_the_component_advice_for_a_c4_rcnns_res5_names_the_roi_heads_counterpart():
    # A C4 R-CNN's res5 is its ROI head's (MODEL.ROI_HEADS.NAME), not the backbone's: the key
    # given is the one advised on.
    from conftest import rcnn_cfg
    from dropblock_det.deploy import dropblock_component_advice

    cfg = rcnn_cfg()
    cfg.MODEL.ROI_HEADS.NAME = "Res5ROIHeads"
    assert dropblock_component_advice(cfg, "RESNET.ENABLED", "MODEL.ROI_HEADS.NAME") == (
        "use dropblock-det's counterpart of 'Res5ROIHeads': MODEL.ROI_HEADS.NAME 'DropBlockRes5ROIHeads'")


@pytest.mark.parametrize("ours, theirs", [
    ("DropBlockBottleneckBlock", "detectron2.modeling.backbone.resnet.BottleneckBlock"),
    ("DropBlockBasicBlock", "detectron2.modeling.backbone.resnet.BasicBlock"),
    ("DropBlockRes5ROIHeads", "detectron2.modeling.roi_heads.Res5ROIHeads"),
    ("DropBlockFCNHead", "detectron2.modeling.meta_arch.semantic_seg.SemSegFPNHead"),
    ("DropBlockDeepLabV3PlusHead", "detectron2.projects.deeplab.DeepLabV3PlusHead"),
])
def test_each_lazy_dropblock_component_with_a_stock_counterpart_is_written_as_it(ours, theirs):
    # Built as a node (a C4 R-CNN's roi_heads, an FCN's sem_seg_head) or given as a value
    # (block_class=): no project .py config builds these, and a component left out of the
    # replacements was refused as having no stock counterpart.
    from detectron2.config import LazyCall
    from detectron2.utils.registry import locate
    from omegaconf import OmegaConf

    import dropblock_det.modeling
    from dropblock_det.deploy import lazy_plugin_nodes, lazy_stock_config

    component = getattr(dropblock_det.modeling, ours)
    cfg = OmegaConf.create({"model": LazyCall(component)(dropblock=None, dropblock_positions=["conv1"]),
                            "dataloader": {"test": {"block_class": component}}}, flags={"allow_objects": True})
    stock = lazy_stock_config(cfg)
    assert stock.model._target_ is locate(theirs)
    assert set(stock.model) == {"_target_"}
    assert stock.dataloader.test.block_class is locate(theirs)
    assert lazy_plugin_nodes(stock) == []
