"""The Locust user class a scenario's locustfile needs, built from the per-transport users.

    # loadtests/mlserver_grpc.py
    MlserverGrpcUser = scenario_user("mlserver-grpc")

`scenario_user` looks the scenario up in the backend registry (its wire format and default
host). The sweep's own locustfile holds one user per wire format (named by `user_class_name`) and
the sweep names the one to run: a backend registered only in the sweep's process (a test's fake)
needs no locustfile, and remote workers, which import the same file, learn from the master
which class to run.
"""

from __future__ import annotations

from typing import Any

from locust import User

from servingbench.loadgen.grpc_user import GrpcUser
from servingbench.loadgen.rest_user import RestUser
from servingbench.loadgen.settings import user_class_name
from servingbench.servers import get_scenario
from servingbench.wire import WireName, get_wire

__all__ = ["scenario_user", "user_for"]


def user_for(wire: WireName, name: str, host: str | None = None) -> type[User]:
    """A concrete user class speaking `wire` (REST or gRPC user by its transport)."""
    base: type[User] = GrpcUser if get_wire(wire).transport == "grpc" else RestUser
    attributes: dict[str, Any] = {"wire": wire, "abstract": False, "__module__": __name__}
    if host is not None:
        attributes["host"] = host
    return type(name, (base,), attributes)


def scenario_user(scenario: str) -> type[User]:
    """The user of a registered scenario, aimed at its `serve-all` address by default."""
    spec = get_scenario(scenario)
    return user_for(spec.wire, user_class_name(scenario), spec.default_host)
