#!/usr/bin/env python
"""The main job (`make main`): RetinaNet with DropBlock, trained from random initialisation,
evaluated with COCO AP.

With no arguments, on a CPU machine with no downloads:
  1. makes the synthetic datasets under $DETECTRON2_DATASETS (default ./datasets), unless a
     complete copy written with the same parameters is already there (a set made there
     with other parameters, e.g. by datasets/make_synthetic.py --num-train 4, is not
     replaced: the job stops, naming it);
  2. trains configs/Synthetic/retinanet_R18_GN_dropblock_res45_kp0.9_b3.yaml (ResNet-18-FPN,
     GN, DropBlock in res4/res5 ramped over training) on CPU, printing progress with an ETA;
  3. evaluates COCO box AP on synthetic_det_val;
  4. writes OUTPUT_DIR/metrics.json (detectron2's per-iteration records, the final AP in
     the last one), OUTPUT_DIR/main_job.png (losses, keep_prob schedule, final AP) and
     OUTPUT_DIR/main_job_summary.json, and prints the final AP and the wall time.
An earlier run's files in OUTPUT_DIR are moved to OUTPUT_DIR/previous_runs/<time>/ first.

The real thing: point DETECTRON2_DATASETS at a folder with coco/ (datasets/README.md) and
give a config, e.g.

    DETECTRON2_DATASETS=/data python tools/main_job.py --num-threads 0 --config-file \\
        configs/COCO-Detection/retinanet_R_50_FPN_GN_scratch_dropblock_res45_kp0.9_b7_3x.yaml

(multi-GPU COCO training: tools/train_net.py --num-gpus 8 with the same config.)
"""
import argparse
import json
import os
import sys
import time
from typing import Any, Dict, List

# OpenMP's wait policy is left to the user: libgomp's default (spin briefly, then sleep)
# was ~13% faster per iteration than OMP_WAIT_POLICY=PASSIVE on an idle 2-core machine;
# on a machine whose cores are busy with other jobs, PASSIVE avoids threads spinning
# against them (export OMP_WAIT_POLICY=PASSIVE before running).

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # tool_args.py, beside this file
from tool_args import checks_passed, parse_tool_args, run_tool, setup_run, user_path  # noqa: E402

DEFAULT_CONFIG = os.path.join(
    REPO, "configs", "Synthetic", "retinanet_R18_GN_dropblock_res45_kp0.9_b3.yaml")


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config-file", type=user_path, default=DEFAULT_CONFIG, help="detectron2 YAML config")
    p.add_argument("--output-dir", type=user_path, default=None,
                   help="where to write (default: an OUTPUT_DIR opt, else the config's "
                        "OUTPUT_DIR, or output/main_job for the default config)")
    p.add_argument("--datasets-root", type=user_path, default=None,
                   help="datasets folder (default: $DETECTRON2_DATASETS, else ./datasets)")
    p.add_argument("--num-threads", type=int, default=2,
                   help="torch CPU threads (0 = torch's default)")
    p.add_argument("opts", nargs=argparse.REMAINDER, default=[],
                   help="config overrides, KEY VALUE pairs")
    return parse_tool_args(p, argv)


def check_output_dir(output_dir: str) -> None:
    """What can be known about OUTPUT_DIR before anything is written: an existing folder is
    claimed (claim_output_dir: it raises when another run holds it, and writes nothing
    there); a path that is not a folder, or under a file, is refused by claim_output_dir
    (which creates nothing then); a folder still to be created is only checked to be
    creatable (PermissionError naming it otherwise), and claimed once the data is ready,
    so that a run failing before then leaves no empty folder behind."""
    from dropblock_det.engine.output_dir import claim_output_dir, deepest_existing_path

    path = os.path.realpath(output_dir)
    existing = deepest_existing_path(path)
    if existing == path or not os.path.isdir(existing):
        claim_output_dir(output_dir)
    elif not os.access(existing, os.W_OK | os.X_OK):
        raise PermissionError(f"OUTPUT_DIR={output_dir!r} cannot be created: {existing} is not writable; "
                              "give another OUTPUT_DIR (--output-dir)")


def check_datasets_root(root: str, source: str) -> None:
    """NotADirectoryError naming `source` (--datasets-root or DETECTRON2_DATASETS, where the
    folder came from; "" for the default ./datasets) where a file stands on the datasets
    folder's path: the data step failed on it naming neither ("Not a directory: '<file>/synthetic_det'")."""
    from dropblock_det.engine.output_dir import deepest_existing_path

    in_the_way = deepest_existing_path(os.path.abspath(root))
    if not os.path.isdir(in_the_way):
        given = f"{source}={root!r}" if source else f"the datasets folder {root!r} (DETECTRON2_DATASETS is not set)"
        raise NotADirectoryError(f"{given} is not a folder: {in_the_way} is a file; give a folder for the datasets"
                                 + ("" if source == "--datasets-root" else " (--datasets-root)"))


