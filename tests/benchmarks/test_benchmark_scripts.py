"""The two benchmark scripts run and print their tables (at toy sizes: the numbers mean
nothing here; the timings that count are in the README, measured with `make bench`)."""
import importlib.util
import os
import re
import subprocess
import sys

import pytest
import torch

from conftest import REPO, load_tool


def _script(*args: str, env=None) -> subprocess.CompletedProcess:
    """python <args> in the repository root; the finished process, whatever its exit status."""
    return subprocess.run([sys.executable, *args], cwd=str(REPO), capture_output=True,
                          text=True, timeout=300, env=env)


def _run(*args: str, env=None) -> str:
    proc = _script(*args, env=env)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc.stdout


def test_bench_dropblock_prints_a_row_per_implementation_with_its_ratio_to_the_floor():
    out = _run("benchmarks/bench_dropblock.py", "--device", "cpu", "--shape", "2,8,16,20",
               "--repeats", "1")
    rows = [line for line in out.splitlines() if line.startswith("| cpu")]
    names = [row.split("|")[2].strip() for row in rows]
    assert names[:3] == ["floor: x * mask", "dropblock_det torch (per channel)",
                         "dropblock_det torch (shared mask)"]
    assert "torchvision.ops.drop_block2d" in names
    for row in rows:
        cells = [c.strip() for c in row.strip("|").split("|")]
        assert cells[2] == "2x8x16x20" and cells[3] == "float32"
        assert float(cells[4]) > 0 and float(cells[5]) > 0
        assert re.fullmatch(r"\d+\.\d\dx", cells[7])
        assert float(cells[8]) > 0  # host ms: on CPU the wall time of forward+backward
    # What our per-channel path keeps for backward: at most 1 byte per element.
    assert float([c.strip() for c in rows[1].strip("|").split("|")][6]) <= 1.0


def test_kept_bytes_leave_out_x_and_the_output_only():
    # ReLU keeps only its output (the next layer's input), sin only its input x: 0 B; the
    # floor keeps its fp32 mask: 4 B per element.
    bench = load_tool("bench_dropblock", folder="benchmarks")
    x = torch.randn(2, 3, 8, 8, requires_grad=True)
    assert bench._bytes_kept_per_element(torch.relu, x) == 0.0
    assert bench._bytes_kept_per_element(torch.sin, x) == 0.0  # sin keeps x
    assert bench._bytes_kept_per_element(bench._floor(x.detach()), x) == 4.0


def test_bench_dropblock_rows_give_each_forward_backward_over_the_floors(monkeypatch):
    # bench_shape stood in for: the table's cells from its (fwd, fwd+bwd, kept, host) times.
    bench = load_tool("bench_dropblock", folder="benchmarks")
    ours = "dropblock_det torch (per channel)"
    timed = {"floor: x * mask": (1.0, 4.0, 4.0, 0.5), ours: (3.0, 10.0, 1.0, 2.0)}

    def bench_shape(impls, x, warmup, repeats, failures=None, settings=None, leaves=()):
        assert set(timed) <= set(impls)
        return dict(timed)

    monkeypatch.setattr(bench, "bench_shape", bench_shape)
    rows, notes = bench.run(torch.device("cpu"), [(1, 2, 4, 4)], [torch.float32], 0, 1)
    assert rows == [["cpu", "floor: x * mask", "1x2x4x4", "float32", "1.00", "4.00", "4.000", "1.00x", "0.5"],
                    ["cpu", ours, "1x2x4x4", "float32", "3.00", "10.00", "1.000", "2.50x", "2.00"]]
    # The floor failed: no ratios to give, no rows, and the note says why.

    def floor_fails(impls, x, warmup, repeats, failures=None, settings=None, leaves=()):
        failures["floor: x * mask"] = "RuntimeError: out of memory"
        return {ours: timed[ours]}

    monkeypatch.setattr(bench, "bench_shape", floor_fails)
    rows, notes = bench.run(torch.device("cpu"), [(1, 2, 4, 4)], [torch.float32], 0, 1)
    assert rows == [] and "floor: x * mask, 1x2x4x4 float32: failed, row left out (RuntimeError: out of memory)" in notes


def _rows_run_would_time(bench, monkeypatch, dtype):
    """{row name: implementation} that run() hands bench_shape on CPU for one small shape."""
    captured = {}

    def bench_shape(impls, x, warmup, repeats, failures=None, settings=None, leaves=()):
        captured.update(impls)
        return {}

    monkeypatch.setattr(bench, "bench_shape", bench_shape)
    bench.run(torch.device("cpu"), [(1, 16, 48, 48)], [dtype], 0, 1)
    return captured


