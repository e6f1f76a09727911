"""The models servingbench trains, as a plain registry keyed by model name.

A model's name is also its folder under `model-settings/`, so one string identifies it
everywhere: training, every backend, load tests. What is *served* is whatever folder holds a
`model-settings.json` (`models.artifacts.served_models`): these catalog models once trained,
and models a user added with `servingbench add-model`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

__all__ = [
    "DEFAULT_MODEL",
    "MODELS",
    "RUNTIMES",
    "Framework",
    "ModelSpec",
    "as_features",
    "framework_of",
    "get_spec",
]

Framework = Literal["sklearn", "xgboost"]

RUNTIMES: dict[Framework, str] = {
    "sklearn": "mlserver_sklearn.SKLearnModel",
    "xgboost": "mlserver_xgboost.XGBoostModel",
}
"""The stock MLServer runtime that loads each framework's artifact (model-settings.json's
`implementation`); every other backend loads the file the same way."""


def framework_of(implementation: str) -> Framework:
    """The framework whose stock runtime `implementation` names; ValueError for any other."""
    for framework, runtime in RUNTIMES.items():
        if runtime == implementation:
            return framework
    raise ValueError(
        f"implementation {implementation!r} is not a stock runtime servingbench serves; "
        f"known: {', '.join(RUNTIMES.values())}"
    )


@dataclass(frozen=True)
class ModelSpec:
    """How to build one model: data that ships with scikit-learn, an estimator, a file name."""

    name: str
    framework: Framework
    artifact_file: str
    load_data: Callable[[], Any]
    make_estimator: Callable[[int], Any]
    description: str
    test_size: float = 0.25


# scikit-learn is imported only when data is loaded or a model built: it takes seconds to
# import, and the load generator (which only needs names and metadata) must start fast.
def _iris() -> Any:
    from sklearn.datasets import load_iris

    return load_iris()


def _breast_cancer() -> Any:
    from sklearn.datasets import load_breast_cancer

    return load_breast_cancer()


def _logistic_regression(seed: int) -> Any:
    from sklearn.linear_model import LogisticRegression

    return LogisticRegression(max_iter=1000, random_state=seed)


def _xgb_classifier(trees: int) -> Callable[[int], Any]:
    def make(seed: int) -> Any:
        from xgboost import XGBClassifier

        # n_jobs=1: the server is pinned to one core; more threads would only contend.
        return XGBClassifier(
            n_estimators=trees, max_depth=4, learning_rate=0.1, random_state=seed, n_jobs=1
        )

    return make


def _breast_cancer_xgb(name: str, trees: int) -> ModelSpec:
    return ModelSpec(
        name=name,
        framework="xgboost",
        artifact_file="model.json",
        load_data=_breast_cancer,
        make_estimator=_xgb_classifier(trees),
        description=f"XGBoost classifier, {trees} trees of depth 4, on breast_cancer (30 features)",
    )


MODELS: dict[str, ModelSpec] = {
    spec.name: spec
    for spec in (
        ModelSpec(
            name="iris",
            framework="sklearn",
            artifact_file="model.joblib",
            load_data=_iris,
            make_estimator=_logistic_regression,
            description="scikit-learn LogisticRegression on iris (4 features, 3 classes)",
        ),
        _breast_cancer_xgb("breast-cancer", 100),
        # The same model at a tenth and ten times the trees, so its cost spans from "the
        # server's own overhead dominates" to "the model does" (figures in the README).
        _breast_cancer_xgb("breast-cancer-xgb10", 10),
        _breast_cancer_xgb("breast-cancer-xgb1000", 1000),
    )
}

DEFAULT_MODEL = "iris"


def get_spec(name: str) -> ModelSpec:
    """The spec for `name`, or a ValueError that lists the known names."""
    try:
        return MODELS[name]
    except KeyError:
        raise ValueError(f"unknown model {name!r}; known models: {', '.join(MODELS)}") from None


def as_features(rows: Any) -> np.ndarray:
    """Rows as the float32 matrix every backend predicts on (what a V2 FP32 tensor decodes to)."""
    return np.ascontiguousarray(np.asarray(rows, dtype=np.float32))
