"""DropBlockFPN and the ResNet-FPN backbone builders: regularizers after lateral / output
convs and in P6/P7 exactly where MODEL.DROPBLOCK.FPN says, and stock FPN otherwise."""
import pytest
import torch
from torch import nn

from detectron2.layers import ShapeSpec
from detectron2.modeling.backbone.fpn import (
    build_resnet_fpn_backbone,
    build_retinanet_resnet_fpn_backbone,
)

import dropblock_det  # noqa: F401
from dropblock_det.layers import KeepProbRegularizer
from dropblock_det.modeling import (
    DropBlockFPN,
    DropBlockLastLevelP6P7,
    build_dropblock_resnet_fpn_backbone,
    build_dropblock_retinanet_resnet_fpn_backbone,
)

from conftest import small_retinanet_cfg

INPUT = ShapeSpec(channels=3)


def _cfg(fpn_positions=None, resnet=False):
    cfg = small_retinanet_cfg()
    cfg.MODEL.FPN.NORM = "GN"
    if fpn_positions is not None:
        cfg.MODEL.DROPBLOCK.FPN.ENABLED = True
        cfg.MODEL.DROPBLOCK.FPN.POSITIONS = fpn_positions
    cfg.MODEL.DROPBLOCK.RESNET.ENABLED = resnet
    return cfg


def _fpn_regularizer_names(backbone):
    return {
        n
        for n, m in backbone.named_modules()
        if isinstance(m, KeepProbRegularizer) and not n.startswith("bottom_up.")
    }


@pytest.mark.parametrize(
    "positions,expected",
    [
        (["lateral"], {"dropblock_lateral3", "dropblock_lateral4", "dropblock_lateral5"}),
        (["output"], {"dropblock_output3", "dropblock_output4", "dropblock_output5"}),
        (["top_block"], {"top_block.dropblock_p6", "top_block.dropblock_p7"}),
        (
            ["lateral", "output", "top_block"],
            {f"dropblock_{p}{s}" for p in ("lateral", "output") for s in (3, 4, 5)}
            | {"top_block.dropblock_p6", "top_block.dropblock_p7"},
        ),
    ],
)
def test_retinanet_fpn_regularizers_exactly_at_configured_positions(positions, expected):
    backbone = build_dropblock_retinanet_resnet_fpn_backbone(_cfg(positions), INPUT)
    assert isinstance(backbone, DropBlockFPN)
    assert isinstance(backbone.top_block, DropBlockLastLevelP6P7)
    assert _fpn_regularizer_names(backbone) == expected
    assert not any(isinstance(m, KeepProbRegularizer) for m in backbone.bottom_up.modules())


def test_plain_fpn_names_levels_p2_to_p5_and_rejects_top_block():
    cfg = _cfg(["lateral", "output"])
    cfg.MODEL.RESNETS.OUT_FEATURES = ["res2", "res3", "res4", "res5"]
    cfg.MODEL.FPN.IN_FEATURES = ["res2", "res3", "res4", "res5"]
    backbone = build_dropblock_resnet_fpn_backbone(cfg, INPUT)
    assert _fpn_regularizer_names(backbone) == {
        f"dropblock_{p}{s}" for p in ("lateral", "output") for s in (2, 3, 4, 5)
    }
    assert list(backbone.output_shape()) == ["p2", "p3", "p4", "p5", "p6"]
    cfg.MODEL.DROPBLOCK.FPN.POSITIONS = ["output", "top_block"]
    with pytest.raises(ValueError, match=r"MODEL\.DROPBLOCK\.FPN\.POSITIONS.*top_block"):
        build_dropblock_resnet_fpn_backbone(cfg, INPUT)


@pytest.mark.parametrize(
    "ours_builder,stock_builder,in_features",
    [
        (
            build_dropblock_retinanet_resnet_fpn_backbone,
            build_retinanet_resnet_fpn_backbone,
            ["res3", "res4", "res5"],
        ),
        (
            build_dropblock_resnet_fpn_backbone,
            build_resnet_fpn_backbone,
            ["res2", "res3", "res4", "res5"],
        ),
    ],
)
# "avg" too: DropBlockFPN.forward replaces FPN.forward, halving the top-down sum itself,
# and both builders must pass MODEL.FPN.FUSE_TYPE on.
@pytest.mark.parametrize("fuse_type", ["sum", "avg"])
def test_disabled_fpn_is_stock_fpn(ours_builder, stock_builder, in_features, fuse_type):
    cfg = _cfg()
    cfg.MODEL.RESNETS.OUT_FEATURES = in_features
    cfg.MODEL.FPN.IN_FEATURES = in_features
    cfg.MODEL.FPN.FUSE_TYPE = fuse_type
    torch.manual_seed(0)
    stock = stock_builder(cfg, INPUT)
    torch.manual_seed(0)
    ours = ours_builder(cfg, INPUT)
    assert [n for n, _ in ours.named_modules()] == [n for n, _ in stock.named_modules()]
    assert list(ours.state_dict()) == list(stock.state_dict())
    x = torch.randn(2, 3, 64, 64)
    stock_out, our_out = stock(x), ours(x)
    assert list(our_out) == list(stock_out)
    assert all(torch.equal(our_out[k], stock_out[k]) for k in stock_out)


