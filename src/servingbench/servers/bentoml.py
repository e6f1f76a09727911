"""BentoML as a backend: one `@bentoml.service` answering our `POST /predict` JSON, from
bentoml 1.4.

The harness side (`BentomlBackend`) launches `bentoml serve servingbench.servers.bentoml:
ArtifactService` from `backends/bentoml/`'s environment, as a BentoML user starts a service.
The service class is what such a user writes: its constructor loads every model, an
`@bentoml.api` method takes the body's fields as typed parameters (BentoML validates them with
pydantic: a malformed body is its 400), calls `predict_proba` once and returns our service's
document. It is built when BentoML imports it (module `__getattr__`), so the harness, which
imports this module to register the backend, never imports bentoml.

A configuration's options reach the class through `SERVINGBENCH_BENTOML_*` variables (BentoML's
worker processes import the service again, and see the same environment): `workers` is
`@bentoml.service(workers=...)`; `max_batch_size > 1` turns on BentoML's adaptive batching: the
API method hands each request's rows to a `@bentoml.api(batchable=True)` method of the same
service, called through the service itself (`self.to_async`), which is how BentoML batches
calls; one such method per model, as a batchable method takes one argument.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field

from servingbench.servers import register
from servingbench.servers.base import (
    SINGLE_THREAD_ENV,
    Backend,
    Endpoint,
    LaunchSpec,
    ServerConfig,
    environment_bin,
)
from servingbench.wire import FEATURE_ROWS

__all__ = ["BentomlBackend", "BentomlOptions"]

OPTIONS_ENV = "SERVINGBENCH_BENTOML_OPTIONS"
SERVICE = "ArtifactService"


class BentomlOptions(BaseModel):
    """What a `[bentoml.<name>]` configuration may set."""

    model_config = ConfigDict(extra="forbid")

    workers: int = Field(default=1, ge=1, description="@bentoml.service(workers=...) processes")
    max_batch_size: int = Field(
        default=1, ge=1, description="> 1: adaptive batching of the model call, up to this size"
    )
    max_latency_ms: int = Field(
        default=60000,
        ge=1,
        description="adaptive batching's latency budget in ms: BentoML refuses (503) a request "
        "it expects to exceed it",
    )


@register
class BentomlBackend(Backend):
    name = "bentoml"
    title = "BentoML"
    ports: ClassVar[Mapping[str, int]] = {"http": 3000}
    endpoints = (Endpoint("bentoml-rest", "predict-json", "http"),)
    options = BentomlOptions
    pages: ClassVar[Mapping[str, tuple[str, str]]] = {
        "docs": ("http", "/docs"),
        "metrics": ("http", "/metrics"),
    }

    def launch(
        self, config: ServerConfig, ports: Mapping[str, int], host: str, workdir: Path
    ) -> LaunchSpec:
        options = BentomlOptions.model_validate(config.overrides())
        argv = [
            environment_bin(self.name, "bentoml"),
            "serve",
            f"{__name__}:{SERVICE}",
            "--host",
            host,
            "--port",
            str(ports["http"]),
        ]
        env = {
            **SINGLE_THREAD_ENV,
            OPTIONS_ENV: options.model_dump_json(),
            "BENTOML_HOME": str(workdir / "bentoml-home"),  # not ~/bentoml
            "BENTOML_DO_NOT_TRACK": "True",  # no usage analytics
        }
        return LaunchSpec(
            name=config.server_name,
            backend=self.name,
            argv=argv,
            env=env,
            ready_urls=[f"http://{host}:{ports['http']}/readyz"],
            ports=dict(ports),
            workdir=workdir,
            host=host,
            environment=self.name,
            config={"options": options.model_dump()},
        )


# --- the server side: runs in backends/bentoml/.venv --------------------------------------------


def _service() -> Any:
    """The BentoML service class for the options in the environment."""
    import bentoml  # type: ignore[import-not-found]
    import numpy as np

    from servingbench.models.answering import ModelSet, RequestError
    from servingbench.models.artifacts import served_models

    options = BentomlOptions.model_validate(json.loads(os.environ.get(OPTIONS_ENV, "{}")))
    batching = options.max_batch_size > 1

    class ArtifactService:
        """Every catalog model behind `POST /predict`."""

        def __init__(self) -> None:
            self.models = ModelSet()

        def __is_ready__(self) -> bool:
            return bool(self.models.predictors)  # /readyz: every model loaded

        @bentoml.api(route="/predict")  # type: ignore[untyped-decorator]
        async def predict(self, features: FEATURE_ROWS, model: str | None = None) -> dict[str, Any]:
            try:
                name, x = self.models.features(features, model)
            except RequestError as exc:
                raise _error(exc) from None
            if batching:
                proba = await getattr(self.to_async, _batch_name(name))(x)  # type: ignore[attr-defined]
            else:
                proba = self.models.proba(name, x)
            return self.models.answer(name, proba)

    def batch_method(model: str) -> Any:
        def proba(self: Any, x: np.ndarray) -> np.ndarray:
            return self.models.proba(model, x)  # type: ignore[no-any-return]

        proba.__name__ = _batch_name(model)
        proba.__annotations__ = {"x": np.ndarray, "return": np.ndarray}  # objects, not names
        return bentoml.api(
            batchable=True,
            max_batch_size=options.max_batch_size,
            max_latency_ms=options.max_latency_ms,
            route=f"/batch/{model}",
        )(proba)

    if batching:
        for model in served_models():
            setattr(ArtifactService, _batch_name(model), batch_method(model))
    ArtifactService.__module__ = __name__
    ArtifactService.__qualname__ = SERVICE
    return bentoml.service(
        name="servingbench",
        workers=options.workers,
        logging={"access": {"enabled": False}},
    )(ArtifactService)


def _batch_name(model: str) -> str:
    return "proba_" + model.replace("-", "_")


def _error(exc: Any) -> Exception:
    """BentoML's own exception for a RequestError's status (its 4xx with the message)."""
    from bentoml.exceptions import BentoMLException, InvalidArgument, NotFound  # type: ignore[import-not-found]

    by_status: dict[int, type[BentoMLException]] = {404: NotFound, 422: InvalidArgument}
    return by_status.get(exc.status, InvalidArgument)(str(exc))  # type: ignore[no-any-return]


def __getattr__(name: str) -> Any:
    """`servingbench.servers.bentoml:ArtifactService`, built when BentoML imports it."""
    if name == SERVICE:
        service = _service()
        globals()[SERVICE] = service
        return service
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
