"""PROTOTYPE, measured against `h2grpc`: unary gRPC calls on the `h2` package (python-hyper).

The same gevent socket, request bytes and header block as `h2grpc.Channel`, with `h2`'s
`H2Connection` as the HTTP/2 state machine and flow control. One call at a time per channel
(the `per-user` channel policy, which calibration and the sweep use). Selected in a Locust
process by `SERVINGBENCH_PROTOCOL_CLIENT=library`.
"""

from __future__ import annotations

import struct
from typing import Any

import gevent
import gevent.socket
from h2.config import H2Configuration
from h2.connection import H2Connection
from h2.events import (
    ConnectionTerminated,
    DataReceived,
    ResponseReceived,
    StreamEnded,
    StreamReset,
    TrailersReceived,
)
from h2.exceptions import ProtocolError
from h2.settings import SettingCodes, Settings

from servingbench.loadgen.h2grpc import RpcError, StatusCode, _parse_target, _timeout_value

__all__ = ["LibraryChannel"]

_PREFIX = struct.Struct(">BL")
_WINDOW = 16 * 1024 * 1024
_CONFIG = H2Configuration(
    client_side=True,
    header_encoding=None,
    validate_outbound_headers=False,
    normalize_outbound_headers=False,
    validate_inbound_headers=False,
    normalize_inbound_headers=False,
)


class LibraryChannel:
    """`h2grpc.Channel`'s surface as `GrpcUser` uses it, on `h2.connection.H2Connection`."""

    def __init__(self, target: str, root_certificates: str | None = None) -> None:
        self.host, self.port, tls = _parse_target(target)
        if tls:
            raise ValueError("the h2 prototype speaks plaintext only")
        self.authority = f"{self.host}:{self.port}".encode()
        self._sock: Any = None
        self._conn: H2Connection | None = None
        self.opened = 0

    def unary_unary(self, method: str) -> Any:
        base = [
            (b":method", b"POST"),
            (b":scheme", b"http"),
            (b":path", method.encode()),
            (b":authority", self.authority),
            (b"content-type", b"application/grpc"),
            (b"te", b"trailers"),
            (b"user-agent", b"servingbench-h2lib"),
        ]

        def call(body: bytes, timeout: float) -> bytes:
            return self._call(base + [(b"grpc-timeout", _timeout_value(timeout))], body, timeout)

        return call

    def connection(self, deadline: float | None) -> None:
        if self._conn is None:
            self._connect()

    def _connect(self) -> None:
        sock = gevent.socket.create_connection((self.host, self.port), timeout=10.0)
        sock.setsockopt(gevent.socket.IPPROTO_TCP, gevent.socket.TCP_NODELAY, 1)
        conn = H2Connection(config=_CONFIG)
        conn.local_settings = Settings(  # sent as they are in the preface's SETTINGS
            client=True,
            initial_values={
                SettingCodes.HEADER_TABLE_SIZE: 0,
                SettingCodes.ENABLE_PUSH: 0,
                SettingCodes.INITIAL_WINDOW_SIZE: _WINDOW,
                SettingCodes.MAX_HEADER_LIST_SIZE: _WINDOW,
            },
        )
        conn.initiate_connection()
        conn.increment_flow_control_window(_WINDOW - 65_535)
        sock.sendall(conn.data_to_send())
        self._sock, self._conn = sock, conn
        self.opened += 1

    def _call(self, headers: list[tuple[bytes, bytes]], body: bytes, timeout: float) -> bytes:
        if self._conn is None:
            self._connect()
        conn, sock = self._conn, self._sock
        assert conn is not None
        try:
            with gevent.Timeout(timeout, TimeoutError("deadline")):
                return self._exchange(conn, sock, headers, body)
        except TimeoutError:
            self.close()
            raise RpcError(StatusCode.DEADLINE_EXCEEDED, "Deadline Exceeded") from None
        except (OSError, ProtocolError) as exc:
            self.close()
            raise RpcError(StatusCode.UNAVAILABLE, f"connection error: {exc!r}") from None

    def _exchange(
        self, conn: H2Connection, sock: Any, headers: list[tuple[bytes, bytes]], body: bytes
    ) -> bytes:
        stream_id = conn.get_next_available_stream_id()
        conn.send_headers(stream_id, headers)
        message = _PREFIX.pack(0, len(body)) + body
        view = memoryview(message)
        while True:  # within the peer's windows and frame size
            allowed = min(conn.local_flow_control_window(stream_id), conn.max_outbound_frame_size)
            piece, view = view[:allowed], view[allowed:]
            conn.send_data(stream_id, bytes(piece), end_stream=not view)
            if not view:
                break
            sock.sendall(conn.data_to_send())
            while conn.local_flow_control_window(stream_id) <= 0:
                self._receive(conn, sock, stream_id, [], {})
        sock.sendall(conn.data_to_send())
        chunks: list[bytes] = []
        state: dict[str, Any] = {}
        while "ended" not in state:
            self._receive(conn, sock, stream_id, chunks, state)
        trailers = state.get("trailers") or state.get("headers") or {}
        status = int(trailers.get(b"grpc-status", b"2"))
        if status != 0:
            message_text = trailers.get(b"grpc-message", b"").decode("utf-8", "replace")
            raise RpcError(StatusCode(status), message_text)
        data = b"".join(chunks)
        if len(data) < 5 or len(data) != 5 + _PREFIX.unpack_from(data)[1]:
            raise RpcError(StatusCode.INTERNAL, f"bad message framing ({len(data)} bytes)")
        return data[5:]

    @staticmethod
    def _receive(
        conn: H2Connection,
        sock: Any,
        stream_id: int,
        chunks: list[bytes],
        state: dict[str, Any],
    ) -> None:
        data = sock.recv(262_144)
        if not data:
            raise OSError("connection closed by the server")
        for event in conn.receive_data(data):
            if isinstance(event, DataReceived):
                if event.stream_id == stream_id:
                    chunks.append(event.data)
                conn.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
            elif isinstance(event, ResponseReceived):
                state["headers"] = dict(event.headers)
            elif isinstance(event, TrailersReceived):
                state["trailers"] = dict(event.headers)
            elif isinstance(event, StreamEnded) and event.stream_id == stream_id:
                state["ended"] = True
            elif isinstance(event, StreamReset) and event.stream_id == stream_id:
                raise RpcError(StatusCode.INTERNAL, f"stream reset ({event.error_code})")
            elif isinstance(event, ConnectionTerminated):
                raise OSError(f"GOAWAY ({event.error_code})")
        out = conn.data_to_send()
        if out:
            sock.sendall(out)

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
        self._sock = self._conn = None
