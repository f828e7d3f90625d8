#!/usr/bin/env python3
"""Prepare the packages the GPU checks need, for a GPU machine with PyTorch but no network.

    .venv/bin/python tools/prepare_gpu_site.py --detectron2-src PATH   # where pip works
    # copy the checkout, .gpu-site included, to the GPU machine (git ignores .gpu-site:
    # the device tool carries it only when asked, carry [".gpu-site"]); there:
    bash tools/gpu_checks.sh

The GPU machine is assumed to have a CUDA PyTorch image's `python3`: torch, Triton,
torchvision, numpy, Pillow, matplotlib, scipy, tensorboard, tabulate, tqdm, PyYAML,
portalocker, pytest, hypothesis and timm (the 2026-12-04 H200 image had it; without it
`bench_dropblock.py` prints "row skipped" for timm's rows and goes on), but no detectron2
and no package registry. This script
runs where the registry is reachable and fills DEST (default `.gpu-site`, git-ignored), a
folder that `tools/gpu_checks.sh` puts first on PYTHONPATH, with:

* detectron2, built from the source checkout `--detectron2-src` (current detectron2 main)
  without its compiled operators and with the placeholder `detectron2._C` of
  `tools/setup_env.py`. Not v0.6: it reads `Image.LINEAR` at import time, which Pillow 10
  removed, and every Pillow for Python 3.12 is 10 or later. The GPU checks need no compiled
  operator (RetinaNet's NMS is torchvision's; no COCO evaluation runs);
* detectron2's pure-Python requirements that such an image lacks, and pycocotools, as
  wheels for `--python-version` (default 3.12) on x86-64 Linux;
* the `dropblock` package, one of the implementations `bench_dropblock.py` compares.

Nothing here is installed into this machine's environments. The folder is a few MB.
"""
import argparse
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import List, Sequence

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(Path(__file__).resolve().parent))
from setup_env import build_without_compiled_ops  # noqa: E402

# Version ranges as current detectron2 main's setup.py states them (fvcore / iopath locked,
# omegaconf 2.3 needs antlr4 4.9.*).
WHEELS = [
    "iopath>=0.1.7,<0.1.10",
    "yacs>=0.1.8",
    "omegaconf>=2.1,<2.4",
    "hydra-core>=1.1",
    "termcolor>=1.1",
    "pycocotools>=2.0.2",
    # Imported with detectron2 (config.lazy): the last GPU image had it, but a CUDA PyTorch
    # image does not promise it (packaging, which detectron2 imports too, comes with pytest).
    "cloudpickle",
    "dropblock",
]
# Published as source distributions only; both are pure Python, so a wheel built here runs
# on any Python 3.
SDISTS = ["fvcore>=0.1.5,<0.1.6", "antlr4-python3-runtime==4.9.3"]
PLATFORMS = [
    "manylinux_2_28_x86_64", "manylinux_2_27_x86_64", "manylinux_2_17_x86_64",
    "manylinux2014_x86_64", "manylinux1_x86_64",
]
MANIFEST = "GPU_SITE.txt"


def log(msg: str) -> None:
    print(f"[prepare_gpu_site] {msg}", flush=True)


def run(cmd: Sequence[str]) -> None:
    log("$ " + " ".join(cmd))
    subprocess.run(list(cmd), check=True)


def target_options(python_version: str) -> List[str]:
    opts = ["--python-version", python_version, "--implementation", "cp", "--only-binary=:all:"]
    for platform in PLATFORMS:
        opts += ["--platform", platform]
    return opts


def check_detectron2_src(src: Path) -> Path:
    src = src.expanduser().resolve()
    if not (src / "setup.py").is_file() or not (src / "detectron2" / "__init__.py").is_file():
        sys.exit(
            f"[prepare_gpu_site] ERROR: --detectron2-src {src}: not a detectron2 source checkout "
            "(needs setup.py and detectron2/__init__.py)"
        )
    return src


