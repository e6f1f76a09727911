"""A user's own model added to the repository, served by every backend like a catalog model.

`servingbench add-model NAME --artifact PATH [--rows FILE]` ends here. The artifact is loaded
with the harness's own (locked) library versions, exactly as the stock MLServer runtime that
will serve it loads it; it is refused when it was written by another version, when no stock
runtime serves it, or when its answers would not be comparable across backends. The rows are
checked against it, and its answers to them are computed in-process now, so parity and the
load's per-response validation work unchanged. Everything is checked before anything is
written; the folder `model-settings/<NAME>/` then appears whole (`atomic.atomic_write_dir`).
"""

from __future__ import annotations

import datetime as dt
import json
import re
import struct
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from servingbench.atomic import atomic_write_dir
from servingbench.environment import library_versions
from servingbench.models.artifacts import (
    METADATA_FILE,
    ArtifactMetadata,
    HeldOut,
    Predictor,
    file_sha256,
    load_artifact,
    load_metadata,
    model_dir,
)
from servingbench.models.catalog import MODELS, RUNTIMES, Framework, as_features
from servingbench.models.inputs import InputError, Rows, read_rows, synthetic_rows
from servingbench.paths import model_settings_dir
from servingbench.wire import INPUT_NAME

__all__ = [
    "ARTIFACT_SUFFIXES",
    "MAX_STORED_ROWS",
    "SYNTHETIC_ROWS",
    "SYNTHETIC_SEED",
    "AddedModel",
    "InputError",
    "add_model",
    "model_settings_document",
    "replace_rows",
]

ARTIFACT_SUFFIXES: dict[str, Framework] = {
    ".joblib": "sklearn",
    ".pkl": "sklearn",
    ".pickle": "sklearn",
    ".json": "xgboost",
    ".ubj": "xgboost",
}
"""What each stock runtime loads: scikit-learn pickles (joblib) and XGBoost's own formats."""

SYNTHETIC_ROWS = 2000
"""Rows drawn when the user brings none: as many as the largest requests the sweep sends, and
a multiple of the usual rows-per-request values, so each payload cycle is short."""

MAX_STORED_ROWS = 10_000
"""The rows are stored as JSON beside the artifact and read by every server and load process."""

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,62}")
_XGB_CLASSIFIERS = ("binary:logistic", "multi:softprob")
SYNTHETIC_SEED = 42


@dataclass(frozen=True)
class AddedModel:
    """What `add_model` wrote."""

    folder: Path
    metadata: ArtifactMetadata


def model_settings_document(
    name: str, framework: Framework, artifact_file: str, n_features: int, n_classes: int
) -> dict[str, Any]:
    """MLServer's `model-settings.json` for a classifier served by its stock runtime."""
    return {
        "name": name,
        "implementation": RUNTIMES[framework],
        "parameters": {"uri": f"./{artifact_file}", "version": "1"},
        "inputs": [{"name": INPUT_NAME, "datatype": "FP32", "shape": [-1, n_features]}],
        "outputs": [
            {"name": "predict", "datatype": "INT64", "shape": [-1, 1]},
            {"name": "predict_proba", "datatype": "FP32", "shape": [-1, n_classes]},
        ],
    }


# --- the artifact ------------------------------------------------------------------------------


def _framework(path: Path) -> Framework:
    framework = ARTIFACT_SUFFIXES.get(path.suffix.lower())
    if framework is None:
        raise InputError(
            f"{path.name}: no stock MLServer runtime serves a {path.suffix or 'suffix-less'} "
            "file; servingbench serves scikit-learn pickles (.joblib, .pkl, .pickle) through "
            "mlserver_sklearn and XGBoost models (.json, .ubj) through mlserver_xgboost"
        )
    if not path.is_file():
        raise InputError(f"{path}: no such file")
    return framework


_UBJ_INTS = {b"i": ">b", b"U": ">B", b"I": ">h", b"l": ">i", b"L": ">q"}


def _ubj_version(data: bytes) -> list[int] | None:
    """The `version` array of an XGBoost UBJSON model: `[`, an optional `$type`, an optional
    `#count`, then the integers (each with its marker unless typed)."""
    at = data.find(b"version")
    if at < 0 or data[at + 7 : at + 8] != b"[":
        return None
    i, typed, count = at + 8, None, 3

    def integer(marker: bytes, where: int) -> tuple[int, int]:
        fmt = _UBJ_INTS[marker]
        size = struct.calcsize(fmt)
        return struct.unpack(fmt, data[where : where + size])[0], where + size

    if data[i : i + 1] == b"$":
        typed, i = data[i + 1 : i + 2], i + 2
    if data[i : i + 1] == b"#":
        count, i = integer(data[i + 1 : i + 2], i + 2)
    values: list[int] = []
    try:
        for _ in range(min(count, 3)):
            marker = typed or data[i : i + 1]
            i += 0 if typed else 1
            value, i = integer(marker, i)
            values.append(value)
    except (KeyError, struct.error):
        return None
    return values or None


