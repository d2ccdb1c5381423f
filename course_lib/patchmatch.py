"""PatchMatch: fill a hole by copying patches from the known part of the image (lesson 02).

Exemplar-based inpainting answers "what goes here?" with "something that already appears
elsewhere in the picture". It needs, for every patch that overlaps the hole, the most similar
fully known patch: a nearest-neighbour field (NNF). Searching all pairs is quadratic in the
number of pixels; PatchMatch finds a near-optimal field in a few cheap passes because good
matches are coherent (if my neighbour's patch matches the one at ``s``, mine probably matches
the one next to ``s``). The steps, one function each, in the order the lesson builds them:

1. :func:`random_nnf`: start from a random source patch for every target patch.
2. :func:`propagate`: try the match of each neighbour, shifted by one step.
3. :func:`random_search`: try random patches around the current match, at radii that halve.
4. :func:`vote`: every hole pixel becomes the weighted average of the colours that the
   overlapping matched patches put there.
5. :func:`patchmatch_fill`: alternate search and voting, coarse to fine over an image pyramid.

:func:`nearest_neighbour_field` runs steps 1-3 between two images (rebuild image A from the
patches of image B) and :func:`exact_nearest_neighbour_field` is the brute-force answer to
compare it with.

Arrays here are numpy, one image at a time: images ``(H, W, C)`` float32, holes ``(H, W)``
bool (True = hole); :mod:`course_lib.baselines` wraps them for course tensors. A patch is
named by its top-left pixel, so a ``p x p`` patch size gives ``(H - p + 1) x (W - p + 1)``
patch positions, and an NNF stores one source position ``(row, col)`` per target position.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np
from scipy import ndimage

# Whole-array propagation moves a good match by `step` positions per update; trying the
# steps 4, 2, 1 in turn (jump flooding) lets it travel far in few updates.
JUMP_STEPS: tuple[int, ...] = (4, 2, 1)
# Random search radii shrink by this factor, from the whole source image down to one pixel.
SEARCH_SHRINK = 0.5
# Voting weight of a patch: exp(-distance / (2 sigma^2)), with sigma^2 this percentile of the
# current match distances (a robust scale: most patches get a weight near 1, bad ones little).
VOTE_PERCENTILE = 75
# Pyramid levels stop halving before the coarse image is shorter than this many patch sizes:
# smaller than that, hardly any patch avoids the hole.
COARSEST_IN_PATCHES = 4


def patch_grid(image: np.ndarray, patch_size: int) -> np.ndarray:
    """Every ``p x p`` patch of ``image``, flattened: ``(H, W, C)`` -> ``(H-p+1, W-p+1, C*p*p)``.

    Entry ``[r, c]`` is the patch whose top-left pixel is ``(r, c)``, laid out as ``(C, p, p)``.
    """
    windows = np.lib.stride_tricks.sliding_window_view(image, (patch_size, patch_size), (0, 1))
    rows, cols = windows.shape[:2]  # windows: (H-p+1, W-p+1, C, p, p)
    return np.ascontiguousarray(windows.reshape(rows, cols, -1), dtype=np.float32)


def patches_touching(hole: np.ndarray, patch_size: int) -> np.ndarray:
    """Which patch positions overlap the hole: ``(H, W)`` bool -> ``(H-p+1, W-p+1)`` bool."""
    windows = np.lib.stride_tricks.sliding_window_view(hole, (patch_size, patch_size))
    return windows.any(axis=(-2, -1))


def random_nnf(count: int, source_valid: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Step 1: ``count`` source positions ``(count, 2)`` drawn uniformly among the valid ones.

    ``source_valid`` ``(Hs', Ws')`` says which source patches may be copied (fully known ones).
    """
    choices = np.argwhere(source_valid)  # (S, 2) rows and cols of the valid sources
    return choices[rng.integers(len(choices), size=count)]


def patch_distances(
    target_patches: np.ndarray,
    source_patches: np.ndarray,
    candidates: np.ndarray,
    source_valid: np.ndarray,
) -> np.ndarray:
    """Sum of squared differences between each target patch and its candidate source patch.

    ``target_patches`` ``(N, D)``, ``source_patches`` ``(Hs', Ws', D)``, ``candidates``
    ``(N, 2)`` source positions -> ``(N,)``. A candidate outside the source grid or not
    allowed by ``source_valid`` gets an infinite distance, so it never wins a comparison.
    """
    rows, cols = candidates[:, 0], candidates[:, 1]
    inside = (rows >= 0) & (rows < source_valid.shape[0]) & (cols >= 0)
    inside &= cols < source_valid.shape[1]
    usable = inside.copy()
    usable[inside] = source_valid[rows[inside], cols[inside]]
    distances = np.full(len(candidates), np.inf, dtype=np.float32)
    difference = target_patches[usable] - source_patches[rows[usable], cols[usable]]  # (n, D)
    distances[usable] = np.einsum("nd,nd->n", difference, difference)
    return distances


