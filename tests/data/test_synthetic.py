"""The synthetic datasets: deterministic, valid COCO / VOC layouts, registered lazily."""
import json

import numpy as np
import pytest
from PIL import Image

from dropblock_det.data.synthetic import (
    SEM_SEG_IGNORE_LABEL,
    SYNTHETIC_DET_CLASSES,
    SYNTHETIC_SEM_SEG_CLASSES,
    make_synthetic_detection,
    make_synthetic_sem_seg,
    register_synthetic_datasets,
)

TINY_DET = dict(num_train=6, num_val=3, image_size=64, min_object_size=12, max_object_size=32)
TINY_SEG = dict(num_train=4, num_val=2, image_size=48, min_object_size=10, max_object_size=24)


def _read_tree(folder):
    return {p.relative_to(folder).as_posix(): p.read_bytes()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def test_detection_set_is_identical_for_the_same_seed_and_differs_for_another(tmp_path):
    a = make_synthetic_detection(tmp_path / "a", **TINY_DET)
    b = make_synthetic_detection(tmp_path / "b", **TINY_DET)
    c = make_synthetic_detection(tmp_path / "c", **{**TINY_DET, "seed": 7})
    assert _read_tree(a) == _read_tree(b)
    ann_a = json.loads((a / "annotations/instances_train.json").read_text())
    ann_c = json.loads((c / "annotations/instances_train.json").read_text())
    assert ann_a["annotations"] != ann_c["annotations"]


def test_detection_annotations_are_valid_coco_with_boxes_inside_images(tmp_path):
    folder = make_synthetic_detection(tmp_path, **TINY_DET)
    for split, n in (("train", 6), ("val", 3)):
        coco = json.loads((folder / f"annotations/instances_{split}.json").read_text())
        assert [c["name"] for c in coco["categories"]] == list(SYNTHETIC_DET_CLASSES)
        assert len(coco["images"]) == n
        ids = {im["id"] for im in coco["images"]}
        per_image = {i: 0 for i in ids}
        for ann in coco["annotations"]:
            x, y, w, h = ann["bbox"]
            assert ann["image_id"] in ids and 1 <= ann["category_id"] <= 3
            assert x >= 0 and y >= 0 and w > 0 and h > 0 and x + w <= 64 and y + h <= 64
            assert 0 < ann["area"] <= w * h
            per_image[ann["image_id"]] += 1
        assert all(1 <= k <= 4 for k in per_image.values())
        for im in coco["images"]:
            with Image.open(folder / split / im["file_name"]) as pil:
                assert pil.size == (64, 64) and pil.mode == "RGB"


def test_scenes_have_several_classes_varied_sizes_and_occlusion(tmp_path):
    folder = make_synthetic_detection(tmp_path, num_train=60, num_val=1, image_size=96,
                                      min_object_size=16, max_object_size=60)
    coco = json.loads((folder / "annotations/instances_train.json").read_text())
    anns = coco["annotations"]
    assert {a["category_id"] for a in anns} == {1, 2, 3}
    sides = [max(a["bbox"][2:]) for a in anns]
    assert max(sides) > 2 * min(sides)
    # Occlusion: some visible area is clearly below its box area (a partly covered object
    # or a triangle), and some pairs of boxes in one image overlap.
    overlaps = 0
    by_image = {}
    for a in anns:
        by_image.setdefault(a["image_id"], []).append(a["bbox"])
    for boxes in by_image.values():
        for i in range(len(boxes)):
            for j in range(i + 1, len(boxes)):
                (x1, y1, w1, h1), (x2, y2, w2, h2) = boxes[i], boxes[j]
                if min(x1 + w1, x2 + w2) > max(x1, x2) and min(y1 + h1, y2 + h2) > max(y1, y2):
                    overlaps += 1
    assert overlaps > 0


def test_existing_complete_set_is_reused_and_a_damaged_one_is_rewritten(tmp_path):
    folder = make_synthetic_detection(tmp_path, **TINY_DET)
    image = folder / "train" / "000000.jpg"
    mtime = image.stat().st_mtime_ns
    make_synthetic_detection(tmp_path, **TINY_DET)
    assert image.stat().st_mtime_ns == mtime  # not rewritten
    (folder / "annotations/instances_val.json").unlink()
    make_synthetic_detection(tmp_path, **TINY_DET)
    assert (folder / "annotations/instances_val.json").is_file()
    # One image deleted: noticed (every file written is in the manifest) and written again.
    image.unlink()
    make_synthetic_detection(tmp_path, **TINY_DET)
    assert image.is_file()
    # Other parameters: rewritten to match, and the earlier set's images it does not list
    # removed (they stayed behind, unlisted); a file of the user's is left alone.
    (folder / "val" / "mine.txt").write_text("kept")
    make_synthetic_detection(tmp_path, **{**TINY_DET, "num_val": 2})
    coco = json.loads((folder / "annotations/instances_val.json").read_text())
    assert len(coco["images"]) == 2
    assert sorted(p.name for p in (folder / "val").iterdir()) == ["000000.jpg", "000001.jpg", "mine.txt"]
    make_synthetic_sem_seg(tmp_path, **TINY_SEG)
    make_synthetic_sem_seg(tmp_path, **{**TINY_SEG, "num_train": 1})
    assert sorted(p.name for p in (tmp_path / "synthetic_sem_seg" / "SegmentationClass").iterdir()) == [
        "train_000000.png", "val_000000.png", "val_000001.png"]


def test_shapes_and_clutter_cover_exactly_the_pixels_whose_centre_they_contain(monkeypatch):
    # Against matplotlib's point-in-path test (an independent rasteriser), and with Pillow's
    # ImageDraw unusable: its polygon fill moved by a pixel between Pillow 9.5 and 10, so
    # the set must not depend on it.
    import math

    import PIL.ImageDraw
    from matplotlib.path import Path

    from dropblock_det.data import synthetic

    monkeypatch.setattr(PIL.ImageDraw, "Draw", lambda *a, **k: pytest.fail("the drawing used Pillow's ImageDraw"))
    hw = 64
    centres = np.stack(np.meshgrid(np.arange(hw) + 0.5, np.arange(hw) + 0.5), axis=-1).reshape(-1, 2)
    rng = np.random.default_rng(3)
    for _ in range(20):
        size, angle = rng.uniform(10, 40), rng.uniform(-math.pi / 9, math.pi / 9)
        cx, cy = rng.uniform(size / 2, hw - size / 2, size=2)
        r = size / 2
        for kind, vertices, sides, scale in (("square", 4, 4, math.sqrt(2) * 0.85), ("triangle", 3, 3, 1.0)):
            start = angle if kind == "square" else angle - math.pi / 2
            path = Path([(cx + r * scale * math.cos(start + 2 * math.pi * k / sides),
                          cy + r * scale * math.sin(start + 2 * math.pi * k / sides)) for k in range(vertices)])
            expected = path.contains_points(centres).reshape(hw, hw)
            assert np.array_equal(synthetic._shape_mask(kind, cx, cy, size, angle, hw), expected), kind
        circle = synthetic._shape_mask("circle", cx, cy, size, angle, hw)
        distance = np.hypot(centres[:, 0] - cx, centres[:, 1] - cy).reshape(hw, hw)
        assert circle[distance < r - 1e-9].all() and not circle[distance > r + 1e-9].any()
        assert abs(circle.sum() - math.pi * r * r) < 2 * math.pi * r  # area to within its rim
    # A line of width w covers the centres within w / 2 of it: a horizontal one through
    # centre row 10, from column 5 to 20 (round caps), is 1 row thick at w = 1 and 3 at w = 2.
    for width, rows in ((1, [10]), (2, [9, 10, 11])):
        line = synthetic._thick_segment(5.5, 10.5, 20.5, 10.5, width, hw)
        assert sorted(set(np.nonzero(line)[0])) == rows and line[10, 5:21].all() and not line[10, 22:].any()
    scene, instance_map, objects = synthetic.draw_scene(np.random.default_rng(0), hw, 12, 32, 4, 3)
    assert scene.shape == (hw, hw, 3) and len(objects) >= 1 and instance_map.max() == len(objects)


def test_a_set_written_under_other_numpy_or_pillow_versions_is_written_again(tmp_path, monkeypatch):
    # The set is drawn in numpy and gave the same files under numpy 1.23 / Pillow 9.5 and
    # numpy 2.4 / Pillow 13, but numpy's distributions and Pillow's JPEG encoder may change:
    # the manifest records the versions, so a set written under others is not reused.
    import PIL

    folder = make_synthetic_sem_seg(tmp_path, **TINY_SEG)
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["params"]["libraries"] == {"numpy": np.__version__, "pillow": PIL.__version__}
    label = folder / "SegmentationClass" / "train_000000.png"
    mtime = label.stat().st_mtime_ns
    make_synthetic_sem_seg(tmp_path, **TINY_SEG)
    assert label.stat().st_mtime_ns == mtime
    monkeypatch.setattr(PIL, "__version__", "0.0-other")
    make_synthetic_sem_seg(tmp_path, **TINY_SEG)
    assert label.stat().st_mtime_ns != mtime
    assert json.loads((folder / "manifest.json").read_text())["params"]["libraries"]["pillow"] == "0.0-other"


def test_a_missing_label_is_rewritten_and_named_by_the_loader(tmp_path):
    from dropblock_det.data.synthetic import load_synthetic_sem_seg

    folder = make_synthetic_sem_seg(tmp_path, **TINY_SEG)
    label = folder / "SegmentationClass" / "train_000001.png"
    label.unlink()
    with pytest.raises(FileNotFoundError, match=r"train_000001\.png \(the label of train image 'train_000001'\)"):
        load_synthetic_sem_seg(folder, "train")
    make_synthetic_sem_seg(tmp_path, **TINY_SEG)
    assert label.is_file() and len(load_synthetic_sem_seg(folder, "train")) == 4


def test_sem_seg_set_has_voc_layout_and_index_labels(tmp_path):
    folder = make_synthetic_sem_seg(tmp_path, **TINY_SEG)
    train_ids = (folder / "ImageSets/Segmentation/train.txt").read_text().split()
    val_ids = (folder / "ImageSets/Segmentation/val.txt").read_text().split()
    assert len(train_ids) == 4 and len(val_ids) == 2 and not set(train_ids) & set(val_ids)
    seen = set()
    for image_id in train_ids + val_ids:
        assert (folder / "JPEGImages" / f"{image_id}.jpg").is_file()
        with Image.open(folder / "SegmentationClass" / f"{image_id}.png") as label:
            assert label.mode == "L" and label.size == (48, 48)
            values = set(np.unique(np.asarray(label)).tolist())
        assert values <= set(range(len(SYNTHETIC_SEM_SEG_CLASSES))) | {SEM_SEG_IGNORE_LABEL}
        seen |= values
    assert 0 in seen and SEM_SEG_IGNORE_LABEL in seen and len(seen - {0, 255}) >= 2


def test_bad_generation_parameters_are_rejected_by_name(tmp_path):
    with pytest.raises(KeyError, match="num_imgs"):
        make_synthetic_detection(tmp_path, num_imgs=3)
    with pytest.raises(ValueError, match="max_object_size"):
        make_synthetic_detection(tmp_path, image_size=32, max_object_size=40)
    with pytest.raises(ValueError, match="num_train"):
        make_synthetic_detection(tmp_path, num_train=0)


def test_objects_too_small_to_be_drawn_are_refused_by_name(tmp_path):
    # Shapes of under 16 pixels are not drawn: max_object_size=4 wrote a set of images with
    # no object at all, silently, and a training on it had nothing to learn.
    with pytest.raises(ValueError, match=r"max_object_size=4 .*at least 8"):
        make_synthetic_detection(tmp_path, num_train=2, num_val=1, image_size=32, min_object_size=2,
                                 max_object_size=4)
    assert not (tmp_path / "synthetic_det").exists()
    folder = make_synthetic_detection(tmp_path, num_train=4, num_val=1, image_size=16, min_object_size=8,
                                      max_object_size=8)
    with open(folder / "annotations" / "instances_train.json") as f:
        assert {a["image_id"] for a in json.load(f)["annotations"]} == {1, 2, 3, 4}


def test_registration_does_not_need_files_and_loads_them_once_written(tmp_path):
    from detectron2.data import DatasetCatalog, MetadataCatalog

    import dropblock_det  # noqa: F401

    try:
        register_synthetic_datasets(tmp_path)  # nothing written yet
        for name in ("synthetic_det_train", "synthetic_det_val",
                     "synthetic_sem_seg_train", "synthetic_sem_seg_val"):
            assert name in DatasetCatalog.list()
        meta = MetadataCatalog.get("synthetic_det_val")
        assert meta.evaluator_type == "coco" and meta.thing_classes == list(SYNTHETIC_DET_CLASSES)
        assert MetadataCatalog.get("synthetic_sem_seg_val").evaluator_type == "sem_seg"
        make_synthetic_detection(tmp_path, **TINY_DET)
        make_synthetic_sem_seg(tmp_path, **TINY_SEG)
        dicts = DatasetCatalog.get("synthetic_det_train")
        assert len(dicts) == 6 and dicts[0]["annotations"]
        assert {a["category_id"] for d in dicts for a in d["annotations"]} <= {0, 1, 2}
        seg = DatasetCatalog.get("synthetic_sem_seg_val")
        assert len(seg) == 2 and seg[0]["sem_seg_file_name"].endswith(".png")
    finally:
        register_synthetic_datasets()  # back to the default root for other tests


def test_train_and_val_draw_different_scenes(tmp_path):
    # Each split has its own generator stream (seed, split, image): were the split left out,
    # val image i would be train image i, and validation would score on training images.
    det = make_synthetic_detection(tmp_path, **TINY_DET)
    for i in range(TINY_DET["num_val"]):
        assert (det / "val" / f"{i:06d}.jpg").read_bytes() != (det / "train" / f"{i:06d}.jpg").read_bytes(), i
    seg = make_synthetic_sem_seg(tmp_path, **TINY_SEG)
    for i in range(TINY_SEG["num_val"]):
        val, train = (seg / "SegmentationClass" / f"{split}_{i:06d}.png" for split in ("val", "train"))
        assert val.read_bytes() != train.read_bytes(), i


def test_sem_seg_labels_mark_every_class_border_ignore_both_ways(tmp_path):
    # The 255 band separates any two classes, across columns and across rows: no two
    # neighbouring pixels outside the band hold different classes.
    folder = make_synthetic_sem_seg(tmp_path, **TINY_SEG)
    vertical_borders = 0
    for label_file in sorted((folder / "SegmentationClass").glob("*.png")):
        with Image.open(label_file) as image:
            label = np.asarray(image).astype(np.int32)
        valid = label != SEM_SEG_IGNORE_LABEL
        for a, b, va, vb in ((label[:, 1:], label[:, :-1], valid[:, 1:], valid[:, :-1]),
                             (label[1:, :], label[:-1, :], valid[1:, :], valid[:-1, :])):
            assert not ((a != b) & va & vb).any(), f"{label_file.name}: two classes touch outside the ignore band"
        vertical_borders += int((label[1:, :] != label[:-1, :]).sum())
    assert vertical_borders > 0


@pytest.mark.parametrize("kind", ["detection", "sem_seg"])  # sem_seg: mutation run 55
def test_an_interrupted_rewrite_is_not_taken_for_the_set_it_replaced(tmp_path, monkeypatch, kind):
    # Rewriting with other parameters first invalidates the manifest: if it stops half way,
    # the folder holds a mix of both sets, and asking for the old parameters again must
    # write them again, not reuse the mix.
    from dropblock_det.data import synthetic

    make, params = (make_synthetic_detection, TINY_DET) if kind == "detection" else (make_synthetic_sem_seg, TINY_SEG)
    folder = make(tmp_path, **params)
    original = _read_tree(folder)
    real_draw_scene, calls = synthetic.draw_scene, []

    def draw_scene_then_stop(*args, **kwargs):
        calls.append(1)
        if len(calls) > 2:
            raise KeyboardInterrupt
        return real_draw_scene(*args, **kwargs)

    monkeypatch.setattr(synthetic, "draw_scene", draw_scene_then_stop)
    with pytest.raises(KeyboardInterrupt):
        make(tmp_path, **{**params, "seed": 7})
    monkeypatch.setattr(synthetic, "draw_scene", real_draw_scene)
    assert _read_tree(folder) != original  # two images of the other set were written
    make(tmp_path, **params)
    assert _read_tree(folder) == original


def test_a_rewrite_replaces_whole_files_and_never_leaves_half_of_one(tmp_path, monkeypatch):
    # A run may be reading the set while another environment's versions rewrite it: each
    # file is written beside its place and moved onto it, so a write that stops midway
    # leaves the earlier file whole (and no temporary file behind).
    folder = make_synthetic_detection(tmp_path, **TINY_DET)
    original = _read_tree(folder)
    real_save, saves = Image.Image.save, []

    def save_half_then_stop(image, fp, *args, **kwargs):
        saves.append(fp)
        if len(saves) == 3:
            with open(fp, "wb") as f:
                f.write(b"\xff\xd8 half a JPEG")
            raise KeyboardInterrupt
        return real_save(image, fp, *args, **kwargs)

    monkeypatch.setattr(Image.Image, "save", save_half_then_stop)
    with pytest.raises(KeyboardInterrupt):
        make_synthetic_detection(tmp_path, force=True, **TINY_DET)
    after = _read_tree(folder)
    assert {name: data for name, data in after.items() if name != "manifest.json"} == {
        name: data for name, data in original.items() if name != "manifest.json"}
    assert "manifest.json" not in after  # invalid until the rewrite ends
    monkeypatch.setattr(Image.Image, "save", real_save)
    make_synthetic_detection(tmp_path, **TINY_DET)
    assert _read_tree(folder) == original


def test_a_second_process_asking_for_a_set_being_written_waits_for_it(tmp_path):
    # Two runs starting together on one DETECTRON2_DATASETS: the second must not write the
    # set over the first (or read it half written); it waits, then finds it complete.
    import threading

    from dropblock_det.data import synthetic

    folder = tmp_path / synthetic.DET_DIRNAME
    done = threading.Event()
    with synthetic._writing(folder):  # the first writer, mid-write
        waiting = threading.Thread(target=lambda: (make_synthetic_detection(tmp_path, **TINY_DET), done.set()))
        waiting.start()
        assert not done.wait(0.5)
        synthetic._write_detection(folder, synthetic._check_params(TINY_DET, synthetic.DEFAULT_DET_PARAMS))
        written = _read_tree(folder)
        stamps = {p: p.stat().st_mtime_ns for p in folder.rglob("*") if p.is_file()}
    waiting.join(30)
    assert done.is_set() and _read_tree(folder) == written
    assert {p: p.stat().st_mtime_ns for p in folder.rglob("*") if p.is_file()} == stamps  # not rewritten


def test_object_sizes_may_equal_each_other_and_the_image_size(tmp_path):
    # The bounds are inclusive: max_object_size == min_object_size (one size) and
    # max_object_size == image_size are valid.
    folder = make_synthetic_detection(tmp_path, num_train=1, num_val=1, image_size=32,
                                      min_object_size=32, max_object_size=32)
    assert (folder / "manifest.json").is_file()


def test_each_sem_seg_split_is_registered_with_its_own_ids_and_ignore_label(tmp_path):
    from detectron2.data import DatasetCatalog, MetadataCatalog

    try:
        register_synthetic_datasets(tmp_path)
        make_synthetic_sem_seg(tmp_path, **TINY_SEG)
        for split, n in (("train", TINY_SEG["num_train"]), ("val", TINY_SEG["num_val"])):
            name = f"synthetic_sem_seg_{split}"
            assert [d["image_id"] for d in DatasetCatalog.get(name)] == [f"{split}_{i:06d}" for i in range(n)]
            assert MetadataCatalog.get(name).ignore_label == SEM_SEG_IGNORE_LABEL
            assert MetadataCatalog.get(name).stuff_classes == list(SYNTHETIC_SEM_SEG_CLASSES)
    finally:
        register_synthetic_datasets()


@pytest.mark.parametrize(
    "bad", [{"seed": -1}, {"seed": 1.5}, {"seed": None}, {"seed": "x"}, {"num_train": 2.0},
            {"image_size": 48.0}, {"num_val": True}, {"max_objects": "3"}],
)
def test_a_bad_value_is_refused_by_name_before_the_existing_set_is_touched(tmp_path, bad):
    # A bad seed used to fail inside numpy half way, after the valid set's manifest was
    # deleted (so the next run wrote the whole set again); floats failed in range() likewise.
    folder = make_synthetic_detection(tmp_path, **TINY_DET)
    manifest = (folder / "manifest.json").read_bytes()
    (key,) = bad
    with pytest.raises(ValueError, match=rf"{key}=.* must be an integer"):
        make_synthetic_detection(tmp_path, **{**TINY_DET, **bad})
    assert (folder / "manifest.json").read_bytes() == manifest


def test_numpy_integers_are_valid_parameters(tmp_path):
    # They used to pass the check and then fail json.dumps after every image was written,
    # so no manifest was ever written and each call wrote the whole set again.
    a = make_synthetic_detection(tmp_path / "a", **{**TINY_DET, "seed": np.int64(3),
                                                   "num_train": np.int32(6)})
    b = make_synthetic_detection(tmp_path / "b", **{**TINY_DET, "seed": 3})
    assert _read_tree(a) == _read_tree(b)


def _make_synthetic_cli():
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[2] / "datasets" / "make_synthetic.py"
    spec = importlib.util.spec_from_file_location("make_synthetic_cli", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.main


@pytest.mark.parametrize(
    "args, message",
    [(["--num-train", "0"], "--num-train=0 must be an integer >= 1"),
     (["--seed", "-3"], "--seed=-3 must be an integer >= 0"),
     (["--image-size", "32"], "--max-object-size=72 does not fit in --image-size=32"),
     (["--only", "sem_seg", "--min-object-size", "80", "--max-object-size", "70"],
      "--max-object-size=70 is smaller than --min-object-size=80")],
)
def test_the_command_line_names_the_bad_flag_and_writes_nothing(tmp_path, capsys, args, message):
    root = tmp_path / "data sets"
    with pytest.raises(SystemExit) as exit_info:
        _make_synthetic_cli()(["--root", str(root)] + args)
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err
    assert not root.exists()


def test_the_command_line_refuses_a_root_that_is_a_file_and_expands_a_tilde(tmp_path, capsys, monkeypatch):
    a_file = tmp_path / "notes.txt"
    a_file.write_text("mine")
    with pytest.raises(SystemExit):
        _make_synthetic_cli()(["--root", str(a_file), "--num-train", "1", "--num-val", "1"])
    assert "--root" in capsys.readouterr().err and a_file.read_text() == "mine"
    # `--root=~/x` is not expanded by the shell: it must not create a folder named "~" here.
    monkeypatch.setenv("HOME", str(tmp_path / "my home"))
    monkeypatch.chdir(tmp_path)
    tiny = ["--num-train", "1", "--num-val", "1", "--image-size", "32", "--min-object-size",
            "8", "--max-object-size", "16", "--only", "det"]
    assert _make_synthetic_cli()(["--root=~/data sets"] + tiny) == 0
    assert (tmp_path / "my home" / "data sets" / "synthetic_det" / "manifest.json").is_file()
    assert not (tmp_path / "~").exists()


@pytest.fixture
def ensure():
    """ensure_synthetic_datasets at TINY_DET / TINY_SEG's size (as the defaults it asks for);
    the default registration restored after (it registers the sets where it made them)."""
    from dropblock_det.data.synthetic import ensure_synthetic_datasets

    try:
        yield lambda root: ensure_synthetic_datasets(root, det_params=TINY_DET, sem_seg_params=TINY_SEG)
    finally:
        register_synthetic_datasets()


def test_ensure_refuses_to_replace_a_set_made_with_other_parameters_naming_it(tmp_path, ensure):
    # `datasets/make_synthetic.py --num-train 4` then main_job: the user's set was replaced
    # by the default one, silently.
    from dropblock_det.data.synthetic import OtherSyntheticSetError

    users = make_synthetic_detection(tmp_path, **{**TINY_DET, "num_train": 4, "seed": 3})
    before = _read_tree(users)
    with pytest.raises(OtherSyntheticSetError) as error:
        ensure(tmp_path)
    message = str(error.value)
    assert str(users) in message and "num_train=4 (asked: 6)" in message and "seed=3 (asked: 0)" in message
    assert "image_size" not in message  # only what differs
    assert "DETECTRON2_DATASETS" in message and "move it" in message
    assert isinstance(error.value, FileExistsError) and error.value.differences == {"num_train": (4, 6), "seed": (3, 0)}
    assert _read_tree(users) == before
    assert not (tmp_path / "synthetic_sem_seg").exists()  # both sets checked before either is written


def test_ensure_checks_the_second_set_before_writing_the_first(tmp_path, ensure):
    make_synthetic_sem_seg(tmp_path, **{**TINY_SEG, "num_val": 1})
    with pytest.raises(FileExistsError, match=r"synthetic_sem_seg holds .* num_val=1 \(asked: 2\)"):
        ensure(tmp_path)
    assert not (tmp_path / "synthetic_det").exists()


def test_ensure_keeps_a_set_of_the_same_parameters_and_rewrites_one_of_an_older_generator(tmp_path, ensure):
    ensure(tmp_path)
    det, seg = tmp_path / "synthetic_det", tmp_path / "synthetic_sem_seg"
    det_files, seg_files = _read_tree(det), _read_tree(seg)
    image = det / "train" / "000000.jpg"
    mtime = image.stat().st_mtime_ns
    ensure(tmp_path)  # complete and of the same parameters: reused
    assert image.stat().st_mtime_ns == mtime
    # Written by an older generator, or under other library versions, with the same
    # parameters: written again by today's code, as before (the same bytes here).
    manifest = json.loads((det / "manifest.json").read_text())
    manifest["params"]["generator_version"] = 1
    manifest["params"]["libraries"] = {"numpy": "1.0", "pillow": "1.0"}
    (det / "manifest.json").write_text(json.dumps(manifest))
    image.write_bytes(b"drawn by the old generator")
    ensure(tmp_path)
    assert _read_tree(det) == det_files and _read_tree(seg) == seg_files


def test_ensure_writes_a_set_whose_writing_stopped_and_make_still_replaces_on_request(tmp_path, ensure):
    # No manifest (removed first when a set is written): not a set yet, written as before.
    make_synthetic_detection(tmp_path, **{**TINY_DET, "seed": 3})
    (tmp_path / "synthetic_det" / "manifest.json").unlink()
    ensure(tmp_path)
    assert json.loads((tmp_path / "synthetic_det" / "manifest.json").read_text())["params"]["seed"] == 0
    # make_synthetic_detection (datasets/make_synthetic.py) writes the parameters it is given.
    make_synthetic_detection(tmp_path, **{**TINY_DET, "seed": 3})
    assert json.loads((tmp_path / "synthetic_det" / "manifest.json").read_text())["params"]["seed"] == 3


def test_ensure_registers_the_sets_where_it_made_them(tmp_path, ensure):
    from detectron2.data import DatasetCatalog, MetadataCatalog

    ensure(tmp_path)
    assert MetadataCatalog.get("synthetic_det_train").json_file == str(
        tmp_path / "synthetic_det" / "annotations" / "instances_train.json")
    assert MetadataCatalog.get("synthetic_sem_seg_val").sem_seg_root == str(
        tmp_path / "synthetic_sem_seg" / "SegmentationClass")
    assert len(DatasetCatalog.get("synthetic_det_val")) == TINY_DET["num_val"]


def test_ensure_refuses_a_set_another_process_wrote_after_it_looked(tmp_path, ensure, monkeypatch):
    # ensure looks at both folders first, then writes each under its lock: a set of other
    # parameters written in between (another job, make_synthetic.py) is still refused, under the lock.
    from dropblock_det.data import synthetic

    users = make_synthetic_detection(tmp_path, **{**TINY_DET, "seed": 3})
    before = _read_tree(users)
    looks = []
    real = synthetic.other_params

    def not_there_yet(folder, params):
        looks.append(folder)
        return {} if len(looks) <= 2 else real(folder, params)  # the two looks before writing

    monkeypatch.setattr(synthetic, "other_params", not_there_yet)
    with pytest.raises(synthetic.OtherSyntheticSetError, match=r"seed=3 \(asked: 0\)"):
        ensure(tmp_path)
    assert _read_tree(users) == before


def test_a_parameter_the_manifest_does_not_record_is_not_taken_for_a_difference(tmp_path):
    from dropblock_det.data.synthetic import DEFAULT_DET_PARAMS, other_params

    folder = tmp_path / "synthetic_det"
    folder.mkdir()
    (folder / "manifest.json").write_text(json.dumps({"params": {"num_train": 6, "seed": 0}}))
    assert other_params(folder, DEFAULT_DET_PARAMS) == {"num_train": (6, DEFAULT_DET_PARAMS["num_train"])}


def test_a_rewrite_removes_only_stale_files_inside_the_set_folder(tmp_path):
    # The stale files of a smaller rewrite are those the old manifest lists; a manifest that
    # names a file outside the folder (absolute, or through "..") must not get it deleted.
    folder = make_synthetic_detection(tmp_path, **TINY_DET)
    outside, absolute = tmp_path / "outside.txt", tmp_path / "mine" / "absolute.txt"
    absolute.parent.mkdir()
    outside.write_text("the user's")
    absolute.write_text("the user's")
    manifest = json.loads((folder / "manifest.json").read_text())
    manifest["files"] += ["../outside.txt", str(absolute)]
    (folder / "manifest.json").write_text(json.dumps(manifest))
    make_synthetic_detection(tmp_path, **{**TINY_DET, "num_train": 2})
    assert outside.read_text() == "the user's" and absolute.read_text() == "the user's"
    assert not (folder / "train" / "000002.jpg").exists()  # a stale file inside is removed


def test_scene_boxes_are_the_tight_box_of_each_objects_visible_pixels():
    from dropblock_det.data.synthetic import draw_scene

    for seed in range(10):
        _, instance_map, objects = draw_scene(np.random.default_rng(seed), 64, 12, 32, 4, 3)
        for k, obj in enumerate(objects, start=1):
            ys, xs = np.nonzero(instance_map == k)
            x, y, w, h = obj["bbox"]
            assert (x, y, x + w, y + h) == (xs.min(), ys.min(), xs.max() + 1, ys.max() + 1)
            assert obj["area"] == len(xs)


def test_scenes_reach_max_objects_and_keep_most_of_each_object_visible(monkeypatch):
    from dropblock_det.data import synthetic

    drawn = []
    real = synthetic._shape_mask
    monkeypatch.setattr(synthetic, "_shape_mask", lambda *a: drawn.append(real(*a)) or drawn[-1])
    counts = []
    for seed in range(60):
        drawn.clear()
        _, instance_map, objects = synthetic.draw_scene(np.random.default_rng(seed), 64, 16, 40, 3, 3)
        counts.append(len(objects))
        for k in range(1, len(objects) + 1):
            visible = instance_map == k
            # The shape object k was drawn as: one of the masks tried that covers what is left of it.
            full = min(int(m.sum()) for m in drawn if m[visible].all())
            assert visible.sum() >= (1 - synthetic.MAX_OCCLUDED_FRACTION) * full, (seed, k)
    assert max(counts) == 3 and min(counts) >= 1


def test_tiny_object_sizes_draw_no_object_under_the_minimum_pixel_count():
    from dropblock_det.data.synthetic import MAX_OCCLUDED_FRACTION, MIN_OBJECT_PIXELS, draw_scene

    for seed in range(20):
        _, _, objects = draw_scene(np.random.default_rng(seed), 32, 1, 8, 4, 3)
        assert all(o["area"] >= (1 - MAX_OCCLUDED_FRACTION) * MIN_OBJECT_PIXELS for o in objects), seed


def test_the_smallest_drawable_max_object_size_is_the_boundary():
    from dropblock_det.data.synthetic import DEFAULT_DET_PARAMS, MIN_DRAWABLE_OBJECT_SIZE, check_synthetic_params

    size = MIN_DRAWABLE_OBJECT_SIZE
    assert check_synthetic_params({"min_object_size": size, "max_object_size": size}, DEFAULT_DET_PARAMS)
    with pytest.raises(ValueError, match=f"max_object_size={size - 1} is too small"):
        check_synthetic_params({"min_object_size": size - 1, "max_object_size": size - 1}, DEFAULT_DET_PARAMS)


def test_sem_seg_labels_hold_each_objects_class_and_background_zero(tmp_path):
    # Label k is SYNTHETIC_SEM_SEG_CLASSES[k] (0 background): each object's pixels outside the
    # ignore band hold its class index + 1. Image i is drawn from (seed, split, i).
    from dropblock_det.data.synthetic import draw_scene

    folder = make_synthetic_sem_seg(tmp_path, **TINY_SEG)
    for i in range(TINY_SEG["num_train"]):
        _, instance_map, objects = draw_scene(np.random.default_rng([1, 0, i]), 48, 10, 24, 4, 3)
        with Image.open(folder / "SegmentationClass" / f"train_{i:06d}.png") as image:
            label = np.asarray(image)
        inside = label != SEM_SEG_IGNORE_LABEL
        assert (label[(instance_map == 0) & inside] == 0).all()
        for k, obj in enumerate(objects, start=1):
            values = label[(instance_map == k) & inside]
            assert values.size and (values == obj["category"] + 1).all(), (i, k)


def _record_make_calls(monkeypatch, folder):
    """Replace the two set writers by recorders: {"det"/"seg": (force, params)} per call."""
    from dropblock_det.data import synthetic

    calls = {}

    def recording(which):
        def make(root, force, **params):
            calls[which] = (force, params)
            return folder
        return make

    monkeypatch.setattr(synthetic, "make_synthetic_detection", recording("det"))
    monkeypatch.setattr(synthetic, "make_synthetic_sem_seg", recording("seg"))
    return calls


def test_the_command_lines_flags_set_only_the_detection_set_without_only(tmp_path, monkeypatch):
    # "the sem-seg set keeps its own defaults unless --only sem_seg" (--help).
    calls = _record_make_calls(monkeypatch, tmp_path)
    assert _make_synthetic_cli()(["--root", str(tmp_path), "--num-train", "3", "--image-size", "96"]) == 0
    assert {k: params for k, (_, params) in calls.items()} == {"det": {"num_train": 3, "image_size": 96}, "seg": {}}
    calls.clear()
    assert _make_synthetic_cli()(["--root", str(tmp_path), "--only", "sem_seg", "--num-train", "3"]) == 0
    assert {k: params for k, (_, params) in calls.items()} == {"seg": {"num_train": 3}}


def test_the_files_a_seed_writes_are_fixed_until_generator_version_changes(tmp_path):
    # The main job's numbers come from the files the default seed writes, and a complete set
    # of the same parameters and GENERATOR_VERSION is reused, not rewritten: a drawing or
    # encoding change (background, colours, clutter, JPEG quality, annotation fields) that
    # left the version as it was would have new machines write other sets than old ones keep.
    # Change the drawing -> bump GENERATOR_VERSION and update these digests. The same digests
    # under numpy 1.23 / Pillow 9.5 and numpy 2.4 / Pillow 13 (datasets/README.md).
    import hashlib

    import PIL

    from dropblock_det.data.synthetic import GENERATOR_VERSION, draw_scene

    def digest(folder):
        h = hashlib.sha256()
        for p in sorted(folder.rglob("*")):
            if p.is_file() and p.name != "manifest.json":  # the manifest names the library versions
                h.update(p.relative_to(folder).as_posix().encode() + b"\0" + hashlib.sha256(p.read_bytes()).digest())
        return h.hexdigest()

    assert GENERATOR_VERSION == 2
    # Many small scenes, for the draws a tiny set's few images may not reach (the
    # background's direction, a shape at exactly MIN_OBJECT_PIXELS).
    scenes = hashlib.sha256()
    for i in range(48):
        image, instance_map, objects = draw_scene(np.random.default_rng([0, 0, i]), 32, 8, 16, 4, 3)
        scenes.update(image.tobytes() + instance_map.tobytes() + json.dumps(objects).encode())
    # numpy does not promise Generator's streams across versions, nor Pillow its JPEG bytes:
    # a failure with the code unchanged means this environment writes other sets (other AP).
    versions = f"numpy {np.__version__}, Pillow {PIL.__version__}"
    assert scenes.hexdigest() == "59da4ccd969006614abce85ac96c20c8d782323e899335cda857c9d192fe2448", versions
    assert digest(make_synthetic_detection(tmp_path, **TINY_DET)) == (
        "06daa2c3327fd8de21c7f1e9434efcc82902ee40c9d00d23b77ec6172af5a939"), versions
    assert digest(make_synthetic_sem_seg(tmp_path, **TINY_SEG)) == (
        "cfb00eb495a8b595e0da48f5008a86e55a01c0901064cda28ad568d7155589cb"), versions


def test_the_default_parameters_are_the_documented_ones():
    # datasets/README.md: 1500 train / 200 val images of 128x128, 1-4 shapes of 22-72 px; the
    # main job's sets are these (another default would be "a set of other parameters" to
    # every root that holds the documented one).
    from dropblock_det.data.synthetic import DEFAULT_DET_PARAMS, DEFAULT_SEM_SEG_PARAMS

    assert DEFAULT_DET_PARAMS == {"num_train": 1500, "num_val": 200, "image_size": 128, "min_object_size": 22,
                                  "max_object_size": 72, "max_objects": 4, "seed": 0}
    assert DEFAULT_SEM_SEG_PARAMS == {"num_train": 300, "num_val": 60, "image_size": 128, "min_object_size": 24,
                                      "max_object_size": 72, "max_objects": 4, "seed": 1}


def test_the_default_root_is_detectron2_datasets_with_a_leading_tilde_expanded(tmp_path, monkeypatch):
    # DETECTRON2_DATASETS=~/data (quoted in a shell profile, so unexpanded) must not make a
    # folder literally named "~" under the working directory.
    from pathlib import Path

    from dropblock_det.data.synthetic import default_datasets_root

    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("DETECTRON2_DATASETS", "~/data")
    assert default_datasets_root() == tmp_path / "home" / "data"
    monkeypatch.delenv("DETECTRON2_DATASETS")
    assert default_datasets_root() == Path("datasets")


def test_the_command_lines_force_rewrites_both_sets(tmp_path, monkeypatch):
    # --force: "rewrite even if already complete", for the detection and the sem-seg set.
    calls = _record_make_calls(monkeypatch, tmp_path)
    assert _make_synthetic_cli()(["--root", str(tmp_path), "--force"]) == 0
    assert {k: force for k, (force, _) in calls.items()} == {"det": True, "seg": True}
    assert _make_synthetic_cli()(["--root", str(tmp_path)]) == 0
    assert {k: force for k, (force, _) in calls.items()} == {"det": False, "seg": False}


def test_a_shape_of_exactly_min_object_pixels_is_drawn(monkeypatch):
    # "A shape of fewer pixels is not drawn": MIN_OBJECT_PIXELS itself is an object.
    from dropblock_det.data import synthetic

    def block(kind, cx, cy, size, angle, hw):
        mask = np.zeros((hw, hw), dtype=bool)
        side = int(synthetic.MIN_OBJECT_PIXELS ** 0.5)
        mask[:side, :side] = True
        return mask

    monkeypatch.setattr(synthetic, "_shape_mask", block)
    _, _, objects = synthetic.draw_scene(np.random.default_rng(0), 32, 8, 16, 1, 3)
    assert [o["area"] for o in objects] == [synthetic.MIN_OBJECT_PIXELS]


# --- mutation run 55 ---
def test_a_deleted_split_file_of_the_sem_seg_set_is_written_again(tmp_path):
    # The loader's error says to run make_synthetic.py again: that must rewrite the split file.
    from dropblock_det.data.synthetic import load_synthetic_sem_seg

    folder = make_synthetic_sem_seg(tmp_path, **TINY_SEG)
    split = folder / "ImageSets" / "Segmentation" / "val.txt"
    split.unlink()
    with pytest.raises(FileNotFoundError, match=r"val\.txt does not exist"):
        load_synthetic_sem_seg(folder, "val")
    make_synthetic_sem_seg(tmp_path, **TINY_SEG)
    assert [d["image_id"] for d in load_synthetic_sem_seg(folder, "val")] == ["val_000000", "val_000001"]


def test_a_set_of_an_older_generator_version_is_written_again(tmp_path, monkeypatch):
    # "Bump when the drawing code changes, so old folders are regenerated": the manifest
    # records the version and a set of another one is not reused.
    from dropblock_det.data import synthetic

    folder = make_synthetic_detection(tmp_path, **TINY_DET)
    assert json.loads((folder / "manifest.json").read_text())["params"]["generator_version"] == \
        synthetic.GENERATOR_VERSION
    image = folder / "train" / "000000.jpg"
    image.write_bytes(b"drawn by the old generator")
    monkeypatch.setattr(synthetic, "GENERATOR_VERSION", synthetic.GENERATOR_VERSION + 1)
    make_synthetic_detection(tmp_path, **TINY_DET)
    assert image.read_bytes() != b"drawn by the old generator"
    assert json.loads((folder / "manifest.json").read_text())["params"]["generator_version"] == \
        synthetic.GENERATOR_VERSION


@pytest.mark.parametrize("manifest", ['{"params": null}', "params-without-files", '{"params": {"see', "[]"])
def test_a_damaged_manifest_is_no_set_and_the_set_is_written_again(tmp_path, ensure, manifest):
    # No params, no file list, cut short, not an object: no complete set, so ensure writes
    # the set (no TypeError or JSONDecodeError from the manifest, no reuse).
    folder = make_synthetic_detection(tmp_path, **TINY_DET)
    recorded = json.loads((folder / "manifest.json").read_text())
    if manifest == "params-without-files":
        manifest = json.dumps({"params": recorded["params"]})
    (folder / "manifest.json").write_text(manifest)
    (folder / "train" / "000000.jpg").unlink()
    ensure(tmp_path)
    assert (folder / "train" / "000000.jpg").is_file()
    assert json.loads((folder / "manifest.json").read_text()) == recorded


# --- mutation 56 ---
@pytest.mark.parametrize("files", [None, 5, "train/000000.jpg"])
def test_a_manifest_whose_file_list_is_no_list_lists_no_file_to_remove(tmp_path, files):
    # Its "files" null or a number failed the rewrite with TypeError; a string was read as
    # its characters: '.' failed unlinking the folder, a one-letter file of the user's went.
    from dropblock_det.data.synthetic import make_synthetic_detection

    folder = make_synthetic_detection(tmp_path, **TINY_DET)
    recorded = json.loads((folder / "manifest.json").read_text())
    (folder / "manifest.json").write_text(json.dumps({**recorded, "files": files}))
    (folder / "t").write_text("the user's")
    make_synthetic_detection(tmp_path, **TINY_DET)
    assert json.loads((folder / "manifest.json").read_text()) == recorded
    assert (folder / "t").read_text() == "the user's"


# --- mutation 58L ---
def test_detection_annotation_ids_are_unique_and_from_one_and_no_box_is_a_crowd(tmp_path):
    # pycocotools' COCOeval marks a detection matched by the id of its ground truth, 0 meaning
    # unmatched: an annotation id 0 scored its true positive as a false one, and a crowd box
    # is ignored. Only the golden-bytes test caught either.
    folder = make_synthetic_detection(tmp_path, **TINY_DET)
    for split in ("train", "val"):
        coco = json.loads((folder / f"annotations/instances_{split}.json").read_text())
        for items in (coco["images"], coco["annotations"], coco["categories"]):
            ids = [item["id"] for item in items]
            assert len(set(ids)) == len(ids) and min(ids) >= 1
        assert {ann["iscrowd"] for ann in coco["annotations"]} == {0}
