"""The latency window and the response encoders."""

from __future__ import annotations

import re

import numpy as np
from prometheus_client.utils import floatToGoString

from servingbench.api.edge import dumps
from servingbench.api.observability import LatencyStats, LatencyWindow, Metrics
from servingbench.api.runners import Stages
from servingbench.wire import predict_response, v2_output


def test_window_keeps_only_the_most_recent_values() -> None:
    window = LatencyWindow(size=4)
    for ms in (100, 1, 2, 3, 4):
        window.add(ms / 1000)
    summary = window.summary()
    assert summary["total"] == 5
    assert summary["count"] == 4
    assert summary["max_ms"] == 4.0  # the 100 ms value was overwritten
    assert summary["min_ms"] == 1.0
    assert summary["p50_ms"] == 2.5


def test_empty_window_reports_no_figures() -> None:
    summary = LatencyStats().summary()
    assert summary["routes"] == {}
    assert LatencyWindow(3).summary()["p99_ms"] is None


def test_v2_output_gives_1d_results_shape_n_by_1() -> None:
    out = v2_output("predict", np.array([0, 2], dtype=np.int64))
    assert out["shape"] == [2, 1]
    assert out["datatype"] == "INT64"


def test_float32_is_written_as_mlserver_writes_it() -> None:
    proba = np.array([[0.9775060415267944, 0.022493863478302956]], dtype=np.float32)
    body = dumps(predict_response("iris", "1", {"predict": np.array([0]), "predict_proba": proba}))
    # MLServer's codec widens float32 to a Python float: the same digits must appear here.
    assert b"[[0.9775060415267944,0.022493863478302956]]" in body
    assert v2_output("predict_proba", proba)["datatype"] == "FP32"


def test_column_major_outputs_are_written_row_by_row() -> None:
    proba = np.asfortranarray(np.array([[0.25, 0.75], [0.5, 0.5]], dtype=np.float32))
    body = dumps(predict_response("m", None, {"predict": np.array([1, 0]), "predict_proba": proba}))
    assert b'"probabilities":[[0.25,0.75],[0.5,0.5]]' in body


def test_metrics_count_in_the_right_buckets_at_scrape_time() -> None:
    metrics = Metrics()
    for seconds in (0.0001, 0.00025, 0.002, 5.0):
        metrics.observe_request("/predict", 200, seconds)
    metrics.observe_request("/predict", 422, 0.001)
    metrics.observe_stages("iris", 3, Stages(queue_s=0.0, model_s=0.0002, batch_rows=3))
    text = metrics.render().decode()
    assert 'servingbench_api_requests_total{route="/predict",status="200"} 4.0' in text
    assert 'servingbench_api_requests_total{route="/predict",status="422"} 1.0' in text
    bucket = "servingbench_api_request_duration_seconds_bucket"
    edges = {float(e) for e in re.findall(rf'{bucket}{{le="([0-9.e-]+)"', text)}
    assert min(edges) == 5e-05  # fine enough for stages of tens of microseconds
    below = next(e for e in sorted(edges) if e >= 0.00025)
    le = floatToGoString(below)  # type: ignore[no-untyped-call]  # untyped in prometheus-client
    assert f'{bucket}{{le="{le}",route="/predict"}} 2.0' in text
    assert f'{bucket}{{le="+Inf",route="/predict"}} 5.0' in text
    model = "servingbench_api_model_duration_seconds"
    assert f'{model}_count{{model="iris"}} 1.0' in text
    assert 'servingbench_api_batch_rows_bucket{le="4.0",model="iris"} 1.0' in text
    assert 'servingbench_api_rows_predicted_total{model="iris"} 3.0' in text
