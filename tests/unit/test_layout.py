"""Run folders are never reused; the latest run is found; point ids are safe folder names."""

from __future__ import annotations

import datetime as dt
import os
import re
from pathlib import Path
from types import SimpleNamespace

import pytest

from servingbench.runs import layout
from servingbench.runs.layout import create_run, find_run, latest_run
from servingbench.runs.point import PointKey


def test_runs_are_never_overwritten(tmp_path: Path) -> None:
    run = create_run(tmp_path, run_id="r1")
    assert run.points_dir.is_dir()
    assert run.root == tmp_path / "r1"
    with pytest.raises(FileExistsError):
        create_run(tmp_path, run_id="r1")


def test_given_run_ids_are_used_as_given(tmp_path: Path) -> None:
    ids = [create_run(tmp_path, run_id=f"x{i}").run_id for i in range(3)]
    assert ids == ["x0", "x1", "x2"]


class _OneSecond(dt.datetime):
    """A clock stuck in one second (its microseconds still tick): runs started back to back."""

    ticks = 0

    @classmethod
    def now(cls, tz: dt.tzinfo | None = None) -> _OneSecond:
        cls.ticks += 1
        return cls(2026, 1, 2, 3, 4, 5, cls.ticks, tzinfo=tz)


def test_default_run_ids_are_unique_timestamp_pid_names(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two runs started in the same second by one process (a sweep, then its calibration) must
    not collide: the default id is `<YYYYMMDD-HHMMSS>-<pid>`, made unique when that is taken."""
    monkeypatch.setattr(layout, "dt", SimpleNamespace(datetime=_OneSecond), raising=False)
    first = create_run(tmp_path)
    second = create_run(tmp_path)
    assert first.run_id != second.run_id
    for run in (first, second):
        assert run.root.parent == tmp_path
        assert run.points_dir.is_dir()
        assert re.match(r"20260102-030405\b", run.run_id), run.run_id
        assert str(os.getpid()) in run.run_id.split("-")[2:], run.run_id  # a field of its own


def test_default_run_id_is_now_and_this_process(tmp_path: Path) -> None:
    before = dt.datetime.now().replace(microsecond=0)
    run = create_run(tmp_path)
    after = dt.datetime.now()
    match = re.fullmatch(r"(\d{8}-\d{6})-(\d+)", run.run_id)
    assert match, run.run_id
    assert before <= dt.datetime.strptime(match.group(1), "%Y%m%d-%H%M%S") <= after
    assert int(match.group(2)) == os.getpid()
    assert run.points_dir.is_dir()


def test_latest_run_needs_meta(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="make bench"):
        latest_run(tmp_path)
    old, new = create_run(tmp_path, run_id="a"), create_run(tmp_path, run_id="b")
    create_run(tmp_path, run_id="c")  # newest, but no meta.json: not a finished run
    old.meta.write_text("{}")
    new.meta.write_text("{}")
    os.utime(old.meta, (1, 1))
    assert latest_run(tmp_path).run_id == "b"
    assert find_run("a", tmp_path).run_id == "a"
    assert find_run(str(new.root)).run_id == "b"
    with pytest.raises(FileNotFoundError, match="not a run folder"):
        find_run("c", tmp_path)


def _key(**changes: object) -> PointKey:
    fields: dict[str, object] = {
        "scenario": "mlserver-grpc",
        "backend": "mlserver",
        "wire": "v2-grpc",
        "model": "iris",
        "rows_per_request": 1,
        "concurrency": 5,
    }
    return PointKey.model_validate({**fields, **changes})


def test_point_id_sorts_and_is_safe() -> None:
    assert _key().point_id() == "mlserver-grpc--iris--rows1--c0005--rep001"
    odd = _key(scenario="fastapi-rest", server_config="batching max/64", concurrency=50)
    assert odd.point_id() == "fastapi-rest@batching_max_64--iris--rows1--c0050--rep001"
    assert "/" not in odd.point_id()
    levels = [_key(concurrency=c).point_id() for c in (1, 5, 10, 50, 100)]
    assert levels == sorted(levels)
    repeats = [_key(repeat=r).point_id() for r in range(1, 12)]  # past 9 too
    assert repeats == sorted(repeats)
    assert len(set(repeats)) == 11
