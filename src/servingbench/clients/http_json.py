"""Plain-HTTP JSON client (stdlib urllib) for the HTTP wire formats: `predict-json`, `v2-json`.

Raw bodies, no client library in between, so parity also proves the documented JSON works.
Bodies are the wire format's own encoding, except that V2 asks for both outputs: parity checks
the labels the server computes, not only those implied by the probabilities.
"""

from __future__ import annotations

import ssl
import urllib.error
import urllib.request
from collections.abc import Sequence

from servingbench.addresses import parse_address
from servingbench.clients.base import EndpointError, EndpointUnreachableError
from servingbench.wire import OUTPUTS, Prediction, WireError, WireName, get_wire, v2_json_body

__all__ = ["HttpJsonClient", "post_json"]


def post_json(url: str, body: bytes, timeout_s: float, ca_bundle: str | None = None) -> bytes:
    """POST `body` and return the response body; errors carry the status and server message."""
    request = urllib.request.Request(
        url, data=body, headers={"Content-Type": "application/json"}, method="POST"
    )
    try:
        tls = parse_address(url).tls
        context = ssl.create_default_context(cafile=ca_bundle) if tls else None
        with urllib.request.urlopen(request, timeout=timeout_s, context=context) as response:
            data: bytes = response.read()
            return data
    except urllib.error.HTTPError as exc:
        detail = exc.read()[:300].decode(errors="replace")
        raise EndpointError(f"POST {url} answered {exc.code}: {detail}") from None
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise EndpointUnreachableError(f"cannot reach {url}: {reason}") from None


class HttpJsonClient:
    """POSTs a JSON body of its wire format to the format's path; urllib opens a connection each."""

    def __init__(
        self, wire: WireName, address: str, timeout_s: float = 10.0, ca_bundle: str | None = None
    ) -> None:
        self.wire = get_wire(wire)
        self.address = address.rstrip("/")
        self.timeout_s = timeout_s
        self.ca_bundle = ca_bundle

    def predict(self, model: str, rows: Sequence[Sequence[float]]) -> Prediction:
        url = f"{self.address}{self.wire.path(model)}"
        if self.wire.name == "v2-json":
            body = v2_json_body(rows, OUTPUTS)
        else:
            body = self.wire.encode(model, rows)
        reply = post_json(url, body, self.timeout_s, self.ca_bundle)
        try:
            return self.wire.decode(reply, len(rows))
        except WireError as exc:
            raise EndpointError(f"{url}: {exc}") from None

    def close(self) -> None:
        """Nothing to release: urllib opens a connection per request."""
