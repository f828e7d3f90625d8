"""DropBlockRetinaNet and its head: GN heads on detectron2 v0.6, regularizers in the
towers without shifting detectron2's parameter indices, and checkpoints that load into
stock detectron2's RetinaNet with identical eval outputs."""
import inspect
import math

import pytest
import torch

from detectron2.layers import ShapeSpec
from detectron2.modeling import build_model
from detectron2.modeling.meta_arch.retinanet import RetinaNet, RetinaNetHead
from detectron2.utils.events import EventStorage

import dropblock_det  # noqa: F401
from dropblock_det.layers import DropBlock2d, KeepProbRegularizer
from dropblock_det.modeling import DropBlockRetinaNet, DropBlockRetinaNetHead

from conftest import backward_node_names, detection_batch, small_retinanet_cfg, stock_retinanet_cfg


def _plugin_cfg(base="Base-RetinaNet-Scratch.yaml", head_norm="GN", **enabled):
    cfg = small_retinanet_cfg(base)
    cfg.MODEL.RETINANET.NORM = head_norm
    db = cfg.MODEL.DROPBLOCK
    db.RESNET.ENABLED = enabled.get("resnet", False)
    db.FPN.ENABLED = enabled.get("fpn", False)
    db.FPN.POSITIONS = ["lateral", "output", "top_block"]
    db.HEAD.ENABLED = enabled.get("head", False)
    db.HEAD.TOWERS = enabled.get("towers", ["cls", "bbox"])
    return cfg


def _train_steps(model, steps=2, lr=0.01):
    optimizer = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9)
    model.train()
    losses = []
    with EventStorage(0):
        for step in range(steps):
            loss_dict = model(detection_batch(seed=step))
            total = sum(loss_dict.values())
            optimizer.zero_grad()
            total.backward()
            optimizer.step()
            losses.append({k: v.item() for k, v in loss_dict.items()})
    return losses


def _input_shapes(channels=32, levels=5):
    return [ShapeSpec(channels=channels, stride=2 ** (3 + i)) for i in range(levels)]


def test_stock_v06_head_cannot_build_gn_but_ours_can():
    kwargs = dict(input_shape=_input_shapes(), num_classes=3, num_anchors=9, conv_dims=[32, 32])
    try:
        RetinaNetHead(norm="GN", **kwargs)
    except ValueError:
        stock_builds_gn = False  # detectron2 v0.6: get_norm("GN", 1) -> GroupNorm(32, 1)
    else:
        stock_builds_gn = True  # current detectron2 main builds it
    head = DropBlockRetinaNetHead(norm="GN", **kwargs)
    norms = [m for m in head.cls_subnet if isinstance(m, torch.nn.GroupNorm)]
    assert [(n.num_groups, n.num_channels) for n in norms] == [(32, 32), (32, 32)]
    # detectron2's version string is "0.6" on v0.6 and on main; the source tells them apart.
    if "get_norm(norm, 1)" in inspect.getsource(RetinaNetHead.__init__):
        assert not stock_builds_gn


def test_gn_head_state_dict_keys_follow_detectron2_main_naming():
    head = DropBlockRetinaNetHead(
        input_shape=_input_shapes(), num_classes=3, num_anchors=9, conv_dims=[32, 32],
        norm="GN", dropblock=lambda: DropBlock2d(0.9, 3), dropblock_towers=["cls", "bbox"],
    )
    # Current detectron2 main's RetinaNetHead with NORM "GN": per conv, Sequential entries
    # conv (3i), GroupNorm (3i + 1), ReLU (3i + 2, no parameters); then the predictors.
    expected = []
    for tower in ("cls_subnet", "bbox_subnet"):
        for i in range(2):
            expected += [f"{tower}.{3 * i}.weight", f"{tower}.{3 * i}.bias"]
            expected += [f"{tower}.{3 * i + 1}.weight", f"{tower}.{3 * i + 1}.bias"]
    expected += ["cls_score.weight", "cls_score.bias", "bbox_pred.weight", "bbox_pred.bias"]
    assert list(head.state_dict()) == expected
    try:  # where stock detectron2 can build a GN head (main), compare with it directly
        stock = RetinaNetHead(
            input_shape=_input_shapes(), num_classes=3, num_anchors=9, conv_dims=[32, 32], norm="GN"
        )
    except ValueError:
        return
    assert list(stock.state_dict()) == expected


