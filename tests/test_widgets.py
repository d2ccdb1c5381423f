"""The coverage explorer (course_lib.widgets): the plain function and the widget's callbacks."""

import pytest
import torch
from PIL import Image

from course_lib import masks, widgets


def test_coverage_view_masks_a_photo_and_a_scene():
    view = widgets.coverage_view("box", coverage=0.3, seed=1, size=64)
    assert view.images.shape == (2, 3, 64, 64) and view.hole.shape == (2, 1, 64, 64)
    assert all(abs(value - 0.3) <= masks.COVERAGE_TOLERANCE for value in view.measured)
    assert torch.allclose(torch.tensor(view.measured), masks.coverage(view.hole), atol=1e-4)
    known = view.hole.expand_as(view.images) == 0
    assert torch.equal(view.shown[known], view.images[known])  # only holes are tinted
    assert "target 0.30" in view.summary()


def test_natural_coverage_has_no_target():
    view = widgets.coverage_view("irregular", coverage=None, seed=0, size=64)
    assert view.target is None and "natural" in view.summary()


def test_png_bytes_is_an_upscaled_row_of_images():
    import io

    data = widgets.png_bytes(torch.rand(2, 3, 64, 64), pixels=256)
    picture = Image.open(io.BytesIO(data))
    assert picture.size == (2 * 256, 256)


def test_explorer_updates_when_controls_change():
    explorer = widgets.coverage_explorer(kind="irregular", coverage=0.3, size=64)
    first_picture = explorer.children[2].value
    assert explorer.view.target == 0.3
    explorer.controls["kind"].value = "box"
    explorer.controls["coverage"].value = 0.5
    assert explorer.view.target == 0.5
    assert all(abs(value - 0.5) <= masks.COVERAGE_TOLERANCE for value in explorer.view.measured)
    assert explorer.children[2].value != first_picture
    assert "0.50" in explorer.children[3].value
    explorer.controls["size"].value = 128
    assert explorer.view.hole.shape[-1] == 128
    explorer.controls["natural"].value = True
    assert explorer.view.target is None and explorer.controls["coverage"].disabled


def test_explorer_reports_an_unreachable_coverage_instead_of_crashing():
    explorer = widgets.coverage_explorer(kind="box", coverage=0.3, size=64)
    before = explorer.view
    explorer.controls["coverage"].value = 0.9  # boxes keep a margin: at most 0.88 at 64x64
    assert explorer.children[3].value.startswith("cannot draw this mask")
    assert "margin" in explorer.children[3].value
    assert explorer.view is before  # the last good view stays on screen
    explorer.controls["coverage"].value = 0.5
    assert explorer.view is not before and explorer.view.target == 0.5


@pytest.mark.parametrize("kind", masks.KINDS)
def test_every_kind_in_the_dropdown_draws(kind):
    view = widgets.coverage_view(kind, coverage=0.25, seed=0, size=64)
    assert view.hole.shape == (2, 1, 64, 64)
