"""A synthetic run folder, written with the run contract's own types, for report and notebook tests.

Every file is what a sweep writes, made by the same classes: the folder by `create_run`,
`meta.json` by `RunMeta` (its `sweep` is a real `BenchSettings` dump), each `point.json` by
`PointResult` (key `PointKey`, windows from `runs.stats.windows`), each `requests.npz` by
`RequestRecords.save`. Nothing here is hand-written JSON, so a change of the contract shows up
as a failing test instead of a stale fixture.

Latencies are the caller's to choose. `make_run(base, shape=fn)` asks `fn(series, key)` for
the `Shape` of every point (every repeat of every level of every series) and simulates it:

- closed loop (`levels`: users): each user sends back to back, from t=0, until the end of the
  measured interval; requests started in the warm-up take `warmup_factor` times longer (so a
  test can see they are left out);
- open loop (`rates`: arrivals per second): one arrival every 1/rate s, each sent
  `lateness_ms` after its intended time.

A request takes `latency_ms * exp(spread * z)`, z standard normal (seeded): `latency_ms` is the
median, and with `spread=0` (the default of `Shape`) every request takes exactly `latency_ms`,
so p50 = p99 = avg = `latency_ms` (plus `lateness_ms` in open loop) and a closed-loop point of N
users serves N / `latency_ms` req/s (within N requests over the interval). Errors, incomplete
and dropped requests, flags, a failed repeat, server timing and CPU are all `Shape` fields.

`default_shape` is a realistic run (`SERIES` x `LEVELS` x `REPEATS`, lognormal jitter, a drift
shared by all series in each pass) with one point of each kind: `FAILED` (one repeat without
records), `CLIENT_BOUND`, `UNSTABLE`, `ERRORS`. Every point.json's `summary` is deliberately
wrong (`WRONG`), so a test can prove the report recomputes every figure from requests.npz.

To change meta.json after the fact, read it with `RunMeta.read`, change it, `write` it back.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from servingbench.runs.layout import POINT_FILE, RECORDS_FILE, RunLayout, create_run
from servingbench.runs.machine import GitInfo, Hardware, Software
from servingbench.runs.meta import ModelCost, Pinning, RunMeta, ServerRecord
from servingbench.runs.point import (
    Flag,
    GeneratorReport,
    InterleavePlan,
    PointKey,
    PointResult,
    ProcessUsage,
    ReferenceSlice,
    SliceResult,
    series_label,
)
from servingbench.runs.records import NO_REASON, UNKNOWN_NS, Outcome, RequestRecords
from servingbench.runs.stats import MeasurePlan, outcome_counts, summarize, windows
from servingbench.runs.timing import ServerTiming, StageFigures
from servingbench.servers import scenarios
from servingbench.sweep.meta import backends_meta
from servingbench.sweep.settings import BenchSettings

__all__ = [
    "CLIENT_BOUND",
    "DRIFT",
    "ERRORS",
    "FAILED",
    "FROM_NS",
    "LEVELS",
    "MAX_IN_FLIGHT",
    "MEASURED_S",
    "MODEL_COSTS",
    "MS",
    "NS",
    "REPEATS",
    "SERIES",
    "TO_NS",
    "UNSTABLE",
    "WARMUP_S",
    "WINDOW_S",
    "WRONG",
    "Series",
    "Shape",
    "ShapeFn",
    "constant",
    "default_shape",
    "make_run",
]

NS = 1_000_000_000
MS = 1_000_000
WARMUP_S = 0.5
MEASURED_S = 1.5
WINDOW_S = 0.5
FROM_NS = round(WARMUP_S * NS)
"""Start of every point's measured interval, in ns since its first request."""
TO_NS = FROM_NS + round(MEASURED_S * NS)
MAX_IN_FLIGHT = 64
"""Open loop: the cap on requests in flight (the key's `concurrency`)."""
WRONG = -1.0
"""What every point.json claims for its summary's rps, p50 and p99: the report must not read it."""


