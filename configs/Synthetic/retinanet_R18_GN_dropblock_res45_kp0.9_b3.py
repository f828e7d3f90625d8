"""LazyConfig twin of retinanet_R18_GN_dropblock_res45_kp0.9_b3.yaml (the main job's
config): RetinaNet R18-FPN with GN on the synthetic shapes set, DropBlock (keep_prob 0.9,
block 3) in res4/res5 after both convs of the basic blocks and on the shortcut, on the CPU.
See the .yaml for why each value is what it is.

    python tools/lazyconfig_train_net.py --config-file THIS
"""
from detectron2.config import LazyCall as L
from detectron2.data import transforms as T

from ..common.data.coco_detection import dataloader
from ..common.models.retinanet_R_50_FPN_GN_dropblock import dropblock, model
from ..common.optim import SGD as optimizer
from ..common.schedules import cosine_schedule
from ..common.train import train

dropblock.block_size = 3

model.backbone.bottom_up.stages.depth = 18
model.backbone.bottom_up.stages.dropblock_positions = ["conv1", "conv2", "shortcut"]
model.backbone.out_channels = 64
model.backbone.top_block.in_channels = 512  # res5 of ResNet-18
model.backbone.dropblock_positions = []  # ResNet only, as the paper's setting
model.backbone.top_block.dropblock = None
model.head.conv_dims = [64, 64]
model.head.dropblock_towers = []
model.num_classes = 3
# objects are 22-72 px: one octave of base sizes per level P3..P7, three scales each
model.anchor_generator.sizes = [[x, x * 2 ** (1.0 / 3), x * 2 ** (2.0 / 3)] for x in [16, 32, 64, 128, 256]]

dataloader.train.dataset.names = "synthetic_det_train"
dataloader.train.mapper.augmentations = [
    L(T.ResizeShortestEdge)(short_edge_length=(96,), max_size=96, sample_style="choice"),
    L(T.RandomFlip)(horizontal=True),
]
dataloader.train.total_batch_size = 8
dataloader.train.num_workers = 0
dataloader.test.dataset.names = "synthetic_det_val"
dataloader.test.mapper.augmentations = [L(T.ResizeShortestEdge)(short_edge_length=96, max_size=96, sample_style="choice")]
dataloader.test.num_workers = 0

optimizer.lr = 0.02
train.max_iter = 1500
lr_multiplier = cosine_schedule(train.max_iter, warmup_iters=150, warmup_factor=0.01)
train.device = "cpu"
train.seed = 7
train.checkpointer.period = 100000  # only model_final.pth
train.eval_period = 0  # evaluate once, at the end
train.output_dir = "./output/lazy_retinanet_R18_GN_dropblock_res45_kp0.9_b3"
