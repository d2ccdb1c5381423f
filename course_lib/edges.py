"""Edge maps for structure-first inpainting (lesson 09).

EdgeConnect (Nazeri et al., 2019) inpaints in two steps: first the *edges* (where the
structure goes), then the colours, guided by the completed edges. Its edges are Canny edges
of the grey image (Gaussian smoothing with sigma 2). A network is given the edges of the
known region only, since inside the hole they are what it must draw; and they are found from
the known pixels alone, smoothing that ignores the hole, so that nothing hidden leaks into the
edges beside it.

Canny's detector: smooth with a Gaussian, take the gradient, keep only local maxima of its
magnitude across the edge (thin lines), and keep the pixels above a high threshold plus the
pixels above a low threshold connected to them (hysteresis). OpenCV's implementation works on
8-bit images; the thresholds are on the magnitude of its 3x3 Sobel gradient, in grey levels.
"""

from __future__ import annotations

import cv2
import numpy as np
import torch

from course_lib.convert import image_to_numpy
from course_lib.validate import check_image, check_mask

__all__ = ["CANNY_SIGMA", "canny_edges", "known_edges"]

CANNY_SIGMA = 2.0  # EdgeConnect's smoothing
LOW_THRESHOLD, HIGH_THRESHOLD = 30, 60  # hysteresis thresholds on the Sobel magnitude (grey levels)


def _blur(array: np.ndarray, sigma: float) -> np.ndarray:
    return cv2.GaussianBlur(array, (0, 0), sigmaX=sigma, borderType=cv2.BORDER_REFLECT)


def canny_edges(
    image: torch.Tensor,
    sigma: float = CANNY_SIGMA,
    low: float = LOW_THRESHOLD,
    high: float = HIGH_THRESHOLD,
    known: torch.Tensor | None = None,
) -> torch.Tensor:
    """Canny edges of ``image`` ``(B, 3, H, W)`` in [0, 1] (grey = the mean of the channels):
    ``(B, 1, H, W)`` float32, 1 on an edge pixel, 0 elsewhere.

    ``known`` ``(B, 1, H, W)`` (1 = known): smooth from the known pixels only (normalised
    convolution, ``blur(grey * known) / blur(known)``), as scikit-image's Canny does with a
    mask and EdgeConnect with it, so the hole's pixels cannot leak into the edges beside it.
    """
    check_image(image)
    if not sigma > 0 or not 0 <= low <= high:
        raise ValueError(
            f"need sigma > 0 and 0 <= low <= high, got sigma={sigma}, low={low}, high={high}."
        )
    if known is not None:
        check_mask(known, name="known", like=image)
    if known is None:
        known = torch.ones_like(image[:, :1])
    maps = []
    for picture, weight in zip(image.detach().cpu(), known.detach().cpu()[:, 0], strict=True):
        grey = image_to_numpy(picture.mean(dim=0, keepdim=True).clamp(0, 1))  # (H, W) in [0, 1]
        weight = weight.numpy().astype(np.float32)  # (H, W)
        # Deep in a wide hole both blurs are 0: those pixels get 0, far from any known edge.
        normalised = _blur(grey.astype(np.float32) * weight, sigma) / np.maximum(
            _blur(weight, sigma), 1e-6
        )
        smooth = np.round(np.clip(normalised, 0, 1) * 255).astype(np.uint8)  # OpenCV's 8 bits
        maps.append(cv2.Canny(smooth, low, high, L2gradient=True) > 0)
    edges = torch.from_numpy(np.stack(maps).astype(np.float32))[:, None]  # (B, 1, H, W)
    return edges.to(image.device)


def known_edges(image: torch.Tensor, hole: torch.Tensor, **options: float) -> torch.Tensor:
    """The edges a method may be given: :func:`canny_edges` of the known pixels (smoothed
    from them alone), zero in the hole (``hole`` ``(B, 1, H, W)``, 1 = hole). The hole's
    pixels change nothing."""
    check_mask(hole, like=image)
    return canny_edges(image, known=1 - hole, **options) * (1 - hole)
