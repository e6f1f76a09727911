"""Real headless Locust runs of the project's locustfiles against real servers on free ports.

Each run uses a `loadtests/<scenario>.py` entry point exactly as a user would (`locust -f ...
--headless -t 3s --host ...`), with the records folder the sweep uses
(`SERVINGBENCH_LOAD_RECORDS_DIR`): the test reads the per-request records back and checks them
against Locust's own statistics. One run per wire format: our `/predict` (predict-json),
MLServer's V2 REST (v2-json) and V2 gRPC (v2-grpc).

A second test points the same locustfiles at real servers (our service, MLServer) whose
`breast-cancer` is in fact another model (the 10-tree XGBoost): every answer is well formed and
every one must be counted as a wrong answer.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from servingbench.paths import model_settings_dir, project_root
from servingbench.runs.layout import GeneratorFiles
from servingbench.runs.point import GeneratorReport
from servingbench.runs.records import UNKNOWN_NS, Outcome, RequestRecords
from servingbench.servers import ServerConfig, get_backend, get_scenario
from servingbench.servers.base import LaunchSpec, address, check_options
from servingbench.stack.launch import Launched, running
from servingbench.stack.processes import free_port
from tests.conftest import ServerPool

pytestmark = pytest.mark.integration

LOCUST = Path(sys.executable).with_name("locust")
RUN_S = 3
EXIT_TIMEOUT_S = 90  # Locust's start-up on a busy 2-core machine, the run, and its stop


@dataclass
class LocustRun:
    returncode: int
    output: str
    exited_at: float  # time.time() when the process was seen to exit
    written_at: float  # the records file's modification time
    records: RequestRecords
    report: GeneratorReport
    stats: list[dict[str, Any]]  # Locust's final statistics per request name (`--json-file`)
    failures: pd.DataFrame  # Locust's failure table (`--csv`, rewritten every second)

    def outcomes(self) -> set[Outcome]:
        return {Outcome(int(code)) for code in np.unique(self.records.outcome)}

    def total(self, field: str) -> int:
        return sum(int(entry[field]) for entry in self.stats)


@dataclass
class Started:
    proc: subprocess.Popen[str]
    out: Path

    @property
    def records_dir(self) -> Path:
        return self.out / "records"


def _start(
    scenario: str,
    host: str,
    out: Path,
    *args: str,
    env: dict[str, str] | None = None,
    users: int = 2,
    run_s: float = RUN_S,
) -> Started:
    """`locust -f loadtests/<scenario>.py --headless ...` in its own session."""
    out.mkdir(parents=True)
    locustfile = project_root() / "loadtests" / f"{scenario.replace('-', '_')}.py"
    argv = [str(LOCUST), "-f", str(locustfile), "--headless", "-u", str(users), "-r", str(users)]
    argv += ["-t", f"{run_s:g}s", "--host", host, "--only-summary"]
    argv += ["--csv", str(out / "locust"), "--json-file", str(out / "stats")]
    argv += list(args)
    full_env = {**os.environ, "SERVINGBENCH_LOAD_RECORDS_DIR": str(out / "records"), **(env or {})}
    proc = subprocess.Popen(
        argv,
        env=full_env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        text=True,
        start_new_session=True,
    )
    return Started(proc, out)


def _kill(started: Started) -> None:
    if started.proc.poll() is None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(started.proc.pid, signal.SIGKILL)
        started.proc.wait(timeout=10)


@contextlib.contextmanager
def _cleanup(runs: list[Started]) -> Iterator[None]:
    """Whatever happens in the test, no Locust process outlives it."""
    try:
        yield
    finally:
        for started in runs:
            _kill(started)
            if started.proc.stdout is not None:
                started.proc.stdout.close()


def _finish(started: Started) -> LocustRun:
    try:
        output, _ = started.proc.communicate(timeout=EXIT_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        _kill(started)
        output, _ = started.proc.communicate()
        pytest.fail(f"Locust did not exit within {EXIT_TIMEOUT_S} s:\n{output[-3000:]}")
    exited_at = time.time()
    files = GeneratorFiles(started.records_dir)
    assert files.records.is_file(), f"no records written:\n{output[-3000:]}"
    records = RequestRecords.load(files.records)
    written_at = files.records.stat().st_mtime
    report = GeneratorReport.model_validate_json(files.report.read_bytes())
    stats = json.loads((started.out / "stats.json").read_text())
    failures = pd.read_csv(started.out / "locust_failures.csv")
    return LocustRun(
        started.proc.returncode, output, exited_at, written_at, records, report, stats, failures
    )


def _host(scenario: str, server: Launched) -> str:
    spec = get_scenario(scenario)
    return address(spec.wire, server.spec.host, server.spec.ports[spec.port])


CASES = {  # one scenario per wire format -> extra Locust options
    "fastapi-rest": (),  # predict-json
    "mlserver-rest": ("--model", "iris", "--rows-per-request", "3"),  # v2-json
    "mlserver-grpc": (),  # v2-grpc
}


@pytest.mark.parametrize("scenario", list(CASES))
def test_locustfile_headless_run_records_every_request(
    scenario: str, server_pool: ServerPool, tmp_path: Path
) -> None:
    options = CASES[scenario]
    server = server_pool.get(get_scenario(scenario).backend)
    started = _start(scenario, _host(scenario, server), tmp_path / "run", *options)
    with _cleanup([started]):
        run = _finish(started)
    assert run.returncode == 0, run.output[-3000:]
    # every request Locust counted is in the records, and none failed in either; a request
    # cut off by the stop (`--stop-timeout` 0) is recorded as incomplete, which Locust never sees
    cut_off = run.records.outcome == Outcome.INCOMPLETE
    assert cut_off.sum() <= 2, run.records.reasons  # at most one per user
    records = run.records.select(~cut_off)
    assert len(records) == run.total("num_requests") > 20
    assert run.total("num_failures") == 0
    assert set(records.outcome.tolist()) == {Outcome.OK}, run.records.reasons
    assert set(run.records.reasons) <= {"incomplete"}
    model = "iris" if "--model" in options else "breast-cancer"
    wire = get_scenario(scenario).wire
    assert [entry["name"] for entry in run.stats] == [get_wire_path(wire, model)]
    # exact times: integer nanoseconds, not Locust's millisecond buckets (not even whole µs)
    latency = records.latency_ns
    assert latency.dtype == np.int64
    assert (latency > 0).all()
    assert (latency < 10 * 1_000_000_000).all()  # below the request timeout
    assert np.mean(latency % 1000 != 0) > 0.9, "latencies rounded to whole microseconds"
    assert np.all(np.diff(records.start_ns) >= 0)
    assert run.records.start_ns[0] == 0  # times since the first request (t0)
    assert np.array_equal(records.intended_ns, records.start_ns)  # closed loop
    assert not records.warmup.any()  # no measure plan: everything counts
    # the records span the run (`-t`), and Locust exited promptly after it
    span_s = (records.start_ns[-1] - records.start_ns[0]) / 1e9
    assert RUN_S / 2 < span_s < RUN_S + 2, span_s
    assert records.duration_s >= span_s
    # load went on until the stop, and Locust exited soon after writing the records
    assert 0 <= run.records.to_ns - records.done_ns.max() < 1_000_000_000
    assert run.exited_at - run.written_at < 15, "Locust lingered after the run"
    report = run.report
    assert report.stop_reason == "stopped"  # by `-t`: no measure plan outside the sweep
    assert [(w.node, w.records, w.lost) for w in report.workers] == [
        ("local", len(run.records), False)
    ]
    # our service times itself per request (Server-Timing); MLServer's answers carry no time
    if get_scenario(scenario).backend == "fastapi":
        server_ns = records.server_ns
        assert (server_ns > 0).all()
        assert (server_ns <= latency).all()
    else:
        assert (records.server_ns == UNKNOWN_NS).all()


def get_wire_path(wire: Any, model: str) -> str:
    """The request name Locust's statistics list: the route, or the gRPC method."""
    from servingbench.wire import get_wire

    return get_wire(wire).path(model)


