"""Cutout as a detectron2 augmentation: only the image changes, squares uniformly placed."""
import numpy as np
import pytest
from detectron2.config import get_cfg
from detectron2.data import transforms as T
from fvcore.transforms.transform import NoOpTransform

from dropblock_det import add_dropblock_config
from dropblock_det.data.cutout import Cutout, CutoutTransform, build_cutout_augmentation


def _image(h=40, w=50, c=3):
    return np.full((h, w, c), 200, dtype=np.uint8)


def test_one_hole_fills_a_size_square_clipped_at_the_border():
    np.random.seed(0)
    areas = []
    for _ in range(200):
        aug_input = T.AugInput(_image())
        Cutout(size=10, fill_value=0)(aug_input)
        filled = np.all(aug_input.image == 0, axis=2)
        ys, xs = np.nonzero(filled)
        assert len(ys) > 0
        # the filled pixels form one axis-aligned rectangle of at most 10 x 10
        assert filled[ys.min() : ys.max() + 1, xs.min() : xs.max() + 1].all()
        assert ys.max() - ys.min() + 1 <= 10 and xs.max() - xs.min() + 1 <= 10
        areas.append(filled.sum())
    assert max(areas) == 100  # fully inside the image
    assert min(areas) < 100  # clipped at the border (centre uniform over the whole image)


def test_boxes_and_segmentation_are_unchanged_and_image_dtype_kept():
    np.random.seed(0)
    image = _image()
    boxes = np.array([[1.0, 2.0, 30.0, 35.0]])
    sem_seg = np.random.randint(0, 5, size=(40, 50)).astype(np.uint8)
    aug_input = T.AugInput(image.copy(), boxes=boxes.copy(), sem_seg=sem_seg.copy())
    transforms = T.AugmentationList([Cutout(size=20, num_holes=3, fill_value=7)])(aug_input)
    assert aug_input.image.dtype == np.uint8
    assert (aug_input.image == 7).any() and not np.array_equal(aug_input.image, image)
    np.testing.assert_array_equal(aug_input.boxes, boxes)
    np.testing.assert_array_equal(aug_input.sem_seg, sem_seg)
    polygons = [np.array([1.0, 1.0, 5.0, 1.0, 5.0, 5.0])]
    np.testing.assert_array_equal(transforms.apply_polygons(polygons)[0], polygons[0])
    assert isinstance(transforms.inverse().transforms[0], NoOpTransform)


def test_per_channel_fill_value_and_float_images():
    transform = CutoutTransform(np.array([[0, 0, 2, 3]]), fill_value=[103.53, 116.28, 123.675])
    out = transform.apply_image(np.zeros((5, 5, 3), dtype=np.uint8))
    np.testing.assert_array_equal(out[0, 0], [104, 116, 124])  # rounded for uint8
    assert (out[3:, :] == 0).all() and (out[:, 2:] == 0).all()
    out_float = transform.apply_image(np.zeros((5, 5, 3), dtype=np.float32))
    np.testing.assert_allclose(out_float[2, 1], [103.53, 116.28, 123.675], rtol=1e-6)
    with pytest.raises(ValueError, match="3 channels"):
        transform.apply_image(np.zeros((5, 5), dtype=np.uint8))


def test_prob_controls_how_often_it_applies():
    np.random.seed(0)
    never = [Cutout(size=5, prob=0.0).get_transform(_image()) for _ in range(50)]
    assert all(isinstance(t, NoOpTransform) for t in never)
    sometimes = [Cutout(size=5, prob=0.3).get_transform(_image()) for _ in range(2000)]
    applied = np.mean([isinstance(t, CutoutTransform) for t in sometimes])
    assert applied == pytest.approx(0.3, abs=0.04)


@pytest.mark.parametrize(
    "kwargs, fragment",
    [({"size": 0}, "size"), ({"size": 2.5}, "size"), ({"size": 8, "num_holes": 0}, "num_holes"),
     ({"size": 8, "prob": 1.5}, "prob")],
)
def test_bad_arguments_raise_value_error_naming_them(kwargs, fragment):
    with pytest.raises(ValueError, match=fragment):
        Cutout(**kwargs)


def _cfg():
    cfg = get_cfg()
    add_dropblock_config(cfg)
    return cfg


def test_build_from_config_is_empty_when_disabled_and_uses_pixel_mean_as_fill():
    cfg = _cfg()
    assert build_cutout_augmentation(cfg) == []
    cfg.INPUT.CUTOUT.ENABLED = True
    cfg.INPUT.CUTOUT.SIZE = 16
    cfg.INPUT.CUTOUT.NUM_HOLES = 2
    cfg.INPUT.CUTOUT.PROB = 0.5
    (aug,) = build_cutout_augmentation(cfg)
    assert isinstance(aug, Cutout)
    assert (aug.size, aug.num_holes, aug.prob) == (16, 2, 0.5)
    assert aug.fill_value == [float(v) for v in cfg.MODEL.PIXEL_MEAN]


@pytest.mark.parametrize(
    "key, value", [("SIZE", 0), ("NUM_HOLES", -1), ("PROB", 2.0), ("SIZE", "big"), ("ENABLED", "yes")]
)
def test_build_from_config_names_the_bad_key(key, value):
    cfg = _cfg()
    cfg.INPUT.CUTOUT.ENABLED = True
    cfg.INPUT.CUTOUT[key] = value
    with pytest.raises(ValueError, match=f"INPUT.CUTOUT.{key}"):
        build_cutout_augmentation(cfg)


def test_every_pixel_including_the_last_row_and_column_can_be_a_centre():
    # size 1: the hole is its centre. 6 x 8 pixels, 3000 draws: each pixel is hit ~62 times,
    # so a pixel never hit (probability (47/48)**3000 < 1e-27 each) means it cannot be drawn.
    np.random.seed(0)
    hits = np.zeros((6, 8), dtype=int)
    for _ in range(3000):
        aug_input = T.AugInput(_image(6, 8, 1))
        Cutout(size=1)(aug_input)
        hits += aug_input.image[..., 0] == 0
    assert (hits > 0).all(), hits


@pytest.mark.parametrize("size", [1, 3, 5, 10])
def test_a_hole_inside_the_image_has_size_squared_pixels(size):
    # Odd sizes too: the square is centre - size // 2 .. centre - size // 2 + size.
    np.random.seed(size)
    areas = set()
    for _ in range(100):
        aug_input = T.AugInput(_image(40, 50, 1))
        Cutout(size=size, fill_value=0)(aug_input)
        areas.add(int((aug_input.image == 0).sum()))
    assert max(areas) == size * size


def test_fill_values_outside_the_integer_range_are_clipped_not_wrapped():
    transform = CutoutTransform(np.array([[0, 0, 2, 2]]), fill_value=[300.0, -5.0, 12.0])
    out = transform.apply_image(np.full((3, 3, 3), 100, dtype=np.uint8))
    np.testing.assert_array_equal(out[0, 0], [255, 0, 12])
    with pytest.raises(ValueError, match="3 channels"):
        transform.apply_image(np.zeros((3, 3, 4), dtype=np.uint8))


def test_a_bool_prob_is_refused():
    with pytest.raises(ValueError, match="prob"):
        Cutout(size=8, prob=True)
