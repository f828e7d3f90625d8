"""Say exactly which expected file or folder is missing for the datasets a config names.

Layouts are relative to the datasets root (``$DETECTRON2_DATASETS``, default ``./datasets``)
and follow detectron2's builtin registration (see ``datasets/README.md``). Names that are
not in the table below but are registered with detectron2 are checked through the
metadata keys that detectron2's own registrations name their files with (see
``_METADATA_PATH_KEYS``).
"""
from __future__ import annotations

import difflib
import os
import re
from pathlib import Path
from typing import Any, Dict, Iterable, List, Mapping, Optional

from .prepare_voc import AUG_LABEL_DIRNAME, AUG_SPLIT_DIRNAME
from .synthetic import (
    DET_DIRNAME,
    MANIFEST_NAME,
    SEM_SEG_DIRNAME,
    SYNTHETIC_DET_SPLITS,
    SYNTHETIC_SEM_SEG_SPLITS,
    default_datasets_root,
)
from .voc_sem_seg import VOC_DIRNAME, VOC_SEM_SEG_SPLITS

# COCO 2017: image folder and annotation file of each builtin split.
_COCO_2017 = {
    "coco_2017_train": ("coco/train2017", "coco/annotations/instances_train2017.json"),
    "coco_2017_val": ("coco/val2017", "coco/annotations/instances_val2017.json"),
    "coco_2017_test": ("coco/test2017", "coco/annotations/image_info_test2017.json"),
    "coco_2017_test-dev": ("coco/test2017", "coco/annotations/image_info_test-dev2017.json"),
    "coco_2017_val_100": ("coco/val2017", "coco/annotations/instances_val2017_100.json"),
}
_VOC_FOLDER = re.compile(r"^VOC\d{4}$")
_VOC_DET = re.compile(r"^voc_(2007|2012)_(train|val|trainval|test)$")
# Semantic segmentation on VOC 2012 + SBD (registered by dropblock_det.data.voc_sem_seg):
# datasets/prepare_voc_sem_seg.py writes the index-PNG labels and split files.
_VOC_SEM_SEG = VOC_SEM_SEG_SPLITS
# Metadata keys through which detectron2's builtin registrations name a dataset's files:
# COCO / LVIS (json_file, image_root), semantic segmentation (sem_seg_root), COCO panoptic
# (panoptic_json, panoptic_root), Cityscapes (image_dir, gt_dir), PASCAL VOC (dirname).
# A key left out is never checked: Cityscapes used to be "all present" with no file at all.
_METADATA_PATH_KEYS = ("json_file", "image_root", "sem_seg_root", "panoptic_json",
                       "panoptic_root", "image_dir", "gt_dir", "dirname")


def _registered_metadata(name: str) -> Optional[Any]:
    from detectron2.data import DatasetCatalog, MetadataCatalog

    return MetadataCatalog.get(name) if name in DatasetCatalog.list() else None


def expected_dataset_paths(name: str, root: Optional[os.PathLike] = None) -> List[Path]:
    """The files and folders dataset ``name`` needs, as paths under ``root``.

    Without ``root``, every registered set is checked where it is registered, i.e. where
    detectron2 will read it: v0.6 takes ``$DETECTRON2_DATASETS`` as given for its builtin
    COCO and VOC sets, a leading "~" unexpanded, where this project's default root expands
    it; this project's own sets may be registered under any root
    (``ensure_synthetic_datasets(root)``, ``register_all_voc_sem_seg(root)``).
    Raises KeyError naming ``name`` when it is not registered (known layout or not).
    """
    _require_registered(name)
    meta = _registered_metadata(name) if root is None else None
    root = Path(root if root is not None else default_datasets_root())
    if name in _COCO_2017:
        if hasattr(meta, "image_root") and hasattr(meta, "json_file"):
            return [Path(meta.image_root), Path(meta.json_file)]
        return [root / p for p in _COCO_2017[name]]
    m = _VOC_DET.match(name)
    if m:
        year, split = m.groups()
        voc = Path(meta.dirname) if hasattr(meta, "dirname") else root / f"VOC{year}"
        return [voc / "Annotations", voc / "JPEGImages",
                voc / "ImageSets" / "Main" / f"{split}.txt"]
    if name in _VOC_SEM_SEG:
        voc = _registered_folder(meta, root / VOC_DIRNAME)
        return [voc / "JPEGImages", voc / AUG_LABEL_DIRNAME,
                voc / AUG_SPLIT_DIRNAME / f"{_VOC_SEM_SEG[name]}.txt"]
    # The four registered splits only: a set of the user's named "synthetic_det_mine" has its own files.
    if name in SYNTHETIC_DET_SPLITS:
        split, annotations = SYNTHETIC_DET_SPLITS[name]
        det = _registered_folder(meta, root / DET_DIRNAME)
        return [det / MANIFEST_NAME, det / split, det / annotations]
    if name in SYNTHETIC_SEM_SEG_SPLITS:
        split = SYNTHETIC_SEM_SEG_SPLITS[name]
        seg = _registered_folder(meta, root / SEM_SEG_DIRNAME)
        return [seg / MANIFEST_NAME, seg / "JPEGImages", seg / "SegmentationClass",
                seg / "ImageSets" / "Segmentation" / f"{split}.txt"]
    paths = _paths_from_metadata(name)
    return paths if meta is not None else [_moved_under(path, root) for path in paths]


