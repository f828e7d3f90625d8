"""Checkpoints: written atomically (a killed write leaves the previous file), loaded strictly
(a mismatch names the keys), and the checks of MODEL.WEIGHTS and of a checkpoint's fit to a
model and its optimizer before data loading.
"""
from __future__ import annotations

import contextlib
import math
import os
from pathlib import Path
from typing import IO, Any, Callable, Dict, Iterator, List, Optional, Tuple

import numpy as np
import torch
from detectron2.checkpoint import DetectionCheckpointer
from detectron2.checkpoint.c2_model_loading import align_and_update_state_dicts
from detectron2.config import CfgNode
from detectron2.utils.file_io import PathManager
from fvcore.common.checkpoint import Checkpointer


__all__ = [
    "AtomicCheckpointer",
    "check_checkpoint_fits",
    "check_eval_checkpoint",
    "check_resume_grad_scaler",
    "check_resume_optimizer",
    "check_weights_path",
    "check_weights_readable",
    "CheckpointMismatchError",
    "is_url",
    "last_checkpoint",
    "load_checkpoint_strict",
    "local_checkpoint",
    "read_checkpoint",
    "state_dict_problems",
]


class CheckpointMismatchError(RuntimeError):
    """A checkpoint's weights do not fit the model (missing/unexpected keys, shapes)."""


def _mismatch_problems(incorrect_shapes, missing_keys, unexpected_keys) -> List[str]:
    problems = []
    if incorrect_shapes:
        problems.append("shape mismatch: " + ", ".join(
            f"{k} (checkpoint {tuple(a)} vs model {tuple(b)})" for k, a, b in incorrect_shapes))
    if missing_keys:
        problems.append("missing in checkpoint: " + ", ".join(missing_keys))
    if unexpected_keys:
        problems.append("not in model: " + ", ".join(unexpected_keys))
    return problems


def _naming_the_file(path: str, read: Callable[[str], Dict[str, Any]]) -> Dict[str, Any]:
    """read(path) (a checkpointer's file reading); an unreadable file (a truncated write, a
    partial copy) raises a RuntimeError naming it: torch's own message names none."""
    try:
        return read(path)
    except Exception as e:  # noqa: BLE001 - torch, pickle and zip raise many kinds
        lines = [line.strip() for line in str(e).splitlines() if line.strip()]
        # torch's weights_only refusal opens with "Re-running torch.load with weights_only set to
        # False will likely succeed", untrue of a damaged or foreign file: its own error follows.
        detail = next((lines[i + 1] for i, line in enumerate(lines[:-1])
                       if line.endswith("WeightsUnpickler error:")), None)
        reason = f"{type(e).__name__}: {detail or (lines[0] if lines else '')}"
        refused_global = [line.strip().split(" by default.")[0] + " by default."
                          for line in str(e).splitlines() if "Unsupported global" in line]
        if refused_global:
            # A whole file that torch.load refuses with weights_only=True (its default since
            # torch 2.6, and how fvcore's checkpointer calls it): numpy arrays or other objects.
            raise RuntimeError(
                f"checkpoint {path!r} holds objects other than tensors, which torch.load refuses with "
                f"weights_only=True (its default since torch 2.6, as detectron2's checkpointer calls it): "
                f"{refused_global[0]} Save its weights as tensors (torch.save of a dict with the state_dict "
                f"under 'model'), or as a detectron2 .pkl of numpy arrays") from e
        if isinstance(e, (PermissionError, IsADirectoryError)):
            # Nothing was read: the file may be whole (another user's run, a mount read-only to us).
            raise RuntimeError(f"checkpoint {path!r} cannot be opened ({reason})") from e
        if isinstance(e, (AssertionError, AttributeError, KeyError, TypeError)):
            # The bytes were read: detectron2's reader refused what they hold (a .pyth without
            # 'model_state', a .pkl of a list), which is no damage to the file.
            raise RuntimeError(f"{path!r} was read but is not a checkpoint detectron2 takes ({reason})") from e
        try:
            with open(path, "rb") as f:
                head = f.read(4)
        except OSError:
            head = b""
        # torch.save writes a zip archive (older torch, and detectron2's .pkl, a pickle): a
        # file that starts as neither (a config, an image) is not a damaged checkpoint.
        if head and not head.startswith((b"PK", b"\x80")):
            raise RuntimeError(f"{path!r} is not a checkpoint: its first bytes {head!r} are neither a "
                               f"zip archive's (torch.save) nor a pickle's ({reason})") from e
        raise RuntimeError(f"checkpoint {path!r} cannot be read, it is truncated or corrupt ({reason})") from e


