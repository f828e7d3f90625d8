#!/usr/bin/env python
"""Write the synthetic datasets (no downloads): a COCO-format detection set and a
VOC-layout semantic segmentation set, deterministic for a given seed.

    python datasets/make_synthetic.py                   # under $DETECTRON2_DATASETS or ./datasets
    python datasets/make_synthetic.py --root /tmp/ds --num-train 200 --image-size 96

A folder that already holds a complete set written with the same parameters is left as
it is (--force rewrites). Layouts: dropblock_det/data/synthetic.py and datasets/README.md.
Once written, they are the registered datasets synthetic_det_{train,val} and
synthetic_sem_seg_{train,val} (with DETECTRON2_DATASETS pointing at the same root).
"""
import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def main(argv=None) -> int:
    from dropblock_det.data.synthetic import (
        DEFAULT_DET_PARAMS,
        DEFAULT_SEM_SEG_PARAMS,
        check_synthetic_params,
        default_datasets_root,
        make_synthetic_detection,
        make_synthetic_sem_seg,
    )

    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--root", help="datasets root (default: $DETECTRON2_DATASETS or ./datasets)")
    p.add_argument("--only", choices=["det", "sem_seg"], help="write only one of the two sets")
    p.add_argument("--force", action="store_true", help="rewrite even if already complete")
    for key, value in DEFAULT_DET_PARAMS.items():
        p.add_argument("--" + key.replace("_", "-"), type=int, default=None,
                       help=f"detection set (default {value}; the sem-seg set keeps its own "
                            "defaults unless --only sem_seg)")
    args = p.parse_args(argv)
    params = {k: getattr(args, k) for k in DEFAULT_DET_PARAMS if getattr(args, k) is not None}
    det_params = params if args.only in (None, "det") else {}
    sem_seg_params = params if args.only == "sem_seg" else {}
    # Both sets' values are checked before either is written, and errors name the flag
    # (a default that clashes with a given flag is named as a flag too).
    flag = lambda key: "--" + key.replace("_", "-")  # noqa: E731
    try:
        if args.only in (None, "det"):
            check_synthetic_params(det_params, DEFAULT_DET_PARAMS, spell=flag)
        if args.only in (None, "sem_seg"):
            check_synthetic_params(sem_seg_params, DEFAULT_SEM_SEG_PARAMS, spell=flag)
    except (KeyError, ValueError) as e:
        p.error(e.args[0])
    # `--root=~/x` reaches us unexpanded (the shell expands only a word-initial ~): without
    # this a folder literally named "~" would be created here.
    root = os.path.expanduser(args.root) if args.root else default_datasets_root()
    if os.path.exists(root) and not os.path.isdir(root):
        p.error(f"--root {root!r} exists and is not a folder")
    t0 = time.time()
    if args.only in (None, "det"):
        folder = make_synthetic_detection(root, force=args.force, **det_params)
        print(f"detection set: {os.path.abspath(folder)}")
    if args.only in (None, "sem_seg"):
        folder = make_synthetic_sem_seg(root, force=args.force, **sem_seg_params)
        print(f"segmentation set: {os.path.abspath(folder)}")
    print(f"done in {time.time() - t0:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
