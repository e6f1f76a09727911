"""The threadpool and batching predict modes give the same answers as the default mode."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest

from servingbench.artifacts import load_metadata
from servingbench.stack.processes import free_port, http_ok, start_detached, stop_handle, wait_until
from servingbench.stack.servers import api_spec
from tests.integration.api_http import ApiServer, request

pytestmark = pytest.mark.integration


@contextmanager
def _serve(tmp_path: Path, settings: dict[str, object]) -> Iterator[ApiServer]:
    spec = api_spec(free_port(), name=f"api-{settings['predict_mode']}", settings=settings)
    handle = start_detached(spec.name, spec.argv, tmp_path / f"{spec.name}.log", env=spec.env)
    try:
        wait_until(handle, [lambda: all(http_ok(u) for u in spec.ready_urls)], timeout_s=90)
        yield spec, handle
    finally:
        stop_handle(handle)


def _check(server: ApiServer, name: str, row: int) -> None:
    held_out = load_metadata(name).held_out
    body = {"features": held_out.rows[row], "model": name}
    status, got = request(server, "POST", "/predict", json=body)
    assert status == 200, got
    assert got["labels"] == [held_out.expected_labels[row]]
    np.testing.assert_allclose(
        got["probabilities"], [held_out.expected_proba[row]], rtol=0, atol=1e-6
    )


@pytest.mark.usefixtures("trained_models")
def test_threadpool_mode(tmp_path: Path) -> None:
    with _serve(tmp_path, {"predict_mode": "threadpool"}) as server:
        for name in ("iris", "breast-cancer"):
            _check(server, name, 0)
        _, health = request(server, "GET", "/health")
        assert health["predict_mode"] == "threadpool"


@pytest.mark.usefixtures("trained_models")
def test_batching_mode_under_concurrent_requests(tmp_path: Path) -> None:
    settings = {"predict_mode": "batching", "batch_max_size": 8, "batch_max_wait_ms": 5.0}
    with _serve(tmp_path, settings) as server:
        names = [name for name in ("iris", "breast-cancer") for _ in range(20)] * 2
        rows = [row for _ in range(2) for row in range(20)] * 2
        with ThreadPoolExecutor(max_workers=16) as pool:
            list(pool.map(_check, [server] * len(names), names, rows))
        # a malformed request is still refused in batching mode
        assert request(server, "POST", "/predict", json={"features": [1, 2]})[0] == 422
