"""Every shipped detection config builds (at its real R50 size), trains two iterations
with finite losses when shrunk, and puts DropBlock exactly where its name says."""
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
