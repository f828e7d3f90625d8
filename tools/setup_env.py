#!/usr/bin/env python3
"""Create or check the environment dropblock-det runs in (stdlib only; run with any Python 3.8+).

    python3 tools/setup_env.py                 # .venv in the checkout (what `make env` runs)
    python3 tools/setup_env.py --python PATH   # use an existing environment (e.g. your own
                                               # detectron2 build): it is only added to

What it does, in order, each step skipped when already in place:
1. creates `.venv` (unless --python names an existing interpreter);
2. installs torch==2.14.1 and torchvision==0.29.1 if torch is not importable;
3. detectron2: if `import detectron2` works, it is left alone (a user's own build from
   source, any version from v0.6 to current main). Otherwise detectron2 v0.6's Python code is
   installed from the registry's `pb1-detectron2==0.6` source distribution, which has no
   C++/CUDA sources: it is installed without compiled operators and with a placeholder
   `detectron2._C` (see PLACEHOLDER_C). Only on this route are numpy<1.24, Pillow<10 and
   setuptools<81 pinned, because v0.6 uses `np.float`/`np.int`, `Image.LINEAR` and
   `pkg_resources`. numpy<1.24 and Pillow<10 have no wheels for Python 3.12 and later: with
   such a Python, v0.6's source is rewritten where it uses what they removed
   (V06_SOURCE_FIXES), and numpy<3, Pillow<14 (the majors it was checked with) and
   setuptools<81 are pinned;
4. installs this project in editable mode with its test extras.

A stamp file records what was installed; a second run that finds the stamp current and the
imports working returns in seconds and installs nothing.
"""
import argparse
import hashlib
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import venv
from pathlib import Path
from typing import List, Tuple

ROOT = Path(__file__).resolve().parent.parent
TORCH_PINS = ["torch==2.14.1", "torchvision==0.29.1"]
D2_SDIST = "pb1-detectron2==0.6"
# Only for the v0.6 route; see the module docstring for why each is needed.
V06_PINS = ["numpy<1.24", "Pillow<10", "setuptools<81"]
# Python 3.12 and later have no wheels of numpy<1.24 or Pillow<10 (pip then builds numpy 1.23
# from source, which fails there). With such a Python, v0.6's uses of what numpy 1.24 / 2 and
# Pillow 10 removed are rewritten to what they always meant (V06_SOURCE_FIXES). numpy and
# Pillow are held below the next majors, which may remove more that v0.6 uses: the fixes and
# the suite were checked with numpy 2.5.5 and Pillow 13.
V06_PINS_NEW_PYTHON = ["numpy<3", "Pillow<14", "setuptools<81"]
V06_NEW_PYTHON = (3, 12)
# (pattern, replacement, how many times v0.6's detectron2/ has it): numpy's aliases of the
# builtins (np.bool etc.; np.bool_, np.int64 are other names), Pillow's alias LINEAR of
# BILINEAR, and numpy 2's refusal of copy=False where a copy is needed (a PIL image).
V06_SOURCE_FIXES = [
    (r"\bnp\.(bool|int|float|str)\b", r"\1", 19),
    (r"\bImage\.LINEAR\b", "Image.BILINEAR", 1),
    (r"\bnp\.array\(mask, copy=False\)", "np.asarray(mask)", 1),
]
# detectron2 v0.6's runtime requirements, without its `black==21.4b2` and `iopath<0.1.10`
# pins, which nothing here needs.
V06_DEPS = [
    "fvcore", "iopath", "pycocotools", "matplotlib", "termcolor", "yacs", "tabulate",
    "cloudpickle", "tqdm", "tensorboard", "omegaconf", "hydra-core", "scipy",
]
STAMP_NAME = ".dropblock-det-env"
V06_ROUTE = "detectron2 v0.6 from pb1-detectron2 (no compiled operators)"

