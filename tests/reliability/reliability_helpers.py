"""Shared pieces of the reliability tests: the checks for plugin-specific state in
checkpoints (the tiny config with DropBlock at every location, the stock-detectron2 config,
the tiny synthetic set and `load_tool` are in conftest.py).

Imported by the test files of tests/reliability as `from reliability_helpers import ...`
(pytest puts each test file's folder on sys.path).
"""
from typing import Any, Iterator, List

from conftest import dropblock_everywhere_cfg  # noqa: F401  (re-exported for the reliability tests)

# Keys whose names a leaked plugin state would carry (in a checkpoint, a state_dict...).
PLUGIN_WORDS = ("dropblock", "drop_block", "drop_path", "keep_prob", "regularizer")


def nested_keys(obj: Any, prefix: str = "") -> Iterator[str]:
    """Every dict key of a nested checkpoint structure, as dotted paths."""
    if isinstance(obj, dict):
        for key, value in obj.items():
            path = f"{prefix}.{key}" if prefix else str(key)
            yield path
            yield from nested_keys(value, path)
    elif isinstance(obj, (list, tuple)):
        for i, value in enumerate(obj):
            yield from nested_keys(value, f"{prefix}[{i}]")


def plugin_specific_keys(obj: Any) -> List[str]:
    """The nested keys of `obj` whose names mention a plugin concept (see PLUGIN_WORDS)."""
    return [k for k in nested_keys(obj) if any(w in k.lower() for w in PLUGIN_WORDS)]
