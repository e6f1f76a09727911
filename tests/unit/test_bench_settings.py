"""BenchSettings: layering (defaults < env < TOML < --quick < CLI), validation, pinning, run ids."""

from __future__ import annotations

import argparse
import os
import signal
from pathlib import Path
from typing import Any

import pytest

from servingbench.commands import bench, calibrate
from servingbench.stack.settings import StackSettings, default_pinning
from servingbench.sweep.instrument import calibration_dir
from servingbench.sweep.settings import ALL_SCENARIOS, MIN_WINDOWS, QUICK_PRESET, load_settings


def _cli(*argv: str) -> dict[str, object]:
    parser = argparse.ArgumentParser()
    bench.add_arguments(parser)
    return bench.cli_overrides(parser.parse_args(list(argv)))


def test_defaults_cover_the_seed_lab_sweep() -> None:
    settings = load_settings()
    assert settings.scenarios == list(ALL_SCENARIOS)
    assert settings.concurrency == [1, 2, 5, 10, 20, 50]
    assert settings.model == "breast-cancer"
    points = len(settings.scenarios) * len(settings.concurrency)
    assert points * (settings.warmup_s + settings.duration_s) < 6 * 60 - 60  # room for start-up


def test_precedence_env_file_cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SERVINGBENCH_BENCH_DURATION_S", "20")
    monkeypatch.setenv("SERVINGBENCH_BENCH_WARMUP_S", "4")
    monkeypatch.setenv("SERVINGBENCH_BENCH_CONCURRENCY", "1,2")
    assert load_settings().duration_s == 20  # env beats default
    config = tmp_path / "bench.toml"
    config.write_text('duration_s = 30\nwindow_s = 1.5\nscenarios = ["mlserver-grpc"]\n')
    from_file = load_settings(config)
    assert (from_file.duration_s, from_file.window_s) == (30, 1.5)  # file beats env
    assert from_file.warmup_s == 4  # env still applies where the file is silent
    assert from_file.concurrency == [1, 2]
    from_cli = load_settings(config, _cli("--duration", "7", "--concurrency", "3,9"))
    assert from_cli.duration_s == 7  # CLI beats file
    assert from_cli.concurrency == [3, 9]
    assert from_cli.scenarios == ["mlserver-grpc"]


def test_quick_sits_between_file_and_cli(tmp_path: Path) -> None:
    config = tmp_path / "bench.toml"
    config.write_text("duration_s = 30\n")
    assert load_settings(config, quick=True).duration_s == QUICK_PRESET["duration_s"]
    quick_cli = load_settings(config, _cli("--concurrency", "4"), quick=True)
    assert quick_cli.concurrency == [4]
    assert quick_cli.duration_s == QUICK_PRESET["duration_s"]


def test_bad_values_name_the_problem(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="known: fastapi-rest"):
        load_settings(overrides={"scenarios": "fastapi-rest,nope"})
    with pytest.raises(ValueError, match=">= 1"):
        load_settings(overrides={"concurrency": "0,5"})
    bad = tmp_path / "bad.toml"
    bad.write_text("durration_s = 3\n")
    with pytest.raises(ValueError, match="durration_s"):
        load_settings(bad)
    with pytest.raises(FileNotFoundError, match=r"missing\.toml"):
        load_settings(tmp_path / "missing.toml")


def test_quick_points_hold_enough_windows_to_be_judged_stable() -> None:
    quick = load_settings(quick=True)
    assert quick.window_s == 1.0
    # windows count from the first measured request: keep a margin above exactly 3 windows
    assert quick.duration_s > MIN_WINDOWS * quick.window_s


def test_too_short_duration_for_the_window_is_rejected(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(ValueError, match="fewer than 3 whole windows of 2 s"):
        load_settings(overrides={"duration_s": 5.0})
    with pytest.raises(ValueError, match="lengthen --duration"):
        load_settings(overrides=_cli("--duration", "3", "--window", "1.5"))
    assert load_settings(overrides={"duration_s": 3.0, "window_s": 1.0}).duration_s == 3.0
    parser = argparse.ArgumentParser()
    bench.add_arguments(parser)
    assert bench.run(parser.parse_args(["--quick", "--window", "2"])) == 2
    assert "shorten --window" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (("--concurrency", "1,5,1"), "concurrency level"),
        (("--scenarios", "mlserver-grpc,fastapi-rest,mlserver-grpc"), "scenario"),
        (("--configs", "fastapi:batching,fastapi:batching"), "server configuration"),
    ],
)
def test_repeated_entries_are_rejected_before_the_sweep(
    flags: tuple[str, str], message: str
) -> None:
    with pytest.raises(ValueError, match=f"{message}.*given more than once"):
        load_settings(overrides=_cli(*flags))


def test_pinning_empty_list_means_unpinned() -> None:
    settings = load_settings(overrides=_cli("--server-cpus", "", "--generator-cpus", "1"))
    assert settings.pinning() == (None, [1])


@pytest.mark.parametrize(
    ("allowed", "expected"),
    [({5, 3, 7}, ([3], [5, 7])), ({2}, (None, None))],
)
def test_automatic_pinning_follows_the_cpu_affinity(
    monkeypatch: pytest.MonkeyPatch,
    allowed: set[int],
    expected: tuple[list[int] | None, list[int] | None],
) -> None:
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: allowed, raising=False)
    assert default_pinning() == expected
    assert load_settings().pinning() == expected
    assert StackSettings().server_cpus == expected[0]  # serve-all decides the same way
    partly = load_settings(overrides=_cli("--generator-cpus", "9"))
    assert partly.pinning() == (expected[0], [9])


def _existing_run_exits_2(
    command: Any, tmp_path: Path, run_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run_dir.mkdir(parents=True)
    parser = argparse.ArgumentParser()
    command.add_arguments(parser)
    args = parser.parse_args(["--results-dir", str(tmp_path), "--run-id", run_dir.name])
    previous = signal.getsignal(signal.SIGTERM)
    try:
        assert command.run(args) == 2
    finally:
        signal.signal(signal.SIGTERM, previous)
    err = capsys.readouterr().err
    assert f"{run_dir} already exists" in err
    assert "choose another --run-id" in err
    assert list(run_dir.iterdir()) == []  # left untouched


def test_bench_refuses_an_existing_run_id(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _existing_run_exits_2(bench, tmp_path, tmp_path / "taken", capsys)


def test_calibrate_refuses_an_existing_run_id(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _existing_run_exits_2(calibrate, tmp_path, calibration_dir(tmp_path) / "taken", capsys)


def test_bench_flag_rejects_invalid_settings(capsys: pytest.CaptureFixture[str]) -> None:
    parser = argparse.ArgumentParser()
    bench.add_arguments(parser)
    assert bench.run(parser.parse_args(["--concurrency", "x"])) == 2
    assert "invalid settings" in capsys.readouterr().err
