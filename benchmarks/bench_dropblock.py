#!/usr/bin/env python
"""DropBlock speed and memory, side by side in one run, against the `x * mask` floor.

Rows: the floor (`x * mask` with a precomputed mask, the least any implementation must
pay), dropblock_det's PyTorch path (per channel as the paper, and shared across channels;
per channel with the preceding ReLU fused in, next to a plain ReLU and to the two unfused;
Dropout with the ReLU fused in and unfused),
dropblock_det's Triton kernel (CUDA; also with the preceding ReLU fused in, next to a
plain ReLU, and with a residual sum and ReLU after it, next to plain relu(r + x), with and
without a DropBlock of r's own fused into that pass),
`torchvision.ops.drop_block2d`, and, when they are importable, timm's `drop_block_2d` and
the `dropblock` package's `DropBlock2D`.

Columns: forward ms and forward+backward ms (median of --repeats runs in training mode,
x requiring grad, x.grad (and a residual r's) reset each run so every row pays the same
allocation and no run adds into the last one's gradient; on CUDA
timed with CUDA events after an L2 flush, see `bench_shape`), bytes that
autograd keeps for backward per element (unique storages saved by the graph, excluding x
and the output, which the next layer keeps anyway), and forward+backward relative to the
floor of the same shape.

    python benchmarks/bench_dropblock.py            # CPU, and CUDA when present
    python benchmarks/bench_dropblock.py --quick    # fewer repeats, one shape per device
    python benchmarks/bench_dropblock.py --threads 1   # one torch CPU thread
    python benchmarks/bench_dropblock.py --tune        # CUDA: the Triton path's launch sizes
    python benchmarks/bench_dropblock.py --profile     # CUDA: where one call's time goes

`--tune` times the Triton path (per channel, forward+backward) under each launch-size
variant of `TUNE_VARIANTS` (tile sizes and warps of the mask kernels, whether they write a
keep map or bits, sparse or dense seeds, block size and warps of the apply kernels, the
Philox key drawn on the device or the host; the masks' distribution does not depend on
them, only the speed does), next to the
floor, and marks the fastest per shape. On CPU it runs under Triton's interpreter
(TRITON_INTERPRET=1), where only the script is checked, not the speed.

`--profile` runs torch.profiler over forward+backward calls of our per-channel path (the
Triton kernels on CUDA, and on CPU under TRITON_INTERPRET=1; else the PyTorch path) and of
the floor, per shape and dtype: the table of ops and kernels, the device time of one call
against the floor's (on CUDA: the kernels' own time, which the host's launch time does not
hide), the host time of one call without the profiler, and where that host time goes
(each kernel launch and each of the path's own allocations and RNG calls, timed apart);
first, the host time of one Philox key draw each way (`host_key` 0 and 1).

On a machine shared with other jobs, the OpenMP fork/join of every parallel op waits for
descheduled threads; implementations with more ops (mask building, counting) suffer more
than the one-op floor, so compare runs at a given thread count and load (both printed).
"""
import argparse
import contextlib
import functools
import inspect
import math
import os
import platform
import statistics
import sys
import time
from pathlib import Path
from typing import Any, Callable, ContextManager, Dict, List, Optional, Sequence, Tuple

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tools"))  # tool_args.py

from dropblock_det.layers import (  # noqa: E402
    DropBlock2d, Dropout, LinearKeepProbSchedule, drop_block_2d, regularize_add_relu)
from dropblock_det.layers.drop_block_triton import (  # noqa: E402  (imports without Triton too)
    describe_launch_sizes, launch_sizes, parse_launch_sizes, triton_available)
from tool_args import int_at_least  # noqa: E402

KEEP_PROB = 0.9
BLOCK_SIZE = 7
CPU_SHAPES = [(8, 256, 50, 68), (8, 512, 25, 34)]
CUDA_SHAPES = [(16, 1024, 50, 68), (16, 256, 100, 136), (16, 2048, 25, 34)]  # res4, P3, res5

Impl = Callable[[torch.Tensor], torch.Tensor]


