#!/usr/bin/env python
"""Write the config of the stock detectron2 model that a dropblock-det model is at
inference, to serve or export it with detectron2's own tools where dropblock-det is not
installed (see dropblock_det/deploy.py):

    python tools/export_stock_config.py --config-file output/main_job/config.yaml \\
        --output output/main_job/stock_config.yaml MODEL.WEIGHTS output/main_job/model_final.pth

then, for example, from a detectron2 checkout (no dropblock-det import):

    python tools/deploy/export_model.py --config-file output/main_job/stock_config.yaml \\
        --export-method scripting --format torchscript --output exported MODEL.DEVICE cpu

A LazyConfig (a .py config, or the config.yaml a LazyConfig run saved) is written as a
LazyConfig YAML file (dropblock_det.deploy.lazy_stock_config), the weights given as
`train.init_checkpoint=...`:

    python tools/export_stock_config.py --config-file output/lazy_run/config.yaml \\
        --output output/lazy_run/stock_config.yaml train.init_checkpoint=output/lazy_run/model_final.pth

Before anything is written the config is read back into a fresh detectron2 config
(LazyConfig.load for a LazyConfig), its model is built (on PyTorch's meta device) and must
have the dropblock-det model's state_dict keys and shapes, and the checkpoint MODEL.WEIGHTS
(train.init_checkpoint) names (if any, and local) must load strictly into it. An existing
--output file is never overwritten.
"""
import argparse
import os
import sys
import tempfile
from typing import Any, Callable, List, Optional, Sequence, Tuple

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # tool_args.py, beside this file
from tool_args import checks_passed, parse_tool_args, run_tool  # noqa: E402


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config-file", required=True, help="the dropblock-det config the model was trained with")
    p.add_argument("--output", required=True, help="YAML file to write (must not exist)")
    p.add_argument("opts", nargs=argparse.REMAINDER, default=[],
                   help="config overrides: KEY VALUE pairs (e.g. MODEL.WEIGHTS w.pth), or "
                        "key=value for a LazyConfig (e.g. train.init_checkpoint=w.pth)")
    return parse_tool_args(p, argv)


def read_stock_config(path: str, deeplab: bool) -> Any:  # a CfgNode
    """`path` read the way stock detectron2 reads a config file (`empty_stock_config`, then
    merge_from_file)."""
    from dropblock_det.deploy import empty_stock_config

    cfg = empty_stock_config(deeplab)
    cfg.merge_from_file(path)
    return cfg


def check_stock_model(ours: Any, theirs: Any, weights: str, weights_key: str) -> bool:
    """RuntimeError unless the stock model `theirs` has the state_dict keys and shapes of the
    dropblock-det model `ours` (both built on the meta device, None where they could not
    be); CheckpointMismatchError naming `weights_key` unless `weights` (a local file) loads
    strictly into it. Whether the weights were checked (not for a URL, an empty value, or
    where the model cannot be built on the meta device)."""
    from dropblock_det.engine.checkpoint import (
        CheckpointMismatchError,
        is_url,
        read_checkpoint,
        state_dict_problems,
        weights_as_loaded,
    )

    if ours is not None and theirs is not None:
        problems = state_dict_problems(theirs, ours.state_dict())
        if problems:  # a component of this package whose stock counterpart differs: a bug
            raise RuntimeError("the stock model does not have the dropblock-det model's "
                               "parameters: " + "; ".join(problems))
    if not weights or is_url(weights) or theirs is None:
        return False
    # As detectron2's checkpointer loads them (a .pkl marked matching_heuristics renamed first).
    checkpoint = read_checkpoint(weights, given_by=f"{weights_key}={weights!r}")
    problems = state_dict_problems(theirs, weights_as_loaded(theirs, checkpoint))
    if problems:
        raise CheckpointMismatchError(
            f"{weights_key}={weights!r} does not load strictly into the stock model of "
            f"this config: " + "; ".join(problems))
    return True


def check_stock_config(cfg: Any, stock: Any) -> bool:  # CfgNodes
    """check_stock_model for yacs configs: the models of `cfg` and `stock`, MODEL.WEIGHTS."""
    from dropblock_det.engine.config_checks import meta_model

    return check_stock_model(meta_model(cfg), meta_model(stock), stock.MODEL.WEIGHTS, "MODEL.WEIGHTS")


