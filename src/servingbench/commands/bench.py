"""The whole benchmark: start the servers, check parity, sweep every scenario, stop, summarise.

Settings come from defaults < SERVINGBENCH_BENCH_* environment < --config TOML file < --quick
< flags. The bench starts its own servers on free ports (your `make serve-all` is untouched) and
writes results/<run-id>/ (meta.json, points/*/point.json, requests.npz, Locust csv, bench.log,
summary.json).

Gates for CI: --fail-if 'p99<=50ms,errors<=1%' and --fail-on-flags unstable,client-bound judge
the run itself; a failed gate still writes everything, then says which gate failed where.
"""

from __future__ import annotations

import argparse
import signal
import sys
from collections.abc import Collection
from pathlib import Path
from types import FrameType, UnionType
from typing import TYPE_CHECKING, Annotated, Any, Literal, Union, get_args, get_origin

from pydantic import BaseModel, ValidationError
from pydantic.fields import FieldInfo

from servingbench.runs.point import known_flags
from servingbench.runs.slo import parse_slo
from servingbench.sweep.settings import BenchSettings, load_settings

if TYPE_CHECKING:
    from servingbench.sweep.runner import SweepResult

__all__ = [
    "GATE_FAILED",
    "add_arguments",
    "add_settings_arguments",
    "cli_overrides",
    "existing_run",
    "run",
    "settings_flags",
]

GATE_FAILED = 3
"""Exit status of a run that measured every point but broke a --fail-if or --fail-on-flags gate."""

EXIT_STATUS = (
    "exit status: 0 every point measured and every gate passed; 1 a point failed to run; "
    f"2 bad settings or arguments; {GATE_FAILED} a --fail-if or --fail-on-flags gate failed "
    "(the run is complete and written); 130 interrupted"
)


def _objective(text: str) -> str:
    """argparse type of --fail-if: a readable objective, or the parser's error."""
    try:
        parse_slo(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return text


def _flag_names(text: str) -> str:
    """argparse type of --fail-on-flags: flag names that exist, or the parser's error."""
    try:
        known_flags([part.strip() for part in text.split(",") if part.strip()])
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return text


_CHECKED: dict[str, Any] = {"fail_if": _objective, "fail_on_flags": _flag_names}
"""Fields whose one word argparse checks itself, so a typo fails with the parser's message."""


def _flag_name(name: str, field: FieldInfo) -> str:
    """`--<name>`, seconds' `_s` dropped (`warmup_s` -> `--warmup`), or the field's own `flag`."""
    extra = field.json_schema_extra if isinstance(field.json_schema_extra, dict) else {}
    flag = extra.get("flag")
    return str(flag) if flag else "--" + name.removesuffix("_s").replace("_", "-")


def _shape(annotation: Any) -> dict[str, Any] | None:
    """How argparse reads a field from one command-line word (pydantic validates the word);
    None for a table (a dict or a nested model), which the config file or environment gives."""
    union = get_origin(annotation) in (Union, UnionType)
    kinds = [a for a in get_args(annotation) if a is not type(None)] if union else [annotation]
    kinds = [get_args(k)[0] if get_origin(k) is Annotated else k for k in kinds]
    if any(
        get_origin(k) is dict or (isinstance(k, type) and issubclass(k, BaseModel)) for k in kinds
    ):
        return None
    if get_origin(annotation) is Literal:
        return {"metavar": "{" + ",".join(map(str, get_args(annotation))) + "}"}
    if kinds == [bool]:
        return {"action": "store_true", "default": None}
    if len(kinds) == 1 and kinds[0] in (int, float, Path):
        return {"type": kinds[0]}
    if any(get_origin(k) is list for k in kinds):
        return {"metavar": "A,B,..."}  # comma lists, as in the environment and the file
    return {}


def settings_flags() -> dict[str, tuple[str, dict[str, Any]]]:
    """Flag -> (field, argparse options) for every `BenchSettings` field one word can set; the
    help is the field's description, so each is written once."""
    flags = {}
    for name, field in BenchSettings.model_fields.items():
        shape = _shape(field.annotation)
        if shape is not None:
            text = (field.description or "").replace("%", "%%")  # argparse formats help with %
            if name in _CHECKED:
                shape = {**shape, "type": _CHECKED[name]}
            flags[_flag_name(name, field)] = (name, {**shape, "help": text})
    return flags


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.epilog = EXIT_STATUS
    parser.add_argument("--config", type=Path, help="TOML file with BenchSettings keys")
    parser.add_argument(
        "--quick",
        action="store_true",
        help="smoke run: 1 and 10 users, 3 interleaved blocks (or one repeat of points of at "
        "most 4 s)",
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
        "--input-data",
        type=Path,
        metavar="FILE",
        help="rows to send (.npy, .npz, .csv, .parquet) to the one model of --models, a model "
        "added with `servingbench add-model`: they replace its stored rows, and their answers "
        "are computed from its artifact before parity",
    )
    add_settings_arguments(parser)


def add_settings_arguments(
    parser: argparse.ArgumentParser, fields: Collection[str] | None = None
) -> None:
    """A flag for each `BenchSettings` field (or each of `fields`: a command that reads only
    some of them offers only those, so no flag is silently ignored)."""
    group = parser.add_argument_group(
        "settings (BenchSettings; also SERVINGBENCH_BENCH_<FIELD> and --config keys)"
    )
    for flag, (field, options) in settings_flags().items():
        if fields is None or field in fields:
            group.add_argument(flag, dest=field, **options)


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
    names = [field for field, _ in settings_flags().values()]
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
    from servingbench.sweep.progress import Progress
    from servingbench.sweep.runner import run_sweep
    from servingbench.sweep.targets import TargetError

    signal.signal(signal.SIGTERM, _interrupt)  # `kill` cleans up like Ctrl-C does
    try:
        with Progress.for_terminal() as progress:
            result = run_sweep(settings, progress)
    except FileExistsError as exc:  # the run folder; validation rules out point-folder clashes
        return existing_run("bench", exc)
    except KeyboardInterrupt:
        print("bench: interrupted; servers stopped, partial run kept", file=sys.stderr)
        return 130
    except TargetError as exc:
        print(f"bench: {exc}", file=sys.stderr)
        return 2
    return _finish(result)


def _finish(result: SweepResult) -> int:
    """The table, summary.json and the gates' outcome; the exit status (see EXIT_STATUS)."""
    from servingbench.report.summary import write_run_summary
    from servingbench.sweep.summary import summary_table

    print()
    print(summary_table(result.points))
    summary, path = write_run_summary(result.layout)
    print(f"\nrun folder: {result.layout.root}\nsummary: {path}")
    failed = [p.point_id for p in result.points if p.status == "failed"]
    if failed:
        print(f"bench: {len(failed)} point(s) failed: {', '.join(failed)}", file=sys.stderr)
    for line in summary.gates.lines():
        print(f"bench: {line}", file=sys.stderr)
    if failed:
        return 1
    if not summary.gates.passed:
        if not summary.gates.failures:
            print("bench: gates failed: no point was measured", file=sys.stderr)
        return GATE_FAILED
    return 0
