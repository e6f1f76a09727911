"""`GrpcUser`: the Locust user for the V2 gRPC `ModelInfer` call, on `loadgen.h2grpc`.

Requests are pre-serialized `ModelInferRequest` bytes; the response bytes are parsed after the
clock stops, as in `RestUser`. Channel policy (`SERVINGBENCH_LOAD_GRPC_CHANNEL`):
- `per-user` (default): each user owns a channel, hence its own TCP connection, exactly like
  each REST user's keep-alive connection;
- `shared`: one channel per process and target; every user is an HTTP/2 stream on one
  connection; closed when the test stops.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Any

from locust import events

from servingbench.loadgen.h2grpc import Channel, RpcError
from servingbench.loadgen.hooks import listen
from servingbench.loadgen.payloads import Payload
from servingbench.loadgen.users import WireUser
from servingbench.loadgen.verdicts import Verdict, check_body
from servingbench.runs.records import UNKNOWN_NS
from servingbench.wire import GRPC_METHOD

__all__ = ["GrpcReply", "GrpcUser", "open_channel"]

_shared_channels: dict[str, Channel] = {}


@dataclass(frozen=True, slots=True)
class GrpcReply:
    """A response message's bytes (gRPC servers report no per-request time)."""

    body: bytes
    server_ns: int = UNKNOWN_NS

    def __len__(self) -> int:
        return len(self.body)


def open_channel(host: str, ca_bundle: str | None = None) -> Channel:
    """A channel to `host:port`, `grpc://host:port` or `grpcs://host:port` (TLS)."""
    target = host.rstrip("/").replace("https://", "grpcs://").replace("http://", "grpc://")
    return Channel(target, root_certificates=ca_bundle)


class GrpcUser(WireUser[GrpcReply]):
    abstract = True

    def connect(self) -> None:
        settings = self._settings
        host = str(self.host)
        ca = str(settings.ca_bundle) if settings.ca_bundle else None
        self._own: Channel | None = None
        if settings.grpc_channel == "shared":
            if host not in _shared_channels:
                _shared_channels[host] = open_channel(host, ca)
            channel = _shared_channels[host]
        else:
            channel = self._own = open_channel(host, ca)
        self._channel = channel
        self._call = channel.unary_unary(GRPC_METHOD)
        self.prepare()

    def prepare(self) -> None:
        with contextlib.suppress(RpcError):
            self._channel.connection(None)

    def opened(self) -> int:
        return self._channel.opened

    def send(self, payload: Payload) -> GrpcReply:
        return GrpcReply(self._call(payload.body, timeout=self._settings.timeout_s))

    def check(self, reply: GrpcReply, payload: Payload) -> Verdict:
        return check_body(reply.body, payload, self._wire.decode, self._settings.validate_responses)

    def disconnect(self) -> None:
        if self._own is not None:
            self._own.close()
            self._own = None


def _close_shared_channels(**_kwargs: Any) -> None:
    while _shared_channels:
        _, channel = _shared_channels.popitem()
        channel.close()


listen(events.test_stop, _close_shared_channels)
