"""The Triton DropBlock path (`dropblock_det.layers.drop_block_triton`).

The kernel checks below are plain functions of a device. They run twice:

* on CPU under Triton's interpreter: TRITON_INTERPRET=1 must be set before Triton is first
  imported, so one subprocess (`python this_file.py --interpreter-checks`) runs all of them
  and reports a JSON line; `test_under_triton_interpreter[<check>]` asserts each passed.
  CI has no GPU but has Triton (the CUDA build of torch ships it): these tests run there.
* on CUDA with the compiled kernels (`@pytest.mark.cuda`, skipped cleanly without a GPU).

They compare the kernel with the PyTorch reference of `drop_block.py`: block structure,
expected dropped fraction (mean over units of 1 - (1 - gamma)^k), the exact output and
gradient formula, dtype and layout, reproducibility, the all-dropped edge case, and how
much autograd keeps for backward.
"""
import contextlib
import inspect
import itertools
import json
import math
import os
import re
import struct
import subprocess
import sys
import traceback
import types
from pathlib import Path
from typing import Callable, Dict, Iterator, List, Optional, Tuple

import pytest
import torch

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:  # when run as a script in the interpreter subprocess
    sys.path.insert(0, str(REPO))

from dropblock_det.layers import drop_block_gamma, expected_drop_fraction  # noqa: E402
from dropblock_det.layers import drop_block_triton as triton_path  # noqa: E402
from dropblock_det.layers.drop_block import NORMALIZER_EPS, _normalizing_scale, drop_block_2d  # noqa: E402

RESULT_MARKER = "CHECK_RESULTS_JSON="
DTYPES = (torch.float32, torch.float16, torch.bfloat16, torch.float64)


# ----------------------------------------------------------------------------- helpers
def _positive_input(shape, dtype=torch.float32, device="cpu", channels_last=False) -> torch.Tensor:
    """Values in [0.5, 1.5): a zero in the output can only mean a dropped unit."""
    x = (torch.rand(shape, device=device) + 0.5).to(dtype)
    return x.contiguous(memory_format=torch.channels_last) if channels_last else x


def _dropped(out: torch.Tensor) -> torch.Tensor:
    return out == 0


def _whole_blocks(dropped: torch.Tensor, bh: int, bw: int) -> torch.Tensor:
    """The union of the bh x bw blocks at valid anchors that lie wholly inside `dropped`.

    Equal to `dropped` iff every dropped unit belongs to some fully dropped block whose
    top-left corner is a valid anchor (0 <= i <= H - bh, 0 <= j <= W - bw).
    """
    height, width = dropped.shape[-2:]
    rows, cols = height - bh + 1, width - bw + 1
    full = torch.ones(dropped.shape[:-2] + (rows, cols), dtype=torch.bool, device=dropped.device)
    for dy in range(bh):
        for dx in range(bw):
            full &= dropped[..., dy : dy + rows, dx : dx + cols]
    union = torch.zeros_like(dropped)
    for dy in range(bh):
        for dx in range(bw):
            union[..., dy : dy + rows, dx : dx + cols] |= full
    return union


def _expected_output(t: torch.Tensor, keep: torch.Tensor, scale: Optional[torch.Tensor] = None) -> torch.Tensor:
    """where(keep, t, 0) * numel(keep) / (count(keep) + eps): the reference's own scale
    (`_normalizing_scale`: fp32, fp64 for fp64 t), the product in that dtype cast to t.dtype."""
    if scale is None:
        scale = _normalizing_scale(keep, t.dtype)
    if t.dtype == torch.float64:
        return torch.where(keep, t, 0.0) * scale
    return (torch.where(keep, t.float(), 0.0) * scale).to(t.dtype)


def _pack_bits(keep: torch.Tensor) -> torch.Tensor:
    """The kernels' bit mask of a bool tensor in its memory order: bit m of the result is
    element m (`_pack_kernel`'s layout)."""
    flat = keep.contiguous().view(-1).to(torch.int32)
    flat = torch.cat([flat, flat.new_zeros(-flat.numel() % 8)]).view(-1, 8)
    return (flat << torch.arange(8, device=keep.device, dtype=torch.int32)).sum(1).to(torch.uint8)


def _count_differing(ours: torch.Tensor, theirs: torch.Tensor) -> str:
    return f"{int((ours != theirs).sum())} of {ours.numel()} elements differ from the reference"


def _mean_and_standard_error(values: torch.Tensor) -> Tuple[float, float]:
    values = values.double().flatten()
    return float(values.mean()), float(values.std() / math.sqrt(values.numel()))


# ----------------------------------------------------------------------------- checks
def check_every_dropped_unit_is_in_a_whole_block_at_a_valid_anchor(device: str) -> None:
    height, width = 13, 17
    shapes = [(b, b) for b in range(1, 8)] + [(2, 5), (7, 3), (height, width)]
    # Shared masks run the same seed/dilation kernels on N planes: a few sizes suffice.
    cases = [(False, shape) for shape in shapes] + [(True, shape) for shape in [(1, 1), (4, 4), (7, 3), (height, width)]]
    for shared, (bh, bw) in cases:
        torch.manual_seed(bh * 100 + bw)
        # A block as large as the map has one anchor per plane: more planes, more seeds.
        whole_map = (bh, bw) == (height, width)
        x = _positive_input((16 if whole_map else 2, 3, height, width), device=device)
        gamma = 0.5 if whole_map else 0.08
        dropped = _dropped(triton_path.drop_block_2d_triton(x, gamma, bh, bw, shared))
        where = f"block {bh}x{bw}, shared_mask={shared}"
        assert dropped.any(), f"{where}: nothing dropped at gamma {gamma}"
        assert torch.equal(_whole_blocks(dropped, bh, bw), dropped), f"{where}: a dropped unit outside a whole block"
        if shared:
            assert (dropped == dropped[:, :1]).all(), f"{where}: channels of a shared mask differ"
    # Per channel: channels (and samples) draw different masks.
    torch.manual_seed(0)
    dropped = _dropped(triton_path.drop_block_2d_triton(_positive_input((2, 3, 13, 17), device=device), 0.08, 3, 3, False))
    assert not (dropped == dropped[:, :1]).all(), "per-channel masks are identical across channels"
    assert not torch.equal(dropped[0], dropped[1]), "samples share a mask"


def check_dropped_fraction_matches_the_reference_expectation(device: str) -> None:
    # (H, W, block, keep_prob, gamma_mode): odd, even, block = map width, calibrated.
    cases = [(13, 17, 3, 0.75, "paper"), (12, 10, 4, 0.8, "paper"), (9, 9, 7, 0.7, "calibrated"), (7, 11, 7, 0.9, "paper")]
    for height, width, block, keep_prob, gamma_mode in cases:
        for shared in (False, True):
            torch.manual_seed(height * width + block + shared)
            bh, bw = min(block, height), min(block, width)
            gamma = drop_block_gamma(keep_prob, block, height, width, gamma_mode)
            expected = expected_drop_fraction(gamma, block, height, width)
            x = _positive_input((256, 4, height, width), device=device)
            ours = _dropped(triton_path.drop_block_2d_triton(x, gamma, bh, bw, shared))
            reference = _dropped(drop_block_2d(x, keep_prob, block, shared_mask=shared, gamma_mode=gamma_mode, impl="torch"))
            planes = (slice(None), slice(0, 1)) if shared else (slice(None), slice(None))
            ours_mean, ours_se = _mean_and_standard_error(ours[planes].float().mean(dim=(2, 3)))
            ref_mean, ref_se = _mean_and_standard_error(reference[planes].float().mean(dim=(2, 3)))
            where = f"{height}x{width}, block {block}, keep_prob {keep_prob}, {gamma_mode}, shared_mask={shared}"
            assert abs(ours_mean - expected) < 5 * ours_se + 1e-3, (
                f"{where}: dropped fraction {ours_mean:.4f} +- {ours_se:.4f}, expected {expected:.4f}"
            )
            assert abs(ours_mean - ref_mean) < 5 * math.hypot(ours_se, ref_se) + 1e-3, (
                f"{where}: Triton drops {ours_mean:.4f}, the reference {ref_mean:.4f}"
            )
            # A corner unit is covered by exactly one anchor: it is dropped with probability gamma.
            corners = ours[planes][..., [0, 0, -1, -1], [0, -1, 0, -1]].float()
            corner_mean, corner_se = _mean_and_standard_error(corners)
            assert abs(corner_mean - gamma) < 5 * corner_se + 1e-3, (
                f"{where}: corners dropped {corner_mean:.4f} +- {corner_se:.4f}, expected gamma {gamma:.4f}"
            )


def check_output_and_gradient_are_input_times_keep_times_scale(device: str) -> None:
    # Per-channel: every dtype in both layouts. Shared masks have their own apply kernels for
    # NCHW and channels_last: each in two dtypes, NCHW also on rows of 12 * 10 and 8 * 12
    # elements (the kernel's ROW_ALIGN 8 and 16; 13 * 17 has 1).
    cases = [(dtype, channels_last, False, (13, 17)) for dtype in DTYPES for channels_last in (False, True)]
    cases += [(torch.float32, False, True, (13, 17)), (torch.float16, False, True, (13, 17)),
              (torch.bfloat16, True, True, (13, 17)), (torch.float64, True, True, (13, 17)),
              (torch.float32, False, True, (12, 10)), (torch.bfloat16, False, True, (8, 12))]
    for dtype, channels_last, shared, (height, width) in cases:
        where = f"{dtype}, channels_last={channels_last}, shared_mask={shared}, {height}x{width}"
        torch.manual_seed(7)
        x = _positive_input((2, 3, height, width), dtype, device, channels_last).requires_grad_(True)
        out = triton_path.drop_block_2d_triton(x, 0.05, 3, 4, shared)
        assert out.dtype == dtype, f"{where}: output dtype {out.dtype}"
        assert out.stride() == x.stride(), f"{where}: output strides {out.stride()} != {x.stride()}"
        keep = ~_dropped(out)
        mask = keep[:, :1] if shared else keep
        if shared:
            assert torch.equal(keep, mask.expand_as(keep)), f"{where}: shared mask differs by channel"
        assert torch.equal(out, _expected_output(x.detach(), mask)), f"{where}: output != x * keep * scale"
        grad = torch.randn(x.shape, device=device).to(dtype)  # NCHW even when x is NHWC
        out.backward(grad)
        assert x.grad.dtype == dtype
        assert torch.equal(x.grad, _expected_output(grad, mask)), f"{where}: grad != grad * keep * scale"
    # A broadcast (stride 0) incoming gradient, as from out.sum().
    x = _positive_input((2, 3, 9, 9), device=device).requires_grad_(True)
    out = triton_path.drop_block_2d_triton(x, 0.05, 3, 3, False)
    out.sum().backward()
    assert torch.equal(x.grad, _expected_output(torch.ones_like(x), ~_dropped(out)))


def _check_shared_mask_on_channels_last_x(device: str, channels: int, seed: int) -> None:
    """Every channel of a channels_last x with a shared mask, forward and backward, is
    x * keep * scale with the sample's one mask (`_apply_pixels_kernel`'s channel tiles)."""
    torch.manual_seed(seed)
    x = _positive_input((2, channels, 5, 6), device=device, channels_last=True).requires_grad_(True)
    out = triton_path.drop_block_2d_triton(x, 0.1, 2, 2, True)
    keep = ~_dropped(out[:, :1])
    assert (~keep).any() and keep.any(), "nothing or everything dropped"
    expected = _expected_output(x.detach(), keep)  # the (N, 1, H, W) mask's own scale
    assert torch.equal(out, expected), _count_differing(out, expected)
    grad = torch.randn(x.shape, device=device)
    out.backward(grad)
    assert torch.equal(x.grad, _expected_output(grad, keep)), "gradient != grad * keep * scale"


def check_shared_mask_on_channels_last_x_covers_every_channel_block(device: str) -> None:
    # `_apply_pixels_kernel` tiles channels by at most 64: with 80 channels (two channel
    # blocks; the ResNet / FPN maps have 256..2048) every channel is covered.
    _check_shared_mask_on_channels_last_x(device, 80, seed=21)


def check_every_kernel_scales_by_the_references_scale_bit_for_bit(device: str) -> None:
    """Each kernel that computes the scale (forward and backward: flat, rows, pixels, ReLU,
    residual, pair) against the reference's `_normalizing_scale`, on a mask of 2**25 + 3
    units with 2**24 + 5 kept (numel and count are not exact in fp32) or 7 kept (fp32's
    1e-6 shows next to a small count): an fp64 scale computed or passed in fp32 at any step
    is off in its last bits. fp32 is the control: its scale is fp32 in both. Only the scale
    is big: the kernels run on a small x with random bits."""
    numel = 2**25 + 3
    reference_keep = torch.zeros(numel, dtype=torch.bool, device=device)
    # (x's count, the residual's): each count through each kernel's two scales.
    for dtype, counts in itertools.product((torch.float32, torch.float64), ((2**24 + 5, 7), (7, 2**24 + 5))):
        scales = []
        for count in counts:
            reference_keep[:count], reference_keep[count:] = True, False
            scales.append(_normalizing_scale(reference_keep, dtype))
        kepts = [torch.tensor([count], dtype=torch.int64, device=device) for count in counts]
        for shared, channels_last in ((False, False), (False, True), (True, False), (True, True)):
            where = f"{dtype}, counts {counts}, shared_mask={shared}, channels_last={channels_last}"
            torch.manual_seed(13)
            x = torch.randn((2, 3, 5, 7), dtype=dtype, device=device)
            x = x.contiguous(memory_format=torch.channels_last) if channels_last else x
            keep = torch.rand((2, 1 if shared else 3, 5, 7), device=device) < 0.7
            layout = types.SimpleNamespace(shared_mask=shared, channels_last=channels_last, mask_numel=numel)
            # Per-channel bits follow x's memory order, shared ones (N, H, W).
            bits = _pack_bits(keep.permute(0, 2, 3, 1) if channels_last and not shared else keep)
            for relu in (False, True):
                out = triton_path._apply(x, layout, bits, kepts[0], saturate=True, relu=relu)
                expected = _expected_output(torch.relu(x) if relu else x, keep.expand_as(x), scales[0])
                assert torch.equal(out, expected), f"{where}, relu={relu}: {_count_differing(out, expected)}"
            grad = torch.randn_like(x)
            out = triton_path._apply(torch.relu(x), layout, bits, kepts[0], saturate=True)
            grad_in = triton_path._relu_grad(grad, out, kepts[0], numel)
            expected = _expected_output(torch.where(out <= 0, 0.0, grad), keep.expand_as(x), scales[0])
            assert torch.equal(grad_in, expected), f"{where}, ReLU backward: {_count_differing(grad_in, expected)}"
            if shared:
                continue
            # Residual and pair kernels: x's mask and count, the residual's mask (x's bits
            # reversed) and count; both scales must be the right one.
            residual = torch.randn_like(x)
            residual_keep = keep.flip(-1)
            residual_bits = _pack_bits(residual_keep.permute(0, 2, 3, 1) if channels_last else residual_keep)
            mask = triton_path._Mask(bits, kepts[0])
            for residual_mask in (None, triton_path._Mask(residual_bits, kepts[1])):
                masked = residual_mask is not None
                r = _expected_output(residual, residual_keep, scales[1]) if masked else residual
                expected = torch.relu(r + _expected_output(x, keep, scales[0]))
                out = triton_path._apply_residual(x, layout, mask, residual, residual_mask)
                assert torch.equal(out, expected), (
                    f"{where}, residual masked={masked}: {_count_differing(out, expected)}")
                passed = torch.where(out <= 0, 0.0, grad)
                expected_residual = _expected_output(passed, residual_keep, scales[1]) if masked else passed
                # Both gradients, or the one autograd wants (the other None, not computed).
                for need_x, need_residual in ((True, True), (True, False), (False, True)):
                    grads = triton_path._residual_grad(grad, out, mask, residual_mask, numel, need_x, need_residual)
                    for name, need, ours, theirs in (
                            ("x", need_x, grads[0], _expected_output(passed, keep, scales[0])),
                            ("residual", need_residual, grads[1], expected_residual)):
                        case = f"{where}, residual masked={masked}, grad of {name} (wanted: x {need_x}, residual {need_residual})"
                        assert (ours is None) is not need, case
                        assert not need or torch.equal(ours, theirs), f"{case}: {_count_differing(ours, theirs)}"


def check_same_seed_gives_the_same_mask_in_either_layout(device: str) -> None:
    x = _positive_input((2, 3, 13, 17), device=device)
    outputs = []
    for seed, channels_last in ((3, False), (3, False), (3, True), (4, False)):
        torch.manual_seed(seed)
        x_in = x.contiguous(memory_format=torch.channels_last) if channels_last else x
        outputs.append(triton_path.drop_block_2d_triton(x_in, 0.08, 3, 3, False))
    assert torch.equal(outputs[0], outputs[1]), "same torch.manual_seed, different masks"
    assert torch.equal(outputs[0], outputs[2]), "channels_last copy of x got a different mask"
    assert not torch.equal(outputs[0], outputs[3]), "different seeds, same mask"


def _philox_words(key: int, c0: int, c1: int, c2: int = 0, c3: int = 0) -> Tuple[int, int, int, int]:
    """Philox4x32-10 of the counter (c0, c1, c2, c3) under the 64-bit `key`, written out from
    Salmon et al. (SC'11) with Triton's constants: what `tl.philox(key, c0, c1, c2, c3)`
    returns."""
    m = 0xFFFFFFFF
    k0, k1 = key & m, (key >> 32) & m
    for _ in range(10):
        p0, p2 = 0xD2511F53 * c0, 0xCD9E8D57 * c2
        c0, c1, c2, c3 = (p2 >> 32) ^ c1 ^ k0, p2 & m, (p0 >> 32) ^ c3 ^ k1, p0 & m
        k0, k1 = (k0 + 0x9E3779B9) & m, (k1 + 0xBB67AE85) & m
    return c0, c1, c2, c3


def _next_key(device: str, host_key: int) -> int:
    """The Philox key of the next mask draw on `device` with launch size `host_key` (it may
    consume random numbers: callers seed again before the draw). 0: the int64 torch.randint
    draws on the device; 1 on CPU: 2**62 + that draw on the CPU generator; 1 on CUDA:
    `host_philox_key` of the generator's seed and offset, checked against an independent
    SplitMix64 in `test_host_philox_key_is_splitmix64_of_seed_and_offset_with_bit_62_set`."""
    if not host_key:
        return int(torch.randint(0, 2**62, (1,), device=device, dtype=torch.int64))
    if torch.device(device).type == "cpu":
        return 2**62 | int(torch.randint(0, 2**62, (1,), dtype=torch.int64))
    generator = torch.cuda.default_generators[torch.device(device).index or torch.cuda.current_device()]
    return triton_path.host_philox_key(generator.initial_seed(), generator.get_offset())


class NotApplicable(Exception):
    """Raised by a check whose subject this Triton cannot build (the fused mask kernel and the
    bit-writing variants need tl.gather, Triton >= 3.3): reported and skipped, never passed."""


