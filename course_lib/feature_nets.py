"""Frozen feature networks for the perceptual, style and high-receptive-field losses (lesson 04).

A perceptual loss compares images through the eyes of a trained network: two images are
close when the network's feature maps of them are close. This module provides those networks,
all with the same interface, a :class:`FeatureExtractor`:

* input: images ``(B, 3, H, W)`` in ``[0, 1]``; the extractor normalises them itself with the
  ImageNet mean and standard deviation (forgetting that, or doing it twice, silently changes
  the effective weight of every feature loss);
* output: a list of three feature maps, after the first, second and third max-pooling
  (``pool1``, ``pool2``, ``pool3``: ``(B, C_p, H / 2**p, W / 2**p)``);
* frozen: eval mode and ``requires_grad=False`` on every weight. Gradients still flow back to
  the *input image*, which is what a loss needs.

Three constructors:

* :func:`vgg16_features`: VGG-16 trained on ImageNet, the network of the partial-convolution
  paper. Its weights come from torchvision's file in the torch.hub cache; without the file it
  raises :class:`~course_lib.metrics.MissingWeightsError` saying where to put it. There is no
  fallback to a random network: a random network gives losses that look plausible and
  teach the model nothing useful.
* :func:`course_features`: a small network (widths 32/64/128) the course trains itself,
  offline, in a few minutes on a CPU, and ships in ``course_lib/weights``. It is trained to
  tell which of 14 sources a 32x32 crop comes from: one of the 9 training photographs, or one
  of the 5 background textures of :class:`~course_lib.data.ProceduralScenes`. Telling stripes
  from gratings and gravel from grass needs edge and texture detectors, which is what a
  perceptual loss should measure. Recreate it with::

      python -m course_lib.feature_nets train --steps 600 --threads 1 --export course_features

  ``dilated=True`` gives the same network in its *dilated* (à trous) form, the trick behind
  the dilated segmentation ResNet of LaMa's high-receptive-field loss: the second and third
  poolings keep the resolution and the later convolutions are dilated instead, so the same
  weights give 2x and 4x denser ``pool2`` and ``pool3`` maps with the same receptive field.
* :func:`default_features`: VGG-16 when its weights are on this machine, otherwise the course
  network, with a sentence saying which one and why that matters.
"""

from __future__ import annotations

import argparse
import math
import os
import shlex
import sys
import time
import zipfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
import torchvision
from torch import nn
from tqdm.auto import tqdm

from course_lib.checkpoints import export_weights, load_weights, weights_files
from course_lib.data import BACKGROUNDS, PhotoPatches, ProceduralScenes, photo_names
from course_lib.metrics import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    MissingWeightsError,
    hub_checkpoints,
    missing_weights_error,
    torchvision_weights_how,
)

__all__ = [
    "CLASSES",
    "COURSE_WEIGHTS",
    "COURSE_WIDTHS",
    "LAYERS",
    "FeatureExtractor",
    "MissingWeightsError",
    "course_features",
    "default_features",
    "main",
    "train_course_features",
    "vgg16_features",
    "vgg16_weights_file",
]

LAYERS: tuple[str, ...] = ("pool1", "pool2", "pool3")
"""The feature maps every extractor returns, in order."""


