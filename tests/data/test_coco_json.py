import json

import pytest

from dropblock_det.data.coco_json import coco_category_names


def _coco(categories, images=(), **extra):
    return {"info": {"description": "test"}, "images": list(images), "annotations": [],
            "categories": categories, **extra}


def _write(path, content, **dump):
    path.write_text(content if isinstance(content, str) else json.dumps(content, **dump))
    return str(path)


def test_names_are_detectrons_thing_classes_ordered_by_id_not_by_file_order(tmp_path):
    # The reference is detectron2's own reading, which sets thing_classes when the loader is
    # built: unsorted and non-contiguous ids (a custom file's) come out sorted by id.
    from detectron2.data import MetadataCatalog
    from detectron2.data.datasets import load_coco_json

    path = _write(tmp_path / "a.json", _coco([{"id": 7, "name": "dog"}, {"id": 2, "name": "cat"},
                                              {"id": 3, "name": "bird"}]))
    name = "test_coco_json_reference"
    try:
        load_coco_json(path, str(tmp_path), name)
        expected = MetadataCatalog.get(name).thing_classes
    finally:
        MetadataCatalog.remove(name)
    assert expected == ["cat", "bird", "dog"]
    assert coco_category_names(path) == expected


def test_a_pretty_printed_file_with_the_categories_after_a_large_block_is_read(tmp_path):
    # The categories of COCO's own files come last, after ~450 MB of images and annotations;
    # here after more than the first read (64 KiB) of the file, and longer than it themselves.
    images = [{"id": i, "file_name": f"{i:012d}.jpg", "width": 640, "height": 480} for i in range(3000)]
    categories = [{"id": i + 1, "name": f"class_{i}_" + "x" * 100, "supercategory": "thing"} for i in range(1000)]
    path = _write(tmp_path / "big.json", {"images": images, "annotations": [], "categories": categories}, indent=2)
    assert coco_category_names(path) == [c["name"] for c in categories]


def test_a_categories_key_that_is_no_category_list_is_passed_over(tmp_path):
    # A nested "categories" of another shape (a tool's own field), and the text of the key
    # inside a string, are not the file's categories.
    content = _coco([{"id": 1, "name": "cat"}],
                    info={"categories": ["not", "these"], "note": '"categories": [{"id": 5, "name": "no"}]'})
    content = {"info": content.pop("info"), **content}  # the nested key before the real one
    path = _write(tmp_path / "a.json", content)
    assert coco_category_names(path) == ["cat"]


def test_one_name_per_entry_as_pycocotools_lists_them(tmp_path):
    # pycocotools keys categories by id (the last entry of an id wins) but lists one per entry.
    path = _write(tmp_path / "a.json", _coco([{"id": 2, "name": "a"}, {"id": 1, "name": "b"},
                                              {"id": 2, "name": "c"}]))
    assert coco_category_names(path) == ["b", "c", "c"]


@pytest.mark.parametrize("content", [
    "",  # empty: no mapping to read
    '{"images": [], "annotations": []}',  # no categories at all
    '{"images": [], "categories": [{"id": 1, "name": "cat"}, {"id": 2, "na',  # cut off in them
    '{"categories": "cat, dog"}',  # not a list
    '{"categories": [{"id": 1}, {"id": 2, "name": "dog"}]}',  # an entry without a name
    '{"categories": [{"name": "cat"}]}',  # without an id
    '{"categories": [{"id": 1, "name": "cat"}, {"id": "2", "name": "dog"}]}',  # ids of two types
    '{"categories": ["id and name"]}',  # entries that are no objects (their text has "id" and "name")
    '{"categories": [{"id": [1], "name": "cat"}]}',  # an id pycocotools cannot key by (a TypeError, not None)
])
def test_a_file_without_a_readable_category_list_gives_none(tmp_path, content):
    assert coco_category_names(_write(tmp_path / "a.json", content)) is None


def test_a_file_that_is_not_there_or_not_a_file_gives_none(tmp_path):
    assert coco_category_names(str(tmp_path / "missing.json")) is None
    assert coco_category_names(str(tmp_path)) is None


def test_a_key_is_found_only_as_an_objects_key(tmp_path):
    from dropblock_det.data.coco_json import coco_json_has_key

    boxes = _coco([{"id": 1, "name": "cat"}], info={"note": '"segmentation": [[1, 2]]'},
                  annotations=[{"id": 1, "image_id": 1, "category_id": 1, "bbox": [1, 1, 4, 4]}])
    path = _write(tmp_path / "boxes.json", boxes, indent=1)
    assert coco_json_has_key(path, "segmentation") is False  # only in a string's text
    assert coco_json_has_key(path, "bbox") is True
    boxes["annotations"][0]["segmentation"] = [[1, 1, 4, 1, 4, 4]]
    assert coco_json_has_key(_write(tmp_path / "masks.json", boxes, indent=1), "segmentation") is True
    assert coco_json_has_key(str(tmp_path / "missing.json"), "bbox") is None
    assert coco_json_has_key(_write(tmp_path / "empty.json", ""), "bbox") is None


