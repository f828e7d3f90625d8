"""A run's output folder: one run per folder at a time (a lock on it), and the files of an
earlier run moved aside into ``previous_runs/`` instead of overwritten.
"""
from __future__ import annotations

import contextlib
import errno
import filecmp
import fnmatch
import os
import shutil
import time
import warnings
from typing import Dict, List, Optional, Sequence

import detectron2.utils.comm as comm

from .checkpoint import is_url, last_checkpoint


__all__ = [
    "archive_previous_run",
    "claim_output_dir",
    "deepest_existing_path",
    "EVAL_FILES",
    "keep_resumed_final_checkpoint",
    "prepare_output_dir",
    "report_resumed_config",
    "RUN_FILES",
    "TTA_INFERENCE_DIR",
]


PREVIOUS_RUNS = "previous_runs"
# Where DropBlockTrainer.test_with_TTA's evaluators write, beside the plain evaluation's
# inference/ (OUTPUT_DIR/inference_TTA/<dataset>), as detectron2's train_net names it.
TTA_INFERENCE_DIR = "inference_TTA"
# What a run writes into OUTPUT_DIR (detectron2's default_setup, trainer, checkpointer,
# event writers and evaluators; tools/main_job.py's plot and summary). Only these move: an
# OUTPUT_DIR may be a folder that holds other things too (".", a project folder).
# config.yaml.pkl: detectron2's LazyConfig.save writes the config there too (cloudpickle)
# when its config.yaml cannot be loaded back (a lambda or other object in the config, as
# in detectron2's new_baselines configs): then the run's only loadable config.
# model_*.pth.tmp, last_checkpoint.tmp: a checkpoint (or its tag) write killed before its
# rename (AtomicCheckpointer).
RUN_FILES = ("config.yaml", "config.yaml.pkl", "log.txt", "log.txt.rank*", "last_checkpoint", "last_checkpoint.tmp",
             "model_*.pth", "model_*.pth.tmp", "metrics.json", "events.out.tfevents.*", "inference", TTA_INFERENCE_DIR,
             "main_job.png", "main_job_summary.json")
# What an evaluation (train_net --eval-only) overwrites: default_setup's config.yaml (and a
# LazyConfig's config.yaml.pkl) and the evaluators' predictions (inference_TTA: with
# TEST.AUG.ENABLED). It appends to log.txt and leaves the checkpoints alone.
EVAL_FILES = ("config.yaml", "config.yaml.pkl", "inference", TTA_INFERENCE_DIR)


# Folders this process holds the lock of (path -> open descriptor), for its whole life.
_CLAIMED_OUTPUT_DIRS: Dict[str, int] = {}


