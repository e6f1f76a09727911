"""The instrument's calibration record (`make calibrate`), and how a run looks things up in it.

`results/calibration/<id>.json` keeps every calibration; `latest.json` is a copy of the newest.
Per wire format it holds Locust's curve against a no-op server (latency added at several
generator loads, measured against the fastest client Python can be) and its ceiling per core.
A run uses it only when measured with the run's model and rows per request: other request
bodies are other work for the generator.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from pydantic import Field

from servingbench.paths import results_dir
from servingbench.runs.machine import GitInfo, Hardware, Software
from servingbench.runs.schema import IncompatibleRunError, Record, Versioned

__all__ = [
    "LATEST",
    "CalibrationRecord",
    "CurvePoint",
    "OpenLoopCeiling",
    "ReferenceFigures",
    "WireCalibration",
    "calibration_dir",
    "load_latest_calibration",
]

LATEST = "latest.json"
SATURATION_PERCENT = 90.0
"""% of one core at which a generator process is saturated (Locust itself warns there)."""


class ReferenceFigures(Record):
    """A reference client's figures at one connection against the same no-op server."""

    client: str = Field(description="e.g. `raw socket`, `grpc stub`, `wrk`")
    rps: float
    p50_ms: float
    p99_ms: float


class CurvePoint(Record):
    """Locust at `users` users against the no-op server: what the generator itself costs."""

    users: int
    rps: float
    rps_per_process: float = Field(description="req/s divided by the generator processes")
    generator_cpu_percent: float
    busiest_process_percent: float
    p50_ms: float
    p99_ms: float
    added_p50_ms: float | None = Field(
        description="p50 minus the reference client's p50 at one connection"
    )


class OpenLoopCeiling(Record):
    """The highest arrival rate one generator process kept on schedule against the no-op server."""

    rate: float
    achieved_rps: float
    lateness_p99_ms: float
    dropped: int


class WireCalibration(Record):
    wire: str
    reference: ReferenceFigures | None = None
    external: ReferenceFigures | None = Field(
        default=None, description="wrk's figures, when wrk is installed (HTTP only)"
    )
    curve: list[CurvePoint] = Field(default_factory=list)
    ceiling_rps_per_core: float | None = Field(
        default=None, description="highest req/s per core of generator CPU on the curve"
    )
    open_loop: OpenLoopCeiling | None = None


class CalibrationRecord(Versioned):
    calibration_id: str
    created_at: str
    git: GitInfo
    hardware: Hardware
    software: Software
    pinning: dict[str, list[int] | None]
    model: str
    rows_per_request: int
    wires: dict[str, WireCalibration] = Field(default_factory=dict)
    targets: dict[str, float] = Field(default_factory=dict)
    notes: list[str] = Field(default_factory=list)

    def mismatch(self, model: str, rows_per_request: int) -> str | None:
        """Why this calibration does not describe a run sending `rows_per_request` rows of
        `model` (None when it does)."""
        if (self.model, self.rows_per_request) == (model, rows_per_request):
            return None
        return (
            f"calibration {self.calibration_id} measured {self.model} with "
            f"{self.rows_per_request} row(s) per request, this run sends {model} with "
            f"{rows_per_request}: its figures are not used (run `make calibrate` with the same "
            "--model and --rows)"
        )

    def added_latency_ms(
        self, wire: str, busiest_percent: float, users: int | None = None
    ) -> float | None:
        """The latency the generator adds to a point whose busiest generator process used
        `busiest_percent` of a core, with `users` users per process (None: open loop).

        What the generator adds is its own queueing, which follows its load (CPU), not the
        req/s it achieved: below saturation the figure is interpolated on the curve by CPU
        (clamped to the curve's ends). At saturation CPU stops growing while the added latency
        still does, with the users queueing there: it is then interpolated by users. None when
        the wire was not calibrated.
        """
        entry = self.wires.get(wire)
        points = [p for p in entry.curve if p.added_p50_ms is not None] if entry else []
        if not points:
            return None
        busy = [p for p in points if p.busiest_process_percent < SATURATION_PERCENT]
        if busiest_percent < SATURATION_PERCENT and busy:
            by_cpu = sorted(busy, key=lambda p: p.busiest_process_percent)
            xs = [p.busiest_process_percent for p in by_cpu]
            ys = [float(p.added_p50_ms or 0.0) for p in by_cpu]
            return float(np.interp(busiest_percent, xs, ys))
        if users is None:  # saturated open loop: the most the curve saw
            return max(float(p.added_p50_ms or 0.0) for p in points)
        by_users = sorted(points, key=lambda p: p.users)
        xs = [float(p.users) for p in by_users]
        ys = [float(p.added_p50_ms or 0.0) for p in by_users]
        return float(np.interp(users, xs, ys))


def calibration_dir(base: Path | None = None) -> Path:
    return (base or results_dir()) / "calibration"


def load_latest_calibration(base: Path | None = None) -> CalibrationRecord | None:
    """The newest calibration, or None when `make calibrate` never ran or wrote an older schema."""
    path = calibration_dir(base) / LATEST
    if not path.is_file():
        return None
    try:
        return CalibrationRecord.read(path)
    except (IncompatibleRunError, OSError):
        return None
