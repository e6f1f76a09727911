"""Add your own model to model-settings/NAME/: every backend then serves it, parity checks it.

The artifact is a scikit-learn pickle (.joblib, .pkl) or an XGBoost model (.json, .ubj); it
must load with the harness's locked library versions. Rows come from --rows (.npy, .npz, .csv
with or without a header, .parquet); without it, seeded synthetic rows are drawn and the report
says so. The answers the artifact gives to those rows are computed now and stored beside it.

    servingbench add-model churn --artifact ~/churn.json --rows ~/churn-sample.csv
    servingbench bench --models churn --scenarios all --rows 1,100
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from servingbench.models.adding import SYNTHETIC_ROWS, SYNTHETIC_SEED, InputError, add_model

__all__ = ["add_arguments", "run"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("name", help="the model's name: its folder, and its name on every server")
    parser.add_argument("--artifact", type=Path, required=True, help="the model file")
    parser.add_argument("--rows", type=Path, help="rows to send (default: synthetic rows)")
    parser.add_argument(
        "--synthetic-rows",
        type=int,
        default=SYNTHETIC_ROWS,
        help="how many synthetic rows to draw without --rows",
    )
    parser.add_argument(
        "--seed", type=int, default=SYNTHETIC_SEED, help="seed of the synthetic rows"
    )
    parser.add_argument("--force", action="store_true", help="replace a model of this name")


def run(args: argparse.Namespace) -> int:
    if args.synthetic_rows < 1:
        print("add-model: --synthetic-rows must be >= 1", file=sys.stderr)
        return 2
    try:
        added = add_model(
            args.name,
            args.artifact,
            args.rows,
            force=args.force,
            synthetic=args.synthetic_rows,
            seed=args.seed,
        )
    except InputError as exc:
        print(f"add-model: {exc}; nothing was written", file=sys.stderr)
        return 2
    meta = added.metadata
    print(
        f"added {meta.name} -> {added.folder}\n"
        f"  {meta.description}, sha256 {meta.sha256}\n"
        f"  classes {meta.classes}; rows: {meta.inputs}"
    )
    return 0
