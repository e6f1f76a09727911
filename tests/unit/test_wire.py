"""The wire formats: request encoding, response decoding, and what "the same answer" means."""

from __future__ import annotations

from typing import Any

import numpy as np
import orjson
import pytest

from servingbench.wire import (
    DEFAULT_ATOL,
    GRPC_METHOD,
    INPUT_NAME,
    OUTPUTS,
    PROBA_ONLY,
    RESPONSE_JSON,
    WIRE_FORMATS,
    Score,
    WireError,
    decode_v2_grpc_response,
    decode_v2_outputs,
    get_wire,
    mismatch,
    predict_response,
    score,
    v2_grpc_request,
    v2_grpc_response,
    v2_json_body,
    v2_output,
    v2_response,
)

ROWS = [[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3]]
PREDICT = WIRE_FORMATS["predict-json"]
V2_JSON = WIRE_FORMATS["v2-json"]
V2_GRPC = WIRE_FORMATS["v2-grpc"]


def test_the_three_wire_formats_by_name() -> None:
    assert list(WIRE_FORMATS) == ["predict-json", "v2-json", "v2-grpc"]
    assert {w.name: w.transport for w in WIRE_FORMATS.values()} == {
        "predict-json": "http",
        "v2-json": "http",
        "v2-grpc": "grpc",
    }
    assert PREDICT.path("iris") == "/predict"
    assert V2_JSON.path("breast-cancer") == "/v2/models/breast-cancer/infer"
    assert V2_GRPC.path("iris") == GRPC_METHOD == "/inference.GRPCInferenceService/ModelInfer"
    assert get_wire("v2-json") is V2_JSON
    with pytest.raises(ValueError, match="unknown wire format 'v2-rest'; known: predict-json"):
        get_wire("v2-rest")


def test_predict_body_is_float32_exact() -> None:
    body = orjson.loads(PREDICT.encode("iris", ROWS))
    assert body["model"] == "iris"
    assert body["features"][0][0] == float(np.float32(5.1))
    assert body["features"][0][0] != 5.1


def test_v2_body_has_flat_data_and_shape() -> None:
    doc = orjson.loads(v2_json_body(ROWS))
    tensor = doc["inputs"][0]
    assert tensor["name"] == INPUT_NAME
    assert tensor["shape"] == [2, 4]
    assert tensor["datatype"] == "FP32"
    assert tensor["data"] == [float(np.float32(v)) for row in ROWS for v in row]
    assert doc["outputs"] == [{"name": "predict_proba"}]  # PROBA_ONLY by default
    both = orjson.loads(v2_json_body(ROWS, OUTPUTS))["outputs"]
    assert both == [{"name": "predict"}, {"name": "predict_proba"}]


def test_v2_wire_encoding_asks_for_probabilities_only() -> None:
    """A load request: one predict_proba call per request on every backend."""
    assert V2_JSON.encode("iris", ROWS) == v2_json_body(ROWS, PROBA_ONLY)


def _v2_doc(outputs: list[dict[str, Any]]) -> bytes:
    return orjson.dumps({"outputs": outputs})


LABELS_OUT = {"name": "predict", "shape": [2, 1], "datatype": "INT64", "data": [0, 2]}
PROBA_OUT = {
    "name": "predict_proba",
    "shape": [2, 3],
    "datatype": "FP32",
    "data": [0.9, 0.1, 0, 0, 0.2, 0.8],
}


def test_decode_v2_body() -> None:
    labels, proba = V2_JSON.decode(_v2_doc([LABELS_OUT, PROBA_OUT]), 2)
    assert labels.tolist() == [0, 2]
    assert labels.dtype == np.int64
    assert proba.shape == (2, 3)
    assert proba.dtype == np.float64
    same = decode_v2_outputs([PROBA_OUT, LABELS_OUT], 2)  # order does not matter
    assert same[0].tolist() == [0, 2]


def test_server_labels_win_over_the_argmax() -> None:
    """When the server sends `predict`, its labels are checked, not those implied by proba."""
    labels_out = {**LABELS_OUT, "data": [1, 1]}
    labels, _ = V2_JSON.decode(_v2_doc([labels_out, PROBA_OUT]), 2)
    assert labels.tolist() == [1, 1]


