"""The 95 % intervals across repeats and the verdict on a difference, on hand-computed data."""

from __future__ import annotations

import math

import numpy as np
import pytest

from servingbench.report.intervals import (
    MIN_EFFECT,
    Ratio,
    estimate,
    mean_interval,
    paired_ratio,
    unpaired_ratio,
    verdict,
)

T_2 = 4.302653
"""Student's t, 97.5 % quantile, 2 degrees of freedom (printed tables)."""
T_4 = 2.776445
"""The same with 4 degrees of freedom."""


def _exps(*logs: float) -> list[float]:
    return [math.exp(v) for v in logs]


def test_estimate_is_a_t_interval_on_the_logs() -> None:
    """100, 110, 121: logs mean ln 110 with sd ln 1.1, so the interval is 110 x 1.1^(+-t/sqrt 3)."""
    est = estimate([121.0, 100.0, 110.0])
    half = T_2 * math.log(1.1) / math.sqrt(3)
    assert est.n == 3
    assert est.centre == pytest.approx(110.0)
    assert est.low == pytest.approx(110.0 * math.exp(-half), rel=1e-5)
    assert est.high == pytest.approx(110.0 * math.exp(half), rel=1e-5)
    assert est.low > 0  # asymmetric on the original scale, never below zero
    assert est.text(0) == f"110 ({est.low:.0f} to {est.high:.0f})"


def test_the_printed_figure_is_what_the_interval_is_for() -> None:
    """100, 100, 400: the median 100 is not what a log-scale interval estimates, the
    geometric mean 159 is; the figure printed beside the interval is that one."""
    est = estimate([100.0, 400.0, 100.0])
    assert est.centre == pytest.approx(158.74, rel=1e-4)
    assert est.low < est.centre < est.high
    assert est.text(0).startswith("159 (")


def test_estimate_leaves_out_what_cannot_be_a_figure() -> None:
    """A failed repeat (NaN) or a zero is not in the logs; one repeat left gives no interval."""
    est = estimate([float("nan"), 0.0, 42.0])
    assert est.centre == pytest.approx(42.0)
    assert (est.n, est.has_interval) == (1, False)
    assert est.text(1, " ms") == "42.0 ms"
    assert estimate([]).text() == "n/a"


def test_paired_ratio_cancels_drift_the_unpaired_one_cannot() -> None:
    """Each pass ran on a differently busy machine, but a is 2x b within every pass."""
    a, b = [100.0, 200.0, 50.0], [50.0, 100.0, 25.0]
    paired = paired_ratio(a, b)
    assert (paired.ratio, paired.low, paired.high, paired.n) == pytest.approx((2.0, 2.0, 2.0, 3))
    assert verdict(paired, higher_is_better=True) == "better"
    # across passes the drift swamps the difference: 4x between passes vs 2x between series
    unpaired = unpaired_ratio(a, b)
    assert unpaired.ratio == pytest.approx(2.0)
    assert unpaired.low < 1.0 < unpaired.high
    assert verdict(unpaired, higher_is_better=True) == "no significant difference"


def test_paired_ratio_interval_on_known_log_differences() -> None:
    """Ratios e^0.1, e^0.2, e^0.3: mean 0.2, sd 0.1. Every repeat is faster, yet the interval
    of three spans 1: noisy repeats are not a difference."""
    r = paired_ratio(_exps(1.1, 1.2, 1.3), _exps(1.0, 1.0, 1.0))
    half = T_2 * 0.1 / math.sqrt(3)
    assert r.ratio == pytest.approx(math.exp(0.2))
    assert r.low == pytest.approx(math.exp(0.2 - half), rel=1e-5)
    assert r.high == pytest.approx(math.exp(0.2 + half), rel=1e-5)
    assert verdict(r, higher_is_better=True) == "no significant difference"


def test_paired_ratio_drops_incomplete_pairs() -> None:
    """A repeat that failed in either series has no partner: that pass is left out."""
    r = paired_ratio([2.0, float("nan"), 4.0], [1.0, 1.0, 2.0])
    assert r.ratio == pytest.approx(2.0)
    assert r.n == 2


def test_welch_interval_on_known_logs() -> None:
    """Logs {1, 1.1, 1.2} vs {0, 0.1, 0.2}: difference 1, se sqrt(2 x 0.01 / 3), Welch dof 4."""
    r = unpaired_ratio(_exps(1.0, 1.1, 1.2), _exps(0.0, 0.1, 0.2))
    half = T_4 * math.sqrt(2 * 0.01 / 3)
    assert r.ratio == pytest.approx(math.e)
    assert r.low == pytest.approx(math.exp(1 - half), rel=1e-5)
    assert r.high == pytest.approx(math.exp(1 + half), rel=1e-5)
    assert r.n == 3


