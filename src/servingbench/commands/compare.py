"""Compare run A with baseline run B, point by point, each difference judged by its interval.

Points match on every parameter that changes the work; what else differs is listed. With
--fail-on-regression 5%, exits 1 when any point is significantly worse by 5 % or more (req/s
lower, p50 or p99 higher), so a CI job can gate on it. Writes comparison.md/.csv into A.
"""

from __future__ import annotations

import argparse
import sys

from servingbench.commands.report import parse_fraction
from servingbench.report.intervals import MIN_EFFECT

__all__ = ["add_arguments", "run"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run", help="run id (folder under results/) or path")
    parser.add_argument("baseline", help="the run to compare against")
    parser.add_argument(
        "--min-effect",
        type=parse_fraction,
        default=MIN_EFFECT,
        help="smallest change called a difference (default 5%%)",
    )
    parser.add_argument(
        "--fail-on-regression",
        type=parse_fraction,
        metavar="SHARE",
        help="exit 1 on a significant regression of at least this share, e.g. 5%%",
    )


def run(args: argparse.Namespace) -> int:
    from servingbench.report import load_run
    from servingbench.report.compare import (
        compare_runs,
        regressions,
        setting_warnings,
        write_comparison,
    )

    try:
        current, baseline = load_run(args.run), load_run(args.baseline)
    except (FileNotFoundError, ValueError) as exc:
        print(f"compare: {exc}", file=sys.stderr)
        return 2
    table = compare_runs(current, baseline, args.min_effect)
    for path in write_comparison(current, baseline, args.min_effect):
        print(f"wrote {path}")
    for warning in setting_warnings(current, baseline):
        print(f"note: settings differ: {warning}")
    if table.empty:
        print("compare: no point in common", file=sys.stderr)
        return 2
    for column in ("rps", "p50_ms", "p99_ms"):
        counts = table[f"{column}_verdict"].value_counts().to_dict()
        print(f"{column}: " + ", ".join(f"{v} {n}" for v, n in counts.items()))
    if args.fail_on_regression is not None:
        found = regressions(table, args.fail_on_regression)
        for line in found:
            print(f"regression: {line}", file=sys.stderr)
        if found:
            return 1
    return 0
