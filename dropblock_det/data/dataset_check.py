"""Say exactly which expected file or folder is missing for the datasets a config names.

Layouts are relative to the datasets root (``$DETECTRON2_DATASETS``, default ``./datasets``)
and follow detectron2's builtin registration (see ``datasets/README.md``). Names that are
not in the table below but are registered with detectron2 are checked through their
metadata (``json_file``, ``image_root``, ``sem_seg_root``, ``dirname``).
"""
from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Dict, Iterable, List, Optional

from .prepare_voc import AUG_LABEL_DIRNAME, AUG_SPLIT_DIRNAME
from .synthetic import DET_DIRNAME, MANIFEST_NAME, SEM_SEG_DIRNAME, default_datasets_root
from .voc_sem_seg import VOC_DIRNAME, VOC_SEM_SEG_SPLITS

# COCO 2017: image folder and annotation file of each builtin split.
_COCO_2017 = {
    "coco_2017_train": ("coco/train2017", "coco/annotations/instances_train2017.json"),
    "coco_2017_val": ("coco/val2017", "coco/annotations/instances_val2017.json"),
    "coco_2017_test": ("coco/test2017", "coco/annotations/image_info_test2017.json"),
    "coco_2017_test-dev": ("coco/test2017", "coco/annotations/image_info_test-dev2017.json"),
    "coco_2017_val_100": ("coco/val2017", "coco/annotations/instances_val2017_100.json"),
}
_VOC_DET = re.compile(r"^voc_(2007|2012)_(train|val|trainval|test)$")
# Semantic segmentation on VOC 2012 + SBD (registered by dropblock_det.data.voc_sem_seg):
# datasets/prepare_voc_sem_seg.py writes the index-PNG labels and split files.
_VOC_SEM_SEG = VOC_SEM_SEG_SPLITS


def expected_dataset_paths(name: str, root: Optional[os.PathLike] = None) -> List[Path]:
    """The files and folders dataset ``name`` needs, as paths under ``root``.

    Raises KeyError naming ``name`` when it is neither a known layout nor registered.
    """
    root = Path(root if root is not None else default_datasets_root())
    if name in _COCO_2017:
        return [root / p for p in _COCO_2017[name]]
    m = _VOC_DET.match(name)
    if m:
        year, split = m.groups()
        voc = root / f"VOC{year}"
        return [voc / "Annotations", voc / "JPEGImages",
                voc / "ImageSets" / "Main" / f"{split}.txt"]
    if name in _VOC_SEM_SEG:
        voc = root / VOC_DIRNAME
        return [voc / "JPEGImages", voc / AUG_LABEL_DIRNAME,
                voc / AUG_SPLIT_DIRNAME / f"{_VOC_SEM_SEG[name]}.txt"]
    if name.startswith("synthetic_det_"):
        split = name[len("synthetic_det_"):]
        det = root / DET_DIRNAME
        return [det / MANIFEST_NAME, det / split,
                det / "annotations" / f"instances_{split}.json"]
    if name.startswith("synthetic_sem_seg_"):
        split = name[len("synthetic_sem_seg_"):]
        seg = root / SEM_SEG_DIRNAME
        return [seg / MANIFEST_NAME, seg / "JPEGImages", seg / "SegmentationClass",
                seg / "ImageSets" / "Segmentation" / f"{split}.txt"]
    return _paths_from_metadata(name)


def _paths_from_metadata(name: str) -> List[Path]:
    from detectron2.data import DatasetCatalog, MetadataCatalog

    if name not in DatasetCatalog.list():
        raise KeyError(
            f"dataset {name!r} is not registered with detectron2 and has no known layout; "
            f"registered names include: {sorted(DatasetCatalog.list())[:20]} ...")
    meta = MetadataCatalog.get(name)
    paths = [Path(getattr(meta, key)) for key in ("json_file", "image_root", "sem_seg_root")
             if hasattr(meta, key)]
    if hasattr(meta, "dirname"):  # VOC-style registration
        paths.append(Path(meta.dirname))
    return paths


def missing_dataset_paths(dataset_names: Iterable[str],
                          root: Optional[os.PathLike] = None) -> Dict[str, List[Path]]:
    """{dataset name: [expected paths that do not exist]} for the names with something
    missing (an empty dict means everything is in place)."""
    missing = {}
    for name in dataset_names:
        absent = [p for p in expected_dataset_paths(name, root) if not p.exists()]
        if absent:
            missing[name] = absent
    return missing


def check_datasets(dataset_names: Iterable[str], root: Optional[os.PathLike] = None) -> None:
    """Raise FileNotFoundError listing every missing file/folder of ``dataset_names``."""
    missing = missing_dataset_paths(dataset_names, root)
    if missing:
        raise FileNotFoundError(format_missing(missing, root))


def format_missing(missing: Dict[str, List[Path]], root: Optional[os.PathLike] = None) -> str:
    """Human-readable report of :func:`missing_dataset_paths`'s result."""
    root = Path(root if root is not None else default_datasets_root())
    lines = [f"missing dataset files under {root} (DETECTRON2_DATASETS="
             f"{os.environ.get('DETECTRON2_DATASETS', '<unset>')}):"]
    for name, paths in missing.items():
        for p in paths:
            lines.append(f"  {name}: {p}")
    lines.append("See datasets/README.md for the expected layout and where each dataset "
                 "comes from (the synthetic sets: python datasets/make_synthetic.py).")
    return "\n".join(lines)
