"""Each protocol's request encoding, response decoding and REST path, keyed by protocol name.

Thin bindings of `servingbench.protocol` so both users treat a request as opaque bytes: encoded
once before the test, decoded after the clock has stopped.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from servingbench.loadgen.scenarios import Protocol
from servingbench.protocol import (
    Prediction,
    ProtocolError,
    decode_predict_body,
    decode_v2_body,
    decode_v2_grpc_response,
    predict_body,
    v2_body,
    v2_grpc_request,
)

__all__ = ["GRPC_METHOD", "LOAD_OUTPUTS", "WIRE_FORMATS", "WireFormat"]

Rows = Sequence[Sequence[float]]

GRPC_METHOD = "/inference.GRPCInferenceService/ModelInfer"

LOAD_OUTPUTS = ("predict_proba",)
"""V2 outputs a load request asks for. MLServer's runtimes call the model once per requested
output, so asking for `predict` too would double the server's work; labels are the argmax."""


@dataclass(frozen=True)
class WireFormat:
    """How one protocol turns rows into request bytes and response bytes into a prediction."""

    encode: Callable[[str, Rows], bytes]
    decode: Callable[[bytes, int], Prediction]
    path_template: str = ""  # REST only; `{model}` is filled in

    def path(self, model: str) -> str:
        return self.path_template.format(model=model)


def _grpc_encode(model: str, rows: Rows) -> bytes:
    return bytes(v2_grpc_request(model, rows, LOAD_OUTPUTS).SerializeToString())


def _grpc_decode(body: bytes, n_rows: int) -> Prediction:
    from google.protobuf.message import DecodeError  # type: ignore[import-untyped]
    from tritonclient.grpc import service_pb2

    try:
        response = service_pb2.ModelInferResponse.FromString(body)
    except DecodeError as exc:
        raise ProtocolError(f"malformed gRPC response: {exc}") from None
    return decode_v2_grpc_response(response, n_rows)


WIRE_FORMATS: dict[Protocol, WireFormat] = {
    "rest": WireFormat(
        encode=lambda model, rows: predict_body(rows, model=model),
        decode=decode_predict_body,
        path_template="/predict",
    ),
    "v2-rest": WireFormat(
        encode=lambda _model, rows: v2_body(rows, LOAD_OUTPUTS),
        decode=decode_v2_body,
        path_template="/v2/models/{model}/infer",
    ),
    "grpc": WireFormat(encode=_grpc_encode, decode=_grpc_decode),
}
