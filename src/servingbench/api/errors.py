"""One error shape for every failure: `{"error": "<what to fix>"}` with a 4xx (or a bare 500).

Status policy, the same on every route: 400 unreadable body (not JSON, empty), 415 wrong
content type, 413 body or row count over the limit, 422 well-formed JSON with wrong content
(missing/extra fields, wrong types, counts, shapes), 404 unknown route/model/version, 405 method.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from servingbench.api.responses import json_response

__all__ = ["ApiError", "error_response", "install_error_handlers", "log_unexpected"]

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
