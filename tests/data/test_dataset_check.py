"""The dataset checker names exactly the expected files that are missing."""
import subprocess
import sys
from pathlib import Path

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
    # A known layout is not enough: detectron2 registers no voc_2012_test, and a training
    # refuses it, where the check said "all present" with its files in place.
    voc = tmp_path / "VOC2012"
    for folder in ("Annotations", "JPEGImages", "ImageSets/Main"):
        (voc / folder).mkdir(parents=True)
    (voc / "ImageSets" / "Main" / "test.txt").write_text("000001\n")
    with pytest.raises(KeyError, match=r"'voc_2012_test' is not registered with detectron2; did you mean .*voc_2012_val"):
        check_datasets(["voc_2012_test"], tmp_path)


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


def test_cli_checks_the_datasets_a_lazy_config_names(tmp_path, capsys):
    # It told the user to train a .py config with lazyconfig_train_net.py instead.
    import importlib.util

    _partial_tree(tmp_path)
    spec = importlib.util.spec_from_file_location("check_datasets_cli", REPO / "datasets" / "check_datasets.py")
    cli = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(cli)
    config = REPO / "configs" / "PascalVOC-Detection" / "retinanet_R_50_FPN_GN_scratch_dropblock_res45_fpn_head_kp0.9_b7_54k.py"
    assert cli.main(["--config-file", str(config), "--root", str(tmp_path)]) == 1
    out = capsys.readouterr().out
    # The test set's missing file, with the keys that name the set (its loader and evaluator).
    assert (f"  voc_2007_test (dataloader.test.dataset.names, dataloader.evaluator.dataset_name): "
            f"{tmp_path / 'VOC2007' / 'ImageSets' / 'Main' / 'test.txt'}") in out.splitlines()
    assert "voc_2007_trainval" not in out.split("missing", 1)[1]  # _partial_tree has it


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


@pytest.mark.parametrize("name, attrs", [
    # detectron2's builtin COCO panoptic and Cityscapes registrations name their files
    # through these: checked through json_file / image_root only, a missing panoptic PNG
    # folder (or every Cityscapes folder) was reported as "all present".
    ("dataset_check_test_panoptic", {"panoptic_root": "panoptic_val2017",
                                     "panoptic_json": "panoptic_val2017.json",
                                     "image_root": "val2017", "json_file": "instances_val2017.json"}),
    ("dataset_check_test_cityscapes", {"image_dir": "leftImg8bit/train", "gt_dir": "gtFine/train"}),
])
def test_panoptic_and_cityscapes_metadata_paths_are_checked(tmp_path, name, attrs):
    from detectron2.data import DatasetCatalog, MetadataCatalog

    DatasetCatalog.register(name, lambda: [])
    try:
        MetadataCatalog.get(name).set(**{k: str(tmp_path / v) for k, v in attrs.items()})
        missing = missing_dataset_paths([name], tmp_path)
        assert sorted(missing[name]) == sorted(tmp_path / v for v in attrs.values())
    finally:
        DatasetCatalog.remove(name)
        MetadataCatalog.remove(name)


def test_a_registered_dataset_under_detectron2_datasets_is_looked_for_under_the_root_given(tmp_path, monkeypatch):
    # A set without a known layout (cityscapes, lvis, a user's) is found through the paths it
    # was registered with, under $DETECTRON2_DATASETS: a --root must move them, else a root
    # without the files was reported "all present" (the files were elsewhere).
    from detectron2.data import DatasetCatalog, MetadataCatalog

    registered, root, elsewhere = tmp_path / "registered", tmp_path / "root", tmp_path / "elsewhere"
    monkeypatch.setenv("DETECTRON2_DATASETS", str(registered))
    name = "dataset_check_test_rooted"
    DatasetCatalog.register(name, lambda: [])
    try:
        MetadataCatalog.get(name).set(image_dir=str(registered / "city" / "val"), gt_dir=str(elsewhere / "gt"))
        (registered / "city" / "val").mkdir(parents=True)
        assert missing_dataset_paths([name]) == {name: [elsewhere / "gt"]}  # where registered
        assert missing_dataset_paths([name], root) == {name: [root / "city" / "val", elsewhere / "gt"]}
        (root / "city" / "val").mkdir(parents=True)
        (elsewhere / "gt").mkdir(parents=True)
        assert missing_dataset_paths([name], root) == {}
    finally:
        DatasetCatalog.remove(name)
        MetadataCatalog.remove(name)