def test_enabled_fpn_loads_stock_weights_and_matches_stock_in_eval():
    cfg = _cfg(["lateral", "output", "top_block"], resnet=True)
    stock = build_retinanet_resnet_fpn_backbone(cfg, INPUT).eval()
    ours = build_dropblock_retinanet_resnet_fpn_backbone(cfg, INPUT).eval()
    ours.load_state_dict(stock.state_dict(), strict=True)
    x = torch.randn(2, 3, 64, 64)
    stock_out, our_out = stock(x), ours(x)
    assert all(torch.equal(our_out[k], stock_out[k]) for k in stock_out)
    ours.train()
    torch.manual_seed(0)
    assert not torch.equal(ours(x)["p3"], stock_out["p3"])


class _Tag(nn.Module):
    """Adds a distinct constant so a test can tell which regularizer touched a tensor."""

    def __init__(self, log, value):
        super().__init__()
        self.log, self.value = log, value

    def forward(self, x):
        self.log.append((self.value, tuple(x.shape)))
        return x + self.value


def test_regularizers_follow_their_own_level_convs_in_top_down_order():
    cfg = _cfg()
    log = []
    counter = iter(range(1, 100))
    from detectron2.modeling.backbone.resnet import build_resnet_backbone

    bottom_up = build_resnet_backbone(cfg, INPUT)
    fpn = DropBlockFPN(
        bottom_up=bottom_up,
        in_features=["res3", "res4", "res5"],
        out_channels=32,
        top_block=DropBlockLastLevelP6P7(512, 32, dropblock=lambda: _Tag(log, 100 + next(counter))),
        dropblock=lambda: _Tag(log, next(counter)),
        dropblock_positions=["lateral", "output"],
    )
    # Modules are created per position, coarsest level first: lateral5, 4, 3, output5, 4, 3.
    tags = {name: m.value for name, m in fpn.named_modules() if isinstance(m, _Tag)}
    assert len(tags) == 8
    x = torch.randn(1, 3, 64, 64)
    out = fpn(x)
    order = [value for value, _ in log]
    assert order == [
        tags["dropblock_lateral5"], tags["dropblock_output5"],
        tags["dropblock_lateral4"], tags["dropblock_output4"],
        tags["dropblock_lateral3"], tags["dropblock_output3"],
        tags["top_block.dropblock_p6"], tags["top_block.dropblock_p7"],
    ]
    shapes = {value: shape for value, shape in log}
    assert shapes[tags["dropblock_output3"]] == tuple(out["p3"].shape) == (1, 32, 8, 8)
    assert shapes[tags["dropblock_lateral5"]] == (1, 32, 2, 2)
    assert shapes[tags["top_block.dropblock_p7"]] == tuple(out["p7"].shape)


def test_fpn_rejects_unknown_position():
    from detectron2.modeling.backbone.resnet import build_resnet_backbone

    with pytest.raises(ValueError, match="'top'"):
        DropBlockFPN(
            bottom_up=build_resnet_backbone(_cfg(), INPUT),
            in_features=["res3", "res4", "res5"],
            out_channels=32,
            dropblock=nn.Identity,
            dropblock_positions=["lateral", "top"],
        )


_BOTH_FPN_BUILDERS = [build_dropblock_retinanet_resnet_fpn_backbone, build_dropblock_resnet_fpn_backbone]


