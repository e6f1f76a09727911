"""The gRPC user's own HTTP/2 client (`loadgen.h2grpc`) against real servers on loopback.

- grpcio's server, in this process on its own threads: the V2 `ModelInfer` protocol (real
  protobuf messages) and test methods (echo, large replies, aborts, sleeps, deadlines);
- the calibration no-op server (`servingbench.calibration.noop`, real project code);
- a small scripted HTTP/2 server written here, for what a well-behaved server never does
  (closing mid-call, no grpc-status, CONTINUATION and padding, RST_STREAM, GOAWAY, bad frames).

The client runs on gevent in the test's own greenlet (the process is not monkey-patched).
"""

from __future__ import annotations

import os
import socket
import struct
import threading
import time
from collections.abc import Callable, Iterator
from concurrent import futures
from typing import Any

import gevent
import gevent.server
import grpc
import pytest
from hpack import Encoder

from servingbench.calibration.noop import grpc_answers, serve_grpc
from servingbench.loadgen import h2grpc
from servingbench.loadgen.h2grpc import Channel, RpcError, StatusCode
from servingbench.loadgen.payloads import Payload, build_payloads
from servingbench.loadgen.verdicts import OK, check_body, classify_exception
from servingbench.runs.records import Outcome
from servingbench.wire import GRPC_METHOD, get_wire, v2_grpc_response

from ._local import Certs, free_port, running_asyncio_server

MODEL = "breast-cancer"
DECODE = get_wire("v2-grpc").decode
ABORT_DETAILS = "bad input: é 100% ✓\nline 2"


# --- a real grpcio server -------------------------------------------------------------------


def _model_infer(payloads: dict[bytes, Payload]) -> grpc.RpcMethodHandler:
    """V2 ModelInfer with real protobuf work: parse, check, build the answer the artifact gives."""
    from tritonclient.grpc import service_pb2

    def infer(request: Any, context: grpc.ServicerContext) -> Any:
        payload = payloads.get(request.SerializeToString())
        if request.model_name != MODEL or payload is None:
            context.abort(
                grpc.StatusCode.INVALID_ARGUMENT, f"unknown request for {request.model_name!r}"
            )
        assert payload is not None
        context.set_trailing_metadata((("x-served-by", "grpcio"),))
        return v2_grpc_response(MODEL, "1", request.id, {"predict_proba": payload.proba32})

    return grpc.unary_unary_rpc_method_handler(
        infer,
        request_deserializer=service_pb2.ModelInferRequest.FromString,
        response_serializer=service_pb2.ModelInferResponse.SerializeToString,
    )


def _test_methods() -> dict[str, grpc.RpcMethodHandler]:
    def echo(request: bytes, context: grpc.ServicerContext) -> bytes:
        return request

    def big(request: bytes, context: grpc.ServicerContext) -> bytes:
        n = int(request)
        return bytes(range(256)) * (n // 256) + b"x" * (n % 256)

    def abort(request: bytes, context: grpc.ServicerContext) -> bytes:
        context.set_trailing_metadata((("x-why", "test"),))
        context.abort(grpc.StatusCode.INVALID_ARGUMENT, ABORT_DETAILS)
        return b""

    def sleep(request: bytes, context: grpc.ServicerContext) -> bytes:
        ended = threading.Event()
        context.add_callback(ended.set)  # a cancelled call frees its thread at once
        ended.wait(float(request))
        return request

    def raise_(request: bytes, context: grpc.ServicerContext) -> bytes:
        raise RuntimeError("handler failed")

    def deadline(request: bytes, context: grpc.ServicerContext) -> bytes:
        remaining = context.time_remaining()
        return b"none" if remaining is None else f"{remaining:.6f}".encode()

    methods = {"Echo": echo, "Big": big, "Abort": abort, "Sleep": sleep,
               "Raise": raise_, "Deadline": deadline}  # fmt: skip
    return {name: grpc.unary_unary_rpc_method_handler(f) for name, f in methods.items()}


def _grpc_server(
    payloads: dict[bytes, Payload],
    options: list[tuple[str, Any]] | None = None,
    port: int = 0,
    credentials: grpc.ServerCredentials | None = None,
) -> tuple[grpc.Server, int]:
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=16),
        options=[("grpc.max_receive_message_length", -1), ("grpc.max_send_message_length", -1)]
        + (options or []),
    )
    server.add_generic_rpc_handlers(
        [
            grpc.method_handlers_generic_handler(
                "inference.GRPCInferenceService", {"ModelInfer": _model_infer(payloads)}
            ),
            grpc.method_handlers_generic_handler("test.Test", _test_methods()),
        ]
    )
    address = f"127.0.0.1:{port}"
    bound = (
        server.add_secure_port(address, credentials)
        if credentials is not None
        else server.add_insecure_port(address)
    )
    server.start()
    return server, bound


