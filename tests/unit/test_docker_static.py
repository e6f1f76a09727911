"""docker-compose.yml and backends/Dockerfile agree with the code, checked without a Docker engine.

One parametrised Dockerfile (build arg BACKEND) builds every backend's image from that
backend's own locked environment; compose has one service per registered backend, publishing
the ports the backend declares, on loopback only, and passes the base images through from the
environment. The Dockerfile builds with the classic builder as well as BuildKit, and no uv
download cache stays in an image.
"""

from __future__ import annotations

import functools
import json
import os
import re
import shutil
import subprocess
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml

from servingbench.cli import COMMANDS, _build_parser
from servingbench.commands.serve import BACKEND_ENV
from servingbench.commands.stack_options import settings_from_args
from servingbench.paths import project_root
from servingbench.servers import DEFAULT_CONFIG, backends, get_backend

ROOT = project_root()
COMPOSE = ROOT / "docker-compose.yml"
DOCKERFILE = ROOT / "backends" / "Dockerfile"
HARNESS_ONLY = ("locust", "pandas", "matplotlib", "tritonclient", "nbclient")
"""The load generator's, report's and notebook's packages: never in a server image."""
DEV_ONLY = ("nbformat", "ipykernel", "pytest", "mypy", "ruff", "jupyterlab")


def _compose() -> dict[str, Any]:
    doc: dict[str, Any] = yaml.safe_load(COMPOSE.read_text())
    return doc


def _services() -> dict[str, dict[str, Any]]:
    services: dict[str, dict[str, Any]] = _compose()["services"]
    return services


def _instructions(dockerfile: Path = DOCKERFILE) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    lines = [
        line for line in dockerfile.read_text().splitlines() if not line.strip().startswith("#")
    ]
    text = re.sub(r"\\\n\s*", " ", "\n".join(lines))
    out = []
    for raw in text.splitlines():
        line = raw.strip()
        if line:
            keyword, _, rest = line.partition(" ")
            out.append((keyword.upper(), rest.strip()))
    return out


def _global_args() -> dict[str, str]:
    """`ARG NAME=default` lines before the first FROM (the ones FROM may use)."""
    args = {}
    for keyword, rest in _instructions():
        if keyword == "FROM":
            break
        if keyword == "ARG":
            name, _, default = rest.partition("=")
            args[name] = default
    return args


def _final_stage() -> list[tuple[str, str]]:
    instructions = _instructions()
    last_from = max(i for i, (kw, _) in enumerate(instructions) if kw == "FROM")
    return instructions[last_from:]


def _env() -> dict[str, str]:
    return dict(
        part.split("=", 1)
        for kw, args in _final_stage()
        if kw == "ENV"
        for part in args.split()
        if "=" in part
    )


@functools.cache
def _dockerignore() -> list[tuple[bool, re.Pattern[str]]]:
    """(re-included?, pattern) in file order, in Docker's syntax (`**`, `*`, `?`, `!`)."""
    rules = []
    for raw in (ROOT / ".dockerignore").read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        negated = line.startswith("!")
        pattern = line.lstrip("!").strip("/")
        regex = ""
        i = 0
        while i < len(pattern):
            if pattern.startswith("**/", i):
                regex, i = regex + "(?:.*/)?", i + 3
            elif pattern.startswith("**", i):
                regex, i = regex + ".*", i + 2
            elif pattern[i] == "*":
                regex, i = regex + "[^/]*", i + 1
            elif pattern[i] == "?":
                regex, i = regex + "[^/]", i + 1
            else:
                regex, i = regex + re.escape(pattern[i]), i + 1
        rules.append((negated, re.compile(regex)))
    return rules


def _in_context(path: str) -> bool:
    """Whether `path` (relative to the build context) is sent to the builder.

    As Docker decides: a pattern matches a path or any of its parent folders, and the last
    matching line wins.
    """
    parts = path.strip("/").split("/")
    candidates = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    included = True
    for negated, regex in _dockerignore():
        if any(regex.fullmatch(c) for c in candidates):
            included = negated
    return included


def _build_args(name: str) -> dict[str, str]:
    args: dict[str, str] = _services()[name]["build"].get("args", {})
    return args


@pytest.fixture(params=list(backends()))
def service(request: pytest.FixtureRequest) -> tuple[str, dict[str, Any]]:
    name: str = request.param
    return name, _services()[name]


def test_compose_has_one_service_per_registered_backend() -> None:
    assert set(_services()) == set(backends())