def test_cli_names_an_unknown_dataset_with_the_closest_names_and_no_traceback(tmp_path):
    # A typo in a dataset name: one error line with the near names, not a KeyError traceback
    # listing the first 20 registered names in alphabetical order.
    proc = subprocess.run(
        [sys.executable, str(REPO / "datasets" / "check_datasets.py"), "coco_2017_trian",
         "--root", str(tmp_path)], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1
    assert "Traceback" not in proc.stderr
    assert "'coco_2017_trian'" in proc.stderr and "coco_2017_train" in proc.stderr.split("trian", 1)[1]


def test_builtin_sets_are_checked_where_detectron2_registered_them(tmp_path, monkeypatch):
    # detectron2 v0.6 registers its builtin sets under $DETECTRON2_DATASETS as given, "~"
    # unexpanded, while this project expands it: with DETECTRON2_DATASETS="~/data" the
    # check said "all present" and detectron2 then failed to open "~/data/VOC2007/...".
    from detectron2.data import DatasetCatalog, MetadataCatalog
    from detectron2.data.datasets.builtin_meta import _get_builtin_metadata
    from detectron2.data.datasets.coco import register_coco_instances
    from detectron2.data.datasets.pascal_voc import register_pascal_voc

    _partial_tree(tmp_path / "data")  # coco_2017_val and voc_2007_trainval are complete
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "elsewhere")  # no "~" folder under the working directory
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("DETECTRON2_DATASETS", "~/data")
    names = ["coco_2017_val", "voc_2007_trainval"]
    saved = {n: (DatasetCatalog[n], MetadataCatalog.get(n).as_dict()) for n in names}
    try:
        for n in names:  # as detectron2 v0.6's builtin.py registers them under "~/data"
            DatasetCatalog.remove(n)
            MetadataCatalog.remove(n)
        register_coco_instances("coco_2017_val", _get_builtin_metadata("coco"),
                                "~/data/coco/annotations/instances_val2017.json", "~/data/coco/val2017")
        register_pascal_voc("voc_2007_trainval", "~/data/VOC2007", "trainval", 2007)
        assert missing_dataset_paths(names, tmp_path / "data") == {}  # the files are there...
        missing = missing_dataset_paths(names)  # ...but not where detectron2 will read them
        assert set(missing) == set(names)
        assert all(str(p).startswith("~") for paths in missing.values() for p in paths)
        with pytest.raises(FileNotFoundError, match=r"~/data/VOC2007/ImageSets/Main/trainval\.txt(.|\n)*absolute"):
            check_datasets(names)
    finally:
        for n, (load, meta) in saved.items():
            DatasetCatalog.remove(n)
            MetadataCatalog.remove(n)
            DatasetCatalog.register(n, load)
            MetadataCatalog.get(n).set(**{k: v for k, v in meta.items() if k != "name"})


def test_the_projects_sets_are_checked_where_they_are_registered(tmp_path, monkeypatch):
    # ensure_synthetic_datasets(root) and register_all_voc_sem_seg(root) register under any
    # root; the check looked under $DETECTRON2_DATASETS (./datasets) all the same, and a
    # training whose files were in place stopped with "missing dataset files".
    from dropblock_det.data.synthetic import make_synthetic_detection, register_synthetic_datasets
    from dropblock_det.data.voc_sem_seg import register_all_voc_sem_seg

    monkeypatch.delenv("DETECTRON2_DATASETS", raising=False)
    monkeypatch.chdir(tmp_path)  # no ./datasets
    root = tmp_path / "elsewhere"
    make_synthetic_detection(root, num_train=2, num_val=1, image_size=32, min_object_size=8, max_object_size=16)
    _partial_tree(root)  # VOC2012 sem-seg: images and val.txt, no converted labels
    try:
        register_synthetic_datasets(root)
        register_all_voc_sem_seg(root)
        assert missing_dataset_paths(["synthetic_det_train", "synthetic_det_val"]) == {}
        check_datasets(["synthetic_det_val"])
        assert missing_dataset_paths(["voc_2012_sem_seg_val"]) == {
            "voc_2012_sem_seg_val": [root / "VOC2012" / "SegmentationClassAug"]}
        # A --root given still says where to look.
        assert set(missing_dataset_paths(["synthetic_det_val"], tmp_path / "other")) == {"synthetic_det_val"}
    finally:
        register_synthetic_datasets()
        register_all_voc_sem_seg()


