"""Mixed precision: a training step under fp16 and bf16 autocast with DropBlock at every
location (every ResNet stage and position, FPN incl. P6/P7, both head towers, DropPath)
gives finite losses and gradients, and DropBlock never turns finite input into inf/NaN,
even for activations near fp16's largest value.

detectron2's `AMPTrainer` asserts CUDA (v0.6 and current main), so on CPU the step is run
under `torch.autocast("cpu", ...)` directly; the AMPTrainer test needs a CUDA device.
"""
import inspect
import math

import pytest
import torch

from detectron2.modeling import build_model
from detectron2.utils.events import EventStorage

from conftest import detection_batch
from dropblock_det.layers import (
    DropBlock2d,
    drop_block_2d,
    dropout,
    iter_regularizers,
    set_keep_prob,
)
from reliability_helpers import dropblock_everywhere_cfg

HALF_DTYPES = [torch.float16, torch.bfloat16]


def _model_with_dropblock_everywhere(keep_prob=0.7):
    torch.manual_seed(0)
    model = build_model(dropblock_everywhere_cfg(keep_prob=keep_prob))
    model.train()
    # Regularizers at their (low) target from the first step, as at the end of the ramp.
    assert set_keep_prob(model, keep_prob) > 40
    return model


@pytest.mark.parametrize("dtype", HALF_DTYPES, ids=str)
def test_autocast_training_step_with_dropblock_everywhere_is_finite_on_cpu(dtype):
    model = _model_with_dropblock_everywhere()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    # oneDNN's bf16 conv backward on CPU intermittently returns NaN in the weight gradient
    # of P7's conv (2x2 -> 1x1, stride 2) here, in about half the runs, with every
    # regularizer at keep_prob 1.0 as well, and never with oneDNN off: a PyTorch CPU
    # issue, not DropBlock's, so this test runs the native CPU kernels.
    with torch.backends.mkldnn.flags(enabled=False), EventStorage(0):
        with torch.autocast("cpu", dtype=dtype):
            loss_dict = model(detection_batch(num_images=2, size=(3, 64, 64)))
        losses = sum(loss_dict.values())
        assert set(loss_dict) == {"loss_cls", "loss_box_reg"}
        assert all(math.isfinite(v.item()) for v in loss_dict.values()), loss_dict
        optimizer.zero_grad()
        losses.backward()
        grads = [p.grad for p in model.parameters() if p.grad is not None]
        assert grads and all(torch.isfinite(g).all() for g in grads)
        optimizer.step()
        assert all(torch.isfinite(p).all() for p in model.parameters())


@pytest.mark.cuda
@pytest.mark.parametrize("dtype", HALF_DTYPES, ids=str)
def test_amp_trainer_step_with_dropblock_everywhere_has_finite_losses(dtype):
    from detectron2.engine import AMPTrainer

    from dropblock_det.engine import DropBlockScheduleHook

    supports_precision = "precision" in inspect.signature(AMPTrainer.__init__).parameters
    if dtype == torch.bfloat16 and not supports_precision:
        pytest.skip("this detectron2's AMPTrainer (v0.6) has no `precision`: fp16 only")
    cfg = dropblock_everywhere_cfg(keep_prob=0.7)
    cfg.MODEL.DEVICE = "cuda"
    cfg.MODEL.DROPBLOCK.SCHEDULE.END_ITER = 0  # the target keep_prob from the first step
    cfg.SOLVER.MAX_ITER = 3
    model = build_model(cfg)
    data = iter([detection_batch(num_images=2, size=(3, 64, 64), seed=s) for s in range(3)])
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    kwargs = {"precision": dtype} if supports_precision else {}
    trainer = AMPTrainer(model, data, optimizer, **kwargs)
    trainer.register_hooks([DropBlockScheduleHook.from_config(cfg)])
    trainer.train(0, 3)
    history = trainer.storage.histories()
    assert history["dropblock/keep_prob"].latest() == pytest.approx(0.7)
    for key in ("loss_cls", "loss_box_reg", "total_loss"):
        values = [v for v, _ in history[key].values()]
        assert len(values) == 3 and all(math.isfinite(v) for v in values), (key, values)
    # Every regularizer at its own target: DropBlock's 0.7, DropPath's 1 - DROP_PATH_RATE.
    regularizers = [r for _, r in iter_regularizers(model)]
    assert all(r.keep_prob == pytest.approx(r.target_keep_prob) for r in regularizers)
    assert any(r.keep_prob == pytest.approx(0.7) for r in regularizers)


