"""The models this service serves: found in MLServer's repository, loaded by the same loader.

Fairness with MLServer: the same `model-settings/<name>/` folders, the same artifact files
loaded as MLServer's stock runtimes load them, the same version, inputs and outputs.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from servingbench.models.artifacts import (
    ArtifactMetadata,
    Predictor,
    load_metadata,
    load_predictor,
    model_dir,
    model_version,
    served_models,
)
from servingbench.models.catalog import as_features
from servingbench.paths import model_settings_dir

__all__ = ["ServedModel", "load_models"]


@dataclass(frozen=True)
class ServedModel:
    """A loaded model with what its endpoints answer about it."""

    name: str
    version: str | None
    predictor: Predictor
    metadata: ArtifactMetadata
    model_settings: dict[str, Any]
    classes: np.ndarray
    """The classifier's own `classes_`: what its `predict` returns, in probability-column order."""

    @property
    def n_features(self) -> int:
        return self.metadata.n_features

    def labels(self, proba: np.ndarray) -> np.ndarray:
        """`predict` derived from `predict_proba`, sparing a second model call: scikit-learn's
        `classes_[argmax]`, and xgboost's binary `p > 0.5` (argmax of `[1 - p, p]`)."""
        labels: np.ndarray = self.classes[np.argmax(proba, axis=1)]
        return labels

    def v2_metadata(self) -> dict[str, Any]:
        """`GET /v2/models/{name}` exactly as MLServer 1.7.1 answers it."""
        return {
            "name": self.name,
            "versions": [],
            "platform": "",
            "inputs": self.model_settings.get("inputs", []),
            "outputs": self.model_settings.get("outputs", []),
            "parameters": {},
        }

    def info(self) -> dict[str, Any]:
        """`GET /models`: enough to build a request and to prove which artifact is served."""
        meta = self.metadata
        return {
            "name": self.name,
            "version": self.version,
            "framework": meta.framework,
            "description": meta.description,
            "feature_names": meta.feature_names,
            "classes": meta.classes,
            "class_names": meta.class_names,
            "sha256": meta.sha256,
            "trained_at": meta.trained_at,
        }


def _load(name: str, root: Path | None) -> ServedModel:
    settings = json.loads((model_dir(name, root) / "model-settings.json").read_text())
    predictor = load_predictor(name, root)
    model = ServedModel(
        name=name,
        version=model_version(name, root),
        predictor=predictor,
        metadata=load_metadata(name, root),
        model_settings=settings,
        classes=np.asarray(predictor.classes_),  # type: ignore[attr-defined]
    )
    # Warm-up: the first call pays lazy initialisation (xgboost's booster, BLAS); not a client.
    warm = as_features(np.asarray(model.metadata.held_out.rows[:1]))
    model.predictor.predict(warm)
    model.predictor.predict_proba(warm)
    return model


def load_models(names: list[str] | None = None, root: Path | None = None) -> dict[str, ServedModel]:
    """Load `names` (default: all found); an unknown name fails with the list of known ones."""
    found = served_models(root)
    wanted = found if names is None else names
    unknown = [n for n in wanted if n not in found]
    if unknown:
        raise ValueError(f"unknown model(s) {unknown}; the repository holds: {', '.join(found)}")
    if not wanted:
        raise ValueError(f"no models to serve in {root or model_settings_dir()}: run `make train`")
    return {name: _load(name, root) for name in wanted}
