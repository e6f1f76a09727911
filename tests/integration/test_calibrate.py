"""`make calibrate` with very short points against the real no-op servers: the record's
structure and where it is written, not its speed figures."""

from __future__ import annotations

from pathlib import Path

import psutil
import pytest

from servingbench.calibration.run import calibration_path, run_calibration
from servingbench.runs.calibration import calibration_dir, load_latest_calibration
from servingbench.runs.layout import POINT_FILE, RunLayout
from servingbench.runs.point import PointResult
from servingbench.stack.processes import ServerStartError
from servingbench.sweep.settings import BenchSettings, load_settings
from servingbench.wire import WireName

pytestmark = pytest.mark.integration

USERS = (1, 4)
WIRES: tuple[WireName, ...] = ("v2-json", "v2-grpc")  # one no-op server of each transport


def _settings(tmp_path: Path, **values: object) -> BenchSettings:
    return load_settings(overrides={"results_dir": tmp_path, "run_id": "cal", **values})


def test_calibration_record(trained_models: None, tmp_path: Path) -> None:
    """Both transports measured with the run's 3-row bodies (the reference client sends the
    same ones), every curve point answered without errors, and the record written as the
    newest calibration that a run with those bodies looks its points up in."""
    settings = _settings(tmp_path, rows="3")
    record = run_calibration(settings, users=USERS, seconds=1.0, wires=WIRES)
    assert load_latest_calibration(tmp_path) == record
    assert calibration_path(tmp_path).is_file()
    assert (calibration_dir(tmp_path) / "cal.json").is_file()
    assert (record.model, record.rows_per_request) == ("breast-cancer", 3)
    assert record.mismatch("breast-cancer", 3) is None
    assert record.mismatch("breast-cancer", 1) is not None  # other bodies, other work
    assert record.pinning == dict(zip(("server", "generator"), settings.pinning(), strict=True))
    assert list(record.wires) == list(WIRES)
    for wire, entry in record.wires.items():
        assert entry.reference is not None
        assert entry.reference.rps > 0
        assert entry.reference.p50_ms > 0
        assert [p.users for p in entry.curve] == list(USERS)
        assert all(p.rps > 0 and p.generator_cpu_percent > 0 for p in entry.curve)
        assert all(p.added_p50_ms is not None for p in entry.curve)
        assert entry.ceiling_rps_per_core is not None
        assert entry.ceiling_rps_per_core > 0
        assert record.added_latency_ms(wire, entry.curve[0].rps_per_process) is not None
        if entry.open_loop is not None:  # a busy machine may keep no rate on schedule
            assert entry.open_loop.rate >= 500
            assert entry.open_loop.dropped == 0
    points = [
        PointResult.read(p / POINT_FILE)
        for p in RunLayout(calibration_dir(tmp_path) / "cal").point_dirs()
    ]
    closed = [p for p in points if p.key.load == "closed"]
    assert len(closed) == len(WIRES) * len(USERS)
    for point in closed:
        assert point.key.rows_per_request == 3
        assert point.status == "ok", point.failure_reason
        assert point.summary is not None
        assert (point.summary.errors, point.summary.incomplete) == (0, 0)  # validation passed


def test_noop_that_is_not_ready_in_time_is_stopped(trained_models: None, tmp_path: Path) -> None:
    """A real no-op server given no time to start: the error says so and must not orphan the
    process (its working folder is under tmp_path, so any survivor would be found there)."""
    settings = _settings(tmp_path, startup_timeout_s=1e-6)
    with pytest.raises(ServerStartError, match="noop-http was not ready"):
        run_calibration(settings, users=(1,), seconds=2.0, wires=("v2-json",))
    assert _processes_under(tmp_path) == []
    assert load_latest_calibration(tmp_path) is None  # nothing written for a failed start


def _processes_under(folder: Path) -> list[psutil.Process]:
    found = []
    for proc in psutil.process_iter():
        try:
            if Path(proc.cwd()).is_relative_to(folder):
                found.append(proc)
        except psutil.Error:
            continue
    return found