def test_a_users_set_named_like_a_synthetic_split_is_checked_through_its_own_files(tmp_path):
    # "synthetic_det_mine" (register_coco_instances) was looked for as the synthetic layout:
    # "missing ... datasets/synthetic_det/manifest.json", though its json and images were there.
    from detectron2.data import DatasetCatalog, MetadataCatalog
    from detectron2.data.datasets import register_coco_instances

    (tmp_path / "images").mkdir()
    _touch(tmp_path / "ann.json")
    names = ("synthetic_det_mine", "synthetic_sem_seg_mine")
    try:
        register_coco_instances(names[0], {}, str(tmp_path / "ann.json"), str(tmp_path / "images"))
        DatasetCatalog.register(names[1], lambda: [])
        MetadataCatalog.get(names[1]).set(image_root=str(tmp_path / "images"), sem_seg_root=str(tmp_path / "labels"))
        assert missing_dataset_paths(names) == {names[1]: [tmp_path / "labels"]}
    finally:
        for name in names:
            DatasetCatalog.remove(name)
            MetadataCatalog.remove(name)


def test_cli_expands_a_tilde_in_root_as_make_synthetic_does(tmp_path, capsys, monkeypatch):
    # `--root=~/data` reaches the script unexpanded: make_synthetic.py wrote under $HOME/data,
    # and this check called every file missing under "~/data", blaming DETECTRON2_DATASETS.
    import importlib.util

    monkeypatch.setenv("HOME", str(tmp_path))
    _partial_tree(tmp_path / "data")
    spec = importlib.util.spec_from_file_location("check_datasets_cli", REPO / "datasets" / "check_datasets.py")
    cli = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(cli)
    assert cli.main(["coco_2017_val", "--root=~/data"]) == 0
    assert f"all present under {tmp_path / 'data'}" in capsys.readouterr().out


def test_check_datasets_names_the_config_key_of_each_missing_set(tmp_path):
    _partial_tree(tmp_path)
    with pytest.raises(FileNotFoundError) as info:
        check_datasets(["coco_2017_train", "voc_2007_test"], tmp_path, keys={"coco_2017_train": "DATASETS.TRAIN"})
    message = str(info.value)
    assert f"  coco_2017_train (DATASETS.TRAIN): {tmp_path / 'coco' / 'train2017'}" in message.splitlines()
    assert f"  voc_2007_test: {tmp_path / 'VOC2007' / 'ImageSets' / 'Main' / 'test.txt'}" in message.splitlines()


def test_a_set_registered_under_a_tilde_root_is_looked_for_under_the_root_given(tmp_path, monkeypatch):
    # This project expands DETECTRON2_DATASETS=~/...: a set it registered there lies under the
    # expanded folder, and a --root must move it there as well.
    from detectron2.data import DatasetCatalog, MetadataCatalog

    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("DETECTRON2_DATASETS", "~/data")
    name = "dataset_check_test_tilde"
    DatasetCatalog.register(name, lambda: [])
    try:
        MetadataCatalog.get(name).set(image_dir=str(tmp_path / "home" / "data" / "city" / "val"))
        assert missing_dataset_paths([name], tmp_path / "root") == {name: [tmp_path / "root" / "city" / "val"]}
    finally:
        DatasetCatalog.remove(name)
        MetadataCatalog.remove(name)


def test_cli_checks_the_test_sets_of_a_yacs_config_too(tmp_path, capsys):
    import importlib.util

    _partial_tree(tmp_path)
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text('_BASE_: "%s"\nDATASETS:\n  TRAIN: ("coco_2017_val",)\n'
                   '  TEST: ("voc_2007_test",)\n' % (REPO / "configs" / "Base-RetinaNet.yaml"))
    spec = importlib.util.spec_from_file_location("check_datasets_cli", REPO / "datasets" / "check_datasets.py")
    cli = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(cli)
    assert cli.main(["--config-file", str(cfg), "--root", str(tmp_path)]) == 1
    assert "  voc_2007_test (DATASETS.TEST): " in capsys.readouterr().out
    # A set named by both keys, and one named on the command line too (no key of its own).
    cfg.write_text('_BASE_: "%s"\nDATASETS:\n  TRAIN: ("voc_2007_test",)\n'
                   '  TEST: ("voc_2007_test",)\n' % (REPO / "configs" / "Base-RetinaNet.yaml"))
    assert cli.main(["coco_2017_train", "--config-file", str(cfg), "--root", str(tmp_path)]) == 1
    out = capsys.readouterr().out.splitlines()
    assert f"  voc_2007_test (DATASETS.TRAIN, DATASETS.TEST): {tmp_path / 'VOC2007' / 'ImageSets' / 'Main' / 'test.txt'}" in out
    assert f"  coco_2017_train: {tmp_path / 'coco' / 'train2017'}" in out


