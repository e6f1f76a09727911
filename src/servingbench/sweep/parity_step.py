"""Parity before the sweep: the bench's own servers must answer the held-out rows correctly.

A mismatch is recorded in meta.json and shown, but does not stop the sweep: the load generator
validates every response anyway, so wrong answers also surface as `errors` on the points.
"""

from __future__ import annotations

from typing import Any

from servingbench.parity import default_endpoints
from servingbench.parity import run_parity as check_all
from servingbench.stack.settings import StackSettings
from servingbench.sweep.servers import BenchServers
from servingbench.sweep.settings import BenchSettings

__all__ = ["run_parity"]


def run_parity(settings: BenchSettings, servers: BenchServers) -> dict[str, Any]:
    """Every endpoint of every running backend, for the sweep's model; a JSON-able verdict."""

    def port(backend: str, kind: str) -> int:
        return servers.port(backend, kind) if backend in servers.running else 0

    stack = StackSettings(
        host=settings.host,
        api_port=port("fastapi", "http"),
        mlserver_http_port=port("mlserver", "http"),
        mlserver_grpc_port=port("mlserver", "grpc"),
    )
    endpoints = [e for e in default_endpoints(stack) if e.label.split()[0] in servers.running]
    results = check_all(endpoints, [settings.model])
    checks = [
        {
            "endpoint": r.endpoint,
            "model": r.model,
            "rows": r.score.rows,
            "label_mismatches": r.score.label_mismatches,
            "max_abs_dp": r.score.max_abs_dp,
            "atol": r.atol,
            "passed": r.passed,
            "error": r.error,
        }
        for r in results
    ]
    passed = bool(checks) and all(c["passed"] for c in checks)
    return {"status": "passed" if passed else "FAILED", "checks": checks}
