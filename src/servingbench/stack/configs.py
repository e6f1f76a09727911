"""Named server configurations: data in `backends/server-configs.toml`, one spec builder.

A configuration is addressed as `<backend>:<name>` (e.g. `fastapi:batching`,
`mlserver:parallel-workers-1`). The benchmark runs several side by side and labels every point
with the name, so the report can compare, say, our batching service against MLServer's best.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from servingbench.paths import project_root
from servingbench.stack.servers import ServerSpec, api_spec, mlserver_spec

__all__ = [
    "DEFAULT_CONFIG",
    "ServerConfig",
    "config_spec",
    "configs_file",
    "load_server_configs",
    "resolve_configs",
]

Backend = Literal["fastapi", "mlserver"]
DEFAULT_CONFIG = "default"


@dataclass(frozen=True)
class ServerConfig:
    """One named way to run a backend."""

    backend: Backend
    name: str
    description: str = ""
    api_settings: dict[str, Any] = field(default_factory=dict)
    mlserver_settings: dict[str, Any] = field(default_factory=dict)
    mlserver_model: dict[str, Any] = field(default_factory=dict)

    @property
    def key(self) -> str:
        return f"{self.backend}:{self.name}"

    def as_meta(self) -> dict[str, Any]:
        """What the run's metadata records about this configuration."""
        if self.backend == "fastapi":
            return {"description": self.description, "api_settings": self.api_settings}
        return {
            "description": self.description,
            "settings": self.mlserver_settings,
            "model": self.mlserver_model,
        }


def configs_file() -> Path:
    return project_root() / "backends" / "server-configs.toml"


def _parse(backend: str, name: str, table: dict[str, Any]) -> ServerConfig:
    table = dict(table)
    description = str(table.pop("description", ""))
    if backend == "fastapi":
        from servingbench.api.settings import ApiSettings

        unknown = sorted(set(table) - set(ApiSettings.model_fields))
        if unknown:
            raise ValueError(
                f"fastapi.{name}: unknown setting(s) {unknown}; known: "
                f"{', '.join(ApiSettings.model_fields)} (see `servingbench serve-api --help`)"
            )
        return ServerConfig("fastapi", name, description, api_settings=table)
    if backend == "mlserver":
        settings, model = table.pop("settings", {}), table.pop("model", {})
        if table:
            raise ValueError(
                f"mlserver.{name}: unknown key(s) {sorted(table)}; use `settings` or `model`"
            )
        return ServerConfig(
            "mlserver", name, description, mlserver_settings=settings, mlserver_model=model
        )
    raise ValueError(f"unknown backend {backend!r} in server configs; known: fastapi, mlserver")


def load_server_configs(path: Path | None = None) -> dict[str, ServerConfig]:
    """Every configuration in the file, keyed `<backend>:<name>`; each backend has a default."""
    path = path or configs_file()
    data = tomllib.loads(path.read_text())
    configs = {
        cfg.key: cfg
        for backend, tables in data.items()
        for name, table in tables.items()
        for cfg in [_parse(backend, name, table)]
    }
    for backend in ("fastapi", "mlserver"):
        configs.setdefault(f"{backend}:{DEFAULT_CONFIG}", _parse(backend, DEFAULT_CONFIG, {}))
    return configs


def resolve_configs(
    names: list[str], known: dict[str, ServerConfig] | None = None
) -> list[ServerConfig]:
    """`["all"]`, `["fastapi:batching", "mlserver:default"]` or `["fastapi:all"]` -> configs.

    A backend with no configuration named keeps its default, so every scenario has a server.
    """
    known = known if known is not None else load_server_configs()
    chosen: dict[str, ServerConfig] = {}
    for name in names or []:
        if name == "all":
            chosen.update(known)
            continue
        backend, _, config = name.partition(":")
        if config == "all":
            chosen.update({k: c for k, c in known.items() if c.backend == backend})
        elif name in known:
            chosen[name] = known[name]
        else:
            raise ValueError(f"unknown server configuration {name!r}; known: {', '.join(known)}")
    for backend in ("fastapi", "mlserver"):
        if not any(c.backend == backend for c in chosen.values()):
            chosen[f"{backend}:{DEFAULT_CONFIG}"] = known[f"{backend}:{DEFAULT_CONFIG}"]
    return list(chosen.values())


def config_spec(
    config: ServerConfig,
    ports: dict[str, int],
    state_dir: Path,
    host: str = "127.0.0.1",
    base_mlserver_settings: dict[str, Any] | None = None,
) -> ServerSpec:
    """The launch spec of `config` on `ports` (`http`, and for MLServer `grpc`, `metrics`)."""
    if config.backend == "fastapi":
        return api_spec(
            ports["http"], name=f"fastapi-{config.name}", host=host, settings=config.api_settings
        )
    return mlserver_spec(
        state_dir / f"mlserver-{config.name}" / "repo",
        http_port=ports["http"],
        grpc_port=ports["grpc"],
        metrics_port=ports["metrics"],
        name=f"mlserver-{config.name}",
        host=host,
        server_overrides={**(base_mlserver_settings or {}), **config.mlserver_settings},
        model_overrides=config.mlserver_model,
    )
