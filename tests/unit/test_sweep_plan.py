"""The sweep's plan: which points run, in which order, and how each one is measured."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from servingbench.runs.calibration import CalibrationRecord, OpenLoopCeiling, WireCalibration
from servingbench.runs.point import PointKey
from servingbench.runs.stats import MeasurePlan
from servingbench.servers import Scenario, ServerConfig, get_backend, get_scenario
from servingbench.servers.base import LaunchSpec
from servingbench.stack.configs import resolve_configs
from servingbench.stack.processes import ProcessHandle
from servingbench.sweep.flags import Thresholds
from servingbench.sweep.plan import (
    Series,
    closed_keys,
    generator_workers,
    open_keys,
    point_plan,
    probe_plan,
    series_of,
)
from servingbench.sweep.servers import BenchServer, BenchServers
from servingbench.sweep.settings import BenchSettings, load_settings
from tests.unit.calibration_record import calibration_record


@pytest.fixture(autouse=True)
def _no_bench_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Settings must come from the test, not from the shell that runs it."""
    import os

    for name in [n for n in os.environ if n.startswith("SERVINGBENCH_BENCH_")]:
        monkeypatch.delenv(name)


def _config(key: str) -> ServerConfig:
    backend, _, name = key.partition(":")
    return next(c for c in resolve_configs(["all"]) if c.backend == backend and c.name == name)


def _settings(**values: Any) -> BenchSettings:
    return load_settings(overrides={"server_cpus": "0", "generator_cpus": "1,2,3", **values})


def _calibration(open_rate: float | None = 500.0, wire: str = "v2-json") -> CalibrationRecord:
    ceiling = (
        OpenLoopCeiling(rate=open_rate, achieved_rps=open_rate, lateness_p99_ms=0.2, dropped=0)
        if open_rate
        else None
    )
    return calibration_record(
        {wire: WireCalibration(wire=wire, open_loop=ceiling)}, model="breast-cancer"
    )


# --- series ---------------------------------------------------------------------------------


def _scenarios(*names: str) -> list[Scenario]:
    return [get_scenario(name) for name in names]


def test_series_label_names_the_configuration_only_when_not_default() -> None:
    """Default configurations keep the bare scenario name the report has always used."""
    default = Series(get_scenario("mlserver-rest"), _config("mlserver:default"), "breast-cancer", 1)
    batching = Series(get_scenario("fastapi-rest"), _config("fastapi:batching"), "iris", 8)
    assert default.label == "mlserver-rest breast-cancer rows=1"
    assert batching.label == "fastapi-rest@batching iris rows=8"


def test_series_pair_each_scenario_only_with_its_own_backends_configurations() -> None:
    """A FastAPI configuration must never be paired with an MLServer scenario (no such server)."""
    configs = resolve_configs(["fastapi:batching", "fastapi:threadpool"])
    series = series_of(
        _scenarios("fastapi-rest", "mlserver-grpc"), configs, ["iris", "breast-cancer"], [1, 8]
    )
    assert Counter((s.scenario.name, s.config.key) for s in series) == {
        ("fastapi-rest", "fastapi:batching"): 4,
        ("fastapi-rest", "fastapi:threadpool"): 4,
        ("mlserver-grpc", "mlserver:default"): 4,
    }
    assert {(s.model, s.rows_per_request) for s in series} == {
        ("iris", 1),
        ("iris", 8),
        ("breast-cancer", 1),
        ("breast-cancer", 8),
    }


# --- closed loop ----------------------------------------------------------------------------


def _three_series() -> list[Series]:
    return series_of(
        _scenarios("fastapi-rest", "mlserver-rest", "mlserver-grpc"),
        resolve_configs([]),
        ["breast-cancer"],
        [1],
    )


