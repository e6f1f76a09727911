"""Every kind of result lands in one `Outcome` with a short reason, whatever the protocol."""

from __future__ import annotations

import errno

import numpy as np
import orjson
import pytest

from servingbench.loadgen.h2grpc import RpcError, StatusCode
from servingbench.loadgen.http1 import HttpResponseError
from servingbench.loadgen.payloads import Payload
from servingbench.loadgen.verdicts import (
    OK,
    RequestError,
    check_body,
    check_http,
    classify_exception,
)
from servingbench.runs.records import Outcome
from servingbench.wire import WIRE_FORMATS

PAYLOAD = Payload(b"", 2, np.array([0, 1]), np.array([[0.9, 0.1], [0.2, 0.8]]))
V2 = WIRE_FORMATS["v2-json"].decode


def _v2(labels: list[int], proba: list[list[float]]) -> bytes:
    return orjson.dumps(
        {
            "outputs": [
                {"name": "predict", "shape": [len(labels), 1], "datatype": "INT64", "data": labels},
                {
                    "name": "predict_proba",
                    "shape": [len(proba), len(proba[0])],
                    "datatype": "FP64",
                    "data": [v for row in proba for v in row],
                },
            ]
        }
    )


def test_good_answer_is_ok() -> None:
    assert check_http(200, _v2([0, 1], [[0.9, 0.1], [0.2, 0.8]]), PAYLOAD, V2) == OK


def test_wrong_label() -> None:
    outcome, reason = check_http(200, _v2([0, 0], [[0.9, 0.1], [0.2, 0.8]]), PAYLOAD, V2)
    assert outcome is Outcome.WRONG_ANSWER
    assert reason.startswith("wrong answer: 1 wrong label")


def test_wrong_probability() -> None:
    outcome, reason = check_http(200, _v2([0, 1], [[0.9, 0.1], [0.3, 0.7]]), PAYLOAD, V2)
    assert outcome is Outcome.WRONG_ANSWER
    assert "probabilities differ" in reason


@pytest.mark.parametrize(
    "body", [b"not json", b"{}", _v2([0], [[0.9, 0.1]]), orjson.dumps({"outputs": []})]
)
def test_malformed_body(body: bytes) -> None:
    outcome, reason = check_http(200, body, PAYLOAD, V2)
    assert outcome is Outcome.MALFORMED
    assert reason.startswith("malformed:")


def test_answer_of_another_shape_is_a_wrong_answer() -> None:
    """Right row count, wrong number of classes: decodable, but not the expected prediction."""
    outcome, reason = check_http(200, _v2([0, 1], [[0.9, 0.1, 0], [0.2, 0.8, 0]]), PAYLOAD, V2)
    assert outcome is Outcome.WRONG_ANSWER
    assert reason.startswith("wrong answer: answer shapes")


def test_other_status_is_an_http_error_with_the_body_detail() -> None:
    outcome, reason = check_http(404, b'{"error": "Model x not found"}', PAYLOAD, V2)
    assert outcome is Outcome.HTTP_STATUS
    assert reason == 'HTTP 404: {"error": "Model x not found"}'
    assert check_http(503, b"", PAYLOAD, V2) == (Outcome.HTTP_STATUS, "HTTP 503")


def test_validation_off_checks_status_only() -> None:
    assert check_http(200, b"garbage", PAYLOAD, V2, validate=False) == OK
    assert check_http(500, b"", PAYLOAD, V2, validate=False)[0] is Outcome.HTTP_STATUS


def test_grpc_response_bytes_are_validated() -> None:
    from tritonclient.grpc import service_pb2

    response = service_pb2.ModelInferResponse(model_name="m")
    labels = response.outputs.add(name="predict", datatype="INT64", shape=[2, 1])
    labels.contents.int64_contents.extend([0, 1])
    proba = response.outputs.add(name="predict_proba", datatype="FP32", shape=[2, 2])
    proba.contents.fp32_contents.extend([0.9, 0.1, 0.2, 0.8])
    decode = WIRE_FORMATS["v2-grpc"].decode
    assert check_body(response.SerializeToString(), PAYLOAD, decode) == OK
    assert check_body(b"\xff\xff", PAYLOAD, decode)[0] is Outcome.MALFORMED


@pytest.mark.parametrize(
    ("exc", "outcome", "reason"),
    [
        (
            RpcError(StatusCode.NOT_FOUND, "no model"),
            Outcome.GRPC_STATUS,
            "gRPC NOT_FOUND: no model",
        ),
        (RpcError(StatusCode.INTERNAL), Outcome.GRPC_STATUS, "gRPC INTERNAL"),
        (
            RpcError(StatusCode.DEADLINE_EXCEEDED, "late"),
            Outcome.TIMEOUT,
            "gRPC DEADLINE_EXCEEDED: late",
        ),
        (
            RpcError(StatusCode.UNAVAILABLE, "refused"),
            Outcome.CONNECTION,
            "gRPC UNAVAILABLE: refused",
        ),
        (TimeoutError("timed out"), Outcome.TIMEOUT, "timeout: timed out"),
        (
            ConnectionRefusedError(errno.ECONNREFUSED, "Connection refused"),
            Outcome.CONNECTION,
            "connection error: ConnectionRefusedError: [Errno 111] Connection refused",
        ),
        (
            HttpResponseError("connection closed before a response"),
            Outcome.CONNECTION,
            "connection closed before a response",
        ),
        (
            HttpResponseError("not an HTTP response: b'SSH-2.0'"),
            Outcome.MALFORMED,
            "not an HTTP response: b'SSH-2.0'",
        ),
        (RuntimeError("boom"), Outcome.OTHER, "RuntimeError: boom"),
    ],
)
def test_exceptions(exc: Exception, outcome: Outcome, reason: str) -> None:
    assert classify_exception(exc) == (outcome, reason)


def test_locust_sees_the_reason_itself() -> None:
    assert repr(RequestError("HTTP 503")) == "HTTP 503"
