"""Parity: every endpoint must give the held-out rows the answers the artifact gives in-process.

The same rows go to each (endpoint, model), in batches covering all of them and one row per
request for the first few; labels must be identical and probabilities within `atol`.
`score` is the pure comparison, so it can be tested without servers.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from servingbench.clients import EndpointError, EndpointUnreachableError, make_client
from servingbench.expected import ExpectedAnswers
from servingbench.protocol import Prediction, ProtocolError
from servingbench.stack.settings import StackSettings

__all__ = [
    "DEFAULT_ATOL",
    "Endpoint",
    "ParityResult",
    "Score",
    "check_endpoint",
    "default_endpoints",
    "request_plan",
    "run_parity",
    "score",
]

DEFAULT_ATOL = 1e-6


@dataclass(frozen=True)
class Endpoint:
    """One way of asking a server: a label for the table, a client kind, its address."""

    label: str
    kind: str
    address: str


@dataclass(frozen=True)
class Score:
    """How far answers are from the expectation."""

    rows: int
    label_mismatches: int
    max_abs_dp: float

    def __add__(self, other: Score) -> Score:
        return Score(
            self.rows + other.rows,
            self.label_mismatches + other.label_mismatches,
            max(self.max_abs_dp, other.max_abs_dp),
        )


@dataclass(frozen=True)
class ParityResult:
    endpoint: str
    model: str
    score: Score
    atol: float = DEFAULT_ATOL
    error: str | None = None

    @property
    def passed(self) -> bool:
        return (
            self.error is None
            and self.score.rows > 0
            and self.score.label_mismatches == 0
            and self.score.max_abs_dp <= self.atol
        )


def default_endpoints(settings: StackSettings | None = None) -> list[Endpoint]:
    """Our service (/predict, V2 REST) and MLServer (raw JSON, tritonclient HTTP and gRPC)."""
    s = settings or StackSettings()
    api = f"http://{s.host}:{s.api_port}"
    mlserver = f"http://{s.host}:{s.mlserver_http_port}"
    grpc = f"{s.host}:{s.mlserver_grpc_port}"
    return [
        Endpoint("fastapi /predict", "predict", api),
        Endpoint("fastapi V2 REST", "v2-json", api),
        Endpoint("mlserver V2 REST json", "v2-json", mlserver),
        Endpoint("mlserver V2 REST tritonclient", "triton-http", mlserver),
        Endpoint("mlserver V2 gRPC tritonclient", "triton-grpc", grpc),
    ]


def score(got: Prediction, expected: Prediction) -> Score:
    """Label mismatches and the largest probability difference; a shape mismatch is a ValueError."""
    labels, proba = got
    want_labels, want_proba = expected
    if labels.shape != want_labels.shape or proba.shape != want_proba.shape:
        raise ValueError(
            f"answer shapes {labels.shape}/{proba.shape} != expected "
            f"{want_labels.shape}/{want_proba.shape}"
        )
    mismatches = int(np.count_nonzero(labels != want_labels))
    max_dp = float(np.max(np.abs(proba - want_proba))) if proba.size else 0.0
    return Score(len(labels), mismatches, max_dp)


def request_plan(n_rows: int, batch_size: int, single_rows: int) -> list[slice]:
    """Batches covering every row, then one request per row for the first `single_rows`."""
    if n_rows <= 0 or batch_size <= 0:
        return []
    batches = [slice(i, min(i + batch_size, n_rows)) for i in range(0, n_rows, batch_size)]
    return batches + [slice(i, i + 1) for i in range(min(single_rows, n_rows))]


def check_endpoint(
    endpoint: Endpoint,
    model: str,
    answers: ExpectedAnswers,
    plan: Sequence[slice],
    atol: float = DEFAULT_ATOL,
) -> ParityResult:
    """Send every planned slice of the held-out rows; the first error stops this endpoint."""
    total = Score(0, 0, 0.0)
    client = None
    try:
        client = make_client(endpoint.kind, endpoint.address)
        for part in plan:
            rows = answers.rows[part]
            got = client.predict(model, rows.tolist())
            total = total + score(got, answers.expected_for(rows))
    except EndpointUnreachableError as exc:
        return ParityResult(
            endpoint.label, model, total, atol, f"{exc} (is the stack running? make serve-all)"
        )
    except (EndpointError, ProtocolError, ValueError) as exc:
        return ParityResult(endpoint.label, model, total, atol, str(exc))
    finally:
        if client is not None:
            client.close()
    return ParityResult(endpoint.label, model, total, atol)


def run_parity(
    endpoints: Iterable[Endpoint],
    models: Iterable[str],
    batch_size: int = 32,
    single_rows: int = 5,
    atol: float = DEFAULT_ATOL,
) -> list[ParityResult]:
    """Every (endpoint, model) pair, expectations read from each model's metadata.json."""
    answers = {model: ExpectedAnswers.for_model(model) for model in models}
    return [
        check_endpoint(
            endpoint, model, expected, request_plan(len(expected), batch_size, single_rows), atol
        )
        for endpoint in endpoints
        for model, expected in answers.items()
    ]
