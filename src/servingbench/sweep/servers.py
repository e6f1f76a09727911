"""The bench's own servers: the stack's specs on free ports, in the run folder, only those needed.

Decision: the sweep never reuses `make serve-all`'s servers. It renders the same specs
(`stack.lifecycle.stack_specs`, so `SERVINGBENCH_STACK_*` knobs such as parallel workers apply)
on free ports with state and logs under `<run>/servers/`, so a user's stack is not disturbed and
every run starts from fresh processes. Only the backends the chosen scenarios need are started,
and a backend that fails to start fails its own scenarios, not the whole sweep.
"""

from __future__ import annotations

import functools
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

import psutil

from servingbench.paths import project_root
from servingbench.stack.lifecycle import stack_specs
from servingbench.stack.processes import (
    ProcessHandle,
    ServerStartError,
    free_port,
    http_ok,
    start_detached,
    stop_handle,
    tail,
    wait_until,
)
from servingbench.stack.servers import ServerSpec
from servingbench.stack.settings import StackSettings
from servingbench.sweep.settings import BenchSettings
from servingbench.sweep.usage import Tracked

__all__ = ["BenchServer", "BenchServers", "start_servers"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class BenchServer:
    spec: ServerSpec
    handle: ProcessHandle
    startup_s: float

    def tracked(self) -> Tracked:
        proc = self.handle.process

        def roots() -> list[psutil.Process]:
            live = proc()
            return [live] if live is not None else []

        cpus = list(self.handle.cpus) if self.handle.cpus else None
        return Tracked("server", self.spec.name, roots, cpus)


@dataclass
class BenchServers:
    """The started servers by backend, and why any backend is unusable."""

    running: dict[str, BenchServer] = field(default_factory=dict)
    failures: dict[str, str] = field(default_factory=dict)

    def health(self, backend: str) -> str | None:
        """None when `backend`'s server is alive; otherwise why not (once dead, always dead)."""
        if backend in self.failures:
            return self.failures[backend]
        server = self.running.get(backend)
        if server is None:
            return f"no {backend} server was started"
        if not server.handle.alive():
            self.failures[backend] = (
                f"{server.spec.name} (pid {server.handle.pid}) is no longer running; "
                f"last lines of {server.handle.log_path}:\n{tail(server.handle.log_path)}"
            )
            return self.failures[backend]
        return None

    def tracked(self) -> list[Tracked]:
        return [s.tracked() for s in self.running.values()]

    def port(self, backend: str, kind: str) -> int:
        return self.running[backend].spec.ports[kind]

    def stop(self) -> None:
        for server in reversed(list(self.running.values())):
            stop_handle(server.handle)


def _stack_settings(settings: BenchSettings, state_dir: Path) -> StackSettings:
    def port(value: int) -> int:
        return value or free_port(settings.host)

    return StackSettings(
        host=settings.host,
        api_port=port(settings.api_port),
        mlserver_http_port=port(settings.mlserver_http_port),
        mlserver_grpc_port=port(settings.mlserver_grpc_port),
        mlserver_metrics_port=port(settings.mlserver_metrics_port),
        server_cpus=settings.pinning()[0],
        state_dir=state_dir,
        ready_timeout_s=settings.startup_timeout_s,
    )


def start_servers(settings: BenchSettings, state_dir: Path, backends: set[str]) -> BenchServers:
    """Start the needed servers side by side and wait for each; failures are recorded, not raised.

    On an exception (e.g. Ctrl-C) everything started so far is stopped before it propagates.
    """
    stack = _stack_settings(settings, state_dir)
    specs = [s for s in stack_specs(stack) if s.backend in backends]
    servers = BenchServers()
    started: list[tuple[ServerSpec, ProcessHandle, float]] = []
    try:
        for spec in specs:
            handle = start_detached(
                spec.name,
                spec.argv,
                state_dir / f"{spec.name}.log",
                env=spec.env,
                cpus=stack.server_cpus,
                cwd=project_root(),
            )
            started.append((spec, handle, time.monotonic()))
        for spec, handle, t0 in started:
            checks = [functools.partial(http_ok, url) for url in spec.ready_urls]
            try:
                wait_until(handle, checks, stack.ready_timeout_s)
            except ServerStartError as exc:
                stop_handle(handle)
                servers.failures[spec.backend] = str(exc)
                log.error("%s did not start: %s", spec.name, exc)
                continue
            servers.running[spec.backend] = BenchServer(spec, handle, time.monotonic() - t0)
    except BaseException:
        for _, handle, _ in started:
            stop_handle(handle)
        raise
    return servers
