"""Contextual attention (course_lib.contextual_attention) against explicit loops."""

import math

import pytest
import torch

from course_lib.contextual_attention import contextual_attention, propagate


def loop_attention(foreground, background, hole, patch=3, scale=10.0, propagation=3):
    """The layer by hand for one sample: patches, cosine scores, propagation, softmax, paste."""
    _, channels, height, width = foreground.shape
    r, pr = patch // 2, propagation // 2

    def window(features, y, x):  # the k x k patch centred at (y, x), zeros outside the map
        out = torch.zeros(channels, patch, patch)
        for dy in range(-r, r + 1):
            for dx in range(-r, r + 1):
                if 0 <= y + dy < height and 0 <= x + dx < width:
                    out[:, dy + r, dx + r] = features[0, :, y + dy, x + dx]
        return out

    def usable(y, x):  # a patch inside the map with no hole pixel
        inside = r <= y < height - r and r <= x < width - r
        return inside and hole[0, 0, y - r : y + r + 1, x - r : x + r + 1].sum() == 0

    cells = [(y, x) for y in range(height) for x in range(width)]
    cosine = torch.zeros(len(cells), len(cells))  # [location, patch]
    for i, (y, x) in enumerate(cells):
        f = window(foreground, y, x).flatten()
        for j, (v, u) in enumerate(cells):
            b = window(background, v, u).flatten()
            cosine[i, j] = (f @ b) / (max(f.norm(), 1e-4) * max(b.norm(), 1e-4))
    index = {cell: i for i, cell in enumerate(cells)}

    def spread(scores, along_rows):
        out = torch.zeros_like(scores)
        for i, (y, x) in enumerate(cells):
            for j, (v, u) in enumerate(cells):
                for d in range(-pr, pr + 1):
                    a = (y, x + d) if along_rows else (y + d, x)
                    c = (v, u + d) if along_rows else (v + d, u)
                    if a in index and c in index:
                        out[i, j] += scores[index[a], index[c]]
        return out

    if propagation > 1:
        cosine = spread(spread(cosine, True), False)
    allowed = torch.tensor([usable(v, u) for v, u in cells])
    weights = torch.softmax(scale * cosine.masked_fill(~allowed, -math.inf), dim=1)
    output = torch.zeros(1, channels, height, width)
    for i, (y, x) in enumerate(cells):  # location (y, x) pastes each patch around itself
        for j, (v, u) in enumerate(cells):
            if weights[i, j] == 0:
                continue
            b = window(background, v, u)
            for dy in range(-r, r + 1):
                for dx in range(-r, r + 1):
                    if 0 <= y + dy < height and 0 <= x + dx < width:
                        output[0, :, y + dy, x + dx] += weights[i, j] * b[:, dy + r, dx + r]
    attention = weights.T.reshape(1, len(cells), height, width)  # [patch, y, x]
    return output / patch**2, attention


@pytest.mark.parametrize("propagation", [1, 3])
def test_the_layer_equals_the_loops(propagation):
    generator = torch.Generator().manual_seed(0)
    foreground = torch.randn(1, 2, 6, 7, generator=generator)
    background = torch.randn(1, 2, 6, 7, generator=generator)
    hole = torch.zeros(1, 1, 6, 7)
    hole[..., 2:4, 3:6] = 1
    output, attention = contextual_attention(foreground, background, hole, propagation=propagation)
    expected_output, expected_attention = loop_attention(
        foreground, background, hole, propagation=propagation
    )
    assert torch.allclose(attention, expected_attention, atol=1e-5)
    assert torch.allclose(output, expected_output, atol=1e-5)
    assert torch.allclose(attention.sum(dim=1), torch.ones(1, 6, 7))


def test_a_hole_copies_the_known_patch_that_matches_it():
    # A background of distinct patches; the foreground at one hole location shows the patch
    # centred at (1, 1): attention there picks that patch, and the output pastes it.
    generator = torch.Generator().manual_seed(1)
    background = torch.randn(1, 4, 8, 8, generator=generator)
    foreground = background.clone()
    hole = torch.zeros(1, 1, 8, 8)
    hole[..., 4:7, 4:7] = 1
    foreground[..., 4:7, 4:7] = background[..., 0:3, 0:3]  # the window of the patch at (1, 1)
    _, attention = contextual_attention(foreground, background, hole, propagation=1)
    assert attention[0, :, 5, 5].argmax().item() == 1 * 8 + 1
    assert attention[0, 1 * 8 + 1, 5, 5] > 0.5
    touching = [y * 8 + x for y in range(3, 8) for x in range(3, 8)]  # patches over the hole
    assert attention[0, touching].max() == 0


def test_propagation_adds_the_diagonal_neighbours():
    scores = torch.zeros(1, 9, 3, 3)
    scores[0, 4, 1, 1] = 1.0  # patch (1, 1) at location (1, 1)
    spread = propagate(scores, 3, 3)
    # Location (1, 2) matched with patch (1, 2) is its neighbour along the row, shifted alike.
    assert spread[0, 5, 1, 2] == 1.0 and spread[0, 4, 1, 2] == 0.0
    assert spread[0, 0, 0, 0] == 1.0  # and diagonally, through the row and then the column
    assert spread.sum() == 9.0


def test_bad_input_is_explained():
    maps = torch.randn(1, 2, 5, 5)
    with pytest.raises(ValueError, match="at least one patch free of holes"):
        contextual_attention(maps, maps, torch.ones(1, 1, 5, 5))
    with pytest.raises(ValueError, match="at the maps' resolution"):
        contextual_attention(maps, maps, torch.zeros(1, 1, 10, 10))
    with pytest.raises(ValueError, match="odd size"):
        contextual_attention(maps, maps, torch.zeros(1, 1, 5, 5), patch=2)


