"""How sure is a table? Bootstrap intervals and paired comparisons (lesson 02).

A cell of an evaluation table is the mean over a few dozen image/mask pairs. Another draw of
pairs would give another mean, so every mean comes with a **95% bootstrap interval**: resample
the pairs with replacement many times, take the mean of each resample, and keep the middle
95% of those means. The resampling uses a fixed seed, so the interval is the same on every
run and every machine.

Two methods are compared **paired**: on the same images and the same masks, the difference
of their scores is taken pair by pair, and the interval is that of the mean difference. Easy
pairs are easy for both methods, so the pair-to-pair spread cancels and a small difference
can be told apart from noise. "A beats B" in the course means the paired interval of
A - B lies entirely above 0 (below 0 for L1, where lower is better).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

BOOTSTRAP_RESAMPLES = 2000
BOOTSTRAP_SEED = 0
CONFIDENCE = 0.95


def bootstrap_interval(
    values: Sequence[float] | torch.Tensor,
    resamples: int = BOOTSTRAP_RESAMPLES,
    seed: int = BOOTSTRAP_SEED,
) -> tuple[float, float]:
    """The 95% percentile bootstrap interval ``(low, high)`` of the mean of ``values``.

    Deterministic: the resampling indices come from a CPU generator seeded with ``seed``.
    A constant column has an interval of zero width; a single value is its own interval.
    """
    data = torch.as_tensor(values, dtype=torch.float64).flatten()  # (n,)
    if data.numel() == 0:
        raise ValueError("bootstrap_interval needs at least one value, got none.")
    if not torch.isfinite(data).all():
        raise ValueError(
            "bootstrap_interval got infinite or NaN values; cap PSNR first "
            "(course_lib.evaluate caps it at PSNR_CEILING) or drop the undefined samples."
        )
    if data.min() == data.max():  # a constant column: every resample has the same mean
        return data[0].item(), data[0].item()
    generator = torch.Generator().manual_seed(seed)
    picks = torch.randint(len(data), (resamples, len(data)), generator=generator)  # (R, n)
    means = data[picks].mean(dim=1)  # (R,) the mean of each resample
    tail = (1 - CONFIDENCE) / 2
    low, high = torch.quantile(means, torch.tensor([tail, 1 - tail], dtype=torch.float64))
    return low.item(), high.item()


@dataclass(frozen=True)
class PairedDifference:
    """Mean of ``a - b`` over the pairs both methods scored, with its 95% interval.

    ``verdict`` reads the interval: ``"better"`` when it excludes 0 on the side where ``a``
    is better, ``"worse"`` on the other side, ``"tie"`` when it contains 0 (the data cannot
    tell the two apart), ``"none"`` when there are no pairs.
    """

    count: int
    mean: float | None
    low: float | None
    high: float | None
    higher_is_better: bool = True

    @property
    def verdict(self) -> str:
        if self.count == 0:
            return "none"
        if self.low > 0:
            return "better" if self.higher_is_better else "worse"
        if self.high < 0:
            return "worse" if self.higher_is_better else "better"
        return "tie"

    def interval_text(self, digits: int = 2) -> str:
        """``+0.42 [+0.18, +0.66]``: the mean difference and its interval."""
        return f"{self.mean:+.{digits}f} [{self.low:+.{digits}f}, {self.high:+.{digits}f}]"

    def describe(self, digits: int = 2) -> str:
        """``+0.42 [+0.18, +0.66] better`` (or ``no pairs``)."""
        if self.count == 0:
            return "no pairs"
        return f"{self.interval_text(digits)} {self.verdict}"


def paired_difference(
    a: Sequence[float] | torch.Tensor,
    b: Sequence[float] | torch.Tensor,
    higher_is_better: bool = True,
) -> PairedDifference:
    """Paired comparison of two score columns measured on the same pairs, in the same order."""
    first = torch.as_tensor(a, dtype=torch.float64).flatten()
    second = torch.as_tensor(b, dtype=torch.float64).flatten()
    if first.shape != second.shape:
        raise ValueError(
            f"paired scores must have one value per pair on both sides, got {first.numel()} "
            f"and {second.numel()}; score both methods on the same image/mask pairs."
        )
    if first.numel() == 0:
        return PairedDifference(0, None, None, None, higher_is_better)
    differences = first - second  # (n,) exactly 0 where both scored the same
    low, high = bootstrap_interval(differences)
    return PairedDifference(
        len(differences), differences.mean().item(), low, high, higher_is_better
    )
