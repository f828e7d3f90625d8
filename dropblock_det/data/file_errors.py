"""Errors that name the dataset file they come from.

detectron2 reports a broken dataset file without its name: a truncated JPEG or PNG gives
PIL's "image file is truncated (N bytes not processed)", a broken COCO json gives json's
"Expecting value: line 1 column 1 (char 0)". With 100k files, the user cannot tell which.
`DatasetMapperNamingFiles` (per image, at load time) and `naming_dataset_files` (the
annotation files read when a loader is built) re-raise such errors as `DatasetFileError`
with the file in the message; the original exception stays chained as the cause.
"""
import contextlib
import logging
import os
import time
import xml.etree.ElementTree as ET
from typing import Any, Dict, Iterable, Iterator, List, Optional, Sequence, Tuple

import detectron2.utils.comm as comm
import numpy as np
from detectron2.data import DatasetCatalog, DatasetMapper, MetadataCatalog
from PIL import Image

__all__ = ["DatasetFileError", "DatasetMapperNamingFiles", "naming_dataset_files", "ANNOTATION_FIELDS",
           "ANNOTATION_FLAG_KEYS",
           "missing_annotation_field", "check_evaluation_files", "check_training_files", "sem_seg_label_problem",
           "unparsable_voc_annotation"]

logger = logging.getLogger(__name__)

# What a DatasetMapper flag loads for the model: (the annotation field, what the model learns from it).
ANNOTATION_FIELDS = {"use_instance_mask": ("segmentation", "instance masks"),
                     "use_keypoint": ("keypoints", "keypoints")}
# The yacs key that sets each of those flags (detectron2's DatasetMapper.from_config, whatever the model).
ANNOTATION_FLAG_KEYS = {"use_instance_mask": "MODEL.MASK_ON", "use_keypoint": "MODEL.KEYPOINT_ON"}


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


def _missing_module_error(error: ModuleNotFoundError, files: List[str]) -> ModuleNotFoundError:
    """A module the mapping imports is missing: no fault of the item's files, which the
    DatasetFileError it was raised as blamed. detectron2 crops polygon masks (INPUT.CROP with
    MODEL.MASK_ON, new_baselines' FixedSizeCrop) with shapely, its "all" extra, which a
    detectron2 built from source does not install: the first step failed naming an image."""
    top = error.name.split(".")[0]
    hint = (f": pip install {top} (detectron2 crops polygon masks with it: INPUT.CROP, FixedSizeCrop)"
            if top == "shapely" else "")
    return ModuleNotFoundError(f"mapping the dataset item of {', '.join(files)} imports the module {top!r}, "
                               f"which is not installed (no fault of the item){hint}", name=error.name)


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

    # (number of classes, ignore value, the keys that set them) a training label must fit;
    # None: not checked (expect_sem_seg_labels sets it).
    _sem_seg_labels: Optional[Tuple[int, int, str]] = None

    def expect_sem_seg_labels(self, num_classes: int, ignore_value: int, keys: str) -> None:
        """Check each segmentation label this mapper loads: values among range(num_classes)
        and ignore_value (the model's, named by `keys`), else a DatasetFileError naming the
        file. The loss failed on them at the first step, naming neither ("IndexError: Target
        220 is out of bounds"; on CUDA a device-side assert): a palette or colour PNG given
        for one of class indices."""
        self._sem_seg_labels = (int(num_classes), int(ignore_value), keys)

    def __call__(self, dataset_dict: Dict[str, Any]) -> Dict[str, Any]:
        self._check_annotations_for_model(dataset_dict)
        try:
            mapped = super().__call__(dataset_dict)
        except Exception as e:
            files = [dataset_dict[k] for k in _ITEM_FILE_KEYS if dataset_dict.get(k)]
            if isinstance(e, ModuleNotFoundError) and e.name:
                raise _missing_module_error(e, files) from e
            broken = [f for f in files if _unreadable_image(f)]
            if broken:
                where = f"cannot read {broken[0]}"
            else:
                # A resize asserts the label's size bare ("AssertionError: "), naming neither file.
                mismatch = _label_size_mismatch(dataset_dict)
                if mismatch:
                    raise DatasetFileError(mismatch) from e
                where = "error while mapping the dataset item of " + ", ".join(files)
            raise DatasetFileError(f"{where}: {type(e).__name__}: {e}") from e
        label = mapped.get("sem_seg")
        image = mapped.get("image")
        if label is not None and image is not None and tuple(label.shape[-2:]) != tuple(image.shape[-2:]):
            # No resize to assert it (a flip alone): the label would reach the loss misaligned.
            raise DatasetFileError(_label_size_mismatch(dataset_dict)
                                   or f"the label {dataset_dict.get('sem_seg_file_name')} does not have its image's size")
        if label is not None and self._sem_seg_labels is not None:
            num_classes, ignore_value, keys = self._sem_seg_labels
            values = _stray_label_values(np.asarray(label), num_classes, ignore_value)
            if values:
                raise DatasetFileError(
                    f"the label {dataset_dict.get('sem_seg_file_name')} has values {values} that are neither a class "
                    f"0..{num_classes - 1} nor the ignore value {ignore_value} ({keys}): the loss fails on them "
                    "(a palette or colour PNG given for one of class indices?)")
        return mapped


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
        flag = missing_annotation_field(dataset_dict, [f for f in ANNOTATION_FLAG_KEYS if getattr(self, f, False)])
        if flag is not None:
            (field, what), key = ANNOTATION_FIELDS[flag], ANNOTATION_FLAG_KEYS[flag]
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
        # A PASCAL VOC set names its folder only: the annotation that fails, among thousands.
        broken = next(filter(None, map(_first_unloadable_voc_annotation, culprits)), None)
        cause = f"{type(e).__name__}: {e}"
        raise DatasetFileError(f"cannot load dataset {described}: "
                               + (f"{broken} (the loader's {cause})" if broken else cause)) from e


