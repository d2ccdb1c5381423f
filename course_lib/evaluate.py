"""The evaluation harness: score any inpainting method by coverage band and mask kind (lesson 02).

Every method in the course, classical or learned, is scored here on the same footing:

* the same images (e.g. the held-out ``PhotoPatches`` test photos),
* the same masks: the fixed evaluation sets of lesson 01 (``datasets/masks``), one set per
  mask kind, with the same number of masks in each of the partial-convolution paper's six
  coverage bands,
* the same metrics (L1, PSNR, SSIM from :mod:`course_lib.metrics`) computed on the
  **composite** ``hole * prediction + (1 - hole) * image``, whatever the method returns,
* the same rules: the method is given the image with its holes set to 0, never the pixels
  it has to guess.

Results come back as an :class:`EvaluationTable`: one row per (mask kind, band, border or not)
with the mean of each metric. Results are cached on disk under a key made from the method's
name and code, the images and the masks, so re-running a notebook is fast; change any of them
and the key changes.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import math
import os
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch
from tqdm.auto import tqdm

from course_lib import masks, metrics
from course_lib.validate import check_image

FillFunction = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
METRICS: dict[str, Callable[[torch.Tensor, torch.Tensor], torch.Tensor]] = {
    "l1": metrics.l1,
    "psnr": metrics.psnr,
    "ssim": metrics.ssim,
}
HIGHER_IS_BETTER = {"l1": False, "psnr": True, "ssim": True}
BORDERS = ("all", "border", "no border")
CACHE_VARIABLE = "COURSE_CACHE_DIR"
DEFAULT_CACHE = Path(__file__).resolve().parent.parent / ".cache" / "evaluate"
CACHE_VERSION = 1  # bump when the way results are computed changes


@dataclass
class EvaluationTable:
    """Mean metrics per (kind, band, border) cell, plus what could not be scored.

    ``rows`` holds one dict per cell: ``kind``, ``band`` (index into
    ``masks.COVERAGE_BANDS``), ``border`` (``"all"``, ``"border"`` or ``"no border"``),
    ``count`` (number of image/mask pairs) and one mean per metric. A cell without pairs
    (e.g. boxes never touch the border) has ``count == 0`` and ``None`` metrics.
    ``skipped`` lists the pairs that were left out and why (e.g. an all-hole mask).
    """

    method: str
    rows: list[dict] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)

    @property
    def kinds(self) -> list[str]:
        return list(dict.fromkeys(row["kind"] for row in self.rows))

    def value(self, kind: str, band: int, metric: str, border: str = "all") -> float | None:
        """The mean ``metric`` of one cell (``None`` when the cell has no pairs)."""
        for row in self.rows:
            if row["kind"] == kind and row["band"] == band and row["border"] == border:
                return row[metric]
        raise KeyError(f"no cell for kind {kind!r}, band {band}, border {border!r}")

    def format(self, metric: str = "psnr", border: str = "all", digits: int = 2) -> str:
        """A text table: one row per band, one column per mask kind."""
        return format_grid(
            {
                kind: [self.value(kind, b, metric, border) for b in band_indices()]
                for kind in self.kinds
            },
            title=f"{self.method}: mean {metric.upper()} ({border})",
            digits=digits,
        )

    def to_json(self) -> str:
        return json.dumps({"method": self.method, "rows": self.rows, "skipped": self.skipped})

    @classmethod
    def from_json(cls, text: str) -> EvaluationTable:
        data = json.loads(text)
        return cls(method=data["method"], rows=data["rows"], skipped=data["skipped"])


def band_indices() -> range:
    return range(len(masks.COVERAGE_BANDS))


def format_grid(columns: dict[str, Sequence[float | None]], title: str, digits: int = 2) -> str:
    """Rows = coverage bands, one column per key of ``columns``; empty cells print as ``-``."""
    names = list(columns)
    width = max(8, *(len(name) for name in names))
    lines = [title, f"{'band':8}" + "".join(f" {name:>{width}}" for name in names)]
    for band in band_indices():
        cells = []
        for name in names:
            value = columns[name][band]
            cells.append(f" {'-':>{width}}" if value is None else f" {value:>{width}.{digits}f}")
        lines.append(f"{masks.band_label(band):8}" + "".join(cells))
    return "\n".join(lines)


def compare(
    tables: Iterable[EvaluationTable],
    metric: str = "psnr",
    kind: str | None = None,
    border: str = "all",
    digits: int = 2,
) -> str:
    """A text table comparing methods: one row per band, one column per method.

    ``kind=None`` averages the kinds (each kind weighs the same).
    """
    tables = list(tables)
    columns = {}
    for table in tables:
        kinds = table.kinds if kind is None else [kind]
        column = []
        for band in band_indices():
            values = [table.value(k, band, metric, border) for k in kinds]
            values = [v for v in values if v is not None]
            column.append(sum(values) / len(values) if values else None)
        columns[table.method] = column
    label = "all kinds" if kind is None else kind
    return format_grid(columns, f"mean {metric.upper()} on {label} masks ({border})", digits)


# Held-out images every lesson is scored on. Training uses PhotoPatches(split="train") and
# ProceduralScenes(seed=0); these never overlap with them.
TEST_SCENE_SEED = 10_000
HELD_OUT_SOURCES = ("photos", "scenes")


def held_out_images(source: str, size: int, count: int) -> torch.Tensor:
    """The first ``count`` held-out evaluation images ``(count, 3, size, size)``.

    ``"photos"``: patches of the test photographs (never seen in training);
    ``"scenes"``: procedural scenes drawn with a seed no training run uses.
    """
    from course_lib.data import PhotoPatches, ProceduralScenes

    if source == "photos":
        return PhotoPatches(patch_size=size, split="test", seed=0).batch(0, count)
    if source == "scenes":
        return ProceduralScenes(size=size, seed=TEST_SCENE_SEED).batch(0, count)[0]
    raise ValueError(f"unknown held-out source {source!r}; choose one of {HELD_OUT_SOURCES}.")


def images_from(dataset: torch.Tensor | Sequence, count: int | None = None) -> torch.Tensor:
    """The first ``count`` images of a tensor ``(N, 3, H, W)`` or a dataset as one tensor.

    Dataset items may be an image or a tuple whose first element is the image.
    """
    if isinstance(dataset, torch.Tensor):
        images = dataset if count is None else dataset[:count]
    else:
        total = len(dataset) if count is None else min(count, len(dataset))
        items = [dataset[index] for index in range(total)]
        images = torch.stack([item[0] if isinstance(item, tuple) else item for item in items])
    check_image(images, name="evaluation images")
    if len(images) == 0:
        raise ValueError("no evaluation images: the dataset is empty.")
    return images.float()  # (N, 3, H, W)


def mask_sets_for(
    mask_set: str | Sequence[str] | dict[str, torch.Tensor], size: int
) -> dict[str, torch.Tensor]:
    """Resolve ``mask_set`` to ``{kind: masks (M, 1, H, W)}``.

    A kind name or list of names loads the fixed evaluation sets at ``size``; a dict of
    tensors is used as given (your own masks).
    """
    if isinstance(mask_set, dict):
        for name, given in mask_set.items():
            masks.coverage(given)  # validates shape, dtype and binariness
            if given.shape[-2:] != (size, size):
                raise ValueError(
                    f"masks {name!r} are {tuple(given.shape[-2:])}, but the images are "
                    f"{size}x{size}; draw masks at the image size."
                )
        return dict(mask_set)
    kinds = [mask_set] if isinstance(mask_set, str) else list(mask_set)
    unknown = [kind for kind in kinds if kind not in masks.EVAL_KINDS]
    if unknown:
        raise ValueError(
            f"no fixed evaluation set for {unknown}; available kinds: {list(masks.EVAL_KINDS)}. "
            "Pass a dict {name: masks} to evaluate on your own masks."
        )
    return {kind: masks.load_eval_set(kind, size) for kind in kinds}


def method_fingerprint(fill: FillFunction) -> str:
    """What identifies a method's behaviour: its code, and its weights for an ``nn.Module``."""
    digest = hashlib.sha256()
    target = getattr(fill, "__self__", fill)  # bound methods: the object holds the state
    try:
        digest.update(inspect.getsource(fill if inspect.isroutine(fill) else type(fill)).encode())
    except (OSError, TypeError):  # built in or defined in a way inspect cannot read
        digest.update(getattr(fill, "__qualname__", repr(type(fill))).encode())
    state = getattr(target, "state_dict", None)
    if callable(state):
        for name, tensor in state().items():
            digest.update(name.encode())
            digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


