"""The ROI heads of a C4 R-CNN (detectron2's `Res5ROIHeads`, Base-RCNN-C4.yaml) with
DropBlock in their res5.

In a C4 model res5 is not in the backbone: the ROI head builds it and runs it on every
pooled region (14x14 -> 7x7 at the default pooler resolution, the size of ResNet-50's res5
on a 224 px image, where the paper puts DropBlock). `DropBlockRes5ROIHeads` is
`Res5ROIHeads` whose res5 blocks get the regularizers MODEL.DROPBLOCK.RESNET gives res5
(when STAGES lists it; STAGE_DROP_SCALES and DROP_PATH_RATE apply as in the backbone), so
`MODEL.BACKBONE.NAME: build_dropblock_resnet_backbone` (res2..res4) plus
`MODEL.ROI_HEADS.NAME: DropBlockRes5ROIHeads` (res5) is a C4 ResNet with DropBlock in
res4 and res5.
"""
from typing import List, Sequence, Tuple

from torch import nn

from detectron2.modeling import ROI_HEADS_REGISTRY
from detectron2.modeling.backbone.resnet import BottleneckBlock
from detectron2.modeling.roi_heads import Res5ROIHeads

from ..config import check_feature_names, validate_dropblock_config
from ..layers.base import NotScriptable
from .resnet import DropBlockBottleneckBlock, dropblock_resnet_arguments, resnet_stage_regularizers

__all__ = ["DropBlockRes5ROIHeads", "check_c4_head_features"]


def check_c4_head_features(cfg, outputs: Sequence[str]) -> List[str]:
    """MODEL.ROI_HEADS.IN_FEATURES of a C4 ROI head (MODEL.ROI_HEADS.NAME a `Res5ROIHeads`)
    against `outputs`, the backbone's: one feature, which it gives. detectron2 asserts the
    first naming no key, and fails on a missing one with a bare KeyError (e.g. 'res4').
    ValueError naming the key; returns the features as a list."""
    in_features = list(cfg.MODEL.ROI_HEADS.IN_FEATURES)
    if len(in_features) != 1:
        raise ValueError(
            f"MODEL.ROI_HEADS.IN_FEATURES={in_features}: {cfg.MODEL.ROI_HEADS.NAME} is the C4 head, which "
            "pools one feature (e.g. ['res4']); an FPN R-CNN takes StandardROIHeads, with DropBlock "
            "in its backbone")
    return check_feature_names("MODEL.ROI_HEADS.IN_FEATURES", in_features, outputs, "the backbone's outputs",
                               note=f"MODEL.BACKBONE.NAME={cfg.MODEL.BACKBONE.NAME!r}")


@ROI_HEADS_REGISTRY.register()
class DropBlockRes5ROIHeads(NotScriptable, Res5ROIHeads):
    """detectron2's `Res5ROIHeads` with DropBlock (and DropPath) in the blocks of its res5.

    Same inputs, outputs, losses and state_dict keys as the stock head; children beyond
    it, parameter-free: `res5.<block>.dropblock_<position>` and `res5.<block>.drop_path`
    (see :class:`DropBlockBottleneckBlock`).
    """

    @classmethod
    def from_config(cls, cfg, input_shape):
        check_c4_head_features(cfg, list(input_shape))
        return super().from_config(cfg, input_shape)

    @classmethod
    def _build_res5_block(cls, cfg) -> Tuple[nn.Sequential, int]:
        validate_dropblock_config(cfg)
        # detectron2 builds the stock res5 (its arguments, weights and random draws on every
        # version); each block then gets the children DropBlockBottleneckBlock adds to a
        # BottleneckBlock, which is all that class adds. The head's res5 is bottleneck blocks
        # whatever MODEL.RESNETS.DEPTH is, so conv3 is a position there.
        res5, out_channels = super()._build_res5_block(cfg)
        regularizers = resnet_stage_regularizers(50, **dropblock_resnet_arguments(cfg, 50))["res5"]
        for block in res5:
            if type(block) is not BottleneckBlock:  # a detectron2 that builds other blocks
                raise TypeError(f"DropBlockRes5ROIHeads: expected detectron2's res5 of BottleneckBlock, "
                                f"got a {type(block).__name__}")
            block.__class__ = DropBlockBottleneckBlock
            block._add_regularizers(regularizers.get("dropblock"), regularizers.get("dropblock_positions", ()),
                                    regularizers["drop_path_keep_prob"])
        return res5, out_channels
