"""Where `serve-all` puts the servers: host, ports, configurations, pinned cores, state folder.

Every field can be set as `SERVINGBENCH_STACK_<FIELD>` (lists and dicts as JSON); command-line
flags override both. Ports default to each backend's own (`servingbench.servers`), so a port
is written down once; clients (`parity`, the load generator) read the same object.
"""

from __future__ import annotations

import os
from pathlib import Path

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from servingbench.paths import state_dir
from servingbench.servers import backends, get_backend

__all__ = ["StackSettings", "allowed_cpus", "default_pinning", "port_key"]


def allowed_cpus() -> list[int]:
    """The cores this process may run on: its affinity mask (a cpuset container's share), sorted.

    `os.cpu_count()` counts the host's cores, which a container limited by cpuset cannot use.
    """
    if hasattr(os, "sched_getaffinity"):
        return sorted(os.sched_getaffinity(0))
    return list(range(os.cpu_count() or 1))  # no affinity API (macOS): every core


def default_pinning() -> tuple[list[int] | None, list[int] | None]:
    """(server cores, generator cores) when not set: the first allowed core for the servers, the
    rest for the load generator, so they don't compete; with one core, no pinning (None, None).

    The single place this is decided: `serve-all` and the bench sweep both use it.
    """
    cores = allowed_cpus()
    if len(cores) < 2:
        return None, None
    return cores[:1], cores[1:]


def _default_server_cpus() -> list[int] | None:
    return default_pinning()[0]


def port_key(backend: str, port: str) -> str:
    """How a port is named in settings, flags and messages: `mlserver.grpc`."""
    return f"{backend}.{port}"


def check_port_keys(ports: dict[str, int]) -> dict[str, int]:
    """Refuse a `<backend>.<port>` key no backend declares (a ValueError listing the known ones)."""
    known = [port_key(b.name, p) for b in backends().values() for p in b.ports]
    unknown = sorted(set(ports) - set(known))
    if unknown:
        raise ValueError(f"unknown port(s) {unknown}; known: {', '.join(known)}")
    return ports


class StackSettings(BaseSettings):
    """The local servers started by `servingbench serve-all`: one configuration per backend."""

    model_config = SettingsConfigDict(env_prefix="SERVINGBENCH_STACK_", extra="forbid")

    host: str = Field(
        default="127.0.0.1",
        description="Interface every server binds to and clients connect to (loopback only).",
    )
    ports: dict[str, int] = Field(
        default_factory=dict,
        description="Ports that differ from the backends' defaults, keyed `<backend>.<port>`, "
        'e.g. {"fastapi.http": 9000, "mlserver.grpc": 9001}.',
    )
    backends: list[str] | None = Field(
        default=None, description="Backends to start (null = every registered backend)."
    )
    configs: list[str] = Field(
        default_factory=list,
        description="Named configurations to run instead of a backend's default, e.g. "
        '["mlserver:parallel-workers-1"] (backends/server-configs.toml); one per backend.',
    )
    server_cpus: list[int] | None = Field(
        default_factory=_default_server_cpus,
        description=(
            "Cores every server is pinned to with taskset; null or [] means no pinning. "
            "Default: the first allowed core when two or more are allowed (see default_pinning)."
        ),
    )
    state_dir: Path = Field(
        default_factory=state_dir,
        description="Logs, state files and rendered server files (`.run/`).",
    )
    ready_timeout_s: float = Field(
        default=120.0, gt=0, description="How long to wait for every model to be ready."
    )

    @field_validator("ports")
    @classmethod
    def _known_ports(cls, value: dict[str, int]) -> dict[str, int]:
        return check_port_keys(value)

    @field_validator("backends")
    @classmethod
    def _known_backends(cls, value: list[str] | None) -> list[str] | None:
        for name in value or []:
            get_backend(name)
        return value

    def backend_names(self) -> list[str]:
        return list(self.backends) if self.backends is not None else list(backends())

    def backend_ports(self, backend: str) -> dict[str, int]:
        """Every port of `backend`: its defaults, with this object's overrides."""
        defaults = get_backend(backend).ports
        return {p: self.ports.get(port_key(backend, p), d) for p, d in defaults.items()}

    def all_ports(self) -> dict[str, int]:
        """Every port the stack binds, keyed `<backend>.<port>` (for "port busy" messages)."""
        return {
            port_key(name, p): port
            for name in self.backend_names()
            for p, port in self.backend_ports(name).items()
        }
