#!/usr/bin/env python
"""Short trainings over a block_size x keep_prob grid (the two DropBlock hyperparameters
the paper searches), results to CSV and a heatmap PNG. Resumable: a cell already recorded
in the CSV is not trained again, and a cell interrupted mid-training resumes from its last
checkpoint, so rerunning the same command finishes an interrupted sweep.

    python tools/sweep.py --config-file configs/Synthetic/retinanet_R18_GN_dropblock_res45_kp0.9_b3.yaml \\
        --block-sizes 1 3 5 --keep-probs 0.95 0.9 0.8 --output-dir output/sweep SOLVER.MAX_ITER 300

Each cell trains in OUTPUT_DIR/b<block>_kp<keep_prob>/ (its config.yaml and log.txt there)
and is evaluated on the first DATASETS.TEST entry (COCO box AP; mIoU for a
semantic-segmentation dataset; for an R-CNN with TEST.AUG.ENABLED, the box AP with detectron2's
test-time augmentation, bbox_TTA/AP, as train_net evaluates it after training). Every cell
seeds the RNGs from the config's SEED (>= 0; the synthetic configs set 7; detectron2's default
-1 gives each cell a random seed, which the tool warns of), as train_net does, so the cells'
random draws differ only by block_size and keep_prob, and resets the TorchScript state the cells before it left
(dropblock_det.analysis.reset_torchscript_functions), so a cell trained after others gives
what it gives trained alone in a fresh process, to the bit on CPU: its result is a function
of its config, not of its place in the grid.
Outputs: sweep.csv, sweep.png, log.txt (every cell's lines, and the warnings shown before
the first). A config with no MODEL.DROPBLOCK location enabled is refused, and so are
several --block-sizes for a TYPE without a block (Dropout, SpatialDropout: one
--block-sizes value sweeps their keep_prob). A cell whose training diverges (detectron2's FloatingPointError, "Loss became
infinite or NaN": a low keep_prob may) gets no row and the other cells train; then the tool
draws the heatmap of the recorded cells and fails naming the diverged ones, which a rerun
trains again from their last checkpoints. Any other error stops the sweep at once.

Each cell's resolved config (OUTPUT_DIR aside) is fingerprinted (sha256) into sweep.csv and
the cell's sweep_cell.json. A rerun with another config file or other opts into the same
--output-dir is refused before anything trains, naming the cells and the changed keys,
instead of mixing the two configurations' numbers; so is a sweep.csv written before the
fingerprints existed, and so is a sweep.csv whose rows of other cells (outside this
command's grid) are of another configuration. Nothing already there is deleted or
overwritten, except sweep.png: it is redrawn from every row of sweep.csv, so it shows the
whole grid trained so far in that folder.

A LazyConfig (a Python config, or the config.yaml a LazyConfig run saved) takes `key=value` opts:

    python tools/sweep.py --config-file configs/Synthetic/retinanet_R18_GN_dropblock_res45_kp0.9_b3.py \\
        --block-sizes 1 3 5 --keep-probs 0.95 0.9 0.8 --output-dir output/sweep train.max_iter=300

Each cell sets the top-level `dropblock` node's block_size and keep_prob (every DropBlock of
configs/common/models copies it, "${dropblock}") and train.output_dir to the cell's folder,
and trains as tools/lazyconfig_train_net.py does (train.seed, config.yaml, log.txt,
dropblock_det.engine.lazy.do_train), evaluated on the first dataloader.test.dataset.names
entry. The fingerprint covers the config as written (interpolations unresolved,
train.output_dir aside), with the same checks and resumption as above. A config without a
top-level `dropblock` node, whose model copies it nowhere or whose regularizers do not
all follow it, or whose model has no regularizer, is refused before anything is written.
"""
import argparse
import contextlib
import copy
import json
import os
import re
import sys
import warnings
from typing import Any, Callable, Dict, NamedTuple, Optional, Sequence, Tuple

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # tool_args.py, beside this file
from tool_args import (  # noqa: E402
    checks_passed,
    folder,
    log_file_in,
    parse_tool_args,
    print_and_log,
    run_tool,
    user_path,
)


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config-file", type=user_path, required=True)
    p.add_argument("--block-sizes", type=int, nargs="+", required=True)
    p.add_argument("--keep-probs", type=float, nargs="+", required=True)
    p.add_argument("--output-dir", type=folder, default="output/sweep")
    p.add_argument("opts", nargs=argparse.REMAINDER, default=[],
                   help="config overrides for every cell: KEY VALUE pairs (yacs), key=value"
                        " (a LazyConfig: .py, or a LazyConfig run's config.yaml)")
    return parse_tool_args(p, argv)


