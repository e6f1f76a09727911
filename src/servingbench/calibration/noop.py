"""No-op inference servers for `make calibrate`: the real answers, in microseconds.

Every request body the load generator can send (`loadgen.payloads.build_payloads`) is mapped at
start-up to the response a real server gives it, built by the same code (`servingbench.wire`):
our `/predict` document, MLServer's V2 JSON and gRPC messages (a fixed request id of a uuid's
length stands in for the server's random one). So the generator's validation stays on, it
reads the very bytes it reads from a real server, and each request costs the server one dict
lookup. Both run on asyncio (uvloop): HTTP/1.1 keep-alive for REST, and for gRPC just enough
HTTP/2 for unary calls (preface, SETTINGS and ACKs, PING ACKs, WINDOW_UPDATEs, HEADERS/DATA/
RST_STREAM, a static response header block): grpcio's own server spends about 180 us of CPU per
call and would be the limit of a calibration meant to find the generator's. Unknown bodies get
HTTP 400 or gRPC INVALID_ARGUMENT.

    python -m servingbench.calibration.noop http --port 9000 --model breast-cancer
"""

from __future__ import annotations

import argparse
import asyncio
import struct
import sys
from pathlib import Path
from typing import cast

import orjson
from hpack import Decoder

from servingbench.loadgen.payloads import Payload, build_payloads
from servingbench.servers.base import LaunchSpec
from servingbench.wire import (
    RESPONSE_JSON,
    WIRE_FORMATS,
    Transport,
    WireName,
    predict_response,
    v2_grpc_response,
    v2_response,
)

__all__ = [
    "answers",
    "grpc_answers",
    "http_answers",
    "main",
    "noop_spec",
    "serve_grpc",
    "serve_http",
]

VERSION = "1"
REQUEST_ID = "00000000-0000-4000-8000-000000000000"  # a uuid4's length


def _http_response(status: str, body: bytes) -> bytes:
    head = f"HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {len(body)}"
    return head.encode() + b"\r\n\r\n" + body


def _answer(wire: WireName, model: str, p: Payload) -> bytes:
    """The body a real server answers payload `p` with (see the module docstring)."""
    if wire == "predict-json":
        doc = predict_response(model, VERSION, {"predict": p.labels, "predict_proba": p.proba32})
        return orjson.dumps(doc, option=RESPONSE_JSON)
    if wire == "v2-json":
        doc = v2_response(model, VERSION, REQUEST_ID, {"predict_proba": p.proba32})
        return orjson.dumps(doc, option=RESPONSE_JSON)
    message = v2_grpc_response(model, VERSION, REQUEST_ID, {"predict_proba": p.proba32})
    return bytes(message.SerializeToString())


def answers(wires: tuple[WireName, ...], model: str, rows_per_request: int) -> dict[bytes, bytes]:
    """Request body -> response body for every payload of `wires`."""
    return {
        p.body: _answer(wire, model, p)
        for wire in wires
        for p in build_payloads(wire, model, rows_per_request)
    }


def http_answers(model: str, rows_per_request: int) -> dict[bytes, bytes]:
    """Request body -> full HTTP response, for every HTTP wire format's bodies."""
    wires = tuple(w.name for w in WIRE_FORMATS.values() if w.transport == "http")
    return {
        body: _http_response("200 OK", reply)
        for body, reply in answers(wires, model, rows_per_request).items()
    }


def grpc_answers(model: str, rows_per_request: int) -> dict[bytes, bytes]:
    """Serialized ModelInferRequest -> serialized ModelInferResponse."""
    return answers(("v2-grpc",), model, rows_per_request)


Reply = tuple[bytes, bytes]
"""An HTTP response as its head and its body, written separately."""


def _split(response: bytes) -> Reply:
    """uvicorn writes a response's head and its body with two `write` calls (two TCP segments:
    the socket has TCP_NODELAY), so a client reading a real server usually wakes twice per
    response; answering in one write would calibrate a cheaper read than the real one."""
    end = response.index(b"\r\n\r\n") + 4
    return response[:end], response[end:]


