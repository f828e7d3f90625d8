"""How long the config checks take to read the class names of a COCO-format file of one's own,
against parsing the whole file as detectron2's loader then does.

    python benchmarks/bench_coco_categories.py            # COCO train2017's counts (~570 MB)
    python benchmarks/bench_coco_categories.py --images 100 --annotations-per-image 2

The file is written (streamed, with random boxes and polygons) into a temporary folder, its
80 categories last as in COCO's own files, and removed afterwards. Rows: the project's
`coco_category_names` (a scan for the "categories" key), its `coco_json_has_key` scans of a
Mask R-CNN's training set ("segmentation", in the first annotation) and a Keypoint R-CNN's
("keypoints", in none: the whole file), `json.load` of the whole file, and pycocotools' `COCO`
(what detectron2's load_coco_json runs: the parse plus its index).
"""
import argparse
import contextlib
import io
import json
import os
import random
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from dropblock_det.data.coco_json import coco_category_names, coco_json_has_key  # noqa: E402


def write_coco_file(path: str, images: int, annotations_per_image: float, seed: int = 0) -> None:
    """A COCO-format file of `images` images and about `annotations_per_image` boxes with
    12-point polygons each, and 80 categories at the end."""
    rng = random.Random(seed)
    with open(path, "w") as f:
        f.write('{"info": {"description": "bench_coco_categories"}, "licenses": [], "images": [')
        f.write(", ".join(json.dumps({"id": i, "file_name": f"{i:012d}.jpg", "width": 640, "height": 480})
                          for i in range(images)))
        f.write('], "annotations": [')
        total = int(images * annotations_per_image)
        for j in range(total):
            x, y = rng.uniform(0, 600), rng.uniform(0, 440)
            f.write(("" if j == 0 else ", ") + json.dumps({
                "id": j + 1, "image_id": j % max(images, 1), "category_id": 1 + j % 80, "iscrowd": 0,
                "bbox": [round(x, 2), round(y, 2), 30.5, 40.25], "area": 1227.6,
                "segmentation": [[round(rng.uniform(0, 640), 2) for _ in range(24)]]}))
        f.write('], "categories": ')
        json.dump([{"id": i + 1, "name": f"class_{i}", "supercategory": "thing"} for i in range(80)], f)
        f.write("}")


def _seconds(fn, repeats: int) -> float:
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=118287, help="images in the file (train2017: 118287)")
    parser.add_argument("--annotations-per-image", type=float, default=7.3, help="train2017: 7.3")
    parser.add_argument("--repeats", type=int, default=1, help="runs of each reader; the fastest is shown")
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "instances.json")
        write_coco_file(path, args.images, args.annotations_per_image)
        size = os.path.getsize(path) / 2 ** 20
        names = coco_category_names(path)
        assert names == [f"class_{i}" for i in range(80)], names
        assert (coco_json_has_key(path, "segmentation"), coco_json_has_key(path, "keypoints")) == (True, False)

        def pycocotools_index():
            from pycocotools.coco import COCO

            with contextlib.redirect_stdout(io.StringIO()):
                COCO(path)

        def load_whole_file():
            with open(path) as f:
                json.load(f)

        print("| file | reader | s |\n|---|---|---:|")
        for name, fn in (("dropblock_det coco_category_names (scan)", lambda: coco_category_names(path)),
                         ('dropblock_det coco_json_has_key "segmentation" (scan)',
                          lambda: coco_json_has_key(path, "segmentation")),
                         ('dropblock_det coco_json_has_key "keypoints" (scan)',
                          lambda: coco_json_has_key(path, "keypoints")),
                         ("json.load (whole file)", load_whole_file),
                         ("pycocotools COCO (detectron2's load_coco_json)", pycocotools_index)):
            print(f"| {size:.1f} MiB | {name} | {_seconds(fn, args.repeats):.3f} |")


if __name__ == "__main__":
    main()
