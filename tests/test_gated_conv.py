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
