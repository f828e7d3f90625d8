"""drop_block_2d / DropBlock2d: shapes, dtypes, layouts, identity cases, reproducibility,
gradient, memory kept for backward, gamma, bad arguments, implementation dispatch."""
import math
import random
import re
import subprocess
import warnings

import pytest
import torch
from dropblock_checks import (
    assert_dropped_units_form_full_blocks,
    assert_second_order_matches_unfused_relu,
    saved_for_backward,
)

from dropblock_det.layers import (
    DropBlock2d,
    KeepProbRegularizer,
    clip_block_size,
    drop_block_2d,
    drop_block_gamma,
    expected_drop_fraction,
)
from dropblock_det.layers import drop_block as drop_block_module
from dropblock_det.layers import drop_block_triton as triton_path


def _dropped(out: torch.Tensor) -> torch.Tensor:
    """Dropped units of the output of an all-ones (or all-positive) input."""
    return out == 0


# ---------------------------------------------------------------- shapes and identity cases


@pytest.mark.parametrize(
    "shape, block_size",
    [
        ((2, 3, 17, 13), 3),  # H != W, odd block
        ((2, 3, 13, 17), 4),  # W > H, even block
        ((2, 3, 8, 8), 2),  # even map, even block
        ((1, 2, 5, 3), 7),  # block larger than both sides
        ((1, 1, 1, 1), 7),  # 1x1 map
        ((1, 4, 9, 1), 3),  # one column
    ],
)
def test_output_has_input_shape_dtype_and_only_zero_or_scaled_values(shape, block_size):
    torch.manual_seed(0)
    x = torch.rand(shape) + 0.5
    out = drop_block_2d(x, 0.7, block_size)
    assert out.shape == x.shape and out.dtype == x.dtype
    kept = out != 0
    if kept.any():
        scale = out[kept] / x[kept]
        # one scale for the whole tensor: numel / kept count
        expected = x.numel() / kept.sum().item()
        torch.testing.assert_close(scale, torch.full_like(scale, expected), rtol=1e-5, atol=0)


def test_empty_batch_returns_empty_output_of_same_shape():
    x = torch.ones(0, 3, 8, 8, requires_grad=True)
    out = drop_block_2d(x, 0.9, 3)
    assert out.shape == (0, 3, 8, 8)


@pytest.mark.parametrize("shared_mask", [False, True])
@pytest.mark.parametrize("keep_prob", [0.9, 0.1])  # sparse (geometric gaps) and dense seeds
def test_meta_device_input_gives_a_meta_output_of_its_shape_and_layout(shared_mask, keep_prob):
    # "any device": a model built on the meta device (shapes only) runs a training forward
    # and backward; there are no values to draw a mask from, so nothing is read to the host.
    x = torch.empty(2, 3, 8, 8, device="meta").to(memory_format=torch.channels_last).requires_grad_(True)
    out = drop_block_2d(x, keep_prob, 3, shared_mask=shared_mask, impl="torch")
    assert out.device.type == "meta" and out.shape == x.shape and out.dtype == x.dtype
    assert out.is_contiguous(memory_format=torch.channels_last)
    out.sum().backward()
    assert x.grad.shape == x.shape
    assert DropBlock2d(keep_prob, 3, gamma_mode="calibrated")(x, relu=True).shape == x.shape


def test_batch_of_one_drops_and_renormalises():
    torch.manual_seed(0)
    out = drop_block_2d(torch.ones(1, 8, 32, 32), 0.8, 5)
    assert _dropped(out).any()
    assert out.mean().item() == pytest.approx(1.0, rel=1e-5)


def test_eval_mode_and_keep_prob_one_return_the_input_object():
    x = torch.randn(2, 3, 9, 9)
    assert drop_block_2d(x, 0.9, 3, training=False) is x
    assert drop_block_2d(x, 1.0, 3) is x
    module = DropBlock2d(keep_prob=0.5, block_size=3).eval()
    assert module(x) is x
    module.train()
    module.keep_prob = 1.0
    assert module(x) is x
    module.keep_prob = 0.5
    assert module(x) is not x


def test_the_function_off_applies_relu_and_residual_out_of_place():
    # training=False or keep_prob 1 with relu / residual: relu(x) and relu(r + x) as new
    # tensors; the caller's x and residual (a shortcut, a hook's copy) stay as they were.
    x, residual = torch.randn(2, 3, 9, 9), torch.randn(2, 3, 9, 9)
    x_before, residual_before = x.clone(), residual.clone()
    for off in (dict(training=False), dict(keep_prob=1.0)):
        args = {"keep_prob": 0.8, "block_size": 3, **off}
        assert torch.equal(drop_block_2d(x, relu=True, **args), torch.relu(x_before))
        assert torch.equal(drop_block_2d(x, residual=residual, **args), torch.relu(residual_before + x_before))
        assert torch.equal(x, x_before) and torch.equal(residual, residual_before)


def test_module_is_a_keep_prob_regularizer_with_empty_state_dict_and_informative_repr():
    module = DropBlock2d(keep_prob=0.85, block_size=5, shared_mask=True, gamma_mode="calibrated")
    assert isinstance(module, KeepProbRegularizer)
    assert module.keep_prob == module.target_keep_prob == 0.85
    assert module.state_dict() == {} and list(module.parameters()) == []
    text = repr(module)
    for part in ("keep_prob=0.85", "block_size=5", "shared_mask=True", "'calibrated'"):
        assert part in text
    module.keep_prob = 0.9999995  # mid-ramp: active, and shown as such
    assert module.active and "keep_prob=0.9999995," in repr(module)
    with pytest.raises(ValueError, match=r"^keep_prob must be in \(0, 1\], got 0\.0"):
        DropBlock2d(keep_prob=0.0)


def test_even_block_is_anchored_top_left_inside_the_map():
    # A 2x4 map with block 2: the single valid row of anchors is i=0, so every dropped
    # block covers rows 0..1 entirely and columns j..j+1 with 0 <= j <= 2.
    torch.manual_seed(0)
    out = drop_block_2d(torch.ones(2000, 1, 2, 4), 0.5, 2)
    dropped = _dropped(out)
    assert torch.equal(dropped[:, :, 0], dropped[:, :, 1])  # both rows always together
    # every column is sometimes dropped (no shift that would leave an edge untouched)
    assert dropped.flatten(0, 2).any(dim=0).all()


def test_block_larger_than_map_drops_the_whole_map_at_rate_one_minus_keep_prob():
    # 5x3 map, block 7 -> clipped to 5x3: one anchor, the whole map or nothing.
    torch.manual_seed(0)
    out = drop_block_2d(torch.ones(4000, 1, 5, 3), 0.8, 7)
    per_map = _dropped(out).flatten(1).float().mean(dim=1)
    assert set(per_map.unique().tolist()) <= {0.0, 1.0}
    assert per_map.mean().item() == pytest.approx(0.2, abs=0.025)


