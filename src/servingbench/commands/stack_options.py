"""Command-line flags shared by the stack commands and `parity`: they override StackSettings.

A flag left out keeps the value from `SERVINGBENCH_STACK_*` or the default, so one
`StackSettings` decides every host and port. Port flags come from the backends' own port
declarations: `--<backend>-<port>-port`, e.g. `--mlserver-grpc-port`.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from servingbench.servers import backends
from servingbench.stack.settings import StackSettings, port_key

__all__ = [
    "add_address_arguments",
    "add_stack_arguments",
    "parse_cpus",
    "port_flag",
    "settings_from_args",
]


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


def _names(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


def port_flag(backend: str, port: str) -> str:
    return f"--{backend}-{port}-port"


def _port_dest(backend: str, port: str) -> str:
    return f"port__{backend}__{port}"


def add_address_arguments(parser: argparse.ArgumentParser) -> None:
    """Where the servers listen (what clients need)."""
    group = parser.add_argument_group("addresses (default: StackSettings / SERVINGBENCH_STACK_*)")
    group.add_argument("--host", help="interface of every server (default 127.0.0.1)")
    for backend in backends().values():
        for port, default in backend.ports.items():
            group.add_argument(
                port_flag(backend.name, port),
                dest=_port_dest(backend.name, port),
                type=int,
                metavar="PORT",
                help=f"{backend.title} {port} (default {default})",
            )
    group.add_argument(
        "--backends",
        type=_names,
        help=f"only these backends, comma separated (default: all of {', '.join(backends())})",
    )


def add_stack_arguments(parser: argparse.ArgumentParser) -> None:
    """Addresses plus how the servers are run."""
    add_address_arguments(parser)
    group = parser.add_argument_group("servers")
    group.add_argument(
        "--config",
        dest="configs",
        action="append",
        metavar="BACKEND:NAME",
        help="a named configuration instead of a backend's default (backends/server-configs.toml),"
        " e.g. mlserver:parallel-workers-1; repeatable, one per backend",
    )
    group.add_argument(
        "--server-cpus",
        type=parse_cpus,
        help="cores to pin every server to, e.g. 0 or 0,1; none = no pinning "
        "(default: core 0 on a machine with 2+ cores)",
    )
    group.add_argument("--state-dir", type=Path, help="logs and state files (default .run/)")
    group.add_argument("--ready-timeout", dest="ready_timeout_s", type=float, help="seconds")


def settings_from_args(args: argparse.Namespace) -> StackSettings:
    """StackSettings with every flag the user gave taking precedence."""
    values = vars(args)
    overrides: dict[str, Any] = {
        name: value
        for name, value in values.items()
        if name in StackSettings.model_fields and value is not None
    }
    flagged_ports = {
        port_key(backend, port): value
        for dest, value in values.items()
        if dest.startswith("port__") and value is not None
        for _, backend, port in [dest.split("__")]
    }
    if flagged_ports:
        overrides["ports"] = {**StackSettings().ports, **flagged_ports}
    return StackSettings(**overrides)
