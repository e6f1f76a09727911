"""`GrpcUser`: the Locust user for the V2 gRPC `ModelInfer` call.

gRPC must cooperate with gevent, so `init_gevent()` runs at import, before any channel exists
(without it every call blocks the whole Locust process). The call is a raw
`channel.unary_unary` that sends pre-serialized `ModelInferRequest` bytes and returns the
response bytes: no per-call protobuf building, about 15 % less client CPU than
`tritonclient.grpc.InferenceServerClient.infer`, and the response is parsed after the clock
stops, as in `RestUser`.

Channel policy (`SERVINGBENCH_LOAD_GRPC_CHANNEL`, recorded in `loadgen-<pid>.json`):
- `per-user` (default): each user owns a channel with a local subchannel pool, hence its own
  TCP connection, exactly like each REST user's keep-alive connection; closed in `on_stop`.
- `shared`: one channel per process and target; every user is an HTTP/2 stream on one
  connection; closed when the test stops.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, ClassVar
from urllib.parse import urlsplit

import grpc
import grpc.experimental.gevent
from locust import User, constant, events, task

from servingbench.loadgen.hooks import LoadContext, context_for, listen
from servingbench.loadgen.payloads import Payload, payload_cycle
from servingbench.loadgen.verdicts import Verdict, check_body
from servingbench.runs.records import UNKNOWN_NS
from servingbench.wire import GRPC_METHOD, WireName, get_wire

__all__ = ["GrpcReply", "GrpcUser", "grpc_target", "open_channel"]

grpc.experimental.gevent.init_gevent()

_SECURE_SCHEMES = ("grpcs", "https")
_shared_channels: dict[str, Any] = {}


def grpc_target(host: str) -> tuple[str, bool]:
    """`host:port` and whether to use TLS, from `host:port`, `grpc://host:port` or `grpcs://...`."""
    if "://" not in host:
        return host.rstrip("/"), False
    parts = urlsplit(host)
    if not parts.netloc:
        raise ValueError(f"cannot read a gRPC target from host {host!r}; use host:port")
    return parts.netloc, parts.scheme in _SECURE_SCHEMES


def open_channel(host: str, own_connection: bool) -> Any:
    """A channel to `host`; `own_connection`: its own TCP connection, not one shared with others."""
    target, secure = grpc_target(host)
    # gRPC core reuses one subchannel (connection) for equal channels unless told otherwise
    options = [("grpc.use_local_subchannel_pool", 1)] if own_connection else []
    if secure:
        return grpc.secure_channel(target, grpc.ssl_channel_credentials(), options=options)
    return grpc.insecure_channel(target, options=options)


@dataclass(frozen=True, slots=True)
class GrpcReply:
    """A response message's bytes (gRPC servers report no per-request time)."""

    body: bytes
    server_ns: int = UNKNOWN_NS

    def __len__(self) -> int:
        return len(self.body)


class GrpcUser(User):
    """Calls ModelInfer on pre-encoded held-out rows, one call at a time; validates answers."""

    abstract = True
    wire: ClassVar[WireName] = "v2-grpc"
    wait_time = constant(0)

    def __init__(self, environment: Any) -> None:
        super().__init__(environment)
        self._context: LoadContext = context_for(environment)
        self._channel: Any = None

    def on_start(self) -> None:
        settings = self._context.settings
        host = str(self.host)
        if settings.grpc_channel == "shared":
            if host not in _shared_channels:
                _shared_channels[host] = open_channel(host, own_connection=False)
            channel = _shared_channels[host]
        else:
            channel = self._channel = open_channel(host, own_connection=True)
        # no (de)serializers: bytes in, bytes out
        self._call = channel.unary_unary(GRPC_METHOD)
        self._timeout = settings.timeout_s
        self._validate = settings.validate_responses
        self._decode = get_wire(self.wire).decode
        self._payloads: Iterator[Payload] = payload_cycle(
            self._context.payloads(self.wire), self._context.next_user_index()
        )

    @task
    def infer(self) -> None:
        self._context.recorder.measure(
            "grpc", "ModelInfer", self._send, next(self._payloads), self._check
        )

    def on_stop(self) -> None:
        if self._channel is not None:
            self._channel.close()
            self._channel = None

    def _send(self, body: bytes) -> GrpcReply:
        return GrpcReply(self._call(body, timeout=self._timeout))

    def _check(self, reply: GrpcReply, payload: Payload) -> Verdict:
        return check_body(reply.body, payload, self._decode, self._validate)


def _close_shared_channels(**_kwargs: Any) -> None:
    while _shared_channels:
        _, channel = _shared_channels.popitem()
        channel.close()


listen(events.test_stop, _close_shared_channels)
