"""Ray Serve as a backend: one deployment with FastAPI ingress answering our `POST /predict` JSON,
from ray[serve] 2.60.

The harness side (`RayBackend`) says how to launch it; the server side (`main`, run as
`python -m servingbench.servers.ray` from `backends/ray/`'s environment) is what a Ray Serve user
writes: a `@serve.deployment` class with `@serve.ingress(app)`, its constructor loading every
model, a pydantic body model (a malformed body is FastAPI's 422). `replicas` sets the
deployment's `num_replicas`; with `max_batch_size > 1`, the model call goes through a
`@serve.batch` method (requests grouped per model, `predict_proba` once per group).

Ray starts its own processes beside the driver (GCS server, raylet, the Serve controller and
proxy actors, a worker per replica); all are children of the launched process, so the sweep
counts them in the server's CPU and memory, as a user pays for them. The dashboard is off, Ray
sees one CPU (the server core) and keeps its session files in the server's own folder. On
SIGTERM the driver shuts Serve and Ray down, so no raylet or GCS process outlives it.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import tempfile
import threading
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

__all__ = ["RayBackend", "RayOptions", "main"]

RAY_ENV = {
    "RAY_USAGE_STATS_ENABLED": "0",  # no usage report (and no network) at start-up
    "RAY_SERVE_PROXY_LOG_LEVEL": "WARNING",
    "RAY_SERVE_ENABLE_TASK_EVENTS": "0",
    "RAY_DEDUP_LOGS": "0",
    # the harness may run under `uv run`; Ray would then ship that project to its workers
    "RAY_ENABLE_UV_RUN_RUNTIME_ENV": "0",
}
"""Ray's own switches: no telemetry, no per-request access logs."""


class RayOptions(BaseModel):
    """What a `[ray.<name>]` configuration may set."""

    model_config = ConfigDict(extra="forbid")

    replicas: int = Field(default=1, ge=1, description="the deployment's num_replicas")
    max_batch_size: int = Field(
        default=1, ge=1, description="> 1: the model call goes through @serve.batch"
    )
    batch_wait_timeout_s: float = Field(
        default=0.002, ge=0, description="@serve.batch's wait for a batch to fill (seconds)"
    )


@register
class RayBackend(Backend):
    name = "ray"
    title = "Ray Serve"
    ports: ClassVar[Mapping[str, int]] = {"http": 8100}
    endpoints = (Endpoint("ray-rest", "predict-json", "http"),)
    options = RayOptions

    def launch(
        self, config: ServerConfig, ports: Mapping[str, int], host: str, workdir: Path
    ) -> LaunchSpec:
        options = RayOptions.model_validate(config.overrides())
        argv = [
            environment_bin(self.name, "python"),
            "-m",
            "servingbench.servers.ray",
            "--host",
            host,
            "--port",
            str(ports["http"]),
            "--replicas",
            str(options.replicas),
            "--max-batch-size",
            str(options.max_batch_size),
            "--batch-wait-timeout-s",
            str(options.batch_wait_timeout_s),
            "--temp-dir",
            str(workdir / "ray"),
        ]
        return LaunchSpec(
            name=config.server_name,
            backend=self.name,
            argv=argv,
            env={**SINGLE_THREAD_ENV, **RAY_ENV},
            ready_urls=[f"http://{host}:{ports['http']}/ready"],
            ports=dict(ports),
            workdir=workdir,
            host=host,
            environment=self.name,
            config={"options": options.model_dump()},
        )


# --- the server side: runs in backends/ray/.venv ------------------------------------------------


class PredictRequest(BaseModel):
    """The `/predict` body (module level: FastAPI resolves the annotation by name)."""

    model_config = ConfigDict(extra="forbid")

    features: FEATURE_ROWS
    model: str | None = None