_UNKNOWN = _split(
    _http_response("400 Bad Request", b'{"error": "not a body the load generator sends"}')
)
_HEALTH = _split(_http_response("200 OK", b"{}"))


class _HttpConnection(asyncio.Protocol):
    """Minimal HTTP/1.1: request line, headers, content-length body; keep-alive always."""

    def __init__(self, answers: dict[bytes, Reply]) -> None:
        self._answers = answers
        self._buffer = b""
        self._transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass

    def data_received(self, data: bytes) -> None:
        self._buffer += data
        while (head_end := self._buffer.find(b"\r\n\r\n")) >= 0:
            head = self._buffer[:head_end]
            length = 0
            for line in head.split(b"\r\n")[1:]:
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value)
            end = head_end + 4 + length
            if len(self._buffer) < end:
                return
            body = self._buffer[head_end + 4 : end]
            self._buffer = self._buffer[end:]
            reply = self._answers.get(body, _UNKNOWN) if head.startswith(b"POST") else _HEALTH
            assert self._transport is not None
            self._transport.write(reply[0])
            self._transport.write(reply[1])


async def serve_http(host: str, port: int, answers: dict[bytes, bytes]) -> None:
    loop = asyncio.get_running_loop()
    replies = {body: _split(response) for body, response in answers.items()}
    server = await loop.create_server(lambda: _HttpConnection(replies), host, port, backlog=1024)
    async with server:
        await server.serve_forever()


_FRAME = struct.Struct(">LBL")
_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
# :status 200 (static 8), content-type: application/grpc (literal, name index 31)
_RESPONSE_HEADERS = b"\x88" + b"\x0f\x10" + bytes([16]) + b"application/grpc"
_TRAILERS_OK = b"\x00" + bytes([11]) + b"grpc-status" + b"\x01" + b"0"
_MESSAGE = b"not a request the generator sends"
_TRAILERS_BAD = (
    b"\x00" + bytes([11]) + b"grpc-status" + b"\x01" + b"3"
    + b"\x00" + bytes([12]) + b"grpc-message" + bytes([len(_MESSAGE)]) + _MESSAGE
)  # fmt: skip


def _frame(ftype: int, flags: int, stream_id: int, payload: bytes) -> bytes:
    return _FRAME.pack(len(payload) << 8 | ftype, flags, stream_id) + payload