# --- wrong answers from real servers -------------------------------------------------------


def _impostor_root(tmp_path: Path) -> Path:
    """A checkout whose `breast-cancer` is the 10-tree model's artifact, under the real name.

    The held-out rows are the same (same data set, same split), so every request is valid and
    every answer is well formed: only the probabilities differ from what the load expects.
    """
    root = tmp_path / "impostor-root"
    settings = root / "model-settings"
    folder = settings / "breast-cancer"
    folder.mkdir(parents=True)
    real = model_settings_dir()
    shutil.copy(real / "settings.json", settings / "settings.json")
    shutil.copytree(real / "iris", settings / "iris")  # our service's default model
    shutil.copy(real / "breast-cancer" / "model-settings.json", folder / "model-settings.json")
    shutil.copy(real / "breast-cancer-xgb10" / "model.json", folder / "model.json")
    other = json.loads((real / "breast-cancer-xgb10" / "metadata.json").read_text())
    (folder / "metadata.json").write_text(json.dumps({**other, "name": "breast-cancer"}))
    (root / "pyproject.toml").write_text("")
    (root / "backends").symlink_to(project_root() / "backends")  # the real environments
    return root


def _impostor_spec(backend: str, root: Path, workdir: Path) -> LaunchSpec:
    spec = get_backend(backend)
    config = ServerConfig(backend, "impostor", check_options(spec, {}, backend))
    ports = {port: free_port() for port in spec.ports}
    with pytest.MonkeyPatch.context() as patch:  # MLServer's repository is rendered from it
        patch.setenv("SERVINGBENCH_ROOT", str(root))
        launch = spec.launch(config, ports, "127.0.0.1", workdir / config.server_name)
    return replace(launch, env={**launch.env, "SERVINGBENCH_ROOT": str(root)})


