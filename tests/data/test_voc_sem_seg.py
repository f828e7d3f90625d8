"""PASCAL VOC 2012 + SBD semantic segmentation: preparation, registration, evaluation.

Everything runs on the miniature VOC + SBD tree of `conftest.make_mini_voc_sbd`.
"""
import importlib.util
import os
import re
import shutil
import stat
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from scipy.io import savemat

from conftest import (
    MINI_SBD_TRAIN,
    MINI_TRAIN_AUG,
    MINI_VOC_TRAIN,
    MINI_VOC_VAL,
    REPO,
    make_mini_voc_sbd,
)
from detectron2.data import DatasetCatalog, MetadataCatalog
from detectron2.data.detection_utils import read_image
from detectron2.evaluation import SemSegEvaluator

import dropblock_det.data  # noqa: F401  (registers the datasets)
from dropblock_det.data.prepare_voc import prepare_voc_sem_seg, read_voc_label
from dropblock_det.data.voc_sem_seg import (
    VOC_SEM_SEG_CLASSES,
    load_voc_sem_seg,
    register_all_voc_sem_seg,
    register_voc_sem_seg,
    voc_palette,
)


@pytest.fixture(scope="module")
def pristine_tree(module_tmp_path_factory):
    root = module_tmp_path_factory.mktemp("mini_voc")
    voc, sbd, labels = make_mini_voc_sbd(root)
    return root, labels


@pytest.fixture
def tree(pristine_tree, tmp_path):
    """A private copy of the unprepared tree: (voc_dir, sbd_dir, labels)."""
    root, labels = pristine_tree
    shutil.copytree(root, tmp_path / "data")
    return tmp_path / "data/VOCdevkit/VOC2012", tmp_path / "data/benchmark_RELEASE", labels


def _split(voc: Path, name: str):
    return (voc / "ImageSets" / "SegmentationAug" / f"{name}.txt").read_text().split()


# ----------------------------------------------------------------------------- prepare
def test_prepare_builds_train_aug_as_voc_train_plus_sbd_minus_voc_val(tree):
    voc, sbd, _ = tree
    summary = prepare_voc_sem_seg(voc, sbd)
    assert _split(voc, "train_aug") == list(MINI_TRAIN_AUG)
    assert _split(voc, "val") == list(MINI_VOC_VAL)
    assert not set(_split(voc, "train_aug")) & set(MINI_VOC_VAL)
    assert (summary.num_train_aug, summary.num_val) == (len(MINI_TRAIN_AUG), len(MINI_VOC_VAL))
    # 4 VOC-labelled ids (train + val), 3 only in SBD
    assert (summary.num_from_voc, summary.num_from_sbd) == (4, 3)


def test_prepared_labels_are_single_channel_class_indices(tree):
    voc, sbd, labels = tree
    prepare_voc_sem_seg(voc, sbd)
    for image_id, expected in labels.items():
        path = voc / "SegmentationClassAug" / f"{image_id}.png"
        with Image.open(path) as img:
            assert img.mode == "L"
            assert np.array_equal(np.array(img), expected), image_id
    # the VOC annotation wins over SBD's where both exist: it has the 255 border band
    both = set(MINI_VOC_TRAIN) & set(MINI_SBD_TRAIN)
    assert both
    for image_id in both:
        assert 255 in np.array(Image.open(voc / "SegmentationClassAug" / f"{image_id}.png"))


def test_prepared_labels_survive_detectron2_convert_L(tree):
    """DatasetMapper reads ground truth with convert("L"): class 15 must stay 15, not 147."""
    voc, sbd, _ = tree
    palette_png = voc / "SegmentationClass" / f"{MINI_VOC_TRAIN[0]}.png"
    assert 147 in read_image(str(palette_png), "L")  # the bug the conversion avoids
    prepare_voc_sem_seg(voc, sbd)
    converted = read_image(str(voc / "SegmentationClassAug" / f"{MINI_VOC_TRAIN[0]}.png"), "L")
    assert 15 in converted and 147 not in converted
    assert set(np.unique(converted)) <= set(range(21)) | {255}


def test_prepare_rerun_keeps_up_to_date_labels_and_rewrites_changed_ones(tree):
    voc, sbd, _ = tree
    first = prepare_voc_sem_seg(voc, sbd)
    assert first.num_written == len(MINI_TRAIN_AUG) + len(MINI_VOC_VAL) and first.num_kept == 0
    before = {p.name: p.read_bytes() for p in (voc / "SegmentationClassAug").iterdir()}

    second = prepare_voc_sem_seg(voc, sbd)
    assert (second.num_written, second.num_kept) == (0, first.num_written)
    after = {p.name: p.read_bytes() for p in (voc / "SegmentationClassAug").iterdir()}
    assert after == before  # same files, no leftovers (temporary files) beside them
    assert _split(voc, "train_aug") == list(MINI_TRAIN_AUG)

    # a source edited after the last run is converted again
    src = voc / "SegmentationClass" / f"{MINI_VOC_VAL[0]}.png"
    img = Image.open(src)
    arr = np.array(img)
    arr[:4, :4] = 7
    edited = Image.fromarray(arr)
    edited.putpalette(img.getpalette())  # "L" -> "P", same indices
    edited.save(src)
    dst = voc / "SegmentationClassAug" / f"{MINI_VOC_VAL[0]}.png"
    os.utime(dst, ns=(src.stat().st_mtime_ns - 10**9,) * 2)  # older than the edited source
    third = prepare_voc_sem_seg(voc, sbd)
    assert third.num_written == 1
    assert (np.array(Image.open(dst))[:4, :4] == 7).all()


