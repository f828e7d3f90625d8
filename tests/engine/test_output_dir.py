"""A run's output folder (dropblock_det/engine/output_dir.py): an earlier run's files moved
aside, never deleted or overwritten, and one run per folder at a time."""
import re
from pathlib import Path

import pytest


def _assert_held_against_another_open(folder, operation: str = "LOCK_EX") -> None:
    """`folder`'s lock refuses fcntl.`operation` through another open file description, as
    another process's (another run's) attempt would be refused."""
    import fcntl
    import os

    fd = os.open(folder, os.O_RDONLY)
    try:
        with pytest.raises(BlockingIOError):
            fcntl.flock(fd, getattr(fcntl, operation) | fcntl.LOCK_NB)
    finally:
        os.close(fd)


def test_a_rerun_moves_the_earlier_run_aside_instead_of_deleting_it(tmp_path):
    from dropblock_det.engine.output_dir import archive_previous_run as archive

    out = tmp_path / "out"
    assert archive(str(out)) is None and out.is_dir()  # nothing there yet
    (out / "model_final.pth").write_bytes(b"weights of the first run")
    (out / "metrics.json").write_text('{"iteration": 0}\n')
    (out / "inference").mkdir()
    (out / "inference" / "coco_instances_results.json").write_text("[]")
    first = archive(str(out))
    assert sorted(p.name for p in out.iterdir()) == ["previous_runs"]
    assert re.fullmatch(r"\d{8}-\d{6}", Path(first).name)  # previous_runs/<YYYYmmdd-HHMMSS>/
    (out / "model_final.pth").write_bytes(b"weights of the second run")
    second = archive(str(out))
    assert first != second  # same second: a distinct folder, nothing overwritten
    assert (Path(first) / "model_final.pth").read_bytes() == b"weights of the first run"
    assert (Path(first) / "inference" / "coco_instances_results.json").is_file()
    assert (Path(second) / "model_final.pth").read_bytes() == b"weights of the second run"


def test_only_a_runs_own_files_are_moved_from_a_shared_output_dir(tmp_path):
    from dropblock_det.engine.output_dir import archive_previous_run

    # OUTPUT_DIR "." in a project folder: its code, data and other runs are not a run's files.
    for name in ("train.py", "notes.txt", "datasets/coco.json", "other_run/model_final.pth"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(name)
    assert archive_previous_run(str(tmp_path)) is None
    run = ("config.yaml", "log.txt", "log.txt.rank1", "last_checkpoint", "model_0000999.pth",
           "metrics.json", "events.out.tfevents.1.host.2.0", "inference/x.json")
    for name in run:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(name)
    target = archive_previous_run(str(tmp_path))
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "datasets", "notes.txt", "other_run", "previous_runs", "train.py"]
    assert all((Path(target) / name).read_text() == name for name in run)


def test_a_lazy_runs_pickled_config_is_moved_aside_with_its_config_yaml(tmp_path):
    # detectron2's LazyConfig.save writes config.yaml.pkl (the only loadable copy) when the
    # config holds a lambda (its new_baselines configs); the next run overwrote it.
    from dropblock_det.engine.output_dir import archive_previous_run, EVAL_FILES

    for patterns in (None, EVAL_FILES):
        for name in ("config.yaml", "config.yaml.pkl"):
            (tmp_path / name).write_text(name)
        target = Path(archive_previous_run(str(tmp_path), (), *([patterns] if patterns else [])))
        assert sorted(p.name for p in target.iterdir()) == ["config.yaml", "config.yaml.pkl"]
        assert not (tmp_path / "config.yaml.pkl").exists()


