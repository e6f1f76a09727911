"""A keep-alive HTTP/1.1 POST client on a gevent socket, for the load generator's REST user.

Each request is the payload's bytes behind a request head built once per path, written with one
`sendall`; the answer is read by its Content-Length (or chunked encoding, should a server use
it). Only what a load request needs: status, the `Server-Timing` header's `app` duration, the
body. The connection is opened before the first request (`ensure_open`, untimed), and one the
server closed while it idled (keep-alive timeout) is noticed and reopened there too, so no
measured request pays for a connect. A connection broken during a request is reopened on the
next one; a request that fails on a reused connection before any byte came back is not retried
(the failure is recorded, as it should be).
"""

from __future__ import annotations

import re
import ssl
from dataclasses import dataclass
from time import monotonic
from urllib.parse import urlsplit

import gevent
import gevent.select
import gevent.socket
import gevent.ssl

__all__ = ["HttpConnection", "HttpResponseError", "parse_server_timing"]

_LENGTH = re.compile(rb"\r\ncontent-length:[ \t]*(\d+)", re.IGNORECASE)
_CHUNKED = re.compile(rb"\r\ntransfer-encoding:[^\r]*chunked", re.IGNORECASE)
_CLOSE = re.compile(rb"\r\nconnection:[ \t]*close", re.IGNORECASE)
_TIMING = re.compile(rb"\r\nserver-timing:([^\r]*)", re.IGNORECASE)
_DUR = re.compile(r"(?:^|,)\s*([\w-]+)\s*;(?:[^,]*?;)?\s*dur=([\d.]+)", re.IGNORECASE)
IDLE_CHECK_S = 0.5
"""A connection idle this long is checked for a close by the server before it is reused."""


def _client_context(ca_bundle: str | None) -> ssl.SSLContext:
    """A verifying TLS client context of gevent's own: a stdlib context (which is what
    `gevent.ssl.create_default_context` returns unless `ssl` is monkey-patched) would wrap our
    socket in a blocking stdlib SSLSocket whose handshake and reads stall the whole hub."""
    context: ssl.SSLContext = gevent.ssl.SSLContext(gevent.ssl.PROTOCOL_TLS_CLIENT)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    if ca_bundle is None:
        context.load_default_certs()
    else:
        context.load_verify_locations(cafile=ca_bundle)
    return context


class HttpResponseError(ConnectionError):
    """The server closed the connection or sent something that is not an HTTP/1.1 response."""


def parse_server_timing(value: str, metric: str = "app") -> float | None:
    """The `dur` (ms) of `metric` in a W3C Server-Timing header value, e.g. `app;dur=0.42`."""
    for name, duration in _DUR.findall(value):
        if name.lower() == metric:
            return float(duration)
    return None


@dataclass(frozen=True, slots=True)
class HttpReply:
    """Status and fully read body of one response, and the server's own time if it said."""

    status: int
    body: bytes
    server_ns: int

    def __len__(self) -> int:
        return len(self.body)


class HttpConnection:
    """One persistent connection to `base_url` (http:// or https://)."""

    def __init__(self, base_url: str, timeout_s: float, ca_bundle: str | None = None) -> None:
        parts = urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"not an http(s) URL: {base_url!r}")
        self.host = parts.hostname
        self.port = parts.port or (443 if parts.scheme == "https" else 80)
        self.netloc = parts.netloc
        self.tls = parts.scheme == "https"
        self.timeout_s = timeout_s
        self._context = _client_context(ca_bundle) if self.tls else None
        self._sock: gevent.socket.socket | None = None
        self._buffer = bytearray()
        self._last_used = 0.0
        self.opened = 0
        """Connections opened so far (the caller can tell one opened inside a request)."""

    def head(self, path: str, length: int) -> bytes:
        """The request head for a JSON POST of `length` bytes to `path` (built once per body)."""
        return (
            f"POST {path} HTTP/1.1\r\nHost: {self.netloc}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {length}\r\n\r\n"
        ).encode("latin-1")

    def _connect(self) -> gevent.socket.socket:
        sock = gevent.socket.create_connection((self.host, self.port), timeout=self.timeout_s)
        sock.setsockopt(gevent.socket.IPPROTO_TCP, gevent.socket.TCP_NODELAY, 1)
        if self._context is not None:
            sock = self._context.wrap_socket(sock, server_hostname=self.host)
        self._buffer.clear()
        self.opened += 1
        self._last_used = monotonic()
        return sock

    def ensure_open(self) -> None:
        """Before a request, outside its timing: open the connection, or reopen one the server
        closed while it idled (on an idle keep-alive connection anything readable is the
        server's close, or its TLS close_notify). Connect errors propagate."""
        sock = self._sock
        if sock is not None:
            if monotonic() - self._last_used < IDLE_CHECK_S:
                return
            readable, _, _ = gevent.select.select([sock], [], [], 0)
            if not readable:
                self._last_used = monotonic()
                return
            self.close()
        self._sock = self._connect()

    def request(self, message: bytes) -> HttpReply:
        """Send a complete request (head + body) and read the whole answer."""
        if self._sock is None:
            self._sock = self._connect()
        sock = self._sock
        try:
            with gevent.Timeout(self.timeout_s, TimeoutError("no complete answer in time")):
                sock.sendall(message)
                reply = self._read(sock)
        except BaseException:
            self.close()  # a half-read answer would poison the next request
            raise
        self._last_used = monotonic()
        return reply

    def _fill(self, sock: gevent.socket.socket) -> None:
        chunk = sock.recv(65536)
        if not chunk:
            raise HttpResponseError("connection closed before a response")
        self._buffer.extend(chunk)

    def _read(self, sock: gevent.socket.socket) -> HttpReply:
        buffer = self._buffer
        while (end := buffer.find(b"\r\n\r\n")) < 0:
            self._fill(sock)
        head = bytes(buffer[: end + 2])
        if not head.startswith(b"HTTP/1."):
            raise HttpResponseError(f"not an HTTP response: {head[:60]!r}")
        status = int(head[9:12])
        del buffer[: end + 4]
        match = _LENGTH.search(head)
        if match is not None:
            size = int(match.group(1))
            while len(buffer) < size:
                self._fill(sock)
            body = bytes(buffer[:size])
            del buffer[:size]
        elif _CHUNKED.search(head):
            body = self._chunked(sock)
        else:
            raise HttpResponseError("response without Content-Length or chunked encoding")
        if _CLOSE.search(head):
            self.close()
        timing = _TIMING.search(head)
        server = parse_server_timing(timing.group(1).decode("latin-1")) if timing else None
        return HttpReply(status, body, round(server * 1e6) if server is not None else -1)

    def _chunked(self, sock: gevent.socket.socket) -> bytes:
        buffer, parts = self._buffer, []
        while True:
            while (eol := buffer.find(b"\r\n")) < 0:
                self._fill(sock)
            size = int(bytes(buffer[:eol]).split(b";")[0], 16)
            del buffer[: eol + 2]
            while len(buffer) < size + 2:
                self._fill(sock)
            parts.append(bytes(buffer[:size]))
            del buffer[: size + 2]
            if size == 0:
                return b"".join(parts)

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None
        self._buffer.clear()
