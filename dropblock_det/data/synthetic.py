"""Deterministic synthetic datasets, so that everything runs on a machine with no downloads.

Two datasets are written under one root (``$DETECTRON2_DATASETS`` or ``./datasets``):

``synthetic_det/`` - object detection in COCO format::

    synthetic_det/
      manifest.json                    generation parameters, library versions and every
                                       file written (validity check)
      train/000000.jpg ...             RGB images, image_size x image_size
      val/000000.jpg ...
      annotations/instances_train.json
      annotations/instances_val.json

  Every image has a textured background, clutter (thin lines and small specks that are not
  objects), and 1..max_objects filled shapes of ``SYNTHETIC_DET_CLASSES`` with varied sizes
  and colours. Later shapes may partly cover earlier ones (occlusion), bounded so that every
  object keeps most of its area visible; boxes are the tight box of the visible pixels.

``synthetic_sem_seg/`` - semantic segmentation in VOC layout::

    synthetic_sem_seg/
      manifest.json
      JPEGImages/<id>.jpg
      SegmentationClass/<id>.png       single-channel index PNG: 0 background, 1..K classes,
                                       255 ignore (a one-pixel band on shape borders, as VOC)
      ImageSets/Segmentation/train.txt, val.txt

Both are registered as ``synthetic_det_{train,val}`` and ``synthetic_sem_seg_{train,val}``
when ``dropblock_det`` is imported; registration only records paths, the files may be
created later (``datasets/make_synthetic.py`` or :func:`ensure_synthetic_datasets`).
"""
from __future__ import annotations

import contextlib
import json
import math
import numbers
import os
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List, Optional, Tuple

import numpy as np
import PIL
from PIL import Image

SYNTHETIC_DET_CLASSES: Tuple[str, ...] = ("circle", "square", "triangle")
SYNTHETIC_SEM_SEG_CLASSES: Tuple[str, ...] = ("background", "circle", "square", "triangle")
SEM_SEG_IGNORE_LABEL = 255

DET_DIRNAME = "synthetic_det"
SEM_SEG_DIRNAME = "synthetic_sem_seg"
MANIFEST_NAME = "manifest.json"
# Bump when the drawing code changes, so old folders are regenerated instead of reused.
# 2: shapes and clutter rasterised in numpy (1: by Pillow's ImageDraw, whose polygons moved
# by a pixel between Pillow 9.5 and 10, so the two supported environments wrote other sets).
GENERATOR_VERSION = 2

DEFAULT_DET_PARAMS: Dict[str, Any] = {
    "num_train": 1500,
    "num_val": 200,
    "image_size": 128,
    "min_object_size": 22,
    "max_object_size": 72,
    "max_objects": 4,
    "seed": 0,
}
DEFAULT_SEM_SEG_PARAMS: Dict[str, Any] = {
    "num_train": 300,
    "num_val": 60,
    "image_size": 128,
    "min_object_size": 24,
    "max_object_size": 72,
    "max_objects": 4,
    "seed": 1,
}
# An object may lose at most this fraction of its area to shapes drawn over it.
MAX_OCCLUDED_FRACTION = 0.4
# A shape of fewer pixels is not drawn (too small to be an object), and the smallest
# max_object_size whose every shape kind has that many (a triangle of side 8 has about 20).
MIN_OBJECT_PIXELS = 16
MIN_DRAWABLE_OBJECT_SIZE = 8


def default_datasets_root() -> Path:
    """``$DETECTRON2_DATASETS`` if set, else ``./datasets`` (detectron2's own convention)."""
    return Path(os.environ.get("DETECTRON2_DATASETS", "datasets")).expanduser()


# ----------------------------------------------------------------------------- drawing
# Rasterised in numpy, not with Pillow's ImageDraw: its polygon fill moved by a pixel between
# Pillow 9.5 and 10 (a triangle of 380 pixels became 379, and each image's later random
# draws followed), so `make main`'s environment and detectron2 main's wrote different sets.
# numpy's arithmetic is IEEE and its Generator streams and Pillow's JPEG and PNG encoders
# gave byte-identical sets under numpy 1.23 / Pillow 9.5 and numpy 2.4 / Pillow 13. Pixel
# (row, col) is the unit square whose centre is (col + 0.5, row + 0.5): a shape covers the
# pixels whose centre it contains.
def _pixel_centres(hw: int) -> Tuple[np.ndarray, np.ndarray]:
    """(x, y) of every pixel centre of an (hw, hw) image, as (1, hw) and (hw, 1) arrays."""
    centres = np.arange(hw, dtype=np.float64) + 0.5
    return centres[None, :], centres[:, None]