class FeatureExtractor(nn.Module):
    """A frozen network that maps images in ``[0, 1]`` to the list ``[pool1, pool2, pool3]``.

    ``stages[p]`` turns the output of stage ``p - 1`` (the normalised image for ``p = 0``) into
    feature map ``p``. The image is normalised with the ImageNet mean and standard deviation
    inside :meth:`forward`, so callers always pass plain ``[0, 1]`` images. ``name`` says
    which network this is (``"vgg16"``, ``"course"`` or ``"course_dilated"``).

    The extractor is frozen: weights never train, and :meth:`train` leaves it in eval mode
    (a loss network must compute the same function at every step).
    """

    def __init__(self, stages: Sequence[nn.Module], name: str) -> None:
        super().__init__()
        self.stages = nn.ModuleList(stages)
        self.name = name
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1))
        self.requires_grad_(False)
        self.eval()

    def train(self, mode: bool = True) -> FeatureExtractor:
        """Stay in eval mode whatever ``mode`` says: the extractor is frozen."""
        return super().train(False)

    @property
    def minimum_size(self) -> int:
        """The smallest height and width whose last feature map is at least 1x1."""
        return 2 ** len(self.stages)

    def forward(self, image: torch.Tensor) -> list[torch.Tensor]:
        """Feature maps ``[pool1, pool2, pool3]`` of ``image`` ``(B, 3, H, W)`` in ``[0, 1]``."""
        if not isinstance(image, torch.Tensor) or image.dim() != 4 or image.shape[1] != 3:
            shape = tuple(image.shape) if isinstance(image, torch.Tensor) else type(image)
            raise ValueError(
                f"the {self.name} feature network takes RGB images (B, 3, H, W) in [0, 1], got "
                f"{shape}; grey images can be repeated to 3 channels with x.expand(-1, 3, -1, -1)."
            )
        if not image.is_floating_point():
            raise ValueError(
                f"the {self.name} feature network takes float images in [0, 1], got dtype "
                f"{image.dtype}; divide uint8 pixels by 255."
            )
        if min(image.shape[-2:]) < self.minimum_size:
            raise ValueError(
                f"the {self.name} feature network needs images of at least {self.minimum_size}x"
                f"{self.minimum_size} (it pools {len(self.stages)} times), got "
                f"{image.shape[-2]}x{image.shape[-1]}."
            )
        x = (image - self.mean.to(image.dtype)) / self.std.to(image.dtype)  # (B, 3, H, W)
        maps = []
        for stage in self.stages:
            x = stage(x)  # (B, C_p, H / 2**p, W / 2**p) (dilated form: denser)
            maps.append(x)
        return maps


# ---------------------------------------------------------------------------------------------
# VGG-16, ImageNet weights from torchvision
# ---------------------------------------------------------------------------------------------

# Index ranges of torchvision's vgg16().features that end at pool1, pool2 and pool3: two convs
# (+ ReLU) then a max-pool, two more then a pool, three more then a pool.
VGG16_STAGES: tuple[tuple[int, int], ...] = ((0, 5), (5, 10), (10, 17))
VGG16_URL = torchvision.models.VGG16_Weights.IMAGENET1K_V1.url


def vgg16_weights_file() -> Path:
    """Where torchvision keeps VGG-16's ImageNet weights: ``<torch.hub.get_dir()>/checkpoints/``."""
    return hub_checkpoints() / VGG16_URL.rsplit("/", 1)[-1]


def vgg16_features(weights_path: str | os.PathLike | None = None) -> FeatureExtractor:
    """VGG-16 trained on ImageNet, cut after pool1, pool2 and pool3 (64, 128, 256 channels).

    ``weights_path``: torchvision's ``vgg16-397923af.pth``; by default the copy in the
    torch.hub cache (:func:`vgg16_weights_file`; ``TORCH_HOME`` moves that cache). Nothing is
    downloaded here: a missing file raises :class:`~course_lib.metrics.MissingWeightsError`
    that says how to get it. Only the convolutions up to pool3 are loaded (about 1.7 million
    weights of the file's 138 million).
    """
    default = vgg16_weights_file()
    path = Path(weights_path) if weights_path is not None else default
    if not path.is_file():
        raise missing_weights_error(
            "VGG-16 features",
            [(path, torchvision_weights_how("vgg16", "IMAGENET1K_V1", VGG16_URL, default))],
            note="course_lib.feature_nets.course_features() is the offline alternative. ",
        )
    # Built on the "meta" device: shapes without numbers, so every number must come from the
    # file (strict loading with assign=True) and the unused classifier costs nothing.
    with torch.device("meta"):
        layers = torchvision.models.vgg16(weights=None).features
    stages = [nn.Sequential(*layers[start:end]) for start, end in VGG16_STAGES]
    # mmap reads only the tensors used, not the whole 528 MB file; it needs the zip format
    # of torch.save, and files saved by older versions of torch are read whole.
    mmap = zipfile.is_zipfile(path)
    state = torch.load(path, map_location="cpu", weights_only=True, mmap=mmap)
    if not isinstance(state, dict):
        raise ValueError(f"{path} holds no state dict; expected torchvision's VGG-16 weights.")
    for stage, (start, end) in zip(stages, VGG16_STAGES, strict=True):
        wanted = {}
        for offset, index in enumerate(range(start, end)):
            for name in ("weight", "bias"):
                key = f"features.{index}.{name}"
                if key in state:
                    wanted[f"{offset}.{name}"] = state[key]
        try:
            stage.load_state_dict(wanted, strict=True, assign=True)
        except RuntimeError as error:
            raise ValueError(
                f"{path} is not torchvision's VGG-16 ImageNet checkpoint ({error}); download "
                f"{VGG16_URL} again."
            ) from error
    return FeatureExtractor(stages, name="vgg16")


