"""Build PASCAL VOC 2012 "train_aug" semantic-segmentation ground truth from VOC + SBD.

Inputs (the two official downloads, unpacked):

    VOCdevkit/VOC2012/
      JPEGImages/<id>.jpg
      SegmentationClass/<id>.png        palette ("P") PNGs: the palette INDEX is the class,
                                        0 background, 1..20 objects, 255 boundary/ignore
      ImageSets/Segmentation/train.txt, val.txt
    benchmark_RELEASE/dataset/           (SBD, Hariharan et al. 2011)
      cls/<id>.mat                      GTcls.Segmentation: uint8 class map, 0..20
      train.txt, val.txt

Outputs (under `out`, by default the VOC2012 folder itself):

    SegmentationClassAug/<id>.png       single-channel ("L") index PNGs, same values as above
    ImageSets/SegmentationAug/train_aug.txt   VOC train + SBD train + SBD val - VOC val
                                              (10,582 ids on the full data)
    ImageSets/SegmentationAug/val.txt         VOC val (1,449 ids)

Why convert at all: detectron2's `DatasetMapper` reads ground truth with
`Image.convert("L")`, which maps a palette PNG's colours to luminance (class 15, "person",
becomes 147). An "L" PNG holding the class index survives that conversion unchanged.

Where an id has both, VOC's own annotation wins over SBD's (it is finer and marks object
boundaries 255). Every input is checked as it is read; missing or malformed files raise
`FileNotFoundError` / `ValueError` naming the file. Outputs are written atomically (temporary
file + rename, with the usual umask permissions), each label with its source's modification
time, and a label whose time equals its source's is kept, so the preparation can be
interrupted and re-run, and a changed source (even one restored with an older date) is
converted again. (On a destination filesystem with coarser timestamps than the source's,
FAT's 2 s say, the times never match and a re-run converts everything again: correct,
only slower.)

Files it did not write are never replaced without `overwrite`: other tools use the same
names (DrSleep's SegmentationClassAug.zip, deeplab-pytorch's
ImageSets/SegmentationAug/train_aug.txt). Every label PNG it writes carries a PNG text
chunk saying so, and `ImageSets/SegmentationAug/.prepare_voc_sem_seg.json` records the
SHA-256 of the split files it wrote; any other file in the way is reported
(`FileExistsError`, naming the files) before anything is written.
"""
from __future__ import annotations

import hashlib
import json
import os
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Callable, Dict, Iterable, List, Optional, Tuple, Union

import numpy as np
from PIL import Image
from PIL.PngImagePlugin import PngInfo

__all__ = [
    "NUM_VOC_CLASSES",
    "VOC_IGNORE_LABEL",
    "AUG_LABEL_DIRNAME",
    "AUG_SPLIT_DIRNAME",
    "PrepareSummary",
    "prepare_voc_sem_seg",
    "read_voc_label",
    "read_sbd_label",
    "read_split_file",
]

NUM_VOC_CLASSES = 21  # background + 20 object classes
VOC_IGNORE_LABEL = 255
AUG_LABEL_DIRNAME = "SegmentationClassAug"
AUG_SPLIT_DIRNAME = os.path.join("ImageSets", "SegmentationAug")
_VALID_LABELS = frozenset(range(NUM_VOC_CLASSES)) | {VOC_IGNORE_LABEL}
# PNG text chunk of every label written here: a label PNG without it is someone else's.
_PNG_MARK_KEY, _PNG_MARK = "Software", "dropblock-det prepare_voc_sem_seg"
# Beside the split files: {split file name: SHA-256 of the content written here}.
_SPLIT_RECORD_NAME = ".prepare_voc_sem_seg.json"

PathLike = Union[str, os.PathLike]


@dataclass
class PrepareSummary:
    """What `prepare_voc_sem_seg` did: split sizes and how many label PNGs it (re)wrote."""

    num_train_aug: int
    num_val: int
    num_from_voc: int  # ids whose label comes from VOC's SegmentationClass
    num_from_sbd: int  # ids whose label comes from SBD's cls/*.mat
    num_written: int  # label PNGs written in this run
    num_kept: int  # label PNGs already up to date, left as they were
    label_dir: Path
    split_dir: Path


def _require_dir(path: Path, what: str) -> Path:
    if not path.is_dir():
        raise FileNotFoundError(f"{what} folder not found: {path}")
    return path


def _require_file(path: Path, what: str) -> Path:
    if not path.is_file():
        raise FileNotFoundError(f"{what} not found: {path}")
    return path


