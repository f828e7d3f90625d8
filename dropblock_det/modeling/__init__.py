"""detectron2 components of dropblock-det; importing this package registers them.

BACKBONE_REGISTRY: build_dropblock_resnet_backbone, build_dropblock_resnet_fpn_backbone,
build_dropblock_retinanet_resnet_fpn_backbone, build_dropblock_resnet_deeplab_backbone.
META_ARCH_REGISTRY: DropBlockRetinaNet. SEM_SEG_HEADS_REGISTRY: DropBlockDeepLabV3PlusHead,
DropBlockFCNHead. ROI_HEADS_REGISTRY: DropBlockRes5ROIHeads.
"""
from .fpn import (
    DropBlockFPN,
    DropBlockLastLevelP6P7,
    build_dropblock_resnet_fpn_backbone,
    build_dropblock_retinanet_resnet_fpn_backbone,
)
from .resnet import (
    DropBlockBasicBlock,
    DropBlockBottleneckBlock,
    build_dropblock_resnet_backbone,
    dropblock_resnet_arguments,
    make_dropblock_resnet_stages,
)
from .retinanet import DropBlockRetinaNet, DropBlockRetinaNetHead
from .deeplab import (
    DropBlockASPP,
    DropBlockDeepLabV3PlusHead,
    add_dropblock_deeplab_config,
    build_dropblock_resnet_deeplab_backbone,
)
from .fcn_head import DropBlockFCNHead
from .roi_heads import DropBlockRes5ROIHeads