def test_shared_mask_is_identical_across_channels_and_per_channel_differs():
    torch.manual_seed(0)
    x = torch.ones(4, 6, 16, 16)
    shared = _dropped(drop_block_2d(x, 0.8, 3, shared_mask=True))
    assert shared.any()
    assert torch.equal(shared, shared[:, :1].expand_as(shared))
    per_channel = _dropped(drop_block_2d(x, 0.8, 3))
    assert not torch.equal(per_channel, per_channel[:, :1].expand_as(per_channel))


def test_all_dropped_map_gives_zeros_not_nan():
    # 1x1 map with keep_prob tiny: most draws drop everything; the eps keeps it finite.
    torch.manual_seed(0)
    out = drop_block_2d(torch.ones(1, 1, 1, 1), 1e-6, 3)
    assert torch.isfinite(out).all()
    assert out.item() == 0.0


# ---------------------------------------------------------------- dtypes and layouts


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16, torch.float64])
def test_dtype_in_equals_dtype_out_and_scale_is_applied_in_fp32(dtype):
    torch.manual_seed(0)
    x = (torch.rand(2, 4, 12, 10) + 0.5).to(dtype)
    out = drop_block_2d(x, 0.8, 3)
    assert out.dtype == dtype
    keep = out != 0
    compute = torch.float64 if dtype == torch.float64 else torch.float32
    eps = drop_block_module.NORMALIZER_EPS
    scale = torch.tensor(float(keep.numel()), dtype=compute) / (keep.sum().to(compute) + eps)
    expected = (x.to(compute) * keep * scale).to(dtype)
    torch.testing.assert_close(out, expected, rtol=0, atol=0)


def test_fp16_input_larger_than_fp16_max_count_keeps_a_finite_scale():
    # 90,000 units: a kept count summed in fp16 would overflow (max 65504) to inf.
    torch.manual_seed(0)
    x = torch.ones(1, 1, 300, 300, dtype=torch.float16)
    out = drop_block_2d(x, 0.9, 7)
    assert torch.isfinite(out).all()
    assert out.float().mean().item() == pytest.approx(1.0, rel=2e-3)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
@pytest.mark.parametrize("shared_mask", [False, True])  # applied from the seeds / the bool mask
def test_half_precision_output_saturates_and_its_gradient_overflows(dtype, shared_mask):
    # A kept unit at the dtype's largest value times the scale (~1 / kept fraction) does not
    # fit: the output saturates there (an inf would turn the loss into NaN), while the
    # gradient overflows to inf, as AMP's GradScaler needs to see it. Both ends: -inf would
    # turn the loss into NaN as well.
    largest = torch.finfo(dtype).max
    x = torch.full((2, 4, 12, 10), largest, dtype=dtype)
    x[:, ::2] = -largest
    x.requires_grad_(True)
    torch.manual_seed(0)
    out = drop_block_2d(x, 0.8, 3, shared_mask=shared_mask, impl="torch")
    kept = out != 0
    assert kept.any() and not kept.all()
    assert torch.equal(out[kept], x.detach()[kept])
    assert (out[kept] < 0).any() and (out[kept] > 0).any()
    out.backward(torch.full_like(out, largest))
    assert x.grad[kept].isinf().all() and (x.grad[~kept] == 0).all()


def test_channels_last_input_gives_channels_last_output_with_same_mask_semantics():
    torch.manual_seed(0)
    x = (torch.rand(2, 5, 11, 9) + 0.5).to(memory_format=torch.channels_last)
    for shared in (False, True):
        out = drop_block_2d(x, 0.7, 3, shared_mask=shared)
        assert out.is_contiguous(memory_format=torch.channels_last)
        assert _dropped(out).any()
        assert_dropped_units_form_full_blocks(_dropped(out), 3)


def test_non_contiguous_input_is_handled():
    torch.manual_seed(0)
    x = (torch.rand(2, 6, 20, 20) + 0.5)[:, ::2, 1:, ::2]
    out = drop_block_2d(x, 0.7, 3)
    assert out.shape == x.shape
    assert_dropped_units_form_full_blocks(_dropped(out), 3)


# ---------------------------------------------------------------- reproducibility


def test_same_seed_gives_same_mask_and_different_seed_a_different_one():
    x = torch.ones(2, 8, 24, 24)
    torch.manual_seed(123)
    first = drop_block_2d(x, 0.9, 5)
    torch.manual_seed(123)
    second = drop_block_2d(x, 0.9, 5)
    torch.manual_seed(124)
    third = drop_block_2d(x, 0.9, 5)
    assert torch.equal(first, second)
    assert not torch.equal(first, third)


# ---------------------------------------------------------------- gradient and memory


@pytest.mark.parametrize("shared_mask", [False, True])
def test_gradient_is_exactly_grad_times_mask_times_scale(shared_mask):
    torch.manual_seed(0)
    x = torch.ones(3, 4, 14, 10, requires_grad=True)
    out = drop_block_2d(x, 0.8, 4, shared_mask=shared_mask)
    grad = torch.randn_like(out)
    out.backward(grad)
    # out = mask * scale exactly for an all-ones input
    assert torch.equal(x.grad, grad * out.detach())
    assert _dropped(out).any()


def test_gradient_matches_autograd_of_the_explicit_formula():
    torch.manual_seed(0)
    x = torch.randn(2, 3, 9, 9, dtype=torch.float64, requires_grad=True)
    torch.manual_seed(1)
    out = drop_block_2d(x, 0.7, 3)
    torch.manual_seed(1)
    out_ones = drop_block_2d(torch.ones_like(x), 0.7, 3)  # same mask: mask * scale
    (out * torch.arange(out.numel(), dtype=out.dtype).view_as(out)).sum().backward()
    expected = torch.arange(out.numel(), dtype=out.dtype).view_as(out) * out_ones
    torch.testing.assert_close(x.grad, expected, rtol=1e-12, atol=0)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("shared_mask", [False, True])
def test_autograd_keeps_at_most_one_byte_per_element(dtype, shared_mask):
    x = torch.randn(2, 8, 20, 20, dtype=dtype, requires_grad=True)
    out, saved = saved_for_backward(lambda: drop_block_2d(x, 0.8, 5, shared_mask=shared_mask))
    assert saved, "the mask (or the seeds' offsets) must be saved for backward"
    assert all(not t.is_floating_point() for t in saved), "no float mask may be kept"
    assert sum(t.numel() * t.element_size() for t in saved) <= x.numel()
    out.sum().backward()


def test_mask_does_not_require_grad_and_input_grad_flows_through_module():
    module = DropBlock2d(keep_prob=0.8, block_size=3)
    x = torch.randn(2, 3, 10, 10, requires_grad=True)
    out = module(x)
    assert out.requires_grad
    out.sum().backward()
    assert x.grad is not None and x.grad.shape == x.shape


# ---------------------------------------------------------------- gamma


def test_paper_gamma_matches_algorithm_1_with_clipped_block():
    assert drop_block_gamma(0.9, 7, 28, 28) == pytest.approx(0.1 / 49 * 784 / 484)
    assert drop_block_gamma(0.75, 3, 17, 13) == pytest.approx(0.25 / 9 * 221 / (15 * 11))
    # block 7 on a 5x3 map is clipped to 5x3 in gamma too: one anchor, gamma = 1 - kp
    assert drop_block_gamma(0.8, 7, 5, 3) == pytest.approx(0.2)
    assert drop_block_gamma(0.8, 7, 1, 1) == pytest.approx(0.2)


