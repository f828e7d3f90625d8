"""Analyses behind the tools: training curves of a run, robustness to DropBlock at
inference (paper section 4.2), and the block_size x keep_prob sweep.

The tools in ``tools/`` (main_job.py, analyze_robustness.py, sweep.py) only parse
arguments and call these functions.
"""
from __future__ import annotations

import csv
import functools
import json
import math
import os
import re
from pathlib import Path
from typing import Any, Callable, Dict, Iterable, List, Optional, Sequence, Tuple

import torch

# matplotlib without a display (servers, CI).
os.environ.setdefault("MPLBACKEND", "Agg")

KEEP_PROB_KEY = "dropblock/keep_prob"


# ----------------------------------------------------------------------------- training curves
def read_metrics(path: os.PathLike) -> List[Dict[str, Any]]:
    """Records of detectron2's ``metrics.json`` (one JSON object per line, as its
    JSONWriter writes them), in file order."""
    records = []
    with open(path) as f:
        for line in f:
            line = line.strip()
            if line:
                records.append(json.loads(line))
    return records


def final_metric(records: Sequence[Dict[str, Any]], key: str = "bbox/AP") -> Optional[float]:
    """The last value of ``key`` in the records (None if never written)."""
    for rec in reversed(records):
        if key in rec:
            return float(rec[key])
    return None


def plot_training_curves(records: Sequence[Dict[str, Any]], out_png: os.PathLike,
                         ap_key: str = "bbox/AP", title: str = "") -> Path:
    """PNG with the losses and the keep_prob schedule against the iteration, and the
    final AP in the title. Returns the PNG path."""
    import matplotlib.pyplot as plt

    train = [r for r in records if "total_loss" in r]
    iters = [r["iteration"] for r in train]
    fig, (ax_loss, ax_kp) = plt.subplots(2, 1, figsize=(7, 6), sharex=True,
                                         gridspec_kw={"height_ratios": [2, 1]})
    for key in sorted({k for r in train for k in r if k.startswith("loss") or k == "total_loss"}):
        ax_loss.plot(iters, [r.get(key, math.nan) for r in train], label=key,
                     linewidth=2 if key == "total_loss" else 1)
    ax_loss.set_ylabel("loss")
    ax_loss.set_ylim(bottom=0)
    ax_loss.legend(loc="upper right")
    ax_loss.grid(alpha=0.3)
    kp = [r.get(KEEP_PROB_KEY, math.nan) for r in train]
    ax_kp.plot(iters, kp, color="tab:purple")
    ax_kp.set_ylabel("DropBlock keep_prob")
    ax_kp.set_xlabel("iteration")
    ax_kp.grid(alpha=0.3)
    ap = final_metric(records, ap_key)
    headline = f"final {ap_key} = {ap:.2f}" if ap is not None else f"no {ap_key} recorded"
    fig.suptitle(f"{title}\n{headline}" if title else headline)
    fig.tight_layout()
    out_png = Path(out_png)
    fig.savefig(out_png, dpi=100)
    plt.close(fig)
    return out_png


def check_matplotlib() -> None:
    """ImportError saying how to get matplotlib when it cannot be imported: the tools call it
    before their trainings or evaluations, whose plot they draw last."""
    try:
        import matplotlib.pyplot  # noqa: F401
    except ImportError as e:
        raise ImportError(f"matplotlib cannot be imported ({e}); the tool draws its plot with it after the "
                          "trainings / evaluations: pip install matplotlib") from None


