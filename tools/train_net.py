#!/usr/bin/env python
"""Train or evaluate a detectron2 model with dropblock-det's components.

    python tools/train_net.py --config-file configs/Synthetic/retinanet_R18_GN_dropblock_res45_kp0.9_b3.yaml
    python tools/train_net.py --config-file CFG --eval-only MODEL.WEIGHTS out/model_final.pth
    python tools/train_net.py --config-file CFG --resume          # continue from OUTPUT_DIR
    python tools/train_net.py --config-file CFG --num-gpus 8      # multi-GPU (launch)
    python tools/train_net.py --config-file CFG MODEL.DEVICE cpu SOLVER.MAX_ITER 100

Real datasets are read from $DETECTRON2_DATASETS (see datasets/README.md); the config's
datasets are checked (registered, files present) before anything is built. Training
without --resume into an OUTPUT_DIR that holds an earlier run moves that run's files to
OUTPUT_DIR/previous_runs/<time>/ first (detectron2 would overwrite its checkpoints);
--eval-only moves the config.yaml and inference/ (inference_TTA/) it would overwrite there too. With
TEST.AUG.ENABLED (R-CNN models) the model is also evaluated with detectron2's test-time
augmentation, after training and with --eval-only, as detectron2's train_net does: results
keyed `bbox_TTA` (`segm_TTA`: Mask R-CNN), predictions in OUTPUT_DIR/inference_TTA/.
The logic lives in dropblock_det/engine/: trainer.py (DropBlockTrainer) and the checks run before
it (config_checks.py, checkpoint.py, evaluation.py, output_dir.py); this file is argument parsing.
"""
import logging
import os
import sys

# Runs from a checkout without `pip install -e .` too.
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # tool_args.py, beside this file
from tool_args import (checks_passed, launch_tool, parse_tool_args, run_tool, setup_run,  # noqa: E402
                       training_tool_parser)

import detectron2.utils.comm as comm  # noqa: E402
from detectron2.evaluation import verify_results  # noqa: E402

import dropblock_det  # noqa: E402,F401  (registers the components and datasets)
from dropblock_det.engine.checkpoint import (  # noqa: E402
    check_eval_checkpoint,
    last_checkpoint,
    load_checkpoint_strict,
)
from dropblock_det.engine.config_checks import (  # noqa: E402
    check_config_before_run,
    check_resume_checkpoint,
    check_training_processes_device,
    checked_device,
    load_config,
)
from dropblock_det.engine.output_dir import prepare_output_dir, report_resumed_config  # noqa: E402
from dropblock_det.engine.trainer import DropBlockTrainer  # noqa: E402

logger = logging.getLogger("dropblock_det.train_net")


class Trainer(DropBlockTrainer):
    """detectron2's DefaultTrainer plus the DropBlock schedule hook, evaluator by dataset
    type, Cutout, the project's LR schedules and R-CNN test-time augmentation (see
    DropBlockTrainer)."""


def setup(args):
    """get_cfg -> add_dropblock_config -> merge file -> merge opts -> freeze -> checks ->
    default_setup. Raises before anything is built when the input is wrong."""
    cfg = load_config(args.config_file, args.opts)
    cfg.freeze()
    resume_from = last_checkpoint(cfg.OUTPUT_DIR) if args.resume else ""
    # A bad value fails here, before default_setup writes into OUTPUT_DIR and before data loading.
    model = check_config_before_run(cfg, train=not args.eval_only, check_weights=not resume_from)
    if resume_from and not args.eval_only:
        # detectron2 reads it only after the data loader is built, and loads it non-strictly.
        check_resume_checkpoint(cfg, resume_from, model)
    if args.eval_only:
        # Before prepare_output_dir, which creates OUTPUT_DIR and moves the run's config.yaml
        # and predictions aside: weights that cannot be evaluated leave the folder as it was.
        if not cfg.DATASETS.TEST:  # DefaultTrainer.test would evaluate nothing and say nothing
            raise ValueError(f"--eval-only with DATASETS.TEST={tuple(cfg.DATASETS.TEST)!r}: no dataset to "
                             "evaluate on; name at least one")
        weights = eval_weights(cfg, args)
        if not weights:
            raise ValueError("--eval-only needs weights to evaluate: MODEL.WEIGHTS is empty"
                             + (f" and OUTPUT_DIR={cfg.OUTPUT_DIR!r} has no checkpoint" if args.resume else "")
                             + "; give MODEL.WEIGHTS <checkpoint>, or --resume with the OUTPUT_DIR of a run")
        check_eval_checkpoint(model, weights, "--resume" if resume_from else "MODEL.WEIGHTS")
    kept_config = prepare_output_dir(cfg.OUTPUT_DIR, "OUTPUT_DIR", args.eval_only, args.resume, bool(resume_from),
                                     (args.config_file, cfg.MODEL.WEIGHTS))
    # Past the folder's claim (another run holding it is refused in one line): what fails
    # from here on is no refusal of the input, and its traceback shows.
    checks_passed()
    setup_run(cfg, args, cfg.OUTPUT_DIR)
    report_resumed_config(cfg.OUTPUT_DIR, kept_config, "OUTPUT_DIR")
    return cfg


