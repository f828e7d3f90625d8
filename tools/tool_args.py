"""The command lines of the tools in this folder and in benchmarks/: detectron2's convention (flags, then config
opts that take the rest of the line, `argparse.REMAINDER`) with the two ways argparse gets
it wrong made clear: a list flag (`--keep-probs 0.9 0.8`) directly followed by the opts,
which argparse reads into the list (`invalid float value: 'SOLVER.MAX_ITER'`), and a flag
written after the opts, which argparse reads as an opt (`an odd number of opts`, or a
required flag "missing" although it is on the line). A list flag's value of the wrong type
that does not look like an opt (`--keep-probs 1.0 0,9`) is refused as argparse would
refuse it ("argument --keep-probs: invalid float value: '0,9'"), not taken for the opts.

Also the tools' entry: `run_tool` prints a refusal by the checks as one line, and
`launch_tool` starts detectron2's launch, whose processes refuse in that one line too.

It lives beside the tools, not in the package, because it imports only the standard library
(`launch_tool` imports detectron2 when called): a tool parses its arguments before it
imports detectron2 or dropblock_det (main_job sets $DETECTRON2_DATASETS from them, which
those imports read).
"""
import argparse
import contextlib
import difflib
import functools
import json
import logging
import os
import re
import sys
import warnings
from typing import Any, Callable, Iterator, List, NoReturn, Optional, Sequence, Tuple

__all__ = ["checks_passed", "folder", "in_a_launched_process", "int_at_least", "int_in_range", "keep_shown_warnings",
           "launch_tool", "log_file_in", "parse_tool_args", "print_and_log", "run_tool", "set_help",
           "shown_warnings_logged_by", "torch_seed", "training_tool_parser", "user_path", "TRACEBACK_ENV"]


def int_at_least(minimum: int) -> Callable[[str], int]:
    """An argparse `type` that reads an integer >= `minimum` (argparse names the flag and
    the value when it raises)."""
    return int_in_range(minimum)


def int_in_range(minimum: int, maximum: Optional[int] = None) -> Callable[[str], int]:
    """An argparse `type` that reads an integer from `minimum` to `maximum` (no upper bound
    when None); argparse names the flag and the value when it raises."""
    expected = f"an integer >= {minimum}" if maximum is None else f"an integer from {minimum} to {maximum}"

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            value = None
        if value is None or value < minimum or (maximum is not None and value > maximum):
            raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r}")
        return value

    return parse


# What torch.manual_seed takes (a larger one raised "Overflow when unpacking long long" at
# its first use, after a tool had moved its earlier results aside and evaluated the first seed).
torch_seed = int_in_range(-(2**63), 2**64 - 1)


def folder(text: str) -> str:
    """An argparse `type` for an output folder: an empty one is refused (argparse names the
    flag), since os.path treats "" as the current folder, where the tool would write, and so
    is a path that is, or lies under, a file (refused only after the config's checks had read
    its datasets). A leading "~" is the user's home (`user_path`)."""
    if not text.strip():
        raise argparse.ArgumentTypeError(f"{text!r} is empty: give a folder, or leave the flag out for the default")
    path = user_path(text)
    existing = path
    while existing and not os.path.lexists(existing) and os.path.dirname(existing) != existing:
        existing = os.path.dirname(existing)  # the closest part of the path that is there
    if existing and os.path.lexists(existing) and not os.path.isdir(existing):
        where = "is a file" if existing == path else f"lies under {existing!r}, which is a file"
        raise argparse.ArgumentTypeError(f"{text!r} {where}, not a folder: give a folder")
    return path


def user_path(text: str) -> str:
    """An argparse `type` for a path: a leading "~" is the user's home, which the shell does
    not expand after "=" (`--output-dir=~/sweep`) or in quotes; taken as written, it made a
    folder named "~" in the current one, or a file there "did not exist"."""
    return os.path.expanduser(text)


def _argument(parser: argparse.ArgumentParser, dest: str) -> argparse.Action:
    """The parser's argument `dest`; KeyError naming `dest` when there is no such argument,
    so a renamed argument of detectron2's parser cannot go unnoticed."""
    for action in parser._actions:  # argparse keeps no public map from dest to action
        if action.dest == dest:
            return action
    raise KeyError(f"the parser has no argument {dest!r}")


