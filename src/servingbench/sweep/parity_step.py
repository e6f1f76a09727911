"""Parity before the sweep: the bench's own servers must answer the held-out rows correctly.

A mismatch is recorded in meta.json and shown, but does not stop the sweep: the load generator
validates every response anyway, so wrong answers also surface as `errors` on the points.
"""

from __future__ import annotations

from typing import Any

from servingbench.parity import Endpoint, default_endpoints
from servingbench.parity import run_parity as check_all
from servingbench.stack.settings import StackSettings
from servingbench.sweep.servers import BenchServers
from servingbench.sweep.settings import BenchSettings

__all__ = ["run_parity"]


def run_parity(settings: BenchSettings, servers: BenchServers) -> dict[str, Any]:
    """Every endpoint of every running server (each configuration), for the sweep's model."""
    endpoints = []
    for key, server in servers.running.items():
        ports = server.spec.ports
        if server.config.backend == "fastapi":
            stack = StackSettings(host=settings.host, api_port=ports["http"])
        else:
            stack = StackSettings(
                host=settings.host,
                mlserver_http_port=ports["http"],
                mlserver_grpc_port=ports["grpc"],
            )
        endpoints += [
            Endpoint(f"{key} {e.label.split(' ', 1)[1]}", e.kind, e.address)
            for e in default_endpoints(stack)
            if e.label.split()[0] == server.config.backend
        ]
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
