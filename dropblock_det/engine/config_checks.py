"""Reading a yacs config and checking it before a run: every check of ``check_config_before_run``
(MODEL.DROPBLOCK, the model built on the meta device, the datasets and their classes, the
evaluators (``evaluation.check_evaluator_types``), the devices, the optimizer and LR schedule,
the INPUT and TEST.AUG values, the weights (``checkpoint.check_weights_path``)) and of a
``--resume`` against the checkpoint it continues. Each error names its key
and comes before data loading or anything is written to OUTPUT_DIR.
"""
from __future__ import annotations

import difflib
import functools
import math
import os
import re
import traceback
import warnings
from pathlib import Path
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple

import detectron2.utils.comm as comm
import torch
import yaml
from detectron2.config import CfgNode, get_cfg
from detectron2.data import DatasetCatalog
from omegaconf import ListConfig, OmegaConf

from .. import data as _data  # noqa: F401  (registers the datasets)
from .. import modeling as _modeling  # noqa: F401  (registers backbones, meta-archs, heads)
from .. import solver
from ..config import (add_dropblock_config, check_channels, check_impl_device, check_norm, flatten_config,
                      is_positive_int, locations_on, validate_dropblock_config)
from ..data.coco_json import coco_category_names, coco_json_has_key
from ..data.file_errors import ANNOTATION_FIELDS, ANNOTATION_FLAG_KEYS, check_evaluation_files
from ..layers.base import is_integer, is_real_number
from .checkpoint import check_checkpoint_fits, check_resume_grad_scaler, check_resume_optimizer, check_weights_path
from .evaluation import check_evaluator_types, check_training_sets


__all__ = [
    "build_on_meta_device",
    "YACS_TO_LAZY_KEYS",
    "yacs_keys_for_lazy_key",
    "check_anchor_aspect_ratios",
    "check_anchor_offset",
    "check_anchor_sizes",
    "check_box_loss_type",
    "check_box_weights",
    "check_class_counts",
    "check_json_training_annotations",
    "check_config_before_run",
    "check_crop",
    "check_dataset_classes",
    "check_dataset_names",
    "check_ddp_device",
    "check_detections_kept",
    "check_dropblock_placed",
    "check_focal_loss_alpha",
    "check_focal_loss_gamma",
    "check_loss_weight",
    "check_lr_scheduler",
    "check_matcher_values",
    "check_model_config",
    "check_fpn_top_block",
    "check_model_values",
    "check_nms_threshold",
    "check_optimizer",
    "check_pooler_resolution",
    "check_pooler_type",
    "check_positive_fraction",
    "check_proposal_count",
    "check_proposal_files",
    "check_rcnn_features",
    "check_registered_names",
    "check_resume_checkpoint",
    "check_sample_count",
    "check_scaled_to_world_size",
    "check_score_threshold",
    "check_stock_retinanet_norm",
    "check_test_inputs",
    "check_test_time_augmentation",
    "check_train_inputs",
    "check_training_processes_device",
    "checked_device",
    "close_config_keys",
    "error_description",
    "image_format_error",
    "is_meta_device_limit",
    "load_config",
    "meta_model",
    "missing_config_file",
    "pixel_normalization_error",
    "resize_error",
    "train_samplers",
]


# ----------------------------------------------------------------------------- config
def missing_config_file(config_file: str) -> str:
    """How a config file path that is not a file fails: "does not exist" (with the closest
    names of the files in its folder: `..._54k.yml` for `..._54k.yaml`), or is a folder."""
    if config_file and Path(config_file).is_dir():
        return "is a folder, not a config file"
    folder = Path(config_file).parent
    try:
        files = sorted(p.name for p in folder.iterdir() if p.is_file()) if config_file and folder.is_dir() else []
    except OSError:  # a folder that cannot be listed (no read permission): the file is still missing
        files = []
    close = difflib.get_close_matches(Path(config_file).name, files, n=3, cutoff=0.8)
    return "does not exist" + (f" (did you mean {', '.join(str(folder / name) for name in close)}?)" if close else "")


def _config_file_shape_error(config_file: str) -> Optional[str]:
    """Why yacs failed on `config_file` with a bare TypeError / AttributeError: the first file
    in its _BASE_ chain whose YAML document is not a mapping, or whose _BASE_ is no path
    (`_BASE_: 5`), or a _BASE_ chain that comes back to a file in it (yacs' RecursionError);
    None when none of these (that error is then something else)."""
    path, seen = config_file, set()
    while path not in seen:
        seen.add(path)
        try:
            with open(path) as f:
                doc = yaml.unsafe_load(f)  # as detectron2 reads it: configs may hold python tags
        except Exception:
            return None
        where = f"config file {config_file!r}" + (f": its _BASE_ {path!r}" if path != config_file else "")
        if not isinstance(doc, dict):
            holds = "nothing" if doc is None else f"a {type(doc).__name__}"
            return f"{where} holds {holds}, not a mapping of config keys (KEY: value lines)"
        base = doc.get("_BASE_")
        if base is None:
            return None
        if not isinstance(base, str):
            return (f"{where} has _BASE_={base!r}: expected the path of the config file it extends "
                    "(relative to the file that names it)")
        base = os.path.expanduser(base)  # detectron2's CfgNode.load_yaml_with_base's resolution
        path = base if base.startswith(("/", "https://", "http://")) else os.path.join(os.path.dirname(path), base)
        path = path if path.startswith(("https://", "http://")) else os.path.normpath(path)
    # yacs follows a _BASE_ cycle until Python's recursion limit: a RecursionError naming no file.
    return (f"config file {config_file!r}: its _BASE_ chain comes back to {path!r}, a cycle "
            "(a config file cannot extend itself, directly or through another)")


def load_config(config_file: str, opts: Sequence[str] = (), extra_setup=None) -> CfgNode:
    """get_cfg -> add_dropblock_config -> [extra_setup(cfg)] -> merge file -> merge opts.

    Errors name what is wrong: FileNotFoundError for a missing ``config_file`` or _BASE_; KeyError
    naming the file (or the opt) for a key that does not exist; ValueError for an odd
    number of opts, and naming the file and tools/lazyconfig_train_net.py for a LazyConfig
    (`lazy_config_checks.is_lazy_config_file`, e.g. a LazyConfig run's config.yaml). The returned
    config is not frozen.
    """
    cfg = get_cfg()
    add_dropblock_config(cfg)  # includes the DeepLab keys the segmentation configs need
    if extra_setup is not None:
        extra_setup(cfg)
    if config_file:
        if not Path(config_file).is_file():
            raise FileNotFoundError(f"config file {config_file!r} {missing_config_file(config_file)}")
        if config_file.endswith(".py"):  # yacs would read it as YAML: a ParserError
            raise ValueError(f"config file {config_file!r} is a LazyConfig (a Python config), not a "
                             "yacs config: train it with tools/lazyconfig_train_net.py")
        try:
            cfg.merge_from_file(config_file)
        except KeyError as e:
            from .lazy_config_checks import is_lazy_config_file

            if is_lazy_config_file(config_file):  # e.g. a LazyConfig run's config.yaml
                raise ValueError(f"config file {config_file!r} is a LazyConfig (its top level has "
                                 "`model:`), not a yacs config: train it with "
                                 "tools/lazyconfig_train_net.py") from None
            message = e.args[0] if e.args else str(e)
            raise KeyError(f"config file {config_file!r}: {message}{_did_you_mean(cfg, message)} "
                           "(add_dropblock_config and detectron2's get_cfg define the "
                           "known keys)") from None
        except ValueError as e:  # type mismatch
            raise ValueError(f"config file {config_file!r}: {e}{_type_mismatch_advice(str(e))}") from None
        except yaml.YAMLError as e:  # PyYAML's message spans lines; its mark names the file (or a _BASE_)
            raise ValueError(f"config file {config_file!r} is not valid YAML: {' '.join(str(e).split())}") from None
        except (TypeError, AttributeError, RecursionError):  # yacs on a document that is no mapping (empty: None)
            why = _config_file_shape_error(config_file)
            if why is None:
                raise
            raise ValueError(why) from None
        except FileNotFoundError as e:  # the file exists (checked above): a _BASE_ does not
            if not e.filename:
                raise
            base = os.path.normpath(e.filename)  # yacs joins "<dir>/../Base.yaml" as it is
            raise FileNotFoundError(f"config file {config_file!r}: the _BASE_ {base!r} does not exist "
                                    "(a _BASE_ path is relative to the config file that names it: a config "
                                    "copied elsewhere needs its bases beside it, or absolute _BASE_ paths)") from None
    opts = list(opts or [])
    # KEY=VALUE, a LazyConfig override's form: yacs read it as a key (or, alone, an odd count).
    # Only where a key goes: a value may hold "=" and start with a key's name (OUTPUT_DIR seed=3).
    written = next((o for o in opts[0::2] if isinstance(o, str) and _DOTTED_KEY.fullmatch(o.split("=", 1)[0])
                    and "=" in o), None)
    if written is not None:
        key, value = written.split("=", 1)
        resolved = _resolve_key(cfg, key.split("."))
        # A LazyConfig's key (train.max_iter=100, dropblock.keep_prob=0.8): the yacs key it stands for.
        keys = [".".join(resolved)] if resolved else (yacs_keys_for_lazy_key(cfg, key) or close_config_keys(cfg, key))
        raise ValueError(f"command-line opt {written!r}: yacs opts are KEY VALUE pairs separated by a space "
                         + (f"({' or '.join(f'{k} {value}' for k in keys)})" if keys
                            else f"(this config has no key {key!r})")
                         + "; key=value is the form of a LazyConfig's overrides"
                         + ("" if resolved else " (tools/lazyconfig_train_net.py trains a LazyConfig)"))
    if len(opts) % 2:
        raise ValueError(f"command-line opts must be KEY VALUE pairs, got an odd number: {opts}"
                         + next(filter(None, (_opt_as_a_value(cfg, k, v) for k, v in zip(opts[0::2], opts[1::2]))),
                                ""))
    for key, value in zip(opts[0::2], opts[1::2]):
        try:
            cfg.merge_from_list([key, value])
        # yacs reports an unknown key in opts with an AssertionError ("Non-existent key").
        except (KeyError, AssertionError) as e:
            message = e.args[0] if e.args else str(e)
            raise KeyError(f"command-line opt {key}={value!r}: {message}"
                           f"{_did_you_mean(cfg, message)}") from None
        except ValueError as e:  # type mismatch
            advice = _opt_as_a_value(cfg, key, value) or _type_mismatch_advice(str(e))
            raise ValueError(f"command-line opt {key}={value!r}: {e}{advice}") from None
        except TypeError:  # yacs tested `in` on a value: "argument of type 'float' is not iterable"
            parts, node = key.split("."), cfg
            for depth, part in enumerate(parts[:-1], 1):
                if not isinstance(node, CfgNode) or part not in node:
                    break
                node = node[part]
                if not isinstance(node, CfgNode):
                    raise KeyError(f"command-line opt {key}={value!r}: {'.'.join(parts[:depth])} is a value "
                                   f"({node!r}), not a group of keys") from None
            raise
    return cfg


# The LazyConfig keys of the yacs keys users most often give a LazyConfig tool (and the other
# way round) where the LazyConfig key has another name, so neither a case-blind match nor
# the near names find it: detectron2's own configs/common (train.py, optim.py,
# data/coco.py, models/) and its default_setup (OUTPUT_DIR / train.output_dir, SEED /
# train.seed) spell them so, and the tools read them there. DATALOADER.NUM_WORKERS is both
# loaders'. (SOLVER.CLIP_GRADIENTS has no LazyConfig key: detectron2's LazyConfig loop does
# not clip.) Each tool names one only where its config has the key.
YACS_TO_LAZY_KEYS = {
    "OUTPUT_DIR": ("train.output_dir",),
    "SEED": ("train.seed",),
    "MODEL.WEIGHTS": ("train.init_checkpoint",),
    "MODEL.DEVICE": ("train.device",),
    "SOLVER.MAX_ITER": ("train.max_iter",),
    "SOLVER.CHECKPOINT_PERIOD": ("train.checkpointer.period",),
    "SOLVER.AMP.ENABLED": ("train.amp.enabled",),
    "TEST.EVAL_PERIOD": ("train.eval_period",),
    "SOLVER.BASE_LR": ("optimizer.lr",),
    "SOLVER.MOMENTUM": ("optimizer.momentum",),
    "SOLVER.WEIGHT_DECAY": ("optimizer.weight_decay",),
    "SOLVER.IMS_PER_BATCH": ("dataloader.train.total_batch_size",),
    "DATALOADER.NUM_WORKERS": ("dataloader.train.num_workers", "dataloader.test.num_workers"),
    "MODEL.RETINANET.NUM_CLASSES": ("model.num_classes",),
    "MODEL.ROI_HEADS.NUM_CLASSES": ("model.roi_heads.num_classes",),
    "MODEL.SEM_SEG_HEAD.NUM_CLASSES": ("model.sem_seg_head.num_classes",),
}


# A dotted config key as an opt writes it, in either spelling (SOLVER.MAX_ITER, train.max_iter).
_DOTTED_KEY = re.compile(r"[A-Za-z_]\w*(\.\w+)*")


def yacs_keys_for_lazy_key(cfg: CfgNode, key: str, n: int = 3) -> List[str]:
    """The keys of the yacs `cfg` that a key written in a LazyConfig's spelling stands for:
    YACS_TO_LAZY_KEYS' (train.max_iter: SOLVER.MAX_ITER), then those ending with it, case
    aside (dropblock.keep_prob: MODEL.DROPBLOCK.KEEP_PROB; end_iter:
    MODEL.DROPBLOCK.SCHEDULE.END_ITER), at most `n`; [] when none."""
    lowered = key.lower()
    found = [yacs for yacs, lazy_keys in YACS_TO_LAZY_KEYS.items() if lowered in lazy_keys
             and _resolve_key(cfg, yacs.split("."))]
    parts = [part.upper() for part in key.split(".")]
    for path in sorted((name.split(".") for name in flatten_config(cfg)), key=len):
        if len(path) > len(parts) and [p.upper() for p in path[-len(parts):]] == parts:
            found.append(".".join(path))
    return list(dict.fromkeys(found))[:n]


def _resolve_key(node: Any, parts: Sequence[str]) -> Optional[List[str]]:
    """The spelling in `node` of the dotted key `parts`, matching case aside (yacs keys are
    upper case; a user may type model.dropblock.keep_prob); None when it is not there."""
    path: List[str] = []
    for part in parts:
        if not isinstance(node, CfgNode):
            return None
        by_upper = {str(name).upper(): name for name in node.keys()}
        if part.upper() not in by_upper:
            return None
        path.append(by_upper[part.upper()])
        node = node[path[-1]]
    return path


def close_config_keys(cfg: CfgNode, key: str, n: int = 3) -> List[str]:
    """The keys of `cfg` closest to the dotted `key` it does not have: the same key in the
    config's case, or the closest spellings of the first part that is not there (with the
    rest of the key where it exists under them). Empty when nothing is close or `key` goes
    into a value."""
    parts = key.split(".")
    node: Any = cfg
    path: List[str] = []  # the config's spelling of the parts found so far
    nodes: List[CfgNode] = []  # the node each part of `path` was found in
    for depth, part in enumerate(parts):
        if not isinstance(node, CfgNode):
            return []
        by_upper = {str(name).upper(): name for name in node.keys()}
        if part.upper() in by_upper:
            nodes.append(node)
            path.append(by_upper[part.upper()])
            node = node[path[-1]]
            continue
        close = [".".join(path + [by_upper[name]] + (_resolve_key(node[by_upper[name]], parts[depth + 1:]) or []))
                 for name in difflib.get_close_matches(part.upper(), list(by_upper), n=n)]
        # A key one node too deep, as a per-location value the config keeps once
        # (MODEL.DROPBLOCK.SEM_SEG_HEAD.KEEP_PROB for MODEL.DROPBLOCK.KEEP_PROB): the nearest
        # node above that has the rest of the key.
        for above in range(len(path) - 1, -1, -1):
            if close:
                break
            rest = _resolve_key(nodes[above], parts[depth:])
            if rest:
                close = [".".join(path[:above] + rest)]
        if not close and depth > 0:  # else in another node (MODEL.SEM_SEG_HEAD.KEEP_PROB)
            tail = [p.upper() for p in parts[depth:]]
            close = [name for name in flatten_config(cfg)
                     if [p.upper() for p in name.split(".")[-len(tail):]] == tail][:n]
        return close
    spelled = ".".join(path)
    return [spelled] if spelled != key else []


