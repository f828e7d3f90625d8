"""The environment command: idempotent, a clear error without detectron2 and registry,
and a placeholder for detectron2's compiled operators that answers start-up queries."""
import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import REPO


def _load_setup_env():
    spec = importlib.util.spec_from_file_location("setup_env", REPO / "tools" / "setup_env.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_second_run_in_a_ready_environment_installs_nothing():
    # The suite runs inside the environment the command made: run it again on this one.
    # Only there: in an environment set up from another checkout (or never), the command
    # would install this checkout into it.
    stamp = Path(sys.prefix) / _load_setup_env().STAMP_NAME
    if not stamp.is_file() or stamp.read_text().split("\n")[0] != _load_setup_env().fingerprint():
        pytest.skip(f"{sys.prefix} was not set up by this checkout's tools/setup_env.py")
    r = subprocess.run(
        [sys.executable, str(REPO / "tools" / "setup_env.py"), "--python", sys.executable],
        capture_output=True, text=True, timeout=120,
    )
    assert r.returncode == 0, r.stdout + r.stderr
    assert "nothing to install" in r.stdout
    assert "pip" not in r.stdout  # no pip command was started


def test_without_detectron2_and_registry_the_error_says_what_to_do(tmp_path, monkeypatch):
    mod = _load_setup_env()
    calls = []

    class Failed:
        returncode = 1

    monkeypatch.setattr(mod, "pip", lambda python, *args, what: calls.append(args))
    monkeypatch.setattr(mod, "python_version", lambda python: (3, 11))
    monkeypatch.setattr(mod.subprocess, "run", lambda *a, **k: Failed())
    with pytest.raises(SystemExit) as e:
        mod.install_detectron2_v06(tmp_path / "python", tmp_path / "cache")
    msg = str(e.value)
    assert "pb1-detectron2==0.6" in msg and "could not be downloaded" in msg
    assert "--python" in msg and "from source" in msg
    # the v0.6 pins go in before the sdist is needed, and only on this route
    assert calls and set(mod.V06_PINS) <= set(calls[0])


def test_placeholder_compiled_ops_answer_version_queries_and_name_missing_ops(tmp_path):
    mod = _load_setup_env()
    path = tmp_path / "placeholder_C.py"
    path.write_text(mod.PLACEHOLDER_C)
    spec = importlib.util.spec_from_file_location("placeholder_C", path)
    C = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(C)
    assert "not compiled" in C.get_compiler_version()
    assert "not compiled" in C.get_cuda_version()
    assert C.has_cuda() is False
    with pytest.raises(ImportError, match="ROIAlignRotated_forward"):
        C.ROIAlignRotated_forward
    assert not hasattr(C, "__wrapped__")  # dunder look-ups stay AttributeError


def test_fingerprint_changes_when_the_declared_dependencies_change(tmp_path, monkeypatch):
    mod = _load_setup_env()
    monkeypatch.setattr(mod, "ROOT", tmp_path)
    (tmp_path / "setup.py").write_text((REPO / "setup.py").read_text())
    before = mod.fingerprint()
    (tmp_path / "setup.py").write_text((REPO / "setup.py").read_text() + "\n# changed\n")
    assert mod.fingerprint() != before


def test_fingerprint_differs_between_two_checkouts_with_the_same_files(tmp_path, monkeypatch):
    # An environment set up from one clone imports that clone's dropblock_det: the command
    # run from another clone must install that one, not say "nothing to install".
    mod = _load_setup_env()
    prints = []
    for clone in ("a", "b"):
        (tmp_path / clone).mkdir()
        (tmp_path / clone / "setup.py").write_text((REPO / "setup.py").read_text())
        monkeypatch.setattr(mod, "ROOT", tmp_path / clone)
        prints.append(mod.fingerprint())
    assert prints[0] != prints[1]


def _venv_with_pip_that_fails(folder: Path) -> Path:
    """A venv whose `python -m pip` answers as pip does when the registry has no such
    package (a stand-in: no registry is reached from the tests)."""
    import venv

    venv.EnvBuilder(with_pip=False, symlinks=True).create(folder)
    version = f"python{sys.version_info.major}.{sys.version_info.minor}"
    stand_in = folder / "lib" / version / "site-packages" / "pip"
    stand_in.mkdir(parents=True)
    (stand_in / "__init__.py").write_text("")
    (stand_in / "__main__.py").write_text(
        "import sys\nsys.exit('ERROR: No matching distribution found for ' + sys.argv[-1])\n")
    return folder / "bin" / "python"


def test_a_failing_pip_step_is_named_without_a_traceback(tmp_path):
    # A pip install that failed (registry unreachable, no wheel for this Python) ended in a
    # Python traceback, `subprocess.CalledProcessError: Command '[...]' returned non-zero exit
    # status 1.`, saying neither which step failed nor what to do.
    python = _venv_with_pip_that_fails(tmp_path / "env")
    r = subprocess.run([sys.executable, str(REPO / "tools" / "setup_env.py"), "--python", str(python)],
                       capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert r.returncode == 1, r.stdout + r.stderr
    assert "Traceback" not in r.stderr and "CalledProcessError" not in r.stderr
    assert "No matching distribution found" in r.stderr  # pip's own output stays visible above the message
    last = r.stderr.strip().splitlines()[-1]
    assert last.startswith("[setup_env] ERROR: installing torch==2.14.1 torchvision==0.29.1 failed (exit 1")
    assert "registry" in last and "rerun" in last
    assert not (tmp_path / "env" / _load_setup_env().STAMP_NAME).exists()


@pytest.mark.parametrize("given", ["--venv", "--python"])
def test_an_environment_without_pip_is_named_with_what_to_do(tmp_path, given):
    # A .venv left without pip (make env interrupted while venv ran ensurepip) failed at the
    # first install with "No module named pip" and advice about the package registry.
    import venv

    venv.EnvBuilder(with_pip=False, symlinks=True).create(tmp_path / "env")
    where = str(tmp_path / "env" / "bin" / "python") if given == "--python" else str(tmp_path / "env")
    r = subprocess.run([sys.executable, str(REPO / "tools" / "setup_env.py"), given, where],
                       capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert r.returncode == 1, r.stdout + r.stderr
    last = r.stderr.strip().splitlines()[-1]
    assert last.startswith(f"[setup_env] ERROR: {tmp_path / 'env' / 'bin' / 'python'} has no pip")
    assert "registry" not in last and "$ " not in r.stdout  # no install was started
    if given == "--venv":
        assert f"remove {tmp_path / 'env'} and rerun" in last
    else:
        assert "-m ensurepip" in last


def test_a_venv_given_with_a_tilde_is_the_one_in_home(tmp_path):
    # `--venv=~/env` (zsh passes it unexpanded) made a new environment in a folder named "~"
    # under the current folder, where --python expanded its "~". PIP_NO_INDEX: that wrong
    # environment's installs fail at once instead of downloading.
    import venv

    home = tmp_path / "home"
    venv.EnvBuilder(with_pip=False, symlinks=True).create(home / "env")
    env = dict(os.environ, HOME=str(home), PIP_NO_INDEX="1")
    r = subprocess.run([sys.executable, str(REPO / "tools" / "setup_env.py"), "--venv=~/env"],
                       capture_output=True, text=True, timeout=300, cwd=tmp_path, env=env)
    assert r.returncode == 1, r.stdout + r.stderr
    assert r.stderr.strip().splitlines()[-1].startswith(f"[setup_env] ERROR: {home / 'env' / 'bin' / 'python'} has no pip")
    assert not (tmp_path / "~").exists()


@pytest.mark.parametrize("given", ["env folder", "not python"])
def test_a_python_that_is_not_an_interpreter_is_named_and_nothing_is_written(tmp_path, given):
    # The environment's folder (not its bin/python) failed with "PermissionError: [Errno 13]
    # Permission denied: '<folder>'"; a program that exits 0 without printing a prefix got
    # "environment ready" and a stamp file written into the current folder.
    (tmp_path / "env" / "bin").mkdir(parents=True)
    (tmp_path / "env" / "bin" / "python").symlink_to(sys.executable)
    program = tmp_path / "env"
    if given == "not python":
        program = tmp_path / "true.sh"
        program.write_text("#!/bin/sh\nexit 0\n")
        program.chmod(0o755)
    r = subprocess.run([sys.executable, str(REPO / "tools" / "setup_env.py"), "--python", str(program)],
                       capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert r.returncode == 1, r.stdout + r.stderr
    assert "Traceback" not in r.stderr
    last = r.stderr.strip().splitlines()[-1]
    assert last.startswith(f"[setup_env] ERROR: --python {program}: ")
    if given == "env folder":
        assert f"{tmp_path / 'env' / 'bin' / 'python'}" in last  # the interpreter it holds
    assert "$ " not in r.stdout  # no command was started
    assert not list(tmp_path.rglob(_load_setup_env().STAMP_NAME))


def test_a_fresh_checkout_gets_a_venv_with_pip_and_the_installs_start_in_it(tmp_path, monkeypatch):
    # `make env` on a fresh machine (no .venv yet): the environment is made with pip, passes
    # the checks for a broken one (no pip, not an interpreter) and the first install (torch)
    # runs with its interpreter. venv's pip step is a stand-in for ensurepip (an importable
    # pip), and the install is stopped there: nothing is downloaded.
    import venv

    def stand_in_ensurepip(self, context):
        version = f"python{sys.version_info.major}.{sys.version_info.minor}"
        package = Path(context.env_dir) / "lib" / version / "site-packages" / "pip"
        package.mkdir(parents=True)
        (package / "__init__.py").write_text("")

    class Stop(Exception):
        pass

    installs = []

    def pip(python, *args, what):
        installs.append((python, args))
        raise Stop

    monkeypatch.setattr(venv.EnvBuilder, "_setup_pip", stand_in_ensurepip)
    mod = _load_setup_env()
    monkeypatch.setattr(mod, "pip", pip)
    target = tmp_path / "clone" / ".venv"
    monkeypatch.setattr(sys, "argv", ["setup_env.py", "--venv", str(target)])
    with pytest.raises(Stop):
        mod.main()
    assert installs == [(target / "bin" / "python", tuple(mod.TORCH_PINS))]
    assert (target / "bin" / "python").exists() and not (target / mod.STAMP_NAME).exists()


@pytest.mark.parametrize("existed", [False, True])
def test_a_venv_this_python_cannot_put_pip_into_is_named_and_not_left_half_made(tmp_path, monkeypatch, capsys, existed):
    # Debian/Ubuntu's python3 without its venv package: venv's ensurepip step fails with
    # "CalledProcessError: Command '[..., '-m', 'ensurepip', ...]' returned non-zero exit
    # status 1" (its output captured, not shown), and .venv was left without pip, so the
    # next run failed at its first pip install instead.
    import venv

    def no_ensurepip(self, context):
        raise subprocess.CalledProcessError(1, [context.env_exec_cmd, "-m", "ensurepip"],
                                            output=b"No module named ensurepip\n")

    monkeypatch.setattr(venv.EnvBuilder, "_setup_pip", no_ensurepip)
    mod = _load_setup_env()
    monkeypatch.setattr(mod, "pip", lambda *a, **k: pytest.fail("pip run in a venv without pip"))
    target = tmp_path / "my env"
    if existed:  # a folder of the user's: kept, and named to remove
        target.mkdir()
        (target / "notes.txt").write_text("the user's own file")
    monkeypatch.setattr(sys, "argv", ["setup_env.py", "--venv", str(target)])
    with pytest.raises(SystemExit) as e:
        mod.main()
    msg = str(e.value)
    assert msg.startswith(f"[setup_env] ERROR: creating the virtual environment {target} failed: ")
    assert "No module named ensurepip" in msg  # what venv captured and did not show
    assert f"python{sys.version_info.major}.{sys.version_info.minor}-venv" in msg and "rerun" in msg
    if existed:
        assert (target / "notes.txt").read_text() == "the user's own file" and f"remove {target}" in msg
    else:
        assert not target.exists()


def _cached_sdist(tmp_path, files):
    """A cache folder holding a stand-in pb1-detectron2-0.6.tar.gz: the setup.py the build
    patches and `files` ({name: text}) in its detectron2/."""
    import tarfile

    src = tmp_path / "sdist" / "pb1-detectron2-0.6"
    (src / "detectron2").mkdir(parents=True)
    (src / "setup.py").write_text("setup(\n    ext_modules=get_extensions(),\n)\n")
    for name, text in files.items():
        (src / "detectron2" / name).write_text(text)
    cache = tmp_path / "cache"
    cache.mkdir()
    with tarfile.open(cache / "pb1-detectron2-0.6.tar.gz", "w:gz") as tar:
        tar.add(src, arcname=src.name)
    return cache


def _main_up_to_the_first_install(mod, monkeypatch, tmp_path, imports, stamp=None, version=(3, 11)):
    """main() on an existing environment (an empty file standing in for its interpreter of
    Python `version`, tmp_path its prefix) where `imports(code)` says whether `python -c code`
    works; the arguments of the first pip install, or None when main() returned without one."""
    class Stop(Exception):
        pass

    installs = []

    def pip(python, *args, what):
        installs.append(args)
        raise Stop

    python = tmp_path / "python"
    python.write_text("")
    monkeypatch.setattr(mod, "python_version", lambda python: version)
    if stamp is not None:
        (tmp_path / mod.STAMP_NAME).write_text(stamp)
    monkeypatch.setattr(mod, "interpreter_prefix", lambda python: tmp_path)
    monkeypatch.setattr(mod, "works", lambda python, code: imports(code))
    monkeypatch.setattr(mod, "pip", pip)
    monkeypatch.setattr(sys, "argv", ["setup_env.py", "--python", str(python)])
    try:
        mod.main()
    except Stop:
        return installs[0]
    return None


@pytest.mark.parametrize("stamp_current, imports_work, installs", [
    (True, True, False),  # the second run: nothing to install
    (True, False, True),  # a package removed since: the stamp alone does not make it ready
    (False, True, True),  # another checkout or setup.py since: this checkout is installed again
])
def test_the_stamp_skips_the_installs_only_when_current_and_the_imports_work(
        tmp_path, monkeypatch, stamp_current, imports_work, installs):
    mod = _load_setup_env()
    stamp = (mod.fingerprint() if stamp_current else "0" * 64) + "\nroute\n"
    args = _main_up_to_the_first_install(
        mod, monkeypatch, tmp_path, lambda code: imports_work or code == "import pip", stamp=stamp)
    assert (args is not None) is installs, args


@pytest.mark.parametrize("placeholder, pinned", [(True, True), (False, False)])
@pytest.mark.parametrize("version", [(3, 11), (3, 12)])
def test_the_project_is_installed_with_its_test_extras_and_the_v06_pins_only_on_that_route(
        tmp_path, monkeypatch, placeholder, pinned, version):
    # detectron2 v0.6 from an earlier run (its placeholder _C answers): numpy<1.24 etc. ride
    # along so that no dependency upgrades past them (with Python 3.12 and later, which they
    # do not install on, numpy<3, Pillow<14 and setuptools<81); a user's own detectron2: no pins.
    mod = _load_setup_env()
    args = _main_up_to_the_first_install(
        mod, monkeypatch, tmp_path, lambda code: placeholder or "detectron2._C" not in code, version=version)
    v06_pins = mod.V06_PINS if version < (3, 12) else mod.V06_PINS_NEW_PYTHON
    assert args == ("-e", f"{mod.ROOT}[test]", *(v06_pins if pinned else []))
    assert "numpy<1.24" in mod.V06_PINS and mod.V06_PINS_NEW_PYTHON == ["numpy<3", "Pillow<14", "setuptools<81"]


@pytest.mark.parametrize("version", [(3, 11), (3, 12), (3, 13)])
def test_v06_is_installed_with_its_pins_or_with_the_newer_pythons_source_fixes(tmp_path, monkeypatch, version):
    # Python 3.12 and later have no wheels of numpy<1.24 or Pillow<10: there the sdist's source
    # is rewritten for numpy 2 and Pillow 13, which are held below their next majors.
    mod = _load_setup_env()
    cache = _cached_sdist(tmp_path, {"build.py": "x = np.zeros(3, dtype=np.int)\n"})
    installs = []

    def pip(python, *args, what):
        built = Path(args[-1]) / "detectron2" / "build.py"
        installs.append((args, built.read_text() if built.is_file() else None))

    monkeypatch.setattr(mod, "pip", pip)
    monkeypatch.setattr(mod, "python_version", lambda python: version)
    monkeypatch.setattr(mod, "V06_SOURCE_FIXES", [(r"\bnp\.(int)\b", r"\1", 1)])
    mod.install_detectron2_v06(tmp_path / "python", cache)
    (deps, _), (_, built) = installs
    if version < (3, 12):
        assert deps[:3] == ("numpy<1.24", "Pillow<10", "setuptools<81") and built == "x = np.zeros(3, dtype=np.int)\n"
    else:
        # The majors the fixes were checked with: a next one may remove more that v0.6 uses.
        assert deps[:3] == ("numpy<3", "Pillow<14", "setuptools<81")
        assert built == "x = np.zeros(3, dtype=int)\n"


def test_a_source_that_is_not_v06s_is_refused_by_the_fixes_naming_it(tmp_path):
    mod = _load_setup_env()
    (tmp_path / "detectron2").mkdir()
    (tmp_path / "detectron2" / "a.py").write_text("x = np.int\n")
    with pytest.raises(SystemExit, match=r"unexpected detectron2 source in the sdist: .*np.* occurs 1 times, not v0\.6's "
                                         r"19; use Python 3\.11 or earlier"):
        mod.fix_for_new_numpy_and_pillow(tmp_path, origin="the sdist")
    assert (tmp_path / "detectron2" / "a.py").read_text() == "x = np.int\n"  # nothing half-rewritten


# Runs code of each file the fixes rewrite that the project runs (not the visualizers, which
# need OpenCV), with the deprecation warnings of numpy 1.23's aliases and Pillow 9's LINEAR
# (both removed since) as errors.
_V06_PROBE = r"""
import os, sys, tempfile, warnings
warnings.filterwarnings("error", message=r"`np\.\w+` is a deprecated alias")
warnings.filterwarnings("error", message=r"LINEAR is deprecated")
import numpy as np, torch
from PIL import Image
import detectron2
assert detectron2.__file__.startswith(sys.argv[1]), detectron2.__file__
import detectron2.data.transforms.transform  # ExtentTransform's default interp
from detectron2.data import DatasetCatalog, MetadataCatalog
from detectron2.data.build import print_instances_class_histogram
from detectron2.data.datasets.pascal_voc import load_voc_instances
from detectron2.evaluation import SemSegEvaluator
from detectron2.evaluation.pascal_voc_evaluation import voc_eval
from detectron2.structures.masks import PolygonMasks, polygons_to_bitmask

assert polygons_to_bitmask([np.array([0, 0, 4, 0, 4, 4, 0, 4.0])], 6, 6).dtype == bool
assert PolygonMasks([[np.array([0, 0, 4, 0, 4, 4.0])]]).nonempty().dtype == torch.bool
print_instances_class_histogram([{"annotations": [{"category_id": 0}]}], ["cat"])
tmp = tempfile.mkdtemp()
for d in ("ImageSets/Main", "Annotations"):
    os.makedirs(os.path.join(tmp, d))
with open(os.path.join(tmp, "ImageSets/Main/train.txt"), "w") as f:
    f.write("a\nb\n")  # two: np.loadtxt reads one line as a 0-d array
for name in "ab":
    with open(os.path.join(tmp, f"Annotations/{name}.xml"), "w") as f:
        f.write("<annotation><size><width>8</width><height>8</height></size><object><name>cat</name>"
                "<pose>Left</pose><truncated>0</truncated><difficult>0</difficult><bndbox><xmin>1</xmin>"
                "<ymin>1</ymin><xmax>4</xmax><ymax>4</ymax></bndbox></object></annotation>")
assert len(load_voc_instances(tmp, "train", ["cat"])) == 2
with open(os.path.join(tmp, "det.txt"), "w") as f:
    f.write("a 0.9 1 1 4 4\nb 0.8 1 1 4 4\n")
assert voc_eval(os.path.join(tmp, "det.txt"), os.path.join(tmp, "Annotations", "{}.xml"),
                os.path.join(tmp, "ImageSets/Main/train.txt"), "cat")[2] > 0.99
Image.fromarray(np.zeros((4, 4), np.uint8)).save(os.path.join(tmp, "gt.png"))
gt = os.path.join(tmp, "gt.png")
DatasetCatalog.register("probe_sem_seg", lambda: [{"file_name": "a.jpg", "sem_seg_file_name": gt}])
MetadataCatalog.get("probe_sem_seg").set(stuff_classes=["bg", "fg"], ignore_label=255)
evaluator = SemSegEvaluator("probe_sem_seg", distributed=False)
evaluator.reset()
evaluator.process([{"file_name": "a.jpg"}], [{"sem_seg": torch.tensor([1.0, 0.0])[:, None, None].expand(2, 4, 4)}])
assert evaluator.evaluate()["sem_seg"]["mIoU"] == 100.0
print("probe passed")
"""


def test_the_v06_source_fixes_run_where_numpy_and_pillow_deprecated_what_they_rewrite(tmp_path):
    # detectron2 v0.6's own source (CI's environment), copied: the probe fails on it with
    # numpy 1.23's and Pillow 9's deprecations as errors, and passes once rewritten.
    import shutil

    import detectron2

    installed = Path(detectron2.__file__).parent
    if "dtype=np.int)" not in (installed / "evaluation" / "sem_seg_evaluation.py").read_text():
        pytest.skip("needs detectron2 v0.6's source as the registry's sdist has it (this is another detectron2)")
    mod = _load_setup_env()
    shutil.copytree(installed, tmp_path / "detectron2", ignore=shutil.ignore_patterns("__pycache__"))

    def probe():
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), os.environ.get("PYTHONPATH", "")])}
        return subprocess.run([sys.executable, "-c", _V06_PROBE, str(tmp_path)], capture_output=True, text=True,
                              env=env, cwd=tmp_path)

    before = probe()
    assert before.returncode != 0 and "DeprecationWarning" in before.stderr, before.stderr[-2000:]
    mod.fix_for_new_numpy_and_pillow(tmp_path, origin="the installed detectron2")
    after = probe()
    assert after.returncode == 0 and "probe passed" in after.stdout, after.stderr[-3000:]


