"""Checkpoints (dropblock_det/engine/checkpoint.py): weights fetched and read as the trainer
reads them, strict loading that names each mismatch, atomic writes, last_checkpoint."""
import re
from pathlib import Path

import pytest
import torch

from conftest import synthetic_cfg


def test_weights_given_as_urls_are_fetched_into_the_cache_the_checkpointer_reads(served, tmp_path):
    from detectron2.checkpoint import DetectionCheckpointer

    from dropblock_det.engine.checkpoint import (
        check_eval_checkpoint,
        check_weights_path,
        CheckpointMismatchError,
        load_checkpoint_strict,
        local_checkpoint,
    )

    url, folder = served
    model = torch.nn.Sequential(torch.nn.Linear(2, 2))
    DetectionCheckpointer(model, save_dir=str(folder)).save("w")
    local = local_checkpoint("MODEL.WEIGHTS", f"{url}/w.pth")
    assert Path(local).is_file() and Path(local).is_relative_to(tmp_path / "cache")
    check_weights_path(synthetic_cfg("MODEL.WEIGHTS", f"{url}/w.pth"))
    check_weights_path(synthetic_cfg("MODEL.WEIGHTS", ""))
    # A URL that cannot be fetched failed when the trainer loaded it, after the data loader
    # was built and config.yaml written.
    with pytest.raises(RuntimeError, match=r"^MODEL\.WEIGHTS='http://127\.0\.0\.1:\d+/gone\.pth' cannot be "
                                           r"fetched \(HTTPError: HTTP Error 404"):
        check_weights_path(synthetic_cfg("MODEL.WEIGHTS", f"{url}/gone.pth"))
    with pytest.raises(FileNotFoundError, match=r"MODEL\.WEIGHTS='no/such/model\.pth'"):
        check_weights_path(synthetic_cfg("MODEL.WEIGHTS", "no/such/model.pth"))
    # An --eval-only checkpoint given by URL is checked against the model as a local one is
    # (it was left to the load, after the evaluation's folder was claimed).
    check_eval_checkpoint(model, f"{url}/w.pth", "MODEL.WEIGHTS")
    with pytest.raises(CheckpointMismatchError, match=r"^MODEL\.WEIGHTS='http://127\.0\.0\.1:\d+/w\.pth': checkpoint '.*cache.*w\.pth' does not match"):
        check_eval_checkpoint(torch.nn.Sequential(torch.nn.Linear(3, 2)), f"{url}/w.pth", "MODEL.WEIGHTS")
    # The evaluation's strict load reads a URL too (it is fetched, not refused as a missing file).
    load_checkpoint_strict(model, f"{url}/w.pth")


@pytest.mark.parametrize("change, match", [
    ("extra", r"not in model: extra\.weight"),
    ("missing", r"missing in checkpoint: 0\.bias"),
    ("shape", r"shape mismatch: 0\.weight \(checkpoint \(3, 2\) vs model \(2, 2\)\)"),
])
def test_strict_checkpoint_loading_names_every_kind_of_mismatch(tmp_path, change, match):
    from dropblock_det.engine.checkpoint import CheckpointMismatchError, load_checkpoint_strict

    model = torch.nn.Sequential(torch.nn.Linear(2, 2))
    state = dict(model.state_dict())
    load_checkpoint_strict(model, _save(tmp_path / "same.pth", state))  # a matching one loads
    if change == "extra":
        state["extra.weight"] = torch.zeros(1)
    elif change == "missing":
        del state["0.bias"]
    else:
        state["0.weight"] = torch.zeros(3, 2)
    with pytest.raises(CheckpointMismatchError, match=match):
        load_checkpoint_strict(model, _save(tmp_path / "bad.pth", state))


def _save(path, state):
    torch.save({"model": state}, path)
    return str(path)


def test_a_checkpoint_write_interrupted_by_ctrl_c_leaves_the_earlier_checkpoint_and_no_partial_file(
        tmp_path, monkeypatch):
    from dropblock_det.engine.checkpoint import AtomicCheckpointer

    checkpointer = AtomicCheckpointer(torch.nn.Linear(2, 2), save_dir=str(tmp_path))
    checkpointer.save("model_final", iteration=2)
    weights = (tmp_path / "model_final.pth").read_bytes()

    written = []

    def interrupted(obj, f, *args, **kwargs):
        written.append(Path(f.name).name)
        f.write(weights[:100])
        raise KeyboardInterrupt

    monkeypatch.setattr(torch, "save", interrupted)
    with pytest.raises(KeyboardInterrupt):
        checkpointer.save("model_final", iteration=4)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last_checkpoint", "model_final.pth"]
    assert (tmp_path / "model_final.pth").read_bytes() == weights
    # A write killed outright (no cleanup) leaves its file under a name the next fresh run
    # moves aside with the run (output_dir.RUN_FILES), not one left behind in the folder.
    import fnmatch

    from dropblock_det.engine.output_dir import RUN_FILES

    assert written == ["model_final.pth.tmp"]
    assert any(fnmatch.fnmatchcase(written[0], pattern) for pattern in RUN_FILES)


@pytest.mark.parametrize("content, match", [
    (b"MODEL:\n  WEIGHTS: ''\n", r"'.*weights' is not a checkpoint: its first bytes b'MODE' are neither"),
    (b"\xff\xd8\xff\xe0JFIF", r"'.*weights' is not a checkpoint: its first bytes b'\\xff\\xd8\\xff\\xe0'"),
    (None, r"checkpoint '.*weights' cannot be read, it is truncated or corrupt"),  # a partial torch.save
    (b"", r"checkpoint '.*weights' cannot be read, it is truncated or corrupt"),  # a copy that wrote nothing
])
def test_weights_that_are_no_checkpoint_are_told_from_a_damaged_one(tmp_path, content, match):
    import io

    from dropblock_det.engine.checkpoint import read_checkpoint

    if content is None:
        buffer = io.BytesIO()
        torch.save({"model": {"w": torch.zeros(1000)}}, buffer)
        content = buffer.getvalue()[:200]
    path = tmp_path / "weights"
    path.write_bytes(content)
    with pytest.raises(RuntimeError, match=match):
        read_checkpoint(str(path))


