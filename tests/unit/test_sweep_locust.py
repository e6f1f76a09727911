"""How one point's Locust is started: its command line in each generator layout, its environment,
and how its own req/s figure is read back."""

from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path
from typing import Any

import pytest

from servingbench.runs.stats import MeasurePlan
from servingbench.servers.base import SINGLE_THREAD_ENV
from servingbench.sweep.locust import (
    SWEEP_LOCUSTFILE,
    LocustJob,
    locust_argv,
    locust_env,
    read_locust_rps,
)


def _job(tmp_path: Path, **fields: Any) -> LocustJob:
    values: dict[str, Any] = {
        "users": 5,
        "host": "http://127.0.0.1:18080",
        "out_dir": tmp_path / "point",
        "records_dir": tmp_path / "records",
        "plan": MeasurePlan(warmup_s=1.0, window_s=2.0, max_duration_s=12.0),
        "timeout_s": 2.0,
        "stop_grace_s": 1.5,
        "user_class": "V2JsonUser",
    }
    return LocustJob(**(values | fields))


def _after(argv: list[str], flag: str) -> str:
    return argv[argv.index(flag) + 1]


def test_single_process_command_line(tmp_path: Path) -> None:
    """One headless Locust: the sweep's locustfile and user class, every user spawned within
    1/20 s, `-t` a safety net above warm-up + cap, statistics beside the point, the load's
    options."""
    job = _job(tmp_path, options={"--model": "iris", "--rows-per-request": "4"})
    argv = locust_argv(job)
    assert argv[0] == str(Path(sys.executable).with_name("locust"))  # the harness's own
    assert Path(argv[0]).is_file()
    assert argv[1:4] == ["-f", str(SWEEP_LOCUSTFILE), "V2JsonUser"]
    assert SWEEP_LOCUSTFILE.is_file()
    assert _after(argv, "-u") == "5"
    assert _after(argv, "-r") == "100"
    assert _after(argv, "-t") == "23s"  # 1 + 12 + 10 s margin
    assert _after(argv, "--stop-timeout") == "1.5"
    assert _after(argv, "--host") == "http://127.0.0.1:18080"
    assert _after(argv, "--json-file") == str(tmp_path / "point" / "locust")
    assert "--headless" in argv
    assert "--only-summary" in argv
    assert argv[-4:] == ["--model", "iris", "--rows-per-request", "4"]
    assert not {"--master", "--processes", "--expect-workers"} & set(argv)


def test_local_workers_get_their_own_master_port(tmp_path: Path) -> None:
    """A master forking N workers binds the port it was given, never Locust's shared 5557,
    so two runs on one machine cannot meet."""
    argv = locust_argv(_job(tmp_path, local_workers=3, master_port=41234))
    assert _after(argv, "--processes") == "3"
    assert _after(argv, "--master-bind-port") == "41234"
    assert _after(argv, "--master-port") == "41234"
    assert "--master" not in argv
    assert "--expect-workers" not in argv


def test_remote_workers_make_a_waiting_master(tmp_path: Path) -> None:
    """Remote workers join over the network: the master listens where told, waits for all of
    them (up to 60 s, added to `-t`), and forks none itself."""
    job = _job(tmp_path, remote_workers=2, local_workers=4, master_bind="0.0.0.0")
    argv = locust_argv(job)
    assert job.run_time_s == pytest.approx(83.0)  # 1 + 12 + 10 + 60
    assert _after(argv, "-t") == "83s"
    assert _after(argv, "--master-bind-host") == "0.0.0.0"
    assert _after(argv, "--master-bind-port") == "5557"
    assert _after(argv, "--expect-workers") == "2"
    assert _after(argv, "--expect-workers-max-wait") == "60"
    assert "--master" in argv
    assert "--processes" not in argv