def _opt_as_a_value(cfg: CfgNode, key: str, value: Any) -> str:
    """" (... is an opt of its own ...)" where the value given to `key` is a key of `cfg`
    (SOLVER.BASE_LR) or one with its value (MODEL.DEVICE=cpu): `key`'s value was left out
    and the opts after it shifted by one; else "". (A str key takes such a value as it is:
    an OUTPUT_DIR may be named "SOLVER.BASE_LR=0.1"; this is said only where the opts are
    refused anyway.)"""
    name = value.split("=", 1)[0] if isinstance(value, str) else ""
    if not (name and _DOTTED_KEY.fullmatch(name) and name in flatten_config(cfg)):
        return ""
    return f" ({value!r} is an opt of its own: {key} was given no value before it)"


def _type_mismatch_advice(yacs_message: str) -> str:
    """How to write the value yacs refused with "Type mismatch (<class 'float'> vs. <class
    'int'>) with values (0.9 vs. 1) ...": yacs takes a value of the default's type only, so
    `1` for a float key (or `3.0` for an int key, `res4` for a list) is refused; '' for
    another mismatch."""
    found = re.match(r"Type mismatch \(<class '(\w+)'> vs\. <class '(\w+)'>\) with values \(.* vs\. (.*)\) for",
                     yacs_message)
    if not found:
        return ""
    expected, given, value = found.groups()
    if (expected, given) == ("float", "int"):
        return f" (write {value}.0: a float key's value needs a decimal point)"
    if (expected, given) == ("int", "float") and value.endswith(".0"):
        return f" (write {value[:-2]}: an integer key)"
    if expected in ("list", "tuple") and given == "str":
        return f" (write a list: \"['{value}']\")"
    return ""


def _did_you_mean(cfg: CfgNode, yacs_message: str) -> str:
    """" (did you mean A, B?)" for yacs' unknown-key message, else "" (a renamed key's
    message already says what to write). A key in a LazyConfig's spelling (optimizer.lr,
    dropblock.keep_prob) names the yacs key it stands for first."""
    match = re.match(r"Non-existent (?:config )?key: (\S+)$", yacs_message)
    if not match:
        return ""
    close = yacs_keys_for_lazy_key(cfg, match.group(1))
    close += [key for key in close_config_keys(cfg, match.group(1)) if key not in close]
    return f" (did you mean {', '.join(close)}?)" if close else ""


# ----------------------------------------------------------------------------- datasets
def check_dataset_names(cfg: CfgNode, check_files: bool = True,
                        keys: Sequence[str] = ("TRAIN", "TEST"),
                        files_made_later: Sequence[str] = ()) -> None:
    """Fail early for the DATASETS.<key> names (of ``keys``) that are not registered
    (KeyError naming the name and the key), a DATASETS.TEST name given twice (ValueError:
    detectron2 keys the evaluation results by name, so one entry's would stand for both)
    or whose expected files are missing (FileNotFoundError listing each missing file or
    folder), except the files of ``files_made_later`` (sets the caller makes afterwards:
    main_job's synthetic ones)."""
    from ..data.dataset_check import check_datasets, unregistered_dataset_error

    registered = set(DatasetCatalog.list())
    names: Dict[str, str] = {}  # name -> the key that names it first
    for key in keys:
        if key == "TEST":
            repeated = sorted({name for name in cfg.DATASETS.TEST if list(cfg.DATASETS.TEST).count(name) > 1})
            if repeated:
                raise ValueError(f"DATASETS.TEST={tuple(cfg.DATASETS.TEST)!r} names {', '.join(map(repr, repeated))} "
                                 "more than once: detectron2 keys the evaluation results by dataset name")
        for name in cfg.DATASETS[key]:
            if name not in registered:
                raise unregistered_dataset_error(f"DATASETS.{key}", name)
            names.setdefault(name, f"DATASETS.{key}")
    if check_files:
        checked = {name: key for name, key in names.items() if name not in files_made_later}
        check_datasets(checked, keys=checked)


def check_proposal_files(cfg: CfgNode, keys: Sequence[str] = ("TRAIN", "TEST")) -> None:
    """With MODEL.LOAD_PROPOSALS (an R-CNN on precomputed proposals), ValueError naming the
    keys unless DATASETS.PROPOSAL_FILES_<key> gives one file per DATASETS.<key> dataset, as
    detectron2 requires: it reads them when it builds a loader, after config.yaml is written,
    and failed there with a bare AssertionError (the training loader, blamed on the training
    set's files) or an IndexError (the test loader)."""
    if not cfg.MODEL.LOAD_PROPOSALS:
        return
    for key in keys:
        names, files = tuple(cfg.DATASETS[key]), tuple(cfg.DATASETS[f"PROPOSAL_FILES_{key}"])
        if len(files) != len(names):
            raise ValueError(
                f"MODEL.LOAD_PROPOSALS=True: DATASETS.PROPOSAL_FILES_{key}={files!r} gives {len(files)} proposal "
                f"files for the {len(names)} dataset{'s' if len(names) != 1 else ''} of DATASETS.{key}={names!r}: "
                "give one per dataset, in the same order (or MODEL.LOAD_PROPOSALS False)")


# The metadata field that lists a dataset's classes, by the kind of class a model predicts.
_CLASS_FIELDS = {"thing": "thing_classes", "stuff": "stuff_classes"}


def _dataset_classes(metadata: Any, kind: str) -> Tuple[Optional[Sequence[str]], str]:
    """The class names of a dataset's metadata for `kind` ("thing" / "stuff"), or of its
    json_file's categories for things, and where they were read; (None, "") when neither."""
    field = _CLASS_FIELDS[kind]
    classes = getattr(metadata, field, None)
    if classes is not None:
        return classes, f"its metadata {field}"
    json_file = getattr(metadata, "json_file", None)
    if kind == "thing" and isinstance(json_file, str):
        classes = coco_category_names(json_file)
        if classes is not None:
            return classes, f"the categories of its json_file {json_file!r}"
    return None, ""


def check_json_training_annotations(needed: Mapping[str, Tuple[str, str]],
                                    datasets: Sequence[Tuple[str, str]]) -> None:
    """The training sets registered with a COCO-format json_file (register_coco_instances)
    against what the model trains on. `needed`: {DatasetMapper flag of ANNOTATION_FIELDS
    ("use_instance_mask", "use_keypoint"): (what needs it, how to do without)}; `datasets`:
    (config key, name). A file with no "segmentation" ("keypoints") key at all, found by a
    scan of it, is refused before anything is built: the loader's check of every item
    (DatasetMapperNamingFiles.check_training_items, check_lazy_rcnn_training_data) finds it
    only once the loader is built, after the run's folder was prepared. A file that has the
    key in some annotations is left to that check. ValueError naming both."""
    from detectron2.data import MetadataCatalog

    for flag, (needs, fix) in needed.items():
        field, what = ANNOTATION_FIELDS[flag]
        for dataset_key, name in datasets:
            if _json_without(MetadataCatalog.get(name), field):
                json_file = MetadataCatalog.get(name).json_file
                raise ValueError(
                    f"{needs}, but {dataset_key} names {name!r}, whose json_file {json_file!r} has no {field!r} "
                    f"({what}) in any annotation: give {dataset_key} a dataset with {what}, or {fix}")


def _shown_classes(classes: Sequence[str]) -> str:
    return "[" + ", ".join(map(repr, list(classes)[:10])) + (", ...]" if len(classes) > 10 else "]")


def _refuse_other_class_counts(key: str, value: Any, kind: str, dataset: Tuple[str, str],
                               datasets: Sequence[Tuple[str, str]]) -> None:
    """ValueError naming `key`, `dataset` (config key, name), which has not `value` classes (of
    `kind`), and the first of `datasets` with another number of classes than it: no count fits
    both. A test json of 2 of the training json's 3 categories was told to set the count to 2,
    which the training set then refused."""
    from detectron2.data import MetadataCatalog

    dataset_key, name = dataset
    classes, source = _dataset_classes(MetadataCatalog.get(name), kind)
    for other_key, other in datasets:
        other_classes, other_source = _dataset_classes(MetadataCatalog.get(other), kind)
        if other_classes is not None and len(other_classes) != len(classes):
            raise ValueError(
                f"{key}={value!r}, but {dataset_key} names {name!r}, which has {len(classes)} classes ({source}: "
                f"{_shown_classes(classes)}), and {other_key} names {other!r}, which has {len(other_classes)} "
                f"({other_source}: {_shown_classes(other_classes)}): no {key} fits both; every set the model "
                "trains and is evaluated on needs the same classes, in the same order (in a COCO json: the same "
                "categories)")


def _warn_other_class_names(first: Tuple[str, str, Sequence[str]], other: Tuple[str, str, Sequence[str]]) -> None:
    """Warn where two sets (config key, name, class names) of as many classes name them
    otherwise: the model's class i is each set's class i, so a test json whose categories are
    renamed or in another order is scored against other classes, without an error."""
    if list(first[2]) != list(other[2]):
        warnings.warn(
            f"{other[0]} names {other[1]!r}, whose classes {_shown_classes(other[2])} are not those of {first[1]!r} "
            f"({first[0]}: {_shown_classes(first[2])}): the model's class i is each set's class i, by position; "
            "check that they are the same classes in the same order", stacklevel=3)


def check_class_counts(counts: Sequence[Tuple[str, Any, str]], datasets: Sequence[Tuple[str, str]],
                       ignore: Sequence[Tuple[str, Any]] = (), ignore_datasets: Sequence[Tuple[str, str]] = ()) -> None:
    """The model's class counts against the datasets' metadata, before anything is loaded:
    `counts` are (config key, its value, "thing" or "stuff"), `datasets` (config key, dataset
    name). A dataset whose metadata has no such class list (thing_classes / stuff_classes) is
    left alone: only its loading would tell. ValueError naming both keys, the value and the
    dataset's class count: with more classes than the dataset, a detector trains fully and the
    evaluation fails ("A prediction has class=48, but the dataset only has 3 classes"); with
    fewer, the classes past the count train as background, silently. A dataset registered
    with `register_coco_instances` has no thing_classes until it is loaded: its json_file's
    categories are read instead (as load_coco_json will set them). `ignore` (config key,
    value) is the segmentation loss's ignore value, checked against the metadata
    ignore_label of `ignore_datasets` (the training sets: their labels mark the pixels to
    leave out with it; a different value trains those pixels as a class, or fails at the
    first step with "Target 255 is out of bounds")."""
    from detectron2.data import MetadataCatalog

    first_named: Dict[str, Tuple[str, str, Sequence[str]]] = {}  # kind -> the first set's (key, name, classes)
    for dataset_key, name in datasets:
        metadata = MetadataCatalog.get(name)
        for key, value, kind in counts:
            classes, source = _dataset_classes(metadata, kind)
            if classes is None or value == len(classes):
                if classes is not None:
                    _warn_other_class_names(first_named.setdefault(kind, (dataset_key, name, classes)),
                                            (dataset_key, name, classes))
                continue
            shown = _shown_classes(classes)
            # Where another set has other classes, setting the count to this set's refuses that one.
            _refuse_other_class_counts(key, value, kind, (dataset_key, name), datasets)
            raise ValueError(
                f"{key}={value!r}, but {dataset_key} names {name!r}, which has {len(classes)} classes "
                f"({source}: {shown}): set {key} to {len(classes)} "
                + ("(a model with more classes predicts ids the dataset does not have, and its evaluation "
                   "fails after the whole training)" if isinstance(value, int) and value > len(classes) else
                   ("(the loss fails at the first step on the dataset's labels past the model's count)"
                    if kind == "stuff" else "(the dataset's classes past the model's count would train as "
                    "background, silently)")))
    for dataset_key, name in ignore_datasets:
        label = getattr(MetadataCatalog.get(name), "ignore_label", None)
        for key, value in ignore:
            if label is not None and value != label:
                raise ValueError(
                    f"{key}={value!r}, but {dataset_key} names {name!r}, whose labels mark the pixels to "
                    f"ignore with {label} (its metadata ignore_label): set {key} to {label} (the loss would "
                    "train those pixels as a class, or fail at the first step)")


def check_dataset_classes(cfg: CfgNode, keys: Sequence[str] = ("TRAIN", "TEST")) -> None:
    """:func:`check_class_counts` for the class count of the model MODEL.META_ARCHITECTURE
    builds (a RetinaNet: MODEL.RETINANET.NUM_CLASSES; an R-CNN: MODEL.ROI_HEADS.NUM_CLASSES,
    against thing_classes; a SemanticSegmentor, and a PanopticFPN's semantic head besides its
    ROI heads: MODEL.SEM_SEG_HEAD.NUM_CLASSES against stuff_classes, and
    MODEL.SEM_SEG_HEAD.IGNORE_VALUE against the training sets' ignore_label) and the
    DATASETS.<key> sets (of `keys`). A model of the user's own that is none of these is not
    judged."""
    from detectron2.modeling import META_ARCH_REGISTRY, GeneralizedRCNN, PanopticFPN, SemanticSegmentor
    from detectron2.modeling.meta_arch.retinanet import RetinaNet

    try:
        model_class = META_ARCH_REGISTRY.get(cfg.MODEL.META_ARCHITECTURE)
    except KeyError:  # the model check names it
        return
    if not isinstance(model_class, type):
        return
    counts: List[Tuple[str, Any, str]] = []
    ignore: List[Tuple[str, Any]] = []
    if issubclass(model_class, RetinaNet):
        counts.append(("MODEL.RETINANET.NUM_CLASSES", cfg.MODEL.RETINANET.NUM_CLASSES, "thing"))
    elif issubclass(model_class, GeneralizedRCNN):
        counts.append(("MODEL.ROI_HEADS.NUM_CLASSES", cfg.MODEL.ROI_HEADS.NUM_CLASSES, "thing"))
    # A PanopticFPN's semantic labels are the stuff_classes too: in detectron2's
    # *_panoptic_separated sets every thing pixel is class 0 ("things"), then 53 stuff (54).
    if issubclass(model_class, (SemanticSegmentor, PanopticFPN)):
        counts.append(("MODEL.SEM_SEG_HEAD.NUM_CLASSES", cfg.MODEL.SEM_SEG_HEAD.NUM_CLASSES, "stuff"))
        ignore.append(("MODEL.SEM_SEG_HEAD.IGNORE_VALUE", cfg.MODEL.SEM_SEG_HEAD.IGNORE_VALUE))
    datasets = [(f"DATASETS.{key}", name) for key in keys for name in dict.fromkeys(cfg.DATASETS[key])]
    check_class_counts(counts, datasets, ignore, [d for d in datasets if d[0] == "DATASETS.TRAIN"])


# ----------------------------------------------------------------------------- solver and inputs
# The words of torch's and detectron2's optimizer errors, and the key each comes from
# (first match: "Nesterov momentum requires a momentum" is NESTEROV's).
_OPTIMIZER_ERROR_KEYS = (("Nesterov", "SOLVER.NESTEROV"), ("learning rate", "SOLVER.BASE_LR"),
                         ("momentum", "SOLVER.MOMENTUM"), ("weight_decay", "SOLVER.WEIGHT_DECAY"),
                         ("GradientClipType", "SOLVER.CLIP_GRADIENTS.CLIP_TYPE"))


# How many keypoints COCO's default OKS sigmas (pycocotools' Params) score.
_COCO_PERSON_KEYPOINTS = 17


def _json_without(metadata: Any, key: str) -> bool:
    """Whether the dataset of `metadata` was registered with a local COCO json_file that has
    no `key` ("keypoints", "segmentation") in any annotation (by a scan of the file)."""
    json_file = getattr(metadata, "json_file", None)
    return isinstance(json_file, str) and coco_json_has_key(json_file, key) is False


