#!/usr/bin/env python
"""Robustness to DropBlock applied at inference (paper section 4.2).

Evaluates one or more checkpoints with their DropBlock modules switched on at test time,
for a list of keep_prob values and several seeds each; prints a table and writes it
(robustness.txt), a PNG of the metric (COCO box AP, or mIoU for segmentation) against
keep_prob, one curve per checkpoint, and a log.txt into --output-dir:

    python tools/analyze_robustness.py --config-file configs/Synthetic/retinanet_R18_GN_dropblock_res45_kp0.9_b3.yaml \\
        --checkpoint output/main_job/model_final.pth:DropBlock \\
        --checkpoint output/baseline/model_final.pth:baseline \\
        --keep-probs 1.0 0.95 0.9 0.85 0.8 0.75 --seeds 0 1 2 --output-dir output/robustness

A model trained without DropBlock is evaluated with DropBlock inserted where the config
says (MODEL.DROPBLOCK.* locations; if the config enables none, the ResNet ones are
enabled): DropBlock adds no parameters, so its checkpoint loads as it is (strictly: any
key or shape mismatch is an error). PATH may also be a URL detectron2 loads weights from
(https://, detectron2://). Each checkpoint's curve is labelled by LABEL, or by the file name
without its extension; two checkpoints with one label are refused. Results of an
earlier run in --output-dir are moved to previous_runs/<time>/ there, not overwritten.

A LazyConfig (a Python config, or the config.yaml a LazyConfig run saved) takes `key=value` opts:

    python tools/analyze_robustness.py --config-file configs/Synthetic/retinanet_R18_GN_dropblock_res45_kp0.9_b3.py \\
        --checkpoint output/lazy_run/model_final.pth:DropBlock --checkpoint output/baseline/model_final.pth:baseline \\
        --keep-probs 1.0 0.9 0.8 --seeds 0 1 2 --output-dir output/robustness train.device=cpu

Its model is built as the config says (`model`), evaluated with `dataloader.test` (its first
dataset) and `dataloader.evaluator`, whose predictions (when it takes an output_dir) go to
--output-dir/evaluation/inference/<dataset>, never into the training run's train.output_dir. A LazyConfig has no switch to
insert DropBlock, so a config whose model has no regularizer is refused: evaluate a
baseline checkpoint with the DropBlock config of its architecture (DropBlock adds no
parameters, so the checkpoint loads into that model strictly). Every other check is the
yacs path's.
"""
import argparse
import os
import sys
from typing import Any, Callable, Dict, List, NamedTuple, Optional, Sequence, Tuple

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # tool_args.py, beside this file
from tool_args import (checks_passed, folder, log_file_in, parse_tool_args, print_and_log, run_tool,  # noqa: E402
                       torch_seed, user_path)

# What a run of this tool writes into --output-dir (evaluation/: the evaluators' OUTPUT_DIR).
ROBUSTNESS_FILES = ("robustness.txt", "robustness.png", "evaluation", "log.txt")


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config-file", type=user_path, required=True, help="config the checkpoints were trained with")
    p.add_argument("--checkpoint", action="append", required=True, metavar="PATH[:LABEL]",
                   help="checkpoint to evaluate (repeat to compare several on one plot)")
    p.add_argument("--keep-probs", type=float, nargs="+",
                   default=[1.0, 0.95, 0.9, 0.85, 0.8, 0.75])
    p.add_argument("--seeds", type=torch_seed, nargs="+", default=[0, 1, 2])
    p.add_argument("--output-dir", type=folder, default="output/robustness")
    p.add_argument("opts", nargs=argparse.REMAINDER, default=[],
                   help="config overrides: KEY VALUE pairs (yacs), key=value"
                        " (a LazyConfig: .py, or a LazyConfig run's config.yaml)")
    return parse_tool_args(p, argv)


def _checkpoint_and_label(spec: str) -> Tuple[str, str]:
    """(path, label) of a --checkpoint PATH[:LABEL]; the label defaults to the file name
    without its extension. A leading "~" is the user's home (as --output-dir's)."""
    spec = user_path(spec)
    path, sep, label = spec.rpartition(":")
    # A Windows drive letter, a URL scheme, a ':' in a folder's name, or one in the name of
    # a file that exists as written ("model_12:00.pth") is not a label separator.
    if (not sep or not label or "/" in label or len(path) <= 1
            or (os.path.isfile(spec) and not os.path.isfile(path))):
        return spec, os.path.splitext(os.path.basename(spec))[0]
    return path, label