def test_detectron2_is_built_without_compiled_ops_and_with_the_placeholder_or_refused(tmp_path):
    # The route for v0.6 here and for detectron2 main in prepare_gpu_site: a setup.py that
    # does not read as expected is refused, naming it, instead of building something else.
    mod = _load_setup_env()
    src = tmp_path / "d2"
    (src / "detectron2").mkdir(parents=True)
    line = "    ext_modules=get_extensions(),\n"
    (src / "setup.py").write_text("setup(\n" + line + ")\n")
    mod.build_without_compiled_ops(src, origin="the checkout")
    assert (src / "setup.py").read_text() == "setup(\n    ext_modules=[],\n)\n"
    assert (src / "detectron2" / "_C.py").read_text() == mod.PLACEHOLDER_C
    for times in (0, 2):
        (src / "detectron2" / "_C.py").unlink(missing_ok=True)
        (src / "setup.py").write_text("setup(\n" + line * times + ")\n")
        with pytest.raises(SystemExit, match="setup.py in the checkout: cannot find `ext_modules=get_extensions"):
            mod.build_without_compiled_ops(src, origin="the checkout")
        assert not (src / "detectron2" / "_C.py").exists()


def test_a_python_given_with_a_tilde_is_the_one_in_home_and_a_missing_one_is_named(tmp_path, monkeypatch):
    # `--python=~/env/bin/python` reaches the command unexpanded (no "~" expansion after "=").
    mod = _load_setup_env()

    class Stop(Exception):
        pass

    seen = []

    def interpreter_prefix(python):
        seen.append(python)
        raise Stop

    monkeypatch.setenv("HOME", str(tmp_path))
    (tmp_path / "python").write_text("")
    monkeypatch.setattr(mod, "interpreter_prefix", interpreter_prefix)
    monkeypatch.setattr(sys, "argv", ["setup_env.py", "--python=~/python"])
    with pytest.raises(Stop):
        mod.main()
    assert seen == [tmp_path / "python"]
    monkeypatch.setattr(sys, "argv", ["setup_env.py", "--python", str(tmp_path / "nope")])
    with pytest.raises(SystemExit, match=f"--python {tmp_path / 'nope'}: no such interpreter"):
        mod.main()
    assert seen == [tmp_path / "python"]  # nothing was run


