"""The evaluation harness: score any inpainting method by coverage band and mask kind (lesson 02).

Every method in the course, classical or learned, is scored here on the same footing:

* the same images (e.g. the held-out ``PhotoPatches`` test photos),
* the same masks: the fixed evaluation sets of lesson 01 (``datasets/masks``), one set per
  mask kind, with the same number of masks in each of the partial-convolution paper's six
  coverage bands,
* the same metrics computed on the **composite** ``hole * prediction + (1 - hole) * image``,
  whatever the method returns: L1, PSNR and SSIM of the whole image, and L1 and PSNR of the
  hole alone (whole-image scores are diluted by the coverage: MSE_whole = coverage x MSE_hole),
* the same rules: the method is given the image with its holes set to 0, never the pixels
  it has to guess; networks are scored in eval mode.

**The averaging rule.** A cell's score is the mean over its image/mask pairs of the per-pair
score, with PSNR capped at :data:`PSNR_CEILING` (60 dB) first. An exact fill has PSNR +inf and a
near-exact one 70-190 dB; uncapped, one such pair would carry a whole cell (and its value would
depend on the CPU's rounding), dropped it would hide the method's best answers. 60 dB is an RMS
error of a quarter of an 8-bit grey level: indistinguishable from exact. Each cell says how
many pairs reached the ceiling (``perfect``).

Results come back as an :class:`EvaluationTable` holding every pair's scores, and one row per
(mask kind, band, border or not) with the pair count, the means and a seeded 95% bootstrap
interval of each mean. :func:`paired` compares two methods on the same pairs. Results are
cached on disk under a key made from everything the result depends on
(:mod:`course_lib.fingerprint`); a method that cannot be fingerprinted is scored afresh.
"""

from __future__ import annotations

import functools
import hashlib
import itertools
import json
import math
import os
import warnings
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from course_lib import fingerprint, masks, metrics, texture
from course_lib.statistics import PairedDifference, bootstrap_interval, paired_difference
from course_lib.validate import check_image, check_int

FillFunction = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
PSNR_CEILING = 60.0  # dB; per-pair PSNR is capped here before averaging (see the module text)
MIN_PAIRS = 8  # cells resting on fewer pairs are marked in printed tables
METRICS = ("l1", "psnr", "ssim", "hole_l1", "hole_psnr", "grad_log_ratio", "grad_gap")
# grad_log_ratio (log2 of the fill's gradient energy over the truth's) has no better side: 0
# is the truth's, below is blurrier, above busier. Compare methods on grad_gap, its size.
HIGHER_IS_BETTER = {
    "l1": False,
    "psnr": True,
    "ssim": True,
    "hole_l1": False,
    "hole_psnr": True,
    "grad_gap": False,
}
BORDERS = ("all", "border", "no border")
CACHE_VARIABLE = "COURSE_CACHE_DIR"
DEFAULT_CACHE = Path(__file__).resolve().parent.parent / ".cache" / "evaluate"
CACHE_VERSION = 3  # bump when the way results are computed changes


def pair_scores(composite: torch.Tensor, image: torch.Tensor, hole: torch.Tensor) -> dict:
    """Every metric of each pair ``{name: (B,) float64}``, PSNRs capped at the ceiling.

    Computed in float64 so that the scores carry no rounding noise of the CPU's float32
    kernels: the only machine dependence left is that of the method's own answer.
    """
    composite, image = composite.double(), image.double()
    scores = {
        "l1": metrics.l1(composite, image),
        "psnr": metrics.psnr(composite, image),
        "ssim": metrics.ssim(composite, image),
        "hole_l1": metrics.l1(composite, image, hole=hole, region="hole"),
        "hole_psnr": metrics.psnr(composite, image, hole=hole, region="hole"),
    }
    for name in ("psnr", "hole_psnr"):
        scores[name] = scores[name].clamp(max=PSNR_CEILING)
    scores["grad_log_ratio"] = texture.gradient_energy_ratio(composite, image, hole).log2()
    scores["grad_gap"] = scores["grad_log_ratio"].abs()
    return {name: values.double().cpu() for name, values in scores.items()}


