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


def test_the_context_encoder_reaches_every_pixel_through_its_bottleneck():
    from course_lib.channelwise_fc import ContextEncoder

    torch.manual_seed(0)
    network = ContextEncoder(image_size=64, width=8).eval()
    image = torch.rand(2, 3, 64, 64, requires_grad=True)
    hole = torch.zeros(2, 1, 64, 64)
    hole[..., 16:48, 16:48] = 1  # the paper's central hole, at the course's scale
    out = network(image, hole)
    assert out.shape == (2, 3, 64, 64) and 0 <= out.min() and out.max() <= 1
    out[0, :, 0, 0].sum().backward()  # a corner pixel of the output
    seen = image.grad[0].abs().sum(dim=0) > 0
    # Every known pixel reaches it, also the far corner; no hole pixel does (they are zeroed).
    assert bool(seen[~hole[0, 0].bool()].all()) and not bool(seen[hole[0, 0].bool()].any())
    # Without the channel-wise layer the same convolutions reach only a corner's neighbourhood.
    network.bottleneck[0] = torch.nn.Identity()
    image.grad = None
    network(image, torch.zeros_like(hole))[0, :, 0, 0].sum().backward()
    local = image.grad[0].abs().sum(dim=0) > 0
    assert not bool(local[32:, 32:].any()) and bool(local[:8, :8].all())
    with pytest.raises(ValueError, match="built for 64x64"):
        network(torch.rand(1, 3, 32, 32), torch.zeros(1, 1, 32, 32))


def test_the_shipped_arms_blur_and_invent_as_their_losses_say():
    """Lesson 08's three Context Encoders on held-out photos behind the central quarter: the
    adversary alone leaves the fill's gradient energy closest to the truth's (it invents
    texture) and the L2 arm the furthest (it blurs), while per pixel the adversary alone is
    far behind the arm with a reconstruction term."""
    from course_lib import evaluate, masks, recipes
    from course_lib.checkpoints import load_weights
    from course_lib.train import MODELS

    images = evaluate.held_out_images("photos", 64, 16)
    hole = masks.centred_box(64, 0.25, len(images))  # (16, 1, 64, 64)
    scores = {}
    for arm in ("l2", "joint", "adversarial"):
        name = f"context_encoder_{arm}"
        model = MODELS[recipes.load(name).model]()
        load_weights(model, name)
        with torch.no_grad():
            composite = model.eval().inpaint(images, hole)
        scores[arm] = evaluate.pair_scores(composite, images, hole)
    gap = {arm: values["grad_gap"].mean().item() for arm, values in scores.items()}
    assert gap["adversarial"] < gap["joint"] < gap["l2"], gap
    hole_psnr = {arm: values["hole_psnr"].mean().item() for arm, values in scores.items()}
    assert hole_psnr["adversarial"] < hole_psnr["joint"] - 2, hole_psnr