def set_help(parser: argparse.ArgumentParser, dest: str, text: str) -> None:
    """Replace the help text of the parser's argument `dest`: detectron2's
    `default_argument_parser` builds its arguments with help written for every tool, which
    is wrong for a tool that reads only one kind of config (its `opts` help offers both
    yacs pairs and LazyConfig overrides). KeyError naming `dest` when there is no such
    argument."""
    _argument(parser, dest).help = text


def training_tool_parser(epilog: str, opts_help: str) -> argparse.ArgumentParser:
    """detectron2's `default_argument_parser` for a training tool: its `opts` help replaced
    by `opts_help`, and its --config-file read as a `user_path` (detectron2 takes a leading
    "~" as written, so `--config-file=~/c.yaml` "did not exist")."""
    from detectron2.engine import default_argument_parser

    parser = default_argument_parser(epilog=epilog)
    set_help(parser, "opts", opts_help)
    _argument(parser, "config_file").type = user_path
    return parser


def _option_action(parser: argparse.ArgumentParser, token: str) -> Optional[argparse.Action]:
    """The action of the flag `token` (`--name`, `--name=value`, or an unambiguous prefix,
    as argparse accepts it); None when it is not one of the parser's flags."""
    if not token.startswith("-") or token in ("-", "--"):
        return None
    name = token.split("=", 1)[0]
    actions = parser._option_string_actions  # argparse's own map: option string -> action
    if name in actions:
        return actions[name]
    if parser.allow_abbrev and name.startswith("--"):
        matches = {actions[option] for option in actions if option.startswith(name)}
        if len(matches) == 1:
            return matches.pop()
    return None


def _is_value(parser: argparse.ArgumentParser, action: argparse.Action, token: str) -> bool:
    """Whether `token` can be one value of a list flag: not a flag, and of the flag's type."""
    if _option_action(parser, token) is not None or token == "--":
        return False
    if action.type is None:
        return True
    try:
        action.type(token)
    except (TypeError, ValueError, argparse.ArgumentTypeError):
        return False
    return True


# A yacs config key as the opts begin with one: upper-case words joined by dots (MODEL.DEVICE,
# OUTPUT_DIR). Each word begins with a letter, so a mistyped number ("O.9") is not one.
_YACS_KEY = re.compile(r"[A-Z][A-Z0-9_]*(\.[A-Z][A-Z0-9_]*)*")
# A LazyConfig key without its "=value" (train.max_iter): an opt the config loading refuses
# as such ("expected key=value"), which says more than "invalid float value" would. Its
# top-level name in lower case (model, train, ...), so that "O.8" stays a mistyped number.
_LAZY_KEY = re.compile(r"[a-z_]\w*(\.\w+)+")


def _looks_like_an_opt(token: str) -> bool:
    """Whether `token` can begin the config opts: a yacs KEY, a LazyConfig key=value, or a
    dotted LazyConfig key."""
    return "=" in token or _YACS_KEY.fullmatch(token) is not None or _LAZY_KEY.fullmatch(token) is not None


def _looks_like_a_flag(token: str) -> bool:
    """Whether argparse would read `token` as a flag (one the parser may not have), not as
    a value: a leading "-" not followed by a number."""
    return token.startswith("-") and not re.fullmatch(r"-\.?\d.*", token)


def _refuse_an_invalid_value(parser: argparse.ArgumentParser, action: argparse.Action, token: str) -> NoReturn:
    """Exit with argparse's own error for `token` as a value of `action`'s flag
    ("argument --keep-probs: invalid float value: '0,9'")."""
    try:
        action.type(token)
        message = f"invalid value: {token!r}"  # not reached: _is_value refused the token
    except argparse.ArgumentTypeError as e:
        message = str(e)
    except (TypeError, ValueError):
        message = f"invalid {getattr(action.type, '__name__', repr(action.type))} value: {token!r}"
    parser.error(f"argument {'/'.join(action.option_strings)}: {message}")


