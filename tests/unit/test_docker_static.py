"""docker-compose.yml and the Dockerfiles agree with the code, checked without a Docker engine."""

from __future__ import annotations

import importlib.util
import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from servingbench.cli import COMMANDS, _build_parser
from servingbench.paths import project_root
from servingbench.stack.settings import StackSettings

ROOT = project_root()
COMPOSE = ROOT / "docker-compose.yml"
DEFAULTS = {name: field.default for name, field in StackSettings.model_fields.items()}
EXPECTED_PORTS = {
    "mlserver": {
        DEFAULTS["mlserver_http_port"],
        DEFAULTS["mlserver_grpc_port"],
        DEFAULTS["mlserver_metrics_port"],
    },
    "fastapi": {DEFAULTS["api_port"]},
}
HTTP_PORT = {"mlserver": DEFAULTS["mlserver_http_port"], "fastapi": DEFAULTS["api_port"]}


def _compose() -> dict[str, Any]:
    doc: dict[str, Any] = yaml.safe_load(COMPOSE.read_text())
    return doc


def _services() -> dict[str, dict[str, Any]]:
    services: dict[str, dict[str, Any]] = _compose()["services"]
    return services


def _dockerfile(service: dict[str, Any]) -> Path:
    build: dict[str, str] = service["build"]
    return ROOT / build["context"] / build["dockerfile"]


def _instructions(dockerfile: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    text = re.sub(r"\\\n\s*", " ", dockerfile.read_text())
    out = []
    for raw in text.splitlines():
        line = raw.strip()
        if line and not line.startswith("#"):
            keyword, _, rest = line.partition(" ")
            out.append((keyword.upper(), rest.strip()))
    return out


def _dockerignore_allows(path: str) -> bool:
    """Our .dockerignore excludes everything and re-includes a short list."""
    allowed = [
        line[1:].rstrip("/")
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.startswith("!")
    ]
    return path.rstrip("/") in allowed


@pytest.fixture(params=["mlserver", "fastapi"])
def service(request: pytest.FixtureRequest) -> tuple[str, dict[str, Any]]:
    name: str = request.param
    return name, _services()[name]


def test_compose_names_both_services() -> None:
    assert set(_services()) == {"mlserver", "fastapi"}


def test_build_context_and_dockerfile_exist(service: tuple[str, dict[str, Any]]) -> None:
    name, svc = service
    assert (ROOT / svc["build"]["context"]).resolve() == ROOT
    assert _dockerfile(svc) == ROOT / "backends" / name / "Dockerfile"
    assert _dockerfile(svc).is_file()


def test_ports_match_stack_settings_and_stay_on_loopback(
    service: tuple[str, dict[str, Any]],
) -> None:
    name, svc = service
    published = set()
    for mapping in svc["ports"]:
        host_ip, host_port, container_port = str(mapping).split(":")
        assert host_ip == "127.0.0.1", f"{name} publishes {mapping} beyond loopback"
        assert host_port == container_port
        published.add(int(container_port))
    assert published == EXPECTED_PORTS[name]
    exposed = {
        int(p)
        for kw, args in _instructions(_dockerfile(svc))
        if kw == "EXPOSE"
        for p in args.split()
    }
    assert exposed == EXPECTED_PORTS[name]


def test_healthcheck_polls_readiness_on_the_http_port(service: tuple[str, dict[str, Any]]) -> None:
    name, svc = service
    command = " ".join(svc["healthcheck"]["test"])
    urls = re.findall(r"http://[^'\"\s]+", command)
    assert urls == [f"http://127.0.0.1:{HTTP_PORT[name]}/v2/health/ready"]


def test_volumes_mount_the_model_settings_read_only(service: tuple[str, dict[str, Any]]) -> None:
    _, svc = service
    env = dict(
        part.split("=", 1)
        for kw, args in _instructions(_dockerfile(svc))
        if kw == "ENV"
        for part in args.split()
        if "=" in part
    )
    for volume in svc["volumes"]:
        source, target, mode = volume.split(":")
        assert (ROOT / source).is_dir()
        assert mode == "ro"
        assert target == f"{env['SERVINGBENCH_ROOT']}/model-settings"


def test_dockerfile_copies_existing_paths_from_the_lock(
    service: tuple[str, dict[str, Any]],
) -> None:
    _, svc = service
    instructions = _instructions(_dockerfile(svc))
    assert instructions[0] == ("FROM", "python:3.11-slim")
    for keyword, args in instructions:
        if keyword == "COPY" and not args.startswith("--from"):
            *sources, _dest = args.split()
            for source in sources:
                assert (ROOT / source).exists(), source
                assert _dockerignore_allows(source), f"{source} is excluded by .dockerignore"
    runs = " ".join(args for kw, args in instructions if kw == "RUN")
    assert "uv sync --frozen --no-dev" in runs


def test_command_is_a_servingbench_command_with_valid_flags(
    service: tuple[str, dict[str, Any]],
) -> None:
    _, svc = service
    cmd = [json.loads(args) for kw, args in _instructions(_dockerfile(svc)) if kw == "CMD"][-1]
    assert cmd[0] == "servingbench"
    assert cmd[1] in COMMANDS
    if importlib.util.find_spec(COMMANDS[cmd[1]]) is None:
        pytest.skip(f"{COMMANDS[cmd[1]]} is not written yet")
    args = _build_parser(cmd[1]).parse_args(cmd[1:])  # SystemExit on an unknown flag
    assert args.host == "0.0.0.0"


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


def test_hadolint_accepts_the_dockerfiles() -> None:
    hadolint = shutil.which("hadolint")
    if hadolint is None:
        pytest.skip("hadolint not installed")
    dockerfiles = [str(_dockerfile(svc)) for svc in _services().values()]
    result = subprocess.run(
        [hadolint, "--failure-threshold", "warning", *dockerfiles],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout
