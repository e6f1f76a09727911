"""The suite's own leftover check (tests.leftovers), on tiny pytest runs in a subprocess: a test
that leaks a process fails the run and names it; one that cleans up passes; a SIGTERM to pytest
still tears the fixtures down."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import psutil
import pytest

from servingbench.paths import project_root

LEAKS = """
import subprocess
from pathlib import Path

def test_leaks_a_process(tmp_path_factory):
    # its own session, as our servers run: it survives pytest with parent 1
    sleeper = subprocess.Popen(["sleep", "301"], start_new_session=True)
    Path({pid_file!r}).write_text(str(sleeper.pid))
"""

CLEANS_UP = """
import subprocess

def test_stops_what_it_starts():
    sleeper = subprocess.Popen(["sleep", "302"], start_new_session=True)
    sleeper.kill()
    sleeper.wait()
"""

STOPS_IN_TEARDOWN = """
import subprocess, time
from pathlib import Path
import pytest

@pytest.fixture(scope="session")
def server():
    sleeper = subprocess.Popen(["sleep", "303"], start_new_session=True)
    Path({pid_file!r}).write_text(str(sleeper.pid))
    yield sleeper
    sleeper.kill()
    sleeper.wait()

def test_runs_until_terminated(server):
    time.sleep(60)
"""


def _pytest(tmp_path: Path, source: str) -> subprocess.Popen[str]:
    """pytest on one test file under the leftover check alone (not this project's settings)."""
    test_file = tmp_path / "test_tiny.py"
    test_file.write_text(textwrap.dedent(source))
    argv = [sys.executable, "-m", "pytest", "-p", "tests.leftovers", "-p", "no:cacheprovider"]
    argv += ["-q", "--rootdir", str(tmp_path), str(test_file)]
    env = {**os.environ, "PYTHONPATH": str(project_root())}
    return subprocess.Popen(
        argv,
        cwd=project_root(),
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def _gone(pid: int, timeout_s: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            if psutil.Process(pid).status() == psutil.STATUS_ZOMBIE:
                return True
        except psutil.NoSuchProcess:
            return True
        time.sleep(0.05)
    return False


def _wait_for_file(path: Path, timeout_s: float = 60.0) -> int:
    deadline = time.monotonic() + timeout_s
    while not path.is_file() or not path.read_text():
        assert time.monotonic() < deadline, f"{path} never written"
        time.sleep(0.05)
    return int(path.read_text())


@pytest.mark.timeout(120)
def test_a_leaked_process_fails_the_session_and_is_named_and_killed(tmp_path: Path) -> None:
    pid_file = tmp_path / "leaked.pid"
    proc = _pytest(tmp_path, LEAKS.format(pid_file=str(pid_file)))
    output, _ = proc.communicate(timeout=100)
    pid = int(pid_file.read_text())
    try:
        assert proc.returncode == pytest.ExitCode.TESTS_FAILED, output
        assert "1 passed" in output, output  # the test passed: the session fails for the leak
        assert "processes left behind by the test session" in output, output
        assert f"pid {pid} " in output, output
        assert "sleep 301" in output, output
        assert _gone(pid), "the leaked process was not killed"
    finally:
        if not _gone(pid, 0.1):  # never leave it behind ourselves, whatever failed above
            os.kill(pid, signal.SIGKILL)


@pytest.mark.timeout(120)
def test_a_session_that_stops_what_it_starts_passes(tmp_path: Path) -> None:
    proc = _pytest(tmp_path, CLEANS_UP)
    output, _ = proc.communicate(timeout=100)
    assert proc.returncode == pytest.ExitCode.OK, output
    assert "left behind" not in output, output


@pytest.mark.timeout(120)
def test_sigterm_to_pytest_still_runs_the_teardown(tmp_path: Path) -> None:
    """SIGTERM's default action ends pytest with no teardown: the session fixture's process
    would outlive it (parent 1). The check turns it into an interrupt pytest tears down from."""
    pid_file = tmp_path / "server.pid"
    proc = _pytest(tmp_path, STOPS_IN_TEARDOWN.format(pid_file=str(pid_file)))
    pid = _wait_for_file(pid_file)
    try:
        proc.send_signal(signal.SIGTERM)
        output, _ = proc.communicate(timeout=60)
        assert proc.returncode == pytest.ExitCode.INTERRUPTED, output
        assert "SIGTERM" in output, output
        assert "left behind" not in output, output  # stopped by its teardown, not by the check
        assert _gone(pid), "the fixture's process outlived pytest"
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        if not _gone(pid, 0.1):
            os.kill(pid, signal.SIGKILL)
