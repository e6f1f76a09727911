"""`POST /predict`: the seed lab's body, `{"features": [...]}` or `{"features": [[...], ...]}`."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response

from servingbench.api.body import read_json
from servingbench.api.encoding import predict_response
from servingbench.api.openapi import json_body
from servingbench.api.responses import json_response
from servingbench.api.state import ServiceState
from servingbench.api.validation import feature_matrix, parse_predict
from servingbench.protocol import OUTPUTS

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
        body = parse_predict(await read_json(request, settings.max_body_bytes))
        model = state.model(body.model or settings.default_model)
        x = feature_matrix(body.features, model.n_features, settings.max_rows, model.name)
        outputs = await state.predict(model, x, OUTPUTS)
        return json_response(predict_response(model.name, model.version, outputs))

    return api
