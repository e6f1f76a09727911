"""Named server configurations: the shipped file, name resolution, and launch specs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from servingbench.servers import (
    DEFAULT_CONFIG,
    LaunchSpec,
    ServerConfig,
    backends,
    get_backend,
    get_scenario,
)
from servingbench.stack.configs import load_server_configs, resolve_configs
from servingbench.sweep.plan import series_of
from servingbench.sweep.settings import BenchSettings

PORTS = {
    "fastapi": {"http": 18000},
    "mlserver": {"http": 18080, "grpc": 18081, "metrics": 18082},
    "kserve": {"http": 18090, "grpc": 18091},
}
"""Ports of the backends whose launch specs are checked in detail here."""


def _ports(backend: str) -> dict[str, int]:
    """Ports for any registered backend: the detailed ones', else the default plus 10000."""
    return PORTS.get(backend) or {p: d + 10000 for p, d in get_backend(backend).ports.items()}


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "configs.toml"
    path.write_text(text)
    return path


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
        "kserve:default",  # no table in the file: every backend still gets its default
    } <= keys


def test_every_backend_has_a_default_even_without_a_file(tmp_path: Path) -> None:
    configs = load_server_configs(tmp_path / "absent.toml")
    assert list(configs) == [f"{name}:{DEFAULT_CONFIG}" for name in backends()]
    for config in configs.values():
        assert config.overrides() == {}
        assert config.server_name == f"{config.backend}-default"


def test_a_configuration_records_what_it_set_and_its_description(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        '[fastapi.batching]\ndescription = "batch"\npredict_mode = "batching"\n',
    )
    config = load_server_configs(path)["fastapi:batching"]
    assert (config.backend, config.name, config.key) == ("fastapi", "batching", "fastapi:batching")
    assert config.server_name == "fastapi-batching"
    assert config.description == "batch"
    assert config.overrides() == {"predict_mode": "batching"}  # only what the table set


def test_resolution_keeps_a_default_for_unnamed_backends() -> None:
    chosen = [c.key for c in resolve_configs(["fastapi:batching"])]
    others = [f"{name}:{DEFAULT_CONFIG}" for name in backends() if name != "fastapi"]
    assert chosen == ["fastapi:batching", *others]
    assert len(resolve_configs(["all"])) == len(load_server_configs())
    mlserver_all = [c.key for c in resolve_configs(["mlserver:all"])]
    assert "mlserver:parallel-workers-1" in mlserver_all
    assert "fastapi:default" in mlserver_all
    assert "kserve:default" in mlserver_all


def test_unknown_configuration_lists_known_ones() -> None:
    with pytest.raises(ValueError, match=r"known: .*fastapi:default"):
        resolve_configs(["fastapi:turbo"])
    with pytest.raises(ValueError, match="unknown backend 'triton'"):
        resolve_configs(["triton:all"])
    with pytest.raises(ValueError, match="unknown server configuration"):
        BenchSettings(server_configs=["nope"])


def test_a_table_for_an_unknown_backend_is_refused(tmp_path: Path) -> None:
    path = _write(tmp_path, "[triton.default]\n")
    with pytest.raises(ValueError, match=r"\[triton.default\].*unknown backend 'triton'"):
        load_server_configs(path)


def _launch(config: ServerConfig, tmp_path: Path) -> LaunchSpec:
    backend = get_backend(config.backend)
    return backend.launch(
        config, _ports(config.backend), "127.0.0.1", tmp_path / config.server_name
    )


