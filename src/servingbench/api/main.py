"""The app, built in one place: state, lifespan (load + warm models), routers, middleware,
and the raw-ASGI hot path in front of it all."""

from __future__ import annotations

import gc
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager

from fastapi import FastAPI

from servingbench import __version__
from servingbench.api.edge import install_error_handlers
from servingbench.api.hotpath import HotPath
from servingbench.api.models import load_models
from servingbench.api.observability import TimingMiddleware
from servingbench.api.routes import predict, service, v2
from servingbench.api.settings import ApiSettings
from servingbench.api.state import ServiceState

__all__ = ["create_app", "create_app_from_env"]

log = logging.getLogger("servingbench.api")


def _lifespan(state: ServiceState) -> Callable[[FastAPI], AbstractAsyncContextManager[None]]:
    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        settings = state.settings
        state.models = load_models(settings.models)
        if settings.default_model not in state.models:
            raise ValueError(
                f"default model {settings.default_model!r} is not served; "
                f"served: {', '.join(state.models)}"
            )
        log.info("serving %s (predict mode %s)", ", ".join(state.models), settings.predict_mode)
        # Loaded models, FastAPI and numpy leave ~10^5 long-lived objects; each full GC pass
        # walked them all and stalled requests in the tail (figures: README, our service).
        gc.collect()
        gc.freeze()
        try:
            yield
        finally:
            await state.runner.aclose()

    return lifespan


def create_app(settings: ApiSettings | None = None) -> HotPath:
    """Our inference service; models load when the app starts (uvicorn's lifespan).

    The FastAPI app is `.app` of the returned `HotPath`, which serves the inference routes.
    """
    state = ServiceState.create(settings or ApiSettings())
    app = FastAPI(
        title="servingbench inference API",
        version=__version__,
        description="The models MLServer serves, behind `/predict` and the V2 REST protocol.",
        lifespan=_lifespan(state),
    )
    app.state.service = state
    install_error_handlers(app)
    app.include_router(predict.router(state))
    app.include_router(v2.router(state))
    app.include_router(service.router(state))
    app.add_middleware(TimingMiddleware, record=state.record)
    return HotPath(app, state)


def create_app_from_env() -> HotPath:
    """uvicorn's factory for several workers: each worker reads `SERVINGBENCH_API_*` itself."""
    return create_app(ApiSettings())
