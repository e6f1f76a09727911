"""The answer each held-out row should get, as computed in-process at train time.

Parity and the load generator's response validation both look answers up here, so a row
sent in any batch or order is checked against the same expectation.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from numpy.typing import ArrayLike

from servingbench.models.artifacts import ArtifactMetadata, load_metadata
from servingbench.models.catalog import as_features

__all__ = ["ExpectedAnswers"]


class ExpectedAnswers:
    """Held-out rows with expected labels and probabilities, looked up by row value."""

    def __init__(self, rows: ArrayLike, labels: ArrayLike, proba: ArrayLike) -> None:
        self.rows = as_features(rows)
        self.labels = np.asarray(labels, dtype=np.int64)
        self.proba = np.asarray(proba, dtype=np.float64)
        if not len(self.rows) == len(self.labels) == len(self.proba):
            raise ValueError("rows, labels and probabilities must have the same length")
        # Keyed by the float32 bytes every server predicts on.
        self._index = {row.tobytes(): i for i, row in enumerate(self.rows)}

    @classmethod
    def from_metadata(cls, metadata: ArtifactMetadata) -> ExpectedAnswers:
        held = metadata.held_out
        return cls(held.rows, held.expected_labels, held.expected_proba)

    @classmethod
    def for_model(cls, name: str, root: Path | None = None) -> ExpectedAnswers:
        """From `model-settings/<name>/metadata.json` (written by `make train`)."""
        return cls.from_metadata(load_metadata(name, root))

    def __len__(self) -> int:
        return len(self.rows)

    def expected_for(
        self, rows: Sequence[Sequence[float]] | np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """(labels [N], probabilities [N, C]) for `rows`; KeyError for a row not held out."""
        x = as_features(rows)
        try:
            index = [self._index[row.tobytes()] for row in x]
        except KeyError:
            raise KeyError("row is not one of the held-out rows; no expected answer") from None
        return self.labels[index], self.proba[index]
