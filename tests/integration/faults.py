"""Faults for the integration tests: signals sent to real processes, and the watching that times
them against a sweep that runs in this process.

- `Freezer`: SIGSTOP / SIGCONT a whole process tree (the server keeps its sockets: the kernel
  still accepts connections and buffers requests, so a client sees a hang, not a refusal).
  Leaving its `with` block always resumes the tree.
- `Staller`: a thread that freezes the tree for `stall_s` out of every `period_s`, and records
  when each stall really started and ended (`perf_counter_ns`, CLOCK_MONOTONIC: the clock the
  load generator stamps its records with).
- `LoadWatch`: a thread that notices when the sweep's Locust process has started and the
  server's inference counter starts to move (the first requests of the point), then runs an
  action `delay_s` later. The counter comes from our service's `/stats`.
- `remote_workers`: `servingbench worker --once` processes, each in its own folder.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from time import perf_counter_ns
from types import TracebackType

import psutil

__all__ = [
    "Freezer",
    "LoadWatch",
    "Staller",
    "locust_children",
    "remote_workers",
    "served_requests",
]

INFERENCE_ROUTES = ("/predict", "/v2/models/")
SERVINGBENCH = Path(sys.executable).with_name("servingbench")


def served_requests(base_url: str, timeout_s: float = 2.0) -> int:
    """Inference requests our service has answered so far (its `/stats` all-time totals)."""
    with urllib.request.urlopen(f"{base_url}/stats", timeout=timeout_s) as response:
        stats = json.loads(response.read())
    return sum(
        int(route["total"])
        for path, route in stats["routes"].items()
        if path.startswith(INFERENCE_ROUTES)
    )


def locust_children(marker: str = "--headless") -> list[psutil.Process]:
    """This process's direct children that are the sweep's Locust (master or single) process."""
    out = []
    for child in psutil.Process().children():
        with contextlib.suppress(psutil.Error):
            if any(marker == part for part in child.cmdline()):
                out.append(child)
    return out


def _tree(pid: int) -> list[psutil.Process]:
    root = psutil.Process(pid)
    return [root, *root.children(recursive=True)]


def _signal(procs: list[psutil.Process], sig: signal.Signals) -> None:
    for proc in procs:
        with contextlib.suppress(psutil.Error):
            proc.send_signal(sig)


class Freezer:
    """SIGSTOP / SIGCONT one process tree; the tree is resumed when the `with` block ends."""

    def __init__(self, pid: int) -> None:
        self.procs = _tree(pid)
        self.frozen_ns: int | None = None

    def freeze(self) -> int:
        """Stop every process of the tree; returns when (perf_counter_ns)."""
        _signal(self.procs, signal.SIGSTOP)
        self.frozen_ns = perf_counter_ns()
        return self.frozen_ns

    def resume(self) -> int:
        _signal(self.procs, signal.SIGCONT)
        return perf_counter_ns()

    def stopped(self) -> bool:
        """True when every process of the tree is in the stopped state."""
        try:
            return all(p.status() == psutil.STATUS_STOPPED for p in self.procs)
        except psutil.Error:
            return False

    def __enter__(self) -> Freezer:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.resume()


@dataclass
class Staller:
    """Freezes a tree for `stall_s` of every `period_s`, from `start()` to `stop()`."""

    pid: int
    period_s: float = 1.0
    stall_s: float = 0.2
    stalls: list[tuple[int, int]] = field(default_factory=list)
    """(frozen, resumed) of every stall, perf_counter_ns."""

    def __post_init__(self) -> None:
        self._freezer = Freezer(self.pid)
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._run, name="staller", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def _run(self) -> None:
        try:
            while not self._done.wait(self.period_s - self.stall_s):
                frozen = self._freezer.freeze()
                self._done.wait(self.stall_s)  # a stop request ends the stall at once
                self.stalls.append((frozen, self._freezer.resume()))
        finally:
            self._freezer.resume()

    def stop(self) -> None:
        self._done.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)
        self._freezer.resume()  # whatever happened to the thread


class LoadWatch:
    """Runs `action` `delay_s` after the point's first requests reach the server.

    "First requests": a Locust child of this process exists (so parity and target checks, which
    also call the server, are over), and then the server's inference count moves. `baseline` is
    the count just before: what the server answers from then on is the point's load.
    """

    def __init__(
        self,
        base_url: str,
        action: Callable[[], object] | None = None,
        delay_s: float = 0.0,
        timeout_s: float = 60.0,
    ) -> None:
        self.base_url = base_url
        self.action = action
        self.delay_s = delay_s
        self.timeout_s = timeout_s
        self.baseline: int | None = None
        self.load_ns: int | None = None
        """When the count first moved (perf_counter_ns)."""
        self.error: BaseException | None = None
        self._cancel = threading.Event()
        self._thread = threading.Thread(target=self._run, name="load-watch", daemon=True)

    def _run(self) -> None:
        try:
            deadline = time.monotonic() + self.timeout_s
            while not locust_children():
                if time.monotonic() > deadline or self._cancel.wait(0.02):
                    return
            self.baseline = served_requests(self.base_url)
            while served_requests(self.base_url) <= self.baseline:
                if time.monotonic() > deadline or self._cancel.wait(0.01):
                    return
            self.load_ns = perf_counter_ns()
            if self.action is None or self._cancel.wait(self.delay_s):
                return
            self.action()
        except BaseException as exc:  # reported by the test, not lost in a thread
            self.error = exc

    def __enter__(self) -> LoadWatch:
        self._thread.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._cancel.set()
        self._thread.join(timeout=10)


@contextlib.contextmanager
def remote_workers(
    folders: list[Path], master_port: int, exit_timeout_s: float = 30.0
) -> Iterator[list[subprocess.Popen[bytes]]]:
    """One `servingbench worker --once` per folder, run from it (its log `worker.log` there).

    On leaving the block the workers get `exit_timeout_s` to finish (they exit with their
    master), then their process groups are killed; `returncode` says which way it went.
    """
    procs: list[subprocess.Popen[bytes]] = []
    argv = [str(SERVINGBENCH), "worker", "--master", "127.0.0.1"]
    argv += ["--master-port", str(master_port), "--once"]
    try:
        for folder in folders:
            folder.mkdir(parents=True, exist_ok=True)
            with (folder / "worker.log").open("wb") as log:
                proc = subprocess.Popen(
                    argv, cwd=folder, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
                )
            procs.append(proc)
        yield procs
        deadline = time.monotonic() + exit_timeout_s
        for proc in procs:
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=max(0.0, deadline - time.monotonic()))
    finally:
        for proc in procs:
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