@pytest.fixture(scope="module")
def payloads(trained_models: None) -> dict[bytes, Payload]:
    return {p.body: p for p in build_payloads("v2-grpc", MODEL, 1)}


@pytest.fixture(scope="module")
def real(payloads: dict[bytes, Payload]) -> Iterator[int]:
    server, port = _grpc_server(payloads)
    yield port
    server.stop(0)


def _conn(channel: Channel) -> Any:
    """The channel's current HTTP/2 connection (to tell a reused one from a new one)."""
    return channel._conn


def _code(call: Callable[[], bytes]) -> RpcError:
    with pytest.raises(RpcError) as failure:
        call()
    return failure.value


# --- interop with grpcio ----------------------------------------------------------------------


def test_model_infer_with_real_protobuf_messages(real: int, payloads: dict[bytes, Payload]) -> None:
    """The generator's pre-encoded requests, answered by grpcio, decode and check OK."""
    with Channel(f"127.0.0.1:{real}") as channel:
        infer = channel.unary_unary(GRPC_METHOD)
        for body, payload in list(payloads.items())[:25]:
            assert check_body(infer(body, timeout=5), payload, DECODE) == OK
        error = _code(lambda: infer(b"\x0a\x03bad", timeout=5))  # model_name "bad"
        assert error.code() is StatusCode.INVALID_ARGUMENT
        assert error.details() == "unknown request for 'bad'"
        assert classify_exception(error) == (
            Outcome.GRPC_STATUS,
            "gRPC INVALID_ARGUMENT: unknown request for 'bad'",
        )


def test_large_messages_cross_the_flow_control_windows(real: int) -> None:
    """An 8 MiB request (over the 64 KiB initial windows grpc-core starts with) and a 20 MiB
    reply (over our 16 MiB receive window): both need WINDOW_UPDATEs to complete."""
    with Channel(f"127.0.0.1:{real}") as channel:
        echo = channel.unary_unary("/test.Test/Echo")
        body = os.urandom(8 << 20)
        assert echo(body, timeout=30) == body
        reply = channel.unary_unary("/test.Test/Big")(b"%d" % (20 << 20), timeout=30)
        assert len(reply) == 20 << 20
        assert reply[:256] == bytes(range(256))
        assert reply[-256:] == bytes(range(256))
        assert echo(b"", timeout=5) == b""  # an empty message is still one message
        assert echo(b"after", timeout=5) == b"after"


def test_a_small_receive_window_is_replenished(real: int) -> None:
    """With a 128 KiB window a 1 MiB reply takes many WINDOW_UPDATEs from us."""
    with Channel(f"127.0.0.1:{real}", window=128 << 10) as channel:
        reply = channel.unary_unary("/test.Test/Big")(b"%d" % (1 << 20), timeout=30)
        assert len(reply) == 1 << 20


def test_the_default_window_size_is_a_valid_choice(real: int) -> None:
    """A window at (or clamped up to) HTTP/2's default 65535 needs no connection WINDOW_UPDATE in
    the preface: one of increment 0 is a PROTOCOL_ERROR (RFC 9113 section 6.9), and grpc-core
    would close the connection, failing every call UNAVAILABLE."""
    for window in (65_535, 1_000):
        with Channel(f"127.0.0.1:{real}", window=window) as channel:
            echo = channel.unary_unary("/test.Test/Echo")
            assert echo(b"smallest window", timeout=5) == b"smallest window"


