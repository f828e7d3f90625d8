"""Every shipped detection config builds (at its real R50 size), trains two iterations
with finite losses when shrunk, and puts DropBlock exactly where its name says; every
shipped config (detection, segmentation, synthetic) passes the pre-run checks on the meta
device and is what its name says (model, depth, GN, scratch / ImageNet, DropBlock locations,
keep_prob, block, schedule, output stride, batch, datasets); every LazyConfig has a yacs twin
with its device."""
import math
from pathlib import Path

import pytest
import torch
from detectron2.config import get_cfg
from detectron2.modeling import build_model
from detectron2.utils.events import EventStorage

import dropblock_det  # noqa: F401
from dropblock_det import add_dropblock_config
from dropblock_det.config import dropblock_schedule_range
from dropblock_det.layers import DropBlock2d, KeepProbRegularizer
from dropblock_det.modeling import DropBlockRetinaNet

from conftest import CONFIGS, detection_batch, small_retinanet_cfg

DETECTION_CONFIGS = sorted(
    str(p.relative_to(CONFIGS))
    for folder in ("COCO-Detection", "PascalVOC-Detection")
    for p in (CONFIGS / folder).glob("*.yaml")
)


def _shipped_cfg(name):
    cfg = get_cfg()
    add_dropblock_config(cfg)
    cfg.merge_from_file(str(CONFIGS / name))
    cfg.MODEL.DEVICE = "cpu"
    return cfg


def _base_chain(name):
    """Config files `name` inherits from, itself first."""
    import yaml

    chain, path = [], CONFIGS / name
    while True:
        chain.append(path.resolve())
        base = yaml.unsafe_load(path.read_text()).get("_BASE_")
        if base is None:
            return chain
        path = path.parent / base


def _regularizers(model):
    return {n: m for n, m in model.named_modules() if isinstance(m, KeepProbRegularizer)}


def test_both_datasets_ship_baseline_and_three_dropblock_settings():
    names = {Path(n).name.rsplit("_", 1)[0] for n in DETECTION_CONFIGS}
    assert names == {
        "retinanet_R_50_FPN_GN_scratch",
        "retinanet_R_50_FPN_GN_scratch_dropblock_res45_kp0.9_b7",
        "retinanet_R_50_FPN_GN_scratch_dropblock_res45_fpn_kp0.9_b7",
        "retinanet_R_50_FPN_GN_scratch_dropblock_res45_fpn_head_kp0.9_b7",
    }
    assert len(DETECTION_CONFIGS) == 8


@pytest.mark.parametrize("name", DETECTION_CONFIGS)
def test_shipped_config_is_r50_gn_from_scratch_and_builds_on_cpu(name):
    cfg = _shipped_cfg(name)
    # every config inherits from the project's own base files, nothing outside configs/
    chain = _base_chain(name)
    assert chain[-1] == (CONFIGS / "Base-RetinaNet.yaml").resolve()
    assert all(CONFIGS.resolve() in p.parents for p in chain)
    assert cfg.MODEL.WEIGHTS == "" and cfg.MODEL.BACKBONE.FREEZE_AT == 0
    assert (cfg.MODEL.RESNETS.NORM, cfg.MODEL.FPN.NORM, cfg.MODEL.RETINANET.NORM) == ("GN",) * 3
    assert cfg.MODEL.RESNETS.STRIDE_IN_1X1 is False and cfg.MODEL.RESNETS.DEPTH == 50
    if name.startswith("PascalVOC"):
        assert cfg.MODEL.RETINANET.NUM_CLASSES == 20
        assert cfg.DATASETS.TRAIN == ("voc_2007_trainval", "voc_2012_trainval")
        assert cfg.DATASETS.TEST == ("voc_2007_test",)
    else:
        assert cfg.DATASETS.TRAIN == ("coco_2017_train",) and cfg.SOLVER.MAX_ITER == 270000
    model = build_model(cfg)
    assert isinstance(model, DropBlockRetinaNet)
    regularizers = _regularizers(model)
    if "dropblock" not in name:
        assert regularizers == {}
        return
    # The paper's setting: every regularizer is DropBlock kp 0.9 (res4 at 1/4 of the drop
    # rate), block 7, ramped to the end of training.
    assert all(isinstance(m, DropBlock2d) and m.block_size == 7 for m in regularizers.values())
    res4 = [m for n, m in regularizers.items() if ".res4." in n]
    others = [m for n, m in regularizers.items() if ".res4." not in n]
    assert len(res4) == 6 * 4  # 6 bottlenecks x (conv1, conv2, conv3, shortcut)
    assert all(m.target_keep_prob == pytest.approx(0.975) for m in res4)
    assert all(m.target_keep_prob == pytest.approx(0.9) for m in others)
    assert dropblock_schedule_range(cfg) == (0, cfg.SOLVER.MAX_ITER)


