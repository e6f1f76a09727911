"""Starting many servers on few cores: a few at a time, each timed from its own start.

Small real processes stand in for servers here (a Python HTTP server that sleeps before it
listens); the real servers go through the same routine in the integration tests.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from servingbench.servers.base import LaunchSpec
from servingbench.stack.launch import STARTING_PER_CORE, LaunchResult, launch_all
from servingbench.stack.processes import ProcessHandle, free_port, http_ok, stop_handles

SERVE = (
    "import http.server, sys, time; time.sleep(float(sys.argv[1])); "
    "sys.exit(3) if sys.argv[2] == 'exit' else None; "
    "http.server.HTTPServer(('127.0.0.1', int(sys.argv[2])), "
    "http.server.SimpleHTTPRequestHandler).serve_forever()"
)


def _spec(name: str, delay_s: float, tmp_path: Path, *, exits: bool = False) -> LaunchSpec:
    port = free_port()
    argv = [sys.executable, "-c", SERVE, str(delay_s), "exit" if exits else str(port)]
    return LaunchSpec(
        name=name,
        backend="test",
        argv=argv,
        env={},
        ready_urls=[f"http://127.0.0.1:{port}/"],
        ports={"http": port},
        workdir=tmp_path / name,
    )


@pytest.fixture
def launched() -> Iterator[list[LaunchResult]]:
    """Every server a test launched is stopped, whatever the test asserted."""
    results: list[LaunchResult] = []
    yield results
    stop_handles([r.handle for result in results for r in result.ready])


def test_servers_start_a_few_at_a_time_each_timed_from_its_own_start(
    tmp_path: Path, launched: list[LaunchResult]
) -> None:
    """Five servers that each take 1 s on one core: never more than two starting at once, and
    a 2.5 s timeout holds for the last, though it became ready about 3 s after the first began."""
    specs = [_spec(f"s{i}", 1.0, tmp_path) for i in range(5)]
    starting_when_started: list[int] = []
    started: list[LaunchSpec] = []

    def on_started(spec: LaunchSpec, handle: ProcessHandle) -> None:
        starting = [s for s in started if not http_ok(s.ready_urls[0])]
        starting_when_started.append(len(starting))
        started.append(spec)

    result = launch_all(specs, tmp_path, [0], timeout_s=2.5, on_started=on_started)
    launched.append(result)
    assert result.failures == {}
    assert [r.spec.name for r in result.ready] == [s.name for s in specs]  # in the asked order
    assert max(starting_when_started) < STARTING_PER_CORE
    assert all(r.startup_s < 2.5 for r in result.ready)


def test_a_server_that_exits_fails_alone(tmp_path: Path, launched: list[LaunchResult]) -> None:
    specs = [_spec("ok", 0.2, tmp_path), _spec("dies", 0.2, tmp_path, exits=True)]
    result = launch_all(specs, tmp_path, [0], timeout_s=20.0)
    launched.append(result)
    assert [r.spec.name for r in result.ready] == ["ok"]
    assert "dies exited during start-up" in result.failures["dies"]
