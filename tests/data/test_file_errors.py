"""dropblock_det/data/file_errors.py: what the evaluations after a training will read is
checked before it (check_evaluation_files), and a PASCAL VOC set that does not load names
its broken annotation (naming_dataset_files). The training-side errors that name files are
tested in tests/reliability/test_corrupt_dataset_files.py."""
import numpy as np
import pytest
import torch
from PIL import Image

from conftest import CONFIGS, tiny_synthetic_datasets

_VOC_OBJECT = ("<object><name>{name}</name>{pose}<truncated>0</truncated><difficult>0</difficult>"
               "<bndbox><xmin>{x0}</xmin><ymin>4</ymin><xmax>20</xmax><ymax>30</ymax></bndbox></object>")


def _voc_xml(name="dog", pose="<pose>Left</pose>", x0="2"):
    return (f"<annotation><size><width>32</width><height>32</height><depth>3</depth></size>"
            f"{_VOC_OBJECT.format(name=name, pose=pose, x0=x0)}</annotation>")


@pytest.fixture
def voc_test_set(tmp_path):
    """(name, VOC2007 folder): a 2-image PASCAL VOC test split registered as detectron2
    registers voc_2007_test, removed again afterwards."""
    from detectron2.data import DatasetCatalog, MetadataCatalog
    from detectron2.data.datasets.pascal_voc import register_pascal_voc

    voc = tmp_path / "VOC2007"
    for folder in ("Annotations", "JPEGImages", "ImageSets/Main"):
        (voc / folder).mkdir(parents=True)
    for image_id in ("000001", "000002"):
        Image.new("RGB", (32, 32)).save(voc / "JPEGImages" / f"{image_id}.jpg")
        (voc / "Annotations" / f"{image_id}.xml").write_text(_voc_xml())
    (voc / "ImageSets" / "Main" / "test.txt").write_text("000001\n000002\n")
    name = "dropblock_test_voc_eval"
    register_pascal_voc(name, str(voc), "test", 2007)
    MetadataCatalog.get(name).evaluator_type = "pascal_voc"  # as detectron2's builtin registration sets it
    yield name, voc
    DatasetCatalog.remove(name)
    MetadataCatalog.remove(name)


def test_a_test_image_that_is_missing_is_named_before_the_training(tmp_path):
    # detectron2 loads DATASETS.TEST only to evaluate, after the whole training.
    from dropblock_det.data.file_errors import DatasetFileError, check_evaluation_files

    with tiny_synthetic_datasets(tmp_path, num_train=2, num_val=2) as root:
        check_evaluation_files(["synthetic_det_val"])
        missing = root / "synthetic_det" / "val" / "000001.jpg"
        missing.unlink()
        with pytest.raises(DatasetFileError, match=rf"^DATASETS\.TEST names 'synthetic_det_val', whose file_name "
                                                   rf"{missing} does not exist: its evaluation would fail"):
            check_evaluation_files(["synthetic_det_val"])


def test_a_test_set_with_no_images_is_named_before_the_training(voc_test_set):
    # detectron2's test loader asserted "Dataset '...' is empty!" after the whole training.
    from dropblock_det.data.file_errors import DatasetFileError, check_evaluation_files

    name, voc = voc_test_set
    (voc / "ImageSets" / "Main" / "test.txt").write_text("")
    with pytest.raises(DatasetFileError, match=rf"^DATASETS\.TEST names '{name}', which lists no images \({voc}\): its evaluation"):
        check_evaluation_files([name])


