"""ResNet blocks with DropBlock after their convolutions and on the shortcut, and the
registered backbone builder that places them (the TridentNet project's pattern: block
subclasses of detectron2's blocks plus a builder of its own, because detectron2's
`build_resnet_backbone` hard-codes its block classes).

Following the official TensorFlow code of the paper, a bottleneck block applies a
regularizer after conv1+norm+ReLU, after conv2+norm+ReLU, after conv3+norm (before the
residual sum) and on the shortcut (projection or identity); DropPath, when enabled, drops
the whole residual branch of a sample before the sum. A regularizer after a ReLU is handed
the ReLU (`relu_then_regularize`), and the regularizers of the branch's last conv and of
the shortcut the residual sum and the block's final ReLU (`regularize_add_relu`), so
DropBlock's Triton path does them in its own passes (both masks in one pass at the end of
a block); the results are those of the separate ops.
"""
from collections.abc import Iterable
from typing import Any, Callable, Dict, List, Optional, Sequence, Union

import torch
import torch.nn.functional as F
from torch import nn

from detectron2.layers import ShapeSpec
from detectron2.modeling import BACKBONE_REGISTRY
from detectron2.modeling.backbone.resnet import BasicBlock, BasicStem, BottleneckBlock, ResNet

from ..config import (
    RESNET_POSITIONS,
    RESNET_STAGES,
    check_norm,
    check_placement,
    is_positive_int,
    regularizer_factory,
    resnet_stage_drop_scales,
    validate_dropblock_config,
)
from ..layers import (
    DropPath,
    KeepProbRegularizer,
    as_regularizer_factory,
    regularize_add_relu,
    relu_then_regularize,
    scaled_keep_prob,
)
from ..layers.base import NotScriptable, is_real_number
from ..layers.schedule import is_drop_scale

__all__ = [
    "DropBlockBasicBlock",
    "DropBlockBottleneckBlock",
    "build_dropblock_resnet_backbone",
    "check_resnet_outputs_and_norm",
    "dropblock_resnet_arguments",
    "make_dropblock_resnet_stages",
    "resnet_stage_arguments",
    "resnet_stage_regularizers",
    "stock_resnet_stage_arguments",
]

RegularizerFactory = Callable[[], nn.Module]


class _ResidualRegularizers(NotScriptable):
    """Adds the optional regularizer children of a residual block and applies them.

    A mixin for subclasses of detectron2's blocks: children exist only where enabled, so a
    block without any has exactly the module tree and state_dict of the stock block.
    """

    _POSITIONS: Sequence[str] = ()

    def _add_regularizers(
        self,
        dropblock: Optional[RegularizerFactory],
        dropblock_positions: Sequence[str],
        drop_path_keep_prob: float,
    ) -> None:
        dropblock = as_regularizer_factory(dropblock)
        dropblock_positions = check_placement(
            "dropblock_positions", dropblock_positions, self._POSITIONS, dropblock, type(self).__name__
        )
        if not 0.0 < drop_path_keep_prob <= 1.0:
            raise ValueError(f"drop_path_keep_prob={drop_path_keep_prob!r}: expected 0 < p <= 1")
        for position in dropblock_positions:
            self.add_module(f"dropblock_{position}", dropblock())
        if drop_path_keep_prob < 1.0:
            self.drop_path = DropPath(drop_path_keep_prob)

    def _relu_and_regularize(self, position: str, x: torch.Tensor) -> torch.Tensor:
        """relu(x), then the position's regularizer: one pass where it fuses the ReLU
        (DropBlock on the Triton path), the stock in-place ReLU where there is none."""
        module = self._modules.get(f"dropblock_{position}")
        return F.relu_(x) if module is None else relu_then_regularize(module, x, inplace=True)

    def _residual_sum(self, branch: torch.Tensor, shortcut: torch.Tensor, last_conv: str) -> torch.Tensor:
        """relu(drop_path(last conv's regularizer(branch)) + shortcut regularizer(shortcut)).

        The regularizers are handed the sum and the ReLU (`regularize_add_relu`): on the
        Triton path, DropBlock on the branch, on the shortcut or on both is applied in the
        pass that adds and rectifies (without DropPath, which sits between the branch's
        DropBlock and the sum)."""
        branch_regularizer = self._modules.get(f"dropblock_{last_conv}")
        drop_path = self._modules.get("drop_path")
        if drop_path is not None:
            if branch_regularizer is not None:
                branch = branch_regularizer(branch)
            branch_regularizer = drop_path
        return regularize_add_relu(self._modules.get("dropblock_shortcut"), shortcut, branch, branch_regularizer)


