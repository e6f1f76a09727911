"""`servingbench bench` settings: defaults < env < TOML < --quick < flags, and every bad value
refused before anything starts, with a message that names it and says what is accepted."""

from __future__ import annotations

import argparse
import os
import signal
from pathlib import Path
from typing import Any

import pytest

from servingbench.commands import bench, calibrate
from servingbench.runs.calibration import calibration_dir
from servingbench.servers import backends, get_scenario, scenarios
from servingbench.stack.settings import default_pinning
from servingbench.sweep.settings import (
    QUICK_PRESET,
    BenchSettings,
    default_scenarios,
    load_settings,
    parse_int_list,
)
from servingbench.sweep.targets import compose_targets


@pytest.fixture(autouse=True)
def _no_bench_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Settings must come from the test, not from the shell that runs it."""
    for name in [n for n in os.environ if n.startswith("SERVINGBENCH_BENCH_")]:
        monkeypatch.delenv(name)


def _parser(command: Any = bench) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser()
    command.add_arguments(parser)
    return parser


def _cli(*argv: str) -> dict[str, Any]:
    return bench.cli_overrides(_parser().parse_args(list(argv)))


def _load(*argv: str) -> BenchSettings:
    return load_settings(overrides=_cli(*argv))


# --- defaults and layering ------------------------------------------------------------------


def test_defaults_measure_one_path_per_backend_three_times() -> None:
    """The documented default sweep: each backend's fastest path, 1/10/50 users, 3 shuffled
    repeats; `--scenarios all` is every scenario."""
    settings = load_settings()
    assert settings.scenarios == default_scenarios()
    per_backend = [get_scenario(name).backend for name in settings.scenarios]
    assert per_backend == list(backends())  # one path per backend, in registry order
    assert _load("--scenarios", "all").scenarios == list(scenarios())
    assert settings.concurrency == [1, 10, 50]
    assert (settings.models, settings.rows, settings.repeats) == (["breast-cancer"], [1], 3)
    assert (settings.load, settings.rates, settings.arrivals) == ("closed", "auto", "poisson")
    assert (settings.warmup_s, settings.window_s, settings.max_duration_s) == (1.0, 1.0, 6.0)
    assert (settings.generator_workers, settings.remote_workers) == (0, 0)
    assert settings.targets == {}
    assert settings.objective() is None
    assert settings.pinning() == default_pinning()
    assert 0 <= settings.seed < 2**31


def test_seed_is_random_unless_given_and_then_replayable() -> None:
    """A new order per run by default; `--seed` replays one."""
    assert len({load_settings().seed for _ in range(5)}) > 1
    assert _load("--seed", "1234").seed == 1234


def test_precedence_env_file_quick_cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each layer beats the one before it, and only where it says something."""
    monkeypatch.setenv("SERVINGBENCH_BENCH_REPEATS", "5")
    monkeypatch.setenv("SERVINGBENCH_BENCH_WARMUP_S", "2.5")
    monkeypatch.setenv("SERVINGBENCH_BENCH_CONCURRENCY", "[1, 2]")
    from_env = load_settings()
    assert (from_env.repeats, from_env.warmup_s, from_env.concurrency) == (5, 2.5, [1, 2])
    config = tmp_path / "bench.toml"
    config.write_text('repeats = 4\nscenarios = ["mlserver-grpc"]\nrows = [1, 8]\n')
    from_file = load_settings(config)
    assert (from_file.repeats, from_file.scenarios, from_file.rows) == (
        4,
        ["mlserver-grpc"],
        [1, 8],
    )
    assert from_file.warmup_s == 2.5  # the env still applies where the file is silent
    quick = load_settings(config, quick=True)
    assert (quick.repeats, quick.concurrency, quick.warmup_s) == (1, [1, 10], 0.5)
    assert quick.scenarios == ["mlserver-grpc"]
    cli = load_settings(config, _cli("--repeats", "2", "--concurrency", "3,9"), quick=True)
    assert (cli.repeats, cli.concurrency, cli.max_duration_s) == (2, [3, 9], 4.0)


def test_quick_preset_is_a_valid_smoke_run() -> None:
    """`--quick` must hold enough windows to be judged stable, with a timeout shorter still."""
    quick = load_settings(quick=True)
    for name, value in QUICK_PRESET.items():
        assert getattr(quick, name) == value
    assert quick.max_duration_s >= quick.stability.windows * quick.window_s
    assert quick.timeout_s < quick.stability.windows * quick.window_s


