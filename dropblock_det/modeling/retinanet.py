"""RetinaNet whose head has DropBlock in its towers and builds GN on detectron2 v0.6.

detectron2's RetinaNet builds its head directly (the head is not in a registry), so the
plugin registers its own meta-architecture, `DropBlockRetinaNet`, which differs from
`RetinaNet` only in the head it builds.
"""
import contextlib
import logging
from typing import List, Optional, Sequence, Tuple

import torch
from torch import nn

from detectron2.config import configurable
from detectron2.layers import ShapeSpec, get_norm
from detectron2.modeling import META_ARCH_REGISTRY, build_backbone
from detectron2.modeling.meta_arch.retinanet import RetinaNet, RetinaNetHead

from ..config import (
    check_anchor_levels,
    check_feature_names,
    check_norm,
    check_placement,
    regularizer_factory,
    validate_dropblock_config,
)
from ..layers import as_regularizer_factory, relu_then_regularize
from ..layers.base import NotScriptable, has_module_hooks, is_real_number

__all__ = ["DropBlockRetinaNet", "DropBlockRetinaNetHead", "head_levels_error", "stock_retinanet_head_error"]

logger = logging.getLogger(__name__)

# Norms RetinaNetHead builds itself on every detectron2 version (per-level BN statistics
# through CycleBatchNormList); for any other norm v0.6 calls get_norm(norm, 1), which
# for "GN" means GroupNorm(32, 1) and crashes.
_NORMS_STOCK_HEAD_BUILDS = ("", None, "BN", "SyncBN")
# Of those, the norms whose statistics RetinaNetHead keeps per level: one BN per entry of
# input_shape, cycled through level by level in each forward.
PER_LEVEL_NORMS = ("BN", "SyncBN")
_TOWERS = ("cls", "bbox")


def stock_retinanet_head_error(norm: str) -> Optional[Exception]:
    """Why this detectron2's own RetinaNetHead cannot build `norm`, or None where it can
    (v0.6 builds GN as GroupNorm(32, 1), which fails; current detectron2 builds it per
    conv). Built on the meta device where torch has one."""
    meta = torch.device("meta") if hasattr(torch.device("meta"), "__enter__") else contextlib.nullcontext()
    try:
        with meta:
            RetinaNetHead(input_shape=[ShapeSpec(channels=32)], num_classes=1, num_anchors=1,
                          conv_dims=[32], norm=norm)
    except (ValueError, RuntimeError, KeyError) as e:
        return e
    return None


def head_levels_error(per_level_norm: bool, num_shapes: int, levels: Sequence[str]) -> Optional[str]:
    """Why a RetinaNet head built with `num_shapes` input shapes cannot run on the feature
    levels `levels`, or None where it can. With per-level statistics (BN, SyncBN) each
    input_shape entry is one level's BN, so fewer entries than levels would silently share
    one BN between levels (or cycle out of step across iterations); with any other norm the
    count does not matter to DropBlockRetinaNetHead (detectron2's own head asserts it)."""
    if not per_level_norm or num_shapes == len(levels):
        return None
    return (f"{num_shapes} ShapeSpec(s) for the {len(levels)} levels {list(levels)}, with a norm "
            f"({'/'.join(PER_LEVEL_NORMS)}) whose statistics RetinaNetHead keeps per level, one per "
            f"input_shape entry: give one per level, e.g. [ShapeSpec(channels=256)] * {len(levels)}")


def _is_open_probability(value) -> bool:
    """A number in (0, 1): RetinaNetHead's classification bias init, -log((1 - p) / p),
    fails on anything else with a bare "math domain error" or ZeroDivisionError."""
    return is_real_number(value) and 0 < value < 1