def test_an_unreadable_checkpoint_to_load_is_named_with_the_key_or_flag_that_gives_it(tmp_path):
    # --eval-only's MODEL.WEIGHTS and --resume's checkpoint were refused naming the file alone,
    # where a training's unreadable MODEL.WEIGHTS names the key too.
    from dropblock_det.engine.checkpoint import check_checkpoint_fits, check_eval_checkpoint

    path = tmp_path / "model.pth"
    path.write_bytes(b"garbage")
    with pytest.raises(RuntimeError, match=r"^MODEL\.WEIGHTS: '.*model\.pth' is not a checkpoint: its first bytes"):
        check_eval_checkpoint(torch.nn.Linear(1, 1), str(path), "MODEL.WEIGHTS")
    path.write_bytes(b"")
    with pytest.raises(RuntimeError, match=r"^--resume: checkpoint '.*model\.pth' cannot be read, it is truncated"):
        check_checkpoint_fits(torch.nn.Linear(1, 1), str(path), "--resume")


def test_a_file_that_is_no_checkpoint_is_not_said_to_load_with_weights_only_false(tmp_path):
    # torch's weights_only refusal opens with "Re-running torch.load with weights_only set to
    # False will likely succeed", which the refusal quoted for a file of any bytes, where it
    # fails too: its own error ("Unsupported operand ...") is what is wrong with the file.
    from dropblock_det.engine.checkpoint import read_checkpoint

    path = tmp_path / "weights.pth"
    path.write_bytes(b"garbage")
    with pytest.raises(RuntimeError, match=r"is not a checkpoint: its first bytes b'garb' .*\(UnpicklingError: "
                                           r"Unsupported operand") as refused:
        read_checkpoint(str(path))
    assert "will likely succeed" not in str(refused.value)


def test_starting_weights_are_read_as_the_trainer_reads_them(tmp_path):
    # A detectron2 model-zoo .pkl (a pickle of numpy arrays, which torch.load refuses) is
    # read as detectron2 reads it; a damaged one, and a damaged .pth, are named with the key.
    import pickle

    import numpy as np

    from dropblock_det.engine.checkpoint import check_weights_readable

    zoo = tmp_path / "R-18.pkl"
    zoo.write_bytes(pickle.dumps({"model": {"stem.conv1.weight": np.zeros((4, 3, 7, 7), np.float32)},
                                  "__author__": "test"}))
    check_weights_readable("MODEL.WEIGHTS", str(zoo))
    (tmp_path / "partial.pkl").write_bytes(zoo.read_bytes()[:60])
    with pytest.raises(RuntimeError, match=r"^MODEL\.WEIGHTS='.*partial\.pkl': checkpoint .* cannot be read"):
        check_weights_readable("MODEL.WEIGHTS", str(tmp_path / "partial.pkl"))
    torch.save({"model": {"w": torch.zeros(1000)}}, tmp_path / "whole.pth")
    check_weights_readable("train.init_checkpoint", str(tmp_path / "whole.pth"))
    (tmp_path / "partial.pth").write_bytes((tmp_path / "whole.pth").read_bytes()[:200])
    with pytest.raises(RuntimeError, match=r"^train\.init_checkpoint='.*partial\.pth': checkpoint .* truncated"):
        check_weights_readable("train.init_checkpoint", str(tmp_path / "partial.pth"))
    with pytest.raises(FileNotFoundError, match=r"^MODEL\.WEIGHTS='.*gone\.pth' does not exist"):
        check_weights_readable("MODEL.WEIGHTS", str(tmp_path / "gone.pth"))


def test_a_last_checkpoint_file_naming_a_missing_or_no_file_is_refused_naming_it(tmp_path):
    # A resumed run failed on it with "cannot be read, it is truncated or corrupt
    # (FileNotFoundError)", or, for an empty file, named the folder (IsADirectoryError).
    from dropblock_det.engine.checkpoint import last_checkpoint

    assert last_checkpoint(str(tmp_path)) == ""  # no last_checkpoint: a fresh run
    (tmp_path / "model_0000009.pth").write_bytes(b"PK")
    (tmp_path / "last_checkpoint").write_text("model_0000009.pth")
    assert last_checkpoint(str(tmp_path)) == str(tmp_path / "model_0000009.pth")
    (tmp_path / "last_checkpoint").write_text("model_final.pth")
    with pytest.raises(FileNotFoundError, match=r"last_checkpoint names 'model_final.pth', which is not a file "
                                                r"there: .*moved or deleted"):
        last_checkpoint(str(tmp_path))
    (tmp_path / "last_checkpoint").write_text("")
    with pytest.raises(FileNotFoundError, match=r"last_checkpoint is empty"):
        last_checkpoint(str(tmp_path))


def test_checkpoint_checks_take_a_distributed_models_prefix_and_name_a_folder_given_as_weights(tmp_path):
    # detectron2's checkpointer strips DistributedDataParallel's "module." when it loads.
    from dropblock_det.engine.checkpoint import local_checkpoint, state_dict_problems

    model = torch.nn.Sequential(torch.nn.Linear(2, 2))
    assert state_dict_problems(model, {f"module.{k}": v for k, v in model.state_dict().items()}) == []
    assert state_dict_problems(model, {"module.0.weight": torch.zeros(2, 2)}) == ["missing in checkpoint: 0.bias"]
    # A run's folder for its checkpoint: named as a folder, not read as a damaged checkpoint.
    with pytest.raises(FileNotFoundError, match=r"^MODEL\.WEIGHTS='.*' is a folder, not a checkpoint file: give the "
                                                r"checkpoint in it \(e\.g\. a run's model_final\.pth\)$"):
        local_checkpoint("MODEL.WEIGHTS", str(tmp_path))