def _label_size_mismatch(dataset_dict: Dict[str, Any]) -> Optional[str]:
    """"the label ... is WxH, but its image ... is WxH" when the segmentation label of the
    dataset dict has another size than its image, both as detectron2's mapper reads them
    (read_image, EXIF orientation applied); None when they match, or either cannot be read."""
    from detectron2.data.detection_utils import read_image

    image_path, label_path = dataset_dict.get("file_name"), dataset_dict.get("sem_seg_file_name")
    if not image_path or not label_path:
        return None
    try:
        (ih, iw), (lh, lw) = read_image(image_path).shape[:2], read_image(label_path).shape[:2]
    except Exception:  # noqa: BLE001 - an unreadable file is reported by the caller
        return None
    if (ih, iw) == (lh, lw):
        return None
    return (f"the label {label_path} is {lw}x{lh}, but its image {image_path} is {iw}x{ih} "
            "(width x height): a segmentation label must have its image's size")


def _voc_annotation_paths(metadata: Any) -> List[str]:
    """The annotation files of a PASCAL VOC set as detectron2 registers it (metadata dirname
    and split): Annotations/<id>.xml of each id in ImageSets/Main/<split>.txt, in order."""
    with open(os.path.join(metadata.dirname, "ImageSets", "Main", f"{metadata.split}.txt")) as f:
        ids = f.read().split()
    return [os.path.join(metadata.dirname, "Annotations", f"{i}.xml") for i in ids]


def _first_unloadable_voc_annotation(name: str) -> Optional[str]:
    """"<file>: <why>" for the first annotation of PASCAL VOC set `name` that detectron2's
    load_voc_instances cannot read (missing, not XML, no size, a class the set does not
    have, a box without its 4 numbers); None for another kind of set or when each reads."""
    metadata = MetadataCatalog.get(name)
    if not all(hasattr(metadata, key) for key in ("dirname", "split", "thing_classes")):
        return None
    try:
        paths = _voc_annotation_paths(metadata)
    except OSError:
        return None  # the split file: its own error names it
    for path in paths:
        try:
            tree = ET.parse(path)
            int(tree.findall("./size/height")[0].text)
            int(tree.findall("./size/width")[0].text)
            for obj in tree.findall("object"):
                cls = obj.find("name").text
                if cls not in metadata.thing_classes:
                    return f"{path}: an object of class {cls!r}, which is not one of the set's thing_classes"
                box = obj.find("bndbox")
                [float(box.find(x).text) for x in ("xmin", "ymin", "xmax", "ymax")]
        except Exception as e:  # noqa: BLE001 - any failure to read this file is the answer
            return f"{path}: {type(e).__name__}: {e}"
    return None


def _stray_label_values(label: np.ndarray, num_classes: int, ignore: Optional[int]) -> List[int]:
    """The smallest (up to 5) values of the segmentation `label` that are neither a class in
    range(num_classes) nor `ignore` (None: no ignore value); empty when every value is one.
    Training (the mapper) and evaluation (check_evaluation_files) labels alike."""
    bad = (label < 0) | (label >= num_classes)
    if ignore is not None:
        bad &= label != ignore
    return [int(v) for v in np.unique(label[bad])[:5]]


