"""Read a run folder into one `RunData`: metadata, a table of points, records on demand.

Every latency and throughput figure in the table is recomputed from `requests.npz` with
`runs.stats`; the summary the sweep stored in `point.json` is not trusted. Only the measured
span (`measured_s`) and the window length are taken from it, so req/s and windows match the
sweep's. Records are loaded again only when a view asks for one point's requests, so the table
stays cheap to hold.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from servingbench.paths import results_dir
from servingbench.runs.layout import POINT_FILE, RECORDS_FILE, RunLayout, find_run, latest_run
from servingbench.runs.point import PointResult, series_label
from servingbench.runs.records import RequestRecords
from servingbench.runs.stats import (
    DEFAULT_WINDOW_S,
    LatencySummary,
    Window,
    relative_spread,
    summarize,
    windows,
)

__all__ = [
    "RUN_ENV",
    "SAMPLE_RUN",
    "SCENARIO_ORDER",
    "RunData",
    "default_run",
    "load_run",
    "series_label",
]

RUN_ENV = "SERVINGBENCH_RUN"
SAMPLE_RUN = "sample"
SCENARIO_ORDER = ("fastapi-rest", "fastapi-v2-rest", "mlserver-rest", "mlserver-grpc")


def _usage(point: PointResult, role: str, backends: dict[str, str]) -> tuple[float, float, float]:
    """CPU %, CPU seconds and RSS (MB) of the point's processes of one role.

    The sweep samples every running server during every point; a server's figures are those
    of the server behind the point's backend (by name, or by `meta.servers[name].backend`),
    never the idle one beside it. Only when none matches are all servers summed.
    """
    rows = [u for u in point.usage if u.role == role]
    if role == "server":
        own = (
            [u for u in rows if u.name == point.server_name]
            if point.server_name
            else [u for u in rows if point.backend in (u.name, backends.get(u.name))]
        )
        rows = own or rows
    if not rows:
        return float("nan"), float("nan"), float("nan")
    return (
        sum(u.cpu_percent for u in rows),
        sum(u.cpu_seconds for u in rows),
        sum(u.rss_bytes for u in rows) / 1e6,
    )


def _window_s(point: PointResult) -> float:
    """The window length the sweep used: saved in point.json, else read off its first window
    (older points), else the sweep's default."""
    if point.window_s is not None:
        return point.window_s
    if point.windows:
        return max(point.windows[0].end_s - point.windows[0].start_s, 1e-3)
    return DEFAULT_WINDOW_S


def _preds_per_cpu_s(ok_rows: float, cpu_pct: float, duration_s: float) -> float:
    """Predictions per server CPU-second over the measured window.

    The sampled CPU seconds cover only the samples inside the window (every 0.25 s, none at its
    end), a shorter span than the one the requests were counted over; CPU % is a rate over the
    sampled span, so scaling it to the whole window keeps numerator and denominator consistent.
    """
    cpu_s = cpu_pct / 100 * duration_s
    return ok_rows / cpu_s if cpu_s > 0 else float("nan")


def _nan_summary() -> dict[str, float]:
    names = LatencySummary.__dataclass_fields__
    return {name: (0.0 if name in ("requests", "ok", "errors") else float("nan")) for name in names}


def _point_row(
    point: PointResult, records: RequestRecords | None, backends: dict[str, str]
) -> dict[str, Any]:
    # the sweep's measured span when it recorded one, so req/s matches point.json's summary
    figures = (
        summarize(records, point.measured_s).as_dict() if records is not None else _nan_summary()
    )
    wins: list[Window] = windows(records, _window_s(point)) if records is not None else []
    gen_cpu, _, _ = _usage(point, "generator", backends)
    srv_cpu, srv_cpu_s, srv_rss = _usage(point, "server", backends)
    flags = list(point.flags)
    if point.status == "failed" and "failed" not in flags:
        flags.append("failed")
    ok_rows = figures["ok"] * point.rows_per_request
    return {
        "point_id": point.point_id,
        "series": series_label(point.scenario, point.server_config),
        "scenario": point.scenario,
        "server_config": point.server_config,
        "backend": point.backend,
        "protocol": point.protocol,
        "concurrency": point.concurrency,
        "rows_per_request": point.rows_per_request,
        "status": point.status,
        "failure_reason": point.failure_reason or "",
        "flags": ",".join(flags),
        "flagged": bool(flags),
        "has_records": records is not None,
        **figures,
        "generator_cpu_pct": gen_cpu,
        "server_cpu_pct": srv_cpu,
        "server_cpu_s": srv_cpu_s,
        "server_rss_mb": srv_rss,
        "preds_per_server_cpu_s": _preds_per_cpu_s(ok_rows, srv_cpu, figures["duration_s"]),
        "windows": len(wins),
        "rps_spread": relative_spread([w.rps for w in wins]),
        "p50_spread": relative_spread([w.p50_ms for w in wins]),
        "p99_spread": relative_spread([w.p99_ms for w in wins]),
    }


