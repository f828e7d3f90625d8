"""Every MODEL.DROPBLOCK key (and INPUT.CUTOUT) fuzzed with wrong types and out-of-range
values: `build_model` raises ValueError / KeyError / TypeError whose message contains the
full key name, before any module is built, never an error from deep inside torch.

Values are set by assignment (as Python code or a LazyConfig-style override would, with no
yacs type check in between) and through `merge_from_list` (as the command line does).
"""
import math

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from detectron2.modeling import build_model

from conftest import small_retinanet_cfg

ALLOWED_ERRORS = (ValueError, KeyError, TypeError)


def _fuzz_base_cfg():
    """Tiny DropBlockRetinaNet with every location on, so that every key is read."""
    cfg = small_retinanet_cfg("Base-RetinaNet-Scratch.yaml")
    cfg.MODEL.FPN.OUT_CHANNELS = 64
    db = cfg.MODEL.DROPBLOCK
    db.BLOCK_SIZE = 3
    db.RESNET.ENABLED = True
    db.RESNET.STAGES = ["res4", "res5"]
    db.RESNET.STAGE_DROP_SCALES = [0.25, 1.0]
    db.FPN.ENABLED = True
    db.HEAD.ENABLED = True
    db.DROP_PATH_RATE = 0.1
    cfg.INPUT.CUTOUT.ENABLED = True
    return cfg


def _leaf_keys(node, prefix):
    from detectron2.config import CfgNode

    for key, value in node.items():
        full = f"{prefix}.{key}"
        if isinstance(value, CfgNode):
            yield from _leaf_keys(value, full)
        else:
            yield full


def _all_keys():
    cfg = _fuzz_base_cfg()
    return (list(_leaf_keys(cfg.MODEL.DROPBLOCK, "MODEL.DROPBLOCK"))
            + list(_leaf_keys(cfg.INPUT.CUTOUT, "INPUT.CUTOUT")))


ALL_KEYS = _all_keys()


def _set(cfg, key, value):
    *parents, leaf = key.split(".")
    node = cfg
    for name in parents:
        node = node[name]
    node[leaf] = value


def _assert_clear_error_or_builds(cfg, key):
    try:
        build_model(cfg)
    except ALLOWED_ERRORS as e:
        message = str(e)
        assert key in message, f"error for {key} does not name it: {type(e).__name__}: {message}"
        return e
    return None


def test_every_key_is_fuzzed():
    # A key added to add_dropblock_config without a row in BAD_VALUES fails here.
    assert sorted(BAD_VALUES) == sorted(ALL_KEYS)


NAN, INF = float("nan"), float("inf")
BAD_VALUES = {
    "MODEL.DROPBLOCK.TYPE": ["dropblock", "", "DropPath", 3, None, ["DropBlock"]],
    "MODEL.DROPBLOCK.KEEP_PROB": [0, 0.0, -0.1, 1.01, NAN, INF, "0.9", None, True, [0.9]],
    "MODEL.DROPBLOCK.BLOCK_SIZE": [0, -1, 2.5, "7", None, True, [7]],
    "MODEL.DROPBLOCK.SHARED_MASK": [1, 0, "True", None, [True]],
    "MODEL.DROPBLOCK.GAMMA": ["Paper", "", 1, None],
    "MODEL.DROPBLOCK.IMPL": ["cuda", "Torch", 0, None],
    "MODEL.DROPBLOCK.RESNET.ENABLED": [1, "yes", None],
    "MODEL.DROPBLOCK.RESNET.STAGES": ["res4", ["res6"], ["res1"], ["res4", "res4"], [4], None, []],
    "MODEL.DROPBLOCK.RESNET.POSITIONS": ["conv1", ["conv4"], [1], None, [], ["conv1", "conv1"]],
    "MODEL.DROPBLOCK.RESNET.STAGE_DROP_SCALES": [
        [0.25], [0.25, 1.0, 1.0], ["a", "b"], [-1.0, 1.0], "0.25", [NAN, 1.0], [100.0, 1.0],
        None, [True, 1.0],
    ],
    "MODEL.DROPBLOCK.FPN.ENABLED": [1, "True", None],
    "MODEL.DROPBLOCK.FPN.POSITIONS": ["lateral", ["laterals"], None, [], [0]],
    "MODEL.DROPBLOCK.HEAD.ENABLED": [1, "no", None],
    "MODEL.DROPBLOCK.HEAD.TOWERS": ["cls", ["box"], None, [], ["cls", "cls"]],
    "MODEL.DROPBLOCK.SEM_SEG_HEAD.ENABLED": [1, "True", None],
    "MODEL.DROPBLOCK.SEM_SEG_HEAD.POSITIONS": ["aspp", ["asp"], None, [3]],
    "MODEL.DROPBLOCK.DROP_PATH_RATE": [1.0, 1.5, -0.1, NAN, INF, "0.1", None, True],
    "MODEL.DROPBLOCK.SCHEDULE.START_ITER": [-1, 1.5, "0", None, True, 10**9],
    "MODEL.DROPBLOCK.SCHEDULE.END_ITER": [-2, 1.5, "x", None, [10]],
    "INPUT.CUTOUT.ENABLED": [1, "True", None],
    "INPUT.CUTOUT.SIZE": [0, -5, 1.5, "64", None, True],
    "INPUT.CUTOUT.NUM_HOLES": [0, -1, 1.5, None, "2"],
    "INPUT.CUTOUT.PROB": [-0.1, 1.5, NAN, INF, "1", None],
}
CASES = [(key, value) for key, values in BAD_VALUES.items() for value in values]


