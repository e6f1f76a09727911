"""Pre-encoded requests built from the model's held-out rows, in a fixed, repeatable order.

Payload `i` holds rows `i*k .. i*k+k-1` (mod the number of held-out rows n, k rows a request);
there are n/gcd(n, k) of them, so cycling through the list sends every row equally often.
A wide model can make that cycle huge (2,000 rows of 555 features sent 256 a request: 125
payloads, 18 M values, some 200 MB of JSON per load process): beyond `MAX_CYCLE_VALUES` encoded
values the cycle stops after the first ceil(n/k) payloads, which cover every row, so no row is
sent more than once more per cycle than another.
Each user starts at its own offset, picked deterministically from its index.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from servingbench.models.artifacts import load_metadata
from servingbench.wire import WireName, get_wire

__all__ = ["MAX_CYCLE_VALUES", "Payload", "build_payloads", "payload_cycle", "start_offset"]

MAX_CYCLE_VALUES = 8_000_000
"""Feature values encoded per payload cycle before it is cut short (about 100 MB of JSON)."""

_GOLDEN = (math.sqrt(5) - 1) / 2  # low-discrepancy spread: any number of users stay far apart


@dataclass(frozen=True, slots=True)
class Payload:
    """One request's bytes with the answer the artifact gives in-process."""

    body: bytes
    n_rows: int
    labels: np.ndarray
    proba: np.ndarray

    @property
    def proba32(self) -> np.ndarray:
        """The probabilities as the model computes them (float32), for no-op answers."""
        return self.proba.astype(np.float32)


def build_payloads(wire_name: WireName, model: str, rows_per_request: int) -> list[Payload]:
    """Every distinct request of the cycle, encoded once."""
    if rows_per_request < 1:
        raise ValueError(f"rows_per_request must be >= 1, got {rows_per_request}")
    held_out = load_metadata(model).held_out
    n = len(held_out.rows)
    if n == 0:
        raise ValueError(f"model {model!r} has no held-out rows in its metadata")
    wire = get_wire(wire_name)
    labels = np.asarray(held_out.expected_labels, dtype=np.int64)
    proba = np.asarray(held_out.expected_proba, dtype=np.float64)
    count = n // math.gcd(n, rows_per_request)
    values = count * rows_per_request * len(held_out.rows[0])
    if values > MAX_CYCLE_VALUES:
        count = max(math.ceil(n / rows_per_request), 1)
    payloads = []
    for i in range(count):
        index = [(i * rows_per_request + j) % n for j in range(rows_per_request)]
        rows = [held_out.rows[r] for r in index]
        payloads.append(Payload(wire.encode(model, rows), len(index), labels[index], proba[index]))
    return payloads


def start_offset(user_index: int, count: int) -> int:
    """Where user `user_index` starts in a cycle of `count` payloads (same index, same offset)."""
    return int((user_index * _GOLDEN % 1.0) * count) % count


def payload_cycle(payloads: list[Payload], user_index: int) -> Iterator[Payload]:
    """The endless, deterministic sequence of payloads user `user_index` sends."""
    offset = start_offset(user_index, len(payloads))
    return itertools.cycle(payloads[offset:] + payloads[:offset])
