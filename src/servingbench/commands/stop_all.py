"""Stop exactly the servers `serve-all` recorded in .run/ (children included); safe to repeat."""

from __future__ import annotations

import argparse
from pathlib import Path

from servingbench.stack.lifecycle import stop_stack
from servingbench.stack.settings import StackSettings

__all__ = ["add_arguments", "run"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--state-dir", type=Path, help="where serve-all wrote its state (.run/)")


def run(args: argparse.Namespace) -> int:
    state_dir = args.state_dir or StackSettings().state_dir
    stopped = stop_stack(state_dir)
    if not stopped:
        print("nothing to stop")
    for server in stopped:
        verb = "stopped" if server.was_running else "was no longer running:"
        print(f"{verb} {server.name} (pid {server.pid})")
    return 0