def test_lists_read_from_commas_or_json() -> None:
    """`1,2,5`, `[1, 2, 5]` and a bare number are the same kind of list everywhere."""
    assert parse_int_list("1, 2,5") == [1, 2, 5]
    assert parse_int_list("[1, 2, 5]") == [1, 2, 5]
    assert parse_int_list(7) == [7]
    assert parse_int_list("") == []
    settings = _load("--models", "iris, breast-cancer", "--rows", "[1,8]", "--rates", "100,250.5")
    assert (settings.models, settings.rows, settings.rates) == (
        ["iris", "breast-cancer"],
        [1, 8],
        [100.0, 250.5],
    )
    assert load_settings(overrides={"rates": 300}).rates == [300.0]


def test_every_flag_reaches_its_setting() -> None:
    """A flag that parsed but set nothing would be silently ignored."""
    settings = _load(
        "--scenarios",
        "fastapi-rest",
        "--configs",
        "fastapi:batching",
        "--load",
        "open",
        "--arrivals",
        "constant",
        "--max-in-flight",
        "32",
        "--slo",
        "p99<=50ms",
        "--generator-workers",
        "2",
        "--remote-workers",
        "1",
        "--master-bind",
        "0.0.0.0",
        "--timeout",
        "1.5",
        "--window",
        "1",
        "--max-duration",
        "5",
        "--warmup",
        "0",
        "--run-id",
        "r1",
        "--skip-parity",
    )
    assert settings.scenarios == ["fastapi-rest"]
    assert [c.key for c in settings.configs()] == [
        "fastapi:batching",
        *(f"{name}:default" for name in backends() if name != "fastapi"),
    ]
    assert (settings.load, settings.arrivals, settings.max_in_flight) == ("open", "constant", 32)
    assert (settings.generator_workers, settings.remote_workers) == (2, 1)
    assert (settings.master_bind, settings.run_id, settings.skip_parity) == ("0.0.0.0", "r1", True)
    assert (settings.timeout_s, settings.window_s, settings.max_duration_s) == (1.5, 1.0, 5.0)
    objective = settings.objective()
    assert objective is not None
    assert objective.latency_ms == {"p99_ms": 50.0}


def test_pinning_flags() -> None:
    """An empty list means unpinned; a role left unset keeps its automatic cores."""
    assert _load("--server-cpus", "", "--generator-cpus", "1").pinning() == (None, [1])
    assert _load("--generator-cpus", "2,3").pinning() == (default_pinning()[0], [2, 3])


# --- bad values -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (("--repeats", "0"), r"repeats\n.*greater than or equal to 1"),
        (("--repeats", "-2"), r"repeats\n.*greater than or equal to 1"),
        (("--concurrency", "0,5"), r"values must be >= 1, got \[0, 5\]"),
        (("--concurrency", "x"), r"concurrency\n.*invalid literal for int"),
        (("--rows", "1,8,1"), "value.*1 given more than once"),
        (
            ("--scenarios", "fastapi-rest,nope"),
            r"unknown scenario\(s\) \['nope'\]; known: .*fastapi-rest",
        ),
        (
            ("--scenarios", "mlserver-grpc,mlserver-grpc"),
            r"scenario\(s\) mlserver-grpc given more than once",
        ),
        (("--models", "iris,nope"), r"unknown model\(s\) \['nope'\]; known: .*iris"),
        (("--configs", "fastapi:nope"), "unknown server configuration 'fastapi:nope'; known: "),
        (("--configs", "fastapi:batching,fastapi:batching"), "configuration.*given more than once"),
        (("--rates=-5,10",), r"rates must be positive, got \[-5.0, 10.0\]"),
        (("--rates", "0"), r"rates must be positive, got \[0.0\]"),
        (("--rates", "fast"), r"rates\n.*could not convert string to float: 'fast'"),
        (("--load", "burst"), r"load\n.*'closed' or 'open'"),
        (("--arrivals", "bursty"), r"arrivals\n.*'poisson' or 'constant'"),
        (("--slo", "p99<50"), r"latency bound 'p99<50' needs a unit: ms or s"),
        (("--slo", "p42<=5ms"), r"cannot read SLO bound 'p42<=5ms': write e.g. p99<=50ms"),
        (("--slo", "errors<=1ms"), r"must be a percentage, e.g. errors<=1%"),
        (("--max-in-flight", "0"), r"max_in_flight\n.*greater than or equal to 1"),
        (("--generator-workers", "-1"), r"generator_workers\n.*greater than or equal to 0"),
        (("--window", "0"), r"window_s\n.*greater than 0"),
        (("--timeout", "-1"), r"timeout_s\n.*greater than 0"),
        (("--stop-grace", "0.5"), r"--stop-grace takes whole seconds \(got 0.5\), e.g. 1 or 2"),
        (("--target", "mlserver-rest=10.0.0.5:8080"), "use http://host:port or https://host:port"),
        (
            ("--target", "mlserver-rest=http://10.0.0.5"),
            r"needs a port \(1-65535\), e.g. http://10.0.0.5:8080",
        ),
    ],
)
def test_bad_values_name_the_problem(argv: tuple[str, ...], message: str) -> None:
    """Each error names the setting or the bad entry and what is accepted."""
    with pytest.raises(ValueError, match=message):
        _load(*argv)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (("--rates", "nan,100"), r"rates must be finite numbers, got \[nan\]: write e.g. 200"),
        (("--rates", "inf"), r"rates must be finite numbers, got \[inf\]"),
        (("--max-duration", "inf"), r"max_duration_s\n.*finite number"),
        (("--warmup", "inf"), r"warmup_s\n.*finite number"),
    ],
)
def test_non_finite_values_are_refused(argv: tuple[str, ...], message: str) -> None:
    """`--rates nan` plans points at rate NaN (Locust gets `--arrival-rate nan`), and an
    infinite duration crashes the first point (`math.ceil(inf)` for Locust's `-t`); pydantic
    accepts both unless told not to, so the settings must refuse them by name."""
    with pytest.raises(ValueError, match=message):
        _load(*argv)