def test_torchvision_missing_beside_torch_gets_the_torch_pins_installed(tmp_path, monkeypatch):
    # Without torchvision the run ended at "importing what was installed" failed.
    mod = _load_setup_env()
    args = _main_up_to_the_first_install(mod, monkeypatch, tmp_path, lambda code: code in ("import pip", "import torch"))
    assert args == tuple(mod.TORCH_PINS)


def test_the_default_venv_is_the_checkouts_wherever_the_command_runs_from(tmp_path, monkeypatch):
    # `python3 ../dropblock-det/tools/setup_env.py` must not make a .venv in the current folder.
    mod = _load_setup_env()

    class Stop(Exception):
        pass

    checkout = tmp_path / "clone"
    checkout.mkdir()
    (checkout / "setup.py").write_text((REPO / "setup.py").read_text())
    made, installs = [], []
    monkeypatch.setattr(mod, "ROOT", checkout)
    monkeypatch.setattr(mod, "create_venv", made.append)
    monkeypatch.setattr(mod, "works", lambda python, code: code == "import pip")

    def pip(python, *args, what):
        installs.append(python)
        raise Stop

    monkeypatch.setattr(mod, "pip", pip)
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "elsewhere")
    monkeypatch.setattr(sys, "argv", ["setup_env.py"])
    with pytest.raises(Stop):
        mod.main()
    assert made == [checkout / ".venv"] and installs == [checkout / ".venv" / "bin" / "python"]