def test_prepare_converts_a_source_restored_with_an_older_date_again(tree):
    # tar x, cp -p and rsync -t give a corrected file the archive's (older) date: "output
    # newer than its source" used to keep the stale label.
    voc, sbd, _ = tree
    prepare_voc_sem_seg(voc, sbd)
    src = voc / "SegmentationClass" / f"{MINI_VOC_VAL[0]}.png"
    dst = voc / "SegmentationClassAug" / f"{MINI_VOC_VAL[0]}.png"
    assert dst.stat().st_mtime_ns == src.stat().st_mtime_ns  # the label carries its source's time
    img = Image.open(src)
    arr = np.array(img)
    arr[:4, :4] = 9
    edited = Image.fromarray(arr)
    edited.putpalette(img.getpalette())
    old_time = src.stat().st_mtime_ns - 10**12
    edited.save(src)
    os.utime(src, ns=(old_time, old_time))
    again = prepare_voc_sem_seg(voc, sbd)
    assert again.num_written == 1
    assert (np.array(Image.open(dst))[:4, :4] == 9).all()


@pytest.mark.skipif(os.name != "posix", reason="POSIX permissions")
def test_prepared_files_get_the_umasks_permissions_not_mkstemps_0600(tree, tmp_path):
    # A dataset prepared once on a shared disk must be readable by the users who train.
    voc, sbd, _ = tree
    old = os.umask(0o022)
    try:
        prepare_voc_sem_seg(voc, sbd, tmp_path / "prepared")
    finally:
        os.umask(old)
    files = [*(tmp_path / "prepared" / "SegmentationClassAug").iterdir(),
             *(tmp_path / "prepared" / "ImageSets" / "SegmentationAug").iterdir()]
    assert files and all(stat.S_IMODE(p.stat().st_mode) == 0o644 for p in files)


def test_prepare_writes_to_out_folder_when_given(tree, tmp_path):
    voc, sbd, _ = tree
    out = tmp_path / "prepared"
    prepare_voc_sem_seg(voc, sbd, out)
    assert (out / "ImageSets" / "SegmentationAug" / "train_aug.txt").is_file()
    assert len(list((out / "SegmentationClassAug").glob("*.png"))) == 7
    assert not (voc / "SegmentationClassAug").exists()


def test_corrupt_label_png_is_reported_by_name(tree):
    voc, sbd, _ = tree
    bad = voc / "SegmentationClass" / f"{MINI_VOC_TRAIN[1]}.png"
    bad.write_bytes(bad.read_bytes()[:60])  # truncated PNG
    with pytest.raises(ValueError, match=MINI_VOC_TRAIN[1] + r"\.png"):
        prepare_voc_sem_seg(voc, sbd)
    garbage = voc / "SegmentationClass" / f"{MINI_VOC_TRAIN[1]}.png"
    garbage.write_bytes(b"not a png at all")
    with pytest.raises(ValueError, match="corrupt or unreadable label PNG .*" + MINI_VOC_TRAIN[1]):
        prepare_voc_sem_seg(voc, sbd)


def test_rgb_label_png_is_rejected_as_wrong_mode(tree):
    voc, sbd, _ = tree
    path = voc / "SegmentationClass" / f"{MINI_VOC_VAL[1]}.png"
    Image.open(path).convert("RGB").save(path)
    with pytest.raises(ValueError, match=rf"{MINI_VOC_VAL[1]}\.png: label PNG has mode 'RGB'"):
        read_voc_label(path)
    with pytest.raises(ValueError, match="mode 'RGB'"):
        prepare_voc_sem_seg(voc, sbd)


def test_label_values_outside_voc_classes_are_rejected(tree):
    voc, sbd, _ = tree
    path = voc / "SegmentationClass" / f"{MINI_VOC_VAL[1]}.png"
    Image.fromarray(np.full((48, 64), 40, dtype=np.uint8)).save(path)
    with pytest.raises(ValueError, match=re.escape(str(path)) + r": label values \[40\] are not VOC classes"):
        read_voc_label(path)


def test_missing_sbd_folder_is_reported(tree):
    voc, sbd, _ = tree
    shutil.rmtree(sbd)
    with pytest.raises(FileNotFoundError, match="SBD benchmark_RELEASE folder not found: .*benchmark_RELEASE"):
        prepare_voc_sem_seg(voc, sbd)


def test_missing_sbd_mat_is_reported_before_anything_is_written(tree):
    voc, sbd, _ = tree
    (sbd / "dataset" / "cls" / f"{MINI_SBD_TRAIN[1]}.mat").unlink()
    with pytest.raises(FileNotFoundError, match=rf"SBD label of '{MINI_SBD_TRAIN[1]}'.*\.mat"):
        prepare_voc_sem_seg(voc, sbd)
    assert not (voc / "SegmentationClassAug").exists()


def test_mat_without_segmentation_field_is_reported(tree):
    voc, sbd, _ = tree
    path = sbd / "dataset" / "cls" / f"{MINI_SBD_TRAIN[2]}.mat"
    savemat(path, {"GTcls": {"Boundaries": np.zeros((2, 2))}})
    with pytest.raises(ValueError, match=rf"{MINI_SBD_TRAIN[2]}\.mat: 'GTcls' has no 'Segmentation'"):
        prepare_voc_sem_seg(voc, sbd)
    savemat(path, {"other": np.zeros((2, 2))})
    with pytest.raises(ValueError, match=r"no 'GTcls' variable"):
        prepare_voc_sem_seg(voc, sbd)


