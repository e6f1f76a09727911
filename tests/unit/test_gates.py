"""The run's own gates (`--fail-if`, `--fail-on-flags`) and summary.json, on synthetic runs whose
figures are known: the gates pass and fail where the figures say, and summary.json carries the
report's own figures with their intervals."""

from __future__ import annotations

import argparse
import json
import math
import re
from pathlib import Path
from typing import Any

import pytest

from servingbench.commands import bench
from servingbench.report import build_report, load_run
from servingbench.report.gates import judge_gates
from servingbench.report.summary import write_run_summary
from servingbench.runs.layout import RunLayout
from servingbench.runs.meta import RunMeta
from servingbench.runs.point import PointKey
from servingbench.runs.summary import SUMMARY_FILE, RunSummary
from servingbench.sweep.settings import BenchSettings
from tests.synthetic_run import UNSTABLE, Series, constant, make_run

SERIES = (Series("fastapi-rest"), Series("mlserver-rest"))


def _latency(series: Series, key: PointKey) -> float:
    """1 ms at one user for our service, 10 ms at more (eight users: enough requests to bound
    a p99); MLServer twice as slow."""
    base = 1.0 if key.level == 1 else 10.0
    return base * (2.0 if series.backend == "mlserver" else 1.0)


def _gated(layout: RunLayout, **gates: Any) -> RunLayout:
    """Record gates in the run's settings, as `bench --fail-if/--fail-on-flags` does."""
    meta = RunMeta.read(layout.meta)
    meta.sweep = meta.sweep.model_copy(update=gates)
    meta.write(layout.meta)
    return layout


