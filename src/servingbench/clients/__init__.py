"""One small client per (wire format, library), all answering `predict(model, rows)`.

| wire           | library        | how                                        |
|----------------|----------------|--------------------------------------------|
| `predict-json` | `urllib`       | our `POST /predict` JSON, raw bytes        |
| `v2-json`      | `urllib`       | V2 REST, raw JSON bytes                    |
| `v2-json`      | `tritonclient` | V2 REST through `tritonclient.http`        |
| `v2-grpc`      | `tritonclient` | V2 gRPC through `tritonclient.grpc`        |

Request bodies and response decoding live in `servingbench.wire`, shared with the load
generator. tritonclient is imported only by the client that needs it (and never in a process
that imports a server's own `inference.*` stubs: both register the same protobuf package).
"""

from __future__ import annotations

from servingbench.clients.base import (
    CLIENTS,
    Client,
    EndpointError,
    EndpointUnreachableError,
    make_client,
)

__all__ = ["CLIENTS", "Client", "EndpointError", "EndpointUnreachableError", "make_client"]