def _disc(cx: float, cy: float, r: float, hw: int) -> np.ndarray:
    """Boolean (hw, hw) mask of the pixels whose centre is within ``r`` of (cx, cy)."""
    x, y = _pixel_centres(hw)
    return (x - cx) ** 2 + (y - cy) ** 2 <= r * r


def _convex_polygon(points: List[Tuple[float, float]], hw: int) -> np.ndarray:
    """Boolean (hw, hw) mask of the pixels whose centre is inside the convex polygon with
    vertices ``points`` (either orientation; edges included)."""
    x, y = _pixel_centres(hw)
    sides = []
    for (x0, y0), (x1, y1) in zip(points, points[1:] + points[:1]):
        sides.append((x1 - x0) * (y - y0) - (y1 - y0) * (x - x0))  # > 0 left of the edge
    return np.all([side >= 0 for side in sides], axis=0) | np.all([side <= 0 for side in sides], axis=0)


def _thick_segment(x0: float, y0: float, x1: float, y1: float, width: int, hw: int) -> np.ndarray:
    """Boolean (hw, hw) mask of the pixels whose centre is within width / 2 of the segment
    (x0, y0)-(x1, y1): a line ``width`` pixels wide with round caps."""
    x, y = _pixel_centres(hw)
    dx, dy = x1 - x0, y1 - y0
    length2 = dx * dx + dy * dy
    # The segment's nearest point to each centre: its projection, clamped to the ends.
    t = np.clip(((x - x0) * dx + (y - y0) * dy) / length2, 0.0, 1.0) if length2 > 0 else np.zeros((hw, hw))
    return (x - (x0 + t * dx)) ** 2 + (y - (y0 + t * dy)) ** 2 <= (width / 2.0) ** 2


def _shape_mask(kind: str, cx: float, cy: float, size: float, angle: float, hw: int) -> np.ndarray:
    """Boolean (hw, hw) mask of one filled shape of side/diameter ``size`` centred at (cx, cy)."""
    r = size / 2.0
    if kind == "circle":
        return _disc(cx, cy, r, hw)
    if kind == "square":
        # Vertices at 45 deg + angle: a square tilted by 25..65 degrees (never axis aligned,
        # so it never fills its box), of side 0.85 * size (about a circle's area).
        return _convex_polygon([
            (cx + r * math.cos(angle + k * math.pi / 2) * math.sqrt(2) * 0.85,
             cy + r * math.sin(angle + k * math.pi / 2) * math.sqrt(2) * 0.85)
            for k in range(4)
        ], hw)
    if kind == "triangle":
        return _convex_polygon([
            (cx + r * math.cos(angle + k * 2 * math.pi / 3 - math.pi / 2),
             cy + r * math.sin(angle + k * 2 * math.pi / 3 - math.pi / 2))
            for k in range(3)
        ], hw)
    raise ValueError(f"unknown shape kind {kind!r}")  # pragma: no cover - internal


def _background(rng: np.random.Generator, hw: int) -> np.ndarray:
    """(hw, hw, 3) uint8 background: a colour gradient plus noise."""
    c0 = rng.uniform(0, 255, size=3)
    c1 = rng.uniform(0, 255, size=3)
    t = np.linspace(0.0, 1.0, hw)[None, :, None]
    img = c0 * (1 - t) + c1 * t
    img = np.broadcast_to(img, (hw, hw, 3)).copy()
    if rng.random() < 0.5:
        img = img.transpose(1, 0, 2).copy()
    img += rng.normal(0, 12, size=img.shape)
    return np.clip(img, 0, 255)


def _add_clutter(rng: np.random.Generator, img: np.ndarray) -> None:
    """Draw distractors in place: thin lines (1 or 2 px) and small specks (discs of radius
    1..4 px), not annotated. The background is cut to whole numbers first, as an 8-bit
    canvas would hold it."""
    hw = img.shape[0]
    img[...] = np.floor(img)
    for _ in range(int(rng.integers(2, 7))):
        x0, y0, x1, y1 = rng.uniform(0, hw, size=4)
        colour = rng.integers(0, 256, 3)
        width = int(rng.integers(1, 3))
        img[_thick_segment(x0, y0, x1, y1, width, hw)] = colour
    for _ in range(int(rng.integers(3, 10))):
        x, y = rng.uniform(0, hw, size=2)
        r = rng.uniform(1, 4)
        img[_disc(x, y, r, hw)] = rng.integers(0, 256, 3)