def test_a_file_the_new_run_reads_is_copied_not_moved(tmp_path):
    from dropblock_det.engine.output_dir import archive_previous_run

    # `--config-file out/config.yaml`, or MODEL.WEIGHTS out/model_final.pth (fine-tuning).
    for name in ("config.yaml", "model_final.pth", "metrics.json", "inference/weights/x.pth"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(name)
    needed = [str(tmp_path / "config.yaml"), str(tmp_path / "model_final.pth"),
              str(tmp_path / "inference" / "weights" / "x.pth"), "https://host/w.pkl", ""]
    target = Path(archive_previous_run(str(tmp_path), needed))
    for name in ("config.yaml", "model_final.pth", "inference/weights/x.pth"):
        assert (tmp_path / name).read_text() == name == (target / name).read_text()
    assert not (tmp_path / "metrics.json").exists() and (target / "metrics.json").read_text() == "metrics.json"


def test_a_copy_that_fails_for_room_leaves_the_folder_as_it_was(tmp_path, monkeypatch):
    # MODEL.WEIGHTS out/model_final.pth is copied aside; on a full disk the copy failed after
    # the other files had moved, leaving in previous_runs/ a run whose last_checkpoint named a
    # truncated model_final.pth.
    import shutil

    from dropblock_det.engine.output_dir import archive_previous_run

    run = {"config.yaml": "config", "last_checkpoint": "model_final.pth", "metrics.json": "{}",
           "model_final.pth": "weights " * 1000}
    for name, text in run.items():
        (tmp_path / name).write_text(text)

    def disk_full(source, destination, **kwargs):
        Path(destination).write_text(Path(source).read_text()[:100])
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(shutil, "copy2", disk_full)
    with pytest.raises(OSError, match="No space left"):
        archive_previous_run(str(tmp_path), [str(tmp_path / "model_final.pth")])
    assert {p.name: p.read_text() for p in tmp_path.iterdir() if p.is_file()} == run
    assert not list((tmp_path / "previous_runs").iterdir())


def test_a_file_that_cannot_be_moved_leaves_the_earlier_run_whole_in_its_folder(tmp_path, monkeypatch):
    # An immutable metrics.json (chattr +i; a folder without write permission alike): the
    # files sorted before it had moved into previous_runs/ (last_checkpoint with them), the
    # checkpoints stayed, and a --resume then found no checkpoint and started anew.
    import errno
    import os

    from dropblock_det.engine.output_dir import archive_previous_run

    run = {"config.yaml": "config", "last_checkpoint": "model_final.pth", "metrics.json": "{}",
           "model_final.pth": "PK weights", "inference/results.json": "[]"}
    for name, text in run.items():
        (tmp_path / name).parent.mkdir(exist_ok=True)
        (tmp_path / name).write_text(text)
    stuck = str(tmp_path / "metrics.json")
    rename, unlink = os.rename, os.unlink

    def refused(operation):
        def call(path, *args, **kwargs):
            if os.fspath(path) == stuck:
                raise PermissionError(errno.EPERM, "Operation not permitted", os.fspath(path))
            return operation(path, *args, **kwargs)
        return call

    monkeypatch.setattr(os, "rename", refused(rename))
    monkeypatch.setattr(os, "unlink", refused(unlink))
    with pytest.raises(PermissionError, match=r"cannot be moved aside: '.*metrics\.json' .*Operation not "
                                              r"permitted.*nothing was moved"):
        archive_previous_run(str(tmp_path))
    assert {str(p.relative_to(tmp_path)): p.read_text() for p in tmp_path.rglob("*") if p.is_file()} == run
    assert not list((tmp_path / "previous_runs").iterdir())
    monkeypatch.undo()
    target = Path(archive_previous_run(str(tmp_path)))  # once movable, all of it moves
    assert {str(p.relative_to(target)): p.read_text() for p in target.rglob("*") if p.is_file()} == run


def test_a_file_system_without_flock_is_warned_of_not_called_in_use(tmp_path, monkeypatch):
    # Lustre mounted without flock refuses every flock (ENOSYS): each run there was refused
    # with "is in use by another run", though none was.
    import errno
    import fcntl

    from dropblock_det.engine.output_dir import claim_output_dir

    def no_flock(fd, operation):
        raise OSError(errno.ENOSYS, "Function not implemented")

    monkeypatch.setattr(fcntl, "flock", no_flock)
    with pytest.warns(RuntimeWarning, match=r"OUTPUT_DIR='.*out' cannot be locked on its file system "
                                            r"\(Function not implemented\): a second run .* would not be refused"):
        claim_output_dir(str(tmp_path / "out"))
    assert (tmp_path / "out").is_dir()


def test_three_runs_archived_within_one_second_each_get_their_own_folder(tmp_path, monkeypatch):
    import time

    from dropblock_det.engine.output_dir import archive_previous_run

    monkeypatch.setattr(time, "strftime", lambda fmt, *a: "20240101-000000")
    targets = []
    for run in range(3):
        (tmp_path / "metrics.json").write_text(f"run {run}")
        targets.append(archive_previous_run(str(tmp_path)))
    assert [Path(t).name for t in targets] == ["20240101-000000", "20240101-000000-1", "20240101-000000-2"]
    assert [(Path(t) / "metrics.json").read_text() for t in targets] == ["run 0", "run 1", "run 2"]


def test_a_needed_file_whose_name_extends_a_run_file_does_not_keep_that_file(tmp_path):
    # MODEL.WEIGHTS out/log.txt.bak is not inside out/log.txt: log.txt moves as usual.
    from dropblock_det.engine.output_dir import archive_previous_run

    for name in ("log.txt", "log.txt.bak", "inference/x.json", "inference_old.pth"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(name)
    target = Path(archive_previous_run(str(tmp_path), [str(tmp_path / "log.txt.bak"),
                                                       str(tmp_path / "inference_old.pth")]))
    assert sorted(p.name for p in target.iterdir()) == ["inference", "log.txt"]
    assert not (tmp_path / "log.txt").exists() and not (tmp_path / "inference").exists()
    assert (tmp_path / "log.txt.bak").is_file() and (tmp_path / "inference_old.pth").is_file()


def test_every_kind_of_file_a_run_writes_is_archived(tmp_path):
    # main_job.py's plot and summary too: a rerun would overwrite them. And the temporary files
    # of a checkpoint or last_checkpoint write killed before its rename, which stayed behind in
    # a fresh run's folder.
    from dropblock_det.engine.output_dir import archive_previous_run

    run = ("config.yaml", "log.txt", "log.txt.rank3", "last_checkpoint", "model_final.pth", "model_0000004.pth.tmp",
           "last_checkpoint.tmp", "metrics.json",
           "events.out.tfevents.1.host", "inference", "inference_TTA", "main_job.png", "main_job_summary.json")
    for name in run:
        (tmp_path / name).write_text(name)
    target = Path(archive_previous_run(str(tmp_path)))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["previous_runs"]
    assert sorted(p.name for p in target.iterdir()) == sorted(run)


def test_prepare_output_dir_moves_what_the_run_would_overwrite_and_says_why(tmp_path, capsys):
    from dropblock_det.engine.output_dir import prepare_output_dir

    def earlier_run(name):
        folder = tmp_path / name
        (folder / "inference").mkdir(parents=True)
        for f in ("config.yaml", "metrics.json", "model_final.pth"):
            (folder / f).write_text("x")
        return str(folder)

    cases = [  # eval_only, resume, resuming -> what is moved, the message's end
        (False, False, False, ["config.yaml", "inference", "metrics.json", "model_final.pth"],
         r"The earlier run in OUTPUT_DIR='.*fresh' was moved to .* \(--resume continues a run instead\)"),
        (False, True, False, ["config.yaml", "inference", "metrics.json", "model_final.pth"],
         r"The earlier run in OUTPUT_DIR='.*empty' was moved to .* \(--resume found no checkpoint there: "
         r"training starts at iteration 0\)"),
        (True, True, True, ["config.yaml", "inference"],
         r"The earlier config.yaml and inference/ in OUTPUT_DIR='.*eval' moved to \S+\n"),
        (False, True, True, [], None),
    ]
    for name, (eval_only, resume, resuming, moved, message) in zip(("fresh", "empty", "eval", "resumed"), cases):
        folder = earlier_run(name)
        prepare_output_dir(folder, "OUTPUT_DIR", eval_only, resume, resuming)
        out = capsys.readouterr().out
        left = sorted(p.name for p in (tmp_path / name).iterdir() if p.name != "previous_runs")
        assert left == sorted({"config.yaml", "inference", "metrics.json", "model_final.pth"} - set(moved)), name
        if message:
            assert re.search(message, out), out
        else:
            assert out == ""


def test_an_evaluation_names_each_file_and_folder_it_moved(tmp_path, capsys):
    # It said "The earlier config.yaml / inference/" whatever moved: also where only config.yaml
    # was there, and not inference_TTA/ or a LazyConfig's config.yaml.pkl, which move too.
    from dropblock_det.engine.output_dir import prepare_output_dir

    # The training's log, metrics and checkpoints stay: the evaluation appends to log.txt.
    stay = ["last_checkpoint", "log.txt", "metrics.json", "model_final.pth"]
    for name in ["config.yaml", "config.yaml.pkl", *stay]:
        (tmp_path / name).write_text(name)
    for name in ("inference", "inference_TTA"):
        (tmp_path / name).mkdir()
    prepare_output_dir(str(tmp_path), "OUTPUT_DIR", eval_only=True, resume=False, resuming=False)
    assert re.fullmatch(r"The earlier config\.yaml, config\.yaml\.pkl, inference/ and inference_TTA/ in "
                        r"OUTPUT_DIR='.*' moved to \S+\n", capsys.readouterr().out)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([*stay, "previous_runs"])
    # One thing moved: named alone, and two: joined by "and".
    for moved, listed in ((["config.yaml"], "config.yaml"), (["config.yaml", "inference"], "config.yaml and inference/")):
        folder = tmp_path / f"{len(moved)}_moved"
        folder.mkdir()
        for name in moved:
            (folder / name).mkdir() if name == "inference" else (folder / name).write_text(name)
        prepare_output_dir(str(folder), "OUTPUT_DIR", eval_only=True, resume=False, resuming=False)
        assert re.fullmatch(rf"The earlier {re.escape(listed)} in OUTPUT_DIR='.*' moved to \S+\n", capsys.readouterr().out)


def test_prepare_output_dir_says_nothing_where_nothing_moved_and_names_the_key_of_a_kept_checkpoint(tmp_path, capsys):
    from dropblock_det.engine.output_dir import prepare_output_dir

    for eval_only, resume in ((False, False), (True, False), (True, True)):
        prepare_output_dir(str(tmp_path / "new"), "OUTPUT_DIR", eval_only, resume, False)
        assert capsys.readouterr().out == ""  # no "moved to None"
    # A --resume (into a mistyped folder) that trains from scratch says so, moving nothing.
    prepare_output_dir(str(tmp_path / "new"), "OUTPUT_DIR", False, True, False)
    assert capsys.readouterr().out == (f"--resume found no checkpoint in OUTPUT_DIR='{tmp_path / 'new'}': "
                                       "training starts at iteration 0\n")
    finished = tmp_path / "finished"
    finished.mkdir()
    (finished / "model_final.pth").write_bytes(b"PK final")
    (finished / "last_checkpoint").write_text("model_final.pth")
    prepare_output_dir(str(finished), "train.output_dir", False, True, True)
    assert re.fullmatch(rf"The finished run's model_final\.pth in train\.output_dir='{re.escape(str(finished))}', "
                        r"which this continued run replaces when it ends, is kept as \S+previous_runs/\S+/model_final\.pth\n",
                        capsys.readouterr().out)


def test_a_resume_keeps_the_finished_runs_model_final_only(tmp_path, monkeypatch):
    # model_final.pth is what the continued run replaces when it ends; a periodic checkpoint
    # is not. Without hard links (a file system without them) it is copied; a copy that
    # fails leaves no empty previous_runs/<time>/ behind.
    import errno
    import os
    import shutil

    from dropblock_det.engine.output_dir import keep_resumed_final_checkpoint

    (tmp_path / "model_0000004.pth").write_bytes(b"PK iteration 4")
    (tmp_path / "model_final.pth").write_bytes(b"PK final")
    (tmp_path / "last_checkpoint").write_text("model_0000004.pth")
    assert keep_resumed_final_checkpoint(str(tmp_path)) is None and not (tmp_path / "previous_runs").exists()
    (tmp_path / "last_checkpoint").write_text("model_final.pth")
    kept = Path(keep_resumed_final_checkpoint(str(tmp_path)))
    assert kept.parent.parent == tmp_path / "previous_runs" and kept.name == "model_final.pth"
    os.replace(tmp_path / "model_0000004.pth", tmp_path / "model_final.pth")  # as AtomicCheckpointer writes
    assert kept.read_bytes() == b"PK final"

    def no_links(source, destination):
        raise OSError(errno.EPERM, "Operation not permitted")

    monkeypatch.setattr(os, "link", no_links)
    copied = Path(keep_resumed_final_checkpoint(str(tmp_path)))
    assert copied != kept and copied.read_bytes() == b"PK iteration 4"

    def disk_full(source, destination, **kwargs):
        Path(destination).write_bytes(b"PK")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(shutil, "copy2", disk_full)
    with pytest.raises(OSError, match="No space left"):
        keep_resumed_final_checkpoint(str(tmp_path))
    assert sorted(p.parent for p in (tmp_path / "previous_runs").rglob("*.pth")) == sorted([kept.parent, copied.parent])
    assert len(list((tmp_path / "previous_runs").iterdir())) == 2


def test_a_file_the_new_run_reads_through_a_link_to_the_folder_is_copied_not_moved(tmp_path):
    # MODEL.WEIGHTS alias/model_final.pth, alias a link to OUTPUT_DIR: the same file.
    from dropblock_det.engine.output_dir import archive_previous_run

    out = tmp_path / "out"
    out.mkdir()
    (out / "model_final.pth").write_text("weights")
    (tmp_path / "alias").symlink_to(out)
    target = Path(archive_previous_run(str(out), [str(tmp_path / "alias" / "model_final.pth")]))
    assert (out / "model_final.pth").read_text() == "weights" == (target / "model_final.pth").read_text()


def test_a_claimed_output_dir_is_held_exclusively_for_the_process_and_claimed_again_freely(tmp_path):
    # The lock is what refuses a second run into the folder: held until the process ends,
    # exclusive (a shared one lets a second shared one in), and the same folder claimed
    # again by this process (by another path too) is no other run.
    from dropblock_det.engine.output_dir import claim_output_dir

    out = tmp_path / "out"
    claim_output_dir(str(out))
    (tmp_path / "alias").symlink_to(out)
    claim_output_dir(str(out))
    claim_output_dir(str(tmp_path / "alias"))
    _assert_held_against_another_open(out, "LOCK_SH")


def test_a_folder_another_run_holds_is_refused_naming_the_key_that_gave_it(tmp_path):
    import fcntl
    import os

    from dropblock_det.engine.output_dir import claim_output_dir

    out = tmp_path / "held"
    out.mkdir()
    fd = os.open(out, os.O_RDONLY)  # another open file description: as another run's lock
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        with pytest.raises(RuntimeError, match=rf"^train\.output_dir='{re.escape(str(out))}' is in use by another "
                                               r"run .*give this run another train\.output_dir$"):
            claim_output_dir(str(out), "train.output_dir")
    finally:
        os.close(fd)
    claim_output_dir(str(out), "train.output_dir")  # released with its holder


@pytest.mark.parametrize("inside", [False, True])
def test_an_output_folder_that_is_a_file_is_refused_naming_the_key(tmp_path, inside):
    from dropblock_det.engine.output_dir import claim_output_dir

    a_file = tmp_path / "results.txt"
    a_file.write_text("a user's file")
    output_dir = a_file / "run" if inside else a_file
    with pytest.raises(NotADirectoryError, match=rf"--output-dir='{re.escape(str(output_dir))}' is not a folder: "
                                                 rf"{re.escape(str(a_file))} is a file"):
        claim_output_dir(str(output_dir), "--output-dir")
    assert a_file.read_text() == "a user's file"


def test_prepare_output_dir_claims_the_folder_before_moving_anything(tmp_path):
    # The lock is what refuses a second run started into the folder; prepare_output_dir is
    # where the tools take it.
    from dropblock_det.engine.output_dir import prepare_output_dir

    out = tmp_path / "out"
    prepare_output_dir(str(out), "OUTPUT_DIR", eval_only=False, resume=False, resuming=False)
    _assert_held_against_another_open(out)


def test_a_dangling_link_on_the_path_is_what_a_folder_made_there_meets(tmp_path):
    # os.makedirs fails on a dangling link (it exists as a name): the error names the link,
    # not the folder above it.
    from dropblock_det.engine.output_dir import deepest_existing_path

    (tmp_path / "datasets").symlink_to(tmp_path / "gone")
    assert deepest_existing_path(str(tmp_path / "datasets" / "synthetic_det")) == str(tmp_path / "datasets")
    assert deepest_existing_path(str(tmp_path / "new" / "run")) == str(tmp_path)


def test_prepare_output_dir_copies_the_weights_a_fresh_run_starts_from_instead_of_moving_them(tmp_path, capsys):
    # MODEL.WEIGHTS out/model_final.pth for a fresh run into out/: moved aside, the run
    # would not find the weights it was checked to start from.
    from dropblock_det.engine.output_dir import prepare_output_dir

    out = tmp_path / "out"
    out.mkdir()
    (out / "model_final.pth").write_bytes(b"PK weights")
    (out / "metrics.json").write_text("{}")
    prepare_output_dir(str(out), "OUTPUT_DIR", eval_only=False, resume=False, resuming=False,
                       still_needed=[str(out / "model_final.pth")])
    (archived,) = (out / "previous_runs").iterdir()
    assert sorted(p.name for p in archived.iterdir()) == ["metrics.json", "model_final.pth"]
    assert (out / "model_final.pth").read_bytes() == b"PK weights" == (archived / "model_final.pth").read_bytes()
    assert "The earlier run in OUTPUT_DIR=" in capsys.readouterr().out


def test_prepare_output_dir_into_a_held_folder_is_refused_naming_its_key_before_anything_moves(tmp_path):
    # The lock is taken before the earlier run is moved: a second run started into the
    # folder moved the first run's files from under it before it was refused.
    import fcntl
    import os

    from dropblock_det.engine.output_dir import prepare_output_dir

    run = {"config.yaml": "config", "metrics.json": "{}", "model_final.pth": "weights"}
    for name, text in run.items():
        (tmp_path / name).write_text(text)
    fd = os.open(tmp_path, os.O_RDONLY)  # another open file description: as another run's lock
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        for eval_only in (False, True):
            with pytest.raises(RuntimeError, match=r"^train\.output_dir='.*' is in use by another run"):
                prepare_output_dir(str(tmp_path), "train.output_dir", eval_only, resume=False, resuming=False)
    finally:
        os.close(fd)
    assert {p.name: p.read_text() for p in tmp_path.iterdir()} == run


@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="counts this process's descriptors in /proc")
def test_a_refused_claim_leaves_no_descriptor_of_the_folder_open(tmp_path):
    # A tool that tries again (or a sweep that claims folder after folder) must not pile up
    # open descriptors of folders it did not get.
    import fcntl
    import os

    from dropblock_det.engine.output_dir import claim_output_dir

    fd = os.open(tmp_path, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        before = len(os.listdir("/proc/self/fd"))
        for _ in range(3):
            with pytest.raises(RuntimeError, match="is in use by another run"):
                claim_output_dir(str(tmp_path))
        assert len(os.listdir("/proc/self/fd")) == before
    finally:
        os.close(fd)


def test_only_the_main_process_claims_and_moves_and_every_process_waits_for_it(tmp_path, monkeypatch):
    # Under --num-gpus N each process calls prepare_output_dir: the others must neither move
    # the files (twice: the main process's previous_runs/ moved again) nor go on to write
    # their log.txt.rank<i> before the main process has moved the earlier run's aside.
    import fcntl
    import os

    import detectron2.utils.comm as comm

    from dropblock_det.engine.output_dir import prepare_output_dir

    waits = []
    monkeypatch.setattr(comm, "synchronize", lambda: waits.append(1))
    cases = [(False, False, False), (True, False, False), (False, True, False), (False, True, True)]
    for main in (False, True):
        monkeypatch.setattr(comm, "is_main_process", lambda: main)
        for i, (eval_only, resume, resuming) in enumerate(cases):
            out = tmp_path / f"{main}-{i}"
            out.mkdir()
            for name in ("config.yaml", "metrics.json", "model_final.pth"):
                (out / name).write_text(name)
            (out / "last_checkpoint").write_text("model_final.pth")
            waits.clear()
            prepare_output_dir(str(out), "OUTPUT_DIR", eval_only, resume, resuming)
            assert waits == [1], (main, eval_only, resume, resuming)
            assert (out / "previous_runs").exists() == main, (main, eval_only, resume, resuming)
            if not main:  # nor locked: the main process holds it
                fd = os.open(out, os.O_RDONLY)
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                finally:
                    os.close(fd)


def test_a_resumed_final_checkpoint_is_kept_as_a_hard_link_and_left_in_place(tmp_path):
    # A link costs no room (a copy of a detector's checkpoint is hundreds of MB), and the
    # resumed run still loads model_final.pth from where last_checkpoint names it.
    import os

    from dropblock_det.engine.output_dir import keep_resumed_final_checkpoint

    final = tmp_path / "model_final.pth"
    final.write_bytes(b"PK final")
    (tmp_path / "last_checkpoint").write_text("model_final.pth")
    kept = keep_resumed_final_checkpoint(str(tmp_path))
    assert final.read_bytes() == b"PK final"
    assert os.path.samefile(kept, final) and final.stat().st_nlink == 2


def test_an_output_dir_given_through_a_link_still_copies_the_file_the_new_run_reads(tmp_path):
    # OUTPUT_DIR alias (a link to out), MODEL.WEIGHTS out/model_final.pth: the same file,
    # which was moved aside, from under the run about to load it.
    from dropblock_det.engine.output_dir import archive_previous_run

    out = tmp_path / "out"
    out.mkdir()
    (out / "model_final.pth").write_text("weights")
    (out / "metrics.json").write_text("{}")
    (tmp_path / "alias").symlink_to(out)
    target = Path(archive_previous_run(str(tmp_path / "alias"), [str(out / "model_final.pth")]))
    assert (out / "model_final.pth").read_text() == "weights" == (target / "model_final.pth").read_text()
    assert not (out / "metrics.json").exists()


def test_a_needed_path_that_does_not_exist_keeps_nothing_of_the_earlier_run_in_place(tmp_path):
    # Only what the new run reads is copied: a path that is not there is read by no one, and
    # the folder it would be in moves as usual.
    from dropblock_det.engine.output_dir import archive_previous_run

    (tmp_path / "inference").mkdir()
    (tmp_path / "inference" / "x.json").write_text("[]")
    target = Path(archive_previous_run(str(tmp_path), [str(tmp_path / "inference" / "gone.pth")]))
    assert not (tmp_path / "inference").exists() and (target / "inference" / "x.json").read_text() == "[]"


def test_a_resumed_runs_earlier_config_is_kept_beside_its_final_checkpoint_only_when_it_changed(tmp_path, capsys):
    # A LazyConfig's config.yaml (and .pkl) as default_setup writes it again on a resume.
    from dropblock_det.engine.output_dir import prepare_output_dir, report_resumed_config

    (tmp_path / "model_final.pth").write_bytes(b"PK final")
    (tmp_path / "last_checkpoint").write_text("model_final.pth")
    for config in ("train:\n  max_iter: 20\n  output_dir: old\n", "train:\n  max_iter: 40\n  output_dir: old\n"):
        (tmp_path / "config.yaml").write_text("train:\n  max_iter: 20\n  output_dir: old\n")
        (tmp_path / "config.yaml.pkl").write_bytes(b"pickled")
        kept = prepare_output_dir(str(tmp_path), "train.output_dir", False, True, True)
        (tmp_path / "config.yaml").write_text(config.replace("old", str(tmp_path)))  # default_setup
        report_resumed_config(str(tmp_path), kept, "train.output_dir")
    first, second = sorted((tmp_path / "previous_runs").iterdir())
    # The same config but for its folder: only the finished run's checkpoint is kept.
    assert sorted(p.name for p in first.iterdir()) == ["model_final.pth"]
    assert sorted(p.name for p in second.iterdir()) == ["config.yaml", "config.yaml.pkl", "model_final.pth"]
    assert "max_iter: 20" in (second / "config.yaml").read_text()
    assert capsys.readouterr().out.endswith(
        f"(train.max_iter: 20 -> 40): that config.yaml is kept as {second / 'config.yaml'}\n")
    # One that is no YAML is kept all the same, without the keys.
    (tmp_path / "config.yaml").write_text("a: [")
    kept = prepare_output_dir(str(tmp_path), "OUTPUT_DIR", False, True, True)
    (tmp_path / "config.yaml").write_text("a: 1\n")
    report_resumed_config(str(tmp_path), kept, "OUTPUT_DIR")
    assert (Path(kept) / "config.yaml").read_text() == "a: ["
    assert capsys.readouterr().out.endswith(f"was trained with so far: that config.yaml is kept as {kept}/config.yaml\n")


# --- mutation run 52: behaviour the tests above left unpinned ---


def _write_files(folder, files) -> None:
    """`files` ({relative path: text}) written under `folder`."""
    for name, text in files.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_text(text)


def _tree(folder) -> dict:
    return {str(p.relative_to(folder)): p.read_text() for p in folder.rglob("*") if p.is_file()}


def _resume_with(folder, earlier: str, now: str, checkpoint: str = "model_0000004.pth"):
    """A --resume of the run in `folder` (last checkpoint `checkpoint`) whose config.yaml was
    `earlier` and which default_setup rewrites as `now`; returns where the earlier was copied."""
    from dropblock_det.engine.output_dir import prepare_output_dir, report_resumed_config

    _write_files(folder, {checkpoint: "PK", "last_checkpoint": checkpoint, "config.yaml": earlier})
    kept = prepare_output_dir(str(folder), "OUTPUT_DIR", False, True, True)
    if now is not None:
        (folder / "config.yaml").write_text(now)
    else:
        (folder / "config.yaml").unlink()
    report_resumed_config(str(folder), kept, "OUTPUT_DIR")
    return kept


def test_a_rename_refused_for_another_reason_than_another_file_system_is_not_copied(tmp_path, monkeypatch):
    # Only a rename across file systems (EXDEV) falls back to copy and delete: a file whose
    # rename is refused (EPERM) while it can still be copied and deleted stays, and so do the
    # ones before it. The reason is the error's own words, not its repr.
    import errno
    import os

    from dropblock_det.engine.output_dir import archive_previous_run

    run = {"config.yaml": "config", "last_checkpoint": "model_final.pth", "metrics.json": "{}"}
    _write_files(tmp_path, run)
    rename = os.rename

    def refused(source, destination):
        if os.fspath(source).endswith("metrics.json"):
            raise PermissionError(errno.EPERM, "Operation not permitted", os.fspath(source))
        return rename(source, destination)

    monkeypatch.setattr(os, "rename", refused)
    with pytest.raises(PermissionError, match=r"\(Operation not permitted\); nothing was moved\."):
        archive_previous_run(str(tmp_path))
    assert _tree(tmp_path) == run


def test_a_move_across_file_systems_copies_and_deletes_each_file(tmp_path, monkeypatch):
    import errno
    import os

    from dropblock_det.engine.output_dir import archive_previous_run

    run = {"config.yaml": "config", "metrics.json": "{}", "inference/results.json": "[]"}
    _write_files(tmp_path, run)
    rename = os.rename

    def other_disk(source, destination):
        if "previous_runs" in os.fspath(destination):
            raise OSError(errno.EXDEV, "Invalid cross-device link")
        return rename(source, destination)

    monkeypatch.setattr(os, "rename", other_disk)
    target = Path(archive_previous_run(str(tmp_path)))
    assert _tree(target) == run and sorted(p.name for p in tmp_path.iterdir()) == ["previous_runs"]


def test_a_file_that_cannot_be_put_back_is_named_and_kept_in_previous_runs(tmp_path, monkeypatch):
    # config.yaml moved, metrics.json refused, and config.yaml's way back refused too: it is
    # named as staying in previous_runs/<time>/, which is not removed with it inside.
    import errno
    import os

    from dropblock_det.engine.output_dir import archive_previous_run

    _write_files(tmp_path, {"config.yaml": "config", "metrics.json": "{}"})
    rename = os.rename

    def refused(source, destination):
        if os.fspath(source).endswith("metrics.json") or os.fspath(destination) == str(tmp_path / "config.yaml"):
            raise PermissionError(errno.EPERM, "Operation not permitted")
        return rename(source, destination)

    monkeypatch.setattr(os, "rename", refused)
    with pytest.raises(PermissionError, match=r"; config\.yaml stayed in (\S+previous_runs/\S+)\. ") as raised:
        archive_previous_run(str(tmp_path))
    (stayed,) = (tmp_path / "previous_runs").iterdir()
    assert str(stayed) in str(raised.value) and (stayed / "config.yaml").read_text() == "config"
    assert (tmp_path / "metrics.json").read_text() == "{}"


def test_a_copy_across_file_systems_that_deleted_part_of_its_source_keeps_the_copy(tmp_path, monkeypatch):
    # shutil.move copies a folder whole, then deletes it: a deletion that fails midway leaves
    # the source partly gone, and the whole copy in previous_runs/ is then what is left.
    import errno
    import os
    import shutil

    from dropblock_det.engine.output_dir import archive_previous_run

    _write_files(tmp_path, {"inference/a.json": "[1]", "inference/b.json": "[2]"})

    def cross_device(source, destination):
        raise OSError(errno.EXDEV, "Invalid cross-device link")

    def copied_then_deletion_failed(source, destination):
        shutil.copytree(source, destination)
        shutil.rmtree(source)
        raise OSError(errno.EIO, "Input/output error")

    monkeypatch.setattr(os, "rename", cross_device)
    monkeypatch.setattr(shutil, "move", copied_then_deletion_failed)
    with pytest.raises(OSError, match=r"\(Input/output error\); inference stayed in \S+previous_runs/"):
        archive_previous_run(str(tmp_path))
    (stayed,) = (tmp_path / "previous_runs").iterdir()
    assert _tree(stayed) == {"inference/a.json": "[1]", "inference/b.json": "[2]"}


def test_a_resume_with_an_unchanged_config_leaves_no_previous_runs_folder(tmp_path, capsys):
    # Resumed from a periodic checkpoint: the earlier config.yaml was copied into a new
    # previous_runs/<time>/, and nothing of it (nor of previous_runs/) is left where it did not
    # change, also where it is no YAML that safe_load reads (a LazyConfig's with a python tag).
    for config in ("a: 1\n", "a: !!python/name:os.getcwd ''\n"):
        folder = tmp_path / str(len(config))
        assert _resume_with(folder, config, config)
        assert not (folder / "previous_runs").exists() and capsys.readouterr().out == ""


def test_a_resumed_run_whose_folder_alone_changed_keeps_no_config_for_yacs_too(tmp_path, capsys):
    _resume_with(tmp_path, "OUTPUT_DIR: /old/place\nSOLVER:\n  MAX_ITER: 20\n",
                 f"OUTPUT_DIR: {tmp_path}\nSOLVER:\n  MAX_ITER: 20\n")
    assert not (tmp_path / "previous_runs").exists() and capsys.readouterr().out == ""


def test_a_resumed_runs_changed_keys_are_named_with_their_values_eight_at_most(tmp_path, capsys):
    earlier = "".join(f"K{i}: a{i}\n" for i in range(9))
    kept = _resume_with(tmp_path / "nine", earlier, earlier.replace(": a", ": b"))
    listed = "; ".join(f"K{i}: 'a{i}' -> 'b{i}'" for i in range(8))
    assert capsys.readouterr().out.endswith(f"so far ({listed}; and 1 more): that config.yaml is kept as {kept}/config.yaml\n")
    eight = earlier.replace("K8: a8\n", "")
    _resume_with(tmp_path / "eight", eight, eight.replace(": a", ": b"))
    assert f"so far ({listed}): that" in capsys.readouterr().out


def test_a_resumed_run_without_a_rewritten_config_keeps_the_earlier_one(tmp_path, capsys):
    kept = _resume_with(tmp_path, "a: 1\n", None)
    assert (Path(kept) / "config.yaml").read_text() == "a: 1\n"
    assert capsys.readouterr().out.endswith(f"so far: that config.yaml is kept as {kept}/config.yaml\n")


def test_a_resume_copies_no_config_from_a_run_without_its_config_yaml(tmp_path):
    from dropblock_det.engine.output_dir import prepare_output_dir

    _write_files(tmp_path, {"model_0000004.pth": "PK", "last_checkpoint": "model_0000004.pth",
                            "config.yaml.pkl": "pickled"})
    assert prepare_output_dir(str(tmp_path), "OUTPUT_DIR", False, True, True) is None
    assert not (tmp_path / "previous_runs").exists()


def test_a_config_copy_that_fails_beside_a_kept_final_checkpoint_keeps_that_checkpoint(tmp_path, monkeypatch):
    import shutil

    from dropblock_det.engine.output_dir import prepare_output_dir

    _write_files(tmp_path, {"model_final.pth": "PK final", "last_checkpoint": "model_final.pth", "config.yaml": "a: 1\n"})

    def disk_full(source, destination, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(shutil, "copy2", disk_full)
    with pytest.raises(OSError, match="No space left"):
        prepare_output_dir(str(tmp_path), "OUTPUT_DIR", False, True, True)
    (kept,) = (tmp_path / "previous_runs").iterdir()
    assert _tree(kept) == {"model_final.pth": "PK final"}


def test_report_resumed_config_does_nothing_on_the_other_processes(tmp_path, monkeypatch, capsys):
    import detectron2.utils.comm as comm

    from dropblock_det.engine.output_dir import report_resumed_config

    kept = tmp_path / "previous_runs" / "t"
    _write_files(tmp_path, {"config.yaml": "a: 1\n", "previous_runs/t/config.yaml": "a: 1\n"})
    monkeypatch.setattr(comm, "is_main_process", lambda: False)
    report_resumed_config(str(tmp_path), str(kept))
    assert (kept / "config.yaml").is_file() and capsys.readouterr().out == ""


# --- R-CNN journey (stop 52) ---
def test_a_resumed_lazyconfig_run_with_python_tags_names_its_changed_keys(tmp_path, capsys):
    # detectron2's R-CNN LazyConfigs save `ShapeSpec` objects (and a `block_class`) with python
    # tags, which safe_load refuses: a resume with train.max_iter=5 named no changed key.
    earlier = ("model:\n  roi_heads:\n    box_head:\n      input_shape: !!python/object:detectron2.layers."
               "shape_spec.ShapeSpec {channels: 64, height: 7, stride: null, width: 7}\n"
               "    res5: {block_class: !!python/name:detectron2.modeling.backbone.resnet.BottleneckBlock ''}\n"
               "train: {max_iter: 3}\n")
    now = (earlier.replace("max_iter: 3", "max_iter: 5").replace("channels: 64", "channels: 32")
           .replace("resnet.BottleneckBlock", "resnet.BasicBlock"))
    kept = _resume_with(tmp_path, earlier, now)
    assert capsys.readouterr().out.endswith(
        "so far (model.roi_heads.box_head.input_shape.channels: 64 -> 32; model.roi_heads.res5.block_class: "
        "'detectron2.modeling.backbone.resnet.BottleneckBlock' -> 'detectron2.modeling.backbone.resnet.BasicBlock'; "
        f"train.max_iter: 3 -> 5): that config.yaml is kept as {kept}/config.yaml\n")


# --- coverage audit 55 ---
def test_a_config_copy_that_fails_on_a_resume_from_a_periodic_checkpoint_leaves_no_empty_earlier_run(
        tmp_path, monkeypatch):
    # No model_final.pth to keep: the config's copy makes previous_runs/<time>/ itself, and a
    # failed copy must not leave it behind, empty, to be read as an earlier run.
    import shutil

    from dropblock_det.engine.output_dir import prepare_output_dir

    _write_files(tmp_path, {"model_0000004.pth": "PK", "last_checkpoint": "model_0000004.pth",
                            "config.yaml": "a: 1\n", "config.yaml.pkl": "pickled"})

    def disk_full(source, destination, **kwargs):
        Path(destination).write_text("half")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(shutil, "copy2", disk_full)
    with pytest.raises(OSError, match="No space left"):
        prepare_output_dir(str(tmp_path), "OUTPUT_DIR", False, True, True)
    assert list((tmp_path / "previous_runs").iterdir()) == []
    assert (tmp_path / "config.yaml").read_text() == "a: 1\n"