@dataclass
class EvaluationTable:
    """Every pair's scores, and per (kind, band, border) cell their count, means and intervals.

    ``pairs`` holds one dict per scored image/mask pair: ``kind``, ``band`` (index into
    ``masks.COVERAGE_BANDS``), ``mask`` (index in its set), ``image``, ``border`` (whether the
    hole touches the image border) and one score per metric of :data:`METRICS`.
    ``rows`` holds one dict per cell: ``kind``, ``band``, ``border`` (``"all"``, ``"border"``
    or ``"no border"``), ``count``, ``perfect`` (pairs at the PSNR ceiling), and per metric its
    mean and ``{metric}_ci``, the 95% bootstrap interval ``[low, high]`` of that mean. A cell
    without pairs (boxes never touch the border) has ``count == 0`` and ``None`` scores.
    ``skipped`` lists the pairs that were left out and why (e.g. an all-hole mask).
    """

    method: str
    rows: list[dict] = field(default_factory=list)
    pairs: list[dict] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)

    @property
    def kinds(self) -> list[str]:
        return list(dict.fromkeys(row["kind"] for row in self.rows))

    def row(self, kind: str, band: int, border: str = "all") -> dict:
        """The row of one cell."""
        for row in self.rows:
            if row["kind"] == kind and row["band"] == band and row["border"] == border:
                return row
        raise KeyError(f"no cell for kind {kind!r}, band {band}, border {border!r}")

    def value(self, kind: str, band: int, metric: str, border: str = "all") -> float | None:
        """The mean ``metric`` of one cell (``None`` when the cell has no pairs)."""
        return self.row(kind, band, border)[_checked_metric(metric)]

    def interval(
        self, kind: str, band: int, metric: str, border: str = "all"
    ) -> tuple[float, float] | None:
        """The 95% bootstrap interval of one cell's mean (``None`` without pairs)."""
        interval = self.row(kind, band, border)[f"{_checked_metric(metric)}_ci"]
        return None if interval is None else tuple(interval)

    def scores(
        self, kind: str, band: int | Sequence[int], metric: str, border: str = "all"
    ) -> dict:
        """``{(mask, image): score}`` of the pairs of one band, or of several bands pooled
        (for paired comparisons)."""
        metric = _checked_metric(metric)
        bands = {band} if isinstance(band, int) else set(band)
        return {
            (pair["mask"], pair["image"]): pair[metric]
            for pair in self.pairs
            if pair["kind"] == kind and pair["band"] in bands and _in_border(pair, border)
        }

    def features(self, kind: str, band: int | Sequence[int], border: str = "all") -> dict:
        """``{(mask, image): (fill features, truth features)}`` of the pairs of one band, or of
        several bands pooled: the mean course features over each hole (lesson 04)."""
        bands = {band} if isinstance(band, int) else set(band)
        return {
            (pair["mask"], pair["image"]): (pair["features"], pair["truth_features"])
            for pair in self.pairs
            if pair["kind"] == kind and pair["band"] in bands and _in_border(pair, border)
        }

    def format(
        self, metric: str = "psnr", border: str = "all", digits: int = 2, intervals: bool = True
    ) -> str:
        """A text table: one row per band, one column per mask kind (mean [95% interval])."""
        columns = {}
        for kind in self.kinds:
            cells = []
            for band in band_indices():
                row = self.row(kind, band, border)
                cells.append(_cell_text(row, metric, digits, intervals))
            columns[kind] = cells
        return _grid(
            columns,
            f"{self.method}: mean {metric.upper()} ({border}; 95% interval)"
            if intervals
            else f"{self.method}: mean {metric.upper()} ({border})",
            footnote=_few_pairs_note(self.rows, border),
        )

    def to_json(self) -> str:
        return json.dumps(
            {"method": self.method, "rows": self.rows, "pairs": self.pairs, "skipped": self.skipped}
        )

    @classmethod
    def from_json(cls, text: str) -> EvaluationTable:
        data = json.loads(text)
        return cls(data["method"], data["rows"], data["pairs"], data["skipped"])


