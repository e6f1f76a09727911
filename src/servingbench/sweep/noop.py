"""No-op inference servers for `make calibrate`: constant, valid answers, far cheaper than Locust.

Every request body the load generator can send (`loadgen.payloads.build_payloads`) is mapped at
start-up to its complete, correct response, so the generator's validation stays on and each
request costs the server one dict lookup. REST: a raw HTTP/1.1 keep-alive server on asyncio
(uvloop); gRPC: grpcio with a generic handler on raw bytes (no protobuf work per request).

    python -m servingbench.sweep.noop rest --port 9000 --model breast-cancer
"""

from __future__ import annotations

import argparse
import asyncio
from concurrent import futures
from typing import cast

import orjson

from servingbench.loadgen.payloads import Payload, build_payloads
from servingbench.loadgen.scenarios import Protocol

__all__ = ["GRPC_SERVICE", "grpc_answers", "http_answers", "main", "serve_grpc", "serve_http"]

GRPC_SERVICE = "inference.GRPCInferenceService"


def _http_response(status: str, body: bytes) -> bytes:
    head = f"HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {len(body)}"
    return head.encode() + b"\r\n\r\n" + body


def _rest_body(model: str, protocol: Protocol, p: Payload) -> bytes:
    if protocol == "rest":
        return orjson.dumps({"labels": p.labels.tolist(), "probabilities": p.proba.tolist()})
    n, classes = p.proba.shape
    outputs = [
        {"name": "predict", "datatype": "INT64", "shape": [n, 1], "data": p.labels.tolist()},
        {"name": "predict_proba", "datatype": "FP64", "shape": [n, classes],
         "data": p.proba.reshape(-1).tolist()},
    ]  # fmt: skip
    return orjson.dumps({"model_name": model, "outputs": outputs})


def http_answers(model: str, rows_per_request: int) -> dict[bytes, bytes]:
    """Request body -> full HTTP response, for our /predict and V2 REST bodies alike."""
    protocols: tuple[Protocol, ...] = ("rest", "v2-rest")
    return {
        p.body: _http_response("200 OK", _rest_body(model, protocol, p))
        for protocol in protocols
        for p in build_payloads(protocol, model, rows_per_request)
    }


def grpc_answers(model: str, rows_per_request: int) -> dict[bytes, bytes]:
    """Serialized ModelInferRequest -> serialized ModelInferResponse."""
    from tritonclient.grpc import service_pb2

    answers = {}
    for p in build_payloads("grpc", model, rows_per_request):
        response = service_pb2.ModelInferResponse(model_name=model)
        labels = response.outputs.add(name="predict", datatype="INT64", shape=[p.n_rows, 1])
        labels.contents.int64_contents.extend(p.labels.tolist())
        proba = response.outputs.add(name="predict_proba", datatype="FP64", shape=p.proba.shape)
        proba.contents.fp64_contents.extend(p.proba.reshape(-1).tolist())
        answers[p.body] = response.SerializeToString()
    return answers


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


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m servingbench.sweep.noop")
    parser.add_argument("protocol", choices=["rest", "grpc"])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--model", default="breast-cancer")
    parser.add_argument("--rows", type=int, default=1)
    args = parser.parse_args(argv)
    if args.protocol == "grpc":
        serve_grpc(args.host, args.port, grpc_answers(args.model, args.rows))
        return
    import uvloop

    uvloop.run(serve_http(args.host, args.port, http_answers(args.model, args.rows)))


if __name__ == "__main__":
    main()