def test_bench_dropblock_rows_run_what_their_names_say(monkeypatch):
    # A row timing the other variant than its name (per channel <-> shared mask, the fused
    # ReLU unfused, torchvision at drop_prob 0.9) would print plausible but wrong numbers.
    bench = load_tool("bench_dropblock", folder="benchmarks")
    rows = _rows_run_would_time(bench, monkeypatch, torch.float32)
    ones = torch.ones(1, 16, 48, 48)
    torch.manual_seed(0)
    for name in ("dropblock_det torch (per channel)", "dropblock_det torch (shared mask)",
                 "torchvision.ops.drop_block2d"):
        kept = rows[name](ones) != 0
        assert 0.75 < kept.float().mean() < 0.97, (name, kept.float().mean())
        same_in_every_channel = bool((kept == kept[:, :1]).all())
        assert same_in_every_channel == (name == "dropblock_det torch (shared mask)"), name
    # The fused rows keep less for backward than the ReLU and the op apart (what fusing is for).
    x = torch.randn(1, 16, 48, 48, requires_grad=True)
    for fused, unfused in (("dropblock_det torch ReLU fused (per channel)",
                            "dropblock_det torch ReLU then DropBlock, unfused (per channel)"),
                           ("Dropout: ReLU fused", "Dropout: ReLU then Dropout, unfused")):
        assert bench._bytes_kept_per_element(rows[fused], x) < bench._bytes_kept_per_element(rows[unfused], x), fused


def test_bench_dropblock_floor_multiplies_in_the_inputs_dtype(monkeypatch):
    # A float32 mask on a bf16 x would time a promoting multiply and an fp32 output: a floor
    # twice as slow as it should be, every "vs floor" ratio flattered.
    bench = load_tool("bench_dropblock", folder="benchmarks")
    floor = _rows_run_would_time(bench, monkeypatch, torch.bfloat16)["floor: x * mask"]
    x = torch.ones(1, 16, 48, 48, dtype=torch.bfloat16, requires_grad=True)
    out = floor(x)
    assert out.dtype == torch.bfloat16 and 0.85 < (out != 0).float().mean() < 0.95
    assert bench._bytes_kept_per_element(floor, x) == 2.0


@pytest.mark.parametrize("argv, shapes, dtypes, warmup, repeats", [
    (["--device", "cpu"], "CPU_SHAPES", [torch.float32], 3, 15),
    (["--device", "cpu", "--quick"], "CPU_SHAPES[:1]", [torch.float32], 2, 5),
    (["--device", "cuda"], "CUDA_SHAPES", [torch.bfloat16, torch.float32], 3, 30),
    (["--device", "cuda", "--quick"], "CUDA_SHAPES[:1]", [torch.bfloat16, torch.float32], 2, 10),
    (["--device", "cuda", "--quick", "--shape", "2,8,16,20", "--repeats", "4"], [(2, 8, 16, 20)],
     [torch.bfloat16, torch.float32], 2, 8),
])
def test_bench_dropblock_times_the_shapes_dtypes_and_repeats_it_says(argv, shapes, dtypes, warmup, repeats,
                                                                     monkeypatch):
    bench = load_tool("bench_dropblock", folder="benchmarks")
    calls = []
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda *args: "stand-in GPU")
    monkeypatch.setattr(bench, "run", lambda device, *args: calls.append((device.type, *args)) or ([], []))
    bench.main(argv)
    shapes = eval(shapes, vars(bench)) if isinstance(shapes, str) else shapes
    assert calls == [(argv[1], shapes, dtypes, warmup, repeats)]


def test_bench_shape_times_round_robin_after_the_warmup():
    # One run of each row per repeat (load from other processes hits every row alike), and
    # the warm-up runs (here the slow ones) are not timed.
    import time

    bench = load_tool("bench_dropblock", folder="benchmarks")
    calls = []

    def row(name, slow_calls=0):
        def impl(t):
            calls.append(name)
            if calls.count(name) <= slow_calls:
                time.sleep(0.05)
            return t * 2
        return impl

    x = torch.randn(1, 1, 4, 4, requires_grad=True)
    # A: the first check, then the warm-up's forward and forward+backward are slow.
    results = bench.bench_shape({"A": row("A", slow_calls=3), "B": row("B")}, x, warmup=1, repeats=1)
    assert calls == ["A", "B"] + ["A", "A", "B", "B"] * 2 + ["A", "B"]  # check, 2 steps, kept bytes
    fwd, fwd_bwd, _, host = results["A"]
    assert max(fwd, fwd_bwd, host) < 25, results


