"""Per-process load-generator state and the Locust event hooks that manage it.

Importing this module (the users do) registers the hooks once per process:
- `init_command_line_parser`: `--model`, `--rows-per-request`;
- `init` / `test_start`: settings resolved from env + Locust options (the web UI may change them
  between tests), a settings snapshot `loadgen-<pid>.json` beside the records;
- `test_stop` and `quit`: the records written atomically to `part-<pid>.npz`. Locust fires
  `test_stop` on a timed end, on Ctrl-C and on SIGTERM alike (its shutdown stops the runner
  first), `quit` is a last chance; a process that ran no users (`--processes` master) writes none.
  Records accumulate over every test the process runs (the web UI can start several).
"""

from __future__ import annotations

import itertools
import logging
import os
from collections.abc import Callable
from typing import Any

import gevent
from locust import events
from locust.runners import MasterRunner, WorkerRunner

from servingbench.atomic import atomic_write_json
from servingbench.environment import library_versions
from servingbench.loadgen.payloads import Payload, build_payloads
from servingbench.loadgen.recorder import Recorder, part_path
from servingbench.loadgen.scenarios import Protocol
from servingbench.loadgen.settings import LoadSettings, add_locust_options, resolve_settings

__all__ = ["LoadContext", "context_for", "listen"]

log = logging.getLogger(__name__)

_WORKER_STRIDE = 100_003  # keeps user indexes of different worker processes apart


class LoadContext:
    """What every user of one Locust process shares: settings, recorder, encoded payloads."""

    def __init__(self, environment: Any) -> None:
        self.environment = environment
        self.settings: LoadSettings = resolve_settings(environment.parsed_options)
        self.recorder = Recorder(environment.events.request)
        self._payloads: dict[tuple[Protocol, str, int], list[Payload]] = {}
        self._user_numbers = itertools.count()

    def refresh(self) -> None:
        """Re-read the options: the web UI can change `--model` between two tests."""
        self.settings = resolve_settings(self.environment.parsed_options)

    def payloads(self, protocol: Protocol) -> list[Payload]:
        """The encoded payload cycle for the current model and batch size (built once)."""
        key = (protocol, self.settings.model, self.settings.rows_per_request)
        if key not in self._payloads:
            self._payloads[key] = build_payloads(*key)
        return self._payloads[key]

    def next_user_index(self) -> int:
        """A deterministic index per user: creation order, offset by the worker's index."""
        runner = self.environment.runner
        worker = runner.worker_index if isinstance(runner, WorkerRunner) else 0
        return worker * _WORKER_STRIDE + next(self._user_numbers)

    def runs_users(self) -> bool:
        return not isinstance(self.environment.runner, MasterRunner)

    def save_records(self) -> None:
        records_dir = self.settings.records_dir
        if records_dir is not None and self.runs_users():
            self.recorder.save(part_path(records_dir))

    def save_snapshot(self) -> None:
        """Record what this process sends: settings, user classes, host, library versions."""
        records_dir = self.settings.records_dir
        if records_dir is None or not self.runs_users():
            return
        env = self.environment
        atomic_write_json(
            records_dir / f"loadgen-{os.getpid()}.json",
            {
                "settings": self.settings.model_dump(mode="json"),
                "host": env.host,
                "user_classes": [cls.__name__ for cls in env.user_classes],
                "packages": library_versions(("locust", "gevent", "geventhttpclient", "grpcio")),
            },
        )


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


def _on_init(environment: Any, **_kwargs: Any) -> None:
    # gevent timers count from the event loop's cached clock, which has not moved while the
    # locustfile was imported (seconds on a busy machine): without a refresh, `-t 10s` ends
    # the test early by the import time. Locust arms its run-time timer after `init`.
    gevent.get_hub().loop.update_now()
    context_for(environment)


def _on_test_start(environment: Any, **_kwargs: Any) -> None:
    context = context_for(environment)
    context.refresh()
    context.save_snapshot()


def _on_test_stop(environment: Any, **_kwargs: Any) -> None:
    context_for(environment).save_records()


def _on_quit(**_kwargs: Any) -> None:
    if _Current.context is not None:
        _Current.context.save_records()


def listen(hook: Any, handler: Callable[..., None]) -> None:
    """Register `handler` on a Locust event hook (a typed wrapper: Locust's is untyped)."""
    hook.add_listener(handler)


listen(events.init_command_line_parser, _add_options)
listen(events.init, _on_init)
listen(events.test_start, _on_test_start)
listen(events.test_stop, _on_test_stop)
listen(events.quit, _on_quit)