PLACEHOLDER_C = '''"""Placeholder for detectron2's compiled operators.

This detectron2 was installed by dropblock-det without its C++/CUDA operators: from the
`pb1-detectron2==0.6` source distribution, which ships no C++/CUDA sources (tools/setup_env.py),
or from a source checkout for an offline GPU machine (tools/prepare_gpu_site.py). The version
queries detectron2 makes at start-up (collect_env) are answered; every operator raises
ImportError naming itself.
Build detectron2 from source to get the compiled operators.
"""


def get_compiler_version() -> str:
    return "not compiled (dropblock-det placeholder)"


def get_cuda_version() -> str:
    return "not compiled (dropblock-det placeholder)"


def has_cuda() -> bool:
    return False


def __getattr__(name):
    if name.startswith("__"):
        raise AttributeError(name)
    raise ImportError(
        f"detectron2._C.{name} is a compiled operator, and this detectron2 was installed "
        "without compiled operators by dropblock-det's tools/setup_env.py or prepare_gpu_site.py. "
        "Build detectron2 from source to use it."
    )
'''


def log(msg: str) -> None:
    print(f"[setup_env] {msg}", flush=True)


def run(cmd, what: str, hint: str = "", **kw) -> None:
    """Run `cmd`; on failure exit with a message naming the step (`what`, and a `hint` at the
    likely cause) after the command's own output, not a CalledProcessError traceback."""
    log("$ " + " ".join(str(c) for c in cmd))
    r = subprocess.run([str(c) for c in cmd], **kw)
    if r.returncode != 0:
        sys.exit(f"[setup_env] ERROR: {what} failed (exit {r.returncode}; its output is above): "
                 f"{' '.join(str(c) for c in cmd)}. Fix the cause{f' ({hint})' if hint else ''} and rerun "
                 "`make env` (or this command): what is already installed is kept.")


def works(python: Path, code: str) -> bool:
    r = subprocess.run([str(python), "-c", code], capture_output=True)
    return r.returncode == 0


def fingerprint() -> str:
    """What the stamp must match: this checkout (an environment set up from another clone
    imports that clone's dropblock_det), this script and the project's declared dependencies."""
    h = hashlib.sha256(str(ROOT).encode())
    for f in (Path(__file__).resolve(), ROOT / "setup.py"):
        h.update(f.read_bytes())
    return h.hexdigest()


def pip(python: Path, *args, what: str) -> None:
    run([python, "-m", "pip", "--disable-pip-version-check", "install", *args], what=what,
        hint="e.g. make the package registry reachable")


def python_version(python: Path) -> Tuple[int, int]:
    """(major, minor) of the interpreter `python`."""
    out = subprocess.check_output([str(python), "-c", "import sys; print(*sys.version_info[:2])"], text=True)
    major, minor = out.split()
    return int(major), int(minor)


def v06_pins(python: Path) -> List[str]:
    """The pins of the v0.6 route for the interpreter `python`."""
    return V06_PINS_NEW_PYTHON if python_version(python) >= V06_NEW_PYTHON else V06_PINS


