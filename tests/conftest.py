"""Shared fixtures: each registered backend's real server on free loopback ports, started on first
use and shared by the whole session.

Servers start through the same launch specs and routine as `serve-all` and the sweep
(`stack.launch.running`), each from its own backend environment. No backend is named here: a
test asks the pool for the one it needs (`server_pool.get(name)`), or takes `backend_server`,
which is parametrised over the registry.

`tests.leftovers` fails the session when any process it started outlives the teardown.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import pytest

from servingbench.models.training import train_all
from servingbench.servers import DEFAULT_CONFIG, ServerConfig, backends, get_backend
from servingbench.servers.base import LaunchSpec, check_options
from servingbench.stack.launch import Launched, running
from servingbench.stack.processes import free_port

pytest_plugins = ("tests.leftovers",)


@pytest.fixture(scope="session")
def trained_models() -> None:
    """The artifacts in model-settings/ (trained once, skipped when up to date)."""
    train_all()


def launch_spec(
    backend: str, workdir: Path, name: str = DEFAULT_CONFIG, **options: Any
) -> LaunchSpec:
    """The launch spec of `backend` under the configuration `options`, on free ports."""
    spec = get_backend(backend)
    config = ServerConfig(backend, name, check_options(spec, options, f"[{backend}.{name}]"))
    ports = {port: free_port() for port in spec.ports}
    return spec.launch(config, ports, "127.0.0.1", workdir / config.server_name)


@contextmanager
def serve(
    backend: str, workdir: Path, name: str = DEFAULT_CONFIG, **options: Any
) -> Iterator[Launched]:
    """One real server of `backend` with `options` (its configuration table) on free ports."""
    with running([launch_spec(backend, workdir, name, **options)], workdir, timeout_s=120) as up:
        yield up[0]


class ServerPool:
    """Each backend's default server, started when first asked for and kept for the session."""

    def __init__(self, stack: ExitStack, workdir: Path) -> None:
        self._stack = stack
        self._workdir = workdir
        self._servers: dict[str, Launched] = {}

    def start(self, names: Sequence[str]) -> list[Launched]:
        """The servers of `names`, those not yet running started side by side."""
        missing = [name for name in names if name not in self._servers]
        if missing:
            specs = [launch_spec(name, self._workdir / name) for name in missing]
            ready = self._stack.enter_context(running(specs, self._workdir, timeout_s=120))
            self._servers.update({s.spec.backend: s for s in ready})
        return [self._servers[name] for name in names]

    def get(self, name: str) -> Launched:
        return self.start([name])[0]


@pytest.fixture(scope="session")
def server_pool(
    trained_models: None, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServerPool]:
    with ExitStack() as stack:
        yield ServerPool(stack, tmp_path_factory.mktemp("servers"))


@pytest.fixture(params=list(backends()))
def backend_server(request: pytest.FixtureRequest, server_pool: ServerPool) -> Launched:
    """Every registered backend's real server in turn (one test per backend)."""
    return server_pool.get(request.param)


@pytest.fixture
def api_server(server_pool: ServerPool) -> Launched:
    """Our own FastAPI service: the tests of its own behaviour take it by name."""
    return server_pool.get("fastapi")


BAD_INPUT_TABLE = pytest.StashKey[str]()
"""What every backend answered to the malformed-request battery (test_api_bad_input)."""


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    table = config.stash.get(BAD_INPUT_TABLE, None)
    if table:
        terminalreporter.section("bad-input answers per backend")
        terminalreporter.write(table)