def _checked_metric(metric: str) -> str:
    if metric not in METRICS:
        raise ValueError(f"unknown metric {metric!r}; choose one of {list(METRICS)}.")
    return metric


def _in_border(pair: dict, border: str) -> bool:
    if border not in BORDERS:
        raise ValueError(f"border must be one of {list(BORDERS)}, got {border!r}.")
    return border == "all" or pair["border"] == (border == "border")


def band_indices() -> range:
    return range(len(masks.COVERAGE_BANDS))


def _cell_text(row: dict, metric: str, digits: int, intervals: bool) -> str:
    """``24.31 [23.80, 24.77]`` for a cell; ``-`` without pairs; ``*`` below MIN_PAIRS."""
    value = row[_checked_metric(metric)]
    if value is None:
        return "-"
    text = f"{value:.{digits}f}"
    if intervals:
        low, high = row[f"{metric}_ci"]
        text += f" [{low:.{digits}f}, {high:.{digits}f}]"
    return text + ("*" if row["count"] < MIN_PAIRS else "")


def _few_pairs_note(rows: Iterable[dict], border: str) -> str:
    few = [row for row in rows if row["border"] == border and 0 < row["count"] < MIN_PAIRS]
    return f"* fewer than {MIN_PAIRS} pairs: too few to rely on" if few else ""


def _grid(columns: dict[str, Sequence[str]], title: str, footnote: str = "") -> str:
    """Rows = coverage bands, one column of ready-made cell texts per key of ``columns``."""
    names = list(columns)
    width = max(8, *(len(name) for name in names), *(len(c) for v in columns.values() for c in v))
    lines = [title, f"{'band':8}" + "".join(f" {name:>{width}}" for name in names)]
    for band in band_indices():
        cells = "".join(f" {columns[name][band]:>{width}}" for name in names)
        lines.append(f"{masks.band_label(band):8}" + cells)
    return "\n".join(lines + ([footnote] if footnote else []))


def compare(
    tables: Iterable[EvaluationTable],
    metric: str = "psnr",
    kind: str | None = None,
    border: str = "all",
    digits: int = 2,
) -> str:
    """A text table of means: one row per band, one column per method.

    ``kind=None`` averages the kinds (each kind weighs the same). Means alone do not say
    whether two methods differ: use :func:`compare_paired` for that.
    """
    tables = list(tables)
    columns = {}
    few = []
    for table in tables:
        kinds = table.kinds if kind is None else [kind]
        cells = []
        for band in band_indices():
            rows = [table.row(k, band, border) for k in kinds]
            rows = [row for row in rows if row["count"]]
            if not rows:
                cells.append("-")
                continue
            value = sum(row[_checked_metric(metric)] for row in rows) / len(rows)
            marked = any(row["count"] < MIN_PAIRS for row in rows)
            few += [True] if marked else []
            cells.append(f"{value:.{digits}f}" + ("*" if marked else ""))
        columns[table.method] = cells
    label = "all kinds" if kind is None else kind
    footnote = f"* fewer than {MIN_PAIRS} pairs: too few to rely on" if few else ""
    return _grid(columns, f"mean {metric.upper()} on {label} masks ({border})", footnote)


def paired(
    a: EvaluationTable,
    b: EvaluationTable,
    metric: str,
    kind: str,
    band: int | Sequence[int],
    border: str = "all",
) -> PairedDifference:
    """``a - b`` on the pairs of one cell (or of several bands pooled, e.g. the wide bands
    ``(3, 4, 5)``) that both methods scored, with its 95% interval."""
    if metric in METRICS and metric not in HIGHER_IS_BETTER:
        raise ValueError(
            f"{metric} has no better side (0 is the truth's, below blurrier, above busier); "
            "compare methods on grad_gap, its distance from the truth."
        )
    first, second = a.scores(kind, band, metric, border), b.scores(kind, band, metric, border)
    shared = sorted(set(first) & set(second))
    return paired_difference(
        [first[key] for key in shared], [second[key] for key in shared], HIGHER_IS_BETTER[metric]
    )


