"""A point folder is never reused; a point whose server is gone is recorded as failed; a
measured point saves what the report needs to reproduce the sweep's figures."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest

from servingbench.atomic import atomic_write_bytes, atomic_write_json
from servingbench.loadgen.scenarios import get_scenario
from servingbench.report.load import load_run
from servingbench.runs.layout import POINT_FILE, RECORDS_FILE, create_run
from servingbench.runs.point import PointResult
from servingbench.runs.records import Outcome, RequestRecords
from servingbench.sweep import measure
from servingbench.sweep.measure import PointPlan, keep_snapshot, measure_point, measured_point

MS = 1_000_000


def _plan() -> PointPlan:
    return PointPlan(
        scenario=get_scenario("mlserver-rest"),
        concurrency=5,
        host="http://127.0.0.1:1",
        model="breast-cancer",
        rows_per_request=1,
        duration_s=1.0,
        warmup_s=0.0,
        window_s=1.0,
    )


def test_existing_point_folder_is_never_overwritten(tmp_path: Path) -> None:
    run = create_run(tmp_path, run_id="r")
    plan = _plan()
    assert plan.point_id == "mlserver-rest--c0005"
    run.point_dir(plan.point_id).mkdir()
    with pytest.raises(FileExistsError):
        measure_point(plan, run.point_dir(plan.point_id), [], lambda: None)


def test_dead_server_gives_a_failed_point_with_reason(tmp_path: Path) -> None:
    point_dir = create_run(tmp_path, run_id="r").point_dir(_plan().point_id)
    result = measure_point(_plan(), point_dir, [], lambda: "mlserver is no longer running")
    assert result.status == "failed"
    assert result.flags == ["failed"]
    saved = PointResult.load(point_dir / "point.json")
    assert saved.failure_reason == "mlserver is no longer running"
    assert saved.pinning == {"server": None, "generator": None}


def _records() -> RequestRecords:
    """4 s of one request per ms (0.5 ms each) after t0; the first second is warm-up; 3 errors."""
    start = np.arange(4000, dtype=np.int64) * MS
    outcome = np.zeros(4000, dtype=np.int8)
    outcome[[100, 2000, 3000]] = [Outcome.TIMEOUT, Outcome.TIMEOUT, Outcome.HTTP_STATUS]
    return RequestRecords(
        start, np.full(4000, MS // 2, dtype=np.int64), outcome, start < 1000 * MS, {}
    )


def test_measured_point_saves_what_the_report_reuses(tmp_path: Path) -> None:
    plan = dataclasses.replace(_plan(), warmup_s=1.0, duration_s=3.0, window_s=0.5)
    records = _records()
    result = measured_point(plan, "2025-01-01T00:00:00", records, [], locust_rps=None)
    assert result.window_s == 0.5
    assert result.measured_s == pytest.approx(2.9995)  # warm-up end to the last answer
    assert result.summary["duration_s"] == result.measured_s
    assert result.errors_by_outcome == {"http-status": 1, "timeout": 1}  # not the warm-up's
    assert len(result.windows) == 5
    assert all(w.p99_ms == pytest.approx(0.5) for w in result.windows)
    assert "errors" in result.flags

    # the report, reading the folder, gets the same req/s and window length as the sweep
    run = create_run(tmp_path, run_id="r")
    atomic_write_json(run.meta, {"run_id": "r"})
    folder = run.point_dir(plan.point_id)
    records.save(folder / RECORDS_FILE)
    result.save(folder / POINT_FILE)
    row = load_run(run).points.iloc[0]
    assert row["rps"] == pytest.approx(result.summary["rps"])
    assert row["windows"] == len(result.windows)


def test_loadgen_snapshot_is_written_atomically(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    parts, point_dir = tmp_path / "parts", tmp_path / "point"
    parts.mkdir()
    point_dir.mkdir()
    (parts / "loadgen-2.json").write_text('{"process": 2}')
    (parts / "loadgen-1.json").write_text('{"process": 1}')
    writes: list[Path] = []

    def spy(path: Path, data: bytes) -> None:
        writes.append(path)
        atomic_write_bytes(path, data)

    monkeypatch.setattr(measure, "atomic_write_bytes", spy)
    keep_snapshot(parts, point_dir)
    assert writes == [point_dir / "loadgen.json"]
    assert (point_dir / "loadgen.json").read_text() == '{"process": 1}'
