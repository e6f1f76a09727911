"""Command-line flags shared by the stack commands and `parity`: they override StackSettings.

A flag left out keeps the value from `SERVINGBENCH_STACK_*` or the default, so one
`StackSettings` decides every host and port.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from servingbench.stack.settings import StackSettings

__all__ = ["add_address_arguments", "add_stack_arguments", "parse_cpus", "settings_from_args"]


def parse_cpus(text: str) -> list[int]:
    """`0`, `0,1` or `none` (no pinning)."""
    if text.strip().lower() in {"none", ""}:
        return []
    try:
        return [int(part) for part in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"--server-cpus expects core numbers like 0 or 0,1 (or none), got {text!r}"
        ) from None


def add_address_arguments(parser: argparse.ArgumentParser) -> None:
    """Where the servers listen (what clients need)."""
    group = parser.add_argument_group("addresses (default: StackSettings / SERVINGBENCH_STACK_*)")
    group.add_argument("--host", help="interface of both servers (default 127.0.0.1)")
    for flag, what in (
        ("--api-port", "our FastAPI service (default 8000)"),
        ("--mlserver-http-port", "MLServer REST (default 8080)"),
        ("--mlserver-grpc-port", "MLServer gRPC (default 8081)"),
        ("--mlserver-metrics-port", "MLServer metrics (default 8082)"),
    ):
        group.add_argument(flag, type=int, metavar="PORT", help=what)


def add_stack_arguments(parser: argparse.ArgumentParser) -> None:
    """Addresses plus how the servers are run."""
    add_address_arguments(parser)
    group = parser.add_argument_group("servers")
    group.add_argument(
        "--server-cpus",
        type=parse_cpus,
        help="cores to pin both servers to, e.g. 0 or 0,1; none = no pinning "
        "(default: core 0 on a machine with 2+ cores)",
    )
    group.add_argument("--state-dir", type=Path, help="logs and state files (default .run/)")
    group.add_argument("--ready-timeout", dest="ready_timeout_s", type=float, help="seconds")
    group.add_argument(
        "--parallel-workers",
        dest="mlserver_parallel_workers",
        type=int,
        help="MLServer parallel_workers (0 = predict in the main process)",
    )


def settings_from_args(args: argparse.Namespace) -> StackSettings:
    """StackSettings with every flag the user gave taking precedence."""
    overrides: dict[str, Any] = {
        name: value
        for name, value in vars(args).items()
        if name in StackSettings.model_fields and value is not None
    }
    return StackSettings(**overrides)