@pytest.fixture(scope="module")
def known(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A run of exactly known latencies, copied per test by making it again (cheap)."""
    return tmp_path_factory.mktemp("runs")


def _run(base: Path, run_id: str, **kwargs: Any) -> RunLayout:
    return make_run(base, run_id, series=SERIES, levels=(1, 8), repeats=2,
                    shape=constant(_latency), **kwargs)  # fmt: skip


def test_a_latency_gate_fails_exactly_where_the_figure_breaks_it(known: Path) -> None:
    layout = _gated(_run(known, "p99"), fail_if="p99<=5ms")
    outcome = judge_gates(load_run(layout))
    assert not outcome.passed
    broken = {(f.line, f.level) for f in outcome.failures}
    assert broken == {("fastapi-rest", 8.0), ("mlserver-rest", 8.0)}
    assert all(f.gate == "--fail-if p99<=5ms" for f in outcome.failures)
    why = {f.line: f.why for f in outcome.failures}
    assert why["fastapi-rest"] == "p99 10.00 ms > 5 ms"
    assert why["mlserver-rest"] == "p99 20.00 ms > 5 ms"
    assert outcome.lines()[0].startswith("gate --fail-if p99<=5ms failed: ")
    assert " at 8 users: p99 " in outcome.lines()[0]


def test_a_gate_every_level_meets_passes(known: Path) -> None:
    outcome = judge_gates(load_run(_gated(_run(known, "met"), fail_if="p99<=25ms,p50<=0.03s")))
    assert outcome.passed
    assert outcome.failures == []


def test_a_gate_met_on_too_few_requests_fails_as_unbounded(known: Path) -> None:
    """Four users at 20 ms over the synthetic 1.5 s: 300 requests, too few to bound a p99
    (459), so a p99 within its bound is no claim; a p50 needs 7."""
    layout = make_run(known, "thin", series=SERIES[1:], levels=(4,), repeats=2,
                      shape=constant(_latency))  # fmt: skip
    _gated(layout, fail_if="p99<=25ms")
    (failure,) = judge_gates(load_run(layout)).failures
    assert failure.why.startswith("p99 not bounded: ")
    assert "fewer than the 459 that bound it at 99 % confidence" in failure.why
    _gated(layout, fail_if="p50<=25ms")
    assert judge_gates(load_run(layout)).passed


def test_an_error_gate_counts_failed_requests(known: Path) -> None:
    """Every 10th request fails: 10 % errors break errors<=1% but not errors<=15%."""
    layout = make_run(known, "errors", series=SERIES[:1], levels=(1,), repeats=2,
                      shape=constant(_latency, error_every=10))  # fmt: skip
    _gated(layout, fail_if="errors<=1%")
    outcome = judge_gates(load_run(layout))
    assert len(outcome.failures) == 1
    match = re.fullmatch(r"failed ([\d.]+) % > 1 %", outcome.failures[0].why)
    assert match is not None, outcome.failures[0].why
    assert float(match.group(1)) == pytest.approx(10, abs=0.5)
    _gated(layout, fail_if="errors<=15%")
    assert judge_gates(load_run(layout)).passed


def test_the_gate_judges_interleaved_blocks(known: Path) -> None:
    layout = make_run(known, "blocks", series=SERIES, levels=(1, 4), blocks=3,
                      shape=constant(_latency))  # fmt: skip
    _gated(layout, fail_if="p99<=15ms")
    outcome = judge_gates(load_run(layout))
    assert [(f.line, f.level) for f in outcome.failures] == [("mlserver-rest", 4.0)]


def test_a_flag_gate_names_the_flagged_point_and_its_reason(known: Path) -> None:
    layout = make_run(known, "flags")  # the default shape: one unstable point, one client-bound
    _gated(layout, fail_on_flags=["unstable"])
    outcome = judge_gates(load_run(layout))
    assert len(outcome.failures) == 1
    failure = outcome.failures[0]
    label, level, repeat = UNSTABLE
    assert (failure.line, failure.level) == (label, float(level))
    assert failure.point_id is not None
    assert failure.point_id.endswith(f"rep{repeat:03d}")
    assert failure.gate == "--fail-on-flags unstable"
    _gated(layout, fail_on_flags=["worker-lost"])
    assert judge_gates(load_run(layout)).passed


def _no_nan(text: str) -> Any:
    def refuse(name: str) -> None:
        raise AssertionError(f"summary.json holds {name}: not strict JSON")

    return json.loads(text, parse_constant=refuse)


def test_summary_json_carries_the_reports_figures(known: Path) -> None:
    layout = _gated(_run(known, "summary"), fail_if="p99<=5ms")
    summary, path = write_run_summary(layout)
    assert path == layout.root / SUMMARY_FILE
    doc = _no_nan(path.read_text())
    assert doc["schema_version"] == summary.schema_version
    assert RunSummary.read(path) == summary
    assert summary.written_by == "bench"

    by = {(f.line, f.level): f for f in summary.levels}
    assert set(by) == {(s.label, lvl) for s in SERIES for lvl in (1.0, 8.0)}
    one = by[("fastapi-rest", 1.0)]
    assert one.p50_ms.value == pytest.approx(1.0)
    assert one.p99_ms.value == pytest.approx(1.0)
    assert one.rps.value == pytest.approx(1000, rel=0.02)  # one user, 1 ms a request
    assert one.samples == one.planned == 2
    # the very figures of the report's aggregate, intervals included
    agg = load_run(layout).aggregate
    for (line, level), figures in by.items():
        row = agg[(agg["line"] == line) & (agg["level"] == level)].iloc[0]
        for name in ("rps", "p50_ms", "p99_ms"):
            got = getattr(figures, name)
            assert got.value == pytest.approx(row[name])
            for end in ("low", "high"):
                expected = row[f"{name}_{'lo' if end == 'low' else 'hi'}"]
                value = getattr(got, end)
                assert (value is None) == (not math.isfinite(expected))
                if value is not None:
                    assert value == pytest.approx(expected)
    ratios = {(r.figure, r.line, r.level): r for r in summary.ratios}
    assert summary.baseline_series == "mlserver-rest"
    ratio = ratios[("p99_ms", "fastapi-rest", 8.0)]
    assert ratio.ratio.value == pytest.approx(0.5)
    assert ratio.pairs == 2
    assert summary.verdict
    assert any("req/s" in sentence for sentence in summary.verdict)
    assert summary.settings["fail_if"] == "p99<=5ms"
    assert not summary.gates.passed
    assert len(summary.gates.failures) == 2
    assert [c.line for c in summary.capacity] == ["fastapi-rest", "mlserver-rest"]


def test_summary_json_lists_flags_per_point_with_reasons(known: Path) -> None:
    layout = make_run(known, "flagged")
    summary, _ = write_run_summary(layout)
    flagged = {
        point: flags for level in summary.levels for point, flags in level.points.items() if flags
    }
    unstable = [p for p, flags in flagged.items() if "unstable" in flags]
    assert len(unstable) == 1
    assert flagged[unstable[0]]["unstable"]  # a reason, not just the name
    failed = [level for level in summary.levels if level.samples < level.planned]
    assert failed
    assert failed[0].flags.get("failed") == 1
    assert summary.gates.passed  # no gate given, nothing to fail


def test_make_report_rewrites_the_same_summary(known: Path) -> None:
    layout = _gated(_run(known, "again"), fail_on_flags=["unstable"], fail_if="p99<=5ms")
    bench_copy, path = write_run_summary(layout)
    report = build_report(load_run(layout))
    assert path in report.files
    again = RunSummary.read(path)
    assert again.written_by == "report"
    assert again.model_copy(update={"written_by": "bench"}) == bench_copy
    assert report.summary == again


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="bench")
    bench.add_arguments(parser)
    return parser


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--fail-on-flags", "unstable,shaky"], "unknown flag(s) shaky; known: failed, errors"),
        (["--fail-if", "p99<50"], "latency bound 'p99<50' needs a unit"),
        (["--fail-if", "p42<=5ms"], "cannot read SLO bound 'p42<=5ms'"),
    ],
)
def test_a_bad_gate_is_an_argument_error(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        _parser().parse_args(argv)
    assert exited.value.code == 2
    assert message in capsys.readouterr().err


def test_gates_are_settings_with_their_own_exit_status(capsys: pytest.CaptureFixture[str]) -> None:
    args = _parser().parse_args(["--fail-if", "p99<=50ms,errors<=1%", "--fail-on-flags",
                                 "unstable,client-bound"])  # fmt: skip
    settings = BenchSettings(**bench.cli_overrides(args))
    assert settings.fail_if == "p99<=50ms,errors<=1%"
    assert settings.fail_on_flags == ["unstable", "client-bound"]
    with pytest.raises(ValueError, match="unknown flag"):
        BenchSettings(fail_on_flags="contended,late")
    assert bench.GATE_FAILED not in (0, 1, 2, 130)
    with pytest.raises(SystemExit):
        _parser().parse_args(["--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert f"{bench.GATE_FAILED} a --fail-if or --fail-on-flags gate failed" in text
    assert "errors<=1%" in text  # the help comes from BenchSettings, % intact