def test_every_service_builds_its_backend_from_the_one_dockerfile(
    service: tuple[str, dict[str, Any]],
) -> None:
    name, svc = service
    assert (ROOT / svc["build"]["context"]).resolve() == ROOT
    assert (ROOT / svc["build"]["dockerfile"]).resolve() == DOCKERFILE
    assert DOCKERFILE.is_file()
    backend = _build_args(name)["BACKEND"]
    assert backend == name
    get_backend(backend)  # a registered backend
    for lock_file in ("pyproject.toml", "uv.lock"):
        assert (ROOT / "backends" / backend / lock_file).is_file(), f"{backend}: {lock_file}"
    assert svc["image"] == f"servingbench-{name}:latest"


def test_ports_are_the_backends_declared_ones_on_loopback(
    service: tuple[str, dict[str, Any]],
) -> None:
    name, svc = service
    published = set()
    for mapping in svc["ports"]:
        host_ip, host_port, container_port = str(mapping).split(":")
        assert host_ip == "127.0.0.1", f"{name} publishes {mapping} beyond loopback"
        assert host_port == container_port
        published.add(int(container_port))
    assert sorted(published) == sorted(get_backend(name).ports.values())


def test_healthcheck_is_the_backends_own_readiness_check(
    service: tuple[str, dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    """No URL is copied into compose: `serve --check` polls the readiness URLs of the backend's
    own launch spec, the ones `serve-all` waits for (tests/integration/test_stack.py runs it)."""
    name, svc = service
    command = svc["healthcheck"]["test"]
    assert command[0] == "CMD"
    assert command[1:3] == ["servingbench", "serve"]
    monkeypatch.setenv(BACKEND_ENV, name)  # what the image's ENV sets from BACKEND
    args = _build_parser("serve").parse_args(command[2:])
    assert (args.backend, args.check, args.config) == (name, True, DEFAULT_CONFIG)
    assert (
        settings_from_args(args).host == "127.0.0.1"
    )  # the server binds 0.0.0.0; asked on loopback


def test_volumes_mount_the_model_settings_read_only(service: tuple[str, dict[str, Any]]) -> None:
    _, svc = service
    assert svc["volumes"]
    for volume in svc["volumes"]:
        source, target, mode = volume.split(":")
        assert (ROOT / source).resolve() == ROOT / "model-settings"
        assert mode == "ro"
        assert target == f"{_env()['SERVINGBENCH_ROOT']}/model-settings"


def test_base_images_are_build_args_with_python_311_and_uv_defaults() -> None:
    args = _global_args()
    assert re.fullmatch(r"(docker\.io/(library/)?)?python:3\.11[-.\w]*", args["PYTHON_IMAGE"])
    assert re.fullmatch(r"ghcr\.io/astral-sh/uv:[\w.-]+", args["UV_IMAGE"])
    root = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert root["project"]["requires-python"] == ">=3.11,<3.12"  # the default's minor version
    froms = [rest.split()[0] for kw, rest in _instructions() if kw == "FROM"]
    assert froms[-1] == "${PYTHON_IMAGE}"  # the image that runs is the Python one
    for image in froms:
        match = re.fullmatch(r"\$\{?(\w+)\}?", image)
        assert match, f"FROM {image} pins an image instead of using a build arg"
        assert match.group(1) in {"PYTHON_IMAGE", "UV_IMAGE"}


def _base_image_args() -> dict[str, str]:
    """The global ARGs that FROM lines use (the base images), with the Dockerfile's defaults."""
    used = {
        match.group(1)
        for kw, rest in _instructions()
        if kw == "FROM"
        for match in [re.fullmatch(r"\$\{?(\w+)\}?", rest.split()[0])]
        if match
    }
    return {name: default for name, default in _global_args().items() if name in used}


def test_compose_passes_the_base_images_from_the_environment(
    service: tuple[str, dict[str, Any]],
) -> None:
    """A registry mirror works through compose: `${NAME:-default}`, the Dockerfile's default."""
    name, _ = service
    base_images = _base_image_args()
    assert set(base_images) == {"PYTHON_IMAGE", "UV_IMAGE"}
    args = _build_args(name)
    for arg, default in base_images.items():
        assert args.get(arg) == f"${{{arg}:-{default}}}", (
            f"service {name}: pass build arg {arg}: ${{{arg}:-{default}}}"
        )


def test_backend_is_a_build_arg_of_the_final_stage() -> None:
    """An ARG before FROM is not visible inside a stage: BACKEND must be declared in it."""
    stage = _final_stage()
    assert ("ARG", "BACKEND") in stage
    env = _env()
    assert env[BACKEND_ENV] == "${BACKEND}"
    assert env["PATH"].startswith("/app/backends/${BACKEND}/.venv/bin:")


@pytest.mark.parametrize("backend", list(backends()))
def test_copy_sources_exist_and_pass_dockerignore(backend: str) -> None:
    copies = [args for kw, args in _instructions() if kw == "COPY"]
    assert copies
    for args in copies:
        if args.startswith("--from"):
            continue
        *sources, _dest = args.split()
        for raw in sources:
            source = raw.replace("${BACKEND}", backend).replace("$BACKEND", backend)
            path = ROOT / source
            assert path.exists(), source
            files = [p for p in path.rglob("*") if p.is_file()] if path.is_dir() else [path]
            sent = [f for f in files if "__pycache__" not in f.parts]
            assert sent, source
            for file in sent:
                rel = file.relative_to(ROOT).as_posix()
                assert _in_context(rel), f"{rel} is excluded by .dockerignore"


def _dockerignore_lines() -> list[str]:
    lines = (ROOT / ".dockerignore").read_text().splitlines()
    return [line.strip() for line in lines if line.strip() and not line.startswith("#")]


@pytest.mark.parametrize(
    "project",
    sorted(p.parent.name for p in (ROOT / "backends").glob("*/pyproject.toml")),
)
def test_every_backend_project_is_in_the_build_context(project: str) -> None:
    """Every folder of backends/ with a project, registered or not, found on disk: its
    project and lock reach the build, its local environment does not."""
    for name in ("pyproject.toml", "uv.lock"):
        assert _in_context(f"backends/{project}/{name}"), f"backends/{project}/{name}"
    assert not _in_context(f"backends/{project}/.venv/bin/python")


def test_dockerignore_reincludes_are_literal_paths() -> None:
    """The classic builder does not look inside an excluded folder for a wildcard re-include:
    `!backends/*/uv.lock` passes BuildKit but fails `docker build` where buildx is absent."""
    wildcards = [
        line for line in _dockerignore_lines() if line.startswith("!") and re.search(r"[*?[]", line)
    ]
    assert not wildcards, f"write one literal line per path instead of {wildcards}"


def test_dockerignore_keeps_artifacts_and_local_environments_out() -> None:
    """No model is baked in (compose mounts it), and no host venv or test reaches the image."""
    for path in (
        "model-settings/iris/model.joblib",
        "backends/mlserver/.venv/bin/python",
        ".venv/bin/python",
        "tests/conftest.py",
        "src/servingbench/__pycache__/cli.cpython-311.pyc",
        "results/x/meta.json",
    ):
        assert not _in_context(path), path
    assert _in_context("src/servingbench/wire.py")
    assert _in_context("backends/kserve/uv.lock")


def test_the_backends_locked_environment_is_what_installs() -> None:
    runs = [args for kw, args in _instructions() if kw == "RUN"]
    syncs = [cmd.strip() for run in runs for cmd in run.split("&&") if "uv sync" in cmd]
    assert syncs
    for cmd in syncs:
        assert cmd.startswith("uv sync --frozen --no-dev --project backends/${BACKEND}"), cmd
    assert "uv sync --frozen --no-dev --project backends/${BACKEND}" in syncs  # the full install
    everything = " ".join(runs)
    assert "pip install" not in everything
    assert "uv pip" not in everything


BUILDKIT_ONLY = {
    "RUN": {"mount", "network", "security"},
    "COPY": {"link", "chmod", "parents", "exclude"},
    "ADD": {"link", "chmod", "checksum", "keep-git-dir", "exclude"},
}
"""Instruction flags the classic builder refuses (`the --mount option requires BuildKit`)."""


def _leading_flags(rest: str) -> set[str]:
    """`--mount=type=cache,... uv sync --link-mode` -> {"mount"}: flags before the command."""
    flags = set()
    for token in rest.split():
        if not token.startswith("--"):
            break
        flags.add(token[2:].partition("=")[0])
    return flags


def test_every_instruction_builds_with_the_classic_builder() -> None:
    text = DOCKERFILE.read_text()
    assert not re.search(r"^#\s*syntax=", text, re.MULTILINE), "no BuildKit frontend"
    assert "<<" not in text, "no heredocs (BuildKit only)"
    for keyword, rest in _instructions():
        refused = _leading_flags(rest) & BUILDKIT_ONLY.get(keyword, set())
        assert not refused, f"{keyword} {rest}: --{', --'.join(refused)} needs BuildKit"


def test_uv_leaves_no_download_cache_in_the_image() -> None:
    """Without it, uv's cache (about the environment's size again) stays in the sync layer."""
    no_cache = _env().get("UV_NO_CACHE") == "1"
    runs = [args for kw, args in _instructions() if kw == "RUN"]
    syncs = [cmd.strip() for run in runs for cmd in run.split("&&") if "uv sync" in cmd]
    assert syncs
    for cmd in syncs:
        assert no_cache or "--no-cache" in cmd.split(), f"{cmd}: set UV_NO_CACHE=1 or --no-cache"


def _requirement_names(requirements: list[str]) -> set[str]:
    return {re.split(r"[\s\[<>=!~;]", r, maxsplit=1)[0].lower() for r in requirements}


def _declared(pyproject: dict[str, Any]) -> set[str]:
    project = pyproject.get("project", {})
    names = _requirement_names(project.get("dependencies", []))
    for extra in project.get("optional-dependencies", {}).values():
        names |= _requirement_names(extra)
    for group in pyproject.get("dependency-groups", {}).values():
        names |= _requirement_names([g for g in group if isinstance(g, str)])
    return names


@pytest.mark.parametrize("backend", list(backends()))
def test_server_images_get_no_harness_packages(backend: str) -> None:
    pyproject = tomllib.loads((ROOT / "backends" / backend / "pyproject.toml").read_text())
    declared = _declared(pyproject)
    assert "servingbench" in declared  # the console script the image's CMD runs
    assert not declared & {*HARNESS_ONLY, *DEV_ONLY}
    lock = tomllib.loads((ROOT / "backends" / backend / "uv.lock").read_text())
    locked = {package["name"] for package in lock["package"]}
    assert not locked & set(DEV_ONLY)
    assert not locked & {"locust", "matplotlib", "nbclient"}
    if backend == "fastapi":  # our service: nothing but servingbench[api] and the artifact libs
        assert not locked & set(HARNESS_ONLY)
    # MLServer 1.7.1 and KServe 0.16 themselves require pandas (and MLServer tritonclient):
    # those are the servers' own dependencies, locked with them, not the harness's.


def test_harness_packages_are_a_dependency_group_of_the_root_project() -> None:
    root = tomllib.loads((ROOT / "pyproject.toml").read_text())
    core = _requirement_names(root["project"]["dependencies"])
    extras = {
        name
        for extra in root["project"].get("optional-dependencies", {}).values()
        for name in _requirement_names(extra)
    }
    assert not (core | extras) & {*HARNESS_ONLY, *DEV_ONLY}
    harness = _requirement_names(root["dependency-groups"]["harness"])
    assert set(HARNESS_ONLY) <= harness


@pytest.mark.parametrize("backend", list(backends()))
def test_command_serves_the_images_backend_on_every_interface(
    backend: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    cmd = [json.loads(args) for kw, args in _final_stage() if kw == "CMD"][-1]
    assert cmd[:2] == ["servingbench", "serve"]
    assert cmd[1] in COMMANDS
    monkeypatch.setenv(BACKEND_ENV, backend)  # what the image's ENV sets from BACKEND
    args = _build_parser(cmd[1]).parse_args(cmd[1:])  # SystemExit on an unknown flag
    assert args.backend == backend
    assert args.host == "0.0.0.0"
    assert args.config == DEFAULT_CONFIG


def test_docker_compose_config_accepts_the_file() -> None:
    docker = shutil.which("docker")
    if docker is None:
        pytest.skip("docker CLI not installed")
    probe = subprocess.run([docker, "compose", "version"], capture_output=True, check=False)
    if probe.returncode != 0:
        pytest.skip("docker compose plugin not installed")
    result = subprocess.run(
        [docker, "compose", "-f", str(COMPOSE), "config", "--quiet"],
        capture_output=True,
        text=True,
        check=False,
        cwd=ROOT,
    )
    assert result.returncode == 0, result.stderr
    defaults = _base_image_args()
    mirror = {name: f"mirror.invalid/{name.lower()}:1" for name in defaults}
    for env, expected in (({}, defaults), (mirror, mirror)):
        base = {k: v for k, v in os.environ.items() if k not in defaults}
        resolved = subprocess.run(
            [docker, "compose", "-f", str(COMPOSE), "config", "--format", "json"],
            capture_output=True,
            text=True,
            check=True,
            cwd=ROOT,
            env={**base, **env},
        )
        for name, svc in json.loads(resolved.stdout)["services"].items():
            args = svc["build"]["args"]
            assert {k: args[k] for k in expected} == expected, name
            assert args["BACKEND"] == name


def test_hadolint_accepts_the_dockerfile() -> None:
    hadolint = shutil.which("hadolint")
    if hadolint is None:
        pytest.skip("hadolint not installed")
    result = subprocess.run(
        [hadolint, "--failure-threshold", "warning", str(DOCKERFILE)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout
