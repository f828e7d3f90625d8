"""A regularizer after detectron2's conv+norm+ReLU module, with the ReLU handed to it.

The segmentation heads build their conv+norm+ReLU layers as one detectron2 `Conv2d(...,
norm=..., activation=F.relu)` (or a `DepthwiseSeparableConv2d` of two). Applying a
regularizer to that module's output makes autograd keep relu(x) for the regularizer beside
what the regularizer keeps; `conv_relu_then_regularize` runs the conv and norm without the
activation and hands the ReLU to the regularizer (`relu_then_regularize`), which keeps only
its output (DropBlock, Dropout, SpatialDropout). The values and gradients are those of the
separate ops.
"""
from typing import Optional

import torch
import torch.nn.functional as F
from detectron2.layers import Conv2d, DepthwiseSeparableConv2d
from torch import nn

from ..layers import KeepProbRegularizer, relu_then_regularize
from ..layers.base import has_module_hooks

__all__ = ["conv_relu_then_regularize"]

_RELUS = (F.relu, torch.relu)


def _ends_in_relu(conv: nn.Module) -> bool:
    """Whether conv is a detectron2 Conv2d whose forward is torch's conv, its norm, then ReLU.

    Not with a padding mode other than zeros (detectron2 ignores it, torch's conv applies it),
    nor with hooks, its own or global ones: they must see the module's own input and output,
    so it runs as a module.
    """
    return (type(conv) is Conv2d and conv.activation in _RELUS and conv.padding_mode == "zeros"
            and not has_module_hooks(conv))


def _conv_norm_without_relu(conv: nn.Module, x: torch.Tensor) -> Optional[torch.Tensor]:
    """conv(x) before its final ReLU, or None where it is not a conv+norm+ReLU that can be
    run so, exactly as conv(x) runs it (`_ends_in_relu`)."""
    if isinstance(conv, DepthwiseSeparableConv2d):
        # Its forward is pointwise(depthwise(x)): the depthwise conv runs as it is.
        if has_module_hooks(conv) or not _ends_in_relu(conv.pointwise):
            return None
        x, conv = conv.depthwise(x), conv.pointwise
    elif not _ends_in_relu(conv):
        return None
    # detectron2's Conv2d.forward is torch's conv (F.conv2d with the module's stride, padding,
    # dilation, groups), then norm, then activation, in v0.6 and main alike: torch's own
    # Conv2d.forward (its parent class) and the norm module give the first two, without
    # copying detectron2's forward or changing the module for the call.
    y = nn.Conv2d.forward(conv, x)
    return y if conv.norm is None else conv.norm(y)


def conv_relu_then_regularize(conv: nn.Module, regularizer: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """regularizer(conv(x)) for `conv` a detectron2 conv+norm+ReLU (`Conv2d` with activation
    F.relu, or a `DepthwiseSeparableConv2d` whose pointwise conv has it).

    While `regularizer` is an active `KeepProbRegularizer` (training mode, keep_prob < 1) the
    conv runs without its ReLU and the regularizer gets the ReLU (`relu_then_regularize`):
    autograd keeps the regularizer's output, not relu(x) as well; `conv`'s submodules (its
    norm) are called as modules, but not `conv` itself. Otherwise, and for any other
    `conv` or regularizer (or a conv with hooks, its own or torch's global module hooks),
    it is regularizer(conv(x)) as written: in eval mode the stock module runs unchanged.
    """
    if isinstance(regularizer, KeepProbRegularizer) and regularizer.active:
        y = _conv_norm_without_relu(conv, x)
        if y is not None:
            return relu_then_regularize(regularizer, y, inplace=True)
    return regularizer(conv(x))
