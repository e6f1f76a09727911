"""Capacity under an SLO: per series, the highest arrival rate whose points meet the objective.

Bracket, then bisect: start at half the series' closed-loop peak (or the first `--rates`),
double while the objective holds and halve while it does not, until a passing and a failing
rate frame the answer; then probe their geometric mean until the failing rate is within the
precision above the passing one. Each probe is an ordinary open-loop point, measured until
stable and repeated like any other, except that it runs until it holds the requests that bound
the SLO's tail (459 for a p99), up to `--slo-probe-max` at a low rate. A probe meets the
objective when no repeat failed, each repeat's tail is bounded, and the medians over its
repeats meet it, a request that failed or was dropped counting as infinitely late
(`Slo.judge`). All series search in rounds, their probes interleaved and
shuffled, so drift spreads over all of them. The answer is the highest passing rate, with the
lowest failing rate above it as the limit of what the probes can tell.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

from servingbench.runs.point import PointResult
from servingbench.runs.records import RequestRecords
from servingbench.runs.slo import Slo

__all__ = ["Probe", "Search", "judge"]


@dataclass(frozen=True)
class Probe:
    rate: float
    met: bool
    why: str


@dataclass
class Search:
    """One series' search state."""

    start: float
    floor: float
    ceiling: float
    precision: float
    passing: float | None = None
    failing: float | None = None
    probes: list[Probe] = field(default_factory=list)

    def next_rate(self) -> float | None:
        """The next rate to probe, or None when the answer is framed (or out of range)."""
        if self.passing is None and self.failing is None:
            return self.start
        if self.failing is None:
            assert self.passing is not None
            return None if self.passing >= self.ceiling else min(self.ceiling, self.passing * 2)
        if self.passing is None:
            return None if self.failing <= self.floor else max(self.floor, self.failing / 2)
        if self.failing / self.passing - 1 <= self.precision:
            return None
        return math.sqrt(self.passing * self.failing)

    def record(self, probe: Probe) -> None:
        self.probes.append(probe)
        if probe.met:
            self.passing = max(self.passing or 0.0, probe.rate)
        else:
            self.failing = probe.rate if self.failing is None else min(self.failing, probe.rate)


def judge(
    repeats: Sequence[PointResult], records: Sequence[RequestRecords | None], slo: Slo
) -> Probe:
    """Whether one rate's repeats meet `slo` (`Slo.judge` on their records; a repeat that
    failed to run has none)."""
    rate = float(repeats[0].key.rate or 0.0)
    failed = [p for p in repeats if p.summary is None]
    if failed:
        return Probe(rate, False, f"{len(failed)} repeat(s) failed: {failed[0].failure_reason}")
    met, why = slo.judge(records)
    return Probe(rate, met, why)
