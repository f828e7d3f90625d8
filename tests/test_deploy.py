"""dropblock_det.deploy: the stock detectron2 config of a dropblock-det model."""
import inspect

import pytest
import torch
from detectron2.config import CfgNode, get_cfg
from detectron2.modeling import build_model
from detectron2.modeling.meta_arch.retinanet import RetinaNet, RetinaNetHead

from conftest import CONFIGS, detection_batch, dropblock_everywhere_cfg
from dropblock_det.deploy import empty_stock_config, needs_deeplab_project, stock_config
from dropblock_det.engine.trainer import load_config, meta_model
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
                          "deeplab_v3_plus_R_50_GN_scratch_dropblock_res45_head_kp0.9_b7_os16_poly_330k_bs16.yaml"))
    stock = stock_config(cfg)
    assert needs_deeplab_project(stock)
    assert stock.MODEL.SEM_SEG_HEAD.NAME == "DeepLabV3PlusHead"
    assert stock.MODEL.SEM_SEG_HEAD.ASPP_DILATIONS == cfg.MODEL.SEM_SEG_HEAD.ASPP_DILATIONS
    assert stock.MODEL.RESNETS.RES5_MULTI_GRID == cfg.MODEL.RESNETS.RES5_MULTI_GRID


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
        "deeplab_v3_plus_R_50_GN_scratch_dropblock_res45_head_kp0.9_b7_os16_poly_330k_bs16.yaml", tmp_path)
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
