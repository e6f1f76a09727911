"""Parity: every endpoint must give the held-out rows the answers the artifact gives in-process.

The same rows go to each (endpoint, model), in batches covering all of them and one row per
request for the first few; labels must be identical and probabilities within `atol`. The
endpoints come from the backends' declarations (`Endpoint.parity_clients`), so a new backend is
checked without a change here.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from servingbench.clients import EndpointError, EndpointUnreachableError, make_client
from servingbench.models.expected import ExpectedAnswers
from servingbench.runs.meta import ParityCheck
from servingbench.servers import get_backend
from servingbench.servers.base import ClientLibrary, endpoint_address
from servingbench.wire import DEFAULT_ATOL, Score, WireError, WireName, score

__all__ = [
    "DEFAULT_ATOL",
    "ParityEndpoint",
    "ParityResult",
    "backend_endpoints",
    "check_endpoint",
    "request_plan",
    "run_parity",
]


@dataclass(frozen=True)
class ParityEndpoint:
    """One way of asking one server: a label for the table, wire format, client library, address."""

    label: str
    wire: WireName
    library: ClientLibrary
    address: str


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

    def record(self) -> ParityCheck:
        """The result as meta.json records it."""
        return ParityCheck(
            endpoint=self.endpoint,
            model=self.model,
            rows=self.score.rows,
            label_mismatches=self.score.label_mismatches,
            max_abs_dp=self.score.max_abs_dp,
            atol=self.atol,
            passed=self.passed,
            error=self.error,
        )


def backend_endpoints(
    backend: str, server: str, host: str, ports: Mapping[str, int]
) -> list[ParityEndpoint]:
    """Every (wire format, client library) the backend's endpoints are checked with."""
    spec = get_backend(backend)
    return [
        ParityEndpoint(
            f"{server} {e.wire} via {library}",
            e.wire,
            library,
            endpoint_address(e, host, ports),
        )
        for e in spec.endpoints
        for library in e.parity_clients
    ]


def request_plan(n_rows: int, batch_size: int, single_rows: int) -> list[slice]:
    """Batches covering every row, then one request per row for the first `single_rows`."""
    if n_rows <= 0 or batch_size <= 0:
        return []
    batches = [slice(i, min(i + batch_size, n_rows)) for i in range(0, n_rows, batch_size)]
    return batches + [slice(i, i + 1) for i in range(min(single_rows, n_rows))]


def check_endpoint(
    endpoint: ParityEndpoint,
    model: str,
    answers: ExpectedAnswers,
    plan: Sequence[slice],
    atol: float = DEFAULT_ATOL,
    ca_bundle: str | None = None,
) -> ParityResult:
    """Send every planned slice of the held-out rows; the first error stops this endpoint."""
    total = Score(0, 0, 0.0)
    client = None
    try:
        client = make_client(endpoint.wire, endpoint.library, endpoint.address, ca_bundle=ca_bundle)
        for part in plan:
            rows = answers.rows[part]
            got = client.predict(model, rows.tolist())
            total = total + score(got, answers.expected_for(rows))
    except EndpointUnreachableError as exc:
        return ParityResult(
            endpoint.label, model, total, atol, f"{exc} (is the server running? make serve-all)"
        )
    except (EndpointError, WireError, ValueError) as exc:
        return ParityResult(endpoint.label, model, total, atol, str(exc))
    finally:
        if client is not None:
            client.close()
    return ParityResult(endpoint.label, model, total, atol)


def run_parity(
    endpoints: Iterable[ParityEndpoint],
    models: Iterable[str],
    batch_size: int = 32,
    single_rows: int = 5,
    atol: float = DEFAULT_ATOL,
    ca_bundle: str | None = None,
) -> list[ParityResult]:
    """Every (endpoint, model) pair, expectations read from each model's metadata.json."""
    answers = {model: ExpectedAnswers.for_model(model) for model in models}
    return [
        check_endpoint(
            endpoint,
            model,
            expected,
            request_plan(len(expected), batch_size, single_rows),
            atol,
            ca_bundle,
        )
        for endpoint in endpoints
        for model, expected in answers.items()
    ]
