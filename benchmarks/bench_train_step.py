#!/usr/bin/env python
"""RetinaNet R50-FPN training step with and without DropBlock, timed interleaved.

Two models built from the same config (`configs/Base-RetinaNet-Scratch-DropBlock.yaml`:
GN everywhere, DropBlockRetinaNet, the paper's DropBlock placement in res4 + res5 after
every conv+norm and on the shortcut, keep_prob 0.9, block 7, one mask per channel):

* "baseline": every MODEL.DROPBLOCK location off (stock RetinaNet with GN);
* "dropblock": res4 + res5 (the paper's placement) plus the FPN (lateral and output convs)
  plus both head towers, every regularizer at its target keep_prob (no ramp: a ramp at
  iteration 0 would make them identities and the measurement meaningless).

Both get the same weights and the same synthetic batches (random images and boxes built in
this process, no dataset). On CUDA the batch is the largest that fits: one 2-image probe
measures the memory per image, and only the extrapolated size (then smaller ones, should it
run out of memory) is tried. Timing windows alternate between the models (ABBA order), each
window enough full training steps (forward under AMP, backward, SGD step) to last about
--window-s between device synchronisations; the table reports the median step time per
model and the slowdown.

    python benchmarks/bench_train_step.py                # CUDA: R50, 800x1088, AMP fp16,
                                                         # largest batch that fits
    python benchmarks/bench_train_step.py --impl torch   # DropBlock's PyTorch path instead
    python benchmarks/bench_train_step.py --launch-sizes keep_bits=1   # Triton launch sizes
    python benchmarks/bench_train_step.py --quick        # CPU smoke run: R18, 96x128, 2 steps
"""
import argparse
import contextlib
import math
import platform
import statistics
import sys
import time
from pathlib import Path
from typing import Dict, List, Optional

import torch

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tools"))  # tool_args.py

from detectron2.config import get_cfg  # noqa: E402
from detectron2.modeling import build_model  # noqa: E402
from detectron2.structures import Boxes, Instances  # noqa: E402
from detectron2.utils.events import EventStorage  # noqa: E402

import dropblock_det  # noqa: E402  (registers DropBlockRetinaNet and the backbones)
from dropblock_det import add_dropblock_config  # noqa: E402
from dropblock_det.layers import LinearKeepProbSchedule, iter_regularizers, triton_path_chosen  # noqa: E402
from dropblock_det.layers.drop_block_triton import (  # noqa: E402
    describe_launch_sizes, launch_sizes, parse_launch_sizes)
from tool_args import int_at_least  # noqa: E402

DEFAULT_CONFIG = REPO / "configs" / "Base-RetinaNet-Scratch-DropBlock.yaml"
BATCH_CANDIDATES = (64, 48, 32, 24, 16, 12, 8, 6, 4, 2, 1)


def build_cfg(args: argparse.Namespace, with_dropblock: bool):
    """The benchmark's config; `with_dropblock` False turns every DropBlock location off."""
    cfg = get_cfg()
    add_dropblock_config(cfg)
    cfg.merge_from_file(str(args.config))
    cfg.MODEL.DEVICE = args.device
    cfg.MODEL.RESNETS.DEPTH = args.depth
    if args.depth < 50:
        cfg.MODEL.RESNETS.RES2_OUT_CHANNELS = 64
    if args.quick:
        cfg.MODEL.FPN.OUT_CHANNELS = 32
        cfg.MODEL.RETINANET.NUM_CONVS = 1
    db = cfg.MODEL.DROPBLOCK
    db.IMPL = args.impl
    db.RESNET.ENABLED = with_dropblock
    db.FPN.ENABLED = with_dropblock
    db.HEAD.ENABLED = with_dropblock
    cfg.freeze()
    return cfg


def synthetic_batch(batch_size: int, height: int, width: int, num_classes: int, device: str, seed: int) -> List[Dict]:
    """detectron2 training inputs: random uint8-range images and 1-8 random boxes each,
    already on `device` so that no host-to-device copy is timed."""
    gen = torch.Generator().manual_seed(seed)
    items = []
    for _ in range(batch_size):
        image = torch.randint(0, 256, (3, height, width), generator=gen).float()
        count = int(torch.randint(1, 9, (1,), generator=gen))
        sizes = torch.rand(count, 2, generator=gen) * 0.4 + 0.05  # 5% .. 45% of the side
        corners = torch.rand(count, 2, generator=gen) * (1 - sizes)
        scale = torch.tensor([width, height], dtype=torch.float32)
        boxes = torch.cat([corners * scale, (corners + sizes) * scale], dim=1)
        instances = Instances((height, width))
        instances.gt_boxes = Boxes(boxes.to(device))
        instances.gt_classes = torch.randint(0, num_classes, (count,), generator=gen).to(device)
        items.append({"image": image.to(device), "instances": instances, "height": height, "width": width})
    return items


