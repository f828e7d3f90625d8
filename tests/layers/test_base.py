"""KeepProbRegularizer (and its relu / residual arguments), build_regularizer,
relu_then_regularize, regularize_add_relu and masked_scale."""
import re

import pytest
import torch
from dropblock_checks import saved_for_backward

from dropblock_det.layers import (
    REGULARIZER_TYPES,
    DropBlock2d,
    DropPath,
    Dropout,
    KeepProbRegularizer,
    LinearKeepProbSchedule,
    SpatialDropout,
    build_regularizer,
    masked_scale,
    regularize_add_relu,
    relu_then_regularize,
    set_keep_prob,
)


def test_build_regularizer_swaps_types_under_one_interface():
    built = {name: build_regularizer(name, 0.85, block_size=5) for name in REGULARIZER_TYPES}
    assert isinstance(built["DropBlock"], DropBlock2d)
    assert isinstance(built["Dropout"], Dropout)
    assert isinstance(built["SpatialDropout"], SpatialDropout)
    for module in built.values():
        assert isinstance(module, KeepProbRegularizer)
        assert module.keep_prob == module.target_keep_prob == 0.85
    assert built["DropBlock"].block_size == 5


def test_build_regularizer_passes_dropblock_options_through():
    module = build_regularizer(
        "DropBlock", 0.9, block_size=4, shared_mask=True, gamma_mode="calibrated", impl="torch"
    )
    options = (module.block_size, module.shared_mask, module.gamma_mode, module.impl)
    assert options == (4, True, "calibrated", "torch")


def test_unknown_regularizer_type_is_named_with_the_choices():
    with pytest.raises(ValueError, match=r"^type must be one of \('DropBlock', 'Dropout', 'SpatialDropout'\), "
                                         r"got 'DropConnect'$"):
        build_regularizer("DropConnect", 0.9)


def test_build_regularizer_rejects_unknown_arguments_and_bad_keep_prob():
    with pytest.raises(ValueError, match="warm_iters"):
        build_regularizer("DropBlock", 0.9, warm_iters=10)
    with pytest.raises(ValueError, match="keep_prob.*0.0"):
        build_regularizer("Dropout", 0.0)


@pytest.mark.parametrize("type", ["Dropout", "SpatialDropout"])
@pytest.mark.parametrize(
    "name, value",
    [("block_size", 0), ("block_size", 2.5), ("shared_mask", "yes"), ("gamma_mode", "exact"), ("impl", "cuda")],
)
def test_build_regularizer_refuses_bad_dropblock_options_for_every_type(type, name, value):
    # Dropout ignores them, but a bad value is still bad: it must not surface only when a
    # config switches the type to DropBlock.
    with pytest.raises(ValueError, match=rf"{name}.*{value!r}"):
        build_regularizer(type, 0.9, **{name: value})


def test_keep_prob_is_separate_from_target_and_validated_on_assignment():
    module = build_regularizer("DropBlock", 0.9)
    module.keep_prob = 0.95
    assert module.target_keep_prob == 0.9
    for bad in (0.0, 1.5, float("nan"), "0.5", True):
        with pytest.raises(ValueError, match="keep_prob"):
            module.keep_prob = bad
    assert module.keep_prob == 0.95
    # The target is assigned too (a stage's scaled keep_prob) and checked under its own name.
    module.target_keep_prob = 0.8
    for bad in (0.0, 1.5, float("nan"), "0.5", True):
        with pytest.raises(ValueError, match=r"^target_keep_prob must be"):
            module.target_keep_prob = bad
    assert (module.target_keep_prob, module.keep_prob) == (0.8, 0.95)


def test_base_class_forward_needs_a_subclass_implementation():
    module = KeepProbRegularizer(0.5)
    with pytest.raises(NotImplementedError):
        module(torch.ones(1))
    assert module.eval()(torch.ones(1)).item() == 1.0