def test_paper_gamma_undershoots_by_the_amounts_in_the_notes():
    paper_28 = drop_block_gamma(0.9, 7, 28, 28)
    paper_17 = drop_block_gamma(0.75, 3, 17, 13)
    assert expected_drop_fraction(paper_28, 7, 28, 28) == pytest.approx(0.094, abs=5e-4)
    assert expected_drop_fraction(paper_17, 3, 17, 13) == pytest.approx(0.221, abs=5e-4)


@pytest.mark.parametrize(
    "shape, block_size, keep_prob",
    [((28, 28), 7, 0.9), ((17, 13), 3, 0.75), ((7, 7), 4, 0.95), ((1, 1), 7, 0.9), ((2, 9), 9, 0.6)],
)
def test_calibrated_gamma_makes_expected_drop_fraction_exactly_one_minus_keep_prob(
    shape, block_size, keep_prob
):
    h, w = shape
    gamma = drop_block_gamma(keep_prob, block_size, h, w, gamma_mode="calibrated")
    assert 0 < gamma < 1
    expected = expected_drop_fraction(gamma, block_size, h, w)
    assert expected == pytest.approx(1 - keep_prob, abs=1e-12)
    assert gamma >= drop_block_gamma(keep_prob, block_size, h, w)


def test_calibrated_gamma_is_the_gamma_that_halving_the_whole_interval_finds():
    # Newton's steps then a few ulps of bisection must land on the same double as plain
    # bisection of [0, 1]: the boundary between an expected fraction below 1 - keep_prob and
    # one at or above it, on every map, block and keep_prob, extreme ones included.
    from dropblock_det.layers.drop_block import _calibrated_gamma, _coverage_table, _expected_fraction

    rng = random.Random(0)
    cases = [(7, 7, 7, 0.95), (28, 28, 7, 0.9), (1, 1, 7, 0.5), (50, 68, 7, 1 - 1.1e-16), (9, 4, 3, 5e-324)]
    for _ in range(300):
        keep_prob = rng.choice([rng.uniform(0.0, 1.0), 1 - 10 ** rng.uniform(-15, -1), 10 ** rng.uniform(-300, -1)])
        cases.append((rng.randint(1, 120), rng.randint(1, 120), rng.randint(1, 9), keep_prob))
    for height, width, block_size, keep_prob in cases:
        bh, bw = min(block_size, height), min(block_size, width)
        k, weight = _coverage_table(height, width, bh, bw)
        low, high = 0.0, 1.0
        while 0.5 * (low + high) not in (low, high):
            mid = 0.5 * (low + high)
            low, high = (mid, high) if _expected_fraction(k, weight, mid) < 1 - keep_prob else (low, mid)
        assert _calibrated_gamma(height, width, bh, bw, keep_prob) == high, (height, width, block_size, keep_prob)


def test_expected_drop_fraction_matches_brute_force_enumeration():
    h, w, b, gamma = 6, 9, 4, 0.07
    total = 0.0
    for i in range(h):
        for j in range(w):
            k = sum(
                1
                for a in range(h - b + 1)
                for c in range(w - b + 1)
                if a <= i < a + b and c <= j < c + b
            )
            total += 1 - (1 - gamma) ** k
    assert expected_drop_fraction(gamma, b, h, w) == pytest.approx(total / (h * w), rel=1e-12)


# ---------------------------------------------------------------- bad arguments


@pytest.mark.parametrize(
    "kwargs",
    [
        {"keep_prob": 0.0},
        {"keep_prob": 1.5},
        {"keep_prob": -0.1},
        {"keep_prob": float("nan")},
        {"keep_prob": "0.9"},
        {"keep_prob": True},
        {"block_size": 0},
        {"block_size": -3},
        {"block_size": 2.5},
        {"block_size": True},
        {"gamma_mode": "exact"},
        {"impl": "cuda"},
        {"shared_mask": "yes"},
        {"training": 1},
        {"warm_iters": 100},
        {"drop_prob": 0.1},
    ],
)
def test_bad_arguments_raise_value_error_naming_argument_and_value(kwargs):
    args = {"keep_prob": 0.9, "block_size": 3}
    args.update(kwargs)
    with pytest.raises(ValueError) as info:
        drop_block_2d(torch.ones(1, 1, 8, 8), **args)
    (name, value), = kwargs.items()
    assert name in str(info.value)
    assert repr(value) in str(info.value)


@pytest.mark.parametrize("shape", [(8, 8), (1, 8, 8), (1, 1, 1, 8, 8)])
def test_non_4d_input_raises_value_error_naming_the_shape(shape):
    with pytest.raises(ValueError, match=r"4-D.*" + re.escape(str(tuple(shape)))):
        drop_block_2d(torch.ones(shape), 0.9, 3)


def test_integer_input_raises_value_error_naming_the_dtype():
    with pytest.raises(ValueError, match="torch.int64"):
        drop_block_2d(torch.ones(1, 1, 4, 4, dtype=torch.long), 0.9, 3)


# is_floating_point() holds for them, but neither path can apply a mask to them (torch's
# index_fill has no fp8 kernel, the Triton path takes fp32 / fp16 / bf16 / fp64).
FP8_DTYPES = [getattr(torch, name) for name in ("float8_e4m3fn", "float8_e5m2", "float8_e4m3fnuz", "float8_e5m2fnuz",
                                                "float8_e8m0fnu") if hasattr(torch, name)]


@pytest.mark.parametrize("dtype", FP8_DTYPES, ids=str)
@pytest.mark.parametrize("impl", drop_block_module.IMPLS)
def test_fp8_input_is_refused_at_once_naming_x_and_the_dtype(dtype, impl):
    # At once: also where DropBlock is the identity (training=False, keep_prob 1), not at
    # the first step the schedule lowers keep_prob (an unrelated error there, or with
    # impl="auto" a crash instead of a fallback).
    x = (torch.rand(2, 3, 9, 9) + 0.5).to(dtype)
    named = rf"x must be a float32, float16, bfloat16 or float64 tensor, got dtype {re.escape(str(dtype))}"
    for kwargs in (dict(), dict(training=False), dict(keep_prob=1.0), dict(relu=True), dict(residual=torch.ones(2, 3, 9, 9))):
        with pytest.raises(ValueError, match=named):
            drop_block_2d(x, **{"keep_prob": 0.8, "block_size": 3, "impl": impl, **kwargs})
    module = DropBlock2d(0.8, 3, impl=impl)
    for inactive in (module.eval(), DropBlock2d(1.0, 3, impl=impl).train()):
        with pytest.raises(ValueError, match=named):
            inactive(x)
    with pytest.raises(ValueError, match=named):
        module.train()(x)


