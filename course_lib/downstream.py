"""A labelled task for what masked pre-training is for (lesson 06): features that transfer.

MAE's claim is not that it inpaints well but that hiding most of an image and rebuilding it
teaches an encoder features a later task can use. To test that offline, the course needs
labels it can make itself. Procedural scenes carry them: every scene is drawn from a
description, so it is known which background it has and which object covers the most
pixels. Two tasks:

* ``"background"``: the kind of the scene's background (stripes, checkerboard, grating, dots,
  smooth): texture, the thing a patch-level model sees first;
* ``"largest_shape"``: the kind of the object with the most visible pixels (circle,
  rectangle, triangle, ellipse, star): a shape, which needs several patches together.

:func:`labelled_scenes` draws a split of either (train, validation and test scenes come from
seeds no other part of the course uses); :func:`pooled_encoder_features` turns an MAE
encoder's tokens into one vector per image; :func:`linear_probe` trains a linear classifier
on frozen features and says which test images it gets right (the paper's linear probing, in miniature:
the features are standardised first, as the paper's batch norm without affine parameters
does); :func:`fine_tune` trains the whole encoder with a linear head and records the test
accuracy along the way (the paper's fine-tuning, in miniature).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from course_lib.data import BACKGROUNDS, SHAPES, ProceduralScenes, Scene, render_scene, shape_mask
from course_lib.validate import check_int

__all__ = [
    "SPLIT_SEEDS",
    "FineTuning",
    "TASKS",
    "fine_tune",
    "label_of",
    "labelled_scenes",
    "linear_probe",
    "pooled_encoder_features",
]

TASKS: dict[str, tuple[str, ...]] = {"background": BACKGROUNDS, "largest_shape": SHAPES}
"""Each task's classes, in label order."""

SPLIT_SEEDS = {"train": 30_000, "validation": 31_000, "test": 32_000}
"""Scene seeds of each split: not training's 0, the evaluation's 10,000 or validation's 20,000."""


def label_of(scene: Scene, labels: torch.Tensor, task: str) -> int:
    """The class index of a scene drawn as ``labels`` (its label map ``(H, W)``)."""
    if task == "background":
        return BACKGROUNDS.index(scene.background.kind)
    if task != "largest_shape":
        raise ValueError(f"unknown task {task!r}; choose one of {sorted(TASKS)}.")
    counts = torch.bincount(labels.flatten())
    counts[0] = 0  # the background is not an object
    largest = int(counts.argmax())
    if largest == 0:
        raise ValueError("the scene shows no object, so it has no largest shape.")
    # The label map numbers the visible objects again; find the drawn object at one of its
    # pixels: the last one whose shape covers it (later objects are drawn on top).
    row, col = (labels == largest).nonzero()[0].tolist()
    height, width = labels.shape
    covering = [shape for shape, _ in scene.objects if shape_mask(shape, height, width)[row, col]]
    return SHAPES.index(covering[-1].kind)


def labelled_scenes(
    task: str, split: str, count: int, size: int = 64
) -> tuple[torch.Tensor, torch.Tensor]:
    """``count`` scenes of ``split`` with their labels: ``(images (N, 3, H, W), labels (N,))``."""
    if task not in TASKS:
        raise ValueError(f"unknown task {task!r}; choose one of {sorted(TASKS)}.")
    if split not in SPLIT_SEEDS:
        raise ValueError(f"unknown split {split!r}; choose one of {sorted(SPLIT_SEEDS)}.")
    count = check_int(count, "count", 1)
    scenes = ProceduralScenes(size=size, seed=SPLIT_SEEDS[split], length=count)
    images, targets = [], []
    for index in range(count):
        scene = scenes.scene(index)
        image, labels = render_scene(scene, size, size)
        images.append(image)
        targets.append(label_of(scene, labels, task))
    return torch.stack(images), torch.tensor(targets)


@torch.no_grad()
def pooled_encoder_features(
    model: nn.Module, images: torch.Tensor, batch: int = 64
) -> torch.Tensor:
    """The MAE encoder's tokens for every patch (no masking), averaged: ``(N, dim)``.

    The model is run in eval mode and its previous mode restored."""
    was_training = model.training
    model.eval()
    try:
        pooled = [
            model.encode(images[start : start + batch], ratio=0.0)[0].mean(dim=1)
            for start in range(0, len(images), batch)
        ]  # each (b, dim)
    finally:
        model.train(was_training)
    return torch.cat(pooled)


