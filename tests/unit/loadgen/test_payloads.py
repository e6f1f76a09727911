"""Payload cycle: every held-out row equally often, in a fixed order, decodable by its server."""

from __future__ import annotations

import itertools
from collections import Counter

import numpy as np
import orjson
import pytest

from servingbench.loadgen.payloads import Payload, build_payloads, payload_cycle, start_offset
from servingbench.models.artifacts import load_metadata
from servingbench.wire import (
    INPUT_NAME,
    RESPONSE_JSON,
    WIRE_FORMATS,
    WireName,
    mismatch,
    predict_response,
    v2_grpc_response,
    v2_response,
)


@pytest.fixture(scope="module")
def iris_rows(trained_models: None) -> list[list[float]]:
    return load_metadata("iris").held_out.rows


def _sent_rows(body: bytes) -> list[tuple[float, ...]]:
    tensor = orjson.loads(body)["inputs"][0]
    data = np.asarray(tensor["data"], dtype=np.float32).reshape(tensor["shape"])
    return [tuple(row) for row in data.tolist()]


def _row(row: list[float]) -> tuple[float, ...]:
    return tuple(np.asarray(row, dtype=np.float32).tolist())


def test_one_row_per_request_follows_held_out_order(iris_rows: list[list[float]]) -> None:
    payloads = build_payloads("v2-json", "iris", 1)
    assert len(payloads) == len(iris_rows)
    for payload, row in zip(payloads, iris_rows, strict=True):
        assert _sent_rows(payload.body) == [_row(row)]
        assert payload.n_rows == 1


def test_batches_cover_every_row_equally(iris_rows: list[list[float]]) -> None:
    k, n = 7, len(iris_rows)
    payloads = build_payloads("v2-json", "iris", k)
    assert len(payloads) == n // np.gcd(n, k)
    sent = Counter(row for p in payloads for row in _sent_rows(p.body))
    assert set(sent.values()) == {len(payloads) * k // n}
    first = _sent_rows(payloads[0].body)
    assert first == [_row(iris_rows[j % n]) for j in range(k)]


def test_expected_answers_travel_with_their_rows(trained_models: None) -> None:
    held = load_metadata("breast-cancer").held_out
    payload = build_payloads("v2-grpc", "breast-cancer", 3)[1]
    assert payload.labels.tolist() == held.expected_labels[3:6]
    np.testing.assert_allclose(payload.proba, held.expected_proba[3:6])


def test_each_protocol_encodes_the_same_rows(iris_rows: list[list[float]]) -> None:
    from tritonclient.grpc import service_pb2

    rest = orjson.loads(build_payloads("predict-json", "iris", 2)[0].body)
    assert rest["model"] == "iris"
    assert [_row(r) for r in rest["features"]] == [_row(r) for r in iris_rows[:2]]
    request = service_pb2.ModelInferRequest.FromString(build_payloads("v2-grpc", "iris", 2)[0].body)
    assert request.model_name == "iris"
    assert request.inputs[0].name == INPUT_NAME
    assert list(request.inputs[0].shape) == [2, 4]
    assert [o.name for o in request.outputs] == ["predict_proba"]  # one model call on MLServer
    v2 = orjson.loads(build_payloads("v2-json", "iris", 1)[0].body)
    assert v2["outputs"] == [{"name": "predict_proba"}]


def test_encoding_is_deterministic() -> None:
    first = [p.body for p in build_payloads("v2-grpc", "iris", 5)]
    assert first == [p.body for p in build_payloads("v2-grpc", "iris", 5)]


def test_users_start_at_fixed_spread_offsets() -> None:
    offsets = [start_offset(i, 38) for i in range(10)]
    assert offsets == [start_offset(i, 38) for i in range(10)]
    assert offsets[0] == 0
    assert len(set(offsets)) == 10
    assert all(0 <= o < 38 for o in offsets)


def test_cycle_starts_at_offset_and_wraps(trained_models: None) -> None:
    payloads = build_payloads("v2-json", "iris", 1)
    offset = start_offset(3, len(payloads))
    seen = list(itertools.islice(payload_cycle(payloads, 3), len(payloads) + 1))
    assert seen[0] is payloads[offset]
    assert seen[-1] is seen[0]
    assert {id(p) for p in seen} == {id(p) for p in payloads}


def test_rows_per_request_must_be_positive(trained_models: None) -> None:
    with pytest.raises(ValueError, match=">= 1"):
        build_payloads("predict-json", "iris", 0)


def test_unknown_wire_format_is_refused(trained_models: None) -> None:
    with pytest.raises(ValueError, match="known: predict-json, v2-json, v2-grpc"):
        build_payloads("v2-rest", "iris", 1)  # type: ignore[arg-type]


def _answer(wire: WireName, payload: Payload) -> bytes:
    """What a server (or a no-op calibration server) answers to `payload`, as bytes."""
    proba = {"predict_proba": payload.proba32}  # V2 load requests ask for predict_proba only
    if wire == "predict-json":
        doc = predict_response("m", "1", {"predict": payload.labels, **proba})
        return orjson.dumps(doc, option=RESPONSE_JSON)
    if wire == "v2-json":
        return orjson.dumps(v2_response("m", "1", "id", proba), option=RESPONSE_JSON)
    return bytes(v2_grpc_response("m", "1", "id", proba).SerializeToString())


@pytest.mark.parametrize("wire", list(WIRE_FORMATS))
def test_answers_to_each_payload_decode_to_its_expectation(
    wire: WireName, trained_models: None
) -> None:
    """The generator's decoding of each wire format accepts the answer each payload expects."""
    payloads = build_payloads(wire, "breast-cancer", 3)
    for payload in payloads[:10]:
        assert payload.proba32.dtype == np.float32
        got = WIRE_FORMATS[wire].decode(_answer(wire, payload), payload.n_rows)
        assert mismatch(got, (payload.labels, payload.proba)) is None
    wrong = payloads[0]
    flipped = Payload(wrong.body, wrong.n_rows, 1 - wrong.labels, wrong.proba[:, ::-1])
    got = WIRE_FORMATS[wire].decode(_answer(wire, flipped), flipped.n_rows)
    assert mismatch(got, (wrong.labels, wrong.proba)) is not None
