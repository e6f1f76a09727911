"""Raw-ASGI front door: the inference routes skip FastAPI's stack, everything else goes through it.

`POST /predict` and `POST /v2/models/{name}[/versions/{version}]/infer` are matched on the
exact path and served here with the same body reader, validation, handlers and encoders the
FastAPI routes use (`handlers.py`); any other request, including a wrong method or a trailing
slash on those paths, falls through to the FastAPI app, so docs, OpenAPI and the 404/405 JSON
errors are unchanged. Latency is recorded under the same route templates FastAPI uses.

Why: profiled under load (py-spy), Starlette's middleware, routing, `Request` and FastAPI's
dependency solving cost more than the model itself once the model ran once per request, and
in batching mode each await unwinds and resumes that 20-frame stack.

Measured before and after, with py-spy profiles: see the README ("Making our service fast").
"""

from __future__ import annotations

from collections.abc import Awaitable
from time import perf_counter
from typing import Any

from starlette.requests import ClientDisconnect
from starlette.types import ASGIApp, Receive, Scope, Send

from servingbench.api import handlers
from servingbench.api.edge import ApiError, dumps, log_unexpected, receive_json
from servingbench.api.runners import Stages
from servingbench.api.state import ServiceState

__all__ = ["HOT_ROUTES", "HotPath", "match"]

_PREDICT = "/predict"
_INFER = "/v2/models/{name}/infer"
_INFER_VERSION = "/v2/models/{name}/versions/{version}/infer"
HOT_ROUTES = (_PREDICT, _INFER, _INFER_VERSION)
"""The FastAPI route templates served here (a unit test checks FastAPI has the same ones)."""

_V2_PREFIX = "/v2/models/"
_INFER_SUFFIX = "/infer"
_JSON = b"application/json"

Match = tuple[str, str | None, str | None]
"""(route template, model name or None for /predict, version or None)"""


def match(path: str) -> Match | None:
    """The hot route `path` is, with its parameters; None sends the request to FastAPI."""
    if path == _PREDICT:
        return _PREDICT, None, None
    if path.startswith(_V2_PREFIX) and path.endswith(_INFER_SUFFIX):
        parts = path[len(_V2_PREFIX) : -len(_INFER_SUFFIX)].split("/")
        if all(parts):  # each `{param}` matches one non-empty segment, as in Starlette
            if len(parts) == 1:
                return _INFER, parts[0], None
            if len(parts) == 3 and parts[1] == "versions":
                return _INFER_VERSION, parts[0], parts[2]
    return None


def _body_headers(scope: Scope) -> tuple[str | None, str | None]:
    """The first Content-Type and Content-Length (ASGI servers lower-case header names)."""
    content_type = length = None
    for key, value in scope["headers"]:
        if key == b"content-type" and content_type is None:
            content_type = value.decode("latin-1")
        elif key == b"content-length" and length is None:
            length = value.decode("latin-1")
    return content_type, length


class HotPath:
    """The ASGI app uvicorn runs: hot routes here, the rest (and the lifespan) to `app`."""

    def __init__(self, app: ASGIApp, state: ServiceState) -> None:
        self.app = app
        self.state = state

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "POST":
            hit = match(scope["path"])
            if hit is not None:
                await self._serve(hit, scope, receive, send)
                return
        await self.app(scope, receive, send)

    async def _answer(
        self, hit: Match, scope: Scope, receive: Receive
    ) -> tuple[int, bytes, Stages | None]:
        state = self.state
        content_type, length = _body_headers(scope)

        def read_body() -> Awaitable[Any]:
            return receive_json(receive, content_type, length, state.settings.max_body_bytes)

        _, name, version = hit
        try:
            if name is None:
                doc, stages = await handlers.predict(state, read_body)
            else:
                doc, stages = await handlers.infer(state, read_body, name, version)
        except ApiError as exc:
            return exc.status, dumps({"error": exc.message}), None
        return 200, dumps(doc), stages

    async def _serve(self, hit: Match, scope: Scope, receive: Receive, send: Send) -> None:
        start = perf_counter()
        stages = None
        try:
            status, body, stages = await self._answer(hit, scope, receive)
        except ClientDisconnect:
            return  # nobody to answer
        except Exception as exc:
            status = 500
            body = dumps({"error": log_unexpected(scope["method"], scope["path"], exc)})
        headers = [(b"content-type", _JSON), (b"content-length", str(len(body)).encode())]
        if stages is not None and self.state.settings.server_timing:
            timing = stages.server_timing(perf_counter() - start)
            headers.append((b"server-timing", timing.encode("latin-1")))
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})
        self.state.record(hit[0], status, perf_counter() - start)