def test_closed_plan_is_repeat_major_with_every_series_once_per_block() -> None:
    """Drift between repeats must hit every series alike: each (repeat, level) block holds every
    series exactly once, repeats run one after the other, levels in the order given."""
    series = _three_series()
    plan = closed_keys(series, [1, 10], repeats=3, seed=7)
    assert len(plan) == 3 * 2 * 3
    blocks = [plan[i : i + 3] for i in range(0, len(plan), 3)]
    assert [(b[0][0].repeat, b[0][0].concurrency) for b in blocks] == [
        (1, 1),
        (1, 10),
        (2, 1),
        (2, 10),
        (3, 1),
        (3, 10),
    ]
    for block in blocks:
        assert sorted(s.scenario.name for _, s in block) == sorted(s.scenario.name for s in series)
        assert len({(k.repeat, k.concurrency) for k, _ in block}) == 1
    key, one = plan[0]
    assert key.scenario == one.scenario.name
    assert key.backend == get_backend(one.config.backend).name
    assert (key.load, key.rate, key.model, key.rows_per_request) == (
        "closed",
        None,
        "breast-cancer",
        1,
    )
    assert len({k.point_id() for k, _ in plan}) == len(plan)  # no two points share a folder


def test_closed_plan_shuffles_the_series_and_replays_from_its_seed() -> None:
    """No series is always measured first; the recorded seed reproduces the exact order."""
    series = _three_series()
    plan = closed_keys(series, [1], repeats=8, seed=3)
    firsts = {plan[i][1].scenario.name for i in range(0, len(plan), 3)}
    assert len(firsts) > 1
    assert [k for k, _ in plan] == [k for k, _ in closed_keys(series, [1], 8, seed=3)]
    orders = {tuple(k.scenario for k, _ in closed_keys(series, [1], 8, seed=s)) for s in range(5)}
    assert len(orders) > 1


def test_closed_plan_of_nothing_is_empty() -> None:
    """No series or no repeat: nothing to measure, and no error."""
    assert closed_keys([], [1, 10], 3, seed=1) == []
    assert closed_keys(_three_series(), [1], 0, seed=1) == []


# --- open loop ------------------------------------------------------------------------------


def test_open_plan_takes_each_series_own_rates_level_by_level() -> None:
    """Level i is each series' i-th rate; a series with fewer rates sits out the higher levels."""
    fast, slow, grpc = _three_series()
    rates = {fast: [100.0, 200.0, 400.04], slow: [50.0]}
    plan = open_keys(rates, repeats=2, seed=5, max_in_flight=64, arrivals="constant")
    assert len(plan) == 2 * (3 + 1)
    slow_name = slow.scenario.name
    assert [(k.repeat, k.scenario, k.rate) for k, _ in plan if k.scenario == slow_name] == [
        (1, slow_name, 50.0),
        (2, slow_name, 50.0),
    ]
    assert [k.rate for k, s in plan if s == fast and k.repeat == 1] == [100.0, 200.0, 400.0]
    first_level = {s.scenario for _, s in plan[:2]}
    assert first_level == {fast.scenario, slow.scenario}
    key = plan[0][0]
    assert (key.load, key.concurrency, key.arrivals) == ("open", 64, "constant")
    assert grpc.scenario.name not in {k.scenario for k, _ in plan}
    assert open_keys({}, 3, 1, 64, "poisson") == []


# --- generator processes --------------------------------------------------------------------


def _open_key(rate: float, wire: str = "v2-json") -> PointKey:
    scenario = "mlserver-rest" if wire == "v2-json" else "mlserver-grpc"
    return PointKey(
        scenario=scenario,
        backend="mlserver",
        wire=wire,
        model="breast-cancer",
        rows_per_request=1,
        load="open",
        concurrency=256,
        rate=rate,
        arrivals="poisson",
    )


@pytest.mark.parametrize(
    ("rate", "chosen", "expected"),
    [
        (400.0, 0, 0),  # within one process's ceiling: as asked
        (500.0, 0, 0),  # exactly at the ceiling still fits one process
        (1200.0, 0, 3),  # ceil(1200 / 500) processes
        (900.0, 2, 2),  # the workers asked for already suffice
        (4000.0, 0, 3),  # 8 needed, but only 3 generator cores
    ],
)
def test_open_loop_adds_workers_above_the_calibrated_ceiling(
    rate: float, chosen: int, expected: int
) -> None:
    """One Locust process keeps its schedule only up to the calibrated rate; beyond it the
    sweep spreads the arrivals over more local processes, one per generator core at most."""
    settings = _settings(generator_workers=chosen)
    assert generator_workers(_open_key(rate), settings, _calibration(500.0)) == expected