def _weights_advice(weights: str, key: str, checked: bool, given: bool = True) -> List[str]:
    # A run's config names the weights training started from (empty, an ImageNet URL, or
    # the checkpoint a fine-tuning started from), not the trained ones: say so instead of
    # writing a config of an untrained model.
    if not weights:
        return [f"{key} is empty: the stock model would start from random weights; "
                f"give the trained ones: {key}{' ' if key.isupper() else '='}<run>/model_final.pth"]
    if not checked:
        return [f"{key}={weights!r} was not checked (a URL is not fetched here): make sure it is "
                "the trained model's checkpoint, not the initialisation"]
    if not given:
        return [f"{key}={weights!r} is the config file's own, which in a run's config is the checkpoint "
                "training started from, not the trained model: to deploy the run's, give "
                f"{key}{' ' if key.isupper() else '='}<run>/model_final.pth"]
    return []


def _opt_given(opts: Sequence[str], key: str) -> bool:
    """Whether the command-line opts set `key` (yacs `KEY VALUE` pairs or LazyConfig `key=value`)."""
    if key.isupper():
        return key in opts[0::2]
    return any(opt.lstrip("+").split("=", 1)[0] == key for opt in opts)


def _aspp_pooling_advice(size: str, fix: str) -> str:
    # DropBlockASPP pools globally where the stock ASPP's fixed kernel does not fit.
    return (f"Its ASPP pools with the fixed kernel of {size} (at the backbone's output stride) and "
            "raises on any input whose feature map is not a multiple of it (most PASCAL VOC images "
            "at their own size), where the DropBlock model pools globally. For inputs of any size, "
            f"write the config again with {fix} (global pooling everywhere; the DropBlock model keeps "
            "the stock pooling on maps that are a multiple of the crop's).")


def _dataset_advice(key: str, names: Sequence[str], tool: str = "train_net.py") -> List[str]:
    # detectron2's --eval-only with the written config stopped at a set the plugin registers
    # with a bare "Dataset '...' is not registered" traceback, where the config was said to
    # evaluate with detectron2's tools.
    from dropblock_det.deploy import datasets_not_registered_by_detectron2

    from detectron2.data import MetadataCatalog

    found = datasets_not_registered_by_detectron2(names)
    if not found:
        return []
    # A segmentation set is no COCO json: register_coco_instances would give a detection set,
    # and SemSegEvaluator reads stuff_classes and ignore_label from the metadata.
    if any(MetadataCatalog.get(name).get("evaluator_type") == "sem_seg" for name, _ in found):
        how = ("DatasetCatalog.register with a loader of dicts with file_name and "
               "sem_seg_file_name, such as detectron2's load_sem_seg, and MetadataCatalog's "
               "stuff_classes, ignore_label and evaluator_type='sem_seg'")
    else:
        how = "detectron2's register_coco_instances"
    return [f"{key} names sets detectron2 alone does not register: "
            + ", ".join(f"{name!r} (registered by {module})" for name, module in found)
            + f". detectron2's {tool} --eval-only stops at them with \"Dataset ... is not "
            f"registered\": register them in the process that evaluates first (e.g. {how}), or "
            "give a set detectron2 registers. Serving the model needs no dataset; export_model.py "
            "does with --sample-image."]