def test_the_yacs_and_lazy_run_checks_read_the_test_set_of_a_training_only(tmp_path):
    from dropblock_det.data.file_errors import DatasetFileError
    from dropblock_det.engine.lazy_config_checks import check_lazy_config_before_run, load_lazy_config
    from dropblock_det.engine.config_checks import check_config_before_run, load_config

    synthetic = CONFIGS / "Synthetic" / "retinanet_R18_GN_dropblock_res45_kp0.9_b3"
    with tiny_synthetic_datasets(tmp_path, num_train=2, num_val=2) as root:
        (root / "synthetic_det" / "val" / "000000.jpg").unlink()
        cfg = load_config(f"{synthetic}.yaml", ["MODEL.DEVICE", "cpu", "OUTPUT_DIR", str(tmp_path / "out")])
        with pytest.raises(DatasetFileError, match=r"^DATASETS\.TEST names 'synthetic_det_val', whose file_name"):
            check_config_before_run(cfg)
        check_config_before_run(cfg, train=False)  # an --eval-only reads it at once, naming it then
        lazy = load_lazy_config(f"{synthetic}.py", ["train.device=cpu", f"train.output_dir={tmp_path / 'out'}"])
        with pytest.raises(DatasetFileError, match=r"^dataloader\.test\.dataset\.names names 'synthetic_det_val', "
                                                   r"whose file_name"):
            check_lazy_config_before_run(lazy)
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("label, problem", [
    # A palette PNG's colours read as indices: the confusion matrix failed with "cannot reshape".
    (lambda shape: np.full(shape, 220, np.uint8), r"values \[220\] that are neither a class 0\.\.3 \(its 4 "
                                                  r"stuff_classes\) nor its ignore_label 255"),
    (lambda shape: np.zeros(shape + (3,), np.uint8), r"a RGB image of shape \(\d+, \d+, 3\), not one channel"),
    (lambda shape: np.zeros((shape[0] // 2, shape[1]), np.uint8), r"\d+x\d+, but its image is \d+x\d+"),
])
def test_a_segmentation_label_its_evaluator_cannot_score_is_named(tmp_path, label, problem):
    from dropblock_det.data.file_errors import DatasetFileError, check_evaluation_files
    from dropblock_det.data.synthetic import make_synthetic_sem_seg, register_synthetic_datasets

    folder = make_synthetic_sem_seg(tmp_path, num_train=1, num_val=2, image_size=64, min_object_size=14,
                                    max_object_size=36)
    register_synthetic_datasets(tmp_path)
    try:
        check_evaluation_files(["synthetic_sem_seg_val"])
        bad = sorted((folder / "SegmentationClass").glob("val_*.png"))[1]
        with Image.open(bad) as image:
            shape = np.asarray(image).shape
        Image.fromarray(label(shape)).save(bad)
        with pytest.raises(DatasetFileError, match=rf"^DATASETS\.TEST names 'synthetic_sem_seg_val', whose label "
                                                   rf"{bad} is {problem}"):
            check_evaluation_files(["synthetic_sem_seg_val"])
    finally:
        register_synthetic_datasets()


def test_a_segmentation_test_image_without_a_label_is_named_before_the_training(tmp_path):
    from detectron2.data import DatasetCatalog, MetadataCatalog
    from detectron2.evaluation import SemSegEvaluator

    from dropblock_det.data.file_errors import DatasetFileError, check_evaluation_files

    image = tmp_path / "unlabelled.jpg"
    Image.new("RGB", (32, 32)).save(image)
    name = "dropblock_test_seg_unlabelled"
    DatasetCatalog.register(name, lambda: [{"file_name": str(image), "height": 32, "width": 32}])
    MetadataCatalog.get(name).set(evaluator_type="sem_seg", stuff_classes=["a", "b"], ignore_label=255)
    try:
        with pytest.raises(KeyError, match="sem_seg_file_name"):
            SemSegEvaluator(name)  # built after the training
        with pytest.raises(DatasetFileError, match=rf"^DATASETS\.TEST names '{name}', a 'sem_seg' dataset whose "
                                                   rf"image {image} has no sem_seg_file_name"):
            check_evaluation_files([name])
    finally:
        DatasetCatalog.remove(name)
        MetadataCatalog.remove(name)


@pytest.mark.parametrize("how", ["truncated", "empty"])
def test_a_segmentation_label_that_cannot_be_decoded_is_named_with_the_key(tmp_path, how):
    # A truncated PNG gave PIL's bare "OSError: image file is truncated", naming no file.
    from dropblock_det.data.file_errors import DatasetFileError, check_evaluation_files
    from dropblock_det.data.synthetic import make_synthetic_sem_seg, register_synthetic_datasets

    folder = make_synthetic_sem_seg(tmp_path, num_train=1, num_val=2, image_size=64, min_object_size=14,
                                    max_object_size=36)
    register_synthetic_datasets(tmp_path)
    try:
        bad = sorted((folder / "SegmentationClass").glob("val_*.png"))[1]
        data = bad.read_bytes()
        bad.write_bytes(data[: len(data) * 2 // 3] if how == "truncated" else b"")
        with pytest.raises(DatasetFileError, match=rf"^DATASETS\.TEST names 'synthetic_sem_seg_val', whose label "
                                                   rf"{bad} cannot be read \(\w+: "):
            check_evaluation_files(["synthetic_sem_seg_val"])
    finally:
        register_synthetic_datasets()


def test_a_voc_annotation_the_evaluator_cannot_parse_is_named(voc_test_set):
    # detectron2's loader needs no <pose> and takes a fractional box; its evaluator needs both
    # ("'NoneType' object has no attribute 'text'" after the training, naming no file).
    from dropblock_det.data.file_errors import DatasetFileError, check_evaluation_files

    name, voc = voc_test_set
    check_evaluation_files([name])
    for xml in (_voc_xml(pose=""), _voc_xml(x0="2.5")):
        (voc / "Annotations" / "000002.xml").write_text(xml)
        with pytest.raises(DatasetFileError, match=rf"^DATASETS\.TEST names '{name}', whose annotation "
                                                   rf".*000002\.xml detectron2's PASCAL VOC evaluator cannot read"):
            check_evaluation_files([name])


def test_a_voc_annotation_an_unchecked_evaluation_cannot_parse_is_named_by_its_evaluator(voc_test_set):
    # An --eval-only or an analysis does not check the test set: the evaluator, which reads the
    # annotations after the whole inference, failed with "'NoneType' object has no attribute 'text'".
    from detectron2.structures import Boxes, Instances

    from dropblock_det.data.file_errors import DatasetFileError
    from dropblock_det.engine.evaluation import dataset_evaluator

    name, voc = voc_test_set
    (voc / "Annotations" / "000002.xml").write_text(_voc_xml(pose=""))
    evaluator = dataset_evaluator(name)
    evaluator.reset()
    detections = Instances((32, 32), pred_boxes=Boxes(torch.tensor([[2.0, 4, 20, 30]])),
                           scores=torch.tensor([0.9]), pred_classes=torch.tensor([11]))  # "dog"
    evaluator.process([{"image_id": "000001"}], [{"instances": detections}])
    with pytest.raises(DatasetFileError, match=rf"^dataset '{name}': detectron2's PASCAL VOC evaluator cannot read "
                                               rf"its annotation .*000002\.xml \(AttributeError: "):
        evaluator.evaluate()


@pytest.mark.parametrize("xml, why", [
    ("<annotation><size><width>32", r"ParseError: "),
    (_voc_xml(name="Dog"), r"an object of class 'Dog', which is not one of the set's thing_classes"),
])
def test_a_voc_set_that_does_not_load_names_its_broken_annotation(voc_test_set, xml, why):
    # It named the folder only ("tuple.index(x): x not in tuple" for a misspelt class).
    from detectron2.data import DatasetCatalog

    from dropblock_det.data.file_errors import DatasetFileError, naming_dataset_files

    name, voc = voc_test_set
    bad = voc / "Annotations" / "000002.xml"
    bad.write_text(xml)
    with pytest.raises(DatasetFileError, match=rf"^cannot load dataset '{name}' \(.*VOC2007\): {bad}: {why}.*"
                                               r"\(the loader's \w+"):
        with naming_dataset_files([name]):
            DatasetCatalog.get(name)


def test_a_training_label_the_loss_cannot_take_is_named_by_the_mapper(tmp_path):
    # The loss failed at the first step: "IndexError: Target 220 is out of bounds".
    from dropblock_det.data.file_errors import DatasetFileError, DatasetMapperNamingFiles

    image, label = tmp_path / "a.jpg", tmp_path / "a.png"
    Image.new("RGB", (16, 16)).save(image)
    values = np.zeros((16, 16), np.uint8)
    values[:2] = 255  # ignored
    values[2:4] = 3
    Image.fromarray(values).save(label)
    mapper = DatasetMapperNamingFiles(is_train=True, augmentations=[], image_format="RGB")
    item = {"file_name": str(image), "sem_seg_file_name": str(label), "height": 16, "width": 16}
    mapper(dict(item))  # not checked until the model's classes are known
    mapper.expect_sem_seg_labels(4, 255, "KEYS")
    assert mapper(dict(item))["sem_seg"].max() == 255
    values[5] = 220
    Image.fromarray(values).save(label)
    with pytest.raises(DatasetFileError, match=rf"^the label {label} has values \[220\] that are neither a class 0\.\.3 "
                                               r"nor the ignore value 255 \(KEYS\): the loss fails on them"):
        mapper(dict(item))


def test_the_trainers_training_mapper_expects_the_models_classes_and_ignore_value(mini_voc_datasets, tmp_path,
                                                                                  monkeypatch):
    from dropblock_det.data.file_errors import DatasetMapperNamingFiles
    from dropblock_det.engine.lazy_config_checks import lazy_meta_model, load_lazy_config
    from dropblock_det.engine.lazy import build_lazy_train_loader
    from dropblock_det.engine.trainer import DropBlockTrainer

    from conftest import MINI_VOC_TRAIN_NAME, small_voc_sem_seg_cfg

    expected = []
    monkeypatch.setattr(DatasetMapperNamingFiles, "expect_sem_seg_labels", lambda self, *args: expected.append(args))
    DropBlockTrainer.build_train_loader(
        small_voc_sem_seg_cfg("fcn_R_50_FPN_GN_scratch_dropblock_head_kp0.9_b7_poly_330k_bs16.yaml", tmp_path))
    assert expected == [(21, 255, "MODEL.SEM_SEG_HEAD.NUM_CLASSES=21, IGNORE_VALUE=255")]
    cfg = load_lazy_config(
        str(CONFIGS / "PascalVOC-SemanticSegmentation"
            / "deeplab_v3_plus_R_52_GN_scratch_dropblock_res45_head_kp0.9_b7_os16_poly_330k_bs16.py"),
        ["train.device=cpu", f"dataloader.train.dataset.names={MINI_VOC_TRAIN_NAME}",
         "dataloader.train.num_workers=0", "dataloader.train.total_batch_size=2"])
    build_lazy_train_loader(cfg, lazy_meta_model(cfg))
    assert expected[1:] == [(21, 255, "model.sem_seg_head.num_classes=21, ignore_value=255")]


def test_a_label_value_equal_to_the_class_count_is_a_stray_and_the_first_five_are_named(tmp_path):
    # Classes are 0..num_classes-1: a value of num_classes failed the confusion matrix as 220 did.
    from dropblock_det.data.file_errors import sem_seg_label_problem

    path = tmp_path / "label.png"
    values = np.zeros((8, 12), np.uint8)
    values[0, :4] = [3, 255, 1, 2]
    Image.fromarray(values).save(path)
    assert sem_seg_label_problem(str(path), 4, 255, (8, 12)) == ""
    assert "values [255]" in sem_seg_label_problem(str(path), 4, None)  # no ignore value: 255 is a stray
    values[1, :7] = [4, 5, 6, 7, 8, 9, 10]
    Image.fromarray(values).save(path)
    assert sem_seg_label_problem(str(path), 4, 255).startswith("values [4, 5, 6, 7, 8] that are neither")


def test_a_label_of_its_images_height_but_another_width_is_named(tmp_path):
    from dropblock_det.data.file_errors import sem_seg_label_problem

    path = tmp_path / "label.png"
    Image.fromarray(np.zeros((8, 12), np.uint8)).save(path)
    assert sem_seg_label_problem(str(path), 4, 255, (8, 13)) == "12x8, but its image is 13x8"


def test_crowd_annotations_and_test_mappers_are_not_held_to_the_models_fields(tmp_path):
    # A COCO crowd region is ignored in training (detectron2 drops it), and a test mapper
    # loads no annotations: neither makes a Mask R-CNN refuse the item.
    from dropblock_det.data.file_errors import DatasetMapperNamingFiles, missing_annotation_field

    box = {"bbox": [2, 2, 10, 10], "bbox_mode": 1, "category_id": 0}
    crowd_only = {"annotations": [{**box, "iscrowd": 1}]}
    assert missing_annotation_field(crowd_only, ["use_instance_mask"]) is None
    assert missing_annotation_field({"annotations": [{**box, "iscrowd": 0}]}, ["use_instance_mask"]) == "use_instance_mask"
    image = tmp_path / "a.jpg"
    Image.new("RGB", (16, 16)).save(image)
    item = {"file_name": str(image), "height": 16, "width": 16, "annotations": [{**box, "iscrowd": 0}]}
    mapper = DatasetMapperNamingFiles(is_train=False, augmentations=[], image_format="RGB", use_instance_mask=True)
    assert mapper(dict(item))["image"].shape == (3, 16, 16)
    with pytest.raises(ValueError, match=r"^MODEL\.MASK_ON=True, but the annotations of .*a\.jpg have no 'segmentation'"):
        DatasetMapperNamingFiles(is_train=True, augmentations=[], image_format="RGB", use_instance_mask=True)(dict(item))


def test_a_dataset_file_error_inside_naming_dataset_files_passes_through_as_it_is(monkeypatch):
    # It already names its file: not wrapped again as "cannot load dataset ...", and the
    # datasets are not each loaded once more to find a culprit.
    from detectron2.data import DatasetCatalog

    from dropblock_det.data.file_errors import DatasetFileError, naming_dataset_files

    loaded = []
    monkeypatch.setattr(DatasetCatalog, "get", lambda name: loaded.append(name))
    original = DatasetFileError("cannot read /data/a.jpg: OSError: image file is truncated")
    with pytest.raises(DatasetFileError) as raised:
        with naming_dataset_files(["set_a", "set_b"]):
            raise original
    assert raised.value is original and loaded == []


@pytest.mark.parametrize("resize", [True, False])
def test_a_training_label_of_another_size_than_its_image_is_named_by_the_mapper(tmp_path, resize):
    # A resize asserted it bare ("AssertionError: "); with a flip alone the label reached the loss.
    from detectron2.data import transforms as T

    from dropblock_det.data.file_errors import DatasetFileError, DatasetMapperNamingFiles

    image, label = tmp_path / "a.jpg", tmp_path / "a.png"
    Image.new("RGB", (24, 16)).save(image)
    Image.fromarray(np.zeros((10, 10), np.uint8)).save(label)
    augmentations = [T.ResizeShortestEdge(32, 64)] if resize else [T.RandomFlip(prob=1.0)]
    mapper = DatasetMapperNamingFiles(is_train=True, augmentations=augmentations, image_format="RGB")
    item = {"file_name": str(image), "sem_seg_file_name": str(label), "height": 16, "width": 24}
    with pytest.raises(DatasetFileError, match=rf"^the label {label} is 10x10, but its image {image} is 24x16 "
                                               r"\(width x height\)"):
        mapper(dict(item))
    Image.fromarray(np.zeros((10, 24), np.uint8)).save(label)  # of its image's width, not its height
    with pytest.raises(DatasetFileError, match=rf"^the label {label} is 24x10, but its image {image} is 24x16"):
        mapper(dict(item))
    Image.fromarray(np.zeros((16, 24), np.uint8)).save(label)
    assert mapper(dict(item))["sem_seg"].shape == ((32, 48) if resize else (16, 24))


def test_a_test_image_of_another_size_than_its_annotation_gives_is_named_before_the_training(voc_test_set):
    # detectron2's mapper raised SizeMismatchError in the evaluation, after the whole training.
    from dropblock_det.data.file_errors import DatasetFileError, check_evaluation_files

    name, voc = voc_test_set
    check_evaluation_files([name])
    image = voc / "JPEGImages" / "000002.jpg"
    Image.new("RGB", (40, 32)).save(image)
    with pytest.raises(DatasetFileError, match=rf"^KEY names '{name}', whose image {image} is 40x32, but the dataset "
                                               r"gives it 32x32 \(width x height, from its annotation\): its "
                                               r"evaluation would fail on it after the training"):
        check_evaluation_files([name], "KEY")
    # Turned a quarter by its EXIF orientation, as detectron2's read_image turns it: 32x40 is 40x32.
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.new("RGB", (32, 40)).save(image, exif=exif)
    with pytest.raises(DatasetFileError, match=rf"whose image {image} is 40x32, but"):
        check_evaluation_files([name], "KEY")


@pytest.mark.parametrize("orientation, size", [(3, (40, 32)), (5, (32, 40)), (7, (32, 40)), (8, (32, 40))])
def test_an_images_size_is_read_as_detectron2_reads_it_with_its_exif_orientation(tmp_path, orientation, size):
    # Orientations 5-8 turn the image a quarter (read_image swaps its sides), 2-4 do not.
    from detectron2.data.detection_utils import read_image

    from dropblock_det.data.file_errors import _image_size_mismatch

    path = tmp_path / "a.jpg"
    exif = Image.Exif()
    exif[0x0112] = orientation
    Image.new("RGB", size).save(path, exif=exif)
    height, width = read_image(str(path)).shape[:2]
    assert (width, height) == (40, 32)
    assert _image_size_mismatch({"file_name": str(path), "width": 40, "height": 32}) is None
    assert _image_size_mismatch({"file_name": str(path), "width": 32, "height": 40}) == (
        f"{path} is 40x32, but the dataset gives it 32x40 (width x height, from its annotation)")


def test_an_images_size_is_compared_only_with_what_the_dataset_gives(tmp_path):
    # No width and height: nothing to compare (detectron2 checks none). One of them alone:
    # detectron2's check_image_size fails on the other (a KeyError), so it is named. An
    # undecodable file is left to the mapper's error, which names it.
    from dropblock_det.data.file_errors import _image_size_mismatch

    path = tmp_path / "a.jpg"
    Image.new("RGB", (40, 32)).save(path)
    assert _image_size_mismatch({"file_name": str(path)}) is None
    assert _image_size_mismatch({"file_name": str(path), "width": 40}) == (
        f"{path} is 40x32, but the dataset gives it 40xNone (width x height, from its annotation)")
    path.write_bytes(b"not an image")
    assert _image_size_mismatch({"file_name": str(path), "width": 40, "height": 32}) is None


def test_a_label_of_its_images_size_is_no_size_mismatch(tmp_path):
    # The mapper's failure of another cause is not blamed on the sizes.
    from dropblock_det.data.file_errors import _label_size_mismatch

    image, label = tmp_path / "a.jpg", tmp_path / "a.png"
    Image.new("RGB", (24, 16)).save(image)
    Image.fromarray(np.zeros((16, 24), np.uint8)).save(label)
    item = {"file_name": str(image), "sem_seg_file_name": str(label)}
    assert _label_size_mismatch(item) is None
    Image.fromarray(np.zeros((24, 16), np.uint8)).save(label)
    assert _label_size_mismatch(item) == (f"the label {label} is 16x24, but its image {image} is 24x16 "
                                          "(width x height): a segmentation label must have its image's size")
    label.write_bytes(b"not an image")
    assert _label_size_mismatch(item) is None


def _label_item(tmp_path):
    """(mapper, item, image, label): a 64x64 image and its noisy label PNG, large enough that
    cutting it leaves PIL a readable header and a truncated pixel stream."""
    from dropblock_det.data.file_errors import DatasetMapperNamingFiles

    image, label = tmp_path / "a.jpg", tmp_path / "a.png"
    Image.new("RGB", (64, 64)).save(image)
    Image.fromarray(np.random.default_rng(0).integers(0, 4, (64, 64), dtype=np.uint8)).save(label)
    mapper = DatasetMapperNamingFiles(is_train=True, augmentations=[], image_format="RGB")
    return mapper, {"file_name": str(image), "sem_seg_file_name": str(label)}, image, label


def test_the_mapper_names_the_file_it_cannot_decode_with_the_error_chained(tmp_path):
    # A truncated PNG opens (its header reads) and fails only when its pixels are decoded:
    # detectron2's "image file is truncated" named neither file; the label is named, not the image.
    from dropblock_det.data.file_errors import DatasetFileError

    mapper, item, image, label = _label_item(tmp_path)
    assert mapper(dict(item))["sem_seg"].shape == (64, 64)
    data = label.read_bytes()
    label.write_bytes(data[: len(data) * 2 // 3])
    with Image.open(label):  # the header still reads: only decoding the pixels finds it
        pass
    with pytest.raises(DatasetFileError, match=rf"^cannot read {label}: OSError: image file is truncated") as raised:
        mapper(dict(item))
    assert isinstance(raised.value.__cause__, OSError) and str(raised.value.__cause__) in str(raised.value)
    image.write_bytes(b"")  # both broken: the first the mapper reads, the image, is named
    with pytest.raises(DatasetFileError, match=rf"^cannot read {image}: \w+: "):
        mapper(dict(item))


def test_a_mapping_error_no_file_causes_names_every_file_of_the_item(tmp_path):
    # Both files decode: the item (an annotation without its box here) is what fails, and
    # the message names the item by all of its files.
    from dropblock_det.data.file_errors import DatasetFileError

    mapper, item, image, label = _label_item(tmp_path)
    item["annotations"] = [{"bbox_mode": 1, "category_id": 0, "iscrowd": 0}]
    with pytest.raises(DatasetFileError, match=rf"^error while mapping the dataset item of {image}, {label}: "
                                               r"KeyError: 'bbox'$") as raised:
        mapper(dict(item))
    assert isinstance(raised.value.__cause__, KeyError)


@pytest.mark.parametrize("flag, key, field, what", [
    ("use_instance_mask", "MODEL.MASK_ON", "segmentation", "instance masks"),
    ("use_keypoint", "MODEL.KEYPOINT_ON", "keypoints", "keypoints"),
])
def test_the_training_items_are_refused_naming_the_key_the_datasets_and_the_advice(flag, key, field, what):
    # check_training_items runs once before the first step over every item; an item with
    # no "iscrowd" is not a crowd (detectron2 reads a missing iscrowd as 0).
    from dropblock_det.data.file_errors import DatasetMapperNamingFiles

    mapper = DatasetMapperNamingFiles(is_train=True, augmentations=[], image_format="RGB", **{flag: True})
    box = {"bbox": [2, 2, 10, 10], "bbox_mode": 1, "category_id": 0}
    good = {"file_name": "a.jpg", "annotations": [{**box, field: [[2, 2, 10, 2, 10, 10]]}]}
    bad = {"file_name": "b.jpg", "annotations": [box]}
    mapper.check_training_items([good, good], "DATASETS.TRAIN=('mine',)")
    with pytest.raises(ValueError, match=rf"^{key}=True, but the annotations of b\.jpg in DATASETS\.TRAIN=\('mine',\) "
                                         rf"have no '{field}' \({what}\): the model trains on them\. Give "
                                         rf"DATASETS\.TRAIN a dataset with {what}, or set {key} False$"):
        mapper.check_training_items([good, bad], "DATASETS.TRAIN=('mine',)")
    mapper.check_training_items((bad,), "DATASETS.TRAIN=('mine',)")  # not a list: left to __call__


def test_the_first_voc_annotation_that_does_not_load_is_named(voc_test_set):
    # Ids are read in the split file's order, the first included: 000001 (no <height>, the
    # loader's IndexError) is named, not 000002 (a misspelt class) after it.
    from detectron2.data import DatasetCatalog

    from dropblock_det.data.file_errors import DatasetFileError, naming_dataset_files

    name, voc = voc_test_set
    (voc / "Annotations" / "000001.xml").write_text(_voc_xml().replace("<height>32</height>", ""))
    (voc / "Annotations" / "000002.xml").write_text(_voc_xml(name="Dog"))
    with pytest.raises(DatasetFileError, match=rf"^cannot load dataset '{name}' \(.*VOC2007\): "
                                               rf"{voc / 'Annotations' / '000001.xml'}: IndexError: "):
        with naming_dataset_files([name]):
            DatasetCatalog.get(name)


def test_a_voc_set_without_its_split_file_is_named_with_the_loaders_error(voc_test_set):
    # No annotation to blame: the loader's own error (which names the split file) is given,
    # still as a DatasetFileError naming the set.
    from detectron2.data import DatasetCatalog

    from dropblock_det.data.file_errors import DatasetFileError, naming_dataset_files

    name, voc = voc_test_set
    split = voc / "ImageSets" / "Main" / "test.txt"
    split.unlink()
    with pytest.raises(DatasetFileError, match=rf"^cannot load dataset '{name}' \(.*VOC2007\): "
                                               rf"FileNotFoundError: .*{split}") as raised:
        with naming_dataset_files([name]):
            DatasetCatalog.get(name)
    assert isinstance(raised.value.__cause__, FileNotFoundError)


def test_of_several_datasets_only_the_one_that_fails_again_is_named(monkeypatch):
    # Each set named once: "'a' (its files); 'b' (...)"; a set whose metadata names no file says so.
    from detectron2.data import DatasetCatalog, MetadataCatalog

    from dropblock_det.data.file_errors import DatasetFileError, naming_dataset_files

    def load_b():
        raise ValueError("broken b")

    names = ["file_errors_test_ok", "file_errors_test_bad", "file_errors_test_bad_too"]
    DatasetCatalog.register(names[0], lambda: [])
    DatasetCatalog.register(names[1], load_b)
    DatasetCatalog.register(names[2], load_b)
    MetadataCatalog.get(names[1]).set(json_file="/data/b.json", image_root="/data/b")
    try:
        with pytest.raises(DatasetFileError, match=r"^cannot load dataset 'file_errors_test_bad' \(/data/b\.json, "
                                                   r"/data/b\); 'file_errors_test_bad_too' \(no file in its "
                                                   r"metadata\): ValueError: broken b$"):
            with naming_dataset_files(names):
                DatasetCatalog.get(names[1])
    finally:
        for name in names:
            DatasetCatalog.remove(name)
            MetadataCatalog.pop(name, None)


def test_a_voc_object_without_one_of_its_four_box_numbers_is_named(voc_test_set):
    from detectron2.data import DatasetCatalog

    from dropblock_det.data.file_errors import DatasetFileError, naming_dataset_files

    name, voc = voc_test_set
    bad = voc / "Annotations" / "000002.xml"
    bad.write_text(_voc_xml().replace("<ymax>30</ymax>", ""))
    with pytest.raises(DatasetFileError, match=rf"^cannot load dataset '{name}' \(.*VOC2007\): {bad}: AttributeError: "):
        with naming_dataset_files([name]):
            DatasetCatalog.get(name)


def test_a_test_set_that_does_not_load_is_named_with_its_broken_file_before_the_training(voc_test_set):
    from dropblock_det.data.file_errors import DatasetFileError, check_evaluation_files

    name, voc = voc_test_set
    bad = voc / "Annotations" / "000001.xml"
    bad.write_text(_voc_xml(name="Dog"))
    with pytest.raises(DatasetFileError, match=rf"^cannot load dataset '{name}' \(.*VOC2007\): {bad}: an object of "
                                               r"class 'Dog'"):
        check_evaluation_files([name])


def test_the_voc_evaluation_refusal_gives_the_parsers_error_and_what_it_reads(voc_test_set):
    from dropblock_det.data.file_errors import DatasetFileError, check_evaluation_files

    name, voc = voc_test_set
    (voc / "Annotations" / "000002.xml").write_text(_voc_xml(pose=""))
    with pytest.raises(DatasetFileError, match=r"evaluator cannot read \(AttributeError: 'NoneType' object has no "
                                               r"attribute 'text'; it reads name, pose, truncated, difficult and an "
                                               r"integer bndbox of each object\)$") as raised:
        check_evaluation_files([name], key="KEY")
    assert str(raised.value).startswith(f"KEY names '{name}'") and isinstance(raised.value.__cause__, AttributeError)


def test_the_evaluators_voc_parse_skips_a_set_it_cannot_list(voc_test_set):
    # No split file (the loader's own error names it), or no VOC set at all: nothing to blame.
    from detectron2.data import MetadataCatalog

    from dropblock_det.data.file_errors import unparsable_voc_annotation

    name, voc = voc_test_set
    (voc / "Annotations" / "000002.xml").write_text(_voc_xml(pose=""))
    assert unparsable_voc_annotation(name)[0] == str(voc / "Annotations" / "000002.xml")
    (voc / "ImageSets" / "Main" / "test.txt").unlink()
    assert unparsable_voc_annotation(name) is None
    other = "file_errors_test_dirname_only"
    MetadataCatalog.get(other).set(dirname=str(voc))  # a folder, but no split
    try:
        assert unparsable_voc_annotation(other) is None
    finally:
        MetadataCatalog.remove(other)


def test_without_an_ignore_label_every_value_outside_the_classes_is_a_stray(tmp_path):
    from detectron2.data import DatasetCatalog, MetadataCatalog

    from dropblock_det.data.file_errors import DatasetFileError, _stray_label_values, check_evaluation_files

    image, label = tmp_path / "a.jpg", tmp_path / "a.png"
    Image.new("RGB", (8, 8)).save(image)
    values = np.zeros((8, 8), np.uint8)
    values[0, 0] = 255
    Image.fromarray(values).save(label)
    name = "dropblock_test_seg_no_ignore"
    DatasetCatalog.register(name, lambda: [{"file_name": str(image), "sem_seg_file_name": str(label)}])
    MetadataCatalog.get(name).set(evaluator_type="sem_seg", stuff_classes=["a", "b"])
    try:
        with pytest.raises(DatasetFileError, match=r"is values \[255\] that are neither a class 0\.\.1 \(its 2 "
                                                   r"stuff_classes\) nor its ignore_label None"):
            check_evaluation_files([name])
    finally:
        DatasetCatalog.remove(name)
        MetadataCatalog.remove(name)
    # A negative value (an int32 label) is no class either.
    assert _stray_label_values(np.array([[-1, 0, 1, 2, 255]]), 2, 255) == [-1, 2]


def test_a_label_png_pil_finds_broken_while_decoding_is_named(tmp_path):
    # PIL raises SyntaxError, not OSError, for a chunk of garbage among a PNG's pixel data
    # (a corrupted copy): "broken PNG file (chunk ...)", found only when the pixels are read.
    import struct
    import zlib

    from detectron2.data import DatasetCatalog, MetadataCatalog

    from dropblock_det.data.file_errors import DatasetFileError, check_evaluation_files

    image, label = tmp_path / "a.jpg", tmp_path / "a.png"
    Image.new("RGB", (64, 64)).save(image)
    Image.fromarray(np.random.default_rng(0).integers(0, 2, (64, 64), dtype=np.uint8)).save(label)
    data = label.read_bytes()
    start = data.find(b"IDAT") - 4
    length = int.from_bytes(data[start:start + 4], "big")
    pixels = data[start + 8:start + 8 + length]

    def chunk(kind, payload):
        return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))

    label.write_bytes(data[:start] + chunk(b"IDAT", pixels[:length // 2]) + chunk(b"\x01\x02\x03\x04", pixels[length // 2:])
                      + data[start + 12 + length:])
    name = "dropblock_test_seg_broken_png"
    DatasetCatalog.register(name, lambda: [{"file_name": str(image), "sem_seg_file_name": str(label)}])
    MetadataCatalog.get(name).set(evaluator_type="sem_seg", stuff_classes=["a", "b"], ignore_label=255)
    try:
        with pytest.raises(DatasetFileError, match=rf"^DATASETS\.TEST names '{name}', whose label {label} cannot be "
                                                   r"read \(SyntaxError: broken PNG file"):
            check_evaluation_files([name])
    finally:
        DatasetCatalog.remove(name)
        MetadataCatalog.remove(name)


def test_the_evaluation_files_check_counts_the_items_skips_what_it_cannot_read_and_wants_files_not_folders(tmp_path, caplog):
    import logging

    from detectron2.data import DatasetCatalog, MetadataCatalog

    from dropblock_det.data.file_errors import DatasetFileError, check_evaluation_files

    images = [tmp_path / "a.jpg", tmp_path / "b.jpg"]
    for image in images:
        Image.new("RGB", (8, 8)).save(image)
    items = [{"file_name": str(image)} for image in images]
    names = ["dropblock_test_eval_list", "dropblock_test_eval_iterator"]
    DatasetCatalog.register(names[0], lambda: items)
    # A "sem_seg" set without stuff_classes: its evaluator's metadata check names that; no labels read here.
    MetadataCatalog.get(names[0]).set(evaluator_type="sem_seg")
    # Not a list (a lazily read set): left to its loader, not read here.
    DatasetCatalog.register(names[1], lambda: iter([{"file_name": str(tmp_path / "missing.jpg")}]))
    try:
        with caplog.at_level(logging.INFO, logger="dropblock_det.data.file_errors"):
            check_evaluation_files(names, key="KEY")
        assert f"KEY: the 2 items of {names[0]}, {names[1]} are there for the evaluation" in caplog.text
        folder = tmp_path / "c.jpg"
        folder.mkdir()  # a folder where an image should be: the evaluation fails on it as on a missing one
        items.append({"file_name": str(folder)})
        with pytest.raises(DatasetFileError, match=rf"^KEY names '{names[0]}', whose file_name {folder} does not exist"):
            check_evaluation_files(names[:1], key="KEY")
    finally:
        for name in names:
            DatasetCatalog.remove(name)
            MetadataCatalog.pop(name, None)


def test_a_training_item_whose_image_is_missing_or_of_another_size_is_named(tmp_path):
    # Before the first step: detectron2's mapper failed on such an item only when the sampler
    # reached it, anywhere in the first epoch.
    from dropblock_det.data.file_errors import DatasetFileError, check_training_files

    image = tmp_path / "a.png"
    Image.new("RGB", (24, 16)).save(image)
    good = {"file_name": str(image), "width": 24, "height": 16}
    check_training_files([good, {"file_name": str(image)}], "DATASETS.TRAIN=('mine',)")
    missing = {"file_name": str(tmp_path / "nope.png"), "width": 24, "height": 16}
    with pytest.raises(DatasetFileError, match=rf"^DATASETS\.TRAIN=\('mine',\) lists an item whose file_name "
                                               rf"{tmp_path / 'nope.png'} does not exist: the training would fail on "
                                               r"it when its sampler reached it \(detectron2's FileNotFoundError\)$"):
        check_training_files([good, missing], "DATASETS.TRAIN=('mine',)")
    with pytest.raises(DatasetFileError, match=rf"^KEY lists an item whose image {image} is 24x16, but the dataset "
                                               r"gives it 200x16 \(width x height, from its annotation\): the training "
                                               r"would fail on it when its sampler reached it \(detectron2's "
                                               r"SizeMismatchError\)$"):
        check_training_files([good, {**good, "width": 200}], "KEY")
    check_training_files((missing,), "KEY")  # not a list (an iterable dataset): left to the mapper


def test_the_training_files_are_read_by_the_main_process_only(tmp_path, monkeypatch):
    # Every process of a launch loads the same items; one reads their files.
    import detectron2.utils.comm as comm

    from dropblock_det.data.file_errors import DatasetFileError, check_training_files

    missing = [{"file_name": str(tmp_path / "gone.jpg")}]
    monkeypatch.setattr(comm, "get_rank", lambda: 1)
    check_training_files(missing, "KEY")
    monkeypatch.setattr(comm, "get_rank", lambda: 0)
    with pytest.raises(DatasetFileError, match="gone.jpg does not exist"):
        check_training_files(missing, "KEY")


# --- R-CNN journey (stop 52) ---
def test_a_module_the_mapping_imports_is_named_with_its_install_not_blamed_on_the_item(tmp_path, monkeypatch):
    # A Mask R-CNN with INPUT.CROP (detectron2's RandomCrop) crops the polygons with shapely,
    # which a detectron2 built from source does not install: the first step failed with a
    # DatasetFileError "error while mapping the dataset item of <image>".
    import re
    import sys

    import detectron2.data.transforms as T

    from dropblock_det.data.file_errors import DatasetMapperNamingFiles

    monkeypatch.setitem(sys.modules, "shapely", None)  # not installed, also where it is
    monkeypatch.setitem(sys.modules, "shapely.geometry", None)
    image = tmp_path / "a.jpg"
    Image.new("RGB", (16, 16)).save(image)
    annotation = {"bbox": [2, 2, 10, 10], "bbox_mode": 1, "category_id": 0, "iscrowd": 0,
                  "segmentation": [[2, 2, 12, 2, 12, 12, 2, 12]]}
    item = {"file_name": str(image), "height": 16, "width": 16, "annotations": [annotation]}
    mapper = DatasetMapperNamingFiles(is_train=True, augmentations=[T.RandomCrop("absolute", (8, 8))],
                                      image_format="RGB", use_instance_mask=True)
    with pytest.raises(ModuleNotFoundError, match=rf"^mapping the dataset item of {re.escape(str(image))} imports "
                                                  r"the module 'shapely', which is not installed \(no fault of the "
                                                  r"item\): pip install shapely \(detectron2 crops polygon masks"):
        mapper(dict(item))


# --- mutation 58D ---


def test_an_item_where_only_some_annotations_lack_the_models_field_is_refused():
    # detectron2 reads the field of every non-crowd annotation of an item: one without it
    # among others with it fails as surely as all without it.
    from detectron2.data.detection_utils import annotations_to_instances

    from dropblock_det.data.file_errors import missing_annotation_field

    box = {"bbox": [2, 2, 10, 10], "bbox_mode": 1, "category_id": 0, "iscrowd": 0}
    masked = {**box, "segmentation": [[2, 2, 10, 2, 10, 10]]}
    mixed = {"annotations": [masked, box]}
    with pytest.raises(KeyError, match="segmentation"):
        annotations_to_instances(mixed["annotations"], (16, 16))
    assert missing_annotation_field(mixed, ["use_instance_mask"]) == "use_instance_mask"
    assert missing_annotation_field({"annotations": [masked, masked]}, ["use_instance_mask"]) is None
    # the second flag too: masks everywhere, keypoints on one annotation only
    with_keypoints = {**masked, "keypoints": [5, 5, 2]}
    assert missing_annotation_field({"annotations": [with_keypoints, masked]},
                                    ["use_instance_mask", "use_keypoint"]) == "use_keypoint"
