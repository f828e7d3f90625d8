"""PASCAL VOC 2012 semantic segmentation (with SBD's extra labels) for detectron2.

Registers, when `dropblock_det` is imported (only paths are recorded; the files may come
later):

    voc_2012_sem_seg_train_aug   10,582 images: VOC 2012 train + SBD train/val - VOC 2012 val
    voc_2012_sem_seg_val          1,449 images: VOC 2012 val

under `$DETECTRON2_DATASETS` (default `./datasets`), in this layout::

    VOC2012/
      JPEGImages/<id>.jpg
      SegmentationClassAug/<id>.png          single-channel index PNGs, 255 = ignore
      ImageSets/SegmentationAug/train_aug.txt, val.txt

The last two are written by `datasets/prepare_voc_sem_seg.py` (logic in
:mod:`dropblock_det.data.prepare_voc`) from the VOC and SBD downloads. Metadata: the 21
class names (`stuff_classes`, background first), VOC's palette colours (`stuff_colors`),
`ignore_label` 255 and `evaluator_type` "sem_seg" (detectron2's `SemSegEvaluator`, mIoU).
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

from PIL import Image

from .prepare_voc import AUG_LABEL_DIRNAME, AUG_SPLIT_DIRNAME, VOC_IGNORE_LABEL, read_split_file

__all__ = [
    "VOC_SEM_SEG_CLASSES",
    "VOC_SEM_SEG_SPLITS",
    "voc_palette",
    "load_voc_sem_seg",
    "register_voc_sem_seg",
    "register_all_voc_sem_seg",
]

VOC_SEM_SEG_CLASSES: Tuple[str, ...] = (
    "background", "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat",
    "chair", "cow", "diningtable", "dog", "horse", "motorbike", "person", "pottedplant",
    "sheep", "sofa", "train", "tvmonitor",
)  # fmt: skip

# registered name -> split file stem under VOC2012/ImageSets/SegmentationAug/
VOC_SEM_SEG_SPLITS: Dict[str, str] = {
    "voc_2012_sem_seg_train_aug": "train_aug",
    "voc_2012_sem_seg_val": "val",
}
VOC_DIRNAME = "VOC2012"


def voc_palette(num_classes: int = len(VOC_SEM_SEG_CLASSES)) -> List[Tuple[int, int, int]]:
    """VOC's label colours: class k's RGB spreads the bits of k over the channels' high bits."""
    colours = []
    for k in range(num_classes):
        r = g = b = 0
        c = k
        for bit in range(7, -1, -1):
            r |= ((c >> 0) & 1) << bit
            g |= ((c >> 1) & 1) << bit
            b |= ((c >> 2) & 1) << bit
            c >>= 3
        colours.append((r, g, b))
    return colours


def _default_root() -> Path:
    return Path(os.environ.get("DETECTRON2_DATASETS", "datasets")).expanduser()


def load_voc_sem_seg(voc_dir: os.PathLike, split: str) -> List[Dict[str, Any]]:
    """detectron2 dataset dicts of one split of the prepared VOC2012 folder.

    Each dict has file_name, sem_seg_file_name, height, width (read from the JPEG header:
    `SemanticSegmentor` resizes predictions to them, and `SemSegEvaluator` compares at that
    size) and image_id.
    """
    voc_dir = Path(voc_dir)
    split_file = voc_dir / AUG_SPLIT_DIRNAME / f"{split}.txt"
    if not split_file.is_file():
        raise FileNotFoundError(
            f"{split_file} does not exist: run `python datasets/prepare_voc_sem_seg.py --voc "
            "VOCdevkit/VOC2012 --sbd benchmark_RELEASE` and point DETECTRON2_DATASETS at the "
            f"folder holding {VOC_DIRNAME}/"
        )
    image_dir = voc_dir / "JPEGImages"
    label_dir = voc_dir / AUG_LABEL_DIRNAME
    dicts = []
    try:
        # One id per line: a "/JPEGImages/x.jpg /SegmentationClassAug/x.png" list (another
        # project's format) was read token by token, as images named "/JPEGImages/x.jpg".
        image_ids = read_split_file(split_file)
    except ValueError as e:
        raise ValueError(f"{e} (the split files of {AUG_SPLIT_DIRNAME}/ are written by "
                         "datasets/prepare_voc_sem_seg.py: one image id per line, e.g. 2007_000033)") from None
    for image_id in image_ids:
        file_name = image_dir / f"{image_id}.jpg"
        label_name = label_dir / f"{image_id}.png"
        if not label_name.is_file():
            raise FileNotFoundError(
                f"label of {image_id!r} listed in {split_file} is missing: {label_name}"
            )
        try:
            with Image.open(file_name) as img:
                width, height = img.size
        except FileNotFoundError:
            raise FileNotFoundError(
                f"image of {image_id!r} listed in {split_file} is missing: {file_name}"
            ) from None
        except (OSError, SyntaxError) as e:  # PIL: a truncated header says "Truncated File Read", naming no file
            raise ValueError(
                f"image of {image_id!r} listed in {split_file} cannot be read: {file_name} ({type(e).__name__}: {e})"
            ) from None
        dicts.append(
            {
                "file_name": str(file_name),
                "sem_seg_file_name": str(label_name),
                "height": height,
                "width": width,
                "image_id": image_id,
            }
        )
    return dicts


def register_voc_sem_seg(name: str, voc_dir: os.PathLike, split: str) -> None:
    """Register one split of a prepared VOC2012 folder under `name` (replacing any previous
    registration of that name). Loading is lazy: `voc_dir` need not exist yet."""
    from detectron2.data import DatasetCatalog, MetadataCatalog

    voc_dir = Path(voc_dir)
    if name in DatasetCatalog.list():
        DatasetCatalog.remove(name)
        MetadataCatalog.remove(name)
    DatasetCatalog.register(name, lambda d=voc_dir, s=split: load_voc_sem_seg(d, s))
    MetadataCatalog.get(name).set(
        image_root=str(voc_dir / "JPEGImages"),
        sem_seg_root=str(voc_dir / AUG_LABEL_DIRNAME),
        stuff_classes=list(VOC_SEM_SEG_CLASSES),
        stuff_colors=[list(c) for c in voc_palette()],
        ignore_label=VOC_IGNORE_LABEL,
        evaluator_type="sem_seg",
    )


def register_all_voc_sem_seg(root: Optional[os.PathLike] = None) -> None:
    """Register `voc_2012_sem_seg_train_aug` and `voc_2012_sem_seg_val` under `root`
    (default `$DETECTRON2_DATASETS` or `./datasets`), i.e. in `<root>/VOC2012`."""
    voc_dir = Path(root if root is not None else _default_root()) / VOC_DIRNAME
    for name, split in VOC_SEM_SEG_SPLITS.items():
        register_voc_sem_seg(name, voc_dir, split)


register_all_voc_sem_seg()