@pytest.mark.parametrize("inplace", [True, False])
def test_fp8_input_of_an_inactive_dropblock_after_a_relu_is_refused_and_left_unchanged(inplace):
    # An inactive module's in-place ReLU (the stock block's) ran before the module's check:
    # torch's NotImplementedError of relu_ on fp8 instead of the ValueError naming x.
    from dropblock_det.layers import relu_then_regularize

    x = (torch.rand(2, 3, 9, 9) - 0.5).to(FP8_DTYPES[0])
    before = x.float()
    with pytest.raises(ValueError, match=rf"x must be a float32, .* got dtype {re.escape(str(FP8_DTYPES[0]))}"):
        relu_then_regularize(DropBlock2d(0.8, 3).eval(), x, inplace=inplace)
    assert torch.equal(x.float(), before)


def test_an_fp8_residual_of_a_fused_pair_is_refused_naming_the_residual():
    # The fused pair (Triton path) draws a DropBlock on the residual too: it must be a dtype
    # DropBlock takes, and the error names it, not x.
    on_x, on_residual = DropBlock2d(0.8, 3, impl="triton").train(), DropBlock2d(0.8, 3, impl="triton").train()
    residual = torch.rand(2, 3, 9, 9).to(FP8_DTYPES[0])
    with pytest.raises(ValueError, match=rf"residual must be a float32, .* got dtype {re.escape(str(FP8_DTYPES[0]))}"):
        on_x(torch.rand(2, 3, 9, 9), residual=residual, residual_regularizer=on_residual)


@pytest.mark.parametrize("shape", [(2, 3, 0, 5), (2, 3, 4, 0), (0, 3, 4, 5)])
def test_a_pair_on_the_triton_path_passes_an_empty_map_through(shape):
    # The fused pair computes gamma from the map's size before any kernel: an empty map
    # (no area to compute it from) must take the modules in turn, which pass it through,
    # not reach the gamma (a ZeroDivisionError there before).
    on_x, on_residual = DropBlock2d(0.8, 3, impl="triton").train(), DropBlock2d(0.8, 3, impl="triton").train()
    x, residual = torch.ones(shape, requires_grad=True), torch.ones(shape, requires_grad=True)
    out = on_x(x, residual=residual, residual_regularizer=on_residual)
    out.sum().backward()
    assert out.shape == shape and x.grad.shape == shape and residual.grad.shape == shape


@pytest.mark.parametrize(
    "kwargs, fragment",
    [
        ({"keep_prob": 0}, "keep_prob"),
        ({"block_size": 0}, "block_size"),
        ({"gamma_mode": "foo"}, "gamma_mode"),
        ({"impl": "foo"}, "impl"),
        ({"warm_iters": 5}, "warm_iters"),
        ({"shared_mask": "no"}, "shared_mask"),  # a truthy string must not share the mask
        ({"shared_mask": 1}, "shared_mask"),
    ],
)
def test_module_rejects_bad_arguments_at_construction(kwargs, fragment):
    with pytest.raises(ValueError, match=fragment):
        DropBlock2d(**kwargs)


def test_setting_an_invalid_keep_prob_on_the_module_raises():
    module = DropBlock2d()
    with pytest.raises(ValueError, match="keep_prob.*1.2"):
        module.keep_prob = 1.2


def test_module_defaults_are_the_papers_setting_on_the_paper_gamma():
    # keep_prob 0.9 and block 7 (the paper's ResNet-50 setting), per-channel masks, the
    # paper's gamma, the dispatch by device: the defaults a LazyConfig without arguments gets.
    module = DropBlock2d()
    assert (module.keep_prob, module.target_keep_prob, module.block_size) == (0.9, 0.9, 7)
    assert (module.shared_mask, module.gamma_mode, module.impl) == (False, "paper", "auto")


@pytest.mark.parametrize(
    "options",
    [{}, {"block_size": 4, "shared_mask": True}, {"block_size": 3, "gamma_mode": "calibrated"}],
)
def test_module_draws_the_functions_mask_with_its_options_and_scheduled_keep_prob(options):
    # The module must hand every option, and the keep_prob the schedule set (not the
    # target), to drop_block_2d: a module whose shared_mask or gamma_mode did nothing, or
    # that drew at the target from the first iteration, would still drop full blocks.
    module = DropBlock2d(0.9, **options).train()
    module.keep_prob = 0.6  # mid-ramp
    x = torch.rand(2, 4, 13, 11) + 0.5
    torch.manual_seed(3)
    out = module(x)
    torch.manual_seed(3)
    expected = drop_block_2d(x, 0.6, options.pop("block_size", 7), **options)
    assert torch.equal(out, expected) and _dropped(out).any()


@pytest.mark.parametrize("impl", ["auto", "torch", "triton"])
def test_module_hands_its_impl_to_the_dispatch_and_shows_it(monkeypatch, impl):
    seen = []
    monkeypatch.setattr(drop_block_module, "_drop_block_triton_or_none",
                        lambda x, impl, **kwargs: seen.append(impl))  # None: the PyTorch path runs
    module = DropBlock2d(0.8, 3, impl=impl).train()
    module(torch.ones(2, 3, 9, 9))
    assert seen == [impl]
    assert f"impl={impl!r}" in repr(module)


# ---------------------------------------------------------------- ReLU and residual fused in


@pytest.mark.parametrize("shared_mask, sparse", [(False, True), (False, False), (True, True)])
@pytest.mark.parametrize("dtype, channels_last", [(torch.float32, False), (torch.float16, True), (torch.bfloat16, False)])
def test_relu_flag_is_exactly_dropblock_of_relu_output_and_gradient(monkeypatch, shared_mask, sparse, dtype,
                                                                    channels_last):
    # Per-channel sparse seeds, dense seeds and shared masks: the fused backward reads the
    # output, so NaN, -0.0 and a positive unit under a block must give the unfused gradient.
    if not sparse:
        monkeypatch.setattr(drop_block_module, "_SPARSE_APPLY_MAX_GAMMA", -1.0)
    x = torch.randn(2, 5, 12, 10).to(dtype)
    x.view(-1)[::7], x.view(-1)[3::11] = float("nan"), -0.0  # spread out: some are kept
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    grad = torch.randn(x.shape)
    grad.view(-1)[1::5] = 60000.0  # * scale overflows fp16: inf, not saturated
    grad = grad.to(dtype)
    results = []
    for relu in (True, False):
        leaf = x.clone().requires_grad_(True)
        torch.manual_seed(4)
        out = drop_block_2d(leaf if relu else torch.relu(leaf), 0.8, 3, shared_mask, impl="torch", relu=relu)
        out.backward(grad)
        results.append((out.detach(), leaf.grad))
    (fused, fused_grad), (reference, reference_grad) = results
    assert fused.isnan().any() and (fused == 0).sum() > (torch.relu(x) == 0).sum()
    torch.testing.assert_close(fused, reference, rtol=0, atol=0, equal_nan=True)
    torch.testing.assert_close(fused_grad, reference_grad, rtol=0, atol=0, equal_nan=True)
    # A kept NaN passes the gradient, as torch.relu's backward does; a unit under a block does not.
    assert (fused_grad[fused.isnan()] != 0).any() and (fused_grad == 0).sum() > (grad == 0).sum()
    if dtype == torch.float16:
        assert fused_grad.isinf().any()
    # The signs of the zeros too (assert_close takes -0.0 == 0.0).
    assert torch.equal(torch.signbit(fused_grad), torch.signbit(reference_grad))


