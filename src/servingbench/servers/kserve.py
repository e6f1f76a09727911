"""KServe's Python model server as a backend: V2 REST and gRPC, like MLServer, from kserve 0.16.

The harness side (`KserveBackend`) says how to launch it; the server side (`main`, run as
`python -m servingbench.servers.kserve` from `backends/kserve/`'s environment) serves every
model of `model-settings/` with one `kserve.Model` each, defined in `servers._kserve_runtime`.
kserve is imported only there: its `inference.*` gRPC stubs must stay out of the load
generator's process.

What the model does, for a fair comparison: it loads the artifact as MLServer's stock runtimes
do (`models.artifacts.load_predictor`), takes one FP32 tensor `input-0` of shape [N, F] and
answers only the outputs the request names (`predict` when it names none), `predict` as INT64
[N, 1] and `predict_proba` in the estimator's own dtype, exactly as MLServer answers.

Where KServe 0.16 differs and what is done about it:
- it has no host option (REST binds 0.0.0.0, gRPC [::]): two small subclasses bind the host;
- its default response class warns on every request under FastAPI >= 0.165: filtered;
- its access and latency logs are per request: silenced through its own log-config flag;
- `/v2/health/ready` is always ready: readiness polls each model's `/ready` instead;
- with `--workers > 1` REST runs in child processes, gRPC stays in the parent.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field

from servingbench.atomic import atomic_write_json
from servingbench.models.artifacts import served_models
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

__all__ = ["KserveBackend", "KserveOptions", "main"]

QUIET_LOGGING: dict[str, Any] = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "plain": {"format": "%(asctime)s %(process)s %(name)s %(levelname)s %(message)s"}
    },
    "handlers": {"stderr": {"class": "logging.StreamHandler", "formatter": "plain",
                            "stream": "ext://sys.stderr"}},
    "loggers": {
        name: {"handlers": ["stderr"], "level": "WARNING", "propagate": False}
        for name in ("kserve", "kserve.trace", "uvicorn", "uvicorn.error")
    } | {"uvicorn.access": {"handlers": [], "level": "WARNING", "propagate": False}},
}  # fmt: skip
"""Warnings and errors only: no per-request access or latency lines (logging is off elsewhere)."""


class KserveOptions(BaseModel):
    """What a `[kserve.<name>]` configuration may set."""

    model_config = ConfigDict(extra="forbid")

    workers: int = Field(
        default=1, ge=1, description="uvicorn REST worker processes (gRPC stays in the parent)"
    )
    max_threads: int = Field(default=4, ge=1, description="gRPC server threads (kserve default)")


@register
class KserveBackend(Backend):
    name = "kserve"
    title = "KServe"
    ports: ClassVar[Mapping[str, int]] = {"http": 8090, "grpc": 8091}
    endpoints = (
        # tritonclient.http sends JSON without a Content-Type, which KServe 0.16 reads as binary
        Endpoint("kserve-rest", "v2-json", "http", ("urllib",), default_bench=False),
        Endpoint("kserve-grpc", "v2-grpc", "grpc", ("tritonclient",)),
    )
    options = KserveOptions
    pages: ClassVar[Mapping[str, tuple[str, str]]] = {"metrics": ("http", "/metrics")}
    stage_metrics = (
        StageMetric(
            "model",
            "request_predict_seconds",
            {"model_name": "{model}"},
            (),
            "Model.predict: reading the tensor, the model, building the response objects "
            "(no request-level histogram exists; with --workers > 1 a scrape sees one worker)",
        ),
    )

    def launch(
        self, config: ServerConfig, ports: Mapping[str, int], host: str, workdir: Path
    ) -> LaunchSpec:
        options = KserveOptions.model_validate(config.overrides())
        models = served_models()
        log_config = workdir / "logging.json"
        atomic_write_json(log_config, QUIET_LOGGING)
        argv = [
            environment_bin(self.name, "python"),
            "-m",
            "servingbench.servers.kserve",
            "--host",
            host,
            "--models",
            ",".join(models),
            "--http_port",
            str(ports["http"]),
            "--grpc_port",
            str(ports["grpc"]),
            "--workers",
            str(options.workers),
            "--max_threads",
            str(options.max_threads),
            "--log_config_file",
            str(log_config),
            "--enable_latency_logging",
            "false",
        ]
        base = f"http://{host}:{ports['http']}"
        return LaunchSpec(
            name=config.server_name,
            backend=self.name,
            argv=argv,
            env=dict(SINGLE_THREAD_ENV),
            # with --workers > 1 the gRPC server starts after the REST workers: wait for both
            ready_urls=[f"{base}/v2/models/{m}/ready" for m in models]
            + [f"tcp://{host}:{ports['grpc']}"],
            ports=dict(ports),
            workdir=workdir,
            host=host,
            environment=self.name,
            config={"options": options.model_dump(), "models": models},
        )


# --- the server side: runs in backends/kserve/.venv ---------------------------------------------


def main(argv: Sequence[str] | None = None) -> None:
    """Serve `--models` from model-settings/; kserve's own flags (ports, workers) pass through."""
    parser = argparse.ArgumentParser(prog="python -m servingbench.servers.kserve")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--models", required=True, help="comma separated model names")
    ours, rest = parser.parse_known_args(argv)
    sys.argv = [sys.argv[0], *rest]  # kserve parses sys.argv when it is imported
    from servingbench.servers import _kserve_runtime  # imports kserve: after sys.argv is set

    _kserve_runtime.serve(ours.models.split(","), ours.host)


if __name__ == "__main__":
    main()