@dataclass(frozen=True)
class Series:
    """One line of the report: a registered scenario under a configuration, with a model.

    `base_ms` is the median latency at one user that `default_shape` starts from.
    """

    scenario: str
    server_config: str = "default"
    model: str = "iris"
    rows_per_request: int = 1
    base_ms: float = 1.0

    @property
    def label(self) -> str:
        return series_label(self.scenario, self.server_config)

    @property
    def backend(self) -> str:
        return scenarios()[self.scenario].backend

    @property
    def wire(self) -> str:
        return scenarios()[self.scenario].wire

    @property
    def server_name(self) -> str:
        """The server's process name, as `ServerConfig.server_name` makes it."""
        return f"{self.backend}-{self.server_config}"


@dataclass(frozen=True)
class Shape:
    """How one point (one repeat at one level) behaves; times in ms.

    error_every: every n-th request (in start order, warm-up included) fails, cycling through
        http-status, timeout and connection; 0 = none
    incomplete: the last n requests are still in flight at the stop (INCOMPLETE)
    drop_every: open loop: every n-th arrival finds no free slot (DROPPED); 0 = none
    server_ms, model_ms, queue_ms: the server's own stage means (`ServerTiming`); None = the
        server did not report that stage
    """

    latency_ms: float
    spread: float = 0.0
    warmup_factor: float = 3.0
    lateness_ms: float = 0.0
    error_every: int = 0
    incomplete: int = 0
    drop_every: int = 0
    flags: tuple[Flag, ...] = ()
    failed: bool = False
    converged: bool = True
    server_ms: float | None = None
    model_ms: float | None = None
    queue_ms: float | None = None
    server_cpu_percent: float = 90.0
    generator_cpu_percent: float = 40.0
    instrument_added_ms: float | None = None
    wrk_p50_ms: float | None = None
    """Interleaved runs: wrk's median in the same block (a reference slice), when set."""


ShapeFn = Callable[[Series, PointKey], Shape]
"""(series, the point's key: level, load, repeat) -> how the point behaves."""

SERIES: tuple[Series, ...] = (
    Series("fastapi-rest", base_ms=1.0),
    Series("fastapi-rest", "batching", base_ms=1.2),
    Series("mlserver-rest", base_ms=2.0),
    Series("mlserver-grpc", base_ms=2.5),
)
LEVELS: tuple[int, ...] = (1, 4, 16)
REPEATS = 3
DRIFT = (1.0, 1.03, 0.98)
"""`default_shape`'s factor on every latency of repeat k (one pass of the sweep: shared by all
series, so paired ratios cancel it)."""
MODEL_COSTS: dict[str, float] = {
    "iris": 0.05,
    "breast-cancer-xgb10": 0.1,
    "breast-cancer": 0.3,
    "breast-cancer-xgb1000": 2.0,
}
"""In-process model cost per row (ms), recorded as meta.json's `model_costs`."""

# (series label, level, repeat or None for every repeat)
FAILED = ("mlserver-grpc", 16, 2)
CLIENT_BOUND = ("fastapi-rest", 16, None)
UNSTABLE = ("mlserver-rest", 4, 1)
ERRORS = ("mlserver-rest", 16, None)


def _is(spot: tuple[str, int, int | None], series: Series, key: PointKey) -> bool:
    label, level, repeat = spot
    return (series.label, key.level) == (label, level) and repeat in (None, key.repeat)


def default_shape(series: Series, key: PointKey) -> Shape:
    """Latency grows with load (a saturating server); lognormal jitter; the special points."""
    level = float(key.level) if key.load == "closed" else 1.0
    latency = series.base_ms * (1 + 0.6 * (level - 1)) * DRIFT[(key.repeat - 1) % len(DRIFT)]
    flags: list[Flag] = []
    if _is(CLIENT_BOUND, series, key):
        flags.append("client-bound")
    if _is(UNSTABLE, series, key):
        flags.append("unstable")
    if _is(ERRORS, series, key):
        flags.append("errors")
    model = MODEL_COSTS.get(series.model, 0.05) * series.rows_per_request
    return Shape(
        latency_ms=latency,
        spread=0.25,
        error_every=100 if _is(ERRORS, series, key) else 0,
        flags=tuple(flags),
        failed=_is(FAILED, series, key),
        converged=not _is(UNSTABLE, series, key),
        server_ms=0.8 * latency,
        model_ms=model if series.backend == "fastapi" else None,
        queue_ms=0.1 * latency if series.server_config == "batching" else None,
        generator_cpu_percent=95.0 if _is(CLIENT_BOUND, series, key) else 40.0,
    )


