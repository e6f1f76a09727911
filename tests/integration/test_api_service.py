"""Our FastAPI service, running under uvicorn: every endpoint answers as documented."""

from __future__ import annotations

import numpy as np
import pytest
import tritonclient.http as triton_http

from servingbench.models.artifacts import load_metadata
from servingbench.paths import project_root
from tests.integration.api_http import ApiServer, request

pytestmark = pytest.mark.integration


def test_runs_from_its_own_environment(api_server: ApiServer) -> None:
    """Launched as `serve-all` does: backends/fastapi/.venv's `servingbench serve-api`."""
    assert api_server.spec.name == "fastapi-default"
    assert api_server.spec.environment == "fastapi"
    assert api_server.handle.argv[-2:] == (
        str(project_root() / "backends" / "fastapi" / ".venv" / "bin" / "servingbench"),
        "serve-api",
    )
    assert api_server.startup_s > 0


def test_seed_curl_example(api_server: ApiServer) -> None:
    status, body = request(api_server, "POST", "/predict", json={"features": [5.1, 3.5, 1.4, 0.2]})
    assert status == 200
    assert body["model"] == "iris"
    assert body["version"] == "1"
    assert body["labels"] == [0]
    assert len(body["probabilities"]) == 1
    assert len(body["probabilities"][0]) == 3


@pytest.mark.parametrize("name", ["iris", "breast-cancer"])
def test_predict_many_rows_equals_in_process_answers(api_server: ApiServer, name: str) -> None:
    held_out = load_metadata(name).held_out
    status, body = request(
        api_server, "POST", "/predict", json={"features": held_out.rows, "model": name}
    )
    assert status == 200
    assert body["model"] == name
    assert body["labels"] == held_out.expected_labels
    np.testing.assert_allclose(body["probabilities"], held_out.expected_proba, rtol=0, atol=1e-6)


@pytest.mark.parametrize("name", ["iris", "breast-cancer"])
def test_v2_through_tritonclient_equals_in_process_answers(
    api_server: ApiServer, name: str
) -> None:
    held_out = load_metadata(name).held_out
    x = np.asarray(held_out.rows, dtype=np.float32)
    client = triton_http.InferenceServerClient(
        f"{api_server.spec.host}:{api_server.spec.ports['http']}"
    )
    try:
        tensor = triton_http.InferInput("input-0", list(x.shape), "FP32")
        tensor.set_data_from_numpy(x, binary_data=False)
        outputs = [
            triton_http.InferRequestedOutput(n, binary_data=False)
            for n in ("predict", "predict_proba")
        ]
        result = client.infer(name, [tensor], outputs=outputs)
        assert client.is_model_ready(name)
    finally:
        client.close()
    assert result.as_numpy("predict").reshape(-1).tolist() == held_out.expected_labels
    np.testing.assert_allclose(
        result.as_numpy("predict_proba"), held_out.expected_proba, rtol=0, atol=1e-6
    )


def test_v2_default_output_is_predict_with_shape_n_by_1(api_server: ApiServer) -> None:
    doc = {"inputs": [{"name": "x", "shape": [2, 4], "datatype": "FP32", "data": [1.0] * 8}]}
    status, body = request(api_server, "POST", "/v2/models/iris/versions/1/infer", json=doc)
    assert status == 200
    assert body["model_name"] == "iris"
    assert body["model_version"] == "1"
    assert body["id"]
    [output] = body["outputs"]
    assert output["name"] == "predict"
    assert output["shape"] == [2, 1]
    assert output["datatype"] == "INT64"


def test_v2_metadata_follows_model_settings(api_server: ApiServer) -> None:
    status, body = request(api_server, "GET", "/v2/models/breast-cancer")
    assert status == 200
    assert body["name"] == "breast-cancer"
    assert body["inputs"] == [{"name": "input-0", "datatype": "FP32", "shape": [-1, 30]}]
    assert [o["name"] for o in body["outputs"]] == ["predict", "predict_proba"]
    assert request(api_server, "GET", "/v2")[0] == 200


@pytest.mark.parametrize(
    "path", ["/v2/health/live", "/v2/health/ready", "/v2/models/iris/ready", "/health"]
)
def test_health_endpoints(api_server: ApiServer, path: str) -> None:
    assert request(api_server, "GET", path)[0] == 200


def test_models_lists_features_classes_and_artifact_hash(api_server: ApiServer) -> None:
    status, body = request(api_server, "GET", "/models")
    assert status == 200
    by_name = {m["name"]: m for m in body}
    meta = load_metadata("iris")
    assert by_name["iris"]["sha256"] == meta.sha256
    assert by_name["iris"]["feature_names"] == meta.feature_names
    assert by_name["iris"]["classes"] == [0, 1, 2]
    assert by_name["breast-cancer"]["version"] == "1"


def test_stats_and_metrics_count_requests(api_server: ApiServer) -> None:
    for _ in range(3):
        request(api_server, "POST", "/predict", json={"features": [5.1, 3.5, 1.4, 0.2]})
    status, stats = request(api_server, "GET", "/stats")
    assert status == 200
    predict = stats["routes"]["/predict"]
    assert predict["count"] >= 3
    assert 0 < predict["min_ms"] <= predict["p50_ms"] <= predict["p99_ms"] <= predict["max_ms"]
    status, metrics = request(api_server, "GET", "/metrics")
    assert status == 200
    text = metrics.decode()
    assert 'servingbench_api_requests_total{route="/predict",status="200"}' in text
    assert 'servingbench_api_rows_predicted_total{model="iris"}' in text
    assert "servingbench_api_request_duration_seconds_bucket" in text
