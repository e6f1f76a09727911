"""Where `serve-all` puts the two servers: host, ports, pinned cores, state folder, MLServer knobs.

Every field can be set as `SERVINGBENCH_STACK_<FIELD>` (lists and dicts as JSON); command-line
flags override both. Clients (`parity`, the load generator) read the same object, so a port is
written down once.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from servingbench.paths import state_dir

__all__ = ["StackSettings", "allowed_cpus", "default_pinning"]


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


class StackSettings(BaseSettings):
    """The local stack started by `servingbench serve-all`."""

    model_config = SettingsConfigDict(env_prefix="SERVINGBENCH_STACK_", extra="forbid")

    host: str = Field(
        default="127.0.0.1",
        description="Interface both servers bind to and clients connect to (loopback only).",
    )
    mlserver_http_port: int = Field(default=8080, description="MLServer V2 REST port.")
    mlserver_grpc_port: int = Field(default=8081, description="MLServer V2 gRPC port.")
    mlserver_metrics_port: int = Field(default=8082, description="MLServer Prometheus port.")
    api_port: int = Field(default=8000, description="Our FastAPI service's port.")
    server_cpus: list[int] | None = Field(
        default_factory=_default_server_cpus,
        description=(
            "Cores both servers are pinned to with taskset; null or [] means no pinning. "
            "Default: the first allowed core when two or more are allowed (see default_pinning)."
        ),
    )
    state_dir: Path = Field(
        default_factory=state_dir,
        description="Logs, state files and the rendered MLServer repository (`.run/`).",
    )
    ready_timeout_s: float = Field(
        default=120.0, gt=0, description="How long to wait for every model to be ready."
    )
    mlserver_parallel_workers: int | None = Field(
        default=None,
        ge=0,
        description="Overrides `parallel_workers` of settings.json (0 = predict in-process).",
    )
    mlserver_overrides: dict[str, Any] = Field(
        default_factory=dict,
        description="Any other MLServer server settings to override, as a JSON object.",
    )

    def mlserver_server_overrides(self) -> dict[str, Any]:
        """What is merged over the committed `settings.json` (ports and host are added later)."""
        overrides = dict(self.mlserver_overrides)
        if self.mlserver_parallel_workers is not None:
            overrides["parallel_workers"] = self.mlserver_parallel_workers
        return overrides

    def ports(self) -> dict[str, int]:
        """Every port the stack binds, by a name a user recognises in an error message."""
        return {
            "MLServer REST": self.mlserver_http_port,
            "MLServer gRPC": self.mlserver_grpc_port,
            "MLServer metrics": self.mlserver_metrics_port,
            "FastAPI": self.api_port,
        }
