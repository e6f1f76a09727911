"""Unary gRPC calls over HTTP/2 on gevent sockets: the load generator's gRPC transport.

Why not grpcio: under `init_gevent()` every blocking call waits for its completion through
gevent's thread pool while grpc-core's own I/O threads read the socket, four context switches a
call; profiled, that hop and grpc-core's call setup were most of the generator's CPU, and the
gRPC user added several times REST's latency. Here every call runs in the calling greenlet on a
cooperative socket: a send, a receive and the hub's poll (figures in docs/measured.md).

    channel = Channel("127.0.0.1:8081")                 # or "grpcs://host:443"
    infer = channel.unary_unary("/inference.GRPCInferenceService/ModelInfer")
    reply: bytes = infer(request_bytes, timeout=5.0)    # raises RpcError(code, details)
    channel.close()

What it does (and does not):
- bytes in, bytes out: serialize and parse messages yourself (as `GrpcUser` already does);
- one HTTP/2 connection per `Channel`, opened lazily and reopened after a failure, a GOAWAY or
  when stream ids run out; calls from several greenlets on one channel are multiplexed as
  concurrent streams (the greenlet that waits first reads for everyone: no reader greenlet);
- HTTP/2: connection preface, SETTINGS (push off, header table size 0, 16 MiB windows) and their
  ACKs, PING ACKs (grpc-core's BDP pings), WINDOW_UPDATE both ways, RST_STREAM, GOAWAY,
  CONTINUATION, padding; request headers are a precomputed HPACK block (static table and
  literals, never the dynamic table); response headers go through `hpack.Decoder` (Huffman,
  dynamic table) with a memo of whole blocks once the server's table is empty and sized 0;
- gRPC: `grpc-timeout` from the call's timeout, status from trailers (`grpc-status`,
  percent-decoded `grpc-message`), trailers-only responses, HTTP status mapping when there is
  no grpc-status, length-prefixed message checks; no call metadata (the load sends none and
  reads none), no compression (none is advertised, so servers send identity), no retries
  beyond gRPC's transparent one, no load balancing, one address;
- errors are `RpcError` with `code()` (a `StatusCode` named as grpcio's) and `details()`: a
  missed deadline is DEADLINE_EXCEEDED (the stream is reset with CANCEL), a refused, reset or
  closed connection is UNAVAILABLE, a protocol violation INTERNAL; after a failed connect,
  calls fail fast with UNAVAILABLE during a short exponential backoff, as grpcio does;
- TLS: `gevent.ssl` with ALPN `h2` and an optional CA bundle.

Why not the `h2` package (python-hyper) for the HTTP/2 part: measured, it gave 41 % of this
client's req/s per core and added 0.3 to 0.9 ms at one user (docs: "The protocol clients");
the tests use it as the server's side instead (`test_h2grpc_h2peer.py`).
"""

from __future__ import annotations

import contextlib
import enum
import ssl as _stdlib_ssl
import struct
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import unquote_to_bytes, urlsplit

import gevent
import gevent.event
import gevent.lock
import gevent.socket
import gevent.ssl
from hpack import Decoder
from hpack.exceptions import HPACKError

__all__ = ["Channel", "RpcError", "StatusCode", "UnaryUnary"]

_monotonic = time.monotonic


class StatusCode(enum.IntEnum):
    """gRPC status codes (same names and values as `grpc.StatusCode`)."""

    OK = 0
    CANCELLED = 1
    UNKNOWN = 2
    INVALID_ARGUMENT = 3
    DEADLINE_EXCEEDED = 4
    NOT_FOUND = 5
    ALREADY_EXISTS = 6
    PERMISSION_DENIED = 7
    RESOURCE_EXHAUSTED = 8
    FAILED_PRECONDITION = 9
    ABORTED = 10
    OUT_OF_RANGE = 11
    UNIMPLEMENTED = 12
    INTERNAL = 13
    UNAVAILABLE = 14
    DATA_LOSS = 15
    UNAUTHENTICATED = 16


class RpcError(Exception):
    """A call that did not end with status OK; mirrors the accessors of `grpc.RpcError` calls."""

    def __init__(self, code: StatusCode, details: str = "") -> None:
        super().__init__(code, details)
        self._code = code
        self._details = details

    def code(self) -> StatusCode:
        return self._code

    def details(self) -> str:
        return self._details

    def __str__(self) -> str:
        return f"{self._code.name}: {self._details}" if self._details else self._code.name

    def __repr__(self) -> str:
        return f"RpcError({self._code.name}, {self._details!r})"


# --- HTTP/2 constants (RFC 9113) -------------------------------------------------------------

_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
_DATA, _HEADERS, _PRIORITY, _RST_STREAM, _SETTINGS = 0x0, 0x1, 0x2, 0x3, 0x4
_PUSH_PROMISE, _PING, _GOAWAY, _WINDOW_UPDATE, _CONTINUATION = 0x5, 0x6, 0x7, 0x8, 0x9
_END_STREAM, _ACK, _END_HEADERS, _PADDED, _PRIORITY_FLAG = 0x1, 0x1, 0x4, 0x8, 0x20
_S_HEADER_TABLE_SIZE, _S_ENABLE_PUSH, _S_MAX_CONCURRENT_STREAMS = 0x1, 0x2, 0x3
_S_INITIAL_WINDOW_SIZE, _S_MAX_FRAME_SIZE, _S_MAX_HEADER_LIST_SIZE = 0x4, 0x5, 0x6
_NO_ERROR, _PROTOCOL_ERROR, _INTERNAL_ERROR, _FLOW_CONTROL_ERROR = 0x0, 0x1, 0x2, 0x3
_FRAME_SIZE_ERROR, _REFUSED_STREAM, _CANCEL = 0x6, 0x7, 0x8
_ENHANCE_YOUR_CALM, _INADEQUATE_SECURITY = 0xB, 0xC

