#!/usr/bin/env python
"""Host time of the Triton path's launches and of the whole op, up to the driver, without a GPU.

    .venv/bin/python benchmarks/bench_triton_launch.py

The op's host time per call is its own Python, the ATen calls it makes, and one Triton
launch per kernel. This times them on any machine: `drop_block_2d_triton` (per channel,
GPU launch sizes with host_key=1) forward and forward+backward on a small bf16 CPU tensor,
each Triton launch (`kernel[grid](...)`: argument binding and specialisation, the
compiled-kernel cache lookup, the launch metadata) going through a stand-in for Triton's
CUDA driver whose launcher does nothing, after the kernels were compiled for sm_90 with
the ptxas that ships with Triton. The breakdown is `bench_dropblock.host_breakdown`'s, the
one `bench_dropblock.py --profile` prints on a GPU: each launch and each of the op's own
ATen calls timed apart (here on CPU, where the tensor is small enough that an allocation
or fill costs about what a CUDA call's host side does), and the rest. Left out: the
driver's own launch (the C launcher and cuLaunchKernel, a few us), which only a GPU
machine can time.

Triton's driver interface is internal and changes between releases; the stand-in follows
Triton 3.4 to 3.8 (`load_binary` returns five values there) and the script says so where
it does not fit.
"""
import argparse
import sys
import time
from pathlib import Path
from typing import Any, Callable, Dict, Tuple

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tools"))  # tool_args.py

from tool_args import int_at_least  # noqa: E402

SHAPE = (2, 64, 16, 16)  # small: on CPU the ATen calls' cost grows with the tensor, on CUDA it does not
GAMMA, BLOCK_SIZE = 0.0025, 7  # about the paper's keep_prob 0.9 at block 7: sparse seeds


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


def host_us(stand_in: StandInDriver, calls: int) -> Dict[str, Tuple[float, Dict[str, float], int]]:
    """{"forward" / "forward+backward": (us per call with nothing wrapped, the best of 3
    rounds; {part: us per call} from `host_breakdown`, whose wrappers add their own time;
    Triton launches per call)} of `drop_block_2d_triton` on SHAPE."""
    from bench_dropblock import host_breakdown

    from dropblock_det.layers import drop_block_triton as kernels

    saved = kernels._interpreting, kernels._launch_sizes
    kernels._interpreting = lambda: True  # lets a CPU tensor through the argument checks
    kernels._launch_sizes = lambda device: kernels._GPU_SIZES  # read at each call
    try:
        with kernels.launch_sizes("cuda", host_key=1):
            x = torch.randn(SHAPE, dtype=torch.bfloat16, requires_grad=True)
            grad = torch.ones_like(x)

            def forward() -> None:
                kernels.drop_block_2d_triton(x, GAMMA, BLOCK_SIZE, BLOCK_SIZE, False)

            def forward_backward() -> None:
                x.grad = None
                kernels.drop_block_2d_triton(x, GAMMA, BLOCK_SIZE, BLOCK_SIZE, False).backward(grad)

            result = {}
            for name, step in (("forward", forward), ("forward+backward", forward_backward)):
                for _ in range(3):  # compiled (ptxas), loaded into the stand-in, allocator warm
                    step()
                before = stand_in.launches
                rounds = []
                for _ in range(3):  # the best of 3: a shared VM's hiccups only add time
                    start_s = time.perf_counter()
                    for _ in range(calls):
                        step()
                    rounds.append((time.perf_counter() - start_s) * 1e6 / calls)
                parts, _ = host_breakdown(step, calls)  # its wrappers add their own time
                result[name] = (min(rounds), parts, (stand_in.launches - before) // (4 * calls))
            return result
    finally:
        kernels._interpreting, kernels._launch_sizes = saved


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int_at_least(1), default=2000, help="calls per step timed (default: 2000)")
    args = parser.parse_args(argv)
    try:
        import triton
        from triton.runtime import driver
    except ImportError:
        sys.exit("bench_triton_launch.py: Triton is not importable here")
    stand_in = StandInDriver()
    driver.set_active(stand_in)
    print(f"Triton {triton.__version__}, the host side of drop_block_2d_triton up to the driver's launch (a stand-in); "
          f"{'x'.join(map(str, SHAPE))} bf16 on CPU, per channel, host_key=1, {torch.get_num_threads()} torch threads")
    try:
        results = host_us(stand_in, args.calls)
    except (TypeError, ValueError, AttributeError) as error:
        sys.exit(f"bench_triton_launch.py: the stand-in driver does not fit Triton {triton.__version__} "
                 f"({type(error).__name__}: {error})")
    for step, (plain_us, parts, launches) in results.items():
        print(f"  {step}: {plain_us:.1f} us per call, {launches} Triton launches; timed apart (us per call, "
              "with the wrappers' own time): " + ", ".join(f"{part} {us:.1f}" for part, us in parts.items()), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
