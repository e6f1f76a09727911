"""A point's flags: each fires on the figures that should raise it (with the figure in its
reason), stays quiet just below its threshold, and flags come out in one fixed order."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from servingbench.runs.point import (
    FLAGS,
    GeneratorReport,
    Interference,
    ProcessUsage,
    WorkerReport,
)
from servingbench.runs.records import RequestRecords
from servingbench.runs.stats import LatencySummary, Stability, summarize
from servingbench.sweep.flags import SATURATION, FlagInputs, Thresholds, point_flags

MS = 1_000_000


def _clean_summary() -> LatencySummary:
    """4 s of one request per ms, all answered in 1 ms, sent on time."""
    start = np.arange(4000, dtype=np.int64) * MS
    n = start.size
    return summarize(
        RequestRecords(
            start_ns=start,
            latency_ns=np.full(n, MS, dtype=np.int64),
            outcome=np.zeros(n, dtype=np.int8),
            intended_ns=start.copy(),
            server_ns=np.full(n, -1, dtype=np.int64),
            from_ns=0,
            to_ns=4000 * MS,
        )
    )


CLEAN = _clean_summary()


def _usage(role: str, busiest: float) -> ProcessUsage:
    return ProcessUsage.model_validate(
        {
            "role": role,
            "name": role,
            "pids": [1],
            "cpu_percent": busiest,
            "cpu_seconds": 1.0,
            "busiest_process_percent": busiest,
            "rss_bytes": 1,
        }
    )


def _interference(
    server: float | None, generator: float | None, idle_servers: float = 0.0
) -> Interference:
    return Interference(
        server_cores=[0],
        generator_cores=[1],
        server_other_percent=server,
        generator_other_percent=generator,
        idle_servers_percent=idle_servers,
    )


def _flags(
    limits: Thresholds | None = None, summary: dict[str, Any] | None = None, **inputs: Any
) -> tuple[list[str], dict[str, str]]:
    values: dict[str, Any] = {
        "summary": CLEAN.model_copy(update=summary or {}),
        "converged": True,
        "usage": [_usage("generator", 40.0), _usage("server", 99.0)],
        "interference": _interference(1.0, 1.0),
        "generator": None,
        "added_latency_ms": 0.01,
    }
    flags, reasons = point_flags(FlagInputs(**(values | inputs)), limits)
    return list(flags), reasons


def test_clean_point_has_no_flags() -> None:
    """A busy server (99 %) is what a benchmark wants: nothing on a clean point is flagged."""
    assert CLEAN.errors == 0
    assert CLEAN.lateness_p99_ms == 0.0
    assert _flags() == ([], {})


def test_errors_and_incomplete_give_their_counts() -> None:
    """Failed requests and requests abandoned at the stop are told apart."""
    flags, reasons = _flags(summary={"errors": 3, "incomplete": 2, "requests": 1000})
    assert flags == ["errors", "incomplete"]
    assert reasons == {
        "errors": "3 of 1000 measured requests failed",
        "incomplete": "2 request(s) still in flight after the stop's grace period",
    }


def test_unstable_only_when_the_cap_was_reached() -> None:
    """`converged` None (a point stopped by Locust, or not run until stable) is not unstable."""
    assert _flags(converged=False) == (
        ["unstable"],
        {"unstable": "the last windows did not agree before the cap"},
    )
    assert _flags(converged=None) == ([], {})


def test_unstable_says_which_quantities_stayed_apart() -> None:
    """The reason names each quantity whose spread was above its tolerance, and a NaN spread
    (a window without an answer) counts as apart."""
    spreads = {"rps": 0.23, "p50": 0.04, "p99": float("nan")}
    _, reasons = _flags(converged=False, spreads=spreads, tolerances=Stability())
    assert reasons["unstable"] == (
        "the last 3 windows still differed at the cap: rps 23% (tolerance 10%), "
        "p99 (a window without answers)"
    )


def test_client_bound_by_a_saturated_generator_process() -> None:
    """A Locust process at 90 % of a core is the limit, whatever the server does; the
    server's own busy process is not the generator's."""
    flags, reasons = _flags(usage=[_usage("generator", 95.4), _usage("server", 100.0)])
    assert flags == ["client-bound"]
    assert reasons["client-bound"] == "busiest generator process at 95 % of a core"
    assert _flags(usage=[_usage("generator", SATURATION)])[0] == ["client-bound"]
    assert _flags(usage=[_usage("generator", SATURATION - 0.1)])[0] == []
    assert _flags(usage=[_usage("server", 100.0), _usage("harness", 100.0)])[0] == []


def test_client_bound_by_the_calibrated_added_latency() -> None:
    """Above the bound, the calibration says Locust itself adds too much at this load."""
    flags, reasons = _flags(added_latency_ms=0.25)
    assert flags == ["client-bound"]
    assert reasons["client-bound"] == (
        "Locust adds 0.250 ms at this load (calibration), above 0.1 ms"
    )
    assert _flags(added_latency_ms=0.1)[0] == []  # at the bound: not above it
    assert _flags(added_latency_ms=None)[0] == []  # no matching calibration
    assert _flags(Thresholds(added_latency_ms=0.5), added_latency_ms=0.25)[0] == []


def test_generator_late_and_dropped_in_open_loop() -> None:
    """Late sends and arrivals with no free slot are the generator's failures, not the server's."""
    flags, reasons = _flags(summary={"lateness_p99_ms": 2.5, "dropped": 5, "requests": 95})
    assert flags == ["generator-late", "dropped"]
    assert reasons["generator-late"] == "p99 of send lateness 2.50 ms > 1 ms"
    assert reasons["dropped"] == "5 of 100 arrivals in the interval found no free slot"
    assert _flags(summary={"lateness_p99_ms": 1.0})[0] == []
    assert _flags(Thresholds(lateness_ms=3.0), summary={"lateness_p99_ms": 2.5})[0] == []


def test_contended_names_the_cores_and_the_share() -> None:
    """Other processes above the threshold on either role's cores; unknown (unpinned) shares
    cannot raise it."""
    flags, reasons = _flags(interference=_interference(7.5, 12.25))
    assert flags == ["contended"]
    assert reasons["contended"] == (
        "other processes used server cores 7.5 % of a core, generator cores 12.2 % of a core"
    )
    only_generator = _flags(interference=_interference(None, 6.0))[1]["contended"]
    assert only_generator == "other processes used generator cores 6.0 % of a core"
    assert _flags(interference=_interference(5.0, None))[0] == []
    assert _flags(interference=None)[0] == []
    assert (
        _flags(Thresholds(contention_percent=20.0), interference=_interference(7.5, 12.0))[0] == []
    )


def test_idle_servers_that_are_not_idle_contend() -> None:
    """Twenty configurations up at once: the others' idle servers took 41 % of the server core
    in every slice of a `--configs all` run (three Ray clusters among them), and the figures
    fell to half the default run's; that is contention, whoever owns the processes."""
    flags, reasons = _flags(interference=_interference(0.7, 1.0, idle_servers=41.0))
    assert flags == ["contended"]
    assert reasons["contended"] == "the run's other servers, not under load, used 41.0 % of a core"
    both = _flags(interference=_interference(7.5, None, idle_servers=6.0))[1]["contended"]
    assert both.startswith("other processes used server cores 7.5 % of a core; ")
    assert _flags(interference=_interference(0.7, 1.0, idle_servers=1.4))[0] == []


