"""conv_relu_then_regularize: a regularizer handed the ReLU of detectron2's conv+norm+ReLU."""
import pytest
import torch
import torch.nn.functional as F
from detectron2.layers import Conv2d

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


def test_a_plain_relu_conv_is_fused_and_an_inactive_regularizer_gets_the_stock_module_output():
    conv, regularizer = _conv(activation=F.relu), Dropout(0.5).train()
    x = torch.randn(2, 4, 6, 6)
    out = _run(conv, regularizer, x)
    assert "_ReluThenMaskedScaleBackward" in backward_node_names(out.sum())
    torch.manual_seed(1)
    assert torch.equal(out, regularizer(conv(x)))
    regularizer.eval()
    seen = []
    conv.register_forward_hook(lambda module, args, out: seen.append(out))
    assert _run(conv, regularizer, x) is seen[0]  # the stock module's output, not a copy