def check_keypoint_counts(cfg: CfgNode, keys: Sequence[str] = ("TRAIN", "TEST")) -> None:
    """With MODEL.KEYPOINT_ON, MODEL.ROI_KEYPOINT_HEAD.NUM_KEYPOINTS against the keypoint_names
    in the metadata of the DATASETS.<key> sets that have them (detectron2's keypoint sets,
    and a user's, whose flip augmentation needs them): another count failed at the first
    step with a bare IndexError, or trained each keypoint on another's heatmap where the
    indices fit, and an evaluation failed on it after the whole inference. And, where a
    DATASETS.TEST set is evaluated by COCO's evaluator, TEST.KEYPOINT_OKS_SIGMAS against
    that count. ValueError naming the key, the set and its count."""
    from detectron2.data import MetadataCatalog

    if not cfg.MODEL.KEYPOINT_ON or not _reads_heads(cfg)["roi"]:
        return
    count = cfg.MODEL.ROI_KEYPOINT_HEAD.NUM_KEYPOINTS
    for key in keys:
        for name in cfg.DATASETS[key]:
            names = MetadataCatalog.get(name).get("keypoint_names", None)
            if names is not None and len(names) != count:
                raise ValueError(f"MODEL.ROI_KEYPOINT_HEAD.NUM_KEYPOINTS={count!r}: DATASETS.{key} set {name!r} has "
                                 f"{len(names)} keypoints (its metadata keypoint_names); set it to {len(names)}")
    # The COCO evaluator scores each keypoint with its own OKS sigma (build_evaluator passes
    # these; none: COCO's 17 person sigmas). Another count failed its assertion after the
    # whole inference, and pycocotools took a sigma <= 0 without a word. A set whose json_file
    # has no keypoints at all is not scored on them (build_evaluator leaves the task out).
    coco_sets = [name for name in cfg.DATASETS.TEST
                 if MetadataCatalog.get(name).get("evaluator_type", None) == "coco"
                 and not _json_without(MetadataCatalog.get(name), "keypoints")]
    sigmas = list(cfg.TEST.KEYPOINT_OKS_SIGMAS)
    if coco_sets and any(not is_real_number(sigma) or not sigma > 0 for sigma in sigmas):
        raise ValueError(f"TEST.KEYPOINT_OKS_SIGMAS={sigmas!r}: expected one positive number per keypoint "
                         "(COCO's person keypoints: 0.026 to 0.107)")
    if coco_sets and (len(sigmas) or _COCO_PERSON_KEYPOINTS) != count:
        given = f"{len(sigmas)} sigmas" if sigmas else f"none, so COCO's {_COCO_PERSON_KEYPOINTS} person sigmas"
        raise ValueError(f"TEST.KEYPOINT_OKS_SIGMAS={sigmas!r}: {given} for MODEL.ROI_KEYPOINT_HEAD.NUM_KEYPOINTS="
                         f"{count!r}, which the COCO evaluation of DATASETS.TEST {coco_sets[0]!r} scores one sigma "
                         f"each: give {count}")


def check_optimizer(cfg: CfgNode, model: Optional[torch.nn.Module] = None) -> torch.optim.Optimizer:
    """The trainer's optimizer (detectron2's SGD, with CLIP_GRADIENTS) built from the SOLVER
    values on `model` (built on the meta device is enough; a one-layer stand-in without one),
    so a value it refuses (a negative MOMENTUM or BASE_LR, NESTEROV without momentum, an
    unknown CLIP_TYPE) fails before data loading rather than after the run's files are
    written. Errors name the key. Returns the optimizer."""
    from .trainer import DropBlockTrainer  # not at the top: trainer.py imports this module

    check_optimizer_values(cfg)
    try:
        return DropBlockTrainer.build_optimizer(cfg, model if model is not None else torch.nn.Linear(1, 1))
    except (ValueError, KeyError, TypeError, AssertionError) as error:
        message = error.args[0] if error.args else type(error).__name__
        key = next((key for word, key in _OPTIMIZER_ERROR_KEYS if word in str(message)), None)
        named = f"{key}={functools.reduce(getattr, key.split('.'), cfg)!r}" if key else "the SOLVER values"
        raise type(error)(f"{named}: the optimizer (detectron2's build_optimizer) cannot be built from it: "
                          f"{message}") from None


def check_optimizer_values(cfg: CfgNode) -> None:
    """ValueError naming the SOLVER key for values detectron2's optimizer takes without a word
    and trains on wrong (torch's SGD judges only the values every parameter shares, not a
    group's): a negative BIAS_LR_FACTOR (the biases at a negative LR, gradient ascent), a
    negative WEIGHT_DECAY_NORM / WEIGHT_DECAY_BIAS (which torch refuses for WEIGHT_DECAY), and
    with CLIP_GRADIENTS.ENABLED a CLIP_VALUE <= 0 (every gradient clipped to 0, or to its
    opposite) or a "norm" clip's NORM_TYPE <= 0, which is no norm."""
    s = cfg.SOLVER
    if is_real_number(s.MOMENTUM) and s.MOMENTUM > 1:
        # torch refuses only a negative one; above 1 each step adds more than all the past
        # ones, and the run diverges (the LazyConfig checks refuse optimizer.momentum alike).
        raise ValueError(f"SOLVER.MOMENTUM={s.MOMENTUM!r}: expected a momentum from 0 to 1 (e.g. 0.9)")
    if not finite_at_least_zero(s.BIAS_LR_FACTOR):
        raise ValueError(f"SOLVER.BIAS_LR_FACTOR={s.BIAS_LR_FACTOR!r}: expected a number >= 0, the biases' LR as a "
                         "multiple of SOLVER.BASE_LR (e.g. 1.0); a negative one trains them at a negative LR")
    for key in ("WEIGHT_DECAY_NORM", "WEIGHT_DECAY_BIAS"):
        value = s[key]
        if value is not None and not finite_at_least_zero(value):  # WEIGHT_DECAY_BIAS None: WEIGHT_DECAY's
            raise ValueError(f"SOLVER.{key}={value!r}: expected a weight decay >= 0 (torch refuses a negative "
                             "SOLVER.WEIGHT_DECAY, but not a parameter group's)")
    clip = s.CLIP_GRADIENTS
    if not clip.ENABLED:
        return
    if not (is_real_number(clip.CLIP_VALUE) and clip.CLIP_VALUE > 0):
        raise ValueError(f"SOLVER.CLIP_GRADIENTS.CLIP_VALUE={clip.CLIP_VALUE!r}: expected a bound > 0 (e.g. 1.0) with "
                         "SOLVER.CLIP_GRADIENTS.ENABLED; at 0 every gradient is clipped to 0, below it to its opposite "
                         "(or set ENABLED False)")
    if clip.CLIP_TYPE == "norm" and not (is_real_number(clip.NORM_TYPE) and clip.NORM_TYPE > 0):
        raise ValueError(f"SOLVER.CLIP_GRADIENTS.NORM_TYPE={clip.NORM_TYPE!r}: expected the p of the p-norm clipped, "
                         "> 0 (e.g. 2.0, or .inf for the largest value)")


def check_lr_scheduler(cfg: CfgNode, optimizer: Optional[torch.optim.Optimizer] = None) -> None:
    """Build SOLVER.LR_SCHEDULER_NAME's schedule on `optimizer` (:func:`check_optimizer`'s) or
    a throwaway one, so an unknown name or a value the schedule refuses fails before data
    loading (DefaultTrainer builds the scheduler after the training data loader). Errors
    name the key."""
    if cfg.SOLVER.MAX_ITER < 1:
        raise ValueError(f"SOLVER.MAX_ITER={cfg.SOLVER.MAX_ITER!r}: expected >= 1 iteration to train")
    check_lr_schedule_values(cfg)
    try:
        if optimizer is None:
            optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=cfg.SOLVER.BASE_LR)
        solver.build_lr_scheduler(cfg, optimizer)
    except (ValueError, KeyError, AssertionError, TypeError, ZeroDivisionError) as error:
        message = error.args[0] if error.args else type(error).__name__
        raise type(error)(f"the LR schedule SOLVER.LR_SCHEDULER_NAME={cfg.SOLVER.LR_SCHEDULER_NAME!r} "
                          f"cannot be built from the SOLVER values: {message}") from None


# detectron2's own yacs schedules (solver.build_lr_scheduler); WarmupPolyLR checks its values itself.
_D2_SCHEDULES = ("WarmupMultiStepLR", "WarmupCosineLR", "WarmupStepWithFixedGammaLR")


def finite_at_least_zero(value: Any) -> bool:
    """A number (not a bool), finite and >= 0: a rate, factor or decay that trains forward."""
    return is_real_number(value) and math.isfinite(value) and value >= 0


def check_lr_schedule_values(cfg: CfgNode) -> None:
    """ValueError naming the SOLVER key for values detectron2's schedules take without a word
    and train on wrong: a negative WARMUP_FACTOR (with WARMUP_ITERS) or GAMMA gives a negative
    LR, gradient ascent, through the warm-up or after a step. And for those it refuses with a
    message that names no key: SOLVER.STEPS out of order or at MAX_ITER (fvcore's "Milestone
    must be smaller than ..."), and on detectron2 main WarmupCosineLR's BASE_LR_END outside
    [0, BASE_LR] (a bare AssertionError of the ratio) or a BASE_LR of 0 it divides by."""
    s, name = cfg.SOLVER, cfg.SOLVER.LR_SCHEDULER_NAME
    if name not in _D2_SCHEDULES:
        return  # WarmupPolyLR's own checks; an unknown name is refused by the build
    if s.WARMUP_ITERS > 0 and not finite_at_least_zero(s.WARMUP_FACTOR):
        raise ValueError(f"SOLVER.WARMUP_FACTOR={s.WARMUP_FACTOR!r}: expected a number >= 0, the LR's multiplier "
                         f"at the start of the warm-up (SOLVER.WARMUP_ITERS={s.WARMUP_ITERS}), e.g. 0.001; a "
                         "negative one trains at a negative LR")
    # detectron2 keeps the STEPS up to MAX_ITER (it warns about the others) as fvcore milestones.
    steps = ([step for step in s.STEPS if not is_real_number(step) or step <= s.MAX_ITER]
             if name == "WarmupMultiStepLR" else [])
    if steps and (any(not is_real_number(step) or not 1 <= step < s.MAX_ITER for step in steps)
                  or any(a >= b for a, b in zip(steps, steps[1:]))):
        raise ValueError(f"SOLVER.STEPS={tuple(s.STEPS)!r} with SOLVER.MAX_ITER={s.MAX_ITER}: expected the "
                         "iterations at which the LR drops in increasing order, each from 1 to MAX_ITER - 1 (a "
                         "step at MAX_ITER drops the LR for no iteration: leave it out)")
    if (steps or name == "WarmupStepWithFixedGammaLR") and not finite_at_least_zero(s.GAMMA):
        raise ValueError(f"SOLVER.GAMMA={s.GAMMA!r}: expected a number >= 0, the LR's multiplier at each step "
                         "(e.g. 0.1); a negative one trains at a negative LR")
    if name == "WarmupStepWithFixedGammaLR" and "NUM_DECAYS" in s and s.GAMMA == 0:  # detectron2 main's
        # fvcore's fixed-gamma scheduler refuses it, in words that name no key.
        raise ValueError(f"SOLVER.GAMMA={s.GAMMA!r}: SOLVER.LR_SCHEDULER_NAME='WarmupStepWithFixedGammaLR' takes a "
                         "multiplier > 0 at each step (e.g. 0.1)")
    if name == "WarmupStepWithFixedGammaLR" and "NUM_DECAYS" in s and (not is_integer(s.NUM_DECAYS) or s.NUM_DECAYS < 1):
        raise ValueError(f"SOLVER.NUM_DECAYS={s.NUM_DECAYS!r}: expected a number of LR drops >= 1 "
                         "(WarmupStepWithFixedGammaLR spaces them evenly over SOLVER.MAX_ITER)")
    if name == "WarmupCosineLR" and "BASE_LR_END" in s:  # detectron2 main: the LR the cosine ends at
        if s.BASE_LR == 0:
            raise ValueError(f"SOLVER.BASE_LR={s.BASE_LR!r} with SOLVER.LR_SCHEDULER_NAME='WarmupCosineLR': "
                             "detectron2 divides SOLVER.BASE_LR_END by it; expected a learning rate > 0")
        if not (is_real_number(s.BASE_LR_END) and 0 <= s.BASE_LR_END <= s.BASE_LR):
            raise ValueError(f"SOLVER.BASE_LR_END={s.BASE_LR_END!r}: expected the LR the cosine schedule ends at, "
                             f"from 0 to SOLVER.BASE_LR={s.BASE_LR!r}")


_SAMPLING_STYLES = ("choice", "range")
_MASK_FORMATS = ("polygon", "bitmask")
# The samplers that repeat images by category frequency (DATALOADER.REPEAT_THRESHOLD).
_REPEAT_SAMPLERS = ("RepeatFactorTrainingSampler", "WeightedCategoryTrainingSampler")
_FLIPS = ("none", "horizontal", "vertical")


def check_train_inputs(cfg: CfgNode) -> None:
    """ValueError naming the key for SOLVER / INPUT values that detectron2 trips over only
    after data loading or inside the first step (SOLVER.CHECKPOINT_PERIOD 0: a
    ZeroDivisionError in the checkpoint hook; SOLVER.IMS_PER_BATCH 0: an assertion in the
    data loader; INPUT.MAX_SIZE_TRAIN 0: an error resizing the first image), or with a
    message that names no key (INPUT.MIN_SIZE_TRAIN_SAMPLING: "AssertionError: rand";
    INPUT.RANDOM_FLIP: "At least one of horiz or vert has to be True!")."""
    period = cfg.SOLVER.CHECKPOINT_PERIOD
    if not isinstance(period, int) or period < 1:
        raise ValueError(f"SOLVER.CHECKPOINT_PERIOD={period!r}: expected iterations between "
                         "checkpoints >= 1 (a period past SOLVER.MAX_ITER saves model_final.pth only)")
    batch, world = cfg.SOLVER.IMS_PER_BATCH, comm.get_world_size()
    if not isinstance(batch, int) or batch < 1:
        raise ValueError(f"SOLVER.IMS_PER_BATCH={batch!r}: expected >= 1 image per batch")
    if cfg.SOLVER.REFERENCE_WORLD_SIZE in (0, world) and batch % world:
        # (Scaled from another REFERENCE_WORLD_SIZE, the batch is checked against that one.)
        raise ValueError(f"SOLVER.IMS_PER_BATCH={batch!r}: not divisible by the {world} processes")
    sampling = cfg.INPUT.MIN_SIZE_TRAIN_SAMPLING
    if sampling not in _SAMPLING_STYLES:
        raise ValueError(f"INPUT.MIN_SIZE_TRAIN_SAMPLING={sampling!r}: expected one of {list(_SAMPLING_STYLES)}")
    sizes = cfg.INPUT.MIN_SIZE_TRAIN
    sizes = list(sizes) if isinstance(sizes, (list, tuple)) else [sizes]
    # 0 is a size detectron2's ResizeShortestEdge takes in training too: no resizing.
    if not sizes or any(not is_integer(v) or v < 0 for v in sizes) or (
            sampling == "range" and len(sizes) != 2):
        raise ValueError(f"INPUT.MIN_SIZE_TRAIN={cfg.INPUT.MIN_SIZE_TRAIN!r}: expected sizes >= 1 "
                         + ("(two: the range's ends; 0: no resizing)" if sampling == "range"
                            else "to choose from (0: no resizing)"))
    if sampling == "range" and sizes[0] > sizes[1]:
        # detectron2 draws from them with numpy's randint, which refused it at the first
        # image ("low >= high"), blamed on that image's file.
        raise ValueError(f"INPUT.MIN_SIZE_TRAIN={cfg.INPUT.MIN_SIZE_TRAIN!r} with INPUT.MIN_SIZE_TRAIN_SAMPLING='range': "
                         f"expected the range's ends smallest first: ({sizes[1]}, {sizes[0]})")
    max_size = cfg.INPUT.MAX_SIZE_TRAIN
    if not is_integer(max_size) or resize_error(sizes, max_size):
        raise ValueError(f"INPUT.MAX_SIZE_TRAIN={max_size!r}: expected a size >= 1"
                         + (f" (INPUT.MIN_SIZE_TRAIN={cfg.INPUT.MIN_SIZE_TRAIN!r} resizes)" if is_integer(max_size) else ""))
    if cfg.MODEL.MASK_ON and cfg.INPUT.MASK_FORMAT not in _MASK_FORMATS:
        # detectron2's annotations_to_instances asserted it (the value as the whole message) at
        # the first image with a mask, blamed on that image's file.
        raise ValueError(f"INPUT.MASK_FORMAT={cfg.INPUT.MASK_FORMAT!r}: expected one of {list(_MASK_FORMATS)}, how "
                         "the mask head's instance masks are loaded (with MODEL.MASK_ON)")
    if cfg.INPUT.RANDOM_FLIP not in _FLIPS:
        raise ValueError(f"INPUT.RANDOM_FLIP={cfg.INPUT.RANDOM_FLIP!r}: expected one of {list(_FLIPS)}")
    if cfg.INPUT.CROP.ENABLED:
        check_crop(cfg.INPUT.CROP.TYPE, cfg.INPUT.CROP.SIZE)
    from ..data.cutout import build_cutout_augmentation

    # INPUT.CUTOUT's values, and a fill (MODEL.PIXEL_MEAN) that fits INPUT.FORMAT's channels:
    # checked when the trainer built its loader, after config.yaml was written.
    build_cutout_augmentation(cfg)
    if not cfg.DATASETS.TRAIN:
        # detectron2 asserted "No valid data found in ." once the trainer was being built.
        raise ValueError(f"DATASETS.TRAIN={tuple(cfg.DATASETS.TRAIN)!r}: no dataset to train on; name at least one")
    sampler, samplers = cfg.DATALOADER.SAMPLER_TRAIN, train_samplers()
    if samplers is not None and sampler not in samplers:
        # detectron2 refuses it when the trainer builds the training loader, after
        # default_setup has written config.yaml into OUTPUT_DIR.
        raise ValueError(f"DATALOADER.SAMPLER_TRAIN={sampler!r}: not a sampler this detectron2's "
                         f"build_detection_train_loader knows; expected one of {list(samplers)}")
    check_sampler_keys(cfg)
    threshold = cfg.DATALOADER.REPEAT_THRESHOLD
    if sampler in _REPEAT_SAMPLERS and not finite_at_least_zero(threshold):
        # Its repeat factors are sqrt(threshold / a category's frequency): "math domain error"
        # building the training loader, blamed on the dataset.
        raise ValueError(f"DATALOADER.REPEAT_THRESHOLD={threshold!r}: expected a category frequency >= 0 below "
                         f"which DATALOADER.SAMPLER_TRAIN={sampler!r} repeats images (e.g. 0.001 as in LVIS)")