def sem_seg_label_problem(path: str, num_classes: int, ignore: Optional[int],
                          size: Optional[Tuple[int, int]] = None) -> str:
    """What makes the segmentation label at `path` one detectron2's SemSegEvaluator cannot
    score ('' when nothing): not one channel, not `size` (height, width; None: not
    checked), values neither a class in range(num_classes) nor `ignore`. Raises PIL's
    OSError / SyntaxError for a file it cannot decode."""
    with Image.open(path) as image:
        label = np.asarray(image)
    if label.ndim != 2:
        return f"a {image.mode} image of shape {label.shape}, not one channel of class indices"
    if size is not None and label.shape != tuple(size):
        return f"{label.shape[1]}x{label.shape[0]}, but its image is {size[1]}x{size[0]}"
    values = _stray_label_values(label, num_classes, ignore)
    if values:
        return (f"values {values} that are neither a class 0..{num_classes - 1} (its {num_classes} "
                f"stuff_classes) nor its ignore_label {ignore} (a palette or colour PNG given for "
                "one of class indices?)")
    return ""


def _check_sem_seg_labels(name: str, items: List[Dict[str, Any]], key: str) -> None:
    """The labels of `name` as detectron2's SemSegEvaluator reads them (np.array of the
    PNG): one for every image, one channel, the image's size, and values among range(len(stuff_classes)) and
    ignore_label; else its confusion matrix failed after the whole training ("cannot
    reshape array of size 661 into shape (22,22)") or its shapes did not match."""
    metadata = MetadataCatalog.get(name)
    num_classes, ignore = len(metadata.stuff_classes), getattr(metadata, "ignore_label", None)
    for item in items:
        path = item.get("sem_seg_file_name")
        if not path:
            # SemSegEvaluator maps every image to its label when it is built, after the
            # training: "KeyError: 'sem_seg_file_name'".
            raise DatasetFileError(f"{key} names {name!r}, a 'sem_seg' dataset whose image {item.get('file_name')} "
                                   "has no sem_seg_file_name (its label): its evaluator reads one for every image, "
                                   "and would fail on it after the training")
        try:
            problem = sem_seg_label_problem(path, num_classes, ignore,
                                            (item["height"], item["width"]) if "height" in item else None)
        except (OSError, SyntaxError) as e:  # PIL: not an image, truncated ("image file is truncated")
            raise DatasetFileError(f"{key} names {name!r}, whose label {path} cannot be read ({type(e).__name__}: "
                                   f"{e}); its evaluator would fail on it after the training") from e
        if problem:
            raise DatasetFileError(f"{key} names {name!r}, whose label {path} is {problem}; "
                                   "its evaluator would fail on it after the training")


def unparsable_voc_annotation(name: str) -> Optional[Tuple[str, Exception]]:
    """(path, error) of the first annotation of PASCAL VOC set `name` that detectron2's
    PascalVOCDetectionEvaluator cannot read (its parse_rec: name, pose, truncated, difficult
    and an integer bndbox per object), which is stricter than its loader; None when each
    reads, or `name` is no VOC set."""
    from detectron2.evaluation.pascal_voc_evaluation import parse_rec

    # detectron2 caches parse_rec by file name (lru_cache): the file as it is now is read.
    parse_rec = getattr(parse_rec, "__wrapped__", parse_rec)
    metadata = MetadataCatalog.get(name)
    if not all(hasattr(metadata, k) for k in ("dirname", "split")):
        return None
    try:
        paths = _voc_annotation_paths(metadata)
    except OSError:
        return None  # the split file: the loader's error names it
    for path in paths:
        try:
            parse_rec(path)
        except Exception as e:  # noqa: BLE001 - any failure to read it fails the evaluation
            return path, e
    return None


VOC_EVALUATION_FIELDS = "it reads name, pose, truncated, difficult and an integer bndbox of each object"


def _check_voc_evaluation_annotations(name: str, key: str) -> None:
    """DatasetFileError naming `key`, `name` and the file for an annotation
    :func:`unparsable_voc_annotation` finds: an XML without <pose> trained fine and failed
    the evaluation with "'NoneType' object has no attribute 'text'", naming no file."""
    unparsable = unparsable_voc_annotation(name)
    if unparsable:
        path, e = unparsable
        raise DatasetFileError(
            f"{key} names {name!r}, whose annotation {path} detectron2's PASCAL VOC evaluator cannot "
            f"read ({type(e).__name__}: {e}; {VOC_EVALUATION_FIELDS})") from e