class Runner:
    """One model with its optimizer and AMP scaler; `step()` is one training iteration."""

    def __init__(self, cfg, args: argparse.Namespace, state_dict: Optional[dict] = None) -> None:
        self.model = build_model(cfg)
        if state_dict is not None:
            # Regularizers have no parameters: both models share every key.
            self.model.load_state_dict(state_dict)
        self.model.train()
        # The targets throughout, on purpose: set, so the regularizers do not warn of a missing ramp.
        LinearKeepProbSchedule(0, 0).apply(self.model, 0)
        self.optimizer = torch.optim.SGD(self.model.parameters(), lr=1e-4, momentum=0.9)
        self.device_type = torch.device(args.device).type
        self.amp = self.device_type == "cuda" and not args.no_amp
        self.amp_dtype = getattr(torch, args.amp_dtype)
        self.scaler = torch.amp.GradScaler(self.device_type, enabled=self.amp and self.amp_dtype == torch.float16)

    def step(self, batch: List[Dict]) -> None:
        with torch.autocast(self.device_type, dtype=self.amp_dtype, enabled=self.amp):
            losses = self.model(batch)
        loss = sum(losses.values())
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        self.scaler.step(self.optimizer)
        self.scaler.update()


def synchronize(device: str) -> None:
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize()


def fits(runners: List[Runner], args: argparse.Namespace, batch_size: int) -> bool:
    """True when two training steps of every runner run at this batch size."""
    try:
        batch = synthetic_batch(batch_size, args.height, args.width, 80, args.device, seed=0)
        for runner in runners:
            for _ in range(2):
                runner.step(batch)
        synchronize(args.device)
        return True
    except torch.cuda.OutOfMemoryError:
        return False
    finally:
        for runner in runners:
            runner.optimizer.zero_grad(set_to_none=True)
        if torch.cuda.is_available():
            torch.cuda.empty_cache()


def largest_candidate_that_may_fit(free_bytes: float, fixed_bytes: float, probe_peak_bytes: float,
                                   probe_batch: int) -> int:
    """The largest of BATCH_CANDIDATES whose extrapolated peak memory fits in 90% of the free
    memory, from one probe: peak = fixed + per_image * batch, per_image from the probe's peak
    above the fixed part (weights, optimizer state). At least the smallest candidate."""
    per_image = max(probe_peak_bytes - fixed_bytes, 1.0) / probe_batch
    budget = 0.9 * free_bytes - fixed_bytes
    for batch_size in BATCH_CANDIDATES:
        if batch_size * per_image <= budget:
            return batch_size
    return BATCH_CANDIDATES[-1]


def choose_batch(runners: List[Runner], args: argparse.Namespace) -> int:
    """`--batch`, or on CUDA the largest candidate that runs: one probe at 2 images gives the
    memory per image, so only the extrapolated size (and, if it runs out of memory after
    all, the next smaller ones) is tried instead of every candidate from the top."""
    if args.batch != "auto":
        return int(args.batch)
    if torch.device(args.device).type != "cuda":
        return 2
    probe = 2
    torch.cuda.empty_cache()
    fixed = torch.cuda.memory_allocated()
    torch.cuda.reset_peak_memory_stats()
    if not fits(runners, args, probe):
        if fits(runners, args, 1):
            return 1
        raise SystemExit("not even batch 1 fits on this device")
    peak = torch.cuda.max_memory_allocated()
    free, _ = torch.cuda.mem_get_info()
    # What tensors can use: the device's free memory plus what torch's allocator holds.
    start = largest_candidate_that_may_fit(free + torch.cuda.memory_reserved(), fixed, peak, probe)
    for batch_size in BATCH_CANDIDATES[BATCH_CANDIDATES.index(start):]:
        if batch_size <= probe:  # the probe already ran at this size or larger
            return batch_size
        if fits(runners, args, batch_size):
            return batch_size
    raise AssertionError("unreachable: BATCH_CANDIDATES ends below the probe size")


