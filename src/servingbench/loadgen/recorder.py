"""The one place a request is timed, classified, recorded and reported to Locust.

Both users hand `Recorder.measure` a `send` (the bare client call on pre-encoded bytes) and a
`check` (status and answer). The clock (`perf_counter_ns`, CLOCK_MONOTONIC: system-wide on
Linux, so parts from several Locust processes line up) stops as soon as the response is fully
read; decoding and validation run after it, for REST and gRPC alike. Locust gets the same
latency as an exact float of milliseconds and the same reason as the records.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Sized
from pathlib import Path
from time import perf_counter_ns
from typing import Any, TypeVar

from servingbench.loadgen.payloads import Payload
from servingbench.loadgen.verdicts import RequestError, Verdict, classify_exception
from servingbench.runs.records import Outcome, RecordBuffer

__all__ = ["Recorder", "part_path"]

log = logging.getLogger(__name__)

R = TypeVar("R", bound=Sized)

_NO_CONTEXT: dict[str, Any] = {}


def part_path(records_dir: Path, pid: int | None = None) -> Path:
    """This process's records file: the sweep merges every `part-*.npz` of a point."""
    return records_dir / f"part-{os.getpid() if pid is None else pid}.npz"


class Recorder:
    """Per-process request log: absolute start times (`t0_ns=0`) and no warm-up marking.

    The sweep merges the parts, sets time zero and marks warm-up (`RequestRecords.concat`).
    """

    def __init__(self, request_event: Any | None = None) -> None:
        self.buffer = RecordBuffer(t0_ns=0, warmup_ns=0)
        self._fire: Callable[..., Any] | None = request_event.fire if request_event else None
        self._saved_count: int | None = None

    def measure(
        self,
        request_type: str,
        name: str,
        send: Callable[[bytes], R],
        payload: Payload,
        check: Callable[[R, Payload], Verdict],
    ) -> Verdict:
        """Send `payload`, time it, judge the reply; record it and fire Locust's request event."""
        length = 0
        start = perf_counter_ns()
        try:
            reply = send(payload.body)
        except Exception as exc:  # GreenletExit (a user being stopped) is not an Exception
            latency = perf_counter_ns() - start
            outcome, reason = classify_exception(exc)
        else:
            latency = perf_counter_ns() - start
            length = len(reply)
            outcome, reason = check(reply, payload)
        self.buffer.add(start, latency, outcome, reason)
        if self._fire is not None:
            self._fire(
                request_type=request_type,
                name=name,
                response_time=latency / 1e6,
                response_length=length,
                response=None,
                context=_NO_CONTEXT,
                exception=None if outcome is Outcome.OK else RequestError(reason),
            )
        return outcome, reason

    def save(self, path: Path) -> bool:
        """Write the records atomically unless nothing changed since the last save."""
        if self._saved_count == len(self.buffer):
            return False
        count = len(self.buffer)
        self.buffer.freeze().save(path)
        self._saved_count = count
        log.info("wrote %d request records to %s", count, path)
        return True
