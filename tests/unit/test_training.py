"""Training is deterministic, records what the benchmark needs, and skips when up to date."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from servingbench.artifacts import file_sha256, load_metadata, load_predictor
from servingbench.catalog import MODELS, get_spec
from servingbench.paths import model_settings_dir
from servingbench.training import is_up_to_date, train_all, train_model


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
    assert meta.n_features == {"iris": 4, "breast-cancer": 30}[name]
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
        assert settings["implementation"] == spec.runtime
        assert settings["parameters"]["uri"] == f"./{spec.artifact_file}"


def test_unknown_model_lists_known_ones() -> None:
    with pytest.raises(ValueError, match="known models: iris, breast-cancer"):
        get_spec("resnet")
