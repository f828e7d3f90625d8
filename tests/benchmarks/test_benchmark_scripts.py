"""The two benchmark scripts run and print their tables (at toy sizes: the numbers mean
nothing here; the timings that count are in the README, measured with `make bench`)."""
import re
import subprocess
import sys

from conftest import REPO


def _run(*args: str) -> str:
    proc = subprocess.run([sys.executable, *args], cwd=str(REPO), capture_output=True,
                          text=True, timeout=300)
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
    # What our per-channel path keeps for backward: at most 1 byte per element.
    assert float([c.strip() for c in rows[1].strip("|").split("|")][6]) <= 1.0


def test_bench_train_step_quick_run_prints_both_models():
    out = _run("benchmarks/bench_train_step.py", "--quick")
    assert re.search(r"^\| baseline\s+\|", out, re.M) and re.search(r"^\| dropblock\s+\|", out, re.M)
