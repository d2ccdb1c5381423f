"""The images every lesson trains and tests on (lesson 00).

Three sources, one convention: an item is a float32 tensor ``(3, H, W)`` in ``[0, 1]`` and a
batch is ``(B, 3, H, W)``.

* :class:`ProceduralScenes` draws flat shapes over textured backgrounds, at any size, together
  with the label map of the objects. Many backgrounds are exactly periodic, so a hole in them
  has one right answer; that makes them the test bed for shape-aware masks and for the
  Fourier lesson.
* :class:`PhotoPatches` crops patches from the photographs that ship inside the scikit-image
  and scikit-learn wheels, so real photos are available offline. Photos are split by source:
  the patches of :data:`TEST_PHOTOS` are never seen in training.
* :func:`real_images` wraps torchvision's CIFAR-10, Places365, DTD, CelebA and any folder of
  images in the same convention, for the full-size experiments on a GPU.

Every random choice of an item comes from its own ``torch.Generator`` seeded from
``(seed, index)``, so item ``i`` is the same on every call, in every process and in every
``DataLoader`` worker, whatever was drawn before it.
"""

from __future__ import annotations

import functools
import importlib.util
import math
import operator
import os
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from PIL import Image
from torch.utils.data import Dataset

from course_lib.convert import pil_to_image
from course_lib.validate import check_int, check_size

# Multiplier that turns (seed, index) into one generator seed: item i of seed s uses
# s * SEED_STRIDE + i, so two seeds give different items as long as length <= SEED_STRIDE
# (which every data set's constructor checks).
SEED_STRIDE = 1_000_003


def item_generator(seed: int, index: int) -> torch.Generator:
    """The random number generator of item ``index`` of a data set with seed ``seed``.

    Seeding one generator per item (instead of drawing from one shared stream) is what makes
    an item depend on its index only: items can be read in any order, by any worker.
    """
    return torch.Generator().manual_seed(seed * SEED_STRIDE + index)


def _uniform(generator: torch.Generator, low: float, high: float) -> float:
    """One number drawn uniformly from ``[low, high)``."""
    return low + (high - low) * torch.rand((), generator=generator).item()


def _draw_index(generator: torch.Generator, count: int) -> int:
    """One index drawn uniformly from ``0 .. count - 1``."""
    return int(torch.randint(count, (), generator=generator).item())


def _check_length(length: object) -> int:
    """A data set's length: at least 1 and at most :data:`SEED_STRIDE`.

    Item ``i`` of seed ``s`` is drawn with the generator seed ``s * SEED_STRIDE + i``, so item
    ``SEED_STRIDE`` of seed 0 would be item 0 of seed 1: a longer data set would silently
    repeat another seed's items (the held-out ones, for instance).
    """
    return check_int(
        length,
        "length",
        1,
        SEED_STRIDE,
        hint=f"Item i of seed s uses the generator seed s * {SEED_STRIDE} + i, so a longer "
        "data set would repeat the items of the next seed; for more items, combine data sets "
        "of several seeds (torch.utils.data.ConcatDataset).",
    )


def _check_index(index: object, length: int) -> int:
    """Turn a sequence index (negative counts from the end) into ``0 .. length - 1``."""
    position = operator.index(index)  # TypeError for floats and strings, like a list
    if position < 0:
        position += length
    if not 0 <= position < length:
        # IndexError (not ValueError) is what ends a for-loop over the data set.
        raise IndexError(f"index {index} is out of range for a data set of length {length}.")
    return position


def _check_range(start: int, count: int, length: int) -> range:
    """The indices ``start .. start + count - 1`` of a batch, checked against ``length``."""
    check_int(count, "count", 1)
    check_int(start, "start", 0)
    if start + count > length:
        raise IndexError(
            f"batch({start}, {count}) asks for items up to {start + count - 1}, but the data set "
            f"has {length} items (0 .. {length - 1}); lower count or pass a larger length=."
        )
    return range(start, start + count)


# ---------------------------------------------------------------------------------------------
# Procedural scenes: textures and shapes
# ---------------------------------------------------------------------------------------------

BACKGROUNDS: tuple[str, ...] = ("stripes", "checkerboard", "grating", "dots", "smooth")
PERIODIC_BACKGROUNDS: tuple[str, ...] = ("stripes", "checkerboard", "grating", "dots")
SHAPES: tuple[str, ...] = ("circle", "rectangle", "triangle", "ellipse", "star")

