"""The common base of every regularizer in this package, and the masked-scale op they share.

Every regularizer (DropBlock, Dropout, SpatialDropout, DropPath) has the same interface so
a config can swap one for another: a `keep_prob` (the probability that a unit survives),
identity outside training and at keep_prob == 1, no parameters and no buffers.

They also share how the mask is applied: `masked_scale(x, keep, scale)` multiplies by a
bool mask and a scale in fp32 and keeps only the bool mask (1 byte per element, or less when
it broadcasts) for backward. In fp16 / bf16 the forward output saturates at the dtype's
largest finite value instead of overflowing to inf (`saturating_cast`).
"""
import copy
import functools
import logging
import numbers
import warnings
from typing import Any, Callable, Dict, Optional, Tuple, Union

import torch
from torch import Tensor, nn

__all__ = [
    "KeepProbRegularizer",
    "NotScriptable",
    "build_regularizer",
    "as_regularizer_factory",
    "masked_scale",
    "regularize_add_relu",
    "relu_then_regularize",
    "saturating_cast",
    "REGULARIZER_TYPES",
]

# Names accepted by `build_regularizer` (and by the config key MODEL.DROPBLOCK.TYPE).
REGULARIZER_TYPES = ("DropBlock", "Dropout", "SpatialDropout")


def is_real_number(value: Any) -> bool:
    """Whether `value` is a real number (int, float, a numpy scalar) and not a bool: bool is
    an int in Python, so True would pass every numeric check as 1."""
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def is_integer(value: Any) -> bool:
    """Whether `value` is an integer (int, a numpy integer) and not a bool (see
    :func:`is_real_number`)."""
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def check_keep_prob(keep_prob: Any, name: str = "keep_prob") -> float:
    """Return `keep_prob` as a float, or raise a ValueError naming it if not in (0, 1]."""
    if not is_real_number(keep_prob):
        raise ValueError(f"{name} must be a number in (0, 1], got {keep_prob!r}")
    keep_prob = float(keep_prob)
    # `not (0 < p <= 1)` is also true for NaN, which a plain `p <= 0 or p > 1` would let pass.
    if not (0.0 < keep_prob <= 1.0):
        raise ValueError(f"{name} must be in (0, 1], got {keep_prob!r}")
    return keep_prob


def reject_unknown_kwargs(where: str, kwargs: Dict[str, Any]) -> None:
    """Raise a ValueError naming the first unexpected keyword argument passed to `where`.

    Swallowing unknown arguments hides typos and API mismatches (mmyolo passing `warm_iters`
    to mmdet's DropBlock went unnoticed); a TypeError would be Python's default, but the
    project promises ValueError for every bad argument.
    """
    if kwargs:
        name = sorted(kwargs)[0]
        raise ValueError(f"{where}: unknown argument {name!r} (value {kwargs[name]!r})")


# The 1-byte float dtypes this torch has, fp8 and packed fp4 (a set lookup: the check runs
# at every forward).
_ONE_BYTE_FLOATS = frozenset(dtype for dtype in vars(torch).values()
                             if isinstance(dtype, torch.dtype) and dtype.is_floating_point and dtype.itemsize == 1)


def check_relu_dtype(x: Any, where: str, what: str) -> None:
    """Raise a ValueError from `where` if x is a 1-byte float tensor (fp8, packed fp4): torch
    has no ReLU (clamp_min) nor sum for them, so `what` (a ReLU, or a residual's sum and ReLU)
    would fail inside torch with a NotImplementedError that names neither the argument nor
    the layer. A dtype check, no pass over the values."""
    if isinstance(x, Tensor) and x.dtype in _ONE_BYTE_FLOATS:
        raise ValueError(f"{where}: {what} needs x of a dtype torch computes a ReLU in (float32, float16, "
                         f"bfloat16, float64), got dtype {x.dtype}")


def check_residual(x: Tensor, residual: Any, where: str) -> None:
    """Raise a ValueError from `where` unless `residual` is a tensor of x's shape: the sum
    at the end of a residual block must not broadcast to a larger output."""
    if not isinstance(residual, Tensor):
        raise ValueError(f"{where}: residual must be a tensor, got {type(residual).__name__}")
    if isinstance(x, Tensor) and residual.shape != x.shape:
        raise ValueError(
            f"{where}: residual must have x's shape {tuple(x.shape)}, got {tuple(residual.shape)}"
        )