def advice(cfg: Any, stock: Any, checked: bool, weights_given: bool = True) -> List[str]:
    """What the user should know about the written config `stock` of `cfg` (CfgNodes);
    `weights_given`: whether MODEL.WEIGHTS was given on the command line."""
    from dropblock_det.deploy import needs_deeplab_project

    lines = _weights_advice(stock.MODEL.WEIGHTS, "MODEL.WEIGHTS", checked, weights_given)
    lines += _dataset_advice("DATASETS.TEST", stock.DATASETS.TEST)
    if cfg.MODEL.SEM_SEG_HEAD.NAME == "DropBlockDeepLabV3PlusHead" and stock.INPUT.CROP.ENABLED:
        lines.append(_aspp_pooling_advice(f"INPUT.CROP.SIZE={tuple(stock.INPUT.CROP.SIZE)}",
                                          "INPUT.CROP.ENABLED False"))
    if stock.SOLVER.LR_SCHEDULER_NAME == "WarmupPolyLR" and "POLY_LR_POWER" not in stock.SOLVER:
        # Left out with the DeepLab project's keys: detectron2's own train_net.py refused the
        # file's schedule ("Unknown LR scheduler"), and the DeepLab project's read its defaults.
        lines.append(
            f"SOLVER.LR_SCHEDULER_NAME 'WarmupPolyLR' is not detectron2's (evaluating and serving do not "
            f"read it): its train_net.py cannot train from this file, and detectron2's projects/DeepLab "
            f"train_net.py trains it with its defaults SOLVER.POLY_LR_POWER 0.9 and POLY_LR_CONSTANT_ENDING "
            f"0.0 (this file has no DeepLab keys; the run's: {cfg.SOLVER.get('POLY_LR_POWER')} and "
            f"{cfg.SOLVER.get('POLY_LR_CONSTANT_ENDING')}); to train on, use dropblock-det")
    if needs_deeplab_project(stock):
        lines.append(
            "It uses detectron2's DeepLab project: read it with get_cfg(), "
            "detectron2.projects.deeplab.add_deeplab_config(cfg), then merge_from_file, and "
            "import detectron2.projects.deeplab before building the model. detectron2's "
            "tools/deploy/export_model.py reads configs with get_cfg() alone and cannot read "
            "it: trace the model from such a script (detectron2.export.TracingAdapter).")
    return lines


def _absolute_weights(weights: str) -> str:
    from dropblock_det.engine.checkpoint import is_url

    # detectron2 resolves a relative path against the reader's working directory, not the
    # file's folder: absolute, it loads from anywhere (e.g. a detectron2 checkout).
    return os.path.abspath(weights) if weights and not is_url(weights) else weights


def stock_output_dir(output_dir: str) -> str:
    """The output folder written into a stock config: `<the run's>/stock`. detectron2's
    tools (train_net.py / lazyconfig_train_net.py --eval-only) write their config.yaml and
    evaluation into it, which in the run's own folder would replace the run's config.yaml
    (needed to resume it) and its evaluation. Absolute, as MODEL.WEIGHTS: detectron2 resolves
    a relative one against the reader's working folder (e.g. a detectron2 checkout, where
    the evaluation then landed instead of beside the run)."""
    return os.path.join(os.path.abspath(output_dir), "stock")


def check_output_outside_detectron2s_files(output: str, output_dir: str, key: str) -> None:
    """ValueError naming --output where detectron2's tools, run with the written config,
    would replace it: their config.yaml in `output_dir`."""
    if os.path.abspath(output) == os.path.abspath(os.path.join(output_dir, "config.yaml")):
        raise ValueError(f"--output {output!r} is the config.yaml detectron2's tools write into the "
                         f"written config's {key}={output_dir!r} (replacing it at their first run): "
                         "give another file name")


def _output_dir_advice(key: str, value: str) -> str:
    return (f"{key} is {value}: detectron2's tools write their config.yaml and evaluation "
            "there, not over the training run's")


