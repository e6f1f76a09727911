"""Start MLServer (REST, gRPC, metrics) and our FastAPI service, pinned, and wait until ready.

Fails fast when a port is taken; when the servers recorded in .run/ are already up, says so and
does nothing. Stop them with `servingbench stop-all` (`make stop-all`).
"""

from __future__ import annotations

import argparse
import sys
from urllib.parse import urlsplit

from servingbench.catalog import DEFAULT_MODEL
from servingbench.commands.stack_options import add_stack_arguments, settings_from_args
from servingbench.console import format_table, mib
from servingbench.stack.lifecycle import (
    PortBusyError,
    RunningStack,
    StackMismatchError,
    start_stack,
    tree_rss,
)
from servingbench.stack.processes import ServerStartError
from servingbench.stack.servers import ServerSpec

__all__ = ["add_arguments", "endpoint_rows", "run"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_stack_arguments(parser)


def _host(spec: ServerSpec) -> str:
    return urlsplit(spec.ready_urls[0]).hostname or "127.0.0.1"


def endpoint_rows(stack: RunningStack, model: str = DEFAULT_MODEL) -> list[tuple[str, str]]:
    """(what, address) for every endpoint the stack serves."""
    rows: list[tuple[str, str]] = []
    for spec in stack.specs:
        host = _host(spec)
        http = f"http://{host}:{spec.ports['http']}"
        if spec.backend == "mlserver":
            rows += [
                ("MLServer V2 REST", f"{http}/v2/models/{model}/infer"),
                ("MLServer V2 gRPC", f"{host}:{spec.ports['grpc']} (GRPCInferenceService)"),
                ("MLServer metrics", f"http://{host}:{spec.ports['metrics']}/metrics"),
            ]
        else:
            rows += [
                ("FastAPI /predict", f"{http}/predict"),
                ("FastAPI V2 REST", f"{http}/v2/models/{model}/infer"),
                ("FastAPI docs", f"{http}/docs"),
                ("FastAPI stats", f"{http}/stats"),
                ("FastAPI metrics", f"{http}/metrics"),
            ]
    return rows


def _server_rows(stack: RunningStack) -> list[tuple[str, ...]]:
    return [
        (
            s.spec.name,
            str(s.handle.pid),
            f"{s.startup_s:.1f} s" if s.startup_s is not None else "-",
            mib(tree_rss(s.handle)),
            ",".join(map(str, s.handle.cpus)) if s.handle.cpus else "any",
            s.handle.log_path,
        )
        for s in stack.servers
    ]


def run(args: argparse.Namespace) -> int:
    settings = settings_from_args(args)
    try:
        stack = start_stack(settings)
    except (PortBusyError, StackMismatchError) as exc:
        print(f"serve-all: {exc}", file=sys.stderr)
        return 2
    except ServerStartError as exc:
        print(f"serve-all: start-up failed; stopped what was started.\n{exc}", file=sys.stderr)
        return 1
    if stack.already_running:
        print(f"already running (state in {settings.state_dir}); nothing started.")
    print(format_table(["endpoint", "address"], endpoint_rows(stack)))
    print()
    headers = ["server", "pid", "start-up", "idle RSS", "cpus", "log"]
    print(format_table(headers, _server_rows(stack)))
    return 0