class DropBlockBottleneckBlock(_ResidualRegularizers, BottleneckBlock):
    """detectron2's `BottleneckBlock` with optional regularizers.

    Children beyond the stock block (present only when enabled): `dropblock_conv1`,
    `dropblock_conv2`, `dropblock_conv3`, `dropblock_shortcut` and `drop_path`.
    Input (N, in_channels, H, W) -> output (N, out_channels, H/stride, W/stride).
    """

    _POSITIONS = ("conv1", "conv2", "conv3", "shortcut")

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        *,
        dropblock: Optional[RegularizerFactory] = None,
        dropblock_positions: Sequence[str] = (),
        drop_path_keep_prob: float = 1.0,
        **bottleneck_kwargs,
    ):
        """
        Args:
            dropblock: builds one regularizer (e.g. `lambda: DropBlock2d(0.9, 7)`); called
                once per position. A regularizer module is copied per position instead
                (LazyConfig's `L(DropBlock2d)(...)`). None when `dropblock_positions` is empty.
            dropblock_positions: subset of ("conv1", "conv2", "conv3", "shortcut"): after
                which conv (+norm, +ReLU for conv1/conv2) a regularizer is applied, and
                whether the shortcut gets one.
            drop_path_keep_prob: probability of keeping a sample's residual branch
                (1.0 = no DropPath child).
            bottleneck_kwargs: the arguments of detectron2's `BottleneckBlock`
                (bottleneck_channels, stride, num_groups, norm, stride_in_1x1, dilation).
        """
        super().__init__(in_channels, out_channels, **bottleneck_kwargs)
        self._add_regularizers(dropblock, dropblock_positions, drop_path_keep_prob)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self._relu_and_regularize("conv1", self.conv1(x))
        out = self._relu_and_regularize("conv2", self.conv2(out))
        out = self.conv3(out)
        shortcut = x if self.shortcut is None else self.shortcut(x)
        return self._residual_sum(out, shortcut, "conv3")


class DropBlockBasicBlock(_ResidualRegularizers, BasicBlock):
    """detectron2's `BasicBlock` (ResNet-18/34) with optional regularizers.

    Children beyond the stock block (present only when enabled): `dropblock_conv1`,
    `dropblock_conv2`, `dropblock_shortcut` and `drop_path` (a basic block has no conv3).
    Input (N, in_channels, H, W) -> output (N, out_channels, H/stride, W/stride).
    """

    _POSITIONS = ("conv1", "conv2", "shortcut")

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        *,
        dropblock: Optional[RegularizerFactory] = None,
        dropblock_positions: Sequence[str] = (),
        drop_path_keep_prob: float = 1.0,
        **basic_kwargs,
    ):
        """Arguments as :class:`DropBlockBottleneckBlock`; positions from
        ("conv1", "conv2", "shortcut"); `basic_kwargs` are `BasicBlock`'s (stride, norm)."""
        super().__init__(in_channels, out_channels, **basic_kwargs)
        self._add_regularizers(dropblock, dropblock_positions, drop_path_keep_prob)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self._relu_and_regularize("conv1", self.conv1(x))
        out = self.conv2(out)
        shortcut = x if self.shortcut is None else self.shortcut(x)
        return self._residual_sum(out, shortcut, "conv2")


def _with_drop_scale(dropblock: RegularizerFactory, drop_scale: float, stage: str) -> RegularizerFactory:
    """A factory whose regularizers have `scaled_keep_prob(target, drop_scale)` as keep_prob."""

    def build() -> nn.Module:
        module = dropblock()
        if not isinstance(module, KeepProbRegularizer):
            raise ValueError(
                f"stage_drop_scales for {stage}: the dropblock regularizer {type(module).__name__} "
                "has no keep_prob to scale (expected a KeepProbRegularizer)"
            )
        try:
            scaled = scaled_keep_prob(module.target_keep_prob, drop_scale)
        except ValueError as error:  # a scale that drives the keep_prob to <= 0
            raise ValueError(f"stage_drop_scales for {stage}: {error}") from None
        module.set_target(scaled)
        return module

    return build