def test_the_stamp_a_run_writes_makes_the_next_run_install_nothing(tmp_path, monkeypatch, capsys):
    mod = _load_setup_env()
    installs = []
    python = tmp_path / "python"
    python.write_text("")
    monkeypatch.setattr(mod, "interpreter_prefix", lambda python: tmp_path)
    monkeypatch.setattr(mod, "works", lambda python, code: True)  # detectron2 v0.6 of an earlier run, no stamp
    monkeypatch.setattr(mod, "pip", lambda python, *args, what: installs.append(args))
    monkeypatch.setattr(mod.subprocess, "check_output", lambda *a, **k: "0.6 2.14.1\n")
    monkeypatch.setattr(mod, "python_version", lambda python: (3, 11))
    monkeypatch.setattr(sys, "argv", ["setup_env.py", "--python", str(python)])
    mod.main()
    assert installs == [("-e", f"{mod.ROOT}[test]", *mod.V06_PINS)]
    assert mod.V06_ROUTE in (tmp_path / mod.STAMP_NAME).read_text()
    # Said as names and versions (it read "detectron2 torch = 0.6 2.14.1").
    out = capsys.readouterr()
    assert "environment ready" in out.out + out.err and "; detectron2 0.6, torch 2.14.1" in out.out + out.err
    mod.main()
    assert len(installs) == 1


