"""PASCAL VOC 2012 semantic segmentation loaders and evaluator, as the yacs configs'
Base-VOC-SemSeg.yaml: train_aug (prepared by datasets/prepare_voc_sem_seg.py), short side
384..768, 384x384 crops, flips; evaluation on val at the images' own size (mIoU)."""
from detectron2.config import LazyCall as L
from detectron2.data import build_detection_test_loader, build_detection_train_loader, get_detection_dataset_dicts
from detectron2.data import transforms as T
from omegaconf import OmegaConf

from dropblock_det.data.file_errors import DatasetMapperNamingFiles
from dropblock_det.engine.trainer import dataset_evaluator

dataloader = OmegaConf.create()

dataloader.train = L(build_detection_train_loader)(
    dataset=L(get_detection_dataset_dicts)(names="voc_2012_sem_seg_train_aug"),
    mapper=L(DatasetMapperNamingFiles)(
        is_train=True,
        augmentations=[
            # Short side >= the crop side keeps every crop full-size.
            L(T.ResizeShortestEdge)(
                short_edge_length=(384, 448, 512, 576, 640, 704, 768), max_size=2048, sample_style="choice"
            ),
            L(T.RandomCrop_CategoryAreaConstraint)(
                crop_type="absolute", crop_size=(384, 384), single_category_max_area=1.0, ignored_category=255
            ),
            L(T.RandomFlip)(horizontal=True),
        ],
        image_format="RGB",
    ),
    total_batch_size=16,
    num_workers=4,
)

dataloader.test = L(build_detection_test_loader)(
    dataset=L(get_detection_dataset_dicts)(names="voc_2012_sem_seg_val", filter_empty=False),
    mapper=L(DatasetMapperNamingFiles)(
        is_train=False,
        # 0: evaluated at its own size (DropBlockASPP pools globally where the kernel does not fit)
        augmentations=[L(T.ResizeShortestEdge)(short_edge_length=0, max_size=2048, sample_style="choice")],
        image_format="${...train.mapper.image_format}",
    ),
    num_workers=4,
)

dataloader.evaluator = L(dataset_evaluator)(
    dataset_name="${..test.dataset.names}",
    output_dir="${train.output_dir}/inference",
)
