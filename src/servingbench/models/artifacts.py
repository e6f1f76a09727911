"""A served artifact on disk: its metadata file and the in-process predictor that loads it.

Every backend loads the same file named in `model-settings/<name>/model-settings.json`; the
metadata beside it records what a benchmark needs to check answers (held-out rows with their
expected labels and probabilities) and to prove which artifact was served (sha256, versions).
The folder is the whole definition of a model: a catalog model once trained and a model a user
added (`servingbench add-model`) are found, loaded and checked the same way.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, Protocol

import numpy as np
from pydantic import BaseModel, Field

from servingbench.models.catalog import MODELS, as_features, framework_of
from servingbench.paths import model_settings_dir

__all__ = [
    "METADATA_FILE",
    "ArtifactMetadata",
    "HeldOut",
    "Predictor",
    "file_sha256",
    "known_models",
    "load_artifact",
    "load_metadata",
    "load_predictor",
    "model_dir",
    "model_version",
    "served_models",
]

METADATA_FILE = "metadata.json"


class HeldOut(BaseModel):
    """Rows the model never saw in training, with the answers the artifact gives in-process."""

    rows: list[list[float]]
    true_labels: list[int] = Field(default_factory=list)
    """Empty for a user's rows: only the artifact's own answers are known."""
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
    test_accuracy: float | None
    """None for a model a user added: its training data is not ours to score."""
    seed: int
    training_config: dict[str, Any]
    library_versions: dict[str, str]
    trained_at: str
    held_out: HeldOut = Field(repr=False)
    source: str | None = None
    """The file a user's model was added from (None: trained by `make train`)."""
    inputs: str = "held-out split of the training data"
    """Where the held-out rows came from, in words the report quotes."""

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


def served_models(root: Path | None = None) -> list[str]:
    """Every `<name>/model-settings.json` in the repository (folder name == model name)."""
    root = root or model_settings_dir()
    found = (path.parent.name for path in root.glob("*/model-settings.json"))
    return sorted(
        name for name in found if not name.startswith(".")
    )  # a dot: a folder being written


def known_models(root: Path | None = None) -> list[str]:
    """The catalog's models (trained or not) and every other model the repository serves."""
    return [*MODELS, *(name for name in served_models(root) if name not in MODELS)]


def load_metadata(name: str, root: Path | None = None) -> ArtifactMetadata:
    """Read `metadata.json`; a missing file says to run `make train`."""
    path = model_dir(name, root) / METADATA_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: run `make train` first")
    return ArtifactMetadata.model_validate_json(path.read_bytes())


def _model_settings(name: str, root: Path | None) -> dict[str, Any]:
    path = model_dir(name, root) / "model-settings.json"
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: run `make train` or `servingbench add-model`")
    settings: dict[str, Any] = json.loads(path.read_text())
    return settings


def model_version(name: str, root: Path | None = None) -> str | None:
    """The version MLServer serves the model under (`parameters.version` in model-settings)."""
    version = (_model_settings(name, root).get("parameters") or {}).get("version")
    return str(version) if version is not None else None


def load_predictor(name: str, root: Path | None = None) -> Predictor:
    """Load the artifact that `model-settings.json` names, exactly as MLServer's stock runtime
    does (joblib / XGBClassifier)."""
    settings = _model_settings(name, root)
    framework = framework_of(settings["implementation"])
    path = model_dir(name, root) / settings["parameters"]["uri"]
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: run `make train` first")
    return load_artifact(framework, path)


def load_artifact(framework: str, path: Path) -> Predictor:
    """An artifact file as the stock runtime of `framework` loads it."""
    if framework == "sklearn":
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
