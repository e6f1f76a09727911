"""Response bodies: our `/predict` shape and MLServer's V2 JSON, byte-for-byte in the numbers.

MLServer's numpy codec sends float32 outputs as Python floats (the float32 value widened to
float64); widening here too makes the same digits appear in both services' JSON.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from servingbench.api.inference import Outputs

__all__ = ["predict_response", "v2_output", "v2_response"]

_V2_DATATYPES = {
    np.dtype(np.int64): "INT64",
    np.dtype(np.int32): "INT32",
    np.dtype(np.float32): "FP32",
    np.dtype(np.float64): "FP64",
}


def _wire(array: np.ndarray) -> np.ndarray:
    """A C-contiguous array orjson can write (xgboost's probabilities may be column-major);
    float32 widened as MLServer's codec does."""
    dtype = np.float64 if array.dtype == np.float32 else array.dtype
    return np.ascontiguousarray(array, dtype=dtype)


def predict_response(model: str, version: str | None, outputs: Outputs) -> dict[str, Any]:
    """`{"model", "version", "labels": [...], "probabilities": [[...]]}`, lists even for one row."""
    return {
        "model": model,
        "version": version,
        "labels": _wire(outputs["predict"]),
        "probabilities": _wire(outputs["predict_proba"]),
    }


def v2_output(name: str, array: np.ndarray) -> dict[str, Any]:
    """One V2 output tensor; a 1-D result gets shape [N, 1] as MLServer gives it."""
    matrix = array.reshape(len(array), -1)
    return {
        "name": name,
        "shape": list(matrix.shape),
        "datatype": _V2_DATATYPES[array.dtype],
        "parameters": {"content_type": "np"},
        "data": _wire(matrix.reshape(-1)),
    }


def v2_response(
    model: str, version: str | None, request_id: str, outputs: Outputs
) -> dict[str, Any]:
    return {
        "model_name": model,
        "model_version": version,
        "id": request_id,
        "parameters": {},
        "outputs": [v2_output(name, array) for name, array in outputs.items()],
    }
