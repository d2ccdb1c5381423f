"""Figures and overlays (course_lib.viz)."""

import matplotlib

matplotlib.use("Agg")

import pytest
import torch

from course_lib import viz


def test_overlay_tints_only_holes():
    image = torch.zeros(1, 3, 4, 4)
    hole = torch.zeros(1, 1, 4, 4)
    hole[..., 0, 0] = 1
    tinted = viz.overlay(image, hole, alpha=1.0)
    assert torch.allclose(tinted[0, :, 0, 0], torch.tensor(viz.HOLE_COLOUR))
    assert torch.equal(tinted[..., 1:, :], image[..., 1:, :])


def test_masked_input_paints_holes_white():
    image = torch.full((1, 3, 2, 2), 0.25)
    hole = torch.tensor([[[[1.0, 0.0], [0.0, 0.0]]]])
    shown = viz.masked_input(image, hole)
    assert shown[0, :, 0, 0].eq(1).all() and shown[0, :, 1, 1].eq(0.25).all()


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
    with pytest.raises(ValueError, match="same number"):
        viz.side_by_side({"a": torch.rand(2, 3, 8, 8), "b": torch.rand(1, 3, 8, 8)})
