"""KServe's Python model server as a backend: V2 REST and gRPC, like MLServer, from kserve 0.16.

The harness side (`KserveBackend`) says how to launch it; the server side (`main`, run as
`python -m servingbench.servers.kserve` from `backends/kserve/`'s environment) serves every
model of `model-settings/` with one `kserve.Model` each. kserve is imported only there: its
`inference.*` gRPC stubs must stay out of the load generator's process.

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
import os
import sys
import uuid
import warnings
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

HOST_ENV = "SERVINGBENCH_KSERVE_HOST"
"""The host to bind; an environment variable so REST worker processes (re-imported) see it."""

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
            env={**SINGLE_THREAD_ENV, HOST_ENV: host},
            ready_urls=[f"{base}/v2/models/{m}/ready" for m in models],
            ports=dict(ports),
            workdir=workdir,
            host=host,
            environment=self.name,
            config={"options": options.model_dump(), "models": models},
        )


# --- the server side: runs in backends/kserve/.venv ---------------------------------------------


def _model_class() -> type[Any]:
    """The `kserve.Model` serving one artifact (built on first use: kserve is imported here)."""
    import kserve
    import numpy as np
    from kserve import InferOutput, InferRequest, InferResponse
    from kserve.errors import InvalidInput

    from servingbench.models.artifacts import load_metadata, load_predictor, model_version
    from servingbench.models.catalog import as_features
    from servingbench.wire import INPUT_NAME, OUTPUTS

    class ArtifactModel(kserve.Model):  # type: ignore[misc]
        """One catalog model, answering the V2 protocol like MLServer's stock runtimes."""

        def __init__(self, name: str) -> None:
            super().__init__(name)
            self.metadata = load_metadata(name)
            self.version = model_version(name)
            self.predictor: Any = None
            self.proba_datatype = "FP32"
            self.load()

        def load(self) -> bool:
            self.predictor = load_predictor(self.name)
            warm = as_features(self.metadata.held_out.rows[:1])  # lazy initialisation, not a client
            proba = self.predictor.predict_proba(warm)
            self.predictor.predict(warm)
            self.proba_datatype = "FP32" if proba.dtype == np.float32 else "FP64"
            self.ready = True
            return True

        def get_input_types(self) -> list[dict[str, Any]]:
            n = self.metadata.n_features
            return [{"name": INPUT_NAME, "datatype": "FP32", "shape": [-1, n]}]

        def get_output_types(self) -> list[dict[str, Any]]:
            classes = len(self.metadata.classes)
            return [
                {"name": "predict", "datatype": "INT64", "shape": [-1, 1]},
                {"name": "predict_proba", "datatype": self.proba_datatype, "shape": [-1, classes]},
            ]

        def _features(self, payload: Any) -> Any:
            if not isinstance(payload, InferRequest):  # V1 `:predict` bodies are plain dicts
                raise InvalidInput("only the V2 protocol is served: POST /v2/models/{name}/infer")
            if len(payload.inputs) != 1:
                raise InvalidInput(f"expected one input tensor, got {len(payload.inputs)}")
            tensor = payload.inputs[0]
            try:
                x = tensor.as_numpy().astype(np.float32, copy=False)
            except (ValueError, TypeError) as exc:
                raise InvalidInput(f"input {tensor.name!r}: {exc}") from None
            n = self.metadata.n_features
            if x.ndim != 2 or x.shape[1] != n:
                raise InvalidInput(
                    f"input {tensor.name!r}: expected shape [N, {n}], got {list(x.shape)}"
                )
            return x

        def predict(
            self, payload: InferRequest, headers: dict[str, str] | None = None
        ) -> InferResponse:
            x = self._features(payload)
            wanted = (
                [o.name for o in payload.request_outputs]
                if payload.request_outputs
                else ["predict"]
            )
            unknown = [n for n in wanted if n not in OUTPUTS]
            if unknown:
                raise InvalidInput(
                    f"unknown output(s) {unknown}; this model offers {list(OUTPUTS)}"
                )
            binary = payload.use_binary_outputs
            outputs = []
            try:
                for name in wanted:
                    if name == "predict":
                        arr = np.asarray(self.predictor.predict(x), dtype=np.int64).reshape(-1, 1)
                        datatype = "INT64"
                    else:
                        arr = self.predictor.predict_proba(x)
                        datatype = self.proba_datatype
                    out = InferOutput(name=name, shape=list(arr.shape), datatype=datatype)
                    out.set_data_from_numpy(arr, binary_data=binary)
                    outputs.append(out)
            except ValueError as exc:  # e.g. scikit-learn: "Input X contains NaN"
                raise InvalidInput(str(exc)) from None
            return InferResponse(
                response_id=payload.id or str(uuid.uuid4()),  # must be a str (pydantic)
                model_name=self.name,
                model_version=self.version,
                infer_outputs=outputs,
                use_binary_outputs=binary,
            )

    return ArtifactModel


def _bind_host() -> None:
    """Make kserve's REST and gRPC servers listen on $SERVINGBENCH_KSERVE_HOST only."""
    from concurrent import futures

    import kserve.model_server as kms
    import kserve.protocol.rest.multiprocess.server as kmp
    from grpc import aio
    from kserve.protocol.grpc import grpc_predict_v2_pb2_grpc
    from kserve.protocol.grpc.interceptors import ExceptionToStatusInterceptor, LoggingInterceptor
    from kserve.protocol.grpc.server import GRPCServer
    from kserve.protocol.grpc.servicer import InferenceServicer
    from kserve.protocol.rest.server import RESTServer

    host = os.environ.get(HOST_ENV, "127.0.0.1")

    class HostRESTServer(RESTServer):  # type: ignore[misc]
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self.config.host = host

    class HostGRPCServer(GRPCServer):  # type: ignore[misc]
        async def start(self, max_workers: int) -> None:  # kserve's body, with our address
            servicer = InferenceServicer(self._data_plane, self._model_repository_extension)
            self._server = aio.server(
                futures.ThreadPoolExecutor(max_workers=max_workers),
                interceptors=(LoggingInterceptor(), ExceptionToStatusInterceptor()),
                options=[
                    ("grpc.max_send_message_length", self._kwargs["grpc_max_send_message_length"]),
                    (
                        "grpc.max_receive_message_length",
                        self._kwargs["grpc_max_receive_message_length"],
                    ),
                    ("grpc.so_reuseport", 0),  # never share a port another server holds
                ],
            )
            grpc_predict_v2_pb2_grpc.add_GRPCInferenceServiceServicer_to_server(
                servicer, self._server
            )
            self._server.add_insecure_port(f"{host}:{self._port}")
            await self._server.start()
            await self._server.wait_for_termination()

    kms.RESTServer = HostRESTServer
    kmp.RESTServer = HostRESTServer
    kms.GRPCServer = HostGRPCServer


def main(argv: Sequence[str] | None = None) -> None:
    """Serve `--models` from model-settings/; kserve's own flags (ports, workers) pass through."""
    parser = argparse.ArgumentParser(prog="python -m servingbench.servers.kserve")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--models", required=True, help="comma separated model names")
    ours, rest = parser.parse_known_args(argv)
    os.environ[HOST_ENV] = ours.host
    sys.argv = [sys.argv[0], *rest]  # kserve parses sys.argv when it is imported
    from fastapi.exceptions import FastAPIDeprecationWarning

    warnings.filterwarnings("ignore", category=FastAPIDeprecationWarning)
    import kserve

    _bind_host()
    model = _model_class()
    kserve.ModelServer().start([model(name) for name in ours.models.split(",")])


if __name__ == "__main__":
    main()
