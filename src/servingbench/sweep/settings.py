"""`BenchSettings`: every knob of the sweep, from defaults < env < `--config` file < CLI flags.

Environment variables use the `SERVINGBENCH_BENCH_` prefix; lists may be written `1,2,5` (env,
file or CLI alike) or as JSON. The defaults keep the full sweep (4 scenarios x 6 levels) near five
minutes on a 2-core machine, server start-up included.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Annotated, Any

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from servingbench.catalog import MODELS
from servingbench.loadgen.scenarios import SCENARIOS
from servingbench.paths import results_dir
from servingbench.runs.stats import STABILITY_WINDOWS
from servingbench.stack.configs import ServerConfig, resolve_configs
from servingbench.stack.settings import default_pinning

__all__ = [
    "ALL_SCENARIOS",
    "MIN_WINDOWS",
    "QUICK_PRESET",
    "BenchSettings",
    "load_settings",
    "parse_int_list",
]

ALL_SCENARIOS = tuple(SCENARIOS)

MIN_WINDOWS = STABILITY_WINDOWS
"""Whole windows a point needs before `runs.stats.is_stable` can judge it."""

QUICK_PRESET: dict[str, Any] = {
    "concurrency": [1, 10],
    "duration_s": 3.5,
    "warmup_s": 1.0,
    "window_s": 1.0,
}
"""`--quick`: a smoke run; sits between the config file and explicit CLI flags.

