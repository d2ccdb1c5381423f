"""Fast Fourier Convolutions and the small LaMa (course_lib.ffc)."""

import pytest
import torch
import torch.nn.functional as F
from network_helpers import image_and_hole, model
from torch import nn

from course_lib.ffc import (
    CONFIGS,
    FFC,
    FFC_BN_ACT,
    ConvLaMa,
    ConvResnetBlock,
    FFCResnetBlock,
    FourierUnit,
    SpectralTransform,
    TinyLaMa,
    input_gradient_map,
    matched_hidden_channels,
    merge_channels,
    split_channels,
)

MODELS = [TinyLaMa, ConvLaMa]


def randomise_norms(module: nn.Module, seed: int = 0) -> nn.Module:
    """Give every batch norm random statistics and affine parameters, so that a test
    comparing against a computation by hand cannot pass with identity norms."""
    generator = torch.Generator().manual_seed(seed)
    for norm in module.modules():
        if isinstance(norm, nn.BatchNorm2d):
            n = norm.num_features
            norm.running_mean.copy_(torch.randn(n, generator=generator) * 0.1)
            norm.running_var.copy_(torch.rand(n, generator=generator) + 0.5)
            with torch.no_grad():
                norm.weight.copy_(torch.rand(n, generator=generator) + 0.5)
                norm.bias.copy_(torch.randn(n, generator=generator) * 0.1)
    return module


# -- FourierUnit ---------------------------------------------------------------------------------


