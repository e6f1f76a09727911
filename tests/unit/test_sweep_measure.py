"""One point, without Locust: a point that cannot run is recorded with its reason, a point folder
is never reused, and what the generator wrote is read back (records, report, server timing)."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import numpy as np
import pytest

from servingbench.runs.layout import POINT_FILE
from servingbench.runs.point import GeneratorReport, PointKey, PointResult
from servingbench.runs.records import Outcome, RequestRecords
from servingbench.runs.schema import IncompatibleRunError
from servingbench.runs.stats import MeasurePlan
from servingbench.servers.base import StageMetric
from servingbench.sweep.measure import (
    PointPlan,
    _job,
    _server_timing,
    failed_point,
    measure_point,
    read_generator,
)

MS = 1_000_000


def _plan(**fields: object) -> PointPlan:
    key = PointKey(
        scenario="mlserver-grpc",
        backend="mlserver",
        wire="v2-grpc",
        model="iris",
        rows_per_request=4,
        concurrency=5,
        repeat=2,
    )
    plan = PointPlan(
        key=key,
        host="127.0.0.1:18081",
        plan=MeasurePlan(warmup_s=0.5, window_s=1.0, max_duration_s=4.0),
        timeout_s=1.5,
        stop_grace_s=1.0,
        generator_cpus=[1],
        server_cpus=[0],
        server_name="mlserver-default",
    )
    return dataclasses.replace(plan, **fields)  # type: ignore[arg-type]


def test_point_id_and_generator_processes() -> None:
    """The folder name sorts by series, model, rows, level, repeat; a master sends no load, so
    only workers count as generator processes."""
    assert _plan().point_id == "mlserver-grpc--iris--rows4--c0005--rep002"
    assert _plan().generator_processes == 1
    assert _plan(local_workers=3).generator_processes == 3
    assert _plan(local_workers=1, remote_workers=2).generator_processes == 3


def test_failed_point_is_written_with_its_reason(tmp_path: Path) -> None:
    """A run folder says what happened to every planned point: the flag's reason is the first
    line, the full text (a log tail) stays in `failure_reason`."""
    reason = "mlserver-default (pid 7) is no longer running; last lines:\nTraceback ..."
    result = failed_point(_plan(), tmp_path / "p", reason, started_at="2025-01-01T00:00:00")
    saved = PointResult.read(tmp_path / "p" / POINT_FILE)
    assert saved == result
    assert (saved.status, saved.flags) == ("failed", ["failed"])
    assert saved.flag_reasons == {
        "failed": "mlserver-default (pid 7) is no longer running; last lines:"
    }
    assert saved.failure_reason == reason
    assert saved.pinning == {"server": [0], "generator": [1]}
    assert (saved.host, saved.server_name, saved.timeout_s) == (
        "127.0.0.1:18081",
        "mlserver-default",
        1.5,
    )
    assert saved.summary is None
    assert saved.started_at == "2025-01-01T00:00:00"


def test_dead_server_fails_the_point_before_any_load(tmp_path: Path) -> None:
    """The health check runs first: no Locust is started for a server that is gone."""
    point_dir = tmp_path / "points" / _plan().point_id
    result = measure_point(_plan(), point_dir, [], lambda: "mlserver-default is gone")
    assert (result.status, result.failure_reason) == ("failed", "mlserver-default is gone")
    assert sorted(p.name for p in point_dir.iterdir()) == [POINT_FILE]


def test_point_folder_is_never_reused(tmp_path: Path) -> None:
    """A second measurement must not mix its files into an earlier point's folder."""
    point_dir = tmp_path / "taken"
    point_dir.mkdir()
    with pytest.raises(FileExistsError):
        measure_point(_plan(), point_dir, [], lambda: None)
    assert list(point_dir.iterdir()) == []