def test_the_shift_connection_copies_the_most_similar_known_feature():
    from course_lib.contextual_attention import shift_connection

    generator = torch.Generator().manual_seed(2)
    decoder = torch.randn(2, 3, 5, 4, generator=generator)
    encoder = torch.randn(2, 3, 5, 4, generator=generator)
    hole = torch.zeros(2, 1, 5, 4)
    hole[0, 0, 1:3, 1:3] = 1
    hole[1, 0, 3:, :] = 1
    shifted, source = shift_connection(decoder, encoder, hole)
    for b in range(2):
        for y in range(5):
            for x in range(4):
                if hole[b, 0, y, x] == 0:
                    assert source[b, y, x] == -1 and shifted[b, :, y, x].abs().max() == 0
                    continue
                best, best_cosine = None, -2.0
                for v in range(5):
                    for u in range(4):
                        if hole[b, 0, v, u] == 1:
                            continue
                        cosine = torch.nn.functional.cosine_similarity(
                            decoder[b, :, y, x], encoder[b, :, v, u], dim=0
                        ).item()
                        if cosine > best_cosine:
                            best, best_cosine = (v, u), cosine
                assert source[b, y, x].item() == best[0] * 4 + best[1]
                assert torch.equal(shifted[b, :, y, x], encoder[b, :, best[0], best[1]])


def test_both_layers_name_their_own_maps_in_their_errors():
    from course_lib.contextual_attention import shift_connection

    maps, other = torch.randn(1, 2, 5, 5), torch.randn(1, 3, 5, 5)
    with pytest.raises(ValueError, match="foreground and background must be feature maps"):
        contextual_attention(maps, other, torch.zeros(1, 1, 5, 5))
    with pytest.raises(ValueError, match="decoder and encoder must be feature maps"):
        shift_connection(maps, other, torch.zeros(1, 1, 5, 5))
    with pytest.raises(ValueError, match="at the maps' resolution"):
        shift_connection(maps, maps, torch.zeros(1, 1, 4, 5))
    with pytest.raises(ValueError, match="hole"):
        shift_connection(maps, maps, torch.full((1, 1, 5, 5), 0.5))  # not binary
    with pytest.raises(ValueError, match="known location"):
        shift_connection(maps, maps, torch.ones(1, 1, 5, 5))


def test_the_attention_and_its_gradient_hold_no_subnormal_floats_and_still_sum_to_one():
    # Propagated scores times the scale span far more than exp can hold: without the cut-off,
    # many weights are subnormal floats, and so are their gradients, which slows the pasting
    # convolution and the backward pass on CPUs.
    generator = torch.Generator().manual_seed(0)
    maps = torch.randn(1, 8, 12, 12, generator=generator, requires_grad=True)
    hole = torch.zeros(1, 1, 12, 12)
    hole[..., 4:8, 4:8] = 1
    output, attention = contextual_attention(maps, maps, hole)
    (output * torch.randn(output.shape, generator=generator)).sum().backward()
    tiny = torch.finfo(torch.float32).tiny
    for values in (attention, maps.grad):
        assert not ((values.abs() > 0) & (values.abs() < tiny)).any()
    assert torch.allclose(attention.sum(dim=1), torch.ones(1, 12, 12), atol=1e-5)
    # What is cut is nothing: at most e**-46 of the best weight at its location.
    best = attention.amax(dim=1, keepdim=True)
    assert ((attention == 0) | (attention > best * 1e-20)).all()
    raw = torch.softmax(
        10.0 * propagate(torch.randn(1, 144, 12, 12, generator=generator), 12, 12), 1
    )
    assert ((raw > 0) & (raw < tiny)).any(), "the case the cut-off is for does occur"


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
@pytest.mark.parametrize("scale", [1.0, 300.0])
def test_half_precision_attention_stays_finite_and_close_to_float32(dtype, scale):
    # Large features are where half precision could overflow (a patch norm of 8 * 9 values
    # of 300 is 2,500, its square 6.5 million, far above float16's 65,504).
    generator = torch.Generator().manual_seed(0)
    maps = torch.randn(1, 8, 12, 12, generator=generator) * scale
    hole = torch.zeros(1, 1, 12, 12)
    hole[..., 4:8, 4:8] = 1
    expected, expected_attention = contextual_attention(maps, maps, hole)
    output, attention = contextual_attention(maps.to(dtype), maps.to(dtype), hole)
    assert (
        output.dtype == dtype and torch.isfinite(output).all() and torch.isfinite(attention).all()
    )
    assert torch.allclose(attention.float().sum(dim=1), torch.ones(1, 12, 12), atol=1e-2)
    assert (output.float() - expected).abs().max() < 0.05 * scale
    assert (attention.float() - expected_attention).abs().max() < 0.05


def test_usable_patches_are_those_with_no_hole_pixel_and_inside_the_map_by_loops():
    from course_lib.contextual_attention import usable_patches

    hole = (torch.rand(2, 1, 7, 9, generator=torch.Generator().manual_seed(3)) < 0.2).float()
    usable = usable_patches(hole)  # (2, 63)
    for b in range(2):
        for y in range(7):
            for x in range(9):
                inside = 1 <= y <= 5 and 1 <= x <= 7
                clean = inside and hole[b, 0, y - 1 : y + 2, x - 1 : x + 2].sum() == 0
                assert bool(usable[b, y * 9 + x]) == bool(clean)
