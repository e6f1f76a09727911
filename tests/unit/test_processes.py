"""Process primitives: pinning, readiness failure with log tail, group stop leaves nothing."""

from __future__ import annotations

import dataclasses
import os
import sys
import time
from pathlib import Path

import psutil
import pytest

from servingbench.stack.processes import (
    Memory,
    ServerStartError,
    free_port,
    http_checks,
    memory_of,
    pin_argv,
    port_in_use,
    start_detached,
    start_ticks,
    stop_handle,
    stop_handles,
    tcp_open,
    wait_until,
)

SPAWNS_CHILD = "import subprocess, time; subprocess.Popen(['sleep', '60']); time.sleep(60)"


def test_stop_reaches_children(tmp_path: Path) -> None:
    handle = start_detached("t", [sys.executable, "-c", SPAWNS_CHILD], tmp_path / "t.log")
    deadline = time.monotonic() + 5
    while len(handle.tree()) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    pids = [p.pid for p in handle.tree()]
    assert len(pids) == 2
    assert stop_handle(handle)
    assert not any(
        psutil.pid_exists(pid) and psutil.Process(pid).status() != "zombie" for pid in pids
    )
    assert not stop_handle(handle)  # second stop is a no-op


def test_exit_during_startup_reports_log_tail(tmp_path: Path) -> None:
    code = "import sys; print('boom: bad config'); sys.exit(3)"
    handle = start_detached("broken", [sys.executable, "-c", code], tmp_path / "b.log")
    with pytest.raises(ServerStartError, match="boom: bad config"):
        wait_until(handle, [lambda: False], timeout_s=10)


def test_not_ready_in_time(tmp_path: Path) -> None:
    handle = start_detached(
        "slow", [sys.executable, "-c", "import time; time.sleep(30)"], tmp_path / "s.log"
    )
    try:
        with pytest.raises(ServerStartError, match="not ready after"):
            wait_until(handle, [lambda: False], timeout_s=0.5)
    finally:
        stop_handle(handle)


@pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2, reason="needs two cores")
def test_pinning_applies_to_process(tmp_path: Path) -> None:
    handle = start_detached(
        "p", [sys.executable, "-c", "import time; time.sleep(30)"], tmp_path / "p.log", cpus=[1]
    )
    try:
        time.sleep(0.3)
        assert os.sched_getaffinity(handle.pid) == {1}
        assert handle.cpus == (1,)
    finally:
        stop_handle(handle)


def test_pin_argv_without_cpus_is_unchanged() -> None:
    assert pin_argv(["x"], None) == ["x"]
    assert pin_argv(["x"], [1, 0]) == ["taskset", "-c", "0,1", "x"]


def test_port_in_use() -> None:
    import socket

    port = free_port()
    assert not port_in_use(port)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", port))
        sock.listen()
        assert port_in_use(port)


def test_readiness_checks_http_and_tcp() -> None:
    """`tcp://host:port` (a gRPC-only server) must accept a connection; http:// must answer 200."""
    import socket

    port = free_port()
    tcp, http = http_checks([f"tcp://127.0.0.1:{port}", f"http://127.0.0.1:{port}/ready"])
    assert not tcp()
    assert not http()
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", port))
        sock.listen()
        assert tcp()
        assert tcp_open(f"127.0.0.1:{port}")


def test_wait_until_returns_the_time_waited(tmp_path: Path) -> None:
    handle = start_detached(
        "w", [sys.executable, "-c", "import time; time.sleep(30)"], tmp_path / "w.log"
    )
    try:
        ready_at = time.monotonic() + 0.3
        waited = wait_until(handle, [lambda: time.monotonic() >= ready_at], timeout_s=10)
        assert 0.2 <= waited < 5
    finally:
        stop_handle(handle)


def test_a_recycled_pid_is_never_signalled(tmp_path: Path) -> None:
    """A handle names a process by pid *and* start time: another process with that pid is safe."""
    handle = start_detached(
        "r", [sys.executable, "-c", "import time; time.sleep(30)"], tmp_path / "r.log"
    )
    try:
        assert handle.start_ticks is not None
        impostor = dataclasses.replace(handle, start_ticks=handle.start_ticks - 100)
        assert not impostor.alive()
        assert impostor.tree() == []
        assert not stop_handle(impostor)
        assert handle.alive()
    finally:
        assert stop_handle(handle)
    assert not handle.alive()


def test_memory_of_a_tree_sums_its_processes(tmp_path: Path) -> None:
    handle = start_detached("m", [sys.executable, "-c", SPAWNS_CHILD], tmp_path / "m.log")
    try:
        deadline = time.monotonic() + 5
        while len(handle.tree()) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        tree = handle.tree()
        assert len(tree) == 2
        both, parent = memory_of(tree), memory_of(tree[:1])
        assert both.rss > parent.rss > 0
        assert both.pss > parent.pss > 0
        assert 0 < both.uss <= both.pss <= both.rss
    finally:
        stop_handle(handle)
    assert memory_of(handle.tree()) == Memory(0, 0, 0)  # gone: nothing left to count


def test_a_stepped_system_clock_does_not_hide_a_running_server(tmp_path: Path) -> None:
    """The wall-clock creation time psutil reports moves with the system clock (NTP, a virtual
    machine resumed from a pause): the handle's recorded one no longer matches, yet the server
    is the same process and must still be found and stopped."""
    handle = start_detached(
        "c", [sys.executable, "-c", "import time; time.sleep(30)"], tmp_path / "c.log"
    )
    stepped = dataclasses.replace(handle, create_time=handle.create_time - 2.0)
    try:
        assert stepped.start_ticks == start_ticks(handle.pid)
        assert stepped.alive()
        assert stop_handle(stepped)
    finally:
        stop_handle(handle)
    assert not handle.alive()


def test_children_left_by_an_exited_server_are_stopped(tmp_path: Path) -> None:
    """The server's own process is gone (a zombie until reaped) but a worker it started
    lives on in its group: stopping the server must still end the worker."""
    code = "import subprocess, sys; print(subprocess.Popen(['sleep', '60']).pid, flush=True)"
    handle = start_detached("x", [sys.executable, "-c", code], tmp_path / "x.log")
    deadline = time.monotonic() + 10
    while not (tmp_path / "x.log").read_text().strip() or handle.alive():
        assert time.monotonic() < deadline, "the server never exited"
        time.sleep(0.05)
    worker = psutil.Process(int((tmp_path / "x.log").read_text()))
    try:
        assert worker.status() != psutil.STATUS_ZOMBIE
        assert os.getpgid(worker.pid) == handle.pid
        assert not stop_handle(handle)  # the server itself was no longer running...
        assert not worker.is_running()  # ... but what it left is stopped
    finally:
        if worker.is_running():
            worker.kill()


def test_stop_handles_stops_every_one(tmp_path: Path) -> None:
    argv = [sys.executable, "-c", "import time; time.sleep(30)"]
    handles = [start_detached(f"s{i}", argv, tmp_path / f"s{i}.log") for i in range(3)]
    first = handles[0]
    assert stop_handle(first)
    assert stop_handles(handles) == [False, True, True]
    assert not any(h.alive() for h in handles)
