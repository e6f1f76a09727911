"""Parity against the real servers (conftest's MLServer and FastAPI on free ports)."""

from __future__ import annotations

import numpy as np
import pytest

from servingbench.catalog import MODELS
from servingbench.expected import ExpectedAnswers
from servingbench.parity import check_endpoint, default_endpoints, request_plan, run_parity
from servingbench.stack.processes import ProcessHandle
from servingbench.stack.servers import ServerSpec
from servingbench.stack.settings import StackSettings

pytestmark = pytest.mark.integration

Server = tuple[ServerSpec, ProcessHandle]


@pytest.fixture(scope="module")
def settings(mlserver: Server, api_server: Server) -> StackSettings:
    ml_ports, api_ports = mlserver[0].ports, api_server[0].ports
    return StackSettings(
        mlserver_http_port=ml_ports["http"],
        mlserver_grpc_port=ml_ports["grpc"],
        mlserver_metrics_port=ml_ports["metrics"],
        api_port=api_ports["http"],
    )


def test_every_endpoint_agrees_with_the_artifact(settings: StackSettings) -> None:
    endpoints = default_endpoints(settings)
    results = run_parity(endpoints, list(MODELS), batch_size=16, single_rows=3)
    assert len(results) == len(endpoints) * len(MODELS)
    failures = [(r.endpoint, r.model, r.error, r.score) for r in results if not r.passed]
    assert not failures
    held_out = {m: len(ExpectedAnswers.for_model(m)) for m in MODELS}
    assert all(r.score.rows == held_out[r.model] + 3 for r in results)


@pytest.mark.parametrize("kind", ["v2-json", "triton-grpc"])
def test_a_wrong_expectation_fails(settings: StackSettings, kind: str) -> None:
    endpoint = next(e for e in default_endpoints(settings) if e.kind == kind)
    good = ExpectedAnswers.for_model("iris")
    wrong = ExpectedAnswers(good.rows, (good.labels + 1) % 3, good.proba[:, ::-1])
    result = check_endpoint(endpoint, "iris", wrong, request_plan(len(good), 16, 0))
    assert result.error is None
    assert not result.passed
    assert result.score.label_mismatches > 0
    assert result.score.max_abs_dp > 1e-3
    assert np.isfinite(result.score.max_abs_dp)


def test_unknown_model_is_an_error_not_a_crash(settings: StackSettings) -> None:
    for endpoint in default_endpoints(settings):
        result = check_endpoint(
            endpoint, "no-such-model", ExpectedAnswers.for_model("iris"), [slice(0, 1)]
        )
        assert not result.passed
        assert result.error
