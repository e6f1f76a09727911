"""Where predictions run (`predict_mode`): a runner per mode behind one two-method interface.

Field notes: for this sub-millisecond model, predicting in the event loop beats the thread
pool; the thread pool is kept as a measured alternative, batching lives in `batching.py`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Protocol

import numpy as np
from starlette.concurrency import run_in_threadpool

from servingbench.api.models import ServedModel
from servingbench.api.settings import ApiSettings, PredictMode
from servingbench.artifacts import Predictor

__all__ = ["RUNNERS", "Outputs", "Runner", "make_runner", "predict_outputs"]

Outputs = dict[str, np.ndarray]


def predict_outputs(predictor: Predictor, x: np.ndarray, names: Sequence[str]) -> Outputs:
    """Only the outputs asked for, by the same calls MLServer's runtimes make."""
    calls = {"predict": predictor.predict, "predict_proba": predictor.predict_proba}
    return {name: calls[name](x) for name in names}


class Runner(Protocol):
    """Predict `names` for `x` on `model`; release what the runner holds on shutdown."""

    async def predict(self, model: ServedModel, x: np.ndarray, names: Sequence[str]) -> Outputs: ...

    async def aclose(self) -> None: ...


class EventLoopRunner:
    """Predict inline: no hand-off, the loop is blocked for the model's ~0.1-0.3 ms."""

    async def predict(self, model: ServedModel, x: np.ndarray, names: Sequence[str]) -> Outputs:
        return predict_outputs(model.predictor, x, names)

    async def aclose(self) -> None:
        return None


class ThreadpoolRunner:
    """Predict in Starlette's worker threads (AnyIO's pool), keeping the loop free."""

    async def predict(self, model: ServedModel, x: np.ndarray, names: Sequence[str]) -> Outputs:
        return await run_in_threadpool(predict_outputs, model.predictor, x, names)

    async def aclose(self) -> None:
        return None


def _batching(settings: ApiSettings) -> Runner:
    from servingbench.api.batching import BatchingRunner

    return BatchingRunner(settings.batch_max_size, settings.batch_max_wait_ms / 1000)


RUNNERS: dict[PredictMode, Callable[[ApiSettings], Runner]] = {
    "event-loop": lambda _: EventLoopRunner(),
    "threadpool": lambda _: ThreadpoolRunner(),
    "batching": _batching,
}


def make_runner(settings: ApiSettings) -> Runner:
    return RUNNERS[settings.predict_mode](settings)
