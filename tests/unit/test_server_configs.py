"""Named server configurations: the shipped file, name resolution, and launch specs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from servingbench.stack.configs import config_spec, load_server_configs, resolve_configs
from servingbench.sweep.runner import plan_points
from servingbench.sweep.servers import BenchServers
from servingbench.sweep.settings import BenchSettings

PORTS = {"http": 18080, "grpc": 18081, "metrics": 18082}


def test_shipped_file_has_the_issue_configurations() -> None:
    keys = set(load_server_configs())
    assert {
        "fastapi:default",
        "fastapi:threadpool",
        "fastapi:batching",
        "fastapi:workers-2",
        "mlserver:default",
        "mlserver:parallel-workers-1",
        "mlserver:adaptive-batching",
        "mlserver:no-metrics",
    } <= keys


def test_resolution_keeps_a_default_for_unnamed_backends() -> None:
    chosen = [c.key for c in resolve_configs(["fastapi:batching"])]
    assert chosen == ["fastapi:batching", "mlserver:default"]
    assert len(resolve_configs(["all"])) == len(load_server_configs())
    mlserver_all = [c.key for c in resolve_configs(["mlserver:all"])]
    assert "mlserver:parallel-workers-1" in mlserver_all
    assert "fastapi:default" in mlserver_all


def test_unknown_configuration_lists_known_ones() -> None:
    with pytest.raises(ValueError, match="known: fastapi:default"):
        resolve_configs(["fastapi:turbo"])
    with pytest.raises(ValueError, match="unknown server configuration"):
        BenchSettings(server_configs=["nope"])


def test_a_new_configuration_is_only_config(tmp_path: Path) -> None:
    path = tmp_path / "configs.toml"
    path.write_text(
        '[fastapi.big-batches]\npredict_mode = "batching"\nbatch_max_size = 256\n'
        "[mlserver.two-workers]\nsettings = { parallel_workers = 2 }\n"
        "model = { max_batch_size = 8 }\n"
    )
    configs = load_server_configs(path)
    api = config_spec(configs["fastapi:big-batches"], PORTS, tmp_path)
    assert api.env["SERVINGBENCH_API_PREDICT_MODE"] == "batching"
    assert api.env["SERVINGBENCH_API_BATCH_MAX_SIZE"] == "256"
    mls = config_spec(configs["mlserver:two-workers"], PORTS, tmp_path)
    repo = Path(mls.config["repository"])
    settings = json.loads((repo / "settings.json").read_text())
    assert settings["parallel_workers"] == 2
    assert settings["http_port"] == 18080
    model = json.loads((repo / "breast-cancer" / "model-settings.json").read_text())
    assert model["max_batch_size"] == 8
    assert Path(model["parameters"]["uri"]).is_absolute()  # the same artifact file, not a copy


def test_mlserver_section_rejects_unknown_keys(tmp_path: Path) -> None:
    path = tmp_path / "configs.toml"
    path.write_text("[mlserver.bad]\nparallel_workers = 2\n")
    with pytest.raises(ValueError, match="use `settings` or `model`"):
        load_server_configs(path)


def test_every_scenario_runs_under_each_of_its_backends_configs() -> None:
    settings = BenchSettings(
        scenarios=["fastapi-rest", "mlserver-grpc"],
        concurrency=[1, 10],
        server_configs=["fastapi:batching", "fastapi:default", "mlserver:default"],
    )
    plans = plan_points(settings, BenchServers(), None)
    ids = [p.point_id for p in plans]
    assert ids == [
        "fastapi-rest@batching--c0001",
        "fastapi-rest--c0001",
        "mlserver-grpc--c0001",
        "fastapi-rest@batching--c0010",
        "fastapi-rest--c0010",
        "mlserver-grpc--c0010",
    ]
    assert {p.server_key for p in plans} == {
        "fastapi:batching",
        "fastapi:default",
        "mlserver:default",
    }


def test_a_misspelt_fastapi_setting_is_rejected_not_ignored(tmp_path: Path) -> None:
    path = tmp_path / "configs.toml"
    path.write_text('[fastapi.typo]\npredict_mod = "batching"\n')
    with pytest.raises(ValueError, match=r"unknown setting\(s\) \['predict_mod'\]"):
        load_server_configs(path)
