"""Comparisons that respect noise: within a run (paired), against a baseline run (Welch), the gate.

The runs are synthetic and seeded, so every figure is deterministic. Each pass of the sweep
gets a drift factor on every latency (a busier or quieter machine), different between runs:
repeats vary by a few percent, as on a real shared machine, while a slower configuration is
30 % slower in every repeat.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest

from servingbench.cli import main
from servingbench.report import ReportSettings, RunData, load_run
from servingbench.report.compare import (
    compare_runs,
    regressions,
    setting_warnings,
    unmatched,
    write_comparison,
)
from servingbench.report.tables import build_tables, ratio_table
from servingbench.report.verdict import verdict_sentences
from servingbench.runs.layout import POINT_FILE
from servingbench.runs.meta import RunMeta
from servingbench.runs.point import PointKey, PointResult
from tests.synthetic_run import Series, Shape, ShapeFn, constant, make_run

NO_DIFFERENCE = "no significant difference"
DEFAULT = Series("mlserver-rest")
WORKERS = Series("mlserver-rest", "parallel-workers-1")
OURS = Series("fastapi-rest")
SERIES = (DEFAULT, WORKERS, OURS)
LEVELS = (1, 4)
SLOWER = 1 / 0.7
"""Latency factor of a configuration serving 30 % fewer req/s."""
DRIFT_A = (1.00, 1.04, 0.97)
DRIFT_B = (0.98, 1.01, 1.03)
OWN = {OURS.label: (1.00, 0.97, 1.03)}
"""Noise of one series of its own in each pass (the others only share the pass's drift)."""


def _shape(drift: Sequence[float], slow: frozenset[str]) -> ShapeFn:
    """2 ms at one user, growing with load; `slow` series take `SLOWER` times as long."""

    def shape(series: Series, key: PointKey) -> Shape:
        k = key.repeat - 1
        latency = 2.0 * (1 + 0.5 * (key.level - 1)) * drift[k] * OWN.get(series.label, (1,) * 3)[k]
        return Shape(latency_ms=latency * (SLOWER if series.label in slow else 1.0), spread=0.05)

    return shape


@dataclass(frozen=True)
class Runs:
    base: RunData
    """parallel-workers-1 is 30 % slower than default; ours as fast as default, plus noise"""
    noise: RunData
    """the same system as `base`, other passes (drift) and other jitter"""
    regressed: RunData
    """as `noise`, but mlserver-rest's default configuration has become as slow as workers-1"""


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> Runs:
    root = tmp_path_factory.mktemp("runs")
    workers = frozenset({WORKERS.label})

    def run(name: str, drift: Sequence[float], slow: frozenset[str], seed: int) -> RunData:
        shape = _shape(drift, slow)
        return load_run(make_run(root, name, series=SERIES, levels=LEVELS, shape=shape, seed=seed))

    return Runs(
        base=run("base", DRIFT_A, workers, 1),
        noise=run("noise", DRIFT_B, workers, 2),
        regressed=run("regressed", DRIFT_B, workers | {DEFAULT.label}, 3),
    )


def _verdicts(table: pd.DataFrame, series: str, column: str) -> set[str]:
    return set(table.loc[table["line"] == series, column])


def test_within_a_run_a_slower_config_is_worse_and_noise_is_not(runs: Runs) -> None:
    """Paired by pass against mlserver-rest: workers-1's 30 % is worse at every level; ours
    differs from it only by its own noise, which the interval must not call a difference."""
    rps = ratio_table(runs.base, DEFAULT.label, "rps", True, 0.05)
    p99 = ratio_table(runs.base, DEFAULT.label, "p99_ms", False, 0.05)
    assert _verdicts(rps, WORKERS.label, "verdict") == {"worse"}
    assert _verdicts(p99, WORKERS.label, "verdict") == {"worse"}
    slow = rps[rps["line"] == WORKERS.label]
    assert slow["ratio"].between(0.67, 0.73).all()
    assert (slow["high"] < 1).all()
    # even with no minimum effect: the interval alone keeps the noise from counting
    for min_effect in (0.05, 0.0):
        rps = ratio_table(runs.base, DEFAULT.label, "rps", True, min_effect)
        assert _verdicts(rps, OURS.label, "verdict") == {NO_DIFFERENCE}


def test_verdict_sentences_respect_noise(runs: Runs) -> None:
    """The report's opening says "no significant difference" between backends that differ by
    noise, and gives the ratio when one backend is clearly faster."""
    settings = ReportSettings()
    same = verdict_sentences(runs.base, build_tables(runs.base, settings))
    assert any(f"{NO_DIFFERENCE} in req/s" in s for s in same)
    assert not any(s.startswith("It served") for s in same)
    faster = verdict_sentences(runs.regressed, build_tables(runs.regressed, settings))
    (served,) = [s for s in faster if s.startswith("It served")]
    assert served.startswith("It served 1.4")  # ours against MLServer's best, both now slow


@pytest.mark.parametrize("min_effect", [0.05, 0.0])
def test_runs_differing_only_by_noise_show_no_difference(runs: Runs, min_effect: float) -> None:
    """Another run of the same system: every point and figure is "no significant difference"."""
    table = compare_runs(runs.noise, runs.base, min_effect)
    assert len(table) == len(SERIES) * len(LEVELS)
    for column in ("rps", "p50_ms", "p99_ms"):
        assert set(table[f"{column}_verdict"]) == {NO_DIFFERENCE}, column
    assert regressions(table, 0.0) == []


def test_a_slower_run_is_significantly_worse(runs: Runs) -> None:
    """mlserver-rest default lost 30 % of its req/s: worse on every figure, the rest unchanged."""
    table = compare_runs(runs.regressed, runs.base)
    slow = table[table["series"] == DEFAULT.label]
    assert set(slow["rps_verdict"]) == set(slow["p50_ms_verdict"]) == {"worse"}
    assert set(slow["p99_ms_verdict"]) == {"worse"}
    assert slow["rps_ratio"].between(0.65, 0.75).all()
    assert (slow["rps_high"] < 1).all()
    assert (slow[["repeats", "repeats_base"]] == 3).all().all()
    rest = table[table["series"] != DEFAULT.label]
    assert set(rest["rps_verdict"]) == {NO_DIFFERENCE}


def _compare(current: RunData, baseline: RunData, *options: str) -> int:
    return main(["compare", str(current.root), str(baseline.root), *options])


def test_regression_gate(runs: Runs, capsys: pytest.CaptureFixture[str]) -> None:
    """--fail-on-regression exits 1 on a significant regression of at least its share, 0 on
    noise, 0 when the regression is smaller than the share asked for."""
    assert _compare(runs.regressed, runs.base, "--fail-on-regression", "10%") == 1
    err = capsys.readouterr().err
    lines = err.splitlines()
    assert len(lines) == len(LEVELS) * 3  # req/s, p50 and p99 at each level, one series only
    assert all(line.startswith("regression: mlserver-rest iris rows=1 at ") for line in lines)
    assert any(" at 4: rps 0.6" in line or " at 4: rps 0.7" in line for line in lines)
    assert _compare(runs.noise, runs.base, "--fail-on-regression", "0%") == 0
    assert "regression" not in capsys.readouterr().err
    # 30 % fewer req/s is 43 % more latency: a 50 % gate lets it through
    assert _compare(runs.regressed, runs.base, "--fail-on-regression", "50%") == 0


def _small(
    root: Path, name: str, series: Series, levels: Sequence[int], rates: Sequence[float]
) -> RunData:
    shape = constant(lambda _s, _k: 2.0, spread=0.05)
    layout = make_run(
        root, name, series=(series,), levels=levels, rates=rates, repeats=2, shape=shape
    )
    return load_run(layout)


@pytest.mark.parametrize(
    ("series", "levels", "rates", "matched"),
    [
        (DEFAULT, (2,), (), True),  # the control: the same work matches
        (Series("mlserver-rest", rows_per_request=8), (2,), (), False),
        (Series("mlserver-rest", model="breast-cancer"), (2,), (), False),
        (WORKERS, (2,), (), False),
        (Series("mlserver-grpc"), (2,), (), False),
        (DEFAULT, (4,), (), False),
        (DEFAULT, (), (2.0,), False),  # 2 req/s offered is not 2 users
    ],
    ids=["same", "rows", "model", "config", "scenario", "concurrency", "load"],
)
def test_points_match_on_everything_that_changes_the_work(
    tmp_path: Path, series: Series, levels: Sequence[int], rates: Sequence[float], matched: bool
) -> None:
    """A --rows 8 run is not the same point as a --rows 1 run, nor another model, config,
    scenario, concurrency or load mode: compare matches nothing and says so."""
    base = _small(tmp_path, "base", DEFAULT, (2,), ())
    current = _small(tmp_path, "current", series, levels, rates)
    table = compare_runs(current, base)
    missing = unmatched(current, base)
    if matched:
        assert len(table) == 1
        assert missing == []
        return
    assert table.empty
    assert [m.split(":")[0] for m in missing] == ["only in current", "only in base"]
    assert _compare(current, base, "--fail-on-regression", "5%") == 2  # no point in common


def test_settings_that_do_not_change_the_work_are_listed_not_matched_on(
    runs: Runs, tmp_path: Path
) -> None:
    """A longer window is worth a note, but the points are still the same points."""
    layout = make_run(
        tmp_path,
        "longer",
        series=SERIES,
        levels=LEVELS,
        shape=_shape(DRIFT_B, frozenset({WORKERS.label})),
    )
    meta = RunMeta.read(layout.meta)
    meta.sweep.window_s = 2.0
    meta.write(layout.meta)
    current = load_run(layout)
    assert len(compare_runs(current, runs.base)) == len(SERIES) * len(LEVELS)
    assert setting_warnings(current, runs.base) == ["window_s: 0.5 (baseline) vs 2.0"]


def test_comparison_files(runs: Runs) -> None:
    """comparison.csv holds the table; comparison.md says how to read it and what matched."""
    csv_path, md_path = write_comparison(runs.regressed, runs.base)
    assert (csv_path.name, md_path.name) == ("comparison.csv", "comparison.md")
    assert len(pd.read_csv(csv_path)) == len(SERIES) * len(LEVELS)
    text = md_path.read_text()
    assert "regressed compared with baseline base" in text
    assert "Welch's 95 % interval" in text
    assert ": worse" in text
    assert f": {NO_DIFFERENCE}" in text
    assert "## Points without a match\n\nnone" in text


def test_verdict_compares_one_payload_size_when_a_run_has_several(tmp_path: Path) -> None:
    """With rows 1 and 64 in one run, the opening compares the 1-row points only and says so;
    every series is named once (the decision chart covers the other sizes)."""
    sizes = tuple(
        Series(scenario, model="breast-cancer", rows_per_request=rows, base_ms=base * rows**0.5)
        for scenario, base in (("fastapi-rest", 1.0), ("mlserver-rest", 2.0))
        for rows in (1, 64)
    )
    data = load_run(make_run(tmp_path, series=sizes, levels=(1, 4)).root)
    sentences = verdict_sentences(data, build_tables(data, ReportSettings()))
    (one_user,) = [s for s in sentences if s.startswith("At 1 user")]
    assert one_user.startswith("At 1 user (breast-cancer, 1 row per request) the median")
    assert one_user.count(";") == 1  # two series, not four points
    assert any(s.startswith("At 4 users (breast-cancer, 1 row per request)") for s in sentences)


def _two_models(tmp_path: Path) -> RunData:
    """Ours at 1 ms and MLServer at 2 ms on breast-cancer; both at 10 ms on the 1,000-tree
    model: the truth on the headline model is 2x, and only pairing like work can show it."""
    series = tuple(
        Series(scenario, model=model)
        for scenario in ("fastapi-rest", "mlserver-rest")
        for model in ("breast-cancer", "breast-cancer-xgb1000")
    )

    def latency(one: Series, key: PointKey) -> float:
        if one.model == "breast-cancer-xgb1000":
            return 10.0
        return 1.0 if one.scenario == "fastapi-rest" else 2.0

    return load_run(make_run(tmp_path, series=series, levels=(1, 4), shape=constant(latency)))


def test_ratios_pair_only_the_same_model_and_rows(tmp_path: Path) -> None:
    """Each line is a series on one model and batch size: the verdict's 2x, the ratio table's
    and the capacity's figures never mix the 1 ms model with the 10 ms one."""
    data = _two_models(tmp_path)
    tables = build_tables(data, ReportSettings(baseline_series="mlserver-rest"))
    sentences = verdict_sentences(data, tables)
    (served,) = [s for s in sentences if s.startswith("It served")]
    assert served.startswith("It served 2.00x")
    assert tables.rps_ratio is not None
    ratios = tables.rps_ratio.set_index(["line", "level"])["ratio"]
    for level in (1, 4):
        assert ratios["fastapi-rest breast-cancer rows=1", level] == pytest.approx(2.0, rel=0.01)
        assert ratios["fastapi-rest breast-cancer-xgb1000 rows=1", level] == pytest.approx(
            1.0, rel=0.01
        )
    capacity = tables.capacity.set_index("line")["max_rps"]
    assert capacity["fastapi-rest breast-cancer rows=1"] == pytest.approx(4000, rel=0.01)
    assert capacity["fastapi-rest breast-cancer-xgb1000 rows=1"] == pytest.approx(400, rel=0.01)


@pytest.mark.parametrize("calibrated_ms", [None, 0.02])
def test_the_instrument_sentence_says_where_each_series_figure_comes_from(
    tmp_path: Path, calibrated_ms: float | None
) -> None:
    """wrk times the REST series beside the harness (0.05 ms below it here); for the gRPC
    series the sentence gives calibration's figure when the run has one, and otherwise says
    it was not measured and how to measure it, never that it "comes from calibration"."""
    series = (Series("fastapi-rest", base_ms=1.0), Series("mlserver-grpc", base_ms=2.0))

    def shape(one: Series, key: PointKey) -> Shape:
        rest = one.scenario == "fastapi-rest"
        return Shape(
            latency_ms=one.base_ms,
            wrk_p50_ms=one.base_ms - 0.05 if rest else None,
            instrument_added_ms=None if rest else calibrated_ms,
        )

    data = load_run(make_run(tmp_path, series=series, levels=(1,), shape=shape, blocks=4).root)
    sentences = verdict_sentences(data, build_tables(data, ReportSettings()))
    (instrument,) = [s for s in sentences if "minus wrk" in s]
    assert "0.050 ms (0.050 to 0.050 ms)" in instrument, instrument
    grpc = instrument.split("wrk speaks no gRPC", 1)[1]
    if calibrated_ms is None:
        assert "was not measured" in grpc, instrument
        assert "make calibrate" in grpc, instrument
        assert "calibration's figure" not in grpc, instrument
    else:
        assert "about 0.020 ms" in grpc, instrument
        assert "no-op servers only" in grpc, instrument


@pytest.mark.parametrize(("max_blocks", "said"), [(6, "stopped once"), (4, "all the time budget")])
def test_the_verdict_says_why_the_session_measured_its_blocks(
    tmp_path: Path, max_blocks: int, said: str
) -> None:
    """A session without --blocks stops once decisive or when its budget is spent; the report
    says which, with the widest headline interval as the report itself measures it."""
    series = (Series("fastapi-rest", base_ms=1.0), Series("mlserver-grpc", base_ms=2.0))
    layout = make_run(tmp_path, series=series, levels=(1, 4), blocks=4)
    for path in layout.root.glob(f"points/*/{POINT_FILE}"):
        point = PointResult.read(path)
        assert point.interleave is not None
        plan = point.interleave.model_copy(
            update={"max_blocks": max_blocks, "ratio_precision": 0.03}
        )
        point.model_copy(update={"interleave": plan}).write(path)
    data = load_run(layout.root)
    sentences = verdict_sentences(data, build_tables(data, ReportSettings()))
    (settled,) = [s for s in sentences if "interleaved blocks" in s]
    assert "in 4 interleaved blocks" in settled, settled
    assert said in settled, settled
    assert "the widest" in settled, settled
    assert "MLServer" in settled, settled
    if max_blocks == 4:
        assert "aimed for" in settled, settled
    else:
        assert f"of the {max_blocks} the time budget allowed" in settled, settled