# Launch-size variants for --tune, one family at a time around the defaults (empty dict; at
# the benchmark's keep_prob 0.9 and block 7 they draw sparse seeds): lanes and warps of the
# sparse seed kernel (at least one lane per thread); the dense mask kernels instead
# (sparse_seeds=0), fused and separate (also at the 1024 lanes they had before), writing bits
# instead of a keep map to pack (keep_bits=1: ~2 B per unit less traffic, ~50% more
# instructions; also at fewer lanes or more warps, for its registers), at other lanes and
# warps (at most 8 lanes per thread: the fused kernel needs ~25 registers per lane); block
# size and warps of the apply kernels.
_DENSE = dict(sparse_seeds=0)
TUNE_VARIANTS: List[Dict[str, int]] = (
    [{}]
    + [dict(seed_block=b, mask_warps=w) for b in (32, 64, 128, 256, 512) for w in (1, 2, 4, 8)
       if b >= 32 * w and (b, w) != (128, 4)]
    + [dict(_DENSE), dict(_DENSE, mask_kernels=2), dict(_DENSE, mask_kernels=2, tile_units=1024)]
    + [dict(_DENSE, keep_bits=1), dict(_DENSE, keep_bits=1, tile_units=256), dict(_DENSE, keep_bits=1, mask_warps=8),
       dict(_DENSE, keep_bits=1, mask_kernels=2)]
    + [dict(_DENSE, tile_units=u, mask_warps=w) for u in (256, 512, 1024) for w in (2, 4, 8)
       if u <= 256 * w and (u, w) != (512, 4)]
    + [dict(apply_block=b, apply_warps=w) for b in (512, 1024, 2048, 4096) for w in (4, 8) if (b, w) != (1024, 4)]
    + [dict(host_key=1)]
)


def _floor(x: torch.Tensor) -> Impl:
    mask = (torch.rand_like(x, dtype=torch.float32) < KEEP_PROB).to(x.dtype)
    return lambda t: t * mask


def _at_target(module: torch.nn.Module) -> torch.nn.Module:
    """`module` with its keep_prob set to its target: timed there on purpose, so its first
    call does not log that nothing ramps keep_prob (advice for a training run)."""
    LinearKeepProbSchedule(0, 0).apply(module, 0)
    return module


def _ours(shared: bool, impl: str, relu: bool = False, residual: Optional[torch.Tensor] = None) -> Impl:
    return lambda t: drop_block_2d(
        t, KEEP_PROB, BLOCK_SIZE, shared_mask=shared, impl=impl, relu=relu, residual=residual)


def _both_sides(residual: torch.Tensor, fused: bool) -> Impl:
    """relu(DropBlock(r) + DropBlock(x)) on the Triton path: one pass for both masks, the sum
    and the ReLU (`regularize_add_relu`), or r's DropBlock as a pass of its own first."""
    on_x, on_residual = (_at_target(DropBlock2d(KEEP_PROB, BLOCK_SIZE, impl="triton").train()) for _ in range(2))
    if fused:
        return lambda t: regularize_add_relu(on_x, t, residual, on_residual)
    return lambda t: on_x(t, residual=on_residual(residual))


def _torchvision() -> Optional[Impl]:
    try:
        from torchvision.ops import drop_block2d
    except ImportError:
        return None
    return lambda t: drop_block2d(t, 1.0 - KEEP_PROB, BLOCK_SIZE, inplace=False, training=True)


def _timm(per_channel: bool) -> Optional[Impl]:
    """timm's drop_block_2d: its default shares one mask across channels; per channel
    (the paper) is `couple_channels=False`, in timm releases that have that argument."""
    try:
        from timm.layers import drop_block_2d as timm_drop_block_2d
    except ImportError:
        try:
            from timm.models.layers import drop_block_2d as timm_drop_block_2d
        except ImportError:
            return None
    if not per_channel:
        return lambda t: timm_drop_block_2d(t, drop_prob=1.0 - KEEP_PROB, block_size=BLOCK_SIZE)
    if "couple_channels" not in inspect.signature(timm_drop_block_2d).parameters:
        return None
    return lambda t: timm_drop_block_2d(
        t, drop_prob=1.0 - KEEP_PROB, block_size=BLOCK_SIZE, couple_channels=False)


def _dropblock_package() -> Optional[Impl]:
    try:
        from dropblock import DropBlock2D
    except ImportError:
        return None
    module = DropBlock2D(block_size=BLOCK_SIZE, drop_prob=1.0 - KEEP_PROB).train()
    return module


def _load() -> str:
    try:
        return " ".join(f"{v:.1f}" for v in os.getloadavg())
    except OSError:
        return "n/a"


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _bytes_kept_per_element(impl: Impl, x: torch.Tensor) -> float:
    """Bytes of the distinct storages autograd saves for backward, except x and the output
    (the next layer's input, which that layer keeps anyway: a ReLU's output, say)."""
    seen: Dict[int, int] = {}

    def pack(t: torch.Tensor) -> torch.Tensor:
        storage = t.untyped_storage()
        seen[storage.data_ptr()] = storage.nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        out = impl(x)
    for t in (x, out):
        seen.pop(t.untyped_storage().data_ptr(), None)
    del out
    return sum(seen.values()) / x.numel()


def _ms(value: float) -> str:
    """A time in ms with two decimals, or three significant digits below 1 ms (a tiny shape
    takes microseconds, which two decimals would print as 0.00)."""
    return f"{value:.2f}" if value >= 1 else f"{value:.3g}"