def install_detectron2_v06(python: Path, cache: Path) -> None:
    """Install detectron2 v0.6's Python code without compiled operators (with a Python that
    numpy<1.24 and Pillow<10 do not run on, rewritten for the numpy and Pillow it gets)."""
    pip(python, *v06_pins(python), *V06_DEPS, what="installing detectron2 v0.6's dependencies")
    cache.mkdir(parents=True, exist_ok=True)
    sdists = sorted(cache.glob("pb1-detectron2-0.6.tar.gz"))
    if not sdists:
        # pip prepares the sdist's metadata, which imports torch: installed in step 2.
        cmd = [str(python), "-m", "pip", "--disable-pip-version-check", "download",
               "--no-deps", "--no-binary", ":all:", "--no-build-isolation", "-d", str(cache),
               D2_SDIST]
        log("$ " + " ".join(cmd))
        r = subprocess.run(cmd)
        sdists = sorted(cache.glob("pb1-detectron2-0.6.tar.gz"))
        if r.returncode != 0 or not sdists:
            sys.exit(
                "[setup_env] ERROR: detectron2 is not importable in this environment and "
                f"`{D2_SDIST}` could not be downloaded from the package registry (pip exit "
                f"{r.returncode}). Either make the registry reachable and rerun `make env`, "
                "or build detectron2 from source yourself "
                "(https://detectron2.readthedocs.io/en/latest/tutorials/install.html) and run "
                "`python3 tools/setup_env.py --python /path/to/that/env/bin/python`."
            )
    with tempfile.TemporaryDirectory() as tmp:
        with tarfile.open(sdists[0]) as tar:
            tar.extractall(tmp)
        src = Path(tmp) / "pb1-detectron2-0.6"
        build_without_compiled_ops(src, origin=str(sdists[0]))
        if python_version(python) >= V06_NEW_PYTHON:
            fix_for_new_numpy_and_pillow(src, origin=str(sdists[0]))
        pip(python, "--no-build-isolation", "--no-deps", str(src), what=f"installing detectron2 v0.6 from {D2_SDIST}")


def build_without_compiled_ops(src: Path, origin: str) -> None:
    """Patch the detectron2 source tree `src` (a copy: it is changed in place) so that it
    builds no C++/CUDA extension and gets the placeholder `detectron2._C`."""
    setup_py = src / "setup.py"
    text = setup_py.read_text()
    text, n = re.subn(r"ext_modules=get_extensions\(\),", "ext_modules=[],", text)
    if n != 1:
        sys.exit(f"[setup_env] ERROR: unexpected {setup_py.name} in {origin}: "
                 "cannot find `ext_modules=get_extensions(),` to patch")
    setup_py.write_text(text)
    (src / "detectron2" / "_C.py").write_text(PLACEHOLDER_C)


def fix_for_new_numpy_and_pillow(src: Path, origin: str) -> None:
    """Rewrite the detectron2 v0.6 source tree `src` (a copy: changed in place) by
    V06_SOURCE_FIXES, so that it runs on numpy 2 and Pillow 10 and later; exits naming
    `origin` where the tree does not have each pattern as often as v0.6 does."""
    files = sorted((src / "detectron2").rglob("*.py"))
    texts = {f: f.read_text() for f in files}
    for pattern, replacement, expected in V06_SOURCE_FIXES:
        found = 0
        for f in files:
            texts[f], n = re.subn(pattern, replacement, texts[f])
            found += n
        if found != expected:
            sys.exit(f"[setup_env] ERROR: unexpected detectron2 source in {origin}: {pattern!r} occurs {found} "
                     f"times, not v0.6's {expected}; use Python 3.11 or earlier (numpy<1.24 and Pillow<10 "
                     "install there), or build detectron2 from source and pass --python")
    for f in files:
        f.write_text(texts[f])


def create_venv(prefix: Path) -> None:
    """Create the virtual environment `prefix` with pip, or exit saying why. venv's pip step
    (ensurepip) fails on Debian/Ubuntu's Python without its venv package, with its output
    captured and the environment left without pip: a folder made here is removed again."""
    existed = prefix.exists()
    try:
        venv.EnvBuilder(with_pip=True, clear=False).create(prefix)
    except subprocess.CalledProcessError as e:
        if not existed:
            shutil.rmtree(prefix, ignore_errors=True)
        output = (e.output or b"").decode(errors="replace").strip()
        version = f"{sys.version_info.major}.{sys.version_info.minor}"
        sys.exit(f"[setup_env] ERROR: creating the virtual environment {prefix} failed: this Python ({sys.executable}) "
                 f"could not put pip into it (venv ran {' '.join(map(str, e.cmd))}: exit {e.returncode}"
                 + (f", {output}" if output else "") + "). On Debian/Ubuntu, install this Python's venv package "
                 f"(apt install python{version}-venv)"
                 + (f", remove {prefix}" if existed else "") + " and rerun `make env`.")


