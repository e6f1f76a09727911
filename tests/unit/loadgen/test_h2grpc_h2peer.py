"""Our gRPC client (`loadgen.h2grpc`) against `h2` (python-hyper) as the server's HTTP/2 stack.

`h2` is an independent, strict implementation of the protocol: it raises on anything a client
must not send (a zero WINDOW_UPDATE, DATA beyond a window, a frame over the size it allows), so
each test here fails if our client breaks the protocol, not only if it misreads an answer. The
peer runs on a gevent server in this process; the client in the test's greenlet.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Callable, Iterator
from typing import Any

import gevent
import gevent.server
import pytest
from h2.config import H2Configuration
from h2.connection import H2Connection
from h2.errors import ErrorCodes
from h2.events import (
    ConnectionTerminated,
    DataReceived,
    Event,
    PingAckReceived,
    RequestReceived,
    StreamEnded,
    StreamReset,
)
from h2.exceptions import ProtocolError
from h2.settings import SettingCodes

from servingbench.loadgen.h2grpc import Channel, RpcError, StatusCode

_PREFIX = struct.Struct(">BL")
OK_HEADERS = [(b":status", b"200"), (b"content-type", b"application/grpc")]


class Peer:
    """One server-side connection driven by `h2`: every event it saw, helpers to answer."""

    def __init__(self, sock: Any, settings: dict[int, int]) -> None:
        self.sock = sock
        self.conn = H2Connection(H2Configuration(client_side=False, header_encoding=None))
        self.events: list[Event] = []
        self.errors: list[ProtocolError] = []
        self.bodies: dict[int, bytes] = {}
        self.conn.initiate_connection()
        if settings:  # in force once the client acknowledges them (RFC 9113 6.5.3)
            self.conn.update_settings(settings)
        self.flush()

    def flush(self) -> None:
        if data := self.conn.data_to_send():
            self.sock.sendall(data)

    def pump(self) -> list[Event]:
        """Read once and handle what came; [] when the client closed or broke the protocol."""
        data = self.sock.recv(65536)
        if not data:
            return []
        try:
            events = self.conn.receive_data(data)
        except ProtocolError as exc:  # h2 queued the GOAWAY it owes the client
            self.errors.append(exc)
            self.flush()
            return []
        for event in events:
            if isinstance(event, DataReceived):
                self.bodies[event.stream_id] = self.bodies.get(event.stream_id, b"") + event.data
                self.conn.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
        self.events.extend(events)
        self.flush()
        return events

    def send_message(self, stream_id: int, message: bytes, end_stream: bool = False) -> None:
        """DATA frames within the client's windows and frame size (reading WINDOW_UPDATEs)."""
        view = memoryview(_PREFIX.pack(0, len(message)) + message)
        while view:
            allowed = min(
                self.conn.local_flow_control_window(stream_id), self.conn.max_outbound_frame_size
            )
            if allowed <= 0:
                if not self.pump():
                    raise ConnectionError("client went away while we waited for its window")
                continue
            piece, view = view[:allowed], view[allowed:]
            self.conn.send_data(stream_id, bytes(piece), end_stream=end_stream and not view)
            self.flush()

    def ok(self, stream_id: int, message: bytes) -> None:
        self.conn.send_headers(stream_id, OK_HEADERS)
        self.send_message(stream_id, message)
        self.conn.send_headers(stream_id, [(b"grpc-status", b"0")], end_stream=True)
        self.flush()

    def data_frames(self, stream_id: int) -> list[int]:
        return [
            e.flow_controlled_length
            for e in self.events
            if isinstance(e, DataReceived) and e.stream_id == stream_id
        ]


Answer = Callable[[Peer, int, bytes], None]
"""Answer the request on stream `id` whose message (length prefix removed) is `bytes`."""


