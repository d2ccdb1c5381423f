"""Hole masks: generate them, measure them, flip their convention, save and load them (lesson 01).

Conventions (see DESIGN.md): a mask is a float32 tensor ``(B, 1, H, W)`` holding exactly 0 or
1, with **1 = hole** (a missing pixel), so a mask's coverage is simply its mean.

* :func:`generate` draws masks of every kind the course uses (:data:`KINDS`), either from the
  kind's natural distribution (what the papers' generators do) or at a target coverage.
  How each kind is drawn lives in :mod:`course_lib.mask_shapes`, one function per kind.
* :func:`coverage`, :data:`COVERAGE_BANDS`, :func:`band_of` and :func:`touches_border`
  describe masks the way the partial-convolution paper reports its results.
* :func:`to_valid` / :func:`to_hole` switch between the two conventions of the literature.
* :func:`save`, :func:`load` and :func:`load_eval_set` (from :mod:`course_lib.mask_files`)
  keep masks on disk losslessly, including the course's fixed evaluation sets.
"""

from __future__ import annotations

import inspect

import numpy as np
import torch
import torch.nn.functional as F

from course_lib import mask_shapes
from course_lib.mask_files import EVAL_SET_KINDS, load, load_eval_set, save
from course_lib.mask_shapes import COVERAGE_TOLERANCE, GRID_VARIANTS, STROKE_PRESETS
from course_lib.validate import check_choice, check_coverage, check_int, check_mask, check_size

__all__ = [
    "COVERAGE_BANDS",
    "COVERAGE_TOLERANCE",
    "EVAL_KINDS",
    "GRID_VARIANTS",
    "KINDS",
    "MAX_BATCH",
    "MAX_PIXELS",
    "MAX_SIDE",
    "STROKE_PRESETS",
    "band_label",
    "band_of",
    "centred_box",
    "composite",
    "coverage",
    "dilate",
    "generate",
    "kind_options",
    "load",
    "load_eval_set",
    "save",
    "to_hole",
    "to_valid",
    "touches_border",
]

KINDS: tuple[str, ...] = tuple(mask_shapes.DRAWERS)
"""Every kind :func:`generate` draws: "patches", "grid", "box", "irregular", "shape", "mae"
and "mixed" (LaMa's training preset)."""

EVAL_KINDS: tuple[str, ...] = tuple(EVAL_SET_KINDS)
"""The kinds of the fixed evaluation sets in ``datasets/masks`` (see :func:`load_eval_set`)."""

COVERAGE_BANDS: tuple[tuple[float, float], ...] = (
    (0.01, 0.1),
    (0.1, 0.2),
    (0.2, 0.3),
    (0.3, 0.4),
    (0.4, 0.5),
    (0.5, 0.6),
)
"""The partial-convolution paper's six hole-to-image ratio bands ``(low, high]``.

Its results are reported per band (and with or without holes touching the border), because
an inpainting method's error grows with the hole: one average over all masks would hide that.
"""

# ---------------------------------------------------------------------------------------------
# Generating masks
# ---------------------------------------------------------------------------------------------

MAX_SIDE = 4096
"""The largest height or width :func:`generate` draws (16 times the papers' 256 pixels)."""
MAX_BATCH = 65_536
"""The most masks one :func:`generate` call draws (16 times a full profile's sample)."""
MAX_PIXELS = 2**28
"""The most mask pixels (``batch * height * width``) one :func:`generate` call draws: 268
million (a full batch of 64x64 masks), 1 GiB as float32. Masks are drawn one by one on the
CPU, so a call past these limits would run for hours or exhaust memory instead of failing;
split such work into several calls."""


def kind_options(kind: str) -> tuple[str, ...]:
    """The option names :func:`generate` accepts for ``kind`` (its drawing function's
    keyword-only parameters)."""
    check_choice(kind, "mask kind", KINDS, hint="See course_lib.masks.KINDS.")
    parameters = inspect.signature(mask_shapes.DRAWERS[kind]).parameters.values()
    return tuple(p.name for p in parameters if p.kind is inspect.Parameter.KEYWORD_ONLY)


