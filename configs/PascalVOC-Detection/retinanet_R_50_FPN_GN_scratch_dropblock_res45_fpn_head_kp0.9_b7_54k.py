"""LazyConfig twin of retinanet_R_50_FPN_GN_scratch_dropblock_res45_fpn_head_kp0.9_b7_54k.yaml:
RetinaNet R50-FPN with GN from random initialisation on PASCAL VOC 2007+2012 trainval,
evaluated on VOC 2007 test (VOC AP), DropBlock (keep_prob 0.9, block 7) in ResNet
res4/res5, the FPN and both head towers, ramped over the 54k iterations.

    python tools/lazyconfig_train_net.py --config-file THIS [--num-gpus 8] [key=value ...]
"""
from ..common.data.coco_detection import dataloader
from ..common.models.retinanet_R_50_FPN_GN_dropblock import dropblock, model
from ..common.optim import SGD as optimizer
from ..common.schedules import step_schedule
from ..common.train import train

model.num_classes = 20

# The COCO loaders with VOC's sets and training sizes (the evaluator follows the test set).
dataloader.train.dataset.names = ["voc_2007_trainval", "voc_2012_trainval"]
dataloader.train.mapper.augmentations[0].short_edge_length = (480, 512, 544, 576, 608, 640, 672, 704, 736, 768, 800)
dataloader.test.dataset.names = "voc_2007_test"

train.max_iter = 54000
train.eval_period = 0  # VOC AP once, at the end (as the .yaml)
train.output_dir = "./output/voc_retinanet_R_50_FPN_GN_scratch_dropblock_res45_fpn_head_kp0.9_b7_54k"
optimizer.lr = 0.01
lr_multiplier = step_schedule(train.max_iter, (42000, 50000))