def test_head_regularizers_in_separate_lists_one_per_conv_of_chosen_towers():
    cfg = _plugin_cfg(head=True, towers=["bbox"])
    cfg.MODEL.RETINANET.NUM_CONVS = 3
    model = build_model(cfg)
    names = {n for n, m in model.named_modules() if isinstance(m, KeepProbRegularizer)}
    assert names == {"head.bbox_dropblocks.0", "head.bbox_dropblocks.1", "head.bbox_dropblocks.2"}
    assert model.head.cls_dropblocks is None
    assert isinstance(model, DropBlockRetinaNet)


# hooked: a hook on the tower's ReLU makes the head call it as a module, then the regularizer.
@pytest.mark.parametrize("hooked", [False, True])
def test_head_regularizer_follows_each_relu_of_the_tower(hooked):
    log = []

    class Record(torch.nn.Module):
        def forward(self, x):
            log.append((self, float(x.detach().min())))
            return x

    head = DropBlockRetinaNetHead(
        input_shape=_input_shapes(levels=2), num_classes=3, num_anchors=9, conv_dims=[32, 32],
        norm="GN", dropblock=Record, dropblock_towers=["cls"],
    )
    if hooked:
        for relu in head.cls_subnet:
            if isinstance(relu, torch.nn.ReLU):
                relu.register_forward_hook(lambda module, args, out: None)
    logits, deltas = head([torch.randn(2, 32, 8, 8), torch.randn(2, 32, 4, 4)])
    assert [tuple(t.shape) for t in logits] == [(2, 27, 8, 8), (2, 27, 4, 4)]
    assert [tuple(t.shape) for t in deltas] == [(2, 36, 8, 8), (2, 36, 4, 4)]
    # 2 convs x 2 levels, each after a ReLU: never negative
    assert len(log) == 4 and min(value for _, value in log) >= 0
    # Each conv's own regularizer, in conv order, on every level.
    assert [module for module, _ in log] == list(head.cls_dropblocks) * 2


@pytest.mark.parametrize("type_name", ["Dropout", "SpatialDropout"])
def test_dropout_types_from_config_take_the_towers_relu_into_their_own_pass(type_name):
    # Each tower conv's ReLU goes to the regularizer (relu=True): a Dropout or SpatialDropout
    # chosen by TYPE keeps only its output for backward there, not relu(x) and its mask.
    cfg = _plugin_cfg(head=True)
    cfg.MODEL.DROPBLOCK.TYPE = type_name
    cfg.MODEL.DROPBLOCK.KEEP_PROB = 0.5
    head = build_model(cfg).head.train()
    logits, deltas = head([torch.randn(1, 32, 8, 8), torch.randn(1, 32, 4, 4)])
    names = backward_node_names(sum(t.sum() for t in logits + deltas))
    # 1 conv per tower (small_retinanet_cfg), 2 towers, 2 levels
    assert names.count("_ReluThenMaskedScaleBackward") == 4
    assert "_MaskedScaleBackward" not in names


@pytest.mark.parametrize("hook", ["own", "global"])
def test_a_hooked_tower_relu_is_called_as_a_module(hook):
    # The regularizer takes the tower's ReLU into its own pass, skipping the nn.ReLU
    # module; a hook on it (or a global module hook) must still see it called.
    cfg = _plugin_cfg(head=True)
    cfg.MODEL.DROPBLOCK.TYPE = "Dropout"
    cfg.MODEL.DROPBLOCK.KEEP_PROB = 0.5
    head = build_model(cfg).head.train()
    relus = {m for m in head.modules() if isinstance(m, torch.nn.ReLU)}
    seen = []

    def record(module, args, out):
        if module in relus:
            seen.append(out.min().item())

    handles = ([torch.nn.modules.module.register_module_forward_hook(record)] if hook == "global"
               else [m.register_forward_hook(record) for m in relus])
    try:
        logits, deltas = head([torch.randn(1, 32, 8, 8), torch.randn(1, 32, 4, 4)])
    finally:
        for handle in handles:
            handle.remove()
    assert len(seen) == 4 and min(seen) >= 0  # 2 towers x 2 levels, after the ReLU
    names = backward_node_names(sum(t.sum() for t in logits + deltas))
    assert names.count("_MaskedScaleBackward") == 4 and "_ReluThenMaskedScaleBackward" not in names


