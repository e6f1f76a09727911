"""How to launch each backend: argv, environment, readiness checks, and what to record.

MLServer reads `settings.json` as constructor arguments, which beat `MLSERVER_*` environment
variables; so ports and named configurations are applied by rendering a derived repository
(merged `settings.json`, per-model settings whose `uri` points at the *same* artifact file).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from servingbench.atomic import atomic_write_json
from servingbench.paths import model_settings_dir

__all__ = ["ServerSpec", "api_spec", "mlserver_spec", "render_mlserver_repository", "venv_bin"]

# Thread pools sized to the pinned core: more threads than cores only adds contention.
SINGLE_THREAD_ENV = {"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


@dataclass(frozen=True)
class ServerSpec:
    """A server to start: command, environment, readiness URLs, ports, recorded configuration."""

    name: str
    backend: str
    argv: list[str]
    env: dict[str, str]
    ready_urls: list[str]
    ports: dict[str, int]
    config: dict[str, Any] = field(default_factory=dict)


def venv_bin(program: str) -> str:
    """A console script installed next to the running interpreter."""
    return str(Path(sys.executable).with_name(program))


def _merge(base: dict[str, Any], overrides: Mapping[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in overrides.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def render_mlserver_repository(
    dest: Path,
    server_overrides: Mapping[str, Any],
    model_overrides: Mapping[str, Any] | None = None,
    source: Path | None = None,
    models: list[str] | None = None,
) -> dict[str, Any]:
    """Write `dest/settings.json` and `dest/<model>/model-settings.json`; return the settings.

    Artifacts are not copied: each model's `uri` becomes the absolute path of the original file.
    """
    source = source or model_settings_dir()
    settings = _merge(json.loads((source / "settings.json").read_text()), server_overrides)
    atomic_write_json(dest / "settings.json", settings)
    for model_file in sorted(source.glob("*/model-settings.json")):
        name = model_file.parent.name
        if models is not None and name not in models:
            continue
        model = _merge(json.loads(model_file.read_text()), model_overrides or {})
        params = dict(model.get("parameters") or {})
        if "uri" in params:
            params["uri"] = str((model_file.parent / params["uri"]).resolve())
        model["parameters"] = params
        atomic_write_json(dest / name / "model-settings.json", model)
    return settings


def mlserver_spec(
    repository: Path,
    http_port: int,
    grpc_port: int,
    metrics_port: int,
    name: str = "mlserver",
    host: str = "127.0.0.1",
    server_overrides: Mapping[str, Any] | None = None,
    model_overrides: Mapping[str, Any] | None = None,
    models: list[str] | None = None,
) -> ServerSpec:
    """Render a repository under `repository` and describe `mlserver start` on it."""
    overrides = _merge(
        dict(server_overrides or {}),
        {
            "host": host,
            "http_port": http_port,
            "grpc_port": grpc_port,
            "metrics_port": metrics_port,
        },
    )
    settings = render_mlserver_repository(repository, overrides, model_overrides, models=models)
    model_names = sorted(p.parent.name for p in repository.glob("*/model-settings.json"))
    base = f"http://{host}:{http_port}"
    return ServerSpec(
        name=name,
        backend="mlserver",
        argv=[venv_bin("mlserver"), "start", str(repository)],
        env=dict(SINGLE_THREAD_ENV),
        ready_urls=[f"{base}/v2/health/ready"]
        + [f"{base}/v2/models/{m}/ready" for m in model_names],
        ports={"http": http_port, "grpc": grpc_port, "metrics": metrics_port},
        config={
            "settings": settings,
            "model_overrides": dict(model_overrides or {}),
            "repository": str(repository),
            "models": model_names,
        },
    )


def api_spec(
    port: int,
    name: str = "fastapi",
    host: str = "127.0.0.1",
    settings: Mapping[str, Any] | None = None,
    models: list[str] | None = None,
) -> ServerSpec:
    """Our FastAPI service under uvicorn; `settings` become `SERVINGBENCH_API_*` variables."""
    env = dict(SINGLE_THREAD_ENV)
    env.update(
        {f"SERVINGBENCH_API_{k.upper()}": _env_value(v) for k, v in (settings or {}).items()}
    )
    env["SERVINGBENCH_API_HOST"] = host
    env["SERVINGBENCH_API_PORT"] = str(port)
    if models is not None:
        env["SERVINGBENCH_API_MODELS"] = json.dumps(models)
    base = f"http://{host}:{port}"
    return ServerSpec(
        name=name,
        backend="fastapi",
        argv=[venv_bin("servingbench"), "serve-api"],
        env=env,
        ready_urls=[f"{base}/v2/health/ready"],
        ports={"http": port},
        config={"settings": dict(settings or {}), "models": models},
    )


def _env_value(value: Any) -> str:
    if isinstance(value, str):
        return value
    return json.dumps(value)