# ---------------------------------------------------------------------------------------------
# The course's own feature network
# ---------------------------------------------------------------------------------------------

COURSE_WIDTHS: tuple[int, int, int] = (32, 64, 128)
COURSE_WEIGHTS = "course_features"
"""Name of the shipped weights (``course_lib/weights/course_features.pt`` + ``.json``)."""


def _course_stage(
    in_channels: int, out_channels: int, dilation: int, pool: nn.Module
) -> nn.Sequential:
    """Two 3x3 convolutions with ReLU, then ``pool``: one VGG-style block."""
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, 3, padding=dilation, dilation=dilation),
        nn.ReLU(),
        nn.Conv2d(out_channels, out_channels, 3, padding=dilation, dilation=dilation),
        nn.ReLU(),
        pool,
    )


def _dense_pool(dilation: int) -> nn.Sequential:
    """A 2x2 max-pool that keeps the resolution: the stride-2 pool evaluated at every position.

    The window reaches ``dilation`` pixels right and down, so the map is padded there. With
    zeros, which is exact: the pool follows a ReLU, so its inputs are never negative.
    """
    return nn.Sequential(
        nn.ZeroPad2d((0, dilation, 0, dilation)),
        nn.MaxPool2d(2, stride=1, dilation=dilation),
    )


def _course_stages(dilated: bool) -> list[nn.Sequential]:
    """The three blocks of the course network, plain or dilated (same parameter names)."""
    widths = (3, *COURSE_WIDTHS)
    if not dilated:
        return [_course_stage(widths[p], widths[p + 1], 1, nn.MaxPool2d(2)) for p in range(3)]
    # A trous: once a pool keeps the resolution, the next convolutions must skip every other
    # pixel (dilation 2) to see what they saw on the half-size map; after a second such pool,
    # every fourth pixel. The first stage and pool are unchanged.
    return [
        _course_stage(widths[0], widths[1], 1, nn.MaxPool2d(2)),
        _course_stage(widths[1], widths[2], 1, _dense_pool(1)),
        _course_stage(widths[2], widths[3], 2, _dense_pool(2)),
    ]


def course_features(
    dilated: bool = False, weights: str | os.PathLike = COURSE_WEIGHTS
) -> FeatureExtractor:
    """The course's small feature network (32/64/128 channels at pool1/pool2/pool3), trained.

    ``weights``: the shipped ``course_features`` by default, or a path written by
    ``python -m course_lib.feature_nets train --export PATH``; the sha256 recorded next to the
    file is checked before loading. ``dilated=True`` returns the dilated form (same weights):
    ``pool2`` and ``pool3`` at half the input's resolution instead of a quarter and an
    eighth, equal to the plain maps at every second (``pool2``) and fourth (``pool3``)
    position.
    """
    extractor = FeatureExtractor(
        _course_stages(dilated), name="course_dilated" if dilated else "course"
    )
    load_weights(extractor, weights)
    extractor.requires_grad_(False)  # load_state_dict keeps the flags, but say it once more
    return extractor.eval()