def cache_key(
    method: str, fill: FillFunction, images: torch.Tensor, sets: dict, per_band: int
) -> str:
    """A key that changes whenever the method, its code or weights, the images or masks change."""
    digest = hashlib.sha256(f"v{CACHE_VERSION}|{method}|{per_band}|".encode())
    digest.update(method_fingerprint(fill).encode())
    digest.update(images.detach().cpu().contiguous().numpy().tobytes())
    for kind, given in sets.items():
        digest.update(kind.encode())
        digest.update(given.detach().cpu().to(torch.uint8).contiguous().numpy().tobytes())
    return digest.hexdigest()[:32]


def cache_directory(cache_dir: str | os.PathLike | None) -> Path:
    if cache_dir is not None:
        return Path(cache_dir)
    return Path(os.environ.get(CACHE_VARIABLE, DEFAULT_CACHE))


def _fill_checked(
    fill: FillFunction, images: torch.Tensor, holes: torch.Tensor, skipped: list[str], where: str
) -> tuple[torch.Tensor, torch.Tensor]:
    """Run ``fill`` on a batch; on a ``ValueError`` retry one sample at a time and record
    the samples it refuses. Returns the composites and a keep-mask over the batch."""
    try:
        return _composite(fill, images, holes), torch.ones(len(images), dtype=torch.bool)
    except ValueError:
        pass
    outputs, keep = [], []
    for index in range(len(images)):
        try:
            outputs.append(_composite(fill, images[index : index + 1], holes[index : index + 1]))
            keep.append(True)
        except ValueError as error:
            outputs.append(images[index : index + 1])
            keep.append(False)
            skipped.append(f"{where}, pair {index}: {error}")
    return torch.cat(outputs), torch.tensor(keep)


