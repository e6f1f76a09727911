"""Start several servers side by side and wait for all of them: one routine for every caller.

`serve-all` (which must start everything or nothing) and the benchmark sweep (where a server
that fails only fails its own points) both use `launch_all`; they differ only in what they do
with `failures`.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from servingbench.servers.base import LaunchSpec
from servingbench.stack.environments import check_environment
from servingbench.stack.processes import (
    ProcessHandle,
    ServerStartError,
    http_checks,
    is_ready,
    start_detached,
    stop_handle,
    stop_handles,
)

__all__ = ["LaunchResult", "Launched", "launch_all", "running"]


@dataclass(frozen=True)
class Launched:
    """A server that became ready, and how long that took from its own process start."""

    spec: LaunchSpec
    handle: ProcessHandle
    startup_s: float


@dataclass
class LaunchResult:
    ready: list[Launched] = field(default_factory=list)
    failures: dict[str, str] = field(default_factory=dict)
    """spec name -> why it did not become ready (with the tail of its log)"""


STARTING_PER_CORE = 2
"""Servers starting at once per server core. Start-up is mostly imports and model loading, all
CPU: twenty servers starting together on one core (`--configs all`) each took over 120 s, so
they start a few at a time, the next as soon as one is ready, each timed from its own start."""
POLL_S = 0.2


def launch_all(
    specs: Sequence[LaunchSpec],
    log_dir: Path,
    cpus: Sequence[int] | None,
    timeout_s: float,
    on_started: Callable[[LaunchSpec, ProcessHandle], None] | None = None,
) -> LaunchResult:
    """Start every spec (logs in `log_dir/<name>.log`) and wait until each is ready.

    Each backend environment is checked first (built, same artifact libraries); a spec whose
    environment fails is reported in `failures` and not started. At most `STARTING_PER_CORE`
    per core start at once; each start-up time and timeout is the server's own, counted from its
    own start. A server that exits or is not ready in time is stopped and reported in
    `failures`; the others keep running. On an exception (Ctrl-C) everything started so far is
    stopped before it propagates.
    """
    result = LaunchResult()
    waiting: list[LaunchSpec] = []
    for spec in specs:
        try:
            if spec.environment is not None:
                check_environment(spec.environment)
        except ServerStartError as exc:
            result.failures[spec.name] = str(exc)
        else:
            waiting.append(spec)
    at_once = STARTING_PER_CORE * len(cpus or range(os.cpu_count() or 1))
    started: list[ProcessHandle] = []
    starting: list[_Starting] = []
    try:
        while waiting or starting:
            while waiting and len(starting) < at_once:
                spec = waiting.pop(0)
                handle = _start(spec, log_dir, cpus)
                started.append(handle)
                if on_started is not None:
                    on_started(spec, handle)
                starting.append(_Starting(spec, handle, time.monotonic()))
            for each in list(starting):
                if (done := _look(each, timeout_s, result)) is not None:
                    starting.remove(each)
                    if done:
                        result.ready.append(
                            Launched(each.spec, each.handle, time.time() - each.handle.create_time)
                        )
            time.sleep(POLL_S)
    except BaseException:
        stop_handles(list(reversed(started)))
        raise
    order = {spec.name: i for i, spec in enumerate(specs)}
    result.ready.sort(key=lambda launched: order[launched.spec.name])
    return result


@dataclass(frozen=True)
class _Starting:
    spec: LaunchSpec
    handle: ProcessHandle
    since: float


def _start(spec: LaunchSpec, log_dir: Path, cpus: Sequence[int] | None) -> ProcessHandle:
    log_file = log_dir / f"{spec.name}.log"
    log_file.unlink(missing_ok=True)  # the tail shown on failure must be this start's
    # cwd: the server's own folder (MLServer writes a `.metrics` folder into it).
    spec.workdir.mkdir(parents=True, exist_ok=True)
    return start_detached(spec.name, spec.argv, log_file, env=spec.env, cpus=cpus, cwd=spec.workdir)


def _look(each: _Starting, timeout_s: float, result: LaunchResult) -> bool | None:
    """True when ready, False when it failed (stopped, reason in `result`), None: not yet."""
    try:
        waited = time.monotonic() - each.since
        ready = is_ready(each.handle, http_checks(each.spec.ready_urls), waited, timeout_s)
    except ServerStartError as exc:
        stop_handle(each.handle)
        result.failures[each.spec.name] = str(exc)
        return False
    return True if ready else None


@contextmanager
def running(
    specs: Sequence[LaunchSpec],
    log_dir: Path,
    cpus: Sequence[int] | None = None,
    timeout_s: float = 120.0,
) -> Iterator[list[Launched]]:
    """Every spec started and ready for the `with` block, all stopped after it.

    Everything or nothing: when one fails to start, the others are stopped and the
    ServerStartError (with the log's tail) is raised. Tests and one-off tools use it.
    """
    result = launch_all(specs, log_dir, cpus, timeout_s)
    try:
        if result.failures:
            raise ServerStartError("\n".join(result.failures.values()))
        yield result.ready
    finally:
        stop_handles([launched.handle for launched in reversed(result.ready)])