@pytest.mark.parametrize("type", ["DropBlock", "Dropout", "SpatialDropout"])
def test_relu_flag_regularizes_relu_of_the_input(type):
    regularizer = build_regularizer(type, 0.7, block_size=3, impl="torch").train()
    x = torch.randn(2, 4, 9, 9)
    torch.manual_seed(0)
    fused = regularizer(x.clone(), relu=True)
    torch.manual_seed(0)
    assert torch.equal(fused, regularizer(torch.relu(x)))
    assert (fused < 0).sum() == 0 and (fused == 0).sum() > (torch.relu(x) == 0).sum()
    regularizer.eval()  # off: just the ReLU, and x is not modified
    before = x.clone()
    assert torch.equal(regularizer(x, relu=True), torch.relu(x)) and torch.equal(x, before)


@pytest.mark.parametrize("type", ["DropBlock", "Dropout", "SpatialDropout"])
@pytest.mark.parametrize("training", [True, False])
def test_relu_flag_that_is_not_a_bool_is_refused_naming_it(type, training):
    regularizer = build_regularizer(type, 0.7, block_size=3, impl="torch").train(training)
    for relu in ("no", 1, None):
        with pytest.raises(ValueError, match=f"relu must be True or False, got {relu!r}"):
            regularizer(torch.randn(2, 4, 9, 9), relu=relu)


def test_relu_then_regularize_gives_any_module_the_relu_of_its_input():
    x = torch.randn(2, 3, 5, 5)
    expected = torch.relu(x)
    assert torch.equal(relu_then_regularize(torch.nn.Identity(), x.clone()), expected)
    inplace = x.clone()
    assert torch.equal(relu_then_regularize(torch.nn.Identity(), inplace, inplace=True), expected)
    assert torch.equal(inplace, expected)  # detectron2's blocks apply their ReLU in place
    regularizer = build_regularizer("Dropout", 0.5).train()
    torch.manual_seed(1)
    out = relu_then_regularize(regularizer, x)
    torch.manual_seed(1)
    assert torch.equal(out, regularizer(expected))


@pytest.mark.parametrize("name", REGULARIZER_TYPES)
def test_an_inactive_regularizer_keeps_the_blocks_relu_in_place(name):
    # Eval mode (inference) or keep_prob 1: the stock block's in-place ReLU, not a copy of
    # every conv1 / conv2 activation; an active one regularizes relu(x) as before.
    x = torch.randn(2, 3, 7, 7)
    for regularizer in (build_regularizer(name, 0.5, block_size=3).eval(), build_regularizer(name, 1.0).train()):
        calls = []
        regularizer.register_forward_hook(lambda module, inputs, output: calls.append(1))
        inplace = x.clone()
        out = relu_then_regularize(regularizer, inplace, inplace=True)
        assert out.data_ptr() == inplace.data_ptr() and torch.equal(out, torch.relu(x))
        assert calls == [1]  # still called as a module: its hooks run
        copied = x.clone()
        out = relu_then_regularize(regularizer, copied)
        assert out.data_ptr() != copied.data_ptr() and torch.equal(copied, x) and torch.equal(out, torch.relu(x))
    active = build_regularizer(name, 0.5, block_size=3).train()
    torch.manual_seed(2)
    out = relu_then_regularize(active, x.clone(), inplace=True)
    torch.manual_seed(2)
    assert torch.equal(out, active(torch.relu(x))) and not torch.equal(out, torch.relu(x))
    # Active, inplace=True still hands it x with relu=True: it keeps only its output for
    # backward, not also the in-place ReLU's (one activation more per block).
    branch = x.clone().requires_grad_(True) * 1.0
    out, saved = saved_for_backward(lambda: relu_then_regularize(active, branch, inplace=True))
    assert len(saved) == 1 and saved[0].untyped_storage().data_ptr() == out.untyped_storage().data_ptr()


@pytest.mark.parametrize("type", ["DropBlock", "Dropout", "SpatialDropout"])
def test_residual_gives_relu_of_residual_plus_regularized_input(type):
    regularizer = build_regularizer(type, 0.7, block_size=3, impl="torch").train()
    x, residual = torch.randn(2, 4, 9, 9), torch.randn(2, 4, 9, 9)
    torch.manual_seed(0)
    out = regularizer(x, residual=residual)
    torch.manual_seed(0)
    assert torch.equal(out, torch.relu(residual + regularizer(x)))
    assert not torch.equal(out, torch.relu(residual + x))  # something was dropped
    regularizer.eval()
    assert torch.equal(regularizer(x, residual=residual), torch.relu(residual + x))
    with pytest.raises(ValueError, match="relu=True and residual"):
        regularizer(x, relu=True, residual=residual)