def test_strict_loading_names_weights_that_are_missing_or_empty(tmp_path):
    # fvcore asserted "Checkpoint ... not found!" (AssertionError).
    from dropblock_det.engine.checkpoint import load_checkpoint_strict

    model = torch.nn.Sequential(torch.nn.Linear(2, 2))
    with pytest.raises(FileNotFoundError, match=r"^MODEL\.WEIGHTS is empty: give the checkpoint to evaluate$"):
        load_checkpoint_strict(model, "")
    with pytest.raises(FileNotFoundError, match=r"^checkpoint MODEL\.WEIGHTS='.*gone\.pth' does not exist$"):
        load_checkpoint_strict(model, str(tmp_path / "gone.pth"))


def test_an_evaluations_weights_given_as_a_folder_are_named_as_one(tmp_path):
    # lazyconfig_train_net --eval-only train.init_checkpoint=<the run's folder> was told the
    # folder "does not exist" (its run check reads no weights for an evaluation).
    from dropblock_det.engine.checkpoint import check_eval_checkpoint

    with pytest.raises(FileNotFoundError, match=rf"^train\.init_checkpoint='{re.escape(str(tmp_path))}' is a folder, "
                                                r"not a checkpoint file: give the checkpoint in it"):
        check_eval_checkpoint(None, str(tmp_path), "train.init_checkpoint")
    with pytest.raises(FileNotFoundError, match=r"^MODEL\.WEIGHTS='.*gone\.pth' does not exist$"):
        check_eval_checkpoint(None, str(tmp_path / "gone.pth"), "MODEL.WEIGHTS")


def test_a_last_checkpoint_that_is_no_text_file_is_refused_naming_it(tmp_path):
    # fvcore reads it as text: a checkpoint copied over it (the name suggests one) failed a
    # --resume with a bare UnicodeDecodeError, a folder of that name with IsADirectoryError.
    import io

    from dropblock_det.engine.checkpoint import last_checkpoint

    buffer = io.BytesIO()
    torch.save({"model": {"w": torch.zeros(3)}}, buffer)
    marker = tmp_path / "last_checkpoint"
    marker.write_bytes(buffer.getvalue())
    match = r"last_checkpoint is not the text file detectron2 writes there, naming the checkpoint to resume from"
    with pytest.raises(ValueError, match=match):
        last_checkpoint(str(tmp_path))
    marker.unlink()
    marker.mkdir()
    with pytest.raises(ValueError, match=match):
        last_checkpoint(str(tmp_path))


def test_an_evaluations_model_zoo_pkl_weights_are_checked_as_the_strict_load_reads_them(tmp_path):
    # --eval-only MODEL.WEIGHTS <detectron2 model-zoo .pkl> (a pickle of numpy arrays, which
    # torch.load refuses) was refused before the run as "truncated or corrupt", though the
    # strict load that follows reads it.
    import pickle

    from dropblock_det.engine.checkpoint import CheckpointMismatchError, check_eval_checkpoint, load_checkpoint_strict

    model = torch.nn.Sequential(torch.nn.Linear(3, 2))
    zoo = tmp_path / "model_final.pkl"
    zoo.write_bytes(pickle.dumps({"model": {k: v.numpy() for k, v in model.state_dict().items()},
                                  "__author__": "Detectron2 Model Zoo"}))
    check_eval_checkpoint(model, str(zoo), "MODEL.WEIGHTS")
    load_checkpoint_strict(model, str(zoo))
    other = torch.nn.Sequential(torch.nn.Linear(3, 4))
    with pytest.raises(CheckpointMismatchError, match=r"^MODEL\.WEIGHTS: checkpoint .*model_final\.pkl.* does not "
                                                      r"match .*shape mismatch: 0\.weight \(checkpoint \(2, 3\) vs model \(4, 3\)\)"):
        check_eval_checkpoint(other, str(zoo), "MODEL.WEIGHTS")


def test_pycls_pyth_weights_are_read_as_detectron2_reads_them(tmp_path):
    # A pycls .pyth keeps its weights under "model_state", which detectron2's checkpointer
    # takes out (torch.load would leave them there: every key missing from the model).
    from dropblock_det.engine.checkpoint import check_eval_checkpoint, check_weights_readable, read_checkpoint

    model = torch.nn.Sequential(torch.nn.Linear(3, 2))
    pyth = tmp_path / "RegNetX-400MF.pyth"
    torch.save({"model_state": model.state_dict(), "epoch": 100}, pyth)
    assert sorted(read_checkpoint(str(pyth))["model"]) == ["0.bias", "0.weight"]
    check_weights_readable("MODEL.WEIGHTS", str(pyth))
    check_eval_checkpoint(model, str(pyth), "MODEL.WEIGHTS")


