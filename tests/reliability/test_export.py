"""Export: a model trained with DropBlock everywhere, in eval mode, traces with
`torch.jit.trace` (and detectron2's `TracingAdapter` where it imports) and the traced model
gives outputs identical to stock detectron2's RetinaNet built from the same weights.

detectron2 v0.6's `detectron2.export` imports caffe2 at import time, which current PyTorch
no longer ships, so `TracingAdapter` is unavailable there; the tensor-in/tensors-out wrapper
below is traced on every version.
"""
import pytest
import torch
from torch import nn

from detectron2.modeling import build_model
from detectron2.modeling.meta_arch.retinanet import RetinaNet
from detectron2.utils.events import EventStorage

from conftest import detection_batch, stock_retinanet_cfg
from dropblock_det.layers import KeepProbRegularizer
from reliability_helpers import dropblock_everywhere_cfg


class DetectionsOf(nn.Module):
    """A detectron2 detector as image (3, H, W) -> (boxes (R, 4), scores (R,), classes (R,)),
    the form `torch.jit.trace` needs."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, image: torch.Tensor):
        instances = self.model([{"image": image}])[0]["instances"]
        return instances.pred_boxes.tensor, instances.scores, instances.pred_classes


def _images():
    batch = detection_batch(num_images=2, size=(3, 64, 64), seed=3, with_instances=False)
    return [item["image"] for item in batch]


@pytest.fixture(scope="module")
def trained_and_stock():
    """(plugin model trained 2 steps with DropBlock everywhere, stock RetinaNet with its
    weights), both in eval mode. No head norm: v0.6's stock RetinaNet cannot build GN."""
    cfg = dropblock_everywhere_cfg(keep_prob=0.7, head_norm="")
    cfg.MODEL.RETINANET.SCORE_THRESH_TEST = 0.0  # compare many detections, not none
    torch.manual_seed(0)
    plugin = build_model(cfg)
    assert sum(isinstance(m, KeepProbRegularizer) for m in plugin.modules()) > 40
    optimizer = torch.optim.SGD(plugin.parameters(), lr=0.01, momentum=0.9)
    plugin.train()
    with EventStorage(0):
        for step in range(2):
            losses = sum(plugin(detection_batch(size=(3, 64, 64), seed=step)).values())
            optimizer.zero_grad()
            losses.backward()
            optimizer.step()
    stock = build_model(stock_retinanet_cfg(cfg))
    assert type(stock) is RetinaNet
    stock.load_state_dict(plugin.state_dict(), strict=True)
    return plugin.eval(), stock.eval()


def _canonical(boxes, scores, classes):
    """The detections sorted by score (descending), then class and box. The order of
    detections of exactly equal score is arbitrary: a trace can give another order than
    eager mode (seen: 1 tie among 100 detections, the rest identical bit for bit)."""
    keys = torch.cat([-scores[:, None].double(), classes[:, None].double(), boxes.double()], dim=1).tolist()
    order = torch.tensor(sorted(range(len(keys)), key=keys.__getitem__), dtype=torch.long)
    return boxes[order], scores[order], classes[order]


def _assert_same_detections(ours, theirs):
    assert len(ours) == len(theirs) == 3
    assert ours[0].shape[0] > 0
    for a, b in zip(_canonical(*ours), _canonical(*theirs)):
        assert torch.equal(a, b)


@pytest.fixture(scope="module")
def traced_plugin(trained_and_stock):
    plugin, _ = trained_and_stock
    with torch.no_grad():
        return torch.jit.trace(DetectionsOf(plugin), (_images()[0],), check_trace=False)


def test_traced_dropblock_model_matches_stock_retinanet(trained_and_stock, traced_plugin):
    _, stock = trained_and_stock
    with torch.no_grad():
        for image in _images():  # the traced input and one the trace did not see
            _assert_same_detections(traced_plugin(image), DetectionsOf(stock)(image))


def test_eval_mode_leaves_no_random_op_in_the_trace(traced_plugin):
    traced = traced_plugin
    ops = {node.kind() for node in traced.inlined_graph.nodes()}
    random_ops = sorted(op for op in ops if any(
        word in op for word in ("bernoulli", "rand", "geometric", "dropout", "index_fill")))
    assert random_ops == []


def test_tracing_adapter_output_matches_stock_retinanet(trained_and_stock):
    try:
        from detectron2.export import TracingAdapter
    except ImportError as e:  # v0.6: detectron2.export needs caffe2
        pytest.skip(f"detectron2.export does not import here: {e}")
    plugin, stock = trained_and_stock
    first, second = _images()
    adapter = TracingAdapter(plugin, [{"image": first}])
    with torch.no_grad():
        traced = torch.jit.trace(adapter, adapter.flattened_inputs, check_trace=False)
        for image in (first, second):
            ours = adapter.outputs_schema(traced(image))[0]["instances"]
            theirs = stock([{"image": image}])[0]["instances"]
            _assert_same_detections(
                (ours.pred_boxes.tensor, ours.scores, ours.pred_classes),
                (theirs.pred_boxes.tensor, theirs.scores, theirs.pred_classes),
            )


