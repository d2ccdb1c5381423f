"""Conversions (course_lib.convert) and input checks (course_lib.validate)."""

import numpy as np
import pytest
import torch
from PIL import Image

from course_lib import convert, validate


def test_numpy_round_trip_keeps_pixels():
    rng = np.random.default_rng(0)
    array = rng.integers(0, 256, size=(5, 7, 3), dtype=np.uint8)
    image = convert.numpy_to_image(array)
    assert image.shape == (3, 5, 7) and image.dtype == torch.float32
    assert np.array_equal(convert.to_uint8(convert.image_to_numpy(image)), array)


def test_grey_and_alpha_become_rgb():
    grey = np.full((4, 4), 255, dtype=np.uint8)
    assert convert.numpy_to_image(grey).shape == (3, 4, 4)
    rgba = np.zeros((4, 4, 4), dtype=np.uint8)
    assert convert.numpy_to_image(rgba).shape == (3, 4, 4)


def test_pil_round_trip():
    picture = Image.new("RGB", (6, 3), (255, 0, 128))
    image = convert.pil_to_image(picture)
    assert image.shape == (3, 3, 6)
    assert torch.allclose(image[:, 0, 0], torch.tensor([1.0, 0.0, 128 / 255]))
    assert convert.image_to_pil(image).getpixel((0, 0)) == (255, 0, 128)


def test_masks_convert_to_two_dimensional_arrays():
    mask = torch.zeros(2, 1, 4, 5)
    assert convert.image_to_numpy(mask).shape == (2, 4, 5)


def test_out_of_range_float_arrays_are_rejected():
    with pytest.raises(ValueError, match="divide 0-255 values by 255"):
        convert.numpy_to_image(np.full((2, 2, 3), 200.0))


@pytest.mark.parametrize(
    ("image", "message"),
    [
        (np.zeros((1, 3, 4, 4)), "must be a torch.Tensor"),
        (torch.zeros(3, 4, 4), r"unsqueeze\(0\)"),
        (torch.zeros(1, 4, 4, 4), "must have 3 channels"),
        (torch.zeros(1, 3, 4, 4, dtype=torch.uint8), "floating-point"),
        (torch.full((1, 3, 4, 4), 2.0), r"must lie in \[0, 1\]"),
    ],
)
def test_bad_images_are_explained(image, message):
    with pytest.raises(ValueError, match=message):
        validate.check_image(image)


def test_good_image_passes():
    validate.check_image(torch.rand(2, 3, 8, 8))


@pytest.mark.parametrize(
    ("mask", "message"),
    [
        (torch.zeros(1, 3, 4, 4), r"\(B, 1, H, W\)"),
        (torch.zeros(1, 1, 4, 4, dtype=torch.bool), "float32"),
        (torch.full((1, 1, 4, 4), 0.5), "binary"),
    ],
)
def test_bad_masks_are_explained(mask, message):
    with pytest.raises(ValueError, match=message):
        validate.check_mask(mask)


def test_mask_must_match_its_image():
    with pytest.raises(ValueError, match="does not match the image"):
        validate.check_mask(torch.zeros(1, 1, 4, 4), like=torch.zeros(1, 3, 4, 5))
    validate.check_mask(torch.ones(1, 1, 4, 5), like=torch.zeros(1, 3, 4, 5))


@pytest.mark.parametrize("value", [-0.1, 1.0, 1.5, "half"])
def test_coverage_outside_the_unit_interval_is_rejected(value):
    with pytest.raises(ValueError, match="coverage"):
        validate.check_coverage(value)


def test_sizes_below_the_minimum_are_rejected():
    with pytest.raises(ValueError, match="at least 8 pixels"):
        validate.check_size(7, 64)
    with pytest.raises(ValueError, match="must be an int"):
        validate.check_size(64.0, 64)
