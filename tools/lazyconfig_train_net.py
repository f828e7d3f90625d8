#!/usr/bin/env python
"""Train or evaluate a model described by a detectron2 LazyConfig (a Python config).

    python tools/lazyconfig_train_net.py --config-file configs/Synthetic/retinanet_R18_GN_dropblock_res45_kp0.9_b3.py
    python tools/lazyconfig_train_net.py --config-file CFG.py --eval-only train.init_checkpoint=out/model_final.pth
    python tools/lazyconfig_train_net.py --config-file CFG.py --resume   # continue from train.output_dir
    python tools/lazyconfig_train_net.py --config-file CFG.py --num-gpus 8 train.max_iter=1000 dropblock.keep_prob=0.8

detectron2's tools/lazyconfig_train_net.py with the DropBlock keep_prob ramp
(`train.dropblock_schedule`) and the safeguards of tools/train_net.py: the config, the model
(built on the meta device) and the datasets are checked before anything is written; one run
per train.output_dir at a time; a fresh run moves an earlier run's files to
train.output_dir/previous_runs/<time>/ (an evaluation its config.yaml, config.yaml.pkl and
inference/); checkpoints are written atomically; --eval-only loads its weights strictly;
--resume checks the checkpoint against the model first. The logic lives in
dropblock_det/engine/lazy.py and lazy_config_checks.py.
"""
import logging
import os
import sys

# Runs from a checkout without `pip install -e .` too.
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # tool_args.py, beside this file
from tool_args import (checks_passed, launch_tool, parse_tool_args, run_tool, setup_run,  # noqa: E402
                       training_tool_parser)

from omegaconf import OmegaConf  # noqa: E402

import dropblock_det  # noqa: E402,F401  (registers the components and datasets)
from dropblock_det.engine.checkpoint import (  # noqa: E402
    check_eval_checkpoint,
    last_checkpoint,
    load_checkpoint_strict,
)
from dropblock_det.engine.config_checks import checked_device  # noqa: E402
from dropblock_det.engine.lazy import build_lazy_model, do_test, do_train  # noqa: E402
from dropblock_det.engine.lazy_config_checks import (  # noqa: E402
    check_lazy_checkpoint,
    check_lazy_config_before_run,
    check_lazy_ddp_device,
    lazy_config_value,
    load_lazy_config,
)
from dropblock_det.engine.output_dir import prepare_output_dir, report_resumed_config  # noqa: E402

logger = logging.getLogger("dropblock_det.lazyconfig_train_net")


def eval_weights(cfg, args) -> str:
    """What --eval-only evaluates: with --resume the run's last checkpoint when it has one,
    else train.init_checkpoint ('' when neither)."""
    return (args.resume and last_checkpoint(cfg.train.output_dir)) or cfg.train.init_checkpoint


def setup(args):
    """Load the config and apply the opts, check everything that loads no data (raising
    before anything is written), claim train.output_dir, move an earlier run aside,
    default_setup (logger, config.yaml, train.seed). Returns (cfg, the checkpoint a --resume
    continues from or '')."""
    cfg = load_lazy_config(args.config_file, args.opts)
    # (an interpolation that does not resolve refused in one line, as the checks refuse it)
    output_dir = lazy_config_value(cfg, "train.output_dir")
    # A resumed run loads its checkpoint, never train.init_checkpoint: that is not read (as
    # tools/train_net.py skips MODEL.WEIGHTS). A train.output_dir that is no folder name is
    # refused by the config check.
    resume_from = (last_checkpoint(output_dir) if args.resume and not args.eval_only
                   and isinstance(output_dir, str) and output_dir else "")
    # The model is built on the meta device and checked there.
    model = check_lazy_config_before_run(cfg, train=not args.eval_only, check_weights=not resume_from)
    if resume_from:
        # Without the meta model (a component the meta device cannot build) still read, and
        # checked against train.max_iter: do_train checks nothing the tool did not.
        check_lazy_checkpoint(cfg, model, resume_from)
    if args.eval_only:
        if not OmegaConf.select(cfg, "dataloader.evaluator", default=None):
            # do_test would evaluate nothing (or run the inference and score it with nothing) and say nothing.
            raise ValueError("--eval-only needs an evaluator: dataloader.evaluator is "
                             + ("missing" if "evaluator" not in cfg.dataloader else
                                f"{OmegaConf.select(cfg, 'dataloader.evaluator')!r}")
                             + " (e.g. L(dataset_evaluator)(dataset_name=...) from dropblock_det.engine.evaluation)")
        weights = eval_weights(cfg, args)
        if not weights:
            raise ValueError("--eval-only needs weights to evaluate: train.init_checkpoint is empty"
                             + (f" and train.output_dir={output_dir!r} has no checkpoint" if args.resume else "")
                             + "; give train.init_checkpoint=<checkpoint>, or --resume with the "
                             "train.output_dir of a run")
        # Strictly, as it will be loaded.
        check_eval_checkpoint(model, weights, "--resume" if weights != cfg.train.init_checkpoint
                              else "train.init_checkpoint")
    kept_config = prepare_output_dir(output_dir, "train.output_dir", args.eval_only, args.resume, bool(resume_from),
                                     (args.config_file, cfg.train.init_checkpoint))
    # Past the folder's claim (another run holding it is refused in one line): what fails
    # from here on is no refusal of the input, and its traceback shows.
    checks_passed()
    setup_run(cfg, args, output_dir)
    report_resumed_config(output_dir, kept_config, "train.output_dir")
    return cfg, resume_from