def test_a_cached_detectron2_sdist_is_installed_without_a_download_and_without_its_deps(tmp_path, monkeypatch):
    # Its own requirements (black==21.4b2, iopath<0.1.10) are left out; a rerun needs no registry for it.
    mod = _load_setup_env()
    cache = _cached_sdist(tmp_path, {})
    installs = []

    def pip(python, *args, what):
        built = Path(args[-1]) / "detectron2" / "_C.py"
        installs.append((args, built.is_file() and built.read_text() == mod.PLACEHOLDER_C))

    monkeypatch.setattr(mod, "pip", pip)
    monkeypatch.setattr(mod, "python_version", lambda python: (3, 11))
    monkeypatch.setattr(mod.subprocess, "run", lambda *a, **k: pytest.fail(f"ran {a}: the sdist is in the cache"))
    mod.install_detectron2_v06(tmp_path / "python", cache)
    (args, placeholder) = installs[-1]
    assert len(installs) == 2 and args[:2] == ("--no-build-isolation", "--no-deps") and placeholder
    assert Path(args[2]).name == "pb1-detectron2-0.6"


# --- mutation run 52: behaviour the tests above left unpinned ---


def test_python_version_is_the_given_interpreters_major_and_minor():
    mod = _load_setup_env()
    assert mod.python_version(Path(sys.executable)) == tuple(sys.version_info[:2])