def default_features() -> tuple[FeatureExtractor, str]:
    """``(extractor, description)``: VGG-16 if its ImageNet weights are here, else the course's.

    The description is a sentence for a notebook to print: which network the perceptual and
    style losses use, and why it matters.
    """
    path = vgg16_weights_file()
    if path.is_file():
        return vgg16_features(path), (
            "Feature network: VGG-16 trained on ImageNet (pool1, pool2, pool3), as in the "
            "partial-convolution paper; its loss weights (0.05 perceptual, 120 style) were "
            "tuned for these features."
        )
    return course_features(), (
        "Feature network: the course's own small network (32/64/128 channels, trained in a few "
        f"minutes on the offline photos and scenes), because VGG-16's ImageNet weights are not "
        f"on this machine ({path} is missing). Its features are smaller and less general, and "
        "the paper's weights (0.05 perceptual, 120 style) were tuned for VGG-16, so the "
        "balance between the loss terms differs from the paper's. To use VGG-16, put "
        "vgg16-397923af.pth there (see course_lib.feature_nets.vgg16_features)."
    )


# ---------------------------------------------------------------------------------------------
# Training the course network: which of 14 sources does a crop come from?
# ---------------------------------------------------------------------------------------------

CLASSES: tuple[str, ...] = tuple(f"photo:{name}" for name in photo_names("train")) + tuple(
    f"scene:{kind}" for kind in BACKGROUNDS
)
"""The 14 labels: the 9 training photographs, then the 5 scene backgrounds."""

SCENE_SIZE = 64  # scenes are drawn at the course's image size, then cropped
POOL = 1_000_000  # items per source before the stream starts over (below data.SEED_STRIDE)


class _Sources:
    """Labelled crops ``(B, 3, crop, crop)`` of the training photos and of scenes, by step."""

    def __init__(self, crop: int, seed: int) -> None:
        self.crop = crop
        self.seed = seed
        # Photos shrunk as for the course's 64-pixel patches (short side 128), so features
        # learn the scale of detail the lessons' images have.
        self.photos = PhotoPatches(
            crop, split="train", length=POOL, seed=seed, short_side=2 * SCENE_SIZE, flip=True
        )
        self.scenes = ProceduralScenes(SCENE_SIZE, length=POOL, seed=seed)

    def batch(self, step: int, size: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Batch ``step``: ``size // 2`` photo crops then scene crops, and their class indices."""
        photos = size // 2
        indices = [(step * photos + k) % POOL for k in range(photos)]
        images = [self.photos[i] for i in indices]
        labels = [CLASSES.index(f"photo:{self.photos.source_of(i)}") for i in indices]
        rng = np.random.default_rng((self.seed, step))  # crop positions and flips of this step
        for k in range(size - photos):
            index = (step * (size - photos) + k) % POOL
            scene = self.scenes[index][0]  # (3, 64, 64); the object labels are not needed
            top, left = rng.integers(0, SCENE_SIZE - self.crop + 1, size=2)
            crop = scene[:, top : top + self.crop, left : left + self.crop]
            images.append(crop.flip(-1) if rng.random() < 0.5 else crop)
            labels.append(CLASSES.index(f"scene:{self.scenes.background_of(index)}"))
        return torch.stack(images), torch.tensor(labels)


def train_course_features(
    steps: int = 600,
    batch_size: int = 64,
    crop: int = 32,
    lr: float = 2e-3,
    seed: int = 0,
    progress: bool = True,
) -> tuple[FeatureExtractor, dict[str, float]]:
    """Train the course network to name the source of a crop; return it and its statistics.

    The network (:func:`course_features`' three blocks) is followed, for training only, by a
    global average and a linear layer over the 14 :data:`CLASSES`; cross-entropy, Adam with
    a cosine-decaying learning rate, ``steps`` batches of ``crop x crop`` crops (half photos,
    half scenes, all new). Returns the frozen :class:`FeatureExtractor` (the classifier head
    is dropped) and ``{"final_loss", "heldout_accuracy", "seconds"}``; the accuracy is measured
    on 512 crops never drawn in training (scenes of another seed, other crops of the photos).
    """
    for name, value, low in (("steps", steps, 1), ("batch_size", batch_size, 2), ("crop", crop, 8)):
        if not isinstance(value, int) or isinstance(value, bool) or value < low:
            raise ValueError(f"{name} must be an int of at least {low}, got {value!r}.")
    if crop > SCENE_SIZE:
        raise ValueError(f"crop must be at most {SCENE_SIZE} (the scene size), got {crop}.")
    torch.manual_seed(seed)
    stages = nn.ModuleList(_course_stages(dilated=False))
    head = nn.Sequential(
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(COURSE_WIDTHS[-1], len(CLASSES))
    )
    mean = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)

    def logits(images: torch.Tensor) -> torch.Tensor:
        x = (images - mean) / std  # the same normalisation FeatureExtractor applies
        for stage in stages:
            x = stage(x)
        return head(x)  # (B, 14)

    parameters = [*stages.parameters(), *head.parameters()]
    optimizer = torch.optim.Adam(parameters, lr=lr)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=steps)
    sources = _Sources(crop, seed)
    began = time.perf_counter()
    loss = torch.tensor(math.nan)
    for step in tqdm(range(steps), desc="feature network", disable=not progress):
        images, labels = sources.batch(step, batch_size)
        loss = F.cross_entropy(logits(images), labels)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        schedule.step()
    seconds = time.perf_counter() - began
    with torch.no_grad():
        images, labels = _Sources(crop, seed + 1).batch(0, 512)
        accuracy = (logits(images).argmax(dim=1) == labels).float().mean().item()
    extractor = FeatureExtractor(list(stages), name="course")
    return extractor, {
        "final_loss": round(loss.item(), 4),
        "heldout_accuracy": round(accuracy, 4),
        "seconds": round(seconds, 1),
    }