def test_an_unknown_dataset_no_registered_name_is_close_to_is_told_so_without_the_whole_list(tmp_path):
    # The ~60 registered names in one line said nothing about a name none is close to: the
    # dataset checker points to DatasetCatalog.list() (the config checks list them, list_all).
    from detectron2.data import DatasetCatalog

    from dropblock_det.data.dataset_check import closest_registered_names

    with pytest.raises(KeyError) as refused:
        expected_dataset_paths("zzzzqqqq", tmp_path)
    message = refused.value.args[0]
    assert message.endswith(f"none of the {len(DatasetCatalog.list())} registered names is close "
                            "(DatasetCatalog.list())")
    assert "coco_2017_train" not in message
    assert closest_registered_names("zzzzqqqq", list_all=True).endswith(", ".join(sorted(DatasetCatalog.list())))


def test_voc_folders_left_in_vocdevkit_are_pointed_to(tmp_path):
    # VOC's tars unpack to VOCdevkit/VOC2007: the listing said "missing" for data one level down.
    for sub in ("Annotations", "JPEGImages", "ImageSets/Main"):
        (tmp_path / "VOCdevkit" / "VOC2007" / sub).mkdir(parents=True)
    with pytest.raises(FileNotFoundError) as info:
        check_datasets(["voc_2007_trainval", "voc_2007_test", "voc_2012_trainval"], tmp_path)
    hints = [line for line in str(info.value).splitlines() if "VOCdevkit" in line]
    assert hints == [f"{tmp_path / 'VOCdevkit' / 'VOC2007'} exists: move VOC2007 out of VOCdevkit/ to "
                     f"{tmp_path / 'VOC2007'} (the layout datasets/README.md gives)"]


def test_the_vocdevkit_hint_is_given_for_a_missing_voc_year_folder_only(tmp_path):
    # A set of one's own registered with its VOC folder (metadata dirname) lists that very
    # folder as missing; a VOC folder that exists (one of its subfolders missing) is not to be
    # moved out of VOCdevkit/; "VOC2007_old" is no VOC year folder.
    from dropblock_det.data.dataset_check import format_missing

    for name in ("VOC2007", "VOC2012", "VOC2007_old"):
        (tmp_path / "VOCdevkit" / name).mkdir(parents=True)
    (tmp_path / "VOC2012").mkdir()
    report = format_missing({"mine": [tmp_path / "VOC2007"], "theirs": [tmp_path / "VOC2012" / "Annotations"],
                             "old": [tmp_path / "VOC2007_old" / "Annotations"]})
    assert [line for line in report.splitlines() if "VOCdevkit" in line] == [
        f"{tmp_path / 'VOCdevkit' / 'VOC2007'} exists: move VOC2007 out of VOCdevkit/ to {tmp_path / 'VOC2007'} "
        "(the layout datasets/README.md gives)"]


def test_unprepared_voc_segmentation_labels_name_the_preparation_step(tmp_path):
    # SegmentationClassAug/ and ImageSets/SegmentationAug/ come from no download.
    _partial_tree(tmp_path)
    with pytest.raises(FileNotFoundError) as info:
        check_datasets(["voc_2012_sem_seg_train_aug", "voc_2012_sem_seg_val"], tmp_path)
    voc = tmp_path / "VOC2012"
    hints = [line for line in str(info.value).splitlines() if "prepare_voc_sem_seg" in line]
    assert hints == [f"{voc / 'SegmentationClassAug'} and {voc / 'ImageSets' / 'SegmentationAug'} are written by "
                     f"python datasets/prepare_voc_sem_seg.py --voc {voc} --sbd <SBD's benchmark_RELEASE folder>"]
    (voc / "SegmentationClassAug").mkdir()  # the labels, without the train_aug split
    with pytest.raises(FileNotFoundError) as info:
        check_datasets(["voc_2012_sem_seg_train_aug"], tmp_path)
    assert [line for line in str(info.value).splitlines() if "prepare_voc_sem_seg" in line] == hints
    (voc / "SegmentationClassAug").rmdir()  # the split files, without the labels
    _touch(voc / "ImageSets" / "SegmentationAug" / "train_aug.txt")
    with pytest.raises(FileNotFoundError) as info:
        check_datasets(["voc_2012_sem_seg_train_aug"], tmp_path)
    assert [line for line in str(info.value).splitlines() if "prepare_voc_sem_seg" in line] == hints


