"""The report's tables against an independent recomputation from the raw records."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import servingbench.servers as servers_module
from servingbench.report import ReportSettings, RunData, load_run
from servingbench.report.load import RUN_ENV, SAMPLE_RUN, default_run
from servingbench.report.tables import build_tables, capacity, series_title, write_tables
from servingbench.runs.layout import POINT_FILE, RECORDS_FILE, RunLayout
from servingbench.runs.point import PointResult
from servingbench.runs.records import Outcome, RequestRecords
from servingbench.runs.stats import windows
from tests.synthetic_run import (
    CLIENT_BOUND,
    ERRORS,
    FAILED,
    REPEATS,
    UNSTABLE,
    WINDOW_S,
    Series,
    ShapeFn,
    constant,
    default_shape,
    make_run,
)

Spot = tuple[str, int, int | None]


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> RunData:
    return load_run(make_run(tmp_path_factory.mktemp("runs")))


@pytest.fixture(scope="module")
def written(data: RunData) -> dict[str, pd.DataFrame]:
    """summary.csv and points.csv as a reader of the files sees them."""
    write_tables(build_tables(data, ReportSettings()), data.root)
    return {
        name: pd.read_csv(data.root / f"{name}.csv", keep_default_na=False, na_values=[""])
        for name in ("summary", "points")
    }


def _expected(npz: Path) -> dict[str, float]:
    """Plain numpy over the file, sharing no code with servingbench.runs.stats.

    Latencies: successful requests meant to start in the measured interval, from their intended
    start. Throughput: requests that ended (not in flight, not dropped) in the interval.
    """
    with np.load(npz) as raw:
        start, lat, outcome = raw["start_ns"], raw["latency_ns"], raw["outcome"]
        intended = raw["intended_ns"]
        lo, hi = (int(v) for v in raw["interval_ns"])
    done = start + lat
    measured = (intended >= lo) & (intended < hi)
    ok_ms = (done - intended)[measured & (outcome == Outcome.OK)] / 1e6
    sent = measured & (outcome != Outcome.DROPPED)
    ended = (outcome != Outcome.INCOMPLETE) & (outcome != Outcome.DROPPED)
    span_s = (hi - lo) / 1e9
    return {
        "requests": int(sent.sum()),
        "ok": ok_ms.size,
        "duration_s": span_s,
        "rps": int((ended & (done >= lo) & (done < hi)).sum()) / span_s,
        "error_rate": 1 - ok_ms.size / sent.sum(),
        "avg_ms": ok_ms.mean(),
        "p50_ms": np.percentile(ok_ms, 50),
        "p99_ms": np.percentile(ok_ms, 99),
    }


def _tiny(
    base: Path,
    run_id: str = "synthetic",
    levels: tuple[int, ...] = (2,),
    repeats: int = 1,
    shape: ShapeFn = default_shape,
) -> RunLayout:
    """One series: enough for what concerns a run as a whole or a single point."""
    series = (Series("mlserver-rest"),)
    return make_run(base, run_id, series=series, levels=levels, repeats=repeats, shape=shape)


def _rows(frame: pd.DataFrame, spot: Spot) -> pd.DataFrame:
    series, level, repeat = spot
    rows = frame[(frame["series"] == series) & (frame["level"] == level)]
    return rows if repeat is None or "repeat" not in rows else rows[rows["repeat"] == repeat]


def test_point_figures_match_the_raw_records(
    data: RunData, written: dict[str, pd.DataFrame]
) -> None:
    """Every measured repeat in points.csv, recomputed from its requests.npz."""
    points = written["points"]
    measured = points[points["has_records"]]
    assert len(measured) == len(points) - 1  # every repeat but the failed one
    for row in measured.itertuples():
        expected = _expected(data.folders[str(row.point_id)] / RECORDS_FILE)
        for column in ("requests", "duration_s", "rps", "error_rate", "avg_ms", "p50_ms"):
            assert getattr(row, column) == pytest.approx(expected[column], rel=1e-5), column
        assert row.p99_ms == pytest.approx(expected["p99_ms"], rel=1e-5)
        # predictions per server CPU second: the point's own server (90 %), not the idle one's
        assert row.server_cpu_pct == 90.0
        assert row.server_pss_mb == 250.0
        cpu_s = 0.9 * expected["duration_s"]
        assert row.preds_per_server_cpu_s == pytest.approx(expected["ok"] / cpu_s, rel=1e-5)


def test_point_json_summary_is_not_trusted(written: dict[str, pd.DataFrame]) -> None:
    """The synthetic point.json files all claim -1 req/s and -1 ms: none of it may show."""
    for table in written.values():
        for column in ("rps", "p50_ms", "p99_ms"):
            assert (table[column].dropna() > 0).all(), column


def test_summary_is_the_geometric_mean_of_the_repeats_with_its_interval(
    written: dict[str, pd.DataFrame],
) -> None:
    """One row per point; its req/s and p99 are the repeats' geometric mean, inside their
    interval (the quantity the interval is for)."""
    summary, points = written["summary"], written["points"]
    assert len(summary) == len(points) // REPEATS
    for row in summary.to_dict("records"):
        repeats = _rows(points, (row["series"], row["level"], None)).dropna(subset=["rps"])
        assert row["repeats"] == len(repeats)
        for column in ("rps", "p99_ms"):
            geometric = float(np.exp(np.log(repeats[column]).mean()))
            assert row[column] == pytest.approx(geometric, rel=1e-5)
            assert row[f"{column}_lo"] < row[column] < row[f"{column}_hi"]


def test_flags_and_failed_repeat(written: dict[str, pd.DataFrame]) -> None:
    """Flags are counted over the repeats; the failed repeat stays in points.csv, without
    figures, and its point is summarised over the repeats that ran."""
    summary, points = written["summary"], written["points"]
    assert _rows(summary, CLIENT_BOUND)["flags"].item() == f"client-bound×{REPEATS}"
    assert _rows(summary, UNSTABLE)["flags"].item() == "unstable"
    assert _rows(summary, ERRORS)["flags"].item() == f"errors×{REPEATS}"
    assert (_rows(summary, ERRORS)["error_rate"] > 0).all()
    failed = _rows(points, FAILED).iloc[0]
    assert (failed["status"], failed["flags"], failed["requests"]) == ("failed", "failed", 0)
    assert np.isnan(failed["p99_ms"])
    point = _rows(summary, FAILED).iloc[0]
    assert (point["repeats"], point["flags"]) == (REPEATS - 1, "failed")
    assert summary["flags"].isna().sum() == len(summary) - 4  # empty = unflagged


def test_series_labels_include_server_config(written: dict[str, pd.DataFrame]) -> None:
    assert {"fastapi-rest", "fastapi-rest@batching"} <= set(written["summary"]["series"])


def test_capacity_is_the_best_level_within_the_bound(data: RunData) -> None:
    """Per series, the most req/s among levels whose whole p99 interval is within the bound."""
    bound = 12.0
    table = capacity(data, bound).set_index("line")
    agg = data.closed
    for series in data.series:
        ok = agg[(agg["series"] == series) & (agg["p99_ms_hi"] <= bound)]
        ok = ok[~ok["flags"].str.contains("errors|failed")]
        if ok.empty:
            assert str(table.loc[series, "result"]).startswith("none")
        else:
            assert table.loc[series, "max_rps"] == pytest.approx(ok["rps"].max())


def test_capacity_never_counts_failed_or_erroring_levels(data: RunData) -> None:
    """Under any bound, mlserver-rest's erroring N=16 and mlserver-grpc's N=16 (one repeat
    failed) are faster than N=4 yet never the answer; a client-bound level counts, with its
    flag carried along so the report can mark it."""
    table = capacity(data, 1e9).set_index("line")
    for series, level, _ in (ERRORS, FAILED):
        faster = data.closed[(data.closed["series"] == series) & (data.closed["level"] == level)]
        assert faster["rps"].item() > table.loc[series, "max_rps"]
        assert table.loc[series, "level"] == 4
    client_bound, level, _ = CLIENT_BOUND
    assert table.loc[client_bound, "level"] == level
    assert "client-bound" in str(table.loc[client_bound, "flags"])


def test_capacity_says_what_would_give_an_answer(data: RunData, tmp_path: Path) -> None:
    """No level within the bound: the lowest level's p99 and the option to change; every level
    erroring: fix the errors first."""
    for result in capacity(data, 0.01)["result"]:
        assert result.startswith("none: p99 at the lowest level (1 user) was ")
        assert "--p99-bound-ms" in result
    shape = constant(lambda _s, _k: 2.0, error_every=10, flags=("errors",))
    erroring = _tiny(tmp_path, levels=(1, 2), repeats=2, shape=shape)
    (result,) = capacity(load_run(erroring), 1e9)["result"]
    assert result.startswith("none: every level had failed or erroring repeats")
    assert result.endswith("fix the errors first")


def test_default_baseline_is_the_fastest_stock_server_series(data: RunData) -> None:
    """What a user compares their own service against: not one of ours (FastAPI)."""
    tables = build_tables(data, ReportSettings())
    stock = data.closed[data.closed["backend"] != "fastapi"]
    assert tables.baseline == stock.sort_values("rps")["series"].iloc[-1]
    assert tables.rps_ratio is not None
    assert tables.baseline not in set(tables.rps_ratio["line"])
    others = len(data.series) - 1
    assert len(tables.rps_ratio) == others * data.closed["level"].nunique()


def test_chosen_baseline_and_unknown_one(data: RunData) -> None:
    tables = build_tables(data, ReportSettings(baseline_series="fastapi-rest"))
    assert tables.baseline == "fastapi-rest"
    with pytest.raises(ValueError, match="this run has: fastapi-rest, fastapi-rest@batching"):
        build_tables(data, ReportSettings(baseline_series="nope"))


def test_settings_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SERVINGBENCH_REPORT_P99_BOUND_MS", "20")
    assert ReportSettings().p99_bound_ms == 20.0


def test_default_run_order(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """$SERVINGBENCH_RUN, else the newest run, else the sample; none: say what to do."""
    monkeypatch.delenv(RUN_ENV, raising=False)
    with pytest.raises(FileNotFoundError, match=RUN_ENV):
        default_run(tmp_path)
    sample = _tiny(tmp_path, SAMPLE_RUN)
    assert default_run(tmp_path).root == sample.root
    other = _tiny(tmp_path / "elsewhere", "chosen")
    monkeypatch.setenv(RUN_ENV, str(other.root))
    assert default_run(tmp_path).root == other.root


def test_window_length_comes_from_point_json(tmp_path: Path) -> None:
    """The report cuts each point's windows as its sweep did, from the point's own plan."""
    layout = _tiny(tmp_path)
    (folder,) = layout.point_dirs()
    point = PointResult.read(folder / POINT_FILE)
    assert point.plan is not None
    plan = point.plan.model_copy(update={"window_s": WINDOW_S / 2})
    point.model_copy(update={"plan": plan}).write(folder / POINT_FILE)
    row = load_run(layout).points.iloc[0]
    records = RequestRecords.load(folder / RECORDS_FILE)
    assert (
        row["windows"] == len(windows(records, WINDOW_S / 2)) == 2 * len(windows(records, WINDOW_S))
    )


def test_a_run_reads_the_same_after_the_registry_changed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Titles, which series is ours and the series order come from the run's meta.json: with
    a backend gone from the checkout (and our service renamed), the tables are the same."""
    layout = make_run(tmp_path, run_id="recorded")
    before = build_tables(load_run(layout), ReportSettings())
    titles = [series_title(load_run(layout), line) for line in load_run(layout).lines]
    monkeypatch.setattr(servers_module, "_registry", {}, raising=True)
    monkeypatch.setattr(servers_module, "_discover", lambda: None)
    assert servers_module.backends() == {}
    data = load_run(layout)
    after = build_tables(data, ReportSettings())
    assert [series_title(data, line) for line in data.lines] == titles
    assert after.baseline == before.baseline
    pd.testing.assert_frame_equal(after.summary, before.summary)
    pd.testing.assert_frame_equal(after.rps, before.rps)
    assert after.rps_ratio is not None
    assert before.rps_ratio is not None
    pd.testing.assert_frame_equal(after.rps_ratio, before.rps_ratio)