def test_a_key_that_ends_in_categories_is_not_the_categories(tmp_path):
    # Only the key "categories" itself: a "subcategories" list of the same shape before it is
    # a field of the file's own.
    path = _write(tmp_path / "a.json", '{"subcategories": [{"id": 9, "name": "sub"}], '
                                      '"categories": [{"id": 1, "name": "cat"}]}')
    assert coco_category_names(path) == ["cat"]


def test_a_file_that_cannot_be_opened_gives_none(tmp_path, monkeypatch):
    # A file without read permission (chmod cannot refuse root, so open refuses here).
    from dropblock_det.data import coco_json
    from dropblock_det.data.coco_json import coco_json_has_key

    path = _write(tmp_path / "a.json", _coco([{"id": 1, "name": "cat"}]))

    def refused(*args, **kwargs):
        raise PermissionError(13, "Permission denied", path)

    monkeypatch.setattr(coco_json, "open", refused, raising=False)
    assert coco_category_names(path) is None
    assert coco_json_has_key(path, "categories") is None


def test_a_key_is_not_found_in_a_value_or_in_a_longer_key(tmp_path):
    # A category named "segmentation" is a value, and "has_segmentation" another key: a
    # box-only file has no "segmentation" key for all that.
    from dropblock_det.data.coco_json import coco_json_has_key

    boxes = _coco([{"id": 1, "name": "segmentation"}],
                  annotations=[{"id": 1, "image_id": 1, "category_id": 1, "bbox": [1, 1, 4, 4],
                                "has_segmentation": False}])
    path = _write(tmp_path / "boxes.json", boxes)
    assert coco_json_has_key(path, "segmentation") is False
    assert coco_json_has_key(path, "has_segmentation") is True


@pytest.mark.parametrize("categories_first", [True, False])
def test_the_keypoint_names_of_cocos_person_category_are_no_keypoints(tmp_path, categories_first):
    # COCO's person category names its keypoints under a "keypoints" key: a box-only file that
    # copied it has no keypoints for a Keypoint R-CNN, and was taken to have them.
    from dropblock_det.data.coco_json import coco_json_has_key

    person = {"id": 1, "name": "person", "supercategory": "person", "keypoints": ["nose", "left_eye"],
              "skeleton": [[1, 2]]}
    boxes = [{"id": 1, "image_id": 1, "category_id": 1, "bbox": [1, 1, 4, 4]}]
    content = _coco([person], annotations=boxes)
    if categories_first:
        content = {"categories": content.pop("categories"), **content}
    path = _write(tmp_path / "boxes.json", content, indent=2)
    assert coco_json_has_key(path, "keypoints") is False
    assert coco_json_has_key(path, "skeleton") is False
    assert coco_category_names(path) == ["person"]
    boxes[0].update(keypoints=[2, 3, 2, 0, 0, 0], num_keypoints=1)
    assert coco_json_has_key(_write(tmp_path / "keypoints.json", content, indent=2), "keypoints") is True
    # The bytes of the category list are counted as bytes: a name of several bytes per
    # character before the annotations' key does not shift it into the list.
    person["name"] = "人" * 50
    boxes[0].pop("keypoints")
    assert coco_json_has_key(_write(tmp_path / "utf8.json", content, ensure_ascii=False), "keypoints") is False
    boxes[0]["keypoints"] = [2, 3, 2]
    assert coco_json_has_key(_write(tmp_path / "utf8_kp.json", content, ensure_ascii=False), "keypoints") is True


# --- mutation run 52: behaviour the tests above left unpinned ---


def test_every_category_list_is_left_out_and_a_value_outside_them_is_no_key(tmp_path):
    # A second copy of COCO's person category (a tool's own field, after the file's list) is
    # a category list too: its "keypoints" are names, not keypoints. An image's file name
    # "keypoints" is a value; the "categories" key itself is outside its list.
    from dropblock_det.data.coco_json import coco_json_has_key

    person = {"id": 1, "name": "person", "keypoints": ["nose"]}
    path = _write(tmp_path / "a.json", {"images": [{"id": 1, "file_name": "keypoints"}], "categories": [person],
                                        "annotations": [], "info": {"categories": [person]}})
    assert coco_json_has_key(path, "keypoints") is False
    assert coco_json_has_key(path, "categories") is True
