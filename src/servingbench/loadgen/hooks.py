"""Per-process load-generator state and the Locust event hooks that manage it.

Importing this module (the users do) registers the hooks once per process:
- `init_command_line_parser`: `--model`, `--rows-per-request`, `--arrival-rate`, ... (web UI too),
  and the web UI on loopback only unless `--web-host` says otherwise;
- `init`: the messages registered on the runner (records, drain, clock);
- `test_start`: settings re-read (the web UI may change them between tests); processes that run
  users start shipping records (and, in open loop, their arrival schedule); the collecting
  process (the master, or the only one) starts a fresh collection, its clock and liveness
  checks, and, when a point is being measured, the controller that stops the test once the
  windows agree (`loadgen.stopping`);
- `test_stopping` (master): every live worker is told to drain, and the master waits for each
  one's last records and `done` while its receive loop still runs: Locust itself fires the
  master's `test_stop` without waiting for workers, and stops listening soon after;
- `test_stop`: a worker (or the only process) ships its last records and `done`; the collecting
  process writes `records.npz` and `generator.json` atomically into the records folder.
"""

from __future__ import annotations

import gc
import itertools
import logging
import urllib.request
from collections.abc import Callable
from time import perf_counter_ns
from typing import Any

import gevent
from locust import events
from locust.runners import LocalRunner, MasterRunner, WorkerRunner

from servingbench.atomic import atomic_write_text
from servingbench.loadgen.arrivals import Dispatcher, open_loop_slots
from servingbench.loadgen.clock import ClockProbe
from servingbench.loadgen.collect import (
    DONE_MSG,
    DRAIN_MSG,
    FLUSH_MSG,
    RECORDS_MSG,
    RecordCollector,
    RecordShipper,
)
from servingbench.loadgen.payloads import Payload, build_payloads
from servingbench.loadgen.recorder import Recorder
from servingbench.loadgen.schedule import Gate, ScheduleFollower
from servingbench.loadgen.settings import LoadSettings, add_locust_options, resolve_settings
from servingbench.loadgen.stopping import PointController
from servingbench.runs.layout import GeneratorFiles
from servingbench.runs.point import GeneratorReport
from servingbench.runs.records import Outcome
from servingbench.wire import WireName

__all__ = ["WEB_HOST", "LoadContext", "context_for", "listen"]

log = logging.getLogger(__name__)

WEB_HOST = "127.0.0.1"
"""The interface Locust's web UI binds unless told otherwise. From another machine, an SSH tunnel
keeps it private (`ssh -L 8089:127.0.0.1:8089 HOST`); `--web-host 0.0.0.0` opens it to the
network, where whoever reaches the port can send load anywhere. Locust's `--web-login` alone only
locks the UI: the locustfile must supply the login (Locust's authentication docs); ours do not."""
DONE_MARGIN_S = 10.0
"""How long, beyond the stop's grace period, the master waits for a worker's last records."""
_WORKER_STRIDE = 100_003  # keeps user indexes of different worker processes apart


