"""Read a run folder into one `RunData`: metadata, a table of points, repeats aggregated.

Every latency and throughput figure is recomputed from `requests.npz` with `runs.stats` (the
measured interval is stored in the file itself); the summary in `point.json` is not trusted.
`points` has one row per measured point (each repeat its own row); `aggregate` one row per
point across its repeats: the geometric mean and 95 % interval (`report.intervals`) of req/s,
p50 and p99, and how many repeats raised each flag. Series are ordered by backend (registry order),
then scenario, then configuration (default first), model and rows per request.
"""

from __future__ import annotations

import math
import os
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from servingbench.paths import results_dir
from servingbench.report.intervals import estimate, mean_interval
from servingbench.runs.layout import POINT_FILE, RECORDS_FILE, RunLayout, find_run, latest_run
from servingbench.runs.meta import RunMeta
from servingbench.runs.point import PointResult, ProcessUsage, SliceResult
from servingbench.runs.records import RequestRecords
from servingbench.runs.slo import parse_slo
from servingbench.runs.stats import LatencySummary, quantile_upper_bound, summarize, windows

__all__ = [
    "ESTIMATED",
    "GROUP",
    "RUN_ENV",
    "SAMPLE_RUN",
    "RunData",
    "default_run",
    "load_run",
]

RUN_ENV = "SERVINGBENCH_RUN"
SAMPLE_RUN = "sample"
LINE = ["series", "model", "rows_per_request"]
"""What one line of a table or plot shares: a series on one model and batch size."""
GROUP = [*LINE, "load", "level"]
"""What the repeats of one point share (the key without `repeat`), as table columns."""
ESTIMATED = ("rps", "p50_ms", "p99_ms", "avg_ms", "server_us_per_request")
"""Figures the aggregate gives as a geometric mean with a 95 % interval across its samples
(repeats, or an interleaved point's slices); the others are medians, and p99.9 is pooled over
each point's requests (a slice holds too few of them)."""

_NAN_SUMMARY = {name: float("nan") for name in LatencySummary.model_fields} | {
    "requests": 0,
    "ok": 0,
    "errors": 0,
    "incomplete": 0,
}


def _usage(point: PointResult, role: str) -> list[ProcessUsage]:
    rows = [u for u in point.usage if u.role == role]
    if role == "server":  # every server is sampled; the point's own is the one that counts
        rows = [u for u in rows if u.name == point.server_name] or rows
    return rows


def _sum(rows: list[ProcessUsage], attr: str, scale: float = 1.0) -> float:
    return sum(float(getattr(u, attr)) for u in rows) / scale if rows else float("nan")


def _stage(point: PointResult, stage: str) -> float:
    timing = point.server_timing
    figures = timing.stages.get(stage) if timing else None
    return figures.mean_ms if figures else float("nan")


def _goodput(records: RequestRecords | None, bound_ms: float | None) -> float:
    """Successful requests answered within the SLO's latency bound, per second of interval."""
    if records is None or bound_ms is None or records.duration_s <= 0:
        return float("nan")
    measured = records.measured()
    good = measured.ok & (measured.response_ns <= bound_ms * 1e6)
    return int(good.sum()) / records.duration_s


def _point_rows(
    point: PointResult, records: RequestRecords | None, slo_bound_ms: float | None
) -> list[dict[str, Any]]:
    """The point's samples: one row per slice of an interleaved point (its block as the
    repeat: slices of one block pair across series), else the point itself."""
    common = _common(point, records)
    if point.method != "interleaved" or records is None:
        return [common | _figures(point, records, slo_bound_ms, None)]
    wrk = {r.block: r for r in point.references if r.client == "wrk"}
    rows = []
    for index, piece in enumerate(point.slices):
        row = common | _figures(point, records.slice(index), slo_bound_ms, piece)
        row["repeat"] = piece.block
        reference = wrk.get(piece.block)
        if reference is not None:
            row["wrk_p50_ms"] = reference.p50_ms
            row["wrk_rps"] = reference.rps
            row["instrument_p50_ms"] = row["p50_ms"] - reference.p50_ms
        rows.append(row)
    return rows