def test_error_statuses_from_trailers(real: int) -> None:
    with Channel(f"127.0.0.1:{real}") as channel:
        connection = None
        error = _code(lambda: channel.unary_unary("/test.Test/Abort")(b"", timeout=5))
        connection = _conn(channel)
        assert error.code() is StatusCode.INVALID_ARGUMENT
        assert error.details() == ABORT_DETAILS  # percent-decoded UTF-8, newline kept
        error = _code(lambda: channel.unary_unary("/no.Such/Method")(b"", timeout=5))
        assert error.code() is StatusCode.UNIMPLEMENTED
        error = _code(lambda: channel.unary_unary("/test.Test/Raise")(b"", timeout=5))
        assert error.code() is StatusCode.UNKNOWN
        assert channel.unary_unary("/test.Test/Echo")(b"still fine", timeout=5) == b"still fine"
        assert _conn(channel) is connection  # errors are per call, not per connection


def test_deadlines(real: int) -> None:
    with Channel(f"127.0.0.1:{real}") as channel:
        left = float(channel.unary_unary("/test.Test/Deadline")(b"", timeout=3.0))
        assert 1.0 < left <= 3.0  # grpc-timeout reached the server
        no_deadline = channel.unary_unary("/test.Test/Deadline")(b"", timeout=None)
        assert float(no_deadline) > 1e6  # no grpc-timeout sent: grpcio's "infinite"
        sleep = channel.unary_unary("/test.Test/Sleep")
        connection = _conn(channel)
        began = time.monotonic()
        error = _code(lambda: sleep(b"5", timeout=0.3))
        assert error.code() is StatusCode.DEADLINE_EXCEEDED
        assert 0.25 <= time.monotonic() - began < 4.5  # ended by the deadline, not the server
        assert classify_exception(error)[0] is Outcome.TIMEOUT
        assert sleep(b"0", timeout=5) == b"0"
        assert _conn(channel) is connection  # the stream was reset, the connection kept
        assert not connection.streams
        error = _code(lambda: sleep(b"0", timeout=0.0))
        assert error.code() is StatusCode.DEADLINE_EXCEEDED


def test_grpc_timeout_header_values() -> None:
    """At most 8 digits: microseconds while they fit, then coarser units, rounded up."""
    assert h2grpc._timeout_value(0.3) == b"300000u"
    assert h2grpc._timeout_value(10.0) == b"10000000u"
    assert h2grpc._timeout_value(1000.0) == b"1000000m"
    assert h2grpc._timeout_value(0.0) == b"1u"


def test_concurrent_calls_share_one_connection(real: int) -> None:
    """Greenlets multiplex streams; one reads for all, deadlines in between leave no stream."""
    with Channel(f"127.0.0.1:{real}") as channel:
        echo = channel.unary_unary("/test.Test/Echo")
        sleep = channel.unary_unary("/test.Test/Sleep")
        timeouts = []

        def worker(i: int) -> int:
            for j in range(15):
                body = os.urandom((i * 997 + j * 131) % 70_000)
                assert echo(body, timeout=20) == body
                if j % 7 == 0:
                    try:
                        sleep(b"0.5", timeout=0.05)
                    except RpcError as exc:
                        timeouts.append(exc.code())
            return i

        jobs = [gevent.spawn(worker, i) for i in range(12)]
        gevent.joinall(jobs, timeout=60, raise_error=True)
        assert sorted(j.value for j in jobs) == list(range(12))
        assert timeouts == [StatusCode.DEADLINE_EXCEEDED] * 36
        assert not _conn(channel).streams


def test_refused_then_fail_fast_then_reconnect(payloads: dict[bytes, Payload]) -> None:
    """A refused connect is UNAVAILABLE; during the backoff calls fail without connecting (a
    listener that never answers would make them time out instead); then it reconnects."""
    port = free_port()
    channel = Channel(f"127.0.0.1:{port}", backoff_initial=1.0, backoff_max=1.0)
    echo = channel.unary_unary("/test.Test/Echo")
    first = _code(lambda: echo(b"x", timeout=2))
    assert first.code() is StatusCode.UNAVAILABLE
    assert first.details().startswith(f"failed to connect to 127.0.0.1:{port}")
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", port))
        silent.listen()
        again = _code(lambda: echo(b"x", timeout=0.5))
    assert (again.code(), again.details()) == (StatusCode.UNAVAILABLE, first.details())
    server, _ = _grpc_server(payloads, port=port)
    try:
        deadline = time.monotonic() + 20
        failed: set[StatusCode] = set()
        while True:  # calls fail fast until the back-off lets the channel try again
            try:
                reply = echo(b"back", timeout=2)
                break
            except RpcError as exc:
                failed.add(exc.code())
                if time.monotonic() > deadline:
                    raise
                gevent.sleep(0.05)
        assert reply == b"back"
        assert failed <= {StatusCode.UNAVAILABLE}
    finally:
        server.stop(0)
        channel.close()
    assert _code(lambda: echo(b"x", timeout=1)).code() is StatusCode.CANCELLED  # closed channel