_USER_AGENT = b"servingbench-h2grpc"
_CONNECT_TIMEOUT_S = 20.0
_MAX_HEADER_LIST = 16 * 1024 * 1024
_IDLE_POLL_S = 1.0  # a connection unread for this long is polled before reuse
_DEFAULT_WINDOW = 65_535
_DEFAULT_MAX_FRAME = 16_384
_MAX_WINDOW = 2**31 - 1
_MAX_STREAM_ID = 2**31 - 1

# frame header: (length << 8 | type) as 4 bytes, flags, stream id
_FRAME = struct.Struct(">LBL")
_U32 = struct.Struct(">L")
_SETTING = struct.Struct(">HL")
_GOAWAY_HEAD = struct.Struct(">LL")

# what an RST_STREAM error code means as a gRPC status (gRPC's PROTOCOL-HTTP2.md)
_RST_STATUS = {
    _NO_ERROR: StatusCode.INTERNAL,
    _REFUSED_STREAM: StatusCode.UNAVAILABLE,
    _CANCEL: StatusCode.CANCELLED,
    _ENHANCE_YOUR_CALM: StatusCode.RESOURCE_EXHAUSTED,
    _INADEQUATE_SECURITY: StatusCode.PERMISSION_DENIED,
}
# HTTP status without grpc-status (gRPC's http-grpc-status-mapping.md)
_HTTP_STATUS = {
    400: StatusCode.INTERNAL,
    401: StatusCode.UNAUTHENTICATED,
    403: StatusCode.PERMISSION_DENIED,
    404: StatusCode.UNIMPLEMENTED,
    429: StatusCode.UNAVAILABLE,
    502: StatusCode.UNAVAILABLE,
    503: StatusCode.UNAVAILABLE,
    504: StatusCode.UNAVAILABLE,
}


_FIXED_SIZES: dict[int, Callable[[int], bool]] = {
    _WINDOW_UPDATE: lambda n: n == 4,
    _RST_STREAM: lambda n: n == 4,
    _GOAWAY: lambda n: n >= 8,
}


def _frame(ftype: int, flags: int, stream_id: int, payload: bytes = b"") -> bytes:
    return _FRAME.pack(len(payload) << 8 | ftype, flags, stream_id) + payload


# --- HPACK encoding of request headers (RFC 7541): static table and literals only ------------

_STATIC_METHOD_POST = b"\x83"
_STATIC_SCHEME = {False: b"\x86", True: b"\x87"}  # :scheme http / https
_NAME_PATH, _NAME_AUTHORITY, _NAME_CONTENT_TYPE, _NAME_USER_AGENT = 4, 1, 31, 58


