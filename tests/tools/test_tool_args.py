"""tools/tool_args.py: the tools' command lines, flags first, then the config opts."""
import shlex

import pytest

from conftest import REPO, load_tool


@pytest.fixture(scope="module")
def tools():
    return {name: load_tool(name) for name in
            ("sweep", "export_stock_config", "analyze_robustness", "main_job", "train_net", "lazyconfig_train_net")}


def _refused(capsys, parse, argv):
    with pytest.raises(SystemExit) as exit_info:
        parse(argv)
    assert exit_info.value.code == 2
    return capsys.readouterr().err


def test_a_list_flag_right_before_the_opts_ends_at_its_last_value(tools):
    # argparse alone read SOLVER.MAX_ITER into --keep-probs ("invalid float value").
    args = tools["sweep"].parse_args(["--config-file", "c.yaml", "--block-sizes", "3", "5",
                                      "--keep-probs", "0.9", "0.8", "SOLVER.MAX_ITER", "10"])
    assert (args.block_sizes, args.keep_probs, args.opts) == ([3, 5], [0.9, 0.8], ["SOLVER.MAX_ITER", "10"])
    args = tools["analyze_robustness"].parse_args(["--config-file", "c.yaml", "--checkpoint", "a.pth:A",
                                                   "--seeds", "0", "1", "MODEL.DEVICE", "cpu"])
    assert (args.checkpoint, args.seeds, args.opts) == (["a.pth:A"], [0, 1], ["MODEL.DEVICE", "cpu"])
    # A list flag followed by another flag, and "--" ending the flags, as in argparse.
    args = tools["sweep"].parse_args(["--config-file", "c.yaml", "--keep-probs", "0.9", "--block-sizes", "3",
                                      "--", "SOLVER.MAX_ITER", "10"])
    assert (args.block_sizes, args.keep_probs, args.opts) == ([3], [0.9], ["SOLVER.MAX_ITER", "10"])


@pytest.mark.parametrize("tool, argv, flag, before", [
    # argparse alone: "the following arguments are required: --output" although it is there.
    ("export_stock_config", ["--config-file", "c.yaml", "MODEL.WEIGHTS", "w.pth", "--output", "s.yaml"],
     "--output", "MODEL.WEIGHTS w.pth"),
    ("sweep", ["--config-file", "c.yaml", "--block-sizes", "3", "--keep-probs", "0.9", "SOLVER.MAX_ITER", "10",
               "--output-dir=d"], "--output-dir", "SOLVER.MAX_ITER 10"),
    ("main_job", ["SOLVER.MAX_ITER", "10", "--datasets-root", "d"], "--datasets-root", "SOLVER.MAX_ITER 10"),
    ("analyze_robustness", ["--config-file", "c.yaml", "--checkpoint", "a.pth", "MODEL.DEVICE", "cpu", "--seed", "1"],
     "--seed", "MODEL.DEVICE cpu"),  # an abbreviation of --seeds, as argparse takes it
])
def test_a_flag_after_the_opts_is_refused_naming_it(tools, capsys, tool, argv, flag, before):
    err = _refused(capsys, tools[tool].parse_args, argv)
    assert f"{flag} comes after the config opts '{before}'" in err


@pytest.mark.parametrize("tool, argv, error", [
    # Reported as "--seeds comes after the config opts '0,9'": 0,9 was taken for the first opt.
    ("analyze_robustness", ["--keep-probs", "1.0", "0,9", "--seeds", "0"],
     "argument --keep-probs: invalid float value: '0,9'"),
    ("sweep", ["--block-sizes", "3", "5.5", "--keep-probs", "0.9"], "argument --block-sizes: invalid int value: '5.5'"),
    # The opts that follow do not hide it, nor does the value being the last token.
    ("sweep", ["--block-sizes", "3", "--keep-probs", "0.9", "O.8", "SOLVER.MAX_ITER", "10"],
     "argument --keep-probs: invalid float value: 'O.8'"),
    ("analyze_robustness", ["--seeds", "0", "1e3"], "argument --seeds: expected an integer from -9223372036854775808 "
     "to 18446744073709551615, got '1e3'"),
    ("analyze_robustness", ["--seeds", "-1,2", "--keep-probs", "0.9"], "argument --seeds: expected an integer from "
     "-9223372036854775808 to 18446744073709551615, got '-1,2'"),
    ("sweep", ["--keep-probs", "ninety", "--block-sizes", "3"], "argument --keep-probs: invalid float value: 'ninety'"),
    # A "-" followed by a number is a (mistyped) value, as argparse reads it, not an unknown flag.
    ("analyze_robustness", ["--seeds", "0", "-.5"], "argument --seeds: expected an integer from "
     "-9223372036854775808 to 18446744073709551615, got '-.5'"),
])
def test_a_list_flag_value_of_the_wrong_type_is_refused_as_that_flags_invalid_value(tools, capsys, tool, argv, error):
    err = _refused(capsys, tools[tool].parse_args, ["--config-file", "c.yaml", *argv])
    assert error in err and "comes after the config opts" not in err


def test_a_list_flag_refuses_its_invalid_values_with_its_types_own_error(capsys):
    import argparse

    from tool_args import int_at_least, parse_tool_args

    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", type=int_at_least(1), nargs="*")
    parser.add_argument("opts", nargs=argparse.REMAINDER)
    err = _refused(capsys, lambda argv: parse_tool_args(parser, argv), ["--sizes", "3", "0", "--", "KEY", "1"])
    assert "argument --sizes: expected an integer >= 1, got '0'" in err
    # What ends the values as before: a yacs KEY, key=value, "--", the line's end.
    # A LazyConfig key without "=value" too: the config loading says "expected key=value".
    for rest, opts in ((["MODEL.DEVICE", "cpu"], ["MODEL.DEVICE", "cpu"]), (["OUTPUT_DIR", "o"], ["OUTPUT_DIR", "o"]),
                       (["train.max_iter=3"], ["train.max_iter=3"]), (["train.max_iter"], ["train.max_iter"]),
                       (["--", "x"], ["x"]), ([], [])):
        args = parse_tool_args(parser, ["--sizes", "3", *rest])
        assert (args.sizes, args.opts) == ([3], opts)


