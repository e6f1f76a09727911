"""The REST user's raw keep-alive HTTP/1.1 client against real local servers.

Edge cases (how a body is framed, a server closing, a server that never answers, TLS) come from
a small gevent server whose answers each test writes byte for byte; the round trip with real
answers comes from the calibration no-op server (`servingbench.calibration.noop`).
"""

from __future__ import annotations

import asyncio
import ssl
import time
from collections.abc import Callable, Iterator
from typing import Any

import gevent
import gevent.server
import gevent.ssl
import numpy as np
import pytest

from servingbench.calibration.noop import http_answers, serve_http
from servingbench.loadgen import http1
from servingbench.loadgen.http1 import (
    HttpConnection,
    HttpReply,
    HttpResponseError,
    parse_server_timing,
)
from servingbench.loadgen.payloads import Payload, build_payloads
from servingbench.loadgen.verdicts import OK, check_http, classify_exception
from servingbench.runs.records import Outcome
from servingbench.wire import get_wire

from ._local import Certs, free_port, running_asyncio_server

PAYLOAD = Payload(b'{"x":1}', 1, np.array([0]), np.array([[1.0, 0.0]]))

Respond = Callable[[Any, bytes], bool]
"""Answer one request on a socket; False closes the connection."""


class _Server:
    """A local HTTP/1.1 server (gevent, loopback) that reads whole requests and lets the test
    answer each with raw bytes; counts connections and requests."""

    def __init__(self, respond: Respond, ssl_context: ssl.SSLContext | None = None) -> None:
        self.respond = respond
        self.connections = 0
        self.requests: list[bytes] = []
        ssl_args: dict[str, Any] = {"ssl_context": ssl_context} if ssl_context else {}
        self.server = gevent.server.StreamServer(("127.0.0.1", 0), self._handle, **ssl_args)

    @property
    def port(self) -> int:
        return int(self.server.server_port)

    def _handle(self, sock: Any, _address: Any) -> None:
        self.connections += 1
        buffer = b""
        try:
            while True:
                while b"\r\n\r\n" not in buffer:
                    chunk = sock.recv(65536)
                    if not chunk:
                        return
                    buffer += chunk
                head, _, buffer = buffer.partition(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n")[1:]:
                    name, _, value = line.partition(b":")
                    if name.strip().lower() == b"content-length":
                        length = int(value)
                while len(buffer) < length:
                    buffer += sock.recv(65536)
                request, buffer = head + b"\r\n\r\n" + buffer[:length], buffer[length:]
                self.requests.append(request)
                if not self.respond(sock, request):
                    return
        except OSError:  # the client went away (or a TLS handshake failed)
            return
        finally:
            sock.close()


@pytest.fixture
def serve() -> Iterator[Callable[..., _Server]]:
    """Start `_Server`s for a test; all stopped at its end."""
    started: list[_Server] = []

    def start(respond: Respond, ssl_context: ssl.SSLContext | None = None) -> _Server:
        server = _Server(respond, ssl_context)
        server.server.start()
        started.append(server)
        return server

    yield start
    for server in started:
        server.server.stop(timeout=1)


def _ok(body: bytes = b'{"ok":true}', extra: bytes = b"") -> bytes:
    return b"HTTP/1.1 200 OK\r\ncontent-length: %d\r\n%s\r\n%s" % (len(body), extra, body)


def _answer(response: bytes) -> Respond:
    def respond(sock: Any, request: bytes) -> bool:
        sock.sendall(response)
        return True

    return respond


def _post(connection: HttpConnection, body: bytes = b'{"x":1}', path: str = "/infer") -> HttpReply:
    return connection.request(connection.head(path, len(body)) + body)


def test_the_request_head_is_a_json_post_with_host_and_length() -> None:
    connection = HttpConnection("http://127.0.0.1:8080/", timeout_s=1)
    assert connection.head("/v2/models/iris/infer", 17) == (
        b"POST /v2/models/iris/infer HTTP/1.1\r\nHost: 127.0.0.1:8080\r\n"
        b"Content-Type: application/json\r\nContent-Length: 17\r\n\r\n"
    )


def test_only_http_urls() -> None:
    with pytest.raises(ValueError, match="not an http"):
        HttpConnection("grpc://127.0.0.1:8081", timeout_s=1)
    assert HttpConnection("https://example.org", timeout_s=1).port == 443
    assert HttpConnection("http://example.org", timeout_s=1).port == 80


def test_keep_alive_sends_every_request_on_one_connection(
    serve: Callable[..., _Server],
) -> None:
    server = serve(_answer(_ok(b'{"n":1}')))
    connection = HttpConnection(f"http://127.0.0.1:{server.port}", timeout_s=5)
    for i in range(5):
        reply = _post(connection, b'{"i":%d}' % i)
        assert (reply.status, reply.body, len(reply)) == (200, b'{"n":1}', 7)
    assert server.connections == 1
    assert [r.rsplit(b"\r\n\r\n", 1)[1] for r in server.requests] == [
        b'{"i":%d}' % i for i in range(5)
    ]
    assert server.requests[0].startswith(b"POST /infer HTTP/1.1\r\nHost: 127.0.0.1:")
    connection.close()


def test_a_body_that_arrives_in_pieces_is_read_whole(serve: Callable[..., _Server]) -> None:
    """Head and a 1 MiB body trickle in over many writes: the read waits for Content-Length."""
    body = bytes(range(256)) * 4096

    def respond(sock: Any, request: bytes) -> bool:
        data = _ok(body)
        for cut in (5, 17, 40, 1000, 300_000, len(data)):
            sock.sendall(data[:cut])
            data = data[cut:]
            gevent.sleep(0.002)
        return True

    server = serve(respond)
    connection = HttpConnection(f"http://127.0.0.1:{server.port}", timeout_s=5)
    assert _post(connection).body == body
    assert _post(connection).body == body  # nothing left over from the first answer
    assert server.connections == 1


def test_chunked_body(serve: Callable[..., _Server]) -> None:
    """Chunked encoding, with a chunk extension; the connection stays in step afterwards."""
    chunked = (
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"5\r\nhello\r\n1;ext=1\r\n \r\nA\r\n0123456789\r\n0\r\n\r\n"
    )
    answers = iter([chunked, _ok(b"after")])

    def respond(sock: Any, request: bytes) -> bool:
        sock.sendall(next(answers))
        return True

    server = serve(respond)
    connection = HttpConnection(f"http://127.0.0.1:{server.port}", timeout_s=5)
    assert _post(connection).body == b"hello 0123456789"
    assert _post(connection).body == b"after"
    assert server.connections == 1


@pytest.mark.parametrize(
    ("value", "ms"),
    [
        ("app;dur=0.123, model;dur=0.045, queue;dur=0.002", 0.123),  # our service's header
        ("queue;dur=0.5, app;dur=2.25", 2.25),
        ('app;desc="whole request";dur=1.5', 1.5),
        ("APP;DUR=7", 7.0),
        ("app ; dur=3", 3.0),
        ("myapp;dur=9, app;dur=4", 4.0),
        ("model;dur=1", None),
        ("app", None),
        ("", None),
    ],
)
def test_server_timing_parse(value: str, ms: float | None) -> None:
    assert parse_server_timing(value) == ms


def test_server_timing_header_becomes_the_reply_s_server_time(
    serve: Callable[..., _Server],
) -> None:
    timed = _ok(extra=b"Server-Timing: app;dur=0.420, model;dur=0.300\r\n")
    answers = iter([timed, _ok()])

    def respond(sock: Any, request: bytes) -> bool:
        sock.sendall(next(answers))
        return True

    server = serve(respond)
    connection = HttpConnection(f"http://127.0.0.1:{server.port}", timeout_s=5)
    assert _post(connection).server_ns == 420_000
    assert _post(connection).server_ns == -1  # no header: unknown


def test_an_error_status_is_an_answer_and_keeps_the_connection(
    serve: Callable[..., _Server],
) -> None:
    error = b'{"error": "features has 3 value(s)"}'
    answers = iter(
        [
            b"HTTP/1.1 503 Service Unavailable\r\ncontent-length: %d\r\n\r\n%s"
            % (len(error), error),
            _ok(),
        ]
    )

    def respond(sock: Any, request: bytes) -> bool:
        sock.sendall(next(answers))
        return True

    server = serve(respond)
    connection = HttpConnection(f"http://127.0.0.1:{server.port}", timeout_s=5)
    reply = _post(connection)
    assert (reply.status, reply.body) == (503, error)
    decode = get_wire("v2-json").decode
    verdict = check_http(reply.status, reply.body, PAYLOAD, decode)
    assert verdict == (Outcome.HTTP_STATUS, 'HTTP 503: {"error": "features has 3 value(s)"}')
    assert _post(connection).status == 200
    assert server.connections == 1


def test_connection_close_header_opens_a_new_connection(serve: Callable[..., _Server]) -> None:
    def respond(sock: Any, request: bytes) -> bool:
        sock.sendall(_ok(extra=b"Connection: close\r\n"))
        return False

    server = serve(respond)
    connection = HttpConnection(f"http://127.0.0.1:{server.port}", timeout_s=5)
    for _ in range(3):
        assert _post(connection).status == 200
    assert server.connections == 3


def test_a_server_closing_an_idle_connection_fails_one_request_then_reconnects(
    serve: Callable[..., _Server],
) -> None:
    """Not retried (the failure is recorded as a connection error); the next one reconnects."""

    def respond(sock: Any, request: bytes) -> bool:
        sock.sendall(_ok())
        return False  # closes without saying so

    server = serve(respond)
    connection = HttpConnection(f"http://127.0.0.1:{server.port}", timeout_s=5)
    assert _post(connection).status == 200
    gevent.sleep(0.05)  # the server's FIN arrives
    with pytest.raises(ConnectionError) as failure:
        _post(connection)
    assert classify_exception(failure.value)[0] is Outcome.CONNECTION
    assert _post(connection).status == 200
    assert server.connections == 2


def test_a_connection_closed_while_idle_is_reopened_before_the_request(
    serve: Callable[..., _Server], monkeypatch: pytest.MonkeyPatch
) -> None:
    """`ensure_open` (what a user calls before timing a request) notices the server's close of
    an idle keep-alive connection and reopens it: the request then succeeds, on a connection
    opened outside its timing."""
    monkeypatch.setattr(http1, "IDLE_CHECK_S", 0.0)

    def respond(sock: Any, request: bytes) -> bool:
        sock.sendall(_ok())
        return False  # closes without saying so, like a keep-alive timeout

    server = serve(respond)
    connection = HttpConnection(f"http://127.0.0.1:{server.port}", timeout_s=5)
    connection.ensure_open()
    assert connection.opened == 1
    assert _post(connection).status == 200
    gevent.sleep(0.05)  # the server's FIN arrives
    connection.ensure_open()
    assert connection.opened == 2
    assert _post(connection).status == 200
    assert connection.opened == 2  # the request itself opened nothing
    assert server.connections == 2


def test_a_busy_connection_is_not_checked(serve: Callable[..., _Server]) -> None:
    """Within `IDLE_CHECK_S` of its last answer a connection is reused without a look."""
    server = serve(_answer(_ok()))
    connection = HttpConnection(f"http://127.0.0.1:{server.port}", timeout_s=5)
    for _ in range(3):
        connection.ensure_open()
        assert _post(connection).status == 200
    assert (connection.opened, server.connections) == (1, 1)


def test_closed_in_the_middle_of_a_body(serve: Callable[..., _Server]) -> None:
    def respond(sock: Any, request: bytes) -> bool:
        sock.sendall(b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\n0123456789")
        return False

    server = serve(respond)
    connection = HttpConnection(f"http://127.0.0.1:{server.port}", timeout_s=5)
    with pytest.raises(HttpResponseError, match="connection closed before a response") as failure:
        _post(connection)
    assert classify_exception(failure.value) == (
        Outcome.CONNECTION,
        "connection closed before a response",
    )


def test_a_server_that_never_answers_times_out_and_the_connection_is_replaced(
    serve: Callable[..., _Server],
) -> None:
    """The timeout bounds the whole answer; a half-read connection is never reused."""
    answers = iter([None, _ok(b"second")])

    def respond(sock: Any, request: bytes) -> bool:
        answer = next(answers)
        if answer is None:
            gevent.sleep(30)  # killed when the server stops
        else:
            sock.sendall(answer)
        return True

    server = serve(respond)
    connection = HttpConnection(f"http://127.0.0.1:{server.port}", timeout_s=0.3)
    began = time.monotonic()
    with pytest.raises(TimeoutError, match="no complete answer in time") as failure:
        _post(connection)
    elapsed = time.monotonic() - began
    assert 0.25 <= elapsed < 10
    assert classify_exception(failure.value) == (
        Outcome.TIMEOUT,
        "timeout: no complete answer in time",
    )
    assert _post(connection).body == b"second"
    assert server.connections == 2


@pytest.mark.parametrize(
    ("response", "message"),
    [
        (b"SSH-2.0-OpenSSH_9.6\r\n\r\n", "not an HTTP response"),
        (b"HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\n\r\nbody", "without Content-Length"),
    ],
)
def test_what_is_not_an_http_1_1_answer_is_malformed(
    serve: Callable[..., _Server], response: bytes, message: str
) -> None:
    server = serve(_answer(response))
    connection = HttpConnection(f"http://127.0.0.1:{server.port}", timeout_s=5)
    with pytest.raises(HttpResponseError, match=message) as failure:
        _post(connection)
    assert classify_exception(failure.value)[0] is Outcome.MALFORMED


def test_refused_connection() -> None:
    connection = HttpConnection(f"http://127.0.0.1:{free_port()}", timeout_s=5)
    with pytest.raises(ConnectionRefusedError) as failure:
        _post(connection)
    outcome, reason = classify_exception(failure.value)
    assert outcome is Outcome.CONNECTION
    assert reason.startswith("connection error: ConnectionRefusedError")


# --- TLS -----------------------------------------------------------------------------------


class _TlsCounter:
    connections = 0


def _tls_answering(certs: Certs, seen: _TlsCounter) -> Callable[[str, int], Any]:
    """An asyncio HTTPS server (its own thread) answering every request with `secure`."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(str(certs.cert), str(certs.key))

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        seen.connections += 1
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = int(head.lower().split(b"content-length:")[1].split(b"\r\n")[0])
                await reader.readexactly(length)
                writer.write(_ok(b"secure"))
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, ssl.SSLError):
            writer.close()

    async def serve(host: str, port: int) -> None:
        server = await asyncio.start_server(handle, host, port, ssl=context)
        async with server:
            await server.serve_forever()

    return serve


def test_https_with_the_ca_bundle(certs: Certs) -> None:
    seen = _TlsCounter()
    with running_asyncio_server(_tls_answering(certs, seen)) as port:
        for host in ("localhost", "127.0.0.1"):  # by name and by IP address (both in the SAN)
            connection = HttpConnection(f"https://{host}:{port}", 5, str(certs.ca))
            assert connection.tls
            assert _post(connection).body == b"secure"
            assert _post(connection).body == b"secure"  # kept alive over TLS too
            connection.close()
    assert seen.connections == 2


def test_https_refuses_an_untrusted_certificate(certs: Certs) -> None:
    seen = _TlsCounter()
    with running_asyncio_server(_tls_answering(certs, seen)) as port:
        connection = HttpConnection(f"https://localhost:{port}", timeout_s=5)  # system CAs
        with pytest.raises(ssl.SSLCertVerificationError) as failure:
            _post(connection)
    outcome, reason = classify_exception(failure.value)
    assert outcome is Outcome.CONNECTION
    assert "CERTIFICATE_VERIFY_FAILED" in reason


def test_plain_http_to_a_tls_port_is_a_connection_error(certs: Certs) -> None:
    seen = _TlsCounter()
    with running_asyncio_server(_tls_answering(certs, seen)) as port:
        connection = HttpConnection(f"http://127.0.0.1:{port}", timeout_s=5)
        with pytest.raises(ConnectionError) as failure:
            _post(connection)
    assert classify_exception(failure.value)[0] is Outcome.CONNECTION


def test_the_tls_handshake_lets_other_greenlets_run(
    serve: Callable[..., _Server], certs: Certs
) -> None:
    """The client's TLS is gevent's even where `ssl` is not monkey-patched (as here): with a
    stdlib context the handshake would block the whole hub, so this server, in the same hub,
    could never answer and the request would time out."""
    context = gevent.ssl.SSLContext(gevent.ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(str(certs.cert), str(certs.key))
    server = serve(_answer(_ok(b"secure")), context)
    connection = HttpConnection(f"https://localhost:{server.port}", 1.0, str(certs.ca))
    assert _post(connection).body == b"secure"


# --- the calibration no-op server: real answers --------------------------------------------


def test_real_answers_from_the_no_op_server_validate(trained_models: None) -> None:
    """Every payload the REST user sends, as it sends it, gets an answer that checks OK."""
    answers = http_answers("iris", 1)
    with running_asyncio_server(lambda host, port: serve_http(host, port, answers)) as port:
        connection = HttpConnection(f"http://127.0.0.1:{port}", timeout_s=5)
        for wire_name in ("v2-json", "predict-json"):
            wire = get_wire(wire_name)
            payloads = build_payloads(wire_name, "iris", 1)
            for payload in payloads[:10]:
                reply = connection.request(
                    connection.head(wire.path("iris"), len(payload.body)) + payload.body
                )
                assert check_http(reply.status, reply.body, payload, wire.decode) == OK
            unknown = b'{"not": "a payload"}'
            reply = _post(connection, unknown, wire.path("iris"))
            assert reply.status == 400
            assert check_http(reply.status, reply.body, payloads[0], wire.decode) == (
                Outcome.HTTP_STATUS,
                'HTTP 400: {"error": "not a body the load generator sends"}',
            )
        connection.close()


def test_a_wrong_answer_is_caught(trained_models: None) -> None:
    """The no-op server's answer to payload 0, checked against payload 1: not accepted."""
    answers = http_answers("iris", 1)
    with running_asyncio_server(lambda host, port: serve_http(host, port, answers)) as port:
        wire = get_wire("v2-json")
        payloads = build_payloads("v2-json", "iris", 1)
        other = next(p for p in payloads if not (p.labels == payloads[0].labels).all())
        connection = HttpConnection(f"http://127.0.0.1:{port}", timeout_s=5)
        reply = _post(connection, payloads[0].body, wire.path("iris"))
        outcome, reason = check_http(reply.status, reply.body, other, wire.decode)
        assert outcome is Outcome.WRONG_ANSWER
        assert reason.startswith("wrong answer:")
        connection.close()
