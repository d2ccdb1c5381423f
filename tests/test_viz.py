"""Figures and overlays (course_lib.viz)."""

import matplotlib

matplotlib.use("Agg")

import pytest
import torch

from course_lib import viz


def test_overlay_lays_the_pattern_over_holes_only():
    image = torch.full((1, 3, 4, 4), 0.5)
    hole = torch.zeros(1, 1, 4, 4)
    hole[..., 0, :2] = 1  # (0, 0) is a magenta square of the pattern, (0, 1) a black one
    shown = viz.overlay(image, hole, alpha=1.0)
    assert torch.equal(shown[0, :, 0, 0], torch.tensor(viz.HOLE_COLOUR))
    assert torch.equal(shown[0, :, 0, 1], torch.zeros(3))
    assert torch.equal(shown[..., 1:, :], image[..., 1:, :])
    half = viz.overlay(image, hole, alpha=0.5)[0, :, 0, 0]
    assert torch.allclose(half, 0.5 * 0.5 + 0.5 * torch.tensor(viz.HOLE_COLOUR))


@pytest.mark.parametrize("content", [0.0, 1.0])
def test_masked_input_shows_the_hole_on_black_and_white_content(content):
    image = torch.full((1, 3, 5, 6), content)
    hole = torch.zeros(1, 1, 5, 6)
    hole[..., 1:4, 1:5] = 1
    shown = viz.masked_input(image, hole)
    pattern = viz.hole_pattern(image)[0]  # (3, H, W)
    inside = hole[0, 0].bool()
    assert torch.equal(shown[0][:, inside], pattern[:, inside])
    assert torch.equal(shown[0][:, ~inside], image[0][:, ~inside])
    # A checkerboard: neighbours differ, so no flat content looks like a hole.
    assert not torch.equal(pattern[:, 1, 1], pattern[:, 1, 2])
    assert torch.equal(pattern[:, 1, 1], pattern[:, 2, 2])


def test_show_images_makes_one_axis_per_image_and_titles():
    figure = viz.show_images(torch.rand(5, 3, 8, 8), titles=list("abcde"), columns=3, title="t")
    visible = [axis for axis in figure.axes if axis.get_visible() and axis.images]
    assert len(visible) == 5
    assert [axis.get_title() for axis in visible] == list("abcde")
    with pytest.raises(ValueError, match="titles"):
        viz.show_images(torch.rand(2, 3, 8, 8), titles=["one"])


def test_side_by_side_lays_out_rows_and_columns():
    figure = viz.side_by_side({"image": torch.rand(2, 3, 8, 8), "hole": torch.zeros(2, 1, 8, 8)})
    assert len(figure.axes) == 4
    assert figure.axes[0].get_title() == "image" and figure.axes[1].get_title() == "hole"
    labelled = viz.side_by_side({"image": torch.rand(2, 3, 8, 8)}, row_labels=["scene", "photo"])
    assert [axis.get_ylabel() for axis in labelled.axes] == ["scene", "photo"]
    with pytest.raises(ValueError, match="2 row labels for 1 rows"):
        viz.side_by_side({"image": torch.rand(1, 3, 8, 8)}, row_labels=["a", "b"])
    with pytest.raises(ValueError, match="same number"):
        viz.side_by_side({"a": torch.rand(2, 3, 8, 8), "b": torch.rand(1, 3, 8, 8)})
