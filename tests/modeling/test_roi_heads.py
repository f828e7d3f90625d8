"""DropBlockRes5ROIHeads: a C4 R-CNN (Base-RCNN-C4.yaml) whose ROI-head res5 has DropBlock."""
import pytest
import torch

from conftest import rcnn_cfg

C4_RES45 = ("MODEL.ROI_HEADS.NAME", "DropBlockRes5ROIHeads", "MODEL.DROPBLOCK.RESNET.STAGES", "['res4', 'res5']",
            "MODEL.DROPBLOCK.RESNET.STAGE_DROP_SCALES", "[0.25, 1.0]")


def _build(cfg, seed=0):
    from detectron2.modeling import build_model

    torch.manual_seed(seed)
    return build_model(cfg)


def _images(seed=0):
    generator = torch.Generator().manual_seed(seed)
    return [{"image": torch.randint(0, 256, (3, 64, 80), generator=generator).float(), "height": 64, "width": 80,
             "instances": _boxes()} for _ in range(2)]


def _boxes():
    from detectron2.structures import Boxes, Instances

    instances = Instances((64, 80))
    instances.gt_boxes = Boxes(torch.tensor([[8.0, 8.0, 40.0, 48.0], [30.0, 10.0, 70.0, 30.0]]))
    instances.gt_classes = torch.tensor([0, 2])
    return instances


def test_res5_of_the_roi_head_gets_the_res5_regularizers_and_the_stock_weights():
    from dropblock_det.layers import DropBlock2d, iter_regularizers

    model = _build(rcnn_cfg(*C4_RES45, c4=True))
    regularizers = dict(iter_regularizers(model))
    # R18 backbone res4: conv1, conv2, shortcut of 2 basic blocks at 1/4 of the drop rate;
    # the head's res5: 3 bottleneck blocks, every position, the full rate.
    assert {name for name in regularizers if name.startswith("roi_heads.")} == {
        f"roi_heads.res5.{block}.dropblock_{position}" for block in range(3)
        for position in ("conv1", "conv2", "conv3", "shortcut")}
    assert {name.split(".")[1] for name in regularizers if name.startswith("backbone.")} == {"res4"}
    assert {round(m.target_keep_prob, 6) for n, m in regularizers.items() if n.startswith("roi_heads.")} == {0.9}
    assert {round(m.target_keep_prob, 6) for n, m in regularizers.items() if n.startswith("backbone.")} == {0.975}
    assert all(isinstance(m, DropBlock2d) and m.block_size == 3 for m in regularizers.values())
    # The stock head at the same seed: the same parameters and buffers, the same draws after.
    stock = _build(rcnn_cfg(*C4_RES45[2:], "MODEL.DROPBLOCK.RESNET.STAGES", "['res4']",
                            "MODEL.DROPBLOCK.RESNET.STAGE_DROP_SCALES", "[0.25]", c4=True))
    assert type(stock.roi_heads).__name__ == "Res5ROIHeads"
    ours, theirs = model.state_dict(), stock.state_dict()
    assert ours.keys() == theirs.keys() and all(torch.equal(ours[k], theirs[k]) for k in ours)
    # In eval mode every regularizer is the identity: the stock model's detections.
    model.eval(), stock.eval()
    with torch.no_grad():
        a, b = model(_images()), stock(_images())
    assert all(torch.equal(x["instances"].pred_boxes.tensor, y["instances"].pred_boxes.tensor) for x, y in zip(a, b))


