"""Run one backend's server in the foreground (what its container runs), until interrupted.

    servingbench serve mlserver --host 0.0.0.0        # in the MLServer image
    servingbench serve fastapi --config batching
    servingbench serve --check                        # the image's healthcheck

It builds the same launch spec `serve-all` and the benchmark use, from the backend's own
environment, then replaces itself with that process. Ports are the backend's defaults unless
given (`--<backend>-<port>-port`). `--check` starts nothing: it polls the spec's readiness URLs
once (exit 0 when all answer), so a container's healthcheck waits for exactly what `serve-all`
waits for, and no URL is written down twice.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

from servingbench.commands.stack_options import add_address_arguments, settings_from_args
from servingbench.servers import DEFAULT_CONFIG, backends, get_backend
from servingbench.stack.configs import load_server_configs
from servingbench.stack.processes import http_checks

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
    parser.add_argument(
        "--check",
        action="store_true",
        help="start nothing: exit 0 when the server at these ports is ready, 1 otherwise",
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
    ports = settings.backend_ports(backend.name)
    if args.check:
        with tempfile.TemporaryDirectory() as scratch:  # the running server's files stay untouched
            spec = backend.launch(config, ports, settings.host, Path(scratch))
        return 0 if all(check() for check in http_checks(spec.ready_urls)) else 1
    workdir = settings.state_dir / f"serve-{config.server_name}"
    spec = backend.launch(config, ports, settings.host, workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    os.chdir(workdir)
    os.environ.update(spec.env)
    os.execv(spec.argv[0], spec.argv)  # replaces this process: never returns