def test_head_rejects_unknown_tower():
    with pytest.raises(ValueError, match="'box'"):
        DropBlockRetinaNetHead(
            input_shape=_input_shapes(), num_classes=3, num_anchors=9, conv_dims=[32],
            dropblock=torch.nn.Identity, dropblock_towers=["box"],
        )


def test_towers_without_convs_are_refused_naming_num_convs():
    # Stock RetinaNetHead fails on conv_dims[-1] with a bare IndexError.
    with pytest.raises(ValueError, match=r"conv_dims is empty \(MODEL\.RETINANET\.NUM_CONVS=0\)"):
        DropBlockRetinaNetHead(input_shape=_input_shapes(), num_classes=3, num_anchors=9, conv_dims=[])
    cfg = _plugin_cfg(head=True)
    cfg.MODEL.RETINANET.NUM_CONVS = 0
    with pytest.raises(ValueError, match=r"MODEL\.RETINANET\.NUM_CONVS=0: detectron2's RetinaNetHead"):
        build_model(cfg)


def test_anchor_sizes_for_another_number_of_levels_are_refused_naming_the_key():
    # detectron2's anchor generator asserted it, naming no key.
    cfg = _plugin_cfg()
    cfg.MODEL.ANCHOR_GENERATOR.SIZES = [[32], [64]]
    with pytest.raises(ValueError, match=r"^MODEL\.ANCHOR_GENERATOR\.SIZES=\[\[32\], \[64\]\]: 2 entries for the 5 "
                                         r"levels of MODEL\.RETINANET\.IN_FEATURES=\['p3', "):
        build_model(cfg)
    cfg.MODEL.ANCHOR_GENERATOR.SIZES = [[32]]  # one for every level
    build_model(cfg)


@pytest.mark.parametrize("prior_prob", [0.0, 1.0, 2.0, "0.01", None])
def test_a_prior_prob_outside_0_1_or_not_a_number_is_refused_naming_the_key(prior_prob):
    # The stock head's bias init, -log((1 - p) / p): a bare "math domain error" or
    # ZeroDivisionError; unchecked, 0 < '0.01' failed with a bare TypeError.
    with pytest.raises(ValueError, match=rf"^prior_prob={prior_prob!r}: expected a probability in \(0, 1\)"):
        DropBlockRetinaNetHead(input_shape=_input_shapes(), num_classes=3, num_anchors=9, conv_dims=[8],
                               prior_prob=prior_prob)
    cfg = _plugin_cfg(head=True)
    cfg.MODEL.RETINANET.PRIOR_PROB = prior_prob
    with pytest.raises(ValueError, match=rf"^MODEL\.RETINANET\.PRIOR_PROB={prior_prob!r}: expected a probability"):
        build_model(cfg)


@pytest.mark.parametrize("levels,match", [
    # Stock RetinaNet.from_config: a bare KeyError: 'p2' / the anchor generator's assertion.
    (["p2", "p3", "p4", "p5", "p6"], r"IN_FEATURES=\['p2', .*\]: 'p2' not among the backbone's outputs \['p3', "),
    ([], r"IN_FEATURES=\[\]: no level; expected names from the backbone's outputs \['p3', "),
])
def test_head_levels_the_backbone_does_not_give_are_refused_naming_the_key(levels, match):
    cfg = _plugin_cfg()
    cfg.MODEL.RETINANET.IN_FEATURES = levels
    with pytest.raises(ValueError, match=r"^MODEL\.RETINANET\." + match):
        build_model(cfg)


