"""Read a JSON request body: content type, size limit on the bytes actually received, orjson."""

from __future__ import annotations

from typing import Any

import orjson
from starlette.requests import Request

from servingbench.api.errors import ApiError

__all__ = ["read_json"]


def _is_json(content_type: str) -> bool:
    media = content_type.split(";", 1)[0].strip().lower()
    return media == "application/json" or media.endswith("+json")


def _check_headers(request: Request, max_bytes: int) -> None:
    content_type = request.headers.get("content-type")
    # A missing header is taken as JSON (some V2 clients send none); a different one is refused.
    if content_type is not None and not _is_json(content_type):
        raise ApiError(415, f"content type {content_type!r} not supported; send application/json")
    length = request.headers.get("content-length")
    if length is not None:
        if not length.isdigit():
            raise ApiError(400, f"invalid Content-Length header {length!r}")
        if int(length) > max_bytes:
            raise ApiError(413, f"body of {length} bytes exceeds the limit of {max_bytes} bytes")


async def read_json(request: Request, max_bytes: int) -> Any:
    """The parsed body; the limit is enforced while streaming (chunked bodies have no length)."""
    _check_headers(request, max_bytes)
    chunks: list[bytes] = []
    received = 0
    async for chunk in request.stream():
        received += len(chunk)
        if received > max_bytes:
            raise ApiError(413, f"body exceeds the limit of {max_bytes} bytes")
        chunks.append(chunk)
    body = chunks[0] if len(chunks) == 1 else b"".join(chunks)
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