@pytest.mark.parametrize("opt", ["DATASETS.TEST", "dataloader.test.dataset.names=voc_2012_val"])
def test_cli_refuses_a_config_opt_given_as_a_dataset_name(tmp_path, capsys, opt):
    # It said "dataset 'DATASETS.TEST' is not registered with detectron2".
    import importlib.util

    spec = importlib.util.spec_from_file_location("check_datasets_cli", REPO / "datasets" / "check_datasets.py")
    cli = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(cli)
    with pytest.raises(SystemExit) as info:
        cli.main(["--config-file", str(REPO / "configs" / "PascalVOC-Detection" / "retinanet_R_50_FPN_GN_scratch_54k.yaml"),
                  "--root", str(tmp_path), opt, "('voc_2012_val',)"])
    assert info.value.code == 2
    assert f"error: {opt!r} is a config opt, not a dataset name: this tool takes no opts" in capsys.readouterr().err


def test_a_coco_split_registered_without_its_json_file_is_checked_in_its_layout(tmp_path, monkeypatch):
    # Both registered paths are needed to use them; with one missing, the split's own
    # layout under the datasets root (coco_2017_val_100: its 100-image json) is checked.
    from detectron2.data import MetadataCatalog

    monkeypatch.setenv("DETECTRON2_DATASETS", str(tmp_path))
    meta = MetadataCatalog.get("coco_2017_val_100")
    assert expected_dataset_paths("coco_2017_val_100") == [Path(meta.image_root), Path(meta.json_file)]
    monkeypatch.delattr(meta, "json_file")
    assert expected_dataset_paths("coco_2017_val_100") == [tmp_path / "coco" / "val2017",
                                                           tmp_path / "coco" / "annotations" / "instances_val2017_100.json"]


def test_a_set_registered_under_the_default_datasets_folder_is_looked_for_under_the_root_given(tmp_path, monkeypatch):
    # $DETECTRON2_DATASETS unset: detectron2's and a user's sets are registered under "datasets".
    from detectron2.data import DatasetCatalog, MetadataCatalog

    monkeypatch.delenv("DETECTRON2_DATASETS", raising=False)
    name = "dataset_check_test_default_root"
    DatasetCatalog.register(name, lambda: [])
    try:
        MetadataCatalog.get(name).set(image_dir="datasets/city/val", gt_dir="elsewhere/gt")
        assert expected_dataset_paths(name, tmp_path) == [tmp_path / "city" / "val", Path("elsewhere/gt")]
    finally:
        DatasetCatalog.remove(name)
        MetadataCatalog.remove(name)


def test_the_report_names_the_root_and_an_unset_detectron2_datasets(tmp_path, monkeypatch):
    monkeypatch.delenv("DETECTRON2_DATASETS", raising=False)
    with pytest.raises(FileNotFoundError) as info:
        check_datasets(["voc_2007_test"], tmp_path)
    assert str(info.value).splitlines()[0] == f"missing dataset files under {tmp_path} (DETECTRON2_DATASETS=<unset>):"


@pytest.mark.parametrize("name", ["mine_train", "foo_train"])
def test_an_unregistered_set_of_ones_own_is_told_how_to_register_it_not_a_loosely_similar_builtin(name):
    # "mine_train" (the README's own set, run without its registration) was told "did you
    # mean lvis_v1_train?" (difflib's 0.6 cutoff), "foo_train" coco_2017_train, voc_2012_train.
    from dropblock_det.data.dataset_check import unregistered_dataset_error

    message = unregistered_dataset_error("DATASETS.TRAIN", name).args[0]
    assert message.startswith(f"DATASETS.TRAIN names {name!r}, which is not a registered dataset; a set of your "
                              "own is registered before the tool runs (README: 'Your own dataset'); none of ")
    assert "did you mean" not in message
    # A typo of a registered name is still told it.
    assert "; did you mean coco_2017_train, coco_2014_train, " in unregistered_dataset_error(
        "DATASETS.TRAIN", "coco_2017_trian").args[0]


