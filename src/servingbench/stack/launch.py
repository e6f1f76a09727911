"""Start several servers side by side and wait for all of them: one routine for every caller.

`serve-all` (which must start everything or nothing) and the benchmark sweep (where a server
that fails only fails its own points) both use `launch_all`; they differ only in what they do
with `failures`.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from servingbench.servers.base import LaunchSpec
from servingbench.stack.environments import check_environment
from servingbench.stack.processes import (
    ProcessHandle,
    ServerStartError,
    http_checks,
    start_detached,
    stop_handle,
    stop_handles,
    wait_until,
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


def launch_all(
    specs: Sequence[LaunchSpec],
    log_dir: Path,
    cpus: Sequence[int] | None,
    timeout_s: float,
    on_started: Callable[[LaunchSpec, ProcessHandle], None] | None = None,
) -> LaunchResult:
    """Start every spec (logs in `log_dir/<name>.log`), then wait for all at once.

    Each backend environment is checked first (built, same artifact libraries); a spec whose
    environment fails is reported in `failures` and not started. Waiting in parallel makes each
    start-up time the server's own, not the sum of its predecessors'. A server that exits or is
    not ready in time is stopped and reported in `failures`; the others keep running. On an
    exception (Ctrl-C) everything started so far is stopped before it propagates.
    """
    started: list[tuple[LaunchSpec, ProcessHandle]] = []
    result = LaunchResult()
    usable = []
    for spec in specs:
        try:
            if spec.environment is not None:
                check_environment(spec.environment)
        except ServerStartError as exc:
            result.failures[spec.name] = str(exc)
        else:
            usable.append(spec)
    try:
        for spec in usable:
            log_file = log_dir / f"{spec.name}.log"
            log_file.unlink(missing_ok=True)  # the tail shown on failure must be this start's
            # cwd: the server's own folder (MLServer writes a `.metrics` folder into it).
            spec.workdir.mkdir(parents=True, exist_ok=True)
            handle = start_detached(
                spec.name, spec.argv, log_file, env=spec.env, cpus=cpus, cwd=spec.workdir
            )
            started.append((spec, handle))
            if on_started is not None:
                on_started(spec, handle)
        waited = _wait_all(started, timeout_s)
    except BaseException:
        stop_handles([handle for _, handle in reversed(started)])
        raise
    result.ready = waited.ready
    result.failures.update(waited.failures)
    return result


def _wait_all(started: list[tuple[LaunchSpec, ProcessHandle]], timeout_s: float) -> LaunchResult:
    def wait(spec: LaunchSpec, handle: ProcessHandle) -> Launched:
        wait_until(handle, http_checks(spec.ready_urls), timeout_s)
        return Launched(spec, handle, time.time() - handle.create_time)

    result = LaunchResult()
    if not started:
        return result
    with ThreadPoolExecutor(max_workers=len(started)) as pool:
        futures = [(spec, handle, pool.submit(wait, spec, handle)) for spec, handle in started]
        for spec, handle, future in futures:
            try:
                result.ready.append(future.result())
            except ServerStartError as exc:
                stop_handle(handle)
                result.failures[spec.name] = str(exc)
    return result


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
