"""A raw HTTP helper for the API tests: exact bytes and headers out, status and JSON back."""

from __future__ import annotations

import http.client
from collections.abc import Iterable
from typing import Any

import orjson

from servingbench.stack.launch import Launched

__all__ = ["ApiServer", "request"]

ApiServer = Launched
"""A server started by conftest's `serve` (ours, or any backend with an `http` port)."""


def request(
    server: Launched,
    method: str,
    path: str,
    body: bytes | Iterable[bytes] | None = None,
    headers: dict[str, str] | None = None,
    json: Any = None,
    port: str = "http",
) -> tuple[int, Any]:
    """One request on a fresh connection to the server's `port`; the body is decoded as JSON
    when there is one."""
    if json is not None:
        body = orjson.dumps(json)
        headers = {"Content-Type": "application/json", **(headers or {})}
    conn = http.client.HTTPConnection(server.spec.host, server.spec.ports[port], timeout=30)
    try:
        chunked = body is not None and not isinstance(body, bytes)
        conn.request(method, path, body=body, headers=headers or {}, encode_chunked=chunked)
        response = conn.getresponse()
        raw = response.read()
    finally:
        conn.close()
    ctype = response.getheader("content-type", "")
    return response.status, orjson.loads(raw) if raw and "json" in ctype else raw