def test_server_stopping_mid_call(payloads: dict[bytes, Payload]) -> None:
    server, port = _grpc_server(payloads)
    with Channel(f"127.0.0.1:{port}") as channel:
        sleep = channel.unary_unary("/test.Test/Sleep")
        assert sleep(b"0", timeout=5) == b"0"
        pending = gevent.spawn(sleep, b"10", timeout=20)
        gevent.sleep(0.2)
        server.stop(0)
        with pytest.raises(RpcError) as failure:
            pending.get(timeout=10)
        assert failure.value.code() is StatusCode.UNAVAILABLE
        assert classify_exception(failure.value)[0] is Outcome.CONNECTION


def test_goaway_from_max_connection_age_costs_no_call(payloads: dict[bytes, Payload]) -> None:
    """grpc-core ends connections after their age with GOAWAY: calls go on, on new ones."""
    server, port = _grpc_server(
        payloads, [("grpc.max_connection_age_ms", 300), ("grpc.max_connection_age_grace_ms", 5000)]
    )
    try:
        with Channel(f"127.0.0.1:{port}") as channel:
            echo = channel.unary_unary("/test.Test/Echo")
            connections: set[int] = set()
            deadline = time.monotonic() + 20
            n = 0
            while len(connections) < 3 and time.monotonic() < deadline:
                assert echo(b"%d" % n, timeout=5) == b"%d" % n  # never an error
                connections.add(id(_conn(channel)))
                n += 1
            assert len(connections) >= 3
    finally:
        server.stop(0)


def test_tls(payloads: dict[bytes, Payload], certs: Certs) -> None:
    credentials = grpc.ssl_server_credentials([(certs.key.read_bytes(), certs.cert.read_bytes())])
    server, port = _grpc_server(payloads, credentials=credentials)
    try:
        with Channel(f"grpcs://localhost:{port}", root_certificates=str(certs.ca)) as channel:
            assert channel.unary_unary("/test.Test/Echo")(b"secure", timeout=5) == b"secure"
            assert len(channel.unary_unary("/test.Test/Big")(b"3000000", timeout=10)) == 3_000_000
        with Channel(f"grpcs://localhost:{port}", root_certificates=str(certs.ca)) as channel:
            error = _code(lambda: channel.unary_unary("/test.Test/Abort")(b"", timeout=5))
            assert error.code() is StatusCode.INVALID_ARGUMENT
        with Channel(f"grpcs://localhost:{port}") as channel:  # system CAs: not trusted
            error = _code(lambda: channel.unary_unary("/test.Test/Echo")(b"x", timeout=5))
            assert error.code() is StatusCode.UNAVAILABLE
            assert "CERTIFICATE_VERIFY_FAILED" in error.details()
        with Channel(f"127.0.0.1:{port}") as channel:  # plaintext to a TLS port
            error = _code(lambda: channel.unary_unary("/test.Test/Echo")(b"x", timeout=5))
            assert error.code() is StatusCode.UNAVAILABLE
    finally:
        server.stop(0)


def test_targets() -> None:
    cases = {
        "127.0.0.1:8081": ("127.0.0.1", 8081, False, "127.0.0.1:8081"),
        "[::1]:443": ("::1", 443, False, "[::1]:443"),
        "grpcs://example.org:443": ("example.org", 443, True, "example.org:443"),
        "grpc://h:1": ("h", 1, False, "h:1"),
    }
    for target, expected in cases.items():
        channel = Channel(target)
        assert (channel.host, channel.port, channel.tls, channel.authority) == expected
    for bad in ("nohost", "ftp://h:1", "grpc://h"):
        with pytest.raises(ValueError, match=r"target|scheme"):
            Channel(bad)
    with pytest.raises(ValueError, match=r"/package\.Service/Method"):
        Channel("h:1").unary_unary("ModelInfer")


