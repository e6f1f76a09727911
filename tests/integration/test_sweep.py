"""The sweep end to end: a tiny real `servingbench bench` run that the report loads (whose
records also show that our service's `Server-Timing` stays within each request's client
latency; it is run with a `--fail-if` gate no server meets, so it also shows the gate's exit
status, summary.json and the progress lines), and a one-point sweep of a backend registered by
this test alone (the calibration no-op server).

The second test adds a backend without touching any file of the project: it registers a
`Backend` subclass from here (`servers.register`), runs a sweep of its scenario with the real
sweep code and the real Locust, and removes it again (`servers.unregister`).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import replace
from pathlib import Path
from typing import ClassVar

import numpy as np
import pytest
from pydantic import BaseModel, ConfigDict

from servingbench.calibration.noop import noop_spec
from servingbench.commands.bench import GATE_FAILED
from servingbench.report import load_run
from servingbench.runs.layout import RunLayout, find_run
from servingbench.runs.meta import RunMeta
from servingbench.runs.point import PointResult
from servingbench.runs.records import UNKNOWN_NS, Outcome, RequestRecords
from servingbench.runs.summary import SUMMARY_FILE, RunSummary
from servingbench.servers import (
    Backend,
    Endpoint,
    LaunchSpec,
    ServerConfig,
    backends,
    get_backend,
    register,
    scenarios,
    unregister,
)
from servingbench.sweep.runner import run_sweep
from servingbench.sweep.settings import load_settings

pytestmark = pytest.mark.integration

SERVINGBENCH = Path(sys.executable).with_name("servingbench")

TINY = {  # one level, one repeat, points of at most 1.5 s measured
    "method": "points",
    "concurrency": [2],
    "repeats": 1,
    "warmup_s": 0.5,
    "window_s": 0.5,
    "max_duration_s": 1.5,
    "timeout_s": 1.0,
}
TINY_FLAGS = [
    "--method", "points", "--concurrency", "2", "--repeats", "1", "--warmup", "0.5",
    "--window", "0.5",
    "--max-duration", "1.5", "--timeout", "1",
]  # fmt: skip


def run_cli(
    argv: list[str],
    timeout_s: float,
    cwd: Path | None = None,
    watch: Callable[[int], None] | None = None,
) -> tuple[int, str]:
    """`servingbench <argv>` in its own session; killed (with its children) if it overruns.

    `watch(pid)` is called about every 0.2 s while it runs (e.g. to see what it starts).
    """
    proc = subprocess.Popen(
        [str(SERVINGBENCH), *argv],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        cwd=cwd,
        start_new_session=True,
    )
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            output, _ = proc.communicate(timeout=0.2 if watch else timeout_s)
            return proc.returncode, output
        except subprocess.TimeoutExpired:
            if time.monotonic() < deadline and watch is not None:
                watch(proc.pid)
                continue
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)  # bench stops its servers on SIGTERM
        try:
            output, _ = proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            output, _ = proc.communicate()
        pytest.fail(f"servingbench {' '.join(argv)} overran {timeout_s} s:\n{output[-4000:]}")


def check_point(folder: Path, series: str, own_server: bool = True) -> PointResult:
    """A measured point: ok, no errors, plausible records that agree with its summary.

    `own_server`: the sweep started the server, so its CPU is measured with the point.
    """
    point = PointResult.read(folder / "point.json")
    assert point.status == "ok", point.failure_reason
    assert point.series == series
    assert not {"failed", "errors"} & set(point.flags), point.flag_reasons
    assert point.summary is not None
    assert point.summary.errors == 0
    assert point.summary.ok > 0
    assert 0 < point.summary.p50_ms <= point.summary.p99_ms
    assert point.stop_reason in ("converged", "cap")
    roles = {u.role for u in point.usage}
    assert roles >= {"generator"}, roles
    assert ("server" in roles) == own_server, roles
    records = RequestRecords.load(folder / "requests.npz")
    assert records.warmup.any()
    assert records.measured_mask.any()
    assert 0 < records.from_ns < records.to_ns
    assert set(records.measured().outcome.tolist()) <= {Outcome.OK, Outcome.INCOMPLETE}
    assert np.all(records.latency_ns > 0)
    return point


def check_server_timing(records: RequestRecords) -> None:
    """Issue 11: every answer of our service carries its `Server-Timing` time, and no recorded
    request's server time exceeds the latency the client measured for that same request."""
    assert records.ok.any()
    assert (records.server_ns[records.ok] > 0).all()
    known = records.server_ns != UNKNOWN_NS
    over = known & (records.server_ns > records.latency_ns)
    assert not over.any(), (records.server_ns[over], records.latency_ns[over])