def _check_amount(batch: object, height: int, width: int) -> None:
    """Refuse a request past :data:`MAX_SIDE`, :data:`MAX_BATCH` or :data:`MAX_PIXELS`, saying
    how to split it (``height`` and ``width`` are already checked ints)."""
    for label, side in (("height", height), ("width", width)):
        check_int(
            side,
            label,
            maximum=MAX_SIDE,
            hint=f"masks.generate draws masks of at most {MAX_SIDE}x{MAX_SIDE} pixels "
            "(masks.MAX_SIDE); draw a smaller mask and enlarge it with "
            "F.interpolate(mask, size=(H, W), mode='nearest').",
        )
    check_int(batch, "batch", 1)
    check_int(
        batch,
        "batch",
        maximum=MAX_BATCH,
        hint="One call draws at most masks.MAX_BATCH masks; draw them in several calls, each "
        "with its own seed (e.g. seed=0, 1, 2, ...), and torch.cat the results.",
    )
    pixels = batch * height * width
    if pixels > MAX_PIXELS:
        per_call = max(1, MAX_PIXELS // (height * width))
        raise ValueError(
            f"batch * height * width = {batch} * {height} * {width} = {pixels:,} mask pixels, "
            f"more than one call of masks.generate draws (masks.MAX_PIXELS = {MAX_PIXELS:,}); "
            f"split the work into calls of at most batch={per_call} at this size, each with "
            "its own seed (e.g. seed=0, 1, 2, ...), and torch.cat the results."
        )


def _sample_generators(
    batch: int, seed: int | None, generator: torch.Generator | np.random.Generator | None
) -> list[np.random.Generator]:
    """One numpy generator per sample, all derived from ``seed`` or ``generator``.

    Each sample gets its own stream (``SeedSequence.spawn``), so sample ``i`` depends only on
    the seed and ``i``: the first 4 masks of a batch of 8 are the batch of 4.
    """
    if seed is not None and generator is not None:
        raise ValueError("pass either seed= or generator= to generate masks, not both.")
    if isinstance(generator, torch.Generator):
        # Draw the root seed on the generator's own device (CPU or CUDA), then work on the CPU.
        root = torch.randint(2**62, (1,), generator=generator, device=generator.device)
        entropy: int | None = int(root.item())
    elif isinstance(generator, np.random.Generator):
        entropy = int(generator.integers(2**62))
    elif generator is not None:
        raise ValueError(
            f"generator must be a torch.Generator or numpy.random.Generator, got "
            f"{type(generator).__name__}; or pass seed= instead."
        )
    elif seed is not None:
        if not isinstance(seed, (int, np.integer)) or isinstance(seed, bool) or seed < 0:
            raise ValueError(f"seed must be a non-negative int, got {seed!r}.")
        entropy = int(seed)
    else:
        entropy = None  # fresh randomness from the operating system
    children = np.random.SeedSequence(entropy).spawn(batch)
    return [np.random.default_rng(child) for child in children]


def _per_sample_labels(labels: object, batch: int, height: int, width: int) -> np.ndarray:
    """Check a ``(B, H, W)`` integer label map (tensor or array) and return it as numpy."""
    array = labels.detach().cpu().numpy() if isinstance(labels, torch.Tensor) else labels
    if not isinstance(array, np.ndarray) or array.shape != (batch, height, width):
        shape = getattr(array, "shape", type(array).__name__)
        raise ValueError(
            f"labels must be an integer tensor of shape (B, H, W) = ({batch}, {height}, {width}) "
            f"matching the masks, got {shape}; stack one label map per sample."
        )
    if not np.issubdtype(array.dtype, np.integer) or (array.size and array.min() < 0):
        raise ValueError(
            f"labels must hold non-negative integers (0 = background, k = region k), got dtype "
            f"{array.dtype}; use labels.long()."
        )
    return array


def generate(
    kind: str,
    batch: int,
    height: int,
    width: int,
    coverage: float | None = None,
    seed: int | None = None,
    generator: torch.Generator | np.random.Generator | None = None,
    device: torch.device | str | None = None,
    **opts: object,
) -> torch.Tensor:
    """Draw ``batch`` masks of ``kind``: float32 ``(B, 1, H, W)``, exactly 0 or 1, 1 = hole.

    * ``kind``: one of :data:`KINDS`; the options each accepts are listed by
      :func:`kind_options` and documented in :mod:`course_lib.mask_shapes` (one function per
      kind): patches ``cell``; grid ``cell``, ``variant`` ("75"/"85"/"95"); box ``margin``,
      ``min_boxes``, ``max_boxes``, ``min_size``, ``max_size``; irregular ``preset``
      ("thin"/"medium"/"thick"); shape ``source`` ("scenes"/"photos"), ``labels``
      (``(B, H, W)`` regions of your images); mae ``patch``; mixed none.
    * ``coverage=None`` draws from the kind's natural distribution; a number in ``[0, 1)``
      makes every mask land within :data:`COVERAGE_TOLERANCE` (0.02) of it (for "mae" it is
      MAE's masking ratio). A target a kind cannot reach at this size raises ``ValueError``.
    * ``seed`` or ``generator`` (torch or numpy): the same seed gives the same masks, on every
      device; ``None`` for both gives fresh randomness. Masks are drawn on the CPU with numpy
      and OpenCV, then moved to ``device``.
    * Limits: at most :data:`MAX_SIDE` (4096) pixels a side, :data:`MAX_BATCH` masks and
      :data:`MAX_PIXELS` (``batch * height * width``, 268 million) per call; split larger work
      into several calls with different seeds.
    """
    options = kind_options(kind)  # also rejects unknown kinds
    check_size(height, width)
    _check_amount(batch, height, width)
    if coverage is not None:
        coverage = check_coverage(coverage)
    unknown = sorted(set(opts) - set(options))
    if unknown:
        raise ValueError(
            f"unknown option(s) {unknown} for mask kind {kind!r}; valid options are "
            f"{list(options) or 'none'} (check the spelling)."
        )
    per_sample = [dict(opts) for _ in range(batch)]
    if opts.get("labels") is not None:
        # One label map per sample, (B, H, W): each drawing call gets its own (H, W) map.
        labels = _per_sample_labels(opts["labels"], batch, height, width)
        for sample_options, sample_labels in zip(per_sample, labels, strict=True):
            sample_options["labels"] = sample_labels
    draw = mask_shapes.DRAWERS[kind]
    rngs = _sample_generators(batch, seed, generator)
    holes = np.stack(
        [draw(rng, height, width, coverage, **o) for rng, o in zip(rngs, per_sample, strict=True)]
    )  # (B, H, W) bool
    mask = torch.from_numpy(holes.astype(np.float32)).unsqueeze(1)  # (B, 1, H, W)
    return mask if device is None else mask.to(device)


# ---------------------------------------------------------------------------------------------
# Describing masks
# ---------------------------------------------------------------------------------------------


def centred_box(size: int, coverage: float, batch: int = 1) -> torch.Tensor:
    """A square hole in the middle of a ``size x size`` image, ``(batch, 1, size, size)``.

    Its side is ``round(size * sqrt(coverage))`` (so its coverage is the nearest a whole
    square can get), centred as well as whole pixels allow. Lesson 05 puts one behind
    periodic textures: the hole is far from the border on every side, so a method must
    carry the pattern in from all four.
    """
    size = check_int(size, "size", 2)
    coverage = check_coverage(coverage)
    side = round(size * coverage**0.5)
    if not 1 <= side <= size - 2:
        raise ValueError(
            f"a centred box of coverage {coverage} on {size}x{size} pixels would be {side} px "
            f"wide; it needs 1 to {size - 2} px (known pixels around it): change the coverage."
        )
    start = (size - side) // 2
    hole = torch.zeros(check_int(batch, "batch", 1), 1, size, size)
    hole[..., start : start + side, start : start + side] = 1
    return hole


def coverage(mask: torch.Tensor) -> torch.Tensor:
    """Hole fraction of each mask: ``(B,)`` float32 (the mean, since 1 = hole)."""
    check_mask(mask)
    return mask.mean(dim=(1, 2, 3))  # (B,)


def band_of(mask: torch.Tensor) -> list[int | None]:
    """Index into :data:`COVERAGE_BANDS` of each mask's coverage, ``None`` outside all bands
    (at most 1% or above 60%)."""
    check_mask(mask)
    # Exact fractions in float64: a float32 mean of exactly 0.1 would read 0.10000000149 and
    # fall into the next band.
    fractions = mask.flatten(1).sum(dim=1).double() / mask[0].numel()  # (B,)
    bands = []
    for value in fractions.tolist():
        inside = [i for i, (low, high) in enumerate(COVERAGE_BANDS) if low < value <= high]
        bands.append(inside[0] if inside else None)
    return bands


def band_label(index: int) -> str:
    """A short label for band ``index`` of :data:`COVERAGE_BANDS`, e.g. ``"10-20%"``."""
    if not isinstance(index, int) or not 0 <= index < len(COVERAGE_BANDS):
        raise ValueError(
            f"band index must be an int from 0 to {len(COVERAGE_BANDS) - 1}, got {index!r}."
        )
    low, high = COVERAGE_BANDS[index]
    return f"{round(low * 100)}-{round(high * 100)}%"


def touches_border(mask: torch.Tensor) -> torch.Tensor:
    """Whether each mask has a hole pixel on its outermost rows or columns: ``(B,)`` bool.

    Holes at the border are harder (context on one side only), which is why the
    partial-convolution paper reports both cases.
    """
    check_mask(mask)
    edges = torch.cat(
        [mask[:, 0, 0, :], mask[:, 0, -1, :], mask[:, 0, :, 0], mask[:, 0, :, -1]], dim=1
    )  # (B, 2W + 2H)
    return edges.amax(dim=1) > 0


def composite(image: torch.Tensor, hole: torch.Tensor, prediction: torch.Tensor) -> torch.Tensor:
    """The answer of any inpainting method: ``hole * prediction + (1 - hole) * image``.

    The prediction in the hole, the known image everywhere else, exactly (the mask holds
    only 0 and 1). Every metric in the course is computed on this composite.
    """
    return hole * prediction + (1 - hole) * image


# ---------------------------------------------------------------------------------------------
# The two conventions, and growing holes
# ---------------------------------------------------------------------------------------------


def to_valid(hole: torch.Tensor) -> torch.Tensor:
    """1 = hole -> 1 = valid: ``1 - hole``, after checking the mask is binary.

    Two conventions live side by side in the literature: the partial-convolution paper and
    its layer use **1 = valid** (known pixel); LaMa, DeepFill v2, MAE and most mask files on
    disk (white = hole) use **1 = hole**, as this course does. Layers written with 1 = valid
    name their argument ``valid``; call them with ``to_valid(hole)``.
    """
    check_mask(hole, name="hole")
    return 1.0 - hole


def to_hole(valid: torch.Tensor) -> torch.Tensor:
    """1 = valid -> 1 = hole: ``1 - valid``, after checking the mask is binary (see
    :func:`to_valid` for the two conventions)."""
    check_mask(valid, name="valid")
    return 1.0 - valid


def dilate(mask: torch.Tensor, pixels: int, shape: str = "disc") -> torch.Tensor:
    """Grow the holes by ``pixels``: a pixel becomes a hole if a hole lies within reach.

    ``shape="disc"`` (default) reaches every pixel within Euclidean distance ``pixels``, so
    holes grow evenly in all directions; ``shape="square"`` reaches ``pixels`` along each axis
    (chessboard distance), growing corners more. Runs on the mask's device.
    """
    check_mask(mask)
    if not isinstance(pixels, int) or isinstance(pixels, bool) or pixels < 0:
        raise ValueError(f"pixels must be a non-negative int, got {pixels!r}.")
    if shape not in ("disc", "square"):
        raise ValueError(f"shape must be 'disc' or 'square', got {shape!r}.")
    side = 2 * pixels + 1
    if shape == "square":
        return F.max_pool2d(mask, side, stride=1, padding=pixels)  # (B, 1, H, W)
    offsets = torch.arange(-pixels, pixels + 1, device=mask.device, dtype=torch.float32)
    disc = (offsets[:, None] ** 2 + offsets[None, :] ** 2 <= pixels**2).float()  # (k, k)
    # Count hole pixels under the disc: any count above zero means "a hole within reach".
    counts = F.conv2d(mask.float(), disc.view(1, 1, side, side), padding=pixels)
    return (counts > 0.5).float()  # (B, 1, H, W)