# The key each of detectron2's samplers reads that its get_cfg() does not define (neither v0.6
# nor main): build_detection_train_loader failed on the missing attribute, blamed on the dataset.
_SAMPLER_KEYS = {"RandomSubsetTrainingSampler": ("DATALOADER", "RANDOM_SUBSET_RATIO"),
                 "WeightedTrainingSampler": ("DATASETS", "TRAIN_REPEAT_FACTOR"),
                 "WeightedCategoryTrainingSampler": ("DATASETS", "TRAIN_REPEAT_FACTOR")}


def check_sampler_keys(cfg: CfgNode) -> None:
    """ValueError naming DATALOADER.SAMPLER_TRAIN when it reads a key the config lacks
    (_SAMPLER_KEYS), and naming that key when detectron2 asserts its value as the loader is
    built: a RANDOM_SUBSET_RATIO outside (0, 1], a TRAIN_REPEAT_FACTOR entry that is no
    [DATASETS.TRAIN name, factor > 0] pair."""
    sampler = cfg.DATALOADER.SAMPLER_TRAIN
    if sampler not in _SAMPLER_KEYS:
        return
    node, leaf = _SAMPLER_KEYS[sampler]
    if leaf not in cfg[node]:
        raise ValueError(f"DATALOADER.SAMPLER_TRAIN={sampler!r} reads {node}.{leaf}, which detectron2's config does "
                         "not define, so no config file or opt can set it (a config built in Python may add it "
                         f"before merging: cfg.{node}.{leaf} = ...): use another sampler (e.g. "
                         "'TrainingSampler', or 'RepeatFactorTrainingSampler' with DATALOADER.REPEAT_THRESHOLD)")
    value = cfg[node][leaf]
    if leaf == "RANDOM_SUBSET_RATIO" and not (is_real_number(value) and 0 < value <= 1):
        raise ValueError(f"DATALOADER.RANDOM_SUBSET_RATIO={value!r}: expected the share of the training set "
                         "sampled, in (0, 1]")
    if leaf == "TRAIN_REPEAT_FACTOR":
        for entry in value:
            if (not isinstance(entry, (list, tuple)) or len(entry) != 2 or entry[0] not in cfg.DATASETS.TRAIN
                    or not (is_real_number(entry[1]) and math.isfinite(entry[1]) and entry[1] > 0)):
                raise ValueError(f"DATASETS.TRAIN_REPEAT_FACTOR={value!r}: entry {entry!r} is not a [name, factor] "
                                 f"pair of a DATASETS.TRAIN set {tuple(cfg.DATASETS.TRAIN)!r} and a factor > 0")


# detectron2's RandomCrop types (it asserts the type when the training loader is built).
_CROP_TYPES = ("relative_range", "relative", "absolute", "absolute_range")


def check_crop(crop_type: Any, size: Any) -> None:
    """INPUT.CROP.TYPE / SIZE as detectron2's RandomCrop takes them: ValueError naming the key
    (detectron2 raised a bare AssertionError building the training loader, or at the first
    image: a relative size above 1, an absolute range whose ends are reversed)."""
    if crop_type not in _CROP_TYPES:
        raise ValueError(f"INPUT.CROP.TYPE={crop_type!r}: expected one of {list(_CROP_TYPES)}")
    relative = crop_type.startswith("relative")
    values = list(size) if isinstance(size, (list, tuple)) else None
    if (values is None or len(values) != 2
            or not all(is_real_number(v) for v in values)
            or (relative and not all(0 < v <= 1 for v in values))
            or (not relative and not all(is_integer(v) and v >= 1 for v in values))
            or (crop_type == "absolute_range" and values[0] > values[1])):
        expected = {"relative": "two fractions of the image in (0, 1]: height, width",
                    "relative_range": "two fractions in (0, 1]: the smallest height and width, up to the whole image",
                    "absolute": "two sizes in pixels >= 1: height, width",
                    "absolute_range": "two sizes in pixels >= 1, smallest first: the range of the crop's sides"}
        raise ValueError(f"INPUT.CROP.SIZE={size!r} with INPUT.CROP.TYPE={crop_type!r}: expected {expected[crop_type]}")


def train_samplers() -> Optional[Tuple[str, ...]]:
    """The DATALOADER.SAMPLER_TRAIN names the installed detectron2's training loader knows,
    read from its source (v0.6 has 3; main adds WeightedTrainingSampler and
    WeightedCategoryTrainingSampler); None where the source cannot be read or has none
    (then the loader alone judges the name)."""
    import inspect

    from detectron2.data import build as d2_build

    try:
        source = inspect.getsource(d2_build._train_loader_from_config)
    except (AttributeError, OSError, TypeError):
        return None
    return tuple(dict.fromkeys(re.findall(r"""sampler_name\s*==\s*["'](\w+)["']""", source))) or None


def resize_error(short_edge_length: Any, max_size: Any) -> str:
    """Why detectron2's ResizeShortestEdge(short_edge_length, max_size) fails on every image
    ('' when it does not): a negative shortest edge, or a positive one with a max_size < 1
    (a 0 x 0 or negative target: "height and width must be > 0", naming the image, at its
    first use). A shortest edge of 0 resizes nothing, whatever max_size."""
    sizes = list(short_edge_length) if isinstance(short_edge_length, (list, tuple)) else [short_edge_length]
    if not all(is_real_number(v) for v in sizes + [max_size]):
        return "expected numbers of pixels"
    if any(v < 0 for v in sizes):
        return "a negative shortest edge gives an image of negative size (0: no resizing)"
    if any(v > 0 for v in sizes) and max_size < 1:
        return "a longest edge < 1 resizes every image to nothing (a large one keeps the shortest edge)"
    return ""


def image_format_error(image_format: Any, channels: Optional[int] = None) -> str:
    """Why detectron2's read_image cannot give the model an image in `image_format` ('' when it
    can): detectron2's convert_PIL_to_numpy refuses it for an RGB image (an unknown name:
    "conversion from RGB to FOO not supported", naming the image, at the first step), or
    gives an image without a channel axis ("I", "P", ...), or one whose channels neither
    match the model's `channels` (the MODEL.PIXEL_MEAN values) nor broadcast to them."""
    import numpy as np
    from detectron2.data.detection_utils import convert_PIL_to_numpy
    from PIL import Image

    try:
        image = np.asarray(convert_PIL_to_numpy(Image.new("RGB", (2, 2)), image_format))
    except Exception as error:  # noqa: BLE001 - PIL raises ValueError, KeyError, ... by mode
        return f"detectron2's convert_PIL_to_numpy refuses it ({type(error).__name__}: {error})"
    if image.ndim != 3:
        return f"detectron2 reads it as images without a channel axis (shape {image.shape})"
    if channels is not None and image.shape[2] not in (1, channels):
        return f"it gives {image.shape[2]}-channel images, the model normalizes {channels} channels"
    return ""


def pixel_normalization_error(pixel_mean: Any, pixel_std: Any) -> str:
    """Why a detectron2 model cannot normalize its images with these values ('' when it can):
    it subtracts `pixel_mean` and divides by `pixel_std`, one value per channel each, so the
    two need as many values (GeneralizedRCNN asserts it when built; RetinaNet and the
    segmentor fail at their first image with a bare broadcast error), and a std of 0 makes
    every input of that channel infinite (the losses NaN from the first step)."""
    mean, std = list(pixel_mean), list(pixel_std)
    if len(std) != len(mean):
        return f"{len(std)} value(s) for the {len(mean)} channels of the pixel mean (one per channel)"
    if any(value == 0 for value in std):
        return "a std of 0 divides that channel of every image by zero"
    return ""


def check_test_time_augmentation(cfg: CfgNode) -> None:
    """ValueError naming the key for a TEST.AUG.ENABLED run whose test-time augmentation
    (detectron2's GeneralizedRCNNWithTTA, run by :meth:`trainer.DropBlockTrainer.test_with_TTA` after
    training and with --eval-only) would fail only after the whole training: a
    MODEL.META_ARCHITECTURE that is no GeneralizedRCNN (detectron2 has no TTA for RetinaNet, a
    SemanticSegmentor, a PanopticFPN, an RPN alone), MODEL.KEYPOINT_ON / MODEL.LOAD_PROPOSALS
    (the wrapper asserts against both), TEST.AUG.MIN_SIZES / MAX_SIZE that resize every image
    to nothing (:func:`resize_error`, as for the plain test resize; an empty MIN_SIZES
    evaluates no image), a TEST.AUG.FLIP that is not a bool. Nothing is judged when
    TEST.AUG.ENABLED is off (the keys are then unread) or the meta-architecture is unknown
    (the model check names it)."""
    from detectron2.modeling import META_ARCH_REGISTRY, GeneralizedRCNN, PanopticFPN

    aug = cfg.TEST.AUG
    if not aug.ENABLED:
        return
    try:
        model_class = META_ARCH_REGISTRY.get(cfg.MODEL.META_ARCHITECTURE)
    except KeyError:
        return
    enabled = f"TEST.AUG.ENABLED={aug.ENABLED!r}"
    if isinstance(model_class, type) and (not issubclass(model_class, GeneralizedRCNN)
                                          or issubclass(model_class, PanopticFPN)):
        # GeneralizedRCNNWithTTA asserts a GeneralizedRCNN; a PanopticFPN is one, but its
        # inference() takes no detected boxes (TypeError) and the wrapper returns only
        # "instances", not the panoptic / semantic outputs.
        raise ValueError(
            f"{enabled}: detectron2 has test-time augmentation for R-CNN models only (GeneralizedRCNNWithTTA: "
            f"MODEL.META_ARCHITECTURE 'GeneralizedRCNN'), not for MODEL.META_ARCHITECTURE="
            f"{cfg.MODEL.META_ARCHITECTURE!r}: set TEST.AUG.ENABLED False")
    for key, what in (("KEYPOINT_ON", "keypoints"), ("LOAD_PROPOSALS", "precomputed proposals")):
        if cfg.MODEL[key]:
            raise ValueError(f"{enabled} with MODEL.{key}={cfg.MODEL[key]!r}: detectron2's GeneralizedRCNNWithTTA "
                             f"has no test-time augmentation for {what} (it asserts, after the training): "
                             "set TEST.AUG.ENABLED False")
    sizes = aug.MIN_SIZES
    if not isinstance(sizes, (list, tuple)) or not sizes:
        raise ValueError(f"TEST.AUG.MIN_SIZES={sizes!r}: expected a non-empty list of shortest edges, each "
                         "an evaluation of every image (with TEST.AUG.ENABLED)")
    why = resize_error(list(sizes), aug.MAX_SIZE)
    if why:
        raise ValueError(f"TEST.AUG.MIN_SIZES={sizes!r} with TEST.AUG.MAX_SIZE={aug.MAX_SIZE!r}: {why}")
    if not isinstance(aug.FLIP, bool):
        raise ValueError(f"TEST.AUG.FLIP={aug.FLIP!r}: expected True or False (each size evaluated "
                         "flipped too, or not)")


def check_test_inputs(cfg: CfgNode, test_time_augmentation: bool = True) -> None:
    """ValueError naming the key for INPUT values an evaluation (a training's too, at its end)
    trips over only when it reads the images, naming an image instead of the key:
    INPUT.MIN_SIZE_TEST / INPUT.MAX_SIZE_TEST that resize every image to nothing
    (:func:`resize_error`; MIN_SIZE_TEST 0 is detectron2's "no resizing"), an INPUT.FORMAT
    detectron2 cannot read images in (:func:`image_format_error`; a training fails at its
    first step), and the TEST.AUG values (:func:`check_test_time_augmentation`). A caller
    that runs no test-time augmentation (`test_time_augmentation` False: an analysis that
    evaluates its own way) refuses TEST.AUG.ENABLED, which it would ignore, unannounced."""
    if cfg.TEST.AUG.ENABLED and not test_time_augmentation:
        raise ValueError(
            f"TEST.AUG.ENABLED={cfg.TEST.AUG.ENABLED!r}: this evaluation runs no test-time augmentation "
            f"(MODEL.META_ARCHITECTURE={cfg.MODEL.META_ARCHITECTURE!r}), so it would run on the plain test "
            "resize (INPUT.MIN_SIZE_TEST / MAX_SIZE_TEST), not TEST.AUG.MIN_SIZES / MAX_SIZE / FLIP: set "
            "TEST.AUG.ENABLED False (tools/train_net.py runs it, for R-CNN models)")
    check_test_time_augmentation(cfg)
    why = resize_error(cfg.INPUT.MIN_SIZE_TEST, cfg.INPUT.MAX_SIZE_TEST)
    if why:
        raise ValueError(f"INPUT.MIN_SIZE_TEST={cfg.INPUT.MIN_SIZE_TEST!r} with INPUT.MAX_SIZE_TEST="
                         f"{cfg.INPUT.MAX_SIZE_TEST!r}: {why}")
    why = image_format_error(cfg.INPUT.FORMAT, len(cfg.MODEL.PIXEL_MEAN))
    if why:
        raise ValueError(f"INPUT.FORMAT={cfg.INPUT.FORMAT!r}: {why} (e.g. 'BGR', 'RGB'"
                         + (f"; MODEL.PIXEL_MEAN has {len(cfg.MODEL.PIXEL_MEAN)} values)" if "channels" in why else ")"))


# ----------------------------------------------------------------------------- model
# Where each MODEL.DROPBLOCK location puts its modules (qualified names in a built model):
# ResNet blocks (under an FPN's bottom_up or as the backbone itself), the FPN's own
# convolutions and top block, the RetinaNet head, the segmentation head.
_LOCATION_PATTERNS = {
    "RESNET.ENABLED": re.compile(r"(^|\.)res[2-5]\.\d+\.dropblock_"),
    "DROP_PATH_RATE": re.compile(r"(^|\.)res[2-5]\.\d+\.drop_path$"),
    "FPN.ENABLED": re.compile(r"^backbone\.(?!bottom_up\.)(top_block\.)?dropblock_"),
    "HEAD.ENABLED": re.compile(r"^head\."),
    "SEM_SEG_HEAD.ENABLED": re.compile(r"^sem_seg_head\."),
}


# A residual block of a ResNet stage (backbone.bottom_up.res4.0, roi_heads.res5.2), and its stage.
_RESNET_BLOCK = re.compile(r"(^|\.)(res[2-5])\.\d+$")


def _check_every_stage_regularized(cfg: CfgNode, model: torch.nn.Module, names: Sequence[str]) -> None:
    """Per stage what check_dropblock_placed asks per location: a C4 R-CNN runs res2..res4 in
    its backbone and res5 in its ROI head, so dropblock-det's part beside a stock one had
    DropBlock somewhere while a stage in RESNET.STAGES (or every block, for DROP_PATH_RATE)
    trained without it. ValueError naming the key, the stage and the component to switch."""
    from detectron2.layers import CNNBlockBase

    from ..deploy import dropblock_component_advice

    db = cfg.MODEL.DROPBLOCK
    regularized = set(names)
    # A block by its class too: a head keys modules by feature name (a DeepLab decoder's
    # dropblock_decoder.res2.0, a SemSegFPN tower sem_seg_head.res3.0), which are no blocks.
    blocks = [(name, match.group(2)) for name, module in model.named_modules()
              for match in [_RESNET_BLOCK.search(name)] if match and isinstance(module, CNNBlockBase)]

    def advice(block: str) -> str:
        key = "MODEL.ROI_HEADS.NAME" if block.startswith("roi_heads.") else "MODEL.BACKBONE.NAME"
        return dropblock_component_advice(cfg, "RESNET.ENABLED", key)

    if db.RESNET.ENABLED:
        for stage in db.RESNET.STAGES:
            in_stage = [block for block, of in blocks if of == stage]
            if in_stage and not any(name.startswith(block + ".dropblock_") for block in in_stage for name in names):
                raise ValueError(
                    f"MODEL.DROPBLOCK.RESNET.STAGES={list(db.RESNET.STAGES)} lists {stage!r}, but the model's "
                    f"{stage} ({in_stage[0].rsplit('.', 1)[0]}) has no DropBlock: {advice(in_stage[0])}")
    if db.DROP_PATH_RATE > 0:
        bare = [block for block, _ in blocks if f"{block}.drop_path" not in regularized]
        if bare:
            raise ValueError(
                f"MODEL.DROPBLOCK.DROP_PATH_RATE={db.DROP_PATH_RATE!r}, but {len(bare)} of the model's {len(blocks)} "
                f"residual blocks have no DropPath ({', '.join(bare[:3])}{', ...' if len(bare) > 3 else ''}): "
                f"{advice(bare[0])}")