@pytest.mark.parametrize("shared_mask, sparse", [(False, True), (False, False), (True, True)])
def test_relu_flag_keeps_nothing_for_backward_but_the_output(monkeypatch, shared_mask, sparse):
    # Unfused, autograd kept relu(x) (4 bytes per element in fp32) beside the mask or seeds:
    # one activation more than the stock conv+norm+ReLU. The output is the next layer's input.
    if not sparse:
        monkeypatch.setattr(drop_block_module, "_SPARSE_APPLY_MAX_GAMMA", -1.0)
    x = torch.randn(2, 8, 20, 20, requires_grad=True)
    out, saved = saved_for_backward(lambda: drop_block_2d(x, 0.8, 5, shared_mask=shared_mask, impl="torch", relu=True))
    assert len(saved) == 1 and saved[0].untyped_storage().data_ptr() == out.untyped_storage().data_ptr()
    out.sum().backward()
    assert x.grad.any()
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        out2 = drop_block_2d(x, 0.8, 5, shared_mask=shared_mask, impl="torch", relu=True)
        out2.add_(1.0).sum().backward()


def test_gradient_of_the_gradient_through_the_relu_flag_is_the_unfused_one():
    x = torch.randn(2, 3, 9, 9, dtype=torch.float64, requires_grad=True)
    assert_second_order_matches_unfused_relu(
        lambda t: drop_block_2d(t, 0.8, 3, impl="torch", relu=True),
        lambda t: drop_block_2d(t, 0.8, 3, impl="torch"),
        x,
    )


def test_relu_flag_without_dropping_is_just_relu():
    x = torch.randn(2, 3, 6, 6)
    for kwargs in ({"keep_prob": 1.0}, {"keep_prob": 0.5, "training": False}):
        assert torch.equal(drop_block_2d(x, block_size=3, relu=True, **kwargs), torch.relu(x))
    with pytest.raises(ValueError, match="relu.*'yes'"):
        drop_block_2d(x, 0.9, 3, relu="yes")


@pytest.mark.parametrize("shared_mask", [False, True])
def test_residual_is_exactly_relu_of_residual_plus_dropblock_output_and_gradients(shared_mask):
    x, residual = torch.randn(2, 5, 12, 10), torch.randn(2, 5, 12, 10)
    grad = torch.randn(x.shape)
    results = []
    for fused in (True, False):
        leaves = x.clone().requires_grad_(True), residual.clone().requires_grad_(True)
        torch.manual_seed(4)
        if fused:
            out = drop_block_2d(leaves[0], 0.8, 3, shared_mask, impl="torch", residual=leaves[1])
        else:
            out = torch.relu(leaves[1] + drop_block_2d(leaves[0], 0.8, 3, shared_mask, impl="torch"))
        out.backward(grad)
        results.append((out.detach(), leaves[0].grad, leaves[1].grad))
    for fused, reference in zip(*results):
        assert torch.equal(fused, reference)
    assert not torch.equal(results[0][0], torch.relu(x + residual))


def test_residual_needs_a_tensor_and_excludes_relu():
    x = torch.randn(2, 3, 6, 6)
    with pytest.raises(ValueError, match="residual cannot be combined with relu=True"):
        drop_block_2d(x, 0.9, 3, relu=True, residual=x)
    with pytest.raises(ValueError, match="residual must be a tensor, got float"):
        drop_block_2d(x, 0.9, 3, residual=1.0)
    assert torch.equal(drop_block_2d(x, 1.0, 3, residual=x), torch.relu(x + x))


@pytest.mark.parametrize("residual_shape", [(4, 3, 6, 6), (2, 3, 6, 1), (2, 3, 5, 6)])
@pytest.mark.parametrize("keep_prob", [0.9, 1.0])
def test_residual_of_another_shape_is_refused_not_broadcast(residual_shape, keep_prob):
    # A broadcastable residual would silently return a tensor larger than x (or, dropping
    # or not, one that mixes samples); the error names both shapes.
    x, residual = torch.randn(2, 3, 6, 6), torch.randn(residual_shape)
    named = rf"residual must have x's shape \(2, 3, 6, 6\), got {re.escape(str(residual_shape))}"
    with pytest.raises(ValueError, match="drop_block_2d: " + named):
        drop_block_2d(x, keep_prob, 3, residual=residual)
    with pytest.raises(ValueError, match="drop_block_2d: " + named):  # training=False too
        drop_block_2d(x, keep_prob, 3, training=False, residual=residual)
    with pytest.raises(ValueError, match="drop_block_2d: residual cannot be combined with relu=True"):
        drop_block_2d(x, keep_prob, 3, training=False, relu=True, residual=torch.randn(x.shape))
    module = DropBlock2d(keep_prob, 3).train()
    with pytest.raises(ValueError, match="DropBlock2d: " + named):
        module(x, residual=residual)
    with pytest.raises(ValueError, match="DropBlock2d: " + named):  # eval mode too: the identity path sums
        module.eval()(x, residual=residual)


# ---------------------------------------------------------------- implementation dispatch


def test_auto_on_cpu_uses_the_torch_reference(monkeypatch):
    def fail(*args, **kwargs):
        raise AssertionError("Triton path must not run for a CPU tensor under impl='auto'")

    monkeypatch.setattr(triton_path, "drop_block_2d_triton", fail)
    monkeypatch.setenv("TRITON_INTERPRET", "1")  # even when the interpreter could run it
    torch.manual_seed(0)
    auto = drop_block_2d(torch.ones(2, 3, 10, 10), 0.8, 3, impl="auto")
    torch.manual_seed(0)
    reference = drop_block_2d(torch.ones(2, 3, 10, 10), 0.8, 3, impl="torch")
    assert torch.equal(auto, reference)


def test_triton_path_chosen_by_impl_device_and_past_failures(monkeypatch):
    cpu, gpu = torch.device("cpu"), torch.device("cuda", 0)
    assert drop_block_module.triton_path_chosen(cpu, "triton")
    assert not drop_block_module.triton_path_chosen(cpu, "auto")
    monkeypatch.setattr(drop_block_module, "_triton_runs_on", lambda device: device.type == "cuda")
    monkeypatch.setattr(drop_block_module, "_TRITON_FAILED_ON", set())
    assert drop_block_module.triton_path_chosen(gpu, "auto") and not drop_block_module.triton_path_chosen(gpu, "torch")
    drop_block_module._TRITON_FAILED_ON.add(gpu)
    assert not drop_block_module.triton_path_chosen(gpu, "auto") and drop_block_module.triton_path_chosen(gpu, "triton")