def test_locust_job_of_a_point(tmp_path: Path) -> None:
    """The user class follows the wire; the load's options reach Locust (and its workers);
    a local master gets a free port of its own, remote workers the configured one."""
    plan = _plan(
        load_options={"--arrival-rate": "200"},
        extra_env={"GEVENT_BACKEND": "select"},
        metrics_url="http://127.0.0.1:18082/metrics",
        local_workers=2,
    )
    job = _job(plan, tmp_path / "point", tmp_path / "records")
    assert (job.users, job.user_class, job.host) == (5, "V2GrpcUser", "127.0.0.1:18081")
    assert job.options == {
        "--model": "iris",
        "--rows-per-request": "4",
        "--request-timeout": "1.5",
        "--arrival-rate": "200",
    }
    assert job.env == {
        "GEVENT_BACKEND": "select",
        "SERVINGBENCH_LOAD_METRICS_URL": "http://127.0.0.1:18082/metrics",
    }
    assert (job.local_workers, job.cpus, job.plan) == (2, [1], plan.plan)
    assert job.master_port != 5557
    remote = _job(_plan(remote_workers=1, master_port=6000), tmp_path, tmp_path)
    assert remote.master_port == 6000
    assert _job(_plan(), tmp_path, tmp_path).env == {}


# --- server timing --------------------------------------------------------------------------


def _records(server_ms: list[float]) -> RequestRecords:
    """Four measured requests (one failed) after 1 s of warm-up, with Server-Timing values."""
    start = np.asarray([0, 1000, 1100, 1200, 1300], dtype=np.int64) * MS
    outcome = np.asarray([0, 0, 0, Outcome.TIMEOUT, 0], dtype=np.int8)
    server = np.asarray([int(v * MS) if v >= 0 else -1 for v in server_ms], dtype=np.int64)
    return RequestRecords(
        start,
        np.full(5, MS, dtype=np.int64),
        outcome,
        start.copy(),
        server,
        from_ns=1000 * MS,
        to_ns=2000 * MS,
    )


HISTOGRAM = StageMetric("model", "sb_model_seconds", {"model": "{model}"})


def _scrape(count: int, total: float, buckets: tuple[int, int, int]) -> str:
    lines = ["# TYPE sb_model_seconds histogram"]
    for le, n in zip(("0.001", "0.002", "+Inf"), buckets, strict=True):
        lines.append(f'sb_model_seconds_bucket{{model="iris",le="{le}"}} {n}')
    lines += [
        f'sb_model_seconds_count{{model="iris"}} {count}',
        f'sb_model_seconds_sum{{model="iris"}} {total}',
    ]
    return "\n".join(lines) + "\n"


def test_server_timing_from_headers_of_measured_successes() -> None:
    """The warm-up's, the failures' and unreported (-1) header times are left out."""
    records = _records([9.0, 0.2, 0.4, 5.0, -1])
    timing = _server_timing(_plan(), records, {}, "converged")
    assert timing is not None
    assert timing.header_mean_ms == pytest.approx(0.3)
    assert timing.header_p50_ms == pytest.approx(0.3)
    assert timing.header_p99_ms == pytest.approx(0.398)
    assert timing.problem == "no metrics endpoint"
    assert _server_timing(_plan(), _records([-1] * 5), {}, "converged") is None


def test_server_timing_from_two_scrapes_framing_the_interval() -> None:
    """100 model calls in the interval totalling 0.15 s: a mean of 1.5 ms."""
    plan = _plan(metrics_url="http://127.0.0.1:1/metrics", stage_metrics=(HISTOGRAM,))
    scrapes = {"from": _scrape(10, 0.01, (10, 10, 10)), "to": _scrape(110, 0.16, (40, 110, 110))}
    timing = _server_timing(plan, _records([-1] * 5), scrapes, "cap")
    assert timing is not None
    assert timing.problem is None
    model = timing.stages["model"]
    assert model.count == 100
    assert model.mean_ms == pytest.approx(1.5)
    assert model.p50_ms == pytest.approx(1.2857, abs=1e-4)  # rank 50 in the 1-2 ms bucket
    assert model.source == "sb_model_seconds"


