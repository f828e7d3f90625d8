#!/usr/bin/env python
"""Robustness to DropBlock applied at inference (paper section 4.2).

Evaluates one or more checkpoints with their DropBlock modules switched on at test time,
for a list of keep_prob values and several seeds each; prints a table and writes a PNG of
the metric (COCO box AP, or mIoU for segmentation) against keep_prob, one curve per
checkpoint:

    python tools/analyze_robustness.py --config-file configs/Synthetic/retinanet_R18_GN_dropblock_res45_kp0.9_b3.yaml \\
        --checkpoint output/main_job/model_final.pth:DropBlock \\
        --checkpoint output/baseline/model_final.pth:baseline \\
        --keep-probs 1.0 0.95 0.9 0.85 0.8 0.75 --seeds 0 1 2 --output-dir output/robustness

A model trained without DropBlock is evaluated with DropBlock inserted where the config
says (MODEL.DROPBLOCK.* locations; if the config enables none, the ResNet ones are
enabled): DropBlock adds no parameters, so its checkpoint loads as it is (strictly: any
key or shape mismatch is an error). Each checkpoint's curve is labelled by LABEL, or by the
file name without its extension; two checkpoints with one label are refused. Results of an
earlier run in --output-dir are moved to previous_runs/<time>/ there, not overwritten.
"""
import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # tool_args.py, beside this file
from tool_args import parse_tool_args  # noqa: E402

# What a run of this tool writes into --output-dir (evaluation/: the evaluators' OUTPUT_DIR).
ROBUSTNESS_FILES = ("robustness.txt", "robustness.png", "evaluation")


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config-file", required=True, help="config the checkpoints were trained with")
    p.add_argument("--checkpoint", action="append", required=True, metavar="PATH[:LABEL]",
                   help="checkpoint to evaluate (repeat to compare several on one plot)")
    p.add_argument("--keep-probs", type=float, nargs="+",
                   default=[1.0, 0.95, 0.9, 0.85, 0.8, 0.75])
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--output-dir", default="output/robustness")
    p.add_argument("opts", nargs=argparse.REMAINDER, default=[],
                   help="config overrides, KEY VALUE pairs")
    return parse_tool_args(p, argv)


def _checkpoint_and_label(spec: str):
    # A Windows drive letter or a URL scheme is not a label separator.
    path, sep, label = spec.rpartition(":")
    if not sep or not label or "/" in label or len(path) <= 1:
        return spec, os.path.splitext(os.path.basename(spec))[0]
    return path, label


def robustness_config(config_file, opts, output_dir=None):
    """The config with DropBlock inserted (identity until switched on) and a dropblock-det
    backbone, so that any checkpoint of the same architecture loads. Evaluated on the first
    DATASETS.TEST entry. With `output_dir`, OUTPUT_DIR points into it: the evaluators write
    their predictions under OUTPUT_DIR/inference, which must not be the training run's (the
    config's OUTPUT_DIR usually is), whose files these would replace."""
    from dropblock_det.analysis import first_test_dataset
    from dropblock_det.config import built_resnet_stages, dropblock_enabled
    from dropblock_det.deploy import STOCK_COMPONENTS
    from dropblock_det.engine.trainer import load_config

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


class _ForwardOnly:
    """Hides the nn.Module from detectron2's inference_on_dataset, which would otherwise
    call model.eval() and switch the regularizers off again."""

    def __init__(self, model):
        self.model = model

    def __call__(self, inputs):
        return self.model(inputs)


def main(argv=None):
    args = parse_args(argv)
    import torch
    from detectron2.utils.logger import setup_logger

    import dropblock_det  # noqa: F401
    from dropblock_det.analysis import (
        evaluate_with_dropblock_at_inference,
        format_robustness_table,
        plot_robustness,
    )
    from dropblock_det.engine.trainer import (
        DropBlockTrainer,
        archive_previous_run,
        check_config_before_run,
        claim_output_dir,
        load_checkpoint_strict,
    )
    from dropblock_det.config import check_impl_device
    from dropblock_det.layers.base import check_keep_prob

    setup_logger(name="detectron2")
    # Every argument is checked before the first (long) evaluation.
    for kp in args.keep_probs:
        check_keep_prob(kp, "--keep-probs")
    checkpoints = [_checkpoint_and_label(spec) for spec in args.checkpoint]
    missing = [path for path, _ in checkpoints if not os.path.isfile(path)]
    if missing:
        raise FileNotFoundError(f"--checkpoint: no such file: {', '.join(missing)}")
    by_label = {}
    for path, label in checkpoints:
        by_label.setdefault(label, []).append(path)
    repeated = {label: paths for label, paths in by_label.items() if len(paths) > 1}
    if repeated:  # one curve per label: a second would replace the first in the table and plot
        label, paths = next(iter(repeated.items()))
        raise ValueError(f"--checkpoint: label {label!r} names {len(paths)} checkpoints ({', '.join(paths)}); "
                         "give each its own as PATH:LABEL")
    cfg = robustness_config(args.config_file, args.opts, args.output_dir)
    check_config_before_run(cfg, train=False, check_weights=False)  # the checkpoints are checked above
    check_impl_device(cfg)  # DropBlock runs here (in the evaluations), so the kernels must run
    # Every checkpoint must fit the config's model: loaded once each here, so that a
    # mismatch of the last one is refused before anything is moved and before the (long)
    # evaluations of the first ones, whose results would be lost with it. The model is
    # built once: a strict load replaces all its state, and each evaluation leaves its
    # regularizers at their targets.
    model = DropBlockTrainer.build_model(cfg)
    for path, _ in checkpoints:
        load_checkpoint_strict(model, path)
    dataset = cfg.DATASETS.TEST[0]
    from detectron2.data import MetadataCatalog

    # One run per folder at a time (see train_net.py): a second would move the first's
    # results aside while it writes them.
    claim_output_dir(args.output_dir, "--output-dir")
    # A rerun into the same --output-dir: the earlier table, plot and predictions are moved
    # to previous_runs/<time>/, not overwritten.
    # A checkpoint or the config file kept under the folder being moved is copied instead.
    archived = archive_previous_run(args.output_dir, [path for path, _ in checkpoints] + [args.config_file],
                                    patterns=ROBUSTNESS_FILES)
    if archived:
        print(f"the earlier results in {args.output_dir} were moved to {archived}", flush=True)

    sem_seg = getattr(MetadataCatalog.get(dataset), "evaluator_type", None) == "sem_seg"
    metric_name = "mIoU" if sem_seg else "AP"

    def metric(results):
        return results["sem_seg"]["mIoU"] if sem_seg else results["bbox"]["AP"]

    def evaluate(model):
        return DropBlockTrainer.test(cfg, _ForwardOnly(model))

    curves = {}
    for path, label in checkpoints:
        load_checkpoint_strict(model, path)
        with torch.no_grad():
            curves[label] = evaluate_with_dropblock_at_inference(
                model, evaluate, args.keep_probs, args.seeds, metric)
    os.makedirs(args.output_dir, exist_ok=True)
    table = format_robustness_table(curves, metric_name)
    print(table)
    with open(os.path.join(args.output_dir, "robustness.txt"), "w") as f:
        f.write(table + "\n")
    png = plot_robustness(curves, os.path.join(args.output_dir, "robustness.png"), metric_name)
    print(f"plot: {png}")
    return curves


if __name__ == "__main__":
    main()
