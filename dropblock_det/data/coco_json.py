"""The class names of a COCO-format annotation file, and whether its annotations have masks
or keypoints, read without loading the dataset.

``register_coco_instances`` (the usual way to use one's own dataset in detectron2) names the
file in the metadata (``json_file``) but sets no ``thing_classes``: ``load_coco_json`` sets
them from the file's "categories" when the data loader is built. The config checks compare
the model's class count with them before that, so they read the categories here. Only the
categories are parsed: the file is searched for the "categories" key and the list after it
decoded, so a COCO-sized file (~450 MB, categories last) takes a scan, not a second full parse
before detectron2's own. A Mask (Keypoint) R-CNN's training set is likewise scanned for the
"segmentation" ("keypoints") key outside the category list.
"""
import contextlib
import json
import mmap
import os
import re
from typing import Any, Iterator, List, Optional, Tuple

__all__ = ["coco_category_names", "coco_json_has_key"]

# Inside a JSON string every '"' is escaped, so this can only match an object's key.
_CATEGORIES_KEY = re.compile(rb'"categories"\s*:\s*(?=\[)')
_FIRST_READ = 1 << 16


@contextlib.contextmanager
def _mapped(json_file: str) -> Iterator[Optional[mmap.mmap]]:
    """The bytes of `json_file`, memory-mapped (read in pages as a search reaches them); None
    when it is not a local, non-empty, readable file."""
    try:
        f = open(json_file, "rb") if os.path.isfile(json_file) else None
    except OSError:
        f = None
    if f is None:
        yield None
        return
    with f:
        if os.fstat(f.fileno()).st_size == 0:
            yield None
            return
        with mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as data:
            yield data


def _is_category_list(value) -> bool:
    return isinstance(value, list) and all(isinstance(c, dict) and "id" in c and "name" in c for c in value)


def _list_at(data, start: int) -> Tuple[Any, int]:
    """The JSON list starting at byte `start` and the byte after it, decoded from a slice that
    grows until it holds the whole list; (None, start) when no slice up to the end of the file
    decodes."""
    size = _FIRST_READ
    while True:
        end = min(len(data), start + size)
        text = bytes(data[start:end]).decode("utf-8", errors="replace")
        try:
            value, length = json.JSONDecoder().raw_decode(text)
            return value, start + len(text[:length].encode("utf-8"))
        except ValueError:  # cut short by the slice, or not JSON at all
            if end == len(data):
                return None, start
            size *= 4


def _category_lists(data) -> Iterator[Tuple[List[dict], int, int]]:
    """Each "categories" key's list of category objects (with "id" and "name"), with its
    first byte and the byte after it; a nested "categories" of another shape is passed over."""
    for match in _CATEGORIES_KEY.finditer(data):
        categories, end = _list_at(data, match.end())
        if _is_category_list(categories):
            yield categories, match.end(), end


def coco_category_names(json_file: str) -> Optional[List[str]]:
    """The names of the categories of the COCO-format file `json_file`, as
    detectron2's ``load_coco_json`` gives them for ``thing_classes``: ordered by category id,
    one per entry of the "categories" list.

    Returns None when there is no such list to read: `json_file` is not a local file, is empty
    or unreadable, or has no "categories" key followed by a list of objects with "id" and
    "name" (a nested "categories" key whose value is not such a list is passed over). The
    dataset's loading then reports what it finds.
    """
    with _mapped(json_file) as data:
        if data is None:
            return None
        categories = next((found for found, _, _ in _category_lists(data)), None)
        if categories is None:
            return None
    # pycocotools keys categories by id (the last entry of an id wins) and lists one per entry.
    try:
        name_of = {c["id"]: c["name"] for c in categories}
        ids = sorted(c["id"] for c in categories)
    except TypeError:  # ids of mixed types, or unhashable ones (a list): detectron2's loading fails the same way
        return None
    return [name_of[i] for i in ids]


def coco_json_has_key(json_file: str, key: str) -> Optional[bool]:
    """Whether some object of the JSON file `json_file` outside its category list has the key
    `key` (e.g. "segmentation" or "keypoints" in a COCO-format file's annotations), by a scan
    of the file as for the categories; None when it is not a local, non-empty, readable file.

    The category list is left out because COCO's "person" category has a "keypoints" key of
    its own (the keypoints' names): a box-only file that copied it has no keypoints."""
    pattern = re.compile(b'"' + re.escape(key.encode("utf-8")) + rb'"\s*:')
    with _mapped(json_file) as data:
        if data is None:
            return None
        spans = None  # the category lists' bytes, found once a match needs them
        for match in pattern.finditer(data):
            if spans is None:
                spans = [(start, end) for _, start, end in _category_lists(data)]
            if not any(start <= match.start() < end for start, end in spans):
                return True
        return False