def test_the_stock_model_scripts_and_gives_the_dropblock_models_detections(trained_and_stock):
    # TorchScript scripting (detectron2's scripting_with_instances) is what the stock model
    # built from dropblock_det.deploy.stock_config is for: the plugin's modules do not script.
    try:
        from detectron2.export import scripting_with_instances
    except ImportError as e:  # v0.6: detectron2.export needs caffe2
        pytest.skip(f"detectron2.export does not import here: {e}")
    from detectron2.structures import Boxes

    plugin, stock = trained_and_stock
    scripted = scripting_with_instances(
        stock, {"pred_boxes": Boxes, "scores": torch.Tensor, "pred_classes": torch.Tensor})
    with torch.no_grad():
        for image in _images():
            # Scripted, the model returns its detections before detector_postprocess, in the
            # input's size: compare with the plugin model asked for that size.
            theirs = scripted([{"image": image}])[0]
            boxes = Boxes(theirs.pred_boxes.tensor.clone())
            boxes.clip(image.shape[-2:])
            keep = boxes.nonempty()
            ours = plugin([{"image": image, "height": image.shape[1], "width": image.shape[2]}])[0]["instances"]
            _assert_same_detections(
                (ours.pred_boxes.tensor, ours.scores, ours.pred_classes),
                (boxes.tensor[keep], theirs.scores[keep], theirs.pred_classes[keep]),
            )


def test_scripting_a_dropblock_model_or_any_of_its_modules_says_what_to_do_instead(trained_and_stock):
    # torch.jit.script failed deep in TorchScript's compiler ("Unsupported annotation
    # typing.Optional[torch.nn.modules.module.Module] ..." at fpn.py's _identity_or, "Don't
    # support conversion in JoinedStr" for a DropBlock2d), which read as a bug of the module.
    plugin, _ = trained_and_stock
    told = r"\(dropblock-det\) does not TorchScript-script .*export_stock_config\.py.*or trace this one"
    with pytest.raises(RuntimeError, match="DropBlockRetinaNet " + told):
        torch.jit.script(plugin)
    # A stock ResNet holding DropBlock blocks is named by the block it holds.
    with pytest.raises(RuntimeError, match="DropBlockBasicBlock " + told):
        torch.jit.script(plugin.backbone.bottom_up)
    for module in (plugin.backbone, plugin.head, plugin.backbone.top_block,
                   next(m for m in plugin.modules() if isinstance(m, KeepProbRegularizer))):
        with pytest.raises(RuntimeError, match=type(module).__name__ + " " + told):
            torch.jit.script(module)


def test_every_dropblock_det_module_class_says_it_does_not_script():
    import importlib
    import inspect
    import pkgutil

    import dropblock_det
    from dropblock_det.layers.base import NotScriptable

    classes = []
    for info in pkgutil.walk_packages(dropblock_det.__path__, "dropblock_det."):
        module = importlib.import_module(info.name)
        classes += [c for _, c in inspect.getmembers(module, inspect.isclass)
                    if issubclass(c, nn.Module) and c.__module__ == info.name]
    assert len(classes) >= 15
    assert [c.__qualname__ for c in classes if not issubclass(c, NotScriptable)] == []


class BackboneAndHead(nn.Module):
    """A RetinaNet's dense part, image batch (N, 3, H, W) -> per-level class logits and box
    deltas: what torch.export takes (the detectron2 structures around it it does not)."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, images: torch.Tensor):
        features = self.model.backbone(images)
        return self.model.head([features[f] for f in self.model.head_in_features])


def test_torch_export_of_the_eval_model_has_no_random_op_and_gives_its_outputs(trained_and_stock):
    # torch.export is what PyTorch now points to (torch.jit.script warns it is deprecated).
    plugin, stock = trained_and_stock
    images = torch.stack([image.float() for image in _images()])
    exported = torch.export.export(BackboneAndHead(plugin), (images,))
    ops = {str(node.target) for node in exported.graph.nodes if node.op == "call_function"}
    assert any("conv2d" in op for op in ops)
    assert not [op for op in ops if any(w in op for w in ("bernoulli", "rand", "dropout", "index_fill", "where"))]
    with torch.no_grad():
        theirs = BackboneAndHead(stock)(images)
        for fresh in (images, images.flip(-1)):  # the exported input and another
            ours, reference = exported.module()(fresh), BackboneAndHead(plugin)(fresh)
            for a, b in zip(sum(ours, []), sum(reference, [])):
                assert torch.equal(a, b)
        for a, b in zip(sum(exported.module()(images), []), sum(theirs, [])):
            assert torch.equal(a, b)
