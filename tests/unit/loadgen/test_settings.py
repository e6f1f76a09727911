"""Settings precedence: default < SERVINGBENCH_LOAD_* env < Locust option (CLI or web UI)."""

from __future__ import annotations

import argparse

import pytest
from pydantic import ValidationError

from servingbench.loadgen.scenarios import SCENARIOS, get_scenario
from servingbench.loadgen.settings import LoadSettings, add_locust_options, resolve_settings


def test_defaults() -> None:
    settings = LoadSettings()
    assert (settings.model, settings.rows_per_request) == ("breast-cancer", 1)
    assert settings.records_dir is None
    assert settings.grpc_channel == "per-user"
    assert settings.validate_responses


def test_env_then_cli(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SERVINGBENCH_LOAD_MODEL", "iris")
    monkeypatch.setenv("SERVINGBENCH_LOAD_ROWS_PER_REQUEST", "4")
    parser = argparse.ArgumentParser()
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


def test_every_scenario_has_its_locustfile() -> None:
    assert list(SCENARIOS) == ["fastapi-rest", "fastapi-v2-rest", "mlserver-rest", "mlserver-grpc"]
    for scenario in SCENARIOS.values():
        assert scenario.locustfile.is_file()
        assert scenario.name in scenario.locustfile.read_text()
    assert get_scenario("mlserver-grpc").user_kind == "grpc"
    with pytest.raises(ValueError, match="known: fastapi-rest"):
        get_scenario("triton")
