"""The sweep's points in run order: repeats, load levels, and a shuffled order of series.

Repeat-major: every repeat is a full pass over the load levels, so slow drift of a shared
machine shows up *between* repeats (where the intervals see it) instead of biasing one series.
Within a repeat and a level, the series (scenario x configuration x model x rows) run in an
order shuffled with the recorded seed, so no series is always measured first or last.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass

from servingbench.runs.point import PointKey
from servingbench.servers import ServerConfig, get_scenario

__all__ = ["Series", "plan_keys", "series_of"]


@dataclass(frozen=True)
class Series:
    """One line of the report: a scenario under a configuration, with a model and batch size."""

    scenario: str
    config: ServerConfig
    model: str
    rows_per_request: int


def series_of(
    scenarios: Sequence[str],
    configs: Sequence[ServerConfig],
    models: Sequence[str],
    rows: Sequence[int],
) -> list[Series]:
    """Every scenario under each configuration of its backend, for every model and batch size."""
    out = []
    for name in scenarios:
        backend = get_scenario(name).backend
        for config in configs:
            if config.backend != backend:
                continue
            out += [Series(name, config, m, r) for m in models for r in rows]
    return out


def plan_keys(
    series: Sequence[Series], levels: Sequence[int], repeats: int, seed: int
) -> list[tuple[PointKey, Series]]:
    """(key, series) of every closed-loop point in run order (see the module docstring)."""
    rng = random.Random(seed)
    plan = []
    for repeat in range(1, repeats + 1):
        for users in levels:
            order = list(series)
            rng.shuffle(order)
            for s in order:
                scenario = get_scenario(s.scenario)
                key = PointKey(
                    scenario=s.scenario,
                    backend=scenario.backend,
                    wire=scenario.wire,
                    server_config=s.config.name,
                    model=s.model,
                    rows_per_request=s.rows_per_request,
                    concurrency=users,
                    repeat=repeat,
                )
                plan.append((key, s))
    return plan
