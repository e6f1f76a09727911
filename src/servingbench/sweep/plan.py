"""The sweep's points in run order: repeats, load levels, and a shuffled order of series.

Repeat-major: every repeat is a full pass over the load levels, so slow drift of a shared
machine shows up *between* repeats (where the intervals see it) instead of biasing one series.
Within a repeat and a level, the series (scenario x configuration x model x rows) run in an
order shuffled with the recorded seed, so no series is always measured first or last. In open
loop a level is a rate (or, with `--rates auto`, the same fraction of each series' peak).
"""

from __future__ import annotations

import math
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from servingbench.runs.calibration import CalibrationRecord
from servingbench.runs.point import PointKey, line_label, series_label
from servingbench.runs.stats import MeasurePlan
from servingbench.servers import Scenario, ServerConfig, get_backend
from servingbench.servers.base import endpoint_address
from servingbench.servers.base import metrics_url as backend_metrics_url
from servingbench.sweep.flags import Thresholds
from servingbench.sweep.measure import PointPlan
from servingbench.sweep.servers import BenchServers
from servingbench.sweep.settings import BenchSettings

__all__ = ["Series", "closed_keys", "open_keys", "point_plan", "probe_plan", "series_of"]


@dataclass(frozen=True)
class Series:
    """One line of the report: a scenario under a configuration, with a model and batch size."""

    scenario: Scenario
    config: ServerConfig
    model: str
    rows_per_request: int

    @property
    def label(self) -> str:
        series = series_label(self.scenario.name, self.config.name)
        return line_label(series, self.model, self.rows_per_request)


def series_of(
    scenarios: Sequence[Scenario],
    configs: Sequence[ServerConfig],
    models: Sequence[str],
    rows: Sequence[int],
) -> list[Series]:
    """Every scenario under each configuration of its backend, for every model and batch size."""
    out = []
    for scenario in scenarios:
        for config in configs:
            if config.backend != scenario.backend:
                continue
            out += [Series(scenario, config, m, r) for m in models for r in rows]
    return out


def key_of(s: Series, **load: object) -> PointKey:
    """The point key of `s` at a load: the scenario's facts copied from the one resolved object."""
    return PointKey.model_validate(
        {
            "scenario": s.scenario.name,
            "backend": s.scenario.backend,
            "wire": s.scenario.wire,
            "server_config": s.config.name,
            "model": s.model,
            "rows_per_request": s.rows_per_request,
            **load,
        }
    )


def closed_keys(
    series: Sequence[Series], levels: Sequence[int], repeats: int, seed: int
) -> list[tuple[PointKey, Series]]:
    """(key, series) of every closed-loop point in run order (see the module docstring)."""
    rng = random.Random(seed)
    plan = []
    for repeat in range(1, repeats + 1):
        for users in levels:
            order = list(series)
            rng.shuffle(order)
            plan += [(key_of(s, concurrency=users, repeat=repeat), s) for s in order]
    return plan


def open_keys(
    rates: Mapping[Series, Sequence[float]],
    repeats: int,
    seed: int,
    max_in_flight: int,
    arrivals: str,
) -> list[tuple[PointKey, Series]]:
    """(key, series) of every open-loop point: level i is each series' i-th rate."""
    rng = random.Random(seed)
    plan = []
    levels = max((len(r) for r in rates.values()), default=0)
    for repeat in range(1, repeats + 1):
        for i in range(levels):
            order = [s for s in rates if i < len(rates[s])]
            rng.shuffle(order)
            plan += [
                (
                    key_of(
                        s,
                        load="open",
                        concurrency=max_in_flight,
                        rate=round(rates[s][i], 1),
                        arrivals=arrivals,
                        repeat=repeat,
                    ),
                    s,
                )
                for s in order
            ]
    return plan


def generator_workers(
    key: PointKey, settings: BenchSettings, calibration: CalibrationRecord | None
) -> int:
    """Local worker processes: `--generator-workers`; in open loop, more when the rate needs
    them (above the calibrated per-process ceiling), within the generator's cores."""
    chosen = settings.generator_workers
    if settings.remote_workers or key.load != "open" or key.rate is None or calibration is None:
        return chosen
    entry = calibration.wires.get(key.wire)
    ceiling = entry.open_loop.rate if entry and entry.open_loop else None
    cores = len(settings.pinning()[1] or []) or 1
    needed = math.ceil(key.rate / ceiling) if ceiling else 1
    if needed <= max(1, chosen) or cores < 2:
        # one core: a master and a worker would share it, each slower than one process alone
        return chosen
    # the cores cap only what is added: the workers asked for are never taken away
    return max(chosen, min(cores, needed))