def test_label_and_image_size_mismatch_is_reported(tree):
    voc, sbd, _ = tree
    image = voc / "JPEGImages" / f"{MINI_TRAIN_AUG[3]}.jpg"
    Image.new("RGB", (10, 10)).save(image)
    with pytest.raises(ValueError, match=rf"{MINI_TRAIN_AUG[3]}\.mat: label is .* but its image"):
        prepare_voc_sem_seg(voc, sbd)


def test_cli_expands_a_tilde_in_its_folders(tree, capsys, monkeypatch):
    # `--voc=~/VOC2012` reaches the script unexpanded: "~/VOC2012" was looked for literally.
    spec = importlib.util.spec_from_file_location("prepare_voc_sem_seg_cli", REPO / "datasets" / "prepare_voc_sem_seg.py")
    cli = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(cli)
    voc, sbd, _ = tree
    home = voc.parents[1]
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.chdir(home)  # an unexpanded "~/prepared" would land here, not in the checkout
    out = home / "prepared"
    assert cli.main([f"--voc=~/{voc.relative_to(home)}", f"--sbd=~/{sbd.relative_to(home)}", "--out=~/prepared"]) == 0, (
        capsys.readouterr().err)
    assert f"labels: {out}" in capsys.readouterr().out


def test_cli_prepares_and_reports_errors_with_exit_code(tree, capsys):
    spec = importlib.util.spec_from_file_location(
        "prepare_voc_sem_seg_cli", REPO / "datasets" / "prepare_voc_sem_seg.py"
    )
    cli = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(cli)
    voc, sbd, _ = tree
    assert cli.main(["--voc", str(voc), "--sbd", str(sbd)]) == 0
    assert "train_aug: 5 images, val: 2 images" in capsys.readouterr().out
    assert cli.main(["--voc", str(voc), "--sbd", str(sbd / "nope")]) == 1
    assert "nope" in capsys.readouterr().err

    def unwritable(*args, **kwargs):  # root writes anywhere: the error an ordinary user gets
        raise PermissionError(13, "Permission denied", str(voc / "SegmentationClassAug"))

    cli.prepare_voc_sem_seg = unwritable
    assert cli.main(["--voc", str(voc), "--sbd", str(sbd)]) == 1  # a line, not a traceback
    assert capsys.readouterr().err == f"error: [Errno 13] Permission denied: '{voc / 'SegmentationClassAug'}'\n"


# ----------------------------------------------------------------------------- registration
def test_voc_datasets_are_registered_with_sem_seg_metadata():
    for name in ("voc_2012_sem_seg_train_aug", "voc_2012_sem_seg_val"):
        assert name in DatasetCatalog.list()
        meta = MetadataCatalog.get(name)
        assert meta.stuff_classes == list(VOC_SEM_SEG_CLASSES)
        assert len(meta.stuff_classes) == 21 and meta.stuff_classes[0] == "background"
        assert meta.stuff_classes[15] == "person"
        assert meta.ignore_label == 255
        assert meta.evaluator_type == "sem_seg"
        assert meta.image_root.endswith("VOC2012/JPEGImages")
        assert meta.sem_seg_root.endswith("VOC2012/SegmentationClassAug")


def test_voc_palette_matches_voc_colours():
    palette = voc_palette()
    assert palette[0] == (0, 0, 0) and palette[1] == (128, 0, 0) and palette[15] == (192, 128, 128)
    # green and blue apart: bicycle, boat, dog
    assert (palette[2], palette[4], palette[12]) == ((0, 128, 0), (0, 0, 128), (64, 0, 128))
    assert len(set(palette)) == 21


def test_registered_names_load_from_detectron2_datasets_root(tree, monkeypatch):
    voc, sbd, labels = tree
    prepare_voc_sem_seg(voc, sbd)
    monkeypatch.setenv("DETECTRON2_DATASETS", str(voc.parent))  # the folder holding VOC2012/
    try:
        register_all_voc_sem_seg()
        dicts = DatasetCatalog.get("voc_2012_sem_seg_val")
        assert [d["image_id"] for d in dicts] == list(MINI_VOC_VAL)
        for d in dicts:
            assert Path(d["file_name"]).is_file() and Path(d["sem_seg_file_name"]).is_file()
            assert (d["height"], d["width"]) == labels[d["image_id"]].shape
        assert len(DatasetCatalog.get("voc_2012_sem_seg_train_aug")) == len(MINI_TRAIN_AUG)
    finally:
        monkeypatch.delenv("DETECTRON2_DATASETS")
        register_all_voc_sem_seg()


def test_voc_datasets_are_registered_under_datasets_without_detectron2_datasets(monkeypatch):
    # detectron2's rule: $DETECTRON2_DATASETS (a leading ~ expanded), else ./datasets.
    try:
        monkeypatch.delenv("DETECTRON2_DATASETS", raising=False)
        register_all_voc_sem_seg()
        assert MetadataCatalog.get("voc_2012_sem_seg_val").image_root == str(Path("datasets/VOC2012/JPEGImages"))
        monkeypatch.setenv("DETECTRON2_DATASETS", "~/d2")
        register_all_voc_sem_seg()
        assert MetadataCatalog.get("voc_2012_sem_seg_train_aug").sem_seg_root == str(
            Path.home() / "d2/VOC2012/SegmentationClassAug")
    finally:
        monkeypatch.undo()
        register_all_voc_sem_seg()