def steps_per_window(step_ms: float, window_s: float, lowest: int = 2, highest: int = 20) -> int:
    """Steps that make a timing window last about `window_s`, within [lowest, highest]."""
    return max(lowest, min(highest, math.ceil(window_s * 1e3 / max(step_ms, 1e-3))))


def time_window(runner: Runner, batches: List[List[Dict]], device: str) -> float:
    """Milliseconds per training step over one window of len(batches) steps."""
    synchronize(device)
    start = time.perf_counter()
    for batch in batches:
        runner.step(batch)
    synchronize(device)
    return (time.perf_counter() - start) * 1e3 / len(batches)


def _batch(text: str):
    return text if text == "auto" else int_at_least(1)(text)


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not (value > 0 and math.isfinite(value)):
        raise argparse.ArgumentTypeError(f"expected a positive, finite number of seconds, got {text!r}")
    return value


def _config_file(text: str) -> Path:
    path = Path(text)
    if not path.is_file():
        raise argparse.ArgumentTypeError(f"no such config file: {text!r}")
    return path


def _launch_sizes_arg(text: str) -> Dict[str, int]:
    try:
        return parse_launch_sizes(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def main(argv: Optional[List[str]] = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="CPU-sized smoke run: R18, 96x128, 2 steps")
    parser.add_argument("--device", default=None, help="default: cuda when available, else cpu")
    parser.add_argument("--config", type=_config_file, default=DEFAULT_CONFIG)
    parser.add_argument("--impl", choices=["auto", "torch"], default="auto", help="MODEL.DROPBLOCK.IMPL")
    parser.add_argument("--batch", type=_batch, default="auto", help="images per step, or 'auto' (largest that fits)")
    parser.add_argument("--depth", type=int, choices=[18, 34, 50, 101, 152], default=None, help="ResNet depth (default 50; 18 with --quick)")
    parser.add_argument("--height", type=int_at_least(32), default=None, help="default 800 (96 with --quick)")
    parser.add_argument("--width", type=int_at_least(32), default=None, help="default 1088 (128 with --quick)")
    parser.add_argument("--amp-dtype", choices=["float16", "bfloat16"], default="float16")
    parser.add_argument("--no-amp", action="store_true", help="fp32 training (AMP is CUDA only anyway)")
    parser.add_argument("--steps", type=int_at_least(1), default=None,
                        help="steps per timing window (default: enough for --window-s, 2 to 20; 2 with --quick)")
    parser.add_argument("--window-s", type=_seconds, default=3.0,
                        help="seconds a timing window should last when --steps is not given (default 3)")
    parser.add_argument("--rounds", type=int_at_least(1), default=None, help="ABBA rounds of windows (default 4; 1 with --quick)")
    parser.add_argument("--warmup", type=int_at_least(0), default=None, help="untimed steps per model (default 3; 1 with --quick)")
    parser.add_argument("--launch-sizes", type=_launch_sizes_arg, default="defaults",
                        help="the Triton path's launch sizes, as bench_dropblock.py --tune names them "
                             "(e.g. keep_bits=1,tile_units=256; default: defaults)")
    args = parser.parse_args(argv)
    args.device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(args.device)
    except RuntimeError as exc:
        parser.error(f"--device {args.device!r}: {exc}")
    if device.type == "cuda" and not torch.cuda.is_available():
        # Said here in one line, not as a driver traceback from the first .to(device).
        raise SystemExit(f"--device {args.device}: torch sees no CUDA device (torch "
                         f"{torch.__version__}, torch.cuda.is_available() is False)")
    if device.type == "cuda" and device.index is not None:
        count = torch.cuda.device_count()
        if device.index >= count:
            raise SystemExit(f"--device {args.device}: torch sees {count} CUDA device(s), cuda:0 to cuda:{count - 1}")
        # The device name, synchronisation and memory statistics below are the current device's.
        torch.cuda.set_device(device)
    args.depth = args.depth or (18 if args.quick else 50)
    args.height = args.height or (96 if args.quick else 800)
    args.width = args.width or (128 if args.quick else 1088)
    rounds = args.rounds or (1 if args.quick else 4)
    warmup = args.warmup if args.warmup is not None else (1 if args.quick else 3)
    if args.quick and args.device == "cpu":
        torch.set_num_threads(min(2, torch.get_num_threads()))

    torch.manual_seed(0)
    baseline = Runner(build_cfg(args, with_dropblock=False), args)
    dropblock = Runner(build_cfg(args, with_dropblock=True), args, state_dict=baseline.model.state_dict())
    regularizers = list(iter_regularizers(dropblock.model))
    if not regularizers or list(iter_regularizers(baseline.model)):
        raise SystemExit("config error: the DropBlock model has no regularizers or the baseline has some")
    runners = {"baseline": baseline, "dropblock": dropblock}

    device_name = torch.cuda.get_device_name() if args.device.startswith("cuda") else platform.processor() or platform.machine()
    triton_path = triton_path_chosen(torch.device(args.device), args.impl)
    amp = "off" if not baseline.amp else args.amp_dtype
    print(
        f"RetinaNet R{args.depth}-FPN training step, {args.height}x{args.width}, AMP {amp}, device {device_name}; "
        f"torch {torch.__version__}; config {args.config.name}; DropBlock impl {args.impl!r} "
        f"({'Triton kernels, launch sizes ' + describe_launch_sizes(args.launch_sizes) if triton_path else 'PyTorch path'}), "
        f"{len(regularizers)} regularizers "
        f"(res4+res5 all positions, FPN, head) at their target keep_prob",
        flush=True,
    )
    # The launch sizes of the device type the models run on (the interpreter's on CPU).
    sizes = launch_sizes(torch.device(args.device).type, **args.launch_sizes) if triton_path else contextlib.nullcontext()
    with EventStorage(0), sizes:
        batch_size = choose_batch(list(runners.values()), args)
        print(f"batch size: {batch_size} images per step", flush=True)
        batches = [synthetic_batch(batch_size, args.height, args.width, 80, args.device, seed=0)]
        for runner in runners.values():
            for _ in range(warmup):
                runner.step(batches[0])
        # Windows long enough that the clock and the synchronisations are noise, whatever
        # the GPU and batch: one step of each model sets the count.
        probe_ms = max(time_window(runner, batches, args.device) for runner in runners.values())
        steps = args.steps or (2 if args.quick else steps_per_window(probe_ms, args.window_s))
        # Two distinct batches, taken in turn: up to 20 would hold 19 more batches on the GPU
        # than the batch size was chosen with (12 GB at 64 images of 800x1088).
        batches.append(synthetic_batch(batch_size, args.height, args.width, 80, args.device, seed=1))
        batches = [batches[i % 2] for i in range(steps)]
        print(f"{steps} steps per timing window (one step: {probe_ms:.0f} ms)", flush=True)
        times: Dict[str, List[float]] = {name: [] for name in runners}
        peak_gib: Dict[str, float] = {}
        for round_index in range(rounds):
            order = ["baseline", "dropblock"] if round_index % 2 == 0 else ["dropblock", "baseline"]
            for name in order:
                if args.device.startswith("cuda"):
                    torch.cuda.reset_peak_memory_stats()
                times[name].append(time_window(runners[name], batches, args.device))
                if args.device.startswith("cuda"):
                    peak_gib[name] = max(peak_gib.get(name, 0.0), torch.cuda.max_memory_allocated() / 2**30)
                print(f"  round {round_index}: {name} {times[name][-1]:.1f} ms/step", flush=True)

    base_ms = statistics.median(times["baseline"])
    header = ["model", "batch", "ms/step (median)", "min", "max", "vs baseline", "peak GiB"]
    rows = []
    for name in runners:
        median = statistics.median(times[name])
        rows.append([
            name,
            str(batch_size),
            f"{median:.1f}",
            f"{min(times[name]):.1f}",
            f"{max(times[name]):.1f}",
            f"{(median / base_ms - 1) * 100:+.1f}%",
            f"{peak_gib[name]:.1f}" if name in peak_gib else "n/a",
        ])
    widths = [max(len(r[i]) for r in rows + [header]) for i in range(len(header))]
    print()
    print("| " + " | ".join(h.ljust(w) for h, w in zip(header, widths)) + " |")
    print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    for row in rows:
        print("| " + " | ".join(c.ljust(w) for c, w in zip(row, widths)) + " |")
    print(f"({rounds} rounds x {steps} steps per model, interleaved; {steps * rounds} timed steps each)")
    # impl "auto" falls back to the PyTorch path for good after a Triton build error (one
    # RuntimeWarning): say which path the timed steps ran, not only the one announced.
    ran_triton = triton_path_chosen(torch.device(args.device), args.impl)
    print(f"DropBlock ran on the {'Triton kernels' if ran_triton else 'PyTorch path'}"
          + (" (NOT the Triton kernels announced above: they failed to build, see the RuntimeWarning; "
             "these times are the PyTorch path's)" if triton_path and not ran_triton else ""))


if __name__ == "__main__":
    main()