class _MaskedScale(torch.autograd.Function):
    """out = where(keep, x, 0) * scale, computed in fp32 (fp64 for fp64), cast to x.dtype.

    Saves only `keep` (bool) for backward; `scale` is a 0-d tensor or a Python float kept on
    ctx (not a saved tensor: it is 4 bytes, and it does not depend on x).
    """

    @staticmethod
    def forward(  # type: ignore[override]
        ctx, x: Tensor, keep: Tensor, scale: Union[Tensor, float]
    ) -> Tensor:
        ctx.save_for_backward(keep)
        ctx.scale = scale
        return _apply_keep_mask(x, keep, scale, saturate=True)

    @staticmethod
    def backward(ctx, grad_output: Tensor):  # type: ignore[override]
        (keep,) = ctx.saved_tensors
        grad_input = None
        if ctx.needs_input_grad[0]:
            grad_input = _apply_keep_mask(grad_output, keep, ctx.scale, saturate=False)
        return grad_input, None, None


class _ReluThenMaskedScale(torch.autograd.Function):
    """regularize(relu(x)) for a regularizer of the form where(keep, t, 0) * scale, keeping
    only the output for backward.

    Unfused, autograd keeps relu(x) for the ReLU's backward beside the regularizer's mask or
    seeds, and the output for the next layer: one activation more than the stock
    conv+norm+ReLU, whose in-place ReLU output is the next layer's input. The output tells
    which units passed both: the scale is positive and about 1 / (kept fraction), so a kept
    positive unit stays positive (an overflow saturates or is inf, never 0), and a dropped or
    rectified unit is 0. The gradient is then grad * scale where the output is not <= 0 (a
    NaN passes, as through torch.relu's backward) and 0 elsewhere: bit for bit the unfused
    ops' gradient (`masked_scale`'s, then torch.relu's). The backward is made of
    differentiable ops: a gradient of the gradient works.
    """

    @staticmethod
    def forward(  # type: ignore[override]
        ctx, x: Tensor, regularize: Callable[[Tensor], Tuple[Tensor, Union[Tensor, float]]]
    ) -> Tensor:
        out, scale = regularize(torch.relu(x))
        ctx.save_for_backward(out)
        ctx.scale = scale
        return out

    @staticmethod
    def backward(ctx, grad_output: Tensor):  # type: ignore[override]
        (out,) = ctx.saved_tensors
        grad_input = None
        if ctx.needs_input_grad[0]:
            # Scaled as the unfused backward scales (in fp32 for fp16 / bf16), not saturated:
            # AMP's GradScaler must see an overflow as inf. Then torch.relu's own backward
            # with the output in place of relu(x): one vectorised pass (torch.where with a
            # bool mask is a scalar loop on CPU), differentiable for a second backward.
            if grad_output.dtype in (torch.float32, torch.float64):
                scaled = grad_output * ctx.scale
            else:
                scaled = (grad_output.float() * ctx.scale).to(grad_output.dtype)
            grad_input = torch.ops.aten.threshold_backward(scaled, out, 0)
        return grad_input, None


def relu_then_masked_scale(
    x: Tensor, regularize: Callable[[Tensor], Tuple[Tensor, Union[Tensor, float]]]
) -> Tensor:
    """regularize(relu(x))[0], differentiable, keeping nothing for backward but the output.

    For a regularizer's `_regularize_relu`: `regularize(t)` must return (where(keep, t, 0) *
    scale, scale), computed as `masked_scale` computes it (the fp32 product, saturated in
    fp16 / bf16), with a positive scale of about 1 / (kept fraction), a Python float or a 0-d
    tensor. It runs without autograd; the gradient with respect to x is exactly that of
    `masked_scale` after `torch.relu`. As after torch.relu, modifying the output in place
    makes backward raise autograd's in-place error.
    """
    return _ReluThenMaskedScale.apply(x, regularize)


