"""Where predictions run (`predict_mode`): one runner per mode behind a two-method interface.

- `event-loop`: predict inline. For a sub-millisecond model this beats handing off to a thread.
- `threadpool`: Starlette's worker threads keep the loop free (a measured alternative).
- `batching`: requests that arrive together are predicted as one batch, per model. A collector
  task per model waits for the first request, then gives the event loop one turn so requests
  arriving at the same moment can enqueue. It keeps collecting only while new requests keep
  arriving (bounded by `max_rows` and `max_wait_s`), so a request that arrives alone is predicted
  at once, never held back by a timer. Batches are predicted in the loop and sliced back to each
  request's future.

`make_runner` picks the runner where the service state is built.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from time import perf_counter
from typing import Protocol

import numpy as np
from starlette.concurrency import run_in_threadpool

from servingbench.api.models import ServedModel
from servingbench.api.settings import ApiSettings, PredictMode
from servingbench.models.artifacts import Predictor

__all__ = [
    "RUNNERS",
    "BatchingRunner",
    "EventLoopRunner",
    "Outputs",
    "Pending",
    "Predicted",
    "Runner",
    "Stages",
    "ThreadpoolRunner",
    "make_runner",
    "predict_batch",
    "predict_outputs",
    "take_batch",
    "timed_outputs",
]

Outputs = dict[str, np.ndarray]


@dataclass(frozen=True, slots=True)
class Stages:
    """Where one request's server time went: waiting for its batch, and the model call that
    answered it (a batch's call, shared by the requests in it). Seconds."""

    queue_s: float
    model_s: float
    batch_rows: int

    def server_timing(self, elapsed_s: float) -> str:
        """A W3C `Server-Timing` value: `app` (the whole request, as the server saw it), the
        model call and the wait before it; milliseconds."""
        return (
            f"app;dur={elapsed_s * 1e3:.3f}, model;dur={self.model_s * 1e3:.3f}, "
            f"queue;dur={self.queue_s * 1e3:.3f}"
        )


Predicted = tuple[Outputs, Stages]


def predict_outputs(predictor: Predictor, x: np.ndarray, names: Sequence[str]) -> Outputs:
    """Only the outputs asked for, by the same calls MLServer's runtimes make."""
    calls = {"predict": predictor.predict, "predict_proba": predictor.predict_proba}
    return {name: calls[name](x) for name in names}


def timed_outputs(predictor: Predictor, x: np.ndarray, names: Sequence[str]) -> Predicted:
    """`predict_outputs`, and how long the model took."""
    start = perf_counter()
    outputs = predict_outputs(predictor, x, names)
    return outputs, Stages(0.0, perf_counter() - start, len(x))


class Runner(Protocol):
    """Predict `names` for `x` on `model`; release what the runner holds on shutdown."""

    async def predict(
        self, model: ServedModel, x: np.ndarray, names: Sequence[str]
    ) -> Predicted: ...

    async def aclose(self) -> None: ...


class EventLoopRunner:
    """Predict inline: no hand-off, the loop is blocked for the model call."""

    async def predict(self, model: ServedModel, x: np.ndarray, names: Sequence[str]) -> Predicted:
        return timed_outputs(model.predictor, x, names)

    async def aclose(self) -> None:
        return None


class ThreadpoolRunner:
    """Predict in Starlette's worker threads (AnyIO's pool), keeping the loop free."""

    async def predict(self, model: ServedModel, x: np.ndarray, names: Sequence[str]) -> Predicted:
        queued = perf_counter()
        outputs, stages = await run_in_threadpool(timed_outputs, model.predictor, x, names)
        waited = perf_counter() - queued - stages.model_s  # the hand-off to a thread and back
        return outputs, Stages(waited, stages.model_s, stages.batch_rows)

    async def aclose(self) -> None:
        return None


# --- batching -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class Pending:
    """One queued request: its rows, the outputs it wants, the future its handler awaits."""

    x: np.ndarray
    names: tuple[str, ...]
    future: asyncio.Future[Predicted]
    queued: float


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
    start = perf_counter()
    try:
        results = predict_outputs(predictor, x, names)
    except Exception as exc:
        for item in batch:
            if not item.future.done():
                item.future.set_exception(exc)
        return
    model_s = perf_counter() - start
    first = 0
    for item in batch:
        stop = first + len(item.x)
        if not item.future.done():  # a cancelled request (client gone) is skipped
            outputs = {name: results[name][first:stop] for name in item.names}
            item.future.set_result((outputs, Stages(start - item.queued, model_s, len(x))))
        first = stop


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

    def submit(self, x: np.ndarray, names: tuple[str, ...]) -> asyncio.Future[Predicted]:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Predicted] = loop.create_future()
        self.items.append(Pending(x, names, future, perf_counter()))
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

    async def predict(self, model: ServedModel, x: np.ndarray, names: Sequence[str]) -> Predicted:
        queue = self._queues.get(model.name)
        if queue is None:
            queue = self._queues[model.name] = _ModelQueue(
                model.predictor, self.max_rows, self.max_wait_s
            )
        return await queue.submit(x, tuple(names))

    async def aclose(self) -> None:
        for queue in self._queues.values():
            await queue.aclose()


def _batching(settings: ApiSettings) -> Runner:
    return BatchingRunner(settings.batch_max_size, settings.batch_max_wait_ms / 1000)


RUNNERS: dict[PredictMode, Callable[[ApiSettings], Runner]] = {
    "event-loop": lambda _: EventLoopRunner(),
    "threadpool": lambda _: ThreadpoolRunner(),
    "batching": _batching,
}


def make_runner(settings: ApiSettings) -> Runner:
    return RUNNERS[settings.predict_mode](settings)