def test_a_row_that_raises_is_left_out_with_its_error_and_the_others_are_timed():
    # One failing implementation (a Triton build error on the GPU, a package's bug) used to
    # end the whole run with a traceback and no table at all.
    bench = load_tool("bench_dropblock", folder="benchmarks")
    x = torch.randn(2, 4, 9, 9, requires_grad=True)

    def broken(t):
        raise RuntimeError("ptxas fatal: this row cannot build")

    failures = {}
    results = bench.bench_shape({"floor: x * mask": bench._floor(x.detach()), "broken": broken,
                                 "ours": bench._ours(False, "torch")}, x, warmup=0, repeats=1, failures=failures)
    assert set(results) == {"floor: x * mask", "ours"}
    assert failures == {"broken": "RuntimeError: ptxas fatal: this row cannot build"}
    assert all(fwd > 0 and fwd_bwd > 0 and host > 0 for fwd, fwd_bwd, _, host in results.values())


def test_every_run_starts_without_a_gradient_on_the_residual_too():
    # The residual rows' r is a leaf that needs a gradient: left set between runs, each
    # backward added into r.grad, a read-modify-write of a whole tensor that the rows timed
    # and that a network (where r's gradient goes on to the layer that made it) does not pay.
    bench = load_tool("bench_dropblock", folder="benchmarks")
    x = torch.randn(2, 4, 9, 9, requires_grad=True)
    residual = torch.randn_like(x).requires_grad_(True)
    grads = []

    def op(t):
        grads.append((residual.grad, t.grad))  # what the run starts from, r's and x's
        return torch.relu(residual + t)

    bench.bench_shape({"residual alone": op}, x, warmup=1, repeats=2, leaves=[residual])
    # The first run, then (forward, forward+backward) per step, then the kept bytes' forward.
    assert len(grads) == 1 + 2 * 3 + 1
    assert [g is None for pair in grads[0:7:2] for g in pair] == [True] * 8  # each forward+backward


def test_tune_goes_on_past_variants_that_fail_and_suggests_from_the_shapes_it_could_time(monkeypatch, capsys):
    # The launch-size sweep with the op replaced by the PyTorch path: the defaults fail on the
    # first shape (as a Triton build error would) and tile_units=64 everywhere.
    import contextlib

    bench = load_tool("bench_dropblock", folder="benchmarks")
    current = {}

    @contextlib.contextmanager
    def sizes(device_type, **variant):
        current["variant"] = variant
        yield

    def op(t):
        if current["variant"] == {"tile_units": 64} or (current["variant"] == {} and t.shape[0] == 2):
            raise RuntimeError("cannot build")
        return bench.drop_block_2d(t, 0.9, 3, impl="torch")

    monkeypatch.setattr(bench, "launch_sizes", sizes)
    monkeypatch.setattr(bench, "_ours", lambda *args, **kwargs: op)
    variants = [{}, {"tile_units": 64}, {"mask_warps": 2}]
    rows = bench.tune(torch.device("cpu"), [(2, 4, 9, 9), (3, 4, 9, 9)], [torch.float32], 0, 1, variants)
    assert [(r[1], r[3].replace(" (fastest)", "")) for r in rows] == [
        ("2x4x9x9", "mask_warps=2"), ("3x4x9x9", "defaults"), ("3x4x9x9", "mask_warps=2")]
    printed = capsys.readouterr().out
    assert printed.count("failed:") == 3 and "suggested launch sizes (1 shape x dtype timings" in printed
    # Every variant failing: no rows, no crash.
    monkeypatch.setattr(bench, "_ours", lambda *args, **kwargs: lambda t: (_ for _ in ()).throw(RuntimeError("no")))
    assert bench.tune(torch.device("cpu"), [(2, 4, 9, 9)], [torch.float32], 0, 1, variants) == []


def test_tune_marks_the_fastest_forward_backward_and_divides_by_the_floors(monkeypatch):
    bench = load_tool("bench_dropblock", folder="benchmarks")
    timed = {"floor: x * mask": (1.0, 2.0, 0.0, 0.1), "defaults": (0.5, 5.0, 0.0, 0.1),
             "keep_bits=1": (3.0, 4.0, 0.0, 0.1)}  # fastest forward, slowest forward+backward: the defaults
    monkeypatch.setattr(bench, "bench_shape", lambda impls, *args, **kwargs: dict(timed))
    rows = bench.tune(torch.device("cpu"), [(1, 2, 4, 4)], [torch.float32], 0, 1, [{}, {"keep_bits": 1}])
    assert rows == [["cpu", "1x2x4x4", "float32", "defaults", "5.000", "2.000", "2.50x"],
                    ["cpu", "1x2x4x4", "float32", "keep_bits=1 (fastest)", "4.000", "2.000", "2.00x"]]


def test_every_tune_variant_is_on_one_side_of_the_suggestion():
    # A variant on no side (or a mixed one) is never suggested: its family's sweep wasted.
    bench = load_tool("bench_dropblock", folder="benchmarks")
    sides = (bench._MASK_SIDE, bench._APPLY_SIDE, bench._KEY_SIDE)
    for variant in bench.TUNE_VARIANTS[1:]:
        assert sum(set(variant) <= side for side in sides) == 1, variant


