"""dropblock-det: DropBlock and structured dropout for detectron2.

Importing this package registers its components with detectron2's registries
(backbones, meta-architectures, semantic-segmentation heads, datasets).
"""
__version__ = "0.1.0"

try:
    import detectron2  # noqa: F401
except ImportError as e:  # pragma: no cover - exercised by tests in a subprocess
    raise ImportError(
        "dropblock_det needs detectron2, which is not importable in this Python "
        f"({e}). detectron2 is not on the package registry under its own name: run "
        "`make env` in the dropblock-det checkout (it installs detectron2 v0.6's Python "
        "code, or keeps a detectron2 you built yourself), or build detectron2 from source "
        "(https://detectron2.readthedocs.io/en/latest/tutorials/install.html) and then "
        "`pip install -e .` here."
    ) from None

from .config import add_dropblock_config  # noqa: E402
from . import layers  # noqa: E402
from . import modeling  # noqa: E402  (registers backbones and DropBlockRetinaNet)
from .config import validate_dropblock_config  # noqa: E402
from .engine import DropBlockScheduleHook  # noqa: E402
from . import data  # noqa: E402  (registers the synthetic and VOC segmentation datasets)

__all__ = ["add_dropblock_config", "validate_dropblock_config", "DropBlockScheduleHook", "__version__"]