# fp16's largest finite value is 65504: 6e4 scaled by ~2 (keep_prob 0.5) does not fit.
# bf16 has fp32's range: 3e38 * 2 overflows even in the fp32 computation.
LARGE = {torch.float16: 6.0e4, torch.bfloat16: 3.0e38}


@pytest.mark.parametrize("dtype", list(LARGE), ids=str)
@pytest.mark.parametrize("block_size", [1, 3, 7])
def test_dropblock_output_is_finite_for_activations_near_the_dtype_maximum(dtype, block_size):
    torch.manual_seed(0)
    x = torch.full((2, 4, 16, 16), LARGE[dtype], dtype=dtype)
    x[:, ::2] *= -1  # both signs
    out = drop_block_2d(x, 0.5, block_size, impl="torch")
    assert out.dtype == dtype and out.shape == x.shape
    assert (out == 0).any() and (out != 0).any()  # something dropped, something kept
    assert torch.isfinite(out).all(), "finite input gave inf/NaN"
    # Kept units keep their sign and are not shrunk.
    kept = out != 0
    assert torch.equal(torch.sign(out[kept]), torch.sign(x[kept]))
    assert (out[kept].abs() >= x[kept].abs()).all()


# Each regularizer code path: DropBlock applied from its seeds (per-channel, sparse), through
# the bool mask (shared mask), and the family's masked scale.
HALF_PATHS = {
    "drop_block_per_channel": lambda x: drop_block_2d(x, 0.5, 3, impl="torch"),
    "drop_block_shared_mask": lambda x: drop_block_2d(x, 0.5, 3, shared_mask=True, impl="torch"),
    "dropout": lambda x: dropout(x, 0.5),
}


@pytest.mark.parametrize("path", list(HALF_PATHS))
@pytest.mark.parametrize("dtype", HALF_DTYPES, ids=str)
def test_forward_saturates_but_gradient_still_overflows_for_grad_scaler(dtype, path):
    torch.manual_seed(0)
    largest = torch.finfo(dtype).max
    x = torch.full((2, 4, 16, 16), largest * 0.9).to(dtype).requires_grad_()
    out = HALF_PATHS[path](x)
    kept = out != 0
    assert kept.any() and (~kept).any()
    assert torch.equal(out[kept], torch.full_like(out[kept], largest))
    # Under AMP a gradient overflow must stay inf: GradScaler lowers its scale on it.
    out.backward(torch.full_like(out, largest * 0.9))
    assert torch.isinf(x.grad[kept]).all()
    assert (x.grad[~kept] == 0).all()


@pytest.mark.parametrize("dtype", HALF_DTYPES, ids=str)
def test_dropblock_module_under_autocast_is_finite_for_large_activations(dtype):
    torch.manual_seed(0)
    layer = DropBlock2d(keep_prob=0.5, block_size=3, impl="torch").train()
    conv = torch.nn.Conv2d(4, 4, 1, bias=False)
    torch.nn.init.constant_(conv.weight, 0.25)
    x = torch.full((2, 4, 12, 12), 6.0e4)  # conv output: 4 * 0.25 * 6e4 = 6e4
    with torch.autocast("cpu", dtype=dtype):
        hidden = conv(x)
        out = layer(hidden)
    assert hidden.dtype == dtype and out.dtype == dtype
    assert torch.isfinite(hidden).all()
    assert torch.isfinite(out).all(), "finite input gave inf/NaN"


@pytest.mark.cuda
@pytest.mark.parametrize("dtype", HALF_DTYPES, ids=str)
def test_triton_dropblock_output_is_finite_for_activations_near_the_dtype_maximum(dtype):
    torch.manual_seed(0)
    x = torch.full((2, 4, 16, 16), LARGE[dtype], dtype=dtype, device="cuda")
    out = drop_block_2d(x, 0.5, 3, impl="triton")
    assert (out == 0).any() and (out != 0).any()
    assert torch.isfinite(out).all(), "finite input gave inf/NaN"
