"""Hostile inputs to every regularizer (hypothesis): random shapes (empty batch, 1x1 maps,
H != W), dtypes (fp32, fp16, bf16), any keep_prob in (0, 1] (down to the smallest float)
and block sizes 1..12 never crash, keep shape and dtype, and give finite output and
gradients for finite input.

Inputs are bounded (|x| <= 8): the test is about the regularizers' own arithmetic (the
renormalising scale, the mask), not about inputs that are already near the dtype maximum
(tests/reliability/test_mixed_precision.py covers those).
"""
import pytest
import torch
from hypothesis import example, given, settings
from hypothesis import strategies as st

from dropblock_det.layers import (
    DropBlock2d,
    DropPath,
    Dropout,
    SpatialDropout,
    build_regularizer,
    drop_block_2d,
    drop_path,
    dropout,
    spatial_dropout,
)

SETTINGS = settings(max_examples=40, deadline=None, derandomize=True)

# name -> f(x, keep_prob, block_size) in training mode
REGULARIZERS = {
    "drop_block_2d": lambda x, p, b: drop_block_2d(x, p, b, impl="torch"),
    "drop_block_2d_shared_calibrated": lambda x, p, b: drop_block_2d(
        x, p, b, shared_mask=True, gamma_mode="calibrated", impl="torch"),
    "DropBlock2d": lambda x, p, b: DropBlock2d(p, b, impl="torch").train()(x),
    "Dropout": lambda x, p, b: Dropout(p).train()(x),
    "SpatialDropout": lambda x, p, b: SpatialDropout(p).train()(x),
    "DropPath": lambda x, p, b: DropPath(p).train()(x),
    "dropout": lambda x, p, b: dropout(x, p),
    "spatial_dropout": lambda x, p, b: spatial_dropout(x, p),
    "drop_path": lambda x, p, b: drop_path(x, p),
}

shapes = st.tuples(
    st.integers(0, 3),  # N: 0 = empty batch
    st.integers(1, 4),  # C
    st.integers(1, 12),  # H
    st.integers(1, 12),  # W (independent of H: H != W)
)
dtypes = st.sampled_from([torch.float32, torch.float16, torch.bfloat16])
# Every float in (0, 1]: hypothesis also tries tiny and subnormal values.
keep_probs = st.floats(min_value=0.0, max_value=1.0, exclude_min=True)
block_sizes = st.integers(1, 12)
seeds = st.integers(0, 2**31 - 1)


@pytest.mark.parametrize("name", list(REGULARIZERS))
@SETTINGS
@given(shape=shapes, dtype=dtypes, keep_prob=keep_probs, block_size=block_sizes, seed=seeds)
@example(shape=(1, 1, 1, 1), dtype=torch.float16, keep_prob=0.5, block_size=12, seed=0)
@example(shape=(0, 3, 5, 7), dtype=torch.bfloat16, keep_prob=0.1, block_size=3, seed=0)
@example(shape=(2, 3, 1, 12), dtype=torch.float32, keep_prob=1.0, block_size=7, seed=0)
# keep_prob so small that 1 / keep_prob overflows fp32: everything is dropped, and the
# output must be zeros, not 0 * inf = NaN.
@example(shape=(2, 3, 4, 4), dtype=torch.float32, keep_prob=1e-39, block_size=3, seed=0)
@example(shape=(2, 3, 4, 4), dtype=torch.float16, keep_prob=5e-324, block_size=3, seed=0)
def test_no_crash_shape_dtype_kept_and_output_and_gradient_finite(
    name, shape, dtype, keep_prob, block_size, seed
):
    torch.manual_seed(seed)
    x = ((torch.rand(shape) * 16 - 8).to(dtype)).requires_grad_()
    out = REGULARIZERS[name](x, keep_prob, block_size)
    assert out.shape == x.shape and out.dtype == x.dtype
    assert torch.isfinite(out).all(), f"{name}: non-finite output for finite input"
    if out.requires_grad:
        out.float().sum().backward()
        assert x.grad is not None and x.grad.shape == x.shape
        assert torch.isfinite(x.grad).all(), f"{name}: non-finite gradient"
    if keep_prob == 1.0 or x.numel() == 0:
        assert out is x  # nothing to drop: the very same tensor, no copy


@pytest.mark.parametrize("type_name", ["DropBlock", "Dropout", "SpatialDropout"])
@SETTINGS
@given(shape=shapes, dtype=dtypes, keep_prob=keep_probs, block_size=block_sizes)
def test_built_regularizer_is_identity_in_eval_mode(type_name, shape, dtype, keep_prob, block_size):
    layer = build_regularizer(type_name, keep_prob, block_size=block_size, impl="torch").eval()
    x = torch.rand(shape).to(dtype)
    assert layer(x) is x
    assert list(layer.state_dict()) == [] and list(layer.parameters()) == []


@pytest.mark.parametrize("name", list(REGULARIZERS))
@pytest.mark.parametrize("bad_input", [
    "not a tensor",
    torch.ones(4, dtype=torch.long).view(1, 1, 2, 2),  # integer tensor
])
def test_bad_input_is_a_value_error_not_a_torch_traceback(name, bad_input):
    with pytest.raises(ValueError, match=r"x must"):
        REGULARIZERS[name](bad_input, 0.9, 3)


@pytest.mark.parametrize("name", ["drop_block_2d", "DropBlock2d", "SpatialDropout"])
def test_input_with_too_few_dims_is_a_value_error_naming_the_shape(name):
    with pytest.raises(ValueError, match=r"x must.*\(3, 5\)"):
        REGULARIZERS[name](torch.ones(3, 5), 0.9, 3)


@pytest.mark.parametrize("name", list(REGULARIZERS))
@pytest.mark.parametrize(
    "keep_prob", [0.0, -0.5, 1.5, float("nan"), float("inf"), "0.9", None, True])
def test_impossible_keep_prob_is_a_value_error_naming_it(name, keep_prob):
    with pytest.raises(ValueError, match="keep_prob"):
        REGULARIZERS[name](torch.ones(1, 2, 4, 4), keep_prob, 3)


@pytest.mark.parametrize("block_size", [0, -1, 2.5, "3", None, True])
def test_impossible_block_size_is_a_value_error_naming_it(block_size):
    with pytest.raises(ValueError, match="block_size"):
        drop_block_2d(torch.ones(1, 2, 4, 4), 0.9, block_size, impl="torch")
    with pytest.raises(ValueError, match="block_size"):
        DropBlock2d(0.9, block_size)
