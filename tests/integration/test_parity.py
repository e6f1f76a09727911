"""Parity against the real servers: every registered backend's, on free ports."""

from __future__ import annotations

import numpy as np
import pytest

from servingbench.models.catalog import MODELS
from servingbench.models.expected import ExpectedAnswers
from servingbench.parity import (
    ParityEndpoint,
    backend_endpoints,
    check_endpoint,
    request_plan,
    run_parity,
)
from servingbench.servers import backends
from tests.conftest import ServerPool

pytestmark = pytest.mark.integration

DECLARED = [(b.name, e.wire) for b in backends().values() for e in b.endpoints if e.parity_clients]
"""Every (backend, wire format) whose answers parity checks."""


@pytest.fixture(scope="module")
def endpoints(server_pool: ServerPool) -> list[ParityEndpoint]:
    """Every declared (wire, client library) of every backend, at its running server."""
    servers = server_pool.start(list(backends()))
    return [
        endpoint
        for server in servers
        for endpoint in backend_endpoints(
            server.spec.backend, server.spec.name, server.spec.host, server.spec.ports
        )
    ]


def _one(endpoints: list[ParityEndpoint], backend: str, wire: str) -> ParityEndpoint:
    return next(e for e in endpoints if e.label.startswith(f"{backend}-") and e.wire == wire)


def test_every_endpoint_agrees_with_the_artifact(endpoints: list[ParityEndpoint]) -> None:
    assert {(e.label.split("-")[0], e.wire) for e in endpoints} == set(DECLARED)
    results = run_parity(endpoints, list(MODELS), batch_size=16, single_rows=3)
    assert len(results) == len(endpoints) * len(MODELS)
    failures = [(r.endpoint, r.model, r.error, r.score) for r in results if not r.passed]
    assert not failures
    held_out = {m: len(ExpectedAnswers.for_model(m)) for m in MODELS}
    assert all(r.score.rows == held_out[r.model] + 3 for r in results)


@pytest.mark.parametrize(("backend", "wire"), DECLARED)
def test_a_wrong_expectation_fails(
    endpoints: list[ParityEndpoint], backend: str, wire: str
) -> None:
    endpoint = _one(endpoints, backend, wire)
    good = ExpectedAnswers.for_model("iris")
    wrong = ExpectedAnswers(good.rows, (good.labels + 1) % 3, good.proba[:, ::-1])
    result = check_endpoint(endpoint, "iris", wrong, request_plan(len(good), 16, 0))
    assert result.error is None
    assert not result.passed
    assert result.score.rows == len(good)
    assert result.score.label_mismatches > 0
    assert result.score.max_abs_dp > 1e-3
    assert np.isfinite(result.score.max_abs_dp)


def test_unknown_model_is_an_error_not_a_crash(endpoints: list[ParityEndpoint]) -> None:
    for endpoint in endpoints:
        result = check_endpoint(
            endpoint, "no-such-model", ExpectedAnswers.for_model("iris"), [slice(0, 1)]
        )
        assert not result.passed, endpoint.label
        assert result.error, endpoint.label
        assert "make serve-all" not in result.error  # it answered: not "unreachable"