# --- the calibration no-op server -----------------------------------------------------------


def test_the_no_op_server_answers_every_payload(payloads: dict[bytes, Payload]) -> None:
    """Real project code on both ends: the no-op's minimal HTTP/2 (a header table size update,
    connection-level WINDOW_UPDATEs) and the client's checks, many calls on one connection."""
    answers = grpc_answers(MODEL, 1)
    with (
        running_asyncio_server(lambda host, port: serve_grpc(host, port, answers)) as port,
        Channel(f"127.0.0.1:{port}") as channel,
    ):
        infer = channel.unary_unary(GRPC_METHOD)
        for _ in range(3):
            for body, payload in payloads.items():
                assert check_body(infer(body, timeout=5), payload, DECODE) == OK
        error = _code(lambda: infer(b"\x0a\x03bad", timeout=5))
        assert (error.code(), error.details()) == (
            StatusCode.INVALID_ARGUMENT,
            "not a request the generator sends",
        )

        def many(start: int) -> int:
            bodies = list(payloads)
            for k in range(30):
                body = bodies[(start + k) % len(bodies)]
                assert check_body(infer(body, timeout=10), payloads[body], DECODE) == OK
            return start

        jobs = [gevent.spawn(many, i * 11) for i in range(8)]
        gevent.joinall(jobs, timeout=60, raise_error=True)
        assert not _conn(channel).streams


# --- a scripted HTTP/2 server for what real servers rarely do ------------------------------

_FRAME = struct.Struct(">LBL")
DATA, HEADERS, RST_STREAM, SETTINGS, PING, GOAWAY, WINDOW_UPDATE, CONTINUATION = (
    0x0, 0x1, 0x3, 0x4, 0x6, 0x7, 0x8, 0x9,
)  # fmt: skip
END_STREAM, END_HEADERS, PADDED = 0x1, 0x4, 0x8


class _Peer:
    """One server-side HTTP/2 connection: what the client sent, and helpers to answer."""

    def __init__(self, sock: Any) -> None:
        self.sock = sock
        self.encoder = Encoder()
        self.frames: list[tuple[int, int, int, bytes]] = []

    @staticmethod
    def frame(ftype: int, flags: int, stream_id: int, payload: bytes = b"") -> bytes:
        return _FRAME.pack(len(payload) << 8 | ftype, flags, stream_id) + payload

    def send(self, ftype: int, flags: int, stream_id: int, payload: bytes = b"") -> None:
        self.sock.sendall(self.frame(ftype, flags, stream_id, payload))

    def block(self, fields: list[tuple[str, str]]) -> bytes:
        return bytes(self.encoder.encode(fields))

    def headers(self, stream_id: int, status: int = 200, ctype: str = "application/grpc") -> None:
        fields = [(":status", str(status)), ("content-type", ctype)]
        self.send(HEADERS, END_HEADERS, stream_id, self.block(fields))

    def trailers(self, stream_id: int, status: int = 0, message: str = "") -> None:
        fields = [("grpc-status", str(status))] + ([("grpc-message", message)] if message else [])
        self.send(HEADERS, END_HEADERS | END_STREAM, stream_id, self.block(fields))

    def ok(self, stream_id: int, body: bytes) -> None:
        """Headers, the message and trailers in one write (header blocks in encoding order)."""
        head = self.block([(":status", "200"), ("content-type", "application/grpc")])
        tail = self.block([("grpc-status", "0")])
        self.sock.sendall(
            self.frame(HEADERS, END_HEADERS, stream_id, head)
            + self.frame(DATA, 0, stream_id, b"\x00" + struct.pack(">L", len(body)) + body)
            + self.frame(HEADERS, END_HEADERS | END_STREAM, stream_id, tail)
        )


Answer = Callable[[_Peer, int, bytes], None]
"""Answer the request on stream `id` with body `bytes` (the message, prefix removed)."""


