"""The report's tables against an independent recomputation from the raw records."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from servingbench.report import ReportSettings, RunData, load_run
from servingbench.report.load import RUN_ENV, SAMPLE_RUN, default_run
from servingbench.report.tables import build_tables, max_throughput_under_bound, write_tables
from servingbench.runs.layout import POINT_FILE, RECORDS_FILE
from servingbench.runs.point import PointResult, series_label
from servingbench.runs.records import RequestRecords
from servingbench.runs.stats import DEFAULT_WINDOW_S, windows
from servingbench.sweep.settings import BenchSettings
from tests.synthetic_run import CLIENT_BOUND, FAILED, LEGACY, UNSTABLE, WARMUP_S, make_run


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> RunData:
    return load_run(make_run(tmp_path_factory.mktemp("runs")))


@pytest.fixture(scope="module")
def summary(data: RunData) -> pd.DataFrame:
    write_tables(build_tables(data, ReportSettings()), data.root)
    return pd.read_csv(data.root / "summary.csv", keep_default_na=False, na_values=[""])


def _expected(npz: Path, legacy: bool) -> dict[str, float]:
    """Plain numpy over the file, sharing no code with servingbench.runs.stats.

    The span is the sweep's (warm-up end to last answer) when the point recorded it, else
    (older points) first measured send to last answer.
    """
    with np.load(npz) as raw:
        end_ns = (raw["start_ns"] + raw["latency_ns"]).max()
        keep = ~raw["warmup"]
        start, lat, outcome = raw["start_ns"][keep], raw["latency_ns"][keep], raw["outcome"][keep]
    ok_ms = lat[outcome == 0] / 1e6
    span_s = (end_ns - (start.min() if legacy else WARMUP_S * 1e9)) / 1e9
    q = np.percentile(ok_ms, [25, 50, 90, 95, 99])
    return {
        "requests": start.size,
        "req_s": start.size / span_s,
        "error_rate_pct": 100 * (outcome != 0).sum() / start.size,
        "avg_ms": ok_ms.mean(),
        "p25_ms": q[0],
        "p50_ms": q[1],
        "p90_ms": q[2],
        "p95_ms": q[3],
        "p99_ms": q[4],
        "max_ms": ok_ms.max(),
        "ok": ok_ms.size,
        "span_s": span_s,
    }


def _row(summary: pd.DataFrame, key: tuple[str, str, int]) -> pd.Series:
    scenario, config, n = key
    rows = summary[
        (summary["scenario"] == scenario)
        & (summary["server_config"] == config)
        & (summary["concurrency"] == n)
    ]
    assert len(rows) == 1
    return rows.iloc[0]


def test_summary_numbers_match_the_raw_records(data: RunData, summary: pd.DataFrame) -> None:
    checked = 0
    for row in summary.itertuples():
        npz = data.folders[str(row.point_id)] / RECORDS_FILE
        if not npz.exists():
            continue
        point = data.results[str(row.point_id)]
        expected = _expected(npz, legacy=point.measured_s is None)
        for column, value in expected.items():
            if column not in ("ok", "span_s"):
                assert getattr(row, column) == pytest.approx(value, rel=1e-5), column
        # CPU % is a rate over the sampled span; scaled to the whole measured window it matches
        # the requests counted over that window (the sampled CPU seconds cover less)
        cpu_s = point.usage[0].cpu_percent / 100 * expected["span_s"]
        assert row.preds_per_server_cpu_s == pytest.approx(expected["ok"] / cpu_s, rel=1e-5)
        assert point.usage[0].cpu_seconds < cpu_s
        assert row.server_cpu_pct == 90.0  # the point's own server, not the idle one
        assert row.server_rss_mb == 250.0
        checked += 1
    assert checked == len(summary) - 1  # every point but the failed one


def test_point_json_summary_is_not_trusted(summary: pd.DataFrame) -> None:
    # the synthetic point.json files all claim p50 = -1 ms
    assert (summary["p50_ms"].dropna() > 0).all()
    assert (summary["req_s"].dropna() > 0).all()


def test_flags_and_failed_point_in_summary(summary: pd.DataFrame) -> None:
    assert _row(summary, CLIENT_BOUND)["flags"] == "client-bound"
    assert _row(summary, UNSTABLE)["flags"] == "unstable"
    failed = _row(summary, FAILED)
    assert failed["flags"] == "failed"
    assert failed["status"] == "failed"
    assert failed["requests"] == 0
    assert np.isnan(failed["p99_ms"])
    assert summary["flags"].isna().sum() == len(summary) - 3  # empty = unflagged


def test_series_labels_include_server_config(summary: pd.DataFrame) -> None:
    assert "mlserver-rest@batching" in set(summary["series"])
    assert "mlserver-rest" in set(summary["series"])


def test_latency_bound_picks_best_unflagged_point(data: RunData) -> None:
    bound = 12.0
    table = max_throughput_under_bound(data, bound).set_index("series")
    points = data.points
    for series in data.series:
        ok = points[(points["series"] == series) & ~points["flagged"] & (points["p99_ms"] <= bound)]
        if ok.empty:
            assert table.loc[series, "result"] == "none"
        else:
            assert table.loc[series, "max_req_s"] == pytest.approx(ok["rps"].max())
    # fastapi-rest's fastest point is client-bound: it must not be chosen even under a loose bound
    loose = max_throughput_under_bound(data, 1e9).set_index("series")
    assert loose.loc["fastapi-rest", "concurrency"] == 4


def test_latency_bound_says_none_when_nothing_qualifies(data: RunData) -> None:
    table = max_throughput_under_bound(data, 1e-6)
    assert set(table["result"]) == {"none"}


def test_default_baseline_is_fastest_unflagged_mlserver_series(data: RunData) -> None:
    tables = build_tables(data, ReportSettings())
    p = data.points
    ml = p[(p["backend"] == "mlserver") & ~p["flagged"]]
    assert tables.baseline == ml.sort_values("rps")["series"].iloc[-1]
    assert tables.rps_ratio is not None
    assert tables.rps_ratio[tables.baseline].dropna().eq(1.0).all()


def test_chosen_baseline_and_unknown_one(data: RunData) -> None:
    tables = build_tables(data, ReportSettings(baseline_series="fastapi-rest"))
    assert tables.baseline == "fastapi-rest"
    with pytest.raises(ValueError, match="this run has: fastapi-rest"):
        build_tables(data, ReportSettings(baseline_series="nope"))


def test_settings_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SERVINGBENCH_REPORT_P99_BOUND_MS", "20")
    assert ReportSettings().p99_bound_ms == 20.0


def test_default_run_order(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(RUN_ENV, raising=False)
    with pytest.raises(FileNotFoundError, match=RUN_ENV):
        default_run(tmp_path)
    sample = make_run(tmp_path, SAMPLE_RUN)
    assert default_run(tmp_path).root == sample.root
    other = make_run(tmp_path / "elsewhere", "chosen")
    monkeypatch.setenv(RUN_ENV, str(other.root))
    assert default_run(tmp_path).root == other.root


def test_faster_flagged_point_is_shown_marked_never_as_the_result(data: RunData) -> None:
    table = max_throughput_under_bound(data, 1e9).set_index("series")
    points = data.points[data.points["series"] == "fastapi-rest"]
    fastest = points.sort_values("rps", ascending=False).iloc[0]
    assert "client-bound" in fastest["flags"]
    cell = str(table.loc["fastapi-rest", "incl_flagged"])
    assert cell.startswith(f"{fastest['rps']:.0f} req/s at N={int(fastest['concurrency'])} †")
    assert "client-bound" in cell
    assert table.loc["fastapi-rest", "concurrency"] != fastest["concurrency"]


def test_failed_or_erroring_points_never_count(data: RunData) -> None:
    table = max_throughput_under_bound(data, 1e9)
    failed = data.points[data.points["status"] == "failed"]
    for _, point in failed.iterrows():
        row = table[table["series"] == point["series"]].iloc[0]
        assert f"N={int(point['concurrency'])} †" not in str(row["incl_flagged"])


def test_req_s_matches_the_sweeps_summary_when_it_recorded_the_span(data: RunData) -> None:
    for point_id, point in data.results.items():
        if point.measured_s is None or point.status == "failed":
            continue
        row = data.points[data.points["point_id"] == point_id].iloc[0]
        records = data.records(point_id)
        assert row["duration_s"] == point.measured_s
        assert row["rps"] == pytest.approx(len(records.measured()) / point.measured_s)


def _rewrite_point(data: RunData, key: tuple[str, str, int], **changes: object) -> str:
    point_id = data.point_id(series_label(key[0], key[1]), key[2])
    path = data.folders[point_id] / POINT_FILE
    PointResult.load(path).model_copy(update=changes).save(path)
    return point_id


def test_window_length_comes_from_point_json(tmp_path: Path) -> None:
    layout = make_run(tmp_path)
    point_id = _rewrite_point(load_run(layout), UNSTABLE, window_s=0.5)
    data = load_run(layout)
    records = RequestRecords.load(data.folders[point_id] / RECORDS_FILE)
    row = data.points[data.points["point_id"] == point_id].iloc[0]
    assert row["windows"] == len(windows(records, 0.5))


def test_old_point_without_windows_uses_the_sweeps_default_window(tmp_path: Path) -> None:
    layout = make_run(tmp_path)
    point_id = _rewrite_point(load_run(layout), LEGACY, windows=[])
    data = load_run(layout)
    assert data.results[point_id].window_s is None
    records = RequestRecords.load(data.folders[point_id] / RECORDS_FILE)
    row = data.points[data.points["point_id"] == point_id].iloc[0]
    assert BenchSettings.model_fields["window_s"].default == DEFAULT_WINDOW_S
    assert row["windows"] == len(windows(records, DEFAULT_WINDOW_S)) > 0
