"""build_dropblock_resnet_backbone and the DropBlock residual blocks: regularizers exactly
where MODEL.DROPBLOCK says (by module name), per-stage keep probabilities, DropPath, and
stock detectron2's ResNet when nothing is enabled."""
import pytest
import torch
from torch import nn

from detectron2.layers import ShapeSpec
from detectron2.modeling.backbone.resnet import build_resnet_backbone

import dropblock_det  # noqa: F401
from dropblock_det.layers import DropBlock2d, DropPath, KeepProbRegularizer
from dropblock_det.modeling import (
    DropBlockBasicBlock,
    DropBlockBottleneckBlock,
    build_dropblock_resnet_backbone,
)

from conftest import backward_node_names, small_retinanet_cfg

INPUT = ShapeSpec(channels=3)
NUM_BLOCKS = {18: [2, 2, 2, 2], 50: [3, 4, 6, 3]}
ALL_POSITIONS = ["conv1", "conv2", "conv3", "shortcut"]


def _cfg(depth=18, **dropblock):
    cfg = small_retinanet_cfg(depth=depth)
    cfg.MODEL.BACKBONE.NAME = "build_dropblock_resnet_backbone"
    cfg.MODEL.RESNETS.OUT_FEATURES = ["res2", "res3", "res4", "res5"]
    cfg.MODEL.BACKBONE.FREEZE_AT = 0
    for key, value in dropblock.items():
        node = cfg.MODEL.DROPBLOCK
        *parents, leaf = key.split("__")
        for name in parents:
            node = node[name]
        node[leaf] = value
    return cfg


def _regularizer_names(model):
    return {n for n, m in model.named_modules() if isinstance(m, KeepProbRegularizer)}


def _expected_names(depth, stages, positions):
    return {
        f"{stage}.{block}.dropblock_{position}"
        for stage, n in zip(["res2", "res3", "res4", "res5"], NUM_BLOCKS[depth])
        if stage in stages
        for block in range(n)
        for position in positions
    }


@pytest.mark.parametrize(
    "depth,stages,positions,expected_positions",
    [
        # conv3 is in the default positions; basic blocks (R18) have no conv3
        (18, ["res4", "res5"], ALL_POSITIONS, ["conv1", "conv2", "shortcut"]),
        (18, ["res3"], ["shortcut"], ["shortcut"]),
        (50, ["res4", "res5"], ALL_POSITIONS, ALL_POSITIONS),
        (50, ["res2", "res5"], ["conv3"], ["conv3"]),
    ],
)
def test_dropblock_modules_only_at_configured_stages_and_positions(
    depth, stages, positions, expected_positions
):
    cfg = _cfg(depth, RESNET__ENABLED=True, RESNET__STAGES=stages, RESNET__POSITIONS=positions)
    backbone = build_dropblock_resnet_backbone(cfg, INPUT)
    assert _regularizer_names(backbone) == _expected_names(depth, stages, expected_positions)
    assert all(isinstance(m, DropBlock2d) for n, m in backbone.named_modules() if "dropblock" in n)
    block_class = DropBlockBasicBlock if depth < 50 else DropBlockBottleneckBlock
    assert all(isinstance(b, block_class) for stage in backbone.stages for b in stage)


def test_stage_drop_scales_give_per_stage_target_keep_prob():
    cfg = _cfg(KEEP_PROB=0.8, RESNET__ENABLED=True, RESNET__STAGE_DROP_SCALES=[0.25, 1.0])
    backbone = build_dropblock_resnet_backbone(cfg, INPUT)
    targets = {n: m.target_keep_prob for n, m in backbone.named_modules() if "dropblock" in n}
    assert targets and all(
        v == pytest.approx(0.95 if n.startswith("res4") else 0.8) for n, v in targets.items()
    )
    # The keep_prob used in forward too, not only the target a schedule would reach.
    assert all(m.keep_prob == m.target_keep_prob for n, m in backbone.named_modules() if "dropblock" in n)
    block = backbone.res5[0].dropblock_conv1
    assert (block.block_size, block.shared_mask) == (7, False)


def test_regularizer_type_from_config_is_used():
    from dropblock_det.layers import SpatialDropout

    cfg = _cfg(TYPE="SpatialDropout", RESNET__ENABLED=True, RESNET__STAGES=["res5"])
    backbone = build_dropblock_resnet_backbone(cfg, INPUT)
    modules = [m for n, m in backbone.named_modules() if "dropblock" in n]
    assert modules and all(isinstance(m, SpatialDropout) for m in modules)


@pytest.mark.parametrize("type_name", ["Dropout", "SpatialDropout"])
def test_dropout_types_from_config_take_the_blocks_relu_into_their_own_pass(type_name):
    # A block hands conv1's output to its regularizer with relu=True: a Dropout or
    # SpatialDropout chosen by TYPE must regularize it in the pass that keeps only its output
    # for backward, not run the ReLU and then `masked_scale` (relu(x) and the mask kept).
    cfg = _cfg(TYPE=type_name, KEEP_PROB=0.5, RESNET__ENABLED=True, RESNET__STAGES=["res5"],
               RESNET__POSITIONS=["conv1"])
    backbone = build_dropblock_resnet_backbone(cfg, INPUT).train()
    names = backward_node_names(backbone(torch.randn(1, 3, 64, 64))["res5"])
    assert names.count("_ReluThenMaskedScaleBackward") == NUM_BLOCKS[18][3]
    assert "_MaskedScaleBackward" not in names


