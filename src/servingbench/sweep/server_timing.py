"""Server-side time per point, from the server's own Prometheus metrics, scraped twice.

The load generator scrapes the server's metrics when the measured interval starts and when it
ends (`loadgen.stopping`); the difference of two cumulative scrapes is what the server counted
for the requests of the interval. For each stage a backend declares (`servers.base.StageMetric`:
the whole request, the model call, the wait for a batch) this gives an exact mean (sum / count)
and, for a histogram, percentiles estimated from the buckets the PromQL way: find the bucket
holding the rank, interpolate linearly inside it. Such a percentile is only as good as the
bucket is narrow: it is reported as unresolved when the bucket's upper bound is more than twice
its lower one (MLServer's buckets start at 5 ms, so its sub-millisecond percentiles are not
readable; its means are).

As Prometheus' `increase()` does, a series whose value went down between the scrapes was reset
(a restarted server or worker process): what it counted since is its value after. Cumulative
buckets that come out non-monotone (a scrape read mid-update, or a reset in one series only)
are made monotone before a quantile is read, as `histogram_quantile` does.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Mapping, Sequence

from prometheus_client.parser import text_string_to_metric_families

from servingbench.runs.timing import StageFigures
from servingbench.servers.base import StageMetric

__all__ = [
    "bucket_quantile",
    "parse_scrape",
    "stage_figures",
    "stages_of",
    "stages_over",
]

Series = dict[tuple[str, tuple[tuple[str, str], ...]], float]
"""(sample name, sorted labels) -> value"""


def parse_scrape(text: str) -> Series:
    """Every sample of a text exposition, keyed by name and labels."""
    out: Series = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out[(sample.name, tuple(sorted(sample.labels.items())))] = float(sample.value)
    return out


def _matching(
    series: Series, name: str, labels: Mapping[str, str]
) -> dict[tuple[tuple[str, str], ...], float]:
    return {
        key_labels: value
        for (sample, key_labels), value in series.items()
        if sample == name and all(dict(key_labels).get(k) == v for k, v in labels.items())
    }


def _increase(before: float, after: float) -> float:
    """What a counter counted between two reads; a decrease means it was reset in between."""
    return after - before if after >= before else after


def _delta(before: Series, after: Series, name: str, labels: Mapping[str, str]) -> float:
    a, b = _matching(after, name, labels), _matching(before, name, labels)
    return sum(_increase(b.get(k, 0.0), value) for k, value in a.items())


def _buckets(
    before: Series, after: Series, family: str, labels: Mapping[str, str]
) -> list[tuple[float, float]]:
    """Cumulative (upper bound, count) of the interval, summed over the matching series."""
    totals: dict[float, float] = defaultdict(float)
    for key_labels, value in _matching(after, f"{family}_bucket", labels).items():
        le = float(dict(key_labels)["le"])
        totals[le] += _increase(before.get((f"{family}_bucket", key_labels), 0.0), value)
    monotone, highest = [], 0.0
    for bound, count in sorted(totals.items()):
        highest = max(highest, count)
        monotone.append((bound, highest))
    return monotone


def bucket_quantile(q: float, buckets: list[tuple[float, float]]) -> tuple[float, bool]:
    """(estimate, resolved) of quantile `q` from cumulative buckets (PromQL's interpolation)."""
    if len(buckets) < 2 or not math.isinf(buckets[-1][0]) or buckets[-1][1] <= 0:
        return math.nan, False
    rank = q * buckets[-1][1]
    below_bound, below_count = 0.0, 0.0
    for bound, count in buckets:
        if count >= rank:
            if math.isinf(bound):
                return below_bound, False  # in +Inf: only a lower bound is known
            inside = count - below_count
            share = (rank - below_count) / inside if inside > 0 else 1.0
            estimate = below_bound + (bound - below_bound) * share
            return estimate, below_bound > 0 and bound <= 2 * below_bound
        below_bound, below_count = bound, count
    return math.nan, False


def stage_figures(
    before: Series, after: Series, metric: StageMetric, model: str
) -> StageFigures | None:
    """One stage over the interval, or None when the server counted nothing for it."""
    return _figures([(before, after)], metric, model)


def _figures(
    pairs: Sequence[tuple[Series, Series]], metric: StageMetric, model: str
) -> StageFigures | None:
    """One stage over several intervals (each framed by a pair of scrapes), added up."""
    labels = {k: v.replace("{model}", model) for k, v in metric.labels.items()}
    count = sum(_delta(b, a, f"{metric.family}_count", labels) for b, a in pairs)
    total = sum(_delta(b, a, f"{metric.family}_sum", labels) for b, a in pairs)
    if count <= 0:
        return None
    summed: dict[float, float] = defaultdict(float)
    for b, a in pairs:
        for bound, n in _buckets(b, a, metric.family, labels):
            summed[bound] += n
    buckets = sorted(summed.items())
    p50, ok50 = bucket_quantile(0.50, buckets)
    p99, ok99 = bucket_quantile(0.99, buckets)
    has = bool(buckets)
    return StageFigures(
        stage=metric.stage,
        source=metric.family,
        count=round(count),
        mean_ms=1e3 * total / count,
        p50_ms=1e3 * p50 if has and math.isfinite(p50) else None,
        p99_ms=1e3 * p99 if has and math.isfinite(p99) else None,
        resolved=has and ok50 and ok99,
        note=metric.note,
    )


def stages_of(
    before_text: str, after_text: str, metrics: tuple[StageMetric, ...], wire: str, model: str
) -> dict[str, StageFigures]:
    """Every stage the backend declares for this wire format, from two scrapes."""
    return stages_over([(before_text, after_text)], metrics, wire, model)


def stages_over(
    pairs: Sequence[tuple[str, str]], metrics: tuple[StageMetric, ...], wire: str, model: str
) -> dict[str, StageFigures]:
    """The same over several intervals, each framed by a (before, after) pair of scrapes: an
    interleaved point's slices, between which the server served other series or nothing."""
    parsed = [(parse_scrape(b), parse_scrape(a)) for b, a in pairs]
    out: dict[str, StageFigures] = {}
    for metric in metrics:
        if metric.applies(wire) and metric.stage not in out:
            figures = _figures(parsed, metric, model)
            if figures is not None:
                out[metric.stage] = figures
    return out
