"""Dropout, SpatialDropout, DropPath: the paper's comparison family, same interface."""
import pytest
import torch
from dropblock_checks import assert_second_order_matches_unfused_relu, saved_for_backward

from dropblock_det.layers import (
    DropPath,
    Dropout,
    KeepProbRegularizer,
    SpatialDropout,
    drop_path,
    dropout,
    spatial_dropout,
)

FUNCTIONS = [dropout, spatial_dropout, drop_path]
MODULES = [Dropout, SpatialDropout, DropPath]


@pytest.mark.parametrize("module_cls", MODULES)
def test_modules_share_the_keep_prob_interface_and_have_no_state(module_cls):
    module = module_cls(keep_prob=0.8)
    assert isinstance(module, KeepProbRegularizer)
    assert module.keep_prob == module.target_keep_prob == 0.8
    assert module.state_dict() == {}
    assert "keep_prob=0.8" in repr(module)


@pytest.mark.parametrize("module_cls", MODULES)
def test_eval_mode_and_keep_prob_one_are_identity(module_cls):
    x = torch.randn(4, 3, 5, 5)
    module = module_cls(keep_prob=0.5).eval()
    assert module(x) is x
    module.train()
    module.keep_prob = 1.0
    assert module(x) is x


def test_dropout_drops_elements_independently_with_inverted_scaling():
    torch.manual_seed(0)
    x = torch.ones(64, 16, 32, 32)
    out = dropout(x, 0.8)
    kept = out != 0
    torch.testing.assert_close(out.unique(), torch.tensor([0.0, 1.25]))
    assert kept.float().mean().item() == pytest.approx(0.8, abs=0.005)
    assert out.mean().item() == pytest.approx(1.0, abs=0.01)
    # element-wise: neighbouring elements are not dropped together more than by chance
    both = (~kept[..., :-1] & ~kept[..., 1:]).float().mean().item()
    assert both == pytest.approx(0.04, abs=0.005)


def test_spatial_dropout_drops_whole_channels_per_sample():
    torch.manual_seed(0)
    x = torch.ones(256, 32, 6, 5)
    out = spatial_dropout(x, 0.75)
    per_channel = out.flatten(2)
    # every channel is all zero or all 1/keep_prob
    assert torch.equal(per_channel.amin(dim=2), per_channel.amax(dim=2))
    kept_channels = per_channel[..., 0] != 0
    assert kept_channels.float().mean().item() == pytest.approx(0.75, abs=0.02)
    torch.testing.assert_close(out.unique(), torch.tensor([0.0, 1 / 0.75]))
    # channels of one sample are drawn independently
    assert not torch.equal(kept_channels, kept_channels[:, :1].expand_as(kept_channels))


def test_drop_path_drops_whole_samples_and_rescales_survivors():
    torch.manual_seed(0)
    x = torch.ones(4000, 3, 2, 2)
    out = drop_path(x, 0.9)
    per_sample = out.flatten(1)
    assert torch.equal(per_sample.amin(dim=1), per_sample.amax(dim=1))
    assert (per_sample[:, 0] != 0).float().mean().item() == pytest.approx(0.9, abs=0.015)
    torch.testing.assert_close(out.unique(), torch.tensor([0.0, 1 / 0.9]))


def test_drop_path_inside_a_residual_keeps_the_shortcut():
    torch.manual_seed(0)
    shortcut = torch.full((512, 4), 2.0)
    branch = torch.ones(512, 4)
    out = shortcut + drop_path(branch, 0.5)
    dropped = (out == 2.0).all(dim=1)
    assert dropped.any() and (~dropped).any()
    torch.testing.assert_close(out[~dropped], torch.full_like(out[~dropped], 4.0))


@pytest.mark.parametrize("fn", FUNCTIONS)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16])
def test_dtype_is_preserved_and_gradient_is_grad_times_mask_times_scale(fn, dtype):
    torch.manual_seed(0)
    x = torch.ones(8, 4, 6, 6, dtype=dtype, requires_grad=True)
    out = fn(x, 0.7)
    assert out.dtype == dtype
    grad = torch.randn_like(out)
    out.backward(grad)
    keep = out.detach() != 0
    # scaled in fp32 (the scale 1 / 0.7 is not rounded to 16 bits first), then cast
    expected = (grad.float() * keep * (1 / 0.7)).to(dtype)
    torch.testing.assert_close(x.grad, expected, rtol=0, atol=0)


@pytest.mark.parametrize("fn", FUNCTIONS)
def test_a_keep_prob_whose_inverse_overflows_drops_to_zero_not_nan(fn):
    # 1 / 1e-40 is inf in fp32: uncapped, every dropped unit would be 0 * inf = NaN, in the
    # output and in the gradient.
    x = torch.randn(2, 3, 4, 4, requires_grad=True)
    torch.manual_seed(0)
    out = fn(x, 1e-40)
    out.backward(torch.ones_like(out))
    assert (out == 0).all() and (x.grad == 0).all()


