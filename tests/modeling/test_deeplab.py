"""DeepLabV3+ with DropBlock: dilated ResNet backbone, DropBlockASPP, the head, the configs."""
import copy
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from detectron2.layers import ASPP
from detectron2.modeling import build_model

from conftest import CONFIGS, assert_fused_head_matches_unfused, backward_node_names, small_voc_sem_seg_cfg
from dropblock_det.deploy import stock_config
from dropblock_det.layers import REGULARIZER_TYPES, KeepProbRegularizer, build_regularizer, iter_regularizers, set_keep_prob
from dropblock_det.modeling.deeplab import DropBlockASPP, DropBlockDeepLabV3PlusHead

SCRATCH = "deeplab_v3_plus_R_52_GN_scratch_os16_poly_330k_bs16.yaml"
SCRATCH_DROPBLOCK = "deeplab_v3_plus_R_52_GN_scratch_dropblock_res45_head_kp0.9_b7_os16_poly_330k_bs16.yaml"
DEEPLAB_CONFIGS = sorted(
    p.name for p in (CONFIGS / "PascalVOC-SemanticSegmentation").glob("deeplab_*.yaml")
)


def _cfg(tmp_path, config_file=SCRATCH_DROPBLOCK, opts=()):
    return small_voc_sem_seg_cfg(config_file, tmp_path, opts)


def _stock_cfg(cfg):
    """The same model from detectron2's own build_resnet_deeplab_backbone and DeepLabV3PlusHead
    (dropblock_det.deploy.stock_config: no plugin keys)."""
    stock = stock_config(cfg)
    assert (stock.MODEL.BACKBONE.NAME, stock.MODEL.SEM_SEG_HEAD.NAME) == ("build_resnet_deeplab_backbone", "DeepLabV3PlusHead")
    assert "DROPBLOCK" not in stock.MODEL and "CUTOUT" not in stock.INPUT
    return stock


def _images(*sizes):
    g = torch.Generator().manual_seed(0)
    return [{"image": torch.rand(3, h, w, generator=g) * 255, "height": h, "width": w} for h, w in sizes]


# ----------------------------------------------------------------------------- checkpoints
@pytest.fixture(scope="module")
def dropblock_and_stock_models(module_tmp_path_factory):
    """(DropBlock DeepLabV3+, stock detectron2 DeepLabV3+) built from the same shrunk config,
    the stock one holding the DropBlock one's weights (loaded strictly), both in eval mode."""
    torch.manual_seed(0)
    cfg = _cfg(module_tmp_path_factory.mktemp("deeplab"))
    model = build_model(cfg)
    stock = build_model(_stock_cfg(cfg))
    stock.load_state_dict(model.state_dict(), strict=True)
    return model.eval(), stock.eval()


def test_dropblock_deeplab_checkpoint_loads_strictly_into_stock_deeplab_with_same_eval_outputs(
    dropblock_and_stock_models,
):
    model, stock = dropblock_and_stock_models
    assert type(stock.sem_seg_head).__name__ == "DeepLabV3PlusHead"
    assert len(list(iter_regularizers(model))) > 0 and len(list(iter_regularizers(stock))) == 0
    assert list(model.state_dict()) == list(stock.state_dict())  # same names, same order
    reloaded = copy.deepcopy(model)
    reloaded.load_state_dict(stock.state_dict(), strict=True)  # and the other way round

    # sizes where the stock model runs: its ASPP pooling kernel is the 64-pixel crop's 4x4
    with torch.no_grad():
        for inputs in (_images((64, 64), (64, 64)), _images((128, 64))):
            theirs = stock(inputs)
            for ours in (model(inputs), reloaded(inputs)):
                for a, b in zip(ours, theirs):
                    assert torch.equal(a["sem_seg"], b["sem_seg"])


def test_deeplab_backbone_without_dropblock_has_the_stock_module_tree(tmp_path):
    cfg = _cfg(tmp_path, SCRATCH)
    model = build_model(cfg)
    stock = build_model(_stock_cfg(cfg))
    names = [n for n, _ in model.backbone.named_modules()]
    assert names == [n for n, _ in stock.backbone.named_modules()]
    assert type(model.backbone.stem).__name__ == "DeepLabStem"
    # dilated res5 with multi-grid (1, 2, 4) x RES5_DILATION 2, output stride 16
    assert [b.conv2.dilation for b in model.backbone.res5] == [(2, 2), (4, 4), (8, 8)]
    assert model.backbone.output_shape()["res5"].stride == 16


# ----------------------------------------------------------------------------- placement
def test_regularizers_sit_where_sem_seg_head_positions_say(tmp_path):
    counts = {}
    for positions in (["aspp"], ["project"], ["decoder"], ["aspp", "project", "decoder"]):
        cfg = _cfg(tmp_path, SCRATCH, ["MODEL.DROPBLOCK.SEM_SEG_HEAD.ENABLED", True,
                                       "MODEL.DROPBLOCK.SEM_SEG_HEAD.POSITIONS", positions])
        head = build_model(cfg).sem_seg_head
        names = [n for n, _ in iter_regularizers(head)]
        counts[tuple(positions)] = names
    aspp = "decoder.res5.project_conv."
    assert counts[("aspp",)] == [f"{aspp}dropblock_branches.{i}" for i in range(4)]
    assert counts[("project",)] == [f"{aspp}dropblock_project"]
    assert counts[("decoder",)] == ["dropblock_decoder.res2.0", "dropblock_decoder.res2.1"]
    assert len(counts[("aspp", "project", "decoder")]) == 7


