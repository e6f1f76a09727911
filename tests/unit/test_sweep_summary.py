"""The sweep's end-of-run table: one row per series and level, never one row per user count."""

from __future__ import annotations

from pathlib import Path

from servingbench.runs.point import PointResult
from servingbench.sweep.summary import progress_line, summary_table
from tests.synthetic_run import make_run


def _points(root: Path) -> list[PointResult]:
    return [PointResult.read(folder / "point.json") for folder in sorted(root.iterdir())]


def test_open_loop_rates_get_a_row_each_in_rate_order(tmp_path: Path) -> None:
    """Open-loop points share their slot count, so grouping by users merged every rate."""
    layout = make_run(tmp_path, levels=(), rates=(800.0, 1600.0, 200.0), repeats=2)
    points = _points(layout.root / "points")
    table = summary_table(points).splitlines()
    series = {p.series for p in points}
    for name in series:
        rows = [line for line in table if line.startswith(name + " ")]
        assert [row.split()[3] for row in rows] == ["200", "800", "1600"]
        assert all("2/2" in row for row in rows)
    for point in points:
        assert point.key.rate is not None
        assert f" {point.key.rate:.0f} req/s " in progress_line(point)


def test_closed_loop_rows_show_users(tmp_path: Path) -> None:
    layout = make_run(tmp_path, levels=(1, 10), repeats=1)
    points = _points(layout.root / "points")
    assert any("N=10" in line for line in summary_table(points).splitlines())