# The paper's placement: the stages a `dropblock` goes to when dropblock_stages is not given.
DEFAULT_DROPBLOCK_STAGES = ("res4", "res5")


def resnet_stage_regularizers(
    depth: int,
    dropblock: Any = None,
    dropblock_stages: Optional[Sequence[str]] = None,
    dropblock_positions: Sequence[str] = ("conv1", "conv2", "conv3", "shortcut"),
    stage_drop_scales: Optional[Sequence[float]] = None,
    drop_path_rate: float = 0.0,
) -> Dict[str, dict]:
    """The regularizer arguments of the blocks of each stage ("res2".."res5"): `dropblock`
    and `dropblock_positions` for the stages in `dropblock_stages`, `drop_path_keep_prob`
    (1 - drop_path_rate) for all. The arguments mean what MODEL.DROPBLOCK.RESNET.* and
    DROP_PATH_RATE mean.

    Args:
        depth: the ResNet's depth; "conv3" is left out of `dropblock_positions` for basic
            blocks (depth < 50), which have no third conv, so the default positions work
            for every depth.
        dropblock: builds one regularizer (or a regularizer module, copied per position);
            None places no DropBlock (DropPath alone, with drop_path_rate).
        dropblock_stages: the stages with DropBlock; None: res4 and res5 (the paper's) when
            there is a `dropblock`, none without. Stages named without a `dropblock` are refused.
        stage_drop_scales: drop rate of each stage in `dropblock_stages` relative to the
            regularizer's (its target keep_prob becomes `scaled_keep_prob(target, scale)`;
            the official code's [0.25, 1.0] for res4, res5); None = unchanged.
    """
    dropblock = as_regularizer_factory(dropblock)
    if dropblock_stages is None:
        dropblock_stages = DEFAULT_DROPBLOCK_STAGES if dropblock is not None else ()
    stages = check_placement("dropblock_stages", dropblock_stages, RESNET_STAGES, dropblock, "ResNet")
    # A string (a LazyConfig override `...dropblock_positions=conv1`) would be taken letter by letter.
    if isinstance(dropblock_positions, str) or not isinstance(dropblock_positions, Iterable):
        raise ValueError(f"dropblock_positions={dropblock_positions!r}: expected a list of names from "
                         f"{list(RESNET_POSITIONS)}")
    if stage_drop_scales is not None:
        if isinstance(stage_drop_scales, str) or not isinstance(stage_drop_scales, Iterable):
            raise ValueError(f"stage_drop_scales={stage_drop_scales!r}: expected a list, one scale per stage of "
                             f"dropblock_stages={stages}")
        stage_drop_scales = list(stage_drop_scales)
        if len(stage_drop_scales) != len(stages):
            raise ValueError(
                f"stage_drop_scales={stage_drop_scales}: expected one scale per stage of "
                f"dropblock_stages={stages}"
                # dropblock_stages=[] (DropPath alone) with a config's scales: what to write.
                + (", which has none: give stage_drop_scales=None (null in an override) or []" if not stages else
                   ", or None (null in an override) for the full rate in every stage")
            )
        # Checked here, by name (scaled_keep_prob checks it too, once each regularizer is
        # built): float() would take True as 1.0 and "0.5" as 0.5, and fail on None or "x"
        # with Python's own message.
        for stage, scale in zip(stages, stage_drop_scales):
            if not is_drop_scale(scale):
                raise ValueError(f"stage_drop_scales={stage_drop_scales}: {scale!r} for {stage} is not a "
                                 "finite number >= 0")
    if not is_real_number(drop_path_rate) or not 0 <= drop_path_rate < 1:
        raise ValueError(f"drop_path_rate={drop_path_rate!r}: expected 0 <= rate < 1")
    positions = [p for p in dropblock_positions if depth >= 50 or p != "conv3"]
    if stages and not positions:
        raise ValueError(
            f"dropblock_positions={list(dropblock_positions)}: "
            + (f"ResNet-{depth} has basic blocks, which have no conv3, so nothing would be placed; "
               "use conv1, conv2 or shortcut" if list(dropblock_positions)
               else f"no position, so nothing would be placed in dropblock_stages={stages}")
        )
    kwargs = {}
    for stage in RESNET_STAGES:
        kwargs[stage] = {"drop_path_keep_prob": 1.0 - drop_path_rate}
    for index, stage in enumerate(stages):
        kwargs[stage]["dropblock"] = (
            dropblock if stage_drop_scales is None
            else _with_drop_scale(dropblock, float(stage_drop_scales[index]), stage)
        )
        kwargs[stage]["dropblock_positions"] = positions
    return kwargs


