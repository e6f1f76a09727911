"""A trained artifact on disk: its metadata file and the in-process predictor that loads it.

Every backend loads the same file named in `model-settings/<name>/model-settings.json`; the
metadata beside it records what a benchmark needs to check answers (held-out rows with their
expected labels and probabilities) and to prove which artifact was served (sha256, versions).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, Protocol

import numpy as np
from pydantic import BaseModel, Field

from servingbench.models.catalog import as_features, get_spec
from servingbench.paths import model_settings_dir

__all__ = [
    "METADATA_FILE",
    "ArtifactMetadata",
    "HeldOut",
    "Predictor",
    "file_sha256",
    "load_metadata",
    "load_predictor",
    "model_dir",
    "model_version",
]

METADATA_FILE = "metadata.json"


class HeldOut(BaseModel):
    """Rows the model never saw in training, with the answers the artifact gives in-process."""

    rows: list[list[float]]
    true_labels: list[int]
    expected_labels: list[int]
    expected_proba: list[list[float]]


class ArtifactMetadata(BaseModel):
    """What `metadata.json` beside each artifact holds."""

    name: str
    framework: str
    description: str
    artifact_file: str
    sha256: str
    feature_names: list[str]
    classes: list[int]
    class_names: list[str]
    test_accuracy: float
    seed: int
    training_config: dict[str, Any]
    library_versions: dict[str, str]
    trained_at: str
    held_out: HeldOut = Field(repr=False)

    @property
    def n_features(self) -> int:
        return len(self.feature_names)


class Predictor(Protocol):
    """The two calls a serving backend needs: class labels and class probabilities."""

    def predict(self, x: np.ndarray) -> np.ndarray: ...

    def predict_proba(self, x: np.ndarray) -> np.ndarray: ...


def model_dir(name: str, root: Path | None = None) -> Path:
    return (root or model_settings_dir()) / name


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def load_metadata(name: str, root: Path | None = None) -> ArtifactMetadata:
    """Read `metadata.json`; a missing file says to run `make train`."""
    path = model_dir(name, root) / METADATA_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: run `make train` first")
    return ArtifactMetadata.model_validate_json(path.read_bytes())


def model_version(name: str, root: Path | None = None) -> str | None:
    """The version MLServer serves the model under (`parameters.version` in model-settings)."""
    path = model_dir(name, root) / "model-settings.json"
    settings = json.loads(path.read_text())
    version = (settings.get("parameters") or {}).get("version")
    return str(version) if version is not None else None


def load_predictor(name: str, root: Path | None = None) -> Predictor:
    """Load the artifact exactly as MLServer's stock runtime does (joblib / XGBClassifier)."""
    spec = get_spec(name)
    path = model_dir(name, root) / spec.artifact_file
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: run `make train` first")
    if spec.framework == "sklearn":
        import joblib

        model: Predictor = joblib.load(path)
        return model
    from xgboost import XGBClassifier

    classifier = XGBClassifier()
    classifier.load_model(path)
    return classifier


def expected_outputs(predictor: Predictor, rows: Any) -> tuple[np.ndarray, np.ndarray]:
    """Labels and probabilities for `rows`, computed on the float32 matrix every server uses."""
    x = as_features(rows)
    return predictor.predict(x), predictor.predict_proba(x)
