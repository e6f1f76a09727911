"""The parity comparison, request plan, expected answers and clients' error paths (no servers)."""

from __future__ import annotations

import numpy as np
import pytest

from servingbench.clients import CLIENTS, make_client
from servingbench.models.expected import ExpectedAnswers
from servingbench.parity import (
    ParityEndpoint,
    ParityResult,
    backend_endpoints,
    check_endpoint,
    request_plan,
)
from servingbench.servers import backends
from servingbench.servers.base import ClientLibrary, address
from servingbench.stack.processes import free_port
from servingbench.stack.settings import StackSettings
from servingbench.wire import Score, WireError, WireName, score

ROWS = [[5.1, 3.5, 1.4, 0.2], [6.2, 2.9, 4.3, 1.3], [7.7, 3.0, 6.1, 2.3]]
LABELS = [0, 1, 2]
PROBA = [[0.9, 0.08, 0.02], [0.1, 0.8, 0.1], [0.0, 0.1, 0.9]]


@pytest.fixture
def answers() -> ExpectedAnswers:
    return ExpectedAnswers(ROWS, LABELS, PROBA)


def test_score_of_identical_answers_is_clean(answers: ExpectedAnswers) -> None:
    expected = answers.expected_for(ROWS)
    assert score(expected, expected) == Score(3, 0, 0.0)


def test_score_counts_wrong_labels_and_largest_probability_gap(answers: ExpectedAnswers) -> None:
    labels, proba = answers.expected_for(ROWS)
    got = (np.array([0, 2, 2]), proba + np.array([[0, 0, 0], [0, 0, 3e-6], [0, 0, 0]]))
    result = score(got, (labels, proba))
    assert result.label_mismatches == 1
    assert result.max_abs_dp == pytest.approx(3e-6)
    assert not ParityResult("e", "iris", result).passed


def test_score_rejects_a_shape_mismatch(answers: ExpectedAnswers) -> None:
    labels, proba = answers.expected_for(ROWS)
    with pytest.raises(WireError, match="shapes"):
        score((labels[:2], proba[:2]), (labels, proba))


def test_result_passes_only_within_tolerance_and_without_error() -> None:
    assert ParityResult("e", "m", Score(5, 0, 1e-6)).passed
    assert not ParityResult("e", "m", Score(5, 0, 2e-6)).passed
    assert not ParityResult("e", "m", Score(0, 0, 0.0)).passed
    assert not ParityResult("e", "m", Score(5, 0, 0.0), error="boom").passed
    assert Score(2, 1, 0.1) + Score(3, 0, 0.3) == Score(5, 1, 0.3)


def test_request_plan_covers_every_row_then_single_rows() -> None:
    plan = request_plan(10, batch_size=4, single_rows=3)
    batches, singles = plan[:3], plan[3:]
    assert [i for s in batches for i in range(10)[s]] == list(range(10))
    assert [(s.start, s.stop) for s in singles] == [(0, 1), (1, 2), (2, 3)]
    assert request_plan(0, 4, 3) == []


def test_expected_answers_follow_the_row_not_its_position(answers: ExpectedAnswers) -> None:
    labels, proba = answers.expected_for([ROWS[2], ROWS[0]])
    assert labels.tolist() == [2, 0]
    assert proba[0].tolist() == PROBA[2]
    # rows are matched on their float32 value, the one every server predicts on
    nudged = [[v + 1e-9 for v in ROWS[1]]]
    assert answers.expected_for(nudged)[0].tolist() == [1]
    with pytest.raises(KeyError, match="not one of the held-out rows"):
        answers.expected_for([[0.0, 0.0, 0.0, 0.0]])
    with pytest.raises(ValueError, match="same length"):
        ExpectedAnswers(ROWS, LABELS[:2], PROBA)


def _endpoints(settings: StackSettings) -> set[tuple[str, str, str]]:
    """(wire, library, address) of every endpoint `servingbench parity` checks."""
    return {
        (e.wire, e.library, e.address)
        for name in settings.backend_names()
        for e in backend_endpoints(name, name, settings.host, settings.backend_ports(name))
    }


def test_endpoints_follow_the_settings() -> None:
    settings = StackSettings(
        ports={
            "fastapi.http": 9000,
            "mlserver.http": 9080,
            "mlserver.grpc": 9081,
            "kserve.http": 9090,
            "kserve.grpc": 9091,
        },
        backends=["fastapi", "mlserver", "kserve"],
    )
    assert _endpoints(settings) == {
        ("predict-json", "urllib", "http://127.0.0.1:9000"),
        ("v2-json", "urllib", "http://127.0.0.1:9000"),
        ("v2-json", "urllib", "http://127.0.0.1:9080"),
        ("v2-json", "tritonclient", "http://127.0.0.1:9080"),
        ("v2-grpc", "tritonclient", "127.0.0.1:9081"),
        ("v2-json", "urllib", "http://127.0.0.1:9090"),
        ("v2-grpc", "tritonclient", "127.0.0.1:9091"),
    }


def test_endpoint_labels_name_server_wire_and_library() -> None:
    ports = {"http": 1, "grpc": 2, "metrics": 3}
    labels = [e.label for e in backend_endpoints("mlserver", "mlserver-batching", "::1", ports)]
    assert labels == [
        "mlserver-batching v2-json via urllib",
        "mlserver-batching v2-json via tritonclient",
        "mlserver-batching v2-grpc via tritonclient",
    ]
    with pytest.raises(ValueError, match="unknown backend 'triton'"):
        backend_endpoints("triton", "triton", "127.0.0.1", {})


def test_every_declared_parity_client_exists() -> None:
    """A backend cannot declare a (wire, library) pair no client speaks."""
    declared = {
        (e.wire, library)
        for backend in backends().values()
        for e in backend.endpoints
        for library in e.parity_clients
    }
    assert declared <= set(CLIENTS)
    assert set(CLIENTS) <= declared  # and no client is left unused


@pytest.mark.parametrize(("wire", "library"), sorted(CLIENTS))
def test_unreachable_endpoint_says_to_start_the_stack(
    wire: WireName, library: ClientLibrary, answers: ExpectedAnswers
) -> None:
    endpoint = ParityEndpoint("nowhere", wire, library, address(wire, "127.0.0.1", free_port()))
    result = check_endpoint(endpoint, "iris", answers, [slice(0, 1)])
    assert not result.passed
    assert result.error is not None
    assert "make serve-all" in result.error


def test_unknown_client_lists_the_known_ones() -> None:
    with pytest.raises(ValueError, match="known: predict-json via urllib, v2-json via urllib"):
        make_client("v2-grpc", "urllib", "http://127.0.0.1:1")
    with pytest.raises(ValueError, match="no client for soap via urllib"):
        make_client("soap", "urllib", "http://127.0.0.1:1")  # type: ignore[arg-type]
