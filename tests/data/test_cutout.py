"""Cutout as a detectron2 augmentation: only the image changes, squares uniformly placed."""
import re

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


@pytest.mark.parametrize(
    "fill_value",
    [None, float("nan"), float("inf"), "abc", [[1.0, 2.0, 3.0]], [], True, [1.0, None, 2.0],
     [1.0, float("nan"), 2.0]],
)
def test_bad_fill_values_are_refused_when_built_naming_fill_value(fill_value):
    # Unchecked, None and NaN became NaN pixels in float images (uint8: 0) without a word,
    # and the rest failed later inside a dataloader worker.
    with pytest.raises(ValueError, match="fill_value"):
        Cutout(size=4, fill_value=fill_value)
    with pytest.raises(ValueError, match="fill_value"):
        CutoutTransform(np.array([[0, 0, 2, 2]]), fill_value=fill_value)


def test_fill_sequences_of_any_kind_are_kept_as_floats():
    from omegaconf import ListConfig

    for fill in ([1, 2, 3], (1.0, 2.0, 3.0), np.array([1.0, 2.0, 3.0]), ListConfig([1, 2, 3])):
        assert Cutout(size=4, fill_value=fill).fill_value == [1.0, 2.0, 3.0]
    assert Cutout(size=4, fill_value=np.float32(5)).fill_value == 5.0


@pytest.mark.parametrize("shape", [(6, 6), (6, 6, 1), (6, 6, 3)])
def test_a_one_value_fill_applies_to_every_channel_and_to_two_dimensional_images(shape):
    # A grayscale config's MODEL.PIXEL_MEAN has one value; a (H, W) image used to be refused.
    out = CutoutTransform(np.array([[0, 0, 3, 2]]), fill_value=[7.0]).apply_image(
        np.zeros(shape, dtype=np.uint8))
    assert out.shape == shape
    assert (out[:2, :3] == 7).all() and (out[2:] == 0).all() and (out[:, 3:] == 0).all()


def test_numpy_scalars_are_valid_sizes_and_probabilities():
    aug = Cutout(size=np.int64(4), num_holes=np.int32(2), prob=np.float32(0.5))
    assert (aug.size, aug.num_holes, aug.prob) == (4, 2, 0.5)


def test_transform_boxes_must_be_integer_rectangles():
    with pytest.raises(ValueError, match="boxes"):
        CutoutTransform(np.array([[0.5, 0.0, 2.0, 2.0]]))
    with pytest.raises(ValueError, match="boxes"):
        CutoutTransform(np.array([0, 0, 2, 2]))


def test_rotated_boxes_keypoints_and_masks_pass_through_a_dataset_mapper(tmp_path):
    # detectron2's DatasetMapper applies the transforms to every annotation type: Cutout
    # must leave them all as they are, and support apply_rotated_box like the stock ones.
    import pycocotools.mask as mask_util
    from detectron2.data import DatasetMapper
    from PIL import Image

    Image.fromarray(_image()).save(tmp_path / "image.png")
    bitmask = np.zeros((40, 50), dtype=np.uint8)
    bitmask[5:30, 5:30] = 1
    rle = mask_util.encode(np.asfortranarray(bitmask))
    polygon = [5.0, 5.0, 30.0, 5.0, 30.0, 30.0, 5.0, 30.0]
    for mask_format, segmentation in (("polygon", [polygon]), ("bitmask", rle)):
        record = {"file_name": str(tmp_path / "image.png"), "height": 40, "width": 50,
                  "annotations": [{"bbox": [5, 5, 30, 30], "bbox_mode": 0, "category_id": 0,
                                   "segmentation": segmentation, "iscrowd": 0,
                                   "keypoints": [10, 10, 2, 20, 20, 2]}]}
        mapper = DatasetMapper(
            is_train=True, augmentations=[Cutout(size=30, num_holes=3, fill_value=[1, 2, 3])],
            image_format="BGR", use_instance_mask=True, instance_mask_format=mask_format,
            use_keypoint=True, keypoint_hflip_indices=np.array([0, 1]))
        np.random.seed(0)
        instances = mapper(record)["instances"]
        assert instances.gt_boxes.tensor.tolist() == [[5.0, 5.0, 30.0, 30.0]]
        assert instances.gt_keypoints.tensor.tolist() == [[[10.0, 10.0, 2.0], [20.0, 20.0, 2.0]]]
        if mask_format == "polygon":
            np.testing.assert_array_equal(instances.gt_masks.polygons[0][0], polygon)
        else:
            np.testing.assert_array_equal(instances.gt_masks.tensor[0].numpy(), bitmask)
    rotated = np.array([[10.0, 12.0, 8.0, 4.0, 30.0]])
    transforms = T.AugmentationList([Cutout(size=5)])(T.AugInput(_image()))
    np.testing.assert_array_equal(transforms.apply_rotated_box(rotated.copy()), rotated)


