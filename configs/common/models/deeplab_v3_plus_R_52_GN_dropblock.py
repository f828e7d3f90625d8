"""DeepLabV3+ on a dilated ResNet-50 (DeepLab stem, output stride 16, res5 multi-grid
1, 2, 4) trained from random initialisation with GN everywhere, with DropBlock in ResNet
res4/res5 (res4 at 1/4 of res5's drop rate) and in the head after each ASPP branch, the
ASPP projection and each decoder conv.

The LazyConfig twin of the model of configs/PascalVOC-SemanticSegmentation/deeplab_v3_
plus_R_52_GN_scratch_dropblock_res45_head_kp0.9_b7_os16_poly_330k_bs16.yaml (checked by
tests/engine/test_lazy.py). As in the RetinaNet model, every location copies the top-level
`dropblock` node (`dropblock.keep_prob=...`, `dropblock.type=Dropout`, ...).
"""
from detectron2.config import LazyCall as L
from detectron2.layers import ShapeSpec
from detectron2.modeling import SemanticSegmentor
from detectron2.modeling.backbone import ResNet
from detectron2.projects.deeplab.resnet import DeepLabStem

from dropblock_det.layers import build_regularizer
from dropblock_det.modeling import DropBlockDeepLabV3PlusHead, make_dropblock_resnet_stages

dropblock = L(build_regularizer)(
    type="DropBlock", keep_prob=0.9, block_size=7, shared_mask=False, gamma_mode="paper", impl="auto"
)

model = L(SemanticSegmentor)(
    backbone=L(ResNet)(
        stem=L(DeepLabStem)(in_channels=3, out_channels=128, norm="GN"),  # three 3x3 convs
        stages=L(make_dropblock_resnet_stages)(
            depth=50,
            in_channels=128,
            norm="GN",
            stride_in_1x1=False,
            res5_dilation=2,  # output stride 16
            res5_multi_grid=[1, 2, 4],
            dropblock="${dropblock}",
            dropblock_stages=["res4", "res5"],
            dropblock_positions=["conv1", "conv2", "conv3", "shortcut"],
            stage_drop_scales=[0.25, 1.0],
        ),
        out_features=["res2", "res5"],
        freeze_at=0,
    ),
    sem_seg_head=L(DropBlockDeepLabV3PlusHead)(
        input_shape={
            "res2": L(ShapeSpec)(channels=256, stride=4),
            "res5": L(ShapeSpec)(channels=2048, stride=16),
        },
        project_channels=[64],  # detectron2 uses 48; 64 is divisible by GN's 32 groups
        aspp_dilations=[6, 12, 18],
        aspp_dropout=0.1,
        decoder_channels=[256, 256],
        common_stride=4,
        norm="GN",
        train_size=(384, 384),  # the training crop: sizes the ASPP's image pooling
        loss_weight=1.0,
        loss_type="cross_entropy",
        ignore_value=255,  # VOC's object-boundary band
        num_classes=21,
        dropblock="${dropblock}",
        dropblock_positions=["aspp", "project", "decoder"],
    ),
    # torchvision-style RGB statistics
    pixel_mean=[123.675, 116.280, 103.530],
    pixel_std=[58.395, 57.120, 57.375],
)
