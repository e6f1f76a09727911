"""The four load-test scenarios by name: which backend, wire protocol, user and default host.

A plain dict the locustfiles and the sweep share; it imports nothing heavy, so the sweep can
read it without pulling Locust (and gevent's monkey-patching) into its own process.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from servingbench.paths import project_root

__all__ = ["SCENARIOS", "Backend", "Protocol", "Scenario", "get_scenario"]

Backend = Literal["fastapi", "mlserver"]
Protocol = Literal["rest", "v2-rest", "grpc"]


@dataclass(frozen=True)
class Scenario:
    """One locustfile: a backend spoken to in one protocol, with its usual local address.

    `protocol` picks the user: `grpc` runs `GrpcUser`, the others the one `RestUser`
    (`rest` is our `POST /predict`, `v2-rest` the V2 `POST /v2/models/{model}/infer`).
    """

    name: str
    backend: Backend
    protocol: Protocol
    default_host: str

    @property
    def user_kind(self) -> Literal["rest", "grpc"]:
        return "grpc" if self.protocol == "grpc" else "rest"

    @property
    def locustfile(self) -> Path:
        return project_root() / "loadtests" / f"{self.name.replace('-', '_')}.py"


SCENARIOS: dict[str, Scenario] = {
    s.name: s
    for s in (
        Scenario("fastapi-rest", "fastapi", "rest", "http://127.0.0.1:8000"),
        Scenario("fastapi-v2-rest", "fastapi", "v2-rest", "http://127.0.0.1:8000"),
        Scenario("mlserver-rest", "mlserver", "v2-rest", "http://127.0.0.1:8080"),
        Scenario("mlserver-grpc", "mlserver", "grpc", "127.0.0.1:8081"),
    )
}


def get_scenario(name: str) -> Scenario:
    """The scenario called `name`, or a ValueError that lists the known names."""
    try:
        return SCENARIOS[name]
    except KeyError:
        raise ValueError(f"unknown scenario {name!r}; known: {', '.join(SCENARIOS)}") from None
