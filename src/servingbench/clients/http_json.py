"""Plain-HTTP JSON clients (stdlib urllib): our `/predict` and raw V2 REST.

Raw bodies, no client library in between, so parity also proves the documented JSON works.
"""

from __future__ import annotations

import urllib.error
import urllib.request
from collections.abc import Sequence

from servingbench.clients.base import EndpointError, EndpointUnreachableError
from servingbench.protocol import (
    Prediction,
    ProtocolError,
    decode_predict_body,
    decode_v2_body,
    predict_body,
    v2_body,
)

__all__ = ["PredictClient", "V2JsonClient", "post_json"]


def post_json(url: str, body: bytes, timeout_s: float) -> bytes:
    """POST `body` and return the response body; errors carry the status and server message."""
    request = urllib.request.Request(
        url, data=body, headers={"Content-Type": "application/json"}, method="POST"
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as response:
            data: bytes = response.read()
            return data
    except urllib.error.HTTPError as exc:
        detail = exc.read()[:300].decode(errors="replace")
        raise EndpointError(f"POST {url} answered {exc.code}: {detail}") from None
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise EndpointUnreachableError(f"cannot reach {url}: {reason}") from None


class PredictClient:
    """Our service's `POST /predict` with `{"features": [[...]], "model": name}`."""

    def __init__(self, address: str, timeout_s: float = 10.0) -> None:
        self.address = address.rstrip("/")
        self.timeout_s = timeout_s

    def predict(self, model: str, rows: Sequence[Sequence[float]]) -> Prediction:
        body = post_json(f"{self.address}/predict", predict_body(rows, model), self.timeout_s)
        try:
            return decode_predict_body(body, len(rows))
        except ProtocolError as exc:
            raise EndpointError(f"{self.address}/predict: {exc}") from None

    def close(self) -> None:
        """Nothing to release: urllib opens a connection per request."""


class V2JsonClient:
    """`POST /v2/models/{model}/infer` with a hand-built V2 JSON body (MLServer or our service)."""

    def __init__(self, address: str, timeout_s: float = 10.0) -> None:
        self.address = address.rstrip("/")
        self.timeout_s = timeout_s

    def predict(self, model: str, rows: Sequence[Sequence[float]]) -> Prediction:
        url = f"{self.address}/v2/models/{model}/infer"
        body = post_json(url, v2_body(rows), self.timeout_s)
        try:
            return decode_v2_body(body, len(rows))
        except ProtocolError as exc:
            raise EndpointError(f"{url}: {exc}") from None

    def close(self) -> None:
        """Nothing to release: urllib opens a connection per request."""
