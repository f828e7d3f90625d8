"""Dataset files that are empty, truncated or not what they should be give an error that
names the file, through the project's own data path (`DropBlockTrainer`'s train and test
loaders on the synthetic sets), so a user with one bad file among 100k knows which.

What detectron2 raises on its own: for an empty or non-image file PIL's message happens to
contain the path (it prints the file object); for a truncated JPEG/PNG it is only "image
file is truncated (N bytes not processed)"; for a broken COCO json it is json's
"Expecting value: line 1 column 1", with no file at all.
"""
import pytest

from conftest import REPO, tiny_synthetic_datasets

CONFIG = str(REPO / "configs" / "Synthetic" / "retinanet_R18_GN_dropblock_res45_kp0.9_b3.yaml")
OPTS = [
    "INPUT.MIN_SIZE_TRAIN", "(64,)", "INPUT.MAX_SIZE_TRAIN", "64",
    "INPUT.MIN_SIZE_TEST", "64", "INPUT.MAX_SIZE_TEST", "64",
    # Both training images in the first batch, so the corrupt one is read at once.
    "SOLVER.IMS_PER_BATCH", "2", "DATALOADER.NUM_WORKERS", "0",
]


def _corrupt(path, how: str) -> None:
    data = path.read_bytes()
    if how == "empty":
        path.write_bytes(b"")
    elif how == "truncated":
        path.write_bytes(data[: len(data) // 2])
    elif how == "not_an_image":
        path.write_bytes(b"<html>this is a saved web page, not a picture</html>\n")
    elif how == "not_json":
        path.write_text("images: [this is yaml, not json]\n")
    else:  # pragma: no cover - test table
        raise ValueError(how)


@pytest.fixture
def det_root(tmp_path):
    with tiny_synthetic_datasets(tmp_path, num_train=2, num_val=1) as root:
        yield root / "synthetic_det"


def _cfg(*extra):
    from dropblock_det.engine.config_checks import load_config

    return load_config(CONFIG, OPTS + list(extra))


def _first_batch_error(loader) -> BaseException:
    with pytest.raises(Exception) as info:
        next(iter(loader))
    return info.value


@pytest.mark.parametrize("how", ["empty", "truncated", "not_an_image"])
def test_bad_training_image_error_names_the_file(det_root, how):
    from dropblock_det.engine.trainer import DropBlockTrainer

    bad = det_root / "train" / "000000.jpg"
    _corrupt(bad, how)
    error = _first_batch_error(DropBlockTrainer.build_train_loader(_cfg()))
    assert str(bad) in str(error), f"{type(error).__name__}: {error}"


@pytest.mark.parametrize("how", ["empty", "truncated"])
def test_bad_evaluation_image_error_names_the_file(det_root, how):
    from dropblock_det.engine.trainer import DropBlockTrainer

    bad = det_root / "val" / "000000.jpg"
    _corrupt(bad, how)
    error = _first_batch_error(DropBlockTrainer.build_test_loader(_cfg(), "synthetic_det_val"))
    assert str(bad) in str(error), f"{type(error).__name__}: {error}"


@pytest.mark.parametrize("how", ["empty", "truncated", "not_json"])
def test_bad_annotation_file_error_names_the_file(det_root, how):
    from dropblock_det.engine.trainer import DropBlockTrainer

    bad = det_root / "annotations" / "instances_train.json"
    _corrupt(bad, how)
    with pytest.raises(Exception) as info:
        next(iter(DropBlockTrainer.build_train_loader(_cfg())))
    assert str(bad) in str(info.value), f"{type(info.value).__name__}: {info.value}"


@pytest.mark.parametrize("how", ["truncated", "not_json"])
def test_bad_evaluation_annotation_file_error_names_the_file(det_root, how):
    # The evaluation after a whole training failed with json's "Expecting value", no file named.
    from dropblock_det.engine.trainer import DropBlockTrainer

    bad = det_root / "annotations" / "instances_val.json"
    _corrupt(bad, how)
    with pytest.raises(Exception) as info:
        DropBlockTrainer.build_test_loader(_cfg(), "synthetic_det_val")
    assert "synthetic_det_val" in str(info.value) and str(bad) in str(info.value), info.value


@pytest.mark.parametrize("how", ["empty", "truncated"])
def test_bad_segmentation_label_error_names_the_file(tmp_path, how):
    from dropblock_det.data.synthetic import make_synthetic_sem_seg, register_synthetic_datasets
    from dropblock_det.engine.trainer import DropBlockTrainer

    folder = make_synthetic_sem_seg(tmp_path, num_train=2, num_val=1, image_size=64,
                                    min_object_size=14, max_object_size=36)
    register_synthetic_datasets(tmp_path)
    try:
        bad = folder / "SegmentationClass" / "train_000000.png"
        _corrupt(bad, how)
        cfg = _cfg("DATASETS.TRAIN", "('synthetic_sem_seg_train',)")
        error = _first_batch_error(DropBlockTrainer.build_train_loader(cfg))
    finally:
        register_synthetic_datasets()
    assert str(bad) in str(error), f"{type(error).__name__}: {error}"


def test_with_several_training_datasets_the_error_names_only_the_broken_one(det_root):
    from dropblock_det.engine.trainer import DropBlockTrainer

    bad = det_root / "annotations" / "instances_val.json"
    _corrupt(bad, "truncated")
    cfg = _cfg("DATASETS.TRAIN", "('synthetic_det_train', 'synthetic_det_val')")
    with pytest.raises(Exception) as info:
        DropBlockTrainer.build_train_loader(cfg)
    assert str(bad) in str(info.value)
    assert "instances_train.json" not in str(info.value)


def test_bad_image_read_in_a_worker_process_still_names_the_file(det_root):
    from dropblock_det.engine.trainer import DropBlockTrainer

    bad = det_root / "train" / "000001.jpg"
    _corrupt(bad, "truncated")
    error = _first_batch_error(DropBlockTrainer.build_train_loader(
        _cfg("DATALOADER.NUM_WORKERS", "1")))
    assert str(bad) in str(error), f"{type(error).__name__}: {error}"


def test_an_error_no_single_dataset_reproduces_names_every_dataset():
    # With several datasets, the ones that fail to load again are named; when none does
    # (the error came from combining them), all of them are, not none.
    from detectron2.data import DatasetCatalog, MetadataCatalog

    from dropblock_det.data.file_errors import DatasetFileError, naming_dataset_files

    names = ["file_errors_test_a", "file_errors_test_b"]
    for name in names:
        DatasetCatalog.register(name, lambda: [])
        MetadataCatalog.get(name).set(json_file=f"/data/{name}.json")
    try:
        with pytest.raises(DatasetFileError) as info:
            with naming_dataset_files(names):
                raise KeyError("category_id")
    finally:
        for name in names:
            DatasetCatalog.remove(name)
            MetadataCatalog.remove(name)
    message = str(info.value)
    assert all(f"'{name}' (/data/{name}.json)" in message for name in names), message
    assert "KeyError" in message and isinstance(info.value.__cause__, KeyError)
