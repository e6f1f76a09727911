"""Locust's web UI, started from a project locustfile as a user would (`locust -f ...`), listens
on loopback only unless told otherwise, and every usual way of telling it still wins.

Its form points load at any host and it has no login, so the package sets the default
(`loadgen.hooks.WEB_HOST`; this test imports no Locust, which would monkey-patch pytest's
process). The overrides here bind other loopback addresses, never every
interface: what they prove is that the user's choice wins, without exposing anything.
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from servingbench.paths import project_root
from servingbench.stack.processes import free_port

pytestmark = pytest.mark.integration

LOCUST = Path(sys.executable).with_name("locust")
LOCUSTFILE = project_root() / "loadtests" / "fastapi_rest.py"
START_TIMEOUT_S = 60  # Locust's start-up on a busy 2-core machine


def _listening(port: int) -> set[str]:
    """The local addresses of TCP sockets listening on `port`, read from /proc/net."""
    found = set()
    for table in ("tcp", "tcp6"):
        path = Path("/proc/net") / table
        if not path.exists():
            continue
        for line in path.read_text().splitlines()[1:]:
            fields = line.split()
            local, state = fields[1], fields[3]
            address_hex, _, port_hex = local.partition(":")
            if state != "0A" or int(port_hex, 16) != port:  # 0A: LISTEN
                continue
            raw = bytes.fromhex(address_hex)
            # /proc prints each 32-bit word in host (little-endian) order
            words = b"".join(raw[i : i + 4][::-1] for i in range(0, len(raw), 4))
            found.add(str(ipaddress.ip_address(words)))
    return found


def _web_ui_addresses(cwd: Path, *args: str, env: dict[str, str] | None = None) -> set[str]:
    """Start `locust -f loadtests/fastapi_rest.py` (web UI mode) in `cwd`; where it listens."""
    port = free_port()
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("LOCUST_")}
    proc = subprocess.Popen(
        [str(LOCUST), "-f", str(LOCUSTFILE), "--web-port", str(port), *args],
        cwd=cwd,
        env={**full_env, **(env or {})},
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline and proc.poll() is None:
            addresses = _listening(port)
            if addresses:
                return addresses
            time.sleep(0.2)
        raise AssertionError(f"no web UI on port {port} within {START_TIMEOUT_S} s")
    finally:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate(timeout=10)


def test_the_web_ui_listens_on_loopback_only_by_default(tmp_path: Path) -> None:
    assert _web_ui_addresses(tmp_path) == {"127.0.0.1"}


@pytest.mark.parametrize(
    ("address", "args", "env", "files"),
    [
        ("127.0.0.2", ("--web-host", "127.0.0.2"), {}, {}),
        ("127.0.0.3", (), {"LOCUST_WEB_HOST": "127.0.0.3"}, {}),
        ("127.0.0.4", (), {}, {"locust.conf": "web-host = 127.0.0.4\n"}),
        ("127.0.0.5", (), {}, {"pyproject.toml": '[tool.locust]\nweb-host = "127.0.0.5"\n'}),
    ],
    ids=["--web-host", "LOCUST_WEB_HOST", "locust.conf", "[tool.locust]"],
)
def test_the_users_web_host_wins(
    address: str,
    args: tuple[str, ...],
    env: dict[str, str],
    files: dict[str, str],
    tmp_path: Path,
) -> None:
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    assert _web_ui_addresses(tmp_path, *args, env=env) == {address}
