#!/usr/bin/env python3
"""The Triton path's GPU-free checks against Triton releases other than the one torch brought.

    .venv/bin/python tools/check_triton_versions.py 3.2.0 3.3.1 3.4.0 3.5.1 3.6.0 3.7.0 3.7.1 3.9.0

Each version is installed apart (`pip install --target CACHE/triton-VERSION --no-deps`, so
PyPI must be reachable; CACHE defaults to ~/.cache/dropblock_det, and a version found there
is not fetched again) and put first on PYTHONPATH for the two subprocess runs the test suite
makes with the installed Triton (`tests/layers/test_drop_block_triton.py`):

* `--compile-checks`: every launch the GPU path makes on the issue's shapes compiled to
  cubins (sm_70 .. sm_120, the archs that Triton targets) with that release's compiler and
  ptxas, each checked for IEEE divisions, no fused multiply-adds where they are off, and on
  sm_90 for registers and spills (`compile_kernels_without_a_gpu`);
* `--interpreter-checks`: the kernels' logic under that release's interpreter, on CPU.

Printed per version: specialisations compiled and failed (grouped by arch, kernel and
reason: ptxas's first error where ptxas rejected one, else the error's last line), and the
interpreter checks passed, failed (with the error's last line)
and not applicable (what that release cannot build: tl.gather is Triton >= 3.3). Torch stays
the environment's own: the kernels' code is Triton's to compile, and torch only launches
them. The exit status is the number of versions with a failure (one that pip cannot install
counts, and the others are still checked).
"""
import argparse
import collections
import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Dict, List, Optional, Tuple

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # tool_args.py, beside this file
from tool_args import int_at_least  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
CHECKS_FILE = REPO / "tests" / "layers" / "test_drop_block_triton.py"
# What the checks file prints before its JSON results (its RESULT_MARKER).
RESULT_MARKER = "CHECK_RESULTS_JSON="
NOT_APPLICABLE = "not applicable: "  # the checks file's marker of a check that does not apply
RUNS = {"compile": (["--compile-checks"], {}), "interpreter": (["--interpreter-checks"], {"TRITON_INTERPRET": "1"})}


def _version(text: str) -> str:
    if not re.fullmatch(r"\d+\.\d+\.\d+", text):
        raise argparse.ArgumentTypeError(f"expected a Triton release such as 3.2.0, got {text!r}")
    return text


def install(version: str, cache: Path) -> Path:
    """Triton `version` in its own folder under `cache` (pip --target, no dependencies)."""
    target = cache / f"triton-{version}"
    if not (target / "triton" / "__init__.py").is_file():
        subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--target", str(target),
                        f"triton=={version}"], check=True)
    return target


def run_checks(site: Path, kind: str, timeout_s: int) -> Dict[str, Optional[str]]:
    """{check or specialisation: None (passed) or what failed} of one run of the checks file
    with `site` first on PYTHONPATH; a run that prints no results gives one entry, "run",
    with its exit status and output's end."""
    args, extra_env = RUNS[kind]
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    env.update(extra_env, PYTHONPATH=os.pathsep.join([str(site), str(REPO)]), PYTHONWARNINGS="ignore")
    try:
        proc = subprocess.run([sys.executable, str(CHECKS_FILE), *args], capture_output=True, text=True, env=env,
                              cwd=str(REPO), timeout=timeout_s)
    except subprocess.TimeoutExpired:
        return {"run": f"stopped after {timeout_s} s"}
    lines = [line for line in proc.stdout.splitlines() if line.startswith(RESULT_MARKER)]
    if not lines:
        return {"run": f"exit {proc.returncode}: {(proc.stdout + proc.stderr).strip()[-2000:]}"}
    return json.loads(lines[-1][len(RESULT_MARKER):])


def _reason(error: str) -> str:
    """What failed, in one line: ptxas's first error where ptxas rejected the kernel (the
    traceback ends in its repro command), else the traceback's last line."""
    lines = [line.strip() for line in error.splitlines() if line.strip()]
    ptxas = [line.split("error", 1)[1].lstrip(" :") for line in lines if line.startswith("ptxas ") and "error" in line]
    if ptxas:
        return "ptxas: " + ptxas[0]
    return lines[-1] if lines else "(no message)"


def summarize(version: str, compiled: Optional[Dict[str, Optional[str]]],
              interpreted: Optional[Dict[str, Optional[str]]]) -> Tuple[List[str], bool]:
    """(the report's lines for one version: counts, then each group of failures; whether
    anything failed). A run that was not made (None) is left out."""
    lines: List[str] = []
    any_failed = False
    if compiled is not None:
        failed = {label: error for label, error in compiled.items() if error is not None}
        lines.append(f"Triton {version}: compile checks {len(compiled) - len(failed)} passed, {len(failed)} failed")
        groups = collections.Counter(
            (label if label == "run" else " ".join(label.split()[:2]), _reason(error))
            for label, error in failed.items())
        lines += [f"    {count} x {where}: {error}" for (where, error), count in sorted(groups.items())]
        any_failed |= bool(failed)
    if interpreted is not None:
        not_applicable = {name: why for name, why in interpreted.items() if why and why.startswith(NOT_APPLICABLE)}
        broken = {name: why for name, why in interpreted.items() if why and name not in not_applicable}
        passed = len(interpreted) - len(not_applicable) - len(broken)
        lines.append(f"Triton {version}: interpreter checks {passed} passed, {len(broken)} failed, "
                     f"{len(not_applicable)} not applicable")
        lines += [f"    failed {name}: {_reason(why)}" for name, why in sorted(broken.items())]
        lines += [f"    {name}: {why}" for name, why in sorted(not_applicable.items())]
        any_failed |= bool(broken)
    return lines, any_failed


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("versions", nargs="+", type=_version, metavar="VERSION", help="Triton releases, e.g. 3.2.0")
    parser.add_argument("--cache", type=Path, default=Path.home() / ".cache" / "dropblock_det",
                        help="where each version is installed (default: %(default)s)")
    parser.add_argument("--only", choices=sorted(RUNS), help="run only the compile or the interpreter checks")
    parser.add_argument("--timeout", type=int_at_least(1), default=1800, help="seconds per run (default: %(default)s)")
    args = parser.parse_args(argv)
    with_failures = 0
    for version in args.versions:
        try:
            site = install(version, args.cache)
        except subprocess.CalledProcessError as error:
            # pip said why above (no such release, no network); the other versions still run.
            print(f"Triton {version}: not checked: `pip install triton=={version}` failed (exit {error.returncode}, "
                  "its message above)", flush=True)
            with_failures += 1
            continue
        results = {kind: run_checks(site, kind, args.timeout) if args.only in (None, kind) else None for kind in RUNS}
        report, failed = summarize(version, results["compile"], results["interpreter"])
        print("\n".join(report), flush=True)
        with_failures += failed
    return with_failures


if __name__ == "__main__":
    sys.exit(main())
