"""Service endpoints: `/health`, `/models`, `/stats` (latency window), `/metrics` (Prometheus)."""

from __future__ import annotations

from fastapi import APIRouter, Response
from prometheus_client import CONTENT_TYPE_LATEST

from servingbench.api.edge import json_response
from servingbench.api.state import ServiceState

__all__ = ["router"]


def router(state: ServiceState) -> APIRouter:
    api = APIRouter(tags=["service"])

    @api.get("/health", summary="Status and loaded models")
    async def health() -> Response:
        return json_response(
            {
                "status": "ok",
                "models": list(state.models),
                "default_model": state.settings.default_model,
                "predict_mode": state.settings.predict_mode,
            }
        )

    @api.get("/models", summary="Served models: features, classes, version, artifact sha256")
    async def models() -> Response:
        return json_response([model.info() for model in state.models.values()])

    @api.get("/stats", summary="Request latency per route over the recent window (ms)")
    async def stats() -> Response:
        return json_response(state.stats.summary())

    metrics = state.metrics
    if metrics is not None:

        @api.get("/metrics", summary="Prometheus metrics")
        async def prometheus() -> Response:
            return Response(metrics.render(), media_type=CONTENT_TYPE_LATEST)

    return api