COMMAND = "python -m course_lib.feature_nets"


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m course_lib.feature_nets train ...``: train and export the course network."""
    arguments = list(sys.argv[1:] if argv is None else argv)
    parser = argparse.ArgumentParser(
        prog=COMMAND, description="Train the course's feature network offline and export it."
    )
    commands = parser.add_subparsers(dest="command", required=True)
    train = commands.add_parser("train", help="train (and optionally export) the network")
    train.add_argument("--steps", type=int, default=600, help="training batches")
    train.add_argument("--batch-size", type=int, default=64, help="crops per batch")
    train.add_argument("--crop", type=int, default=32, help="side of the training crops")
    train.add_argument("--lr", type=float, default=2e-3, help="Adam's starting learning rate")
    train.add_argument("--seed", type=int, default=0, help="seed of weights and data")
    train.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    train.add_argument("--export", metavar="NAME", help="save as course_lib/weights/NAME")
    train.add_argument("--overwrite", action="store_true", help="let --export replace weights")
    train.add_argument("--quiet", action="store_true", help="no progress bar")
    options = parser.parse_args(arguments)
    if options.export and not options.overwrite:
        existing = [str(file) for file in weights_files(options.export) if file.exists()]
        if existing:  # refuse before training, not after it
            parser.error(f"{', '.join(existing)} exist(s); choose another name or add --overwrite.")
    if options.threads is not None:
        torch.set_num_threads(options.threads)
    extractor, statistics = train_course_features(
        options.steps,
        options.batch_size,
        options.crop,
        options.lr,
        options.seed,
        progress=not options.quiet,
    )
    print(
        f"course feature network: {options.steps} steps in {statistics['seconds']} s, final "
        f"loss {statistics['final_loss']}, held-out accuracy {statistics['heldout_accuracy']}"
    )
    if options.export:
        metadata = {
            "command": f"{COMMAND} {shlex.join(arguments)}",
            "network": "course",
            "widths": list(COURSE_WIDTHS),
            "task": "classify 32x32 crops by source: 9 training photos + 5 scene backgrounds",
            "classes": list(CLASSES),
            "data": "PhotoPatches(split='train', short_side=128, flip=True) crops and "
            "ProceduralScenes(64) crops, half each, seed as given",
            "steps": options.steps,
            "batch_size": options.batch_size,
            "crop": options.crop,
            "lr": options.lr,
            "seed": options.seed,
            "threads": torch.get_num_threads(),
            "device": "cpu",
            **statistics,
        }
        path = export_weights(extractor, options.export, metadata, overwrite=options.overwrite)
        print(f"exported {path} and {path.with_suffix('.json').name}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