def test_loading_unprepared_folder_says_to_run_the_prepare_script(tree):
    voc, _, _ = tree
    split_file = voc / "ImageSets" / "SegmentationAug" / "val.txt"
    with pytest.raises(FileNotFoundError,
                       match=rf"^{re.escape(str(split_file))} does not exist: run .*prepare_voc_sem_seg\.py"):
        load_voc_sem_seg(voc, "val")


# ----------------------------------------------------------------------------- evaluation
def _evaluate(name, dicts, predict):
    evaluator = SemSegEvaluator(name, distributed=False)
    evaluator.reset()
    for d in dicts:
        gt = np.array(Image.open(d["sem_seg_file_name"]))
        evaluator.process([d], [{"sem_seg": predict(gt)}])
    return evaluator.evaluate()["sem_seg"]


def _one_hot_logits(classes: np.ndarray) -> torch.Tensor:
    return torch.nn.functional.one_hot(torch.as_tensor(classes.astype(np.int64)), 21).permute(2, 0, 1).float()


def test_sem_seg_evaluator_gives_voc_miou(tree):
    voc, sbd, _ = tree
    prepare_voc_sem_seg(voc, sbd)
    name = "voc_2012_sem_seg_val_mini_eval"
    register_voc_sem_seg(name, voc, "val")
    try:
        dicts = DatasetCatalog.get(name)
        # perfect predictions (ignore pixels predicted as background): mIoU 100
        perfect = _evaluate(name, dicts, lambda gt: _one_hot_logits(np.where(gt == 255, 0, gt)))
        assert perfect["mIoU"] == pytest.approx(100.0)
        # everything predicted background: only the background class has IoU > 0
        flat = _evaluate(name, dicts, lambda gt: _one_hot_logits(np.zeros_like(gt)))
        gts = np.concatenate([np.array(Image.open(d["sem_seg_file_name"])).ravel() for d in dicts])
        valid = gts[gts != 255]
        present = np.unique(valid)
        expected_bg_iou = 100.0 * np.sum(valid == 0) / valid.size
        assert flat["IoU-background"] == pytest.approx(expected_bg_iou)
        assert flat["mIoU"] == pytest.approx(expected_bg_iou / len(present))
    finally:
        DatasetCatalog.remove(name)
        MetadataCatalog.remove(name)


# ----------------------------------------------------------------------------- prepare: more
def test_prepare_overwrite_rewrites_up_to_date_labels(tree):
    voc, sbd, _ = tree
    first = prepare_voc_sem_seg(voc, sbd)
    again = prepare_voc_sem_seg(voc, sbd, overwrite=True)
    assert (again.num_written, again.num_kept) == (first.num_written, 0)


def test_a_failed_write_leaves_no_temporary_file_and_the_old_file_intact(tmp_path):
    from dropblock_det.data.prepare_voc import _write_atomic

    dst = tmp_path / "train_aug.txt"
    dst.write_text("old\n")

    def write_then_fail(f):
        f.write("half")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        _write_atomic(dst, write_then_fail, binary=False)
    assert [p.name for p in tmp_path.iterdir()] == ["train_aug.txt"]
    assert dst.read_text() == "old\n"


@pytest.mark.parametrize("text, encoding, named", [
    ("2007_000032 1\n2007_000039 -1\n", "utf-8", r"train\.txt:1: expected one image id"),
    ("\n\n", "utf-8", "lists no image ids"),
    # A list saved as UTF-16 (Windows Notepad): "'utf-8' codec can't decode byte 0xff", no file.
    ("2007_000032\n", "utf-16", r"train\.txt is not a UTF-8 text file of image ids \(UnicodeDecodeError: "),
])
def test_a_split_file_that_is_not_one_id_per_line_is_rejected_by_name(tree, text, encoding, named):
    # "<id> <flag>" is a detection (ImageSets/Main) split file given by mistake; an empty
    # one would silently give an empty split.
    voc, sbd, _ = tree
    (voc / "ImageSets" / "Segmentation" / "train.txt").write_text(text, encoding=encoding)
    with pytest.raises(ValueError, match=named):
        prepare_voc_sem_seg(voc, sbd)


def test_a_missing_voc_val_label_is_reported_not_taken_from_sbd(tree):
    # MINI_VOC_VAL[0] is in SBD's val too: its VOC label must not be silently replaced by
    # SBD's coarser one (no 255 band) when the PNG is missing.
    voc, sbd, _ = tree
    assert MINI_VOC_VAL[0] in (sbd / "dataset" / "val.txt").read_text().split()
    (voc / "SegmentationClass" / f"{MINI_VOC_VAL[0]}.png").unlink()
    with pytest.raises(FileNotFoundError, match=rf"VOC label of '{MINI_VOC_VAL[0]}'"):
        prepare_voc_sem_seg(voc, sbd)


def test_a_voc_png_wins_over_sbd_for_an_id_listed_by_sbd_only(tree, pristine_tree):
    voc, sbd, _ = tree
    _, labels = pristine_tree
    sbd_only = MINI_SBD_TRAIN[1]
    voc_label = np.where(labels[sbd_only] > 0, 255, 0).astype(np.uint8)
    Image.fromarray(voc_label).save(voc / "SegmentationClass" / f"{sbd_only}.png")
    summary = prepare_voc_sem_seg(voc, sbd)
    assert (summary.num_from_voc, summary.num_from_sbd) == (5, 2)
    assert np.array_equal(np.array(Image.open(voc / "SegmentationClassAug" / f"{sbd_only}.png")), voc_label)