def test_both_sided_residual_on_the_torch_path_is_the_two_modules_in_turn_and_nothing_more(monkeypatch):
    # On the PyTorch path the pair hook computes nothing of its own (no gamma for a Triton
    # call that will not happen): the modules run in turn, the residual's first.
    from dropblock_det.layers import regularize_add_relu

    on_x, on_residual = DropBlock2d(0.8, 3).train(), DropBlock2d(0.7, 5).train()
    x, residual = torch.randn(2, 4, 12, 12), torch.randn(2, 4, 12, 12)
    torch.manual_seed(0)
    expected = torch.relu(on_residual(residual) + on_x(x))

    def unexpected(*args, **kwargs):
        raise AssertionError("the pair hook prepared a Triton call on the PyTorch path")

    monkeypatch.setattr(DropBlock2d, "_gamma_and_block", unexpected)
    torch.manual_seed(0)
    assert torch.equal(regularize_add_relu(on_x, x, residual, on_residual), expected)


@pytest.fixture
def failing_triton_path(monkeypatch):
    """impl="auto" believes Triton runs on the CPU device, and the Triton path raises what
    `raises` holds (a build error by default); yields the list of its calls."""
    pytest.importorskip("triton")
    from triton.runtime.errors import OutOfResources

    calls = []
    raises = [OutOfResources(300_000, 232_448, "shared memory")]

    def fake(x, *args, **kwargs):
        calls.append(x.shape)
        raise raises[0]

    monkeypatch.setattr(drop_block_module, "_triton_runs_on", lambda device: True)
    monkeypatch.setattr(drop_block_module, "_TRITON_FAILED_ON", set())
    monkeypatch.setattr(triton_path, "drop_block_2d_triton", fake)
    return calls, raises


# Triton >= 3.3's OutOfResources (the fixture's), and Triton 3.2's ptxas failure, a
# RuntimeError (its bf16 conversions on sm_70 / sm_75, `tools/check_triton_versions.py`).
OLD_PTXAS_ERROR = RuntimeError("Internal Triton PTX codegen error\n`ptxas` stderr:\nptxas /tmp/k.ptx, line 113; error   : "
                               "Feature '.bf16' requires .target sm_80 or higher\n")


# A compiler pass failing (libtriton's C++ error, a plain RuntimeError), and the driver
# refusing the built module's image (Triton's launcher utilities: "Triton Error [CUDA]: "
# and the driver's message).
PASS_MANAGER_ERROR = RuntimeError("PassManager::run failed")
INVALID_IMAGE_ERROR = RuntimeError("Triton Error [CUDA]: device kernel image is invalid")
NO_IMAGE_ERROR = RuntimeError("Triton Error [CUDA]: no kernel image is available for execution on the device")
# Triton's launcher is built with the machine's C compiler at the first launch: none on
# PATH (Triton's own message), or one that fails (no Python.h without python3-dev).
NO_C_COMPILER_ERROR = RuntimeError("Failed to find C compiler. Please specify via CC environment variable or set "
                                   "triton.knobs.build.impl.")
C_COMPILER_FAILED_ERROR = subprocess.CalledProcessError(1, ["gcc", "/tmp/cuda_utils.c", "-O3", "-shared"])
BUILD_ERRORS = [(None, r"OutOfResources: .*shared memory"),
                (NO_C_COMPILER_ERROR, r"RuntimeError: Failed to find C compiler"),
                (C_COMPILER_FAILED_ERROR, r"CalledProcessError: Command '\['gcc'"),
                (OLD_PTXAS_ERROR, r"RuntimeError: Internal Triton PTX codegen error"),
                (PASS_MANAGER_ERROR, r"RuntimeError: PassManager::run failed"),
                (INVALID_IMAGE_ERROR, r"RuntimeError: Triton Error \[CUDA\]: device kernel image is invalid"),
                (NO_IMAGE_ERROR, r"RuntimeError: Triton Error \[CUDA\]: no kernel image is available")]
# Errors of a kernel's run, with Triton's prefix too (the launcher raises them), or torch's.
RUN_ERRORS = [RuntimeError("CUDA error: an illegal memory access was encountered"),
              RuntimeError("Triton Error [CUDA]: an illegal memory access was encountered"),
              RuntimeError("Triton Error [CUDA]: unspecified launch failure"),
              RuntimeError("Triton Error [CUDA]: out of memory")]


@pytest.mark.parametrize("error, named", BUILD_ERRORS)
def test_auto_falls_back_to_torch_with_one_warning_when_triton_cannot_build(failing_triton_path, error, named):
    calls, raises = failing_triton_path
    raises[0] = error or raises[0]
    x = torch.ones(2, 3, 10, 10)
    torch.manual_seed(0)
    with pytest.warns(RuntimeWarning, match=rf"cpu \({named}.*MODEL\.DROPBLOCK\.IMPL"):
        auto = drop_block_2d(x, 0.8, 3, impl="auto")
    torch.manual_seed(0)
    assert torch.equal(auto, drop_block_2d(x, 0.8, 3, impl="torch"))
    assert len(calls) == 1 and drop_block_module._TRITON_FAILED_ON == {x.device}
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no second warning, and no second try
        drop_block_2d(x, 0.8, 3, impl="auto")
    assert len(calls) == 1


def test_impl_triton_raises_the_build_error(failing_triton_path):
    from triton.runtime.errors import OutOfResources

    with pytest.raises(OutOfResources, match="shared memory"):
        drop_block_2d(torch.ones(2, 3, 10, 10), 0.8, 3, impl="triton")
    assert not drop_block_module._TRITON_FAILED_ON


@pytest.mark.parametrize("error", RUN_ERRORS, ids=str)
def test_auto_does_not_swallow_errors_other_than_build_errors(failing_triton_path, error):
    _, raises = failing_triton_path
    raises[0] = error
    with pytest.raises(RuntimeError) as raised:
        drop_block_2d(torch.ones(2, 3, 10, 10), 0.8, 3, impl="auto")
    assert raised.value is error
    assert not drop_block_module._TRITON_FAILED_ON


@pytest.mark.parametrize("error, named", BUILD_ERRORS)
def test_auto_computes_the_gradient_with_torch_ops_and_one_warning_when_a_backward_kernel_cannot_build(
        monkeypatch, error, named):
    # The backward kernels are built at the first backward: the handler that impl="auto"
    # passes the Triton path warns naming the error, and the gradient comes from torch ops.
    pytest.importorskip("triton")
    from triton.runtime.errors import OutOfResources

    error = error or OutOfResources(300_000, 232_448, "shared memory")
    monkeypatch.setattr(drop_block_module, "_TRITON_FAILED_ON", set())

    def kernels():
        raise error

    with pytest.warns(RuntimeWarning, match=rf"cpu \({named}.*saved mask with PyTorch ops.*MODEL\.DROPBLOCK\.IMPL"):
        got = triton_path._backward(torch.device("cpu"), drop_block_module._stop_using_triton_in_backward, kernels,
                                    lambda: "torch ops")
    assert got == "torch ops" and drop_block_module._TRITON_FAILED_ON == {torch.device("cpu")}


@pytest.mark.parametrize("error", RUN_ERRORS, ids=str)
def test_a_backward_kernel_error_other_than_a_build_error_is_raised(monkeypatch, error):
    pytest.importorskip("triton")
    monkeypatch.setattr(drop_block_module, "_TRITON_FAILED_ON", set())

    def kernels():
        raise error

    with pytest.raises(RuntimeError) as raised:
        triton_path._backward(torch.device("cpu"), drop_block_module._stop_using_triton_in_backward, kernels,
                              lambda: pytest.fail("fell back to torch ops"))
    assert raised.value is error and not drop_block_module._TRITON_FAILED_ON