def dropblock_resnet_arguments(cfg, depth: int, last_stage: str = "res5") -> Dict[str, Any]:
    """The regularizer arguments of :func:`make_dropblock_resnet_stages` /
    :func:`resnet_stage_regularizers` (dropblock, dropblock_stages, dropblock_positions,
    stage_drop_scales, drop_path_rate) that MODEL.DROPBLOCK (RESNET.*, DROP_PATH_RATE) means,
    for the stages up to `last_stage`: a DropBlock stage after it (validate_dropblock_config
    allows only res5 built by a DropBlockRes5ROIHeads) is its builder's."""
    db = cfg.MODEL.DROPBLOCK
    scales = {}
    if db.RESNET.ENABLED:
        last = RESNET_STAGES.index(last_stage)
        scales = {s: v for s, v in resnet_stage_drop_scales(cfg).items() if RESNET_STAGES.index(s) <= last}
    positions = [p for p in db.RESNET.POSITIONS if depth >= 50 or p != "conv3"]
    # Only where these stages get DropBlock: a C4 ResNet-18/34 whose head's res5 (bottleneck
    # blocks) alone has it may name conv3.
    if scales and not positions:  # named by key, before the arguments' own check
        # A res5 in STAGES past `last_stage` is a C4 head's, of bottleneck blocks: conv3 lands
        # there, so "nothing" is said of the backbone's stages only, and that res5 alone is offered.
        head_res5 = "res5" in db.RESNET.STAGES and "res5" not in scales
        raise ValueError(
            f"MODEL.DROPBLOCK.RESNET.POSITIONS={list(db.RESNET.POSITIONS)}: MODEL.RESNETS.DEPTH={depth} "
            "has basic blocks, which have no conv3, so RESNET.ENABLED would place nothing in "
            f"{', '.join(scales)}; use conv1, conv2 or shortcut"
            + (" (the ROI head's res5 is bottleneck blocks, with a conv3: MODEL.DROPBLOCK.RESNET.STAGES "
               "['res5'] places it there alone)" if head_res5 else "")
        )
    arguments: Dict[str, Any] = {"drop_path_rate": db.DROP_PATH_RATE}
    if db.RESNET.ENABLED:
        arguments.update(
            dropblock=regularizer_factory(cfg),
            dropblock_stages=list(scales),
            dropblock_positions=list(db.RESNET.POSITIONS),
            stage_drop_scales=list(scales.values()),
        )
    else:
        arguments["dropblock_stages"] = []
    return arguments


def resnet_stage_arguments(cfg, depth: int) -> Dict[str, Any]:
    """The arguments of :func:`make_dropblock_resnet_stages` that MODEL.RESNETS (channels,
    norm, groups, RES5_DILATION) and MODEL.DROPBLOCK (:func:`dropblock_resnet_arguments`, for
    the stages the ResNet keeps: those up to the last of MODEL.RESNETS.OUT_FEATURES) give;
    the DeepLab builder adds its res4 dilation, multi-grid and last stage."""
    resnets = cfg.MODEL.RESNETS
    # ResNet drops the stages after its last output: a C4 backbone's res5 (stock
    # build_resnet_backbone builds it all the same; so does this, for the same draws).
    kept = max((f for f in resnets.OUT_FEATURES if f in RESNET_STAGES), key=RESNET_STAGES.index, default="res2")
    return dict(
        in_channels=resnets.STEM_OUT_CHANNELS,
        out_channels=resnets.RES2_OUT_CHANNELS,
        norm=resnets.NORM,
        stride_in_1x1=resnets.STRIDE_IN_1X1,
        num_groups=resnets.NUM_GROUPS,
        width_per_group=resnets.WIDTH_PER_GROUP,
        res5_dilation=resnets.RES5_DILATION,
        **dropblock_resnet_arguments(cfg, depth, kept),
    )


