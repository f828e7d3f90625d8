"""MODEL.DROPBLOCK: defaults, and impossible values rejected with the key and value named,
at model build time (before any data is loaded)."""
import re
import warnings

import pytest
from detectron2.config import get_cfg

import dropblock_det  # noqa: F401  (registers the components)
from dropblock_det import add_dropblock_config, validate_dropblock_config
from dropblock_det.config import (
    built_resnet_stages,
    check_channels,
    check_feature_names,
    dropblock_schedule_range,
    regularizer_factory,
    resnet_stage_drop_scales,
)

from conftest import small_retinanet_cfg


def _cfg():
    cfg = get_cfg()
    add_dropblock_config(cfg)
    return cfg


def _set(cfg, key: str, value) -> None:
    node = cfg
    *parents, leaf = key.split(".")
    for name in parents:
        node = node[name]
    node[leaf] = value


def test_defaults_are_valid_and_turn_nothing_on():
    cfg = _cfg()
    validate_dropblock_config(cfg)
    db = cfg.MODEL.DROPBLOCK
    assert not any([db.RESNET.ENABLED, db.FPN.ENABLED, db.HEAD.ENABLED, db.SEM_SEG_HEAD.ENABLED])
    assert db.DROP_PATH_RATE == 0.0
    assert (db.KEEP_PROB, db.BLOCK_SIZE, list(db.RESNET.STAGES)) == (0.9, 7, ["res4", "res5"])
    assert list(db.RESNET.POSITIONS) == ["conv1", "conv2", "conv3", "shortcut"]
    assert cfg.INPUT.CUTOUT.ENABLED is False


BAD_VALUES = [
    ("MODEL.DROPBLOCK.KEEP_PROB", 0.0),
    ("MODEL.DROPBLOCK.KEEP_PROB", -0.1),
    ("MODEL.DROPBLOCK.KEEP_PROB", 1.5),
    ("MODEL.DROPBLOCK.KEEP_PROB", "0.9"),
    ("MODEL.DROPBLOCK.KEEP_PROB", True),
    ("MODEL.DROPBLOCK.KEEP_PROB", float("nan")),
    ("MODEL.DROPBLOCK.BLOCK_SIZE", 0),
    ("MODEL.DROPBLOCK.BLOCK_SIZE", 3.0),
    ("MODEL.DROPBLOCK.BLOCK_SIZE", "7"),
    ("MODEL.DROPBLOCK.TYPE", "Dropblock"),
    ("MODEL.DROPBLOCK.GAMMA", "exact"),
    ("MODEL.DROPBLOCK.IMPL", "cuda"),
    ("MODEL.DROPBLOCK.SHARED_MASK", "no"),
    ("MODEL.DROPBLOCK.RESNET.STAGES", ["res4", "res6"]),
    ("MODEL.DROPBLOCK.RESNET.STAGES", ["res1"]),
    ("MODEL.DROPBLOCK.RESNET.STAGES", "res4"),
    ("MODEL.DROPBLOCK.RESNET.STAGES", ["res4", "res4"]),
    ("MODEL.DROPBLOCK.RESNET.POSITIONS", ["conv1", "conv4"]),
    ("MODEL.DROPBLOCK.RESNET.STAGE_DROP_SCALES", [1.0]),
    ("MODEL.DROPBLOCK.RESNET.STAGE_DROP_SCALES", [0.25, -1.0]),
    ("MODEL.DROPBLOCK.RESNET.STAGE_DROP_SCALES", [0.25, 20.0]),
    ("MODEL.DROPBLOCK.RESNET.STAGE_DROP_SCALES", [0.25, "1"]),
    ("MODEL.DROPBLOCK.FPN.POSITIONS", ["lateral", "p6"]),
    ("MODEL.DROPBLOCK.HEAD.TOWERS", ["cls", "box"]),
    ("MODEL.DROPBLOCK.SEM_SEG_HEAD.POSITIONS", ["aspp", "head"]),
    ("MODEL.DROPBLOCK.DROP_PATH_RATE", 1.0),
    ("MODEL.DROPBLOCK.DROP_PATH_RATE", -0.1),
    ("MODEL.DROPBLOCK.DROP_PATH_RATE", "0.1"),
    ("MODEL.DROPBLOCK.SCHEDULE.START_ITER", -5),
    ("MODEL.DROPBLOCK.SCHEDULE.START_ITER", 1.5),
    ("MODEL.DROPBLOCK.SCHEDULE.END_ITER", "end"),
    ("INPUT.CUTOUT.SIZE", 0),
    ("INPUT.CUTOUT.NUM_HOLES", 0),
    ("INPUT.CUTOUT.PROB", 1.5),
]


@pytest.mark.parametrize("key,value", BAD_VALUES, ids=[f"{k}={v!r}" for k, v in BAD_VALUES])
def test_impossible_value_raises_value_error_naming_key_and_value(key, value):
    cfg = _cfg()
    _set(cfg, key, value)
    with pytest.raises(ValueError) as info:
        validate_dropblock_config(cfg)
    # The value as the message gives it: `key=value`, e.g. MODEL.DROPBLOCK.SCHEDULE.START_ITER=-5
    # (repr(value)[1:-1] was accepted too: for -5 or 0 that is "", found in any message).
    assert f"{key}={value!r}" in str(info.value)


def test_an_infinite_stage_drop_scale_is_refused_at_keep_prob_1_too():
    # At KEEP_PROB 1.0 the keep-probability check computes inf * 0 = NaN and passed it: the
    # model build then failed with a message naming no key.
    cfg = _cfg()
    cfg.MODEL.DROPBLOCK.KEEP_PROB = 1.0
    cfg.MODEL.DROPBLOCK.RESNET.STAGE_DROP_SCALES = [0.25, float("inf")]
    with pytest.raises(ValueError, match=r"MODEL\.DROPBLOCK\.RESNET\.STAGE_DROP_SCALES=\[0\.25, inf\]: "
                                         r"expected a list of finite numbers"):
        validate_dropblock_config(cfg)


def test_a_location_named_twice_in_plain_arguments_is_refused_as_in_the_yacs_keys():
    # A LazyConfig's `dropblock_stages=["res4", "res4"]` with two drop scales: the second
    # scale silently replaced the first.
    from dropblock_det.config import check_placement

    with pytest.raises(ValueError, match=r"^ResNet: dropblock_stages=\['res4', 'res4'\]: 'res4' is listed twice$"):
        check_placement("dropblock_stages", ["res4", "res4"], ["res4", "res5"], lambda: None, "ResNet")
    assert check_placement("dropblock_stages", ("res4", "res5"), ["res4", "res5"], lambda: None, "ResNet") == [
        "res4", "res5"]


def test_ramp_ending_before_it_starts_is_rejected_with_both_iterations():
    cfg = _cfg()
    cfg.MODEL.DROPBLOCK.SCHEDULE.START_ITER = 100
    cfg.MODEL.DROPBLOCK.SCHEDULE.END_ITER = 50
    match = r"MODEL\.DROPBLOCK\.SCHEDULE\.END_ITER=50.*START_ITER=100"
    with pytest.raises(ValueError, match=match):
        validate_dropblock_config(cfg)