def linear_probe(
    train_features: torch.Tensor,
    train_labels: torch.Tensor,
    test_features: torch.Tensor,
    test_labels: torch.Tensor,
    classes: int,
    steps: int = 500,
    lr: float = 0.05,
    seed: int = 0,
) -> torch.Tensor:
    """Which test images a linear classifier trained on frozen ``train_features`` ``(N, D)``
    gets right: ``(N_test,)`` bool, whose mean is the test accuracy (per image, so that two
    encoders can be compared pair by pair on the same test images).

    The features are standardised with the training set's mean and deviation (both sets
    alike), then a linear layer is fitted by full-batch Adam on the cross-entropy for
    ``steps`` steps, from weights seeded with ``seed``.
    """
    if train_features.dim() != 2 or test_features.shape[1:] != train_features.shape[1:]:
        raise ValueError(
            "features must be (N, D) with the same D for both sets, got "
            f"{tuple(train_features.shape)} and {tuple(test_features.shape)}."
        )
    mean, std = train_features.mean(dim=0), train_features.std(dim=0).clamp(min=1e-6)
    train_x, test_x = (train_features - mean) / std, (test_features - mean) / std
    generator = torch.Generator().manual_seed(seed)
    weight = (torch.randn(classes, train_x.shape[1], generator=generator) * 0.01).requires_grad_()
    bias = torch.zeros(classes, requires_grad=True)
    optimizer = torch.optim.Adam([weight, bias], lr=lr)
    for _ in range(check_int(steps, "steps", 1)):
        optimizer.zero_grad()
        F.cross_entropy(train_x @ weight.T + bias, train_labels).backward()
        optimizer.step()
    with torch.no_grad():
        predicted = (test_x @ weight.T + bias).argmax(dim=1)
    return predicted == test_labels


def _correct(
    classify: nn.Module, images: torch.Tensor, labels: torch.Tensor, batch: int = 128
) -> torch.Tensor:
    with torch.no_grad():
        predicted = torch.cat(
            [classify(images[i : i + batch]).argmax(dim=1) for i in range(0, len(images), batch)]
        )
    return predicted == labels  # (N,) bool


@dataclass
class FineTuning:
    """What :func:`fine_tune` returns: ``curve``, the test accuracy ``[(step, accuracy), ...]``,
    and ``correct``, which test images the final model gets right ``(N_test,)`` bool."""

    curve: list[tuple[int, float]]
    correct: torch.Tensor


class _EncoderClassifier(nn.Module):
    """An MAE's encoder on every patch (no masking), its tokens averaged, a linear head."""

    def __init__(self, model: nn.Module, classes: int) -> None:
        super().__init__()
        self.model = model
        self.head = nn.Linear(model.patch_embed.out_features, classes)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        latent = self.model.encode(images, ratio=0.0)[0]  # (B, L, dim)
        return self.head(latent.mean(dim=1))  # (B, classes)


def fine_tune(
    model: nn.Module,
    train_set: tuple[torch.Tensor, torch.Tensor],
    test_set: tuple[torch.Tensor, torch.Tensor],
    classes: int,
    steps: int,
    batch_size: int = 64,
    lr: float = 1e-3,
    evaluate_every: int = 100,
    seed: int = 0,
) -> FineTuning:
    """Fine-tune ``model``'s encoder with a new linear head on ``train_set`` ``(images,
    labels)``, scoring ``test_set`` at step 0, every ``evaluate_every`` steps and at the end.

    Cross-entropy, AdamW (weight decay 0.05) at ``lr`` after a linear warm-up over the first
    tenth of the steps, batches drawn at random with ``seed``. ``model`` is changed in place
    (pass a copy to keep it); its decoder is not used. Compare a pre-trained encoder with
    the same network from its random initialisation, at the same steps (lesson 06).
    """
    steps = check_int(steps, "steps", 1)
    evaluate_every = check_int(evaluate_every, "evaluate_every", 1)
    images, labels = train_set
    generator = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)  # the head's initial weights
    classify = _EncoderClassifier(model, classes)
    optimizer = torch.optim.AdamW(classify.parameters(), lr=lr, weight_decay=0.05)
    warmup = max(1, steps // 10)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: min(1.0, (step + 1) / warmup)
    )
    correct = _correct(classify.eval(), *test_set)
    curve = [(0, correct.float().mean().item())]
    for step in range(1, steps + 1):
        classify.train()
        chosen = torch.randint(len(images), (batch_size,), generator=generator)
        loss = F.cross_entropy(classify(images[chosen]), labels[chosen])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        schedule.step()
        if step % evaluate_every == 0 or step == steps:
            correct = _correct(classify.eval(), *test_set)
            curve.append((step, correct.float().mean().item()))
    return FineTuning(curve, correct)