def _random_colour(rng: np.random.Generator, avoid: np.ndarray) -> np.ndarray:
    """A colour that differs clearly from ``avoid`` (the local background), so shapes are visible."""
    for _ in range(20):
        c = rng.uniform(0, 255, size=3)
        if np.abs(c - avoid).sum() > 150:
            return c
    return 255.0 - avoid


def draw_scene(
    rng: np.random.Generator,
    image_size: int,
    min_object_size: int,
    max_object_size: int,
    max_objects: int,
    num_classes: int,
) -> Tuple[np.ndarray, np.ndarray, List[Dict[str, Any]]]:
    """Draw one synthetic scene.

    Returns:
        image: (H, W, 3) uint8 RGB.
        instance_map: (H, W) int32, 0 background, k >= 1 the (k-1)-th entry of ``objects``
            at pixels where that object is visible.
        objects: list of dicts with ``category`` (0-based class index), ``bbox`` (XYWH of the
            visible pixels, float), ``area`` (visible pixel count).
    """
    hw = image_size
    img = _background(rng, hw)
    _add_clutter(rng, img)
    instance_map = np.zeros((hw, hw), dtype=np.int32)
    full_areas: List[int] = []  # area of each placed object before anything covered it
    categories: List[int] = []
    kinds = SYNTHETIC_DET_CLASSES[:num_classes]
    n_target = int(rng.integers(1, max_objects + 1))
    attempts = 0
    while len(categories) < n_target and attempts < 30:
        attempts += 1
        size = float(rng.uniform(min_object_size, max_object_size))
        cx, cy = rng.uniform(size / 2, hw - size / 2, size=2)
        cat = int(rng.integers(0, len(kinds)))
        angle = float(rng.uniform(-math.pi / 9, math.pi / 9))
        mask = _shape_mask(kinds[cat], cx, cy, size, angle, hw)
        if mask.sum() < MIN_OBJECT_PIXELS:
            continue
        # Occlusion is allowed but bounded: every earlier object must keep enough of itself.
        covered = instance_map[mask]
        if any(
            int((instance_map == k).sum()) - int((covered == k).sum())
            < (1 - MAX_OCCLUDED_FRACTION) * full
            for k, full in enumerate(full_areas, start=1)
        ):
            continue
        colour = _random_colour(rng, img[mask].mean(axis=0))
        shade = rng.normal(0, 8, size=(int(mask.sum()), 3))
        img[mask] = np.clip(colour + shade, 0, 255)
        full_areas.append(int(mask.sum()))
        categories.append(cat)
        instance_map[mask] = len(categories)
    objects = []
    for k, cat in enumerate(categories, start=1):
        ys, xs = np.nonzero(instance_map == k)
        x0, y0, x1, y1 = xs.min(), ys.min(), xs.max() + 1, ys.max() + 1
        objects.append({
            "category": cat,
            "bbox": [float(x0), float(y0), float(x1 - x0), float(y1 - y0)],
            "area": float(len(xs)),
        })
    return img.astype(np.uint8), instance_map, objects

# ----------------------------------------------------------------------------- writing
@contextlib.contextmanager
def _writing(folder: Path) -> Iterator[None]:
    """Hold an exclusive lock on ``folder`` (created) while a set is checked and written: a
    second process asking for the set waits, then finds it written; no lock where there is
    no flock (Windows)."""
    folder.mkdir(parents=True, exist_ok=True)
    try:
        import fcntl
    except ImportError:
        yield
        return
    fd = os.open(folder, os.O_RDONLY)
    try:
        with contextlib.suppress(OSError):  # a file system without locks: write unlocked
            fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # releases the lock