def test_build_refuses_a_pixel_mean_that_cannot_fill_input_format_images():
    cfg = _cfg()
    cfg.INPUT.CUTOUT.ENABLED = True
    cfg.INPUT.FORMAT = "L"  # (H, W, 1) images; the default PIXEL_MEAN has 3 values
    with pytest.raises(ValueError, match=r"MODEL\.PIXEL_MEAN.*INPUT\.FORMAT='L'"):
        build_cutout_augmentation(cfg)
    cfg.MODEL.PIXEL_MEAN = [120.0]
    (aug,) = build_cutout_augmentation(cfg)
    out = aug.get_transform(_image(c=1)).apply_image(_image(c=1))
    assert out.shape == (40, 50, 1) and (out == 120).any()


def test_the_same_numpy_seed_draws_the_same_holes():
    # detectron2 seeds np.random per dataloader worker (seed + worker id): Cutout draws
    # from it alone, so a seeded worker repeats its holes.
    def holes(seed):
        np.random.seed(seed)
        return [Cutout(size=8, num_holes=2, prob=0.5).get_transform(_image()) for _ in range(20)]

    def boxes(ts):
        return [t.boxes.tolist() if isinstance(t, CutoutTransform) else None for t in ts]

    assert boxes(holes(3)) == boxes(holes(3)) != boxes(holes(4))


def test_a_lazyconfig_cutout_fill_written_as_the_readme_writes_it_follows_model_pixel_mean():
    # README: `L(Cutout)(size=64, fill_value="${model.pixel_mean}")`; the attribute
    # `model.pixel_mean` would be a copy taken when the config file ran, blind to overrides.
    from detectron2.config import LazyCall as L
    from detectron2.config import LazyConfig, instantiate

    from conftest import REPO

    cfg = LazyConfig.load(str(REPO / "configs" / "Synthetic" / "retinanet_R18_GN_dropblock_res45_kp0.9_b3.py"))
    cfg.dataloader.train.mapper.augmentations.append(L(Cutout)(size=64, fill_value="${model.pixel_mean}"))
    cfg = LazyConfig.apply_overrides(cfg, ["model.pixel_mean=[1.0,2.0,3.0]"])
    cutout = instantiate(cfg.dataloader.train.mapper.augmentations[-1])
    assert isinstance(cutout, Cutout) and list(cutout.fill_value) == [1.0, 2.0, 3.0]


# ---------------------------------------------------------------- pinned by a mutation run


def test_num_holes_squares_are_drawn_each_placed_independently():
    np.random.seed(0)
    transform = Cutout(size=4, num_holes=5).get_transform(_image())
    assert transform.boxes.shape == (5, 4)
    assert len({tuple(box) for box in transform.boxes.tolist()}) == 5


def test_holes_are_clipped_at_each_of_the_four_borders():
    # The centre is uniform over the whole image, so a square hangs over the left and top
    # borders as often as over the right and bottom ones.
    np.random.seed(0)
    height, width, size = 40, 50, 10
    boxes = np.concatenate(
        [Cutout(size=size, num_holes=8).get_transform(_image(height, width)).boxes for _ in range(100)])
    x0, y0, x1, y1 = boxes.T
    assert ((x0 == 0) & (x1 < size)).any() and ((x1 == width) & (x1 - x0 < size)).any()
    assert ((y0 == 0) & (y1 < size)).any() and ((y1 == height) & (y1 - y0 < size)).any()
    assert (x0 >= 0).all() and (y0 >= 0).all() and (x1 <= width).all() and (y1 <= height).all()


