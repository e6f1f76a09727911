"""The simplest possible client, the floor Locust's added latency is measured against.

One blocking connection, one request at a time, no validation: `http.client` keep-alive for
REST, a bare grpcio stub on pre-serialized bytes for gRPC. It sends the same model and rows per
request as the Locust run it is compared to. Prints a JSON summary.

    python -m servingbench.sweep.reference_client rest 127.0.0.1:9000 --rows 1 --seconds 5
"""

from __future__ import annotations

import argparse
import http.client
import json
import time
from collections.abc import Callable

import numpy as np

from servingbench.loadgen.payloads import build_payloads
from servingbench.loadgen.wire import WIRE_FORMATS
from servingbench.sweep.noop import GRPC_SERVICE

__all__ = ["main", "measure"]


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
    return {
        "requests": float(values.size),
        "rps": values.size / elapsed_s,
        "p50_ms": float(p50),
        "p99_ms": float(p99),
        "avg_ms": float(values.mean()),
    }


def _rest_call(address: str, body: bytes, path: str) -> Callable[[], object]:
    host, _, port = address.rpartition(":")
    conn = http.client.HTTPConnection(host, int(port))
    headers = {"content-type": "application/json"}

    def call() -> bytes:
        conn.request("POST", path, body, headers)
        response = conn.getresponse()
        data = response.read()
        if response.status != 200:  # e.g. a body the no-op server was not started for
            raise RuntimeError(f"POST {path}: HTTP {response.status}: {data[:200]!r}")
        return data

    return call


def _grpc_call(address: str, body: bytes) -> Callable[[], object]:
    import grpc

    stub = grpc.insecure_channel(address).unary_unary(f"/{GRPC_SERVICE}/ModelInfer")
    return lambda: stub(body)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m servingbench.sweep.reference_client")
    parser.add_argument("protocol", choices=list(WIRE_FORMATS))
    parser.add_argument("address", help="host:port")
    parser.add_argument("--model", default="breast-cancer")
    parser.add_argument(
        "--rows", type=int, default=1, help="rows per request, as the Locust run it is compared to"
    )
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--warmup", type=float, default=1.0)
    args = parser.parse_args(argv)
    body = build_payloads(args.protocol, args.model, args.rows)[0].body
    if args.protocol == "grpc":
        call = _grpc_call(args.address, body)
    else:
        call = _rest_call(args.address, body, WIRE_FORMATS[args.protocol].path(args.model))
    print(json.dumps(measure(call, args.seconds, args.warmup)))


if __name__ == "__main__":
    main()
