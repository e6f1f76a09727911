"""LitServe as a backend: one `LitAPI` answering our `POST /predict` JSON, from litserve 0.2.

The harness side (`LitserveBackend`) says how to launch it; the server side (`main`, run as
`python -m servingbench.servers.litserve` from `backends/litserve/`'s environment) is what a
LitServe user writes: a `LitAPI` whose `setup` loads every model, `decode_request` validates the
body (a pydantic model, so a malformed one is FastAPI's 422), `predict` calls `predict_proba`
once and `encode_response` writes our service's document. With `max_batch_size > 1` LitServe's
own batching applies: `batch` groups the requests, `predict` runs once per model in the batch,
`unbatch` hands each request its rows.

LitServe runs the API server (uvicorn) in one process and inference in `workers` worker
processes behind a queue; `/health` answers 200 only once every worker's `setup` has returned.
"""

from __future__ import annotations

import argparse
import warnings
from collections.abc import Mapping, Sequence
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

__all__ = ["LitserveBackend", "LitserveOptions", "main"]

API = "ArtifactAPI"


class LitserveOptions(BaseModel):
    """What a `[litserve.<name>]` configuration may set."""

    model_config = ConfigDict(extra="forbid")

    workers: int = Field(default=1, ge=1, description="inference worker processes (per device)")
    max_batch_size: int = Field(default=1, ge=1, description="requests batched into one predict")
    batch_timeout: float = Field(
        default=0.0, ge=0, description="seconds to wait for a batch to fill (LitServe's unit)"
    )


@register
class LitserveBackend(Backend):
    name = "litserve"
    title = "LitServe"
    ports: ClassVar[Mapping[str, int]] = {"http": 8110}
    endpoints = (Endpoint("litserve-rest", "predict-json", "http"),)
    options = LitserveOptions
    pages: ClassVar[Mapping[str, tuple[str, str]]] = {"info": ("http", "/info")}

    def launch(
        self, config: ServerConfig, ports: Mapping[str, int], host: str, workdir: Path
    ) -> LaunchSpec:
        options = LitserveOptions.model_validate(config.overrides())
        argv = [
            environment_bin(self.name, "python"),
            "-m",
            "servingbench.servers.litserve",
            "--host",
            host,
            "--port",
            str(ports["http"]),
            "--workers",
            str(options.workers),
            "--max-batch-size",
            str(options.max_batch_size),
            "--batch-timeout",
            str(options.batch_timeout),
        ]
        return LaunchSpec(
            name=config.server_name,
            backend=self.name,
            argv=argv,
            env=dict(SINGLE_THREAD_ENV),
            ready_urls=[f"http://{host}:{ports['http']}/health"],
            ports=dict(ports),
            workdir=workdir,
            host=host,
            environment=self.name,
            config={"options": options.model_dump()},
        )


# --- the server side: runs in backends/litserve/.venv -------------------------------------------


def _api_class() -> type[Any]:
    """The `LitAPI` (built on first use: litserve is imported here)."""
    if API in globals():
        return globals()[API]  # type: ignore[no-any-return]
    import litserve as ls  # type: ignore[import-not-found]
    import numpy as np
    from fastapi import HTTPException

    from servingbench.models.answering import ModelSet, RequestError

    class PredictRequest(BaseModel):
        model_config = ConfigDict(extra="forbid")

        features: FEATURE_ROWS
        model: str | None = None

    class ArtifactAPI(ls.LitAPI):  # type: ignore[misc]
        """Every catalog model behind `POST /predict`."""

        def setup(self, device: str) -> None:
            self.models = ModelSet()

        def decode_request(self, request: PredictRequest, **kwargs: Any) -> tuple[str, Any]:
            try:
                return self.models.features(request.features, request.model)
            except RequestError as exc:
                raise HTTPException(exc.status, str(exc)) from None

        def batch(self, inputs: list[tuple[str, Any]]) -> list[tuple[str, Any]]:
            return inputs  # grouped by model in predict

        def predict(self, x: Any, **kwargs: Any) -> Any:
            if isinstance(x, tuple):  # one request
                name, rows = x
                return name, self.models.proba(name, rows)
            answers: list[Any] = [None] * len(x)
            for name in {name for name, _ in x}:
                picked = [i for i, (n, _) in enumerate(x) if n == name]
                matrices = [x[i][1] for i in picked]
                proba = self.models.proba(name, np.vstack(matrices))
                bounds = np.cumsum([len(m) for m in matrices])[:-1]
                for i, part in zip(picked, np.split(proba, bounds), strict=True):
                    answers[i] = (name, part)
            return answers

        def unbatch(self, output: list[Any]) -> list[Any]:
            return output

        def encode_response(self, output: tuple[str, Any], **kwargs: Any) -> dict[str, Any]:
            name, proba = output
            return self.models.answer(name, proba)

    # LitServe reads the body model from the annotation, which must be the class itself
    ArtifactAPI.decode_request.__annotations__["request"] = PredictRequest
    ArtifactAPI.__module__ = __name__  # LitServe's spawned workers unpickle it by name
    ArtifactAPI.__qualname__ = API
    PredictRequest.__module__ = __name__
    PredictRequest.__qualname__ = "PredictRequest"
    globals()["PredictRequest"] = PredictRequest
    globals()[API] = ArtifactAPI
    return ArtifactAPI


def __getattr__(name: str) -> Any:
    """`ArtifactAPI` (and its body model), built when first asked for: in a spawned worker,
    by unpickling."""
    if name in (API, "PredictRequest"):
        _api_class()
        return globals()[name]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def main(argv: Sequence[str] | None = None) -> None:
    """Serve every model of model-settings/ on `--host`/`--port` until interrupted."""
    import litserve as ls

    parser = argparse.ArgumentParser(prog="python -m servingbench.servers.litserve")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--max-batch-size", type=int, default=1)
    parser.add_argument("--batch-timeout", type=float, default=0.0)
    args = parser.parse_args(argv)
    # batch/unbatch are defined for the batching configurations; unused at max_batch_size 1
    warnings.filterwarnings("ignore", message="The LitServer has both batch and unbatch")
    api = _api_class()(max_batch_size=args.max_batch_size, batch_timeout=args.batch_timeout)
    server = ls.LitServer(api, accelerator="cpu", devices=1, workers_per_device=args.workers)
    server.run(
        host=args.host,
        port=args.port,
        log_level="warning",  # no access line per request
        generate_client_file=False,
        access_log=False,
    )


if __name__ == "__main__":
    main()