@dataclass
class Search:
    """The state of one PatchMatch search: where we look from, where we look, what we found.

    Only the ``N`` target positions listed in ``positions`` are searched (when inpainting, the
    patches that overlap the hole); ``lookup`` finds a position's row in the arrays, which is
    how a position finds its neighbours' matches.
    """

    target_patches: np.ndarray  # (N, D) the patches that look for a match
    positions: np.ndarray  # (N, 2) their positions (row, col) in the target patch grid
    lookup: np.ndarray  # (Ht', Wt') int: row of that position in the arrays, -1 if not searched
    source_patches: np.ndarray  # (Hs', Ws', D) every patch of the source image
    source_valid: np.ndarray  # (Hs', Ws') bool: the source patches a match may use
    nnf: np.ndarray  # (N, 2) the current match (source position) of each target patch
    distance: np.ndarray  # (N,) its patch distance

    def try_candidates(self, candidates: np.ndarray, which: np.ndarray | None = None) -> None:
        """Keep each candidate ``(n, 2)`` that beats the current match of its target patch.

        ``which`` (bool ``(N,)``) names the target patches the candidates are for; all if None.
        """
        if which is None:
            rows, targets = np.arange(len(self.nnf)), self.target_patches
        else:
            rows = np.flatnonzero(which)
            targets = self.target_patches[rows]  # (n, D)
        distances = patch_distances(targets, self.source_patches, candidates, self.source_valid)
        better = distances < self.distance[rows]
        self.nnf[rows[better]] = candidates[better]
        self.distance[rows[better]] = distances[better]


def start_search(
    target_patches: np.ndarray,
    positions: np.ndarray,
    grid_shape: tuple[int, int],
    source_patches: np.ndarray,
    source_valid: np.ndarray,
    nnf: np.ndarray,
) -> Search:
    """A :class:`Search` from an initial field ``nnf`` ``(N, 2)`` (its distances computed)."""
    lookup = np.full(grid_shape, -1, dtype=np.int64)
    lookup[positions[:, 0], positions[:, 1]] = np.arange(len(positions))
    distance = patch_distances(target_patches, source_patches, nnf, source_valid)
    return Search(target_patches, positions, lookup, source_patches, source_valid, nnf, distance)


def propagate(search: Search, step: int = 1) -> None:
    """Step 2: each target patch tries the match of its neighbours ``step`` away, shifted back.

    If the patch ``step`` to my left matches the source patch at ``s``, the patch ``step`` to
    the right of ``s`` is my candidate. All positions update at once (whole-array operations),
    from the four neighbours in turn; Barnes et al. scan in raster order instead, which lets a
    match travel across the image in one pass but cannot be vectorised.
    """
    height, width = search.lookup.shape
    for shift in ((0, step), (0, -step), (step, 0), (-step, 0)):
        neighbours = search.positions + shift  # (N, 2)
        inside = (neighbours[:, 0] >= 0) & (neighbours[:, 0] < height)
        inside &= (neighbours[:, 1] >= 0) & (neighbours[:, 1] < width)
        index = np.full(len(neighbours), -1)
        index[inside] = search.lookup[neighbours[inside, 0], neighbours[inside, 1]]
        # Neighbours that are not searched (fully known patches when inpainting) match
        # themselves; shifted back, that is my own position, which overlaps the hole.
        has = index >= 0
        search.try_candidates(search.nnf[index[has]] - shift, has)


def random_search(search: Search, rng: np.random.Generator) -> None:
    """Step 3: try one random source patch around the current match at radii that halve.

    The first radius spans the whole source, so a patch stuck in a poor region can jump
    anywhere; later ones refine near the match. Candidates are clipped into the source grid.
    """
    limit = np.array(search.source_valid.shape) - 1  # largest row and col
    radius = float(max(search.source_valid.shape))
    while radius >= 1:
        reach = int(radius)
        offsets = rng.integers(-reach, reach + 1, size=search.nnf.shape)  # (N, 2)
        search.try_candidates(np.clip(search.nnf + offsets, 0, limit))
        radius *= SEARCH_SHRINK


def patchmatch_iteration(
    search: Search, rng: np.random.Generator, steps: tuple[int, ...] = JUMP_STEPS
) -> None:
    """One PatchMatch iteration: propagation at every jump step, then random search."""
    for step in steps:
        propagate(search, step)
    random_search(search, rng)