class LoadContext:
    """What one Locust process shares: settings, recorder, payloads, shipping and collecting."""

    def __init__(self, environment: Any) -> None:
        self.environment = environment
        self.settings: LoadSettings = resolve_settings(environment.parsed_options)
        self.recorder = Recorder(environment.events.request)
        self.shipper: RecordShipper | None = None
        self.collector: RecordCollector | None = None
        self.controller: PointController | None = None
        self.clock: ClockProbe | None = None
        self.dispatcher: Dispatcher | None = None
        self.gate: Gate | None = None
        self.follower: ScheduleFollower | None = None
        self._payloads: dict[tuple[WireName, str, int], list[Payload]] = {}
        self._user_numbers = itertools.count()

    @property
    def runner(self) -> Any:
        return self.environment.runner

    def runs_users(self) -> bool:
        return not isinstance(self.runner, MasterRunner)

    def collects(self) -> bool:
        return not isinstance(self.runner, WorkerRunner)

    def payloads(self, wire: WireName) -> list[Payload]:
        """The encoded payload cycle for the current model and batch size (built once)."""
        key = (wire, self.settings.model, self.settings.rows_per_request)
        if key not in self._payloads:
            self._payloads[key] = build_payloads(*key)
        return self._payloads[key]

    def next_user_index(self) -> int:
        """A deterministic index per user: creation order, offset by the worker's index."""
        runner = self.runner
        worker = runner.worker_index if isinstance(runner, WorkerRunner) else 0
        return worker * _WORKER_STRIDE + next(self._user_numbers)

    # --- message wiring (at init, once per process) ---------------------------------------

    def register_messages(self) -> None:
        runner = self.runner
        if runner is None:
            return
        if self.collects():
            runner.register_message(RECORDS_MSG, self._on_records)
            runner.register_message(DONE_MSG, self._on_done)
        if isinstance(runner, WorkerRunner):
            runner.register_message(DRAIN_MSG, self._on_drain, concurrent=True)
            runner.register_message(FLUSH_MSG, self._on_flush)
        self.clock = ClockProbe(runner)
        self.clock.register()

    def _on_records(self, environment: Any, msg: Any, **kwargs: Any) -> None:
        if self.collector is not None:
            chunk = self.collector.on_records(environment, msg)
            if chunk is not None and self.controller is not None:
                self.controller.on_chunk(chunk)

    def _on_done(self, environment: Any, msg: Any, **kwargs: Any) -> None:
        if self.collector is not None:
            self.collector.on_done(environment, msg)

    def _on_flush(self, environment: Any, msg: Any, **kwargs: Any) -> None:
        if self.shipper is not None:
            self.shipper.ship()

    def _flush(self) -> None:
        """At a window's end: every load-generating process ships what it has recorded."""
        if self.shipper is not None:  # this process runs users (local: delivered at once)
            self.shipper.ship()
        runner = self.runner
        if isinstance(runner, MasterRunner) and self.collector is not None:
            for node in self.collector.live_workers(runner):
                runner.send_message(FLUSH_MSG, None, client_id=node)

    def _on_drain(self, environment: Any, msg: Any, **kwargs: Any) -> None:
        """A worker told to finish: stop (users get the grace period), which ships the rest."""
        self.runner.stop()

    def _processes(self) -> tuple[int, int]:
        """(this process's index, how many processes generate load) for the arrival split."""
        runner = self.runner
        if not isinstance(runner, WorkerRunner):
            return 0, 1
        options = self.environment.parsed_options
        count = max(
            getattr(options, "processes", 1) or 1, getattr(options, "expect_workers", 1) or 1
        )
        return runner.worker_index % count, count

    # --- a test's life --------------------------------------------------------------------

    def start_test(self) -> None:
        self.settings = resolve_settings(self.environment.parsed_options)
        if self.collects():
            self.collector = RecordCollector()
            if self.clock is not None and isinstance(self.runner, MasterRunner):
                self.clock.start(self.collector)
            plan = self.settings.measure
            if plan is not None:
                collector = self.collector
                self.controller = PointController(
                    plan,
                    collector.first_start_ns,
                    collector.snapshot,
                    self._stop_test,
                    self._scrape if self.settings.metrics_url else None,
                    self._flush,
                )
        if self.runs_users():
            self.recorder.buffer.drain()  # nothing of a previous test travels into this one
            self.recorder.timed_connects = 0
            self.shipper = RecordShipper(self.runner, self.recorder.buffer)
            if self.settings.schedule_file is None or not isinstance(self.runner, LocalRunner):
                # a scheduled process alone on its host has nobody to feed while it runs: its
                # records stay put until the end, which keeps the load loop free of the work
                self.shipper.start()
            settings = self.settings
            if settings.arrival_rate is not None:
                index, count = self._processes()
                self.dispatcher = Dispatcher(
                    settings.arrival_rate,
                    settings.arrivals,
                    settings.arrival_seed,
                    self.recorder.buffer,
                    index,
                    count,
                )  # started once every slot exists (spawning_complete)
            if settings.schedule_file is not None:
                self.gate = Gate()
                grace = self.environment.stop_timeout or 0.0
                self.follower = ScheduleFollower(
                    settings.schedule_file, self.gate, self._stop_test, grace
                )  # told once every user exists (spawning_complete)
        if self.controller is not None:
            self.controller.start()  # after the shipper: its flush needs one

    def stopping(self) -> None:
        """Before users stop: no more arrivals; the master drains its workers (see module)."""
        if self.dispatcher is not None:
            self.dispatcher.stop()
        if self.gate is not None:
            self.gate.end()  # users waiting between slices leave at once
        runner = self.runner
        if not isinstance(runner, MasterRunner) or self.collector is None:
            return
        live = self.collector.live_workers(runner)
        for node in live:
            runner.send_message(DRAIN_MSG, None, client_id=node)
        timeout = (self.environment.stop_timeout or 0) + DONE_MARGIN_S
        for node in self.collector.wait_done(set(live), timeout):
            self.collector.mark_lost(node, f"no last records within {timeout:g} s of the stop")

    def _scrape(self) -> str | None:
        """The server's metrics page (gevent-friendly urllib); None when it cannot be read."""
        url = self.settings.metrics_url
        if url is None:
            return None
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                text: str = response.read().decode("utf-8", "replace")
                return text
        except OSError as exc:
            log.warning("cannot scrape %s: %s", url, exc)
            return None

    def _stop_test(self) -> None:
        """The controller's decision: end the test (headless: the process then exits)."""
        gevent.spawn(self.runner.quit)

    def stop_test(self) -> None:
        if self.dispatcher is not None:
            self.dispatcher.stop()
            self.dispatcher = None
        if self.follower is not None:
            self.follower.stop()
            self.follower = None
        if self.shipper is not None:
            self.shipper.finish(self.recorder.timed_connects)
            self.shipper = None
        if not self.collects() or self.collector is None:
            return
        collector = self.collector
        if self.controller is not None:
            self.controller.stopped(perf_counter_ns())
        if self.clock is not None:
            self.clock.stop()
        self.write(collector)
        self.collector = None

    def write(self, collector: RecordCollector) -> None:
        """`records.npz` (times since t0, the measured interval) and `generator.json`."""
        records_dir = self.settings.records_dir
        if records_dir is None:
            return
        controller = self.controller
        merged = collector.snapshot()
        t0 = controller.t0_ns if controller and controller.t0_ns is not None else None
        start = t0 if t0 is not None else (collector.first_start_ns() or 0)
        from_ns = controller.from_ns if controller and controller.from_ns is not None else start
        to_ns = (
            controller.to_ns if controller and controller.to_ns is not None else perf_counter_ns()
        )
        records = type(merged).concat([merged], start, from_ns, to_ns)
        measured = records.measured()
        workers = collector.reports()
        report = GeneratorReport(
            t0_ns=t0 if controller else collector.first_start_ns(),
            from_ns=controller.from_ns if controller else None,
            to_ns=controller.to_ns if controller else None,
            stop_reason=(controller.reason or "stopped") if controller else "stopped",
            windows=len(controller.windows) if controller else 0,
            workers=workers,
            dropped=int((measured.outcome == Outcome.DROPPED).sum()),
            arrivals=len(measured) if self.settings.arrival_rate is not None else 0,
            seed=self.settings.arrival_seed if self.settings.arrival_rate is not None else None,
            timed_connects=sum(w.timed_connects for w in workers),
        )
        records_dir.mkdir(parents=True, exist_ok=True)
        files = GeneratorFiles(records_dir)
        records.save(files.records)
        for end, text in controller.scrapes.items() if controller else []:
            atomic_write_text(files.metrics(end), text)
        atomic_write_text(files.report, report.model_dump_json(indent=2))
        log.info("wrote %d request records to %s", len(records), records_dir)


