"""The client interface, its errors, and the registry of clients by (wire format, library)."""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from typing import Protocol

from servingbench.servers.base import ClientLibrary
from servingbench.wire import Prediction, WireName

__all__ = ["CLIENTS", "Client", "EndpointError", "EndpointUnreachableError", "make_client"]


class EndpointError(RuntimeError):
    """The endpoint answered, but with an error (4xx/5xx, gRPC status) or a malformed body."""


class EndpointUnreachableError(EndpointError):
    """Nothing listens at the address (connection refused, timed out, gRPC UNAVAILABLE)."""


class Client(Protocol):
    """Sends rows to one endpoint and decodes its answer."""

    address: str

    def predict(self, model: str, rows: Sequence[Sequence[float]]) -> Prediction: ...

    def close(self) -> None: ...


# (wire, library) -> "module:Class"; imported on use so urllib never pays for tritonclient.
CLIENTS: dict[tuple[WireName, ClientLibrary], str] = {
    ("predict-json", "urllib"): "servingbench.clients.http_json:HttpJsonClient",
    ("v2-json", "urllib"): "servingbench.clients.http_json:HttpJsonClient",
    ("v2-json", "tritonclient"): "servingbench.clients.triton:TritonHttpClient",
    ("v2-grpc", "tritonclient"): "servingbench.clients.triton:TritonGrpcClient",
}


def make_client(
    wire: WireName,
    library: ClientLibrary,
    address: str,
    timeout_s: float = 10.0,
    ca_bundle: str | None = None,
) -> Client:
    """A client speaking `wire` through `library` to `address` (`http(s)://host:port`,
    `host:port` or `grpcs://host:port`); `ca_bundle` verifies TLS servers."""
    try:
        target = CLIENTS[(wire, library)]
    except KeyError:
        known = ", ".join(f"{w} via {lib}" for w, lib in CLIENTS)
        raise ValueError(f"no client for {wire} via {library}; known: {known}") from None
    module_name, class_name = target.split(":")
    cls = getattr(importlib.import_module(module_name), class_name)
    client: Client = cls(wire, address, timeout_s, ca_bundle)
    return client
