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
    shown: torch.Tensor  # (2, 3, H, W): images with their holes drawn over them (viz.overlay)
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


# ---------------------------------------------------------------------------------------------
# The inpainting lab (lesson 07)
# ---------------------------------------------------------------------------------------------

GENERATED_KINDS = ("box", "irregular", "mixed", "shape", "patches")
DRAWN = "drawn by hand"


def uploaded_bytes(value: object) -> bytes | None:
    """The first uploaded file's bytes from a ``FileUpload`` value, or ``None``.

    ipywidgets 8 gives a tuple of dicts with a ``content`` memoryview; ipywidgets 7 (Colab) a
    dict ``{file name: {"content": bytes, ...}}``.
    """
    files = list(value.values()) if isinstance(value, dict) else list(value or ())
    if not files:
        return None
    return bytes(files[0]["content"])


def inpainting_lab(methods: tuple[str, ...] | None = None):
    """Image, mask and methods -> every method's composite with PSNR/SSIM, and a curve.

    Controls: the image (``source``: held-out photos, scenes or an uploaded file, and
    ``index``), the mask (``mode``: a generated kind at ``coverage`` with ``seed``, or
    ``"drawn by hand"`` with the box and brush controls), and the ``methods`` shown. The
    "quality vs coverage" button draws PSNR against coverage for the chosen image and kind.
    Every action calls a function of :mod:`course_lib.lab`; the box's ``.controls``,
    ``.buttons``, ``.result`` (the latest :class:`~course_lib.lab.LabResult`) and ``.curves``
    attributes are what tests and curious students read.
    """
    import ipywidgets as widgets
    import matplotlib.pyplot as plt

    from course_lib import lab

    chosen = tuple(methods or lab.METHODS)
    size = lab.SIZE
    controls = {
        "source": widgets.Dropdown(options=[*lab.LAB_SOURCES, "upload"], description="image"),
        "index": widgets.IntSlider(value=0, min=0, max=lab.MAX_INDEX, description="index"),
        "upload": widgets.FileUpload(accept="image/*", multiple=False, description="upload"),
        "mode": widgets.Dropdown(
            options=[*GENERATED_KINDS, DRAWN], value="box", description="mask"
        ),
        "coverage": widgets.FloatSlider(
            value=0.3, min=0.05, max=0.6, step=0.01, description="coverage"
        ),
        "seed": widgets.IntText(value=0, description="seed"),
        "top": widgets.IntSlider(value=16, min=0, max=size - 1, description="top / row"),
        "left": widgets.IntSlider(value=16, min=0, max=size - 1, description="left / col"),
        "height": widgets.IntSlider(value=24, min=1, max=size, description="box height"),
        "width": widgets.IntSlider(value=24, min=1, max=size, description="box width"),
        "radius": widgets.IntSlider(value=3, min=0, max=12, description="brush radius"),
        "methods": widgets.SelectMultiple(options=list(lab.METHODS), value=chosen, rows=9),
    }
    buttons = {
        "box": widgets.Button(description="add box"),
        "dab": widgets.Button(description="add brush dab"),
        "clear": widgets.Button(description="clear drawing"),
        "curve": widgets.Button(description="quality vs coverage"),
    }
    picture = widgets.Image(format="png")
    scores = widgets.HTML()
    curve_output = widgets.Output()
    drawing = widgets.VBox(
        [
            widgets.HBox([controls["top"], controls["left"], controls["radius"]]),
            widgets.HBox([controls["height"], controls["width"]]),
            widgets.HBox([buttons["box"], buttons["dab"], buttons["clear"]]),
        ]
    )
    box = widgets.VBox(
        [
            widgets.HBox([controls["source"], controls["index"], controls["upload"]]),
            widgets.HBox([controls["mode"], controls["coverage"], controls["seed"]]),
            drawing,
            widgets.HBox([widgets.Label("methods"), controls["methods"], buttons["curve"]]),
            picture,
            scores,
            curve_output,
        ]
    )
    box.drawn = torch.zeros(1, 1, size, size)
    box.result, box.curves = None, None

    def current_image() -> torch.Tensor:
        if controls["source"].value == "upload":
            data = uploaded_bytes(controls["upload"].value)
            if data is None:
                raise ValueError("choose a picture with the upload button first.")
            return lab.image_from_file(data, size)
        return lab.lab_image(controls["source"].value, controls["index"].value, size)

    def current_hole() -> torch.Tensor:
        mode = controls["mode"].value
        if mode == DRAWN:
            return box.drawn
        return lab.lab_mask(mode, controls["coverage"].value, controls["seed"].value, size)

    def refresh(_change=None) -> None:
        drawing.layout.display = "" if controls["mode"].value == DRAWN else "none"
        controls["coverage"].disabled = controls["mode"].value == DRAWN
        try:
            image, hole = current_image(), current_hole()
            result = lab.run_lab(image, hole, controls["methods"].value)
        except ValueError as error:  # e.g. no upload yet, an empty drawing, an unreachable coverage
            scores.value = f"<b>cannot inpaint yet:</b> {error}"
            return
        box.result = result
        row = torch.cat([viz.overlay(image, hole), *result.composites.values()])
        picture.value = png_bytes(row, pixels=128)
        picture.width = str(len(row) * size * display_scale(size, 128))
        titles = " | ".join(["mask", *result.composites])
        scores.value = f"<pre>{titles}\n{result.summary()}</pre>"

    def draw(kind: str) -> None:
        if kind == "clear":
            box.drawn = torch.zeros(1, 1, size, size)
        elif kind == "box":
            box.drawn = lab.add_box(
                box.drawn, controls["top"].value, controls["left"].value,
                controls["height"].value, controls["width"].value,
            )  # fmt: skip
        else:
            box.drawn = lab.add_dab(
                box.drawn, controls["top"].value, controls["left"].value, controls["radius"].value
            )
        refresh()

    def curve(_button=None) -> None:
        mode = controls["mode"].value
        kind = "box" if mode == DRAWN else mode
        try:
            box.curves = lab.quality_curve(current_image(), kind, methods=controls["methods"].value)
        except ValueError as error:
            scores.value = f"<b>cannot draw the curve:</b> {error}"
            return
        coverages = lab.CURVE_COVERAGES
        with curve_output:
            curve_output.clear_output(wait=True)
            figure, axis = plt.subplots(figsize=(6.4, 3.4))
            for name, values in box.curves.items():
                axis.plot(coverages, values, marker="o", label=name)
            axis.set_xlabel(f"coverage of the {kind} hole")
            axis.set_ylabel("PSNR (dB)")
            axis.set_title("Quality against coverage for this image")
            axis.legend(fontsize=7, ncol=2)
            plt.show(figure)

    for name in ("source", "index", "upload", "mode", "coverage", "seed", "methods"):
        controls[name].observe(refresh, names="value")
    buttons["box"].on_click(lambda _: draw("box"))
    buttons["dab"].on_click(lambda _: draw("dab"))
    buttons["clear"].on_click(lambda _: draw("clear"))
    buttons["curve"].on_click(curve)
    box.controls, box.buttons = controls, buttons
    refresh()
    return box
