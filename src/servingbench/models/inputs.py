"""Rows a user's model is benchmarked on: read from the user's file, or drawn from a seeded
distribution when there is none.

A file is a table of rows by features: `.npy` (one 2-D array), `.npz` (one array, or one named
`X`), `.csv` (with a header line or without) or `.parquet` (read with pyarrow). Every failure is
an `InputError` whose message says what to change.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["ROW_SUFFIXES", "InputError", "Rows", "read_rows", "synthetic_rows"]

ROW_SUFFIXES = (".npy", ".npz", ".csv", ".parquet")


class InputError(ValueError):
    """Rows (or a model) that cannot be benchmarked; the message says what to change."""


@dataclass(frozen=True)
class Rows:
    """A float64 matrix of rows by features, and how it was obtained (the report quotes it)."""

    values: np.ndarray
    origin: str


def read_rows(path: Path) -> Rows:
    """The 2-D numeric table in `path`; an InputError names the file and the problem."""
    suffix = path.suffix.lower()
    if suffix not in ROW_SUFFIXES:
        raise InputError(
            f"{path.name}: rows must be a {', '.join(ROW_SUFFIXES)} file, not {suffix or 'none'}"
        )
    if not path.is_file():
        raise InputError(f"{path}: no such file")
    try:
        values = _READERS[suffix](path)
    except InputError:
        raise
    except Exception as exc:  # each library raises its own kind for a file it cannot parse
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise InputError(f"{path.name} does not parse as {suffix[1:]}: {first}") from None
    if values.ndim != 2 or values.shape[0] == 0 or values.shape[1] == 0:
        raise InputError(
            f"{path.name}: expected a table of rows by features, got an array of shape "
            f"{list(values.shape)}"
        )
    if values.dtype.kind not in "biuf":
        raise InputError(f"{path.name}: values must be numbers, got dtype {values.dtype}")
    return Rows(values.astype(np.float64), f"{len(values)} rows from the user's file {path.name}")


def synthetic_rows(n_features: int, count: int, seed: int) -> Rows:
    """`count` rows of independent standard normal values: when the user brings no rows."""
    values = np.random.default_rng(seed).standard_normal((count, n_features))
    return Rows(
        values,
        f"{count} synthetic rows of independent standard normal values (seed {seed}), "
        "not the user's data",
    )


def _npy(path: Path) -> np.ndarray:
    return np.asarray(np.load(path, allow_pickle=False))


def _npz(path: Path) -> np.ndarray:
    with np.load(path, allow_pickle=False) as archive:
        names = list(archive.files)
        if len(names) == 1:
            return np.asarray(archive[names[0]])
        if "X" in names:
            return np.asarray(archive["X"])
    raise InputError(
        f"{path.name} holds {len(names)} arrays ({', '.join(names) or 'none'}); "
        "save the rows alone, or name them X"
    )


def _has_header(path: Path) -> bool:
    """A first line with any field that is not a number is a header."""
    with path.open(newline="") as fh:
        first = next(csv.reader(fh), [])
    for field in first:
        try:
            float(field)
        except ValueError:
            return True
    return False


def _numeric(frame: Any, path: Path) -> np.ndarray:
    text = [str(c) for c, kind in frame.dtypes.items() if kind.kind not in "biuf"]
    if text:
        raise InputError(
            f"{path.name}: column(s) {', '.join(text[:5])} are not numeric; "
            "keep only the model's features"
        )
    return np.asarray(frame.to_numpy(dtype=np.float64))


def _csv(path: Path) -> np.ndarray:
    import pandas as pd

    frame = pd.read_csv(path, header=0 if _has_header(path) else None)
    return _numeric(frame, path)


def _parquet(path: Path) -> np.ndarray:
    import pandas as pd

    return _numeric(pd.read_parquet(path, engine="pyarrow"), path)


_READERS = {".npy": _npy, ".npz": _npz, ".csv": _csv, ".parquet": _parquet}