def _check_count(name: str, value: object, minimum: int) -> int:
    """Return ``value`` if it is an int of at least ``minimum``; raise ``ValueError`` if not."""
    if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < minimum:
        raise ValueError(f"{name} must be an int of at least {minimum}, got {value!r}.")
    return int(value)


def check_options(
    patch_size: int, iterations: int, levels: int | None, seed: int
) -> tuple[int, int, int | None, int]:
    """Check the options of :func:`patchmatch_fill` and return them; ``ValueError`` if bad."""
    return (
        _check_count("patch_size", patch_size, 1),
        _check_count("iterations", iterations, 1),
        None if levels is None else _check_count("levels", levels, 1),
        _check_count("seed", seed, 0),
    )


def _check_array_image(name: str, image: np.ndarray, patch_size: int) -> None:
    """Check a numpy image ``(H, W, C)`` with at least one ``patch_size`` patch."""
    if not isinstance(image, np.ndarray) or image.ndim != 3:
        raise ValueError(
            f"{name} must be a numpy array (H, W, C); convert a course tensor with "
            f"course_lib.convert.image_to_numpy, got {getattr(image, 'shape', type(image))}."
        )
    if min(image.shape[:2]) < patch_size:
        raise ValueError(
            f"{name} of {image.shape[0]}x{image.shape[1]} pixels is smaller than one "
            f"{patch_size}x{patch_size} patch; use a larger image or a smaller patch_size."
        )


def nearest_neighbour_field(
    target: np.ndarray,
    source: np.ndarray,
    patch_size: int = 7,
    iterations: int = 5,
    seed: int = 0,
    steps: tuple[int, ...] = JUMP_STEPS,
) -> tuple[np.ndarray, np.ndarray]:
    """PatchMatch between two images: for every patch of ``target``, a similar one in ``source``.

    ``target`` ``(Ht, Wt, C)`` and ``source`` ``(Hs, Ws, C)`` -> ``(nnf, distance)``: ``nnf``
    ``(Ht-p+1, Wt-p+1, 2)`` int holds the source position (row, col) matched to each target
    position, ``distance`` ``(Ht-p+1, Wt-p+1)`` its sum of squared differences. Random start,
    then ``iterations`` rounds of propagation and random search; the same ``seed`` gives the
    same field.
    """
    patch_size = _check_count("patch_size", patch_size, 1)
    iterations = _check_count("iterations", iterations, 0)
    seed = _check_count("seed", seed, 0)
    _check_array_image("target", target, patch_size)
    _check_array_image("source", source, patch_size)
    rng = np.random.default_rng(seed)
    target_patches = patch_grid(target, patch_size)  # (Ht', Wt', D)
    source_patches = patch_grid(source, patch_size)  # (Hs', Ws', D)
    grid_shape = target_patches.shape[:2]
    positions = np.argwhere(np.ones(grid_shape, dtype=bool))  # (N, 2), raster order
    source_valid = np.ones(source_patches.shape[:2], dtype=bool)
    search = start_search(
        target_patches.reshape(len(positions), -1),
        positions,
        grid_shape,
        source_patches,
        source_valid,
        random_nnf(len(positions), source_valid, rng),
    )
    for _ in range(iterations):
        patchmatch_iteration(search, rng, steps)
    return search.nnf.reshape(*grid_shape, 2), search.distance.reshape(grid_shape)


def exact_nearest_neighbour_field(
    target: np.ndarray, source: np.ndarray, patch_size: int = 7
) -> tuple[np.ndarray, np.ndarray]:
    """Brute force: compare every target patch with every source patch (small images only).

    Same output as :func:`nearest_neighbour_field`. The cost is (number of target patches) x
    (number of source patches) x patch length, the quadratic cost PatchMatch avoids.
    """
    patch_size = _check_count("patch_size", patch_size, 1)
    _check_array_image("target", target, patch_size)
    _check_array_image("source", source, patch_size)
    target_patches = patch_grid(target, patch_size)
    source_patches = patch_grid(source, patch_size)
    grid_shape, source_shape = target_patches.shape[:2], source_patches.shape[:2]
    flat_target = target_patches.reshape(-1, target_patches.shape[-1]).astype(np.float64)
    flat_source = source_patches.reshape(-1, source_patches.shape[-1]).astype(np.float64)
    # |t - s|^2 = |t|^2 + |s|^2 - 2 t.s: one matrix product instead of a loop over pairs.
    squared = (
        (flat_target**2).sum(1)[:, None] + (flat_source**2).sum(1)[None, :]
    ) - 2 * flat_target @ flat_source.T  # (Nt, Ns)
    best = squared.argmin(axis=1)  # (Nt,)
    nnf = np.stack(np.unravel_index(best, source_shape), axis=-1)  # (Nt, 2)
    distance = patch_distances(
        target_patches.reshape(len(nnf), -1), source_patches, nnf, np.ones(source_shape, bool)
    )
    return nnf.reshape(*grid_shape, 2), distance.reshape(grid_shape)