def _hpack_int(value: int, prefix_bits: int, first: int) -> bytes:
    limit = (1 << prefix_bits) - 1
    if value < limit:
        return bytes((first | value,))
    out = bytearray((first | limit,))
    value -= limit
    while value >= 128:
        out.append(value & 0x7F | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _hpack_str(data: bytes) -> bytes:
    return _hpack_int(len(data), 7, 0x00) + data  # no Huffman: cheaper, always valid


def _literal(name: int | bytes, value: bytes) -> bytes:
    """Literal header field without indexing, with an indexed (static) or literal name."""
    if isinstance(name, int):
        return _hpack_int(name, 4, 0x00) + _hpack_str(value)
    return b"\x00" + _hpack_str(name) + _hpack_str(value)


def _timeout_value(seconds: float) -> bytes:
    """`grpc-timeout` (at most 8 digits): microseconds up to 100 s, then coarser units."""
    micros = max(1, int(seconds * 1e6 + 0.5))
    for unit, scale in ((b"u", 1), (b"m", 1_000), (b"S", 1_000_000), (b"M", 60_000_000)):
        count = -(-micros // scale)
        if count < 100_000_000:
            return str(count).encode() + unit
    return b"99999999H"


def _timeout_field(seconds: float) -> bytes:
    return _literal(b"grpc-timeout", _timeout_value(seconds))


# --- response header decoding ----------------------------------------------------------------


class _Headers:
    """One decoded header block, interpreted once (the memo keeps these)."""

    __slots__ = ("content_type", "grpc_message", "grpc_status", "http_status")

    def __init__(self, fields: list[tuple[bytes, bytes]]) -> None:
        self.http_status: int | None = None
        self.grpc_status: int | None = None
        self.grpc_message = ""
        self.content_type = b""
        for name, value in fields:
            if name == b":status":
                self.http_status = int(value)
            elif name == b"grpc-status":
                self.grpc_status = int(value)
            elif name == b"grpc-message":
                self.grpc_message = unquote_to_bytes(value).decode("utf-8", "replace")
            elif name == b"content-type":
                self.content_type = value


class _ConnectionError(Exception):
    """The connection is unusable: every stream on it fails with `code`."""

    def __init__(self, code: StatusCode, details: str, h2_error: int | None = None) -> None:
        super().__init__(details)
        self.code = code
        self.details = details
        self.h2_error = h2_error


class _DeadlineExceededError(Exception):
    pass


# --- one stream ------------------------------------------------------------------------------


class _Stream:
    __slots__ = (
        "chunks",
        "done",
        "error",
        "headers",
        "id",
        "parked",
        "received",
        "retryable",
        "send_window",
        "trailers",
        "unacked",
    )

    def __init__(self, stream_id: int, send_window: int) -> None:
        self.id = stream_id
        self.send_window = send_window
        self.chunks: list[bytes] = []
        self.received = 0
        self.unacked = 0
        self.headers: _Headers | None = None
        self.trailers: _Headers | None = None
        self.error: RpcError | None = None
        self.done = False
        self.parked: gevent.event.Event | None = None
        self.retryable = False  # the server did not process it (GOAWAY / REFUSED_STREAM)

    def fail(self, error: RpcError) -> None:
        if not self.done:
            self.error = error
            self.done = True
            if self.parked is not None:
                self.parked.set()

    def reply(self) -> bytes:
        """The message of a finished stream, or the RpcError its status makes."""
        if self.error is not None:
            raise self.error
        trailers = self.trailers
        headers = self.headers
        assert trailers is not None
        status = trailers.grpc_status
        if status != 0 or headers is None:  # trailers-only, an error, or no grpc-status at all
            raise self._status_error(headers or trailers, trailers)
        chunks = self.chunks
        data = chunks[0] if len(chunks) == 1 else b"".join(chunks)
        if len(data) < 5 or len(data) != 5 + _U32.unpack_from(data, 1)[0]:
            raise RpcError(
                StatusCode.INTERNAL, f"expected one length-prefixed message, got {len(data)} bytes"
            )
        if data[0] != 0:
            raise RpcError(StatusCode.INTERNAL, "compressed response message (not negotiated)")
        return bytes(data[5:])

    @staticmethod
    def _status_error(headers: _Headers, trailers: _Headers) -> RpcError:
        status = trailers.grpc_status
        if status is None:
            http = headers.http_status
            if http is not None and http != 200:
                code = _HTTP_STATUS.get(http, StatusCode.UNKNOWN)
                return RpcError(code, f"HTTP status {http} without grpc-status")
            return RpcError(StatusCode.INTERNAL, "response without grpc-status")
        try:
            code = StatusCode(status)
        except ValueError:
            code = StatusCode.UNKNOWN
        return RpcError(code, trailers.grpc_message)


# --- one HTTP/2 connection -------------------------------------------------------------------


class _Connection:
    """One socket and its streams. Not thread-safe: one gevent hub; any number of greenlets."""

    def __init__(self, sock: Any, window: int, max_header_list: int) -> None:
        self.sock = sock
        self.closed = False
        self.draining = False  # GOAWAY received or ids exhausted: no new streams
        self.close_reason: _ConnectionError | None = None
        self.next_id = 1
        self.streams: dict[int, _Stream] = {}
        self._window = window
        self._rbuf = b""
        self._out: list[bytes] = []
        self._reading = False
        self.last_read = _monotonic()
        self._parked: dict[int, _Stream] = {}
        self._wlock = gevent.lock.Semaphore()
        self._timeout: float | None = -1.0  # what the socket is set to (-1: unknown)
        # We advertise a header table of 0, but accept servers that never send the size update
        # (allowed if they never index): the decoder keeps hpack's lenient default limit.
        self._decoder = Decoder(max_header_list_size=max_header_list)
        table = getattr(self._decoder, "header_table", None)
        has_attrs = hasattr(table, "dynamic_entries") and hasattr(table, "maxsize")
        self._table = table if has_attrs else None
        self._memo: dict[bytes, tuple[int, _Headers]] = {}
        self._continuation: tuple[int, int, list[bytes]] | None = None
        # what the peer allows us to send
        self._peer_initial_window = _DEFAULT_WINDOW
        self._peer_max_frame = _DEFAULT_MAX_FRAME
        self._peer_max_streams = 2**31
        self._send_window = _DEFAULT_WINDOW
        self._window_waiters: list[_Stream] = []
        # what we allow the peer: connection window replenished at half
        self._conn_unacked = 0
        self._settings_acked = False
        settings = b"".join(
            _SETTING.pack(k, v)
            for k, v in (
                (_S_HEADER_TABLE_SIZE, 0),
                (_S_ENABLE_PUSH, 0),
                (_S_INITIAL_WINDOW_SIZE, window),
                (_S_MAX_FRAME_SIZE, _DEFAULT_MAX_FRAME),
                (_S_MAX_HEADER_LIST_SIZE, max_header_list),
            )
        )
        preface = _PREFACE + _frame(_SETTINGS, 0, 0, settings)
        if window > _DEFAULT_WINDOW:  # an increment of 0 is a PROTOCOL_ERROR (RFC 9113 6.9)
            preface += _frame(_WINDOW_UPDATE, 0, 0, _U32.pack(window - _DEFAULT_WINDOW))
        self._write(preface, None)

    # -- calls --

    def unary(self, block: bytes, body: bytes, deadline: float | None) -> _Stream:
        """Send one request on a new stream and wait for its end; returns the finished stream."""
        if deadline is not None and deadline <= _monotonic():
            raise RpcError(StatusCode.DEADLINE_EXCEEDED, "Deadline Exceeded")
        stream = _Stream(0, self._peer_initial_window)
        try:
            if len(self.streams) >= self._peer_max_streams:
                self._wait_for(lambda: len(self.streams) < self._peer_max_streams, None, deadline)
            size = 5 + len(body)
            with self._wlock:  # stream ids must reach the wire in increasing order
                if self.closed:
                    raise self._closed_error()
                stream.id = stream_id = self.next_id
                self.next_id = stream_id + 2
                if self.next_id > _MAX_STREAM_ID:
                    self.draining = True
                self.streams[stream_id] = stream
                stream.send_window = self._peer_initial_window
                max_frame = self._peer_max_frame
                fast = (
                    size <= self._send_window
                    and size <= stream.send_window
                    and size <= max_frame
                    and len(block) <= max_frame
                )
                if fast:
                    self._send_window -= size
                    stream.send_window -= size
                    self._send(
                        b"".join(
                            (
                                _FRAME.pack(len(block) << 8 | _HEADERS, _END_HEADERS, stream_id),
                                block,
                                _FRAME.pack(size << 8 | _DATA, _END_STREAM, stream_id),
                                b"\x00",
                                _U32.pack(len(body)),
                                body,
                            )
                        ),
                        deadline,
                    )
                else:
                    self._send(self._header_frames(stream_id, block, max_frame), deadline)
            if not fast:
                self._send_data(stream, b"\x00" + _U32.pack(len(body)) + body, deadline)
            if not stream.done:
                self._wait_for(None, stream, deadline)
        except _DeadlineExceededError:
            self._cancel(stream)
            raise RpcError(StatusCode.DEADLINE_EXCEEDED, "Deadline Exceeded") from None
        except BaseException:  # GreenletExit, KeyboardInterrupt...: leave no open stream behind
            if not stream.done:
                self._cancel(stream)
            raise
        return stream

    @staticmethod
    def _header_frames(stream_id: int, block: bytes, max_frame: int) -> bytes:
        """HEADERS, then CONTINUATION frames if the block is larger than a frame."""
        pieces = [block[i : i + max_frame] for i in range(0, len(block), max_frame)] or [b""]
        frames = []
        for i, piece in enumerate(pieces):
            flags = _END_HEADERS if i == len(pieces) - 1 else 0
            frames.append(_frame(_HEADERS if i == 0 else _CONTINUATION, flags, stream_id, piece))
        return b"".join(frames)

    def _send_data(self, stream: _Stream, message: bytes, deadline: float | None) -> None:
        """DATA frames within the peer's frame size and flow-control windows."""
        view = memoryview(message)
        while view:
            allowed = min(self._send_window, stream.send_window, self._peer_max_frame)
            if allowed <= 0:
                self._window_waiters.append(stream)
                try:
                    self._wait_for(
                        lambda: stream.done or min(self._send_window, stream.send_window) > 0,
                        stream,
                        deadline,
                    )
                finally:
                    self._window_waiters.remove(stream)
                if stream.done:  # the server ended the stream early (an error status)
                    return
                continue
            piece = view[:allowed]
            view = view[allowed:]
            self._send_window -= len(piece)
            stream.send_window -= len(piece)
            flags = 0 if view else _END_STREAM
            self._write(_FRAME.pack(len(piece) << 8 | _DATA, flags, stream.id) + piece, deadline)

    def _cancel(self, stream: _Stream) -> None:
        """Forget a stream the caller gave up on; tell the server (RST_STREAM CANCEL)."""
        stream.done = True
        if stream.id and self.streams.pop(stream.id, None) is not None and not self.closed:
            self._out.append(_frame(_RST_STREAM, 0, stream.id, _U32.pack(_CANCEL)))
            with contextlib.suppress(_DeadlineExceededError):  # none given: cannot expire
                self._flush(None)
        self._maybe_close_drained()

    # -- waiting and reading --

    def _wait_for(
        self, ready: Callable[[], bool] | None, stream: _Stream | None, deadline: float | None
    ) -> None:
        """Until `ready()` (or, with `ready` None, until `stream` is done): read or park.

        Only one greenlet reads at a time; the others park on their stream's event and are
        woken when their stream ends, when a WINDOW_UPDATE arrives, or to take over reading.
        """
        while not (stream.done if ready is None else ready()):  # type: ignore[union-attr]
            if self.closed:
                if stream is not None and not stream.done and self.close_reason is not None:
                    reason = self.close_reason
                    stream.fail(RpcError(reason.code, reason.details))
                if stream is None and self.close_reason is not None:
                    raise RpcError(self.close_reason.code, self.close_reason.details)
                return
            if self._reading:
                self._park(stream, deadline)
                continue
            self._reading = True
            try:
                self._read(deadline)
            finally:
                self._reading = False
                if self._parked:  # hand reading over to one greenlet that still waits
                    for waiting in self._parked.values():
                        if not waiting.done and waiting.parked is not None:
                            waiting.parked.set()
                            break

    def _park(self, stream: _Stream | None, deadline: float | None) -> None:
        if stream is None:  # only `unary` waiting for a stream slot: poll gently
            gevent.sleep(0.001)
            if deadline is not None and _monotonic() >= deadline:
                raise _DeadlineExceededError
            return
        event = stream.parked
        if event is None:
            event = stream.parked = gevent.event.Event()
        else:
            event.clear()
        self._parked[stream.id] = stream
        try:
            if deadline is None:
                event.wait()
            elif not event.wait(max(0.0, deadline - _monotonic())):
                raise _DeadlineExceededError
        finally:
            self._parked.pop(stream.id, None)

    def _read(self, deadline: float | None) -> None:
        """One receive, then every whole frame in the buffer; control replies are flushed."""
        sock = self.sock
        if deadline is None:
            if self._timeout is not None:
                sock.settimeout(None)
                self._timeout = None
        else:
            remaining = deadline - _monotonic()
            if remaining <= 0:
                raise _DeadlineExceededError
            sock.settimeout(remaining)
            self._timeout = remaining
        try:
            data = sock.recv(262_144)
        except TimeoutError:
            raise _DeadlineExceededError from None
        except (OSError, ValueError) as exc:  # reset, aborted, SSL errors; closed file
            self._abort(_ConnectionError(StatusCode.UNAVAILABLE, f"connection error: {exc!r}"))
            return
        self._ingest(data, deadline)

    def _ingest(self, data: bytes, deadline: float | None) -> None:
        """Handle received bytes (b"": the server closed the connection)."""
        self.last_read = _monotonic()
        if not data:
            self._abort(_ConnectionError(StatusCode.UNAVAILABLE, "connection closed by the server"))
            return
        buf = self._rbuf + data if self._rbuf else data
        try:
            pos = self._frames(buf)
        except _ConnectionError as exc:
            self._abort(exc)
            return
        self._rbuf = buf[pos:] if pos < len(buf) else b""
        if self._out and not self.closed:
            self._flush(deadline)

    def poll_idle(self) -> None:
        """On a connection with nothing in flight: handle, without blocking, what the server sent
        while nobody was reading (PINGs to ack, SETTINGS, a GOAWAY, the connection's close)."""
        if self._reading or self.streams or self.closed:
            return
        sock = self.sock
        while not self.closed:
            if self._timeout != 0.0:  # again after each pass: a flush may have reset it
                sock.settimeout(0.0)
                self._timeout = 0.0
            try:
                data = sock.recv(262_144)
            except (BlockingIOError, InterruptedError, _stdlib_ssl.SSLWantReadError):
                self.last_read = _monotonic()
                return
            except (OSError, ValueError) as exc:
                self._abort(_ConnectionError(StatusCode.UNAVAILABLE, f"connection error: {exc!r}"))
                return
            self._ingest(data, None)

    def _frames(self, buf: bytes) -> int:  # noqa: PLR0915 - one dispatch over frame types
        """Handle every whole frame of `buf`; returns where the first partial one starts."""
        unpack = _FRAME.unpack_from
        streams = self.streams
        end_buf = len(buf)
        pos = 0
        while end_buf - pos >= 9:
            length_type, flags, stream_id = unpack(buf, pos)
            length = length_type >> 8
            if length > _DEFAULT_MAX_FRAME:
                raise _ConnectionError(
                    StatusCode.INTERNAL, f"frame of {length} bytes > 16384", _FRAME_SIZE_ERROR
                )
            end = pos + 9 + length
            if end > end_buf:
                break
            ftype = length_type & 0xFF
            stream_id &= 0x7FFFFFFF
            if self._continuation is not None and ftype != _CONTINUATION:
                raise _ConnectionError(
                    StatusCode.INTERNAL, "expected CONTINUATION", _PROTOCOL_ERROR
                )
            if ftype == _DATA:
                self._on_data(streams.get(stream_id), flags, buf[pos + 9 : end], length)
            elif ftype == _HEADERS:
                payload = buf[pos + 9 : end]
                if flags & _PADDED:
                    payload = payload[1 : len(payload) - payload[0]]
                if flags & _PRIORITY_FLAG:
                    payload = payload[5:]
                if flags & _END_HEADERS:
                    self._on_headers(stream_id, flags & _END_STREAM, payload)
                else:
                    self._continuation = (stream_id, flags, [payload])
            elif ftype == _CONTINUATION:
                if self._continuation is None or self._continuation[0] != stream_id:
                    raise _ConnectionError(
                        StatusCode.INTERNAL, "unexpected CONTINUATION", _PROTOCOL_ERROR
                    )
                self._continuation[2].append(buf[pos + 9 : end])
                if flags & _END_HEADERS:
                    sid, first_flags, parts = self._continuation
                    self._continuation = None
                    self._on_headers(sid, first_flags & _END_STREAM, b"".join(parts))
            elif ftype == _SETTINGS:
                if stream_id != 0 or (flags & _ACK and length) or length % 6:
                    raise _ConnectionError(StatusCode.INTERNAL, "bad SETTINGS", _FRAME_SIZE_ERROR)
                if flags & _ACK:
                    self._settings_acked = True
                else:
                    self._on_settings(buf[pos + 9 : end])
            elif ftype == _PING:
                if length != 8:
                    raise _ConnectionError(StatusCode.INTERNAL, "bad PING", _FRAME_SIZE_ERROR)
                if not flags & _ACK:
                    self._out.append(_frame(_PING, _ACK, 0, buf[pos + 9 : end]))
            elif ftype in _FIXED_SIZES and not _FIXED_SIZES[ftype](length):
                raise _ConnectionError(
                    StatusCode.INTERNAL,
                    f"bad frame size {length} (type {ftype})",
                    _FRAME_SIZE_ERROR,
                )
            elif ftype == _WINDOW_UPDATE:
                self._on_window_update(stream_id, _U32.unpack_from(buf, pos + 9)[0] & 0x7FFFFFFF)
            elif ftype == _RST_STREAM:
                stream = streams.pop(stream_id, None)
                if stream is not None:
                    error = _U32.unpack_from(buf, pos + 9)[0]
                    stream.retryable = error == _REFUSED_STREAM
                    code = _RST_STATUS.get(error, StatusCode.INTERNAL)
                    stream.fail(
                        RpcError(code, f"stream reset by the server (HTTP/2 error {error})")
                    )
            elif ftype == _GOAWAY:
                last_id, error = _GOAWAY_HEAD.unpack_from(buf, pos + 9)
                self._on_goaway(last_id & 0x7FFFFFFF, error, buf[pos + 17 : end])
            elif ftype == _PUSH_PROMISE:
                raise _ConnectionError(
                    StatusCode.INTERNAL, "PUSH_PROMISE with push disabled", _PROTOCOL_ERROR
                )
            # PRIORITY and unknown frame types are ignored (RFC 9113 section 5.5)
            pos = end
        return pos

    def _on_data(self, stream: _Stream | None, flags: int, payload: bytes, length: int) -> None:
        self._conn_unacked += length
        if self._conn_unacked >= self._window // 2:
            self._out.append(_frame(_WINDOW_UPDATE, 0, 0, _U32.pack(self._conn_unacked)))
            self._conn_unacked = 0
        if stream is None:  # reset or cancelled: flow control counted, data dropped
            return
        if flags & _PADDED:
            payload = payload[1 : len(payload) - payload[0]]
        stream.chunks.append(payload)
        stream.received += length
        if stream.headers is None:
            error = RpcError(StatusCode.INTERNAL, "DATA before response headers")
            self._finish(stream, error, reset=not flags & _END_STREAM)
        elif flags & _END_STREAM:
            http = stream.headers.http_status
            if http != 200:
                code = _HTTP_STATUS.get(http or 0, StatusCode.UNKNOWN)
                error = RpcError(code, f"HTTP status {http} without grpc-status")
            else:
                error = RpcError(StatusCode.INTERNAL, "stream ended without trailers")
            self._finish(stream, error, reset=False)
        else:
            stream.unacked += length
            if stream.unacked >= self._window // 2:
                self._out.append(_frame(_WINDOW_UPDATE, 0, stream.id, _U32.pack(stream.unacked)))
                stream.unacked = 0

    def _on_headers(self, stream_id: int, end_stream: int, block: bytes) -> None:
        headers = self._decode(block)  # always: keeps the HPACK state in step
        stream = self.streams.get(stream_id)
        if stream is None:
            return
        if end_stream:
            stream.trailers = headers
            self._finish(stream, None)
        elif stream.headers is None:
            stream.headers = headers
            # a gRPC server answers 200 with its content type (other statuses end in trailers)
            grpc_type = headers.content_type.startswith(b"application/grpc")
            if headers.http_status == 200 and not grpc_type:
                error = RpcError(
                    StatusCode.UNKNOWN,
                    f"response content-type {headers.content_type!r}, not application/grpc",
                )
                self._finish(stream, error, reset=True)
        else:
            error = RpcError(StatusCode.INTERNAL, "HEADERS after the response headers")
            self._finish(stream, error, reset=True)

    def _finish(self, stream: _Stream, error: RpcError | None, reset: bool = False) -> None:
        if self.streams.pop(stream.id, None) is not None and reset:
            # the server may still be sending on it: tell it we are done with the stream
            self._out.append(_frame(_RST_STREAM, 0, stream.id, _U32.pack(_CANCEL)))
        if error is not None:
            stream.error = error
        stream.done = True
        if stream.parked is not None:
            stream.parked.set()
        self._maybe_close_drained()

    def _decode(self, block: bytes) -> _Headers:
        """Decode a header block; whole blocks are memoized while the dynamic table is empty.

        A block decoded with an empty table that leaves it empty and its size unchanged holds
        no references to, insertions into or resizes of the table: decoding it again, with the
        table still empty and as large, would give the same fields and change nothing.
        """
        table = self._table
        if table is None:  # an hpack without the attributes we read: no memo
            return self._decode_block(block)
        if not table.dynamic_entries:
            known = self._memo.get(block)
            if known is not None and known[0] == table.maxsize:
                return known[1]
            size = table.maxsize
            headers = self._decode_block(block)
            if not table.dynamic_entries and table.maxsize == size:
                if len(self._memo) >= 512:
                    self._memo.clear()
                self._memo[block] = (size, headers)
            return headers
        return self._decode_block(block)

    def _decode_block(self, block: bytes) -> _Headers:
        try:
            fields = self._decoder.decode(block, raw=True)
        except HPACKError as exc:
            raise _ConnectionError(StatusCode.INTERNAL, f"HPACK: {exc}", 0x9) from None
        return _Headers(fields)  # type: ignore[arg-type]

    def _on_settings(self, payload: bytes) -> None:
        for offset in range(0, len(payload), 6):
            key, value = _SETTING.unpack_from(payload, offset)
            if key == _S_INITIAL_WINDOW_SIZE:
                if value > _MAX_WINDOW:
                    raise _ConnectionError(
                        StatusCode.INTERNAL, "window too large", _FLOW_CONTROL_ERROR
                    )
                delta = value - self._peer_initial_window
                self._peer_initial_window = value
                for stream in self.streams.values():
                    stream.send_window += delta
                if delta > 0:
                    self._wake_window_waiters()
            elif key == _S_MAX_FRAME_SIZE:
                if not _DEFAULT_MAX_FRAME <= value <= 2**24 - 1:
                    raise _ConnectionError(
                        StatusCode.INTERNAL, "bad MAX_FRAME_SIZE", _PROTOCOL_ERROR
                    )
                self._peer_max_frame = value
            elif key == _S_MAX_CONCURRENT_STREAMS:
                self._peer_max_streams = value
            # HEADER_TABLE_SIZE: our encoder never uses the dynamic table; others: nothing to do
        self._out.append(_frame(_SETTINGS, _ACK, 0))

    def _on_window_update(self, stream_id: int, increment: int) -> None:
        if stream_id == 0:
            self._send_window += increment
        elif (stream := self.streams.get(stream_id)) is not None:
            stream.send_window += increment
        self._wake_window_waiters()

    def _wake_window_waiters(self) -> None:
        for stream in self._window_waiters:
            if stream.parked is not None:
                stream.parked.set()

    def _on_goaway(self, last_id: int, error: int, debug: bytes) -> None:
        self.draining = True
        text = debug.decode("utf-8", "replace")
        for stream_id in [i for i in self.streams if i > last_id]:
            stream = self.streams.pop(stream_id)
            stream.retryable = True
            stream.fail(
                RpcError(StatusCode.UNAVAILABLE, f"GOAWAY (HTTP/2 error {error}) {text}".strip())
            )
        if error != _NO_ERROR and self.close_reason is None:
            self.close_reason = _ConnectionError(
                StatusCode.UNAVAILABLE, f"GOAWAY (HTTP/2 error {error}) {text}".strip()
            )
        self._maybe_close_drained()

    def _maybe_close_drained(self) -> None:
        if self.draining and not self.streams and not self.closed:
            self.close()

    # -- writing and closing --

    def _closed_error(self) -> RpcError:
        reason = self.close_reason
        return RpcError(StatusCode.UNAVAILABLE, reason.details if reason else "connection closed")

    def _write(self, data: bytes, deadline: float | None) -> None:
        with self._wlock:
            if self.closed:
                raise self._closed_error()
            self._send(data, deadline)

    def _send(self, data: bytes, deadline: float | None) -> None:
        """sendall under the write lock; a timeout mid-write makes the connection unusable."""
        sock = self.sock
        timeout = None if deadline is None else max(deadline - _monotonic(), 0.001)
        if timeout != self._timeout:
            sock.settimeout(timeout)
            self._timeout = timeout
        try:
            # send() first: gevent's sendall() arms a Timeout and asks for SO_SNDBUF every call
            if data and (sent := sock.send(data)) < len(data):
                sock.sendall(memoryview(data)[sent:])
            while self._out:  # control frames queued by the reader meanwhile
                out = b"".join(self._out)
                self._out.clear()
                sock.sendall(out)
        except TimeoutError:
            self._abort(_ConnectionError(StatusCode.UNAVAILABLE, "write timed out"))
            raise _DeadlineExceededError from None
        except (OSError, ValueError) as exc:
            self._abort(_ConnectionError(StatusCode.UNAVAILABLE, f"connection error: {exc!r}"))
            raise RpcError(StatusCode.UNAVAILABLE, f"connection error: {exc!r}") from None

    def _flush(self, deadline: float | None) -> None:
        """Send queued control frames; if a write is in progress, its writer sends them."""
        if not self._out or self.closed or self._wlock.locked():
            return  # never block the reader on the write lock (the writer may wait on TCP)
        with contextlib.suppress(RpcError):  # _abort has failed every stream with the reason
            self._write(b"", deadline)

    def _abort(self, reason: _ConnectionError) -> None:
        """Fail every stream with `reason` and close the socket (GOAWAY first if ours)."""
        if self.closed:
            return
        if self.close_reason is None:  # a GOAWAY's reason says more than the close after it
            self.close_reason = reason
        if reason.h2_error is not None:
            with contextlib.suppress(OSError, ValueError):
                self.sock.sendall(_frame(_GOAWAY, 0, 0, _GOAWAY_HEAD.pack(0, reason.h2_error)))
        self.close()

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        reason = self.close_reason
        error = RpcError(
            reason.code if reason else StatusCode.UNAVAILABLE,
            reason.details if reason else "connection closed",
        )
        streams = list(self.streams.values())
        self.streams.clear()
        for stream in streams:
            stream.fail(error)
        for stream in list(self._parked.values()):  # wake would-be readers: they see `closed`
            if stream.parked is not None:
                stream.parked.set()
        with contextlib.suppress(OSError):
            self.sock.close()


# --- channel and method ----------------------------------------------------------------------


class Channel:
    """A gRPC target reached over one HTTP/2 connection at a time (opened on first use).

    target: "host:port", "[v6]:port", "grpc://host:port" or "grpcs://host:port" (TLS).
    root_certificates: a CA bundle file for TLS (default: the system's). window: receive window
    per stream and for the connection (bytes). backoff: first and longest pause after a failed
    connect, during which calls fail fast.
    """

    def __init__(
        self,
        target: str,
        *,
        root_certificates: str | None = None,
        window: int = 16 * 1024 * 1024,
        backoff_initial: float = 0.1,
        backoff_max: float = 2.0,
    ) -> None:
        self.host, self.port, self.tls = _parse_target(target)
        self.authority = (
            f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"
        )
        self._ssl_context: _stdlib_ssl.SSLContext | None = None
        if self.tls:
            self._ssl_context = _client_context(root_certificates)
            self._ssl_context.set_alpn_protocols(["h2"])
        self._window = max(_DEFAULT_WINDOW, min(window, _MAX_WINDOW))
        self._backoff_initial = backoff_initial
        self._backoff_max = backoff_max
        self._backoff = 0.0
        self._retry_at = 0.0
        self._last_error = ""
        self._conn: _Connection | None = None
        self._closed = False
        self._connecting: gevent.event.AsyncResult | None = None
        self.opened = 0
        """Connections opened so far (the caller can tell one opened inside a call)."""

    def unary_unary(self, method: str) -> UnaryUnary:
        """A callable for `method` ("/package.Service/Method"): bytes in, bytes out."""
        return UnaryUnary(self, method)

    def close(self) -> None:
        """Close the connection; in-flight calls fail with UNAVAILABLE; later calls too."""
        self._closed = True
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def __enter__(self) -> Channel:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def header_block(self, method: str) -> bytes:
        """The HPACK block every call to `method` starts with (all but `grpc-timeout`)."""
        return b"".join(
            (
                _STATIC_METHOD_POST,
                _STATIC_SCHEME[bool(self.tls)],
                _literal(_NAME_PATH, method.encode("ascii")),
                _literal(_NAME_AUTHORITY, self.authority.encode("ascii")),
                _literal(_NAME_CONTENT_TYPE, b"application/grpc"),
                _literal(b"te", b"trailers"),
                _literal(_NAME_USER_AGENT, _USER_AGENT),
            )
        )

    def connection(self, deadline: float | None) -> _Connection:
        """The open connection, or a new one (fails fast during the reconnect backoff)."""
        conn = self._conn
        if conn is not None and not conn.closed and not conn.draining:
            if _monotonic() - conn.last_read < _IDLE_POLL_S:
                return conn
            conn.poll_idle()  # idle a while: a GOAWAY or a close may be waiting in the socket
            if not conn.closed and not conn.draining:
                return conn
        if self._closed:
            raise RpcError(StatusCode.CANCELLED, "channel closed")
        if self._connecting is not None:  # another greenlet is connecting: share its result
            timeout = None if deadline is None else max(0.0, deadline - _monotonic())
            try:
                return self._connecting.get(timeout=timeout)  # type: ignore[no-any-return]
            except gevent.Timeout:
                raise RpcError(StatusCode.DEADLINE_EXCEEDED, "Deadline Exceeded") from None
        now = _monotonic()
        if now < self._retry_at:
            raise RpcError(StatusCode.UNAVAILABLE, self._last_error)
        self._connecting = pending = gevent.event.AsyncResult()
        try:
            conn = self._connect(deadline)
        except RpcError as exc:
            pending.set_exception(exc)
            raise
        else:
            pending.set(conn)
            return conn
        finally:
            self._connecting = None

    def _connect(self, deadline: float | None) -> _Connection:
        timeout = _CONNECT_TIMEOUT_S
        if deadline is not None:
            timeout = min(timeout, deadline - _monotonic())
            if timeout <= 0:
                raise RpcError(StatusCode.DEADLINE_EXCEEDED, "Deadline Exceeded")
        sock = None
        try:
            sock = gevent.socket.create_connection((self.host, self.port), timeout=timeout)
            sock.setsockopt(gevent.socket.IPPROTO_TCP, gevent.socket.TCP_NODELAY, 1)
            if self._ssl_context is not None:
                sock = self._ssl_context.wrap_socket(sock, server_hostname=self.host)
                if sock.selected_alpn_protocol() != "h2":
                    raise _stdlib_ssl.SSLError(
                        f"server did not agree to HTTP/2 (ALPN {sock.selected_alpn_protocol()!r})"
                    )
            conn = _Connection(sock, self._window, _MAX_HEADER_LIST)
        except TimeoutError:
            self._failed_connect("connect timed out", sock)
            if deadline is not None and _monotonic() >= deadline:
                raise RpcError(StatusCode.DEADLINE_EXCEEDED, "Deadline Exceeded") from None
            raise RpcError(StatusCode.UNAVAILABLE, self._last_error) from None
        except (OSError, ValueError, RpcError) as exc:  # refused, DNS, TLS (SSLError is OSError)
            detail = exc.details() if isinstance(exc, RpcError) else f"{type(exc).__name__}: {exc}"
            self._failed_connect(f"failed to connect to {self.authority}: {detail}", sock)
            raise RpcError(StatusCode.UNAVAILABLE, self._last_error) from None
        self._backoff = 0.0
        self._conn = conn
        self.opened += 1
        if self._closed:  # closed while connecting
            conn.close()
            raise RpcError(StatusCode.CANCELLED, "channel closed")
        return conn

    def _failed_connect(self, message: str, sock: Any) -> None:
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.close()
        self._last_error = message
        self._backoff = min(self._backoff * 1.6 or self._backoff_initial, self._backoff_max)
        self._retry_at = _monotonic() + self._backoff


class UnaryUnary:
    """`channel.unary_unary(method)`: call with request bytes, get response bytes."""

    __slots__ = ("_block", "_channel", "_timeout_blocks")

    def __init__(self, channel: Channel, method: str) -> None:
        if not method.startswith("/"):
            raise ValueError(f"method must look like /package.Service/Method, got {method!r}")
        self._channel = channel
        self._block = channel.header_block(method)
        self._timeout_blocks: dict[float, bytes] = {}

    def __call__(self, request: bytes, timeout: float | None = None) -> bytes:
        """Send `request` (a serialized message); the serialized reply, or RpcError."""
        if timeout is None:
            deadline = None
            block = self._block
        else:
            deadline = _monotonic() + timeout
            cached = self._timeout_blocks.get(timeout)  # the load uses one timeout
            if cached is None:
                if len(self._timeout_blocks) > 64:
                    self._timeout_blocks.clear()
                cached = self._timeout_blocks[timeout] = self._block + _timeout_field(timeout)
            block = cached
        stream = self._channel.connection(deadline).unary(block, request, deadline)
        if stream.retryable:  # never reached the application: gRPC's transparent retry, once
            stream = self._channel.connection(deadline).unary(block, request, deadline)
        return stream.reply()


def _parse_target(target: str) -> tuple[str, int, bool]:
    tls = False
    if "://" in target:
        parts = urlsplit(target)
        if parts.scheme not in ("grpc", "grpcs", "http", "https"):
            raise ValueError(f"unsupported scheme in {target!r}")
        tls = parts.scheme in ("grpcs", "https")
        if parts.hostname is None or parts.port is None:
            raise ValueError(f"target {target!r} needs a host and a port")
        return parts.hostname, parts.port, tls
    host, sep, port = target.rpartition(":")
    if not sep or not port.isdigit():
        raise ValueError(f"target {target!r} must be host:port")
    return host.strip("[]"), int(port), tls


def _client_context(root_certificates: str | None) -> _stdlib_ssl.SSLContext:
    context: _stdlib_ssl.SSLContext = gevent.ssl.SSLContext(gevent.ssl.PROTOCOL_TLS_CLIENT)
    context.minimum_version = _stdlib_ssl.TLSVersion.TLSv1_2
    if root_certificates is None:
        context.load_default_certs()
    else:
        context.load_verify_locations(cafile=root_certificates)
    return context