def read_split_file(path: PathLike) -> List[str]:
    """Image ids listed in a VOC/SBD split file, one per line, in file order.

    Raises FileNotFoundError if missing, ValueError if not UTF-8 text, empty or if a line
    holds more than one token (e.g. a detection split file "<id> <flag>" given by mistake).
    """
    path = Path(path)
    _require_file(path, "split file")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as e:  # a UTF-16 list, a binary file: the codec's message names no file
        raise ValueError(f"{path} is not a UTF-8 text file of image ids ({type(e).__name__}: {e})") from None
    ids = []
    for lineno, line in enumerate(text.splitlines(), start=1):
        line = line.strip()
        if not line:
            continue
        if len(line.split()) != 1:
            raise ValueError(f"{path}:{lineno}: expected one image id per line, got {line!r}")
        ids.append(line)
    if not ids:
        raise ValueError(f"split file lists no image ids: {path}")
    return ids


def _check_label_values(label: np.ndarray, path: Path) -> None:
    values = np.unique(label)
    bad = sorted(int(v) for v in values if int(v) not in _VALID_LABELS)
    if bad:
        raise ValueError(
            f"{path}: label values {bad[:10]} are not VOC classes "
            f"(expected 0..{NUM_VOC_CLASSES - 1} or {VOC_IGNORE_LABEL})"
        )


def read_voc_label(path: PathLike) -> np.ndarray:
    """Class-index map (H, W) uint8 of a VOC SegmentationClass PNG.

    VOC's PNGs are palette ("P") images whose palette index is the class; single-channel
    ("L") index PNGs are accepted too. Any other mode (e.g. an RGB rendering of the colours)
    is rejected, as are unreadable files and values outside 0..20, 255.
    """
    path = Path(path)
    _require_file(path, "VOC label PNG")
    try:
        with Image.open(path) as img:
            mode = img.mode
            if mode not in ("P", "L"):
                raise ValueError(
                    f"{path}: label PNG has mode {mode!r}; expected a palette ('P') PNG whose "
                    "index is the class (or a single-channel 'L' index PNG)"
                )
            # np.array of a "P" image gives the palette indices, not the colours.
            label = np.array(img, dtype=np.uint8)
    except ValueError:
        raise
    except (OSError, SyntaxError) as e:  # PIL: UnidentifiedImageError, truncated/broken chunks
        raise ValueError(f"corrupt or unreadable label PNG {path}: {e}") from None
    # "P" and "L" are single-band modes: np.array gives a 2-D (H, W) map.
    _check_label_values(label, path)
    return label


def read_sbd_label(path: PathLike) -> np.ndarray:
    """Class-index map (H, W) uint8 of an SBD `cls/<id>.mat` file (field GTcls.Segmentation)."""
    from scipy.io import loadmat  # scipy is only needed for this step

    path = Path(path)
    _require_file(path, "SBD .mat file")
    try:
        mat = loadmat(str(path), squeeze_me=True, struct_as_record=False)
    except Exception as e:  # scipy raises ValueError/TypeError/MatReadError on garbage
        raise ValueError(f"corrupt or unreadable SBD .mat file {path}: {e}") from None
    if "GTcls" not in mat:
        found = sorted(k for k in mat if not k.startswith("__"))
        raise ValueError(f"{path}: no 'GTcls' variable (found {found})")
    segmentation = getattr(mat["GTcls"], "Segmentation", None)
    if segmentation is None:
        raise ValueError(f"{path}: 'GTcls' has no 'Segmentation' field")
    label = np.asarray(segmentation)
    if label.ndim != 2 or label.size == 0:
        raise ValueError(f"{path}: GTcls.Segmentation must be a 2-D map, got shape {label.shape}")
    # A complex, string or cell-array map is not a class map; np.mod below would raise a
    # TypeError that names no file.
    if label.dtype.kind not in "biuf":
        raise ValueError(f"{path}: GTcls.Segmentation must hold integer class indices, got dtype {label.dtype}")
    if not np.issubdtype(label.dtype, np.integer):
        if not np.all(np.equal(np.mod(label, 1), 0)):
            raise ValueError(f"{path}: GTcls.Segmentation holds non-integer values")
    if label.min() < 0 or label.max() > 255:
        raise ValueError(f"{path}: GTcls.Segmentation values outside 0..255")
    label = label.astype(np.uint8)
    _check_label_values(label, path)
    return label


def _image_size(path: Path) -> Tuple[int, int]:
    """(height, width) of an image, reading only its header."""
    _require_file(path, "image")
    try:
        with Image.open(path) as img:
            width, height = img.size
    except (OSError, SyntaxError) as e:
        raise ValueError(f"corrupt or unreadable image {path}: {e}") from None
    return height, width


