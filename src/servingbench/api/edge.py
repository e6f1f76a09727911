"""The HTTP edge of the service: JSON bodies in, JSON responses and errors out, OpenAPI docs.

- Responses are serialised by orjson, numpy arrays included, with no validation pass.
- One error shape for every failure, `{"error": "<what to fix>"}`, with this status policy on
  every route: 400 unreadable body (not JSON, empty), 415 wrong content type, 413 body or row
  count over the limit, 422 well-formed JSON with wrong content (missing/extra fields, wrong
  types, counts, shapes), 404 unknown route/model/version, 405 method; a bug is a bare 500.
- Bodies are read on the raw ASGI `receive` with the size limit enforced on the bytes actually
  received, so the raw-ASGI hot path (`hotpath.py`) and the FastAPI routes read bodies with the
  very same checks and messages.
- The inference routes read their body by hand, so their OpenAPI request body is declared here.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect
from starlette.types import Receive

from servingbench.wire import RESPONSE_JSON

__all__ = [
    "ApiError",
    "check_headers",
    "dumps",
    "error_response",
    "install_error_handlers",
    "json_body",
    "json_response",
    "log_unexpected",
    "parse_json",
    "read_json",
    "receive_json",
]

# --- responses --------------------------------------------------------------------------------

_OPTIONS = RESPONSE_JSON


def dumps(content: Any) -> bytes:
    return orjson.dumps(content, option=_OPTIONS)


def json_response(
    content: Any, status: int = 200, headers: Mapping[str, str] | None = None
) -> Response:
    return Response(
        dumps(content), status_code=status, headers=headers, media_type="application/json"
    )


# --- errors -----------------------------------------------------------------------------------

log = logging.getLogger("servingbench.api")


class ApiError(Exception):
    """A client mistake: the status to answer and a message that says how to fix the request."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def error_response(status: int, message: str, headers: Mapping[str, str] | None = None) -> Response:
    return json_response({"error": message}, status=status, headers=headers)


async def _api_error(_: Request, exc: Exception) -> Response:
    assert isinstance(exc, ApiError)
    return error_response(exc.status, exc.message)


async def _http_error(request: Request, exc: Exception) -> Response:
    """Starlette's own 404/405 (unknown route, wrong method) in our error shape."""
    assert isinstance(exc, StarletteHTTPException)
    message = str(exc.detail)
    if exc.status_code == 404:
        message = f"no route {request.url.path}; see /docs for the API"
    elif exc.status_code == 405:
        headers = {k.lower(): v for k, v in (exc.headers or {}).items()}
        allowed = headers.get("allow", "")
        message = f"method {request.method} not allowed on {request.url.path}; use {allowed}"
    return error_response(exc.status_code, message, headers=exc.headers)


async def _validation_error(_: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    first = exc.errors()[0] if exc.errors() else {}
    where = ".".join(str(p) for p in first.get("loc", ()))
    return error_response(422, f"{where}: {first.get('msg', 'invalid request')}")


def log_unexpected(method: str, path: str, exc: Exception) -> str:
    """A bug, not a client mistake: log the trace; the message to answer instead of it."""
    log.error("unhandled error on %s %s", method, path, exc_info=exc)
    return f"internal error ({type(exc).__name__}); see the server log"


async def _unexpected(request: Request, exc: Exception) -> Response:
    return error_response(500, log_unexpected(request.method, request.url.path, exc))


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(ApiError, _api_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(Exception, _unexpected)


# --- request bodies ---------------------------------------------------------------------------


def _is_json(content_type: str) -> bool:
    media = content_type.split(";", 1)[0].strip().lower()
    return media == "application/json" or media.endswith("+json")


def check_headers(content_type: str | None, length: str | None, max_bytes: int) -> None:
    """Refuse a non-JSON content type (415) and a declared length over the limit (413)."""
    # A missing header is taken as JSON (some V2 clients send none); a different one is refused.
    if content_type is not None and not _is_json(content_type):
        raise ApiError(415, f"content type {content_type!r} not supported; send application/json")
    if length is not None:
        if not length.isdigit():
            raise ApiError(400, f"invalid Content-Length header {length!r}")
        if int(length) > max_bytes:
            raise ApiError(413, f"body of {length} bytes exceeds the limit of {max_bytes} bytes")


async def _receive_body(receive: Receive, max_bytes: int) -> bytes:
    """The whole body; the limit is enforced while streaming (chunked bodies have no length)."""
    message = await receive()
    if message["type"] == "http.request" and not message.get("more_body", False):
        body: bytes = message.get("body", b"")  # the usual case: one message holds it all
        if len(body) > max_bytes:
            raise ApiError(413, f"body exceeds the limit of {max_bytes} bytes")
        return body
    chunks: list[bytes] = []
    received = 0
    while True:
        if message["type"] == "http.disconnect":
            raise ClientDisconnect()
        chunk = message.get("body", b"")
        received += len(chunk)
        if received > max_bytes:
            raise ApiError(413, f"body exceeds the limit of {max_bytes} bytes")
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)
        message = await receive()


def parse_json(body: bytes) -> Any:
    if not body:
        raise ApiError(400, "empty body; send a JSON object")
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise ApiError(
            400,
            f"body is not valid JSON ({exc}); note NaN, Infinity and numbers beyond "
            "±1.8e308 are not JSON",
        ) from None


async def receive_json(
    receive: Receive, content_type: str | None, length: str | None, max_bytes: int
) -> Any:
    """Headers checked, body received within the limit, parsed."""
    check_headers(content_type, length, max_bytes)
    return parse_json(await _receive_body(receive, max_bytes))


async def read_json(request: Request, max_bytes: int) -> Any:
    """`receive_json` for a Starlette request (the FastAPI routes)."""
    headers = request.headers
    return await receive_json(
        request.receive, headers.get("content-type"), headers.get("content-length"), max_bytes
    )


# --- OpenAPI ----------------------------------------------------------------------------------


def json_body(schema: dict[str, Any], example: Any) -> dict[str, Any]:
    """`openapi_extra` describing a required JSON request body."""
    content = {"application/json": {"schema": schema, "example": example}}
    return {"requestBody": {"required": True, "content": content}}
