"""The one timing helper: absolute monotonic ns, exact ms for Locust, same reason everywhere."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np

from servingbench.loadgen.payloads import Payload
from servingbench.loadgen.recorder import Recorder, part_path
from servingbench.loadgen.verdicts import OK, Verdict
from servingbench.runs.records import Outcome, RequestRecords

PAYLOAD = Payload(b"request", 1, np.array([0]), np.array([[1.0, 0.0]]))


class _Hook:
    """Collects what would go to Locust's `events.request.fire`."""

    def __init__(self) -> None:
        self.calls: list[dict[str, Any]] = []

    def fire(self, **kwargs: Any) -> None:
        self.calls.append(kwargs)


def _echo(body: bytes) -> bytes:
    time.sleep(0.002)
    return body + b"!"


def _refused(body: bytes) -> bytes:
    raise ConnectionRefusedError(111, "Connection refused")


def _ok(reply: bytes, payload: Payload) -> Verdict:
    return OK


def test_success_is_timed_recorded_and_fired() -> None:
    hook = _Hook()
    recorder = Recorder(hook)
    before = time.perf_counter_ns()
    assert recorder.measure("POST", "/x", _echo, PAYLOAD, _ok) == OK
    records = recorder.buffer.freeze()
    assert records.start_ns[0] >= before  # absolute perf_counter_ns, t0 = 0
    assert not records.warmup.any()
    assert records.latency_ns[0] >= 2_000_000
    call = hook.calls[0]
    assert call["response_time"] == records.latency_ns[0] / 1e6  # exact, not rounded
    assert call["response_length"] == len(b"request!")
    assert call["exception"] is None


def test_failure_carries_one_reason_to_records_and_locust() -> None:
    hook = _Hook()
    recorder = Recorder(hook)
    outcome, reason = recorder.measure("grpc", "ModelInfer", _refused, PAYLOAD, _ok)
    assert outcome is Outcome.CONNECTION
    records = recorder.buffer.freeze()
    assert records.outcome.tolist() == [Outcome.CONNECTION]
    assert records.reasons == {"connection": {reason: 1}}
    assert repr(hook.calls[0]["exception"]) == reason


def test_save_writes_once_per_change(tmp_path: Path) -> None:
    recorder = Recorder()
    path = part_path(tmp_path, pid=42)
    assert path.name == "part-42.npz"
    recorder.measure("POST", "/x", _echo, PAYLOAD, _ok)
    assert recorder.save(path)
    assert not recorder.save(path)  # test_stop then quit: the second is a no-op
    recorder.measure("POST", "/x", _echo, PAYLOAD, _ok)
    assert recorder.save(path)
    loaded = RequestRecords.load(path)
    assert len(loaded) == 2
    assert list(tmp_path.iterdir()) == [path]  # atomic: no temp file left
