"""StackSettings, its CLI overrides, state files and the command output helpers (no servers)."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import pytest

from servingbench.commands.serve_all import endpoint_rows
from servingbench.commands.stack_options import add_stack_arguments, parse_cpus, settings_from_args
from servingbench.console import format_table
from servingbench.stack.lifecycle import RunningStack, stack_specs, stack_status, stop_stack
from servingbench.stack.processes import ProcessHandle
from servingbench.stack.servers import ServerSpec
from servingbench.stack.settings import StackSettings, default_pinning
from servingbench.stack.state import RunningServer, read_states, write_state


def _parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_stack_arguments(parser)
    return parser.parse_args(argv)


def test_defaults_are_the_documented_ports() -> None:
    settings = StackSettings()
    assert settings.ports() == {
        "MLServer REST": 8080,
        "MLServer gRPC": 8081,
        "MLServer metrics": 8082,
        "FastAPI": 8000,
    }
    assert settings.host == "127.0.0.1"
    assert all(field.description for field in StackSettings.model_fields.values())


def test_server_cpus_default_to_the_first_allowed_core() -> None:
    allowed = sorted(os.sched_getaffinity(0))
    expected = allowed[:1] if len(allowed) >= 2 else None
    assert default_pinning()[0] == expected
    assert StackSettings().server_cpus == expected


def test_environment_then_flags_override(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SERVINGBENCH_STACK_API_PORT", "9100")
    monkeypatch.setenv("SERVINGBENCH_STACK_SERVER_CPUS", "[1]")
    monkeypatch.setenv("SERVINGBENCH_STACK_MLSERVER_OVERRIDES", '{"gzip_enabled": true}')
    from_env = settings_from_args(_parse())
    assert from_env.api_port == 9100
    assert from_env.server_cpus == [1]
    assert from_env.mlserver_server_overrides() == {"gzip_enabled": True}

    flagged = settings_from_args(
        _parse("--api-port", "9000", "--server-cpus", "none", "--parallel-workers", "1")
    )
    assert flagged.api_port == 9000
    assert flagged.server_cpus == []
    assert flagged.mlserver_server_overrides() == {"gzip_enabled": True, "parallel_workers": 1}


def test_parse_cpus() -> None:
    assert parse_cpus("0") == [0]
    assert parse_cpus("0,1") == [0, 1]
    assert parse_cpus("none") == []
    with pytest.raises(argparse.ArgumentTypeError, match="core numbers"):
        parse_cpus("first")


def test_specs_render_mlserver_repository_under_the_state_dir(tmp_path: Path) -> None:
    settings = StackSettings(state_dir=tmp_path, mlserver_http_port=9080, api_port=9000)
    mlserver, api = stack_specs(settings)
    assert (tmp_path / "mlserver" / "repo" / "settings.json").is_file()
    assert mlserver.config["settings"]["http_port"] == 9080
    assert mlserver.ready_urls[0] == "http://127.0.0.1:9080/v2/health/ready"
    assert api.ports == {"http": 9000}
    rows = dict(endpoint_rows(RunningStack([RunningServer(mlserver, _handle()), _api(api)])))
    assert rows["FastAPI /predict"] == "http://127.0.0.1:9000/predict"
    assert rows["MLServer V2 REST"] == "http://127.0.0.1:9080/v2/models/iris/infer"
    assert rows["MLServer V2 gRPC"].startswith("127.0.0.1:8081")


def _handle(pid: int = 2**22 + 1) -> ProcessHandle:
    return ProcessHandle("x", pid, 1.0, "/tmp/x.log", ("a", "b"), (0,))


def _api(spec: ServerSpec) -> RunningServer:
    return RunningServer(spec, _handle(), startup_s=1.5)


def test_state_files_round_trip_and_stale_ones_are_cleaned(tmp_path: Path) -> None:
    (_, api) = stack_specs(StackSettings(state_dir=tmp_path))
    server = _api(api)
    write_state(tmp_path, server)
    (tmp_path / "broken.json").write_text("{not json")
    servers, broken = read_states(tmp_path)
    assert servers == [server]
    assert broken == [tmp_path / "broken.json"]
    status = stack_status(tmp_path)
    assert [(s.name, s.alive, s.ready) for s in status] == [("fastapi", False, False)]
    stopped = stop_stack(tmp_path)
    assert [(s.name, s.was_running) for s in stopped] == [("fastapi", False)]
    assert not list(tmp_path.glob("*.json"))
    assert stop_stack(tmp_path) == []


def test_format_table_aligns_columns() -> None:
    text = format_table(["a", "long header"], [("xyz", 1), ("p", 22)])
    assert text.splitlines() == [
        "a    long header",
        "---  -----------",
        "xyz  1",
        "p    22",
    ]