def test_ramp_to_max_iter_starting_after_max_iter_is_rejected():
    cfg = _cfg()
    cfg.MODEL.DROPBLOCK.HEAD.ENABLED = True
    cfg.SOLVER.MAX_ITER = 1000
    cfg.MODEL.DROPBLOCK.SCHEDULE.START_ITER = 2000
    with pytest.raises(ValueError, match=r"SCHEDULE\.START_ITER=2000.*SOLVER\.MAX_ITER=1000"):
        validate_dropblock_config(cfg)
    # Nothing on (a baseline run shortened below a START_ITER it inherits): the ramp is moot.
    cfg.MODEL.DROPBLOCK.HEAD.ENABLED = False
    validate_dropblock_config(cfg)


@pytest.mark.parametrize("location", ["MODEL.DROPBLOCK.HEAD.ENABLED", "MODEL.DROPBLOCK.DROP_PATH_RATE"])
@pytest.mark.parametrize("start, end, regularizes", [
    (200, 300, False), (100, -1, False), (99, -1, False), (99, 150, False), (98, -1, True), (99, 99, True), (0, 150, True),
])
def test_a_ramp_that_never_regularizes_is_refused_whatever_its_end(location, start, end, regularizes):
    # keep_prob is 1.0 through START_ITER; the last iteration is MAX_ITER - 1. An explicit
    # END_ITER used to escape the check, so a run trained without DropBlock.
    cfg = _cfg()
    _set(cfg, location, True if location.endswith("ENABLED") else 0.1)
    cfg.SOLVER.MAX_ITER = 100
    cfg.MODEL.DROPBLOCK.SCHEDULE.START_ITER, cfg.MODEL.DROPBLOCK.SCHEDULE.END_ITER = start, end
    if regularizes:
        validate_dropblock_config(cfg)
    else:
        with pytest.raises(ValueError, match=rf"SCHEDULE\.START_ITER={start}: .*MAX_ITER - 1 = 99: no iteration"):
            validate_dropblock_config(cfg)
    _set(cfg, location, False if location.endswith("ENABLED") else 0.0)
    validate_dropblock_config(cfg)  # nothing on: the ramp is moot


# The last iteration is MAX_ITER - 1: 100/200 of the ramp reaches 1 - 0.1 * 100 / 200; one
# iteration past it, 99/101 reaches 1 - 0.1 * 99 / 101.
@pytest.mark.parametrize("max_iter, end_iter, reached", [(101, 200, "0.95"), (100, 101, "0.902")])
def test_a_ramp_ending_after_max_iter_warns_with_the_keep_prob_it_reaches(max_iter, end_iter, reached):
    cfg = _cfg()
    cfg.MODEL.DROPBLOCK.HEAD.ENABLED = True
    cfg.SOLVER.MAX_ITER, cfg.MODEL.DROPBLOCK.SCHEDULE.END_ITER = max_iter, end_iter
    with pytest.warns(UserWarning, match=rf"END_ITER={end_iter} is after SOLVER\.MAX_ITER={max_iter}: "
                                         rf"keep_prob reaches only {re.escape(reached)} instead of "
                                         r"MODEL\.DROPBLOCK\.KEEP_PROB=0\.9 "):
        validate_dropblock_config(cfg)


def test_a_ramp_ending_after_max_iter_names_what_drop_path_reaches():
    # DropPath ramps to 1 - DROP_PATH_RATE, not to KEEP_PROB: with only DropPath on, the
    # warning named KEEP_PROB and the keep_prob the DropBlock ramp would reach.
    cfg = _cfg()
    cfg.MODEL.DROPBLOCK.DROP_PATH_RATE = 0.2
    cfg.SOLVER.MAX_ITER, cfg.MODEL.DROPBLOCK.SCHEDULE.END_ITER = 101, 200
    with pytest.warns(UserWarning, match=r"keep_prob reaches only 0\.9 instead of 1 - MODEL\.DROPBLOCK\."
                                         r"DROP_PATH_RATE=0\.8 \(END_ITER -1"):
        validate_dropblock_config(cfg)
    cfg.MODEL.DROPBLOCK.HEAD.ENABLED = True  # both ramps, each named
    with pytest.warns(UserWarning, match=r"reaches only 0\.95 instead of MODEL\.DROPBLOCK\.KEEP_PROB=0\.9, "
                                         r"0\.9 instead of 1 - MODEL\.DROPBLOCK\.DROP_PATH_RATE=0\.8 "):
        validate_dropblock_config(cfg)


def test_schedule_end_minus_one_resolves_to_max_iter():
    cfg = _cfg()
    cfg.SOLVER.MAX_ITER = 1234
    assert dropblock_schedule_range(cfg) == (0, 1234)
    cfg.MODEL.DROPBLOCK.SCHEDULE.START_ITER = 10
    cfg.MODEL.DROPBLOCK.SCHEDULE.END_ITER = 500
    assert dropblock_schedule_range(cfg) == (10, 500)


def test_enabled_stage_that_out_features_does_not_build_is_rejected():
    cfg = _cfg()
    cfg.MODEL.RESNETS.OUT_FEATURES = ["res4"]  # a C4 backbone: res5 is never built
    assert built_resnet_stages(cfg) == ["res2", "res3", "res4"]
    cfg.MODEL.DROPBLOCK.RESNET.ENABLED = True
    with pytest.raises(ValueError, match=r"MODEL\.DROPBLOCK\.RESNET\.STAGES.*'res5' is not built") as info:
        validate_dropblock_config(cfg)
    # get_cfg's MODEL.ROI_HEADS.NAME is 'Res5ROIHeads': a C4 R-CNN, whose res5 is its ROI head's.
    assert str(info.value).endswith("MODEL.ROI_HEADS.NAME 'DropBlockRes5ROIHeads' puts DropBlock there, "
                                    "or list only backbone stages (e.g. ['res4'])")
    cfg.MODEL.DROPBLOCK.RESNET.ENABLED = False  # nothing inserted, nothing to complain about
    validate_dropblock_config(cfg)


@pytest.mark.parametrize("key, list_key", [
    ("MODEL.DROPBLOCK.RESNET", "STAGES"), ("MODEL.DROPBLOCK.RESNET", "POSITIONS"), ("MODEL.DROPBLOCK.FPN", "POSITIONS"),
    ("MODEL.DROPBLOCK.HEAD", "TOWERS"), ("MODEL.DROPBLOCK.SEM_SEG_HEAD", "POSITIONS"),
])
def test_enabled_location_with_empty_list_is_rejected(key, list_key):
    cfg = _cfg()
    _set(cfg, key + ".ENABLED", True)
    _set(cfg, f"{key}.{list_key}", [])
    with pytest.raises(ValueError, match=f"{key}.{list_key}"):
        validate_dropblock_config(cfg)


def test_config_without_dropblock_node_raises_key_error_with_fix():
    with pytest.raises(KeyError, match="add_dropblock_config"):
        validate_dropblock_config(get_cfg())


