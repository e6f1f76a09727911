"""Tables, plots, report.md and report.html for a run (default: the latest under results/).

With --baseline, also comparison.md/.csv: this run's points against the same points of another
run, each difference judged by its 95 % interval across repeats (see `servingbench compare`).
"""

from __future__ import annotations

import argparse
import logging

import pandas as pd

from servingbench.report import ReportSettings, build_report, load_run
from servingbench.runs.layout import find_run, latest_run

log = logging.getLogger(__name__)

__all__ = ["add_arguments", "compact_table", "parse_fraction", "run"]


def parse_fraction(text: str) -> float:
    """`5%` or `0.05` -> 0.05."""
    text = text.strip()
    try:
        return float(text[:-1]) / 100 if text.endswith("%") else float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected a share like 5% or 0.05, got {text!r}"
        ) from None


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--run", help="run id (folder under results/) or path; default: latest")
    parser.add_argument("--baseline", help="run id or path to compare against")
    parser.add_argument(
        "--p99-bound-ms",
        type=float,
        help="latency bound of the capacity table (default 50, env "
        "SERVINGBENCH_REPORT_P99_BOUND_MS)",
    )
    parser.add_argument(
        "--min-effect",
        type=parse_fraction,
        help="smallest change called a difference, e.g. 5%% (default)",
    )
    parser.add_argument(
        "--cdf-level",
        type=float,
        help="load level of the latency CDF plot (default: highest common to all series)",
    )
    parser.add_argument(
        "--baseline-series",
        help="series the ratio tables divide by, `scenario` or `scenario@config` "
        "(default: the fastest stock-server series)",
    )


def _settings(args: argparse.Namespace) -> ReportSettings:
    overrides = {
        "p99_bound_ms": args.p99_bound_ms,
        "min_effect": args.min_effect,
        "cdf_level": args.cdf_level,
        "baseline_series": args.baseline_series,
    }
    return ReportSettings(**{k: v for k, v in overrides.items() if v is not None})


def compact_table(summary: pd.DataFrame) -> str:
    """The few columns that answer "which backend, at what load, at what latency"."""
    columns = {
        "series": "series",
        "level": "level",
        "repeats": "reps",
        "rps": "req/s",
        "rps_lo": "lo",
        "rps_hi": "hi",
        "p50_ms": "p50 ms",
        "p99_ms": "p99 ms",
        "flags": "flags",
    }
    table = summary[list(columns)].rename(columns=columns)
    return table.to_string(index=False, float_format=lambda v: f"{v:.2f}", na_rep="n/a")


def run(args: argparse.Namespace) -> int:
    try:
        settings = _settings(args)
        data = load_run(find_run(args.run) if args.run else latest_run())
        baseline = load_run(find_run(args.baseline)) if args.baseline else None
        report = build_report(data, settings, baseline)
    except (FileNotFoundError, ValueError) as exc:
        log.error("%s", exc)
        return 2
    print(compact_table(report.tables.summary))
    print()
    for sentence in report.verdict:
        print(f"- {sentence}")
    print()
    for line in report.summary.gates.lines():  # the run's own gates, judged again
        print(line)
    for path in report.files:
        print(f"wrote {path}")
    return 0