def check_dropblock_placed(cfg: CfgNode, model: torch.nn.Module) -> None:
    """ValueError naming the key when a MODEL.DROPBLOCK location is on but the built model
    has no regularizer there: stock detectron2 components (RetinaNet,
    build_retinanet_resnet_fpn_backbone, ...) ignore the keys, and a run would otherwise
    train without DropBlock while the schedule hook logs a falling keep_prob."""
    from detectron2.modeling.roi_heads import Res5ROIHeads

    from ..deploy import dropblock_component_advice
    from ..layers import iter_regularizers

    db = cfg.MODEL.DROPBLOCK
    names = [name for name, _ in iter_regularizers(model)]
    # The component names the model was built from: the heads' only where the model has them
    # (an R-CNN's SEM_SEG_HEAD.NAME, set by detectron2's defaults, builds nothing).
    built_from = ", ".join(f"MODEL.{key}={value!r}" for key, value, built in (
        ("META_ARCHITECTURE", cfg.MODEL.META_ARCHITECTURE, True),
        ("BACKBONE.NAME", cfg.MODEL.BACKBONE.NAME, True),
        ("ROI_HEADS.NAME", cfg.MODEL.ROI_HEADS.NAME, getattr(model, "roi_heads", None) is not None),
        ("SEM_SEG_HEAD.NAME", cfg.MODEL.SEM_SEG_HEAD.NAME, getattr(model, "sem_seg_head", None) is not None),
    ) if built)
    for key in locations_on(cfg):
        node, _, leaf = key.rpartition(".")
        value = db[node][leaf] if node else db[leaf]
        if not any(_LOCATION_PATTERNS[key].search(name) for name in names):
            raise ValueError(
                f"MODEL.DROPBLOCK.{key}={value!r}, but the model built from {built_from} has no DropBlock there"
                f" ({len(names)} elsewhere): {dropblock_component_advice(cfg, key)} (see the README),"
                f" or check the location's STAGES / POSITIONS for this model")
    _check_every_stage_regularized(cfg, model, names)
    # C4 (Res5ROIHeads): the res5 that runs is the ROI head's own, which dropblock-det does
    # not regularize; a res5 in the backbone (OUT_FEATURES with "res5") is computed, unused.
    roi_heads = getattr(model, "roi_heads", None)
    if (db.RESNET.ENABLED and "res5" in db.RESNET.STAGES and isinstance(roi_heads, Res5ROIHeads)
            and not any(name.startswith("roi_heads.res5.") for name in names)):
        raise ValueError(
            f"MODEL.DROPBLOCK.RESNET.STAGES={list(db.RESNET.STAGES)}: with MODEL.ROI_HEADS.NAME="
            f"{cfg.MODEL.ROI_HEADS.NAME!r} (C4) res5 is built by the ROI head (roi_heads.res5), which "
            "has no DropBlock; the backbone's res5 is not used by the model, so DropBlock there "
            "would not regularize anything. Use MODEL.ROI_HEADS.NAME 'DropBlockRes5ROIHeads' (DropBlock "
            "in the ROI head's res5), or list only backbone stages (e.g. ['res4'])")


def error_description(error: BaseException) -> str:
    """"<type>: <message>" of an error a component raised building a model; for an assertion,
    most of which have no message in detectron2 (FastRCNNConvFCHead's `assert num_conv +
    num_fc > 0`), also the line that failed: "AssertionError (at detectron2/modeling/...:47:
    assert ...)", its file from its package's folder."""
    described = f"{type(error).__name__}{': ' + str(error) if str(error) else ''}"
    if not isinstance(error, AssertionError) or error.__traceback__ is None:
        return described
    frame = traceback.extract_tb(error.__traceback__)[-1]
    parts = Path(frame.filename).parts
    installed = [i for i, part in enumerate(parts) if part in ("site-packages", "dist-packages")]
    start = installed[-1] + 1 if installed else parts.index("detectron2") if "detectron2" in parts else 0
    return f"{described} (at {Path(*parts[start:]).as_posix()}:{frame.lineno}: {(frame.line or '').strip()})"


def check_model_config(cfg: CfgNode) -> Optional[torch.nn.Module]:
    """Build the model described by `cfg` on PyTorch's meta device (shapes, no memory or
    initialisation cost: ~0.1 s for R50-FPN) and check where DropBlock went
    (:func:`check_dropblock_placed`), so a model-config error is raised before data loading
    and before a tool writes anything; the heads' values (:func:`check_model_values`) and
    MODEL.PIXEL_STD against MODEL.PIXEL_MEAN (:func:`pixel_normalization_error`) first. A
    component that cannot be built on the meta device is left to the real build, which
    makes the same checks. Returns the meta model (None
    where it could not be built)."""
    check_registered_names(cfg)
    check_stock_retinanet_norm(cfg)
    check_model_values(cfg)
    check_stock_fpn_inputs(cfg)
    check_rcnn_features(cfg)
    check_retinanet_features(cfg)
    why = pixel_normalization_error(cfg.MODEL.PIXEL_MEAN, cfg.MODEL.PIXEL_STD)
    if why:
        raise ValueError(f"MODEL.PIXEL_STD={list(cfg.MODEL.PIXEL_STD)!r}: {why} "
                         f"(MODEL.PIXEL_MEAN={list(cfg.MODEL.PIXEL_MEAN)!r})")
    try:
        model = meta_model(cfg)
    except AssertionError as error:
        # detectron2's components assert on their config values, most without a message: the
        # failing line says which (error_description).
        raise ValueError(f"the model of this config (MODEL.META_ARCHITECTURE={cfg.MODEL.META_ARCHITECTURE!r}) "
                         f"does not build: {error_description(error)}") from error
    if model is not None:
        check_fpn_top_block(cfg, getattr(model, "backbone", None))
        check_dropblock_placed(cfg, model)
    return model


def check_stock_fpn_inputs(cfg: CfgNode) -> None:
    """For detectron2's own ResNet-FPN builders (MODEL.BACKBONE.NAME build_resnet_fpn_backbone,
    build_retinanet_resnet_fpn_backbone; dropblock-det's check these keys as they build): the
    FPN's MODEL.FPN.IN_FEATURES against the ResNet's outputs, their strides, and the feature
    the top block reads (fpn.check_fpn_inputs). detectron2's build failed with a bare KeyError
    (e.g. 'res2', or 'res5' for RetinaNet's P6/P7) or an AssertionError naming no key."""
    from detectron2.layers import ShapeSpec
    from detectron2.modeling.backbone.resnet import build_resnet_backbone

    from ..modeling.fpn import STOCK_FPN_TOP_BLOCK_INPUTS, check_fpn_inputs

    name = cfg.MODEL.BACKBONE.NAME
    if name not in STOCK_FPN_TOP_BLOCK_INPUTS:
        return
    bottom_up = build_on_meta_device(lambda: build_resnet_backbone(cfg, ShapeSpec(channels=len(cfg.MODEL.PIXEL_MEAN))))
    if bottom_up is not None:
        check_fpn_inputs(cfg, bottom_up, name, STOCK_FPN_TOP_BLOCK_INPUTS[name])


def check_retinanet_features(cfg: CfgNode) -> None:
    """MODEL.RETINANET.IN_FEATURES of a RetinaNet MODEL.META_ARCHITECTURE against the outputs
    of the backbone MODEL.BACKBONE.NAME builds (on the meta device), and the anchor sizes and
    aspect ratios against those levels (check_anchor_levels), as DropBlockRetinaNet checks
    them at its build: detectron2's own RetinaNet failed with a bare KeyError (e.g. 'p2') or
    an assertion naming no key. ValueError naming the key and the backbone."""
    from detectron2.modeling import build_backbone

    from ..config import check_anchor_levels, check_feature_names

    if not _reads_heads(cfg)["retinanet"]:
        return
    backbone = build_on_meta_device(lambda: build_backbone(cfg))
    if backbone is None:
        return
    check_fpn_top_block(cfg, backbone)
    levels = check_feature_names("MODEL.RETINANET.IN_FEATURES", cfg.MODEL.RETINANET.IN_FEATURES,
                                 list(backbone.output_shape()), "the backbone's outputs", "level",
                                 f"MODEL.BACKBONE.NAME={cfg.MODEL.BACKBONE.NAME!r}")
    check_anchor_levels(cfg, "MODEL.RETINANET.IN_FEATURES", levels)
    warn_anchor_sizes_against_strides(cfg, "MODEL.RETINANET.IN_FEATURES", levels, backbone.output_shape())


def warn_anchor_sizes_against_strides(cfg: CfgNode, levels_key: str, levels: Sequence[str],
                                      shapes: Mapping[str, Any]) -> None:
    """Warn where MODEL.ANCHOR_GENERATOR.SIZES, one entry per level, give a coarser level of
    `levels` (given by `levels_key`; `shapes`: the backbone's output shapes, with strides)
    smaller anchors than a finer one (warn_anchor_sizes_order)."""
    if cfg.MODEL.ANCHOR_GENERATOR.NAME in ("DefaultAnchorGenerator", "RotatedAnchorGenerator"):
        warn_anchor_sizes_order(levels_key, levels, "MODEL.ANCHOR_GENERATOR.SIZES", cfg.MODEL.ANCHOR_GENERATOR.SIZES,
                                [shapes[level].stride for level in levels], stacklevel=4)


def warn_anchor_sizes_order(levels_key: str, levels: Sequence[str], sizes_key: str, sizes: Any,
                            strides: Sequence[int], stacklevel: int = 3) -> None:
    """Warn where anchor `sizes` (given by `sizes_key`), one entry per level, give a coarser
    level of `levels` (given by `levels_key`, with these `strides`) smaller anchors than a
    finer one. detectron2's anchor generators pair the entries with the levels in order, so
    levels listed coarsest first (p6 ... p2) under detectron2's sizes (32 ... 512) put 32 px
    anchors on the stride-64 map and 512 px ones on the stride-4 map, and train without a
    word. A warning, not an error: such a pairing may be meant. Sizes not given per level
    (one entry for all) are not judged."""
    if (len(levels) < 2 or not isinstance(sizes, Sequence) or len(sizes) != len(levels)
            or not all(isinstance(s, Sequence) and len(s) and all(map(is_real_number, s)) for s in sizes)):
        return
    by_stride = sorted(zip(strides, sizes), key=lambda stride_sizes: stride_sizes[0])
    if any(finer_stride < coarser_stride and min(coarser_sizes) < min(finer_sizes)
           for (finer_stride, finer_sizes), (coarser_stride, coarser_sizes) in zip(by_stride, by_stride[1:])):
        paired = ", ".join(f"{level!r} (stride {stride}): {list(level_sizes)}"
                           for level, stride, level_sizes in zip(levels, strides, sizes))
        warnings.warn(
            f"{levels_key}={list(levels)} with {sizes_key}={[list(s) for s in sizes]}: detectron2 "
            f"pairs the sizes with the levels in order, so a coarser level gets smaller anchors than a finer one "
            f"({paired} px); list the levels finest first, or the sizes in the levels' order",
            UserWarning, stacklevel=stacklevel)


def check_pooler_levels(key: str, levels: Sequence[str], shapes: Mapping[str, Any], note: str) -> None:
    """The levels an ROI pooler reads (`levels`, given by `key`), against their strides in
    `shapes`: detectron2's ROIPooler takes them as a pyramid, finest first, with each stride
    twice the last, and assigns a box to level i by its size. It asserts only on the first
    and last stride, naming no key ("Sizes of input featuremaps do not form a pyramid!", e.g.
    for p5 ... p2), and pooled [p2, p4, p3, p5] silently, mid-sized boxes from the wrong
    map. ValueError naming the key."""
    strides = [shapes[level].stride for level in levels]
    if strides == [strides[0] * 2 ** index for index in range(len(levels))] and not strides[0] & (strides[0] - 1):
        return
    finest_first = sorted(levels, key=lambda level: shapes[level].stride)
    hint = (f"list them finest first, {finest_first}" if finest_first != list(levels)
            else "no level between the first and the last may be left out")
    raise ValueError(f"{key}={list(levels)}: strides {strides}, where detectron2's ROIPooler takes a pyramid, "
                     f"finest first, each stride twice the last (a power of 2): {hint} ({note})")


def check_fpn_top_block(cfg: CfgNode, backbone: Any) -> None:
    """A detectron2 FPN backbone (from detectron2's own builders; dropblock-det's builders
    check these keys as they build) whose top block reads a feature the FPN does not have: detectron2 builds
    it and fails at the first forward with a bare IndexError (MODEL.FPN.IN_FEATURES up to res4
    under build_resnet_fpn_backbone's max-pooled P6, which reads p5). ValueError naming
    MODEL.FPN.IN_FEATURES, or MODEL.RESNETS.OUT_FEATURES where the block reads a ResNet
    output (build_retinanet_resnet_fpn_backbone's P6/P7, from res5)."""
    from detectron2.modeling import FPN

    from ..modeling.fpn import top_block_input_error

    error = top_block_input_error(backbone) if isinstance(backbone, FPN) else None
    if error is None:
        return
    key = "MODEL.FPN.IN_FEATURES" if backbone.top_block.in_feature.startswith("p") else "MODEL.RESNETS.OUT_FEATURES"
    value = cfg.MODEL.FPN.IN_FEATURES if key == "MODEL.FPN.IN_FEATURES" else cfg.MODEL.RESNETS.OUT_FEATURES
    raise ValueError(f"{key}={list(value)} (MODEL.BACKBONE.NAME={cfg.MODEL.BACKBONE.NAME!r}): the FPN's "
                     f"{error}; detectron2's FPN would fail at the first forward")


# ----------------------------------------------------------------------------- head values
def check_registered_names(cfg: CfgNode) -> None:
    """KeyError naming the key, with the closest registered names, for a component name the
    model reads that is not in its detectron2 registry: MODEL.META_ARCHITECTURE,
    MODEL.BACKBONE.NAME and, where the meta-architecture reads them, the anchor generator,
    proposal generator, ROI heads and segmentation head names, and those of the RPN head and
    of the box, mask (MODEL.MASK_ON) and keypoint (MODEL.KEYPOINT_ON) heads detectron2's ROI
    heads build. detectron2's registry said
    only "No object named 'DropBlockRetinaNett' found in 'META_ARCH' registry!", no key and
    no near name. A user's own component is found once the module registering it is
    imported (as for detectron2's build)."""
    from detectron2.modeling import (
        BACKBONE_REGISTRY,
        META_ARCH_REGISTRY,
        ROI_HEADS_REGISTRY,
        SEM_SEG_HEADS_REGISTRY,
        GeneralizedRCNN,
        PanopticFPN,
        ProposalNetwork,
        RetinaNet,
        SemanticSegmentor,
    )
    from detectron2.modeling.anchor_generator import ANCHOR_GENERATOR_REGISTRY
    from detectron2.modeling.proposal_generator import PROPOSAL_GENERATOR_REGISTRY
    from detectron2.modeling.proposal_generator.rpn import RPN_HEAD_REGISTRY
    from detectron2.modeling.roi_heads import (ROI_BOX_HEAD_REGISTRY, ROI_KEYPOINT_HEAD_REGISTRY,
                                               ROI_MASK_HEAD_REGISTRY, Res5ROIHeads, StandardROIHeads)

    def check(key: str, name: Any, registry: Any) -> Any:
        if name in registry:
            return registry.get(name)
        names = sorted(str(k) for k, _ in registry)
        close = difflib.get_close_matches(str(name), names, n=3, cutoff=0.6)
        raise KeyError(f"{key}={name!r}: not in detectron2's {getattr(registry, '_name', key)} registry"
                       + (f" (did you mean {', '.join(map(repr, close))}?)" if close else "")
                       + f"; registered: {', '.join(names)} (a component of your own: import the module "
                       "that registers it before the config is checked)")

    model = cfg.MODEL
    model_class = check("MODEL.META_ARCHITECTURE", model.META_ARCHITECTURE, META_ARCH_REGISTRY)
    check("MODEL.BACKBONE.NAME", model.BACKBONE.NAME, BACKBONE_REGISTRY)
    if not isinstance(model_class, type):
        return
    rcnn = issubclass(model_class, (GeneralizedRCNN, ProposalNetwork))
    if issubclass(model_class, RetinaNet) or rcnn:
        check("MODEL.ANCHOR_GENERATOR.NAME", model.ANCHOR_GENERATOR.NAME, ANCHOR_GENERATOR_REGISTRY)
    # detectron2's build_proposal_generator takes "PrecomputedProposals" (Fast R-CNN, proposals
    # from DATASETS.PROPOSAL_FILES_*) for no generator: a name outside the registry.
    if rcnn and not (issubclass(model_class, GeneralizedRCNN)
                     and model.PROPOSAL_GENERATOR.NAME == "PrecomputedProposals"):
        check("MODEL.PROPOSAL_GENERATOR.NAME", model.PROPOSAL_GENERATOR.NAME, PROPOSAL_GENERATOR_REGISTRY)
    if rcnn and model.PROPOSAL_GENERATOR.NAME in ("RPN", "RRPN"):
        check("MODEL.RPN.HEAD_NAME", model.RPN.HEAD_NAME, RPN_HEAD_REGISTRY)
    if issubclass(model_class, GeneralizedRCNN):
        heads = check("MODEL.ROI_HEADS.NAME", model.ROI_HEADS.NAME, ROI_HEADS_REGISTRY)
        # The heads detectron2's own ROI heads build by name (C4's Res5ROIHeads has no box or
        # keypoint head); their registries named neither the key nor a near name.
        standard = isinstance(heads, type) and issubclass(heads, StandardROIHeads)
        if standard:
            check("MODEL.ROI_BOX_HEAD.NAME", model.ROI_BOX_HEAD.NAME, ROI_BOX_HEAD_REGISTRY)
        if model.MASK_ON and (standard or isinstance(heads, type) and issubclass(heads, Res5ROIHeads)):
            check("MODEL.ROI_MASK_HEAD.NAME", model.ROI_MASK_HEAD.NAME, ROI_MASK_HEAD_REGISTRY)
        if model.KEYPOINT_ON and standard:
            check("MODEL.ROI_KEYPOINT_HEAD.NAME", model.ROI_KEYPOINT_HEAD.NAME, ROI_KEYPOINT_HEAD_REGISTRY)
    if issubclass(model_class, (SemanticSegmentor, PanopticFPN)):
        check("MODEL.SEM_SEG_HEAD.NAME", model.SEM_SEG_HEAD.NAME, SEM_SEG_HEADS_REGISTRY)