def test_drop_path_rate_adds_drop_path_to_every_block():
    cfg = _cfg(DROP_PATH_RATE=0.2)
    backbone = build_dropblock_resnet_backbone(cfg, INPUT)
    expected = {
        f"{stage}.{block}.drop_path"
        for stage, n in zip(["res2", "res3", "res4", "res5"], NUM_BLOCKS[18])
        for block in range(n)
    }
    assert _regularizer_names(backbone) == expected
    drop_paths = [m for n, m in backbone.named_modules() if n.endswith("drop_path")]
    assert all(isinstance(m, DropPath) for m in drop_paths)
    assert all(m.target_keep_prob == pytest.approx(0.8) for m in drop_paths)


def test_disabled_backbone_matches_stock_resnet_names_keys_weights_and_outputs():
    cfg = _cfg(depth=50)
    cfg.MODEL.RESNETS.NORM = "GN"
    torch.manual_seed(0)
    stock = build_resnet_backbone(cfg, INPUT)
    torch.manual_seed(0)
    ours = build_dropblock_resnet_backbone(cfg, INPUT)
    assert [n for n, _ in ours.named_modules()] == [n for n, _ in stock.named_modules()]
    stock_state, our_state = stock.state_dict(), ours.state_dict()
    assert list(our_state) == list(stock_state)
    # Regularizers draw no random numbers at construction: same seed, same weights.
    assert all(torch.equal(our_state[k], stock_state[k]) for k in stock_state)
    x = torch.randn(1, 3, 32, 32)
    stock_out, our_out = stock(x), ours(x)
    assert all(torch.equal(our_out[k], stock_out[k]) for k in stock_out)


@pytest.mark.parametrize("out_features", [["res4"], ["stem", "res2"]])
def test_a_backbone_keeping_fewer_stages_makes_the_stock_draws(out_features):
    # A C4 backbone (res4): stock build_resnet_backbone builds every stage and ResNet drops
    # the later ones; building fewer would leave the generator elsewhere than stock's, so
    # the same seed would give the heads other weights than a stock model's.
    cfg = _cfg(depth=50, RESNET__ENABLED=True, RESNET__STAGES=["res2"])
    cfg.MODEL.RESNETS.OUT_FEATURES = out_features
    torch.manual_seed(0)
    stock = build_resnet_backbone(cfg, INPUT)
    after_stock = torch.rand(4)
    torch.manual_seed(0)
    ours = build_dropblock_resnet_backbone(cfg, INPUT)
    assert torch.equal(torch.rand(4), after_stock)
    assert [n for n, _ in ours.named_children()] == [n for n, _ in stock.named_children()]
    stock_state = stock.state_dict()
    assert all(torch.equal(t, stock_state[k]) for k, t in ours.state_dict().items())


def test_enabled_backbone_adds_no_parameters_or_buffers_and_is_identity_in_eval():
    stages = ["res2", "res3", "res4", "res5"]
    cfg = _cfg(RESNET__ENABLED=True, RESNET__STAGES=stages, DROP_PATH_RATE=0.1)
    torch.manual_seed(0)
    stock = build_resnet_backbone(cfg, INPUT)
    torch.manual_seed(0)
    ours = build_dropblock_resnet_backbone(cfg, INPUT)
    assert ours.state_dict().keys() == stock.state_dict().keys()
    ours.load_state_dict(stock.state_dict(), strict=True)
    x = torch.randn(2, 3, 32, 32)
    stock.eval(), ours.eval()
    assert all(torch.equal(ours(x)[k], stock(x)[k]) for k in ["res2", "res5"])
    ours.train(), stock.train()
    torch.manual_seed(1)
    assert not torch.equal(ours(x)["res5"], stock(x)["res5"])  # DropBlock acts in training


@pytest.mark.parametrize("out_features,match", [
    # detectron2's ResNet: "max() arg is an empty sequence" / "AssertionError: Available children: stem"
    ([], r"=\[\]: no feature; expected names from \['stem', 'res2', 'res3', 'res4', 'res5'\]"),
    (["res6"], r"=\['res6'\]: unknown name 'res6'; expected names from \['stem', "),
    (["res3", "p4"], r"=\['res3', 'p4'\]: unknown name 'p4'; expected names from \['stem', "),
])
def test_out_features_naming_no_or_an_unknown_stage_are_refused_naming_the_key(out_features, match):
    cfg = _cfg()
    cfg.MODEL.RESNETS.OUT_FEATURES = out_features
    with pytest.raises(ValueError, match=r"^MODEL\.RESNETS\.OUT_FEATURES" + match):
        build_dropblock_resnet_backbone(cfg, INPUT)


