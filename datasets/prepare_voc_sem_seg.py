#!/usr/bin/env python
"""Prepare PASCAL VOC 2012 + SBD for `voc_2012_sem_seg_train_aug` / `voc_2012_sem_seg_val`.

    python datasets/prepare_voc_sem_seg.py --voc datasets/VOC2012 --sbd benchmark_RELEASE

Downloads (not fetched by this script):
  VOC 2012:  http://host.robots.ox.ac.uk/pascal/VOC/voc2012/VOCtrainval_11-May-2012.tar
  SBD:       http://www.eecs.berkeley.edu/Research/Projects/CS/vision/grouping/semantic_contours/benchmark.tgz

Writes <out>/SegmentationClassAug/*.png (single-channel index PNGs) and
<out>/ImageSets/SegmentationAug/{train_aug,val}.txt; <out> defaults to the --voc folder, which
must then be (or be linked as) $DETECTRON2_DATASETS/VOC2012. Safe to re-run; files of the
same names that it did not write (another tool's SegmentationClassAug, say) are reported, not
replaced, unless --overwrite. The logic lives in dropblock_det/data/prepare_voc.py.
"""
import argparse
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from a checkout

from dropblock_det.data.prepare_voc import prepare_voc_sem_seg  # noqa: E402


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--voc", required=True, help="VOCdevkit/VOC2012 folder")
    parser.add_argument("--sbd", required=True, help="SBD benchmark_RELEASE folder")
    parser.add_argument("--out", default=None, help="output folder (default: the --voc folder)")
    parser.add_argument("--overwrite", action="store_true",
                        help="rewrite up-to-date label PNGs, and replace label PNGs and split "
                             "files this script did not write (refused otherwise)")
    args = parser.parse_args(argv)
    # `--voc=~/x` reaches us unexpanded (the shell expands only a separate `~/x`).
    voc, sbd = os.path.expanduser(args.voc), os.path.expanduser(args.sbd)
    out = None if args.out is None else os.path.expanduser(args.out)
    try:
        s = prepare_voc_sem_seg(voc, sbd, out, overwrite=args.overwrite)
    except (OSError, ValueError) as e:  # missing, in the way, unwritable (the message names the file)
        print(f"error: {e}", file=sys.stderr)
        return 1
    print(
        f"train_aug: {s.num_train_aug} images, val: {s.num_val} images "
        f"(labels from VOC: {s.num_from_voc}, from SBD: {s.num_from_sbd}; "
        f"written: {s.num_written}, already up to date: {s.num_kept})\n"
        f"labels: {s.label_dir}\nsplits: {s.split_dir}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
