"""`RestUser`: the Locust user for the HTTP wire formats (`predict-json`, `v2-json`).

Each user owns one keep-alive connection (`loadgen.http1`): every request is the payload's
pre-built bytes written at once, and the answer is read by its length. No client library's
per-request header building sits inside the timed call, and no `Accept-Encoding` is sent (it
would turn on MLServer's gzip middleware).
"""

from __future__ import annotations

import contextlib

from servingbench.loadgen.http1 import HttpConnection, HttpReply
from servingbench.loadgen.payloads import Payload
from servingbench.loadgen.users import WireUser
from servingbench.loadgen.verdicts import Verdict, check_http

__all__ = ["RestUser"]


class RestUser(WireUser[HttpReply]):
    abstract = True

    def connect(self) -> None:
        settings = self._settings
        ca = str(settings.ca_bundle) if settings.ca_bundle else None
        self._http = HttpConnection(str(self.host).rstrip("/"), settings.timeout_s, ca)
        path = self._wire.path(settings.model)
        self._requests = {
            p.body: self._http.head(path, len(p.body)) + p.body
            for p in self._context.payloads(self.wire)
        }
        self.prepare()

    def prepare(self) -> None:
        with contextlib.suppress(OSError):
            self._http.ensure_open()

    def opened(self) -> int:
        return self._http.opened

    def send(self, payload: Payload) -> HttpReply:
        return self._http.request(self._requests[payload.body])

    def check(self, reply: HttpReply, payload: Payload) -> Verdict:
        settings = self._settings
        return check_http(
            reply.status, reply.body, payload, self._wire.decode, settings.validate_responses
        )

    def disconnect(self) -> None:
        self._http.close()