@pytest.mark.parametrize("check_image_sizes", [True, False])
def test_a_missing_image_is_reported_before_anything_is_written(tree, check_image_sizes):
    voc, sbd, _ = tree
    (voc / "JPEGImages" / f"{MINI_TRAIN_AUG[-1]}.jpg").unlink()
    with pytest.raises(FileNotFoundError, match=rf"image of '{MINI_TRAIN_AUG[-1]}'"):
        prepare_voc_sem_seg(voc, sbd, check_image_sizes=check_image_sizes)
    assert not (voc / "SegmentationClassAug").exists()


@pytest.mark.parametrize("value, named", [
    (256, "values outside 0..255"), (-1, "values outside 0..255"), (1.5, "non-integer"), (1j, "integer class indices, got dtype complex128"),
])
def test_an_sbd_label_that_uint8_cannot_hold_is_rejected_not_wrapped(tree, value, named):
    voc, sbd, _ = tree
    path = sbd / "dataset" / "cls" / f"{MINI_SBD_TRAIN[2]}.mat"
    segmentation = np.zeros((48, 64), dtype=np.complex128 if isinstance(value, complex) else np.float64)
    segmentation[:4, :4] = value  # 256 would become 0 (background), -1 255 (ignore), 1.5 1
    savemat(path, {"GTcls": {"Segmentation": segmentation}})
    with pytest.raises(ValueError, match=rf"{MINI_SBD_TRAIN[2]}\.mat: GTcls\.Segmentation .*{named}"):
        prepare_voc_sem_seg(voc, sbd)


@pytest.mark.parametrize("missing", ["label", "image"])
def test_loading_names_a_missing_label_or_image_of_a_listed_id(tree, missing):
    voc, sbd, _ = tree
    prepare_voc_sem_seg(voc, sbd)
    image_id = MINI_VOC_VAL[1]
    path = (voc / "SegmentationClassAug" / f"{image_id}.png" if missing == "label"
            else voc / "JPEGImages" / f"{image_id}.jpg")
    path.unlink()
    with pytest.raises(FileNotFoundError, match=rf"{missing} of '{image_id}' listed in .*val\.txt is missing: "
                                                rf"{re.escape(str(path))}$"):
        load_voc_sem_seg(voc, "val")


def test_loading_names_an_image_whose_header_cannot_be_read(tree):
    # PIL said "OSError: Truncated File Read", naming no file among the 10,582.
    voc, sbd, _ = tree
    prepare_voc_sem_seg(voc, sbd)
    image_id = MINI_VOC_VAL[1]
    path = voc / "JPEGImages" / f"{image_id}.jpg"
    path.write_bytes(path.read_bytes()[:100])
    with pytest.raises(ValueError, match=rf"^image of '{image_id}' listed in .*val\.txt cannot be read: "
                                         rf"{re.escape(str(path))} \(OSError: "):
        load_voc_sem_seg(voc, "val")


def test_registered_voc_metadata_has_the_palette_colours():
    assert MetadataCatalog.get("voc_2012_sem_seg_val").stuff_colors == [list(c) for c in voc_palette()]


def test_prepare_never_replaces_label_or_split_files_it_did_not_write(tree):
    # kazuto1011/deeplab-pytorch and DrSleep's SegmentationClassAug.zip use the same names
    # (SegmentationClassAug/<id>.png, ImageSets/SegmentationAug/train_aug.txt): a user's own
    # copy used to be silently replaced by the first run.
    voc, sbd, _ = tree
    users_label = voc / "SegmentationClassAug" / f"{MINI_TRAIN_AUG[0]}.png"
    users_split = voc / "ImageSets" / "SegmentationAug" / "train_aug.txt"
    users_label.parent.mkdir()
    users_split.parent.mkdir(parents=True)
    Image.fromarray(np.full((48, 64), 7, np.uint8)).save(users_label)
    users_split.write_text("my own list\n")
    before = {p: p.read_bytes() for p in (users_label, users_split)}
    with pytest.raises(FileExistsError, match=rf"not written by .*{MINI_TRAIN_AUG[0]}\.png.*train_aug\.txt.*--overwrite"):
        prepare_voc_sem_seg(voc, sbd)
    assert {p: p.read_bytes() for p in before} == before
    assert sorted(p.name for p in users_label.parent.iterdir()) == [users_label.name]  # nothing written
    # the CLI says the same, exit status 1
    spec = importlib.util.spec_from_file_location("prepare_voc_sem_seg_cli", REPO / "datasets" / "prepare_voc_sem_seg.py")
    cli = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(cli)
    assert cli.main(["--voc", str(voc), "--sbd", str(sbd)]) == 1
    # --overwrite is the explicit request to replace them
    summary = prepare_voc_sem_seg(voc, sbd, overwrite=True)
    assert summary.num_written == len(MINI_TRAIN_AUG) + len(MINI_VOC_VAL)
    assert _split(voc, "train_aug") == list(MINI_TRAIN_AUG)
    assert 7 not in np.unique(np.array(Image.open(users_label)))


