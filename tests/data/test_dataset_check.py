"""The dataset checker names exactly the expected files that are missing."""
import subprocess
import sys

import pytest

from conftest import REPO
from dropblock_det.data.dataset_check import (
    check_datasets,
    expected_dataset_paths,
    missing_dataset_paths,
)


def _touch(path):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("")


def _partial_tree(root):
    """COCO with val but no train images; VOC2007 without test split file; VOC2012 sem-seg
    with images but no converted labels."""
    (root / "coco" / "val2017").mkdir(parents=True)
    _touch(root / "coco" / "annotations" / "instances_val2017.json")
    _touch(root / "coco" / "annotations" / "instances_train2017.json")
    for sub in ("Annotations", "JPEGImages"):
        (root / "VOC2007" / sub).mkdir(parents=True)
    _touch(root / "VOC2007" / "ImageSets" / "Main" / "trainval.txt")
    (root / "VOC2012" / "JPEGImages").mkdir(parents=True)
    _touch(root / "VOC2012" / "ImageSets" / "SegmentationAug" / "val.txt")


def test_partial_tree_reports_exactly_the_missing_paths(tmp_path):
    _partial_tree(tmp_path)
    names = ["coco_2017_train", "coco_2017_val", "voc_2007_trainval", "voc_2007_test",
             "voc_2012_sem_seg_val", "voc_2012_sem_seg_train_aug"]
    missing = missing_dataset_paths(names, tmp_path)
    rel = {k: sorted(p.relative_to(tmp_path).as_posix() for p in v) for k, v in missing.items()}
    assert rel == {
        "coco_2017_train": ["coco/train2017"],
        "voc_2007_test": ["VOC2007/ImageSets/Main/test.txt"],
        "voc_2012_sem_seg_val": ["VOC2012/SegmentationClassAug"],
        "voc_2012_sem_seg_train_aug": ["VOC2012/ImageSets/SegmentationAug/train_aug.txt",
                                       "VOC2012/SegmentationClassAug"],
    }


def test_check_datasets_raises_listing_every_missing_path(tmp_path):
    _partial_tree(tmp_path)
    with pytest.raises(FileNotFoundError) as info:
        check_datasets(["coco_2017_train", "voc_2007_test"], tmp_path)
    message = str(info.value)
    assert "coco/train2017" in message and "VOC2007/ImageSets/Main/test.txt" in message
    assert "datasets/README.md" in message
    check_datasets(["coco_2017_val", "voc_2007_trainval"], tmp_path)  # complete: no error


def test_unknown_dataset_name_is_a_key_error_naming_it(tmp_path):
    with pytest.raises(KeyError, match="coco_2071_val"):
        expected_dataset_paths("coco_2071_val", tmp_path)


def test_synthetic_sets_are_checked_through_their_manifest(tmp_path):
    from dropblock_det.data.synthetic import make_synthetic_detection

    assert "synthetic_det_val" in missing_dataset_paths(["synthetic_det_val"], tmp_path)
    make_synthetic_detection(tmp_path, num_train=2, num_val=1, image_size=32,
                             min_object_size=8, max_object_size=16)
    assert missing_dataset_paths(["synthetic_det_train", "synthetic_det_val"], tmp_path) == {}


def test_cli_lists_missing_paths_for_the_datasets_of_a_config(tmp_path):
    _partial_tree(tmp_path)
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text('_BASE_: "%s"\nDATASETS:\n  TRAIN: ("coco_2017_train",)\n'
                   '  TEST: ("coco_2017_val",)\n' % (REPO / "configs" / "Base-RetinaNet.yaml"))
    proc = subprocess.run(
        [sys.executable, str(REPO / "datasets" / "check_datasets.py"), "--config-file", str(cfg),
         "--root", str(tmp_path)], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1, proc.stderr
    assert "coco_2017_train" in proc.stdout and "coco/train2017" in proc.stdout
    assert "coco_2017_val" not in proc.stdout.split("missing", 1)[1]



def test_cli_reports_all_present_with_status_0(tmp_path, capsys):
    import importlib.util

    _partial_tree(tmp_path)
    spec = importlib.util.spec_from_file_location("check_datasets_cli",
                                                  REPO / "datasets" / "check_datasets.py")
    cli = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(cli)
    assert cli.main(["coco_2017_val", "voc_2007_trainval", "--root", str(tmp_path)]) == 0
    assert "all present" in capsys.readouterr().out
    assert cli.main(["voc_2007_test", "--root", str(tmp_path)]) == 1
    assert "VOC2007/ImageSets/Main/test.txt" in capsys.readouterr().out


@pytest.mark.parametrize("name, expected", [
    ("voc_2007_test", ["VOC2007/Annotations", "VOC2007/JPEGImages", "VOC2007/ImageSets/Main/test.txt"]),
    ("voc_2012_sem_seg_train_aug", ["VOC2012/JPEGImages", "VOC2012/SegmentationClassAug",
                                    "VOC2012/ImageSets/SegmentationAug/train_aug.txt"]),
    ("synthetic_det_val", ["synthetic_det/manifest.json", "synthetic_det/val",
                           "synthetic_det/annotations/instances_val.json"]),
    ("synthetic_sem_seg_val", ["synthetic_sem_seg/manifest.json", "synthetic_sem_seg/JPEGImages",
                               "synthetic_sem_seg/SegmentationClass",
                               "synthetic_sem_seg/ImageSets/Segmentation/val.txt"]),
])
def test_expected_paths_of_each_layout(tmp_path, name, expected):
    # Every path each split needs, that split's own files: a path left out is never checked.
    assert [p.relative_to(tmp_path).as_posix() for p in expected_dataset_paths(name, tmp_path)] == expected


def test_a_synthetic_set_without_its_manifest_is_missing(tmp_path):
    # The manifest is written last: without it the set is incomplete (an interrupted run).
    from dropblock_det.data.synthetic import make_synthetic_detection

    folder = make_synthetic_detection(tmp_path, num_train=2, num_val=1, image_size=32,
                                      min_object_size=8, max_object_size=16)
    (folder / "manifest.json").unlink()
    assert missing_dataset_paths(["synthetic_det_val"], tmp_path) == {"synthetic_det_val": [folder / "manifest.json"]}


def test_a_registered_dataset_is_checked_through_its_metadata_paths(tmp_path):
    from detectron2.data import DatasetCatalog, MetadataCatalog

    name = "dataset_check_test_registered"
    DatasetCatalog.register(name, lambda: [])
    try:
        MetadataCatalog.get(name).set(json_file=str(tmp_path / "a.json"), image_root=str(tmp_path / "images"),
                                      sem_seg_root=str(tmp_path / "labels"), dirname=str(tmp_path / "voc"))
        assert expected_dataset_paths(name, tmp_path) == [tmp_path / "a.json", tmp_path / "images",
                                                          tmp_path / "labels", tmp_path / "voc"]
    finally:
        DatasetCatalog.remove(name)
        MetadataCatalog.remove(name)