def robustness_config(config_file: str, opts: Sequence[str], output_dir: Optional[str] = None) -> Any:
    """The config with DropBlock inserted (identity until switched on) and a dropblock-det
    backbone, so that any checkpoint of the same architecture loads. Evaluated on the first
    DATASETS.TEST entry. With `output_dir`, OUTPUT_DIR points into it: the evaluators write
    their predictions under OUTPUT_DIR/inference, which must not be the training run's (the
    config's OUTPUT_DIR usually is), whose files these would replace."""
    from dropblock_det.analysis import first_test_dataset
    from dropblock_det.config import built_resnet_stages, dropblock_enabled
    from dropblock_det.deploy import STOCK_COMPONENTS
    from dropblock_det.engine.config_checks import load_config

    cfg = load_config(config_file, opts)
    cfg.DATASETS.TEST = (first_test_dataset(cfg, config_file),)
    if output_dir is not None:
        cfg.OUTPUT_DIR = os.path.join(output_dir, "evaluation")
    # A stock detectron2 backbone (and a C4 R-CNN's ROI head, which holds its res5) -> its
    # dropblock-det equivalent (same parameters).
    keys = ["MODEL.BACKBONE.NAME"] + (["MODEL.ROI_HEADS.NAME"] if cfg.MODEL.META_ARCHITECTURE == "GeneralizedRCNN" else [])
    for key in keys:
        dropblock_components = {stock: ours for ours, stock in STOCK_COMPONENTS[key].items()}
        name = cfg.MODEL.BACKBONE.NAME if key == "MODEL.BACKBONE.NAME" else cfg.MODEL.ROI_HEADS.NAME
        cfg.merge_from_list([key, dropblock_components.get(name, name)])
    if not dropblock_enabled(cfg):
        cfg.MODEL.DROPBLOCK.RESNET.ENABLED = True
        # Only the stages the model builds.
        stages = [s for s in cfg.MODEL.DROPBLOCK.RESNET.STAGES if s in built_resnet_stages(cfg)]
        if stages != list(cfg.MODEL.DROPBLOCK.RESNET.STAGES):
            # (each keep_prob is given to every regularizer alike: no stage scales here)
            cfg.MODEL.DROPBLOCK.RESNET.STAGES, cfg.MODEL.DROPBLOCK.RESNET.STAGE_DROP_SCALES = stages, []
    cfg.freeze()
    return cfg


def lazy_robustness_config(config_file: str, opts: Sequence[str], output_dir: Optional[str] = None) -> Any:
    """The LazyConfig counterpart of :func:`robustness_config`: the config evaluated on the
    first `dataloader.test.dataset.names` entry. With `output_dir`, train.output_dir is
    output_dir/evaluation and the evaluator's `output_dir` (when it has one) its
    inference/<dataset>, where the yacs path's evaluators write: the config's usually
    interpolates the training run's train.output_dir, whose predictions these would
    replace. The model is the config's as it is: DropBlock is not inserted (a LazyConfig has
    no switch to turn on), so a config without regularizers is refused by the caller."""
    from dropblock_det.analysis import first_lazy_test_dataset
    from dropblock_det.engine.lazy_config_checks import lazy_config_value, load_lazy_config

    cfg = load_lazy_config(config_file, opts)
    dataset = first_lazy_test_dataset(cfg, config_file)
    # (an interpolation that does not resolve is refused in one line naming its key)
    if lazy_config_value(cfg, "dataloader.evaluator") is None:
        # do_test returns None without one: there would be no metric to tabulate.
        raise ValueError(f"{config_file} (+ opts) has no dataloader.evaluator: the analysis scores each "
                         "evaluation with it (e.g. L(dataset_evaluator)(dataset_name=..., output_dir=...))")
    if output_dir is not None:
        cfg.train.output_dir = os.path.join(output_dir, "evaluation")
        if "output_dir" in cfg.dataloader.evaluator:
            cfg.dataloader.evaluator.output_dir = os.path.join(output_dir, "evaluation", "inference", dataset)
    return cfg


def _no_regularizer_error(config_file: str) -> ValueError:
    return ValueError(
        f"{config_file} (+ opts) builds a model with no DropBlock (nor any other regularizer) to switch on at "
        "inference. A LazyConfig model is evaluated as its config builds it: give --config-file the DropBlock "
        "config of the same architecture instead (e.g. the .py config whose `dropblock` node the model copies, "
        "with dropblock.keep_prob=... as trained); DropBlock adds no parameters, so a baseline checkpoint "
        "loads into that config's model strictly")


