"""GLCIC's completion network and discriminators (course_lib.glcic)."""

import pytest
import torch

from course_lib.glcic import PLAN, CompletionNetwork, GlobalLocalDiscriminator, receptive_field


def test_the_completion_network_keeps_the_size_and_ignores_hole_pixels():
    torch.manual_seed(0)
    network = CompletionNetwork.from_config("small").eval()
    image = torch.rand(2, 3, 36, 28)
    hole = torch.zeros(2, 1, 36, 28)
    hole[..., 10:20, 8:18] = 1
    out = network(image, hole)
    assert out.shape == (2, 3, 36, 28) and 0 <= out.min() and out.max() <= 1
    scrambled = torch.where(hole.bool(), torch.rand_like(image), image)
    assert torch.equal(network(scrambled, hole), out)
    with pytest.raises(ValueError, match="multiples of 4"):
        network(torch.rand(1, 3, 30, 28), torch.zeros(1, 1, 30, 28))


def test_the_dilations_give_the_receptive_field_the_formula_says():
    torch.manual_seed(0)
    network = CompletionNetwork.from_config("small").eval()
    for module in network.modules():  # positive weights: no accidental cancellation
        if isinstance(module, (torch.nn.Conv2d, torch.nn.ConvTranspose2d)):
            torch.nn.init.uniform_(module.weight, 0.01, 0.1)
    side, fields = 400, []
    for position in range(200, 204):  # the four places on the stride-4 grid
        image = torch.rand(1, 3, side, side, requires_grad=True)
        x = torch.cat([image, torch.zeros(1, 1, side, side)], dim=1)
        network.head(network.body(x))[0, :, position, position].sum().backward()
        rows = image.grad[0].abs().sum(dim=0).gt(0).any(dim=1).nonzero().flatten()
        fields.append(int(rows.max() - rows.min() + 1))
    assert min(fields) < receptive_field() < max(fields) <= receptive_field() + 2
    assert sum(fields) / len(fields) == receptive_field()
    # The dilations add 240 pixels where plain convolutions would add 32.
    plain = receptive_field([(k, kernel, s, 1, w) for k, kernel, s, _, w in PLAN])
    assert receptive_field() - plain == 240 - 32


def test_the_two_discriminators_join_into_one_logit():
    torch.manual_seed(0)
    judge = GlobalLocalDiscriminator(image_size=64, crop_size=32, width=4)
    logits = judge(torch.rand(3, 3, 64, 64), torch.rand(3, 3, 32, 32))
    assert logits.shape == (3, 1)
    with pytest.raises(ValueError, match="built for images of 64"):
        judge(torch.rand(3, 3, 32, 32), torch.rand(3, 3, 32, 32))
    with pytest.raises(ValueError, match="multiple of 64"):
        GlobalLocalDiscriminator(image_size=100)