class _H2Server:
    """Reads the client's frames on each connection and lets `answer` write the response."""

    def __init__(self, answer: Answer, settings: bytes = b"") -> None:
        self.answer = answer
        self.settings = settings
        self.peers: list[_Peer] = []
        self.requests = 0
        self.server = gevent.server.StreamServer(("127.0.0.1", 0), self._handle)
        self.server.start()
        self.target = f"127.0.0.1:{self.server.server_port}"

    def _recv(self, sock: Any, n: int) -> bytes:
        data = b""
        while len(data) < n:
            chunk = sock.recv(n - len(data))
            if not chunk:
                raise ConnectionError("client closed")
            data += chunk
        return data

    def _handle(self, sock: Any, _address: Any) -> None:
        peer = _Peer(sock)
        self.peers.append(peer)
        bodies: dict[int, bytes] = {}
        try:
            assert self._recv(sock, 24) == b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
            peer.send(SETTINGS, 0, 0, self.settings)
            while True:
                length_type, flags, stream_id = _FRAME.unpack(self._recv(sock, 9))
                payload = self._recv(sock, length_type >> 8)
                ftype = length_type & 0xFF
                peer.frames.append((ftype, flags, stream_id, payload))
                if ftype == SETTINGS and not flags & 0x1:
                    peer.send(SETTINGS, 0x1, 0)
                elif ftype == DATA:
                    bodies[stream_id] = bodies.get(stream_id, b"") + payload
                    if flags & END_STREAM:
                        self.requests += 1
                        self.answer(peer, stream_id, bodies.pop(stream_id)[5:])
                elif ftype == GOAWAY:
                    return
        except OSError:
            return
        finally:
            sock.close()

    def stop(self) -> None:
        self.server.stop(timeout=1)


@pytest.fixture
def h2() -> Iterator[Callable[..., _H2Server]]:
    servers: list[_H2Server] = []

    def start(answer: Answer, settings: bytes = b"") -> _H2Server:
        servers.append(_H2Server(answer, settings))
        return servers[-1]

    yield start
    for server in servers:
        server.stop()


def test_the_server_closing_mid_call_is_unavailable_and_the_next_call_reconnects(
    h2: Callable[..., _H2Server],
) -> None:
    def answer(peer: _Peer, stream_id: int, body: bytes) -> None:
        if len(h2_server.peers) == 1:
            peer.sock.shutdown(socket.SHUT_RDWR)  # gone without a word
        else:
            peer.ok(stream_id, body)

    h2_server = h2(answer)
    with Channel(h2_server.target) as channel:
        echo = channel.unary_unary("/test.Test/Echo")
        error = _code(lambda: echo(b"first", timeout=5))
        assert (error.code(), error.details()) == (
            StatusCode.UNAVAILABLE,
            "connection closed by the server",
        )
        assert echo(b"second", timeout=5) == b"second"
    assert len(h2_server.peers) == 2


@pytest.mark.parametrize(
    ("status", "ctype", "code", "details"),
    [
        (503, "text/plain", StatusCode.UNAVAILABLE, "HTTP status 503 without grpc-status"),
        (404, "text/html", StatusCode.UNIMPLEMENTED, "HTTP status 404 without grpc-status"),
        (200, "text/html", StatusCode.UNKNOWN,
         "response content-type b'text/html', not application/grpc"),
    ],
)  # fmt: skip
def test_a_non_grpc_answer_maps_its_http_status(
    h2: Callable[..., _H2Server], status: int, ctype: str, code: StatusCode, details: str
) -> None:
    """A proxy or a plain HTTP server in the way: gRPC's HTTP-to-status mapping."""

    def answer(peer: _Peer, stream_id: int, body: bytes) -> None:
        peer.headers(stream_id, status, ctype)
        peer.send(DATA, END_STREAM, stream_id, b"<html>not grpc</html>")

    server = h2(answer)
    with Channel(server.target) as channel:
        error = _code(lambda: channel.unary_unary("/a.B/C")(b"x", timeout=5))
    assert (error.code(), error.details()) == (code, details)