@pytest.mark.parametrize("fn", FUNCTIONS)
def test_only_a_bool_mask_is_kept_for_backward(fn):
    x = torch.randn(4, 8, 10, 10, requires_grad=True)
    _, saved = saved_for_backward(lambda: fn(x, 0.7))
    assert saved and all(t.dtype == torch.bool for t in saved)
    assert sum(t.numel() for t in saved) <= x.numel()


def test_channels_last_layout_is_preserved_by_dropout():
    x = torch.randn(2, 8, 5, 5).to(memory_format=torch.channels_last)
    assert dropout(x, 0.5).is_contiguous(memory_format=torch.channels_last)


@pytest.mark.parametrize("fn", FUNCTIONS)
def test_same_seed_reproduces_the_mask(fn):
    x = torch.ones(16, 4, 3, 3)
    torch.manual_seed(7)
    first = fn(x, 0.5)
    torch.manual_seed(7)
    assert torch.equal(first, fn(x, 0.5))


@pytest.mark.parametrize("fn", FUNCTIONS)
@pytest.mark.parametrize(
    "kwargs",
    [{"keep_prob": 0.0}, {"keep_prob": 1.01}, {"keep_prob": None}, {"training": "yes"}, {"drop_prob": 0.1}],
)
def test_bad_arguments_raise_value_error_naming_them(fn, kwargs):
    args = {"keep_prob": 0.5}
    args.update(kwargs)
    with pytest.raises(ValueError) as info:
        fn(torch.ones(2, 2, 2, 2), **args)
    (name, value), = kwargs.items()
    assert name in str(info.value) and repr(value) in str(info.value)


def test_drop_path_needs_a_batch_dim():
    # A 0-d tensor has no sample to drop: named, not an IndexError from x.shape[0].
    with pytest.raises(ValueError, match=r"drop_path: x must have at least 1 dims, got shape \(\)"):
        drop_path(torch.tensor(1.0), 0.5)


def test_spatial_dropout_needs_a_channel_and_a_spatial_dim():
    with pytest.raises(ValueError, match=r"spatial_dropout.*\(4, 3\)"):
        spatial_dropout(torch.ones(4, 3), 0.5)


@pytest.mark.parametrize("module_cls", MODULES)
def test_modules_reject_unknown_arguments(module_cls):
    with pytest.raises(ValueError, match="drop_prob"):
        module_cls(keep_prob=0.9, drop_prob=0.1)


# ---------------------------------------------------------------- ReLU fused in (relu=True)


def _corner_case_input(dtype, channels_last):
    """(4, 6, 8, 8) of dtype with NaN, +-inf, +-0.0 and values whose product with the scale
    1 / 0.4 overflows the dtype (inf in fp32, saturated in fp16 / bf16), spread out so
    that some are kept and some dropped."""
    x = torch.randn(4, 6, 8, 8).to(dtype)
    flat = x.view(-1)
    flat[::7], flat[3::11], flat[5::13] = float("nan"), -0.0, 0.0
    flat[2::17], flat[4::19] = float("inf"), float("-inf")
    flat[6::23] = torch.finfo(dtype).max / 2
    return x.contiguous(memory_format=torch.channels_last) if channels_last else x


@pytest.mark.parametrize("module_cls", [Dropout, SpatialDropout])
@pytest.mark.parametrize(
    "dtype, channels_last",
    [(torch.float32, False), (torch.float32, True), (torch.float16, True), (torch.bfloat16, False)],
)
def test_relu_flag_is_exactly_the_regularizer_of_relu_output_and_gradient(module_cls, dtype, channels_last):
    # The fused backward reads the output, not relu(x) and the mask: NaN, +-inf, -0.0,
    # an overflowing kept unit and a positive unit that is dropped must give the unfused
    # gradient, and an overflowing gradient must stay inf (AMP's GradScaler looks for it).
    module = module_cls(0.4).train()
    x = _corner_case_input(dtype, channels_last)
    grad = torch.randn(x.shape)
    grad.view(-1)[1::5] = torch.finfo(dtype).max / 2  # * 2.5 overflows: inf, not saturated
    grad = grad.to(dtype)
    results = []
    for relu in (True, False):
        leaf = x.clone().requires_grad_(True)
        torch.manual_seed(4)
        out = module(leaf, relu=True) if relu else module(torch.relu(leaf))
        out.backward(grad)
        results.append((out.detach(), leaf.grad))
    (fused, fused_grad), (reference, reference_grad) = results
    assert fused.dtype == dtype and fused_grad.dtype == dtype
    assert fused.is_contiguous(memory_format=torch.channels_last) == channels_last
    assert fused.isnan().any() and (fused == torch.finfo(dtype).max).any() == (dtype != torch.float32)
    assert (fused == 0).sum() > (torch.relu(x) == 0).sum()
    torch.testing.assert_close(fused, reference, rtol=0, atol=0, equal_nan=True)
    torch.testing.assert_close(fused_grad, reference_grad, rtol=0, atol=0, equal_nan=True)
    # The signs of the zeros too (assert_close takes -0.0 == 0.0).
    assert torch.equal(torch.signbit(fused), torch.signbit(reference))
    assert torch.equal(torch.signbit(fused_grad), torch.signbit(reference_grad))
    # A kept NaN passes the gradient, as torch.relu's backward does; a dropped unit does not.
    assert (fused_grad[fused.isnan()] != 0).any() and (fused_grad == 0).sum() > (grad == 0).sum()
    assert fused_grad.isinf().any()


