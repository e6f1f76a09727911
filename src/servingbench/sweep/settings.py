"""`BenchSettings`: every knob of the sweep, from defaults < env < `--config` file < CLI flags.

Environment variables use the `SERVINGBENCH_BENCH_` prefix; lists may be written `1,2,5` (env,
file or CLI alike) or as JSON. The defaults measure every scenario of every backend at 1, 10
and 50 users, three times each in shuffled order, each point until its windows agree: about
ten minutes on a 2-core machine, server start-up included.
"""

from __future__ import annotations

import math
import secrets
import tomllib
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, ValidationInfo, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from servingbench.loadgen.settings import DEFAULT_TIMEOUT_S, RequestTimeout
from servingbench.models.artifacts import known_models
from servingbench.paths import results_dir
from servingbench.runs.point import known_flags
from servingbench.runs.slo import Slo, parse_slo
from servingbench.runs.stats import Stability
from servingbench.servers import ServerConfig, backends, scenarios
from servingbench.stack.configs import resolve_configs
from servingbench.stack.settings import check_port_keys, default_pinning
from servingbench.sweep.targets import compose_targets, parse_targets

__all__ = ["QUICK_PRESET", "BenchSettings", "load_settings", "parse_int_list"]

QUICK_PRESET: dict[str, Any] = {
    "concurrency": [1, 10],
    "repeats": 1,
    "blocks": 3,
    "warmup_s": 0.5,
    "window_s": 1.0,
    "max_duration_s": 4.0,
}
"""`--quick`: a smoke run; sits between the config file and explicit CLI flags."""


def parse_int_list(value: Any) -> Any:
    """`"1,2,5"` -> `[1, 2, 5]`; anything else is left for pydantic to validate."""
    if isinstance(value, str):
        text = value.strip().strip("[]")
        return [int(part) for part in text.split(",") if part.strip()]
    if isinstance(value, int):
        return [value]
    return value


def _parse_str_list(value: Any) -> Any:
    if isinstance(value, str):
        return [part.strip() for part in value.strip().strip("[]").split(",") if part.strip()]
    return value


def _reject_duplicates(what: str, values: list[Any]) -> None:
    """Each entry names point folders; a repeat would collide with its first run half-way."""
    repeated = [str(v) for v in dict.fromkeys(values) if values.count(v) > 1]
    if repeated:
        raise ValueError(f"{what} {', '.join(repeated)} given more than once; list each once")


IntList = Annotated[list[int], NoDecode]
FloatList = Annotated[list[float], NoDecode]
StrList = Annotated[list[str], NoDecode]
RateList = Annotated[list[float] | Literal["auto"], NoDecode]


def _all_scenarios() -> list[str]:
    return list(scenarios())


def default_scenarios() -> list[str]:
    """The scenarios of the endpoints marked `default_bench`: one path per backend."""
    return [
        e.scenario for backend in backends().values() for e in backend.endpoints if e.default_bench
    ]


