"""RetinaNet R50-FPN trained from random initialisation (GN in backbone, FPN and head,
nothing frozen), with DropBlock at every location dropblock-det has for it: the paper's
ResNet-50 setting in the ResNet (where its COCO RetinaNet has DropBlock), res4 and res5 after
every conv+norm and on the shortcut (res4 at 1/4 of res5's drop rate, as the official code),
and beyond the paper the FPN's lateral and output convs, its P6/P7 convs and both head towers (the paper's setting alone:
`model.backbone.dropblock_positions = []`, `model.backbone.top_block.dropblock = None`,
`model.head.dropblock_towers = []`, as configs/Synthetic/retinanet_R18_GN_dropblock_res45_kp0.9_b3.py).

The LazyConfig twin of configs/COCO-Detection/retinanet_R_50_FPN_GN_scratch_dropblock_
res45_fpn_head_kp0.9_b7_3x.yaml's model (tests/engine/test_lazy.py checks they build the
same model). Every location copies the one top-level `dropblock` node, so
`dropblock.keep_prob=0.8` changes them all; `dropblock.keep_prob=1.0` is the baseline (every
regularizer is then the identity). Other regularizers: `dropblock.type=Dropout` or
`SpatialDropout` (as MODEL.DROPBLOCK.TYPE: they ignore the DropBlock-only arguments); a
regularizer of your own: `dropblock = L(YourModule)(keep_prob=...)` in your config.
"""
from detectron2.config import LazyCall as L
from detectron2.layers import ShapeSpec
from detectron2.modeling.anchor_generator import DefaultAnchorGenerator
from detectron2.modeling.backbone import BasicStem, ResNet
from detectron2.modeling.box_regression import Box2BoxTransform
from detectron2.modeling.matcher import Matcher

from dropblock_det.layers import build_regularizer
from dropblock_det.modeling import (
    DropBlockFPN,
    DropBlockLastLevelP6P7,
    DropBlockRetinaNet,
    DropBlockRetinaNetHead,
    make_dropblock_resnet_stages,
)

# The paper's setting: keep_prob 0.9 (reached at the end of the ramp), block 7, one mask per channel.
dropblock = L(build_regularizer)(
    type="DropBlock", keep_prob=0.9, block_size=7, shared_mask=False, gamma_mode="paper", impl="auto"
)

model = L(DropBlockRetinaNet)(
    backbone=L(DropBlockFPN)(
        bottom_up=L(ResNet)(
            stem=L(BasicStem)(in_channels=3, out_channels=64, norm="GN"),
            stages=L(make_dropblock_resnet_stages)(
                depth=50,
                norm="GN",
                stride_in_1x1=False,
                dropblock="${dropblock}",
                dropblock_stages=["res4", "res5"],
                dropblock_positions=["conv1", "conv2", "conv3", "shortcut"],
                stage_drop_scales=[0.25, 1.0],
            ),
            out_features=["res3", "res4", "res5"],
            freeze_at=0,
        ),
        in_features=["res3", "res4", "res5"],
        out_channels=256,
        norm="GN",
        top_block=L(DropBlockLastLevelP6P7)(
            in_channels=2048, out_channels="${..out_channels}", dropblock="${dropblock}"
        ),
        dropblock="${dropblock}",
        dropblock_positions=["lateral", "output"],
    ),
    head=L(DropBlockRetinaNetHead)(
        input_shape=[L(ShapeSpec)(channels="${....backbone.out_channels}")] * 5,  # one per level, as detectron2's
        num_classes="${..num_classes}",
        conv_dims=[256, 256, 256, 256],
        norm="GN",
        prior_prob=0.01,
        num_anchors=9,
        dropblock="${dropblock}",
        dropblock_towers=["cls", "bbox"],
    ),
    head_in_features=["p3", "p4", "p5", "p6", "p7"],
    anchor_generator=L(DefaultAnchorGenerator)(
        # three octave scales per level: 2^0, 2^(1/3), 2^(2/3)
        sizes=[[x, x * 2 ** (1.0 / 3), x * 2 ** (2.0 / 3)] for x in [32, 64, 128, 256, 512]],
        aspect_ratios=[0.5, 1.0, 2.0],
        strides=[8, 16, 32, 64, 128],
        offset=0.0,
    ),
    box2box_transform=L(Box2BoxTransform)(weights=[1.0, 1.0, 1.0, 1.0]),
    anchor_matcher=L(Matcher)(thresholds=[0.4, 0.5], labels=[0, -1, 1], allow_low_quality_matches=True),
    num_classes=80,
    focal_loss_alpha=0.25,
    focal_loss_gamma=2.0,
    smooth_l1_beta=0.0,
    test_score_thresh=0.05,
    test_topk_candidates=1000,
    test_nms_thresh=0.5,
    max_detections_per_image=100,
    pixel_mean=[103.530, 116.280, 123.675],
    pixel_std=[1.0, 1.0, 1.0],
    input_format="BGR",
)