_NUM_BLOCKS = {18: [2, 2, 2, 2], 34: [3, 4, 6, 3], 50: [3, 4, 6, 3], 101: [3, 4, 23, 3], 152: [3, 8, 36, 3]}


def stock_resnet_stage_arguments(
    depth: int = 50,
    *,
    in_channels: int = 64,
    out_channels: Optional[int] = None,
    norm: Union[str, Callable[[int], nn.Module]] = "BN",
    stride_in_1x1: bool = True,
    num_groups: int = 1,
    width_per_group: int = 64,
    res4_dilation: int = 1,
    res5_dilation: int = 1,
    res5_multi_grid: Optional[Sequence[int]] = None,
    last_stage: str = "res5",
) -> Dict[str, Dict[str, Any]]:
    """The arguments of `ResNet.make_stage` for each stage ("res2".."`last_stage`") of the
    stock detectron2 ResNet (`BasicBlock` / `BottleneckBlock`) that
    :func:`make_dropblock_resnet_stages` builds with the same arguments: the regularizers
    aside, the two have the same modules, parameters and outputs (deploy.py writes these
    into a stock LazyConfig).

    Args:
        depth: 18, 34 (basic blocks), 50, 101, 152 (bottleneck blocks).
        in_channels: the stem's output channels.
        out_channels: res2's output channels (None: 64 for basic, 256 for bottleneck blocks).
        norm, stride_in_1x1, num_groups, width_per_group: as MODEL.RESNETS.*; the last three
            are for bottleneck blocks.
        res4_dilation (1 or 2), res5_dilation (1, 2 or 4; 4 when res4's is 2),
            res5_multi_grid (None, or one factor per res5 block): as MODEL.RESNETS.*; a
            dilated stage keeps the previous stage's resolution. Bottleneck blocks only.
        last_stage: the last stage built ("res2".."res5"; ResNet drops the stages after its
            last out_feature anyway: fewer are just not built).
    Returns:
        {stage: the keyword arguments of `ResNet.make_stage`, `block_class` included}.
    """
    num_blocks_per_stage = _NUM_BLOCKS.get(depth)
    if num_blocks_per_stage is None:
        raise ValueError(f"depth={depth!r}: expected one of {', '.join(map(str, _NUM_BLOCKS))}")
    basic = depth < 50
    if out_channels is None:
        out_channels = 64 if basic else 256
    if res4_dilation not in (1, 2) or (basic and res4_dilation != 1):
        raise ValueError(f"res4_dilation={res4_dilation!r}: expected 1 or 2 (1 for ResNet-18/34)")
    if res5_dilation not in (1, 2, 4) or (basic and res5_dilation != 1):
        raise ValueError(f"res5_dilation={res5_dilation!r}: expected 1, 2 or 4 (1 for ResNet-18/34)")
    if res4_dilation == 2 and res5_dilation != 4:
        raise ValueError(f"res5_dilation={res5_dilation!r}: must be 4 when res4_dilation is 2 (output stride 8)")
    # Not a list (a LazyConfig override res5_multi_grid=2): shown as given, list() would fail on it.
    grid = (list(res5_multi_grid) if isinstance(res5_multi_grid, Iterable) and not isinstance(res5_multi_grid, str)
            else res5_multi_grid)
    if grid is not None and (basic or not isinstance(grid, list) or len(grid) != num_blocks_per_stage[3]
                             or not all(is_positive_int(m) for m in grid)):
        raise ValueError(f"res5_multi_grid={grid!r}: expected one factor per res5 block "
                         f"({num_blocks_per_stage[3]} for ResNet-{depth}, bottleneck blocks only), "
                         "each an integer >= 1")
    if last_stage not in RESNET_STAGES:
        raise ValueError(f"last_stage={last_stage!r}: expected one of {list(RESNET_STAGES)}")
    if basic and (out_channels != 64 or num_groups != 1):
        raise ValueError(
            f"out_channels={out_channels!r}, num_groups={num_groups!r}: ResNet-{depth} needs 64 and 1"
        )
    bottleneck_channels = num_groups * width_per_group
    arguments = {}
    dilations = {"res4": res4_dilation, "res5": res5_dilation}
    built = RESNET_STAGES[: RESNET_STAGES.index(last_stage) + 1]
    for index, (stage, num_blocks) in enumerate(zip(built, num_blocks_per_stage)):
        # Strides and dilation as in build_resnet_backbone / build_resnet_deeplab_backbone:
        # res2 keeps the stem's resolution, a dilated stage the previous stage's.
        dilation = dilations.get(stage, 1)
        first_stride = 1 if index == 0 or dilation > 1 else 2
        stage_arguments: Dict[str, Any] = dict(
            block_class=BasicBlock if basic else BottleneckBlock,
            num_blocks=num_blocks,
            stride_per_block=[first_stride] + [1] * (num_blocks - 1),
            in_channels=in_channels,
            out_channels=out_channels,
            norm=norm,
        )
        if not basic:
            stage_arguments.update(bottleneck_channels=bottleneck_channels, stride_in_1x1=stride_in_1x1,
                                   num_groups=num_groups)
            if stage == "res5" and res5_multi_grid is not None:
                stage_arguments["dilation_per_block"] = [dilation * m for m in res5_multi_grid]
            else:
                stage_arguments["dilation"] = dilation
        arguments[stage] = stage_arguments
        in_channels = out_channels
        out_channels *= 2
        bottleneck_channels *= 2
    return arguments