def test_bench_train_step_quick_run_prints_both_models():
    proc = _script("benchmarks/bench_train_step.py", "--quick", "--rounds", "3")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    out = proc.stdout
    # Its regularizers train at their targets on purpose: set so, not warned of as a missing ramp.
    assert "nothing has set its keep_prob" not in proc.stderr
    assert re.search(r"^\| baseline\s+\|", out, re.M) and re.search(r"^\| dropblock\s+\|", out, re.M)
    rows = {cells[0]: cells for cells in ([c.strip() for c in line.strip("|").split("|")]
                                          for line in out.splitlines() if line.startswith("| "))}
    # The windows alternate in ABBA order (drift hits both models alike), and the table gives
    # each model's median, min and max over its windows.
    windows = re.findall(r"^  round (\d): (\w+) ([\d.]+) ms/step$", out, re.M)
    assert [(int(i), name) for i, name, _ in windows] == [
        (0, "baseline"), (0, "dropblock"), (1, "dropblock"), (1, "baseline"), (2, "baseline"), (2, "dropblock")]
    for name in ("baseline", "dropblock"):
        ms = sorted(float(t) for _, n, t in windows if n == name)
        assert [float(c) for c in rows[name][2:5]] == [ms[1], ms[0], ms[2]], (name, ms)
    assert "(3 rounds x 2 steps per model, interleaved; 6 timed steps each)" in out
    # "vs baseline": the dropblock model's median over the baseline's, up to the rounding of
    # the printed medians (0.05 ms each) and of the percentage.
    assert rows["baseline"][5] == "+0.0%"
    base, ours = float(rows["baseline"][2]), float(rows["dropblock"][2])
    slowdown = (ours / base - 1) * 100
    rounding = 100 * ours / base * (0.05 / ours + 0.05 / base) * 1.01 + 0.05
    assert float(rows["dropblock"][5].rstrip("%")) == pytest.approx(slowdown, abs=rounding + 1e-6)


def test_bench_train_step_turns_every_dropblock_location_on_or_off():
    import argparse

    bench = _bench_train_step()
    args = argparse.Namespace(config=bench.DEFAULT_CONFIG, device="cpu", depth=18, quick=True, impl="torch")
    for on in (True, False):
        db = bench.build_cfg(args, with_dropblock=on).MODEL.DROPBLOCK
        assert (db.RESNET.ENABLED, db.FPN.ENABLED, db.HEAD.ENABLED) == (on, on, on)
    # R18/R34 need 64 res2 channels; R50 and deeper keep the default 256 (with 64, a thinner
    # network than the R50 the table names would be timed).
    for depth, res2 in ((18, 64), (34, 64), (50, 256), (101, 256)):
        args.depth = depth
        assert bench.build_cfg(args, with_dropblock=True).MODEL.RESNETS.RES2_OUT_CHANNELS == res2, depth


# ----------------------------------------------------------------------------- train step sizing
def _bench_train_step():
    return load_tool("bench_train_step", folder="benchmarks")


def test_batch_is_extrapolated_from_the_probe_within_90_percent_of_memory():
    bench = _bench_train_step()
    gib = 2**30
    # 10 GiB of weights and optimizer state, 2 images peak at 14 GiB: 2 GiB per image.
    # 139 GiB usable -> 0.9 * 139 - 10 = 115.1 GiB -> 57 images -> candidate 48.
    assert bench.largest_candidate_that_may_fit(139 * gib, 10 * gib, 14 * gib, 2) == 48
    # Twice the memory per image: 28 images -> 24.
    assert bench.largest_candidate_that_may_fit(139 * gib, 10 * gib, 18 * gib, 2) == 24
    # Nothing fits beyond the fixed part: the smallest candidate, not an error.
    assert bench.largest_candidate_that_may_fit(11 * gib, 10 * gib, 14 * gib, 2) == 1
    assert bench.largest_candidate_that_may_fit(1000 * gib, 0, 1, 2) == max(bench.BATCH_CANDIDATES)
    # 90%, not more: 0.9 * 51 GiB holds 45 images of 1 GiB -> 32 (at 95%, 48 would be tried).
    assert bench.largest_candidate_that_may_fit(51 * gib, 0, 2 * gib, 2) == 32


def test_timing_windows_last_about_the_requested_time():
    bench = _bench_train_step()
    assert bench.steps_per_window(300.0, 3.0) == 10
    assert bench.steps_per_window(2500.0, 3.0) == 2  # at least two steps per window
    assert bench.steps_per_window(5.0, 3.0) == 20  # at most twenty
    assert bench.steps_per_window(0.0, 3.0) == 20