def test_whole_files_detectron2_refuses_are_not_called_truncated_or_corrupt(tmp_path):
    # A readable file whose content detectron2's checkpointer refuses was blamed as
    # "truncated or corrupt": a .pth of numpy arrays (torch.load's weights_only refusal), a
    # .pyth without pycls' "model_state", a .pkl of a list; a .pth of a list was even taken
    # as weights and failed later, in detectron2's load.
    import pickle

    import numpy as np

    from dropblock_det.engine.checkpoint import check_weights_readable, read_checkpoint

    torch.save({"model": {"w": np.zeros(3)}}, tmp_path / "numpy.pth")
    with pytest.raises(RuntimeError, match=r"^MODEL\.WEIGHTS='.*numpy\.pth': checkpoint .* holds objects other "
                                           r"than tensors, which torch\.load refuses with weights_only=True .*"
                                           r"Unsupported global: GLOBAL numpy.*Save its weights as tensors"):
        check_weights_readable("MODEL.WEIGHTS", str(tmp_path / "numpy.pth"))
    torch.save({"epoch": 3}, tmp_path / "no_state.pyth")
    pickle.dump([1, 2], open(tmp_path / "list.pkl", "wb"))
    for name, reason in [("no_state.pyth", "AssertionError: .*must contain 'model_state'"),
                         ("list.pkl", "AttributeError: 'list' object")]:
        with pytest.raises(RuntimeError, match=rf"^'.*{name}' was read but is not a checkpoint detectron2 takes "
                                               rf"\({reason}"):
            read_checkpoint(str(tmp_path / name))
    torch.save([1, 2], tmp_path / "list.pth")
    with pytest.raises(RuntimeError, match=r"^MODEL\.WEIGHTS='.*list\.pth': '.*list\.pth' is not a checkpoint: "
                                           r"it holds a list, where a dict of weights"):
        check_weights_readable("MODEL.WEIGHTS", str(tmp_path / "list.pth"))


def test_model_zoo_weights_are_left_to_detectron2s_path_manager_not_refused_as_missing_files():
    # detectron2:// is how the stock configs name the ImageNet weights: a tool that only
    # writes a config (fetch=False) leaves it alone, as it does an https:// URL.
    from dropblock_det.engine.checkpoint import check_weights_path, is_url

    for url in ("detectron2://ImageNetPretrained/MSRA/R-50.pkl", "https://example.com/model_final.pth"):
        assert is_url(url)
        check_weights_path(synthetic_cfg("MODEL.WEIGHTS", url), fetch=False)
    assert not is_url("output/model_final.pth")


def test_a_url_fetched_to_something_that_is_no_file_is_refused_naming_the_key(tmp_path):
    # A path handler of the user's own may give a folder for a URL: the load failed on it later.
    from detectron2.utils.file_io import PathManager
    from iopath.common.file_io import PathHandler

    from dropblock_det.engine.checkpoint import local_checkpoint

    class FolderHandler(PathHandler):
        def _get_supported_prefixes(self):
            return ["dropblock-test-folder://"]

        def _get_local_path(self, path, **kwargs):
            return str(tmp_path)

    if "dropblock-test-folder://" not in PathManager._path_handlers:
        PathManager.register_handler(FolderHandler())
    with pytest.raises(FileNotFoundError, match=r"^MODEL\.WEIGHTS='dropblock-test-folder://w\.pth' was fetched to "
                                                r"'.*', which is not a file$"):
        local_checkpoint("MODEL.WEIGHTS", "dropblock-test-folder://w.pth")


def test_a_bare_state_dict_is_checked_as_the_checkpointer_loads_it_and_extra_keys_are_named(tmp_path):
    # torch.save(model.state_dict()) (no "model" key): detectron2's checkpointer loads it as
    # the weights, so an evaluation's check reads it so too; a key the model lacks is named
    # before anything is written (the strict load refused it after the folder was claimed).
    from dropblock_det.engine.checkpoint import (
        CheckpointMismatchError,
        check_eval_checkpoint,
        read_checkpoint,
        state_dict_problems,
    )

    model = torch.nn.Sequential(torch.nn.Linear(2, 2))
    torch.save(model.state_dict(), tmp_path / "bare.pth")
    assert sorted(read_checkpoint(str(tmp_path / "bare.pth"))["model"]) == ["0.bias", "0.weight"]
    check_eval_checkpoint(model, str(tmp_path / "bare.pth"), "MODEL.WEIGHTS")
    extra = {**model.state_dict(), "head.weight": torch.zeros(1)}
    assert state_dict_problems(model, extra) == ["not in model: head.weight"]
    torch.save(extra, tmp_path / "extra.pth")
    with pytest.raises(CheckpointMismatchError, match=r"^MODEL\.WEIGHTS: checkpoint '.*extra\.pth' does not match "
                                                      r"the model built from the config: not in model: head\.weight$"):
        check_eval_checkpoint(model, str(tmp_path / "extra.pth"), "MODEL.WEIGHTS")


def test_a_resume_judges_the_optimizers_base_lr_not_the_lr_its_warm_up_has_reached(tmp_path):
    # Both the saved optimizer and the config's carry an LR scheduler: a group's "lr" is the
    # schedule's value at that step (0.001 x during the warm-up), its "initial_lr" the base
    # the config sets. A plain resume in the warm-up must not be refused.
    from dropblock_det.engine.checkpoint import check_resume_optimizer
    from dropblock_det.solver import WarmupPolyLR

    def optimizer(lr, nesterov=False):
        sgd = torch.optim.SGD(torch.nn.Linear(2, 2).parameters(), lr=lr, momentum=0.9, nesterov=nesterov)
        WarmupPolyLR(sgd, max_iters=100, warmup_factor=0.001, warmup_iters=10)
        return sgd

    saved = {"trainer": {"optimizer": optimizer(0.02).state_dict()}}
    assert saved["trainer"]["optimizer"]["param_groups"][0]["lr"] == pytest.approx(0.02 * 0.001)
    check_resume_optimizer(saved, optimizer(0.02), "model_0000004.pth")
    with pytest.raises(ValueError, match=r"^--resume: checkpoint 'model_0000004\.pth' holds an optimizer with "
                                         r"lr 0\.02 \(this config: 0\.01\)"):
        check_resume_optimizer(saved, optimizer(0.01), "model_0000004.pth")
    # SOLVER.NESTEROV too is restored from the checkpoint: a change would not take effect.
    with pytest.raises(ValueError, match=r"holds an optimizer with nesterov False \(this config: True\)"):
        check_resume_optimizer(saved, optimizer(0.02, nesterov=True), "model_0000004.pth")