def probe_plan(
    plan: MeasurePlan, rate: float | None, tail_requests: int, longest_s: float
) -> MeasurePlan:
    """`plan` for a point whose tail must be bounded: it settles only with `tail_requests`
    successful requests, and its cap is long enough to gather them at `rate` (a quarter to
    spare), within `longest_s`. Its windows are long enough to hold the successful requests a
    window needs to count (`Stability.min_window_ok`), so a low rate can still settle."""
    if tail_requests <= 0:
        return plan
    rule = plan.stability
    stability = rule.model_copy(update={"min_point_ok": max(rule.min_point_ok, tail_requests)})
    if not rate:
        return plan.model_copy(update={"stability": stability})
    window = max(plan.window_s, round(1.5 * rule.min_window_ok / rate, 1))  # Poisson: 4 sd
    needed_s = 1.25 * max(tail_requests / rate, rule.windows * window)
    cap = max(plan.max_duration_s, min(longest_s, needed_s))
    return plan.model_copy(
        update={"stability": stability, "window_s": window, "max_duration_s": cap}
    )


def point_plan(
    key: PointKey,
    series: Series,
    settings: BenchSettings,
    servers: BenchServers,
    calibration: CalibrationRecord | None,
    tail_requests: int = 0,
) -> PointPlan:
    """How to measure `key`: its server's address, the stopping rule, pinning, thresholds.

    `tail_requests`: an SLO probe's point settles only with that many successful requests, and
    runs up to `slo_probe_max_s` at a low rate to gather them (`probe_plan`).
    """
    server_cpus, generator_cpus = settings.pinning()
    scenario = series.scenario
    backend = get_backend(scenario.backend)
    running = servers.running.get(series.config.key)
    endpoint = next(e for e in backend.endpoints if e.scenario == scenario.name)
    metrics_url = None
    if key.scenario in servers.targets:
        host = servers.targets[key.scenario]
        metrics_url = settings.metrics_urls.get(key.scenario)
    elif running:
        host = endpoint_address(endpoint, settings.host, running.spec.ports)
        metrics_url = backend_metrics_url(backend, settings.host, running.spec.ports)
    else:
        host = ""
    options: dict[str, str] = {}
    extra: dict[str, str] = {}
    if settings.ca_bundle is not None:
        options["--ca-bundle"] = str(settings.ca_bundle)
    if key.load == "open" and key.rate is not None:
        options |= {
            "--arrival-rate": f"{key.rate:g}",
            "--arrivals": key.arrivals or settings.arrivals,
            "--arrival-seed": str(settings.arrival_seed + key.repeat),
        }
        # gevent's default libev/epoll rounds timers up to the millisecond; select does not
        extra = {"GEVENT_BACKEND": "select"}
    return PointPlan(
        key=key,
        host=host,
        plan=probe_plan(
            MeasurePlan(
                warmup_s=settings.warmup_s,
                window_s=settings.window_s,
                stability=settings.stability,
                max_duration_s=settings.max_duration_s,
            ),
            key.rate,
            tail_requests,
            settings.slo_probe_max_s,
        ),
        timeout_s=settings.timeout_s,
        stop_grace_s=settings.stop_grace_s,
        local_workers=generator_workers(key, settings, calibration),
        remote_workers=settings.remote_workers,
        master_bind=settings.master_bind,
        master_port=settings.master_port,
        generator_cpus=generator_cpus,
        # a target's processes are not ours to see: nothing to attribute on any core of it
        server_cpus=None if key.scenario in servers.targets else server_cpus,
        server_name=None if key.scenario in servers.targets else series.config.server_name,
        calibration=calibration,
        thresholds=Thresholds(
            added_latency_ms=settings.added_latency_bound_ms,
            contention_percent=settings.contention_percent,
            lateness_ms=settings.lateness_bound_ms,
        ),
        metrics_url=metrics_url,
        stage_metrics=backend.stage_metrics,
        load_options=options,
        extra_env=extra,
    )
