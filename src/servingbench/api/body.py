"""Read a JSON request body: content type, size limit on the bytes actually received, orjson.

Works on the raw ASGI `receive` and header values, so the raw-ASGI hot path (`hotpath.py`)
and the FastAPI routes read bodies with the very same checks and messages.
"""

from __future__ import annotations

from typing import Any

import orjson
from starlette.requests import ClientDisconnect, Request
from starlette.types import Receive

from servingbench.api.errors import ApiError

__all__ = ["check_headers", "parse_json", "read_json", "receive_json"]


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