def _application(args: argparse.Namespace) -> Any:
    """The bound Serve application (built on first use: ray is imported here)."""
    import numpy as np
    from fastapi import FastAPI, HTTPException
    from ray import serve  # type: ignore[import-not-found]

    from servingbench.models.answering import ModelSet, RequestError

    app = FastAPI(openapi_url=None, docs_url=None, redoc_url=None)

    @serve.deployment(
        num_replicas=args.replicas,
        ray_actor_options={"num_cpus": 1 / args.replicas},  # Ray sees the one server core
        max_ongoing_requests=256,
    )
    @serve.ingress(app)
    class ArtifactDeployment:
        """Every catalog model behind `POST /predict`."""

        def __init__(self, max_batch_size: int, batch_wait_timeout_s: float) -> None:
            self.models = ModelSet()
            self.batched = max_batch_size > 1
            if self.batched:
                self.proba_batch.set_max_batch_size(max_batch_size)
                self.proba_batch.set_batch_wait_timeout_s(batch_wait_timeout_s)

        def ready(self) -> dict[str, bool]:
            return {"ready": True}  # a replica answers only once its constructor returned

        async def predict(self, request: PredictRequest) -> dict[str, Any]:
            try:
                name, x = self.models.features(request.features, request.model)
            except RequestError as exc:
                raise HTTPException(exc.status, str(exc)) from None
            proba = (
                await self.proba_batch((name, x)) if self.batched else self.models.proba(name, x)
            )
            return self.models.answer(name, proba)

        # The class travels to its replicas by value, without this module's names: FastAPI
        # gets the body model itself, not its name.
        predict.__annotations__["request"] = PredictRequest
        ready = app.get("/ready", response_model=None)(ready)
        predict = app.post("/predict", response_model=None)(predict)

        # max_batch_size and the wait are set from the options in __init__
        @serve.batch(max_batch_size=2, batch_wait_timeout_s=0.0)  # type: ignore[untyped-decorator]
        async def proba_batch(self, items: list[tuple[str, Any]]) -> list[Any]:
            answers: list[Any] = [None] * len(items)
            for name in {name for name, _ in items}:
                picked = [i for i, (n, _) in enumerate(items) if n == name]
                matrices = [items[i][1] for i in picked]
                proba = self.models.proba(name, np.vstack(matrices))
                bounds = np.cumsum([len(m) for m in matrices])[:-1]
                for i, part in zip(picked, np.split(proba, bounds), strict=True):
                    answers[i] = part
            return answers

    return ArtifactDeployment.bind(args.max_batch_size, args.batch_wait_timeout_s)  # type: ignore[attr-defined]


def main(argv: Sequence[str] | None = None) -> None:
    """Start Ray (one CPU, no dashboard) and Serve on `--host`/`--port`; stop both on SIGTERM."""
    import ray
    from ray import serve

    parser = argparse.ArgumentParser(prog="python -m servingbench.servers.ray")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--replicas", type=int, default=1)
    parser.add_argument("--max-batch-size", type=int, default=1)
    parser.add_argument("--batch-wait-timeout-s", type=float, default=0.002)
    parser.add_argument("--temp-dir", type=Path, default=None)
    args = parser.parse_args(argv)

    temp_dir, scratch = args.temp_dir, None
    # Ray's sockets live in <temp>/session_<date>_<time>_<us>_<pid>/sockets/<name> (about 70
    # bytes below <temp>), and a Unix socket path must fit 107 bytes
    if temp_dir is None or len(str(temp_dir.resolve())) + 70 > 107:
        temp_dir = scratch = Path(tempfile.mkdtemp(prefix="sb-ray-"))
    ray.init(
        num_cpus=1,
        include_dashboard=False,
        _temp_dir=str(temp_dir.resolve()),
        configure_logging=False,
        log_to_driver=False,
    )
    try:
        serve.start(http_options={"host": args.host, "port": args.port})
        serve.run(_application(args), name="servingbench", route_prefix="/")
        print(f"ray serve: ready on http://{args.host}:{args.port} (pid {os.getpid()})")
        stop = threading.Event()  # after ray.init, which installs handlers of its own
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, lambda *_: stop.set())
        stop.wait()
    finally:
        serve.shutdown()
        ray.shutdown()
        if scratch is not None:
            shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    main()