def _apply_keep_mask(t: Tensor, keep: Tensor, scale: Union[Tensor, float], saturate: bool) -> Tensor:
    """where(keep, t, 0) * scale in fp32 (fp64 for fp64), cast back to t.dtype.

    Selecting with a bool mask, then scaling in place, is two passes over t and never
    materialises a float mask. Measured on CPU it beats `t * keep` and `(t * scale) *
    keep.view(uint8)` (both convert the mask to a temporary float tensor first). fp16 and
    bf16 are scaled in fp32 so the scale is not rounded to 11 / 8 bits before the product;
    with `saturate` the result is cast with `saturating_cast`.
    """
    if t.dtype in (torch.float32, torch.float64):
        return torch.where(keep, t, 0.0).mul_(scale)
    product = torch.where(keep, t, 0.0).float().mul_(scale)
    return saturating_cast(product, t.dtype) if saturate else product.to(t.dtype)


def saturating_cast(t: Tensor, dtype: torch.dtype) -> Tensor:
    """Cast the fp32 tensor t to fp16 / bf16, clamping (in place) what lies beyond the target's
    range to its largest finite value; NaN stays NaN.

    Used for the forward output of every regularizer in half precision: a kept activation
    near fp16's maximum (65504) times the renormalising scale (about 1 / keep_prob) does not
    fit, and an inf activation turns the loss into NaN. The gradient is cast plainly: under
    AMP an overflowing gradient must stay inf, because that is how GradScaler detects a loss
    scale that is too large. An activation that is already inf in the input saturates too
    (the clamp cannot tell it from an overflow of the product without another pass).
    """
    largest = torch.finfo(dtype).max
    return t.clamp_(-largest, largest).to(dtype)


def masked_scale(x: Tensor, keep: Tensor, scale: Union[Tensor, float]) -> Tensor:
    """Differentiable `x * keep * scale` that keeps only the bool `keep` for backward.

    Dropped units are selected away (where), so an inf or NaN under a dropped unit gives 0,
    not NaN, in the output and in the gradient.

    Args:
        x: any floating tensor.
        keep: bool tensor broadcastable to x (True = the unit survives); built without grad.
        scale: a Python float or a 0-d fp32 tensor on x's device.
    Returns:
        a tensor of x's shape and dtype (memory layout follows x and keep); the gradient with
        respect to x is exactly `grad * keep * scale`.
    """
    if keep.dtype != torch.bool:
        raise ValueError(f"masked_scale: keep must be a bool tensor, got dtype {keep.dtype}")
    return _MaskedScale.apply(x, keep, scale)


class NotScriptable:
    """Mixin of every dropblock-det module: `torch.jit.script` of it, or of a model holding
    it, raises naming the class and what to do instead. TorchScript failed deep in its
    compiler otherwise ("Unsupported annotation typing.Optional[...]" in fpn.py, "Don't
    support conversion in JoinedStr"), which read as a bug of the module. TorchScript calls
    `__prepare_scriptable__` of every submodule before compiling any; tracing and
    torch.export do not call it."""

    def __prepare_scriptable__(self) -> "NotScriptable":
        raise RuntimeError(
            f"{type(self).__name__} (dropblock-det) does not TorchScript-script (torch.jit.script, "
            "detectron2's scripting_with_instances, export_model.py --export-method scripting): "
            "script the stock detectron2 model it is at inference instead, whose config "
            "tools/export_stock_config.py writes and into which its checkpoint loads (README: "
            "'Deploying without the plugin'), or trace this one in eval mode (torch.jit.trace, "
            "detectron2's TracingAdapter)")


