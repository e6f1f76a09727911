"""Measure the instrument: Locust's added latency at several loads and its req/s per core.

Runs the sweep's locustfile against no-op servers (HTTP and gRPC, pinned like the real servers)
beside the fastest Python client (and wrk, when installed); writes
results/calibration/<id>.json and latest.json, which every later `servingbench bench` records
and looks points up in for its client-bound flag.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from pydantic import ValidationError

from servingbench.commands.bench import add_settings_arguments, cli_overrides, existing_run
from servingbench.sweep.settings import load_settings, parse_int_list
from servingbench.wire import WIRE_FORMATS

__all__ = ["CALIBRATION_SETTINGS", "add_arguments", "run"]

CALIBRATION_SETTINGS = (
    "models",
    "rows",
    "host",
    "server_cpus",
    "generator_cpus",
    "generator_workers",
    "timeout_s",
    "stop_grace_s",
    "arrivals",
    "max_in_flight",
    "lateness_bound_ms",
    "startup_timeout_s",
    "results_dir",
    "run_id",
)
"""The `BenchSettings` a calibration reads (`calibration.run`, `sweep.measure_fixed_point`):
calibrate offers these flags only, so none is silently ignored."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", type=Path, help="TOML file with BenchSettings keys")
    parser.set_defaults(quick=False)
    add_settings_arguments(parser, CALIBRATION_SETTINGS)
    parser.add_argument(
        "--users", type=parse_int_list, default=None, help="user counts of the curve, e.g. 1,10,50"
    )
    parser.add_argument("--seconds", type=float, default=3.0, help="measured seconds per load")
    parser.add_argument(
        "--wires",
        type=lambda text: [w.strip() for w in text.split(",") if w.strip()],
        default=None,
        help=f"wire formats to calibrate (default: all of {', '.join(WIRE_FORMATS)})",
    )


def run(args: argparse.Namespace) -> int:
    try:
        settings = load_settings(args.config, cli_overrides(args), args.quick)
        unknown = [w for w in args.wires or [] if w not in WIRE_FORMATS]
        if unknown:
            raise ValueError(f"unknown wire format(s) {unknown}; known: {', '.join(WIRE_FORMATS)}")
    except (ValidationError, ValueError, FileNotFoundError) as exc:
        print(f"calibrate: invalid settings: {exc}", file=sys.stderr)
        return 2
    from servingbench.calibration.run import CURVE_USERS, calibration_path, run_calibration

    try:
        record = run_calibration(
            settings, args.users or CURVE_USERS, args.seconds, args.wires or None
        )
    except FileExistsError as exc:
        return existing_run("calibrate", exc)
    print(f"calibration written to {calibration_path(settings.results_dir)}")
    return 0 if all(entry.curve for entry in record.wires.values()) else 1