def test_cli_overwrite_replaces_files_it_did_not_write(tree, capsys):
    # --overwrite is the command line's only way to replace another tool's label or split file.
    voc, sbd, _ = tree
    users_label = voc / "SegmentationClassAug" / f"{MINI_TRAIN_AUG[0]}.png"
    users_label.parent.mkdir()
    Image.fromarray(np.full((48, 64), 7, np.uint8)).save(users_label)
    spec = importlib.util.spec_from_file_location("prepare_voc_sem_seg_cli", REPO / "datasets" / "prepare_voc_sem_seg.py")
    cli = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(cli)
    assert cli.main(["--voc", str(voc), "--sbd", str(sbd)]) == 1
    assert 7 in np.unique(np.array(Image.open(users_label)))
    assert cli.main(["--voc", str(voc), "--sbd", str(sbd), "--overwrite"]) == 0, capsys.readouterr().err
    assert 7 not in np.unique(np.array(Image.open(users_label)))
    assert _split(voc, "train_aug") == list(MINI_TRAIN_AUG)


def test_prepare_replaces_its_own_outputs_of_earlier_inputs_without_overwrite(tree):
    # Its own stale outputs (a split file of shorter lists, a label whose source changed)
    # are not the user's: re-running after the inputs changed needs no --overwrite.
    voc, sbd, _ = tree
    val_list = voc / "ImageSets" / "Segmentation" / "val.txt"
    val_list.write_text(MINI_VOC_VAL[0] + "\n")
    prepare_voc_sem_seg(voc, sbd)
    val_list.write_text("\n".join(MINI_VOC_VAL) + "\n")
    dst = voc / "SegmentationClassAug" / f"{MINI_TRAIN_AUG[0]}.png"
    os.utime(dst, ns=(dst.stat().st_mtime_ns - 10**9,) * 2)  # as if converted from an older source
    summary = prepare_voc_sem_seg(voc, sbd)
    assert summary.num_written == 2  # the changed label and the new val id's
    assert _split(voc, "val") == list(MINI_VOC_VAL)
    again = prepare_voc_sem_seg(voc, sbd)
    assert (again.num_written, again.num_kept) == (0, len(MINI_TRAIN_AUG) + len(MINI_VOC_VAL))


def test_loading_a_split_file_of_another_format_names_the_file_and_line(tree):
    # "/JPEGImages/x.jpg /SegmentationClassAug/x.png" lines were read token by token: "label of
    # '/JPEGImages/x.jpg' ... is missing: .../JPEGImages/x.jpg.png", after training for val.
    voc, sbd, _ = tree
    prepare_voc_sem_seg(voc, sbd)
    split = voc / "ImageSets" / "SegmentationAug" / "val.txt"
    split.write_text("".join(f"/JPEGImages/{i}.jpg /SegmentationClassAug/{i}.png\n" for i in MINI_VOC_VAL))
    with pytest.raises(ValueError, match=rf"^{re.escape(str(split))}:1: expected one image id per line, got "
                                         r"'/JPEGImages/.*' \(the split files of ImageSets/SegmentationAug/ are "
                                         r"written by datasets/prepare_voc_sem_seg\.py"):
        load_voc_sem_seg(voc, "val")


def test_a_label_and_image_of_the_same_height_but_another_width_is_reported(tree):
    voc, sbd, _ = tree
    image = voc / "JPEGImages" / f"{MINI_TRAIN_AUG[3]}.jpg"
    with Image.open(image) as im:
        width, height = im.size
    Image.new("RGB", (width + 8, height)).save(image)
    with pytest.raises(ValueError, match=rf"label is {height}x{width} \(HxW\) but its image .* is {height}x{width + 8}"):
        prepare_voc_sem_seg(voc, sbd)


def test_a_label_png_another_tool_marked_with_its_software_chunk_is_in_the_way(tree):
    # Only this module's own mark makes a label PNG replaceable: GIMP, ImageMagick and
    # matplotlib write a "Software" chunk too.
    from PIL.PngImagePlugin import PngInfo

    voc, sbd, _ = tree
    users = voc / "SegmentationClassAug" / f"{MINI_TRAIN_AUG[0]}.png"
    users.parent.mkdir()
    info = PngInfo()
    info.add_text("Software", "GIMP 2.10")
    Image.fromarray(np.full((48, 64), 7, np.uint8)).save(users, pnginfo=info)
    before = users.read_bytes()
    with pytest.raises(FileExistsError, match=rf"{MINI_TRAIN_AUG[0]}\.png"):
        prepare_voc_sem_seg(voc, sbd)
    assert users.read_bytes() == before


def test_files_in_the_way_are_counted_and_the_first_three_named(tree):
    voc, sbd, _ = tree
    (voc / "SegmentationClassAug").mkdir()
    for image_id in MINI_TRAIN_AUG[:5]:
        Image.fromarray(np.zeros((48, 64), np.uint8)).save(voc / "SegmentationClassAug" / f"{image_id}.png")
    with pytest.raises(FileExistsError, match=r"^5 file\(s\) in the way .*\.png, .*\.png, .*\.png and 2 more\."):
        prepare_voc_sem_seg(voc, sbd)


def test_a_split_file_of_exactly_the_ids_it_would_write_is_not_in_the_way(tree):
    # deeplab-pytorch's train_aug.txt of the same ids, or a run whose record file was lost:
    # the same content is no one's work to lose, and no reason to ask for --overwrite.
    voc, sbd, _ = tree
    prepare_voc_sem_seg(voc, sbd)
    (voc / "ImageSets" / "SegmentationAug" / ".prepare_voc_sem_seg.json").unlink()
    summary = prepare_voc_sem_seg(voc, sbd)
    assert summary.num_written == 0 and _split(voc, "train_aug") == list(MINI_TRAIN_AUG)


