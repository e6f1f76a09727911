"""Our FastAPI service (`servingbench.api`) as a backend: `/predict` and V2 REST on one port.

It runs from `backends/fastapi/`'s environment (`servingbench[api]`), as `servingbench serve-api`
under uvicorn; a configuration's options become `SERVINGBENCH_API_*` variables.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar

from servingbench.api.settings import ApiOptions
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

__all__ = ["FastapiBackend"]


def _env_value(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value)


@register
class FastapiBackend(Backend):
    name = "fastapi"
    title = "our FastAPI service"
    ports: ClassVar[Mapping[str, int]] = {"http": 8000}
    endpoints = (
        Endpoint("fastapi-rest", "predict-json", "http"),
        Endpoint("fastapi-v2-rest", "v2-json", "http", default_bench=False),
    )
    options = ApiOptions
    ours = True
    pages: ClassVar[Mapping[str, tuple[str, str]]] = {
        "docs": ("http", "/docs"),
        "stats": ("http", "/stats"),
        "metrics": ("http", "/metrics"),
    }
    stage_metrics = (
        StageMetric(
            "server", "servingbench_api_request_duration_seconds", {"route": "/predict"},
            ("predict-json",), "request read to response written (the raw-ASGI hot path)",
        ),
        StageMetric(
            "server", "servingbench_api_request_duration_seconds",
            {"route": "/v2/models/{name}/infer"}, ("v2-json",),
            "request read to response written (the raw-ASGI hot path)",
        ),
        StageMetric(
            "model", "servingbench_api_model_duration_seconds", {"model": "{model}"}, (),
            "the predict_proba call that answered the request (a batch's, with batching)",
        ),
        StageMetric(
            "queue", "servingbench_api_queue_duration_seconds", {"model": "{model}"}, (),
            "waiting for a batch (batching) or a worker thread (threadpool)",
        ),
    )  # fmt: skip

    def launch(
        self, config: ServerConfig, ports: Mapping[str, int], host: str, workdir: Path
    ) -> LaunchSpec:
        env = dict(SINGLE_THREAD_ENV)
        env.update(
            {f"SERVINGBENCH_API_{k.upper()}": _env_value(v) for k, v in config.overrides().items()}
        )
        env["SERVINGBENCH_API_HOST"] = host
        env["SERVINGBENCH_API_PORT"] = str(ports["http"])
        base = f"http://{host}:{ports['http']}"
        options = ApiOptions.model_validate(config.overrides())
        return LaunchSpec(
            name=config.server_name,
            backend=self.name,
            argv=[environment_bin(self.name, "servingbench"), "serve-api"],
            env=env,
            ready_urls=[f"{base}/v2/health/ready"],
            ports=dict(ports),
            workdir=workdir,
            host=host,
            environment=self.name,
            config={"options": options.model_dump(mode="json")},
        )
