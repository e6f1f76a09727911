"""A latency/error objective such as `p99<=50ms` or `p50<=5ms,p99.9<=200ms,errors<=1%`.

One definition serves the capacity search (which rates meet it) and the report (which rates
met it, goodput): `Slo.judge` on the raw records of a rate's repeats. A latency bound is on
the response time (from the intended start in open loop) of every request meant to start in
the measured interval, where one that failed, never answered or was never sent (errors,
incomplete, dropped) counts as infinitely late: a server cannot meet `p99<=50ms` by failing
or shedding 2 % of its requests. The `errors` bound is the share of such requests.
"""

from __future__ import annotations

import math
import re
import statistics
from collections.abc import Mapping, Sequence

import numpy as np
from pydantic import Field

from servingbench.runs.records import Outcome, RequestRecords
from servingbench.runs.schema import Record
from servingbench.runs.stats import TAIL_CONFIDENCE, samples_to_bound

__all__ = ["Slo", "attempt_quantile_ms", "parse_slo", "slo_figures"]

_BOUND = re.compile(
    r"^\s*(p50|p90|p95|p99|p99\.9|errors)\s*<=?\s*(\d+(?:\.\d*)?|\.\d+)\s*(ms|s|%)?\s*$"
)
_COLUMNS = {"p50": "p50_ms", "p90": "p90_ms", "p95": "p95_ms", "p99": "p99_ms", "p99.9": "p999_ms"}
QUANTILES = {"p50_ms": 0.50, "p90_ms": 0.90, "p95_ms": 0.95, "p99_ms": 0.99, "p999_ms": 0.999}
"""Each latency figure an SLO can bound, and its quantile."""


class Slo(Record):
    """Bounds by figure: latency ones in ms (`p99_ms`), `failed_share` as a fraction."""

    text: str
    latency_ms: dict[str, float] = Field(default_factory=dict)
    failed_share: float | None = None

    def check(self, figures: Mapping[str, float]) -> list[str]:
        """What the figures break (empty when the objective is met). NaN breaks a bound."""
        broken = []
        for column, bound in self.latency_ms.items():
            value = figures.get(column, math.nan)
            name = column.removesuffix("_ms").replace("p999", "p99.9")
            if value == math.inf:
                share = 100 * (1 - QUANTILES[column])
                broken.append(
                    f"{name}: more than {share:g} % of requests failed, were dropped or were "
                    f"never answered (> {bound:g} ms)"
                )
            elif not value <= bound:
                broken.append(f"{name} {value:.2f} ms > {bound:g} ms")
        if self.failed_share is not None:
            share = failed_share(figures)
            if not share <= self.failed_share:
                broken.append(f"failed {100 * share:.2f} % > {100 * self.failed_share:g} %")
        return broken

    def met(self, figures: Mapping[str, float]) -> bool:
        return not self.check(figures)

    def requests_needed(self) -> int:
        """Requests a point needs before its tightest latency bound can be judged at all: the
        fewest that bound that quantile at `TAIL_CONFIDENCE` (p99: 459, p99.9: 4,603; MLPerf
        LoadGen refuses a tail claim on fewer); 0 with an error bound only."""
        return max((samples_to_bound(QUANTILES[c]) for c in self.latency_ms), default=0)

    def judge(self, repeats: Sequence[RequestRecords | None]) -> tuple[bool, str]:
        """Whether one rate's repeats meet the objective: no repeat failed to run, each repeat
        has the requests that bound the tightest tail (`requests_needed`), and the medians over
        the repeats of `slo_figures` break no bound. (met, why in words)"""
        missing = sum(r is None for r in repeats)
        if missing or not repeats:
            return False, f"{missing} of {len(repeats)} repeat(s) have no records"
        per = [slo_figures(r) for r in repeats if r is not None]
        figures = {name: float(statistics.median(f[name] for f in per)) for name in per[0]}
        broken = self.check(figures)
        fewest = int(min(f["requests"] + f["dropped"] for f in per))
        if broken or fewest >= (needed := self.requests_needed()):
            return not broken, "; ".join(broken) or "met"
        tightest = max(self.latency_ms, key=QUANTILES.__getitem__)
        name = tightest.removesuffix("_ms").replace("p999", "p99.9")
        return False, (
            f"{name} not bounded: {fewest} requests in a repeat, fewer than the {needed} that "
            f"bound it at {100 * TAIL_CONFIDENCE:g} % confidence"
        )

    @property
    def latency_bound_ms(self) -> float | None:
        """The tightest latency bound: what a request must beat to count as goodput."""
        return min(self.latency_ms.values()) if self.latency_ms else None


