"""Request encoding and response decoding for /predict, V2 REST and V2 gRPC."""

from __future__ import annotations

import numpy as np
import orjson
import pytest

from servingbench.protocol import (
    PROBA_ONLY,
    ProtocolError,
    compare,
    decode_predict_body,
    decode_v2_body,
    decode_v2_grpc_response,
    predict_body,
    v2_body,
    v2_grpc_request,
)

ROWS = [[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3]]


def test_predict_body_is_float32_exact() -> None:
    body = orjson.loads(predict_body(ROWS, model="iris"))
    assert body["model"] == "iris"
    assert body["features"][0][0] == float(np.float32(5.1))


def test_v2_body_has_flat_data_and_shape() -> None:
    tensor = orjson.loads(v2_body(ROWS))["inputs"][0]
    assert tensor["shape"] == [2, 4]
    assert tensor["datatype"] == "FP32"
    assert len(tensor["data"]) == 8


def test_decode_v2_body() -> None:
    body = orjson.dumps(
        {
            "outputs": [
                {"name": "predict", "shape": [2, 1], "datatype": "INT64", "data": [0, 2]},
                {
                    "name": "predict_proba",
                    "shape": [2, 3],
                    "datatype": "FP32",
                    "data": [0.9, 0.1, 0, 0, 0.2, 0.8],
                },
            ]
        }
    )
    labels, proba = decode_v2_body(body, 2)
    assert labels.tolist() == [0, 2]
    assert proba.shape == (2, 3)


@pytest.mark.parametrize(
    "body",
    [b"not json", b'{"outputs": []}', b'{"labels": [1]}', b'{"outputs": [{"name": "predict"}]}'],
)
def test_malformed_responses_raise_protocol_error(body: bytes) -> None:
    with pytest.raises(ProtocolError):
        decode_v2_body(body, 1)


def test_decode_predict_body_checks_row_count() -> None:
    body = orjson.dumps({"labels": [0], "probabilities": [[1.0, 0.0, 0.0]]})
    assert decode_predict_body(body, 1)[0].tolist() == [0]
    with pytest.raises(ProtocolError, match="expected 2 label"):
        decode_predict_body(body, 2)


def test_grpc_request_and_response_round_trip() -> None:
    from tritonclient.grpc import service_pb2

    request = v2_grpc_request("iris", ROWS)
    assert list(request.inputs[0].shape) == [2, 4]
    assert [o.name for o in request.outputs] == ["predict", "predict_proba"]
    response = service_pb2.ModelInferResponse(model_name="iris")
    labels = response.outputs.add(name="predict", datatype="INT64", shape=[2, 1])
    labels.contents.int64_contents.extend([0, 2])
    proba = response.outputs.add(name="predict_proba", datatype="FP32", shape=[2, 3])
    proba.contents.fp32_contents.extend([0.9, 0.1, 0.0, 0.0, 0.2, 0.8])
    got_labels, got_proba = decode_v2_grpc_response(response, 2)
    assert got_labels.tolist() == [0, 2]
    assert got_proba.shape == (2, 3)


def test_compare_reports_first_difference() -> None:
    labels, proba = np.array([0, 1]), np.array([[0.9, 0.1], [0.2, 0.8]])
    assert compare((labels, proba), labels, proba) is None
    assert "wrong label" in str(compare((np.array([0, 0]), proba), labels, proba))
    assert "differ" in str(compare((labels, proba + 1e-3), labels, proba))
    assert compare((labels, proba + 1e-8), labels, proba) is None


def test_proba_only_response_implies_labels() -> None:
    body = orjson.dumps(
        {"outputs": [{"name": "predict_proba", "shape": [2, 2], "data": [0.9, 0.1, 0.3, 0.7]}]}
    )
    labels, _ = decode_v2_body(body, 2)
    assert labels.tolist() == [0, 1]
    assert orjson.loads(v2_body(ROWS, PROBA_ONLY))["outputs"] == [{"name": "predict_proba"}]
