"""The master's watch over its workers: clock offsets, and which ones were lost mid-test.

NTP-style: the master sends a ping with its clock; the worker answers with its own; the master
notes when the answer arrived. The worker's offset is its time minus the midpoint of the round
trip, wrong by at most half the round trip. Pings repeat every second; the shortest round
trip seen wins. A worker on the master's host (same boot id) shares CLOCK_MONOTONIC exactly.

Liveness: once a second the master also looks at Locust's own view of each worker; one that
Locust marks `missing` (no heartbeat for about 3 s) or drops is reported lost, with when, so the
point it was loading is flagged instead of silently measured with less load.
"""

from __future__ import annotations

from time import perf_counter_ns
from typing import Any

import gevent
from locust.runners import MasterRunner, WorkerRunner

from servingbench.loadgen.collect import CLOCK_PING, CLOCK_PONG, RecordCollector, boot_id

__all__ = ["ClockProbe"]

PING_INTERVAL_S = 1.0


class ClockProbe:
    """Registers the ping (worker) and pong (master) handlers; the master pings during a test."""

    def __init__(self, runner: Any) -> None:
        self.runner = runner
        self.collector: RecordCollector | None = None
        self._best_rtt: dict[str, int] = {}
        self._greenlet: gevent.Greenlet[Any, Any] | None = None
        self.boot_id = boot_id()

    def register(self) -> None:
        if isinstance(self.runner, WorkerRunner):
            self.runner.register_message(CLOCK_PING, self._on_ping)
        elif isinstance(self.runner, MasterRunner):
            self.runner.register_message(CLOCK_PONG, self._on_pong)

    def _on_ping(self, environment: Any, msg: Any, **_kwargs: Any) -> None:
        self.runner.send_message(
            CLOCK_PONG,
            {"sent": msg.data["sent"], "worker": perf_counter_ns(), "boot_id": self.boot_id},
        )

    def _on_pong(self, environment: Any, msg: Any, **_kwargs: Any) -> None:
        received = perf_counter_ns()
        sent, worker = int(msg.data["sent"]), int(msg.data["worker"])
        rtt = received - sent
        node = msg.node_id
        if self.collector is None or rtt >= self._best_rtt.get(node, 1 << 62):
            return
        self._best_rtt[node] = rtt
        if msg.data.get("boot_id") == self.boot_id:
            self.collector.set_clock(node, 0, 0)
        else:
            self.collector.set_clock(node, worker - (sent + received) // 2, rtt // 2)

    def start(self, collector: RecordCollector) -> None:
        self.collector = collector
        self._best_rtt.clear()
        self._greenlet = gevent.spawn(self._loop)

    def _loop(self) -> None:
        started = perf_counter_ns()
        known: set[str] = set()
        while True:
            clients = self.runner.clients
            for node, client in list(clients.items()):
                known.add(node)
                if getattr(client, "state", "") == "missing":
                    self._lost(node, started, "stopped sending heartbeats (Locust: missing)")
                else:
                    self.runner.send_message(
                        CLOCK_PING, {"sent": perf_counter_ns()}, client_id=node
                    )
            for node in known - set(clients):
                self._lost(node, started, "disconnected")
            gevent.sleep(PING_INTERVAL_S)

    def _lost(self, node: str, started: int, why: str) -> None:
        if self.collector is not None:
            after = (perf_counter_ns() - started) / 1e9
            self.collector.mark_lost(node, f"{why} {after:.1f} s into the test")

    def stop(self) -> None:
        if self._greenlet is not None:
            self._greenlet.kill(block=False)
            self._greenlet = None
