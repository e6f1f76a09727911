"""Start one server per backend (its default configuration, or --config), pinned, until ready.

Fails fast when a port is taken; when the servers recorded in .run/ are already up, says so and
does nothing. Stop them with `servingbench stop-all` (`make stop-all`).
"""

from __future__ import annotations

import argparse
import sys

from servingbench.commands.stack_options import add_stack_arguments, settings_from_args
from servingbench.console import format_table, mib
from servingbench.models.catalog import DEFAULT_MODEL
from servingbench.servers import get_backend
from servingbench.servers.base import endpoint_rows as backend_rows
from servingbench.stack.lifecycle import (
    PortBusyError,
    RunningStack,
    StackMismatchError,
    start_stack,
    tree_memory,
)
from servingbench.stack.processes import ServerStartError

__all__ = ["add_arguments", "endpoint_rows", "run"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_stack_arguments(parser)


def endpoint_rows(stack: RunningStack, model: str = DEFAULT_MODEL) -> list[tuple[str, str]]:
    """(what, address) for every endpoint the stack serves."""
    return [
        row
        for spec in stack.specs
        for row in backend_rows(get_backend(spec.backend), spec.host, spec.ports, model)
    ]


def _server_rows(stack: RunningStack) -> list[tuple[str, ...]]:
    return [
        (
            s.spec.name,
            str(s.handle.pid),
            f"{s.startup_s:.1f} s" if s.startup_s is not None else "-",
            mib(tree_memory(s.handle).pss),
            ",".join(map(str, s.handle.cpus)) if s.handle.cpus else "any",
            s.handle.log_path,
        )
        for s in stack.servers
    ]


def run(args: argparse.Namespace) -> int:
    try:
        settings = settings_from_args(args)
        stack = start_stack(settings)
    except (PortBusyError, StackMismatchError, ValueError) as exc:
        print(f"serve-all: {exc}", file=sys.stderr)
        return 2
    except ServerStartError as exc:
        print(f"serve-all: start-up failed; stopped what was started.\n{exc}", file=sys.stderr)
        return 1
    if stack.already_running:
        print(f"already running (state in {settings.state_dir}); nothing started.")
    print(format_table(["endpoint", "address"], endpoint_rows(stack)))
    print()
    headers = ["server", "pid", "start-up", "idle PSS", "cpus", "log"]
    print(format_table(headers, _server_rows(stack)))
    return 0
