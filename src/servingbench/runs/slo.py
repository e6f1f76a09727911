"""A latency/error objective such as `p99<=50ms` or `p50<=5ms,p99.9<=200ms,errors<=1%`.

One definition serves the capacity search (which rates meet it) and the report (which
points met it, goodput). A point meets it when every bound holds on its figures: latency
percentiles of the response time (from the intended start in open loop), and the share of
requests that failed, never answered or were never sent (errors, incomplete, dropped).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping

from pydantic import Field

from servingbench.runs.schema import Record

__all__ = ["Slo", "parse_slo"]

_BOUND = re.compile(
    r"^\s*(p50|p90|p95|p99|p99\.9|errors)\s*<=?\s*(\d+(?:\.\d*)?|\.\d+)\s*(ms|s|%)?\s*$"
)
_COLUMNS = {"p50": "p50_ms", "p90": "p90_ms", "p95": "p95_ms", "p99": "p99_ms", "p99.9": "p999_ms"}


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
            if not value <= bound:
                broken.append(f"{column.removesuffix('_ms')} {value:.2f} ms > {bound:g} ms")
        if self.failed_share is not None:
            share = failed_share(figures)
            if not share <= self.failed_share:
                broken.append(f"failed {100 * share:.2f} % > {100 * self.failed_share:g} %")
        return broken

    def met(self, figures: Mapping[str, float]) -> bool:
        return not self.check(figures)

    @property
    def latency_bound_ms(self) -> float | None:
        """The tightest latency bound: what a request must beat to count as goodput."""
        return min(self.latency_ms.values()) if self.latency_ms else None


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