class KeepProbRegularizer(NotScriptable, nn.Module):
    """Base class of every regularizer: a module with a schedulable `keep_prob`.

    Attributes:
        keep_prob: the keep probability used by the next forward; the iteration schedule
            (`LinearKeepProbSchedule.apply`) and `set_keep_prob` change it.
        target_keep_prob: the configured keep probability, reached at the end of the
            schedule. The constructor's `keep_prob` sets both.

    `forward(x)` returns its input unchanged (the same tensor object) in eval mode or when
    keep_prob == 1; otherwise it calls `_regularize`. Either way it first checks x
    (`_check_input`): an input the regularizer could not regularize is refused at once, not
    when the schedule first lowers keep_prob. `forward(x, relu=True)` regularizes
    relu(x) instead (relu(x) when off): the ReLU of a conv+norm+ReLU block; and
    `forward(x, residual=r)` gives relu(r + regularized x) (relu(r + x) when off): the end
    of a residual block; with `residual_regularizer=m` the residual goes through m first
    (relu(m(r) + regularized x)): a block whose branch and shortcut are both regularized.
    Under torch.compile a training-mode forward runs eagerly (one graph break per module),
    so that a keep_prob that changes every iteration does not compile the model again at
    every iteration; in eval mode it is traced (the identity, no break).
    A subclass may fuse these into its own pass (`_regularize_relu`, `_regularize_add_relu`,
    `_regularize_pair_add_relu`; a fused pair does not call m as a module, so m's hooks do
    not run).

    No parameters and no buffers: the state_dict of a model does not change when a
    regularizer is inserted, so checkpoints load either way; keep_prob is not state because
    the schedule recomputes it from the iteration.

    The first regularizer in a process to regularize a training batch while nothing has set
    its keep_prob since it was built (no schedule, no `set_keep_prob`) logs a warning once:
    it trains at its target from the first step, with no ramp (detectron2's own
    lazyconfig_train_net.py, or a loop of one's own without `DropBlockScheduleHook`).
    """

    # A module pickled whole before this attribute existed has not been built here: no warning.
    _keep_prob_set = True

    def __init__(self, keep_prob: float) -> None:
        super().__init__()
        # Checked under the argument's own name: the user passed keep_prob.
        self.set_target(check_keep_prob(keep_prob, "keep_prob"))

    def set_target(self, keep_prob: float) -> None:
        """Set target_keep_prob and keep_prob to `keep_prob`, as the constructor does: a value
        of the model as built (a stage's scaled target), which no schedule has set yet."""
        self.target_keep_prob = keep_prob
        self.keep_prob = keep_prob
        self._keep_prob_set = False  # True once a schedule, set_keep_prob or the user sets keep_prob

    @property
    def keep_prob(self) -> float:
        return self._keep_prob

    @keep_prob.setter
    def keep_prob(self, value: float) -> None:
        self._keep_prob = check_keep_prob(value, "keep_prob")
        self._keep_prob_set = True

    @property
    def target_keep_prob(self) -> float:
        return self._target_keep_prob

    @target_keep_prob.setter
    def target_keep_prob(self, value: float) -> None:
        self._target_keep_prob = check_keep_prob(value, "target_keep_prob")

    def forward(
        self,
        x: Tensor,
        relu: bool = False,
        residual: Optional[Tensor] = None,
        residual_regularizer: Optional[nn.Module] = None,
    ) -> Tensor:
        # In every mode: an input the regularizer cannot take must fail at the first forward,
        # not at the first iteration where the schedule lowers keep_prob below 1.
        self._check_input(x)
        if not isinstance(relu, bool):  # a truthy "no" must not apply a ReLU
            raise ValueError(f"{type(self).__name__}: relu must be True or False, got {relu!r}")
        if relu or residual is not None:
            check_relu_dtype(x, type(self).__name__, "relu=True" if relu else "residual")
        if self.training:
            refuse_tracing_in_training(type(self).__name__)
        if self.training and _compiling():
            # Under torch.compile a float read in traced code is specialised: each value of a
            # ramp would compile the model again, up to Dynamo's recompile limit, after which
            # the model runs uncompiled. Run eagerly instead (a graph break), where keep_prob
            # is read as the number it is.
            return _forward_eagerly(self, x, relu, residual, residual_regularizer)
        return self._forward(x, relu, residual, residual_regularizer)

    def _forward(self, x: Tensor, relu: bool, residual: Optional[Tensor],
                 residual_regularizer: Optional[nn.Module]) -> Tensor:
        if not self._keep_prob_set and self.active:
            warn_unscheduled(self)
        if residual is not None:
            if relu:
                raise ValueError(f"{type(self).__name__}: relu=True and residual cannot be combined")
            check_residual(x, residual, type(self).__name__)
            if residual_regularizer is not None:
                if self.active and _active(residual_regularizer):
                    return self._regularize_pair_add_relu(x, residual, residual_regularizer)
                residual = residual_regularizer(residual)
            if not self.active:
                return torch.relu_(residual + x)
            return self._regularize_add_relu(x, residual)
        if residual_regularizer is not None:
            raise ValueError(f"{type(self).__name__}: residual_regularizer needs a residual")
        if not self.active:
            return torch.relu(x) if relu else x
        return self._regularize_relu(x) if relu else self._regularize(x)

    def _check_input(self, x: Any) -> None:
        """Raise a ValueError naming x if the regularizer cannot take it (a subclass states
        its shapes and dtypes); forward calls it in eval mode and at keep_prob 1 too."""

    def _regularize(self, x: Tensor) -> Tensor:
        """Apply the regularizer in training mode with keep_prob < 1 (subclasses implement)."""
        raise NotImplementedError

    def _regularize_relu(self, x: Tensor) -> Tensor:
        """`_regularize(relu(x))`; a subclass that can fuse the two overrides it."""
        return self._regularize(torch.relu(x))

    def _regularize_add_relu(self, x: Tensor, residual: Tensor) -> Tensor:
        """relu(residual + _regularize(x)); a subclass that can fuse them overrides it."""
        return torch.relu_(residual + self._regularize(x))

    def _regularize_pair_add_relu(self, x: Tensor, residual: Tensor, residual_regularizer: "KeepProbRegularizer") -> Tensor:
        """relu(residual_regularizer(residual) + _regularize(x)), both regularizers active, the
        residual's first; a subclass that can fuse the two with the sum overrides it."""
        return self._regularize_add_relu(x, residual_regularizer(residual))

    @property
    def active(self) -> bool:
        """Whether forward changes its input: training mode and keep_prob < 1 (under
        torch.compile, training mode: keep_prob is not read in traced code, see forward)."""
        if _compiling():
            return self.training
        return self.training and self.keep_prob < 1.0

    def extra_repr(self) -> str:
        # repr, not :g: a ramp's 0.9999995 must not print as 1 while the regularizer is active.
        return f"keep_prob={self.keep_prob!r}, target_keep_prob={self.target_keep_prob!r}"