# What changes the model's outputs at inference without changing its parameters, so that the
# strict load of the checkpoint cannot see it.
_INFERENCE_KEYS = ("MODEL.", "INPUT.MIN_SIZE_TEST", "INPUT.MAX_SIZE_TEST", "INPUT.FORMAT", "INPUT.CROP.", "TEST.")
_NOT_INFERENCE_KEYS = ("MODEL.WEIGHTS", "MODEL.DEVICE", "MODEL.DROPBLOCK.", "TEST.EVAL_PERIOD",
                       "TEST.EXPECTED_RESULTS", "TEST.PRECISE_BN.") + tuple(
    # The heads' training-only keys: sampling, matching to the ground truth, the losses and
    # the training top-k. detectron2 reads them in its training branches alone, so an R-CNN
    # run's POST_NMS_TOPK_TRAIN was named as changing what the model does at inference.
    f"MODEL.{head}.{key}" for head, keys in (
        ("RPN", ("BATCH_SIZE_PER_IMAGE", "POSITIVE_FRACTION", "PRE_NMS_TOPK_TRAIN", "POST_NMS_TOPK_TRAIN",
                 "LOSS_WEIGHT", "BBOX_REG_LOSS_TYPE", "BBOX_REG_LOSS_WEIGHT", "SMOOTH_L1_BETA", "IOU_THRESHOLDS",
                 "IOU_LABELS", "BOUNDARY_THRESH")),
        ("ROI_HEADS", ("BATCH_SIZE_PER_IMAGE", "POSITIVE_FRACTION", "IOU_THRESHOLDS", "IOU_LABELS",
                       "PROPOSAL_APPEND_GT")),
        ("ROI_BOX_HEAD", ("BBOX_REG_LOSS_TYPE", "BBOX_REG_LOSS_WEIGHT", "SMOOTH_L1_BETA", "USE_FED_LOSS",
                          "FED_LOSS_NUM_CLASSES", "FED_LOSS_FREQ_WEIGHT_POWER")),
        ("RETINANET", ("IOU_THRESHOLDS", "IOU_LABELS", "FOCAL_LOSS_GAMMA", "FOCAL_LOSS_ALPHA", "SMOOTH_L1_LOSS_BETA",
                       "BBOX_REG_LOSS_TYPE")),
    ) for key in keys)


# The LazyConfig nodes whose values change the model's outputs at inference (the test loader's
# mapper: resizing, input format); the regularizer arguments and the top-level dropblock node
# are left out by comparing the stock configs (lazy_stock_config drops them).
_LAZY_INFERENCE_NODES = ("model", "dataloader.test.mapper")


def _comparable(value: Any) -> Any:
    # A run's config.yaml holds what its config held, written and read back: tuples are lists
    # there, and a LazyConfig's targets are strings (detectron2 shortens their module path)
    # where the .py in memory has the class or function. Both sides get the full import path;
    # a list of nodes (augmentations, ResNet stages) is entered by index, so that a key names
    # the value that differs.
    from dropblock_det.engine.lazy_config_checks import _located

    if isinstance(value, dict):
        return {key: _comparable((_located(child) or child) if key == "_target_" else child)
                for key, child in value.items()}
    if isinstance(value, (list, tuple)):
        items = [_comparable(child) for child in value]
        return {str(i): item for i, item in enumerate(items)} if any(isinstance(i, dict) for i in items) else items
    if hasattr(value, "__module__") and hasattr(value, "__qualname__"):  # a class or function
        return f"{value.__module__}.{value.__qualname__}"
    return value


def _leaves(node: Any) -> dict:
    """{dotted key: value} of every leaf of the config `node` (a CfgNode, or LazyConfig nodes
    as plain containers), as :func:`_comparable` makes them."""
    from dropblock_det.config import flatten_config

    return flatten_config(_comparable(node))


def _config_beside_weights(weights: str, config_file: str, lazy: bool) -> Optional[str]:
    """The config.yaml beside the local checkpoint `weights` (where detectron2's tools leave a
    run's config), if it is a config of the kind `lazy` (LazyConfig or yacs) other than
    `config_file`: the config the weights were trained and evaluated with."""
    from dropblock_det.engine.checkpoint import is_url
    from dropblock_det.engine.lazy_config_checks import is_lazy_config_file

    if not weights or is_url(weights):
        return None
    beside = os.path.join(os.path.dirname(os.path.abspath(weights)), "config.yaml")
    if not os.path.isfile(beside) or os.path.samefile(beside, config_file) or is_lazy_config_file(beside) != lazy:
        return None
    return beside


def _set_by_opts(opts: Sequence[str], key: str) -> bool:
    # A LazyConfig opt may set a whole node (dataloader.test.mapper.augmentations=[...]).
    parts = key.split(".")
    return any(_opt_given(opts, ".".join(parts[:n])) for n in range(1, len(parts) + 1))