def test_a_flag_after_a_list_flag_and_the_opts_is_still_refused_as_after_the_opts(tools, capsys):
    err = _refused(capsys, tools["analyze_robustness"].parse_args,
                   ["--config-file", "c.yaml", "--keep-probs", "1.0", "MODEL.DEVICE", "cpu", "--seeds", "0"])
    assert "--seeds comes after the config opts 'MODEL.DEVICE cpu'" in err


@pytest.mark.parametrize("argv", [["--checkpoint", "a.pth", "b.pth:B"], ["--checkpoint=a.pth", "b.pth:B", "MODEL.DEVICE", "cpu"]])
def test_a_second_value_of_a_flag_given_once_per_value_is_refused_with_the_way_to_write_it(tools, capsys, argv):
    # 'b.pth:B' began the config opts: an odd number of them, or a key that does not exist.
    err = _refused(capsys, tools["analyze_robustness"].parse_args, ["--config-file", "c.yaml", *argv])
    assert ("--checkpoint takes one value, and 'b.pth:B' after --checkpoint a.pth is not a config opt: "
            "give the flag once per value (--checkpoint a.pth --checkpoint b.pth:B)") in err
    # The opts after it, yacs or LazyConfig, are taken as opts.
    for opts in (["MODEL.DEVICE", "cpu"], ["train.device=cpu"]):
        args = tools["analyze_robustness"].parse_args(["--config-file", "c", "--checkpoint", "a.pth", *opts])
        assert args.checkpoint == ["a.pth"] and args.opts == opts


@pytest.mark.parametrize("tool, opts", [("train_net", ["SOLVER.MAX_ITER", "1"]),
                                         ("lazyconfig_train_net", ["train.max_iter=1"])])
def test_detectron2s_parser_keeps_its_flags_and_refuses_one_after_the_opts(tools, capsys, tool, opts):
    from tool_args import parse_tool_args

    parser = tools[tool].parser()
    args = parse_tool_args(parser, ["--config-file", "c", "--eval-only", "--num-gpus", "1", *opts, "X", "-1"]
                           if tool == "train_net" else ["--config-file=c", "--eval-only", *opts])
    assert args.eval_only and args.config_file == "c" and args.num_gpus == 1
    assert args.opts == (opts + ["X", "-1"] if tool == "train_net" else opts)  # "-1" is a value, not a flag
    err = _refused(capsys, lambda argv: parse_tool_args(parser, argv), ["--config-file", "c", *opts, "--resume"])
    assert f"--resume comes after the config opts '{' '.join(opts)}'" in err
    # What the parser itself refuses is still refused, as argparse says it.
    assert "invalid int value" in _refused(capsys, lambda argv: parse_tool_args(parser, argv), ["--num-gpus", "x"])


@pytest.mark.parametrize("tool, argv, error", [
    # Taken for the first opt: "command-line opts must be KEY VALUE pairs, got an odd number".
    ("train_net", ["--eval_only", "MODEL.DEVICE", "cpu"], "unrecognized argument --eval_only: did you mean --eval-only?"),
    ("train_net", ["--num-gpus", "1", "--resme"], "unrecognized argument --resme: did you mean --resume?"),
    ("sweep", ["--keep-probs", "0.9", "--block_sizes=3"], "unrecognized argument --block_sizes: did you mean --block-sizes?"),
    ("lazyconfig_train_net", ["-q", "train.max_iter=1"], "unrecognized argument -q: the flags are --config-file, "),
])
def test_a_flag_the_tool_does_not_have_is_refused_naming_it_and_the_closest_flag(tools, capsys, tool, argv, error):
    from tool_args import parse_tool_args

    module = tools[tool]
    # train_net's and lazyconfig_train_net's parser is detectron2's; the other tools parse their own.
    parse = (lambda a: parse_tool_args(module.parser(), a)) if hasattr(module, "parser") else module.parse_args
    assert error in _refused(capsys, parse, ["--config-file", "c.yaml", *argv])


def test_a_parser_without_opts_is_parsed_as_argparse_does():
    import argparse

    from tool_args import parse_tool_args

    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int)
    parser.add_argument("rest", nargs="*")
    args = parse_tool_args(parser, ["a", "b", "--n", "2"])
    assert (args.n, args.rest) == (2, ["a", "b"]) and args == parser.parse_args(["a", "b", "--n", "2"])


def test_flags_of_every_argparse_shape_end_where_argparse_ends_them(capsys):
    import argparse

    from tool_args import parse_tool_args

    # parse_tool_args serves any parser with REMAINDER opts, not only the tools' flags.
    parser = argparse.ArgumentParser()
    parser.add_argument("--level", type=int, nargs="?", const=5)
    parser.add_argument("--pair", nargs=2)
    parser.add_argument("--names", nargs="+")  # no type: every token is a value, up to "--"
    parser.add_argument("--ck", action="append", nargs="+")
    parser.add_argument("opts", nargs=argparse.REMAINDER)
    args = parse_tool_args(parser, ["--level", "KEY", "1"])  # an optional value that is not one
    assert (args.level, args.opts) == (5, ["KEY", "1"])
    args = parse_tool_args(parser, ["--level", "3", "--pair", "a", "b", "KEY", "1"])
    assert (args.level, args.pair, args.opts) == (3, ["a", "b"], ["KEY", "1"])
    args = parse_tool_args(parser, ["--names", "a", "b", "--", "KEY", "1"])
    assert (args.names, args.opts) == (["a", "b"], ["KEY", "1"])
    # An appending flag that takes several values is not "given once per value".
    args = parse_tool_args(parser, ["--ck", "a", "--", "x"])
    assert (args.ck, args.opts) == ([["a"]], ["x"])


