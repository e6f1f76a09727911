"""Dynamic batching: batches form from what is queued, answers equal unbatched prediction."""

from __future__ import annotations

import asyncio
import dataclasses
from collections import deque

import numpy as np
import pytest

from servingbench.api.models import ServedModel, load_models
from servingbench.api.runners import (
    BatchingRunner,
    Outputs,
    Pending,
    Predicted,
    predict_outputs,
    take_batch,
)
from servingbench.models.catalog import as_features

pytestmark = pytest.mark.usefixtures("trained_models")


class RecordingPredictor:
    """The real predictor, remembering how many rows each call received."""

    def __init__(self, inner: object) -> None:
        self.inner = inner
        self.calls: list[int] = []

    def predict(self, x: np.ndarray) -> np.ndarray:
        self.calls.append(len(x))
        return self.inner.predict(x)  # type: ignore[attr-defined,no-any-return]

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        return self.inner.predict_proba(x)  # type: ignore[attr-defined,no-any-return]


def _recording(name: str) -> tuple[ServedModel, RecordingPredictor]:
    model = load_models([name])[name]
    recorder = RecordingPredictor(model.predictor)
    return dataclasses.replace(model, predictor=recorder), recorder


def _rows(model: ServedModel, n: int) -> list[np.ndarray]:
    held_out = model.metadata.held_out.rows
    return [as_features([held_out[i % len(held_out)]]) for i in range(n)]


def _pending(rows: int, loop: asyncio.AbstractEventLoop) -> Pending:
    future: asyncio.Future[Predicted] = loop.create_future()
    return Pending(np.zeros((rows, 4), dtype=np.float32), ("predict",), future, 0.0)


def test_take_batch_takes_what_fits_and_always_the_head() -> None:
    loop = asyncio.new_event_loop()  # the futures' loop, closed here so none leaks
    try:
        queue = deque(_pending(n, loop) for n in (3, 2, 4, 1))
        assert [len(p.x) for p in take_batch(queue, 5)] == [3, 2]
        assert [len(p.x) for p in take_batch(queue, 2)] == [4]  # larger than the limit: alone
        assert [len(p.x) for p in take_batch(queue, 2)] == [1]
        assert not queue
    finally:
        loop.close()


async def _run_all(
    runner: BatchingRunner, model: ServedModel, rows: list[np.ndarray]
) -> list[Predicted]:
    names = ("predict", "predict_proba")
    try:
        return list(await asyncio.gather(*(runner.predict(model, x, names) for x in rows)))
    finally:
        await runner.aclose()


@pytest.mark.parametrize("name", ["iris", "breast-cancer"])
def test_requests_queued_together_form_one_batch_equal_to_unbatched(name: str) -> None:
    model, recorder = _recording(name)
    rows = _rows(model, 12)
    results = asyncio.run(_run_all(BatchingRunner(64, 3600.0), model, rows))
    assert recorder.calls == [12]
    for _, stages in results:  # every request knows the batch that answered it
        assert stages.batch_rows == 12
        assert stages.model_s > 0
        assert stages.queue_s >= 0
    for x, (got, _) in zip(rows, results, strict=True):
        expected = predict_outputs(model.predictor.inner, x, ("predict", "predict_proba"))  # type: ignore[attr-defined]
        np.testing.assert_array_equal(got["predict"], expected["predict"])
        # xgboost is bit-identical; LogisticRegression's float32 matmul may differ in the last bits.
        np.testing.assert_allclose(
            got["predict_proba"], expected["predict_proba"], rtol=0, atol=1e-6
        )


def test_batches_respect_the_row_limit() -> None:
    model, recorder = _recording("iris")
    asyncio.run(_run_all(BatchingRunner(5, 3600.0), model, _rows(model, 12)))
    assert recorder.calls == [5, 5, 2]


def test_a_lone_request_is_not_held_for_the_max_wait() -> None:
    """With an hour of max wait, a lone request still completes: it is never waiting on a timer."""
    model, recorder = _recording("iris")

    async def lone() -> Outputs:
        runner = BatchingRunner(64, 3600.0)
        try:
            outputs, _ = await asyncio.wait_for(
                runner.predict(model, _rows(model, 1)[0], ("predict",)), 60
            )
            return outputs
        finally:
            await runner.aclose()

    result = asyncio.run(lone())
    assert recorder.calls == [1]
    assert list(result) == ["predict"]


def test_each_request_gets_only_the_outputs_it_asked_for() -> None:
    model, _ = _recording("iris")

    async def mixed() -> list[Outputs]:
        runner = BatchingRunner(64, 3600.0)
        x = _rows(model, 1)[0]
        try:
            answers = await asyncio.gather(
                runner.predict(model, x, ("predict",)),
                runner.predict(model, x, ("predict_proba",)),
            )
            return [outputs for outputs, _ in answers]
        finally:
            await runner.aclose()

    first, second = asyncio.run(mixed())
    assert list(first) == ["predict"]
    assert list(second) == ["predict_proba"]
    assert second["predict_proba"].shape == (1, 3)