def _differences_advice(args: argparse.Namespace, beside: str, weights_key: str, ours: dict, theirs: dict,
                        at_inference: Callable[[str], bool]) -> List[str]:
    """A line naming every key that changes the model at inference (`at_inference`) whose value
    in `ours` (the leaves of --config-file's config) differs from `theirs` (those of the config
    `beside` the weights `weights_key` names), leaving out the keys the command line sets; none
    where they agree."""
    differ = [key for key in sorted(ours) if at_inference(key) and not _set_by_opts(args.opts, key)
              and key in theirs and ours[key] != theirs[key]]
    if not differ:
        return []
    return [f"{beside}, the config beside {weights_key} (the run's?), differs from --config-file "
            f"{args.config_file} in what the model does at inference: "
            + ", ".join(f"{key} {theirs[key]!r} there, {ours[key]!r} here" for key in differ)
            + f". The written config has this file's values: to serve the model as the run evaluated it, "
            f"give --config-file {beside} (or set these keys on the command line)."]


def run_config_advice(cfg: Any, args: argparse.Namespace) -> List[str]:
    """A line naming every inference key (INPUT.MIN_SIZE_TEST, MODEL.RETINANET.SCORE_THRESH_TEST,
    ...) where `cfg` differs from the run's config.yaml beside MODEL.WEIGHTS, if that is
    another yacs config, leaving out the keys the command line sets. With the project's
    config given instead of the run's, a run trained with opts (e.g. INPUT.MIN_SIZE_TEST 64)
    was written with other values and reported checked: its weights load all the same."""
    from dropblock_det.deploy import STOCK_COMPONENTS
    from dropblock_det.engine.config_checks import load_config

    beside = _config_beside_weights(cfg.MODEL.WEIGHTS, args.config_file, lazy=False)
    if beside is None:
        return []
    try:
        run = load_config(beside)
    except Exception:  # noqa: BLE001 - not a config of this model: nothing to compare with
        return []
    ours, theirs = _leaves(cfg), _leaves(run)
    for leaves in (ours, theirs):  # a component and its stock counterpart are the same at inference
        for key, names in STOCK_COMPONENTS.items():
            leaves[key] = names.get(leaves[key], leaves[key])
    return _differences_advice(args, beside, "MODEL.WEIGHTS", ours, theirs, lambda key: key.startswith(
        _INFERENCE_KEYS) and not key.startswith(_NOT_INFERENCE_KEYS))


# The LazyConfig counterparts of the heads' training-only keys above: an argument of these
# names anywhere in the model (detectron2's RPN, ROI heads, box predictor, RetinaNet) is read
# in training alone; of the RPN's (train, test) top-k pairs, the first.
_LAZY_TRAINING_ONLY_ARGUMENTS = frozenset((
    "batch_size_per_image", "positive_fraction", "anchor_matcher", "proposal_matcher", "proposal_append_gt",
    "loss_weight", "box_reg_loss_type", "smooth_l1_beta", "focal_loss_alpha", "focal_loss_gamma",
    "use_fed_loss", "fed_loss_num_classes", "fed_loss_freq_weight_power", "boundary_threshold"))


def _lazy_training_only(key: str) -> bool:
    parts = key.split(".")
    return bool(_LAZY_TRAINING_ONLY_ARGUMENTS.intersection(parts)) or (
        len(parts) > 1 and parts[-2] in ("pre_nms_topk", "post_nms_topk") and parts[-1] == "0")


def _lazy_inference_leaves(stock: Any) -> dict:
    """The leaves of `_LAZY_INFERENCE_NODES` of the stock LazyConfig `stock` (lazy_stock_config's:
    a dropblock-det component and its stock counterpart read the same), interpolations
    resolved (what the model and mapper are built with)."""
    from omegaconf import OmegaConf

    nodes = {key: OmegaConf.select(stock, key, default=None) for key in _LAZY_INFERENCE_NODES}
    # flatten_config joins the keys with dots: a dotted node key gives the keys from the top.
    return _leaves({key: OmegaConf.to_container(node, resolve=True) if OmegaConf.is_config(node) else node
                    for key, node in nodes.items() if node is not None})


