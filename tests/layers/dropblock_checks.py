"""Independent reference computations for the DropBlock tests (no library code used).

Everything here is derived from the definition: anchors (i, j) with 0 <= i <= H - bh,
0 <= j <= W - bw; a seed drops rows i..i+bh-1, cols j..j+bw-1; seeds iid Bernoulli(gamma).
"""
from typing import Any, Callable, List, Tuple

import numpy as np
import torch


def paper_gamma(keep_prob: float, block_size: int, height: int, width: int) -> float:
    """Algorithm 1's gamma with the block clipped to the map, written out from the paper."""
    bh, bw = min(block_size, height), min(block_size, width)
    return (1 - keep_prob) / (bh * bw) * (height * width) / ((height - bh + 1) * (width - bw + 1))


def _anchor_range(length: int, block: int) -> Tuple[np.ndarray, np.ndarray]:
    """For each position, the first and last anchor whose block covers it."""
    pos = np.arange(length)
    return np.maximum(0, pos - block + 1), np.minimum(pos, length - block)


def _overlap(lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """[p, q]: how many anchors cover both positions p and q along one axis."""
    return np.clip(np.minimum(hi[:, None], hi[None, :]) - np.maximum(lo[:, None], lo[None, :]) + 1, 0, None)


def drop_probability_per_position(gamma: float, block_size: int, height: int, width: int) -> np.ndarray:
    """(height, width): the exact probability that each unit is dropped, 1 - (1 - g)^|A_u|,
    |A_u| the anchors whose block covers it (fewer at the borders)."""
    bh, bw = min(block_size, height), min(block_size, width)
    row_lo, row_hi = _anchor_range(height, bh)
    col_lo, col_hi = _anchor_range(width, bw)
    k = np.outer(row_hi - row_lo + 1, col_hi - col_lo + 1).astype(np.float64)
    return 1 - (1 - gamma) ** k


def drop_fraction_mean_and_variance(
    gamma: float, block_size: int, height: int, width: int
) -> Tuple[float, float]:
    """Exact mean and variance of the dropped fraction of one (height, width) map.

    A unit u is kept iff none of its A_u covering anchors fires: P = (1 - g)^|A_u|. Two
    units are both kept with probability (1 - g)^|A_u U A_v|, which gives the covariances.
    """
    bh, bw = min(block_size, height), min(block_size, width)
    row_lo, row_hi = _anchor_range(height, bh)
    col_lo, col_hi = _anchor_range(width, bw)
    row_k, col_k = row_hi - row_lo + 1, col_hi - col_lo + 1
    row_inter = _overlap(row_lo, row_hi)
    col_inter = _overlap(col_lo, col_hi)
    k = (row_k[:, None] * col_k[None, :]).ravel().astype(np.float64)
    inter = (row_inter[:, None, :, None] * col_inter[None, :, None, :]).reshape(height * width, -1)
    kept = (1 - gamma) ** k
    both_kept = (1 - gamma) ** (k[:, None] + k[None, :] - inter)
    # Cov(dropped_u, dropped_v) = Cov(kept_u, kept_v)
    cov = both_kept - kept[:, None] * kept[None, :]
    n = height * width
    return float(1 - kept.mean()), float(cov.sum() / n**2)


def assert_dropped_units_form_full_blocks(dropped: torch.Tensor, block_size: int) -> None:
    """Every dropped unit of (N, C, H, W) lies in a fully dropped clipped block inside the
    map: the union of all fully dropped anchor blocks equals the dropped set."""
    _, _, h, w = dropped.shape
    bh, bw = min(block_size, h), min(block_size, w)
    vh, vw = h - bh + 1, w - bw + 1
    full = torch.ones_like(dropped[..., :vh, :vw])
    for di in range(bh):
        for dj in range(bw):
            full &= dropped[..., di : di + vh, dj : dj + vw]
    covered = torch.zeros_like(dropped)
    for di in range(bh):
        for dj in range(bw):
            covered[..., di : di + vh, dj : dj + vw] |= full
    assert torch.equal(covered, dropped), "a dropped unit is not inside a full block in the map"


def saved_for_backward(call: Callable[[], Any]) -> Tuple[Any, List[torch.Tensor]]:
    """(call(), the tensors autograd saved for its backward), through saved_tensors_hooks."""
    saved: List[torch.Tensor] = []
    with torch.autograd.graph.saved_tensors_hooks(lambda t: saved.append(t) or t, lambda t: t):
        out = call()
    return out, saved


def assert_second_order_matches_unfused_relu(fused: Callable[[torch.Tensor], torch.Tensor],
                                             unfused: Callable[[torch.Tensor], torch.Tensor],
                                             x: torch.Tensor) -> None:
    """fused(x) is a regularizer of relu(x) and unfused(t) the same regularizer of t, both
    drawing their mask after torch.manual_seed(1): the gradient of the gradient (x float64,
    requiring grad) is the same bit for bit, and fused passes gradgradcheck."""
    grads = []
    for fn in (fused, lambda t: unfused(torch.relu(t))):
        torch.manual_seed(1)
        out = fn(x)
        v = torch.randn_like(out, requires_grad=True)
        (grad,) = torch.autograd.grad(out, x, v, create_graph=True)
        grads.append(torch.autograd.grad(grad.sum(), v)[0])
    assert torch.equal(grads[0], grads[1]) and (grads[0] == 0).any() and (grads[0] > 0).any()

    def seeded(t: torch.Tensor) -> torch.Tensor:
        torch.manual_seed(1)
        return fused(t)

    assert torch.autograd.gradgradcheck(seeded, (x,))
