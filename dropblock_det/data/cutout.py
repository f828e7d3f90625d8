"""Cutout (DeVries & Taylor, "Improved Regularization of Convolutional Neural Networks with
Cutout", arXiv 1708.04552) as a detectron2 augmentation: the input-space relative of
DropBlock that the paper compares against.

`NUM_HOLES` squares of `SIZE` pixels are filled with a constant. Each square's centre is
uniform over the whole image (as the original: a square may hang over the border, and is
clipped there, so edge pixels are less under-sampled than if squares had to fit inside;
still, a corner pixel is covered about a quarter as often as a central one when SIZE is
small against the image). Only the image changes: boxes,
polygons, keypoints and semantic-segmentation ground truth are left as they are (Cutout
hides pixels, it does not move or relabel anything).

Fill value: the original zeroes *normalised* images, i.e. fills with the dataset mean.
detectron2 augments raw images before normalisation, so `build_cutout_augmentation` fills
with `MODEL.PIXEL_MEAN` (in the image's channel order, `INPUT.FORMAT`), which is 0 after
normalisation, the original's behaviour. A one-value fill applies to every channel (as a
one-value PIXEL_MEAN does in detectron2's models).
"""
import math
import warnings
from collections.abc import Sequence as _SequenceABC
from typing import Any, List, Sequence, Union

import numpy as np
from detectron2.data import transforms as T
from fvcore.transforms.transform import NoOpTransform, Transform

from ..layers.base import is_integer, is_real_number

__all__ = ["Cutout", "CutoutTransform", "build_cutout_augmentation", "check_cutout_size"]

FillValue = Union[float, Sequence[float]]


def _check_fill_value(value: Any) -> FillValue:
    """A finite number (as float) or a non-empty 1-D sequence of them (as a list of floats).

    Checked when the augmentation is built: a None or NaN fill would otherwise reach float
    images as NaN (and uint8 ones as 0) silently, inside a dataloader worker.
    """
    def number(v: Any) -> bool:
        return is_real_number(v) and math.isfinite(float(v))

    if number(value):
        return float(value)
    if isinstance(value, np.ndarray) and value.ndim == 1:
        value = value.tolist()
    # A string is a Sequence too: refused by the element check.
    if isinstance(value, _SequenceABC) and len(value) > 0 and all(number(v) for v in value):
        return [float(v) for v in value]
    raise ValueError(
        f"fill_value must be a finite number or a non-empty list of finite numbers (one per "
        f"channel), got {value!r}")


class CutoutTransform(Transform):
    """Fill fixed rectangles of the image with `fill_value`; geometry is unchanged.

    Args:
        boxes: (K, 4) integer array of [x0, y0, x1, y1) pixel rectangles, already clipped.
        fill_value: one number (every channel), or one per channel.
    """

    def __init__(self, boxes: np.ndarray, fill_value: FillValue = 0.0) -> None:
        super().__init__()
        boxes = np.asarray(boxes)
        if boxes.ndim != 2 or boxes.shape[1] != 4 or not np.issubdtype(boxes.dtype, np.integer):
            raise ValueError(f"boxes must be a (K, 4) integer array of [x0, y0, x1, y1) pixel "
                             f"rectangles, got {boxes.dtype} of shape {boxes.shape}")
        # A negative coordinate would index from the far edge (numpy slicing), filling a
        # rectangle the caller never asked for; x1 < x0 would fill nothing.
        bad = (boxes[:, :2] < 0).any(axis=1) | (boxes[:, 2] < boxes[:, 0]) | (boxes[:, 3] < boxes[:, 1])
        if bad.any():
            raise ValueError(f"boxes must be clipped [x0, y0, x1, y1) rectangles with 0 <= x0 <= x1 and "
                             f"0 <= y0 <= y1, got {boxes[bad][0].tolist()}")
        fill_value = _check_fill_value(fill_value)
        self._set_attributes(locals())

    def apply_image(self, img: np.ndarray) -> np.ndarray:
        """img: (H, W) or (H, W, C), any dtype; returns a filled copy of the same dtype."""
        out = np.array(img, copy=True)
        fill = np.asarray(self.fill_value, dtype=np.float64)
        if np.issubdtype(out.dtype, np.integer):
            info = np.iinfo(out.dtype)
            fill = np.clip(np.round(fill), info.min, info.max)
        fill = fill.astype(out.dtype)
        if fill.ndim == 1 and fill.shape[0] == 1:
            fill = fill[0]  # one value: every channel, and (H, W) images too
        if fill.ndim == 1 and (out.ndim != 3 or out.shape[2] != fill.shape[0]):
            raise ValueError(
                f"fill_value has {fill.shape[0]} channels but the image has shape {out.shape}"
            )
        for x0, y0, x1, y1 in self.boxes:
            out[y0:y1, x0:x1] = fill
        return out

    def apply_coords(self, coords: np.ndarray) -> np.ndarray:
        return coords

    def apply_segmentation(self, segmentation: np.ndarray) -> np.ndarray:
        # The default would call apply_image and write the fill value into label maps.
        return segmentation

    def apply_rotated_box(self, rotated_boxes: np.ndarray) -> np.ndarray:
        # detectron2 registers this only for its own geometric transforms; without it a
        # rotated-box mapper fails on Cutout with an AttributeError.
        return rotated_boxes

    def inverse(self) -> Transform:
        # The hidden pixels are gone; geometrically Cutout is the identity.
        return NoOpTransform()