def test_worker_count_is_left_alone_where_no_ceiling_applies() -> None:
    """Closed loop, remote workers, no calibration, or an uncalibrated wire: as configured."""
    settings = _settings(generator_workers=1)
    closed = _open_key(5000.0).model_copy(update={"load": "closed", "rate": None})
    assert generator_workers(closed, settings, _calibration()) == 1
    assert generator_workers(_open_key(5000.0), settings, None) == 1
    assert generator_workers(_open_key(5000.0, "v2-grpc"), settings, _calibration()) == 1
    assert generator_workers(_open_key(5000.0), settings, _calibration(open_rate=None)) == 1
    remote = _settings(generator_workers=0, remote_workers=2)
    assert generator_workers(_open_key(5000.0), remote, _calibration()) == 0


def test_one_generator_core_gets_no_workers_added() -> None:
    """On one generator core a master plus one worker would share the core, each slower than
    a single process: the point stays one process (and is flagged client-bound instead)."""
    settings = _settings(generator_workers=0, generator_cpus="1")
    assert generator_workers(_open_key(5000.0), settings, _calibration(500.0)) == 0


def test_high_rate_never_lowers_the_workers_asked_for() -> None:
    """`--generator-workers 3` on two generator cores must not drop to 2 at a high rate while
    a low rate keeps 3 (the docstring: *more* when the rate needs them): the cores cap only
    the workers added, never those asked for."""
    settings = _settings(generator_workers=3, generator_cpus="1,2")
    assert generator_workers(_open_key(400.0), settings, _calibration(500.0)) == 3
    assert generator_workers(_open_key(5000.0), settings, _calibration(500.0)) >= 3


# --- point plans ----------------------------------------------------------------------------


def _running(config: ServerConfig, ports: dict[str, int], tmp: Path) -> BenchServer:
    spec = LaunchSpec(
        name=config.server_name,
        backend=config.backend,
        argv=["true"],
        env={},
        ready_urls=[],
        ports=ports,
        workdir=tmp,
    )
    handle = ProcessHandle(config.server_name, pid=1, create_time=0.0, log_path="", argv=("true",))
    return BenchServer(spec, handle, startup_s=1.0, config=config)


def test_point_plan_for_a_started_server(tmp_path: Path) -> None:
    """A started server is loaded at its own free ports, its metrics scraped, its core pinned,
    and every measuring knob and threshold comes from the settings."""
    settings = _settings(
        warmup_s=0.5,
        window_s=1.0,
        max_duration_s=6.0,
        timeout_s=1.5,
        contention_percent=7.0,
        added_latency_bound_ms=0.2,
        lateness_bound_ms=3.0,
        generator_workers=2,
    )
    config = _config("mlserver:default")
    ports = {"http": 18080, "grpc": 18081, "metrics": 18082}
    servers = BenchServers(running={config.key: _running(config, ports, tmp_path)})
    one = Series(get_scenario("mlserver-grpc"), config, "breast-cancer", 1)
    key, _ = closed_keys([one], [5], 1, seed=1)[0]
    plan = point_plan(key, one, settings, servers, None)
    assert plan.host == "127.0.0.1:18081"
    assert plan.metrics_url == "http://127.0.0.1:18082/metrics"
    assert (plan.server_cpus, plan.generator_cpus) == ([0], [1, 2, 3])
    assert plan.server_name == "mlserver-default"
    assert plan.local_workers == 2
    assert (plan.plan.warmup_s, plan.plan.window_s, plan.plan.max_duration_s) == (0.5, 1.0, 6.0)
    assert (plan.timeout_s, plan.stop_grace_s) == (1.5, settings.stop_grace_s)
    assert plan.thresholds == Thresholds(
        added_latency_ms=0.2, contention_percent=7.0, lateness_ms=3.0
    )
    assert plan.stage_metrics == get_backend("mlserver").stage_metrics
    assert (plan.load_options, plan.extra_env) == ({}, {})


