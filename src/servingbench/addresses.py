"""Server addresses, read one way everywhere: `http(s)://host:port` for REST, `host:port` or
`grpc(s)://host:port` for gRPC. TLS follows the scheme (`https`, `grpcs`); a bare `host:port` is
plain. Clients, target checks and readiness probes all read an address with `parse_address`.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit

__all__ = ["TLS_SCHEMES", "Address", "parse_address"]

TLS_SCHEMES = frozenset({"https", "grpcs"})


@dataclass(frozen=True)
class Address:
    scheme: str
    """As written, lower case; "" for a bare `host:port`."""
    host: str
    """Without IPv6 brackets; "" when missing."""
    port: int | None
    """None when missing, not a number, 0 or out of range."""
    netloc: str
    """`host:port` as written (brackets kept): what a Host header and tritonclient take."""

    @property
    def tls(self) -> bool:
        return self.scheme in TLS_SCHEMES


def parse_address(text: str) -> Address:
    """Split `text` into its parts; nothing is refused here, callers say what they need."""
    parts = urlsplit(text if "://" in text else f"//{text}")
    try:
        port = parts.port or None
    except ValueError:  # not a number, or outside 0-65535
        port = None
    return Address(parts.scheme.lower(), parts.hostname or "", port, parts.netloc)
