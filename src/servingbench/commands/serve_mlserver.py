"""Run MLServer in the foreground on model-settings/, with host and ports from StackSettings.

MLServer takes host and ports only from `settings.json` (constructor arguments beat its
`MLSERVER_*` variables, and `mlserver start` has no flag for them), so this renders a derived
repository with them and then replaces itself with `mlserver start`. The container image uses
it to listen on 0.0.0.0 while the committed settings say 127.0.0.1.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from servingbench.commands.stack_options import add_address_arguments, settings_from_args
from servingbench.stack.servers import mlserver_spec

__all__ = ["add_arguments", "run"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_address_arguments(parser)
    parser.add_argument(
        "--repository",
        type=Path,
        help="where to render the derived repository (default <state dir>/mlserver/serve)",
    )
    parser.add_argument(
        "--parallel-workers", dest="mlserver_parallel_workers", type=int, help="MLServer workers"
    )


def run(args: argparse.Namespace) -> int:
    settings = settings_from_args(args)
    spec = mlserver_spec(
        args.repository or settings.state_dir / "mlserver" / "serve",
        http_port=settings.mlserver_http_port,
        grpc_port=settings.mlserver_grpc_port,
        metrics_port=settings.mlserver_metrics_port,
        host=settings.host,
        server_overrides=settings.mlserver_server_overrides(),
    )
    os.environ.update(spec.env)
    os.execv(spec.argv[0], spec.argv)
