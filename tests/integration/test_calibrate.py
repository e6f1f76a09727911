"""`make calibrate` with very short points: the output file's structure, not its speed figures."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from servingbench.runs.layout import create_run
from servingbench.stack import processes
from servingbench.stack.processes import ProcessHandle, ServerStartError
from servingbench.sweep import calibrate
from servingbench.calibration.run import run_calibration
from servingbench.sweep.instrument import calibration_dir, ceiling_per_core, load_latest_calibration
from servingbench.sweep.settings import load_settings

pytestmark = pytest.mark.integration


def test_calibration_record(trained_models: None, tmp_path: Path) -> None:
    settings = load_settings(
        overrides={
            "scenarios": "mlserver-rest,mlserver-grpc",
            "warmup_s": 0.5,
            "duration_s": 4.0,
            "window_s": 1.0,
            "rows_per_request": 3,  # the reference client must send the same 3-row bodies
            "results_dir": tmp_path,
        }
    )
    doc = run_calibration(settings, users=4, progress=lambda _: None)
    latest = load_latest_calibration(tmp_path)
    assert latest == json.loads(json.dumps(doc))
    assert (calibration_dir(tmp_path) / f"{doc['calibration_id']}.json").is_file()
    assert (doc["rows_per_request"], doc["model"]) == (3, "breast-cancer")
    for name in ("mlserver-rest", "mlserver-grpc"):
        generator = doc["generator"][name]
        assert generator["status"] == "ok", generator["failure_reason"]
        assert generator["error_rate"] == 0  # the no-op answers pass validation
        assert generator["rps"] > 0
        assert generator["rps_per_core"] > 0
        assert ceiling_per_core(latest, name, 3, "breast-cancer") == generator["rps_per_core"]
        assert ceiling_per_core(latest, name, 1, "breast-cancer") is None  # other batch size
        latency = doc["added_latency"][name]
        assert latency["reference"]["p50_ms"] > 0
        assert isinstance(latency["added_p50_ms"], float)
    assert set(doc) >= {"hardware", "software", "pinning", "targets", "parameters", "git"}


def test_noop_that_is_not_ready_in_time_is_stopped(
    trained_models: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A real no-op server given no time to start: the error must not orphan the process."""
    started: list[ProcessHandle] = []

    def recording_start(*args: Any, **kwargs: Any) -> ProcessHandle:
        started.append(processes.start_detached(*args, **kwargs))  # real start, handle kept
        return started[-1]

    monkeypatch.setattr(calibrate, "start_detached", recording_start)
    settings = load_settings(overrides={"results_dir": tmp_path, "startup_timeout_s": 1e-6})
    with pytest.raises(ServerStartError, match="not ready"):
        calibrate._start_noop("rest", settings, create_run(tmp_path, "noop"))
    assert len(started) == 1
    assert not started[0].alive()  # not left running behind the error