def _buildable(sizes: Dict[str, int]) -> bool:
    """Whether this Triton builds the kernels of launch sizes `sizes` (`check_launch_sizes`)."""
    return triton_path._gather_available() or not set(sizes.items()) & set(triton_path._GATHER_SIZES)


def _require_gather(subject: str) -> None:
    if not triton_path._gather_available():
        raise NotApplicable(f"{subject} needs tl.gather (Triton >= 3.3); this Triton is {triton_path.triton.__version__}")


def check_a_seed_is_drawn_iff_its_philox_word_is_below_round_gamma_2_32(device: str) -> None:
    """The documented draw, from an independent Philox: anchor (plane, i, j)'s word is word
    i % 4 of Philox(key, (i // 4) * (W - bw + 1) + j, plane), the key being the int64 that
    torch.randint draws after the caller's seed, and the anchor seeds iff word <
    round(gamma * 2**32). With gamma = w / 2**32 for a drawn word w, the anchor of word w
    must not seed (strictly below); with gamma * 2**32 = w + 0.75 it must (rounded, not
    truncated). The mask must be the blocks of the predicted seeds, from each seed
    comparison: `_mask_kernel`'s (NCHW, shared) and `_seed_kernel`'s (NCHW with
    mask_kernels=2, per-channel channels_last), with the key from the device and from the
    host (`_next_key`)."""
    device_type = torch.device(device).type
    n, c, height, width = 2, 2, 7, 9
    for (bh, bw), shared, channels_last, mask_kernels, host_key in (
        ((1, 1), False, False, 1, 0), ((3, 2), True, True, 1, 0), ((3, 2), False, False, 2, 0),
        ((2, 3), False, True, 1, 0), ((3, 2), False, False, 1, 1), ((2, 3), False, True, 1, 1),
    ):
        if not _buildable(dict(mask_kernels=mask_kernels)):
            continue  # Triton < 3.3: the separate kernels' cases
        planes = n * (1 if shared else c)
        anchor_rows, anchor_cols = height - bh + 1, width - bw + 1
        torch.manual_seed(17)
        key = _next_key(device, host_key)
        words = torch.tensor([[[_philox_words(key, (i // 4) * anchor_cols + j, plane)[i % 4]
                                for j in range(anchor_cols)] for i in range(anchor_rows)] for plane in range(planes)],
                             dtype=torch.int64, device=device)
        w = int(words.view(-1).sort().values[words.numel() // 2])  # a drawn word: about half the anchors below it
        x = _positive_input((n, c, height, width), device=device, channels_last=channels_last)
        for threshold, gamma in ((w, w / 2**32), (w + 1, (w + 0.75) / 2**32)):
            seeds = (words < threshold).view(n, -1, anchor_rows, anchor_cols)
            dropped = torch.zeros((n, seeds.shape[1], height, width), dtype=torch.bool, device=device)
            for dy, dx in itertools.product(range(bh), range(bw)):
                dropped[..., dy : dy + anchor_rows, dx : dx + anchor_cols] |= seeds
            with triton_path.launch_sizes(device_type, mask_kernels=mask_kernels, host_key=host_key):
                torch.manual_seed(17)
                out = triton_path.drop_block_2d_triton(x, gamma, bh, bw, shared)
            where = (f"block {bh}x{bw}, shared_mask={shared}, channels_last={channels_last}, "
                     f"mask_kernels={mask_kernels}, host_key={host_key}, gamma * 2**32 = {gamma * 2**32}")
            assert torch.equal(_dropped(out), dropped.expand_as(out)), f"{where}: not the predicted seeds' blocks"


def _predicted_sparse_seeds(key: int, gamma: float, num_anchors: int) -> List[int]:
    """The seeds `_sparse_seed_kernel` documents, from an independent Philox and math.log:
    anchors (in logical (plane, row, column) order) are cut into chunks of the power of two
    nearest 1 / gamma (16 .. 2**20); chunk k walks from seed to seed by gaps floor(ln u /
    ln(1 - gamma)), u = (53 bits of Philox words (2i, 2i + 1) + 1) / 2**53, the words of
    draw d being Philox(key, (d, k mod 2**32, k >> 32, 0x5EED)); it stops at its end."""
    chunk = 1 << min(20, max(4, round(math.log2(1 / gamma))))
    log_q = math.log1p(-gamma)
    seeds = []
    for chunk_id in range(-(-num_anchors // chunk)):
        end = min((chunk_id + 1) * chunk, num_anchors)
        anchor, draw = chunk_id * chunk - 1, 0
        while anchor < end:
            words = _philox_words(key, draw, chunk_id & 0xFFFFFFFF, chunk_id >> 32, 0x5EED)
            for hi, lo in ((words[0], words[1]), (words[2], words[3])):
                u = (((hi >> 11) << 32) + lo + 1) * 2.0**-53
                anchor += 1 + int(min(math.log(u) / log_q, chunk))
                if anchor >= end:
                    break
                seeds.append(anchor)
            draw += 1
    return seeds


def check_a_sparse_draw_is_the_documented_geometric_gaps(device: str) -> None:
    """`_sparse_seed_kernel` against `_predicted_sparse_seeds`: the mask is exactly the
    predicted seeds' blocks, for blocks of one unit, of rows within a word, and of rows of
    37 units (2 or 3 words: the word-by-word OR), per channel in both layouts (bits OR-ed
    word by word, and one by one C apart) and shared, at gammas of chunks 32 and 256; the
    key from the device, and (blocks 3x2) from the host."""
    device_type = torch.device(device).type
    n, c, height, width = 2, 3, 9, 70
    for (bh, bw), shared, channels_last, gamma, host_key in itertools.product(
        ((1, 1), (3, 2), (2, 37)), (False, True), (False, True), (0.03, 0.004), (0, 1)
    ):
        if shared and channels_last:
            continue  # a shared mask is (N, H, W) in either layout
        if host_key and ((bh, bw) != (3, 2) or gamma != 0.004):
            continue  # the key's source is independent of the walk: a few cases suffice
        planes = n * (1 if shared else c)
        anchor_rows, anchor_cols = height - bh + 1, width - bw + 1
        torch.manual_seed(23)
        key = _next_key(device, host_key)
        seeds = torch.zeros(planes * anchor_rows * anchor_cols, dtype=torch.bool, device=device)
        seeds[_predicted_sparse_seeds(key, gamma, seeds.numel())] = True
        seeds = seeds.view(n, -1, anchor_rows, anchor_cols)
        dropped = torch.zeros((n, seeds.shape[1], height, width), dtype=torch.bool, device=device)
        for dy, dx in itertools.product(range(bh), range(bw)):
            dropped[..., dy : dy + anchor_rows, dx : dx + anchor_cols] |= seeds
        x = _positive_input((n, c, height, width), device=device, channels_last=channels_last)
        with triton_path.launch_sizes(device_type, sparse_seeds=2, host_key=host_key):
            torch.manual_seed(23)
            out = triton_path.drop_block_2d_triton(x, gamma, bh, bw, shared)
        where = (f"block {bh}x{bw}, shared_mask={shared}, channels_last={channels_last}, gamma {gamma}, "
                 f"host_key={host_key}")
        assert seeds.any(), f"{where}: the prediction has no seed (pick another torch seed)"
        assert torch.equal(_dropped(out), dropped.expand_as(out)), f"{where}: not the predicted seeds' blocks"


def check_sparse_seeds_are_bernoulli_gamma_at_every_anchor_chunk_edges_included(device: str) -> None:
    """Block 1 (dropped = seeded): the seed rate is gamma overall and at the first and last
    anchor of each chunk (an off-by-one in the walk would seed them never or twice as often),
    and seeds of neighbouring anchors are independent (pairs at rate gamma**2)."""
    device_type = torch.device(device).type
    gamma, chunk = 0.01, 128  # 1 / gamma = 100: chunks of 128 anchors
    x = _positive_input((8, 16, 64, 64), device=device)
    with triton_path.launch_sizes(device_type, sparse_seeds=2):
        torch.manual_seed(31)
        seeded = torch.stack([_dropped(triton_path.drop_block_2d_triton(x, gamma, 1, 1, False)).view(-1)
                              for _ in range(4)]).double()
    position = torch.arange(seeded.shape[1], device=device)
    for name, rate, expected in (
        ("all anchors", seeded.mean(), gamma),
        ("first anchors of chunks", seeded[:, position % chunk == 0].mean(), gamma),
        ("last anchors of chunks", seeded[:, position % chunk == chunk - 1].mean(), gamma),
        ("neighbour pairs", (seeded[:, 1:] * seeded[:, :-1]).mean(), gamma**2),
    ):
        samples = seeded.numel() if name == "all anchors" else seeded.numel() // (1 if name == "neighbour pairs" else chunk)
        standard_error = math.sqrt(expected * (1 - expected) / samples)
        assert abs(float(rate) - expected) < 5 * standard_error, (
            f"{name}: seed rate {float(rate):.5f}, expected {expected:.5f} +- {standard_error:.5f}")


def check_sparse_draw_passes_the_block_statistics_formula_layout_and_memory_checks(device: str) -> None:
    """The checks above that draw masks, with every draw through sparse seeds (their gammas
    are above `_SPARSE_MAX_GAMMA`, so by default they test the dense kernels)."""
    with triton_path.launch_sizes(torch.device(device).type, sparse_seeds=2):
        for check in (check_every_dropped_unit_is_in_a_whole_block_at_a_valid_anchor,
                      check_dropped_fraction_matches_the_reference_expectation,
                      check_output_and_gradient_are_input_times_keep_times_scale,
                      check_shared_mask_on_channels_last_x_covers_every_channel_block,
                      check_same_seed_gives_the_same_mask_in_either_layout,
                      check_results_do_not_depend_on_what_torch_empty_leaves_in_memory):
            check(device)


def check_sparse_draw_does_not_depend_on_launch_sizes_and_leaves_no_bit_past_the_map(device: str) -> None:
    device_type = torch.device(device).type
    variants = (dict(seed_block=32, mask_warps=1, apply_block=512, apply_warps=2),
                dict(seed_block=128, mask_warps=4, apply_block=1024),
                dict(seed_block=4096, mask_warps=8, apply_block=32768))
    for shared, channels_last in ((False, False), (False, True), (True, False)):
        # 2 x 4 x 9 x 65 = 4680 units (not a multiple of 32); gamma 0.02: chunks of 64, 55 per-channel.
        x = _positive_input((2, 4, 9, 70), device=device, channels_last=channels_last)[..., :-5]
        x = x.contiguous(memory_format=torch.channels_last) if channels_last else x.contiguous()
        layout = triton_path._Layout(x, shared)
        results = []
        for sizes in variants:
            with triton_path.launch_sizes(device_type, sparse_seeds=2, **sizes):
                torch.manual_seed(5)
                bits, count = triton_path._keep_bits(x, layout, 0.02, 3, 4)
                results.append((bits.clone(), count.clone()))
        where = f"shared_mask={shared}, channels_last={channels_last}"
        for sizes, (bits, count) in zip(variants[1:], results[1:]):
            assert torch.equal(bits, results[0][0]) and torch.equal(count, results[0][1]), f"{where}: {sizes}"
        bits, count = results[0]
        keep = ((bits.long()[:, None] >> torch.arange(8, device=device)) & 1).view(-1)
        assert int(keep[layout.mask_numel:].sum()) == 0, f"{where}: bits set past the map's last unit"
        assert int(count) == int(keep.sum()) and 0 < int(count) < layout.mask_numel, f"{where}: count {int(count)}"


def check_host_key_draws_pass_the_block_statistics_and_layout_checks(device: str) -> None:
    """The checks above that draw masks, with every key drawn on the host (`host_key=1`),
    dense and sparse."""
    for sparse_seeds in (0, 2):
        with triton_path.launch_sizes(torch.device(device).type, host_key=1, sparse_seeds=sparse_seeds):
            for check in (check_every_dropped_unit_is_in_a_whole_block_at_a_valid_anchor,
                          check_dropped_fraction_matches_the_reference_expectation,
                          check_same_seed_gives_the_same_mask_in_either_layout):
                check(device)


def check_a_host_key_leaves_the_generator_where_the_device_key_does(device: str) -> None:
    """Whichever way the key is drawn, the random numbers drawn after the op are the same
    (on CUDA the host key advances the Philox offset by randint's 4), and each call draws a
    new key (two calls, two masks)."""
    device_type = torch.device(device).type
    x = _positive_input((2, 4, 12, 16), device=device)
    after = []
    for host_key in (0, 1):
        with triton_path.launch_sizes(device_type, host_key=host_key):
            torch.manual_seed(41)
            first = triton_path.drop_block_2d_triton(x, 0.05, 3, 3, False)
            second = triton_path.drop_block_2d_triton(x, 0.05, 3, 3, False)
            after.append(torch.rand(8, device=device))
        assert not torch.equal(_dropped(first), _dropped(second)), f"host_key={host_key}: two calls, one mask"
    assert torch.equal(*after), "the host key left torch's generator elsewhere than the device key"


# Launch sizes the mask must not depend on: the interpreter's big tiles, the GPU's, and the
# corners of `bench_dropblock.py --tune`'s sweep (several programs per axis, partial tiles).
SIZE_VARIANTS = (
    dict(triton_path._INTERPRETER_SIZES._asdict()),
    dict(triton_path._GPU_SIZES._asdict()),
    dict(tile_units=32, mask_warps=1, apply_block=512, apply_warps=2),  # programs end mid-plane
    dict(tile_units=32, mask_warps=1, mask_kernels=2),  # separate seed and dilation kernels
    dict(tile_units=256, mask_warps=2, apply_block=512, apply_warps=2),
    dict(tile_units=4096, mask_warps=8, apply_block=4096, apply_warps=8, pack_block_bytes=64, mask_kernels=2),
    # The mask kernels writing bits themselves (keep_bits=1): words split between programs,
    # and between the 32-lane groups of a program.
    dict(tile_units=32, mask_warps=1, keep_bits=1),
    dict(tile_units=32, mask_warps=1, mask_kernels=2, keep_bits=1),
    dict(tile_units=256, mask_warps=2, keep_bits=1),
)


def check_tile_sizes_do_not_change_the_mask(device: str) -> None:
    """Every launch-size variant gives the same result: the Philox counters are logical
    indices, not program ids."""
    cases = [(False, False), (False, True), (True, False), (True, True)]  # (shared, channels_last)
    for shared, channels_last in cases:
        # 8 planes x 70 columns: on GPU sizes, 2 programs per mask kernel (the second starts mid-plane)
        # and 5 apply programs; 18 mask programs of 32 lanes. (The interpreter's time is per
        # program: more planes would add programs, not cases.)
        x = _positive_input((2, 4, 9, 70), torch.float16, device, channels_last)
        outputs = []
        variants, launched = [], set()
        for sizes in SIZE_VARIANTS:
            # A per-channel mask on channels_last x has no fused kernel (its rows are not
            # plane-major: `_keep_bits`): variants differing only in mask_kernels make the very
            # same launches, and each is drawn once.
            full = triton_path._launch_sizes(torch.device(device))._replace(**sizes)
            if triton_path._Layout(x, shared).cols_outer:
                full = full._replace(mask_kernels=2)
            if _buildable(sizes) and full not in launched:
                launched.add(full)
                variants.append(sizes)
        for sizes in variants:
            with triton_path.launch_sizes(torch.device(device).type, **sizes):
                torch.manual_seed(11)
                outputs.append(triton_path.drop_block_2d_triton(x, 0.05, 4, 5, shared))
        where = f"shared_mask={shared}, channels_last={channels_last}"
        for sizes, out in zip(variants[1:], outputs[1:]):
            assert torch.equal(outputs[0], out), f"{where}: launch sizes {sizes} changed the output"
        dropped = _dropped(outputs[0])
        assert dropped.any() and torch.equal(_whole_blocks(dropped, 4, 5), dropped), where


def check_fused_and_separate_mask_kernels_draw_the_same_mask(device: str) -> None:
    """`_mask_kernel` (halo of bw - 1 lanes per program) against `_seed_kernel` +
    `_dilate_kernel`, with small programs so that windows straddle programs and planes."""
    _require_gather("the fused mask kernel")
    device_type = torch.device(device).type
    x9, x7 = _positive_input((2, 5, 9, 23), device=device), _positive_input((2, 5, 7, 23), device=device)
    x70 = _positive_input((1, 3, 2, 70), device=device)
    x121 = _positive_input((11, 1, 3, 11), device=device)
    # Block 1 (no halo), tall, wide, as wide as the map (one anchor column), the whole map;
    # one row on 7 rows, whose last Philox group has one word too many (anchor rows 4..6):
    # a seed stored for row 7 would be the next plane's row 0; a halo (65 lanes) wider
    # than the 64-lane tile: the fused kernel's programs must grow past it; and 121 lanes
    # with a halo of 4: one past two programs' 2 * (64 - 4), so a grid counted with one
    # halo lane too few is a program short and leaves the last lane undrawn.
    for x, bh, bw in ((x9, 1, 1), (x9, 7, 3), (x9, 2, 9), (x9, 4, 23), (x9, 9, 23), (x7, 1, 1), (x70, 1, 66),
                      (x121, 2, 5)):
        for shared in (False, True):
            where = f"block {bh}x{bw} on {x.shape[2]} rows, shared_mask={shared}"
            # Seeds until one drops something: the whole-map block has one anchor per sample
            # (shared), so a draw drops nothing with probability 0.3 ** 2 (CUDA's Philox keys
            # differ from the CPU's: a seed that drops on one may not on the other).
            for seed in range(20):
                outputs = []
                for mask_kernels in (1, 2):
                    with triton_path.launch_sizes(device_type, tile_units=64, mask_kernels=mask_kernels):
                        torch.manual_seed(bh * 31 + bw + 1000 * seed)
                        outputs.append(triton_path.drop_block_2d_triton(x, 0.3, bh, bw, shared))
                assert torch.equal(outputs[0], outputs[1]), f"{where}: fused and separate kernels differ"
                if _dropped(outputs[0]).any():
                    break
            else:
                raise AssertionError(f"{where}: nothing dropped in 20 draws")


def check_mask_kernels_writing_bits_give_the_packed_keep_map(device: str) -> None:
    """keep_bits=1 (bits OR-ed in by the mask kernels) gives the bytes keep_bits=8 gives (a
    uint8 keep map, then `_pack_kernel`) and the same count, zeros past the last unit: runs of
    one row (H = 1: consecutive planes are one run), one column, odd widths, words split
    between rows, planes, lane groups and programs, both mask paths, both layouts."""
    _require_gather("keep_bits=1")
    device_type = torch.device(device).type
    # Programs of 32 lanes (one lane group) and 64 (two); `SIZE_VARIANTS` has the big tiles.
    # (2, 3, 9, 17): block 3 has 7 anchor rows, two groups of 4 (the last partial) and a row
    # without anchors; planes of 153 units split words (the kernels' time is per row).
    shapes = ((2, 3, 1, 37), (1, 5, 6, 1), (2, 3, 9, 17), (1, 2, 11, 40))
    variants = tuple(itertools.product((1, 2), (32, 64)))  # (mask_kernels, tile_units)
    for shape, shared, channels_last in itertools.product(shapes, (False, True), (False, True)):
        x = _positive_input(shape, device=device, channels_last=channels_last)
        layout = triton_path._Layout(x, shared)
        if shared and channels_last:
            # A shared mask is (N, H, W) in either layout: the NCHW case ran these kernels.
            assert layout.mask_strides == triton_path._Layout(x.contiguous(), True).mask_strides
            continue
        bh, bw = min(3, shape[2]), min(4, shape[3])
        # Every variant's bits are compared with one packed keep map, drawn with the default
        # launch sizes and keep_bits=8 (`check_tile_sizes_do_not_change_the_mask`: keep_bits=8
        # does not depend on tile_units or mask_kernels), so a variant that differs fails
        # whichever of its two paths is wrong. Seeds until that draw keeps some units and
        # drops others (a small map has few anchors: (1, 5, 6, 1) has 20, none seeded with
        # probability 0.9 ** 20).
        for seed in range(20):
            with triton_path.launch_sizes(device_type, keep_bits=8):
                torch.manual_seed(sum(shape) + 1000 * seed)
                packed, packed_count = triton_path._keep_bits(x, layout, 0.1, bh, bw)
            if 0 < int(packed_count) < layout.mask_numel or layout.mask_numel < 8:
                break
        else:
            raise AssertionError(f"shape {shape}, shared_mask={shared}, channels_last={channels_last}: "
                                 "all kept or all dropped in 20 draws")
        for mask_kernels, tile_units in variants:
            where = f"shape {shape}, shared_mask={shared}, channels_last={channels_last}, " \
                    f"mask_kernels={mask_kernels}, tile_units={tile_units}"
            with triton_path.launch_sizes(device_type, tile_units=tile_units, mask_warps=1,
                                          mask_kernels=mask_kernels, keep_bits=1):
                torch.manual_seed(sum(shape) + 1000 * seed)
                bits, count = triton_path._keep_bits(x, layout, 0.1, bh, bw)
            assert bits.numel() % 4 == 0 and bits.numel() - packed.numel() < 4, where
            assert torch.equal(bits[: packed.numel()], packed), f"{where}: bits differ from the packed keep map"
            assert not bits[packed.numel():].any() and packed[-1] >> (layout.mask_numel - 8 * (packed.numel() - 1)) == 0, \
                f"{where}: bits set past the last unit"
            assert torch.equal(count, packed_count), where


def _poisoned_empty(poison: Dict[torch.dtype, float]):
    """(torch.empty, torch.empty_like) that fill what they return with poison[dtype] (NaN
    for floats), and whose torch.empty has poison past the end of the tensor too."""
    empty, empty_like = torch.empty, torch.empty_like

    def fill(t: torch.Tensor) -> torch.Tensor:
        return t.fill_(poison.get(t.dtype, float("nan")))

    def poisoned_empty(*size, **kwargs):
        shape = torch.Size(size[0] if len(size) == 1 and not isinstance(size[0], int) else size)
        return fill(empty(shape.numel() + 64, **kwargs))[: shape.numel()].view(shape)

    return poisoned_empty, lambda *args, **kwargs: fill(empty_like(*args, **kwargs))


def check_results_do_not_depend_on_what_torch_empty_leaves_in_memory(device: str) -> None:
    """Every buffer the path allocates uninitialised (seed map, keep map, bits, count,
    output) is read only where written: with torch.empty / empty_like returning (and
    followed by) garbage, the bits, count and output are those of clean memory. The seed
    map is written at anchors only; the count is zeroed by `_seed_kernel`; the maps end in
    a partial byte (210 and 70 units)."""
    device_type = torch.device(device).type
    poison = {torch.uint8: 0xA5, torch.int32: 0x5A5A5A5A, torch.int64: 0x5A5A5A5A5A5A}
    # Seed + dilation kernels in every layout (they read the seed map); the fused kernel.
    cases = [(2, shared, channels_last) for shared in (False, True) for channels_last in (False, True)]
    for mask_kernels, shared, channels_last in cases + [(1, False, False), (1, True, False)]:
        if not _buildable(dict(mask_kernels=mask_kernels)):
            continue  # Triton < 3.3: no fused kernel
        if mask_kernels == 1 and triton_path._draws_sparsely(0.1, triton_path._launch_sizes(torch.device(device))):
            continue  # sparse seeds (as in `check_sparse_draw_passes_...`) have no fused kernel: same launches as above
        x = _positive_input((2, 3, 5, 7), device=device, channels_last=channels_last)
        layout = triton_path._Layout(x, shared)
        results = []
        for poisoned in (False, True):
            saved = torch.empty, torch.empty_like
            with triton_path.launch_sizes(device_type, mask_kernels=mask_kernels):
                try:
                    if poisoned:
                        torch.empty, torch.empty_like = _poisoned_empty(poison)
                    torch.manual_seed(2)
                    bits, count = triton_path._keep_bits(x, layout, 0.1, 2, 3)
                    out = triton_path._apply(x, layout, bits, count, saturate=True)
                finally:
                    torch.empty, torch.empty_like = saved
            results.append((bits.clone(), count.clone(), out))
        where = f"mask_kernels={mask_kernels}, shared_mask={shared}, channels_last={channels_last}"
        assert _dropped(results[0][2]).any(), f"{where}: nothing dropped"
        for name, clean, poisoned in zip(("bits", "count", "output"), *results):
            assert torch.equal(clean, poisoned), f"{where}: uninitialised memory changed the {name}"


def check_a_non_dense_x_gives_what_its_dense_copy_gives(device: str) -> None:
    # The kernels index x in NCHW or NHWC memory order: a slice (every other column) or a
    # transposed map must be made dense first, or they read the wrong elements. Output and
    # x's gradient, plain, shared, with ReLU and with the residual fused in.
    base = torch.rand(2, 3, 10, 18, device=device) - 0.25  # negatives for the ReLU / residual
    residual = torch.rand(2, 3, 10, 9, device=device)
    for strided, kwargs in itertools.product(
        (base[..., ::2], base[..., :9, :].transpose(2, 3)[..., :10, :]),
        (dict(shared_mask=False), dict(shared_mask=True), dict(shared_mask=False, relu=True),
         dict(shared_mask=False, residual=residual)),
    ):
        assert not strided.is_contiguous() and not strided.is_contiguous(memory_format=torch.channels_last)
        where = f"x strides {strided.stride()}, {sorted(kwargs)}"
        results = []
        for x in (strided, strided.contiguous()):
            x = x.detach().requires_grad_(True)
            torch.manual_seed(5)
            out = triton_path.drop_block_2d_triton(x, 0.1, 3, 2, **kwargs)
            out.backward(torch.arange(out.numel(), dtype=out.dtype, device=device).view(out.shape) % 7)
            results.append((out, x.grad))
        assert _dropped(results[1][0]).any(), f"{where}: nothing dropped"
        assert torch.equal(results[0][0], results[1][0]), f"{where}: output differs from the dense copy's"
        assert torch.equal(results[0][1], results[1][1]), f"{where}: gradient differs from the dense copy's"


def check_all_dropped_gives_zeros_not_nan(device: str) -> None:
    for bh, bw, shared in ((3, 3, False), (13, 17, False), (5, 2, True)):
        x = _positive_input((2, 3, 13, 17), device=device).requires_grad_(True)
        out = triton_path.drop_block_2d_triton(x, 1.0, bh, bw, shared)
        out.backward(torch.ones_like(out))
        assert torch.equal(out, torch.zeros_like(out)), f"block {bh}x{bw}: gamma 1 left units or NaN"
        assert torch.equal(x.grad, torch.zeros_like(x)), f"block {bh}x{bw}: gradient not zero"


def check_half_precision_forward_saturates_and_backward_does_not(device: str) -> None:
    # Per-channel (flat kernel) and shared masks in both layouts (rows and pixels kernels).
    for dtype, channels_last, shared in ((torch.float16, False, False), (torch.bfloat16, True, False),
                                         (torch.float16, False, True), (torch.bfloat16, True, True)):
        where = f"{dtype}, channels_last={channels_last}, shared_mask={shared}"
        largest = torch.finfo(dtype).max
        torch.manual_seed(3)
        x = torch.full((2, 4, 9, 11), largest * 0.9, device=device).to(dtype)
        x[:, ::2] *= -1
        x = x.contiguous(memory_format=torch.channels_last) if channels_last else x
        x.requires_grad_(True)
        out = triton_path.drop_block_2d_triton(x, 0.1, 3, 3, shared)
        kept = out != 0
        assert kept.any() and (~kept).any(), f"{where}: nothing or everything dropped"
        assert torch.isfinite(out).all(), f"{where}: finite input gave inf/NaN"
        assert torch.equal(out[kept].abs(), torch.full_like(out[kept], largest)), f"{where}: kept units not saturated"
        assert torch.equal(torch.sign(out[kept]), torch.sign(x.detach()[kept])), f"{where}: sign changed"
        # A gradient of the same size overflows: backward must leave it inf for GradScaler.
        out.backward(torch.full_like(out, largest * 0.9))
        assert torch.isinf(x.grad[kept]).all(), f"{where}: backward saturated the gradient"
        assert (x.grad[~kept] == 0).all(), f"{where}: gradient of a dropped unit"


def check_relu_and_residual_backward_do_not_saturate_half_precision_gradients(device: str) -> None:
    # As plain DropBlock's backward: the fused ReLU's and the fused residual's (and pair's)
    # gradients through a mask are grad * keep * scale unclamped, so one that overflows is
    # inf for GradScaler to see, never the dtype's largest finite value. Positive x and
    # residual: every kept unit's output is > 0 and passes the gradient.
    for dtype, channels_last in ((torch.float16, False), (torch.bfloat16, True)):
        largest = torch.finfo(dtype).max
        x = _positive_input((2, 4, 9, 11), dtype, device, channels_last)
        residual = _positive_input((2, 4, 9, 11), dtype, device, channels_last)
        for fused in ("relu", "residual", "pair"):
            where = f"{dtype}, channels_last={channels_last}, fused {fused}"
            leaf, res = x.clone().requires_grad_(True), residual.clone().requires_grad_(True)
            kwargs = dict(relu=True) if fused == "relu" else dict(residual=res)
            if fused == "pair":
                kwargs["residual_drop_block"] = (0.1, 3, 3)
            torch.manual_seed(3)
            out = triton_path.drop_block_2d_triton(leaf, 0.1, 3, 3, False, **kwargs)
            out.backward(torch.full_like(out, largest * 0.9))
            # The residual's gradient goes through a mask (and a scale) only in the pair.
            for name, grad in [("x", leaf.grad)] + ([("residual", res.grad)] if fused == "pair" else []):
                kept = grad != 0
                assert kept.any() and (~kept).any(), f"{where}: grad of {name}: nothing or everything dropped"
                assert torch.isinf(grad[kept]).all(), f"{where}: backward saturated the gradient of {name}"


def check_gamma_zero_keeps_every_unit(device: str) -> None:
    x = _positive_input((2, 3, 13, 17), device=device)
    out = triton_path.drop_block_2d_triton(x, 0.0, 7, 7, False)
    assert torch.equal(out, _expected_output(x, torch.ones_like(x, dtype=torch.bool)))


def check_backward_keeps_one_bit_per_element(device: str) -> None:
    saved: List[int] = []

    def pack(t: torch.Tensor) -> torch.Tensor:
        saved.append(t.numel() * t.element_size())
        return t

    x = _positive_input((4, 8, 16, 16), torch.bfloat16, device).requires_grad_(True)
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        triton_path.drop_block_2d_triton(x, 0.05, 7, 7, False)
    assert saved, "nothing saved for backward"
    assert sum(saved) <= x.numel() // 8 + 8, f"saved {sum(saved)} bytes for {x.numel()} elements"


def _relu_test_input(shape, dtype, device, channels_last) -> torch.Tensor:
    """Both signs, with NaNs, -0.0s and +infs spread over the map (so that some are kept):
    what torch.relu passes on (NaN, with its gradient), zeroes or keeps."""
    x = torch.randn(shape, device=device).to(dtype)
    flat = x.view(-1)
    flat[::7], flat[3::11], flat[5::13] = float("nan"), -0.0, float("inf")
    return x.contiguous(memory_format=torch.channels_last) if channels_last else x


def check_fused_relu_gives_exactly_dropblock_of_relu(device: str) -> None:
    # Same key (seed) -> same mask: the fused pass must give torch.relu then DropBlock bit
    # for bit, output and gradient, in every dtype, layout and mask kind.
    for dtype, channels_last, shared in itertools.product(DTYPES, (False, True), (False, True)):
        x = _relu_test_input((2, 8, 11, 14), dtype, device, channels_last)
        grad = torch.randn(x.shape, device=device).to(dtype)
        results = []
        for fused in (True, False):
            leaf = x.clone().requires_grad_(True)
            torch.manual_seed(3)
            if fused:
                out = triton_path.drop_block_2d_triton(leaf, 0.1, 3, 3, shared, relu=True)
            else:
                out = triton_path.drop_block_2d_triton(torch.relu(leaf), 0.1, 3, 3, shared)
            out.backward(grad)
            results.append((out.detach(), leaf.grad))
        (fused_out, fused_grad), (out, x_grad) = results
        label = (dtype, channels_last, shared)
        assert (out == 0).any() and (out > 0).any() and out.isnan().any(), label  # kept NaNs too
        torch.testing.assert_close(fused_out, out, rtol=0, atol=0, equal_nan=True, msg=str(label))
        torch.testing.assert_close(fused_grad, x_grad, rtol=0, atol=0, equal_nan=True, msg=str(label))
        assert fused_out.stride() == x.stride(), label


def check_fused_relu_keeps_only_the_output_for_backward(device: str) -> None:
    # The dense mask kernels and the sparse seeds (the default at the paper's rates, whose
    # count shares one allocation with the bit words): what is kept is counted by storage,
    # as a view keeps its whole storage alive.
    for sparse_seeds in (0, 2):
        saved: List[torch.Tensor] = []
        x = _relu_test_input((4, 8, 16, 16), torch.bfloat16, device, False).requires_grad_(True)
        with triton_path.launch_sizes(torch.device(device).type, sparse_seeds=sparse_seeds):
            with torch.autograd.graph.saved_tensors_hooks(lambda t: saved.append(t) or t, lambda t: t):
                out = triton_path.drop_block_2d_triton(x, 0.05, 7, 7, False, relu=True)
        others = [t for t in saved if t.data_ptr() != out.data_ptr()]
        assert len(others) < len(saved), ("the output is not what backward uses", sparse_seeds)
        kept = sum(t.untyped_storage().nbytes() for t in others)
        assert kept <= 8, f"sparse_seeds={sparse_seeds}: also kept {kept} bytes ({others})"


def _residual_results(x, residual, shared, fused: bool, residual_drop_block=None):
    """(out, x grad, residual grad) of relu(residual + DropBlock(x)), or with
    `residual_drop_block` = (gamma, bh, bw) of relu(DropBlock'(residual) + DropBlock(x)) (the
    residual's mask drawn first), fused or composed of the separate ops, with the same key
    (seed)."""
    grad = torch.randn(x.shape, device=x.device, generator=torch.Generator(x.device).manual_seed(1)).to(x.dtype)
    leaf, res = x.clone().requires_grad_(True), residual.clone().requires_grad_(True)
    torch.manual_seed(3)
    if fused:
        out = triton_path.drop_block_2d_triton(leaf, 0.1, 3, 3, shared, residual=res,
                                               residual_drop_block=residual_drop_block)
    else:
        res_out = res if residual_drop_block is None else triton_path.drop_block_2d_triton(
            res, *residual_drop_block, False)
        out = torch.relu_(res_out + triton_path.drop_block_2d_triton(leaf, 0.1, 3, 3, shared))
    out.backward(grad)
    return out.detach(), leaf.grad, res.grad


def _assert_fused_residual_is_the_separate_ops(device: str, cases, residual_drop_block=None) -> None:
    """For each (dtype, channels_last, shared, residual_channels_last): fused and composed
    give the same output and gradients bit for bit, with values near fp16's maximum and
    -1e30 / 1e30 (outputs saturate, fp16 sums overflow to inf as torch's add does), NaNs,
    infs and -0.0s on both sides."""
    for dtype, channels_last, shared, residual_channels_last in cases:
        x = _relu_test_input((2, 8, 11, 14), dtype, device, False)
        x.view(-1)[1::17] = 6.0e4 if dtype == torch.float16 else 1e30
        residual = _relu_test_input((2, 8, 11, 14), dtype, device, False).neg_()
        residual.view(-1)[2::19] = 6.0e4 if dtype == torch.float16 else -1e30
        if channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        if channels_last if residual_channels_last is None else residual_channels_last:
            residual = residual.contiguous(memory_format=torch.channels_last)
        fused, composed = (_residual_results(x, residual, shared, fused, residual_drop_block) for fused in (True, False))
        label = (dtype, channels_last, shared, residual_channels_last)
        assert (fused[0] == 0).any() and (fused[0] > 0).any() and fused[0].isnan().any(), label
        if residual_drop_block is not None:
            # Both masks dropped something: units where only x, or only the residual, was dropped.
            assert ((fused[1] == 0) & (fused[2] != 0)).any() and ((fused[2] == 0) & (fused[1] != 0)).any(), label
        for a, b in zip(fused, composed):
            torch.testing.assert_close(a, b, rtol=0, atol=0, equal_nan=True, msg=str(label))
            assert a.stride() == b.stride(), label


def check_fused_residual_gives_exactly_relu_of_residual_plus_dropblock(device: str) -> None:
    # Every dtype and layout; and the cases that fall back to the three ops (shared mask, a
    # residual in another layout).
    _assert_fused_residual_is_the_separate_ops(device, [
        *itertools.product(DTYPES, (False, True), (False,), (None,)), (torch.float32, False, True, None),
        (torch.float16, False, False, True),
    ])
    x16 = _relu_test_input((2, 8, 11, 14), torch.float16, device, False)
    x16.view(-1)[1::17] = 6.0e4
    assert _residual_results(x16, torch.full_like(x16, 6.0e4), False, True)[0].isinf().any()  # the sum overflows


def _fused_and_composed_residual(x: torch.Tensor, residual: torch.Tensor, upstream: torch.Tensor,
                                 relu_of_sum: Callable[[torch.Tensor], torch.Tensor]) -> List[Tuple[torch.Tensor, ...]]:
    """[(out, grad of x, grad of residual)] of the fused residual sum, then of
    relu_of_sum(residual + DropBlock(x)), at one seed (block 2, gamma 0.1, a mask per channel)."""
    results = []
    for fuse in (True, False):
        xl, rl = x.clone().requires_grad_(True), residual.clone().requires_grad_(True)
        torch.manual_seed(8)
        if fuse:
            out = triton_path.drop_block_2d_triton(xl, 0.1, 2, 2, False, residual=rl)
        else:
            out = relu_of_sum(rl + triton_path.drop_block_2d_triton(xl, 0.1, 2, 2, False))
        out.backward(upstream)
        results.append((out.detach(), xl.grad, rl.grad))
    return results


def check_fused_relu_and_residual_keep_the_sign_of_zero_as_torch_does(device: str) -> None:
    # On CPU torch.relu(-0.0) and relu_(-0.0 + -0.0) are -0.0, on CUDA +0.0 (assert_close
    # cannot tell them apart): the fused ReLU (flat, rows and pixels kernels) and the fused
    # residual sum give the sign of zero the separate ops give on the device; dropped units
    # are +0.0. The residual sum's backward passes no gradient through a -0.0 output (bf16
    # included, which Triton 3.9's interpreter compares as uint16 bits).
    x = torch.randn((2, 4, 9, 11), device=device)
    x.view(-1)[::3] = -0.0
    residual = torch.where(torch.rand_like(x) < 0.5, -0.0, 0.0)  # a -0.0 sum iff both are -0.0 and x kept
    for dtype, channels_last, shared in ((torch.float32, False, False), (torch.float16, True, False),
                                         (torch.bfloat16, False, True), (torch.bfloat16, True, False),
                                         (torch.float64, True, True)):
        xd = x.to(dtype).contiguous(memory_format=torch.channels_last if channels_last else torch.contiguous_format)
        torch.manual_seed(8)
        fused = triton_path.drop_block_2d_triton(xd, 0.1, 2, 2, shared, relu=True)
        torch.manual_seed(8)
        composed = triton_path.drop_block_2d_triton(torch.relu(xd), 0.1, 2, 2, shared)
        where = f"ReLU, {dtype}, channels_last={channels_last}, shared_mask={shared}"
        assert torch.equal(fused, composed), where
        relu_keeps_negative_zero = bool(torch.signbit(torch.relu(torch.full((1,), -0.0, dtype=dtype, device=device))))
        negative_zeros = torch.signbit(composed) & (composed == 0)
        assert bool(negative_zeros.any()) == relu_keeps_negative_zero, f"{where}: kept -0.0s unlike torch.relu's"
        assert torch.equal(torch.signbit(fused), torch.signbit(composed)), f"{where}: the sign of a zero differs"
        if shared:
            continue
        rd = residual.to(dtype).contiguous(memory_format=torch.channels_last if channels_last else torch.contiguous_format)
        upstream = torch.randn(x.shape, device=device).to(dtype)
        (fused, fused_grad_x, fused_grad_r), (composed, grad_x, grad_r) = _fused_and_composed_residual(
            xd, rd, upstream, torch.relu_)
        where = f"residual, {dtype}, channels_last={channels_last}"
        assert torch.equal(fused, composed), where
        assert bool((torch.signbit(composed) & (composed == 0)).any()) == relu_keeps_negative_zero, \
            f"{where}: -0.0 sums unlike torch.relu_'s"
        assert torch.equal(torch.signbit(fused), torch.signbit(composed)), f"{where}: the sign of a zero differs"
        # A -0.0 output passes no gradient, as torch.relu_'s backward (out > 0) passes none.
        assert torch.equal(fused_grad_x, grad_x) and torch.equal(fused_grad_r, grad_r), f"{where}: gradients"


def check_the_cuda_relu_mode_gives_positive_zeros_on_any_device(device: str) -> None:
    # The kernels' RELU 2 branches (fused ReLU, fused residual sum) give +0.0 for -0.0, as
    # torch.relu on CUDA does; on CPU (RELU 1) they never ran, under the interpreter included.
    # Forced here: the outputs are the separate ops' with every zero +0.0, the gradients theirs
    # (a zero output, of either sign, passes none). Stop 55.
    x = torch.randn((2, 4, 9, 11), device=device)
    x.view(-1)[::3] = -0.0
    residual = torch.where(torch.rand_like(x) < 0.5, -0.0, 0.0)
    saved_modes = dict(triton_path._RELU_MODES)

    def positive_zeros(t: torch.Tensor) -> torch.Tensor:
        return torch.where(t == 0, torch.zeros_like(t), t)

    try:
        for dtype, channels_last in ((torch.float32, False), (torch.float16, True), (torch.bfloat16, False),
                                     (torch.float64, True)):
            xd = x.to(dtype).contiguous(memory_format=torch.channels_last if channels_last else torch.contiguous_format)
            rd = residual.to(dtype).contiguous(memory_format=torch.channels_last if channels_last else torch.contiguous_format)
            triton_path._RELU_MODES[(xd.device, dtype)] = 2
            where = f"{dtype}, channels_last={channels_last}"
            torch.manual_seed(8)
            fused = triton_path.drop_block_2d_triton(xd, 0.1, 2, 2, False, relu=True)
            torch.manual_seed(8)
            composed = positive_zeros(triton_path.drop_block_2d_triton(torch.relu(xd), 0.1, 2, 2, False))
            assert (fused == 0).any() and not torch.signbit(fused[fused == 0]).any(), f"ReLU, {where}: a -0.0"
            assert torch.equal(fused, composed), f"ReLU, {where}"
            upstream = torch.randn(x.shape, device=device).to(dtype)
            (fused, fused_grad_x, fused_grad_r), (composed, grad_x, grad_r) = _fused_and_composed_residual(
                xd, rd, upstream, lambda total: positive_zeros(torch.relu(total)))
            assert (fused == 0).any() and not torch.signbit(fused[fused == 0]).any(), f"residual, {where}: a -0.0"
            assert torch.equal(fused, composed), f"residual, {where}"
            assert torch.equal(fused_grad_x, grad_x) and torch.equal(fused_grad_r, grad_r), f"residual, {where}: gradients"
    finally:
        triton_path._RELU_MODES.clear()
        triton_path._RELU_MODES.update(saved_modes)


def check_fused_residual_keeps_one_bit_per_element_besides_the_output(device: str) -> None:
    saved: List[torch.Tensor] = []
    x = _relu_test_input((4, 8, 16, 16), torch.bfloat16, device, False).requires_grad_(True)
    residual = torch.randn(x.shape, device=device).to(torch.bfloat16).requires_grad_(True)
    with torch.autograd.graph.saved_tensors_hooks(lambda t: saved.append(t) or t, lambda t: t):
        out = triton_path.drop_block_2d_triton(x, 0.05, 7, 7, False, residual=residual)
    others = [t for t in saved if t.data_ptr() != out.data_ptr()]
    assert len(others) < len(saved), "the output is not what backward uses"
    assert sum(t.numel() * t.element_size() for t in others) <= x.numel() // 8 + 8, others


def check_fused_pair_gives_exactly_relu_of_both_dropblocks(device: str) -> None:
    # Both sides regularized (a block's last conv and its shortcut; the residual's block 2x4
    # at another rate, so a mixed-up mask or scale shows): the one pass must give the four
    # ops bit for bit in every dtype and layout; and the fallbacks (shared mask on x, a
    # residual in another layout).
    _assert_fused_residual_is_the_separate_ops(device, [
        *itertools.product(DTYPES, (False, True), (False,), (None,)), (torch.float32, False, True, None),
        (torch.bfloat16, True, False, False),
    ], residual_drop_block=(0.15, 2, 4))


def check_fused_pair_keeps_two_bits_per_element_besides_the_output(device: str) -> None:
    saved: List[torch.Tensor] = []
    x = _relu_test_input((4, 8, 16, 16), torch.bfloat16, device, False).requires_grad_(True)
    residual = torch.randn(x.shape, device=device).to(torch.bfloat16).requires_grad_(True)
    with torch.autograd.graph.saved_tensors_hooks(lambda t: saved.append(t) or t, lambda t: t):
        out = triton_path.drop_block_2d_triton(x, 0.05, 7, 7, False, residual=residual,
                                               residual_drop_block=(0.05, 7, 7))
    others = [t for t in saved if t.data_ptr() != out.data_ptr()]
    assert len(others) < len(saved), "the output is not what backward uses"
    assert sum(t.numel() * t.element_size() for t in others) <= 2 * (x.numel() // 8 + 8), others


def _regularize_add_relu_recording_triton_calls(on_x, x, residual, on_residual, seed: int):
    """(regularize_add_relu(on_x, x, residual, on_residual) after torch.manual_seed(seed),
    the `residual_drop_block` argument of each drop_block_2d_triton call it made)."""
    from dropblock_det.layers import regularize_add_relu

    calls = []
    original = triton_path.drop_block_2d_triton

    def spy(*args, **kwargs):
        calls.append(kwargs.get("residual_drop_block"))
        return original(*args, **kwargs)

    triton_path.drop_block_2d_triton = spy
    try:
        torch.manual_seed(seed)
        return regularize_add_relu(on_x, x, residual, on_residual), calls
    finally:
        triton_path.drop_block_2d_triton = original


def check_modules_hand_both_dropblocks_to_one_pass(device: str) -> None:
    # regularize_add_relu with DropBlock on both sides (different keep_prob, block and gamma
    # mode, so a mixed-up gamma or block shows) is the two modules applied in turn,
    # residual first; with the residual's mask shared the two modules run separately.
    from dropblock_det.layers import DropBlock2d

    x = _relu_test_input((2, 6, 13, 10), torch.float32, device, False)
    residual = torch.randn(x.shape, device=device)
    for shared in (False, True):
        on_x = DropBlock2d(0.85, 3, gamma_mode="calibrated", impl="triton").train()
        on_residual = DropBlock2d(0.7, 5, shared_mask=shared, impl="triton").train()
        out, calls = _regularize_add_relu_recording_triton_calls(on_x, x, residual, on_residual, seed=4)
        assert calls[-1] == (None if shared else (drop_block_gamma(0.7, 5, 13, 10), 5, 5)), calls
        torch.manual_seed(4)
        expected = torch.relu(on_residual(residual) + on_x(x))
        torch.testing.assert_close(out, expected, rtol=0, atol=0, equal_nan=True, msg=f"shared={shared}")


def check_an_inactive_residual_dropblock_is_not_handed_to_one_pass(device: str) -> None:
    # A residual DropBlock in eval mode or at keep_prob 1 is the identity: x's active one
    # must sum the residual as it is, not hand it to the two-mask pass, which would drop it
    # at its module's keep_prob (or draw at gamma 0).
    from dropblock_det.layers import DropBlock2d

    x = _relu_test_input((2, 6, 13, 10), torch.float32, device, False)
    residual = torch.randn(x.shape, device=device)
    on_x = DropBlock2d(0.85, 3, impl="triton").train()
    for on_residual in (DropBlock2d(0.7, 5, impl="triton").eval(), DropBlock2d(1.0, 5, impl="triton").train()):
        out, calls = _regularize_add_relu_recording_triton_calls(on_x, x, residual, on_residual, seed=4)
        assert calls and all(call is None for call in calls), calls
        torch.manual_seed(4)
        expected = torch.relu(residual + on_x(x))
        torch.testing.assert_close(out, expected, rtol=0, atol=0, equal_nan=True)


def check_modules_of_different_impls_run_in_turn_not_in_one_pass(device: str) -> None:
    # A residual DropBlock with impl="torch" is the PyTorch path's draw (its own generator
    # use, its own kernels), even next to an impl="triton" one on x: not handed to the
    # Triton pass.
    from dropblock_det.layers import DropBlock2d

    x = _relu_test_input((2, 6, 13, 10), torch.float32, device, False)
    residual = torch.randn(x.shape, device=device)
    on_x = DropBlock2d(0.85, 3, impl="triton").train()
    on_residual = DropBlock2d(0.7, 5, impl="torch").train()
    out, calls = _regularize_add_relu_recording_triton_calls(on_x, x, residual, on_residual, seed=4)
    assert calls and all(call is None for call in calls), calls
    torch.manual_seed(4)
    expected = torch.relu(on_residual(residual) + on_x(x))
    torch.testing.assert_close(out, expected, rtol=0, atol=0, equal_nan=True)


def check_residual_of_another_dtype_follows_type_promotion(device: str) -> None:
    # relu(residual + DropBlock(x)) with a residual of another dtype is what the three ops
    # give: the sum promotes (fp16 x + fp32 residual is fp32), so it is not the one pass,
    # which writes x's dtype.
    x = _relu_test_input((2, 8, 11, 14), torch.float16, device, False)
    residual = _relu_test_input((2, 8, 11, 14), torch.float32, device, False).neg_()
    for a, b in (((x, residual)), ((residual, x))):
        fused, composed = (_residual_results(a, b, False, fused) for fused in (True, False))
        assert fused[0].dtype == composed[0].dtype == torch.float32, (a.dtype, fused[0].dtype)
        for ours, theirs in zip(fused, composed):
            torch.testing.assert_close(ours, theirs, rtol=0, atol=0, equal_nan=True, msg=str(a.dtype))


def _assert_backward_raises(loss: torch.Tensor, fragment: str, case: str) -> None:
    """loss.backward() raises a RuntimeError whose message contains `fragment`."""
    try:
        loss.backward()
    except RuntimeError as error:
        assert fragment in str(error), error
    else:
        raise AssertionError(f"backward passed: {case}")


def check_saved_output_and_second_backward_fail_loudly_not_silently(device: str) -> None:
    # With relu / residual the output is what backward reads (as torch.relu's is): an
    # in-place change to it must raise autograd's error, never give a wrong gradient; and
    # the kernels' backward is once-differentiable: a gradient penalty must raise too.
    x = _relu_test_input((2, 4, 9, 9), torch.float32, device, False).requires_grad_(True)
    residual = torch.randn(x.shape, device=device, requires_grad=True)
    for kwargs in (dict(relu=True), dict(residual=residual)):
        out = triton_path.drop_block_2d_triton(x, 0.1, 3, 3, False, **kwargs)
        out.add_(1.0)
        _assert_backward_raises(out.sum(), "modified by an inplace operation", f"in-place change to the output, {kwargs}")
    # (With the residual fused in too: a gradient penalty that silently lost the kernels'
    # term would be a wrong gradient.)
    for kwargs in (dict(), dict(relu=True), dict(residual=residual),
                   dict(residual=residual, residual_drop_block=(0.1, 2, 2))):
        out = triton_path.drop_block_2d_triton(x, 0.1, 3, 3, False, **kwargs)
        v = torch.randn(out.shape, device=device, requires_grad=True)
        (grad,) = torch.autograd.grad(out, x, v, create_graph=True)  # a function of v
        _assert_backward_raises(grad.sum(), "once_differentiable", f"second backward through the kernels, {kwargs}")


def check_reference_dispatches_impl_triton_here(device: str) -> None:
    x = _positive_input((2, 3, 13, 17), torch.float16, device, channels_last=True)
    torch.manual_seed(5)
    out = drop_block_2d(x, 0.8, 4, impl="triton")
    torch.manual_seed(5)
    gamma = drop_block_gamma(0.8, 4, 13, 17)
    assert torch.equal(out, triton_path.drop_block_2d_triton(x, gamma, 4, 4, False))
    assert out.stride() == x.stride()


def check_torch_compile_runs_the_kernels_eagerly_with_the_eager_draws_and_gradients(device: str) -> None:
    # Dynamo must not trace into the kernels' launch code (under the interpreter it crashed
    # there): it runs drop_block_2d_triton eagerly, so a compiled model draws what the eager
    # one draws, with the same gradients, through the plain, ReLU and residual passes.
    from dropblock_det.layers import DropBlock2d

    if not hasattr(torch, "compile"):
        return
    regularizer = DropBlock2d(0.8, 3, impl="triton").train()

    def net(t: torch.Tensor, r: torch.Tensor) -> torch.Tensor:
        a = regularizer(t * 2)
        b = regularizer(t, relu=True)
        return regularizer(a + b, residual=r) * 3

    inputs = [torch.randn(2, 4, 12, 12, device=device) for _ in range(2)]
    for backend in ("eager", "aot_eager"):
        torch._dynamo.reset()
        results = []
        for fn in (net, torch.compile(net, backend=backend)):
            leaves = [t.clone().requires_grad_(True) for t in inputs]
            torch.manual_seed(11)
            out = fn(*leaves)
            out.backward(torch.arange(out.numel(), dtype=out.dtype, device=device).view_as(out))
            results.append([out.detach()] + [leaf.grad for leaf in leaves])
        (eager_out, *_), _ = results
        assert (eager_out == 0).any() and (eager_out != 0).any(), backend
        assert all(torch.equal(a, b) for a, b in zip(*results)), backend


@contextlib.contextmanager
def _backward_kernels_that_cannot_be_built() -> Iterator[List[str]]:
    """The backward kernels' launchers raise what Triton raises when it cannot build a kernel
    for the GPU; yields the list of the launchers called."""
    from triton.runtime.errors import OutOfResources

    called: List[str] = []
    names = ("_apply_grad", "_relu_grad", "_residual_grad")
    originals = {name: getattr(triton_path, name) for name in names}

    def cannot_build(name: str):
        def launcher(*args, **kwargs):
            called.append(name)
            raise OutOfResources(300_000, 232_448, "shared memory")
        return launcher

    for name in names:
        setattr(triton_path, name, cannot_build(name))
    try:
        yield called
    finally:
        for name, original in originals.items():
            setattr(triton_path, name, original)


def _gradients_with_backward_kernels(x, residual, grad, shared, fused, buildable: bool, handler=None):
    """(output, gradient of x, of the residual or None, backward launchers that failed) of
    drop_block_2d_triton after torch.manual_seed(3), its backward kernels built or not."""
    leaf = x.clone().requires_grad_(True)
    res = None if residual is None else residual.clone().requires_grad_(True)
    kwargs = {"plain": {}, "relu": dict(relu=True), "residual": dict(residual=res),
              "pair": dict(residual=res, residual_drop_block=(0.15, 2, 4))}[fused]
    torch.manual_seed(3)
    out = triton_path.drop_block_2d_triton(leaf, 0.1, 3, 3, shared, on_backward_build_error=handler, **kwargs)
    failed: List[str] = []
    with contextlib.nullcontext(failed) if buildable else _backward_kernels_that_cannot_be_built() as failed:
        out.backward(grad)
    return out.detach(), leaf.grad, None if res is None else res.grad, failed


def check_a_backward_kernel_build_error_gives_the_kernels_gradients_from_torch_ops(device: str) -> None:
    # Triton builds the backward kernels at the first backward, after forward has returned:
    # with a handler (impl="auto"), a build error there must give the very gradients the
    # kernels give (bit for bit: NaN, inf, signed zeros, fp16 overflow, every dtype, layout
    # and mask kind, plain, fused ReLU, residual and pair) from the saved mask, after one
    # call of the handler per backward; without one (impl="triton") it is raised.
    from triton.runtime.errors import OutOfResources

    cases = [*itertools.product(("plain", "relu"), DTYPES, (False, True), (False, True)),
             *itertools.product(("residual", "pair"), DTYPES, (False, True), (False,))]
    # 6 rows: the mask draw, ~90% of the time here, is paid per row. Block 3 leaves 4 x 10
    # anchors per plane: 8 planes per channel, 2 shared (none seeded at gamma 0.1, so no zero
    # to compare: 0.9 ** 80 = 2e-4).
    shape = (2, 4, 6, 12)
    for fused, dtype, channels_last, shared in cases:
        where = f"{fused}, {dtype}, channels_last={channels_last}, shared={shared}"
        x = _relu_test_input(shape, dtype, device, channels_last)
        residual = None if fused in ("plain", "relu") else _relu_test_input(shape, dtype, device, channels_last)
        grad = (torch.randn(x.shape, device=device) * 3).to(dtype)
        grad.view(-1)[2::17] = torch.finfo(dtype).max  # * scale > 1: inf in the gradient's dtype
        grad.view(-1)[4::19] = float("nan")
        grad = grad.contiguous(memory_format=torch.channels_last) if channels_last else grad
        handled: List[Tuple[torch.device, str]] = []
        kernels = _gradients_with_backward_kernels(x, residual, grad, shared, fused, buildable=True)
        torch_ops = _gradients_with_backward_kernels(x, residual, grad, shared, fused, buildable=False,
                                                     handler=lambda d, e: handled.append((d, type(e).__name__)))
        assert kernels[3] == [] and len(torch_ops[3]) == 1, (where, torch_ops[3])
        assert handled == [(torch_ops[0].device, "OutOfResources")], (where, handled)
        torch.testing.assert_close(torch_ops[0], kernels[0], rtol=0, atol=0, equal_nan=True, msg=where)
        for name, ours, theirs in (("x", torch_ops[1], kernels[1]), ("residual", torch_ops[2], kernels[2])):
            if theirs is None:
                continue
            assert ours.dtype == theirs.dtype and ours.stride() == theirs.stride(), f"{where}: grad of {name}"
            torch.testing.assert_close(ours, theirs, rtol=0, atol=0, equal_nan=True, msg=f"{where}: grad of {name}")
            numbers = ~theirs.isnan()  # a NaN's sign and payload are not compared (the kernels store 0x7FC0 in bf16)
            assert torch.equal(torch.signbit(ours[numbers]), torch.signbit(theirs[numbers])), \
                f"{where}: grad of {name}: signs of zeros"
            scaled = name == "x" or fused == "pair"  # the residual's gradient is scaled only in the pair
            assert (theirs == 0).any() and theirs.isnan().any() and (theirs.isinf().any() or not scaled), \
                f"{where}: grad of {name}: no zeros, NaNs or overflows to compare"
        try:
            _gradients_with_backward_kernels(x, residual, grad, shared, fused, buildable=False)
        except OutOfResources:
            pass
        else:
            raise AssertionError(f"{where}: without a handler the build error was not raised")


def check_fused_residual_backward_gives_the_wanted_gradient_alone(device: str) -> None:
    # A frozen side (x or the residual not requiring grad): the other side's gradient is the
    # one both sides get, bit for bit, from the kernel and from the torch ops of a backward
    # build error; the frozen side gets none.
    x = _relu_test_input((2, 8, 11, 14), torch.float32, device, False)
    residual = _relu_test_input((2, 8, 11, 14), torch.float32, device, False).neg_()
    grad = torch.randn(x.shape, device=device)

    def gradients(wants_x: bool, wants_residual: bool, residual_drop_block, buildable: bool):
        leaf, res = x.clone().requires_grad_(wants_x), residual.clone().requires_grad_(wants_residual)
        torch.manual_seed(3)
        out = triton_path.drop_block_2d_triton(leaf, 0.1, 3, 3, False, residual=res, residual_drop_block=residual_drop_block,
                                               on_backward_build_error=lambda device, error: None)
        with contextlib.nullcontext() if buildable else _backward_kernels_that_cannot_be_built():
            out.backward(grad)
        return leaf.grad, res.grad

    for residual_drop_block, buildable in itertools.product((None, (0.15, 2, 4)), (True, False)):
        both = gradients(True, True, residual_drop_block, buildable)
        assert all(g is not None and (g == 0).any() and (g != 0).any() for g in both)
        for wants in ((True, False), (False, True)):
            where = f"residual_drop_block={residual_drop_block}, kernels built={buildable}, wanted (x, residual)={wants}"
            for name, want, ours, theirs in zip(("x", "residual"), wants, gradients(*wants, residual_drop_block, buildable),
                                                both):
                assert (ours is not None) is want, f"{where}: grad of {name}"
                assert ours is None or torch.equal(ours, theirs), f"{where}: grad of {name}: {_count_differing(ours, theirs)}"


def check_impl_auto_survives_a_backward_kernel_build_error_and_leaves_the_device_to_torch(device: str) -> None:
    # What drop_block_2d(impl="auto") hands the Triton path: one warning naming the error,
    # the gradient from PyTorch ops (equal to impl="triton"'s, same seed), and from then on
    # the PyTorch path on that device; impl="triton" raises the error.
    import warnings

    from dropblock_det.layers import drop_block as drop_block_module
    from triton.runtime.errors import OutOfResources

    x = _positive_input((2, 4, 12, 12), device=device)
    grad = torch.randn(x.shape, device=device)

    def gradient(impl: str, buildable: bool) -> torch.Tensor:
        leaf = x.clone().requires_grad_(True)
        torch.manual_seed(7)
        out = drop_block_2d(leaf, 0.8, 3, impl=impl)
        with contextlib.nullcontext() if buildable else _backward_kernels_that_cannot_be_built():
            out.backward(grad)
        return leaf.grad

    runs_on, failed_on = drop_block_module._triton_runs_on, set(drop_block_module._TRITON_FAILED_ON)
    drop_block_module._triton_runs_on = lambda d: True  # as on a GPU: the interpreter runs CPU tensors
    drop_block_module._TRITON_FAILED_ON.clear()
    try:
        expected = gradient("triton", buildable=True)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            got = gradient("auto", buildable=False)
        messages = [str(w.message) for w in caught if issubclass(w.category, RuntimeWarning)]
        assert len(messages) == 1 and "OutOfResources" in messages[0], messages
        assert "this gradient was computed from the saved mask with PyTorch ops" in messages[0], messages[0]
        assert torch.equal(got, expected)
        assert drop_block_module._TRITON_FAILED_ON == {x.device}
        assert not drop_block_module.triton_path_chosen(x.device, "auto")
        drop_block_module._TRITON_FAILED_ON.clear()
        try:
            gradient("triton", buildable=False)
        except OutOfResources:
            pass
        else:
            raise AssertionError("impl='triton' did not raise the backward build error")
        assert not drop_block_module._TRITON_FAILED_ON
    finally:
        drop_block_module._triton_runs_on = runs_on
        drop_block_module._TRITON_FAILED_ON.clear()
        drop_block_module._TRITON_FAILED_ON.update(failed_on)


CHECKS: Dict[str, Callable[[str], None]] = {
    name[len("check_") :]: fn for name, fn in sorted(globals().items()) if name.startswith("check_") and callable(fn)
}


NOT_APPLICABLE = "not applicable: "


@contextlib.contextmanager
def _boolean_masks_only() -> Iterator[None]:
    """Within: Triton's interpreter refuses a load, store or atomic whose mask is not boolean
    data, as Triton 3.9's refuses it ("mask has unsupported dtype"), whatever Triton is
    installed. Earlier interpreters take an int32 mask, the data they give a scalar
    comparison broadcast against a vector mask (`ok & (row < height)`): a kernel that makes
    one passes there and fails every check on 3.9 (`_mask_where`)."""
    from triton.runtime.interpreter import InterpreterBuilder

    def strict(name: str, method: Callable) -> Callable:
        position = list(inspect.signature(method).parameters).index("mask")

        def checked(*args, **kwargs):
            mask = kwargs["mask"] if "mask" in kwargs else args[position]
            dtype = getattr(getattr(mask, "data", None), "dtype", None)
            if dtype is not None and str(dtype) != "bool":
                raise TypeError(f"{name}: a mask of {dtype} data, not bool (Triton 3.9's interpreter refuses it)")
            return method(*args, **kwargs)

        return checked

    originals = {name: method for name, method in vars(InterpreterBuilder).items()
                 if name.startswith("create_") and callable(method) and "mask" in inspect.signature(method).parameters}
    assert "create_masked_load" in originals and "create_masked_store" in originals, sorted(originals)
    try:
        for name, method in originals.items():
            setattr(InterpreterBuilder, name, strict(name, method))
        yield
    finally:
        for name, method in originals.items():
            setattr(InterpreterBuilder, name, method)


def _run_checks(device: str) -> Dict[str, Optional[str]]:
    """Run every check; name -> None (passed), NOT_APPLICABLE + why, or the failure's traceback."""
    results: Dict[str, Optional[str]] = {}
    for name, check in CHECKS.items():
        try:
            check(device)
            results[name] = None
        except NotApplicable as reason:
            results[name] = NOT_APPLICABLE + str(reason)
        except Exception:  # report every failure, not only the first
            results[name] = traceback.format_exc()
    return results


KERNEL_NAMES = ("_mask_kernel", "_seed_kernel", "_dilate_kernel", "_pack_kernel", "_sparse_seed_kernel",
                "_apply_flat_kernel", "_apply_rows_kernel", "_apply_pixels_kernel", "_relu_grad_kernel",
                "_apply_residual_kernel", "_residual_grad_kernel")
# The issue's shapes (FPN P3, res4, res5 of a batch-16 RetinaNet at 800x1088), and one past
# 2**31 elements for the 64-bit index variants.
COMPILE_SHAPES = ((16, 256, 100, 136), (16, 1024, 50, 68), (16, 2048, 25, 34), (16, 2048, 272, 272))
_POINTER_TYPES = {torch.float32: "*fp32", torch.float16: "*fp16", torch.bfloat16: "*bf16",
                  torch.float64: "*fp64", torch.uint8: "*u8", torch.int32: "*i32", torch.int64: "*i64"}


Launch = Tuple[str, Tuple[int, ...], tuple, Dict[str, object]]  # (kernel, grid, args, constexprs)


@contextlib.contextmanager
def _recording_gpu_launches() -> Iterator[List[Launch]]:
    """Within: every kernel of the GPU path replaced by a recorder that appends its launches
    to the list yielded (nothing is computed), the GPU launch sizes, and meta tensors past
    the device check, so the launch logic runs on meta tensors exactly as on CUDA."""
    calls: List[Launch] = []

    class Recorder:
        def __init__(self, name: str) -> None:
            self.name = name

        def __getitem__(self, grid):
            return lambda *args, **constexprs: calls.append((self.name, tuple(grid), args, constexprs))

    patches: Dict[str, object] = {name: Recorder(name) for name in KERNEL_NAMES}
    patches["_launch_sizes"] = lambda device: triton_path._GPU_SIZES  # read at each call
    patches["_interpreting"] = lambda: True  # passes the device check for meta tensors
    saved = {name: getattr(triton_path, name) for name in patches}
    try:
        for name, value in patches.items():
            setattr(triton_path, name, value)
        yield calls
    finally:
        for name, value in saved.items():
            setattr(triton_path, name, value)


def _record_gpu_launches() -> List[Launch]:
    """Run the GPU path's own launch logic (forward and backward, every dtype, both memory
    layouts, per-channel and shared masks, blocks 7 and 3, plain, with the ReLU fused in,
    with the residual sum fused in, and with the residual's own DropBlock too; the residual
    backward for both gradients and for either alone)
    on `meta` tensors, with the GPU launch sizes (with the fused mask kernel and with
    separate seed and dilation kernels, each writing a keep map and writing bits; with
    sparse seeds; with the key drawn on the device and on the host) and each
    kernel replaced by a recorder: (kernel,
    grid, args, constexprs) of every launch, exactly as the code would make them on CUDA.
    Nothing is computed."""
    variants = [(1, 8, 0, 0), (2, 8, 0, 0), (1, 1, 0, 0), (2, 1, 0, 0), (1, 8, 1, 0), (1, 8, 0, 1), (2, 8, 0, 1),
                (1, 8, 1, 1)]
    if not triton_path._gather_available():  # Triton < 3.3 builds the separate kernels writing a keep map only
        variants = sorted({(2, 8, sparse_seeds, host_key) for _, _, sparse_seeds, host_key in variants})
    with _recording_gpu_launches() as calls:
        for (mask_kernels, keep_bits, sparse_seeds, host_key), shape, dtype, channels_last, (shared, block), relu in (
            itertools.product(variants, COMPILE_SHAPES, DTYPES, (False, True), ((False, 7), (True, 7), (False, 3)),
                              (False, True))
        ):
            x = torch.empty(shape, dtype=dtype, device="meta", requires_grad=True)
            if channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            with triton_path.launch_sizes("cuda", mask_kernels=mask_kernels, keep_bits=keep_bits,
                                          sparse_seeds=sparse_seeds, host_key=host_key):
                out = triton_path.drop_block_2d_triton(x, 0.002, block, block, shared, relu=relu)
                out.backward(torch.empty_like(out))
                if relu:  # the residual variants (per-channel masks only: shared ones compose)
                    # Backward of both gradients, or of the one autograd wants.
                    for residual_drop_block, (wants_x, wants_residual) in itertools.product(
                            (None, (0.002, block, block)), ((True, True), (True, False), (False, True))):
                        residual = torch.empty_like(x).requires_grad_(wants_residual)
                        out = triton_path.drop_block_2d_triton(x if wants_x else x.detach(), 0.002, block, block, shared,
                                                               residual=residual, residual_drop_block=residual_drop_block)
                        out.backward(torch.empty_like(out))
    return calls


def _runtime_arguments(kernel, args: tuple, constexprs: Dict[str, object]) -> Dict[str, object]:
    """{name: value} of a recorded launch's `args`: the kernel's arguments not in `constexprs`."""
    runtime = [n for n in kernel.arg_names if n not in constexprs]
    assert len(runtime) == len(args), (kernel.arg_names, len(args))
    return dict(zip(runtime, args))


def _launch_signature(kernel, args: tuple, constexprs: Dict[str, object]) -> Tuple[Dict[str, str], Dict]:
    """The argument types and attributes Triton's launcher would specialise on: pointers
    whose address is 16-byte aligned and ints divisible by 16 get tt.divisibility 16, and
    an int argument equal to 1 becomes the constant 1 (added to `constexprs`), as Triton's
    launcher does (a stride or a count of 1: shared masks, NCHW column strides). A fresh
    allocation is aligned, a view need not be: on meta tensors data_ptr() is the view's
    byte offset, so this holds for recorded launches too."""
    values = _runtime_arguments(kernel, args, constexprs)
    constexprs.update({name: 1 for name, value in values.items() if type(value) is int and value == 1})
    signature, attrs = {}, {}
    for i, name in enumerate(kernel.arg_names):
        if name in constexprs:
            signature[name] = "constexpr"
            continue
        value = values[name]
        if isinstance(value, torch.Tensor):
            signature[name] = _POINTER_TYPES[value.dtype]
        elif isinstance(value, bool):
            signature[name] = "i1"
        elif isinstance(value, int):
            signature[name] = "i32" if -2**31 <= value < 2**31 else "i64"
        elif isinstance(value, float):
            signature[name] = "fp32"
        else:
            raise TypeError(f"{name}: unexpected kernel argument {value!r}")
        specialized = name not in getattr(kernel, "do_not_specialize", ())
        if (isinstance(value, torch.Tensor) and value.data_ptr() % 16 == 0) or (
                type(value) is int and value % 16 == 0 and specialized):
            attrs[(i,)] = [["tt.divisibility", 16]]
    return signature, attrs


# A GPU of each generation that `triton_available` admits (compute capability >= 7.0):
# Volta, Turing, Ampere, Hopper, Blackwell data centre and consumer (sm_86 and sm_89 passed
# every specialisation too, Triton 3.8, 2026-12). Below 7.0 ptxas rejects the kernels'
# atomics (sm_61: "Feature '.acq_rel' requires .target sm_70 or higher").
COMPILE_ARCHS = (70, 75, 80, 90, 100, 120)


def compile_archs() -> Tuple[int, ...]:
    """COMPILE_ARCHS that the installed Triton targets: Blackwell (sm_100, sm_120) from Triton
    3.3 (torch 2.7), the first torch built for it too; 3.2's LLVM aborts on sm_120."""
    version = tuple(int(part) for part in triton_path.triton.__version__.split(".")[:2])
    return tuple(arch for arch in COMPILE_ARCHS if arch < 100 or version >= (3, 3))


# The issue's GPU gets every specialisation; the others one per kernel and pointer types,
# which is what a target's instruction set can reject (atomics, bf16 / fp64 arithmetic).
FULL_COMPILE_ARCH = 90
# On the issue's GPU no kernel may spill registers to local memory (a spill costs memory
# traffic that a bandwidth-bound kernel cannot hide), and no 32-bit-index kernel (every
# launch on the issue's shapes) may use more than 128 registers per thread: 4-warp programs
# then keep at least 16 warps per SM resident to hide memory latency (the fused mask
# kernel takes 88 at 512 lanes, 115 writing bits; 225 and 254 at 1024). Its 64-bit-index
# variants, for tensors of 2**31 elements and more, take up to 124 (167 writing bits: 2
# programs per SM).
MAX_REGISTERS = 128


# The element-wise kernels are bound by memory bandwidth (issue 8: at most 2x the `x * mask`
# floor). On the issue's GPU x, the gradients and the outputs move in 16-byte vectors (a
# narrower access issues 2 to 8 times the memory instructions for the same bytes, as a kernel
# that fails to vectorise after a change of Triton or of its masks would) wherever x's rows
# are aligned: the per-channel kernels (True) index x flat, which Triton's launcher marks
# aligned when numel is divisible by 16 (every launch on the issue's shapes), and load each
# mask byte once for its 8 elements (`_flat_keep_tile`); the shared-mask kernels index their
# mask per pixel, and their rows are aligned to the largest power of 2 dividing H * W (NCHW,
# 16 at most: `ROW_ALIGN`) or C (channels_last, when divisible by 16).
ELEMENTWISE_KERNELS = {"_apply_flat_kernel": True, "_relu_grad_kernel": True, "_apply_residual_kernel": True,
                       "_residual_grad_kernel": True, "_apply_rows_kernel": False, "_apply_pixels_kernel": False}
# Bytes per element of the data pointer types (the kernels' x, gradients and outputs).
_ITEMSIZE = {pointer: dtype.itemsize for dtype, pointer in _POINTER_TYPES.items() if dtype.is_floating_point}


def _aligned_elements(name: str, arguments: Dict[str, object]) -> int:
    """How many of x's elements each row of kernel `name` is aligned to, from its launch's
    `arguments` (by name, constexprs included): what the compiler may vectorise at most."""
    if name == "_apply_rows_kernel":
        row_len = int(arguments["row_vectors"]) * int(arguments["ROW_ALIGN"])  # H * W
        return min(16, row_len & -row_len)
    size = int(arguments["channels" if name == "_apply_pixels_kernel" else "numel"])
    return 16 if size % 16 == 0 else 1


def _global_memory_bytes(ptx: str) -> List[Tuple[str, int]]:
    """(op, bytes per access) of every global load, store or atomic in `ptx`, the cache
    hints dropped: ("ld", 16) for `ld.global.L1::evict_last.v4.b32`."""
    accesses = []
    for op, vector, bits in re.findall(r"\b(ld|st|red|atom)\.global(?:\.[\w:]+?)*?(?:\.v(\d))?\.[a-z]+(\d+)\b", ptx):
        accesses.append((op, int(vector or 1) * int(bits) // 8))
    return accesses


def assert_vectorised_memory_access(name: str, signature: Dict[str, str], arguments: Dict[str, object],
                                    ptx: str, num_warps: int) -> None:
    """Assert what ELEMENTWISE_KERNELS says of kernel `name`'s PTX, compiled with `signature`
    for a launch with `arguments` (by name, constexprs included): every data access as wide as
    x's alignment allows (`_aligned_elements`, 16 bytes at most; beside one 8-byte load per kept
    count, `*kept_ptr`, and the mask byte loads), and in a per-channel kernel one mask byte load
    per 8 elements per mask (`*bits_ptr`)."""
    itemsize = next(_ITEMSIZE[t] for t in signature.values() if t in _ITEMSIZE)
    width = min(16, _aligned_elements(name, arguments) * itemsize)
    accesses = _global_memory_bytes(ptx)
    data = [access for access in accesses if access != ("ld", 1)]
    assert data, "no data access found (has the PTX syntax changed?)"
    counts = sum(1 for arg in signature if arg.endswith("kept_ptr"))
    narrow = [access for access in data if access[1] != width]
    assert narrow.count(("ld", 8)) <= counts and all(access == ("ld", 8) for access in narrow), (
        f"data accesses not {width} bytes wide: {sorted(narrow)} ({counts} kept-count loads allowed)")
    if ELEMENTWISE_KERNELS[name]:
        assert width == 16, "numel of a launch on the issue's shapes not divisible by 16"
        per_thread = math.prod(int(v) for k, v in arguments.items() if k.startswith("BLOCK")) // (32 * num_warps)
        masks = sum(1 for arg in signature if arg.endswith("bits_ptr"))
        byte_loads = accesses.count(("ld", 1))
        assert byte_loads <= masks * max(1, per_thread // 8), (
            f"{byte_loads} mask byte loads for {per_thread} elements per thread and {masks} mask(s)")


def _ptx_f64(value: float) -> str:
    """`value` as a PTX fp64 literal."""
    return "0d" + struct.pack(">d", value).hex().upper()


# The reference's eps as a PTX fp64 literal: what an exact fp64 scale adds to the count.
F64_EPS_PTX = _ptx_f64(NORMALIZER_EPS)


def _resource_usage(cubin: bytes) -> Dict[str, int]:
    """{"REG": registers per thread, "STACK": bytes, "LOCAL": bytes (spills), ...} of the
    one kernel in `cubin`, as the cuobjdump that ships with Triton reports it."""
    import tempfile

    try:
        from triton import knobs  # Triton >= 3.4

        cuobjdump = knobs.nvidia.cuobjdump.path
    except ImportError:
        from triton.backends.nvidia.compiler import _path_to_binary

        cuobjdump = _path_to_binary("cuobjdump")[0]
    with tempfile.NamedTemporaryFile(suffix=".cubin") as cubin_file:
        cubin_file.write(cubin)
        cubin_file.flush()
        report = subprocess.run([cuobjdump, "-res-usage", cubin_file.name],
                                capture_output=True, text=True, check=True).stdout
    lines = [line for line in report.splitlines() if "REG:" in line]
    assert len(lines) == 1, report
    return {key: int(value) for key, value in (field.split(":") for field in lines[0].split()) if value.isdigit()}


def _ast_source(kernel, signature: Dict[str, str], constexprs: Dict[str, object], attrs: Dict) -> object:
    """Triton's ASTSource of one specialisation (`_launch_signature`'s): Triton >= 3.3 takes
    the constexprs and attributes keyed by argument index; 3.2 (torch 2.6) the constants by
    name and the divisibility hints as an AttrsDescriptor."""
    from triton.compiler import ASTSource

    if "constexprs" in inspect.signature(ASTSource).parameters:
        return ASTSource(fn=kernel, signature=signature,
                         constexprs={(kernel.arg_names.index(k),): v for k, v in constexprs.items()}, attrs=attrs)
    from triton.backends.compiler import AttrsDescriptor

    return ASTSource(fn=kernel, signature=signature, constants=dict(constexprs),
                     attrs=AttrsDescriptor.from_hints({index: 16 for (index,) in attrs}))


def _scales(name: str, constexprs: Dict[str, object]) -> bool:
    """Whether a launch of kernel `name` with `constexprs` computes a DropBlock scale: every
    kernel taking `eps` but the residual backward for the residual's gradient alone, where
    the residual has no mask of its own (the ReLU's gradient as it is)."""
    if "eps" not in getattr(triton_path, name).arg_names:
        return False
    return name != "_residual_grad_kernel" or bool(constexprs["GRAD_X"] or constexprs["RESIDUAL_MASKED"])


def compile_kernels_without_a_gpu() -> Dict[str, Optional[str]]:
    """Compile the distinct launches of the GPU path (`_record_gpu_launches`) to cubins for
    every arch of `compile_archs()` with the ptxas that ships with Triton, and check the
    registers and spills of the FULL_COMPILE_ARCH ones; no GPU needed.
    Returns {"sm_XX kernel {constexprs} {options} (types)": None, or the error}."""
    import triton
    from triton.backends.compiler import GPUTarget

    launches = _record_gpu_launches()
    results: Dict[str, Optional[str]] = {}
    for arch in compile_archs():
        compiled = set()
        for name, grid, args, constexprs in launches:
            kernel = getattr(triton_path, name)
            constexprs = dict(constexprs)
            # num_warps is a launch option, recorded with the keyword arguments: not a constexpr.
            options = {"num_warps": constexprs.pop("num_warps", 4)}
            if "enable_fp_fusion" in constexprs:
                options["enable_fp_fusion"] = constexprs.pop("enable_fp_fusion")
            arguments = {**_runtime_arguments(kernel, args, constexprs), **constexprs}
            signature, attrs = _launch_signature(kernel, args, constexprs)
            types = ", ".join(signature.values())
            # The int arguments divisible by 16 are part of the specialisation: Triton compiles
            # each combination apart, and it decides what the compiler may vectorise.
            divisible = [kernel.arg_names[i] for (i,) in attrs if signature[kernel.arg_names[i]][0] != "*"]
            label = (f"sm_{arch} {name} {dict(sorted(constexprs.items()))} {options} ({types})"
                     + (f" 16 | {', '.join(divisible)}" if divisible else ""))
            key = label if arch == FULL_COMPILE_ARCH else (name, tuple(t for t in signature.values() if t[0] == "*"))
            if key in compiled:
                continue
            compiled.add(key)
            try:
                # CUDA caps grid axes 1 and 2 at 65535 blocks (axis 0 at 2**31 - 1).
                assert grid[0] < 2**31 and all(g <= 65535 for g in grid[1:]), f"grid {grid} exceeds CUDA's limits"
                source = _ast_source(kernel, signature, constexprs, attrs)
                binary = triton.compile(source, target=GPUTarget("cuda", arch, 32), options=options)
                assert binary.metadata.num_warps == options["num_warps"]
                assert binary.asm.get("cubin") and f".target sm_{arch}" in binary.asm["ptx"], f"no sm_{arch} cubin"
                # The element-wise kernels round each product and sum as the unfused ops do.
                if options.get("enable_fp_fusion") is False:
                    assert "fma.rn.f" not in binary.asm["ptx"], "a fused multiply-add in a kernel launched with enable_fp_fusion=False"
                # fp64 scales: IEEE f64 division by count + the exact fp64 eps, no fp32 value
                # (the fp32 `eps` argument) widened into it. The interpreter cannot show this:
                # it passes a float argument as a Python float, exact next to fp64.
                if constexprs.get("COMPUTE_F64") and _scales(name, constexprs):
                    ptx = binary.asm["ptx"]
                    assert "div.rn.f64" in ptx and F64_EPS_PTX in ptx and "cvt.f64.f32" not in ptx, (
                        "the fp64 scale is not numel / (count + 1e-6) in fp64")
                # fp32 scales: IEEE division (`div_rn`), not Triton's default fp32 `/` (div.full.f32,
                # approximate: up to 2 ulp off the reference's scale). The interpreter cannot show
                # this either: it divides numpy floats, exactly. Triton 3.3 to 3.5 link libdevice's
                # flush-to-zero variant (div.rn.ftz.f32): the same quotient here, where the
                # operands (numel >= 1, count + 1e-6) and the quotient (>= ~1) are never
                # subnormal, the only values ftz changes.
                if not constexprs.get("COMPUTE_F64") and _scales(name, constexprs):
                    ptx = binary.asm["ptx"]
                    assert re.search(r"\bdiv\.rn(\.ftz)?\.f32\b", ptx) and "div.full.f32" not in ptx \
                        and "div.approx" not in ptx, "the fp32 scale is not an IEEE division"
                # Nothing else flushes subnormals to zero: a subnormal x (or gradient) stays
                # what torch's multiply makes of it.
                flushing = set(re.findall(r"\b[a-z]+(?:\.[a-z0-9]+)*\.ftz(?:\.[a-z0-9]+)*", binary.asm["ptx"]))
                assert flushing <= {"div.rn.ftz.f32"}, f"flush-to-zero instructions: {sorted(flushing)}"
                # The geometric gaps in fp64: every constant of `_log_unit`'s series exact (an
                # fp32-rounded constant would not show under the interpreter, which computes in
                # numpy's fp64 whatever the constant's type; only the PTX shows it) and IEEE
                # divisions.
                if name == "_sparse_seed_kernel":
                    ptx = binary.asm["ptx"]
                    assert "cvt.f64.f32" not in ptx and "div.rn.f64" in ptx, "fp32 in the fp64 gap computation"
                    assert all(_ptx_f64(1 / (2 * k + 1)) in ptx for k in range(12)), "a series constant is not exact"
                if arch == FULL_COMPILE_ARCH:
                    usage = _resource_usage(binary.asm["cubin"])
                    assert usage["LOCAL"] == usage["STACK"] == 0, f"local memory (spills) or a stack frame: {usage}"
                    assert constexprs.get("INDEX_64") or usage["REG"] <= MAX_REGISTERS, (
                        f"more than {MAX_REGISTERS} registers: {usage}")
                    if name in ELEMENTWISE_KERNELS:
                        assert_vectorised_memory_access(name, signature, arguments, binary.asm["ptx"],
                                                        options["num_warps"])
                results[label] = None
            except Exception:  # report every failing specialisation, not only the first
                results[label] = traceback.format_exc(limit=2)
    return results


# ----------------------------------------------------------------------------- tests
@pytest.fixture(scope="module")
def interpreter_results() -> Dict[str, Optional[str]]:
    env = dict(os.environ, TRITON_INTERPRET="1", PYTHONWARNINGS="ignore")
    # About 2 min alone on a 2-core VM; the limit only catches a hang. Beside six other busy
    # processes there (a Python 3.13 suite's two xdist workers, other suites) they took more
    # than the 600 s allowed before, and every interpreter check errored.
    timeout = 1800
    try:
        proc = subprocess.run(
            [sys.executable, str(Path(__file__).resolve()), "--interpreter-checks"],
            capture_output=True,
            text=True,
            env=env,
            cwd=str(REPO),
            timeout=timeout,
        )
    except subprocess.TimeoutExpired:
        pytest.fail(f"the interpreter checks (`{Path(__file__).name} --interpreter-checks`) ran past {timeout} s; "
                    "alone they take about 2 min on 2 cores: rerun on a less loaded machine, or find the hang")
    lines = [line for line in proc.stdout.splitlines() if line.startswith(RESULT_MARKER)]
    assert proc.returncode == 0 and lines, (
        f"interpreter subprocess failed (exit {proc.returncode}):\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}"
    )
    return json.loads(lines[-1][len(RESULT_MARKER) :])


def _record_launches_on_meta(shape, shared: bool, sparse_seeds: int) -> List[Tuple[str, Dict[str, object]]]:
    """(kernel, constexprs) of every launch of forward and backward (plain, ReLU, residual,
    residual pair) on a `meta` x of `shape`, GPU launch sizes with `sparse_seeds`, kernels
    replaced by recorders (`_recording_gpu_launches`)."""
    with _recording_gpu_launches() as calls:
        x = torch.empty(shape, device="meta", requires_grad=True)
        for kwargs in (dict(), dict(relu=True), dict(residual=torch.empty_like(x)),
                       dict(residual=torch.empty_like(x), residual_drop_block=(0.002, 7, 7))):
            if shared and kwargs.get("residual_drop_block"):
                continue  # the residual's own DropBlock is per-channel only
            with triton_path.launch_sizes("cuda", sparse_seeds=sparse_seeds):
                out = triton_path.drop_block_2d_triton(x, 0.002, 7, 7, shared, **kwargs)
                out.backward(torch.empty_like(out))
    return [(name, constexprs) for name, _, _, constexprs in calls]


@pytest.mark.skipif(triton_path.triton is None, reason="Triton not importable (CPU-only torch build)")
@pytest.mark.parametrize("shared", [False, True])
def test_every_kernel_indexing_x_takes_64_bit_offsets_from_2_31_elements_on(shared: bool) -> None:
    # An int32 offset wraps past 2**31 elements: every kernel that indexes x, its gradient or
    # a per-channel mask must get INDEX_64 there (the interpreter never sees such a tensor;
    # here meta tensors and recorders take the launch logic through it with nothing computed).
    # The issue's shapes, below 2**31, keep the faster 32-bit variants.
    mask_kernels = {"_mask_kernel", "_seed_kernel", "_dilate_kernel", "_pack_kernel", "_sparse_seed_kernel"}
    sparse_kernels = {"_sparse_seed_kernel"}
    dense_kernels = {"_mask_kernel", "_seed_kernel", "_dilate_kernel", "_pack_kernel"}
    big, small = (16, 2048, 272, 272), (16, 1024, 50, 68)
    assert math.prod(big) >= 2**31 > math.prod(small)
    for (shape, index_64), sparse_seeds in itertools.product(((big, True), (small, False)), (0, 1)):
        calls = _record_launches_on_meta(shape, shared, sparse_seeds)
        names = {name for name, _ in calls}
        assert names >= {"_apply_flat_kernel" if not shared else "_apply_rows_kernel", "_relu_grad_kernel"}
        # The sparse draw is one kernel for the whole mask (the keep bits and their count).
        assert (names >= sparse_kernels and not names & dense_kernels) if sparse_seeds else not (
            names & sparse_kernels), (sparse_seeds, names)
        for name, constexprs in calls:
            if shared and name in mask_kernels and index_64:
                continue  # a shared mask is N * H * W units: 32-bit offsets may do
            assert constexprs["INDEX_64"] is index_64, (shape, name, constexprs)


@pytest.mark.skipif(triton_path.triton is None, reason="Triton not importable (CPU-only torch build)")
def test_the_sparse_seed_kernel_takes_64_bit_offsets_within_a_word_of_2_31_units() -> None:
    # It computes the end of a unit's 32-bit word (32 * word + 32), which passes 2**31 - 1 on
    # a map whose last word does; every other kernel keeps its 32-bit variant there.
    shape = (1, 1, 8, (2**31 - 40) // 8)  # 2**31 - 40 units
    calls = _record_launches_on_meta(shape, False, 1)
    index_64 = {name: constexprs.get("INDEX_64") for name, constexprs in calls}
    assert index_64.pop("_sparse_seed_kernel") is True
    assert set(index_64.values()) == {False}, index_64


@pytest.mark.skipif(triton_path.triton is None, reason="Triton not importable (CPU-only torch build)")
def test_kernels_compile_to_cubins_for_every_supported_gpu_without_a_gpu() -> None:
    # The interpreter does not compile anything: this catches what only the compiler rejects
    # (types, layouts, constexpr misuse, instructions a GPU generation lacks). The subprocess
    # makes sure the interpreter is off.
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    env["PYTHONWARNINGS"] = "ignore"
    proc = subprocess.run(
        [sys.executable, str(Path(__file__).resolve()), "--compile-checks"],
        capture_output=True, text=True, env=env, cwd=str(REPO), timeout=900,
    )
    lines = [line for line in proc.stdout.splitlines() if line.startswith(RESULT_MARKER)]
    assert proc.returncode == 0 and lines, f"compile subprocess failed:\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}"
    results = json.loads(lines[-1][len(RESULT_MARKER) :])
    failures = {label: error for label, error in results.items() if error is not None}
    assert not failures, "\n".join(f"{label}:\n{error}" for label, error in failures.items())
    assert triton_path._MIN_CUDA_CAPABILITY == divmod(min(COMPILE_ARCHS), 10)
    # Every kernel and every dtype of the apply kernels for every GPU generation, and the
    # 64-bit index variants for the issue's GPU.
    kernels = set(KERNEL_NAMES) - (set() if triton_path._gather_available() else {"_mask_kernel"})
    for arch in compile_archs():
        labels = [label.split(" ", 1)[1] for label in results if label.startswith(f"sm_{arch} ")]
        assert {label.split()[0] for label in labels} == kernels, arch
        assert arch != FULL_COMPILE_ARCH or any("'INDEX_64': True" in label for label in labels)
        for pointer in ("*fp32", "*fp16", "*bf16", "*fp64"):
            assert any(label.startswith("_apply_flat_kernel") and pointer in label for label in labels), (arch, pointer)


@pytest.mark.parametrize("check", sorted(CHECKS))
def test_under_triton_interpreter(interpreter_results: Dict[str, Optional[str]], check: str) -> None:
    assert check in interpreter_results, f"{check} did not run in the interpreter subprocess"
    failure = interpreter_results[check]
    if failure is not None and failure.startswith(NOT_APPLICABLE):
        pytest.skip(failure)
    assert failure is None, f"{check} failed under TRITON_INTERPRET=1:\n{failure}"


@pytest.mark.cuda
@pytest.mark.parametrize("check", sorted(CHECKS))
def test_compiled_kernels_on_cuda(check: str) -> None:
    try:
        CHECKS[check]("cuda")
    except NotApplicable as reason:
        pytest.skip(NOT_APPLICABLE + str(reason))


@pytest.mark.cuda
@pytest.mark.parametrize("sparse_seeds, host_key", [(0, 0), (1, 0), (0, 1), (1, 1)])
def test_forward_and_backward_never_wait_for_the_gpu(sparse_seeds: int, host_key: int) -> None:
    # A host sync in the op (a .item(), a device-to-host copy) would stall the launch queue on
    # every call: the op must only queue work. torch's sync debug mode raises on any
    # synchronising ATen call; the Triton launches and the host's gamma are no such call.
    from dropblock_det.layers import DropBlock2d

    x = torch.randn(2, 8, 20, 24, device="cuda", requires_grad=True)
    residual = torch.randn_like(x, requires_grad=True)
    on_x = DropBlock2d(0.9, 3, impl="triton").train()
    calls = (lambda: on_x(x), lambda: on_x(x, relu=True), lambda: on_x(x, residual=residual),
             lambda: triton_path.drop_block_2d_triton(x, 0.002, 3, 3, True),
             lambda: triton_path.drop_block_2d_triton(x, 0.002, 3, 3, False, residual=residual,
                                                      residual_drop_block=(0.002, 3, 3)))
    with triton_path.launch_sizes("cuda", sparse_seeds=sparse_seeds, host_key=host_key):
        for call in calls:
            call().sum().backward()  # compiled and warm outside the check
            torch.cuda.synchronize()
            torch.cuda.set_sync_debug_mode("error")
            try:
                call().backward(torch.ones_like(x))
            finally:
                torch.cuda.set_sync_debug_mode("default")
    assert torch.isfinite(x.grad).all()


@pytest.mark.cuda
def test_the_driver_refusing_a_module_is_a_build_error() -> None:
    # impl="auto" falls back where the driver refuses a built module: the message it matches
    # is the driver's own (cuGetErrorString), which only a GPU shows. Garbage for a cubin
    # (read as an image, or as PTX) is what a broken build hands the driver.
    from triton.runtime import driver

    with pytest.raises(RuntimeError) as raised:
        driver.active.utils.load_binary("_not_a_kernel", b"not a cubin", 0, torch.cuda.current_device())
    assert triton_path.is_triton_build_error(raised.value), str(raised.value)


def test_triton_available_means_triton_and_cuda_or_interpreter() -> None:
    try:
        import triton  # noqa: F401
    except ImportError:
        importable = False
    else:
        importable = True
    interpreting = os.environ.get("TRITON_INTERPRET") == "1"
    assert triton_path.triton_available() == (importable and (torch.cuda.is_available() or interpreting))


@pytest.mark.skipif(triton_path.triton is None, reason="Triton not importable: never available")
@pytest.mark.parametrize("capability, supported", [((6, 1), False), ((7, 0), True), ((9, 0), True)])
def test_triton_available_on_a_gpu_needs_compute_capability_7(monkeypatch, capability, supported) -> None:
    from dropblock_det.layers import drop_block as drop_block_module

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: capability)
    gpu = torch.device("cuda", 0)
    assert triton_path.triton_available(gpu) is supported
    assert drop_block_module._triton_runs_on(gpu) is supported  # what impl="auto" asks
    monkeypatch.setenv("TRITON_INTERPRET", "0")
    assert not triton_path.triton_available(torch.device("cpu"))
    assert not drop_block_module._triton_runs_on(torch.device("cpu"))
    monkeypatch.setenv("TRITON_INTERPRET", "1")
    assert triton_path.triton_available(torch.device("cpu"))
    assert not drop_block_module._triton_runs_on(torch.device("cpu"))  # auto: CUDA only


@pytest.mark.parametrize(
    "args, named",
    [
        ((torch.ones(3, 8, 8), 0.1, 3, 3, False), "4-D"),
        ((torch.ones(1, 1, 8, 8, dtype=torch.int32), 0.1, 3, 3, False), "dtype"),
        ((torch.ones(1, 1, 8, 8), 0.1, 0, 3, False), "block_size_h"),
        ((torch.ones(1, 1, 8, 6), 0.1, 3, 7, False), "block_size_w"),
        ((torch.ones(1, 1, 8, 8), 0.1, 3.0, 3, False), "block_size_h"),
        ((torch.ones(1, 1, 8, 8), -0.1, 3, 3, False), "gamma"),
        ((torch.ones(1, 1, 8, 8), float("nan"), 3, 3, False), "gamma"),
        ((torch.ones(1, 1, 8, 8), 1.5, 3, 3, False), "gamma"),
        ((torch.ones(1, 1, 8, 8), 0.1, 3, 3, "yes"), "shared_mask"),
    ],
)
def test_bad_arguments_raise_value_error_naming_them(args, named: str) -> None:
    with pytest.raises(ValueError, match=named):
        triton_path.drop_block_2d_triton(*args)


@pytest.mark.parametrize(
    "kwargs, named",
    [
        (dict(residual_drop_block=(0.1, 3, 3)), "residual_drop_block needs a residual"),
        (dict(residual=torch.ones(1, 2, 8, 8), residual_drop_block=(0.1, 3)), "residual_drop_block must be"),
        (dict(residual=torch.ones(1, 2, 8, 8), residual_drop_block=0.1), "residual_drop_block must be"),
        (dict(residual=torch.ones(1, 2, 8, 8), residual_drop_block=(1.5, 3, 3)), "gamma"),
        (dict(residual=torch.ones(1, 2, 8, 8), residual_drop_block=(0.1, 9, 3)), "block_size_h"),
        (dict(residual=torch.ones(1, 2, 8, 8), relu=True), "relu=True"),
        (dict(residual=torch.ones(2, 2, 8, 8)), r"residual must have x's shape \(1, 2, 8, 8\), got \(2, 2, 8, 8\)"),
        (dict(residual=1.0), "residual must be a tensor, got float"),
        (dict(relu="yes"), "relu must be True or False"),
    ],
)
def test_bad_residual_arguments_raise_value_error_naming_them(monkeypatch, kwargs, named: str) -> None:
    monkeypatch.setattr(triton_path, "_interpreting", lambda: True)  # past the device check; nothing launches
    with pytest.raises(ValueError, match=named):
        triton_path.drop_block_2d_triton(torch.ones(1, 2, 8, 8), 0.1, 3, 3, False, **kwargs)


@pytest.mark.parametrize("shape", [(2, 3, 0, 5), (2, 3, 4, 0), (0, 3, 4, 5)])
def test_an_empty_map_passes_with_block_size_1(monkeypatch, shape) -> None:
    # A zero-size map has no block to clip to: block size 1 is its valid size, and the empty
    # tensor comes back unchanged (nothing launches), with its gradient.
    monkeypatch.setattr(triton_path, "_interpreting", lambda: True)
    x = torch.ones(shape, requires_grad=True)
    for kwargs in (dict(), dict(relu=True), dict(residual=torch.ones(shape))):
        out = triton_path.drop_block_2d_triton(x, 0.1, 1, 1, False, **kwargs)
        assert out.shape == shape and out.requires_grad, kwargs


@pytest.mark.parametrize(
    "device_type, changes, named",
    [("cuda", {"tile_rows": 4}, "tile_rows"), ("cuda", {"apply_block": 1000}, "apply_block"),
     ("cuda", {"mask_warps": 0}, "mask_warps"), ("cuda", {"tile_units": True}, "tile_units"),
     # A bool is not a size, also where True (1) would pass every other rule.
     ("cuda", {"apply_warps": True}, r"apply_warps must be a power of two >= 1, got True"),
     ("cuda", {"mask_kernels": 4}, "mask_kernels"), ("cuda", {"keep_bits": 2}, "keep_bits"),
     ("cuda", {"sparse_seeds": 4}, "sparse_seeds"), ("cuda", {"sparse_seeds": True}, "sparse_seeds"),
     ("cuda", {"seed_block": 100}, "seed_block"), ("cuda", {"host_key": 2}, "host_key"),
     ("cuda", {"host_key": True}, "host_key"),
     ("cuda", {"seed_block": 16}, r"seed_block must be at least 32 \(a warp's lanes\), got 16"),
     # Accepted before, then the kernels failed to build (a Triton error naming no launch size).
     ("cuda", {"tile_units": 16, "keep_bits": 1}, r"tile_units must be at least 32 \(a warp's lanes\), got 16"),
     ("cpu", {"apply_block": 4}, r"apply_block must be at least 8 \(the elements of one mask byte\), got 4"),
     ("xpu", {"apply_block": 512}, "device_type")],
)
def test_launch_sizes_refuses_bad_changes_by_name(device_type: str, changes, named: str) -> None:
    before = triton_path._GPU_SIZES, triton_path._INTERPRETER_SIZES
    with pytest.raises(ValueError, match=named):
        with triton_path.launch_sizes(device_type, **changes):
            pass
    assert (triton_path._GPU_SIZES, triton_path._INTERPRETER_SIZES) == before


@pytest.mark.skipif(triton_path.triton is None, reason="Triton not importable (CPU-only torch build)")
def test_a_triton_without_gather_is_refused_the_kernels_that_need_it_by_name(monkeypatch) -> None:
    # Triton < 3.3 (torch < 2.7) has no tl.gather: only separate seed and dilation kernels
    # writing a keep map build there (the import-time defaults switch to them).
    assert triton_path._gather_available() and triton_path._GPU_SIZES.mask_kernels == 1
    monkeypatch.setattr(triton_path, "tl", types.SimpleNamespace())
    for name in ("mask_kernels", "keep_bits"):
        with pytest.raises(ValueError, match=rf"{name}=1 needs tl.gather"):
            triton_path.check_launch_sizes({name: 1})
    triton_path.check_launch_sizes({"mask_kernels": 2, "keep_bits": 8})


def test_each_triton_gets_the_mask_kernels_it_builds_well() -> None:
    # Without tl.gather (Triton < 3.3) the separate kernels everywhere; Triton 3.3 compiles the
    # fused one to 255 registers with a stack on sm_90, so on GPU the separate ones there too.
    sizes = triton_path._LaunchSizes(tile_units=512, apply_block=1024, pack_block_bytes=256)
    assert sizes.mask_kernels == 1
    for version, gather, on_gpu, interpreted in (("3.2.0", False, 2, 2), ("3.3.1", True, 2, 1), ("3.4.0", True, 1, 1),
                                                 ("3.8.0", True, 1, 1)):
        assert triton_path._sizes_for_triton(sizes, version, gather, gpu=True).mask_kernels == on_gpu, version
        assert triton_path._sizes_for_triton(sizes, version, gather, gpu=False).mask_kernels == interpreted, version
        assert triton_path._sizes_for_triton(sizes, version, gather, gpu=True)._replace(mask_kernels=1) == sizes


@pytest.mark.skipif(triton_path.triton is None, reason="Triton not importable (CPU-only torch build)")
def test_no_kernel_but_the_gather_helper_names_tl_gather() -> None:
    # Triton < 3.3 has no tl.gather, and a kernel's cache key resolves every name in the source
    # of each helper it calls, pruned branches too: one mention outside `_gather` (defined
    # per Triton) fails kernels that never gather there (`_dilate_kernel` did, Triton 3.2).
    naming = sorted(name for name, value in vars(triton_path).items()
                    if isinstance(value, triton_path.triton.runtime.JITFunction)
                    and "tl.gather" in inspect.getsource(value.fn))
    assert naming == ["_gather"]


def test_parse_launch_sizes_reads_a_benchmark_command_line_names_a_bad_entry_and_reads_its_description() -> None:
    assert triton_path.parse_launch_sizes("defaults") == {}
    assert triton_path.parse_launch_sizes("keep_bits=1, tile_units=256") == {"keep_bits": 1, "tile_units": 256}
    for changes in ({}, {"keep_bits": 1, "tile_units": 256}):  # the description reads back
        assert triton_path.parse_launch_sizes(triton_path.describe_launch_sizes(changes)) == changes
    for text, named in (("keep_bits=2", "keep_bits"), ("tile_units", "tile_units"), ("", "''"),
                        ("apply_block=-8", "apply_block")):
        with pytest.raises(ValueError, match=named):
            triton_path.parse_launch_sizes(text)


def test_launch_sizes_applies_to_one_device_type_and_is_restored_after_an_error() -> None:
    before = triton_path._GPU_SIZES, triton_path._INTERPRETER_SIZES
    with pytest.raises(RuntimeError, match="inside"):
        with triton_path.launch_sizes("cuda", apply_block=4096, mask_warps=8) as sizes:
            assert sizes.apply_block == 4096 and sizes.mask_warps == 8
            assert triton_path._launch_sizes(torch.device("cuda")) == sizes
            assert triton_path._launch_sizes(torch.device("cpu")) == before[1]
            raise RuntimeError("inside")
    assert (triton_path._GPU_SIZES, triton_path._INTERPRETER_SIZES) == before


def test_host_philox_key_is_splitmix64_of_seed_and_offset_with_bit_62_set() -> None:
    # SplitMix64 (Steele, Lea, Flood, OOPSLA'14) from seed 0 outputs 0xE220A8397B1DCDAF first:
    # the finaliser of 0x9E3779B97F4A7C15, which is host_philox_key's input for seed 1, offset 0.
    assert triton_path.host_philox_key(1, 0) == 2**62 | (0xE220A8397B1DCDAF >> 2)
    keys = [triton_path.host_philox_key(seed, offset) for seed in (0, 1, 2**63 + 5) for offset in range(0, 4000, 4)]
    assert len(set(keys)) == len(keys)
    assert all(2**62 <= key < 2**63 for key in keys)  # always an int64 above 2**31: one kernel type


def test_a_host_key_on_cuda_reads_and_advances_the_generator_and_draws_on_the_device_while_capturing(monkeypatch):
    # `_draw_philox_key`'s CUDA branch with a stand-in generator (no GPU here): the key is
    # host_philox_key(seed, offset), the offset moves on by 4 and nothing is launched; while
    # a graph is captured, torch.randint draws it on the device (then a graph input).
    class Generator:
        offset = 8

        def initial_seed(self) -> int:
            return 1234

        def get_offset(self) -> int:
            return self.offset

        def set_offset(self, offset: int) -> None:
            self.offset = offset

    generator, randint_calls, capturing = Generator(), [], [False]
    monkeypatch.setattr(torch.cuda, "default_generators", (None, generator), raising=False)
    monkeypatch.setattr(torch.cuda, "is_current_stream_capturing", lambda: capturing[0])
    monkeypatch.setattr(torch, "randint", lambda *args, **kwargs: randint_calls.append(kwargs) or torch.zeros(1))
    sizes = triton_path._GPU_SIZES._replace(host_key=1)
    key = triton_path._draw_philox_key(torch.device("cuda", 1), sizes)
    assert key.on_host and key.value == triton_path.host_philox_key(1234, 8) and generator.offset == 12
    assert key.arguments(torch.zeros(1, dtype=torch.int64))[1] == key.value and not randint_calls
    capturing[0] = True
    key = triton_path._draw_philox_key(torch.device("cuda", 1), sizes)
    assert not key.on_host and generator.offset == 12 and randint_calls[-1]["device"] == torch.device("cuda", 1)
    key = triton_path._draw_philox_key(torch.device("cuda", 1), sizes._replace(host_key=0))
    assert not key.on_host and len(randint_calls) == 2


@pytest.mark.skipif(triton_path.triton is None, reason="Triton not importable (CPU-only torch build)")
def test_a_sparse_per_channel_forward_is_a_fill_and_two_kernels_and_its_backward_one(monkeypatch):
    # The host's time per call grows with its launches: the sparse draw fills the bit words
    # once and one kernel clears the blocks and counts what is kept (no pass over the words),
    # then one apply pass; backward is one pass. Recorded on meta tensors, nothing computed.
    with _recording_gpu_launches() as calls:
        for fill in ("full", "zeros", "randint"):  # the ATen calls that launch work on a GPU
            real = getattr(torch, fill)
            monkeypatch.setattr(torch, fill, lambda *a, _real=real, _name=fill, **k: calls.append(
                (_name, (), a, k)) or _real(*a, **k))
        x = torch.empty((2, 8, 20, 24), device="meta", requires_grad=True)
        out = triton_path.drop_block_2d_triton(x, 0.002, 7, 7, False)
        forward = [name for name, *_ in calls]
        del calls[:]
        out.backward(torch.empty_like(out))
        backward = [name for name, *_ in calls]
    assert forward == ["randint", "full", "_sparse_seed_kernel", "_apply_flat_kernel"], forward
    assert backward == ["_apply_flat_kernel"], backward


@pytest.mark.skipif(triton_path.triton is None, reason="Triton not importable (CPU-only torch build)")
@pytest.mark.parametrize("residual_drop_block", [None, (0.002, 7, 7)])
def test_a_fused_residual_backward_computes_and_allocates_only_the_wanted_gradients(monkeypatch, residual_drop_block):
    # One backward kernel, told which sides autograd wants; an unwanted side's gradient is
    # neither allocated nor stored (its pointer is the output's, never written). Recorded on
    # meta tensors, nothing computed.
    for wants_x, wants_residual in ((True, True), (True, False), (False, True)):
        with _recording_gpu_launches() as calls:
            x = torch.empty((2, 8, 20, 24), device="meta", requires_grad=wants_x)
            residual = torch.empty_like(x).requires_grad_(wants_residual)
            out = triton_path.drop_block_2d_triton(x, 0.002, 7, 7, False, residual=residual,
                                                   residual_drop_block=residual_drop_block)
            grad = torch.empty_like(out)
            del calls[:]
            allocated = []
            with monkeypatch.context() as patch:
                real = torch.empty_like
                patch.setattr(torch, "empty_like", lambda *a, **k: allocated.append(a[0].shape) or real(*a, **k))
                out.backward(grad)
        where = f"wanted (x, residual)=({wants_x}, {wants_residual})"
        (name, _, args, constexprs), = calls
        assert name == "_residual_grad_kernel", where
        assert len(allocated) == wants_x + wants_residual, (where, allocated)
        assert (constexprs.get("GRAD_X"), constexprs.get("GRAD_RESIDUAL")) == (wants_x, wants_residual), where
        grad_x_ptr, grad_residual_ptr = args[6:8]
        assert (grad_x_ptr is args[1]) is not wants_x and (grad_residual_ptr is args[1]) is not wants_residual, where
        assert (x.grad is not None) is wants_x and (residual.grad is not None) is wants_residual, where


@pytest.mark.skipif(triton_path.triton is None, reason="Triton not importable (CPU-only torch build)")
def test_a_host_key_and_a_device_key_launch_the_same_compiled_kernels() -> None:
    # A CUDA graph captured after eager host_key=1 calls draws its key on the device: were
    # that another specialisation (a constexpr key source, an int32 placeholder), the capture
    # would compile and load a module, which is not allowed while a stream is captured.
    # Pointers count by their alignment: the sparse draw's host key passes a placeholder of
    # its own buffer, which must be as aligned as randint's fresh tensor whatever the number of
    # words (the res5 shared mask, 16 * 25 * 34 units, has 425: an odd number of int64s).
    launched = {}
    for host_key in (0, 1):
        with _recording_gpu_launches() as calls:
            for shape, shared in (((2, 8, 20, 24), False), ((16, 2048, 25, 34), True), ((1, 3, 5, 7), False)):
                x = torch.empty(shape, device="meta", requires_grad=True)
                for mask_kernels, sparse_seeds in ((1, 0), (2, 0), (1, 1)):
                    with triton_path.launch_sizes("cuda", host_key=host_key, mask_kernels=mask_kernels,
                                                  sparse_seeds=sparse_seeds):
                        triton_path.drop_block_2d_triton(x, 0.002, 3, 3, shared)
        launched[host_key] = calls
    kernels = {name for calls in launched.values() for name, *_ in calls}
    assert {"_mask_kernel", "_seed_kernel", "_sparse_seed_kernel"} <= kernels
    odd = [args for name, _, args, _ in launched[1] if name == "_sparse_seed_kernel" and -(-args[4] // 2) % 2]
    assert odd, "no sparse draw with an odd number of int64 words of bits"

    def specialisations(calls):
        found = []
        for name, _, args, constexprs in calls:
            constexprs = dict(constexprs)
            signature, attrs = _launch_signature(getattr(triton_path, name), args, constexprs)
            found.append((name, signature, sorted(attrs), sorted(constexprs.items())))
        return found

    assert specialisations(launched[1]) == specialisations(launched[0])


def test_the_sign_of_zero_is_measured_once_and_not_read_while_a_graph_is_captured(monkeypatch) -> None:
    # Measuring torch.relu(-0.0) reads a value on the host, which a CUDA graph capture does
    # not allow: the first fused call inside a capture takes CUDA's answer and stores nothing.
    monkeypatch.setattr(triton_path, "_RELU_MODES", {})
    monkeypatch.setattr(torch.cuda, "is_current_stream_capturing", lambda: True)
    assert triton_path._relu_mode(torch.device("cuda", 0), torch.float16) == 2 and not triton_path._RELU_MODES
    assert triton_path._relu_mode(torch.device("cpu"), torch.float32) == 1  # CPU: -0.0, measured
    assert triton_path._RELU_MODES == {(torch.device("cpu"), torch.float32): 1}


@pytest.mark.skipif(triton_path.triton is None, reason="Triton not importable (CPU-only torch build)")
def test_the_sparse_kernel_never_runs_more_threads_than_lanes() -> None:
    # Threads holding copies of a lane would count the words their atomics return as 0 on
    # Triton <= 3.4 (triton-lang/triton#7402): warps are capped at seed_block / 32.
    for seed_block, mask_warps, expected in ((32, 8, 1), (64, 4, 2), (128, 4, 4), (256, 2, 2)):
        with _recording_gpu_launches() as calls:
            x = torch.empty((2, 8, 20, 24), device="meta", requires_grad=True)
            with triton_path.launch_sizes("cuda", seed_block=seed_block, mask_warps=mask_warps, sparse_seeds=2):
                triton_path.drop_block_2d_triton(x, 0.002, 7, 7, False)
        (launch,) = [constexprs for name, _, _, constexprs in calls if name == "_sparse_seed_kernel"]
        assert (launch["BLOCK"], launch["num_warps"]) == (seed_block, expected)


def _compiled_kernel_count() -> int:
    """How many compiled kernels the GPU path's JIT functions hold (Triton keeps them
    in `device_caches`: skipped on a Triton without them)."""
    kernels = [getattr(triton_path, name) for name in KERNEL_NAMES]
    if not all(hasattr(kernel, "device_caches") for kernel in kernels):
        pytest.skip(f"Triton {triton_path.triton.__version__} keeps no device_caches to count")
    return sum(len(caches[0]) for kernel in kernels for caches in kernel.device_caches.values())


@pytest.mark.cuda
@pytest.mark.parametrize("shape, shared, gamma", [
    ((2, 4, 16, 16), False, 0.05),  # the dense draw
    ((16, 8, 25, 34), True, 0.002),  # sparse, the res5 shared mask: 425 words, an odd number of int64s
])
def test_a_host_key_under_cuda_graph_capture_falls_back_to_the_device_draw_and_each_replay_draws_anew(
        shape, shared: bool, gamma: float) -> None:
    # Captured, a host key would be a constant: every replay would drop the same blocks.
    # Warmed up eagerly with host keys, as a user of host_key=1 does: the capture's device
    # key must run in the kernels those calls compiled (a module load is not allowed while
    # a stream is captured), which a constexpr key source, or a placeholder key pointer
    # aligned otherwise than randint's tensor, would not.
    x = _positive_input(shape, device="cuda")
    with triton_path.launch_sizes("cuda", host_key=1) as sizes:
        triton_path.drop_block_2d_triton(x, gamma, 3, 3, shared)
        torch.cuda.synchronize()
        compiled = _compiled_kernel_count()
        stream = torch.cuda.Stream()
        stream.wait_stream(torch.cuda.current_stream())
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.stream(stream), torch.cuda.graph(graph, stream=stream):
            key = triton_path._draw_philox_key(x.device, sizes)
            out = triton_path.drop_block_2d_triton(x, gamma, 3, 3, shared)
    assert not key.on_host
    assert _compiled_kernel_count() == compiled, "a kernel was compiled while the graph was captured"
    masks = []
    for _ in range(2):
        graph.replay()
        torch.cuda.synchronize()
        masks.append(_dropped(out).clone())
    assert masks[0].any() and not torch.equal(*masks)


def test_sparse_seeds_are_drawn_below_the_max_gamma_unless_turned_off_and_chunks_follow_gamma() -> None:
    sizes = triton_path._GPU_SIZES
    assert sizes.sparse_seeds == 1 and 0.002 < triton_path._SPARSE_MAX_GAMMA < 0.1
    for gamma, sparse_seeds, expected in ((0.0025, 1, True), (triton_path._SPARSE_MAX_GAMMA, 1, True),
                                          (0.05, 1, False), (0.0025, 0, False), (0.05, 2, True), (0.9, 2, True),
                                          (0.0, 2, False), (1.0, 2, False)):  # nothing to draw; every anchor
        assert triton_path._draws_sparsely(gamma, sizes._replace(sparse_seeds=sparse_seeds)) is expected, (
            gamma, sparse_seeds)
    # About one seed per chunk: the paper's gamma at keep_prob 0.9, block 7 (~0.0025) -> 512.
    for gamma, chunk in ((0.0025, 512), (0.01, 128), (0.9, 16), (1e-9, 2**20), (1 / 64, 64)):
        assert triton_path._seed_chunk(gamma) == chunk, gamma


@pytest.mark.skipif(triton_path.triton is None, reason="Triton not importable: a different error applies")
def test_cpu_tensor_without_interpreter_is_refused_with_a_pointer_to_impl_torch(monkeypatch) -> None:
    monkeypatch.setenv("TRITON_INTERPRET", "0")
    with pytest.raises(ValueError, match="impl='torch'"):
        triton_path.drop_block_2d_triton(torch.ones(1, 1, 8, 8), 0.1, 3, 3, False)


# --- coverage audit 55 ---
def test_drop_block_2d_triton_names_a_non_tensor_a_non_numeric_gamma_and_a_missing_triton(monkeypatch):
    # Checked before any launch: Triton's own errors for these name no argument.
    x = torch.zeros(1, 1, 4, 4)
    with pytest.raises(ValueError, match=r"^x must be a torch\.Tensor, got list$"):
        triton_path.drop_block_2d_triton([[0.0]], 0.1, 1, 1, True)
    with pytest.raises(ValueError, match=r"^gamma must be a number in \[0, 1\], got '0\.1'$"):
        triton_path.drop_block_2d_triton(x, "0.1", 1, 1, True)
    monkeypatch.setattr(triton_path, "triton", None)
    with pytest.raises(RuntimeError, match=r"needs Triton, which is not importable here; use impl='torch'"):
        triton_path.drop_block_2d_triton(x, 0.1, 1, 1, True)


# --- mutation 58T ---
def check_a_gradient_stored_at_an_offset_gets_the_kernels_gradients_from_torch_ops(device: str) -> None:
    # An incoming gradient may be a dense view that starts past its storage's first element
    # (a slice of a larger gradient, as from torch.cat's backward); the layout leaves it as it
    # is. After a backward build error the torch ops must read it from its own start, as the
    # kernels do (data_ptr), not from the storage's: plain (per-channel and shared), ReLU,
    # residual and pair.
    shape = (2, 4, 6, 12)
    for fused, shared, channels_last in (("plain", False, False), ("plain", True, True), ("relu", False, True),
                                         ("residual", False, False), ("pair", False, True)):
        where = f"{fused}, shared={shared}, channels_last={channels_last}"
        x = _relu_test_input(shape, torch.float32, device, channels_last)
        residual = None if fused in ("plain", "relu") else _relu_test_input(shape, torch.float32, device, channels_last)
        torch.manual_seed(11)
        whole = torch.randn((shape[0] + 1, *shape[1:]), device=device)
        whole = whole.contiguous(memory_format=torch.channels_last) if channels_last else whole
        grad = whole[1:]  # dense in x's layout, one sample into its storage
        assert grad.storage_offset() > 0 and grad.is_contiguous(
            memory_format=torch.channels_last if channels_last else torch.contiguous_format)
        kernels = _gradients_with_backward_kernels(x, residual, grad, shared, fused, buildable=True)
        torch_ops = _gradients_with_backward_kernels(x, residual, grad, shared, fused, buildable=False,
                                                     handler=lambda d, e: None)
        assert len(torch_ops[3]) == 1, (where, torch_ops[3])
        for name, ours, theirs in (("x", torch_ops[1], kernels[1]), ("residual", torch_ops[2], kernels[2])):
            if theirs is not None:
                assert (theirs != 0).any(), f"{where}: grad of {name} all zero"
                assert torch.equal(ours, theirs), f"{where}: grad of {name}: {_count_differing(ours, theirs)}"



if triton_path.triton is not None:
    tl = triton_path.tl
    _log_unit = triton_path._log_unit

    @triton_path.triton.jit
    def _log_unit_kernel(u_ptr, out_ptr, n, BLOCK: tl.constexpr):
        i = tl.arange(0, BLOCK)
        ok = i < n
        tl.store(out_ptr + i, _log_unit(tl.load(u_ptr + i, mask=ok, other=1.0)), mask=ok)


def check_the_sparse_draws_log_is_within_a_few_ulp_of_ln_u(device: str) -> None:
    # `_log_unit` is the geometric gaps' ln u: its error bounds how far each gap's
    # probability is off (the docstring's ~1e-13 of itself). Within 4 ulp of math.log over
    # (0, 1]: the ends, powers of two, each side of the range reduction's sqrt(1/2) and
    # sqrt(2), and u near 1, where ln u is tiny and an absolute error of the series is a large
    # relative one.
    values = [2.0**-53, 2.0**-30, 0.25, 0.5, 1.0, 1.0 - 2.0**-53, 1.0 - 2.0**-40, 0.999, 0.99, 0.9, 0.75,
              math.sqrt(0.5), math.nextafter(math.sqrt(0.5), 0), math.nextafter(math.sqrt(0.5), 1),
              math.sqrt(0.5) * 0.5, 0.5 + 2.0**-40, 0.6, 0.3, 1e-5, 0.123456789]
    generator = torch.Generator().manual_seed(13)
    values += ((torch.randint(1, 2**53, (400,), generator=generator, dtype=torch.int64).double() * 2.0**-53)
               ** torch.rand(400, generator=generator, dtype=torch.float64).mul(4)).tolist()
    u = torch.tensor(values, dtype=torch.float64, device=device)
    out = torch.empty_like(u)
    _log_unit_kernel[(1,)](u, out, u.numel(), BLOCK=triton_path._next_power_of_2(u.numel()))
    for value, ours in zip(values, out.tolist()):
        exact = math.log(value)
        ulp = math.ulp(exact) if exact else 2.0**-1074
        assert abs(ours - exact) <= 4 * ulp, f"ln({value!r}) = {ours!r}, math.log {exact!r}: {abs(ours - exact) / ulp:.1f} ulp"


@pytest.mark.skipif(triton_path.triton is None, reason="Triton not importable (CPU-only torch build)")
def test_the_sparse_kernel_gets_ln_1_minus_gamma_within_an_ulp_at_small_gammas() -> None:
    # The gaps' probabilities are exact to ~1e-13 of themselves only if ln(1 - gamma) is:
    # log(1 - gamma) loses ~1e-16 / gamma of it (1e-9 at gamma 1e-7, a keep_prob ramp's
    # start). Against a 40-digit ln.
    import decimal

    for gamma in (1e-7, 3e-5, 0.0025, 1 / 64):
        with _recording_gpu_launches() as calls:
            triton_path.drop_block_2d_triton(torch.empty((1, 2, 20, 20), device="meta"), gamma, 3, 3, False)
        (_, _, args, constexprs), = [call for call in calls if call[0] == "_sparse_seed_kernel"]
        bits = _runtime_arguments(triton_path._sparse_seed_kernel, args, constexprs)["log_q_bits"]
        log_q = struct.unpack("<d", struct.pack("<q", bits))[0]
        with decimal.localcontext() as context:
            context.prec = 40
            exact = float((1 - decimal.Decimal(gamma)).ln())
        assert abs(log_q - exact) <= math.ulp(exact), (gamma, log_q, exact)


def check_bfloat16_results_round_ties_to_even_as_torch_does(device: str) -> None:
    # A kept bf16 unit times the scale is a tie between two bf16 values once in ~2**16 units:
    # too rare for the checks above to meet. Here the scale is 7 / 6 (6 units kept per 7: the
    # count is set, the bits keep all) and x = m * 2**e for 8-bit m whose products with it
    # are ties between an odd bf16 value and the even one above: the kernels must round each
    # up to even, as torch's conversion does (each of the three apply kernels).
    for shared, channels_last in ((False, False), (True, False), (True, True)):
        torch.manual_seed(19)
        shape = (1, 3, 2, 7)
        m = torch.tensor([135.0, 147.0, 159.0, 171.0, 183.0, 222.0, 246.0], device=device)
        x = m[torch.randint(0, 7, shape, device=device)] * 2.0 ** torch.randint(-20, 20, shape, device=device)
        x = (x * (torch.randint(0, 2, shape, device=device) * 2 - 1)).to(torch.bfloat16)
        x = x.contiguous(memory_format=torch.channels_last) if channels_last else x
        layout = triton_path._Layout(x, shared)
        bits = torch.full(((layout.mask_numel + 7) // 8,), 255, dtype=torch.uint8, device=device)
        total_kept = torch.tensor([layout.mask_numel // 7 * 6], dtype=torch.int64, device=device)
        scale = torch.tensor(float(layout.mask_numel), device=device) / (total_kept.float() + NORMALIZER_EPS)
        product = x.float() * scale
        low = product.view(torch.int32) & 0x1FFFF
        where = f"shared={shared}, channels_last={channels_last}"
        assert (low == 0x18000).sum() > 3, f"{where}: too few ties to an even value above"  # odd below, tie
        out = triton_path._apply(x, layout, bits, total_kept, saturate=True)
        expected = product.to(torch.bfloat16)
        assert torch.equal(out, expected), f"{where}: {_count_differing(out, expected)}"


def check_shared_mask_on_channels_last_x_of_6_channels(device: str) -> None:
    # `_apply_pixels_kernel`'s channel tile is a power of two (a Triton block shape) that
    # covers C up to 64: 6 channels (not a power of two; the check above has 80, 3 and 4).
    _check_shared_mask_on_channels_last_x(device, 6, seed=22)


@pytest.mark.skipif(triton_path.triton is None, reason="Triton not importable (CPU-only torch build)")
def test_the_residual_kernels_are_launched_without_fused_multiply_adds() -> None:
    # r + x * scale contracted into one FMA rounds once where the separate ops round twice
    # (1 ulp off on a GPU); the interpreter ignores the option, and the compile checks look
    # for FMAs only in kernels launched with it off: every launch must turn it off.
    calls = _record_launches_on_meta((2, 8, 12, 16), False, 1)
    residual = [constexprs for name, constexprs in calls if name in ("_apply_residual_kernel", "_residual_grad_kernel")]
    assert residual and all(constexprs.get("enable_fp_fusion") is False for constexprs in residual), residual


@pytest.mark.skipif(triton_path.triton is None, reason="Triton not importable (CPU-only torch build)")
def test_a_backward_error_of_a_kernels_run_is_raised_not_handed_to_the_torch_ops(monkeypatch) -> None:
    # An illegal address or out of memory is not a build error: with a handler (impl="auto")
    # it is still raised, and the handler is not called (a fallback would hide a broken
    # context). Meta tensors take forward through the launch logic (`_recording_gpu_launches`).
    for message in ("an illegal memory access was encountered", "out of memory"):
        error = RuntimeError(triton_path._CUDA_ERROR + message)
        assert not triton_path.is_triton_build_error(error), message
        handled: List[BaseException] = []
        with _recording_gpu_launches():
            x = torch.empty((1, 2, 8, 8), device="meta", requires_grad=True)
            out = triton_path.drop_block_2d_triton(x, 0.1, 3, 3, False, on_backward_build_error=lambda d, e: handled.append(e))

            def fails(*args, **kwargs):
                raise error

            monkeypatch.setattr(triton_path, "_apply_grad", fails)
            with pytest.raises(RuntimeError, match=message):
                out.backward(torch.empty_like(out))
        assert handled == [], message
    assert triton_path.is_triton_build_error(RuntimeError(triton_path._CUDA_ERROR + "device kernel image is invalid"))

# The checks of this block run in the interpreter subprocess too (its entry point below comes
# after every check) and on CUDA: registered here, asserted by the two tests below (the
# parametrized tests above were collected from CHECKS before this block).
_CHECKS_58T = {name[len("check_"):]: fn for name, fn in sorted(globals().items())
               if name.startswith("check_") and callable(fn) and name[len("check_"):] not in CHECKS}
CHECKS.update(_CHECKS_58T)


@pytest.mark.parametrize("check", sorted(_CHECKS_58T))
def test_under_triton_interpreter_mutation_58t(interpreter_results: Dict[str, Optional[str]], check: str) -> None:
    test_under_triton_interpreter(interpreter_results, check)


@pytest.mark.cuda
@pytest.mark.parametrize("check", sorted(_CHECKS_58T))
def test_compiled_kernels_on_cuda_mutation_58t(check: str) -> None:
    test_compiled_kernels_on_cuda(check)


# --- mutation 58R ---
def test_parse_launch_sizes_reads_defaults_with_the_spaces_a_command_line_leaves_around_it() -> None:
    # bench_dropblock's variants split at ';': "tile_units=512; defaults" hands " defaults" over,
    # the defaults (spaces are read around entries too), not an entry without '='.
    for text in (" defaults", "defaults\n", " defaults "):
        assert triton_path.parse_launch_sizes(text) == {}, repr(text)


if __name__ == "__main__":
    interpreting = os.environ.get("TRITON_INTERPRET") == "1"
    if sys.argv[1:] == ["--interpreter-checks"] and interpreting:
        torch.set_num_threads(1)
        with _boolean_masks_only():
            print(RESULT_MARKER + json.dumps(_run_checks("cpu")), flush=True)
    elif sys.argv[1:] == ["--compile-checks"] and not interpreting:
        print(RESULT_MARKER + json.dumps(compile_kernels_without_a_gpu()), flush=True)
    else:
        sys.exit(
            "usage: TRITON_INTERPRET=1 python tests/layers/test_drop_block_triton.py --interpreter-checks\n"
            "       python tests/layers/test_drop_block_triton.py --compile-checks  (TRITON_INTERPRET unset)"
        )
