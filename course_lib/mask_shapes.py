"""How each kind of mask is drawn: one small function per kind (lesson 01).

Every function here draws **one** mask as a numpy ``bool`` array ``(H, W)`` with ``True`` =
hole, from a numpy random generator ``rng``. :func:`course_lib.masks.generate` gives each
sample of a batch its own generator, calls the function of the requested kind once per
sample and turns the stack into the course's ``(B, 1, H, W)`` float32 tensor.

Each function takes the target ``coverage`` (fraction of hole pixels) or ``None``:

* ``None`` draws from the kind's *natural* distribution, the way the papers' generators do,
  with whatever coverage comes out;
* a number makes the mask land within :data:`COVERAGE_TOLERANCE` of it (or raises
  ``ValueError`` saying why this kind cannot reach it at this size and what to use instead).

The keyword-only parameters of a function are the options of its kind: ``generate`` rejects
any other name, so a misspelled option fails loudly instead of being ignored.

Sizes from the papers are given at 256x256 and scaled by ``min(H, W) / 256``.
"""

from __future__ import annotations

import functools
import itertools
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import cv2
import numpy as np

from course_lib.validate import check_int

# Every mask drawn with a target coverage lands at most this far from it (absolute fraction).
COVERAGE_TOLERANCE = 0.02
REFERENCE_SIZE = 256  # the papers' sizes below are pixels at 256x256


# ---------------------------------------------------------------------------------------------
# Small shared helpers
# ---------------------------------------------------------------------------------------------


def _check_int(name: str, value: object, minimum: int, maximum: int | None = None) -> int:
    """Return ``value`` if it is an int in ``[minimum, maximum]``; raise ``ValueError`` if not."""
    return check_int(value, f"option {name}", minimum, maximum)


def _check_choice(name: str, value: object, choices: tuple[str, ...]) -> str:
    """Return ``value`` if it is one of ``choices``; raise ``ValueError`` listing them if not."""
    if value not in choices:
        raise ValueError(f"option {name} must be one of {choices}, got {value!r}.")
    return str(value)


def _scaled(pixels_at_256: float, height: int, width: int, minimum: int = 1) -> int:
    """A length from the papers (pixels at 256x256) at this image size, at least ``minimum``."""
    return max(minimum, round(pixels_at_256 * min(height, width) / REFERENCE_SIZE))