def _expected_locations(name, num_convs):
    blocks = {"res4": 2, "res5": 2}  # R18 in the shrunk variant
    positions = ["conv1", "conv2", "shortcut"]
    expected = {
        f"backbone.bottom_up.{stage}.{b}.dropblock_{p}"
        for stage, n in blocks.items()
        for b in range(n)
        for p in positions
    }
    if "_fpn" in name:
        expected |= {f"backbone.dropblock_{p}{s}" for p in ("lateral", "output") for s in (3, 4, 5)}
        expected |= {"backbone.top_block.dropblock_p6", "backbone.top_block.dropblock_p7"}
    if "_head" in name:
        expected |= {f"head.{t}_dropblocks.{i}" for t in ("cls", "bbox") for i in range(num_convs)}
    return expected


@pytest.mark.parametrize("name", [n for n in DETECTION_CONFIGS if "dropblock" in n])
def test_dropblock_modules_exactly_where_the_config_name_says(name):
    cfg = small_retinanet_cfg(name)
    cfg.MODEL.RETINANET.NUM_CONVS = 2
    model = build_model(cfg)
    assert set(_regularizers(model)) == _expected_locations(name, 2)


# Shrunk, a VOC config is the COCO config of the same name (only classes, data and
# schedule differ, and the shrink sets the classes), so the COCO four cover the models.
@pytest.mark.parametrize("name", [n for n in DETECTION_CONFIGS if n.startswith("COCO")])
def test_shrunk_config_trains_two_iterations_with_finite_losses(name):
    cfg = small_retinanet_cfg(name)
    cfg.SOLVER.MAX_ITER = 2
    torch.manual_seed(0)
    model = build_model(cfg).train()
    # Regularizers at their final keep_prob (the end of the ramp) so they really act.
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    with EventStorage(0):
        for step in range(2):
            losses = model(detection_batch(seed=step))
            assert all(math.isfinite(v.item()) for v in losses.values()), losses
            optimizer.zero_grad()
            sum(losses.values()).backward()
            optimizer.step()


def test_one_r50_training_iteration_with_dropblock_everywhere():
    # The R50 backbone as shipped (bottlenecks with conv3 positions); FPN and head shrunk.
    name = "COCO-Detection/retinanet_R_50_FPN_GN_scratch_dropblock_res45_fpn_head_kp0.9_b7_3x.yaml"
    cfg = small_retinanet_cfg(name, depth=50)
    assert cfg.MODEL.RESNETS.RES2_OUT_CHANNELS == 256
    model = build_model(cfg).train()
    with EventStorage(0):
        losses = model(detection_batch(seed=0))
        sum(losses.values()).backward()
    assert all(math.isfinite(v.item()) for v in losses.values())
    conv3 = model.backbone.bottom_up.res5[0].dropblock_conv3
    assert isinstance(conv3, DropBlock2d) and conv3.keep_prob == pytest.approx(0.9)


# ----------------------------------------------------------------------------- every config
# Every config a user can train (yacs leaf configs; Base-* files are only inherited from) and
# every LazyConfig (configs/common/ holds their pieces).
SHIPPED_YACS = sorted(
    str(p.relative_to(CONFIGS)) for p in CONFIGS.rglob("*.yaml") if not p.name.startswith("Base-")
)
SHIPPED_LAZY = sorted(
    str(p.relative_to(CONFIGS)) for p in CONFIGS.rglob("*.py") if "common" not in p.relative_to(CONFIGS).parts
)
# What each folder's configs train on: datasets, classes, evaluator (by the test set's
# metadata) and input sizes, as detectron2's configs for those datasets.
_DATASETS = {
    "COCO-Detection": dict(train=("coco_2017_train",), test=("coco_2017_val",), classes=80, evaluator="coco",
                           min_train=(640, 672, 704, 736, 768, 800), min_test=800),
    "PascalVOC-Detection": dict(train=("voc_2007_trainval", "voc_2012_trainval"), test=("voc_2007_test",),
                                classes=20, evaluator="pascal_voc",
                                min_train=(480, 512, 544, 576, 608, 640, 672, 704, 736, 768, 800), min_test=800),
    "PascalVOC-SemanticSegmentation": dict(train=("voc_2012_sem_seg_train_aug",), test=("voc_2012_sem_seg_val",),
                                           classes=21, evaluator="sem_seg"),
    "Synthetic": dict(train=("synthetic_det_train",), test=("synthetic_det_val",), classes=3, evaluator="coco"),
}
_MODELS = {  # the name's first words -> (meta-architecture, segmentation head)
    "retinanet": ("DropBlockRetinaNet", None),
    "deeplab_v3_plus": ("SemanticSegmentor", "DropBlockDeepLabV3PlusHead"),
    "fcn": ("SemanticSegmentor", "DropBlockFCNHead"),
}


