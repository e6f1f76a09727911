"""A real mini sweep (MLServer REST + gRPC, real Locust) into a temporary results folder."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from servingbench.runs.layout import RunLayout, find_run
from servingbench.runs.point import PointResult
from servingbench.runs.records import RequestRecords
from servingbench.stack.processes import stop_handle
from servingbench.sweep.runner import run_sweep
from servingbench.sweep.servers import BenchServers
from servingbench.sweep.settings import BenchSettings, load_settings

pytestmark = pytest.mark.integration

META_KEYS = {
    "run_id", "status", "started_at", "finished_at", "git", "hardware", "software", "servers",
    "argv", "pinning", "sweep", "artifacts", "calibration", "notes", "parity", "points",
}  # fmt: skip


def _settings(tmp_path: Path, **overrides: object) -> BenchSettings:
    # Locust needs a few seconds before its first request; warm-up is counted from that request.
    values = {
        "scenarios": "mlserver-rest,mlserver-grpc",
        "concurrency": "1,2",
        "warmup_s": 1.0,
        "duration_s": 4.0,
        "window_s": 1.0,
        "results_dir": tmp_path,
        "run_id": "mini",
    }
    return load_settings(overrides={**values, **overrides})


def test_mini_sweep_writes_a_complete_run(trained_models: None, tmp_path: Path) -> None:
    result = run_sweep(_settings(tmp_path), progress=lambda _: None)
    run = find_run("mini", tmp_path)
    meta = json.loads(run.meta.read_text())
    assert set(meta) >= META_KEYS
    assert meta["status"] == "complete"
    assert meta["parity"]["status"] == "passed"
    assert meta["artifacts"]["breast-cancer"]["sha256"]
    assert "config" in meta["servers"]["mlserver-default"]
    assert len(result.points) == 4
    for point_dir in run.point_dirs():
        point = PointResult.load(point_dir / "point.json")
        assert point.status == "ok", point.failure_reason
        assert "failed" not in point.flags
        assert "errors" not in point.flags
        assert point.summary["requests"] > 0
        assert point.summary["p50_ms"] > 0
        assert {u.role for u in point.usage} == {"generator", "server"}
        assert (point_dir / "locust_stats.csv").is_file()
        records = RequestRecords.load(point_dir / "requests.npz")
        assert records.warmup.any()
        assert (~records.warmup).any()
        assert np.all(np.diff(records.start_ns) >= 0)
        assert records.start_ns[0] == 0
        assert np.all(records.latency_ns > 0)


def test_dead_server_fails_its_remaining_points(trained_models: None, tmp_path: Path) -> None:
    def kill_after_first(point: PointResult, servers: BenchServers) -> None:
        if point.concurrency == 1 and point.scenario == "mlserver-rest":
            stop_handle(servers.running["mlserver:default"].handle)

    run_sweep(
        _settings(tmp_path, skip_parity=True),
        progress=lambda _: None,
        after_point=kill_after_first,
    )
    run = RunLayout(tmp_path / "mini")
    points = {p.name: PointResult.load(p / "point.json") for p in run.point_dirs()}
    assert points["mlserver-rest--c0001"].status == "ok"
    for pid in ("mlserver-grpc--c0001", "mlserver-rest--c0002", "mlserver-grpc--c0002"):
        assert points[pid].status == "failed"
        assert points[pid].flags == ["failed"]
        assert "no longer running" in (points[pid].failure_reason or "")
    meta = json.loads(run.meta.read_text())
    assert meta["status"] == "complete"
    assert len(meta["failed_points"]) == 3
