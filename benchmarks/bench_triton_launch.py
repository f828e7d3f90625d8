#!/usr/bin/env python
"""Host time of one Triton launch of the GPU path's kernels, up to the driver, without a GPU.

    .venv/bin/python benchmarks/bench_triton_launch.py

The op's host time per call is its own Python (`bench_dropblock.py --profile` times it
apart on a GPU), the ATen calls it makes, and one Triton launch per kernel. This times the
last on any machine: Triton's `kernel[grid](...)` (argument binding and specialisation,
the compiled-kernel cache lookup, the launch metadata) with a stand-in for Triton's CUDA
driver whose launcher does nothing, after the kernel was compiled for sm_90 with the
ptxas that ships with Triton. What it leaves out, the driver's own launch (the C launcher
and cuLaunchKernel, a few us), only a GPU machine can time. The launches are the
forward's: `_sparse_seed_kernel` with the key from the host, and `_apply_flat_kernel`, on
the res4 shape (16x1024x50x68). Then the whole op, forward and forward+backward, through
the same stand-in (`op_host_us`).

Triton's driver interface is internal and changes between releases; the stand-in follows
Triton 3.4 to 3.8 (`load_binary` returns five values there) and the script says so where
it does not fit.
"""
import argparse
import math
import statistics
import sys
import time
from pathlib import Path
from typing import Any, Callable, Dict, Tuple

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tools"))  # tool_args.py

from tool_args import int_at_least  # noqa: E402

SHAPE = (16, 1024, 50, 68)  # res4 of a batch-16 RetinaNet at 800x1088
GAMMA, BLOCK_SIZE = 0.0025, 7  # about the paper's keep_prob 0.9 at block 7


class _StandInUtils:
    """What a compiled kernel asks of the driver's utils when it first launches."""

    def load_binary(self, name, kernel, shared, device):
        return 1, 1, 40, 0, 1024  # module, function, registers, spills, max threads per block

    def get_device_properties(self, device):
        return {"max_shared_mem": 232448, "multiprocessor_count": 132}  # an H100 / H200

    def unload_module(self, module):
        pass


class StandInDriver:
    """Triton's CUDA driver as far as compiling for sm_90 and launching need it; the
    launcher counts its calls instead of launching."""

    utils = _StandInUtils()
    backend = "cuda"

    def __init__(self) -> None:
        self.launches = 0

    def get_current_target(self):
        from triton.backends.compiler import GPUTarget

        return GPUTarget("cuda", 90, 32)

    def get_current_device(self) -> int:
        return 0

    def get_current_stream(self, device: Any = None) -> int:
        return 0

    def get_active_torch_device(self) -> torch.device:
        return torch.device("cpu")

    def launcher_cls(self, src: Any, metadata: Any) -> Callable:
        def launch(*args: Any) -> None:
            self.launches += 1
        return launch