def _v06_like_source(root: Path, aliases: int = 19, linear: int = 1, masks: int = 1) -> str:
    """A detectron2/ under `root` with each pattern of V06_SOURCE_FIXES `aliases`, `linear`,
    `masks` times (v0.6's counts by default), and a tools/ beside it with one alias more;
    returns detectron2/a.py's text."""
    text = ("x = np.int\n" * aliases + "i = Image.LINEAR\n" * linear + "m = np.array(mask, copy=False)\n" * masks)
    for folder in ("detectron2", "tools"):
        (root / folder).mkdir()
    (root / "detectron2" / "a.py").write_text(text)
    (root / "tools" / "b.py").write_text("x = np.int\n")
    return text


def test_the_v06_source_fixes_rewrite_only_detectron2s_code_to_what_it_meant(tmp_path):
    mod = _load_setup_env()
    _v06_like_source(tmp_path)
    mod.fix_for_new_numpy_and_pillow(tmp_path, origin="the sdist")
    assert (tmp_path / "detectron2" / "a.py").read_text() == ("x = int\n" * 19 + "i = Image.BILINEAR\n"
                                                              + "m = np.asarray(mask)\n")
    assert (tmp_path / "tools" / "b.py").read_text() == "x = np.int\n"  # not counted, not rewritten


@pytest.mark.parametrize("counts, refused", [({"aliases": 20}, r"occurs 20 times, not v0\.6's 19"),
                                             ({"masks": 0}, r"copy=False.* occurs 0 times, not v0\.6's 1")])
def test_a_source_with_more_or_a_later_pattern_missing_is_refused_with_nothing_rewritten(tmp_path, counts, refused):
    # The last pattern missing: the first two, found as often as in v0.6, are not written either.
    mod = _load_setup_env()
    text = _v06_like_source(tmp_path, **counts)
    with pytest.raises(SystemExit, match=refused):
        mod.fix_for_new_numpy_and_pillow(tmp_path, origin="the sdist")
    assert (tmp_path / "detectron2" / "a.py").read_text() == text
