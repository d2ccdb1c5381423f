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
    image = square_image()
    hole = masks.centred_box(32, 0.2)
    given = known_edges(image, hole)
    assert given[hole.bool()].sum() == 0
    assert torch.equal(given[~hole.bool()], canny_edges(image)[~hole.bool()])
    assert canny_edges(torch.full((2, 3, 17, 9), 0.4)).sum() == 0  # odd sizes, no structure
    with pytest.raises(ValueError, match="low <= high"):
        canny_edges(image, low=80, high=40)