def attempt_quantile_ms(records: RequestRecords, q: float) -> float:
    """The q-quantile (ms, linear interpolation) of the response time of every request meant to
    start in the measured interval, a request that did not succeed counting as infinitely late.

    Infinite when the quantile falls on or next to a failure; NaN with no request at all.
    """
    measured = records.measured()
    if len(measured) == 0:
        return math.nan
    values = np.sort(np.where(measured.ok, measured.response_ns / 1e6, np.inf))
    position = q * (values.size - 1)
    low, high = math.floor(position), math.ceil(position)
    if not math.isfinite(values[high]) and high != position:
        return math.inf
    if low == high:
        return float(values[low])
    return float(values[low] + (values[high] - values[low]) * (position - low))


def slo_figures(records: RequestRecords) -> dict[str, float]:
    """What an SLO is checked on, for one point: `attempt_quantile_ms` of each latency figure,
    and the counts of the failed-share bound (requests, errors, incomplete, dropped)."""
    measured = records.measured()
    outcome = measured.outcome
    dropped = int(np.count_nonzero(outcome == Outcome.DROPPED))
    incomplete = int(np.count_nonzero(outcome == Outcome.INCOMPLETE))
    ok = int(np.count_nonzero(outcome == Outcome.OK))
    sent = len(measured) - dropped
    figures = {name: attempt_quantile_ms(records, q) for name, q in QUANTILES.items()}
    return figures | {
        "requests": float(sent),
        "errors": float(sent - ok - incomplete),
        "incomplete": float(incomplete),
        "dropped": float(dropped),
    }


def failed_share(figures: Mapping[str, float]) -> float:
    """(errors + incomplete + dropped) / everything that was meant to be sent."""
    sent = figures.get("requests", 0.0) + figures.get("dropped", 0.0)
    bad = figures.get("errors", 0.0) + figures.get("incomplete", 0.0) + figures.get("dropped", 0.0)
    return bad / sent if sent else math.nan


def parse_slo(text: str) -> Slo:
    """`p99<=50ms`, `p50<=5ms,errors<=1%`; a ValueError says what is accepted."""
    latency: dict[str, float] = {}
    share: float | None = None
    for part in filter(None, (p.strip() for p in text.split(","))):
        match = _BOUND.match(part)
        if match is None:
            raise ValueError(
                f"cannot read SLO bound {part!r}: write e.g. p99<=50ms, p50<=5ms, p99.9<=0.2s "
                "or errors<=1% (several separated by commas)"
            )
        name, value, unit = match.group(1), float(match.group(2)), match.group(3)
        if name == "errors":
            if unit not in ("%", None):
                raise ValueError(f"errors bound {part!r} must be a percentage, e.g. errors<=1%")
            share = value / 100
        else:
            if unit not in ("ms", "s"):
                raise ValueError(f"latency bound {part!r} needs a unit: ms or s")
            latency[_COLUMNS[name]] = value * (1000 if unit == "s" else 1)
    if not latency and share is None:
        raise ValueError("an SLO needs at least one bound, e.g. p99<=50ms")
    return Slo(text=text, latency_ms=latency, failed_share=share)