def test_a_second_add_dropblock_config_keeps_the_values_set_since_the_first():
    # A project's setup and a library each calling it: the second call reset every value.
    cfg = _cfg()
    cfg.merge_from_list(["MODEL.DROPBLOCK.KEEP_PROB", 0.8, "MODEL.DROPBLOCK.FPN.ENABLED", True,
                         "INPUT.CUTOUT.SIZE", 32, "SOLVER.POLY_LR_POWER", 0.5])
    add_dropblock_config(cfg)
    assert (cfg.MODEL.DROPBLOCK.KEEP_PROB, cfg.MODEL.DROPBLOCK.FPN.ENABLED) == (0.8, True)
    assert (cfg.INPUT.CUTOUT.SIZE, cfg.SOLVER.POLY_LR_POWER) == (32, 0.5)
    cfg.freeze()
    add_dropblock_config(cfg)  # a frozen config that has the keys is not written to


def test_yaml_with_unknown_dropblock_key_is_rejected_by_merge(tmp_path):
    config = tmp_path / "typo.yaml"
    config.write_text("MODEL:\n  DROPBLOCK:\n    KEEP_PROBABILITY: 0.8\n")
    cfg = _cfg()
    with pytest.raises(KeyError, match="KEEP_PROBABILITY"):
        cfg.merge_from_file(str(config))


@pytest.mark.parametrize(
    "key,value",
    [
        ("MODEL.DROPBLOCK.KEEP_PROB", 1.2),
        ("MODEL.DROPBLOCK.FPN.POSITIONS", ["lateral", "outputs"]),
        ("MODEL.DROPBLOCK.HEAD.TOWERS", ["class"]),
        ("MODEL.DROPBLOCK.RESNET.STAGES", ["res6"]),
    ],
)
def test_build_model_rejects_bad_value_before_building(key, value):
    from detectron2.modeling import build_model

    cfg = small_retinanet_cfg("Base-RetinaNet-Scratch-DropBlock.yaml")
    cfg.MODEL.DROPBLOCK.FPN.ENABLED = True
    cfg.MODEL.DROPBLOCK.HEAD.ENABLED = True
    _set(cfg, key, value)
    with pytest.raises(ValueError, match=key.replace(".", r"\.")):
        build_model(cfg)


@pytest.mark.parametrize("norm", ["gn", "IN"])
@pytest.mark.parametrize("key", ["MODEL.RESNETS.NORM", "MODEL.FPN.NORM", "MODEL.RETINANET.NORM"])
def test_a_norm_name_detectron2_does_not_know_is_refused_naming_its_key(key, norm):
    # detectron2's get_norm raises a bare KeyError: 'gn', which names none of the three keys.
    from detectron2.modeling import build_model

    cfg = small_retinanet_cfg("Base-RetinaNet-Scratch.yaml")
    _set(cfg, key, norm)
    with pytest.raises(ValueError, match="^" + key.replace(".", r"\.") + f"='{norm}': not a norm detectron2's get_norm knows"):
        build_model(cfg)


@pytest.mark.parametrize("device", ["cpu", "cuda:x"])
def test_impl_triton_on_a_device_the_kernels_cannot_run_on_is_refused_for_training_only(device, monkeypatch):
    import torch
    from detectron2.modeling import build_model

    from dropblock_det.config import check_impl_device
    from dropblock_det.engine.hooks import DropBlockScheduleHook

    monkeypatch.delenv("TRITON_INTERPRET", raising=False)  # the interpreter runs CPU tensors
    cfg = small_retinanet_cfg("Base-RetinaNet-Scratch-DropBlock.yaml")
    cfg.MODEL.DROPBLOCK.IMPL = "triton"
    cfg.MODEL.DEVICE = device
    match = rf"MODEL\.DROPBLOCK\.IMPL='triton'.*MODEL\.DEVICE='{device}'.*'torch'"
    with pytest.raises(ValueError, match=match):
        check_impl_device(cfg)
    with pytest.raises(ValueError, match=match):  # the hook means training
        DropBlockScheduleHook.from_config(cfg)
    # A model for evaluation builds and runs: DropBlock is the identity in eval mode.
    cfg.MODEL.DEVICE = "cpu"
    model = build_model(cfg).eval()
    with torch.no_grad():
        model([{"image": torch.zeros(3, 256, 256), "height": 256, "width": 256}])
    # Nothing on: IMPL is never used, so nothing to refuse; "auto" and "torch" run anywhere.
    cfg.MODEL.DEVICE = device
    for key in ("RESNET", "FPN", "HEAD", "SEM_SEG_HEAD"):
        cfg.MODEL.DROPBLOCK[key].ENABLED = False
    check_impl_device(cfg)
    cfg.MODEL.DROPBLOCK.HEAD.ENABLED = True
    cfg.MODEL.DROPBLOCK.IMPL = "auto"
    check_impl_device(cfg)


def test_triton_unavailable_reason_names_the_cause(monkeypatch):
    import torch

    from dropblock_det.layers import drop_block_triton, triton_unavailable_reason

    monkeypatch.delenv("TRITON_INTERPRET", raising=False)
    assert "TRITON_INTERPRET=1" in triton_unavailable_reason("cpu")
    if not torch.cuda.is_available():
        assert "no cuda:5" in triton_unavailable_reason("cuda:5")
    installed = drop_block_triton.triton is not None
    assert ("not mps" if installed else "not installed") in triton_unavailable_reason("mps")
    monkeypatch.setenv("TRITON_INTERPRET", "1")
    if installed:
        assert triton_unavailable_reason("cpu") == ""
    monkeypatch.setattr(drop_block_triton, "triton", None)
    assert "not installed" in triton_unavailable_reason("cpu")


def test_a_ramp_ending_exactly_at_max_iter_does_not_warn():
    # END_ITER == MAX_ITER is the ramp END_ITER -1 gives: nothing to warn about.
    cfg = _cfg()
    cfg.MODEL.DROPBLOCK.HEAD.ENABLED = True
    cfg.SOLVER.MAX_ITER, cfg.MODEL.DROPBLOCK.SCHEDULE.END_ITER = 100, 100
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        validate_dropblock_config(cfg)


def test_a_stage_drop_scale_giving_keep_prob_exactly_zero_is_rejected():
    cfg = _cfg()
    cfg.MODEL.DROPBLOCK.KEEP_PROB = 0.5
    cfg.MODEL.DROPBLOCK.RESNET.STAGE_DROP_SCALES = [1.0, 2.0]  # res5: 1 - 2 * 0.5 == 0.0 exactly
    with pytest.raises(ValueError, match=r"STAGE_DROP_SCALES=\[1\.0, 2\.0\]: scale 2\.0 .* keep probability <= 0"):
        validate_dropblock_config(cfg)


def test_a_one_iteration_run_that_never_regularizes_is_refused_and_an_evaluation_config_validates():
    # SOLVER.MAX_ITER = 1 trains iteration 0 only, where the ramp's keep_prob is still 1.0.
    cfg = _cfg()
    cfg.MODEL.DROPBLOCK.HEAD.ENABLED = True
    cfg.SOLVER.MAX_ITER = 1
    with pytest.raises(ValueError, match=r"SCHEDULE\.START_ITER=0: .*MAX_ITER - 1 = 0: no iteration"):
        validate_dropblock_config(cfg)
    cfg.MODEL.DROPBLOCK.SCHEDULE.END_ITER = 0  # a step to the target at iteration 0 regularizes it
    validate_dropblock_config(cfg)
    # SOLVER.MAX_ITER 0 trains nothing, so there is no last iteration to check the ramp at:
    # the model must still build (e.g. to evaluate a checkpoint), not fail on iteration -1.
    cfg.MODEL.DROPBLOCK.SCHEDULE.END_ITER = -1
    cfg.SOLVER.MAX_ITER = 0
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        validate_dropblock_config(cfg)