@pytest.mark.parametrize("depth", [34, 101])
def test_every_depth_and_resnets_key_gives_the_stock_backbone(depth):
    # Small channels so deep ResNets build fast; every MODEL.RESNETS key that shapes the
    # stages (blocks per stage, stem/res2 channels, groups, width, stride in the 3x3 conv).
    cfg = _cfg(depth=depth)
    resnets = cfg.MODEL.RESNETS
    resnets.STEM_OUT_CHANNELS = 8
    resnets.OUT_FEATURES = ["stem", "res3", "res5"]
    if depth >= 50:
        resnets.RES2_OUT_CHANNELS, resnets.NUM_GROUPS, resnets.WIDTH_PER_GROUP = 16, 2, 2
        resnets.STRIDE_IN_1X1 = False
    torch.manual_seed(0)
    stock = build_resnet_backbone(cfg, INPUT).eval()
    ours = build_dropblock_resnet_backbone(cfg, INPUT).eval()
    assert [n for n, _ in ours.named_modules()] == [n for n, _ in stock.named_modules()]
    ours.load_state_dict(stock.state_dict(), strict=True)
    x = torch.randn(1, 3, 32, 32)
    stock_out, our_out = stock(x), ours(x)
    assert list(our_out) == ["stem", "res3", "res5"]
    assert all(torch.equal(our_out[k], stock_out[k]) for k in stock_out)


@pytest.mark.parametrize("depth,key,value,match", [
    # Without the key, the plain-argument message ("depth=42", "out_channels=128") or none.
    (50, "DEPTH", 42, r"^MODEL\.RESNETS\.DEPTH=42: expected one of 18, 34, 50, 101, 152"),
    (18, "RES2_OUT_CHANNELS", 128, r"^MODEL\.RESNETS\.RES2_OUT_CHANNELS=128, MODEL\.RESNETS\.NUM_GROUPS=1: ResNet-18 "),
    # build_resnet_backbone asserts RES5_DILATION in (1, 2); 4 is for the DeepLab backbone.
    (50, "RES5_DILATION", 4, r"^MODEL\.RESNETS\.RES5_DILATION=4: expected 1 or 2"),
    # get_norm's bare KeyError: 'gn'.
    (18, "NORM", "gn", r"^MODEL\.RESNETS\.NORM='gn': not a norm detectron2's get_norm knows"),
])
def test_resnets_keys_are_refused_naming_the_key(depth, key, value, match):
    cfg = _cfg(depth=depth)
    cfg.MODEL.RESNETS[key] = value
    with pytest.raises(ValueError, match=match):
        build_dropblock_resnet_backbone(cfg, INPUT)


def test_dropblock_config_is_validated_by_key_before_building():
    cfg = _cfg(RESNET__ENABLED=True, RESNET__STAGES=["res6"])
    with pytest.raises(ValueError, match=r"^MODEL\.DROPBLOCK\.RESNET\.STAGES=\['res6'\]"):
        build_dropblock_resnet_backbone(cfg, INPUT)


def test_freeze_at_and_out_features_behave_as_stock():
    cfg = _cfg(RESNET__ENABLED=True)
    cfg.MODEL.BACKBONE.FREEZE_AT = 2
    cfg.MODEL.RESNETS.OUT_FEATURES = ["res3", "res4", "res5"]
    backbone = build_dropblock_resnet_backbone(cfg, INPUT)
    assert backbone.output_shape()["res5"].stride == 32
    assert not any(p.requires_grad for p in backbone.res2.parameters())
    assert all(p.requires_grad for p in backbone.res4.parameters())


class _Recorder(nn.Module):
    """Records the shape of every input and marks the output by adding `mark`."""

    def __init__(self, log, name, mark=0.0):
        super().__init__()
        self.log, self.name, self.mark = log, name, mark

    def forward(self, x):
        self.log.append((self.name, tuple(x.shape)))
        return x + self.mark


def _recording_factory(log):
    names = iter(["conv1", "conv2", "conv3", "shortcut"])
    return lambda: _Recorder(log, next(names))


def test_bottleneck_applies_regularizers_after_each_conv_and_on_the_shortcut_in_order():
    log = []
    block = DropBlockBottleneckBlock(
        16, 32, bottleneck_channels=8, stride=2, norm="",
        dropblock=_recording_factory(log),
        dropblock_positions=["conv1", "conv2", "conv3", "shortcut"],
    )
    out = block(torch.randn(2, 16, 12, 12))
    assert out.shape == (2, 32, 6, 6)
    # detectron2 puts the stride in the 3x3 conv by default (stride_in_1x1=False)
    assert log == [
        ("conv1", (2, 8, 12, 12)),
        ("conv2", (2, 8, 6, 6)),
        ("conv3", (2, 32, 6, 6)),
        ("shortcut", (2, 32, 6, 6)),
    ]


def test_shortcut_regularizer_also_applies_to_identity_shortcut():
    log = []
    block = DropBlockBasicBlock(
        8, 8, norm="", dropblock=lambda: _Recorder(log, "shortcut"),
        dropblock_positions=["shortcut"],
    )
    x = torch.randn(1, 8, 5, 5)
    block(x)
    assert block.shortcut is None and log == [("shortcut", (1, 8, 5, 5))]