def test_backbone_regularizers_follow_resnet_stages_and_drop_scales(tmp_path):
    model = build_model(_cfg(tmp_path))
    targets = {}
    for name, module in iter_regularizers(model.backbone):
        targets.setdefault(name.split(".")[0], set()).add(round(module.target_keep_prob, 6))
    assert targets == {"res4": {0.975}, "res5": {0.9}}  # res4 at 1/4 of res5's drop rate
    assert {round(m.target_keep_prob, 6) for _, m in iter_regularizers(model.sem_seg_head)} == {0.9}


def test_head_regularizers_drop_in_training_and_are_identity_in_eval(tmp_path):
    cfg = _cfg(tmp_path, SCRATCH, ["MODEL.DROPBLOCK.SEM_SEG_HEAD.ENABLED", True,
                                   "MODEL.SEM_SEG_HEAD.ASPP_DROPOUT", 0.0])
    torch.manual_seed(0)
    model = build_model(cfg)
    head = model.sem_seg_head
    features = {"res2": torch.rand(2, 32, 16, 16), "res5": torch.rand(2, 256, 4, 4)}
    head.train()
    set_keep_prob(head, 1.0)
    reference = head.layers(features)
    set_keep_prob(head, 0.5)
    assert not torch.allclose(head.layers(features), reference)
    head.eval()  # keep_prob 0.5 but eval: identity, so the GN model gives the training output
    assert torch.allclose(head.layers(features), reference, atol=1e-6)


# ----------------------------------------------------------------------------- ASPP sizes
def _aspps(pool_kernel_size):
    kwargs = dict(norm="GN", activation=F.relu, dropout=0.0)
    torch.manual_seed(0)
    stock = ASPP(32, 32, [1, 2, 3], pool_kernel_size=pool_kernel_size, **kwargs)
    ours = DropBlockASPP(32, 32, [1, 2, 3], pool_kernel_size=pool_kernel_size, **kwargs)
    global_pool = DropBlockASPP(32, 32, [1, 2, 3], pool_kernel_size=None, **kwargs)
    ours.load_state_dict(stock.state_dict(), strict=True)
    global_pool.load_state_dict(stock.state_dict(), strict=True)
    return [m.eval() for m in (stock, ours, global_pool)]


def test_aspp_with_a_crop_sized_pooling_kernel_handles_any_test_size():
    stock, ours, global_pool = _aspps((4, 4))
    with torch.no_grad():
        # a VOC-like feature map (e.g. 375x500 at stride 16 -> 24x32) the kernel does not fit
        for size in ((3, 5), (2, 2), (6, 4)):
            x = torch.rand(1, 32, *size)
            with pytest.raises(ValueError, match="pool_kernel_size"):
                stock(x)
            assert torch.allclose(ours(x), global_pool(x), atol=1e-6)  # global pooling instead
        # where the stock kernel fits, the stock behaviour is kept exactly
        for size in ((4, 4), (8, 12)):
            x = torch.rand(1, 32, *size)
            assert torch.equal(ours(x), stock(x))
        x = torch.rand(1, 32, 4, 4)  # the training-crop size: fixed kernel == global pooling
        assert torch.allclose(ours(x), global_pool(x), atol=1e-6)


def test_aspp_reads_a_non_square_pooling_kernel_as_height_then_width():
    # A non-square crop (e.g. Cityscapes' 512x1024) gives a (h, w) kernel: (2, 4) fits a 2x4
    # map and not a 4x2 one.
    stock, ours, global_pool = _aspps((2, 4))
    with torch.no_grad():
        x = torch.rand(1, 32, 2, 4)
        assert torch.equal(ours(x), stock(x))
        x = torch.rand(1, 32, 4, 2)
        with pytest.raises(ValueError, match="pool_kernel_size"):
            stock(x)
        assert torch.allclose(ours(x), global_pool(x), atol=1e-6)


def test_aspp_image_pooling_is_global_where_the_kernel_does_not_fit_and_stock_where_it_does():
    # Without a norm after the projection: with GN of one channel per group (the 32-channel
    # ASPPs above) the image-pooling branch, constant over the map, is normalized away and
    # any pooling would pass.
    kwargs = dict(norm="", activation=F.relu, dropout=0.0)
    torch.manual_seed(0)
    stock = ASPP(8, 8, [1, 2, 3], pool_kernel_size=(4, 4), **kwargs).eval()
    stock_global = ASPP(8, 8, [1, 2, 3], pool_kernel_size=None, **kwargs).eval()
    ours = DropBlockASPP(8, 8, [1, 2, 3], pool_kernel_size=(4, 4), **kwargs).eval()
    for aspp in (stock_global, ours):
        aspp.load_state_dict(stock.state_dict(), strict=True)
    without_pooling = copy.deepcopy(ours)
    torch.nn.init.zeros_(without_pooling.convs[-1][1].weight)
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        x = torch.randn(1, 8, 3, 5, generator=g)  # the kernel does not fit: global average
        assert torch.allclose(ours(x), stock_global(x), atol=1e-6)
        assert not torch.allclose(ours(x), without_pooling(x), atol=1e-3)  # the branch shows
        x = torch.randn(1, 8, 8, 12, generator=g)  # a multiple: the stock stride-1 pool, resized as stock
        assert torch.equal(ours(x), stock(x))
        assert not torch.allclose(ours(x), stock_global(x), atol=1e-3)