def eval_weights(cfg, args) -> str:
    """What --eval-only evaluates, as in detectron2's train_net: with --resume the run's last
    checkpoint when it has one, else MODEL.WEIGHTS ('' when neither)."""
    return (args.resume and last_checkpoint(cfg.OUTPUT_DIR)) or cfg.MODEL.WEIGHTS


def main(args):
    cfg = setup(args)
    if args.eval_only:
        model = Trainer.build_model(cfg)
        load_checkpoint_strict(model, eval_weights(cfg, args))
        res = Trainer.test(cfg, model)
        if cfg.TEST.AUG.ENABLED:  # an R-CNN (checked in setup): its TTA results beside the plain ones
            res.update(Trainer.test_with_TTA(cfg, model))
        if comm.is_main_process():
            verify_results(cfg, res)
        return res

    trainer = Trainer(cfg)
    trainer.resume_or_load(resume=args.resume)
    return trainer.train()


CONFIG = "configs/Synthetic/retinanet_R18_GN_dropblock_res45_kp0.9_b3.yaml"
# detectron2's default epilog, with this project's config (tests/tools/test_tool_args.py
# parses each example and merges its opts into the config).
EPILOG = f"""
Examples (the flags first: the config opts take the rest of the command line):

Train on one machine:
    $ python tools/train_net.py --config-file {CONFIG}

Change some config values (yacs KEY VALUE pairs):
    $ python tools/train_net.py --config-file {CONFIG} MODEL.WEIGHTS /path/to/weight.pth SOLVER.BASE_LR 0.001

Evaluate a checkpoint:
    $ python tools/train_net.py --config-file {CONFIG} --eval-only MODEL.WEIGHTS output/model_final.pth

Continue the run in OUTPUT_DIR from its last checkpoint:
    $ python tools/train_net.py --config-file {CONFIG} --resume

Train on 8 GPUs:
    $ python tools/train_net.py --num-gpus 8 --config-file {CONFIG} MODEL.DEVICE cuda

Run on multiple machines (HOST0: machine0's address, PORT: a free port there):
    (machine0)$ python tools/train_net.py --machine-rank 0 --num-machines 2 --dist-url tcp://HOST0:PORT --config-file {CONFIG}
    (machine1)$ python tools/train_net.py --machine-rank 1 --num-machines 2 --dist-url tcp://HOST0:PORT --config-file {CONFIG}
"""
# detectron2's help offers LazyConfig "path.key=value" overrides too, which this tool
# refuses along with .py configs (load_config points to lazyconfig_train_net.py).
OPTS_HELP = ('Config opts at the end of the command line, after the flags: space-separated yacs '
             '"KEY VALUE" pairs (e.g. SOLVER.BASE_LR 0.001). A LazyConfig (.py config) and its '
             '"key=value" overrides are for tools/lazyconfig_train_net.py.')


def parser():
    return training_tool_parser(EPILOG, OPTS_HELP)


def check_before_launch(args) -> None:
    """What each launched process's `setup` checks first that depends on nothing of that
    process's: the config loads, and a training's MODEL.DEVICE can be put in detectron2's
    DistributedDataParallel in --num-gpus x --num-machines processes. Refused here, once,
    instead of in every process after it has imported torch and detectron2."""
    cfg = load_config(args.config_file, args.opts)
    if not args.eval_only:
        check_training_processes_device(cfg, checked_device("MODEL.DEVICE", cfg.MODEL.DEVICE),
                                        world=args.num_gpus * args.num_machines)


def cli() -> None:
    """The command line: `python tools/train_net.py ...`, or a script of your own that
    registers datasets, then calls `train_net.cli()` (README: "Your own dataset")."""
    run_tool("train_net.py", lambda: launch_tool(main, parse_tool_args(parser()), check_first=check_before_launch))


if __name__ == "__main__":
    cli()
