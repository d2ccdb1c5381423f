"""The partial convolution layer (course_lib.partial_conv), against the facts of the paper,
a slow loop reference, and the pitfalls of its ports."""

import copy

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from course_lib import masks
from course_lib.partial_conv import PartialConv2d


def partial_conv_reference(
    x: torch.Tensor,
    valid: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None,
    stride: int,
    padding: int,
    dilation: int,
    multi_channel: bool,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The partial convolution written out: a Python loop over output positions, one window
    at a time, exactly as the formula reads (slow: small sizes only).

    ``valid`` is ``(B, 1, H, W)`` or, with ``multi_channel``, ``(B, C_in, H, W)``. Returns
    ``y`` ``(B, C_out, H', W')`` and the updated mask ``(B, 1, H', W')`` (one channel: it is
    the same for every output channel).
    """
    batch, _, height, width = x.shape
    out_channels, _, kernel, _ = weight.shape
    x = F.pad(x, (padding,) * 4)  # zero padding: the border is not valid
    valid = F.pad(valid, (padding,) * 4)
    reach = dilation * (kernel - 1) + 1  # rows (and columns) one window spans
    out_height = (height + 2 * padding - reach) // stride + 1
    out_width = (width + 2 * padding - reach) // stride + 1
    window = valid.shape[1] * kernel * kernel  # sum(1): C_in*k*k or k*k
    y = torch.zeros(batch, out_channels, out_height, out_width, dtype=x.dtype)
    new_valid = torch.zeros(batch, 1, out_height, out_width)
    for b in range(batch):
        for i in range(out_height):
            for j in range(out_width):
                rows = slice(i * stride, i * stride + reach, dilation)
                cols = slice(j * stride, j * stride + reach, dilation)
                patch = x[b, :, rows, cols]  # (C_in, k, k)
                mask = valid[b, :, rows, cols]  # (1 or C_in, k, k)
                seen = mask.sum()  # sum(M)
                if seen > 0:
                    total = (weight * (patch * mask)).sum(dim=(1, 2, 3))  # W^T (X ⊙ M): (C_out,)
                    y[b, :, i, j] = total * window / seen + (0 if bias is None else bias)
                    new_valid[b, 0, i, j] = 1
    return y, new_valid


def random_valid(batch: int, channels: int, height: int, width: int, seed: int = 0) -> torch.Tensor:
    """A (B, C, H, W) valid mask (1 = valid) with scattered holes and one large hole, so that
    some windows see no valid pixel at all."""
    generator = torch.Generator().manual_seed(seed)
    valid = (torch.rand(batch, channels, height, width, generator=generator) > 0.4).float()
    valid[:, :, height // 4 : height // 4 + 5, width // 4 : width // 4 + 6] = 0
    return valid


def layer_and_input(
    in_channels: int = 3, out_channels: int = 4, kernel: int = 3, seed: int = 0, **options
) -> tuple[PartialConv2d, torch.Tensor]:
    """A seeded layer with a non-zero bias and a random input (2, in_channels, 9, 11)."""
    torch.manual_seed(seed)
    layer = PartialConv2d(in_channels, out_channels, kernel, **options)
    with torch.no_grad():
        if layer.bias is not None:
            layer.bias.uniform_(0.5, 1.0)  # visibly non-zero: hole outputs must stay 0
    return layer, torch.randn(2, in_channels, 9, 11)


# ---------------------------------------------------------------------------------------------
# The formula
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("multi_channel", [False, True])
@pytest.mark.parametrize("padding", [0, 1])
def test_all_ones_mask_is_a_plain_convolution(multi_channel: bool, padding: int) -> None:
    """With nothing missing, the ratio is 1 wherever the window lies inside the image: the
    layer is nn.Conv2d there (dividing by sum(M) only would give 1/9 of it, and forgetting
    C_in in a multi-channel window 1/C_in)."""
    layer, x = layer_and_input(padding=padding, multi_channel=multi_channel)
    conv = nn.Conv2d(3, 4, 3, padding=padding)
    conv.load_state_dict(layer.state_dict())
    valid = torch.ones(2, 3 if multi_channel else 1, 9, 11)
    y, new_valid = layer(x, valid)
    expected = conv(x)
    inside = (slice(None), slice(None), slice(padding, 9 - padding), slice(padding, 11 - padding))
    torch.testing.assert_close(y[inside], expected[inside])
    if padding == 0:
        torch.testing.assert_close(y, expected)
    assert new_valid.shape == (2, 4 if multi_channel else 1, *expected.shape[2:])
    assert bool((new_valid == 1).all())


@pytest.mark.parametrize("in_channels, multi_channel", [(1, False), (2, True)])
def test_padding_ratios(in_channels: int, multi_channel: bool) -> None:
    """All-ones mask, zero padding 1, 3x3 kernel, constant input, zero bias: against a plain
    convolution the output is 1x inside, 1.5x on the edges and 2.25x at the corners."""
    layer = PartialConv2d(in_channels, 1, 3, padding=1, bias=False, multi_channel=multi_channel)
    conv = nn.Conv2d(in_channels, 1, 3, padding=1, bias=False)
    with torch.no_grad():
        layer.weight.fill_(1.0)
        conv.weight.fill_(1.0)
    x = torch.full((1, in_channels, 6, 7), 0.5)
    valid = torch.ones(1, in_channels if multi_channel else 1, 6, 7)
    ratio = (layer(x, valid)[0] / conv(x))[0, 0]  # (6, 7)
    expected = torch.ones(6, 7)
    expected[0, :] = expected[-1, :] = expected[:, 0] = expected[:, -1] = 1.5
    expected[0, 0] = expected[0, -1] = expected[-1, 0] = expected[-1, -1] = 2.25
    torch.testing.assert_close(ratio, expected)


@pytest.mark.parametrize("multi_channel", [False, True])
def test_exactly_zero_where_the_window_saw_no_valid_pixel(multi_channel: bool) -> None:
    """Outputs whose window holds only holes are exactly 0 (the bias is not added there) and
    the updated mask marks exactly the windows that saw a valid pixel."""
    layer, x = layer_and_input(padding=1, multi_channel=multi_channel)
    valid = random_valid(2, 3 if multi_channel else 1, 9, 11)
    y, new_valid = layer(x, valid)
    # A window saw a valid pixel iff the 3x3 maximum of the mask (over channels too) is 1.
    saw_valid = F.max_pool2d(valid.amax(dim=1, keepdim=True), 3, stride=1, padding=1)
    assert (saw_valid == 0).sum() > 10, "the test mask must have windows with no valid pixel"
    assert bool((y.masked_select(saw_valid == 0) == 0).all())
    assert bool((y.masked_select(saw_valid == 1) != 0).all())
    torch.testing.assert_close(new_valid[:, :1], saw_valid)


REFERENCE_CASES = [  # multi_channel, kernel, stride, padding, dilation
    (False, 3, 1, 1, 1),
    (True, 3, 1, 1, 1),
    (False, 3, 2, 1, 1),
    (True, 5, 2, 2, 1),
    (False, 7, 2, 3, 1),
    (False, 3, 1, 2, 2),
    (True, 3, 2, 0, 2),
    (False, 4, 2, 1, 1),
    (True, 1, 1, 0, 1),
    (False, 3, 1, 0, 1),
]


@pytest.mark.parametrize("multi_channel, kernel, stride, padding, dilation", REFERENCE_CASES)
@pytest.mark.parametrize("bias", [True, False])
def test_matches_the_loop_reference(
    multi_channel: bool, kernel: int, stride: int, padding: int, dilation: int, bias: bool
) -> None:
    layer, x = layer_and_input(
        kernel=kernel,
        stride=stride,
        padding=padding,
        dilation=dilation,
        bias=bias,
        multi_channel=multi_channel,
    )
    valid = random_valid(2, 3 if multi_channel else 1, 9, 11, seed=kernel + stride)
    y, new_valid = layer(x, valid)
    expected_y, expected_valid = partial_conv_reference(
        x, valid, layer.weight.detach(), layer.bias, stride, padding, dilation, multi_channel
    )
    torch.testing.assert_close(y, expected_y.detach(), rtol=1e-5, atol=1e-5)
    assert new_valid.shape[1] == (4 if multi_channel else 1)
    assert torch.equal(new_valid, expected_valid.expand_as(new_valid))


def test_multi_channel_with_equal_channels_equals_single_channel() -> None:
    """C_in identical masks: C_in*k*k / (C_in*count) = k*k / count."""
    single, x = layer_and_input(padding=1)
    multi = PartialConv2d(3, 4, 3, padding=1, multi_channel=True)
    multi.load_state_dict(single.state_dict())
    valid = random_valid(2, 1, 9, 11)
    y_single, valid_single = single(x, valid)
    y_multi, valid_multi = multi(x, valid.expand(-1, 3, -1, -1))
    torch.testing.assert_close(y_multi, y_single)
    assert torch.equal(valid_multi, valid_single.expand(-1, 4, -1, -1))


@pytest.mark.parametrize("multi_channel", [False, True])
def test_no_gradient_reaches_hole_pixels(multi_channel: bool) -> None:
    layer, x = layer_and_input(padding=1, multi_channel=multi_channel)
    valid = random_valid(2, 3 if multi_channel else 1, 9, 11)
    x.requires_grad_(True)
    y, _ = layer(x, valid)
    y.backward(torch.randn_like(y))
    hole = (valid == 0).expand_as(x)
    assert bool((x.grad[hole] == 0).all())
    assert bool((x.grad[~hole] != 0).all())
    assert layer.weight.grad is not None and layer.bias.grad is not None


def test_stateless_between_calls() -> None:
    """Mask A then mask B gives what a fresh layer gives for B: no mask is cached (a port
    that keeps the last mask silently reuses it)."""
    layer, x = layer_and_input(padding=1)
    fresh = copy.deepcopy(layer)
    valid_a = random_valid(2, 1, 9, 11, seed=1)
    valid_b = random_valid(2, 1, 9, 11, seed=2)
    layer(x, valid_a)
    y, new_valid = layer(x, valid_b)
    y_fresh, new_valid_fresh = fresh(x, valid_b)
    assert torch.equal(y, y_fresh) and torch.equal(new_valid, new_valid_fresh)
    assert dict(layer.named_buffers()).keys() == {"mask_kernel"}
    assert torch.equal(layer.mask_kernel, torch.ones(1, 1, 3, 3))


# ---------------------------------------------------------------------------------------------
# Mixed precision, devices, state
# ---------------------------------------------------------------------------------------------


def large_hole(batch: int, size: int) -> torch.Tensor:
    """A (B, 1, size, size) valid mask with a 95% hole: only a corner square is known."""
    valid = torch.zeros(batch, 1, size, size)
    side = round(size * 0.05**0.5)
    valid[:, :, :side, :side] = 1
    return valid


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_autocast_on_cpu_with_large_holes(dtype: torch.dtype) -> None:
    """Mask arithmetic stays in float32 under autocast: no inf/NaN with a 95% hole (a window
    of C_in*k*k = 576 with a single valid entry has ratio 576), and the result is close to
    float32."""
    torch.manual_seed(0)
    layer = PartialConv2d(64, 32, 3, padding=1, multi_channel=True)
    x = torch.rand(2, 64, 32, 32)
    valid = large_hole(2, 32).expand(-1, 64, -1, -1)
    with torch.no_grad():
        reference, reference_valid = layer(x, valid)
    with torch.autocast("cpu", dtype=dtype):
        y, new_valid = layer(x, valid)
    assert y.dtype == dtype and new_valid.dtype == torch.float32
    assert bool(torch.isfinite(y).all())
    assert torch.equal(new_valid, reference_valid)
    torch.testing.assert_close(
        y.float(), reference, rtol=0.05, atol=0.05 * reference.abs().max().item()
    )


def test_counts_stay_float32_under_float16_autocast() -> None:
    """A window of C_in*k*k = 8192*9 = 73728 entries, more than float16 holds (65504): counted
    in float16, sum(M) would overflow to inf and the ratio would drop to 0."""
    torch.manual_seed(0)
    layer = PartialConv2d(8192, 2, 3, padding=1, multi_channel=True)
    x = torch.rand(1, 8192, 4, 4)
    valid = torch.ones(1, 8192, 4, 4)
    with torch.no_grad():
        reference, _ = layer(x, valid)
        with torch.autocast("cpu", dtype=torch.float16):
            y, _ = layer(x, valid)
    assert y.dtype == torch.float16 and bool(torch.isfinite(y).all())
    torch.testing.assert_close(y.float(), reference, rtol=0.02, atol=0.02)


def test_low_precision_inputs_and_layer() -> None:
    """A bfloat16 layer on bfloat16 inputs: the counts are still exact (float32 mask path)."""
    torch.manual_seed(0)
    layer = PartialConv2d(512, 8, 3, padding=1, multi_channel=True)
    x = torch.rand(1, 512, 12, 12)
    valid = large_hole(1, 12).expand(-1, 512, -1, -1)
    with torch.no_grad():
        reference, _ = layer(x, valid)
    y, new_valid = layer.to(torch.bfloat16)(x.bfloat16(), valid.bfloat16())
    assert y.dtype == torch.bfloat16 and bool(torch.isfinite(y).all())
    torch.testing.assert_close(
        y.float(), reference, rtol=0.05, atol=0.05 * reference.abs().max().item()
    )


def test_the_eps_pitfall_is_real() -> None:
    """Why the layer clamps instead of adding eps: 1 / (0 + 1e-8) is inf in float16."""
    assert torch.isinf(1 / (torch.zeros(1, dtype=torch.float16) + 1e-8)).all()


def test_mask_kernel_is_a_non_persistent_buffer() -> None:
    layer, x = layer_and_input(padding=1)
    assert set(layer.state_dict()) == {"weight", "bias"}
    # So the state_dict is that of a plain convolution, both ways.
    conv = nn.Conv2d(3, 4, 3, padding=1)
    conv.load_state_dict(layer.state_dict())
    layer.load_state_dict(conv.state_dict())
    valid = random_valid(2, 1, 9, 11)
    y32, _ = layer(x, valid)
    layer64 = copy.deepcopy(layer).to(torch.float64)
    assert layer64.mask_kernel.dtype == torch.float64
    y64, _ = layer64(x.double(), valid.double())
    assert y64.dtype == torch.float64
    torch.testing.assert_close(y64.float(), y32)
    assert layer.to("meta").mask_kernel.device.type == "meta"
    assert "multi_channel=False" in repr(layer)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_and_float16_autocast() -> None:
    layer, x = layer_and_input(in_channels=64, out_channels=32, padding=1, multi_channel=True)
    x = torch.rand(2, 64, 32, 32)
    valid = large_hole(2, 32).expand(-1, 64, -1, -1)
    with torch.no_grad():
        reference, _ = layer(x, valid)
    layer = layer.cuda()
    assert layer.mask_kernel.device.type == "cuda"
    with torch.autocast("cuda", dtype=torch.float16):
        y, new_valid = layer(x.cuda(), valid.cuda())
    assert y.dtype == torch.float16 and new_valid.dtype == torch.float32
    assert bool(torch.isfinite(y).all())
    torch.testing.assert_close(
        y.float().cpu(), reference, rtol=0.02, atol=0.02 * reference.abs().max().item()
    )


# ---------------------------------------------------------------------------------------------
# Bad input
# ---------------------------------------------------------------------------------------------


def bad_inputs() -> list:
    x = torch.randn(2, 3, 9, 11)
    valid = torch.ones(2, 1, 9, 11)
    return [
        pytest.param(False, x, torch.ones(2, 1, 9, 10), "must have shape", id="spatial"),
        pytest.param(False, x, torch.ones(1, 1, 9, 11), "must have shape", id="batch"),
        pytest.param(False, x, torch.ones(2, 9, 11), "must have shape", id="3-d"),
        pytest.param(False, x, valid * 0.5, "binary", id="non-binary"),
        pytest.param(False, x, valid.long(), "float tensor", id="integer"),
        pytest.param(False, x, None, "float tensor", id="none"),
        pytest.param(False, x, torch.ones(2, 3, 9, 11), "multi_channel=True", id="per-channel"),
        pytest.param(True, x, valid, "3 channel", id="multi-channel-needs-c-in"),
        pytest.param(False, torch.randn(2, 4, 9, 11), valid, "in_channels=3", id="x-channels"),
    ]


@pytest.mark.parametrize("multi_channel, x, valid, message", bad_inputs())
def test_bad_inputs_raise_clear_errors(
    multi_channel: bool, x: torch.Tensor, valid: torch.Tensor, message: str
) -> None:
    layer = PartialConv2d(3, 4, 3, padding=1, multi_channel=multi_channel)
    with pytest.raises(ValueError, match=message):
        layer(x, valid)


def test_error_message_points_to_to_valid() -> None:
    layer = PartialConv2d(3, 4, 3, padding=1)
    hole = masks.generate("box", 2, 16, 16, coverage=0.3, seed=0)
    with pytest.raises(ValueError, match=r"masks\.to_valid"):
        layer(torch.randn(2, 3, 16, 16), hole[:, :, :8])
    y, _ = layer(torch.randn(2, 3, 16, 16), masks.to_valid(hole))
    assert y.shape == (2, 4, 16, 16)


def test_unchecked_layers_compute_the_same_and_the_network_checks_at_its_entry() -> None:
    """A network's layers skip the per-call checks (check_inputs=False) and give exactly what
    checked layers give; the network itself still refuses a non-binary hole mask, once."""
    checked = PartialConv2d(3, 4, 3, padding=1, multi_channel=True)
    unchecked = PartialConv2d(3, 4, 3, padding=1, multi_channel=True, check_inputs=False)
    unchecked.load_state_dict(checked.state_dict())
    x = torch.randn(2, 3, 16, 16)
    valid = masks.to_valid(masks.generate("box", 2, 16, 16, coverage=0.3, seed=0)).expand(
        -1, 3, -1, -1
    )
    for a, b in zip(checked(x, valid), unchecked(x, valid), strict=True):
        assert torch.equal(a, b)
    with pytest.raises(ValueError, match="binary"):
        checked(x, valid * 0.5)
    unchecked(x, valid * 0.5)  # not checked here: its network checked the mask at its entry

    from course_lib.unet import PConvUNet

    network = PConvUNet.small().eval()
    assert not any(
        layer.check_inputs for layer in network.modules() if isinstance(layer, PartialConv2d)
    )
    hole = masks.generate("box", 1, 32, 32, coverage=0.3, seed=0)
    with pytest.raises(ValueError, match="binary"):
        network(torch.rand(1, 3, 32, 32), hole * 0.5)
