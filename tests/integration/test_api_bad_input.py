"""Our service: every kind of bad request gets its 4xx and `{"error": ...}`; it keeps serving.

Every registered backend, ours included, also gets one battery of malformed requests for each
HTTP wire format it speaks. What must hold for any server is asserted: an HTTP answer (not a
dropped connection) and a correct answer to a good request afterwards, and, for `predict-json`
(our wire format), a 4xx to malformed features. What else each answered (a 4xx with a message,
a 500, or a 200) is not prescribed: it is written to a table, printed at the end of the session
and left in pytest's temporary folder as `bad-input-answers.md`.
"""

from __future__ import annotations

import http.client
from collections.abc import Iterator
from typing import Any

import orjson
import pytest

from servingbench.api.settings import ApiSettings
from servingbench.models.expected import ExpectedAnswers
from servingbench.servers import Endpoint, backends
from servingbench.wire import get_wire, mismatch
from tests.conftest import BAD_INPUT_TABLE, ServerPool
from tests.integration.api_http import ApiServer, request

pytestmark = pytest.mark.integration

JSON = {"Content-Type": "application/json"}
ROW = [5.1, 3.5, 1.4, 0.2]
TOO_MANY = ApiSettings.model_fields["max_rows"].default + 1
"""One row over our service's default limit."""
TOO_MANY_BODY = orjson.dumps({"features": [ROW] * TOO_MANY})


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
    ("too-many-rows", "POST", P, TOO_MANY_BODY, JSON, 413, str(TOO_MANY)),
    ("unknown-model", "POST", P, b'{"features": [1,2,3,4], "model": "x"}', JSON, 404, "iris"),
    ("v2-unknown-model", "POST", "/v2/models/x/infer", _v2(), JSON, 404, "served models"),
    ("v2-version", "POST", "/v2/models/iris/versions/9/infer", _v2(), JSON, 404, "version: 1"),
    ("v2-shape", "POST", INFER, _v2(shape=[1, 3], data=[1, 2, 3]), JSON, 422, "expects 4"),
    ("v2-data-length", "POST", INFER, _v2(data=[1, 2, 3]), JSON, 422, "needs 4"),
    ("v2-datatype", "POST", INFER, _v2(datatype="BYTES"), JSON, 422, "not supported"),
    ("v2-overflow", "POST", INFER, _v2(data=[1e39, 2, 3, 4]), JSON, 422, "row 0, column 0"),
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
    limit = ApiSettings.model_fields["max_body_bytes"].default
    big = orjson.dumps({"features": [ROW] * (limit // len(orjson.dumps(ROW)) + 1)})
    assert len(big) > limit
    assert request(api_server, "POST", "/predict", body=big, headers=JSON)[0] == 413
    chunks = [big[i : i + 65536] for i in range(0, len(big), 65536)]  # no Content-Length
    status, body = request(api_server, "POST", "/predict", body=iter(chunks), headers=JSON)
    assert status == 413
    assert "exceeds the limit" in body["error"]
    assert request(api_server, "POST", "/predict", json={"features": ROW})[0] == 200


TWO_INPUTS = orjson.dumps({"inputs": [orjson.loads(_v2())["inputs"][0]] * 2})
BYTES_STRINGS = _v2(datatype="BYTES", data=["a", "b", "c", "d"])


def _predict(features: Any, **extra: Any) -> bytes:
    return orjson.dumps({"features": features, "model": "iris", **extra})


# The malformed requests every backend gets, by wire format: (id, method, body, headers); the
# path is the wire format's (for the iris model). A wire format without a list here gets FALLBACK.
BATTERY: dict[str, list[tuple[str, str, bytes, dict[str, str]]]] = {
    "predict-json": [
        ("invalid-json", "POST", b"{features", JSON),
        ("empty-body", "POST", b"", JSON),
        ("text-plain", "POST", _predict([ROW]), TEXT),
        ("missing-field", "POST", b'{"rows": [[1,2,3,4]], "model": "iris"}', JSON),
        ("extra-field", "POST", _predict([ROW], x=1), JSON),
        ("feature-count", "POST", _predict([[1, 2, 3]]), JSON),
        ("ragged", "POST", _predict([[1, 2, 3, 4], [1, 2]]), JSON),
        ("string", "POST", _predict([[1, "x", 3, 4]]), JSON),
        ("bool", "POST", _predict([[1, True, 3, 4]]), JSON),
        ("null", "POST", _predict([[1, None, 3, 4]]), JSON),
        ("nan-literal", "POST", b'{"features": [[NaN, 1, 2, 3]], "model": "iris"}', JSON),
        ("float32-overflow", "POST", _predict([[1e39, 2, 3, 4]]), JSON),
        ("empty-input", "POST", _predict([]), JSON),
        ("unknown-model", "POST", orjson.dumps({"features": [ROW], "model": "x"}), JSON),
        ("many-rows", "POST", _predict([ROW] * TOO_MANY), JSON),
        ("wrong-method", "GET", b"", {}),
    ],
    "v2-json": [
        ("invalid-json", "POST", b"{features", JSON),
        ("empty-body", "POST", b"", JSON),
        ("text-plain", "POST", _v2(), TEXT),
        ("no-type", "POST", _v2(), {}),
        ("missing-inputs", "POST", b'{"rows": [[1,2,3,4]]}', JSON),
        ("extra-field", "POST", orjson.dumps({**orjson.loads(_v2()), "x": 1}), JSON),
        ("v2-shape", "POST", _v2(shape=[1, 3], data=[1, 2, 3]), JSON),
        ("v2-3d", "POST", _v2(shape=[1, 2, 2]), JSON),
        ("v2-data-length", "POST", _v2(data=[1, 2, 3]), JSON),
        ("string", "POST", _v2(data=[1, "x", 3, 4]), JSON),
        ("bool", "POST", _v2(data=[1, True, 3, 4]), JSON),
        ("null", "POST", _v2(data=[1, None, 3, 4]), JSON),
        ("nan-literal", "POST", _v2().replace(b"5.1", b"NaN"), JSON),
        ("float32-overflow", "POST", _v2(data=[1e39, 2, 3, 4]), JSON),
        ("empty-input", "POST", _v2(shape=[0, 4], data=[]), JSON),
        ("many-rows", "POST", _v2(shape=[TOO_MANY, 4], data=ROW * TOO_MANY), JSON),
        ("two-inputs", "POST", TWO_INPUTS, JSON),
        ("v2-output", "POST", WITH_OUTPUT, JSON),
        ("v2-datatype-bytes", "POST", BYTES_STRINGS, JSON),
        ("v2-datatype-unknown", "POST", _v2(datatype="FP99"), JSON),
        ("wrong-method", "GET", b"", {}),
    ],
}
CONTENT_ERRORS = (
    "feature-count", "ragged", "string", "bool", "null", "nan-literal", "float32-overflow",
    "empty-input", "unknown-model", "many-rows",
)  # fmt: skip
"""Malformed features of `predict-json`, our wire format: every server speaking it declares
its body with `wire.FEATURE_ROWS` and answers with `models.answering`, so each must refuse
these with a 4xx (its framework's own handling of headers and extra fields may differ)."""
FALLBACK = [
    ("invalid-json", "POST", b"{features", JSON),
    ("empty-body", "POST", b"", JSON),
    ("wrong-method", "GET", b"", {}),
]

HTTP_ENDPOINTS = [
    (backend.name, endpoint)
    for backend in backends().values()
    for endpoint in backend.endpoints
    if get_wire(endpoint.wire).transport == "http"
]


def _text(body: Any) -> str:
    return body.decode(errors="replace") if isinstance(body, bytes) else orjson.dumps(body).decode()


def _first_words(body: Any, limit: int = 70) -> str:
    words = " ".join(_text(body).split())
    return words if len(words) <= limit else words[: limit - 3] + "..."


@pytest.fixture(scope="module")
def answer_table(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[list[tuple[str, ...]]]:
    """Rows (backend, wire, case, status, first words), written out when the module ends."""
    rows: list[tuple[str, ...]] = []
    yield rows
    if rows:
        lines = ["| backend | wire | request | status | answer |", "|---|---|---|---|---|"]
        lines += ["| " + " | ".join(r.replace("|", "/") for r in row) + " |" for row in rows]
        text = "\n".join(lines) + "\n"
        (tmp_path_factory.getbasetemp() / "bad-input-answers.md").write_text(text)
        request.config.stash[BAD_INPUT_TABLE] = text


@pytest.mark.parametrize(
    ("backend", "endpoint"),
    HTTP_ENDPOINTS,
    ids=[f"{name}-{endpoint.wire}" for name, endpoint in HTTP_ENDPOINTS],
)
def test_every_backend_answers_malformed_requests_and_keeps_serving(
    server_pool: ServerPool,
    answer_table: list[tuple[str, ...]],
    backend: str,
    endpoint: Endpoint,
) -> None:
    server = server_pool.get(backend)
    wire = get_wire(endpoint.wire)
    path = wire.path("iris")
    expected = ExpectedAnswers.for_model("iris")
    good_rows = expected.rows[:2].tolist()
    for case, method, body, headers in BATTERY.get(wire.name, FALLBACK):
        try:
            status, got = request(
                server, method, path, body=body or None, headers=headers, port=endpoint.port
            )
        except (ConnectionError, http.client.HTTPException) as exc:
            pytest.fail(f"{backend} {wire.name} {case}: no HTTP answer ({exc!r})")
        assert 200 <= status <= 599, (case, status)
        answer_table.append((backend, wire.name, case, str(status), _first_words(got)))
        if wire.name == "predict-json" and case in CONTENT_ERRORS:
            assert 400 <= status < 500, (case, status, _first_words(got))
        # ... and the server still answers a good request correctly
        good_status, good = request(
            server, "POST", path, body=wire.encode("iris", good_rows), headers=JSON,
            port=endpoint.port,
        )  # fmt: skip
        assert good_status == 200, (case, _text(good)[:300])
        raw = good if isinstance(good, bytes) else orjson.dumps(good)
        assert mismatch(wire.decode(raw, 2), expected.expected_for(good_rows)) is None, case
