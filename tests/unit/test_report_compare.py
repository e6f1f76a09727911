"""Comparison with a baseline run: ratios per matching point and the noise verdict."""

from __future__ import annotations

from pathlib import Path

import pytest

from servingbench.report import load_run
from servingbench.report.compare import compare_runs, verdict, write_comparison
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
