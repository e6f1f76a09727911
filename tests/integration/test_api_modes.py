"""The threadpool and batching predict modes give the same answers as the default mode."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

from servingbench.models.artifacts import load_metadata
from tests.conftest import serve
from tests.integration.api_http import ApiServer, request

pytestmark = pytest.mark.integration


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
    with serve("fastapi", tmp_path, "threadpool", predict_mode="threadpool") as server:
        assert server.spec.env["SERVINGBENCH_API_PREDICT_MODE"] == "threadpool"
        for name in ("iris", "breast-cancer"):
            _check(server, name, 0)
        _, health = request(server, "GET", "/health")
        assert health["predict_mode"] == "threadpool"


@pytest.mark.usefixtures("trained_models")
def test_batching_mode_under_concurrent_requests(tmp_path: Path) -> None:
    options = {"predict_mode": "batching", "batch_max_size": 8, "batch_max_wait_ms": 5.0}
    with serve("fastapi", tmp_path, "batching", **options) as server:
        names = [name for name in ("iris", "breast-cancer") for _ in range(20)] * 2
        rows = [row for _ in range(2) for row in range(20)] * 2
        with ThreadPoolExecutor(max_workers=16) as pool:
            list(pool.map(_check, [server] * len(names), names, rows))
        _, health = request(server, "GET", "/health")
        assert health["predict_mode"] == "batching"
        # a malformed request is still refused in batching mode
        assert request(server, "POST", "/predict", json={"features": [1, 2]})[0] == 422