IMPOSSIBLE = "p50<=0.001ms"
"""A gate no server meets (a microsecond median): the run must still be whole, and exit 3."""


@pytest.fixture(scope="module")
def tiny_run(trained_models: None, tmp_path_factory: pytest.TempPathFactory) -> RunLayout:
    """One tiny `servingbench bench` of both of our service's REST scenarios, with a gate that
    fails: everything is written all the same, and the exit status says the gate failed."""
    results = tmp_path_factory.mktemp("bench") / "results"
    code, output = run_cli(
        ["bench", "--scenarios", "fastapi-rest,fastapi-v2-rest", *TINY_FLAGS,
         "--results-dir", str(results), "--run-id", "tiny", "--fail-if", IMPOSSIBLE],
        timeout_s=240,
    )  # fmt: skip
    assert code == GATE_FAILED, output[-4000:]
    for series in ("fastapi-rest", "fastapi-v2-rest"):
        assert f"gate --fail-if {IMPOSSIBLE} failed: {series} at 2 users: p50 " in output
    # piped, so plain lines: the position, the time so far and what is left
    progress = [line for line in output.splitlines() if line.startswith("[")]
    assert [line.split("]")[0] for line in progress] == ["[1/2 points", "[2/2 points"], output
    assert "left" in progress[0]
    layout = find_run("tiny", results)
    assert set(progress) <= set(layout.log.read_text().splitlines())
    return layout


@pytest.mark.timeout(300)
def test_bench_cli_writes_a_run_the_report_loads(tiny_run: RunLayout) -> None:
    layout = tiny_run
    meta = RunMeta.read(layout.meta)
    assert meta.status == "complete"
    assert meta.parity is not None
    assert meta.parity.status == "passed"
    assert list(meta.servers) == ["fastapi-default"]  # only the backend the scenarios need
    server = meta.servers["fastapi-default"]
    assert server.pid is not None
    assert server.startup_s is not None
    assert meta.sweep.model_dump()["concurrency"] == [2]
    assert meta.failed_points == []
    assert len(meta.points) == 2
    summary = RunSummary.read(layout.root / SUMMARY_FILE)
    assert summary.written_by == "bench"
    assert not summary.gates.passed
    assert {(f.line, f.level) for f in summary.gates.failures} == {
        ("fastapi-rest", 2.0), ("fastapi-v2-rest", 2.0)
    }  # fmt: skip
    assert {f.line for f in summary.levels} == {"fastapi-rest", "fastapi-v2-rest"}
    assert all(f.rps.value and f.rps.value > 0 for f in summary.levels)
    assert [c.model for c in meta.model_costs] == ["breast-cancer"]
    # the sweep (and its usage sampler) stays off the generator's cores, where its ticks
    # delayed open-loop arrivals; on a machine of one core there is no pinning to check
    if meta.pinning.generator is not None:
        assert meta.pinning.harness == meta.pinning.server
        assert not set(meta.pinning.harness or []) & set(meta.pinning.generator)
    for folder in layout.point_dirs():
        point = check_point(folder, folder.name.split("--")[0])
        assert point.server_name == "fastapi-default"
        assert point.host == f"http://127.0.0.1:{server.ports['http']}"
        assert (folder / "locust.json").is_file()
    # the sweep's servers are gone with it
    assert not _alive(server.pid)

    data = load_run(layout)
    assert set(data.points["series"]) == {"fastapi-rest", "fastapi-v2-rest"}
    assert (data.points["status"] == "ok").all()
    assert (data.points["requests"] > 0).all()
    assert len(data.aggregate) == 2
    # `servingbench report` writes its files into the run folder
    code, output = run_cli(["report", "--run", str(layout.root)], timeout_s=180)
    assert code == 0, output[-4000:]
    for name in ("summary.csv", "report.md", "report.html"):
        assert (layout.root / name).is_file(), output[-2000:]
    again = RunSummary.read(layout.root / SUMMARY_FILE)
    assert again.written_by == "report"
    assert again.gates == summary.gates  # the same gates, judged again on the same records
    assert "fastapi-v2-rest" in (layout.root / "report.md").read_text()