def test_deeplab_model_evaluates_variable_voc_like_sizes(dropblock_and_stock_models):
    model, stock = dropblock_and_stock_models
    inputs = _images((48, 72), (56, 64))
    with torch.no_grad():
        with pytest.raises(ValueError, match="pool_kernel_size"):
            stock(inputs[:1])
        outputs = model(inputs)
    assert [tuple(o["sem_seg"].shape) for o in outputs] == [(21, 48, 72), (21, 56, 64)]
    assert all(torch.isfinite(o["sem_seg"]).all() for o in outputs)


# ----------------------------------------------------------------------------- bad input
@pytest.mark.parametrize(
    "opts, message",
    [
        (["MODEL.SEM_SEG_HEAD.PROJECT_CHANNELS", [48]], r"MODEL.SEM_SEG_HEAD.PROJECT_CHANNELS=\[48\]: NORM 'GN'"),
        (["MODEL.SEM_SEG_HEAD.CONVS_DIM", 40], "MODEL.SEM_SEG_HEAD.CONVS_DIM=.*40"),
        (["MODEL.SEM_SEG_HEAD.PROJECT_CHANNELS", [32, 32]], "MODEL.SEM_SEG_HEAD.PROJECT_CHANNELS"),
        (["MODEL.SEM_SEG_HEAD.IN_FEATURES", ["res3", "res5"]], "IN_FEATURES.*no output 'res3'"),
        (["MODEL.RESNETS.DEPTH", 18], "MODEL.RESNETS.DEPTH=18"),
        (["MODEL.RESNETS.RES5_MULTI_GRID", [1, 2]], r"MODEL.RESNETS.RES5_MULTI_GRID=\[1, 2\]"),
        # Built, then torch's error at the first forward ("dilation should be greater than
        # zero", "expected weight to be at least 1 at dimension 0"), naming no key.
        (["MODEL.RESNETS.RES5_MULTI_GRID", [1, 0, 4]], r"^MODEL.RESNETS.RES5_MULTI_GRID=\[1, 0, 4\]: .*integer >= 1"),
        (["MODEL.SEM_SEG_HEAD.ASPP_CHANNELS", 0], r"^MODEL.SEM_SEG_HEAD.ASPP_CHANNELS=0: channel counts must be "
         r"integers >= 1 \(0 is not\)$"),
        (["MODEL.SEM_SEG_HEAD.PROJECT_CHANNELS", [0]], r"^MODEL.SEM_SEG_HEAD.PROJECT_CHANNELS=\[0\]: channel counts"),
        (["MODEL.RESNETS.STEM_TYPE", "fancy"], "MODEL.RESNETS.STEM_TYPE='fancy'"),
        (["MODEL.RESNETS.RES4_DILATION", 2], "MODEL.RESNETS.RES5_DILATION=2: must be 4"),
        # Refused by the stage builder too, but as "res4_dilation=4", not by the config key.
        (["MODEL.RESNETS.RES4_DILATION", 4], r"^MODEL\.RESNETS\.RES4_DILATION=4: expected 1 or 2$"),
        (["MODEL.RESNETS.RES5_DILATION", 3], r"^MODEL\.RESNETS\.RES5_DILATION=3: expected 1, 2 or 4$"),
        # Deformable res4/res5 would build as plain convs.
        (["MODEL.RESNETS.DEFORM_ON_PER_STAGE", [False, False, True, True]],
         r"^MODEL\.RESNETS\.DEFORM_ON_PER_STAGE=\[False, False, True, True\]: .* no deformable blocks$"),
        # The ASPP pooling kernel is the crop size: a relative crop has none to give it.
        (["INPUT.CROP.TYPE", "relative_range"], r"INPUT\.CROP\.TYPE='relative_range'.*'absolute'"),
        (["MODEL.DROPBLOCK.SEM_SEG_HEAD.POSITIONS", ["aspp", "neck"]], "MODEL.DROPBLOCK.SEM_SEG_HEAD.POSITIONS"),
        (["MODEL.DROPBLOCK.KEEP_PROB", 0.0], "MODEL.DROPBLOCK.KEEP_PROB"),
        # No low-level feature, so no decoder stage: "decoder" used to place nothing.
        (["MODEL.SEM_SEG_HEAD.IN_FEATURES", ["res5"], "MODEL.SEM_SEG_HEAD.PROJECT_CHANNELS", [],
          "MODEL.SEM_SEG_HEAD.COMMON_STRIDE", 16, "MODEL.DROPBLOCK.SEM_SEG_HEAD.POSITIONS", ["aspp", "decoder"]],
         r"SEM_SEG_HEAD\.POSITIONS=\['aspp', 'decoder'\]: 'decoder' needs a decoder stage, and "
         r"MODEL\.SEM_SEG_HEAD\.IN_FEATURES=\['res5'\]"),
        # A size mismatch in the loss at the first step, after config.yaml was written.
        (["MODEL.SEM_SEG_HEAD.COMMON_STRIDE", 8], r"^MODEL\.SEM_SEG_HEAD\.COMMON_STRIDE=8: the head predicts at the "
         r"stride of its finest input feature \(MODEL\.SEM_SEG_HEAD\.IN_FEATURES: strides \[4, 16\]\) .* must be 4$"),
        (["MODEL.RESNETS.OUT_FEATURES", ["res3", "res5"], "MODEL.SEM_SEG_HEAD.IN_FEATURES", ["res3", "res5"]],
         r"^MODEL\.SEM_SEG_HEAD\.COMMON_STRIDE=4: .*strides \[8, 16\]\) .* must be 8$"),
        # F.dropout's range error at the first forward.
        (["MODEL.SEM_SEG_HEAD.ASPP_DROPOUT", 1.5], r"^MODEL\.SEM_SEG_HEAD\.ASPP_DROPOUT=1\.5: expected a dropout "
         r"probability in \[0, 1\)$"),
        # Raised naming no key: "ASPP expects 3 dilations", "Unexpected loss type",
        # "Crop size need to be divisible by encoder stride.".
        (["MODEL.SEM_SEG_HEAD.ASPP_DILATIONS", [6, 12]], r"^MODEL\.SEM_SEG_HEAD\.ASPP_DILATIONS=\[6, 12\]: ASPP takes 3 "),
        # Built, then torch's "dilation should be greater than zero" at the first forward.
        (["MODEL.SEM_SEG_HEAD.ASPP_DILATIONS", [6, 0, 18]], r"^MODEL\.SEM_SEG_HEAD\.ASPP_DILATIONS=\[6, 0, 18\]: ASPP "
         r"takes 3 dilations >= 1"),
        # p=1 is one F.dropout takes: it would zero the ASPP's output in every training step.
        (["MODEL.SEM_SEG_HEAD.ASPP_DROPOUT", 1.0], r"^MODEL\.SEM_SEG_HEAD\.ASPP_DROPOUT=1\.0: expected a dropout "),
        (["MODEL.SEM_SEG_HEAD.LOSS_TYPE", "focal"], r"^MODEL\.SEM_SEG_HEAD\.LOSS_TYPE='focal': expected one of "
         r"\['cross_entropy', 'hard_pixel_mining'\]$"),
        (["INPUT.CROP.SIZE", (72, 72)], r"^INPUT\.CROP\.SIZE=\[72, 72\]: the ASPP pools over the crop's feature map "
         r"at stride 16, so its sides must be multiples of 16$"),
    ],
)
def test_impossible_deeplab_settings_raise_naming_the_key(tmp_path, opts, message):
    with pytest.raises(ValueError, match=message):
        build_model(_cfg(tmp_path, opts=opts))