def claim_output_dir(output_dir: str, key: str = "OUTPUT_DIR") -> None:
    """Create OUTPUT_DIR and hold an exclusive lock on it for the rest of this process, or
    raise a RuntimeError naming it (as `key`: the config key or the tool's argument that
    gave it) when another process holds it: two runs in one folder
    move each other's files aside and overwrite each other's checkpoints. A POSIX advisory
    lock (flock on the folder itself: nothing is written into it), released by the OS when
    the process ends, however it ends; where there is no flock (Windows, a file system
    without it), nothing is held (the latter is warned of)."""
    try:
        import fcntl
    except ImportError:
        return
    path = os.path.realpath(output_dir)
    if path in _CLAIMED_OUTPUT_DIRS:
        return
    try:
        os.makedirs(path, exist_ok=True)
    except (FileExistsError, NotADirectoryError):  # a file where a folder must go
        in_the_way = deepest_existing_path(path)
        raise NotADirectoryError(f"{key}={output_dir!r} is not a folder: {in_the_way} is a file; "
                                 f"give another {key}") from None
    fd = os.open(path, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:  # EWOULDBLOCK: held
        os.close(fd)
        raise RuntimeError(
            f"{key}={output_dir!r} is in use by another run (a process holds its lock): "
            "two runs in one folder would overwrite each other's files. Wait for it to "
            f"end, or give this run another {key}") from None
    except OSError as e:
        # A file system without flock (Lustre mounted without it: ENOSYS; some NFS: ENOLCK)
        # holds nothing for anyone: as where there is no fcntl, the run goes on, warned.
        warnings.warn(f"{key}={output_dir!r} cannot be locked on its file system ({e.strerror}): a second run "
                      "started into it would not be refused; make sure that none is", RuntimeWarning, stacklevel=2)
    _CLAIMED_OUTPUT_DIRS[path] = fd


def deepest_existing_path(path: str) -> str:
    """`path` itself or its deepest ancestor that exists: what a folder to be made at `path`
    meets first (a file there is in the way; a dangling link counts as there, as it is for
    os.makedirs)."""
    while not os.path.lexists(path):
        path = os.path.dirname(path)
    return path


def prepare_output_dir(output_dir: str, key: str, eval_only: bool, resume: bool, resuming: bool,
                       still_needed: Sequence[str] = ()) -> Optional[str]:
    """What the tools do to their output folder after their checks and before
    default_setup: claim it (:func:`claim_output_dir`; `key` names it in errors), then move
    aside what the run would overwrite (:func:`archive_previous_run`): for an evaluation
    (`eval_only`) the earlier config.yaml (a LazyConfig's config.yaml.pkl too) and
    inference/ (inference_TTA/); for a training that does not continue a checkpoint (not
    `resuming`: a fresh run, or a --resume, `resume`, that found none, where detectron2
    starts at iteration 0 and would append to the earlier metrics.json) the earlier run's
    files; for a training that continues a finished run's
    model_final.pth, that checkpoint (:func:`keep_resumed_final_checkpoint`). Says what it
    moved or kept; every process waits for it. For a training that continues a checkpoint,
    returns where it copied the run's config.yaml, which default_setup rewrites: give it to
    :func:`report_resumed_config` after default_setup (None otherwise, and on other
    processes than the main one)."""
    if comm.is_main_process():
        # Before anything in the folder is moved or written: one run per folder at a time.
        claim_output_dir(output_dir, key=key)
    hint = ""
    if eval_only:
        archive, what = EVAL_FILES, ""  # named below: what of EVAL_FILES was there
    elif not resuming:
        archive, what = RUN_FILES, "The earlier run"
        hint = (" (--resume found no checkpoint there: training starts at iteration 0)" if resume
                else " (--resume continues a run instead)")
    else:
        kept_config = None
        if comm.is_main_process():
            kept = keep_resumed_final_checkpoint(output_dir)
            if kept:
                print(f"The finished run's model_final.pth in {key}={output_dir!r}, which this continued "
                      f"run replaces when it ends, is kept as {kept}", flush=True)
            kept_config = _copy_config_before_resume(output_dir, os.path.dirname(kept) if kept else None)
        comm.synchronize()
        return kept_config
    if comm.is_main_process():
        archived = archive_previous_run(output_dir, still_needed, archive)
        if archived and not what:
            print(f"The earlier {_listing(archived)} in {key}={output_dir!r} moved to {archived}", flush=True)
        elif archived:
            print(f"{what} in {key}={output_dir!r} was moved to {archived}{hint}", flush=True)
        elif resume and not eval_only:
            # Else a --resume into a mistyped or new folder trained from scratch with only
            # detectron2's "No checkpoint found" among the log's lines to say so.
            print(f"--resume found no checkpoint in {key}={output_dir!r}: training starts at iteration 0",
                  flush=True)
    comm.synchronize()


def _listing(folder: str) -> str:
    """The entries of `folder` for a sentence: "config.yaml, config.yaml.pkl and inference/"."""
    names = [e + ("/" if os.path.isdir(os.path.join(folder, e)) else "") for e in sorted(os.listdir(folder))]
    return " and ".join(filter(None, [", ".join(names[:-1]), names[-1]]))


def _new_previous_run_folder(output_dir: str) -> str:
    """A new, empty ``output_dir/previous_runs/<YYYYmmdd-HHMMSS>[-n]/``."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    target = os.path.join(output_dir, PREVIOUS_RUNS, stamp)
    suffix = 1
    while os.path.exists(target):  # two runs within a second
        target = os.path.join(output_dir, PREVIOUS_RUNS, f"{stamp}-{suffix}")
        suffix += 1
    os.makedirs(target)
    return target


def keep_resumed_final_checkpoint(output_dir: str) -> Optional[str]:
    """Where a run resumed from its ``model_final.pth`` (a finished run continued with a
    larger SOLVER.MAX_ITER) keeps that checkpoint: ``previous_runs/<time>/model_final.pth``,
    returned (None when the run resumes from another checkpoint). The continued run writes
    its own model_final.pth when it ends, and the finished run's was lost where it was its
    only checkpoint (CHECKPOINT_PERIOD above MAX_ITER, as in the synthetic configs). A hard
    link where the file system has them (no copy: AtomicCheckpointer replaces the file, the
    link keeps the old one), else a copy."""
    checkpoint = last_checkpoint(output_dir)
    if os.path.basename(checkpoint) != "model_final.pth":
        return None
    target = _new_previous_run_folder(output_dir)
    kept = os.path.join(target, "model_final.pth")
    try:
        try:
            os.link(checkpoint, kept)
        except OSError:
            shutil.copy2(checkpoint, kept)
    except BaseException:
        shutil.rmtree(target, ignore_errors=True)
        raise
    return kept


# What default_setup writes a run's config to (a LazyConfig's .pkl where its yaml does not
# load back): a resume rewrites them.
CONFIG_FILES = ("config.yaml", "config.yaml.pkl")


def _copy_config_before_resume(output_dir: str, folder: Optional[str]) -> Optional[str]:
    """Copy the run's config files into `folder` (None: a new previous_runs/<time>/), which
    is returned; None where the run has none."""
    names = [n for n in CONFIG_FILES if os.path.isfile(os.path.join(output_dir, n))]
    if "config.yaml" not in names:
        return None
    target = folder or _new_previous_run_folder(output_dir)
    try:
        for name in names:
            shutil.copy2(os.path.join(output_dir, name), os.path.join(target, name))
    except BaseException:
        for name in names:
            with contextlib.suppress(OSError):
                os.remove(os.path.join(target, name))
        if folder is None:
            shutil.rmtree(target, ignore_errors=True)
        raise
    return target


def report_resumed_config(output_dir: str, kept: Optional[str], key: str = "OUTPUT_DIR") -> None:
    """After default_setup wrote a resumed run's config.yaml into `output_dir` (`key` names
    it): where it differs from the run's earlier one, which :func:`prepare_output_dir`
    copied into `kept`, that copy stays, and the keys that changed are said; else the copy
    is removed (with `kept` when nothing else is in it). default_setup overwrote it without
    a word: a run resumed with another KEEP_PROB, schedule or MAX_ITER (which a resume takes)
    no longer said what its first iterations were trained with. `kept` None: nothing to do."""
    if kept is None or not comm.is_main_process():
        return
    earlier, now = os.path.join(kept, "config.yaml"), os.path.join(output_dir, "config.yaml")
    changes = _config_changes(earlier, now) if os.path.isfile(now) else None
    if os.path.isfile(now) and (filecmp.cmp(earlier, now, shallow=False) or changes == []):
        for name in CONFIG_FILES:
            with contextlib.suppress(FileNotFoundError):
                os.remove(os.path.join(kept, name))
        with contextlib.suppress(OSError):  # not empty: the kept model_final.pth, earlier runs
            os.rmdir(kept)
            os.rmdir(os.path.dirname(kept))
        return
    changes = changes or []
    shown = "; ".join(changes[:8]) + (f"; and {len(changes) - 8} more" if len(changes) > 8 else "")
    print(f"This resumed run's config differs from the one the run in {key}={output_dir!r} was trained "
          f"with so far" + (f" ({shown})" if shown else "") + f": that config.yaml is kept as {earlier}",
          flush=True)


# Where a run's folder is (yacs, LazyConfig).
_OUTPUT_DIR_KEYS = ("OUTPUT_DIR", "train.output_dir")


def _config_changes(earlier: str, now: str) -> Optional[List[str]]:
    """"MODEL.DROPBLOCK.KEEP_PROB: 0.9 -> 0.8" for each key whose value differs between two
    config.yaml files (yacs or LazyConfig: both plain YAML), but where the run is
    (_OUTPUT_DIR_KEYS: a run's folder moved and resumed where it now is changes only that);
    None when one cannot be read."""
    from ..config import config_changes

    try:
        with open(earlier) as a, open(now) as b:
            changes = config_changes(_load_config_yaml(a), _load_config_yaml(b))
    except Exception:  # noqa: BLE001 - a yaml that safe_load refuses (or no mapping): no keys, still kept
        return None
    return [f"{key}: {old!r} -> {new!r}" for key, old, new in changes if key not in _OUTPUT_DIR_KEYS]


def _load_config_yaml(stream) -> object:
    """A config.yaml as plain values, as safe_load reads it, with the python tags a LazyConfig
    run's has (detectron2's R-CNN configs' `ShapeSpec`, a `block_class`) read as plain values
    too, nothing imported: `!!python/name:X ''` as "X", a `!!python/object:X {...}` mapping as
    its fields and "__class__": "X". safe_load refused such a file, and a resume then named no
    changed key."""
    import yaml

    class _Loader(yaml.SafeLoader):
        pass

    def python_tag(loader: yaml.SafeLoader, suffix: str, node: yaml.Node) -> object:
        kind, _, name = suffix.partition(":")
        if isinstance(node, yaml.MappingNode):
            return {**loader.construct_mapping(node, deep=True), "__class__": name or kind}
        if isinstance(node, yaml.SequenceNode):
            return loader.construct_sequence(node, deep=True)
        return name if kind == "name" else loader.construct_scalar(node)

    _Loader.add_multi_constructor("tag:yaml.org,2002:python/", python_tag)
    return yaml.load(stream, Loader=_Loader)  # noqa: S506 - a SafeLoader: constructs no object


def archive_previous_run(
    output_dir: str, still_needed: Sequence[str] = (), patterns: Sequence[str] = RUN_FILES
) -> Optional[str]:
    """Move an earlier run's files (those matching ``patterns``: RUN_FILES for a training,
    EVAL_FILES for an evaluation) in ``output_dir`` into
    ``output_dir/previous_runs/<YYYYmmdd-HHMMSS>/``; return that folder, or None when
    there was nothing to move. Creates ``output_dir``; other files there stay where they are.
    A file the new run still reads (``still_needed``: its config file, its MODEL.WEIGHTS,
    e.g. ``out/config.yaml`` or ``out/model_final.pth``), or a folder holding one, is
    copied instead of moved.

    A fresh run into a used folder would otherwise append to the earlier metrics.json and
    overwrite its checkpoints (detectron2 does both), and an evaluation would overwrite the
    run's config.yaml and predictions; moving keeps every file."""
    os.makedirs(output_dir, exist_ok=True)
    entries = [e for e in sorted(os.listdir(output_dir))
               if any(fnmatch.fnmatchcase(e, pattern) for pattern in patterns)]
    if not entries:
        return None
    target = _new_previous_run_folder(output_dir)
    needed = [os.path.realpath(p) for p in still_needed if p and not is_url(p) and os.path.exists(p)]

    def is_needed(entry: str) -> bool:
        real = os.path.realpath(os.path.join(output_dir, entry))
        return any(n == real or n.startswith(real + os.sep) for n in needed)

    copied = [e for e in entries if is_needed(e)]
    # The copies first: they are what can fail for room (a full disk), and then the folder
    # is left as it was, without a truncated copy of a checkpoint in previous_runs/ (the
    # moves, renames within the folder, need none).
    try:
        for entry in copied:
            source = os.path.join(output_dir, entry)
            copy = shutil.copytree if os.path.isdir(source) else shutil.copy2
            copy(source, os.path.join(target, entry))
    except BaseException:
        shutil.rmtree(target, ignore_errors=True)
        raise
    _move_all(output_dir, [e for e in entries if e not in copied], target)
    return target