class PeerServer:
    def __init__(self, answer: Answer, settings: dict[int, int]) -> None:
        self.answer = answer
        self.settings = settings
        self.peers: list[Peer] = []
        self.server = gevent.server.StreamServer(("127.0.0.1", 0), self._handle)
        self.server.start()
        self.target = f"127.0.0.1:{self.server.server_port}"

    def _handle(self, sock: Any, _address: Any) -> None:
        peer = Peer(sock, self.settings)
        self.peers.append(peer)
        try:
            while events := peer.pump():
                for event in events:
                    if isinstance(event, StreamEnded) and event.stream_id in peer.bodies:
                        body = peer.bodies[event.stream_id]
                        self.answer(peer, event.stream_id, body[5:])
                    elif isinstance(event, ConnectionTerminated):
                        return
        except OSError:
            return
        finally:
            sock.close()

    @property
    def errors(self) -> list[ProtocolError]:
        return [error for peer in self.peers for error in peer.errors]

    def stop(self) -> None:
        self.server.stop(timeout=1)


@pytest.fixture
def peer() -> Iterator[Callable[..., PeerServer]]:
    servers: list[PeerServer] = []

    def start(answer: Answer, settings: dict[int, int] | None = None) -> PeerServer:
        servers.append(PeerServer(answer, settings or {}))
        return servers[-1]

    yield start
    for server in servers:
        server.stop()


def _error(call: Callable[[], bytes]) -> RpcError:
    with pytest.raises(RpcError) as failure:
        call()
    return failure.value


def _echo(peer: Peer, stream_id: int, body: bytes) -> None:
    peer.ok(stream_id, body)


# --- flow control ----------------------------------------------------------------------------


@pytest.mark.parametrize("window", [65_535, 1_000, 128 << 10])
def test_a_large_reply_needs_our_window_updates_and_none_of_them_is_zero(
    peer: Callable[..., PeerServer], window: int
) -> None:
    """A 1 MiB reply in 16 KiB DATA frames, through our receive window: `h2` sends only what
    the window allows, so the call completes only if we replenish it, and `h2` would answer a
    WINDOW_UPDATE of increment 0 (the bug once sent at the default window) with GOAWAY."""
    reply = os.urandom(1 << 20)
    server = peer(lambda p, sid, body: p.ok(sid, reply))
    with Channel(server.target, window=window) as channel:
        call = channel.unary_unary("/a.B/Big")
        assert call(b"", timeout=10) == reply
        assert call(b"", timeout=10) == reply  # and the connection's window is still open
    assert server.errors == []
    assert len(server.peers) == 1


def test_a_large_request_waits_for_the_servers_window_updates(
    peer: Callable[..., PeerServer],
) -> None:
    """The server allows 1,000 bytes per stream once we acknowledge its SETTINGS: the rest of
    a 200 KB request goes out in pieces that each fit, as `h2` acknowledges what it read
    (`h2` would fail the connection on a byte over its window)."""
    settings = {SettingCodes.INITIAL_WINDOW_SIZE: 1_000}
    server = peer(_echo, settings)
    body = os.urandom(200_000)
    with Channel(server.target) as channel:
        assert channel.unary_unary("/a.B/Echo")(body, timeout=10) == body
    frames = server.peers[0].data_frames(1)
    sent, early = 0, 0
    while sent < 65_535:  # until the client has our SETTINGS, HTTP/2's default window holds
        sent += frames[early]
        early += 1
    assert sent == 65_535
    later = frames[early:]
    assert len(later) >= 130
    assert max(later) <= 1_000
    assert server.errors == []


def test_a_zero_window_update_from_the_server_is_harmless(
    peer: Callable[..., PeerServer],
) -> None:
    """RFC 9113 makes it the sender's error; we ignore it rather than lose the call (`h2` will
    not send one, so it goes on the socket as raw bytes)."""

    def answer(p: Peer, stream_id: int, body: bytes) -> None:
        zero = struct.pack(">L", 0)
        frames = (struct.pack(">LBL", 4 << 8 | 0x8, 0, sid) + zero for sid in (0, stream_id))
        p.sock.sendall(b"".join(frames))
        p.ok(stream_id, body)

    server = peer(answer)
    with Channel(server.target) as channel:
        call = channel.unary_unary("/a.B/Echo")
        assert call(b"one", timeout=5) == b"one"
        assert call(b"two", timeout=5) == b"two"
    assert len(server.peers) == 1


