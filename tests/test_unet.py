"""The partial-convolution U-Net and its plain twin (course_lib.unet)."""

import pytest
import torch
from network_helpers import image_and_hole, model
from torch import nn

from course_lib import masks
from course_lib.unet import CONFIGS, ConvUNet, PConvUNet, PlainConvUNet

MODELS = [PConvUNet, ConvUNet, PlainConvUNet]


def expected_parameters(config: str, plain: bool) -> int:
    """Parameters of the paper's architecture, counted from its description: stride-2
    encoder convolutions (bias on the first, batch norm on the others), 3x3 decoder
    convolutions over [upsampled, skip] (batch norm on all but the last, which has a bias and
    outputs 3 channels). The plain network has one more input channel (the hole mask)."""
    kernels, channels = CONFIGS[config]["kernels"], CONFIGS[config]["channels"]
    image_channels = 3 + (1 if plain else 0)
    total = kernels[0] ** 2 * image_channels * channels[0] + channels[0]
    for i in range(1, len(channels)):
        total += kernels[i] ** 2 * channels[i - 1] * channels[i] + 2 * channels[i]
        total += 9 * (channels[i] + channels[i - 1]) * channels[i - 1] + 2 * channels[i - 1]
    total += 9 * (channels[0] + image_channels) * 3 + 3
    return total


@pytest.mark.parametrize("model_class", MODELS)
@pytest.mark.parametrize("height, width", [(63, 65), (64, 64), (1, 1), (17, 5)])
def test_any_size_comes_back_the_same_size(model_class: type, height: int, width: int) -> None:
    image, hole = image_and_hole(2, height, width)
    with torch.no_grad():
        prediction = model(model_class)(image, hole)
    assert prediction.shape == (2, 3, height, width)
    assert bool(torch.isfinite(prediction).all())


@pytest.mark.parametrize("size", [64, 256])
def test_paper256_runs_on_cpu(size: int) -> None:
    """Depth 7: a 64x64 image is padded to 128x128 and cropped back."""
    image, hole = image_and_hole(1, size, size)
    with torch.no_grad():
        prediction = model(PConvUNet, "paper256")(image, hole)
    assert prediction.shape == (1, 3, size, size)
    assert bool(torch.isfinite(prediction).all())


@pytest.mark.parametrize("config", ["paper512", "paper256", "small"])
def test_parameter_counts(config: str) -> None:
    partial, plain = PConvUNet.from_config(config), ConvUNet.from_config(config)
    assert partial.parameter_count() == expected_parameters(config, plain=False)
    assert plain.parameter_count() == expected_parameters(config, plain=True)
    # The twins differ only by the hole channel's weights: well within 1%.
    assert abs(plain.parameter_count() / partial.parameter_count() - 1) < 0.01
    # The paper's baseline has no hole channel: exactly the partial network's parameters.
    assert PlainConvUNet.from_config(config).parameter_count() == partial.parameter_count()
    if config == "paper512":
        assert partial.parameter_count() == 32_859_796
    if config == "small":
        assert partial.parameter_count() < 1.1e6


@pytest.mark.parametrize("model_class", MODELS)
def test_hole_pixels_do_not_influence_the_output(model_class: type) -> None:
    network = model(model_class)
    image, hole = image_and_hole(2, 63, 65)
    scrambled = torch.where(hole.bool(), torch.rand_like(image), image)
    with torch.no_grad():
        assert torch.equal(network(image, hole), network(scrambled, hole))


def test_the_papers_baseline_cannot_tell_a_hole_from_grey() -> None:
    """PlainConvUNet is not told where the holes are: a hole looks exactly like known pixels
    of the paper's mean grey. ConvUNet, which gets the mask, sees the difference."""
    image, hole = image_and_hole(2, 64, 64)
    grey = torch.where(hole.bool(), torch.full_like(image, 0.5), image)
    no_hole = torch.zeros_like(hole)
    with torch.no_grad():
        plain = model(PlainConvUNet)
        assert torch.equal(plain(image, hole), plain(grey, no_hole))
        told = model(ConvUNet)
        assert not torch.allclose(told(image, hole), told(grey, no_hole))