def _default_cell(height: int, width: int) -> int:
    """Cell side giving at least 8 cells along the short side."""
    return max(1, min(height, width) // 8)


def _cells_to_pixels(cells: np.ndarray, cell: int, height: int, width: int) -> np.ndarray:
    """Blow a ``(rows, cols)`` grid of cells up to ``(H, W)`` pixels, cropping partial cells."""
    return np.repeat(np.repeat(cells, cell, axis=0), cell, axis=1)[:height, :width]


def _unreachable(kind: str, coverage: float, why: str, fix: str) -> ValueError:
    """The error for a target coverage a kind cannot land on (what, why, what to do)."""
    return ValueError(
        f"{kind} masks cannot reach coverage {coverage:.3f} (within +-{COVERAGE_TOLERANCE}): "
        f"{why}. {fix}"
    )


# ---------------------------------------------------------------------------------------------
# patches: a random subset of square cells
# ---------------------------------------------------------------------------------------------


def patches(
    rng: np.random.Generator,
    height: int,
    width: int,
    coverage: float | None,
    *,
    cell: int | None = None,
) -> np.ndarray:
    """Square cells of side ``cell`` (default ``min(H, W) // 8``), a random subset masked.

    Natural distribution: every cell is a hole with probability 1/2 (a fair coin per cell),
    so coverage is about 0.5. With ``coverage``, cells are taken in random order until the
    hole area is nearest the target: exactly ``round(coverage * n_cells)`` cells when
    ``cell`` divides the size; cells cut by the right/bottom edge count with their real area.

    Unreachable: a target further than 0.02 from every reachable area, which only happens
    when one cell is more than 4% of the image (a large ``cell``); use a smaller ``cell``.
    """
    cell = _default_cell(height, width) if cell is None else cell
    cell = _check_int("cell", cell, 1, min(height, width))
    rows, cols = -(-height // cell), -(-width // cell)  # ceil: partial cells at the edges
    if coverage is None:
        return _cells_to_pixels(rng.random((rows, cols)) < 0.5, cell, height, width)
    # Real pixel area of every cell: the last row/column may be cut by the image edge.
    cell_heights = np.minimum(cell, height - cell * np.arange(rows))  # (rows,)
    cell_widths = np.minimum(cell, width - cell * np.arange(cols))  # (cols,)
    areas = np.outer(cell_heights, cell_widths).ravel()  # (rows * cols,)
    order = rng.permutation(rows * cols)
    reachable = np.concatenate([[0], np.cumsum(areas[order])])  # area of the first k cells
    distance = np.abs(reachable - coverage * height * width)
    # The nearest prefix; searching from the end makes ties go to the larger hole.
    count = len(reachable) - 1 - int(np.argmin(distance[::-1]))
    if distance[count] > COVERAGE_TOLERANCE * height * width:
        raise _unreachable(
            "patches",
            coverage,
            f"each {cell}x{cell} cell is {100 * cell * cell / (height * width):.1f}% of the "
            "image, so the hole area moves in steps that are too large",
            f"Use a smaller cell (at most {_default_cell(height, width)} always works).",
        )
    chosen = np.zeros(rows * cols, dtype=bool)
    chosen[order[:count]] = True
    return _cells_to_pixels(chosen.reshape(rows, cols), cell, height, width)


# ---------------------------------------------------------------------------------------------
# grid: the regular pattern of masked image modelling
# ---------------------------------------------------------------------------------------------

# Named grid masks of the masked-image-modelling literature: keep one small square in every
# period, hiding 75%, 85% or 95% of the image ("75" is "keep one patch out of every four").
GRID_VARIANTS: dict[str, float] = {"75": 0.75, "85": 0.85, "95": 0.95}


@functools.lru_cache(maxsize=256)
def _grid_layouts(
    height: int, width: int, coverage: float, preferred_period: int
) -> tuple[tuple[int, int], ...]:
    """Every (period p, kept side s) whose ideal coverage ``1 - (s / p)^2`` is within the
    tolerance of ``coverage``: first those within half of it, then by distance of ``p`` to
    ``preferred_period``, then by error.

    The ideal is exact only when ``p`` divides the size; otherwise the coverage depends on
    the phase, which :func:`grid` checks for every phase.
    """
    periods = np.arange(2, min(height, width) + 1)[:, None]  # (P, 1)
    sides = np.arange(1, min(height, width) + 1)[None, :]  # (1, S)
    error = np.abs(1.0 - (sides / periods) ** 2 - coverage)  # (P, S)
    p, s = np.nonzero((sides <= periods) & (error <= COVERAGE_TOLERANCE))
    layouts = sorted(
        zip(periods[p, 0].tolist(), sides[0, s].tolist(), error[p, s].tolist(), strict=True),
        key=lambda layout: (
            layout[2] > COVERAGE_TOLERANCE / 2,
            abs(layout[0] - preferred_period),
            layout[2],
        ),
    )
    return tuple((period, side) for period, side, _ in layouts)


def grid(
    rng: np.random.Generator,
    height: int,
    width: int,
    coverage: float | None,
    *,
    cell: int | None = None,
    variant: str | None = None,
) -> np.ndarray:
    """A regular pattern with a random phase.

    Natural distribution: a checkerboard of ``cell``-pixel squares (default
    ``min(H, W) // 8``), one masked and one kept: coverage 0.5 (exactly, when ``2 * cell``
    divides the size).

    With ``coverage`` (or ``variant="75"|"85"|"95"``, the same as ``coverage=0.75|0.85|0.95``):
    each ``p x p`` block keeps one ``s x s`` square, so the kept fraction is ``(s / p)^2``;
    ``p`` is chosen as close as possible to ``2 * cell`` with ``s`` putting the coverage within
    the tolerance, and the phase is drawn among those that land (when ``p`` does not divide
    the size, the cut squares at the edges make the coverage depend on the phase).

    Unreachable: small non-zero targets on small images. Hiding a thin frame per period
    needs long periods (coverage ``1 - ((p - 1) / p)^2``, about ``2 / p``) and ``p`` cannot
    exceed ``min(H, W)``: 0.05 needs about 40 px. Tiny images (8-16 px) allow only a few
    fractions. Both raise ``ValueError``; use "patches" or "mae" there.
    """
    if variant is not None:
        variant = _check_choice("variant", variant, tuple(GRID_VARIANTS))
        if coverage is not None and coverage != GRID_VARIANTS[variant]:
            raise ValueError(
                f"grid variant {variant!r} means coverage {GRID_VARIANTS[variant]}, but "
                f"coverage={coverage} was also given; pass only one of them."
            )
        coverage = GRID_VARIANTS[variant]
    cell = _default_cell(height, width) if cell is None else cell
    cell = _check_int("cell", cell, 1, min(height, width))
    ys, xs = np.arange(height)[:, None], np.arange(width)[None, :]  # (H, 1), (1, W)
    if coverage is None:
        offset_y, offset_x = rng.integers(0, 2 * cell, size=2)
        return ((ys + offset_y) // cell + (xs + offset_x) // cell) % 2 == 0
    for period, side in _grid_layouts(height, width, coverage, 2 * cell):
        # Kept rows and columns for every phase of the pattern, and the coverage each pair
        # of phases gives (it varies when the period does not divide the size).
        phases = np.arange(period)[:, None]  # (p, 1)
        kept_rows = (ys.T + phases) % period < side  # (p, H)
        kept_cols = (xs + phases) % period < side  # (p, W)
        kept = np.outer(kept_rows.sum(axis=1), kept_cols.sum(axis=1))  # (p, p)
        good = np.argwhere(np.abs(1.0 - kept / (height * width) - coverage) <= COVERAGE_TOLERANCE)
        if len(good):
            phase_y, phase_x = good[rng.integers(len(good))]  # a random phase that lands
            return ~(kept_rows[phase_y][:, None] & kept_cols[phase_x][None, :])
    raise _unreachable(
        "grid",
        coverage,
        f"no period of at most {min(height, width)} px with one kept square per period "
        "gives that fraction on this image (tiny images allow only a few fractions)",
        "Use a larger image, or kind 'patches' or 'mae'.",
    )


# ---------------------------------------------------------------------------------------------
# box: axis-aligned rectangles (LaMa's "box" masks)
# ---------------------------------------------------------------------------------------------

EXTRA_BOXES = 8  # small boxes allowed after the drawn count, to land within the tolerance


def _default_margin(height: int, width: int) -> int:
    """LaMa's 10 px distance of boxes from the border, scaled to the image."""
    return _scaled(10, height, width, minimum=0)


def _check_box_reach(coverage: float, height: int, width: int, margin: int) -> None:
    """Raise ``ValueError`` if boxes kept ``margin`` px inside cannot cover ``coverage``."""
    inside = (height - 2 * margin) * (width - 2 * margin) / (height * width)
    if coverage - COVERAGE_TOLERANCE > inside:
        raise _unreachable(
            "box",
            coverage,
            f"boxes stay {margin} px from the border, so they cover at most {inside:.3f} of a "
            f"{height}x{width} image",
            "Pass margin=0 (or a smaller margin), or a lower coverage.",
        )


def _box_growth(
    centre: tuple[int, int], size: tuple[int, int], step: int, bounds: tuple[int, int, int, int]
) -> tuple[slice, slice]:
    """Rows and columns of a box grown to ``step`` about its centre, clipped to ``bounds``.

    Step ``max(size)`` is the drawn box; 0 is empty; every step contains the previous one,
    so the area the box adds to a mask never shrinks as ``step`` grows (binary search works).
    """
    (centre_y, centre_x), (box_h, box_w) = centre, size
    top, left, bottom, right = bounds
    longest = max(box_h, box_w)
    grown_h, grown_w = round(step * box_h / longest), round(step * box_w / longest)
    y0, x0 = centre_y - grown_h // 2, centre_x - grown_w // 2
    return (
        slice(min(max(y0, top), bottom), min(max(y0 + grown_h, top), bottom)),
        slice(min(max(x0, left), right), min(max(x0 + grown_w, left), right)),
    )


def box(
    rng: np.random.Generator,
    height: int,
    width: int,
    coverage: float | None,
    *,
    margin: int | None = None,
    min_boxes: int = 1,
    max_boxes: int = 4,
    min_size: int | None = None,
    max_size: int | None = None,
) -> np.ndarray:
    """One or more axis-aligned rectangles, kept ``margin`` pixels away from the border.

    Defaults follow LaMa at 256x256 (scaled by ``min(H, W) / 256``): ``margin`` 10 px,
    ``min_boxes`` 1 to ``max_boxes`` 4 boxes with sides from ``min_size`` 30 to ``max_size``
    150 px. Natural distribution: that, with whatever union area comes out.

    With ``coverage``: boxes are drawn the same way; the first one that would overshoot the
    target, or the last one, is shrunk or grown about its centre (binary search on its size,
    counting the union exactly) so the union lands on the target; if a single box cannot
    (tiny images, overlaps), up to 8 more small boxes fill the rest. So with coverage the
    count and sizes can leave the ranges above.

    Unreachable: more than the area inside the margins, ``(H - 2m)(W - 2m) / (HW)`` (plus the
    tolerance), e.g. above about 0.87 at 256x256 with the default margin; pass ``margin=0``.
    """
    margin = _default_margin(height, width) if margin is None else margin
    margin = _check_int("margin", margin, 0, (min(height, width) - 1) // 2)
    min_boxes = _check_int("min_boxes", min_boxes, 1)
    max_boxes = _check_int("max_boxes", max_boxes, min_boxes)
    inner_h, inner_w = height - 2 * margin, width - 2 * margin
    min_size = _scaled(30, height, width) if min_size is None else min_size
    min_size = _check_int("min_size", min_size, 1)
    max_size = max(min_size, _scaled(150, height, width)) if max_size is None else max_size
    max_size = _check_int("max_size", max_size, min_size)
    bounds = (margin, margin, height - margin, width - margin)

    def random_box() -> tuple[tuple[int, int], tuple[int, int]]:
        """Centre and size of a box from the natural distribution, inside the margins."""
        box_h, box_w = np.minimum(rng.integers(min_size, max_size + 1, size=2), (inner_h, inner_w))
        top = int(rng.integers(margin, height - margin - box_h + 1))
        left = int(rng.integers(margin, width - margin - box_w + 1))
        return (top + box_h // 2, left + box_w // 2), (int(box_h), int(box_w))

    hole = np.zeros((height, width), dtype=bool)
    count = int(rng.integers(min_boxes, max_boxes + 1))
    if coverage is None:
        for _ in range(count):
            centre, size = random_box()
            rows, cols = _box_growth(centre, size, max(size), bounds)
            hole[rows, cols] = True
        return hole
    _check_box_reach(coverage, height, width, margin)
    target, tolerance = coverage * height * width, COVERAGE_TOLERANCE * height * width
    area = 0
    for index in range(count + EXTRA_BOXES):
        centre, size = random_box()

        def added(step: int, centre=centre, size=size) -> int:
            """Pixels this box adds to the union at growth ``step``."""
            rows, cols = _box_growth(centre, size, step, bounds)
            region = hole[rows, cols]
            return region.size - int(np.count_nonzero(region))

        step = max(size)
        fitted = area + added(step) > target or index >= count - 1
        if fitted:
            # Smallest step reaching the target (the upper end fills the whole inner area),
            # then the step before it if that lands closer.
            low, high = 0, 2 * max(height, width) * max(size) // min(size) + 1
            while low < high:
                middle = (low + high) // 2
                low, high = (low, middle) if area + added(middle) >= target else (middle + 1, high)
            # Never overshoot by more than the tolerance: later boxes can only add area.
            step, overshoot = low, area + added(low) - target
            if step > 0 and (overshoot > tolerance or target - area - added(step - 1) < overshoot):
                step -= 1
        area += added(step)
        rows, cols = _box_growth(centre, size, step, bounds)
        hole[rows, cols] = True
        if fitted and abs(area - target) <= tolerance:
            return hole
    raise _unreachable(
        "box",
        coverage,
        f"{count + EXTRA_BOXES} boxes did not land within the tolerance on a {height}x{width} "
        "image (one pixel is too large a step there)",
        "Use a larger image or another kind, e.g. 'patches'.",
    )


# ---------------------------------------------------------------------------------------------
# irregular: free-form brush strokes (DeepFill v2 / LaMa style)
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class StrokePreset:
    """Brush-stroke parameters in pixels at 256x256 (scaled by ``min(H, W) / 256``).

    Each stroke is a polyline of 4 to 11 vertices: it starts at a random point in a random
    direction; at every vertex the direction turns by up to ``max_turn`` radians either way
    and the next segment has a random length; the brush has one random width per stroke.
    Strokes bounce off the image edges.
    """

    strokes: tuple[int, int]  # strokes per natural mask (inclusive range)
    length: tuple[float, float]  # segment length range, px at 256
    width: tuple[float, float]  # brush width (diameter) range, px at 256
    max_turn: float  # largest change of direction at a vertex, radians


STROKE_PRESETS: dict[str, StrokePreset] = {
    "thin": StrokePreset((4, 12), (10, 60), (2, 20), 2.0),
    "medium": StrokePreset((2, 6), (10, 100), (5, 50), 2.0),
    "thick": StrokePreset((1, 5), (10, 200), (10, 100), 2.0),
}
VERTICES = (4, 11)  # vertices per stroke, inclusive
# Above this, random strokes hunt for the last uncovered pixels in the corners: thousands of
# strokes for 0.999. Up to it, at most about 200 strokes (thin, 256x256) are needed.
IRREGULAR_MAX_COVERAGE = 0.95
STROKE_BUDGET = 2000  # a safety net: strokes a mask may use before giving up


def _log_uniform(rng: np.random.Generator, low: float, high: float, count: int) -> np.ndarray:
    """``count`` numbers spread evenly on a log scale between ``low`` and ``high``.

    Strokes 10-20 px wide are then as common as strokes 50-100 px wide; a uniform draw would
    make most strokes fat and most masks cover half the image.
    """
    return np.exp(rng.uniform(math.log(low), math.log(high), count))


def _mirror(value: float, top: float) -> float:
    """``value`` reflected back into ``[0, top]`` at the edge it crossed (clipped if it went
    more than a whole side past it, which segments shorter than the image cannot)."""
    reflected = -value if value < 0 else 2 * top - value
    return min(max(reflected, 0.0), top)


def _random_strokes(
    rng: np.random.Generator, height: int, width: int, preset: StrokePreset
) -> Iterator[tuple[list[tuple[int, int]], int]]:
    """Endless random strokes ``(vertices [(x, y), ...], brush width)`` at this image size."""
    lengths = [_scaled(length, height, width) for length in preset.length]
    widths = [_scaled(width_, height, width) for width_ in preset.width]
    while True:
        segments = int(rng.integers(VERTICES[0], VERTICES[1] + 1)) - 1
        brush = round(float(_log_uniform(rng, *widths, 1)[0]))
        x, y = (rng.random(2) * (width, height)).tolist()
        direction = rng.uniform(0.0, 2.0 * math.pi)
        turns = rng.uniform(-preset.max_turn, preset.max_turn, segments).tolist()
        vertices = [(round(x), round(y))]
        for turn, length in zip(turns, _log_uniform(rng, *lengths, segments).tolist(), strict=True):
            direction += turn
            x, y = x + length * math.cos(direction), y + length * math.sin(direction)
            # Bounce off the edges (mirror the vertex and the direction): clipping instead
            # would pile strokes up along the border.
            if not 0.0 <= x <= width - 1:
                x, direction = _mirror(x, width - 1), math.pi - direction
            if not 0.0 <= y <= height - 1:
                y, direction = _mirror(y, height - 1), -direction
            vertices.append((round(x), round(y)))
        yield vertices, brush


@functools.cache
def _dot_area(brush: int) -> int:
    """Pixels of a single dot drawn with this brush (OpenCV's thick lines have round caps)."""
    canvas = np.zeros((brush + 4, brush + 4), dtype=np.uint8)
    cv2.line(canvas, (brush // 2 + 2,) * 2, (brush // 2 + 2,) * 2, 1, brush)
    return int(np.count_nonzero(canvas))


def _widest_brush(room: float, brush: int) -> int:
    """``brush``, narrowed until a dot of it adds at most ``room`` pixels (never below 1)."""
    brush = min(brush, max(1, int(2 * math.sqrt(room / math.pi))))
    while brush > 1 and _dot_area(brush) > room:
        brush -= 1
    return brush


def _draw_within(
    hole: np.ndarray,
    start: tuple[int, int],
    end: tuple[int, int],
    brush: int,
    room: float,
    slack: float,
) -> tuple[int, bool]:
    """Draw segment ``start -> end``, or, if it adds more than ``room`` hole pixels, the prefix
    of it whose added area is closest to ``room`` without exceeding ``room + slack``.

    Returns ``(pixels added, whether the segment was cut short)``. Only the segment's
    bounding box is counted, before and after drawing: a running count instead of a mean
    over the whole image after every segment.
    """
    pad = brush // 2 + 2
    rows = slice(max(min(start[1], end[1]) - pad, 0), max(start[1], end[1]) + pad + 1)
    cols = slice(max(min(start[0], end[0]) - pad, 0), max(start[0], end[0]) + pad + 1)
    window = hole[rows, cols]  # a view: drawing on `hole` changes it
    before, saved = cv2.countNonZero(window), window.copy()
    cv2.line(hole, start, end, 1, brush)
    added = cv2.countNonZero(window) - before
    if added <= room:
        return added, False
    # Too much: binary search on the length for the last prefix under `room` and the first
    # one over it (prefix -1 means "draw nothing"); the added area grows with the length.
    steps = max(abs(end[0] - start[0]), abs(end[1] - start[1]), 1)

    def draw_prefix(step: int) -> int:
        window[...] = saved
        if step >= 0:
            point = (
                start[0] + round((end[0] - start[0]) * step / steps),
                start[1] + round((end[1] - start[1]) * step / steps),
            )
            cv2.line(hole, start, point, 1, brush)
        return cv2.countNonZero(window) - before

    under, over = (-1, 0), (steps, added)  # (prefix, pixels added)
    while over[0] - under[0] > 1:
        middle = (under[0] + over[0]) // 2
        middle_added = draw_prefix(middle)
        if middle_added <= room:
            under = (middle, middle_added)
        else:
            over = (middle, middle_added)
    closer_over = over[1] - room < room - under[1] and over[1] <= room + slack
    step, added = over if closer_over else under
    draw_prefix(step)
    return added, True


def irregular(
    rng: np.random.Generator,
    height: int,
    width: int,
    coverage: float | None,
    *,
    preset: str = "medium",
) -> np.ndarray:
    """Free-form brush strokes with round joints and caps (DeepFill v2 / LaMa style).

    ``preset`` (:data:`STROKE_PRESETS`, px at 256x256, scaled to the image): ``"thin"``
    4-12 strokes, segments 10-60 px, widths 2-20 px; ``"medium"`` (default) 2-6 strokes,
    10-100 px, widths 5-50 px; ``"thick"`` (LaMa's training masks) 1-5 strokes, 10-200 px,
    widths 10-100 px. Lengths and widths are log-uniform in their ranges; widths never drop
    below 1 px, even at 8x8. OpenCV's thick lines have round ends, so one ``cv2.line`` per
    segment gives round caps and joints.

    Natural distribution: the preset's stroke count, with whatever coverage comes out. At
    256x256 the middle 90% of masks cover about 7-30% (thin), 8-46% (medium) and 9-80%
    (thick, like LaMa's): the lack of control that ``coverage=`` fixes.

    With ``coverage``: strokes are drawn segment by segment, keeping a running count of hole
    pixels; the segment that would pass the target is cut short (binary search on its
    length) and a new stroke is narrowed so that its first dot cannot pass it.

    Unreachable: targets above :data:`IRREGULAR_MAX_COVERAGE` (0.95) raise ``ValueError``;
    random strokes would need thousands of strokes to find the last uncovered corners (use
    "box" with ``margin=0`` or "patches"). Should :data:`STROKE_BUDGET` strokes ever fail to
    reach a target below it, ``ValueError`` suggests a thicker preset.
    """
    style = STROKE_PRESETS[_check_choice("preset", preset, tuple(STROKE_PRESETS))]
    strokes = _random_strokes(rng, height, width, style)
    hole = np.zeros((height, width), dtype=np.uint8)  # OpenCV draws on uint8, not bool
    if coverage is None:
        for _ in range(int(rng.integers(style.strokes[0], style.strokes[1] + 1))):
            vertices, brush = next(strokes)
            cv2.polylines(hole, [np.array(vertices, dtype=np.int32)], False, 1, brush)
        return hole.astype(bool)
    if coverage > IRREGULAR_MAX_COVERAGE:
        raise _unreachable(
            "irregular",
            coverage,
            f"above {IRREGULAR_MAX_COVERAGE}, random strokes need thousands of tries to find "
            "the last uncovered pixels in the corners",
            "Use kind 'box' with margin=0, or 'patches', for such large holes.",
        )
    target, tolerance = coverage * height * width, COVERAGE_TOLERANCE * height * width
    area = 0
    for _ in range(STROKE_BUDGET):
        vertices, brush = next(strokes)
        brush = _widest_brush(target - area, brush)
        for start, end in itertools.pairwise(vertices):
            added, cut = _draw_within(hole, start, end, brush, target - area, tolerance)
            area += added
            if cut:  # this segment reached the target: the stroke ends here
                break
        if cut and area >= target - tolerance:
            return hole.astype(bool)
    raise _unreachable(
        "irregular",
        coverage,
        f"{STROKE_BUDGET} strokes of preset {preset!r} reached only {area / hole.size:.3f}",
        "Use a thicker preset, or kind 'box' or 'patches'.",
    )


# ---------------------------------------------------------------------------------------------
# shape: masks that follow object boundaries
# ---------------------------------------------------------------------------------------------

SHAPE_SOURCES = ("scenes", "photos")
SCENE_ATTEMPTS = 10  # scenes drawn at most until one shows an object


def _scene_labels(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """Object labels ``(H, W)`` of a procedural scene drawn from ``rng`` (0 = background)."""
    from course_lib.data import ProceduralScenes

    # On tiny images a small object can miss every pixel centre: draw again (a few times).
    for _ in range(SCENE_ATTEMPTS):
        scenes = ProceduralScenes(size=(height, width), length=1, seed=int(rng.integers(2**31)))
        labels = scenes[0][1].numpy()
        if labels.any():
            break
    return labels


def _photo_labels(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """Segments ``(H, W)`` (1, 2, ...) of a photo patch: Felzenszwalb's graph segmentation,
    which cuts where colours change, so segments follow the edges of things in the photo."""
    from skimage.segmentation import felzenszwalb

    from course_lib.data import PhotoPatches

    side = max(height, width)
    photos = PhotoPatches(patch_size=side, split="train", length=1, seed=int(rng.integers(2**31)))
    picture = photos[0][:, :height, :width].permute(1, 2, 0).numpy()  # (H, W, 3)
    # `scale` grows with the image so a patch splits into about 10-40 segments at any size;
    # min_size merges specks smaller than 1/128 of the image into their neighbours.
    segments = felzenszwalb(picture, scale=side, sigma=0.8, min_size=height * width // 128)
    return segments + 1  # every segment is a region; 0 would mean background


def _squared_distance(pixels: np.ndarray) -> np.ndarray:
    """Squared Euclidean distance ``(H, W)`` from every True pixel to the nearest False one.

    OpenCV's precise distance is the square root of a whole number, but its last bit can
    differ between runs (threads, vector units); squaring and rounding gives back that whole
    number exactly, so equal distances tie exactly and the masks are reproducible.
    """
    distance = cv2.distanceTransform(pixels.astype(np.uint8), cv2.DIST_L2, cv2.DIST_MASK_PRECISE)
    return np.rint(distance.astype(np.float64) ** 2)


def _fit_area(union: np.ndarray, pixels: int) -> np.ndarray:
    """Grow or shrink ``union`` (bool, not empty) to exactly ``pixels`` hole pixels.

    Pixels are ranked by signed distance to the union's outline (negative inside): taking
    the ``pixels`` lowest is a dilation (if the union is too small) or an erosion (if too
    large) by a continuous radius, exact to one pixel; ties go in raster order.
    """
    signed = np.where(union, -_squared_distance(union), _squared_distance(~union)).ravel()
    hole = np.zeros(signed.size, dtype=bool)
    if pixels > 0:
        level = np.partition(signed, pixels - 1)[pixels - 1]  # the pixels-th lowest value
        hole = signed < level
        ties = np.flatnonzero(signed == level)[: pixels - int(hole.sum())]
        hole[ties] = True
    return hole.reshape(union.shape)


def shape(
    rng: np.random.Generator,
    height: int,
    width: int,
    coverage: float | None,
    *,
    source: str | None = None,
    labels: np.ndarray | None = None,
) -> np.ndarray:
    """Holes shaped like objects: unions of regions of a label map (0 = background, never used).

    Where the regions come from:

    * ``source="scenes"`` (default): the objects of a :class:`course_lib.data.ProceduralScenes`
      scene seeded from the mask's random generator;
    * ``source="photos"``: segments of a :class:`course_lib.data.PhotoPatches` patch cut by
      Felzenszwalb's graph segmentation;
    * ``labels=``: a label map of the very images being masked (``generate`` takes
      ``(B, H, W)``, one per sample), so the holes follow *their* boundaries.

    Natural distribution: each region is a hole with probability 1/2, except regions over
    half the image (backgrounds); at least one region is always taken.

    With ``coverage``: regions are visited in random order and each is added if that brings
    the union closer to the target (the region nearest the target if none does), then the
    union is dilated or eroded (signed distance threshold, exact to one pixel) onto the
    target. Every target is reachable, but far from the regions' own areas the outline is an
    offset of theirs. Unreachable: a label map with no region (all 0): ``ValueError``.
    """
    if labels is not None and source is not None:
        raise ValueError(
            f"shape masks take either labels= (regions of your images) or source={source!r}, "
            "not both; drop one of them."
        )
    if labels is None:
        source = _check_choice("source", source or "scenes", SHAPE_SOURCES)
        draw_labels = _scene_labels if source == "scenes" else _photo_labels
        labels = draw_labels(rng, height, width)
    regions, areas = np.unique(labels[labels > 0], return_counts=True)
    if len(regions) == 0:
        raise ValueError(
            "shape masks need at least one region (a label > 0) in the label map, but this one "
            "is all background (0); pass labels with objects, or use source='scenes'."
        )
    if coverage is None:
        # Regions over half the image are backgrounds (a sky, a wall), not things to remove.
        allowed = areas <= height * width / 2
        chosen = allowed & (rng.random(len(regions)) < 0.5)
        if not chosen.any():  # never an empty mask: one allowed region, else the smallest
            candidates = np.flatnonzero(allowed)
            chosen[rng.choice(candidates) if len(candidates) else np.argmin(areas)] = True
        return np.isin(labels, regions[chosen])
    target = coverage * height * width
    chosen = np.zeros(len(regions), dtype=bool)
    area = 0
    for index in rng.permutation(len(regions)):
        if abs(area + areas[index] - target) < abs(area - target):
            chosen[index], area = True, area + areas[index]
    if not chosen.any():
        chosen[np.argmin(np.abs(areas - target))] = True
    return _fit_area(np.isin(labels, regions[chosen]), round(target))


# ---------------------------------------------------------------------------------------------
# mae: the masked autoencoder's random patch masking
# ---------------------------------------------------------------------------------------------

MAE_DEFAULT_RATIO = 0.75


def _default_patch(height: int, width: int) -> int:
    """Largest patch side dividing both H and W with at least 8 patches along the short side."""
    common = math.gcd(height, width)
    return max(p for p in range(1, _default_cell(height, width) + 1) if common % p == 0)


def mae(
    rng: np.random.Generator,
    height: int,
    width: int,
    coverage: float | None,
    *,
    patch: int | None = None,
) -> np.ndarray:
    """The masked autoencoder's random masking: a fixed number of whole patches removed.

    The image is cut into ``L = (H // patch) * (W // patch)`` patches (``patch`` defaults to
    the largest divisor of H and W up to ``min(H, W) // 8``); ``ratio = coverage`` (0.75 when
    ``None``, MAE's default). Exactly ``int(L * (1 - ratio))`` patches are kept, MAE's rule:
    uniform noise per patch, ``argsort`` gives a random shuffle, the first patches of the
    shuffle are kept and ``argsort`` of the shuffle puts the mask back in patch order (lesson
    06 builds the same thing in torch). The hole fraction is ``1 - keep / L``, within
    ``1 / L`` of the ratio: within the tolerance for the default patch (``L >= 64``).

    ``H`` and ``W`` must be multiples of ``patch``, else ``ValueError``.
    """
    ratio = MAE_DEFAULT_RATIO if coverage is None else coverage
    patch = _default_patch(height, width) if patch is None else patch
    patch = _check_int("patch", patch, 1, min(height, width))
    if height % patch or width % patch:
        raise ValueError(
            f"mae masks need H and W to be multiples of patch={patch}, got {height}x{width}; "
            f"pick a patch that divides both (e.g. {_default_patch(height, width)}) or crop "
            "the image."
        )
    rows, cols = height // patch, width // patch
    length = rows * cols
    keep = int(length * (1 - ratio))
    noise = rng.random(length)  # (L,)
    shuffle = np.argsort(noise)  # patches sorted by noise: the first `keep` stay visible
    restore = np.argsort(shuffle)  # where each patch went in the shuffle
    removed = np.ones(length, dtype=bool)
    removed[:keep] = False  # in shuffled order
    return _cells_to_pixels(removed[restore].reshape(rows, cols), patch, height, width)


# ---------------------------------------------------------------------------------------------
# mixed: LaMa's training masks
# ---------------------------------------------------------------------------------------------


def mixed(rng: np.random.Generator, height: int, width: int, coverage: float | None) -> np.ndarray:
    """LaMa's training preset: each mask is thick strokes or boxes, with probability 1/2.

    ``coverage`` is passed on. Targets above what boxes reach with their default margin
    (about 0.87 at 256x256, see :func:`box`) are unreachable, and raise ``ValueError`` for
    every mask, not only for those that happen to be boxes.
    """
    if coverage is not None:
        _check_box_reach(coverage, height, width, _default_margin(height, width))
    if rng.random() < 0.5:
        return irregular(rng, height, width, coverage, preset="thick")
    return box(rng, height, width, coverage)


# The registry: kind name -> the function that draws one mask of that kind.
DRAWERS: dict[str, Callable[..., np.ndarray]] = {
    "patches": patches,
    "grid": grid,
    "box": box,
    "irregular": irregular,
    "shape": shape,
    "mae": mae,
    "mixed": mixed,
}