def forward_launches() -> Dict[str, Callable[[], None]]:
    """The forward's two kernel launches on SHAPE, as `drop_block_2d_triton` makes them with
    launch size host_key=1 (its arguments computed once; CPU tensors stand in for the
    buffers: nothing runs)."""
    from dropblock_det.layers import drop_block_triton as kernels

    n, c, height, width = SHAPE
    numel = n * c * height * width
    sizes = kernels._GPU_SIZES
    anchors_per_plane = (height - BLOCK_SIZE + 1) * (width - BLOCK_SIZE + 1)
    num_anchors = n * c * anchors_per_plane
    chunk = kernels._seed_chunk(GAMMA)
    num_chunks = math.ceil(num_anchors / chunk)
    num_words = math.ceil(numel / 32)
    buffer = torch.full((num_words // 2 + 2,), -1, dtype=torch.int64)
    words, kept = buffer[:-1].view(torch.int32), buffer[-1:]
    x, out = torch.empty(1024, dtype=torch.bfloat16), torch.empty(1024, dtype=torch.bfloat16)
    key = kernels.host_philox_key(0, 0)
    seed_grid = (math.ceil(num_chunks / sizes.seed_block),)
    apply_grid = (math.ceil(numel / sizes.apply_block),)

    def sparse_seeds() -> None:
        kernels._sparse_seed_kernel[seed_grid](
            kept, key, words, kept, num_words, num_words + num_words % 2, numel, num_anchors, num_chunks, chunk,
            kernels._float64_bits(math.log1p(-GAMMA)), anchors_per_plane, width - BLOCK_SIZE + 1, c, BLOCK_SIZE,
            BLOCK_SIZE, (BLOCK_SIZE + 62) // 32, c * height * width, height * width, width, 1,
            BLOCK=sizes.seed_block, RUNS=True, INDEX_64=False, KEY_ON_HOST=True, num_warps=sizes.mask_warps)

    def apply() -> None:
        kernels._apply_flat_kernel[apply_grid](
            x, words.view(torch.uint8), kept, out, numel, float(numel), kernels._EPS, BLOCK=sizes.apply_block,
            COMPUTE_F64=False, OUT_BF16=True, INDEX_64=False, num_warps=sizes.apply_warps, enable_fp_fusion=False,
            SATURATE=True, RELU=0)

    return {"_sparse_seed_kernel": sparse_seeds, "_apply_flat_kernel": apply}


def op_host_us(stand_in: StandInDriver, calls: int, repeats: int) -> Dict[str, Tuple[float, int]]:
    """{step: (host us per call, launches per call)} of of `drop_block_2d_triton` (per-channel, GPU launch sizes with
    host_key=1) forward, and forward+backward, on a small bf16 CPU tensor with every launch
    through the stand-in driver: the op's Python, its ATen calls (on CPU: synchronous, on a
    tensor small enough that they cost what a CUDA call's host side does) and Triton's
    launch path; only the driver's launches are left out. (The forward also makes a
    torch.full, the backward starts autograd's engine.)"""
    from dropblock_det.layers import drop_block_triton as kernels

    saved = kernels._interpreting, kernels._launch_sizes
    kernels._interpreting = lambda: True  # lets a CPU tensor through the argument checks
    kernels._launch_sizes = lambda device: kernels._GPU_SIZES  # read at each call
    try:
        with kernels.launch_sizes("cuda", host_key=1):
            x = torch.randn(2, 64, 16, 16, dtype=torch.bfloat16, requires_grad=True)
            grad = torch.ones_like(x)

            def forward() -> None:
                kernels.drop_block_2d_triton(x, GAMMA, BLOCK_SIZE, BLOCK_SIZE, False)

            def forward_backward() -> None:
                x.grad = None
                kernels.drop_block_2d_triton(x, GAMMA, BLOCK_SIZE, BLOCK_SIZE, False).backward(grad)

            result = {}
            for name, step in (("forward", forward), ("forward+backward", forward_backward)):
                step()  # compiles
                before = stand_in.launches
                step()
                launches = stand_in.launches - before
                timings = []
                for _ in range(repeats):
                    start_s = time.perf_counter()
                    for _ in range(calls):
                        step()
                    timings.append((time.perf_counter() - start_s) * 1e6 / calls)
                result[name] = (min(timings), launches)
            return result
    finally:
        kernels._interpreting, kernels._launch_sizes = saved


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--launches", type=int_at_least(1), default=2000, help="launches per timing (default: 2000)")
    parser.add_argument("--repeats", type=int_at_least(1), default=5, help="timings per kernel; the best is printed")
    args = parser.parse_args(argv)
    try:
        import triton
        from triton.runtime import driver
    except ImportError:
        sys.exit("bench_triton_launch.py: Triton is not importable here")
    stand_in = StandInDriver()
    driver.set_active(stand_in)
    print(f"Triton {triton.__version__} launch path on this host, the driver's launch left out "
          f"({torch.get_num_threads()} torch threads); shape {'x'.join(map(str, SHAPE))}, bf16, host_key=1")
    try:
        launches = forward_launches()
        for launch in launches.values():
            launch()  # compiles (ptxas), loads into the stand-in
    except (TypeError, ValueError, AttributeError) as error:
        sys.exit(f"bench_triton_launch.py: the stand-in driver does not fit Triton {triton.__version__} "
                 f"({type(error).__name__}: {error})")
    expected = stand_in.launches
    for name, launch in launches.items():
        timings = []
        for _ in range(args.repeats):
            start_s = time.perf_counter()
            for _ in range(args.launches):
                launch()
            timings.append((time.perf_counter() - start_s) * 1e6 / args.launches)
        expected += args.repeats * args.launches
        print(f"  {name}: {min(timings):.1f} us per launch (best of {args.repeats}; median "
              f"{statistics.median(timings):.1f})", flush=True)
    assert stand_in.launches == expected, "a launch did not reach the launcher"
    for step, (us, launches) in op_host_us(stand_in, max(1, args.launches // 4), args.repeats).items():
        print(f"  drop_block_2d_triton {step} (2x64x16x16 CPU tensors, {launches} Triton launches): {us:.1f} us "
              "per call", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
