"""State files of started servers: `<state_dir>/<name>.json` with the spec and process handle.

They let `stop-all` and `status`, run from another shell, find exactly the processes
`serve-all` started (pid + creation time), and let the benchmark sweep record the spec.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from servingbench.atomic import atomic_write_json
from servingbench.servers.base import LaunchSpec
from servingbench.stack.processes import ProcessHandle

__all__ = ["RunningServer", "log_path", "read_states", "state_path", "write_state"]


@dataclass(frozen=True)
class RunningServer:
    """A started server: how it was launched, the process, and its start-up time if known."""

    spec: LaunchSpec
    handle: ProcessHandle
    startup_s: float | None = None


def state_path(state_dir: Path, name: str) -> Path:
    return state_dir / f"{name}.json"


def log_path(state_dir: Path, name: str) -> Path:
    return state_dir / f"{name}.log"


def write_state(state_dir: Path, server: RunningServer) -> Path:
    path = state_path(state_dir, server.spec.name)
    atomic_write_json(path, asdict(server))  # Paths become strings (default=str)
    return path


def _from_dict(doc: dict[str, Any]) -> RunningServer:
    handle = dict(doc["handle"])
    handle["argv"] = tuple(handle["argv"])
    if handle.get("cpus") is not None:
        handle["cpus"] = tuple(handle["cpus"])
    spec = dict(doc["spec"])
    spec["workdir"] = Path(spec["workdir"])
    return RunningServer(
        spec=LaunchSpec(**spec),
        handle=ProcessHandle(**handle),
        startup_s=doc.get("startup_s"),
    )


def read_states(state_dir: Path) -> tuple[list[RunningServer], list[Path]]:
    """Every readable state file as a RunningServer, plus the paths of unreadable ones."""
    servers: list[RunningServer] = []
    broken: list[Path] = []
    if not state_dir.is_dir():
        return servers, broken
    for path in sorted(state_dir.glob("*.json")):
        try:
            servers.append(_from_dict(json.loads(path.read_text())))
        except (OSError, ValueError, KeyError, TypeError):
            broken.append(path)
    return servers, broken