def test_spawn_rate_scales_with_users_and_run_time_rounds_up(tmp_path: Path) -> None:
    """Whatever the user count, spawning takes 1/20 s; a fractional run time rounds up."""
    plan = MeasurePlan(warmup_s=0.5, window_s=1.0, max_duration_s=4.2)
    argv = locust_argv(_job(tmp_path, users=256, plan=plan))
    assert _after(argv, "-r") == "5120"
    assert _after(argv, "-t") == "15s"  # ceil(14.7)


@pytest.mark.skipif(shutil.which("taskset") is None, reason="needs taskset (util-linux)")
def test_pinned_generator_runs_under_taskset(tmp_path: Path) -> None:
    """Pinning wraps the whole command, so forked workers stay on the generator's cores;
    an empty core list means unpinned."""
    pinned = locust_argv(_job(tmp_path, cpus=[3, 1]))
    assert pinned[:3] == ["taskset", "-c", "1,3"]
    assert Path(pinned[3]).name == "locust"
    assert locust_argv(_job(tmp_path, cpus=[]))[0] == locust_argv(_job(tmp_path))[0]


def test_environment_carries_the_plan_and_single_threaded_pools(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The locustfile reads its stopping rule, timeout and records folder from the
    environment; the point's own variables override the inherited ones."""
    monkeypatch.setenv("GEVENT_BACKEND", "default")
    plan = MeasurePlan(warmup_s=0.5, window_s=1.0, max_duration_s=4.0, until_stable=False)
    job = _job(tmp_path, plan=plan, timeout_s=2.5, env={"GEVENT_BACKEND": "select"})
    env = locust_env(job)
    assert env["GEVENT_BACKEND"] == "select"
    assert env["SERVINGBENCH_LOAD_RECORDS_DIR"] == str(tmp_path / "records")
    assert env["SERVINGBENCH_LOAD_TIMEOUT_S"] == "2.5"
    assert MeasurePlan.model_validate(json.loads(env["SERVINGBENCH_LOAD_MEASURE"])) == plan
    assert {k: env[k] for k in SINGLE_THREAD_ENV} == SINGLE_THREAD_ENV
    assert env["PATH"] == os.environ["PATH"]


def test_paths_of_a_job(tmp_path: Path) -> None:
    """Locust's statistics and log go in the point's folder, where the report looks for them;
    its statistics are written once at the end (`--json-file`), never every second."""
    job = _job(tmp_path)
    assert job.stats_path == tmp_path / "point" / "locust.json"
    assert job.log_path == tmp_path / "point" / "locust.log"
    argv = locust_argv(job)
    assert "--csv" not in argv
    assert argv[argv.index("--json-file") + 1] == str(tmp_path / "point" / "locust")


# --- Locust's own figure --------------------------------------------------------------------


def _entry(requests: int, start: float, last: float | None) -> dict[str, object]:
    return {"name": "/predict", "num_requests": requests, "start_time": start,
            "last_request_timestamp": last}  # fmt: skip


def test_locust_rps_is_its_requests_over_its_run(tmp_path: Path) -> None:
    """Every entry's requests over the span from the first start to the last request."""
    path = tmp_path / "locust.json"
    path.write_text(json.dumps([_entry(1200, 100.0, 103.0), _entry(300, 101.0, 104.0)]))
    assert read_locust_rps(path) == pytest.approx(1500 / 4.0)


@pytest.mark.parametrize(
    "content",
    [
        None,  # Locust died before writing it
        "",  # empty file
        "[]",  # no request at all
        json.dumps([_entry(3, 100.0, None)]),  # never a request timestamp
        json.dumps([_entry(3, 100.0, 100.0)]),  # no time span
    ],
)
def test_missing_locust_rps_is_none(tmp_path: Path, content: str | None) -> None:
    """Locust's figure is for reference only: an unreadable file must not fail the point."""
    path = tmp_path / "locust.json"
    if content is not None:
        path.write_text(content)
    assert read_locust_rps(path) is None