def _write_replacing(path: Path, write: Callable[[Path], None]) -> None:
    """write(a path beside ``path``), then os.replace it onto ``path``: a run reading the set
    while it is rewritten (another environment's versions) sees the old file or the new
    one, never half of one."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _save_image(array: np.ndarray, path: Path, **options: Any) -> None:
    image = Image.fromarray(array)
    # The format by name: the temporary file's suffix does not say it.
    _write_replacing(path, lambda tmp: image.save(tmp, format=path.suffix[1:].replace("jpg", "jpeg"), **options))


def _write_text(path: Path, text: str) -> None:
    _write_replacing(path, lambda tmp: tmp.write_text(text))


def _manifest_matches(folder: Path, expected: Dict[str, Any]) -> bool:
    """True when ``folder`` holds a complete dataset written with exactly ``expected``."""
    manifest = folder / MANIFEST_NAME
    if not manifest.is_file():
        return False
    try:
        recorded = json.loads(manifest.read_text())
    except (OSError, ValueError):
        return False
    # Valid JSON that is no object (a list, null): no set, as other_params reads it.
    if not isinstance(recorded, dict) or recorded.get("params") != expected:
        return False
    # The manifest is written last, but files could have been deleted since: every file
    # written is listed (a few thousand stat calls, milliseconds).
    files = recorded.get("files")
    return isinstance(files, list) and all((folder / rel).is_file() for rel in files)


def check_synthetic_params(params: Dict[str, Any], defaults: Dict[str, Any],
                           spell: Callable[[str], str] = str) -> Dict[str, Any]:
    """``defaults`` updated with ``params``, every value checked; raises KeyError / ValueError
    naming the parameter as ``spell(key)`` (the command line passes its ``--flag`` names).

    Called before anything is written or the previous set's manifest is removed: a bad seed
    used to fail in numpy half way, after the manifest of a valid set had been deleted.
    """
    unknown = sorted(set(params) - set(defaults))
    if unknown:
        raise KeyError(f"unknown synthetic dataset parameter(s) {[spell(k) for k in unknown]}; "
                       f"known: {[spell(k) for k in sorted(defaults)]}")
    merged = {**defaults, **params}
    for key in defaults:
        value = merged[key]
        # Integral, not bool: range(2.0) and Image.new((48.0, 48.0)) fail later, a numpy int
        # fails json.dumps after every image is written, and True would be taken for 1.
        minimum = 0 if key == "seed" else 1
        if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
            raise ValueError(f"synthetic dataset parameter {spell(key)}={value!r} must be an "
                             f"integer >= {minimum}")
        merged[key] = int(value)
    if merged["max_object_size"] < merged["min_object_size"]:
        raise ValueError(f"{spell('max_object_size')}={merged['max_object_size']} is smaller "
                         f"than {spell('min_object_size')}={merged['min_object_size']}")
    if merged["max_object_size"] < MIN_DRAWABLE_OBJECT_SIZE:
        # Every shape would be under MIN_OBJECT_PIXELS: a set of images without one object.
        raise ValueError(f"{spell('max_object_size')}={merged['max_object_size']} is too small to draw an "
                         f"object: it must be at least {MIN_DRAWABLE_OBJECT_SIZE}")
    if merged["max_object_size"] > merged["image_size"]:
        raise ValueError(f"{spell('max_object_size')}={merged['max_object_size']} does not fit "
                         f"in {spell('image_size')}={merged['image_size']}")
    return merged


def _check_params(params: Dict[str, Any], defaults: Dict[str, Any]) -> Dict[str, Any]:
    merged = check_synthetic_params(params, defaults)
    merged["generator_version"] = GENERATOR_VERSION
    # numpy's distributions and Pillow's JPEG encoder could change between versions (they
    # gave the same files under numpy 1.23 / Pillow 9.5 and numpy 2.4 / Pillow 13): a set
    # written under other versions is written again rather than trusted to be this one.
    merged["libraries"] = {"numpy": np.__version__, "pillow": PIL.__version__}
    return merged


def make_synthetic_detection(root: Optional[os.PathLike] = None, force: bool = False,
                             **params: Any) -> Path:
    """Write the COCO-format detection set under ``root/synthetic_det`` (see module doc).

    ``params`` override :data:`DEFAULT_DET_PARAMS` (num_train, num_val, image_size,
    min_object_size, max_object_size, max_objects, seed). The output depends only on them
    (seeded per split and image), and could on the numpy and Pillow versions. If the folder
    already holds every file of a set written with the same parameters and versions, nothing
    is rewritten unless ``force``. Returns the folder.
    """
    p = _check_params(params, DEFAULT_DET_PARAMS)
    folder = Path(root if root is not None else default_datasets_root()) / DET_DIRNAME
    _make(folder, p, _write_detection, force)
    return folder


def _make(folder: Path, p: Dict[str, Any], write: Callable[[Path, Dict[str, Any]], None], force: bool,
          replace_other_params: bool = True) -> None:
    """write(folder, p) unless ``folder`` holds a complete set of ``p`` (or ``force``), under
    the folder's lock. Without ``replace_other_params``, a set there with other generation
    parameters raises OtherSyntheticSetError, checked under the lock: another process may
    have written one since the caller looked."""
    with _writing(folder):
        if not replace_other_params:
            differences = other_params(folder, p)
            if differences:
                raise OtherSyntheticSetError(folder, differences)
        if force or not _manifest_matches(folder, p):
            earlier = _manifest_files(folder)
            write(folder, p)
            # A set of fewer images left the earlier set's others behind, unlisted; only files
            # an earlier manifest lists (written by this module) are removed.
            for stale in sorted(earlier - _manifest_files(folder)):
                (folder / stale).unlink(missing_ok=True)


def _manifest_files(folder: Path) -> set:
    """The files (relative to ``folder``) its manifest lists; empty without a readable one."""
    try:
        files = json.loads((folder / MANIFEST_NAME).read_text()).get("files", [])
    except (OSError, ValueError, AttributeError):
        return set()
    if not isinstance(files, list):
        # null or a number failed with TypeError, a string was read as its characters ('.'
        # failed unlinking the folder, a one-letter file of the user's was removed): none.
        return set()
    # Only plain relative paths inside the folder.
    return {f for f in files if isinstance(f, str) and not os.path.isabs(f) and ".." not in Path(f).parts}


def _write_detection(folder: Path, p: Dict[str, Any]) -> None:
    (folder / MANIFEST_NAME).unlink(missing_ok=True)  # invalid until fully rewritten
    (folder / "annotations").mkdir(parents=True, exist_ok=True)
    files = []
    categories = [{"id": i + 1, "name": n, "supercategory": "shape"}
                  for i, n in enumerate(SYNTHETIC_DET_CLASSES)]
    for split_index, split in enumerate(("train", "val")):
        (folder / split).mkdir(exist_ok=True)
        images, annotations = [], []
        for i in range(p[f"num_{split}"]):
            # One generator per image: image i is the same whatever num_train/num_val are.
            rng = np.random.default_rng([p["seed"], split_index, i])
            img, _, objects = draw_scene(rng, p["image_size"], p["min_object_size"],
                                         p["max_object_size"], p["max_objects"],
                                         len(SYNTHETIC_DET_CLASSES))
            file_name = f"{i:06d}.jpg"
            _save_image(img, folder / split / file_name, quality=95)
            files.append(f"{split}/{file_name}")
            images.append({"id": i + 1, "file_name": file_name,
                           "height": p["image_size"], "width": p["image_size"]})
            for obj in objects:
                annotations.append({
                    "id": len(annotations) + 1, "image_id": i + 1,
                    "category_id": obj["category"] + 1, "bbox": obj["bbox"],
                    "area": obj["area"], "iscrowd": 0,
                })
        ann_rel = f"annotations/instances_{split}.json"
        _write_text(folder / ann_rel, json.dumps({
            "info": {"description": f"dropblock-det synthetic shapes, {split}"},
            "images": images, "annotations": annotations, "categories": categories,
        }))
        files.append(ann_rel)
    _write_text(folder / MANIFEST_NAME, json.dumps({"params": p, "files": files}, indent=1))


def make_synthetic_sem_seg(root: Optional[os.PathLike] = None, force: bool = False,
                           **params: Any) -> Path:
    """Write the VOC-layout segmentation set under ``root/synthetic_sem_seg`` (see module doc).

    ``params`` override :data:`DEFAULT_SEM_SEG_PARAMS`; same determinism and reuse rules as
    :func:`make_synthetic_detection`. Ground truth: index PNGs with 0 = background,
    k = ``SYNTHETIC_SEM_SEG_CLASSES[k]``, 255 = ignore on a one-pixel band around shapes.
    """
    p = _check_params(params, DEFAULT_SEM_SEG_PARAMS)
    folder = Path(root if root is not None else default_datasets_root()) / SEM_SEG_DIRNAME
    _make(folder, p, _write_sem_seg, force)
    return folder


def _write_sem_seg(folder: Path, p: Dict[str, Any]) -> None:
    (folder / MANIFEST_NAME).unlink(missing_ok=True)
    for sub in ("JPEGImages", "SegmentationClass", "ImageSets/Segmentation"):
        (folder / sub).mkdir(parents=True, exist_ok=True)
    files = []
    for split_index, split in enumerate(("train", "val")):
        ids = []
        for i in range(p[f"num_{split}"]):
            rng = np.random.default_rng([p["seed"], split_index, i])
            img, instance_map, objects = draw_scene(
                rng, p["image_size"], p["min_object_size"], p["max_object_size"],
                p["max_objects"], len(SYNTHETIC_DET_CLASSES))
            label = np.zeros(instance_map.shape, dtype=np.uint8)
            for k, obj in enumerate(objects, start=1):
                label[instance_map == k] = obj["category"] + 1
            # VOC marks object borders as "void"; do the same on a one-pixel band.
            edge = np.zeros_like(label, dtype=bool)
            edge[:, 1:] |= label[:, 1:] != label[:, :-1]
            edge[1:, :] |= label[1:, :] != label[:-1, :]
            label[edge] = SEM_SEG_IGNORE_LABEL
            image_id = f"{split}_{i:06d}"
            _save_image(img, folder / "JPEGImages" / f"{image_id}.jpg", quality=95)
            # A 2-D uint8 array is an "L" image (`mode=` is deprecated since Pillow 11).
            _save_image(label, folder / "SegmentationClass" / f"{image_id}.png")
            files += [f"JPEGImages/{image_id}.jpg", f"SegmentationClass/{image_id}.png"]
            ids.append(image_id)
        rel = f"ImageSets/Segmentation/{split}.txt"
        _write_text(folder / rel, "\n".join(ids) + "\n")
        files.append(rel)
    _write_text(folder / MANIFEST_NAME, json.dumps({"params": p, "files": files}, indent=1))


class OtherSyntheticSetError(FileExistsError):
    """A folder holds a synthetic set made with other generation parameters than asked for
    (``differences``: {parameter: (recorded, asked)}): a user's set, not replaced."""

    def __init__(self, folder: Path, differences: Dict[str, Tuple[Any, Any]]):
        self.folder, self.differences = folder, differences
        said = ", ".join(f"{key}={recorded!r} (asked: {asked!r})" for key, (recorded, asked) in differences.items())
        super().__init__(
            f"{folder} holds a synthetic set made with other parameters: {said}. It is not replaced: "
            "move it elsewhere, or make the sets under another datasets root (set DETECTRON2_DATASETS, "
            "or main_job's --datasets-root, to another folder)")


