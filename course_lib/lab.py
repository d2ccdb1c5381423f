"""The inpainting lab (lesson 07): every method of the course on your image and your mask.

Plain functions, each behind one control of :func:`course_lib.widgets.inpainting_lab`, so that
every widget action can also be done (and tested) as a function call:

* :func:`lab_image` (a held-out photo patch or scene) and :func:`image_from_file` (your own
  picture, centre-cropped and resized);
* :func:`lab_mask` (any mask kind of lesson 01 at a coverage), or a mask drawn by hand with
  :func:`add_box` and :func:`add_dab` (a brush dab);
* :func:`run_lab`: every method's composite with its PSNR and SSIM;
* :func:`quality_curve`: PSNR against coverage for one image and one mask kind;
* :func:`lab_tables`: the final table, every method on the fixed evaluation sets.

The learned methods are the course's shipped networks, trained on 64x64 images: the lab works
at :data:`SIZE`.
"""

from __future__ import annotations

import functools
import io
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from PIL import Image, UnidentifiedImageError

from course_lib import baselines, convert, evaluate, fingerprint, masks, metrics
from course_lib.validate import check_choice, check_image, check_mask

SIZE = 64  # the shipped networks were trained on 64x64 images
CLASSICAL: tuple[str, ...] = ("telea", "navier_stokes", "biharmonic", "patchmatch")
# Label -> the shipped weights of each learned method; each was trained by the recipe of the
# same name, which names its network in course_lib.train.MODELS. The LaMa pair is lesson 05's
# "shallow" twins with the L1 loss, the pair its experiments 1-3 compare.
LEARNED: dict[str, str] = {
    "PConvUNet": "pconv_unet_small",
    "ConvUNet": "conv_unet_small",
    "TinyLaMa": "tiny_lama_shallow_l1",
    "ConvLaMa": "conv_lama_shallow_l1",
    "MAE": "mae_quick",
}
METHODS: tuple[str, ...] = (*CLASSICAL, *LEARNED)
LAB_SOURCES = ("photos", "scenes")
MAX_INDEX = 63  # held-out images the lab offers per source
CURVE_COVERAGES = (0.05, 0.15, 0.25, 0.35, 0.45, 0.55)  # the points of a quality curve

Fill = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


@functools.cache
def learned_model(name: str) -> torch.nn.Module:
    """The shipped network ``name`` (a key of :data:`LEARNED`), loaded once, in eval mode."""
    from course_lib import recipes
    from course_lib.checkpoints import load_weights
    from course_lib.train import MODELS

    if name not in LEARNED:
        raise ValueError(f"unknown learned method {name!r}; choose one of {sorted(LEARNED)}.")
    model = MODELS[recipes.load(LEARNED[name]).model]()  # the network the weights were trained as
    load_weights(model, LEARNED[name])
    return model.eval()


def _checked_methods(methods: Sequence[str] | None) -> tuple[str, ...]:
    """``methods`` as a tuple of known method names; ``None`` means all of :data:`METHODS`.

    An empty list is refused: a lab run of no method would return empty tables, with no
    error to say why.
    """
    if methods is None:
        return METHODS
    if isinstance(methods, str):
        raise ValueError(
            f"methods must be a list of method names, got the string {methods!r}; write "
            f"methods=[{methods!r}]."
        )
    chosen = tuple(methods)
    if not chosen:
        raise ValueError(
            "methods is empty: name at least one method, e.g. methods=['telea'], or pass "
            f"methods=None for all of {list(METHODS)}."
        )
    for name in chosen:
        check_choice(name, "method", METHODS)
    return chosen


def fill_function(name: str) -> Fill:
    """``fill(image, hole) -> image`` of the method ``name`` (one of :data:`METHODS`)."""
    if name in CLASSICAL:
        return baselines.METHODS[name]
    if name in LEARNED:
        return learned_model(name).inpaint
    raise ValueError(f"unknown method {name!r}; choose from {list(METHODS)}.")