def _xgboost_written_by(path: Path) -> str | None:
    data = path.read_bytes()
    if path.suffix.lower() == ".json":
        try:
            version = json.loads(data).get("version")
        except (ValueError, AttributeError):
            raise InputError(
                f"{path.name} is not an XGBoost JSON model (not a JSON object)"
            ) from None
    else:
        version = _ubj_version(data)
    return ".".join(str(v) for v in version) if isinstance(version, list) else None


def _refuse_version(library: str, written: str, path: Path) -> None:
    have = library_versions((library,))[library]
    if written != have:
        raise InputError(
            f"{path.name} was written by {library} {written}, but the harness and every backend "
            f"run {library} {have} (locked in uv.lock): load it with {library} {written} and "
            f"save it again with {library} {have}, or pin {library}=={written} in pyproject.toml "
            "and backends/*/pyproject.toml and re-lock"
        )


def _load_xgboost(path: Path) -> Predictor:
    written = _xgboost_written_by(path)
    if written is None:
        raise InputError(f"{path.name} does not record the xgboost version that wrote it")
    _refuse_version("xgboost", written, path)
    try:
        predictor = load_artifact("xgboost", path)
    except Exception as exc:
        raise InputError(f"{path.name} does not load as an XGBoost model: {exc}") from None
    booster = predictor.get_booster()  # type: ignore[attr-defined]
    objective = json.loads(booster.save_config())["learner"]["objective"]["name"]
    if objective not in _XGB_CLASSIFIERS:
        raise InputError(
            f"{path.name} has objective {objective!r}; servingbench benchmarks classifiers "
            f"(predict_proba): train with {' or '.join(_XGB_CLASSIFIERS)}"
        )
    return predictor


def _load_sklearn(path: Path) -> Predictor:
    import joblib
    from sklearn.base import BaseEstimator
    from sklearn.exceptions import InconsistentVersionWarning

    with warnings.catch_warnings():
        warnings.simplefilter("error", InconsistentVersionWarning)
        try:
            model = joblib.load(path)
        except InconsistentVersionWarning as warning:
            _refuse_version("scikit-learn", warning.original_sklearn_version, path)
            raise  # the same version after all: cannot happen, scikit-learn warned
        except Exception as exc:  # a pickle raises whatever its objects raise
            raise InputError(f"{path.name} does not load with joblib: {exc}") from None
    if not isinstance(model, BaseEstimator):
        raise InputError(
            f"{path.name} holds a {type(model).__module__}.{type(model).__name__}, not a "
            "scikit-learn estimator: mlserver_sklearn serves scikit-learn estimators only"
        )
    if not hasattr(model, "predict_proba"):
        raise InputError(
            f"{path.name} holds a {type(model).__name__} without predict_proba; servingbench "
            "benchmarks classifiers (labels and class probabilities)"
        )
    return model  # type: ignore[no-any-return]


def _load(framework: Framework, path: Path) -> Predictor:
    return _load_xgboost(path) if framework == "xgboost" else _load_sklearn(path)


def _n_features(predictor: Predictor) -> int | None:
    n = getattr(predictor, "n_features_in_", None)
    return int(n) if n is not None else None


def _classes(predictor: Predictor, path: Path) -> list[int]:
    classes = np.asarray(predictor.classes_)  # type: ignore[attr-defined]
    if classes.dtype.kind not in "iub":
        raise InputError(
            f"{path.name}: class labels are {classes.dtype} ({', '.join(map(str, classes[:3]))}"
            "...); the V2 `predict` output is INT64: fit on integer labels (LabelEncoder)"
        )
    return [int(c) for c in classes]


def _feature_names(predictor: Predictor, n: int) -> list[str]:
    names = getattr(predictor, "feature_names_in_", None)
    if names is None and hasattr(predictor, "get_booster"):
        names = predictor.get_booster().feature_names
    return [str(f) for f in names] if names is not None else [f"f{i}" for i in range(n)]


# --- the rows ----------------------------------------------------------------------------------


def _check_rows(rows: Rows, n_features: int, predictor: Predictor, label: str) -> None:
    values = rows.values
    if values.shape[1] != n_features:
        raise InputError(
            f"{label} has {values.shape[1]} columns; the model expects {n_features} features "
            "(drop any label or id column)"
        )
    if len(values) > MAX_STORED_ROWS:
        raise InputError(
            f"{label} has {len(values)} rows; at most {MAX_STORED_ROWS} are kept beside the "
            "model: pass a sample"
        )
    with np.errstate(over="ignore"):
        x = as_features(values)
    bad = np.flatnonzero(~np.isfinite(x).all(axis=1))
    if not len(bad):
        return
    where = ", ".join(str(i) for i in bad[:5]) + (" ..." if len(bad) > 5 else "")
    if np.isinf(x).any():
        raise InputError(f"{label}: row(s) {where} hold values beyond float32's range")
    try:
        predictor.predict_proba(x[bad])
    except ValueError as exc:
        raise InputError(
            f"{label}: row(s) {where} contain NaN, which the model does not accept "
            f"({str(exc).splitlines()[0]}); drop or impute them"
        ) from None
    raise InputError(
        f"{label}: row(s) {where} contain NaN; the model accepts missing values, but JSON "
        "request bodies cannot carry NaN, so not every backend could be sent these rows: "
        "drop or impute them"
    )