@pytest.mark.parametrize("height, width", [(8, 8), (7, 9), (31, 33)])
def test_fourier_unit_matches_the_pipeline_by_hand(height: int, width: int) -> None:
    torch.manual_seed(0)
    unit = randomise_norms(FourierUnit(3, 4)).eval()
    x = torch.randn(2, 3, height, width)
    # The same steps written out, with the full complex FFT instead of the real one.
    spectrum = torch.fft.fft2(x, norm="ortho")[..., : width // 2 + 1]  # (2, 3, H, W//2+1)
    stacked = torch.cat([spectrum.real, spectrum.imag], dim=1)  # real parts, then imaginary
    norm = unit.norm
    y = F.conv2d(stacked, unit.conv.weight)
    y = (y - norm.running_mean[:, None, None]) / torch.sqrt(norm.running_var + norm.eps)[
        :, None, None
    ]
    y = torch.relu(y * norm.weight[:, None, None] + norm.bias[:, None, None])
    expected = torch.fft.irfft2(torch.complex(y[:, :4], y[:, 4:]), s=(height, width), norm="ortho")
    with torch.no_grad():
        assert torch.allclose(unit(x), expected, atol=1e-5)


@pytest.mark.parametrize("height, width", [(31, 33), (63, 65), (8, 9), (1, 1)])
def test_fourier_unit_with_identity_weights_gives_back_its_input(height: int, width: int) -> None:
    """Identity 1x1 convolution, batch norm with identity statistics, no ReLU: FFT followed by
    inverse FFT must return the input exactly, odd widths included (that needs ``s=``)."""
    unit = FourierUnit(5, 5).eval()
    with torch.no_grad():
        unit.conv.weight.copy_(torch.eye(10)[:, :, None, None])
    unit.norm.running_var.fill_(1 - unit.norm.eps)  # so that sqrt(var + eps) is exactly 1
    unit.activation = nn.Identity()
    x = torch.randn(2, 5, height, width)
    with torch.no_grad():
        assert torch.allclose(unit(x), x, atol=1e-5)


@pytest.mark.parametrize("height, width", [(31, 33), (63, 65)])
def test_odd_sizes_round_trip_through_every_layer(height: int, width: int) -> None:
    x = torch.randn(2, 16, height, width)
    with torch.no_grad():
        assert FourierUnit(16, 8)(x).shape == (2, 8, height, width)
        assert SpectralTransform(16, 32)(x).shape == (2, 32, height, width)
        local, global_ = FFC(16, 24, 3, 0.75, 0.5, padding=1)(split_channels(x, 0.75))
        assert local.shape == (2, 12, height, width) and global_.shape == (2, 12, height, width)
        out = merge_channels(FFCResnetBlock(16)(split_channels(x, 0.75)))
        assert out.shape == x.shape


# -- Local Fourier unit ----------------------------------------------------------------------------


def test_local_fourier_unit_needs_even_sizes() -> None:
    transform = SpectralTransform(8, 16, enable_lfu=True).eval()
    with torch.no_grad():
        assert transform(torch.randn(2, 8, 10, 12)).shape == (2, 16, 10, 12)
        with pytest.raises(ValueError, match="even height and width"):
            transform(torch.randn(2, 8, 9, 12))
        with pytest.raises(ValueError, match="even height and width"):
            FFCResnetBlock(16, enable_lfu=True)(split_channels(torch.randn(1, 16, 10, 7), 0.75))
    with pytest.raises(ValueError, match="out_channels >= 8"):
        SpectralTransform(4, 4, enable_lfu=True)


def test_local_fourier_unit_is_tiled_over_the_quadrants() -> None:
    """The LFU's contribution is the same in all four quadrants: it repeats every H/2, W/2
    pixels, so a spectral transform of it alone does too."""
    torch.manual_seed(0)
    transform = SpectralTransform(8, 16, enable_lfu=True).eval()
    with torch.no_grad():
        x = torch.randn(1, 8, 12, 10)
        hidden = transform.reduce(x)
        lfu_only = transform.expand(transform._local_fourier(hidden))
        assert torch.allclose(lfu_only[..., :6, :], lfu_only[..., 6:, :])
        assert torch.allclose(lfu_only[..., :5], lfu_only[..., 5:])


# -- FFC -----------------------------------------------------------------------------------------


def test_split_and_merge_channels() -> None:
    x = torch.randn(2, 64, 5, 5)
    local, global_ = split_channels(x, 0.75)
    assert local.shape[1] == 16 and global_.shape[1] == 48
    assert torch.equal(merge_channels((local, global_)), x)
    assert split_channels(x, 0.0)[1] is None and split_channels(x, 1.0)[0] is None
    assert torch.equal(merge_channels(split_channels(x, 1.0)), x)


def test_ffc_paths_add_up() -> None:
    """local_out = l2l(local) + g2l(global); global_out = l2g(local) + spectral(global)."""
    torch.manual_seed(0)
    ffc = FFC(16, 32, 3, 0.75, 0.5, padding=1).eval()
    local, global_ = split_channels(torch.randn(2, 16, 9, 10), 0.75)
    with torch.no_grad():
        local_out, global_out = ffc((local, global_))
        assert torch.allclose(local_out, ffc.l2l(local) + ffc.g2l(global_))
        assert torch.allclose(global_out, ffc.l2g(local) + ffc.g2g(global_))
    assert isinstance(ffc.g2g, SpectralTransform)


@pytest.mark.parametrize(
    "ratio_gin, ratio_gout, missing",
    [
        (0.0, 0.0, {"l2g", "g2l", "g2g"}),
        (0.0, 0.5, {"g2l", "g2g"}),
        (0.5, 0.0, {"l2g", "g2g"}),
        (1.0, 1.0, {"l2l", "l2g", "g2l"}),
        (1.0, 0.0, {"l2l", "l2g", "g2g"}),
    ],
)
def test_ffc_edge_ratios_drop_the_missing_paths(
    ratio_gin: float, ratio_gout: float, missing: set[str]
) -> None:
    torch.manual_seed(0)
    layer = FFC_BN_ACT(8, 8, 3, ratio_gin, ratio_gout, padding=1).eval()
    assert {name for name in ("l2l", "l2g", "g2l", "g2g") if getattr(layer.ffc, name) is None} == (
        missing
    )
    x = torch.randn(2, 8, 6, 7)
    with torch.no_grad():
        local, global_ = layer(split_channels(x, ratio_gin))
    assert (local is None) == (ratio_gout == 1.0) and (global_ is None) == (ratio_gout == 0.0)
    assert merge_channels((local, global_)).shape == x.shape
    if ratio_gin == ratio_gout == 0.0:  # an ordinary convolution
        assert torch.equal(local, layer.local_norm_act(layer.ffc.l2l(x)))


def test_ffc_stride_two_halves_both_parts() -> None:
    ffc = FFC(16, 32, 3, 0.5, 0.5, stride=2, padding=1, enable_lfu=True)
    local, global_ = ffc(split_channels(torch.randn(2, 16, 16, 20), 0.5))
    assert local.shape == global_.shape == (2, 16, 8, 10)


def test_ffc_rejects_parts_that_do_not_fit() -> None:
    ffc = FFC(16, 16, 3, 0.5, 0.5, padding=1)
    with pytest.raises(ValueError, match="local part with 8 channels"):
        ffc((None, torch.randn(1, 16, 8, 8)))
    with pytest.raises(ValueError, match="global part with 8 channels"):
        ffc((torch.randn(1, 8, 8, 8), torch.randn(1, 4, 8, 8)))
    with pytest.raises(ValueError, match="ratio_gin"):
        FFC(16, 16, 3, 1.5, 0.5)


# -- Receptive fields ----------------------------------------------------------------------------


def test_an_ffc_block_sees_the_far_side_and_a_conv_block_does_not() -> None:
    torch.manual_seed(0)
    size, centre = 32, (16, 16)
    ffc_map = input_gradient_map(FFCResnetBlock(16), size, centre)
    conv_map = input_gradient_map(ConvResnetBlock(16), size, centre)
    assert ffc_map.shape == conv_map.shape == (size, size)
    # The far corners are 16 pixels away in every direction, also on the FFT's torus.
    for corner in [(0, 0), (0, size - 1), (size - 1, 0), (size - 1, size - 1)]:
        assert ffc_map[corner] > 0
        assert conv_map[corner] == 0
    # Two 3x3 convolutions: exactly the 5x5 window around the pixel, nothing beyond.
    window = torch.zeros(size, size, dtype=torch.bool)
    window[14:19, 14:19] = True
    assert bool((conv_map[window] > 0).all())
    assert bool((conv_map[~window] == 0).all())
    assert bool((ffc_map > 0).all())


def test_input_gradient_map_restores_the_modes() -> None:
    block = FFCResnetBlock(16).train()
    block.conv1.eval()
    input_gradient_map(block, 16, (3, 4))
    assert block.training and block.conv2.training and not block.conv1.training
    network = model(TinyLaMa)
    assert input_gradient_map(network, (24, 16), (0, 15)).shape == (24, 16)
    with pytest.raises(ValueError, match="outside"):
        input_gradient_map(block, 16, (16, 0))
    with pytest.raises(ValueError, match="FFCResnetBlock"):
        input_gradient_map(nn.Conv2d(3, 3, 3), 16, (0, 0))


# -- The networks --------------------------------------------------------------------------------


@pytest.mark.parametrize("config", ["small", "shallow"])
@pytest.mark.parametrize("model_class", MODELS)
@pytest.mark.parametrize("height, width", [(63, 65), (64, 64), (1, 1), (17, 5)])
def test_any_size_comes_back_the_same_size_in_0_1(
    model_class: type, height: int, width: int, config: str
) -> None:
    image, hole = image_and_hole(2, height, width)
    with torch.no_grad():
        prediction = model(model_class, config)(image, hole)
    assert prediction.shape == (2, 3, height, width)
    assert prediction.min() >= 0 and prediction.max() <= 1


@pytest.mark.parametrize("model_class", MODELS)
def test_hole_pixels_do_not_influence_the_output(model_class: type) -> None:
    network = model(model_class)
    image, hole = image_and_hole(2, 63, 65)
    scrambled = torch.where(hole.bool(), torch.rand_like(image), image)
    with torch.no_grad():
        assert torch.equal(network(image, hole), network(scrambled, hole))


def test_padding_reflects_the_image_and_is_marked_as_hole() -> None:
    network = model(TinyLaMa)
    image, hole = image_and_hole(1, 60, 61)
    seen = []
    network.stem.register_forward_pre_hook(lambda module, args: seen.append(args[0]))
    with torch.no_grad():
        network(image, hole)
    x = seen[0]  # (1, 4, 64, 64): the known pixels and the hole mask
    assert x.shape == (1, 4, 64, 64)
    known = image * (1 - hole)
    assert torch.equal(x[:, :3, :60, :61], known)
    assert torch.equal(x[:, :3, :60, 61:], known[..., 57:60].flip(-1))  # reflected columns
    assert torch.equal(x[:, 3:, :60, :61], hole)
    assert bool((x[:, 3, 60:, :] == 1).all()) and bool((x[:, 3, :, 61:] == 1).all())


@pytest.mark.parametrize("model_class", MODELS)
def test_inpaint_returns_the_composite(model_class: type) -> None:
    image, hole = image_and_hole(2, 40, 24)
    filled = model(model_class).inpaint(image, hole)
    assert filled.shape == image.shape and not filled.requires_grad
    assert torch.equal(filled * (1 - hole), image * (1 - hole))
    assert filled.min() >= 0 and filled.max() <= 1


def test_a_few_adam_steps_reduce_the_loss() -> None:
    network = model(TinyLaMa).train()
    optimizer = torch.optim.Adam(network.parameters(), lr=1e-3)
    image, hole = image_and_hole(4, 32, 32)
    losses = []
    for _ in range(5):
        optimizer.zero_grad()
        loss = (network(image * (1 - hole), hole) - image).abs().mean()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0]