class DropBlockRetinaNetHead(NotScriptable, RetinaNetHead):
    """detectron2's `RetinaNetHead` with optional regularizers after every conv(+norm)+ReLU
    of the classification and/or box towers, and norms (e.g. GN) built with their channel
    count on every detectron2 version.

    The towers keep detectron2's layout and indices (`cls_subnet.{0,1,2,...}` = conv,
    norm, ReLU, ...), so state_dict keys match stock detectron2; the regularizers live in
    separate ModuleLists `cls_dropblocks` / `bbox_dropblocks` (one per conv, only when
    enabled). Inputs and outputs as `RetinaNetHead.forward`.
    """

    @configurable
    def __init__(
        self,
        *,
        input_shape: List[ShapeSpec],
        conv_dims: List[int],
        norm="",
        dropblock=None,
        dropblock_towers: Sequence[str] = (),
        **head_kwargs,
    ):
        """
        Args:
            dropblock: builds one regularizer (called once per conv of each chosen tower;
                a regularizer module is copied per conv instead).
            dropblock_towers: subset of ("cls", "bbox").
            input_shape, conv_dims, norm, head_kwargs: as `RetinaNetHead` (num_classes,
                num_anchors, prior_prob).
        """
        dropblock = as_regularizer_factory(dropblock)
        dropblock_towers = check_placement("dropblock_towers", dropblock_towers, _TOWERS, dropblock,
                                           "DropBlockRetinaNetHead")
        if not conv_dims:  # RetinaNetHead would fail on conv_dims[-1] with a bare IndexError
            raise ValueError(
                "conv_dims is empty (MODEL.RETINANET.NUM_CONVS=0): detectron2's RetinaNetHead "
                "needs at least one conv per tower"
            )
        prior_prob = head_kwargs.get("prior_prob", 0.01)
        if not _is_open_probability(prior_prob):
            raise ValueError(f"prior_prob={prior_prob!r}: expected a probability in (0, 1), e.g. 0.01")
        rebuild_towers = norm not in _NORMS_STOCK_HEAD_BUILDS
        super().__init__(
            input_shape=input_shape,
            conv_dims=conv_dims,
            norm="" if rebuild_towers else norm,
            **head_kwargs,
        )
        self._per_level_norm = norm in PER_LEVEL_NORMS
        if rebuild_towers:
            in_channels = input_shape[0].channels
            self.cls_subnet = self._normed_tower(in_channels, conv_dims, norm)
            self.bbox_subnet = self._normed_tower(in_channels, conv_dims, norm)
        for tower in _TOWERS:
            if tower in dropblock_towers:
                regularizers = nn.ModuleList([dropblock() for _ in conv_dims])
                setattr(self, f"{tower}_dropblocks", regularizers)
            else:
                setattr(self, f"{tower}_dropblocks", None)

    @staticmethod
    def _normed_tower(in_channels: int, conv_dims: List[int], norm) -> nn.Sequential:
        """conv, norm, ReLU per entry of conv_dims: stock detectron2's tower layout, with
        the norm built for the conv's channel count (and RetinaNetHead's conv init)."""
        layers = []
        for out_channels in conv_dims:
            conv = nn.Conv2d(in_channels, out_channels, kernel_size=3, stride=1, padding=1)
            torch.nn.init.normal_(conv.weight, mean=0, std=0.01)
            torch.nn.init.constant_(conv.bias, 0)
            layers += [conv, get_norm(norm, out_channels), nn.ReLU()]
            in_channels = out_channels
        return nn.Sequential(*layers)

    @classmethod
    def from_config(cls, cfg, input_shape: List[ShapeSpec]) -> dict:
        validate_dropblock_config(cfg)
        ret = super().from_config(cfg, input_shape)
        head = cfg.MODEL.DROPBLOCK.HEAD
        if head.ENABLED:
            ret["dropblock"] = regularizer_factory(cfg)
            ret["dropblock_towers"] = list(head.TOWERS)
        return ret

    @staticmethod
    def _run_tower(
        tower: nn.Sequential, regularizers: Optional[nn.ModuleList], x: torch.Tensor
    ) -> torch.Tensor:
        if regularizers is None:
            return tower(x)
        conv_index = 0
        for layer in tower:
            # Every conv block of a tower ends with its ReLU; the regularizer applies it
            # (fused into DropBlock's own pass on the Triton path) unless the ReLU module
            # has hooks (its own or global ones), which must see it called.
            if isinstance(layer, nn.ReLU):
                regularizer = regularizers[conv_index]
                conv_index += 1
                if has_module_hooks(layer):
                    x = regularizer(layer(x))
                else:
                    x = relu_then_regularize(regularizer, x, inplace=layer.inplace)
            else:
                x = layer(x)
        return x

    def forward(
        self, features: List[torch.Tensor]
    ) -> Tuple[List[torch.Tensor], List[torch.Tensor]]:
        """features: per-level (N, C, Hi, Wi) -> (logits: per level (N, A*K, Hi, Wi),
        box deltas: per level (N, A*4, Hi, Wi)), as `RetinaNetHead.forward`."""
        if self._per_level_norm and len(features) != self._num_features:
            levels = [f"features[{i}]" for i in range(len(features))]
            raise ValueError(f"DropBlockRetinaNetHead(input_shape=...): "
                             f"{head_levels_error(True, self._num_features, levels)}")
        logits = []
        bbox_reg = []
        for feature in features:
            cls_features = self._run_tower(self.cls_subnet, self.cls_dropblocks, feature)
            bbox_features = self._run_tower(self.bbox_subnet, self.bbox_dropblocks, feature)
            logits.append(self.cls_score(cls_features))
            bbox_reg.append(self.bbox_pred(bbox_features))
        return logits, bbox_reg