def _write_atomic(dst: Path, write: Callable[[IO], None], binary: bool, mtime_ns: Optional[int] = None) -> None:
    """Write `dst` through `write(file)` next to it and rename: a crash never leaves a
    truncated file that a later run would mistake for a finished one. The temporary file is
    opened with mode 0o666, so the kernel applies the umask as for a plain open()
    (tempfile.mkstemp's 0600 would make a shared dataset folder unreadable to other users),
    and gets the modification time `mtime_ns` when given."""
    tmp = dst.parent / f".{dst.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp"
    fd = os.open(tmp, os.O_CREAT | os.O_EXCL | os.O_WRONLY | getattr(os, "O_BINARY", 0), 0o666)
    try:
        with os.fdopen(fd, "wb" if binary else "w") as f:
            write(f)
        if mtime_ns is not None:
            os.utime(tmp, ns=(mtime_ns, mtime_ns))
        os.replace(tmp, dst)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def _write_label_png(label: np.ndarray, dst: Path, source_mtime_ns: int) -> None:
    # A 2-D uint8 array becomes an "L" image (no `mode=`: deprecated in Pillow 11). The
    # source's mtime marks which version of the source this label was converted from; the
    # text chunk, that this module wrote it (readers of the pixels ignore it).
    image = Image.fromarray(np.ascontiguousarray(label, dtype=np.uint8))
    mark = PngInfo()
    mark.add_text(_PNG_MARK_KEY, _PNG_MARK)
    _write_atomic(dst, lambda f: image.save(f, format="PNG", pnginfo=mark), binary=True,
                  mtime_ns=source_mtime_ns)


def _label_written_here(path: Path) -> bool:
    """Whether the label PNG `path` carries this module's mark (reads the header only)."""
    try:
        with Image.open(path) as img:
            return img.info.get(_PNG_MARK_KEY) == _PNG_MARK
    except (OSError, SyntaxError):  # unreadable (or a folder): not a label written here
        return False


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _read_split_record(split_dir: Path) -> Dict[str, str]:
    try:
        record = json.loads((split_dir / _SPLIT_RECORD_NAME).read_text())
    except (OSError, ValueError):
        return {}
    return record if isinstance(record, dict) else {}


def _split_file_in_the_way(path: Path, text: str, record: Dict[str, str]) -> bool:
    """True when `path` exists with other content than `text` and is not the content this
    module last wrote there (per `record`): someone else's file."""
    if not path.exists():
        return False
    try:
        data = path.read_bytes()
    except OSError:  # a folder, or unreadable: not a split file written here
        return True
    return data != text.encode() and record.get(path.name) != _sha256(data)


def _ordered_union(*id_lists: Iterable[str]) -> List[str]:
    seen: Dict[str, None] = {}
    for ids in id_lists:
        for i in ids:
            seen.setdefault(i, None)
    return list(seen)