def _exit_of_main(script: str, argv, capsys):
    """(exit code or message, stderr) of benchmarks/<script>.py's main(argv), run in this
    process: the argument checks, without a fresh interpreter's seconds of imports each."""
    bench = load_tool(script, folder="benchmarks")
    capsys.readouterr()
    with pytest.raises(SystemExit) as exit_info:
        bench.main(argv)
    return exit_info.value.code, capsys.readouterr().err


@pytest.mark.parametrize("argument, value, named", [("--steps", "0", "'0'"), ("--launch-sizes", "keep_bits=3", "keep_bits"),
                                                   ("--launch-sizes", "tile_units", "tile_units")])
def test_bench_train_step_names_a_bad_argument(argument, value, named, capsys):
    code, err = _exit_of_main("bench_train_step", ["--quick", argument, value], capsys)
    assert code == 2 and argument in err and named in err


def test_an_explicit_cuda_device_without_cuda_fails_in_one_line():
    # gpu_checks.sh asks for --device cuda: a GPU machine whose CUDA does not work must fail
    # the step (bench_dropblock printed an empty table and exited 0; bench_train_step a
    # driver traceback). CUDA_VISIBLE_DEVICES="" hides any GPU, so this runs everywhere.
    env = dict(os.environ, CUDA_VISIBLE_DEVICES="")
    proc = _script("benchmarks/bench_dropblock.py", "--quick", "--device", "cuda", env=env)
    assert proc.returncode == 1, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert proc.stderr.strip().splitlines()[-1].startswith("--device cuda: torch sees no CUDA device")
    assert "Traceback" not in proc.stderr


def test_bench_train_step_refuses_an_explicit_cuda_device_without_cuda_before_building(monkeypatch, capsys):
    # The same one-line exit as bench_dropblock's above (a SystemExit with a message), here
    # in-process: nothing is built before it.
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    code, _ = _exit_of_main("bench_train_step", ["--quick", "--device", "cuda"], capsys)
    assert isinstance(code, str) and code.startswith("--device cuda: torch sees no CUDA device")


def test_bench_train_step_names_a_device_torch_does_not_know(capsys):
    code, err = _exit_of_main("bench_train_step", ["--quick", "--device", "gpu0"], capsys)
    assert code == 2 and "--device 'gpu0'" in err


# ----------------------------------------------------------------------------- --tune
def test_tune_times_each_launch_size_variant_and_marks_the_fastest_under_the_interpreter():
    env = dict(os.environ, TRITON_INTERPRET="1", PYTHONWARNINGS="ignore")
    out = _run("benchmarks/bench_dropblock.py", "--tune", "--quick", "--device", "cpu",
               "--shape", "1,2,8,12", "--repeats", "1", "--variants", "defaults;tile_units=64,mask_warps=2",
               env=env)
    rows = [[c.strip() for c in line.strip("|").split("|")]
            for line in out.splitlines() if line.startswith("| cpu")]
    assert [(r[2], r[3].replace(" (fastest)", "")) for r in rows] == [
        (dtype, variant) for dtype in ("bfloat16", "float32")
        for variant in ("defaults", "tile_units=64,mask_warps=2")]
    for dtype in ("bfloat16", "float32"):
        assert sum("(fastest)" in r[3] for r in rows if r[2] == dtype) == 1
    for r in rows:
        assert float(r[4]) > 0 and float(r[5]) > 0 and re.fullmatch(r"\d+\.\d\dx", r[6])
    # A suggestion after each (shape, dtype), the last one over both.
    suggestions = [line for line in out.splitlines() if line.strip().startswith("suggested launch sizes (")]
    assert len(suggestions) == 2 and "(2 shape x dtype timings" in suggestions[-1]


