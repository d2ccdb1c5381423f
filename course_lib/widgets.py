"""Interactive explorers for the lessons: thin ipywidgets shells over tested functions.

Each explorer has a plain function beside it that does the real work and returns data
(:func:`coverage_view` for :func:`coverage_explorer`), so a lesson can show the same result
without widgets, and tests can check it directly. Only core widgets are used, so the
explorers run with ipywidgets 7.7 (Colab) and 8 (JupyterLab 4).
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import torch
from PIL import Image

from course_lib import convert, masks, viz

SOURCES = ("photos", "scenes")
DISPLAY_PIXELS = 224  # widgets show images at this width, with nearest-neighbour upscaling


@dataclass(frozen=True)
class CoverageView:
    """What the coverage explorer shows for one choice of its controls (lesson 01)."""

    images: torch.Tensor  # (2, 3, H, W): a photo patch and a procedural scene
    hole: torch.Tensor  # (2, 1, H, W), 1 = hole
    shown: torch.Tensor  # (2, 3, H, W): images with their holes tinted red
    target: float | None  # requested coverage, None for the kind's natural distribution
    measured: list[float]  # measured coverage of each mask

    def summary(self) -> str:
        target = "natural" if self.target is None else f"{self.target:.2f}"
        photo, scene = self.measured
        return f"target {target} | measured: photo {photo:.3f}, scene {scene:.3f}"


def example_images(size: int, seed: int) -> torch.Tensor:
    """One held-out photo patch and one procedural scene, ``(2, 3, size, size)``."""
    from course_lib.data import PhotoPatches, ProceduralScenes

    photo = PhotoPatches(patch_size=size, split="test", seed=seed, length=1)[0]
    scene, _ = ProceduralScenes(size=size, seed=seed, length=1)[0]
    return torch.stack([photo, scene])


def coverage_view(
    kind: str = "irregular",
    coverage: float | None = 0.3,
    seed: int = 0,
    size: int = 64,
) -> CoverageView:
    """Masks of ``kind`` at ``coverage`` over a photo patch and a procedural scene.

    This is the function behind :func:`coverage_explorer`; call it directly for the same
    result without widgets.
    """
    images = example_images(size, seed)
    hole = masks.generate(kind, 2, size, size, coverage=coverage, seed=seed)  # (2, 1, H, W)
    measured = [round(value, 4) for value in masks.coverage(hole).tolist()]
    return CoverageView(images, hole, viz.overlay(images, hole), coverage, measured)


def display_scale(size: int, pixels: int = DISPLAY_PIXELS) -> int:
    """Whole-number upscaling that shows a ``size``-pixel image about ``pixels`` wide."""
    return max(1, pixels // size)


def png_bytes(images: torch.Tensor, pixels: int = DISPLAY_PIXELS) -> bytes:
    """A row of ``(B, 3, H, W)`` images as PNG bytes, upscaled without smoothing."""
    row = torch.cat(list(images), dim=2)  # (3, H, B * W): images side by side
    picture = convert.image_to_pil(row)
    scale = display_scale(images.shape[-1], pixels)
    picture = picture.resize((picture.width * scale, picture.height * scale), Image.NEAREST)
    buffer = io.BytesIO()
    picture.save(buffer, format="PNG")
    return buffer.getvalue()


def coverage_explorer(kind: str = "irregular", coverage: float = 0.3, size: int = 64):
    """Kind dropdown, coverage slider, seed and size -> live masked images and coverage.

    Returns the widget box; its ``.controls`` dict gives the controls by name and its
    ``.view`` attribute the latest :class:`CoverageView` (what tests and curious students read).
    """
    import ipywidgets as widgets

    controls = {
        "kind": widgets.Dropdown(options=list(masks.KINDS), value=kind, description="kind"),
        "natural": widgets.Checkbox(value=False, description="natural coverage"),
        "coverage": widgets.FloatSlider(
            value=coverage, min=0.05, max=0.9, step=0.01, description="coverage"
        ),
        "seed": widgets.IntText(value=0, description="seed"),
        "size": widgets.Dropdown(options=[64, 128, 256], value=size, description="size"),
    }
    picture = widgets.Image(format="png")
    readout = widgets.Label()
    box = widgets.VBox(
        [
            widgets.HBox([controls["kind"], controls["size"], controls["seed"]]),
            widgets.HBox([controls["coverage"], controls["natural"]]),
            picture,
            readout,
        ]
    )

    def refresh(_change=None) -> None:
        target = None if controls["natural"].value else controls["coverage"].value
        controls["coverage"].disabled = controls["natural"].value
        try:
            view = coverage_view(
                controls["kind"].value, target, controls["seed"].value, controls["size"].value
            )
        except ValueError as error:  # e.g. a coverage this kind cannot reach at this size
            readout.value = f"cannot draw this mask: {error}"
            return
        box.view = view
        picture.value = png_bytes(view.shown)
        # Show the PNG at its own size: stretched to the cell's width, pixels turn to mush.
        size = controls["size"].value
        picture.width = str(len(view.shown) * size * display_scale(size))
        readout.value = view.summary()

    for control in controls.values():
        control.observe(refresh, names="value")
    box.controls = controls
    refresh()
    return box
