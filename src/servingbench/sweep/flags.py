"""The flags that travel with a point: when its numbers should not be read at face value.

- `failed`: the point could not run (server dead, Locust crashed, no records).
- `errors`: some measured requests failed.
- `unstable`: the last windows disagree (perf_analyzer's rule, `runs.stats.is_stable`).
- `client-bound`: the generator, not the server, was the limit: its CPU near saturation of the
  cores it may use, or its throughput near the calibrated ceiling of the instrument.
"""

from __future__ import annotations

from collections.abc import Sequence

from servingbench.runs.point import FLAGS, Flag, ProcessUsage
from servingbench.runs.stats import LatencySummary, Window, is_stable

__all__ = ["SATURATION", "client_bound", "generator_capacity", "point_flags"]

SATURATION = 0.90  # Locust itself warns above 90 % CPU


def generator_capacity(cpus: Sequence[int] | None, processes: int, cores: int) -> int:
    """Cores the generator can keep busy: one per Locust process, at most the cores it may use."""
    usable = len(cpus) if cpus else cores
    return max(1, min(usable, processes))


def client_bound(
    rps: float,
    usage: Sequence[ProcessUsage],
    capacity: int,
    ceiling_rps_per_core: float | None = None,
) -> bool:
    generator_cpu = sum(u.cpu_percent for u in usage if u.role == "generator")
    if generator_cpu >= SATURATION * 100.0 * capacity:
        return True
    return ceiling_rps_per_core is not None and rps >= SATURATION * ceiling_rps_per_core * capacity


def point_flags(
    summary: LatencySummary,
    wins: list[Window],
    usage: Sequence[ProcessUsage],
    capacity: int,
    ceiling_rps_per_core: float | None = None,
) -> list[Flag]:
    """Flags of a point that ran (a point that could not run is just `failed`)."""
    raised: set[Flag] = set()
    if client_bound(summary.rps, usage, capacity, ceiling_rps_per_core):
        raised.add("client-bound")
    if not is_stable(wins):
        raised.add("unstable")
    if summary.errors > 0:
        raised.add("errors")
    return [f for f in FLAGS if f in raised]