def lazy_run_config_advice(cfg: Any, stock: Any, args: argparse.Namespace) -> List[str]:
    """run_config_advice for a LazyConfig `cfg` whose stock config is `stock`: a line naming
    every key of the model and the test mapper (`_LAZY_INFERENCE_NODES`) where `stock` differs
    from the stock config of the run's config.yaml beside train.init_checkpoint, if that is
    another LazyConfig, leaving out the keys the command line sets. Training keys (train.*, optimizer.*, dataloader.train.*, the
    DropBlock regularizers, the heads' sampling, matching and losses) change nothing at
    inference and are not compared."""
    from omegaconf import OmegaConf

    from dropblock_det.deploy import lazy_stock_config
    from dropblock_det.engine.lazy_config_checks import load_lazy_config

    weights = OmegaConf.select(cfg, "train.init_checkpoint", default="") or ""
    beside = _config_beside_weights(weights, args.config_file, lazy=True)
    if beside is None:
        return []
    try:
        run = lazy_stock_config(load_lazy_config(beside))
        ours, theirs = _lazy_inference_leaves(stock), _lazy_inference_leaves(run)
    except Exception:  # noqa: BLE001 - not a config of this model (or no stock one): nothing to compare with
        return []
    return _differences_advice(args, beside, "train.init_checkpoint", ours, theirs,
                               lambda key: not _lazy_training_only(key))


def yacs_stock_config_text(args: argparse.Namespace) -> Tuple[str, str, List[str]]:
    """(the stock config of a yacs config as YAML, checked; what it is; advice lines)."""
    from dropblock_det.deploy import needs_deeplab_project, stock_config
    from dropblock_det.engine.checkpoint import check_weights_path
    from dropblock_det.engine.config_checks import load_config

    if args.output.endswith(".py"):
        # Which kind a config file is, detectron2's tools and this project's tell by its name:
        # a .py is read as a LazyConfig, and the written YAML failed there as Python.
        raise ValueError(f"--output {args.output!r}: a yacs config is written as YAML, and a .py file is read "
                         "as a LazyConfig (Python) by detectron2's tools: give a .yaml or .yml name")
    cfg = load_config(args.config_file, args.opts)
    check_weights_path(cfg, fetch=False)  # a URL is written as it is, and not checked
    stock = stock_config(cfg)
    stock.MODEL.WEIGHTS = _absolute_weights(stock.MODEL.WEIGHTS)
    stock.OUTPUT_DIR = stock_output_dir(cfg.OUTPUT_DIR)
    check_output_outside_detectron2s_files(args.output, stock.OUTPUT_DIR, "OUTPUT_DIR")
    deeplab = needs_deeplab_project(stock)
    text = stock.dump()
    # Read back from a temporary file first: the written file must load in stock detectron2.
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "stock_config.yaml")
        with open(path, "w") as f:
            f.write(text)
        checked = check_stock_config(cfg, read_stock_config(path, deeplab))
    summary = (f"{stock.MODEL.META_ARCHITECTURE} with {stock.MODEL.BACKBONE.NAME}"
               + (f" and {stock.MODEL.SEM_SEG_HEAD.NAME}" if stock.MODEL.META_ARCHITECTURE == "SemanticSegmentor" else "")
               + (f", weights {stock.MODEL.WEIGHTS} ({'checked' if checked else 'not checked'})"
                  if stock.MODEL.WEIGHTS else ""))
    return text, summary, [_output_dir_advice("OUTPUT_DIR", stock.OUTPUT_DIR)] + advice(
        cfg, stock, checked, _opt_given(args.opts, "MODEL.WEIGHTS")) + run_config_advice(cfg, args)


