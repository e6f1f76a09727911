"""Process primitives: pinning, readiness failure with log tail, group stop leaves nothing."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import psutil
import pytest

from servingbench.stack.processes import (
    ServerStartError,
    free_port,
    pin_argv,
    port_in_use,
    start_detached,
    stop_handle,
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