def _reads_heads(cfg: CfgNode) -> Dict[str, bool]:
    """Which of detectron2's heads the model of `cfg` builds, and so which keys it reads:
    "retinanet" (a RetinaNet meta-architecture), "rpn" (detectron2's RPN or RRPN in an R-CNN
    or a ProposalNetwork), "roi" (its StandardROIHeads / Res5ROIHeads family in a
    GeneralizedRCNN), "sem_seg" (a SemanticSegmentor or PanopticFPN). A class of the user's
    own may read the keys otherwise: none of its keys are judged."""
    from detectron2.modeling import (META_ARCH_REGISTRY, GeneralizedRCNN, PanopticFPN, ProposalNetwork, RetinaNet,
                                     SemanticSegmentor)
    from detectron2.modeling.roi_heads import ROI_HEADS_REGISTRY, Res5ROIHeads, StandardROIHeads

    def registered(registry: Any, name: str) -> Optional[type]:
        try:
            found = registry.get(name)
        except KeyError:  # the build names it
            return None
        return found if isinstance(found, type) else None

    model_class = registered(META_ARCH_REGISTRY, cfg.MODEL.META_ARCHITECTURE) or type(None)
    rcnn = issubclass(model_class, GeneralizedRCNN)
    head_class = registered(ROI_HEADS_REGISTRY, cfg.MODEL.ROI_HEADS.NAME) if rcnn else None
    return {
        "retinanet": issubclass(model_class, RetinaNet),
        "rpn": ((rcnn or issubclass(model_class, ProposalNetwork))
                and cfg.MODEL.PROPOSAL_GENERATOR.NAME in ("RPN", "RRPN")),
        "roi": head_class is not None and issubclass(head_class, (StandardROIHeads, Res5ROIHeads)),
        "sem_seg": issubclass(model_class, (SemanticSegmentor, PanopticFPN)),
        "c4": head_class is not None and issubclass(head_class, Res5ROIHeads),
    }


def check_model_values(cfg: CfgNode) -> None:
    """ValueError naming the key for values of the heads the model reads (:func:`_reads_heads`)
    that detectron2 builds and then fails on at the first step or the first image with an
    error naming no key, or trains on silently wrong (NaN or no loss, nothing sampled,
    nothing detected): the matchers, samplers, box regression, anchors, test-time
    thresholds and limits, the R-CNN box head and its pooler, the focal loss, the
    backbone's and the segmentation head's channels and norm. Each value is judged by a
    function that a LazyConfig's model node is checked with too
    (lazy_config_checks.check_lazy_model_values)."""
    reads = _reads_heads(cfg)
    model = cfg.MODEL
    if reads["retinanet"]:
        retinanet = model.RETINANET
        check_matcher_values("MODEL.RETINANET.IOU_THRESHOLDS", retinanet.IOU_THRESHOLDS,
                             "MODEL.RETINANET.IOU_LABELS", retinanet.IOU_LABELS)
        check_box_weights("MODEL.RETINANET.BBOX_REG_WEIGHTS", retinanet.BBOX_REG_WEIGHTS)
        check_box_loss_type("MODEL.RETINANET.BBOX_REG_LOSS_TYPE", retinanet.BBOX_REG_LOSS_TYPE, "retinanet")
        check_focal_loss_gamma("MODEL.RETINANET.FOCAL_LOSS_GAMMA", retinanet.FOCAL_LOSS_GAMMA)
        check_focal_loss_alpha("MODEL.RETINANET.FOCAL_LOSS_ALPHA", retinanet.FOCAL_LOSS_ALPHA)
        # detectron2's RetinaNetHead (DropBlockRetinaNet's too) fails on these with a bare
        # IndexError, ZeroDivisionError or "math domain error".
        if not is_positive_int(retinanet.NUM_CONVS):
            raise ValueError(f"MODEL.RETINANET.NUM_CONVS={retinanet.NUM_CONVS!r}: detectron2's RetinaNetHead needs "
                             "at least one conv per tower (e.g. 4)")
        if not is_real_number(retinanet.PRIOR_PROB) or not 0 < retinanet.PRIOR_PROB < 1:
            raise ValueError(f"MODEL.RETINANET.PRIOR_PROB={retinanet.PRIOR_PROB!r}: expected a probability in (0, 1), "
                             "e.g. 0.01")
        check_score_threshold("MODEL.RETINANET.SCORE_THRESH_TEST", retinanet.SCORE_THRESH_TEST)
        check_nms_threshold("MODEL.RETINANET.NMS_THRESH_TEST", retinanet.NMS_THRESH_TEST)
        check_detections_kept("MODEL.RETINANET.TOPK_CANDIDATES_TEST", retinanet.TOPK_CANDIDATES_TEST)
        check_detections_kept("TEST.DETECTIONS_PER_IMAGE", cfg.TEST.DETECTIONS_PER_IMAGE)
    if reads["rpn"]:
        rpn = model.RPN
        check_matcher_values("MODEL.RPN.IOU_THRESHOLDS", rpn.IOU_THRESHOLDS, "MODEL.RPN.IOU_LABELS", rpn.IOU_LABELS)
        check_sample_count("MODEL.RPN.BATCH_SIZE_PER_IMAGE", rpn.BATCH_SIZE_PER_IMAGE)
        check_positive_fraction("MODEL.RPN.POSITIVE_FRACTION", rpn.POSITIVE_FRACTION)
        check_box_weights("MODEL.RPN.BBOX_REG_WEIGHTS", rpn.BBOX_REG_WEIGHTS,
                          count=5 if model.PROPOSAL_GENERATOR.NAME == "RRPN" else 4)
        check_box_loss_type("MODEL.RPN.BBOX_REG_LOSS_TYPE", rpn.BBOX_REG_LOSS_TYPE, "rpn")
        for key in ("PRE_NMS_TOPK_TRAIN", "PRE_NMS_TOPK_TEST", "POST_NMS_TOPK_TRAIN", "POST_NMS_TOPK_TEST"):
            check_proposal_count(f"MODEL.RPN.{key}", rpn[key])
        check_nms_threshold("MODEL.RPN.NMS_THRESH", rpn.NMS_THRESH)
    if reads["roi"]:
        heads = model.ROI_HEADS
        check_matcher_values("MODEL.ROI_HEADS.IOU_THRESHOLDS", heads.IOU_THRESHOLDS,
                             "MODEL.ROI_HEADS.IOU_LABELS", heads.IOU_LABELS)
        check_sample_count("MODEL.ROI_HEADS.BATCH_SIZE_PER_IMAGE", heads.BATCH_SIZE_PER_IMAGE)
        check_positive_fraction("MODEL.ROI_HEADS.POSITIVE_FRACTION", heads.POSITIVE_FRACTION)
        _check_roi_box_head(cfg)
        check_score_threshold("MODEL.ROI_HEADS.SCORE_THRESH_TEST", heads.SCORE_THRESH_TEST)
        check_nms_threshold("MODEL.ROI_HEADS.NMS_THRESH_TEST", heads.NMS_THRESH_TEST)
        check_detections_kept("TEST.DETECTIONS_PER_IMAGE", cfg.TEST.DETECTIONS_PER_IMAGE)
    if reads["sem_seg"] and model.SEM_SEG_HEAD.NAME not in ("", None):
        check_norm("MODEL.SEM_SEG_HEAD.NORM", model.SEM_SEG_HEAD.NORM)
        check_loss_weight("MODEL.SEM_SEG_HEAD.LOSS_WEIGHT", model.SEM_SEG_HEAD.LOSS_WEIGHT)
    anchors = model.ANCHOR_GENERATOR
    # The rotated generator takes the same sizes, ratios and offset (an aspect ratio of 0 was
    # a bare ZeroDivisionError at its build).
    if anchors.NAME in ("DefaultAnchorGenerator", "RotatedAnchorGenerator"):
        check_anchor_sizes("MODEL.ANCHOR_GENERATOR.SIZES", anchors.SIZES)
        check_anchor_aspect_ratios("MODEL.ANCHOR_GENERATOR.ASPECT_RATIOS", anchors.ASPECT_RATIOS)
        check_anchor_offset("MODEL.ANCHOR_GENERATOR.OFFSET", anchors.OFFSET)
    _check_channel_values(cfg, bottleneck_res5=reads["c4"])
    if reads["retinanet"] and "fpn" in str(model.BACKBONE.NAME).lower():  # its convs have the FPN's width
        check_norm_channels("MODEL.RETINANET.NORM", model.RETINANET.NORM, {"MODEL.FPN.OUT_CHANNELS": model.FPN.OUT_CHANNELS})


def check_matcher_values(thresholds_key: str, thresholds: Any, labels_key: str, labels: Any) -> None:
    """The IoU thresholds and labels of a detectron2 Matcher (a RetinaNet's, an RPN's, the ROI
    heads'): detectron2 asserts on a mismatch naming no key (an empty list: a bare
    IndexError), and builds thresholds above 1 (or below 0), past any IoU: nothing is
    matched as foreground (the ROI heads train no box regression) or everything is."""
    thresholds, labels = list(thresholds), list(labels)
    if not thresholds or any(not is_real_number(t) or not 0 <= t <= 1 for t in thresholds):
        raise ValueError(f"{thresholds_key}={thresholds!r}: expected IoU values in [0, 1], lowest first "
                         "(e.g. [0.4, 0.5])")
    if thresholds != sorted(thresholds):
        raise ValueError(f"{thresholds_key}={thresholds!r}: expected the IoU values lowest first")
    if len(labels) != len(thresholds) + 1 or any(label not in (-1, 0, 1) for label in labels):
        raise ValueError(f"{labels_key}={labels!r}: expected {len(thresholds) + 1} labels, one per IoU "
                         f"interval of {thresholds_key}={thresholds!r}, each 0 (background), 1 "
                         "(foreground) or -1 (ignored)")


def check_sample_count(key: str, batch: Any) -> None:
    """The RPN's or the ROI heads' samples per image: < 1 samples nothing (the RPN's losses
    are NaN from the first step, the ROI heads' 0)."""
    if not is_integer(batch) or batch < 1:
        raise ValueError(f"{key}={batch!r}: expected a number of samples >= 1 per image (nothing would be "
                         "trained on)")


def check_positive_fraction(key: str, fraction: Any) -> None:
    """The foreground fraction of the RPN's or the ROI heads' samples: <= 0 samples no
    foreground (no box regression is trained), and above 1 is no fraction (detectron2 takes
    it as 1, silently)."""
    if not is_real_number(fraction) or not 0 < fraction <= 1:
        raise ValueError(f"{key}={fraction!r}: expected a fraction in (0, 1] of the samples for foreground "
                         "(e.g. 0.25)")


def _box_loss_types(component: str) -> Optional[Tuple[str, ...]]:
    """The BBOX_REG_LOSS_TYPE names the installed detectron2 knows for `component` ("retinanet",
    "rpn", "roi"), read from the source of the losses (v0.6 releases branch in each head,
    later versions in box_regression._dense_box_regression_loss); None where the source
    cannot be read or names none (then detectron2 alone judges the name)."""
    import inspect

    from detectron2.modeling import box_regression
    from detectron2.modeling.meta_arch.retinanet import RetinaNet
    from detectron2.modeling.proposal_generator.rpn import RPN
    from detectron2.modeling.roi_heads.fast_rcnn import FastRCNNOutputLayers

    functions = [getattr(box_regression, "_dense_box_regression_loss", None),
                 {"retinanet": getattr(RetinaNet, "losses", None), "rpn": getattr(RPN, "losses", None),
                  "roi": getattr(FastRCNNOutputLayers, "box_reg_loss", None)}[component]]
    names: List[str] = []
    for function in functions:
        try:
            names += re.findall(r"""loss_type\s*==\s*["'](\w+)["']""", inspect.getsource(function))
        except (OSError, TypeError):
            continue
    return tuple(dict.fromkeys(names)) or None


def check_box_weights(key: str, weights: Any, count: int = 4) -> None:
    """The weights of a head's Box2BoxTransform: the first step failed on a list of another
    length than `count` (4; 5 for rotated boxes: a bare "not enough values to unpack" or
    IndexError), and a weight of 0 divides the box deltas by zero (the RPN's proposals
    infinite: "Training has diverged", or no R-CNN detection)."""
    weights = list(weights)
    if len(weights) != count or any(not is_real_number(w) or w == 0 for w in weights):
        raise ValueError(f"{key}={weights!r}: expected {count} weights, none 0 (x, y, width, "
                         f"height{', angle' if count == 5 else ''}; e.g. {[1.0] * count})")


def check_box_loss_type(key: str, loss_type: Any, component: str) -> None:
    """A head's box regression loss: an unknown name failed at the first step ("Invalid ...
    loss type 'foo'"). The names are the installed detectron2's (:func:`_box_loss_types`)."""
    names = _box_loss_types(component)
    if names is not None and loss_type not in names:
        raise ValueError(f"{key}={loss_type!r}: not a box loss this detectron2 knows; expected one of {list(names)}")


def check_pooler_resolution(key: str, resolution: Any) -> None:
    """The side of the features an R-CNN head pools per box: < 1 built and failed at the
    first step (C4, or -1: a bare torch error) or trained the FPN model's box head on 0
    features, silently."""
    sides = list(resolution) if isinstance(resolution, (list, tuple)) else [resolution]
    if len(sides) not in (1, 2) or not all(is_integer(side) and side >= 1 for side in sides):
        raise ValueError(f"{key}={resolution!r}: expected the side >= 1 of the features pooled for each box "
                         "(e.g. 7; 14 for C4)")


def check_pooler_type(key: str, pooler_type: Any, types: Sequence[str], context: str = "") -> None:
    """An R-CNN head's ROIPooler type: an unknown one was refused by detectron2 naming no key
    ("Unknown pooler type: foo"), and ROIAlignRotated failed at the first step on the
    axis-aligned boxes of a non-rotated head (a bare AssertionError)."""
    if pooler_type not in types:
        raise ValueError(f"{key}={pooler_type!r}: expected one of {list(types)}{context}")


