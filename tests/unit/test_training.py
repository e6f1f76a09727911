"""Training is deterministic, records what the benchmark needs, and skips when up to date."""

from __future__ import annotations

import json
import shutil
import tomllib
from pathlib import Path

import numpy as np
import pytest

from servingbench.environment import library_versions
from servingbench.models.artifacts import (
    file_sha256,
    load_metadata,
    load_predictor,
    model_version,
)
from servingbench.models.catalog import MODELS, RUNTIMES, get_spec
from servingbench.models.training import is_up_to_date, train_all, train_model
from servingbench.paths import model_settings_dir, project_root
from servingbench.servers import backends
from servingbench.stack.environments import (
    ARTIFACT_LIBRARIES,
    backend_environment,
    check_environment,
    version_drift,
)


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """A copy of model-settings/ without artifacts."""
    dest = tmp_path / "model-settings"
    shutil.copytree(model_settings_dir(), dest, ignore=shutil.ignore_patterns("model.*", "*.json"))
    for folder in model_settings_dir().iterdir():
        if folder.is_dir():
            shutil.copy(folder / "model-settings.json", dest / folder.name)
    return dest


@pytest.mark.parametrize("name", list(MODELS))
def test_training_is_deterministic(repo: Path, name: str) -> None:
    spec = get_spec(name)
    first = file_sha256(train_model(spec, root=repo))
    second = file_sha256(train_model(spec, root=repo))
    assert first == second


@pytest.mark.parametrize("name", list(MODELS))
def test_metadata_describes_artifact(repo: Path, name: str) -> None:
    train_all([name], root=repo)
    meta = load_metadata(name, root=repo)
    spec = get_spec(name)
    assert meta.sha256 == file_sha256(repo / name / spec.artifact_file)
    assert meta.n_features == spec.load_data().data.shape[1]  # the data set's, for any model
    assert meta.test_accuracy is not None
    assert 0.9 < meta.test_accuracy <= 1.0
    held = meta.held_out
    assert len(held.rows) == len(held.expected_labels) == len(held.expected_proba) > 10
    predictor = load_predictor(name, root=repo)
    x = np.asarray(held.rows, dtype=np.float32)
    np.testing.assert_array_equal(predictor.predict(x), held.expected_labels)
    np.testing.assert_allclose(predictor.predict_proba(x), held.expected_proba, atol=1e-7)
    assert {"numpy", "scikit-learn", "xgboost"} <= set(meta.library_versions)


def test_up_to_date_skips_and_tampering_retrains(repo: Path) -> None:
    assert train_all(["iris"], root=repo) == {"iris": True}
    assert train_all(["iris"], root=repo) == {"iris": False}
    artifact = repo / "iris" / "model.joblib"
    artifact.write_bytes(artifact.read_bytes() + b"\0")
    assert not is_up_to_date(get_spec("iris"), root=repo)
    assert train_all(["iris"], root=repo) == {"iris": True}


def test_model_settings_name_matches_folder_and_runtime() -> None:
    for name, spec in MODELS.items():
        settings = json.loads((model_settings_dir() / name / "model-settings.json").read_text())
        assert settings["name"] == name
        assert settings["implementation"] == RUNTIMES[spec.framework]
        assert settings["parameters"]["uri"] == f"./{spec.artifact_file}"


def test_unknown_model_lists_known_ones() -> None:
    with pytest.raises(ValueError, match="known models: iris, breast-cancer"):
        get_spec("resnet")


def _pins(pyproject: Path) -> dict[str, str]:
    deps = tomllib.loads(pyproject.read_text())["project"]["dependencies"]
    return dict(d.split("==", 1) for d in deps if "==" in d and ";" not in d)


def test_every_environment_pins_the_libraries_that_wrote_the_artifacts() -> None:
    """A joblib pickle read by another scikit-learn may predict otherwise: same pins everywhere."""
    wanted = library_versions(ARTIFACT_LIBRARIES)
    assert _pins(project_root() / "pyproject.toml") == wanted
    for backend in backends():
        pins = _pins(project_root() / "backends" / backend / "pyproject.toml")
        assert {k: pins.get(k) for k in ARTIFACT_LIBRARIES} == wanted, backend


def test_version_drift_names_library_and_model() -> None:
    wanted = {"iris": {"numpy": "2.0.0", "joblib": "1.0"}}
    assert version_drift("env", {"numpy": "2.0.0", "joblib": "1.0"}, wanted) == []
    assert version_drift("env", {"numpy": "2.1.0", "joblib": "1.0"}, wanted) == [
        "env: numpy 2.1.0, but iris's artifact was written with 2.0.0"
    ]


@pytest.mark.usefixtures("trained_models")
@pytest.mark.parametrize("backend", list(backends()))
def test_each_backend_environment_reads_the_artifacts_with_their_libraries(backend: str) -> None:
    environment = backend_environment(backend)
    assert environment is not None
    versions = check_environment(environment)  # BackendEnvironmentError on drift or no .venv
    for name in MODELS:
        meta = load_metadata(name)
        for library in ARTIFACT_LIBRARIES:
            assert versions[library] == meta.library_versions[library], (backend, library)


def test_model_version_is_the_version_in_model_settings(tmp_path: Path) -> None:
    folder = tmp_path / "m"
    folder.mkdir()
    (folder / "model-settings.json").write_text('{"name": "m", "parameters": {"version": 7}}')
    assert model_version("m", root=tmp_path) == "7"
    (folder / "model-settings.json").write_text('{"name": "m", "parameters": {"uri": "x"}}')
    assert model_version("m", root=tmp_path) is None
    assert model_version("iris") == "1"  # what MLServer, KServe and our service all answer