def test_a_counter_reset_between_the_scrapes_counts_what_came_after() -> None:
    """The server restarted in the interval: every series went down. As `increase()` reads
    it, the interval's count is the value after the reset, never a negative difference."""
    plan = _plan(metrics_url="http://127.0.0.1:1/metrics", stage_metrics=(HISTOGRAM,))
    scrapes = {"from": _scrape(500, 0.9, (300, 450, 500)), "to": _scrape(40, 0.06, (10, 40, 40))}
    timing = _server_timing(plan, _records([-1] * 5), scrapes, "cap")
    assert timing is not None
    model = timing.stages["model"]
    assert model.count == 40
    assert model.mean_ms == pytest.approx(1.5)
    assert model.p50_ms is not None
    assert 1.0 <= model.p50_ms <= 2.0


def test_non_monotone_buckets_are_made_monotone_before_a_quantile() -> None:
    """A scrape read while the `le=0.002` bucket lagged its `le=0.001` one: the difference
    must not give a bucket that holds fewer requests than the one below it."""
    buckets = [(0.001, 60.0), (0.002, 50.0), (math.inf, 100.0)]
    from servingbench.sweep.server_timing import bucket_quantile

    p50, _ = bucket_quantile(0.5, buckets)
    assert p50 <= 0.001  # 60 of 100 are under 1 ms, whatever the lagging bucket says
    scrapes = {"from": _scrape(0, 0.0, (0, 0, 0)), "to": _scrape(100, 0.15, (60, 50, 100))}
    plan = _plan(metrics_url="http://127.0.0.1:1/metrics", stage_metrics=(HISTOGRAM,))
    timing = _server_timing(plan, _records([-1] * 5), scrapes, "cap")
    assert timing is not None
    p99 = timing.stages["model"].p99_ms
    assert p99 is None or p99 > 1.0


@pytest.mark.parametrize(
    ("scrapes", "stop", "problem"),
    [
        ({"from": "x"}, "converged", "could not be read at both ends"),
        ({"from": "", "to": ""}, "stopped", "the point ended early (stopped)"),
    ],
)
def test_server_timing_says_why_stages_are_missing(
    scrapes: dict[str, str], stop: str, problem: str
) -> None:
    """Scrapes that do not frame the interval give no stages, and the report says why."""
    plan = _plan(metrics_url="http://127.0.0.1:1/metrics", stage_metrics=(HISTOGRAM,))
    timing = _server_timing(plan, _records([-1] * 5), scrapes, stop)
    assert timing is not None
    assert timing.stages == {}
    assert timing.problem is not None
    assert problem in timing.problem


# --- what the generator wrote ---------------------------------------------------------------


def test_generator_output_is_read_back(tmp_path: Path) -> None:
    """records.npz + generator.json, and whichever metrics scrapes exist."""
    assert read_generator(tmp_path) is None  # Locust died before writing anything
    records = _records([0.1] * 5)
    records.save(tmp_path / "records.npz")
    assert read_generator(tmp_path) is None  # the report is missing
    report = GeneratorReport(t0_ns=5, from_ns=10, to_ns=20, stop_reason="converged", windows=3)
    (tmp_path / "generator.json").write_text(report.model_dump_json())
    (tmp_path / "metrics-from.txt").write_text("a 1\n")
    read = read_generator(tmp_path)
    assert read is not None
    got_report, got_records, scrapes = read
    assert got_report == report
    assert np.array_equal(got_records.start_ns, records.start_ns)
    assert (got_records.from_ns, got_records.to_ns) == (records.from_ns, records.to_ns)
    assert scrapes == {"from": "a 1\n"}


def test_unreadable_generator_report_is_an_incompatible_run(tmp_path: Path) -> None:
    """A generator.json of another shape is not silently taken for an empty point."""
    _records([0.1] * 5).save(tmp_path / "records.npz")
    (tmp_path / "generator.json").write_text('{"stop_reason": "converged", "bogus": 1}')
    with pytest.raises(IncompatibleRunError, match=r"generator\.json"):
        read_generator(tmp_path)
