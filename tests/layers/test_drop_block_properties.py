"""Property tests (hypothesis) of drop_block_2d over random shapes and arguments."""
import pytest
import torch
from dropblock_checks import assert_dropped_units_form_full_blocks
from hypothesis import given, settings
from hypothesis import strategies as st

from dropblock_det.layers import drop_block_2d

SETTINGS = settings(max_examples=40, deadline=None, derandomize=True)

shapes = st.tuples(
    st.integers(0, 3),  # N (0 = empty batch)
    st.integers(1, 4),  # C
    st.integers(1, 12),  # H
    st.integers(1, 12),  # W
)
keep_probs = st.floats(0.05, 1.0, allow_nan=False)
block_sizes = st.integers(1, 14)
flags = st.booleans()
gamma_modes = st.sampled_from(["paper", "calibrated"])


@SETTINGS
@given(shapes, keep_probs, block_sizes, flags, gamma_modes, st.integers(0, 2**31 - 1), flags)
def test_output_is_input_masked_by_full_blocks_and_rescaled(
    shape, keep_prob, block_size, shared_mask, gamma_mode, seed, channels_last
):
    torch.manual_seed(seed)
    x = torch.rand(shape, dtype=torch.float64) + 0.5
    if channels_last:
        x = x.to(memory_format=torch.channels_last)
    out = drop_block_2d(x, keep_prob, block_size, shared_mask=shared_mask, gamma_mode=gamma_mode)
    assert out.shape == x.shape and out.dtype == x.dtype
    if x.numel() == 0 or keep_prob == 1.0:
        assert out is x
        return
    dropped = out == 0
    assert_dropped_units_form_full_blocks(dropped, block_size)
    if shared_mask:
        assert torch.equal(dropped, dropped[:, :1].expand_as(dropped))
    kept = ~dropped
    if kept.any():
        # one scale for the whole tensor: numel / (kept count + 1e-6)
        scale = out[kept] / x[kept]
        expected_scale = kept.numel() / kept.sum().item()
        torch.testing.assert_close(scale, torch.full_like(scale, expected_scale), rtol=2e-6, atol=0)
    if channels_last and shape[1] > 1:
        assert out.is_contiguous(memory_format=torch.channels_last)


@SETTINGS
@given(shapes, keep_probs, block_sizes, flags, st.integers(0, 2**31 - 1))
def test_eval_mode_is_identity_and_same_seed_is_reproducible(shape, keep_prob, block_size, shared_mask, seed):
    x = torch.rand(shape)
    assert drop_block_2d(x, keep_prob, block_size, shared_mask=shared_mask, training=False) is x
    torch.manual_seed(seed)
    first = drop_block_2d(x, keep_prob, block_size, shared_mask=shared_mask)
    torch.manual_seed(seed)
    second = drop_block_2d(x, keep_prob, block_size, shared_mask=shared_mask)
    assert torch.equal(first, second)


@SETTINGS
@given(shapes, keep_probs, block_sizes, flags, st.integers(0, 2**31 - 1))
def test_gradient_equals_grad_times_mask_times_scale(shape, keep_prob, block_size, shared_mask, seed):
    torch.manual_seed(seed)
    x = torch.ones(shape, requires_grad=True)
    out = drop_block_2d(x, keep_prob, block_size, shared_mask=shared_mask)
    if not out.requires_grad or out is x:
        return
    grad = torch.randn_like(out)
    out.backward(grad)
    assert torch.equal(x.grad, grad * out.detach())


@SETTINGS
@given(
    st.one_of(
        st.floats(allow_nan=True).filter(lambda v: not (0 < v <= 1)),
        st.integers().filter(lambda v: v != 1),
    )
)
def test_any_keep_prob_outside_unit_interval_is_rejected(keep_prob):
    with pytest.raises(ValueError, match="keep_prob"):
        drop_block_2d(torch.ones(1, 1, 4, 4), keep_prob, 3)
