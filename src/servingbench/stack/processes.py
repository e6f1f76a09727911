"""Process primitives shared by `serve-all`, the sweep and the integration tests.

Each server runs in its own session (process group), so stopping it reaches every child
(MLServer's parallel workers, uvicorn's workers). A stopped server is identified by pid *and*
start time, so a recycled pid is never signalled. The start time compared is the kernel's own
(clock ticks since boot): the wall-clock creation time psutil derives from it moves whenever
the system clock is stepped (NTP, a virtual machine resumed from a pause), and a server whose
creation time no longer matched would be taken for gone and never stopped.
"""

from __future__ import annotations

import contextlib
import functools
import os
import shutil
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import psutil

from servingbench.addresses import parse_address

__all__ = [
    "Memory",
    "ProcessHandle",
    "ServerStartError",
    "free_port",
    "http_checks",
    "http_ok",
    "is_ready",
    "memory_of",
    "pin_argv",
    "port_in_use",
    "start_detached",
    "start_ticks",
    "stop_handle",
    "stop_handles",
    "tail",
    "tcp_open",
    "wait_until",
]


class ServerStartError(RuntimeError):
    """A server did not become ready; the message carries the tail of its log."""


@dataclass(frozen=True)
class ProcessHandle:
    """Enough to find a started process again, even from another `servingbench` invocation."""

    name: str
    pid: int
    create_time: float
    log_path: str
    argv: tuple[str, ...]
    cpus: tuple[int, ...] | None = None
    start_ticks: int | None = None
    """When the kernel started it (`start_ticks`); None in state files written before it was
    recorded, where `create_time` is compared instead."""

    def process(self) -> psutil.Process | None:
        """The live process, or None when it exited or the pid now belongs to someone else."""
        try:
            proc = psutil.Process(self.pid)
            if not self.started_as_recorded(proc):
                return None
            if proc.status() == psutil.STATUS_ZOMBIE:
                return None
            return proc
        except psutil.Error:
            return None

    def started_as_recorded(self, proc: psutil.Process) -> bool:
        """`proc` (of this handle's pid) is the process started then, not a recycled pid."""
        if self.start_ticks is not None:
            return start_ticks(proc.pid) == self.start_ticks
        return abs(proc.create_time() - self.create_time) <= 0.05

    def alive(self) -> bool:
        return self.process() is not None

    def tree(self) -> list[psutil.Process]:
        """The process and all its descendants (for CPU and RSS accounting)."""
        proc = self.process()
        if proc is None:
            return []
        try:
            return [proc, *proc.children(recursive=True)]
        except psutil.Error:
            return [proc]


@dataclass(frozen=True)
class Memory:
    """A process tree's memory in bytes.

    RSS counts pages shared between the processes (forked workers, shared libraries) once per
    process, so summing it over a tree overstates; PSS divides each shared page among its
    sharers and sums to what the tree really costs; USS is what only the tree's processes hold.
    """

    rss: int
    pss: int
    uss: int


