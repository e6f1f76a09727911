"""The bench's own servers: one per named configuration, on free ports, in the run folder.

Decision: the sweep never reuses `make serve-all`'s servers. It starts every configuration it
runs (`stack.configs`, `backends/server-configs.toml`) on free ports with state and logs under
`<run>/servers/`, so a user's stack is not disturbed and every run starts from fresh processes.
All are up for the whole sweep, pinned to the same server core(s); an idle server costs almost
nothing, and its CPU is recorded with every point. A configuration that fails to start fails
its own points, not the whole sweep.
"""

from __future__ import annotations

import functools
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

import psutil

from servingbench.stack.configs import DEFAULT_CONFIG, ServerConfig, config_spec
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
    config: ServerConfig

    def tracked(self) -> Tracked:
        proc = self.handle.process

        def roots() -> list[psutil.Process]:
            live = proc()
            return [live] if live is not None else []

        cpus = list(self.handle.cpus) if self.handle.cpus else None
        return Tracked("server", self.spec.name, roots, cpus)


@dataclass
class BenchServers:
    """The started servers by configuration key (`backend:name`), and why any is unusable."""

    running: dict[str, BenchServer] = field(default_factory=dict)
    failures: dict[str, str] = field(default_factory=dict)

    def health(self, key: str) -> str | None:
        """None when `key`'s server is alive; otherwise why not (once dead, always dead)."""
        if key in self.failures:
            return self.failures[key]
        server = self.running.get(key)
        if server is None:
            return f"no {key} server was started"
        if not server.handle.alive():
            self.failures[key] = (
                f"{server.spec.name} (pid {server.handle.pid}) is no longer running; "
                f"last lines of {server.handle.log_path}:\n{tail(server.handle.log_path)}"
            )
            return self.failures[key]
        return None

    def tracked(self) -> list[Tracked]:
        return [s.tracked() for s in self.running.values()]

    def port(self, key: str, kind: str) -> int:
        return self.running[key].spec.ports[kind]

    def stop(self) -> None:
        for server in reversed(list(self.running.values())):
            stop_handle(server.handle)


def _ports(settings: BenchSettings, config: ServerConfig) -> dict[str, int]:
    """Explicit ports apply to a backend's default configuration; the rest get free ports."""

    def port(value: int) -> int:
        return value if value and config.name == DEFAULT_CONFIG else free_port(settings.host)

    if config.backend == "fastapi":
        return {"http": port(settings.api_port)}
    return {
        "http": port(settings.mlserver_http_port),
        "grpc": port(settings.mlserver_grpc_port),
        "metrics": port(settings.mlserver_metrics_port),
    }


def start_servers(
    settings: BenchSettings, state_dir: Path, configs: list[ServerConfig]
) -> BenchServers:
    """Start one server per configuration side by side and wait for each.

    Start-up failures are recorded, not raised. On an exception (e.g. Ctrl-C) everything
    started so far is stopped before it propagates. MLServer knobs from `SERVINGBENCH_STACK_*`
    (e.g. parallel workers) still apply underneath each configuration's own settings.
    """
    base = StackSettings().mlserver_server_overrides()
    server_cpus = settings.pinning()[0]
    specs = [
        (config, config_spec(config, _ports(settings, config), state_dir, settings.host, base))
        for config in configs
    ]
    servers = BenchServers()
    started: list[tuple[ServerConfig, ServerSpec, ProcessHandle, float]] = []
    try:
        for config, spec in specs:
            handle = start_detached(
                spec.name,
                spec.argv,
                state_dir / f"{spec.name}.log",
                env=spec.env,
                cpus=server_cpus,
                cwd=state_dir,
            )
            started.append((config, spec, handle, time.monotonic()))
        for config, spec, handle, t0 in started:
            checks = [functools.partial(http_ok, url) for url in spec.ready_urls]
            try:
                wait_until(handle, checks, settings.startup_timeout_s)
            except ServerStartError as exc:
                stop_handle(handle)
                servers.failures[config.key] = str(exc)
                log.error("%s did not start: %s", spec.name, exc)
                continue
            servers.running[config.key] = BenchServer(spec, handle, time.monotonic() - t0, config)
    except BaseException:
        for _, _, handle, _ in started:
            stop_handle(handle)
        raise
    return servers
