"""Shared fixtures: each backend's real server on free loopback ports, started once per session.

Servers start through the same launch specs and routine as `serve-all` and the sweep
(`stack.launch.running`), each from its own backend environment.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from servingbench.models.training import train_all
from servingbench.servers import DEFAULT_CONFIG, ServerConfig, get_backend
from servingbench.stack.launch import Launched, running
from servingbench.stack.processes import free_port


@pytest.fixture(scope="session")
def trained_models() -> None:
    """The artifacts in model-settings/ (trained once, skipped when up to date)."""
    train_all()


@contextmanager
def serve(
    backend: str, workdir: Path, name: str = DEFAULT_CONFIG, **options: Any
) -> Iterator[Launched]:
    """One real server of `backend` with `options` (its configuration table) on free ports."""
    spec = get_backend(backend)
    config = ServerConfig(backend, name, spec.check_options(options, f"[{backend}.{name}]"))
    ports = {port: free_port() for port in spec.ports}
    launch = spec.launch(config, ports, "127.0.0.1", workdir / config.server_name)
    with running([launch], workdir, timeout_s=120) as ready:
        yield ready[0]


@pytest.fixture(scope="session")
def mlserver(trained_models: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Launched]:
    """Real MLServer (REST + gRPC) on free ports, serving model-settings/ as configured."""
    with serve("mlserver", tmp_path_factory.mktemp("mlserver")) as server:
        yield server


@pytest.fixture(scope="session")
def api_server(
    trained_models: None, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Launched]:
    """Our real FastAPI service under uvicorn on a free port."""
    with serve("fastapi", tmp_path_factory.mktemp("api")) as server:
        yield server


@pytest.fixture(scope="session")
def kserve_server(
    trained_models: None, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Launched]:
    """Real KServe model server (REST + gRPC) on free ports, serving model-settings/."""
    with serve("kserve", tmp_path_factory.mktemp("kserve")) as server:
        yield server