@pytest.mark.parametrize("key,value", CASES, ids=[f"{k}={v!r}" for k, v in CASES])
def test_bad_value_is_a_clear_error_naming_the_key(key, value):
    cfg = _fuzz_base_cfg()
    _set(cfg, key, value)
    error = _assert_clear_error_or_builds(cfg, key)
    assert error is not None, f"{key}={value!r} was accepted"


@pytest.mark.parametrize("key,value", [
    ("MODEL.DROPBLOCK.KEEP_PROB", "1.5"),
    ("MODEL.DROPBLOCK.KEEP_PROB", "0"),
    ("MODEL.DROPBLOCK.BLOCK_SIZE", "0"),
    ("MODEL.DROPBLOCK.TYPE", "Cutout"),
    ("MODEL.DROPBLOCK.RESNET.STAGES", "['res4', 'res7']"),
    ("MODEL.DROPBLOCK.DROP_PATH_RATE", "1.0"),
    ("MODEL.DROPBLOCK.SCHEDULE.END_ITER", "-5"),
    ("INPUT.CUTOUT.PROB", "2.0"),
    # Wrong type from the command line: yacs rejects it while merging, naming the key.
    ("MODEL.DROPBLOCK.KEEP_PROB", "high"),
    ("MODEL.DROPBLOCK.SHARED_MASK", "'yes'"),
])
def test_bad_command_line_value_is_a_clear_error_naming_the_key(key, value):
    cfg = _fuzz_base_cfg()
    try:
        cfg.merge_from_list([key, value])
    except ALLOWED_ERRORS as e:
        assert key in str(e)
        return
    error = _assert_clear_error_or_builds(cfg, key)
    assert error is not None, f"{key}={value!r} was accepted"


names = st.sampled_from(["res2", "res3", "res4", "res5", "conv1", "conv2", "conv3", "shortcut",
                         "lateral", "output", "top_block", "cls", "bbox", "aspp", "project",
                         "decoder", "DropBlock", "Dropout", "SpatialDropout", "paper",
                         "calibrated", "auto", "torch", "triton"])
scalars = st.one_of(
    st.none(), st.booleans(), st.integers(-(10**12), 10**12), st.floats(allow_nan=True),
    st.text(max_size=8), names,
)
values = st.one_of(scalars, st.lists(st.one_of(names, scalars), max_size=4),
                   st.dictionaries(st.text(max_size=3), st.integers(), max_size=2))


@settings(max_examples=50, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow])
@given(key=st.sampled_from(ALL_KEYS), value=values)
def test_any_value_builds_or_fails_naming_the_key(key, value):
    cfg = _fuzz_base_cfg()
    _set(cfg, key, value)
    error = _assert_clear_error_or_builds(cfg, key)
    if error is None:
        # Accepted values must be sane ones, not garbage let through.
        assert value is not None
        if isinstance(value, float):
            assert math.isfinite(value)