# Bytes written between timed CUDA calls so no row starts with its input in the L2 cache
# (60 MB on an H200; a bf16 res5 tensor is 56 MB).
_L2_FLUSH_BYTES = 256 * 2**20


def bench_shape(
    impls: Dict[str, Impl], x: torch.Tensor, warmup: int, repeats: int,
    failures: Optional[Dict[str, str]] = None,
    settings: Optional[Dict[str, Callable[[], ContextManager]]] = None,
    leaves: Sequence[torch.Tensor] = (),
) -> Dict[str, Tuple[float, float, float, float]]:
    """(fwd ms, fwd+bwd ms, kept bytes/element, host ms of fwd+bwd) per implementation.

    The host time is how long the call takes to return (on CUDA: to queue its work; the same
    as the wall time on CPU). On CUDA, an implementation whose host time exceeds its GPU
    time keeps the GPU waiting for launches, and its CUDA-event time then measures the host.

    The implementations are timed round-robin (one run of each per repeat) so that load
    from other processes on a shared machine hits every row alike and the ratios to the
    floor stay meaningful even when the absolute times drift. On CUDA each run is timed
    with CUDA events on the GPU's own clock, after a write of `_L2_FLUSH_BYTES` that leaves
    no row its input in cache (the host's synchronize and clock stay out of the time);
    on CPU with the host clock between synchronizations.

    An implementation that raises on its first run (a Triton build error, a package's bug)
    is left out, with the error in `failures` (its name -> the error), and the other rows
    are still timed.

    `settings` (name -> a context manager factory) is entered around each of that
    implementation's runs, forward and backward alike (`--tune`'s launch sizes: backward
    reads them when it runs, after the implementation has returned).

    `leaves`: other tensors the implementations take that need a gradient (a residual r):
    their .grad is reset before each forward+backward as x's is, so that no run adds into
    the last one's gradient (a read-modify-write of the tensor that a network, where r's
    gradient goes on to the layer that made r, does not pay).
    """
    grad = torch.randn_like(x)
    settings = settings or {}

    def setting(name: str) -> ContextManager:
        return settings.get(name, contextlib.nullcontext)()

    def forward(impl: Impl) -> None:
        impl(x)

    def forward_backward(impl: Impl) -> None:
        for leaf in (x, *leaves):
            leaf.grad = None
        impl(x).backward(grad)

    impls = dict(impls)

    def drop(name: str, error: Exception) -> None:
        del impls[name]
        if failures is not None:
            failures[name] = f"{type(error).__name__}: {' '.join(str(error).split())[:300]}"

    for name, impl in list(impls.items()):
        try:
            with setting(name):
                forward_backward(impl)
            _synchronize(x.device)  # an asynchronous CUDA error is this row's, not a later one's
        except Exception as error:  # noqa: BLE001  (any error of one row must not lose the others)
            drop(name, error)
    cuda = x.device.type == "cuda"
    flush = torch.empty(_L2_FLUSH_BYTES, dtype=torch.uint8, device=x.device) if cuda else None

    def run_ms(fn: Callable[[Impl], None], impl: Impl) -> Tuple[float, float]:
        """(elapsed ms, host ms)."""
        if cuda:
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            flush.zero_()
            start.record()
            start_s = time.perf_counter()
            fn(impl)
            host_ms = (time.perf_counter() - start_s) * 1e3
            end.record()
            end.synchronize()
            return start.elapsed_time(end), host_ms
        start_s = time.perf_counter()
        fn(impl)
        elapsed = (time.perf_counter() - start_s) * 1e3
        return elapsed, elapsed

    times: Dict[str, Tuple[List[float], List[float], List[float]]] = {name: ([], [], []) for name in impls}
    for step in range(warmup + repeats):
        for name, impl in list(impls.items()):
            try:
                for kind, fn in enumerate((forward, forward_backward)):
                    _synchronize(x.device)
                    with setting(name):
                        elapsed, host_ms = run_ms(fn, impl)
                    if step >= warmup:
                        times[name][kind].append(elapsed)
                        if fn is forward_backward:
                            times[name][2].append(host_ms)
            except Exception as error:  # noqa: BLE001  (e.g. out of memory on a later run)
                drop(name, error)
    results: Dict[str, Tuple[float, float, float, float]] = {}
    for name, impl in impls.items():
        with setting(name):
            kept = _bytes_kept_per_element(impl, x)
        results[name] = (statistics.median(times[name][0]), statistics.median(times[name][1]), kept,
                         statistics.median(times[name][2]))
    return results