@pytest.mark.parametrize("location", ["RESNET", "FPN", "HEAD", "SEM_SEG_HEAD"])
def test_dropblock_enabled_counts_every_location(location):
    from dropblock_det.config import dropblock_enabled

    cfg = _cfg()
    assert not dropblock_enabled(cfg)
    cfg.MODEL.DROPBLOCK[location].ENABLED = True
    assert dropblock_enabled(cfg)


def test_impl_triton_is_not_checked_when_the_regularizer_is_not_dropblock(monkeypatch):
    # Dropout and SpatialDropout never run the Triton kernels: IMPL does not apply to them.
    from dropblock_det.config import check_impl_device

    monkeypatch.delenv("TRITON_INTERPRET", raising=False)
    cfg = small_retinanet_cfg("Base-RetinaNet-Scratch-DropBlock.yaml")
    cfg.MODEL.DROPBLOCK.IMPL = "triton"
    cfg.MODEL.DEVICE = "cuda:x"  # no such device anywhere
    for type_name in ("Dropout", "SpatialDropout"):
        cfg.MODEL.DROPBLOCK.TYPE = type_name
        check_impl_device(cfg)


@pytest.mark.parametrize("sizes, ratios, error", [
    # No anchors: the model built, and its head's conv of 0 output channels failed at the
    # first training step (after data loading) with a bare RuntimeError.
    ([[]], [[0.5, 1.0]], r"^MODEL\.ANCHOR_GENERATOR\.SIZES=\[\[\]\]: an empty list: no anchors at any level of "),
    ([[32], [64], [128], [], [512]], [[1.0]],
     r"^MODEL\.ANCHOR_GENERATOR\.SIZES=\[\[32\], \[64\], \[128\], \[\], \[512\]\]: an empty list: no anchors at "
     r"level 'p[56]' of "),
    ([[32]], [()], r"^MODEL\.ANCHOR_GENERATOR\.ASPECT_RATIOS=\[\(\)\]: an empty list: no anchors at any level"),
    # detectron2's heads asserted it at build, naming no key.
    ([[32, 64], [64], [128], [256], [512]], [[1.0]],
     r"^MODEL\.ANCHOR_GENERATOR: SIZES=\[\[32, 64\], \[64\], .*ASPECT_RATIOS=\[\[1\.0\]\] give \[2, 1, 1, 1, 1\] "
     r"anchors per position at the levels "),
    ([[32]], [[0.5, 1.0], [1.0], [1.0], [1.0], [1.0]], r"^MODEL\.ANCHOR_GENERATOR: .* give \[2, 1, 1, 1, 1\] anchors"),
])
def test_anchor_settings_giving_a_level_no_anchors_or_another_count_are_refused_naming_the_key(sizes, ratios, error):
    from detectron2.modeling import build_model

    from conftest import rcnn_cfg
    from dropblock_det.engine.config_checks import check_model_config

    retinanet, rcnn = small_retinanet_cfg("Base-RetinaNet-Scratch-DropBlock.yaml"), rcnn_cfg()
    for cfg in (retinanet, rcnn):
        cfg.MODEL.ANCHOR_GENERATOR.SIZES, cfg.MODEL.ANCHOR_GENERATOR.ASPECT_RATIOS = sizes, ratios
    with pytest.raises(ValueError, match=error + r".*MODEL\.RETINANET\.IN_FEATURES"):
        build_model(retinanet)
    with pytest.raises(ValueError, match=error + r".*MODEL\.RPN\.IN_FEATURES"):
        check_model_config(rcnn)


def test_anchor_settings_with_the_same_count_at_every_level_are_accepted():
    from dropblock_det.config import check_anchor_levels

    cfg = _cfg()
    levels = ["p3", "p4", "p5"]
    for sizes, ratios in [([[32, 40, 50]], [[0.5, 1.0, 2.0]]), ([[32], [64, 80], [128]], [[0.5, 1.0], [1.0], [0.5, 2.0]]),
                          ([32, 64], [0.5, 1.0])]:  # flat lists: one setting for every level
        cfg.MODEL.ANCHOR_GENERATOR.SIZES, cfg.MODEL.ANCHOR_GENERATOR.ASPECT_RATIOS = sizes, ratios
        check_anchor_levels(cfg, "MODEL.RPN.IN_FEATURES", levels)
    cfg.MODEL.ANCHOR_GENERATOR.NAME = "RotatedAnchorGenerator"
    cfg.MODEL.ANCHOR_GENERATOR.ANGLES = [[-90, 0, 90], [0], [-90, 0, 90]]
    cfg.MODEL.ANCHOR_GENERATOR.SIZES, cfg.MODEL.ANCHOR_GENERATOR.ASPECT_RATIOS = [[32]], [[1.0]]
    with pytest.raises(ValueError, match=r"give \[3, 1, 3\] anchors per position"):
        check_anchor_levels(cfg, "MODEL.RPN.IN_FEATURES", levels)


def test_one_feature_name_given_as_a_string_is_refused_as_not_a_list():
    # A LazyConfig override `model.head_in_features=p3` gives a str, whose letters were
    # taken as names: "model.head_in_features=['p', '3']: 'p', '3' not among ...".
    from dropblock_det.config import check_feature_names

    with pytest.raises(ValueError, match=r"^model\.head_in_features='p3': expected a list of names from the "
                                         r"backbone's outputs \['p3', 'p4'\] \(e\.g\. \['p3'\]\)$"):
        check_feature_names("model.head_in_features", "p3", ["p3", "p4"], "the backbone's outputs")
    assert check_feature_names("model.head_in_features", ("p4", "p3"), ["p3", "p4"], "x") == ["p4", "p3"]


@pytest.mark.parametrize("key, value, twice, retinanet", [
    # detectron2's ROIPooler / FPN asserted naming no key ("Sizes of input featuremaps do not
    # form a pyramid!", "Strides 16 16 are not log2 contiguous"); the RetinaNet and RPN heads
    # ran the level twice, silently.
    ("MODEL.ROI_HEADS.IN_FEATURES", ["p2", "p2", "p3", "p4"], "p2", False),
    ("MODEL.RPN.IN_FEATURES", ["p2", "p3", "p4", "p5", "p3"], "p3", False),
    ("MODEL.FPN.IN_FEATURES", ["res2", "res3", "res4", "res4", "res5"], "res4", False),
    ("MODEL.FPN.IN_FEATURES", ["res3", "res4", "res4", "res5"], "res4", True),
    ("MODEL.RETINANET.IN_FEATURES", ["p3", "p3", "p5", "p6", "p7"], "p3", True),
])
def test_a_feature_listed_twice_is_refused_naming_the_key(key, value, twice, retinanet):
    from detectron2.modeling import build_model

    from conftest import rcnn_cfg
    from dropblock_det.engine.config_checks import check_model_config

    cfg = small_retinanet_cfg("Base-RetinaNet-Scratch-DropBlock.yaml") if retinanet else rcnn_cfg()
    _set(cfg, key, value)
    error = rf"^{key.replace('.', '[.]')}={re.escape(str(value))}: '{twice}' is listed twice"
    with pytest.raises(ValueError, match=error):
        check_model_config(cfg)
    if retinanet or key == "MODEL.FPN.IN_FEATURES":  # R-CNN heads are detectron2's: the tools' check only
        with pytest.raises(ValueError, match=error):
            build_model(cfg)


