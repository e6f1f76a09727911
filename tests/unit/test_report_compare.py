"""Comparison with a baseline run: ratios per matching point and the noise verdict."""

from __future__ import annotations

from pathlib import Path

import pytest

from servingbench.report import load_run
from servingbench.report.compare import NO_WINDOW_P99, compare_runs, verdict, write_comparison
from tests.synthetic_run import make_run


@pytest.mark.parametrize(
    ("base", "current", "noise", "higher_is_better", "expected"),
    [
        (100.0, 104.0, 0.05, True, "within noise"),
        (100.0, 110.0, 0.05, True, "better"),
        (100.0, 90.0, 0.05, True, "worse"),
        (10.0, 9.0, 0.05, False, "better"),
        (10.0, 11.0, 0.05, False, "worse"),
        (10.0, 11.0, float("nan"), False, "unknown"),
        (float("nan"), 11.0, 0.05, False, "unknown"),
    ],
)
def test_verdict(
    base: float, current: float, noise: float, higher_is_better: bool, expected: str
) -> None:
    assert verdict(base, current, noise, higher_is_better) == expected


def test_identical_runs_are_within_noise(tmp_path: Path) -> None:
    a = load_run(make_run(tmp_path, "a", seed=1))
    b = load_run(make_run(tmp_path, "b", seed=1))
    table = compare_runs(a, b)
    assert len(table) == 11  # every point but the failed one
    assert (table["rps_ratio"] == 1.0).all()
    assert set(table["rps_verdict"]) == {"within noise"}


def test_slower_run_is_worse_beyond_noise(tmp_path: Path) -> None:
    base = load_run(make_run(tmp_path, "base", seed=1))
    slow = load_run(make_run(tmp_path, "slow", seed=2, scale=1.5))
    table = compare_runs(slow, base)
    # window spreads here are a few percent; a 1.5x slowdown is far outside them
    assert (table["rps_noise"] < 0.2).all()
    assert set(table["rps_verdict"]) == {"worse"}
    assert set(table["p50_ms_verdict"]) == {"worse"}
    assert table["p50_ms_ratio"].between(1.3, 1.7).all()
    # the noise threshold used is the larger of the two points' spreads
    merged = slow.points.merge(base.points, on=["scenario", "server_config", "concurrency"])
    merged = merged[merged["has_records_x"]]
    expected = merged[["rps_spread_x", "rps_spread_y"]].max(axis=1).to_numpy()
    assert table["rps_noise"].to_numpy() == pytest.approx(expected)


def test_comparison_files(tmp_path: Path) -> None:
    base = load_run(make_run(tmp_path, "base", seed=1))
    current = load_run(make_run(tmp_path, "current", seed=3))
    paths = write_comparison(current, base)
    assert [p.name for p in paths] == ["comparison.csv", "comparison.md"]
    text = paths[1].read_text()
    assert "within noise" in text
    assert "window-to-window" in text
    assert "current compared with baseline base" in text


def test_p99_is_judged_against_the_p99_spread(tmp_path: Path) -> None:
    # two runs of the same synthetic system: every difference is noise
    base = load_run(make_run(tmp_path, "base", seed=1))
    current = load_run(make_run(tmp_path, "current", seed=4))
    table = compare_runs(current, base)
    merged = current.points.merge(base.points, on=["scenario", "server_config", "concurrency"])
    merged = merged[merged["has_records_x"]]
    expected = merged[["p99_spread_x", "p99_spread_y"]].max(axis=1).to_numpy()
    assert table["p99_ms_noise"].to_numpy() == pytest.approx(expected)
    # a p99 moves more from window to window than a p50: judged by the p50's spread, plain
    # noise was called "better" or "worse" in 4 of these 11 points
    assert (table["p99_ms_noise"] > table["p50_ms_noise"]).all()
    assert set(table["p99_ms_verdict"]) == {"within noise"}


def test_p99_verdict_says_when_windows_have_no_p99(tmp_path: Path) -> None:
    base = load_run(make_run(tmp_path, "base", seed=1))
    current = load_run(make_run(tmp_path, "current", seed=3))
    current.points["p99_spread"] = float("nan")  # windows with no successful request in them
    table = compare_runs(current, base)
    assert set(table["p99_ms_verdict"]) == {NO_WINDOW_P99}
    assert NO_WINDOW_P99 == "unknown (no per-window p99)"
    assert "within noise" in set(table["rps_verdict"])
