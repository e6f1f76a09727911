"""The Locust user class of a scenario, made from its wire format: locustfiles stay one line.

    # loadtests/mlserver_grpc.py
    MlserverGrpcUser = scenario_user("mlserver-grpc")

`scenario_user` looks the scenario up in the backend registry (its wire format and default
host). `user_from_env` is what the sweep's own locustfile uses: the wire format comes from
`SERVINGBENCH_LOAD_WIRE`, so a backend registered only in the sweep's process (a test's fake)
needs no locustfile and no registration in Locust's process.
"""

from __future__ import annotations

from typing import Any

from locust import User

from servingbench.loadgen.settings import LoadSettings
from servingbench.wire import WireName, get_wire

__all__ = ["scenario_user", "user_for", "user_from_env"]


def user_for(wire: WireName, name: str, host: str | None = None) -> type[User]:
    """A concrete user class speaking `wire` (REST or gRPC user by its transport)."""
    if get_wire(wire).transport == "grpc":
        from servingbench.loadgen.grpc_user import GrpcUser as base
    else:
        from servingbench.loadgen.rest_user import RestUser as base  # type: ignore[assignment]
    attributes: dict[str, Any] = {"wire": wire, "abstract": False, "__module__": __name__}
    if host is not None:
        attributes["host"] = host
    return type(name, (base,), attributes)


def _class_name(scenario: str) -> str:
    return "".join(part.capitalize() for part in scenario.split("-")) + "User"


def scenario_user(scenario: str) -> type[User]:
    """The user of a registered scenario, aimed at its `serve-all` address by default."""
    from servingbench.servers import get_scenario

    spec = get_scenario(scenario)
    return user_for(spec.wire, _class_name(scenario), spec.default_host)


def user_from_env() -> type[User]:
    """The user for `SERVINGBENCH_LOAD_WIRE` (the sweep passes it, with `--host`)."""
    settings = LoadSettings()
    if settings.wire is None:
        raise RuntimeError("SERVINGBENCH_LOAD_WIRE is not set; use a locustfile in loadtests/")
    return user_for(settings.wire, _class_name(settings.scenario or settings.wire))
