"""Prometheus metrics of one app (its own registry, so several apps can live in one process).

Label children are cached: `labels()` takes a lock and hashes its arguments on every call.
With several uvicorn workers each process counts its own requests (no multiprocess mode).
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest

__all__ = ["LATENCY_BUCKETS", "Metrics"]

# Our latencies are around a millisecond: buckets from 0.25 ms to 2.5 s.
LATENCY_BUCKETS = (
    0.00025, 0.0005, 0.00075, 0.001, 0.0015, 0.002, 0.003, 0.005, 0.0075,
    0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
)  # fmt: skip


class Metrics:
    """Requests by route and status, request latency by route, rows predicted by model."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self._requests = Counter(
            "servingbench_api_requests",
            "HTTP requests by route template and status code.",
            ["route", "status"],
            registry=self.registry,
        )
        self._latency = Histogram(
            "servingbench_api_request_duration_seconds",
            "Time from request start to the last response byte, by route template.",
            ["route"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self._rows = Counter(
            "servingbench_api_rows_predicted",
            "Rows predicted, by model.",
            ["model"],
            registry=self.registry,
        )
        self._children: dict[tuple[str, int], tuple[Counter, Histogram]] = {}
        self._row_children: dict[str, Counter] = {}

    def observe_request(self, route: str, status: int, seconds: float) -> None:
        children = self._children.get((route, status))
        if children is None:
            children = self._children[(route, status)] = (
                self._requests.labels(route, str(status)),
                self._latency.labels(route),
            )
        children[0].inc()
        children[1].observe(seconds)

    def add_rows(self, model: str, rows: int) -> None:
        child = self._row_children.get(model)
        if child is None:
            child = self._row_children[model] = self._rows.labels(model)
        child.inc(rows)

    def render(self) -> bytes:
        return generate_latest(self.registry)
