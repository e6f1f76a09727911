"""The client interface, its errors, and the registry of client kinds by name."""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from typing import Protocol

from servingbench.protocol import Prediction

__all__ = ["CLIENT_KINDS", "Client", "EndpointError", "EndpointUnreachableError", "make_client"]


class EndpointError(RuntimeError):
    """The endpoint answered, but with an error (4xx/5xx, gRPC status) or a malformed body."""


class EndpointUnreachableError(EndpointError):
    """Nothing listens at the address (connection refused, timed out, gRPC UNAVAILABLE)."""


class Client(Protocol):
    """Sends rows to one endpoint and decodes its answer."""

    address: str

    def predict(self, model: str, rows: Sequence[Sequence[float]]) -> Prediction: ...

    def close(self) -> None: ...


# kind -> "module:Class"; imported on use so `predict` never pays for importing tritonclient.
CLIENT_KINDS: dict[str, str] = {
    "predict": "servingbench.clients.http_json:PredictClient",
    "v2-json": "servingbench.clients.http_json:V2JsonClient",
    "triton-http": "servingbench.clients.triton:TritonHttpClient",
    "triton-grpc": "servingbench.clients.triton:TritonGrpcClient",
}


def make_client(kind: str, address: str, timeout_s: float = 10.0) -> Client:
    """A client of `kind` for `address` (`http://host:port`; `host:port` also works for gRPC)."""
    try:
        target = CLIENT_KINDS[kind]
    except KeyError:
        raise ValueError(
            f"unknown client kind {kind!r}; known: {', '.join(CLIENT_KINDS)}"
        ) from None
    module_name, class_name = target.split(":")
    client: Client = getattr(importlib.import_module(module_name), class_name)(address, timeout_s)
    return client