def _series_key(scenario: str, server_config: str) -> tuple[int, str, int, str]:
    known = scenario in SCENARIO_ORDER
    rank = SCENARIO_ORDER.index(scenario) if known else len(SCENARIO_ORDER)
    return (rank, scenario, 0 if server_config == "default" else 1, server_config)


@dataclass
class RunData:
    """One run as read from disk. `points` has one row per point, sorted by series then N."""

    layout: RunLayout
    meta: dict[str, Any]
    points: pd.DataFrame
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
    def series(self) -> list[str]:
        """Series labels in display order (scenario order, then configuration)."""
        return list(dict.fromkeys(self.points["series"])) if len(self.points) else []

    def point_id(self, series: str, concurrency: int) -> str:
        """The point of `series` at `concurrency`, or a KeyError that lists what exists."""
        rows = self.points[
            (self.points["series"] == series) & (self.points["concurrency"] == concurrency)
        ]
        if rows.empty:
            known = ", ".join(f"{s}@c{c}" for s, c in self.points[["series", "concurrency"]].values)
            raise KeyError(f"no point {series} at concurrency {concurrency}; run has: {known}")
        return str(rows["point_id"].iloc[0])

    def pick_point(self, series: str | None = None, concurrency: int | None = None) -> str:
        """A point with records: of `series` (default: the first) at `concurrency` (default: the
        highest it measured). Lets the notebook drill in without hand-typing point ids."""
        measured = self.points[self.points["has_records"]]
        if measured.empty:
            raise ValueError(f"run {self.run_id} has no point with records")
        series = series or str(measured["series"].iloc[0])
        rows = measured[measured["series"] == series]
        if concurrency is None and not rows.empty:
            concurrency = int(rows["concurrency"].max())
        if concurrency is None:
            raise KeyError(f"series {series!r} has no measured point; have: {self.series}")
        return self.point_id(series, concurrency)

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


def _read_meta(layout: RunLayout) -> dict[str, Any]:
    try:
        meta = json.loads(layout.meta.read_text())
    except json.JSONDecodeError as exc:
        raise ValueError(f"{layout.meta} is not valid JSON: {exc}") from exc
    if not isinstance(meta, dict):
        raise ValueError(f"{layout.meta} must hold a JSON object, found {type(meta).__name__}")
    return meta


def load_run(run: str | Path | RunLayout | None = None) -> RunData:
    """Load a run given as id, path or layout; None picks `default_run()`."""
    if run is None:
        layout = default_run()
    elif isinstance(run, RunLayout):
        layout = run
    else:
        layout = find_run(str(run))
    meta = _read_meta(layout)
    servers = meta.get("servers")
    backends = {
        str(name): str(spec.get("backend"))
        for name, spec in (servers.items() if isinstance(servers, dict) else [])
        if isinstance(spec, dict)
    }
    results: dict[str, PointResult] = {}
    folders: dict[str, Path] = {}
    rows = []
    for folder in layout.point_dirs():
        point = PointResult.load(folder / POINT_FILE)
        npz = folder / RECORDS_FILE
        records = RequestRecords.load(npz) if npz.is_file() else None
        results[point.point_id] = point
        folders[point.point_id] = folder
        rows.append(_point_row(point, records, backends))
    rows.sort(key=lambda r: (_series_key(r["scenario"], r["server_config"]), r["concurrency"]))
    frame = pd.DataFrame(rows)
    return RunData(layout, meta, frame, results, folders)
