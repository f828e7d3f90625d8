"""The environment works: detectron2 imports, and a RetinaNet from the project's own base
config builds, trains one iteration and runs inference on CPU."""
import math
import subprocess
import sys

import torch

from conftest import REPO, small_retinanet_cfg


def _images(n: int = 2, size=(3, 80, 96)):
    g = torch.Generator().manual_seed(0)
    return [
        {
            "image": (torch.rand(size, generator=g) * 255).to(torch.uint8),
            "height": size[1],
            "width": size[2],
        }
        for _ in range(n)
    ]


def _with_instances(batch):
    from detectron2.structures import Boxes, Instances

    for d in batch:
        inst = Instances((d["height"], d["width"]))
        inst.gt_boxes = Boxes(torch.tensor([[10.0, 12.0, 50.0, 60.0], [30.0, 5.0, 70.0, 40.0]]))
        inst.gt_classes = torch.tensor([0, 2])
        d["instances"] = inst
    return batch


def test_detectron2_imports_and_project_registers():
    import detectron2
    from detectron2.modeling import META_ARCH_REGISTRY

    import dropblock_det

    assert detectron2.__version__
    assert dropblock_det.__version__
    assert "RetinaNet" in META_ARCH_REGISTRY


def test_retinanet_from_project_base_config_trains_one_iteration_with_finite_losses():
    from detectron2.modeling import build_model
    from detectron2.utils.events import EventStorage

    cfg = small_retinanet_cfg()
    model = build_model(cfg)
    model.train()
    with EventStorage(0):
        losses = model(_with_instances(_images()))
        total = sum(losses.values())
        total.backward()
    assert set(losses) == {"loss_cls", "loss_box_reg"}
    assert all(math.isfinite(v.item()) for v in losses.values())
    grads = [p.grad for p in model.parameters() if p.requires_grad]
    assert any(g is not None and g.abs().sum() > 0 for g in grads)


def test_retinanet_inference_returns_instances():
    from detectron2.modeling import build_model
    from detectron2.structures import Instances

    cfg = small_retinanet_cfg()
    model = build_model(cfg).eval()
    with torch.no_grad():
        out = model(_images(1))
    assert isinstance(out[0]["instances"], Instances)
    inst = out[0]["instances"]
    assert inst.image_size == (80, 96)
    assert {"pred_boxes", "scores", "pred_classes"} <= set(inst.get_fields())


def test_missing_compiled_operator_raises_clear_import_error():
    import detectron2._C as C

    if "placeholder" not in C.get_compiler_version():
        return  # a real build from source: every operator exists
    try:
        C.COCOevalAccumulate
    except ImportError as e:
        assert "COCOevalAccumulate" in str(e) and "compiled" in str(e)
    else:
        raise AssertionError("placeholder _C should raise ImportError for operators")


def test_import_without_detectron2_fails_with_instructions(tmp_path):
    # A Python whose import of detectron2 fails: shadow it with a package that raises.
    fake = tmp_path / "detectron2"
    fake.mkdir()
    (fake / "__init__.py").write_text("raise ImportError('No module named detectron2')\n")
    code = "import dropblock_det"
    r = subprocess.run(
        [sys.executable, "-c", code],
        env={"PYTHONPATH": f"{tmp_path}:{REPO}", "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
    )
    assert r.returncode != 0
    assert "dropblock_det needs detectron2" in r.stderr
    assert "make env" in r.stderr
