"""Errors that name the dataset file they come from.

detectron2 reports a broken dataset file without its name: a truncated JPEG or PNG gives
PIL's "image file is truncated (N bytes not processed)", a broken COCO json gives json's
"Expecting value: line 1 column 1 (char 0)". With 100k files, the user cannot tell which.
`DatasetMapperNamingFiles` (per image, at load time) and `naming_dataset_files` (the
annotation files read when a loader is built) re-raise such errors as `DatasetFileError`
with the file in the message; the original exception stays chained as the cause.
"""
import contextlib
from typing import Any, Dict, Iterable, Iterator, List, Optional, Sequence

from detectron2.data import DatasetCatalog, DatasetMapper, MetadataCatalog
from PIL import Image

__all__ = ["DatasetFileError", "DatasetMapperNamingFiles", "naming_dataset_files", "ANNOTATION_FIELDS",
           "missing_annotation_field"]

# What a DatasetMapper flag loads for the model: (the annotation field, what the model learns from it).
ANNOTATION_FIELDS = {"use_instance_mask": ("segmentation", "instance masks"),
                     "use_keypoint": ("keypoints", "keypoints")}


def missing_annotation_field(item: Dict[str, Any], flags: Iterable[str]) -> Optional[str]:
    """The first of `flags` (keys of ANNOTATION_FIELDS) whose field some non-crowd annotation
    of the dataset dict `item` lacks; None when they all have it. detectron2 maps such an
    item without the field and fails inside the loss ("Cannot find field 'gt_masks' in the
    given Instances!"), naming neither the setting nor the dataset."""
    annotations = [a for a in item.get("annotations", ()) if not a.get("iscrowd", 0)]
    for flag in flags:
        if any(ANNOTATION_FIELDS[flag][0] not in a for a in annotations):
            return flag
    return None

# Keys of a detectron2 dataset dict that name a file the mapper reads, in reading order.
_ITEM_FILE_KEYS = ("file_name", "sem_seg_file_name")
# Metadata attributes through which detectron2 and this project name a dataset's files.
_METADATA_FILE_ATTRS = ("json_file", "dirname", "image_root", "sem_seg_root", "panoptic_json")


class DatasetFileError(RuntimeError):
    """A dataset file could not be read or parsed; the message names the file."""


def _unreadable_image(path: str) -> bool:
    try:
        with Image.open(path) as image:
            image.load()
    except Exception:  # noqa: BLE001 - any failure to decode means this is the bad file
        return True
    return False


class DatasetMapperNamingFiles(DatasetMapper):
    """detectron2's `DatasetMapper`, whose errors name the image or label file that failed.

    Same arguments and output as `DatasetMapper`. On an exception while mapping a dataset
    dict, the files it names (`file_name`, `sem_seg_file_name`) are decoded once more to
    find the broken one (only on this failure path), and a `DatasetFileError` naming it is
    raised from the original exception.
    """

    def __call__(self, dataset_dict: Dict[str, Any]) -> Dict[str, Any]:
        self._check_annotations_for_model(dataset_dict)
        try:
            return super().__call__(dataset_dict)
        except Exception as e:
            files = [dataset_dict[k] for k in _ITEM_FILE_KEYS if dataset_dict.get(k)]
            broken = [f for f in files if _unreadable_image(f)]
            if broken:
                where = f"cannot read {broken[0]}"
            else:
                where = "error while mapping the dataset item of " + ", ".join(files)
            raise DatasetFileError(f"{where}: {type(e).__name__}: {e}") from e

    # The config key that sets each flag of ANNOTATION_FIELDS.
    _FLAG_KEYS = {"use_instance_mask": "MODEL.MASK_ON", "use_keypoint": "MODEL.KEYPOINT_ON"}

    def check_training_items(self, items: Any, datasets: str) -> None:
        """Every training item (`items`: the dataset dicts of `datasets`, e.g.
        "DATASETS.TRAIN=('coco_2017_train',)"; anything but a list is left to __call__)
        checked as __call__ checks each: run once before the first step, so a Mask R-CNN on
        a box-only dataset is refused naming the datasets, not at the first item it maps."""
        if isinstance(items, list):
            for item in items:
                self._check_annotations_for_model(item, datasets)

    def _check_annotations_for_model(self, dataset_dict: Dict[str, Any], datasets: str = "") -> None:
        """ValueError naming the config key and the image (and `datasets`, its datasets,
        where known) when a training item's annotations lack what the model trains on
        (masks for MODEL.MASK_ON, keypoints for MODEL.KEYPOINT_ON; see
        `missing_annotation_field`)."""
        if not getattr(self, "is_train", False):
            return
        flag = missing_annotation_field(dataset_dict, [f for f in self._FLAG_KEYS if getattr(self, f, False)])
        if flag is not None:
            (field, what), key = ANNOTATION_FIELDS[flag], self._FLAG_KEYS[flag]
            raise ValueError(
                f"{key}=True, but the annotations of {dataset_dict.get('file_name', 'a dataset item')} "
                + (f"in {datasets} " if datasets else "")
                + f"have no {field!r} ({what}): the model trains on them. Give DATASETS.TRAIN a "
                f"dataset with {what}, or set {key} False")


def _dataset_files(name: str) -> List[str]:
    metadata = MetadataCatalog.get(name)
    return [str(getattr(metadata, a)) for a in _METADATA_FILE_ATTRS if hasattr(metadata, a)]


@contextlib.contextmanager
def naming_dataset_files(names: Sequence[str]) -> Iterator[None]:
    """Re-raise an error from loading the datasets `names` (e.g. while a detectron2 loader is
    built) as a `DatasetFileError` naming the dataset and its files (annotation json,
    image and label roots, from its metadata). With several datasets, each is loaded once
    more on this failure path to find the one that fails."""
    try:
        yield
    except DatasetFileError:
        raise
    except Exception as e:
        culprits = list(names)
        if len(culprits) > 1:
            failing = []
            for name in culprits:
                try:
                    DatasetCatalog.get(name)
                except Exception:  # noqa: BLE001 - looking for the dataset that fails
                    failing.append(name)
            culprits = failing or culprits
        described = "; ".join(
            f"{name!r} ({', '.join(_dataset_files(name)) or 'no file in its metadata'})"
            for name in culprits)
        raise DatasetFileError(
            f"cannot load dataset {described}: {type(e).__name__}: {e}") from e
