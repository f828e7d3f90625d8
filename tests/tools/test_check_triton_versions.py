"""tools/check_triton_versions.py: the Triton path's GPU-free checks under other Triton releases."""

import pytest

from conftest import load_tool


@pytest.fixture(scope="module")
def tool():
    return load_tool("check_triton_versions")


def _checks_file(tmp_path, body: str):
    script = tmp_path / "checks.py"
    script.write_text("import json, os, sys\n" + body)
    return script


def test_a_version_that_is_not_a_release_is_refused_by_name(tool, capsys):
    with pytest.raises(SystemExit) as exit_info:
        tool.main(["3.2"])
    assert exit_info.value.code == 2
    assert "expected a Triton release such as 3.2.0, got '3.2'" in capsys.readouterr().err


def test_each_run_puts_the_release_first_on_the_path_and_the_interpreter_on_for_its_checks(tool, tmp_path,
                                                                                          monkeypatch):
    # The checks file stands in: it reports where it ran as a check's "failure".
    script = _checks_file(tmp_path, "print('noise')\nprint(%r + json.dumps({'where': ' '.join(\n"
                          "    [sys.argv[1], os.environ['PYTHONPATH'], os.environ.get('TRITON_INTERPRET', '-')])}))\n"
                          % tool.RESULT_MARKER)
    monkeypatch.setattr(tool, "CHECKS_FILE", script)
    monkeypatch.setenv("TRITON_INTERPRET", "1")  # left set by an earlier interpreter run: not for the compile checks
    site = tmp_path / "triton-9.9.9"
    for kind, flag, interpreting in (("compile", "--compile-checks", "-"), ("interpreter", "--interpreter-checks", "1")):
        where = tool.run_checks(site, kind, timeout_s=60)["where"].split()
        assert where[0] == flag and where[2] == interpreting, where
        assert where[1].split(":")[:2] == [str(site), str(tool.REPO)]


def test_a_run_without_results_is_reported_with_its_exit_status_and_output(tool, tmp_path, monkeypatch):
    monkeypatch.setattr(tool, "CHECKS_FILE", _checks_file(tmp_path, "print('LLVM ERROR: Cannot select')\nsys.exit(3)\n"))
    assert tool.run_checks(tmp_path, "compile", timeout_s=60) == {"run": "exit 3: LLVM ERROR: Cannot select"}
    monkeypatch.setattr(tool, "CHECKS_FILE", _checks_file(tmp_path, "import time\ntime.sleep(30)\n"))
    assert tool.run_checks(tmp_path, "compile", timeout_s=1) == {"run": "stopped after 1 s"}


def test_the_report_counts_groups_failures_and_keeps_not_applicable_apart_from_failed(tool):
    spill = "Traceback ...\nAssertionError: local memory (spills) or a stack frame: {'STACK': 16}\n"
    ptxas = ("Traceback ...\nRuntimeError: Internal Triton PTX codegen error\n`ptxas` stderr:\n"
             "ptxas /tmp/k.ptx, line 113; error   : Feature '.bf16' requires .target sm_80 or higher\n"
             "ptxas fatal   : Ptx assembly aborted due to errors\n\nRepro command: ptxas --gpu-name=sm_70 k.ptx\n")
    compiled = {"sm_90 _sparse_seed_kernel {'RUNS': False, 'INDEX_64': False}": spill,
                "sm_90 _sparse_seed_kernel {'RUNS': False, 'INDEX_64': True}": spill,
                "sm_70 _apply_flat_kernel {} (*bf16)": ptxas,
                "sm_80 _apply_flat_kernel {}": None, "sm_90 _apply_flat_kernel {}": None}
    interpreted = {"tile_sizes": None, "bits": "not applicable: keep_bits=1 needs tl.gather (Triton >= 3.3)",
                   "relu": "Traceback ...\nInterpreterError: no get_int1_ty\n"}
    lines, failed = tool.summarize("3.4.0", compiled, interpreted)
    assert failed
    assert lines == [
        "Triton 3.4.0: compile checks 2 passed, 3 failed",
        "    1 x sm_70 _apply_flat_kernel: ptxas: Feature '.bf16' requires .target sm_80 or higher",
        "    2 x sm_90 _sparse_seed_kernel: AssertionError: local memory (spills) or a stack frame: {'STACK': 16}",
        "Triton 3.4.0: interpreter checks 1 passed, 1 failed, 1 not applicable",
        "    failed relu: InterpreterError: no get_int1_ty",
        "    bits: not applicable: keep_bits=1 needs tl.gather (Triton >= 3.3)",
    ]
    # Not applicable is not a failure; a run not made is left out.
    lines, failed = tool.summarize("3.2.0", None, {"tile_sizes": None, "bits": interpreted["bits"]})
    assert not failed and lines[0] == "Triton 3.2.0: interpreter checks 1 passed, 0 failed, 1 not applicable"