# All lengths of a scene are in units of the image's short side, so the same scene rendered at
# 128 or 256 pixels is the 64-pixel scene at a higher resolution, not a different scene.
PERIOD_RANGE = (4 / 64, 16 / 64)  # texture periods: 4 to 16 pixels at 64x64
SMOOTH_PERIOD_RANGE = (1.5, 3.0)  # "smooth" backgrounds: one slow wave over the whole image
DOT_RADIUS_RANGE = (0.2, 0.4)  # dots: disc radius as a fraction of the lattice spacing
RADIUS_RANGE = (0.08, 0.35)  # object size: radius 8% to 35% of the short side
CENTRE_MARGIN = 0.1  # object centres stay this fraction of the width/height inside the image
ASPECT_RANGES = {"rectangle": (0.4, 1.0), "ellipse": (0.3, 0.75), "triangle": (0.6, 1.0)}
STAR_INNER = 0.45  # a star's inner corners sit at this fraction of its outer radius
STRIPED_OBJECT_PROBABILITY = 0.3  # other objects are filled with one flat colour
STRIPE_SHADE = 0.6  # a striped object alternates its colour with this darker shade of it
# Colours of one scene are at least this far apart (Euclidean distance in RGB, at most 1.73),
# so every object stands out from the background and from the objects drawn before it.
MIN_CONTRAST = 0.4
COLOUR_CANDIDATES = 8  # candidates drawn per colour; the first one far enough is kept

Colour = tuple[float, float, float]


@dataclass(frozen=True)
class Texture:
    """A background (or an object's fill): a pattern that blends two colours.

    Lengths are in units of the image's short side; angles are in radians. Which fields a
    kind uses:

    * ``"stripes"``: ``period``, ``angle``, ``phase[0]``, ``square`` (hard-edged square wave
      instead of a sinusoid).
    * ``"checkerboard"``: ``period`` (two cells), ``angle``, ``phase``.
    * ``"grating"``: two sinusoids, (``period``, ``angle``) and (``period2``, ``angle2``).
    * ``"dots"``: a square lattice of discs with spacing ``period``, turned by ``angle``,
      shifted by ``phase``, with disc radius ``dot_radius * period``.
    * ``"smooth"``: like grating, with periods longer than the image, so a slow gradient.
    * ``"flat"``: ``colours[0]`` everywhere.
    """

    kind: str
    colours: tuple[Colour, Colour]  # weight 0 shows colours[0], weight 1 shows colours[1]
    period: float = 0.125
    angle: float = 0.0
    phase: tuple[float, float] = (0.0, 0.0)  # offsets along the two lattice axes, in periods
    square: bool = False
    period2: float = 0.125
    angle2: float = 0.0
    dot_radius: float = 0.3


@dataclass(frozen=True)
class Shape:
    """One object of a scene: where it is, how big and how it is turned.

    ``centre`` is ``(x, y)`` as fractions of the image width and height; ``radius`` is in
    units of the short side; ``aspect`` is the height/width ratio of rectangles, ellipses and
    triangles (circles and stars ignore it).
    """

    kind: str
    centre: tuple[float, float]
    radius: float
    angle: float = 0.0
    aspect: float = 1.0


@dataclass(frozen=True)
class Scene:
    """Everything needed to render one scene at any size: a background and objects in
    drawing order (later objects cover earlier ones), each with its fill."""

    background: Texture
    objects: tuple[tuple[Shape, Texture], ...]


