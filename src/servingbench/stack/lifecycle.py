"""Start, find and stop the local stack (MLServer + our FastAPI service) as detached processes.

The Python API behind `serve-all`, `stop-all` and `status`. Servers are started by
`stack.launch.launch_all`, as the benchmark sweep starts its own; what is specific here is the
state in `.run/` that lets a later `stop-all` find them:

    stack = start_stack(StackSettings())      # no-op when the recorded servers are ready
    for server in stack.servers: server.spec.config, server.handle.tree()
    stop_stack(settings.state_dir)
"""

from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass, replace
from pathlib import Path

import psutil

from servingbench.stack.launch import launch_all
from servingbench.stack.processes import (
    ProcessHandle,
    ServerStartError,
    http_checks,
    http_ok,
    port_in_use,
    stop_handle,
    wait_until,
)
from servingbench.stack.servers import ServerSpec, api_spec, mlserver_spec
from servingbench.stack.settings import StackSettings
from servingbench.stack.state import (
    RunningServer,
    read_states,
    state_path,
    write_state,
)

__all__ = [
    "PortBusyError",
    "RunningServer",
    "RunningStack",
    "ServerStatus",
    "StackMismatchError",
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


class StackMismatchError(RuntimeError):
    """The recorded stack is running, but on other ports or cores than asked for."""


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


def start_stack(settings: StackSettings | None = None) -> RunningStack:
    """Start every server and wait until every model is ready.

    When the recorded servers are alive they are reused (waiting for readiness if needed).
    On any failure, whatever was started is stopped and the error (with log tail) re-raised.
    """
    settings = settings or StackSettings()
    existing = load_running_stack(settings.state_dir)
    if existing is not None:
        if all(h.alive() for h in existing.handles):
            _check_same_addresses(existing, settings)
            for server in existing.servers:
                wait_until(
                    server.handle, http_checks(server.spec.ready_urls), settings.ready_timeout_s
                )
            return replace(existing, already_running=True)
        log.warning("some recorded servers have exited; stopping the rest and starting afresh")
        stop_stack(settings.state_dir)
    check_ports_free(settings)
    settings.state_dir.mkdir(parents=True, exist_ok=True)

    def record(spec: ServerSpec, handle: ProcessHandle) -> None:
        # Recorded at once, so `stop-all` finds a server even if this command is killed now.
        write_state(settings.state_dir, RunningServer(spec, handle))

    try:
        result = launch_all(
            stack_specs(settings),
            settings.state_dir,
            settings.server_cpus,
            settings.ready_timeout_s,
            on_started=record,
        )
    except BaseException:
        _forget(settings.state_dir)
        raise
    if result.failures:
        for launched in result.ready:
            stop_handle(launched.handle)
        _forget(settings.state_dir)
        raise ServerStartError("\n".join(result.failures.values()))
    ready = [RunningServer(s.spec, s.handle, s.startup_s) for s in result.ready]
    for server in ready:
        write_state(settings.state_dir, server)
    return RunningStack(ready)


def _check_same_addresses(existing: RunningStack, settings: StackSettings) -> None:
    """Reuse a running stack only as asked for: other ports or cores need a restart."""
    wanted = {
        "mlserver": {
            "http": settings.mlserver_http_port,
            "grpc": settings.mlserver_grpc_port,
            "metrics": settings.mlserver_metrics_port,
        },
        "fastapi": {"http": settings.api_port},
    }
    cpus = tuple(sorted(settings.server_cpus)) if settings.server_cpus else None
    for server in existing.servers:
        ports = wanted.get(server.spec.name)
        if ports != server.spec.ports or server.handle.cpus != cpus:
            raise StackMismatchError(
                f"{server.spec.name} is already running with ports {server.spec.ports} on cores "
                f"{list(server.handle.cpus or []) or 'any'}, not the ports {ports} on cores "
                f"{list(cpus or []) or 'any'} asked for: run `make stop-all` first"
            )


def _forget(state_dir: Path) -> None:
    """Remove the state files of a start that did not complete (its processes are stopped)."""
    servers, _ = read_states(state_dir)
    for server in servers:
        state_path(state_dir, server.spec.name).unlink(missing_ok=True)


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