def vote(search: Search, shape: tuple[int, int, int], patch_size: int) -> np.ndarray:
    """Step 4: rebuild the pixels under the searched patches from their matches.

    Every searched target patch pastes its matched source patch in place, weighted by how well
    it matches (``exp(-distance / (2 sigma^2))``); each pixel is the weighted mean of what was
    pasted on it. Returns ``shape`` ``(H, W, C)``; pixels no searched patch covers are 0.
    """
    channels = shape[2]
    sigma2 = np.percentile(search.distance, VOTE_PERCENTILE) + 1e-8
    # Clipping the exponent keeps every weight above zero: no pixel ends up with 0 / 0.
    weights = np.exp(-np.minimum(search.distance / (2 * sigma2), 50.0)).astype(np.float64)
    rows, cols = search.nnf[:, 0], search.nnf[:, 1]
    pasted = search.source_patches[rows, cols].reshape(-1, channels, patch_size, patch_size)
    total = np.zeros(shape, dtype=np.float64)
    weight_sum = np.zeros(shape[:2], dtype=np.float64)
    top, left = search.positions[:, 0], search.positions[:, 1]
    # One whole-array update per pixel offset inside the patch (p*p updates in all). Within
    # one offset no two patches land on the same pixel, so plain fancy-index += is exact.
    for dy in range(patch_size):
        for dx in range(patch_size):
            total[top + dy, left + dx] += weights[:, None] * pasted[:, :, dy, dx]
            weight_sum[top + dy, left + dx] += weights
    covered = weight_sum > 0
    total[covered] /= weight_sum[covered][:, None]
    return total.astype(np.float32)


