"""Facts about the machine and the software, recorded beside every artifact and result."""

from __future__ import annotations

import os
import platform
import subprocess
from importlib import metadata

import psutil

from servingbench.runs.machine import GitInfo, Hardware, Software

__all__ = [
    "BENCH_LIBRARIES",
    "SERVER_LIBRARIES",
    "git_commit",
    "hardware_info",
    "library_versions",
    "software_info",
]

SERVER_LIBRARIES = (
    "fastapi",
    "starlette",
    "uvicorn",
    "uvloop",
    "grpcio",
    "protobuf",
    "pydantic",
    "orjson",
    "numpy",
    "scikit-learn",
    "xgboost",
    "joblib",
)
"""What a backend environment is asked about for meta.json (absent ones say so)."""

BENCH_LIBRARIES = (
    "servingbench",
    "locust",
    "gevent",
    "geventhttpclient",
    "grpcio",
    "protobuf",
    "tritonclient",
    "numpy",
    "pandas",
    "scikit-learn",
    "xgboost",
    "joblib",
)
"""The harness environment's packages that shape a measurement."""


def library_versions(names: tuple[str, ...] = BENCH_LIBRARIES) -> dict[str, str]:
    versions = {}
    for name in names:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def hardware_info() -> Hardware:
    freq = psutil.cpu_freq()
    return Hardware(
        cpu_model=_cpu_model(),
        logical_cores=psutil.cpu_count(logical=True),
        physical_cores=psutil.cpu_count(logical=False),
        cpu_max_mhz=round(freq.max, 1) if freq and freq.max else None,
        memory_total_bytes=psutil.virtual_memory().total,
        os=platform.platform(),
        kernel=platform.release(),
        affinity_available=hasattr(os, "sched_setaffinity"),
    )


def software_info() -> Software:
    return Software(
        python=platform.python_version(),
        implementation=platform.python_implementation(),
        packages=library_versions(),
    )


def git_commit(cwd: str | None = None) -> GitInfo:
    """HEAD's commit and whether the tree had uncommitted changes (a result should say so)."""

    def run(*args: str) -> str:
        return subprocess.run(
            ["git", *args], cwd=cwd, capture_output=True, text=True, check=True, timeout=10
        ).stdout.strip()

    try:
        return GitInfo(commit=run("rev-parse", "HEAD"), dirty=bool(run("status", "--porcelain")))
    except (OSError, subprocess.SubprocessError):
        return GitInfo(commit=None, dirty=None)