class _StrictCheckpointer(DetectionCheckpointer):
    """DetectionCheckpointer that raises instead of logging incompatible keys."""

    def _log_incompatible_keys(self, incompatible) -> None:
        problems = _mismatch_problems(incompatible.incorrect_shapes, incompatible.missing_keys,
                                      incompatible.unexpected_keys)
        if problems:
            raise CheckpointMismatchError(
                f"checkpoint {self._loading_path!r} does not match the model built from the "
                "config: " + "; ".join(problems))

    def _load_file(self, f: str) -> Dict[str, Any]:
        # fvcore's load hands a URL's local copy (fetched by the path manager), never the URL.
        self._loading_path = f
        return _naming_the_file(f, super()._load_file)


@contextlib.contextmanager
def _replacing(path: str, mode: str) -> Iterator[IO]:
    """A file opened for writing beside `path`; on a clean exit it is synced to disk and
    os.replace-d onto `path`, else deleted: a write stopped midway (Ctrl-C, kill, a full
    disk) leaves the earlier `path` whole."""
    tmp = path + ".tmp"
    try:
        with open(tmp, mode) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.remove(tmp)
        raise


class _ReplacingWrites:
    """A path manager (fvcore / detectron2 PathManager) whose writes of local files go
    through `_replacing`; everything else is the wrapped one's."""

    def __init__(self, path_manager: Any) -> None:
        self._path_manager = path_manager

    def open(self, path: str, mode: str = "r", **kwargs: Any):
        if "w" in mode and not is_url(path):
            return _replacing(path, mode)
        return self._path_manager.open(path, mode, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._path_manager, name)