def _composite(fill: FillFunction, images: torch.Tensor, holes: torch.Tensor) -> torch.Tensor:
    """The method's answer, composited: known pixels always come from the image."""
    with torch.no_grad():
        # The method never sees the true pixels under the hole, so it cannot copy them.
        prediction = fill(images * (1 - holes), holes)
    if prediction.shape != images.shape:
        raise RuntimeError(
            f"the fill function returned shape {tuple(prediction.shape)} for images of shape "
            f"{tuple(images.shape)}; it must return one (B, 3, H, W) image per input."
        )
    return masks.composite(images, holes, prediction.float().clamp(0, 1))


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
) -> EvaluationTable:
    """Score ``fill(image, hole) -> image`` on every (mask kind, coverage band) cell.

    * ``dataset``: images ``(N, 3, H, W)`` or a dataset of them; H = W must match a size of
      the fixed mask sets (64 or 256) unless ``mask_set`` is a dict of your own masks.
    * ``mask_set``: a kind, a list of kinds (default: every fixed evaluation set) or
      ``{name: masks}``.
    * ``per_band``: masks used per band and kind (default: the profile's ``eval_images``);
      mask ``j`` of a band is paired with image ``j mod N``.
    * ``method``: the name shown in tables (default: the function's name).

    Pairs the method refuses (e.g. an all-hole mask) are reported in ``table.skipped``
    instead of stopping the evaluation.
    """
    from course_lib.config import profile

    method = method or getattr(fill, "__name__", type(fill).__name__)
    per_band = profile().eval_images if per_band is None else per_band
    if not isinstance(per_band, int) or per_band < 1:
        raise ValueError(f"per_band must be a positive int, got {per_band!r}.")
    images = images_from(dataset)
    height, width = images.shape[-2:]
    if height != width:
        raise ValueError(f"evaluation images must be square, got {height}x{width}.")
    sets = mask_sets_for(mask_set, height)
    key = cache_key(method, fill, images, sets, per_band)
    cache_file = cache_directory(cache_dir) / f"{key}.json"
    if cache and cache_file.is_file():
        return EvaluationTable.from_json(cache_file.read_text())

    table = EvaluationTable(method=method)
    for kind, given in sets.items():
        table.skipped += _outside_bands(kind, given)
    target_device = torch.device(device) if device is not None else images.device
    cells = [(kind, band) for kind in sets for band in band_indices()]
    for kind, band in tqdm(cells, desc=f"evaluating {method}", leave=False):
        chosen = [i for i, b in enumerate(masks.band_of(sets[kind])) if b == band][:per_band]
        scores = {name: [] for name in METRICS}
        borders = []
        for start in range(0, len(chosen), batch_size):
            indices = chosen[start : start + batch_size]
            holes = sets[kind][indices].to(target_device)  # (b, 1, H, W)
            batch = images[[i % len(images) for i in range(start, start + len(indices))]]
            batch = batch.to(target_device)  # (b, 3, H, W)
            where = f"{kind} {masks.band_label(band)}"
            composites, keep = _fill_checked(fill, batch, holes, table.skipped, where)
            keep = keep.to(target_device)
            if not keep.any():
                continue
            for name, function in METRICS.items():
                scores[name].append(function(composites[keep], batch[keep]).cpu())
            borders.append(masks.touches_border(holes[keep]).cpu())
        table.rows += _band_rows(kind, band, scores, borders)
    if cache:
        cache_file.parent.mkdir(parents=True, exist_ok=True)
        temporary = cache_file.with_suffix(".tmp")
        temporary.write_text(table.to_json())
        os.replace(temporary, cache_file)  # atomic: a crash never leaves half a file
    return table


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


def _band_rows(kind: str, band: int, scores: dict, borders: list) -> list[dict]:
    """Mean metrics of one (kind, band) for all pairs, border pairs and no-border pairs."""
    touches = torch.cat(borders) if borders else torch.zeros(0, dtype=torch.bool)
    values = {name: torch.cat(parts) if parts else torch.zeros(0) for name, parts in scores.items()}
    rows = []
    for border, selected in (
        ("all", torch.ones_like(touches)),
        ("border", touches),
        ("no border", ~touches),
    ):
        count = int(selected.sum())
        row = {"kind": kind, "band": band, "border": border, "count": count}
        for name, column in values.items():
            row[name] = _mean(column[selected]) if count else None
        rows.append(row)
    return rows


def _mean(values: torch.Tensor) -> float:
    """Mean that keeps PSNR's +inf (a perfect fill) from hiding the other samples."""
    finite = values[torch.isfinite(values)]
    if len(finite) == 0:
        return math.inf
    return round(finite.double().mean().item(), 6)


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
