"""EdgeConnect's generators (course_lib.edgeconnect) on odd sizes and their inputs."""

import pytest
import torch

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
