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

# Holes are drawn the same way throughout the course: a checkerboard of one-pixel squares,
# magenta and black. No picture of the course has a texture that fine (its periods start at
# 4 px), so a hole cannot be mistaken for content, on black, white or magenta content alike.
HOLE_COLOUR = (1.0, 0.0, 1.0)


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


def hole_pattern(image: torch.Tensor) -> torch.Tensor:
    """The course's hole picture for ``image``'s size: ``(1, 3, H, W)``, magenta where
    ``row + column`` is even and black where it is odd."""
    height, width = image.shape[-2:]
    rows = torch.arange(height, device=image.device).view(-1, 1)
    columns = torch.arange(width, device=image.device).view(1, -1)
    on = ((rows + columns) % 2 == 0).to(image.dtype)  # (H, W)
    colour = torch.tensor(HOLE_COLOUR, dtype=image.dtype, device=image.device).view(1, 3, 1, 1)
    return colour * on  # (1, 3, H, W)


def overlay(image: torch.Tensor, hole: torch.Tensor, alpha: float = 0.6) -> torch.Tensor:
    """Lay the hole pattern over ``image``: ``(B, 3, H, W)`` + ``(B, 1, H, W)`` -> ``(B, 3, H, W)``.

    The picture shows what the mask covers without hiding what lies underneath: hole pixels
    are ``(1 - alpha) * image + alpha * pattern`` (:func:`hole_pattern`).
    """
    weight = alpha * hole.to(image.dtype)  # (B, 1, H, W)
    return image * (1 - weight) + hole_pattern(image) * weight


def masked_input(image: torch.Tensor, hole: torch.Tensor) -> torch.Tensor:
    """What an inpainting method is given, made visible: the known pixels as they are, and the
    hole, whose pixels every method receives as zeros, drawn as the hole pattern (black with
    every other pixel magenta, :func:`hole_pattern`) so that it shows on dark content too."""
    return image * (1 - hole) + hole_pattern(image) * hole


def side_by_side(
    panels: dict[str, torch.Tensor],
    title: str | None = None,
    size: float = 2.2,
    row_labels: Sequence[str] | None = None,
) -> Figure:
    """Rows of named panels: ``{"image": (B,3,H,W), "hole": (B,1,H,W), ...}``, one row per
    sample; the panel names head the columns, ``row_labels`` (one per sample) the rows."""
    if not panels:
        raise ValueError("side_by_side needs at least one panel, e.g. {'image': images}.")
    names = list(panels)
    batches = [_as_list(panels[name]) for name in names]
    count = len(batches[0])
    if any(len(batch) != count for batch in batches):
        raise ValueError("every panel must hold the same number of images.")
    if row_labels is not None and len(row_labels) != count:
        raise ValueError(f"got {len(row_labels)} row labels for {count} rows; give one per sample.")
    figure, axes = plt.subplots(
        count, len(names), figsize=(size * len(names), (size + 0.35) * count + 0.5), squeeze=False
    )
    for row in range(count):
        for column, name in enumerate(names):
            _draw(axes[row, column], batches[column][row], name if row == 0 else None)
        if row_labels is not None:
            axes[row, 0].set_ylabel(row_labels[row], fontsize=9)
    if title:
        figure.suptitle(title)
    figure.tight_layout()
    return figure