def test_an_ambiguous_or_unallowed_abbreviation_is_refused_naming_the_flags_it_could_be(tools, capsys):
    import argparse

    from tool_args import parse_tool_args

    err = _refused(capsys, lambda argv: parse_tool_args(tools["train_net"].parser(), argv), ["--num", "2"])
    assert "unrecognized argument --num: did you mean" in err and "--num-gpus" in err and "--num-machines" in err
    parser = argparse.ArgumentParser(allow_abbrev=False)
    parser.add_argument("--seeds", type=int, nargs="+")
    parser.add_argument("opts", nargs=argparse.REMAINDER)
    err = _refused(capsys, lambda argv: parse_tool_args(parser, argv), ["--seed", "1"])
    assert "unrecognized argument --seed: did you mean --seeds?" in err


def test_int_in_range_takes_both_ends():
    from tool_args import int_in_range, torch_seed

    assert [torch_seed(str(v)) for v in (-(2**63), 2**64 - 1)] == [-(2**63), 2**64 - 1]
    assert int_in_range(1, 3)("3") == 3
    with pytest.raises(Exception, match=r"expected an integer from 1 to 3, got '4'"):
        int_in_range(1, 3)("4")


def test_int_at_least_reads_integers_from_the_minimum_up_and_names_the_flag_otherwise(tools, capsys):
    import argparse

    from tool_args import int_at_least, parse_tool_args

    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int_at_least(1))
    parser.add_argument("--warmup", type=int_at_least(0))
    args = parse_tool_args(parser, ["--steps", "1", "--warmup", "0"])
    assert (args.steps, args.warmup) == (1, 0)
    for argv, bad in ((["--steps", "0"], "'0'"), (["--warmup", "-1"], "'-1'"), (["--steps", "2.5"], "'2.5'"),
                      (["--steps", "x"], "'x'")):
        err = _refused(capsys, lambda a: parse_tool_args(parser, a), argv)
        assert f"argument {argv[0]}: expected an integer >= {1 if argv[0] == '--steps' else 0}, got {bad}" in err


def test_an_empty_output_folder_is_refused_naming_the_flag(tools, capsys):
    # os.path reads "" as the current folder: a sweep would have trained into the checkout.
    import argparse

    from tool_args import folder, parse_tool_args

    parser = argparse.ArgumentParser()
    parser.add_argument("--output-dir", type=folder, default="output/x")
    assert parse_tool_args(parser, []).output_dir == "output/x"
    assert parse_tool_args(parser, ["--output-dir", "out"]).output_dir == "out"
    for empty in ("", "  "):
        with pytest.raises(SystemExit):
            parse_tool_args(parser, ["--output-dir", empty])
        assert f"argument --output-dir: {empty!r} is empty: give a folder" in capsys.readouterr().err



@pytest.mark.parametrize("tool", ["sweep", "analyze_robustness"])
def test_a_path_flag_given_with_a_tilde_is_the_users_home(tools, tool, tmp_path, monkeypatch):
    # `--output-dir=~/sweep` (the shell expands no "~" after "=") made a folder named "~" in
    # the current one and wrote the results there; `--config-file=~/c.yaml` "did not exist".
    monkeypatch.setenv("HOME", str(tmp_path))
    grid = ["--block-sizes", "1", "--keep-probs", "0.9"] if tool == "sweep" else ["--checkpoint", "m.pth"]
    args = tools[tool].parse_args(["--config-file=~/c.yaml", *grid, "--output-dir=~/out"])
    assert (args.config_file, args.output_dir) == (str(tmp_path / "c.yaml"), str(tmp_path / "out"))

@pytest.mark.parametrize("tool", ["train_net", "lazyconfig_train_net", "main_job"])
def test_the_training_tools_read_a_leading_tilde_as_the_users_home(tools, tool, tmp_path, monkeypatch):
    # detectron2's --config-file takes "~" as written: `--config-file=~/c.yaml` "did not
    # exist"; main_job's --output-dir=~/out made a folder named "~" in the current one.
    from tool_args import parse_tool_args
    monkeypatch.setenv("HOME", str(tmp_path))
    argv = ["--config-file=~/c.yaml"]
    if tool == "main_job":
        args = tools[tool].parse_args(argv + ["--output-dir=~/out", "--datasets-root=~/data"])
        assert (args.output_dir, args.datasets_root) == (str(tmp_path / "out"), str(tmp_path / "data"))
    else:
        args = parse_tool_args(tools[tool].parser(), argv)
    assert args.config_file == str(tmp_path / "c.yaml")


@pytest.mark.parametrize("tool", ["train_net", "lazyconfig_train_net"])
def test_every_example_in_the_help_is_a_command_line_the_tool_takes(tools, tool):
    # lazyconfig_train_net --help showed detectron2's yacs example (`MODEL.WEIGHTS
    # /path/to/weight.pth SOLVER.BASE_LR 0.001`), which the tool refuses.
    from tool_args import parse_tool_args

    module = tools[tool]
    parser = module.parser()
    examples = [line.split("$ ", 1)[1] for line in parser.epilog.splitlines() if "$ " in line]
    assert len(examples) >= 6
    for example in examples:
        argv = shlex.split(example)
        assert argv[:2] == ["python", f"tools/{tool}.py"], example
        args = parse_tool_args(parser, argv[2:])
        config_file = str(REPO / args.config_file)  # the examples run from the checkout
        # The opts are applied to the config as the tool applies them (a refused opt raises).
        if tool == "train_net":
            module.load_config(config_file, args.opts)
        else:
            assert all("=" in opt for opt in args.opts), example
            module.load_lazy_config(config_file, args.opts)


