"""Nothing the test session starts may outlive it: a pytest plugin that finds what did.

Servers run in sessions of their own (so a stop reaches their whole group), which also means a
server whose pytest died survives it as an orphan of init: descent from pytest alone misses it.
So every process the session starts carries a marker in its environment (`SESSION_VARIABLE`,
this session's token; inherited by everything below, wherever it is re-parented), and after
the last teardown any live process that carries the token, or is still below pytest, is a
leftover: it is named, killed, and the session fails.

SIGTERM and SIGHUP (a cancelled CI job, `timeout`, a closed terminal) end Python at once by
default, with no teardown at all; here they raise KeyboardInterrupt instead, which pytest
answers by tearing down every fixture (the servers are stopped) before this check runs.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
import uuid
from collections.abc import Generator, Iterable
from dataclasses import dataclass
from types import FrameType
from typing import Any

import psutil
import pytest

SESSION_VARIABLE = "SERVINGBENCH_TEST_SESSION"
"""`:`-separated tokens, one per test session the process runs under (a pytest run by a test
adds its own token to its parent's)."""
EXIT_GRACE_S = 5.0
"""How long a process stopped by a teardown may take to exit before it counts as left behind."""

_TOKEN = pytest.StashKey[str]()
_REPORT = pytest.StashKey[list[str]]()
_HANDLERS = pytest.StashKey[dict[int, Any]]()


@dataclass(frozen=True)
class Leftover:
    pid: int
    ppid: int
    command: str

    def __str__(self) -> str:
        return f"pid {self.pid} (parent {self.ppid}): {self.command}"


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt(f"signal {signal.Signals(signum).name}")


def _carries(proc: psutil.Process, token: str) -> bool:
    try:
        return token in proc.environ().get(SESSION_VARIABLE, "").split(":")
    except psutil.Error:  # exited, or another user's process
        return False


def session_processes(token: str) -> list[psutil.Process]:
    """Live processes started under the session `token`: marked ones, and pytest's descendants
    (in case one cleared its environment), pytest itself excepted."""
    me = psutil.Process()
    found = {p.pid: p for p in psutil.process_iter() if p.pid != me.pid and _carries(p, token)}
    with contextlib.suppress(psutil.Error):
        found.update((p.pid, p) for p in me.children(recursive=True))
    return [p for p in found.values() if _alive(p)]


def _alive(proc: psutil.Process) -> bool:
    try:
        return proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def _describe(proc: psutil.Process) -> Leftover | None:
    try:
        command = " ".join(proc.cmdline()) or proc.name()
        return Leftover(proc.pid, proc.ppid(), command[:300])
    except psutil.Error:
        return None


def kill_leftovers(token: str, grace_s: float = EXIT_GRACE_S) -> list[Leftover]:
    """Give the session's processes `grace_s` to exit, then SIGKILL and name those still there."""
    deadline = time.monotonic() + grace_s
    while (procs := session_processes(token)) and time.monotonic() < deadline:
        time.sleep(0.1)
    left = [d for d in map(_describe, procs) if d is not None]
    _kill(procs)
    return left


def _kill(procs: Iterable[psutil.Process]) -> None:
    procs = list(procs)
    for proc in procs:
        with contextlib.suppress(psutil.Error):
            proc.kill()
    psutil.wait_procs(procs, timeout=5)
    for proc in procs:  # reap our own children among them
        with contextlib.suppress(ChildProcessError, OSError):
            os.waitpid(proc.pid, os.WNOHANG)


def pytest_configure(config: pytest.Config) -> None:
    token = f"{os.getpid()}-{uuid.uuid4().hex[:12]}"
    config.stash[_TOKEN] = token
    outer = os.environ.get(SESSION_VARIABLE)
    os.environ[SESSION_VARIABLE] = f"{outer}:{token}" if outer else token
    handlers: dict[int, Any] = {}
    for signum in (signal.SIGTERM, signal.SIGHUP):
        if signal.getsignal(signum) is signal.SIG_DFL:
            handlers[signum] = signal.signal(signum, _interrupt)
    config.stash[_HANDLERS] = handlers


@pytest.hookimpl(wrapper=True, trylast=True)
def pytest_sessionfinish(session: pytest.Session) -> Generator[None]:
    """After every fixture's teardown (pytest's own sessionfinish runs inside this wrapper):
    kill and report what is left, and fail a session that otherwise passed."""
    try:
        return (yield)
    finally:
        left = kill_leftovers(session.config.stash[_TOKEN])
        if left:
            session.config.stash[_REPORT] = [str(leftover) for leftover in left]
            if session.exitstatus in (pytest.ExitCode.OK, pytest.ExitCode.NO_TESTS_COLLECTED):
                session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    lines = config.stash.get(_REPORT, [])
    if lines:
        terminalreporter.section("processes left behind by the test session", red=True)
        terminalreporter.write_line(
            f"{len(lines)} process(es) outlived their teardown (now killed); the session fails:",
            red=True,
        )
        for line in lines:
            terminalreporter.write_line(f"  {line}")


def pytest_unconfigure(config: pytest.Config) -> None:
    for signum, previous in config.stash.get(_HANDLERS, {}).items():
        signal.signal(signum, previous)