class _Evaluation(NamedTuple):
    """What main() needs of a config, yacs or LazyConfig alike."""
    model: Any  # the model built from the config, on its device
    evaluate: Callable[[Any], Dict[str, Any]]  # evaluate(model) -> detectron2's results
    dataset: str  # the test dataset evaluated


def _yacs_evaluation(args: argparse.Namespace) -> _Evaluation:
    from dropblock_det.config import check_impl_device
    from dropblock_det.engine.config_checks import check_config_before_run
    from dropblock_det.engine.trainer import DropBlockTrainer

    cfg = robustness_config(args.config_file, args.opts, args.output_dir)
    # The checkpoints are checked by main; TEST.AUG is refused: the evaluations here run
    # DefaultTrainer.test on the model itself, with DropBlock on, never the TTA wrapper.
    check_config_before_run(cfg, train=False, check_weights=False, test_time_augmentation=False)
    check_impl_device(cfg)  # DropBlock runs here (in the evaluations), so the kernels must run
    return _Evaluation(DropBlockTrainer.build_model(cfg),
                       lambda model: DropBlockTrainer.test(cfg, _ForwardOnly(model)), cfg.DATASETS.TEST[0])


def _lazy_evaluation(args: argparse.Namespace) -> _Evaluation:
    from dropblock_det.engine.lazy import build_lazy_model, do_test
    from dropblock_det.engine.lazy_config_checks import check_lazy_config_before_run
    from dropblock_det.layers import iter_regularizers

    cfg = lazy_robustness_config(args.config_file, args.opts, args.output_dir)
    meta = check_lazy_config_before_run(cfg, train=False)
    if meta is not None and next(iter_regularizers(meta), None) is None:
        raise _no_regularizer_error(args.config_file)
    # train=True: DropBlock runs in these evaluations as in training, so the checks of the
    # regularizers that training makes apply (impl="triton" against train.device, DropBlock
    # stages the ResNet does not build).
    model = build_lazy_model(cfg, train=True)
    if next(iter_regularizers(model), None) is None:  # where the meta build could not tell
        raise _no_regularizer_error(args.config_file)
    return _Evaluation(model, lambda model: do_test(cfg, _ForwardOnly(model)),
                       cfg.dataloader.test.dataset.names)


class _ForwardOnly:
    """Hides the nn.Module from detectron2's inference_on_dataset, which would otherwise
    call model.eval() and switch the regularizers off again."""

    def __init__(self, model):
        self.model = model

    def __call__(self, inputs):
        return self.model(inputs)


def dataset_metric(dataset: str) -> Tuple[str, Callable[[Dict[str, Any]], float]]:
    """(the metric's name in the table and plot, how to read it from the evaluation's
    results) for the test set `dataset`: mIoU for a semantic segmentation set, else the
    detector's box AP."""
    from detectron2.data import MetadataCatalog

    if getattr(MetadataCatalog.get(dataset), "evaluator_type", None) == "sem_seg":
        return "mIoU", lambda results: results["sem_seg"]["mIoU"]
    return "AP", lambda results: results["bbox"]["AP"]


