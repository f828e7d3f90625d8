"""DropBlock (Ghiasi, Lin, Le, "DropBlock: A regularization method for convolutional
networks", NeurIPS 2018, arXiv 1810.12890), Algorithm 1, per sample and per channel.

Semantics of `drop_block_2d(x, keep_prob, block_size)` for x of shape (N, C, H, W):

* Block size per axis: bh = min(block_size, H), bw = min(block_size, W) (a block larger than
  the map is clipped, and the clipped sizes are the ones used in gamma).
* Seeds: independent Bernoulli(gamma) draws at every *valid* anchor (i, j),
  0 <= i <= H - bh, 0 <= j <= W - bw, separately for every (sample, channel) (or for every
  sample when `shared_mask=True`, one mask for all channels as timm does by default).
* A seed at (i, j) drops rows i .. i+bh-1 and columns j .. j+bw-1: the block is anchored at
  its top-left corner. For an odd block this is the paper's square centred on the seed
  i + bh//2 restricted to the valid centre region, relabelled; for an even block the block
  has no centre and this placement keeps it inside the map with no shift or crop, so the
  output shape is always the input shape and every dropped unit lies in a full bh x bw
  square inside the map.
* Output: where(mask, x, 0) * numel(mask) / (count_kept(mask) + eps), the scale and the
  product in fp32 (fp64 for fp64 input), the result cast to x.dtype (an fp16 count would
  overflow; eps = 1e-6 guards an all-dropped mask, whose output is then all zeros). In fp16
  and bf16 a kept unit that the scale pushes past the dtype's range saturates at its
  largest finite value (65504 in fp16) instead of becoming inf; the gradient is not
  saturated, so AMP's GradScaler still sees an overflow.

Gamma ("gamma_mode"):

* "paper" (default): Algorithm 1's formula with the clipped block,
  gamma = (1 - keep_prob) / (bh * bw) * H * W / ((H - bh + 1) * (W - bw + 1)).
  It ignores that blocks overlap, so the realised dropped fraction is a little below
  1 - keep_prob (17x13 map, block 3, keep_prob 0.75: 22.1% instead of 25%).
* "calibrated": gamma solved so that the *expected* dropped fraction is exactly
  1 - keep_prob for this map and block. A unit (i, j) covered by k(i, j) valid anchors is
  dropped with probability 1 - (1 - gamma)^k(i, j), with k(i, j) = rows(i) * cols(j) (the
  number of anchor rows / columns whose block covers i / j); the mean over the map is
  increasing in gamma, 0 at gamma = 0 and 1 at gamma = 1 (every unit is covered by some
  anchor), so a solution in [0, 1) always exists; it is found by bisection in float64 once
  per (H, W, bh, bw, keep_prob) and cached.

Speed: with block 7 and keep_prob 0.9 gamma is about 0.002, so drawing one random number per
element (the obvious implementation) is most of the cost. This implementation samples the
seeds as a Bernoulli process through its geometric gaps (exactly the same distribution,
about gamma * numel random numbers) and fills each seed's block into a bool mask by index
(the mask gives the kept count). Per-channel masks are then applied as a vectorised
`x * scale` followed by an indexed fill of the dropped blocks, in forward and backward,
and autograd keeps only the seeds' offsets (8 bytes per seed, far below 1 byte per
element); shared masks and dense seeds go through `masked_scale`, which keeps the bool
mask (1 byte per element, or 1/C for a shared mask). With `relu=True` (after conv+norm+ReLU)
only the output is kept, which the next layer keeps anyway: the ReLU's own saved output,
one more activation than the stock block's in-place ReLU, is not needed. On CUDA, `impl="auto"` uses the
fused Triton kernels of `drop_block_triton.py` when Triton is available and supports the
GPU (compute capability >= 7.0); where Triton fails to build them it warns once and falls
back to this path.
"""
import functools
import math
import warnings
from typing import Any, Optional, Set, Tuple

import numpy as np
import torch
from torch import Tensor

from .base import (
    KeepProbRegularizer,
    check_residual,
    check_keep_prob,
    is_integer,
    is_real_number,
    masked_scale,
    refuse_tracing_in_training,
    reject_unknown_kwargs,
    relu_then_masked_scale,
    saturating_cast,
)

__all__ = [
    "drop_block_2d",
    "DropBlock2d",
    "drop_block_gamma",
    "expected_drop_fraction",
    "clip_block_size",
    "GAMMA_MODES",
    "IMPLS",
    "NORMALIZER_EPS",
    "SUPPORTED_DTYPES",
    "triton_path_chosen",
]

