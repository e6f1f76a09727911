"""Intervals across repeats, and when a difference between two series or two runs is real.

Each point is measured `repeats` times. Run-to-run variation on a shared machine is
multiplicative (a busier machine slows every request by a factor), so the figures are treated
as log-normal: the interval is a Student-t interval on the logarithms of the repeats, turned
back into the figure's unit. It estimates the geometric mean (for a log-normal, also the
median) and is asymmetric, staying positive; the tables print that geometric mean as the
central value, so the figure and its interval always describe the same quantity.

Why t and not a bootstrap: with the 3 to 5 repeats a sweep can afford, a percentile bootstrap
cannot reach beyond the smallest and largest repeat and covers far less than its nominal 95 %;
the t-interval's heavier tails account for how little a few repeats show. One repeat gives no
interval at all, and is said so.

Comparisons: within one run, repeat k of two series ran in the same pass, minutes apart, so
their ratio is paired (drift between passes cancels); across two runs they are unpaired (Welch).
A difference is called real only when its 95 % interval excludes "no change" *and* the estimate
moves by at least `min_effect` (default 5 %); otherwise it is "no significant difference".
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
from scipy import stats

__all__ = [
    "CONFIDENCE",
    "MIN_EFFECT",
    "Estimate",
    "Ratio",
    "Verdict",
    "estimate",
    "headline_pairs",
    "mean_interval",
    "paired_ratio",
    "unpaired_ratio",
    "verdict",
]

CONFIDENCE = 0.95
MIN_EFFECT = 0.05

Verdict = Literal["better", "worse", "no significant difference", "unknown"]


def _logs(values: Sequence[float]) -> np.ndarray:
    arr = np.asarray([v for v in values if np.isfinite(v) and v > 0], dtype=float)
    logs: np.ndarray = np.log(arr)
    return logs


def _t(dof: float) -> float:
    return float(stats.t.ppf(0.5 + CONFIDENCE / 2, dof))


@dataclass(frozen=True)
class Estimate:
    """The geometric mean of the repeats and a 95 % interval for it (NaN bounds with one)."""

    centre: float
    low: float
    high: float
    n: int

    @property
    def has_interval(self) -> bool:
        return self.n >= 2 and math.isfinite(self.low)

    def text(self, digits: int = 1, unit: str = "") -> str:
        """`1789 (1716 to 1941)`; with one repeat just the value."""
        if not math.isfinite(self.centre):
            return "n/a"
        value = f"{self.centre:.{digits}f}{unit}"
        if not self.has_interval:
            return value
        return f"{value} ({self.low:.{digits}f} to {self.high:.{digits}f}{unit})"


def estimate(values: Sequence[float]) -> Estimate:
    """Geometric mean and t-interval on the logs of the finite, positive `values`."""
    logs = _logs(values)
    n = int(logs.size)
    if n == 0:
        return Estimate(float("nan"), float("nan"), float("nan"), 0)
    centre = float(logs.mean())
    if n == 1:
        return Estimate(math.exp(centre), float("nan"), float("nan"), 1)
    half = _t(n - 1) * float(logs.std(ddof=1)) / math.sqrt(n)
    return Estimate(math.exp(centre), math.exp(centre - half), math.exp(centre + half), n)


def mean_interval(values: Sequence[float]) -> Estimate:
    """Arithmetic mean and t-interval of the finite `values`: for differences (which may be
    negative, so have no logarithm), such as the harness's p50 minus wrk's in one block."""
    arr = np.asarray([v for v in values if np.isfinite(v)], dtype=float)
    n = int(arr.size)
    if n == 0:
        return Estimate(float("nan"), float("nan"), float("nan"), 0)
    centre = float(arr.mean())
    if n == 1:
        return Estimate(centre, float("nan"), float("nan"), 1)
    half = _t(n - 1) * float(arr.std(ddof=1)) / math.sqrt(n)
    return Estimate(centre, centre - half, centre + half, n)


@dataclass(frozen=True)
class Ratio:
    """a / b as a geometric-mean ratio with its 95 % interval (NaN bounds when none)."""

    ratio: float
    low: float
    high: float
    n: int

    @property
    def has_interval(self) -> bool:
        return math.isfinite(self.low) and math.isfinite(self.high)

    @property
    def half_width(self) -> float:
        """The interval's larger side as a share of the ratio (inf without an interval)."""
        if not self.has_interval:
            return math.inf
        return max(self.high / self.ratio - 1.0, 1.0 - self.low / self.ratio)

    def text(self, digits: int = 2) -> str:
        if not math.isfinite(self.ratio):
            return "n/a"
        if not self.has_interval:
            return f"{self.ratio:.{digits}f}x"
        return f"{self.ratio:.{digits}f}x ({self.low:.{digits}f} to {self.high:.{digits}f}x)"


