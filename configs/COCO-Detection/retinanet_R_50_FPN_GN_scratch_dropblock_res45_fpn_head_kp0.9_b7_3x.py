"""LazyConfig twin of retinanet_R_50_FPN_GN_scratch_dropblock_res45_fpn_head_kp0.9_b7_3x.yaml:
RetinaNet R50-FPN with GN, from random initialisation, DropBlock (keep_prob 0.9, block 7)
in ResNet res4/res5, the FPN and both head towers, ramped over the 3x schedule (270k
iterations at 16 images per batch).

    python tools/lazyconfig_train_net.py --config-file THIS [--num-gpus 8] [key=value ...]
"""
from ..common.data.coco_detection import dataloader
from ..common.models.retinanet_R_50_FPN_GN_dropblock import dropblock, model
from ..common.optim import SGD as optimizer
from ..common.schedules import lr_multiplier_3x as lr_multiplier
from ..common.train import train

train.max_iter = 270000
train.eval_period = 0  # COCO AP once, at the end (as the .yaml)
train.output_dir = "./output/retinanet_R_50_FPN_GN_scratch_dropblock_res45_fpn_head_kp0.9_b7_3x"
optimizer.lr = 0.01  # lower than Faster R-CNN's 0.02: RetinaNet diverges more easily
