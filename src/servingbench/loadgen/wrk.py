"""wrk (C, when installed) at one connection: an external floor for HTTP latency.

Both `make calibrate` (beside the Python reference client) and an interleaved sweep (the
instrument's share at one user) run it against the same keep-alive POST the Locust users send.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

__all__ = ["parse_wrk_output", "run_wrk"]

_LATENCY = re.compile(r"^\s*(50|99)(?:\.000)?%\s+([\d.]+)(us|ms|s)\s*$", re.MULTILINE)
_RPS = re.compile(r"Requests/sec:\s+([\d.]+)")
_TO_MS = {"us": 1e-3, "ms": 1.0, "s": 1e3}


def parse_wrk_output(stdout: str) -> dict[str, float] | None:
    """req/s, p50 and p99 (ms) from `wrk --latency`'s report (each percentile in its own
    unit); None when the report has no p50 or no rate."""
    found = {p: float(v) * _TO_MS[u] for p, v, u in _LATENCY.findall(stdout)}
    rps = _RPS.search(stdout)
    if "50" not in found or rps is None:
        return None
    return {"rps": float(rps.group(1)), "p50_ms": found["50"], "p99_ms": found.get("99", 0.0)}


def run_wrk(
    address: str, path: str, body: bytes, seconds: float, cpus: list[int] | None = None
) -> dict[str, float] | None:
    """wrk at one connection, one thread (None when wrk is not installed)."""
    wrk = shutil.which("wrk")
    if wrk is None:
        return None
    script = (
        'wrk.method = "POST"\nwrk.headers["Content-Type"] = "application/json"\n'
        f"wrk.body = {json.dumps(body.decode())}\n"
    )
    with tempfile.TemporaryDirectory() as tmp:
        lua = Path(tmp) / "post.lua"
        lua.write_text(script)
        argv = [wrk, "-t1", "-c1", f"-d{max(1, round(seconds))}s", "--latency", "-s", str(lua)]
        argv.append(f"http://{address}{path}")
        if cpus:
            argv = ["taskset", "-c", ",".join(map(str, cpus)), *argv]
        done = subprocess.run(
            argv, check=False, capture_output=True, text=True, timeout=seconds + 30
        )
    figures = parse_wrk_output(done.stdout)
    if done.returncode != 0 or figures is None:
        raise RuntimeError(f"wrk failed ({done.returncode}): {done.stdout[-500:]}{done.stderr}")
    return figures