@pytest.mark.parametrize("model_class", MODELS)
def test_padding_counts_as_hole(model_class: type) -> None:
    """A 64x63 image is padded by one column; that column is treated exactly like a hole:
    the same image one column wider, with a hole in that column, gives the same output."""
    network = model(model_class)
    image, hole = image_and_hole(2, 64, 64)
    hole[..., -1] = 1
    with torch.no_grad():
        narrow = network(image[..., :63], hole[..., :63])
        wide = network(image, hole)
    assert torch.equal(narrow, wide[..., :63])


@pytest.mark.parametrize("model_class", MODELS)
def test_all_hole_input_stays_finite(model_class: type) -> None:
    image, _ = image_and_hole(1, 32, 32)
    with torch.no_grad():
        prediction = model(model_class)(image, torch.ones(1, 1, 32, 32))
    assert bool(torch.isfinite(prediction).all())
    if model_class is PConvUNet:  # no window anywhere saw a valid pixel
        assert bool((prediction == 0).all())


@pytest.mark.parametrize("model_class", MODELS)
def test_inpaint_returns_the_composite(model_class: type) -> None:
    image, hole = image_and_hole(2, 40, 24)
    filled = model(model_class).inpaint(image, hole)
    assert filled.shape == image.shape and not filled.requires_grad
    assert torch.equal(filled * (1 - hole), image * (1 - hole))
    assert filled.min() >= 0 and filled.max() <= 1


@pytest.mark.parametrize("model_class", MODELS)
def test_frozen_encoder_batch_norm_survives_train(model_class: type) -> None:
    network = model(model_class).freeze_encoder_bn()
    network.train()  # must not unfreeze
    encoder_norms = network.encoder_norms()
    decoder_norms = [m for m in network.decoder.modules() if isinstance(m, nn.BatchNorm2d)]
    assert len(encoder_norms) == network.depth - 1  # every encoder layer but the first
    assert not any(norm.training for norm in encoder_norms)
    assert all(norm.training for norm in decoder_norms)
    before = [norm.running_mean.clone() for norm in encoder_norms + decoder_norms]
    image, hole = image_and_hole(4, 32, 32)
    network(image, hole).abs().mean().backward()
    after = [norm.running_mean for norm in encoder_norms + decoder_norms]
    for old, new in zip(before[: len(encoder_norms)], after[: len(encoder_norms)], strict=True):
        assert torch.equal(old, new)
    for old, new in zip(before[len(encoder_norms) :], after[len(encoder_norms) :], strict=True):
        assert not torch.equal(old, new)
    # The statistics are frozen, not the affine parameters: they still learn.
    assert all(norm.weight.grad is not None for norm in encoder_norms)
    # And the mode can be switched off again.
    network.freeze_encoder_bn(False)
    assert all(norm.training for norm in encoder_norms)
    assert not network.eval().freeze_encoder_bn().training


@pytest.mark.parametrize("model_class", MODELS)
def test_a_few_adam_steps_reduce_the_loss(model_class: type) -> None:
    network = model(model_class).train()
    optimizer = torch.optim.Adam(network.parameters(), lr=2e-3)
    image, hole = image_and_hole(4, 32, 32)
    losses = []
    for _ in range(5):
        optimizer.zero_grad()
        loss = (network(image, hole) - image).abs().mean()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0]


def test_bfloat16_autocast_on_cpu() -> None:
    network = model(PConvUNet)
    image, _ = image_and_hole(2, 32, 32)
    hole = masks.generate("box", 2, 32, 32, coverage=0.6, seed=0)
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        prediction = network(image, hole)
    assert bool(torch.isfinite(prediction).all())


def test_bad_arguments_raise_clear_errors() -> None:
    with pytest.raises(ValueError, match="one channel width and one kernel size"):
        PConvUNet(depth=3, channels=(8, 16), kernels=(3, 3, 3))
    with pytest.raises(ValueError, match="odd"):
        ConvUNet(depth=2, channels=(8, 16), kernels=(4, 3))
    with pytest.raises(ValueError, match="unknown configuration"):
        PConvUNet.from_config("paper1024")
    network = model(PConvUNet)
    image, hole = image_and_hole(1, 16, 16)
    with pytest.raises(ValueError, match="binary"):
        network(image, hole * 0.5)
    with pytest.raises(ValueError, match="does not match"):
        network(image, hole[..., :8])
    with pytest.raises(ValueError, match="3 channels"):
        network(image[:, :1], hole)