def test_a_new_configuration_is_only_config(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        '[fastapi.big-batches]\npredict_mode = "batching"\nbatch_max_size = 256\n'
        "[mlserver.two-workers]\nsettings = { parallel_workers = 2 }\n"
        "model = { max_batch_size = 8 }\n"
        "[kserve.two-workers]\nworkers = 2\n",
    )
    configs = load_server_configs(path)
    api = _launch(configs["fastapi:big-batches"], tmp_path)
    assert api.name == "fastapi-big-batches"
    assert api.env["SERVINGBENCH_API_PREDICT_MODE"] == "batching"
    assert api.env["SERVINGBENCH_API_BATCH_MAX_SIZE"] == "256"
    assert api.env["SERVINGBENCH_API_PORT"] == "18000"
    assert "SERVINGBENCH_API_WORKERS" not in api.env  # unset keys keep the service's defaults
    assert api.config["options"]["batch_max_size"] == 256
    mls = _launch(configs["mlserver:two-workers"], tmp_path)
    repo = Path(mls.config["repository"])
    assert repo.is_relative_to(tmp_path / "mlserver-two-workers")
    settings = json.loads((repo / "settings.json").read_text())
    assert settings["parallel_workers"] == 2
    assert settings["http_port"] == 18080
    assert settings["grpc_port"] == 18081
    model = json.loads((repo / "breast-cancer" / "model-settings.json").read_text())
    assert model["max_batch_size"] == 8
    assert Path(model["parameters"]["uri"]).is_absolute()  # the same artifact file, not a copy
    assert Path(model["parameters"]["uri"]).is_file()
    ks = _launch(configs["kserve:two-workers"], tmp_path)
    argv = ks.argv
    assert argv[argv.index("--workers") + 1] == "2"
    assert argv[argv.index("--http_port") + 1] == "18090"
    assert argv[argv.index("--grpc_port") + 1] == "18091"
    assert ks.ready_urls == [
        *(f"http://127.0.0.1:18090/v2/models/{m}/ready" for m in ks.config["models"]),
        "tcp://127.0.0.1:18091",  # gRPC opens after the REST workers
    ]


def test_each_backend_runs_from_its_own_environment(tmp_path: Path) -> None:
    for config in load_server_configs(tmp_path / "absent.toml").values():
        spec = _launch(config, tmp_path)
        assert spec.environment == config.backend
        assert f"backends/{config.backend}/.venv/bin/" in spec.argv[0]
        assert spec.workdir == tmp_path / config.server_name
        assert spec.ports == _ports(config.backend)


@pytest.mark.parametrize(
    ("table", "unknown", "known"),
    [
        ('[fastapi.typo]\npredict_mod = "batching"\n', "predict_mod", "predict_mode"),
        ("[mlserver.bad]\nparallel_workers = 2\n", "parallel_workers", "settings, model"),
        ("[kserve.bad]\nthreads = 2\n", "threads", "workers, max_threads"),
    ],
)
def test_a_misspelt_key_is_rejected_not_ignored(
    tmp_path: Path, table: str, unknown: str, known: str
) -> None:
    with pytest.raises(ValueError, match=rf"{unknown}: Extra inputs are not permitted") as info:
        load_server_configs(_write(tmp_path, table))
    assert table.splitlines()[0] in str(info.value)  # names the table
    assert f"known keys: description, {known}" in str(info.value)


def test_a_wrong_value_is_rejected(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"\[kserve.zero\]: workers: Input should be greater"):
        load_server_configs(_write(tmp_path, "[kserve.zero]\nworkers = 0\n"))
    with pytest.raises(ValueError, match="predict_mode"):
        load_server_configs(_write(tmp_path, '[fastapi.x]\npredict_mode = "turbo"\n'))


def test_every_scenario_runs_under_each_of_its_backends_configs() -> None:
    configs = resolve_configs(["fastapi:batching", "fastapi:default", "mlserver:default"])
    scenarios = [get_scenario(name) for name in ("fastapi-rest", "mlserver-grpc")]
    series = series_of(scenarios, configs, ["iris"], [1, 8])
    assert [(s.scenario.name, s.config.key, s.rows_per_request) for s in series] == [
        ("fastapi-rest", "fastapi:batching", 1),
        ("fastapi-rest", "fastapi:batching", 8),
        ("fastapi-rest", "fastapi:default", 1),
        ("fastapi-rest", "fastapi:default", 8),
        ("mlserver-grpc", "mlserver:default", 1),
        ("mlserver-grpc", "mlserver:default", 8),
    ]  # kserve:default is resolved too, but no kserve scenario was asked for