def ffc_block_parameters(channels: int, ratio: float) -> int:
    """Parameters of LaMa's FFC residual block, counted from its description."""
    n_global = int(channels * ratio)
    n_local, hidden = channels - n_global, n_global // 2
    convs = 9 * (n_local * n_local + n_local * n_global + n_global * n_local)  # l2l, l2g, g2l
    spectral = n_global * hidden + 2 * hidden  # 1x1 to half the channels, batch norm
    spectral += (2 * hidden) ** 2 + 2 * (2 * hidden)  # Fourier unit: 1x1 on 2C, batch norm
    spectral += hidden * n_global  # 1x1 back to the global width
    norms = 2 * n_local + 2 * n_global  # FFC_BN_ACT: one batch norm per part
    return 2 * (convs + spectral + norms)


@pytest.mark.parametrize("channels", [64, 128, 512])
def test_block_parameter_counts(channels: int) -> None:
    with torch.device("meta"):
        ffc_block = FFCResnetBlock(channels, 0.75)
        hidden = matched_hidden_channels(channels, 0.75)
        conv_block = ConvResnetBlock(channels, hidden)
    ffc_count = sum(p.numel() for p in ffc_block.parameters())
    conv_count = sum(p.numel() for p in conv_block.parameters())
    assert ffc_count == ffc_block_parameters(channels, 0.75)
    assert abs(conv_count / ffc_count - 1) < 0.02