def main(args):
    cfg, resume_from = setup(args)
    if args.eval_only:
        model = build_lazy_model(cfg, train=False)
        load_checkpoint_strict(model, eval_weights(cfg, args))
        # No DistributedDataParallel, as tools/train_net.py's evaluation: the inference computes
        # no gradient, every process loaded the same weights, and detectron2's
        # create_ddp_model(model) gives a CPU model device_ids=[local rank], which it refuses.
        return do_test(cfg, model)
    # setup() checked the --resume checkpoint (a read of the whole file) against the model.
    return do_train(cfg, resume_from, resume_checked=True)


CONFIG = "configs/Synthetic/retinanet_R18_GN_dropblock_res45_kp0.9_b3.py"
# detectron2's default epilog shows yacs opts (`MODEL.WEIGHTS /path/to/weight.pth`), which
# this tool refuses: every example here is one it takes (tests/tools/test_tool_args.py
# parses each and applies its overrides to the config).
EPILOG = f"""
Examples (the flags first: the config overrides take the rest of the command line):

Train on one machine:
    $ python tools/lazyconfig_train_net.py --config-file {CONFIG}

Change some config values (LazyConfig overrides, key=value):
    $ python tools/lazyconfig_train_net.py --config-file {CONFIG} train.init_checkpoint=/path/to/weight.pth optimizer.lr=0.001

Evaluate a checkpoint:
    $ python tools/lazyconfig_train_net.py --config-file {CONFIG} --eval-only train.init_checkpoint=output/model_final.pth

Continue the run in train.output_dir from its last checkpoint:
    $ python tools/lazyconfig_train_net.py --config-file {CONFIG} --resume

Train on 8 GPUs:
    $ python tools/lazyconfig_train_net.py --num-gpus 8 --config-file {CONFIG} train.device=cuda

Run on multiple machines (HOST0: machine0's address, PORT: a free port there):
    (machine0)$ python tools/lazyconfig_train_net.py --machine-rank 0 --num-machines 2 --dist-url tcp://HOST0:PORT --config-file {CONFIG}
    (machine1)$ python tools/lazyconfig_train_net.py --machine-rank 1 --num-machines 2 --dist-url tcp://HOST0:PORT --config-file {CONFIG}
"""
# detectron2's help offers yacs "PATH.KEY VALUE" pairs too, which load_lazy_config refuses.
OPTS_HELP = ('LazyConfig overrides at the end of the command line, after the flags: "key=value" '
             '(e.g. optimizer.lr=0.001; "+key=value" adds a key the config does not have). yacs '
             '"KEY VALUE" pairs are refused: a yacs .yaml config is trained with tools/train_net.py.')


def parser():
    return training_tool_parser(EPILOG, OPTS_HELP)


def check_before_launch(args) -> None:
    """What each launched process's `setup` checks first that depends on nothing of that
    process's: the config loads, and a training's train.device can be put in detectron2's
    DistributedDataParallel in --num-gpus x --num-machines processes (unless train.ddp gives
    device_ids). Refused here, once, instead of in every process after it has imported torch
    and detectron2."""
    cfg = load_lazy_config(args.config_file, args.opts)
    device = lazy_config_value(cfg, "train.device")
    if not args.eval_only and isinstance(device, str):  # (any other value is refused in setup)
        check_lazy_ddp_device(cfg, checked_device("train.device", device), world=args.num_gpus * args.num_machines)


def cli() -> None:
    """The command line: `python tools/lazyconfig_train_net.py ...`, or a script of your own
    that registers datasets, then calls `lazyconfig_train_net.cli()` (README: "Your own dataset")."""
    run_tool("lazyconfig_train_net.py", lambda: launch_tool(main, parse_tool_args(parser()),
                                                             check_first=check_before_launch))


if __name__ == "__main__":
    cli()
