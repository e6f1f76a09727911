"""Local servers and certificates for the load generator's client tests (loopback only)."""

from __future__ import annotations

import asyncio
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Coroutine, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from servingbench.stack.processes import free_port

__all__ = ["Certs", "free_port", "make_certs", "running_asyncio_server", "wait_listening"]


def wait_listening(port: int, timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.02)


@dataclass(frozen=True)
class Certs:
    ca: Path
    cert: Path
    key: Path


def make_certs(directory: Path) -> Certs:
    """A throw-away CA and a server certificate for `localhost` and 127.0.0.1, by `openssl`."""

    def run(*args: str) -> None:
        subprocess.run(["openssl", *args], cwd=directory, check=True, capture_output=True)

    run("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.crt",
        "-days", "2", "-subj", "/CN=servingbench test CA")  # fmt: skip
    run("req", "-newkey", "rsa:2048", "-nodes", "-keyout", "server.key", "-out", "server.csr",
        "-subj", "/CN=localhost")  # fmt: skip
    (directory / "san.ext").write_text("subjectAltName=DNS:localhost,IP:127.0.0.1\n")
    run("x509", "-req", "-in", "server.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
        "-CAcreateserial", "-out", "server.crt", "-days", "2", "-extfile", "san.ext")  # fmt: skip
    return Certs(directory / "ca.crt", directory / "server.crt", directory / "server.key")


@contextmanager
def running_asyncio_server(
    serve: Callable[[str, int], Coroutine[Any, Any, None]],
) -> Iterator[int]:
    """Run `serve(host, port)` (an asyncio server that serves forever) on its own thread and
    event loop; yields its port once it accepts connections, cancels it afterwards."""
    port = free_port()
    loop = asyncio.new_event_loop()
    task: list[asyncio.Task[None]] = []

    def main() -> None:
        asyncio.set_event_loop(loop)
        task.append(loop.create_task(serve("127.0.0.1", port)))
        try:
            loop.run_until_complete(task[0])
        except asyncio.CancelledError:
            pass
        finally:
            loop.close()

    thread = threading.Thread(target=main, name=f"asyncio-server-{port}", daemon=True)
    thread.start()
    try:
        wait_listening(port)
        yield port
    finally:
        loop.call_soon_threadsafe(task[0].cancel)
        thread.join(timeout=10)
