"""The V2 Open Inference Protocol over REST JSON, answering as MLServer 1.7.1 does.

`hotpath.HotPath` answers the two POST .../infer routes before FastAPI sees them; these
routes document them in OpenAPI and serve them when the FastAPI app runs on its own.
"""

from __future__ import annotations

from collections.abc import Awaitable
from time import perf_counter
from typing import Any

from fastapi import APIRouter, Request, Response

from servingbench import __version__
from servingbench.api import handlers
from servingbench.api.codec import V2_DATATYPES
from servingbench.api.edge import json_body, json_response, read_json
from servingbench.api.state import ServiceState, timed_response
from servingbench.wire import OUTPUTS

__all__ = ["router"]

_TENSOR = {
    "type": "object",
    "required": ["name", "shape", "datatype", "data"],
    "properties": {
        "name": {"type": "string"},
        "shape": {"type": "array", "items": {"type": "integer"}},
        "datatype": {"enum": list(V2_DATATYPES)},
        "data": {"type": "array"},
    },
}
_INFER_DOC = json_body(
    {
        "type": "object",
        "required": ["inputs"],
        "properties": {
            "id": {"type": "string"},
            "parameters": {"type": "object"},
            "inputs": {"type": "array", "minItems": 1, "maxItems": 1, "items": _TENSOR},
            "outputs": {
                "type": "array",
                "items": {"type": "object", "properties": {"name": {"enum": list(OUTPUTS)}}},
            },
        },
    },
    example={
        "inputs": [
            {"name": "input-0", "shape": [1, 4], "datatype": "FP32", "data": [5.1, 3.5, 1.4, 0.2]}
        ],
        "outputs": [{"name": "predict_proba"}],
    },
)


def _empty() -> Response:
    return Response(status_code=200)


def router(state: ServiceState) -> APIRouter:
    api = APIRouter(prefix="/v2", tags=["v2"])
    settings = state.settings

    async def infer(request: Request, name: str, version: str | None) -> Response:
        def read() -> Awaitable[Any]:
            return read_json(request, settings.max_body_bytes)

        start = perf_counter()
        doc, stages = await handlers.infer(state, read, name, version)
        return timed_response(state, doc, perf_counter() - start, stages)

    @api.post("/models/{name}/infer", summary="V2 inference", openapi_extra=_INFER_DOC)
    async def model_infer(request: Request, name: str) -> Response:
        return await infer(request, name, None)

    @api.post(
        "/models/{name}/versions/{version}/infer",
        summary="V2 inference, one version",
        openapi_extra=_INFER_DOC,
    )
    async def model_version_infer(request: Request, name: str, version: str) -> Response:
        return await infer(request, name, version)

    @api.get("/models/{name}", summary="V2 model metadata")
    async def model_metadata(name: str) -> Response:
        return json_response(state.model(name).v2_metadata())

    @api.get("/models/{name}/versions/{version}", summary="V2 model metadata, one version")
    async def model_version_metadata(name: str, version: str) -> Response:
        return json_response(state.model(name, version).v2_metadata())

    @api.get("/models/{name}/ready", summary="V2 model readiness")
    async def model_ready(name: str) -> Response:
        state.model(name)
        return _empty()

    @api.get("/models/{name}/versions/{version}/ready", summary="V2 model readiness, one version")
    async def model_version_ready(name: str, version: str) -> Response:
        state.model(name, version)
        return _empty()

    @api.get("", summary="V2 server metadata")
    async def server_metadata() -> Response:
        return json_response({"name": "servingbench-api", "version": __version__, "extensions": []})

    @api.get("/health/live", summary="V2 liveness")
    async def live() -> Response:
        return _empty()

    @api.get("/health/ready", summary="V2 readiness: every model loaded")
    async def ready() -> Response:
        return _empty()

    return api
