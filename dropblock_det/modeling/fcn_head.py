"""The paper's segmentation model: an FCN head on ResNet-FPN features, with DropBlock.

`DropBlockFCNHead` (SEM_SEG_HEADS_REGISTRY) is detectron2's `SemSegFPNHead` (Panoptic FPN's
semantic branch: per FPN level, 3x3 conv+norm+ReLU layers each followed by a 2x upsampling
until the level reaches COMMON_STRIDE, then the levels are summed and a 1x1 conv predicts
the classes) with a regularizer after every 3x3 conv+norm+ReLU, at that conv's resolution,
when MODEL.DROPBLOCK.SEM_SEG_HEAD.ENABLED and POSITIONS contains "decoder" (the paper found
DropBlock in the head more useful than in the backbone on PASCAL VOC). Pair it with
`build_dropblock_resnet_fpn_backbone` in a `SemanticSegmentor`.

No parameters or buffers are added, and the per-level `nn.Sequential`s keep the stock
child names ("0", "1", ...) with the regularizers named "dropblock<k>" between them, so the
state_dict is exactly `SemSegFPNHead`'s.
"""
import math
from collections import OrderedDict
from typing import Any, Callable, Dict, Optional, Sequence

import torch
from detectron2.config import CfgNode, configurable
from detectron2.layers import Conv2d, ShapeSpec
from detectron2.modeling import SEM_SEG_HEADS_REGISTRY
from detectron2.modeling.meta_arch.semantic_seg import SemSegFPNHead
from torch import nn

from ..config import (
    SEM_SEG_HEAD_POSITIONS,
    check_channels,
    check_placement,
    regularizer_factory,
    validate_dropblock_config,
)
from ..layers import as_regularizer_factory
from ..layers.base import NotScriptable
from .conv_relu import conv_relu_then_regularize

__all__ = ["DropBlockFCNHead"]

RegularizerFactory = Callable[[], nn.Module]


def _check_common_stride(key: str, common_stride: Any, strides: Sequence[int], features_key: str) -> None:
    """ValueError naming `key` unless every input level reaches `common_stride` the way
    SemSegFPNHead brings it there (max(1, log2(stride / common_stride)) convs, each followed
    by a 2x upsampling unless the level is at common_stride already): the stock head sums
    levels of different sizes at the first step otherwise ("The size of tensor a (32) must
    match the size of tensor b (8)"). Powers of 2 up to the finest input's stride do."""
    if isinstance(common_stride, bool) or not isinstance(common_stride, int) or common_stride < 1:
        raise ValueError(f"{key}={common_stride!r}: expected a stride >= 1")
    for stride in strides:
        upsamplings = 0 if stride == common_stride else max(1, int(math.log2(stride) - math.log2(common_stride)))
        if stride / 2**upsamplings != common_stride:
            raise ValueError(
                f"{key}={common_stride}: the level at stride {stride} ({features_key}: strides "
                f"{sorted(set(strides))}) is upsampled to stride {stride / 2**upsamplings:g}, not to it; "
                f"use a power of 2 up to {min(strides)}")


def _refuse_deeplab_positions(key: str, positions: Sequence[str]) -> None:
    """ValueError naming `key` where `positions` names the DeepLab parts "aspp" / "project",
    which this head does not have, in a list other than all of SEM_SEG_HEAD_POSITIONS (the
    yacs default, kept so that a config that turns the head on alone works here): the run
    trained without DropBlock there, and without a word."""
    positions = list(positions)
    named = [p for p in positions if p in ("aspp", "project")]
    if named and sorted(positions) != sorted(SEM_SEG_HEAD_POSITIONS):
        raise ValueError(
            f"{key}={positions}: DropBlockFCNHead has no {' or '.join(map(repr, named))} (DeepLabV3+ "
            "parts) and places DropBlock only at 'decoder' (after its convs): write ['decoder']"
        )


# The DeepLab project's head keys that only DeepLabV3+ reads (LOSS_TYPE aside: its default,
# hard_pixel_mining, is in every config that does not set it).
_DEEPLAB_HEAD_KEYS = ("PROJECT_FEATURES", "PROJECT_CHANNELS", "ASPP_CHANNELS", "ASPP_DILATIONS", "ASPP_DROPOUT",
                      "USE_DEPTHWISE_SEPARABLE_CONV")


def _refuse_deeplab_head_keys(cfg: CfgNode) -> None:
    """ValueError naming the first MODEL.SEM_SEG_HEAD key of DeepLabV3+ (ASPP_*, PROJECT_*)
    set away from detectron2's default: this head has no ASPP nor projection and reads none
    of them, so an FCN config given ASPP_DILATIONS trained as if it had not been."""
    from ..deploy import empty_stock_config  # (deploy imports this package)

    def shown(value: Any) -> Any:  # a yacs tuple as the list a config file writes
        return list(value) if isinstance(value, (list, tuple)) else value

    defaults = empty_stock_config(deeplab=True).MODEL.SEM_SEG_HEAD
    head = cfg.MODEL.SEM_SEG_HEAD
    for key in _DEEPLAB_HEAD_KEYS:
        if key in head and head[key] != defaults[key]:
            raise ValueError(
                f"MODEL.SEM_SEG_HEAD.{key}={shown(head[key])!r}: MODEL.SEM_SEG_HEAD.NAME 'DropBlockFCNHead' has no "
                f"ASPP nor decoder projection and does not read it (DeepLabV3+ does, DropBlockDeepLabV3PlusHead): "
                f"leave it at detectron2's default {shown(defaults[key])!r}, or build the DeepLab head")


