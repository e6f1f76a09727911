"""Named server configurations: tables of `backends/server-configs.toml`, validated by backend.

A configuration is addressed as `<backend>:<name>` (e.g. `fastapi:batching`,
`mlserver:parallel-workers-1`). Each table's keys are checked by its backend's `options` model,
so a misspelt key is an error, not a silently ignored one. Every backend has a `default`.
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Any

from servingbench.paths import project_root
from servingbench.servers import DEFAULT_CONFIG, ServerConfig, backends, get_backend
from servingbench.servers.base import check_options

__all__ = ["CONFIGS_ENV", "configs_file", "load_server_configs", "resolve_configs"]


CONFIGS_ENV = "SERVINGBENCH_SERVER_CONFIGS"


def configs_file() -> Path:
    """`backends/server-configs.toml`, or the file `$SERVINGBENCH_SERVER_CONFIGS` names (a site's
    own configurations, or a test's)."""
    override = os.environ.get(CONFIGS_ENV)
    return Path(override) if override else project_root() / "backends" / "server-configs.toml"


def _parse(backend_name: str, name: str, table: dict[str, Any]) -> ServerConfig:
    try:
        backend = get_backend(backend_name)
    except ValueError as exc:
        raise ValueError(f"[{backend_name}.{name}] in server configs: {exc}") from None
    table = dict(table)
    description = str(table.pop("description", ""))
    options = check_options(backend, table, f"[{backend_name}.{name}]")
    return ServerConfig(backend_name, name, options, description)


def load_server_configs(path: Path | None = None) -> dict[str, ServerConfig]:
    """Every configuration in the file, keyed `<backend>:<name>`; each backend has a default."""
    path = path or configs_file()
    data = tomllib.loads(path.read_text()) if path.is_file() else {}
    configs = {
        cfg.key: cfg
        for backend, tables in data.items()
        for name, table in tables.items()
        for cfg in [_parse(backend, name, table)]
    }
    for backend in backends():
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
            get_backend(backend)  # a ValueError listing the known backends
            chosen.update({k: c for k, c in known.items() if c.backend == backend})
        elif name in known:
            chosen[name] = known[name]
        else:
            raise ValueError(f"unknown server configuration {name!r}; known: {', '.join(known)}")
    for backend in backends():
        if not any(c.backend == backend for c in chosen.values()):
            chosen[f"{backend}:{DEFAULT_CONFIG}"] = known[f"{backend}:{DEFAULT_CONFIG}"]
    return list(chosen.values())
