"""EdgeConnect's generators (course_lib.edgeconnect) on odd sizes and their inputs."""

import pytest
import torch

from course_lib import masks
from course_lib.edgeconnect import StructureGenerator, edge_inputs, image_inputs


@pytest.mark.parametrize("height, width", [(64, 64), (37, 50), (5, 9)])
def test_both_generators_keep_any_size(height, width):
    torch.manual_seed(0)
    image = torch.rand(2, 3, height, width)
    hole = (torch.rand(2, 1, height, width) > 0.6).float()
    edges = (torch.rand(2, 1, height, width) > 0.9).float()
    edge_net = StructureGenerator(3, 1, spectral_norm=True).eval()
    image_net = StructureGenerator(4, 3).eval()
    completed = edge_net(edge_inputs(image, hole, edges))
    assert completed.shape == (2, 1, height, width)
    filled = image_net(image_inputs(image, hole, completed))
    assert filled.shape == (2, 3, height, width) and 0 <= filled.min() and filled.max() <= 1


def test_the_inputs_hide_the_hole_and_the_edge_net_is_spectrally_normalised():
    image = torch.rand(1, 3, 16, 16)
    hole = torch.zeros(1, 1, 16, 16)
    hole[..., 4:12, 4:12] = 1
    edges = torch.ones(1, 1, 16, 16)
    stacked = edge_inputs(image, hole, edges)
    assert stacked.shape == (1, 3, 16, 16)
    assert stacked[:, :2][hole.expand(1, 2, 16, 16).bool()].abs().max() == 0
    assert torch.equal(stacked[:, 2:], hole)
    assert torch.equal(image_inputs(image, hole, edges)[:, 3:], edges)  # the edges everywhere
    sn = StructureGenerator(3, 1, spectral_norm=True)
    assert any(hasattr(m, "parametrizations") for m in sn.modules())
    assert not any(hasattr(m, "parametrizations") for m in StructureGenerator(4, 3).modules())
    with pytest.raises(ValueError, match=r"takes \(B, 3, H, W\)"):
        sn(torch.rand(1, 4, 16, 16))


def test_the_edge_guided_network_learns_from_the_true_edges_and_explains_what_it_needs():
    from course_lib.edgeconnect import EdgeGuidedInpainter
    from course_lib.edges import canny_edges
    from course_lib.train import MODELS, predict

    torch.manual_seed(0)
    guided = MODELS["edge_guided_small"]().eval()
    plain = MODELS["edge_guided_small_no_edges"]().eval()
    assert guided.uses_edges and not plain.uses_edges
    # One input channel more (the edges), nothing else differs.
    extra = guided.generator.encoder[1].weight.numel() - plain.generator.encoder[1].weight.numel()
    assert guided.parameter_count() - plain.parameter_count() == extra == 16 * 7 * 7
    image = torch.zeros(2, 3, 36, 44)
    image[..., 10:30, 12:40] = 1  # a white rectangle: edges inside any central hole
    hole = torch.zeros(2, 1, 36, 44)
    hole[..., 8:28, 10:34] = 1
    # Training passes the true edges of the whole image, hole included, and only to this model.
    truth = guided(image, hole, canny_edges(image))
    assert torch.equal(predict(guided, image, hole), truth)
    assert canny_edges(image)[hole.bool()].sum() > 0
    assert plain.oracle_guidance(image) is None
    assert torch.equal(predict(plain, image, hole), plain(image, hole))
    # The known pixels alone decide the rest: the hole's content never reaches the network.
    scrambled = torch.where(hole.bool(), torch.rand_like(image), image)
    assert torch.equal(guided(scrambled, hole, canny_edges(image)), truth)
    with pytest.raises(ValueError, match="needs an edge map"):
        guided(image, hole)
    with pytest.raises(ValueError, match="built with edges=False"):
        plain(image, hole, canny_edges(image))
    with pytest.raises(ValueError, match="must match the image"):
        guided(image, hole, torch.zeros(2, 1, 36, 40))
    assert isinstance(guided, EdgeGuidedInpainter)
    # inpaint passes the edges on and keeps the known pixels exactly.
    filled = guided.inpaint(image, hole, canny_edges(image))
    assert torch.equal(filled, masks.composite(image, hole, truth.clamp(0, 1)))


def test_the_edge_generator_completes_the_known_edges_from_the_known_pixels_alone():
    from course_lib.edgeconnect import EdgeGenerator
    from course_lib.edges import known_edges

    torch.manual_seed(0)
    generator = EdgeGenerator.from_config("small").eval()
    image = torch.zeros(2, 3, 40, 36)
    image[..., 8:30, 6:28] = 1
    hole = torch.zeros(2, 1, 40, 36)
    hole[..., 12:24, 10:22] = 1
    scrambled = torch.where(hole.bool(), torch.rand_like(image), image)
    out = generator(image, hole)
    assert out.shape == (2, 1, 40, 36) and 0 <= out.min() and out.max() <= 1
    assert torch.equal(generator(scrambled, hole), out)  # the hole's pixels change nothing
    completed = generator.complete(image, hole)
    known = known_edges(image, hole)
    assert torch.equal(completed * (1 - hole), known)  # the known edges kept exactly
    assert torch.equal(completed * hole, out * hole)  # the generator's own in the hole
    assert any(hasattr(m, "parametrizations") for m in generator.modules())  # spectral norm


def test_the_edge_loss_judges_edge_maps_beside_the_grey_image():
    from course_lib import losses
    from course_lib import train as training
    from course_lib.edgeconnect import EdgeGenerator
    from course_lib.edges import canny_edges

    torch.manual_seed(0)
    spec = {
        "terms": "edges",
        "weights": {"adversarial": 1.0, "feature_matching": 10.0},
        "discriminator": {"width": 8, "layers": 2},
    }
    loss_fn = training.build_loss(spec)
    assert isinstance(loss_fn, losses.EdgeAdversarialLoss)
    assert (loss_fn.adversarial, loss_fn.feature_matching) == (1.0, 10.0)  # the paper's weights
    assert loss_fn.discriminator.in_channels == 2
    loss_fn.discriminator.eval()  # spectral norm's power iteration would move between calls
    model = EdgeGenerator(width=4, blocks=1)
    image = torch.zeros(2, 3, 32, 32)
    image[..., 6:26, 6:26] = 1
    hole = torch.zeros(2, 1, 32, 32)
    hole[..., 10:22, 10:22] = 1
    loss, parts = loss_fn(model, image, hole)
    assert set(parts) == {"adversarial", "feature_matching", "edge_l1"}
    weighted = parts["adversarial"] + 10 * parts["feature_matching"]
    assert loss.item() == pytest.approx(weighted, rel=1e-5)  # edge_l1 is reported only
    fake = loss_fn.last_fake
    assert fake.shape == (2, 2, 32, 32) and torch.equal(fake[:, :1], image.mean(1, keepdim=True))
    d_loss, d_parts = loss_fn.discriminator_loss(image, fake, hole)
    real = loss_fn.discriminator(loss_fn.judged(image, canny_edges(image)))
    expected = losses.nonsaturating_d_loss(real, loss_fn.discriminator(fake))
    assert set(d_parts) == {"d_loss"} and d_loss.item() == pytest.approx(expected.item())
    loss.backward()
    assert all(p.grad is not None for p in model.parameters())
