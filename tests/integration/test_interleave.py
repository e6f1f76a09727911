"""An interleaved session against our real service: the series take turns, slice by slice.

Two series of one server (`/predict` and V2 REST) at 1 and 2 users, two measured blocks: every
request is sent inside one of its series' slices, the series' slices never overlap, each slice
has the server's CPU and the report pairs the series block by block. Where wrk is installed,
the REST series at one user get wrk slices in the same blocks.
"""

from __future__ import annotations

import datetime as dt
import shutil
from pathlib import Path

import numpy as np
import pytest

from servingbench.report import ReportSettings, load_run
from servingbench.report.tables import build_tables
from servingbench.runs.layout import RunLayout, find_run
from servingbench.runs.meta import RunMeta
from servingbench.runs.point import PointResult
from servingbench.runs.records import Outcome, RequestRecords
from tests.integration.test_sweep import run_cli

pytestmark = pytest.mark.integration

SERIES = ("fastapi-rest", "fastapi-v2-rest")
BLOCKS = 2


@pytest.fixture(scope="module")
def session(trained_models: None, tmp_path_factory: pytest.TempPathFactory) -> RunLayout:
    results = tmp_path_factory.mktemp("interleaved") / "results"
    code, output = run_cli(
        ["bench", "--scenarios", ",".join(SERIES), "--concurrency", "1,2", "--blocks",
         str(BLOCKS), "--timeout", "1", "--results-dir", str(results), "--run-id", "session"],
        timeout_s=240,
    )  # fmt: skip
    assert code == 0, output[-4000:]
    assert "interleaved session" in output
    return find_run("session", results)


def _points(layout: RunLayout) -> list[tuple[PointResult, RequestRecords]]:
    return [
        (PointResult.read(f / "point.json"), RequestRecords.load(f / "requests.npz"))
        for f in layout.point_dirs()
    ]


@pytest.mark.timeout(300)
def test_every_request_is_sent_inside_its_series_slices(session: RunLayout) -> None:
    points = _points(session)
    assert sorted((p.series, p.key.concurrency) for p, _ in points) == [
        (s, n) for s in sorted(SERIES) for n in (1, 2)
    ]
    absolute: dict[str, list[tuple[int, int]]] = {s: [] for s in SERIES}
    for point, records in points:
        assert point.method == "interleaved"
        assert point.status == "ok", point.failure_reason
        assert not {"failed", "errors"} & set(point.flags), point.flag_reasons
        assert [s.block for s in point.slices] == list(range(1, BLOCKS + 1))
        assert records.slices is not None
        assert records.slices.tolist() == [[s.from_ns, s.to_ns] for s in point.slices]
        assert set(records.measured().outcome.tolist()) <= {Outcome.OK, Outcome.INCOMPLETE}
        assert point.summary is not None
        assert point.summary.ok > 0
        # sent only inside a slice of this point (its settle included): the gate held
        settle = round((point.interleave.settle_s if point.interleave else 0) * 1e9)
        inside = np.zeros(len(records), dtype=bool)
        for piece in point.slices:
            inside |= (records.start_ns >= piece.from_ns - settle) & (
                records.start_ns < piece.to_ns
            )
        assert inside.all()
        # the server's CPU inside each slice, and its cost per request
        assert all(s.server_cpu_s is not None and s.server_cpu_s > 0 for s in point.slices)
        assert point.generator is not None
        assert point.generator.timed_connects == 0  # connections opened before any slice
        t0 = point.generator.t0_ns
        assert t0 is not None
        absolute[point.series] += [(t0 + s.from_ns, t0 + s.to_ns) for s in point.slices]
    # the two series' slices never overlap: they took turns
    mine, theirs = absolute.values()
    for lo, hi in mine:
        assert all(hi <= a or b <= lo for a, b in theirs)


@pytest.mark.timeout(300)
def test_the_report_pairs_the_series_block_by_block(session: RunLayout) -> None:
    data = load_run(session)
    assert set(data.points["repeat"]) == set(range(1, BLOCKS + 1))
    assert (data.aggregate["repeats"] == BLOCKS).all()
    assert data.aggregate["server_us_per_request"].between(10, 100_000).all()
    tables = build_tables(data, ReportSettings(baseline_series="fastapi-v2-rest"))
    assert tables.rps_ratio is not None
    assert set(tables.rps_ratio["pairs"]) == {BLOCKS}
    if shutil.which("wrk") is not None:  # wrk slices beside the harness's, at one user
        one_user = data.aggregate[data.aggregate["level"] == 1]
        assert (one_user["instrument_pairs"] == BLOCKS).all()
        assert one_user["instrument_p50_ms"].abs().lt(5).all()


@pytest.mark.timeout(300)
def test_a_session_without_blocks_stops_once_decisive(trained_models: None, tmp_path: Path) -> None:
    """Without --blocks the session plans as many blocks as the budget holds, judges after the
    10th and each later one, and cuts every Locust process's schedule once the headline ratio
    is within the precision (loose here, so it is met at once): the run ends long before the
    budget, each point with the blocks measured, not the ones planned."""
    results = tmp_path / "results"
    code, output = run_cli(
        ["bench", "--scenarios", ",".join(SERIES), "--concurrency", "2", "--ratio-precision",
         "0.5", "--budget", "280", "--timeout", "1", "--results-dir", str(results),
         "--run-id", "decisive"],
        timeout_s=280,
    )  # fmt: skip
    assert code == 0, output[-4000:]
    assert "decisive after" in output, output[-4000:]
    layout = find_run("decisive", results)
    for point, records in _points(layout):
        plan = point.interleave
        assert plan is not None
        assert plan.max_blocks is not None
        assert plan.max_blocks > 20, plan  # the budget held many more
        measured = [s.block for s in point.slices]
        assert measured == list(range(1, len(measured) + 1))
        assert 10 <= len(measured) <= 12, measured
        assert plan.blocks == len(measured)
        assert records.slices is not None
        assert len(records.slices) == len(measured)
    meta = RunMeta.read(layout.meta)
    assert meta.finished_at is not None
    took = dt.datetime.fromisoformat(meta.finished_at) - dt.datetime.fromisoformat(meta.started_at)
    assert took.total_seconds() < 150  # not the 260 s the budget would have let it run
