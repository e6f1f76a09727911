"""`LoadSettings`: what one Locust process sends, validates and records.

Every field is an environment variable `SERVINGBENCH_LOAD_<FIELD>` (how the sweep configures the
Locust subprocesses); `--model` and `--rows-per-request` are also Locust command-line options
(and web-UI fields) whose defaults are the environment's values, so CLI beats env beats default.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from servingbench.models.catalog import MODELS, get_spec
from servingbench.runs.stats import MeasurePlan
from servingbench.wire import WireName

__all__ = [
    "CLI_FIELDS",
    "ArrivalKind",
    "ChannelPolicy",
    "LoadSettings",
    "add_locust_options",
    "resolve_settings",
]

ChannelPolicy = Literal["per-user", "shared"]
ArrivalKind = Literal["constant", "poisson"]

CLI_FIELDS = ("model", "rows_per_request", "arrival_rate", "arrivals", "arrival_seed")
"""Fields that are also Locust options (and web-UI fields)."""


class LoadSettings(BaseSettings):
    """The load generator's knobs (one object per Locust process)."""

    model_config = SettingsConfigDict(env_prefix="SERVINGBENCH_LOAD_", extra="forbid")

    scenario: str | None = Field(
        default=None, description="Scenario name, for labels (set by the sweep)."
    )
    wire: WireName | None = Field(
        default=None,
        description="Wire format the sweep's own locustfile speaks (loadtests/ files set theirs).",
    )
    model: str = Field(
        default="breast-cancer",
        description="Catalog model to query; its held-out rows and answers are the payloads.",
    )
    rows_per_request: int = Field(
        default=1, ge=1, description="Held-out rows in each request (a batch of N rows)."
    )
    timeout_s: float = Field(
        default=10.0,
        gt=0,
        description="Per-request timeout (HTTP connect/network timeout, gRPC deadline); "
        "a request that exceeds it is recorded as a timeout.",
    )
    records_dir: Path | None = Field(
        default=None,
        description="Folder where the collecting process (the master, or the only one) writes "
        "`records.npz` and `generator.json` at the end; unset = no records are written.",
    )
    measure: MeasurePlan | None = Field(
        default=None,
        description="Measure a point (JSON): warm-up, windows until stable, a cap; the test "
        "stops by itself. Unset: Locust's own `-t` ends the test.",
    )
    grpc_channel: ChannelPolicy = Field(
        default="per-user",
        description="`per-user`: each Locust user opens its own gRPC channel and connection, as "
        "each REST user has its own keep-alive connection; `shared`: one channel per process, "
        "all users multiplexed as HTTP/2 streams on one connection.",
    )
    ca_bundle: Path | None = Field(
        default=None,
        description="CA bundle (PEM) to verify https:// and grpcs:// targets with; unset: the "
        "system's.",
    )
    arrival_rate: float | None = Field(
        default=None,
        gt=0,
        description="Open loop: arrivals per second (all processes together); users become "
        "slots, `-u` the cap on requests in flight. Unset: closed loop.",
    )
    arrivals: ArrivalKind = Field(
        default="poisson", description="Open loop: `poisson` (seeded) or `constant` arrivals."
    )
    arrival_seed: int = Field(default=1, description="Open loop: seed of the Poisson schedule.")
    validate_responses: bool = Field(
        default=True,
        description="Decode every 200 response and compare it with the expected prediction; "
        "false only checks the status (less client CPU, wrong answers go unnoticed).",
    )

    @field_validator("model")
    @classmethod
    def _known_model(cls, value: str) -> str:
        get_spec(value)  # ValueError listing the known models
        return value


def add_locust_options(parser: Any) -> None:
    """Add `--model` and `--rows-per-request` to Locust's parser (also shown in the web UI)."""
    env = LoadSettings()
    parser.add_argument(
        "--model",
        choices=list(MODELS),
        default=env.model,
        help="catalog model to query (env SERVINGBENCH_LOAD_MODEL)",
    )
    parser.add_argument(
        "--rows-per-request",
        type=int,
        default=env.rows_per_request,
        help="held-out rows per request (env SERVINGBENCH_LOAD_ROWS_PER_REQUEST)",
    )
    parser.add_argument(
        "--arrival-rate",
        type=float,
        default=env.arrival_rate,
        include_in_web_ui=True,
        help="open loop: arrivals per second; users become slots, -u the cap on requests in "
        "flight (env SERVINGBENCH_LOAD_ARRIVAL_RATE; unset: closed loop)",
    )
    parser.add_argument(
        "--arrivals",
        choices=["poisson", "constant"],
        default=env.arrivals,
        include_in_web_ui=True,
        help="open loop: arrival process (env SERVINGBENCH_LOAD_ARRIVALS)",
    )
    parser.add_argument(
        "--arrival-seed",
        type=int,
        default=env.arrival_seed,
        include_in_web_ui=True,
        help="open loop: seed of the Poisson schedule (env SERVINGBENCH_LOAD_ARRIVAL_SEED)",
    )


def resolve_settings(parsed_options: Any | None = None) -> LoadSettings:
    """Environment settings with Locust's parsed options (CLI or web UI) laid over them."""
    overrides = {
        name: value
        for name in CLI_FIELDS
        if (value := getattr(parsed_options, name, None)) is not None
    }
    return LoadSettings(**overrides)