def lab_image(source: str, index: int, size: int = SIZE) -> torch.Tensor:
    """Held-out image ``index`` of ``source`` ("photos" or "scenes"): ``(1, 3, size, size)``."""
    if source not in LAB_SOURCES:
        raise ValueError(f"source must be one of {LAB_SOURCES}, got {source!r}.")
    if not isinstance(index, int) or not 0 <= index <= MAX_INDEX:
        raise ValueError(f"index must be an int from 0 to {MAX_INDEX}, got {index!r}.")
    return evaluate.held_out_images(source, size, index + 1)[index : index + 1]


def image_from_file(data: bytes | str | os.PathLike, size: int = SIZE) -> torch.Tensor:
    """Your own picture (file bytes or a path) as ``(1, 3, size, size)``: the largest centred
    square, resized with a Lanczos filter (downscaling without aliasing)."""
    try:
        picture = Image.open(io.BytesIO(data) if isinstance(data, bytes) else data)
        picture.load()
    except (UnidentifiedImageError, OSError) as error:
        raise ValueError(
            f"could not read an image from the upload ({error}); use a PNG or JPEG file."
        ) from error
    side = min(picture.size)
    left, top = (picture.width - side) // 2, (picture.height - side) // 2
    square = picture.convert("RGB").crop((left, top, left + side, top + side))
    return convert.pil_to_image(square.resize((size, size), Image.LANCZOS)).unsqueeze(0)


def lab_mask(kind: str, coverage: float, seed: int = 0, size: int = SIZE) -> torch.Tensor:
    """One mask of ``kind`` at ``coverage`` (lesson 01's generator): ``(1, 1, size, size)``."""
    return masks.generate(kind, 1, size, size, coverage=coverage, seed=seed)


def _check_inside(name: str, value: int, low: int, high: int) -> None:
    if not isinstance(value, int) or not low <= value <= high:
        raise ValueError(f"{name} must be an int from {low} to {high}, got {value!r}.")


def add_box(hole: torch.Tensor, top: int, left: int, height: int, width: int) -> torch.Tensor:
    """A copy of ``hole`` ``(1, 1, H, W)`` with the box ``[top, top + height) x [left, left +
    width)`` made a hole; a box reaching past the image is clipped at its edge."""
    check_mask(hole, name="hole")
    rows, columns = hole.shape[-2:]
    _check_inside("top", top, 0, rows - 1)
    _check_inside("left", left, 0, columns - 1)
    _check_inside("height", height, 1, rows)
    _check_inside("width", width, 1, columns)
    drawn = hole.clone()
    drawn[..., top : top + height, left : left + width] = 1
    return drawn


def add_dab(hole: torch.Tensor, row: int, column: int, radius: int) -> torch.Tensor:
    """A copy of ``hole`` with a disc of ``radius`` pixels around ``(row, column)`` made a
    hole: one dab of a brush; dabs along a path draw a stroke."""
    check_mask(hole, name="hole")
    rows, columns = hole.shape[-2:]
    _check_inside("row", row, 0, rows - 1)
    _check_inside("column", column, 0, columns - 1)
    _check_inside("radius", radius, 0, max(rows, columns))
    ys = torch.arange(rows).view(-1, 1)  # (H, 1)
    xs = torch.arange(columns).view(1, -1)  # (1, W)
    disc = ((ys - row) ** 2 + (xs - column) ** 2 <= radius**2).to(hole.dtype)  # (H, W)
    return torch.maximum(hole, disc.expand_as(hole))