def paired_ratio(a: Sequence[float], b: Sequence[float]) -> Ratio:
    """Ratio of two series measured in the same passes: repeat k of `a` against repeat k of `b`.

    Pairs where either value is missing are dropped.
    """
    pairs = [
        (x, y)
        for x, y in zip(a, b, strict=False)
        if np.isfinite(x) and np.isfinite(y) and x > 0 and y > 0
    ]
    n = len(pairs)
    if n == 0:
        return Ratio(float("nan"), float("nan"), float("nan"), 0)
    diffs = np.log([x for x, _ in pairs]) - np.log([y for _, y in pairs])
    centre = float(diffs.mean())
    if n == 1:
        return Ratio(math.exp(centre), float("nan"), float("nan"), 1)
    half = _t(n - 1) * float(diffs.std(ddof=1)) / math.sqrt(n)
    return Ratio(math.exp(centre), math.exp(centre - half), math.exp(centre + half), n)


def headline_pairs(
    speed: Mapping[str, float], backend_of: Mapping[str, str]
) -> list[tuple[str, str]]:
    """The comparisons a comparison leads with, as (fastest, other): the fastest series (by
    `speed`, e.g. its central req/s) against the best series of every other backend; when all
    share one backend, against every other series (an A/A run, configurations of one server).
    """
    ranked = sorted((s for s in speed if math.isfinite(speed[s])), key=lambda s: -speed[s])
    if len(ranked) < 2:
        return []
    best, rest = ranked[0], ranked[1:]
    if len({backend_of[s] for s in ranked}) == 1:
        return [(best, other) for other in rest]
    seen, pairs = {backend_of[best]}, []
    for other in rest:
        if backend_of[other] not in seen:
            seen.add(backend_of[other])
            pairs.append((best, other))
    return pairs


def unpaired_ratio(a: Sequence[float], b: Sequence[float]) -> Ratio:
    """Ratio of two independent sets of repeats (two runs): Welch's t on the logs."""
    la, lb = _logs(a), _logs(b)
    if la.size == 0 or lb.size == 0:
        return Ratio(float("nan"), float("nan"), float("nan"), 0)
    centre = float(la.mean() - lb.mean())
    n = int(min(la.size, lb.size))
    if la.size < 2 or lb.size < 2:
        return Ratio(math.exp(centre), float("nan"), float("nan"), n)
    va, vb = float(la.var(ddof=1)) / la.size, float(lb.var(ddof=1)) / lb.size
    se = math.sqrt(va + vb)
    if se == 0:
        return Ratio(math.exp(centre), math.exp(centre), math.exp(centre), n)
    dof = (va + vb) ** 2 / (va**2 / (la.size - 1) + vb**2 / (lb.size - 1))
    half = _t(dof) * se
    return Ratio(math.exp(centre), math.exp(centre - half), math.exp(centre + half), n)


def verdict(r: Ratio, higher_is_better: bool, min_effect: float = MIN_EFFECT) -> Verdict:
    """`better`/`worse` when the interval excludes 1 and the change is at least `min_effect`."""
    if not r.has_interval:
        return "unknown"
    if r.low <= 1.0 <= r.high or abs(r.ratio - 1.0) < min_effect:
        return "no significant difference"
    return "better" if (r.ratio > 1.0) == higher_is_better else "worse"
