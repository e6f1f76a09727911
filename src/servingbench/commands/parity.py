"""Send the held-out rows to every endpoint of every backend for every model; fail on a mismatch.

Endpoints: every registered backend's wire formats (`/predict` JSON, V2 REST, V2 gRPC), through
raw bytes and through tritonclient where declared. Labels must equal,
and probabilities be within --atol of, what the artifact gave in-process at train time. Needs
the stack running (`make serve-all`); addresses are serve-all's (same flags).
"""

from __future__ import annotations

import argparse
import sys

from servingbench.commands.stack_options import add_address_arguments, settings_from_args
from servingbench.console import format_table
from servingbench.models.artifacts import served_models
from servingbench.parity import DEFAULT_ATOL, ParityResult, backend_endpoints, run_parity

__all__ = ["add_arguments", "result_rows", "run"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_address_arguments(parser)
    parser.add_argument("--model", action="append", choices=served_models(), help="only this model")
    parser.add_argument(
        "--endpoint", action="append", metavar="TEXT", help="only endpoints whose label has this"
    )
    parser.add_argument("--batch-size", type=int, default=32, help="rows per batched request")
    parser.add_argument("--single-rows", type=int, default=5, help="rows also sent one per request")
    parser.add_argument("--atol", type=float, default=DEFAULT_ATOL, help="probability tolerance")


def result_rows(results: list[ParityResult]) -> list[tuple[str, ...]]:
    return [
        (
            r.endpoint,
            r.model,
            str(r.score.rows),
            str(r.score.label_mismatches),
            f"{r.score.max_abs_dp:.2e}",
            "PASS" if r.passed else "FAIL",
        )
        for r in results
    ]


def run(args: argparse.Namespace) -> int:
    settings = settings_from_args(args)
    endpoints = [
        e
        for name in settings.backend_names()
        for e in backend_endpoints(name, name, settings.host, settings.backend_ports(name))
    ]
    if args.endpoint:
        endpoints = [e for e in endpoints if any(f in e.label for f in args.endpoint)]
    try:
        results = run_parity(
            endpoints, args.model or served_models(), args.batch_size, args.single_rows, args.atol
        )
    except FileNotFoundError as exc:
        print(f"parity: {exc}", file=sys.stderr)
        return 2
    headers = ["endpoint", "model", "rows", "label mismatches", "max |dp|", "result"]
    print(format_table(headers, result_rows(results)))
    failed = [r for r in results if not r.passed]
    for r in failed:
        if r.error:
            print(f"FAIL {r.endpoint} / {r.model}: {r.error}", file=sys.stderr)
    if failed:
        print(f"parity: {len(failed)} of {len(results)} checks failed", file=sys.stderr)
        return 1
    print(f"parity: all {len(results)} checks passed (atol {args.atol:g})")
    return 0