def test_each_tools_opts_help_names_only_the_opts_it_takes(tools):
    def opts_help(tool):
        return next(a.help for a in tools[tool].parser()._actions if a.dest == "opts")

    # train_net said "For python-based LazyConfig, use path.key=value", and refuses .py configs.
    assert "KEY VALUE" in opts_help("train_net") and "lazyconfig_train_net.py" in opts_help("train_net")
    assert "path.key=value" not in tools["train_net"].parser().format_help()
    assert "key=value" in opts_help("lazyconfig_train_net") and "refused" in opts_help("lazyconfig_train_net")
    lazy_help = tools["lazyconfig_train_net"].parser().format_help()
    assert "PATH.KEY VALUE" not in lazy_help and "MODEL.WEIGHTS" not in lazy_help


def test_set_help_names_an_argument_the_parser_does_not_have():
    import argparse

    from tool_args import set_help

    parser = argparse.ArgumentParser()
    parser.add_argument("opts", nargs=argparse.REMAINDER, help="old")
    set_help(parser, "opts", "new")
    assert parser._actions[-1].help == "new"
    with pytest.raises(KeyError, match="'config'"):
        set_help(parser, "config", "text")


# ----------------------------------------------------------------------------- refusals
@pytest.fixture
def tool_args(tools, monkeypatch):
    """tools/tool_args.py as the tools import it, with no tool's checks passed yet."""
    import tool_args as module  # on sys.path once a tool is loaded

    monkeypatch.setattr(module, "_checks_passed", False)
    monkeypatch.delenv(module.TRACEBACK_ENV, raising=False)
    return module


def test_a_refusal_before_the_checks_pass_is_one_line_naming_the_tool(tool_args, capsys):
    def refuse():
        raise KeyError("MODEL.DROPBLOCK.KEEPPROB: did you mean MODEL.DROPBLOCK.KEEP_PROB?")

    with pytest.raises(SystemExit) as exit_info:
        tool_args.run_tool("train_net.py", refuse)
    assert exit_info.value.code == 1
    err = capsys.readouterr().err
    # The message itself, not KeyError's repr of it (quoted).
    assert err.startswith("train_net.py: error: KeyError: MODEL.DROPBLOCK.KEEPPROB: did you mean ")
    assert "Traceback" not in err and tool_args.TRACEBACK_ENV in err
    assert tool_args.run_tool("train_net.py", lambda: 3) == 3


def test_errors_after_the_checks_bugs_and_the_env_variable_keep_the_traceback(tool_args, monkeypatch):
    def fail(exc):
        def main():
            raise exc
        return main

    with pytest.raises(AttributeError):  # a bug, not a refusal of the input
        tool_args.run_tool("t.py", fail(AttributeError("x")))
    monkeypatch.setenv(tool_args.TRACEBACK_ENV, "1")
    with pytest.raises(ValueError, match="bad"):
        tool_args.run_tool("t.py", fail(ValueError("bad")))
    monkeypatch.delenv(tool_args.TRACEBACK_ENV)
    tool_args.checks_passed()  # training started: a ValueError there is no refusal
    with pytest.raises(ValueError, match="late"):
        tool_args.run_tool("t.py", fail(ValueError("late")))


def _ended_by(wrapped, main, index=1):
    """What the parent of a multi-process launch receives when process `index` runs
    `wrapped(main)` and it raises, as torch's spawn sends it: the process's
    traceback.format_exc() in a ProcessRaisedException (spawn._wrap and ProcessContext.join)."""
    import traceback

    from torch.multiprocessing import ProcessRaisedException

    try:
        wrapped(main)
    except Exception:
        trace = traceback.format_exc()
    return ProcessRaisedException(f"\n\n-- Process {index:d} terminated with the following error:\n" + trace,
                                  index, 4321)


def _raising(exc):
    def main(*args):
        raise exc
    return main


def test_a_refusal_in_a_launched_process_is_the_one_line_of_an_in_process_refusal(tool_args, capsys):
    # Each process of `--num-gpus 2` runs the checks: a refusal reached the parent as torch's
    # ProcessRaisedException, printed with the process's whole traceback under the launch's.
    message = 'MODEL.DROPBLOCK.KEEPPROB: did you mean MODEL.DROPBLOCK.KEEP_PROB? ("quoted": 0.9)'
    raised = _ended_by(tool_args.in_a_launched_process, _raising(KeyError(message)))
    with pytest.raises(SystemExit) as exit_info:
        tool_args.run_tool("train_net.py", _raising(raised))
    assert exit_info.value.code == 1
    launched = capsys.readouterr().err
    with pytest.raises(SystemExit):
        tool_args.run_tool("train_net.py", _raising(KeyError(message)))
    assert launched == capsys.readouterr().err  # as one process refuses it
    assert launched.splitlines()[0] == f"train_net.py: error: KeyError: {message}"
    assert "Traceback" not in launched and len(launched.splitlines()) == 2


@pytest.mark.parametrize("refusal", [
    FileNotFoundError("--config-file 'x.yaml' does not exist"),
    RuntimeError("OUTPUT_DIR='out' is in use by another run"),
    KeyError("MODEL.A", "MODEL.B"),  # several arguments: KeyError's str() of them all, as one process prints it
])
def test_each_kind_of_refusal_in_a_launched_process_is_the_line_one_process_prints(tool_args, capsys, refusal):
    # The checks refuse with OSError and RuntimeError too (a missing file, a folder in use),
    # not only ValueError and KeyError.
    raised = _ended_by(tool_args.in_a_launched_process, _raising(refusal))
    with pytest.raises(SystemExit) as exit_info:
        tool_args.run_tool("train_net.py", _raising(raised))
    assert exit_info.value.code == 1
    launched = capsys.readouterr().err
    with pytest.raises(SystemExit):
        tool_args.run_tool("train_net.py", _raising(refusal))
    assert launched == capsys.readouterr().err
    shown = "('MODEL.A', 'MODEL.B')" if isinstance(refusal, KeyError) else str(refusal)
    assert launched.splitlines()[0] == f"train_net.py: error: {type(refusal).__name__}: {shown}"


