"""Reading a calibration back: its ceiling only counts for runs with the same request bodies."""

from __future__ import annotations

from typing import Any

from servingbench.sweep.instrument import calibration_mismatch, ceiling_per_core


def _calibration(**top: Any) -> dict[str, Any]:
    return {
        "calibration_id": "c1",
        "parameters": {"rows_per_request": 1, "model": "breast-cancer"},
        "generator": {"mlserver-rest": {"rps_per_core": 900.0}},
        **top,
    }


def test_ceiling_applies_to_the_same_model_and_rows() -> None:
    doc = _calibration(rows_per_request=4, model="iris")
    assert calibration_mismatch(doc, 4, "iris") is None
    assert ceiling_per_core(doc, "mlserver-rest", 4, "iris") == 900.0
    assert ceiling_per_core(doc, "mlserver-grpc", 4, "iris") is None  # not calibrated


def test_ceiling_of_other_request_bodies_is_ignored_with_a_reason() -> None:
    doc = _calibration(rows_per_request=1, model="breast-cancer")
    assert ceiling_per_core(doc, "mlserver-rest", 8, "breast-cancer") is None
    assert ceiling_per_core(doc, "mlserver-rest", 1, "iris") is None
    reason = calibration_mismatch(doc, 8, "breast-cancer")
    assert reason is not None
    assert "1 row(s) per request" in reason
    assert "make calibrate" in reason


def test_older_calibrations_fall_back_to_their_parameters() -> None:
    doc = _calibration()  # written before rows_per_request/model were stored at the top
    assert ceiling_per_core(doc, "mlserver-rest", 1, "breast-cancer") == 900.0
    assert ceiling_per_core(doc, "mlserver-rest", 2, "breast-cancer") is None


def test_no_calibration_is_not_a_mismatch() -> None:
    assert calibration_mismatch(None, 1, "iris") is None
    assert ceiling_per_core(None, "mlserver-rest", 1, "iris") is None
