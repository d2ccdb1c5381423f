"""Statistics that see texture, where PSNR and SSIM see only closeness (lesson 04).

PSNR rewards the per-pixel compromise: where the context does not decide what belongs in a
hole, the grey average of every plausible answer scores best, and a sharp, plausible fill
that is shifted by half a stripe scores worse than a blur. Two statistics ask instead whether a
fill *looks like* the truth, whatever its exact pixels:

* :func:`gradient_energy_ratio`: how much detail the fill has, relative to the truth. The
  mean squared difference between neighbouring pixels inside the hole, of the composite
  divided by that of the true image: 1 for a fill as busy as the truth, near 0 for a blur,
  above 1 for noise. The evaluation harness scores each pair's distance from 1 on a log
  scale, ``grad_gap = |log2 ratio|`` (0 is best; 1 means half or twice the truth's energy).
* :func:`hole_correlation`: whether a fill is *in step* with the truth, the correlation of
  fill and truth over the hole (lesson 05: do stripes continue behind a hole?).
* :func:`frechet_distance` of hole features: each pair's fill is described by the mean
  response of the course's feature network (its ``pool2`` maps, 64 edge and texture
  detectors) over the hole, and the set of fills of a method is compared with the set of
  true holes by the Fréchet distance between Gaussians fitted to the two sets (the statistic
  behind FID, here with a small network and on hole crops). It needs many pairs: it is a
  property of a method's fills taken together, not of one fill.

:func:`paired_frechet` compares two methods' distances on the same pairs with a bootstrap
interval, as :func:`course_lib.statistics.paired_difference` does for per-pair scores.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from course_lib.statistics import BOOTSTRAP_RESAMPLES, BOOTSTRAP_SEED, CONFIDENCE, PairedDifference

# Gradients below one grey level per pixel count as flat: without this floor, a flat true
# region (energy 0) would make any fill's ratio infinite.
ENERGY_FLOOR = (1 / 255) ** 2
FEATURE_LAYER = 1  # pool2 of course_features: 64 channels at a quarter of the resolution


def gradient_energy(image: torch.Tensor, hole: torch.Tensor) -> torch.Tensor:
    """Mean squared difference of neighbouring pixels that both lie in the hole, per image.

    ``image`` ``(B, C, H, W)``, ``hole`` ``(B, 1, H, W)`` (1 = hole). Only neighbours inside
    the hole count: the seam between fill and context is the total-variation term's business,
    not texture. Returns ``(B,)``; 0 for a hole with no two neighbouring pixels.
    """
    energy, count = image.new_zeros(image.shape[0]), image.new_zeros(image.shape[0])
    for dim in (-1, -2):  # horizontal, then vertical neighbours
        step = image.diff(dim=dim).pow(2)  # (B, C, H, W - 1) or (B, C, H - 1, W)
        inside = hole.narrow(dim, 0, hole.shape[dim] - 1) * hole.narrow(dim, 1, hole.shape[dim] - 1)
        energy = energy + (step * inside).sum(dim=(1, 2, 3))
        count = count + inside.sum(dim=(1, 2, 3)) * image.shape[1]
    return energy / count.clamp(min=1)


def gradient_energy_ratio(
    composite: torch.Tensor, image: torch.Tensor, hole: torch.Tensor
) -> torch.Tensor:
    """``(E(composite) + floor) / (E(image) + floor)`` in the hole, per pair ``(B,)``."""
    return (gradient_energy(composite, hole) + ENERGY_FLOOR) / (
        gradient_energy(image, hole) + ENERGY_FLOOR
    )


def hole_correlation(
    composite: torch.Tensor, image: torch.Tensor, hole: torch.Tensor
) -> torch.Tensor:
    """How well a fill continues the truth *in step*: per pair ``(B,)``, the correlation of
    the composite with the true image over the hole's pixels, averaged over the channels.

    1 when the fill follows every rise and fall of the truth (up to brightness and contrast),
    about 0 for a flat fill or a texture shifted by a quarter period, -1 for one shifted by
    half a period (lesson 05 asks whether a network continues stripes behind a hole). A
    channel that is flat in the fill or in the truth counts as 0.
    """
    values = []
    for fill, truth, region in zip(composite, image, hole[:, 0].bool(), strict=True):
        a = fill[:, region] - fill[:, region].mean(dim=1, keepdim=True)  # (C, N)
        b = truth[:, region] - truth[:, region].mean(dim=1, keepdim=True)
        norms = a.norm(dim=1) * b.norm(dim=1)  # (C,)
        values.append(((a * b).sum(dim=1) / norms.clamp(min=1e-12)).mean())
    return torch.stack(values)


@torch.no_grad()
def hole_features(images: torch.Tensor, hole: torch.Tensor, network=None) -> torch.Tensor:
    """The mean feature vector of each image over its hole ``(B, 64)``, float64.

    ``network``: a feature extractor of :mod:`course_lib.feature_nets` (default the course's
    own); its ``pool2`` maps are averaged over the hole, each position weighted by the share
    of hole pixels it covers.
    """
    from course_lib.feature_nets import course_features

    network = network if network is not None else course_features()
    maps = network(images.float())[FEATURE_LAYER].double()  # (B, C, h, w)
    weight = F.adaptive_avg_pool2d(hole.double(), maps.shape[-2:])  # (B, 1, h, w)
    return (maps * weight).sum(dim=(2, 3)) / weight.sum(dim=(2, 3)).clamp(min=1e-12)


def frechet_distance(first: np.ndarray, second: np.ndarray) -> float:
    """Fréchet distance between Gaussians fitted to two sets of vectors ``(n, d)``:
    ``|mu1 - mu2|^2 + tr(S1) + tr(S2) - 2 tr((S1 S2)^(1/2))``."""
    return float(_frechet_batch(first[None], second[None])[0])


def _frechet_batch(first: np.ndarray, second: np.ndarray) -> np.ndarray:
    """:func:`frechet_distance` of each of R pairs of sets ``(R, n, d)``, at once."""
    mean_gap = ((first.mean(axis=1) - second.mean(axis=1)) ** 2).sum(axis=1)  # (R,)
    cov_first, cov_second = _covariances(first), _covariances(second)  # (R, d, d) each
    # tr((S1 S2)^(1/2)) is the sum of the square roots of S1 S2's eigenvalues, which are real
    # and >= 0 (S1 S2 is similar to S1^(1/2) S2 S1^(1/2)); rounding can leave tiny negatives.
    eigenvalues = np.linalg.eigvals(cov_first @ cov_second).real.clip(min=0)  # (R, d)
    traces = np.trace(cov_first, axis1=1, axis2=2) + np.trace(cov_second, axis1=1, axis2=2)
    return mean_gap + traces - 2 * np.sqrt(eigenvalues).sum(axis=1)


def _covariances(sets: np.ndarray) -> np.ndarray:
    centred = sets - sets.mean(axis=1, keepdims=True)  # (R, n, d)
    return centred.transpose(0, 2, 1) @ centred / (sets.shape[1] - 1)  # (R, d, d)


def paired_frechet(
    first: Sequence, second: Sequence, truth: Sequence, resamples: int = BOOTSTRAP_RESAMPLES
) -> PairedDifference:
    """Fréchet distance to ``truth`` of ``first`` minus that of ``second`` (lower is better).

    The three are feature vectors ``(n, d)`` of the same n pairs, in the same order. The 95%
    interval resamples the pairs (the same resample for both methods and the truth), with the
    course's bootstrap seed: a difference whose interval excludes 0 is one more pairs would
    not undo.
    """
    a, b, t = (np.asarray(values, dtype=np.float64) for values in (first, second, truth))
    if not a.shape == b.shape == t.shape or a.ndim != 2:
        raise ValueError(
            f"paired_frechet needs three (n, d) arrays of the same pairs, got shapes {a.shape}, "
            f"{b.shape} and {t.shape}."
        )
    if len(a) < 3:
        return PairedDifference(0, None, None, None, higher_is_better=False)
    difference = frechet_distance(a, t) - frechet_distance(b, t)
    generator = torch.Generator().manual_seed(BOOTSTRAP_SEED)
    picks = torch.randint(len(a), (resamples, len(a)), generator=generator).numpy()  # (R, n)
    resampled = _frechet_batch(a[picks], t[picks]) - _frechet_batch(b[picks], t[picks])  # (R,)
    tail = (1 - CONFIDENCE) / 2
    low, high = np.quantile(resampled, [tail, 1 - tail])
    return PairedDifference(len(a), difference, float(low), float(high), higher_is_better=False)
