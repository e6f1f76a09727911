"""Where the instrument's calibration (`make calibrate`) is stored and how a run reads it back.

`results/calibration/<timestamp>.json` keeps every calibration; `latest.json` is a copy of the
newest. A run records the latest in meta.json and uses its per-scenario generator ceiling in
the `client-bound` flag, provided it was measured with the run's model and rows per request.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from servingbench.paths import results_dir

__all__ = [
    "LATEST",
    "calibration_dir",
    "calibration_mismatch",
    "ceiling_per_core",
    "load_latest_calibration",
]

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


def calibration_mismatch(
    calibration: dict[str, Any] | None, rows_per_request: int, model: str
) -> str | None:
    """Why `calibration` does not describe a run sending `rows_per_request` rows of `model`.

    A ceiling measured with other request bodies is not this run's ceiling (bigger batches are
    fewer, heavier requests), so it must not feed the client-bound flag. Returns None when the
    calibration fits (or there is none).
    """
    if not calibration:
        return None
    params = calibration.get("parameters") or {}
    measured = (
        calibration.get("rows_per_request", params.get("rows_per_request")),
        calibration.get("model", params.get("model")),
    )
    if measured == (rows_per_request, model):
        return None
    return (
        f"calibration {calibration.get('calibration_id')} measured {measured[1]} with "
        f"{measured[0]} row(s) per request, this run sends {model} with {rows_per_request}: "
        "its ceilings are ignored (run `make calibrate` with the same --model/--rows)"
    )


def ceiling_per_core(
    calibration: dict[str, Any] | None, scenario: str, rows_per_request: int, model: str
) -> float | None:
    """Calibrated generator req/s per core for `scenario`'s locustfile, when measured with the
    same model and rows per request as the run (see `calibration_mismatch`)."""
    if not calibration or calibration_mismatch(calibration, rows_per_request, model):
        return None
    entry = (calibration.get("generator") or {}).get(scenario) or {}
    value = entry.get("rps_per_core")
    return float(value) if isinstance(value, int | float) and value > 0 else None
