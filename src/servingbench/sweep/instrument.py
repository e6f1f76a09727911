"""Where the instrument's calibration (`make calibrate`) is stored and how a run reads it back.

`results/calibration/<timestamp>.json` keeps every calibration; `latest.json` is a copy of the
newest. A run records the latest in meta.json and uses its per-scenario generator ceiling in
the `client-bound` flag.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from servingbench.paths import results_dir

__all__ = ["LATEST", "calibration_dir", "ceiling_per_core", "load_latest_calibration"]

LATEST = "latest.json"


def calibration_dir(base: Path | None = None) -> Path:
    return (base or results_dir()) / "calibration"


def load_latest_calibration(base: Path | None = None) -> dict[str, Any] | None:
    """The newest calibration, or None when `make calibrate` never ran (or its file is broken)."""
    path = calibration_dir(base) / LATEST
    try:
        doc = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return doc if isinstance(doc, dict) else None


def ceiling_per_core(calibration: dict[str, Any] | None, scenario: str) -> float | None:
    """Calibrated generator req/s per core for `scenario`'s locustfile, when measured."""
    if not calibration:
        return None
    entry = (calibration.get("generator") or {}).get(scenario) or {}
    value = entry.get("rps_per_core")
    return float(value) if isinstance(value, int | float) and value > 0 else None