def _registered_folder(meta: Optional[Any], default: Path) -> Path:
    """The folder one of this project's sets was registered in: the parent of its
    image_root (<folder>/JPEGImages, or synthetic_det/<split>); `default` without one."""
    return Path(meta.image_root).parent if hasattr(meta, "image_root") else default


def _moved_under(path: Path, root: Path) -> Path:
    """A registered `path` under $DETECTRON2_DATASETS (as given, or expanded), as the same
    path under `root`; any other path as it is (registered elsewhere on purpose)."""
    given = os.environ.get("DETECTRON2_DATASETS", "datasets")
    for registered_root in (Path(given), Path(given).expanduser()):
        try:
            return root / path.relative_to(registered_root)
        except ValueError:
            continue
    return path


def _require_registered(name: str) -> None:
    """KeyError naming `name` and the closest registered names when detectron2 (or this
    project) has not registered it: a training refuses it, so its files' being in place
    says nothing (voc_2012_test has a VOC layout, but detectron2 registers no such set)."""
    from detectron2.data import DatasetCatalog

    registered = DatasetCatalog.list()
    if name not in registered:
        raise KeyError(f"dataset {name!r} is not registered with detectron2; {closest_registered_names(name)}")


def closest_registered_names(name: str, list_all: bool = False) -> str:
    """"did you mean a, b?" with the registered dataset names closest to `name` (a typo's
    meaning; the first names in alphabetical order, ade20k_..., cityscapes_..., say
    nothing); where none is close, that, and with `list_all` every registered name."""
    from detectron2.data import DatasetCatalog

    registered = sorted(DatasetCatalog.list())
    close = difflib.get_close_matches(name, registered, n=5, cutoff=0.6)
    if close and difflib.SequenceMatcher(None, name, close[0]).ratio() < 0.75:
        # No typo: an unregistered set of one's own, "mine_train", was told "did you mean
        # lvis_v1_train?" (0.61) in place of how to register it; typos score 0.8 and more.
        close = []
    if close:
        return f"did you mean {', '.join(close)}?"
    return (f"none of the {len(registered)} registered names is close"
            + (f": {', '.join(registered)}" if list_all else " (DatasetCatalog.list())"))


def unregistered_dataset_error(key: str, name: str) -> KeyError:
    """The refusal of `name`, given by the config key `key`, as no registered dataset: the
    closest registered names (a typo's meaning), or, where none is close, how a set of one's
    own is registered and every registered name."""
    close = closest_registered_names(name, list_all=True)
    if not close.startswith("did you mean"):
        close = ("a set of your own is registered before the tool runs (README: 'Your own dataset'); "
                 + close)
    return KeyError(f"{key} names {name!r}, which is not a registered dataset; {close}")


def _own_registration_keys(name: str) -> Dict[Path, str]:
    """{path: the metadata key that names it} for a set of the user's own (registered, of no
    layout this module knows, and outside $DETECTRON2_DATASETS as given or expanded, where
    detectron2's builtin sets are); {} for any other."""
    if (name in _COCO_2017 or _VOC_DET.match(name) or name in _VOC_SEM_SEG or name in SYNTHETIC_DET_SPLITS
            or name in SYNTHETIC_SEM_SEG_SPLITS or _registered_metadata(name) is None):
        return {}
    from detectron2.data import MetadataCatalog

    meta = MetadataCatalog.get(name)
    keys = {Path(getattr(meta, key)): key for key in _METADATA_PATH_KEYS if hasattr(meta, key)}
    given = os.environ.get("DETECTRON2_DATASETS", "datasets")
    roots = (Path(given), Path(given).expanduser())
    return {} if any(root in (path, *path.parents) for path in keys for root in roots) else keys