def test_a_folder_named_like_a_split_file_is_in_the_way_before_anything_is_written(tree):
    # Not taken for a split file of its own: the rename onto it failed only after every label
    # had been converted.
    voc, sbd, _ = tree
    folder = voc / "ImageSets" / "SegmentationAug" / "train_aug.txt"
    folder.mkdir(parents=True)
    with pytest.raises(FileExistsError, match=re.escape(str(folder))):
        prepare_voc_sem_seg(voc, sbd)
    assert folder.is_dir() and not (voc / "SegmentationClassAug").exists()


def test_voc_datasets_are_registered_under_the_root_given_over_detectron2_datasets(tmp_path, monkeypatch):
    monkeypatch.setenv("DETECTRON2_DATASETS", str(tmp_path / "env"))
    try:
        register_all_voc_sem_seg(tmp_path / "given")
        for name in ("voc_2012_sem_seg_train_aug", "voc_2012_sem_seg_val"):
            assert MetadataCatalog.get(name).image_root == str(tmp_path / "given" / "VOC2012" / "JPEGImages")
    finally:
        monkeypatch.undo()
        register_all_voc_sem_seg()


# --- mutation run 54b ---
def test_the_last_class_tvmonitor_is_kept_in_voc_and_sbd_labels(tree):
    # Class 20 (tvmonitor) is a VOC class: a class count one short refused every label with a TV.
    voc, sbd, _ = tree
    src = voc / "SegmentationClass" / f"{MINI_VOC_TRAIN[0]}.png"
    img = Image.open(src)
    arr = np.array(img)
    arr[:4, :4] = 20
    edited = Image.fromarray(arr)
    edited.putpalette(img.getpalette())
    edited.save(src)
    sbd_only = MINI_SBD_TRAIN[2]
    with Image.open(voc / "JPEGImages" / f"{sbd_only}.jpg") as im:
        width, height = im.size
    segmentation = np.zeros((height, width), dtype=np.uint8)
    segmentation[:4, :4] = 20
    savemat(sbd / "dataset" / "cls" / f"{sbd_only}.mat", {"GTcls": {"Segmentation": segmentation}})
    prepare_voc_sem_seg(voc, sbd)
    for image_id in (MINI_VOC_TRAIN[0], sbd_only):
        assert (np.array(Image.open(voc / "SegmentationClassAug" / f"{image_id}.png"))[:4, :4] == 20).all(), image_id


def test_an_sbd_label_with_a_value_no_voc_class_has_is_rejected_by_name(tree):
    # 40 fits in uint8, so only the class check stops it from becoming a label of no class.
    voc, sbd, _ = tree
    path = sbd / "dataset" / "cls" / f"{MINI_SBD_TRAIN[2]}.mat"
    with Image.open(voc / "JPEGImages" / f"{MINI_SBD_TRAIN[2]}.jpg") as im:
        width, height = im.size
    segmentation = np.zeros((height, width), dtype=np.uint8)
    segmentation[:4, :4] = 40
    savemat(path, {"GTcls": {"Segmentation": segmentation}})
    with pytest.raises(ValueError, match=re.escape(str(path)) + r": label values \[40\] are not VOC classes"):
        prepare_voc_sem_seg(voc, sbd)
    assert not (voc / "SegmentationClassAug" / f"{MINI_SBD_TRAIN[2]}.png").exists()


def test_split_file_ids_are_read_without_the_spaces_around_them(tree):
    # A list edited by hand (indented, trailing spaces, a line of spaces, Windows line ends)
    # names the same ids: "2007_000032 " is no image.
    voc, sbd, _ = tree
    (voc / "ImageSets" / "Segmentation" / "train.txt").write_bytes(
        "".join(f"  {i} \r\n   \r\n" for i in MINI_VOC_TRAIN).encode())
    prepare_voc_sem_seg(voc, sbd)
    assert _split(voc, "train_aug") == list(MINI_TRAIN_AUG)


@pytest.mark.parametrize("content", [b"version https://git-lfs.github.com/spec/v1\noid sha256:0\nsize 9\n", b""])
def test_a_file_named_like_a_label_that_is_no_image_is_in_the_way_not_replaced(tree, content):
    # A Git LFS pointer or an empty download under SegmentationClassAug/ is someone's file,
    # not a label of this module's (it has no mark because it cannot be read at all).
    voc, sbd, _ = tree
    users = voc / "SegmentationClassAug" / f"{MINI_TRAIN_AUG[1]}.png"
    users.parent.mkdir()
    users.write_bytes(content)
    with pytest.raises(FileExistsError, match=re.escape(str(users))):
        prepare_voc_sem_seg(voc, sbd)
    assert users.read_bytes() == content
    assert [p.name for p in users.parent.iterdir()] == [users.name]


@pytest.mark.parametrize("record", ["[]", "{not json", "\"train_aug.txt\""])
def test_a_split_record_that_is_not_a_json_object_is_read_as_no_record(tree, record):
    # The record of the split files' hashes is only a hint: an unreadable one means "not
    # written here" (a changed split file is in the way), not a TypeError or JSONDecodeError.
    voc, sbd, _ = tree
    split_dir = voc / "ImageSets" / "SegmentationAug"
    split_dir.mkdir(parents=True)
    (split_dir / ".prepare_voc_sem_seg.json").write_text(record)
    prepare_voc_sem_seg(voc, sbd)
    assert _split(voc, "train_aug") == list(MINI_TRAIN_AUG)
    (split_dir / ".prepare_voc_sem_seg.json").write_text(record)
    (split_dir / "val.txt").write_text("my own list\n")
    with pytest.raises(FileExistsError, match=r"val\.txt"):
        prepare_voc_sem_seg(voc, sbd)
    assert (split_dir / "val.txt").read_text() == "my own list\n"