def test_regularizer_output_is_what_the_block_uses():
    # A "regularizer" that zeroes everything on the shortcut and after conv3 turns the
    # bottleneck into relu(0 + 0) = 0: proof that the block consumes the regularized tensors.
    class Zero(nn.Module):
        def forward(self, x):
            return torch.zeros_like(x)

    block = DropBlockBottleneckBlock(
        8, 8, bottleneck_channels=4, norm="", dropblock=Zero,
        dropblock_positions=["conv3", "shortcut"],
    )
    assert torch.count_nonzero(block(torch.randn(2, 8, 6, 6))) == 0


@pytest.mark.parametrize("drop_path_keep_prob", [1.0, 0.5])
@pytest.mark.parametrize("basic", [False, True], ids=["bottleneck", "basic"])
def test_block_with_dropblock_everywhere_is_the_separate_ops_in_order(basic, drop_path_keep_prob):
    # The block hands its last conv's and the shortcut's DropBlocks the sum and the ReLU (one
    # pass on the Triton path); the result must be the ops of the paper's placement in their
    # order: conv1's (and a bottleneck's conv2's) DropBlock after conv+norm+ReLU, the last
    # conv's on the branch before the sum, DropPath, the shortcut's on the projection, sum,
    # ReLU. ResNet-18/34 (basic blocks) have no conv3.
    kwargs = dict(stride=1, norm="BN", dropblock=lambda: DropBlock2d(0.7, 3, impl="torch"),
                  drop_path_keep_prob=drop_path_keep_prob)
    if basic:
        block = DropBlockBasicBlock(8, 16, dropblock_positions=["conv1", "conv2", "shortcut"], **kwargs)
    else:
        block = DropBlockBottleneckBlock(8, 16, bottleneck_channels=4,
                                         dropblock_positions=["conv1", "conv2", "conv3", "shortcut"], **kwargs)
    block.train()
    x = torch.randn(4, 8, 10, 10)
    torch.manual_seed(0)
    out = block(x)
    torch.manual_seed(0)
    branch = block.dropblock_conv1(torch.relu(block.conv1(x)))
    if basic:
        branch = block.dropblock_conv2(block.conv2(branch))
    else:
        branch = block.dropblock_conv2(torch.relu(block.conv2(branch)))
        branch = block.dropblock_conv3(block.conv3(branch))
    if drop_path_keep_prob < 1.0:
        branch = block.drop_path(branch)
    expected = torch.relu(branch + block.dropblock_shortcut(block.shortcut(x)))
    assert torch.equal(out, expected)


def test_drop_path_drops_whole_residual_branch_per_sample():
    torch.manual_seed(0)
    block = DropBlockBasicBlock(8, 8, norm="", drop_path_keep_prob=0.5).train()
    x = torch.randn(16, 8, 6, 6)
    branch = block.conv2(torch.relu(block.conv1(x)))
    out = block(x)
    kept = torch.relu(branch / 0.5 + x)
    dropped = torch.relu(x)
    per_sample = [
        torch.allclose(out[i], kept[i], atol=1e-6) or torch.allclose(out[i], dropped[i])
        for i in range(16)
    ]
    assert all(per_sample)
    num_dropped = sum(torch.allclose(out[i], dropped[i]) for i in range(16))
    assert 0 < num_dropped < 16
    assert isinstance(block.drop_path, DropPath)


@pytest.mark.parametrize("drop_path_keep_prob", [0.0, 1.5])
def test_block_rejects_a_drop_path_keep_prob_outside_0_1_naming_it(drop_path_keep_prob):
    with pytest.raises(ValueError, match=rf"^drop_path_keep_prob={drop_path_keep_prob}: expected 0 < p <= 1"):
        DropBlockBasicBlock(8, 8, drop_path_keep_prob=drop_path_keep_prob)


def test_make_dropblock_resnet_stages_defaults_and_multi_grid_dilations():
    from dropblock_det.modeling import make_dropblock_resnet_stages

    # res2 out_channels: 256 for bottleneck blocks (64 for basic), doubling per stage.
    stages = make_dropblock_resnet_stages(50, res5_dilation=2, res5_multi_grid=[1, 2, 4])
    assert [stage[-1].out_channels for stage in stages] == [256, 512, 1024, 2048]
    # Multi-grid factors multiply the stage's dilation (DeepLab), in the 3x3 conv of each block.
    assert [block.conv2.dilation for block in stages[3]] == [(2, 2), (4, 4), (8, 8)]
    assert [stage[-1].out_channels for stage in make_dropblock_resnet_stages(18)] == [64, 128, 256, 512]


def test_block_rejects_unknown_position_and_missing_factory():
    with pytest.raises(ValueError, match="'conv3'"):
        DropBlockBasicBlock(8, 8, dropblock=lambda: nn.Identity(), dropblock_positions=["conv3"])
    with pytest.raises(ValueError, match="dropblock"):
        DropBlockBottleneckBlock(8, 8, bottleneck_channels=4, dropblock_positions=["conv1"])


def test_deformable_stages_are_rejected_naming_the_key():
    cfg = _cfg(depth=50)
    cfg.MODEL.RESNETS.DEFORM_ON_PER_STAGE = [False, False, True, True]
    with pytest.raises(ValueError, match=r"MODEL\.RESNETS\.DEFORM_ON_PER_STAGE"):
        build_dropblock_resnet_backbone(cfg, INPUT)