class _SweepKind(NamedTuple):
    """What main() needs of a config kind (yacs or LazyConfig) to sweep it."""
    dataset: str  # the test dataset every cell is evaluated on
    # cell_config(block_size, keep_prob) -> the cell's config, checked, training in its folder
    cell_config: Callable[[int, float], Any]
    seed: Callable[[Any], int]  # the config's seed (< 0: random)
    save_config: Callable[[Any, str], None]  # save_config(cfg, path): as the training tool writes it
    # train(cfg, resume) -> the last evaluation's results; resume: from the folder's last checkpoint
    train: Callable[[Any, bool], Dict[str, Any]]
    # The results' key of the cell's value: "bbox", or "bbox_TTA" for an R-CNN whose
    # TEST.AUG.ENABLED makes the trainer evaluate it with test-time augmentation too.
    task: str = "bbox"
    seed_key: str = "SEED"  # the config key of the seed
    base_seed: int = -1  # its value in the config and opts given
    # What makes block_size moot ("MODEL.DROPBLOCK.TYPE='Dropout'"), "" where a regularizer
    # of the model has a block size: several --block-sizes would then train the same model.
    no_block_size: str = ""


# The values each cell sets itself (yacs keys, a LazyConfig's), and the flag that gives them:
# given as opts, they were overwritten in every cell without a word (OUTPUT_DIR sw: the cells
# trained in the default output/sweep).
_CELL_SET_KEYS = {"OUTPUT_DIR": "--output-dir", "MODEL.DROPBLOCK.BLOCK_SIZE": "--block-sizes",
                  "MODEL.DROPBLOCK.KEEP_PROB": "--keep-probs", "train.output_dir": "--output-dir",
                  "dropblock.block_size": "--block-sizes", "dropblock.keep_prob": "--keep-probs"}


def _refuse_opts_the_cells_set(opts: Sequence[str], lazy: bool) -> None:
    """ValueError naming the opt and the flag to give instead for an opt that every cell sets."""
    pairs = ([tuple(o.split("=", 1)) for o in opts if "=" in o] if lazy
             else list(zip(opts[0::2], opts[1::2])))
    for key, value in pairs:
        flag = _CELL_SET_KEYS.get(key.lstrip("+~") if lazy else key)
        if flag is not None:
            raise ValueError(f"{key} {value!r} is set by each cell from {flag}: give {flag} {value} instead")


def _no_dropblock_error(config_file: str, what: str, fix: str) -> ValueError:
    # The grid changes block_size and keep_prob only: every cell would be one baseline.
    return ValueError(f"{config_file} (with the opts given) {what}, so every cell would train the same "
                      f"model without DropBlock; {fix}")