def _name_tokens(name):
    """The settings a config's file name states, parsed word by word (an unknown word fails:
    a new config's name must be taught here, so that it is checked too)."""
    import re

    stem = Path(name).name.rsplit(".", 1)[0]
    model = next((m for m in _MODELS if stem.startswith(m + "_")), None)
    assert model is not None, f"{name}: unknown model in the name"
    words = stem[len(model) + 1:].split("_")
    said = dict(model=model, fpn_backbone=False, gn=False, scratch=False, imagenet=False, dropblock=None)
    i = 0
    while i < len(words):
        word = words[i]
        if word == "R" and i + 1 < len(words) and words[i + 1].isdigit():  # R_50
            said["R"] = int(words[i + 1])
            i += 1
        elif re.fullmatch(r"R\d+", word):  # R18
            said["R"] = int(word[1:])
        elif word in ("FPN", "GN", "scratch", "imagenet", "poly"):
            said[{"FPN": "fpn_backbone", "GN": "gn"}.get(word, word)] = True
        elif word == "dropblock":
            locations = []
            while words[i + 1] in ("res45", "fpn", "head"):
                locations.append(words[i + 1])
                i += 1
            assert locations, f"{name}: 'dropblock' names no location"
            said["dropblock"] = locations
        elif re.fullmatch(r"kp0\.\d+", word):
            said["keep_prob"] = float(word[2:])
        elif re.fullmatch(r"b\d+", word):
            said["block_size"] = int(word[1:])
        elif re.fullmatch(r"\d+x", word):
            said["x"] = int(word[:-1])
        elif re.fullmatch(r"\d+k", word):
            said["max_iter"] = int(word[:-1]) * 1000
        elif re.fullmatch(r"os\d+", word):
            said["output_stride"] = int(word[2:])
        elif re.fullmatch(r"bs\d+", word):
            said["batch"] = int(word[2:])
        else:
            raise AssertionError(f"{name}: the word {word!r} of the name is not known to this test")
        i += 1
    return said


def _location(name):
    """Which of a config name's DropBlock locations a regularizer's module name is in (a
    DeepLab head's decoder names its levels res2, res5: the head first)."""
    if name.startswith(("head.", "sem_seg_head.")):
        return "head"
    for stage in ("stem", "res2", "res3", "res4", "res5"):
        if f".{stage}." in f".{name}":
            return stage
    if name.startswith("backbone."):
        return "fpn"
    raise AssertionError(f"regularizer {name!r} in no known location")