def lazy_stock_config_text(args: argparse.Namespace) -> Tuple[str, str, List[str]]:
    """(the stock LazyConfig of a LazyConfig as YAML, read back with LazyConfig.load and
    checked; what it is; advice lines)."""
    from detectron2.config import LazyConfig
    from omegaconf import OmegaConf

    from dropblock_det.deploy import in_lazy_eval_nodes, lazy_plugin_nodes, lazy_stock_config
    from dropblock_det.engine.lazy_config_checks import (
        check_lazy_interpolations_resolve,
        lazy_meta_model,
        load_lazy_config,
    )
    from dropblock_det.engine.checkpoint import is_url, local_checkpoint

    if not args.output.endswith((".yaml", ".yml")):
        raise ValueError(f"--output {args.output!r}: a LazyConfig is written as YAML (what "
                         "detectron2's LazyConfig.load reads besides .py): give a .yaml or .yml name")
    cfg = load_lazy_config(args.config_file, args.opts)
    # The stock config is made from every key: one that does not resolve is named in one line,
    # where OmegaConf's 3-line error came out of the rewrite.
    check_lazy_interpolations_resolve(cfg)
    weights = OmegaConf.select(cfg, "train.init_checkpoint", default="") or ""
    if weights and not is_url(weights):
        local_checkpoint("train.init_checkpoint", weights)
    stock = lazy_stock_config(cfg)
    if weights:
        stock.train.init_checkpoint = _absolute_weights(weights)
    output_dir = OmegaConf.select(cfg, "train.output_dir", default=None)
    if isinstance(output_dir, str):
        stock.train.output_dir = stock_output_dir(output_dir)
        check_output_outside_detectron2s_files(args.output, stock.train.output_dir, "train.output_dir")
    unloadable = yaml_unloadable_values(stock)
    if unloadable:
        raise ValueError(f"{args.config_file}: its stock config has values YAML cannot hold, so it cannot be "
                         f"written as a config file: {'; '.join(unloadable)} (a function or class defined in the "
                         "config file: define it in a module the config imports)")
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "stock_config.yaml")
        LazyConfig.save(stock, path)
        if os.path.exists(path + ".pkl"):  # LazyConfig.save's fallback: no YAML to read back
            raise ValueError(f"{args.config_file}: its stock config has values YAML cannot hold "
                             "(LazyConfig.save logged why), so it cannot be written as a config file")
        back = LazyConfig.load(path)
        with open(path) as f:
            text = f.read()
    leftover = [key for key, _ in lazy_plugin_nodes(back) if in_lazy_eval_nodes(key)]
    if leftover:  # lazy_stock_config replaces them all: a bug
        raise RuntimeError(f"the stock config still builds dropblock-det components at {', '.join(leftover)}")
    checked = check_stock_model(lazy_meta_model(cfg), lazy_meta_model(back),
                                back.train.init_checkpoint if weights else "", "train.init_checkpoint")
    summary = (f"{_target_name(back.model)} (LazyConfig)"
               + (f", weights {back.train.init_checkpoint} ({'checked' if checked else 'not checked'})"
                  if weights else ""))
    lines = [_output_dir_advice("train.output_dir", back.train.output_dir)] if isinstance(output_dir, str) else []
    return text, summary, lines + lazy_advice(back, checked, _opt_given(args.opts, "train.init_checkpoint")) \
        + lazy_run_config_advice(cfg, stock, args)


def yaml_unloadable_values(cfg: Any) -> List[str]:
    """'key (value)' of every value of the LazyConfig `cfg` that YAML writes but cannot read
    back (a function or lambda defined in the config file: `!!python/name:<the config's
    module>.f`). detectron2's LazyConfig.save then pickles the config instead, logging
    neither the key nor the value."""
    import yaml
    from omegaconf import OmegaConf

    found: List[str] = []

    def visit(value: Any, key: str) -> None:
        if isinstance(value, dict):
            for name, child in value.items():
                visit(child, f"{key}.{name}" if key else str(name))
        elif isinstance(value, (list, tuple)):
            for index, child in enumerate(value):
                visit(child, f"{key}.{index}")
        elif value is not None and not isinstance(value, (str, bool, int, float)):
            try:
                yaml.unsafe_load(yaml.dump(value))
            except Exception:  # noqa: BLE001 - any failure: it does not load back
                found.append(f"{key} ({value!r})")

    visit(OmegaConf.to_container(cfg, resolve=False), "")
    return found


def _target_name(node: Any) -> str:
    target = node._target_
    return target.rpartition(".")[2] if isinstance(target, str) else target.__qualname__