def _paths_from_metadata(name: str) -> List[Path]:
    from detectron2.data import MetadataCatalog

    meta = MetadataCatalog.get(name)
    return [Path(getattr(meta, key)) for key in _METADATA_PATH_KEYS if hasattr(meta, key)]


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


def check_datasets(dataset_names: Iterable[str], root: Optional[os.PathLike] = None,
                   keys: Optional[Mapping[str, str]] = None) -> None:
    """Raise FileNotFoundError listing every missing file/folder of ``dataset_names``; with
    ``keys`` (dataset name -> the config key that names it) each line names its key too."""
    missing = missing_dataset_paths(dataset_names, root)
    if missing:
        raise FileNotFoundError(format_missing(missing, root, keys))


def _voc_devkit_hints(paths: Iterable[Path]) -> List[str]:
    """One line per missing VOC<year> folder that is found one level down, in a VOCdevkit/
    folder beside it, where VOC's tars unpack: the listing alone says "missing" for data
    that is there."""
    hints = []
    for voc in dict.fromkeys(q for p in paths for q in (p, *p.parents) if _VOC_FOLDER.match(q.name)):
        devkit_voc = voc.parent / "VOCdevkit" / voc.name
        if not voc.exists() and devkit_voc.is_dir():
            hints.append(f"{devkit_voc} exists: move {voc.name} out of VOCdevkit/ to {voc} "
                         "(the layout datasets/README.md gives)")
    return hints


def format_missing(missing: Dict[str, List[Path]], root: Optional[os.PathLike] = None,
                   keys: Optional[Mapping[str, str]] = None) -> str:
    """Human-readable report of :func:`missing_dataset_paths`'s result."""
    root = Path(root if root is not None else default_datasets_root())
    # A set of one's own (register_coco_instances(name, {}, json_file, image_root) in one's
    # script) is read where its registration puts it: its paths are named by their metadata
    # key, and neither the datasets root nor datasets/README.md is the place to fix them.
    own = {name: _own_registration_keys(name) for name in missing}
    only_own = all(own[name] for name in missing)
    lines = ["missing dataset files (where their registrations put them):" if only_own else
             f"missing dataset files under {root} (DETECTRON2_DATASETS="
             f"{os.environ.get('DETECTRON2_DATASETS', '<unset>')}):"]
    for name, paths in missing.items():
        named = f"{name} ({keys[name]})" if keys and name in keys else name
        for p in paths:
            key = own[name].get(p)
            # A relative path (the README's "mine/images") is read from the folder the tool runs in.
            where = "" if p.is_absolute() else f", relative to the current folder {os.getcwd()}"
            lines.append(f"  {named}: {p}" + (f" (its registration's {key}{where})" if key else ""))
    if any(own.values()):
        lines.append("A set of your own is read where its "
                     "registration puts it (register_coco_instances(name, metadata, json_file, image_root)): correct "
                     "the path in the script that registers it (README: 'Your own dataset'), or put the file there.")
    if only_own:
        return "\n".join(lines)
    lines += _voc_devkit_hints(p for paths in missing.values() for p in paths)
    split_dir = Path(AUG_SPLIT_DIRNAME).parts  # ("ImageSets", "SegmentationAug")
    unprepared = dict.fromkeys(p.parent if p.name == AUG_LABEL_DIRNAME else p.parents[len(split_dir)]
                               for paths in missing.values() for p in paths
                               if p.name == AUG_LABEL_DIRNAME or p.parent.parts[-len(split_dir):] == split_dir)
    for voc in unprepared:
        # Not in VOC's or SBD's downloads: this project's preparation step writes them.
        lines.append(f"{voc / AUG_LABEL_DIRNAME} and {voc / AUG_SPLIT_DIRNAME} are written by "
                     f"python datasets/prepare_voc_sem_seg.py --voc {voc} --sbd <SBD's benchmark_RELEASE folder>")
    if any(p.parts and p.parts[0].startswith("~") for paths in missing.values() for p in paths):
        # Registered by detectron2 under the unexpanded variable (see expected_dataset_paths).
        lines.append("detectron2 does not expand '~' in DETECTRON2_DATASETS: set it to an "
                     "absolute path (export DETECTRON2_DATASETS=$HOME/...).")
    lines.append("See datasets/README.md for the expected layout and where each dataset "
                 "comes from (the synthetic sets: python datasets/make_synthetic.py).")
    return "\n".join(lines)