def _check_roi_box_head(cfg: CfgNode) -> None:
    """The R-CNN box head's pooler and, for detectron2's FastRCNNConvFCHead, its layers:
    POOLER_RESOLUTION (:func:`check_pooler_resolution`) and POOLER_TYPE
    (:func:`check_pooler_type`); NUM_CONV / NUM_FC below 0, and CONV_DIM / FC_DIM < 1, failed
    with a bare assertion or torch error, or trained on 0 features (both counts 0: the
    head's assertion, named by its line in check_model_config). Also BBOX_REG_WEIGHTS /
    BBOX_REG_LOSS_TYPE, and the mask and keypoint heads
    (:func:`_check_roi_mask_and_keypoint_heads`)."""
    from detectron2.modeling.roi_heads import ROI_HEADS_REGISTRY, CascadeROIHeads, Res5ROIHeads, RROIHeads

    head = cfg.MODEL.ROI_BOX_HEAD
    heads_class = ROI_HEADS_REGISTRY.get(cfg.MODEL.ROI_HEADS.NAME)
    check_pooler_resolution("MODEL.ROI_BOX_HEAD.POOLER_RESOLUTION", head.POOLER_RESOLUTION)
    rotated = issubclass(heads_class, RROIHeads)
    types = ("ROIAlignRotated",) if rotated else ("ROIAlign", "ROIAlignV2", "ROIPool")
    context = f" for MODEL.ROI_HEADS.NAME={cfg.MODEL.ROI_HEADS.NAME!r}"
    check_pooler_type("MODEL.ROI_BOX_HEAD.POOLER_TYPE", head.POOLER_TYPE, types, context)
    _check_roi_mask_and_keypoint_heads(cfg, own_poolers=not issubclass(heads_class, Res5ROIHeads),
                                       pooler_types=types, context=context)
    check_box_weights("MODEL.ROI_BOX_HEAD.BBOX_REG_WEIGHTS", head.BBOX_REG_WEIGHTS, count=5 if rotated else 4)
    if issubclass(heads_class, CascadeROIHeads):
        _check_cascade_stages(cfg.MODEL.ROI_BOX_CASCADE_HEAD)
    check_box_loss_type("MODEL.ROI_BOX_HEAD.BBOX_REG_LOSS_TYPE", head.BBOX_REG_LOSS_TYPE, "roi")
    if head.NAME != "FastRCNNConvFCHead" or issubclass(heads_class, Res5ROIHeads):
        return  # another head reads its own keys; C4's ROI head has no box head
    counts = {"NUM_CONV": head.NUM_CONV, "NUM_FC": head.NUM_FC}
    for key, count in counts.items():
        if not is_integer(count) or count < 0:
            raise ValueError(f"MODEL.ROI_BOX_HEAD.{key}={count!r}: expected a number of layers >= 0")
    for count_key, dim_key in (("NUM_CONV", "CONV_DIM"), ("NUM_FC", "FC_DIM")):
        if counts[count_key] and not is_positive_int(head[dim_key]):
            raise ValueError(f"MODEL.ROI_BOX_HEAD.{dim_key}={head[dim_key]!r}: expected a number of channels >= 1 "
                             f"for the MODEL.ROI_BOX_HEAD.{count_key}={counts[count_key]} layer(s)")
    if counts["NUM_CONV"]:  # the norm follows the convs only
        check_norm_channels("MODEL.ROI_BOX_HEAD.NORM", head.NORM, {"MODEL.ROI_BOX_HEAD.CONV_DIM": head.CONV_DIM})


def _check_cascade_stages(cascade: CfgNode) -> None:
    """CascadeROIHeads' stages (MODEL.ROI_BOX_CASCADE_HEAD), each a matcher at its IOUS value and a
    box transform of its BBOX_REG_WEIGHTS entry, which replace the box head's: detectron2 builds
    an IoU above 1 (that stage matches no proposal as foreground: it trains no box regression
    and scores every box as background) and a weight of 0 (that stage divides its box deltas by
    zero: infinite boxes at inference), and trains on both without an error. Their counts are
    asserted by detectron2 (named by its line in check_model_config)."""
    ious = list(cascade.IOUS)
    if any(not is_real_number(iou) or not 0 < iou <= 1 for iou in ious):
        raise ValueError(f"MODEL.ROI_BOX_CASCADE_HEAD.IOUS={ious!r}: expected each stage's foreground IoU in (0, 1] "
                         "(e.g. [0.5, 0.6, 0.7]); a stage above 1 matches no proposal as foreground")
    for stage, weights in enumerate(cascade.BBOX_REG_WEIGHTS):
        check_box_weights(f"MODEL.ROI_BOX_CASCADE_HEAD.BBOX_REG_WEIGHTS[{stage}]", weights)


def _check_roi_mask_and_keypoint_heads(cfg: CfgNode, own_poolers: bool, pooler_types: Sequence[str],
                                       context: str) -> None:
    """With MODEL.MASK_ON / KEYPOINT_ON, the pooler of detectron2's mask and keypoint heads where
    they pool their own features (`own_poolers`: not C4's, whose mask head takes the box
    pooler's), as the box head's; and the channels of detectron2's own heads: a
    MaskRCNNConvUpsampleHead CONV_DIM < 1 (every conv and its deconv have that width) or a
    keypoint head CONV_DIMS entry < 1 built a conv of 0 outputs, which failed at the first
    step."""
    model = cfg.MODEL
    for on, head_key in (("MASK_ON", "ROI_MASK_HEAD"), ("KEYPOINT_ON", "ROI_KEYPOINT_HEAD")):
        if not model[on]:
            continue
        head = model[head_key]
        if own_poolers:
            check_pooler_resolution(f"MODEL.{head_key}.POOLER_RESOLUTION", head.POOLER_RESOLUTION)
            check_pooler_type(f"MODEL.{head_key}.POOLER_TYPE", head.POOLER_TYPE, pooler_types, context)
        if head_key == "ROI_MASK_HEAD" and head.NAME == "MaskRCNNConvUpsampleHead":
            check_norm_channels("MODEL.ROI_MASK_HEAD.NORM", head.NORM, {"MODEL.ROI_MASK_HEAD.CONV_DIM": head.CONV_DIM})
        if head_key == "ROI_KEYPOINT_HEAD" and head.NAME == "KRCNNConvDeconvUpsampleHead":
            check_channels("", {"MODEL.ROI_KEYPOINT_HEAD.CONV_DIMS": list(head.CONV_DIMS)})
        if head_key == "ROI_KEYPOINT_HEAD" and not is_positive_int(head.NUM_KEYPOINTS):
            # 0 built a deconv of no output, which failed at the first forward ("select(): index 0
            # out of range"); every keypoint head predicts one heatmap per keypoint.
            raise ValueError(f"MODEL.ROI_KEYPOINT_HEAD.NUM_KEYPOINTS={head.NUM_KEYPOINTS!r}: expected the number of "
                             "keypoints per instance, >= 1 (17 for COCO's person keypoints)")


def check_proposal_count(key: str, value: Any) -> None:
    """The RPN's proposals kept before / after its NMS: a negative count before it failed in
    find_top_rpn_proposals with a bare "narrow(): length must be non-negative" (the test
    one in the evaluation after training), and 0 keeps no proposal: nothing detected
    (test), or ROI heads trained on the ground truth boxes alone (training)."""
    if not is_positive_int(value):
        raise ValueError(f"{key}={value!r}: expected a number of proposals >= 1 per image")


def check_nms_threshold(key: str, value: Any) -> None:
    """A negative NMS IoU threshold suppresses every box that overlaps the best one at all:
    one box per class (or per RPN level) is left, silently. Above 1 nothing is suppressed,
    which detectron2 takes as it takes 1."""
    if not is_real_number(value) or value < 0:
        raise ValueError(f"{key}={value!r}: expected an IoU threshold in [0, 1] (1: no suppression)")


def check_score_threshold(key: str, value: Any) -> None:
    """A test score threshold >= 1 keeps no box (scores are probabilities; detectron2 keeps
    those above it): every evaluation scores 0 AP, silently."""
    if not is_real_number(value) or value >= 1:
        raise ValueError(f"{key}={value!r}: scores are probabilities below 1, so no box is kept; expected a "
                         "threshold below 1 (e.g. 0.05)")


def check_detections_kept(key: str, value: Any) -> None:
    """A limit of 0 boxes per image (detections, a RetinaNet's top-k candidates) keeps none:
    every evaluation scores 0 AP, silently. Negative limits are left: detectron2 reads them
    as "all" (or nearly)."""
    if value == 0:
        raise ValueError(f"{key}=0: no detection is kept, every evaluation scores 0 AP; expected a number "
                         "of boxes >= 1 (e.g. 100)")


def check_focal_loss_gamma(key: str, gamma: Any) -> None:
    """A negative focal-loss gamma weights each anchor by (1 - p)^gamma, infinite for a
    well-classified one."""
    if not is_real_number(gamma) or gamma < 0:
        raise ValueError(f"{key}={gamma!r}: expected a focusing exponent >= 0 (e.g. 2.0; 0: plain cross-entropy)")


def check_focal_loss_alpha(key: str, alpha: Any) -> None:
    """A focal-loss alpha above 1 gives the negatives a negative weight (detectron2's focal
    loss takes alpha in [0, 1], a negative one for no weighting), so the loss falls as they
    are misclassified."""
    if not is_real_number(alpha) or alpha > 1:
        raise ValueError(f"{key}={alpha!r}: expected the foreground weight in [0, 1] (e.g. 0.25; negative: no "
                         "weighting)")


def check_loss_weight(key: str, weight: Any) -> None:
    """A negative loss weight makes the loss fall as the predictions get worse: the model
    unlearns. 0 is left (a head switched off on purpose)."""
    if is_real_number(weight) and weight < 0:
        raise ValueError(f"{key}={weight!r}: a negative weight trains the model away from the labels; expected a "
                         "weight >= 0 (e.g. 1.0)")


def _anchor_values(value: Any) -> List[Any]:
    """The values of DefaultAnchorGenerator's sizes / aspect ratios, given per level or once."""
    return [v for entry in value for v in (entry if isinstance(entry, (list, tuple, ListConfig)) else [entry])]


def check_anchor_sizes(key: str, sizes: Any) -> None:
    """DefaultAnchorGenerator's sizes: one of 0 built empty anchors, and the first step failed
    with "Input boxes to Box2BoxTransform are not valid!". A negative size is left: it makes
    the anchors of its absolute value."""
    if any(not is_real_number(v) or v == 0 for v in _anchor_values(sizes)):
        raise ValueError(f"{key}={_plain_list(sizes)!r}: expected anchor sizes in pixels, none 0 "
                         "(e.g. [[32], [64], [128], [256], [512]])")


def check_anchor_aspect_ratios(key: str, ratios: Any) -> None:
    """DefaultAnchorGenerator's aspect ratios: 0 failed its build with a bare ZeroDivisionError,
    a negative one with "math domain error"."""
    if any(not is_real_number(v) or v <= 0 for v in _anchor_values(ratios)):
        raise ValueError(f"{key}={_plain_list(ratios)!r}: expected height / width ratios > 0 (e.g. [[0.5, 1.0, 2.0]])")


def check_anchor_offset(key: str, offset: Any) -> None:
    """DefaultAnchorGenerator's offset, which it asserts in [0, 1) naming no key."""
    if not is_real_number(offset) or not 0 <= offset < 1:
        raise ValueError(f"{key}={offset!r}: expected the anchors' offset in [0, 1) of a feature cell (0.0: its "
                         "corner, 0.5: its centre)")


def _plain_list(value: Any) -> Any:
    """A LazyConfig list as the plain list the config file writes (yacs values are plain)."""
    return OmegaConf.to_object(value) if OmegaConf.is_config(value) else value


def _check_channel_values(cfg: CfgNode, bottleneck_res5: bool = False) -> None:
    """The channel counts of a ResNet or FPN backbone (by MODEL.BACKBONE.NAME) and the ResNet's
    groups: 0 built a conv of no output that failed at the first step, a negative count
    failed the build with a bare torch error ("Trying to create tensor with negative
    dimension", "groups must be a positive integer"). WIDTH_PER_GROUP is read by bottleneck
    blocks only: ResNet-50 and deeper, or the C4 ROI head's res5 (`bottleneck_res5`)."""
    name = str(cfg.MODEL.BACKBONE.NAME).lower()
    resnets = cfg.MODEL.RESNETS
    keys: Dict[str, Any] = {}
    if "resnet" in name:
        keys.update({"MODEL.RESNETS.STEM_OUT_CHANNELS": resnets.STEM_OUT_CHANNELS,
                     "MODEL.RESNETS.RES2_OUT_CHANNELS": resnets.RES2_OUT_CHANNELS,
                     "MODEL.RESNETS.NUM_GROUPS": resnets.NUM_GROUPS})
        if resnets.DEPTH not in (18, 34) or bottleneck_res5:  # basic blocks have no bottleneck width
            keys["MODEL.RESNETS.WIDTH_PER_GROUP"] = resnets.WIDTH_PER_GROUP
    if "fpn" in name:
        keys["MODEL.FPN.OUT_CHANNELS"] = cfg.MODEL.FPN.OUT_CHANNELS
    for key, value in keys.items():
        if not is_positive_int(value):
            raise ValueError(f"{key}={value!r}: expected an integer >= 1")
    # GN (32 groups) needs every width a multiple of 32: the stages double the stem's, res2's
    # and the bottleneck's (NUM_GROUPS x WIDTH_PER_GROUP) widths, the FPN has one.
    if "resnet" in name:
        widths = {key: value for key, value in keys.items() if not key.endswith(("NUM_GROUPS", "WIDTH_PER_GROUP"))}
        if "MODEL.RESNETS.WIDTH_PER_GROUP" in keys:
            widths["MODEL.RESNETS.NUM_GROUPS x WIDTH_PER_GROUP"] = resnets.NUM_GROUPS * resnets.WIDTH_PER_GROUP
        widths.pop("MODEL.FPN.OUT_CHANNELS", None)
        check_norm_channels("MODEL.RESNETS.NORM", resnets.NORM, widths)
    if "fpn" in name:
        check_norm_channels("MODEL.FPN.NORM", cfg.MODEL.FPN.NORM, {"MODEL.FPN.OUT_CHANNELS": cfg.MODEL.FPN.OUT_CHANNELS})


def check_norm_channels(norm_key: str, norm: Any, channels: Dict[str, Any]) -> None:
    """A norm name detectron2's get_norm knows (:func:`check_norm`) and, for "GN", channel
    counts its 32 groups divide: GroupNorm refused another at the build with a bare
    "num_channels (48) must be divisible by num_groups (32)", and a bad name was a bare
    KeyError ('GNN'). ValueError naming the channel key, its value and the norm's key."""
    check_norm(norm_key, norm)
    check_channels("", channels)
    try:
        check_channels(norm, channels)
    except ValueError as error:
        raise ValueError(f"{error} ({norm_key}={norm!r})") from None


def check_rcnn_features(cfg: CfgNode) -> None:
    """MODEL.RPN.IN_FEATURES and MODEL.ROI_HEADS.IN_FEATURES of an R-CNN (a GeneralizedRCNN or
    ProposalNetwork MODEL.META_ARCHITECTURE, with detectron2's RPN and ROI heads) against the
    outputs of the backbone MODEL.BACKBONE.NAME builds (on the meta device): detectron2 fails
    on one it lacks with a bare KeyError (e.g. 'res4': a RetinaNet config given
    GeneralizedRCNN, whose RPN and ROI heads default to the C4 model's res4); and the RPN's
    anchor sizes and aspect ratios against its levels (check_anchor_levels). ValueError
    naming the key and the backbone."""
    from detectron2.modeling import META_ARCH_REGISTRY, GeneralizedRCNN, ProposalNetwork, build_backbone
    from detectron2.modeling.roi_heads import ROI_HEADS_REGISTRY, Res5ROIHeads, StandardROIHeads

    from ..config import check_anchor_levels, check_feature_names
    from ..modeling.roi_heads import check_c4_head_features

    try:
        model_class = META_ARCH_REGISTRY.get(cfg.MODEL.META_ARCHITECTURE)
    except KeyError:  # detectron2's registry names it, at the build
        return
    if not (isinstance(model_class, type) and issubclass(model_class, (GeneralizedRCNN, ProposalNetwork))):
        return
    head_class = None
    if issubclass(model_class, GeneralizedRCNN):
        try:
            head_class = ROI_HEADS_REGISTRY.get(cfg.MODEL.ROI_HEADS.NAME)
        except KeyError:
            pass
        if not (isinstance(head_class, type) and issubclass(head_class, (StandardROIHeads, Res5ROIHeads))):
            head_class = None  # a head of the user's own may read other keys
    rpn = cfg.MODEL.PROPOSAL_GENERATOR.NAME in ("RPN", "RRPN")
    if not rpn and head_class is None:
        return
    backbone = build_on_meta_device(lambda: build_backbone(cfg))
    if backbone is None:
        return
    check_fpn_top_block(cfg, backbone)
    shapes = backbone.output_shape()
    outputs = list(shapes)
    note = f"MODEL.BACKBONE.NAME={cfg.MODEL.BACKBONE.NAME!r}"
    if rpn:
        levels = check_feature_names("MODEL.RPN.IN_FEATURES", cfg.MODEL.RPN.IN_FEATURES, outputs,
                                     "the backbone's outputs", note=note)
        check_anchor_levels(cfg, "MODEL.RPN.IN_FEATURES", levels)
        warn_anchor_sizes_against_strides(cfg, "MODEL.RPN.IN_FEATURES", levels, shapes)
    if head_class is not None and issubclass(head_class, Res5ROIHeads):
        check_c4_head_features(cfg, outputs)
        if cfg.MODEL.RESNETS.RES5_DILATION != 1:
            # The C4 head builds res5 itself and reads no dilation: it trained undilated, silently.
            raise ValueError(
                f"MODEL.RESNETS.RES5_DILATION={cfg.MODEL.RESNETS.RES5_DILATION!r}: MODEL.ROI_HEADS.NAME="
                f"{cfg.MODEL.ROI_HEADS.NAME!r} builds res5 itself, undilated (it reads no RES5_DILATION); a "
                "dilated res5 is detectron2's DC5 model (Base-RCNN-DilatedC5.yaml: the backbone to res5, "
                "StandardROIHeads), else set it to 1")
    elif head_class is not None:
        levels = check_feature_names("MODEL.ROI_HEADS.IN_FEATURES", cfg.MODEL.ROI_HEADS.IN_FEATURES, outputs,
                                     "the backbone's outputs", note=note)
        check_pooler_levels("MODEL.ROI_HEADS.IN_FEATURES", levels, shapes, note)


