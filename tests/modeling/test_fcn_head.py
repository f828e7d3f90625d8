"""The paper's segmentation model: ResNet-FPN + FCN head (SemSegFPNHead) with DropBlock."""
import re
from pathlib import Path

import pytest
import torch
from detectron2.layers import ShapeSpec
from detectron2.modeling import build_model

from conftest import CONFIGS, assert_fused_head_matches_unfused, backward_node_names, small_voc_sem_seg_cfg
from dropblock_det.deploy import stock_config
from dropblock_det.layers import REGULARIZER_TYPES, DropBlock2d, build_regularizer, iter_regularizers, set_keep_prob
from dropblock_det.modeling.fcn_head import DropBlockFCNHead

FCN = "fcn_R_50_FPN_GN_scratch_poly_330k_bs16.yaml"
FCN_DROPBLOCK = "fcn_R_50_FPN_GN_scratch_dropblock_head_kp0.9_b7_poly_330k_bs16.yaml"
FCN_CONFIGS = sorted(p.name for p in (CONFIGS / "PascalVOC-SemanticSegmentation").glob("fcn_*.yaml"))


def _stock_cfg(cfg):
    """The same model from detectron2's own build_resnet_fpn_backbone and SemSegFPNHead
    (dropblock_det.deploy.stock_config: no plugin keys)."""
    stock = stock_config(cfg)
    assert (stock.MODEL.BACKBONE.NAME, stock.MODEL.SEM_SEG_HEAD.NAME) == ("build_resnet_fpn_backbone", "SemSegFPNHead")
    assert "DROPBLOCK" not in stock.MODEL and "CUTOUT" not in stock.INPUT
    return stock


def test_fcn_dropblock_checkpoint_loads_strictly_into_stock_semseg_fpn_with_same_eval_outputs(tmp_path):
    torch.manual_seed(0)
    cfg = small_voc_sem_seg_cfg(FCN_DROPBLOCK, tmp_path, ["MODEL.DROPBLOCK.RESNET.ENABLED", True])
    model = build_model(cfg)
    stock = build_model(_stock_cfg(cfg))
    assert type(stock.sem_seg_head).__name__ == "SemSegFPNHead"
    assert list(model.state_dict()) == list(stock.state_dict())
    stock.load_state_dict(model.state_dict(), strict=True)
    model.load_state_dict(stock.state_dict(), strict=True)
    model.eval()
    stock.eval()
    g = torch.Generator().manual_seed(0)
    inputs = [{"image": torch.rand(3, h, w, generator=g) * 255, "height": h, "width": w}
              for h, w in ((48, 72), (64, 64))]
    with torch.no_grad():
        for ours, theirs in zip(model(inputs), stock(inputs)):
            assert ours["sem_seg"].shape[-2:] == theirs["sem_seg"].shape[-2:]
            assert torch.equal(ours["sem_seg"], theirs["sem_seg"])


def test_fcn_head_regularizer_follows_every_conv_of_every_level(tmp_path):
    head = build_model(small_voc_sem_seg_cfg(FCN_DROPBLOCK, tmp_path)).sem_seg_head
    names = [n for n, _ in iter_regularizers(head)]
    # p2 has 1 conv (already at stride 4), p3 1, p4 2, p5 3: one regularizer after each
    assert names == ["p2.dropblock0", "p3.dropblock0", "p4.dropblock0", "p4.dropblock2",
                     "p5.dropblock0", "p5.dropblock2", "p5.dropblock4"]
    # conv -> DropBlock -> upsample, at the conv's resolution; stock child names kept
    assert [type(m).__name__ for m in head.p4] == ["Conv2d", "DropBlock2d", "Upsample",
                                                     "Conv2d", "DropBlock2d", "Upsample"]
    assert head.scale_heads[2] is head.p4  # the list detectron2's forward uses is updated
    assert all(isinstance(m, DropBlock2d) and m.target_keep_prob == 0.9 for _, m in iter_regularizers(head))
    # the paper's variant keeps the backbone free of DropBlock
    assert not list(iter_regularizers(build_model(small_voc_sem_seg_cfg(FCN_DROPBLOCK, tmp_path)).backbone))


