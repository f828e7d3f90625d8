#!/usr/bin/env python
"""List exactly which expected file or folder is missing for some datasets.

    python datasets/check_datasets.py --config-file configs/COCO-Detection/X.yaml
    python datasets/check_datasets.py --config-file configs/PascalVOC-Detection/X.py
    python datasets/check_datasets.py coco_2017_train voc_2012_sem_seg_val --root /data

Datasets are read from --root (default: $DETECTRON2_DATASETS, else ./datasets); see
datasets/README.md for the layouts. Exit status 0 when everything is present, 1 otherwise.
"""
import argparse
import os
import re
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("names", nargs="*", help="dataset names (e.g. coco_2017_train)")
    p.add_argument("--config-file", help="check the datasets of this config: DATASETS.TRAIN and DATASETS.TEST of a "
                                         "yacs .yaml; those a LazyConfig's (.py, or a LazyConfig run's config.yaml) "
                                         "loaders and evaluator name")
    p.add_argument("--root", help="datasets root (default: $DETECTRON2_DATASETS or ./datasets)")
    args = p.parse_args(argv)

    import dropblock_det  # noqa: F401  (registers the project's datasets)
    from dropblock_det.data.dataset_check import format_missing, missing_dataset_paths
    from dropblock_det.data.synthetic import default_datasets_root

    names = list(args.names)
    # A training command's opts given here read as dataset names: "dataset 'DATASETS.TEST' is
    # not registered". Its own datasets are checked by the tool before anything else.
    opts = [n for n in names if "=" in n or re.match(r"^[A-Z][A-Z0-9_]*(\.[A-Z0-9_]+)+$", n)]
    if opts:
        p.error(f"{opts[0]!r} is a config opt, not a dataset name: this tool takes no opts. Name the "
                "datasets the opts give (e.g. voc_2012_val), or run the training command itself: "
                "it checks them before anything else")
    keys = {}  # a config's dataset name -> the keys naming it, shown beside each missing set
    if args.config_file:
        from dropblock_det.engine.lazy_config_checks import (
            is_lazy_config_file,
            lazy_dataset_names,
            load_lazy_config,
        )
        from dropblock_det.engine.config_checks import load_config

        if is_lazy_config_file(args.config_file):
            named = lazy_dataset_names(load_lazy_config(args.config_file))
        else:
            cfg = load_config(args.config_file)
            named = ([("DATASETS.TRAIN", name) for name in cfg.DATASETS.TRAIN]
                     + [("DATASETS.TEST", name) for name in cfg.DATASETS.TEST])
        for key, name in named:
            names.append(name)
            keys.setdefault(name, {})[key] = None  # a dict: the keys in order, each once
    if not names:
        p.error("give dataset names or --config-file")
    names = list(dict.fromkeys(names))
    # Without --root, the paths detectron2 registered ($DETECTRON2_DATASETS) are checked.
    # `--root=~/x` reaches us unexpanded (as in make_synthetic.py, which writes under ~/x).
    given_root = os.path.expanduser(args.root) if args.root else None
    root = given_root or default_datasets_root()
    try:
        missing = missing_dataset_paths(names, given_root)
    except KeyError as e:  # a name neither registered nor of a known layout (a typo)
        print(f"error: {e.args[0]}", file=sys.stderr)
        return 1
    if missing:
        print(format_missing(missing, root, {name: ", ".join(set_keys) for name, set_keys in keys.items()}))
        return 1
    print(f"all present under {os.path.abspath(root)}: {', '.join(names)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