def test_times_that_could_never_judge_a_point_are_refused() -> None:
    """The cap must hold the stability windows, and the timeout must fit inside them, or a
    hang could never show up as timeouts; each message says which flag to change."""
    with pytest.raises(ValueError, match=r"--max-duration 5 s holds fewer than 3 windows of 2 s"):
        _load("--max-duration", "5", "--window", "2")
    with pytest.raises(ValueError, match="raise it to at least 6 s or shorten --window"):
        load_settings(overrides=_cli("--window", "2"), quick=True)
    with pytest.raises(ValueError, match=r"--timeout 3 s must be shorter than .* \(3 s\)"):
        _load("--timeout", "3", "--max-duration", "3")
    assert _load("--max-duration", "3", "--timeout", "2.9").max_duration_s == 3.0


def test_bad_config_files(tmp_path: Path) -> None:
    """A misspelt key is refused (never silently ignored); a missing or broken file says so."""
    misspelt = tmp_path / "bench.toml"
    misspelt.write_text("repeets = 3\n")
    with pytest.raises(ValueError, match="repeets"):
        load_settings(misspelt)
    broken = tmp_path / "broken.toml"
    broken.write_text("repeats = \n")
    with pytest.raises(ValueError, match=r"broken\.toml is not valid TOML"):
        load_settings(broken)
    with pytest.raises(FileNotFoundError, match=r"config file .*missing\.toml not found"):
        load_settings(tmp_path / "missing.toml")


def test_unknown_port_key_lists_the_known_ones() -> None:
    """`ports` keys are `<backend>.<port>`; a typo would otherwise fall back to a free port."""
    with pytest.raises(
        ValueError, match=r"unknown port\(s\) \['mlserver.rest'\]; known: .*mlserver.http"
    ):
        load_settings(overrides={"ports": {"mlserver.rest": 9000}})
    assert load_settings(overrides={"ports": {"mlserver.http": 9000}}).ports == {
        "mlserver.http": 9000
    }


# --- targets --------------------------------------------------------------------------------


def test_targets_choose_the_scenarios() -> None:
    """Only deployed targets are measured: the scenario list becomes the targets'."""
    settings = _load(
        "--target",
        "mlserver-grpc=10.0.0.5:8081",
        "--target",
        "mlserver-rest=http://10.0.0.5:8080",
        "--metrics-url",
        "mlserver-rest=http://10.0.0.5:8082/metrics",
    )
    assert settings.targets == {
        "mlserver-grpc": "10.0.0.5:8081",
        "mlserver-rest": "http://10.0.0.5:8080",
    }
    assert settings.scenarios == ["mlserver-grpc", "mlserver-rest"]
    assert settings.metrics_urls == {"mlserver-rest": "http://10.0.0.5:8082/metrics"}