def lazy_advice(stock: Any, checked: bool, weights_given: bool = True) -> List[str]:
    """What the user should know about the written LazyConfig `stock`; `weights_given`:
    whether train.init_checkpoint was given on the command line."""
    from omegaconf import OmegaConf

    from dropblock_det.deploy import lazy_plugin_nodes

    lines = _weights_advice(OmegaConf.select(stock, "train.init_checkpoint", default="") or "",
                            "train.init_checkpoint", checked, weights_given)
    named: List[str] = []  # the evaluator's set is most often the test loader's: named once
    for key in ("dataloader.test.dataset.names", "dataloader.evaluator.dataset_name"):
        names = OmegaConf.select(stock, key, default=None)
        names = [names] if isinstance(names, str) else list(names) if OmegaConf.is_list(names) else []
        lines += _dataset_advice(key, [n for n in names if n not in named], "lazyconfig_train_net.py")
        named += names
    head = OmegaConf.select(stock, "model.sem_seg_head", default=None)
    # _target_name: the head's _target_ is a string once the config is written and read back,
    # the class itself in memory.
    if head is not None and "_target_" in head and _target_name(head).endswith("DeepLabV3PlusHead") \
            and head.get("train_size"):
        lines.append(_aspp_pooling_advice(f"model.sem_seg_head.train_size={tuple(head.train_size)}",
                                          "model.sem_seg_head.train_size=null"))
    training = lazy_plugin_nodes(stock)
    if training:
        lines.append("Training-only nodes still build dropblock-det components (to train, use "
                     "dropblock-det; evaluating and exporting do not build them): "
                     + ", ".join(f"{key} ({target.__qualname__ if not isinstance(target, str) else target})"
                                 for key, target in training))
    return lines


def check_output_folder(output: str) -> None:
    """OSError naming --output where its folder cannot be made or written into: a file on
    its path, or a folder this user cannot write. Checked first: it failed only when the
    file was written, after the config, model and checkpoint checks, naming neither
    --output nor why (`[Errno 17] File exists: '<a file on the path>'`)."""
    folder = os.path.dirname(os.path.abspath(output))
    existing = folder
    while not os.path.exists(existing):  # the deepest part of the path that exists
        existing = os.path.dirname(existing)
    if not os.path.isdir(existing):
        raise NotADirectoryError(f"--output {output!r}: {existing!r} is a file, not a folder"
                                 + (f", so {folder!r} cannot be made" if existing != folder else "")
                                 + ": give another path")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise PermissionError(f"--output {output!r}: the folder {existing!r} is not writable by this user"
                              + (f", so {folder!r} cannot be made in it" if existing != folder else "")
                              + ": give a path you can write to")


def main(argv: Optional[Sequence[str]] = None) -> str:
    args = parse_args(argv)
    import dropblock_det  # noqa: F401  (registers the components)

    if not args.output:
        raise ValueError("--output is empty: give the YAML file to write")
    if os.path.isdir(args.output) or args.output.endswith((os.sep, "/")):
        # The run's folder, or a folder to make ("stock/"), would fail only when writing.
        raise IsADirectoryError(f"--output {args.output!r} names a folder: give the YAML file to write, "
                                f"e.g. --output {os.path.join(args.output, 'stock_config.yaml')}")
    if os.path.exists(args.output):
        raise FileExistsError(f"--output {args.output!r} exists; it is not overwritten: "
                              "give a new file name or remove it")
    check_output_folder(args.output)
    from dropblock_det.engine.lazy_config_checks import is_lazy_config_file

    write = lazy_stock_config_text if is_lazy_config_file(args.config_file) else yacs_stock_config_text
    text, summary, lines = write(args)
    checks_passed()  # an error in writing the file is no refusal of the input: its traceback shows
    os.makedirs(os.path.dirname(os.path.abspath(args.output)), exist_ok=True)
    with open(args.output, "x") as f:  # "x": never replaces a file created meanwhile
        f.write(text)
    print(f"wrote {args.output}: {summary}")
    for line in lines:
        print(line)
    return args.output


def cli() -> None:
    """The command line: `python tools/export_stock_config.py ...`, or a script of your own that
    registers datasets, then calls `export_stock_config.cli()` (README: "Your own dataset")."""
    run_tool("export_stock_config.py", main)


if __name__ == "__main__":
    cli()
