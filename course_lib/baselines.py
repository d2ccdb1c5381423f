"""Classical inpainting, the baselines every learned method must beat (lesson 02).

Every method has the same signature, ``fill(image, hole) -> composite``:

* ``image``: float32 ``(B, 3, H, W)`` in ``[0, 1]``; ``hole``: ``(B, 1, H, W)``, 1 = hole.
* The answer is the composite ``hole * prediction + (1 - hole) * image``: known pixels come
  back exactly, float32, on the image's device. The pixels under the hole are never read, so
  whatever they hold cannot leak into the answer.
* A sample whose mask is all hole raises ``ValueError`` (nothing to inpaint from); a sample
  with an empty mask comes back unchanged.

:data:`METHODS` lists them in the order the lesson teaches them, from the crudest guess to
copying patches: ``mean_fill``, ``nearest_fill``, ``telea``, ``navier_stokes`` (both OpenCV),
``biharmonic`` (scikit-image) and ``patchmatch`` (the course's own, :mod:`course_lib.patchmatch`).
The methods that run numpy/OpenCV code fill one image at a time through :func:`fill_each`.
"""

from __future__ import annotations

import os
from collections.abc import Callable

import cv2
import numpy as np
import torch
from skimage.restoration import inpaint_biharmonic

from course_lib.convert import image_to_numpy, numpy_to_image, to_uint8
from course_lib.masks import composite
from course_lib.patchmatch import check_options, nearest_known, patchmatch_fill
from course_lib.validate import check_image, check_known_pixels, check_mask

# COURSE_OPENCV_OPTIMIZED=0 switches off OpenCV's vectorised code paths: the portable test run
# (make nbval-portable) uses it to check that no printed result depends on the CPU's kernels.
OPENCV_SWITCH = "COURSE_OPENCV_OPTIMIZED"
cv2.setUseOptimized(os.environ.get(OPENCV_SWITCH, "1") != "0")

# A fill for one image: (H, W, 3) float32 with zeros under the hole and the (H, W) bool hole
# -> (H, W, 3) prediction, float in [0, 1] or uint8.
ImageFill = Callable[[np.ndarray, np.ndarray], np.ndarray]


