"""Start, find and stop the local stack (MLServer + our FastAPI service) as detached processes.

The Python API behind `serve-all`, `stop-all` and `status`, also used by the benchmark sweep:

    stack = start_stack(StackSettings())      # no-op when the recorded servers are ready
    for server in stack.servers: server.spec.config, server.handle.tree()
    stop_stack(settings.state_dir)
"""

from __future__ import annotations

import contextlib
import functools
import logging
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, replace
from pathlib import Path

import psutil

from servingbench.stack.processes import (
    ProcessHandle,
    http_ok,
    port_in_use,
    start_detached,
    stop_handle,
    wait_until,
)
from servingbench.stack.servers import ServerSpec, api_spec, mlserver_spec
from servingbench.stack.settings import StackSettings
from servingbench.stack.state import (
    RunningServer,
    log_path,
    read_states,
    state_path,
    write_state,
)

__all__ = [
    "PortBusyError",
    "RunningServer",
    "RunningStack",
    "ServerStatus",
    "StoppedServer",
    "check_ports_free",
    "load_running_stack",
    "stack_specs",
    "stack_status",
    "start_stack",
    "stop_stack",
    "tree_rss",
]

log = logging.getLogger(__name__)


class PortBusyError(RuntimeError):
    """A port the stack needs is taken; the message names it and, if visible, its holder."""


@dataclass(frozen=True)
class RunningStack:
    """The servers of one stack; `already_running` when `start_stack` found them up."""

    servers: list[RunningServer]
    already_running: bool = False

    @property
    def specs(self) -> list[ServerSpec]:
        return [s.spec for s in self.servers]

    @property
    def handles(self) -> list[ProcessHandle]:
        return [s.handle for s in self.servers]

    def server(self, name: str) -> RunningServer:
        for server in self.servers:
            if server.spec.name == name:
                return server
        raise KeyError(f"no server {name!r}; running: {[s.spec.name for s in self.servers]}")


@dataclass(frozen=True)
class ServerStatus:
    """What `status` shows for one recorded server."""

    name: str
    pid: int
    alive: bool
    ready: bool
    rss_bytes: int


@dataclass(frozen=True)
class StoppedServer:
    name: str
    pid: int
    was_running: bool


def stack_specs(settings: StackSettings) -> list[ServerSpec]:
    """MLServer (repository rendered under `<state_dir>/mlserver/repo`) and our service."""
    mlserver = mlserver_spec(
        settings.state_dir / "mlserver" / "repo",
        http_port=settings.mlserver_http_port,
        grpc_port=settings.mlserver_grpc_port,
        metrics_port=settings.mlserver_metrics_port,
        host=settings.host,
        server_overrides=settings.mlserver_server_overrides(),
    )
    return [mlserver, api_spec(settings.api_port, host=settings.host)]


def _port_holder(port: int) -> str:
    try:
        for conn in psutil.net_connections(kind="inet"):
            if conn.laddr and conn.laddr.port == port and conn.status == psutil.CONN_LISTEN:
                if conn.pid is None:
                    break
                proc = psutil.Process(conn.pid)
                return f" by pid {conn.pid} ({' '.join(proc.cmdline())[:120]})"
    except (psutil.Error, OSError):
        pass
    return ""


def check_ports_free(settings: StackSettings) -> None:
    """Fail before starting anything when a port is taken, rather than after a slow start-up."""
    busy = [
        f"{label} port {port} is already in use{_port_holder(port)}"
        for label, port in settings.ports().items()
        if port_in_use(port, settings.host)
    ]
    if busy:
        raise PortBusyError(
            "; ".join(busy) + ". Stop that process (`make stop-all` if it is ours) or choose "
            "other ports, e.g. `servingbench serve-all --api-port 9000`."
        )


def _is_ready(server: RunningServer) -> bool:
    return server.handle.alive() and all(http_ok(url) for url in server.spec.ready_urls)