# --- endings: trailers-only, RST_STREAM, GOAWAY, deadlines -------------------------------------


def test_trailers_only_responses_carry_the_status(peer: Callable[..., PeerServer]) -> None:
    def answer(p: Peer, stream_id: int, body: bytes) -> None:
        fields = [*OK_HEADERS, (b"grpc-status", body), (b"grpc-message", b"slow down %25 \xc3\xa9")]
        p.conn.send_headers(stream_id, fields, end_stream=True)
        p.flush()

    server = peer(answer)
    with Channel(server.target) as channel:
        call = channel.unary_unary("/a.B/C")
        error = _error(lambda: call(b"8", timeout=5))
        assert (error.code(), error.details()) == (StatusCode.RESOURCE_EXHAUSTED, "slow down % é")
        assert _error(lambda: call(b"14", timeout=5)).code() is StatusCode.UNAVAILABLE
    assert len(server.peers) == 1  # an error status is the call's, not the connection's


@pytest.mark.parametrize(
    ("error_code", "status"),
    [(ErrorCodes.CANCEL, StatusCode.CANCELLED), (ErrorCodes.INTERNAL_ERROR, StatusCode.INTERNAL),
     (ErrorCodes.ENHANCE_YOUR_CALM, StatusCode.RESOURCE_EXHAUSTED)],
)  # fmt: skip
def test_a_reset_stream_fails_only_its_call(
    peer: Callable[..., PeerServer], error_code: ErrorCodes, status: StatusCode
) -> None:
    def answer(p: Peer, stream_id: int, body: bytes) -> None:
        if body == b"reset":
            p.conn.send_headers(stream_id, OK_HEADERS)
            p.conn.reset_stream(stream_id, error_code)
            p.flush()
        else:
            p.ok(stream_id, body)

    server = peer(answer)
    with Channel(server.target) as channel:
        call = channel.unary_unary("/a.B/C")
        assert _error(lambda: call(b"reset", timeout=5)).code() is status
        assert call(b"after", timeout=5) == b"after"
    assert len(server.peers) == 1
    assert server.errors == []


def test_a_refused_stream_is_sent_again_once(peer: Callable[..., PeerServer]) -> None:
    """REFUSED_STREAM means the server did nothing with it: gRPC retries such a call."""
    seen: list[int] = []

    def answer(p: Peer, stream_id: int, body: bytes) -> None:
        seen.append(stream_id)
        if len(seen) == 1:
            p.conn.reset_stream(stream_id, ErrorCodes.REFUSED_STREAM)
            p.flush()
        else:
            p.ok(stream_id, body)

    server = peer(answer)
    with Channel(server.target) as channel:
        assert channel.unary_unary("/a.B/C")(b"again", timeout=5) == b"again"
    assert seen == [1, 3]


def test_goaway_after_an_answer_moves_later_calls_to_a_new_connection(
    peer: Callable[..., PeerServer],
) -> None:
    def answer(p: Peer, stream_id: int, body: bytes) -> None:
        p.ok(stream_id, body)
        if body == b"last":
            p.conn.close_connection(ErrorCodes.NO_ERROR, last_stream_id=stream_id)
            p.flush()

    server = peer(answer)
    with Channel(server.target) as channel:
        call = channel.unary_unary("/a.B/C")
        assert call(b"first", timeout=5) == b"first"
        assert call(b"last", timeout=5) == b"last"
        gevent.sleep(0.05)  # the GOAWAY is read on the next call's idle check or its stream
        assert call(b"next", timeout=5) == b"next"
        assert channel.opened == 2
    assert server.errors == []


