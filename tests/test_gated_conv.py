"""Gated convolution (course_lib.gated_conv) against its formula."""

import pytest
import torch
import torch.nn.functional as F

from course_lib.gated_conv import GatedConv2d


def test_the_output_is_the_activated_features_times_the_sigmoid_gate():
    torch.manual_seed(0)
    layer = GatedConv2d(4, 5, kernel_size=3, dilation=2)
    x = torch.randn(2, 4, 9, 11)
    out = layer(x)
    half = 5
    weight, bias = layer.conv.weight, layer.conv.bias
    features = F.conv2d(x, weight[:half], bias[:half], padding=2, dilation=2)
    gate = torch.sigmoid(F.conv2d(x, weight[half:], bias[half:], padding=2, dilation=2))
    assert torch.allclose(out, F.elu(features) * gate, atol=1e-6)
    assert out.shape == (2, 5, 9, 11)  # "same" padding with dilation 2
    assert torch.allclose(layer.last_gate, gate, atol=1e-6) and not layer.last_gate.requires_grad
    assert 0 < layer.last_gate.min() and layer.last_gate.max() < 1


def test_a_closed_gate_silences_a_channel_and_strides_halve_the_size():
    layer = GatedConv2d(3, 2, kernel_size=3, stride=2, activation=torch.nn.Identity())
    with torch.no_grad():
        layer.conv.bias[2:] = torch.tensor([-1e4, 1e4])  # gate of channel 0 shut, channel 1 open
    x = torch.randn(1, 3, 8, 7)
    out = layer(x)
    assert out.shape == (1, 2, 4, 4)
    assert out[:, 0].abs().max() < 1e-6
    features = F.conv2d(x, layer.conv.weight[:2], layer.conv.bias[:2], stride=2, padding=1)
    assert torch.allclose(out[:, 1], features[:, 1], atol=1e-6)  # an open gate lets it through
    with pytest.raises(ValueError, match="kernel_size must be a positive int"):
        GatedConv2d(3, 2, kernel_size=0)


def test_the_gated_unet_is_convunet_with_gates_and_hides_the_holes():
    from course_lib.gated_conv import GatedUNet
    from course_lib.unet import ConvUNet

    torch.manual_seed(0)
    gated, plain = GatedUNet.from_config("small").eval(), ConvUNet.from_config("small")
    image = torch.rand(2, 3, 48, 40)
    hole = (torch.rand(2, 1, 48, 40) > 0.7).float()
    out = gated(image, hole)
    assert out.shape == image.shape
    scrambled = torch.where(hole.bool(), torch.rand_like(image), image)
    assert torch.equal(gated(scrambled, hole), out)
    gates = gated.gates()
    assert len(gates) == 2 * 5 - 1  # every layer of the depth-5 U-Net but the output layer
    assert all(0 < gate.min() and gate.max() < 1 for gate in gates)
    assert [gate.shape[1] for gate in gates[:5]] == [32, 64, 96, 128, 128]
    # The same plan: each gated layer doubles its convolution's weights, the output layer not.
    assert 1.9 < gated.parameter_count() / plain.parameter_count() < 2.1
    assert isinstance(gated.decoder[-1][0], torch.nn.Conv2d)


def test_the_gated_unet_explains_bad_masks_and_takes_odd_sizes():
    from course_lib.gated_conv import GatedUNet

    gated = GatedUNet.from_config("small").eval()
    image = torch.rand(1, 3, 37, 45)  # odd sides: padded to the U-Net's multiple and cropped back
    hole = torch.zeros(1, 1, 37, 45)
    hole[..., 10:20, 12:30] = 1
    with torch.no_grad():
        filled = gated.inpaint(image, hole)
    assert filled.shape == image.shape
    assert torch.equal(filled * (1 - hole), image * (1 - hole))  # the known pixels are kept
    with pytest.raises(ValueError, match="hole"):
        gated(image, torch.zeros(1, 1, 36, 45))  # another size than the image
    with pytest.raises(ValueError, match="binary|0 or 1|exactly"):
        gated(image, torch.full((1, 1, 37, 45), 0.5))
