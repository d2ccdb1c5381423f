"""What the course's networks share (course_lib.networks): configurations by name, the
parameter count and the composite handed to the evaluation harness."""

import pytest
import torch

from course_lib.channelwise_fc import ContextEncoder
from course_lib.deepfill import CoarseToFine
from course_lib.glcic import CompletionNetwork
from course_lib.mae import MaskedAutoencoder
from course_lib.networks import Configurable, InpaintingNetwork
from course_lib.unet import PConvUNet


@pytest.mark.parametrize(
    "network", [PConvUNet, ContextEncoder, CompletionNetwork, CoarseToFine, MaskedAutoencoder]
)
def test_every_network_is_built_by_name_and_says_which_names_exist(network):
    assert issubclass(network, Configurable)
    name = sorted(network.CONFIGS)[0]
    built = network.from_config(name)
    assert isinstance(built, network)
    assert built.parameter_count() == sum(p.numel() for p in built.parameters()) > 0
    with pytest.raises(ValueError, match=r"unknown configuration 'nope'; choose one of \["):
        network.from_config("nope")


def test_overrides_replace_a_configuration_s_arguments():
    small = ContextEncoder.from_config("small")
    wider = ContextEncoder.from_config("small", width=8)
    assert wider.parameter_count() < small.parameter_count()
    with pytest.raises(ValueError, match="multiple of 16"):
        ContextEncoder.from_config("small", image_size=40)


@pytest.mark.parametrize("network", [ContextEncoder, CompletionNetwork, CoarseToFine])
def test_inpaint_keeps_the_known_pixels_and_refuses_an_image_with_none(network):
    assert issubclass(network, InpaintingNetwork)
    torch.manual_seed(0)
    model = network.from_config("small").eval()
    image = torch.rand(2, 3, 64, 64)
    hole = torch.zeros(2, 1, 64, 64)
    hole[..., 16:48, 16:48] = 1
    filled = model.inpaint(image, hole)
    assert filled.shape == image.shape and not filled.requires_grad
    assert torch.equal(filled * (1 - hole), image * (1 - hole))
    assert 0 <= filled.min() and filled.max() <= 1
    with pytest.raises(ValueError):
        model.inpaint(image, torch.ones(2, 1, 64, 64))