def _yacs_sweep(args: argparse.Namespace) -> _SweepKind:
    from dropblock_det.analysis import first_test_dataset, sweep_cell_dir
    from dropblock_det.config import dropblock_enabled, validate_dropblock_config
    from dropblock_det.engine.config_checks import check_config_before_run, load_config
    from dropblock_det.engine.trainer import DropBlockTrainer

    # Check the shared part of the config once, before the first cell trains.
    base = load_config(args.config_file, args.opts)
    dataset = first_test_dataset(base, args.config_file)  # a cell's value: its evaluation there
    base.DATASETS.TEST = (dataset,)  # the only one a cell evaluates, so the only one checked
    check_config_before_run(base)
    if not dropblock_enabled(base):
        raise _no_dropblock_error(args.config_file, "enables no MODEL.DROPBLOCK location "
                                  "(RESNET/FPN/HEAD/SEM_SEG_HEAD.ENABLED)",
                                  "use a DropBlock config or turn a location on in the opts")

    def cell_config(block_size: int, keep_prob: float) -> Any:
        cfg = load_config(args.config_file, list(args.opts) + [
            "MODEL.DROPBLOCK.BLOCK_SIZE", str(block_size),
            "MODEL.DROPBLOCK.KEEP_PROB", str(keep_prob),
            "OUTPUT_DIR", sweep_cell_dir(args.output_dir, block_size, keep_prob),
            "DATASETS.TEST", repr((dataset,)),
        ])
        validate_dropblock_config(cfg)  # each cell's values, before run_sweep trains any
        cfg.freeze()
        return cfg

    def save_config(cfg: Any, path: str) -> None:
        with open(path, "w") as f:
            f.write(cfg.dump())  # the cell's full config, as detectron2 writes it

    def train(cfg: Any, resume: bool) -> Dict[str, Any]:
        trainer = DropBlockTrainer(cfg)
        # resume: run_sweep checked the folder's checkpoint is of this very config.
        trainer.resume_or_load(resume=resume)
        return trainer.train()

    # With TEST.AUG.ENABLED (an R-CNN: check_config_before_run refused it for any other model)
    # the trainer's results hold the augmented evaluation beside the plain one: that is the
    # one the user asked for, so it is the cell's value.
    task = "bbox_TTA" if base.TEST.AUG.ENABLED else "bbox"
    regularizer = base.MODEL.DROPBLOCK.TYPE
    no_block_size = "" if regularizer == "DropBlock" else f"MODEL.DROPBLOCK.TYPE={regularizer!r}"
    return _SweepKind(dataset, cell_config, lambda cfg: cfg.SEED, save_config, train, task, "SEED", base.SEED,
                      no_block_size)