def bbox_by_test_set(results: Dict[str, Any], test_sets: List[str]) -> Dict[str, Dict[str, float]]:
    """{test set: its COCO box metrics} from DefaultTrainer.test's results, which are one
    set's own dict, or one per set by name when there are several (as in metrics.json:
    `bbox/AP`, or `<set>/bbox/AP`)."""
    if len(test_sets) == 1:
        return {test_sets[0]: dict((results or {}).get("bbox", {}))}
    return {name: dict((results or {}).get(name, {}).get("bbox", {})) for name in test_sets}


# The box AP each detection evaluator reports under "bbox" (detectron2's PascalVOCDetectionEvaluator:
# VOC-style AP averaged over IoU 0.50:0.95, beside its AP50 and AP75).
_BOX_AP_NAMES = {"coco": "COCO box AP", "pascal_voc": "PASCAL VOC box AP"}


def box_ap_names(test_sets: List[str]) -> Dict[str, str]:
    """{test set: the name of the box AP its evaluator reports}; ValueError naming
    DATASETS.TEST for a set whose evaluator reports none (a semantic segmentation set: the
    main job trains and reports a detector; tools/train_net.py trains any model)."""
    from detectron2.data import MetadataCatalog

    names = {}
    for name in test_sets:
        evaluator_type = getattr(MetadataCatalog.get(name), "evaluator_type", None)
        if evaluator_type not in _BOX_AP_NAMES:
            raise ValueError(f"DATASETS.TEST names {name!r}, a {evaluator_type!r} dataset: the main job reports "
                             f"the box AP of a detector ({', '.join(_BOX_AP_NAMES.values())}); train this config "
                             "with tools/train_net.py")
        names[name] = _BOX_AP_NAMES[evaluator_type]
    return names


