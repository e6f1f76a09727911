"""Real headless Locust runs of each locustfile against the real servers on free ports.

Each run writes its raw records as the sweep asks (`SERVINGBENCH_LOAD_RECORDS_DIR`), and the
test reads them back: exact, plausible latencies, no failures, prompt exit. A second test aims
at wrong ports, routes and payloads and checks each failure lands in the right `Outcome`.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pytest

from servingbench.models.artifacts import load_metadata
from servingbench.loadgen.scenarios import SCENARIOS, get_scenario
from servingbench.runs.records import Outcome, RequestRecords
from servingbench.stack.processes import ProcessHandle, free_port
from servingbench.stack.servers import ServerSpec

pytestmark = pytest.mark.integration

LOCUST = Path(sys.executable).with_name("locust")
RUN_S = 3
Server = tuple[ServerSpec, ProcessHandle]


@dataclass
class LocustRun:
    returncode: int
    output: str
    exited_ns: int  # time.monotonic_ns() when the process was seen to exit
    records: RequestRecords

    def outcomes(self) -> set[Outcome]:
        return {Outcome(int(code)) for code in np.unique(self.records.outcome)}


def _start(
    scenario: str, host: str, out: Path, run_s: int = RUN_S, env: dict[str, str] | None = None
) -> tuple[subprocess.Popen[str], Path]:
    records_dir = out / "records"
    argv = [str(LOCUST), "-f", str(get_scenario(scenario).locustfile), "--headless"]
    argv += ["-u", "2", "-r", "2", "-t", f"{run_s}s", "--host", host]
    argv += ["--csv", str(out / "locust"), "--only-summary"]
    full_env = {**os.environ, "SERVINGBENCH_LOAD_RECORDS_DIR": str(records_dir), **(env or {})}
    proc = subprocess.Popen(
        argv, env=full_env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    return proc, records_dir


def _finish(proc: subprocess.Popen[str], records_dir: Path) -> LocustRun:
    output, _ = proc.communicate(timeout=120)
    exited_ns = time.monotonic_ns()
    parts = sorted(records_dir.glob("part-*.npz"))
    assert len(parts) == 1, f"expected one records part in {records_dir}:\n{output}"
    records = RequestRecords.load(parts[0])
    return LocustRun(proc.returncode, output, exited_ns, records)


def _host(scenario: str, request: pytest.FixtureRequest) -> str:
    """Locust's --host for `scenario`, starting the server it needs (session fixtures)."""
    spec = get_scenario(scenario)
    server: Server = request.getfixturevalue(
        "mlserver" if spec.backend == "mlserver" else "api_server"
    )
    ports = server[0].ports
    if spec.protocol == "grpc":
        return f"127.0.0.1:{ports['grpc']}"
    return f"http://127.0.0.1:{ports['http']}"


@pytest.mark.parametrize("scenario", list(SCENARIOS))
def test_headless_run_records_exact_latencies(
    scenario: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    proc, records_dir = _start(scenario, _host(scenario, request), tmp_path)
    run = _finish(proc, records_dir)
    assert run.returncode == 0, run.output
    records = run.records
    assert len(records) > 10
    assert run.outcomes() == {Outcome.OK}, records.reasons
    assert not records.warmup.any()
    latency = records.latency_ns
    assert (latency > 0).all()
    assert (latency < 1_000_000_000).all()
    assert (latency % 1_000_000 != 0).any()  # nanosecond resolution, not Locust's ms buckets
    # absolute CLOCK_MONOTONIC times: the run spans about RUN_S and ended just before the exit
    span_s = (records.start_ns.max() - records.start_ns.min()) / 1e9
    assert RUN_S - 1 < span_s < RUN_S + 1
    last_end_ns = int((records.start_ns + records.latency_ns).max())
    assert 0 < run.exited_ns - last_end_ns < 5_000_000_000, "Locust lingered after the test"
    snapshot = json.loads(next(records_dir.glob("loadgen-*.json")).read_text())
    assert snapshot["settings"]["grpc_channel"] == "per-user"
    stats = (tmp_path / "locust_stats.csv").read_text()
    assert "Aggregated" in stats


def _tampered_root(tmp_path: Path) -> Path:
    """A model-settings copy whose payloads the real server must reject or answer differently."""
    root = tmp_path / "root"
    breast = load_metadata("breast-cancer")
    iris = load_metadata("iris").model_copy(update={"held_out": breast.held_out})
    flipped = breast.held_out.model_copy(
        update={"expected_labels": [1 - label for label in breast.held_out.expected_labels]}
    )
    for meta in (iris, breast.model_copy(update={"held_out": flipped})):
        folder = root / "model-settings" / meta.name
        folder.mkdir(parents=True)
        (folder / "metadata.json").write_text(meta.model_dump_json())
    return root


class Case(NamedTuple):
    scenario: str
    host: str
    env: dict[str, str]
    outcome: Outcome
    reason: str  # every recorded reason starts with this


def test_failures_are_classified(mlserver: Server, tmp_path: Path) -> None:
    http = f"http://127.0.0.1:{mlserver[0].ports['http']}"
    grpc = f"127.0.0.1:{mlserver[0].ports['grpc']}"
    closed = free_port()  # nothing listens here
    tampered = {"SERVINGBENCH_ROOT": str(_tampered_root(tmp_path))}
    cases = {
        "rest-refused": Case(
            "mlserver-rest",
            f"http://127.0.0.1:{closed}",
            {},
            Outcome.CONNECTION,
            "connection error: ConnectionRefusedError",
        ),
        "grpc-refused": Case(
            "mlserver-grpc", f"127.0.0.1:{closed}", {}, Outcome.CONNECTION, "gRPC UNAVAILABLE"
        ),
        "http-404": Case("fastapi-rest", http, {}, Outcome.HTTP_STATUS, "HTTP 404"),
        "grpc-status": Case(  # 30-feature rows sent to the 4-feature iris model
            "mlserver-grpc",
            grpc,
            {**tampered, "SERVINGBENCH_LOAD_MODEL": "iris"},
            Outcome.GRPC_STATUS,
            "gRPC INTERNAL",
        ),
        "wrong-answer": Case(  # expected labels flipped
            "mlserver-rest", http, tampered, Outcome.WRONG_ANSWER, "wrong answer:"
        ),
    }
    started = {  # in parallel: each run is mostly Locust's start-up
        name: _start(case.scenario, case.host, tmp_path / name, run_s=1, env=case.env)
        for name, case in cases.items()
    }
    for name, (proc, records_dir) in started.items():
        case = cases[name]
        run = _finish(proc, records_dir)
        assert run.returncode == 1, f"{name}: Locust must fail on errors\n{run.output}"
        assert run.outcomes() == {case.outcome}, f"{name}: {run.records.reasons}"
        reasons = run.records.reasons[case.outcome.label]
        assert all(r.startswith(case.reason) for r in reasons), f"{name}: {reasons}"
        assert case.reason in run.output  # Locust's failure table shows the same reason