class _Current:
    """The process's one context (Locust runs one environment per process)."""

    context: LoadContext | None = None


def context_for(environment: Any) -> LoadContext:
    """This process's context (created on first use when Locust's `init` did not run)."""
    current = _Current.context
    if current is None or current.environment is not environment:
        current = _Current.context = LoadContext(environment)
    return current


def _add_options(parser: Any, **_kwargs: Any) -> None:
    add_locust_options(parser)
    # Locust's web UI listens on every interface by default, without a login, and its form
    # points load at any host. A default here holds wherever `locust -f` runs; `--web-host`,
    # LOCUST_WEB_HOST, locust.conf and [tool.locust] still override it.
    parser.set_defaults(web_host=WEB_HOST)


def _on_init(environment: Any, **_kwargs: Any) -> None:
    # gevent timers count from the event loop's cached clock, which has not moved while the
    # locustfile was imported (seconds on a busy machine): without a refresh, `-t 10s` ends
    # the test early by the import time. Locust arms its run-time timer after `init`.
    gevent.get_hub().loop.update_now()
    context = context_for(environment)
    context.register_messages()
    open_loop_slots(environment.parsed_options, context.settings.arrival_rate)
    _freeze_heap()


def _freeze_heap() -> None:
    """Move everything imported so far out of the garbage collector's reach.

    A full collection walks every tracked object: after importing Locust, gevent, numpy and the
    protobuf stubs that is enough to stall the generator in the middle of a measurement (seen
    as bursts of send lateness in open loop).
    """
    gc.collect()
    gc.freeze()


def _on_test_start(environment: Any, **_kwargs: Any) -> None:
    context_for(environment).start_test()


def _on_spawning_complete(**_kwargs: Any) -> None:
    _freeze_heap()  # the users, their connections and payloads are long-lived too
    context = _Current.context
    if context is not None and context.dispatcher is not None and context.runs_users():
        context.dispatcher.start()  # arrivals only once every slot exists
    if context is not None and context.follower is not None:
        context.follower.ready()  # the sweep writes the schedule once every process is ready


def _on_test_stopping(environment: Any, **_kwargs: Any) -> None:
    context_for(environment).stopping()


def _on_test_stop(environment: Any, **_kwargs: Any) -> None:
    context_for(environment).stop_test()


def listen(hook: Any, handler: Callable[..., None]) -> None:
    """Register `handler` on a Locust event hook (a typed wrapper: Locust's is untyped)."""
    hook.add_listener(handler)


listen(events.init_command_line_parser, _add_options)
listen(events.init, _on_init)
listen(events.test_start, _on_test_start)
listen(events.spawning_complete, _on_spawning_complete)
listen(events.test_stopping, _on_test_stopping)
listen(events.test_stop, _on_test_stop)