def test_a_resume_check_names_its_advice_and_takes_a_checkpoint_without_an_iteration(tmp_path):
    # A checkpoint put in place by hand (a bare state_dict) has no "iteration": nothing to
    # compare with the max_iter, and no TypeError from comparing it.
    from dropblock_det.engine.checkpoint import CheckpointMismatchError, check_checkpoint_fits

    model = torch.nn.Sequential(torch.nn.Linear(2, 2))
    torch.save(model.state_dict(), tmp_path / "model_final.pth")
    checkpoint = check_checkpoint_fits(model, str(tmp_path / "model_final.pth"), "--resume",
                                       max_iter=("SOLVER.MAX_ITER", 10))
    assert sorted(checkpoint["model"]) == ["0.bias", "0.weight"]
    with pytest.raises(CheckpointMismatchError, match=r"^--resume: checkpoint '.*model_final\.pth' does not match the "
                                                      r"model built from the config \(resume with the run's config\): "
                                                      r"shape mismatch: 0\.weight"):
        check_checkpoint_fits(torch.nn.Sequential(torch.nn.Linear(3, 2)), str(tmp_path / "model_final.pth"),
                              "--resume", "resume with the run's config")


def test_a_checkpoint_is_flushed_and_synced_under_a_temporary_name_then_renamed_onto_its_file(tmp_path, monkeypatch):
    # A power cut after the rename must find the whole new file (flushed and synced before
    # it), and a stop before it the old one: the rename, not a copy, is the one step that
    # replaces it (the file on disk is the very one that was synced).
    import os

    from dropblock_det.engine.checkpoint import AtomicCheckpointer

    synced = []
    real_fsync = os.fsync

    def fsync(fd):
        status = os.fstat(fd)
        synced.append((status.st_ino, status.st_size, sorted(p.name for p in tmp_path.iterdir())))
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    AtomicCheckpointer(torch.nn.Linear(2, 2), save_dir=str(tmp_path)).save("model_final", iteration=2)
    final, tag = tmp_path / "model_final.pth", tmp_path / "last_checkpoint"
    assert [(inode, size) for inode, size, _ in synced] == [(final.stat().st_ino, final.stat().st_size),
                                                            (tag.stat().st_ino, tag.stat().st_size)]
    assert [names for _, _, names in synced] == [["model_final.pth.tmp"], ["last_checkpoint.tmp", "model_final.pth"]]


def test_a_checkpoint_written_to_a_url_is_left_to_the_path_manager(tmp_path):
    # SAVE to s3:// (a path handler of the user's own) is the wrapped path manager's: no
    # local "s3:/..." temporary file is made beside the working folder.
    import io

    from dropblock_det.engine.checkpoint import _ReplacingWrites

    opened = []

    class Recording:
        def open(self, path, mode="r", **kwargs):
            opened.append((path, mode))
            return io.BytesIO()

    with _ReplacingWrites(Recording()).open("s3://bucket/run/model_final.pth", "wb") as f:
        f.write(b"PK")
    assert opened == [("s3://bucket/run/model_final.pth", "wb")]


def test_strict_loading_names_a_damaged_local_checkpoint_and_refuses_a_folder(tmp_path):
    # The evaluation's strict load of a truncated local file named no file (torch's bare
    # error); a run's folder given for its checkpoint failed in fvcore's assert.
    from dropblock_det.engine.checkpoint import load_checkpoint_strict

    model = torch.nn.Sequential(torch.nn.Linear(2, 2))
    whole = Path(_save(tmp_path / "whole.pth", model.state_dict()))
    (tmp_path / "partial.pth").write_bytes(whole.read_bytes()[:200])
    with pytest.raises(RuntimeError, match=r"^checkpoint '.*partial\.pth' cannot be read, it is truncated or corrupt"):
        load_checkpoint_strict(model, str(tmp_path / "partial.pth"))
    with pytest.raises(FileNotFoundError, match=rf"^checkpoint MODEL\.WEIGHTS='{re.escape(str(tmp_path))}'"):
        load_checkpoint_strict(model, str(tmp_path))


def test_a_local_path_with_a_double_slash_is_no_url():
    # "output//model_final.pth" (a path joined from "output/") is a local file: checked, not
    # left to detectron2's path manager.
    from dropblock_det.engine.checkpoint import is_url, local_checkpoint

    assert not is_url("output//model_final.pth") and not is_url("/abs//model_final.pth")
    with pytest.raises(FileNotFoundError, match=r"^MODEL\.WEIGHTS='no//such\.pth' does not exist$"):
        local_checkpoint("MODEL.WEIGHTS", "no//such.pth")


def test_a_pickle_detectron2_reads_but_cannot_take_is_not_called_damaged(tmp_path):
    # A .pkl of a number: detectron2's reader fails with a TypeError on the whole file, no
    # damage to it.
    import pickle

    from dropblock_det.engine.checkpoint import read_checkpoint

    (tmp_path / "number.pkl").write_bytes(pickle.dumps(5))
    with pytest.raises(RuntimeError, match=r"^'.*number\.pkl' was read but is not a checkpoint detectron2 takes "
                                           r"\(TypeError: "):
        read_checkpoint(str(tmp_path / "number.pkl"))


