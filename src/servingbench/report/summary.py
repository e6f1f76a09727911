"""`summary.json` (`runs.summary.RunSummary`) from the report's own tables: nothing computed twice.

`run_summary` takes the `RunData` and `ReportTables` the report is built from, and the verdict
sentences it prints; `write_run_summary` is what `servingbench bench` calls when the sweep
ends (the report's default settings), `build_report` writes the same thing with its own.
"""

from __future__ import annotations

import math
from collections import Counter
from pathlib import Path
from typing import Any, Literal

import pandas as pd

from servingbench.report.gates import judge_gates
from servingbench.report.load import RunData, load_run
from servingbench.report.settings import ReportSettings
from servingbench.report.tables import ReportTables, build_tables
from servingbench.report.verdict import verdict_sentences
from servingbench.runs.layout import RunLayout
from servingbench.runs.summary import (
    SUMMARY_FILE,
    Capacity,
    Figure,
    GateOutcome,
    LevelFigures,
    RatioFigure,
    RunSummary,
)

__all__ = ["run_summary", "write_run_summary"]


def _value(value: Any) -> float | None:
    """A finite float, or None (JSON null) for what was not measured."""
    if value is None or value is pd.NA:
        return None
    number = float(value)
    return number if math.isfinite(number) else None


def _figure(row: pd.Series, column: str) -> Figure:
    return Figure(
        value=_value(row[column]),
        low=_value(row.get(f"{column}_lo")),
        high=_value(row.get(f"{column}_hi")),
    )


def _levels(data: RunData) -> list[LevelFigures]:
    out = []
    for _, row in data.aggregate.iterrows():
        point_ids = row["point_ids"].split(",")
        out.append(
            LevelFigures(
                series=row["series"],
                line=row["line"],
                model=row["model"],
                rows_per_request=int(row["rows_per_request"]),
                load=row["load"],
                level=float(row["level"]),
                samples=int(row["repeats"]),
                planned=int(row["planned"]),
                rps=_figure(row, "rps"),
                p50_ms=_figure(row, "p50_ms"),
                p99_ms=_figure(row, "p99_ms"),
                avg_ms=_figure(row, "avg_ms"),
                p90_ms=_value(row["p90_ms"]),
                p95_ms=_value(row["p95_ms"]),
                p999_ms=_value(row["p999_ms"]),
                error_rate=_value(row["error_rate"]),
                flags=dict(Counter(f for p in point_ids for f in data.results[p].flags)),
                points={p: dict(data.results[p].flag_reasons) for p in point_ids},
            )
        )
    return out


def _ratios(table: pd.DataFrame | None, figure: Literal["rps", "p99_ms"]) -> list[RatioFigure]:
    if table is None:
        return []
    return [
        RatioFigure(
            figure=figure,
            line=row["line"],
            baseline=row["baseline"],
            level=float(row["level"]),
            ratio=Figure(
                value=_value(row["ratio"]), low=_value(row["low"]), high=_value(row["high"])
            ),
            pairs=int(row["pairs"]),
            verdict=row["verdict"],
        )
        for _, row in table.iterrows()
    ]


def _capacity(tables: ReportTables) -> list[Capacity]:
    return [
        Capacity(
            line=row["line"],
            bound_ms=tables.bound_ms,
            rps=Figure(
                value=_value(row["max_rps"]), low=_value(row["rps_lo"]), high=_value(row["rps_hi"])
            ),
            level=_value(row["level"]),
            result=row["result"],
        )
        for _, row in tables.capacity.iterrows()
    ]


def run_summary(
    data: RunData,
    tables: ReportTables | None,
    verdict: list[str],
    settings: ReportSettings,
    written_by: Literal["bench", "report"],
) -> RunSummary:
    """The run's findings and gates; `tables` None for a run without a finished point."""
    return RunSummary(
        run_id=data.run_id,
        status=data.meta.status,
        written_by=written_by,
        baseline_series=tables.baseline if tables else None,
        verdict=verdict,
        levels=_levels(data) if not data.aggregate.empty else [],
        ratios=[*_ratios(tables.rps_ratio, "rps"), *_ratios(tables.p99_ratio, "p99_ms")]
        if tables
        else [],
        capacity=_capacity(tables) if tables else [],
        gates=judge_gates(data) if not data.points.empty else _no_points(data),
        settings=data.meta.sweep.model_dump(mode="json"),
        report_settings=settings.model_dump(mode="json"),
    )


def _no_points(data: RunData) -> GateOutcome:
    """Gates cannot pass on nothing: a run with a gate and no point fails it."""
    outcome = GateOutcome(
        fail_if=data.meta.sweep.fail_if,
        fail_on_flags=data.meta.sweep.fail_on_flags,
    )
    outcome.passed = not (outcome.fail_if or outcome.fail_on_flags)
    return outcome


def write_run_summary(layout: RunLayout) -> tuple[RunSummary, Path]:
    """Load the run as the report does and write its summary.json (the bench's end)."""
    data = load_run(layout)
    settings = ReportSettings()
    tables = build_tables(data, settings) if not data.points.empty else None
    verdict = verdict_sentences(data, tables) if tables is not None else []
    summary = run_summary(data, tables, verdict, settings, "bench")
    path = layout.root / SUMMARY_FILE
    summary.write(path)
    return summary, path
