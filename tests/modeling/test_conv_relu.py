"""conv_relu_then_regularize: a regularizer handed the ReLU of detectron2's conv+norm+ReLU."""
import pytest
import torch
import torch.nn.functional as F
from detectron2.layers import Conv2d, DepthwiseSeparableConv2d

from conftest import backward_node_names
from dropblock_det.layers import Dropout
from dropblock_det.modeling.conv_relu import conv_relu_then_regularize


def _conv(**kwargs):
    torch.manual_seed(0)
    return Conv2d(4, 8, 3, padding=1, norm=torch.nn.GroupNorm(2, 8), **kwargs)


def _run(conv, regularizer, x):
    torch.manual_seed(1)
    return conv_relu_then_regularize(conv, regularizer, x)


@pytest.mark.parametrize("case", ["hooked", "gelu", "reflect"])
def test_convs_it_cannot_run_without_their_relu_exactly_run_as_modules(case):
    # A conv with hooks (they must see the module's own output, after its ReLU), another
    # activation, or a padding mode detectron2 ignores and torch's conv would apply: the
    # regularizer gets conv(x), unfused, with the same values as regularizer(conv(x)).
    seen = []
    conv = _conv(activation=F.gelu if case == "gelu" else F.relu,
                 padding_mode="reflect" if case == "reflect" else "zeros")
    if case == "hooked":
        conv.register_forward_hook(lambda module, args, out: seen.append(out))
    regularizer = Dropout(0.5).train()
    x = torch.randn(2, 4, 6, 6, requires_grad=True)
    out = _run(conv, regularizer, x)
    names = backward_node_names(out.sum())
    assert "_MaskedScaleBackward" in names and "_ReluThenMaskedScaleBackward" not in names
    torch.manual_seed(1)
    assert torch.equal(out, regularizer(conv(x)))
    if case == "hooked":
        assert len(seen) == 2 and torch.equal(seen[0], seen[1]) and seen[0].min() >= 0


def test_global_module_hooks_see_the_conv_as_a_module():
    # torch.nn.modules.module.register_module_forward_hook (a profiler's or an activation
    # logger's): every module call must reach it, so the conv runs as a module, unfused.
    conv, regularizer = _conv(activation=F.relu), Dropout(0.5).train()
    seen = []
    handle = torch.nn.modules.module.register_module_forward_hook(
        lambda module, args, out: seen.append(out) if module is conv else None)
    try:
        out = _run(conv, regularizer, torch.randn(2, 4, 6, 6))
    finally:
        handle.remove()
    assert len(seen) == 1 and seen[0].min() >= 0
    assert "_ReluThenMaskedScaleBackward" not in backward_node_names(out.sum())
    assert "_ReluThenMaskedScaleBackward" in backward_node_names(
        _run(conv, regularizer, torch.randn(2, 4, 6, 6)).sum())  # fused again once removed


@pytest.mark.parametrize("relu", [F.relu, torch.relu], ids=["F.relu", "torch.relu"])
def test_a_plain_relu_conv_is_fused_and_an_inactive_regularizer_gets_the_stock_module_output(relu):
    conv, regularizer = _conv(activation=relu), Dropout(0.5).train()
    x = torch.randn(2, 4, 6, 6)
    out = _run(conv, regularizer, x)
    assert "_ReluThenMaskedScaleBackward" in backward_node_names(out.sum())
    torch.manual_seed(1)
    assert torch.equal(out, regularizer(conv(x)))
    regularizer.eval()
    seen = []
    conv.register_forward_hook(lambda module, args, out: seen.append(out))
    assert _run(conv, regularizer, x) is seen[0]  # the stock module's output, not a copy


def test_a_conv2d_subclass_runs_its_own_forward():
    # Only detectron2's Conv2d itself is known to be conv, norm, ReLU; a subclass may do more.
    class Shifted(Conv2d):
        def forward(self, x):
            return super().forward(x) + 1.0

    torch.manual_seed(0)
    conv = Shifted(4, 8, 3, padding=1, norm=torch.nn.GroupNorm(2, 8), activation=F.relu)
    regularizer, x = Dropout(0.5).train(), torch.randn(2, 4, 6, 6)
    out = _run(conv, regularizer, x)
    torch.manual_seed(1)
    assert torch.equal(out, regularizer(conv(x)))


def _separable(activation1=F.relu, activation2=F.relu):
    torch.manual_seed(0)
    return DepthwiseSeparableConv2d(4, 8, norm1=lambda c: torch.nn.GroupNorm(2, c), activation1=activation1,
                                    norm2=lambda c: torch.nn.GroupNorm(2, c), activation2=activation2)


@pytest.mark.parametrize("case", ["fused", "no_pointwise_relu", "hooked"])
def test_depthwise_separable_conv_is_fused_only_where_its_pointwise_conv_ends_in_relu(case):
    # Fused: the depthwise conv runs as it is, the pointwise conv's ReLU goes to the regularizer.
    # Not where the pointwise conv has no ReLU (only the depthwise one), nor with hooks on the module.
    conv = _separable(activation2=None if case == "no_pointwise_relu" else F.relu)
    seen = []
    if case == "hooked":
        conv.register_forward_hook(lambda module, args, out: seen.append(out))
    regularizer, x = Dropout(0.5).train(), torch.randn(2, 4, 6, 6)
    out = _run(conv, regularizer, x)
    assert ("_ReluThenMaskedScaleBackward" in backward_node_names(out.sum())) == (case == "fused")
    torch.manual_seed(1)
    assert torch.equal(out, regularizer(conv(x)))
    if case == "hooked":
        assert len(seen) == 2 and torch.equal(seen[0], seen[1])


@pytest.mark.parametrize("regularizer", [Dropout(0.5).eval(), Dropout(1.0).train(), torch.nn.Dropout(0.5).train()],
                         ids=["eval", "keep_prob_1", "torch_dropout"])
def test_inactive_or_other_regularizers_get_the_conv_run_as_a_module(regularizer):
    conv, calls = _conv(activation=F.relu), []
    stock_forward = conv.forward

    def counted_forward(x):
        calls.append(x)
        return stock_forward(x)

    conv.forward = counted_forward  # no hook: the conv would otherwise be fused
    x = torch.randn(2, 4, 6, 6)
    out = _run(conv, regularizer, x)
    assert len(calls) == 1
    torch.manual_seed(1)
    assert torch.equal(out, regularizer(stock_forward(x)))
