"""Running Locust headless as a subprocess for one point, and collecting what it wrote.

Each Locust process writes its raw records to `<records dir>/part-<pid>.npz` (the load
generator's contract); Locust's own `--csv` files are kept beside them for reference only.
"""

from __future__ import annotations

import contextlib
import math
import os
import signal
import subprocess
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from servingbench.runs.layout import LOCUST_CSV_PREFIX
from servingbench.runs.records import RequestRecords
from servingbench.stack.processes import pin_argv, tail
from servingbench.stack.servers import SINGLE_THREAD_ENV, venv_bin

__all__ = [
    "LocustJob",
    "LocustOutcome",
    "load_parts",
    "locust_argv",
    "read_locust_rps",
    "run_locust",
]

STOP_GRACE_S = 30.0  # Locust may hang on exit (e.g. a gRPC client left open): then it is killed


@dataclass(frozen=True)
class LocustJob:
    """One headless Locust run: which file, how many users, for how long, against what."""

    locustfile: Path
    users: int
    run_time_s: float
    host: str
    out_dir: Path
    records_dir: Path
    model: str
    rows_per_request: int
    processes: int = 1
    cpus: Sequence[int] | None = None

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
        venv_bin("locust"),
        "-f",
        str(job.locustfile),
        "--headless",
        "-u",
        str(job.users),
        "-r",
        str(job.users),
        "-t",
        f"{math.ceil(job.run_time_s)}s",
        "--host",
        job.host,
        "--csv",
        str(job.csv_prefix),
        "--only-summary",
    ]
    if job.processes > 1:
        argv += ["--processes", str(job.processes)]
    return pin_argv(argv, job.cpus)


def locust_env(job: LocustJob) -> dict[str, str]:
    return {
        **os.environ,
        **SINGLE_THREAD_ENV,
        "SERVINGBENCH_LOAD_RECORDS_DIR": str(job.records_dir),
        "SERVINGBENCH_LOAD_MODEL": job.model,
        "SERVINGBENCH_LOAD_ROWS_PER_REQUEST": str(job.rows_per_request),
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
            proc.wait(timeout=job.run_time_s + STOP_GRACE_S)
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


def load_parts(records_dir: Path) -> list[RequestRecords]:
    """Every `part-*.npz` a Locust process wrote; empty parts are dropped."""
    parts = [RequestRecords.load(p) for p in sorted(records_dir.glob("part-*.npz"))]
    return [p for p in parts if len(p)]
