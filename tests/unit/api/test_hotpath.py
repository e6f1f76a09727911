"""The raw-ASGI hot path: which requests it takes, and that it answers exactly as FastAPI does."""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
import pytest
from fastapi import FastAPI

from servingbench.api.hotpath import HOT_ROUTES, HotPath, match
from servingbench.api.main import create_app
from servingbench.api.settings import ApiSettings
from servingbench.models.artifacts import load_metadata
from servingbench.wire import OUTPUTS, PROBA_ONLY, get_wire, v2_json_body


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("/predict", ("/predict", None, None)),
        ("/v2/models/iris/infer", ("/v2/models/{name}/infer", "iris", None)),
        (
            "/v2/models/iris/versions/1/infer",
            ("/v2/models/{name}/versions/{version}/infer", "iris", "1"),
        ),
        ("/predict/", None),
        ("/v2/models/infer", None),
        ("/v2/models//infer", None),
        ("/v2/models/a/b/infer", None),
        ("/v2/models/iris/versions//infer", None),
        ("/v2/models/iris/ready", None),
    ],
)
def test_match_takes_only_the_inference_routes(path: str, expected: object) -> None:
    assert match(path) == expected


def test_hot_routes_are_fastapi_post_routes() -> None:
    """Same templates: /stats and /metrics keep one series per endpoint; OpenAPI lists them."""
    fastapi = create_app().app
    assert isinstance(fastapi, FastAPI)
    # Read from the OpenAPI document: FastAPI >= 0.165 nests included routers in `app.routes`.
    paths = fastapi.openapi()["paths"]
    posts = {path for path, operations in paths.items() if "post" in operations}
    assert set(HOT_ROUTES) <= posts


async def _call(app: Any, method: str, path: str, body: bytes, ctype: str) -> tuple[int, bytes]:
    """One HTTP request through an ASGI app, as uvicorn would send it."""
    scope = {
        "type": "http",
        "method": method,
        "path": path,
        "raw_path": path.encode(),
        "root_path": "",
        "scheme": "http",
        "query_string": b"",
        "headers": [(b"content-type", ctype.encode()), (b"host", b"test")],
        "client": ("127.0.0.1", 1),
        "server": ("127.0.0.1", 2),
        "http_version": "1.1",
        "asgi": {"version": "3.0"},
    }
    sent: list[dict[str, Any]] = []
    messages = [{"type": "http.request", "body": body, "more_body": False}]

    async def receive() -> dict[str, Any]:
        return messages.pop(0) if messages else {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await app(scope, receive, send)
    return sent[0]["status"], b"".join(m.get("body", b"") for m in sent[1:])


JSON = "application/json"


def _requests() -> list[tuple[str, bytes, str]]:
    rows = load_metadata("breast-cancer").held_out.rows[:3]
    return [
        ("/predict", get_wire("predict-json").encode("breast-cancer", rows), JSON),
        ("/predict", b'{"features": [1, 2, 3, 4]}', JSON),
        ("/predict", b'{"features": [1, true, 3, 4]}', JSON),
        ("/predict", b"{features", JSON),
        ("/predict", b"", JSON),
        ("/predict", b'{"features": [1, 2, 3, 4]}', "text/plain"),
        ("/predict", b'{"features": [1, 2, 3, 4], "model": "nope"}', JSON),
        ("/v2/models/breast-cancer/infer", v2_json_body(rows, PROBA_ONLY), JSON),
        ("/v2/models/breast-cancer/versions/1/infer", v2_json_body(rows, OUTPUTS), JSON),
        ("/v2/models/breast-cancer/versions/9/infer", v2_json_body(rows, OUTPUTS), JSON),
        ("/v2/models/nope/infer", b"{bad", JSON),
        ("/v2/models/iris/infer", v2_json_body(rows, OUTPUTS), JSON),
    ]


def _comparable(body: bytes) -> Any:
    doc = orjson.loads(body)
    doc.pop("id", None)  # a fresh uuid per V2 response
    return doc


@pytest.mark.usefixtures("trained_models")
def test_hot_path_answers_exactly_as_the_fastapi_routes() -> None:
    hot = create_app(ApiSettings(default_model="iris"))
    assert isinstance(hot, HotPath)

    async def compare() -> None:
        fastapi = hot.app
        assert isinstance(fastapi, FastAPI)
        async with fastapi.router.lifespan_context(fastapi):
            for path, body, ctype in _requests():
                got = await _call(hot, "POST", path, body, ctype)
                want = await _call(fastapi, "POST", path, body, ctype)
                assert got[0] == want[0], (path, body, got)
                assert _comparable(got[1]) == _comparable(want[1]), (path, body)

    asyncio.run(compare())
