"""Measure the instrument: Locust's req/s ceiling per core and its added latency at one user.

Runs each scenario's locustfile against no-op servers (REST and gRPC, pinned like the real
servers) and a minimal reference client; writes results/calibration/<id>.json and latest.json,
which every later `servingbench bench` records and uses for its client-bound flag.
"""

from __future__ import annotations

import argparse
import sys

from pydantic import ValidationError

from servingbench.commands.bench import add_arguments as add_bench_arguments
from servingbench.commands.bench import cli_overrides, existing_run
from servingbench.sweep.settings import load_settings

__all__ = ["add_arguments", "run"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_bench_arguments(parser)
    parser.add_argument("--users", type=int, default=20, help="users for the ceiling point")


def run(args: argparse.Namespace) -> int:
    try:
        settings = load_settings(args.config, cli_overrides(args), args.quick)
    except (ValidationError, ValueError, FileNotFoundError) as exc:
        print(f"calibrate: invalid settings: {exc}", file=sys.stderr)
        return 2
    from servingbench.sweep.calibrate import run_calibration
    from servingbench.sweep.instrument import LATEST, calibration_dir

    try:
        doc = run_calibration(settings, users=args.users)
    except FileExistsError as exc:
        return existing_run("calibrate", exc)
    print(f"calibration written to {calibration_dir(settings.results_dir)}/{LATEST}")
    failed = [n for n, g in doc["generator"].items() if g["status"] != "ok"]
    return 1 if failed else 0