def test_tune_suggests_the_best_mask_side_and_apply_side_variants_merged():
    bench = load_tool("bench_dropblock", folder="benchmarks")
    variants = [{}, {"keep_bits": 1}, {"tile_units": 256}, {"apply_block": 2048},
                {"tile_units": 256, "apply_block": 2048}]
    # Geometric means over the two timings: keep_bits=1 0.925x, tile_units=256 0.995x,
    # apply_block=2048 0.975x; the mixed variant (on neither side alone) 0.5x is only reported.
    times = [{"defaults": 1.0, "keep_bits=1": 0.9, "tile_units=256": 1.1, "apply_block=2048": 0.95,
              "tile_units=256,apply_block=2048": 0.5},
             {"defaults": 2.0, "keep_bits=1": 1.9, "tile_units=256": 1.8, "apply_block=2048": 2.0,
              "tile_units=256,apply_block=2048": 1.0}]
    merged, account = bench.suggest_launch_sizes(times, variants)
    assert merged == {"keep_bits": 1, "apply_block": 2048}
    assert "keep_bits=1 (0.925x)" in account and "apply_block=2048 (0.975x)" in account
    assert "best single variant: tile_units=256,apply_block=2048, 0.500x" in account
    # Nothing beats the defaults: no change. A variant timed on some shapes only is left out.
    slower = [{"defaults": 1.0, "keep_bits=1": 1.2, "apply_block=2048": 1.0}, {"defaults": 1.0, "keep_bits=1": 1.1}]
    assert bench.suggest_launch_sizes(slower, variants)[0] == {}
    # A tie with the defaults: no change.
    assert bench.suggest_launch_sizes([{"defaults": 1.0, "keep_bits=1": 1.0, "apply_block=2048": 1.0}], variants)[0] == {}
    # Geometric, not arithmetic, means: keep_bits=1 0.975x (0.5x, 1.9x) beats tile_units=256 0.98x.
    both = [{"defaults": 1.0, "keep_bits=1": 0.5, "tile_units=256": 0.98},
            {"defaults": 1.0, "keep_bits=1": 1.9, "tile_units=256": 0.98}]
    assert bench.suggest_launch_sizes(both, variants)[0] == {"keep_bits": 1}
    with pytest.raises(ValueError, match="defaults"):
        bench.suggest_launch_sizes([{"keep_bits=1": 1.0}], variants)


@pytest.mark.parametrize("variants, named", [("tile_rows=4", "tile_rows"), ("tile_units=3", "tile_units"),
                                              ("defaults;apply_block", "apply_block"), ("keep_bits=4", "keep_bits")])
def test_tune_names_a_bad_variant(variants, named, capsys):
    code, err = _exit_of_main("bench_dropblock", ["--tune", "--variants", variants], capsys)
    assert code == 2 and "--variants" in err and named in err


def test_tune_without_cuda_or_the_interpreter_says_what_it_needs(monkeypatch, capsys):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.delenv("TRITON_INTERPRET", raising=False)
    code, _ = _exit_of_main("bench_dropblock", ["--tune"], capsys)
    assert isinstance(code, str) and "TRITON_INTERPRET=1" in code and "CUDA" in code


# ----------------------------------------------------------------------------- --profile
def test_profile_prints_the_ops_table_and_our_device_time_against_the_floor():
    out = _run("benchmarks/bench_dropblock.py", "--profile", "--device", "cpu", "--shape", "2,8,16,20",
               "--calls", "2")
    assert "== 2x8x16x20 float32: dropblock_det torch (per channel), 2 forward+backward calls" in out
    assert "Self CPU" in out  # torch.profiler's table
    rows = [[c.strip() for c in line.strip("|").split("|")] for line in out.splitlines() if line.startswith("| cpu")]
    assert len(rows) == 1 and rows[0][:4] == ["cpu", "2x8x16x20", "float32", "torch"]
    ours, floor, ratio, host, floor_host = rows[0][4:]
    # Times only: which is larger is the benchmark's finding, not the test's (on a tiny CPU
    # shape beside another pytest worker, the floor once took longer than the op).
    assert float(ours) > 0 and float(floor) > 0 and float(host) > 0 and float(floor_host) > 0
    # (the ratio is printed to 2 decimals: abs for a ratio below 1)
    assert ratio.endswith("x") and float(ratio[:-1]) == pytest.approx(float(ours) / float(floor), rel=0.02, abs=0.006)


def test_profile_breaks_the_triton_paths_host_time_down_by_launch_under_the_interpreter():
    env = dict(os.environ, TRITON_INTERPRET="1", PYTHONWARNINGS="ignore")
    out = _run("benchmarks/bench_dropblock.py", "--profile", "--device", "cpu", "--shape", "1,2,8,12",
               "--calls", "1", env=env)
    (line,) = [line for line in out.splitlines() if line.startswith("== host us per forward+backward call")]
    total = float(re.search(r"\(([\d.]+) in all\)", line).group(1))
    parts = dict((name, float(us)) for name, us in re.findall(r"(?:: |, )([^,:]+?) (-?[\d.]+)", line))
    # The mask's kernels (the sparse one, or the dense two, by gamma) and the apply pass
    # forward and backward, each launch timed on its own, and the RNG call.
    assert {"launch _sparse_seed_kernel"} <= set(parts) or {"launch _mask_kernel", "launch _pack_kernel"} <= set(parts)
    assert {"launch _apply_flat_kernel", "torch.randint", "rest"} <= set(parts), line
    assert sum(parts.values()) == pytest.approx(total, rel=1e-3, abs=0.2), line
    (row,) = [line for line in out.splitlines() if line.startswith("| cpu")]
    assert [c.strip() for c in row.strip("|").split("|")][3] == "triton", row
    # Each way of drawing the Philox key, timed on its own.
    (line,) = [line for line in out.splitlines() if line.startswith("== host us per Philox key draw")]
    draws = dict(re.findall(r"(host_key=[01]) ([\d.]+)", line))
    assert set(draws) == {"host_key=0", "host_key=1"} and all(float(us) > 0 for us in draws.values()), line