_unscheduled_warned = False  # once per process: every regularizer of a model shares the cause


def warn_unscheduled(module: "KeepProbRegularizer") -> None:
    """Log, once per process, that `module` regularizes a training batch at its target
    keep_prob with nothing having set keep_prob since the model was built: training runs
    with no keep_prob ramp, the paper's schedule, and says nothing otherwise. Where it comes
    from: detectron2's own tools/lazyconfig_train_net.py (which runs no
    train.dropblock_schedule), or a training loop of one's own without DropBlockScheduleHook."""
    global _unscheduled_warned
    if _unscheduled_warned:
        return
    _unscheduled_warned = True
    logging.getLogger(__name__).warning(
        "%s trains at keep_prob %r from its first step: nothing has set its keep_prob since the model "
        "was built, so there is no keep_prob ramp (the paper ramps it from 1.0 to the target over "
        "training). dropblock-det's train_net.py and lazyconfig_train_net.py ramp it with "
        "DropBlockScheduleHook; detectron2's own tools/lazyconfig_train_net.py does not. In a loop of your "
        "own, register dropblock_det.engine.DropBlockScheduleHook (README: 'In a trainer of your own'); to "
        "train at the targets throughout, set them once: LinearKeepProbSchedule(0, 0).apply(model, 0).",
        type(module).__name__, module.keep_prob)


def refuse_tracing_in_training(name: str) -> None:
    """Raise a RuntimeError naming `name` while torch.jit.trace or torch.export records a
    regularizer in training mode: the record would keep this call's keep_prob whatever the
    schedule sets later (at keep_prob 1, an identity) and, for DropBlock, this draw's number
    of blocks (or fail inside the tracer on it)."""
    is_exporting = getattr(getattr(torch, "compiler", None), "is_exporting", None)
    if torch.jit.is_tracing() or (is_exporting is not None and is_exporting()):
        raise RuntimeError(
            f"{name} cannot be traced or exported in training mode: the trace would keep this "
            "keep_prob whatever the keep_prob schedule sets later (and, for DropBlock, one draw's "
            "random number of blocks). Trace or export the model in eval mode (model.eval()), "
            "where it is the identity and leaves nothing in the trace."
        )