def test_gn_retinanet_with_dropblock_everywhere_trains_with_finite_losses():
    cfg = _plugin_cfg(resnet=True, fpn=True, head=True)
    model = build_model(cfg)
    losses = _train_steps(model)
    assert all(math.isfinite(v) for step in losses for v in step.values())
    assert set(losses[0]) == {"loss_cls", "loss_box_reg"}


def test_checkpoint_trained_with_dropblock_loads_strictly_into_stock_retinanet():
    # Stock v0.6 cannot build a GN head (see above), so the head here has no norm; GN is
    # still in the ResNet and the FPN. DropBlock is in ResNet, FPN (incl. P6/P7) and head.
    cfg = _plugin_cfg(head_norm="", resnet=True, fpn=True, head=True)
    cfg.MODEL.DROPBLOCK.RESNET.STAGES = ["res3", "res4", "res5"]
    torch.manual_seed(0)
    plugin = build_model(cfg)
    _train_steps(plugin)
    checkpoint = plugin.state_dict()

    stock = build_model(stock_retinanet_cfg(cfg))
    assert type(stock) is RetinaNet
    stock.load_state_dict(checkpoint, strict=True)
    assert list(stock.state_dict()) == list(checkpoint)

    plugin.eval(), stock.eval()
    # Score threshold 0 so that the comparison covers many detections, not an empty list.
    plugin.test_score_thresh = stock.test_score_thresh = 0.0
    images = detection_batch(with_instances=False)
    with torch.no_grad():
        ours, theirs = plugin(images), stock(images)
    for a, b in zip(ours, theirs):
        a, b = a["instances"], b["instances"]
        assert len(a) == len(b) > 0
        assert torch.equal(a.pred_boxes.tensor, b.pred_boxes.tensor)
        assert torch.equal(a.scores, b.scores)
        assert torch.equal(a.pred_classes, b.pred_classes)


def test_disabled_plugin_model_has_stock_module_tree_and_keys():
    cfg = _plugin_cfg(head_norm="")
    plugin = build_model(cfg)
    stock = build_model(stock_retinanet_cfg(cfg))
    assert [n for n, _ in plugin.named_modules()] == [n for n, _ in stock.named_modules()]
    assert list(plugin.state_dict()) == list(stock.state_dict())
    assert not any(isinstance(m, KeepProbRegularizer) for m in plugin.modules())


def test_dropblock_adds_no_parameters_and_no_buffers():
    off = build_model(_plugin_cfg())
    on = build_model(_plugin_cfg(resnet=True, fpn=True, head=True))
    assert list(on.state_dict()) == list(off.state_dict())
    assert [n for n, _ in on.named_parameters()] == [n for n, _ in off.named_parameters()]
    assert [n for n, _ in on.named_buffers()] == [n for n, _ in off.named_buffers()]


@pytest.mark.parametrize("norm", ["BN", "SyncBN", ""])
def test_heads_the_stock_head_builds_are_left_to_it(norm):
    # "BN": detectron2's per-level statistics (CycleBatchNormList), not one BatchNorm2d
    # shared by all levels; the keys must be the stock head's for strict loading.
    from detectron2.layers import CycleBatchNormList

    kwargs = dict(input_shape=_input_shapes(), num_classes=3, num_anchors=9, conv_dims=[32, 32], norm=norm)
    stock = RetinaNetHead(**kwargs)
    ours = DropBlockRetinaNetHead(**kwargs, dropblock=lambda: DropBlock2d(0.9, 3), dropblock_towers=["cls"])
    assert list(ours.state_dict()) == list(stock.state_dict())
    assert [type(m) for m in ours.cls_subnet] == [type(m) for m in stock.cls_subnet]
    assert any(isinstance(m, CycleBatchNormList) for m in ours.bbox_subnet) == (norm in ("BN", "SyncBN"))