def compare_paired(
    tables: Iterable[EvaluationTable],
    reference: EvaluationTable,
    metric: str = "psnr",
    kind: str = "box",
    border: str = "all",
    digits: int = 2,
) -> str:
    """Each method minus ``reference``, per band: mean difference [95% interval] and verdict.

    ``>`` : the method beats the reference (the interval excludes 0 on the better side),
    ``<`` : it loses, ``=`` : the data cannot tell them apart.
    """
    marks = {"better": ">", "worse": "<", "tie": "=", "none": ""}
    columns = {}
    for table in tables:
        cells = []
        for band in band_indices():
            difference = paired(table, reference, metric, kind, band, border)
            if difference.count == 0:
                cells.append("-")
                continue
            cells.append(f"{difference.interval_text(digits)} {marks[difference.verdict]}")
        columns[table.method] = cells
    title = (
        f"{metric.upper()} minus {reference.method} on {kind} masks ({border}), paired, "
        "95% interval; > better, < worse, = cannot tell"
    )
    return _grid(columns, title)


def verdicts(
    tables: Iterable[EvaluationTable],
    reference: EvaluationTable,
    metric: str = "psnr",
    kind: str = "box",
    border: str = "all",
) -> str:
    """One line per method: its paired verdict against ``reference`` in each band.

    The words do not move with the last digit of a score, which is why lessons check these
    lines rather than the printed means.
    """
    lines = [f"{metric.upper()} against {reference.method} on {kind} masks ({border}), by band:"]
    for table in tables:
        words = [
            paired(table, reference, metric, kind, band, border).verdict for band in band_indices()
        ]
        lines.append(f"{table.method:>14}: " + " ".join(f"{word:>6}" for word in words))
    return "\n".join(lines)


# Held-out images every lesson is scored on. Training uses PhotoPatches(split="train") and
# ProceduralScenes(seed=0); these never overlap with them.
TEST_SCENE_SEED = 10_000
HELD_OUT_SOURCES = ("photos", "scenes", "periodic_scenes", "textures")


def held_out_images(source: str, size: int, count: int) -> torch.Tensor:
    """The first ``count`` held-out evaluation images ``(count, 3, size, size)``.

    ``"photos"``: patches of the test photographs (never seen in training);
    ``"scenes"``: procedural scenes drawn with a seed no training run uses;
    ``"periodic_scenes"``: the first of those scenes whose background is periodic (stripes,
    checkerboard, grating, dots; lesson 05); ``"textures"``: the backgrounds of those same
    scenes alone, without their objects.
    """
    from course_lib.data import PERIODIC_BACKGROUNDS, PhotoPatches, ProceduralScenes, render_texture

    if source == "photos":
        return PhotoPatches(patch_size=size, split="test", seed=0).batch(0, count)
    scenes = ProceduralScenes(size=size, seed=TEST_SCENE_SEED)
    if source == "scenes":
        return scenes.batch(0, count)[0]
    if source not in HELD_OUT_SOURCES:
        raise ValueError(f"unknown held-out source {source!r}; choose one of {HELD_OUT_SOURCES}.")
    periodic = (i for i in range(len(scenes)) if scenes.background_of(i) in PERIODIC_BACKGROUNDS)
    chosen = list(itertools.islice(periodic, count))
    if source == "periodic_scenes":
        return torch.stack([scenes[i][0] for i in chosen])
    return torch.stack([render_texture(scenes.scene(i).background, size, size) for i in chosen])