def _lazy_sweep(args: argparse.Namespace) -> _SweepKind:
    import torch
    from detectron2.config import LazyConfig
    from omegaconf import DictConfig, OmegaConf

    from dropblock_det.analysis import first_lazy_test_dataset, sweep_cell_dir
    from dropblock_det.engine.lazy import do_train
    from dropblock_det.engine.lazy_config_checks import (
        check_lazy_config_before_run,
        lazy_config_value,
        load_lazy_config,
    )
    from dropblock_det.engine.checkpoint import last_checkpoint
    from dropblock_det.layers import iter_regularizers

    base = load_lazy_config(args.config_file, args.opts)
    dataset = first_lazy_test_dataset(base, args.config_file)
    # Each cell starts from a copy of this one load: the config file's code runs once, as under
    # lazyconfig_train_net. A file that registers its datasets failed its second load
    # ("Dataset 'mine_train' is already registered!").
    loaded = copy.deepcopy(base)
    # The cells set dropblock.block_size / dropblock.keep_prob: without the node, or with a
    # model that copies it nowhere, every cell would be the same training. Checked before the
    # model is built: a config without it fails there on the model's "${dropblock}".
    # (read through lazy_config_value: an interpolation there that does not resolve is named in one line)
    if not isinstance(lazy_config_value(base, "dropblock"), DictConfig):
        raise _no_dropblock_error(
            args.config_file, "has no top-level `dropblock` node (the regularizer every DropBlock of "
            "configs/common/models copies, \"${dropblock}\"), which each cell sets", "use a DropBlock config")
    model = lazy_config_value(base, "model")
    model_text = json.dumps(OmegaConf.to_container(model, resolve=False) if isinstance(model, DictConfig) else model,
                            default=str)
    # (absolute or relative: "${dropblock}", "${.....dropblock}"; cell_config checks that the
    # regularizers follow it)
    if not re.search(r"\$\{\.*dropblock\}", model_text):
        raise _no_dropblock_error(
            args.config_file, "copies the top-level `dropblock` node nowhere in `model` (no \"${dropblock}\")",
            "give the model's DropBlock locations dropblock=\"${dropblock}\"")
    meta = check_lazy_config_before_run(base)
    regularizers = [module for _, module in iter_regularizers(meta if meta is not None else torch.nn.Module())]
    if meta is not None and not regularizers:
        raise _no_dropblock_error(args.config_file, "builds a model with no DropBlock (no regularizer in `model`)",
                                  "use a DropBlock config or turn a location on in the opts")
    no_block_size = ""
    if regularizers and not any(hasattr(module, "block_size") for module in regularizers):
        given = base.dropblock.get("type") if "_target_" in base.dropblock else None
        no_block_size = (f"dropblock.type={given!r}" if isinstance(given, str) else
                         f"the model's regularizers ({', '.join(sorted({type(m).__name__ for m in regularizers}))})")

    def cell_config(block_size: int, keep_prob: float) -> Any:
        cfg = copy.deepcopy(loaded)
        # Set, not given as opts: a folder name is not parsed as an override value.
        cfg.dropblock.block_size = block_size
        cfg.dropblock.keep_prob = keep_prob
        cfg.train.output_dir = sweep_cell_dir(args.output_dir, block_size, keep_prob)
        # Each cell's values (a block_size a component refuses), before run_sweep trains any;
        # the datasets' files were checked with the base config.
        meta = check_lazy_config_before_run(cfg, check_files=False)
        # A DropBlock given its own node instead of the copy ("${dropblock}") keeps its own
        # block_size: that part of the model would be the same in every cell.
        stray = [f"model.{name}.block_size={module.block_size}" for name, module in
                 iter_regularizers(meta if meta is not None else torch.nn.Module())
                 if getattr(module, "block_size", block_size) != block_size]
        if stray:
            raise ValueError(
                f"{args.config_file}: with dropblock.block_size={block_size}, "
                f"{', '.join(stray[:3])}{' ...' if len(stray) > 3 else ''}: these regularizers do not copy the "
                "top-level `dropblock` node, so the sweep's values do not reach them; give them "
                "dropblock=\"${dropblock}\"")
        return cfg

    def train(cfg: Any, resume: bool) -> Dict[str, Any]:
        # resume: run_sweep checked the folder's checkpoint is of this very config.
        return do_train(cfg, last_checkpoint(cfg.train.output_dir) if resume else "")

    # A block_size no regularizer has yet: a DropBlock that does not copy the node is found
    # here, before the output folder is made, not only in the cells of other block sizes.
    cell_config(int(base.dropblock.get("block_size") or 1) + 1, base.dropblock.get("keep_prob") or 1.0)
    # default_setup reads train.seed and saves the config with LazyConfig.save.
    seed = lambda cfg: cfg.train.get("seed", -1)  # noqa: E731
    return _SweepKind(dataset, cell_config, seed, LazyConfig.save, train, "bbox", "train.seed", seed(base),
                      no_block_size)