@pytest.mark.parametrize("config", sorted(CONFIGS))
def test_the_conv_twin_has_the_same_parameter_count(config: str) -> None:
    with torch.device("meta"):  # the "lesson" networks have 27 M parameters each
        fourier, plain = TinyLaMa.from_config(config), ConvLaMa.from_config(config)
    assert abs(plain.parameter_count() / fourier.parameter_count() - 1) < 0.05
    assert len(fourier.resnet) == len(plain.resnet) == CONFIGS[config]["blocks"]
    if config == "small":
        assert fourier.parameter_count() < 1.5e6
    if config == "lesson":  # LaMa's generator with 9 FFC blocks at 512 channels
        assert fourier.bottleneck_channels == 512
        assert fourier.parameter_count() > 2e7


def test_the_shallow_twins_field_is_smaller_than_the_image_and_tinylamas_is_not() -> None:
    """Lesson 05's comparison: at 64x64 ConvLaMa's receptive field must not cover the image
    (else the twin already sees everything), while TinyLaMa's output depends on every pixel."""
    size, centre = 96, (48, 48)
    torch.manual_seed(0)
    fourier, plain = TinyLaMa.from_config("shallow"), ConvLaMa.from_config("shallow")
    assert fourier.downsamplings == 1 and fourier.bottleneck_channels == 64  # a 32x32 grid at 64
    rows, cols = (input_gradient_map(plain, size, centre) > 0).nonzero().unbind(1)
    field = max(rows.max() - rows.min(), cols.max() - cols.min()).item() + 1
    assert 40 < field < 64, field  # stem 7 + stride-2 conv + 4 blocks at stride 2 + head 7
    assert bool((input_gradient_map(fourier, 64, (32, 32)) > 0).all())


