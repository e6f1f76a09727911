"""The one place a request is timed, classified, recorded and reported to Locust.

Both users hand `Recorder.measure` a `send` (the bare client call on pre-encoded bytes) and a
`check` (status and answer). The clock (`perf_counter_ns`, CLOCK_MONOTONIC: system-wide on
Linux, so records from several Locust processes on one host line up) stops as soon as the
response is fully read; decoding and validation run after it, for REST and gRPC alike. Locust
gets the same latency as an exact float of milliseconds and the same reason as the records.

A user stopped mid-request (Locust raises GreenletExit, a BaseException, when the stop's grace
period ends) leaves an INCOMPLETE record with the time it had been in flight, instead of
vanishing: a server that hangs at the end of a point must show.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sized
from time import perf_counter_ns
from typing import Any, Protocol, TypeVar

from servingbench.loadgen.payloads import Payload
from servingbench.loadgen.verdicts import RequestError, Verdict, classify_exception
from servingbench.runs.records import UNKNOWN_NS, Outcome, RecordBuffer

__all__ = ["INCOMPLETE_REASON", "Recorder", "Reply"]

log = logging.getLogger(__name__)

INCOMPLETE_REASON = "still in flight when the point stopped"


class Reply(Sized, Protocol):
    """What a `send` returns: its length, and the server's own time when it told us."""

    @property
    def server_ns(self) -> int: ...


R = TypeVar("R", bound=Reply)

_NO_CONTEXT: dict[str, Any] = {}


class Recorder:
    """One process's request log (absolute times); shipped in chunks by `loadgen.collect`."""

    def __init__(self, request_event: Any | None = None) -> None:
        self.buffer = RecordBuffer()
        self._fire: Callable[..., Any] | None = request_event.fire if request_event else None
        self.timed_connects = 0
        """Requests that had to open their connection inside the timed call (users count)."""

    def measure(
        self,
        request_type: str,
        name: str,
        send: Callable[[Payload], R],
        payload: Payload,
        check: Callable[[R, Payload], Verdict],
        intended_ns: int | None = None,
    ) -> Verdict:
        """Send `payload`, time it, judge the reply; record it and fire Locust's request event.

        `intended_ns` is the scheduled send time of an open-loop arrival (None: now).
        """
        length = 0
        server_ns = UNKNOWN_NS
        start = perf_counter_ns()
        try:
            reply = send(payload)
        except Exception as exc:
            latency = perf_counter_ns() - start
            outcome, reason = classify_exception(exc)
        except BaseException:  # GreenletExit: stopped in flight
            latency = perf_counter_ns() - start
            self.buffer.add(start, latency, Outcome.INCOMPLETE, INCOMPLETE_REASON, intended_ns)
            raise
        else:
            latency = perf_counter_ns() - start
            length = len(reply)
            server_ns = reply.server_ns
            outcome, reason = check(reply, payload)
        self.buffer.add(start, latency, outcome, reason, intended_ns, server_ns)
        if self._fire is not None:
            begin = start if intended_ns is None else intended_ns
            self._fire(
                request_type=request_type,
                name=name,
                response_time=(start + latency - begin) / 1e6,
                response_length=length,
                response=None,
                context=_NO_CONTEXT,
                exception=None if outcome is Outcome.OK else RequestError(reason),
            )
        return outcome, reason