def test_targets_compose_is_every_default_port() -> None:
    """`--target compose` names every scenario at its backend's default local port."""
    settings = _load("--target", "compose")
    assert settings.targets == compose_targets()
    assert set(settings.scenarios) == set(scenarios())


def test_scenarios_pick_among_the_compose_targets() -> None:
    """`--target compose --scenarios a,b` measures a and b only, in that order, and checks
    only their targets."""
    settings = _load("--target", "compose", "--scenarios", "mlserver-grpc,fastapi-rest")
    assert settings.scenarios == ["mlserver-grpc", "fastapi-rest"]
    everything = compose_targets()
    assert settings.targets == {s: everything[s] for s in ("mlserver-grpc", "fastapi-rest")}


def test_scenarios_pick_among_explicit_targets() -> None:
    settings = _load(
        "--target",
        "mlserver-grpc=10.0.0.5:8081",
        "--target",
        "mlserver-rest=http://10.0.0.5:8080",
        "--scenarios",
        "mlserver-rest",
    )
    assert settings.scenarios == ["mlserver-rest"]
    assert settings.targets == {"mlserver-rest": "http://10.0.0.5:8080"}


def test_scenarios_from_the_environment_pick_among_targets_too(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A scenario list from env or a config file is as deliberate as the flag."""
    monkeypatch.setenv("SERVINGBENCH_BENCH_SCENARIOS", "kserve-rest")
    settings = _load("--target", "compose")
    assert settings.scenarios == ["kserve-rest"]
    assert list(settings.targets) == ["kserve-rest"]


def test_a_scenario_that_no_target_gives_is_refused() -> None:
    with pytest.raises(ValueError, match="no target gives") as caught:
        _load("--target", "mlserver-rest=http://10.0.0.5:8080", "--scenarios", "kserve-rest")
    assert (
        "scenarios (--scenarios, config file or env) name kserve-rest, which no target gives "
        "(targets: mlserver-rest); add --target kserve-rest=ADDRESS, or leave it out of the "
        "scenarios"
    ) in str(caught.value)


@pytest.mark.parametrize("value", ["mlserver-rest", "=http://h:1", "mlserver-rest="])
def test_target_flag_needs_scenario_and_address(value: str) -> None:
    """`--target` takes SCENARIO=ADDRESS; the message quotes what was given."""
    with pytest.raises(ValueError, match=f"--target expects SCENARIO=ADDRESS, got '{value}'"):
        _cli("--target", value)


# --- the commands refuse before starting anything -------------------------------------------


def _run(command: Any, argv: list[str]) -> int:
    previous = signal.getsignal(signal.SIGTERM)
    try:
        return int(command.run(_parser(command).parse_args(argv)))
    finally:
        signal.signal(signal.SIGTERM, previous)  # bench turns SIGTERM into Ctrl-C


@pytest.mark.parametrize(
    "argv",
    [
        ["--concurrency", "x"],
        ["--quick", "--window", "2"],
        ["--target", "nonsense"],
        ["--target", "mlserver-rest=http://127.0.0.1:8080", "--scenarios", "kserve-rest"],
        ["--rates", "-1"],
    ],
)
def test_bench_exits_2_on_invalid_settings(
    argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    """Exit status 2 and one message on stderr, before any server starts."""
    assert _run(bench, argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("bench: invalid settings: ")


def test_calibrate_refuses_an_unknown_wire(capsys: pytest.CaptureFixture[str]) -> None:
    """The wire list is checked with the other settings, before any no-op server starts."""
    assert _run(calibrate, ["--wires", "v2-json,soap"]) == 2
    err = capsys.readouterr().err
    assert (
        "calibrate: invalid settings: unknown wire format(s) ['soap']; known: predict-json" in err
    )


@pytest.mark.parametrize("command", [bench, calibrate])
def test_existing_run_id_is_refused_untouched(
    command: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Runs are never overwritten: exit 2, the folder and the fix named, the folder left as is."""
    base = tmp_path if command is bench else calibration_dir(tmp_path)
    taken = base / "taken"
    taken.mkdir(parents=True)
    assert _run(command, ["--results-dir", str(tmp_path), "--run-id", "taken"]) == 2
    err = capsys.readouterr().err
    assert f"{taken} already exists" in err
    assert "choose another --run-id" in err
    assert list(taken.iterdir()) == []
