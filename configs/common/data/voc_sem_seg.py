"""PASCAL VOC 2012 semantic segmentation loaders and evaluator, as the yacs configs'
Base-VOC-SemSeg.yaml: train_aug (prepared by datasets/prepare_voc_sem_seg.py), short side
384..768, 384x384 crops, flips; evaluation on val at the images' own size (mIoU). The
detection loaders (coco_detection.py) with other sets, augmentations and RGB input: the
evaluator follows the test set, dataset_evaluator picks detectron2's SemSegEvaluator."""
from detectron2.config import LazyCall as L
from detectron2.data import transforms as T

from .coco_detection import dataloader

dataloader.train.dataset.names = "voc_2012_sem_seg_train_aug"
dataloader.train.mapper.augmentations = [
    # Short side >= the crop side keeps every crop full-size.
    L(T.ResizeShortestEdge)(short_edge_length=(384, 448, 512, 576, 640, 704, 768), max_size=2048, sample_style="choice"),
    L(T.RandomCrop_CategoryAreaConstraint)(
        crop_type="absolute", crop_size=(384, 384), single_category_max_area=1.0, ignored_category=255
    ),
    L(T.RandomFlip)(horizontal=True),
]
dataloader.train.mapper.image_format = "RGB"  # the test mapper follows it

dataloader.test.dataset.names = "voc_2012_sem_seg_val"
# 0: evaluated at its own size (DropBlockASPP pools globally where the kernel does not fit)
dataloader.test.mapper.augmentations = [L(T.ResizeShortestEdge)(short_edge_length=0, max_size=2048, sample_style="choice")]