@pytest.mark.parametrize("name", SHIPPED_YACS, ids=SHIPPED_YACS)
def test_every_config_name_tells_the_truth_and_the_config_passes_the_pre_run_checks(name):
    from detectron2.data import MetadataCatalog

    from dropblock_det.engine.config_checks import check_config_before_run, load_config

    said = _name_tokens(name)
    cfg = load_config(str(CONFIGS / name), ["MODEL.DEVICE", "cpu"])
    # The checks a tool runs before training (files and weights aside: no datasets here);
    # the model they build on the meta device is the one checked below.
    model = check_config_before_run(cfg, check_files=False, check_weights=False)
    assert model is not None, f"{name}: no model on the meta device"
    resnets = cfg.MODEL.RESNETS

    meta_arch, seg_head = _MODELS[said["model"]]
    assert type(model).__name__ == meta_arch
    assert (type(model.sem_seg_head).__name__ if seg_head else None) == seg_head
    resnet = getattr(model.backbone, "bottom_up", model.backbone)
    # R_50 / R18: the depth; R_52: detectron2's name for a ResNet-50 with the DeepLab stem
    # (three 3x3 convs), that of its ImageNet weights R-52.pkl.
    assert resnets.DEPTH == (50 if said["R"] == 52 else said["R"])
    assert type(resnet.stem).__name__ == ("DeepLabStem" if said["R"] == 52 else "BasicStem")
    # (every RetinaNet is on an FPN; the synthetic one's name leaves it out)
    assert said["fpn_backbone"] == ("fpn" in cfg.MODEL.BACKBONE.NAME) or name.startswith("Synthetic/")

    # GN: in the ResNet, the FPN (where there is one) and the head.
    head_norm = cfg.MODEL.SEM_SEG_HEAD.NORM if seg_head else cfg.MODEL.RETINANET.NORM
    norms = [resnets.NORM, head_norm] + ([cfg.MODEL.FPN.NORM] if "fpn" in cfg.MODEL.BACKBONE.NAME else [])
    if said["gn"]:
        assert norms == ["GN"] * len(norms)
    # ImageNet weights, or from random initialisation as detectron2's scratch configs
    # (Misc/scratch_mask_rcnn_R_50_FPN_{3x,9x}_gn.yaml): no weights, nothing frozen, GN
    # everywhere, the stride in the 3x3 conv (the 1x1 stride is MSRA's weights' layout).
    assert not (said["scratch"] and said["imagenet"])
    assert bool(cfg.MODEL.WEIGHTS) == said["imagenet"]
    if not said["imagenet"]:
        assert cfg.MODEL.BACKBONE.FREEZE_AT == 0 and norms == ["GN"] * len(norms)
        assert resnets.STRIDE_IN_1X1 is False, f"{name}: from scratch with the stride in the 1x1 conv"
        assert not [n for n, p in model.named_parameters() if not p.requires_grad]

    # Datasets, classes, evaluator, input sizes.
    data = _DATASETS[Path(name).parts[0]]
    assert (cfg.DATASETS.TRAIN, cfg.DATASETS.TEST) == (data["train"], data["test"])
    classes = cfg.MODEL.SEM_SEG_HEAD.NUM_CLASSES if seg_head else cfg.MODEL.RETINANET.NUM_CLASSES
    assert classes == data["classes"]
    assert all(MetadataCatalog.get(d).evaluator_type == data["evaluator"] for d in cfg.DATASETS.TEST)
    if "min_train" in data:
        assert (tuple(cfg.INPUT.MIN_SIZE_TRAIN), cfg.INPUT.MIN_SIZE_TEST) == (data["min_train"], data["min_test"])
    if seg_head:
        assert cfg.MODEL.SEM_SEG_HEAD.IGNORE_VALUE == 255 and cfg.INPUT.CROP.ENABLED

    # The schedule: 3x is detectron2's (270k iterations of 16 images, LR x0.1 at 210k and
    # 250k); 54k / 330k / 30k the number of iterations; poly the LR; bs16 the batch.
    solver = cfg.SOLVER
    if "x" in said:
        assert said["x"] == 3
        assert (solver.MAX_ITER, tuple(solver.STEPS), solver.IMS_PER_BATCH) == (270000, (210000, 250000), 16)
    if "max_iter" in said:
        assert solver.MAX_ITER == said["max_iter"]
    assert ("x" in said or "max_iter" in said) or name.startswith("Synthetic/")
    assert said.get("poly", False) == (solver.LR_SCHEDULER_NAME == "WarmupPolyLR")
    if "batch" in said:
        assert solver.IMS_PER_BATCH == said["batch"]
    if solver.LR_SCHEDULER_NAME == "WarmupMultiStepLR":
        steps = list(solver.STEPS)
        assert steps == sorted(steps) and 0 < steps[0] and steps[-1] < solver.MAX_ITER
    if "output_stride" in said:
        assert model.backbone.output_shape()["res5"].stride == said["output_stride"]

    # DropBlock exactly where the name says, at its keep_prob (res4 at 1/4 of the drop
    # rate, as the official code) and block size, ramped from 1.0 over the whole training.
    regularizers = _regularizers(model)
    if said["dropblock"] is None:
        assert regularizers == {}
        return
    expected = {"res45": {"res4", "res5"}, "fpn": {"fpn"}, "head": {"head"}}
    assert {_location(n) for n in regularizers} == set().union(*(expected[w] for w in said["dropblock"]))
    kp = said["keep_prob"]
    for n, m in regularizers.items():
        assert isinstance(m, DropBlock2d) and m.block_size == said["block_size"], n
        target = 1 - (1 - kp) / 4 if _location(n) == "res4" else kp
        assert m.target_keep_prob == pytest.approx(target), n
    assert dropblock_schedule_range(cfg) == (0, solver.MAX_ITER)