def test_point_plan_for_a_server_that_never_started_has_no_address() -> None:
    """Its points are recorded as failed by the health check; the plan must not invent a host."""
    config = _config("mlserver:default")
    one = Series(get_scenario("mlserver-rest"), config, "breast-cancer", 1)
    key, _ = closed_keys([one], [1], 1, seed=1)[0]
    plan = point_plan(key, one, _settings(), BenchServers(failures={config.key: "boom"}), None)
    assert (plan.host, plan.metrics_url) == ("", None)


def test_open_point_plan_passes_the_schedule_to_locust(tmp_path: Path) -> None:
    """Open loop: rate, arrival process and a per-repeat seed reach Locust (and its workers),
    with gevent's select backend, whose timers are not rounded to the millisecond."""
    settings = _settings(load="open", arrival_seed=40, ca_bundle=str(tmp_path / "ca.pem"))
    config = _config("fastapi:default")
    servers = BenchServers(running={config.key: _running(config, {"http": 18000}, tmp_path)})
    one = Series(get_scenario("fastapi-v2-rest"), config, "iris", 4)
    plan_keys = open_keys({one: [250.0]}, repeats=2, seed=1, max_in_flight=32, arrivals="constant")
    second = next(k for k, _ in plan_keys if k.repeat == 2)
    plan = point_plan(second, one, settings, servers, None)
    assert plan.host == "http://127.0.0.1:18000"
    assert plan.load_options == {
        "--ca-bundle": str(tmp_path / "ca.pem"),
        "--arrival-rate": "250",
        "--arrivals": "constant",
        "--arrival-seed": "42",
    }
    assert plan.extra_env == {"GEVENT_BACKEND": "select"}


def test_point_plan_for_a_target_attributes_no_server_cores() -> None:
    """A deployed target's processes are not ours: no server cores, no server name, and its
    metrics URL is the one given with --metrics-url."""
    settings = _settings(
        targets={"mlserver-rest": "http://10.0.0.5:8080"},
        metrics_urls={"mlserver-rest": "http://10.0.0.5:8082/metrics"},
    )
    assert settings.scenarios == ["mlserver-rest"]
    servers = BenchServers(targets=dict(settings.targets))
    one = Series(get_scenario("mlserver-rest"), _config("mlserver:default"), "breast-cancer", 1)
    key, _ = closed_keys([one], [1], 1, seed=1)[0]
    plan = point_plan(key, one, settings, servers, None)
    assert plan.host == "http://10.0.0.5:8080"
    assert plan.metrics_url == "http://10.0.0.5:8082/metrics"
    assert (plan.server_cpus, plan.server_name) == (None, None)
    assert plan.generator_cpus == [1, 2, 3]


# --- SLO probes -----------------------------------------------------------------------------


def test_a_probe_runs_until_its_tail_can_be_bounded_within_the_longest_probe() -> None:
    """459 requests bound a p99: at 5 req/s the probe may run 1.25 x 459 / 5 s, in windows that
    hold the 100 successful requests a window needs with room for chance (1.5 x 100 / 5 = 30 s);
    at 1,000 req/s the usual plan holds them; a p99.9 (4,603) at 10 req/s stops at the longest
    probe."""
    plan = MeasurePlan(window_s=1.0, max_duration_s=6.0)
    slow = probe_plan(plan, 5.0, 459, longest_s=120.0)
    assert slow.max_duration_s == pytest.approx(1.25 * 459 / 5)
    assert slow.stability.min_point_ok == 459
    assert slow.window_s == 30.0
    fast = probe_plan(plan, 1000.0, 459, longest_s=120.0)
    assert (fast.max_duration_s, fast.window_s) == (6.0, 1.0)
    rare = probe_plan(plan, 10.0, 4603, longest_s=120.0)
    assert (rare.max_duration_s, rare.stability.min_point_ok) == (120.0, 4603)
    at_50 = probe_plan(plan, 50.0, 459, longest_s=120.0)
    assert at_50.window_s == 3.0  # three windows of 3 s: 9 s of the 11.5 s for 459 requests
    assert probe_plan(plan, 5.0, 0, longest_s=120.0) == plan  # not a probe: unchanged