def test_head_arguments_are_checked_without_a_config():
    shapes = {"res2": _shape(32, 4), "res5": _shape(64, 16)}
    kwargs = dict(project_channels=[32], aspp_dilations=[1, 2, 3], aspp_dropout=0.0,
                  decoder_channels=[32, 32], common_stride=4, norm="GN", train_size=None,
                  num_classes=3)
    with pytest.raises(ValueError, match="unknown name 'neck'"):
        DropBlockDeepLabV3PlusHead(shapes, dropblock=lambda: None, dropblock_positions=["neck"], **kwargs)
    with pytest.raises(ValueError, match="needs a `dropblock` factory"):
        DropBlockDeepLabV3PlusHead(shapes, dropblock_positions=["aspp"], **kwargs)
    with pytest.raises(ValueError, match=r"project_channels=\[48\]"):
        DropBlockDeepLabV3PlusHead(shapes, **{**kwargs, "project_channels": [48]})
    with pytest.raises(ValueError, match=r"'decoder' needs a decoder stage, and in_features=\['res5'\]"):
        DropBlockDeepLabV3PlusHead({"res5": shapes["res5"]}, dropblock=lambda: None, dropblock_positions=["decoder"],
                                   **{**kwargs, "project_channels": [], "decoder_channels": [32], "common_stride": 16})
    with pytest.raises(ValueError, match=r"^common_stride=16: the head predicts at the stride of its finest input "
                                         r"feature \(input_shape: strides \[4, 16\]\)"):
        DropBlockDeepLabV3PlusHead(shapes, **{**kwargs, "common_stride": 16})
    with pytest.raises(ValueError, match=r"^aspp_dropout=-0\.1: expected a dropout probability in \[0, 1\)$"):
        DropBlockDeepLabV3PlusHead(shapes, **{**kwargs, "aspp_dropout": -0.1})
    with pytest.raises(ValueError, match=r"^train_size=\[40, 64\]: .*multiples of 16$"):
        DropBlockDeepLabV3PlusHead(shapes, **{**kwargs, "train_size": (40, 64)})
    head = DropBlockDeepLabV3PlusHead(shapes, **kwargs)
    assert not any(isinstance(m, KeepProbRegularizer) for m in head.modules())


def test_without_crops_the_crop_keys_are_not_read_and_the_aspp_pools_globally(tmp_path):
    # INPUT.CROP.TYPE and SIZE only matter when crops are on: detectron2's default TYPE is
    # "relative_range" with SIZE [0.9, 0.9], and its DeepLab head then has no pooling kernel.
    cfg = _cfg(tmp_path, SCRATCH, ["INPUT.CROP.ENABLED", False, "INPUT.CROP.TYPE", "relative_range",
                                   "INPUT.CROP.SIZE", [0.9, 0.9]])
    aspp = build_model(cfg).sem_seg_head.decoder["res5"]["project_conv"]
    assert isinstance(aspp, DropBlockASPP) and aspp.pool_kernel_size is None


