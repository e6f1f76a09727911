"""`/predict` derives labels from one `predict_proba` call: they must equal `predict`."""

from __future__ import annotations

import numpy as np
import pytest

from servingbench.api.models import load_models
from servingbench.models.catalog import as_features


@pytest.mark.usefixtures("trained_models")
@pytest.mark.parametrize("name", ["iris", "breast-cancer"])
def test_labels_from_proba_equal_predict_on_every_held_out_row(name: str) -> None:
    model = load_models([name])[name]
    x = as_features(model.metadata.held_out.rows)
    labels = model.labels(model.predictor.predict_proba(x))
    expected = model.predictor.predict(x)
    np.testing.assert_array_equal(labels, expected)
    assert labels.dtype == expected.dtype
