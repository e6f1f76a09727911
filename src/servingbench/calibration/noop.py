"""No-op inference servers for `make calibrate`: the real answers, in microseconds.

Every request body the load generator can send (`loadgen.payloads.build_payloads`) is mapped at
start-up to the response a real server gives it, built by the same code (`servingbench.wire`):
our `/predict` document, MLServer's V2 JSON and gRPC messages (a fixed request id of a uuid's
length stands in for the server's random one). So the generator's validation stays on, it
reads the very bytes it reads from a real server, and each request costs the server one dict
lookup. REST: a raw HTTP/1.1 keep-alive server on asyncio (uvloop); gRPC: grpcio with a generic
handler on raw bytes (no protobuf work per request).

    python -m servingbench.calibration.noop http --port 9000 --model breast-cancer
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from concurrent import futures
from pathlib import Path
from typing import cast

import orjson

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
    "GRPC_SERVICE",
    "answers",
    "grpc_answers",
    "http_answers",
    "main",
    "noop_spec",
    "serve_grpc",
    "serve_http",
]

GRPC_SERVICE = "inference.GRPCInferenceService"
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


_UNKNOWN = _http_response("400 Bad Request", b'{"error": "not a body the load generator sends"}')
_HEALTH = _http_response("200 OK", b"{}")


class _HttpConnection(asyncio.Protocol):
    """Minimal HTTP/1.1: request line, headers, content-length body; keep-alive always."""

    def __init__(self, answers: dict[bytes, bytes]) -> None:
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
            self._transport.write(reply)


async def serve_http(host: str, port: int, answers: dict[bytes, bytes]) -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: _HttpConnection(answers), host, port, backlog=1024)
    async with server:
        await server.serve_forever()


def serve_grpc(host: str, port: int, answers: dict[bytes, bytes]) -> None:
    import grpc

    def infer(request: bytes, context: grpc.ServicerContext) -> bytes:
        reply = answers.get(request)
        if reply is None:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, "not a request the generator sends")
        return reply  # type: ignore[return-value]

    handler = grpc.method_handlers_generic_handler(
        GRPC_SERVICE, {"ModelInfer": grpc.unary_unary_rpc_method_handler(infer)}
    )
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4), handlers=[handler])
    server.add_insecure_port(f"{host}:{port}")
    server.start()
    server.wait_for_termination()


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
    if args.transport == "grpc":
        serve_grpc(args.host, args.port, grpc_answers(args.model, args.rows))
        return
    import uvloop

    uvloop.run(serve_http(args.host, args.port, http_answers(args.model, args.rows)))


if __name__ == "__main__":
    main()