def images_from(dataset: torch.Tensor | Sequence, count: int | None = None) -> torch.Tensor:
    """The first ``count`` images of a tensor ``(N, 3, H, W)`` or a dataset as one tensor.

    Dataset items may be an image or a tuple whose first element is the image.
    """
    if isinstance(dataset, torch.Tensor):
        images = dataset if count is None else dataset[:count]
    else:
        if not hasattr(dataset, "__len__") or not hasattr(dataset, "__getitem__"):
            raise ValueError(
                f"dataset must be an image tensor (N, 3, H, W) or a dataset with len() and "
                f"indexing, got {type(dataset).__name__}."
            )
        total = len(dataset) if count is None else min(count, len(dataset))
        if total == 0:
            raise ValueError("dataset is empty: pass at least one evaluation image.")
        items = [dataset[index] for index in range(total)]
        images = torch.stack([item[0] if isinstance(item, tuple) else item for item in items])
    check_image(images, name="evaluation images")
    if len(images) == 0:
        raise ValueError("dataset is empty: pass at least one evaluation image.")
    return images.float()  # (N, 3, H, W)


def mask_sets_for(
    mask_set: str | Sequence[str] | dict[str, torch.Tensor], size: int
) -> dict[str, torch.Tensor]:
    """Resolve ``mask_set`` to ``{kind: masks (M, 1, H, W)}``.

    A kind name or list of names loads the fixed evaluation sets at ``size``; a dict of
    tensors is used as given (your own masks).
    """
    if isinstance(mask_set, dict):
        if not mask_set:
            raise ValueError("mask_set is an empty dict: give at least one {name: masks} entry.")
        for name, given in mask_set.items():
            masks.coverage(given)  # validates shape, dtype and binariness
            if given.shape[-2:] != (size, size):
                raise ValueError(
                    f"masks {name!r} are {tuple(given.shape[-2:])}, but the images are "
                    f"{size}x{size}; draw masks at the image size."
                )
        return dict(mask_set)
    kinds = [mask_set] if isinstance(mask_set, str) else list(mask_set)
    unknown = [kind for kind in kinds if not isinstance(kind, str) or kind not in masks.EVAL_KINDS]
    if unknown or not kinds:
        raise ValueError(
            f"mask_set: no fixed evaluation set for {unknown or 'an empty list'}; available "
            f"kinds: {list(masks.EVAL_KINDS)}. Pass a dict {{name: masks}} for your own masks."
        )
    return {kind: masks.load_eval_set(kind, size) for kind in kinds}


def method_fingerprint(fill: FillFunction) -> str | None:
    """What the method's result depends on, hashed; ``None`` if that cannot be read."""
    try:
        return fingerprint.fingerprint(fill)[0]
    except fingerprint.NotFingerprintable:
        return None


def cache_key(method: str, identity: str, images: torch.Tensor, sets: dict, per_band: int) -> str:
    """A key that changes with the method (``identity``: its fingerprint, which follows its
    code, arguments, globals and weights), the images, the masks, the library and the versions
    of the packages that compute the fills and the scores (:func:`scoring_versions`), so that
    two environments sharing one clone never read each other's results."""
    digest = hashlib.sha256(f"v{CACHE_VERSION}|{method}|{per_band}|{identity}|".encode())
    digest.update(fingerprint.library_hash().encode())
    digest.update(scoring_versions().encode())
    digest.update(images.detach().cpu().contiguous().numpy().tobytes())
    for kind, given in sets.items():
        digest.update(kind.encode())
        digest.update(given.detach().cpu().to(torch.uint8).contiguous().numpy().tobytes())
    return digest.hexdigest()[:32]


@functools.cache
def scoring_versions() -> str:
    """The versions of the packages whose arithmetic the cached scores depend on, e.g.
    ``"course_lib 0.1.0 | torch 2.14.1 | ..."``: the networks and metrics run in torch, the
    classical fills in OpenCV and scikit-image, which rest on NumPy and SciPy."""
    import cv2
    import scipy
    import skimage

    import course_lib

    packages = {
        "course_lib": course_lib,
        "torch": torch,
        "opencv": cv2,
        "scikit-image": skimage,
        "numpy": np,
        "scipy": scipy,
    }
    return " | ".join(f"{name} {module.__version__}" for name, module in packages.items())


def cache_directory(cache_dir: str | os.PathLike | None) -> Path:
    if cache_dir is not None:
        return Path(cache_dir)
    return Path(os.environ.get(CACHE_VARIABLE, DEFAULT_CACHE))