def start_ticks(pid: int) -> int:
    """The process's start time in clock ticks since boot (`/proc/<pid>/stat`, field 22): fixed
    for its lifetime and independent of the system clock. Raises psutil.NoSuchProcess."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        raise psutil.NoSuchProcess(pid) from None
    # the command name (field 2) is in parentheses and may hold spaces or parentheses itself
    return int(stat[stat.rindex(")") + 2 :].split()[19])


def memory_of(procs: Iterable[psutil.Process]) -> Memory:
    """Summed RSS, PSS and USS (`/proc/<pid>/smaps_rollup`; PSS = RSS where not available)."""
    rss = pss = uss = 0
    for proc in procs:
        with contextlib.suppress(psutil.Error):
            info = proc.memory_full_info()
            rss += info.rss
            pss += getattr(info, "pss", info.rss)
            uss += info.uss
    return Memory(rss, pss, uss)


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def port_in_use(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return True
    return False


def http_ok(url: str, timeout: float = 1.0) -> bool:
    """True when `url` answers 200 (MLServer's readiness answers 400 until models load)."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            return bool(resp.status == 200)
    except (urllib.error.URLError, OSError, ValueError):
        return False


def http_checks(urls: Iterable[str]) -> list[Callable[[], bool]]:
    """One readiness check per URL, for `wait_until`: `http://` must answer 200, `tcp://host:port`
    must accept a connection (a gRPC-only server has no HTTP page to poll)."""
    return [
        functools.partial(tcp_open, url[len("tcp://") :])
        if url.startswith("tcp://")
        else functools.partial(http_ok, url)
        for url in urls
    ]


def tcp_open(address: str, timeout: float = 1.0) -> bool:
    """True when `host:port` accepts a TCP connection."""
    where = parse_address(address)
    try:
        with socket.create_connection((where.host, where.port or 0), timeout=timeout):
            return True
    except OSError:
        return False


def pin_argv(argv: Sequence[str], cpus: Iterable[int] | None) -> list[str]:
    """Prefix `taskset -c` so the process and every child it forks stay on `cpus`."""
    if cpus is None:
        return list(argv)
    cpu_list = sorted(set(cpus))
    if not cpu_list:
        return list(argv)
    if shutil.which("taskset") is None:
        raise RuntimeError("CPU pinning asked for, but `taskset` (util-linux) is not installed")
    return ["taskset", "-c", ",".join(map(str, cpu_list)), *argv]


def start_detached(
    name: str,
    argv: Sequence[str],
    log_path: Path,
    env: Mapping[str, str] | None = None,
    cpus: Iterable[int] | None = None,
    cwd: Path | None = None,
) -> ProcessHandle:
    """Start `argv` in a new session with output to `log_path`; returns at once."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    cpu_tuple = tuple(sorted(set(cpus))) if cpus is not None else None
    full_argv = pin_argv(argv, cpu_tuple)
    with log_path.open("ab") as log:
        proc = subprocess.Popen(
            full_argv,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**os.environ, **(env or {})},
            cwd=cwd,
            start_new_session=True,
        )
    create_time = psutil.Process(proc.pid).create_time()
    return ProcessHandle(
        name,
        proc.pid,
        create_time,
        str(log_path),
        tuple(full_argv),
        cpu_tuple,
        start_ticks=start_ticks(proc.pid),
    )


def tail(path: str | Path, lines: int = 25) -> str:
    try:
        text = Path(path).read_text(errors="replace")
    except OSError:
        return "(no log)"
    return "\n".join(text.splitlines()[-lines:])


def wait_until(
    handle: ProcessHandle,
    checks: Sequence[Callable[[], bool]],
    timeout_s: float,
    interval_s: float = 0.2,
) -> float:
    """Poll until every check passes; returns seconds waited.

    Raises ServerStartError (with the log's tail) when the process exits or time runs out.
    """
    started = time.monotonic()
    while not is_ready(handle, checks, time.monotonic() - started, timeout_s):
        time.sleep(interval_s)
    return time.monotonic() - started


def is_ready(
    handle: ProcessHandle, checks: Sequence[Callable[[], bool]], waited_s: float, timeout_s: float
) -> bool:
    """One look at a starting server: ready, not yet, or (raised) exited or out of time."""
    if not handle.alive():
        raise ServerStartError(
            f"{handle.name} exited during start-up; last lines of {handle.log_path}:\n"
            f"{tail(handle.log_path)}"
        )
    if all(check() for check in checks):
        return True
    if waited_s > timeout_s:
        raise ServerStartError(
            f"{handle.name} was not ready after {timeout_s:.0f} s; last lines of "
            f"{handle.log_path}:\n{tail(handle.log_path)}"
        )
    return False


def stop_handle(handle: ProcessHandle, timeout_s: float = 10.0) -> bool:
    """SIGTERM the process's group and descendants, SIGKILL what is left; True if it was running."""
    return stop_handles([handle], timeout_s)[0]


def stop_handles(handles: Sequence[ProcessHandle], timeout_s: float = 10.0) -> list[bool]:
    """Stop several servers at once: every group and descendant gets SIGTERM before any is
    waited for (so an interrupt during the wait leaves none unsignalled, and their shutdowns
    overlap), then SIGKILL what is left after `timeout_s`. True for each one that was running.

    A server whose own process already exited may have left children in its group (workers,
    daemons): they are stopped too.
    """
    was_running: list[bool] = []
    family: dict[int, psutil.Process] = {}
    for handle in handles:
        proc = handle.process()
        was_running.append(proc is not None)
        members = _group(handle)
        if proc is not None:
            with contextlib.suppress(psutil.Error):
                members += proc.children(recursive=True)
        if members:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(handle.pid, signal.SIGTERM)
        family.update((member.pid, member) for member in members)
    for member in family.values():
        with contextlib.suppress(psutil.Error):
            member.terminate()
    _, alive = psutil.wait_procs(list(family.values()), timeout=timeout_s)
    for member in alive:
        with contextlib.suppress(psutil.Error):
            member.kill()
    psutil.wait_procs(alive, timeout=5)
    # Reap our own children, if they are, so no zombie is left behind.
    for handle in handles:
        with contextlib.suppress(ChildProcessError, OSError):
            os.waitpid(handle.pid, os.WNOHANG)
    return was_running


def _group(handle: ProcessHandle) -> list[psutil.Process]:
    """The live members of the session (and so the process group) `start_detached` made the
    handle the leader of, the leader included while it runs (Ray's workers take groups of their
    own in it); none when its pid now names another process (a session or group keeps its id
    from being reused only while it exists)."""
    with contextlib.suppress(psutil.Error):
        if not handle.started_as_recorded(psutil.Process(handle.pid)):
            return []
    members = []
    for proc in psutil.process_iter():
        with contextlib.suppress(psutil.Error, OSError):
            if (
                handle.pid in (os.getsid(proc.pid), os.getpgid(proc.pid))
                and _started_since(proc, handle)
                and proc.status() != psutil.STATUS_ZOMBIE
            ):
                members.append(proc)
    return members


def _started_since(proc: psutil.Process, handle: ProcessHandle) -> bool:
    """A member of the handle's group started no earlier than the handle's process."""
    if handle.start_ticks is not None:
        return start_ticks(proc.pid) >= handle.start_ticks
    return proc.create_time() >= handle.create_time - 0.05
