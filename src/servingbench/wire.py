"""The wire formats servingbench speaks, by one name each, and what "the same answer" means.

| name           | request                                        | used by                       |
|----------------|------------------------------------------------|-------------------------------|
| `predict-json` | our `POST /predict` `{"features": [[...]]}`    | our service                   |
| `v2-json`      | V2 Open Inference Protocol, REST JSON          | our service, MLServer, KServe |
| `v2-grpc`      | V2 `inference.GRPCInferenceService/ModelInfer` | MLServer, KServe              |

These names are the vocabulary everywhere: backends declare which they speak, scenarios, parity
clients, records and the report use them. Encoding and decoding are pure functions, shared by
parity, the load generator's validation and the no-op calibration servers, so "same prediction"
means the same thing everywhere. gRPC messages are built with tritonclient's protobuf classes,
imported only when a gRPC body is built or read (never in a process that imports a server's own
`inference.*` stubs).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Annotated, Any, Literal, get_args

import numpy as np
import orjson
from pydantic import Strict

__all__ = [
    "DEFAULT_ATOL",
    "FEATURE_ROWS",
    "GRPC_METHOD",
    "INPUT_NAME",
    "OUTPUTS",
    "PROBA_ONLY",
    "RESPONSE_JSON",
    "WIRE_FORMATS",
    "Prediction",
    "Score",
    "Transport",
    "WireError",
    "WireFormat",
    "WireName",
    "decode_v2_grpc_response",
    "decode_v2_outputs",
    "get_wire",
    "mismatch",
    "predict_response",
    "score",
    "v2_grpc_request",
    "v2_grpc_response",
    "v2_json_body",
    "v2_output",
    "v2_response",
]

WireName = Literal["predict-json", "v2-json", "v2-grpc"]
Transport = Literal["http", "grpc"]

INPUT_NAME = "input-0"
OUTPUTS = ("predict", "predict_proba")
PROBA_ONLY = ("predict_proba",)
"""What a load request asks for: one `predict_proba` call per request on every backend (MLServer's
runtimes call the model once per requested output); labels then follow as the argmax."""

GRPC_METHOD = "/inference.GRPCInferenceService/ModelInfer"

Prediction = tuple[np.ndarray, np.ndarray]
"""(labels as int64 of shape [N], probabilities as float64 of shape [N, C])"""

Rows = Sequence[Sequence[float]]


class WireError(ValueError):
    """A response that does not have the shape its wire format promises."""


def _rows(rows: Rows) -> list[list[float]]:
    # float32 round trip: what is sent is exactly what every server predicts on.
    return np.asarray(rows, dtype=np.float32).astype(float).tolist()  # type: ignore[no-any-return]


# --- predict-json -------------------------------------------------------------------------------


def _predict_encode(model: str, rows: Rows) -> bytes:
    return orjson.dumps({"features": _rows(rows), "model": model})


def _predict_decode(body: bytes, n_rows: int) -> Prediction:
    try:
        doc = orjson.loads(body)
        labels = np.asarray(doc["labels"], dtype=np.int64)
        proba = np.asarray(doc["probabilities"], dtype=np.float64)
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
        raise WireError(f"malformed /predict response: {exc}") from None
    return _checked(labels, proba, n_rows)


# --- v2-json ------------------------------------------------------------------------------------


def v2_json_body(rows: Rows, outputs: Sequence[str] = PROBA_ONLY) -> bytes:
    """A V2 REST request: one FP32 input tensor, the named outputs."""
    data = _rows(rows)
    n_features = len(data[0]) if data else 0
    tensor = {
        "name": INPUT_NAME,
        "shape": [len(data), n_features],
        "datatype": "FP32",
        "data": [v for row in data for v in row],
    }
    return orjson.dumps({"inputs": [tensor], "outputs": [{"name": name} for name in outputs]})


def decode_v2_outputs(outputs: Sequence[dict[str, Any]], n_rows: int) -> Prediction:
    """Labels and probabilities from V2 JSON `outputs` (shape [N,1] labels, [N,C] probabilities)."""
    by_name = {o.get("name"): o for o in outputs}
    if "predict_proba" not in by_name:
        raise WireError(
            f"V2 response lacks output 'predict_proba'; got {sorted(map(str, by_name))}"
        )
    proba_out = by_name["predict_proba"]
    proba = np.asarray(proba_out["data"], dtype=np.float64).reshape(proba_out["shape"])
    labels = (
        np.asarray(by_name["predict"]["data"], dtype=np.int64).reshape(-1)
        if "predict" in by_name
        else _argmax(proba)
    )
    return _checked(labels, proba, n_rows)


def _v2_json_decode(body: bytes, n_rows: int) -> Prediction:
    try:
        return decode_v2_outputs(orjson.loads(body)["outputs"], n_rows)
    except WireError:
        raise
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
        raise WireError(f"malformed V2 response: {exc}") from None


# --- v2-grpc ------------------------------------------------------------------------------------


def v2_grpc_request(model: str, rows: Rows, outputs: Sequence[str] = PROBA_ONLY) -> Any:
    """An `inference.ModelInferRequest` with the rows as FP32 contents (not raw bytes)."""
    from tritonclient.grpc import service_pb2

    data = np.asarray(rows, dtype=np.float32)
    request = service_pb2.ModelInferRequest(model_name=model)
    tensor = request.inputs.add(name=INPUT_NAME, datatype="FP32", shape=list(data.shape))
    tensor.contents.fp32_contents.extend(data.reshape(-1).tolist())
    for name in outputs:
        request.outputs.add(name=name)
    return request


_GRPC_DTYPES = {"INT64": np.int64, "INT32": np.int32, "FP32": np.float32, "FP64": np.float64}


def decode_v2_grpc_response(response: Any, n_rows: int) -> Prediction:
    """Labels and probabilities from an `inference.ModelInferResponse` (contents or raw bytes)."""
    arrays: dict[str, np.ndarray] = {}
    raw = list(response.raw_output_contents)
    for index, out in enumerate(response.outputs):
        dtype = _GRPC_DTYPES.get(out.datatype)
        if dtype is None:
            raise WireError(f"unexpected datatype {out.datatype} for output {out.name}")
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
        raise WireError(f"gRPC response lacks output 'predict_proba'; got {sorted(arrays)}")
    proba = arrays["predict_proba"].astype(np.float64)
    labels = (
        arrays["predict"].astype(np.int64).reshape(-1) if "predict" in arrays else _argmax(proba)
    )
    return _checked(labels, proba, n_rows)


def _v2_grpc_encode(model: str, rows: Rows) -> bytes:
    return bytes(v2_grpc_request(model, rows).SerializeToString())


def _v2_grpc_decode(body: bytes, n_rows: int) -> Prediction:
    from google.protobuf.message import DecodeError  # type: ignore[import-untyped]
    from tritonclient.grpc import service_pb2

    try:
        response = service_pb2.ModelInferResponse.FromString(body)
    except DecodeError as exc:
        raise WireError(f"malformed gRPC response: {exc}") from None
    return decode_v2_grpc_response(response, n_rows)


# --- responses, as the servers write them -------------------------------------------------------
# Our service answers with these; the no-op calibration servers answer the load's requests with
# them too, so the generator reads the same bytes it reads from a real server. MLServer's numpy
# codec sends float32 outputs as Python floats (the float32 value widened to float64); widening
# here too makes the same digits appear in every backend's JSON.

RESPONSE_JSON = orjson.OPT_SERIALIZE_NUMPY
"""orjson options for a response document (numpy arrays written directly)."""

_V2_DATATYPES = {
    np.dtype(np.int64): "INT64",
    np.dtype(np.int32): "INT32",
    np.dtype(np.float32): "FP32",
    np.dtype(np.float64): "FP64",
}


def _on_wire(array: np.ndarray) -> np.ndarray:
    """A C-contiguous array orjson can write (xgboost's probabilities may be column-major);
    float32 widened as MLServer's codec does."""
    dtype = np.float64 if array.dtype == np.float32 else array.dtype
    return np.ascontiguousarray(array, dtype=dtype)


FEATURE_ROWS = list[list[Annotated[float, Strict()]]]
"""`predict-json`'s `features` as a server built on pydantic declares them: JSON numbers only.
pydantic's lax float takes `true` as 1.0 and `"2"` as 2.0 and answers 200; strict, it answers
422."""


def predict_response(
    model: str, version: str | None, outputs: Mapping[str, np.ndarray]
) -> dict[str, Any]:
    """`{"model", "version", "labels": [...], "probabilities": [[...]]}`, lists even for one row."""
    return {
        "model": model,
        "version": version,
        "labels": _on_wire(outputs["predict"]),
        "probabilities": _on_wire(outputs["predict_proba"]),
    }


def v2_output(name: str, array: np.ndarray) -> dict[str, Any]:
    """One V2 output tensor; a 1-D result gets shape [N, 1] as MLServer gives it."""
    matrix = array.reshape(len(array), -1)
    return {
        "name": name,
        "shape": list(matrix.shape),
        "datatype": _V2_DATATYPES[array.dtype],
        "parameters": {"content_type": "np"},
        "data": _on_wire(matrix.reshape(-1)),
    }


def v2_response(
    model: str, version: str | None, request_id: str, outputs: Mapping[str, np.ndarray]
) -> dict[str, Any]:
    """A V2 REST response as MLServer 1.7.1 writes it (serialise with `RESPONSE_JSON`)."""
    return {
        "model_name": model,
        "model_version": version,
        "id": request_id,
        "parameters": {},
        "outputs": [v2_output(name, array) for name, array in outputs.items()],
    }


def v2_grpc_response(
    model: str, version: str | None, request_id: str, outputs: Mapping[str, np.ndarray]
) -> Any:
    """An `inference.ModelInferResponse` as MLServer 1.7.1 builds it for a contents request."""
    from tritonclient.grpc import service_pb2

    response = service_pb2.ModelInferResponse(model_name=model, id=request_id)
    if version is not None:
        response.model_version = version
    for name, array in outputs.items():
        doc = v2_output(name, array)
        tensor = response.outputs.add(name=name, datatype=doc["datatype"], shape=doc["shape"])
        tensor.parameters["content_type"].string_param = "np"
        field = {"INT64": "int64_contents", "INT32": "int_contents", "FP32": "fp32_contents",
                 "FP64": "fp64_contents"}[doc["datatype"]]  # fmt: skip
        getattr(tensor.contents, field).extend(np.asarray(array).reshape(-1).tolist())
    return response


# --- shared checks ------------------------------------------------------------------------------


def _argmax(proba: np.ndarray) -> np.ndarray:
    """Labels implied by probabilities (our models' classes are 0..C-1, as in the metadata)."""
    if proba.ndim != 2:
        raise WireError(f"probabilities must be 2-D, got shape {proba.shape}")
    labels: np.ndarray = np.argmax(proba, axis=1).astype(np.int64)
    return labels


def _checked(labels: np.ndarray, proba: np.ndarray, n_rows: int) -> Prediction:
    if labels.shape != (n_rows,):
        raise WireError(f"expected {n_rows} label(s), got shape {labels.shape}")
    if proba.ndim != 2 or proba.shape[0] != n_rows:
        raise WireError(f"expected probabilities of {n_rows} row(s), got shape {proba.shape}")
    return labels, proba


@dataclass(frozen=True)
class WireFormat:
    """How one wire format turns rows into request bytes and response bytes into a prediction.

    A load request is opaque bytes: encoded once before the test, decoded after the clock stops.
    """

    name: WireName
    transport: Transport
    encode: Callable[[str, Rows], bytes]
    """(model, rows) -> request body; V2 asks for `PROBA_ONLY`."""
    decode: Callable[[bytes, int], Prediction]
    path_template: str
    """REST path (`{model}` filled in) or gRPC method."""
    server_info: str | None = None
    """Where an HTTP server of this format describes itself, if the format defines a page."""
    model_info: str | None = None
    """Where it describes one model (`{model}` filled in; V2 `inputs[0].shape[-1]` features)."""

    def path(self, model: str) -> str:
        return self.path_template.format(model=model)


WIRE_FORMATS: dict[WireName, WireFormat] = {
    w.name: w
    for w in (
        WireFormat("predict-json", "http", _predict_encode, _predict_decode, "/predict"),
        WireFormat(
            "v2-json",
            "http",
            lambda _model, rows: v2_json_body(rows),
            _v2_json_decode,
            "/v2/models/{model}/infer",
            server_info="/v2",
            model_info="/v2/models/{model}",
        ),
        WireFormat("v2-grpc", "grpc", _v2_grpc_encode, _v2_grpc_decode, GRPC_METHOD),
    )
}
assert set(WIRE_FORMATS) == set(get_args(WireName))


def get_wire(name: str) -> WireFormat:
    """The wire format called `name`, or a ValueError listing the known ones."""
    try:
        return WIRE_FORMATS[name]  # type: ignore[index]
    except KeyError:
        raise ValueError(
            f"unknown wire format {name!r}; known: {', '.join(WIRE_FORMATS)}"
        ) from None


@dataclass(frozen=True)
class Score:
    """How far answers are from the expectation, summed over requests."""

    rows: int
    label_mismatches: int
    max_abs_dp: float
    first_wrong_row: int | None = None

    def __add__(self, other: Score) -> Score:
        first = self.first_wrong_row
        if first is None and other.first_wrong_row is not None:
            first = self.rows + other.first_wrong_row
        return Score(
            self.rows + other.rows,
            self.label_mismatches + other.label_mismatches,
            max(self.max_abs_dp, other.max_abs_dp),
            first,
        )


def score(got: Prediction, expected: Prediction) -> Score:
    """Label mismatches and the largest probability difference; a shape mismatch is a WireError."""
    labels, proba = got
    want_labels, want_proba = expected
    if labels.shape != want_labels.shape or proba.shape != want_proba.shape:
        raise WireError(
            f"answer shapes {labels.shape}/{proba.shape} != expected "
            f"{want_labels.shape}/{want_proba.shape}"
        )
    wrong = np.flatnonzero(labels != want_labels)
    max_dp = float(np.max(np.abs(proba - want_proba))) if proba.size else 0.0
    return Score(len(labels), int(wrong.size), max_dp, int(wrong[0]) if wrong.size else None)


DEFAULT_ATOL = 1e-6


def mismatch(got: Prediction, expected: Prediction, atol: float = DEFAULT_ATOL) -> str | None:
    """None when the prediction matches; otherwise a one-line reason (for failure records)."""
    try:
        result = score(got, expected)
    except WireError as exc:
        return str(exc)
    if result.label_mismatches:
        i = result.first_wrong_row or 0
        return (
            f"{result.label_mismatches} wrong label(s); row {i}: got {got[0][i]}, "
            f"expected {expected[0][i]}"
        )
    if result.max_abs_dp > atol:
        return f"probabilities differ by {result.max_abs_dp:.3g} (> {atol:g})"
    return None