def test_a_launched_process_whose_refusal_is_followed_by_another_error_is_that_error_as_it_is(tool_args):
    # The refusal's line is the traceback's last line only when the refusal ended the
    # process; an error raised while handling it (a cleanup failing) is no refusal, and its
    # traceback holds the refusal's line above its own.
    def main():
        try:
            tool_args.in_a_launched_process(_raising(ValueError("refused")))
        except Exception:
            raise AttributeError("cleanup")

    failed = _ended_by(lambda m: m(), main)
    assert "refused" in failed.msg and failed.msg.endswith("\nAttributeError: cleanup\n")
    with pytest.raises(type(failed)) as raised:
        tool_args.run_tool("train_net.py", _raising(failed))
    assert raised.value is failed


def test_a_launched_process_passes_on_what_is_no_refusal_as_it_is(tool_args, monkeypatch):
    # A process's failure after its checks passed (training), a bug, or any error with the
    # traceback asked for: the parent's launch error, with the process's traceback, as before.
    from torch.multiprocessing import ProcessExitedException

    assert tool_args.in_a_launched_process(lambda *args: args, "a", 2) == ("a", 2)
    with pytest.raises(AttributeError, match="^x$"):
        tool_args.in_a_launched_process(_raising(AttributeError("x")))
    monkeypatch.setenv(tool_args.TRACEBACK_ENV, "1")
    with pytest.raises(ValueError, match="^bad$"):
        tool_args.in_a_launched_process(_raising(ValueError("bad")))
    monkeypatch.delenv(tool_args.TRACEBACK_ENV)
    tool_args.checks_passed()  # in this process: training started
    with pytest.raises(ValueError, match="^late$"):
        tool_args.in_a_launched_process(_raising(ValueError("late")))
    failed = _ended_by(tool_args.in_a_launched_process, _raising(ValueError("late")))
    with pytest.raises(type(failed)) as raised:
        tool_args.run_tool("train_net.py", _raising(failed))
    assert raised.value is failed and failed.msg.endswith("\nValueError: late\n")
    # Nor is a process that ended by a signal or with an exit status: it sent no refusal.
    exited = ProcessExitedException("process 1 terminated with exit code 1", 1, 4321, exit_code=1)
    with pytest.raises(ProcessExitedException) as raised:
        tool_args.run_tool("train_net.py", _raising(exited))
    assert raised.value is exited


# ----------------------------------------------------------------------------- launch
def _launched(tool_args, monkeypatch, num_gpus, num_machines=1, main=lambda args: None, check_first=None):
    """[(process count, main)] that launch_tool gave detectron2's launch, which is replaced by
    a recorder."""
    import argparse

    import detectron2.engine

    launched = []
    monkeypatch.setattr(detectron2.engine, "launch", lambda main, n, **kwargs: launched.append((n, main)))
    args = argparse.Namespace(num_gpus=num_gpus, num_machines=num_machines, machine_rank=0, dist_url="auto")
    tool_args.launch_tool(main, args, check_first=check_first)
    return launched


def _launch_tool_with(tool_args, monkeypatch, num_gpus, num_machines=1):
    """The process counts launch_tool gave detectron2's launch (`_launched`)."""
    return [n for n, _ in _launched(tool_args, monkeypatch, num_gpus, num_machines)]


def test_more_processes_than_the_machines_gpus_are_refused_naming_num_gpus_before_launch(tool_args, monkeypatch):
    # detectron2's launch started the processes, each imported everything, then failed with a
    # bare `assert num_gpus_per_machine <= torch.cuda.device_count()` (no message).
    monkeypatch.setattr("torch.cuda.is_available", lambda: True)
    monkeypatch.setattr("torch.cuda.device_count", lambda: 2)
    with pytest.raises(ValueError, match=r"^--num-gpus 4: torch sees 2 CUDA device\(s\) on this machine"):
        _launch_tool_with(tool_args, monkeypatch, 4)
    assert _launch_tool_with(tool_args, monkeypatch, 2) == [2]
    assert _launch_tool_with(tool_args, monkeypatch, 1, num_machines=2) == [1]


def test_several_processes_without_cuda_are_refused_before_launch_only_where_launch_asserts_cuda(
        tool_args, monkeypatch):
    # detectron2 v0.6's launch asserted "cuda is not available" in every process it started;
    # detectron2 main's starts them with GLOO (DDP on the CPU, LazyConfig's train.device=cpu).
    import importlib
    import inspect

    # The module, not the function of that name that detectron2.engine exports.
    source = inspect.getsource(importlib.import_module("detectron2.engine.launch")._distributed_worker)
    monkeypatch.setattr("torch.cuda.is_available", lambda: False)
    assert _launch_tool_with(tool_args, monkeypatch, 1) == [1]  # one process: nothing distributed
    if "cuda is not available" in source:
        with pytest.raises(ValueError, match=r"^--num-gpus 2 --num-machines 1: torch sees no CUDA device here.*"
                                             r"--num-gpus 1\)"):
            _launch_tool_with(tool_args, monkeypatch, 2)
        with pytest.raises(ValueError, match=r"^--num-gpus 1 --num-machines 2: torch sees no CUDA device"):
            _launch_tool_with(tool_args, monkeypatch, 1, num_machines=2)
    else:
        assert _launch_tool_with(tool_args, monkeypatch, 2) == [2]