def other_params(folder: os.PathLike, params: Dict[str, Any]) -> Dict[str, Tuple[Any, Any]]:
    """{parameter: (recorded, in ``params``)} for the generation parameters (the keys of
    DEFAULT_*_PARAMS) in which the set ``folder``'s manifest differs from ``params``; empty
    when they agree, or when there is no readable manifest (no set, or one whose writing
    stopped: its manifest is removed first). The generator version and the library
    versions are not compared: a set that differs only in them is the same set, written
    again by today's code. A parameter the manifest does not record is not compared."""
    try:
        recorded = json.loads((Path(folder) / MANIFEST_NAME).read_text()).get("params")
    except (OSError, ValueError, AttributeError):
        return {}
    if not isinstance(recorded, dict):
        return {}
    return {key: (recorded[key], value) for key, value in params.items()
            if key not in ("generator_version", "libraries") and key in recorded and recorded[key] != value}


def ensure_synthetic_datasets(root: Optional[os.PathLike] = None,
                              det_params: Optional[Dict[str, Any]] = None,
                              sem_seg_params: Optional[Dict[str, Any]] = None,
                              sem_seg: bool = True) -> Path:
    """Write both synthetic sets under ``root`` unless already there and valid; register
    them there. Returns the root.

    A set already there that was made with other generation parameters (e.g. by
    ``datasets/make_synthetic.py --num-train 4``) is the user's: OtherSyntheticSetError
    naming its folder and the parameters, raised before either set is written (this used
    to replace it with the asked-for set, silently). A set of the same parameters written
    by an older generator or under other numpy / Pillow versions is written again, as
    :func:`make_synthetic_detection` does.
    """
    root = Path(root if root is not None else default_datasets_root())
    wanted = [(DET_DIRNAME, _check_params(det_params or {}, DEFAULT_DET_PARAMS), _write_detection)]
    if sem_seg:
        wanted.append((SEM_SEG_DIRNAME, _check_params(sem_seg_params or {}, DEFAULT_SEM_SEG_PARAMS), _write_sem_seg))
    # Both checked before either is written: a refusal leaves the root as it was.
    for dirname, p, _ in wanted:
        differences = other_params(root / dirname, p)
        if differences:
            raise OtherSyntheticSetError(root / dirname, differences)
    for dirname, p, write in wanted:
        _make(root / dirname, p, write, force=False, replace_other_params=False)
    register_synthetic_datasets(root)
    return root