@pytest.mark.parametrize("depth", [18, 34])
def test_only_conv3_on_basic_blocks_is_refused_instead_of_placing_nothing(depth):
    # conv3 is dropped for basic blocks (so the default POSITIONS work at every depth); a
    # list with nothing else used to build a ResNet without any DropBlock, silently.
    cfg = _cfg(depth=depth, RESNET__ENABLED=True, RESNET__POSITIONS=["conv3"])
    with pytest.raises(ValueError, match=rf"RESNET\.POSITIONS=\['conv3'\]: MODEL\.RESNETS\.DEPTH={depth} has basic blocks"):
        build_dropblock_resnet_backbone(cfg, INPUT)
    cfg.MODEL.DROPBLOCK.RESNET.ENABLED = False  # nothing asked for: nothing to refuse
    assert not _regularizer_names(build_dropblock_resnet_backbone(cfg, INPUT))


def test_basic_block_applies_each_regularizer_once_at_its_own_conv():
    log = []
    names = iter(["conv1", "conv2", "shortcut"])
    block = DropBlockBasicBlock(
        8, 16, stride=2, norm="", dropblock=lambda: _Recorder(log, next(names)),
        dropblock_positions=["conv1", "conv2", "shortcut"],
    )
    assert block(torch.randn(2, 8, 12, 12)).shape == (2, 16, 6, 6)
    assert log == [("conv1", (2, 16, 6, 6)), ("conv2", (2, 16, 6, 6)), ("shortcut", (2, 16, 6, 6))]


def test_dilated_res5_is_refused_for_basic_blocks_naming_the_key():
    # detectron2's build_resnet_backbone asserts RES5_DILATION == 1 for ResNet-18/34.
    cfg = _cfg(depth=18)
    cfg.MODEL.RESNETS.RES5_DILATION = 2
    with pytest.raises(ValueError, match=r"MODEL\.RESNETS\.RES5_DILATION=2.*ResNet-18/34"):
        build_dropblock_resnet_backbone(cfg, INPUT)


def test_dilated_res5_keeps_res4_resolution_as_stock():
    # RES5_DILATION 2: res5 dilates instead of striding (output stride 16), as stock detectron2.
    cfg = _cfg(depth=50, RESNET__ENABLED=True)
    cfg.MODEL.RESNETS.RES5_DILATION = 2
    torch.manual_seed(0)
    stock = build_resnet_backbone(cfg, INPUT).eval()
    torch.manual_seed(0)
    ours = build_dropblock_resnet_backbone(cfg, INPUT).eval()
    assert ours.output_shape() == stock.output_shape()
    assert ours.output_shape()["res5"].stride == 16
    ours.load_state_dict(stock.state_dict(), strict=True)
    x = torch.randn(1, 3, 32, 32)
    stock_out, our_out = stock(x), ours(x)
    assert our_out["res5"].shape == (1, 2048, 2, 2)
    assert torch.equal(our_out["res5"], stock_out["res5"])


@pytest.mark.parametrize("block_class", [DropBlockBasicBlock, DropBlockBottleneckBlock])
def test_block_copies_a_regularizer_module_given_instead_of_a_factory(block_class):
    # What LazyConfig gives for dropblock=L(DropBlock2d)(...), e.g. through
    # ResNet.make_default_stages(block_class=..., dropblock=...): one copy per position.
    given = DropBlock2d(0.8, 3)
    extra = {"bottleneck_channels": 4} if block_class is DropBlockBottleneckBlock else {}
    block = block_class(8, 16, stride=2, dropblock=given, dropblock_positions=["conv1", "shortcut"], **extra)
    placed = [block.dropblock_conv1, block.dropblock_shortcut]
    assert len({id(m) for m in placed + [given]}) == 3
    assert all(m.target_keep_prob == 0.8 and m.block_size == 3 for m in placed)
    block.train()
    assert block(torch.randn(2, 8, 8, 8)).shape == (2, 16, 4, 4)