3.5 s of 1 s windows: windows count from the first measured request, which starts a little
after the warm-up ends, so exactly 3 s could yield only 2 whole windows.
"""


def parse_int_list(value: Any) -> Any:
    """`"1,2,5"` -> `[1, 2, 5]`; anything else is left for pydantic to validate."""
    if isinstance(value, str):
        text = value.strip().strip("[]")
        return [int(part) for part in text.split(",") if part.strip()]
    return value


def _reject_duplicates(what: str, values: list[Any]) -> None:
    """Each entry names a point folder; a repeat would collide with its first run half-way."""
    repeated = [str(v) for v in dict.fromkeys(values) if values.count(v) > 1]
    if repeated:
        raise ValueError(
            f"{what} {', '.join(repeated)} given more than once; each would reuse the same "
            "point folder, so list each once"
        )


def _parse_str_list(value: Any) -> Any:
    if isinstance(value, str):
        return [part.strip() for part in value.strip().strip("[]").split(",") if part.strip()]
    return value


IntList = Annotated[list[int], NoDecode]
StrList = Annotated[list[str], NoDecode]


class BenchSettings(BaseSettings):
    """One benchmark sweep's parameters (recorded verbatim in meta.json)."""

    model_config = SettingsConfigDict(env_prefix="SERVINGBENCH_BENCH_", extra="forbid")

    server_configs: StrList = Field(
        default_factory=list,
        description=(
            "named server configurations from backends/server-configs.toml to run side by side, "
            "e.g. fastapi:batching,mlserver:all or all; a backend not named runs its default"
        ),
    )
    scenarios: StrList = Field(
        default_factory=lambda: list(ALL_SCENARIOS),
        description="load-test scenarios to run, in this order within each concurrency level",
    )
    concurrency: IntList = Field(
        default_factory=lambda: [1, 2, 5, 10, 20, 50],
        description="Locust users per point (closed loop: each waits for its answer)",
    )
    duration_s: float = Field(default=8.0, gt=0, description="measured seconds per point")
    warmup_s: float = Field(
        default=3.0, ge=0, description="seconds per point before measuring (requests discarded)"
    )
    rows_per_request: int = Field(default=1, ge=1, description="held-out rows in each request")
    model: str = Field(default="breast-cancer", description="catalog model every scenario serves")
    server_cpus: IntList | None = Field(
        default=None,
        description=(
            "cores the servers are pinned to; unset: the first allowed core when >= 2 are "
            "allowed; [] = no pin"
        ),
    )
    generator_cpus: IntList | None = Field(
        default=None,
        description=(
            "cores Locust is pinned to; unset: the other allowed cores when >= 2 are allowed; "
            "[] = no pin"
        ),
    )
    processes: int = Field(
        default=1, ge=1, description="Locust generator processes (>1 uses --processes)"
    )
    window_s: float = Field(default=2.0, gt=0, description="stability window length in seconds")
    results_dir: Path = Field(
        default_factory=results_dir, description="runs are written to <results_dir>/<run_id>/"
    )
    run_id: str | None = Field(default=None, description="run folder name; default: a timestamp")
    skip_parity: bool = Field(default=False, description="skip the parity check before the sweep")
    host: str = Field(default="127.0.0.1", description="interface the bench's servers bind")
    api_port: int = Field(
        default=0, ge=0, description="FastAPI port for the bench's own server; 0 = a free port"
    )
    mlserver_http_port: int = Field(default=0, ge=0, description="MLServer REST port; 0 = free")
    mlserver_grpc_port: int = Field(default=0, ge=0, description="MLServer gRPC port; 0 = free")
    mlserver_metrics_port: int = Field(default=0, ge=0, description="MLServer metrics; 0 = free")
    startup_timeout_s: float = Field(default=120.0, gt=0, description="server readiness limit")

    @field_validator("concurrency", "server_cpus", "generator_cpus", mode="before")
    @classmethod
    def _int_list(cls, value: Any) -> Any:
        return parse_int_list(value)

    @field_validator("scenarios", "server_configs", mode="before")
    @classmethod
    def _str_list(cls, value: Any) -> Any:
        return _parse_str_list(value)

    @field_validator("scenarios")
    @classmethod
    def _known_scenarios(cls, value: list[str]) -> list[str]:
        unknown = [s for s in value if s not in ALL_SCENARIOS]
        if unknown:
            raise ValueError(f"unknown scenario(s) {unknown}; known: {', '.join(ALL_SCENARIOS)}")
        if not value:
            raise ValueError("at least one scenario is needed")
        _reject_duplicates("scenario(s)", value)
        return value

    @field_validator("server_configs")
    @classmethod
    def _known_configs(cls, value: list[str]) -> list[str]:
        resolve_configs(value)  # raises ValueError listing the known names
        _reject_duplicates("server configuration(s)", value)
        return value

    def configs(self) -> list[ServerConfig]:
        """The configurations to start, each backend at least with its default."""
        return resolve_configs(self.server_configs)

    @field_validator("concurrency")
    @classmethod
    def _positive_levels(cls, value: list[int]) -> list[int]:
        if not value or any(v < 1 for v in value):
            raise ValueError(f"concurrency levels must be >= 1, got {value}")
        _reject_duplicates("concurrency level(s)", value)
        return value

    @field_validator("model")
    @classmethod
    def _known_model(cls, value: str) -> str:
        if value not in MODELS:
            raise ValueError(f"unknown model {value!r}; known: {', '.join(MODELS)}")
        return value

    @model_validator(mode="after")
    def _enough_windows(self) -> BenchSettings:
        if self.duration_s < MIN_WINDOWS * self.window_s:
            raise ValueError(
                f"duration {self.duration_s:g} s holds fewer than {MIN_WINDOWS} whole windows of "
                f"{self.window_s:g} s, so no point could be judged stable: lengthen --duration "
                f"(to at least {MIN_WINDOWS * self.window_s:g} s) or shorten --window"
            )
        return self

    def pinning(self) -> tuple[list[int] | None, list[int] | None]:
        """(server cores, generator cores); None = not pinned. Unset: `default_pinning()`."""
        auto_server, auto_generator = default_pinning()

        def resolve(explicit: list[int] | None, default: list[int] | None) -> list[int] | None:
            return (explicit or None) if explicit is not None else default

        return resolve(self.server_cpus, auto_server), resolve(self.generator_cpus, auto_generator)


def load_settings(
    config: Path | None = None,
    overrides: dict[str, Any] | None = None,
    quick: bool = False,
) -> BenchSettings:
    """Layer the sources: defaults < env < TOML file < `--quick` preset < explicit CLI overrides.

    pydantic-settings already ranks constructor arguments above the environment, so the file,
    the preset and the CLI are merged into the constructor's arguments in that order.
    """
    values: dict[str, Any] = {}
    if config is not None:
        try:
            values.update(tomllib.loads(config.read_text()))
        except FileNotFoundError:
            raise FileNotFoundError(f"config file {config} not found") from None
        except tomllib.TOMLDecodeError as exc:
            raise ValueError(f"config file {config} is not valid TOML: {exc}") from None
    if quick:
        values.update(QUICK_PRESET)
    values.update({k: v for k, v in (overrides or {}).items() if v is not None})
    return BenchSettings(**values)
