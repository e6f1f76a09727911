"""`WireUser`: the one Locust user base that times, validates and (in open loop) waits for
arrivals; `rest_user` and `grpc_user` subclass it per transport, and `users` builds the concrete
classes. Timing and recording happen in one place (`Recorder.measure`), for every transport and
load mode.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import ClassVar, Generic, TypeVar

import gevent
from locust import User, constant, task

from servingbench.loadgen.arrivals import Slot
from servingbench.loadgen.hooks import LoadContext, context_for
from servingbench.loadgen.payloads import Payload, payload_cycle
from servingbench.loadgen.recorder import Reply
from servingbench.loadgen.settings import LoadSettings
from servingbench.loadgen.verdicts import Verdict
from servingbench.wire import WireFormat, WireName, get_wire

__all__ = ["WireUser"]

R = TypeVar("R", bound=Reply)


class WireUser(User, Generic[R]):
    """Sends pre-encoded held-out rows one request at a time and checks every answer.

    Closed loop: the next request goes out as soon as the answer is in. Open loop
    (`--arrival-rate`): the user is a slot that waits for an arrival, and the request is
    recorded with the arrival's intended start. Interleaved (a schedule): the user sends only
    while its process's slice is open to it (`loadgen.schedule`).
    """

    abstract = True
    wire: ClassVar[WireName]
    wait_time = constant(0)

    def on_start(self) -> None:
        self._context: LoadContext = context_for(self.environment)
        self._settings: LoadSettings = self._context.settings
        self._wire: WireFormat = get_wire(self.wire)
        self._name = self._wire.path(self._settings.model)
        self._index = self._context.next_user_index()
        self._payloads: Iterator[Payload] = payload_cycle(
            self._context.payloads(self.wire), self._index
        )
        self._slot = Slot()
        self.connect()

    @task
    def infer(self) -> None:
        intended = None
        gate = self._context.gate
        if gate is not None and not gate.wait(self._index):
            gevent.sleep(0.05)  # the schedule has ended: the test is stopping
            return
        dispatcher = self._context.dispatcher
        if dispatcher is not None:
            intended = dispatcher.take(self._slot)
            if intended is None:  # the test is stopping: no more arrivals
                gevent.sleep(0.05)
                return
        self.prepare()
        opened = self.opened()
        recorder = self._context.recorder
        recorder.measure(
            self._wire.transport, self._name, self.send, next(self._payloads), self.check, intended
        )
        if self.opened() != opened:
            recorder.timed_connects += 1

    def on_stop(self) -> None:
        self.disconnect()

    def connect(self) -> None:
        """Build the client and open its connection (a failure is left to the first request,
        which records it)."""
        raise NotImplementedError

    def prepare(self) -> None:
        """Before each request, untimed: reopen a connection the server closed while it idled."""
        raise NotImplementedError

    def opened(self) -> int:
        """Connections this user has opened so far."""
        raise NotImplementedError

    def send(self, payload: Payload) -> R:
        raise NotImplementedError

    def check(self, reply: R, payload: Payload) -> Verdict:
        raise NotImplementedError

    def disconnect(self) -> None:
        raise NotImplementedError
