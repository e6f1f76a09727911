"""`POST /predict`: the seed lab's body, `{"features": [...]}` or `{"features": [[...], ...]}`.

`hotpath.HotPath` answers POST /predict before FastAPI sees it; this route documents the
endpoint in OpenAPI and serves it when the FastAPI app runs on its own.
"""

from __future__ import annotations

from time import perf_counter

from fastapi import APIRouter, Request, Response

from servingbench.api import handlers
from servingbench.api.edge import json_body, read_json
from servingbench.api.state import ServiceState, timed_response

__all__ = ["router"]

_ROW = {"type": "array", "items": {"type": "number"}}
_REQUEST_DOC = json_body(
    {
        "type": "object",
        "required": ["features"],
        "additionalProperties": False,
        "properties": {
            "features": {"oneOf": [_ROW, {"type": "array", "items": _ROW}]},
            "model": {"type": "string", "description": "default: the default model"},
        },
    },
    example={"features": [5.1, 3.5, 1.4, 0.2]},
)


def router(state: ServiceState) -> APIRouter:
    api = APIRouter(tags=["predict"])
    settings = state.settings

    @api.post("/predict", summary="Labels and class probabilities", openapi_extra=_REQUEST_DOC)
    async def predict(request: Request) -> Response:
        start = perf_counter()
        doc, stages = await handlers.predict(
            state, lambda: read_json(request, settings.max_body_bytes)
        )
        return timed_response(state, doc, perf_counter() - start, stages)

    return api