def pixel_grid(height: int, width: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Coordinates ``(x, y)`` of the pixel centres, in units of the short side.

    Both are ``(H, W)``; ``x`` grows to the right and ``y`` downwards. A 64x64 and a 128x128
    grid cover the same square ``[0, 1] x [0, 1]``, which is why scenes scale with size.
    """
    short = min(height, width)
    xs = (torch.arange(width, dtype=torch.float32) + 0.5) / short  # (W,)
    ys = (torch.arange(height, dtype=torch.float32) + 0.5) / short  # (H,)
    y, x = torch.meshgrid(ys, xs, indexing="ij")  # (H, W) each
    return x, y


def _wave_coordinate(
    x: torch.Tensor, y: torch.Tensor, period: float, angle: float, phase: float
) -> torch.Tensor:
    """Position along direction ``angle``, counted in periods: the argument of a plane wave."""
    return (x * math.cos(angle) + y * math.sin(angle)) / period + phase  # (H, W)


def _soft_square_wave(t: torch.Tensor, period_pixels: float) -> torch.Tensor:
    """1 on the first half of every period of ``t``, 0 on the second half.

    The edges are ramps one pixel wide (a cheap anti-aliasing): hard edges at a period that
    is not a whole number of pixels would flicker between neighbouring periods.
    """
    # Signed distance to the nearest edge, in periods: +0.25 in the middle of the "on" half.
    distance = 0.25 - torch.abs(torch.remainder(t + 0.25, 1.0) - 0.5)
    return (0.5 + distance * period_pixels).clamp(0.0, 1.0)


def texture_weight(texture: Texture, height: int, width: int) -> torch.Tensor:
    """The blend weight ``(H, W)`` in ``[0, 1]`` of ``texture``: 0 shows its first colour."""
    x, y = pixel_grid(height, width)
    period_pixels = texture.period * min(height, width)  # edge ramps are one pixel wide
    kind = texture.kind
    if kind == "flat":
        return torch.zeros(height, width)
    if kind == "stripes":
        t = _wave_coordinate(x, y, texture.period, texture.angle, texture.phase[0])
        if texture.square:
            return _soft_square_wave(t, period_pixels)
        return 0.5 + 0.5 * torch.cos(2 * math.pi * t)
    if kind in ("grating", "smooth"):
        # Sum of two plane waves: each is periodic along its own direction.
        t1 = _wave_coordinate(x, y, texture.period, texture.angle, texture.phase[0])
        t2 = _wave_coordinate(x, y, texture.period2, texture.angle2, texture.phase[1])
        return 0.5 + 0.25 * torch.cos(2 * math.pi * t1) + 0.25 * torch.cos(2 * math.pi * t2)
    # Checkerboard and dots live on a square lattice turned by `angle`: (a, b) count periods
    # along its two axes.
    a = _wave_coordinate(x, y, texture.period, texture.angle, texture.phase[0])
    b = _wave_coordinate(x, y, texture.period, texture.angle + math.pi / 2, texture.phase[1])
    if kind == "checkerboard":
        # Two cells per period along each axis; a cell is "on" when exactly one of the two
        # square waves is on (a soft exclusive or, exact away from the edges).
        on_a = _soft_square_wave(a, period_pixels)
        on_b = _soft_square_wave(b, period_pixels)
        return on_a + on_b - 2 * on_a * on_b
    if kind == "dots":
        # Offset from the nearest lattice point, in periods, then distance to the disc edge.
        da = torch.remainder(a, 1.0) - 0.5
        db = torch.remainder(b, 1.0) - 0.5
        inside = texture.dot_radius - torch.sqrt(da**2 + db**2)  # > 0 inside a disc
        return (0.5 + inside * period_pixels).clamp(0.0, 1.0)
    raise ValueError(f"unknown texture kind {kind!r}; expected 'flat' or one of {BACKGROUNDS}.")


def render_texture(texture: Texture, height: int, width: int) -> torch.Tensor:
    """Render ``texture`` as an image ``(3, H, W)`` in ``[0, 1]``."""
    weight = texture_weight(texture, height, width)[None]  # (1, H, W)
    first, second = (torch.tensor(colour).view(3, 1, 1) for colour in texture.colours)
    return first * (1 - weight) + second * weight  # (3, H, W)


def _rotated_offsets(shape: Shape, height: int, width: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Pixel offsets from the shape's centre in the shape's own frame (turned by its angle)."""
    x, y = pixel_grid(height, width)
    short = min(height, width)
    dx = x - shape.centre[0] * width / short  # (H, W)
    dy = y - shape.centre[1] * height / short
    cos, sin = math.cos(shape.angle), math.sin(shape.angle)
    return dx * cos + dy * sin, -dx * sin + dy * cos


def _inside_star(along: torch.Tensor, across: torch.Tensor, radius: float) -> torch.Tensor:
    """Inside test of a five-pointed star with straight edges, by its polar radius function."""
    half = math.pi / 5  # angle from an outer point to the next inner corner
    inner = STAR_INNER * radius
    distance = torch.sqrt(along**2 + across**2)
    # Fold every direction onto [0, half]: the star repeats every 2 * half and is symmetric.
    turn = torch.remainder(torch.atan2(across, along), 2 * half)
    folded = torch.minimum(turn, 2 * half - turn)
    # The edge from the point (radius, 0) to the inner corner inner * (cos half, sin half),
    # met by the ray at angle `folded`, lies at distance (p x e) / (ray x e), e = edge vector.
    edge_x, edge_y = inner * math.cos(half) - radius, inner * math.sin(half)
    edge_distance = (radius * edge_y) / (torch.cos(folded) * edge_y - torch.sin(folded) * edge_x)
    return distance <= edge_distance


def shape_mask(shape: Shape, height: int, width: int) -> torch.Tensor:
    """Boolean ``(H, W)``: True on the pixels whose centre lies inside ``shape``."""
    along, across = _rotated_offsets(shape, height, width)  # (H, W) each
    r, aspect = shape.radius, shape.aspect
    if shape.kind == "circle":
        return along**2 + across**2 <= r**2
    if shape.kind == "ellipse":
        return (along / r) ** 2 + (across / (aspect * r)) ** 2 <= 1
    if shape.kind == "rectangle":
        return (along.abs() <= r) & (across.abs() <= aspect * r)
    if shape.kind == "triangle":
        # Three corners counter-clockwise; a point is inside when it lies on the left of all
        # three edges (the cross product of edge and corner-to-point is >= 0).
        height_half = math.sqrt(3) / 2 * aspect * r
        corners = [(r, 0.0), (-r / 2, height_half), (-r / 2, -height_half)]
        inside = torch.ones_like(along, dtype=torch.bool)
        for (x0, y0), (x1, y1) in zip(corners, corners[1:] + corners[:1], strict=True):
            inside &= (x1 - x0) * (across - y0) - (y1 - y0) * (along - x0) >= 0
        return inside
    if shape.kind == "star":
        return _inside_star(along, across, r)
    raise ValueError(f"unknown shape {shape.kind!r}; expected one of {SHAPES}.")


def render_scene(scene: Scene, height: int, width: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Draw ``scene`` at ``height x width``: ``(image (3, H, W), labels (H, W) int64)``.

    ``labels`` is 0 on the background and ``k`` on the visible part of the ``k``-th object.
    Objects hidden completely by later ones are dropped and the others renumbered, so every
    label ``1 .. labels.max()`` covers at least one pixel.
    """
    image = render_texture(scene.background, height, width)  # (3, H, W)
    labels = torch.zeros(height, width, dtype=torch.int64)  # (H, W)
    for number, (shape, fill) in enumerate(scene.objects, start=1):
        inside = shape_mask(shape, height, width)  # (H, W) bool
        image = torch.where(inside, render_texture(fill, height, width), image)
        labels[inside] = number  # later objects overwrite earlier ones: occlusion
    # Renumber the visible objects 1, 2, ... in drawing order.
    visible = torch.bincount(labels.flatten(), minlength=len(scene.objects) + 1) > 0
    visible[0] = True  # the background keeps label 0 even if objects cover all of it
    new_number = torch.cumsum(visible.long(), dim=0) - 1  # (n + 1,)
    return image.clamp(0.0, 1.0), new_number[labels]


def object_masks(labels: torch.Tensor) -> torch.Tensor:
    """Per-object masks from a label map, in the course's mask layout.

    * ``labels (H, W)`` -> ``(K, 1, H, W)`` float32, mask ``k - 1`` is 1 where ``labels == k``,
      for ``k = 1 .. K`` with ``K = labels.max()``. Each mask can be used directly as a hole.
    * ``labels (B, H, W)`` -> ``(B, K, 1, H, W)`` with ``K`` the largest label of the whole
      batch; scenes with fewer objects get all-zero masks for the missing ones.

    The background (label 0) belongs to no mask, so the masks sum to ``labels > 0``.
    """
    if not isinstance(labels, torch.Tensor) or labels.dim() not in (2, 3):
        shape = tuple(labels.shape) if isinstance(labels, torch.Tensor) else type(labels).__name__
        raise ValueError(f"labels must be a tensor (H, W) or (B, H, W), got {shape}.")
    if labels.is_floating_point() or labels.dtype == torch.bool:
        raise ValueError(f"labels must hold integers (int64), got dtype {labels.dtype}.")
    if labels.numel() and labels.min() < 0:
        raise ValueError("labels must be >= 0 (0 = background, k = k-th object).")
    count = int(labels.max()) if labels.numel() else 0
    numbers = torch.arange(1, count + 1, device=labels.device)  # (K,)
    # Compare every pixel with every object number at once: (..., K, 1, H, W).
    masks = labels.unsqueeze(-3).unsqueeze(-3) == numbers.view(count, 1, 1, 1)
    return masks.float()


def _contrasting_colour(generator: torch.Generator, avoid: list[Colour]) -> Colour:
    """A random colour at least ``MIN_CONTRAST`` away from every colour in ``avoid``.

    Draws a few candidates and keeps the first that is far enough (or the farthest one), so
    the number of random draws is fixed and the scene stays a function of its seed.
    """
    candidates = torch.rand(COLOUR_CANDIDATES, 3, generator=generator)  # (N, 3)
    if not avoid:
        return tuple(candidates[0].tolist())
    distance = torch.cdist(candidates, torch.tensor(avoid)).min(dim=1).values  # (N,)
    far_enough = (distance >= MIN_CONTRAST).nonzero()
    choice = int(far_enough[0]) if len(far_enough) else int(distance.argmax())
    return tuple(candidates[choice].tolist())


def _random_texture(kind: str, generator: torch.Generator, avoid: list[Colour]) -> Texture:
    """Draw the parameters of a background texture of ``kind``.

    Every kind draws every field (the renderer ignores those it does not use): one code path
    for all kinds, and the same number of draws whatever the kind.
    """
    first = _contrasting_colour(generator, avoid)
    second = _contrasting_colour(generator, [*avoid, first])
    low, high = SMOOTH_PERIOD_RANGE if kind == "smooth" else PERIOD_RANGE
    angle = _uniform(generator, 0.0, math.pi)
    return Texture(
        kind=kind,
        colours=(first, second),
        period=_uniform(generator, low, high),
        angle=angle,
        phase=(_uniform(generator, 0.0, 1.0), _uniform(generator, 0.0, 1.0)),
        square=_uniform(generator, 0.0, 1.0) < 0.5,
        period2=_uniform(generator, low, high),
        # The second wave is turned by 30 to 150 degrees, so the two are clearly distinct.
        angle2=angle + _uniform(generator, math.pi / 6, 5 * math.pi / 6),
        dot_radius=_uniform(generator, *DOT_RADIUS_RANGE),
    )


def _random_object(
    kind: str, generator: torch.Generator, avoid: list[Colour]
) -> tuple[Shape, Texture]:
    """Draw one object of ``kind`` and its fill (flat, or stripes in two shades)."""
    margin = CENTRE_MARGIN
    shape = Shape(
        kind=kind,
        centre=(_uniform(generator, margin, 1 - margin), _uniform(generator, margin, 1 - margin)),
        radius=_uniform(generator, *RADIUS_RANGE),
        angle=_uniform(generator, 0.0, 2 * math.pi),
        aspect=_uniform(generator, *ASPECT_RANGES.get(kind, (1.0, 1.0))),
    )
    colour = _contrasting_colour(generator, avoid)
    striped = _uniform(generator, 0.0, 1.0) < STRIPED_OBJECT_PROBABILITY
    period = _uniform(generator, *PERIOD_RANGE)
    angle = _uniform(generator, 0.0, math.pi)
    if striped:
        shade = tuple(STRIPE_SHADE * channel for channel in colour)
        fill = Texture("stripes", (colour, shade), period=period, angle=angle, square=True)
    else:
        fill = Texture("flat", (colour, colour))
    return shape, fill


def _check_names(name: str, chosen: object, allowed: tuple[str, ...]) -> tuple[str, ...]:
    """Check a non-empty tuple of names taken from ``allowed``."""
    if isinstance(chosen, str) or not isinstance(chosen, (tuple, list)) or not chosen:
        raise ValueError(
            f"{name} must be a non-empty tuple of names from {allowed}, got {chosen!r}."
        )
    unknown = [item for item in chosen if item not in allowed]
    if unknown:
        raise ValueError(f"unknown {name} {unknown}; choose from {allowed}.")
    return tuple(chosen)


def _check_image_size(size: object) -> tuple[int, int]:
    """``size`` as ``(height, width)``: an int (square) or a pair of ints, each >= 8."""
    if isinstance(size, (tuple, list)) and len(size) == 2:
        height, width = size
    elif isinstance(size, int) and not isinstance(size, bool):
        height = width = size
    else:
        raise ValueError(f"size must be an int or a (height, width) pair of ints, got {size!r}.")
    check_size(height, width)
    return height, width


class ProceduralScenes(Dataset):
    """Shapes over textured backgrounds, with exact object labels, at any size.

    ``scenes[i]`` is ``(image (3, H, W) float32 in [0, 1], labels (H, W) int64)``: label 0 is
    the background and ``k`` the visible part of the ``k``-th object (later objects cover
    earlier ones). Each scene has 1 to ``max_objects`` objects on one background from
    ``backgrounds``; "stripes", "checkerboard", "grating" and "dots" are periodic.

    Item ``i`` depends only on ``(seed, i)`` and the options. Sizes, periods and positions are
    drawn in units of the short side, so ``size=128`` shows the same scenes as ``size=64``
    at twice the resolution. ``length`` only says how many items iteration yields (at most
    :data:`SEED_STRIDE`, beyond which the items of the next seed would come back).
    """

    def __init__(
        self,
        size: int | tuple[int, int] = 64,
        length: int = 10_000,
        seed: int = 0,
        max_objects: int = 4,
        backgrounds: tuple[str, ...] = BACKGROUNDS,
        shapes: tuple[str, ...] = SHAPES,
    ) -> None:
        self.height, self.width = _check_image_size(size)
        self.length = _check_length(length)
        self.seed = check_int(seed, "seed", 0)
        self.max_objects = check_int(max_objects, "max_objects", 1)
        self.backgrounds = _check_names("backgrounds", backgrounds, BACKGROUNDS)
        self.shapes = _check_names("shapes", shapes, SHAPES)

    def __len__(self) -> int:
        return self.length

    def scene(self, index: int) -> Scene:
        """The description of item ``index`` (what is drawn where), independent of size."""
        generator = item_generator(self.seed, _check_index(index, self.length))
        # The first draw is the background kind: background_of() repeats only this draw.
        background_kind = self.backgrounds[_draw_index(generator, len(self.backgrounds))]
        count = 1 + _draw_index(generator, self.max_objects)
        background = _random_texture(background_kind, generator, avoid=[])
        used = list(background.colours)
        objects = []
        for _ in range(count):
            kind = self.shapes[_draw_index(generator, len(self.shapes))]
            shape, fill = _random_object(kind, generator, avoid=used)
            used.append(fill.colours[0])
            objects.append((shape, fill))
        return Scene(background=background, objects=tuple(objects))

    def background_of(self, index: int) -> str:
        """The background kind of item ``index``, without rendering it (one random draw)."""
        generator = item_generator(self.seed, _check_index(index, self.length))
        return self.backgrounds[_draw_index(generator, len(self.backgrounds))]

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        return render_scene(self.scene(index), self.height, self.width)

    def batch(self, start: int, count: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Items ``start .. start + count - 1`` stacked: ``((B, 3, H, W), (B, H, W))``."""
        items = [self[index] for index in _check_range(start, count, self.length)]
        images = torch.stack([image for image, _ in items])  # (B, 3, H, W)
        labels = torch.stack([label for _, label in items])  # (B, H, W)
        return images, labels


# ---------------------------------------------------------------------------------------------
# Photo patches from the photographs inside the scikit-image and scikit-learn wheels
# ---------------------------------------------------------------------------------------------

# Name -> file inside an installed package ("package/path"); nothing is downloaded. Natural
# photographs and photographed textures only: synthetic images (logo, text, page, chessboard,
# phantom, colour wheel), scientific images with large empty areas (moon, hubble deep field,
# retina, cell, microscopy), the deliberately blurred clock and motorcycle_right (a near copy
# of motorcycle_left) are left out. Grey photos are repeated to three channels.
PHOTOS: dict[str, str] = {
    "astronaut": "skimage/data/astronaut.png",
    "brick": "skimage/data/brick.png",
    "camera": "skimage/data/camera.png",
    "chelsea": "skimage/data/chelsea.png",
    "coffee": "skimage/data/coffee.png",
    "coins": "skimage/data/coins.png",
    "grass": "skimage/data/grass.png",
    "gravel": "skimage/data/gravel.png",
    "motorcycle": "skimage/data/motorcycle_left.png",
    "rocket": "skimage/data/rocket.jpg",
    "china": "sklearn/datasets/images/china.jpg",
    "flower": "sklearn/datasets/images/flower.jpg",
}
# Held out from training: two colour photos and one texture.
TEST_PHOTOS: tuple[str, ...] = ("coffee", "china", "gravel")
# Neither trained on nor tested on: the photos whose scores make a training run's learning
# curve (a portrait from matplotlib's sample data, public domain), so that choosing steps or
# rates by the curve never looks at the test photos.
VALIDATION_PHOTOS: dict[str, str] = {
    "grace_hopper": "matplotlib/mpl-data/sample_data/grace_hopper.jpg",
}
SPLITS: tuple[str, ...] = ("train", "test", "validation", "all")


def photo_names(split: str) -> tuple[str, ...]:
    """Names of the photos of ``split``: "train", "test", "validation", or "all" (train and
    test, the :data:`PHOTOS`), in :data:`PHOTOS` order."""
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; expected one of {SPLITS}.")
    if split == "all":
        return tuple(PHOTOS)
    if split == "validation":
        return tuple(VALIDATION_PHOTOS)
    wanted = split == "test"
    return tuple(name for name in PHOTOS if (name in TEST_PHOTOS) == wanted)


def photo_path(name: str) -> Path:
    """Where photo ``name`` lies in the installed package (found without importing it)."""
    files = {**PHOTOS, **VALIDATION_PHOTOS}
    if name not in files:
        raise ValueError(f"unknown photo {name!r}; expected one of {tuple(files)}.")
    package, _, relative = files[name].partition("/")
    spec = importlib.util.find_spec(package)
    if spec is None or spec.origin is None:
        raise FileNotFoundError(
            f"photo {name!r} comes with the package {package!r}, which is not installed; "
            f"install the course with `pip install -e .` (it depends on {package})."
        )
    path = Path(spec.origin).parent / relative
    if not path.is_file():
        raise FileNotFoundError(
            f"photo {name!r} should be at {path} but is missing from the installed {package}; "
            "reinstall it with the versions in constraints.txt."
        )
    return path


@functools.cache
def load_photo(name: str, short_side: int | None = None) -> torch.Tensor:
    """Photo ``name`` as ``(3, H, W)`` float32, its short side resized to ``short_side``.

    Only ever shrinks: a ``short_side`` at or above the photo's own keeps the original. The
    result is cached per process (do not modify it in place; :class:`PhotoPatches` copies
    its crops).
    """
    with Image.open(photo_path(name)) as picture:
        image = pil_to_image(picture)  # (3, H, W); grey photos become three equal channels
    height, width = image.shape[-2:]
    if short_side is None or short_side >= min(height, width):
        return image
    scale = short_side / min(height, width)
    size = (max(short_side, round(height * scale)), max(short_side, round(width * scale)))
    # antialias=True averages all the pixels that fall into an output pixel; without it,
    # fine detail (gravel, brick joints) would alias into moire patterns.
    small = F.interpolate(image[None], size=size, mode="bilinear", antialias=True)
    return small[0].clamp(0.0, 1.0)  # (3, h, w)


class PhotoPatches(Dataset):
    """Random square crops of real photographs, available offline.

    ``patches[i]`` is an image ``(3, P, P)`` float32 in ``[0, 1]`` with ``P = patch_size``.
    Item ``i`` picks a photo of the split uniformly (every photo contributes equally, whatever
    its size) and a crop position uniformly, both from ``(seed, i)``; with ``flip=True`` half
    of the patches are mirrored left-right.

    Each photo is first shrunk (once per process) so that its short side is ``short_side``,
    by default ``2 * patch_size``: a 64x64 patch then shows about a quarter of the photo, a
    piece of a scene with edges and objects. Cropping the full-size photo instead would give
    mostly flat, zoomed-in areas (a patch of sky, a patch of fur) that are trivial to inpaint.
    Photos are never enlarged: a ``short_side`` above a photo's own size keeps the original.

    ``split="test"`` uses only :data:`TEST_PHOTOS`, ``"train"`` all the others, ``"all"``
    every photo in :data:`PHOTOS`.
    """

    def __init__(
        self,
        patch_size: int = 64,
        split: str = "train",
        length: int = 10_000,
        seed: int = 0,
        short_side: int | None = None,
        flip: bool = False,
    ) -> None:
        self.patch_size = check_int(patch_size, "patch_size", 8)
        self.length = _check_length(length)
        self.seed = check_int(seed, "seed", 0)
        self.short_side = 2 * patch_size if short_side is None else short_side
        check_int(self.short_side, "short_side", 1)
        self.flip = bool(flip)
        self._names = photo_names(split)
        self.split = split
        self._images = [load_photo(name, self.short_side) for name in self._names]
        too_small = [
            f"{name} ({image.shape[-1]}x{image.shape[-2]})"
            for name, image in zip(self._names, self._images, strict=True)
            if min(image.shape[-2:]) < patch_size
        ]
        if too_small:
            raise ValueError(
                f"patch_size={patch_size} is larger than these photos after resizing to "
                f"short_side={self.short_side}: {', '.join(too_small)} (width x height). Use a "
                "smaller patch_size or a larger short_side (photos are never enlarged)."
            )

    @property
    def photos(self) -> tuple[str, ...]:
        """Names of the photos this split crops from."""
        return self._names

    def __len__(self) -> int:
        return self.length

    def _choose(self, index: int) -> tuple[int, int, int, bool]:
        """Photo number, crop top, crop left and mirror flag of item ``index``."""
        generator = item_generator(self.seed, _check_index(index, self.length))
        photo = _draw_index(generator, len(self._images))
        height, width = self._images[photo].shape[-2:]
        top = _draw_index(generator, height - self.patch_size + 1)
        left = _draw_index(generator, width - self.patch_size + 1)
        # Drawn last, so flip=True mirrors the same crops that flip=False returns.
        mirror = self.flip and _uniform(generator, 0.0, 1.0) < 0.5
        return photo, top, left, mirror

    def source_of(self, index: int) -> str:
        """Name of the photo item ``index`` is cropped from."""
        return self._names[self._choose(index)[0]]

    def __getitem__(self, index: int) -> torch.Tensor:
        photo, top, left, mirror = self._choose(index)
        size = self.patch_size
        patch = self._images[photo][:, top : top + size, left : left + size]  # (3, P, P)
        # Copy, so that changing a patch in place cannot change the cached photo.
        return patch.flip(-1) if mirror else patch.clone()

    def batch(self, start: int, count: int) -> torch.Tensor:
        """Items ``start .. start + count - 1`` stacked: ``(B, 3, P, P)``."""
        return torch.stack([self[index] for index in _check_range(start, count, self.length)])


# ---------------------------------------------------------------------------------------------
# Real data sets through torchvision
# ---------------------------------------------------------------------------------------------

IMAGE_EXTENSIONS: tuple[str, ...] = (".png", ".jpg", ".jpeg", ".bmp", ".webp")


@dataclass(frozen=True)
class _RealDataset:
    """What :func:`real_images` needs to know about one data set."""

    splits: dict[str, object]  # our split name -> the argument torchvision expects
    layout: str  # the files expected under root
    source: str  # how to get them


REAL_DATASETS: dict[str, _RealDataset] = {
    "cifar10": _RealDataset(
        splits={"train": True, "test": False},
        layout="{root}/cifar-10-batches-py/ with data_batch_1 .. data_batch_5, test_batch, "
        "batches.meta",
        source="download cifar-10-python.tar.gz (163 MB, 'CIFAR-10 python version') from "
        "https://www.cs.toronto.edu/~kriz/cifar.html and extract it into {root}, or pass "
        "download=True on a machine that is online",
    ),
    "places365": _RealDataset(
        splits={"train": "train-standard", "val": "val", "test": "test"},
        layout="{root}/categories_places365.txt, {root}/places365_train_standard.txt, "
        "places365_val.txt, places365_test.txt (from filelist_places365-standard.tar) and the "
        "small 256x256 images in {root}/data_256_standard/ (train), {root}/val_256/ or "
        "{root}/test_256/",
        source="download filelist_places365-standard.tar and the small 256x256 images "
        "(train_256_places365standard.tar, val_256.tar, test_256.tar) from "
        "http://places2.csail.mit.edu/download.html and extract them into {root} (rename the "
        "extracted train folder data_256 to data_256_standard), or pass download=True online",
    ),
    "dtd": _RealDataset(
        splits={"train": "train", "val": "val", "test": "test"},
        layout="{root}/dtd/dtd/images/<class>/*.jpg and {root}/dtd/dtd/labels/train1.txt, "
        "val1.txt, test1.txt",
        source="download dtd-r1.0.1.tar.gz (600 MB) from "
        "https://www.robots.ox.ac.uk/~vgg/data/dtd/ and extract it into {root}/dtd/, or pass "
        "download=True on a machine that is online",
    ),
    "celeba": _RealDataset(
        splits={"train": "train", "val": "valid", "test": "test", "all": "all"},
        layout="{root}/celeba/img_align_celeba/*.jpg and {root}/celeba/list_eval_partition.txt, "
        "identity_CelebA.txt, list_attr_celeba.txt, list_bbox_celeba.txt, "
        "list_landmarks_align_celeba.txt",
        source="download img_align_celeba.zip and the five .txt files from the 'Align&Cropped "
        "Images' and 'Anno'/'Eval' folders linked at "
        "https://mmlab.ie.cuhk.edu.hk/projects/CelebA.html, unzip the images into "
        "{root}/celeba/ and put the .txt files next to them. download=True needs the gdown "
        "package and often fails with Google Drive's daily download quota; then place the "
        "files by hand",
    ),
    "folder": _RealDataset(
        splits={},  # any split name: a subfolder of root; "all" reads root itself
        layout="image files ({extensions}) in {root}/<split>/ or its subfolders, or anywhere "
        "under {root} with split='all'",
        source="copy your images there, at any depth (split='all' reads every image under {root})",
    ),
}


def _missing(name: str, root: Path, reason: str) -> FileNotFoundError:
    """The error for a data set whose files are not where torchvision looks for them."""
    info = REAL_DATASETS[name]
    fields = {"root": root, "extensions": ", ".join(IMAGE_EXTENSIONS)}
    return FileNotFoundError(
        f"{name} was not found under {root} ({reason}). Expected: "
        f"{info.layout.format(**fields)}. To get it: {info.source.format(**fields)}."
    )


class ImageFiles(Dataset):
    """Every image file under a folder, found recursively and sorted by path.

    Unlike torchvision's ``ImageFolder`` it needs no class subfolders: images may lie directly
    in the folder or at any depth below it. Items are PIL images in RGB.
    """

    def __init__(self, folder: str | os.PathLike) -> None:
        self.folder = Path(folder)
        self.files = sorted(
            path
            for path in self.folder.rglob("*")
            if path.is_file() and path.suffix.lower() in IMAGE_EXTENSIONS
        )

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, index: int) -> Image.Image:
        with Image.open(self.files[index]) as picture:
            return picture.convert("RGB")  # grey, palette and RGBA files become RGB


class _ImagesOnly(Dataset):
    """A torchvision data set whose items are ``(picture, label)``, reduced to the picture
    and turned into the course's ``(3, size, size)`` float32 image."""

    def __init__(self, dataset: Dataset, size: int) -> None:
        # torchvision is imported here, not at the top, so that `import course_lib.data` stays
        # quick for the lessons that only use procedural scenes and photo patches.
        from torchvision import transforms

        self.dataset = dataset
        # Shrink the short side to `size` (antialiased), then keep the central square.
        self.resize = transforms.Compose(
            [transforms.Resize(size, antialias=True), transforms.CenterCrop(size)]
        )

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> torch.Tensor:
        item = self.dataset[index]
        picture = item[0] if isinstance(item, tuple) else item
        return pil_to_image(self.resize(picture))  # (3, size, size)


def _open_folder(root: Path, split: str) -> Dataset:
    """The image folder for ``split``: ``root`` itself for "all", else ``root / split``."""
    folder = root if split == "all" else root / split
    if not folder.is_dir():
        raise _missing("folder", root, f"there is no folder {folder}")
    files = ImageFiles(folder)
    if len(files) == 0:
        raise _missing("folder", root, f"{folder} holds no image files")
    return files


def _open_torchvision(name: str, root: Path, split: object, download: bool) -> Dataset:
    """Construct torchvision's data set ``name`` (labels are dropped later)."""
    from torchvision import datasets

    if name == "cifar10":
        return datasets.CIFAR10(str(root), train=split, download=download)
    if name == "places365":
        places = datasets.Places365(str(root), split=split, small=True, download=download)
        # torchvision only checks the file lists; check the images too, or the first item
        # would fail with a bare "No such file".
        if not os.path.isdir(places.images_dir):
            raise FileNotFoundError(f"no image folder {places.images_dir}")
        return places
    if name == "dtd":
        return datasets.DTD(str(root), split=split, download=download)
    # CelebA: target_type=[] skips the labels; the items are then (picture, None).
    return datasets.CelebA(str(root), split=split, target_type=[], download=download)


def real_images(
    name: str,
    root: str | os.PathLike,
    split: str = "train",
    size: int = 64,
    download: bool = False,
) -> Dataset:
    """A real data set whose items are images ``(3, size, size)`` float32 in ``[0, 1]``.

    ``name`` is "cifar10", "places365" (the small 256x256 version), "dtd", "celeba" or
    "folder" (every image under ``root / split``, or under ``root`` with ``split="all"``, in
    subfolders or not). Each image's short side is resized to ``size`` and the central square
    kept; class labels are dropped. ``split`` is "train" or "test" for CIFAR-10,
    "train"/"val"/"test" for Places365 and DTD, and "train"/"val"/"test"/"all" for CelebA.

    Missing files (with ``download=False``, or when a download fails offline) raise
    ``FileNotFoundError`` saying what is expected under ``root`` and where to get it.
    """
    if name not in REAL_DATASETS:
        raise ValueError(f"unknown data set {name!r}; expected one of {tuple(REAL_DATASETS)}.")
    check_int(size, "size", 8)
    root = Path(root).expanduser()
    if name == "folder":
        return _ImagesOnly(_open_folder(root, split), size)
    splits = REAL_DATASETS[name].splits
    if split not in splits:
        raise ValueError(f"unknown split {split!r} for {name}; expected one of {tuple(splits)}.")
    try:
        dataset = _open_torchvision(name, root, splits[split], download)
    except (RuntimeError, OSError) as error:
        # torchvision says "Dataset not found or corrupted" (RuntimeError); an offline
        # download fails with an OSError (URLError). Both mean: the files are not there.
        raise _missing(name, root, str(error)) from error
    return _ImagesOnly(dataset, size)