def checked_inputs(image: torch.Tensor, hole: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Validate ``image`` and ``hole`` and return them as float32.

    Raises ``ValueError`` for a bad image or mask (see :mod:`course_lib.validate`) and for a
    sample whose mask is all hole: with no known pixel there is nothing to inpaint from.
    """
    check_image(image)
    check_mask(hole, like=image)
    check_known_pixels(hole)
    image, hole = image.float(), hole.float()
    return image, hole


def fill_each(image: torch.Tensor, hole: torch.Tensor, fill_one: ImageFill) -> torch.Tensor:
    """Run a one-image numpy fill over a batch and return the composite ``(B, 3, H, W)``.

    ``fill_one(picture, holes)`` gets ``picture`` ``(H, W, 3)`` float32 with zeros under the
    hole (so it cannot see what was there) and ``holes`` ``(H, W)`` bool, and returns the
    prediction ``(H, W, 3)`` as floats in ``[0, 1]`` (clipped here) or uint8. Samples with an
    empty mask are not filled at all.
    """
    image, hole = checked_inputs(image, hole)
    prediction = image.clone()  # (B, 3, H, W)
    for index in range(image.shape[0]):
        if not hole[index].any():
            continue
        picture = image_to_numpy(image[index] * (1 - hole[index]))  # (H, W, 3), hole zeroed
        holes = image_to_numpy(hole[index]) > 0.5  # (H, W) bool
        result = fill_one(picture, holes)
        if result.dtype != np.uint8:
            result = np.clip(result, 0.0, 1.0)
        prediction[index] = numpy_to_image(result).to(image.device)  # (3, H, W)
    return composite(image, hole, prediction)


def mean_fill(image: torch.Tensor, hole: torch.Tensor) -> torch.Tensor:
    """Fill the hole with the mean colour of the known pixels (per image, per channel).

    The crudest guess: the best constant under the squared error, if the hole looked like
    the rest of the image on average.
    """
    image, hole = checked_inputs(image, hole)
    known = 1 - hole  # (B, 1, H, W)
    mean = (image * known).sum(dim=(2, 3), keepdim=True) / known.sum(dim=(2, 3), keepdim=True)
    return composite(image, hole, mean.expand_as(image))  # mean: (B, 3, 1, 1)


def nearest_fill(image: torch.Tensor, hole: torch.Tensor) -> torch.Tensor:
    """Fill each hole pixel with the colour of the nearest known pixel (Euclidean distance;
    ties: any of them), found with scipy's distance transform.

    Colours extend straight into the hole, which leaves a Voronoi pattern of flat cells.
    """
    return fill_each(image, hole, nearest_known)


def _opencv_fill(flags: int, radius: float) -> ImageFill:
    """A one-image fill with ``cv2.inpaint`` (uint8 in and out, as OpenCV requires)."""

    def fill_one(picture: np.ndarray, holes: np.ndarray) -> np.ndarray:
        return cv2.inpaint(to_uint8(picture), holes.astype(np.uint8), radius, flags)

    return fill_one


def _check_radius(radius: float) -> float:
    """OpenCV's neighbourhood radius: a positive number of pixels."""
    if isinstance(radius, bool) or not isinstance(radius, (int, float)) or not radius > 0:
        raise ValueError(f"radius must be a positive number of pixels, got {radius!r}.")
    return float(radius)


def telea(image: torch.Tensor, hole: torch.Tensor, radius: float = 3) -> torch.Tensor:
    """OpenCV's fast marching inpainting (Telea, 2004): fill the hole from its border inwards,
    each pixel a weighted extrapolation of the known pixels within ``radius`` pixels.

    OpenCV works on uint8, so the prediction is rounded to 1/255; the known pixels come back
    from the float input, exactly. ``radius=3`` is OpenCV's documented default: larger radii
    blur more.
    """
    return fill_each(image, hole, _opencv_fill(cv2.INPAINT_TELEA, _check_radius(radius)))


def navier_stokes(image: torch.Tensor, hole: torch.Tensor, radius: float = 3) -> torch.Tensor:
    """OpenCV's Navier-Stokes inpainting (Bertalmio et al., 2001): continue the lines of equal
    brightness (isophotes) into the hole like a fluid flow. Same options as :func:`telea`."""
    return fill_each(image, hole, _opencv_fill(cv2.INPAINT_NS, _check_radius(radius)))


def _biharmonic_one(picture: np.ndarray, holes: np.ndarray) -> np.ndarray:
    """scikit-image's biharmonic fill of one image (float64 out; clipped by fill_each).

    The linear system is solved in float64: in float32 a near-exact fill (a linear ramp)
    carries the rounding noise of the machine's vector kernels, which moves its PSNR by dB.
    """
    return inpaint_biharmonic(picture.astype(np.float64), holes, channel_axis=-1)


def biharmonic(image: torch.Tensor, hole: torch.Tensor) -> torch.Tensor:
    """Fill the hole with the smoothest surface that meets the known pixels (scikit-image):
    the biharmonic equation continues values and slopes, so gradients cross the hole."""
    return fill_each(image, hole, _biharmonic_one)


def patchmatch(
    image: torch.Tensor,
    hole: torch.Tensor,
    patch_size: int = 7,
    iterations: int = 5,
    levels: int | None = None,
    seed: int = 0,
) -> torch.Tensor:
    """Exemplar-based fill: copy patches from the known region, found with PatchMatch.

    Coarse to fine over ``levels`` pyramid levels (``None``: automatic), ``iterations``
    rounds of search and voting per level, ``patch_size`` x ``patch_size`` patches; the same
    ``seed`` gives the same answer. See :func:`course_lib.patchmatch.patchmatch_fill` for the
    steps and :mod:`course_lib.patchmatch` for each one.
    """

    options = check_options(patch_size, iterations, levels, seed)  # even if no mask has a hole

    def fill_one(picture: np.ndarray, holes: np.ndarray) -> np.ndarray:
        return patchmatch_fill(picture, holes, *options)

    return fill_each(image, hole, fill_one)


# Name -> fill, in the order the lesson teaches them.
METHODS: dict[str, Callable[[torch.Tensor, torch.Tensor], torch.Tensor]] = {
    "mean_fill": mean_fill,
    "nearest_fill": nearest_fill,
    "telea": telea,
    "navier_stokes": navier_stokes,
    "biharmonic": biharmonic,
    "patchmatch": patchmatch,
}