def run(device: torch.device, shapes, dtypes, warmup: int, repeats: int):
    rows: List[List[str]] = []
    notes: List[str] = []
    for shape in shapes:
        for dtype in dtypes:
            x = torch.randn(shape, device=device, dtype=dtype, requires_grad=True)
            leaves: List[torch.Tensor] = []  # other inputs that need a gradient
            candidates: Dict[str, Optional[Impl]] = {
                "floor: x * mask": _floor(x.detach()),
                "dropblock_det torch (per channel)": _ours(False, "torch"),
                "dropblock_det torch (shared mask)": _ours(True, "torch"),
                # After conv+norm+ReLU (ResNet conv1/conv2, the head towers) the ReLU runs inside
                # DropBlock's op, which then keeps only its output for backward: DropBlock's cost
                # there is the fused row minus the ReLU row.
                "ReLU alone: relu(x)": torch.relu,
                "dropblock_det torch ReLU then DropBlock, unfused (per channel)": (
                    lambda t, ours=_ours(False, "torch"): ours(torch.relu(t))),
                "dropblock_det torch ReLU fused (per channel)": _ours(False, "torch", relu=True),
                # The same for Dropout (MODEL.DROPBLOCK.TYPE "Dropout" at those places).
                "Dropout: ReLU then Dropout, unfused": lambda t, m=_at_target(Dropout(KEEP_PROB)): m(torch.relu(t)),
                "Dropout: ReLU fused": lambda t, m=_at_target(Dropout(KEEP_PROB)): m(t, relu=True),
            }
            if device.type == "cuda":
                triton_ok = triton_available(device)
                candidates["dropblock_det triton (per channel)"] = _ours(False, "triton") if triton_ok else None
                candidates["dropblock_det triton (shared mask)"] = _ours(True, "triton") if triton_ok else None
                candidates["dropblock_det triton ReLU fused (per channel)"] = (
                    _ours(False, "triton", relu=True) if triton_ok else None
                )
                # On a ResNet shortcut: the residual sum and the block's ReLU (r needs a
                # gradient too, as the branch does).
                residual = torch.randn_like(x).requires_grad_(True)
                leaves.append(residual)
                candidates["residual alone: relu(r + x)"] = lambda t, r=residual: torch.relu(r + t)
                candidates["dropblock_det triton residual fused (per channel)"] = (
                    _ours(False, "triton", residual=residual) if triton_ok else None
                )
                # At the end of a bottleneck with DropBlock after conv3 (r) and on the shortcut
                # (x): both masks in the sum's pass, against the branch's DropBlock as its own
                # pass before the fused residual (what the block ran before the pair was fused).
                candidates["dropblock_det triton both sides, r's DropBlock separate"] = (
                    _both_sides(residual, fused=False) if triton_ok else None
                )
                candidates["dropblock_det triton both sides fused (per channel)"] = (
                    _both_sides(residual, fused=True) if triton_ok else None
                )
            candidates["torchvision.ops.drop_block2d"] = _torchvision()
            candidates["timm drop_block_2d (per channel)"] = _timm(per_channel=True)
            candidates["timm drop_block_2d (shared mask, default)"] = _timm(per_channel=False)
            candidates["dropblock DropBlock2D (shared mask)"] = _dropblock_package()
            impls = {name: impl for name, impl in candidates.items() if impl is not None}
            for name, impl in candidates.items():
                note = f"{name}: not installed / not available, row skipped"
                if impl is None and note not in notes:
                    notes.append(note)
            torch.manual_seed(0)
            failures: Dict[str, str] = {}
            results = bench_shape(impls, x, warmup, repeats, failures, leaves=leaves)
            for name, error in failures.items():
                notes.append(f"{name}, {'x'.join(map(str, shape))} {str(dtype).replace('torch.', '')}: "
                             f"failed, row left out ({error})")
                print(f"  failed: {name}: {error}", flush=True)
            if "floor: x * mask" not in results:
                continue  # no ratio without the floor: the note says why
            floor_ms = results["floor: x * mask"][1]
            for name, (fwd, fwd_bwd, kept, host) in results.items():
                rows.append(
                    [
                        device.type,
                        name,
                        "x".join(map(str, shape)),
                        str(dtype).replace("torch.", ""),
                        _ms(fwd),
                        _ms(fwd_bwd),
                        f"{kept:.3f}",
                        f"{fwd_bwd / floor_ms:.2f}x",
                        _ms(host),
                    ]
                )
                print("  measured:", " | ".join(rows[-1]), flush=True)
    return rows, notes


# Launch sizes that only the mask kernels read, those only the apply kernels read, and where
# the Philox key comes from (a launch before the mask kernels, or none): separate launches,
# so the sides' best settings combine.
_MASK_SIDE = {"tile_units", "mask_warps", "mask_kernels", "keep_bits", "sparse_seeds", "seed_block"}
_APPLY_SIDE = {"apply_block", "apply_warps"}
_KEY_SIDE = {"host_key"}