def _common(point: PointResult, records: RequestRecords | None) -> dict[str, Any]:
    """What every sample of a point shares: its key, status, flags and pooled tails."""
    key = point.key
    flags = list(point.flags)
    tails = _tails(records)
    return {
        "point_id": point.point_id,
        "method": point.method,
        "series": key.series,
        "line": key.line,
        "scenario": key.scenario,
        "backend": key.backend,
        "wire": key.wire,
        "server_config": key.server_config,
        "model": key.model,
        "rows_per_request": key.rows_per_request,
        "load": key.load,
        "concurrency": key.concurrency,
        "rate": key.rate,
        "level": key.level,
        "repeat": key.repeat,
        "status": point.status,
        "failure_reason": point.failure_reason or "",
        "flags": ",".join(flags),
        "flagged": bool(flags),
        "has_records": records is not None,
        "converged": point.converged,
        "instrument_added_ms": _opt(point.instrument_added_ms),
        "server_ms": _stage(point, "server"),
        "model_ms": _stage(point, "model"),
        "queue_ms": _stage(point, "queue"),
        "header_ms": _opt(point.server_timing.header_mean_ms if point.server_timing else None),
        **tails,
    }


def _tails(records: RequestRecords | None) -> dict[str, Any]:
    """The point's tail percentiles over all its samples, each with its 99 % upper bound (NaN:
    too few samples to bound it, see `runs.stats.quantile_upper_bound`)."""
    if records is None:
        nan = float("nan")
        return {"pooled_ok": 0} | {
            column: nan for name in _TAILS for column in (f"pooled_{name}_ms", f"{name}_bound_ms")
        }
    measured = records.measured()
    ok = measured.response_ns[measured.ok] / 1e6
    out: dict[str, Any] = {"pooled_ok": int(ok.size)}
    for name, q in _TAILS.items():
        out[f"pooled_{name}_ms"] = float(np.percentile(ok, 100 * q)) if ok.size else float("nan")
        out[f"{name}_bound_ms"] = quantile_upper_bound(ok, q)
    return out


_TAILS = {"p99": 0.99, "p999": 0.999}


def _figures(
    point: PointResult,
    records: RequestRecords | None,
    slo_bound_ms: float | None,
    piece: SliceResult | None,
) -> dict[str, Any]:
    """One sample's figures: latency and throughput from its records, CPU from its usage."""
    figures = summarize(records).model_dump() if records is not None else dict(_NAN_SUMMARY)
    wins = windows(records, point.plan.window_s) if records is not None and point.plan else []
    generator, server = _usage(point, "generator"), _usage(point, "server")
    ok_rows = figures["ok"] * point.key.rows_per_request
    if piece is not None:
        server_cpu_s = piece.server_cpu_s if piece.server_cpu_s is not None else float("nan")
        generator_busiest = _opt(piece.generator_busiest_percent)
        server_other, generator_other = piece.server_other_percent, piece.generator_other_percent
    else:
        server_cpu_s = _sum(server, "cpu_percent") / 100 * figures["duration_s"]
        generator_busiest = max(
            (u.busiest_process_percent for u in generator), default=float("nan")
        )
        interference = point.interference
        server_other = interference.server_other_percent if interference else None
        generator_other = interference.generator_other_percent if interference else None
    completed = figures["rps"] * figures["duration_s"]
    return {
        **figures,
        "windows": len(wins),
        "generator_cpu_pct": _sum(generator, "cpu_percent"),
        "generator_busiest_pct": generator_busiest,
        "server_cpu_pct": _sum(server, "cpu_percent"),
        "server_pss_mb": _sum(server, "pss_bytes", 1e6),
        "server_rss_mb": _sum(server, "rss_bytes", 1e6),
        "server_us_per_request": 1e6 * server_cpu_s / completed if completed > 0 else math.nan,
        "preds_per_server_cpu_s": ok_rows / server_cpu_s if server_cpu_s > 0 else float("nan"),
        "server_other_pct": _opt(server_other),
        "generator_other_pct": _opt(generator_other),
        "idle_servers_pct": _opt(
            point.interference.idle_servers_percent if point.interference else None
        ),
        "goodput": _goodput(records, slo_bound_ms),
        "wrk_p50_ms": math.nan,
        "wrk_rps": math.nan,
        "instrument_p50_ms": math.nan,
    }


def _opt(value: float | None) -> float:
    return float("nan") if value is None else float(value)


def _series_rank(meta: RunMeta) -> dict[tuple[str, str], int]:
    """(backend, scenario) -> display rank, as the run recorded the registry."""
    order = [(name, s) for name, b in meta.backends.items() for s in b.scenarios]
    return {pair: i for i, pair in enumerate(order)}


def _short_lines(frame: pd.DataFrame) -> pd.DataFrame:
    """A run of one model and batch size names its lines by series alone."""
    if frame.empty or len(frame[["model", "rows_per_request"]].drop_duplicates()) > 1:
        return frame
    return frame.assign(line=frame["series"])


