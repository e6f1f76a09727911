"""serve-all / status / stop-all through the Python API, on free ports and a temporary state dir."""

from __future__ import annotations

import json
import os
import shutil
import socket
from pathlib import Path

import psutil
import pytest

from servingbench.cli import main
from servingbench.paths import model_settings_dir, project_root
from servingbench.servers import backends
from servingbench.stack.lifecycle import (
    PortBusyError,
    StackMismatchError,
    load_running_stack,
    stack_status,
    start_stack,
    stop_stack,
)
from servingbench.stack.processes import ServerStartError, free_port
from servingbench.stack.settings import StackSettings

SERVERS = [f"{name}-default" for name in backends()]

pytestmark = pytest.mark.integration


def _settings(state_dir: Path, **overrides: object) -> StackSettings:
    ports = {f"{b.name}.{port}": free_port() for b in backends().values() for port in b.ports}
    fields: dict[str, object] = {
        "ports": ports,
        "state_dir": state_dir,
        "server_cpus": [0],
        "ready_timeout_s": 120,
        **overrides,
    }
    return StackSettings.model_validate(fields)


def _processes_in(folder: Path) -> list[psutil.Process]:
    """Live processes working in `folder` (every server runs with cwd = its own folder there)."""
    found = []
    for proc in psutil.process_iter(["cwd"]):
        cwd = proc.info.get("cwd")
        if cwd and Path(cwd).is_relative_to(folder) and proc.status() != psutil.STATUS_ZOMBIE:
            found.append(proc)
    return found


def test_start_status_restart_stop(
    trained_models: None, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    settings = _settings(tmp_path / "state")
    stack = start_stack(settings)
    try:
        assert not stack.already_running
        assert [s.spec.backend for s in stack.servers] == list(backends())
        assert [s.spec.name for s in stack.servers] == SERVERS
        assert all(s.startup_s is not None and s.startup_s > 0 for s in stack.servers)
        assert all(h.cpus == (0,) for h in stack.handles)
        assert psutil.Process(stack.handles[0].pid).cpu_affinity() == [0]
        pids = {p.pid for h in stack.handles for p in h.tree()}

        statuses = stack_status(settings.state_dir)
        assert sorted(s.name for s in statuses) == sorted(SERVERS)
        assert all(s.alive and s.ready for s in statuses)
        assert all(0 < s.memory.uss <= s.memory.pss <= s.memory.rss for s in statuses)
        assert main(["status", "--state-dir", str(settings.state_dir)]) == 0
        out = capsys.readouterr().out
        assert all(name in out for name in SERVERS)

        again = start_stack(settings)
        assert again.already_running
        assert {h.pid for h in again.handles} == {h.pid for h in stack.handles}
        recorded = load_running_stack(settings.state_dir)
        assert recorded is not None
        mlserver_ports = recorded.server("mlserver-default").spec.ports
        assert mlserver_ports == settings.backend_ports("mlserver")
        state = json.loads((settings.state_dir / "fastapi-default.json").read_text())
        assert state["handle"]["pid"] == stack.server("fastapi-default").handle.pid

        moved = {**settings.ports, "fastapi.http": free_port()}
        other_port = settings.model_copy(update={"ports": moved})
        with pytest.raises(StackMismatchError, match="run `make stop-all` first"):
            start_stack(other_port)
        with pytest.raises(StackMismatchError, match="on cores"):
            start_stack(settings.model_copy(update={"server_cpus": None}))
        with pytest.raises(StackMismatchError, match=r"not the .* asked for"):
            start_stack(settings.model_copy(update={"backends": ["fastapi"]}))
    finally:
        stopped = stop_stack(settings.state_dir)

    assert sorted(s.name for s in stopped) == sorted(SERVERS)
    assert all(s.was_running for s in stopped)
    assert not [pid for pid in pids if psutil.pid_exists(pid) and _alive(pid)]
    assert not list(settings.state_dir.glob("*.json"))
    assert stop_stack(settings.state_dir) == []
    assert main(["stop-all", "--state-dir", str(settings.state_dir)]) == 0
    assert "nothing to stop" in capsys.readouterr().out
    assert main(["status", "--state-dir", str(settings.state_dir)]) == 1


def _alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def test_taken_port_fails_fast_naming_port_and_holder(tmp_path: Path) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        settings = _settings(tmp_path / "state")
        settings = settings.model_copy(update={"ports": {**settings.ports, "kserve.grpc": port}})
        with pytest.raises(
            PortBusyError, match=rf"kserve.grpc port {port} is already in use by pid {os.getpid()}"
        ):
            start_stack(settings)
    assert not list(settings.state_dir.glob("*.json"))
    assert not _processes_in(tmp_path)


def test_failed_start_stops_everything_and_shows_the_log_tail(
    trained_models: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """MLServer's configuration names a missing artifact (a configuration table of its own:
    every backend reads the same model-settings/); our service starts fine and is stopped; the
    backends' environments are the real ones (the fake root links to them)."""
    root = tmp_path / "root"
    shutil.copytree(model_settings_dir() / "iris", root / "model-settings" / "iris")
    shutil.copy(model_settings_dir() / "settings.json", root / "model-settings" / "settings.json")
    (root / "pyproject.toml").write_text("")
    (root / "backends").symlink_to(project_root() / "backends")
    configs = tmp_path / "server-configs.toml"
    configs.write_text(
        (project_root() / "backends" / "server-configs.toml").read_text()
        + '\n[mlserver.missing-artifact]\ndescription = "names an artifact that is not there"\n'
        'model = { parameters = { uri = "./missing-model.joblib" } }\n'
    )
    monkeypatch.setenv("SERVINGBENCH_ROOT", str(root))
    monkeypatch.setenv("SERVINGBENCH_SERVER_CONFIGS", str(configs))
    settings = _settings(
        tmp_path / "state",
        ready_timeout_s=60,
        backends=["fastapi", "mlserver"],
        configs=["mlserver:missing-artifact"],
    )

    with pytest.raises(ServerStartError) as caught:
        start_stack(settings)

    message = str(caught.value)
    assert message.startswith("mlserver-missing-artifact exited during start-up; last lines of")
    assert "missing-model.joblib" in message
    assert not list(settings.state_dir.glob("*.json"))
    assert not _processes_in(tmp_path)