def test_regularize_add_relu_works_for_any_module():
    x, residual = torch.randn(2, 3, 5, 5), torch.randn(2, 3, 5, 5)
    assert torch.equal(regularize_add_relu(torch.nn.Identity(), x, residual), torch.relu(residual + x))
    regularizer = build_regularizer("Dropout", 0.5).train()
    torch.manual_seed(1)
    out = regularize_add_relu(regularizer, x, residual)
    torch.manual_seed(1)
    assert torch.equal(out, torch.relu(residual + regularizer(x)))


def _side(kind):
    """A regularizer for one side of a residual sum: None, an active or inactive DropBlock,
    a Dropout, or a plain module."""
    if kind is None:
        return None
    if kind == "Identity":
        return torch.nn.Identity()
    if kind == "DropBlock off":
        return DropBlock2d(0.8, 3, impl="torch").eval()
    return build_regularizer(kind, 0.7, block_size=3, impl="torch").train()


@pytest.mark.parametrize(
    "on_x, on_residual",
    [("DropBlock", "DropBlock"), ("DropBlock", "Dropout"), ("Dropout", "DropBlock"), (None, "DropBlock"),
     ("DropBlock off", "DropBlock"), ("DropBlock", "DropBlock off"), ("Identity", "DropBlock"),
     ("DropBlock", "Identity"), ("DropBlock", None), (None, None)],
)
def test_regularize_add_relu_regularizes_both_sides_residual_first(on_x, on_residual):
    # The result (and the RNG draws, residual first) are those of the separate ops whichever
    # side is regularized, whatever the pairing hands to which module.
    x, residual = torch.randn(2, 4, 9, 9), torch.randn(2, 4, 9, 9)
    regularizer, residual_regularizer = _side(on_x), _side(on_residual)
    calls = []
    hooks = [module.register_forward_hook(lambda module, inputs, output, side=side: calls.append(side))
             for side, module in (("x", regularizer), ("residual", residual_regularizer)) if module is not None]
    torch.manual_seed(0)
    out = regularize_add_relu(regularizer, x, residual, residual_regularizer)
    # Every regularizer is called as a module, an inactive one too (on the PyTorch path a
    # fused pair runs the modules in turn), so its hooks run.
    assert sorted(calls) == sorted(side for side, on in (("x", on_x), ("residual", on_residual)) if on)
    for hook in hooks:
        hook.remove()
    torch.manual_seed(0)
    expected_residual = residual if residual_regularizer is None else residual_regularizer(residual)
    expected = torch.relu(expected_residual + (x if regularizer is None else regularizer(x)))
    assert torch.equal(out, expected)
    if {on_x, on_residual} & {"DropBlock", "Dropout"}:
        assert not torch.equal(out, torch.relu(residual + x))  # something was dropped


def test_residual_regularizer_needs_a_residual():
    with pytest.raises(ValueError, match="residual_regularizer needs a residual"):
        DropBlock2d(0.9, 3).train()(torch.randn(1, 2, 5, 5), residual_regularizer=Dropout(0.9))


def test_masked_scale_gradient_and_dtype():
    x = torch.randn(3, 5, dtype=torch.float16, requires_grad=True)
    keep = torch.tensor([True, False, True, True, False]).expand(3, 5)
    out = masked_scale(x, keep, 2.5)
    assert out.dtype == torch.float16
    expected = (x.detach().float() * keep * 2.5).half()
    assert torch.equal(out, expected)
    out.backward(torch.ones_like(out))
    assert torch.equal(x.grad, (keep * 2.5).half())


def test_masked_scale_rejects_a_float_mask():
    with pytest.raises(ValueError, match="bool"):
        masked_scale(torch.ones(2), torch.ones(2), 1.0)


def test_layers_package_does_not_import_detectron2():
    # The layers are plain PyTorch so they can be used (and tested) outside detectron2.
    from pathlib import Path

    import dropblock_det.layers as layers

    for source in Path(layers.__file__).parent.glob("*.py"):
        text = source.read_text()
        assert "import detectron2" not in text and "from detectron2" not in text, source.name