def test_a_resume_takes_an_lr_equal_up_to_rounding_and_names_the_first_group_that_differs():
    # BASE_LR 0.1 scaled 3x by the run is 0.30000000000000004: the config's 0.3 is no change.
    # Where several groups differ, the first (the weights, before the biases) is named.
    from dropblock_det.engine.checkpoint import check_resume_optimizer

    def optimizer(*lrs):
        layers = [torch.nn.Linear(2, 2) for _ in lrs]
        sgd = torch.optim.SGD([{"params": layer.parameters(), "lr": lr} for layer, lr in zip(layers, lrs)],
                              lr=lrs[0], momentum=0.9)
        torch.optim.lr_scheduler.LambdaLR(sgd, lambda step: 1.0)  # sets each group's initial_lr, as detectron2's
        return sgd

    saved = {"trainer": {"optimizer": optimizer(0.1 * 3, 0.2).state_dict()}}
    check_resume_optimizer(saved, optimizer(0.3, 0.2), "model_0000004.pth")
    with pytest.raises(ValueError, match=r"holds an optimizer with lr 0\.30+4 \(this config: 0\.25\): "):
        check_resume_optimizer(saved, optimizer(0.25, 0.5), "model_0000004.pth")


def test_a_resume_with_another_optimizer_is_refused_naming_both(tmp_path):
    # Groups, lr and weight decay alike, SGD's state passed the check; AdamW's load_state_dict
    # of it failed (KeyError: 'step') after the data loader was built.
    from dropblock_det.engine.checkpoint import check_resume_optimizer

    layer = torch.nn.Linear(2, 2)
    sgd = torch.optim.SGD(layer.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-4)
    layer(torch.ones(1, 2)).sum().backward()
    sgd.step()
    saved = {"trainer": {"optimizer": sgd.state_dict()}}
    adamw = torch.optim.AdamW(layer.parameters(), lr=0.1, weight_decay=1e-4)
    with pytest.raises(ValueError, match=r"^--resume: checkpoint 'model_0000004\.pth' holds the state of another "
                                         r"optimizer than this config's AdamW \(its settings: momentum, dampening, "
                                         r"nesterov; AdamW's: betas, amsgrad\)\. Resume with the run's optimizer"):
        check_resume_optimizer(saved, adamw, "model_0000004.pth")
    # The same kind, torch's own settings aside, is judged by its values as before.
    check_resume_optimizer(saved, torch.optim.SGD(layer.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-4),
                           "model_0000004.pth")
    with pytest.raises(KeyError, match="step"):  # what the resume would do, once the data loader is built
        adamw.load_state_dict(sgd.state_dict())
        adamw.step()


def test_a_resume_is_refused_from_the_checkpoint_of_the_last_iteration_and_taken_before_it(tmp_path):
    # A finished run's model_final is saved at iteration max_iter - 1: detectron2 resumes at
    # the checkpoint's iteration + 1, so it trains nothing; one iteration earlier trains one.
    from dropblock_det.engine.checkpoint import check_checkpoint_fits

    model = torch.nn.Sequential(torch.nn.Linear(2, 2))
    for iteration, told in ((3, None), (4, "all"), (9, "more than")):
        path = tmp_path / f"model_{iteration}.pth"
        torch.save({"model": model.state_dict(), "iteration": iteration}, path)
        if told is None:
            check_checkpoint_fits(model, str(path), "--resume", max_iter=("SOLVER.MAX_ITER", 5))
            continue
        with pytest.raises(ValueError, match=rf"^--resume: checkpoint '.*' has trained {iteration + 1} iterations, "
                                             rf"{told} SOLVER\.MAX_ITER=5 asks for: nothing would be trained"):
            check_checkpoint_fits(model, str(path), "--resume", max_iter=("SOLVER.MAX_ITER", 5))


def test_a_resume_with_an_optimizer_of_as_many_kind_settings_is_refused_naming_both():
    # SGD's momentum, dampening, nesterov against RMSprop's momentum, alpha, centered: as many
    # settings, of another optimizer; the kind is told by the names, not their count.
    from dropblock_det.engine.checkpoint import check_resume_optimizer

    layer = torch.nn.Linear(2, 2)
    sgd = torch.optim.SGD(layer.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-4)
    saved = {"trainer": {"optimizer": sgd.state_dict()}}
    rmsprop = torch.optim.RMSprop(layer.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-4)
    with pytest.raises(ValueError, match=r"another optimizer than this config's RMSprop \(its settings: momentum, "
                                         r"dampening, nesterov; RMSprop's: momentum, alpha, centered\)"):
        check_resume_optimizer(saved, rmsprop, "model_0000004.pth")


def test_a_checkpoint_refusal_keeps_torchs_error_as_its_cause_and_a_detail_line_may_be_missing(tmp_path):
    # The refusal naming --resume still chains torch's own error (shown with the traceback a
    # bug report asks for); a message ending at "WeightsUnpickler error:" names its first line.
    from dropblock_det.engine.checkpoint import _naming_the_file, check_checkpoint_fits

    path = tmp_path / "model.pth"
    path.write_bytes(b"garbage")
    with pytest.raises(RuntimeError, match=r"^--resume: ") as refused:
        check_checkpoint_fits(torch.nn.Linear(1, 1), str(path), "--resume")
    assert refused.value.__cause__ is not None and not str(refused.value.__cause__).startswith("--resume")

    def read(_):
        raise TypeError("Weights only load failed.\nWeightsUnpickler error:")

    with pytest.raises(RuntimeError, match=r"\(TypeError: Weights only load failed\.\)$"):
        _naming_the_file(str(path), read)


