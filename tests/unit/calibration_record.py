"""A calibration record for unit tests: the machine fields filled with placeholders, the
figures (the wires) given by the test."""

from __future__ import annotations

from collections.abc import Mapping

from servingbench.runs.calibration import CalibrationRecord, WireCalibration
from servingbench.runs.machine import GitInfo, Hardware, Software

__all__ = ["calibration_record"]


def calibration_record(
    wires: Mapping[str, WireCalibration], model: str = "iris", rows: int = 1
) -> CalibrationRecord:
    return CalibrationRecord(
        calibration_id="cal-1",
        created_at="2025-01-01T00:00:00+00:00",
        git=GitInfo(commit="abc", dirty=False),
        hardware=Hardware(
            cpu_model="test",
            logical_cores=2,
            physical_cores=2,
            cpu_max_mhz=None,
            memory_total_bytes=1,
            os="Linux",
            kernel="6",
            affinity_available=True,
        ),
        software=Software(python="3.11", implementation="CPython", packages={}),
        pinning={"server": [0], "generator": [1]},
        model=model,
        rows_per_request=rows,
        wires=dict(wires),
    )