def test_training_runs_the_res5_regularizers_and_the_schedule_reaches_them():
    from detectron2.utils.events import EventStorage

    from dropblock_det.engine.hooks import DropBlockScheduleHook

    cfg = rcnn_cfg(*C4_RES45, "SOLVER.MAX_ITER", "10", c4=True)
    model = _build(cfg).train()
    hook = DropBlockScheduleHook.from_config(cfg, model=model)
    with EventStorage(5) as storage:
        hook.trainer = type("Trainer", (), {"max_iter": 10, "iter": 5, "model": model, "storage": storage})()
        hook.before_train()
        hook.before_step()
        res5 = model.roi_heads.res5
        assert res5[0].dropblock_conv1.keep_prob == pytest.approx(1 - 0.1 * 5 / 10)
        calls = []
        handles = [m.register_forward_hook(lambda *_: calls.append(1)) for m in res5.modules()
                   if type(m).__name__ == "DropBlock2d"]
        losses = model(_images())
    sum(losses.values()).backward()
    for handle in handles:
        handle.remove()
    # Each block's conv1 and conv2 regularizers run as modules (the ReLU'd branch); conv3
    # and shortcut are handed the residual sum by the block.
    assert len(calls) >= 6 and all(torch.isfinite(v) for v in losses.values())


def test_the_checks_accept_res5_in_the_head_and_the_stock_config_maps_it_back(tmp_path):
    from detectron2.config import get_cfg

    from dropblock_det.config import built_resnet_stages, validate_dropblock_config
    from dropblock_det.deploy import stock_config
    from dropblock_det.engine.config_checks import check_model_config
    from dropblock_det.layers import iter_regularizers

    cfg = rcnn_cfg(*C4_RES45, c4=True)
    validate_dropblock_config(cfg)
    assert built_resnet_stages(cfg) == ["res2", "res3", "res4", "res5"]
    assert any(name.startswith("roi_heads.res5.") for name, _ in iter_regularizers(check_model_config(cfg)))
    # Not a RetinaNet's business: its config's default ROI_HEADS.NAME is Res5ROIHeads.
    retina = rcnn_cfg("MODEL.ROI_HEADS.NAME", "DropBlockRes5ROIHeads", "MODEL.META_ARCHITECTURE", "DropBlockRetinaNet",
                      c4=True)
    assert "res5" not in built_resnet_stages(retina)
    stock = stock_config(cfg)
    assert stock.MODEL.ROI_HEADS.NAME == "Res5ROIHeads" and stock.MODEL.BACKBONE.NAME == "build_resnet_backbone"
    path = tmp_path / "stock.yaml"
    path.write_text(stock.dump())
    fresh = get_cfg()
    fresh.merge_from_file(str(path))
    ours, theirs = _build(cfg).state_dict(), _build(fresh).state_dict()
    assert ours.keys() == theirs.keys() and all(torch.equal(ours[k], theirs[k]) for k in ours)


def test_conv3_may_be_named_for_the_heads_res5_alone_on_a_resnet_with_basic_blocks():
    from dropblock_det.layers import iter_regularizers

    # The head's res5 is bottleneck blocks whatever MODEL.RESNETS.DEPTH is; the R18
    # backbone's basic blocks have no conv3, which was refused though no backbone stage
    # had DropBlock.
    opts = ("MODEL.ROI_HEADS.NAME", "DropBlockRes5ROIHeads", "MODEL.DROPBLOCK.RESNET.POSITIONS", "['conv3']")
    model = _build(rcnn_cfg(*opts, "MODEL.DROPBLOCK.RESNET.STAGES", "['res5']", c4=True))
    assert [name for name, _ in iter_regularizers(model)] == [f"roi_heads.res5.{b}.dropblock_conv3" for b in range(3)]
    # Where a backbone stage would get it too, nothing would be placed there: still refused.
    with pytest.raises(ValueError, match=r"POSITIONS=\['conv3'\]: MODEL\.RESNETS\.DEPTH=18 has basic blocks"):
        _build(rcnn_cfg(*opts, "MODEL.DROPBLOCK.RESNET.STAGES", "['res4', 'res5']", c4=True))


def test_a_head_without_res5_in_the_stages_adds_nothing():
    model = _build(rcnn_cfg("MODEL.ROI_HEADS.NAME", "DropBlockRes5ROIHeads", c4=True))  # STAGES ['res4']
    assert not [name for name, _ in model.roi_heads.named_modules() if "dropblock" in name or "drop_path" in name]
    model = _build(rcnn_cfg("MODEL.ROI_HEADS.NAME", "DropBlockRes5ROIHeads", "MODEL.DROPBLOCK.DROP_PATH_RATE", "0.2",
                            c4=True))
    assert [type(block.drop_path).__name__ for block in model.roi_heads.res5] == ["DropPath"] * 3