# ----------------------------------------------------------------------------- registration
SYNTHETIC_DET_SPLITS = {
    "synthetic_det_train": ("train", "annotations/instances_train.json"),
    "synthetic_det_val": ("val", "annotations/instances_val.json"),
}
SYNTHETIC_SEM_SEG_SPLITS = {
    "synthetic_sem_seg_train": "train",
    "synthetic_sem_seg_val": "val",
}


def load_synthetic_sem_seg(folder: os.PathLike, split: str) -> List[Dict[str, Any]]:
    """detectron2 dataset dicts (file_name, sem_seg_file_name, height, width, image_id) of
    one split of the VOC-layout set in ``folder``; ids from ImageSets/Segmentation/<split>.txt."""
    folder = Path(folder)
    split_file = folder / "ImageSets" / "Segmentation" / f"{split}.txt"
    if not split_file.is_file():
        raise FileNotFoundError(
            f"{split_file} does not exist: run `python datasets/make_synthetic.py` (or set "
            "DETECTRON2_DATASETS to the folder that holds synthetic_sem_seg/)")
    dicts = []
    for image_id in split_file.read_text().split():
        file_name = folder / "JPEGImages" / f"{image_id}.jpg"
        label_name = folder / "SegmentationClass" / f"{image_id}.png"
        if not label_name.is_file():  # else the mapper fails on it mid-training
            raise FileNotFoundError(
                f"{label_name} (the label of {split} image {image_id!r}) does not exist: run "
                "`python datasets/make_synthetic.py` again to rewrite the set")
        with Image.open(file_name) as im:
            width, height = im.size
        dicts.append({
            "file_name": str(file_name),
            "sem_seg_file_name": str(label_name),
            "height": height, "width": width, "image_id": image_id,
        })
    return dicts