def check_dest(dest: Path) -> Path:
    """DEST is replaced when the new site is complete: only ever replace a folder this script
    made (it holds MANIFEST), so a mistyped --dest cannot delete anyone's files."""
    dest = dest.expanduser().resolve()
    if dest.exists() and not (dest.is_dir() and (not any(dest.iterdir()) or (dest / MANIFEST).is_file())):
        sys.exit(
            f"[prepare_gpu_site] ERROR: --dest {dest} exists and was not made by this script "
            f"(no {MANIFEST} in it); it would be replaced: choose a new or empty folder"
        )
    return dest


def source_revision(src: Path) -> str:
    r = subprocess.run(["git", "-C", str(src), "rev-parse", "HEAD"], capture_output=True, text=True)
    return r.stdout.strip() if r.returncode == 0 else "unknown (not a git checkout)"


def build_detectron2_wheel(src: Path, wheels: Path) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        copy = Path(tmp) / "detectron2-src"
        # A copy: the patch must not touch the user's checkout; skip build outputs and .so files.
        shutil.copytree(src, copy, ignore=shutil.ignore_patterns(".git", "build", "*.so", "__pycache__"))
        build_without_compiled_ops(copy, origin=str(src))
        # setup.py imports torch: build with this interpreter, which has it.
        run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-w", str(wheels), str(copy)])
    built = sorted(wheels.glob("detectron2-*.whl"))
    if not built or not built[0].name.endswith("-py3-none-any.whl"):
        sys.exit(f"[prepare_gpu_site] ERROR: expected a pure-Python detectron2 wheel, got {[b.name for b in built]}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--detectron2-src", type=Path, required=True,
                    help="a detectron2 source checkout (current main)")
    ap.add_argument("--python-version", default="3.12", help="the GPU machine's Python (default 3.12)")
    ap.add_argument("--dest", type=Path, default=ROOT / ".gpu-site", help="output folder (default .gpu-site)")
    args = ap.parse_args()
    src = check_detectron2_src(args.detectron2_src)
    dest = check_dest(args.dest)
    try:
        import torch  # noqa: F401
    except ImportError:
        sys.exit("[prepare_gpu_site] ERROR: run this with a Python that has torch (detectron2's "
                 "setup.py imports it), e.g. .venv/bin/python after `make env`")

    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check"]
    with tempfile.TemporaryDirectory() as tmp:
        wheels = Path(tmp) / "wheels"
        run(pip + ["download", "--no-deps", "-d", str(wheels), *target_options(args.python_version), *WHEELS])
        run(pip + ["wheel", "--no-deps", "-w", str(wheels), *SDISTS])
        build_detectron2_wheel(src, wheels)
        names = sorted(w.name for w in wheels.glob("*.whl"))
        staging = Path(tmp) / "site"
        run(pip + ["install", "--no-deps", "--no-compile", "--target", str(staging),
                   *target_options(args.python_version), *(str(wheels / n) for n in names)])
        # detectron2's wheel also installs its example scripts as a top-level `tools` package,
        # which would shadow this checkout's tools/ on PYTHONPATH; the GPU checks need none.
        shutil.rmtree(staging / "tools", ignore_errors=True)
        (staging / MANIFEST).write_text(
            f"Prepared by tools/prepare_gpu_site.py for CPython {args.python_version} on x86-64 Linux.\n"
            f"detectron2 from {src} at {source_revision(src)}, without compiled operators.\n"
            + "".join(f"{n}\n" for n in names)
        )
        # Replace an earlier site only once the new one is complete.
        if dest.exists():
            shutil.rmtree(dest)
        shutil.move(str(staging), str(dest))
    size = sum(f.stat().st_size for f in dest.rglob("*") if f.is_file())
    log(f"{dest}: {len(names)} packages, {size / 2**20:.1f} MiB; next, on the GPU machine: bash tools/gpu_checks.sh")


if __name__ == "__main__":
    main()
