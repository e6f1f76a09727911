"""Issue 12: the sweep measures servers it did not start (`bench --target scenario=address`).

`servingbench serve-all` starts our service and MLServer on free ports, as a user would; the
sweep then measures each of their endpoints as a target, one short point each. It must start
no server of its own, check the targets (parity included) before sending load, and write a run
folder the report loads. A bad target is refused with every problem named, before any load.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import psutil
import pytest

from servingbench.commands.stack_options import port_flag
from servingbench.report import load_run
from servingbench.runs.layout import find_run
from servingbench.runs.meta import RunMeta
from servingbench.runs.records import RequestRecords
from servingbench.servers import get_backend
from servingbench.stack.lifecycle import load_running_stack
from servingbench.stack.processes import free_port
from tests.integration.test_sweep import TINY_FLAGS, check_point, check_server_timing, run_cli

pytestmark = pytest.mark.integration

BACKENDS = ("fastapi", "mlserver")


@dataclass(frozen=True)
class Stack:
    ports: dict[str, int]  # "backend.port" -> port
    pids: frozenset[int]  # every process of every server

    def targets(self) -> dict[str, str]:
        return {
            "fastapi-rest": f"http://127.0.0.1:{self.ports['fastapi.http']}",
            "mlserver-rest": f"http://127.0.0.1:{self.ports['mlserver.http']}",
            "mlserver-grpc": f"127.0.0.1:{self.ports['mlserver.grpc']}",
        }


@pytest.fixture(scope="module")
def stack(trained_models: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """`servingbench serve-all` of our service and MLServer on free ports; `stop-all` after."""
    state = tmp_path_factory.mktemp("serve-all") / "state"
    ports = {f"{b}.{p}": free_port() for b in BACKENDS for p in get_backend(b).ports}
    flags = [arg for key, port in ports.items() for arg in (port_flag(*key.split(".")), str(port))]
    argv = ["serve-all", "--backends", ",".join(BACKENDS), "--state-dir", str(state)]
    argv += ["--server-cpus", "0", "--ready-timeout", "120", *flags]
    try:
        code, output = run_cli(argv, timeout_s=180)
        assert code == 0, output[-4000:]
        running = load_running_stack(state)
        assert running is not None
        pids = frozenset(p.pid for handle in running.handles for p in handle.tree())
        yield Stack(ports, pids)
    finally:
        code, output = run_cli(["stop-all", "--state-dir", str(state)], timeout_s=120)
        assert code == 0, output


@dataclass
class Descendants:
    """Every process seen under the watched one, by pid: its command line."""

    seen: dict[int, str] = field(default_factory=dict)

    def __call__(self, pid: int) -> None:
        try:
            children = psutil.Process(pid).children(recursive=True)
        except psutil.NoSuchProcess:
            return
        for child in children:
            try:
                self.seen.setdefault(child.pid, " ".join(child.cmdline()))
            except (psutil.NoSuchProcess, psutil.ZombieProcess, psutil.AccessDenied):
                continue


@pytest.mark.timeout(420)
def test_a_sweep_of_targets_measures_the_running_stack(stack: Stack, tmp_path: Path) -> None:
    targets = stack.targets()
    argv = ["bench", *TINY_FLAGS, "--results-dir", str(tmp_path), "--run-id", "targets"]
    for scenario, address in targets.items():
        argv += ["--target", f"{scenario}={address}"]
    descendants = Descendants()
    code, output = run_cli(argv, timeout_s=300, watch=descendants)
    assert code == 0, output[-4000:]

    # it started no server: every server runs from its backend's environment (backends/*/.venv)
    # under the sweep's process; the sweep only ran Locust (and the model-cost probe)
    assert any("locust" in cmd for cmd in descendants.seen.values()), descendants.seen
    servers = {pid: cmd for pid, cmd in descendants.seen.items() if "/backends/" in cmd}
    assert not servers, servers
    # ... and the stack's own servers are the ones that stayed up, untouched
    assert all(psutil.pid_exists(pid) for pid in stack.pids)

    layout = find_run("targets", tmp_path)
    assert not (layout.root / "servers").exists()
    meta = RunMeta.read(layout.meta)
    assert meta.status == "complete", meta
    assert meta.servers == {}
    assert {name: t.address for name, t in meta.targets.items()} == targets
    # what each server said about itself: MLServer's V2 metadata (`/predict` defines no page)
    assert meta.targets["fastapi-rest"].server == {}
    for name in ("mlserver-rest", "mlserver-grpc"):
        assert meta.targets[name].server["name"] == "mlserver", meta.targets[name]
        assert meta.targets[name].models["breast-cancer"]["inputs"], meta.targets[name]
    # parity ran against every target before the load
    assert meta.parity is not None
    assert meta.parity.status == "passed"
    checked = {check.endpoint.split()[0] for check in meta.parity.checks}
    assert checked == set(targets)
    assert all(check.passed and check.rows > 0 for check in meta.parity.checks)

    assert meta.failed_points == []
    assert len(meta.points) == len(targets)
    for folder in layout.point_dirs():
        scenario = folder.name.split("--")[0].removesuffix("@target")
        point = check_point(folder, f"{scenario}@target", own_server=False)
        assert point.host == targets[scenario]
        assert point.server_name is None
        if scenario == "fastapi-rest":  # our service times itself even as a target
            check_server_timing(RequestRecords.load(folder / "requests.npz"))
    data = load_run(layout)
    assert set(data.points["series"]) == {f"{name}@target" for name in targets}
    assert (data.points["status"] == "ok").all()
    assert (data.points["requests"] > 0).all()


@pytest.mark.timeout(120)
def test_bad_targets_are_refused_before_any_load(stack: Stack, tmp_path: Path) -> None:
    """Every problem at once: nothing listening; our /predict scenario at MLServer (no /predict
    there); a REST scenario at a gRPC port; a gRPC scenario at an HTTP port."""
    nobody = free_port()
    bad = {
        "fastapi-v2-rest": f"http://127.0.0.1:{nobody}",
        "fastapi-rest": f"http://127.0.0.1:{stack.ports['mlserver.http']}",
        "kserve-rest": f"http://127.0.0.1:{stack.ports['mlserver.grpc']}",
        "mlserver-grpc": f"127.0.0.1:{stack.ports['fastapi.http']}",
    }
    argv = ["bench", *TINY_FLAGS, "--results-dir", str(tmp_path), "--run-id", "bad"]
    for scenario, address in bad.items():
        argv += ["--target", f"{scenario}={address}"]
    code, output = run_cli(argv, timeout_s=100)

    assert code == 2, output[-4000:]
    assert "bench: targets not usable, nothing was sent:" in output, output[-4000:]
    problems = output.split("nothing was sent:", 1)[1]
    assert f"fastapi-v2-rest: cannot reach 127.0.0.1:{nobody}" in problems, problems
    assert f"fastapi-rest at {bad['fastapi-rest']}: HTTP 404" in problems, problems
    assert f"kserve-rest at {bad['kserve-rest']}: no HTTP/1.1 answer" in problems, problems
    assert f"mlserver-grpc at {bad['mlserver-grpc']}:" in problems, problems
    layout = find_run("bad", tmp_path)
    assert layout.point_dirs() == []
    meta = RunMeta.read(layout.meta)
    assert meta.status == "failed"
    assert meta.points == []
