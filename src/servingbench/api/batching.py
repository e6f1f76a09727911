"""Dynamic batching: requests that arrive together are predicted as one batch, per model.

A collector task per model waits for the first request, then gives the event loop one turn
so requests arriving at the same moment can enqueue. It keeps collecting only while new
requests keep arriving (bounded by `max_rows` and `max_wait_s`), so a request that arrives
alone is predicted at once, never held back by a timer. Batches are predicted in the loop,
like the event-loop mode, and sliced back to each request's future.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from servingbench.api.inference import Outputs, predict_outputs
from servingbench.api.models import ServedModel
from servingbench.artifacts import Predictor

__all__ = ["BatchingRunner", "Pending", "predict_batch", "take_batch"]


@dataclass(frozen=True)
class Pending:
    """One queued request: its rows, the outputs it wants, the future its handler awaits."""

    x: np.ndarray
    names: tuple[str, ...]
    future: asyncio.Future[Outputs]


def take_batch(queue: deque[Pending], max_rows: int) -> list[Pending]:
    """Pop the head, then the following requests while their rows still fit in `max_rows`.

    The head is always taken, so a request larger than `max_rows` is predicted on its own.
    """
    batch = [queue.popleft()]
    rows = len(batch[0].x)
    while queue and rows + len(queue[0].x) <= max_rows:
        item = queue.popleft()
        rows += len(item.x)
        batch.append(item)
    return batch


def predict_batch(predictor: Predictor, batch: Sequence[Pending]) -> None:
    """One prediction for the whole batch; each future gets its own rows of each output."""
    names = tuple(dict.fromkeys(name for item in batch for name in item.names))
    x = batch[0].x if len(batch) == 1 else np.concatenate([item.x for item in batch])
    try:
        results = predict_outputs(predictor, x, names)
    except Exception as exc:
        for item in batch:
            if not item.future.done():
                item.future.set_exception(exc)
        return
    start = 0
    for item in batch:
        stop = start + len(item.x)
        if not item.future.done():  # a cancelled request (client gone) is skipped
            item.future.set_result({name: results[name][start:stop] for name in item.names})
        start = stop


class _ModelQueue:
    """The queue and collector task of one model."""

    def __init__(self, predictor: Predictor, max_rows: int, max_wait_s: float) -> None:
        self.predictor = predictor
        self.max_rows = max_rows
        self.max_wait_s = max_wait_s
        self.items: deque[Pending] = deque()
        self.queued_rows = 0
        self.arrived = asyncio.Event()
        self.task: asyncio.Task[None] | None = None

    def submit(self, x: np.ndarray, names: tuple[str, ...]) -> asyncio.Future[Outputs]:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Outputs] = loop.create_future()
        self.items.append(Pending(x, names, future))
        self.queued_rows += len(x)
        self.arrived.set()
        if self.task is None or self.task.done():
            self.task = loop.create_task(self._collect())
        return future

    async def _gather(self) -> None:
        """Yield to the loop while others keep arriving, within the row and time bounds."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.max_wait_s
        seen = 0
        while len(self.items) > seen and self.queued_rows < self.max_rows:
            seen = len(self.items)
            await asyncio.sleep(0)
            if loop.time() >= deadline:
                break

    async def _collect(self) -> None:
        while True:
            if not self.items:
                self.arrived.clear()
                await self.arrived.wait()
            await self._gather()
            batch = take_batch(self.items, self.max_rows)
            self.queued_rows -= sum(len(item.x) for item in batch)
            predict_batch(self.predictor, batch)

    async def aclose(self) -> None:
        if self.task is not None:
            self.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.task
        while self.items:
            item = self.items.popleft()
            if not item.future.done():
                item.future.set_exception(RuntimeError("server shutting down"))


class BatchingRunner:
    """The `batching` predict mode: one `_ModelQueue` per model, created on first use."""

    def __init__(self, max_rows: int, max_wait_s: float) -> None:
        self.max_rows = max_rows
        self.max_wait_s = max_wait_s
        self._queues: dict[str, _ModelQueue] = {}

    async def predict(self, model: ServedModel, x: np.ndarray, names: Sequence[str]) -> Outputs:
        queue = self._queues.get(model.name)
        if queue is None:
            queue = self._queues[model.name] = _ModelQueue(
                model.predictor, self.max_rows, self.max_wait_s
            )
        return await queue.submit(x, tuple(names))

    async def aclose(self) -> None:
        for queue in self._queues.values():
            await queue.aclose()
