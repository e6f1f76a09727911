"""`LoadSettings`: what one Locust process sends, validates and records.

Every field is an environment variable `SERVINGBENCH_LOAD_<FIELD>` (how the sweep configures the
Locust subprocesses); `--model` and `--rows-per-request` are also Locust command-line options
(and web-UI fields) whose defaults are the environment's values, so CLI beats env beats default.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal, get_args, get_origin

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from servingbench.models.artifacts import known_models
from servingbench.runs.stats import MeasurePlan

__all__ = [
    "CLI_FIELDS",
    "DEFAULT_TIMEOUT_S",
    "ArrivalKind",
    "ChannelPolicy",
    "LoadSettings",
    "RequestTimeout",
    "add_locust_options",
    "resolve_settings",
    "user_class_name",
]

ChannelPolicy = Literal["per-user", "shared"]
ArrivalKind = Literal["constant", "poisson"]

DEFAULT_TIMEOUT_S = 2.0
"""The per-request timeout of a sweep point and of a locustfile run by hand alike: far above any
loopback answer, and shorter than a point's measured time (`BenchSettings` checks), so a server
that hangs shows up as timeouts inside the point."""
RequestTimeout = Annotated[
    float,
    Field(
        gt=0,
        description="Per-request timeout in seconds (HTTP connect and read, gRPC deadline): a "
        "request that exceeds it is recorded as a timeout; shorter than the measured time, so a "
        "hang shows as timeouts instead of vanishing.",
    ),
]

CLI_FIELDS: dict[str, str] = {
    "model": "--model",
    "rows_per_request": "--rows-per-request",
    "timeout_s": "--request-timeout",
    "grpc_channel": "--grpc-channel",
    "ca_bundle": "--ca-bundle",
    "arrival_rate": "--arrival-rate",
    "arrivals": "--arrivals",
    "arrival_seed": "--arrival-seed",
}
"""Fields that are also Locust options, by flag: shown in the web UI, and sent by a master to
its workers (local or on other hosts), which is how every worker sends the same load."""


class LoadSettings(BaseSettings):
    """The load generator's knobs (one object per Locust process)."""

    model_config = SettingsConfigDict(env_prefix="SERVINGBENCH_LOAD_", extra="forbid")

    model: str = Field(
        default="breast-cancer",
        description="Catalog model to query; its held-out rows and answers are the payloads.",
    )
    rows_per_request: int = Field(
        default=1, ge=1, description="Held-out rows in each request (a batch of N rows)."
    )
    timeout_s: RequestTimeout = DEFAULT_TIMEOUT_S
    records_dir: Path | None = Field(
        default=None,
        description="Folder where the collecting process (the master, or the only one) writes "
        "its records and report at the end (`runs.layout.GeneratorFiles`); unset = no records "
        "are written.",
    )
    metrics_url: str | None = Field(
        default=None,
        description="The server's Prometheus endpoint: scraped when the measured interval starts "
        "and ends (saved beside the records).",
    )
    measure: MeasurePlan | None = Field(
        default=None,
        description="Measure a point (JSON): warm-up, windows until stable, a cap; the test "
        "stops by itself. Unset: Locust's own `-t` ends the test.",
    )
    schedule_file: Path | None = Field(
        default=None,
        description="Interleaved load: send only in the slices this file lists (written by the "
        "sweep once `<file>.ready` appears; see `loadgen.schedule`). Unset: send all the time.",
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
        known = known_models()
        if value not in known:
            raise ValueError(f"unknown model {value!r}; known models: {', '.join(known)}")
        return value


def add_locust_options(parser: Any) -> None:
    """Every field of `CLI_FIELDS` as a Locust option, its default the environment's value."""
    env = LoadSettings()
    for name, flag in CLI_FIELDS.items():
        field = LoadSettings.model_fields[name]
        default = getattr(env, name)
        kind: dict[str, Any] = {}
        choices = get_args(field.annotation) if get_origin(field.annotation) is Literal else ()
        if name == "model":
            choices = tuple(known_models())
        if choices:
            kind["choices"] = list(choices)
        elif name in ("rows_per_request", "arrival_seed"):
            kind["type"] = int
        elif name in ("timeout_s", "arrival_rate"):
            kind["type"] = float
        parser.add_argument(
            flag,
            dest=name,
            default=str(default) if isinstance(default, Path) else default,
            help=f"{field.description} (env SERVINGBENCH_LOAD_{name.upper()})",
            **kind,
        )


def resolve_settings(parsed_options: Any | None = None) -> LoadSettings:
    """Environment settings with Locust's parsed options (CLI, web UI, master) laid over them."""
    overrides = {
        name: value
        for name in CLI_FIELDS
        if (value := getattr(parsed_options, name, None)) is not None
    }
    return LoadSettings(**overrides)


def user_class_name(name: str) -> str:
    """A user class's name from a scenario or wire format: `v2-grpc` -> `V2GrpcUser`; the sweep's
    locustfile names its users this way, and the sweep asks Locust for them by name."""
    return "".join(part.capitalize() for part in name.split("-")) + "User"