def _split(parser: argparse.ArgumentParser, argv: List[str]) -> Tuple[List[str], List[str]]:
    """(the flags and their values, the config opts): the opts begin at the first token that
    is neither a flag nor one of its values; a list flag (nargs '+' / '*') takes the values
    of its type that follow it, and a token after them that is not of its type, not a flag
    and does not look like an opt is refused as an invalid value of that flag."""
    i = 0
    while i < len(argv):
        token = argv[i]
        if token == "--":
            return argv[:i], argv[i + 1:]
        action = _option_action(parser, token)
        if action is None:
            break
        i += 1
        if "=" in token or action.nargs == 0:
            continue
        if action.nargs in (None, "?"):
            if action.nargs is None or (i < len(argv) and _is_value(parser, action, argv[i])):
                i += 1
        elif isinstance(action.nargs, int):
            i += action.nargs
        else:  # "+" or "*"
            while i < len(argv) and _is_value(parser, action, argv[i]):
                i += 1
            # The values stop at a token that is not of the flag's type. The opts would begin
            # there, but when it looks like neither an opt nor a flag it is a mistyped value
            # (`--keep-probs 1.0 0,9`): said as such, not as "a flag after the opts" about
            # the flags that follow it, or as a bad opt once the config is read.
            token = argv[i] if i < len(argv) else "--"
            if not (token == "--" or _looks_like_a_flag(token) or _looks_like_an_opt(token)):
                _refuse_an_invalid_value(parser, action, token)
    return argv[:i], argv[i:]


def _refuse_a_second_value_of_a_repeated_flag(parser: argparse.ArgumentParser, flags: List[str],
                                              opts: List[str]) -> None:
    """`--checkpoint a.pth b.pth`: a flag given once per value (action "append") followed by a
    second value, which would begin the config opts. A config opt begins with a yacs key
    (upper case, `MODEL.WEIGHTS`) or is a LazyConfig `key=value`; anything else there is
    taken for the flag's next value and refused with the way to write it."""
    if not opts or "=" in opts[0] or opts[0][:1].isupper() or not flags:
        return
    last = flags[-1].split("=", 1)[0] if "=" in flags[-1] else (flags[-2] if len(flags) > 1 else "")
    action = _option_action(parser, last)
    if action is None or not isinstance(action, argparse._AppendAction) or action.nargs is not None:
        return
    value = flags[-1].split("=", 1)[1] if "=" in flags[-1] else flags[-1]
    parser.error(f"{last} takes one value, and {opts[0]!r} after {last} {value} is not a config opt: "
                 f"give the flag once per value ({last} {value} {last} {opts[0]})")


def _refuse_an_unknown_flag(parser: argparse.ArgumentParser, opts: List[str]) -> None:
    """`--eval_only`: a flag the parser does not have, where the opts would begin. No config
    opt begins with "-" (a yacs KEY, a LazyConfig key=value), so it is refused as argparse
    refuses an unknown flag, naming it and the parser's closest flags; it was taken for the
    first opt ("command-line opts must be KEY VALUE pairs, got an odd number")."""
    if not opts or not _looks_like_a_flag(opts[0]):
        return
    name = opts[0].split("=", 1)[0]
    close = difflib.get_close_matches(name, sorted(parser._option_string_actions), n=3)
    flags = sorted(option for option in parser._option_string_actions if option.startswith("--"))
    # detectron2's launch flags, which a user moving to several GPUs tries on every tool.
    one_process = (f"; {parser.prog} runs in one process (train_net.py and lazyconfig_train_net.py take "
                   "detectron2's launch flags)" if name in _LAUNCH_FLAGS and not close else "")
    parser.error(f"unrecognized argument {name}: "
                 + (f"did you mean {' or '.join(close)}?" if close else f"the flags are {', '.join(flags)}")
                 + one_process)


# The flags of detectron2's default_argument_parser that start several processes.
_LAUNCH_FLAGS = ("--num-gpus", "--num-machines", "--machine-rank", "--dist-url")