def test_fcn_head_regularizers_drop_in_training_and_are_identity_in_eval(tmp_path):
    torch.manual_seed(0)
    head = build_model(small_voc_sem_seg_cfg(FCN_DROPBLOCK, tmp_path)).sem_seg_head
    features = {f"p{k}": torch.rand(2, 32, 64 // 2**k, 64 // 2**k) for k in (2, 3, 4, 5)}
    head.train()
    set_keep_prob(head, 1.0)
    reference = head.layers(features)
    set_keep_prob(head, 0.5)
    assert not torch.allclose(head.layers(features), reference)
    head.eval()
    assert torch.allclose(head.layers(features), reference, atol=1e-6)


def _small_head(regularizer_type=None):
    torch.manual_seed(0)
    shapes = {f"p{k}": ShapeSpec(channels=32, stride=2**k) for k in (2, 3, 4)}
    factory = (lambda: build_regularizer(regularizer_type, 0.5, block_size=3)) if regularizer_type else None
    return DropBlockFCNHead(shapes, num_classes=3, conv_dims=32, common_stride=4, norm="GN", dropblock=factory,
                            dropblock_positions=["decoder"] if regularizer_type else []).train()


def _head_features():
    g = torch.Generator().manual_seed(0)
    return {f"p{k}": torch.randn(2, 32, 64 // 2**k, 64 // 2**k, generator=g) for k in (2, 3, 4)}


@pytest.mark.parametrize("regularizer_type", REGULARIZER_TYPES)
def test_fcn_head_regularizers_take_their_convs_relu_into_their_own_pass(regularizer_type):
    # Each regularizer gets its conv+norm's output and the ReLU (relu=True): autograd keeps
    # its output, not relu(x) beside it: one fused backward node per conv (p2 1, p3 1, p4 2),
    # no ReLU or masked-scale node of its own.
    names = backward_node_names(_small_head(regularizer_type).layers(_head_features()).sum())
    assert names.count("_ReluThenMaskedScaleBackward") == 4
    assert "_MaskedScaleBackward" not in names and "ReluBackward0" not in names


@pytest.mark.parametrize("regularizer_type", REGULARIZER_TYPES)
def test_fused_fcn_head_gives_the_unfused_outputs_and_gradients_bit_for_bit(monkeypatch, regularizer_type):
    from dropblock_det.modeling import fcn_head

    assert_fused_head_matches_unfused(_small_head(regularizer_type), _head_features, fcn_head, monkeypatch)


def test_fcn_model_without_sem_seg_head_dropblock_has_no_regularizers(tmp_path):
    cfg = small_voc_sem_seg_cfg(FCN_DROPBLOCK, tmp_path, ["MODEL.DROPBLOCK.SEM_SEG_HEAD.ENABLED", False])
    model = build_model(cfg)
    assert not list(iter_regularizers(model))
    assert all(type(tower) is torch.nn.Sequential for tower in model.sem_seg_head.scale_heads)


def test_fcn_head_accepts_the_default_positions_and_rejects_ones_without_decoder(tmp_path):
    cfg = small_voc_sem_seg_cfg(FCN, tmp_path, ["MODEL.DROPBLOCK.SEM_SEG_HEAD.ENABLED", True])
    assert list(cfg.MODEL.DROPBLOCK.SEM_SEG_HEAD.POSITIONS) == ["aspp", "project", "decoder"]
    assert len(list(iter_regularizers(build_model(cfg).sem_seg_head))) == 7
    cfg.MODEL.DROPBLOCK.SEM_SEG_HEAD.POSITIONS = ["aspp"]
    with pytest.raises(ValueError, match=r"MODEL.DROPBLOCK.SEM_SEG_HEAD.POSITIONS=\['aspp'\]"):
        build_model(cfg)


@pytest.mark.parametrize(
    "opts, message",
    [
        (["MODEL.SEM_SEG_HEAD.CONVS_DIM", 40], "MODEL.SEM_SEG_HEAD.CONVS_DIM=40"),
        # A conv of 0 outputs builds, then fails in torch's conv at the first forward.
        (["MODEL.SEM_SEG_HEAD.CONVS_DIM", 0], r"^MODEL.SEM_SEG_HEAD.CONVS_DIM=0: channel counts must be integers >= 1"),
        (["MODEL.SEM_SEG_HEAD.IN_FEATURES", ["p2", "p9"]], "IN_FEATURES.*no output 'p9'"),
        (["MODEL.DROPBLOCK.BLOCK_SIZE", 0], "MODEL.DROPBLOCK.BLOCK_SIZE"),
        # Summed levels of two sizes at the first step ("The size of tensor a (32) must match ...").
        (["MODEL.SEM_SEG_HEAD.COMMON_STRIDE", 8], r"^MODEL\.SEM_SEG_HEAD\.COMMON_STRIDE=8: the level at stride 4 "
         r"\(MODEL\.SEM_SEG_HEAD\.IN_FEATURES: strides \[4, 8, 16, 32\]\) is upsampled to stride 2, not to it; "
         r"use a power of 2 up to 4$"),
        (["MODEL.SEM_SEG_HEAD.COMMON_STRIDE", 3], r"^MODEL\.SEM_SEG_HEAD\.COMMON_STRIDE=3: the level at stride 4 "),
        (["MODEL.SEM_SEG_HEAD.COMMON_STRIDE", 0], r"^MODEL\.SEM_SEG_HEAD\.COMMON_STRIDE=0: expected a stride >= 1$"),
    ],
)
def test_impossible_fcn_settings_raise_naming_the_key(tmp_path, opts, message):
    with pytest.raises(ValueError, match=message):
        build_model(small_voc_sem_seg_cfg(FCN_DROPBLOCK, tmp_path, opts))


def test_fcn_head_arguments_are_checked_without_a_config():
    shapes = {"p2": ShapeSpec(channels=32, stride=4), "p3": ShapeSpec(channels=32, stride=8)}
    kwargs = dict(num_classes=3, conv_dims=32, common_stride=4, norm="GN")
    with pytest.raises(ValueError, match="unknown name 'neck'"):
        DropBlockFCNHead(shapes, dropblock=DropBlock2d, dropblock_positions=["neck"], **kwargs)
    with pytest.raises(ValueError, match="needs a `dropblock` factory"):
        DropBlockFCNHead(shapes, dropblock_positions=["decoder"], **kwargs)
    with pytest.raises(ValueError, match="conv_dims=48"):
        DropBlockFCNHead(shapes, **{**kwargs, "conv_dims": 48})
    # Without "decoder" (this head's only position) nothing would be inserted.
    with pytest.raises(ValueError, match=r"^dropblock_positions=\['aspp'\]: DropBlockFCNHead places regularizers only "):
        DropBlockFCNHead(shapes, dropblock=lambda: DropBlock2d(0.8, 3), dropblock_positions=["aspp"], **kwargs)
    # e.g. a LazyConfig override model.sem_seg_head.common_stride='4': TypeError naming nothing
    with pytest.raises(ValueError, match=r"^common_stride='4': expected a stride >= 1$"):
        DropBlockFCNHead(shapes, **{**kwargs, "common_stride": "4"})
    with pytest.raises(ValueError, match=r"^common_stride=8: the level at stride 4 \(input_shape: strides \[4, 8\]\)"):
        DropBlockFCNHead(shapes, **{**kwargs, "common_stride": 8})
    # A stride one upsampling leaves above common_stride (16 -> 8, not 5): logits at stride 8 * 5.
    with pytest.raises(ValueError, match=r"^common_stride=5: the level at stride 16 \(input_shape: strides \[16\]\) "
                                         r"is upsampled to stride 8, not to it"):
        DropBlockFCNHead({"p4": ShapeSpec(channels=32, stride=16)}, **{**kwargs, "common_stride": 5})
    head = DropBlockFCNHead(shapes, dropblock=lambda: DropBlock2d(0.8, 3), dropblock_positions=["decoder"], **kwargs)
    assert [n for n, _ in iter_regularizers(head)] == ["p2.dropblock0", "p3.dropblock0"]
    # A common stride below the finest level's is one the stock head reaches: logits at stride 2.
    finer = DropBlockFCNHead(shapes, **{**kwargs, "common_stride": 2}).eval()
    logits, _ = finer({"p2": torch.rand(1, 32, 8, 8), "p3": torch.rand(1, 32, 4, 4)})
    assert logits.shape == (1, 3, 32, 32)


@pytest.mark.slow
@pytest.mark.parametrize("config_file", FCN_CONFIGS)
def test_fcn_config_trains_two_iterations_and_evaluates_miou(config_file, mini_voc_datasets, tmp_path):
    from dropblock_det.engine.trainer import DropBlockTrainer

    cfg = small_voc_sem_seg_cfg(config_file, tmp_path)
    cfg.freeze()
    trainer = DropBlockTrainer(cfg)
    trainer.resume_or_load(resume=False)
    trainer.train()

    assert trainer.iter == cfg.SOLVER.MAX_ITER == 2
    latest = trainer.storage.latest()
    assert torch.isfinite(torch.tensor(latest["total_loss"][0]))
    assert 0.0 <= latest["sem_seg/mIoU"][0] <= 100.0
    regularizers = [m for _, m in iter_regularizers(trainer.model)]
    if "dropblock" in config_file:
        assert regularizers and all(m.keep_prob < 1.0 for m in regularizers)
    else:
        assert not regularizers
    assert Path(cfg.OUTPUT_DIR, "model_final.pth").is_file()


def test_fcn_head_copies_a_regularizer_module_given_instead_of_a_factory():
    shapes = {"p2": ShapeSpec(channels=32, stride=4), "p3": ShapeSpec(channels=32, stride=8)}
    given = DropBlock2d(0.8, 3)
    head = DropBlockFCNHead(shapes, num_classes=3, conv_dims=32, common_stride=4, norm="GN",
                            dropblock=given, dropblock_positions=["decoder"])
    placed = [m for _, m in iter_regularizers(head)]
    assert len(placed) == 2 and len({id(m) for m in placed + [given]}) == 3


# Segmentation journey (stop 53)
@pytest.mark.parametrize("positions", [["aspp", "decoder"], ["project", "decoder"]])
def test_fcn_head_refuses_deeplab_positions_beside_decoder(tmp_path, positions):
    # The FCN trained with DropBlock after its convs alone, 'aspp' / 'project' dropped unsaid.
    cfg = small_voc_sem_seg_cfg(FCN_DROPBLOCK, tmp_path, ["MODEL.DROPBLOCK.SEM_SEG_HEAD.POSITIONS", positions])
    with pytest.raises(ValueError, match=rf"^MODEL\.DROPBLOCK\.SEM_SEG_HEAD\.POSITIONS=\['{positions[0]}', 'decoder'\]: "
                                         rf"DropBlockFCNHead has no '{positions[0]}' \(DeepLabV3\+ parts\) .*"
                                         r"write \['decoder'\]$"):
        build_model(cfg)
    shapes = {"p2": ShapeSpec(channels=32, stride=4)}
    kwargs = dict(num_classes=3, conv_dims=32, common_stride=4, norm="GN", dropblock=lambda: DropBlock2d(0.8, 3))
    with pytest.raises(ValueError, match=rf"^dropblock_positions=\['{positions[0]}', 'decoder'\]: DropBlockFCNHead "):
        DropBlockFCNHead(shapes, dropblock_positions=positions, **kwargs)
    # All three, the config's default, still place DropBlock after the convs.
    head = DropBlockFCNHead(shapes, dropblock_positions=["aspp", "project", "decoder"], **kwargs)
    assert [n for n, _ in iter_regularizers(head)] == ["p2.dropblock0"]


@pytest.mark.parametrize("key, value, default", [
    ("MODEL.SEM_SEG_HEAD.ASPP_DILATIONS", [3, 6, 9], "[6, 12, 18]"),
    ("MODEL.SEM_SEG_HEAD.PROJECT_CHANNELS", [64], "[48]"),
    ("MODEL.SEM_SEG_HEAD.USE_DEPTHWISE_SEPARABLE_CONV", True, "False"),
])
def test_fcn_head_refuses_deeplab_head_keys_it_does_not_read(tmp_path, key, value, default):
    # An FCN config given DeepLabV3+'s ASPP / projection keys trained as if they were not set.
    cfg = small_voc_sem_seg_cfg(FCN_DROPBLOCK, tmp_path, [key, value])
    with pytest.raises(ValueError, match=rf"^{re.escape(key)}={re.escape(repr(value))}: MODEL\.SEM_SEG_HEAD\.NAME "
                                         r"'DropBlockFCNHead' has no ASPP nor decoder projection and does not read it "
                                         rf".*leave it at detectron2's default {re.escape(default)}, or build the "
                                         r"DeepLab head$"):
        build_model(cfg)
    # At detectron2's defaults (the FCN configs set none of them) it builds.
    build_model(small_voc_sem_seg_cfg(FCN_DROPBLOCK, tmp_path))


# Mutation run 53
@pytest.mark.parametrize("key, value", [
    ("MODEL.SEM_SEG_HEAD.PROJECT_FEATURES", ["res3"]),
    ("MODEL.SEM_SEG_HEAD.ASPP_CHANNELS", 128),
    ("MODEL.SEM_SEG_HEAD.ASPP_DROPOUT", 0.5),
])
def test_fcn_head_refuses_each_deeplab_head_key_it_does_not_read(tmp_path, key, value):
    cfg = small_voc_sem_seg_cfg(FCN_DROPBLOCK, tmp_path, [key, value])
    with pytest.raises(ValueError, match=rf"^{re.escape(key)}={re.escape(repr(value))}: MODEL\.SEM_SEG_HEAD\.NAME "
                                         r"'DropBlockFCNHead' has no ASPP nor decoder projection"):
        build_model(cfg)