def interpreter_prefix(python: Path) -> Path:
    """sys.prefix of the interpreter `python` (where the stamp goes); exits naming --python
    where `python` is not a Python interpreter, e.g. the environment's folder."""
    try:
        r = subprocess.run([str(python), "-c", "import sys; print(sys.prefix)"], capture_output=True, text=True)
        out = r.stdout.strip() if r.returncode == 0 else ""
    except OSError as e:
        out = f"cannot run it ({e.strerror})"
    if out and Path(out).is_dir():
        return Path(out)
    inside = python / "bin" / "python"
    sys.exit(f"[setup_env] ERROR: --python {python}: not a Python interpreter"
             + (f" ({out})" if out else " (it did not print its sys.prefix)")
             + (f"; give the interpreter of that environment: --python {inside}" if inside.is_file()
                else "; give the environment's bin/python"))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--python", type=Path, default=None,
                    help="interpreter of an existing environment to add to (default: "
                         "create/use .venv in the checkout)")
    ap.add_argument("--venv", type=Path, default=ROOT / ".venv",
                    help="where to create the virtual environment (default: .venv)")
    args = ap.parse_args()

    if args.python is not None:
        python = args.python.expanduser()
        if not python.exists():
            sys.exit(f"[setup_env] ERROR: --python {python}: no such interpreter")
        prefix = interpreter_prefix(python)
    else:
        prefix = args.venv.expanduser().resolve()  # as --python: `--venv=~/x` reaches us unexpanded
        python = prefix / "bin" / "python"
        if not python.exists():
            log(f"creating virtual environment {prefix}")
            create_venv(prefix)

    stamp = prefix / STAMP_NAME
    want = fingerprint()
    check = "import torch, torchvision, detectron2, dropblock_det, pycocotools, fvcore, pytest, xdist"
    if stamp.exists() and stamp.read_text().split("\n")[0] == want and works(python, check):
        log(f"environment ready ({python}); nothing to install")
        return
    if not works(python, "import pip"):
        # E.g. a .venv whose creation was interrupted while venv ran ensurepip.
        sys.exit(f"[setup_env] ERROR: {python} has no pip, which installs everything here: "
                 + (f"install it into that environment ({python} -m ensurepip) and rerun" if args.python is not None
                    else f"remove {prefix} and rerun: it is made again, with pip"))

    if works(python, "import torch, torchvision"):
        log("torch and torchvision already importable: left as they are")
    else:
        pip(python, *TORCH_PINS, what=f"installing {' '.join(TORCH_PINS)}")

    ours = ("import detectron2._C as c, sys; "
            "sys.exit(0 if 'dropblock-det placeholder' in c.get_compiler_version() else 1)")
    pins = []
    if works(python, ours):
        route = V06_ROUTE
        pins = v06_pins(python)
        log("detectron2 v0.6 installed by an earlier run: kept, with its pins")
    elif works(python, "import detectron2"):
        route = "existing detectron2 (left alone)"
        log("detectron2 already importable: left as it is")
    else:
        route = V06_ROUTE
        pins = v06_pins(python)
        install_detectron2_v06(python, prefix / "cache")

    # The pins ride along so that no dependency of the project upgrades past them.
    pip(python, "-e", f"{ROOT}[test]", *pins, what="installing dropblock-det (editable, with its test extras)")
    if not works(python, check):
        run([python, "-c", check], what="importing what was installed")  # shows the import error
    detectron2_version, torch_version = subprocess.check_output(
        [str(python), "-c", "import detectron2, torch; print(detectron2.__version__, torch.__version__)"],
        text=True).split()
    versions = f"detectron2 {detectron2_version}, torch {torch_version}"
    stamp.write_text(f"{want}\n{route}\n{versions}\n")
    log(f"environment ready ({python}): {route}; {versions}")


if __name__ == "__main__":
    main()