def register_synthetic_datasets(root: Optional[os.PathLike] = None) -> None:
    """Register the four synthetic splits with detectron2's catalogs, pointing at ``root``
    (default :func:`default_datasets_root`). Files need not exist yet: loading is lazy.
    Re-registering (e.g. with another root) replaces the previous entries."""
    from detectron2.data import DatasetCatalog, MetadataCatalog
    from detectron2.data.datasets import load_coco_json

    root = Path(root if root is not None else default_datasets_root())
    det = root / DET_DIRNAME
    for name, (split, ann) in SYNTHETIC_DET_SPLITS.items():
        _unregister(name)
        json_file, image_root = str(det / ann), str(det / split)
        DatasetCatalog.register(
            name, lambda j=json_file, r=image_root, n=name: load_coco_json(j, r, n))
        MetadataCatalog.get(name).set(
            json_file=json_file, image_root=image_root, evaluator_type="coco",
            thing_classes=list(SYNTHETIC_DET_CLASSES))
    seg = root / SEM_SEG_DIRNAME
    for name, split in SYNTHETIC_SEM_SEG_SPLITS.items():
        _unregister(name)
        DatasetCatalog.register(name, lambda f=seg, s=split: load_synthetic_sem_seg(f, s))
        MetadataCatalog.get(name).set(
            image_root=str(seg / "JPEGImages"), sem_seg_root=str(seg / "SegmentationClass"),
            evaluator_type="sem_seg", ignore_label=SEM_SEG_IGNORE_LABEL,
            stuff_classes=list(SYNTHETIC_SEM_SEG_CLASSES))


def _unregister(name: str) -> None:
    from detectron2.data import DatasetCatalog, MetadataCatalog

    if name in DatasetCatalog.list():
        DatasetCatalog.remove(name)
        MetadataCatalog.remove(name)