def test_a_set_of_ones_own_with_a_wrong_path_is_told_its_registrations_key_not_the_datasets_root(tmp_path, monkeypatch):
    # register_coco_instances("mine_train", {}, <a misspelt json>, <images>) was reported as
    # "missing dataset files under datasets (DETECTRON2_DATASETS=<unset>)", then "See
    # datasets/README.md ... (the synthetic sets: python datasets/make_synthetic.py)": neither
    # where the path comes from nor which of the two it is.
    from detectron2.data import DatasetCatalog, MetadataCatalog
    from detectron2.data.datasets import register_coco_instances

    monkeypatch.delenv("DETECTRON2_DATASETS", raising=False)
    (tmp_path / "images").mkdir()
    name = "dataset_check_test_own_set"
    register_coco_instances(name, {}, str(tmp_path / "trian.json"), str(tmp_path / "images"))
    try:
        with pytest.raises(FileNotFoundError) as info:
            check_datasets([name], keys={name: "DATASETS.TRAIN"})
        assert str(info.value).splitlines() == [
            "missing dataset files (where their registrations put them):",
            f"  {name} (DATASETS.TRAIN): {tmp_path / 'trian.json'} (its registration's json_file)",
            "A set of your own is read where its registration puts it (register_coco_instances(name, "
            "metadata, json_file, image_root)): correct the path in the script that registers it (README: 'Your "
            "own dataset'), or put the file there."]
        # Beside a builtin set, the root and datasets/README.md are still named for that one.
        with pytest.raises(FileNotFoundError) as info:
            check_datasets([name, "voc_2007_test"])
        lines = str(info.value).splitlines()
        assert lines[0].startswith("missing dataset files under ")
        assert f"  {name}: {tmp_path / 'trian.json'} (its registration's json_file)" in lines
        assert lines[-1].startswith("See datasets/README.md")
    finally:
        DatasetCatalog.remove(name)
        MetadataCatalog.remove(name)


def test_a_relative_path_of_a_set_of_ones_own_is_named_with_the_folder_it_is_read_from(tmp_path, monkeypatch):
    # The README's register_coco_instances("mine_train", {}, "mine/annotations/train.json",
    # "mine/images") run from another folder was told "mine/images" alone.
    from detectron2.data import DatasetCatalog, MetadataCatalog
    from detectron2.data.datasets import register_coco_instances

    monkeypatch.delenv("DETECTRON2_DATASETS", raising=False)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "mine" / "annotations").mkdir(parents=True)
    (tmp_path / "mine" / "annotations" / "train.json").write_text("{}")
    name = "dataset_check_test_relative_own_set"
    register_coco_instances(name, {}, "mine/annotations/train.json", "mine/images")
    try:
        with pytest.raises(FileNotFoundError) as info:
            check_datasets([name])
        assert str(info.value).splitlines()[1] == (
            f"  {name}: mine/images (its registration's image_root, relative to the current folder {tmp_path})")
    finally:
        DatasetCatalog.remove(name)
        MetadataCatalog.remove(name)


# --- stop 58 ---
def test_detectron2s_own_set_registered_under_the_datasets_root_is_not_taken_for_one_of_your_own(tmp_path,
                                                                                                   monkeypatch):
    # detectron2 registers its builtin sets of no layout this module knows (LVIS, Cityscapes)
    # under $DETECTRON2_DATASETS at its import, with their paths in the metadata as one's own
    # set has them: those are told the datasets root and datasets/README.md, not "correct the
    # path in the script that registers it" (mutation 58D's D15).
    from detectron2.data import MetadataCatalog

    json_file = Path(MetadataCatalog.get("lvis_v1_val").json_file)  # <root>/lvis/lvis_v1_val.json
    if json_file.exists():
        pytest.skip(f"{json_file} exists here")
    monkeypatch.setenv("DETECTRON2_DATASETS", str(json_file.parents[1]))
    monkeypatch.chdir(tmp_path)
    with pytest.raises(FileNotFoundError) as info:
        check_datasets(["lvis_v1_val"])
    lines = str(info.value).splitlines()
    assert lines[0] == f"missing dataset files under {json_file.parents[1]} (DETECTRON2_DATASETS={json_file.parents[1]}):"
    assert f"  lvis_v1_val: {json_file}" in lines
    assert not any("registration" in line for line in lines) and lines[-1].startswith("See datasets/README.md")


# --- mutation 59T ---
def test_cli_without_names_or_a_config_is_refused_not_reported_all_present(tmp_path, capsys):
    # Nothing to check is a mistaken command line (the names left out), not "all present".
    import importlib.util

    spec = importlib.util.spec_from_file_location("check_datasets_cli", REPO / "datasets" / "check_datasets.py")
    cli = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(cli)
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["--root", str(tmp_path)])
    assert exit_info.value.code == 2
    captured = capsys.readouterr()
    assert "error: give dataset names or --config-file" in captured.err and "all present" not in captured.out