def test_every_default_is_the_documented_one():
    # add_dropblock_config's docstring (and the README) document these; a changed default
    # would silently change every config that does not set the key.
    cfg = _cfg()
    db = cfg.MODEL.DROPBLOCK
    assert (db.TYPE, db.KEEP_PROB, db.BLOCK_SIZE, db.SHARED_MASK, db.GAMMA, db.IMPL) == (
        "DropBlock", 0.9, 7, False, "paper", "auto")
    assert (db.RESNET.ENABLED, list(db.RESNET.STAGES), list(db.RESNET.STAGE_DROP_SCALES)) == (
        False, ["res4", "res5"], [])
    assert list(db.RESNET.POSITIONS) == ["conv1", "conv2", "conv3", "shortcut"]
    assert (db.FPN.ENABLED, list(db.FPN.POSITIONS)) == (False, ["lateral", "output"])
    assert (db.HEAD.ENABLED, list(db.HEAD.TOWERS)) == (False, ["cls", "bbox"])
    assert (db.SEM_SEG_HEAD.ENABLED, list(db.SEM_SEG_HEAD.POSITIONS)) == (False, ["aspp", "project", "decoder"])
    assert (db.DROP_PATH_RATE, db.SCHEDULE.START_ITER, db.SCHEDULE.END_ITER) == (0.0, 0, -1)
    cutout = cfg.INPUT.CUTOUT
    assert (cutout.ENABLED, cutout.SIZE, cutout.NUM_HOLES, cutout.PROB) == (False, 64, 1, 1.0)


@pytest.mark.parametrize("key, value", [
    ("MODEL.DROPBLOCK.RESNET.STAGE_DROP_SCALES", [0.0, 1.0]),  # res4 kept whole: "scales must be >= 0"
    ("INPUT.CUTOUT.PROB", 0.0),  # "0 <= prob <= 1"
    ("MODEL.DROPBLOCK.KEEP_PROB", 1.0),  # "0 < keep_prob <= 1"
    ("MODEL.DROPBLOCK.BLOCK_SIZE", 1),
    # res5 drops 5x as much: keep_prob 1 - 5 * (1 - 0.9) = 0.5, still > 0
    ("MODEL.DROPBLOCK.RESNET.STAGE_DROP_SCALES", [1.0, 5.0]),
])
def test_values_at_the_edge_of_their_documented_range_are_accepted(key, value):
    cfg = _cfg()
    _set(cfg, key, value)
    validate_dropblock_config(cfg)


def test_resnet_stage_drop_scales_pairs_each_stage_with_its_scale_and_defaults_to_one():
    cfg = _cfg()
    assert resnet_stage_drop_scales(cfg) == {"res4": 1.0, "res5": 1.0}
    cfg.MODEL.DROPBLOCK.RESNET.STAGE_DROP_SCALES = [0.25, 1]
    assert resnet_stage_drop_scales(cfg) == {"res4": 0.25, "res5": 1.0}


def test_regularizer_factory_builds_what_model_dropblock_says_with_the_scaled_keep_prob():
    cfg = _cfg()
    db = cfg.MODEL.DROPBLOCK
    db.KEEP_PROB, db.BLOCK_SIZE, db.SHARED_MASK, db.GAMMA, db.IMPL = 0.8, 3, True, "calibrated", "torch"
    make = regularizer_factory(cfg, drop_scale=0.25)
    first, second = make(), make()
    assert first is not second  # one module per location
    assert first.target_keep_prob == pytest.approx(0.95)
    assert (first.block_size, first.shared_mask, first.gamma_mode, first.impl) == (3, True, "calibrated", "torch")
    db.TYPE = "SpatialDropout"  # DropBlock's SHARED_MASK and GAMMA named as ignored; IMPL torch is its path
    with pytest.warns(UserWarning, match=r"^SpatialDropout ignores DropBlock's shared_mask=True \(MODEL\.DROPBLOCK\."
                                         r"SHARED_MASK\), gamma_mode='calibrated' \(MODEL\.DROPBLOCK\.GAMMA\): "):
        assert type(regularizer_factory(cfg)()).__name__ == "SpatialDropout"


def test_check_feature_names_refuses_no_feature_naming_the_key():
    with pytest.raises(ValueError, match=r"^MODEL\.RPN\.IN_FEATURES=\[\]: no feature; expected names from "
                                         r"the backbone's outputs \['p2', 'p3'\]$"):
        check_feature_names("MODEL.RPN.IN_FEATURES", [], ["p2", "p3"], "the backbone's outputs")
    assert check_feature_names("MODEL.RPN.IN_FEATURES", ("p3",), ["p2", "p3"], "the backbone's outputs") == ["p3"]


def test_check_channels_with_gn_wants_multiples_of_32_and_other_norms_do_not():
    with pytest.raises(ValueError, match=r"^MODEL\.FPN\.OUT_CHANNELS=48: NORM 'GN' uses 32 groups.*\(48 is not"):
        check_channels("GN", {"MODEL.FPN.OUT_CHANNELS": 48})
    with pytest.raises(ValueError, match=r"^convs_dims=\[64, 0\]: channel counts must be integers >= 1 \(0 is not\)"):
        check_channels("", {"convs_dims": [64, 0]})
    check_channels("GN", {"MODEL.FPN.OUT_CHANNELS": 32, "convs_dims": [64, 96]})
    for norm in ("BN", "SyncBN", "FrozenBN"):  # only GroupNorm splits the channels into groups
        check_channels(norm, {"MODEL.FPN.OUT_CHANNELS": 48})


def test_check_placement_wants_a_factory_only_when_a_location_is_named():
    from dropblock_det.config import check_placement

    with pytest.raises(ValueError, match=r"^FPN: dropblock_positions=\['lateral'\] needs a `dropblock` factory$"):
        check_placement("dropblock_positions", ["lateral"], ["lateral", "output"], None, "FPN")
    with pytest.raises(ValueError, match=r"^FPN: dropblock_positions='lateral': expected a list of names"):
        check_placement("dropblock_positions", "lateral", ["lateral", "output"], lambda: None, "FPN")
    assert check_placement("dropblock_positions", [], ["lateral", "output"], None, "FPN") == []


