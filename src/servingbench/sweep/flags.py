"""The flags that travel with a point: when its numbers should not be read at face value.

Each raised flag comes with a reason that states the figure behind it.

- `failed`: the point could not run (server dead, Locust crashed, no records).
- `errors`: some measured requests failed.
- `incomplete`: requests were still in flight when the stop's grace period ended (a hang).
- `unstable`: the windows did not settle within the cap.
- `client-bound`: the generator, not the server, was the limit: the latency Locust itself adds
  at this load (calibration curve) is above the bound, or its busiest process was near a full
  core.
- `generator-late` / `dropped`: open loop only; arrivals were sent late, or not at all.
- `contended`: other processes, or the run's other servers while not under load, used a share
  of the server's or the generator's cores.
- `clock-unbounded` / `worker-lost`: distributed generation; a worker's clock offset could not
  be bounded, or its records did not all arrive.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from servingbench.runs.calibration import SATURATION_PERCENT
from servingbench.runs.point import FLAGS, Flag, GeneratorReport, Interference, ProcessUsage
from servingbench.runs.stats import LatencySummary, Stability

__all__ = ["SATURATION", "FlagInputs", "Thresholds", "point_flags"]

SATURATION = SATURATION_PERCENT


@dataclass(frozen=True)
class Thresholds:
    added_latency_ms: float = 0.1
    contention_percent: float = 5.0
    lateness_ms: float = 1.0
    clock_bound_ms: float = 5.0


@dataclass(frozen=True)
class FlagInputs:
    summary: LatencySummary
    converged: bool | None
    usage: Sequence[ProcessUsage]
    interference: Interference | None
    generator: GeneratorReport | None
    added_latency_ms: float | None
    offered_rps_per_process: float | None = None
    """Open loop: the arrival rate each generator process was asked to keep."""
    open_ceiling_rps: float | None = None
    """Open loop: the highest rate one process kept on schedule in calibration."""
    spreads: Mapping[str, float] | None = None
    """Relative spread of req/s, p50 and p99 over the last windows (`Stability.spreads`)."""
    tolerances: Stability | None = None
    too_few: str | None = None
    """Why the windows' samples were too few to show stability (`Stability.too_few`)."""


def _unsettled(inputs: FlagInputs) -> str:
    """Which quantities kept the last windows apart, so `unstable` says why."""
    rule, spreads = inputs.tolerances, inputs.spreads
    if inputs.too_few is not None:
        return f"too few samples to settle before the cap: {inputs.too_few}"
    if rule is None or not spreads:
        return "the last windows did not agree before the cap"
    apart = [
        f"{name} {spread:.0%} (tolerance {tolerance:.0%})"
        if not math.isnan(spread)
        else f"{name} (a window without answers)"
        for name, tolerance in (("rps", rule.rps), ("p50", rule.p50), ("p99", rule.p99))
        if not (spread := spreads[name]) <= tolerance
    ]
    if not apart:
        return "the last windows did not agree before the cap"
    return f"the last {rule.windows} windows still differed at the cap: " + ", ".join(apart)


def _client_bound(inputs: FlagInputs, limits: Thresholds) -> str | None:
    busiest = max(
        (u.busiest_process_percent for u in inputs.usage if u.role == "generator"), default=0.0
    )
    if busiest >= SATURATION:
        return f"busiest generator process at {busiest:.0f} % of a core"
    offered, ceiling = inputs.offered_rps_per_process, inputs.open_ceiling_rps
    if offered is not None and ceiling is not None and offered > ceiling:
        return (
            f"{offered:.0f} req/s offered per generator process, above the calibrated "
            f"open-loop ceiling of {ceiling:.0f}"
        )
    added = inputs.added_latency_ms
    if added is not None and added > limits.added_latency_ms:
        return (
            f"Locust adds {added:.3f} ms at this load (calibration), above "
            f"{limits.added_latency_ms:g} ms"
        )
    return None


def _contended(interference: Interference | None, limits: Thresholds) -> str | None:
    if interference is None:
        return None
    parts = [
        f"{what} cores {value:.1f} % of a core"
        for what, value in (
            ("server", interference.server_other_percent),
            ("generator", interference.generator_other_percent),
        )
        if value is not None and value > limits.contention_percent
    ]
    reasons = ["other processes used " + ", ".join(parts)] if parts else []
    idle = interference.idle_servers_percent
    if idle > limits.contention_percent:  # e.g. three idle Ray clusters beside it
        reasons.append(f"the run's other servers, not under load, used {idle:.1f} % of a core")
    return "; ".join(reasons) if reasons else None


def point_flags(
    inputs: FlagInputs, limits: Thresholds | None = None
) -> tuple[list[Flag], dict[str, str]]:
    """Flags of a point that ran (a point that could not run is just `failed`), with reasons."""
    limits = limits or Thresholds()
    s = inputs.summary
    reasons: dict[str, str] = {}
    if s.errors:
        reasons["errors"] = f"{s.errors} of {s.requests} measured requests failed"
    if s.incomplete:
        reasons["incomplete"] = (
            f"{s.incomplete} request(s) still in flight after the stop's grace period"
        )
    if inputs.converged is False:
        reasons["unstable"] = _unsettled(inputs)
    if (why := _client_bound(inputs, limits)) is not None:
        reasons["client-bound"] = why
    if s.lateness_p99_ms > limits.lateness_ms:
        reasons["generator-late"] = (
            f"p99 of send lateness {s.lateness_p99_ms:.2f} ms > {limits.lateness_ms:g} ms"
        )
    generator = inputs.generator
    if s.dropped:
        reasons["dropped"] = (
            f"{s.dropped} of {s.requests + s.dropped} arrivals in the interval found no free slot"
        )
    if (why := _contended(inputs.interference, limits)) is not None:
        reasons["contended"] = why
    for worker in generator.workers if generator else []:
        if worker.lost:
            reasons["worker-lost"] = f"{worker.node}: {worker.reason}"
            continue
        bound = worker.clock_uncertainty_ns
        if bound is None or bound > limits.clock_bound_ms * 1e6:
            shown = "unknown" if bound is None else f"±{bound / 1e6:.2f} ms"
            reasons["clock-unbounded"] = f"{worker.node}: clock offset {shown}"
    return [f for f in FLAGS if f in reasons], reasons