def test_profile_goes_on_past_a_shape_and_dtype_whose_path_fails(monkeypatch, capsys):
    # A Triton build error in one dtype (bf16 on a pre-Ampere GPU: ptxas refuses it) ended
    # the profile step at its first (shape, dtype), bf16, so not even fp32 was profiled.
    bench = load_tool("bench_dropblock", folder="benchmarks")

    def ours(*args, **kwargs):
        def op(t):
            if t.dtype == torch.bfloat16:
                raise RuntimeError("ptxas fatal: Feature '.bf16' requires .target sm_80 or higher")
            return bench.drop_block_2d(t, 0.9, 3, impl="torch")
        return op

    monkeypatch.setattr(bench, "_ours", ours)
    failures = []
    rows = bench.profile(torch.device("cpu"), [(1, 2, 8, 12)], [torch.bfloat16, torch.float32], 1, failures)
    assert [row[:3] for row in rows] == [["cpu", "1x2x8x12", "float32"]]
    assert float(rows[0][4]) > 0
    assert failures == ["1x2x8x12 bfloat16: failed, row left out "
                        "(RuntimeError: ptxas fatal: Feature '.bf16' requires .target sm_80 or higher)"]
    assert failures[0] in capsys.readouterr().out


def test_profile_and_tune_are_separate_runs(capsys):
    code, err = _exit_of_main("bench_dropblock", ["--profile", "--tune"], capsys)
    assert code == 2 and "--profile" in err and "--tune" in err, err


# ----------------------------------------------------------------------------- argument checks
@pytest.mark.parametrize("argv, named", [
    (["--threads", "0"], "'0'"),  # was silently ignored (0 is falsy)
    (["--threads", "-1"], "'-1'"),  # was torch's RuntimeError traceback
    (["--shape", "a,b,c,d"], "N,C,H,W"),  # was "invalid _parse_shape value"
    (["--shape", "2,0,16,20"], "'2,0,16,20'"),  # an empty tensor: nothing to time
    (["--shape", "2,8,16,20,1"], "'2,8,16,20,1'"),  # five dims: not N,C,H,W
])
def test_bench_dropblock_names_a_bad_argument(argv, named, capsys):
    code, err = _exit_of_main("bench_dropblock", ["--device", "cpu", *argv], capsys)
    assert code == 2 and f"argument {argv[0]}" in err and named in err, err


def test_bench_dropblock_refuses_zero_repeats(capsys):
    # `args.repeats or 15` read 0 as "not given": 15 repeats, not the 0 asked for.
    code, err = _exit_of_main("bench_dropblock", ["--device", "cpu", "--repeats", "0"], capsys)
    assert code == 2 and "--repeats must be >= 1, got 0" in err, err


def test_bench_dropblock_refuses_variants_without_tune(capsys):
    # --variants only means something to --tune: without it the run timed the usual rows
    # and said nothing of the variants it was given.
    code, err = _exit_of_main("bench_dropblock", ["--device", "cpu", "--variants", "defaults;keep_bits=1"], capsys)
    assert code == 2 and "--variants" in err and "--tune" in err, err


@pytest.mark.parametrize("argv, named", [
    (["--window-s", "inf"], "'inf'"),  # was an OverflowError once both models were built
    (["--window-s", "0"], "'0'"),  # a window of no time: not the seconds asked for
    (["--config", "configs/no-such-config.yaml"], "no-such-config.yaml"),  # was an AssertionError traceback
])
def test_bench_train_step_names_a_bad_argument_before_building(argv, named, capsys):
    code, err = _exit_of_main("bench_train_step", ["--quick", *argv], capsys)
    assert code == 2 and f"argument {argv[0]}" in err and named in err, err


def test_bench_train_step_names_a_cuda_device_index_that_does_not_exist(monkeypatch, capsys):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    code, _ = _exit_of_main("bench_train_step", ["--quick", "--device", "cuda:3"], capsys)
    assert isinstance(code, str) and code.startswith("--device cuda:3:") and "1 CUDA device" in code, code
    code, _ = _exit_of_main("bench_train_step", ["--quick", "--device", "cuda:1"], capsys)  # one past the last
    assert isinstance(code, str) and code.startswith("--device cuda:1:") and "1 CUDA device" in code, code


