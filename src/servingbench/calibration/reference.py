"""The fastest client Python can be: the floor Locust's added latency is measured against.

One blocking connection, one request at a time, no validation. HTTP: a raw socket sending
pre-built request bytes and reading the response by its Content-Length (no client library at
all). gRPC: a bare grpcio stub on pre-serialized bytes. It sends the same model and rows per
request as the Locust run it is compared to, and prints a JSON summary. `loadgen.wrk` (C, when
installed) gives an external floor for HTTP.

    python -m servingbench.calibration.reference v2-json 127.0.0.1:9000 --seconds 5
"""

from __future__ import annotations

import argparse
import json
import re
import socket
import time
from collections.abc import Callable

import numpy as np

from servingbench.addresses import parse_address
from servingbench.loadgen.payloads import build_payloads
from servingbench.wire import GRPC_METHOD, WIRE_FORMATS, get_wire

__all__ = ["http_request_bytes", "main", "measure"]


def measure(call: Callable[[], object], seconds: float, warmup_s: float) -> dict[str, float]:
    """Call back to back; latency percentiles (ms) of the calls after `warmup_s`."""
    deadline = time.perf_counter() + warmup_s
    while time.perf_counter() < deadline:
        call()
    latencies = []
    begin = time.perf_counter_ns()
    end = begin + int(seconds * 1e9)
    while (start := time.perf_counter_ns()) < end:
        call()
        latencies.append(time.perf_counter_ns() - start)
    elapsed_s = (time.perf_counter_ns() - begin) / 1e9
    values = np.asarray(latencies, dtype=np.float64) / 1e6
    p50, p99 = np.percentile(values, [50, 99])
    return {"rps": values.size / elapsed_s, "p50_ms": float(p50), "p99_ms": float(p99)}


def http_request_bytes(host: str, path: str, body: bytes) -> bytes:
    """A complete HTTP/1.1 keep-alive POST, built once."""
    head = (
        f"POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    )
    return head.encode("latin-1") + body


_LENGTH = re.compile(rb"\r\ncontent-length:\s*(\d+)", re.IGNORECASE)


def _raw_http_call(address: str, request: bytes) -> Callable[[], bytes]:
    where = parse_address(address)
    sock = socket.create_connection((where.host, where.port or 0))
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    buffer = bytearray()

    def call() -> bytes:
        sock.sendall(request)
        while (end := buffer.find(b"\r\n\r\n")) < 0:
            buffer.extend(sock.recv(65536))
        head = bytes(buffer[:end])
        if not head.startswith(b"HTTP/1.1 200"):
            raise RuntimeError(f"unexpected answer: {head[:200]!r}")
        match = _LENGTH.search(head)
        if match is None:
            raise RuntimeError("response without Content-Length")
        total = end + 4 + int(match.group(1))
        while len(buffer) < total:
            buffer.extend(sock.recv(65536))
        body = bytes(buffer[end + 4 : total])
        del buffer[:total]
        return body

    return call


def _grpc_call(address: str, body: bytes) -> Callable[[], object]:
    import grpc

    stub = grpc.insecure_channel(address).unary_unary(GRPC_METHOD)
    return lambda: stub(body)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m servingbench.calibration.reference")
    parser.add_argument("wire", choices=list(WIRE_FORMATS))
    parser.add_argument("address", help="host:port")
    parser.add_argument("--model", default="breast-cancer")
    parser.add_argument(
        "--rows", type=int, default=1, help="rows per request, as the Locust run it is compared to"
    )
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--warmup", type=float, default=1.0)
    args = parser.parse_args(argv)
    wire = get_wire(args.wire)
    body = build_payloads(wire.name, args.model, args.rows)[0].body
    if wire.transport == "grpc":
        call = _grpc_call(args.address, body)
    else:
        request = http_request_bytes(args.address, wire.path(args.model), body)
        call = _raw_http_call(args.address, request)
    print(json.dumps(measure(call, args.seconds, args.warmup)))


if __name__ == "__main__":
    main()