def test_head_pools_its_aspp_over_the_training_crop_as_the_stock_head():
    # The replaced ASPP keeps the stock head's pooling kernel, the crop's (H, W) at the
    # ASPP's stride: global pooling on a training crop, a stride-1 pool on a larger multiple.
    from detectron2.projects.deeplab import DeepLabV3PlusHead

    kwargs = dict(project_channels=[32], aspp_dilations=[1, 2, 3], aspp_dropout=0.0, decoder_channels=[32, 32],
                  common_stride=4, norm="GN", train_size=(64, 96), num_classes=3)
    shapes = {"res2": _shape(32, 4), "res5": _shape(64, 16)}
    ours, stock = DropBlockDeepLabV3PlusHead(shapes, **kwargs), DeepLabV3PlusHead(shapes, **kwargs)
    kernels = [head.decoder["res5"]["project_conv"].pool_kernel_size for head in (ours, stock)]
    assert kernels == [(4, 6), (4, 6)]

def test_no_head_regularizers_unless_sem_seg_head_dropblock_is_enabled(tmp_path):
    cfg = _cfg(tmp_path, SCRATCH_DROPBLOCK, ["MODEL.DROPBLOCK.SEM_SEG_HEAD.ENABLED", False])
    model = build_model(cfg)
    assert not list(iter_regularizers(model.sem_seg_head)) and list(iter_regularizers(model.backbone))
    assert "dropblock_decoder" not in dict(model.sem_seg_head.named_children())


def test_the_loss_is_scaled_by_loss_weight():
    torch.manual_seed(0)
    kwargs = dict(project_channels=[32], aspp_dilations=[1, 2, 3], aspp_dropout=0.0, decoder_channels=[32, 32],
                  common_stride=4, norm="GN", train_size=None, num_classes=3, ignore_value=255)
    shapes = {"res2": _shape(32, 4), "res5": _shape(64, 16)}
    logits, targets = torch.randn(2, 3, 13, 13), torch.randint(0, 3, (2, 52, 52))
    unit = DropBlockDeepLabV3PlusHead(shapes, **kwargs).losses(logits, targets)["loss_sem_seg"]
    half = DropBlockDeepLabV3PlusHead(shapes, loss_weight=0.5, **kwargs).losses(logits, targets)["loss_sem_seg"]
    assert unit > 0 and torch.allclose(half, unit * 0.5)


@pytest.mark.parametrize("variant", [{"aspp_dropout": 0.5}, {"use_depthwise_separable_conv": True},
                                     {"num_classes": None}])
def test_head_without_regularizers_matches_the_stock_head(variant):
    # The replaced ASPP keeps the stock one's dropout (applied in training, same draws),
    # depthwise-separable convs (same state_dict) and a head without predictor returns the
    # decoder feature, as DeepLabV3PlusHead does.
    from detectron2.projects.deeplab import DeepLabV3PlusHead

    kwargs = {**dict(project_channels=[32], aspp_dilations=[1, 2, 3], aspp_dropout=0.0, decoder_channels=[32, 32],
                     common_stride=4, norm="GN", train_size=None, num_classes=3), **variant}
    shapes = {"res2": _shape(32, 4), "res5": _shape(64, 16)}
    ours, stock = DropBlockDeepLabV3PlusHead(shapes, **kwargs), DeepLabV3PlusHead(shapes, **kwargs)
    assert [(k, v.shape) for k, v in ours.state_dict().items()] == [(k, v.shape) for k, v in stock.state_dict().items()]
    ours.load_state_dict(stock.state_dict(), strict=True)
    features = _head_features()
    for mode in (False, True):
        outputs = []
        for head in (ours, stock):
            torch.manual_seed(0)
            outputs.append(head.train(mode).layers(features))
        assert torch.equal(*outputs)
    if kwargs["num_classes"] is None:
        assert outputs[0].shape == (2, 32, 16, 16)
    if kwargs["aspp_dropout"]:  # dropout does act in training
        torch.manual_seed(1)
        assert not torch.equal(ours.train().layers(features), outputs[0])
    if kwargs.get("use_depthwise_separable_conv"):
        # one fused conv per decoder stage: one regularizer each
        regularized = _small_head(["decoder"], depthwise=True)
        assert [n for n, _ in iter_regularizers(regularized)] == ["dropblock_decoder.res2.0"]


def test_add_dropblock_deeplab_config_adds_the_keys_a_config_lacks_any_of():
    # A config with one of the two marker keys (e.g. SOLVER.POLY_LR_POWER set by hand) still
    # gets all of detectron2's DeepLab keys.
    from detectron2.config import get_cfg

    from dropblock_det.modeling.deeplab import add_dropblock_deeplab_config

    for section, key in (("SOLVER", "POLY_LR_POWER"), ("MODEL.SEM_SEG_HEAD", "ASPP_CHANNELS")):
        cfg = get_cfg()
        node = cfg.SOLVER if section == "SOLVER" else cfg.MODEL.SEM_SEG_HEAD
        setattr(node, key, 7)
        add_dropblock_deeplab_config(cfg)
        assert "POLY_LR_POWER" in cfg.SOLVER and "ASPP_CHANNELS" in cfg.MODEL.SEM_SEG_HEAD
        assert "RES5_MULTI_GRID" in cfg.MODEL.RESNETS and "SINGLE_CATEGORY_MAX_AREA" in cfg.INPUT.CROP


