"""Seldon MLServer as a backend: V2 REST and gRPC, its stock scikit-learn and XGBoost runtimes.

MLServer reads `settings.json` as constructor arguments, which beat `MLSERVER_*` environment
variables, and `mlserver start` has no flag for host or ports; so ports and a configuration's
options are applied by rendering a derived repository (merged `settings.json`, per-model
settings whose `uri` points at the *same* artifact file). It runs from `backends/mlserver/`'s
environment, as a user of MLServer installs it.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field

from servingbench.atomic import atomic_write_json
from servingbench.models.artifacts import served_models
from servingbench.paths import model_settings_dir
from servingbench.servers import register
from servingbench.servers.base import (
    SINGLE_THREAD_ENV,
    Backend,
    Endpoint,
    LaunchSpec,
    ServerConfig,
    StageMetric,
    environment_bin,
)

__all__ = ["MlserverBackend", "MlserverOptions", "render_repository"]


class MlserverOptions(BaseModel):
    """A configuration's changes to the committed MLServer settings."""

    model_config = ConfigDict(extra="forbid")

    settings: dict[str, Any] = Field(
        default_factory=dict,
        description="merged into model-settings/settings.json, e.g. {parallel_workers = 1}",
    )
    model: dict[str, Any] = Field(
        default_factory=dict,
        description="merged into every model-settings.json, e.g. adaptive batching "
        "{max_batch_size = 64, max_batch_time = 0.002}",
    )


def _merge(base: dict[str, Any], overrides: Mapping[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in overrides.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def render_repository(
    dest: Path,
    server_overrides: Mapping[str, Any],
    model_overrides: Mapping[str, Any] | None = None,
    source: Path | None = None,
) -> dict[str, Any]:
    """Write `dest/settings.json` and `dest/<model>/model-settings.json`; return the settings.

    Artifacts are not copied: each model's `uri` becomes the absolute path of the original file.
    """
    source = source or model_settings_dir()
    settings = _merge(json.loads((source / "settings.json").read_text()), server_overrides)
    atomic_write_json(dest / "settings.json", settings)
    for model_file in (source / name / "model-settings.json" for name in served_models(source)):
        model = _merge(json.loads(model_file.read_text()), model_overrides or {})
        params = dict(model.get("parameters") or {})
        if "uri" in params:
            params["uri"] = str((model_file.parent / params["uri"]).resolve())
        model["parameters"] = params
        atomic_write_json(dest / model_file.parent.name / "model-settings.json", model)
    return settings


@register
class MlserverBackend(Backend):
    name = "mlserver"
    title = "MLServer"
    ports: ClassVar[Mapping[str, int]] = {"http": 8080, "grpc": 8081, "metrics": 8082}
    endpoints = (
        Endpoint(
            "mlserver-rest", "v2-json", "http", ("urllib", "tritonclient"), default_bench=False
        ),
        Endpoint("mlserver-grpc", "v2-grpc", "grpc", ("tritonclient",)),
    )
    options = MlserverOptions
    pages: ClassVar[Mapping[str, tuple[str, str]]] = {"metrics": ("metrics", "/metrics")}
    stage_metrics = (
        StageMetric(
            "server", "rest_server_request_duration_seconds",
            {"path": "/v2/models/{model_name}/infer"}, ("v2-json",),
            "starlette-exporter middleware: JSON decode, validation, the model, encoding",
        ),
        StageMetric(
            "server", "grpc_server_handling_seconds", {"grpc_method": "ModelInfer"}, ("v2-grpc",),
            "interceptor around the servicer: protobuf to pydantic, the model (not wire decoding)",
        ),
        StageMetric(
            "model", "model_infer_request_duration", {"model": "{model}"}, (),
            "DataPlane.infer: the runtime's predict with its numpy codec (mean only: a summary)",
        ),
    )  # fmt: skip

    def launch(
        self, config: ServerConfig, ports: Mapping[str, int], host: str, workdir: Path
    ) -> LaunchSpec:
        options = MlserverOptions.model_validate(config.overrides())
        repository = workdir / "repo"
        listen = {
            "host": host,
            "http_port": ports["http"],
            "grpc_port": ports["grpc"],
            "metrics_port": ports["metrics"],
        }
        settings = render_repository(repository, {**options.settings, **listen}, options.model)
        models = sorted(p.parent.name for p in repository.glob("*/model-settings.json"))
        base = f"http://{host}:{ports['http']}"
        return LaunchSpec(
            name=config.server_name,
            backend=self.name,
            argv=[environment_bin(self.name, "mlserver"), "start", str(repository)],
            env=dict(SINGLE_THREAD_ENV),
            ready_urls=[
                f"{base}/v2/health/ready",
                *(f"{base}/v2/models/{m}/ready" for m in models),
            ],
            ports=dict(ports),
            workdir=workdir,
            host=host,
            environment=self.name,
            config={
                "settings": settings,
                "model_overrides": options.model,
                "repository": str(repository),
                "models": models,
            },
        )
