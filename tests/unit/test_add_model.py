"""`servingbench add-model`: a user's artifact and rows, checked, answered and written whole.

Models are trained here on data scikit-learn ships (wine: 13 features, 3 classes), never a
catalog model, and added into a temporary checkout (`SERVINGBENCH_ROOT`), never the repository's
model-settings/. Every bad input must exit 2 with its message and leave nothing behind.
"""

from __future__ import annotations

import json
import pickle
from pathlib import Path
from typing import cast

import joblib
import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import load_wine
from sklearn.linear_model import LinearRegression, LogisticRegression
from xgboost import XGBClassifier, XGBRegressor

from servingbench.cli import main
from servingbench.environment import library_versions
from servingbench.loadgen.payloads import MAX_CYCLE_VALUES, build_payloads
from servingbench.models.adding import model_settings_document
from servingbench.models.artifacts import (
    file_sha256,
    known_models,
    load_metadata,
    load_predictor,
    served_models,
)
from servingbench.models.catalog import MODELS, Framework, as_features
from servingbench.models.expected import ExpectedAnswers
from servingbench.paths import model_settings_dir

WINE = load_wine()
X = WINE.data.astype(np.float32)
Y = WINE.target


@pytest.fixture
def root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty checkout: its model-settings/ is where add-model writes."""
    checkout = tmp_path / "checkout"
    (checkout / "model-settings").mkdir(parents=True)
    (checkout / "pyproject.toml").write_text("")
    monkeypatch.setenv("SERVINGBENCH_ROOT", str(checkout))
    return checkout / "model-settings"


@pytest.fixture(scope="module")
def xgb_json(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("artifacts") / "wine.json"
    XGBClassifier(n_estimators=5, max_depth=2, n_jobs=1).fit(X, Y).save_model(path)
    return path


@pytest.fixture(scope="module")
def sklearn_joblib(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("artifacts") / "wine.joblib"
    joblib.dump(LogisticRegression(max_iter=5000).fit(X, Y), path)
    return path


def add(capsys: pytest.CaptureFixture[str], *argv: str | Path) -> tuple[int, str]:
    code = main(["add-model", *map(str, argv)])
    out = capsys.readouterr()
    return code, out.out + out.err


def refused(root: Path, capsys: pytest.CaptureFixture[str], *argv: str | Path) -> str:
    """Exit 2, a message saying nothing was written, and nothing (not even hidden) written."""
    before = sorted(p.name for p in root.iterdir())
    code, output = add(capsys, *argv)
    assert code == 2, output
    assert "nothing was written" in output
    assert sorted(p.name for p in root.iterdir()) == before
    return output


def test_an_xgboost_model_is_added_with_its_rows_and_answers(
    root: Path, xgb_json: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rows = tmp_path / "rows.csv"
    pd.DataFrame(X[:40], columns=WINE.feature_names).to_csv(rows, index=False)
    code, output = add(capsys, "wine-xgb", "--artifact", xgb_json, "--rows", rows)
    assert code == 0, output
    folder = root / "wine-xgb"
    assert sorted(p.name for p in folder.iterdir()) == [
        "metadata.json", "model-settings.json", "model.json"
    ]  # fmt: skip
    settings = json.loads((folder / "model-settings.json").read_text())
    assert settings == model_settings_document("wine-xgb", "xgboost", "model.json", 13, 3)
    assert settings["implementation"] == "mlserver_xgboost.XGBoostModel"
    meta = load_metadata("wine-xgb")
    assert meta.sha256 == file_sha256(xgb_json) == file_sha256(folder / "model.json")
    assert meta.classes == [0, 1, 2]
    assert meta.n_features == 13
    assert meta.source == str(xgb_json.resolve())
    assert meta.inputs == "40 rows from the user's file rows.csv"
    # the answers are the artifact's own, as the servers load it
    expected = ExpectedAnswers.for_model("wine-xgb")
    labels, proba = expected.expected_for(X[:40])
    predictor = load_predictor("wine-xgb")
    np.testing.assert_array_equal(labels, predictor.predict(as_features(X[:40])))
    np.testing.assert_allclose(proba, predictor.predict_proba(as_features(X[:40])))
    # discovered like a catalog model, by every part that lists models
    assert served_models() == ["wine-xgb"]
    assert known_models() == [*MODELS, "wine-xgb"]


def test_a_scikit_learn_pickle_gets_seeded_synthetic_rows(
    root: Path, sklearn_joblib: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, output = add(capsys, "wine-lr", "--artifact", sklearn_joblib, "--synthetic-rows", "64")
    assert code == 0, output
    meta = load_metadata("wine-lr")
    settings = json.loads((root / "wine-lr" / "model-settings.json").read_text())
    assert settings["implementation"] == "mlserver_sklearn.SKLearnModel"
    assert settings["parameters"]["uri"] == "./model.joblib"
    assert "64 synthetic rows" in meta.inputs
    assert "not the user's data" in meta.inputs
    assert len(meta.held_out.rows) == 64
    first = meta.held_out.rows
    code, output = add(capsys, "wine-lr", "--artifact", sklearn_joblib, "--synthetic-rows", "64",
                       "--force")  # fmt: skip
    assert code == 0, output
    assert load_metadata("wine-lr").held_out.rows == first  # seeded


@pytest.mark.parametrize("suffix", [".npy", ".npz", ".parquet", ".csv"])
def test_every_rows_format_reads_the_same_rows(
    root: Path, xgb_json: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], suffix: str
) -> None:
    rows = tmp_path / f"rows{suffix}"
    if suffix == ".npy":
        np.save(rows, X[:10])
    elif suffix == ".npz":
        np.savez(rows, X=X[:10], y=Y[:10])
    elif suffix == ".parquet":
        pd.DataFrame(X[:10], columns=WINE.feature_names).to_parquet(rows)
    else:
        np.savetxt(rows, X[:10], delimiter=",")  # no header
    code, output = add(capsys, "wine", "--artifact", xgb_json, "--rows", rows)
    assert code == 0, output
    np.testing.assert_array_equal(as_features(load_metadata("wine").held_out.rows), X[:10])


def test_ubj_models_are_served_too(
    root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "wine.ubj"
    XGBClassifier(n_estimators=3, max_depth=2, n_jobs=1).fit(X, Y).save_model(path)
    code, output = add(capsys, "wine-ubj", "--artifact", path, "--synthetic-rows", "8")
    assert code == 0, output
    assert (root / "wine-ubj" / "model.ubj").is_file()
    assert load_predictor("wine-ubj").predict_proba(X[:2]).shape == (2, 3)


# --- refusals ------------------------------------------------------------------------------


def test_wrong_feature_count(
    root: Path, xgb_json: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rows = tmp_path / "with-label.csv"
    frame = pd.DataFrame(X[:5], columns=WINE.feature_names).assign(target=Y[:5])
    frame.to_csv(rows, index=False)
    output = refused(root, capsys, "wine", "--artifact", xgb_json, "--rows", rows)
    assert "with-label.csv has 14 columns; the model expects 13 features" in output


def test_nan_rows_a_model_refuses(
    root: Path, sklearn_joblib: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rows = tmp_path / "nan.npy"
    values = X[:6].copy()
    values[3, 2] = np.nan
    np.save(rows, values)
    output = refused(root, capsys, "wine", "--artifact", sklearn_joblib, "--rows", rows)
    assert "row(s) 3 contain NaN, which the model does not accept" in output
    assert "drop or impute them" in output


def test_nan_rows_a_model_accepts_cannot_travel_as_json(
    root: Path, xgb_json: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rows = tmp_path / "nan.csv"
    rows.write_text("1,2,3,4,5,6,7,8,9,10,11,12,13\n1,2,,4,5,6,7,8,9,10,11,12,13\n")
    output = refused(root, capsys, "wine", "--artifact", xgb_json, "--rows", rows)
    assert "row(s) 1 contain NaN; the model accepts missing values" in output
    assert "JSON request bodies cannot carry NaN" in output


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("rows.npy", b"not an array", "rows.npy does not parse as npy"),
        ("rows.parquet", b"PAR1 broken", "rows.parquet does not parse as parquet"),
        ("rows.csv", b"a,b\nx,y\n", "column(s) a, b are not numeric"),
        ("rows.txt", b"1,2\n", "rows must be a .npy, .npz, .csv, .parquet file, not .txt"),
    ],
)
def test_unparsable_rows(
    root: Path,
    xgb_json: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    name: str,
    content: bytes,
    message: str,
) -> None:
    rows = tmp_path / name
    rows.write_bytes(content)
    assert message in refused(root, capsys, "wine", "--artifact", xgb_json, "--rows", rows)


def test_npz_with_several_unnamed_arrays(
    root: Path, xgb_json: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rows = tmp_path / "two.npz"
    np.savez(rows, a=X[:3], b=X[:3])
    output = refused(root, capsys, "wine", "--artifact", xgb_json, "--rows", rows)
    assert "two.npz holds 2 arrays (a, b); save the rows alone, or name them X" in output


def test_model_types_no_stock_runtime_serves(
    root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    onnx = tmp_path / "model.onnx"
    onnx.write_bytes(b"\x08\x07")
    output = refused(root, capsys, "m", "--artifact", onnx)
    assert "no stock MLServer runtime serves a .onnx file" in output

    not_estimator = tmp_path / "dict.pkl"
    not_estimator.write_bytes(pickle.dumps({"weights": [1, 2]}))
    output = refused(root, capsys, "m", "--artifact", not_estimator)
    assert "holds a builtins.dict, not a scikit-learn estimator" in output

    regressor = tmp_path / "regressor.joblib"
    joblib.dump(LinearRegression().fit(X, Y), regressor)
    output = refused(root, capsys, "m", "--artifact", regressor)
    assert "LinearRegression without predict_proba" in output

    xgb_regressor = tmp_path / "regressor.json"
    XGBRegressor(n_estimators=2, n_jobs=1).fit(X, Y).save_model(xgb_regressor)
    output = refused(root, capsys, "m", "--artifact", xgb_regressor)
    assert "does not load as an XGBoost model" in output
    assert "Expecting: classifier, got: regressor" in output

    strings = tmp_path / "strings.joblib"
    joblib.dump(LogisticRegression(max_iter=5000).fit(X, WINE.target_names[Y]), strings)
    output = refused(root, capsys, "m", "--artifact", strings)
    assert "class labels are <U7 (class_0" in output
    assert "fit on integer labels" in output


def test_another_xgboost_version_is_refused_with_both_named(
    root: Path, xgb_json: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    doc = json.loads(xgb_json.read_text())
    doc["version"] = [1, 7, 6]
    old = tmp_path / "old.json"
    old.write_text(json.dumps(doc))
    have = library_versions(("xgboost",))["xgboost"]
    output = refused(root, capsys, "wine", "--artifact", old)
    assert f"old.json was written by xgboost 1.7.6, but the harness and every backend run " \
        f"xgboost {have}" in output  # fmt: skip


def test_another_scikit_learn_version_is_refused_with_both_named(
    root: Path, sklearn_joblib: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    have = library_versions(("scikit-learn",))["scikit-learn"]
    other = "0." + have[2:]  # the same length: the pickle's string keeps its size prefix
    data = sklearn_joblib.read_bytes()
    assert data.count(have.encode()) >= 1
    old = tmp_path / "old.joblib"
    old.write_bytes(data.replace(have.encode(), other.encode()))
    output = refused(root, capsys, "wine", "--artifact", old)
    assert f"old.joblib was written by scikit-learn {other}, but the harness and every " \
        f"backend run scikit-learn {have}" in output  # fmt: skip


def test_names_existing_models_and_catalog_models(
    root: Path, xgb_json: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert add(capsys, "wine", "--artifact", xgb_json, "--synthetic-rows", "4")[0] == 0
    sha = file_sha256(root / "wine" / "metadata.json")
    output = refused(root, capsys, "wine", "--artifact", xgb_json)
    assert "exists; pass --force to replace it" in output
    assert file_sha256(root / "wine" / "metadata.json") == sha
    assert "is a catalog model" in refused(root, capsys, "iris", "--artifact", xgb_json)
    assert "model name '../x'" in refused(root, capsys, "../x", "--artifact", xgb_json)
    assert "no such file" in refused(root, capsys, "w", "--artifact", root / "absent.json")


def test_the_catalog_settings_are_what_add_model_would_write() -> None:
    for name in MODELS:
        path = model_settings_dir() / name / "model-settings.json"
        settings = json.loads(path.read_text())
        meta = load_metadata(name)
        framework = cast(Framework, meta.framework)
        assert settings == model_settings_document(
            name, framework, meta.artifact_file, meta.n_features, len(meta.classes)
        )


def test_a_wide_model_at_2000_rows_builds_a_bounded_payload_cycle(
    root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """555 features (the Seldon Core case), 2,000 rows per request, V2 gRPC and JSON."""
    rng = np.random.default_rng(0)
    wide_x = rng.standard_normal((300, 555)).astype(np.float32)
    path = tmp_path / "wide.json"
    XGBClassifier(n_estimators=2, max_depth=2, n_jobs=1).fit(
        wide_x, (wide_x[:, 0] > 0).astype(int)
    ).save_model(path)
    code, output = add(capsys, "wide", "--artifact", path, "--synthetic-rows", "2000")
    assert code == 0, output
    for wire in ("v2-grpc", "v2-json"):
        (payload,) = build_payloads(wire, "wide", 2000)  # 2,000 held-out rows: one request
        assert payload.n_rows == 2000
    cut = build_payloads("v2-grpc", "wide", 256)  # 125 payloads uncut
    assert MAX_CYCLE_VALUES < 125 * 256 * 555
    assert len(cut) == 8  # ceil(2000 / 256): every row sent
