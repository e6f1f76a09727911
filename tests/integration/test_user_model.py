"""Issue 20: a user's own model, added from its file, served by every registered backend.

Two models are trained here on data scikit-learn ships (wine: 13 features, 3 classes), neither
a catalog model: an XGBoost classifier saved as JSON with the held-out rows as a CSV file, and a
scikit-learn LogisticRegression pickled with joblib, given seeded synthetic rows. Both are added
with `servingbench add-model` into a temporary checkout (`SERVINGBENCH_ROOT`; the repository's
model-settings/ is never written), which every server and the load generator then read. One
sweep starts the servers of every backend in the registry, checks parity on every endpoint for
both models, and measures one point per backend's default scenario and model. Then a server
already running is benchmarked as a target on rows given at bench time (`bench --target ...
--input-data`).
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import joblib
import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import load_wine
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split
from xgboost import XGBClassifier

from servingbench.cli import main
from servingbench.models.artifacts import load_metadata
from servingbench.models.catalog import DEFAULT_MODEL
from servingbench.paths import model_settings_dir, project_root
from servingbench.runs.layout import find_run
from servingbench.runs.meta import RunMeta
from servingbench.servers import backends, get_backend
from servingbench.sweep import runner
from servingbench.sweep.runner import run_sweep
from servingbench.sweep.settings import load_settings
from tests.conftest import serve
from tests.integration.test_sweep import TINY, TINY_FLAGS, check_point, run_cli

pytestmark = pytest.mark.integration

MODELS = ("wine-xgb", "wine-lr")


@pytest.fixture(autouse=True)
def _no_model_cost(monkeypatch: pytest.MonkeyPatch) -> None:
    """The in-process model-cost step (a subprocess per model) is covered by test_sweep."""
    monkeypatch.setattr(runner, "_model_costs", lambda settings, progress: [])


@pytest.fixture(scope="module")
def checkout(trained_models: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A checkout whose model-settings/ holds the two added models (and our service's default
    model, which it refuses to start without); the real backend environments."""
    work = tmp_path_factory.mktemp("user-model")
    root = work / "checkout"
    settings = root / "model-settings"
    settings.mkdir(parents=True)
    shutil.copy(model_settings_dir() / "settings.json", settings / "settings.json")
    shutil.copytree(model_settings_dir() / DEFAULT_MODEL, settings / DEFAULT_MODEL)
    (root / "pyproject.toml").write_text("")
    (root / "backends").symlink_to(project_root() / "backends")

    wine = load_wine()
    x = wine.data.astype(np.float32)
    x_train, x_test, y_train, _ = train_test_split(
        x, wine.target, test_size=0.25, random_state=0, stratify=wine.target
    )
    xgb = work / "wine.json"
    XGBClassifier(n_estimators=20, max_depth=3, n_jobs=1).fit(x_train, y_train).save_model(xgb)
    rows = work / "wine-test.csv"
    pd.DataFrame(x_test, columns=wine.feature_names).to_csv(rows, index=False)
    lr = work / "wine-lr.joblib"
    joblib.dump(LogisticRegression(max_iter=5000).fit(x_train, y_train), lr)

    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("SERVINGBENCH_ROOT", str(root))
        assert main(["add-model", "wine-xgb", "--artifact", str(xgb), "--rows", str(rows)]) == 0
        assert main(["add-model", "wine-lr", "--artifact", str(lr), "--synthetic-rows", "50"]) == 0
        yield root


@pytest.mark.timeout(300)
def test_every_backend_serves_an_added_model_parity_and_a_sweep(
    checkout: Path, tmp_path: Path
) -> None:
    """One sweep, as `make bench` runs it: every backend's servers up together."""
    scenarios = [
        e.scenario for b in backends() for e in get_backend(b).endpoints if e.default_bench
    ]
    settings = load_settings(
        overrides={
            **TINY,
            "scenarios": ",".join(scenarios),
            "models": ",".join(MODELS),
            "results_dir": tmp_path,
            "run_id": "user-model",
        }
    )
    result = run_sweep(settings)
    layout = find_run("user-model", tmp_path)
    meta = RunMeta.read(layout.meta)
    assert meta.status == "complete"
    assert meta.parity is not None
    assert meta.parity.status == "passed", meta.parity.checks
    assert {c.model for c in meta.parity.checks} == set(MODELS)
    assert all(c.rows > 0 for c in meta.parity.checks)
    for backend in backends():
        checked = {c.endpoint for c in meta.parity.checks if c.endpoint.startswith(f"{backend}:")}
        assert len(checked) >= len(get_backend(backend).endpoints), (backend, checked)
    assert len(result.points) == len(scenarios) * len(MODELS)
    measured = {folder.name.split("--")[0] for folder in layout.point_dirs()}
    assert measured == set(scenarios)
    for folder in layout.point_dirs():
        check_point(folder, folder.name.split("--")[0])
    # the run says where each model and its rows came from
    xgb, lr = meta.artifacts["wine-xgb"], meta.artifacts["wine-lr"]
    assert xgb.source is not None
    assert xgb.source.endswith("wine.json")
    assert xgb.inputs == "45 rows from the user's file wine-test.csv"
    assert lr.inputs.startswith("50 synthetic rows")
    assert xgb.test_accuracy is None


@pytest.mark.timeout(300)
def test_a_running_server_is_benchmarked_on_rows_given_at_bench_time(
    checkout: Path, tmp_path: Path
) -> None:
    # the deployed server serves the model under this name; the harness holds its artifact
    artifact = checkout / "model-settings" / "wine-xgb" / "model.json"
    assert (
        main(["add-model", "deployed", "--artifact", str(artifact), "--synthetic-rows", "5"]) == 0
    )
    rows = tmp_path / "first-rows.npy"
    np.save(rows, load_wine().data[:30].astype(np.float32))
    with serve("fastapi", tmp_path / "server") as server:
        address = f"http://127.0.0.1:{server.spec.ports['http']}"
        argv = ["bench", *TINY_FLAGS, "--target", f"fastapi-rest={address}"]
        argv += ["--models", "deployed", "--input-data", str(rows)]
        argv += ["--results-dir", str(tmp_path / "results"), "--run-id", "target"]
        code, output = run_cli(argv, timeout_s=240)
    assert code == 0, output[-4000:]
    assert "deployed now sends 30 rows from the user's file first-rows.npy" in output
    meta = RunMeta.read(find_run("target", tmp_path / "results").meta)
    assert meta.parity is not None
    assert meta.parity.status == "passed", meta.parity.checks
    assert {c.model for c in meta.parity.checks} == {"deployed"}
    assert meta.artifacts["deployed"].inputs == "30 rows from the user's file first-rows.npy"
    assert len(load_metadata("deployed", checkout / "model-settings").held_out.rows) == 30


def test_bad_input_data_is_refused_before_anything_runs(
    checkout: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rows = tmp_path / "wide.npy"
    np.save(rows, np.zeros((3, 20), dtype=np.float32))
    before = (checkout / "model-settings" / "wine-lr" / "metadata.json").read_bytes()
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("SERVINGBENCH_ROOT", str(checkout))
        cases = {
            "wine-lr": "wide.npy has 20 columns; the model expects 13 features",
            "iris": "'iris' is a catalog model",
            "wine-lr,wine-xgb": "--input-data needs one model in --models",
        }
        for models, message in cases.items():
            argv = ["bench", "--models", models, "--input-data", str(rows)]
            assert main(argv) == 2
            assert message in capsys.readouterr().err
    assert (checkout / "model-settings" / "wine-lr" / "metadata.json").read_bytes() == before
