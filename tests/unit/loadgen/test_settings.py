"""Settings precedence: default < SERVINGBENCH_LOAD_* env < Locust option (CLI or web UI)."""

from __future__ import annotations

import argparse
import re
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from servingbench.loadgen.settings import (
    LoadSettings,
    add_locust_options,
    resolve_settings,
    user_class_name,
)
from servingbench.paths import project_root
from servingbench.runs.stats import MeasurePlan
from servingbench.servers import backends, get_scenario, scenarios
from servingbench.sweep.locust import SWEEP_LOCUSTFILE, LocustJob, locust_env
from servingbench.wire import WIRE_FORMATS, get_wire


def test_defaults() -> None:
    """Unset, a process runs a closed loop until Locust's own `-t` and writes no records."""
    settings = LoadSettings()
    assert (settings.model, settings.rows_per_request) == ("breast-cancer", 1)
    assert settings.records_dir is None
    assert settings.grpc_channel == "per-user"
    assert settings.validate_responses
    assert (settings.measure, settings.arrival_rate) == (None, None)


def test_the_sweep_sets_records_timeout_and_measure_through_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What the sweep puts in a Locust process's environment is what its settings read back."""
    plan = MeasurePlan(warmup_s=0.5, window_s=1.5, max_duration_s=9)
    job = LocustJob(
        users=2,
        host="http://127.0.0.1:18080",
        out_dir=tmp_path / "point",
        records_dir=tmp_path / "records",
        plan=plan,
        timeout_s=2.5,
        stop_grace_s=1.0,
        user_class=user_class_name("v2-grpc"),
    )
    for name, value in locust_env(job).items():
        if name.startswith("SERVINGBENCH_LOAD_"):
            monkeypatch.setenv(name, value)
    settings = LoadSettings()
    assert settings.records_dir == tmp_path / "records"
    assert settings.timeout_s == 2.5
    assert settings.measure == plan


def test_the_wire_format_is_picked_by_user_class_name() -> None:
    """The sweep names the user class of its wire format; the sweep's locustfile defines one
    per wire format under that name, and an old wire name is refused with the known ones."""
    assert user_class_name("v2-grpc") == "V2GrpcUser"
    assert user_class_name("mlserver-grpc") == "MlserverGrpcUser"
    source = SWEEP_LOCUSTFILE.read_text()
    for wire in WIRE_FORMATS:
        assert f'= user_for("{wire}", user_class_name("{wire}"))' in source
    with pytest.raises(ValueError, match="v2-json"):
        get_wire("v2-rest")


class LocustLikeParser(argparse.ArgumentParser):
    """Takes `include_in_web_ui` as Locust's parser does (importing locust would monkey-patch
    this test process with gevent)."""

    def add_argument(self, *args: Any, include_in_web_ui: bool = True, **kwargs: Any) -> Any:
        return super().add_argument(*args, **kwargs)


def test_env_then_cli(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SERVINGBENCH_LOAD_MODEL", "iris")
    monkeypatch.setenv("SERVINGBENCH_LOAD_ROWS_PER_REQUEST", "4")
    parser = LocustLikeParser()
    add_locust_options(parser)
    from_env = resolve_settings(parser.parse_args([]))
    assert (from_env.model, from_env.rows_per_request) == ("iris", 4)
    from_cli = resolve_settings(parser.parse_args(["--model", "breast-cancer"]))
    assert (from_cli.model, from_cli.rows_per_request) == ("breast-cancer", 4)
    assert resolve_settings(None).model == "iris"


def test_bad_values_are_refused_with_the_known_names(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ValidationError, match="known models: iris, breast-cancer"):
        LoadSettings(model="mnist")
    monkeypatch.setenv("SERVINGBENCH_LOAD_ROWS_PER_REQUEST", "0")
    with pytest.raises(ValidationError, match="greater than or equal to 1"):
        LoadSettings()


def _locustfile(scenario: str) -> str:
    return f"loadtests/{scenario.replace('-', '_')}.py"


@pytest.mark.parametrize("scenario", list(scenarios()))
def test_every_scenario_has_its_one_line_locustfile(scenario: str) -> None:
    """README: one locustfile per backend and wire format, each `scenario_user("<name>")`."""
    path = project_root() / _locustfile(scenario)
    assert path.is_file(), f"{path} is missing"
    assert re.search(rf"= scenario_user\(\"{re.escape(scenario)}\"\)", path.read_text())


def test_scenarios_come_from_the_backends_endpoints() -> None:
    assert list(scenarios()) == [
        e.scenario for backend in backends().values() for e in backend.endpoints
    ]  # backends in module order, each backend's endpoints in its own order
    assert {"fastapi-rest", "fastapi-v2-rest", "mlserver-rest", "mlserver-grpc"} <= set(scenarios())
    grpc = get_scenario("mlserver-grpc")
    assert (grpc.backend, grpc.wire, grpc.port) == ("mlserver", "v2-grpc", "grpc")
    assert get_wire(grpc.wire).transport == "grpc"
    assert grpc.default_host == "127.0.0.1:8081"  # gRPC: no scheme
    rest = get_scenario("kserve-rest")
    assert rest.default_host == f"http://127.0.0.1:{backends()['kserve'].ports['http']}"
    with pytest.raises(ValueError, match=r"known: .*fastapi-rest"):
        get_scenario("triton")


def test_every_locustfile_is_a_registered_scenario() -> None:
    """No stale locustfile left behind by a renamed or removed scenario."""
    files = {p.stem.replace("_", "-") for p in (project_root() / "loadtests").glob("*.py")}
    assert files <= set(scenarios())