@META_ARCH_REGISTRY.register()
class DropBlockRetinaNet(NotScriptable, RetinaNet):
    """detectron2's `RetinaNet` with :class:`DropBlockRetinaNetHead` as its head
    (MODEL.DROPBLOCK.HEAD, and MODEL.RETINANET.NORM "GN" on detectron2 v0.6). Backbone,
    losses, inference and state_dict keys are RetinaNet's."""

    @classmethod
    def from_config(cls, cfg) -> dict:
        validate_dropblock_config(cfg)
        check_norm("MODEL.RETINANET.NORM", cfg.MODEL.RETINANET.NORM)
        if cfg.MODEL.RETINANET.NUM_CONVS < 1:  # else a bare IndexError inside the stock head
            raise ValueError(
                f"MODEL.RETINANET.NUM_CONVS={cfg.MODEL.RETINANET.NUM_CONVS!r}: detectron2's "
                "RetinaNetHead needs at least one conv per tower"
            )
        prior_prob = cfg.MODEL.RETINANET.PRIOR_PROB  # the head refuses it too, naming its argument
        if not _is_open_probability(prior_prob):
            raise ValueError(f"MODEL.RETINANET.PRIOR_PROB={prior_prob!r}: expected a probability in (0, 1), e.g. 0.01")
        # The backbone, then our head, drawing their initial weights in the order the
        # LazyConfig twin does (same seed, same model).
        backbone = build_backbone(cfg)
        shapes = backbone.output_shape()
        # Else a bare KeyError (e.g. 'p2') from the line below.
        levels = check_feature_names("MODEL.RETINANET.IN_FEATURES", cfg.MODEL.RETINANET.IN_FEATURES, list(shapes),
                                     "the backbone's outputs", "level", f"MODEL.BACKBONE.NAME={cfg.MODEL.BACKBONE.NAME!r}")
        check_anchor_levels(cfg, "MODEL.RETINANET.IN_FEATURES", levels)
        feature_shapes = [shapes[f] for f in levels]
        head = DropBlockRetinaNetHead(cfg, feature_shapes)
        # RetinaNet.from_config for the rest (anchors, matcher, losses, inference); it builds
        # a backbone and a stock head of its own, both dropped, with their draws rolled back.
        # v0.6 cannot build the stock head with a GN norm: it builds one without.
        stock_cfg = cfg.clone()
        stock_cfg.defrost()
        stock_cfg.MODEL.RETINANET.NORM = ""
        with torch.random.fork_rng(devices=[]):
            ret = super().from_config(stock_cfg)
        ret.update(backbone=backbone, head=head)
        return ret
