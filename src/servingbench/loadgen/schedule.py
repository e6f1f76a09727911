"""Interleaved load: a Locust process that sends only in the slices a schedule gives it.

To compare servers on a machine whose speed drifts over seconds, the sweep runs the series of
a comparison in many short slices, alternating faster than the drift (`sweep.interleave`).
Each series has its own Locust process with its users connected and idle; the schedule says,
per slice, when it starts and ends and how many of the process's users send in it. The
process tells the sweep it is ready (every user spawned and connected) by writing a file, then
waits for its schedule file; the sweep writes every process's schedule at once, with absolute
times on the host's monotonic clock, which every process on the host shares.

The schedule may run to more blocks than the session needs. After each of its slices the
process writes how many requests it started in each slice so far (`counts_path`; the gate
counts them), so the sweep can judge mid-session whether the comparison is already decisive;
the sweep then writes a cut (`cut_path`: a time), and the process skips every slice starting
at or after it. The counts are written once the slice's last request has been answered and the
cut is read before a slice opens: nothing of either runs while a request of the process is in
flight.

`Gate` is what users wait on between requests: a user goes on while a slice is open and its
index is below the slice's user count, and otherwise waits for the next change. A request
started before a slice's end finishes after it; the sweep attributes requests by their start.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from time import perf_counter_ns
from typing import Any

import gevent
import gevent.event

from servingbench.atomic import atomic_write_text

__all__ = [
    "Gate",
    "ScheduleFollower",
    "SliceOrder",
    "counts_path",
    "cut_path",
    "read_counts",
    "read_schedule",
    "ready_path",
    "write_cut",
    "write_schedule",
]

log = logging.getLogger(__name__)

POLL_S = 0.02
WAIT_FOR_SCHEDULE_S = 180.0
"""How long a ready process waits for its schedule before it gives up and stops."""
COUNTS_MARGIN_S = 0.01
"""A slice's counts are written this long before the process's next slice at the latest, even
with a request of the last one still in flight (a server that stopped answering)."""


@dataclass(frozen=True)
class SliceOrder:
    """One slice of one process: [start_ns, end_ns) on the host's monotonic clock, `users` send."""

    start_ns: int
    end_ns: int
    users: int


def ready_path(schedule_file: Path) -> Path:
    """Where a process says it is ready: beside its schedule file."""
    return schedule_file.with_name(schedule_file.name + ".ready")


def counts_path(schedule_file: Path) -> Path:
    """Where a process keeps the requests it started in each of its slices so far."""
    return schedule_file.with_name(schedule_file.name + ".counts")


def cut_path(schedule_file: Path) -> Path:
    """Where the sweep tells a process to skip the slices starting at or after a time."""
    return schedule_file.with_name(schedule_file.name + ".cut")


def read_counts(schedule_file: Path) -> list[int]:
    """The started requests of the process's slices so far, in schedule order ([] before any)."""
    try:
        return [int(n) for n in json.loads(counts_path(schedule_file).read_text())]
    except (OSError, ValueError):
        return []


def write_cut(schedule_file: Path, cut_ns: int) -> None:
    atomic_write_text(cut_path(schedule_file), str(cut_ns))


def write_schedule(path: Path, slices: list[SliceOrder]) -> None:
    atomic_write_text(path, json.dumps([[s.start_ns, s.end_ns, s.users] for s in slices]))


def read_schedule(path: Path) -> list[SliceOrder]:
    return [SliceOrder(int(a), int(b), int(u)) for a, b, u in json.loads(path.read_text())]


class Gate:
    """Which users may send now (see the module docstring)."""

    def __init__(self) -> None:
        self.users = 0
        self.ended = False
        self.started = 0
        """How many requests it has let through (each True of `wait` is one request)."""
        self._busy: set[int] = set()
        """Users whose request is in flight: let through, not back at the gate yet."""
        self._change = gevent.event.Event()
        self._idle = gevent.event.Event()
        self._idle.set()

    def wait(self, index: int) -> bool:
        """Until user `index` may send (True), or the schedule has ended (False)."""
        busy = self._busy
        if index in busy:
            busy.discard(index)  # back: its previous request is done
            if not busy:
                self._idle.set()
        while True:
            if self.ended:
                return False
            if index < self.users:
                self.started += 1
                busy.add(index)
                self._idle.clear()
                return True
            self._change.wait()

    def wait_idle(self, timeout_s: float) -> bool:
        """Until no request it let through is in flight (True), or `timeout_s` has passed."""
        return bool(self._idle.wait(timeout=max(0.0, timeout_s)))

    def set_users(self, users: int) -> None:
        """Open the gate to the first `users` users (0 closes it) and wake the waiting ones."""
        self.users = users
        self._fire()

    def end(self) -> None:
        self.ended = True
        self.users = 0
        self._fire()

    def _fire(self) -> None:
        change, self._change = self._change, gevent.event.Event()
        change.set()


class ScheduleFollower:
    """Waits for the process's schedule, then opens and closes the gate at its slices' times;
    `on_end` (stopping the test) is called after the last slice's end plus `grace_s`."""

    def __init__(
        self,
        schedule_file: Path,
        gate: Gate,
        on_end: Callable[[], None],
        grace_s: float,
    ) -> None:
        self.schedule_file = schedule_file
        self.gate = gate
        self.on_end = on_end
        self.grace_s = grace_s
        self.slices: list[SliceOrder] = []
        self._greenlet: gevent.Greenlet[Any, Any] | None = None

    def ready(self) -> None:
        """Every user exists and is connected: tell the sweep, and start following."""
        atomic_write_text(ready_path(self.schedule_file), str(perf_counter_ns()))
        if self._greenlet is None:
            self._greenlet = gevent.spawn(self._run)

    def _run(self) -> None:
        deadline = perf_counter_ns() + round(WAIT_FOR_SCHEDULE_S * 1e9)
        while not self.schedule_file.is_file():
            if perf_counter_ns() > deadline:
                log.error("no schedule at %s within %g s", self.schedule_file, WAIT_FOR_SCHEDULE_S)
                self.gate.end()
                self.on_end()
                return
            gevent.sleep(POLL_S)
        self.slices = read_schedule(self.schedule_file)
        counts: list[int] = []
        cut_ns: int | None = None
        for index, order in enumerate(self.slices):
            _sleep_until(order.start_ns)
            cut_ns = cut_ns if cut_ns is not None else self._cut()
            if cut_ns is not None and order.start_ns >= cut_ns:
                break
            before = self.gate.started
            self.gate.set_users(order.users)
            _sleep_until(order.end_ns)
            self.gate.set_users(0)
            counts.append(self.gate.started - before)
            if index + 1 == len(self.slices):
                break  # nothing is decided after the last slice
            upcoming = self.slices[index + 1].start_ns
            self.gate.wait_idle((upcoming - perf_counter_ns()) / 1e9 - COUNTS_MARGIN_S)
            atomic_write_text(counts_path(self.schedule_file), json.dumps(counts), durable=False)
        self.gate.end()
        gevent.sleep(self.grace_s)  # requests started in the last slice finish
        self.on_end()

    def _cut(self) -> int | None:
        path = cut_path(self.schedule_file)
        if not path.is_file():
            return None
        try:
            return int(path.read_text())
        except (OSError, ValueError):
            return None  # being written: read at the next slice

    def stop(self) -> None:
        if self._greenlet is not None:
            self._greenlet.kill(block=False)
        self.gate.end()


def _sleep_until(t_ns: int) -> None:
    gevent.sleep(max(0.0, (t_ns - perf_counter_ns()) / 1e9))
