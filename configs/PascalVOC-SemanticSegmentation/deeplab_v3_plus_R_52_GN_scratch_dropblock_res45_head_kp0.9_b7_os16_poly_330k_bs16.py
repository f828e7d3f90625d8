"""LazyConfig twin of deeplab_v3_plus_R_52_GN_scratch_dropblock_res45_head_kp0.9_b7_os16_poly_330k_bs16.yaml:
DeepLabV3+ R52 (output stride 16; a ResNet-50 with the DeepLab stem) with GN, from random initialisation, on VOC 2012
train_aug, DropBlock (keep_prob 0.9, block 7) in ResNet res4/res5 and the head, ramped over
the 330k iterations at 16 images per batch (~500 epochs); poly LR with a linear warm-up.

    python tools/lazyconfig_train_net.py --config-file THIS [--num-gpus 8] [key=value ...]
"""
from detectron2.config import LazyCall as L

from dropblock_det.solver import WarmupPolyParamScheduler

from ..common.data.voc_sem_seg import dataloader
from ..common.models.deeplab_v3_plus_R_52_GN_dropblock import dropblock, model
from ..common.optim import SGD as optimizer
from ..common.train import train

train.max_iter = 330000
train.eval_period = 0  # mIoU once, at the end (as the .yaml)
train.output_dir = "./output/deeplab_v3_plus_R_52_GN_scratch_dropblock_res45_head_kp0.9_b7_os16_poly_330k_bs16"
optimizer.lr = 0.01
lr_multiplier = L(WarmupPolyParamScheduler)(
    warmup_length=1000 / train.max_iter, warmup_factor=0.001, warmup_method="linear", power=0.9, constant_ending=0.0
)