def test_the_processes_launch_starts_run_main_through_the_tools_refusal_in_one_line(tool_args, monkeypatch):
    # Each process runs the checks: their refusal reached the tool as detectron2's launch
    # error, with the process's traceback. In one process launch calls main in the tool's.
    import functools

    monkeypatch.setattr("torch.cuda.is_available", lambda: True)
    monkeypatch.setattr("torch.cuda.device_count", lambda: 2)

    def main(args):
        return args

    assert _launched(tool_args, monkeypatch, 1, main=main) == [(1, main)]
    for num_gpus, num_machines in ((2, 1), (1, 2)):
        ((n, launched),) = _launched(tool_args, monkeypatch, num_gpus, num_machines, main=main)
        assert n == num_gpus and isinstance(launched, functools.partial) and launched.args == (main,)
        assert launched.func is tool_args.in_a_launched_process


def test_a_config_that_does_not_load_is_refused_before_several_processes_start(tool_args, monkeypatch):
    # Each process loaded the config itself: a missing file or a misspelt key was refused only
    # after every process had imported torch and detectron2, by each of them.
    monkeypatch.setattr("torch.cuda.is_available", lambda: True)
    monkeypatch.setattr("torch.cuda.device_count", lambda: 2)
    checked = []

    def refuse(args):
        checked.append(args.num_gpus)
        raise FileNotFoundError("config file 'x.yaml' does not exist")

    for num_gpus, num_machines in ((2, 1), (1, 2)):
        with pytest.raises(FileNotFoundError, match="x.yaml"):
            _launched(tool_args, monkeypatch, num_gpus, num_machines, check_first=refuse)
    assert checked == [2, 1]
    # Passed, the processes start; one process is launch's call of main here, which checks.
    assert [n for n, _ in _launched(tool_args, monkeypatch, 2, check_first=checked.append)] == [2]
    assert [n for n, _ in _launched(tool_args, monkeypatch, 1, check_first=checked.append)] == [1]
    assert len(checked) == 3


def _launch_ending_with(tool_args, monkeypatch, error):
    """Run launch_tool with 2 processes through a launch that logs torch's spawn warning for
    the other process, as ProcessContext.join does when one fails, then raises `error`
    (None: returns)."""
    import argparse
    import logging

    import detectron2.engine

    monkeypatch.setattr("torch.cuda.is_available", lambda: True)
    monkeypatch.setattr("torch.cuda.device_count", lambda: 2)

    def launch(main, n, **kwargs):
        logging.getLogger("torch.multiprocessing.spawn").warning("Terminating process %s via signal SIGTERM", 4322)
        if error is not None:
            raise error

    monkeypatch.setattr(detectron2.engine, "launch", launch)
    args = argparse.Namespace(num_gpus=2, num_machines=1, machine_rank=0, dist_url="auto")
    tool_args.launch_tool(print, args)


def test_torchs_terminating_process_lines_are_left_out_above_a_refusal_only(tool_args, monkeypatch, caplog):
    # torch's spawn logged "Terminating process N via signal SIGTERM" for each other process
    # above the one-line refusal of the first.
    import logging

    caplog.set_level(logging.WARNING)

    def terminations():
        return [r.getMessage() for r in caplog.records if r.getMessage().startswith("Terminating process")]

    refused = _ended_by(tool_args.in_a_launched_process, _raising(ValueError("MODEL.DROPBLOCK.KEEP_PROB=1.5")))
    with pytest.raises(type(refused)):
        _launch_ending_with(tool_args, monkeypatch, refused)
    assert terminations() == []
    # What is no refusal (training failed, a bug) keeps them, after the launch ends.
    failed = _ended_by(tool_args.in_a_launched_process, _raising(AttributeError("bug")))
    with pytest.raises(type(failed)):
        _launch_ending_with(tool_args, monkeypatch, failed)
    assert terminations() == ["Terminating process 4322 via signal SIGTERM"]
    caplog.clear()
    _launch_ending_with(tool_args, monkeypatch, None)
    assert terminations() == ["Terminating process 4322 via signal SIGTERM"]
    assert not logging.getLogger("torch.multiprocessing.spawn").filters  # the hold is removed


@pytest.mark.parametrize("tool, config, opt, named", [
    ("train_net.py", "retinanet_R18_GN_dropblock_res45_kp0.9_b3.yaml", ["MODEL.DROPBLOCK.KEEPPROB", "0.8"],
     "did you mean MODEL.DROPBLOCK.KEEP_PROB?"),
    ("lazyconfig_train_net.py", "retinanet_R18_GN_dropblock_res45_kp0.9_b3.py", ["train.max_iters=3"],
     "did you mean train.max_iter?"),
])
def test_a_misspelt_key_on_the_command_line_is_refused_without_a_traceback(tmp_path, tool, config, opt, named):
    # The tools printed the checks' whole traceback (15 lines through load_config) above the
    # one line that said what was wrong.
    import subprocess
    import sys

    result = subprocess.run(
        [sys.executable, str(REPO / "tools" / tool), "--config-file", str(REPO / "configs" / "Synthetic" / config),
         *opt], cwd=str(tmp_path), capture_output=True, text=True, timeout=300)
    assert result.returncode == 1, result.stderr[-3000:]
    assert "Traceback" not in result.stderr
    assert f"{tool}: error: KeyError: " in result.stderr and named in result.stderr
    assert list(tmp_path.iterdir()) == []  # nothing written


def test_a_folder_another_run_holds_is_refused_in_one_line_and_left_as_it_was(tmp_path):
    # The claim is the last refusal before a tool writes: past it, errors keep their traceback.
    import fcntl
    import os
    import subprocess
    import sys

    from conftest import tiny_synthetic_datasets

    output = tmp_path / "run"
    output.mkdir()
    (output / "log.txt").write_text("the other run's")
    fd = os.open(output, os.O_RDONLY)
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # as the other run's claim_output_dir holds it
    try:
        with tiny_synthetic_datasets(tmp_path / "datasets", num_val=2) as datasets:
            result = subprocess.run(
                [sys.executable, str(REPO / "tools" / "train_net.py"), "--config-file",
                 str(REPO / "configs" / "Synthetic" / "retinanet_R18_GN_dropblock_res45_kp0.9_b3.yaml"),
                 "OUTPUT_DIR", str(output), "MODEL.DEVICE", "cpu"],
                cwd=str(tmp_path), capture_output=True, text=True, timeout=300,
                env={**os.environ, "DETECTRON2_DATASETS": str(datasets)})
    finally:
        os.close(fd)
    assert result.returncode == 1, result.stderr[-3000:]
    assert "Traceback" not in result.stderr
    assert f"train_net.py: error: RuntimeError: OUTPUT_DIR='{output}' is in use by another run" in result.stderr
    assert sorted(p.name for p in output.iterdir()) == ["log.txt"]