def test_a_c4_rcnn_with_dropblock_res5_roi_heads_builds_res5_in_its_roi_head():
    cfg = _cfg()
    cfg.MODEL.RESNETS.OUT_FEATURES = ["res4"]
    cfg.MODEL.ROI_HEADS.NAME = "DropBlockRes5ROIHeads"
    assert built_resnet_stages(cfg) == ["res2", "res3", "res4", "res5"]
    cfg.MODEL.DROPBLOCK.RESNET.ENABLED = True
    validate_dropblock_config(cfg)  # res5 is there, in the ROI head
    cfg.MODEL.RESNETS.OUT_FEATURES = ["res5"]  # the backbone builds res5 too: still one stage res5
    assert built_resnet_stages(cfg) == ["res2", "res3", "res4", "res5"]


def test_res5_is_in_the_roi_head_of_registered_subclasses_of_the_rcnn_and_of_its_c4_head(monkeypatch):
    # A project's own R-CNN or C4 head subclassing them builds res5 in the head as they do:
    # its STAGES ["res5"] was refused as "not built" when the names were compared.
    from detectron2.modeling import META_ARCH_REGISTRY, ROI_HEADS_REGISTRY, GeneralizedRCNN

    from dropblock_det.modeling.roi_heads import DropBlockRes5ROIHeads

    # Registered for this test only: left in detectron2's registries, they were near names in
    # the registry checks' messages of the tests after it (test_config_checks run after this file).
    monkeypatch.setitem(META_ARCH_REGISTRY._obj_map, "DropBlockTestRCNN", type("DropBlockTestRCNN", (GeneralizedRCNN,), {}))
    monkeypatch.setitem(ROI_HEADS_REGISTRY._obj_map, "DropBlockTestRes5ROIHeads",
                        type("DropBlockTestRes5ROIHeads", (DropBlockRes5ROIHeads,), {}))
    cfg = _cfg()
    cfg.MODEL.RESNETS.OUT_FEATURES = ["res4"]
    cfg.MODEL.META_ARCHITECTURE = "DropBlockTestRCNN"
    cfg.MODEL.ROI_HEADS.NAME = "DropBlockTestRes5ROIHeads"
    assert built_resnet_stages(cfg) == ["res2", "res3", "res4", "res5"]
    cfg.MODEL.ROI_HEADS.NAME = "Res5ROIHeads"  # the stock head: no DropBlock, res5 not counted
    assert built_resnet_stages(cfg) == ["res2", "res3", "res4"]
    cfg.MODEL.ROI_HEADS.NAME = "DropBlockTestRes5ROIHeads"
    cfg.MODEL.META_ARCHITECTURE = "DropBlockRetinaNet"  # no ROI heads
    assert built_resnet_stages(cfg) == ["res2", "res3", "res4"]


def test_locations_on_lists_each_key_that_inserts_a_regularizer():
    from dropblock_det.config import locations_on

    cfg = _cfg()
    assert locations_on(cfg) == []
    cfg.MODEL.DROPBLOCK.DROP_PATH_RATE = 0.1
    cfg.MODEL.DROPBLOCK.SEM_SEG_HEAD.ENABLED = True
    assert locations_on(cfg) == ["DROP_PATH_RATE", "SEM_SEG_HEAD.ENABLED"]


@pytest.mark.parametrize("key, value", [
    ("MODEL.DROPBLOCK.RESNET.STAGES", "res4"), ("MODEL.DROPBLOCK.RESNET.POSITIONS", "conv1"),
    ("MODEL.DROPBLOCK.FPN.POSITIONS", "lateral"), ("MODEL.DROPBLOCK.HEAD.TOWERS", "cls"),
    ("MODEL.DROPBLOCK.SEM_SEG_HEAD.POSITIONS", ""),
])
def test_one_name_given_as_a_string_is_refused_as_not_a_list(key, value):
    # Its letters are not names: "unknown name 'r'" would not say what is wrong, and "" would
    # pass as an empty list.
    cfg = _cfg()
    _set(cfg, key, value)
    with pytest.raises(ValueError, match=rf"^{key.replace('.', '[.]')}={value!r}: expected a list of names from \["):
        validate_dropblock_config(cfg)


def test_a_ramp_ending_one_iteration_before_it_starts_is_rejected_with_nothing_on_too():
    # The trainer registers the schedule hook for every run, whose ramp refuses it naming no key.
    cfg = _cfg()
    cfg.MODEL.DROPBLOCK.SCHEDULE.START_ITER, cfg.MODEL.DROPBLOCK.SCHEDULE.END_ITER = 100, 99
    with pytest.raises(ValueError, match=r"^MODEL\.DROPBLOCK\.SCHEDULE\.END_ITER=99: the ramp ends before it starts "
                                         r"\(MODEL\.DROPBLOCK\.SCHEDULE\.START_ITER=100\)"):
        validate_dropblock_config(cfg)
    cfg.MODEL.DROPBLOCK.SCHEDULE.END_ITER = 100  # a step to the target at START_ITER
    validate_dropblock_config(cfg)


def test_a_baseline_shortened_below_an_inherited_start_iter_gets_its_schedule_hook():
    # validate_dropblock_config accepts it (nothing on: the ramp is moot); the trainer
    # registers the hook for every run, and a ramp from 2000 back to 1000 would refuse it.
    from dropblock_det.engine.hooks import DropBlockScheduleHook

    cfg = _cfg()
    cfg.SOLVER.MAX_ITER, cfg.MODEL.DROPBLOCK.SCHEDULE.START_ITER = 1000, 2000
    validate_dropblock_config(cfg)
    assert dropblock_schedule_range(cfg) == (2000, 2000)
    DropBlockScheduleHook.from_config(cfg)


def test_roi_heads_name_places_res5_only_for_an_rcnn():
    # A RetinaNet does not read MODEL.ROI_HEADS.NAME: its res5 is built by OUT_FEATURES alone,
    # and a DropBlock stage it lacks is refused naming the yacs key, not later by the builder.
    cfg = _cfg()
    cfg.MODEL.META_ARCHITECTURE = "RetinaNet"
    cfg.MODEL.RESNETS.OUT_FEATURES = ["res3", "res4"]
    cfg.MODEL.DROPBLOCK.RESNET.ENABLED = True
    # Nor does the C4 R-CNN's hint apply: not with get_cfg's ROI_HEADS.NAME 'Res5ROIHeads' either.
    for roi_heads in ("DropBlockRes5ROIHeads", "Res5ROIHeads"):
        cfg.MODEL.ROI_HEADS.NAME = roi_heads
        assert built_resnet_stages(cfg) == ["res2", "res3", "res4"]
        with pytest.raises(ValueError, match=r"^MODEL\.DROPBLOCK\.RESNET\.STAGES=\['res4', 'res5'\]: stage 'res5' is not "
                                             r"built: MODEL\.RESNETS\.OUT_FEATURES=\['res3', 'res4'\] builds only "
                                             r"\['res2', 'res3', 'res4'\]$"):
            validate_dropblock_config(cfg)


@pytest.mark.parametrize("name", ["SIZES", "ASPECT_RATIOS"])
def test_an_anchor_setting_with_no_entry_is_refused_naming_the_key(name):
    # An empty list has no first entry to look into: without the check, a bare IndexError.
    from dropblock_det.config import check_anchor_levels

    cfg = _cfg()
    cfg.MODEL.ANCHOR_GENERATOR[name] = []
    with pytest.raises(ValueError, match=rf"^MODEL\.ANCHOR_GENERATOR\.{name}=\[\]: expected one list for every level "
                                         r"of MODEL\.RPN\.IN_FEATURES=\['p3', 'p4'\], or one per level$"):
        check_anchor_levels(cfg, "MODEL.RPN.IN_FEATURES", ["p3", "p4"])