def parse_tool_args(parser: argparse.ArgumentParser, argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    """`parser.parse_args(argv)` for a parser whose last argument takes the config opts
    (`nargs=argparse.REMAINDER`, as detectron2's `default_argument_parser`): the opts begin
    after the last flag's values, so `--keep-probs 0.9 0.8 SOLVER.MAX_ITER 10` gives
    keep_probs [0.9, 0.8] and those two opts; a flag after the opts is refused with an error
    that names it (argparse would read it as an opt). `--` also ends the flags. A parser
    without such an argument is parsed as argparse does."""
    argv = list(sys.argv[1:] if argv is None else argv)
    remainder = [a for a in parser._actions if not a.option_strings and a.nargs == argparse.REMAINDER]
    if len(remainder) != 1:
        return parser.parse_args(argv)
    flags, opts = _split(parser, argv)
    _refuse_a_second_value_of_a_repeated_flag(parser, flags, opts)
    _refuse_an_unknown_flag(parser, opts)
    for index, token in enumerate(opts):
        if _option_action(parser, token) is not None:
            parser.error(
                f"{token.split('=', 1)[0]} comes after the config opts {' '.join(opts[:index])!r}: "
                "write the flags first; the opts take the rest of the command line")
    args = parser.parse_args(flags)
    setattr(args, remainder[0].dest, opts)
    return args


# ----------------------------------------------------------------------------- refusals
# Set with a non-empty value, a refusal shows its traceback too (to report a bug in a check).
TRACEBACK_ENV = "DROPBLOCK_DET_TRACEBACK"
# What the checks before a run raise for a wrong input (a key, a value, a file, a folder in
# use); anything else (AttributeError, ...) is a bug and keeps its traceback.
_REFUSAL_TYPES = (ValueError, KeyError, OSError, RuntimeError)
_checks_passed = False


def checks_passed() -> None:
    """Called by a tool once its input is checked, before it writes or trains anything: an
    error after this point is not a refusal of the input, and `run_tool` lets its traceback
    through."""
    global _checks_passed
    _checks_passed = True


def setup_run(cfg: Any, args: argparse.Namespace, output_dir: str) -> None:
    """detectron2's `default_setup` (its and fvcore's loggers, config.yaml, the seed), plus
    dropblock_det's logger into the same `output_dir`: without it, what the package logs (the
    model, the default ramp, the training files' check) reaches neither the console nor
    log.txt."""
    import detectron2.utils.comm as comm
    from detectron2.engine import default_setup
    from detectron2.utils.logger import setup_logger

    default_setup(cfg, args)
    package_logger = setup_logger(output_dir, distributed_rank=comm.get_rank(), name="dropblock_det",
                                  abbrev_name="dropblock")
    if comm.get_rank() > 0:  # its warnings are logged (_warnings_logged_in_other_processes): into its log file
        setup_logger(output_dir, distributed_rank=comm.get_rank(), name="py.warnings", abbrev_name="warnings")
    else:
        _warnings_into_log_file(package_logger, output_dir)


# The warnings the main process shows on the console, also written into its log.txt: a run's
# warnings (a ramp's end_iter after max_iter, a location without DropBlock) reached only the
# console, and log.txt read later, or by a cluster's job log, did not say them.
_WARNINGS_LOGGER = "dropblock_det.warnings"
_shown_before_log_file: List[str] = []  # shown before setup_run's log.txt existed (the checks')
_console_showwarning: Optional[Callable[..., None]] = None


def _show_and_log_warning(message: Any, category: Any, filename: str, lineno: int, file: Any = None,
                          line: Optional[str] = None) -> None:
    """`warnings.showwarning` while `keep_shown_warnings` is on: shown as before, then logged
    into the run's log.txt (kept until setup_run has made it)."""
    _console_showwarning(message, category, filename, lineno, file, line)
    text = warnings.formatwarning(message, category, filename, lineno, line).rstrip()
    logger = logging.getLogger(_WARNINGS_LOGGER)
    if logger.handlers:
        logger.warning(text)
    else:
        _shown_before_log_file.append(text)


def keep_shown_warnings(new_tool_run: bool = False) -> None:
    """From now on, each warning shown on the console is also written into the log.txt of
    the run `setup_run` sets up next (those shown before it, by the checks, when it does).
    Called by `run_tool` (`new_tool_run`: the log.txt of a run an earlier tool call in this
    process set up, and what it kept, are left behind) and in the main process of a launch."""
    global _console_showwarning
    if new_tool_run:
        logging.getLogger(_WARNINGS_LOGGER).handlers.clear()
        _shown_before_log_file.clear()
    if warnings.showwarning is not _show_and_log_warning:
        _console_showwarning = warnings.showwarning
        warnings.showwarning = _show_and_log_warning


@contextlib.contextmanager
def shown_warnings_logged_by(handler: logging.Handler) -> Iterator[None]:
    """While in the block, the warnings shown on the console (once `keep_shown_warnings` is
    on) are also written by `handler`: a sweep cell's log.txt, for what its training warns."""
    logger = logging.getLogger(_WARNINGS_LOGGER)
    logger.propagate = False  # the console has shown them already
    logger.addHandler(handler)
    try:
        yield
    finally:
        logger.removeHandler(handler)


# What a tool prints (its table, which regularizers it switched on) is also written into the
# log.txt of `log_file_in`, through this logger: the console has shown it already.
_PRINTED_LOGGER = "dropblock_det.printed"


def print_and_log(text: str) -> None:
    """print(text), and write it into the log.txt a `log_file_in` block has open (if any)."""
    print(text, flush=True)
    logger = logging.getLogger(_PRINTED_LOGGER)
    if logger.handlers:
        logger.info(text)


@contextlib.contextmanager
def log_file_in(output_dir: str, earlier_warnings: bool = False) -> Iterator[None]:
    """While in the block, detectron2's and dropblock_det's loggers, the warnings shown on the
    console (once `keep_shown_warnings` is on) and `print_and_log` also write to
    output_dir/log.txt (appended to, as detectron2's is), in detectron2's log.txt format: a
    tool without a training's `setup_run` (a sweep, its cells, analyze_robustness) keeps its
    log beside its results too. `earlier_warnings`: the warnings shown before the block (the
    checks') are written first."""
    log_file = logging.FileHandler(os.path.join(output_dir, "log.txt"))
    log_file.setFormatter(logging.Formatter("[%(asctime)s] %(name)s %(levelname)s: %(message)s",
                                            datefmt="%m/%d %H:%M:%S"))
    printed = logging.getLogger(_PRINTED_LOGGER)
    printed.propagate = False  # printed already
    printed.setLevel(logging.INFO)
    loggers = [logging.getLogger("detectron2"), logging.getLogger("dropblock_det"), printed]
    for logger in loggers:
        logger.addHandler(log_file)
    try:
        with shown_warnings_logged_by(log_file):
            if earlier_warnings:
                _log_the_warnings_shown_before()
            yield
    finally:
        for logger in loggers:
            logger.removeHandler(log_file)
        log_file.close()


def _warnings_into_log_file(package_logger: logging.Logger, output_dir: str) -> None:
    """Point the shown warnings' logger at the log.txt handler detectron2's `setup_logger`
    gave `package_logger` for `output_dir` (an earlier run's, in the same process, no more),
    and write into it those shown before it existed."""
    keep_shown_warnings()
    log_file = os.path.abspath(os.path.join(output_dir, "log.txt"))
    logger = logging.getLogger(_WARNINGS_LOGGER)
    logger.propagate = False  # the console has shown them already
    logger.handlers.clear()
    for handler in package_logger.handlers:
        stream = getattr(handler, "stream", None)
        if isinstance(getattr(stream, "name", None), str) and os.path.abspath(stream.name) == log_file:
            logger.addHandler(handler)
    if logger.handlers:
        _log_the_warnings_shown_before()


def _log_the_warnings_shown_before() -> None:
    """Write the warnings kept while no log.txt was open into the one now open, once."""
    for text in _shown_before_log_file:
        logging.getLogger(_WARNINGS_LOGGER).warning(text)
    _shown_before_log_file.clear()


def _refusal(e: BaseException) -> Optional[str]:
    """'ValueError: <message>' when `e` is this process's checks refusing the input (one of
    the refusal types, raised before `checks_passed()`, with $TRACEBACK_ENV unset); None when
    it is anything else."""
    if not isinstance(e, _REFUSAL_TYPES) or _checks_passed or os.environ.get(TRACEBACK_ENV):
        return None
    # KeyError's str() is the repr of its message: the message itself.
    message = e.args[0] if isinstance(e, KeyError) and len(e.args) == 1 else str(e)
    return f"{type(e).__name__}: {message}"


# Begins the message of the error a launched process ends with when its checks refuse the
# input; the refusal follows as a JSON string (one line, whatever the message holds).
_LAUNCHED_REFUSAL = "refused by the checks before the run: "


class _RefusedInALaunchedProcess(Exception):
    """The error a process started by a multi-process launch ends with when its checks refuse
    the input: its message is the refusal's line, for `run_tool` in the parent."""


def in_a_launched_process(main: Callable[..., Any], *args: Any) -> Any:
    """Run `main(*args)` in one of the processes a multi-process launch starts (detectron2's,
    through torch.multiprocessing), each of which runs the checks. A refusal by them ends the
    process with an error that carries the refusal's line to `run_tool` in the parent, which
    prints it once, as an in-process refusal (the launch printed the process's traceback
    under its own). Anything else (an error after `checks_passed()`, a bug, $TRACEBACK_ENV
    set) propagates as it is. Module-level, so that `functools.partial(in_a_launched_process,
    main)` can be sent to the processes."""
    _warnings_logged_in_other_processes()
    import detectron2.utils.comm as comm

    if comm.get_rank() == 0:
        keep_shown_warnings()
    try:
        return main(*args)
    except Exception as e:
        line = _refusal(e)
        if line is None:
            raise
        # torch's spawn passes the parent only this process's traceback as text: the last
        # line of it, this error's, is what the parent reads.
        raise _RefusedInALaunchedProcess(_LAUNCHED_REFUSAL + json.dumps(line)) from None


def _warnings_logged_in_other_processes() -> None:
    """In a launched process other than the main one, send Python's warnings to the
    "py.warnings" logger, which reaches no console there and which `setup_run` writes into
    the process's log file (log.txt.rank1, ...), as detectron2's loggers do: every process
    runs the same checks and hooks on the same config, and each printed the same warning (a
    ramp's end_iter after max_iter) on the console."""
    import detectron2.utils.comm as comm

    if comm.get_rank() == 0:
        return
    logging.captureWarnings(True)
    py_warnings = logging.getLogger("py.warnings")
    py_warnings.propagate = False  # until setup_run's file, nowhere (the main process shows the same)
    py_warnings.addHandler(logging.NullHandler())


def launch_tool(main: Callable[[Any], Any], args: argparse.Namespace,
                check_first: Optional[Callable[[argparse.Namespace], Any]] = None) -> None:
    """Run `main(args)` in `args.num_gpus` processes per machine (detectron2's `launch`), with
    the distributed arguments of detectron2's `default_argument_parser`: the training tools'
    entry. Several processes are checked first (`check_launch_processes`), and each runs
    `main` through `in_a_launched_process`, so that a refusal by the checks in them is the
    one line `run_tool` prints, with none of torch's "Terminating process" lines for the
    other processes above it.

    `check_first(args)`: what every process's checks begin with and what depends on nothing
    of a process's (loading the config file and its opts; the tools' also a training's
    device against the process count), run in this process before several are started, so
    that a config that does not load is refused at once, not after each process has
    imported torch and detectron2 to read the same file."""
    from detectron2.engine import default_argument_parser, launch

    from dropblock_det.engine.trainer import check_launch_processes

    if args.num_machines == 1 and args.dist_url == default_argument_parser().get_default("dist_url"):
        # detectron2's default is one fixed port per user: a second run with several processes
        # on this machine (into another folder, or one that the folder's lock would refuse)
        # failed in the launch with torch's EADDRINUSE traceback. A free port, as
        # --dist-url auto picks; set in args, so that the arguments printed and logged say so.
        args.dist_url = "auto"
    print("Command Line Args:", args)
    # detectron2's launch takes these as given: a rank past the machines (`--machine-rank 1`
    # on one machine) waited forever for the processes of ranks that never come, and no
    # machines trained in this process as if one.
    if args.num_machines < 1:
        raise ValueError(f"--num-machines {args.num_machines}: expected 1 or more machines")
    if not 0 <= args.machine_rank < args.num_machines:
        raise ValueError(f"--machine-rank {args.machine_rank}: expected a rank from 0 to {args.num_machines - 1} "
                         f"for --num-machines {args.num_machines} (the first machine is rank 0)")
    check_launch_processes(args.num_gpus, args.num_machines)
    if args.num_gpus * args.num_machines > 1:  # launch starts the processes (else it calls `main` here)
        if check_first is not None:
            check_first(args)
        main = functools.partial(in_a_launched_process, main)
    with _terminations_unlogged_for_a_refusal():
        launch(main, args.num_gpus, num_machines=args.num_machines, machine_rank=args.machine_rank,
               dist_url=args.dist_url, args=(args,))


@contextlib.contextmanager
def _terminations_unlogged_for_a_refusal() -> Iterator[None]:
    """Hold torch's spawn warnings "Terminating process N via signal SIGTERM" (logged for
    each other process when one ends with an error) until the launch ends: dropped when
    that error is a refusal (`_launched_process_refusal`), whose one line says what was
    wrong, logged as they were otherwise."""
    spawn_log = logging.getLogger("torch.multiprocessing.spawn")
    held: List[logging.LogRecord] = []

    def hold(record: logging.LogRecord) -> bool:
        if str(record.msg).startswith("Terminating process"):
            held.append(record)
            return False
        return True

    spawn_log.addFilter(hold)
    refused = False
    try:
        yield
    except Exception as e:
        refused = _launched_process_refusal(e) is not None
        raise
    finally:
        spawn_log.removeFilter(hold)
        for record in [] if refused else held:
            spawn_log.handle(record)


def _launched_process_refusal(e: BaseException) -> Optional[str]:
    """The refusal's line when `e` is torch's ProcessRaisedException for a process that ended
    through `in_a_launched_process`'s refusal (its text: that process's traceback, whose
    last line is the refusal); None when it is anything else."""
    # Not imported here (this module is imported before torch): when a launch raised `e`,
    # torch.multiprocessing.spawn is loaded.
    spawn = sys.modules.get("torch.multiprocessing.spawn")
    if spawn is None or not isinstance(e, spawn.ProcessRaisedException):
        return None
    _, found, line = e.msg.rstrip("\n").rpartition("\n")[2].partition(_LAUNCHED_REFUSAL)
    return json.loads(line) if found else None


def run_tool(prog: str, main: Callable[[], Any]) -> Any:
    """Run a tool's `main()` from its command line. An error its checks raise for a wrong
    input before `checks_passed()` is printed as one line naming the tool (as argparse
    prints a bad flag) and exits with status 1; the 15-line traceback through the checks
    said nothing more than its last line. So is a refusal by the checks in the processes
    of a multi-process launch (`in_a_launched_process`), once: the first process's to end.
    After `checks_passed()`, and with $TRACEBACK_ENV set, errors propagate as they are.

    Called while a process that a launch (or a DataLoader worker) spawned imports the script
    that started it, it does nothing: that import is for the script's registrations, and the
    process then runs what it was started for. A script of one's own that calls `cli()` at
    import, outside `if __name__ == "__main__":`, ran the whole tool again in each process,
    whose launch failed with Python's "An attempt has been made to start a new process before
    the current process has finished its bootstrapping phase", shown as a refusal by the checks.
    """
    import multiprocessing

    if getattr(multiprocessing.current_process(), "_inheriting", False):  # what that error is raised on
        return None
    keep_shown_warnings(new_tool_run=True)
    try:
        return main()
    except Exception as e:
        line = _refusal(e) or _launched_process_refusal(e)
        if line is None:
            raise
        sys.stderr.write(f"{prog}: error: {line}\n"
                         f"(refused by the checks before the run; {TRACEBACK_ENV}=1 shows the traceback)\n")
        sys.stderr.flush()
        sys.exit(1)
