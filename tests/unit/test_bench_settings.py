"""BenchSettings layering: defaults < env < TOML file < --quick < CLI flags."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from servingbench.commands import bench
from servingbench.sweep.settings import ALL_SCENARIOS, QUICK_PRESET, load_settings


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
    config.write_text('duration_s = 30\nwindow_s = 5\nscenarios = ["mlserver-grpc"]\n')
    from_file = load_settings(config)
    assert (from_file.duration_s, from_file.window_s) == (30, 5)  # file beats env
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


def test_pinning_empty_list_means_unpinned() -> None:
    settings = load_settings(overrides=_cli("--server-cpus", "", "--generator-cpus", "1"))
    assert settings.pinning() == (None, [1])


def test_bench_flag_rejects_invalid_settings(capsys: pytest.CaptureFixture[str]) -> None:
    parser = argparse.ArgumentParser()
    bench.add_arguments(parser)
    assert bench.run(parser.parse_args(["--concurrency", "x"])) == 2
    assert "invalid settings" in capsys.readouterr().err