@pytest.mark.parametrize("residual_type", ["Dropout", "DropBlock"])
def test_an_inactive_regularizer_still_runs_an_active_residual_regularizer(residual_type):
    # Called as a module (not through regularize_add_relu), an inactive regularizer given
    # an active residual_regularizer must still give relu(m(r) + x), not relu(r + x).
    x, residual = torch.randn(2, 4, 9, 9), torch.randn(2, 4, 9, 9)
    other = build_regularizer(residual_type, 0.5, block_size=3, impl="torch").train()
    for inactive in (DropBlock2d(0.8, 3, impl="torch").eval(), DropBlock2d(1.0, 3, impl="torch").train()):
        torch.manual_seed(0)
        out = inactive(x, residual=residual, residual_regularizer=other)
        torch.manual_seed(0)
        assert torch.equal(out, torch.relu(other(residual) + x))
        assert not torch.equal(out, torch.relu(residual + x))  # the residual was regularized


def test_relu_then_regularize_leaves_its_input_alone_unless_inplace():
    # inplace=False (the default) must not ReLU the caller's tensor in place: it may be
    # used again (a shortcut, a hook, a second head).
    x = torch.randn(2, 3, 5, 5)
    before = x.clone()
    for module in (torch.nn.Identity(), build_regularizer("Dropout", 0.5).eval()):
        assert torch.equal(relu_then_regularize(module, x), torch.relu(before))
        assert torch.equal(x, before)


def test_as_regularizer_factory_copies_a_module_and_passes_factories_through():
    # LazyConfig's instantiate turns `dropblock=L(DropBlock2d)(...)` into a module: it must
    # give one copy per location, not be called (which would run its forward).
    from dropblock_det.layers import as_regularizer_factory

    module = DropBlock2d(0.8, 3)
    factory = as_regularizer_factory(module)
    first, second = factory(), factory()
    assert first is not module and second is not first
    assert (first.target_keep_prob, first.block_size) == (0.8, 3)
    assert as_regularizer_factory(DropBlock2d) is DropBlock2d
    assert as_regularizer_factory(None) is None
    with pytest.raises(ValueError, match=r"branch_regularizer=0\.9: expected a function"):
        as_regularizer_factory(0.9, "branch_regularizer")


@pytest.mark.parametrize(
    "module, bad_input, named",
    [
        (DropBlock2d(0.9, 3), torch.ones(2, 8, 8), r"4-D.*\(2, 8, 8\)"),
        (DropBlock2d(0.9, 3), torch.ones(1, 1, 8, 8, dtype=torch.long), "torch.int64"),
        (SpatialDropout(0.9), torch.ones(4, 8), r"at least 3 dims.*\(4, 8\)"),
        (DropPath(0.9), torch.tensor(1.0), r"at least 1 dims.*\(\)"),
        (Dropout(0.9), [1.0, 2.0], "list"),
    ],
)
def test_an_inactive_regularizer_refuses_what_the_active_one_would(module, bad_input, named):
    # A wrong input must fail at the first forward, in evaluation and while the schedule
    # still holds keep_prob at 1.0, not at the first iteration where keep_prob drops below
    # 1 (as drop_block_2d(..., training=False) already refuses it).
    for inactive in (module.eval(), _at_keep_prob_one(module.train())):
        with pytest.raises(ValueError, match=named):
            inactive(bad_input)
        if torch.is_tensor(bad_input):  # as a block calls it after conv+norm+ReLU
            with pytest.raises(ValueError, match=named):
                relu_then_regularize(inactive, bad_input.clone(), inplace=True)
    module.keep_prob = 0.9
    with pytest.raises(ValueError, match=named):
        module.train()(bad_input)


def _at_keep_prob_one(module: KeepProbRegularizer) -> KeepProbRegularizer:
    module.keep_prob = 1.0
    return module


class _BlockWithRegularizers(torch.nn.Module):
    """conv + ReLU + regularizer, then conv + regularizer + residual + ReLU: both fused
    call forms a model uses (relu_then_regularize, regularize_add_relu)."""

    def __init__(self, make_regularizer):
        super().__init__()
        self.conv1 = torch.nn.Conv2d(3, 8, 3, padding=1)
        self.conv2 = torch.nn.Conv2d(8, 8, 3, padding=1)
        self.regularizer1, self.regularizer2 = make_regularizer(), make_regularizer()

    def forward(self, x):
        y = relu_then_regularize(self.regularizer1, self.conv1(x))
        return regularize_add_relu(self.regularizer2, self.conv2(y), y)