def _compiling() -> bool:
    """Whether Dynamo (torch.compile) is tracing the caller; False on a torch without it."""
    compiler = getattr(torch, "compiler", None)
    is_compiling = getattr(compiler, "is_compiling", None)
    return bool(is_compiling and is_compiling())


def _run_eagerly(fn: Callable) -> Callable:
    """fn, with torch.compile running it eagerly (a graph break) rather than tracing it;
    fn itself on a torch without torch.compiler."""
    disable = getattr(getattr(torch, "compiler", None), "disable", None)
    return disable(fn) if disable is not None else fn


@_run_eagerly
def _forward_eagerly(module: KeepProbRegularizer, x: Tensor, relu: bool, residual: Optional[Tensor],
                     residual_regularizer: Optional[nn.Module]) -> Tensor:
    return module._forward(x, relu, residual, residual_regularizer)


_HOOK_DICTS = ("_forward_pre_hooks", "_forward_hooks", "_backward_pre_hooks", "_backward_hooks")


def has_module_hooks(module: nn.Module) -> bool:
    """Whether a call of `module` would run hooks: its own, or torch's global module hooks
    (`register_module_forward_hook` and its kin: a profiler's, an activation logger's).

    A block that would skip calling a module to fuse its op into a regularizer's pass (a
    ReLU, a conv+norm+ReLU) calls it as a module instead where this is true.
    """
    return any(getattr(module, name, None) or getattr(nn.modules.module, "_global" + name, None)
               for name in _HOOK_DICTS)


def relu_then_regularize(regularizer: nn.Module, x: Tensor, inplace: bool = False) -> Tensor:
    """regularizer(relu(x)) for x (N, C, H, W): a regularizer after conv+norm+ReLU.

    A `KeepProbRegularizer` gets x itself (`regularizer(x, relu=True)`) so it can fuse the
    ReLU into its own pass (DropBlock's Triton path does; DropBlock's PyTorch path, Dropout
    and SpatialDropout keep only their output for backward, not relu(x) too: see
    `relu_then_masked_scale`); any other module gets relu(x),
    computed in place on x with `inplace` (as detectron2's blocks do). So does an inactive
    (eval mode, keep_prob 1) KeepProbRegularizer, which then returns it as it is: the stock
    block's in-place ReLU, not a copy of every activation at inference (the module is still
    called, so its hooks run).
    """
    if isinstance(regularizer, KeepProbRegularizer):
        if inplace and not regularizer.active:
            # Checked before the in-place ReLU: an input the module refuses (an fp8 DropBlock
            # input) gets its ValueError, not torch's error of the ReLU, and is not changed.
            regularizer._check_input(x)
            check_relu_dtype(x, type(regularizer).__name__, "relu=True")
            return regularizer(torch.relu_(x))
        return regularizer(x, relu=True)
    return regularizer(torch.relu_(x) if inplace else torch.relu(x))


def regularize_add_relu(
    regularizer: Optional[nn.Module],
    x: Tensor,
    residual: Tensor,
    residual_regularizer: Optional[nn.Module] = None,
) -> Tensor:
    """relu(residual_regularizer(residual) + regularizer(x)): the end of a residual block, x
    its shortcut and residual its branch; None for a side without a regularizer. The
    residual's regularizer runs first (the order the block computes them in).

    The values are those of the separate ops; where regularizers are `KeepProbRegularizer`s
    they are handed the sum and the ReLU so they can do them in their own pass: DropBlock's
    Triton path does relu(r + DropBlock(x)) in one pass, and relu(DropBlock'(r) +
    DropBlock(x)) too when both sides have a per-channel DropBlock. Each regularizer is
    called as a module, so its hooks run, except the residual's in such a fused pair.
    """
    if isinstance(residual_regularizer, KeepProbRegularizer) and (
        regularizer is None or (isinstance(regularizer, KeepProbRegularizer) and not regularizer.active)
    ):
        # Only the residual is regularized: it takes the sum (x + r is r + x, bit for bit).
        # An inactive x side is still called (it returns x) so its hooks and input check run.
        if regularizer is not None:
            x = regularizer(x)
        return residual_regularizer(residual, residual=x)
    if isinstance(regularizer, KeepProbRegularizer):
        return regularizer(x, residual=residual, residual_regularizer=residual_regularizer)
    if residual_regularizer is not None:
        residual = residual_regularizer(residual)
    if regularizer is None:
        return torch.relu_(residual + x)
    return torch.relu_(residual + regularizer(x))