@pytest.fixture(scope="module")
def impostors(
    trained_models: None, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, Launched]]:
    """Our real service and a real MLServer, each serving the wrong model as `breast-cancer`."""
    workdir = tmp_path_factory.mktemp("impostors")
    root = _impostor_root(workdir)
    specs = [_impostor_spec(b, root, workdir) for b in ("fastapi", "mlserver")]
    with running(specs, workdir, timeout_s=120) as ready:
        yield {server.spec.backend: server for server in ready}


def test_answers_of_another_model_are_counted_as_wrong(
    impostors: dict[str, Launched], tmp_path: Path
) -> None:
    scenarios = ["fastapi-rest", "fastapi-v2-rest", "mlserver-grpc"]  # every wire format
    runs = []
    for name in scenarios:
        server = impostors[get_scenario(name).backend]
        runs.append(_start(name, _host(name, server), tmp_path / name))
    with _cleanup(runs):
        finished = {name: _finish(started) for name, started in zip(scenarios, runs, strict=True)}
    for name, run in finished.items():
        assert run.returncode == 1, f"{name}: Locust must exit 1 on errors\n{run.output[-3000:]}"
        answered = run.records.select(run.records.outcome != Outcome.INCOMPLETE)
        assert len(answered) > 5, name
        assert run.outcomes() <= {Outcome.WRONG_ANSWER, Outcome.INCOMPLETE}, name
        assert set(answered.outcome.tolist()) == {Outcome.WRONG_ANSWER}, name
        reasons = run.records.reasons["wrong-answer"]
        assert sum(reasons.values()) == len(answered), name
        assert all(r.startswith("wrong answer:") for r in reasons), f"{name}: {reasons}"
        assert run.total("num_failures") == run.total("num_requests") == len(answered)
        # Locust's failure table shows the same reasons
        assert set(run.failures["Error"]) <= set(reasons), f"{name}: {run.failures}"
        assert len(run.failures), name


def test_a_low_open_loop_rate_keeps_its_connections_warm(
    api_server: Launched, tmp_path: Path
) -> None:
    """10 arrivals a second over 64 slots for 9 s, against uvicorn's 5 s keep-alive: handing
    each arrival to the most recently freed slot keeps one connection busy, and connections
    are opened before they are measured, so no request fails on a connection the server closed
    and none pays for a connect."""
    started = _start(
        "fastapi-rest", _host("fastapi-rest", api_server), tmp_path / "run", "--arrival-rate",
        "10", users=64, run_s=9,
    )  # fmt: skip
    with _cleanup([started]):
        run = _finish(started)
    assert run.returncode == 0, run.output[-3000:]
    answered = run.records.select(run.records.outcome != Outcome.INCOMPLETE)
    assert len(answered) > 60
    assert set(answered.outcome.tolist()) == {Outcome.OK}, run.records.reasons
    assert run.report.timed_connects == 0