def prepare_voc_sem_seg(
    voc_dir: PathLike,
    sbd_dir: PathLike,
    out_dir: Optional[PathLike] = None,
    *,
    overwrite: bool = False,
    check_image_sizes: bool = True,
) -> PrepareSummary:
    """Write index-PNG ground truth and the train_aug / val split files (see module doc).

    Args:
        voc_dir: the VOC2012 folder (containing JPEGImages, SegmentationClass, ImageSets).
        sbd_dir: SBD's `benchmark_RELEASE` folder, or its `dataset` subfolder.
        out_dir: where SegmentationClassAug/ and ImageSets/SegmentationAug/ are written;
            defaults to `voc_dir`, the layout `voc_2012_sem_seg_*` expects.
        overwrite: rewrite every label PNG even if an up-to-date one exists, and replace
            label PNGs and split files that this function did not write (refused otherwise).
        check_image_sizes: check every label has its JPEG's size (reads JPEG headers only).

    Returns:
        A `PrepareSummary`. Raises FileNotFoundError / ValueError naming the missing or
        malformed file before anything is written for it, and FileExistsError naming the
        files in the way that it did not write (unless `overwrite`) before writing anything.
    """
    voc_dir = _require_dir(Path(voc_dir), "VOC2012")
    sbd_dir = _require_dir(Path(sbd_dir), "SBD benchmark_RELEASE")
    if (sbd_dir / "dataset").is_dir():
        sbd_dir = sbd_dir / "dataset"
    out_dir = Path(out_dir) if out_dir is not None else voc_dir

    image_dir = _require_dir(voc_dir / "JPEGImages", "VOC JPEGImages")
    voc_label_dir = _require_dir(voc_dir / "SegmentationClass", "VOC SegmentationClass")
    voc_split_dir = _require_dir(
        voc_dir / "ImageSets" / "Segmentation", "VOC ImageSets/Segmentation"
    )
    sbd_label_dir = _require_dir(sbd_dir / "cls", "SBD cls")

    voc_train = read_split_file(voc_split_dir / "train.txt")
    voc_val = read_split_file(voc_split_dir / "val.txt")
    sbd_train = read_split_file(sbd_dir / "train.txt")
    sbd_val = read_split_file(sbd_dir / "val.txt")

    val_ids = set(voc_val)
    train_aug = [i for i in _ordered_union(voc_train, sbd_train, sbd_val) if i not in val_ids]
    all_ids = _ordered_union(train_aug, voc_val)

    # Decide every id's source and check that it exists before converting anything, so that
    # a missing file is reported at once rather than after minutes of conversion.
    voc_labelled = set(voc_train) | val_ids
    sources: Dict[str, Tuple[str, Path]] = {}
    for image_id in all_ids:
        voc_png = voc_label_dir / f"{image_id}.png"
        if image_id in voc_labelled or voc_png.is_file():
            sources[image_id] = ("voc", _require_file(voc_png, f"VOC label of {image_id!r}"))
        else:
            mat = sbd_label_dir / f"{image_id}.mat"
            sources[image_id] = ("sbd", _require_file(mat, f"SBD label of {image_id!r}"))
        _require_file(image_dir / f"{image_id}.jpg", f"image of {image_id!r}")

    label_dir = out_dir / AUG_LABEL_DIRNAME
    split_dir = out_dir / AUG_SPLIT_DIRNAME
    split_texts = {name: "".join(f"{i}\n" for i in ids)
                   for name, ids in (("train_aug.txt", train_aug), ("val.txt", voc_val))}

    to_convert: List[Tuple[str, str, Path, Path, int]] = []
    kept = 0
    for image_id in all_ids:
        kind, src = sources[image_id]
        dst = label_dir / f"{image_id}.png"
        source_mtime_ns = src.stat().st_mtime_ns
        # Kept only when converted from this very version of the source (same mtime): a
        # source replaced by an older-dated copy (tar x, cp -p, rsync -t) is converted again.
        if not overwrite and dst.is_file() and dst.stat().st_mtime_ns == source_mtime_ns:
            kept += 1
        else:
            to_convert.append((image_id, kind, src, dst, source_mtime_ns))

    if not overwrite:
        # Another tool's files under the same names (see module doc) are the user's data:
        # refuse before writing anything rather than replace them one by one.
        record = _read_split_record(split_dir)
        in_the_way = [dst for _, _, _, dst, _ in to_convert
                      if dst.exists() and not _label_written_here(dst)]
        in_the_way += [split_dir / name for name, text in split_texts.items()
                       if _split_file_in_the_way(split_dir / name, text, record)]
        if in_the_way:
            shown = ", ".join(str(p) for p in in_the_way[:3])
            more = f" and {len(in_the_way) - 3} more" if len(in_the_way) > 3 else ""
            raise FileExistsError(
                f"{len(in_the_way)} file(s) in the way were not written by "
                f"prepare_voc_sem_seg: {shown}{more}. Move them away or choose another output "
                "folder (--out), or pass --overwrite (overwrite=True) to replace them")

    label_dir.mkdir(parents=True, exist_ok=True)
    split_dir.mkdir(parents=True, exist_ok=True)

    written = 0
    for image_id, kind, src, dst, source_mtime_ns in to_convert:
        label = read_voc_label(src) if kind == "voc" else read_sbd_label(src)
        if check_image_sizes:
            image_path = image_dir / f"{image_id}.jpg"
            size = _image_size(image_path)
            if label.shape != size:
                raise ValueError(
                    f"{src}: label is {label.shape[0]}x{label.shape[1]} (HxW) but its image "
                    f"{image_path} is {size[0]}x{size[1]}"
                )
        _write_label_png(label, dst, source_mtime_ns)
        written += 1

    # Split files last: their presence means every label they list is in place. Each one's
    # hash is recorded after it is written, so that a later run with other inputs may
    # replace it (a crash in between leaves a file this run's re-run writes identically).
    record = _read_split_record(split_dir)
    for name, text in split_texts.items():
        data = text.encode()  # bytes: the recorded hash is of exactly what is on disk
        _write_atomic(split_dir / name, lambda f, data=data: f.write(data), binary=True)
        record[name] = _sha256(data)
        _write_atomic(split_dir / _SPLIT_RECORD_NAME,
                      lambda f, r=dict(record): json.dump(r, f, indent=1, sort_keys=True),
                      binary=False)

    num_from_voc = sum(1 for kind, _ in sources.values() if kind == "voc")
    return PrepareSummary(
        num_train_aug=len(train_aug),
        num_val=len(voc_val),
        num_from_voc=num_from_voc,
        num_from_sbd=len(sources) - num_from_voc,
        num_written=written,
        num_kept=kept,
        label_dir=label_dir,
        split_dir=split_dir,
    )