def _sort(frame: pd.DataFrame, meta: RunMeta) -> pd.DataFrame:
    if frame.empty:
        return frame
    rank = _series_rank(meta)
    keys = frame.assign(
        _rank=[
            rank.get((b, s), len(rank))
            for b, s in zip(frame["backend"], frame["scenario"], strict=True)
        ],
        _default=(frame["server_config"] != "default").astype(int),
    )  # fmt: skip
    order = ["_rank", "scenario", "_default", "server_config", "model", "rows_per_request",
             "load", "level", "repeat"]  # fmt: skip
    columns = [c for c in order if c in keys.columns]
    return keys.sort_values(columns, kind="stable").drop(columns=["_rank", "_default"])


def _flag_counts(flags: pd.Series) -> str:
    counts = Counter(f for text in flags for f in text.split(",") if f)
    return ",".join(f"{f}×{n}" if n > 1 else f for f, n in counts.items())


def aggregate(points: pd.DataFrame) -> pd.DataFrame:
    """One row per point across repeats (see the module docstring)."""
    if points.empty:
        return pd.DataFrame(columns=[*GROUP, "line", "repeats"])
    rows = []
    for values, group in points.groupby(GROUP, sort=False, dropna=False):
        measured = group[group["has_records"]]
        first = group.iloc[0]
        row: dict[str, Any] = dict(zip(GROUP, values, strict=True))
        for column in ("line", "scenario", "backend", "wire", "server_config", "concurrency",
                       "rate"):  # fmt: skip
            row[column] = first[column]
        row["repeats"] = len(measured)
        row["planned"] = len(group)
        for column in ESTIMATED:
            est = estimate(measured[column].tolist())
            row[column] = est.centre
            row[f"{column}_lo"] = est.low
            row[f"{column}_hi"] = est.high
        added = mean_interval(measured["instrument_p50_ms"].tolist())
        row["instrument_p50_ms"] = added.centre
        row["instrument_p50_ms_lo"], row["instrument_p50_ms_hi"] = added.low, added.high
        row["instrument_pairs"] = added.n
        per_point = measured.drop_duplicates("point_id")
        for column in ("pooled_p99_ms", "pooled_p999_ms", "p99_bound_ms", "p999_bound_ms"):
            pooled = per_point[column].to_numpy(dtype=float)
            row[column] = float(np.nanmedian(pooled)) if np.isfinite(pooled).any() else np.nan
        row["p999_ms"] = row["pooled_p999_ms"]
        row["pooled_ok"] = int(per_point["pooled_ok"].sum())
        for name in ("p99", "p999"):  # bounded only if every point's tail is
            bounds = per_point[f"{name}_bound_ms"].to_numpy(dtype=float)
            row[f"{name}_bounded"] = bool(bounds.size) and bool(np.isfinite(bounds).all())
        for column in ("error_rate", "effective_concurrency", "server_cpu_pct",
                       "generator_cpu_pct", "server_pss_mb", "instrument_added_ms",
                       "service_p50_ms", "service_p99_ms", "lateness_p99_ms", "server_ms",
                       "model_ms", "queue_ms", "header_ms", "goodput", "dropped",
                       "service_avg_ms", "model_cost_ms", "requests", "errors", "incomplete",
                       "p90_ms", "p95_ms"):  # fmt: skip
            values_ = measured[column].to_numpy(dtype=float)
            row[column] = float(np.nanmedian(values_)) if np.isfinite(values_).any() else np.nan
        row["flags"] = _flag_counts(group["flags"])
        row["flagged"] = bool(row["flags"])
        row["failed"] = int((~group["has_records"]).sum())
        row["point_ids"] = ",".join(group["point_id"])
        rows.append(row)
    return pd.DataFrame(rows)


