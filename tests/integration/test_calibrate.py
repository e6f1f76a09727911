"""`make calibrate` with very short points: the output file's structure, not its speed figures."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from servingbench.sweep.calibrate import run_calibration
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
            "results_dir": tmp_path,
        }
    )
    doc = run_calibration(settings, users=4, progress=lambda _: None)
    latest = load_latest_calibration(tmp_path)
    assert latest == json.loads(json.dumps(doc))
    assert (calibration_dir(tmp_path) / f"{doc['calibration_id']}.json").is_file()
    for name in ("mlserver-rest", "mlserver-grpc"):
        generator = doc["generator"][name]
        assert generator["status"] == "ok", generator["failure_reason"]
        assert generator["error_rate"] == 0  # the no-op answers pass validation
        assert generator["rps"] > 0
        assert generator["rps_per_core"] > 0
        assert ceiling_per_core(latest, name) == generator["rps_per_core"]
        latency = doc["added_latency"][name]
        assert latency["reference"]["p50_ms"] > 0
        assert isinstance(latency["added_p50_ms"], float)
    assert set(doc) >= {"hardware", "software", "pinning", "targets", "parameters", "git"}
