"""Show what `serve-all` started: pids, whether each server is ready, and its memory."""

from __future__ import annotations

import argparse
from pathlib import Path

from servingbench.console import format_table, mib
from servingbench.stack.lifecycle import stack_status
from servingbench.stack.settings import StackSettings

__all__ = ["add_arguments", "run"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--state-dir", type=Path, help="where serve-all wrote its state (.run/)")


def run(args: argparse.Namespace) -> int:
    """Exit 0 when every recorded server is ready, 1 otherwise (usable in scripts)."""
    statuses = stack_status(args.state_dir or StackSettings().state_dir)
    if not statuses:
        print("nothing running (start with `make serve-all`)")
        return 1
    rows = [
        (
            s.name,
            s.pid,
            "running" if s.alive else "exited",
            "yes" if s.ready else "no",
            mib(s.memory.pss) if s.alive else "-",
            mib(s.memory.rss) if s.alive else "-",
        )
        for s in statuses
    ]
    print(format_table(["server", "pid", "process", "ready", "PSS", "RSS"], rows))
    return 0 if all(s.ready for s in statuses) else 1