def test_a_feature_the_backbone_lacks_is_refused_naming_the_key_when_the_head_is_built():
    # detectron2's Res5ROIHeads read it with a bare KeyError: 'res5'.
    from detectron2.layers import ShapeSpec
    from detectron2.modeling.roi_heads import build_roi_heads

    cfg = rcnn_cfg(*C4_RES45, "MODEL.ROI_HEADS.IN_FEATURES", "['res5']", c4=True)
    with pytest.raises(ValueError, match=r"^MODEL\.ROI_HEADS\.IN_FEATURES=\['res5'\]: 'res5' not among the "
                                         r"backbone's outputs \['res4'\] \(MODEL\.BACKBONE\.NAME="):
        build_roi_heads(cfg, {"res4": ShapeSpec(channels=256, stride=16)})


def test_the_head_checks_the_dropblock_config_itself_with_a_stock_backbone():
    # With detectron2's own C4 backbone only the head reads MODEL.DROPBLOCK: an unknown TYPE
    # would otherwise build silently, and a bad KEEP_PROB fail without naming its key.
    from detectron2.layers import ShapeSpec
    from detectron2.modeling.roi_heads import build_roi_heads

    shapes = {"res4": ShapeSpec(channels=256, stride=16)}
    for key, value, match in [("MODEL.DROPBLOCK.TYPE", "'Nope'", r"^MODEL\.DROPBLOCK\.TYPE='Nope': expected one of"),
                              ("MODEL.DROPBLOCK.KEEP_PROB", "1.5", r"^MODEL\.DROPBLOCK\.KEEP_PROB=1\.5: ")]:
        cfg = rcnn_cfg(*C4_RES45, "MODEL.BACKBONE.NAME", "build_resnet_backbone", key, value, c4=True)
        with pytest.raises(ValueError, match=match):
            build_roi_heads(cfg, shapes)


# --- mutation run 54 ---


@pytest.mark.parametrize("in_features", ["[]", "['res4', 'res4']"])
def test_the_head_refuses_other_than_one_in_feature_naming_the_key(in_features):
    # detectron2's Res5ROIHeads asserts one feature naming no key; none at all must be
    # refused as well as two (the stock assert and check_feature_names accept an empty list).
    from detectron2.layers import ShapeSpec
    from detectron2.modeling.roi_heads import build_roi_heads

    cfg = rcnn_cfg(*C4_RES45, "MODEL.ROI_HEADS.IN_FEATURES", in_features, c4=True)
    with pytest.raises(ValueError, match=r"^MODEL\.ROI_HEADS\.IN_FEATURES=\[.*\]: DropBlockRes5ROIHeads is the C4 "
                                         r"head, which pools one feature"):
        build_roi_heads(cfg, {"res4": ShapeSpec(channels=256, stride=16)})


def test_a_res5_of_other_blocks_than_bottleneck_blocks_is_refused_naming_the_type(monkeypatch):
    # Turning another block into DropBlockBottleneckBlock would give it a forward it was not
    # built for: a detectron2 whose Res5ROIHeads builds other blocks must be told so.
    from detectron2.layers import ShapeSpec
    from detectron2.modeling.backbone.resnet import BasicBlock
    from detectron2.modeling.roi_heads import Res5ROIHeads, build_roi_heads

    def basic_res5(cls, cfg):
        return torch.nn.Sequential(BasicBlock(1024, 1024)), 1024

    monkeypatch.setattr(Res5ROIHeads, "_build_res5_block", classmethod(basic_res5))
    cfg = rcnn_cfg(*C4_RES45, c4=True)
    with pytest.raises(TypeError, match=r"^DropBlockRes5ROIHeads: expected detectron2's res5 of BottleneckBlock, "
                                        r"got a BasicBlock$"):
        build_roi_heads(cfg, {"res4": ShapeSpec(channels=1024, stride=16)})