def _check_labels(predictor: Predictor, x: np.ndarray, labels: np.ndarray, path: Path) -> None:
    """Some servers derive `predict` from `predict_proba` (argmax): they must agree."""
    proba = predictor.predict_proba(x)
    derived = np.asarray(predictor.classes_)[np.argmax(proba, axis=1)]  # type: ignore[attr-defined]
    differ = int(np.sum(derived != labels))
    if differ:
        raise InputError(
            f"{path.name}: predict disagrees with the argmax of predict_proba on {differ} of "
            f"{len(labels)} rows (as SVC's does): backends that derive labels from "
            "probabilities would answer differently, so parity could not hold"
        )


# --- writing -----------------------------------------------------------------------------------


def _check_name(name: str, root: Path, force: bool) -> None:
    if not _NAME.fullmatch(name):
        raise InputError(
            f"model name {name!r}: use letters, digits, '-', '_' or '.', starting with a letter "
            "or digit (it is a folder and a URL path segment)"
        )
    if name in MODELS:
        raise InputError(f"{name!r} is a catalog model (`make train` writes it); pick another name")
    if model_dir(name, root).exists() and not force:
        raise InputError(f"{model_dir(name, root)} exists; pass --force to replace it")


def add_model(
    name: str,
    artifact: Path,
    rows_file: Path | None = None,
    *,
    root: Path | None = None,
    force: bool = False,
    synthetic: int = SYNTHETIC_ROWS,
    seed: int = SYNTHETIC_SEED,
    source: str | None = None,
) -> AddedModel:
    """Check `artifact` and the rows, compute the expected answers, write `<root>/<name>/`.

    `source` is recorded as where the artifact came from (default: `artifact` itself).
    """
    root = root or model_settings_dir()
    _check_name(name, root, force)
    framework = _framework(artifact)
    predictor = _load(framework, artifact)
    classes = _classes(predictor, artifact)
    rows = read_rows(rows_file) if rows_file is not None else None
    n_features = _n_features(predictor)
    if n_features is None:
        if rows is None:
            raise InputError(
                f"{artifact.name} does not record its feature count: pass --rows with real rows"
            )
        n_features = rows.values.shape[1]
    if rows is None:
        rows = synthetic_rows(n_features, synthetic, seed)
    _check_rows(rows, n_features, predictor, rows_file.name if rows_file else "synthetic rows")

    x = as_features(rows.values)
    labels = np.asarray(predictor.predict(x))
    proba = np.asarray(predictor.predict_proba(x))
    _check_labels(predictor, x, labels, artifact)
    artifact_file = f"model{artifact.suffix.lower()}"
    if framework == "sklearn":
        artifact_file = "model.joblib"  # joblib reads plain pickles too; MLServer's usual name
    libraries = ("numpy", "scikit-learn", "xgboost", "joblib")
    meta = ArtifactMetadata(
        name=name,
        framework=framework,
        description=f"{type(predictor).__name__} from {artifact.name} ({n_features} features, "
        f"{len(classes)} classes)",
        artifact_file=artifact_file,
        sha256=file_sha256(artifact),
        feature_names=_feature_names(predictor, n_features),
        classes=classes,
        class_names=[str(c) for c in classes],
        test_accuracy=None,
        seed=seed if rows_file is None else 0,
        training_config={},
        library_versions=library_versions(libraries),
        trained_at=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        held_out=HeldOut(
            rows=x.tolist(),
            expected_labels=[int(v) for v in labels],
            expected_proba=proba.astype(float).tolist(),
        ),
        source=source or str(artifact.resolve()),
        inputs=rows.origin,
    )
    settings = model_settings_document(name, framework, artifact_file, n_features, len(classes))
    folder = model_dir(name, root)
    atomic_write_dir(
        folder,
        {
            artifact_file: artifact,
            "model-settings.json": (json.dumps(settings, indent=2) + "\n").encode(),
            METADATA_FILE: json.dumps(meta.model_dump(), indent=1).encode(),
        },
    )
    return AddedModel(folder, meta)


def replace_rows(name: str, rows_file: Path, root: Path | None = None) -> AddedModel:
    """A model added earlier, given other rows: checked against its artifact again and their
    answers computed, as `add-model NAME --artifact <its file> --rows FILE --force` would."""
    root = root or model_settings_dir()
    if name in MODELS:
        raise InputError(
            f"{name!r} is a catalog model: its rows are its held-out split; add your own model "
            "with `servingbench add-model` to benchmark it on your rows"
        )
    try:
        meta = load_metadata(name, root)
    except FileNotFoundError:
        raise InputError(
            f"no model {name!r} in {root}: add it first with `servingbench add-model {name} "
            "--artifact PATH` (its answers to your rows come from its artifact)"
        ) from None
    artifact = model_dir(name, root) / meta.artifact_file
    return add_model(name, artifact, rows_file, root=root, force=True, source=meta.source)
