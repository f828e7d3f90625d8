"""Shared fixtures: small CPU detectron2 configs built from the project's own base files."""
import contextlib
import functools
import http.server
import importlib.util
import os
import shutil
import threading
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parent.parent
CONFIGS = REPO / "configs"


def pytest_collection_modifyitems(config, items):
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA device")
    for item in items:
        if "cuda" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(autouse=True)
def _deterministic_threads():
    # Keep CPU timing-insensitive tests lean on the 2-core CI machine, and share the cores
    # between pytest-xdist's workers (`make test` runs one per core) instead of each taking them all.
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    torch.set_num_threads(max(1, min(2, (os.cpu_count() or 1) // workers)))
    yield


def _default_output_dir_state(folder: Path):
    """What a test could have done to detectron2's default OUTPUT_DIR ('./output'): its files
    and their modification times, or None where there is no such folder."""
    if not folder.is_dir():
        return None
    return {str(p.relative_to(folder)): p.stat().st_mtime_ns for p in folder.rglob("*")}


@pytest.fixture(autouse=True)
def _default_output_dir_left_alone():
    # A test that leaves OUTPUT_DIR at detectron2's default writes into the checkout's ./output,
    # where a developer's own run lives (and where a fresh run moves an earlier one aside).
    # Under pytest-xdist another worker's test may be the one that wrote; either way one did.
    folder = Path.cwd() / "output"
    before = _default_output_dir_state(folder)
    yield
    after = _default_output_dir_state(folder)
    assert after == before, (
        f"a test (this one, or one beside it in another pytest-xdist worker) wrote into {folder}: "
        "give it an OUTPUT_DIR under tmp_path")


class ModuleTempPaths:
    """`tmp_path_factory.mktemp` for a module-scoped fixture, remembering what it made."""

    def __init__(self, factory: pytest.TempPathFactory):
        self._factory = factory
        self.made: list = []

    def mktemp(self, basename: str, numbered: bool = True) -> Path:
        path = self._factory.mktemp(basename, numbered=numbered)
        self.made.append(path)
        return path


@pytest.fixture
def served(tmp_path, monkeypatch):
    """(the URL of a folder served over HTTP on localhost, the folder); downloads are cached
    under tmp_path, not in the user's ~/.torch."""
    folder = tmp_path / "served"
    folder.mkdir()
    monkeypatch.setenv("FVCORE_CACHE", str(tmp_path / "cache"))
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(folder))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", folder
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def unscheduled_warnings(monkeypatch):
    """A function returning the messages `dropblock_det.layers.base.warn_unscheduled` logged
    in this test, its once-per-process flag cleared. Recorded by a handler on its own logger:
    caplog's root handler misses them once detectron2's setup_logger (run by an earlier tool
    test in the process) has made the 'dropblock_det' logger stop propagating."""
    import logging

    from dropblock_det.layers import base

    class Recorder(logging.Handler):
        def __init__(self) -> None:
            super().__init__(logging.WARNING)
            self.messages = []

        def emit(self, record: logging.LogRecord) -> None:
            self.messages.append(record.getMessage())

    monkeypatch.setattr(base, "_unscheduled_warned", False)
    logger, recorder = logging.getLogger(base.__name__), Recorder()
    level = logger.level
    logger.setLevel(logging.WARNING)
    logger.addHandler(recorder)
    yield lambda: list(recorder.messages)
    logger.removeHandler(recorder)
    logger.setLevel(level)


@pytest.fixture(scope="module")
def module_tmp_path_factory(tmp_path_factory, request):
    """Folders for a module's shared fixtures, removed once the module's tests are done unless
    one of them failed. pytest.ini's `tmp_path_retention_policy = failed` does the same for each
    test's `tmp_path`; without both, the suite's checkpoints (about 94 MB each) piled up to
    6.7 GB under /tmp before the session ended, and filled the CI machine's disk."""
    temps = ModuleTempPaths(tmp_path_factory)
    failed_before = request.session.testsfailed
    yield temps
    if request.session.testsfailed == failed_before:
        for path in temps.made:
            shutil.rmtree(path, ignore_errors=True)


def small_retinanet_cfg(config_file: str = "Base-RetinaNet.yaml", depth: int = 18):
    """A RetinaNet config from the project's configs, shrunk to run in seconds on CPU."""
    from detectron2.config import get_cfg

    from dropblock_det import add_dropblock_config

    cfg = get_cfg()
    add_dropblock_config(cfg)
    cfg.merge_from_file(str(CONFIGS / config_file))
    cfg.MODEL.DEVICE = "cpu"
    cfg.MODEL.WEIGHTS = ""
    cfg.MODEL.RESNETS.DEPTH = depth
    if depth < 50:
        cfg.MODEL.RESNETS.RES2_OUT_CHANNELS = 64
    cfg.MODEL.FPN.OUT_CHANNELS = 32
    cfg.MODEL.RETINANET.NUM_CLASSES = 3
    cfg.MODEL.RETINANET.NUM_CONVS = 1
    cfg.INPUT.MIN_SIZE_TEST = 64
    cfg.INPUT.MAX_SIZE_TEST = 96
    return cfg


# The synthetic RetinaNet (R18 GN, DropBlock in res4 and res5) the engine tests check configs of.
SYNTH_CONFIG = str(CONFIGS / "Synthetic" / "retinanet_R18_GN_dropblock_res45_kp0.9_b3.yaml")


def synthetic_cfg(*opts):
    """SYNTH_CONFIG loaded as the tools load it (load_config), with the key-value `opts` merged."""
    from dropblock_det.engine.config_checks import load_config

    return load_config(SYNTH_CONFIG, list(opts))


# (LazyConfig, its yacs twin): each Python config of configs/ and the YAML config it mirrors.
LAZY_TWINS = [
    ("Synthetic/retinanet_R18_GN_dropblock_res45_kp0.9_b3.py", "Synthetic/retinanet_R18_GN_dropblock_res45_kp0.9_b3.yaml"),
    ("COCO-Detection/retinanet_R_50_FPN_GN_scratch_dropblock_res45_fpn_head_kp0.9_b7_3x.py",
     "COCO-Detection/retinanet_R_50_FPN_GN_scratch_dropblock_res45_fpn_head_kp0.9_b7_3x.yaml"),
    ("PascalVOC-Detection/retinanet_R_50_FPN_GN_scratch_dropblock_res45_fpn_head_kp0.9_b7_54k.py",
     "PascalVOC-Detection/retinanet_R_50_FPN_GN_scratch_dropblock_res45_fpn_head_kp0.9_b7_54k.yaml"),
    ("PascalVOC-SemanticSegmentation/deeplab_v3_plus_R_52_GN_scratch_dropblock_res45_head_kp0.9_b7_os16_poly_330k_bs16.py",
     "PascalVOC-SemanticSegmentation/deeplab_v3_plus_R_52_GN_scratch_dropblock_res45_head_kp0.9_b7_os16_poly_330k_bs16.yaml"),
]


def lazy_cfg(path, *opts):
    """The LazyConfig at `path` loaded as the tool loads it (load_lazy_config), with the
    overrides `opts` ("model.x=1")."""
    from dropblock_det.engine.lazy_config_checks import load_lazy_config

    return load_lazy_config(str(path), list(opts))


# Every location the plugin can regularize in a ResNet-FPN RetinaNet.
ALL_RESNET_STAGES = ["res2", "res3", "res4", "res5"]
ALL_FPN_POSITIONS = ["lateral", "output", "top_block"]


def dropblock_everywhere_cfg(
    keep_prob: float = 0.9,
    block_size: int = 3,
    drop_path_rate: float = 0.1,
    head_norm: str = "GN",
    fpn_channels: int = 64,
):
    """A tiny R18 GN RetinaNet config (from Base-RetinaNet-Scratch.yaml) with DropBlock in
    every ResNet stage and position, every FPN position, both head towers, and DropPath.

    64 FPN channels: GN with 32 groups needs >= 2 values per group on the 1x1 P7 map of a
    64 px image. `head_norm=""` gives a head that detectron2 v0.6's stock RetinaNet can
    also build (for strict-loading comparisons).
    """
    cfg = small_retinanet_cfg("Base-RetinaNet-Scratch.yaml")
    cfg.MODEL.FPN.OUT_CHANNELS = fpn_channels
    cfg.MODEL.RETINANET.NORM = head_norm
    cfg.INPUT.MIN_SIZE_TEST = 64
    cfg.INPUT.MAX_SIZE_TEST = 64
    db = cfg.MODEL.DROPBLOCK
    db.KEEP_PROB = keep_prob
    db.BLOCK_SIZE = block_size
    db.RESNET.ENABLED = True
    db.RESNET.STAGES = list(ALL_RESNET_STAGES)
    db.FPN.ENABLED = True
    db.FPN.POSITIONS = list(ALL_FPN_POSITIONS)
    db.HEAD.ENABLED = True
    db.HEAD.TOWERS = ["cls", "bbox"]
    db.DROP_PATH_RATE = drop_path_rate
    return cfg


def stock_retinanet_cfg(plugin_cfg):
    """The same model for stock detectron2 (dropblock_det.deploy.stock_config): RetinaNet
    with detectron2's own RetinaNet ResNet-FPN backbone builder, without the plugin's keys,
    read into a fresh get_cfg() as stock detectron2 reads a config file."""
    from detectron2.config import get_cfg

    from dropblock_det.deploy import stock_config

    stock = stock_config(plugin_cfg)
    assert stock.MODEL.META_ARCHITECTURE == "RetinaNet"
    assert stock.MODEL.BACKBONE.NAME == "build_retinanet_resnet_fpn_backbone"
    cfg = get_cfg()
    cfg.merge_from_other_cfg(stock)  # fails on any key a stock config does not have
    return cfg


# A detection set small enough for a few training iterations in seconds on 2 cores.
TINY_DET_DATA = dict(num_train=4, num_val=2, image_size=64, min_object_size=14, max_object_size=36)


@contextlib.contextmanager
def tiny_synthetic_datasets(root, **params):
    """Write the synthetic detection set under `root` (TINY_DET_DATA updated by `params`),
    register it there and point DETECTRON2_DATASETS at it; restore both on exit."""
    from dropblock_det.data.synthetic import make_synthetic_detection, register_synthetic_datasets

    make_synthetic_detection(root, **{**TINY_DET_DATA, **params})
    old = os.environ.get("DETECTRON2_DATASETS")
    os.environ["DETECTRON2_DATASETS"] = str(root)
    register_synthetic_datasets(root)
    try:
        yield Path(root)
    finally:
        if old is None:
            os.environ.pop("DETECTRON2_DATASETS", None)
        else:
            os.environ["DETECTRON2_DATASETS"] = old
        register_synthetic_datasets()


def register_coco_json(name: str, coco: dict, folder) -> None:
    """The COCO annotations `coco` written to `folder`/instances.json and registered as the
    dataset `name` (an earlier registration of the name replaced), its dicts loaded once, which
    sets the category id mapping as building a loader does."""
    import json

    from detectron2.data import DatasetCatalog, MetadataCatalog
    from detectron2.data.datasets import register_coco_instances

    json_file = Path(folder) / "instances.json"
    json_file.write_text(json.dumps(coco))
    if name in DatasetCatalog.list():
        DatasetCatalog.remove(name)
        MetadataCatalog.remove(name)
    register_coco_instances(name, {}, str(json_file), str(folder))
    DatasetCatalog.get(name)


def load_tool(name: str, folder: str = "tools"):
    """<folder>/<name>.py imported as a module (tools/ and benchmarks/ are not packages)."""
    spec = importlib.util.spec_from_file_location(f"{folder}_{name}", REPO / folder / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# ----------------------------------------------------------------------------- VOC + SBD
# A miniature PASCAL VOC 2012 + SBD tree (issue 5's tests): what each id is and where its
# label comes from, so tests can check the prepared splits.
MINI_VOC_TRAIN = ("2007_000032", "2007_000039")  # VOC 2012 SegmentationClass train
MINI_VOC_VAL = ("2007_000033", "2007_000042")  # VOC 2012 SegmentationClass val
MINI_SBD_TRAIN = ("2007_000039", "2008_000002", "2008_000003")  # first one: VOC label wins
MINI_SBD_VAL = ("2008_000004", "2007_000033")  # second one: VOC val, not in train_aug
MINI_TRAIN_AUG = ("2007_000032", "2007_000039", "2008_000002", "2008_000003", "2008_000004")


def make_mini_voc_sbd(root, seed: int = 0):
    """Write a miniature VOCdevkit/VOC2012 and SBD benchmark_RELEASE under `root`.

    VOC labels are palette ("P") PNGs with VOC's colours, a 1-pixel 255 border band and
    class 15 (person, luminance 147 after convert("L")) among the classes; SBD labels are
    cls/<id>.mat files with GTcls.Segmentation (scipy.io.savemat). Images are RGB JPEGs of
    varied sizes (48..64 x 64..80). Returns (voc_dir, sbd_dir, {id: label array}).
    """
    from pathlib import Path

    import numpy as np
    from PIL import Image
    from scipy.io import savemat

    from dropblock_det.data.voc_sem_seg import voc_palette

    root = Path(root)
    voc = root / "VOCdevkit" / "VOC2012"
    sbd = root / "benchmark_RELEASE" / "dataset"
    for d in (voc / "JPEGImages", voc / "SegmentationClass", voc / "ImageSets" / "Segmentation",
              sbd / "cls", sbd / "img"):
        d.mkdir(parents=True, exist_ok=True)
    palette = [v for rgb in voc_palette(256) for v in rgb]
    rng = np.random.default_rng(seed)
    labels = {}
    all_ids = dict.fromkeys(MINI_VOC_TRAIN + MINI_VOC_VAL + MINI_SBD_TRAIN + MINI_SBD_VAL)
    for k, image_id in enumerate(all_ids):
        h, w = 48 + 8 * (k % 3), 64 + 8 * (k % 2)
        label = np.zeros((h, w), dtype=np.uint8)
        classes = (15, 1 + k % 20, 1 + (3 * k) % 20)
        for j, c in enumerate(classes):  # three rectangles of different classes
            y0, x0 = 4 + 12 * j, 6 + 16 * j
            label[y0:y0 + 16, x0:x0 + 20] = c
        image = np.zeros((h, w, 3), dtype=np.uint8)
        image[...] = (label[..., None] * np.array([9, 5, 13])) % 256  # learnable colours
        image = np.clip(image + rng.integers(0, 30, image.shape), 0, 255).astype(np.uint8)
        Image.fromarray(image).save(voc / "JPEGImages" / f"{image_id}.jpg", quality=95)
        if image_id in MINI_VOC_TRAIN or image_id in MINI_VOC_VAL:
            voc_label = label.copy()
            edges = np.zeros_like(label, dtype=bool)  # VOC marks object borders 255
            edges[1:, :] |= label[1:, :] != label[:-1, :]
            edges[:, 1:] |= label[:, 1:] != label[:, :-1]
            voc_label[edges] = 255
            png = Image.fromarray(voc_label)
            png.putpalette(palette)  # turns the "L" image into "P" with the same indices
            png.save(voc / "SegmentationClass" / f"{image_id}.png")
            labels[image_id] = voc_label
        if image_id in MINI_SBD_TRAIN or image_id in MINI_SBD_VAL:
            # SBD's own label of an id that VOC also labels is deliberately different (no
            # border band, class shifted) so tests can tell which one was used.
            sbd_label = label if image_id not in labels else np.where(label > 0, 2, 0)
            savemat(sbd / "cls" / f"{image_id}.mat",
                    {"GTcls": {"Segmentation": sbd_label.astype(np.uint8),
                               "CategoriesPresent": np.unique(sbd_label[sbd_label > 0])}})
            labels.setdefault(image_id, label)
    (voc / "ImageSets" / "Segmentation" / "train.txt").write_text("\n".join(MINI_VOC_TRAIN) + "\n")
    (voc / "ImageSets" / "Segmentation" / "val.txt").write_text("\n".join(MINI_VOC_VAL) + "\n")
    (sbd / "train.txt").write_text("\n".join(MINI_SBD_TRAIN) + "\n")
    (sbd / "val.txt").write_text("\n".join(MINI_SBD_VAL) + "\n")
    return voc, sbd.parent, labels


def detection_batch(num_images: int = 2, size=(3, 64, 96), seed: int = 0, with_instances=True):
    """detectron2 model inputs: random uint8 images (C, H, W) and, when `with_instances`,
    two ground-truth boxes of classes 0 and 2 per image (fit in images >= 64 x 72)."""
    from detectron2.structures import Boxes, Instances

    g = torch.Generator().manual_seed(seed)
    batch = []
    for _ in range(num_images):
        image = (torch.rand(size, generator=g) * 255).to(torch.uint8)
        item = {"image": image, "height": size[1], "width": size[2]}
        if with_instances:
            instances = Instances(size[1:])
            instances.gt_boxes = Boxes(torch.tensor([[4.0, 6.0, 40.0, 50.0], [30.0, 5.0, 70.0, 40.0]]))
            instances.gt_classes = torch.tensor([0, 2])
            item["instances"] = instances
        batch.append(item)
    return batch


MINI_VOC_TRAIN_NAME = "voc_mini_sem_seg_train_aug"
MINI_VOC_VAL_NAME = "voc_mini_sem_seg_val"


@pytest.fixture(scope="session")
def mini_voc_datasets(tmp_path_factory):
    """The miniature VOC + SBD tree, prepared, registered as `voc_mini_sem_seg_train_aug` /
    `voc_mini_sem_seg_val` (names distinct from the real ones). Returns the VOC2012 dir."""
    import dropblock_det.data  # noqa: F401
    from dropblock_det.data.prepare_voc import prepare_voc_sem_seg
    from dropblock_det.data.voc_sem_seg import register_voc_sem_seg

    voc, sbd, _ = make_mini_voc_sbd(tmp_path_factory.mktemp("mini_voc_prepared"))
    prepare_voc_sem_seg(voc, sbd)
    register_voc_sem_seg(MINI_VOC_TRAIN_NAME, voc, "train_aug")
    register_voc_sem_seg(MINI_VOC_VAL_NAME, voc, "val")
    return voc


def small_voc_sem_seg_cfg(config_file: str, output_dir, opts=()):
    """A PascalVOC-SemanticSegmentation config shrunk to run 2 iterations in seconds on CPU:
    the mini VOC datasets, 64-pixel crops, native-size evaluation, narrow channels (still
    multiples of 32 for GN), no weights, no workers. Extra `opts` are merged last."""
    from dropblock_det.engine.config_checks import load_config

    path = CONFIGS / "PascalVOC-SemanticSegmentation" / config_file
    cfg = load_config(str(path))
    is_deeplab = "DeepLab" in cfg.MODEL.SEM_SEG_HEAD.NAME
    cfg.merge_from_list([
        "MODEL.DEVICE", "cpu",
        "MODEL.WEIGHTS", "",
        # R50 (DeepLab's dilation needs bottlenecks) made narrow: 32..256 channels
        "MODEL.RESNETS.DEPTH", 50,
        "MODEL.RESNETS.STEM_OUT_CHANNELS", 64,
        "MODEL.RESNETS.RES2_OUT_CHANNELS", 32,
        "MODEL.RESNETS.WIDTH_PER_GROUP", 32,
        "MODEL.SEM_SEG_HEAD.CONVS_DIM", 32,
        "MODEL.DROPBLOCK.BLOCK_SIZE", 3,
        "DATASETS.TRAIN", (MINI_VOC_TRAIN_NAME,),
        "DATASETS.TEST", (MINI_VOC_VAL_NAME,),
        "INPUT.MIN_SIZE_TRAIN", (64,),
        "INPUT.MAX_SIZE_TRAIN", 128,
        "INPUT.CROP.SIZE", (64, 64),
        "SOLVER.IMS_PER_BATCH", 2,
        "SOLVER.MAX_ITER", 2,
        "SOLVER.WARMUP_ITERS", 1,
        "DATALOADER.NUM_WORKERS", 0,
        "OUTPUT_DIR", str(output_dir),
    ])
    if is_deeplab:
        cfg.merge_from_list([
            "MODEL.SEM_SEG_HEAD.PROJECT_CHANNELS", [32],
            "MODEL.SEM_SEG_HEAD.ASPP_CHANNELS", 32,
        ])
    else:
        cfg.merge_from_list(["MODEL.FPN.OUT_CHANNELS", 32])
    cfg.merge_from_list(list(opts))
    return cfg


# ----------------------------------------------------------------------------- own COCO-format sets
@contextlib.contextmanager
def own_coco_set(folder, name: str, thing_classes=None, segmentation: bool = False, dog: str = "dog"):
    """`name` registered as a user registers a COCO-format set of their own
    (register_coco_instances: no thing_classes until it is loaded, unless `thing_classes`),
    its json `folder`/train.json giving the categories cat (id 1) and `dog` (id 2) and one
    image, `folder`/images/a.jpg, with a dog box (and its polygon with `segmentation`);
    removed from the catalogs on exit."""
    import json

    from detectron2.data import DatasetCatalog, MetadataCatalog
    from detectron2.data.datasets import register_coco_instances
    from PIL import Image

    (folder / "images").mkdir(parents=True)
    Image.new("RGB", (32, 32)).save(folder / "images" / "a.jpg")
    annotation = {"id": 1, "image_id": 1, "category_id": 2, "bbox": [4, 4, 16, 16], "area": 256, "iscrowd": 0}
    if segmentation:
        annotation["segmentation"] = [[4, 4, 20, 4, 20, 20, 4, 20]]
    (folder / "train.json").write_text(json.dumps({
        "images": [{"id": 1, "file_name": "a.jpg", "width": 32, "height": 32}], "annotations": [annotation],
        "categories": [{"id": 2, "name": dog}, {"id": 1, "name": "cat"}]}))
    metadata = {} if thing_classes is None else {"thing_classes": thing_classes}
    register_coco_instances(name, metadata, str(folder / "train.json"), str(folder / "images"))
    try:
        yield name
    finally:
        DatasetCatalog.remove(name)
        MetadataCatalog.remove(name)


# ----------------------------------------------------------------------------- R-CNN
def rcnn_cfg(*opts, c4: bool = False):
    """A tiny R18 Faster R-CNN (detectron2's Base-RCNN-FPN.yaml / Base-RCNN-C4.yaml keys)
    with DropBlock in res4 (and res5 for FPN) and the FPN."""
    from dropblock_det.engine.config_checks import load_config

    cfg = load_config("", [])
    cfg.MODEL.META_ARCHITECTURE = "GeneralizedRCNN"
    cfg.MODEL.DEVICE = "cpu"
    cfg.MODEL.WEIGHTS = ""
    cfg.MODEL.RESNETS.DEPTH = 18
    cfg.MODEL.RESNETS.RES2_OUT_CHANNELS = 64
    cfg.MODEL.ROI_HEADS.NUM_CLASSES = 3
    cfg.MODEL.DROPBLOCK.BLOCK_SIZE = 3
    cfg.MODEL.DROPBLOCK.RESNET.ENABLED = True
    if c4:  # Base-RCNN-C4.yaml: res5 is built by Res5ROIHeads
        cfg.MODEL.BACKBONE.NAME = "build_dropblock_resnet_backbone"
        cfg.MODEL.ROI_HEADS.NAME = "Res5ROIHeads"
        cfg.MODEL.DROPBLOCK.RESNET.STAGES = ["res4"]
    else:  # Base-RCNN-FPN.yaml
        cfg.MODEL.BACKBONE.NAME = "build_dropblock_resnet_fpn_backbone"
        cfg.MODEL.RESNETS.OUT_FEATURES = ["res2", "res3", "res4", "res5"]
        cfg.MODEL.FPN.IN_FEATURES = ["res2", "res3", "res4", "res5"]
        cfg.MODEL.FPN.OUT_CHANNELS = 32
        cfg.MODEL.ANCHOR_GENERATOR.SIZES = [[32], [64], [128], [256], [512]]
        cfg.MODEL.RPN.IN_FEATURES = ["p2", "p3", "p4", "p5", "p6"]
        cfg.MODEL.ROI_HEADS.NAME = "StandardROIHeads"
        cfg.MODEL.ROI_HEADS.IN_FEATURES = ["p2", "p3", "p4", "p5"]
        cfg.MODEL.ROI_BOX_HEAD.NAME = "FastRCNNConvFCHead"
        cfg.MODEL.ROI_BOX_HEAD.NUM_FC = 2
        cfg.MODEL.ROI_MASK_HEAD.NAME = "MaskRCNNConvUpsampleHead"
        cfg.MODEL.DROPBLOCK.FPN.ENABLED = True
    cfg.merge_from_list(list(opts))
    return cfg


def lazy_rcnn_cfg(c4: bool = False, mask: bool = False, use_instance_mask: bool = False, mapper=None):
    """A tiny R18 Faster / Mask R-CNN LazyConfig as a user writes one from detectron2's
    configs/common/models/mask_rcnn_{fpn,c4}.py: the ResNet stages from
    make_dropblock_resnet_stages (default dropblock_stages: res4, res5), FPN -> DropBlockFPN,
    the synthetic training set with detectron2's DatasetMapper (or `mapper`)."""
    from detectron2.config import LazyCall as L
    from detectron2.data import DatasetMapper, build_detection_train_loader, get_detection_dataset_dicts
    from detectron2.layers import ShapeSpec
    from detectron2.modeling import GeneralizedRCNN
    from detectron2.modeling.anchor_generator import DefaultAnchorGenerator
    from detectron2.modeling.backbone import BasicStem, ResNet
    from detectron2.modeling.backbone.resnet import BasicBlock
    from detectron2.modeling.backbone.fpn import LastLevelMaxPool
    from detectron2.modeling.box_regression import Box2BoxTransform
    from detectron2.modeling.matcher import Matcher
    from detectron2.modeling.poolers import ROIPooler
    from detectron2.modeling.proposal_generator import RPN, StandardRPNHead
    from detectron2.modeling.roi_heads import (
        FastRCNNConvFCHead,
        FastRCNNOutputLayers,
        MaskRCNNConvUpsampleHead,
        Res5ROIHeads,
        StandardROIHeads,
    )
    from omegaconf import OmegaConf

    from dropblock_det.layers import build_regularizer
    from dropblock_det.modeling import DropBlockFPN, make_dropblock_resnet_stages

    resnet = L(ResNet)(
        stem=L(BasicStem)(in_channels=3, out_channels=64, norm="BN"),
        stages=L(make_dropblock_resnet_stages)(depth=18, norm="BN", dropblock="${dropblock}"),
        out_features=["res4"] if c4 else ["res2", "res3", "res4", "res5"],
    )
    features = ["res4"] if c4 else ["p2", "p3", "p4", "p5"]
    box2box = L(Box2BoxTransform)(weights=(10, 10, 5, 5))
    if c4:
        roi_heads = L(Res5ROIHeads)(
            in_features=features,
            pooler=L(ROIPooler)(output_size=14, scales=(1.0 / 16,), sampling_ratio=0, pooler_type="ROIAlignV2"),
            res5=L(ResNet.make_stage)(block_class=BasicBlock, num_blocks=1, stride_per_block=[2],
                                      in_channels=256, out_channels=512),
            box_predictor=L(FastRCNNOutputLayers)(input_shape=L(ShapeSpec)(channels=512, height=1, width=1),
                                                  box2box_transform=box2box, num_classes=3),
        )
        if mask:
            roi_heads.mask_head = L(MaskRCNNConvUpsampleHead)(
                input_shape=L(ShapeSpec)(channels=512, width=7, height=7), num_classes=3, conv_dims=[16])
    else:
        scales = (1.0 / 4, 1.0 / 8, 1.0 / 16, 1.0 / 32)
        roi_heads = L(StandardROIHeads)(
            box_in_features=features,
            box_pooler=L(ROIPooler)(output_size=7, scales=scales, sampling_ratio=0, pooler_type="ROIAlignV2"),
            box_head=L(FastRCNNConvFCHead)(input_shape=L(ShapeSpec)(channels=32, height=7, width=7),
                                           conv_dims=[], fc_dims=[32]),
            box_predictor=L(FastRCNNOutputLayers)(input_shape=L(ShapeSpec)(channels=32),
                                                  box2box_transform=box2box, num_classes=3),
        )
        if mask:
            roi_heads.mask_in_features = features
            roi_heads.mask_pooler = L(ROIPooler)(output_size=14, scales=scales, sampling_ratio=0,
                                                 pooler_type="ROIAlignV2")
            roi_heads.mask_head = L(MaskRCNNConvUpsampleHead)(
                input_shape=L(ShapeSpec)(channels=32, width=14, height=14), num_classes=3, conv_dims=[16])
    roi_heads.update(num_classes=3, batch_size_per_image=16, positive_fraction=0.25,
                     proposal_matcher=L(Matcher)(thresholds=[0.5], labels=[0, 1], allow_low_quality_matches=False))
    cfg = OmegaConf.create()
    cfg.dropblock = L(build_regularizer)(type="DropBlock", keep_prob=0.9, block_size=3)
    cfg.model = L(GeneralizedRCNN)(
        backbone=resnet if c4 else L(DropBlockFPN)(
            bottom_up=resnet, in_features=["res2", "res3", "res4", "res5"], out_channels=32,
            top_block=L(LastLevelMaxPool)(), dropblock="${dropblock}", dropblock_positions=["output"]),
        proposal_generator=L(RPN)(
            in_features=features if c4 else ["p2", "p3", "p4", "p5", "p6"],
            head=L(StandardRPNHead)(in_channels=256 if c4 else 32, num_anchors=3),
            anchor_generator=L(DefaultAnchorGenerator)(
                sizes=[[32, 64, 128]] if c4 else [[32], [64], [128], [256], [512]],
                aspect_ratios=[1.0] if c4 else [0.5, 1.0, 2.0],
                strides=[16] if c4 else [4, 8, 16, 32, 64], offset=0.0),
            anchor_matcher=L(Matcher)(thresholds=[0.3, 0.7], labels=[0, -1, 1], allow_low_quality_matches=True),
            box2box_transform=L(Box2BoxTransform)(weights=[1.0, 1.0, 1.0, 1.0]),
            batch_size_per_image=32, positive_fraction=0.5, pre_nms_topk=(200, 100), post_nms_topk=(50, 50),
            nms_thresh=0.7),
        roi_heads=roi_heads,
        pixel_mean=[103.530, 116.280, 123.675], pixel_std=[1.0, 1.0, 1.0], input_format="BGR",
    )
    cfg.dataloader = OmegaConf.create()
    cfg.dataloader.train = L(build_detection_train_loader)(
        dataset=L(get_detection_dataset_dicts)(names="synthetic_det_train"),
        mapper=L(mapper or DatasetMapper)(is_train=True, augmentations=[], image_format="BGR",
                                          use_instance_mask=use_instance_mask),
        total_batch_size=2, num_workers=0)
    cfg.train = dict(device="cpu")
    return cfg


def backward_node_names(output: torch.Tensor):
    """The class names of the autograd nodes that `output`'s backward runs, each node once
    (a model's regularizers appear as their Function's node, e.g. "_MaskedScaleBackward")."""
    names, seen, stack = [], set(), [output.grad_fn]
    while stack:
        node = stack.pop()
        if node is None or node in seen:
            continue
        seen.add(node)
        names.append(type(node).__name__)
        stack.extend(next_node for next_node, _ in node.next_functions)
    return names


def assert_fused_head_matches_unfused(head, make_features, head_module, monkeypatch):
    """head.layers(make_features()) in training mode, with its regularizers handed their
    convs' ReLU, gives the output and gradients (of the features and of every parameter) that
    it gives with `head_module.conv_relu_then_regularize` replaced by the unfused
    regularizer(conv(x)), bit for bit, masks drawn after the same seed; and they did drop."""
    def run():
        torch.manual_seed(1)
        features = {name: f.requires_grad_() for name, f in make_features().items()}
        out = head.layers(features)
        out.backward(torch.randn(out.shape, generator=torch.Generator().manual_seed(2)))
        results = [out, *(f.grad for f in features.values()), *(p.grad for p in head.parameters())]
        head.zero_grad(set_to_none=True)
        return results

    fused = run()
    monkeypatch.setattr(head_module, "conv_relu_then_regularize", lambda conv, regularizer, x: regularizer(conv(x)))
    unfused = run()
    assert len(fused) == len(unfused) and all(torch.equal(a, b) for a, b in zip(fused, unfused))
    head.eval()
    assert not torch.equal(fused[0], run()[0])
