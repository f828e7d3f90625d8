#!/usr/bin/env python
"""dropblock-det: DropBlock and structured dropout for detectron2 detectors and segmenters.

detectron2 is deliberately not an install requirement: it is not published on the
package registry under its own name. `make env` (tools/setup_env.py) installs it, or
uses the one already importable in the environment.
"""
from pathlib import Path

from setuptools import find_packages, setup


def read_version() -> str:
    init = Path(__file__).parent / "dropblock_det" / "__init__.py"
    for line in init.read_text().splitlines():
        if line.startswith("__version__"):
            return line.split("=")[1].strip().strip("\"'")
    raise RuntimeError("__version__ not found in dropblock_det/__init__.py")


setup(
    name="dropblock-det",
    version=read_version(),
    description="DropBlock (Ghiasi et al., NeurIPS 2018) and structured dropout for detectron2",
    long_description=(Path(__file__).parent / "README.md").read_text(),
    long_description_content_type="text/markdown",
    license="Apache-2.0",
    python_requires=">=3.8",
    packages=find_packages(include=["dropblock_det", "dropblock_det.*"]),
    install_requires=[
        "torch>=1.10",
        "torchvision>=0.11",
        "fvcore>=0.1.5",
        "pycocotools>=2.0.2",
        "numpy",
        "Pillow",
        "matplotlib",  # loss / keep_prob / AP plots of the tools
        "scipy",  # reads SBD's .mat ground truth (datasets/prepare_voc_sem_seg.py)
    ],
    extras_require={
        "test": ["pytest>=7.3", "pytest-xdist>=3", "hypothesis>=6"],  # xdist: `make test` runs a worker per core
    },
)
