#!/usr/bin/env python
"""Short trainings over a block_size x keep_prob grid (the two DropBlock hyperparameters
the paper searches), results to CSV and a heatmap PNG. Resumable: a cell already recorded
in the CSV is not trained again, and a cell interrupted mid-training resumes from its last
checkpoint, so rerunning the same command finishes an interrupted sweep.

    python tools/sweep.py --config-file configs/Synthetic/retinanet_R18_GN_dropblock_res45_kp0.9_b3.yaml \\
        --block-sizes 1 3 5 --keep-probs 0.95 0.9 0.8 --output-dir output/sweep SOLVER.MAX_ITER 300

Each cell trains in OUTPUT_DIR/b<block>_kp<keep_prob>/ (its config.yaml and log.txt there)
and is evaluated on the first DATASETS.TEST entry (COCO box AP; mIoU for a
semantic-segmentation dataset). Every cell seeds the RNGs from the config's SEED (>= 0; the
synthetic configs set 7), as train_net does, so cells differ only by block_size and
keep_prob. Outputs: sweep.csv, sweep.png. A config with no MODEL.DROPBLOCK location enabled
is refused.

Each cell's resolved config (OUTPUT_DIR aside) is fingerprinted (sha256) into sweep.csv and
the cell's sweep_cell.json. A rerun with another config file or other opts into the same
--output-dir is refused before anything trains, naming the cells and the changed keys,
instead of mixing the two configurations' numbers; so is a sweep.csv written before the
fingerprints existed, and so is a sweep.csv whose rows of other cells (outside this
command's grid) are of another configuration. Nothing already there is deleted or
overwritten, except sweep.png: it is redrawn from every row of sweep.csv, so it shows the
whole grid trained so far in that folder.
"""
import argparse
import logging
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # tool_args.py, beside this file
from tool_args import parse_tool_args  # noqa: E402


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config-file", required=True)
    p.add_argument("--block-sizes", type=int, nargs="+", required=True)
    p.add_argument("--keep-probs", type=float, nargs="+", required=True)
    p.add_argument("--output-dir", default="output/sweep")
    p.add_argument("opts", nargs=argparse.REMAINDER, default=[],
                   help="config overrides for every cell, KEY VALUE pairs")
    return parse_tool_args(p, argv)


def main(argv=None):
    args = parse_args(argv)
    from detectron2.data import MetadataCatalog
    from detectron2.utils.env import seed_all_rng
    from detectron2.utils.logger import setup_logger

    import dropblock_det  # noqa: F401
    from dropblock_det.analysis import (
        first_test_dataset,
        plot_sweep_heatmap,
        read_sweep_csv,
        run_sweep,
        sweep_cell_dir,
        sweep_cells,
    )
    from dropblock_det.config import dropblock_enabled, validate_dropblock_config
    from dropblock_det.engine.trainer import (
        DropBlockTrainer,
        check_config_before_run,
        claim_output_dir,
        load_config,
    )

    setup_logger(name="detectron2")
    cells = sweep_cells(args.block_sizes, args.keep_probs)
    # Check the shared part of the config once, before the first cell trains.
    base = load_config(args.config_file, args.opts)
    dataset = first_test_dataset(base, args.config_file)  # a cell's value: its evaluation there
    base.DATASETS.TEST = (dataset,)  # the only one a cell evaluates, so the only one checked
    check_config_before_run(base)
    if not dropblock_enabled(base):
        # The grid changes BLOCK_SIZE and KEEP_PROB only: every cell would be one baseline.
        raise ValueError(
            f"{args.config_file} (with the opts given) enables no MODEL.DROPBLOCK location "
            "(RESNET/FPN/HEAD/SEM_SEG_HEAD.ENABLED), so every cell would train the same model "
            "without DropBlock; use a DropBlock config or turn a location on in the opts")
    sem_seg = getattr(MetadataCatalog.get(dataset), "evaluator_type", "") == "sem_seg"
    metric_name = "sem_seg/mIoU" if sem_seg else "bbox/AP"

    def cell_config(block_size, keep_prob):
        cfg = load_config(args.config_file, list(args.opts) + [
            "MODEL.DROPBLOCK.BLOCK_SIZE", str(block_size),
            "MODEL.DROPBLOCK.KEEP_PROB", str(keep_prob),
            "OUTPUT_DIR", sweep_cell_dir(args.output_dir, block_size, keep_prob),
            "DATASETS.TEST", repr((dataset,)),
        ])
        validate_dropblock_config(cfg)  # each cell's values, before run_sweep trains any
        cfg.freeze()
        return cfg

    def train_cell(block_size, keep_prob, cfg, resume):
        # `cfg` is the config run_sweep fingerprinted: the one trained is the one recorded.
        os.makedirs(cfg.OUTPUT_DIR, exist_ok=True)
        # As train_net's default_setup does: every cell starts from the same weights and
        # data order (SEED >= 0), so the cells differ by block_size and keep_prob alone,
        # not by the random state the cells before them left.
        seed_all_rng(None if cfg.SEED < 0 else cfg.SEED)
        with open(os.path.join(cfg.OUTPUT_DIR, "config.yaml"), "w") as f:
            f.write(cfg.dump())  # the cell's full config, as detectron2 writes it
        # The cell's log.txt, as train_net writes one into its OUTPUT_DIR (appended to by a
        # resumed cell); only while this cell trains, so each log holds its own cell.
        log_file = logging.FileHandler(os.path.join(cfg.OUTPUT_DIR, "log.txt"))
        log_file.setFormatter(logging.Formatter("[%(asctime)s] %(name)s %(levelname)s: %(message)s",
                                                datefmt="%m/%d %H:%M:%S"))
        logger = logging.getLogger("detectron2")
        logger.addHandler(log_file)
        try:
            trainer = DropBlockTrainer(cfg)
            # resume: run_sweep checked the folder's checkpoint is of this very config.
            trainer.resume_or_load(resume=resume)
            results = trainer.train()
        finally:
            logger.removeHandler(log_file)
            log_file.close()
        if not results:
            raise RuntimeError(f"cell block_size={block_size} keep_prob={keep_prob}: "
                               "no evaluation results")
        task, key = metric_name.split("/")
        return float(results[task][key])

    csv_path = os.path.join(args.output_dir, "sweep.csv")
    # One sweep per folder at a time: two would train and append the same cells.
    claim_output_dir(args.output_dir, "--output-dir")
    values = run_sweep(cells, train_cell, csv_path, metric_name, cell_config=cell_config)
    # Every row of the CSV (run_sweep checked they are all this configuration's), so a
    # rerun with part of the grid redraws the whole heatmap, not that part.
    everything = {key: row["value"] for key, row in read_sweep_csv(csv_path).items()}
    png = plot_sweep_heatmap(everything, os.path.join(args.output_dir, "sweep.png"), metric_name)
    print(f"csv: {csv_path}\nheatmap: {png} ({len(everything)} cells)")
    return values


if __name__ == "__main__":
    main()
