"""One small client per wire format, all answering `predict(model, rows) -> (labels, proba)`.

| kind          | speaks                                   | used against            |
|---------------|------------------------------------------|-------------------------|
| `predict`     | our `POST /predict` JSON                 | our service             |
| `v2-json`     | V2 REST, raw JSON over plain HTTP        | our service, MLServer   |
| `triton-http` | V2 REST through `tritonclient.http`      | MLServer                |
| `triton-grpc` | V2 gRPC through `tritonclient.grpc`      | MLServer                |

Request bodies and response decoding live in `servingbench.protocol`, shared with the load
generator. tritonclient is imported only by the client that needs it (and never in a process
that imports mlserver: both register the `inference.*` protobuf package).
"""

from __future__ import annotations

from servingbench.clients.base import (
    CLIENT_KINDS,
    Client,
    EndpointError,
    EndpointUnreachableError,
    make_client,
)

__all__ = ["CLIENT_KINDS", "Client", "EndpointError", "EndpointUnreachableError", "make_client"]