# Each stock block class -> the one with regularizers (same constructor otherwise).
_DROPBLOCK_BLOCKS = {BasicBlock: DropBlockBasicBlock, BottleneckBlock: DropBlockBottleneckBlock}


def make_dropblock_resnet_stages(
    depth: int = 50,
    *,
    dropblock: Any = None,
    dropblock_stages: Optional[Sequence[str]] = None,
    dropblock_positions: Sequence[str] = ("conv1", "conv2", "conv3", "shortcut"),
    stage_drop_scales: Optional[Sequence[float]] = None,
    drop_path_rate: float = 0.0,
    **resnet_arguments: Any,
) -> List[List[nn.Module]]:
    """The stages (res2..`last_stage`) of a ResNet with DropBlock in its blocks, for
    `ResNet(stem, stages, out_features)`: what `build_dropblock_resnet_backbone` and
    `build_dropblock_resnet_deeplab_backbone` build from MODEL.RESNETS / MODEL.DROPBLOCK,
    from plain arguments (LazyConfig: `stages=L(make_dropblock_resnet_stages)(depth=50,
    dropblock=L(DropBlock2d)(...))`).

    Args:
        depth: 18, 34 (basic blocks), 50, 101, 152 (bottleneck blocks).
        resnet_arguments: the ResNet's, as :func:`stock_resnet_stage_arguments` takes them
            (in_channels, out_channels, norm, stride_in_1x1, num_groups, width_per_group,
            res4_dilation, res5_dilation, res5_multi_grid, last_stage).
        dropblock, dropblock_stages, dropblock_positions, stage_drop_scales, drop_path_rate:
            see :func:`resnet_stage_regularizers`; a DropBlock stage after `last_stage` is
            refused (it would get no DropBlock).
    Returns:
        a list of lists of blocks, one per stage.
    """
    stages = stock_resnet_stage_arguments(depth, **resnet_arguments)
    regularizer_kwargs = resnet_stage_regularizers(
        depth, dropblock, dropblock_stages, dropblock_positions, stage_drop_scales, drop_path_rate
    )
    unbuilt = [stage for stage, kwargs in regularizer_kwargs.items() if "dropblock" in kwargs and stage not in stages]
    if unbuilt:  # its regularizers would be silently left out with the stage
        named = (f"dropblock_stages={list(dropblock_stages)}" if dropblock_stages is not None
                 else f"dropblock_stages (not given: {list(DEFAULT_DROPBLOCK_STAGES)} with a dropblock)")
        raise ValueError(
            f"{named}: {', '.join(unbuilt)} not built, last_stage={list(stages)[-1]!r}; list only built "
            "stages, with one stage_drop_scales entry each"
        )
    built = []
    for stage, arguments in stages.items():
        arguments = dict(arguments, **regularizer_kwargs[stage])
        arguments["block_class"] = _DROPBLOCK_BLOCKS[arguments["block_class"]]
        built.append(ResNet.make_stage(**arguments))
    return built