@pytest.mark.parametrize("builders,in_features,out_features,match", [
    # detectron2's FPN: a bare KeyError: 'res2' / AssertionError: [] / KeyError: 'res5' (P6/P7's input).
    (_BOTH_FPN_BUILDERS, ["res2", "res3", "res4", "res5"], ["res3", "res4", "res5"],
     r"^MODEL\.FPN\.IN_FEATURES=\['res2', .*\]: 'res2' not among the ResNet's outputs \['res3', 'res4', 'res5'\] "
     r"\(MODEL\.RESNETS\.OUT_FEATURES="),
    (_BOTH_FPN_BUILDERS, [], ["res3", "res4", "res5"], r"^MODEL\.FPN\.IN_FEATURES=\[\]: no feature; expected names from"),
    # Out of order or a level skipped: detectron2's FPN asserted "not log2 contiguous".
    (_BOTH_FPN_BUILDERS, ["res5", "res4", "res3"], ["res3", "res4", "res5"],
     r"^MODEL\.FPN\.IN_FEATURES=\['res5', 'res4', 'res3'\]: their strides \[32, 16, 8\] must double"),
    (_BOTH_FPN_BUILDERS, ["res3", "res5"], ["res3", "res4", "res5"],
     r"^MODEL\.FPN\.IN_FEATURES=\['res3', 'res5'\]: their strides \[8, 32\] must double"),
    # One pair of neighbours doubling does not make the others right.
    (_BOTH_FPN_BUILDERS, ["res2", "res3", "res5"], ["res2", "res3", "res4", "res5"],
     r"^MODEL\.FPN\.IN_FEATURES=\['res2', 'res3', 'res5'\]: their strides \[4, 8, 32\] must double"),
    ([build_dropblock_retinanet_resnet_fpn_backbone], ["res3", "res4"], ["res3", "res4"],
     r"^MODEL\.RESNETS\.OUT_FEATURES=\['res3', 'res4'\]: no 'res5', from which "
     r"build_dropblock_retinanet_resnet_fpn_backbone computes P6/P7"),
    # P6 max-pooled from p5, which FPN on res2..res4 does not give: built, then an IndexError at
    # the first forward (detectron2's FPN.forward looks p5 up among the levels it computed).
    ([build_dropblock_resnet_fpn_backbone], ["res2", "res3", "res4"], ["res2", "res3", "res4"],
     r"^MODEL\.FPN\.IN_FEATURES=\['res2', 'res3', 'res4'\] give the levels \['p2', 'p3', 'p4'\], no 'p5', from "
     r"which build_dropblock_resnet_fpn_backbone max-pools its top level"),
])
def test_fpn_inputs_the_resnet_does_not_give_are_refused_naming_the_key(builders, in_features, out_features, match):
    cfg = _cfg()
    cfg.MODEL.FPN.IN_FEATURES = in_features
    cfg.MODEL.RESNETS.OUT_FEATURES = out_features
    for builder in builders:
        with pytest.raises(ValueError, match=match):
            builder(cfg, INPUT)


@pytest.mark.parametrize("builder", _BOTH_FPN_BUILDERS)
def test_a_fuse_type_fpn_does_not_take_is_refused_naming_the_key(builder):
    cfg = _cfg()
    cfg.MODEL.FPN.FUSE_TYPE = "mean"  # detectron2's FPN: an AssertionError without a message
    with pytest.raises(ValueError, match=r"^MODEL\.FPN\.FUSE_TYPE='mean': expected 'sum' or 'avg'"):
        builder(cfg, INPUT)


def test_a_top_block_reading_a_level_the_fpn_does_not_give_is_refused_at_construction():
    from detectron2.modeling.backbone.fpn import LastLevelMaxPool
    from detectron2.modeling.backbone.resnet import build_resnet_backbone

    cfg = _cfg()
    cfg.MODEL.RESNETS.OUT_FEATURES = ["res2", "res3", "res4"]
    arguments = dict(bottom_up=build_resnet_backbone(cfg, INPUT), out_channels=32, top_block=LastLevelMaxPool())
    with pytest.raises(ValueError, match=r"^DropBlockFPN: top_block LastLevelMaxPool reads 'p5', which is neither "
                                         r"a bottom_up output nor a level of in_features=\['res2', 'res3', 'res4'\]"):
        DropBlockFPN(in_features=["res2", "res3", "res4"], **arguments)
    arguments["top_block"] = None
    fpn = DropBlockFPN(in_features=["res2", "res3", "res4"], **arguments)
    assert [out.shape[-1] for out in fpn(torch.zeros(1, 3, 32, 32)).values()] == [8, 4, 2]


def test_disabled_fpn_places_nothing_even_with_top_block_in_its_positions():
    # FPN.ENABLED False turns every FPN position off, P6/P7's included.
    cfg = _cfg()
    cfg.MODEL.DROPBLOCK.FPN.POSITIONS = ["lateral", "output", "top_block"]
    backbone = build_dropblock_retinanet_resnet_fpn_backbone(cfg, INPUT)
    assert _fpn_regularizer_names(backbone) == set()


class _Affine(nn.Module):
    """An affine marker, 2x + 1: it commutes neither with a conv nor with the
    top-down sum, so the output values tell where each regularizer was applied."""

    def forward(self, x):
        return 2 * x + 1