@pytest.mark.parametrize("names", [None, 3])
def test_check_placement_refuses_what_is_not_a_list_naming_the_argument(names):
    # A LazyConfig's `dropblock_positions=None`: without the check, list(None) fails naming nothing:
    # "'NoneType' object is not iterable".
    from dropblock_det.config import check_placement

    with pytest.raises(ValueError, match=rf"^DropBlockFPN: dropblock_positions={names!r}: expected a list of names from "
                                         r"\['lateral', 'output'\]$"):
        check_placement("dropblock_positions", names, ["lateral", "output"], lambda: None, "DropBlockFPN")


@pytest.mark.parametrize("location", ["RESNET.ENABLED", "FPN.ENABLED", "HEAD.ENABLED", "SEM_SEG_HEAD.ENABLED",
                                      "DROP_PATH_RATE"])
def test_each_location_alone_gets_the_ramp_checks(location):
    # Every key that inserts a regularizer makes the ramp matter: alone, each must still get
    # the refusals (a ramp that never leaves 1.0, one starting after MAX_ITER) and the warning
    # (one ending after MAX_ITER), or a segmentation or FPN run trains without DropBlock.
    from dropblock_det.config import locations_on

    cfg = _cfg()
    cfg.MODEL.RESNETS.OUT_FEATURES = ["res4", "res5"]  # RESNET.STAGES' res5 is built
    _set(cfg, "MODEL.DROPBLOCK." + location, 0.1 if location == "DROP_PATH_RATE" else True)
    assert locations_on(cfg) == [location]
    schedule = cfg.MODEL.DROPBLOCK.SCHEDULE
    cfg.SOLVER.MAX_ITER, schedule.START_ITER = 100, 99
    with pytest.raises(ValueError, match=r"^MODEL\.DROPBLOCK\.SCHEDULE\.START_ITER=99: .*no iteration would regularize$"):
        validate_dropblock_config(cfg)
    schedule.START_ITER = 200
    with pytest.raises(ValueError, match=r"^MODEL\.DROPBLOCK\.SCHEDULE\.START_ITER=200: the ramp ends at "
                                         r"SOLVER\.MAX_ITER=100 "):
        validate_dropblock_config(cfg)
    schedule.START_ITER, schedule.END_ITER = 0, 200
    with pytest.warns(UserWarning, match=r"END_ITER=200 is after SOLVER\.MAX_ITER=100: keep_prob reaches only "):
        validate_dropblock_config(cfg)


@pytest.mark.parametrize("location", ["RESNET", "FPN", "HEAD", "SEM_SEG_HEAD"])
def test_impl_triton_is_refused_on_a_device_it_cannot_run_on_for_each_dropblock_location_alone(location, monkeypatch):
    # A segmentation or FPN-only run with IMPL "triton" on CPU would otherwise first fail at
    # the first step past the ramp's keep_prob 1.0 stretch. DropPath never runs the kernels.
    from dropblock_det.config import check_impl_device

    monkeypatch.delenv("TRITON_INTERPRET", raising=False)
    cfg = _cfg()
    cfg.MODEL.DROPBLOCK.IMPL, cfg.MODEL.DEVICE = "triton", "cpu"
    cfg.MODEL.DROPBLOCK[location].ENABLED = True
    with pytest.raises(ValueError, match=r"^MODEL\.DROPBLOCK\.IMPL='triton': the Triton kernels cannot run on "
                                         r"MODEL\.DEVICE='cpu'"):
        check_impl_device(cfg)
    cfg.MODEL.DROPBLOCK[location].ENABLED = False
    cfg.MODEL.DROPBLOCK.DROP_PATH_RATE = 0.1
    check_impl_device(cfg)


def test_built_resnet_stages_go_to_the_deepest_out_feature_in_any_order():
    # detectron2's ResNet builds up to the deepest stage OUT_FEATURES names, wherever it is listed.
    cfg = _cfg()
    cfg.MODEL.RESNETS.OUT_FEATURES = ["res5", "res3"]
    assert built_resnet_stages(cfg) == ["res2", "res3", "res4", "res5"]
    cfg.MODEL.DROPBLOCK.RESNET.ENABLED = True
    validate_dropblock_config(cfg)


def test_resnet_stage_drop_scales_default_to_one_for_every_listed_stage():
    cfg = _cfg()
    for stages in (["res5"], ["res3", "res4", "res5"]):
        cfg.MODEL.DROPBLOCK.RESNET.STAGES = stages
        assert resnet_stage_drop_scales(cfg) == {stage: 1.0 for stage in stages}


def test_a_ramp_ending_after_max_iter_warns_once_per_model_build():
    # Every builder validates the config; the warning is attributed to one place so that
    # Python's default filter shows it once, not once per builder (four in a DropBlockRetinaNet).
    from detectron2.modeling import build_model

    cfg = small_retinanet_cfg("Base-RetinaNet-Scratch-DropBlock.yaml")
    cfg.SOLVER.MAX_ITER, cfg.MODEL.DROPBLOCK.SCHEDULE.END_ITER = 100, 200
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("default")
        build_model(cfg)
    assert len([w for w in caught if "END_ITER=200 is after SOLVER.MAX_ITER=100" in str(w.message)]) == 1


@pytest.mark.parametrize("roi_heads, out_features, stages, built", [
    ("StandardROIHeads", ["res4"], ["res4", "res5"], ["res2", "res3", "res4"]),  # an FPN-less R-CNN: no res5 anywhere
    ("Res5ROIHeads", ["res3"], ["res4"], ["res2", "res3"]),  # a C4 R-CNN, but res4 is the backbone's
])
def test_the_c4_roi_head_hint_is_given_only_for_res5_of_a_res5_roi_heads_rcnn(roi_heads, out_features, stages, built):
    # "with MODEL.ROI_HEADS.NAME='Res5ROIHeads' (C4) res5 is built by the ROI head" would send
    # these users to the wrong fix.
    cfg = _cfg()
    cfg.MODEL.ROI_HEADS.NAME, cfg.MODEL.RESNETS.OUT_FEATURES = roi_heads, out_features
    cfg.MODEL.DROPBLOCK.RESNET.ENABLED, cfg.MODEL.DROPBLOCK.RESNET.STAGES = True, stages
    missing = [stage for stage in stages if stage not in built][0]
    with pytest.raises(ValueError, match=rf"^MODEL\.DROPBLOCK\.RESNET\.STAGES={re.escape(str(stages))}: stage "
                                         rf"'{missing}' is not built: MODEL\.RESNETS\.OUT_FEATURES="
                                         rf"{re.escape(str(out_features))} builds only {re.escape(str(built))}$"):
        validate_dropblock_config(cfg)


