"""Join the benchmark's load generator from this machine: a Locust worker that keeps rejoining.

    servingbench worker --master 10.0.0.4              # on each generator machine
    make bench ARGS="--remote-workers 2 --master-bind 0.0.0.0"   # on the master's machine

Every point of the sweep runs its own Locust master; a worker exits with it, so this command
starts a new worker after each one, until interrupted. The worker sends its records to the
master over Locust's messaging (never to a shared disk), and learns from the master which
user class, model, batch size and arrival rate to run. It needs a checkout of the same
servingbench with the models trained (`make train`: held-out rows and their answers are the
payloads).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time

from servingbench.commands.stack_options import parse_cpus
from servingbench.servers.base import SINGLE_THREAD_ENV, harness_bin
from servingbench.stack.processes import pin_argv
from servingbench.sweep.locust import SWEEP_LOCUSTFILE

__all__ = ["add_arguments", "run", "worker_argv"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--master", required=True, help="host of the Locust master")
    parser.add_argument("--master-port", type=int, default=5557, help="its port (default 5557)")
    parser.add_argument(
        "--processes", type=int, default=1, help="worker processes on this machine (default 1)"
    )
    parser.add_argument("--cpus", type=parse_cpus, help="cores to pin the workers to, e.g. 1")
    parser.add_argument(
        "--once", action="store_true", help="serve one point and exit (tests, scripts)"
    )


def worker_argv(args: argparse.Namespace) -> list[str]:
    argv = [harness_bin("locust"), "-f", str(SWEEP_LOCUSTFILE), "--worker"]
    argv += ["--master-host", args.master, "--master-port", str(args.master_port)]
    if args.processes > 1:
        argv += ["--processes", str(args.processes)]
    return pin_argv(argv, args.cpus or None)


def run(args: argparse.Namespace) -> int:
    # select: gevent's default epoll rounds timers up to the millisecond (open-loop schedules)
    env = {**os.environ, **SINGLE_THREAD_ENV, "GEVENT_BACKEND": "select"}
    argv = worker_argv(args)
    try:
        while True:
            print(f"worker: joining {args.master}:{args.master_port}", flush=True)
            code = subprocess.run(argv, env=env, check=False).returncode
            if args.once:
                return code
            time.sleep(1.0)
    except KeyboardInterrupt:
        print("worker: stopped", file=sys.stderr)
        return 130
