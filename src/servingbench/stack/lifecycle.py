"""Start, find and stop the local stack (one server per backend) as detached processes.

The Python API behind `serve-all`, `stop-all` and `status`. Servers are started by
`stack.launch.launch_all`, as the benchmark sweep starts its own; what is specific here is the
state in `.run/` that lets a later `stop-all` find them:

    stack = start_stack(StackSettings())      # no-op when the recorded servers are ready
    for server in stack.servers: server.spec.ports, server.handle.tree()
    stop_stack(settings.state_dir)
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from pathlib import Path

import psutil

from servingbench.servers import DEFAULT_CONFIG, ServerConfig, get_backend
from servingbench.servers.base import LaunchSpec
from servingbench.stack.configs import resolve_configs
from servingbench.stack.launch import launch_all
from servingbench.stack.processes import (
    Memory,
    ProcessHandle,
    ServerStartError,
    http_checks,
    memory_of,
    port_in_use,
    stop_handles,
    wait_until,
)
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
    "stack_configs",
    "stack_specs",
    "stack_status",
    "start_stack",
    "stop_stack",
    "tree_memory",
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
    def specs(self) -> list[LaunchSpec]:
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
    memory: Memory


@dataclass(frozen=True)
class StoppedServer:
    name: str
    pid: int
    was_running: bool


def stack_configs(settings: StackSettings) -> list[ServerConfig]:
    """One configuration per backend started: the one named in `configs`, else its default."""
    chosen = resolve_configs(settings.configs)
    wanted = settings.backend_names()
    by_backend: dict[str, ServerConfig] = {}
    for config in chosen:
        if config.backend not in wanted:
            continue
        if config.backend in by_backend and config.name != DEFAULT_CONFIG:
            other = by_backend[config.backend]
            if other.name != DEFAULT_CONFIG:
                raise ValueError(
                    f"serve-all runs one configuration per backend; got {other.key} and "
                    f"{config.key} (the benchmark runs several side by side: `make bench "
                    f'ARGS="--configs ..."`)'
                )
        if config.backend not in by_backend or config.name != DEFAULT_CONFIG:
            by_backend[config.backend] = config
    return [by_backend[name] for name in wanted if name in by_backend]


def stack_specs(settings: StackSettings) -> list[LaunchSpec]:
    """The launch spec of every backend's configuration, on the stack's ports."""
    return [
        get_backend(config.backend).launch(
            config,
            settings.backend_ports(config.backend),
            settings.host,
            settings.state_dir / config.server_name,
        )
        for config in stack_configs(settings)
    ]


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
        for label, port in settings.all_ports().items()
        if port_in_use(port, settings.host)
    ]
    if busy:
        raise PortBusyError(
            "; ".join(busy) + ". Stop that process (`make stop-all` if it is ours) or choose "
            "other ports, e.g. `servingbench serve-all --fastapi-http-port 9000`."
        )


def _is_ready(server: RunningServer) -> bool:
    return server.handle.alive() and all(check() for check in http_checks(server.spec.ready_urls))


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

    def record(spec: LaunchSpec, handle: ProcessHandle) -> None:
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
        stop_handles([launched.handle for launched in result.ready])
        _forget(settings.state_dir)
        raise ServerStartError("\n".join(result.failures.values()))
    ready = [RunningServer(s.spec, s.handle, s.startup_s) for s in result.ready]
    for server in ready:
        write_state(settings.state_dir, server)
    return RunningStack(ready)


def _check_same_addresses(existing: RunningStack, settings: StackSettings) -> None:
    """Reuse a running stack only as asked for: other ports, cores or servers need a restart."""
    wanted = {
        config.server_name: settings.backend_ports(config.backend)
        for config in stack_configs(settings)
    }
    cpus = tuple(sorted(settings.server_cpus)) if settings.server_cpus else None
    running = {server.spec.name: server for server in existing.servers}
    if set(running) != set(wanted):
        raise StackMismatchError(
            f"the running stack has {sorted(running)}, not the {sorted(wanted)} asked for: "
            "run `make stop-all` first"
        )
    for name, server in running.items():
        if wanted[name] != server.spec.ports or server.handle.cpus != cpus:
            raise StackMismatchError(
                f"{name} is already running with ports {server.spec.ports} on cores "
                f"{list(server.handle.cpus or []) or 'any'}, not the ports {wanted[name]} on "
                f"cores {list(cpus or []) or 'any'} asked for: run `make stop-all` first"
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
    servers = servers[::-1]
    for server, was_running in zip(servers, stop_handles([s.handle for s in servers]), strict=True):
        state_path(state_dir, server.spec.name).unlink(missing_ok=True)
        stopped.append(StoppedServer(server.spec.name, server.handle.pid, was_running))
    for path in broken:
        log.warning("removing unreadable state file %s", path)
        path.unlink(missing_ok=True)
    return stopped


def tree_memory(handle: ProcessHandle) -> Memory:
    """Memory of the process and its children (PSS splits shared pages, so they sum honestly)."""
    return memory_of(handle.tree())


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
            memory=tree_memory(s.handle),
        )
        for s in stack.servers
    ]