# ----------------------------------------------------------------------------- plain arguments
@pytest.mark.parametrize("kwargs, match", [
    (dict(depth=42), r"depth=42: expected one of 18, 34, 50, 101, 152"),
    (dict(depth=50, res5_dilation=3), r"res5_dilation=3"),
    (dict(depth=18, res5_dilation=2), r"res5_dilation=2: expected 1, 2 or 4 \(1 for ResNet-18/34\)"),
    (dict(depth=50, res4_dilation=4), r"res4_dilation=4: expected 1 or 2"),
    (dict(depth=50, res4_dilation=2, res5_dilation=2), r"res5_dilation=2: must be 4 when res4_dilation is 2"),
    (dict(depth=50, res5_multi_grid=[1, 2]), r"res5_multi_grid=\[1, 2\]: expected one factor per res5 block \(3"),
    # A dilation of 0 or below builds, then fails in torch's conv at the first forward.
    (dict(depth=50, res5_multi_grid=[1, 0, 4]), r"res5_multi_grid=\[1, 0, 4\]: .*each an integer >= 1"),
    (dict(depth=50, last_stage="res6"), r"last_stage='res6'"),
    (dict(depth=34, out_channels=128), r"out_channels=128, num_groups=1: ResNet-34 needs 64 and 1"),
    (dict(dropblock_stages=["res6"]), r"dropblock_stages=\['res6'\]: unknown name 'res6'"),
    (dict(stage_drop_scales=[0.25]), r"stage_drop_scales=\[0.25\]: expected one scale per stage"),
    # float() took True as 1.0 and "1" as 1.0, and failed on None with Python's TypeError.
    (dict(stage_drop_scales=[None, 1.0]), r"stage_drop_scales=\[None, 1.0\]: None for res4 is not a finite number"),
    (dict(stage_drop_scales=[True, 1.0]), r"stage_drop_scales=\[True, 1.0\]: True for res4 is not a finite number"),
    (dict(stage_drop_scales=[0.25, "1"]), r"stage_drop_scales=\[0.25, '1'\]: '1' for res5 is not a finite number"),
    # A scale that drives keep_prob to <= 0 named only drop_scale, an argument the caller never gave.
    (dict(stage_drop_scales=[20, 1.0]), r"stage_drop_scales for res4: .* <= 0"),
    (dict(drop_path_rate=1.0), r"drop_path_rate=1.0: expected 0 <= rate < 1"),
    (dict(depth=18, dropblock_positions=["conv3"]), r"dropblock_positions=\['conv3'\]: ResNet-18 has basic blocks"),
    # Basic blocks take no dilation, groups or multi-grid: ignored silently without these checks.
    (dict(depth=18, res4_dilation=2, res5_dilation=4), r"^res4_dilation=2: expected 1 or 2 \(1 for ResNet-18/34\)"),
    (dict(depth=18, res5_multi_grid=[1, 2]), r"^res5_multi_grid=\[1, 2\]: .*bottleneck blocks only"),
    (dict(depth=18, num_groups=2), r"^out_channels=64, num_groups=2: ResNet-18 needs 64 and 1"),
    # A str would be taken letter by letter; more scales than stages are not silently cut.
    (dict(dropblock_positions="conv1"), r"^dropblock_positions='conv1': expected a list of names"),
    (dict(stage_drop_scales="11"), r"^stage_drop_scales='11': expected a list, one scale per stage"),
    (dict(stage_drop_scales=[0.25, 1.0, 1.0]), r"^stage_drop_scales=\[0.25, 1.0, 1.0\]: expected one scale per stage"),
    (dict(drop_path_rate="0.1"), r"^drop_path_rate='0.1': expected 0 <= rate < 1"),
    (dict(drop_path_rate=False), r"^drop_path_rate=False: expected 0 <= rate < 1"),
    # A regularizer without a keep_prob cannot be scaled (an AttributeError without the check).
    (dict(dropblock=nn.Identity(), stage_drop_scales=[0.25, 1.0]),
     r"^stage_drop_scales for res4: the dropblock regularizer Identity has no keep_prob to scale"),
    # An empty list was refused as "ResNet-50 has basic blocks, which have no conv3".
    (dict(depth=50, dropblock_positions=[]),
     r"^dropblock_positions=\[\]: no position, so nothing would be placed in dropblock_stages=\['res4', 'res5'\]$"),
    # A number failed with Python's "TypeError: 'int' object is not iterable", naming no argument.
    (dict(depth=50, res5_multi_grid=2), r"^res5_multi_grid=2: expected one factor per res5 block \(3"),
    (dict(depth=50, res5_multi_grid="124"), r"^res5_multi_grid='124': expected one factor per res5 block"),
])
def test_make_dropblock_resnet_stages_names_the_bad_argument(kwargs, match):
    from dropblock_det.modeling import make_dropblock_resnet_stages

    with pytest.raises(ValueError, match=match):
        make_dropblock_resnet_stages(**{"dropblock": DropBlock2d(0.9, 3), **kwargs})


def test_make_dropblock_resnet_stages_places_scaled_copies_per_stage():
    from detectron2.modeling.backbone.resnet import BasicStem, ResNet

    from dropblock_det.modeling import make_dropblock_resnet_stages

    template = DropBlock2d(0.8, 3)
    stages = make_dropblock_resnet_stages(
        18, dropblock=template, dropblock_stages=["res3", "res5"], stage_drop_scales=[0.5, 1.0], drop_path_rate=0.1)
    backbone = ResNet(BasicStem(3, 64), stages, out_features=["res5"])
    placed = {n: m for n, m in backbone.named_modules() if "dropblock" in n}
    # conv3 is skipped for basic blocks; the template is copied, never placed or changed.
    assert set(placed) == {f"{s}.{b}.dropblock_{p}" for s in ("res3", "res5") for b in (0, 1)
                           for p in ("conv1", "conv2", "shortcut")}
    assert {round(m.target_keep_prob, 9) for n, m in placed.items() if n.startswith("res3")} == {0.9}
    assert {m.target_keep_prob for n, m in placed.items() if n.startswith("res5")} == {0.8}
    assert all(m is not template and m.block_size == 3 for m in placed.values()) and template.target_keep_prob == 0.8
    assert len({id(m) for m in placed.values()}) == len(placed)
    drop_paths = [m for n, m in backbone.named_modules() if n.endswith("drop_path")]
    assert len(drop_paths) == 8 and all(m.target_keep_prob == pytest.approx(0.9) for m in drop_paths)


