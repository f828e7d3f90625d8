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
from typing import Callable, Dict, Optional, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from detectron2.layers import ShapeSpec
from detectron2.modeling import BACKBONE_REGISTRY
from detectron2.modeling.backbone.resnet import BasicBlock, BasicStem, BottleneckBlock, ResNet

from ..config import (
    RESNET_STAGES,
    check_placement,
    regularizer_factory,
    resnet_stage_drop_scales,
    validate_dropblock_config,
)
from ..layers import DropPath, as_regularizer_factory, regularize_add_relu, relu_then_regularize

__all__ = [
    "DropBlockBasicBlock",
    "DropBlockBottleneckBlock",
    "build_dropblock_resnet_backbone",
    "dropblock_resnet_stage_kwargs",
]

RegularizerFactory = Callable[[], nn.Module]


class _ResidualRegularizers:
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


def dropblock_resnet_stage_kwargs(cfg, depth: int) -> Dict[str, dict]:
    """The regularizer arguments of the blocks of each stage ("res2".."res5"), from
    MODEL.DROPBLOCK: `dropblock` factory and `dropblock_positions` for the stages in
    RESNET.STAGES (with their STAGE_DROP_SCALES), `drop_path_keep_prob` for all.

    "conv3" is left out for basic blocks (depth < 50), which have no third conv, so the
    default POSITIONS work for every depth.
    """
    db = cfg.MODEL.DROPBLOCK
    drop_path_keep_prob = 1.0 - db.DROP_PATH_RATE
    scales = resnet_stage_drop_scales(cfg) if db.RESNET.ENABLED else {}
    positions = [p for p in db.RESNET.POSITIONS if depth >= 50 or p != "conv3"]
    if scales and not positions:
        raise ValueError(
            f"MODEL.DROPBLOCK.RESNET.POSITIONS={list(db.RESNET.POSITIONS)}: MODEL.RESNETS.DEPTH={depth} "
            "has basic blocks, which have no conv3, so RESNET.ENABLED would place nothing; "
            "use conv1, conv2 or shortcut"
        )
    kwargs = {}
    for stage in RESNET_STAGES:
        stage_kwargs = {"drop_path_keep_prob": drop_path_keep_prob}
        if stage in scales:
            stage_kwargs["dropblock"] = regularizer_factory(cfg, scales[stage])
            stage_kwargs["dropblock_positions"] = positions
        kwargs[stage] = stage_kwargs
    return kwargs


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
    num_blocks_per_stage = {
        18: [2, 2, 2, 2],
        34: [3, 4, 6, 3],
        50: [3, 4, 6, 3],
        101: [3, 4, 23, 3],
        152: [3, 8, 36, 3],
    }.get(depth)
    if num_blocks_per_stage is None:
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
    regularizer_kwargs = dropblock_resnet_stage_kwargs(cfg, depth)
    in_channels = resnets.STEM_OUT_CHANNELS
    out_channels = resnets.RES2_OUT_CHANNELS
    bottleneck_channels = resnets.NUM_GROUPS * resnets.WIDTH_PER_GROUP
    stages = []
    for index, (stage, num_blocks) in enumerate(zip(RESNET_STAGES, num_blocks_per_stage)):
        # Strides and dilation as in build_resnet_backbone: res2 keeps the stem's
        # resolution, a dilated res5 keeps res4's.
        dilation = resnets.RES5_DILATION if stage == "res5" else 1
        first_stride = 1 if index == 0 or dilation == 2 else 2
        stage_kwargs = dict(
            num_blocks=num_blocks,
            stride_per_block=[first_stride] + [1] * (num_blocks - 1),
            in_channels=in_channels,
            out_channels=out_channels,
            norm=resnets.NORM,
            **regularizer_kwargs[stage],
        )
        if depth < 50:
            stages.append(ResNet.make_stage(DropBlockBasicBlock, **stage_kwargs))
        else:
            stages.append(
                ResNet.make_stage(
                    DropBlockBottleneckBlock,
                    bottleneck_channels=bottleneck_channels,
                    stride_in_1x1=resnets.STRIDE_IN_1X1,
                    dilation=dilation,
                    num_groups=resnets.NUM_GROUPS,
                    **stage_kwargs,
                )
            )
        in_channels = out_channels
        out_channels *= 2
        bottleneck_channels *= 2
    return ResNet(
        stem, stages, out_features=resnets.OUT_FEATURES, freeze_at=cfg.MODEL.BACKBONE.FREEZE_AT
    )