_MAKERS = {
    "DropBlock": lambda: DropBlock2d(1.0, 3, impl="torch"),
    "Dropout": lambda: Dropout(1.0),
    "SpatialDropout": lambda: SpatialDropout(1.0),
    "DropPath": lambda: DropPath(1.0),
}


@pytest.mark.parametrize("name", sorted(_MAKERS))
def test_torch_compile_follows_a_ramped_keep_prob_without_compiling_again(name):
    # The schedule changes keep_prob every iteration. A float read in traced code is
    # specialised by Dynamo: each value compiled the model again, until the recompile limit
    # (8) left the model running uncompiled. The regularizers run eagerly instead.
    from torch._dynamo.testing import CompileCounterWithBackend

    torch._dynamo.reset()
    net = _BlockWithRegularizers(_MAKERS[name]).train()
    counter = CompileCounterWithBackend("aot_eager")
    compiled = torch.compile(net, backend=counter)
    x = torch.randn(2, 3, 12, 12)
    frames = []
    for step, keep_prob in enumerate([1.0, 0.95, 0.9, 0.85, 0.8, 0.75, 0.7, 0.65, 0.6, 0.55, 0.5]):
        for module in (net.regularizer1, net.regularizer2):
            module.keep_prob = keep_prob
        torch.manual_seed(step)
        out = compiled(x)
        out.sum().backward()
        torch.manual_seed(step)
        assert torch.equal(out, net(x)), f"step {step}: the compiled net does not draw the eager net's masks"
        frames.append(counter.frame_count)
    assert frames[0] >= 1 and frames[-1] == frames[1], f"compiled again as keep_prob ramped: {frames}"
    net.eval()
    assert not torch.equal(out, net(x))  # the regularizers were active at keep_prob 0.5


@pytest.mark.parametrize("name", sorted(_MAKERS))
def test_torch_compile_traces_eval_mode_regularizers_in_one_graph(name):
    torch._dynamo.reset()
    net = _BlockWithRegularizers(_MAKERS[name]).eval()
    for module in (net.regularizer1, net.regularizer2):
        module.keep_prob = 0.5
    x = torch.randn(2, 3, 12, 12)
    assert torch.equal(torch.compile(net, backend="aot_eager", fullgraph=True)(x), net(x))


@pytest.mark.parametrize("name", sorted(REGULARIZER_TYPES) + ["DropPath"])
@pytest.mark.parametrize("keep_prob", [1.0, 0.8])
def test_a_training_mode_trace_or_export_is_refused_by_name_and_eval_mode_records_the_identity(name, keep_prob):
    # The record would keep this keep_prob (at a ramp's start, 1: the identity) whatever the
    # schedule sets later; DropBlock's random number of blocks made torch.export fail deep in
    # its sampler with a data-dependent guard error instead of a message.
    module = (DropPath(keep_prob) if name == "DropPath" else build_regularizer(name, keep_prob, block_size=3)).train()
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 3, 1), module)
    x = torch.randn(2, 3, 9, 9)
    named = rf"{type(module).__name__} cannot be traced or exported in training mode.*model\.eval\(\)"
    with pytest.raises(RuntimeError, match=named):
        torch.jit.trace(net, (x,), check_trace=False)
    if hasattr(torch, "export"):
        with pytest.raises(Exception, match=named):
            torch.export.export(net, (x,))
    net.eval()
    traced = torch.jit.trace(net, (x,), check_trace=False)
    assert torch.equal(traced(x), net[0](x))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16, torch.float64])