GAMMA_MODES = ("paper", "calibrated")
IMPLS = ("auto", "torch", "triton")
# Added to the kept count before dividing; only matters when every unit is dropped.
NORMALIZER_EPS = 1e-6
# The dtypes both paths compute (fp16 / bf16 in fp32). is_floating_point() also admits the
# fp8 types, which neither path can apply a mask to (torch has no index_fill for them).
SUPPORTED_DTYPES = (torch.float32, torch.float16, torch.bfloat16, torch.float64)
# Above this seed rate, one uniform per valid anchor is cheaper than geometric gaps.
_DENSE_SEED_RATE = 0.25
# Per-channel masks with at most this seed rate (and at most 1 byte per element of seed
# offsets) are applied from the seeds; otherwise with the bool mask.
_SPARSE_APPLY_MAX_GAMMA = 0.125
# Block indices are built and filled in chunks of at most this many, which bounds the
# temporary index memory. Measured on a 2-core machine (benchmarks/bench_dropblock.py,
# 8x256x50x68, block 7): 2**17 fills about twice as fast as 2**15 when the machine is idle
# (2**15 stays below ATen's parallel grain size, so each fill runs on one thread) and was
# no slower with another process busy on one of the cores; 2**19 and more gain nothing.
_MAX_INDICES_PER_CHUNK = 1 << 17


def check_block_size(block_size: Any) -> int:
    """Return block_size as an int, or raise a ValueError naming it if it is not an int >= 1."""
    if not is_integer(block_size) or block_size < 1:
        raise ValueError(f"block_size must be an integer >= 1, got {block_size!r}")
    return int(block_size)


def check_gamma_mode(gamma_mode: Any) -> str:
    if gamma_mode not in GAMMA_MODES:
        raise ValueError(f"gamma_mode must be one of {GAMMA_MODES}, got {gamma_mode!r}")
    return gamma_mode


def check_impl(impl: Any) -> str:
    if impl not in IMPLS:
        raise ValueError(f"impl must be one of {IMPLS}, got {impl!r}")
    return impl


def _check_bool(value: Any, name: str) -> bool:
    if not isinstance(value, bool):
        raise ValueError(f"{name} must be True or False, got {value!r}")
    return value


def clip_block_size(block_size: int, height: int, width: int) -> Tuple[int, int]:
    """The block actually dropped on an (height, width) map: (min(b, H), min(b, W)).

    Raises:
        ValueError: naming block_size (an int >= 1), height or width (ints >= 1).
    """
    _check_map_size(height, width)
    return _clip_block_size(check_block_size(block_size), height, width)


def _clip_block_size(block_size: int, height: int, width: int) -> Tuple[int, int]:
    # Unchecked, for arguments already checked (and a forward's own map size).
    return min(block_size, height), min(block_size, width)


def _paper_gamma(keep_prob: float, bh: int, bw: int, height: int, width: int) -> float:
    valid_anchors = (height - bh + 1) * (width - bw + 1)
    return (1.0 - keep_prob) / (bh * bw) * (height * width) / valid_anchors


def _coverage_histogram(length: int, block: int) -> Tuple[np.ndarray, np.ndarray]:
    """For each position along an axis, how many valid anchors' blocks cover it, as
    (distinct counts, how many positions have that count)."""
    positions = np.arange(length)
    last_anchor = length - block
    covering = np.minimum(positions, last_anchor) - np.maximum(0, positions - block + 1) + 1
    return np.unique(covering, return_counts=True)


@functools.lru_cache(maxsize=256)
def _coverage_table(height: int, width: int, bh: int, bw: int) -> Tuple[np.ndarray, np.ndarray]:
    """(k values, fraction of the map's units covered by exactly k anchors), k = rows * cols.
    Cached (a ramp's calibrated gamma asks again every iteration), so read-only."""
    row_k, row_n = _coverage_histogram(height, bh)
    col_k, col_n = _coverage_histogram(width, bw)
    k = np.outer(row_k, col_k).ravel().astype(np.float64)
    weight = np.outer(row_n, col_n).ravel().astype(np.float64) / (height * width)
    k.flags.writeable = weight.flags.writeable = False
    return k, weight


def _expected_fraction(k: np.ndarray, weight: np.ndarray, gamma: float) -> float:
    if gamma >= 1.0:
        return 1.0
    # 1 - (1 - g)^k through log1p: accurate for the tiny gammas of large maps.
    return float(np.sum(weight * -np.expm1(k * math.log1p(-gamma))))


