"""A model's own cost: `predict_proba` on the loaded artifact, in-process, as a server calls it.

The time a request spends that is not this is the serving framework's (protocol, validation,
queueing, the event loop): the overhead the choice of server decides. It is measured in a
process of its own pinned to the server's core, on the same float32 matrices the load sends,
one call after another, for each model and rows-per-request of a sweep:

    python -m servingbench.models.cost --model breast-cancer --rows 8 --seconds 1
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np

from servingbench.models.artifacts import load_metadata, load_predictor
from servingbench.models.catalog import as_features

__all__ = ["main", "measure_cost"]


def measure_cost(model: str, rows: int, seconds: float = 1.0) -> dict[str, float]:
    """p50 and mean (ms) of `predict_proba` on `rows` held-out rows, after a short warm-up."""
    predictor = load_predictor(model)
    held_out = load_metadata(model).held_out.rows
    x = as_features([held_out[i % len(held_out)] for i in range(rows)])
    for _ in range(20):
        predictor.predict_proba(x)
    times: list[int] = []
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline or len(times) < 20:
        start = time.perf_counter_ns()
        predictor.predict_proba(x)
        times.append(time.perf_counter_ns() - start)
    values = np.asarray(times, dtype=float) / 1e6
    return {
        "p50_ms": float(np.median(values)),
        "mean_ms": float(values.mean()),
        "calls": len(times),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m servingbench.models.cost")
    parser.add_argument("--model", required=True)
    parser.add_argument("--rows", type=int, default=1)
    parser.add_argument("--seconds", type=float, default=1.0)
    args = parser.parse_args(argv)
    print(json.dumps(measure_cost(args.model, args.rows, args.seconds)))


if __name__ == "__main__":
    main()