def test_tune_runs_backward_under_the_variants_launch_sizes_too(monkeypatch):
    # The apply kernel of backward reads the launch sizes when backward runs: the sweep set
    # them around the forward only, so every variant's backward ran with the defaults and
    # apply_block / apply_warps variants were timed on half their launches.
    from dropblock_det.layers import drop_block_triton as triton_path

    bench = load_tool("bench_dropblock", folder="benchmarks")
    seen = {"forward": set(), "backward": set()}

    class Recorder(torch.autograd.Function):
        @staticmethod
        def forward(ctx, t):
            seen["forward"].add(triton_path._launch_sizes(t.device).apply_block)
            return t * 2

        @staticmethod
        def backward(ctx, grad):
            seen["backward"].add(triton_path._launch_sizes(grad.device).apply_block)
            return grad * 2

    defaults = triton_path._launch_sizes(torch.device("cpu")).apply_block
    other = defaults * 2
    monkeypatch.setattr(bench, "_ours", lambda *args, **kwargs: Recorder.apply)
    rows = bench.tune(torch.device("cpu"), [(1, 2, 4, 4)], [torch.float32], 0, 1, [{}, {"apply_block": other}])
    assert len(rows) == 2
    assert seen == {"forward": {defaults, other}, "backward": {defaults, other}}, seen
    assert triton_path._launch_sizes(torch.device("cpu")).apply_block == defaults  # restored


@pytest.mark.skipif(importlib.util.find_spec("triton") is None, reason="Triton not importable (CPU-only torch build)")
def test_bench_triton_launch_times_the_op_and_each_launch_through_the_stand_in_driver():
    # A subprocess: the script replaces Triton's active driver for its whole process.
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    out = _run("benchmarks/bench_triton_launch.py", "--calls", "3", env=env)
    assert re.search(r"^Triton \d+\.\d+\.\d+\S*, the host side of drop_block_2d_triton", out, re.M), out
    steps = re.findall(r"^  (forward|forward\+backward): ([\d.]+) us per call, (\d) Triton launches; .*: (.*)$", out,
                       re.M)
    # 2 launches forward (sparse seeds, apply), 1 more backward, each reaching the launcher.
    assert [(step, launches) for step, _, launches, _ in steps] == [("forward", "2"), ("forward+backward", "3")], out
    for _, us, _, parts in steps:
        timed = dict(part.rsplit(" ", 1) for part in parts.split(", "))
        assert float(us) > 0 and {"launch _sparse_seed_kernel", "launch _apply_flat_kernel", "torch.full",
                                  "rest"} <= set(timed), parts


def test_bench_triton_launch_refuses_zero_calls_before_importing_triton(capsys):
    bench = load_tool("bench_triton_launch", folder="benchmarks")
    with pytest.raises(SystemExit) as exit_info:
        bench.main(["--calls", "0"])
    assert exit_info.value.code == 2 and "--calls" in capsys.readouterr().err


@pytest.mark.skipif(importlib.util.find_spec("triton") is None, reason="Triton not importable (CPU-only torch build)")
def test_bench_triton_launch_says_in_one_line_when_the_stand_in_does_not_fit_the_triton(monkeypatch):
    # Triton's driver interface changes between releases: a release the stand-in does not fit
    # gets one line naming it, not a traceback.
    from triton.runtime import driver

    bench = load_tool("bench_triton_launch", folder="benchmarks")
    monkeypatch.setattr(driver, "set_active", lambda stand_in: None)  # this process keeps its driver
    for error in (TypeError("load_binary() takes 4 arguments"), AttributeError("no attribute 'launcher_cls'")):
        def host_us(stand_in, calls, error=error):
            raise error
        monkeypatch.setattr(bench, "host_us", host_us)
        with pytest.raises(SystemExit, match=f"the stand-in driver does not fit Triton .*{type(error).__name__}"):
            bench.main(["--calls", "1"])


def test_bench_coco_categories_prints_a_row_per_reader_on_the_file_it_writes():
    out = _run("benchmarks/bench_coco_categories.py", "--images", "20", "--annotations-per-image", "2")
    rows = [line for line in out.splitlines() if line.startswith("| ") and "MiB" in line]
    assert [row.split("|")[2].strip() for row in rows] == [
        "dropblock_det coco_category_names (scan)", 'dropblock_det coco_json_has_key "segmentation" (scan)',
        'dropblock_det coco_json_has_key "keypoints" (scan)', "json.load (whole file)",
        "pycocotools COCO (detectron2's load_coco_json)"]
    assert all(float(row.split("|")[3]) >= 0 for row in rows)


# --- own-trainer journey (stop 52) ---


def test_bench_dropblock_times_its_modules_at_the_targets_without_the_no_ramp_warning(unscheduled_warnings):
    # Its Dropout rows ran a module nothing had set: the run logged "Dropout trains at
    # keep_prob 0.9 from its first step: nothing has set its keep_prob ...".
    bench = load_tool("bench_dropblock", folder="benchmarks")
    bench.run(torch.device("cpu"), [(1, 2, 4, 4)], [torch.float32], 0, 1)
    assert unscheduled_warnings() == []