# ----------------------------------------------------------------------------- robustness
def evaluate_with_dropblock_at_inference(
    model: torch.nn.Module,
    evaluate: Callable[[torch.nn.Module], Dict[str, Any]],
    keep_probs: Sequence[float],
    seeds: Sequence[int],
    metric: Callable[[Dict[str, Any]], float],
) -> Dict[float, List[float]]:
    """Paper section 4.2: evaluate ``model`` with its regularizers active at inference.

    For each keep_prob and seed: the model is put in eval() (norm layers, heads in
    inference mode), then every KeepProbRegularizer is switched to training mode and given
    that keep_prob, the RNG is seeded, and ``evaluate(model)`` is called; ``metric`` picks
    the number (e.g. bbox AP) from its result. keep_prob 1.0 is evaluated once (it is
    deterministic). The model is left in eval() with regularizers off and at their targets.

    Returns {keep_prob: [metric per seed]}; a keep_prob or seed given twice is evaluated once.
    """
    from .layers import iter_regularizers, set_keep_prob
    from .layers.base import check_keep_prob

    regularizers = [m for _, m in iter_regularizers(model)]
    if not regularizers:
        raise ValueError("the model has no DropBlock/KeepProbRegularizer modules: build it "
                         "with MODEL.DROPBLOCK.*.ENABLED so there is something to switch on")
    for kp in keep_probs:  # all of them before the first (long) evaluation
        check_keep_prob(kp)
    # A value given twice is one evaluation (each is seeded): a seed counted twice would
    # weigh its draw double in the mean and shrink the std.
    keep_probs = list(dict.fromkeys(float(kp) for kp in keep_probs))
    seeds = list(dict.fromkeys(seeds))
    results: Dict[float, List[float]] = {}
    try:
        for kp in keep_probs:
            results[kp] = []
            for seed in (seeds[:1] if kp == 1.0 else seeds):
                model.eval()
                for m in regularizers:
                    m.train()
                set_keep_prob(model, kp)
                torch.manual_seed(seed)
                results[kp].append(float(metric(evaluate(model))))
    finally:
        model.eval()
        for m in regularizers:
            m.keep_prob = m.target_keep_prob
    return results


def describe_regularizers(model: torch.nn.Module) -> str:
    """What `evaluate_with_dropblock_at_inference` switches on in `model`, for the tools' log:
    each regularizer type with its count, block size (DropBlock's) and the parts of the model
    it is in (a module's name up to its block index, e.g. "backbone.bottom_up.res4"; an
    unindexed one's whole name, its number starred: "backbone.dropblock_lateral*" for an
    FPN's lateral convs), e.g. "12 DropBlock2d (block_size 3) in backbone.bottom_up.res4,
    backbone.bottom_up.res5; 8 DropPath in backbone.bottom_up.res2, ...". "" for a model
    without regularizers."""
    from .layers import iter_regularizers

    kinds: Dict[str, Dict[str, Any]] = {}
    for name, module in iter_regularizers(model):
        size = getattr(module, "block_size", None)
        kind = type(module).__name__ + (f" (block_size {size})" if size is not None else "")
        entry = kinds.setdefault(kind, {"count": 0, "parts": {}})
        entry["count"] += 1
        # The part of the model: the name before its first index ("res4.0.conv1" -> "res4").
        # An unindexed one (an FPN's, a DeepLab projection's) sits beside other parts in the
        # module above it ("backbone" also holds the ResNet), so it is named whole, the level
        # of an FPN's lateral / output / top-block convs starred to keep one entry per kind.
        parts = name.split(".")
        index = next((i for i, part in enumerate(parts) if part.isdigit()), None)
        part = ".".join(parts[:index]) if index else re.sub(r"\d+$", "*", name)
        entry["parts"][part] = None
    return "; ".join(f"{entry['count']} {kind} in {', '.join(entry['parts'])}" for kind, entry in kinds.items())


def summarize_runs(results: Dict[float, List[float]]) -> List[Tuple[float, float, float, int]]:
    """[(keep_prob, mean, std, n)] sorted by keep_prob descending; std is the sample standard
    deviation over the seeds (n - 1 in the denominator: with the 2 or 3 seeds an analysis
    runs, dividing by n would understate the spread), 0 for one seed."""
    rows = []
    for kp in sorted(results, reverse=True):
        vals = results[kp]
        mean = sum(vals) / len(vals)
        std = math.sqrt(sum((v - mean) ** 2 for v in vals) / (len(vals) - 1)) if len(vals) > 1 else 0.0
        rows.append((kp, mean, std, len(vals)))
    return rows


def _keep_prob_label(keep_prob: float) -> str:
    """Two decimals (0.90), more where the value has them: 0.975 is not a second 0.97 row."""
    two = f"{keep_prob:.2f}"
    return two if float(two) == keep_prob else repr(float(keep_prob))


def format_robustness_table(curves: Dict[str, Dict[float, List[float]]],
                            metric_name: str = "AP") -> str:
    """Plain-text table: one row per keep_prob, one column (mean +- std) per model."""
    keep_probs = sorted({kp for c in curves.values() for kp in c}, reverse=True)
    header = ["keep_prob"] + [f"{label} {metric_name}" for label in curves]
    rows = [header]
    for kp in keep_probs:
        row = [_keep_prob_label(kp)]
        for c in curves.values():
            if kp in c:
                (_, mean, std, n), = [r for r in summarize_runs({kp: c[kp]})]
                row.append(f"{mean:6.2f} +- {std:4.2f} (n={n})")
            else:
                row.append("-")
        rows.append(row)
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
    return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(r, widths)) for r in rows)


