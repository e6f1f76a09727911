"""Running Locust headless as a subprocess for one point, and reading what it wrote.

The Locust process measures the point itself (`loadgen.stopping`): windows until stable or the
cap, then it stops. The collecting process writes `records.npz` and `generator.json` into the
records folder (`loadgen.hooks`); Locust's own `--csv` files are kept beside them for
reference only. `-t` is only a safety net above the cap.
"""

from __future__ import annotations

import contextlib
import math
import os
import signal
import subprocess
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from servingbench.runs.layout import LOCUST_CSV_PREFIX
from servingbench.runs.stats import MeasurePlan
from servingbench.servers.base import SINGLE_THREAD_ENV, harness_bin
from servingbench.stack.processes import pin_argv, tail

__all__ = ["SWEEP_LOCUSTFILE", "LocustJob", "LocustOutcome", "locust_argv", "read_locust_rps"]

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
    plan: MeasurePlan
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

    @property
    def run_time_s(self) -> float:
        wait = 60.0 if self.remote_workers else 0.0  # remote workers may take a while to join
        return self.plan.warmup_s + self.plan.max_duration_s + SAFETY_MARGIN_S + wait

    @property
    def csv_prefix(self) -> Path:
        return self.out_dir / LOCUST_CSV_PREFIX

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
        "--csv",
        str(job.csv_prefix),
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
    return {
        **os.environ,
        **SINGLE_THREAD_ENV,
        **job.env,
        "SERVINGBENCH_LOAD_RECORDS_DIR": str(job.records_dir),
        "SERVINGBENCH_LOAD_MEASURE": job.plan.model_dump_json(),
        "SERVINGBENCH_LOAD_TIMEOUT_S": f"{job.timeout_s:g}",
    }


def run_locust(job: LocustJob, on_start: Callable[[int], None] | None = None) -> LocustOutcome:
    """Run Locust to completion (own session, so Ctrl-C reaches only us and we stop it).

    `on_start(pid)` is called once the process exists, e.g. to start sampling its CPU.
    """
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
    timed_out = False
    try:
        if on_start is not None:
            on_start(proc.pid)
        try:
            proc.wait(timeout=job.run_time_s + EXIT_GRACE_S)
        except subprocess.TimeoutExpired:
            timed_out = True
    finally:
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    return LocustOutcome(proc.returncode, timed_out, tail(job.log_path, 15))


def read_locust_rps(csv_prefix: Path) -> float | None:
    """Locust's own req/s (the `Aggregated` row of `<prefix>_stats.csv`), ramp-up included."""
    path = Path(f"{csv_prefix}_stats.csv")
    try:
        stats = pd.read_csv(path)
        row = stats.loc[stats["Name"] == "Aggregated", "Requests/s"]
        return float(row.iloc[0]) if not row.empty else None
    except (OSError, KeyError, ValueError, pd.errors.ParserError, pd.errors.EmptyDataError):
        return None
