"""Canny edges for structure-first inpainting (course_lib.edges)."""

import pytest
import torch

from course_lib import masks
from course_lib.edges import canny_edges, known_edges


def square_image(size: int = 32, top: int = 10, side: int = 12) -> torch.Tensor:
    image = torch.zeros(1, 3, size, size)
    image[..., top : top + side, top : top + side] = 1.0  # a white square on black
    return image


def test_the_edges_of_a_square_are_its_outline():
    image = square_image()
    edges = canny_edges(image)[0, 0]
    assert set(edges.unique().tolist()) == {0.0, 1.0}
    # Every edge pixel lies within one pixel of the square's outline (rows/columns 9.5 and 21.5).
    rows, columns = edges.nonzero().unbind(1)
    distance_to_outline = torch.minimum(
        torch.minimum((rows - 9.5).abs(), (rows - 21.5).abs()),
        torch.minimum((columns - 9.5).abs(), (columns - 21.5).abs()),
    )
    inside_band = (rows >= 8) & (rows <= 23) & (columns >= 8) & (columns <= 23)
    assert bool((distance_to_outline <= 1.5).all() & inside_band.all())
    # Each of the four sides is found along most of its length, and the flat parts are empty.
    for side in (edges[9:11, 12:20], edges[21:23, 12:20], edges[12:20, 9:11], edges[12:20, 21:23]):
        assert side.any(dim=0 if side.shape[0] == 2 else 1).float().mean() >= 0.75
    assert edges[14:18, 14:18].sum() == 0 and edges[:5, :5].sum() == 0


def test_known_edges_leave_the_hole_empty_and_a_flat_image_has_none():
    image = square_image(64, top=8, side=48)
    hole = masks.centred_box(64, 0.05)  # about 14x14 in the middle, 14 px from the outline
    given = known_edges(image, hole)
    assert given[hole.bool()].sum() == 0
    # Far from the hole (beyond the blur's reach) they are the image's own edges.
    far = torch.nn.functional.max_pool2d(hole, 17, stride=1, padding=8) == 0
    assert canny_edges(image)[far].sum() > 0  # some of the outline is that far
    assert torch.equal(given[far], canny_edges(image)[far])
    assert canny_edges(torch.full((2, 3, 17, 9), 0.4)).sum() == 0  # odd sizes, no structure
    with pytest.raises(ValueError, match="low <= high"):
        canny_edges(square_image(), low=80, high=40)


def test_the_holes_pixels_do_not_leak_into_the_known_edges():
    torch.manual_seed(0)
    image = square_image(48, top=14, side=20)
    hole = torch.zeros(1, 1, 48, 48)
    hole[..., 18:30, 18:30] = 1  # inside the square, 4 px from its outline
    scrambled = torch.where(hole.bool(), torch.rand_like(image), image)
    assert torch.equal(known_edges(scrambled, hole), known_edges(image, hole))
    # The plain detector, smoothing across the border, sees the scrambled pixels' edges.
    plain = [canny_edges(x) * (1 - hole) for x in (image, scrambled)]
    assert not torch.equal(*plain)
    # The square's outline is still found: it lies 4 px from the hole, within the blur.
    assert known_edges(image, hole)[0, 0, 12:16, 18:30].any(dim=0).float().mean() >= 0.75
    with pytest.raises(ValueError, match="known"):
        canny_edges(image, known=torch.ones(1, 1, 40, 48))