def test_the_loss_crops_the_upsampled_logits_to_targets_of_any_size():
    # The stock head compared logits upsampled by common_stride with targets as they were: an
    # H or W that is not a multiple of 4 (an image below the crop size, no crop) failed at
    # the first step with "size mismatch (got input: [2, 4, 52, 52], target: [2, 50, 50])".
    from detectron2.projects.deeplab import DeepLabV3PlusHead

    torch.manual_seed(0)
    head = DropBlockDeepLabV3PlusHead(
        {"res2": _shape(32, 4), "res5": _shape(64, 16)}, project_channels=[32], aspp_dilations=[1, 2, 3],
        aspp_dropout=0.0, decoder_channels=[32, 32], common_stride=4, norm="GN", train_size=None, num_classes=3,
        ignore_value=255)
    logits = torch.randn(2, 3, 13, 12)
    targets = torch.randint(0, 3, (2, 50, 46))  # cropped as (height, width)
    targets[:, :5] = 255  # ignored pixels stay ignored
    upsampled = F.interpolate(logits, scale_factor=4, mode="bilinear", align_corners=False)[..., :50, :46]
    expected = F.cross_entropy(upsampled, targets, ignore_index=255)
    assert torch.equal(head.losses(logits, targets)["loss_sem_seg"], expected)
    # Where the sizes are multiples, the stock head's loss.
    targets = torch.randint(0, 3, (2, 52, 48))
    assert torch.equal(head.losses(logits, targets)["loss_sem_seg"],
                       DeepLabV3PlusHead.losses(head, logits, targets)["loss_sem_seg"])


def test_a_deeplab_model_trains_on_images_whose_sides_are_not_multiples_of_its_stride(tmp_path):
    cfg = _cfg(tmp_path)
    model = build_model(cfg).train()
    g = torch.Generator().manual_seed(0)
    batch = [{**image, "sem_seg": torch.randint(0, cfg.MODEL.SEM_SEG_HEAD.NUM_CLASSES, (h, w), generator=g)}
             for image, (h, w) in zip(_images((50, 50), (47, 61)), [(50, 50), (47, 61)])]
    losses = model(batch)
    assert set(losses) == {"loss_sem_seg"} and torch.isfinite(losses["loss_sem_seg"])
    losses["loss_sem_seg"].backward()


class _Recorder(torch.nn.Module):
    def __init__(self, log):
        super().__init__()
        self.log = log

    def forward(self, x):
        self.log.append(tuple(x.shape))
        return x


def test_head_regularizers_follow_the_output_of_their_convs():
    # "aspp" after each conv branch (ASPP's 64 output channels, not its 128 input ones),
    # "project" after the projection, "decoder" after each fuse conv (32 channels, not the
    # 32 + 64 concatenated input of the first one).
    shapes = {"res2": _shape(32, 4), "res5": _shape(128, 16)}
    log = []
    head = DropBlockDeepLabV3PlusHead(
        shapes, dropblock=lambda: _Recorder(log), dropblock_positions=["aspp", "project", "decoder"],
        project_channels=[32], aspp_dilations=[1, 2, 3], aspp_dropout=0.0, decoder_channels=[32, 64],
        common_stride=4, norm="GN", train_size=None, num_classes=3,
    )
    features = {"res2": torch.rand(2, 32, 16, 16), "res5": torch.rand(2, 128, 4, 4)}
    assert head.layers(features).shape == (2, 3, 16, 16)
    assert log == [(2, 64, 4, 4)] * 5 + [(2, 32, 16, 16)] * 2


def _small_head(positions, regularizer_type="DropBlock", depthwise=False):
    torch.manual_seed(0)
    return DropBlockDeepLabV3PlusHead(
        {"res2": _shape(32, 4), "res5": _shape(64, 16)},
        dropblock=(lambda: build_regularizer(regularizer_type, 0.5, block_size=3)) if positions else None,
        dropblock_positions=positions, project_channels=[32], aspp_dilations=[1, 2, 3], aspp_dropout=0.0,
        decoder_channels=[32, 32], common_stride=4, norm="GN", train_size=None, num_classes=3,
        use_depthwise_separable_conv=depthwise,
    ).train()


def _head_features():
    g = torch.Generator().manual_seed(0)
    return {"res2": torch.randn(2, 32, 16, 16, generator=g), "res5": torch.randn(2, 64, 4, 4, generator=g)}


@pytest.mark.parametrize("regularizer_type", REGULARIZER_TYPES)
@pytest.mark.parametrize("position,count", [("aspp", 4), ("project", 1), ("decoder", 2)])
def test_head_regularizers_take_their_convs_relu_into_their_own_pass(position, count, regularizer_type):
    # Each regularizer gets its conv+norm's output and the ReLU (relu=True): autograd keeps
    # its output, not relu(x) beside it; in backward, one fused node per regularizer and no
    # separate ReLU or masked-scale node for it (the image-pooling branch keeps its ReLU).
    head = _small_head([position], regularizer_type)
    names = backward_node_names(head.layers(_head_features()).sum())
    stock_names = backward_node_names(_small_head([]).layers(_head_features()).sum())
    assert names.count("_ReluThenMaskedScaleBackward") == count
    assert "_MaskedScaleBackward" not in names
    assert names.count("ReluBackward0") == stock_names.count("ReluBackward0") - count