def test_goaway_below_a_call_in_flight_retries_it_on_a_new_connection(
    peer: Callable[..., PeerServer],
) -> None:
    """A stream above GOAWAY's last stream id was never processed: sent again, once."""

    def answer(p: Peer, stream_id: int, body: bytes) -> None:
        if len(server.peers) == 1:
            p.conn.close_connection(ErrorCodes.NO_ERROR, last_stream_id=0)
            p.flush()
        else:
            p.ok(stream_id, body)

    server = peer(answer)
    with Channel(server.target) as channel:
        assert channel.unary_unary("/a.B/C")(b"moved", timeout=5) == b"moved"
    assert len(server.peers) == 2


def test_goaway_with_an_error_fails_the_processed_call_as_unavailable(
    peer: Callable[..., PeerServer],
) -> None:
    def answer(p: Peer, stream_id: int, body: bytes) -> None:
        if len(server.peers) == 1:
            p.conn.send_headers(stream_id, OK_HEADERS)
            p.conn.close_connection(
                ErrorCodes.ENHANCE_YOUR_CALM, additional_data=b"too many pings",
                last_stream_id=stream_id,
            )  # fmt: skip
            p.flush()
        else:
            p.ok(stream_id, body)

    server = peer(answer)
    with Channel(server.target) as channel:
        call = channel.unary_unary("/a.B/C")
        error = _error(lambda: call(b"x", timeout=5))
        assert error.code() is StatusCode.UNAVAILABLE
        assert "too many pings" in error.details()
        assert call(b"y", timeout=5) == b"y"
    assert len(server.peers) == 2


def test_a_missed_deadline_resets_the_stream_and_keeps_the_connection(
    peer: Callable[..., PeerServer],
) -> None:
    def answer(p: Peer, stream_id: int, body: bytes) -> None:
        if body != b"never":
            p.ok(stream_id, body)

    server = peer(answer)
    with Channel(server.target) as channel:
        call = channel.unary_unary("/a.B/C")
        assert _error(lambda: call(b"never", timeout=0.2)).code() is StatusCode.DEADLINE_EXCEEDED
        assert call(b"ok", timeout=5) == b"ok"
    resets = [e for e in server.peers[0].events if isinstance(e, StreamReset)]
    assert [(e.stream_id, e.error_code) for e in resets] == [(1, ErrorCodes.CANCEL)]
    assert len(server.peers) == 1


def test_pings_are_acknowledged(peer: Callable[..., PeerServer]) -> None:
    def answer(p: Peer, stream_id: int, body: bytes) -> None:
        p.conn.ping(b"%08d" % stream_id)
        p.ok(stream_id, body)

    server = peer(answer)
    with Channel(server.target) as channel:
        call = channel.unary_unary("/a.B/C")
        for n in range(3):
            assert call(b"%d" % n, timeout=5) == b"%d" % n
    gevent.sleep(0.05)
    acks = [e.ping_data for e in server.peers[0].events if isinstance(e, PingAckReceived)]
    assert acks[:2] == [b"00000001", b"00000003"]  # the last one may still be in flight


def test_requests_are_what_h2_calls_a_valid_grpc_request(peer: Callable[..., PeerServer]) -> None:
    """Our precomputed header block, decoded by `h2`: the fields a gRPC server requires."""
    server = peer(_echo)
    with Channel(server.target) as channel:
        assert channel.unary_unary("/inference.GRPCInferenceService/ModelInfer")(
            b"m", timeout=2.5
        ) == b"m"  # fmt: skip
    request = next(e for e in server.peers[0].events if isinstance(e, RequestReceived))
    fields = dict(request.headers)
    assert fields[b":method"] == b"POST"
    assert fields[b":path"] == b"/inference.GRPCInferenceService/ModelInfer"
    assert fields[b"content-type"] == b"application/grpc"
    assert fields[b"te"] == b"trailers"
    assert fields[b"grpc-timeout"] == b"2500000u"