@pytest.mark.parametrize("norm, refused", [("BN", True), ("SyncBN", True), ("GN", False), ("", False)])
def test_a_head_with_fewer_input_shapes_than_levels_is_refused_only_with_per_level_bn(norm, refused):
    # With BN each input_shape entry is one level's statistics: one entry for five levels
    # would share a single BN between them, silently (detectron2's head asserts instead).
    head = DropBlockRetinaNetHead(input_shape=_input_shapes()[:1], num_classes=3, num_anchors=9,
                                  conv_dims=[32], norm=norm).train()
    features = [torch.randn(2, 32, 8, 8)] * 5
    if refused:
        with pytest.raises(ValueError, match=r"^DropBlockRetinaNetHead\(input_shape=\.\.\.\): 1 ShapeSpec\(s\) "
                                             r"for the 5 levels \['features\[0\]', .*\* 5$"):
            head(features)
    else:
        logits, _ = head(features)
        assert len(logits) == 5
    DropBlockRetinaNetHead(input_shape=_input_shapes(), num_classes=3, num_anchors=9, conv_dims=[32],
                           norm=norm).train()(features)  # one per level: runs


def test_gn_head_towers_keep_retinanet_conv_init():
    # The rebuilt GN towers initialise their convs as RetinaNetHead does: N(0, 0.01), bias 0.
    torch.manual_seed(0)
    head = DropBlockRetinaNetHead(input_shape=_input_shapes(64), num_classes=3, num_anchors=9,
                                  conv_dims=[64, 64], norm="GN")
    convs = [m for tower in (head.cls_subnet, head.bbox_subnet) for m in tower if isinstance(m, torch.nn.Conv2d)]
    assert len(convs) == 4
    for conv in convs:
        assert abs(conv.weight.std().item() - 0.01) < 0.001 and abs(conv.weight.mean().item()) < 0.001
        assert torch.count_nonzero(conv.bias) == 0


def test_lazy_config_builds_the_head_with_a_regularizer_module():
    # detectron2's LazyConfig style: instantiate() gives `dropblock` as one DropBlock2d
    # module; the head places a copy after every conv of each tower.
    from detectron2.config import LazyCall as L, instantiate

    head = instantiate(L(DropBlockRetinaNetHead)(
        input_shape=_input_shapes(), num_classes=3, num_anchors=9, conv_dims=[32, 32], norm="GN",
        dropblock=L(DropBlock2d)(keep_prob=0.8, block_size=3), dropblock_towers=["cls", "bbox"],
    ))
    placed = [m for m in head.modules() if isinstance(m, KeepProbRegularizer)]
    assert len(placed) == 4 and len({id(m) for m in placed}) == 4
    assert all(m.target_keep_prob == 0.8 and m.block_size == 3 for m in placed)
    logits, _ = head.train()([torch.randn(2, 32, 8, 8)] * 5)
    assert len(logits) == 5 and logits[0].shape == (2, 27, 8, 8)


def test_towers_given_as_one_string_are_refused_and_a_lazy_list_config_is_taken():
    # "cls" is iterable: unchecked, its letters would be reported as unknown towers 'c', 'l'.
    from omegaconf import ListConfig

    kwargs = dict(input_shape=_input_shapes(), num_classes=3, num_anchors=9, conv_dims=[32],
                  dropblock=lambda: DropBlock2d(0.8, 3))
    with pytest.raises(ValueError, match=r"^DropBlockRetinaNetHead: dropblock_towers='cls': expected a list"):
        DropBlockRetinaNetHead(dropblock_towers="cls", **kwargs)
    with pytest.raises(ValueError, match=r"dropblock_towers=\['cls', 'box'\]: unknown name 'box'"):
        DropBlockRetinaNetHead(dropblock_towers=["cls", "box"], **kwargs)
    head = DropBlockRetinaNetHead(dropblock_towers=ListConfig(["bbox"]), **kwargs)
    assert len(head.bbox_dropblocks) == 1 and head.cls_dropblocks is None