class _H2Server(asyncio.Protocol):
    def __init__(self, answers: dict[bytes, bytes]) -> None:
        self.answers = answers
        self.buf = b""
        self.preface = False
        self.decoder = Decoder()
        self.bodies: dict[int, list[bytes]] = {}
        self.transport: asyncio.Transport | None = None
        self.resized = False  # the client's SETTINGS_HEADER_TABLE_SIZE 0 calls for an update

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)
        settings = struct.pack(">HL", 0x4, 1 << 20) + struct.pack(">HL", 0x3, 1000)
        update = struct.pack(">L", (1 << 24))
        self.transport.write(_frame(0x4, 0, 0, settings) + _frame(0x8, 0, 0, update))

    def data_received(self, data: bytes) -> None:  # noqa: PLR0915 - one frame dispatch loop
        buf = self.buf + data if self.buf else data
        pos = 0
        if not self.preface:
            if len(buf) < 24:
                self.buf = buf
                return
            if buf[:24] != _PREFACE:
                assert self.transport is not None
                self.transport.close()
                return
            self.preface = True
            pos = 24
        out = []
        received = 0
        end_buf = len(buf)
        while end_buf - pos >= 9:
            length_type, flags, sid = _FRAME.unpack_from(buf, pos)
            end = pos + 9 + (length_type >> 8)
            if end > end_buf:
                break
            ftype = length_type & 0xFF
            sid &= 0x7FFFFFFF
            payload = buf[pos + 9 : end]
            if ftype == 0x0:  # DATA
                received += len(payload)
                if flags & 0x8:
                    payload = payload[1 : len(payload) - payload[0]]
                self.bodies.setdefault(sid, []).append(payload)
                if flags & 0x1:
                    out.append(self._answer(sid))
            elif ftype in (0x1, 0x9):  # HEADERS / CONTINUATION (assumed END_HEADERS)
                if ftype == 0x1 and flags & 0x8:
                    payload = payload[1 : len(payload) - payload[0]]
                if ftype == 0x1 and flags & 0x20:
                    payload = payload[5:]
                self.decoder.decode(payload)
                self.bodies.setdefault(sid, [])
                if flags & 0x1:
                    out.append(self._answer(sid))
            elif ftype == 0x4 and not flags & 0x1:  # SETTINGS
                out.append(_frame(0x4, 0x1, 0, b""))
            elif ftype == 0x6 and not flags & 0x1:  # PING
                out.append(_frame(0x6, 0x1, 0, payload))
            elif ftype == 0x3:  # RST_STREAM
                self.bodies.pop(sid, None)
            elif ftype == 0x7:  # GOAWAY
                assert self.transport is not None
                self.transport.close()
                return
            pos = end
        self.buf = buf[pos:] if pos < end_buf else b""
        if received:
            update = struct.pack(">L", received)
            out.append(_frame(0x8, 0, 0, update))
        if out:
            assert self.transport is not None
            self.transport.write(b"".join(out))

    def _answer(self, sid: int) -> bytes:
        head = _RESPONSE_HEADERS
        if not self.resized:  # dynamic table size update to 0 first (RFC 7541 section 4.2)
            head = b"\x20" + head
            self.resized = True
        parts = self.bodies.pop(sid, [])
        data = parts[0] if len(parts) == 1 else b"".join(parts)
        reply = self.answers.get(data[5:]) if len(data) >= 5 and data[0] == 0 else None
        if reply is None:
            return _frame(0x1, 0x4 | 0x1, sid, head + _TRAILERS_BAD)
        message = b"\x00" + struct.pack(">L", len(reply)) + reply
        return (
            _frame(0x1, 0x4, sid, head)
            + _frame(0x0, 0, sid, message)
            + _frame(0x1, 0x4 | 0x1, sid, _TRAILERS_OK)
        )


async def serve_grpc(host: str, port: int, answers: dict[bytes, bytes]) -> None:
    """gRPC over a minimal HTTP/2 server (see the module docstring)."""
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: _H2Server(answers), host, port, backlog=1024)
    async with server:
        await server.serve_forever()


def noop_spec(
    transport: Transport, host: str, port: int, model: str, rows: int, workdir: Path
) -> LaunchSpec:
    """How to launch a no-op server (harness environment), ready when it answers."""
    argv = [sys.executable, "-m", "servingbench.calibration.noop", transport, "--host", host]
    argv += ["--port", str(port), "--model", model, "--rows", str(rows)]
    ready = f"http://{host}:{port}/" if transport == "http" else f"tcp://{host}:{port}"
    return LaunchSpec(
        name=f"noop-{transport}",
        backend="noop",
        argv=argv,
        env={},
        ready_urls=[ready],
        ports={transport: port},
        workdir=workdir,
        host=host,
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m servingbench.calibration.noop")
    parser.add_argument("transport", choices=["http", "grpc"])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--model", default="breast-cancer")
    parser.add_argument("--rows", type=int, default=1)
    args = parser.parse_args(argv)
    import uvloop

    if args.transport == "grpc":
        uvloop.run(serve_grpc(args.host, args.port, grpc_answers(args.model, args.rows)))
    else:
        uvloop.run(serve_http(args.host, args.port, http_answers(args.model, args.rows)))


if __name__ == "__main__":
    main()
