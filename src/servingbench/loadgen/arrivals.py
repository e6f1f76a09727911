"""Open-loop load inside Locust: arrivals on a schedule, users as in-flight slots.

Locust users wait for their answer before sending again (closed loop), so a slow server lowers
the offered load and hides its own latency. Here one dispatcher greenlet per load-generating
process draws arrival times (constant, or Poisson from a recorded seed) at its share of the
rate. At each arrival's intended time it hands the arrival to an idle user (a slot), or, when
every slot is busy (`-u` is the cap on requests in flight), records it as DROPPED, like k6's
`dropped_iterations`. The slot is the most recently freed one: a low rate then keeps reusing a
few warm connections instead of rotating through all of them, each idle long enough for the
server's keep-alive timeout to close it. The user sends and records intended start, actual
start and completion, so latency can be taken from the intended start (coordinated omission
corrected).

Dispatching sleeps until the next arrival, then hands out every arrival already due without
yielding in between: gevent's timers round sleeps up to the millisecond, and catching up in a
batch keeps the schedule instead of falling behind. Processes: with n of them, process i runs
rate/n; Poisson streams superpose to one Poisson stream of the whole rate, constant ones are
phase-shifted to interleave evenly, on a lattice shared through the host's monotonic clock.
"""

from __future__ import annotations

import logging
import random
from collections import deque
from collections.abc import Iterator
from time import perf_counter_ns
from typing import Any

import gevent
import gevent.event

from servingbench.loadgen.settings import ArrivalKind
from servingbench.runs.records import Outcome, RecordBuffer

__all__ = [
    "DEFAULT_SLOTS",
    "DROPPED_REASON",
    "ArrivalKind",
    "Dispatcher",
    "arrival_offsets",
    "open_loop_slots",
]

log = logging.getLogger(__name__)

DROPPED_REASON = "no free slot at the arrival's time (cap on requests in flight)"
FIRST_SLOT_WAIT_S = 5.0
"""How long the schedule waits for its first slot to connect (`on_start`) before it starts
anyway: arrivals due before any slot is ready would be dropped for a reason of the generator's
own, not the server's."""
DEFAULT_SLOTS = 256
"""Requests in flight allowed when nobody said (`-u`, `--max-in-flight`): Locust's own default
of one user would drop nearly every arrival above one request per latency."""


def open_loop_slots(options: Any, arrival_rate: float | None) -> None:
    """In open loop, users are slots for requests in flight, not a ramp of clients: unless `-u`
    and `-r` were given, start `DEFAULT_SLOTS` of them at once (Locust reads both after `init`).
    """
    if options is None or arrival_rate is None:
        return
    if getattr(options, "num_users", 0) is None:
        options.num_users = DEFAULT_SLOTS
        log.info("open loop: up to %d requests in flight (set -u to change)", DEFAULT_SLOTS)
    if getattr(options, "spawn_rate", 0) is None:
        options.spawn_rate = options.num_users


def arrival_offsets(
    rate: float, kind: ArrivalKind, seed: int, index: int = 0, processes: int = 1
) -> Iterator[int]:
    """Endless offsets (ns from the start) of process `index`'s arrivals out of `processes`."""
    share = rate / processes
    if kind == "constant":
        period = 1e9 / share
        phase = index * 1e9 / rate
        k = 0
        while True:
            yield round(phase + k * period)
            k += 1
    rng = random.Random(seed * 1_000_003 + index)  # independent streams, one per process
    t = 0.0
    while True:
        t += rng.expovariate(share) * 1e9
        yield round(t)


class Slot:
    """What a user waits on between arrivals."""

    __slots__ = ("arrival", "wake")

    def __init__(self) -> None:
        self.wake = gevent.event.Event()
        self.arrival: int | None = None


class Dispatcher:
    """One process's arrival schedule (see the module docstring)."""

    def __init__(
        self,
        rate: float,
        kind: ArrivalKind,
        seed: int,
        buffer: RecordBuffer,
        index: int = 0,
        processes: int = 1,
        first_slot_wait_s: float = FIRST_SLOT_WAIT_S,
    ) -> None:
        if rate <= 0:
            raise ValueError(f"arrival rate must be positive, got {rate}")
        self.rate, self.kind, self.seed = rate, kind, seed
        self.index, self.processes = index, processes
        self.buffer = buffer
        self.idle: deque[Slot] = deque()
        self.arrivals = 0
        self.dropped = 0
        self.stopped = False
        self.first_slot_wait_s = first_slot_wait_s
        self._slot_ready = gevent.event.Event()
        self._greenlet: gevent.Greenlet[Any, Any] | None = None

    def start(self) -> None:
        """Start the schedule once the first slot is ready to take an arrival (or after
        `first_slot_wait_s`, so a generator that cannot connect still records its drops)."""
        if self._greenlet is None and not self.stopped:
            self._greenlet = gevent.spawn(self._begin)

    def _begin(self) -> None:
        self._slot_ready.wait(timeout=self.first_slot_wait_s)
        self._run(self.anchor(perf_counter_ns()))

    def anchor(self, now_ns: int) -> int:
        """Where this process's schedule starts. Constant arrivals of several processes
        interleave only on one shared lattice: the next multiple of the whole period (one
        arrival of every process) on the host's monotonic clock, whenever each started."""
        if self.kind != "constant" or self.processes == 1:
            return now_ns
        period = round(self.processes * 1e9 / self.rate)
        return -(-now_ns // period) * period

    def _hand(self, intended: int) -> None:
        self.arrivals += 1
        if self.idle:
            slot = self.idle.pop()  # the most recently freed: its connection is the warmest
            slot.arrival = intended
            slot.wake.set()
            return
        self.dropped += 1
        self.buffer.add(intended, 0, Outcome.DROPPED, DROPPED_REASON, intended)

    def _run(self, t0: int) -> None:
        offsets = arrival_offsets(self.rate, self.kind, self.seed, self.index, self.processes)
        due = t0 + next(offsets)
        while True:
            wait = due - perf_counter_ns()
            if wait > 0:
                gevent.sleep(wait / 1e9)
            now = perf_counter_ns()
            while due <= now:  # everything already due, without yielding in between
                self._hand(due)
                due = t0 + next(offsets)

    def take(self, slot: Slot) -> int | None:
        """Park `slot` until an arrival is handed to it; its intended start, or None at the end."""
        if self.stopped:
            return None
        slot.wake.clear()
        slot.arrival = None
        self.idle.append(slot)
        self._slot_ready.set()
        slot.wake.wait()
        return slot.arrival

    def stop(self) -> None:
        """No more arrivals; release the waiting slots so a graceful stop does not wait on them."""
        self.stopped = True
        if self._greenlet is not None:
            self._greenlet.kill(block=False)
        while self.idle:
            slot = self.idle.popleft()
            slot.arrival = None
            slot.wake.set()
