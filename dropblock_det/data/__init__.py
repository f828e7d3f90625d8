"""Datasets and data augmentation of dropblock-det.

Importing this package registers the synthetic datasets (``synthetic_det_{train,val}``,
``synthetic_sem_seg_{train,val}``) under ``$DETECTRON2_DATASETS`` (default ``./datasets``).
"""
from .synthetic import (
    SYNTHETIC_DET_CLASSES,
    SYNTHETIC_SEM_SEG_CLASSES,
    ensure_synthetic_datasets,
    make_synthetic_detection,
    make_synthetic_sem_seg,
    register_synthetic_datasets,
)
from .dataset_check import check_datasets, missing_dataset_paths
from .voc_sem_seg import VOC_SEM_SEG_CLASSES, register_all_voc_sem_seg  # registers voc_2012_sem_seg_*

register_synthetic_datasets()
