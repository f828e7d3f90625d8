"""Config keys of dropblock-det: one `MODEL.DROPBLOCK` node (plus `INPUT.CUTOUT`).

Every default leaves the model identical to stock detectron2: nothing is inserted until a
`*.ENABLED` key turns a location on.
"""
from detectron2.config import CfgNode as CN


def add_dropblock_config(cfg: CN) -> None:
    """Add dropblock-det's keys, with their defaults, to a detectron2 config (in place).

    Keys (defaults in brackets):

    MODEL.DROPBLOCK
      TYPE ["DropBlock"]       regularizer inserted at every enabled location: "DropBlock"
                               (the paper), or for ablations "Dropout", "SpatialDropout".
      KEEP_PROB [0.9]          target keep probability, reached at the end of the ramp.
      BLOCK_SIZE [7]           side of the dropped square (odd or even; clipped to the map).
      SHARED_MASK [False]      one mask shared by all channels (timm's default) instead of
                               one per channel (the paper).
      GAMMA ["paper"]          seed rate: "paper" (Algorithm 1's formula, drops a little less
                               than 1 - KEEP_PROB because blocks overlap) or "calibrated"
                               (expected dropped fraction equals 1 - KEEP_PROB exactly).
      IMPL ["auto"]            "auto" (fused Triton kernel on CUDA, PyTorch elsewhere),
                               "torch" (always the pure-PyTorch reference).
      RESNET.ENABLED [False]   DropBlock inside ResNet blocks.
      RESNET.STAGES [["res4", "res5"]]   stages that get it (the paper's groups 3 and 4).
      RESNET.POSITIONS [["conv1", "conv2", "conv3", "shortcut"]]   after which conv+norm of
                               a block, and on the shortcut (as the official code). Basic
                               blocks (R18/R34) have no conv3.
      RESNET.STAGE_DROP_SCALES [[]]   drop rate of each stage in STAGES relative to
                               1 - KEEP_PROB; empty = 1.0 for all. The official code uses
                               [0.25, 1.0] for res4, res5.
      FPN.ENABLED [False]      DropBlock inside the FPN.
      FPN.POSITIONS [["lateral", "output"]]   after lateral 1x1 convs, after output 3x3
                               convs, and/or "top_block" (after P6 and P7 of RetinaNet).
      HEAD.ENABLED [False]     DropBlock in the RetinaNet head.
      HEAD.TOWERS [["cls", "bbox"]]   which subnet towers; after every conv(+norm)+ReLU.
      SEM_SEG_HEAD.ENABLED [False]   DropBlock in the semantic-segmentation heads.
      SEM_SEG_HEAD.POSITIONS [["aspp", "project", "decoder"]]   DeepLabV3+: after each ASPP
                               branch, after the ASPP projection, after each decoder conv;
                               the FCN head uses "decoder" for its convs.
      DROP_PATH_RATE [0.0]     stochastic depth on every ResNet residual branch (0 = off);
                               ramped by the same schedule.
      SCHEDULE.START_ITER [0]  iteration at which the ramp from keep_prob 1.0 starts.
      SCHEDULE.END_ITER [-1]   iteration at which the target is reached; -1 = SOLVER.MAX_ITER
                               (the paper ramps over the whole training).

    INPUT.CUTOUT (image augmentation, for the paper's Cutout comparison)
      ENABLED [False], SIZE [64] side of the square in pixels of the resized image,
      NUM_HOLES [1], PROB [1.0] probability of applying it to an image.
    """
    cfg.MODEL.DROPBLOCK = CN()
    db = cfg.MODEL.DROPBLOCK
    db.TYPE = "DropBlock"
    db.KEEP_PROB = 0.9
    db.BLOCK_SIZE = 7
    db.SHARED_MASK = False
    db.GAMMA = "paper"
    db.IMPL = "auto"

    db.RESNET = CN()
    db.RESNET.ENABLED = False
    db.RESNET.STAGES = ["res4", "res5"]
    db.RESNET.POSITIONS = ["conv1", "conv2", "conv3", "shortcut"]
    db.RESNET.STAGE_DROP_SCALES = []

    db.FPN = CN()
    db.FPN.ENABLED = False
    db.FPN.POSITIONS = ["lateral", "output"]

    db.HEAD = CN()
    db.HEAD.ENABLED = False
    db.HEAD.TOWERS = ["cls", "bbox"]

    db.SEM_SEG_HEAD = CN()
    db.SEM_SEG_HEAD.ENABLED = False
    db.SEM_SEG_HEAD.POSITIONS = ["aspp", "project", "decoder"]

    db.DROP_PATH_RATE = 0.0

    db.SCHEDULE = CN()
    db.SCHEDULE.START_ITER = 0
    db.SCHEDULE.END_ITER = -1

    cfg.INPUT.CUTOUT = CN()
    cfg.INPUT.CUTOUT.ENABLED = False
    cfg.INPUT.CUTOUT.SIZE = 64
    cfg.INPUT.CUTOUT.NUM_HOLES = 1
    cfg.INPUT.CUTOUT.PROB = 1.0
