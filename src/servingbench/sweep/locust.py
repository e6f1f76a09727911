"""Running Locust headless as a subprocess for one point, and reading what it wrote.

The Locust process measures the point itself (`loadgen.stopping`): windows until stable or the
cap, then it stops. The collecting process writes `records.npz` and `generator.json` into the
records folder (`loadgen.hooks`). Locust's own statistics are kept as one `--json-file` written
at the end, for reference only: its `--csv` writer would recompute and rewrite them every
second inside the load's event loop. `-t` is only a safety net above the cap.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import signal
import subprocess
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from servingbench.runs.layout import LOCUST_STATS_FILE
from servingbench.runs.stats import MeasurePlan
from servingbench.servers.base import SINGLE_THREAD_ENV, harness_bin
from servingbench.stack.processes import pin_argv, tail

__all__ = [
    "SWEEP_LOCUSTFILE",
    "LocustJob",
    "LocustOutcome",
    "RunningLocust",
    "locust_argv",
    "read_locust_rps",
    "run_locust",
    "start_locust",
]

SWEEP_LOCUSTFILE = Path(__file__).resolve().parent.parent / "loadgen" / "locustfile.py"
SAFETY_MARGIN_S = 10.0
"""`-t` beyond warm-up + cap: startup, the settle, and the stop's grace fit well within it."""
SPAWN_PER_SECOND = 20
"""Users spawn in about 1/20 s, well inside the warm-up: the start-up burst (connections, the
heap freeze at `spawning_complete`) is over before anything is measured."""
EXIT_GRACE_S = 30.0
"""After `-t`, how long Locust may take to exit before it is killed (e.g. a client left open)."""


@dataclass(frozen=True)
class LocustJob:
    """One headless Locust run: what to load, how many users, how to measure, where to write."""

    users: int
    host: str
    out_dir: Path
    records_dir: Path
    plan: MeasurePlan | None
    """The point's stopping rule; None: the load runs until `-t` or its schedule ends."""
    timeout_s: float
    stop_grace_s: float
    user_class: str
    options: dict[str, str] = field(default_factory=dict)
    """Locust options of the load (`loadgen.settings.CLI_FIELDS`): a master passes them on to
    its workers, wherever they run."""
    env: dict[str, str] = field(default_factory=dict)
    locustfile: Path = SWEEP_LOCUSTFILE
    local_workers: int = 0
    """0: one Locust process; N: a master with N local worker processes (`--processes N`)."""
    remote_workers: int = 0
    """`servingbench worker` processes (other hosts) the master waits for."""
    master_bind: str = "127.0.0.1"
    master_port: int = 5557
    cpus: Sequence[int] | None = None
    run_for_s: float | None = None
    """How long the load is planned to run (an interleaved session); None: the point's plan."""

    @property
    def run_time_s(self) -> float:
        wait = 60.0 if self.remote_workers else 0.0  # remote workers may take a while to join
        planned = self.run_for_s
        if planned is None:
            assert self.plan is not None, "a job runs for its plan or for run_for_s"
            planned = self.plan.warmup_s + self.plan.max_duration_s
        return planned + SAFETY_MARGIN_S + wait

    @property
    def stats_path(self) -> Path:
        return self.out_dir / LOCUST_STATS_FILE

    @property
    def log_path(self) -> Path:
        return self.out_dir / "locust.log"


@dataclass(frozen=True)
class LocustOutcome:
    returncode: int | None
    timed_out: bool
    log_tail: str


def locust_argv(job: LocustJob) -> list[str]:
    argv = [
        harness_bin("locust"),
        "-f",
        str(job.locustfile),
        job.user_class,
        "--headless",
        "-u",
        str(job.users),
        "-r",
        str(job.users * SPAWN_PER_SECOND),
        "-t",
        f"{math.ceil(job.run_time_s)}s",
        "--stop-timeout",
        f"{job.stop_grace_s:g}",
        "--host",
        job.host,
        "--json-file",
        str(job.stats_path.with_suffix("")),
        "--only-summary",
    ]
    for flag, value in job.options.items():
        argv += [flag, value]
    port = str(job.master_port)
    if job.remote_workers:  # workers on other hosts: `servingbench worker --master HOST`
        argv += ["--master", "--master-bind-host", job.master_bind, "--master-bind-port", port]
        argv += ["--expect-workers", str(job.remote_workers), "--expect-workers-max-wait", "60"]
    elif job.local_workers:  # forked here; its own port, so runs never meet on Locust's 5557
        argv += ["--processes", str(job.local_workers), "--master-bind-port", port]
        argv += ["--master-port", port]
    return pin_argv(argv, job.cpus)


def locust_env(job: LocustJob) -> dict[str, str]:
    env = {
        **os.environ,
        **SINGLE_THREAD_ENV,
        **job.env,
        "SERVINGBENCH_LOAD_RECORDS_DIR": str(job.records_dir),
        "SERVINGBENCH_LOAD_TIMEOUT_S": f"{job.timeout_s:g}",
    }
    if job.plan is not None:
        env["SERVINGBENCH_LOAD_MEASURE"] = job.plan.model_dump_json()
    else:
        env.pop("SERVINGBENCH_LOAD_MEASURE", None)
    return env


@dataclass
class RunningLocust:
    """A started headless Locust (own session, so Ctrl-C reaches only us and we stop it)."""

    job: LocustJob
    proc: subprocess.Popen[bytes]

    @property
    def pid(self) -> int:
        return self.proc.pid

    def wait(self, timeout_s: float | None = None) -> LocustOutcome:
        """Until it exits (killed, with its children, after `timeout_s`: default its `-t`
        plus a grace)."""
        limit = self.job.run_time_s + EXIT_GRACE_S if timeout_s is None else timeout_s
        timed_out = False
        try:
            self.proc.wait(timeout=limit)
        except subprocess.TimeoutExpired:
            timed_out = True
        finally:
            self.kill()
        return LocustOutcome(self.proc.returncode, timed_out, tail(self.job.log_path, 15))

    def kill(self) -> None:
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()


def start_locust(job: LocustJob) -> RunningLocust:
    job.out_dir.mkdir(parents=True, exist_ok=True)
    job.records_dir.mkdir(parents=True, exist_ok=True)
    with job.log_path.open("ab") as log:
        proc = subprocess.Popen(
            locust_argv(job),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=locust_env(job),
            start_new_session=True,
        )
    return RunningLocust(job, proc)


def run_locust(job: LocustJob, on_start: Callable[[int], None] | None = None) -> LocustOutcome:
    """Run Locust to completion; `on_start(pid)` is called once the process exists, e.g. to
    start sampling its CPU."""
    running = start_locust(job)
    try:
        if on_start is not None:
            on_start(running.pid)
        return running.wait()
    finally:
        running.kill()


def read_locust_rps(stats_path: Path) -> float | None:
    """Locust's own req/s over its whole run (ramp-up included), from its `--json-file`."""
    try:
        entries = json.loads(stats_path.read_text())
        requests = sum(int(e["num_requests"]) for e in entries)
        start = min(float(e["start_time"]) for e in entries)
        end = max(float(e["last_request_timestamp"]) for e in entries)
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return requests / (end - start) if end > start else None