@pytest.mark.parametrize("head_norm, dropblock_on", [("", False), ("BN", True)])
def test_from_one_seed_the_model_is_stock_retinanets_with_its_weights_draws_and_eval_outputs(head_norm, dropblock_on):
    # The regularizers draw nothing when built and are the identity in eval mode; the stock
    # RetinaNet.from_config the model calls for anchors and losses builds a backbone and head
    # of its own, whose draws must not reach the model or the random state after it.
    cfg = _plugin_cfg(head_norm=head_norm, resnet=dropblock_on, fpn=dropblock_on, head=dropblock_on)
    cfg.MODEL.RETINANET.NUM_CONVS = 2
    torch.manual_seed(3)
    plugin = build_model(cfg)
    plugin_rng = torch.get_rng_state()
    torch.manual_seed(3)
    stock = build_model(stock_retinanet_cfg(cfg))
    assert torch.equal(torch.get_rng_state(), plugin_rng)
    ours, theirs = plugin.state_dict(), stock.state_dict()
    assert list(ours) == list(theirs) and all(torch.equal(ours[k], theirs[k]) for k in ours)
    plugin.eval(), stock.eval()
    plugin.test_score_thresh = stock.test_score_thresh = 0.0
    images = detection_batch(num_images=1, with_instances=False)
    with torch.no_grad():
        a, b = plugin(images)[0]["instances"], stock(images)[0]["instances"]
    assert len(a) == len(b) > 0
    assert torch.equal(a.pred_boxes.tensor, b.pred_boxes.tensor) and torch.equal(a.scores, b.scores)


def test_a_gn_head_builds_each_conv_and_norm_for_its_own_channels_with_towers_of_their_own():
    # conv_dims may differ from the input's channels and from one conv to the next (a
    # LazyConfig's head): the rebuilt GN towers take the stock head's conv shapes.
    kwargs = dict(input_shape=_input_shapes(channels=16, levels=2), num_classes=3, num_anchors=9,
                  conv_dims=[64, 32])
    head = DropBlockRetinaNetHead(norm="GN", **kwargs)
    stock = RetinaNetHead(norm="", **kwargs)
    for tower in ("cls_subnet", "bbox_subnet"):
        convs = [tuple(m.weight.shape) for m in getattr(head, tower) if isinstance(m, torch.nn.Conv2d)]
        assert convs == [tuple(m.weight.shape) for m in getattr(stock, tower) if isinstance(m, torch.nn.Conv2d)]
        assert [m.num_channels for m in getattr(head, tower) if isinstance(m, torch.nn.GroupNorm)] == [64, 32]
    # Two towers with their own weights: no parameter shared between them.
    assert len(list(head.parameters())) == len(head.state_dict())
    logits, deltas = head([torch.randn(1, 16, 8, 8), torch.randn(1, 16, 4, 4)])
    assert [tuple(t.shape) for t in logits + deltas] == [(1, 27, 8, 8), (1, 27, 4, 4), (1, 36, 8, 8), (1, 36, 4, 4)]


def test_a_head_built_from_a_config_alone_names_the_dropblock_key_it_refuses():
    # DropBlockRetinaNetHead(cfg, shapes) in a model of the user's own: without the meta
    # architecture's checks, a bad value would be refused naming no MODEL.DROPBLOCK key.
    for key, value, match in [("TYPE", "Nope", r"^MODEL\.DROPBLOCK\.TYPE='Nope': expected one of"),
                              ("KEEP_PROB", 1.5, r"^MODEL\.DROPBLOCK\.KEEP_PROB=1\.5: ")]:
        cfg = _plugin_cfg(head=True)
        cfg.MODEL.DROPBLOCK[key] = value
        with pytest.raises(ValueError, match=match):
            DropBlockRetinaNetHead(cfg, _input_shapes())


def test_a_bn_head_on_some_of_the_levels_keeps_statistics_for_those_levels_alone():
    # The head is built for the levels MODEL.RETINANET.IN_FEATURES names, not every backbone
    # output: with per-level BN one set of statistics per level it runs on, as the stock head.
    cfg = _plugin_cfg(head_norm="BN")
    cfg.MODEL.RETINANET.IN_FEATURES = ["p3", "p4", "p5"]
    cfg.MODEL.ANCHOR_GENERATOR.SIZES = [[32], [64], [128]]
    plugin = build_model(cfg)
    stock = build_model(stock_retinanet_cfg(cfg))
    assert list(plugin.state_dict()) == list(stock.state_dict())
    losses = _train_steps(plugin, steps=1)
    assert all(math.isfinite(v) for v in losses[0].values())


