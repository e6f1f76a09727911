"""Train every model into model-settings/<name>/ (skipped when already up to date)."""

from __future__ import annotations

import argparse

from servingbench.models.catalog import MODELS
from servingbench.models.training import DEFAULT_SEED, train_all


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", action="append", choices=list(MODELS), help="only this model")
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED)
    parser.add_argument("--force", action="store_true", help="retrain even when up to date")


def run(args: argparse.Namespace) -> int:
    train_all(args.model, seed=args.seed, force=args.force)
    return 0
