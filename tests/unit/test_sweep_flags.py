"""Flag logic on synthetic data: client-bound, unstable, errors."""

from __future__ import annotations

import dataclasses

import numpy as np

from servingbench.runs.point import ProcessUsage
from servingbench.runs.records import Outcome, RequestRecords
from servingbench.runs.stats import summarize, windows
from servingbench.sweep.flags import client_bound, generator_capacity, point_flags


def _records(n: int = 4000, seconds: float = 8.0, errors: int = 0) -> RequestRecords:
    start = np.linspace(0, seconds * 1e9, n, endpoint=False).astype(np.int64)
    outcome = np.zeros(n, dtype=np.int8)
    outcome[:errors] = Outcome.HTTP_STATUS
    return RequestRecords(
        start_ns=start,
        latency_ns=np.full(n, 1_000_000, dtype=np.int64),
        outcome=outcome,
        warmup=np.zeros(n, dtype=bool),
    )


def _usage(cpu: float) -> list[ProcessUsage]:
    return [
        ProcessUsage(
            role="generator", name="locust", pids=[1], cpu_percent=cpu, cpu_seconds=1, rss_bytes=1
        ),
        ProcessUsage(
            role="server", name="mlserver", pids=[2], cpu_percent=99, cpu_seconds=1, rss_bytes=1
        ),
    ]


def test_steady_clean_point_has_no_flags() -> None:
    records = _records()
    assert point_flags(summarize(records), windows(records, 2.0), _usage(40), 1) == []


def test_errors_and_client_bound() -> None:
    records = _records(errors=3)
    flags = point_flags(summarize(records), windows(records, 2.0), _usage(95), 1)
    assert flags == ["client-bound", "errors"]


def test_unstable_when_last_windows_disagree() -> None:
    steady = windows(_records(), 1.0)  # equal windows
    assert len(steady) >= 4
    assert "unstable" not in point_flags(summarize(_records()), steady, _usage(10), 1)
    wins = [*steady[:-1], dataclasses.replace(steady[-1], rps=steady[-1].rps * 1.5)]
    assert "unstable" in point_flags(summarize(_records()), wins, _usage(10), 1)
    assert "unstable" in point_flags(summarize(_records()), wins[:2], _usage(10), 1)


def test_client_bound_from_calibrated_ceiling() -> None:
    assert client_bound(rps=950, usage=_usage(50), capacity=1, ceiling_rps_per_core=1000)
    assert not client_bound(rps=500, usage=_usage(50), capacity=1, ceiling_rps_per_core=1000)
    assert not client_bound(rps=500, usage=_usage(50), capacity=1)


def test_capacity_counts_processes_and_cores() -> None:
    assert generator_capacity([1], processes=4, cores=2) == 1
    assert generator_capacity(None, processes=2, cores=8) == 2
    assert generator_capacity([1, 2, 3], processes=1, cores=8) == 1
    # two processes on two cores: 150 % is not yet saturated
    assert not client_bound(0, _usage(150), generator_capacity([1, 2], 2, 4))