def _image_size_mismatch(item: Dict[str, Any]) -> Optional[str]:
    """"<file> is WxH, but ..." when the dataset dict `item` gives its image another width or
    height than the file's (as detectron2's read_image sees it: EXIF orientation applied),
    which detectron2's mapper refuses (check_image_size); None when they match or the dict
    gives neither. Reads the image's header only."""
    if "width" not in item and "height" not in item:
        return None
    path = item["file_name"]
    try:
        with Image.open(path) as image:
            width, height = image.size
            if image.getexif().get(0x0112) in (5, 6, 7, 8):  # a quarter turn: read_image swaps the sides
                width, height = height, width
    except (OSError, SyntaxError):
        return None  # undecodable: named when it is read (the mapper's error names the file)
    if (width, height) == (item.get("width"), item.get("height")):
        return None
    return (f"{path} is {width}x{height}, but the dataset gives it {item.get('width')}x{item.get('height')} "
            "(width x height, from its annotation)")


def _item_file_problem(item: Dict[str, Any]) -> Optional[Tuple[str, str]]:
    """("whose <file key> <path> does not exist" or "whose image <path> is WxH, but ...", the
    error detectron2's mapper fails on it with) for a dataset dict `item` it cannot map; None
    for one it reads."""
    for file_key in _ITEM_FILE_KEYS:
        path = item.get(file_key)
        if path and not os.path.isfile(path):
            return f"whose {file_key} {path} does not exist", "FileNotFoundError"
    mismatch = _image_size_mismatch(item)
    return (f"whose image {mismatch}", "SizeMismatchError") if mismatch else None


def check_training_files(items: Any, datasets: str) -> None:
    """Every training item (`items`: the dataset dicts of `datasets`, e.g.
    "DATASETS.TRAIN=('mine_train',)"; anything but a list is left to the mapper): its image
    and label files there, the image of the size the dataset gives it. Run when the loader is
    built, before the first step: the mapper failed on such an item only when the sampler
    reached it, anywhere in the first epoch (hours into a run on a large set). A stat and a
    header read per image (~60 us warm: ~7 s for COCO's 118k), in the main process only:
    every process of a launch loads the same items, and N processes reading each header
    would multiply that on a shared disk; the launch ends the others when it refuses."""
    if not isinstance(items, list) or not comm.is_main_process():
        return
    start = time.perf_counter()
    for item in items:
        problem = _item_file_problem(item)
        if problem:
            raise DatasetFileError(f"{datasets} lists an item {problem[0]}: the training would fail on it when its "
                                   f"sampler reached it (detectron2's {problem[1]})")
    logger.info(f"{datasets}: the files of the {len(items)} training items are there "
                f"({time.perf_counter() - start:.1f} s)")


def check_evaluation_files(names: Sequence[str], key: str = "DATASETS.TEST") -> None:
    """Before a training, what its evaluations will read of each dataset in `names`: detectron2
    loads a test set only when it evaluates, after the whole training (or TEST.EVAL_PERIOD
    iterations), where a missing image or a label the evaluator cannot read ended the run.
    Each set's dicts are loaded (errors naming its files, :func:`naming_dataset_files`), every
    image and label file they name must exist (and there must be one), a "sem_seg" set's labels must be what its
    SemSegEvaluator can score, a "pascal_voc" set's annotations what its evaluator parses.
    DatasetFileError naming `key`, the dataset and the file."""
    start, count = time.perf_counter(), 0
    for name in names:
        with naming_dataset_files([name]):
            items = DatasetCatalog.get(name)
        if not isinstance(items, list):
            continue
        if not items:
            # detectron2's test loader asserts "Dataset '...' is empty!", after the training.
            files = ", ".join(_dataset_files(name)) or "no file in its metadata"
            raise DatasetFileError(f"{key} names {name!r}, which lists no images ({files}): its evaluation "
                                   "would fail on it after the training")
        count += len(items)
        for item in items:
            problem = _item_file_problem(item)
            if problem:
                raise DatasetFileError(f"{key} names {name!r}, {problem[0]}: its evaluation would fail on it after "
                                       "the training" + (" (detectron2's SizeMismatchError)"
                                                         if problem[1] == "SizeMismatchError" else ""))
        evaluator_type = getattr(MetadataCatalog.get(name), "evaluator_type", None)
        if evaluator_type == "sem_seg" and hasattr(MetadataCatalog.get(name), "stuff_classes"):
            _check_sem_seg_labels(name, items, key)
        elif evaluator_type == "pascal_voc":
            _check_voc_evaluation_annotations(name, key)
    if names:
        logger.info(f"{key}: the {count} items of {', '.join(names)} are there for the evaluation "
                    f"({time.perf_counter() - start:.1f} s)")