def _workers(*workers: WorkerReport) -> GeneratorReport:
    return GeneratorReport(
        t0_ns=0, from_ns=0, to_ns=1, stop_reason="converged", workers=list(workers)
    )


def test_distributed_workers_lost_or_with_unbounded_clocks() -> None:
    """A lost worker's records are missing; a worker whose clock offset is unknown or wider
    than the bound cannot have its latencies trusted against the master's interval."""
    report = _workers(
        WorkerReport(node="w1", clock_uncertainty_ns=200_000),
        WorkerReport(node="w2", lost=True, reason="3 of 5 chunks arrived"),
        WorkerReport(node="w3", clock_uncertainty_ns=6_000_000),
    )
    flags, reasons = _flags(generator=report)
    assert flags == ["clock-unbounded", "worker-lost"]
    assert reasons["worker-lost"] == "w2: 3 of 5 chunks arrived"
    assert reasons["clock-unbounded"] == "w3: clock offset ±6.00 ms"
    unknown = _flags(generator=_workers(WorkerReport(node="w4")))[1]
    assert unknown == {"clock-unbounded": "w4: clock offset unknown"}
    within = _workers(WorkerReport(node="w1", clock_uncertainty_ns=5_000_000))
    assert _flags(generator=within) == ([], {})
    lost_only = _workers(WorkerReport(node="w2", lost=True, reason="gone"))
    assert _flags(generator=lost_only)[0] == ["worker-lost"]  # no clock verdict for it


def test_flags_follow_the_declared_order() -> None:
    """Reports and tables rely on one order of flags, whatever raised them first."""
    flags, reasons = _flags(
        summary={"errors": 1, "incomplete": 1, "lateness_p99_ms": 9.0, "dropped": 1},
        converged=False,
        added_latency_ms=1.0,
        interference=_interference(50.0, 50.0),
        generator=_workers(WorkerReport(node="a", lost=True), WorkerReport(node="b")),
    )
    assert flags == [f for f in FLAGS if f != "failed"]
    assert set(reasons) == set(flags)


@pytest.mark.parametrize("limits", [None, Thresholds()])
def test_default_thresholds(limits: Thresholds | None) -> None:
    """The defaults the settings document: 0.1 ms added, 5 % contention, 1 ms late, 5 ms clock."""
    assert Thresholds() == Thresholds(0.1, 5.0, 1.0, 5.0)
    assert _flags(limits, added_latency_ms=0.11)[0] == ["client-bound"]
