"""PROTOTYPE, measured against `http1`: the REST user's connection on `geventhttpclient`.

`geventhttpclient.HTTPClient` (what Locust's FastHttpUser is built on) with one keep-alive
connection, the same request body and Content-Type. Selected in a Locust process by
`SERVINGBENCH_PROTOCOL_CLIENT=library`.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from geventhttpclient import HTTPClient

from servingbench.loadgen.http1 import HttpReply, parse_server_timing

__all__ = ["LibraryConnection"]


class LibraryConnection:
    """`http1.HttpConnection`'s surface as `RestUser` uses it, on geventhttpclient."""

    def __init__(self, base_url: str, timeout_s: float, ca_bundle: str | None = None) -> None:
        parts = urlsplit(base_url)
        if parts.scheme != "http" or not parts.hostname:
            raise ValueError("the geventhttpclient prototype speaks plain http only")
        self._client = HTTPClient(
            parts.hostname,
            parts.port or 80,
            concurrency=1,
            connection_timeout=timeout_s,
            network_timeout=timeout_s,
            headers={"Content-Type": "application/json"},
        )
        self.opened = 1
        self._path = "/"

    def head(self, path: str, length: int) -> bytes:
        self._path = path
        return b""

    def ensure_open(self) -> None:
        return

    def request(self, message: bytes) -> HttpReply:
        response = self._client.request("POST", self._path, body=message)
        body = response.read()
        timing = response.get("server-timing")
        server = parse_server_timing(timing) if timing else None
        return HttpReply(
            response.status_code, body, round(server * 1e6) if server is not None else -1
        )

    def close(self) -> None:
        self._client.close()
