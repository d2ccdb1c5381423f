"""One training loop for every learned inpainting method (lesson 03, used by lessons 03-06).

A lesson brings three things and the loop does the rest:

* a **model**: ``model(masked_image, hole) -> prediction (B, 3, H, W)``;
* a **loss**: ``loss_fn(model, image, hole) -> (loss, parts)``, e.g. :func:`hole_valid_l1`
  (lesson 03) or the partial-convolution paper's full loss (lesson 04);
* **data**: anything with ``batch(step) -> (image (B, 3, H, W), hole (B, 1, H, W))``, e.g.
  :class:`InpaintingBatches`.

:func:`train` then runs the optimisation with a progress bar, records the loss curve, saves
sample pictures and checkpoints into a run folder, resumes an interrupted run exactly where
it stopped, and uses mixed precision on CUDA GPUs. Trained weights are shipped with the
course by :func:`export_weights` and loaded with their sha256 checked by :func:`load_weights`.

The same loop is a command. Every shipped weight file has a recipe file
(``course_lib/recipes/NAME.toml``, read by :mod:`course_lib.recipes`) that repeats it::

    python -m course_lib.train --recipe pconv_unet_small --run-dir runs/pconv_unet_small \\
        --export pconv_rerun

For quick experiments the flags describe a run instead: ``python -m course_lib.train
pconv_unet_small --profile full --steps 3000 --run-dir runs/pconv``. Each model then trains
with its family's :class:`Family`: Adam at a constant rate for the inpainting networks, MAE's
AdamW with warm-up and cosine decay for ``mae_quick``/``mae_full``; ``--init NAME`` starts
from shipped weights (lesson 04's ablation fine-tunes lesson 03's).

A run folder holds ``checkpoint.pt`` (everything needed to continue), ``history.json`` (the
loss curve) and ``samples/step_000500.png`` ... (input / composite / truth).
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import importlib
import json
import math
import os
import random
import shlex
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any, Protocol

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.figure import Figure
from torch import nn
from tqdm.auto import tqdm

from course_lib import config, masks, recipes, viz
from course_lib.checkpoints import (
    export_weights,
    file_sha256,
    first_difference,
    load_checkpoint,
    load_weights,
    save_atomic,
    weights_files,
    write_text_atomic,
)
from course_lib.data import PERIODIC_BACKGROUNDS, PhotoPatches, ProceduralScenes, render_texture
from course_lib.losses import LOSS_BUILDERS
from course_lib.mask_files import remove_stale_temporaries
from course_lib.networks import InpaintingNetwork
from course_lib.validate import check_int, check_number

__all__ = [
    "HOLE_WEIGHT",
    "LOSSES",
    "MODELS",
    "SOURCES",
    "VALID_WEIGHT",
    "InpaintingBatches",
    "TrainResult",
    "export_weights",
    "hole_valid_l1",
    "load_weights",
    "main",
    "predict",
    "sample_figure",
    "train",
]

LossFunction = Callable[[nn.Module, torch.Tensor, torch.Tensor], tuple[torch.Tensor, dict]]


class BatchSource(Protocol):
    """What :func:`train` needs from data: the batch of any step, always the same one."""

    def batch(self, step: int) -> tuple[torch.Tensor, torch.Tensor]: ...


# ---------------------------------------------------------------------------------------------
# Training data: a stream of (image, hole) batches indexed by step
# ---------------------------------------------------------------------------------------------

SOURCES: tuple[str, ...] = ("photos", "scenes", "textures")
DEFAULT_SOURCES: tuple[str, ...] = ("photos", "scenes")
VALIDATION_SCENE_SEED = 20_000  # scenes of the validation curve: neither seed 0 nor the test's
# Items per source before the stream starts over. Below data.SEED_STRIDE, so training scenes
# (seed 0) never coincide with the held-out scenes of course_lib.evaluate (another seed).
POOL = 1_000_000


class InpaintingBatches:
    """An endless, deterministic stream of training batches ``(image, hole)``.

    ``batch(step)`` returns ``image (B, 3, size, size)`` in ``[0, 1]`` and ``hole
    (B, 1, size, size)`` (1 = hole). The images of step ``i`` are items ``i * n .. i * n + n - 1``
    of each source (``n`` = its share of the batch): patches of the *training* photos
    (``PhotoPatches(split="train")``), ``ProceduralScenes(seed=0)``, then textures, in the
    order of ``sources``. The masks of step
    ``i`` are drawn with a generator seeded with the pair ``(seed, i)``.

    So a batch depends only on its step: a run resumed at step ``i`` sees exactly the data an
    uninterrupted run sees, and ``seed`` changes the holes but never the pictures.

    * ``sources``: any of :data:`SOURCES`, shared as evenly as the batch allows (default
      ``("photos", "scenes")``, half each). ``"textures"`` are the periodic backgrounds of
      training scenes (stripes, checkerboards, gratings, dots) with no objects on them: the
      repeating structure lesson 05's Fourier network is for.
    * ``mask_kind``: a kind of :func:`course_lib.masks.generate` (e.g. ``"mixed"``, LaMa's
      training mix), or a list of kinds with their options, e.g. ``[{"kind": "box"}, {"kind":
      "irregular", "preset": "medium"}]``: each mask then picks one of them at random, so the
      training masks can be those the evaluation uses.
    * ``coverage``: ``None`` for the kinds' natural spread of hole sizes, a target in
      ``[0, 1)`` for every mask, or a range ``(low, high)`` from which each mask draws its
      own target uniformly (e.g. ``(0.02, 0.58)`` covers every evaluation band).
    * ``mask_options``: passed on to :func:`course_lib.masks.generate` with a single kind,
      e.g. ``preset="thick"`` for ``mask_kind="irregular"``.
    * ``flip``: mirror half of the photo patches left-right. ``photo_short_sides``: crop the
      photos at several scales (each photo shrunk to each of these short sides; item ``k``
      takes scale ``k mod len``): more distinct patches from the same few photos. ``None``:
      one scale, twice the patch size (:class:`course_lib.data.PhotoPatches`' default).
    """

    def __init__(
        self,
        sources: Sequence[str] = DEFAULT_SOURCES,
        size: int = 64,
        batch_size: int = 16,
        mask_kind: str | Sequence[Mapping[str, Any]] = "mixed",
        seed: int = 0,
        coverage: float | Sequence[float] | None = None,
        flip: bool = False,
        photo_short_sides: Sequence[int] | None = None,
        **mask_options: Any,
    ) -> None:
        self.sources = (sources,) if isinstance(sources, str) else tuple(sources)
        if not self.sources or len(set(self.sources)) != len(self.sources):
            raise ValueError(
                f"sources must name each source once, e.g. {DEFAULT_SOURCES}; got {sources!r}."
            )
        unknown = [source for source in self.sources if source not in SOURCES]
        if unknown:
            raise ValueError(f"unknown image source(s) {unknown}; choose from {SOURCES}.")
        if not isinstance(batch_size, int) or batch_size < len(self.sources):
            raise ValueError(
                f"batch_size must be an int of at least {len(self.sources)} (one image per "
                f"source), got {batch_size!r}."
            )
        if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
            raise ValueError(f"seed must be a non-negative int, got {seed!r}.")
        self.size = size
        self.batch_size = batch_size
        self.seed = seed
        self.mask_kinds = _mask_kinds(mask_kind, mask_options)  # [(kind, options), ...]
        self.mask_kind = mask_kind if isinstance(mask_kind, str) else [dict(k) for k in mask_kind]
        self.coverage = _coverage_setting(coverage)
        self.mask_options = dict(mask_options)
        self.flip = bool(flip)
        self.photo_short_sides = None if photo_short_sides is None else list(photo_short_sides)
        # The batch is shared as evenly as possible: 16 images from 2 sources = 8 + 8.
        share, extra = divmod(batch_size, len(self.sources))
        self.counts = tuple(share + (k < extra) for k in range(len(self.sources)))
        scales = [None] if photo_short_sides is None else list(photo_short_sides)
        self._photos = (
            [
                PhotoPatches(size, split="train", length=POOL, seed=0, short_side=side, flip=flip)
                for side in scales
            ]
            if "photos" in self.sources
            else None
        )
        self._scenes = (
            ProceduralScenes(size, length=POOL, seed=0) if "scenes" in self.sources else None
        )
        self._textures = (
            ProceduralScenes(size, length=POOL, seed=0, backgrounds=PERIODIC_BACKGROUNDS)
            if "textures" in self.sources
            else None
        )
        # Drawing one mask of each kind now reports a bad kind, option or coverage here.
        for kind, options in self.mask_kinds:
            low = self.coverage if not isinstance(self.coverage, tuple) else self.coverage[0]
            masks.generate(kind, 1, size, size, low, seed=0, **options)

    def _image(self, source: str, index: int) -> torch.Tensor:
        """Item ``index`` of ``source``: ``(3, size, size)``."""
        if source == "photos":
            scales = len(self._photos)  # item k is crop k // scales at scale k % scales
            return self._photos[index % scales][index // scales]
        if source == "textures":  # the background alone, drawn without the scene's objects
            return render_texture(self._textures.scene(index).background, self.size, self.size)
        return self._scenes[index][0]  # scenes come with their label map; keep the image

    def _holes(self, generator: np.random.Generator) -> torch.Tensor:
        """The batch's masks ``(B, 1, H, W)``."""
        if len(self.mask_kinds) == 1 and not isinstance(self.coverage, tuple):
            kind, options = self.mask_kinds[0]  # one call: the stream of the shipped weights
            return masks.generate(
                kind, self.batch_size, self.size, self.size, self.coverage,
                generator=generator, **options,
            )  # fmt: skip
        holes = []
        for _ in range(self.batch_size):  # each mask its own kind and coverage target
            kind, options = self.mask_kinds[int(generator.integers(len(self.mask_kinds)))]
            target = self.coverage
            if isinstance(target, tuple):
                target = float(generator.uniform(*target))
            holes.append(
                masks.generate(
                    kind, 1, self.size, self.size, target, generator=generator, **options
                )
            )
        return torch.cat(holes)

    def batch(self, step: int) -> tuple[torch.Tensor, torch.Tensor]:
        """The batch of training step ``step``: ``(image (B, 3, H, W), hole (B, 1, H, W))``."""
        if not isinstance(step, int) or isinstance(step, bool) or step < 0:
            raise ValueError(f"step must be a non-negative int, got {step!r}.")
        images = []
        for source, count in zip(self.sources, self.counts, strict=True):
            # Consecutive steps take consecutive items; the stream wraps after POOL items.
            images += [self._image(source, (step * count + k) % POOL) for k in range(count)]
        image = torch.stack(images)  # (B, 3, H, W)
        # One generator per (seed, step) pair: step i's masks never depend on other steps.
        hole = self._holes(np.random.default_rng((self.seed, step)))  # (B, 1, H, W)
        return image, hole

    @property
    def config(self) -> dict[str, Any]:
        """The settings that define the stream, as plain values (stored in checkpoints)."""
        settings = {
            "sources": list(self.sources),
            "size": self.size,
            "batch_size": self.batch_size,
            "mask_kind": self.mask_kind,
            "seed": self.seed,
            "coverage": list(self.coverage) if isinstance(self.coverage, tuple) else self.coverage,
            "mask_options": dict(self.mask_options),
        }
        # Written only when used, so that the stream of the shipped weights keeps its record.
        if self.flip:
            settings["flip"] = True
        if self.photo_short_sides is not None:
            settings["photo_short_sides"] = self.photo_short_sides
        return settings


def _mask_kinds(
    mask_kind: str | Sequence[Mapping[str, Any]], mask_options: Mapping[str, Any]
) -> list[tuple[str, dict[str, Any]]]:
    """``mask_kind`` as a list of ``(kind, options)``; options go with a single kind only."""
    if isinstance(mask_kind, str):
        return [(mask_kind, dict(mask_options))]
    if mask_options:
        raise ValueError(
            f"mask options {sorted(mask_options)} go with a single mask_kind; with a list, give "
            "each kind its options, e.g. [{'kind': 'irregular', 'preset': 'medium'}]."
        )
    kinds = []
    for entry in mask_kind:
        if not isinstance(entry, Mapping) or "kind" not in entry:
            raise ValueError(
                f"each entry of a mask_kind list needs a 'kind', e.g. {{'kind': 'box'}}; got "
                f"{entry!r}."
            )
        options = {key: value for key, value in entry.items() if key != "kind"}
        kinds.append((entry["kind"], options))
    if not kinds:
        raise ValueError("mask_kind is an empty list: name at least one kind.")
    return kinds


def _coverage_setting(coverage: float | Sequence[float] | None) -> float | tuple | None:
    """``None``, one target, or a ``(low, high)`` range of targets, checked."""
    if coverage is None or isinstance(coverage, (int, float)):
        return coverage
    low, high = (float(value) for value in coverage)
    if not 0 <= low < high < 1:
        raise ValueError(
            f"a coverage range must be (low, high) with 0 <= low < high < 1, got {coverage!r}."
        )
    return low, high


# ---------------------------------------------------------------------------------------------
# The lesson 03 loss
# ---------------------------------------------------------------------------------------------

VALID_WEIGHT = 1.0  # weights of the partial-convolution paper's two L1 terms
HOLE_WEIGHT = 6.0


def predict(model: nn.Module, image: torch.Tensor, hole: torch.Tensor) -> torch.Tensor:
    """The model's raw prediction ``(B, 3, H, W)``; it is given ``image * (1 - hole)``.

    Zeroing the hole pixels here, in one place, guarantees that no model ever sees the pixels
    it has to guess: otherwise a network can learn to copy them and look perfect. The one
    deliberate exception: a model with an ``oracle_guidance(image)`` method (lesson 09's
    :class:`~course_lib.edgeconnect.EdgeGuidedInpainter`) is also given what it returns for
    the whole image, the true edges its paper trains it on.
    """
    guidance = getattr(model, "oracle_guidance", None)
    if guidance is not None and (extra := guidance(image)) is not None:
        return model(image * (1 - hole), hole, extra)
    return model(image * (1 - hole), hole)


def hole_valid_l1(
    model: nn.Module, image: torch.Tensor, hole: torch.Tensor
) -> tuple[torch.Tensor, dict[str, float]]:
    """``L_valid + 6 * L_hole``: the L1 part of the partial-convolution paper's loss.

    ``L_hole = mean(|hole * (prediction - image)|)`` and ``L_valid`` the same with
    ``1 - hole``; both are means over *all* ``B * C * H * W`` elements, as in the paper, so a
    small hole gives a small ``L_hole``. Returns the loss and its parts ``{"valid", "hole"}``.
    """
    # float32 even under mixed precision: the loss is a sum of many small numbers.
    prediction = predict(model, image, hole).float()  # (B, 3, H, W)
    error = (prediction - image).abs()  # (B, 3, H, W); hole (B, 1, H, W) broadcasts over C
    valid_l1 = ((1 - hole) * error).mean()
    hole_l1 = (hole * error).mean()
    loss = VALID_WEIGHT * valid_l1 + HOLE_WEIGHT * hole_l1
    return loss, {"valid": valid_l1.item(), "hole": hole_l1.item()}


# ---------------------------------------------------------------------------------------------
# Pictures and results
# ---------------------------------------------------------------------------------------------

SAMPLE_COUNT = 4  # rows of a sample picture


def sample_figure(
    model: nn.Module, image: torch.Tensor, hole: torch.Tensor, title: str | None = None
) -> Figure:
    """Rows of input / composite / truth for a batch (model in eval mode, no grad).

    The composite is built from :func:`predict`, the prediction training learns from (with
    an oracle's guidance for a model trained with one). A model with an ``inpaint`` method
    that is not an :class:`~course_lib.networks.InpaintingNetwork` (the masked autoencoder,
    whose ``forward`` takes other arguments) composites its own answer. A masked autoencoder
    with ``norm_pix_loss`` cannot inpaint (a removed patch's mean and deviation are unknown):
    its rows show its own random masks and its reconstruction with the true patch statistics
    pasted back, as the paper's figures do.
    """
    was_training = model.training
    model.eval()
    with torch.no_grad():
        if getattr(model, "norm_pix_loss", False):
            shown = model.reconstruct(image, generator=torch.Generator().manual_seed(0))
            shown_input, composite = shown["masked"], shown["pasted"]
        else:
            if hasattr(model, "inpaint") and not isinstance(model, InpaintingNetwork):
                composite = model.inpaint(image, hole).float().clamp(0, 1)  # (B, 3, H, W)
            else:
                prediction = predict(model, image, hole).float().clamp(0, 1)  # (B, 3, H, W)
                composite = masks.composite(image, hole, prediction)
            shown_input = viz.masked_input(image, hole)
    model.train(was_training)
    panels = {"input": shown_input, "composite": composite, "truth": image}
    return viz.side_by_side({name: panel.cpu() for name, panel in panels.items()}, title=title)


@dataclass
class TrainResult:
    """What :func:`train` returns.

    ``history`` has one entry per step since the run began (resumed steps included):
    ``{"step": 1, "loss": 0.41, "valid": 0.05, "hole": 0.06}``, with the loss's own parts.
    ``seconds`` is the training time of the whole run, the parts before a resume included (a
    checkpoint carries the time up to it); ``run_dir`` is ``None`` for runs without files.
    """

    history: list[dict[str, float]]
    steps: int
    seconds: float
    run_dir: Path | None

    def plot(
        self,
        title: str = "training loss",
        smooth: int | None = None,
        weights: Mapping[str, float] | None = None,
    ) -> Figure:
        """The loss curve and its parts against the step, on a log scale.

        One batch's loss is noisy (its holes may be large or small), so each curve is drawn
        faintly as recorded and boldly as a running mean over ``smooth`` steps (default: a
        25th of the run). The history records each part *unweighted*; with ``weights``
        (``{part: weight}``, every part) each is drawn times its weight, as it enters the
        total, and the legend says so ("6 x hole"); without, the legend marks the parts
        "(unweighted)", next to the weighted total.
        """
        if not self.history:
            raise ValueError("this run has no recorded steps to plot.")
        window = smooth or max(1, len(self.history) // 25)
        figure, axis = plt.subplots(figsize=(6.4, 3.6))
        steps = np.array([entry["step"] for entry in self.history])
        parts = [key for key in self.history[0] if key not in ("step", "val_hole_psnr")]
        # A part equal to the total at every step (a loss of one term) would hide behind it.
        same = [k for k in parts[1:] if all(entry[k] == entry["loss"] for entry in self.history)]
        parts = [key for key in parts if key not in same]
        missing = sorted(set(parts) - {"loss"} - set(weights or {})) if weights else []
        if missing:
            raise ValueError(f"weights must give every part of the loss; missing {missing}.")
        for key in parts:
            values = np.array([entry[key] for entry in self.history])
            if key == "loss":
                label = "total loss (weighted sum)" if len(parts) > 1 else "loss"
                label += f" (= {', '.join(same)})" if same else ""
            elif weights:
                values, label = weights[key] * values, f"{weights[key]:g} x {key}"
            else:
                label = f"{key} (unweighted)"
            # Running mean over the last `window` steps (fewer at the start).
            totals = np.cumsum(np.insert(values, 0, 0.0))
            counts = np.minimum(np.arange(1, len(values) + 1), window)
            running = (totals[1:] - totals[np.arange(len(values)) + 1 - counts]) / counts
            (line,) = axis.plot(steps, running, label=label)
            axis.plot(steps, values, color=line.get_color(), alpha=0.25, linewidth=0.8)
        axis.set_yscale("log")
        axis.set_xlabel("step")
        axis.set_ylabel(
            f"training loss (mean of {window} steps)" if window > 1 else "training loss"
        )
        axis.set_title(title)
        axis.legend()
        figure.tight_layout()
        return figure


# ---------------------------------------------------------------------------------------------
# The training loop
# ---------------------------------------------------------------------------------------------

CHECKPOINT_FILE = "checkpoint.pt"
HISTORY_FILE = "history.json"
SAMPLES_DIR = "samples"
CHECKPOINT_FORMAT = 2  # bump when the checkpoint layout changes
# Defaults of the command line and of train(), read from the recipes of the shipped weights
# (course_lib/recipes) so that no rate is written twice: Adam's rate of lesson 03's networks,
# and the MAE's base rate per 256 images and warm-up of lesson 06.
DEFAULT_LR = recipes.load("pconv_unet_small_stage1").optimiser["lr"]
MAE_BASE_LR = recipes.load("mae_quick").optimiser["lr"]
MAE_WARMUP_FRACTION = recipes.load("mae_quick").optimiser["warmup_fraction"]
RESERVED_KEYS = ("step", "loss", "val_hole_psnr")  # history keys the loop writes itself
# The discriminator's Adam (lesson 04): beta1 = 0.5, the usual choice for GANs since DCGAN,
# so that its momentum does not carry it far past a generator that keeps moving.
DISCRIMINATOR_BETAS = (0.5, 0.999)
DEFAULT_CHECKPOINT_EVERY = 500
LR_HINT = (
    "The learning rate scales every update: try 2e-4 for Adam (the default); 0 trains nothing."
)


def _resolve_amp(amp: bool | None, device: torch.device) -> bool:
    """Mixed precision only on CUDA: CPUs and MPS gain little from float16 and some ops fail."""
    if amp is None:
        return device.type == "cuda"
    if amp and device.type != "cuda":
        raise ValueError(
            f"amp=True needs a CUDA GPU, but training runs on {device}. Use amp=None (on when "
            "the device is CUDA) or amp=False."
        )
    return bool(amp)


def _autocast(enabled: bool) -> contextlib.AbstractContextManager:
    """float16 autocast on CUDA when ``enabled``; otherwise nothing changes."""
    if enabled:
        return torch.autocast(device_type="cuda", dtype=torch.float16)
    return contextlib.nullcontext()


def _rng_states(device: torch.device) -> dict[str, Any]:
    """Every global random state a model or loss may draw from, as tensors and plain values."""
    name, keys, position, has_gauss, gauss = np.random.get_state(legacy=True)
    return {
        "python": random.getstate(),
        "numpy": {
            "name": name,
            "keys": torch.from_numpy(keys.astype(np.int64)),
            "pos": int(position),
            "has_gauss": int(has_gauss),
            "gauss": float(gauss),
        },
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "mps": torch.mps.get_rng_state() if device.type == "mps" else None,
    }


def _set_rng_states(states: dict[str, Any], device: torch.device) -> None:
    """Restore what :func:`_rng_states` saved (devices this machine lacks are skipped)."""
    random.setstate(states["python"])
    saved = states["numpy"]
    keys = saved["keys"].numpy().astype(np.uint32)
    np.random.set_state((saved["name"], keys, saved["pos"], saved["has_gauss"], saved["gauss"]))
    torch.set_rng_state(states["torch"])
    if states["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])
    if states["mps"] is not None and device.type == "mps":
        torch.mps.set_rng_state(states["mps"])


def _run_config(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler | None,
    loss_fn: LossFunction,
    data: BatchSource,
    seed: int,
    clip_grad_norm: float | None = None,
) -> dict[str, Any]:
    """What defines a run; a checkpoint may only be continued by a run with the same values.

    ``steps``, the device and mixed precision are left out: a run can be extended, and moved
    from a GPU to a laptop.
    """
    return {
        "model": type(model).__qualname__,
        "shapes": {name: list(tensor.shape) for name, tensor in model.state_dict().items()},
        "optimizer": type(optimizer).__qualname__,
        # The starting learning rates: a schedule changes the current ones as the run goes.
        "lr": [float(group.get("initial_lr", group["lr"])) for group in optimizer.param_groups],
        "scheduler": type(scheduler).__qualname__ if scheduler is not None else None,
        "loss": _loss_identity(loss_fn),
        "data": getattr(data, "config", type(data).__qualname__),
        "seed": seed,
    } | ({"clip_grad_norm": clip_grad_norm} if clip_grad_norm is not None else {})


def _loss_identity(loss_fn: LossFunction) -> str:
    """A loss's name, plus a fingerprint of its settings and feature-network weights when it is
    a module: two PConv losses with different feature networks must not share a run."""
    name = getattr(loss_fn, "__qualname__", type(loss_fn).__qualname__)
    if not isinstance(loss_fn, nn.Module):
        return name
    digest = hashlib.sha256(repr(loss_fn).encode())
    for key, tensor in loss_fn.state_dict().items():
        if not isinstance(tensor, torch.Tensor):
            continue  # extra state: not a setting
        digest.update(key.encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return f"{name} {digest.hexdigest()[:16]}"


def _check_same_run(saved: dict[str, Any], current: dict[str, Any], path: Path) -> None:
    """Refuse to continue (and so overwrite) a checkpoint of another model or setting."""
    if saved["model"] != current["model"] or saved["shapes"] != current["shapes"]:
        saved_size = sum(math.prod(shape) for shape in saved["shapes"].values())
        size = sum(math.prod(shape) for shape in current["shapes"].values())
        # Name the first tensor that differs: it tells a student which setting changed.
        first = first_difference(saved["shapes"], current["shapes"])
        raise ValueError(
            f"run_dir {path.parent} holds a checkpoint of another model: a {saved['model']} with "
            f"{saved_size:,} weights, this is a {current['model']} with {size:,} ({first}: "
            f"{saved['shapes'].get(first)} there, {current['shapes'].get(first)} here). Use a "
            "new run_dir, or resume=False to start over there (its files are then replaced)."
        )
    differing = [key for key in current if saved.get(key) != current[key]]
    if differing:
        details = "; ".join(
            f"{key}: {saved.get(key)!r} there, {current[key]!r} now" for key in differing
        )
        raise ValueError(
            f"run_dir {path.parent} holds a checkpoint of another run ({details}). Use a new "
            "run_dir, or resume=False to start over there (its files are then replaced)."
        )


def _clear_run(run_dir: Path) -> None:
    """Remove the files of an earlier run so that a fresh run never mixes with it."""
    (run_dir / CHECKPOINT_FILE).unlink(missing_ok=True)
    (run_dir / HISTORY_FILE).unlink(missing_ok=True)
    for picture in (run_dir / SAMPLES_DIR).glob("step_*.png"):
        picture.unlink()


def _run_folder(run_dir: str | os.PathLike | None, name: str = "run_dir") -> Path | None:
    """``run_dir`` as a folder path (``None``: a run without files), checked before anything is
    written: an empty name would mean the current folder, and a file cannot hold a run."""
    if run_dir is None:
        return None
    if not isinstance(run_dir, (str, os.PathLike)):
        raise ValueError(
            f"{name} must be a folder name (str or Path) or None, got {type(run_dir).__name__}."
        )
    if not os.fspath(run_dir).strip():
        without_files = " (or run_dir=None for a run without files)" if name == "run_dir" else ""
        raise ValueError(
            f"{name} is empty, which would write the run's files into the current folder; "
            f"name a folder such as 'runs/pconv'{without_files}."
        )
    folder = Path(run_dir)
    if folder.exists() and not folder.is_dir():
        raise ValueError(
            f"{name} {folder} is a file, not a folder; name a new folder for the run (or the "
            "folder of a run to resume)."
        )
    return folder


def _check_every(name: str, value: int | None) -> None:
    if value is not None:
        check_int(value, name, 1, hint="Pass None for the last step only.")


def _checked_loss(result: object, loss_fn: LossFunction) -> tuple[torch.Tensor, Mapping]:
    """The ``(loss, parts)`` pair a loss function must return, checked before it is used.

    A bare tensor would otherwise fail as "iteration over a 0-d tensor", or, with two
    elements, be silently unpacked into a wrong loss and parts.
    """
    name = getattr(loss_fn, "__qualname__", type(loss_fn).__qualname__)
    expected = (
        f"loss_fn ({name}) must return a pair (loss, parts): a scalar tensor and a dict of "
        "floats, e.g. `return loss, {'l1': l1.item()}` (an empty dict {} if there are no parts)"
    )
    if not isinstance(result, (tuple, list)) or len(result) != 2:
        what = f"a {type(result).__name__}"
        if isinstance(result, torch.Tensor):
            what = f"a bare tensor of shape {tuple(result.shape)}"
        raise ValueError(f"{expected}; it returned {what}.")
    loss, parts = result
    if not isinstance(loss, torch.Tensor) or loss.numel() != 1:
        shape = tuple(loss.shape) if isinstance(loss, torch.Tensor) else type(loss).__name__
        raise ValueError(f"{expected}; its loss is {shape}, not one number (take the mean).")
    if not isinstance(parts, Mapping):
        raise ValueError(f"{expected}; its parts are a {type(parts).__name__}, not a dict.")
    return loss, parts


def _discriminator_step(
    adversary: Any,
    optimizer: torch.optim.Optimizer,
    image: torch.Tensor,
    hole: torch.Tensor,
    clip_grad_norm: float | None,
) -> dict[str, float]:
    """One update of an adversarial loss's discriminator on the composites of the generator's
    step (``adversary.last_fake``); returns its parts. Float32, so no gradient scaler."""
    loss, parts = adversary.discriminator_loss(image, adversary.last_fake, hole)
    # zero_grad also clears what the generator's backward left in the discriminator's weights.
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    if clip_grad_norm is not None:
        nn.utils.clip_grad_norm_(adversary.discriminator.parameters(), clip_grad_norm)
    optimizer.step()
    return parts


class BatchPrefetcher:
    """Prepares the next step's batch in a background thread while the current step trains.

    A batch depends only on its step (:class:`InpaintingBatches`), so the loop sees exactly
    the data of a plain ``data.batch(step)`` per step; the rendering of scenes and masks just
    overlaps with the network's arithmetic, as a ``DataLoader`` worker would.
    """

    def __init__(self, data: BatchSource, first: int, stop: int) -> None:
        self._data, self._stop = data, stop
        self._worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="batches")
        self._pending = self._submit(first)

    def _submit(self, step: int) -> Future | None:
        return self._worker.submit(self._data.batch, step) if step < self._stop else None

    def take(self, step: int) -> tuple[torch.Tensor, torch.Tensor]:
        """The batch of ``step`` (the steps must come in order), and start on the next one."""
        batch = self._pending.result()  # re-raises an error of data.batch here
        self._pending = self._submit(step + 1)
        return batch

    def close(self) -> None:
        self._worker.shutdown(wait=True, cancel_futures=True)


def _due(completed: int, every: int | None, steps: int) -> bool:
    """True after the last step and every ``every`` steps."""
    return completed == steps or (every is not None and completed % every == 0)


def _parts(parts: dict[str, Any]) -> dict[str, float]:
    """The loss's parts as floats, under names that do not clash with the loop's own."""
    clash = sorted(set(parts) & set(RESERVED_KEYS))
    if clash:
        raise ValueError(f"the loss parts may not be named {clash}; the loop records those.")
    return {name: float(value) for name, value in parts.items()}


def _history_json(run_config: dict[str, Any], history: list[dict[str, float]]) -> str:
    """``history.json``: the run's settings, then one line per step (easy to read and diff)."""
    settings = {key: value for key, value in run_config.items() if key != "shapes"}
    steps = ",\n".join(json.dumps(entry) for entry in history)
    return f'{{"config": {json.dumps(settings)},\n"history": [\n{steps}\n]}}\n'


def _default_samples(data: BatchSource) -> tuple[torch.Tensor, torch.Tensor]:
    """A few pairs of step 0's batch, spread over it so that every image source appears."""
    image, hole = data.batch(0)
    rows = torch.linspace(0, len(image) - 1, min(SAMPLE_COUNT, len(image))).long()
    return image[rows], hole[rows]


def _save_samples(
    model: nn.Module, image: torch.Tensor, hole: torch.Tensor, run_dir: Path, step: int, amp: bool
) -> None:
    """Save the model's answers on the sample pairs to ``run_dir/samples/step_XXXXXX.png``."""
    path = run_dir / SAMPLES_DIR / f"step_{step:06d}.png"
    path.parent.mkdir(exist_ok=True)
    with _autocast(amp):
        figure = sample_figure(model, image, hole, title=f"after {step} steps")
    figure.savefig(path, dpi=72)
    plt.close(figure)  # figures made in a loop would otherwise pile up in memory


def validation_pairs(
    size: int = 64, count: int = 64, seed: int = 0, centred_box: float | None = None
) -> tuple[torch.Tensor, ...]:
    """``count`` fixed validation pairs ``(image (N, 3, H, W), hole (N, 1, H, W))``.

    Half patches of the validation photos, half procedural scenes of their own seed: neither
    training nor test images. The holes are the evaluation's kinds (boxes and medium
    strokes, alternately) with coverage targets spread evenly over the six bands (1-60%);
    with ``centred_box``, the centred box of that coverage in every image instead (lesson
    08's Context Encoder, which is trained on that hole alone).
    """
    check_int(count, "count", 2)
    photos = PhotoPatches(size, split="validation", seed=seed).batch(0, count // 2)
    scenes = ProceduralScenes(size, seed=VALIDATION_SCENE_SEED + seed).batch(0, count - count // 2)
    images = torch.cat([photos, scenes[0]])  # (N, 3, H, W)
    if centred_box is not None:
        return images, masks.centred_box(size, centred_box, count)
    low, high = masks.COVERAGE_BANDS[0][0], masks.COVERAGE_BANDS[-1][1]
    targets = np.linspace(low + 0.02, high - 0.02, count)
    kinds = [("box", {}), ("irregular", {"preset": "medium"})]
    holes = torch.cat(
        [
            masks.generate(kinds[k % 2][0], 1, size, size, float(t), seed=k, **kinds[k % 2][1])
            for k, t in enumerate(targets)
        ]
    )  # (N, 1, H, W)
    return images, holes


def validation_psnr(
    model: nn.Module, image: torch.Tensor, hole: torch.Tensor, amp: bool = False
) -> float:
    """Mean hole-only PSNR (dB) of the model's composites, scored as every table of the
    course scores them (:func:`course_lib.evaluate.pair_scores`: each pair capped at 60 dB)."""
    from course_lib.evaluate import eval_mode, pair_scores

    device = next(model.parameters()).device
    image, hole = image.to(device), hole.to(device)
    with eval_mode([model]), torch.no_grad(), _autocast(amp):
        prediction = predict(model, image, hole).float().clamp(0, 1)
    composite = masks.composite(image, hole, prediction)
    return round(pair_scores(composite, image, hole)["hole_psnr"].mean().item(), 4)


def train(
    model: nn.Module,
    loss_fn: LossFunction,
    data: BatchSource,
    steps: int,
    *,
    optimizer: torch.optim.Optimizer | None = None,
    lr: float | None = None,
    scheduler: torch.optim.lr_scheduler.LRScheduler | None = None,
    device: torch.device | str | None = None,
    run_dir: str | os.PathLike | None = None,
    checkpoint_every: int | None = DEFAULT_CHECKPOINT_EVERY,
    sample_every: int | None = 500,
    samples: tuple[torch.Tensor, torch.Tensor] | None = None,
    resume: bool = True,
    amp: bool | None = None,
    seed: int = 0,
    progress: bool = True,
    validation: tuple[torch.Tensor, torch.Tensor] | None = None,
    validate_every: int | None = None,
    discriminator_optimizer: torch.optim.Optimizer | None = None,
    clip_grad_norm: float | None = None,
) -> TrainResult:
    """Train ``model`` for ``steps`` optimizer steps in total; step ``i`` uses ``data.batch(i)``.

    * ``loss_fn(model, image, hole) -> (loss, parts)``: the lesson's loss, e.g.
      :func:`hole_valid_l1`; ``parts`` (floats) are recorded next to the loss.
    * ``optimizer``: default Adam with ``lr`` (default 2e-4; a finite number, at least 0). Pass
      either an optimizer (with its own learning rate) or ``lr``, not both. ``scheduler``: a
      learning-rate schedule of that optimizer (e.g. warm-up then cosine decay), stepped once
      per step.
    * ``device``: default :func:`course_lib.config.device`. ``amp``: float16 mixed precision;
      ``None`` turns it on exactly when the device is CUDA.
    * ``run_dir``: the folder the run's files go to (``None``: no files; an empty name or a
      file is refused). A checkpoint is written every ``checkpoint_every`` steps and after the
      last one; sample pictures of ``samples`` (default: 4 images of step 0's batch) every
      ``sample_every`` steps and after the last one. Temporary files that a killed run left
      in the folder are removed.
    * ``resume``: continue from ``run_dir``'s checkpoint if there is one; the result is the
      same as an uninterrupted run. A checkpoint of another model or setting is refused;
      ``resume=False`` starts over and replaces the run's files.
    * ``seed``: seeds every generator (:func:`course_lib.config.seed_everything`) at the start.
    * ``validation``: pairs ``(image (N, 3, H, W), hole (N, 1, H, W))`` that are neither
      training nor test data (e.g. :func:`validation_pairs`); every ``validate_every`` steps
      and after the last, their mean hole-only PSNR (capped at 60 dB, as in every table of
      the course) is recorded in the history as ``val_hole_psnr``: the run's learning curve.
    * An adversarial loss (one with a ``discriminator`` and a ``discriminator_loss``, e.g.
      :class:`course_lib.losses.AdversarialLoss`): after each generator update the loop
      updates the discriminator on the same step's composites, with
      ``discriminator_optimizer`` (default Adam at 2e-4, betas :data:`DISCRIMINATOR_BETAS`);
      its parts ``d_loss`` and ``r1`` join the history, and its weights and optimiser state
      the checkpoint.
    * ``clip_grad_norm``: clip the gradients of each network to this norm before its update
      (LaMa clips at 1); ``None``: no clipping.

    Returns a :class:`TrainResult`; the model keeps its trained weights and is left in eval mode.
    """
    check_int(steps, "steps", 1)
    _check_every("checkpoint_every", checkpoint_every)
    _check_every("sample_every", sample_every)
    _check_every("validate_every", validate_every)
    if (validation is None) != (validate_every is None):
        raise ValueError("validation and validate_every go together: give both, or neither.")
    folder = _run_folder(run_dir)
    device = config.device(device)
    use_amp = _resolve_amp(amp, device)
    if optimizer is not None and lr is not None:
        raise ValueError("pass lr to your optimizer, or pass lr without an optimizer; not both.")
    if lr is not None:
        lr = check_number(lr, "lr", minimum=0.0, hint=LR_HINT)
    if clip_grad_norm is not None:
        clip_grad_norm = check_number(clip_grad_norm, "clip_grad_norm", minimum=0.0)
    adversary = loss_fn if hasattr(loss_fn, "discriminator_loss") else None
    if discriminator_optimizer is not None and adversary is None:
        raise ValueError(
            "discriminator_optimizer was given, but the loss has no discriminator; use an "
            "adversarial loss (losses.AdversarialLoss) or leave discriminator_optimizer out."
        )
    config.seed_everything(seed)
    # Every network on the device first (feature networks, a discriminator), then the
    # optimisers: a checkpoint's optimiser state is loaded onto the parameters' device.
    model.to(device)
    if isinstance(loss_fn, nn.Module):
        loss_fn.to(device)
    if optimizer is None:
        optimizer = torch.optim.Adam(model.parameters(), lr=DEFAULT_LR if lr is None else lr)
    if adversary is not None and discriminator_optimizer is None:
        discriminator_optimizer = torch.optim.Adam(
            adversary.discriminator.parameters(), lr=DEFAULT_LR, betas=DISCRIMINATOR_BETAS
        )
    if scheduler is not None and scheduler.optimizer is not optimizer:
        raise ValueError("the scheduler must belong to the optimizer passed to train().")
    # The scaler multiplies the loss so that small float16 gradients do not round to zero;
    # disabled (a no-op) without mixed precision, so there is only one code path.
    scaler = torch.amp.GradScaler("cuda", enabled=use_amp)
    run_config = _run_config(model, optimizer, scheduler, loss_fn, data, seed, clip_grad_norm)

    start, history, seconds_before = 0, [], 0.0
    if folder is not None:
        folder.mkdir(parents=True, exist_ok=True)
        # A run killed while writing leaves a temporary file next to the one it replaces.
        remove_stale_temporaries(folder, (CHECKPOINT_FILE, HISTORY_FILE))
        checkpoint_path = folder / CHECKPOINT_FILE
        if checkpoint_path.exists() and resume:
            checkpoint = load_checkpoint(checkpoint_path)
            if checkpoint.get("format") != CHECKPOINT_FORMAT:
                raise ValueError(
                    f"{checkpoint_path} was written by another version of course_lib (format "
                    f"{checkpoint.get('format')}, expected {CHECKPOINT_FORMAT}); use a new run_dir."
                )
            _check_same_run(checkpoint["config"], run_config, checkpoint_path)
            if checkpoint["step"] > steps:
                raise ValueError(
                    f"run_dir {folder} already holds a run at step {checkpoint['step']}, past "
                    f"steps={steps}. Ask for steps >= {checkpoint['step']}, or resume=False."
                )
            model.load_state_dict(checkpoint["model"])
            if isinstance(loss_fn, nn.Module) and checkpoint.get("loss") is not None:
                loss_fn.load_state_dict(checkpoint["loss"])  # e.g. an adversary's weights
            optimizer.load_state_dict(checkpoint["optimizer"])
            if discriminator_optimizer is not None:
                discriminator_optimizer.load_state_dict(checkpoint["discriminator_optimizer"])
            if scheduler is not None:
                scheduler.load_state_dict(checkpoint["scheduler"])
            if use_amp and checkpoint["scaler"]:  # empty when the run so far had no AMP
                scaler.load_state_dict(checkpoint["scaler"])
            _set_rng_states(checkpoint["rng"], device)
            start, history = checkpoint["step"], checkpoint["history"]
            seconds_before = checkpoint.get("seconds", 0.0)
        else:
            _clear_run(folder)  # files of an earlier run (or a crashed one) must not mix in

    def save_checkpoint(completed: int) -> None:
        state = {
            "format": CHECKPOINT_FORMAT,
            "step": completed,
            "config": run_config,
            "model": model.state_dict(),
            # A loss can learn too (lesson 04's adversary): its state resumes with the run.
            "loss": loss_fn.state_dict() if isinstance(loss_fn, nn.Module) else None,
            "optimizer": optimizer.state_dict(),
            "discriminator_optimizer": (
                discriminator_optimizer.state_dict() if discriminator_optimizer else None
            ),
            "scheduler": scheduler.state_dict() if scheduler is not None else None,
            "scaler": scaler.state_dict(),
            "rng": _rng_states(device),
            "history": history,
            "seconds": seconds_before + time.perf_counter() - began,  # training time so far
        }
        save_atomic(state, folder / CHECKPOINT_FILE)
        write_text_atomic(_history_json(run_config, history), folder / HISTORY_FILE)

    if folder is not None:
        sample_image, sample_hole = (t.to(device) for t in samples or _default_samples(data))

    began = time.perf_counter()
    model.train()
    bar = tqdm(
        range(start, steps), initial=start, total=steps, desc="training", disable=not progress
    )
    batches = BatchPrefetcher(data, start, steps)  # batch(step + 1) is made while step trains
    try:
        for step in bar:
            image, hole = (tensor.to(device) for tensor in batches.take(step))
            # image (B, 3, H, W), hole (B, 1, H, W)
            with _autocast(use_amp):
                loss, parts = _checked_loss(loss_fn(model, image, hole), loss_fn)
            value = loss.item()
            # Checked before the update, so that the model keeps its last finite weights.
            if not math.isfinite(value):
                raise FloatingPointError(
                    f"the loss became {value} at step {step}: training diverged. Lower the learning "
                    f"rate (now {optimizer.param_groups[0]['lr']}); the last checkpoint is intact."
                )
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            if clip_grad_norm is not None:
                scaler.unscale_(optimizer)  # clip the true gradients, not the scaled ones
                nn.utils.clip_grad_norm_(model.parameters(), clip_grad_norm)
            scaler.step(optimizer)  # skips the step if float16 gradients overflowed
            scaler.update()
            if scheduler is not None:
                scheduler.step()
            if adversary is not None:
                step_parts = _discriminator_step(
                    adversary, discriminator_optimizer, image, hole, clip_grad_norm
                )
                parts = {**parts, **step_parts}

            completed = step + 1
            history.append({"step": completed, "loss": value, **_parts(parts)})
            if validation is not None and _due(completed, validate_every, steps):
                history[-1]["val_hole_psnr"] = validation_psnr(model, *validation, amp=use_amp)
            bar.set_postfix(loss=f"{value:.4f}", refresh=False)
            if folder is not None and _due(completed, checkpoint_every, steps):
                save_checkpoint(completed)
            if folder is not None and _due(completed, sample_every, steps):
                _save_samples(model, sample_image, sample_hole, folder, completed, use_amp)
    finally:
        batches.close()
    bar.close()
    model.eval()
    seconds = seconds_before + time.perf_counter() - began
    return TrainResult(history=history, steps=steps, seconds=seconds, run_dir=folder)


# ---------------------------------------------------------------------------------------------
# Command line: python -m course_lib.train MODEL --profile quick|full ...
# ---------------------------------------------------------------------------------------------


def _named(
    module: str, class_name: str, name: str = "small", **overrides: object
) -> Callable[[], nn.Module]:
    """A constructor of ``module.class_name.from_config(name, **overrides)``, imported only
    when called: course_lib.train must not need every network to import."""

    def build() -> nn.Module:
        network = getattr(importlib.import_module(f"course_lib.{module}"), class_name)
        return network.from_config(name, **overrides)

    return build


MODELS: dict[str, Callable[[], nn.Module]] = {
    "pconv_unet_small": _named("unet", "PConvUNet"),
    "conv_unet_small": _named("unet", "ConvUNet"),
    "plain_conv_unet_small": _named("unet", "PlainConvUNet"),
    "gated_unet_small": _named("gated_conv", "GatedUNet"),  # lesson 08: DeepFill v2's layer
    "context_encoder_small": _named("channelwise_fc", "ContextEncoder"),  # lesson 08
    "glcic_small": _named("glcic", "CompletionNetwork"),  # lesson 08: GLCIC's completion net
    # Lesson 08: DeepFill v1's two-stage network, with contextual attention and without it.
    "coarse_to_fine_small": _named("deepfill", "CoarseToFine"),
    "coarse_to_fine_small_no_attention": _named("deepfill", "CoarseToFine", "small_no_attention"),
    # Lesson 09: EdgeConnect's image generator, with the true edges in training, and without.
    "edge_guided_small": _named("edgeconnect", "EdgeGuidedInpainter"),
    "edge_guided_small_no_edges": _named("edgeconnect", "EdgeGuidedInpainter", edges=False),
    "edge_generator_small": _named("edgeconnect", "EdgeGenerator"),
    # Lesson 09: ConvUNet with ZITS's masking positional encoding.
    "positioned_conv_unet_small": _named("mpe", "PositionedConvUNet"),
    "tiny_lama_small": _named("ffc", "TinyLaMa"),
    "conv_lama_small": _named("ffc", "ConvLaMa"),
    "tiny_lama_shallow": _named("ffc", "TinyLaMa", "shallow"),
    "conv_lama_shallow": _named("ffc", "ConvLaMa", "shallow"),
    "mae_quick": _named("mae", "MaskedAutoencoder", "quick"),
    # Lesson 06's representation runs: standardised patch targets, as in the paper.
    "mae_quick_norm_pix": _named("mae", "MaskedAutoencoder", "quick", norm_pix_loss=True),
    "mae_full": _named("mae", "MaskedAutoencoder", "full"),
}
"""Models the command line can train, by name; lessons add their own (name -> constructor)."""


@dataclass(frozen=True)
class Family:
    """How the command line's ad-hoc form (``MODEL --profile ...``) optimises a family of models.

    ``losses``: the ``--loss`` names it accepts, the first being the default. ``lr``: the
    default ``--lr``. ``optimiser(model, steps, batch_size, lr)`` returns the optimiser and
    its schedule (or ``None``).
    """

    losses: tuple[str, ...]
    lr: float
    optimiser: Callable[
        [nn.Module, int, int, float],
        tuple[torch.optim.Optimizer, torch.optim.lr_scheduler.LRScheduler | None],
    ]


def _adam(
    model: nn.Module, steps: int, batch_size: int, lr: float
) -> tuple[torch.optim.Optimizer, None]:
    """The inpainting networks' optimiser: Adam at a constant rate, as in the PConv paper."""
    del steps, batch_size  # a constant rate, whatever the length of the run
    return torch.optim.Adam(model.parameters(), lr=lr), None


def _mae_adamw(
    model: nn.Module,
    steps: int,
    batch_size: int,
    lr: float,
    warmup_fraction: float = MAE_WARMUP_FRACTION,
) -> tuple[torch.optim.Optimizer, torch.optim.lr_scheduler.LRScheduler]:
    """MAE's recipe (lesson 06): AdamW with the linear scaling rule (``lr`` is the *base* rate
    per 256 images), linear warm-up over ``warmup_fraction`` of the steps, then cosine decay."""
    from course_lib.mae import mae_optimizer, warmup_cosine

    optimizer = mae_optimizer(model, batch_size, base_lr=lr)
    # Exact arithmetic: 5% of 6,000 steps is 300 warm-up steps, not 299 by float rounding.
    warmup = max(1, int(steps * Fraction(str(warmup_fraction))))
    return optimizer, warmup_cosine(optimizer, warmup, steps)


INPAINTING = Family(losses=("l1", *sorted(LOSS_BUILDERS)), lr=DEFAULT_LR, optimiser=_adam)
FAMILIES: dict[str, Family] = {
    "mae_quick": Family(losses=("mae",), lr=MAE_BASE_LR, optimiser=_mae_adamw),
    "mae_full": Family(losses=("mae",), lr=MAE_BASE_LR, optimiser=_mae_adamw),
}
"""Models that are not trained like the inpainting networks (:data:`INPAINTING`)."""

LOSSES: dict[str, LossFunction] = {"l1": hole_valid_l1}
"""Losses the command line offers (``--loss``); lesson 04 adds the full partial-conv loss."""

LAZY_LOSSES: dict[str, Callable[[], LossFunction]] = {
    **LOSS_BUILDERS,
    "mae": lambda: importlib.import_module("course_lib.mae").mae_loss,
}
"""Losses built on demand: they load a feature network or a lesson's module."""

COMMAND = "python -m course_lib.train"


def _positive_int(text: str) -> int:
    """argparse type: an int of at least 1 (a number of steps)."""
    try:
        return check_int(int(text), "the value", 1)
    except ValueError as error:
        raise argparse.ArgumentTypeError(
            f"expected a positive whole number, got {text!r}"
        ) from error


def _learning_rate(text: str) -> float:
    """argparse type: a finite learning rate of at least 0."""
    try:
        return check_number(float(text), "the learning rate", minimum=0.0)
    except ValueError as error:
        raise argparse.ArgumentTypeError(
            f"expected a finite number of at least 0, got {text!r}. {LR_HINT}"
        ) from error


def _run_dir_argument(text: str) -> str:
    """argparse type: a folder name for the run (checked like train's run_dir)."""
    try:
        _run_folder(text, name="--run-dir")
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from error
    return text


def build_loss(spec: Mapping[str, Any]) -> LossFunction:
    """The training loss a recipe's ``[loss]`` table describes (see :mod:`course_lib.recipes`)."""
    if spec["terms"] == "l1":
        return hole_valid_l1
    if spec["terms"] == "mae":
        mae = importlib.import_module("course_lib.mae")
        if "masking" not in spec and "ratio" not in spec:
            return mae.mae_loss  # MAE's own random masks at the model's ratio
        ratio = spec.get("ratio")
        return mae.MAELoss(
            spec.get("masking", "random"), tuple(ratio) if isinstance(ratio, list) else ratio
        )
    from course_lib import feature_nets, losses

    if spec["terms"] == "hole_l2":
        loss = losses.HoleL2Loss(spec["weights"]["hole"])
        return _with_adversary(loss, spec["adversarial"]) if "adversarial" in spec else loss
    if spec["terms"] == "edges":  # lesson 09: EdgeConnect's edge generator
        judge = losses.PatchDiscriminator(
            in_channels=2, spectral_norm=True, **spec["discriminator"]
        )
        return losses.EdgeAdversarialLoss(judge, **spec["weights"])
    if spec["terms"] == "lama":
        discriminator = losses.PatchDiscriminator(**spec["discriminator"])
        perceptual = losses.HighReceptiveFieldPerceptual(normalise=spec["normalise_perceptual"])
        return losses.LaMaLoss(
            discriminator, perceptual, weights=spec["weights"], r1_weight=spec["r1_weight"]
        )
    features = {"course": feature_nets.course_features, "vgg16": feature_nets.vgg16_features}
    loss = losses.PConvLoss(features[spec["features"]](), dict(spec["weights"]))
    return _with_adversary(loss, spec["adversarial"]) if "adversarial" in spec else loss


def _with_adversary(base: LossFunction, spec: Mapping[str, Any]) -> LossFunction:
    """``base`` plus the adversary a recipe's ``[loss.adversarial]`` table describes."""
    from course_lib import losses

    if spec.get("kind") == "global_local":  # lesson 08: GLCIC's two discriminators
        from course_lib.glcic import GlobalLocalDiscriminator

        judge = GlobalLocalDiscriminator(**spec["discriminator"])
        return losses.GlobalLocalAdversarialLoss(base, judge, weight=spec["weight"])
    discriminator = losses.PatchDiscriminator(**spec.get("discriminator", {}))
    return losses.AdversarialLoss(
        base, discriminator, weight=spec["weight"], r1_weight=spec["r1_weight"]
    )


def build_optimiser(
    spec: Mapping[str, Any], model: nn.Module, steps: int, batch_size: int
) -> tuple[torch.optim.Optimizer, torch.optim.lr_scheduler.LRScheduler | None]:
    """The optimiser and schedule a recipe's ``[optimiser]`` table describes."""
    if spec["name"] == "adam":
        return _adam(model, steps, batch_size, spec["lr"])
    return _mae_adamw(model, steps, batch_size, spec["lr"], spec["warmup_fraction"])


@dataclass
class _Plan:
    """Everything one command-line run needs, from a recipe file or from the ad-hoc flags."""

    model: str
    init: str | None
    steps: int
    seed: int
    data: dict[str, Any]
    loss_label: Any  # a loss name, or a recipe's [loss] table
    build_loss: Callable[[], LossFunction]
    build_optimiser: Callable[[nn.Module, int, int], tuple]
    lr: float
    recipe: recipes.Recipe | None = None
    freeze_encoder_bn: bool = False
    validation: dict[str, int] | None = None
    clip_grad_norm: float | None = None
    discriminator_lr: float | None = None
    discriminator_betas: tuple[float, float] = DISCRIMINATOR_BETAS


AD_HOC_FLAGS = ("profile", "steps", "lr", "loss", "init")


def recipe_data(recipe: recipes.Recipe) -> dict[str, Any]:
    """The keyword arguments of :class:`InpaintingBatches` a recipe's ``[data]`` gives (the
    seed aside): its ``mask_options`` (e.g. a stroke preset) are keyword arguments too."""
    data = {key: value for key, value in recipe.data.items() if key != "mask_options"}
    return data | dict(recipe.data.get("mask_options", {}))


def _plan_from_recipe(options: argparse.Namespace, parser: argparse.ArgumentParser) -> _Plan:
    given = [f"--{flag}" for flag in AD_HOC_FLAGS if getattr(options, flag) is not None]
    if options.model is not None or given or options.seed is not None:
        parser.error(
            f"--recipe sets the model and {', '.join(f'--{flag}' for flag in AD_HOC_FLAGS)} and "
            "--seed; to change one, copy the recipe file, edit it and pass its path."
        )
    try:
        recipe = recipes.load(options.recipe)
    except (FileNotFoundError, ValueError) as error:
        parser.error(str(error))
    if recipe.model not in MODELS:
        parser.error(f"{recipe.path.name}: model {recipe.model!r} is not one of {sorted(MODELS)}.")
    return _Plan(
        model=recipe.model,
        init=recipe.init,
        steps=recipe.steps,
        seed=recipe.seed,
        data=recipe_data(recipe),
        loss_label=recipe.loss,
        build_loss=lambda: build_loss(recipe.loss),
        build_optimiser=lambda model, steps, batch: build_optimiser(
            recipe.optimiser, model, steps, batch
        ),
        lr=recipe.optimiser["lr"],
        recipe=recipe,
        freeze_encoder_bn=recipe.freeze_encoder_bn,
        validation=recipe.validation,
        clip_grad_norm=recipe.optimiser.get("clip_grad_norm"),
        discriminator_lr=recipe.optimiser.get("discriminator_lr"),
        discriminator_betas=tuple(recipe.optimiser.get("discriminator_betas", DISCRIMINATOR_BETAS)),
    )


def _plan_from_flags(options: argparse.Namespace, parser: argparse.ArgumentParser) -> _Plan:
    if options.model is None:
        parser.error("name a model to train, or a recipe with --recipe NAME.")
    if options.export and options.profile is None:
        parser.error("--export needs an explicit --profile, so that the recorded command repeats.")
    family = FAMILIES.get(options.model, INPAINTING)
    loss_name = family.losses[0] if options.loss is None else options.loss
    if loss_name not in family.losses:
        parser.error(
            f"{options.model} trains with --loss {' or '.join(family.losses)}, not {loss_name}."
        )
    lr = family.lr if options.lr is None else options.lr
    chosen = config.profile(options.profile)
    seed = 0 if options.seed is None else options.seed
    return _Plan(
        model=options.model,
        init=options.init,
        steps=chosen.train_steps if options.steps is None else options.steps,
        seed=seed,
        data={"size": chosen.image_size, "batch_size": chosen.batch_size},
        loss_label=loss_name,
        build_loss=lambda: LOSSES[loss_name] if loss_name in LOSSES else LAZY_LOSSES[loss_name](),
        build_optimiser=lambda model, steps, batch: family.optimiser(model, steps, batch, lr),
        lr=lr,
    )


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=COMMAND,
        description="Train an inpainting model on the course's offline data, with checkpoints "
        "and resume, from a recipe file (--recipe NAME) or from flags; optionally export the "
        "weights into course_lib/weights.",
    )
    parser.add_argument(
        "model", nargs="?", choices=sorted(MODELS), help="which model to train (without --recipe)"
    )
    parser.add_argument(
        "--recipe",
        metavar="NAME",
        help=f"run course_lib/recipes/NAME.toml (or a path to a .toml file); one of: "
        f"{', '.join(recipes.names())}. A shipped recipe's weights are exported as NAME "
        "(add --overwrite to replace the shipped file, or --export OTHER)",
    )
    parser.add_argument(
        "--profile", choices=sorted(config.PROFILES), help="image and batch size (default: auto)"
    )
    parser.add_argument("--steps", type=_positive_int, help="total steps (default: the profile's)")
    parser.add_argument(
        "--run-dir",
        required=True,
        type=_run_dir_argument,
        help="folder for checkpoint, history, samples",
    )
    parser.add_argument(
        "--checkpoint-every",
        type=_positive_int,
        default=DEFAULT_CHECKPOINT_EVERY,
        metavar="N",
        help=f"write a checkpoint every N steps and after the last (default "
        f"{DEFAULT_CHECKPOINT_EVERY}); a run killed in between resumes from the last one",
    )
    parser.add_argument(
        "--lr",
        type=_learning_rate,
        help=f"learning rate (default {DEFAULT_LR} for Adam; for mae_* models the base rate per "
        f"256 images, default {MAE_BASE_LR})",
    )
    parser.add_argument(
        "--loss",
        choices=sorted({*LOSSES, *LAZY_LOSSES}),
        help="training loss: l1 (L_valid + 6 L_hole, the default), the paper's full loss "
        "(lesson 04) or mae (the only one, and the default, for mae_* models)",
    )
    parser.add_argument(
        "--init",
        metavar="WEIGHTS",
        help="start from these shipped weights (e.g. pconv_unet_small) instead of random ones",
    )
    parser.add_argument("--seed", type=int, help="seed of weights and masks (default 0)")
    parser.add_argument("--device", help="cpu, cuda, cuda:N or mps (default: the best available)")
    parser.add_argument("--no-resume", action="store_true", help="start over in --run-dir")
    parser.add_argument(
        "--export", metavar="NAME", help="save the weights as course_lib/weights/NAME"
    )
    parser.add_argument("--overwrite", action="store_true", help="let --export replace weights")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    return parser


def _machine() -> str:
    """What the run ran on, for the weights' record: the same recipe gives the same weights
    on the same CPU kernels and thread count, and differs in the last bits elsewhere."""
    import platform

    model = platform.processor() or platform.machine()
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    kernels = torch.backends.cpu.get_cpu_capability()
    return f"{model}, torch CPU kernels {kernels}, {torch.get_num_threads()} threads"


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line with ``argv`` (default ``sys.argv[1:]``); return the exit status."""
    arguments = list(sys.argv[1:] if argv is None else argv)
    parser = _parser()
    options = parser.parse_args(arguments)
    if options.recipe is not None:
        plan = _plan_from_recipe(options, parser)
        # A shipped recipe exports its own weight file; a recipe of your own only where told.
        shipped = plan.recipe.path.parent == recipes.RECIPE_FOLDER
        export = options.export or (plan.recipe.name if shipped else None)
    else:
        plan = _plan_from_flags(options, parser)
        export = options.export
    if export and not options.overwrite:
        existing = [str(file) for file in weights_files(export) if file.exists()]
        if existing:  # refuse before training, not after an hour of it
            parser.error(
                f"{', '.join(existing)} exist(s); add --overwrite to replace them, or --export "
                "ANOTHER_NAME to keep both (e.g. to compare a rerun with the shipped file)."
            )
    try:
        device = config.device(options.device)
    except ValueError as error:
        parser.error(str(error))

    config.seed_everything(plan.seed)  # before building the model: same initial weights
    try:
        model = MODELS[plan.model]()
    except ImportError as error:
        raise SystemExit(
            f"{COMMAND}: cannot build {plan.model!r}: {error}. The module that defines it is "
            "not importable in this version of course_lib."
        ) from error
    if plan.init:
        load_weights(model, plan.init)  # checked: same network, intact file
    if plan.freeze_encoder_bn:
        if not hasattr(model, "freeze_encoder_bn"):
            parser.error(f"freeze_encoder_bn is a U-Net fine-tuning stage; {plan.model} has none.")
        model.freeze_encoder_bn()
    data = InpaintingBatches(**plan.data, seed=plan.seed)
    loss_fn = plan.build_loss()
    optimizer, scheduler = plan.build_optimiser(model, plan.steps, data.batch_size)
    discriminator_optimizer = (
        None
        if plan.discriminator_lr is None
        else torch.optim.Adam(
            loss_fn.discriminator.parameters(),
            lr=plan.discriminator_lr,
            betas=plan.discriminator_betas,
        )
    )
    # The same pairs whatever the run's seed, so that learning curves of recipes compare; drawn
    # from their own generators, so the global ones (and the run) are left untouched.
    validation = (
        None
        if plan.validation is None
        else validation_pairs(
            data.size, plan.validation["pairs"], centred_box=plan.validation.get("centred_box")
        )
    )
    result = train(
        model,
        loss_fn,
        data,
        plan.steps,
        optimizer=optimizer,
        scheduler=scheduler,
        device=device,
        run_dir=options.run_dir,
        checkpoint_every=options.checkpoint_every,
        resume=not options.no_resume,
        seed=plan.seed,
        progress=not options.quiet,
        validation=validation,
        validate_every=None if plan.validation is None else plan.validation["every"],
        discriminator_optimizer=discriminator_optimizer,
        clip_grad_norm=plan.clip_grad_norm,
    )
    last = result.history[-1]
    print(
        f"{plan.model}: {plan.steps} steps, final loss {last['loss']:.4f}, run in {options.run_dir}"
    )
    if export:
        metadata = {
            "command": f"{COMMAND} {shlex.join(arguments)}",
            **(
                {"recipe": plan.recipe.name, "recipe_sha256": plan.recipe.sha256}
                if plan.recipe
                else {"profile": config.profile(options.profile).name}
            ),
            "steps": plan.steps,
            "init": plan.init,
            # Which file the run started from: a later stage 1 of the same name is another one.
            "init_sha256": file_sha256(weights_files(plan.init)[0]) if plan.init else None,
            "loss": plan.loss_label,
            "lr": plan.lr,
            "optimizer": type(optimizer).__name__,
            "scheduler": type(scheduler).__name__ if scheduler is not None else None,
            "seed": plan.seed,
            "data": data.config,
            "device": device.type,
            "amp": device.type == "cuda",
            "final_loss": last["loss"],
            # The learning curve, [step, hole-only validation PSNR], for lessons to plot.
            "validation_curve": [
                [entry["step"], entry["val_hole_psnr"]]
                for entry in result.history
                if "val_hole_psnr" in entry
            ],
            "seconds": round(result.seconds, 1),
            "machine": _machine(),
        }
        path = export_weights(model, export, metadata, overwrite=options.overwrite)
        print(f"exported {path} and {path.with_suffix('.json').name}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