class eval_mode:  # noqa: N801 (used like a function: ``with eval_mode(modules):``)
    """Put networks in eval mode for scoring and give every submodule its old mode back.

    In training mode batch norm would normalise with the statistics of the evaluation batch
    (scores that depend on the batch) and update its running statistics (a changed network).
    """

    def __init__(self, modules: Iterable[nn.Module]) -> None:
        self.modules = list(modules)

    def __enter__(self) -> None:
        self.modes = [(part, part.training) for m in self.modules for part in m.modules()]
        for module in self.modules:
            module.eval()

    def __exit__(self, *error: object) -> None:
        for part, training in self.modes:
            part.training = training


def _fill_checked(
    fill: FillFunction,
    images: torch.Tensor,
    holes: torch.Tensor,
    skipped: list[str],
    where: str,
    oracle: Callable[[torch.Tensor], torch.Tensor] | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Run ``fill`` on a batch; on a ``ValueError`` retry one sample at a time and record
    the samples it refuses. Returns the composites and a keep-mask over the batch."""
    try:
        composites = _composite(fill, images, holes, oracle)
        return composites, torch.ones(len(images), dtype=torch.bool)
    except ValueError:
        pass
    outputs, keep = [], []
    for index in range(len(images)):
        one = slice(index, index + 1)
        try:
            outputs.append(_composite(fill, images[one], holes[one], oracle))
            keep.append(True)
        except ValueError as error:
            outputs.append(images[one])
            keep.append(False)
            skipped.append(f"{where}, pair {index}: {error}")
    return torch.cat(outputs), torch.tensor(keep)


def _composite(
    fill: FillFunction,
    images: torch.Tensor,
    holes: torch.Tensor,
    oracle: Callable[[torch.Tensor], torch.Tensor] | None = None,
) -> torch.Tensor:
    """The method's answer, composited: known pixels always come from the image."""
    with torch.no_grad():
        # The method never sees the true pixels under the hole, so it cannot copy them; an
        # oracle arm gets what ``oracle`` makes of the true images, and only that.
        guidance = () if oracle is None else (oracle(images),)
        prediction = fill(images * (1 - holes), holes, *guidance)
    if not isinstance(prediction, torch.Tensor) or prediction.shape != images.shape:
        got = tuple(prediction.shape) if isinstance(prediction, torch.Tensor) else prediction
        raise RuntimeError(
            f"the fill function returned {got!r} for images of shape {tuple(images.shape)}; "
            "it must return one (B, 3, H, W) image per input."
        )
    return masks.composite(images, holes, prediction.float().clamp(0, 1))


def _check_fill(fill: object) -> None:
    if not callable(fill):
        raise ValueError(
            f"fill must be a function fill(image, hole) -> image, got {fill!r}; for a "
            "classical method by name use course_lib.baselines.METHODS[name]."
        )


def evaluate(
    fill: FillFunction,
    dataset: torch.Tensor | Sequence,
    mask_set: str | Sequence[str] | dict[str, torch.Tensor] = masks.EVAL_KINDS,
    per_band: int | None = None,
    method: str | None = None,
    device: torch.device | str | None = None,
    batch_size: int = 64,
    cache: bool = True,
    cache_dir: str | os.PathLike | None = None,
    oracle: Callable[[torch.Tensor], torch.Tensor] | None = None,
) -> EvaluationTable:
    """Score ``fill(image, hole) -> image`` on every (mask kind, coverage band) cell.

    * ``dataset``: images ``(N, 3, H, W)`` or a dataset of them; H = W must match a size of
      the fixed mask sets (64 or 256) unless ``mask_set`` is a dict of your own masks.
    * ``mask_set``: a kind, a list of kinds (default: every fixed evaluation set) or
      ``{name: masks}``.
    * ``per_band``: masks used per band and kind (default: the profile's ``eval_images``);
      mask ``j`` of a band is paired with image ``j mod N``.
    * ``method``: the name shown in tables (default: the function's name).
    * ``oracle``: for an *oracle* arm, which no real method is (lesson 09's true edges):
      ``oracle(true_images)`` is passed to ``fill`` as a third argument, e.g.
      ``oracle=edges.canny_edges``. The fill still gets the images with zeroed holes.

    Networks the method reaches (itself, the object of a bound method, a model in a closure,
    a partial's arguments or a global it reads) are scored in eval mode and put back in
    their own mode afterwards. Pairs the method refuses (e.g. an all-hole mask) are reported
    in ``table.skipped`` instead of stopping the evaluation.
    """
    from course_lib.config import profile

    _check_fill(fill)
    method = method or getattr(fill, "__name__", type(fill).__name__)
    per_band = check_int(
        profile().eval_images if per_band is None else per_band, "per_band", minimum=1
    )
    batch_size = check_int(batch_size, "batch_size", minimum=1)
    images = images_from(dataset)
    height, width = images.shape[-2:]
    if height != width:
        raise ValueError(f"evaluation images must be square, got {height}x{width}.")
    sets = mask_sets_for(mask_set, height)
    # One walk over what the method depends on: its cache identity and the networks it uses.
    try:
        identity, networks = fingerprint.fingerprint(fill)
        if oracle is not None:
            identity = f"{identity}+oracle:{fingerprint.fingerprint(oracle)[0]}"
    except fingerprint.NotFingerprintable as error:
        identity, networks = None, fingerprint.modules_of(fill)
        if cache:
            warnings.warn(
                f"{method}: not cached, because what its result depends on cannot be hashed "
                f"({error}); it is scored afresh every time.",
                stacklevel=2,
            )
    key = cache_key(method, identity, images, sets, per_band) if cache and identity else None
    cache_file = cache_directory(cache_dir) / f"{key}.json"
    if key is not None and cache_file.is_file():
        return EvaluationTable.from_json(cache_file.read_text())

    table = EvaluationTable(method=method)
    for kind, given in sets.items():
        table.skipped += _outside_bands(kind, given)
    target_device = torch.device(device) if device is not None else images.device
    cells = [(kind, band) for kind in sets for band in band_indices()]
    with eval_mode(networks):
        for kind, band in tqdm(cells, desc=f"evaluating {method}", leave=False):
            chosen = [i for i, b in enumerate(masks.band_of(sets[kind])) if b == band][:per_band]
            cell_pairs = []
            for start in range(0, len(chosen), batch_size):
                indices = chosen[start : start + batch_size]
                image_indices = [i % len(images) for i in range(start, start + len(indices))]
                holes = sets[kind][indices].to(target_device)  # (b, 1, H, W)
                batch = images[image_indices].to(target_device)  # (b, 3, H, W)
                where = f"{kind} {masks.band_label(band)}"
                composites, keep = _fill_checked(fill, batch, holes, table.skipped, where, oracle)
                keep = keep.to(target_device)
                if not keep.any():
                    continue
                scores = pair_scores(composites[keep], batch[keep], holes[keep])
                features = _hole_features(composites[keep], holes[keep])  # (b, 64)
                truth = _hole_features(batch[keep], holes[keep])  # (b, 64)
                touches = masks.touches_border(holes[keep]).cpu().tolist()
                kept = [i for i, k in enumerate(keep.cpu().tolist()) if k]
                for column, index in enumerate(kept):
                    pair = {"kind": kind, "band": band, "mask": indices[index]}
                    pair |= {"image": image_indices[index], "border": bool(touches[column])}
                    pair |= {
                        name: round(values[column].item(), 9) for name, values in scores.items()
                    }
                    pair["features"] = [round(v, 6) for v in features[column].tolist()]
                    pair["truth_features"] = [round(v, 6) for v in truth[column].tolist()]
                    cell_pairs.append(pair)
            table.pairs += cell_pairs
            table.rows += _band_rows(kind, band, cell_pairs)
    if key is not None:
        cache_file.parent.mkdir(parents=True, exist_ok=True)
        temporary = cache_file.with_suffix(".tmp")
        temporary.write_text(table.to_json())
        os.replace(temporary, cache_file)  # atomic: a crash never leaves half a file
    return table


@functools.cache
def _feature_network() -> nn.Module:
    from course_lib.feature_nets import course_features

    return course_features()


def _hole_features(images: torch.Tensor, hole: torch.Tensor) -> torch.Tensor:
    """Each pair's mean course feature over its hole (:func:`course_lib.texture.hole_features`)."""
    network = _feature_network().to(images.device)
    return texture.hole_features(images, hole, network).cpu()


def frechet(
    a: EvaluationTable,
    b: EvaluationTable,
    kind: str,
    band: int | Sequence[int],
    border: str = "all",
) -> PairedDifference:
    """Fréchet distance of ``a``'s hole features to the truth's, minus ``b``'s, on the pairs
    of one cell (or several bands pooled) that both scored; lower is better, and the 95%
    interval resamples the pairs (:func:`course_lib.texture.paired_frechet`)."""
    first, second = a.features(kind, band, border), b.features(kind, band, border)
    shared = sorted(set(first) & set(second))
    return texture.paired_frechet(
        [first[key][0] for key in shared],
        [second[key][0] for key in shared],
        [first[key][1] for key in shared],
    )


def frechet_to_truth(
    table: EvaluationTable, kind: str, band: int | Sequence[int], border: str = "all"
) -> float:
    """Fréchet distance of one method's hole features to the truth's over a cell's pairs."""
    chosen = list(table.features(kind, band, border).values())
    if len(chosen) < 3:
        raise ValueError(f"a Fréchet distance needs at least 3 pairs; the cell has {len(chosen)}.")
    return texture.frechet_distance(
        np.array([fill for fill, _ in chosen]), np.array([truth for _, truth in chosen])
    )


def _outside_bands(kind: str, given: torch.Tensor) -> list[str]:
    """Say which masks no band holds (all hole, nearly empty, or above 60%): not scored."""
    notes = []
    for index, (band, value) in enumerate(
        zip(masks.band_of(given), masks.coverage(given).tolist(), strict=True)
    ):
        if band is not None:
            continue
        reason = (
            "all hole: nothing to inpaint from" if value == 1 else "outside the six coverage bands"
        )
        notes.append(f"{kind} mask {index} (coverage {value:.3f}): {reason}; not scored")
    return notes


def _band_rows(kind: str, band: int, pairs: list[dict]) -> list[dict]:
    """Count, perfect fills, means and intervals of one (kind, band): all, border, no border."""
    rows = []
    for border in BORDERS:
        chosen = [pair for pair in pairs if _in_border(pair, border)]
        row = {"kind": kind, "band": band, "border": border, "count": len(chosen)}
        row["perfect"] = sum(pair["psnr"] >= PSNR_CEILING for pair in chosen)
        for name in METRICS:
            values = [pair[name] for pair in chosen]
            row[name] = round(sum(values) / len(values), 9) if values else None
            row[f"{name}_ci"] = list(bootstrap_interval(values)) if values else None
        rows.append(row)
    return rows


def plot(tables: Sequence[EvaluationTable], metric: str = "psnr", kind: str | None = None):
    """Metric against coverage band, one line per method (and per kind if ``kind`` is None
    and there is one method). Returns the matplotlib figure."""
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(7, 3.8))
    labels = [masks.band_label(band) for band in band_indices()]
    for table in tables:
        kinds = table.kinds if kind is None else [kind]
        for name in kinds:
            values = [table.value(name, band, metric) for band in band_indices()]
            line_label = table.method if len(kinds) == 1 else f"{table.method} · {name}"
            axis.plot(
                labels, [math.nan if v is None else v for v in values], marker="o", label=line_label
            )
    better = "higher is better" if HIGHER_IS_BETTER[metric] else "lower is better"
    axis.set_xlabel("hole-to-image ratio (coverage band)")
    axis.set_ylabel(f"{metric.upper()} ({better})")
    axis.set_title(f"{metric.upper()} by coverage band" + (f" on {kind} masks" if kind else ""))
    axis.grid(alpha=0.3)
    axis.legend(fontsize=8)
    figure.tight_layout()
    return figure