def main(argv: Optional[Sequence[str]] = None) -> Dict[Tuple[int, float], float]:
    """Run the sweep; returns {(block_size, keep_prob): metric} of this command's cells."""
    args = parse_args(argv)
    from detectron2.data import MetadataCatalog
    from detectron2.utils.env import seed_all_rng
    from detectron2.utils.logger import setup_logger

    import dropblock_det  # noqa: F401
    from dropblock_det.analysis import (
        SweepCellsDivergedError,
        check_matplotlib,
        plot_sweep_heatmap,
        read_sweep_csv,
        reset_torchscript_functions,
        run_sweep,
        sweep_cell_output_dir,
        sweep_cells,
    )
    from dropblock_det.engine.lazy_config_checks import is_lazy_config_file
    from dropblock_det.engine.output_dir import claim_output_dir

    setup_logger(name="detectron2")
    setup_logger(name="dropblock_det", abbrev_name="dropblock")  # what engine.lazy logs
    cells = sweep_cells(args.block_sizes, args.keep_probs, names=("--block-sizes", "--keep-probs"))
    check_matplotlib()  # the heatmap is drawn after every cell has trained
    # The one place the config kind is chosen: a Python config, or a LazyConfig run's config.yaml.
    lazy = is_lazy_config_file(args.config_file)
    _refuse_opts_the_cells_set(args.opts, lazy)
    kind = (_lazy_sweep if lazy else _yacs_sweep)(args)
    if kind.no_block_size and len(set(args.block_sizes)) > 1:
        # Dropout and SpatialDropout have no block: the cells of one keep_prob would train the
        # same model, and the heatmap would show seed noise (or nothing) along block_size.
        raise ValueError(
            f"--block-sizes {' '.join(map(str, args.block_sizes))}: {kind.no_block_size} has no block size (only "
            "DropBlock does), so the cells of one keep_prob would train the same model; give one --block-sizes "
            "value for a keep_prob sweep of it")
    if kind.base_seed < 0:
        # Each cell would draw its own seed: other initial weights and data order per cell.
        warnings.warn(f"{kind.seed_key}={kind.base_seed} (a random seed per cell): the cells differ by more than "
                      "block_size and keep_prob (initial weights, data order), and a cell trained again gives "
                      f"another number; set {kind.seed_key} to a seed >= 0 for cells that differ by the two values "
                      "alone", UserWarning, stacklevel=2)
    sem_seg = getattr(MetadataCatalog.get(kind.dataset), "evaluator_type", "") == "sem_seg"
    metric_name = "sem_seg/mIoU" if sem_seg else f"{kind.task}/AP"

    def train_cell(block_size, keep_prob, cfg, resume):
        checks_passed()  # run_sweep checked the grid and the folder: a failing cell is no refusal
        # `cfg` is the config run_sweep fingerprinted: the one trained is the one recorded.
        output_dir = sweep_cell_output_dir(cfg)
        os.makedirs(output_dir, exist_ok=True)
        # As train_net's default_setup does: every cell starts from the same weights and
        # data order (seed >= 0), so the cells differ by block_size and keep_prob alone,
        # not by the random state the cells before them left.
        seed = kind.seed(cfg)
        seed_all_rng(None if seed < 0 else seed)
        # Nor by the TorchScript state they left: each cell trains as it would alone in a
        # fresh process (the reset's docstring says what differed).
        reset_torchscript_functions()
        kind.save_config(cfg, os.path.join(output_dir, "config.yaml"))
        # Its log.txt, as train_net writes one into its OUTPUT_DIR (appended to by a resumed
        # cell), holds this cell alone.
        with log_file_in(output_dir):
            results = kind.train(cfg, resume)
        if not results:
            raise RuntimeError(f"cell block_size={block_size} keep_prob={keep_prob}: "
                               "no evaluation results")
        task, key = metric_name.split("/")
        return float(results[task][key])

    csv_path = os.path.join(args.output_dir, "sweep.csv")
    # One sweep per folder at a time: two would train and append the same cells.
    claim_output_dir(args.output_dir, "--output-dir")
    diverged = None
    # The sweep's own log.txt holds every cell's, and the warnings shown before the first
    # (a random seed per cell, the checks'), which no cell's log holds. Opened at run_sweep's
    # first line, once it has checked the folder: a refused sweep writes nothing there.
    sweep_log = contextlib.ExitStack()

    def log(text: str) -> None:
        if not log.opened:
            sweep_log.enter_context(log_file_in(args.output_dir, earlier_warnings=True))
            log.opened = True
        print_and_log(text)
    log.opened = False

    with sweep_log:
        try:
            values = run_sweep(cells, train_cell, csv_path, metric_name, log, cell_config=kind.cell_config)
        except SweepCellsDivergedError as e:  # raised after the other cells: draw theirs first
            values, diverged = e.values, e
        # Every row of the CSV (run_sweep checked they are all this configuration's), so a
        # rerun with part of the grid redraws the whole heatmap, not that part.
        everything = {key: row["value"] for key, row in read_sweep_csv(csv_path).items()}
        if everything:
            png = plot_sweep_heatmap(everything, os.path.join(args.output_dir, "sweep.png"), metric_name)
            print_and_log(f"csv: {csv_path}\nheatmap: {png} ({len(everything)} cell{'s' if len(everything) != 1 else ''})")
    if diverged is not None:
        raise diverged
    return values


def cli() -> None:
    """The command line: `python tools/sweep.py ...`, or a script of your own that
    registers datasets, then calls `sweep.cli()` (README: "Your own dataset")."""
    run_tool("sweep.py", main)


if __name__ == "__main__":
    cli()