@pytest.mark.parametrize(
    "body",
    [
        b"not json",
        b"{}",
        b'{"outputs": []}',
        b'{"labels": [1]}',
        b'{"outputs": [{"name": "predict"}]}',
        _v2_doc([{**PROBA_OUT, "shape": [3, 2]}]),  # 3 rows, 2 asked for
        _v2_doc([{**PROBA_OUT, "shape": [2, 2]}]),  # data does not fit the shape
    ],
)
def test_malformed_v2_responses_raise_wire_error(body: bytes) -> None:
    with pytest.raises(WireError):
        V2_JSON.decode(body, 2)


def test_decode_predict_body_checks_row_count() -> None:
    body = orjson.dumps({"labels": [0], "probabilities": [[1.0, 0.0, 0.0]]})
    assert PREDICT.decode(body, 1)[0].tolist() == [0]
    with pytest.raises(WireError, match="expected 2 label"):
        PREDICT.decode(body, 2)
    with pytest.raises(WireError, match="malformed /predict"):
        PREDICT.decode(b'{"labels": [0]}', 1)


def test_grpc_request_and_response_round_trip() -> None:
    from tritonclient.grpc import service_pb2

    request = v2_grpc_request("iris", ROWS)
    assert request.model_name == "iris"
    assert request.inputs[0].name == INPUT_NAME
    assert request.inputs[0].datatype == "FP32"
    assert list(request.inputs[0].shape) == [2, 4]
    assert list(request.inputs[0].contents.fp32_contents) == pytest.approx(
        [v for row in ROWS for v in row], rel=1e-7
    )
    assert [o.name for o in request.outputs] == ["predict_proba"]
    assert [o.name for o in v2_grpc_request("iris", ROWS, OUTPUTS).outputs] == list(OUTPUTS)
    assert V2_GRPC.encode("iris", ROWS) == request.SerializeToString()

    response = service_pb2.ModelInferResponse(model_name="iris")
    labels = response.outputs.add(name="predict", datatype="INT64", shape=[2, 1])
    labels.contents.int64_contents.extend([0, 2])
    proba = response.outputs.add(name="predict_proba", datatype="FP32", shape=[2, 3])
    proba.contents.fp32_contents.extend([0.9, 0.1, 0.0, 0.0, 0.2, 0.8])
    got_labels, got_proba = decode_v2_grpc_response(response, 2)
    assert got_labels.tolist() == [0, 2]
    assert got_proba.shape == (2, 3)
    assert V2_GRPC.decode(response.SerializeToString(), 2)[0].tolist() == [0, 2]


def test_grpc_raw_output_contents_are_read_too() -> None:
    """MLServer answers raw bytes when the request used raw_input_contents."""
    from tritonclient.grpc import service_pb2

    response = service_pb2.ModelInferResponse(model_name="iris")
    response.outputs.add(name="predict_proba", datatype="FP64", shape=[2, 2])
    response.raw_output_contents.append(np.array([0.9, 0.1, 0.3, 0.7]).tobytes())
    labels, proba = decode_v2_grpc_response(response, 2)
    assert labels.tolist() == [0, 1]
    np.testing.assert_array_equal(proba, [[0.9, 0.1], [0.3, 0.7]])


def test_malformed_grpc_responses_raise_wire_error() -> None:
    from tritonclient.grpc import service_pb2

    with pytest.raises(WireError, match="malformed gRPC"):
        V2_GRPC.decode(b"\xff\xff", 1)
    no_proba = service_pb2.ModelInferResponse(model_name="iris")
    no_proba.outputs.add(
        name="predict", datatype="INT64", shape=[1, 1]
    ).contents.int64_contents.append(0)
    with pytest.raises(WireError, match="lacks output 'predict_proba'"):
        decode_v2_grpc_response(no_proba, 1)
    odd = service_pb2.ModelInferResponse(model_name="iris")
    odd.outputs.add(name="predict_proba", datatype="BYTES", shape=[1, 1])
    with pytest.raises(WireError, match="unexpected datatype BYTES"):
        decode_v2_grpc_response(odd, 1)


def test_proba_only_response_implies_labels() -> None:
    body = _v2_doc([{"name": "predict_proba", "shape": [2, 2], "data": [0.9, 0.1, 0.3, 0.7]}])
    labels, _ = V2_JSON.decode(body, 2)
    assert labels.tolist() == [0, 1]


OUTPUTS_32: dict[str, np.ndarray] = {
    "predict": np.array([0, 1], dtype=np.int64),
    "predict_proba": np.array([[0.9, 0.1], [0.2, 0.8]], dtype=np.float32),
}


