"""Where the project's fixed folders are, found once so no module hard-codes a path twice."""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["model_settings_dir", "project_root", "results_dir", "state_dir"]


def project_root() -> Path:
    """The checkout's root: `SERVINGBENCH_ROOT`, else the nearest parent holding `pyproject.toml`.

    Falls back to the current directory so an installed package still works from a checkout.
    """
    env = os.environ.get("SERVINGBENCH_ROOT")
    if env:
        return Path(env).resolve()
    here = Path(__file__).resolve()
    for parent in [*here.parents, Path.cwd()]:
        if (parent / "pyproject.toml").is_file() and (parent / "model-settings").is_dir():
            return parent
    return Path.cwd()


def model_settings_dir() -> Path:
    """MLServer's model repository; our FastAPI service reads the same folder."""
    return project_root() / "model-settings"


def results_dir() -> Path:
    """One sub-folder per benchmark run."""
    return project_root() / "results"


def state_dir() -> Path:
    """Logs and pid files of the servers `serve-all` started (ignored by git)."""
    return project_root() / ".run"