def test_trailers_only_error_and_missing_grpc_status(h2: Callable[..., _H2Server]) -> None:
    def answer(peer: _Peer, stream_id: int, body: bytes) -> None:
        if body == b"trailers-only":
            fields = [(":status", "200"), ("content-type", "application/grpc"),
                      ("grpc-status", "8"), ("grpc-message", "slow down %25")]  # fmt: skip
            peer.send(HEADERS, END_HEADERS | END_STREAM, stream_id, peer.block(fields))
        else:
            peer.headers(stream_id)
            peer.send(DATA, 0, stream_id, b"\x00" + struct.pack(">L", len(body)) + body)
            peer.send(HEADERS, END_HEADERS | END_STREAM, stream_id, peer.block([("x", "y")]))

    server = h2(answer)
    with Channel(server.target) as channel:
        call = channel.unary_unary("/a.B/C")
        error = _code(lambda: call(b"trailers-only", timeout=5))
        assert (error.code(), error.details()) == (StatusCode.RESOURCE_EXHAUSTED, "slow down %")
        error = _code(lambda: call(b"no status", timeout=5))
        assert (error.code(), error.details()) == (
            StatusCode.INTERNAL,
            "response without grpc-status",
        )


def test_continuation_and_padding_are_understood(h2: Callable[..., _H2Server]) -> None:
    """Response headers split over HEADERS + CONTINUATION; padded DATA; message in 3 frames."""

    def answer(peer: _Peer, stream_id: int, body: bytes) -> None:
        block = peer.block([(":status", "200"), ("content-type", "application/grpc"),
                            ("x-long", "v" * 300)])  # fmt: skip
        peer.send(HEADERS, 0, stream_id, block[:10])
        peer.send(CONTINUATION, 0, stream_id, block[10:20])
        peer.send(CONTINUATION, END_HEADERS, stream_id, block[20:])
        message = b"\x00" + struct.pack(">L", len(body)) + body
        peer.send(DATA, PADDED, stream_id, b"\x03" + message[:3] + b"\x00" * 3)
        peer.send(DATA, 0, stream_id, message[3:8])
        peer.send(DATA, 0, stream_id, message[8:])
        peer.trailers(stream_id)

    server = h2(answer)
    with Channel(server.target) as channel:
        reply = channel.unary_unary("/a.B/C")(b"hello, padded world", timeout=5)
    assert reply == b"hello, padded world"


def test_a_bad_length_prefix_or_compressed_flag_is_internal(h2: Callable[..., _H2Server]) -> None:
    def answer(peer: _Peer, stream_id: int, body: bytes) -> None:
        peer.headers(stream_id)
        if body == b"short":
            peer.send(DATA, 0, stream_id, b"\x00" + struct.pack(">L", 10) + b"abc")
        else:
            peer.send(DATA, 0, stream_id, b"\x01" + struct.pack(">L", 3) + b"abc")
        peer.trailers(stream_id)

    server = h2(answer)
    with Channel(server.target) as channel:
        call = channel.unary_unary("/a.B/C")
        error = _code(lambda: call(b"short", timeout=5))
        assert (error.code(), error.details()) == (
            StatusCode.INTERNAL,
            "expected one length-prefixed message, got 8 bytes",
        )
        error = _code(lambda: call(b"compressed", timeout=5))
        assert error.code() is StatusCode.INTERNAL
        assert "compressed" in error.details()


def test_refused_stream_and_goaway_are_retried_once_transparently(
    h2: Callable[..., _H2Server],
) -> None:
    """Requests the server never processed (REFUSED_STREAM, or above GOAWAY's last stream id)
    go out again, once, as grpcio does; the caller sees only the answer."""
    seen: list[tuple[int, bytes]] = []

    def answer(peer: _Peer, stream_id: int, body: bytes) -> None:
        seen.append((stream_id, body))
        if body == b"refuse" and len(seen) == 1:
            peer.send(RST_STREAM, 0, stream_id, struct.pack(">L", 0x7))
        elif body == b"goaway" and len(seen) == 3:
            peer.send(GOAWAY, 0, 0, struct.pack(">LL", stream_id - 2, 0) + b"bye")
        else:
            peer.ok(stream_id, body)

    server = h2(answer)
    with Channel(server.target) as channel:
        call = channel.unary_unary("/a.B/C")
        assert call(b"refuse", timeout=5) == b"refuse"
        assert call(b"goaway", timeout=5) == b"goaway"
    assert [body for _, body in seen] == [b"refuse", b"refuse", b"goaway", b"goaway"]
    assert len(server.peers) == 2  # after the GOAWAY: a new connection