@pytest.mark.parametrize("fmt, pixel_mean", [("BGR", [110.0]), ("RGBA", [1.0, 2.0, 3.0, 4.0]),
                                             ("YCbCr", [1.0, 2.0, 3.0])])
def test_build_accepts_a_one_value_or_per_channel_pixel_mean_of_any_format(fmt, pixel_mean):
    # One value fills every channel; RGBA has 4 channels; a PIL mode the table does not
    # know is left to detectron2 (not refused).
    cfg = _cfg()
    cfg.INPUT.CUTOUT.ENABLED = True
    cfg.INPUT.FORMAT = fmt
    cfg.MODEL.PIXEL_MEAN = pixel_mean
    (aug,) = build_cutout_augmentation(cfg)
    channels = 4 if fmt == "RGBA" else 3
    out = aug.get_transform(_image(c=channels)).apply_image(_image(c=channels))
    filled = out[(out != 200).any(axis=2)]
    assert len(filled) > 0
    np.testing.assert_array_equal(filled, np.broadcast_to(np.round(pixel_mean), filled.shape))


def test_build_refuses_a_three_value_pixel_mean_for_rgba_images():
    cfg = _cfg()
    cfg.INPUT.CUTOUT.ENABLED = True
    cfg.INPUT.FORMAT = "RGBA"
    with pytest.raises(ValueError, match=r"MODEL\.PIXEL_MEAN.*INPUT\.FORMAT='RGBA'.*4 channel"):
        build_cutout_augmentation(cfg)


@pytest.mark.parametrize("kwargs, name", [({"size": True}, "size"), ({"size": 4, "num_holes": True}, "num_holes")])
def test_a_bool_size_or_num_holes_is_refused(kwargs, name):
    with pytest.raises(ValueError, match=rf"{name} must be an integer >= 1, got True"):
        Cutout(**kwargs)


def test_transform_fills_with_zero_by_default_and_refuses_boxes_of_other_widths():
    out = CutoutTransform(np.array([[1, 1, 3, 3]])).apply_image(np.full((4, 4), 9, dtype=np.uint8))
    assert (out[1:3, 1:3] == 0).all() and (out == 0).sum() == 4
    with pytest.raises(ValueError, match=r"boxes.*\(1, 5\)"):
        CutoutTransform(np.array([[0, 0, 2, 2, 1]]))


@pytest.mark.parametrize("dtype", [np.uint8, np.int16, np.int32, np.uint16])
def test_integer_images_of_any_width_get_a_rounded_clipped_fill(dtype):
    out = CutoutTransform(np.array([[0, 0, 1, 1]]), fill_value=[103.53, -5.0, 1e10]).apply_image(
        np.zeros((2, 2, 3), dtype=dtype))
    info = np.iinfo(dtype)
    assert out.dtype == dtype
    np.testing.assert_array_equal(out[0, 0], [104, max(-5, info.min), info.max])


# Regularizer-comparison journey (stop 53)
def _resized_cfg(size, min_size=(96,), max_size=96):
    cfg = _cfg()
    cfg.INPUT.CUTOUT.ENABLED = True
    cfg.INPUT.CUTOUT.SIZE = size
    cfg.INPUT.MIN_SIZE_TRAIN, cfg.INPUT.MAX_SIZE_TRAIN = min_size, max_size
    return cfg


def test_a_size_whose_hole_blanks_every_resized_image_is_refused():
    # 96 px images: a square of 191 covers all of one wherever its centre is, and 190 does not
    # (its centre in the last row leaves row 0); the build accepted both.
    np.random.seed(0)
    image = _image(h=96, w=96)
    with pytest.raises(ValueError, match=r"^INPUT\.CUTOUT\.SIZE=191: every hole covers the whole image .*at most 96 px "
                                         r"a side .*INPUT\.MIN_SIZE_TRAIN=\(96,\), INPUT\.MAX_SIZE_TRAIN=96\).*below 191"):
        build_cutout_augmentation(_resized_cfg(191))
    whole = Cutout(191, fill_value=0.0)
    assert all((whole.get_transform(image).apply_image(image) == 0).all() for _ in range(50))
    with pytest.warns(UserWarning, match=r"^INPUT\.CUTOUT\.SIZE=190 is larger than the training images' shorter side "
                                         r"\(at most 96 px after the resize"):
        (aug,) = build_cutout_augmentation(_resized_cfg(190))
    assert any((aug.get_transform(image).apply_image(image) == 200).any() for _ in range(200))