def test_regularized_head_keeps_no_more_for_backward_than_the_stock_head():
    # The fused regularizer keeps only its output, which the next layer (or the stock ReLU's
    # backward) keeps anyway: unfused, relu(x) and the mask were kept as well.
    def saved_bytes(head):
        storages = {}

        def pack(t):
            storages[t.untyped_storage().data_ptr()] = t.untyped_storage().nbytes()
            return t

        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            head.layers(_head_features())
        return sum(storages.values())

    assert saved_bytes(_small_head(["aspp", "project", "decoder"], "Dropout")) == saved_bytes(_small_head([]))


@pytest.mark.parametrize("depthwise", [False, True])
@pytest.mark.parametrize("regularizer_type", REGULARIZER_TYPES)
def test_fused_head_gives_the_unfused_outputs_and_gradients_bit_for_bit(monkeypatch, regularizer_type, depthwise):
    from dropblock_det.modeling import deeplab

    assert_fused_head_matches_unfused(_small_head(["aspp", "project", "decoder"], regularizer_type, depthwise), _head_features, deeplab, monkeypatch)


def test_deeplab_backbone_freezes_as_stock(tmp_path):
    from detectron2.layers import ShapeSpec
    from detectron2.projects.deeplab.resnet import build_resnet_deeplab_backbone

    from dropblock_det.modeling.deeplab import build_dropblock_resnet_deeplab_backbone

    cfg = _cfg(tmp_path, SCRATCH, ["MODEL.BACKBONE.FREEZE_AT", 2])
    ours = build_dropblock_resnet_deeplab_backbone(cfg, ShapeSpec(channels=3))
    stock = build_resnet_deeplab_backbone(cfg, ShapeSpec(channels=3))
    frozen = {n: p.requires_grad for n, p in ours.named_parameters()}
    assert frozen == {n: p.requires_grad for n, p in stock.named_parameters()}
    assert not any(frozen[n] for n in frozen if n.startswith(("stem.", "res2.")))
    assert all(frozen[n] for n in frozen if n.startswith("res3."))


def _shape(channels, stride):
    from detectron2.layers import ShapeSpec

    return ShapeSpec(channels=channels, stride=stride)


# ----------------------------------------------------------------------------- configs
@pytest.mark.slow
@pytest.mark.parametrize("config_file", DEEPLAB_CONFIGS)
def test_deeplab_config_trains_two_iterations_and_evaluates_miou(config_file, mini_voc_datasets, tmp_path):
    from dropblock_det.engine.trainer import DropBlockTrainer

    cfg = _cfg(tmp_path, config_file)
    cfg.freeze()
    trainer = DropBlockTrainer(cfg)
    trainer.resume_or_load(resume=False)
    trainer.train()

    assert trainer.iter == cfg.SOLVER.MAX_ITER == 2  # iterations 0 and 1 ran to completion
    latest = trainer.storage.latest()
    assert torch.isfinite(torch.tensor(latest["total_loss"][0]))
    miou = latest["sem_seg/mIoU"][0]
    assert 0.0 <= miou <= 100.0
    regularizers = [m for _, m in iter_regularizers(trainer.model)]
    if "dropblock" in config_file:
        # the schedule hook reached the segmentation model's regularizers (2-iteration ramp)
        assert regularizers and all(m.keep_prob < 1.0 for m in regularizers)
    else:
        assert not regularizers
    assert Path(cfg.OUTPUT_DIR, "model_final.pth").is_file()


VOC_SEM_SEG_CONFIGS = sorted(
    p.name for p in (CONFIGS / "PascalVOC-SemanticSegmentation").glob("*.yaml")
    if not p.name.startswith("Base-")
)


@pytest.mark.parametrize("config_file", VOC_SEM_SEG_CONFIGS)
def test_voc_configs_use_the_real_datasets_poly_lr_and_full_size_crops(config_file):
    from dropblock_det.engine.config_checks import load_config

    cfg = load_config(str(CONFIGS / "PascalVOC-SemanticSegmentation" / config_file))
    assert cfg.DATASETS.TRAIN == ("voc_2012_sem_seg_train_aug",)
    assert cfg.DATASETS.TEST == ("voc_2012_sem_seg_val",)
    assert cfg.SOLVER.LR_SCHEDULER_NAME == "WarmupPolyLR"
    assert (cfg.MODEL.SEM_SEG_HEAD.NUM_CLASSES, cfg.MODEL.SEM_SEG_HEAD.IGNORE_VALUE) == (21, 255)
    crop_h, crop_w = cfg.INPUT.CROP.SIZE
    # full-size crops (detectron2 does not pad them) that both output strides divide
    assert min(cfg.INPUT.MIN_SIZE_TRAIN) >= max(crop_h, crop_w)
    assert crop_h % 32 == 0 and crop_w % 32 == 0
    assert ("dropblock" in config_file) == (
        cfg.MODEL.DROPBLOCK.RESNET.ENABLED or cfg.MODEL.DROPBLOCK.SEM_SEG_HEAD.ENABLED
    )
    if "imagenet" in config_file:
        assert cfg.MODEL.WEIGHTS == "detectron2://DeepLab/R-52.pkl"
    else:
        assert cfg.MODEL.WEIGHTS == "" and cfg.MODEL.RESNETS.NORM == "GN"