@pytest.mark.cuda
def test_torch_reference_on_cuda_builds_the_mask_on_the_device():
    torch.manual_seed(0)
    x = torch.ones(2, 4, 16, 16, device="cuda", requires_grad=True)
    out = drop_block_2d(x, 0.8, 3, impl="torch")
    assert out.device == x.device
    out.sum().backward()
    assert torch.equal(x.grad, out.detach())
    assert out.mean().item() == pytest.approx(1.0, rel=1e-5)


def test_calibrated_gamma_is_cached_per_shape():
    drop_block_module._calibrated_gamma.cache_clear()
    drop_block_gamma(0.9, 5, 21, 19, gamma_mode="calibrated")
    drop_block_gamma(0.9, 5, 21, 19, gamma_mode="calibrated")
    info = drop_block_module._calibrated_gamma.cache_info()
    assert info.hits == 1 and info.misses == 1


def test_geometric_gap_sampler_matches_bernoulli_counts_and_covers_positions():
    # The sparse seed sampler must be exactly Bernoulli(gamma) per position: check the
    # count mean and variance, and that every position (first and last too) can be hit.
    torch.manual_seed(0)
    num_positions, gamma, trials = 500, 0.01, 4000
    counts = torch.zeros(num_positions)
    totals = []
    for _ in range(trials):
        seeds = drop_block_module._sample_seed_positions(num_positions, gamma, torch.device("cpu"))
        assert torch.equal(seeds, seeds.unique())  # distinct, ascending
        counts[seeds] += 1
        totals.append(seeds.numel())
    totals = torch.tensor(totals, dtype=torch.float64)
    mean, var = num_positions * gamma, num_positions * gamma * (1 - gamma)
    assert totals.mean().item() == pytest.approx(mean, abs=4.5 * math.sqrt(var / trials))
    assert totals.var().item() == pytest.approx(var, rel=0.15)
    assert counts[0] > 0 and counts[-1] > 0
    # per-position hit rate is flat: compare the two halves of the range
    first, second = counts[: num_positions // 2].sum(), counts[num_positions // 2 :].sum()
    assert abs(first - second) < 4.5 * math.sqrt(first + second)


def test_inf_under_a_dropped_unit_gives_zero_not_nan():
    torch.manual_seed(5)
    mask_probe = drop_block_2d(torch.ones(2, 3, 12, 12), 0.7, 3)
    dropped = mask_probe == 0
    assert dropped.any()
    x = torch.ones(2, 3, 12, 12)
    x[dropped] = float("inf")
    x.requires_grad_(True)
    torch.manual_seed(5)
    out = drop_block_2d(x, 0.7, 3)
    assert torch.isfinite(out).all() and (out[dropped] == 0).all()
    grad = torch.ones_like(out)
    grad[dropped] = float("nan")
    out.backward(grad)
    assert torch.isfinite(x.grad).all()


def _layouts():
    base = torch.rand(4, 16, 30, 26) + 0.5
    return {
        "contiguous": base,
        "channels_last": base.to(memory_format=torch.channels_last),
        "non_contiguous": (torch.rand(4, 32, 31, 52) + 0.5)[:, ::2, 1:, ::2],
    }


@pytest.mark.parametrize("layout", ["contiguous", "channels_last", "non_contiguous"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16, torch.float64])
def test_seed_path_and_mask_path_give_identical_outputs_and_gradients(monkeypatch, layout, dtype):
    # Per-channel masks with sparse seeds are applied from the seeds' offsets; everything
    # else through the bool mask. Both must produce the same values for the same draw.
    x = _layouts()[layout].to(dtype)
    grad = torch.randn(x.shape, dtype=dtype).to(memory_format=torch.channels_last)

    def run():
        leaf = x.detach().clone().requires_grad_(True)  # clone keeps the layout
        torch.manual_seed(11)
        out = drop_block_2d(leaf, 0.85, 5)
        out.backward(grad)
        return out.detach(), leaf.grad

    used = []
    original = drop_block_module._DropBlockFromSeeds.apply
    monkeypatch.setattr(
        drop_block_module._DropBlockFromSeeds, "apply", lambda *a: used.append(1) or original(*a)
    )
    seed_out, seed_grad = run()
    assert len(used) == 2, "the seed path must be taken for sparse per-channel seeds (forward and backward)"
    monkeypatch.setattr(drop_block_module, "_SPARSE_APPLY_MAX_GAMMA", -1.0)
    mask_out, mask_grad = run()
    assert len(used) == 2
    assert torch.equal(seed_out, mask_out) and torch.equal(seed_grad, mask_grad)
    assert (seed_out == 0).any()
    assert seed_grad.stride() == x.detach().clone().stride()  # gradient in x's layout
    if layout == "channels_last":
        assert seed_out.is_contiguous(memory_format=torch.channels_last)


def test_seed_path_gradient_with_an_expanded_output_gradient():
    torch.manual_seed(0)
    x = torch.ones(4, 16, 24, 24, requires_grad=True)
    out = drop_block_2d(x, 0.9, 7)
    out.sum().backward()  # grad_output is an expanded scalar (all strides 0)
    assert torch.equal(x.grad, out.detach())


@pytest.mark.parametrize("fn, args, named", [
    (drop_block_gamma, (0.9, 7, 0, 5), "height"), (drop_block_gamma, (0.9, 7, 5, 5.5), "width"),
    (drop_block_gamma, (0.9, 7, -3, 5), "height"), (expected_drop_fraction, (0.1, 3, 8, True), "width"),
    (expected_drop_fraction, (-0.5, 3, 8, 8), "gamma"), (expected_drop_fraction, (float("nan"), 3, 8, 8), "gamma"),
    (expected_drop_fraction, ("0.1", 3, 8, 8), "gamma"), (expected_drop_fraction, (True, 3, 8, 8), "gamma"),
    (expected_drop_fraction, (1.5, 3, 8, 8), "gamma"),
    (clip_block_size, (0, 3, 10), "block_size"), (clip_block_size, (7, -3, 10), "height"),
    (clip_block_size, (7, 3, 2.5), "width"),
    (drop_block_gamma, (0.0, 7, 5, 5), "keep_prob"), (drop_block_gamma, (0.9, 0, 5, 5), "block_size"),
    (drop_block_gamma, (0.9, 7, 5, 5, "exact"), "gamma_mode"),
])
def test_the_public_gamma_helpers_name_an_impossible_map_size_or_gamma(fn, args, named):
    # Public helpers (for analyses): a wrong size must not come back as a plausible number.
    with pytest.raises(ValueError, match=rf"^{named} must be"):
        fn(*args)


def test_the_gamma_helpers_take_the_ends_of_their_ranges():
    # gamma 0 and 1 are seed probabilities like any other (nothing dropped, every unit
    # dropped: 1 - 0**k read through log1p(-1) would raise); keep_prob 1, a ramp's start,
    # seeds nothing in either mode.
    for block_size, height, width in ((3, 8, 8), (7, 5, 3), (4, 13, 17)):
        assert expected_drop_fraction(0.0, block_size, height, width) == 0.0
        assert expected_drop_fraction(1.0, block_size, height, width) == 1.0
        for gamma_mode in ("paper", "calibrated"):
            assert drop_block_gamma(1.0, block_size, height, width, gamma_mode=gamma_mode) == 0.0


@pytest.mark.parametrize("shared_mask, sparse", [(False, True), (False, False), (True, True)])
def test_gradient_of_the_gradient_is_the_same_mask_and_scale_on_every_torch_path(monkeypatch, shared_mask, sparse):
    # Per-channel sparse seeds (the seed path), dense seeds and shared masks (masked_scale)
    # must all be twice differentiable: d(grad)/d(grad_output) = keep * scale.
    if not sparse:
        monkeypatch.setattr(drop_block_module, "_SPARSE_APPLY_MAX_GAMMA", -1.0)
    x = torch.randn(2, 3, 9, 9, dtype=torch.float64, requires_grad=True)
    torch.manual_seed(1)
    out = drop_block_2d(x, 0.8, 3, shared_mask=shared_mask)
    v = torch.randn_like(out, requires_grad=True)
    (grad,) = torch.autograd.grad(out, x, v, create_graph=True)
    (grad_v,) = torch.autograd.grad(grad.sum(), v)

    def with_fixed_seed(t):
        torch.manual_seed(1)
        return drop_block_2d(t, 0.8, 3, shared_mask=shared_mask)

    keep_times_scale = with_fixed_seed(torch.ones_like(x))  # the same draw
    assert torch.equal(grad_v, keep_times_scale) and (grad_v == 0).any()

    assert torch.autograd.gradgradcheck(with_fixed_seed, (x,))


def test_tracing_an_active_dropblock_raises_a_clear_error_and_eval_mode_traces():
    module = DropBlock2d(0.8, 3).train()
    x = torch.randn(2, 3, 9, 9)
    with pytest.raises(RuntimeError, match=r"DropBlock2d cannot be traced or exported in training mode.*model\.eval\(\)"):
        torch.jit.trace(module, (x,), check_trace=False)
    traced = torch.jit.trace(module.eval(), (x,), check_trace=False)
    assert torch.equal(traced(x), x)


def test_the_function_refuses_a_training_trace_at_keep_prob_1_too():
    # A trace at a ramp's first iteration (keep_prob 1) would record the identity, and the
    # ramp's later keep_prob would never reach it.
    x = torch.randn(2, 3, 9, 9)
    for keep_prob in (1.0, 0.8):
        with pytest.raises(RuntimeError, match=r"DropBlock cannot be traced or exported in training mode"):
            torch.jit.trace(lambda t: drop_block_2d(t, keep_prob, 3), (x,), check_trace=False)
    traced = torch.jit.trace(lambda t: drop_block_2d(t, 0.8, 3, training=False) * 2, (x,), check_trace=False)
    assert torch.equal(traced(x), x * 2)
@pytest.mark.parametrize("shape, block_size", [((1, 1, 3, 3), 3), ((1, 2, 4, 4), 3)])
def test_tiny_tensor_keeps_the_bool_mask_not_more_offsets_than_elements(shape, block_size):
    # A block's offsets alone are 8 * bh * bw bytes: on a map this small the seed path
    # would keep more than 1 byte per element, so the bool mask must be kept instead.
    torch.manual_seed(0)
    for _ in range(20):  # every draw (0 or more seeds) must respect the bound
        x = torch.randn(*shape, requires_grad=True)
        saved = []

        def pack(t):
            saved.append(t)
            return t

        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            out = drop_block_2d(x, 0.9, block_size)
        assert all(not t.is_floating_point() for t in saved)
        assert sum(t.numel() * t.element_size() for t in saved) <= x.numel()
        out.sum().backward()


@pytest.mark.parametrize("shared_mask", [False, True])
def test_torch_compile_draws_the_eager_mask_and_gradient_and_is_identity_in_eval(shared_mask):
    # torch.compile (graph capture and AOT autograd; "aot_eager" needs no C compiler) must
    # neither change the draw nor the gradient: the seed sampling runs eagerly in a graph break.
    torch._dynamo.reset()
    module = DropBlock2d(0.8, 3, shared_mask=shared_mask).train()
    compiled = torch.compile(module, backend="aot_eager")
    x = torch.randn(2, 4, 10, 10)
    grads = []
    outs = []
    for fn in (module, compiled):
        leaf = x.clone().requires_grad_(True)
        torch.manual_seed(0)
        out = fn(leaf)
        out.backward(torch.arange(out.numel(), dtype=out.dtype).view_as(out))
        outs.append(out.detach())
        grads.append(leaf.grad)
    assert (outs[0] == 0).any() and (outs[0] != 0).any()
    assert torch.equal(outs[0], outs[1]) and torch.equal(grads[0], grads[1])
    compiled.eval()
    assert torch.equal(compiled(x), x)


# --- mutation run 54 ---


def test_sparse_seeds_are_drawn_through_gaps_not_one_uniform_per_position(monkeypatch):
    # The module's speed claim: at the paper's setting (block 7, keep_prob 0.9: gamma ~0.002)
    # the sampler draws about gamma * positions geometric gaps, not one uniform per position
    # (the obvious implementation, most of DropBlock's cost); above _DENSE_SEED_RATE it does.
    uniforms = []
    real_rand = torch.rand

    def counting_rand(*args, **kwargs):
        out = real_rand(*args, **kwargs)
        uniforms.append(out.numel())
        return out

    monkeypatch.setattr(torch, "rand", counting_rand)
    torch.manual_seed(0)
    out = drop_block_2d(torch.ones(2, 64, 28, 28), 0.9, 7, impl="torch")
    assert (out == 0).any()
    assert uniforms == []
    positions = 10_000
    drop_block_module._sample_seed_positions(positions, 0.5, torch.device("cpu"))
    assert uniforms == [positions]


# --- coverage audit 55 ---
@pytest.mark.skipif(torch.cuda.is_available(), reason="the message for a machine without CUDA")
def test_impl_triton_on_cuda_without_a_cuda_device_says_torch_sees_none():
    from dropblock_det.layers import triton_unavailable_reason

    assert triton_unavailable_reason("cuda") == "torch sees no CUDA device here"


def test_triton_kernels_that_do_not_import_are_named_and_leave_impl_auto_on_pytorch(monkeypatch):
    # A Triton too old for the kernels: impl="triton" names it, impl="auto" uses PyTorch.
    import sys

    import dropblock_det.layers as layers

    monkeypatch.delattr(layers, "drop_block_triton", raising=False)
    monkeypatch.setitem(sys.modules, "dropblock_det.layers.drop_block_triton", None)
    assert drop_block_module.triton_unavailable_reason("cuda").startswith("the Triton kernels do not import here (")
    assert drop_block_module._triton_runs_on(torch.device("cuda")) is False