def main(argv: Optional[Sequence[str]] = None) -> Dict[str, Dict[float, List[float]]]:
    """Run the analysis; returns {label: {keep_prob: [metric per seed]}}."""
    args = parse_args(argv)
    import torch
    from detectron2.utils.logger import setup_logger

    import dropblock_det  # noqa: F401
    from dropblock_det.analysis import (
        check_matplotlib,
        describe_regularizers,
        evaluate_with_dropblock_at_inference,
        format_robustness_table,
        plot_robustness,
    )
    from dropblock_det.engine.lazy_config_checks import is_lazy_config_file
    from dropblock_det.engine.checkpoint import is_url, load_checkpoint_strict, local_checkpoint
    from dropblock_det.engine.output_dir import archive_previous_run, claim_output_dir
    from dropblock_det.layers.base import check_keep_prob

    setup_logger(name="detectron2")
    # Every argument is checked before the first (long) evaluation, and so is the plot's matplotlib.
    check_matplotlib()
    for kp in args.keep_probs:
        check_keep_prob(kp, "--keep-probs")
    checkpoints = [_checkpoint_and_label(spec) for spec in args.checkpoint]
    missing = [path for path, _ in checkpoints if not is_url(path) and not os.path.isfile(path)]
    if missing:
        # A run's folder given for its checkpoint was "no such file", as if it were not there.
        folders = [path for path in missing if os.path.isdir(path)]
        gone = [path for path in missing if path not in folders]
        parts = ([f"no such file: {', '.join(gone)}"] if gone else []) + (
            [f"a folder, not a checkpoint file: {', '.join(folders)} (give the checkpoint in it, e.g. a run's "
             "model_final.pth)"] if folders else [])
        raise FileNotFoundError("--checkpoint: " + "; ".join(parts))
    for path, _ in checkpoints:
        # A URL (https://, detectron2://) is fetched now into detectron2's cache, where its
        # load reads it, so one that cannot be fetched fails before the first evaluation.
        local_checkpoint("--checkpoint", path)
    by_label = {}
    for path, label in checkpoints:
        by_label.setdefault(label, []).append(path)
    repeated = {label: paths for label, paths in by_label.items() if len(paths) > 1}
    if repeated:  # one curve per label: a second would replace the first in the table and plot
        label, paths = next(iter(repeated.items()))
        raise ValueError(f"--checkpoint: label {label!r} names {len(paths)} checkpoints ({', '.join(paths)}); "
                         "give each its own as PATH:LABEL")
    # The one place the config kind is chosen: a Python config, or a LazyConfig run's config.yaml.
    model, evaluate, dataset = (_lazy_evaluation if is_lazy_config_file(args.config_file) else _yacs_evaluation)(args)
    # Every checkpoint must fit the config's model: loaded once each here, so that a
    # mismatch of the last one is refused before anything is moved and before the (long)
    # evaluations of the first ones, whose results would be lost with it. The model is
    # built once: a strict load replaces all its state, and each evaluation leaves its
    # regularizers at their targets.
    for path, _ in checkpoints:
        try:
            load_checkpoint_strict(model, path)
        except RuntimeError as e:  # one that does not read or fit: named with the flag that gave it
            raise type(e)(f"--checkpoint: {e}") from e.__cause__
    # One run per folder at a time (see train_net.py): a second would move the first's
    # results aside while it writes them.
    claim_output_dir(args.output_dir, "--output-dir")
    # Past the folder's claim (another run holding it is refused in one line): what fails
    # from here on is no refusal of the input, and its traceback shows.
    checks_passed()
    # A rerun into the same --output-dir: the earlier table, plot and predictions are moved
    # to previous_runs/<time>/, not overwritten.
    # A checkpoint or the config file kept under the folder being moved is copied instead.
    archived = archive_previous_run(args.output_dir, [path for path, _ in checkpoints] + [args.config_file],
                                    patterns=ROBUSTNESS_FILES)
    # Its log.txt beside the table (the evaluations' lines, its warnings, what it prints), as
    # a training's in its OUTPUT_DIR; an earlier run's moved aside above with its results.
    with log_file_in(args.output_dir, earlier_warnings=True):
        if archived:
            print_and_log(f"the earlier results in {args.output_dir} were moved to {archived}")
        # Which regularizers each keep_prob reaches: a config with DropPath alone (or a baseline's)
        # gets DropBlock inserted in the ResNet too (robustness_config), and a Dropout config's
        # curve is of Dropout at inference; the table and plot do not say so.
        print_and_log(f"switched on at inference, each at every --keep-probs value: {describe_regularizers(model)}")
        metric_name, metric = dataset_metric(dataset)
        curves = {}
        for path, label in checkpoints:
            load_checkpoint_strict(model, path)
            with torch.no_grad():
                curves[label] = evaluate_with_dropblock_at_inference(
                    model, evaluate, args.keep_probs, args.seeds, metric)
        table = format_robustness_table(curves, metric_name)
        print_and_log(table)
        with open(os.path.join(args.output_dir, "robustness.txt"), "w") as f:
            f.write(table + "\n")
        png = plot_robustness(curves, os.path.join(args.output_dir, "robustness.png"), metric_name)
        print_and_log(f"plot: {png}")
    return curves


def cli() -> None:
    """The command line: `python tools/analyze_robustness.py ...`, or a script of your own that
    registers datasets, then calls `analyze_robustness.cli()` (README: "Your own dataset")."""
    run_tool("analyze_robustness.py", main)


if __name__ == "__main__":
    cli()
