"""The backend plug-in interface: what servingbench must know to start, probe and load a server.

A backend is one module in `servingbench.servers` that subclasses `Backend` and decorates it with
`@register`. It declares its ports (with the defaults `serve-all` uses), the options a named
configuration may set in `backends/server-configs.toml`, the wire formats it speaks (each one a
load-test scenario, checked by parity), and how to launch it. Everything else, from `serve-all`
to the report, iterates over the registry; nothing outside a backend's module names it.
"""

from __future__ import annotations

import sys
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict

from servingbench.paths import project_root
from servingbench.wire import WIRE_FORMATS, WireName

__all__ = [
    "DEFAULT_CONFIG",
    "SINGLE_THREAD_ENV",
    "Backend",
    "ClientLibrary",
    "Endpoint",
    "LaunchSpec",
    "NoOptions",
    "Scenario",
    "ServerConfig",
    "Stage",
    "StageMetric",
    "address",
    "backend_scenarios",
    "check_options",
    "endpoint_address",
    "endpoint_rows",
    "environment_bin",
    "environment_dir",
    "harness_bin",
    "metrics_url",
    "page_url",
]

DEFAULT_CONFIG = "default"

SINGLE_THREAD_ENV = {"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
"""Thread pools sized to the pinned core: more threads than cores only adds contention."""

ClientLibrary = Literal["urllib", "tritonclient"]
"""How parity talks a wire format: raw bytes over urllib, or NVIDIA's reference V2 client."""


@dataclass(frozen=True)
class Endpoint:
    """One wire format a backend speaks on one of its ports: a scenario, and its parity checks."""

    scenario: str
    """Load-test scenario name, e.g. `mlserver-grpc` (also `loadtests/mlserver_grpc.py`)."""
    wire: WireName
    port: str
    """The name of the backend port it listens on (a key of `Backend.ports`)."""
    parity_clients: tuple[ClientLibrary, ...] = ("urllib",)
    default_bench: bool = True
    """In `make bench`'s default scenario set: one path per backend, the one its users pick
    for speed, so the default run stays within its time budget; `--scenarios all` runs every
    endpoint."""


Stage = Literal["server", "model", "queue"]


@dataclass(frozen=True)
class StageMetric:
    """Where a backend counts one stage of a request's server time: a Prometheus histogram (or
    summary) family, the labels that pick the series (`{model}` is filled in), and the wire
    formats it applies to (all when empty)."""

    stage: Stage
    family: str
    labels: Mapping[str, str] = field(default_factory=dict)
    wires: tuple[WireName, ...] = ()
    note: str = ""
    """What the stage includes, in words (the report shows it)."""

    def applies(self, wire: str) -> bool:
        return not self.wires or wire in self.wires


@dataclass(frozen=True)
class Scenario:
    """A backend spoken to in one wire format: what one Locust user class loads."""

    name: str
    backend: str
    wire: WireName
    port: str
    default_port: int

    @property
    def default_host(self) -> str:
        """Where `serve-all` puts it: `http://127.0.0.1:<port>`, or `127.0.0.1:<port>` for gRPC."""
        return address(self.wire, "127.0.0.1", self.default_port)


def address(wire: WireName, host: str, port: int) -> str:
    """`http://host:port` for HTTP wire formats, `host:port` for gRPC."""
    if WIRE_FORMATS[wire].transport == "grpc":
        return f"{host}:{port}"
    return f"http://{host}:{port}"


@dataclass(frozen=True)
class ServerConfig:
    """One named way to run a backend: a table `[<backend>.<name>]` of server-configs.toml."""

    backend: str
    name: str
    options: BaseModel = field(compare=False)  # a configuration is known by its key
    description: str = field(default="", compare=False)

    @property
    def key(self) -> str:
        return f"{self.backend}:{self.name}"

    @property
    def server_name(self) -> str:
        """The process name: `mlserver-default`, `fastapi-batching`."""
        return f"{self.backend}-{self.name}"

    def overrides(self) -> dict[str, Any]:
        """What the table set explicitly (recorded in meta.json)."""
        return self.options.model_dump(mode="json", exclude_unset=True)


@dataclass(frozen=True)
class LaunchSpec:
    """A server process to start: command, environment, readiness URLs, ports, what to record."""

    name: str
    backend: str
    argv: list[str]
    env: dict[str, str]
    ready_urls: list[str]
    ports: dict[str, int]
    workdir: Path
    """The server's own folder: its working directory, and where rendered files go."""
    host: str = "127.0.0.1"
    environment: str | None = None
    """The backend environment `argv[0]` comes from (`backends/<environment>/.venv`), if any."""
    config: dict[str, Any] = field(default_factory=dict)
    """What the launch rendered or chose (MLServer's merged settings, workers, ...): meta.json."""


def environment_dir(name: str) -> Path:
    """`backends/<name>/`: the backend's own uv project (pyproject.toml, uv.lock, .venv)."""
    return project_root() / "backends" / name


def environment_bin(name: str, program: str) -> str:
    """A program of backend `name`'s own environment, e.g. `backends/mlserver/.venv/bin/mlserver`.

    Each server runs from its own locked environment, so its pins never move the load
    generator's or another server's versions. The Makefile builds them (`make setup`); the
    launcher checks they exist (`stack.environments`).
    """
    return str(environment_dir(name) / ".venv" / "bin" / program)


def harness_bin(program: str) -> str:
    """A console script of the harness's own environment (the running interpreter's)."""
    return str(Path(sys.executable).with_name(program))


class NoOptions(BaseModel):
    """A backend whose configurations set nothing but a description."""

    model_config = ConfigDict(extra="forbid")


class Backend(ABC):
    """A way of serving the models. Subclass it in one module and decorate it with `@register`.

    It says only what cannot be derived: its names, ports, wire formats, options, where its
    timings and pages are, and how to launch it. Its environment is `backends/<name>/` when that
    folder has a pyproject.toml (`stack.environments`); its scenarios, addresses and `serve-all`
    rows follow from the endpoints (the functions below).
    """

    name: ClassVar[str]
    """Short id used in configuration keys, scenario names and reports (`mlserver`)."""
    title: ClassVar[str]
    """How reports name it (`MLServer`)."""
    ports: ClassVar[Mapping[str, int]]
    """Port name -> the default `serve-all` uses; the sweep picks free ports instead."""
    endpoints: ClassVar[tuple[Endpoint, ...]]
    options: ClassVar[type[BaseModel]] = NoOptions
    """What a configuration table may set; unknown keys are refused (`extra="forbid"`)."""
    ours: ClassVar[bool] = False
    """This project's own service (reports compare it against the stock servers)."""
    stage_metrics: ClassVar[tuple[StageMetric, ...]] = ()
    """Where its server-side timings come from (scraped before and after each point)."""
    pages: ClassVar[Mapping[str, tuple[str, str]]] = {}
    """Pages a user may open, name -> (port name, path); `metrics` is the Prometheus endpoint
    the sweep scrapes. `serve-all` lists them beside the endpoints."""

    @abstractmethod
    def launch(
        self, config: ServerConfig, ports: Mapping[str, int], host: str, workdir: Path
    ) -> LaunchSpec:
        """The process serving every model of `model-settings/` under `config` on `ports`.

        `workdir` is this server's own folder (rendered files may go there); it is also the
        process's working directory. Its `ready_urls` must answer only once every model is
        loaded.
        """


# --- what follows from a backend's declarations -------------------------------------------------


def backend_scenarios(backend: Backend) -> list[Scenario]:
    """One load-test scenario per endpoint, at the backend's default port."""
    return [
        Scenario(e.scenario, backend.name, e.wire, e.port, backend.ports[e.port])
        for e in backend.endpoints
    ]


def endpoint_address(endpoint: Endpoint, host: str, ports: Mapping[str, int]) -> str:
    """Where a client of `endpoint` connects: `http://host:port`, or `host:port` for gRPC."""
    return address(endpoint.wire, host, ports[endpoint.port])


def page_url(backend: Backend, page: str, host: str, ports: Mapping[str, int]) -> str | None:
    """The URL of one of the backend's `pages` on these ports, None when it has no such page."""
    if page not in backend.pages:
        return None
    port, path = backend.pages[page]
    return f"http://{host}:{ports[port]}{path}"


def metrics_url(backend: Backend, host: str, ports: Mapping[str, int]) -> str | None:
    """Its Prometheus endpoint on these ports, if it has one."""
    return page_url(backend, "metrics", host, ports)


def endpoint_rows(
    backend: Backend, host: str, ports: Mapping[str, int], model: str
) -> list[tuple[str, str]]:
    """(what, address) rows for `serve-all`'s table: each endpoint, then each page."""
    rows = []
    for e in backend.endpoints:
        wire = WIRE_FORMATS[e.wire]
        where = endpoint_address(e, host, ports)
        suffix = wire.path(model) if wire.transport == "http" else f" {wire.path(model)}"
        rows.append((f"{backend.title} {e.wire}", f"{where}{suffix}"))
    for page in backend.pages:
        rows.append((f"{backend.title} {page}", page_url(backend, page, host, ports) or ""))
    return rows


def check_options(backend: Backend, table: Mapping[str, Any], where: str) -> BaseModel:
    """The table validated by the backend's `options`; a ValueError names the wrong keys."""
    from pydantic import ValidationError

    try:
        return backend.options.model_validate(dict(table))
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(map(str, e['loc'])) or '(table)'}: {e['msg']}" for e in exc.errors()
        )
        known = ", ".join(backend.options.model_fields)
        raise ValueError(f"{where}: {problems} (known keys: description, {known})") from None