@pytest.mark.parametrize("scale", [1.25, torch.finfo(torch.float32).max])
def test_relu_then_masked_scale_is_masked_scale_of_relu_bit_for_bit(dtype, scale):
    # The largest scale is what Dropout uses at a tiny keep_prob (1 / keep_prob capped at
    # fp32's largest): every kept positive unit overflows, and must still pass its gradient.
    from dropblock_det.layers.base import relu_then_masked_scale

    x = torch.randn(3, 4, 6, 6).to(dtype)
    flat = x.view(-1)
    flat[::7], flat[3::11], flat[5::13], flat[2::17], flat[4::19] = float("nan"), -0.0, 1e-30, float("inf"), 0.0
    keep = torch.rand(x.shape) < 0.6
    grad = torch.randn(x.shape).to(dtype)
    results = []
    for fused in (True, False):
        leaf = x.clone().requires_grad_(True)
        if fused:
            out = relu_then_masked_scale(leaf, lambda t: (masked_scale(t, keep, scale), scale))
        else:
            out = masked_scale(torch.relu(leaf), keep, scale)
        out.backward(grad)
        results.append((out.detach(), leaf.grad))
    (out, out_grad), (reference, reference_grad) = results
    torch.testing.assert_close(out, reference, rtol=0, atol=0, equal_nan=True)
    torch.testing.assert_close(out_grad, reference_grad, rtol=0, atol=0, equal_nan=True)
    assert torch.equal(torch.signbit(out_grad), torch.signbit(reference_grad))
    assert (out_grad != 0).any() and (out_grad == 0).any()


# --- a training with no keep_prob ramp is said once (stop 52) --------------------------------


@pytest.mark.parametrize("name", ["DropBlock", "Dropout", "SpatialDropout"])
def test_a_regularizer_trained_at_its_target_with_nothing_setting_keep_prob_warns_once(name, unscheduled_warnings):
    # detectron2's own lazyconfig_train_net.py runs no train.dropblock_schedule: the model
    # trained at keep_prob 0.9 from its first step, the paper's ramp silently gone.
    x = torch.randn(2, 4, 8, 8)
    first, second = (build_regularizer(name, 0.9, block_size=3).train() for _ in range(2))
    first(x)
    first(x, relu=True)
    second(x, residual=torch.randn_like(x))
    (message,) = unscheduled_warnings()
    assert message.startswith(f"{type(first).__name__} trains at keep_prob 0.9 from its first step: nothing has "
                              "set its keep_prob since the model was built, so there is no keep_prob ramp")
    assert "register dropblock_det.engine.DropBlockScheduleHook" in message
    assert "LinearKeepProbSchedule(0, 0).apply(model, 0)" in message


def test_the_residual_path_warns_too(unscheduled_warnings):
    DropBlock2d(0.9, 3).train()(torch.randn(2, 4, 8, 8), residual=torch.randn(2, 4, 8, 8))
    assert len(unscheduled_warnings()) == 1


@pytest.mark.parametrize("set_keep_prob", [
    lambda m: LinearKeepProbSchedule(0, 10).apply(m, 5),  # the hook's ramp
    lambda m: LinearKeepProbSchedule(0, 0).apply(m, 0),  # the targets throughout, as the message says
    lambda m: set_keep_prob(m, 0.8),
    lambda m: setattr(m[0], "keep_prob", 0.9),
], ids=["ramp", "targets", "set_keep_prob", "assigned"])
def test_a_regularizer_whose_keep_prob_was_set_does_not_warn(set_keep_prob, unscheduled_warnings):
    module = torch.nn.Sequential(DropBlock2d(0.9, 3)).train()
    set_keep_prob(module)
    module(torch.randn(2, 4, 8, 8))
    assert unscheduled_warnings() == []


def test_eval_mode_keep_prob_one_and_a_copy_of_a_set_module_do_not_warn(unscheduled_warnings):
    import copy

    x = torch.randn(2, 4, 8, 8)
    DropBlock2d(0.9, 3).eval()(x)
    DropBlock2d(1.0, 3).train()(x)
    scheduled = DropBlock2d(0.9, 3)
    LinearKeepProbSchedule(0, 0).apply(scheduled, 0)
    copy.deepcopy(scheduled).train()(x)
    assert unscheduled_warnings() == []
    copy.deepcopy(DropBlock2d(0.9, 3)).train()(x)  # a template copied per location, never set
    assert len(unscheduled_warnings()) == 1