@pytest.mark.parametrize("name", SHIPPED_LAZY, ids=SHIPPED_LAZY)
def test_each_lazy_config_is_the_twin_of_a_yaml_and_runs_where_it_does(name):
    # tests/engine/test_lazy.py compares the twins' models, data, optimizer and schedules
    # (its yacs side on the CPU); here what it leaves out: the device, AMP, and the checks
    # a LazyConfig run makes before training.
    from dropblock_det.engine.lazy_config_checks import check_lazy_config_before_run, load_lazy_config
    from dropblock_det.engine.config_checks import load_config

    twin = CONFIGS / (name[: -len(".py")] + ".yaml")
    assert twin.is_file(), f"{name}: no yacs twin {twin.name}"
    cfg, ycfg = load_lazy_config(str(CONFIGS / name)), load_config(str(twin))
    assert cfg.train.device == ycfg.MODEL.DEVICE
    assert cfg.train.amp.enabled == ycfg.SOLVER.AMP.ENABLED
    cpu = load_lazy_config(str(CONFIGS / name), ["train.device=cpu"])
    assert check_lazy_config_before_run(cpu, check_files=False) is not None


# --- paper audit 54 ---
# The paper's DropBlock (Algorithm 1: one mask per channel, its gamma) at every place of its
# ResNet-50 setting (after every conv+norm of each block of groups 3 and 4, res4 and res5, and
# on the shortcut) in every shipped config with DropBlock: the checks above read the block
# size, keep_prob and the locations' names only, so a config with SHARED_MASK True (timm's
# default), GAMMA "calibrated" or a position left out passed them, the ImageNet DeepLabV3+
# one (no LazyConfig twin to differ from) included.
@pytest.mark.parametrize("name", [n for n in SHIPPED_YACS if "dropblock" in n],
                         ids=[n for n in SHIPPED_YACS if "dropblock" in n])
def test_every_dropblock_config_has_the_papers_dropblock_at_every_resnet_position(name):
    from dropblock_det.engine.config_checks import check_model_config, load_config

    cfg = load_config(str(CONFIGS / name), ["MODEL.DEVICE", "cpu"])
    model = check_model_config(cfg)  # on the meta device
    regularizers = _regularizers(model)
    assert regularizers
    for n, m in regularizers.items():
        assert isinstance(m, DropBlock2d), n
        assert (m.shared_mask, m.gamma_mode) == (False, "paper"), f"{name}: {n} is not the paper's DropBlock"
    if "res45" not in _name_tokens(name)["dropblock"]:
        return
    resnet = getattr(model.backbone, "bottom_up", model.backbone)
    for stage in ("res4", "res5"):
        for i, block in enumerate(getattr(resnet, stage)):
            positions = ("conv1", "conv2", "conv3", "shortcut") if hasattr(block, "conv3") else (
                "conv1", "conv2", "shortcut")
            missing = [p for p in positions if not isinstance(getattr(block, f"dropblock_{p}", None), DropBlock2d)]
            assert not missing, f"{name}: no DropBlock after {missing} in {stage}[{i}]"


# The paper's PASCAL VOC segmentation: 10,582 training images (train_aug), 45 epochs from
# ImageNet initialisation, 500 from scratch (the README's "~45" / "~500 epochs").
@pytest.mark.parametrize("name", [n for n in SHIPPED_YACS if n.startswith("PascalVOC-SemanticSegmentation/")],
                         ids=[n for n in SHIPPED_YACS if n.startswith("PascalVOC-SemanticSegmentation/")])
def test_segmentation_configs_train_the_papers_number_of_epochs(name):
    from dropblock_det.engine.config_checks import load_config

    cfg = load_config(str(CONFIGS / name), ["MODEL.DEVICE", "cpu"])
    epochs = cfg.SOLVER.MAX_ITER * cfg.SOLVER.IMS_PER_BATCH / 10582
    assert epochs == pytest.approx(45 if _name_tokens(name)["imagenet"] else 500, rel=0.02), epochs