def suggest_launch_sizes(times: List[Dict[str, float]], variants: List[Dict[str, int]]) -> Tuple[Dict[str, int], str]:
    """The launch sizes to make the defaults, from `--tune`'s timings: `times` holds one
    {variant name: forward+backward time} per (shape, dtype) measured with the defaults
    among the variants. Each variant scores the geometric mean of its time over the
    defaults' time; the best mask-side, apply-side and key-side variant (each at most 1,
    the defaults) are merged. Returns (the changes to the defaults, a one-line account)."""
    if not times or any("defaults" not in t for t in times):
        raise ValueError("suggest_launch_sizes needs the defaults timed for every shape and dtype")
    scores = {}
    for variant in variants:
        name = describe_launch_sizes(variant)
        if all(name in t for t in times):
            scores[name] = math.exp(statistics.fmean(math.log(t[name] / t["defaults"]) for t in times))
    by_name = {describe_launch_sizes(v): v for v in variants}
    merged: Dict[str, int] = {}
    parts = []
    for side, keys in (("mask", _MASK_SIDE), ("apply", _APPLY_SIDE), ("key", _KEY_SIDE)):
        names = [n for n in scores if n == "defaults" or set(by_name[n]) <= keys]
        best = min(names, key=lambda n: (scores[n], n != "defaults"))
        merged.update(by_name.get(best, {}))
        parts.append(f"{side} side: {best} ({scores[best]:.3f}x)")
    single = min(scores, key=lambda n: (scores[n], n != "defaults"))
    account = (f"suggested launch sizes ({len(times)} shape x dtype timings, geometric mean of time / defaults' "
               f"time): {'; '.join(parts)} -> {describe_launch_sizes(merged)} (best single variant: {single}, "
               f"{scores[single]:.3f}x)")
    return merged, account


def tune(device: torch.device, shapes, dtypes, warmup: int, repeats: int,
         variants: List[Dict[str, int]]) -> List[List[str]]:
    """One row per (shape, dtype, launch-size variant): the Triton path's per-channel
    forward+backward against the floor, timed round-robin like `bench_shape`. After each
    (shape, dtype) it prints the launch sizes the timings so far suggest
    (`suggest_launch_sizes`; when the defaults are among the variants), so a run stopped
    early still leaves its suggestion."""
    rows: List[List[str]] = []
    times: List[Dict[str, float]] = []
    ours = _ours(False, "triton")
    for shape in shapes:
        for dtype in dtypes:
            x = torch.randn(shape, device=device, dtype=dtype, requires_grad=True)
            impls: Dict[str, Impl] = {"floor: x * mask": _floor(x.detach())}
            # Around forward and backward: backward's apply kernel reads the launch sizes
            # when it runs, outside the call that drew the mask.
            settings: Dict[str, Callable[[], ContextManager]] = {}
            for variant in variants:
                name = describe_launch_sizes(variant)
                impls[name] = ours
                settings[name] = functools.partial(launch_sizes, device.type, **variant)
            torch.manual_seed(0)
            failures: Dict[str, str] = {}
            results = bench_shape(impls, x, warmup, repeats, failures, settings)
            for name, error in failures.items():
                print(f"  failed: {'x'.join(map(str, shape))} {dtype} {name}: {error}", flush=True)
            if "floor: x * mask" not in results or len(results) == 1:
                continue  # nothing to compare on this shape and dtype: the failures say why
            floor_ms = results.pop("floor: x * mask")[1]
            best = min(results, key=lambda n: results[n][1])
            for name, (_, fwd_bwd, _, _) in results.items():
                rows.append([device.type, "x".join(map(str, shape)), str(dtype).replace("torch.", ""),
                             name + (" (fastest)" if name == best else ""), f"{fwd_bwd:.3f}",
                             f"{floor_ms:.3f}", f"{fwd_bwd / floor_ms:.2f}x"])
                print("  measured:", " | ".join(rows[-1]), flush=True)
            times.append({name: fwd_bwd for name, (_, fwd_bwd, _, _) in results.items()})
            with_defaults = [t for t in times if "defaults" in t]  # a shape where they failed has none
            if "defaults" in times[-1]:
                print("  " + suggest_launch_sizes(with_defaults, variants)[1], flush=True)
    return rows


def _device_us(prof: Any, cuda: bool) -> float:
    """What torch.profiler's table sums as "Self CUDA time total" (kernels, memsets, copies:
    the device's events, each once) on CUDA, as "Self CPU time total" on CPU, in us.
    `self_device_time_total` is torch >= 2.4's name for `self_cuda_time_total`."""
    from torch.autograd import DeviceType

    total = 0.0
    for event in prof.key_averages():
        if not cuda:
            total += event.self_cpu_time_total
        elif event.device_type != DeviceType.CPU:
            total += getattr(event, "self_device_time_total", None) or getattr(event, "self_cuda_time_total", 0.0)
    return total