def check_stock_retinanet_norm(cfg: CfgNode) -> None:
    """ValueError naming MODEL.RETINANET.NORM when MODEL.META_ARCHITECTURE is detectron2's own
    "RetinaNet" and this detectron2's RetinaNetHead cannot build that norm (GN on v0.6,
    which builds GroupNorm(32, 1): a bare "num_channels (1) must be divisible by
    num_groups (32)"), pointing to DropBlockRetinaNet, whose head builds it everywhere."""
    from ..modeling.retinanet import stock_retinanet_head_error

    norm = cfg.MODEL.RETINANET.NORM
    if cfg.MODEL.META_ARCHITECTURE != "RetinaNet" or not norm:
        return
    error = stock_retinanet_head_error(norm)
    if error is not None:
        raise ValueError(
            f"MODEL.RETINANET.NORM={norm!r}: this detectron2's own RetinaNetHead (MODEL.META_ARCHITECTURE "
            f"'RetinaNet') cannot build it ({type(error).__name__}: {error}; detectron2 v0.6 builds GN "
            "for 1 channel); use MODEL.META_ARCHITECTURE 'DropBlockRetinaNet', whose head builds it on "
            "every version (with MODEL.DROPBLOCK.HEAD off it is RetinaNet's head)")


def is_meta_device_limit(error: BaseException) -> bool:
    """Whether `error` is what the meta device cannot do, not a fault of the config: an
    operator with no meta kernel (NotImplementedError), or a tensor's value read in a
    component's __init__ (detectron2's ViT, MViT and Swin take their drop-path rates with
    `.item()`: "Tensor.item() cannot be called on meta tensors")."""
    return isinstance(error, NotImplementedError) or (
        isinstance(error, RuntimeError) and "meta tensor" in str(error))


def build_on_meta_device(build: Callable[[], torch.nn.Module]) -> Optional[torch.nn.Module]:
    """build() on PyTorch's meta device (shapes only, no memory or initialisation cost); None
    where it cannot be (torch < 2.0 has no device context; a component whose __init__ the
    meta device cannot run: `is_meta_device_limit`): the real build then makes the same
    checks."""
    if not hasattr(torch.device("meta"), "__enter__"):
        return None
    try:
        with torch.device("meta"):
            return build()
    except Exception as error:  # noqa: BLE001 - only the meta device's limits are looked into
        if is_meta_device_limit(error):
            return None
        raise


def meta_model(cfg: CfgNode) -> Optional[torch.nn.Module]:
    """The model `cfg` describes, built on the meta device (:func:`build_on_meta_device`)."""
    from detectron2.modeling import META_ARCH_REGISTRY

    return build_on_meta_device(lambda: META_ARCH_REGISTRY.get(cfg.MODEL.META_ARCHITECTURE)(cfg))


def check_scaled_to_world_size(cfg: CfgNode) -> None:
    """With SOLVER.REFERENCE_WORLD_SIZE the trainer rescales the batch, the LR and the
    iterations (the DropBlock ramp's too) to this run's processes: ValueError naming the key
    when what it would train cannot be (detectron2's assertion, zero iterations, a ramp that
    never leaves 1.0 once rounded, SOLVER.STEPS that round onto each other or MAX_ITER), before
    the run's files move (the trainer scales the config only when it is built, after they
    have moved)."""
    from .trainer import DropBlockTrainer  # not at the top: trainer.py imports this module

    reference, world = cfg.SOLVER.REFERENCE_WORLD_SIZE, comm.get_world_size()
    if not reference or reference == world:
        return
    scaling = (f"(SOLVER.REFERENCE_WORLD_SIZE={reference} scales the batch, the LR and the iterations "
               f"to the {world} processes of this run)")
    if isinstance(reference, bool) or not isinstance(reference, int) or reference < 0:
        # Else named as a batch "not divisible" by it (4 by -2), which it is.
        raise ValueError(f"SOLVER.REFERENCE_WORLD_SIZE={reference!r}: expected the number of processes the "
                         "config was set for (0: no scaling)")
    if cfg.SOLVER.IMS_PER_BATCH % reference:
        raise ValueError(f"SOLVER.IMS_PER_BATCH={cfg.SOLVER.IMS_PER_BATCH!r} is not divisible by "
                         f"SOLVER.REFERENCE_WORLD_SIZE={reference!r}, the processes it was set for {scaling}")
    scaled = DropBlockTrainer.auto_scale_workers(cfg, world)
    if scaled.SOLVER.MAX_ITER < 1:
        raise ValueError(f"SOLVER.MAX_ITER={cfg.SOLVER.MAX_ITER} becomes {scaled.SOLVER.MAX_ITER} iterations {scaling}")
    try:
        validate_dropblock_config(scaled)
        check_lr_scheduler(scaled)  # STEPS and WARMUP_ITERS are scaled too, and rounded
    except ValueError as error:
        raise ValueError(f"{error}, once scaled to SOLVER.MAX_ITER={scaled.SOLVER.MAX_ITER} {scaling}") from None


def checked_device(key: str, value: Any) -> torch.device:
    """`value` as a torch.device; ValueError naming `key` where torch does not know it or
    sees no such CUDA device (detectron2 would fail moving the model there, with a message
    that names no key, after the run's files are written)."""
    try:
        device = torch.device(value)
    except (RuntimeError, TypeError):
        raise ValueError(f"{key}={value!r}: not a device torch knows (e.g. 'cuda', 'cpu')") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"{key}={value!r}: torch sees no CUDA device here; use 'cpu'")
    if device.type == "cuda" and device.index is not None and device.index >= torch.cuda.device_count():
        raise ValueError(f"{key}={value!r}: torch sees {torch.cuda.device_count()} CUDA device(s) here")
    return device


def check_training_processes_device(cfg: CfgNode, device: torch.device, world: Optional[int] = None) -> None:
    """ValueError naming MODEL.DEVICE when this run trains in several processes (--num-gpus,
    --num-machines) on a device other than CUDA (:func:`check_ddp_device`; detectron2 main
    launches such processes, v0.6's launch asserts CUDA first). An evaluation (no DDP) runs
    there. `world`: the processes, where this is not one of them (the tools' check before
    the launch); this process's world by default."""
    check_ddp_device("MODEL.DEVICE", cfg.MODEL.DEVICE, device, "on CUDA (MODEL.DEVICE cuda)", world)


def check_ddp_device(key: str, value: Any, device: torch.device, other_ways: str,
                     world: Optional[int] = None) -> None:
    """ValueError naming `key` (its `value`: `device`) when this run trains in several
    processes (`world`; this process's world by default) on a device other than CUDA:
    detectron2's trainers put each process's model in DistributedDataParallel on that
    process's GPU (`create_ddp_model` gives it `device_ids=[local rank]`), which a CPU model
    fails at with torch's own error, after the data loader is built and config.yaml written.
    `other_ways`: what else the user may do besides training in one process."""
    world = comm.get_world_size() if world is None else world
    if world > 1 and device.type != "cuda":
        raise ValueError(f"{key}={value!r} with {world} training processes (--num-gpus x --num-machines): "
                         "detectron2 gives each process's model its GPU in DistributedDataParallel "
                         f"(device_ids=[local rank]), which a model on {device.type} cannot take; train in one "
                         f"process (--num-gpus 1) or {other_ways}")


def check_training_visualization(cfg: CfgNode) -> None:
    """ValueError naming VIS_PERIOD when an R-CNN (a GeneralizedRCNN, which alone of detectron2's
    models draws its proposals every VIS_PERIOD iterations) would visualize with
    detectron2.utils.visualizer and that cannot be imported here (OpenCV, cv2, is no dependency
    of detectron2's wheel or source build): the first step failed with ModuleNotFoundError."""
    import importlib

    from detectron2.modeling import META_ARCH_REGISTRY, GeneralizedRCNN

    if not is_integer(cfg.VIS_PERIOD) or cfg.VIS_PERIOD <= 0 or cfg.MODEL.META_ARCHITECTURE not in META_ARCH_REGISTRY:
        return
    if not issubclass(META_ARCH_REGISTRY.get(cfg.MODEL.META_ARCHITECTURE), GeneralizedRCNN):
        return
    try:
        importlib.import_module("detectron2.utils.visualizer")
    except ImportError as error:
        missing = error.name or str(error)
        package = {"cv2": "opencv-python"}.get(missing, missing)
        raise ValueError(f"VIS_PERIOD={cfg.VIS_PERIOD!r}: the R-CNN draws its training proposals with "
                         f"detectron2.utils.visualizer, which needs the module {missing!r}, not installed here: "
                         f"pip install {package}, or set VIS_PERIOD 0") from None


# numpy's largest seed: detectron2's default_setup seeds numpy with SEED + the process's rank.
_MAX_SEED = 2**32 - 1


def check_seed(key: str, seed: Any) -> None:
    """ValueError naming `key` for a seed that detectron2's default_setup cannot seed numpy
    with in every process (SEED + rank above 2**32 - 1): numpy refused it there, after
    config.yaml was written into the output folder. A negative seed is detectron2's "random"."""
    world = comm.get_world_size()
    if is_integer(seed) and seed + world - 1 > _MAX_SEED:
        raise ValueError(f"{key}={seed!r}: expected a seed from 0 to {_MAX_SEED - world + 1} (numpy's largest, "
                         f"{_MAX_SEED}, less the {world} process(es) whose rank detectron2 adds to it), or -1 for a "
                         "random one")


def check_config_before_run(cfg: CfgNode, train: bool = True, check_weights: bool = True,
                            check_files: bool = True,
                            test_time_augmentation: bool = True) -> Optional[torch.nn.Module]:
    """Every check of `cfg` that loads no data: MODEL.DROPBLOCK values, the model (built on
    the meta device), the DATASETS.TEST names (and with `train` DATASETS.TRAIN's: an
    evaluation needs no training data) with, if `check_files`, their files, and their
    proposal files with MODEL.LOAD_PROPOSALS (:func:`check_proposal_files`), an evaluator
    for every DATASETS.TEST entry, with `train` DATASETS.TRAIN sets the model can train on, MODEL.DEVICE (:func:`checked_device`) and
    DATALOADER.NUM_WORKERS, with `train` MODEL.DEVICE for IMPL "triton" (check_impl_device)
    and for SOLVER.AMP and several training processes (check_training_processes_device),
    the optimizer and the LR schedule, and the SOLVER / INPUT values,
    with `check_weights` MODEL.WEIGHTS (with `train` read: :func:`checkpoint.check_weights_readable`), and the TEST.AUG values (refused with TEST.AUG.ENABLED
    where the caller runs no test-time augmentation: not `test_time_augmentation`). The tools
    call it first: each error names its key, and comes before data loading or anything is
    written to OUTPUT_DIR. Returns the model it built on the meta device (None where it
    could not)."""
    max_iter = cfg.SOLVER.MAX_ITER
    if train and (isinstance(max_iter, bool) or not isinstance(max_iter, int) or max_iter < 1):
        # Before the DropBlock checks, whose ramp would be blamed for it.
        raise ValueError(f"SOLVER.MAX_ITER={max_iter!r}: expected a number of iterations >= 1")
    validate_dropblock_config(cfg)
    model = check_model_config(cfg)
    check_dataset_names(cfg, check_files=check_files, keys=("TRAIN", "TEST") if train else ("TEST",))
    check_proposal_files(cfg, keys=("TRAIN", "TEST") if train else ("TEST",))
    check_evaluator_types(cfg)
    if train:
        check_training_sets(cfg)
    check_dataset_classes(cfg, keys=("TRAIN", "TEST") if train else ("TEST",))
    check_keypoint_counts(cfg, keys=("TRAIN", "TEST") if train else ("TEST",))
    output_dir = cfg.OUTPUT_DIR
    if not isinstance(output_dir, str) or not output_dir:
        # archive_previous_run would fail on it with a bare "FileNotFoundError: ''".
        raise ValueError(f"OUTPUT_DIR={output_dir!r}: expected a folder (e.g. './output')")
    check_test_inputs(cfg, test_time_augmentation)
    check_seed("SEED", cfg.SEED)
    device = checked_device("MODEL.DEVICE", cfg.MODEL.DEVICE)
    workers = cfg.DATALOADER.NUM_WORKERS  # both loaders' (torch's DataLoader refuses it, late)
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 0:
        raise ValueError(f"DATALOADER.NUM_WORKERS={workers!r}: expected a number of loader processes >= 0")
    if train:
        if cfg.SOLVER.AMP.ENABLED and device.type != "cuda":
            # detectron2's AMPTrainer asserts CUDA at its first step (v0.6 and main).
            raise ValueError(f"SOLVER.AMP.ENABLED=True needs a CUDA MODEL.DEVICE, got {cfg.MODEL.DEVICE!r}")
        check_impl_device(cfg)
        check_training_visualization(cfg)
        check_lr_scheduler(cfg, check_optimizer(cfg, model))
        check_train_inputs(cfg)
        check_scaled_to_world_size(cfg)
        check_training_processes_device(cfg, device)
    if check_weights:
        # A training's starting weights are read now (an evaluation's are read by
        # check_eval_checkpoint, which loads them strictly).
        check_weights_path(cfg, read=train)
    if train and check_files:
        check_json_training_annotations(
            {flag: (f"{key}=True", f"set {key} False") for flag, key in ANNOTATION_FLAG_KEYS.items()
             if cfg.MODEL[key.split(".")[1]]},
            [("DATASETS.TRAIN", name) for name in cfg.DATASETS.TRAIN])
        # What the evaluations after training will read (detectron2 loads the test sets then).
        check_evaluation_files(list(cfg.DATASETS.TEST))
    return model


# ----------------------------------------------------------------------------- --resume
def check_resume_checkpoint(cfg: CfgNode, path: str, model: Optional[torch.nn.Module] = None) -> None:
    """Before data loading, the checkpoint a --resume continues from: RuntimeError naming it
    when it cannot be read; CheckpointMismatchError naming the keys when it does not fit the
    model `cfg` builds (detectron2 resumes non-strictly: a changed model fails at the first
    step with a bare torch shape error, or trains freshly initialised layers); ValueError
    naming SOLVER.MAX_ITER when the checkpoint has reached it (nothing would train, and the
    earlier model would only be evaluated again as if it were this run's); ValueError when
    its optimizer state does not fit the config's optimizer (:func:`check_resume_optimizer`),
    or when SOLVER.AMP.ENABLED resumes a checkpoint saved without AMP's grad scaler.
    `model`: the config's model if already built (e.g. on the meta device by
    check_config_before_run)."""
    from .trainer import DropBlockTrainer  # not at the top: trainer.py imports this module

    if model is None:
        model = meta_model(cfg)  # None: the real load checks for itself
    # As the trainer will run it: REFERENCE_WORLD_SIZE scales MAX_ITER and BASE_LR.
    scaled = DropBlockTrainer.auto_scale_workers(cfg, comm.get_world_size())
    max_iter = scaled.SOLVER.MAX_ITER
    checkpoint = check_checkpoint_fits(
        model, path, "--resume", "resume continues a run with its own config; start a fresh "
        "run or use another OUTPUT_DIR for a changed model", ("SOLVER.MAX_ITER", max_iter))
    if model is not None:
        check_resume_optimizer(checkpoint, check_optimizer(scaled, model), path)
    if cfg.SOLVER.AMP.ENABLED:
        check_resume_grad_scaler(checkpoint, path, "SOLVER.AMP.ENABLED")
