"""The one timing helper: absolute monotonic ns, exact ms for Locust, same reason everywhere."""

from __future__ import annotations

import time
from typing import Any

import gevent
import numpy as np
import pytest

from servingbench.loadgen.http1 import HttpReply
from servingbench.loadgen.payloads import Payload
from servingbench.loadgen.recorder import INCOMPLETE_REASON, Recorder
from servingbench.loadgen.verdicts import OK, RequestError, Verdict
from servingbench.runs.records import UNKNOWN_NS, Outcome

PAYLOAD = Payload(b"request", 1, np.array([0]), np.array([[1.0, 0.0]]))


class _Hook:
    """Collects what would go to Locust's `events.request.fire` (importing Locust would
    monkey-patch the whole test process with gevent)."""

    def __init__(self) -> None:
        self.calls: list[dict[str, Any]] = []

    def fire(self, **kwargs: Any) -> None:
        self.calls.append(kwargs)


def _hooked() -> tuple[Recorder, _Hook]:
    """A recorder that fires its events at a `_Hook`, as the Locust users' does."""
    hook = _Hook()
    return Recorder(hook), hook


def _echo(payload: Payload) -> HttpReply:
    time.sleep(0.002)
    return HttpReply(200, payload.body + b"!", 420_000)


def _refused(payload: Payload) -> HttpReply:
    raise ConnectionRefusedError(111, "Connection refused")


def _ok(reply: HttpReply, payload: Payload) -> Verdict:
    return OK


def _wrong(reply: HttpReply, payload: Payload) -> Verdict:
    return Outcome.WRONG_ANSWER, "wrong answer: label 1, expected 0"


def test_success_is_timed_recorded_and_fired() -> None:
    """Absolute perf_counter_ns start, latency covers the send, Locust gets the exact float."""
    recorder, hook = _hooked()
    before = time.perf_counter_ns()
    assert recorder.measure("POST", "/x", _echo, PAYLOAD, _ok) == OK
    after = time.perf_counter_ns()
    records = recorder.buffer.drain()
    assert len(records) == 1
    assert before <= records.start_ns[0] <= after
    assert records.intended_ns[0] == records.start_ns[0]  # closed loop: intended = actual
    assert 2_000_000 <= records.latency_ns[0] <= after - before
    assert records.server_ns[0] == 420_000  # the reply's own Server-Timing
    assert records.outcome.tolist() == [Outcome.OK]
    assert records.reasons == {}
    [call] = hook.calls
    assert call["request_type"] == "POST"
    assert call["name"] == "/x"
    assert call["response_time"] == records.latency_ns[0] / 1e6  # exact, not rounded
    assert call["response_length"] == len(b"request!")
    assert call["exception"] is None


def test_open_loop_latency_counts_from_the_intended_start() -> None:
    """Coordinated omission: Locust's time runs from the schedule, not from the late send."""
    recorder, hook = _hooked()
    intended = time.perf_counter_ns() - 50_000_000  # the arrival was due 50 ms ago
    recorder.measure("POST", "/x", _echo, PAYLOAD, _ok, intended_ns=intended)
    records = recorder.buffer.drain()
    assert records.intended_ns[0] == intended
    assert records.start_ns[0] - intended >= 50_000_000
    done = records.start_ns[0] + records.latency_ns[0]
    assert hook.calls[0]["response_time"] == (done - intended) / 1e6
    assert hook.calls[0]["response_time"] >= 52.0


def test_failure_carries_one_reason_to_records_and_locust() -> None:
    recorder, hook = _hooked()
    outcome, reason = recorder.measure("grpc", "ModelInfer", _refused, PAYLOAD, _ok)
    assert outcome is Outcome.CONNECTION
    assert reason.startswith("connection error: ConnectionRefusedError")
    records = recorder.buffer.drain()
    assert records.outcome.tolist() == [Outcome.CONNECTION]
    assert records.server_ns.tolist() == [UNKNOWN_NS]
    assert records.reasons == {"connection": {reason: 1}}
    call = hook.calls[0]
    assert isinstance(call["exception"], RequestError)
    assert repr(call["exception"]) == reason  # Locust's failure table shows the reason itself
    assert call["response_length"] == 0


def test_a_failed_check_is_recorded_with_its_reason() -> None:
    """The check runs after the clock stopped; its verdict is what gets recorded."""
    recorder, hook = _hooked()
    verdict = recorder.measure("POST", "/x", _echo, PAYLOAD, _wrong)
    assert verdict == (Outcome.WRONG_ANSWER, "wrong answer: label 1, expected 0")
    records = recorder.buffer.drain()
    assert records.outcome.tolist() == [Outcome.WRONG_ANSWER]
    assert records.reasons == {"wrong-answer": {"wrong answer: label 1, expected 0": 1}}
    assert hook.calls[0]["response_length"] == len(b"request!")
    assert repr(hook.calls[0]["exception"]) == "wrong answer: label 1, expected 0"


def test_a_user_stopped_in_flight_leaves_an_incomplete_record() -> None:
    """GreenletExit (Locust's stop after its grace period) must not make a request vanish."""
    recorder, hook = _hooked()

    def _hangs(payload: Payload) -> HttpReply:
        gevent.sleep(10)
        raise AssertionError("not reached")

    user = gevent.spawn(recorder.measure, "POST", "/x", _hangs, PAYLOAD, _ok, 123)
    gevent.sleep(0.05)
    user.kill(block=True)  # raises GreenletExit inside the send
    assert isinstance(user.value, gevent.GreenletExit)
    records = recorder.buffer.drain()
    assert records.outcome.tolist() == [Outcome.INCOMPLETE]
    assert records.intended_ns.tolist() == [123]
    assert records.latency_ns[0] >= 40_000_000  # the time it had been in flight
    assert records.reasons == {"incomplete": {INCOMPLETE_REASON: 1}}
    assert hook.calls == []  # Locust's stats never saw it complete


def test_keyboard_interrupt_is_recorded_and_re_raised() -> None:
    recorder = Recorder()

    def _interrupted(payload: Payload) -> HttpReply:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        recorder.measure("POST", "/x", _interrupted, PAYLOAD, _ok)
    assert recorder.buffer.drain().outcome.tolist() == [Outcome.INCOMPLETE]


def test_without_an_event_hook_only_the_records_are_kept() -> None:
    """The sweep and calibration use a Recorder with no Locust environment."""
    recorder = Recorder()
    assert recorder.measure("POST", "/x", _echo, PAYLOAD, _ok) == OK
    recorder.measure("POST", "/x", _refused, PAYLOAD, _ok)
    assert recorder.buffer.total == 2
    assert recorder.buffer.drain().outcome.tolist() == [Outcome.OK, Outcome.CONNECTION]
    assert len(recorder.buffer) == 0  # drained