# What --profile times on the host, one by one: the ATen calls our path makes itself.
_HOST_TIMED_TORCH = ("randint", "zeros", "full", "empty", "empty_like")


def host_breakdown(step: Callable[[], None], calls: int) -> Tuple[Dict[str, float], float]:
    """({part: host us per call}, host us per call in all) of `calls` runs of `step`, timing
    each Triton kernel launch of `drop_block_triton` and each of its own ATen allocations and
    RNG calls (`_HOST_TIMED_TORCH`) by wrapping them; "rest" is everything else (Python,
    autograd, the other ATen ops). Where the host time of a call goes, which a profile of
    the GPU's work does not show."""
    from dropblock_det.layers import drop_block_triton as kernels

    spent: Dict[str, float] = {}

    def timed(name: str, fn: Callable) -> Callable:
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            start_s = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                spent[name] = spent.get(name, 0.0) + time.perf_counter() - start_s
        return wrapper

    class TimedKernel:
        def __init__(self, name: str, kernel: Any) -> None:
            self.name, self.kernel = name, kernel

        def __getitem__(self, grid: Any) -> Callable:
            return timed(f"launch {self.name}", self.kernel[grid])

    saved_kernels = {name: getattr(kernels, name) for name in dir(kernels)
                     if name.endswith("_kernel") and hasattr(getattr(kernels, name), "__getitem__")}
    saved_torch = {name: getattr(torch, name) for name in _HOST_TIMED_TORCH}
    try:
        for name, kernel in saved_kernels.items():
            setattr(kernels, name, TimedKernel(name, kernel))
        for name, fn in saved_torch.items():
            setattr(torch, name, timed(f"torch.{name}", fn))
        start_s = time.perf_counter()
        for _ in range(calls):
            step()
        total = time.perf_counter() - start_s
    finally:
        for name, kernel in saved_kernels.items():
            setattr(kernels, name, kernel)
        for name, fn in saved_torch.items():
            setattr(torch, name, fn)
    parts = {name: seconds * 1e6 / calls for name, seconds in sorted(spent.items(), key=lambda item: -item[1])}
    parts["rest"] = total * 1e6 / calls - sum(parts.values())
    return parts, total * 1e6 / calls


def key_draw_us(device: torch.device, calls: int) -> Dict[str, float]:
    """Host us per Philox key draw of the Triton path on `device`, for each `host_key` launch
    size: 0 (torch.randint on the device, one launch) and 1 (derived on the host). The
    queue is drained first, so nothing waits for the GPU."""
    from dropblock_det.layers import drop_block_triton as kernels

    result = {}
    for host_key in (0, 1):
        with launch_sizes(device.type, host_key=host_key) as sizes:
            for _ in range(3):
                kernels._draw_philox_key(device, sizes)
            _synchronize(device)
            start_s = time.perf_counter()
            for _ in range(calls):
                kernels._draw_philox_key(device, sizes)
            result[f"host_key={host_key}"] = (time.perf_counter() - start_s) * 1e6 / calls
            _synchronize(device)
    return result


def profile(device: torch.device, shapes, dtypes, calls: int, failures: Optional[List[str]] = None) -> List[List[str]]:
    """torch.profiler over `calls` forward+backward calls of our per-channel path and of the
    floor, per shape and dtype: prints our profile's table and returns one row per (shape,
    dtype): device us per call (ours, floor, ratio) and host us per call without the
    profiler. On CUDA the device time is the kernels' own, the measure of the GPU work that a
    training step's other kernels wait for. Our path is the Triton one on CUDA and on CPU
    under TRITON_INTERPRET=1 (where only the script is checked), else the PyTorch one. Also
    prints where our host time goes (`host_breakdown`). A shape and dtype that raises (a Triton
    build error) is left out, with its error in `failures`, and the others are still profiled."""
    from torch.profiler import ProfilerActivity

    cuda = device.type == "cuda"
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if cuda else [])
    ours_name = "triton" if triton_available(device) else "torch"
    rows: List[List[str]] = []
    for shape in shapes:
        for dtype in dtypes:
            try:
                rows.append(_profile_one(device, shape, dtype, ours_name, activities, calls))
            except Exception as error:  # noqa: BLE001  (a build error in one dtype must not lose the others)
                failure = (f"{'x'.join(map(str, shape))} {str(dtype).replace('torch.', '')}: failed, row left out "
                           f"({type(error).__name__}: {' '.join(str(error).split())[:300]})")
                print(f"  {failure}", flush=True)
                if failures is not None:
                    failures.append(failure)
    return rows