def test_a_cli_called_while_a_spawned_process_imports_its_script_does_nothing(tool_args, monkeypatch):
    # A script of one's own calling cli() outside `if __name__ == "__main__":` ran the whole
    # tool again in each process --num-gpus spawned, whose launch then failed with Python's
    # "An attempt has been made to start a new process before the current process has finished
    # its bootstrapping phase", printed as a refusal by the checks.
    import multiprocessing

    ran = []
    monkeypatch.setattr(multiprocessing.current_process(), "_inheriting", True, raising=False)
    assert tool_args.run_tool("train_net.py", lambda: ran.append(1)) is None
    assert ran == []
    monkeypatch.setattr(multiprocessing.current_process(), "_inheriting", False)
    assert tool_args.run_tool("train_net.py", lambda: ran.append(1) or 3) == 3 and ran == [1]


# Multi-process journey (stop 53)
@pytest.mark.parametrize("tool, argv, flag", [
    ("sweep", ["--block-sizes", "3", "--keep-probs", "0.9", "--num-gpus", "2"], "--num-gpus"),
    ("analyze_robustness", ["--num-gpus", "2", "--checkpoint", "a.pth"], "--num-gpus"),
    ("export_stock_config", ["--num-machines=2"], "--num-machines"),
])
def test_detectrons_launch_flags_on_a_one_process_tool_are_refused_saying_it_runs_in_one_process(tools, capsys,
                                                                                                 tool, argv, flag):
    # The refusal listed the tool's flags only, as for a misspelt flag: no word of why the
    # flag every detectron2 tool has is not there.
    err = _refused(capsys, tools[tool].parse_args, ["--config-file", "c.yaml", *argv])
    assert f"unrecognized argument {flag}: the flags are --" in err
    # (the tool's name is argparse's prog: its script's name, __main__.py under pytest)
    assert " runs in one process (train_net.py and lazyconfig_train_net.py take detectron2's launch flags)" in err


@pytest.mark.parametrize("flags, dist_url", [
    ([], "auto"),  # detectron2's default port: a free one instead
    (["--dist-url", "tcp://127.0.0.1:29512"], "tcp://127.0.0.1:29512"),  # the user's
    (["--num-machines", "2"], None),  # the default, which every machine must share
])
def test_several_processes_on_one_machine_take_a_free_port_unless_the_dist_url_is_given(tools, tool_args, monkeypatch,
                                                                                        flags, dist_url):
    # detectron2's default --dist-url is one fixed port per user: a second run in several
    # processes on the machine failed in its launch with torch's EADDRINUSE traceback.
    import detectron2.engine
    from detectron2.engine import default_argument_parser

    from dropblock_det.engine import trainer

    launched = []
    monkeypatch.setattr(detectron2.engine, "launch", lambda main, num_gpus, **kwargs: launched.append(kwargs))
    monkeypatch.setattr(trainer, "check_launch_processes", lambda num_gpus, num_machines: None)  # no GPUs here
    args = tools["train_net"].parser().parse_args(["--num-gpus", "2", *flags, "--config-file", "c.yaml"])
    tool_args.launch_tool(print, args)
    assert launched[0]["dist_url"] == (dist_url or default_argument_parser().get_default("dist_url"))
    # "Command Line Args:" and default_setup's log print the URL the launch is given.
    assert args.dist_url == launched[0]["dist_url"]


# --- bad-input journey 54 ---
@pytest.mark.parametrize("tool", ["sweep", "analyze_robustness"])
def test_an_output_folder_that_is_a_file_or_under_one_is_refused_by_the_parser_naming_the_flag(
        tools, tool, tmp_path, capsys):
    # `--output-dir results.csv` was refused only by the output folder's claim, after the
    # config's checks had read the datasets' annotation files.
    (tmp_path / "results.csv").write_text("")
    grid = ["--block-sizes", "1", "--keep-probs", "0.9"] if tool == "sweep" else ["--checkpoint", "m.pth"]
    for given, why in ((tmp_path / "results.csv", "is a file"),
                       (tmp_path / "results.csv" / "sub", f"lies under {str(tmp_path / 'results.csv')!r}, which is a file")):
        with pytest.raises(SystemExit):
            tools[tool].parse_args(["--config-file", "c.yaml", *grid, "--output-dir", str(given)])
        assert f"argument --output-dir: {str(given)!r} {why}, not a folder" in capsys.readouterr().err
    for fine in (tmp_path, tmp_path / "new" / "sub"):  # a folder that is there, or one to make
        args = tools[tool].parse_args(["--config-file", "c.yaml", *grid, "--output-dir", str(fine)])
        assert args.output_dir == str(fine)