def test_the_exit_status_counts_the_versions_with_a_failure(tool, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(tool, "install", lambda version, cache: tmp_path / version)
    outcomes = {"3.2.0": {"a": None}, "3.3.1": {"a": "Traceback\nAssertionError: more than 128 registers"}}
    monkeypatch.setattr(tool, "run_checks", lambda site, kind, timeout_s: outcomes[site.name])
    assert tool.main(["3.2.0", "3.3.1", "--only", "compile"]) == 1
    out = capsys.readouterr().out
    assert "Triton 3.3.1: compile checks 0 passed, 1 failed" in out and "interpreter checks" not in out


def test_the_markers_are_the_checks_files_own(tool):
    source = tool.CHECKS_FILE.read_text()
    assert f'\nRESULT_MARKER = "{tool.RESULT_MARKER}"\n' in source
    assert f'\nNOT_APPLICABLE = "{tool.NOT_APPLICABLE}"\n' in source


def test_a_version_pip_cannot_install_is_reported_and_the_others_still_run(tool, tmp_path, monkeypatch, capsys):
    # A release pip cannot fetch (a typo such as 3.7.9, no network) ended the whole run with a
    # CalledProcessError traceback, before the versions after it were checked.
    monkeypatch.setenv("PIP_NO_INDEX", "1")  # pip fails at once, without the network
    (tmp_path / "triton-3.3.1" / "triton").mkdir(parents=True)
    (tmp_path / "triton-3.3.1" / "triton" / "__init__.py").write_text("")  # installed before
    monkeypatch.setattr(tool, "run_checks", lambda site, kind, timeout_s: {"a": None})
    assert tool.main(["3.7.9", "3.3.1", "--only", "compile", "--cache", str(tmp_path)]) == 1
    out = capsys.readouterr().out
    assert "Triton 3.7.9: not checked: `pip install triton==3.7.9` failed (exit 1" in out
    assert "Triton 3.3.1: compile checks 1 passed, 0 failed" in out
    assert not (tmp_path / "triton-3.7.9" / "triton" / "__init__.py").exists()


def test_an_interpreter_check_that_fails_alone_counts_as_a_failure(tool):
    lines, failed = tool.summarize("3.5.1", None, {"tile_sizes": None, "relu": "Traceback\nInterpreterError: x"})
    assert failed and lines[0] == "Triton 3.5.1: interpreter checks 1 passed, 1 failed, 0 not applicable"


def test_both_runs_are_made_unless_only_one_is_asked_for(tool, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(tool, "install", lambda version, cache: tmp_path / version)
    made = []
    monkeypatch.setattr(tool, "run_checks", lambda site, kind, timeout_s: made.append((kind, timeout_s)) or {"a": None})
    assert tool.main(["3.6.0"]) == 0
    assert made == [("compile", 1800), ("interpreter", 1800)]
    out = capsys.readouterr().out
    assert "Triton 3.6.0: compile checks 1 passed" in out and "Triton 3.6.0: interpreter checks 1 passed" in out


def test_a_timeout_below_one_second_is_refused_by_name(tool, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(tool, "install", lambda version, cache: tmp_path / version)  # never pip here
    monkeypatch.setattr(tool, "run_checks", lambda site, kind, timeout_s: {"a": None})
    with pytest.raises(SystemExit) as exit_info:
        tool.main(["3.2.0", "--timeout", "0"])
    assert exit_info.value.code == 2 and "--timeout" in capsys.readouterr().err


def test_a_ptxas_warning_before_its_error_is_not_taken_for_the_reason(tool):
    error = ("Traceback ...\nRuntimeError: Internal Triton PTX codegen error\n`ptxas` stderr:\n"
             "ptxas warning : Registers are spilled to local memory in function 'k'\n"
             "ptxas /tmp/k.ptx, line 9; error   : Call has wrong number of parameters\n")
    assert tool._reason(error) == "ptxas: Call has wrong number of parameters"


# --- mutation 59G ---


def test_install_fetches_triton_alone_into_its_folder_and_reuses_only_a_complete_install(tool, tmp_path, monkeypatch):
    # --no-deps: the docstring's promise (torch stays the environment's own); a folder an
    # interrupted pip left without triton/__init__.py is installed again, not used.
    calls = []
    monkeypatch.setattr(tool.subprocess, "run", lambda cmd, check: calls.append(cmd))
    target = tmp_path / "triton-3.3.1"
    target.mkdir()
    assert tool.install("3.3.1", tmp_path) == target
    (cmd,) = calls
    assert "--no-deps" in cmd and cmd[cmd.index("--target") + 1] == str(target) and cmd[-1] == "triton==3.3.1", cmd
    (target / "triton").mkdir()
    (target / "triton" / "__init__.py").write_text("")
    assert tool.install("3.3.1", tmp_path) == target and len(calls) == 1
