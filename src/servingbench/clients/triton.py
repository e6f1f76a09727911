"""V2 clients built on NVIDIA's tritonclient, the reference client of the V2 protocol.

`tritonclient.http` must send and request JSON (`binary_data=False`): MLServer rejects the
binary-tensor extension with 422. Responses go through `servingbench.wire`'s decoders.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from servingbench.addresses import parse_address
from servingbench.clients.base import EndpointError, EndpointUnreachableError
from servingbench.models.catalog import as_features
from servingbench.wire import (
    INPUT_NAME,
    OUTPUTS,
    Prediction,
    WireError,
    WireName,
    decode_v2_grpc_response,
    decode_v2_outputs,
)

__all__ = ["TritonGrpcClient", "TritonHttpClient"]


class TritonHttpClient:
    """V2 REST via `tritonclient.http.InferenceServerClient`."""

    def __init__(
        self, wire: WireName, address: str, timeout_s: float = 10.0, ca_bundle: str | None = None
    ) -> None:
        import tritonclient.http as httpclient

        self._http = httpclient
        where = parse_address(address)  # tritonclient wants host:port and a TLS switch
        self.address, tls = where.netloc, where.tls
        self._client = httpclient.InferenceServerClient(
            self.address,
            connection_timeout=timeout_s,
            network_timeout=timeout_s,
            ssl=tls,
            ssl_options={"ca_certs": ca_bundle} if tls and ca_bundle else None,
        )

    def predict(self, model: str, rows: Sequence[Sequence[float]]) -> Prediction:
        from tritonclient.utils import InferenceServerException

        x = as_features(rows)
        tensor = self._http.InferInput(INPUT_NAME, list(x.shape), "FP32")
        tensor.set_data_from_numpy(x, binary_data=False)
        outputs = [self._http.InferRequestedOutput(n, binary_data=False) for n in OUTPUTS]
        try:
            result = self._client.infer(model, [tensor], outputs=outputs)
        except InferenceServerException as exc:
            raise EndpointError(f"{self.address} (tritonclient.http): {exc}") from None
        except OSError as exc:
            raise EndpointUnreachableError(f"cannot reach {self.address}: {exc}") from None
        try:
            return decode_v2_outputs(result.get_response()["outputs"], len(x))
        except (WireError, KeyError) as exc:
            raise EndpointError(f"{self.address} (tritonclient.http): {exc}") from None

    def close(self) -> None:
        self._client.close()


class TritonGrpcClient:
    """V2 gRPC (`inference.GRPCInferenceService/ModelInfer`) via `tritonclient.grpc`."""

    def __init__(
        self, wire: WireName, address: str, timeout_s: float = 10.0, ca_bundle: str | None = None
    ) -> None:
        import tritonclient.grpc as grpcclient

        self._grpc = grpcclient
        where = parse_address(address)
        self.address = where.netloc
        self.timeout_s = timeout_s
        certs = None
        if ca_bundle:
            with open(ca_bundle, "rb") as fh:
                certs = fh.read()
        self._client = grpcclient.InferenceServerClient(
            self.address, ssl=where.tls, root_certificates=certs
        )

    def predict(self, model: str, rows: Sequence[Sequence[float]]) -> Prediction:
        from tritonclient.utils import InferenceServerException

        x = as_features(rows)
        tensor = self._grpc.InferInput(INPUT_NAME, list(x.shape), "FP32")
        tensor.set_data_from_numpy(x)
        outputs = [self._grpc.InferRequestedOutput(n) for n in OUTPUTS]
        try:
            result: Any = self._client.infer(
                model, [tensor], outputs=outputs, client_timeout=self.timeout_s
            )
        except InferenceServerException as exc:
            status = str(exc.status() or "")
            if "UNAVAILABLE" in status or "DEADLINE_EXCEEDED" in status:
                raise EndpointUnreachableError(f"cannot reach {self.address}: {exc}") from None
            raise EndpointError(f"{self.address} (tritonclient.grpc): {exc}") from None
        try:
            return decode_v2_grpc_response(result.get_response(), len(x))
        except WireError as exc:
            raise EndpointError(f"{self.address} (tritonclient.grpc): {exc}") from None

    def close(self) -> None:
        self._client.close()