@pytest.mark.parametrize("num_machines, machine_rank, match", [
    (1, 1, r"^--machine-rank 1: expected a rank from 0 to 0 for --num-machines 1 \(the first machine is rank 0\)"),
    (2, 2, r"^--machine-rank 2: expected a rank from 0 to 1 for --num-machines 2 "),
    (2, -1, r"^--machine-rank -1: expected a rank from 0 to 1 "),
    (0, 0, r"^--num-machines 0: expected 1 or more machines"),
])
def test_a_machine_rank_outside_the_machines_is_refused_before_launch(tool_args, monkeypatch,
                                                                     num_machines, machine_rank, match):
    # `--num-gpus 2 --machine-rank 1` on one machine waited forever in the launch for the
    # processes of ranks 0 and 1; `--num-machines 0` trained in this process as if one.
    import argparse

    import detectron2.engine

    launched = []
    monkeypatch.setattr(detectron2.engine, "launch", lambda main, n, **kwargs: launched.append(n))
    args = argparse.Namespace(num_gpus=2, num_machines=num_machines, machine_rank=machine_rank, dist_url="auto")
    with pytest.raises(ValueError, match=match):
        tool_args.launch_tool(lambda args: None, args)
    assert launched == []
    monkeypatch.setattr("torch.cuda.is_available", lambda: True)
    monkeypatch.setattr("torch.cuda.device_count", lambda: 2)
    tool_args.launch_tool(lambda args: None, argparse.Namespace(num_gpus=2, num_machines=2, machine_rank=1,
                                                                dist_url="tcp://127.0.0.1:1"))
    assert launched == [2]


# --- coverage audit 56 ---
def test_log_file_in_appends_each_printed_line_once_and_only_inside_the_block(tool_args, tmp_path, capsys):
    # A sweep rerun into its folder, or a resumed cell, appends to the log.txt there: an earlier
    # run's lines are kept. What print_and_log prints is written once (not again through the
    # dropblock_det logger it is a child of), at INFO even where dropblock_det's level is
    # WARNING (no setup_logger in this process), and not after the block.
    import logging

    package = logging.getLogger("dropblock_det")
    level = package.level
    package.setLevel(logging.WARNING)
    try:
        with tool_args.log_file_in(str(tmp_path)):
            tool_args.print_and_log("the first run's table")
        with tool_args.log_file_in(str(tmp_path)):
            tool_args.print_and_log("the rerun's table")
        tool_args.print_and_log("printed after the block")
    finally:
        package.setLevel(level)
    log = (tmp_path / "log.txt").read_text().splitlines()
    assert [line.split(": ", 1)[1] for line in log] == ["the first run's table", "the rerun's table"]
    assert all(" dropblock_det.printed INFO: " in line for line in log)
    assert capsys.readouterr().out.splitlines() == ["the first run's table", "the rerun's table",
                                                    "printed after the block"]


def test_the_warnings_shown_before_a_log_go_into_the_first_log_that_asks_for_them_once(tool_args, tmp_path,
                                                                                      monkeypatch):
    # A sweep cell's log (earlier_warnings off) does not take the checks' warnings; the sweep's
    # own log does, and a later log in the same process does not get them again.
    monkeypatch.setattr(tool_args, "_shown_before_log_file", ["UserWarning: shown by the checks"])
    for name, earlier in (("cell", False), ("sweep", True), ("later", True)):
        (tmp_path / name).mkdir()
        with tool_args.log_file_in(str(tmp_path / name), earlier_warnings=earlier):
            pass
    assert (tmp_path / "cell" / "log.txt").read_text() == "" == (tmp_path / "later" / "log.txt").read_text()
    assert (tmp_path / "sweep" / "log.txt").read_text().endswith(
        " dropblock_det.warnings WARNING: UserWarning: shown by the checks\n")
    assert tool_args._shown_before_log_file == []


# --- mutation 59T ---
@pytest.mark.parametrize("rank", [0, 1])
def test_a_launched_process_keeps_its_warnings_for_log_txt_on_the_main_rank_and_logs_them_on_the_others(
        tool_args, monkeypatch, rank):
    # A process a launch spawns runs no run_tool: the main one's warnings reached only the
    # console, not log.txt; the others' were printed once per process on the console.
    import logging
    import warnings

    import detectron2.utils.comm as comm

    def console(*args, **kwargs):
        pass

    monkeypatch.setattr(warnings, "showwarning", console)  # as a spawned process starts
    monkeypatch.setattr(tool_args, "_console_showwarning", tool_args._console_showwarning)
    monkeypatch.setattr(comm, "get_rank", lambda: rank)
    py_warnings = logging.getLogger("py.warnings")
    monkeypatch.setattr(py_warnings, "handlers", [])
    monkeypatch.setattr(py_warnings, "propagate", True)
    try:
        shown = tool_args.in_a_launched_process(lambda: warnings.showwarning)
    finally:
        logging.captureWarnings(False)  # restores warnings.showwarning as it found it
        warnings.showwarning = console
    if rank == 0:
        assert shown is tool_args._show_and_log_warning
        assert py_warnings.propagate and py_warnings.handlers == []
    else:
        assert shown is not tool_args._show_and_log_warning and shown is not console  # logging's
        assert not py_warnings.propagate and [type(h) for h in py_warnings.handlers] == [logging.NullHandler]


def test_launch_is_given_the_machine_rank_and_machine_count_of_the_command_line(tool_args, monkeypatch):
    # Each machine of a multi-machine run starts its own ranks: rank 0's on every machine
    # would wait forever for the others'.
    import argparse

    import detectron2.engine

    from dropblock_det.engine import trainer

    launched = []
    monkeypatch.setattr(detectron2.engine, "launch", lambda main, n, **kwargs: launched.append(kwargs))
    monkeypatch.setattr(trainer, "check_launch_processes", lambda num_gpus, num_machines: None)  # no GPUs here
    tool_args.launch_tool(lambda args: None, argparse.Namespace(num_gpus=2, num_machines=3, machine_rank=2,
                                                                dist_url="tcp://10.0.0.1:29500"))
    assert launched == [dict(num_machines=3, machine_rank=2, dist_url="tcp://10.0.0.1:29500",
                             args=(argparse.Namespace(num_gpus=2, num_machines=3, machine_rank=2,
                                                      dist_url="tcp://10.0.0.1:29500"),))]
