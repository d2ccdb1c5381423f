"""Lesson 08's coarse-to-fine network (course_lib.deepfill): DeepFill v1 with contextual
attention, and the same network with the layer replaced by the identity."""

import pytest
import torch
import torch.nn.functional as F
from network_helpers import model as seeded

from course_lib.contextual_attention import contextual_attention
from course_lib.deepfill import CoarseToFine, attention_hole


def box_hole(batch: int = 2, size: int = 32) -> torch.Tensor:
    hole = torch.zeros(batch, 1, size, size)
    hole[..., 8:20, 10:24] = 1
    return hole


def test_the_two_arms_have_the_same_weights_and_differ_only_in_the_layer():
    with_layer, without = seeded(CoarseToFine), seeded(CoarseToFine, "small_no_attention")
    assert with_layer.parameter_count() == without.parameter_count()
    without.load_state_dict(with_layer.state_dict())  # every weight fits the other arm
    image, hole = torch.rand(2, 3, 32, 32), box_hole()
    coarse, refined, attention = without.stages(image, hole)
    assert attention is None and coarse.shape == refined.shape == (2, 3, 32, 32)
    coarse_a, refined_a, attention = with_layer.stages(image, hole)
    assert torch.equal(coarse, coarse_a)  # the coarse pass does not see the layer
    assert not torch.allclose(refined, refined_a)  # the layer changes the refinement
    assert attention.shape == (2, 8 * 8, 8, 8)  # a quarter of the resolution


def test_the_attention_branch_is_contextual_attention_on_its_own_features():
    model = seeded(CoarseToFine)
    image, hole = torch.rand(2, 3, 32, 32), box_hole()
    with torch.no_grad():
        coarse, _, attention = model.stages(image, hole)
        known = image * (1 - hole)
        features = model.copy_in(torch.cat([known + hole * coarse, hole], dim=1))
        expected = contextual_attention(features, features, attention_hole(hole))[1]
    assert torch.allclose(attention, expected, atol=1e-6)
    # No weight on a patch that touches the hole (a cell is hole if any of its pixels is).
    small = attention_hole(hole)  # (B, 1, 8, 8)
    assert small[0, 0, 2, 2] == 1 and small[0, 0, 1, 2] == 0  # rows 8-19 -> cells 2-4
    touched = F.max_pool2d(F.pad(small, (1,) * 4, value=1.0), 3, stride=1).flatten(1)  # (B, L)
    assert (attention[touched.bool()[..., None, None].expand_as(attention)] == 0).all()
    assert torch.allclose(attention.sum(dim=1), torch.ones(2, 8, 8), atol=1e-5)


def test_a_sample_with_nothing_to_copy_keeps_its_features_and_the_batch_is_unchanged():
    model = seeded(CoarseToFine)
    image = torch.rand(2, 3, 32, 32)
    hole = box_hole()
    hole[1] = 1
    hole[1, :, :2, :2] = 0  # a few known pixels: no 3x3 patch of cells free of holes
    with torch.no_grad():
        _, refined, attention = model.stages(image, hole)
        _, alone, _ = model.stages(image[:1], hole[:1])
    assert (attention[1] == 0).all() and torch.isfinite(refined).all()
    assert torch.allclose(refined[:1], alone, atol=1e-6)  # sample 0 does not see sample 1


def test_bad_sizes_masks_and_widths_are_explained():
    model = seeded(CoarseToFine)
    with pytest.raises(ValueError, match="multiples of 4"):
        model(torch.rand(1, 3, 30, 32), torch.zeros(1, 1, 30, 32))
    with pytest.raises(ValueError, match="hole"):
        model(torch.rand(1, 3, 32, 32), torch.full((1, 1, 32, 32), 0.5))  # not binary
    with pytest.raises(ValueError, match="hole"):
        model(torch.rand(1, 3, 32, 32), torch.zeros(1, 1, 16, 16))  # another size
    with pytest.raises(ValueError, match="width must be an even int"):
        CoarseToFine(width=7)
    # Sides that are multiples of 4 but not square, and gradients reach every weight.
    model.train()
    image, hole = torch.rand(2, 3, 28, 36), torch.zeros(2, 1, 28, 36)
    hole[..., 8:16, 12:24] = 1
    model(image, hole).mean().backward()
    assert all(p.grad is not None for p in model.parameters())
