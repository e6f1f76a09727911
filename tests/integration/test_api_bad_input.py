"""Every kind of bad request gets its 4xx and `{"error": ...}`; the server keeps serving."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from tests.integration.api_http import ApiServer, request

pytestmark = pytest.mark.integration

JSON = {"Content-Type": "application/json"}
ROW = [5.1, 3.5, 1.4, 0.2]


def _v2(**tensor: Any) -> bytes:
    base = {"name": "input-0", "shape": [1, 4], "datatype": "FP32", "data": ROW}
    return orjson.dumps({"inputs": [{**base, **tensor}]})


P = "/predict"
INFER = "/v2/models/iris/infer"
TEXT = {"Content-Type": "text/plain"}
WITH_OUTPUT = orjson.dumps({**orjson.loads(_v2()), "outputs": [{"name": "transform"}]})

# id, method, path, body, headers, status, fragment of the message
CASES: list[tuple[str, str, str, bytes, dict[str, str], int, str]] = [
    ("invalid-json", "POST", P, b"{features", JSON, 400, "not valid JSON"),
    ("nan-literal", "POST", P, b'{"features": [NaN, 1, 2, 3]}', JSON, 400, "NaN"),
    ("inf-number", "POST", P, b'{"features": [1e999, 1, 2, 3]}', JSON, 400, "JSON"),
    ("empty-body", "POST", P, b"", JSON, 400, "empty body"),
    ("wrong-type", "POST", P, b'{"features": [1,2,3,4]}', TEXT, 415, "application/json"),
    ("missing-field", "POST", P, b'{"rows": [[1,2,3,4]]}', JSON, 422, "'features'"),
    ("extra-field", "POST", P, b'{"features": [1,2,3,4], "x": 1}', JSON, 422, "unknown field"),
    ("feature-count", "POST", P, b'{"features": [1,2,3]}', JSON, 422, "expects 4 features"),
    ("ragged", "POST", P, b'{"features": [[1,2,3,4],[1,2]]}', JSON, 422, "features[1] has 2"),
    ("string", "POST", P, b'{"features": [1,"2",3,4]}', JSON, 422, "a string"),
    ("bool", "POST", P, b'{"features": [1,true,3,4]}', JSON, 422, "a boolean"),
    ("null", "POST", P, b'{"features": [1,null,3,4]}', JSON, 422, "null"),
    ("float32-overflow", "POST", P, b'{"features": [1e39,2,3,4]}', JSON, 422, "overflows"),
    ("empty-input", "POST", P, b'{"features": []}', JSON, 422, "empty"),
    ("too-many-rows", "POST", P, orjson.dumps({"features": [ROW] * 1025}), JSON, 413, "1025"),
    ("unknown-model", "POST", P, b'{"features": [1,2,3,4], "model": "x"}', JSON, 404, "iris"),
    ("v2-unknown-model", "POST", "/v2/models/x/infer", _v2(), JSON, 404, "served models"),
    ("v2-version", "POST", "/v2/models/iris/versions/9/infer", _v2(), JSON, 404, "version: 1"),
    ("v2-shape", "POST", INFER, _v2(shape=[1, 3], data=[1, 2, 3]), JSON, 422, "expects 4"),
    ("v2-data-length", "POST", INFER, _v2(data=[1, 2, 3]), JSON, 422, "needs 4"),
    ("v2-datatype", "POST", INFER, _v2(datatype="BYTES"), JSON, 422, "not supported"),
    ("v2-output", "POST", INFER, WITH_OUTPUT, JSON, 422, "unknown output"),
    ("unknown-route", "GET", "/nowhere", b"", {}, 404, "no route /nowhere"),
    ("wrong-method", "GET", P, b"", {}, 405, "POST"),
]


@pytest.mark.parametrize(
    ("method", "path", "body", "headers", "status", "fragment"),
    [case[1:] for case in CASES],
    ids=[case[0] for case in CASES],
)
def test_bad_request_gets_4xx_json_error(
    api_server: ApiServer,
    method: str,
    path: str,
    body: bytes,
    headers: dict[str, str],
    status: int,
    fragment: str,
) -> None:
    got_status, got = request(api_server, method, path, body=body or None, headers=headers)
    assert got_status == status, got
    assert set(got) == {"error"}
    assert fragment in got["error"]
    # ... and the server still answers a good request
    assert request(api_server, "POST", "/predict", json={"features": ROW})[0] == 200


def test_body_over_limit_is_refused_by_length_and_when_streamed(api_server: ApiServer) -> None:
    big = orjson.dumps({"features": [ROW] * 60_000})  # > 1 MiB
    assert request(api_server, "POST", "/predict", body=big, headers=JSON)[0] == 413
    chunks = [big[i : i + 65536] for i in range(0, len(big), 65536)]  # no Content-Length
    status, body = request(api_server, "POST", "/predict", body=iter(chunks), headers=JSON)
    assert status == 413
    assert "exceeds the limit" in body["error"]
    assert request(api_server, "POST", "/predict", json={"features": ROW})[0] == 200