def _downsample(image: np.ndarray, hole: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Half the size (rounded up): area-averaged image; a coarse pixel is a hole if any of the
    fine pixels it covers is, so coarse known pixels come from known pixels only."""
    size = (math.ceil(image.shape[1] / 2), math.ceil(image.shape[0] / 2))  # cv2: (width, height)
    small = cv2.resize(image, size, interpolation=cv2.INTER_AREA).reshape(size[1], size[0], -1)
    small_hole = cv2.resize(hole.astype(np.float32), size, interpolation=cv2.INTER_AREA) > 0
    return small, small_hole


def pyramid_levels(height: int, width: int, patch_size: int) -> int:
    """Default number of pyramid levels: halve while the coarse image stays at least
    ``COARSEST_IN_PATCHES`` patch sizes on its short side (1 = no pyramid)."""
    levels, short = 1, min(height, width)
    while math.ceil(short / 2) >= COARSEST_IN_PATCHES * patch_size:
        levels, short = levels + 1, math.ceil(short / 2)
    return levels


def nearest_known(image: np.ndarray, hole: np.ndarray) -> np.ndarray:
    """Each hole pixel takes the colour of the nearest known pixel: ``(H, W, C)`` -> same.

    PatchMatch's crude first guess at the coarsest level, and the ``nearest_fill`` baseline of
    :mod:`course_lib.baselines`.
    """
    # The distance transform measures, for every non-zero (hole) pixel, the distance to the
    # nearest zero (known) pixel; return_indices says which pixel that is.
    rows, cols = ndimage.distance_transform_edt(hole, return_distances=False, return_indices=True)
    return image[rows, cols]


def _has_source(hole: np.ndarray, patch_size: int) -> bool:
    """Whether at least one ``patch_size`` patch of an image with this hole is fully known."""
    return min(hole.shape) >= patch_size and not patches_touching(hole, patch_size).all()


def _upsample_nnf(coarse: Search, grid_shape: tuple[int, int], positions: np.ndarray) -> np.ndarray:
    """Each fine target position starts from twice its coarse parent's match (plus its offset
    inside the parent); parents that were not searched matched themselves."""
    parent = np.minimum(positions // 2, np.array(coarse.lookup.shape) - 1)  # (N, 2)
    index = coarse.lookup[parent[:, 0], parent[:, 1]]
    matches = parent.copy()
    matches[index >= 0] = coarse.nnf[index[index >= 0]]
    fine = 2 * matches + positions % 2
    return np.minimum(fine, np.array(grid_shape) - 1)


def patchmatch_fill(
    image: np.ndarray,
    hole: np.ndarray,
    patch_size: int = 7,
    iterations: int = 5,
    levels: int | None = None,
    seed: int = 0,
) -> np.ndarray:
    """Step 5: fill ``hole`` ``(H, W)`` bool of ``image`` ``(H, W, C)`` by copying patches.

    Coarse to fine over an image pyramid of ``levels`` levels (``None``: as many halvings as
    keep the coarse image at least 4 patch sizes wide; levels with no fully known patch are
    skipped). At the coarsest level the hole starts as the colour of its nearest known pixel
    and the NNF at random; at every level, ``iterations`` times: search (one PatchMatch
    iteration from every patch that overlaps the hole to the fully known patches), then vote.
    The NNF and the filled image are upsampled to start the next level. If no ``patch_size``
    patch of the full image is fully known (a fine grid of holes), the patch size shrinks until
    one is. Returns the filled image ``(H, W, C)``: known pixels unchanged. Deterministic for a
    given ``seed``.
    """
    patch_size, iterations, levels, seed = check_options(patch_size, iterations, levels, seed)
    hole = np.asarray(hole, dtype=bool)
    if not isinstance(image, np.ndarray) or image.ndim != 3 or hole.shape != image.shape[:2]:
        raise ValueError(
            f"expected image (H, W, C) and hole (H, W), got {getattr(image, 'shape', image)} "
            f"and {hole.shape}."
        )
    if hole.all():
        raise ValueError("the hole covers the whole image: there is nothing to copy from.")
    # Hole pixels are zeroed so that whatever was under the hole cannot leak into the answer.
    known = np.where(hole[..., None], 0, image).astype(np.float32)
    if not hole.any():
        return known
    # Shrink the patch until at least one patch of the full image is fully known (with
    # 1 x 1 patches every known pixel is one).
    while not _has_source(hole, patch_size):
        patch_size -= 1
    levels = pyramid_levels(*hole.shape, patch_size) if levels is None else levels
    pyramid = [(known, hole)]  # finest first
    for _ in range(levels - 1):
        pyramid.append(_downsample(*pyramid[-1]))
    # Start at the coarsest level up to which every level has a fully known patch to copy.
    start = 0
    while start + 1 < levels and _has_source(pyramid[start + 1][1], patch_size):
        start += 1
    rng = np.random.default_rng(seed)
    filled, search = None, None
    for level_image, level_hole in reversed(pyramid[: start + 1]):
        if filled is None:
            filled = nearest_known(level_image, level_hole)
        else:
            size = (level_hole.shape[1], level_hole.shape[0])  # cv2: (width, height)
            larger = cv2.resize(filled, size, interpolation=cv2.INTER_LINEAR)
            filled = np.where(level_hole[..., None], larger.reshape(level_image.shape), level_image)
        filled, search = _fill_level(
            level_image, level_hole, filled, search, patch_size, iterations, rng
        )
    return filled


def _fill_level(
    image: np.ndarray,
    hole: np.ndarray,
    filled: np.ndarray,
    coarse: Search | None,
    patch_size: int,
    iterations: int,
    rng: np.random.Generator,
) -> tuple[np.ndarray, Search]:
    """Search and vote ``iterations`` times at one pyramid level.

    ``filled`` ``(H, W, C)`` is the first guess (known pixels plus an estimate of the hole);
    ``coarse`` is the previous level's search (None at the coarsest level: random start).
    Returns the improved fill and the last search (to start the next level from).
    """
    touching = patches_touching(hole, patch_size)  # (H', W') bool
    positions = np.argwhere(touching)  # (N, 2) target patches: those overlapping the hole
    source_valid = ~touching  # copy only from fully known patches
    source_patches = patch_grid(image, patch_size)  # (H', W', D), fixed at this level
    if coarse is None:
        nnf = random_nnf(len(positions), source_valid, rng)
    else:
        nnf = _upsample_nnf(coarse, touching.shape, positions)
        # A match that lands on a patch overlapping the hole at this level starts at random.
        bad = ~source_valid[nnf[:, 0], nnf[:, 1]]
        nnf[bad] = random_nnf(int(bad.sum()), source_valid, rng)
    for _ in range(iterations):
        # Target patches include the current guess of the hole, so they change every round.
        target_patches = patch_grid(filled, patch_size)[positions[:, 0], positions[:, 1]]
        search = start_search(
            target_patches, positions, touching.shape, source_patches, source_valid, nnf
        )
        patchmatch_iteration(search, rng)
        filled = np.where(hole[..., None], vote(search, filled.shape, patch_size), filled)
        nnf = search.nnf
    return filled, search