def test_regularized_values_feed_the_top_down_sum_the_output_convs_and_p7():
    # Paper / official code: DropBlock on the lateral conv's output (before the top-down
    # sum), on the output conv's output, on P6 (so P7 is computed from the regularized P6).
    from detectron2.modeling.backbone.resnet import build_resnet_backbone

    torch.manual_seed(0)
    fpn = DropBlockFPN(
        bottom_up=build_resnet_backbone(_cfg(), INPUT),
        in_features=["res3", "res4", "res5"],
        out_channels=32,
        top_block=DropBlockLastLevelP6P7(512, 32, dropblock=_Affine),
        dropblock=_Affine,
        dropblock_positions=["lateral", "output"],
    ).eval()
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        out = fpn(x)
        reg = _Affine()
        feats = fpn.bottom_up(x)
        prev, expected = None, {}
        for level, lateral_conv, output_conv in zip((5, 4, 3), fpn.lateral_convs, fpn.output_convs):
            lateral = reg(lateral_conv(feats[f"res{level}"]))
            prev = lateral if prev is None else lateral + nn.functional.interpolate(prev, scale_factor=2.0)
            expected[f"p{level}"] = reg(output_conv(prev))
        expected["p6"] = reg(fpn.top_block.p6(feats["res5"]))
        expected["p7"] = reg(fpn.top_block.p7(torch.relu(expected["p6"])))
    assert list(out) == ["p3", "p4", "p5", "p6", "p7"]
    for name in out:
        assert torch.allclose(out[name], expected[name], atol=1e-5), name


def test_fpn_and_top_block_copy_a_regularizer_module_given_instead_of_a_factory():
    from dropblock_det.layers import DropBlock2d

    given = DropBlock2d(0.8, 3)
    bottom_up = build_dropblock_resnet_fpn_backbone(_cfg(), INPUT).bottom_up
    fpn = DropBlockFPN(
        bottom_up=bottom_up, in_features=["res3", "res4", "res5"], out_channels=32,
        top_block=DropBlockLastLevelP6P7(512, 32, dropblock=given),
        dropblock=given, dropblock_positions=["output"],
    )
    placed = [m for m in fpn.modules() if isinstance(m, KeepProbRegularizer)]
    assert len(placed) == 5 and len({id(m) for m in placed + [given]}) == 6
    assert set(fpn(torch.randn(1, 3, 64, 64))) == {"p3", "p4", "p5", "p6", "p7"}


def test_a_top_block_reading_a_level_other_than_the_coarsest_gets_that_level_as_in_stock_fpn():
    # A top block of the user's own may read any level (here P6 max-pooled from p4, not p5):
    # FPN.forward hands it that level, which DropBlockFPN.forward must do too.
    from detectron2.modeling.backbone.fpn import FPN, LastLevelMaxPool
    from detectron2.modeling.backbone.resnet import build_resnet_backbone

    top_block = LastLevelMaxPool()
    top_block.in_feature = "p4"
    arguments = dict(bottom_up=build_resnet_backbone(_cfg(), INPUT), in_features=["res3", "res4", "res5"],
                     out_channels=32, top_block=top_block)
    torch.manual_seed(0)
    stock = FPN(**arguments)
    torch.manual_seed(0)
    ours = DropBlockFPN(**arguments)
    x = torch.randn(1, 3, 64, 64)
    stock_out, our_out = stock(x), ours(x)
    assert list(our_out) == list(stock_out) == ["p3", "p4", "p5", "p6"]
    assert our_out["p6"].shape[-1] == 2  # p4 (4 x 4) max-pooled, not p5 (2 x 2)
    assert all(torch.equal(our_out[k], stock_out[k]) for k in stock_out)


def test_a_disabled_fpn_with_top_block_in_its_positions_builds_the_plain_fpn_without_regularizers():
    # 'top_block' is refused for the max-pooled P6 only where the FPN regularizers are on;
    # with FPN.ENABLED False (a base config's POSITIONS kept, DropBlock off) the R-CNN FPN builds.
    cfg = _cfg()
    cfg.MODEL.RESNETS.OUT_FEATURES = cfg.MODEL.FPN.IN_FEATURES = ["res2", "res3", "res4", "res5"]
    cfg.MODEL.DROPBLOCK.FPN.POSITIONS = ["lateral", "output", "top_block"]
    backbone = build_dropblock_resnet_fpn_backbone(cfg, INPUT)
    assert _fpn_regularizer_names(backbone) == set()
    assert list(backbone.output_shape()) == ["p2", "p3", "p4", "p5", "p6"]
