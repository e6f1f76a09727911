"""Request JSON to the float32 matrix a model predicts on (responses: `servingbench.wire`).

Hand-rolled checks (no I/O), each failure an `ApiError` whose message says what to change:
faster than pydantic request models for lists of numbers, and stricter (bools, strings and null
are refused instead of coerced; values that overflow float32 are refused instead of becoming
inf).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from servingbench.api.edge import ApiError
from servingbench.models.catalog import as_features
from servingbench.wire import OUTPUTS

__all__ = [
    "V2_DATATYPES",
    "PredictRequest",
    "V2Request",
    "feature_matrix",
    "parse_predict",
    "parse_v2",
]

# --- decoding requests ------------------------------------------------------------------------

_FLOAT_TYPES = frozenset({int, float})
_INT_TYPES = frozenset({int})
V2_DATATYPES: dict[str, frozenset[type]] = {
    "FP32": _FLOAT_TYPES,
    "FP64": _FLOAT_TYPES,
    "INT32": _INT_TYPES,
    "INT64": _INT_TYPES,
}
_PREDICT_KEYS = frozenset({"features", "model"})
_V2_KEYS = frozenset({"id", "parameters", "inputs", "outputs"})
_V2_TENSOR_KEYS = frozenset({"name", "shape", "datatype", "data", "parameters"})
_V2_OUTPUT_KEYS = frozenset({"name", "parameters"})


@dataclass(frozen=True)
class PredictRequest:
    """`/predict` after the first checks; rows are checked once the model is known."""

    model: str | None
    features: Any


@dataclass(frozen=True)
class V2Request:
    """One V2 inference request: the matrix, the outputs asked for (in order), the request id."""

    x: np.ndarray
    outputs: tuple[str, ...]
    id: str | None


def _describe(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return f"a boolean ({str(value).lower()})"
    if isinstance(value, str):
        return f"a string ({value[:20]!r})"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "an object"
    return repr(value)


def _object(doc: Any, allowed: frozenset[str], what: str) -> dict[str, Any]:
    if not isinstance(doc, dict):
        raise ApiError(422, f"{what} must be a JSON object, got {_describe(doc)}")
    extra = doc.keys() - allowed
    if extra:
        raise ApiError(
            422, f"unknown field(s) {sorted(extra)} in {what}; allowed: {sorted(allowed)}"
        )
    return doc


def _check_numbers(values: Sequence[Any], allowed: frozenset[type], where: str) -> None:
    if {*map(type, values)} <= allowed:  # the usual case, decided at C speed
        return
    for i, value in enumerate(values):
        if type(value) not in allowed:
            kind = "an integer" if allowed is _INT_TYPES else "a number"
            raise ApiError(422, f"{where}[{i}] is {_describe(value)}; expected {kind}")


def _to_float32(rows: Any, n_cols: int | None = None) -> np.ndarray:
    """`catalog.as_features` (MLServer's FP32 decoding), refusing values float32 cannot hold;
    flat values are shaped into rows of `n_cols` first, so the message names row and column."""
    with np.errstate(over="ignore"):
        x = as_features(rows)
    if n_cols is not None:
        x = x.reshape(-1, n_cols)
    if not np.isfinite(x).all():
        row, col = (int(i) for i in np.argwhere(~np.isfinite(x))[0])
        raise ApiError(
            422,
            f"value at row {row}, column {col} overflows float32 (largest is ±3.4e38)",
        )
    return x


def _check_rows(n_rows: int, max_rows: int) -> None:
    if n_rows == 0:
        raise ApiError(422, "no rows to predict; send at least one row")
    if n_rows > max_rows:
        raise ApiError(413, f"{n_rows} rows exceed the limit of {max_rows} rows per request")


def feature_matrix(features: Any, n_features: int, max_rows: int, model: str) -> np.ndarray:
    """One row `[f1, ...]` or several `[[f1, ...], ...]`, as an `[N, n_features]` float32 matrix."""
    if not isinstance(features, list):
        raise ApiError(
            422, f"'features' must be a list of numbers or of rows, got {_describe(features)}"
        )
    if not features:
        raise ApiError(422, "'features' is empty; send at least one row of numbers")
    rows = features if type(features[0]) is list else [features]
    _check_rows(len(rows), max_rows)
    for r, row in enumerate(rows):
        where = f"features[{r}]" if rows is features else "features"
        if type(row) is not list:
            raise ApiError(422, f"{where} is {_describe(row)}; every row must be a list of numbers")
        if len(row) != n_features:
            raise ApiError(
                422,
                f"{where} has {len(row)} value(s); model {model!r} expects {n_features} features",
            )
        _check_numbers(row, _FLOAT_TYPES, where)
    return _to_float32(rows)


def parse_predict(doc: Any) -> PredictRequest:
    """`{"features": ..., "model": "<name>"}`; the model is optional."""
    body = _object(doc, _PREDICT_KEYS, "the body")
    if "features" not in body:
        raise ApiError(422, "missing field 'features': send {\"features\": [f1, f2, ...]}")
    model = body.get("model")
    if model is not None and not isinstance(model, str):
        raise ApiError(422, f"'model' must be a string (a model name), got {_describe(model)}")
    return PredictRequest(model=model, features=body["features"])


def _v2_shape(shape: Any, n_features: int, max_rows: int) -> tuple[int, int]:
    if (
        not isinstance(shape, list)
        or len(shape) != 2
        or any(type(d) is not int or d < 0 for d in shape)
    ):
        raise ApiError(
            422,
            f"input 'shape' must be [rows, {n_features}] (two non-negative integers), "
            f"got {shape!r}",
        )
    n_rows, n_cols = shape
    if n_cols != n_features:
        raise ApiError(
            422, f"input shape {shape} has {n_cols} columns; the model expects {n_features}"
        )
    _check_rows(n_rows, max_rows)
    return n_rows, n_cols


def _v2_matrix(tensor: dict[str, Any], n_features: int, max_rows: int) -> np.ndarray:
    for key in ("name", "shape", "datatype", "data"):
        if key not in tensor:
            raise ApiError(422, f"input tensor lacks field {key!r}")
    datatype = tensor["datatype"]
    allowed = V2_DATATYPES.get(datatype) if isinstance(datatype, str) else None
    if allowed is None:
        raise ApiError(
            422, f"datatype {datatype!r} not supported; use one of {', '.join(V2_DATATYPES)}"
        )
    n_rows, n_cols = _v2_shape(tensor["shape"], n_features, max_rows)
    data = tensor["data"]
    if not isinstance(data, list):
        raise ApiError(422, f"input 'data' must be a list, got {_describe(data)}")
    if data and type(data[0]) is list:  # nested rows, as MLServer also accepts
        if len(data) != n_rows or any(type(r) is not list or len(r) != n_cols for r in data):
            raise ApiError(
                422,
                f"nested 'data' does not match shape [{n_rows}, {n_cols}]: send {n_rows} "
                f"row(s) of {n_cols} values",
            )
        for r, row in enumerate(data):
            _check_numbers(row, allowed, f"data[{r}]")
        return _to_float32(data)
    if len(data) != n_rows * n_cols:
        raise ApiError(
            422,
            f"'data' has {len(data)} value(s); shape [{n_rows}, {n_cols}] needs {n_rows * n_cols}",
        )
    _check_numbers(data, allowed, "data")
    return _to_float32(data, n_cols)


def _v2_outputs(outputs: Any) -> tuple[str, ...]:
    if outputs is None:
        return ("predict",)  # the stock runtimes' default output
    if not isinstance(outputs, list) or not outputs:
        raise ApiError(422, '\'outputs\' must be a non-empty list like [{"name": "predict_proba"}]')
    names: list[str] = []
    for out in outputs:
        name = _object(out, _V2_OUTPUT_KEYS, "each requested output").get("name")
        if name not in OUTPUTS:
            raise ApiError(422, f"unknown output {name!r}; this model offers {', '.join(OUTPUTS)}")
        if name in names:
            raise ApiError(422, f"output {name!r} requested twice")
        names.append(name)
    return tuple(names)


def parse_v2(doc: Any, n_features: int, max_rows: int) -> V2Request:
    """A V2 (Open Inference Protocol) JSON request with exactly one input tensor."""
    body = _object(doc, _V2_KEYS, "the body")
    inputs = body.get("inputs")
    if not isinstance(inputs, list) or len(inputs) != 1:
        count = len(inputs) if isinstance(inputs, list) else "no"
        raise ApiError(422, f"'inputs' must hold exactly one tensor; got {count}")
    tensor = _object(inputs[0], _V2_TENSOR_KEYS, "the input tensor")
    request_id = body.get("id")
    if request_id is not None and not isinstance(request_id, str):
        raise ApiError(422, f"'id' must be a string, got {_describe(request_id)}")
    x = _v2_matrix(tensor, n_features, max_rows)
    return V2Request(x=x, outputs=_v2_outputs(body.get("outputs")), id=request_id)