def _check_map_size(height: Any, width: Any) -> None:
    for name, value in (("height", height), ("width", width)):
        if not is_integer(value) or value < 1:
            raise ValueError(f"{name} must be an int >= 1 (a feature map's size), got {value!r}")


def expected_drop_fraction(gamma: float, block_size: int, height: int, width: int) -> float:
    """Expected fraction of an (height, width) map that DropBlock drops at seed rate gamma.

    Closed form: mean over units of 1 - (1 - gamma)^k, k = number of valid anchors whose
    (clipped) block covers the unit. This is what the "calibrated" gamma inverts.
    """
    _check_map_size(height, width)
    # `not 0 <= gamma <= 1` is also true for NaN; a bool or a string is not a probability.
    if not is_real_number(gamma) or not 0.0 <= gamma <= 1.0:
        raise ValueError(f"gamma must be a number in [0, 1] (a seed probability), got {gamma!r}")
    bh, bw = _clip_block_size(check_block_size(block_size), height, width)
    k, weight = _coverage_table(height, width, bh, bw)
    return _expected_fraction(k, weight, float(gamma))


@functools.lru_cache(maxsize=1024)
def _calibrated_gamma(height: int, width: int, bh: int, bw: int, keep_prob: float) -> float:
    target = 1.0 - keep_prob
    if target <= 0.0:
        return 0.0
    k, weight = _coverage_table(height, width, bh, bw)
    # f(gamma), the expected fraction, is increasing and concave, so Newton's steps from 0
    # climb to the root from below: ~6 steps where halving [0, 1] takes ~60, and a ramp
    # asks for a new keep_prob every iteration, which the cache cannot answer.
    low, high, value = 0.0, 1.0, 0.0  # f(low) = value < target <= f(high)
    for _ in range(64):
        slope = float(np.sum(weight * k * np.exp((k - 1.0) * math.log1p(-low))))
        step = low + (target - value) / slope
        if not low < step < 1.0:
            break
        step_value = _expected_fraction(k, weight, step)
        if step_value >= target:  # past the root, by rounding
            high = step
            break
        low, value = step, step_value
    # Then a bracket a few ulps wide on the other side of the root, halved to the boundary
    # between f < target and f >= target, where halving [0, 1] ends too.
    gap = (low if high == 1.0 else high) * 2.0 ** -50
    from_below = high == 1.0
    while gap and low + gap < high - gap:
        probe = low + gap if from_below else high - gap
        if _expected_fraction(k, weight, probe) < target:
            low = probe
            if not from_below:
                break
        else:
            high = probe
            if from_below:
                break
        gap *= 16.0
    for _ in range(200):  # bisection: the interval halves each step, float64 exhausts first
        mid = 0.5 * (low + high)
        if mid in (low, high):
            break
        if _expected_fraction(k, weight, mid) < target:
            low = mid
        else:
            high = mid
    return high


def drop_block_gamma(
    keep_prob: float, block_size: int, height: int, width: int, gamma_mode: str = "paper"
) -> float:
    """Seed rate gamma of DropBlock on an (height, width) map (see the module docstring)."""
    keep_prob = check_keep_prob(keep_prob)
    _check_map_size(height, width)
    bh, bw = _clip_block_size(check_block_size(block_size), height, width)
    if check_gamma_mode(gamma_mode) == "paper":
        return _paper_gamma(keep_prob, bh, bw, height, width)
    return _calibrated_gamma(height, width, bh, bw, keep_prob)


def _sample_seed_positions(num_positions: int, gamma: float, device: torch.device) -> Tensor:
    """Ascending int64 indices in [0, num_positions) of iid Bernoulli(gamma) successes.

    For small gamma, the gaps between successes of a Bernoulli process are iid
    Geometric(gamma) on {1, 2, ...}: drawing the gaps and taking their running sum gives
    exactly the same distribution as one Bernoulli draw per position, with about
    gamma * num_positions random numbers instead of num_positions.
    """
    if num_positions == 0 or gamma <= 0.0 or device.type == "meta":
        # A meta tensor has no values (shapes only: a model built on the meta device), so
        # there is nothing to draw, and the sampler's host reads (`float`, `int`) would fail.
        return torch.empty(0, dtype=torch.long, device=device)
    if gamma >= 1.0:
        return torch.arange(num_positions, device=device)
    if gamma > _DENSE_SEED_RATE:
        return torch.nonzero(torch.rand(num_positions, device=device) < gamma).view(-1)
    chunks = []
    last = -1.0  # position of the last success so far
    while True:
        remaining = (num_positions - 1 - last) * gamma
        # Enough gaps to cover the rest in all but ~1e-9 of cases; the loop handles the rest.
        count = int(remaining + 6.0 * math.sqrt(remaining) + 16)
        # float64: gaps and positions stay exact integers up to 2**53.
        positions = torch.empty(count, dtype=torch.float64, device=device).geometric_(gamma)
        positions = positions.cumsum_(0).add_(last)
        chunks.append(positions)
        last = float(positions[-1])
        if last >= num_positions - 1:
            break
    positions = torch.cat(chunks) if len(chunks) > 1 else chunks[0]
    # Ascending, so the positions in range are a prefix: a binary search, not a mask.
    bound = torch.tensor([float(num_positions)], dtype=torch.float64, device=device)
    in_range = int(torch.searchsorted(positions, bound))
    return positions[:in_range].long()


