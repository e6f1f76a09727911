"""The fastest client Python can be: the floor Locust's added latency is measured against.

One blocking connection, one request at a time, no validation. HTTP: a raw socket sending
pre-built request bytes and reading the response by its Content-Length (no client library at
all). gRPC: a bare grpcio stub on pre-serialized bytes. It sends the same model and rows per
request as the Locust run it is compared to, and prints a JSON summary. `wrk` (C, when
installed) gives an external floor for HTTP.

    python -m servingbench.calibration.reference v2-json 127.0.0.1:9000 --seconds 5
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from servingbench.loadgen.payloads import build_payloads
from servingbench.wire import GRPC_METHOD, WIRE_FORMATS, get_wire

__all__ = ["http_request_bytes", "main", "measure", "run_wrk"]


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
    host, _, port = address.rpartition(":")
    sock = socket.create_connection((host, int(port)))
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


_WRK_LATENCY = re.compile(r"^\s*(50|99)(?:\.000)?%\s+([\d.]+)(us|ms|s)\s*$", re.MULTILINE)
_WRK_RPS = re.compile(r"Requests/sec:\s+([\d.]+)")
_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3}


def run_wrk(
    address: str, path: str, body: bytes, seconds: float, cpus: list[int] | None = None
) -> dict[str, float] | None:
    """wrk at one connection, one thread (None when wrk is not installed)."""
    wrk = shutil.which("wrk")
    if wrk is None:
        return None
    script = (
        'wrk.method = "POST"\nwrk.headers["Content-Type"] = "application/json"\n'
        f"wrk.body = {json.dumps(body.decode())}\n"
    )
    with tempfile.TemporaryDirectory() as tmp:
        lua = Path(tmp) / "post.lua"
        lua.write_text(script)
        argv = [wrk, "-t1", "-c1", f"-d{max(1, round(seconds))}s", "--latency", "-s", str(lua)]
        argv.append(f"http://{address}{path}")
        if cpus:
            argv = ["taskset", "-c", ",".join(map(str, cpus)), *argv]
        done = subprocess.run(
            argv, check=False, capture_output=True, text=True, timeout=seconds + 30
        )
    found = {p: float(v) * _UNITS[u] for p, v, u in _WRK_LATENCY.findall(done.stdout)}
    rps = _WRK_RPS.search(done.stdout)
    if done.returncode != 0 or "50" not in found or rps is None:
        raise RuntimeError(f"wrk failed ({done.returncode}): {done.stdout[-500:]}{done.stderr}")
    return {"rps": float(rps.group(1)), "p50_ms": found["50"], "p99_ms": found.get("99", 0.0)}


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
