"""Run folders are never reused; the latest run is found; point ids are safe folder names."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from servingbench.runs.layout import create_run, find_run, latest_run, point_id


def test_runs_are_never_overwritten(tmp_path: Path) -> None:
    run = create_run(tmp_path, run_id="r1")
    assert run.points_dir.is_dir()
    with pytest.raises(FileExistsError):
        create_run(tmp_path, run_id="r1")


def test_default_run_ids_are_unique(tmp_path: Path) -> None:
    ids = {create_run(tmp_path, run_id=f"x{i}").run_id for i in range(3)}
    assert len(ids) == 3


def test_latest_run_needs_meta(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="make bench"):
        latest_run(tmp_path)
    old, new = create_run(tmp_path, run_id="a"), create_run(tmp_path, run_id="b")
    old.meta.write_text("{}")
    new.meta.write_text("{}")
    os.utime(old.meta, (1, 1))
    assert latest_run(tmp_path).run_id == "b"
    assert find_run("a", tmp_path).run_id == "a"
    assert find_run(str(new.root)).run_id == "b"


def test_point_id_sorts_and_is_safe() -> None:
    assert point_id("mlserver-grpc", "default", 5) == "mlserver-grpc--c0005"
    assert point_id("fastapi-rest", "batching max/64", 50) == "fastapi-rest@batching_max_64--c0050"
