#!/usr/bin/env python
"""Write the config of the stock detectron2 model that a dropblock-det model is at
inference, to serve or export it with detectron2's own tools where dropblock-det is not
installed (see dropblock_det/deploy.py):

    python tools/export_stock_config.py --config-file output/main_job/config.yaml \\
        --output output/main_job/stock_config.yaml MODEL.WEIGHTS output/main_job/model_final.pth

then, for example, from a detectron2 checkout (no dropblock-det import):

    python tools/deploy/export_model.py --config-file output/main_job/stock_config.yaml \\
        --export-method scripting --format torchscript --output exported MODEL.DEVICE cpu

Before anything is written the config is read back into a fresh detectron2 config, its
model is built (on PyTorch's meta device) and must have the dropblock-det model's
state_dict keys and shapes, and the checkpoint MODEL.WEIGHTS names (if any, and local)
must load strictly into it. An existing --output file is never overwritten.
"""
import argparse
import os
import sys
import tempfile
from typing import List, Optional, Sequence

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # tool_args.py, beside this file
from tool_args import parse_tool_args  # noqa: E402


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config-file", required=True, help="the dropblock-det config the model was trained with")
    p.add_argument("--output", required=True, help="YAML file to write (must not exist)")
    p.add_argument("opts", nargs=argparse.REMAINDER, default=[],
                   help="config overrides, KEY VALUE pairs (e.g. MODEL.WEIGHTS)")
    return parse_tool_args(p, argv)


def read_stock_config(path: str, deeplab: bool):
    """`path` read the way stock detectron2 reads a config file (`empty_stock_config`, then
    merge_from_file)."""
    from dropblock_det.deploy import empty_stock_config

    cfg = empty_stock_config(deeplab)
    cfg.merge_from_file(path)
    return cfg


def check_stock_config(cfg, stock) -> bool:  # CfgNodes
    """RuntimeError unless the model of `stock` has the state_dict keys and shapes of the
    model of `cfg`; CheckpointMismatchError unless MODEL.WEIGHTS (a local file) loads
    strictly into it. Whether MODEL.WEIGHTS was checked (not for a URL, an empty value, or
    where the model cannot be built on the meta device)."""
    from dropblock_det.engine.trainer import (
        CheckpointMismatchError,
        is_url,
        meta_model,
        read_checkpoint,
        state_dict_problems,
    )

    ours, theirs = meta_model(cfg), meta_model(stock)
    if ours is not None and theirs is not None:
        problems = state_dict_problems(theirs, ours.state_dict())
        if problems:  # a component of this package whose stock counterpart differs: a bug
            raise RuntimeError("the stock model does not have the dropblock-det model's "
                               "parameters: " + "; ".join(problems))
    weights = stock.MODEL.WEIGHTS
    if not weights or is_url(weights) or theirs is None:
        return False
    problems = state_dict_problems(theirs, read_checkpoint(weights)["model"])
    if problems:
        raise CheckpointMismatchError(
            f"MODEL.WEIGHTS={weights!r} does not load strictly into the stock model of "
            f"this config: " + "; ".join(problems))
    return True


def advice(cfg, stock, checked: bool) -> List[str]:
    """What the user should know about the written config `stock` of `cfg` (CfgNodes)."""
    from dropblock_det.deploy import needs_deeplab_project

    lines = []
    # A run's config.yaml names the weights training started from (empty, or an ImageNet
    # URL), not the trained ones: say so instead of writing a config of an untrained model.
    if not stock.MODEL.WEIGHTS:
        lines.append("MODEL.WEIGHTS is empty: the stock model would start from random weights; "
                     "give the trained ones: MODEL.WEIGHTS <run>/model_final.pth")
    elif not checked:
        lines.append(f"MODEL.WEIGHTS={stock.MODEL.WEIGHTS!r} was not checked (a URL is not "
                     "fetched here): make sure it is the trained model's checkpoint, not the "
                     "initialisation")
    if cfg.MODEL.SEM_SEG_HEAD.NAME == "DropBlockDeepLabV3PlusHead" and stock.INPUT.CROP.ENABLED:
        # DropBlockASPP pools globally where the stock ASPP's fixed kernel does not fit.
        lines.append(
            f"Its ASPP pools with the fixed kernel of INPUT.CROP.SIZE={tuple(stock.INPUT.CROP.SIZE)} "
            "(at the backbone's output stride) and raises on any input whose feature map is "
            "not a multiple of it (most PASCAL VOC images at their own size), where the "
            "DropBlock model pools globally. For inputs of any size, write the config again "
            "with INPUT.CROP.ENABLED False (global pooling everywhere; the DropBlock model keeps "
            "the stock pooling on maps that are a multiple of the crop's).")
    if needs_deeplab_project(stock):
        lines.append(
            "It uses detectron2's DeepLab project: read it with get_cfg(), "
            "detectron2.projects.deeplab.add_deeplab_config(cfg), then merge_from_file, and "
            "import detectron2.projects.deeplab before building the model. detectron2's "
            "tools/deploy/export_model.py reads configs with get_cfg() alone and cannot read "
            "it: trace the model from such a script (detectron2.export.TracingAdapter).")
    return lines


def main(argv: Optional[Sequence[str]] = None) -> str:
    args = parse_args(argv)
    import dropblock_det  # noqa: F401  (registers the components)
    from dropblock_det.deploy import needs_deeplab_project, stock_config
    from dropblock_det.engine.trainer import check_weights_path, is_url, load_config

    if not args.output:
        raise ValueError("--output is empty: give the YAML file to write")
    if os.path.exists(args.output):
        raise FileExistsError(f"--output {args.output!r} exists; it is not overwritten: "
                              "give a new file name or remove it")
    cfg = load_config(args.config_file, args.opts)
    check_weights_path(cfg)
    stock = stock_config(cfg)
    if stock.MODEL.WEIGHTS and not is_url(stock.MODEL.WEIGHTS):
        # detectron2 resolves a relative path against the reader's working directory, not
        # the file's folder: absolute, it loads from anywhere (e.g. a detectron2 checkout).
        stock.MODEL.WEIGHTS = os.path.abspath(stock.MODEL.WEIGHTS)
    deeplab = needs_deeplab_project(stock)
    text = stock.dump()
    # Read back from a temporary file first: the written file must load in stock detectron2.
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "stock_config.yaml")
        with open(path, "w") as f:
            f.write(text)
        checked = check_stock_config(cfg, read_stock_config(path, deeplab))
    os.makedirs(os.path.dirname(os.path.abspath(args.output)), exist_ok=True)
    with open(args.output, "x") as f:  # "x": never replaces a file created meanwhile
        f.write(text)
    print(f"wrote {args.output}: {stock.MODEL.META_ARCHITECTURE} with "
          f"{stock.MODEL.BACKBONE.NAME}"
          + (f" and {stock.MODEL.SEM_SEG_HEAD.NAME}" if stock.MODEL.META_ARCHITECTURE == "SemanticSegmentor" else "")
          + (f", weights {stock.MODEL.WEIGHTS} ({'checked' if checked else 'not checked'})"
             if stock.MODEL.WEIGHTS else ""))
    for line in advice(cfg, stock, checked):
        print(line)
    return args.output


if __name__ == "__main__":
    main()