# -- Precision -----------------------------------------------------------------------------------


@pytest.fixture
def fft_dtypes(monkeypatch: pytest.MonkeyPatch) -> list[torch.dtype]:
    """Record the input dtype of every torch.fft.rfftn / irfftn call."""
    seen: list[torch.dtype] = []
    for name in ("rfftn", "irfftn"):
        original = getattr(torch.fft, name)

        def recording(x: torch.Tensor, *args: object, _original=original, **kwargs: object):
            seen.append(x.dtype)
            return _original(x, *args, **kwargs)

        monkeypatch.setattr(torch.fft, name, recording)
    return seen


def test_ffts_run_in_float32_under_bfloat16_autocast(fft_dtypes: list[torch.dtype]) -> None:
    network = model(TinyLaMa).train()
    lfu = SpectralTransform(16, 16, enable_lfu=True)
    image, hole = image_and_hole(2, 63, 65)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        prediction = network(image, hole)
        features = lfu(torch.randn(2, 16, 8, 8))
    prediction.float().mean().backward()
    assert bool(torch.isfinite(prediction).all()) and features.dtype == torch.bfloat16
    # 4 blocks x 2 layers in the network + 2 units in the LFU transform, each one FFT pair.
    assert len(fft_dtypes) == 2 * (4 * 2 + 2)
    assert set(fft_dtypes) <= {torch.float32, torch.complex64}


def test_a_bfloat16_unit_computes_its_fft_in_float32(fft_dtypes: list[torch.dtype]) -> None:
    unit = FourierUnit(4, 4).to(torch.bfloat16)
    y = unit(torch.randn(2, 4, 9, 9, dtype=torch.bfloat16))
    assert y.dtype == torch.bfloat16 and y.shape == (2, 4, 9, 9)
    assert fft_dtypes == [torch.float32, torch.complex64]


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_float16_autocast_on_cuda(fft_dtypes: list[torch.dtype]) -> None:
    network = model(TinyLaMa).train().cuda()
    image, hole = (t.cuda() for t in image_and_hole(2, 63, 65))
    with torch.autocast("cuda", dtype=torch.float16):
        prediction = network(image, hole)
    prediction.float().mean().backward()
    assert bool(torch.isfinite(prediction).all())
    assert all(torch.isfinite(p.grad).all() for p in network.parameters())
    assert fft_dtypes and set(fft_dtypes) <= {torch.float32, torch.complex64}


# -- Errors --------------------------------------------------------------------------------------


def test_bad_inputs_raise_clear_errors() -> None:
    network = model(TinyLaMa)
    image, hole = image_and_hole(1, 16, 16)
    with pytest.raises(ValueError, match="binary"):
        network(image, hole * 0.5)
    with pytest.raises(ValueError, match="does not match"):
        network(image, hole[..., :8])
    with pytest.raises(ValueError, match="3 channels"):
        network(image[:, :1], hole)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        network(image * 255, hole)
    with pytest.raises(ValueError, match="unknown configuration"):
        TinyLaMa.from_config("big")
    with pytest.raises(ValueError, match="blocks"):
        ConvLaMa(blocks=-1)
    with pytest.raises(ValueError, match="ratio"):
        TinyLaMa(ratio=1.5)