class _SeedBlocks:
    """Where one DropBlock draw's blocks are: storage offsets of each seed's top-left unit
    (int64, K) plus the offsets of a block's units from its top-left (int64, bh * bw), in
    the memory layout of a dense tensor shaped like x."""

    def __init__(self, top_left: Tensor, block_offsets: Tensor) -> None:
        self.top_left = top_left
        self.block_offsets = block_offsets

    def fill(self, t: Tensor, value: float) -> None:
        """Set every unit of every block of the dense tensor t (offset 0) to `value`."""
        # A fresh dense tensor's storage is exactly numel elements from offset 0.
        flat = t.as_strided((t.numel(),), (1,))
        block = self.block_offsets.view(1, -1)
        seeds_per_chunk = max(1, _MAX_INDICES_PER_CHUNK // block.numel())
        for chunk in self.top_left.split(seeds_per_chunk):
            flat.index_fill_(0, (chunk[:, None] + block).view(-1), value)


def _drop_block_keep_mask(
    x: Tensor, gamma: float, bh: int, bw: int, shared_mask: bool
) -> Tuple[Tensor, _SeedBlocks]:
    """One DropBlock draw for x (N, C, H, W): the bool keep mask (True = kept) and the blocks.

    The mask is (N, C, H, W) with x's memory layout (channels_last stays channels_last), or
    (N, 1, H, W) when shared_mask; the blocks' offsets refer to that layout.
    """
    n, c, h, w = x.shape
    with torch.no_grad():
        if shared_mask:
            channels = 1
            keep = torch.ones((n, 1, h, w), dtype=torch.bool, device=x.device)
        else:
            channels = c
            # ones_like preserves x's strides, so the mask walks memory in x's order.
            keep = torch.ones_like(x, dtype=torch.bool)
        valid_h, valid_w = h - bh + 1, w - bw + 1
        seeds = _sample_seed_positions(n * channels * valid_h * valid_w, gamma, x.device)
        stride_n, stride_c, stride_h, stride_w = keep.stride()
        col = seeds % valid_w
        rest = seeds // valid_w
        row = rest % valid_h
        rest = rest // valid_h
        channel = rest % channels
        sample = rest // channels
        top_left = sample * stride_n + channel * stride_c + row * stride_h + col * stride_w
        rows = torch.arange(bh, device=x.device) * stride_h
        cols = torch.arange(bw, device=x.device) * stride_w
        blocks = _SeedBlocks(top_left, (rows[:, None] + cols[None, :]).view(-1))
        blocks.fill(keep, False)
        return keep, blocks


class _DropBlockFromSeeds(torch.autograd.Function):
    """out = t * scale with every block zeroed; backward does the same to the gradient.

    Used for per-channel masks with sparse seeds. `torch.where` with a bool mask runs a
    scalar (not vectorised) loop on CPU, about twice a float multiply; a vectorised
    multiply plus an indexed fill of the dropped units (a fraction ~1 - keep_prob of them)
    is cheaper, and autograd keeps only the seeds' offsets (8 bytes per seed, at most
    1 byte per element since this path is only taken for gamma <= 1/8), not a mask.
    Identical values to where(keep, x, 0) * scale: an inf or NaN under a block gives 0.

    `stride` is the layout of the mask the offsets index (x's own, or the contiguous one
    where x is not dense); the output takes it whatever t's layout (a gradient can come in
    another). The op is linear and its own adjoint, so backward applies it again through
    `apply`: a gradient of the gradient works, as on the `masked_scale` paths.
    """

    @staticmethod
    def forward(  # type: ignore[override]
        ctx, t: Tensor, top_left: Tensor, block_offsets: Tensor, scale: Tensor,
        stride: Tuple[int, ...], saturate: bool,
    ) -> Tensor:
        ctx.save_for_backward(top_left, block_offsets)
        ctx.scale, ctx.stride = scale, stride
        out = torch.empty_strided(t.shape, stride, dtype=t.dtype, device=t.device)
        return _scale_and_drop(t, out, _SeedBlocks(top_left, block_offsets), scale, saturate)

    @staticmethod
    def backward(ctx, grad_output: Tensor):  # type: ignore[override]
        top_left, block_offsets = ctx.saved_tensors
        # The gradient is not saturated: AMP's GradScaler must see an overflow as inf.
        grad_input = _DropBlockFromSeeds.apply(grad_output, top_left, block_offsets, ctx.scale, ctx.stride, False)
        return grad_input, None, None, None, None, None


def _scale_and_drop(
    t: Tensor, out: Tensor, blocks: _SeedBlocks, scale: Tensor, saturate: bool
) -> Tensor:
    """out = t * scale (in fp32 for fp16/bf16, cast with `saturating_cast` when `saturate`),
    then the blocks set to 0."""
    if t.dtype in (torch.float32, torch.float64):
        torch.mul(t, scale, out=out)
    elif saturate:
        out.copy_(saturating_cast(t.float() * scale, t.dtype))
    else:
        out.copy_(t.float() * scale)
    blocks.fill(out, 0.0)
    return out


def _normalizing_scale(keep: Tensor, dtype: torch.dtype) -> Tensor:
    """numel / (kept count + eps) as a 0-d tensor on keep's device (no host sync), in fp32,
    or fp64 for fp64 input (the count is exact in either up to 2**24 / 2**53 units)."""
    return _scale_from_count(torch.count_nonzero(keep), keep.numel(), dtype)


def _scale_from_count(kept: Tensor, numel: int, dtype: torch.dtype) -> Tensor:
    """numel / (kept + eps) for an integer count tensor `kept` (any shape, on its device), in
    fp32, or fp64 for fp64 input: the normalizing scale, with the operations (and so the
    rounding) that the Triton kernels' scale reproduces bit for bit."""
    compute_dtype = torch.float64 if dtype == torch.float64 else torch.float32
    total = torch.full((), float(numel), dtype=compute_dtype, device=kept.device)
    return total / (kept.to(compute_dtype) + NORMALIZER_EPS)


# Devices where impl="auto" met a Triton build error; it uses the PyTorch path there.
_TRITON_FAILED_ON: Set[torch.device] = set()


def _triton_runs_on(device: torch.device) -> bool:
    """Whether impl="auto" may use the Triton path for tensors on `device`."""
    if device.type != "cuda":
        return False
    try:
        from .drop_block_triton import triton_available
    except ImportError:
        return False
    return bool(triton_available(device))


def triton_unavailable_reason(device: Any) -> str:
    """Why impl="triton" cannot run tensors on `device` ("" when it can): Triton missing, a
    CPU device without Triton's interpreter, no CUDA, or a GPU older than Triton supports.
    The tools check it before training (config.check_impl_device), not at the first step."""
    try:
        device = torch.device(device)
    except (RuntimeError, TypeError) as error:
        return f"{device!r} is not a device ({error})"
    try:
        from . import drop_block_triton as kernels
    except ImportError as error:  # e.g. a Triton too old to import the kernels
        return f"the Triton kernels do not import here ({error})"
    if kernels.triton is None:
        return "Triton is not installed (the CUDA build of torch ships it)"
    if device.type == "cuda" and device.index is not None and device.index >= torch.cuda.device_count():
        return f"torch sees {torch.cuda.device_count()} CUDA device(s), so there is no {device}"
    if kernels.triton_available(device):
        return ""
    if device.type == "cpu":
        return ("the kernels run CUDA tensors, or CPU tensors only under Triton's interpreter "
                "(TRITON_INTERPRET=1 set before Triton is imported)")
    if device.type != "cuda":
        return f"the kernels run CUDA tensors, not {device.type}"
    if not torch.cuda.is_available():
        return "torch sees no CUDA device here"
    major, minor = torch.cuda.get_device_capability(device)
    return f"{torch.cuda.get_device_name(device)} has compute capability {major}.{minor}; Triton needs >= 7.0"


def triton_path_chosen(device: torch.device, impl: str) -> bool:
    """Whether DropBlock with `impl` takes the Triton path for tensors on `device`: always
    for "triton", never for "torch", and for "auto" on a CUDA device Triton supports that
    has not failed to build the kernels in this process."""
    device = torch.device(device)
    return impl == "triton" or (impl == "auto" and device not in _TRITON_FAILED_ON and _triton_runs_on(device))


def _drop_block_triton_or_none(x: Tensor, impl: str, **triton_args: Any) -> Optional[Tensor]:
    """`drop_block_2d_triton(x, **triton_args)`, or None where `impl` leaves it to the
    PyTorch path (`triton_path_chosen`).

    Under impl="auto", a GPU that Triton cannot build the kernels for (a compilation, ptxas,
    compiler pass, resource or module load error: `is_triton_build_error`) warns once and is
    left to the PyTorch path for the rest of the process, so a run does not die for want of
    a faster path; impl="triton" raises instead.
    """
    if not triton_path_chosen(x.device, impl):
        return None
    # Imported lazily: the layers must import (and run on CPU) without Triton.
    from .drop_block_triton import drop_block_2d_triton, is_triton_build_error

    # The backward kernels are built at the first backward, after this returned: under "auto"
    # a build error there gives that gradient from the saved mask with PyTorch ops.
    on_backward_build_error = _stop_using_triton_in_backward if impl == "auto" else None
    try:
        return drop_block_2d_triton(x, **triton_args, on_backward_build_error=on_backward_build_error)
    except Exception as error:
        if impl == "triton" or not is_triton_build_error(error):
            raise
        _stop_using_triton(x.device, error, "", stacklevel=4)
        return None


def _stop_using_triton(device: torch.device, error: BaseException, what_now: str, stacklevel: int) -> None:
    """Leave `device` to the PyTorch path for the rest of the process (impl="auto"), with one
    warning that names the build error."""
    _TRITON_FAILED_ON.add(device)
    reason = " ".join(str(error).split())[:400]  # one line: compiler messages span several
    warnings.warn(
        f"DropBlock: Triton could not build its kernels for {device} ({type(error).__name__}: {reason}); "
        f"{what_now}impl='auto' uses the PyTorch path there from now on (same semantics, slower). Set "
        "MODEL.DROPBLOCK.IMPL (or impl=) to 'torch' to silence this, or to 'triton' to raise the error.",
        RuntimeWarning,
        stacklevel=stacklevel,
    )


def _stop_using_triton_in_backward(device: torch.device, error: BaseException) -> None:
    _stop_using_triton(device, error, "this gradient was computed from the saved mask with PyTorch ops, and ",
                       stacklevel=2)


def _check_input(x: Any, name: str = "x") -> None:
    if not isinstance(x, Tensor):
        raise ValueError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if x.dim() != 4:
        raise ValueError(f"{name} must be 4-D (N, C, H, W), got shape {tuple(x.shape)}")
    if x.dtype not in SUPPORTED_DTYPES:
        raise ValueError(f"{name} must be a float32, float16, bfloat16 or float64 tensor, got dtype {x.dtype}")


def _gamma_and_block(
    keep_prob: float, block_size: int, gamma_mode: str, height: int, width: int
) -> Tuple[float, int, int]:
    """(gamma, bh, bw) of checked arguments on an (height, width) map."""
    bh, bw = _clip_block_size(block_size, height, width)
    if gamma_mode == "paper":
        return _paper_gamma(keep_prob, bh, bw, height, width), bh, bw
    return _calibrated_gamma(height, width, bh, bw, keep_prob), bh, bw


def drop_block_2d(
    x: Tensor,
    keep_prob: float,
    block_size: int,
    shared_mask: bool = False,
    gamma_mode: str = "paper",
    impl: str = "auto",
    training: bool = True,
    relu: bool = False,
    residual: Optional[Tensor] = None,
    **kwargs: Any,
) -> Tensor:
    """DropBlock (Algorithm 1) on x of shape (N, C, H, W); see the module docstring.

    Args:
        x: floating tensor (fp32, fp16, bf16, fp64), any device, contiguous or channels_last.
        keep_prob: probability that a unit survives, in (0, 1].
        block_size: side of the dropped square (odd or even), clipped per axis to the map.
        shared_mask: one mask per sample shared by all channels instead of one per channel.
        gamma_mode: "paper" or "calibrated" (expected dropped fraction exactly 1 - keep_prob).
        impl: "auto" (Triton on a CUDA device of compute capability >= 7.0 when Triton
            is importable, else PyTorch; a GPU that Triton fails to build the kernels for
            gets one warning and PyTorch from then on), "torch", or "triton" (also on CPU
            under TRITON_INTERPRET=1).
        training: when False, x is returned unchanged (as when keep_prob == 1).
        relu: DropBlock of relu(x), exactly `drop_block_2d(torch.relu(x), ...)` (and relu(x)
            when DropBlock is off), values and gradients. Both paths keep nothing for
            backward but the output, which the next layer keeps anyway (the Triton path
            fuses the ReLU into its passes; the PyTorch path's backward reads the output).
        residual: a tensor of x's shape added after DropBlock, then ReLU:
            relu(residual + drop_block_2d(x)), exactly those ops (relu(residual + x) when
            DropBlock is off), the end of a residual block with DropBlock on its shortcut.
            The Triton path does the sum and the ReLU in DropBlock's own pass (per-channel
            masks, residual of x's dtype and layout). Not with `relu`.
    Returns:
        tensor of x's shape, dtype and memory layout; dropped units are 0, kept ones are
        scaled by numel(mask) / count_kept. The gradient is grad * mask * that scale.
        Autograd: the PyTorch path's backward is itself differentiable (a gradient of the
        gradient works). The Triton path's is once-differentiable (autograd raises on a
        second backward). With `relu` (either path) or `residual` (the Triton path) the
        output is kept for backward, as torch.relu keeps its own: modifying that output in
        place makes backward raise autograd's in-place error, as it would after torch.relu.
    Raises:
        ValueError: naming the argument and value for a non-4D x or one of another dtype
            than fp32, fp16, bf16 and fp64 (integers, fp8; also with training=False), keep_prob
            outside (0, 1], block_size < 1, an unknown gamma_mode / impl, a residual that is
            not a tensor of x's shape, or an unknown keyword argument.
        RuntimeError: under torch.jit.trace or torch.export with training=True (trace or
            export in eval mode instead).
        With impl="triton", what the Triton path raises: no Triton, a CPU tensor without
        the interpreter (see `drop_block_2d_triton`), or Triton's own build errors.
    """
    reject_unknown_kwargs("drop_block_2d", kwargs)
    _check_input(x)
    keep_prob = check_keep_prob(keep_prob)
    block_size = check_block_size(block_size)
    shared_mask = _check_bool(shared_mask, "shared_mask")
    gamma_mode = check_gamma_mode(gamma_mode)
    impl = check_impl(impl)
    training = _check_bool(training, "training")
    relu = _check_bool(relu, "relu")
    if residual is not None:
        if relu:
            raise ValueError("drop_block_2d: residual cannot be combined with relu=True")
        check_residual(x, residual, "drop_block_2d")

    if training:  # at keep_prob 1 too: a trace would keep the identity whatever keep_prob becomes
        _refuse_tracing()
    if not training or keep_prob == 1.0 or x.numel() == 0:
        if residual is not None:
            return torch.relu_(residual + x)
        return torch.relu(x) if relu else x
    gamma, bh, bw = _gamma_and_block(keep_prob, block_size, gamma_mode, *x.shape[2:])
    out = _drop_block_triton_or_none(
        x, impl, gamma=gamma, block_size_h=bh, block_size_w=bw, shared_mask=shared_mask, relu=relu,
        residual=residual,
    )
    if out is not None:
        return out
    if relu:
        # The backward reads the output: nothing but it is kept (bench_dropblock.py's ReLU rows).
        return relu_then_masked_scale(x, lambda t: _drop_block_torch(t, gamma, bh, bw, shared_mask))
    out, _ = _drop_block_torch(x, gamma, bh, bw, shared_mask)
    return out if residual is None else torch.relu_(residual + out)


def _refuse_tracing() -> None:
    """torch.jit.trace / torch.export cannot record DropBlock in training mode: the number of
    seeds is random and decided in Python, so a trace would replay one draw's sizes."""
    refuse_tracing_in_training("DropBlock")


def _drop_block_torch(x: Tensor, gamma: float, bh: int, bw: int, shared_mask: bool) -> Tuple[Tensor, Tensor]:
    """The PyTorch path of `drop_block_2d` once gamma and the clipped block are known:
    (output, normalizing scale)."""
    keep, blocks = _drop_block_keep_mask(x, gamma, bh, bw, shared_mask)
    scale = _normalizing_scale(keep, x.dtype)
    seed_bytes = 8 * (blocks.top_left.numel() + blocks.block_offsets.numel())
    if not shared_mask and gamma <= _SPARSE_APPLY_MAX_GAMMA and seed_bytes <= x.numel():
        return _DropBlockFromSeeds.apply(x, blocks.top_left, blocks.block_offsets, scale, keep.stride(), True), scale
    # Shared masks broadcast over channels (the offsets are in the mask's layout, not x's);
    # dense seeds, or a tiny tensor, would keep more than 1 byte per element as offsets.
    return masked_scale(x, keep, scale), scale


class DropBlock2d(KeepProbRegularizer):
    """DropBlock as a module: `drop_block_2d` in training mode, identity in eval mode.

    Args: as `drop_block_2d` (keep_prob is the target; the schedule may lower `keep_prob`
    from 1.0 towards it during training). Input and output: (N, C, H, W);
    `module(x, relu=True)` is DropBlock of relu(x), `module(x, residual=r)` is
    relu(r + DropBlock(x)) and `module(x, residual=r, residual_regularizer=other)` is
    relu(other(r) + DropBlock(x)), each one fused pass on the Triton path (the last when
    `other` is a per-channel DropBlock2d with the same impl).

    A CUDA graph captured through it (Triton path only: the PyTorch path reads its seed
    count on the host) freezes the keep_prob of the capture, and with it gamma and the
    choice of the dense or sparse draw; at keep_prob 1 it holds no DropBlock at all. Each
    replay draws a new mask, but a schedule's later keep_prob reaches a replay only through
    a new capture: capture after the ramp ends, or again whenever keep_prob changes.
    """

    def __init__(
        self,
        keep_prob: float = 0.9,
        block_size: int = 7,
        shared_mask: bool = False,
        gamma_mode: str = "paper",
        impl: str = "auto",
        **kwargs: Any,
    ) -> None:
        reject_unknown_kwargs("DropBlock2d", kwargs)
        super().__init__(keep_prob)
        self.block_size = check_block_size(block_size)
        self.shared_mask = _check_bool(shared_mask, "shared_mask")
        self.gamma_mode = check_gamma_mode(gamma_mode)
        self.impl = check_impl(impl)

    def _check_input(self, x: Tensor) -> None:
        _check_input(x)

    def _regularize(self, x: Tensor) -> Tensor:
        return self._drop_block(x)

    # One pass each on the Triton path.
    def _regularize_relu(self, x: Tensor) -> Tensor:
        return self._drop_block(x, relu=True)

    def _regularize_add_relu(self, x: Tensor, residual: Tensor) -> Tensor:
        return self._drop_block(x, residual=residual)

    def _regularize_pair_add_relu(self, x: Tensor, residual: Tensor, residual_regularizer: KeepProbRegularizer) -> Tensor:
        # relu(DropBlock'(residual) + DropBlock(x)): on the Triton path both per-channel masks
        # are applied, with the sum and the ReLU, in one pass (the residual's drawn first).
        other = residual_regularizer
        if (
            isinstance(other, DropBlock2d) and other.impl == self.impl and not other.shared_mask
            and isinstance(x, Tensor) and triton_path_chosen(x.device, self.impl)
        ):  # else (the PyTorch path) nothing is computed here: the modules run in turn
            _refuse_tracing()
            _check_input(x)
            _check_input(residual, "residual")
            if x.numel() and residual.numel():
                gamma, bh, bw = self._gamma_and_block(x)
                out = _drop_block_triton_or_none(
                    x, self.impl, gamma=gamma, block_size_h=bh, block_size_w=bw, shared_mask=self.shared_mask,
                    residual=residual, residual_drop_block=other._gamma_and_block(residual),
                )
                if out is not None:
                    return out
        return super()._regularize_pair_add_relu(x, residual, residual_regularizer)

    def _gamma_and_block(self, x: Tensor) -> Tuple[float, int, int]:
        """(gamma, bh, bw) of this module's next draw on x."""
        return _gamma_and_block(self.keep_prob, self.block_size, self.gamma_mode, *x.shape[2:])

    def _drop_block(self, x: Tensor, relu: bool = False, residual: Optional[Tensor] = None) -> Tensor:
        return drop_block_2d(
            x,
            self.keep_prob,
            self.block_size,
            shared_mask=self.shared_mask,
            gamma_mode=self.gamma_mode,
            impl=self.impl,
            training=True,
            relu=relu,
            residual=residual,
        )

    def extra_repr(self) -> str:
        return (
            f"{super().extra_repr()}, block_size={self.block_size}, "
            f"shared_mask={self.shared_mask}, gamma_mode={self.gamma_mode!r}, impl={self.impl!r}"
        )