def _check_positive_int(value: Any, name: str) -> int:
    if not is_integer(value) or value < 1:
        raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
    return int(value)


def _check_probability(value: Any, name: str) -> float:
    # numbers.Real: numpy scalars (np.float32 is not a float) are probabilities too.
    if not is_real_number(value) or not (0.0 <= value <= 1.0):
        raise ValueError(f"{name} must be a number in [0, 1], got {value!r}")
    return float(value)


class Cutout(T.Augmentation):
    """With probability `prob`, fill `num_holes` squares of side `size` pixels.

    Args:
        size: side of each square in pixels (of the image as it is when Cutout runs, i.e.
            after resizing if it comes after the resize augmentation).
        num_holes: squares per image (they may overlap).
        prob: probability of applying it to an image (otherwise a NoOpTransform).
        fill_value: one number (every channel) or one per channel (0 by default; see the
            module docstring for why the config builder uses the pixel mean). Checked here.
    """

    def __init__(
        self, size: int, num_holes: int = 1, prob: float = 1.0, fill_value: FillValue = 0.0
    ) -> None:
        super().__init__()
        size = _check_positive_int(size, "size")
        num_holes = _check_positive_int(num_holes, "num_holes")
        prob = _check_probability(prob, "prob")
        fill_value = _check_fill_value(fill_value)
        self._init(locals())

    def get_transform(self, image: np.ndarray) -> Transform:
        # np.random, like detectron2's own augmentations, so worker seeding applies.
        if self.prob < 1.0 and np.random.uniform() >= self.prob:
            return NoOpTransform()
        if np.ndim(image) not in (2, 3):
            # Else numpy's "not enough values to unpack", or a 4-D batch cut as if (H, W, ...).
            raise ValueError(f"Cutout: image must be (H, W) or (H, W, C), got shape {np.shape(image)}")
        height, width = np.shape(image)[:2]  # a PIL image or nested lists too, as apply_image takes them
        if height == 0 or width == 0:
            # Nothing to hide; np.random.randint(0, 0) would raise "high <= 0".
            return NoOpTransform()
        centre_y = np.random.randint(0, height, size=self.num_holes)
        centre_x = np.random.randint(0, width, size=self.num_holes)
        y0 = np.clip(centre_y - self.size // 2, 0, height)
        x0 = np.clip(centre_x - self.size // 2, 0, width)
        y1 = np.clip(centre_y - self.size // 2 + self.size, 0, height)
        x1 = np.clip(centre_x - self.size // 2 + self.size, 0, width)
        boxes = np.stack([x0, y0, x1, y1], axis=1).astype(np.int64)
        return CutoutTransform(boxes, self.fill_value)


# Channels of the images detectron2's read_image returns for these INPUT.FORMATs.
_FORMAT_CHANNELS = {"BGR": 3, "RGB": 3, "YUV-BT.601": 3, "L": 1, "RGBA": 4}


def build_cutout_augmentation(cfg) -> List[T.Augmentation]:
    """[Cutout] from INPUT.CUTOUT (and MODEL.PIXEL_MEAN as fill), or [] when disabled.

    Append the result to the training augmentation list (after resizing, so SIZE is in
    pixels of the network input). Raises ValueError naming the key for a bad value.
    """
    node = cfg.INPUT.CUTOUT
    if not isinstance(node.ENABLED, bool):
        raise ValueError(f"INPUT.CUTOUT.ENABLED must be True or False, got {node.ENABLED!r}")
    if not node.ENABLED:
        return []
    size = _check_positive_int(node.SIZE, "INPUT.CUTOUT.SIZE")
    num_holes = _check_positive_int(node.NUM_HOLES, "INPUT.CUTOUT.NUM_HOLES")
    prob = _check_probability(node.PROB, "INPUT.CUTOUT.PROB")
    fill_value = [float(v) for v in cfg.MODEL.PIXEL_MEAN]
    check_fill_channels(fill_value, cfg.INPUT.FORMAT,
                        f"INPUT.CUTOUT fills with MODEL.PIXEL_MEAN={list(cfg.MODEL.PIXEL_MEAN)}", "INPUT.FORMAT")
    _check_size_against_resize(cfg, size)
    return [Cutout(size=size, num_holes=num_holes, prob=prob, fill_value=fill_value)]


def check_fill_channels(fill_value: Sequence[float], image_format: Any, fill: str, format_key: str) -> None:
    """Refuse a Cutout `fill_value` (described by `fill`: its key and value) that has neither
    one value nor one per channel of the images read in `image_format` (given by
    `format_key`): the mapper reads them so, and such a fill failed only later, in a data
    loader worker, after the run had begun. A format detectron2 does not list is left alone."""
    channels = _FORMAT_CHANNELS.get(image_format) if isinstance(image_format, str) else None
    if channels is not None and len(fill_value) not in (1, channels):
        raise ValueError(f"{fill}, which has {len(fill_value)} values, but {format_key}={image_format!r} images "
                         f"have {channels} channel(s): give one value, or one per channel")


def _check_size_against_resize(cfg, size: int) -> None:
    """INPUT.CUTOUT.SIZE against the images detectron2's training resize (ResizeShortestEdge
    of INPUT.MIN_SIZE_TRAIN, INPUT.MAX_SIZE_TRAIN) gives Cutout: :func:`check_cutout_size`."""
    check_cutout_size(size, cfg.INPUT.MIN_SIZE_TRAIN, cfg.INPUT.MAX_SIZE_TRAIN, "INPUT.CUTOUT.SIZE",
                      f"INPUT.MIN_SIZE_TRAIN={cfg.INPUT.MIN_SIZE_TRAIN!r}, INPUT.MAX_SIZE_TRAIN={cfg.INPUT.MAX_SIZE_TRAIN}")


def check_cutout_size(size: int, short_edge_lengths: Any, max_size: Any, key: str, resize: str) -> None:
    """A Cutout of side `size` (given by `key`) after a ResizeShortestEdge(short_edge_lengths,
    max_size) (described by `resize`, its keys and values), whose images are at most max_size
    px a side and min(max(short_edge_lengths), max_size) on the shorter one.

    A square of `size` centred anywhere in an image covers all of it when size - size // 2
    and size // 2 + 1 both reach its longer side: ValueError naming `key` and `resize`, as
    every image would be trained on blank. A size above the shorter side warns (UserWarning):
    each hole spans the image across it. Nothing is checked when a length of 0 may leave an
    image unresized, or a value is not a number (refused elsewhere)."""
    shorts = list(short_edge_lengths) if isinstance(short_edge_lengths, _SequenceABC) else [short_edge_lengths]
    if not shorts or not all(is_integer(v) and v > 0 for v in shorts) or not (is_integer(max_size) and max_size > 0):
        return
    shortest_side = min(max(shorts), max_size)
    if size - size // 2 >= max_size and size // 2 + 1 >= max_size:
        raise ValueError(
            f"{key}={size}: every hole covers the whole image wherever it lands (the training images are at most "
            f"{max_size} px a side after the resize, {resize}), so every image would be trained on blank; give a "
            f"size below {2 * max_size - 1} (the Cutout paper's are about half the image's side)")
    if size > shortest_side:
        warnings.warn(
            f"{key}={size} is larger than the training images' shorter side (at most {shortest_side} px after the "
            f"resize, {resize}): each hole spans the image across it, and covers all of an image whose longer side "
            "it also spans; the Cutout paper's holes are about half the image's side",
            UserWarning, stacklevel=3)