def check_resnet_outputs_and_norm(cfg) -> List[str]:
    """MODEL.RESNETS.NORM (a name detectron2's get_norm knows) and MODEL.RESNETS.OUT_FEATURES
    (some of stem, res2..res5), ValueError naming the key; returns the outputs. detectron2's
    ResNet failed on them with max() of an empty sequence, or an AssertionError listing the
    stages it kept ("Available children: stem" for ['res6']); the norm with a bare KeyError."""
    check_norm("MODEL.RESNETS.NORM", cfg.MODEL.RESNETS.NORM)
    out_features = list(cfg.MODEL.RESNETS.OUT_FEATURES)
    unknown = [f for f in out_features if f not in ("stem",) + RESNET_STAGES]
    if unknown or not out_features:
        raise ValueError(
            f"MODEL.RESNETS.OUT_FEATURES={out_features}: "
            + (f"unknown name {unknown[0]!r}; " if unknown else "no feature; ")
            + f"expected names from {['stem', *RESNET_STAGES]}"
        )
    return out_features


@BACKBONE_REGISTRY.register()
def build_dropblock_resnet_backbone(cfg, input_shape: ShapeSpec) -> ResNet:
    """A detectron2 `ResNet` from MODEL.RESNETS, with the regularizers MODEL.DROPBLOCK asks
    for (RESNET.*, DROP_PATH_RATE) in its blocks.

    Every MODEL.RESNETS key means what it means for `build_resnet_backbone`; with
    RESNET.ENABLED False and DROP_PATH_RATE 0 the result has the stock module names and
    state_dict keys. Deformable convolutions are not supported.
    """
    validate_dropblock_config(cfg)
    resnets = cfg.MODEL.RESNETS
    depth = resnets.DEPTH
    # Checked here by key; make_dropblock_resnet_stages checks its arguments by name.
    if depth not in _NUM_BLOCKS:
        raise ValueError(f"MODEL.RESNETS.DEPTH={depth!r}: expected one of 18, 34, 50, 101, 152")
    if any(resnets.DEFORM_ON_PER_STAGE):
        raise ValueError(
            f"MODEL.RESNETS.DEFORM_ON_PER_STAGE={list(resnets.DEFORM_ON_PER_STAGE)}: "
            "build_dropblock_resnet_backbone has no deformable blocks"
        )
    if resnets.RES5_DILATION not in (1, 2) or (depth < 50 and resnets.RES5_DILATION != 1):
        raise ValueError(
            f"MODEL.RESNETS.RES5_DILATION={resnets.RES5_DILATION!r}: expected 1 or 2 "
            "(1 for ResNet-18/34)"
        )
    check_resnet_outputs_and_norm(cfg)
    if depth < 50 and (resnets.RES2_OUT_CHANNELS != 64 or resnets.NUM_GROUPS != 1):
        raise ValueError(
            f"MODEL.RESNETS.RES2_OUT_CHANNELS={resnets.RES2_OUT_CHANNELS!r}, "
            f"MODEL.RESNETS.NUM_GROUPS={resnets.NUM_GROUPS!r}: ResNet-{depth} needs 64 and 1"
        )

    stem = BasicStem(
        in_channels=input_shape.channels,
        out_channels=resnets.STEM_OUT_CHANNELS,
        norm=resnets.NORM,
    )
    stages = make_dropblock_resnet_stages(depth, **resnet_stage_arguments(cfg, depth))
    return ResNet(
        stem, stages, out_features=resnets.OUT_FEATURES, freeze_at=cfg.MODEL.BACKBONE.FREEZE_AT
    )