def _profile_one(device: torch.device, shape: Tuple[int, ...], dtype: torch.dtype, ours_name: str,
                 activities: List[Any], calls: int) -> List[str]:
    """`profile`'s work and row for one shape and dtype."""
    from torch.profiler import profile as torch_profile

    cuda = device.type == "cuda"
    x = torch.randn(shape, device=device, dtype=dtype, requires_grad=True)
    grad = torch.randn_like(x)
    per_call: Dict[str, Tuple[float, float]] = {}
    for name, impl in (("floor", _floor(x.detach())), ("ours", _ours(False, ours_name))):
        def step() -> None:
            x.grad = None
            impl(x).backward(grad)

        for _ in range(3):  # kernels compiled, allocator warm
            step()
        _synchronize(device)
        # Host time with nothing wrapped or recorded (the breakdown's wrappers and the
        # profiler each add their own).
        start_s = time.perf_counter()
        for _ in range(calls):
            step()
        host_us = (time.perf_counter() - start_s) * 1e6 / calls  # queued, not finished
        _synchronize(device)
        with torch_profile(activities=activities) as prof:
            for _ in range(calls):
                step()
            _synchronize(device)
        per_call[name] = (_device_us(prof, cuda) / calls, host_us)
        if name == "ours":
            parts, host_total = host_breakdown(step, calls)
            _synchronize(device)
            print(f"== host us per forward+backward call ({host_total:.1f} in all): " + ", ".join(
                f"{part} {us:.1f}" for part, us in parts.items()))
            sort_by = "self_cuda_time_total" if cuda else "self_cpu_time_total"
            print(f"== {'x'.join(map(str, shape))} {str(dtype).replace('torch.', '')}: dropblock_det "
                  f"{ours_name} (per channel), {calls} forward+backward calls")
            print(prof.key_averages().table(sort_by=sort_by, row_limit=15), flush=True)
    (ours_us, ours_host), (floor_us, floor_host) = per_call["ours"], per_call["floor"]
    row = [device.type, "x".join(map(str, shape)), str(dtype).replace("torch.", ""), ours_name,
           f"{ours_us:.1f}", f"{floor_us:.1f}", f"{ours_us / floor_us:.2f}x" if floor_us else "-",
           f"{ours_host:.1f}", f"{floor_host:.1f}"]
    print("  measured:", " | ".join(row), flush=True)
    return row


def print_table(rows: List[List[str]], header: Optional[List[str]] = None) -> None:
    header = header or ["device", "implementation", "shape", "dtype", "fwd ms", "fwd+bwd ms",
                        "kept B/elem", "fwd+bwd / floor", "host ms (fwd+bwd)"]
    widths = [max(len(r[i]) for r in rows + [header]) for i in range(len(header))]
    line = "| " + " | ".join(h.ljust(w) for h, w in zip(header, widths)) + " |"
    print(line)
    print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    for r in rows:
        print("| " + " | ".join(c.ljust(w) for c, w in zip(r, widths)) + " |")


def _parse_shape(text: str) -> Tuple[int, int, int, int]:
    try:
        dims = tuple(int(v) for v in text.split(","))
    except ValueError:
        dims = ()
    if len(dims) != 4 or min(dims) < 1:
        raise argparse.ArgumentTypeError(f"--shape must be N,C,H,W with positive ints, got {text!r}")
    return dims  # type: ignore[return-value]


