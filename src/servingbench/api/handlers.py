"""The two inference endpoints as plain functions, shared by the FastAPI routes and the hot path.

Each takes the service state and a `read_body` callable and returns the response document, so
validation, error precedence (e.g. an unknown V2 model is a 404 before the body is read) and
encoding exist once, whichever front end received the request.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from servingbench.api.codec import feature_matrix, parse_predict, parse_v2
from servingbench.api.runners import Stages
from servingbench.api.state import ServiceState
from servingbench.wire import PROBA_ONLY, predict_response, v2_response

__all__ = ["Answer", "BodyReader", "infer", "predict"]

BodyReader = Callable[[], Awaitable[Any]]
"""Receives, checks and parses the request's JSON body (raising `ApiError` when it is bad)."""


Answer = tuple[dict[str, Any], Stages]
"""The response document, and where the server's time went (for `Server-Timing`)."""


async def predict(state: ServiceState, read_body: BodyReader) -> Answer:
    """`POST /predict`: one `predict_proba` call; labels are its argmax, as `predict` gives them."""
    settings = state.settings
    body = parse_predict(await read_body())
    model = state.model(body.model or settings.default_model)
    x = feature_matrix(body.features, model.n_features, settings.max_rows, model.name)
    outputs, stages = await state.predict(model, x, PROBA_ONLY)
    proba = outputs["predict_proba"]
    answer = {"predict": model.labels(proba), "predict_proba": proba}
    return predict_response(model.name, model.version, answer), stages


async def infer(
    state: ServiceState, read_body: BodyReader, name: str, version: str | None
) -> Answer:
    """`POST /v2/models/{name}[/versions/{version}]/infer`: exactly the outputs requested."""
    settings = state.settings
    model = state.model(name, version)
    body = parse_v2(await read_body(), model.n_features, settings.max_rows)
    outputs, stages = await state.predict(model, body.x, body.outputs)
    request_id = body.id if body.id is not None else str(uuid.uuid4())
    return v2_response(model.name, model.version, request_id, outputs), stages
