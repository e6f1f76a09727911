"""Request bodies and response decoding for the three wire formats servingbench speaks.

- our `/predict`: `{"features": [[...]], "model": name}`
  -> `{"labels": [...], "probabilities": [[...]]}`
- V2 REST JSON (MLServer and our service): one FP32 input tensor, outputs `predict`, `predict_proba`
- V2 gRPC: the same tensors in `inference.ModelInferRequest` (built with tritonclient's protos)

Pure functions, shared by parity checks and by the load generator's response validation, so
"same prediction" means the same thing everywhere.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import orjson

__all__ = [
    "INPUT_NAME",
    "OUTPUTS",
    "PROBA_ONLY",
    "Prediction",
    "ProtocolError",
    "compare",
    "decode_predict_body",
    "decode_v2_body",
    "decode_v2_grpc_response",
    "decode_v2_outputs",
    "predict_body",
    "v2_body",
    "v2_grpc_request",
]

INPUT_NAME = "input-0"
OUTPUTS = ("predict", "predict_proba")
PROBA_ONLY = ("predict_proba",)
"""What load tests ask for: one `predict_proba` call per request on every backend (MLServer
runs one model call per requested output), labels then follow as the argmax."""

Prediction = tuple[np.ndarray, np.ndarray]
"""(labels as int64 of shape [N], probabilities as float64 of shape [N, C])"""


class ProtocolError(ValueError):
    """A response that does not have the shape the protocol promises."""


def _rows(rows: Sequence[Sequence[float]]) -> list[list[float]]:
    # float32 round trip: what is sent is exactly what every server predicts on.
    return np.asarray(rows, dtype=np.float32).astype(float).tolist()  # type: ignore[no-any-return]


def predict_body(rows: Sequence[Sequence[float]], model: str | None = None) -> bytes:
    body: dict[str, Any] = {"features": _rows(rows)}
    if model is not None:
        body["model"] = model
    return orjson.dumps(body)


def decode_predict_body(body: bytes | str, n_rows: int) -> Prediction:
    try:
        doc = orjson.loads(body)
        labels = np.asarray(doc["labels"], dtype=np.int64)
        proba = np.asarray(doc["probabilities"], dtype=np.float64)
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
        raise ProtocolError(f"malformed /predict response: {exc}") from None
    return _checked(labels, proba, n_rows)


def v2_body(rows: Sequence[Sequence[float]], outputs: Sequence[str] = OUTPUTS) -> bytes:
    data = _rows(rows)
    n_features = len(data[0]) if data else 0
    return orjson.dumps(
        {
            "inputs": [
                {
                    "name": INPUT_NAME,
                    "shape": [len(data), n_features],
                    "datatype": "FP32",
                    "data": [v for row in data for v in row],
                }
            ],
            "outputs": [{"name": name} for name in outputs],
        }
    )


def decode_v2_outputs(outputs: Sequence[dict[str, Any]], n_rows: int) -> Prediction:
    """Labels and probabilities from V2 JSON `outputs` (shape [N,1] labels, [N,C] probabilities)."""
    by_name = {o.get("name"): o for o in outputs}
    if "predict_proba" not in by_name:
        got = sorted(map(str, by_name))
        raise ProtocolError(f"V2 response lacks output 'predict_proba'; got {got}")
    proba_out = by_name["predict_proba"]
    proba = np.asarray(proba_out["data"], dtype=np.float64).reshape(proba_out["shape"])
    labels = (
        np.asarray(by_name["predict"]["data"], dtype=np.int64).reshape(-1)
        if "predict" in by_name
        else _argmax(proba)
    )
    return _checked(labels, proba, n_rows)


def decode_v2_body(body: bytes | str, n_rows: int) -> Prediction:
    try:
        doc = orjson.loads(body)
        return decode_v2_outputs(doc["outputs"], n_rows)
    except ProtocolError:
        raise
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
        raise ProtocolError(f"malformed V2 response: {exc}") from None


def v2_grpc_request(
    model: str, rows: Sequence[Sequence[float]], outputs: Sequence[str] = OUTPUTS
) -> Any:
    """An `inference.ModelInferRequest` with the rows as FP32 contents (not raw bytes)."""
    from tritonclient.grpc import service_pb2

    data = np.asarray(rows, dtype=np.float32)
    request = service_pb2.ModelInferRequest(model_name=model)
    tensor = request.inputs.add(name=INPUT_NAME, datatype="FP32", shape=list(data.shape))
    tensor.contents.fp32_contents.extend(data.reshape(-1).tolist())
    for name in outputs:
        request.outputs.add(name=name)
    return request


def decode_v2_grpc_response(response: Any, n_rows: int) -> Prediction:
    """Labels and probabilities from an `inference.ModelInferResponse` (contents or raw bytes)."""
    arrays: dict[str, np.ndarray] = {}
    raw = list(response.raw_output_contents)
    for index, out in enumerate(response.outputs):
        dtype = {"INT64": np.int64, "INT32": np.int32, "FP32": np.float32, "FP64": np.float64}.get(
            out.datatype
        )
        if dtype is None:
            raise ProtocolError(f"unexpected datatype {out.datatype} for output {out.name}")
        if raw:
            values = np.frombuffer(raw[index], dtype=dtype)
        else:
            field = {
                np.int64: out.contents.int64_contents,
                np.int32: out.contents.int_contents,
                np.float32: out.contents.fp32_contents,
                np.float64: out.contents.fp64_contents,
            }[dtype]
            values = np.asarray(field, dtype=dtype)
        arrays[out.name] = values.reshape(tuple(out.shape))
    if "predict_proba" not in arrays:
        raise ProtocolError(f"gRPC response lacks output 'predict_proba'; got {sorted(arrays)}")
    proba = arrays["predict_proba"].astype(np.float64)
    labels = (
        arrays["predict"].astype(np.int64).reshape(-1) if "predict" in arrays else _argmax(proba)
    )
    return _checked(labels, proba, n_rows)


def _argmax(proba: np.ndarray) -> np.ndarray:
    """Labels implied by probabilities (our models' classes are 0..C-1, as in the metadata)."""
    if proba.ndim != 2:
        raise ProtocolError(f"probabilities must be 2-D, got shape {proba.shape}")
    labels: np.ndarray = np.argmax(proba, axis=1).astype(np.int64)
    return labels


def _checked(labels: np.ndarray, proba: np.ndarray, n_rows: int) -> Prediction:
    if labels.shape != (n_rows,):
        raise ProtocolError(f"expected {n_rows} label(s), got shape {labels.shape}")
    if proba.ndim != 2 or proba.shape[0] != n_rows:
        raise ProtocolError(f"expected probabilities of {n_rows} row(s), got shape {proba.shape}")
    return labels, proba


def compare(
    got: Prediction, expected_labels: np.ndarray, expected_proba: np.ndarray, atol: float = 1e-6
) -> str | None:
    """None when the prediction matches; otherwise a one-line reason (for failure records)."""
    labels, proba = got
    if proba.shape != expected_proba.shape:
        return f"probabilities shape {proba.shape} != expected {expected_proba.shape}"
    wrong = np.flatnonzero(labels != expected_labels)
    if wrong.size:
        i = int(wrong[0])
        return (
            f"{wrong.size} wrong label(s); row {i}: got {labels[i]}, expected {expected_labels[i]}"
        )
    diff = float(np.max(np.abs(proba - expected_proba))) if proba.size else 0.0
    if diff > atol:
        return f"probabilities differ by {diff:.3g} (> {atol:g})"
    return None
