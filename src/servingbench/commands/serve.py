"""Run one backend's server in the foreground (what its container runs), until interrupted.

    servingbench serve mlserver --host 0.0.0.0        # in the MLServer image
    servingbench serve fastapi --config batching

It builds the same launch spec `serve-all` and the benchmark use, from the backend's own
environment, then replaces itself with that process. Ports are the backend's defaults unless
given (`--<backend>-<port>-port`).
"""

from __future__ import annotations

import argparse
import os
import sys

from servingbench.commands.stack_options import add_address_arguments, settings_from_args
from servingbench.servers import DEFAULT_CONFIG, backends, get_backend
from servingbench.stack.configs import load_server_configs

__all__ = ["BACKEND_ENV", "add_arguments", "run"]

BACKEND_ENV = "SERVINGBENCH_SERVE_BACKEND"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "backend",
        nargs="?",
        choices=list(backends()),
        default=os.environ.get(BACKEND_ENV),
        help=f"which server to run (default: ${BACKEND_ENV}, which each container image sets)",
    )
    parser.add_argument(
        "--config",
        default=DEFAULT_CONFIG,
        help="named configuration (backends/server-configs.toml)",
    )
    add_address_arguments(parser)


def run(args: argparse.Namespace) -> int:  # noqa: RET503 - ends in execv, which never returns
    if args.backend is None:
        print(
            f"serve: name a backend ({', '.join(backends())}) or set {BACKEND_ENV}", file=sys.stderr
        )
        return 2
    settings = settings_from_args(args)
    backend = get_backend(args.backend)
    key = f"{backend.name}:{args.config}"
    config = load_server_configs().get(key)
    if config is None:
        print(f"serve: unknown configuration {key!r}", file=sys.stderr)
        return 2
    workdir = settings.state_dir / f"serve-{config.server_name}"
    spec = backend.launch(config, settings.backend_ports(backend.name), settings.host, workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    os.chdir(workdir)
    os.environ.update(spec.env)
    os.execv(spec.argv[0], spec.argv)  # replaces this process: never returns
