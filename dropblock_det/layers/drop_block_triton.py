"""DropBlock's fused GPU path: Triton kernels with a 1-bit keep mask for backward.

`drop_block_2d_triton(x, gamma, bh, bw, shared_mask)` has exactly the semantics of the
PyTorch reference in `drop_block.py` (see its module docstring): iid Bernoulli(gamma) seeds
at the top-left anchors (i, j), 0 <= i <= H - bh, 0 <= j <= W - bw, per (sample, channel)
(per sample when `shared_mask`); a seed drops rows i..i+bh-1, columns j..j+bw-1; the output
is where(keep, x, 0) * numel(mask) / (count_kept + 1e-6), computed in fp32 (fp64 for fp64
input) and cast to x.dtype, saturating at the dtype's largest finite value in fp16 / bf16
forward. The gradient is exactly grad * keep * that same scale (not saturated).

Why this design (the target is forward+backward within 2x of a plain `x * mask`):

1. Seeds come from Philox (`tl.philox`, keyed by one int64 that `torch.randint` draws on
   x's device, so `torch.manual_seed` / `torch.cuda.manual_seed` make a draw reproducible
   and no host sync is needed; with launch size `host_key=1` the key is derived on the host
   from the CUDA generator's seed and offset instead, which saves that launch). The dense
   draw (above `_SPARSE_MAX_GAMMA`, or with launch size `sparse_seeds=0`; sparse seeds
   below, at the end of 2): one Philox call yields four 32-bit words, used for four
   consecutive anchor rows: about a quarter of a Philox round per anchor. A seed is
   `word < round(gamma * 2**32)`: exact to 2**-33. The Philox counter is the logical
   (plane, row group, column) index, so a draw does not depend on x's memory layout (a
   contiguous and a channels_last copy of x get the same mask), on the launch sizes, or
   on which of the two mask paths below drew it.
2. Seeds become the keep map with a running row count instead of a 2-D max-pool: each lane
   owns one (plane, column) and walks the rows top to bottom, ORs the bw anchors to the left
   of its column (the hit) and keeps the distance `age` to the last row with a hit; a unit
   is dropped iff that distance is < bh. So the dilation costs O(bw) per unit instead of
   bh * bw, and the last bh - 1 rows, which have no anchors, cost O(1).
   - `_mask_kernel` (plane-major masks: NCHW per channel, and shared masks): seeds and
     dilation in one pass, nothing written but the keep map. The row's seeds stay in
     registers; the hit is a difference of prefix sums (`tl.cumsum`, and `tl.gather` of the
     sum bw lanes back), with a halo of bw - 1 lanes per program that only redraws seeds.
     A plane's last bw - 1 columns hold no anchors, so a window never reaches into the
     previous plane.
   - `_seed_kernel` + `_dilate_kernel` (per-channel masks on channels_last x, where a row's
     horizontal neighbours are C lanes apart; and everywhere with `mask_kernels=2`): the
     seeds go through a uint8 map written at anchors only; the hit is bw loads of it, which
     stay in L1/L2.
   All mask kernels launch flat over (plane, column) lanes in the mask's memory order
   (`_lane_coords`): a program's lanes are consecutive bytes of a row whatever W is, and no lane
   idles but in the last program (a power-of-two tile of columns left up to 47% of the
   lanes idle on the issue's shapes: W = 68, 136, 34). The keep map is uint8 in x's memory
   order (per-channel masks) or (N, H, W) (shared masks); each program adds how many units
   it kept to one int64 counter (integer atomics: the sum does not depend on the order).
   Sparse seeds (`_sparse_seed_kernel`; the default up to gamma = `_SPARSE_MAX_GAMMA`,
   which covers the paper's settings: about 0.0025 at keep_prob 0.9 and block 7, one seed
   per ~400 anchors). A per-anchor draw and dilation cost the same at any gamma; here the
   work follows the seeds. Each lane walks a chunk of anchors (the power of two nearest
   1 / gamma, so about one seed per lane; a function of gamma alone) from seed to seed by
   geometric gaps floor(ln u / ln(1 - gamma)), two per Philox call (53-bit u; the log in
   fp64 arithmetic, `_log_unit`): the seeds are iid Bernoulli(gamma), the gap
   probabilities exact to ~1e-13 of themselves. The keep bits start all set (one fill);
   each seed clears its block's bits with atomic ANDs (a block row is bw consecutive bits,
   at most two words for bw <= 33, where the unit column stride is 1; bit by bit on
   channels_last per-channel masks) and counts the bits it cleared from the words the
   atomics return (a bit goes from 1 to 0 once, so overlapping blocks count each dropped
   unit once): the kept count comes out of the same kernel, with no pass over the words.
   No keep map, no pack pass: about 1/8 B per unit of traffic (the fill) against the dense
   kernels' ~2.3 B and per-anchor Philox, and one launch for the whole mask. The Philox
   counter is (draw, chunk), so this draw too does not depend on x's memory layout or the
   launch sizes (it differs from the dense kernels' draw for the same key: both are
   Bernoulli(gamma) per anchor).
3. `_pack_kernel` packs the keep map into bits (bit m of the mask = keep of the element
   at memory offset m): the only thing autograd keeps is this 1-bit-per-element mask plus
   an 8-byte count, and the apply pass reads 1/8 byte of mask per element.
   Or (launch size `keep_bits=1`) the mask kernels write the bits themselves: no keep map,
   no pack pass, about 2 B per element less traffic, but a scan and a gather within 32 lanes
   more per row (`_store_keep_row`): `_mask_kernel`'s sm_90 SASS grows by about half (1600
   -> 2352 instructions, 88 -> 115 registers at 512 lanes on 4 warps). By a rough count
   (instructions per SM clock against bytes per second) the two cost about the same on an
   H100-class GPU, so which is faster is for `bench_dropblock.py --tune` to measure; where
   bandwidth is scarcer than compute the bits should win. Both give the same bits.
4. The apply kernels: out = where(keep, x, 0) * scale in one pass over x, with
   scale = numel / (count + eps) read from device memory (no sync). Per-channel masks
   share x's memory order, so bit index = element offset (`_apply_flat_kernel`: no index
   arithmetic, 16-byte vector loads and stores of x, one byte of mask per 8 elements).
   Shared masks map x's element to the mask with one division per row
   (`_apply_rows_kernel`, NCHW) or per pixel (`_apply_pixels_kernel`, channels_last),
   never per element. Backward runs the same kernel on grad with the saved bits: nothing
   is recomputed.

5. ReLU fused in (`relu=True`: DropBlock after conv+norm+ReLU, as in ResNet's conv1 / conv2
   and the RetinaNet head towers): the apply kernels take relu(x) on the fly, and backward
   needs no mask at all: out > 0 exactly where the unit was kept and x > 0 (the scale is
   positive and about 1 / keep_prob, so no kept positive unit rounds to 0), and out is the
   next layer's input, which autograd keeps anyway. `_relu_grad_kernel`: grad_in =
   where(out <= 0, 0, grad) * scale (a kept NaN passes its gradient, as torch.relu's
   does). Those are the passes the ReLU alone makes (read x, write out; read grad and out,
   write grad_in), so after a ReLU DropBlock adds only its mask passes (about 2.3 B per
   element) instead of two more passes over x and grad.

6. Residual sum fused in (`residual=r`: DropBlock on a ResNet block's shortcut, followed by
   the sum with the branch and the block's ReLU): `_apply_residual_kernel` gives
   relu(r + DropBlock(x)) in one pass, rounding each step as the three ops would, and
   `_residual_grad_kernel` splits the ReLU's gradient between r (as it is) and x (through
   the saved bits). Against the sum and ReLU the block makes anyway, DropBlock adds its mask
   passes and one written gradient. With DropBlock on the branch too (after a bottleneck's
   conv3: `residual_drop_block`), its mask is drawn first and applied in the same pass
   (`RESIDUAL_MASKED`), forward and backward: the branch's DropBlock then costs its mask
   passes only, not a pass of its own over the branch and one over its gradient (per res4
   block of the issue's R50 in fp32, about 0.9 GB of traffic per step).

Memory traffic per element (bf16 forward+backward, NCHW), dense draw: keep map 1 B written
and read, 1/8 B of bits written and read twice, x/grad 2 B read and out 2 B written per
pass: about 10.4 B against 12 B for the `x * mask` floor with a bf16 mask (the separate
seed map adds about 2 B: written at anchors, read back through the caches); with
`keep_bits=1` about 8.5 B (the bits zeroed, OR-ed in, read twice). Sparse seeds: about
8.4 B (the words filled, read twice), and the mask's compute follows the seeds.

`triton_available()` says whether this path can run: Triton importable and either CUDA
available or `TRITON_INTERPRET=1` (Triton's interpreter runs the same kernels on CPU tensors
with numpy; it is how CI tests the kernel logic); `triton_available(device)` also checks
that the GPU is one Triton compiles for. TRITON_INTERPRET must be set before Triton is
first imported.
"""
import contextlib
import math
import os
import struct
import subprocess
from typing import Any, Callable, ContextManager, Dict, Iterator, NamedTuple, Optional, Tuple

import torch
from torch import Tensor
from torch.autograd.function import once_differentiable

try:
    import triton
    import triton.language as tl
except ImportError:  # CPU-only torch builds ship without Triton: the module still imports.
    triton = None
    tl = None

from .base import _run_eagerly, check_residual, is_integer, is_real_number
from .drop_block import NORMALIZER_EPS, SUPPORTED_DTYPES, _scale_from_count

__all__ = [
    "TRITON_BUILD_ERRORS",
    "check_launch_sizes",
    "describe_launch_sizes",
    "drop_block_2d_triton",
    "is_triton_build_error",
    "launch_sizes",
    "parse_launch_sizes",
    "triton_available",
]

# The reference's normaliser guard: an all-dropped mask gives scale numel / 1e-6 (finite)
# times 0, i.e. zeros, not NaN.
_EPS = NORMALIZER_EPS


class _LaunchSizes(NamedTuple):
    tile_units: int  # (plane, column) units per program of the seed and dilation kernels
    apply_block: int  # elements per program of the apply kernels
    pack_block_bytes: int  # mask bytes per program of the pack kernel
    mask_warps: int = 4  # warps per program of the seed and dilation kernels (and the sparse one)
    apply_warps: int = 4  # warps per program of the apply kernels
    # 1: seeds and dilation in one kernel (`_mask_kernel`) where the mask's rows are
    # plane-major (NCHW, shared masks); 2: separate seed and dilation kernels everywhere.
    mask_kernels: int = 1
    # 8: the mask kernels write a uint8 keep map, which `_pack_kernel` packs into bits; 1:
    # they OR the bits into words themselves (no map, no pack pass: ~2 B per unit less
    # traffic, a scan and a gather within 32 lanes more per row, ~30 more registers).
    keep_bits: int = 8
    # 1: seeds drawn sparsely (`_sparse_seed_kernel`) where gamma <= _SPARSE_MAX_GAMMA, by the
    # dense mask kernels above it; 0: always the dense mask kernels; 2: always sparse (tests).
    sparse_seeds: int = 1
    # Lanes (chunks of anchors) per program of `_sparse_seed_kernel`: a program loops until
    # its busiest lane is done, so fewer lanes waste fewer steps, more hide more latency.
    seed_block: int = 128
    # 0: torch.randint draws each mask's Philox key on x's device (a launch; the kernels
    # read it); 1: the key is derived on the host from the device generator's seed and
    # offset, which it advances as that randint would (`_draw_philox_key`: no launch).
    host_key: int = 0


# GPU: 1024-element programs give every lane of 4 warps a 16-byte vector in the apply pass;
# 512 mask lanes on 4 warps keep `_mask_kernel` at 88 registers per thread, 115 writing bits
# (1024 lanes: 225 and 254, two programs per SM; cuobjdump, sm_90). Chosen without a GPU to
# measure on:
# `bench_dropblock.py --tune` times the alternatives.
_GPU_SIZES = _LaunchSizes(tile_units=512, apply_block=1024, pack_block_bytes=256)
# The interpreter pays per program and per op, not per element: few big programs are ~16x
# faster. Results do not depend on the sizes (the Philox counters are logical indices).
_INTERPRETER_SIZES = _LaunchSizes(tile_units=16384, apply_block=32768, pack_block_bytes=4096, seed_block=4096)
# Up to this seed rate the seeds are drawn sparsely. At keep_prob 0.9 and block 7 gamma is
# about 0.0025 (~1 seed per 400 anchors): the sparse draw's work is ~1/400 of the dense one's
# per-anchor Philox word and dilation, plus one word of atomic ANDs per block row. Above it the
# atomics (bh words per seed, bh * bw bits on channels_last) grow with the seeds while the
# dense kernels' cost stays fixed; `bench_dropblock.py --tune` times both (`sparse_seeds=0`).
_SPARSE_MAX_GAMMA = 1.0 / 64


def _gather_available() -> bool:
    # `tl.gather` is Triton >= 3.3 (torch >= 2.7). The fused mask kernel and the bit-writing
    # variants need it; separate seed and dilation kernels writing a keep map do not.
    return tl is None or hasattr(tl, "gather")


# The launch sizes whose kernels gather within a tile (`tl.gather`: Triton >= 3.3): the fused
# mask kernel and the mask kernels writing bits.
_GATHER_SIZES = (("mask_kernels", 1), ("keep_bits", 1))


