"""A point folder is never reused; a point whose server is gone is recorded as failed."""

from __future__ import annotations

from pathlib import Path

import pytest

from servingbench.loadgen.scenarios import get_scenario
from servingbench.runs.layout import create_run
from servingbench.runs.point import PointResult
from servingbench.sweep.measure import PointPlan, measure_point


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
