"""The KServe server side: the model class and the host-bound servers, imported only inside
`backends/kserve/`'s environment (by `servers.kserve.main`, after it has set `sys.argv`, which
kserve parses on import). The leading underscore keeps the backend registry from importing it.

Everything here is defined at module level because with `--workers > 1` kserve starts its REST
workers with multiprocessing's *spawn* and pickles the REST server, its data plane and every
model into them: a class defined inside a function cannot be pickled, and the workers never
started (`Can't pickle local object`).
"""

from __future__ import annotations

import uuid
import warnings
from collections.abc import Sequence
from concurrent import futures
from typing import Any

from fastapi.exceptions import FastAPIDeprecationWarning

# its default response class warns on every request under FastAPI >= 0.165 (in every worker)
warnings.filterwarnings("ignore", category=FastAPIDeprecationWarning)

import kserve  # noqa: E402
import kserve.model_server as kms  # noqa: E402
import kserve.protocol.rest.multiprocess.server as kmp  # noqa: E402
import numpy as np  # noqa: E402
from grpc import aio  # noqa: E402
from kserve import InferOutput, InferRequest, InferResponse  # noqa: E402
from kserve.errors import InvalidInput  # noqa: E402
from kserve.protocol.grpc import grpc_predict_v2_pb2_grpc  # noqa: E402
from kserve.protocol.grpc.interceptors import (  # noqa: E402
    ExceptionToStatusInterceptor,
    LoggingInterceptor,
)
from kserve.protocol.grpc.server import GRPCServer  # noqa: E402
from kserve.protocol.grpc.servicer import InferenceServicer  # noqa: E402
from kserve.protocol.rest.server import RESTServer  # noqa: E402

from servingbench.models.artifacts import load_metadata, load_predictor, model_version  # noqa: E402
from servingbench.models.catalog import as_features  # noqa: E402
from servingbench.wire import INPUT_NAME, OUTPUTS  # noqa: E402

__all__ = ["ArtifactModel", "serve"]


class _Listen:
    host = "127.0.0.1"
    """Set by `serve`; REST workers get it inside the pickled server's configuration."""


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
            [o.name for o in payload.request_outputs] if payload.request_outputs else ["predict"]
        )
        unknown = [n for n in wanted if n not in OUTPUTS]
        if unknown:
            raise InvalidInput(f"unknown output(s) {unknown}; this model offers {list(OUTPUTS)}")
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


class HostRESTServer(RESTServer):  # type: ignore[misc]
    """kserve's REST server on our host (it binds 0.0.0.0 and has no option for it)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.config.host = _Listen.host


class HostGRPCServer(GRPCServer):  # type: ignore[misc]
    """kserve's gRPC server on our host (it binds [::]); the body is kserve's `start`."""

    async def start(self, max_workers: int) -> None:
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
        grpc_predict_v2_pb2_grpc.add_GRPCInferenceServiceServicer_to_server(servicer, self._server)
        self._server.add_insecure_port(f"{_Listen.host}:{self._port}")
        await self._server.start()
        await self._server.wait_for_termination()


def serve(models: Sequence[str], host: str) -> None:
    """Serve the named models of model-settings/ on `host` until stopped."""
    _Listen.host = host
    kms.RESTServer = HostRESTServer
    kmp.RESTServer = HostRESTServer
    kms.GRPCServer = HostGRPCServer
    kserve.ModelServer().start([ArtifactModel(name) for name in models])