def _sizes_for_triton(sizes: _LaunchSizes, version: str, gather: bool, gpu: bool) -> _LaunchSizes:
    """`sizes` with the mask kernels that Triton `version` builds well: without tl.gather
    (Triton < 3.3) the separate seed and dilation kernels, the only ones it can build (not a
    fallback to torch); on GPU also with Triton 3.3, which compiles the fused kernel to 255
    registers with a stack (sm_90, 512 lanes; 3.4 to 3.8: at most 128, no stack), where the
    separate kernels fit (`tools/check_triton_versions.py`)."""
    if not gather or (gpu and version.startswith("3.3.")):
        return sizes._replace(mask_kernels=2)
    return sizes


if triton is not None:
    _GPU_SIZES = _sizes_for_triton(_GPU_SIZES, triton.__version__, _gather_available(), gpu=True)
    _INTERPRETER_SIZES = _sizes_for_triton(_INTERPRETER_SIZES, triton.__version__, _gather_available(), gpu=False)


# What Triton raises when it cannot build or launch a kernel for this GPU (not a bad
# argument, not a CUDA runtime error): `drop_block_2d(impl="auto")` then falls back to the
# PyTorch path. PTXASError is Triton >= 3.3 only.
if triton is not None:
    from triton.compiler.errors import CompilationError
    from triton.runtime import errors as _runtime_errors

    TRITON_BUILD_ERRORS: Tuple[type, ...] = tuple(
        error
        for error in (CompilationError, _runtime_errors.OutOfResources, getattr(_runtime_errors, "PTXASError", None))
        if error is not None
    )
else:
    TRITON_BUILD_ERRORS = ()
# How Triton < 3.3 reports ptxas rejecting a kernel (a RuntimeError; 3.3 made it PTXASError):
# Triton 3.2's bf16 conversions on sm_70 / sm_75, which later Triton releases emulate.
_OLD_PTXAS_ERROR = "Internal Triton PTX codegen error"
# An MLIR / LLVM pass of Triton's compiler failing on a kernel: libtriton throws a C++
# runtime_error with this text, which reaches Python as a plain RuntimeError.
_PASS_MANAGER_ERROR = "PassManager::run failed"
# The driver refusing the built module (cuModuleLoadData): Triton's launcher utilities raise
# RuntimeError(_CUDA_ERROR + the driver's message). Only these messages, which reject the
# image or its PTX, are build errors: the same prefix also reports a kernel's run failing
# (an illegal address, a launch failure: the context is then unusable, and falling back
# would hide it) and out of memory, which is transient and which the PyTorch path would meet
# too: those are raised.
_CUDA_ERROR = "Triton Error [CUDA]: "
# Triton builds its CUDA launcher with the machine's C compiler at its first kernel launch:
# with none on PATH it raises this RuntimeError, and a compiler that fails (e.g. no Python.h
# without the python3-dev package) a CalledProcessError. The PyTorch path needs neither.
_NO_C_COMPILER_ERRORS = ("Failed to find C compiler", "Failed to find C++ compiler")
_MODULE_LOAD_ERRORS = (
    "device kernel image is invalid",  # CUDA_ERROR_INVALID_IMAGE, CUDA_ERROR_INVALID_SOURCE
    "no kernel image is available for execution on the device",  # CUDA_ERROR_NO_BINARY_FOR_GPU
    "a PTX JIT compilation failed",  # CUDA_ERROR_INVALID_PTX
    "the provided PTX was compiled with an unsupported toolchain",  # CUDA_ERROR_UNSUPPORTED_PTX_VERSION
    "PTX JIT compiler library not found",  # CUDA_ERROR_JIT_COMPILER_NOT_FOUND
    "PTX JIT compilation was disabled",  # CUDA_ERROR_JIT_COMPILATION_DISABLED
)


def is_triton_build_error(error: BaseException) -> bool:
    """Whether `error` is Triton failing to build or load a kernel for this GPU (one of
    TRITON_BUILD_ERRORS; Triton < 3.3's ptxas failure; a compiler pass failing; no C
    compiler for Triton's launcher, or that compiler failing; the driver refusing the
    module's image or PTX), not a bad argument or an error of a kernel's run (an illegal
    address, out of memory)."""
    if isinstance(error, (*TRITON_BUILD_ERRORS, subprocess.CalledProcessError)):
        return True
    if not isinstance(error, RuntimeError):
        return False
    message = str(error)
    if message.startswith((_OLD_PTXAS_ERROR, _PASS_MANAGER_ERROR, *_NO_C_COMPILER_ERRORS)):
        return True
    return message.startswith(_CUDA_ERROR) and message[len(_CUDA_ERROR):].startswith(_MODULE_LOAD_ERRORS)


_MIN_CUDA_CAPABILITY = (7, 0)


def _interpreting() -> bool:
    return os.environ.get("TRITON_INTERPRET", "0") == "1"


def triton_available(device: Optional[torch.device] = None) -> bool:
    """True when Triton is importable and can run here: CUDA is available, or Triton's
    interpreter is on (TRITON_INTERPRET=1, CPU tensors).

    With `device`: whether Triton can run tensors on that device: a CPU device under the
    interpreter, or a CUDA device of compute capability >= 7.0 (Triton compiles for no
    older GPU; torch.compile draws the same line).
    """
    if triton is None:
        return False
    if device is None:
        return torch.cuda.is_available() or _interpreting()
    device = torch.device(device)
    if device.type == "cpu":
        return _interpreting()
    if device.type != "cuda" or not torch.cuda.is_available():
        return False
    return torch.cuda.get_device_capability(device) >= _MIN_CUDA_CAPABILITY