def _parse_variants(text: str) -> List[Dict[str, int]]:
    """'defaults;tile_units=512,mask_warps=8' -> [{}, {"tile_units": 512, "mask_warps": 8}]."""
    variants: List[Dict[str, int]] = []
    for item in text.split(";"):
        try:
            variants.append(parse_launch_sizes(item))
        except ValueError as exc:
            raise argparse.ArgumentTypeError(f"{item!r}: {exc}") from None
    return variants


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="one shape per device (CPU, and CUDA when present), fewer repeats")
    parser.add_argument("--device", choices=["all", "cpu", "cuda"], default="all")
    parser.add_argument("--repeats", type=int, default=None)
    parser.add_argument("--threads", type=int_at_least(1), default=None, help="torch CPU threads")
    parser.add_argument("--shape", type=_parse_shape, default=None,
                        help="N,C,H,W: time this one shape instead of the defaults")
    parser.add_argument("--tune", action="store_true",
                        help="time the Triton path's launch-size variants instead (CUDA; CPU under TRITON_INTERPRET=1)")
    parser.add_argument("--profile", action="store_true",
                        help="torch.profiler breakdown of our per-channel path against the floor instead")
    parser.add_argument("--calls", type=int_at_least(1), default=10, help="with --profile: calls per profile")
    parser.add_argument("--variants", type=_parse_variants, default=None,
                        help="with --tune: these variants instead of TUNE_VARIANTS, e.g. "
                             "'defaults;tile_units=512,mask_warps=8;apply_block=2048'")
    args = parser.parse_args(argv)
    if args.repeats is not None and args.repeats < 1:
        parser.error(f"--repeats must be >= 1, got {args.repeats}")
    if args.variants is not None and not args.tune:
        parser.error("--variants names the launch sizes that --tune times: give --tune with it")
    if args.tune and args.profile:
        parser.error("--tune and --profile are separate runs: give one of them")
    if args.device == "cuda" and not torch.cuda.is_available():
        # An explicit --device cuda (gpu_checks.sh's bench step) must not pass with an empty
        # table on a machine whose CUDA does not work; "all" still skips CUDA with a note.
        raise SystemExit(f"--device cuda: torch sees no CUDA device (torch {torch.__version__}, "
                         "torch.cuda.is_available() is False)")
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    repeats = args.repeats or (5 if args.quick else 15)
    warmup = 2 if args.quick else 3

    print(
        f"DropBlock benchmark: keep_prob {KEEP_PROB}, block {BLOCK_SIZE}; torch {torch.__version__}, "
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
        f"{torch.get_num_threads()} torch threads, load average {_load()}"
    )
    if args.tune:
        main_tune(args, warmup, repeats)
        return
    if args.profile:
        main_profile(args)
        return
    all_rows, all_notes = [], []
    if args.device in ("all", "cpu"):
        shapes = [args.shape] if args.shape else CPU_SHAPES[:1] if args.quick else CPU_SHAPES
        rows, notes = run(torch.device("cpu"), shapes, [torch.float32], warmup, repeats)
        all_rows += rows
        all_notes += notes
    if args.device in ("all", "cuda"):
        if torch.cuda.is_available():
            print(f"CUDA device: {torch.cuda.get_device_name()}")
            shapes = [args.shape] if args.shape else CUDA_SHAPES[:1] if args.quick else CUDA_SHAPES
            rows, notes = run(
                torch.device("cuda"), shapes, [torch.bfloat16, torch.float32], warmup, repeats * 2
            )
            all_rows += rows
            all_notes += [n for n in notes if n not in all_notes]
        else:
            all_notes.append("CUDA: no device, CUDA rows skipped")
    print(f"load average at the end: {_load()} (other processes share these cores)")
    print()
    print_table(all_rows)
    for note in all_notes:
        print(f"note: {note}")


def main_tune(args: argparse.Namespace, warmup: int, repeats: int) -> None:
    cuda = torch.cuda.is_available() and args.device != "cpu"
    device = torch.device("cuda" if cuda else "cpu")
    if not triton_available(device):
        raise SystemExit("--tune needs the Triton path: a CUDA device Triton supports, or TRITON_INTERPRET=1 "
                         f"on CPU (here: CUDA {'available' if torch.cuda.is_available() else 'absent'}, "
                         f"--device {args.device})")
    if cuda:
        print(f"CUDA device: {torch.cuda.get_device_name()}")
    shapes = [args.shape] if args.shape else CUDA_SHAPES[:1] if args.quick else CUDA_SHAPES
    dtypes = [torch.bfloat16, torch.float32]
    rows = tune(device, shapes, dtypes, warmup, repeats * 2 if cuda else repeats, args.variants or TUNE_VARIANTS)
    print()
    print_table(rows, ["device", "shape", "dtype", "launch sizes", "fwd+bwd ms", "floor ms", "/ floor"])
    print("(the last 'suggested launch sizes' line above is the whole sweep's; its merged setting was not timed "
          "as such: time it with --variants 'defaults;<it>' before making it `_GPU_SIZES`)")


def main_profile(args: argparse.Namespace) -> None:
    cuda = torch.cuda.is_available() and args.device != "cpu"
    device = torch.device("cuda" if cuda else "cpu")
    if cuda:
        print(f"CUDA device: {torch.cuda.get_device_name()}")
        shapes = [args.shape] if args.shape else CUDA_SHAPES[:1] if args.quick else CUDA_SHAPES
        dtypes = [torch.bfloat16, torch.float32]
    else:
        shapes = [args.shape] if args.shape else CPU_SHAPES[:1]
        dtypes = [torch.float32]
    if triton_available(device):
        print("== host us per Philox key draw: " + ", ".join(
            f"{name} {us:.1f}" for name, us in key_draw_us(device, max(args.calls, 100)).items()), flush=True)
    failures: List[str] = []
    rows = profile(device, shapes, dtypes, args.calls, failures)
    print()
    print_table(rows, ["device", "shape", "dtype", "path", "device us / call", "floor device us", "/ floor",
                       "host us / call", "floor host us"])
    for failure in failures:
        print(f"note: {failure}")


if __name__ == "__main__":
    main()