def test_a_size_within_the_resized_images_neither_warns_nor_is_refused():
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert len(build_cutout_augmentation(_resized_cfg(96))) == 1
        # A MIN_SIZE_TRAIN of 0 leaves images unresized: their size is unknown, nothing is checked.
        assert len(build_cutout_augmentation(_resized_cfg(500, min_size=(0,)))) == 1


# Mutation run 53
def test_check_cutout_size_reads_the_largest_short_edge_the_max_size_and_skips_what_it_cannot_size():
    import warnings

    from dropblock_det.data.cutout import check_cutout_size

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        check_cutout_size(80, [64, 96], 96, "k", "r")  # images of 64 or 96 px: 80 fits the larger ones
        check_cutout_size(80, 96, 1333, "k", "r")  # one length, not a list
        # No lengths, or no max_size above 0: nothing known about the images, nothing checked.
        check_cutout_size(500, [], 96, "k", "r")
        check_cutout_size(500, [96], 0, "k", "r")
    # A max_size below the short edge bounds the shorter side too.
    with pytest.warns(UserWarning, match=r"^k=100 is larger than the training images' shorter side \(at most 96 px "
                                         r"after the resize, r\)"):
        check_cutout_size(100, [800], 96, "k", "r")


# --- API bad-input 54 ---


@pytest.mark.parametrize("box", [[-4, 0, 16, 8], [0, -4, 8, 16], [8, 0, 2, 8], [0, 8, 8, 2]],
                         ids=["x0<0", "y0<0", "x1<x0", "y1<y0"])
def test_cutout_transform_refuses_boxes_that_are_not_clipped(box):
    # A negative x0 indexed from the right edge: [-4, 0, 16, 8) filled columns 12..15 of a
    # 16-pixel image, not 0..15; x1 < x0 filled nothing. Both were silent.
    with pytest.raises(ValueError, match=r"boxes must be clipped .* got \[" + ", ".join(map(str, box)) + r"\]"):
        CutoutTransform(np.array([box]), 0.0)


def test_cutout_transform_takes_empty_and_edge_boxes():
    image = np.ones((16, 16, 3), np.uint8)
    out = CutoutTransform(np.array([[0, 0, 0, 0], [12, 12, 16, 16]]), 0.0).apply_image(image)
    assert out[12:, 12:].max() == 0 and out[:12].min() == 1


@pytest.mark.parametrize("shape", [(0, 0, 3), (0, 16, 3), (16, 0)])
def test_cutout_leaves_an_empty_image_as_it_is(shape):
    # Was numpy's "ValueError: high <= 0" from the hole's random centre.
    image = np.zeros(shape, np.uint8)
    transform = Cutout(4).get_transform(image)
    assert isinstance(transform, NoOpTransform)
    assert transform.apply_image(image).shape == shape


@pytest.mark.parametrize("shape", [(16,), (1, 16, 16, 3)])
def test_cutout_names_an_image_that_is_not_hw_or_hwc(shape):
    # A 1-D array failed with "not enough values to unpack"; a 4-D batch was cut as if its
    # batch axis were the height.
    with pytest.raises(ValueError, match=r"Cutout: image must be \(H, W\) or \(H, W, C\), got shape " + re.escape(str(shape))):
        Cutout(4).get_transform(np.zeros(shape, np.uint8))


# --- stop 55 ---
def test_cutout_takes_a_pil_image_or_nested_lists_as_its_transform_does():
    # np.ndim took them, then image.shape raised AttributeError; apply_image always took them.
    from PIL import Image

    array = np.full((8, 12, 3), 200, np.uint8)
    for image in (Image.fromarray(array), array.tolist()):
        np.random.seed(0)
        transform = Cutout(4, fill_value=0.0).get_transform(image)
        np.random.seed(0)
        expected = Cutout(4, fill_value=0.0).get_transform(array)
        assert transform.boxes.tolist() == expected.boxes.tolist()
        assert np.array_equal(transform.apply_image(image), expected.apply_image(array))