class _Zero(torch.nn.Module):
    """A marker regularizer that zeroes what it gets: the tower it sits in then feeds its
    predictor zeros, whose output is the predictor's bias alone."""

    def forward(self, x):
        return x * 0


@pytest.mark.parametrize("tower", ["cls", "bbox"])
def test_each_towers_regularizers_act_on_that_tower_alone(tower):
    # dropblock_towers=["cls"] must regularize the classification tower, not the box tower.
    kwargs = dict(input_shape=_input_shapes(levels=2), num_classes=3, num_anchors=9, conv_dims=[32, 32], norm="GN")
    torch.manual_seed(0)
    plain = DropBlockRetinaNetHead(**kwargs)
    ours = DropBlockRetinaNetHead(**kwargs, dropblock=_Zero, dropblock_towers=[tower])
    ours.load_state_dict(plain.state_dict())
    features = [torch.randn(1, 32, 8, 8), torch.randn(1, 32, 4, 4)]
    with torch.no_grad():
        (our_logits, our_deltas), (logits, deltas) = ours(features), plain(features)
    zeroed, kept, plain_kept = ((our_logits, our_deltas, deltas) if tower == "cls" else
                                (our_deltas, our_logits, logits))
    bias = (ours.cls_score if tower == "cls" else ours.bbox_pred).bias.view(1, -1, 1, 1)
    assert all(torch.allclose(t, bias.expand_as(t)) for t in zeroed)
    assert all(torch.equal(a, b) for a, b in zip(kept, plain_kept))


def test_prior_prob_sets_the_classification_bias_as_in_the_stock_head():
    # RetinaNetHead's focal-loss init: cls_score.bias = -log((1 - p) / p), from
    # MODEL.RETINANET.PRIOR_PROB or the prior_prob argument, whichever norm the towers have.
    expected = -math.log((1 - 0.2) / 0.2)
    cfg = _plugin_cfg(head=True)
    cfg.MODEL.RETINANET.PRIOR_PROB = 0.2
    bias = build_model(cfg).head.cls_score.bias
    assert torch.allclose(bias, torch.full_like(bias, expected))
    for norm in ("GN", ""):
        head = DropBlockRetinaNetHead(input_shape=_input_shapes(), num_classes=3, num_anchors=9, conv_dims=[32],
                                      norm=norm, prior_prob=0.2)
        assert torch.allclose(head.cls_score.bias, torch.full_like(head.cls_score.bias, expected))


@pytest.mark.parametrize("training", [True, False])
def test_a_bn_head_run_on_fewer_levels_than_its_input_shapes_is_refused(training):
    # Per-level BN for five levels run on three: the stock head asserts; cycling its five
    # BNs over three levels would put each level's statistics out of step across calls,
    # in training and in evaluation (each level's running statistics) alike.
    head = DropBlockRetinaNetHead(input_shape=_input_shapes(), num_classes=3, num_anchors=9, conv_dims=[32],
                                  norm="BN").train(training)
    with pytest.raises(ValueError, match=r"^DropBlockRetinaNetHead\(input_shape=\.\.\.\): 5 ShapeSpec\(s\) "
                                         r"for the 3 levels \['features\[0\]', 'features\[1\]', 'features\[2\]'\]"):
        head([torch.randn(2, 32, 8, 8)] * 3)


def test_a_frozen_config_builds_the_model_and_is_left_as_it_was():
    # DefaultTrainer and the tools freeze the config before build_model; the stock
    # RetinaNet.from_config gets a copy with NORM "" (v0.6 cannot build a GN head), never
    # the user's config.
    cfg = _plugin_cfg(head=True)
    cfg.freeze()
    before = cfg.dump()
    model = build_model(cfg)
    assert cfg.is_frozen() and cfg.dump() == before
    assert [type(m).__name__ for m in model.head.cls_subnet][:2] == ["Conv2d", "GroupNorm"]