def test_a_split_file_it_wrote_and_the_user_then_edited_is_in_the_way(tree):
    # The recorded hash is of what it wrote: a list the user edited since (ids taken out by
    # hand) is the user's work, not a stale output of its own.
    voc, sbd, _ = tree
    prepare_voc_sem_seg(voc, sbd)
    split = voc / "ImageSets" / "SegmentationAug" / "train_aug.txt"
    edited = "".join(f"{i}\n" for i in MINI_TRAIN_AUG[:-1])
    split.write_text(edited)
    with pytest.raises(FileExistsError, match=re.escape(str(split))):
        prepare_voc_sem_seg(voc, sbd)
    assert split.read_text() == edited


def test_a_folder_named_like_a_label_is_in_the_way_before_anything_is_written(tree):
    # The rename onto it would fail only after the other labels had been converted.
    voc, sbd, _ = tree
    folder = voc / "SegmentationClassAug" / f"{MINI_TRAIN_AUG[-1]}.png"
    folder.mkdir(parents=True)
    with pytest.raises(FileExistsError, match=re.escape(str(folder))):
        prepare_voc_sem_seg(voc, sbd)
    assert [p.name for p in folder.parent.iterdir()] == [folder.name]


def test_the_class_names_are_detectron2s_voc_classes_in_index_order_after_background():
    # The index in a label PNG is the class: a name out of place mislabels its IoU in every report.
    from detectron2.data.datasets.pascal_voc import CLASS_NAMES

    assert VOC_SEM_SEG_CLASSES == ("background", *CLASS_NAMES)


def test_an_archive_given_for_the_voc_or_sbd_folder_is_named_as_not_a_folder(tree):
    # The downloads are VOCtrainval_11-May-2012.tar and benchmark.tgz: given unpacked by
    # mistake, the archive itself is named, not a "JPEGImages" or "cls" folder under it.
    voc, sbd, _ = tree
    archive = voc.parents[1] / "VOCtrainval_11-May-2012.tar"
    archive.write_bytes(b"\0" * 512)
    with pytest.raises(FileNotFoundError, match=rf"^VOC2012 folder not found: {re.escape(str(archive))}$"):
        prepare_voc_sem_seg(archive, sbd)
    with pytest.raises(FileNotFoundError, match=rf"^SBD benchmark_RELEASE folder not found: {re.escape(str(archive))}$"):
        prepare_voc_sem_seg(voc, archive)


def test_train_aug_lists_the_ids_in_the_order_of_the_split_files(tree):
    # VOC train, then SBD train, then SBD val (each in its file's order), less VOC val.
    voc, sbd, _ = tree
    (voc / "ImageSets" / "Segmentation" / "train.txt").write_text("".join(f"{i}\n" for i in MINI_VOC_TRAIN[::-1]))
    prepare_voc_sem_seg(voc, sbd)
    assert _split(voc, "train_aug") == [*MINI_VOC_TRAIN[::-1], *MINI_TRAIN_AUG[2:]]


# --- coverage audit 55 ---
def test_an_sbd_mat_file_that_cannot_be_read_or_has_no_segmentation_is_named(tree):
    voc, sbd, _ = tree
    mat = sbd / "dataset" / "cls" / f"{MINI_SBD_TRAIN[1]}.mat"
    mat.write_bytes(b"not a MATLAB file at all")
    with pytest.raises(ValueError, match=rf"corrupt or unreadable SBD \.mat file .*{MINI_SBD_TRAIN[1]}\.mat"):
        prepare_voc_sem_seg(voc, sbd)
    savemat(mat, {"GTcls": {"Boundaries": np.zeros((4, 4), np.uint8)}})
    with pytest.raises(ValueError, match=rf"{MINI_SBD_TRAIN[1]}\.mat: 'GTcls' has no 'Segmentation' field"):
        prepare_voc_sem_seg(voc, sbd)


def test_a_jpeg_that_cannot_be_read_is_named_when_label_sizes_are_checked(tree):
    voc, sbd, _ = tree
    image = voc / "JPEGImages" / f"{MINI_VOC_TRAIN[0]}.jpg"
    image.write_bytes(b"not a jpeg")
    with pytest.raises(ValueError, match=rf"corrupt or unreadable image .*{MINI_VOC_TRAIN[0]}\.jpg"):
        prepare_voc_sem_seg(voc, sbd)


# --- mutation 59T ---
def test_cli_reports_a_corrupt_input_file_in_one_line_with_exit_code_1(tree, capsys):
    # A corrupt label PNG (a ValueError, not an OSError) is the input's fault: one line naming
    # the file, as a missing folder is, not a traceback.
    spec = importlib.util.spec_from_file_location("prepare_voc_sem_seg_cli", REPO / "datasets" / "prepare_voc_sem_seg.py")
    cli = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(cli)
    voc, sbd, _ = tree
    bad = voc / "SegmentationClass" / f"{MINI_VOC_TRAIN[1]}.png"
    bad.write_bytes(b"not a png at all")
    assert cli.main(["--voc", str(voc), "--sbd", str(sbd)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: corrupt or unreadable label PNG ") and f"{MINI_VOC_TRAIN[1]}.png" in err
    assert len(err.splitlines()) == 1