def _start_one(spec: ServerSpec, settings: StackSettings) -> RunningServer:
    log_file = log_path(settings.state_dir, spec.name)
    log_file.unlink(missing_ok=True)  # the tail shown on failure must be this start's
    # cwd = state dir: MLServer writes its `.metrics` folder into the working directory.
    handle = start_detached(
        spec.name,
        spec.argv,
        log_file,
        env=spec.env,
        cpus=settings.server_cpus,
        cwd=settings.state_dir,
    )
    server = RunningServer(spec, handle)
    write_state(settings.state_dir, server)
    return server


def start_stack(settings: StackSettings | None = None) -> RunningStack:
    """Start every server and wait until every model is ready.

    When the recorded servers are alive they are reused (waiting for readiness if needed).
    On any failure, whatever was started is stopped and the error (with log tail) re-raised.
    """
    settings = settings or StackSettings()
    existing = load_running_stack(settings.state_dir)
    if existing is not None:
        if all(h.alive() for h in existing.handles):
            for server in existing.servers:
                wait_until(server.handle, _checks(server.spec), settings.ready_timeout_s)
            return replace(existing, already_running=True)
        log.warning("some recorded servers have exited; stopping the rest and starting afresh")
        stop_stack(settings.state_dir)
    check_ports_free(settings)
    specs = stack_specs(settings)
    started: list[RunningServer] = []
    try:
        for spec in specs:
            started.append(_start_one(spec, settings))
        ready = _wait_all_ready(started, settings.ready_timeout_s)
    except BaseException:
        for server in reversed(started):
            stop_handle(server.handle)
            state_path(settings.state_dir, server.spec.name).unlink(missing_ok=True)
        raise
    for server in ready:
        write_state(settings.state_dir, server)
    return RunningStack(ready)


def _wait_all_ready(servers: list[RunningServer], timeout_s: float) -> list[RunningServer]:
    """Wait for every server at once, so each start-up time is its own and a crash shows early."""

    def wait(server: RunningServer) -> RunningServer:
        wait_until(server.handle, _checks(server.spec), timeout_s)
        return replace(server, startup_s=time.time() - server.handle.create_time)

    with ThreadPoolExecutor(max_workers=len(servers)) as pool:
        futures = [pool.submit(wait, server) for server in servers]
        for future in as_completed(futures):
            error = future.exception()
            if error is not None:
                for server in servers:  # ends the other waits: their processes are gone
                    stop_handle(server.handle)
                raise error
        return [future.result() for future in futures]


def _checks(spec: ServerSpec) -> list[Callable[[], bool]]:
    return [functools.partial(http_ok, url) for url in spec.ready_urls]


def load_running_stack(state_dir: Path | None = None) -> RunningStack | None:
    """The servers recorded in `state_dir` (alive or not), or None when nothing is recorded."""
    servers, _ = read_states(state_dir or StackSettings().state_dir)
    return RunningStack(servers) if servers else None


def stop_stack(state_dir: Path | None = None) -> list[StoppedServer]:
    """Stop exactly the recorded processes (children included) and remove their state files."""
    state_dir = state_dir or StackSettings().state_dir
    servers, broken = read_states(state_dir)
    stopped = []
    for server in reversed(servers):
        was_running = stop_handle(server.handle)
        state_path(state_dir, server.spec.name).unlink(missing_ok=True)
        stopped.append(StoppedServer(server.spec.name, server.handle.pid, was_running))
    for path in broken:
        log.warning("removing unreadable state file %s", path)
        path.unlink(missing_ok=True)
    return stopped


def tree_rss(handle: ProcessHandle) -> int:
    """Resident memory of the process and its children, in bytes (shared pages counted twice)."""
    total = 0
    for proc in handle.tree():
        with contextlib.suppress(psutil.Error):
            total += proc.memory_info().rss
    return total


def stack_status(state_dir: Path | None = None) -> list[ServerStatus]:
    stack = load_running_stack(state_dir)
    if stack is None:
        return []
    return [
        ServerStatus(
            name=s.spec.name,
            pid=s.handle.pid,
            alive=s.handle.alive(),
            ready=_is_ready(s),
            rss_bytes=tree_rss(s.handle),
        )
        for s in stack.servers
    ]
