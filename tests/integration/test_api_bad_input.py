"""Every kind of bad request gets its 4xx and `{"error": ...}`; the server keeps serving.

KServe gets the same malformed V2 requests; what it answers is recorded (not prescribed) in
`KSERVE_CASES`, so a change in its behaviour (or in our model class) shows up here.
"""

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


TWO_INPUTS = orjson.dumps({"inputs": [orjson.loads(_v2())["inputs"][0]] * 2})
BYTES_STRINGS = _v2(datatype="BYTES", data=["a", "b", "c", "d"])
VERSION_9 = "/v2/models/iris/versions/9/infer"

# What KServe 0.16 (with our `servingbench.servers.kserve` model class) answers to the same
# malformed V2 requests, as observed; a 200 is recorded too: it accepted the request.
# id, method, path, body, headers, status, fragment of the response
KSERVE_CASES: list[tuple[str, str, str, bytes, dict[str, str], int, str]] = [
    ("invalid-json", "POST", INFER, b"{features", JSON, 422, "JSON decode error"),
    ("empty-body", "POST", INFER, b"", JSON, 422, "Field required"),
    # without application/json KServe reads the body as the binary-tensor extension
    ("wrong-type", "POST", INFER, _v2(), TEXT, 400, "inference-header-content-length"),
    ("no-type", "POST", INFER, _v2(), {}, 400, "inference-header-content-length"),
    ("missing-inputs", "POST", INFER, b'{"rows": [[1,2,3,4]]}', JSON, 422, "Field required"),
    ("extra-field", "POST", INFER, orjson.dumps({**orjson.loads(_v2()), "x": 1}), JSON, 200, ""),
    ("v2-shape", "POST", INFER, _v2(shape=[1, 3], data=[1, 2, 3]), JSON, 400, "expected shape"),
    ("v2-3d", "POST", INFER, _v2(shape=[1, 2, 2]), JSON, 400, "expected shape [N, 4]"),
    ("v2-data-length", "POST", INFER, _v2(data=[1, 2, 3]), JSON, 400, "cannot reshape"),
    ("string", "POST", INFER, _v2(data=[1, "x", 3, 4]), JSON, 400, "could not convert string"),
    ("numeric-string", "POST", INFER, _v2(data=[1, "2", 3, 4]), JSON, 200, ""),  # coerced
    ("bool", "POST", INFER, _v2(data=[1, True, 3, 4]), JSON, 200, ""),  # coerced to 1.0
    ("null", "POST", INFER, _v2(data=[1, None, 3, 4]), JSON, 400, "contains NaN"),
    ("nan-literal", "POST", INFER, _v2().replace(b"5.1", b"NaN"), JSON, 400, "contains NaN"),
    ("inf-number", "POST", INFER, _v2().replace(b"5.1", b"1e999"), JSON, 400, "infinity"),
    ("float32-overflow", "POST", INFER, _v2(data=[1e39, 2, 3, 4]), JSON, 400, "infinity"),
    ("empty-input", "POST", INFER, _v2(shape=[0, 4], data=[]), JSON, 400, "0 sample(s)"),
    ("many-rows", "POST", INFER, _v2(shape=[1025, 4], data=ROW * 1025), JSON, 200, ""),  # no cap
    ("two-inputs", "POST", INFER, TWO_INPUTS, JSON, 400, "expected one input tensor"),
    ("v2-unknown-model", "POST", "/v2/models/x/infer", _v2(), JSON, 404, "does not exist"),
    ("v2-version", "POST", VERSION_9, _v2(), JSON, 501, "versioning not supported"),
    ("v2-output", "POST", INFER, WITH_OUTPUT, JSON, 400, "unknown output"),
    ("v2-datatype-bytes", "POST", INFER, _v2(datatype="BYTES"), JSON, 200, ""),
    # our model class turns the float32 cast's ValueError into a 400 naming the input
    ("v2-bytes-strings", "POST", INFER, BYTES_STRINGS, JSON, 400, "could not convert string"),
    ("v2-datatype-unknown", "POST", INFER, _v2(datatype="FP99"), JSON, 400, "invalid datatype"),
    ("v2-fp64", "POST", INFER, _v2(datatype="FP64"), JSON, 200, ""),
    ("v2-int32", "POST", INFER, _v2(datatype="INT32", data=[5, 3, 1, 0]), JSON, 200, ""),
    ("unknown-route", "GET", "/nowhere", b"", {}, 404, "Not Found"),
    ("wrong-method", "GET", INFER, b"", {}, 405, "Method Not Allowed"),
]  # fmt: skip


def _text(body: Any) -> str:
    return body.decode(errors="replace") if isinstance(body, bytes) else orjson.dumps(body).decode()


@pytest.mark.parametrize(
    ("method", "path", "body", "headers", "status", "fragment"),
    [case[1:] for case in KSERVE_CASES],
    ids=[case[0] for case in KSERVE_CASES],
)
def test_kserve_answers_the_same_bad_requests_as_recorded(
    kserve_server: ApiServer,
    method: str,
    path: str,
    body: bytes,
    headers: dict[str, str],
    status: int,
    fragment: str,
) -> None:
    got_status, got = request(kserve_server, method, path, body=body or None, headers=headers)
    assert (got_status, fragment in _text(got)) == (status, True), _text(got)[:300]
    if status == 200:  # accepted: a V2 answer for every row sent
        rows = orjson.loads(body)["inputs"][0]["shape"][0]
        [output] = got["outputs"]
        assert (output["name"], output["shape"]) == ("predict", [rows, 1])
    # ... and the server still answers a good request
    good_status, good = request(kserve_server, "POST", INFER, body=_v2(), headers=JSON)
    assert good_status == 200, good
    assert good["outputs"][0]["data"] == [0]
