"""The bench's own servers: one per named configuration, on free ports, in the run folder.

Decision: the sweep never reuses `make serve-all`'s servers. It starts every configuration it
runs (`backends/server-configs.toml`, each through its backend's `launch`) on free ports with
state and logs under `<run>/servers/`, so a user's stack is not disturbed and every run starts
from fresh processes. All are up for the whole sweep, pinned to the same server core(s), so
repeats can interleave them; what the idle ones cost the busy one is measured with every point
(`sweep.interference`). A configuration that fails to start fails its own points, not the
whole sweep.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import psutil

from servingbench.addresses import parse_address
from servingbench.servers import DEFAULT_CONFIG, ServerConfig, get_backend
from servingbench.servers.base import LaunchSpec
from servingbench.stack.launch import launch_all
from servingbench.stack.processes import (
    ProcessHandle,
    free_port,
    stop_handles,
    tail,
    tcp_open,
)
from servingbench.stack.settings import port_key
from servingbench.sweep.settings import BenchSettings
from servingbench.sweep.usage import Tracked

__all__ = ["BenchServer", "BenchServers", "start_servers"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class BenchServer:
    spec: LaunchSpec
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
    specs: dict[str, LaunchSpec] = field(default_factory=dict)
    """every configuration's launch spec, started or not (for meta.json)"""
    targets: dict[str, str] = field(default_factory=dict)
    """scenario -> address of servers the sweep did not start (`--target`)"""

    def health(self, key: str, scenario: str = "") -> str | None:
        """None when `key`'s server is alive (a target: accepts connections); otherwise why not
        (a started server, once dead, stays dead)."""
        if scenario in self.targets:
            where = self.targets[scenario]
            reachable = tcp_open(parse_address(where).netloc)
            return None if reachable else f"target {scenario} at {where} not reachable"
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

    def stop(self) -> None:
        stop_handles([server.handle for server in reversed(list(self.running.values()))])


def _ports(settings: BenchSettings, config: ServerConfig) -> dict[str, int]:
    """Fixed ports (`--port backend.port=N`) apply to a backend's default configuration; every
    other port is a free one."""

    def port(name: str) -> int:
        fixed = settings.ports.get(port_key(config.backend, name), 0)
        return fixed if fixed and config.name == DEFAULT_CONFIG else free_port(settings.host)

    return {name: port(name) for name in get_backend(config.backend).ports}


def start_servers(
    settings: BenchSettings, state_dir: Path, configs: list[ServerConfig]
) -> BenchServers:
    """Start one server per configuration side by side and wait for all (`stack.launch`).

    Start-up failures (an environment not built, a server that exits) are recorded, not raised.
    """
    by_name: dict[str, tuple[ServerConfig, LaunchSpec]] = {}
    for config in configs:
        backend = get_backend(config.backend)
        workdir = state_dir / config.server_name
        spec = backend.launch(config, _ports(settings, config), settings.host, workdir)
        by_name[spec.name] = (config, spec)
    state_dir.mkdir(parents=True, exist_ok=True)
    result = launch_all(
        [spec for _, spec in by_name.values()],
        state_dir,
        settings.pinning()[0],
        settings.startup_timeout_s,
    )
    servers = BenchServers(specs={config.key: spec for config, spec in by_name.values()})
    for launched in result.ready:
        config, _ = by_name[launched.spec.name]
        servers.running[config.key] = BenchServer(
            launched.spec, launched.handle, launched.startup_s, config
        )
    for name, reason in result.failures.items():
        config, _ = by_name[name]
        servers.failures[config.key] = reason
        log.error("%s did not start: %s", name, reason)
    return servers