def main(argv=None) -> dict:
    t_start = time.time()
    args = parse_args(argv)
    # Refused, not read as "the default": an empty --output-dir would train into (and move
    # aside) output/main_job, a negative thread count would silently use torch's default.
    for flag, value in (("--output-dir", args.output_dir), ("--datasets-root", args.datasets_root)):
        if value is not None and not value.strip():
            raise ValueError(f"{flag} {value!r} is empty: give a folder, or leave the flag out for the default")
    if args.num_threads < 0:
        raise ValueError(f"--num-threads {args.num_threads}: expected >= 0 (0 = torch's default)")
    # Where the datasets folder comes from, to name it in errors (before the flag sets the variable).
    datasets_source = ("--datasets-root" if args.datasets_root else
                       "DETECTRON2_DATASETS" if os.environ.get("DETECTRON2_DATASETS") else "")
    if args.datasets_root:
        # detectron2 reads DETECTRON2_DATASETS when its builtin datasets are imported.
        os.environ["DETECTRON2_DATASETS"] = os.path.abspath(args.datasets_root)

    import torch

    if args.num_threads > 0:
        torch.set_num_threads(args.num_threads)

    import dropblock_det  # noqa: F401  (registers components and datasets)
    from dropblock_det.analysis import final_metric, plot_training_curves, read_metrics
    from dropblock_det.data.file_errors import check_evaluation_files
    from dropblock_det.data.synthetic import default_datasets_root, ensure_synthetic_datasets
    from dropblock_det.engine.config_checks import check_config_before_run, check_dataset_names, load_config
    from dropblock_det.engine.output_dir import archive_previous_run, claim_output_dir
    from dropblock_det.engine.trainer import DropBlockTrainer

    opts = list(args.opts)
    if not args.output_dir and os.path.abspath(args.config_file) == os.path.abspath(DEFAULT_CONFIG):
        # Before the user's opts: an `OUTPUT_DIR d` among them still wins.
        opts = ["OUTPUT_DIR", os.path.join("output", "main_job")] + opts
    cfg = load_config(args.config_file, opts)
    if args.output_dir:
        # Set as the string it is, not merged as an opt: yacs reads an opt's value as a
        # Python literal, so `--output-dir 42` failed with a type mismatch (int vs str).
        cfg.OUTPUT_DIR = args.output_dir

    cfg.freeze()
    names = list(cfg.DATASETS.TRAIN) + list(cfg.DATASETS.TEST)
    synthetic = any(n.startswith("synthetic_") for n in names)
    # Before the earlier run is archived (a bad config moves nothing) and before the
    # synthetic data is made (a bad config costs no dataset making); the files of the
    # synthetic sets are checked once they are there.
    check_config_before_run(cfg, check_files=not synthetic)
    metric_names = box_ap_names(list(cfg.DATASETS.TEST))
    # Then the output folder, still before the data is made: a folder another run holds,
    # or one that cannot be created, costs no dataset making either.
    check_output_dir(cfg.OUTPUT_DIR)
    if synthetic:
        # The other sets' files first: a real set missing beside the synthetic ones costs no
        # dataset making.
        check_dataset_names(cfg, files_made_later=[n for n in names if n.startswith("synthetic_")])
        root = default_datasets_root()
        check_datasets_root(str(root), datasets_source)
        print(f"[main_job] synthetic datasets under {os.path.abspath(root)} "
              "(made unless already there)", flush=True)
        t0 = time.time()
        # Refuses (naming the folder and the parameters) to replace a set made there with
        # other parameters, e.g. by datasets/make_synthetic.py --num-train 4.
        ensure_synthetic_datasets(root)
        print(f"[main_job] datasets ready in {time.time() - t0:.1f} s", flush=True)
        check_dataset_names(cfg)
        check_evaluation_files(list(cfg.DATASETS.TEST))  # as check_config_before_run does

    # A rerun into the same folder starts a fresh run (detectron2's JSONWriter would append
    # to metrics.json, and model_final.pth would be overwritten): the earlier run's files
    # are moved, not deleted, to OUTPUT_DIR/previous_runs/<time>/. Only now, once the data
    # is ready: a run that fails before training leaves the earlier one where it was.
    claim_output_dir(cfg.OUTPUT_DIR)  # one run per folder at a time (see train_net.py)
    # Past the folder's claim (another run holding it is refused in one line): what fails
    # from here on is no refusal of the input, and its traceback shows.
    checks_passed()
    archived = archive_previous_run(cfg.OUTPUT_DIR, (args.config_file, cfg.MODEL.WEIGHTS))
    if archived:
        print(f"[main_job] the earlier run in {cfg.OUTPUT_DIR} was moved to {archived}",
              flush=True)

    # default_setup plus dropblock_det's logger: the package's lines (the training files'
    # check) reach the console and log.txt, as in train_net.
    setup_run(cfg, argparse.Namespace(config_file=args.config_file, eval_only=False,
                                      opts=opts, resume=False, num_gpus=1), cfg.OUTPUT_DIR)
    print(f"[main_job] training {cfg.MODEL.META_ARCHITECTURE} for {cfg.SOLVER.MAX_ITER} "
          f"iterations on {cfg.MODEL.DEVICE}; progress lines below show the ETA", flush=True)
    t_train = time.time()
    trainer = DropBlockTrainer(cfg)
    trainer.resume_or_load(resume=False)
    results = trainer.train() or {}
    train_eval_s = time.time() - t_train

    metrics_path = os.path.join(cfg.OUTPUT_DIR, "metrics.json")
    records = read_metrics(metrics_path)
    test_sets = list(cfg.DATASETS.TEST)
    by_set = bbox_by_test_set(results, test_sets)
    aps = {name: by_set[name].get("AP") for name in test_sets}
    for name in test_sets:
        if aps[name] is None:
            aps[name] = final_metric(records, "bbox/AP" if len(test_sets) == 1 else f"{name}/bbox/AP")
    ap = aps[test_sets[0]] if test_sets else None
    png = plot_training_curves(
        records, os.path.join(cfg.OUTPUT_DIR, "main_job.png"),
        ap_key="bbox/AP" if len(test_sets) <= 1 else f"{test_sets[0]}/bbox/AP",  # none: no AP to plot
        title=f"{os.path.basename(args.config_file)} on {', '.join(test_sets) or 'no test set'}")
    wall_s = time.time() - t_start
    # NaN (e.g. APl with no large objects) is not JSON: written as null.
    by_set = {name: {k: (None if isinstance(v, float) and v != v else v) for k, v in bbox.items()}
              for name, bbox in by_set.items()}
    summary = {
        "config_file": args.config_file,
        "datasets_test": test_sets,
        "max_iter": cfg.SOLVER.MAX_ITER,
        "bbox": by_set[test_sets[0]] if test_sets else {},  # the first test set's
        "bbox_by_test_set": by_set,
        "final_AP": None if ap is None or ap != ap else ap,
        "final_AP_metric": metric_names[test_sets[0]] if test_sets else None,
        "train_and_eval_seconds": round(train_eval_s, 1),
        "wall_seconds": round(wall_s, 1),
    }
    with open(os.path.join(cfg.OUTPUT_DIR, "main_job_summary.json"), "w") as f:
        json.dump(summary, f, indent=1, allow_nan=False)
    print(f"[main_job] metrics: {metrics_path}")
    print(f"[main_job] plot:    {png}")
    # One kind of AP: "final COCO box AP on a: .., on b: ..", else each set's named.
    kinds = sorted(set(metric_names.values()))
    ap_text = ", ".join(f"on {name}" + (f" ({metric_names[name]})" if len(kinds) > 1 else "") + ": "
                        + (f"{value:.2f}" if value is not None else "n/a")
                        for name, value in aps.items()) or "n/a (DATASETS.TEST is empty)"
    print(f"[main_job] final {kinds[0] if len(kinds) == 1 else 'box AP'} {ap_text}  "
          f"(train+eval {train_eval_s / 60:.1f} min, total {wall_s / 60:.1f} min)", flush=True)
    return summary


if __name__ == "__main__":
    run_tool("main_job.py", main)
