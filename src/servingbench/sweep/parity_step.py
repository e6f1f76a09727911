"""Parity before the sweep: the bench's own servers must answer the held-out rows correctly.

A mismatch is recorded in meta.json and shown, but does not stop the sweep: the load generator
validates every response anyway, so wrong answers also surface as `errors` on the points.
"""

from __future__ import annotations

from servingbench.parity import backend_endpoints
from servingbench.parity import run_parity as check_all
from servingbench.runs.meta import ParityRecord
from servingbench.sweep.servers import BenchServers

__all__ = ["run_parity"]


def run_parity(servers: BenchServers, models: list[str]) -> ParityRecord:
    """Every endpoint of every running server (each configuration), for the sweep's models."""
    endpoints = [
        endpoint
        for key, server in servers.running.items()
        for endpoint in backend_endpoints(
            server.config.backend, key, server.spec.host, server.spec.ports
        )
    ]
    results = check_all(endpoints, models)
    checks = [r.record() for r in results]
    if not checks:
        return ParityRecord(status="skipped", checks=[])  # no backend declared a parity client
    passed = all(c.passed for c in checks)
    return ParityRecord(status="passed" if passed else "FAILED", checks=checks)