def test_a_dropblock_stage_after_last_stage_is_refused_instead_of_left_out():
    # The stages after last_stage are not built: their DropBlock was silently left out.
    from dropblock_det.modeling import make_dropblock_resnet_stages

    with pytest.raises(ValueError, match=r"^dropblock_stages=\['res4', 'res5'\]: res5 not built, last_stage='res4'"):
        make_dropblock_resnet_stages(50, dropblock=DropBlock2d(0.9, 3), dropblock_stages=["res4", "res5"],
                                     last_stage="res4")
    with pytest.raises(ValueError, match=r"^dropblock_stages \(not given: \['res4', 'res5'\] with a dropblock\): "
                                         r"res5 not built, last_stage='res4'"):
        make_dropblock_resnet_stages(50, dropblock=DropBlock2d(0.9, 3), last_stage="res4")
    stages = make_dropblock_resnet_stages(50, dropblock=DropBlock2d(0.9, 3), dropblock_stages=["res4"],
                                          last_stage="res4")
    assert len(stages) == 3 and all(hasattr(block, "dropblock_conv1") for block in stages[2])
    # DropPath alone goes to the stages built.
    assert len(make_dropblock_resnet_stages(50, drop_path_rate=0.1, last_stage="res3")) == 2


def test_make_dropblock_resnet_stages_default_stages_follow_the_dropblock():
    # Stages not given: res4 and res5 (the paper's) with a dropblock, none without, so
    # make_dropblock_resnet_stages(50) is a plain ResNet and drop_path_rate alone gives
    # DropPath alone (both were refused: "needs a dropblock factory", against the docstring).
    # Stages named without a dropblock are still refused.
    from detectron2.modeling.backbone.resnet import BasicStem, ResNet

    from dropblock_det.layers import iter_regularizers
    from dropblock_det.modeling import make_dropblock_resnet_stages

    def placed(**kwargs):
        backbone = ResNet(BasicStem(3, 64), make_dropblock_resnet_stages(18, **kwargs), out_features=["res5"])
        return sorted({(name.split(".")[0], type(m).__name__) for name, m in iter_regularizers(backbone)})

    assert placed() == []
    # Positions without a dropblock ask for nothing: even ["conv3"] on basic blocks builds.
    assert placed(dropblock_positions=["conv3"]) == []
    assert placed(drop_path_rate=0.1) == [(s, "DropPath") for s in ("res2", "res3", "res4", "res5")]
    assert placed(dropblock=DropBlock2d(0.9, 3)) == [("res4", "DropBlock2d"), ("res5", "DropBlock2d")]
    with pytest.raises(ValueError, match=r"^ResNet: dropblock_stages=\['res4'\] needs a `dropblock` factory$"):
        make_dropblock_resnet_stages(18, dropblock_stages=["res4"])


# --- a training with no keep_prob ramp is said once (stop 52) --------------------------------


def test_a_stages_scaled_target_is_the_model_as_built_so_an_unramped_training_still_warns(unscheduled_warnings):
    # Scaling res4's target set keep_prob by assignment, which counted as a schedule having
    # set it: a model with stage_drop_scales trained unramped without a word.
    cfg = _cfg(KEEP_PROB=0.8, RESNET__ENABLED=True, RESNET__STAGES=["res4"], RESNET__STAGE_DROP_SCALES=[0.25])
    backbone = build_dropblock_resnet_backbone(cfg, INPUT).train()
    backbone(torch.randn(2, 3, 64, 64))
    (message,) = unscheduled_warnings()
    assert message.startswith("DropBlock2d trains at keep_prob 0.95 from its first step")


# --- R-CNN journey (stop 52) ---
def test_conv3_on_basic_blocks_is_refused_naming_the_stages_and_a_c4_heads_res5_alone():
    # A C4 R18 with DropBlockRes5ROIHeads and STAGES res4, res5: the head's res5 (bottleneck
    # blocks) would get conv3, and the error said RESNET.ENABLED "would place nothing".
    from conftest import rcnn_cfg
    from dropblock_det.modeling.resnet import dropblock_resnet_arguments

    opts = ("MODEL.DROPBLOCK.RESNET.POSITIONS", "['conv3']", "MODEL.DROPBLOCK.RESNET.STAGES", "['res4', 'res5']")
    cfg = rcnn_cfg(*opts, "MODEL.ROI_HEADS.NAME", "DropBlockRes5ROIHeads", c4=True)
    with pytest.raises(ValueError, match=r"would place nothing in res4; use conv1, conv2 or shortcut \(the ROI "
                                         r"head's res5 is bottleneck blocks, with a conv3: MODEL\.DROPBLOCK\.RESNET\."
                                         r"STAGES \['res5'\] places it there alone\)$"):
        dropblock_resnet_arguments(cfg, 18, last_stage="res4")
    with pytest.raises(ValueError, match=r"would place nothing in res4, res5; use conv1, conv2 or shortcut$"):
        dropblock_resnet_arguments(rcnn_cfg(*opts), 18)