class _RegularizedTower(NotScriptable, nn.Sequential):
    """A level's tower of `SemSegFPNHead` (conv+norm+ReLU, upsampling, ...) with the
    regularizer "dropblock<k>" after conv "<k>", which is handed the conv's ReLU
    (`conv_relu_then_regularize`: relu(x) is not kept for backward beside its output)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for name, module in self.named_children():
            if name.startswith("dropblock"):
                continue  # run with its conv
            regularizer = self._modules.get(f"dropblock{name}")
            x = module(x) if regularizer is None else conv_relu_then_regularize(module, regularizer, x)
        return x


@SEM_SEG_HEADS_REGISTRY.register()
class DropBlockFCNHead(NotScriptable, SemSegFPNHead):
    """`SemSegFPNHead` with a regularizer after each conv of its per-level towers.

    Input: FPN features {name: (N, C, H/stride, W/stride)}; output as `SemSegFPNHead`
    (training: (None, {"loss_sem_seg"}); inference: (N, num_classes, H', W') logits at the
    input resolution). Regularizer children: `<feature>.dropblock<k>` after conv `<k>`.
    """

    @configurable
    def __init__(
        self,
        input_shape: Dict[str, ShapeSpec],
        *,
        dropblock: Optional[RegularizerFactory] = None,
        dropblock_positions: Sequence[str] = (),
        **fpn_head_kwargs,
    ):
        """
        Args:
            input_shape, fpn_head_kwargs: as detectron2's `SemSegFPNHead` (num_classes,
                conv_dims, common_stride, loss_weight, norm, ignore_value).
            dropblock: builds one regularizer; called once per conv (a regularizer module
                is copied per conv instead). Needed when
                `dropblock_positions` contains "decoder".
            dropblock_positions: names from MODEL.DROPBLOCK.SEM_SEG_HEAD.POSITIONS. This head
                has only "decoder" (its convs); "aspp" and "project" name DeepLab parts that
                it does not have: they are ignored in the list of all three (the config's
                default), and refused in any other.
        """
        dropblock = as_regularizer_factory(dropblock)
        dropblock_positions = check_placement(
            "dropblock_positions", dropblock_positions, SEM_SEG_HEAD_POSITIONS, dropblock, "DropBlockFCNHead"
        )
        if dropblock_positions and "decoder" not in dropblock_positions:
            raise ValueError(
                f"dropblock_positions={dropblock_positions}: DropBlockFCNHead places "
                "regularizers only at 'decoder' (after its convs); nothing would be inserted"
            )
        _refuse_deeplab_positions("dropblock_positions", dropblock_positions)
        norm = fpn_head_kwargs.get("norm")
        conv_dims = fpn_head_kwargs.get("conv_dims")
        if conv_dims is not None:  # else the stock head names the missing argument
            check_channels(norm, {"conv_dims": conv_dims})
        if "common_stride" in fpn_head_kwargs:  # else the stock head names the missing argument
            _check_common_stride("common_stride", fpn_head_kwargs["common_stride"],
                                 [shape.stride for shape in input_shape.values()], "input_shape")
        super().__init__(input_shape, **fpn_head_kwargs)
        if not dropblock_positions:
            return
        for index, feature in enumerate(self.in_features):
            tower = self.scale_heads[index]
            children = OrderedDict()
            for name, module in tower.named_children():
                children[name] = module  # stock names kept: state_dict keys do not move
                if isinstance(module, Conv2d):
                    children[f"dropblock{name}"] = dropblock()
            tower = _RegularizedTower(children)
            # SemSegFPNHead keeps each tower both in a plain list and as a named child.
            self.scale_heads[index] = tower
            setattr(self, feature, tower)

    @classmethod
    def from_config(cls, cfg: CfgNode, input_shape: Dict[str, ShapeSpec]) -> dict:
        validate_dropblock_config(cfg)
        _refuse_deeplab_head_keys(cfg)
        head = cfg.MODEL.SEM_SEG_HEAD
        missing = [f for f in head.IN_FEATURES if f not in input_shape]
        if missing:
            raise ValueError(
                f"MODEL.SEM_SEG_HEAD.IN_FEATURES={list(head.IN_FEATURES)}: the backbone has no "
                f"output {missing[0]!r} (it has {sorted(input_shape)})"
            )
        check_channels(head.NORM, {"MODEL.SEM_SEG_HEAD.CONVS_DIM": head.CONVS_DIM})
        _check_common_stride("MODEL.SEM_SEG_HEAD.COMMON_STRIDE", head.COMMON_STRIDE,
                             [input_shape[f].stride for f in head.IN_FEATURES], "MODEL.SEM_SEG_HEAD.IN_FEATURES")
        ret = super().from_config(cfg, input_shape)
        seg = cfg.MODEL.DROPBLOCK.SEM_SEG_HEAD
        if seg.ENABLED:
            if "decoder" not in seg.POSITIONS:
                raise ValueError(
                    f"MODEL.DROPBLOCK.SEM_SEG_HEAD.POSITIONS={list(seg.POSITIONS)}: "
                    "DropBlockFCNHead places DropBlock only at 'decoder' (after its convs)"
                )
            _refuse_deeplab_positions("MODEL.DROPBLOCK.SEM_SEG_HEAD.POSITIONS", seg.POSITIONS)
            ret["dropblock"] = regularizer_factory(cfg)
            ret["dropblock_positions"] = ["decoder"]
        return ret