def test_check_feature_names_names_only_the_missing_features_and_adds_the_note():
    with pytest.raises(ValueError, match=r"^MODEL\.RPN\.IN_FEATURES=\['p3', 'p9'\]: 'p9' not among the backbone's "
                                         r"outputs \['p2', 'p3'\] \(MODEL\.BACKBONE\.NAME='x'\)$"):
        check_feature_names("MODEL.RPN.IN_FEATURES", ["p3", "p9"], ["p2", "p3"], "the backbone's outputs",
                            note="MODEL.BACKBONE.NAME='x'")


def test_check_impl_device_asks_about_model_device(monkeypatch):
    # Whether the kernels run is a property of MODEL.DEVICE (e.g. "cpu" with Triton's
    # interpreter): a run on a device they can run on must not be refused.
    import dropblock_det.config as config

    asked = []
    monkeypatch.setattr(config, "triton_unavailable_reason",
                        lambda device: asked.append(device) or ("" if device == "cuda:1" else f"no {device}"))
    cfg = _cfg()
    cfg.MODEL.DROPBLOCK.IMPL, cfg.MODEL.DROPBLOCK.HEAD.ENABLED, cfg.MODEL.DEVICE = "triton", True, "cuda:1"
    config.check_impl_device(cfg)
    cfg.MODEL.DEVICE = "cpu"
    with pytest.raises(ValueError, match=r"MODEL\.DEVICE='cpu': no cpu; "):
        config.check_impl_device(cfg)
    assert asked == ["cuda:1", "cpu"]


def test_stage_drop_scales_of_another_length_are_refused_naming_the_stages_they_must_match():
    cfg = _cfg()
    cfg.MODEL.DROPBLOCK.RESNET.STAGE_DROP_SCALES = [1.0]
    with pytest.raises(ValueError, match=r"^MODEL\.DROPBLOCK\.RESNET\.STAGE_DROP_SCALES=\[1\.0\]: expected one scale per "
                                         r"stage of MODEL\.DROPBLOCK\.RESNET\.STAGES=\['res4', 'res5'\] \(or an empty list\)$"):
        validate_dropblock_config(cfg)


# --- bad-input journey 54 ---
def test_an_end_iter_of_none_is_told_that_minus_one_ends_the_ramp_at_max_iter():
    # `MODEL.DROPBLOCK.SCHEDULE.END_ITER None` (yacs takes None for any key), as a LazyConfig's
    # end_iter=None is written, was refused as "expected an integer, got NoneType" only.
    cfg = _cfg()
    cfg.MODEL.DROPBLOCK.SCHEDULE.END_ITER = None
    with pytest.raises(ValueError, match=r"^MODEL\.DROPBLOCK\.SCHEDULE\.END_ITER=None: expected an integer; -1 ends "
                                         r"the ramp at SOLVER\.MAX_ITER \(what end_iter=None means in a LazyConfig\)$"):
        validate_dropblock_config(cfg)
    cfg.MODEL.DROPBLOCK.SCHEDULE.END_ITER = -1
    validate_dropblock_config(cfg)


# --- stop 54 ---
def test_resnet_enabled_with_no_stage_is_told_so_before_the_scales_are_counted():
    # With STAGE_DROP_SCALES set (the synthetic config's [0.25, 1.0]) the refusal was that
    # the scales do not match STAGES=[]: true, but not what is wrong.
    cfg = _cfg()
    cfg.MODEL.DROPBLOCK.RESNET.ENABLED = True
    cfg.MODEL.DROPBLOCK.RESNET.STAGES = []
    cfg.MODEL.DROPBLOCK.RESNET.STAGE_DROP_SCALES = [0.25, 1.0]
    with pytest.raises(ValueError, match=r"^MODEL\.DROPBLOCK\.RESNET\.STAGES=\[\]: RESNET\.ENABLED but no stage$"):
        validate_dropblock_config(cfg)
    cfg.MODEL.DROPBLOCK.RESNET.ENABLED = False  # off: the scales' count is what is wrong
    with pytest.raises(ValueError, match=r"^MODEL\.DROPBLOCK\.RESNET\.STAGE_DROP_SCALES=\[0\.25, 1\.0\]: expected one "):
        validate_dropblock_config(cfg)


# --- coverage audit 55b ---
@pytest.mark.parametrize("opts", [["MODEL.ANCHOR_GENERATOR.SIZES", "[32, [64]]"],
                                  ["MODEL.ANCHOR_GENERATOR.SIZES", "[[32], 64, [128], [256], [512]]"],
                                  ["MODEL.ANCHOR_GENERATOR.ASPECT_RATIOS", "[1.0, [2.0]]"]])
def test_anchor_settings_mixing_lists_and_numbers_are_refused_naming_the_key(opts):
    # detectron2's anchor generator failed at the build with a bare TypeError ("'int' object
    # is not iterable", "unsupported operand type(s) for ** or pow(): 'list' and 'float'").
    from conftest import synthetic_cfg
    from dropblock_det.engine.config_checks import check_config_before_run

    key, value = opts
    with pytest.raises(ValueError, match=rf"^{re.escape(key)}=.*: lists mixed with numbers: give one list of numbers "
                                         r"for every level of MODEL\.RETINANET\.IN_FEATURES=\['p3', .*or one list per "
                                         r"level$"):
        check_config_before_run(synthetic_cfg(*opts), check_files=False)


def test_anchor_settings_of_another_anchor_generator_are_left_to_it():
    # A generator of the user's own may read MODEL.ANCHOR_GENERATOR.SIZES otherwise.
    from dropblock_det.config import check_anchor_levels

    cfg = _cfg()
    cfg.MODEL.ANCHOR_GENERATOR.SIZES = []
    cfg.MODEL.ANCHOR_GENERATOR.NAME = "MyAnchorGenerator"
    check_anchor_levels(cfg, "MODEL.RPN.IN_FEATURES", ["p3", "p4"])


# --- mutation 56 ---
def test_anchor_levels_given_as_opts_tuples_are_counted_against_the_levels():
    # Opts give a level's values as a tuple: two of them for five levels are named (a count
    # left unchecked for tuples failed the anchor count with a bare IndexError).
    from dropblock_det.config import check_anchor_levels

    cfg = _cfg()
    levels = ["p3", "p4", "p5", "p6", "p7"]
    cfg.merge_from_list(["MODEL.ANCHOR_GENERATOR.SIZES", "((32,), (64,))"])
    with pytest.raises(ValueError, match=r"^MODEL\.ANCHOR_GENERATOR\.SIZES=.*: 2 entries for the 5 levels of "
                                         r"MODEL\.RPN\.IN_FEATURES="):
        check_anchor_levels(cfg, "MODEL.RPN.IN_FEATURES", levels)
    cfg.merge_from_list(["MODEL.ANCHOR_GENERATOR.SIZES", "((32,), (64,), (128,), (256,), (512,))",
                         "MODEL.ANCHOR_GENERATOR.ASPECT_RATIOS", "((0.5, 1.0, 2.0),)"])
    check_anchor_levels(cfg, "MODEL.RPN.IN_FEATURES", levels)


def test_a_config_without_input_cutout_is_validated_without_it():
    # INPUT.CUTOUT is checked only where the config has it: one given MODEL.DROPBLOCK alone
    # (by hand, or by an older version of the plugin) is validated, not an AttributeError.
    cfg = _cfg()
    del cfg.INPUT["CUTOUT"]
    validate_dropblock_config(cfg)
