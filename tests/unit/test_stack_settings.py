"""StackSettings, its CLI overrides, state files and the command output helpers (no servers)."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import pytest
from pydantic import ValidationError

from servingbench.commands.serve_all import endpoint_rows
from servingbench.commands.stack_options import add_stack_arguments, parse_cpus, settings_from_args
from servingbench.console import format_table
from servingbench.servers import LaunchSpec, backends
from servingbench.stack.lifecycle import (
    RunningStack,
    stack_configs,
    stack_specs,
    stack_status,
    stop_stack,
)
from servingbench.stack.processes import Memory, ProcessHandle, free_port
from servingbench.stack.settings import StackSettings, default_pinning
from servingbench.stack.state import RunningServer, read_states, write_state


def _parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_stack_arguments(parser)
    return parser.parse_args(argv)


def test_defaults_are_the_documented_ports() -> None:
    settings = StackSettings()
    assert settings.all_ports() == {
        f"{b.name}.{port}": default
        for b in backends().values()
        for port, default in b.ports.items()
    }
    assert {
        "fastapi.http": 8000,
        "kserve.http": 8090,
        "kserve.grpc": 8091,
        "mlserver.http": 8080,
        "mlserver.grpc": 8081,
        "mlserver.metrics": 8082,
    }.items() <= settings.all_ports().items()
    assert settings.backend_names() == list(backends())
    assert settings.host == "127.0.0.1"
    assert all(field.description for field in StackSettings.model_fields.values())


def test_every_default_port_is_distinct() -> None:
    """serve-all starts every backend side by side: no two may want the same port."""
    ports = list(StackSettings().all_ports().values())
    assert len(ports) == len(set(ports))


def test_overridden_ports_keep_the_other_defaults() -> None:
    settings = StackSettings(ports={"mlserver.grpc": 9081}, backends=["mlserver"])
    assert settings.backend_ports("mlserver") == {"http": 8080, "grpc": 9081, "metrics": 8082}
    assert settings.backend_ports("fastapi") == {"http": 8000}
    assert settings.all_ports() == {
        "mlserver.http": 8080,
        "mlserver.grpc": 9081,
        "mlserver.metrics": 8082,
    }  # only the backends started


def test_unknown_ports_and_backends_are_refused_with_the_known_ones() -> None:
    with pytest.raises(ValidationError, match=r"unknown port\(s\) \['mlserver.admin'\]"):
        StackSettings(ports={"mlserver.admin": 1})
    with pytest.raises(ValidationError, match=r"known: .*fastapi\.http"):
        StackSettings(ports={"api": 1})
    with pytest.raises(ValidationError, match="unknown backend 'triton'"):
        StackSettings(backends=["triton"])
    with pytest.raises(ValidationError, match="Extra inputs"):
        StackSettings(api_port=9000)  # type: ignore[call-arg]  # the old field is gone


def test_server_cpus_default_to_the_first_allowed_core() -> None:
    allowed = sorted(os.sched_getaffinity(0))
    expected = allowed[:1] if len(allowed) >= 2 else None
    assert default_pinning()[0] == expected
    assert StackSettings().server_cpus == expected


def test_environment_then_flags_override(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("SERVINGBENCH_STACK_PORTS", '{"fastapi.http": 9100, "kserve.grpc": 9191}')
    monkeypatch.setenv("SERVINGBENCH_STACK_SERVER_CPUS", "[1]")
    monkeypatch.setenv("SERVINGBENCH_STACK_CONFIGS", '["mlserver:parallel-workers-1"]')
    from_env = settings_from_args(_parse())
    assert from_env.backend_ports("fastapi") == {"http": 9100}
    assert from_env.server_cpus == [1]
    assert from_env.configs == ["mlserver:parallel-workers-1"]

    flagged = settings_from_args(
        _parse(
            "--fastapi-http-port",
            "9000",
            "--mlserver-grpc-port",
            "9001",
            "--server-cpus",
            "none",
            "--config",
            "fastapi:batching",
            "--backends",
            "fastapi,mlserver",
            "--state-dir",
            str(tmp_path),
            "--ready-timeout",
            "30",
        )
    )
    assert flagged.backend_ports("fastapi") == {"http": 9000}
    assert flagged.backend_ports("mlserver")["grpc"] == 9001
    assert flagged.backend_ports("kserve")["grpc"] == 9191  # the environment's, not lost
    assert flagged.server_cpus == []
    assert flagged.configs == ["fastapi:batching"]
    assert flagged.backend_names() == ["fastapi", "mlserver"]
    assert flagged.state_dir == tmp_path
    assert flagged.ready_timeout_s == 30


def test_every_declared_port_has_its_flag() -> None:
    parser = argparse.ArgumentParser()
    add_stack_arguments(parser)
    flags = {option for action in parser._actions for option in action.option_strings}
    for backend in backends().values():
        for port in backend.ports:
            assert f"--{backend.name}-{port}-port" in flags


def test_parse_cpus() -> None:
    assert parse_cpus("0") == [0]
    assert parse_cpus("0,1") == [0, 1]
    assert parse_cpus("none") == []
    with pytest.raises(argparse.ArgumentTypeError, match="core numbers"):
        parse_cpus("first")


def test_one_configuration_per_backend() -> None:
    settings = StackSettings(configs=["mlserver:no-metrics"], backends=["fastapi", "mlserver"])
    assert [c.key for c in stack_configs(settings)] == ["fastapi:default", "mlserver:no-metrics"]
    two = StackSettings(configs=["fastapi:batching", "fastapi:threadpool"])
    with pytest.raises(ValueError, match="one configuration per backend"):
        stack_configs(two)


def test_specs_render_mlserver_repository_under_the_state_dir(tmp_path: Path) -> None:
    settings = StackSettings(
        state_dir=tmp_path,
        ports={"mlserver.http": 9080, "fastapi.http": 9000},
        backends=["fastapi", "kserve", "mlserver"],
    )
    api, kserve, mlserver = stack_specs(settings)
    assert (api.name, kserve.name, mlserver.name) == (
        "fastapi-default",
        "kserve-default",
        "mlserver-default",
    )
    assert (tmp_path / "mlserver-default" / "repo" / "settings.json").is_file()
    assert mlserver.config["settings"]["http_port"] == 9080
    assert mlserver.ready_urls[0] == "http://127.0.0.1:9080/v2/health/ready"
    assert api.ports == {"http": 9000}
    assert kserve.ports == {"http": 8090, "grpc": 8091}
    stack = RunningStack([_server(api), _server(kserve), _server(mlserver)])
    rows = dict(endpoint_rows(stack))
    assert rows["our FastAPI service predict-json"] == "http://127.0.0.1:9000/predict"
    assert rows["our FastAPI service v2-json"] == "http://127.0.0.1:9000/v2/models/iris/infer"
    assert rows["MLServer v2-json"] == "http://127.0.0.1:9080/v2/models/iris/infer"
    assert rows["MLServer v2-grpc"] == ("127.0.0.1:8081 /inference.GRPCInferenceService/ModelInfer")
    assert rows["MLServer metrics"] == "http://127.0.0.1:8082/metrics"
    assert rows["KServe v2-grpc"].startswith("127.0.0.1:8091 ")
    assert stack.server("kserve-default").spec is kserve
    with pytest.raises(KeyError, match="no server 'nope'"):
        stack.server("nope")


def _handle(pid: int = 2**22 + 1) -> ProcessHandle:
    return ProcessHandle("x", pid, 1.0, "/tmp/x.log", ("a", "b"), (0,))


def _server(spec: LaunchSpec) -> RunningServer:
    return RunningServer(spec, _handle(), startup_s=1.5)


def test_state_files_round_trip_and_stale_ones_are_cleaned(tmp_path: Path) -> None:
    (api,) = stack_specs(StackSettings(state_dir=tmp_path, backends=["fastapi"]))
    server = _server(api)
    write_state(tmp_path, server)
    (tmp_path / "broken.json").write_text("{not json")
    servers, broken = read_states(tmp_path)
    assert servers == [server]
    assert broken == [tmp_path / "broken.json"]
    status = stack_status(tmp_path)
    assert [(s.name, s.alive, s.ready) for s in status] == [("fastapi-default", False, False)]
    assert status[0].memory == Memory(0, 0, 0)  # a process that is gone holds nothing
    stopped = stop_stack(tmp_path)
    assert [(s.name, s.was_running) for s in stopped] == [("fastapi-default", False)]
    assert not list(tmp_path.glob("*.json"))
    assert stop_stack(tmp_path) == []


def test_status_of_a_live_process_reports_its_memory(tmp_path: Path) -> None:
    """PSS/USS of the recorded tree: this very process stands in for a server."""
    import psutil

    me = psutil.Process()
    handle = ProcessHandle("me", me.pid, me.create_time(), "/tmp/me.log", ("python",), None)
    nowhere = {"fastapi.http": free_port()}  # nothing listens: not ready
    (api,) = stack_specs(StackSettings(state_dir=tmp_path, backends=["fastapi"], ports=nowhere))
    write_state(tmp_path, RunningServer(api, handle))
    (status,) = stack_status(tmp_path)
    assert status.alive
    assert not status.ready  # nothing answers on its ready URL
    assert status.memory.rss > 0
    assert 0 < status.memory.uss <= status.memory.pss <= status.memory.rss
    (tmp_path / "fastapi-default.json").unlink()  # never stop_stack: it would signal us


def test_format_table_aligns_columns() -> None:
    text = format_table(["a", "long header"], [("xyz", 1), ("p", 22)])
    assert text.splitlines() == [
        "a    long header",
        "---  -----------",
        "xyz  1",
        "p    22",
    ]