class AtomicCheckpointer(DetectionCheckpointer):
    """DetectionCheckpointer whose checkpoints and ``last_checkpoint`` tag replace the old
    files atomically. fvcore truncates and rewrites in place: a finished run resumed with a
    longer SOLVER.MAX_ITER rewrites model_final.pth, the very checkpoint ``last_checkpoint``
    names (the only one when CHECKPOINT_PERIOD exceeds MAX_ITER, as in the synthetic
    configs), and a run stopped during that write lost all its training."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # fvcore's save and tag_last_checkpoint write through self.path_manager.open.
        self.path_manager = _ReplacingWrites(self.path_manager)


def is_url(path: str) -> bool:
    """Whether `path` is fetched by detectron2's path manager (https://, detectron2://, ...)
    rather than read from the local disk, so it cannot be checked before it is loaded."""
    return "://" in path


def load_checkpoint_strict(model: torch.nn.Module, path: str) -> None:
    """Load ``path`` into ``model``; FileNotFoundError if it does not exist,
    CheckpointMismatchError naming every missing/unexpected/shape-mismatched key."""
    if not path:
        raise FileNotFoundError("MODEL.WEIGHTS is empty: give the checkpoint to evaluate")
    if not is_url(path) and not Path(path).is_file():
        raise FileNotFoundError(f"checkpoint MODEL.WEIGHTS={path!r} does not exist")
    _StrictCheckpointer(model).load(path)


def last_checkpoint(output_dir: str) -> str:
    """The checkpoint a resumed run in ``output_dir`` loads: the one its detectron2
    ``last_checkpoint`` file names ('' when there is none). ValueError naming that file when
    it is no text file (a checkpoint copied over it, a folder), FileNotFoundError when it is
    empty or names no file there."""
    checkpointer = DetectionCheckpointer(None, save_dir=output_dir)
    if not checkpointer.has_checkpoint():
        return ""
    marker = os.path.join(output_dir, "last_checkpoint")
    try:
        # fvcore reads it as text: a binary file (a checkpoint copied over it) failed with a
        # bare UnicodeDecodeError, a folder there with IsADirectoryError, naming neither.
        named = Path(marker).read_text().strip()
    except (UnicodeDecodeError, IsADirectoryError):
        raise ValueError(f"{marker} is not the text file detectron2 writes there, naming the checkpoint to "
                         "resume from (e.g. 'model_final.pth'): write that name into it, or move it away "
                         "to start anew") from None
    path = checkpointer.get_checkpoint_file()
    if not os.path.isfile(path):
        # Else the resumed run's load fails on the file, blaming it as truncated or corrupt.
        what = f"names {named!r}, which is not a file there" if named else "is empty"
        raise FileNotFoundError(
            f"{marker} {what}: the checkpoint a resumed run would load was moved or deleted. "
            "Put it back to resume from it, or move the folder's files away to start anew")
    return path


def local_checkpoint(key: str, path: str) -> str:
    """The local file of the checkpoint `path` that `key` (a config key or a flag) names. A
    URL (https://, detectron2://) is fetched now by detectron2's path manager, which keeps
    it in its cache, so the load later reads that file without fetching it again: a URL
    that cannot be fetched is a RuntimeError naming `key` before anything is written (it
    failed when the trainer loaded the weights, after the data loader was built and
    config.yaml written). FileNotFoundError naming `key` when the file does not exist or
    is a folder (a run's folder given for its checkpoint)."""
    if is_url(path):
        try:
            local = PathManager.get_local_path(path)
        except Exception as e:  # urllib's URLError / HTTPError, a handler's own error
            raise RuntimeError(f"{key}={path!r} cannot be fetched ({type(e).__name__}: {e})") from e
        if not os.path.isfile(local):
            raise FileNotFoundError(f"{key}={path!r} was fetched to {local!r}, which is not a file")
        return local
    if not Path(path).is_file():
        raise FileNotFoundError(f"{key}={path!r} " + (
            "is a folder, not a checkpoint file: give the checkpoint in it (e.g. a run's model_final.pth)"
            if Path(path).is_dir() else "does not exist"))
    return path


def check_weights_readable(key: str, path: str) -> None:
    """The starting weights `path` that `key` names (MODEL.WEIGHTS, train.init_checkpoint)
    found by :func:`local_checkpoint` and read as the trainer's checkpointer reads them (a
    .pkl / .pyth as detectron2 does, else torch.load): RuntimeError naming `key` and the
    file when it cannot be read. The trainer reads them only after the data loader is built,
    the folder's earlier run moved aside and config.yaml written, where a truncated file
    failed with torch's bare "OSError: [Errno 22] Invalid argument". Whether they fit the
    model is not judged: detectron2 loads them non-strictly (ImageNet weights into a
    detector)."""
    read_checkpoint(local_checkpoint(key, path), given_by=f"{key}={path!r}")


def check_weights_path(cfg: CfgNode, fetch: bool = True, read: bool = False) -> None:
    """MODEL.WEIGHTS, when given, as :func:`local_checkpoint` finds it: a local file that
    exists, or a URL that is fetched (and cached) now; with `fetch` False a URL is left
    alone (a tool that only writes a config naming it); with `read` the file is read too
    (:func:`check_weights_readable`: the starting weights of a training)."""
    if cfg.MODEL.WEIGHTS and (fetch or not is_url(cfg.MODEL.WEIGHTS)):
        if read:
            check_weights_readable("MODEL.WEIGHTS", cfg.MODEL.WEIGHTS)
        else:
            local_checkpoint("MODEL.WEIGHTS", cfg.MODEL.WEIGHTS)


def _file_reader(path: str) -> Callable[[str], Dict[str, Any]]:
    """How detectron2's checkpointer reads the file `path`: a .pkl / .pyth (a model-zoo
    pickle of numpy arrays, which torch.load refuses) with detectron2's own readers, else
    fvcore's torch.load (detectron2 main's own _load_file of a .pth may only run inside its
    load())."""
    if path.endswith((".pkl", ".pyth")):
        return DetectionCheckpointer(None)._load_file
    return Checkpointer(None)._load_file


def read_checkpoint(path: str, given_by: str = "") -> Dict[str, Any]:
    """The checkpoint file at local `path`, read as detectron2's checkpointer reads it, as a
    dict with its weights under "model" (a bare state_dict is put there); RuntimeError naming
    the file when it cannot be read, after `given_by` (the key or flag that gives it, e.g.
    "MODEL.WEIGHTS='w.pth'", "--resume") where one is given."""
    try:
        return _read_checkpoint(path)
    except RuntimeError as e:  # it names the file, not the key or flag that gave it
        if not given_by:
            raise
        raise RuntimeError(f"{given_by}: {e}") from e.__cause__


def _read_checkpoint(path: str) -> Dict[str, Any]:
    checkpoint = _naming_the_file(path, _file_reader(path))
    weights = checkpoint.get("model", checkpoint) if isinstance(checkpoint, dict) else checkpoint
    if not isinstance(weights, dict):
        # torch.save of a list or a module object: detectron2's load fails on it much later.
        raise RuntimeError(f"{path!r} is not a checkpoint: it holds a {type(weights).__name__}, where a "
                           f"dict of weights (a state_dict, or one under 'model') was expected")
    return checkpoint if "model" in checkpoint else {"model": checkpoint}


def state_dict_problems(model: torch.nn.Module, saved: Dict[str, Any]) -> List[str]:
    """What keeps the weights `saved` (a state_dict; DistributedDataParallel's "module."
    prefix allowed) from loading strictly into `model`: shape mismatches, missing and
    unexpected keys, each listed by name. Empty when they fit. `model` may be on the meta
    device. As detectron2's checkpointer (and :func:`load_checkpoint_strict`), it takes a
    checkpoint of an older detectron2 without the model's own pixel_mean / pixel_std (set
    from the config) or with its anchor generator's cell_anchors (no longer saved)."""
    saved = {k[len("module."):] if k.startswith("module.") else k: v for k, v in saved.items()}
    expected = model.state_dict()
    own_buffers = dict(model.named_buffers(recurse=False))
    return _mismatch_problems(
        [(k, saved[k].shape, v.shape) for k, v in expected.items()
         if k in saved and tuple(getattr(saved[k], "shape", ())) != tuple(v.shape)],
        [k for k in expected if k not in saved and not (k in ("pixel_mean", "pixel_std") and k in own_buffers)],
        [k for k in saved if k not in expected and "anchor_generator.cell_anchors" not in k])


def _saved_trainer_state(checkpoint: Dict[str, Any]) -> Dict[str, Any]:
    """The SimpleTrainer / AMPTrainer state a resume loads (the optimizer, AMP's grad scaler):
    DefaultTrainer saves it under "trainer"/"_trainer", a LazyConfig loop (whose checkpointer
    holds the SimpleTrainer itself) under "trainer"; no "optimizer" in it when there is none
    (detectron2 v0.6's own DefaultTrainer)."""
    trainer = checkpoint.get("trainer")
    inner = trainer.get("_trainer", trainer) if isinstance(trainer, dict) else None
    return inner if isinstance(inner, dict) else {}


def check_resume_grad_scaler(checkpoint: Dict[str, Any], path: str, amp_key: str,
                             weights_key: str = "MODEL.WEIGHTS") -> None:
    """For a resume with AMP on (`amp_key` names the setting): ValueError naming the file and
    the key when `checkpoint` (read from `path`) has the trainer state of a run without AMP,
    which has no grad scaler: AMPTrainer.load_state_dict reads it unconditionally (v0.6 and
    main), a bare "KeyError: 'grad_scaler'" after the data loader is built."""
    saved = _saved_trainer_state(checkpoint)
    if "optimizer" in saved and "grad_scaler" not in saved:
        raise ValueError(
            f"--resume: checkpoint {path!r} was saved by a run without mixed precision (it holds no AMP "
            f"grad scaler), and {amp_key}=True: detectron2's AMPTrainer fails loading it "
            f"(KeyError: 'grad_scaler') after the data loader is built. Resume with {amp_key} "
            f"False, or start a fresh run from the checkpoint ({weights_key})")


# What decides detectron2's optimizer parameter groups (get_default_optimizer_params), by yacs key.
_YACS_GROUPING = ("SOLVER.WEIGHT_DECAY, WEIGHT_DECAY_NORM, WEIGHT_DECAY_BIAS and BIAS_LR_FACTOR, and "
                  "by which of them train (MODEL.BACKBONE.FREEZE_AT)")


# The optimizer hyperparameters a resume restores from the checkpoint (torch's SGD, Adam(W),
# RMSprop); lr as the LR scheduler's base (initial_lr), what the config sets.
_OPTIMIZER_SETTINGS = ("lr", "momentum", "dampening", "nesterov", "weight_decay", "betas", "eps", "amsgrad",
                       "alpha", "centered")
_YACS_SETTINGS = "SOLVER.BASE_LR, BIAS_LR_FACTOR, MOMENTUM, NESTEROV, WEIGHT_DECAY, WEIGHT_DECAY_NORM and WEIGHT_DECAY_BIAS"


# Hyperparameters that only some of torch's optimizers have, which tell them apart across
# torch versions (those each version adds to all, maximize, foreach, ..., do not).
_OPTIMIZER_KIND_SETTINGS = ("momentum", "dampening", "nesterov", "betas", "amsgrad", "alpha", "centered", "lr_decay")


def _optimizer_kind(group: Dict[str, Any]) -> List[str]:
    """The names of _OPTIMIZER_KIND_SETTINGS a parameter group has: SGD's momentum,
    dampening and nesterov, Adam(W)'s betas and amsgrad, ..."""
    return [name for name in _OPTIMIZER_KIND_SETTINGS if name in group]


def _same_setting(saved: Any, now: Any) -> bool:
    if isinstance(saved, float) and isinstance(now, (int, float)) and not isinstance(now, bool):
        return math.isclose(saved, now, rel_tol=1e-9)
    try:
        return bool(saved == now)
    except (RuntimeError, TypeError, ValueError):  # e.g. a tensor lr: not judged
        return True


def _changed_settings(saved_groups: List[Dict[str, Any]], groups: List[Dict[str, Any]]) -> List[str]:
    """"momentum 0.9 (this config: 0.5)" for each hyperparameter the config's optimizer
    `groups` set otherwise than the saved `saved_groups` (first differing group each)."""
    changed: Dict[str, Tuple[Any, Any]] = {}
    for old, new in zip(saved_groups, groups):
        for name in _OPTIMIZER_SETTINGS:
            # A group's lr is the scheduler's schedule at that step: its base is initial_lr.
            was = old.get("initial_lr") if name == "lr" else old.get(name)
            now = new.get("initial_lr", new.get("lr")) if name == "lr" else new.get(name)
            if was is not None and now is not None and not _same_setting(was, now):
                changed.setdefault(name, (was, now))
    return [f"{name} {was!r} (this config: {now!r})" for name, (was, now) in changed.items()]


def check_resume_optimizer(checkpoint: Dict[str, Any], optimizer: torch.optim.Optimizer, path: str,
                           grouping: str = _YACS_GROUPING, weights_key: str = "MODEL.WEIGHTS",
                           settings: str = _YACS_SETTINGS) -> None:
    """ValueError naming the file and the keys when the optimizer state saved in `checkpoint`
    (read from `path`) groups the parameters otherwise than `optimizer`, the one the config
    builds: torch refuses to load it ("loaded state dict has a different number of parameter
    groups"), which detectron2 does after the data loader is built and config.yaml
    rewritten. ValueError too when its hyperparameters (base lr, momentum, weight decay, ...)
    differ from `optimizer`'s: the resume would restore the saved ones (torch's
    load_state_dict keeps a checkpoint's, and the LR scheduler's state its base LRs), and the
    config's change would silently not take effect. `grouping`: what decides the groups, by
    the config's keys; `settings`: the keys of the hyperparameters; `weights_key`: the key a
    fresh run starts from a checkpoint with. A checkpoint without optimizer state is not
    judged."""
    saved = _saved_trainer_state(checkpoint).get("optimizer")
    if not isinstance(saved, dict) or not isinstance(saved.get("param_groups"), list):
        return
    saved_sizes = [len(group.get("params", ())) for group in saved["param_groups"]]
    sizes = [len(group["params"]) for group in optimizer.param_groups]
    if saved_sizes != sizes:
        raise ValueError(
            f"--resume: checkpoint {path!r} holds the optimizer state of {len(saved_sizes)} parameter groups "
            f"(of {saved_sizes} parameters), and this config's optimizer has {len(sizes)} (of {sizes}): "
            f"detectron2 groups the parameters by {grouping}. Resume with the run's values, or start a "
            f"fresh run from the checkpoint ({weights_key}) to change them")
    if saved["param_groups"] and optimizer.param_groups:
        was, now = _optimizer_kind(saved["param_groups"][0]), _optimizer_kind(optimizer.param_groups[0])
        if was != now:
            # torch loads another optimizer's state into this one's groups without a word and
            # fails at the first step (AdamW's KeyError 'step' on SGD's momentum buffers),
            # after the data loader was built.
            raise ValueError(
                f"--resume: checkpoint {path!r} holds the state of another optimizer than this config's "
                f"{type(optimizer).__name__} (its settings: {', '.join(was) or 'none of ' + ', '.join(now)}; "
                f"{type(optimizer).__name__}'s: {', '.join(now) or 'none of ' + ', '.join(was)}). Resume with the "
                f"run's optimizer, or start a fresh run from the checkpoint ({weights_key}) to change it")
    changed = _changed_settings(saved["param_groups"], optimizer.param_groups)
    if changed:
        raise ValueError(
            f"--resume: checkpoint {path!r} holds an optimizer with {', '.join(changed)}: a resume restores "
            f"the saved values (torch's load_state_dict, and the LR scheduler's base LRs), so the change of "
            f"{settings} would not take effect. Resume with the run's values, or start a fresh run from the "
            f"checkpoint ({weights_key}) to change them")


def weights_as_loaded(model: torch.nn.Module, checkpoint: Dict[str, Any]) -> Dict[str, Any]:
    """The weights of `checkpoint` under the names detectron2's checkpointer loads them by: a
    file marked "matching_heuristics" (a converted Caffe2 / Detectron model-zoo .pkl, the output
    of detectron2's convert-torchvision-to-d2.py) is renamed onto the model's keys first."""
    weights = checkpoint["model"]
    if not checkpoint.get("matching_heuristics", False):
        return weights
    weights = {k: torch.as_tensor(v) if isinstance(v, np.ndarray) else v for k, v in weights.items()}
    return align_and_update_state_dicts(model.state_dict(), weights,
                                        c2_conversion=checkpoint.get("__author__", None) == "Caffe2")


def check_checkpoint_fits(model: Optional[torch.nn.Module], path: str, what: str, advice: str = "",
                          max_iter: Optional[Tuple[str, int]] = None) -> Dict[str, Any]:
    """The checkpoint at local `path` (`what` loads it: "--resume", a config key) against the
    model (None: not checked): RuntimeError naming `what` and the file when it cannot be read;
    CheckpointMismatchError naming every key that does not fit (with `advice`); with
    `max_iter` (its key, its value) ValueError when the checkpoint has trained that many
    iterations or more (a finished run's model_final is saved at iteration max_iter - 1), so
    that resuming would train nothing and only evaluate the earlier model again, overwriting
    the run's config.yaml and predictions. Returns the checkpoint (:func:`read_checkpoint`)."""
    checkpoint = read_checkpoint(path, given_by=what)
    problems = state_dict_problems(model, weights_as_loaded(model, checkpoint)) if model is not None else []
    if problems:
        raise CheckpointMismatchError(
            f"{what}: checkpoint {path!r} does not match the model built from the config"
            + (f" ({advice})" if advice else "") + ": " + "; ".join(problems))
    iteration = checkpoint.get("iteration")
    # detectron2 resumes at the checkpoint's "iteration" + 1.
    if max_iter is not None and isinstance(iteration, int) and iteration + 1 >= max_iter[1]:
        key, value = max_iter
        raise ValueError(f"{what}: checkpoint {path!r} has trained {iteration + 1} iterations, "
                         f"{'all' if iteration + 1 == value else 'more than'} {key}={value} asks for: "
                         f"nothing would be trained; give a larger {key} to continue the run "
                         "(--eval-only --resume evaluates its last checkpoint)")
    return checkpoint


def check_eval_checkpoint(model: Optional[torch.nn.Module], path: str, what: str) -> None:
    """Before anything is written, the checkpoint an --eval-only loads strictly (`what`: the
    key or flag that names it, e.g. "MODEL.WEIGHTS", "--resume"): FileNotFoundError when a
    local `path` does not exist or is a folder, RuntimeError when a URL cannot be fetched (it
    is fetched now, into detectron2's cache), both naming `what` (:func:`local_checkpoint`),
    then check_checkpoint_fits of the file against `model` (None: not checked)."""
    local = local_checkpoint(what, path)
    if model is not None:  # a URL's error names it and the cached file that was read
        check_checkpoint_fits(model, local, f"{what}={path!r}" if local != path else what)
