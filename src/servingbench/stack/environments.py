"""Each backend's own locked environment: is it built, which versions does it hold, do they match?

A server's pins must not dictate the load generator's or another server's versions, so each
backend runs from `backends/<name>/.venv`, built from its own `uv.lock`. The libraries that read
the artifacts (numpy, scikit-learn, xgboost, joblib) must be exactly those that wrote them: a
joblib pickle loaded by another scikit-learn may load and predict differently. This module
checks that before a server starts, and fails loudly when they drift.
"""

from __future__ import annotations

import functools
import json
import re
import subprocess
import tomllib
from collections.abc import Iterable

from servingbench.models.artifacts import load_metadata, served_models
from servingbench.servers.base import environment_bin, environment_dir
from servingbench.stack.processes import ServerStartError

__all__ = [
    "ARTIFACT_LIBRARIES",
    "BackendEnvironmentError",
    "backend_environment",
    "check_environment",
    "environment_packages",
    "environment_versions",
    "version_drift",
]

ARTIFACT_LIBRARIES = ("numpy", "scikit-learn", "xgboost", "joblib")

_PROBE = (
    "import json, sys\n"
    "from importlib import metadata\n"
    "names = json.loads(sys.argv[1])\n"
    "out = {}\n"
    "for n in names:\n"
    "    try:\n"
    "        out[n] = metadata.version(n)\n"
    "    except metadata.PackageNotFoundError:\n"
    "        out[n] = 'not installed'\n"
    "print(json.dumps(out))\n"
)


def backend_environment(backend: str) -> str | None:
    """The environment a backend runs from: `backends/<backend>/` when it holds a uv project,
    None when it runs from the harness's own (a test's fake, the calibration servers)."""
    return backend if (environment_dir(backend) / "pyproject.toml").is_file() else None


def environment_packages(name: str) -> tuple[str, ...]:
    """The distributions environment `name` asks for itself (its pyproject.toml's dependencies,
    without servingbench): what meta.json records as the server's own software."""
    project = tomllib.loads((environment_dir(name) / "pyproject.toml").read_text())["project"]
    names = (re.split(r"[\s\[<>=!~;]", r, maxsplit=1)[0] for r in project["dependencies"])
    return tuple(n for n in names if n != "servingbench")


class BackendEnvironmentError(ServerStartError):
    """A backend environment is missing, broken, or holds other artifact libraries."""


@functools.cache
def environment_versions(name: str, packages: tuple[str, ...]) -> dict[str, str]:
    """Versions of `packages` inside backend `name`'s environment (asked of its interpreter)."""
    python = environment_bin(name, "python")
    try:
        done = subprocess.run(
            [python, "-c", _PROBE, json.dumps(packages)],
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )
    except FileNotFoundError:
        raise BackendEnvironmentError(
            f"backend {name!r} runs from its own environment, {environment_dir(name)}/.venv, "
            f"which is not built: run `make setup` (or `.tools/bin/uv sync --frozen "
            f"--project backends/{name}`)"
        ) from None
    except subprocess.SubprocessError as exc:
        raise BackendEnvironmentError(f"cannot read versions from {python}: {exc}") from None
    versions: dict[str, str] = json.loads(done.stdout)
    return versions


def version_drift(
    environment: str, have: dict[str, str], wanted: dict[str, dict[str, str]]
) -> list[str]:
    """One line per artifact library whose version differs from what wrote a model's artifact."""
    problems = []
    for model, libraries in wanted.items():
        for library, version in libraries.items():
            got = have.get(library)
            if got is not None and got != version:
                problems.append(
                    f"{environment}: {library} {got}, but {model}'s artifact was written "
                    f"with {version}"
                )
    return problems


def _artifact_libraries(models: Iterable[str]) -> dict[str, dict[str, str]]:
    wanted = {}
    for model in models:
        try:
            meta = load_metadata(model)
        except FileNotFoundError:
            continue  # not trained yet: the server itself will say so
        wanted[model] = {k: v for k, v in meta.library_versions.items() if k in ARTIFACT_LIBRARIES}
    return wanted


def check_environment(name: str) -> dict[str, str]:
    """Backend `name`'s environment exists and reads the artifacts with their own libraries.

    Returns its versions of the artifact libraries; raises BackendEnvironmentError otherwise.
    """
    have = environment_versions(name, ARTIFACT_LIBRARIES)
    problems = version_drift(name, have, _artifact_libraries(served_models()))
    if problems:
        raise BackendEnvironmentError(
            "artifact libraries drifted; pin the same versions in every environment "
            "(pyproject.toml and backends/*/pyproject.toml) and re-lock, or retrain with "
            "`make train TRAIN_ARGS=--force`:\n  " + "\n  ".join(problems)
        )
    return have
