"""FPN with DropBlock after its lateral and output convolutions and in RetinaNet's P6/P7,
and the registered ResNet-FPN backbone builders that use it with the DropBlock ResNet.

detectron2's `FPN.forward` is one method, so `DropBlockFPN` overrides it; its
constructor only adds regularizer children next to the stock convs.
"""
import math
from typing import Callable, Dict, List, Optional, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from detectron2.layers import ShapeSpec
from detectron2.modeling import BACKBONE_REGISTRY
from detectron2.modeling.backbone.fpn import FPN, LastLevelMaxPool, LastLevelP6P7

from ..config import (
    check_feature_names,
    check_norm,
    check_placement,
    regularizer_factory,
    validate_dropblock_config,
)
from ..layers import as_regularizer_factory
from ..layers.base import NotScriptable
from .resnet import build_dropblock_resnet_backbone

__all__ = [
    "DropBlockFPN",
    "DropBlockLastLevelP6P7",
    "build_dropblock_resnet_fpn_backbone",
    "build_dropblock_retinanet_resnet_fpn_backbone",
    "STOCK_FPN_TOP_BLOCK_INPUTS",
    "check_fpn_inputs",
    "top_block_input_error",
]

RegularizerFactory = Callable[[], nn.Module]
_FPN_POSITIONS = ("lateral", "output")


def _identity_or(module: Optional[nn.Module], x: torch.Tensor) -> torch.Tensor:
    return x if module is None else module(x)