@dataclass
class RunData:
    """One run as read from disk (see the module docstring)."""

    layout: RunLayout
    meta: RunMeta
    points: pd.DataFrame
    aggregate: pd.DataFrame
    results: dict[str, PointResult]
    folders: dict[str, Path] = field(default_factory=dict, repr=False)
    _records: dict[str, RequestRecords] = field(default_factory=dict, repr=False)

    @property
    def run_id(self) -> str:
        return self.layout.run_id

    @property
    def root(self) -> Path:
        return self.layout.root

    @property
    def closed(self) -> pd.DataFrame:
        """The aggregate's closed-loop rows (levels are user counts)."""
        agg = self.aggregate
        return agg[agg["load"] == "closed"] if not agg.empty else agg

    @property
    def series(self) -> list[str]:
        """Series labels in display order."""
        return list(dict.fromkeys(self.points["series"])) if len(self.points) else []

    @property
    def lines(self) -> list[str]:
        """Line labels in display order: a series on one model and batch size (the series
        label alone when the run has one model and batch size)."""
        return list(dict.fromkeys(self.points["line"])) if len(self.points) else []

    @property
    def ours(self) -> set[str]:
        """The backends that are this project's own service (as the run recorded them)."""
        return {name for name, b in self.meta.backends.items() if b.ours}

    def title(self, backend: str) -> str:
        """How the run named `backend` (its name, when the run did not record it)."""
        record = self.meta.backends.get(backend)
        return record.title if record is not None else backend

    def line_of(self, series: str, model: str, rows_per_request: int) -> str | None:
        """The line of `series` on that model and batch size, if the run measured it."""
        points = self.points
        match = points[
            (points["series"] == series)
            & (points["model"] == model)
            & (points["rows_per_request"] == rows_per_request)
        ]
        return str(match["line"].iloc[0]) if not match.empty else None

    def pick_point(
        self, series: str | None = None, level: float | None = None, repeat: int | None = None
    ) -> str:
        """A point with records: of `series` (default: the first) at `level` (default: the
        highest it measured), repeat `repeat` (default: the first). For the notebook."""
        measured = self.points[self.points["has_records"]]
        if measured.empty:
            raise ValueError(f"run {self.run_id} has no point with records")
        series = series or str(measured["series"].iloc[0])
        rows = measured[measured["series"] == series]
        if rows.empty:
            raise KeyError(f"series {series!r} has no measured point; have: {self.series}")
        level = float(rows["level"].max()) if level is None else level
        rows = rows[rows["level"] == level]
        if repeat is not None:
            rows = rows[rows["repeat"] == repeat]
        if rows.empty:
            known = sorted(set(measured.loc[measured["series"] == series, "level"]))
            raise KeyError(f"no point of {series} at {level} (repeat {repeat}); levels: {known}")
        return str(rows["point_id"].iloc[0])

    def records(self, point_id: str) -> RequestRecords:
        """The raw per-request records of one point (loaded once, then cached)."""
        if point_id not in self._records:
            folder = self.folders.get(point_id, self.layout.point_dir(point_id))
            path = folder / RECORDS_FILE
            if not path.is_file():
                raise FileNotFoundError(f"point {point_id} has no {RECORDS_FILE} (failed point?)")
            self._records[point_id] = RequestRecords.load(path)
        return self._records[point_id]


def default_run(base: Path | None = None) -> RunLayout:
    """`$SERVINGBENCH_RUN` (id or path), else the newest run, else the committed results/sample."""
    base = base or results_dir()
    chosen = os.environ.get(RUN_ENV)
    if chosen:
        return find_run(chosen, base)
    try:
        return latest_run(base)
    except FileNotFoundError:
        pass
    try:
        return find_run(SAMPLE_RUN, base)
    except FileNotFoundError:
        raise FileNotFoundError(
            f"no run under {base} and no sample run at {base / SAMPLE_RUN}: run `make bench`, "
            f"or set {RUN_ENV} to a run id or path"
        ) from None


def load_run(run: str | Path | RunLayout | None = None) -> RunData:
    """Load a run given as id, path or layout; None picks `default_run()`.

    A run written by another schema version is refused (`runs.schema.IncompatibleRunError`).
    """
    if run is None:
        layout = default_run()
    elif isinstance(run, RunLayout):
        layout = run
    else:
        layout = find_run(str(run))
    meta = RunMeta.read(layout.meta)
    slo = meta.sweep.slo
    bound = parse_slo(slo).latency_bound_ms if slo else None
    results: dict[str, PointResult] = {}
    folders: dict[str, Path] = {}
    rows = []
    cache: dict[str, RequestRecords] = {}
    for folder in layout.point_dirs():
        point = PointResult.read(folder / POINT_FILE)
        npz = folder / RECORDS_FILE
        records = RequestRecords.load(npz) if npz.is_file() else None
        results[point.point_id] = point
        folders[point.point_id] = folder
        rows.extend(_point_rows(point, records, bound))
    frame = _short_lines(_sort(pd.DataFrame(rows), meta))
    if not frame.empty:
        costs = {(c.model, c.rows_per_request): c.mean_ms for c in meta.model_costs}
        frame["model_cost_ms"] = [
            costs.get((m, r), float("nan"))
            for m, r in zip(frame["model"], frame["rows_per_request"], strict=True)
        ]
    return RunData(layout, meta, frame, aggregate(frame), results, folders, cache)