def _move(source: str, destination: str) -> None:
    """A rename; shutil.move's copy and delete only where the two are on other file systems
    (previous_runs/ a link to another disk): a rename moves all or nothing."""
    try:
        os.rename(source, destination)
    except OSError as e:
        if e.errno != errno.EXDEV:
            raise
        shutil.move(source, destination)


def _move_all(output_dir: str, entries: Sequence[str], target: str) -> None:
    """Move `entries` of `output_dir` into `target`, or none: one that cannot be moved (an
    immutable or locked file, a folder without write permission, a full disk for a copy
    across file systems) puts the ones moved before it back and removes `target`, then raises
    an OSError naming it. The moves stopped there before, half the run in previous_runs/
    (its last_checkpoint, say) and half in the folder (its checkpoints), where a --resume
    then found no checkpoint and started anew."""
    moved: List[str] = []
    for entry in entries:
        try:
            _move(os.path.join(output_dir, entry), os.path.join(target, entry))
        except OSError as e:
            stranded = []
            for done in reversed(moved):
                try:
                    _move(os.path.join(target, done), os.path.join(output_dir, done))
                except OSError:
                    stranded.append(done)
            # A failed copy across file systems may have deleted part of its source after
            # copying it whole: then the copy in `target` is kept.
            partly_deleted = not os.path.lexists(os.path.join(output_dir, entry))
            if not stranded and not partly_deleted:
                shutil.rmtree(target, ignore_errors=True)
            where = (f"{', '.join(sorted(stranded + [entry] * partly_deleted))} stayed in {target}"
                     if stranded or partly_deleted else "nothing was moved")
            raise type(e)(
                f"the earlier run in {output_dir!r} cannot be moved aside: {os.path.join(output_dir, entry)!r} "
                f"cannot be moved into {target!r} ({e.strerror or e}); {where}. Make it movable (its "
                "permissions, chattr -i) or move it away yourself, or give this run another output "
                "folder") from e
        moved.append(entry)