# --- Regularizer-comparison journey (stop 53) ---
def test_dropblock_stages_none_with_a_configs_stage_scales_is_told_to_give_no_scales():
    # DropPath alone in a LazyConfig twin: dropblock_stages=[] beside the twin's [0.25, 1.0] was
    # told "expected one scale per stage", with nothing on what to write.
    from dropblock_det.modeling import make_dropblock_resnet_stages

    with pytest.raises(ValueError, match=r"^stage_drop_scales=\[0.25, 1.0\]: expected one scale per stage of "
                                         r"dropblock_stages=\[\], which has none: give stage_drop_scales=None "
                                         r"\(null in an override\) or \[\]$"):
        make_dropblock_resnet_stages(depth=18, dropblock=DropBlock2d(0.9, 3), dropblock_stages=[],
                                     stage_drop_scales=[0.25, 1.0], drop_path_rate=0.1)
    with pytest.raises(ValueError, match=r"dropblock_stages=\['res4', 'res5'\], or None \(null in an override\) for "
                                         r"the full rate in every stage$"):
        make_dropblock_resnet_stages(depth=18, dropblock=DropBlock2d(0.9, 3), stage_drop_scales=[0.25])
    stages = make_dropblock_resnet_stages(depth=18, dropblock=DropBlock2d(0.9, 3), dropblock_stages=[],
                                          stage_drop_scales=None, drop_path_rate=0.1)
    blocks = [block for stage in stages for block in stage]
    assert sum(type(m).__name__ == "DropPath" for block in blocks for m in block.modules()) == len(blocks) == 8


# --- mutation 59R ---
_STAGES_IN_ORDER = ["stem", "res2", "res3", "res4", "res5"]


@pytest.mark.parametrize("freeze_at", [1, 3, 5])
def test_freeze_at_freezes_the_stem_and_the_stages_stock_freezes_and_no_other(freeze_at):
    # test_freeze_at_and_out_features_behave_as_stock looks at res2 and res4 only: a FREEZE_AT
    # off by one that froze res3 (or the stem at FREEZE_AT 0, or not res5 at 5) went through.
    # With BN the frozen parts also become FrozenBatchNorm2d, as in the stock backbone.
    cfg = _cfg(RESNET__ENABLED=True, DROP_PATH_RATE=0.1)
    cfg.MODEL.RESNETS.NORM = "BN"
    cfg.MODEL.BACKBONE.FREEZE_AT = freeze_at
    stock = build_resnet_backbone(cfg, INPUT)
    ours = build_dropblock_resnet_backbone(cfg, INPUT)

    def frozen(model):
        return [name for name, child in model.named_children() if not any(p.requires_grad for p in child.parameters())]

    assert frozen(ours) == frozen(stock) == _STAGES_IN_ORDER[:freeze_at]
    stock_norms = {n: type(m).__name__ for n, m in stock.named_modules() if n.endswith("norm")}
    assert {n: type(m).__name__ for n, m in ours.named_modules() if n.endswith("norm")} == stock_norms


def test_freeze_at_zero_leaves_the_stem_trainable():
    cfg = _cfg()
    cfg.MODEL.RESNETS.NORM = "BN"
    backbone = build_dropblock_resnet_backbone(cfg, INPUT)
    assert all(p.requires_grad for p in backbone.parameters())
    assert type(backbone.stem.conv1.norm).__name__ == "BatchNorm2d"


def test_the_stem_takes_the_channels_of_the_input_shape():
    # Every other test feeds 3-channel images: a stem built for 3 channels whatever
    # input_shape says went through (a grayscale or 4-channel model failed at its first forward).
    cfg = _cfg(RESNET__ENABLED=True)
    shape = ShapeSpec(channels=1)
    torch.manual_seed(0)
    stock = build_resnet_backbone(cfg, shape).eval()
    torch.manual_seed(0)
    ours = build_dropblock_resnet_backbone(cfg, shape).eval()
    assert ours.stem.conv1.in_channels == 1
    x = torch.randn(1, 1, 32, 32)
    assert torch.equal(ours(x)["res5"], stock(x)["res5"])


def test_groups_on_basic_blocks_are_refused_naming_the_key():
    # Without the key-named check the plain-argument message ("out_channels=64, num_groups=2")
    # named no MODEL.RESNETS key.
    cfg = _cfg(depth=18)
    cfg.MODEL.RESNETS.NUM_GROUPS = 2
    with pytest.raises(ValueError, match=r"^MODEL\.RESNETS\.RES2_OUT_CHANNELS=64, MODEL\.RESNETS\.NUM_GROUPS=2: "
                                         r"ResNet-18 needs 64 and 1"):
        build_dropblock_resnet_backbone(cfg, INPUT)


def test_a_small_drop_path_rate_still_gives_every_block_drop_path():
    cfg = _cfg(DROP_PATH_RATE=0.005)
    backbone = build_dropblock_resnet_backbone(cfg, INPUT)
    drop_paths = [m for n, m in backbone.named_modules() if n.endswith("drop_path")]
    assert len(drop_paths) == sum(NUM_BLOCKS[18])
    assert all(m.target_keep_prob == pytest.approx(0.995) for m in drop_paths)
