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
from collections import OrderedDict
from typing import Callable, Dict, Optional, Sequence

from detectron2.config import CfgNode, configurable
from detectron2.layers import Conv2d, ShapeSpec
from detectron2.modeling import SEM_SEG_HEADS_REGISTRY
from detectron2.modeling.meta_arch.semantic_seg import SemSegFPNHead
from torch import nn

from ..config import SEM_SEG_HEAD_POSITIONS, check_placement, regularizer_factory, validate_dropblock_config
from ..layers import as_regularizer_factory

__all__ = ["DropBlockFCNHead"]

RegularizerFactory = Callable[[], nn.Module]
_GN_GROUPS = 32


@SEM_SEG_HEADS_REGISTRY.register()
class DropBlockFCNHead(SemSegFPNHead):
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
                it does not have and are ignored, so the config's default list works here.
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
        norm = fpn_head_kwargs.get("norm")
        conv_dims = fpn_head_kwargs.get("conv_dims")
        if norm == "GN" and conv_dims is not None and conv_dims % _GN_GROUPS:
            raise ValueError(
                f"conv_dims={conv_dims}: NORM 'GN' needs a multiple of {_GN_GROUPS} channels"
            )
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
            tower = nn.Sequential(children)
            # SemSegFPNHead keeps each tower both in a plain list and as a named child.
            self.scale_heads[index] = tower
            setattr(self, feature, tower)

    @classmethod
    def from_config(cls, cfg: CfgNode, input_shape: Dict[str, ShapeSpec]) -> dict:
        validate_dropblock_config(cfg)
        head = cfg.MODEL.SEM_SEG_HEAD
        missing = [f for f in head.IN_FEATURES if f not in input_shape]
        if missing:
            raise ValueError(
                f"MODEL.SEM_SEG_HEAD.IN_FEATURES={list(head.IN_FEATURES)}: the backbone has no "
                f"output {missing[0]!r} (it has {sorted(input_shape)})"
            )
        if head.NORM == "GN" and head.CONVS_DIM % _GN_GROUPS:
            raise ValueError(
                f"MODEL.SEM_SEG_HEAD.CONVS_DIM={head.CONVS_DIM}: NORM 'GN' uses {_GN_GROUPS} "
                f"groups, so it must be a multiple of {_GN_GROUPS}"
            )
        ret = super().from_config(cfg, input_shape)
        seg = cfg.MODEL.DROPBLOCK.SEM_SEG_HEAD
        if seg.ENABLED:
            if "decoder" not in seg.POSITIONS:
                raise ValueError(
                    f"MODEL.DROPBLOCK.SEM_SEG_HEAD.POSITIONS={list(seg.POSITIONS)}: "
                    "DropBlockFCNHead places DropBlock only at 'decoder' (after its convs)"
                )
            ret["dropblock"] = regularizer_factory(cfg)
            ret["dropblock_positions"] = ["decoder"]
        return ret
