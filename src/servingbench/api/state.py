"""What the routes share: settings, loaded models, the runner, the latency and metric sinks.

Created with the app and handed to each router, so a request reaches it through a closure
rather than a lookup; the lifespan fills `models` at start-up.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from fastapi.responses import Response

from servingbench.api.edge import ApiError, json_response
from servingbench.api.models import ServedModel
from servingbench.api.observability import LatencyStats, Metrics
from servingbench.api.runners import Predicted, Runner, Stages, make_runner
from servingbench.api.settings import ApiSettings

__all__ = ["ServiceState", "timed_response"]


@dataclass
class ServiceState:
    settings: ApiSettings
    runner: Runner
    stats: LatencyStats
    metrics: Metrics | None
    models: dict[str, ServedModel] = field(default_factory=dict)

    @classmethod
    def create(cls, settings: ApiSettings) -> ServiceState:
        metrics = Metrics() if settings.metrics_enabled else None
        return cls(settings, make_runner(settings), LatencyStats(), metrics)

    def model(self, name: str, version: str | None = None) -> ServedModel:
        """The served model `name` (at `version`, when given), or a 404 naming what is served."""
        model = self.models.get(name)
        if model is None:
            raise ApiError(
                404, f"model {name!r} not found; served models: {', '.join(self.models)}"
            )
        if version is not None and version != model.version:
            raise ApiError(
                404, f"model {name!r} has no version {version!r}; served version: {model.version}"
            )
        return model

    def record(self, route: str, status: int, seconds: float) -> None:
        """One finished request, for `/stats` and (when enabled) Prometheus."""
        self.stats.add(route, seconds)
        if self.metrics is not None:
            self.metrics.observe_request(route, status, seconds)

    async def predict(self, model: ServedModel, x: np.ndarray, names: Sequence[str]) -> Predicted:
        """The outputs, and where the time went (also counted for `/metrics`)."""
        outputs, stages = await self.runner.predict(model, x, names)
        if self.metrics is not None:
            self.metrics.observe_stages(model.name, len(x), stages)
        return outputs, stages


def timed_response(
    state: ServiceState, doc: dict[str, Any], elapsed_s: float, stages: Stages
) -> Response:
    """The JSON answer of an inference route, with `Server-Timing` unless it is turned off."""
    headers = {"server-timing": stages.server_timing(elapsed_s)}
    return json_response(doc, headers=headers if state.settings.server_timing else None)