def test_full_size_gn_dropblock_deeplab_builds_from_its_config():
    from dropblock_det.engine.config_checks import load_config

    cfg = load_config(str(CONFIGS / "PascalVOC-SemanticSegmentation" / SCRATCH_DROPBLOCK))
    cfg.MODEL.DEVICE = "cpu"
    model = build_model(cfg)
    head = model.sem_seg_head
    assert isinstance(head, DropBlockDeepLabV3PlusHead)
    assert head.decoder["res2"]["project_conv"].out_channels == 64  # GN-compatible, not 48
    assert model.backbone.output_shape()["res5"].channels == 2048
    assert len(list(iter_regularizers(model))) == 4 * (6 + 3) + 7


def test_head_copies_a_regularizer_module_given_instead_of_a_factory():
    # LazyConfig: dropblock=L(DropBlock2d)(...) is instantiated into one module. Copies:
    # 4 ASPP conv branches (1x1 + 3 dilations), the projection, 2 decoder convs.
    from dropblock_det.layers import DropBlock2d

    given = DropBlock2d(0.8, 3)
    head = DropBlockDeepLabV3PlusHead(
        {"res2": _shape(32, 4), "res5": _shape(64, 16)}, dropblock=given,
        dropblock_positions=["aspp", "project", "decoder"], project_channels=[32],
        aspp_dilations=[1, 2, 3], aspp_dropout=0.0, decoder_channels=[32, 32], common_stride=4,
        norm="GN", train_size=None, num_classes=3,
    )
    placed = [m for _, m in iter_regularizers(head)]
    assert len(placed) == 4 + 1 + 2 and len({id(m) for m in placed + [given]}) == len(placed) + 1
    head.train()
    features = {"res2": torch.rand(2, 32, 16, 16), "res5": torch.rand(2, 64, 4, 4)}
    assert head.layers(features).shape == (2, 3, 16, 16)


@pytest.mark.parametrize("opts, match", [
    # KeyError: 'res6' / max() of an empty sequence / KeyError: 'gn' before, naming no key.
    (["MODEL.RESNETS.OUT_FEATURES", ["res3", "res6"]], r"^MODEL\.RESNETS\.OUT_FEATURES=\['res3', 'res6'\]: unknown name"),
    (["MODEL.RESNETS.OUT_FEATURES", []], r"^MODEL\.RESNETS\.OUT_FEATURES=\[\]: no feature"),
    (["MODEL.RESNETS.NORM", "gn"], r"^MODEL\.RESNETS\.NORM='gn': not a norm detectron2's get_norm knows"),
])
def test_deeplab_backbone_refuses_outputs_and_norms_resnet_does_not_have_naming_the_key(tmp_path, opts, match):
    from detectron2.modeling import build_backbone

    # (With DropBlock in res4/res5 the placement check names the stages those outputs do not build.)
    with pytest.raises(ValueError, match=match):
        build_backbone(_cfg(tmp_path, SCRATCH_DROPBLOCK, opts + ["MODEL.DROPBLOCK.RESNET.ENABLED", False]))


@pytest.mark.parametrize("opts", [
    ["MODEL.RESNETS.RES4_DILATION", 2, "MODEL.RESNETS.RES5_DILATION", 4],  # output stride 8
    ["MODEL.RESNETS.RES5_DILATION", 1],  # output stride 32
    ["MODEL.RESNETS.STEM_TYPE", "basic"],  # detectron2's BasicStem, not the DeepLab stem
    ["MODEL.RESNETS.OUT_FEATURES", ["res2", "res4"], "MODEL.DROPBLOCK.RESNET.STAGES", ["res4"],
     "MODEL.DROPBLOCK.RESNET.STAGE_DROP_SCALES", []],  # res5 not built
])
def test_deeplab_backbone_variants_build_what_stock_detectron2_builds(tmp_path, opts):
    # Same dilations and strides (multi-grid x RES5_DILATION), same stages, same weights
    # drawn in the same order (and as many draws) as build_resnet_deeplab_backbone.
    from detectron2.modeling import build_backbone

    cfg = _cfg(tmp_path, SCRATCH_DROPBLOCK, opts)
    built = []
    for config in (cfg, _stock_cfg(cfg)):
        torch.manual_seed(0)
        backbone = build_backbone(config)
        built.append((backbone, torch.rand(1)))
    (ours, ours_next), (stock, stock_next) = built
    convs = lambda m: [(n, c.dilation, c.stride) for n, c in m.named_modules() if isinstance(c, torch.nn.Conv2d)]  # noqa: E731
    assert convs(ours) == convs(stock)
    assert ours.output_shape() == stock.output_shape()
    theirs = stock.state_dict()
    assert list(ours.state_dict()) == list(theirs)
    assert all(torch.equal(v, theirs[k]) for k, v in ours.state_dict().items())
    assert torch.equal(ours_next, stock_next)