def constant(latency_ms: Callable[[Series, PointKey], float], **fields: Any) -> ShapeFn:
    """A shape with no jitter: every measured request takes `latency_ms(series, key)`.

    `fields` are further `Shape` fields, the same for every point.
    """
    return lambda series, key: Shape(latency_ms=latency_ms(series, key), **fields)


def _jitter(rng: np.random.Generator, spread: float, n: int) -> np.ndarray:
    if spread == 0:
        return np.ones(n)
    jitter: np.ndarray = np.exp(spread * rng.standard_normal(n))
    return jitter


def _closed(shape: Shape, users: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """(start_ns, latency_ns) of `users` back-to-back users, sorted by start."""
    lat_ns = shape.latency_ms * MS
    starts, latencies = [], []
    for user in range(users):
        offset = round(lat_ns * user / users)  # users spread over one request's time
        n = int(FROM_NS / (lat_ns * shape.warmup_factor) + (TO_NS - FROM_NS) / lat_ns) * 2 + 8
        while True:
            jitter = _jitter(rng, shape.spread, n)
            warm = np.maximum(1, np.rint(lat_ns * shape.warmup_factor * jitter)).astype(np.int64)
            hot = np.maximum(1, np.rint(lat_ns * jitter)).astype(np.int64)
            warm_start = offset + np.concatenate(([0], np.cumsum(warm)[:-1]))
            k = int(np.searchsorted(warm_start, FROM_NS))  # the first request meant to be measured
            if k < n:
                hot_start = warm_start[k] + np.concatenate(([0], np.cumsum(hot[k:])[:-1]))
                if hot_start[-1] >= TO_NS:
                    break
            n *= 2
        start = np.concatenate((warm_start[:k], hot_start))
        latency = np.concatenate((warm[:k], hot[k:]))
        keep = start < TO_NS
        starts.append(start[keep])
        latencies.append(latency[keep])
    start, latency = np.concatenate(starts), np.concatenate(latencies)
    order = np.argsort(start, kind="stable")
    return start[order].astype(np.int64), latency[order].astype(np.int64)


def _open(shape: Shape, rate: float, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """(intended_ns, latency_ns) of one arrival every 1/rate s until the interval's end."""
    intended = np.rint(np.arange(math.ceil(TO_NS * rate / NS)) * NS / rate).astype(np.int64)
    intended = intended[intended < TO_NS]
    jitter = _jitter(rng, shape.spread, intended.size)
    factor = np.where(intended < FROM_NS, shape.warmup_factor, 1.0)
    latency = np.maximum(1, np.rint(shape.latency_ms * MS * jitter * factor)).astype(np.int64)
    return intended, latency


def _records(shape: Shape, key: PointKey, rng: np.random.Generator) -> RequestRecords:
    lateness = round(shape.lateness_ms * MS)
    if key.load == "closed":
        start, latency = _closed(shape, key.concurrency, rng)
        intended = start.copy()
    else:
        intended, latency = _open(shape, float(key.level), rng)
        start = intended + lateness
    outcome = np.zeros(start.size, dtype=np.int8)
    if shape.error_every:
        failing = np.arange(shape.error_every - 1, start.size, shape.error_every)
        kinds = (Outcome.HTTP_STATUS, Outcome.TIMEOUT, Outcome.CONNECTION)
        outcome[failing] = [kinds[i % len(kinds)] for i in range(failing.size)]
    if shape.incomplete:
        outcome[-shape.incomplete :] = Outcome.INCOMPLETE
    if shape.drop_every and key.load == "open":
        dropped = np.arange(shape.drop_every - 1, start.size, shape.drop_every)
        outcome[dropped] = Outcome.DROPPED
        start[dropped] = intended[dropped]  # as the dispatcher records them: never sent
        latency[dropped] = 0
    labels = [Outcome(int(code)).label for code in np.unique(outcome)]
    texts = [f"synthetic {label}" for label in labels]
    reason = np.searchsorted(np.unique(outcome), outcome).astype(np.int32)
    reason[outcome == Outcome.OK] = NO_REASON
    return RequestRecords(
        start_ns=start,
        latency_ns=latency,
        outcome=outcome,
        intended_ns=intended,
        server_ns=np.full(start.size, UNKNOWN_NS, dtype=np.int64),
        from_ns=FROM_NS,
        to_ns=TO_NS,
        reason=reason,
        reason_texts=texts,
    )


def _usage(series: Series, shape: Shape, others: Sequence[str]) -> list[ProcessUsage]:
    def one(role: Any, name: str, cpu: float, mb: float) -> ProcessUsage:
        return ProcessUsage(
            role=role,
            name=name,
            pids=[1000],
            cpu_percent=cpu,
            cpu_seconds=cpu / 100 * MEASURED_S,
            busiest_process_percent=cpu,
            rss_bytes=round(mb * 1.25e6),
            pss_bytes=round(mb * 1e6),
            uss_bytes=round(mb * 0.9e6),
            cpus=[1] if role == "generator" else [0],
        )

    # the sweep samples every server it started; only the point's own one counts
    idle = [one("server", name, 2.0, 80.0) for name in others if name != series.server_name]
    return [
        one("server", series.server_name, shape.server_cpu_percent, 250.0),
        *idle,
        one("generator", "locust", shape.generator_cpu_percent, 60.0),
    ]


def _timing(series: Series, shape: Shape) -> ServerTiming | None:
    stages = {
        stage: StageFigures(stage=stage, source=f"synthetic_{stage}_seconds", count=1, mean_ms=ms)
        for stage, ms in (
            ("server", shape.server_ms),
            ("model", shape.model_ms),
            ("queue", shape.queue_ms),
        )
        if ms is not None
    }
    return ServerTiming(stages=stages) if stages else None


def _point(
    layout: RunLayout,
    series: Series,
    key: PointKey,
    shape: Shape,
    rng: np.random.Generator,
    servers: Sequence[str],
) -> PointResult:
    folder = layout.point_dir(key.point_id())
    common: dict[str, Any] = {
        "point_id": key.point_id(),
        "key": key,
        "host": "127.0.0.1",
        "server_name": series.server_name,
        "started_at": "2025-01-01T00:00:00+00:00",
        "finished_at": "2025-01-01T00:00:02+00:00",
        "plan": MeasurePlan(warmup_s=WARMUP_S, window_s=WINDOW_S, max_duration_s=4 * MEASURED_S),
        "timeout_s": 1.0,
        "pinning": {"server": [0], "generator": [1]},
    }
    if shape.failed:
        reason = f"server {series.server_name} died (synthetic)"
        result = PointResult(
            **common,
            status="failed",
            failure_reason=reason,
            flags=["failed"],
            flag_reasons={"failed": reason},
        )
        result.write(folder / POINT_FILE)
        return result
    records = _records(shape, key, rng)
    records.save(folder / RECORDS_FILE)
    summary = summarize(records)
    stop = "converged" if shape.converged else "cap"
    result = PointResult(
        **common,
        status="ok",
        flags=list(shape.flags),
        flag_reasons={flag: f"synthetic {flag}" for flag in shape.flags},
        measured_s=records.duration_s,
        converged=shape.converged,
        stop_reason=stop,
        summary=summary.model_copy(update={"rps": WRONG, "p50_ms": WRONG, "p99_ms": WRONG}),
        windows=windows(records, WINDOW_S),
        usage=_usage(series, shape, servers),
        errors_by_outcome=outcome_counts(records),
        generator=GeneratorReport(
            t0_ns=0,
            from_ns=FROM_NS,
            to_ns=TO_NS,
            stop_reason=stop,
            windows=len(windows(records, WINDOW_S)),
            dropped=summary.dropped,
            arrivals=len(records) if key.load == "open" else 0,
            seed=1 if key.load == "open" else None,
        ),
        server_timing=_timing(series, shape),
        instrument_added_ms=shape.instrument_added_ms,
    )
    result.write(folder / POINT_FILE)
    return result


SLICE_PERIOD_NS = TO_NS + FROM_NS
"""Interleaved points: each block's slice is laid out this far after the previous one."""


def _interleaved_point(
    layout: RunLayout,
    series: Series,
    key: PointKey,
    shape: ShapeFn,
    blocks: int,
    rng: np.random.Generator,
    servers: Sequence[str],
) -> PointResult:
    """One (series, level) measured in `blocks` slices; block b's slice behaves as
    `shape(series, key with repeat=b)` (so `default_shape`'s drift per repeat becomes a drift
    per block, shared by every series), its settle is the warm-up part of `_closed`."""
    parts, spans, slices, references = [], [], [], []
    usage_shape = shape(series, key)
    for block in range(1, blocks + 1):
        wanted = shape(series, key.model_copy(update={"repeat": block}))
        records = _records(wanted, key, rng)
        offset = (block - 1) * SLICE_PERIOD_NS
        parts.append(replace(records, start_ns=records.start_ns + offset,
                             intended_ns=records.intended_ns + offset))  # fmt: skip
        spans.append([offset + FROM_NS, offset + TO_NS])
        slices.append(
            SliceResult(
                block=block,
                from_ns=offset + FROM_NS,
                to_ns=offset + TO_NS,
                server_cpu_s=wanted.server_cpu_percent / 100 * MEASURED_S,
                generator_busiest_percent=wanted.generator_cpu_percent,
            )
        )
        if wanted.wrk_p50_ms is not None:
            wrk = wanted.wrk_p50_ms
            references.append(ReferenceSlice(block=block, client="wrk", rps=1e3 / wrk,
                                             p50_ms=wrk, p99_ms=2 * wrk))  # fmt: skip
    merged = RequestRecords.concat(parts, 0, FROM_NS, spans[-1][1])
    merged.slices = np.asarray(spans, dtype=np.int64)
    folder = layout.point_dir(key.point_id())
    merged.save(folder / RECORDS_FILE)
    summary = summarize(merged)
    result = PointResult(
        point_id=key.point_id(),
        key=key,
        host="127.0.0.1",
        server_name=series.server_name,
        started_at="2025-01-01T00:00:00+00:00",
        finished_at="2025-01-01T00:00:02+00:00",
        status="ok",
        method="interleaved",
        interleave=InterleavePlan(
            slice_s=(TO_NS) / NS, settle_s=WARMUP_S, gap_s=0.5, blocks=blocks, seed=1
        ),
        slices=slices,
        references=references,
        flags=list(usage_shape.flags),
        flag_reasons={flag: f"synthetic {flag}" for flag in usage_shape.flags},
        timeout_s=1.0,
        measured_s=merged.duration_s,
        summary=summary.model_copy(update={"rps": WRONG, "p50_ms": WRONG, "p99_ms": WRONG}),
        usage=_usage(series, usage_shape, servers),
        errors_by_outcome=outcome_counts(merged),
        server_timing=_timing(series, usage_shape),
        instrument_added_ms=usage_shape.instrument_added_ms,
        pinning={"server": [0], "generator": [1]},
    )
    result.write(folder / POINT_FILE)
    return result


def _meta(
    run_id: str,
    series: Sequence[Series],
    levels: Sequence[int],
    rates: Sequence[float],
    repeats: int,
    slo: str | None,
    model_costs: Mapping[str, float],
) -> RunMeta:
    configs = sorted({f"{s.backend}:{s.server_config}" for s in series})
    settings = BenchSettings(
        scenarios=list(dict.fromkeys(s.scenario for s in series)),
        server_configs=configs,
        concurrency=list(levels) or [1],
        models=list(dict.fromkeys(s.model for s in series)),
        rows=list(dict.fromkeys(s.rows_per_request for s in series)),
        repeats=repeats,
        seed=1234,
        warmup_s=WARMUP_S,
        window_s=WINDOW_S,
        max_duration_s=4 * MEASURED_S,
        timeout_s=1.0,
        load="open" if rates and not levels else "closed",
        rates=list(rates) if rates else "auto",
        arrivals="constant",
        max_in_flight=MAX_IN_FLIGHT,
        slo=slo,
        server_cpus=[0],
        generator_cpus=[1],
        run_id=run_id,
    )
    pairs = sorted({(s.model, s.rows_per_request) for s in series})
    return RunMeta(
        run_id=run_id,
        status="complete",
        started_at="2025-01-01T00:00:00+00:00",
        finished_at="2025-01-01T00:10:00+00:00",
        argv=["servingbench", "bench", "(synthetic)"],
        cwd="/synthetic",
        git=GitInfo(commit="0123456789ab" + "0" * 28, dirty=True),
        hardware=Hardware(
            cpu_model="Synthetic CPU",
            logical_cores=2,
            physical_cores=2,
            cpu_max_mhz=None,
            memory_total_bytes=8 * 2**30,
            os="Linux",
            kernel="6.0.0-synthetic",
            affinity_available=True,
        ),
        software=Software(
            python="3.11.9",
            implementation="CPython",
            packages={"locust": "2.0.0", "numpy": "2.0.0", "grpcio": "1.0.0"},
        ),
        sweep=settings.model_dump(mode="json"),
        backends=backends_meta(),
        pinning=Pinning(server=[0], generator=[1], harness=[0]),
        order="repeat-major, then load level (synthetic)",
        artifacts={},
        servers={
            s.server_name: ServerRecord(
                backend=s.backend,
                server_config=s.server_config,
                key=f"{s.backend}:{s.server_config}",
                argv=[s.backend, "serve"],
                cpus=[0],
                startup_s=1.0,
            )
            for s in series
        },
        model_costs=[
            ModelCost(
                model=model,
                rows_per_request=rows,
                p50_ms=model_costs.get(model, 0.05) * rows,
                mean_ms=model_costs.get(model, 0.05) * rows,
                calls=1000,
            )
            for model, rows in pairs
        ],
        notes=["synthetic run written by tests/synthetic_run.py"],
    )


def make_run(
    base: Path,
    run_id: str = "synthetic",
    *,
    series: Sequence[Series] = SERIES,
    levels: Sequence[int] = LEVELS,
    rates: Sequence[float] = (),
    repeats: int = REPEATS,
    shape: ShapeFn = default_shape,
    scale: float = 1.0,
    seed: int = 7,
    slo: str | None = None,
    model_costs: Mapping[str, float] = MODEL_COSTS,
    blocks: int = 0,
) -> RunLayout:
    """Write a complete run under `base/run_id` and return its layout.

    Closed-loop points at each of `levels` (users), open-loop ones at each of `rates`
    (arrivals per second), `repeats` times each, for every series, shaped by `shape`. `scale`
    multiplies every latency (a slower machine), `seed` draws the jitter, `slo` is recorded
    as the sweep's `--slo`, `model_costs` (ms per row, by model) as its in-process costs.
    With `blocks`, the closed-loop levels are interleaved points instead: one per series and
    level, measured in that many slices (the shape's `repeat` is then the block).
    """
    layout = create_run(base, run_id)
    if blocks:
        meta = _meta(run_id, series, levels, rates, blocks, slo, model_costs)
        servers = list(meta.servers)
        for index, (one, users) in enumerate((o, n) for o in series for n in levels):
            key = PointKey(
                scenario=one.scenario, backend=one.backend, wire=one.wire,
                server_config=one.server_config, model=one.model,
                rows_per_request=one.rows_per_request, concurrency=users,
            )  # fmt: skip

            def scaled(one: Series, key: PointKey) -> Shape:
                wanted = shape(one, key)
                return replace(wanted, latency_ms=wanted.latency_ms * scale)

            point = _interleaved_point(
                layout, one, key, scaled, blocks, np.random.default_rng([seed, index]), servers
            )
            meta.points.append(point.point_id)
        meta.write(layout.meta)
        return layout
    meta = _meta(run_id, series, levels, rates, repeats, slo, model_costs)
    servers = list(meta.servers)
    keys: list[tuple[Series, PointKey]] = []
    for repeat in range(1, repeats + 1):
        for one in series:
            common: dict[str, Any] = {
                "scenario": one.scenario,
                "backend": one.backend,
                "wire": one.wire,
                "server_config": one.server_config,
                "model": one.model,
                "rows_per_request": one.rows_per_request,
                "repeat": repeat,
            }
            keys += [(one, PointKey(**common, concurrency=n)) for n in levels]
            keys += [
                (
                    one,
                    PointKey(
                        **common,
                        load="open",
                        concurrency=MAX_IN_FLIGHT,
                        rate=float(rate),
                        arrivals="constant",
                    ),
                )
                for rate in rates
            ]
    for index, (one, key) in enumerate(keys):
        wanted = shape(one, key)
        if scale != 1.0:
            wanted = replace(wanted, latency_ms=wanted.latency_ms * scale)
        result = _point(layout, one, key, wanted, np.random.default_rng([seed, index]), servers)
        (meta.failed_points if result.status == "failed" else meta.points).append(result.point_id)
    meta.write(layout.meta)
    return layout