# --- coverage audit 55b ---
def test_optimizer_settings_that_cannot_be_compared_are_not_called_changed():
    # A tensor setting (a tensor lr, betas kept as a tensor): == gives no single bool; a
    # resume is not refused for it.
    from dropblock_det.engine.checkpoint import _changed_settings

    saved = [{"initial_lr": torch.tensor([0.1, 0.1]), "momentum": 0.9}]
    assert _changed_settings(saved, [{"lr": 0.1, "momentum": 0.9}]) == []
    assert _changed_settings(saved, [{"lr": 0.1, "momentum": 0.5}]) == ["momentum 0.9 (this config: 0.5)"]


def test_an_eval_checkpoint_without_a_model_is_only_looked_for(tmp_path):
    # model=None (a model the meta device cannot build): the file is found, not loaded.
    from dropblock_det.engine.checkpoint import check_eval_checkpoint

    path = tmp_path / "model.pth"
    path.write_bytes(b"not a checkpoint")  # never read
    check_eval_checkpoint(None, str(path), "MODEL.WEIGHTS")


# --- mutation 59C ---
def test_an_evaluations_older_detectron2_checkpoint_is_checked_as_the_strict_load_takes_it(tmp_path):
    # A RetinaNet checkpoint of an older detectron2 holds its anchor generator's cell_anchors
    # (now non-persistent buffers) and may lack pixel_mean / pixel_std (set from the config):
    # detectron2's checkpointer ignores both, and the strict load with it. The check before
    # an --eval-only refused them as "not in model" / "missing in checkpoint".
    from detectron2.modeling import build_model

    from conftest import small_retinanet_cfg
    from dropblock_det.engine.checkpoint import (
        CheckpointMismatchError,
        check_checkpoint_fits,
        check_eval_checkpoint,
        load_checkpoint_strict,
    )

    model = build_model(small_retinanet_cfg())
    old = {k: v for k, v in model.state_dict().items() if k not in ("pixel_mean", "pixel_std")}
    old.update({f"anchor_generator.cell_anchors.{i}": a for i, a in enumerate(model.anchor_generator.cell_anchors)})
    path = tmp_path / "model_final.pth"
    torch.save({"model": old, "iteration": 89999}, path)
    load_checkpoint_strict(model, str(path))
    check_eval_checkpoint(model, str(path), "MODEL.WEIGHTS")
    check_checkpoint_fits(model, str(path), "--resume", max_iter=("SOLVER.MAX_ITER", 90001))
    # Only those: a missing head weight or another stray key is still named.
    del old["head.cls_score.bias"]
    old["backbone.extra.weight"] = torch.zeros(1)
    torch.save({"model": old}, path)
    with pytest.raises(CheckpointMismatchError, match=r": missing in checkpoint: head\.cls_score\.bias; "
                                                      r"not in model: backbone\.extra\.weight$"):
        check_eval_checkpoint(model, str(path), "MODEL.WEIGHTS")
    with pytest.raises(CheckpointMismatchError, match=r"missing in checkpoint: head\.cls_score\.bias; "
                                                      r"not in model: backbone\.extra\.weight$"):
        load_checkpoint_strict(model, str(path))


def test_an_evaluations_weights_matched_by_detectron2s_name_heuristics_are_checked_as_loaded(tmp_path):
    # A .pkl marked "matching_heuristics" (detectron2's convert-torchvision-to-d2.py output, a
    # converted Caffe2 model) names the weights otherwise than the model: detectron2's
    # checkpointer matches them by suffix, and the strict load took what the check refused.
    import pickle

    from dropblock_det.engine.checkpoint import CheckpointMismatchError, check_eval_checkpoint, load_checkpoint_strict

    model = torch.nn.Sequential(torch.nn.Sequential(torch.nn.Linear(3, 2)))
    converted = tmp_path / "converted.pkl"
    converted.write_bytes(pickle.dumps({"model": {k[len("0."):]: v.numpy() for k, v in model.state_dict().items()},
                                        "__author__": "torchvision", "matching_heuristics": True}))
    load_checkpoint_strict(model, str(converted))
    check_eval_checkpoint(model, str(converted), "MODEL.WEIGHTS")
    # What the heuristics cannot match (a shape that differs) is still named, as the strict load names it.
    other = torch.nn.Sequential(torch.nn.Sequential(torch.nn.Linear(4, 2)))  # 0.0.weight of shape (2, 4)
    for check in (lambda: check_eval_checkpoint(other, str(converted), "MODEL.WEIGHTS"),
                  lambda: load_checkpoint_strict(other, str(converted))):
        with pytest.raises(CheckpointMismatchError, match=r"does not match the model built from the config: "
                                                          r"missing in checkpoint: 0\.0\.weight; "
                                                          r"not in model: 0\.weight$"):
            check()


def test_a_checkpoint_saved_again_under_its_name_replaces_the_earlier_one(tmp_path):
    # A finished run resumed with a larger MAX_ITER saves model_final.pth again: the new one
    # must replace it (a rename that kept the old file, or left the new one as .tmp, resumed
    # the next run from the old iteration).
    from dropblock_det.engine.checkpoint import AtomicCheckpointer, last_checkpoint

    model = torch.nn.Linear(2, 2)
    checkpointer = AtomicCheckpointer(model, save_dir=str(tmp_path))
    checkpointer.save("model_final", iteration=4)
    with torch.no_grad():
        model.weight.fill_(7.0)
    checkpointer.save("model_final", iteration=9)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last_checkpoint", "model_final.pth"]
    saved = torch.load(last_checkpoint(str(tmp_path)), map_location="cpu")
    assert saved["iteration"] == 9 and bool((saved["model"]["weight"] == 7.0).all())