@pytest.mark.parametrize("module_cls", [Dropout, SpatialDropout])
def test_relu_flag_keeps_nothing_for_backward_but_the_output(module_cls):
    # Unfused, autograd kept relu(x) (4 bytes per element in fp32) beside the bool mask: one
    # activation more than the stock conv+norm+ReLU. The output is the next layer's input.
    module = module_cls(0.7).train()
    x = torch.randn(2, 8, 10, 10, requires_grad=True)
    out, saved = saved_for_backward(lambda: module(x, relu=True))
    assert len(saved) == 1 and saved[0].untyped_storage().data_ptr() == out.untyped_storage().data_ptr()
    out.sum().backward()
    assert x.grad.any()
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        module(x, relu=True).add_(1.0).sum().backward()


@pytest.mark.parametrize("module_cls", [Dropout, SpatialDropout])
def test_gradient_of_the_gradient_through_the_relu_flag_is_the_unfused_one(module_cls):
    module = module_cls(0.6).train()
    x = torch.randn(3, 4, 5, 5, dtype=torch.float64, requires_grad=True)
    assert_second_order_matches_unfused_relu(lambda t: module(t, relu=True), module, x)


@pytest.mark.parametrize("module_cls", [Dropout, SpatialDropout])
def test_relu_flag_without_dropping_is_just_relu(module_cls):
    x = torch.randn(2, 3, 6, 6, requires_grad=True)
    for module in (module_cls(0.5).eval(), module_cls(1.0).train()):
        out, saved = saved_for_backward(lambda: module(x, relu=True))
        assert torch.equal(out, torch.relu(x))
        (grad,) = torch.autograd.grad(out.sum(), x)
        assert torch.equal(grad, (x > 0).float())
        assert len(saved) == 1 and saved[0].dtype == x.dtype  # torch.relu's own output


# ---------------------------------------------------------------- pinned by a mutation run


@pytest.mark.parametrize("fn", FUNCTIONS)
def test_functions_return_their_input_when_not_training_or_at_keep_prob_one(fn):
    # The modules skip the call in these cases; a direct call must not drop anything either.
    x = torch.ones(4, 3, 5, 5, requires_grad=True)
    assert fn(x, 0.5, training=False) is x
    assert fn(x, 1.0) is x
    assert fn(x, 1.0, training=True) is x


@pytest.mark.parametrize("module_cls", MODULES)
def test_default_keep_prob_is_the_papers_0_9(module_cls):
    module = module_cls()
    assert module.keep_prob == module.target_keep_prob == 0.9


@pytest.mark.parametrize("fn, module_cls", list(zip(FUNCTIONS, MODULES)))
def test_each_module_in_training_draws_its_own_functions_mask(fn, module_cls):
    # DropPath in training is drop_path (whole samples), not another op of the family.
    x = torch.ones(32, 6, 3, 3)
    torch.manual_seed(3)
    expected = fn(x, 0.5)
    torch.manual_seed(3)
    assert torch.equal(module_cls(0.5).train()(x), expected)


@pytest.mark.parametrize(
    "fn, module_cls, smallest",
    [(dropout, Dropout, ()), (spatial_dropout, SpatialDropout, (8, 4, 5)), (drop_path, DropPath, (64,))],
)
def test_the_smallest_documented_shape_is_accepted(fn, module_cls, smallest):
    # Dropout: any shape (a 0-d tensor too); SpatialDropout: (N, C, L); DropPath: (N,).
    torch.manual_seed(0)
    x = torch.ones(smallest) if smallest else torch.tensor(1.0)
    for out in (fn(x, 0.5), module_cls(0.5).train()(x), module_cls(0.5).eval()(x)):
        assert out.shape == x.shape
    if fn is drop_path:  # one draw per sample of a (N,) input
        assert set(drop_path(x, 0.5).tolist()) == {0.0, 2.0}
    if fn is spatial_dropout:  # one draw per (sample, channel), shared along L
        out = spatial_dropout(x, 0.5)
        assert torch.equal(out.amin(dim=2), out.amax(dim=2))


@pytest.mark.parametrize("fn", FUNCTIONS)
def test_an_integer_tensor_is_refused_naming_the_function_and_the_dtype(fn):
    with pytest.raises(ValueError, match=rf"^{fn.__name__}: x must be a floating-point tensor, got dtype torch.int64"):
        fn(torch.ones(2, 2, 2, 2, dtype=torch.long), 0.5)
