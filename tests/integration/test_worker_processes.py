"""A configuration that serves from several worker processes starts, passes parity on every
endpoint and is measured: KServe's `workers-2`.

KServe spawns its REST workers with multiprocessing's *spawn* and pickles the server, the data
plane and every model into them, so our model class and host-bound servers must be picklable
(they were defined inside functions, and the configuration never started); and its gRPC server
only starts after the workers, so readiness must wait for the gRPC port as well.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from servingbench.runs.layout import find_run
from servingbench.runs.meta import RunMeta
from servingbench.sweep import runner
from servingbench.sweep.runner import run_sweep
from servingbench.sweep.settings import load_settings
from tests.integration.test_sweep import TINY, check_point

pytestmark = pytest.mark.integration


@pytest.mark.timeout(300)
def test_kserve_with_two_workers_serves_rest_and_grpc(
    trained_models: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(runner, "_model_costs", lambda settings, progress: [])
    settings = load_settings(
        overrides={
            **TINY,
            "scenarios": "kserve-rest,kserve-grpc",
            "server_configs": "kserve:workers-2",
            "results_dir": tmp_path,
            "run_id": "workers",
        }
    )
    result = run_sweep(settings)
    meta = RunMeta.read(find_run("workers", tmp_path).meta)
    assert meta.status == "complete"
    assert meta.parity is not None
    assert meta.parity.status == "passed", meta.parity.checks
    assert {c.endpoint.split()[1] for c in meta.parity.checks} == {"v2-json", "v2-grpc"}
    assert len(result.points) == 2
    for folder in find_run("workers", tmp_path).point_dirs():
        check_point(folder, folder.name.split("--")[0])