def test_one_repeat_gives_a_ratio_but_no_verdict() -> None:
    """With one repeat on either side nothing can be said about noise: `unknown`."""
    for r in (unpaired_ratio([2.0], [1.0, 1.1]), paired_ratio([2.0], [1.0])):
        assert r.ratio == pytest.approx(2.0, rel=0.06)
        assert not r.has_interval
        assert verdict(r, higher_is_better=True) == "unknown"
    assert unpaired_ratio([], [1.0]).text() == "n/a"


@pytest.mark.parametrize(
    ("ratio", "higher_is_better", "expected"),
    [
        (1.10, True, "better"),  # req/s up
        (0.90, True, "worse"),  # req/s down
        (0.90, False, "better"),  # latency down
        (1.10, False, "worse"),  # latency up
        (1.04, True, "no significant difference"),  # real, but under the minimum effect
        (0.96, False, "no significant difference"),
    ],
)
def test_verdict_needs_direction_and_minimum_effect(
    ratio: float, higher_is_better: bool, expected: str
) -> None:
    """A tight interval (+-1 %) that excludes 1: the direction and the size decide."""
    assert MIN_EFFECT == 0.05
    r = Ratio(ratio, ratio * 0.99, ratio * 1.01, 3)
    assert verdict(r, higher_is_better) == expected


def test_verdict_minimum_effect_is_a_setting() -> None:
    """With no minimum effect, a 4 % change whose interval excludes 1 is a difference."""
    r = Ratio(1.04, 1.03, 1.05, 3)
    assert verdict(r, higher_is_better=True, min_effect=0.0) == "better"


# --- the statistics on data with a known truth --------------------------------------------


def _paired_comparisons(
    truth: float, blocks: int, count: int, seed: int
) -> list[tuple[float, float, float]]:
    """`count` comparisons of two series measured in `blocks` interleaved blocks: both share
    each block's machine speed (a random walk, as a drifting machine), each slice adds its own
    noise; b's true value is 1, a's `truth`. (ratio, low, high) of each."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(count):
        drift = np.cumsum(rng.normal(0.0, 0.08, blocks))  # seconds-to-minutes drift
        a = np.exp(math.log(truth) + drift + rng.normal(0.0, 0.04, blocks))
        b = np.exp(drift + rng.normal(0.0, 0.04, blocks))
        r = paired_ratio(a.tolist(), b.tolist())
        out.append((r.ratio, r.low, r.high))
    return out


def test_an_a_a_comparison_is_called_different_at_most_5_percent_of_the_time() -> None:
    """Two identical configurations, 2,000 times over: the interval alone (no minimum effect)
    calls 'better' or 'worse' in about 5 % of them, as a 95 % interval must; with the 5 %
    minimum effect the reports use, almost never."""
    runs = _paired_comparisons(1.0, 10, 2000, seed=3)
    ratios = [Ratio(r, lo, hi, 10) for r, lo, hi in runs]
    strict = [verdict(r, True, 0.0) for r in ratios]
    false_calls = sum(v in ("better", "worse") for v in strict) / len(strict)
    assert 0.03 <= false_calls <= 0.065
    usual = [verdict(r, True, 0.05) for r in ratios]
    assert sum(v in ("better", "worse") for v in usual) / len(usual) <= 0.01


@pytest.mark.parametrize("truth", [1.0, 1.1, 0.5])
def test_the_paired_interval_covers_the_true_ratio_95_percent_of_the_time(truth: float) -> None:
    runs = _paired_comparisons(truth, 10, 2000, seed=4)
    covered = sum(lo <= truth <= hi for _, lo, hi in runs) / len(runs)
    assert 0.935 <= covered <= 0.965


def test_a_real_ten_percent_difference_is_found() -> None:
    """With the same noise, a 1.1x series is called better nearly every time."""
    runs = _paired_comparisons(1.1, 10, 500, seed=5)
    calls = [verdict(Ratio(r, lo, hi, 10), True, 0.05) for r, lo, hi in runs]
    assert calls.count("better") / len(calls) >= 0.95


def test_mean_interval_is_a_t_interval_for_differences() -> None:
    """Differences may be negative (no logarithm): an arithmetic mean and its t-interval."""
    est = mean_interval([-0.1, 0.1, 0.3])
    half = T_2 * 0.2 / math.sqrt(3)
    assert est.centre == pytest.approx(0.1)
    assert (est.low, est.high) == pytest.approx((0.1 - half, 0.1 + half))
    assert mean_interval([0.2]).has_interval is False
    assert mean_interval([float("nan")]).n == 0
