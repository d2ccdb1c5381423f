"""The Context Encoder's channel-wise fully connected layer against loops and nn.Linear."""

import pytest
import torch

from course_lib.channelwise_fc import ChannelwiseFullyConnected


def test_each_channel_is_a_fully_connected_layer_of_its_own_map():
    torch.manual_seed(0)
    layer = ChannelwiseFullyConnected(3, 2, 5)
    x = torch.randn(4, 3, 2, 5)
    out = layer(x)
    assert out.shape == x.shape
    for c in range(3):
        linear = torch.nn.Linear(10, 10)
        with torch.no_grad():
            linear.weight.copy_(layer.weight[c])
            linear.bias.copy_(layer.bias[c])
        expected = linear(x[:, c].reshape(4, 10)).reshape(4, 2, 5)
        assert torch.allclose(out[:, c], expected, atol=1e-6)


def test_no_mixing_between_channels_and_every_location_reaches_every_other():
    layer = ChannelwiseFullyConnected(2, 3, 3)
    x = torch.zeros(1, 2, 3, 3, requires_grad=True)
    layer(x)[0, 0, 1, 1].backward()
    assert bool((x.grad[0, 0] != 0).all()) and bool((x.grad[0, 1] == 0).all())
    # C (hw)^2 weights instead of (C hw)^2: for the paper's 512 x 4 x 4, 131,072 against 67 M.
    assert ChannelwiseFullyConnected(512, 4, 4).weight.numel() == 512 * 16 * 16
    with pytest.raises(ValueError, match=r"built for maps \(B, 2, 3, 3\)"):
        layer(torch.zeros(1, 2, 4, 4))
