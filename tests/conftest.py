"""Shared fixtures: real servers on free loopback ports, started once per session."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from servingbench.stack.processes import (
    ProcessHandle,
    free_port,
    http_checks,
    start_detached,
    stop_handle,
    wait_until,
)
from servingbench.stack.servers import ServerSpec, api_spec, mlserver_spec
from servingbench.training import train_all


@pytest.fixture(scope="session")
def trained_models() -> None:
    """The artifacts in model-settings/ (trained once, skipped when up to date)."""
    train_all()


def _run(spec: ServerSpec, log_dir: Path) -> Iterator[tuple[ServerSpec, ProcessHandle]]:
    # cwd: MLServer writes a .metrics folder into its working directory.
    handle = start_detached(
        spec.name, spec.argv, log_dir / f"{spec.name}.log", env=spec.env, cwd=log_dir
    )
    try:
        wait_until(handle, http_checks(spec.ready_urls), timeout_s=90)
        yield spec, handle
    finally:
        stop_handle(handle)


@pytest.fixture(scope="session")
def mlserver(
    trained_models: None, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[ServerSpec, ProcessHandle]]:
    """Real MLServer (REST + gRPC) on free ports, serving model-settings/ as configured."""
    tmp = tmp_path_factory.mktemp("mlserver")
    spec = mlserver_spec(tmp / "repo", free_port(), free_port(), free_port())
    yield from _run(spec, tmp)


@pytest.fixture(scope="session")
def api_server(
    trained_models: None, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[ServerSpec, ProcessHandle]]:
    """Our real FastAPI service under uvicorn on a free port."""
    tmp = tmp_path_factory.mktemp("api")
    spec = api_spec(free_port())
    yield from _run(spec, tmp)
