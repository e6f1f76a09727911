"""Settings of our FastAPI inference service (`SERVINGBENCH_API_*`; CLI flags override)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = ["ApiOptions", "ApiSettings", "PredictMode"]

PredictMode = Literal["event-loop", "threadpool", "batching"]


class ApiOptions(BaseModel):
    """How the service predicts: what a named configuration (`[fastapi.<name>]`) may set."""

    model_config = ConfigDict(extra="forbid")

    predict_mode: PredictMode = Field(
        "event-loop",
        description="Where predictions run: in the event loop (fastest for sub-ms models), in "
        "Starlette's thread pool, or dynamically batched per model.",
    )
    batch_max_size: int = Field(64, gt=0, description="Batching mode: most rows in one batch.")
    batch_max_wait_ms: float = Field(
        2.0,
        ge=0,
        description="Batching mode: longest a batch keeps collecting once others arrive with it; "
        "a request that arrives alone is never held back.",
    )
    workers: int = Field(1, gt=0, description="uvicorn worker processes.")
    metrics_enabled: bool = Field(True, description="Serve Prometheus metrics on `/metrics`.")
    server_timing: bool = Field(
        True,
        description="Answer inference requests with a W3C `Server-Timing` header (app, model, "
        "queue durations), so each request's server time can be recorded by the client.",
    )
    max_body_bytes: int = Field(
        1 << 26,
        gt=0,
        description="Largest request body accepted (413 beyond, checked as it streams).",
    )
    max_rows: int = Field(4096, gt=0, description="Most rows one request may carry (413 beyond).")


class ApiSettings(BaseSettings, ApiOptions):
    """One process's configuration; the fastapi backend passes it as environment variables."""

    model_config = SettingsConfigDict(env_prefix="SERVINGBENCH_API_", extra="ignore")

    host: str = Field("127.0.0.1", description="Interface uvicorn binds to.")
    port: int = Field(8000, ge=0, le=65535, description="TCP port uvicorn listens on.")
    models: list[str] | None = Field(
        None,
        description="Models to serve (JSON list); None serves every model in model-settings/.",
    )
    default_model: str = Field(
        "iris", description="Model `/predict` uses when the body names none."
    )
    log_level: str = Field("warning", description="uvicorn and service log level.")
