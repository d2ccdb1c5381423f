"""Pictures for the lessons: image grids with titles, mask overlays, side-by-side panels.

Every function takes course tensors (``(B, C, H, W)`` or ``(C, H, W)`` in ``[0, 1]``, masks
``(B, 1, H, W)`` with 1 = hole) and returns a matplotlib ``Figure`` (or an image tensor for
:func:`overlay`), so notebooks can show, save or test them.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import matplotlib.pyplot as plt
import torch
from matplotlib.figure import Figure

from course_lib.convert import image_to_numpy

HOLE_COLOUR = (1.0, 0.2, 0.2)  # holes are drawn in red throughout the course


def _as_list(images: torch.Tensor | Sequence[torch.Tensor]) -> list[torch.Tensor]:
    """A batch ``(B, C, H, W)`` or a sequence of ``(C, H, W)`` -> list of ``(C, H, W)``."""
    if isinstance(images, torch.Tensor):
        if images.dim() == 3:
            return [images]
        if images.dim() == 4:
            return list(images)
        raise ValueError(f"expected (C, H, W) or (B, C, H, W), got shape {tuple(images.shape)}.")
    return [image[0] if image.dim() == 4 else image for image in images]


def _draw(axis: plt.Axes, image: torch.Tensor, title: str | None) -> None:
    """Draw one ``(C, H, W)`` tensor without interpolation (pixels stay pixels)."""
    array = image_to_numpy(image.clamp(0, 1))
    axis.imshow(
        array, cmap="gray" if array.ndim == 2 else None, vmin=0, vmax=1, interpolation="nearest"
    )
    axis.set_xticks([])
    axis.set_yticks([])
    if title:
        axis.set_title(title, fontsize=9)


def show_images(
    images: torch.Tensor | Sequence[torch.Tensor],
    titles: Sequence[str] | None = None,
    columns: int = 8,
    title: str | None = None,
    size: float = 1.6,
) -> Figure:
    """A grid of images (RGB or single-channel masks) with optional per-image titles."""
    tiles = _as_list(images)
    if titles is not None and len(titles) != len(tiles):
        raise ValueError(f"got {len(titles)} titles for {len(tiles)} images; give one per image.")
    columns = max(1, min(columns, len(tiles)))
    rows = math.ceil(len(tiles) / columns)
    figure, axes = plt.subplots(
        rows, columns, figsize=(size * columns, (size + 0.35) * rows + 0.5), squeeze=False
    )
    for index, axis in enumerate(axes.flat):
        if index < len(tiles):
            _draw(axis, tiles[index], titles[index] if titles else None)
        else:
            axis.axis("off")
    if title:
        figure.suptitle(title)
    figure.tight_layout()
    return figure


def overlay(image: torch.Tensor, hole: torch.Tensor, alpha: float = 0.6) -> torch.Tensor:
    """Tint the hole pixels of ``image`` red: ``(B, 3, H, W)`` + ``(B, 1, H, W)`` -> ``(B, 3, H, W)``.

    The picture shows what the mask covers without hiding what lies underneath.
    """
    colour = torch.tensor(HOLE_COLOUR, dtype=image.dtype, device=image.device).view(1, 3, 1, 1)
    weight = alpha * hole.to(image.dtype)  # (B, 1, H, W)
    return image * (1 - weight) + colour * weight


def masked_input(image: torch.Tensor, hole: torch.Tensor) -> torch.Tensor:
    """What an inpainting method is given: the image with its holes painted white."""
    return image * (1 - hole) + hole


def side_by_side(
    panels: dict[str, torch.Tensor], title: str | None = None, size: float = 2.2
) -> Figure:
    """Rows of named panels: ``{"image": (B,3,H,W), "hole": (B,1,H,W), ...}``, one row per sample."""
    if not panels:
        raise ValueError("side_by_side needs at least one panel, e.g. {'image': images}.")
    names = list(panels)
    batches = [_as_list(panels[name]) for name in names]
    rows = len(batches[0])
    if any(len(batch) != rows for batch in batches):
        raise ValueError("every panel must hold the same number of images.")
    figure, axes = plt.subplots(
        rows, len(names), figsize=(size * len(names), (size + 0.35) * rows + 0.5), squeeze=False
    )
    for row in range(rows):
        for column, name in enumerate(names):
            _draw(axes[row, column], batches[column][row], name if row == 0 else None)
    if title:
        figure.suptitle(title)
    figure.tight_layout()
    return figure
