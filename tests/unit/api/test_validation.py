"""Request parsing: what is accepted, and the status + message of every refusal."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from servingbench.api.codec import feature_matrix, parse_predict, parse_v2
from servingbench.api.edge import ApiError


def _v2(data: Any, shape: Any = (1, 4), datatype: str = "FP32", **extra: Any) -> dict[str, Any]:
    tensor = {"name": "input-0", "shape": list(shape), "datatype": datatype, "data": data}
    return {"inputs": [tensor], **extra}


def _refusal(call: Any) -> ApiError:
    with pytest.raises(ApiError) as info:
        call()
    return info.value


def test_one_row_and_several_rows_become_float32_matrices() -> None:
    one = feature_matrix([5.1, 3.5, 1, 0.2], 4, 10, "iris")
    several = feature_matrix([[5.1, 3.5, 1, 0.2], [6, 3, 4, 1]], 4, 10, "iris")
    assert one.dtype == np.float32
    assert one.shape == (1, 4)
    assert several.shape == (2, 4)
    np.testing.assert_array_equal(several[0], one[0])


def test_parse_predict_defaults_model_to_none() -> None:
    body = parse_predict({"features": [1, 2, 3, 4]})
    assert body.model is None
    assert parse_predict({"features": [1], "model": "iris"}).model == "iris"


@pytest.mark.parametrize(
    ("doc", "fragment"),
    [
        ([1, 2], "must be a JSON object"),
        ({}, "missing field 'features'"),
        ({"features": [1], "extra": 1}, "unknown field(s) ['extra']"),
        ({"features": [1], "model": 3}, "'model' must be a string"),
    ],
)
def test_parse_predict_refusals(doc: Any, fragment: str) -> None:
    error = _refusal(lambda: parse_predict(doc))
    assert error.status == 422
    assert fragment in error.message


@pytest.mark.parametrize(
    ("features", "status", "fragment"),
    [
        ("1,2,3,4", 422, "must be a list"),
        ([], 422, "empty"),
        ([1, 2, 3], 422, "has 3 value(s); model 'iris' expects 4"),
        ([[1, 2, 3, 4], [1, 2, 3]], 422, "features[1] has 3 value(s)"),
        ([[1, 2, 3, 4], 5], 422, "features[1] is 5; every row must be a list"),
        ([1, 2, 3, True], 422, "features[3] is a boolean"),
        ([1, 2, "3", 4], 422, "features[2] is a string"),
        ([1, 2, None, 4], 422, "features[2] is null"),
        ([1, 2, [3], 4], 422, "features[2] is a list"),
        ([1e39, 2, 3, 4], 422, "overflows float32"),
        ([[1, 2, 3, 4]] * 3, 413, "3 rows exceed the limit of 2"),
    ],
)
def test_feature_matrix_refusals(features: Any, status: int, fragment: str) -> None:
    error = _refusal(lambda: feature_matrix(features, 4, 2, "iris"))
    assert error.status == status
    assert fragment in error.message


def test_v2_flat_and_nested_data_agree() -> None:
    flat = parse_v2(_v2([1, 2, 3, 4, 5, 6, 7, 8], shape=(2, 4)), 4, 10)
    nested = parse_v2(_v2([[1, 2, 3, 4], [5, 6, 7, 8]], shape=(2, 4)), 4, 10)
    np.testing.assert_array_equal(flat.x, nested.x)
    assert flat.x.shape == (2, 4)
    assert flat.outputs == ("predict",)  # the stock runtimes' default


def test_v2_outputs_and_id_are_kept_in_order() -> None:
    doc = _v2([1, 2, 3, 4], id="abc", outputs=[{"name": "predict_proba"}, {"name": "predict"}])
    request = parse_v2(doc, 4, 10)
    assert request.outputs == ("predict_proba", "predict")
    assert request.id == "abc"


def test_v2_integer_datatypes_take_integers() -> None:
    assert parse_v2(_v2([5, 3, 1, 0], datatype="INT64"), 4, 10).x.dtype == np.float32


@pytest.mark.parametrize(
    ("doc", "status", "fragment"),
    [
        ({"inputs": []}, 422, "exactly one tensor; got 0"),
        ({}, 422, "exactly one tensor"),
        ({**_v2([1, 2, 3, 4]), "bogus": 1}, 422, "unknown field(s) ['bogus']"),
        (_v2([1, 2, 3]), 422, "'data' has 3 value(s); shape [1, 4] needs 4"),
        (_v2([1, 2, 3], shape=(1, 3)), 422, "has 3 columns; the model expects 4"),
        (_v2([1, 2, 3, 4], shape=(4,)), 422, "must be [rows, 4]"),
        (_v2([1, 2, 3, 4], datatype="BYTES"), 422, "datatype 'BYTES' not supported"),
        (_v2([1, 2, 3.5, 4], datatype="INT32"), 422, "data[2] is 3.5; expected an integer"),
        (_v2([1, 2, "x", 4]), 422, "data[2] is a string"),
        (_v2([[1, 2, 3, 4], [1, 2]], shape=(2, 4)), 422, "does not match shape [2, 4]"),
        (_v2([], shape=(0, 4)), 422, "no rows"),
        (_v2([1, 2, 3, 4] * 11, shape=(11, 4)), 413, "11 rows exceed the limit of 10"),
        (_v2([1, 2, 3, 4], outputs=[{"name": "foo"}]), 422, "unknown output 'foo'"),
        (_v2([1, 2, 3, 4], outputs=[{"name": "predict"}] * 2), 422, "requested twice"),
        (_v2([1, 2, 3, 4], id=5), 422, "'id' must be a string"),
        ({"inputs": [{"name": "x", "shape": [1, 4], "data": [1, 2, 3, 4]}]}, 422, "'datatype'"),
    ],
)
def test_v2_refusals(doc: Any, status: int, fragment: str) -> None:
    error = _refusal(lambda: parse_v2(doc, 4, 10))
    assert error.status == status
    assert fragment in error.message
