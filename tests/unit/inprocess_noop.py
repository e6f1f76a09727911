"""The calibration's no-op servers run in this process (a thread with its own event loop) on a
free loopback port: quick, and the very code `make calibrate` launches."""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Literal

from servingbench.calibration.noop import grpc_answers, http_answers, serve_grpc, serve_http
from servingbench.stack.processes import free_port, tcp_open

__all__ = ["noop_server"]


@contextmanager
def noop_server(
    transport: Literal["http", "grpc"], model: str = "iris", rows: int = 1
) -> Iterator[int]:
    """A no-op server of `transport` answering `model`'s payloads; yields its port."""
    port = free_port()
    loop = asyncio.new_event_loop()
    if transport == "http":
        serving = serve_http("127.0.0.1", port, http_answers(model, rows))
    else:
        serving = serve_grpc("127.0.0.1", port, grpc_answers(model, rows))
    task = loop.create_task(serving)
    thread = threading.Thread(target=loop.run_forever, name=f"noop-{transport}", daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 10
        while not tcp_open(f"127.0.0.1:{port}", timeout=0.2):
            if time.monotonic() > deadline or task.done():
                raise RuntimeError(f"no-op {transport} server did not listen on port {port}")
            time.sleep(0.01)
        yield port
    finally:

        async def cancel() -> None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

        asyncio.run_coroutine_threadsafe(cancel(), loop).result(timeout=5)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=5)
        loop.close()
