"""The unstructured and coarser relatives DropBlock is compared against in the paper.

All use the same `keep_prob` naming as DropBlock (probability that a unit survives) and
inverted scaling (survivors multiplied by 1 / keep_prob, so the expected output equals the
input and evaluation needs no rescaling):

* Dropout (Srivastava et al., JMLR 2014): every element independently.
* SpatialDropout (Tompson et al., CVPR 2015): whole channels, per sample.
* DropPath / stochastic depth (Larsson et al. "FractalNet", ICLR 2017; Huang et al.,
  ECCV 2016): a whole sample of a residual branch. Apply it to the branch before the
  addition, `out = shortcut + drop_path(branch)`; a dropped sample then passes through
  the shortcut alone.

Each keeps only a bool mask for backward (1 byte per element for Dropout, one byte per
channel or per sample for the others). `Dropout(x, relu=True)` and `SpatialDropout(x,
relu=True)` (after conv+norm+ReLU) keep nothing but the output, which the next layer keeps
anyway, not relu(x) and the mask (`relu_then_masked_scale`).
"""
from typing import Any, Callable, Tuple

import torch
from torch import Tensor

from .base import KeepProbRegularizer, check_keep_prob, masked_scale, reject_unknown_kwargs, relu_then_masked_scale

__all__ = ["dropout", "spatial_dropout", "drop_path", "Dropout", "SpatialDropout", "DropPath"]

_FP32_MAX = torch.finfo(torch.float32).max


def _check_tensor(x: Any, where: str, min_dim: int) -> None:
    if not isinstance(x, Tensor):
        raise ValueError(f"{where}: x must be a torch.Tensor, got {type(x).__name__}")
    if x.dim() < min_dim:
        raise ValueError(f"{where}: x must have at least {min_dim} dims, got shape {tuple(x.shape)}")
    if not x.is_floating_point():
        raise ValueError(f"{where}: x must be a floating-point tensor, got dtype {x.dtype}")


def _check_training(training: Any) -> bool:
    if not isinstance(training, bool):
        raise ValueError(f"training must be True or False, got {training!r}")
    return training


def _bernoulli_keep(shape: Tuple[int, ...], keep_prob: float, device: torch.device) -> Tensor:
    # Drawn straight into a bool tensor: no float mask is ever materialised.
    return torch.empty(shape, dtype=torch.bool, device=device).bernoulli_(keep_prob)


def _inverted_scale(keep_prob: float) -> float:
    """1 / keep_prob, capped at fp32's largest value: for keep_prob below ~3e-39 it would be
    inf in the fp32 product, and a dropped unit would come out as 0 * inf = NaN, not 0."""
    return min(1.0 / keep_prob, _FP32_MAX)


def dropout(x: Tensor, keep_prob: float, training: bool = True, **kwargs: Any) -> Tensor:
    """Element-wise inverted dropout: each element kept with probability keep_prob and
    scaled by 1 / keep_prob. x: any shape, floating; returns x's shape and dtype."""
    reject_unknown_kwargs("dropout", kwargs)
    _check_tensor(x, "dropout", 0)
    keep_prob = check_keep_prob(keep_prob)
    if not _check_training(training) or keep_prob == 1.0 or x.numel() == 0:
        return x
    # bernoulli_ into a tensor laid out like x, so the product keeps x's memory layout.
    keep = torch.empty_like(x, dtype=torch.bool).bernoulli_(keep_prob)
    return masked_scale(x, keep, _inverted_scale(keep_prob))


def spatial_dropout(x: Tensor, keep_prob: float, training: bool = True, **kwargs: Any) -> Tensor:
    """Drop whole channels: x (N, C, *spatial) with at least one spatial dim; one Bernoulli
    draw per (sample, channel), survivors scaled by 1 / keep_prob."""
    reject_unknown_kwargs("spatial_dropout", kwargs)
    _check_tensor(x, "spatial_dropout", 3)
    keep_prob = check_keep_prob(keep_prob)
    if not _check_training(training) or keep_prob == 1.0 or x.numel() == 0:
        return x
    shape = tuple(x.shape[:2]) + (1,) * (x.dim() - 2)
    return masked_scale(x, _bernoulli_keep(shape, keep_prob, x.device), _inverted_scale(keep_prob))


def drop_path(x: Tensor, keep_prob: float, training: bool = True, **kwargs: Any) -> Tensor:
    """Stochastic depth: drop the whole sample x[n] of a residual branch with probability
    1 - keep_prob, survivors scaled by 1 / keep_prob. x: (N, ...) with N the batch."""
    reject_unknown_kwargs("drop_path", kwargs)
    _check_tensor(x, "drop_path", 1)
    keep_prob = check_keep_prob(keep_prob)
    if not _check_training(training) or keep_prob == 1.0 or x.numel() == 0:
        return x
    shape = (x.shape[0],) + (1,) * (x.dim() - 1)
    return masked_scale(x, _bernoulli_keep(shape, keep_prob, x.device), _inverted_scale(keep_prob))


def _relu_then(fn: Callable[[Tensor, float], Tensor], x: Tensor, keep_prob: float) -> Tensor:
    """fn(relu(x), keep_prob) for dropout / spatial_dropout, keeping only the output for
    backward: values and gradients bit for bit those of the two ops."""
    return relu_then_masked_scale(x, lambda t: (fn(t, keep_prob), _inverted_scale(keep_prob)))


class Dropout(KeepProbRegularizer):
    """`dropout` as a schedulable module (identity in eval mode / at keep_prob 1)."""

    def __init__(self, keep_prob: float = 0.9, **kwargs: Any) -> None:
        reject_unknown_kwargs("Dropout", kwargs)
        super().__init__(keep_prob)

    def _check_input(self, x: Tensor) -> None:
        _check_tensor(x, "Dropout", 0)

    def _regularize(self, x: Tensor) -> Tensor:
        return dropout(x, self.keep_prob)

    def _regularize_relu(self, x: Tensor) -> Tensor:
        return _relu_then(dropout, x, self.keep_prob)


class SpatialDropout(KeepProbRegularizer):
    """`spatial_dropout` as a schedulable module: input (N, C, *spatial)."""

    def __init__(self, keep_prob: float = 0.9, **kwargs: Any) -> None:
        reject_unknown_kwargs("SpatialDropout", kwargs)
        super().__init__(keep_prob)

    def _check_input(self, x: Tensor) -> None:
        _check_tensor(x, "SpatialDropout", 3)

    def _regularize(self, x: Tensor) -> Tensor:
        return spatial_dropout(x, self.keep_prob)

    def _regularize_relu(self, x: Tensor) -> Tensor:
        return _relu_then(spatial_dropout, x, self.keep_prob)


class DropPath(KeepProbRegularizer):
    """`drop_path` as a schedulable module; wrap a residual branch, not the sum.

    keep_prob is 1 - drop path rate (MODEL.DROPBLOCK.DROP_PATH_RATE).
    """

    def __init__(self, keep_prob: float = 0.9, **kwargs: Any) -> None:
        reject_unknown_kwargs("DropPath", kwargs)
        super().__init__(keep_prob)

    def _check_input(self, x: Tensor) -> None:
        _check_tensor(x, "DropPath", 1)

    def _regularize(self, x: Tensor) -> Tensor:
        return drop_path(x, self.keep_prob)
