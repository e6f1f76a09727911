"""Deterministic training of every catalog model into `model-settings/<name>/`.

Training is skipped when the artifact, its metadata and the inputs that produced it (training
config and library versions) are unchanged, so `make train` is cheap to call from every target.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.model_selection import train_test_split

from servingbench.atomic import atomic_write_bytes
from servingbench.environment import library_versions
from servingbench.models.artifacts import (
    METADATA_FILE,
    ArtifactMetadata,
    HeldOut,
    expected_outputs,
    file_sha256,
    load_predictor,
    model_dir,
)
from servingbench.models.catalog import MODELS, ModelSpec, as_features

__all__ = ["DEFAULT_SEED", "is_up_to_date", "train_all", "train_model"]

log = logging.getLogger(__name__)

DEFAULT_SEED = 42
_LIBRARIES = ("numpy", "scikit-learn", "xgboost", "joblib")


def _training_config(spec: ModelSpec, seed: int) -> dict[str, Any]:
    estimator = spec.make_estimator(seed)
    params = {k: repr(v) for k, v in sorted(estimator.get_params().items())}
    return {"estimator": type(estimator).__name__, "params": params, "test_size": spec.test_size}


def is_up_to_date(spec: ModelSpec, seed: int = DEFAULT_SEED, root: Path | None = None) -> bool:
    """True when the artifact on disk is what training with these inputs would produce."""
    folder = model_dir(spec.name, root)
    artifact, meta_path = folder / spec.artifact_file, folder / METADATA_FILE
    if not (artifact.is_file() and meta_path.is_file()):
        return False
    try:
        meta = ArtifactMetadata.model_validate_json(meta_path.read_bytes())
    except ValueError:
        return False
    return (
        meta.sha256 == file_sha256(artifact)
        and meta.seed == seed
        and meta.training_config == _training_config(spec, seed)
        and meta.library_versions == library_versions(_LIBRARIES)
    )


def train_model(spec: ModelSpec, seed: int = DEFAULT_SEED, root: Path | None = None) -> Path:
    """Train `spec`, write the artifact where MLServer's runtime finds it, and its metadata."""
    dataset = spec.load_data()
    x, y = dataset.data.astype(np.float32), dataset.target
    x_train, x_test, y_train, y_test = train_test_split(
        x, y, test_size=spec.test_size, random_state=seed, stratify=y
    )
    estimator = spec.make_estimator(seed)
    estimator.fit(x_train, y_train)

    folder = model_dir(spec.name, root)
    folder.mkdir(parents=True, exist_ok=True)
    artifact = folder / spec.artifact_file
    _save(spec, estimator, artifact)

    # Expected answers come from the *saved* file, loaded as the servers load it.
    predictor = load_predictor(spec.name, root)
    labels, proba = expected_outputs(predictor, x_test)
    meta = ArtifactMetadata(
        name=spec.name,
        framework=spec.framework,
        description=spec.description,
        artifact_file=spec.artifact_file,
        sha256=file_sha256(artifact),
        feature_names=[str(f) for f in dataset.feature_names],
        classes=[int(c) for c in np.unique(y)],
        class_names=[str(c) for c in dataset.target_names],
        test_accuracy=float(np.mean(labels == y_test)),
        seed=seed,
        training_config=_training_config(spec, seed),
        library_versions=library_versions(_LIBRARIES),
        trained_at=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        held_out=HeldOut(
            rows=as_features(x_test).tolist(),
            true_labels=[int(v) for v in y_test],
            expected_labels=[int(v) for v in labels],
            expected_proba=proba.astype(float).tolist(),
        ),
    )
    atomic_write_bytes(folder / METADATA_FILE, json.dumps(meta.model_dump(), indent=1).encode())
    log.info("trained %s: test accuracy %.4f -> %s", spec.name, meta.test_accuracy, artifact)
    return artifact


def _save(spec: ModelSpec, estimator: Any, artifact: Path) -> None:
    tmp = artifact.with_name(f".{artifact.name}.tmp{artifact.suffix}")
    if spec.framework == "sklearn":
        import joblib

        joblib.dump(estimator, tmp)
    else:
        estimator.save_model(tmp)
    tmp.replace(artifact)


def train_all(
    names: list[str] | None = None,
    seed: int = DEFAULT_SEED,
    force: bool = False,
    root: Path | None = None,
) -> dict[str, bool]:
    """Train the named models (all by default); returns name -> whether it was (re)trained."""
    trained: dict[str, bool] = {}
    for name in names or list(MODELS):
        spec = MODELS[name]
        if not force and is_up_to_date(spec, seed, root):
            log.info("%s is up to date, not retrained", name)
            trained[name] = False
            continue
        train_model(spec, seed, root)
        trained[name] = True
    return trained
