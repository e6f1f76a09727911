"""The whole benchmark: start the servers, check parity, sweep every scenario, stop, summarise.

Settings come from defaults < SERVINGBENCH_BENCH_* environment < --config TOML file < --quick
< flags. The bench starts its own servers on free ports (your `make serve-all` is untouched) and
writes results/<run-id>/ (meta.json, points/*/point.json, requests.npz, Locust csv).
"""

from __future__ import annotations

import argparse
import signal
import sys
from pathlib import Path
from types import FrameType
from typing import Any

from pydantic import ValidationError

from servingbench.sweep.settings import load_settings

__all__ = ["add_arguments", "cli_overrides", "existing_run", "run"]

# flag -> (settings field, type, help)
_FLAGS: dict[str, tuple[str, Any, str]] = {
    "--scenarios": (
        "scenarios",
        str,
        "comma list of scenarios, or all (default: each backend's fastest path, or every "
        "--target's)",
    ),
    "--configs": (
        "server_configs",
        str,
        "named server configurations (backends/server-configs.toml), e.g. all or "
        "fastapi:batching,mlserver:all; unnamed backends run their default",
    ),
    "--concurrency": ("concurrency", str, "comma list of user counts, e.g. 1,10,50"),
    "--models": ("models", str, "comma list of models (the catalog's and those added)"),
    "--rows": ("rows", str, "comma list of held-out rows per request, e.g. 1,8,64"),
    "--repeats": ("repeats", int, "measure every point this many times (shuffled order)"),
    "--seed": ("seed", int, "seed of the shuffled order (default: random, recorded)"),
    "--warmup": ("warmup_s", float, "warm-up seconds per point (recorded, not counted)"),
    "--window": ("window_s", float, "stability window in seconds"),
    "--max-duration": ("max_duration_s", float, "cap on a point's measured seconds"),
    "--timeout": ("timeout_s", float, "per-request timeout in seconds"),
    "--load": ("load", str, "closed (N users) or open (arrivals at a rate)"),
    "--method": ("method", str, "closed loop: interleaved (slices taking turns) or points"),
    "--slice": ("slice_s", float, "interleaved: slice length in seconds (settle included)"),
    "--blocks": ("blocks", int, "interleaved: measured blocks (one slice per series and level)"),
    "--rates": ("rates", str, "open loop: req/s, e.g. 200,400,800, or auto (of each peak)"),
    "--arrivals": ("arrivals", str, "open loop: poisson or constant"),
    "--max-in-flight": ("max_in_flight", int, "open loop: cap on requests in flight"),
    "--slo": (
        "slo",
        str,
        "open loop: find each series' capacity, e.g. 'p99<=50ms' (quoted for the shell)",
    ),
    "--generator-workers": ("generator_workers", int, "a Locust master with N local workers"),
    "--remote-workers": ("remote_workers", int, "wait for N `servingbench worker`s per point"),
    "--master-bind": ("master_bind", str, "interface the master listens on for workers"),
    "--server-cpus": ("server_cpus", str, "cores for the servers, e.g. 0 ('' = no pinning)"),
    "--generator-cpus": ("generator_cpus", str, "cores for Locust, e.g. 1 ('' = no pinning)"),
    "--results-dir": ("results_dir", Path, "where run folders are written"),
    "--run-id": ("run_id", str, "run folder name (must not exist yet)"),
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", type=Path, help="TOML file with BenchSettings keys")
    parser.add_argument(
        "--quick",
        action="store_true",
        help="smoke run: 1 and 10 users, 3 interleaved blocks (or one repeat of points of at "
        "most 4 s)",
    )
    parser.add_argument(
        "--skip-parity", action="store_true", default=None, help="skip the parity check"
    )
    parser.add_argument(
        "--target",
        dest="targets",
        action="append",
        metavar="SCENARIO=ADDRESS",
        help="measure a deployed server instead of starting one, e.g. "
        "mlserver-rest=http://10.0.0.5:8080 (repeatable); --target compose: every scenario at "
        "its default local port (the docker compose stack); --scenarios picks among targets",
    )
    parser.add_argument(
        "--metrics-url",
        dest="metrics_urls",
        action="append",
        metavar="SCENARIO=URL",
        help="a target's Prometheus URL, for server-side timing (repeatable)",
    )
    parser.add_argument(
        "--ca-bundle", type=Path, help="CA bundle for https:// and grpcs:// targets"
    )
    parser.add_argument(
        "--input-data",
        type=Path,
        metavar="FILE",
        help="rows to send (.npy, .npz, .csv, .parquet) to the one model of --models, a model "
        "added with `servingbench add-model`: they replace its stored rows, and their answers "
        "are computed from its artifact before parity",
    )
    for flag, (field, kind, text) in _FLAGS.items():
        parser.add_argument(flag, dest=field, type=kind, help=text)


def _pairs(values: list[str] | None, flag: str) -> dict[str, str] | str | None:
    """`["a=x", "b=y"]` -> {"a": "x", "b": "y"}; `["compose"]` stays a word."""
    if not values:
        return None
    if values == ["compose"]:
        return "compose"
    out = {}
    for value in values:
        name, sep, where = value.partition("=")
        if not sep or not name or not where:
            raise ValueError(f"{flag} expects SCENARIO=ADDRESS, got {value!r}")
        out[name.strip()] = where.strip()
    return out


def cli_overrides(args: argparse.Namespace) -> dict[str, Any]:
    """The settings explicitly given as flags (unset flags are None and left out)."""
    names = [field for field, _, _ in _FLAGS.values()] + ["skip_parity", "ca_bundle"]
    values = {name: getattr(args, name) for name in names if getattr(args, name, None) is not None}
    targets = _pairs(getattr(args, "targets", None), "--target")
    metrics = _pairs(getattr(args, "metrics_urls", None), "--metrics-url")
    if targets is not None:
        values["targets"] = targets
    if isinstance(metrics, dict):
        values["metrics_urls"] = metrics
    return values


def existing_run(prog: str, exc: FileExistsError) -> int:
    """Exit status 2 with the fix, for a --run-id whose folder is already there."""
    print(
        f"{prog}: {exc.filename} already exists: runs are never overwritten; "
        "choose another --run-id",
        file=sys.stderr,
    )
    return 2


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def _use_input_data(models: list[str], path: Path) -> int:
    """Store `path`'s rows with the one model benchmarked (0), or say why not (2)."""
    from servingbench.models.adding import InputError, replace_rows

    if len(models) != 1:
        print(f"bench: --input-data needs one model in --models, not {models}", file=sys.stderr)
        return 2
    try:
        added = replace_rows(models[0], path)
    except InputError as exc:
        print(f"bench: --input-data: {exc}; nothing was changed", file=sys.stderr)
        return 2
    print(f"bench: {added.metadata.name} now sends {added.metadata.inputs}")
    return 0


def run(args: argparse.Namespace) -> int:
    try:
        settings = load_settings(args.config, cli_overrides(args), quick=args.quick)
    except (ValidationError, ValueError, FileNotFoundError) as exc:
        print(f"bench: invalid settings: {exc}", file=sys.stderr)
        return 2
    if args.input_data is not None and _use_input_data(settings.models, args.input_data) != 0:
        return 2
    from servingbench.sweep.runner import run_sweep
    from servingbench.sweep.summary import summary_table
    from servingbench.sweep.targets import TargetError

    signal.signal(signal.SIGTERM, _interrupt)  # `kill` cleans up like Ctrl-C does
    try:
        result = run_sweep(settings)
    except FileExistsError as exc:  # the run folder; validation rules out point-folder clashes
        return existing_run("bench", exc)
    except KeyboardInterrupt:
        print("bench: interrupted; servers stopped, partial run kept", file=sys.stderr)
        return 130
    except TargetError as exc:
        print(f"bench: {exc}", file=sys.stderr)
        return 2
    print()
    print(summary_table(result.points))
    print(f"\nrun folder: {result.layout.root}")
    failed = [p.point_id for p in result.points if p.status == "failed"]
    if failed:
        print(f"bench: {len(failed)} point(s) failed: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0