class BenchSettings(BaseSettings):
    """One benchmark sweep's parameters (recorded verbatim in meta.json)."""

    model_config = SettingsConfigDict(
        env_prefix="SERVINGBENCH_BENCH_", extra="forbid", allow_inf_nan=False
    )

    scenarios: StrList = Field(
        default_factory=default_scenarios,
        description="load-test scenarios to run, or `all` (default: each backend's fastest path, "
        "the endpoints marked default_bench)",
    )
    server_configs: StrList = Field(
        default_factory=list,
        json_schema_extra={"flag": "--configs"},
        description=(
            "named server configurations from backends/server-configs.toml to run side by side, "
            "e.g. fastapi:batching,mlserver:all or all; a backend not named runs its default"
        ),
    )
    concurrency: IntList = Field(
        default_factory=lambda: [1, 10, 50],
        description="Locust users per point (closed loop: each waits for its answer)",
    )
    models: StrList = Field(
        default_factory=lambda: ["breast-cancer"],
        description="models every scenario serves: the catalog's and those added with "
        "`servingbench add-model`",
    )
    rows: IntList = Field(default_factory=lambda: [1], description="held-out rows per request")
    repeats: int = Field(
        default=3,
        ge=1,
        description="measure every point this many times; the order of series is shuffled in "
        "each repeat, and tables give the median with a 95 % interval across repeats",
    )
    seed: int = Field(
        default_factory=lambda: secrets.randbelow(2**31),
        description="seed of the shuffled order (recorded, so a run's order can be replayed)",
    )
    warmup_s: float = Field(
        default=1.0, ge=0, description="seconds per point before measuring (recorded, not counted)"
    )
    window_s: float = Field(default=1.0, gt=0, description="stability window in seconds")
    stability: Stability = Field(
        default_factory=Stability,
        description="how many last windows must agree, and within which tolerances",
    )
    max_duration_s: float = Field(
        default=6.0,
        gt=0,
        description="cap on a point's measured seconds: a point whose windows never agree "
        "stops here and is flagged unstable",
    )
    timeout_s: RequestTimeout = DEFAULT_TIMEOUT_S
    stop_grace_s: float = Field(
        default=1.0,
        ge=0,
        description="after the stop, how long requests in flight may finish before they are "
        "recorded as incomplete (whole seconds: Locust's --stop-timeout)",
    )
    method: Literal["interleaved", "points"] = Field(
        default="interleaved",
        description="closed loop: `interleaved` runs every series of a comparison in short "
        "slices taking turns (many pairs a few seconds apart, intervals from the pairs); "
        "`points` measures each point until its windows agree, repeated `--repeats` times",
    )
    slice_s: float = Field(
        default=1.2, gt=0, description="interleaved: length of one slice (settle included)"
    )
    settle_s: float = Field(
        default=0.2,
        ge=0,
        description="interleaved: the start of each slice left out (the series had been idle)",
    )
    gap_s: float = Field(
        default=0.15,
        ge=0,
        description="interleaved: time between slices (the servers' metrics are scraped there)",
    )
    blocks: int | None = Field(
        default=None,
        ge=2,
        description="interleaved: measured blocks; each gives every series one slice at each "
        "user count, and a pair of series one ratio. Unset: at least 10, then more until "
        "every headline req/s ratio is within --ratio-precision or --budget is spent",
    )
    ratio_precision: float = Field(
        default=0.03,
        gt=0,
        description="interleaved, --blocks unset: blocks are added until the 95 % interval of "
        "every headline req/s ratio (the fastest series against each other backend's best, "
        "at each user count) lies within this share of it",
    )
    budget_s: float = Field(
        default=540.0,
        gt=0,
        description="interleaved, --blocks unset: the run's wall time (from its start: servers, "
        "parity and files included) within which blocks beyond the first 10 are added; 540 s "
        "keeps a fresh clone's `make bench` (environments and training first) within 10 min",
    )
    load: Literal["closed", "open"] = Field(
        default="closed",
        description="closed: N users that each wait for their answer; open: arrivals at a "
        "rate, whether or not earlier requests were answered (latency from the intended start)",
    )
    rates: RateList = Field(
        default="auto",
        description="open loop: arrival rates (req/s), e.g. 200,400,800; `auto`: fractions "
        "(`auto_fractions`) of each series' closed-loop peak, measured first",
    )
    auto_fractions: FloatList = Field(
        default_factory=lambda: [0.1, 0.25, 0.5, 0.75, 0.9, 1.0, 1.2],
        description="open loop with --rates auto: the rates as fractions of the closed-loop peak",
    )
    arrivals: Literal["poisson", "constant"] = Field(
        default="poisson", description="open loop: arrival process"
    )
    arrival_seed: int = Field(default=1, description="open loop: seed of the Poisson schedule")
    max_in_flight: int = Field(
        default=256,  # loadgen.arrivals.DEFAULT_SLOTS (not imported: it pulls in gevent)
        ge=1,
        description="open loop: most requests in flight (Locust users as slots); an arrival "
        "finding none free is dropped and counted",
    )
    slo: str | None = Field(
        default=None,
        description="open loop: search each series' highest rate meeting this objective, e.g. "
        "p99<=50ms or p50<=5ms,errors<=1% (bracket, then bisect)",
    )
    fail_if: str | None = Field(
        default=None,
        description="gate: fail the run (exit status 3) when a series at a level breaks this "
        "objective, in --slo's words and meaning, e.g. p99<=50ms,errors<=1% (a request that "
        "failed counts as infinitely late)",
    )
    fail_on_flags: StrList = Field(
        default_factory=list,
        description="gate: fail the run (exit status 3) when a point raises one of these "
        "flags, e.g. unstable,client-bound",
    )
    slo_probe_max_s: float = Field(
        default=120.0,
        gt=0,
        description="capacity search: the longest a probe runs to gather the requests that "
        "bound the SLO's tail (p99: 459), so a slow server's capacity rests on a bounded tail",
    )
    slo_precision: float = Field(
        default=0.1,
        gt=0,
        description="capacity search: stop when the failing rate is within this share above "
        "the passing one",
    )
    lateness_bound_ms: float = Field(
        default=1.0,
        gt=0,
        description="open loop: flag `generator-late` when the p99 of send lateness exceeds it",
    )
    generator_workers: int = Field(
        default=0,
        ge=0,
        description="0: one Locust process generates the load; N: a Locust master with N "
        "local worker processes (records reach the master over Locust's messaging)",
    )
    remote_workers: int = Field(
        default=0,
        ge=0,
        description="Locust workers on other machines (`servingbench worker --master HOST`) the "
        "master waits for at every point; they join its `master_port` on `master_bind`",
    )
    master_bind: str = Field(
        default="127.0.0.1",
        description="interface the Locust master listens on for remote workers (0.0.0.0 to "
        "accept them from other hosts)",
    )
    master_port: int = Field(default=5557, ge=1, description="port remote workers join")
    server_cpus: IntList | None = Field(
        default=None,
        description=(
            "cores the servers are pinned to; unset: the first allowed core when >= 2 are "
            "allowed; [] (a flag: '') = no pin"
        ),
    )
    generator_cpus: IntList | None = Field(
        default=None,
        description=(
            "cores Locust is pinned to; unset: the other allowed cores when >= 2 are allowed; "
            "[] (a flag: '') = no pin"
        ),
    )
    contention_percent: float = Field(
        default=5.0,
        ge=0,
        description="flag a point `contended` when other processes (or the run's other servers, "
        "not under load) used more than this share of a core (percent) on the server or "
        "generator cores",
    )
    added_latency_bound_ms: float = Field(
        default=0.1,
        gt=0,
        description="flag a point `client-bound` when the calibrated latency Locust adds at its "
        "load exceeds this (p50, ms)",
    )
    targets: dict[str, str] = Field(
        default_factory=dict,
        description="deployed servers to measure instead of starting any: scenario -> address, "
        'e.g. {"mlserver-rest": "http://10.0.0.5:8080", "mlserver-grpc": "10.0.0.5:8081"}; '
        "`compose` names every scenario at its default local port (the docker compose stack); "
        "`scenarios`, when given, picks among the targets",
    )
    metrics_urls: dict[str, str] = Field(
        default_factory=dict,
        description="targets: scenario -> Prometheus URL, for the server-side timing",
    )
    ca_bundle: Path | None = Field(
        default=None, description="CA bundle (PEM) to verify https:// and grpcs:// targets"
    )
    results_dir: Path = Field(
        default_factory=results_dir, description="runs are written to <results_dir>/<run_id>/"
    )
    run_id: str | None = Field(default=None, description="run folder name; default: a timestamp")
    skip_parity: bool = Field(default=False, description="skip the parity check before the sweep")
    host: str = Field(default="127.0.0.1", description="interface the bench's servers bind")
    ports: dict[str, int] = Field(
        default_factory=dict,
        description="fixed ports of the default configurations, keyed `<backend>.<port>`; "
        "every other port is a free one",
    )
    startup_timeout_s: float = Field(default=120.0, gt=0, description="server readiness limit")

    @field_validator("concurrency", "rows", "server_cpus", "generator_cpus", mode="before")
    @classmethod
    def _int_list(cls, value: Any) -> Any:
        return parse_int_list(value)

    @field_validator("rates", "auto_fractions", mode="before")
    @classmethod
    def _float_list(cls, value: Any, info: ValidationInfo) -> Any:
        if isinstance(value, str) and value.strip() != "auto":
            value = [float(part) for part in value.strip().strip("[]").split(",") if part.strip()]
        elif isinstance(value, int | float):
            value = [float(value)]
        if isinstance(value, list):
            bad = [v for v in value if isinstance(v, int | float) and not math.isfinite(v)]
            if bad:
                # Checked here, not by `allow_inf_nan` alone: NaN would otherwise also be
                # reported against the `auto` branch of the union, burying the real problem.
                example = "200,400,800" if info.field_name == "rates" else "0.5,0.9,1.0"
                raise ValueError(
                    f"{info.field_name} must be finite numbers, got {bad}: write e.g. {example}"
                )
        return value

    @field_validator("rates", "auto_fractions")
    @classmethod
    def _positive_rates(cls, value: Any) -> Any:
        if isinstance(value, list) and (not value or any(v <= 0 for v in value)):
            raise ValueError(f"rates must be positive, got {value}")
        return value

    @field_validator("stop_grace_s")
    @classmethod
    def _whole_seconds(cls, value: float) -> float:
        if value != int(value):  # Locust's --stop-timeout takes none other
            raise ValueError(f"--stop-grace takes whole seconds (got {value:g}), e.g. 1 or 2")
        return value

    @field_validator("slo", "fail_if")
    @classmethod
    def _readable_slo(cls, value: str | None) -> str | None:
        if value is not None:
            parse_slo(value)
        return value

    def objective(self) -> Slo | None:
        return parse_slo(self.slo) if self.slo else None

    @field_validator("fail_on_flags")
    @classmethod
    def _known_flags(cls, value: list[str]) -> list[str]:
        return known_flags(value)

    @field_validator("scenarios", "server_configs", "models", "fail_on_flags", mode="before")
    @classmethod
    def _str_list(cls, value: Any) -> Any:
        return _parse_str_list(value)

    @field_validator("scenarios")
    @classmethod
    def _known_scenarios(cls, value: list[str]) -> list[str]:
        known = _all_scenarios()
        if value == ["all"]:
            return known
        unknown = [s for s in value if s not in known]
        if unknown:
            raise ValueError(f"unknown scenario(s) {unknown}; known: {', '.join(known)}")
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

    @field_validator("concurrency", "rows")
    @classmethod
    def _positive(cls, value: list[int]) -> list[int]:
        if not value or any(v < 1 for v in value):
            raise ValueError(f"values must be >= 1, got {value}")
        _reject_duplicates("value(s)", value)
        return value

    @field_validator("models")
    @classmethod
    def _known_models(cls, value: list[str]) -> list[str]:
        known = known_models()
        unknown = [m for m in value if m not in known]
        if unknown or not value:
            raise ValueError(f"unknown model(s) {unknown}; known: {', '.join(known)}")
        _reject_duplicates("model(s)", value)
        return value

    @field_validator("ports")
    @classmethod
    def _known_ports(cls, value: dict[str, int]) -> dict[str, int]:
        return check_port_keys(value)

    @field_validator("targets", mode="before")
    @classmethod
    def _compose(cls, value: Any) -> Any:
        if value in ("compose", ["compose"]):
            return compose_targets()
        return value

    @model_validator(mode="after")
    def _target_scenarios(self) -> BenchSettings:
        """Only targets are measured: scenarios given (flag, file or env) pick among them, in
        their order; none given, every target is measured."""
        if not self.targets:
            return self
        parse_targets(self.targets, self.metrics_urls)  # TargetError names what is wrong
        if "scenarios" not in self.model_fields_set:
            self.scenarios = list(self.targets)
            return self
        missing = [s for s in self.scenarios if s not in self.targets]
        if missing:
            raise ValueError(
                f"scenarios (--scenarios, config file or env) name {', '.join(missing)}, which "
                f"no target gives (targets: {', '.join(self.targets)}); add --target "
                f"{missing[0]}=ADDRESS, or leave it out of the scenarios"
            )
        self.targets = {s: self.targets[s] for s in self.scenarios}
        return self

    @model_validator(mode="after")
    def _measured_slices(self) -> BenchSettings:
        if self.slice_s - self.settle_s < 0.5:
            raise ValueError(
                f"--slice {self.slice_s:g} s leaves less than 0.5 s measured after the "
                f"{self.settle_s:g} s settle: lengthen the slice or shorten --settle"
            )
        return self

    def interleaved(self) -> bool:
        """Whether closed-loop points run as an interleaved session: the default, with the
        load generated here by one process per series (workers need the points method)."""
        return (
            self.load == "closed"
            and self.method == "interleaved"
            and not (self.generator_workers or self.remote_workers)
        )

    @model_validator(mode="after")
    def _consistent_times(self) -> BenchSettings:
        needed = self.stability.windows * self.window_s
        if self.max_duration_s < needed:
            raise ValueError(
                f"--max-duration {self.max_duration_s:g} s holds fewer than "
                f"{self.stability.windows} windows of {self.window_s:g} s, so no point could be "
                f"judged stable: raise it to at least {needed:g} s or shorten --window"
            )
        if self.timeout_s >= needed:
            raise ValueError(
                f"--timeout {self.timeout_s:g} s must be shorter than the shortest measured "
                f"time ({needed:g} s), or a hang could never show up as timeouts"
            )
        return self

    def configs(self) -> list[ServerConfig]:
        """The configurations to start: those named, each backend at least with its default."""
        return resolve_configs(self.server_configs)

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