if triton is not None:

    if _gather_available():

        @triton.jit
        def _gather(src, index, axis: tl.constexpr):
            return tl.gather(src, index, axis)

    else:

        @triton.jit
        def _gather(src, index, axis: tl.constexpr):
            # Triton < 3.3: no kernel it builds gathers (`check_launch_sizes`), but a kernel's
            # cache key walks the source of every helper it calls, pruned branches included,
            # and resolves each name: `tl.gather` itself would fail `_dilate_kernel` there.
            tl.static_assert(False, "tl.gather needs Triton >= 3.3")
            return src

    @triton.jit
    def _mask_where(mask, cond):
        """mask & cond for a per-program (scalar) cond, as a select compared to 0. Triton
        3.9's interpreter broadcasts a scalar comparison to int32 data, which its loads and
        stores refuse as a mask ("mask has unsupported dtype"); a comparison's data is bool
        on every release (a `False` constant is not: 3.2 and 3.3's interpreters cannot make
        one). Compiled, it is the same predicate."""
        return tl.where(cond, mask, 0) != 0

    @triton.jit
    def _program_lanes(halo, BLOCK: tl.constexpr, INDEX_64: tl.constexpr):
        """The lane indices of this program of a flat launch whose programs overlap by `halo`
        lanes (each program's first `halo` lanes are the previous one's last)."""
        pid = tl.program_id(0)
        if INDEX_64:  # a constexpr branch: one return after it (Triton has no early return)
            pid = pid.to(tl.int64)
        return pid * (BLOCK - halo) - halo + tl.arange(0, BLOCK)

    @triton.jit
    def _lane_coords(u, cols, planes_per_sample, stride_n, stride_c, COLS_OUTER: tl.constexpr):
        """Lane u of a flat launch over (plane, column) pairs of one mask row ->
        (plane, column, offset of the plane's row 0 in the mask map, offset of the unit in
        its run (the units of a mask row that are consecutive in memory), whether it is the
        run's last unit).

        The order follows the mask's memory order, so a program's lanes are consecutive
        units of a row (coalesced) and only the last program has idle lanes: planes then
        columns for NCHW and for the (N, H, W) shared mask (a run: one plane's row);
        per sample, columns then channels (COLS_OUTER) for a per-channel mask on
        channels_last x (a run: one sample's row, all channels). Divisions of u only (no
        product of two int arguments, which could overflow int32)."""
        if COLS_OUTER:
            pixel = u // planes_per_sample
            c = u - pixel * planes_per_sample
            n = pixel // cols
            col = pixel - n * cols
            plane = n * planes_per_sample + c
            run_offset = col * planes_per_sample + c
            run_end = (col == cols - 1) & (c == planes_per_sample - 1)
        else:
            plane = u // cols
            col = u - plane * cols
            n = plane // planes_per_sample
            c = plane - n * planes_per_sample
            run_offset = col
            run_end = col == cols - 1
        return plane, col, n * stride_n + c * stride_c, run_offset, run_end

    @triton.jit
    def _philox_key(rng_seed_ptr, host_key):
        """The draw's Philox key (int64): `host_key` when it was drawn on the host (>= 0),
        else (`_DEVICE_KEY`, negative) the int64 that torch.randint wrote at `rng_seed_ptr`.
        A runtime choice, not a constexpr: one compiled kernel for both, so that capturing a
        CUDA graph (which draws on the device) after eager host-key calls compiles nothing
        (a module load is not allowed while a stream is captured)."""
        key = host_key.to(tl.int64)
        if host_key < 0:
            key = tl.load(rng_seed_ptr)
        return key

    @triton.jit
    def _row_offset(row, stride_h, INDEX_64: tl.constexpr):
        if INDEX_64:
            row = row.to(tl.int64)
        return row * stride_h

    @triton.jit(do_not_specialize=["host_key"])
    def _seed_kernel(
        rng_seed_ptr,  # int64[1]: the Philox key drawn by torch.randint on x's device
        host_key,  # or the key itself, drawn on the host (>= 0; `_draw_philox_key`)
        seeds_ptr,  # uint8 map, written at anchor positions only
        total_kept_ptr,  # int64[1]: zeroed here, summed into by the dilation kernel
        num_lanes,  # planes * anchor_cols
        planes_per_sample,  # C, or 1 for a shared mask
        anchor_rows,  # H - bh + 1
        anchor_cols,  # W - bw + 1
        threshold,  # seed iff the 32-bit word < threshold (= round(gamma * 2**32))
        stride_n,
        stride_c,
        stride_h,
        stride_w,
        BLOCK: tl.constexpr,
        COLS_OUTER: tl.constexpr,
        INDEX_64: tl.constexpr,
    ):
        pid = tl.program_id(0)
        # Zeroing the counter here saves a launch; the dilation kernel runs after this one.
        tl.store(total_kept_ptr, tl.zeros((), tl.int64), mask=pid == 0)
        u = _program_lanes(0, BLOCK, INDEX_64)
        plane, col, base, _, _ = _lane_coords(u, anchor_cols, planes_per_sample, stride_n, stride_c, COLS_OUTER)
        ok = u < num_lanes
        ptrs = seeds_ptr + base + col * stride_w
        key = _philox_key(rng_seed_ptr, host_key)
        counter_hi = plane.to(tl.uint32)
        for group in range(0, tl.cdiv(anchor_rows, 4)):
            # One Philox call -> four words -> anchor rows 4*group .. 4*group+3. The counter
            # is the logical (plane, row group, column): the mask does not depend on x's
            # memory layout or on the launch sizes.
            counter_lo = (group * anchor_cols + col).to(tl.uint32)
            r0, r1, r2, r3 = tl.philox(key, counter_lo, counter_hi, 0, 0)
            row = group * 4
            row_off = _row_offset(row, stride_h, INDEX_64)
            tl.store(ptrs + row_off, (r0.to(tl.int64) < threshold).to(tl.uint8), mask=_mask_where(ok, row < anchor_rows))
            tl.store(ptrs + row_off + stride_h, (r1.to(tl.int64) < threshold).to(tl.uint8), mask=_mask_where(ok, row + 1 < anchor_rows))
            tl.store(ptrs + row_off + 2 * stride_h, (r2.to(tl.int64) < threshold).to(tl.uint8), mask=_mask_where(ok, row + 2 < anchor_rows))
            tl.store(ptrs + row_off + 3 * stride_h, (r3.to(tl.int64) < threshold).to(tl.uint8), mask=_mask_where(ok, row + 3 < anchor_rows))

    @triton.jit
    def _store_keep_row(keep_ptr, unit, lane, run_offset, run_end, age, block_h, kept, ok,
                        BLOCK: tl.constexpr, KEEP_BITS: tl.constexpr):
        """A unit is kept iff no hit lies within the block_h - 1 rows above it (or on its row).
        Stores keep for `unit` (its offset in the mask map) and returns `kept` plus this row's
        kept units. KEEP_BITS=8: keep_ptr is the uint8 keep map. KEEP_BITS=1: keep_ptr is the
        zeroed int32 bit mask; bit `unit` is bit unit % 32 of word unit // 32 (little-endian:
        the bytes `_pack_kernel` writes), so no keep map is written and no pack pass made.

        Lanes whose units share a word are consecutive lanes within one run (`_lane_coords`),
        so the program's part of a word, cut at the edges of groups of 32 lanes, is an OR over
        consecutive lanes of one group: taken at the part's last lane as a difference of the
        group's prefix sums of `keep << bit` (a scan and a gather within 32 lanes: shuffles,
        no shared memory) and OR-ed into memory. A word split between rows, planes, lane
        groups or programs gets each part by its own atomic OR; parts with no kept unit are
        skipped."""
        keep = (age >= block_h) & ok
        if KEEP_BITS == 8:
            tl.store(keep_ptr + unit, keep.to(tl.uint8), mask=ok)
        else:
            bit = (unit & 31).to(tl.int32)
            # Within groups of 32 lanes (the rows of a (BLOCK // 32, 32) view): a part is a
            # difference of prefix sums of `keep << bit` (distinct bits: the sum is the OR;
            # int32 sums wrap, but a part is < 2**32 and comes out exact mod 2**32). `first`:
            # the part's first lane, as an index within the group.
            in_group = lane % 32
            first = tl.reshape(in_group - tl.minimum(tl.minimum(bit, run_offset), in_group), (BLOCK // 32, 32))
            prefix = tl.cumsum(tl.reshape(keep.to(tl.int32) << bit, (BLOCK // 32, 32)), axis=1)
            before = tl.where(first > 0, _gather(prefix, tl.maximum(first - 1, 0), 1), 0)
            ends = (bit == 31) | run_end | (in_group == 31)
            part = tl.reshape(prefix - before, (BLOCK,))
            # `ok`: only a unit of the map ever addresses memory.
            tl.atomic_or(keep_ptr + (unit >> 5), part, mask=ends & ok & (part != 0), sem="relaxed")
        return kept + keep.to(tl.int32)

    @triton.jit
    def _rows_without_anchors(keep_ptr, unit, first_row, height, stride_h, lane, run_offset, run_end, age,
                              block_h, kept, ok, BLOCK: tl.constexpr, KEEP_BITS: tl.constexpr,
                              INDEX_64: tl.constexpr):
        # Rows first_row .. height - 1 have no anchors (the last bh - 1 rows of the map): only
        # blocks from above reach them. Returns the updated count of kept units.
        for row in range(first_row, height):
            age = tl.minimum(age + 1, block_h)
            kept = _store_keep_row(keep_ptr, unit + _row_offset(row, stride_h, INDEX_64), lane, run_offset,
                                   run_end, age, block_h, kept, ok, BLOCK, KEEP_BITS)
        return kept

    @triton.jit
    def _dilate_kernel(
        seeds_ptr,  # uint8 seed map (valid at anchors only; nothing else is read)
        keep_ptr,  # keep out, for the units of the seed map (`_store_keep_row`)
        total_kept_ptr,  # int64[1]: every program adds the units it kept
        num_lanes,  # planes * width
        planes_per_sample,
        height,
        width,
        anchor_rows,
        anchor_cols,
        block_h,
        stride_n,
        stride_c,
        stride_h,
        stride_w,
        BLOCK_W_SIZE: tl.constexpr,  # bw: the row OR is unrolled
        BLOCK: tl.constexpr,
        KEEP_BITS: tl.constexpr,
        COLS_OUTER: tl.constexpr,
        INDEX_64: tl.constexpr,
    ):
        u = _program_lanes(0, BLOCK, INDEX_64)
        plane, col, base, run_offset, run_end = _lane_coords(u, width, planes_per_sample, stride_n, stride_c,
                                                             COLS_OUTER)
        lane = tl.arange(0, BLOCK)
        ok = u < num_lanes
        unit = base + col * stride_w  # offset of (row 0, col)
        # Anchors (row, col - dx) for dx < bw are the ones whose block covers col; which of
        # them exist depends on the column only.
        # Distance (in rows) to the last row whose anchors hit this column; block_h = none
        # within reach.
        age = tl.zeros((BLOCK,), tl.int32) + block_h
        kept = tl.zeros((BLOCK,), tl.int32)
        for row in range(0, anchor_rows):
            row_off = _row_offset(row, stride_h, INDEX_64)
            hit = tl.zeros((BLOCK,), tl.int32)
            for dx in tl.static_range(BLOCK_W_SIZE):
                src_ok = ok & (col >= dx) & (col - dx < anchor_cols)
                seed = tl.load(seeds_ptr + unit + row_off - dx * stride_w, mask=src_ok, other=0)
                hit = hit | seed.to(tl.int32)
            age = tl.where(hit != 0, 0, tl.minimum(age + 1, block_h))
            kept = _store_keep_row(keep_ptr, unit + row_off, lane, run_offset, run_end, age, block_h, kept, ok,
                                   BLOCK, KEEP_BITS)
        kept = _rows_without_anchors(keep_ptr, unit, anchor_rows, height, stride_h, lane, run_offset, run_end,
                                     age, block_h, kept, ok, BLOCK, KEEP_BITS, INDEX_64)
        tl.atomic_add(total_kept_ptr, tl.sum(kept, axis=0).to(tl.int64))

    @triton.jit
    def _fused_row(word, row, threshold, seeds_ok, anchor_rows, height, back, back_ok, age, block_h,
                   keep_ptr, unit, stride_h, lane, run_offset, run_end, out_ok, kept, BLOCK: tl.constexpr,
                   KEEP_BITS: tl.constexpr, INDEX_64: tl.constexpr):
        # One row of `_mask_kernel`: this row's seeds -> hits -> age -> keep.
        seed = ((word.to(tl.int64) < threshold) & seeds_ok & (row < anchor_rows)).to(tl.int32)
        # Seeds among lanes i - bw + 1 .. i (the anchors whose block covers lane i's column):
        # a difference of prefix sums; lane i - bw's sum is fetched from within the tile.
        prefix = tl.cumsum(seed, axis=0)
        before = tl.where(back_ok, _gather(prefix, back, 0), 0)
        age = tl.where(prefix - before > 0, 0, tl.minimum(age + 1, block_h))
        row_ok = _mask_where(out_ok, row < height)
        return age, _store_keep_row(keep_ptr, unit + _row_offset(row, stride_h, INDEX_64), lane, run_offset, run_end,
                                    age, block_h, kept, row_ok, BLOCK, KEEP_BITS)

    @triton.jit(do_not_specialize=["host_key"])
    def _mask_kernel(
        rng_seed_ptr,  # int64[1]: the Philox key drawn by torch.randint on x's device
        host_key,  # or the key itself, drawn on the host (>= 0; `_draw_philox_key`)
        keep_ptr,  # keep out (`_store_keep_row`; the bit mask zeroed by the caller)
        total_kept_ptr,  # int64[1], zeroed by the caller: every program adds the units it kept
        num_lanes,  # planes * width
        planes_per_sample,
        height,
        width,
        anchor_rows,
        anchor_cols,
        block_h,
        block_w,
        threshold,
        stride_n,
        stride_c,
        stride_h,
        stride_w,
        BLOCK: tl.constexpr,
        KEEP_BITS: tl.constexpr,
        INDEX_64: tl.constexpr,
    ):
        # Seeds and dilation in one pass, for masks whose rows are plane-major in memory (NCHW,
        # and shared masks): no seed map is written or read. Each program owns BLOCK lanes of
        # the flat (plane, column) order and writes the last BLOCK - (bw - 1); the first bw - 1
        # lanes only redraw the seeds to their left (their own columns belong to the previous
        # program). Seeds of a plane's last bw - 1 columns never exist (anchors stop at
        # W - bw), so a window never reaches into the previous plane.
        halo = block_w - 1
        i = tl.arange(0, BLOCK)
        u = _program_lanes(halo, BLOCK, INDEX_64)
        lane_ok = (u >= 0) & (u < num_lanes)
        out_ok = lane_ok & (i >= halo)
        plane, col, base, run_offset, run_end = _lane_coords(tl.maximum(u, 0), width, planes_per_sample, stride_n,
                                                             stride_c, False)
        unit = base + col * stride_w
        seeds_ok = lane_ok & (col < anchor_cols)
        back = tl.maximum(i - block_w, 0)
        back_ok = i >= block_w
        key = _philox_key(rng_seed_ptr, host_key)
        counter_hi = plane.to(tl.uint32)
        age = tl.zeros((BLOCK,), tl.int32) + block_h
        kept = tl.zeros((BLOCK,), tl.int32)
        for group in range(0, tl.cdiv(anchor_rows, 4)):
            # The same Philox counters as `_seed_kernel`: both paths draw the same mask.
            r0, r1, r2, r3 = tl.philox(key, (group * anchor_cols + col).to(tl.uint32), counter_hi, 0, 0)
            row = group * 4
            age, kept = _fused_row(r0, row, threshold, seeds_ok, anchor_rows, height, back, back_ok, age,
                                   block_h, keep_ptr, unit, stride_h, i, run_offset, run_end, out_ok, kept, BLOCK,
                                   KEEP_BITS, INDEX_64)
            age, kept = _fused_row(r1, row + 1, threshold, seeds_ok, anchor_rows, height, back, back_ok, age,
                                   block_h, keep_ptr, unit, stride_h, i, run_offset, run_end, out_ok, kept, BLOCK,
                                   KEEP_BITS, INDEX_64)
            age, kept = _fused_row(r2, row + 2, threshold, seeds_ok, anchor_rows, height, back, back_ok, age,
                                   block_h, keep_ptr, unit, stride_h, i, run_offset, run_end, out_ok, kept, BLOCK,
                                   KEEP_BITS, INDEX_64)
            age, kept = _fused_row(r3, row + 3, threshold, seeds_ok, anchor_rows, height, back, back_ok, age,
                                   block_h, keep_ptr, unit, stride_h, i, run_offset, run_end, out_ok, kept, BLOCK,
                                   KEEP_BITS, INDEX_64)
        # The row groups cover the anchor rows rounded up to a multiple of 4.
        kept = _rows_without_anchors(keep_ptr, unit, tl.cdiv(anchor_rows, 4) * 4, height, stride_h, i, run_offset,
                                     run_end, age, block_h, kept, out_ok, BLOCK, KEEP_BITS, INDEX_64)
        tl.atomic_add(total_kept_ptr, tl.sum(kept, axis=0).to(tl.int64))

    # ---- Sparse seeds (the default at the paper's seed rates; `_SPARSE_MAX_GAMMA`): the seeds
    # are drawn as a Bernoulli process through its geometric gaps, and each seed clears its
    # block from a bit mask of kept units. Work proportional to the seeds, not to the anchors.

    @triton.jit
    def _f64(value: tl.constexpr):
        # An exact fp64 constant whatever Triton's version: a bare Python float is typed by
        # Triton's scalar rules, which have made it an fp32 constant (1/3 rounded to 24 bits)
        # before widening it next to an fp64 tensor.
        return tl.full((), value, tl.float64)

    @triton.jit
    def _log_unit(u):
        """ln(u) for fp64 u in [2**-53, 1], in fp64 arithmetic only: the same code compiled
        and under the interpreter (which has no libdevice), no libm call. u = 2**e * m with m
        in [sqrt(1/2), sqrt(2)); ln m = 2 atanh(s) with s = (m - 1) / (m + 1), |s| <= 0.172,
        summed to s**23 (the rest is below 1e-17 of it): within a few ulp of ln(u)."""
        bits = u.to(tl.int64, bitcast=True)
        exponent = ((bits >> 52) & 0x7FF) - 1023
        m = ((bits & 0xFFFFFFFFFFFFF) | 0x3FF0000000000000).to(tl.float64, bitcast=True)  # [1, 2)
        above = m > _f64(1.4142135623730951)
        m = tl.where(above, m * _f64(0.5), m)
        exponent = tl.where(above, exponent + 1, exponent)
        s = (m - _f64(1.0)) / (m + _f64(1.0))
        z = s * s
        series = _f64(1.0 / 23.0)
        for k in tl.static_range(10, -1, -1):  # Horner: sum of z**k / (2k + 1), k = 0 .. 11
            series = series * z + _f64(1.0 / (2 * k + 1))
        return exponent.to(tl.float64) * _f64(0.6931471805599453) + _f64(2.0) * s * series

    @triton.jit
    def _geometric_gap(word_hi, word_lo, log_q, limit):
        # Failures before the next success of a Bernoulli(gamma) process, capped at `limit`:
        # floor(ln u / ln(1 - gamma)) for u uniform on (0, 1] with 53 bits from two Philox
        # words. P(gap >= k) = P(u <= (1 - gamma)**k) up to the rounding of the logs and the
        # quotient (a few ulp: that probability is off by at most ~1e-13 of itself) and u's
        # 2**-53 steps, where one word per anchor is exact to 2**-33 absolute.
        m = (word_hi >> 11).to(tl.int64) * 4294967296 + word_lo.to(tl.int64)
        u = (m + 1).to(tl.float64) * _f64(2.0**-53)
        gap = tl.minimum(_log_unit(u) / log_q, limit.to(tl.float64))
        return gap.to(tl.int64)  # truncation: floor of a non-negative number

    @triton.jit
    def _popcount32(v):
        # Set bits of v (int64 in [0, 2**32)): the SWAR sum, no libdevice (the interpreter has none).
        v = v - ((v >> 1) & 0x55555555)
        v = (v & 0x33333333) + ((v >> 2) & 0x33333333)
        v = (v + (v >> 4)) & 0x0F0F0F0F
        return ((v * 0x01010101) & 0xFFFFFFFF) >> 24

    @triton.jit
    def _clear_block_bits(words_ptr, anchor, ok, anchors_per_plane, anchor_cols, planes_per_sample, block_h,
                          block_w, run_words, stride_n, stride_c, stride_h, stride_w, RUNS: tl.constexpr,
                          INDEX_64: tl.constexpr):
        # Clear the keep bits of the bh x bw block whose top-left is `anchor` (a logical
        # (plane, row, column) index of the anchors; bit m = unit at offset m of the mask map)
        # with atomic ANDs, and return how many bits this call cleared: the atomics return
        # the words as they were, and a bit goes from 1 to 0 once, so the counts of all calls
        # add up to the dropped units however the blocks overlap. RUNS (unit column stride 1:
        # NCHW, shared masks): each of the block's rows is bw consecutive bits, cleared word by
        # word (at most run_words words); otherwise (per channel on channels_last x, units C
        # apart) bit by bit. Below 2**31 units in 32-bit ints: the divisions are most of this
        # function's instructions, and a 64-bit one is emulated (several times the cost).
        anchor = tl.where(ok, anchor, 0)
        if not INDEX_64:
            anchor = anchor.to(tl.int32)
        plane = anchor // anchors_per_plane
        rest = anchor - plane * anchors_per_plane
        row = rest // anchor_cols
        col = rest - row * anchor_cols
        n = plane // planes_per_sample
        c = plane - n * planes_per_sample
        top_left = n * stride_n + c * stride_c + row * stride_h + col * stride_w
        one = tl.full((), 1, tl.int64)  # bit masks in 64 bits: a shift by 32 is defined there
        cleared = tl.zeros(anchor.shape, tl.int32)
        for dy in range(0, block_h):
            start = top_left + dy * stride_h
            if RUNS:
                for k in range(0, run_words):
                    word = (start >> 5) + k
                    lo = tl.maximum(start, word * 32)
                    width = tl.maximum(tl.minimum(start + block_w, word * 32 + 32) - lo, 0)
                    bits = ((one << width) - 1) << (lo - word * 32)  # int64: width may be 32
                    hit = ok & (width > 0)
                    old = tl.atomic_and(words_ptr + word, (~bits).to(tl.int32), mask=hit, sem="relaxed")
                    was_kept = old.to(tl.int64) & 0xFFFFFFFF & bits
                    cleared += tl.where(hit, _popcount32(was_kept), 0).to(tl.int32)
            else:
                for dx in range(0, block_w):
                    unit = start + dx * stride_w
                    bit = (unit & 31).to(tl.int32)
                    old = tl.atomic_and(words_ptr + (unit >> 5), (~(one << bit)).to(tl.int32), mask=ok, sem="relaxed")
                    cleared += tl.where(ok, (old >> bit) & 1, 0).to(tl.int32)
        return cleared

    @triton.jit(do_not_specialize=["host_key", "log_q_bits"])
    def _sparse_seed_kernel(
        rng_seed_ptr,  # int64[1]: the Philox key drawn by torch.randint on x's device
        host_key,  # or the key itself, drawn on the host (>= 0; `_draw_philox_key`)
        words_ptr,  # int32 words of keep bits, every bit set by the caller
        total_kept_ptr,  # int64[1], -1 from the caller: becomes the kept count
        num_words,  # words of the map, ceil(mask_numel / 32)
        num_padded_words,  # words in the buffer (num_words, or one more)
        mask_numel,
        num_anchors,  # planes * anchor_rows * anchor_cols
        num_chunks,
        chunk,  # anchors per lane (`_seed_chunk`: a function of gamma only)
        log_q_bits,  # ln(1 - gamma) as the int64 bits of an fp64 (a float argument is fp32)
        anchors_per_plane,
        anchor_cols,
        planes_per_sample,
        block_h,
        block_w,
        run_words,
        stride_n,
        stride_c,
        stride_h,
        stride_w,
        BLOCK: tl.constexpr,
        RUNS: tl.constexpr,
        INDEX_64: tl.constexpr,
    ):
        # Lane `chunk_id` walks anchors chunk_id * chunk .. + chunk - 1 of the logical order
        # (plane, anchor row, anchor column) from seed to seed: each gap is geometric, so the
        # seeds are iid Bernoulli(gamma) over the anchors (disjoint chunks are independent).
        # Two gaps per Philox call; the counter is (draw, chunk): the mask depends on the key,
        # gamma and the shape only, not on x's memory layout or the launch sizes. The loop
        # runs until every lane of the program has left its chunk: (1 + the most seeds of any
        # of its lanes) / 2 steps, 3 or 4 for 128 lanes at ~1.3 seeds per chunk. Each seed
        # clears its block's keep bits; the count starts at -1 (the caller's fill), program 0
        # adds mask_numel + 1 and every program subtracts the bits its lanes cleared: integer
        # atomic adds, so the kept count is exact whatever their order.
        if tl.program_id(0) == 0:
            # Bits past the map's last unit (the last word's rest, a padding word) hold no
            # unit: cleared here, not counted.
            # In int64 (a word index times 32 passes 2**31 on the largest maps), by addition:
            # an argument equal to 1 arrives as a constant, which has no `.to`.
            last = tl.zeros((), tl.int64) + num_words - 1
            valid = mask_numel - last * 32
            tl.atomic_and(words_ptr + last, ((tl.full((), 1, tl.int64) << valid) - 1).to(tl.int32), sem="relaxed")
            if num_padded_words > num_words:
                tl.atomic_and(words_ptr + num_words, 0, sem="relaxed")
            tl.atomic_add(total_kept_ptr, tl.zeros((), tl.int64) + mask_numel + 1, sem="relaxed")
        log_q = log_q_bits.to(tl.float64, bitcast=True)
        chunk_id = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
        key = _philox_key(rng_seed_ptr, host_key)
        id_lo = chunk_id.to(tl.uint32)
        id_hi = (chunk_id >> 32).to(tl.uint32)
        end = tl.minimum((chunk_id + 1) * chunk, num_anchors)
        anchor = chunk_id * chunk - 1  # the last seed so far
        active = chunk_id < num_chunks
        cleared = tl.zeros((BLOCK,), tl.int32)
        draw = 0
        while tl.max(active.to(tl.int32), axis=0) > 0:
            r0, r1, r2, r3 = tl.philox(key, tl.zeros((BLOCK,), tl.uint32) + draw, id_lo, id_hi, 0x5EED)
            anchor = anchor + 1 + _geometric_gap(r0, r1, log_q, chunk)
            active = active & (anchor < end)
            cleared += _clear_block_bits(words_ptr, anchor, active, anchors_per_plane, anchor_cols, planes_per_sample,
                                         block_h, block_w, run_words, stride_n, stride_c, stride_h, stride_w, RUNS,
                                         INDEX_64)
            anchor = anchor + 1 + _geometric_gap(r2, r3, log_q, chunk)
            active = active & (anchor < end)
            cleared += _clear_block_bits(words_ptr, anchor, active, anchors_per_plane, anchor_cols, planes_per_sample,
                                         block_h, block_w, run_words, stride_n, stride_c, stride_h, stride_w, RUNS,
                                         INDEX_64)
            draw += 1
        tl.atomic_add(total_kept_ptr, -tl.sum(cleared, axis=0).to(tl.int64), sem="relaxed")

    @triton.jit
    def _pack_kernel(keep_ptr, bits_ptr, numel, num_bytes, BLOCK_BYTES: tl.constexpr, INDEX_64: tl.constexpr):
        pid = tl.program_id(0)
        if INDEX_64:
            byte = pid.to(tl.int64) * BLOCK_BYTES + tl.arange(0, BLOCK_BYTES)
        else:
            byte = pid * BLOCK_BYTES + tl.arange(0, BLOCK_BYTES)
        bit = tl.arange(0, 8)
        elem = byte[:, None] * 8 + bit[None, :]
        keep = tl.load(keep_ptr + elem, mask=elem < numel, other=0).to(tl.int32)
        packed = tl.sum(keep << bit[None, :], axis=1)
        tl.store(bits_ptr + byte, packed.to(tl.uint8), mask=byte < num_bytes)

    # The reference's eps as an exact fp64 constant: a float kernel argument (`eps`) is fp32.
    _EPS_F64 = tl.constexpr(_EPS)

    @triton.jit
    def _scale(total_kept_ptr, mask_numel, eps, COMPUTE_F64: tl.constexpr):
        # numel / (count + eps) with the reference's operations and rounding, so both give
        # the same scale bit for bit. fp32: IEEE division (div_rn: Triton's fp32 `/` is
        # approximate on GPU). fp64 (`_scale_args`): mask_numel comes as an int and eps as
        # `_EPS_F64`, both exact, and fp64 `/` is IEEE.
        if COMPUTE_F64:
            count = tl.load(total_kept_ptr).to(tl.float64)
            scale = tl.cast(mask_numel, tl.float64) / (count + tl.full((), _EPS_F64, tl.float64))
        else:
            count = tl.load(total_kept_ptr).to(tl.float32)
            # tl.cast: a Python float under the interpreter, an fp32 scalar when compiled.
            scale = tl.math.div_rn(tl.cast(mask_numel, tl.float32), count + eps)
        return scale

    @triton.jit
    def _to_compute(x, COMPUTE_F64: tl.constexpr):
        # x in the compute dtype: fp64 for fp64 x (fp32 would round a tiny value to 0), else
        # fp32. Comparisons are made there too: Triton 3.9's interpreter compares bf16 values
        # as their uint16 bits (-0.0 <= 0 is false there).
        if COMPUTE_F64:
            x = x.to(tl.float64)
        else:
            x = x.to(tl.float32)
        return x

    @triton.jit
    def _kept_times_scale(x, keep, scale, COMPUTE_F64: tl.constexpr, RELU: tl.constexpr):
        # where(keep, x, 0) * scale in fp32 (fp64 for fp64 x: `_scale` is then fp64); with
        # RELU, of relu(x) (as torch.relu: negatives become 0, NaN stays NaN; RELU 1 keeps
        # -0.0 as torch's CPU relu does, RELU 2 gives +0.0 as its CUDA relu does).
        x = _to_compute(x, COMPUTE_F64)
        if RELU == 1:
            x = tl.where(x < 0, 0.0, x)
        elif RELU == 2:
            x = tl.where(x <= 0, 0.0, x)
        return tl.where(keep, x, 0.0) * scale

    @triton.jit
    def _to_bfloat16_rne(y):
        # fp32 -> bf16, round to nearest even, NaN stays NaN. Compiled Triton rounds the same
        # way, but Triton's interpreter truncates; doing it by hand makes the interpreter (CI)
        # and the GPU agree with torch bit for bit.
        bits = y.to(tl.uint32, bitcast=True)
        rounded = (bits + 0x7FFF + ((bits >> 16) & 1)) >> 16
        rounded = tl.where(y != y, 0x7FC0, rounded)
        return rounded.to(tl.uint16).to(tl.bfloat16, bitcast=True)

    @triton.jit
    def _saturate(y, OUT_BF16: tl.constexpr):
        # Forward in fp16 / bf16 (as the reference's saturating_cast): a kept unit beyond the
        # output dtype's range becomes its largest finite value, not inf. NaN fails both
        # comparisons and stays NaN.
        if OUT_BF16:
            largest = 3.3895313892515355e38
        else:
            largest = 65504.0
        return tl.where(y > largest, largest, tl.where(y < -largest, -largest, y))

    @triton.jit
    def _round_as_stored(y, like_ptr, OUT_BF16: tl.constexpr):
        # y as it reads back after a store to like_ptr's dtype (what an unfused op hands on).
        if OUT_BF16:
            rounded = _to_bfloat16_rne(y).to(y.dtype)
        else:
            rounded = y.to(like_ptr.dtype.element_ty).to(y.dtype)
        return rounded

    @triton.jit
    def _store_result(out_ptrs, y, ok, OUT_BF16: tl.constexpr, SATURATE: tl.constexpr):
        if SATURATE:  # forward in fp16 / bf16; backward passes SATURATE=False
            y = _saturate(y, OUT_BF16)
        if OUT_BF16:
            tl.store(out_ptrs, _to_bfloat16_rne(y), mask=ok)
        else:
            tl.store(out_ptrs, y.to(out_ptrs.dtype.element_ty), mask=ok)

    @triton.jit
    def _flat_byte_tile(BLOCK: tl.constexpr, INDEX_64: tl.constexpr):
        # (mask byte indices (BLOCK // 8,), bit in the byte (8,)) of this program's elements.
        if INDEX_64:
            start = tl.program_id(0).to(tl.int64) * BLOCK
        else:
            start = tl.program_id(0) * BLOCK
        return start // 8 + tl.arange(0, BLOCK // 8), tl.arange(0, 8)

    @triton.jit
    def _flat_tile(numel, BLOCK: tl.constexpr, INDEX_64: tl.constexpr):
        # `_flat_keep_tile`'s (offsets, in range), where no mask is read.
        byte_idx, bit = _flat_byte_tile(BLOCK, INDEX_64)
        offs = byte_idx[:, None] * 8 + bit[None, :]
        return offs, offs < numel

    @triton.jit
    def _flat_keep_tile(bits_ptr, numel, BLOCK: tl.constexpr, INDEX_64: tl.constexpr):
        """(offsets, in range, keep) of this program's BLOCK elements, for a per-channel mask
        in x's memory order (element m <-> bit m). The tile is (BLOCK // 8, 8) so each mask
        byte is loaded once for its 8 elements (a flat tile makes the compiler issue one
        byte load per element), while x is still read with contiguous 16-byte vectors."""
        byte_idx, bit = _flat_byte_tile(BLOCK, INDEX_64)
        offs, ok = _flat_tile(numel, BLOCK, INDEX_64)
        byte = tl.load(bits_ptr + byte_idx, mask=byte_idx * 8 < numel, other=0).to(tl.int32)
        return offs, ok, ((byte[:, None] >> bit[None, :]) & 1) != 0

    @triton.jit
    def _apply_flat_kernel(
        x_ptr,
        bits_ptr,
        total_kept_ptr,
        out_ptr,
        numel,
        mask_numel,
        eps,
        BLOCK: tl.constexpr,
        COMPUTE_F64: tl.constexpr,
        OUT_BF16: tl.constexpr,
        SATURATE: tl.constexpr,
        RELU: tl.constexpr,
        INDEX_64: tl.constexpr,
    ):
        offs, ok, keep = _flat_keep_tile(bits_ptr, numel, BLOCK, INDEX_64)
        scale = _scale(total_kept_ptr, mask_numel, eps, COMPUTE_F64)
        x = tl.load(x_ptr + offs, mask=ok, other=0)
        y = _kept_times_scale(x, keep, scale, COMPUTE_F64, RELU)
        _store_result(out_ptr + offs, y, ok, OUT_BF16, SATURATE)

    @triton.jit
    def _apply_rows_kernel(
        x_ptr,
        bits_ptr,
        total_kept_ptr,
        out_ptr,
        num_rows,
        row_vectors,  # elements of x per row (H * W) / ROW_ALIGN
        rows_per_mask_row,  # rows of x that share one mask row (C)
        col_blocks,  # programs per row block
        mask_numel,
        eps,
        BLOCK_R: tl.constexpr,
        BLOCK_B: tl.constexpr,
        COMPUTE_F64: tl.constexpr,
        OUT_BF16: tl.constexpr,
        SATURATE: tl.constexpr,
        RELU: tl.constexpr,
        INDEX_64: tl.constexpr,
        ROW_ALIGN: tl.constexpr,  # the largest power of 2 (at most 16) that divides H * W
    ):
        # Shared mask on NCHW x: x viewed as (N * C, H * W) rows; x row r uses mask row
        # r // C (a per-row division, not per element). One
        # 1-D grid (CUDA caps grid axes 1 and 2 at 65535), split by one scalar division.
        # The row length as a multiple of a constant, so that the compiler knows the rows'
        # alignment: Triton's launcher marks an int divisible by 16 or not at all (and
        # tl.multiple_of cannot mark an argument), so rows of 50 * 68 or 25 * 34 elements moved
        # in 2- or 4-byte accesses. Now as wide as H * W allows: 16 bytes on 50 * 68; on
        # 25 * 34 (2 * 425) 8 for fp32, 4 for fp16 / bf16.
        row_len = row_vectors * ROW_ALIGN
        pid = tl.program_id(0)
        rows = (pid // col_blocks) * BLOCK_R + tl.arange(0, BLOCK_R)
        cols = (pid % col_blocks) * BLOCK_B + tl.arange(0, BLOCK_B)
        ok = (rows < num_rows)[:, None] & (cols < row_len)[None, :]
        if INDEX_64:
            rows = rows.to(tl.int64)
            cols = cols.to(tl.int64)
        x_off = rows[:, None] * row_len + cols[None, :]
        m_idx = (rows // rows_per_mask_row)[:, None] * row_len + cols[None, :]
        byte = tl.load(bits_ptr + (m_idx >> 3), mask=ok, other=0).to(tl.int32)
        keep = ((byte >> (m_idx & 7).to(tl.int32)) & 1) != 0
        scale = _scale(total_kept_ptr, mask_numel, eps, COMPUTE_F64)
        x = tl.load(x_ptr + x_off, mask=ok, other=0)
        y = _kept_times_scale(x, keep, scale, COMPUTE_F64, RELU)
        _store_result(out_ptr + x_off, y, ok, OUT_BF16, SATURATE)

    @triton.jit
    def _apply_pixels_kernel(
        x_ptr,
        bits_ptr,
        total_kept_ptr,
        out_ptr,
        num_pixels,  # N * H * W
        channels,
        mask_numel,
        eps,
        BLOCK_P: tl.constexpr,
        BLOCK_C: tl.constexpr,
        COMPUTE_F64: tl.constexpr,
        OUT_BF16: tl.constexpr,
        SATURATE: tl.constexpr,
        RELU: tl.constexpr,
        INDEX_64: tl.constexpr,
    ):
        # Shared mask on channels_last x: x viewed as (pixels, C); pixel p uses mask bit p.
        pix = tl.program_id(0) * BLOCK_P + tl.arange(0, BLOCK_P)
        ch = tl.program_id(1) * BLOCK_C + tl.arange(0, BLOCK_C)
        if INDEX_64:
            pix = pix.to(tl.int64)
        ok = (pix < num_pixels)[:, None] & (ch < channels)[None, :]
        byte = tl.load(bits_ptr + (pix >> 3), mask=pix < num_pixels, other=0).to(tl.int32)
        keep = ((byte >> (pix & 7).to(tl.int32)) & 1) != 0
        scale = _scale(total_kept_ptr, mask_numel, eps, COMPUTE_F64)
        x_off = pix[:, None] * channels + ch[None, :]
        x = tl.load(x_ptr + x_off, mask=ok, other=0)
        y = _kept_times_scale(x, keep[:, None], scale, COMPUTE_F64, RELU)
        _store_result(out_ptr + x_off, y, ok, OUT_BF16, SATURATE)

    @triton.jit
    def _relu_grad_kernel(
        grad_ptr,
        out_ptr,  # the forward's output, in grad's memory order
        total_kept_ptr,
        grad_in_ptr,
        numel,
        mask_numel,
        eps,
        BLOCK: tl.constexpr,
        COMPUTE_F64: tl.constexpr,
        OUT_BF16: tl.constexpr,
        INDEX_64: tl.constexpr,
    ):
        # Backward of the fused ReLU + DropBlock: out > 0 iff the unit was kept and x > 0
        # (the scale is >= 1 - 1e-6 / numel, so a kept positive unit stays positive), and
        # out is NaN iff it was kept and x is NaN, so grad_in = where(out <= 0, 0, grad) *
        # scale (torch.relu's backward passes NaN units' gradient) needs no mask: the
        # output, which the next layer keeps anyway, is the mask.
        if INDEX_64:
            offs = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
        else:
            offs = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
        ok = offs < numel
        out = tl.load(out_ptr + offs, mask=ok, other=0)
        grad = tl.load(grad_ptr + offs, mask=ok, other=0)
        scale = _scale(total_kept_ptr, mask_numel, eps, COMPUTE_F64)
        # Not (out <= 0), so a NaN output passes its gradient as torch.relu's backward does;
        # `== 0`, not `~`: Triton 3.3's interpreter cannot invert a comparison's result.
        y = _kept_times_scale(grad, (_to_compute(out, COMPUTE_F64) <= 0) == 0, scale, COMPUTE_F64, False)
        _store_result(grad_in_ptr + offs, y, ok, OUT_BF16, False)

    @triton.jit
    def _dropblock_as_stored(x, keep, scale, like_ptr, COMPUTE_F64: tl.constexpr, OUT_BF16: tl.constexpr,
                             SATURATE: tl.constexpr):
        # DropBlock's forward output as an unfused op stores it (saturated in fp16 / bf16,
        # rounded to like_ptr's dtype), in the compute dtype.
        y = _kept_times_scale(x, keep, scale, COMPUTE_F64, False)
        if SATURATE:
            y = _saturate(y, OUT_BF16)
        return _round_as_stored(y, like_ptr, OUT_BF16)

    @triton.jit
    def _apply_residual_kernel(
        x_ptr,
        bits_ptr,
        total_kept_ptr,
        residual_ptr,  # in x's memory order and dtype
        residual_bits_ptr,  # with RESIDUAL_MASKED: the residual's own mask (else unused)
        residual_kept_ptr,
        out_ptr,
        numel,
        mask_numel,
        eps,
        BLOCK: tl.constexpr,
        COMPUTE_F64: tl.constexpr,
        OUT_BF16: tl.constexpr,
        SATURATE: tl.constexpr,
        RESIDUAL_MASKED: tl.constexpr,
        INDEX_64: tl.constexpr,
        RELU: tl.constexpr,
    ):
        # relu(residual + DropBlock(x)), the end of a residual block (per-channel mask), in
        # one pass; with RESIDUAL_MASKED relu(DropBlock'(residual) + DropBlock(x)), the
        # residual with a mask of its own (the branch's last DropBlock). Each step rounds as
        # the unfused ops do: each DropBlock's output saturated and rounded to x's dtype,
        # the sum rounded to it (fp16 overflows to inf as torch's add does), then the ReLU
        # (NaN stays NaN, -0.0 stays -0.0).
        offs, ok, keep = _flat_keep_tile(bits_ptr, numel, BLOCK, INDEX_64)
        x = tl.load(x_ptr + offs, mask=ok, other=0)
        y = _dropblock_as_stored(x, keep, _scale(total_kept_ptr, mask_numel, eps, COMPUTE_F64), out_ptr,
                                 COMPUTE_F64, OUT_BF16, SATURATE)
        r = tl.load(residual_ptr + offs, mask=ok, other=0).to(y.dtype)
        if RESIDUAL_MASKED:
            _, _, residual_keep = _flat_keep_tile(residual_bits_ptr, numel, BLOCK, INDEX_64)
            r = _dropblock_as_stored(r, residual_keep, _scale(residual_kept_ptr, mask_numel, eps, COMPUTE_F64),
                                     out_ptr, COMPUTE_F64, OUT_BF16, SATURATE)
        total = _round_as_stored(r + y, out_ptr, OUT_BF16)
        if RELU == 1:  # the block's ReLU, with the sign of zero of torch's on this device
            total = tl.where(total < 0, 0.0, total)
        else:
            total = tl.where(total <= 0, 0.0, total)
        _store_result(out_ptr + offs, total, ok, OUT_BF16, False)

    @triton.jit
    def _residual_grad_kernel(
        grad_ptr,
        out_ptr,  # the forward's output, in grad's memory order
        bits_ptr,
        total_kept_ptr,
        residual_bits_ptr,  # with RESIDUAL_MASKED: the residual's own mask (else unused)
        residual_kept_ptr,
        grad_x_ptr,
        grad_residual_ptr,
        numel,
        mask_numel,
        eps,
        BLOCK: tl.constexpr,
        COMPUTE_F64: tl.constexpr,
        OUT_BF16: tl.constexpr,
        RESIDUAL_MASKED: tl.constexpr,
        INDEX_64: tl.constexpr,
        GRAD_X: tl.constexpr,  # whether x's gradient is wanted (else grad_x_ptr is unused)
        GRAD_RESIDUAL: tl.constexpr,  # whether the residual's is (else grad_residual_ptr is unused)
    ):
        # Backward of relu(residual + DropBlock(x)): the ReLU's gradient (zero where
        # out <= 0, as torch's) goes through the mask to x, and to the residual as it is
        # (RESIDUAL_MASKED: through the residual's mask). A side autograd does not want
        # costs nothing: neither its mask nor its store.
        offs, ok = _flat_tile(numel, BLOCK, INDEX_64)
        out = tl.load(out_ptr + offs, mask=ok, other=0)
        grad = tl.load(grad_ptr + offs, mask=ok, other=0)
        grad = tl.where(_to_compute(out, COMPUTE_F64) <= 0, 0.0, _to_compute(grad, COMPUTE_F64))
        if GRAD_RESIDUAL:
            if RESIDUAL_MASKED:
                _, _, residual_keep = _flat_keep_tile(residual_bits_ptr, numel, BLOCK, INDEX_64)
                grad_residual = _kept_times_scale(grad, residual_keep, _scale(residual_kept_ptr, mask_numel, eps,
                                                                              COMPUTE_F64), COMPUTE_F64, False)
            else:
                grad_residual = grad
            _store_result(grad_residual_ptr + offs, grad_residual, ok, OUT_BF16, False)
        if GRAD_X:
            _, _, keep = _flat_keep_tile(bits_ptr, numel, BLOCK, INDEX_64)
            grad_x = _kept_times_scale(grad, keep, _scale(total_kept_ptr, mask_numel, eps, COMPUTE_F64), COMPUTE_F64,
                                       False)
            _store_result(grad_x_ptr + offs, grad_x, ok, OUT_BF16, False)


def _cdiv(a: int, b: int) -> int:
    """ceil(a / b) for the grids. Not `triton.cdiv`: that is a jit function, and calling one
    from Python costs ~6 us (its constexpr unwrapping), four times per forward+backward."""
    return -(-a // b)


def _next_power_of_2(n: int) -> int:
    return 1 << max(0, (n - 1).bit_length())


def _launch_sizes(device: torch.device) -> _LaunchSizes:
    return _GPU_SIZES if device.type == "cuda" else _INTERPRETER_SIZES


# Smaller ones would not build: the seed kernel and the mask kernels writing bits work in
# groups of 32 lanes, the per-channel apply kernels in tiles of whole mask bytes.
_MINIMUM_LAUNCH_SIZES = {"seed_block": (32, "a warp's lanes"), "tile_units": (32, "a warp's lanes"),
                         "apply_block": (8, "the elements of one mask byte")}


def check_launch_sizes(changes: Dict[str, Any]) -> None:
    """ValueError naming the entry unless every key is a `_LaunchSizes` field and every value
    a power of two (Triton block shapes are powers of two); `tile_units` and `seed_block` at
    least 32, `apply_block` at least 8; `mask_kernels` is 1 or 2, `keep_bits` 8 or 1,
    `sparse_seeds` 0, 1 or 2, `host_key` 0 or 1."""
    unknown = set(changes) - set(_LaunchSizes._fields)
    if unknown:
        raise ValueError(f"unknown launch size(s) {sorted(unknown)}; known: {list(_LaunchSizes._fields)}")
    for name, value in changes.items():
        if name == "host_key":
            if isinstance(value, bool) or value not in (0, 1):
                raise ValueError(f"launch size host_key must be 0 (torch.randint draws the key on the device) or "
                                 f"1 (derived on the host from the generator's seed and offset), got {value!r}")
            continue
        if name == "sparse_seeds":
            if isinstance(value, bool) or value not in (0, 1, 2):
                raise ValueError(f"launch size sparse_seeds must be 0 (dense mask kernels), 1 (sparse up to "
                                 f"gamma {_SPARSE_MAX_GAMMA}) or 2 (always sparse), got {value!r}")
            continue
        if isinstance(value, bool) or not isinstance(value, int) or value < 1 or value & (value - 1):
            raise ValueError(f"launch size {name} must be a power of two >= 1, got {value!r}")
        if name == "mask_kernels" and value > 2:
            raise ValueError(f"launch size mask_kernels must be 1 (fused) or 2 (seed + dilation), got {value!r}")
        if name in _MINIMUM_LAUNCH_SIZES and value < _MINIMUM_LAUNCH_SIZES[name][0]:
            least, why = _MINIMUM_LAUNCH_SIZES[name]
            raise ValueError(f"launch size {name} must be at least {least} ({why}), got {value!r}")
        if name == "keep_bits" and value not in (1, 8):
            raise ValueError(f"launch size keep_bits must be 8 (keep map, then packed) or 1 (bits), got {value!r}")
        if (name, value) in _GATHER_SIZES and not _gather_available():
            raise ValueError(f"launch size {name}={value} needs tl.gather (Triton >= 3.3); this Triton is "
                             f"{triton.__version__}: use mask_kernels=2, keep_bits=8")


def parse_launch_sizes(text: str) -> Dict[str, int]:
    """'tile_units=512,mask_warps=8' -> {"tile_units": 512, "mask_warps": 8} ('defaults' ->
    {}), checked by `check_launch_sizes`; ValueError naming the entry otherwise. For the
    benchmarks' command lines."""
    changes: Dict[str, int] = {}
    if text.strip() != "defaults":
        for pair in text.split(","):
            key, _, value = pair.partition("=")
            if not value.strip().isdigit():
                raise ValueError(f"{pair!r} is not <launch size>=<int>")
            changes[key.strip()] = int(value)
    check_launch_sizes(changes)
    return changes


def describe_launch_sizes(changes: Dict[str, int]) -> str:
    """The inverse of `parse_launch_sizes`: {"keep_bits": 1, "tile_units": 256} ->
    'keep_bits=1,tile_units=256', {} -> 'defaults'."""
    return ",".join(f"{key}={value}" for key, value in changes.items()) or "defaults"


@contextlib.contextmanager
def launch_sizes(device_type: str, **changes: int) -> Iterator[_LaunchSizes]:
    """Temporarily change the launch sizes used for `device_type` ("cuda", or "cpu" under
    the interpreter): the fields of `_LaunchSizes` (tile_units, mask_warps, apply_block,
    apply_warps, pack_block_bytes, mask_kernels, keep_bits, sparse_seeds, seed_block,
    host_key). For tuning sweeps (`bench_dropblock.py --tune`); the result does not depend
    on them, but for `sparse_seeds` and `host_key`, which change the draw (not its
    distribution).
    Not thread-safe: it swaps a module-level setting."""
    global _GPU_SIZES, _INTERPRETER_SIZES
    saved = _GPU_SIZES, _INTERPRETER_SIZES
    check_launch_sizes(changes)
    if device_type == "cuda":
        _GPU_SIZES = _GPU_SIZES._replace(**changes)
        current = _GPU_SIZES
    elif device_type == "cpu":
        _INTERPRETER_SIZES = _INTERPRETER_SIZES._replace(**changes)
        current = _INTERPRETER_SIZES
    else:
        raise ValueError(f"device_type must be 'cuda' or 'cpu', got {device_type!r}")
    try:
        yield current
    finally:
        _GPU_SIZES, _INTERPRETER_SIZES = saved


def _lanes_per_program(lanes: int, sizes: _LaunchSizes, halo: int = 0) -> int:
    """BLOCK of the mask kernels: `tile_units` lanes, fewer for a small map; with a halo
    (`_mask_kernel`: bw - 1 lanes that only redraw seeds) at least twice the halo."""
    return max(min(sizes.tile_units, max(32, _next_power_of_2(lanes + halo))), _next_power_of_2(2 * halo + 1))


class _Layout:
    """How x is stored and where its mask lives.

    `channels_last`: x is NHWC in memory. The mask map (seeds, keep, bits) is stored in x's
    own memory order for per-channel masks, and as (N, H, W) for shared ones; `mask_strides`
    are its (n, c, h, w) strides in elements. `cols_outer`: within a mask row, columns are
    the outer and planes the inner index in memory (per-channel masks on NHWC x).
    """

    def __init__(self, x: Tensor, shared_mask: bool) -> None:
        n, c, h, w = x.shape
        # A tensor that is both (C == 1 or H == W == 1) has one memory order for both readings.
        self.channels_last = not x.is_contiguous() and x.is_contiguous(memory_format=torch.channels_last)
        self.shared_mask = shared_mask
        self.planes_per_sample = 1 if shared_mask else c
        self.mask_numel = n * self.planes_per_sample * h * w
        if shared_mask:
            self.mask_strides = (h * w, 0, w, 1)
        elif self.channels_last:
            self.mask_strides = (h * w * c, 1, w * c, c)
        else:
            self.mask_strides = (c * h * w, h * w, w, 1)
        self.cols_outer = self.channels_last and not shared_mask

    @property
    def memory_format(self) -> torch.memory_format:
        return torch.channels_last if self.channels_last else torch.contiguous_format

    def dense(self, t: Tensor) -> Tensor:
        """t in the memory order the kernels expect (a no-op when it already is)."""
        return t.contiguous(memory_format=self.memory_format)


def _check_args(x: Any, gamma: Any, block_size_h: Any, block_size_w: Any, shared_mask: Any) -> float:
    if not isinstance(x, Tensor):
        raise ValueError(f"x must be a torch.Tensor, got {type(x).__name__}")
    if x.dim() != 4:
        raise ValueError(f"x must be 4-D (N, C, H, W), got shape {tuple(x.shape)}")
    if x.dtype not in SUPPORTED_DTYPES:
        raise ValueError(f"x must be float32, float16, bfloat16 or float64, got dtype {x.dtype}")
    _, _, height, width = x.shape
    for name, value, limit, axis in (
        ("block_size_h", block_size_h, height, "H"),
        ("block_size_w", block_size_w, width, "W"),
    ):
        if not is_integer(value):
            raise ValueError(f"{name} must be an int, got {value!r}")
        if not 1 <= value <= max(limit, 1):
            raise ValueError(f"{name} must be in [1, {axis}={limit}] (clip it to the map first), got {value}")
    if not isinstance(shared_mask, bool):
        raise ValueError(f"shared_mask must be True or False, got {shared_mask!r}")
    if not is_real_number(gamma):
        raise ValueError(f"gamma must be a number in [0, 1], got {gamma!r}")
    gamma = float(gamma)
    if not (0.0 <= gamma <= 1.0):  # also rejects NaN
        raise ValueError(f"gamma must be in [0, 1], got {gamma!r}")
    if triton is None:
        raise RuntimeError("drop_block_2d_triton needs Triton, which is not importable here; use impl='torch'")
    if not x.is_cuda and not _interpreting():
        raise ValueError(
            f"x is on {x.device}: the Triton path runs CUDA tensors, or CPU tensors under Triton's "
            "interpreter (TRITON_INTERPRET=1 set before Triton is imported); use impl='torch'"
        )
    return gamma


_MASK_64 = 2**64 - 1


def _mix64(value: int) -> int:
    """SplitMix64's finaliser: a bijection of 64-bit ints whose every output bit depends on
    every input bit (neighbouring offsets give unrelated keys)."""
    value = ((value ^ (value >> 30)) * 0xBF58476D1CE4E5B9) & _MASK_64
    value = ((value ^ (value >> 27)) * 0x94D049BB133111EB) & _MASK_64
    return value ^ (value >> 31)


def host_philox_key(seed: int, offset: int) -> int:
    """The Philox key that launch size `host_key=1` derives from a CUDA generator's seed and
    Philox offset: 2**62 + the top 62 bits of SplitMix64's finaliser of seed * 2**64 / phi
    + offset (mod 2**64). Bit 62 set keeps the value an int64 above 2**31, so Triton types
    the argument int64 on every call (one compiled kernel, not an int32 one for small keys)."""
    return 2**62 | (_mix64((seed * 0x9E3779B97F4A7C15 + offset) & _MASK_64) >> 2)


# The host_key argument that says "the key is in rng_seed_ptr": negative (a host key has bit
# 62 set), and beyond int32 so that Triton types the argument int64 either way.
_DEVICE_KEY = -(2**62)


class _PhiloxKey(NamedTuple):
    """One mask's Philox key: in a device tensor (`tensor`, drawn by torch.randint) or an
    int drawn on the host (`value`, `on_host`)."""

    tensor: Optional[Tensor]
    value: int

    @property
    def on_host(self) -> bool:
        return self.tensor is None

    def arguments(self, placeholder: Tensor) -> Tuple[Tensor, int]:
        """The kernels' (rng_seed_ptr, host_key) arguments; `placeholder` (an int64 tensor
        the kernel gets anyway) stands in for the pointer, which a host key leaves unread.
        It must be 16-byte aligned, as torch.randint's fresh tensor is: Triton specialises a
        pointer on that alignment, and a host key and a device key must launch one compiled
        kernel (a graph captured after eager host-key calls draws on the device)."""
        return (placeholder, self.value) if self.tensor is None else (self.tensor, _DEVICE_KEY)


def _draw_philox_key(device: torch.device, sizes: _LaunchSizes) -> _PhiloxKey:
    """A fresh Philox key for one mask from torch's generator for `device`, reproducible
    under torch.manual_seed, with no host sync. By default (`host_key=0`) 62 random bits
    drawn by torch.randint on the device. With `host_key=1` on CUDA, no launch:
    `host_philox_key` of the device generator's seed and Philox offset, the offset then
    advanced by 4, as that randint advances it (later random ops draw the same either way);
    while a CUDA graph is being captured, and on a torch whose generator has no offset,
    torch.randint, which captures. On CPU (the interpreter) the CPU generator has no offset:
    2**62 + 62 bits that torch.randint draws on the host. The offset's read and advance are
    two calls: two threads drawing from one device's generator at once could read the same
    offset (torch.randint takes the generator's lock); DataParallel's threads each have
    their own device."""
    if sizes.host_key:
        if device.type != "cuda":
            return _PhiloxKey(None, 2**62 | int(torch.randint(0, 2**62, (1,), dtype=torch.int64)))
        index = device.index if device.index is not None else torch.cuda.current_device()
        generator = torch.cuda.default_generators[index]
        if hasattr(generator, "get_offset") and not torch.cuda.is_current_stream_capturing():
            offset = generator.get_offset()
            generator.set_offset(offset + 4)
            return _PhiloxKey(None, host_philox_key(generator.initial_seed(), offset))
    # 62 random bits from torch's generator on x's device: reproducible, no host sync.
    return _PhiloxKey(torch.randint(0, 2**62, (1,), device=device, dtype=torch.int64), 0)


def _keep_bits(x: Tensor, layout: _Layout, gamma: float, bh: int, bw: int) -> Tuple[Tensor, Tensor]:
    """Draw one DropBlock mask for x: (bit-packed keep mask (uint8, bit m = keep of the mask
    unit at offset m; with keep_bits=1 padded with zeros to whole int32 words), total kept
    count (int64[1]))."""
    n, _, height, width = x.shape
    planes = n * layout.planes_per_sample
    anchor_rows, anchor_cols = height - bh + 1, width - bw + 1
    index_64 = layout.mask_numel >= 2**31 or x.numel() >= 2**31
    device = x.device
    sizes = _launch_sizes(device)
    key = _draw_philox_key(device, sizes)
    if _draws_sparsely(gamma, sizes):
        return _sparse_keep_bits(x, layout, gamma, bh, bw, key, sizes, index_64)
    threshold = min(2**32, int(round(gamma * 2**32)))
    num_bytes = (layout.mask_numel + 7) // 8
    if sizes.keep_bits == 8:
        keep = torch.empty(layout.mask_numel, dtype=torch.uint8, device=device)
    else:  # the mask kernels OR the bits into zeroed words: whole words, read as bytes
        keep = torch.zeros((num_bytes + 3) // 4, dtype=torch.int32, device=device)
    stride_n, stride_c, stride_h, stride_w = layout.mask_strides
    if sizes.mask_kernels == 1 and not layout.cols_outer:
        total_kept = torch.zeros(1, dtype=torch.int64, device=device)
        lanes, halo = planes * width, bw - 1
        block = _lanes_per_program(lanes, sizes, halo)
        _mask_kernel[(_cdiv(lanes, block - halo),)](
            *key.arguments(total_kept), keep, total_kept, lanes, layout.planes_per_sample, height, width, anchor_rows, anchor_cols,
            bh, bw, threshold, stride_n, stride_c, stride_h, stride_w,
            BLOCK=block, KEEP_BITS=sizes.keep_bits, INDEX_64=index_64,
            num_warps=sizes.mask_warps,
        )
    else:
        total_kept = torch.empty(1, dtype=torch.int64, device=device)  # zeroed by _seed_kernel
        seeds = torch.empty(layout.mask_numel, dtype=torch.uint8, device=device)
        # One lane per (plane, anchor column) for the seeds, per (plane, column) for the mask.
        seed_lanes, dilate_lanes = planes * anchor_cols, planes * width
        seed_block, dilate_block = _lanes_per_program(seed_lanes, sizes), _lanes_per_program(dilate_lanes, sizes)
        _seed_kernel[(_cdiv(seed_lanes, seed_block),)](
            *key.arguments(total_kept), seeds, total_kept, seed_lanes, layout.planes_per_sample, anchor_rows, anchor_cols, threshold,
            stride_n, stride_c, stride_h, stride_w,
            BLOCK=seed_block, COLS_OUTER=layout.cols_outer, INDEX_64=index_64,
            num_warps=sizes.mask_warps,
        )
        _dilate_kernel[(_cdiv(dilate_lanes, dilate_block),)](
            seeds, keep, total_kept, dilate_lanes, layout.planes_per_sample, height, width,
            anchor_rows, anchor_cols, bh, stride_n, stride_c, stride_h, stride_w,
            BLOCK_W_SIZE=bw, BLOCK=dilate_block, KEEP_BITS=sizes.keep_bits, COLS_OUTER=layout.cols_outer,
            INDEX_64=index_64, num_warps=sizes.mask_warps,
        )
        del seeds
    if sizes.keep_bits == 1:
        # Little-endian words read as bytes: bit m is bit m % 8 of byte m // 8, as packed
        # below (torch and Triton run on little-endian machines only).
        return keep.view(torch.uint8), total_kept
    bits = torch.empty(num_bytes, dtype=torch.uint8, device=device)
    _pack_kernel[(_cdiv(num_bytes, sizes.pack_block_bytes),)](
        keep, bits, layout.mask_numel, num_bytes, BLOCK_BYTES=sizes.pack_block_bytes, INDEX_64=index_64
    )
    return bits, total_kept


def _draws_sparsely(gamma: float, sizes: _LaunchSizes) -> bool:
    """Whether the seeds are drawn by `_sparse_seed_kernel` (0 < gamma < 1: gamma 0 draws
    nothing and gamma 1 seeds every anchor, which the dense kernels do in one pass)."""
    if not 0.0 < gamma < 1.0 or sizes.sparse_seeds == 0:
        return False
    return sizes.sparse_seeds == 2 or gamma <= _SPARSE_MAX_GAMMA


def _seed_chunk(gamma: float) -> int:
    """Anchors per lane of `_sparse_seed_kernel`: the power of two nearest 1 / gamma (about one
    seed per lane), within [16, 2**20]. A function of gamma alone, so the draw does not depend
    on the launch sizes."""
    return 1 << min(20, max(4, round(math.log2(1.0 / gamma))))


def _float64_bits(value: float) -> int:
    """The int64 whose bits are fp64 `value`: how an exact fp64 reaches a kernel."""
    return struct.unpack("<q", struct.pack("<d", value))[0]


def _sparse_keep_bits(x: Tensor, layout: _Layout, gamma: float, bh: int, bw: int, key: "_PhiloxKey",
                      sizes: _LaunchSizes, index_64: bool) -> Tuple[Tensor, Tensor]:
    """`_keep_bits` through sparse seeds (Philox key `key`): words of keep bits that start
    all set, each seed's block cleared by `_sparse_seed_kernel`, which also counts what it
    cleared: one fill and one kernel, no pass over the words."""
    n, _, height, width = x.shape
    device = x.device
    anchors_per_plane = (height - bh + 1) * (width - bw + 1)
    num_anchors = n * layout.planes_per_sample * anchors_per_plane
    chunk = _seed_chunk(gamma)
    num_chunks = _cdiv(num_anchors, chunk)
    num_words = _cdiv(layout.mask_numel, 32)
    # One allocation for the count and the words, every bit set: the words start as "all
    # kept", the count at -1 (see the kernel). The count first and the words 16 bytes on:
    # both 16-byte aligned whatever the number of words. Triton compiles a kernel per
    # pointer alignment, and the count is also a host key's stand-in for the key pointer
    # (`_PhiloxKey.arguments`), which must be aligned as a device key's tensor is.
    padded_words = 2 * _cdiv(num_words, 2)
    buffer = torch.full((2 + padded_words // 2,), -1, dtype=torch.int64, device=device)
    total_kept, bits = buffer[:1], buffer[2:]
    stride_n, stride_c, stride_h, stride_w = layout.mask_strides
    _sparse_seed_kernel[(_cdiv(num_chunks, sizes.seed_block),)](
        *key.arguments(total_kept), bits.view(torch.int32), total_kept, num_words, padded_words, layout.mask_numel,
        num_anchors, num_chunks, chunk, _float64_bits(math.log1p(-gamma)), anchors_per_plane, width - bw + 1,
        layout.planes_per_sample, bh, bw, (bw + 62) // 32, stride_n, stride_c, stride_h, stride_w,
        # 64-bit offsets also within a word of 2**31 units: a word's end (32 * word + 32) must fit.
        BLOCK=sizes.seed_block, RUNS=stride_w == 1, INDEX_64=index_64 or layout.mask_numel > 2**31 - 64,
        # At most a thread per lane: with copies of a lane, the count of what the atomics
        # return would be wrong on Triton <= 3.4, which gives it only to the copy that did
        # the atomic (the others read 0: triton-lang/triton#7402).
        num_warps=min(sizes.mask_warps, sizes.seed_block // 32),
    )
    return bits.view(torch.uint8), total_kept


_RELU_MODES: Dict[Tuple[torch.device, torch.dtype], int] = {}


def _relu_mode(device: torch.device, dtype: torch.dtype) -> int:
    """The kernels' RELU constant that gives torch.relu's sign of zero on `device` for
    `dtype`: 1 where relu(-0.0) is -0.0 (CPU), 2 where it is +0.0 (CUDA, measured on an
    H200), so that a fused pass stays bit for bit the separate ops, signs of zeros included.
    Measured once per (device, dtype): a host read, so while a CUDA graph is being captured
    (where a read is not allowed, e.g. the first fused call comes after a keep_prob ramp's
    warm-up), CUDA's measured answer, not stored. A meta tensor has no values: CUDA's
    (launches are recorded on meta tensors as they would be made on CUDA)."""
    if device.type == "meta":
        return 2
    mode = _RELU_MODES.get((device, dtype))
    if mode is None:
        if device.type == "cuda" and torch.cuda.is_current_stream_capturing():
            return 2
        negative_zero = torch.full((1,), -0.0, dtype=dtype, device=device)
        mode = _RELU_MODES[(device, dtype)] = 1 if bool(torch.signbit(torch.relu(negative_zero))) else 2
    return mode


def _apply(t: Tensor, layout: _Layout, bits: Tensor, total_kept: Tensor, saturate: bool, relu: bool = False) -> Tensor:
    """where(keep, t, 0) * numel / (total_kept + eps) for t (N, C, H, W) in layout's memory
    order (of relu(t) with `relu`); with `saturate`, fp16 / bf16 results beyond the dtype's
    range are clamped to it."""
    n, c, height, width = t.shape
    out = torch.empty_like(t)  # preserve_format: t is dense, so out gets t's strides
    index_64 = t.numel() >= 2**31
    sizes = _launch_sizes(t.device)
    apply_block, warps = sizes.apply_block, sizes.apply_warps
    compute_f64 = t.dtype == torch.float64
    saturate = saturate and t.dtype in (torch.float16, torch.bfloat16)
    relu_mode = _relu_mode(t.device, t.dtype) if relu else 0
    if layout.shared_mask and layout.channels_last:
        num_pixels = n * height * width
        block_c = min(64, max(4, _next_power_of_2(c)))
        block_p = max(1, apply_block // block_c)
        grid = (_cdiv(num_pixels, block_p), _cdiv(c, block_c))
        _apply_pixels_kernel[grid](
            t, bits, total_kept, out, num_pixels, c, *_scale_args(layout.mask_numel, t.dtype),
            BLOCK_P=block_p, BLOCK_C=block_c, COMPUTE_F64=compute_f64,
            OUT_BF16=t.dtype == torch.bfloat16, SATURATE=saturate, RELU=relu_mode, INDEX_64=index_64, num_warps=warps,
        )
        return out
    if not layout.shared_mask:  # the mask has t's memory order: bit index = element offset
        _launch_flat(_apply_flat_kernel, (t, bits, total_kept, out), t, layout.mask_numel, SATURATE=saturate,
                     RELU=relu_mode)
        return out
    # Shared mask, NCHW: rows are (n, c) planes; plane (n, c) uses mask plane n.
    num_rows, row_len = n * c, height * width
    block_b = min(apply_block, _next_power_of_2(row_len))
    block_r = max(1, min(_next_power_of_2(num_rows), apply_block // block_b))
    col_blocks = _cdiv(row_len, block_b)
    row_align = min(16, row_len & -row_len)
    _apply_rows_kernel[(_cdiv(num_rows, block_r) * col_blocks,)](
        t, bits, total_kept, out, num_rows, row_len // row_align, c, col_blocks, *_scale_args(layout.mask_numel, t.dtype),
        BLOCK_R=block_r, BLOCK_B=block_b, COMPUTE_F64=compute_f64,
        OUT_BF16=t.dtype == torch.bfloat16, SATURATE=saturate, RELU=relu_mode, INDEX_64=index_64, num_warps=warps,
        ROW_ALIGN=row_align,
    )
    return out


def _scale_args(mask_numel: int, dtype: torch.dtype) -> Tuple[Any, float]:
    """The kernels' (mask_numel, eps) arguments for t's dtype. A float argument reaches a
    compiled kernel as fp32, which is what the reference's fp32 scale uses too; for fp64, numel
    goes as an int (exact to 2**53; fp32 only to 2**24) and `_scale` ignores the fp32 eps
    for the exact `_EPS_F64`."""
    return (mask_numel if dtype == torch.float64 else float(mask_numel)), _EPS


def _launch_flat(kernel: Any, pointers: Tuple[Tensor, ...], like: Tensor, mask_numel: int, **constexprs: Any) -> None:
    """Launch one of the element-wise kernels over `like`'s elements in memory order: they all
    take (pointers..., numel, mask_numel, eps) and the block, dtype and index-width constants."""
    sizes = _launch_sizes(like.device)
    # No fused multiply-adds: by default the compiler contracts the residual kernel's
    # `r + x * scale` (fp32 / fp64) into one FMA, rounding once where the unfused ops round
    # twice (1 ulp off in ~15% of outputs); the interpreter cannot show it (it ignores the
    # option), the compile checks read the PTX for it.
    kernel[(_cdiv(like.numel(), sizes.apply_block),)](
        *pointers, like.numel(), *_scale_args(mask_numel, like.dtype),
        BLOCK=sizes.apply_block, COMPUTE_F64=like.dtype == torch.float64, OUT_BF16=like.dtype == torch.bfloat16,
        INDEX_64=like.numel() >= 2**31, num_warps=sizes.apply_warps, enable_fp_fusion=False, **constexprs,
    )


def _relu_grad(grad: Tensor, out: Tensor, total_kept: Tensor, mask_numel: int) -> Tensor:
    """where(out <= 0, 0, grad) * mask_numel / (total_kept + eps); grad and out dense in the
    same memory order."""
    grad_in = torch.empty_like(out)
    _launch_flat(_relu_grad_kernel, (grad, out, total_kept, grad_in), out, mask_numel)
    return grad_in


class _Mask(NamedTuple):
    """One drawn per-channel DropBlock mask: its bits (uint8, 1 bit per element in x's memory
    order) and its kept count (int64[1])."""

    bits: Tensor
    total_kept: Tensor


def _apply_residual(x: Tensor, layout: _Layout, mask: _Mask, residual: Tensor,
                    residual_mask: Optional[_Mask]) -> Tensor:
    """relu(residual + where(keep, x, 0) * scale) for a per-channel mask, the residual
    through its own mask first when `residual_mask` is given; x and residual dense in
    layout's memory order, of one dtype."""
    out = torch.empty_like(x)
    # Without RESIDUAL_MASKED the residual's mask pointers are not read: pass x's.
    _launch_flat(_apply_residual_kernel, (x, *mask, residual, *(residual_mask or mask), out), x, layout.mask_numel,
                 SATURATE=x.dtype in (torch.float16, torch.bfloat16), RESIDUAL_MASKED=residual_mask is not None,
                 RELU=_relu_mode(x.device, x.dtype))
    return out


def _residual_grad(grad: Tensor, out: Tensor, mask: _Mask, residual_mask: Optional[_Mask], mask_numel: int,
                   need_x: bool, need_residual: bool) -> Tuple[Optional[Tensor], Optional[Tensor]]:
    """(gradient of x, gradient of the residual) of relu(residual + DropBlock(x)), or of
    relu(DropBlock'(residual) + DropBlock(x)) with `residual_mask`; None for a side whose
    `need_*` is False (not computed)."""
    grad_x = torch.empty_like(out) if need_x else None
    grad_residual = torch.empty_like(out) if need_residual else None
    # An unwanted side's pointer is never written (its store is compiled out): pass `out`,
    # of the same dtype and as aligned as a fresh gradient.
    _launch_flat(_residual_grad_kernel, (grad, out, *mask, *(residual_mask or mask), out if grad_x is None else grad_x,
                                         out if grad_residual is None else grad_residual),
                 out, mask_numel, RESIDUAL_MASKED=residual_mask is not None, GRAD_X=need_x, GRAD_RESIDUAL=need_residual)
    return grad_x, grad_residual


def _apply_grad(grad: Tensor, layout: _Layout, bits: Tensor, total_kept: Tensor) -> Tensor:
    """Backward of plain DropBlock: where(keep, grad, 0) * scale, unsaturated (AMP's
    GradScaler must see an overflow as inf)."""
    return _apply(grad, layout, bits, total_kept, saturate=False)


# The same gradients with PyTorch ops from what forward saved, for a GPU where Triton cannot
# build the backward kernels (under impl="auto"). Each gives the kernel's values bit for bit:
# the same fp32 (fp64) products of the same scale, rounded once to the gradient's dtype.
def _in_memory_order(t: Tensor) -> Tensor:
    """A dense t's elements as a 1-D view in memory order (the order of the mask's bits)."""
    return t.as_strided((t.numel(),), (1,), t.storage_offset())


def _keep_from_bits(bits: Tensor, numel: int) -> Tensor:
    """The first `numel` mask elements, bool, from bits packed as `_pack_kernel` does:
    element m is bit m % 8 of byte m // 8."""
    shifts = torch.arange(8, dtype=torch.uint8, device=bits.device)
    return ((bits.unsqueeze(1) >> shifts) & 1).view(-1)[:numel].bool()


def _masked_scaled_like(values: Tensor, keep: Tensor, scale: Tensor, like: Tensor) -> Tensor:
    """where(keep, values, 0) * scale (in scale's dtype) as a tensor of like's dtype and
    strides, values and keep given in like's memory order."""
    out = torch.empty_like(like)
    _in_memory_order(out).copy_(torch.where(keep, values.to(scale.dtype), 0.0) * scale)
    return out


def _apply_grad_torch(grad: Tensor, layout: _Layout, bits: Tensor, total_kept: Tensor) -> Tensor:
    scale = _scale_from_count(total_kept, layout.mask_numel, grad.dtype)
    if layout.shared_mask:  # mask element n * H * W + h * W + w, for every channel
        n, _, height, width = grad.shape
        keep = _keep_from_bits(bits, n * height * width).view(n, 1, height, width)
        out = torch.empty_like(grad)
        out.copy_(torch.where(keep, grad.to(scale.dtype), 0.0) * scale)
        return out
    return _masked_scaled_like(_in_memory_order(grad), _keep_from_bits(bits, grad.numel()), scale, grad)


def _relu_grad_torch(grad: Tensor, out: Tensor, total_kept: Tensor, mask_numel: int) -> Tensor:
    scale = _scale_from_count(total_kept, mask_numel, out.dtype)
    passes = ~(_in_memory_order(out).to(scale.dtype) <= 0)  # a NaN output passes, as torch.relu's
    return _masked_scaled_like(_in_memory_order(grad), passes, scale, out)


def _residual_grad_torch(grad: Tensor, out: Tensor, mask: _Mask, residual_mask: Optional[_Mask], mask_numel: int,
                         need_x: bool, need_residual: bool) -> Tuple[Optional[Tensor], Optional[Tensor]]:
    compute_dtype = torch.float64 if out.dtype == torch.float64 else torch.float32
    through_relu = torch.where(_in_memory_order(out).to(compute_dtype) <= 0, 0.0,
                               _in_memory_order(grad).to(compute_dtype))

    def through(m: _Mask) -> Tensor:
        return _masked_scaled_like(through_relu, _keep_from_bits(m.bits, out.numel()),
                                   _scale_from_count(m.total_kept, mask_numel, out.dtype), out)

    grad_residual = None
    if need_residual and residual_mask is None:
        grad_residual = torch.empty_like(out)
        _in_memory_order(grad_residual).copy_(through_relu)
    elif need_residual:
        grad_residual = through(residual_mask)
    return (through(mask) if need_x else None), grad_residual


# Called with (device, error) when a backward kernel fails to build; None: raise the error.
BackwardBuildErrorHandler = Optional[Callable[[torch.device, BaseException], None]]


def _backward(device: torch.device, on_build_error: BackwardBuildErrorHandler, kernels: Callable[[], Any],
              torch_ops: Callable[[], Any]) -> Any:
    """kernels() on `device`; where Triton cannot build them and `on_build_error` is given,
    on_build_error(device, error) and then torch_ops()."""
    try:
        with _on_device(device):
            return kernels()
    except Exception as error:
        if on_build_error is None or not is_triton_build_error(error):
            raise
        on_build_error(device, error)
        return torch_ops()


def _on_device(device: torch.device) -> ContextManager:
    """Triton launches on the *current* CUDA device: make it x's (x may live on another GPU)."""
    return torch.cuda.device(device) if device.type == "cuda" else contextlib.nullcontext()


class _DropBlockTriton(torch.autograd.Function):
    """Forward draws the mask and applies it; backward applies the saved 1-bit mask to grad,
    or, with ReLU fused, masks grad with the saved output (out > 0)."""

    @staticmethod
    def forward(  # type: ignore[override]
        ctx, x: Tensor, gamma: float, bh: int, bw: int, shared_mask: bool, relu: bool,
        on_backward_build_error: BackwardBuildErrorHandler,
    ) -> Tensor:
        layout = _Layout(x, shared_mask)
        x = layout.dense(x)
        with _on_device(x.device):
            bits, total_kept = _keep_bits(x, layout, gamma, bh, bw)
            out = _apply(x, layout, bits, total_kept, saturate=True, relu=relu)
        # With ReLU fused the output is the mask for backward: it is the next layer's input,
        # which autograd keeps anyway, so nothing is added to the memory kept for backward.
        # The sparse draw's count is a view into the words' buffer: saved as it is, it would
        # keep the whole bit mask alive; an 8-byte copy lets the words go.
        if relu and total_kept.untyped_storage().nbytes() > total_kept.nbytes:
            total_kept = total_kept.clone()
        ctx.save_for_backward(out if relu else bits, total_kept)
        ctx.layout, ctx.relu, ctx.on_backward_build_error = layout, relu, on_backward_build_error
        return out

    @staticmethod
    @once_differentiable  # the kernels are not differentiable: a second backward raises
    def backward(ctx, grad_output: Tensor):  # type: ignore[override]
        mask, total_kept = ctx.saved_tensors
        grad_input = None
        if ctx.needs_input_grad[0]:
            # grad_output may be non-contiguous (e.g. expanded from a sum): bring it to the
            # memory order of the bits / the output.
            grad_output = ctx.layout.dense(grad_output)
            if ctx.relu:
                args: Tuple[Any, ...] = (grad_output, mask, total_kept, ctx.layout.mask_numel)
                kernels, torch_ops = _relu_grad, _relu_grad_torch
            else:
                args = (grad_output, ctx.layout, mask, total_kept)
                kernels, torch_ops = _apply_grad, _apply_grad_torch
            grad_input = _backward(mask.device, ctx.on_backward_build_error, lambda: kernels(*args),
                                   lambda: torch_ops(*args))
        return grad_input, None, None, None, None, None, None


class _DropBlockResidualTriton(torch.autograd.Function):
    """relu(residual + DropBlock(x)), per-channel mask: forward in one pass after the mask;
    backward splits the ReLU's gradient between the residual and (through the saved 1-bit
    mask) x. With `residual_drop_block` = (gamma, bh, bw) the residual gets a per-channel
    DropBlock of its own first (its mask drawn before x's, as the unfused ops draw them):
    relu(DropBlock'(residual) + DropBlock(x)). Saves the bits, the counts and the output
    (the next block's input)."""

    @staticmethod
    def forward(  # type: ignore[override]
        ctx, x: Tensor, residual: Tensor, gamma: float, bh: int, bw: int,
        residual_drop_block: Optional[Tuple[float, int, int]], on_backward_build_error: BackwardBuildErrorHandler,
    ) -> Tensor:
        layout = _Layout(x, shared_mask=False)
        x = layout.dense(x)  # the residual already is (the caller checks)
        with _on_device(x.device):
            residual_mask = None
            if residual_drop_block is not None:
                residual_mask = _Mask(*_keep_bits(residual, layout, *residual_drop_block))
            mask = _Mask(*_keep_bits(x, layout, gamma, bh, bw))
            out = _apply_residual(x, layout, mask, residual, residual_mask)
        ctx.save_for_backward(out, *mask, *(residual_mask or ()))
        ctx.layout, ctx.on_backward_build_error = layout, on_backward_build_error
        return out

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_output: Tensor):  # type: ignore[override]
        out, *masks = ctx.saved_tensors
        mask = _Mask(*masks[:2])
        residual_mask = _Mask(*masks[2:]) if len(masks) == 4 else None
        # Only the gradients autograd wants (a frozen branch or shortcut wants one side).
        args = (ctx.layout.dense(grad_output), out, mask, residual_mask, ctx.layout.mask_numel,
                *ctx.needs_input_grad[:2])
        grad_x, grad_residual = _backward(out.device, ctx.on_backward_build_error, lambda: _residual_grad(*args),
                                          lambda: _residual_grad_torch(*args))
        return grad_x, grad_residual, None, None, None, None, None


# Run eagerly under torch.compile (a graph break) instead of traced: the kernels' launch code
# (grids, launch options, the interpreter on CPU) is not what Dynamo's Triton-kernel tracing
# supports, and under the interpreter tracing into it crashes. (A module's training forward
# already runs eagerly; this is for a direct call in a compiled function.)
@_run_eagerly
def drop_block_2d_triton(
    x: Tensor,
    gamma: float,
    block_size_h: int,
    block_size_w: int,
    shared_mask: bool,
    relu: bool = False,
    residual: Optional[Tensor] = None,
    residual_drop_block: Optional[Tuple[float, int, int]] = None,
    on_backward_build_error: BackwardBuildErrorHandler = None,
) -> Tensor:
    """DropBlock on x (N, C, H, W) with Triton kernels; differentiable.

    Args:
        x: fp32 / fp16 / bf16 (or fp64) tensor on CUDA (or CPU under TRITON_INTERPRET=1),
            contiguous or channels_last; other strides are made contiguous first.
        gamma: seed probability per valid anchor, in [0, 1] (already computed by the caller
            from keep_prob, e.g. `drop_block_gamma`).
        block_size_h, block_size_w: block size per axis, already clipped to the map
            (1 <= bh <= H, 1 <= bw <= W).
        shared_mask: one mask per sample for all channels (N, 1, H, W) instead of one per
            (sample, channel).
        relu: DropBlock of relu(x) (the same mask and result as applying torch.relu first),
            in the same passes over x as DropBlock alone.
        residual: a tensor of x's shape (else a ValueError naming both shapes):
            relu(residual + DropBlock(x)), the end of a residual block, exactly as those
            three ops give it; one pass with a per-channel mask and a residual of x's
            dtype (else the three ops). Not with `relu`.
        residual_drop_block: (gamma, block_size_h, block_size_w) of a per-channel DropBlock
            applied to `residual` first, its mask drawn before x's: relu(DropBlock'(residual)
            + DropBlock(x)), exactly those ops (a block's last conv and its shortcut, both
            regularized), in the same one pass.
        on_backward_build_error: called with (device, error) where Triton cannot build a
            backward kernel (`is_triton_build_error`; they are built at the first backward);
            the gradient then comes from the saved mask with PyTorch ops, the same values.
            None (the default): the error is raised. `drop_block_2d(impl="auto")` passes one.
    Returns:
        tensor of x's shape, dtype and memory layout: where(keep, x, 0) * numel(mask) /
        (count_kept + 1e-6), computed in fp32 (fp64 for fp64 x; fp16 / bf16 results
        saturate at the dtype's largest finite value). Autograd keeps 1 bit per
        mask element plus an 8-byte count; the gradient is grad * keep * the same scale.
        With `relu`: of relu(x); autograd keeps the output (the next layer's input, kept
        anyway) and the count, and the gradient is where(out <= 0, 0, grad) * the scale.
        With `relu` or `residual` the output is saved for backward (as torch.relu saves
        its own), so an in-place change to it makes backward raise autograd's error.
        Backward is once-differentiable: a second backward through it raises.

    CUDA graphs: nothing here waits for the GPU, so a call can be captured, and each replay
    draws a new mask (the key is drawn on the device while capturing, whatever `host_key`).
    The host's arguments are frozen in the graph: `gamma` (the caller's keep_prob), the
    block sizes, and the dense or sparse draw that gamma chose (`_draws_sparsely`); a
    caller that changes keep_prob (a ramp) must capture again, or capture after the ramp.
    Raises:
        ValueError naming the argument: non-4D x, unsupported dtype, block size outside
        [1, H] / [1, W], gamma outside [0, 1], a CPU tensor without the interpreter.
        RuntimeError: Triton is not importable.
    """
    gamma = _check_args(x, gamma, block_size_h, block_size_w, shared_mask)
    if not isinstance(relu, bool):
        raise ValueError(f"relu must be True or False, got {relu!r}")
    bh, bw = int(block_size_h), int(block_size_w)
    if residual is None:
        if residual_drop_block is not None:
            raise ValueError("residual_drop_block needs a residual")
        if x.numel() == 0:
            return x.clone()
        return _DropBlockTriton.apply(x, gamma, bh, bw, shared_mask, relu, on_backward_build_error)
    if relu:
        raise ValueError("drop_block_2d_triton: residual cannot be combined with relu=True")
    check_residual(x, residual, "drop_block_2d_triton")
    if residual_drop_block is not None:
        if not (isinstance(residual_drop_block, tuple) and len(residual_drop_block) == 3):
            raise ValueError(f"residual_drop_block must be (gamma, block_size_h, block_size_w), got {residual_drop_block!r}")
        residual_gamma, residual_bh, residual_bw = residual_drop_block
        residual_drop_block = (_check_args(residual, residual_gamma, residual_bh, residual_bw, False),
                               int(residual_bh), int(residual_bw))
    # One pass where the ops' result has x's dense layout (the sum takes the layout of its
    # operands): a per-channel mask, and a residual of x's shape, dtype and layout.
    fusable = (
        x.numel() > 0 and not shared_mask and residual.shape == x.shape and residual.dtype == x.dtype
        and residual.device == x.device and residual.is_contiguous(memory_format=_Layout(x, False).memory_format)
    )
    if not fusable:
        if residual_drop_block is not None:  # drawn first, as in the fused pass
            residual = drop_block_2d_triton(residual, *residual_drop_block, False,
                                            on_backward_build_error=on_backward_build_error)
        return torch.relu_(residual + drop_block_2d_triton(x, gamma, bh, bw, shared_mask,
                                                           on_backward_build_error=on_backward_build_error))
    return _DropBlockResidualTriton.apply(x, residual, gamma, bh, bw, residual_drop_block, on_backward_build_error)
