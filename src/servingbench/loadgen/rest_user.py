"""`RestUser`: one parametrised Locust user for every HTTP wire format (`predict-json`, `v2-json`).

A subclass sets `wire` and `host` (`loadgen.users.scenario_user` makes one per scenario). It is a `FastHttpUser` (geventhttpclient: far less CPU per request than
`HttpUser`), but sends through the session's underlying keep-alive `HTTPClient` directly:
Locust's session would time and report the request itself, and adds `Accept-Encoding: gzip`,
which turns MLServer's gzip middleware on. Each user has one connection (closed loop).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, ClassVar

from geventhttpclient.url import URL
from locust import FastHttpUser, constant, task

from servingbench.loadgen.hooks import LoadContext, context_for
from servingbench.loadgen.payloads import Payload, payload_cycle
from servingbench.loadgen.verdicts import Verdict, check_http
from servingbench.runs.records import UNKNOWN_NS
from servingbench.wire import WireFormat, WireName, get_wire

__all__ = ["HttpReply", "RestUser"]

HEADERS = {"Content-Type": "application/json"}  # no Accept-Encoding: both backends answer plain


@dataclass(frozen=True, slots=True)
class HttpReply:
    """Status and fully read body of one response, and the server's own time if it said."""

    status: int
    body: bytes
    server_ns: int = UNKNOWN_NS

    def __len__(self) -> int:
        return len(self.body)


class RestUser(FastHttpUser):
    """POSTs pre-encoded held-out rows, one request at a time, and validates every answer."""

    abstract = True
    wire: ClassVar[WireName]
    wait_time = constant(0)
    concurrency = 1  # one keep-alive connection per user

    def __init__(self, environment: Any) -> None:
        self._context: LoadContext = context_for(environment)
        # FastHttpUser reads these when it builds its session in __init__
        self.network_timeout = self.connection_timeout = self._context.settings.timeout_s
        super().__init__(environment)

    def on_start(self) -> None:
        settings = self._context.settings
        self._wire: WireFormat = get_wire(self.wire)
        self._validate = settings.validate_responses
        self._path = self._wire.path(settings.model)
        url = URL(str(self.host).rstrip("/") + self._path)
        self._http = self.client.client.clientpool.get_client(url)
        self._uri = url.request_uri
        self._payloads: Iterator[Payload] = payload_cycle(
            self._context.payloads(self.wire), self._context.next_user_index()
        )

    @task
    def infer(self) -> None:
        self._context.recorder.measure(
            "POST", self._path, self._send, next(self._payloads), self._check
        )

    def on_stop(self) -> None:
        self.client.client.close()

    def _send(self, body: bytes) -> HttpReply:
        response = self._http.request("POST", self._uri, body=body, headers=HEADERS)
        return HttpReply(response.status_code, response.read())

    def _check(self, reply: HttpReply, payload: Payload) -> Verdict:
        return check_http(reply.status, reply.body, payload, self._wire.decode, self._validate)
