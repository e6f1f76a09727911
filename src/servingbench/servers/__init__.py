"""Backend plug-ins: one module per way of serving the models, found and registered here.

Every module of this package except `base` defines one backend (`@register class ...(Backend)`).
They are imported on first use of the registry, so adding a backend is adding a module (plus its
configuration and entry points); nothing else names it. Tests register their own with
`register` and remove them with `unregister`.
"""

from __future__ import annotations

import functools
import importlib
import pkgutil
from typing import TypeVar

from servingbench.servers.base import (
    DEFAULT_CONFIG,
    Backend,
    Endpoint,
    LaunchSpec,
    Scenario,
    ServerConfig,
    backend_scenarios,
)

__all__ = [
    "DEFAULT_CONFIG",
    "Backend",
    "Endpoint",
    "LaunchSpec",
    "Scenario",
    "ServerConfig",
    "backends",
    "get_backend",
    "get_scenario",
    "register",
    "scenarios",
    "unregister",
]

_INFRASTRUCTURE = frozenset({"base"})
_registry: dict[str, Backend] = {}

B = TypeVar("B", bound=type[Backend])


def register(cls: B) -> B:
    """Class decorator: add one instance of `cls` to the registry under `cls.name`."""
    _registry[cls.name] = cls()
    return cls


def unregister(name: str) -> None:
    _registry.pop(name, None)


@functools.cache
def _discover() -> None:
    """Import every backend module once, so each registers itself."""
    for module in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        if module.name not in _INFRASTRUCTURE and not module.name.startswith("_"):
            importlib.import_module(f"{__name__}.{module.name}")


def backends() -> dict[str, Backend]:
    """Every registered backend by name, in registration order (the report's series order)."""
    _discover()
    return dict(_registry)


def get_backend(name: str) -> Backend:
    """The backend called `name`, or a ValueError that lists the known ones."""
    known = backends()
    try:
        return known[name]
    except KeyError:
        raise ValueError(f"unknown backend {name!r}; known: {', '.join(known)}") from None


def scenarios() -> dict[str, Scenario]:
    """Every load-test scenario of every backend, by name, in backend order."""
    return {s.name: s for backend in backends().values() for s in backend_scenarios(backend)}


def get_scenario(name: str) -> Scenario:
    """The scenario called `name`, or a ValueError that lists the known ones."""
    known = scenarios()
    try:
        return known[name]
    except KeyError:
        raise ValueError(f"unknown scenario {name!r}; known: {', '.join(known)}") from None