def test_a_truncated_checkpoint_refusal_keeps_torchs_error_as_its_cause(tmp_path):
    # The traceback a bug report asks for shows torch's own error under the refusal.
    import io

    from dropblock_det.engine.checkpoint import read_checkpoint

    buffer = io.BytesIO()
    torch.save({"model": {"w": torch.zeros(1000)}}, buffer)
    path = tmp_path / "model_final.pth"
    path.write_bytes(buffer.getvalue()[:200])
    with pytest.raises(RuntimeError, match=r"^--resume: checkpoint '.*' cannot be read, it is truncated") as refused:
        read_checkpoint(str(path), given_by="--resume")
    assert refused.value.__cause__ is not None and "truncated" not in str(refused.value.__cause__)


def test_a_last_checkpoint_written_by_hand_with_a_newline_is_read_as_detectron2_reads_it(tmp_path):
    # `echo model_0000004.pth > last_checkpoint` (a run put back by hand): detectron2 strips
    # the line, and so do the name in the refusal and the check of an empty file.
    from dropblock_det.engine.checkpoint import last_checkpoint

    (tmp_path / "model_0000004.pth").write_bytes(b"PK")
    (tmp_path / "last_checkpoint").write_text("model_0000004.pth\n")
    assert last_checkpoint(str(tmp_path)) == str(tmp_path / "model_0000004.pth")
    (tmp_path / "last_checkpoint").write_text("model_final.pth\n")
    with pytest.raises(FileNotFoundError, match=r"last_checkpoint names 'model_final.pth', which is not a file"):
        last_checkpoint(str(tmp_path))
    (tmp_path / "last_checkpoint").write_text("\n")
    with pytest.raises(FileNotFoundError, match=r"last_checkpoint is empty: "):
        last_checkpoint(str(tmp_path))


def test_a_resume_checkpoint_with_a_wrong_bias_or_missing_norm_statistics_is_refused_naming_them(tmp_path):
    # Not only 2-d weights: a bias of another length, a BatchNorm's running statistics (buffers,
    # not parameters) missing, and a dict under "model" that holds a list, not weights.
    from dropblock_det.engine.checkpoint import CheckpointMismatchError, check_checkpoint_fits

    model = torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.BatchNorm1d(2))
    saved = dict(model.state_dict(), **{"0.bias": torch.zeros(3)})
    del saved["1.running_mean"]
    path = tmp_path / "model_0000004.pth"
    torch.save({"model": saved, "iteration": 4}, path)
    with pytest.raises(CheckpointMismatchError, match=r"^--resume: checkpoint '.*' does not match the model built from "
                                                      r"the config: shape mismatch: 0\.bias \(checkpoint \(3,\) vs model "
                                                      r"\(2,\)\); missing in checkpoint: 1\.running_mean$"):
        check_checkpoint_fits(model, str(path), "--resume")
    torch.save({"model": [1, 2], "iteration": 4}, path)
    with pytest.raises(RuntimeError, match=r"^--resume: '.*' is not a checkpoint: it holds a list"):
        check_checkpoint_fits(model, str(path), "--resume")


def test_a_resume_is_judged_group_by_group_and_by_every_setting_either_optimizer_has():
    # torch loads the saved groups in order: two groups of 3 and 5 parameters swapped fail
    # in its load_state_dict after the data loader is built. Adamax's settings (betas) are
    # a subset of Adam's (betas, amsgrad), another optimizer all the same. A saved optimizer
    # without param_groups (not torch's) is not judged.
    from dropblock_det.engine.checkpoint import check_resume_optimizer

    three, five = ([torch.nn.Parameter(torch.zeros(1)) for _ in range(n)] for n in (3, 5))
    saved = {"trainer": {"optimizer": torch.optim.SGD([{"params": three}, {"params": five}], lr=0.1).state_dict()}}
    swapped = torch.optim.SGD([{"params": five}, {"params": three}], lr=0.1)
    with pytest.raises(ValueError, match=r"holds the optimizer state of 2 parameter groups \(of \[3, 5\] parameters\), "
                                         r"and this config's optimizer has 2 \(of \[5, 3\]\)"):
        check_resume_optimizer(saved, swapped, "model_0000004.pth")
    adamax = {"trainer": {"optimizer": torch.optim.Adamax(three, lr=0.1).state_dict()}}
    with pytest.raises(ValueError, match=r"another optimizer than this config's Adam \(its settings: betas; "
                                         r"Adam's: betas, amsgrad\)"):
        check_resume_optimizer(adamax, torch.optim.Adam(three, lr=0.1), "model_0000004.pth")
    check_resume_optimizer({"trainer": {"optimizer": {"state": {}}}}, swapped, "model_0000004.pth")


# --- stop 59: mutation 59C's left item ---
@pytest.mark.parametrize("error", [PermissionError(13, "Permission denied"), IsADirectoryError(21, "Is a directory")])
def test_a_checkpoint_that_cannot_be_opened_is_not_called_truncated_or_corrupt(tmp_path, monkeypatch, error):
    # A file this user may not read (another user's run folder) was refused as "truncated or
    # corrupt": nothing was read, and the file may be whole. (Root reads any file, so torch's
    # reader is made to raise what it raises for another user.)
    from fvcore.common.checkpoint import Checkpointer

    from dropblock_det.engine.checkpoint import read_checkpoint

    path = tmp_path / "model_final.pth"
    torch.save({"model": {"w": torch.zeros(1)}}, path)

    def refuse(self, f):
        raise error

    monkeypatch.setattr(Checkpointer, "_load_file", refuse)
    with pytest.raises(RuntimeError, match=rf"^MODEL\.WEIGHTS='w': checkpoint '.*model_final\.pth' cannot be opened "
                                           rf"\({type(error).__name__}: .*\)$") as refused:
        read_checkpoint(str(path), given_by="MODEL.WEIGHTS='w'")
    assert refused.value.__cause__ is error