def _active(module: Optional[nn.Module]) -> bool:
    return isinstance(module, KeepProbRegularizer) and module.active


def build_regularizer(
    type: str,
    keep_prob: float,
    block_size: int = 7,
    shared_mask: bool = False,
    gamma_mode: str = "paper",
    impl: str = "auto",
    **kwargs: Any,
) -> KeepProbRegularizer:
    """Build a regularizer by name, so a config can swap DropBlock for an ablation.

    Args:
        type: one of REGULARIZER_TYPES: "DropBlock" (uses every argument), "Dropout"
            (element-wise), "SpatialDropout" (whole channels); the last two ignore
            block_size, shared_mask, gamma_mode and impl, but refuse bad values of them too,
            and warn (UserWarning) naming shared_mask or gamma_mode set away from its
            default, or impl "triton" (they have no kernel).
        keep_prob: target keep probability in (0, 1].
    Raises:
        ValueError: unknown `type` (named, with the choices), bad values, unknown arguments.
    """
    reject_unknown_kwargs("build_regularizer", kwargs)
    # Imported here: drop_block.py and dropout.py import this module for the base class.
    from .drop_block import DropBlock2d, _check_bool, check_block_size, check_gamma_mode, check_impl
    from .dropout import Dropout, SpatialDropout

    # Checked whatever the type: a bad value must not wait for a config to switch to DropBlock.
    check_block_size(block_size)
    _check_bool(shared_mask, "shared_mask")
    check_gamma_mode(gamma_mode)
    check_impl(impl)
    if type == "DropBlock":
        return DropBlock2d(
            keep_prob=keep_prob,
            block_size=block_size,
            shared_mask=shared_mask,
            gamma_mode=gamma_mode,
            impl=impl,
        )
    if type in ("Dropout", "SpatialDropout"):
        # DropBlock's own arguments away from their defaults: asked for, and ignored. Not
        # block_size: a DropBlock config switched to Dropout keeps its value, and it has no
        # default that would tell "not asked for". Of impl only "triton": these are PyTorch
        # ops, so "torch" (a config forcing DropBlock's PyTorch path) is what they do anyway.
        ignored = [f"{name}={value!r} (MODEL.DROPBLOCK.{key})" for name, value, ignores, key in (
            ("shared_mask", shared_mask, shared_mask is not False, "SHARED_MASK"),
            ("gamma_mode", gamma_mode, gamma_mode != "paper", "GAMMA"),
            ("impl", impl, impl == "triton", "IMPL")) if ignores]
        if ignored:
            warnings.warn(f"{type} ignores DropBlock's {', '.join(ignored)}: it has no blocks, seeds or kernels; "
                          f"the run trains {type} at keep_prob as if they were left at their defaults",
                          UserWarning, stacklevel=2)
        return Dropout(keep_prob) if type == "Dropout" else SpatialDropout(keep_prob)
    # Begins with the argument, as the other checks' messages: a LazyConfig error names its key.
    raise ValueError(f"type must be one of {REGULARIZER_TYPES}, got {type!r}")


def as_regularizer_factory(dropblock: Any, name: str = "dropblock") -> Optional[Callable[[], nn.Module]]:
    """`dropblock` as a function of no arguments that builds one regularizer per call (None
    stays None), for the model components that place one regularizer per location.

    A factory (a class, functools.partial, a lambda) is returned as it is. A module is
    accepted too and deep-copied at every call: it is what detectron2's LazyConfig
    `instantiate` gives for `dropblock=L(DropBlock2d)(keep_prob=0.9, block_size=7)`, and
    calling it as a factory would run its forward without an input.

    Raises:
        ValueError: naming `name`, for anything else.
    """
    if isinstance(dropblock, nn.Module):
        return functools.partial(copy.deepcopy, dropblock)
    if dropblock is None or callable(dropblock):
        return dropblock
    raise ValueError(
        f"{name}={dropblock!r}: expected a function of no arguments that builds a regularizer "
        "(e.g. functools.partial(DropBlock2d, 0.9, 7)) or a regularizer module to copy"
    )