@dataclass(frozen=True)
class LabResult:
    """Every method's answer for one image and one mask (what the lab shows)."""

    image: torch.Tensor  # (1, 3, H, W)
    hole: torch.Tensor  # (1, 1, H, W), 1 = hole
    composites: dict[str, torch.Tensor]  # method -> (1, 3, H, W)
    psnr: dict[str, float]
    ssim: dict[str, float]

    @property
    def coverage(self) -> float:
        return masks.coverage(self.hole).item()

    def best(self, metric: str = "psnr") -> str:
        """The method with the highest ``metric`` ("psnr" or "ssim")."""
        scores = {"psnr": self.psnr, "ssim": self.ssim}[metric]
        return max(scores, key=scores.get)

    def summary(self) -> str:
        """One line per method, best PSNR first."""
        lines = [f"coverage {self.coverage:.3f}"]
        for name in sorted(self.psnr, key=self.psnr.get, reverse=True):
            lines.append(f"{name:14s} PSNR {self.psnr[name]:6.2f} dB  SSIM {self.ssim[name]:.3f}")
        return "\n".join(lines)


def _checked_pair(image: torch.Tensor, hole: torch.Tensor) -> None:
    check_image(image, name="image")
    check_mask(hole, like=image, name="hole")
    if image.shape[0] != 1 or image.shape[-2:] != (SIZE, SIZE):
        raise ValueError(
            f"the lab takes one {SIZE}x{SIZE} image (1, 3, {SIZE}, {SIZE}), got "
            f"{tuple(image.shape)}: the shipped networks were trained at {SIZE}x{SIZE}."
        )
    coverage = masks.coverage(hole).item()
    if not 0 < coverage < 1:
        raise ValueError(
            f"the mask covers {coverage:.0%} of the image: draw or generate a hole that leaves "
            "some pixels known."
        )


def run_lab(
    image: torch.Tensor, hole: torch.Tensor, methods: Sequence[str] | None = None
) -> LabResult:
    """Inpaint ``image`` ``(1, 3, 64, 64)`` with ``hole`` by every method in ``methods``
    (default: all of :data:`METHODS`)."""
    _checked_pair(image, hole)
    methods = _checked_methods(methods)
    composites, psnr, ssim = {}, {}, {}
    with torch.no_grad():
        for name in methods:
            fill = fill_function(name)
            with evaluate.eval_mode(fingerprint.modules_of(fill)):  # networks score in eval mode
                prediction = fill(image * (1 - hole), hole)  # never sees the hole
            composite = masks.composite(image, hole, prediction.float().clamp(0, 1))
            composites[name] = composite
            # Capped as in every table of the course (an exact fill would be +inf).
            psnr[name] = round(min(metrics.psnr(composite, image).item(), evaluate.PSNR_CEILING), 4)
            ssim[name] = round(metrics.ssim(composite, image).item(), 4)
    return LabResult(image, hole, composites, psnr, ssim)


def quality_curve(
    image: torch.Tensor,
    kind: str,
    coverages: Sequence[float] = CURVE_COVERAGES,
    methods: Sequence[str] | None = None,
    seed: int = 0,
) -> dict[str, list[float]]:
    """PSNR of each method (default: all) on ``image`` as the hole of ``kind`` grows:
    ``{method: [psnr per coverage]}``. One mask per coverage, all drawn with ``seed``."""
    methods = _checked_methods(methods)
    curves: dict[str, list[float]] = {name: [] for name in methods}
    for coverage in coverages:
        result = run_lab(image, lab_mask(kind, coverage, seed), methods)
        for name in methods:
            curves[name].append(result.psnr[name])
    return curves


def lab_tables(
    source: str,
    kinds: Sequence[str] = ("box", "irregular"),
    methods: Sequence[str] | None = None,
    per_band: int | None = None,
) -> list[evaluate.EvaluationTable]:
    """The final table: every method on the fixed evaluation sets of ``kinds``, scored on
    held-out ``source`` images by coverage band (lesson 02's harness, cached on disk)."""
    from course_lib.config import profile

    methods = _checked_methods(methods)
    count = profile().eval_images if per_band is None else per_band
    images = evaluate.held_out_images(source, SIZE, count)
    return [
        evaluate.evaluate(fill_function(name), images, list(kinds), per_band, method=name)
        for name in methods
    ]
