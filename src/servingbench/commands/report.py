"""Tables, plots, report.md and report.html for a run (default: the latest under results/).

With --baseline, also comparison.md/.csv: this run's points against the same points of another
run, each difference judged against the window-to-window noise of both points.
"""

from __future__ import annotations

import argparse
import logging

import pandas as pd

from servingbench.report import ReportSettings, build_report, load_run
from servingbench.runs.layout import find_run, latest_run

log = logging.getLogger(__name__)

_COMPACT = {
    "series": "series",
    "concurrency": "N",
    "req_s": "req/s",
    "p50_ms": "p50 ms",
    "p99_ms": "p99 ms",
    "error_rate_pct": "err %",
    "flags": "flags",
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--run", help="run id (folder under results/) or path; default: latest")
    parser.add_argument("--baseline", help="run id or path to compare against")
    parser.add_argument(
        "--p99-bound-ms",
        type=float,
        help="latency bound for 'max throughput sustained' (default 50, env "
        "SERVINGBENCH_REPORT_P99_BOUND_MS)",
    )
    parser.add_argument(
        "--cdf-concurrency",
        type=int,
        help="concurrency of the latency CDF plot (default: highest common to all series)",
    )
    parser.add_argument(
        "--baseline-scenario",
        help="series the ratio tables divide by, `scenario` or `scenario@config` "
        "(default: the MLServer series with the highest peak req/s)",
    )


def _settings(args: argparse.Namespace) -> ReportSettings:
    overrides = {
        "p99_bound_ms": args.p99_bound_ms,
        "cdf_concurrency": args.cdf_concurrency,
        "baseline_series": args.baseline_scenario,
    }
    return ReportSettings(**{k: v for k, v in overrides.items() if v is not None})


def compact_table(summary: pd.DataFrame) -> str:
    """The few columns that answer "which backend, at what load, at what latency"."""
    table = summary[list(_COMPACT)].rename(columns=_COMPACT)
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
    bound = report.tables.under_bound[["series", "result", "p99_ms", "incl_flagged"]]
    print(
        f"max throughput with p99 <= {report.tables.bound_ms:g} ms "
        "(result: unflagged points only; incl_flagged: a faster flagged point, marked):"
    )
    print(bound.to_string(index=False, float_format=lambda v: f"{v:.2f}", na_rep="n/a"))
    print()
    for path in report.files:
        print(f"wrote {path}")
    return 0