def test_a_reset_stream_is_an_error_not_retried(h2: Callable[..., _H2Server]) -> None:
    def answer(peer: _Peer, stream_id: int, body: bytes) -> None:
        peer.send(RST_STREAM, 0, stream_id, struct.pack(">L", 0x8))  # CANCEL

    server = h2(answer)
    with Channel(server.target) as channel:
        error = _code(lambda: channel.unary_unary("/a.B/C")(b"x", timeout=5))
    assert error.code() is StatusCode.CANCELLED
    assert server.requests == 1


def test_a_missed_deadline_resets_the_stream_on_the_wire(h2: Callable[..., _H2Server]) -> None:
    """The server is told (RST_STREAM CANCEL) so it can stop working on the call."""

    def answer(peer: _Peer, stream_id: int, body: bytes) -> None:
        if body == b"ok":
            peer.ok(stream_id, body)

    server = h2(answer)
    with Channel(server.target) as channel:
        call = channel.unary_unary("/a.B/C")
        error = _code(lambda: call(b"never answered", timeout=0.2))
        assert error.code() is StatusCode.DEADLINE_EXCEEDED
        assert call(b"ok", timeout=5) == b"ok"  # sent after the reset: the server has it now
    resets = [
        (sid, payload) for ftype, _, sid, payload in server.peers[0].frames if ftype == RST_STREAM
    ]
    assert resets == [(1, struct.pack(">L", 0x8))]


def test_a_frame_over_the_size_we_allow_aborts_the_connection(
    h2: Callable[..., _H2Server],
) -> None:
    def answer(peer: _Peer, stream_id: int, body: bytes) -> None:
        peer.headers(stream_id)
        peer.send(DATA, 0, stream_id, b"\x00" * 20_000)  # we said MAX_FRAME_SIZE 16384

    server = h2(answer)
    with Channel(server.target) as channel:
        error = _code(lambda: channel.unary_unary("/a.B/C")(b"x", timeout=5))
    assert error.code() is StatusCode.INTERNAL
    assert "20000 bytes" in error.details()
    gevent.sleep(0.05)
    goaways = [p for ftype, _, _, p in server.peers[0].frames if ftype == GOAWAY]
    assert goaways == [struct.pack(">LL", 0, 0x6)]  # FRAME_SIZE_ERROR, sent before closing


def test_server_pings_are_acked_and_settings_honoured(h2: Callable[..., _H2Server]) -> None:
    """A PING gets its ACK with the same data; with MAX_CONCURRENT_STREAMS 1 a second call
    waits for the first to end (answers come 50 ms late, while the server keeps reading)."""
    open_streams: set[int] = set()
    most = [0]

    def later(peer: _Peer, stream_id: int, body: bytes) -> None:
        gevent.sleep(0.05)
        open_streams.discard(stream_id)
        peer.ok(stream_id, body)

    def answer(peer: _Peer, stream_id: int, body: bytes) -> None:
        open_streams.add(stream_id)
        most[0] = max(most[0], len(open_streams))
        peer.send(PING, 0, 0, b"%08d" % stream_id)
        gevent.spawn(later, peer, stream_id, body)

    server = h2(answer, settings=struct.pack(">HL", 0x3, 1))
    with Channel(server.target) as channel:
        call = channel.unary_unary("/a.B/C")
        assert call(b"warm", timeout=5) == b"warm"  # the server's SETTINGS are in
        jobs = [gevent.spawn(call, b"%d" % i, timeout=5) for i in range(3)]
        gevent.joinall(jobs, timeout=10, raise_error=True)
        assert sorted(j.value for j in jobs) == [b"0", b"1", b"2"]
    acks = [p for ftype, flags, _, p in server.peers[0].frames if ftype == PING and flags & 0x1]
    assert acks == [b"%08d" % sid for sid in (1, 3, 5, 7)]
    assert most[0] == 1