@pytest.mark.timeout(300)
def test_server_timing_never_exceeds_client_latency(tiny_run: RunLayout) -> None:
    """Both REST routes of our service (/predict and V2), every request of each point."""
    folders = tiny_run.point_dirs()
    assert len(folders) == 2
    for folder in folders:
        check_server_timing(RequestRecords.load(folder / "requests.npz"))


def _alive(pid: int) -> bool:
    import psutil

    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


# --- a backend added from the test alone ------------------------------------------------------


class NoopOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")


class NoopBackend(Backend):
    """The calibration no-op HTTP server: the real answers to the load's requests, at once."""

    name = "noop"
    title = "no-op server"
    ports: ClassVar[Mapping[str, int]] = {"http": 18999}  # serve-all's; the sweep picks free ones
    endpoints = (Endpoint("noop-v2-rest", "v2-json", "http", parity_clients=()),)
    options = NoopOptions

    def launch(
        self, config: ServerConfig, ports: Mapping[str, int], host: str, workdir: Path
    ) -> LaunchSpec:
        spec = noop_spec("http", host, ports["http"], "breast-cancer", 1, workdir)
        return replace(spec, name=config.server_name, backend=self.name)


@pytest.fixture
def noop_backend() -> Iterator[Backend]:
    register(NoopBackend)
    try:
        yield get_backend("noop")
    finally:
        unregister("noop")


@pytest.mark.timeout(180)
def test_a_backend_registered_by_a_test_is_swept(
    noop_backend: Backend, trained_models: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert "noop-v2-rest" in scenarios()
    settings = load_settings(
        overrides={**TINY, "scenarios": "noop-v2-rest", "results_dir": tmp_path, "run_id": "fake"}
    )
    saved: list[Path] = []  # records the sweep's own process writes: none, Locust wrote them
    save = RequestRecords.save

    def counted_save(self: RequestRecords, path: Path) -> None:
        saved.append(path)
        save(self, path)

    monkeypatch.setattr(RequestRecords, "save", counted_save)
    lines: list[str] = []
    result = run_sweep(settings, progress=lines.append)
    assert saved == []

    assert [p.point_id for p in result.points] == [
        "noop-v2-rest--breast-cancer--rows1--c0002--rep001"
    ]
    layout = find_run("fake", tmp_path)
    folder = layout.point_dir(result.points[0].point_id)
    point = check_point(folder, "noop-v2-rest")
    assert not list(folder.glob(".records-*"))  # the generator's folder is gone
    assert point.key.backend == "noop"
    assert point.key.wire == "v2-json"
    assert point.server_name == "noop-default"
    server_usage = [u for u in point.usage if u.role == "server"]
    assert [u.name for u in server_usage] == ["noop-default"]
    assert server_usage[0].cpu_seconds > 0  # the no-op server did the answering
    meta = json.loads(layout.meta.read_text())
    assert meta["status"] == "complete"
    assert list(meta["servers"]) == ["noop-default"]
    assert "servingbench.calibration.noop" in meta["servers"]["noop-default"]["argv"]
    assert meta["parity"]["status"] == "skipped"  # it declares no parity client
    data = load_run(layout)
    assert list(data.points["series"]) == ["noop-v2-rest"]
    assert any("noop-v2-rest" in line for line in lines)


def test_the_registered_backend_is_gone_afterwards() -> None:
    assert "noop" not in backends()
    assert "noop-v2-rest" not in scenarios()