def test_set_target_is_the_model_as_built_not_a_schedule(unscheduled_warnings):
    # A ResNet stage's scaled target is set at build time: it must still warn when nothing
    # ramps it, where setting keep_prob and target by assignment counted as a schedule.
    module = DropBlock2d(0.9, 3)
    module.set_target(0.975)
    assert module.keep_prob == module.target_keep_prob == 0.975
    module.train()(torch.randn(2, 4, 8, 8))
    assert unscheduled_warnings()[0].startswith("DropBlock2d trains at keep_prob 0.975 from its first step")


# --- mutation run 52: behaviour the tests above left unpinned ---


def test_a_module_saved_before_keep_prob_was_tracked_does_not_warn(unscheduled_warnings):
    # Unpickled whole from before the flag existed: no instance attribute, and it was not
    # built in this process, so nothing says that no ramp runs.
    module = DropBlock2d(0.9, 3)
    del module._keep_prob_set
    module.train()(torch.randn(2, 4, 8, 8))
    assert unscheduled_warnings() == []


def test_the_warning_names_the_keep_prob_trained_at_not_a_target_assigned_alone(unscheduled_warnings):
    module = DropBlock2d(0.9, 3)
    module.target_keep_prob = 0.5  # a ramp's end that nothing applied: it trains at 0.9
    module.train()(torch.randn(2, 4, 8, 8))
    assert unscheduled_warnings()[0].startswith("DropBlock2d trains at keep_prob 0.9 from its first step")


def test_a_keep_prob_out_of_range_is_named_as_the_argument_the_user_passed():
    with pytest.raises(ValueError, match=r"^keep_prob must be in \(0, 1\], got 1\.5$"):
        DropBlock2d(1.5, 3)


# Regularizer-comparison journey (stop 53)
@pytest.mark.parametrize("regularizer", ["Dropout", "SpatialDropout"])
def test_dropblocks_own_arguments_set_for_another_type_warn_naming_them(regularizer):
    # MODEL.DROPBLOCK.SHARED_MASK / GAMMA / IMPL triton (dropblock.shared_mask, ...) asked for
    # with TYPE Dropout were ignored without a word: the run trained plain Dropout.
    import warnings

    from dropblock_det.layers import build_regularizer

    with pytest.warns(UserWarning, match=rf"^{regularizer} ignores DropBlock's shared_mask=True "
                                         r"\(MODEL\.DROPBLOCK\.SHARED_MASK\), gamma_mode='calibrated' "
                                         r"\(MODEL\.DROPBLOCK\.GAMMA\), impl='triton' \(MODEL\.DROPBLOCK\.IMPL\)"):
        module = build_regularizer(regularizer, 0.9, shared_mask=True, gamma_mode="calibrated", impl="triton")
    assert type(module).__name__ == regularizer
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the defaults, any block_size (a DropBlock config's) and the
        build_regularizer(regularizer, 0.9, block_size=3)  # PyTorch path, which these are, say nothing
        build_regularizer(regularizer, 0.9, block_size=3, impl="torch")


# --- API bad-input 54 ---


@pytest.mark.skipif(not hasattr(torch, "float8_e4m3fn"), reason="this torch has no fp8 dtypes")
@pytest.mark.parametrize("training", [True, False], ids=["train", "eval"])
@pytest.mark.parametrize("make", [Dropout, SpatialDropout, DropPath], ids=lambda m: m.__name__)
def test_a_relu_or_residual_of_an_fp8_input_is_refused_naming_the_dtype(make, training):
    # Dropout and its kin take fp8 inputs, but torch has no ReLU nor sum for them: these
    # failed inside torch with NotImplementedError "clamp_min_scalar_cpu" / "add_stub".
    module = make(0.5).train(training)
    module.keep_prob = 0.5
    x = torch.randn(1, 2, 4, 4).to(torch.float8_e4m3fn)
    dtype = re.escape(str(x.dtype))
    with pytest.raises(ValueError, match=rf"^{make.__name__}: relu=True needs x of a dtype .* got dtype {dtype}$"):
        module(x, relu=True)
    with pytest.raises(ValueError, match=rf"^{make.__name__}: residual needs x of a dtype .* got dtype {dtype}$"):
        module(x, residual=x)
    with pytest.raises(ValueError, match=rf"^{make.__name__}: relu=True needs x .* got dtype {dtype}$"):
        relu_then_regularize(module, x.clone(), inplace=True)
    assert module(x).shape == x.shape  # without a ReLU, fp8 is still taken