def test_response_builders_write_what_the_decoders_read() -> None:
    """Our service's and the no-op servers' answers decode to the arrays they were built from."""
    want = (OUTPUTS_32["predict"], OUTPUTS_32["predict_proba"].astype(np.float64))
    predict = orjson.dumps(predict_response("iris", "1", OUTPUTS_32), option=RESPONSE_JSON)
    v2 = orjson.dumps(v2_response("iris", "1", "req-1", OUTPUTS_32), option=RESPONSE_JSON)
    grpc = v2_grpc_response("iris", "1", "req-1", OUTPUTS_32)
    for got in (
        PREDICT.decode(predict, 2),
        V2_JSON.decode(v2, 2),
        V2_GRPC.decode(grpc.SerializeToString(), 2),
    ):
        np.testing.assert_array_equal(got[0], want[0])
        np.testing.assert_array_equal(got[1], want[1])
    doc = orjson.loads(v2)
    assert (doc["model_name"], doc["model_version"], doc["id"]) == ("iris", "1", "req-1")
    assert (grpc.model_name, grpc.model_version, grpc.id) == ("iris", "1", "req-1")


def test_v2_output_is_shaped_as_mlserver_writes_it() -> None:
    """1-D labels become [N, 1]; float32 is widened (same digits as MLServer's JSON)."""
    labels = orjson.loads(
        orjson.dumps(v2_output("predict", OUTPUTS_32["predict"]), option=RESPONSE_JSON)
    )
    assert (labels["shape"], labels["datatype"], labels["data"]) == ([2, 1], "INT64", [0, 1])
    proba = orjson.loads(
        orjson.dumps(v2_output("predict_proba", OUTPUTS_32["predict_proba"]), option=RESPONSE_JSON)
    )
    assert (proba["shape"], proba["datatype"]) == ([2, 2], "FP32")
    assert proba["data"][0] == float(np.float32(0.9))  # the float32 value, not 0.9
    assert proba["parameters"] == {"content_type": "np"}


def test_column_major_probabilities_are_written_row_by_row() -> None:
    """xgboost may hand back a Fortran-ordered array; the wire is always row-major."""
    proba = np.asfortranarray([[0.9, 0.1], [0.2, 0.8]])
    doc = orjson.loads(
        orjson.dumps(
            predict_response("m", None, {"predict": np.array([0, 1]), "predict_proba": proba}),
            option=RESPONSE_JSON,
        )
    )
    assert doc["probabilities"] == [[0.9, 0.1], [0.2, 0.8]]
    assert doc["version"] is None


LABELS = np.array([0, 1])
PROBA = np.array([[0.9, 0.1], [0.2, 0.8]])


def test_score_counts_wrong_labels_and_the_largest_difference() -> None:
    assert score((LABELS, PROBA), (LABELS, PROBA)) == Score(2, 0, 0.0, None)
    got = score((np.array([0, 0]), PROBA + np.array([[0, 0], [0.25, -0.25]])), (LABELS, PROBA))
    assert (got.rows, got.label_mismatches, got.first_wrong_row) == (2, 1, 1)
    assert got.max_abs_dp == pytest.approx(0.25)
    with pytest.raises(WireError, match="answer shapes"):
        score((LABELS, PROBA[:, :1]), (LABELS, PROBA))


def test_scores_add_up_across_requests() -> None:
    first = Score(5, 0, 1e-9)
    second = Score(3, 2, 1e-3, first_wrong_row=1)
    total = first + second
    assert total == Score(8, 2, 1e-3, first_wrong_row=6)  # row 1 of the second request
    assert (Score(2, 1, 0.0, 0) + second).first_wrong_row == 0  # the first wrong row stays


def test_mismatch_reports_first_difference() -> None:
    assert DEFAULT_ATOL == 1e-6
    assert mismatch((LABELS, PROBA), (LABELS, PROBA)) is None
    wrong = mismatch((np.array([0, 0]), PROBA), (LABELS, PROBA))
    assert wrong == "1 wrong label(s); row 1: got 0, expected 1"
    assert "differ by 0.001" in str(mismatch((LABELS, PROBA + 1e-3), (LABELS, PROBA)))
    assert mismatch((LABELS, PROBA + 1e-8), (LABELS, PROBA)) is None
    assert mismatch((LABELS, PROBA + 1e-3), (LABELS, PROBA), atol=1e-2) is None
    assert "answer shapes" in str(mismatch((LABELS[:1], PROBA[:1]), (LABELS, PROBA)))
