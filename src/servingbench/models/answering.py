"""Every catalog model loaded once, answering `/predict` JSON rows: what the stock servers that
speak `predict-json` (BentoML, Ray Serve, LitServe) wrap in their own idioms.

One `predict_proba` call per request (or per batch), labels as its argmax, and the document our
service answers (`wire.predict_response`), so parity and the load's validation apply unchanged.
A bad request is a `RequestError` with the HTTP status and message each server turns into its
own 4xx.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from servingbench.models.artifacts import (
    Predictor,
    load_metadata,
    load_predictor,
    model_version,
    served_models,
)
from servingbench.models.catalog import DEFAULT_MODEL, as_features
from servingbench.wire import predict_response

__all__ = ["MAX_ROWS", "ModelSet", "RequestError"]

MAX_ROWS = 4096
"""Rows per request, as our service allows (room for the 2,000-row requests where the
protocols' costs cross)."""


class RequestError(ValueError):
    """A request the models cannot answer: the status to answer with, and why."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class ModelSet:
    """Every model of the repository, loaded (and called once, for lazy initialisation)."""

    def __init__(self, names: Sequence[str] | None = None) -> None:
        names = served_models() if names is None else names
        self.predictors: dict[str, Predictor] = {}
        self.versions: dict[str, str | None] = {}
        self.n_features: dict[str, int] = {}
        for name in names:
            meta = load_metadata(name)
            predictor = load_predictor(name)
            predictor.predict_proba(as_features(meta.held_out.rows[:1]))  # warm, not a client
            self.predictors[name] = predictor
            self.versions[name] = model_version(name)
            self.n_features[name] = meta.n_features

    def features(self, rows: Sequence[Sequence[float]], model: str | None) -> tuple[str, Any]:
        """(model name, float32 matrix) for a request; a RequestError names what is wrong."""
        name = model or DEFAULT_MODEL
        if name not in self.predictors:
            raise RequestError(404, f"unknown model {name!r}; served: {', '.join(self.predictors)}")
        if not rows:
            raise RequestError(422, "no rows to predict; send at least one row")
        if len(rows) > MAX_ROWS:
            raise RequestError(413, f"{len(rows)} rows exceed the limit of {MAX_ROWS} per request")
        n = self.n_features[name]
        for i, row in enumerate(rows):
            if len(row) != n:
                raise RequestError(
                    422, f"features[{i}] has {len(row)} value(s); model {name!r} expects {n}"
                )
        with np.errstate(over="ignore"):
            x = as_features(rows)
        if not np.isfinite(x).all():
            raise RequestError(422, "features must be finite numbers within float32's range")
        return name, x

    def proba(self, name: str, x: Any) -> Any:
        """The one model call of a request (or of a batch)."""
        return self.predictors[name].predict_proba(x)

    def answer(self, name: str, proba: Any) -> dict[str, Any]:
        """The `/predict` document for these probabilities, in plain JSON types (each server
        serialises it its own way)."""
        labels = np.argmax(proba, axis=1).astype(np.int64)
        doc = predict_response(
            name, self.versions[name], {"predict": labels, "predict_proba": proba}
        )
        return {k: v.tolist() if isinstance(v, np.ndarray) else v for k, v in doc.items()}

    def predict(self, rows: Sequence[Sequence[float]], model: str | None) -> dict[str, Any]:
        """Validate, call the model once, answer."""
        name, x = self.features(rows, model)
        return self.answer(name, self.proba(name, x))