class DropBlockLastLevelP6P7(NotScriptable, LastLevelP6P7):
    """RetinaNet's P6/P7 block with optional regularizers `dropblock_p6` (after the P6
    conv, so P7 sees the regularized P6) and `dropblock_p7` (after the P7 conv).

    Input C5 or P5 (N, in_channels, H, W) -> [P6 (N, out_channels, H/2, W/2),
    P7 (N, out_channels, H/4, W/4)] (rounded up).
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        in_feature: str = "res5",
        dropblock: Optional[RegularizerFactory] = None,
    ):
        """`dropblock` builds one regularizer (called twice; a module is copied twice);
        None adds nothing."""
        super().__init__(in_channels, out_channels, in_feature)
        dropblock = as_regularizer_factory(dropblock)
        if dropblock is not None:
            self.dropblock_p6 = dropblock()
            self.dropblock_p7 = dropblock()

    def forward(self, c5: torch.Tensor) -> List[torch.Tensor]:
        p6 = _identity_or(self._modules.get("dropblock_p6"), self.p6(c5))
        p7 = _identity_or(self._modules.get("dropblock_p7"), self.p7(F.relu(p6)))
        return [p6, p7]


class DropBlockFPN(NotScriptable, FPN):
    """detectron2's `FPN` with optional regularizers after the lateral and/or output convs.

    Children beyond the stock FPN (present only when enabled): `dropblock_lateral{s}` and
    `dropblock_output{s}` for every input level of stride 2**s, named like the convs
    `fpn_lateral{s}` / `fpn_output{s}` they follow. Input and outputs as `FPN`.
    """

    def __init__(
        self,
        *args,
        dropblock: Optional[RegularizerFactory] = None,
        dropblock_positions: Sequence[str] = (),
        **fpn_kwargs,
    ):
        """
        Args:
            dropblock: builds one regularizer; called once per conv that gets one (a
                regularizer module is copied per conv instead).
            dropblock_positions: subset of ("lateral", "output"). A top block's own
                regularizers are its business (see :class:`DropBlockLastLevelP6P7`).
            args, fpn_kwargs: the arguments of detectron2's `FPN` (bottom_up, in_features,
                out_channels, norm, top_block, fuse_type, ...).
        """
        super().__init__(*args, **fpn_kwargs)
        dropblock = as_regularizer_factory(dropblock)
        dropblock_positions = check_placement(
            "dropblock_positions", dropblock_positions, _FPN_POSITIONS, dropblock, "DropBlockFPN"
        )
        error = top_block_input_error(self)
        if error is not None:
            raise ValueError(f"DropBlockFPN: {error}")
        # Top-down order (coarsest level first), like self.lateral_convs / output_convs.
        levels = [int(name[1:]) for name in self._out_features[: len(self.in_features)]]
        self._dropblock_names = {
            position: [f"dropblock_{position}{level}" for level in reversed(levels)]
            for position in _FPN_POSITIONS
        }
        for position in dropblock_positions:
            for name in self._dropblock_names[position]:
                self.add_module(name, dropblock())

    def _regularize(self, position: str, top_down_index: int, x: torch.Tensor) -> torch.Tensor:
        name = self._dropblock_names[position][top_down_index]
        return _identity_or(self._modules.get(name), x)

    def forward(self, x: torch.Tensor) -> Dict[str, torch.Tensor]:
        """x: images (N, C, H, W) -> {"p<s>": (N, out_channels, H/2**s, W/2**s)}, finest
        level first, exactly as `FPN.forward` plus the enabled regularizers."""
        bottom_up_features = self.bottom_up(x)
        results = []
        prev_features = None
        for idx, (lateral_conv, output_conv) in enumerate(
            zip(self.lateral_convs, self.output_convs)
        ):
            lateral = lateral_conv(bottom_up_features[self.in_features[-idx - 1]])
            lateral = self._regularize("lateral", idx, lateral)
            if prev_features is None:
                prev_features = lateral
            else:
                top_down = F.interpolate(prev_features, scale_factor=2.0, mode="nearest")
                prev_features = lateral + top_down
                if self._fuse_type == "avg":
                    prev_features = prev_features / 2
            results.insert(0, self._regularize("output", idx, output_conv(prev_features)))

        if self.top_block is not None:
            if self.top_block.in_feature in bottom_up_features:
                top_block_input = bottom_up_features[self.top_block.in_feature]
            else:
                top_block_input = results[self._out_features.index(self.top_block.in_feature)]
            results.extend(self.top_block(top_block_input))
        assert len(self._out_features) == len(results)
        return dict(zip(self._out_features, results))


def top_block_input_error(fpn: FPN) -> Optional[str]:
    """Why the top block of a built detectron2 `FPN` (or subclass) cannot find its input at
    the first forward, or None. `FPN.forward` looks `top_block.in_feature` up among the
    bottom-up outputs, else among the levels computed from `in_features` so far: an
    IndexError or ValueError there, naming no key (LastLevelMaxPool reads p5, which
    in_features up to res4 do not give; LastLevelP6P7 reads res5, which a ResNet without it
    in its out_features does not give)."""
    if fpn.top_block is None:
        return None
    reads = getattr(fpn.top_block, "in_feature", None)
    inputs = list(fpn.bottom_up.output_shape()) + fpn._out_features[: len(fpn.in_features)]
    if reads in inputs:
        return None
    return (f"top_block {type(fpn.top_block).__name__} reads {reads!r}, which is neither a bottom_up output "
            f"nor a level of in_features={list(fpn.in_features)} ({inputs})")


# detectron2's own ResNet-FPN builders, with the feature their build looks up for the top block:
# RetinaNet's P6/P7 take res5's channels; the max-pooled P6 reads p5 only at the forward
# (engine.config_checks.check_fpn_top_block judges the built FPN).
STOCK_FPN_TOP_BLOCK_INPUTS: Dict[str, Optional[str]] = {"build_resnet_fpn_backbone": None,
                                                        "build_retinanet_resnet_fpn_backbone": "res5"}


def check_fpn_inputs(cfg, bottom_up: nn.Module, builder: str, top_block_reads: Optional[str]) -> None:
    """ValueError naming MODEL.FPN.NORM or FUSE_TYPE for a value detectron2's FPN does not take,
    and MODEL.FPN.IN_FEATURES (or MODEL.RESNETS.OUT_FEATURES) where the FPN,
    or `builder`'s top block reading `top_block_reads` (a ResNet output or an FPN level; None:
    not judged),
    would take a feature that is not there, or features whose strides do not double one to
    the next: detectron2's FPN fails on it with a bare KeyError (e.g. 'res2') or
    AssertionError, or, for a level, an IndexError at the first forward."""
    check_norm("MODEL.FPN.NORM", cfg.MODEL.FPN.NORM)
    if cfg.MODEL.FPN.FUSE_TYPE not in ("sum", "avg"):  # FPN asserts it, with no message
        raise ValueError(f"MODEL.FPN.FUSE_TYPE={cfg.MODEL.FPN.FUSE_TYPE!r}: expected 'sum' or 'avg'")
    shapes = bottom_up.output_shape()
    out_features = list(cfg.MODEL.RESNETS.OUT_FEATURES)
    in_features = check_feature_names("MODEL.FPN.IN_FEATURES", cfg.MODEL.FPN.IN_FEATURES, list(shapes),
                                      "the ResNet's outputs", note=f"MODEL.RESNETS.OUT_FEATURES={out_features}")
    strides = [shapes[f].stride for f in in_features]
    if any(finer * 2 != coarser for finer, coarser in zip(strides, strides[1:])):
        # detectron2's FPN asserts it naming no key ("Strides 16 8 are not log2 contiguous").
        raise ValueError(
            f"MODEL.FPN.IN_FEATURES={in_features}: their strides {strides} must double from one feature to "
            "the next (finest first, none skipped, e.g. ['res3', 'res4', 'res5'])"
        )
    if top_block_reads is None or top_block_reads in shapes:
        return
    levels = [f"p{int(math.log2(shapes[f].stride))}" for f in in_features]
    if not top_block_reads.startswith("p"):  # a ResNet output (RetinaNet's res5), not an FPN level
        raise ValueError(
            f"MODEL.RESNETS.OUT_FEATURES={out_features}: no {top_block_reads!r}, from which "
            f"{builder} computes P6/P7; add it"
        )
    if top_block_reads not in levels:
        raise ValueError(
            f"MODEL.FPN.IN_FEATURES={in_features} give the levels {levels}, no {top_block_reads!r}, from "
            f"which {builder} max-pools its top level: end them with the feature of stride 32 (res5)"
        )


def _fpn_regularizer_kwargs(cfg) -> dict:
    db = cfg.MODEL.DROPBLOCK
    if not db.FPN.ENABLED:
        return {}
    positions = [p for p in db.FPN.POSITIONS if p in _FPN_POSITIONS]
    return {"dropblock": regularizer_factory(cfg), "dropblock_positions": positions}


@BACKBONE_REGISTRY.register()
def build_dropblock_resnet_fpn_backbone(cfg, input_shape: ShapeSpec) -> DropBlockFPN:
    """`build_resnet_fpn_backbone` (P2-P6, P6 by max-pooling) with the DropBlock ResNet
    and MODEL.DROPBLOCK.FPN in the FPN. FPN.POSITIONS "top_block" is rejected: a
    max-pooled P6 has no conv to regularize."""
    validate_dropblock_config(cfg)
    db = cfg.MODEL.DROPBLOCK
    if db.FPN.ENABLED and "top_block" in db.FPN.POSITIONS:
        raise ValueError(
            f"MODEL.DROPBLOCK.FPN.POSITIONS={list(db.FPN.POSITIONS)}: 'top_block' needs "
            "RetinaNet's P6/P7 convs (build_dropblock_retinanet_resnet_fpn_backbone); "
            f"MODEL.BACKBONE.NAME={cfg.MODEL.BACKBONE.NAME!r} max-pools P6"
        )
    bottom_up = build_dropblock_resnet_backbone(cfg, input_shape)
    check_fpn_inputs(cfg, bottom_up, "build_dropblock_resnet_fpn_backbone", LastLevelMaxPool().in_feature)
    return DropBlockFPN(
        bottom_up=bottom_up,
        in_features=cfg.MODEL.FPN.IN_FEATURES,
        out_channels=cfg.MODEL.FPN.OUT_CHANNELS,
        norm=cfg.MODEL.FPN.NORM,
        top_block=LastLevelMaxPool(),
        fuse_type=cfg.MODEL.FPN.FUSE_TYPE,
        **_fpn_regularizer_kwargs(cfg),
    )


@BACKBONE_REGISTRY.register()
def build_dropblock_retinanet_resnet_fpn_backbone(cfg, input_shape: ShapeSpec) -> DropBlockFPN:
    """`build_retinanet_resnet_fpn_backbone` (P3-P7, P6/P7 by convs from C5) with the
    DropBlock ResNet, MODEL.DROPBLOCK.FPN in the FPN, and "top_block" in P6/P7."""
    validate_dropblock_config(cfg)
    db = cfg.MODEL.DROPBLOCK
    bottom_up = build_dropblock_resnet_backbone(cfg, input_shape)
    check_fpn_inputs(cfg, bottom_up, "build_dropblock_retinanet_resnet_fpn_backbone", "res5")
    top_block_dropblock = (
        regularizer_factory(cfg) if db.FPN.ENABLED and "top_block" in db.FPN.POSITIONS else None
    )
    return DropBlockFPN(
        bottom_up=bottom_up,
        in_features=cfg.MODEL.FPN.IN_FEATURES,
        out_channels=cfg.MODEL.FPN.OUT_CHANNELS,
        norm=cfg.MODEL.FPN.NORM,
        top_block=DropBlockLastLevelP6P7(
            bottom_up.output_shape()["res5"].channels,
            cfg.MODEL.FPN.OUT_CHANNELS,
            dropblock=top_block_dropblock,
        ),
        fuse_type=cfg.MODEL.FPN.FUSE_TYPE,
        **_fpn_regularizer_kwargs(cfg),
    )