def plot_robustness(curves: Dict[str, Dict[float, List[float]]], out_png: os.PathLike,
                    metric_name: str = "AP") -> Path:
    """PNG: metric against inference keep_prob, one line (mean, std band) per model."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for label, c in curves.items():
        rows = summarize_runs(c)
        kps = [r[0] for r in rows]
        means = [r[1] for r in rows]
        stds = [r[2] for r in rows]
        ax.errorbar(kps, means, yerr=stds, marker="o", capsize=3, label=label)
    ax.set_xlabel("keep_prob of DropBlock applied at inference")
    ax.set_ylabel(metric_name)
    ax.invert_xaxis()  # from no drop (1.0) to strong drop, as the paper's figure
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    out_png = Path(out_png)
    fig.savefig(out_png, dpi=100)
    plt.close(fig)
    return out_png


# ----------------------------------------------------------------------------- sweep
SWEEP_FIELDS = ["block_size", "keep_prob", "metric", "value", "output_dir", "fingerprint"]
# In each cell's folder, written before it trains: what it trains (fingerprint and config),
# so that an interrupted cell can be checked before it is resumed.
SWEEP_CELL_FILE = "sweep_cell.json"
# Left out of a cell's fingerprint: where it writes, not what it trains (it differs per
# cell, and the same sweep into another --output-dir is the same experiment). Dotted keys:
# a yacs config's OUTPUT_DIR, a LazyConfig's train.output_dir (a config has one of them).
FINGERPRINT_EXCLUDED_KEYS = ("OUTPUT_DIR", "train.output_dir")
_MEMORY_ADDRESS = re.compile(r" at 0x[0-9a-fA-F]+")


class SweepMismatchError(RuntimeError):
    """A sweep's output folder holds results (CSV rows, checkpoints) that were not made by
    the configuration of the command now run, or that cannot be checked against it."""


class SweepCellsDivergedError(FloatingPointError):
    """Cells of a sweep whose training diverged (detectron2's FloatingPointError: a loss
    became infinite or NaN), raised by `run_sweep` after the other cells trained.

    Attributes:
        values: {(block_size, keep_prob): metric} of the cells that have a value.
        diverged: {(block_size, keep_prob): the error's message} of those that diverged.
    """

    def __init__(self, message: str, values: Dict[Tuple[int, float], float],
                 diverged: Dict[Tuple[int, float], str]):
        super().__init__(message)
        self.values = values
        self.diverged = diverged


def first_test_dataset(cfg: Any, config_file: str) -> str:
    """The DATASETS.TEST entry an analysis evaluates on: the first (DefaultTrainer.test keys
    its results by dataset name when there are several); ValueError when there is none."""
    if not cfg.DATASETS.TEST:
        raise ValueError(f"DATASETS.TEST is empty in {config_file} (+ opts): an analysis evaluates "
                         "on its first entry")
    return cfg.DATASETS.TEST[0]


def first_lazy_test_dataset(cfg: Any, config_file: str) -> str:
    """The LazyConfig counterpart of :func:`first_test_dataset`: the first name of
    `dataloader.test.dataset.names`, to which that key is set (an analysis evaluates one
    dataset, as the yacs tools do; the evaluator's `dataset_name`, an interpolation of it in
    configs/common, follows). ValueError naming the key when there is none, or when the
    evaluator names another dataset than the one the test loader then loads."""
    from omegaconf import OmegaConf

    from .engine.lazy_config_checks import lazy_config_value

    # (an interpolation that does not resolve is refused in one line naming its key)
    key = "dataloader.test.dataset.names"
    names = lazy_config_value(cfg, key)
    names = [names] if isinstance(names, str) else list(names or [])
    if not names:
        raise ValueError(f"{key} is empty or missing in {config_file} (+ opts): an analysis evaluates "
                         "on its first dataset")
    OmegaConf.update(cfg, key, names[0], merge=False)
    evaluated = lazy_config_value(cfg, "dataloader.evaluator.dataset_name")
    if evaluated is not None and evaluated != names[0]:
        # Predictions of one dataset scored against another's annotations.
        raise ValueError(f"dataloader.evaluator.dataset_name={evaluated!r} in {config_file} (+ opts) is not "
                         f"the dataset the analysis evaluates, {key}'s first, {names[0]!r}: set it to "
                         f"\"${{..test.dataset.names}}\" as configs/common/data does")
    return names[0]


def reset_torchscript_functions() -> int:
    """Make the next call of every TorchScript function scripted in this process run as its
    first call in a fresh process does; returns how many functions were reset.

    A sweep trains its cells one after another in one process, and this is the state an
    earlier cell leaves that changes a later one's result. A scripted function's first call
    runs the profiling interpreter, whose backward is eager autograd's; later calls run the
    optimized graph, whose backward is TorchScript's own derivative, which rounds otherwise
    in the last bits. RetinaNet's classification loss is one (fvcore's
    sigmoid_focal_loss_jit): without the reset, only the first cell's iteration 0 took the
    eager gradients, and a short training amplified the difference (the tests' tiny
    synthetic cell, 30 iterations: 0.317 AP trained first in the process, 0.137 second).

    TorchScript has no public reset: functions scripted with torch.jit.script live in its
    private module-level compilation unit, and `_debug_flush_compilation_cache` drops a
    function's profiles and optimized graphs (torch's own tests use it for this). Both are
    looked up defensively; tests/tools/test_analyses.py compares a cell trained after
    another with the same cell trained in a fresh process, so an API that stops working
    fails there, not silently in a sweep.
    """
    compilation_unit = getattr(getattr(torch.jit, "_state", None), "_python_cu", None)
    reset = 0
    for function in compilation_unit.get_functions() if compilation_unit is not None else ():
        flush = getattr(function, "_debug_flush_compilation_cache", None)
        if flush is not None:
            flush()
            reset += 1
    return reset


def sweep_cells(block_sizes: Iterable[int], keep_probs: Iterable[float],
                names: Tuple[str, str] = ("block_size", "keep_prob")) -> List[Tuple[int, float]]:
    """The grid, block_size-major; ValueError naming a bad value and its argument (`names`:
    what the caller calls the two lists, e.g. the tool's flags). Two keep_probs that differ
    but share a cell folder (:func:`sweep_cell_dir` writes 6 significant digits) are refused:
    the second would resume the first's training as its own."""
    block_sizes, keep_probs = list(block_sizes), list(keep_probs)
    folders: Dict[str, float] = {}
    for kp in keep_probs:
        if not 0.0 < kp <= 1.0:
            raise ValueError(f"{names[1]} {kp!r} must be in (0, 1]")
        other = folders.setdefault(f"{kp:g}", kp)
        if other != kp:
            raise ValueError(f"{names[1]} {other!r} and {kp!r} are one cell (folder suffix kp{kp:g}, "
                             "6 significant digits): give values that differ within 6 digits")
    cells = []
    for b in block_sizes:
        if int(b) != b or b < 1:
            raise ValueError(f"{names[0]} {b!r} must be a positive integer")
        cells.extend((int(b), float(kp)) for kp in keep_probs)
    return cells


def _cell_key(block_size: Any, keep_prob: Any) -> Tuple[int, float]:
    """A cell as the CSV and the plan tell cells apart: keep_prob to the 6 significant
    digits of its folder name (:func:`sweep_cell_dir`), so two values with two folders are
    two cells (6 decimals made 0.05 and 0.0500004 one)."""
    return int(block_size), float(f"{float(keep_prob):g}")


def sweep_cell_dir(output_dir: os.PathLike, block_size: int, keep_prob: float) -> str:
    """The folder a cell trains in: ``output_dir/b<block_size>_kp<keep_prob>``."""
    return os.path.join(output_dir, f"b{block_size}_kp{keep_prob:g}")


def _plain_config(cfg: Any) -> Dict[str, Any]:
    """``cfg`` (a detectron2 CfgNode, a LazyConfig DictConfig or a nested dict) as plain
    JSON data. A LazyConfig is taken as written, interpolations unresolved: resolved,
    `"${train.output_dir}/inference"` would put the cell's folder into the fingerprint; a
    class or function (a `_target_`, `block_class=...`) by its dotted name, whose repr may
    hold an address that differs per process; a functools.partial by its function's name
    and its arguments; any other object by its str without the memory addresses in it."""
    from omegaconf import DictConfig, OmegaConf

    if isinstance(cfg, DictConfig):
        cfg = OmegaConf.to_container(cfg, resolve=False)

    def plain(v: Any) -> Any:
        if isinstance(v, dict):
            return {str(k): plain(x) for k, x in v.items()}
        if isinstance(v, (list, tuple)):
            return [plain(x) for x in v]
        if isinstance(v, functools.partial):  # callable, but no __qualname__
            return {"functools.partial": plain(v.func), "args": plain(v.args), "keywords": plain(v.keywords)}
        if callable(v) and hasattr(v, "__qualname__"):
            return f"{v.__module__}.{v.__qualname__}"
        if v is None or isinstance(v, (str, int, float)):
            return v
        return _MEMORY_ADDRESS.sub("", str(v))  # "<x.Y object at 0x7f...>": another per process

    return plain(cfg)


def sweep_cell_output_dir(cfg: Any) -> str:
    """The folder a cell's config trains in: its OUTPUT_DIR (yacs) or train.output_dir
    (LazyConfig), the first of FINGERPRINT_EXCLUDED_KEYS it has."""
    for key in FINGERPRINT_EXCLUDED_KEYS:
        node = cfg
        for part in key.split("."):
            node = node.get(part) if hasattr(node, "get") else None
        if node is not None:
            return str(node)
    raise KeyError(f"a sweep cell's config has none of {', '.join(FINGERPRINT_EXCLUDED_KEYS)}")


def fingerprinted_config(cfg: Any) -> Dict[str, Any]:
    """``cfg`` (a detectron2 CfgNode, a LazyConfig or nested dict) as plain JSON data
    (:func:`_plain_config`), without FINGERPRINT_EXCLUDED_KEYS: what a cell's fingerprint
    covers."""
    data = _plain_config(cfg)
    for key in FINGERPRINT_EXCLUDED_KEYS:
        *parents, last = key.split(".")
        node = data
        for part in parents:
            node = node.get(part) if isinstance(node, dict) else None
        if isinstance(node, dict):
            node.pop(last, None)
    return data


def config_fingerprint(cfg: Any) -> str:
    """sha256 of the config as :func:`fingerprinted_config` gives it (every key, defaults
    included: a changed default is a changed experiment; a LazyConfig as written,
    interpolations unresolved), its output folder excluded; stable across processes
    (sorted keys)."""
    import hashlib

    text = json.dumps(fingerprinted_config(cfg), sort_keys=True, separators=(",", ":"),
                      default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def _config_diff(recorded: Dict[str, Any], now: Dict[str, Any], limit: int = 6) -> str:
    """'KEY: recorded -> now, ...' for the first ``limit`` keys that differ."""
    from .config import ABSENT, config_changes  # here: this module imports no detectron2 at import

    changes = config_changes(recorded, now)
    parts = [f"{key}: {old!r} -> {new!r}" for key, old, new in changes[:limit]]
    if len(changes) > limit:
        parts.append(f"... {len(changes) - limit} more")
    if changes and all(ABSENT in (old, new) for _, old, new in changes):
        # A sweep started under another detectron2 version: its get_cfg() has other keys.
        parts.append("each a key that one side lacks: typically a sweep begun under another detectron2 "
                     "(or dropblock-det) version, whose default config has other keys")
    return ", ".join(parts)


def _read_cell_record(cell_dir: str) -> Optional[Dict[str, Any]]:
    """The cell folder's SWEEP_CELL_FILE (None if absent); SweepMismatchError naming it when
    it cannot be read (a broken record cannot vouch for a checkpoint)."""
    path = os.path.join(cell_dir, SWEEP_CELL_FILE)
    if not os.path.isfile(path):
        return None
    try:
        with open(path) as f:
            record = json.load(f)
        if not isinstance(record.get("fingerprint"), str):
            raise ValueError("no 'fingerprint' string")
    except (OSError, ValueError, AttributeError) as e:
        raise SweepMismatchError(f"{path}: cannot read the cell's record ({e}); move the folder "
                                 f"{cell_dir} away or use another --output-dir") from None
    return record


def _write_cell_record(cell_dir: str, block_size: int, keep_prob: float, fingerprint: str,
                       config: Dict[str, Any]) -> None:
    os.makedirs(cell_dir, exist_ok=True)
    path = os.path.join(cell_dir, SWEEP_CELL_FILE)
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump({"block_size": block_size, "keep_prob": keep_prob, "fingerprint": fingerprint,
                   "config": config}, f, indent=1, sort_keys=True, default=str)
    os.replace(tmp, path)  # atomic: an interrupt never leaves half a record


def _sweep_csv_header(path: Path) -> Optional[List[str]]:
    if not path.is_file() or path.stat().st_size == 0:
        return None
    with open(path, newline="") as f:
        return next(csv.reader(f), None)


def read_sweep_csv(path: os.PathLike) -> Dict[Tuple[int, float], Dict[str, Any]]:
    """{(block_size, keep_prob): row} of the finished cells recorded in ``path`` (the last
    row of a cell wins). A row of a CSV without a fingerprint column has none.
    SweepMismatchError naming the file and line of a row that cannot be read."""
    path = Path(path)
    if not path.is_file():
        return {}
    done = {}
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        for row in reader:
            try:
                # csv gives None for a missing field, and a None key for extra ones.
                if None in row or None in row.values():
                    raise ValueError(f"{len([v for v in row.values() if v is not None])} fields")
                key = _cell_key(row["block_size"], row["keep_prob"])
                row["value"] = float(row["value"])
                # A row cut inside its fingerprint would read as another configuration's.
                if "fingerprint" in row and not re.fullmatch(r"[0-9a-f]{64}", row["fingerprint"]):
                    raise ValueError(f"fingerprint {row['fingerprint']!r} is not a sha256")
            except (KeyError, ValueError) as e:
                # A sweep stopped (or a disk filled) while it appended the row.
                raise SweepMismatchError(
                    f"{path}, line {reader.line_num}: cannot read this row ({e}); a row cut short when "
                    "a sweep was stopped while writing it? Delete that line (its cell is then resumed "
                    "from its checkpoint, or trained again) or use another --output-dir") from None
            done[key] = row
    return done


def run_sweep(cells: Sequence[Tuple[int, float]],
              train_cell: Callable[[int, float, Any, bool], float],
              csv_path: os.PathLike, metric_name: str = "bbox/AP",
              log: Callable[[str], None] = print, *,
              cell_config: Callable[[int, float], Any],
              ) -> Dict[Tuple[int, float], float]:
    """Train every cell not yet recorded in ``csv_path``, appending one CSV row as each
    finishes (so an interrupted sweep resumes where it stopped). Returns {cell: value}.

    ``cell_config(block_size, keep_prob)`` is the cell's config (a CfgNode, a LazyConfig
    or a nested dict) whose OUTPUT_DIR (LazyConfig: train.output_dir) is the cell's folder; its fingerprint
    (``config_fingerprint``) goes to the CSV and to the folder's SWEEP_CELL_FILE.
    ``train_cell(block_size, keep_prob, config, resume) -> metric value`` trains exactly
    that config, resuming from the folder's last checkpoint when ``resume``.

    Before anything trains, every cell is checked: a CSV row is reused only when its
    fingerprint is this config's, and a folder with a checkpoint but no CSV row (an
    interrupted cell) is resumed only when its recorded fingerprint is this config's. The
    CSV's rows of cells outside ``cells`` must have the fingerprint ``cell_config`` gives
    their cell too, so that every row of the CSV is one experiment's. Anything else
    (another config's row or checkpoint, a CSV or checkpoint without a fingerprint) raises
    SweepMismatchError listing every such cell; nothing is deleted or overwritten.

    A cell whose training diverges (FloatingPointError, detectron2's "Loss became infinite
    or NaN") gets no row; the other cells train, then SweepCellsDivergedError names the
    diverged ones and carries the others' values.
    """
    from .engine.checkpoint import last_checkpoint
    from .engine.output_dir import archive_previous_run, claim_output_dir

    csv_path = Path(csv_path)
    header = _sweep_csv_header(csv_path)
    if header is not None and "fingerprint" not in header:
        # Its rows cannot be checked, and a fingerprinted row cannot be appended under its
        # header without rewriting the user's file: refused rather than mixed in.
        raise SweepMismatchError(
            f"{csv_path} has no 'fingerprint' column (it was written by an earlier "
            "tools/sweep.py): its rows cannot be checked against this command's configuration, "
            "so they are not reused. Nothing was trained or changed. Use another --output-dir "
            f"for this sweep, or move {csv_path} and its cell folders away to rerun it here.")
    if header is not None and header != SWEEP_FIELDS:
        raise SweepMismatchError(f"{csv_path} has the columns {header}, expected {SWEEP_FIELDS}: "
                                 "use another --output-dir")
    done = read_sweep_csv(csv_path)

    # Plan every cell first, so that a conflict anywhere stops the sweep before any training.
    plan = []  # (b, kp, config, fingerprint, cell_dir, action: reuse | train | resume, checkpoint)
    problems = []
    seen = set()
    for b, kp in cells:
        key = _cell_key(b, kp)
        if key in seen:  # a value given twice: one cell, trained once
            continue
        seen.add(key)
        config = cell_config(b, kp)
        fingerprint = config_fingerprint(config)
        cell_dir = sweep_cell_output_dir(config)
        name = f"block_size={b} keep_prob={kp:g}"
        record = _read_cell_record(cell_dir)
        if key in done:
            if done[key].get("fingerprint", "") == fingerprint:
                plan.append((b, kp, config, fingerprint, cell_dir, "reuse", ""))
            else:
                problems.append(_foreign_row(name, csv_path, done[key], config, fingerprint, record))
            continue
        checkpoint = last_checkpoint(cell_dir)
        if record is None:
            if checkpoint:
                problems.append(
                    f"{name}: {cell_dir} has a checkpoint ({checkpoint}) but no {SWEEP_CELL_FILE} "
                    "(an earlier tools/sweep.py?), so it cannot be checked against this "
                    "configuration")
                continue
        elif record["fingerprint"] != fingerprint:
            diff = _config_diff(record.get("config", {}), fingerprinted_config(config))
            problems.append(
                f"{name}: {os.path.join(cell_dir, SWEEP_CELL_FILE)} records another configuration"
                f" (fingerprint {record['fingerprint'][:12]}, this command's is {fingerprint[:12]};"
                f" changed: {diff})" + (f", and the folder has its checkpoint {checkpoint}"
                                        if checkpoint else ""))
            continue
        plan.append((b, kp, config, fingerprint, cell_dir, "resume" if checkpoint else "train", checkpoint))
    # The rows of cells outside this command's grid must be of its configuration too: the
    # heatmap, and anyone reading sweep.csv, take all its rows for one experiment.
    for key, row in sorted(done.items()):
        if key not in seen:
            b, kp = key[0], float(row["keep_prob"])  # as written: the key's is rounded
            config = cell_config(b, kp)
            fingerprint = config_fingerprint(config)
            if row.get("fingerprint", "") != fingerprint:
                problems.append(_foreign_row(
                    f"block_size={b} keep_prob={kp:g} (not in this command's grid)", csv_path, row,
                    config, fingerprint, _read_cell_record(sweep_cell_output_dir(config))))
    if problems:
        raise SweepMismatchError(
            f"the sweep in {csv_path.parent} holds results of another configuration than this "
            "command's:\n  - " + "\n  - ".join(problems) + "\nNothing was trained or changed. "
            "Use another --output-dir for this configuration, or, to retrain these cells here, "
            f"delete their rows (if any) from {csv_path} and their folders.")

    # A cell's folder is its run's OUTPUT_DIR: hold its lock as a train_net run holds its own,
    # so that no other run (a train_net or main_job given that folder) moves the cell's files
    # aside or writes its checkpoints there while the sweep trains it. All before training.
    for b, kp, _, _, cell_dir, action, _ in plan:
        if action != "reuse":
            claim_output_dir(cell_dir, f"the folder of cell block_size={b} keep_prob={kp:g}")

    values = {}
    diverged: Dict[Tuple[int, float], str] = {}
    for i, (b, kp, config, fingerprint, cell_dir, action, checkpoint) in enumerate(plan):
        prefix = f"[sweep] cell {i + 1}/{len(plan)} block_size={b} keep_prob={kp}:"
        if action == "reuse":
            value = done[_cell_key(b, kp)]["value"]
            log(f"{prefix} already in {csv_path}, {metric_name}={value:.3f}")
            values[(b, kp)] = value
            continue
        if action == "resume":
            log(f"{prefix} resuming the interrupted training from {checkpoint} "
                "(same configuration)")
        else:
            # A cell stopped before its first checkpoint starts again at iteration 0: the
            # attempt's files move aside, else detectron2 appends to its metrics.json.
            archived = archive_previous_run(cell_dir)
            log(f"{prefix} training" + (f" (an earlier attempt's files were moved to {archived})"
                                        if archived else ""))
            _write_cell_record(cell_dir, b, kp, fingerprint, fingerprinted_config(config))
        try:
            value = float(train_cell(b, kp, config, action == "resume"))
        except FloatingPointError as e:
            # Its own, as a low keep_prob may diverge where the others train: the rest of the
            # grid goes on. No row: a rerun resumes the cell from its last checkpoint.
            diverged[(b, kp)] = str(e)
            log(f"{prefix} diverged ({e}); its folder {cell_dir} is kept, not recorded in {csv_path}; "
                "going on with the other cells")
            continue
        new_file = _sweep_csv_header(csv_path) is None
        csv_path.parent.mkdir(parents=True, exist_ok=True)
        with open(csv_path, "a", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=SWEEP_FIELDS)
            if new_file:
                writer.writeheader()
            writer.writerow({"block_size": b, "keep_prob": kp, "metric": metric_name,
                             "value": value, "output_dir": cell_dir, "fingerprint": fingerprint})
        values[(b, kp)] = value
        log(f"{prefix} {metric_name}={value:.3f}")
    if diverged:
        raise SweepCellsDivergedError(
            f"{len(diverged)} of {len(plan)} cells diverged and have no value in {csv_path}:\n  - "
            + "\n  - ".join(f"block_size={b} keep_prob={kp:g}: {message}" for (b, kp), message in diverged.items())
            + "\nThe other cells are recorded. A rerun of the same command trains these again from their "
            "last checkpoints (the same configuration: it may diverge again); to train them otherwise (a "
            "lower learning rate, gradient clipping), use another --output-dir.", values, diverged)
    return values


def _foreign_row(name: str, csv_path: Path, row: Dict[str, Any], config: Any, fingerprint: str,
                 record: Optional[Dict[str, Any]]) -> str:
    """The problem line for a CSV row whose fingerprint is not this command's for its cell,
    with the changed keys when the cell's folder records the row's configuration."""
    recorded = row.get("fingerprint", "")
    diff = ""
    if record is not None and record["fingerprint"] == recorded and "config" in record:
        diff = "; changed: " + _config_diff(record["config"], fingerprinted_config(config))
    return (f"{name}: its row in {csv_path} was made by another configuration (fingerprint "
            f"{recorded[:12] or '<empty>'}, this command's is {fingerprint[:12]}{diff})")


def plot_sweep_heatmap(values: Dict[Tuple[int, float], float], out_png: os.PathLike,
                       metric_name: str = "bbox/AP") -> Path:
    """Heatmap PNG: block_size (rows) x keep_prob (columns), cells annotated."""
    import matplotlib.pyplot as plt

    blocks = sorted({b for b, _ in values})
    kps = sorted({kp for _, kp in values}, reverse=True)
    grid = [[values.get((b, kp), math.nan) for kp in kps] for b in blocks]
    fig, ax = plt.subplots(figsize=(1.4 * len(kps) + 2, 1.0 * len(blocks) + 1.5))
    im = ax.imshow(grid, cmap="viridis", aspect="auto")
    ax.set_xticks(range(len(kps)))
    ax.set_xticklabels([f"{kp:g}" for kp in kps])
    ax.set_yticks(range(len(blocks)))
    ax.set_yticklabels([str(b) for b in blocks])
    ax.set_xlabel("keep_prob")
    ax.set_ylabel("block_size")
    finite = [v for row in grid for v in row if not math.isnan(v)]
    middle = (min(finite) + max(finite)) / 2 if finite else 0.0
    for i, row in enumerate(grid):
        for j, v in enumerate(row):
            if not math.isnan(v):
                # dark text on the bright (high) end of viridis, white on the dark end
                ax.text(j, i, f"{v:.1f}", ha="center", va="center",
                        color="k" if v > middle else "w")
            elif (blocks[i], kps[j]) in values:
                # A cell with no AP (no detection scored, say): said, where it was left blank.
                ax.text(j, i, "nan", ha="center", va="center", color="k")
    fig.colorbar(im, ax=ax, label=metric_name)
    fig.tight_layout()
    out_png = Path(out_png)
    fig.savefig(out_png, dpi=100)
    plt.close(fig)
    return out_png
