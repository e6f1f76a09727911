"""The run contract's files: written and read by the same models, other versions refused clearly."""

from __future__ import annotations

import json
import math
import stat
from pathlib import Path

import pytest

from servingbench.report import load_run
from servingbench.runs.layout import POINT_FILE, RunLayout
from servingbench.runs.meta import RunMeta
from servingbench.runs.point import PointResult
from servingbench.runs.schema import SCHEMA_VERSION, IncompatibleRunError
from tests.synthetic_run import Series, constant, make_run


@pytest.fixture
def layout(tmp_path: Path) -> RunLayout:
    """A small run: one series, one level, one repeat (enough for every file kind)."""
    return make_run(
        tmp_path,
        series=(Series("mlserver-rest"),),
        levels=(2,),
        repeats=1,
        shape=constant(lambda _s, _k: 2.0),
    )


def _point_path(layout: RunLayout) -> Path:
    (folder,) = layout.point_dirs()
    return folder / POINT_FILE


def _edit(path: Path, **changes: object) -> None:
    doc = json.loads(path.read_text())
    doc.update(changes)
    path.write_text(json.dumps(doc))


def test_files_carry_the_current_schema_version(layout: RunLayout) -> None:
    """Every JSON file says which contract wrote it, so a reader can refuse another one."""
    assert SCHEMA_VERSION == 4
    assert json.loads(layout.meta.read_text())["schema_version"] == SCHEMA_VERSION
    assert json.loads(_point_path(layout).read_text())["schema_version"] == SCHEMA_VERSION


def test_write_then_read_gives_the_same_model(layout: RunLayout) -> None:
    """What the sweep writes is exactly what the report reads back."""
    meta = RunMeta.read(layout.meta)
    point = PointResult.read(_point_path(layout))
    assert meta.run_id == "synthetic"
    assert point.key.scenario == "mlserver-rest"
    copy = layout.root / "copy.json"
    point.write(copy)
    assert PointResult.read(copy) == point


def test_nan_survives_a_round_trip(layout: RunLayout) -> None:
    """A figure that could not be measured stays NaN (JSON has none; the files use `NaN`)."""
    point = PointResult.read(_point_path(layout))
    assert point.summary is not None
    blank = point.model_copy(
        update={"summary": point.summary.model_copy(update={"p999_ms": math.nan})}
    )
    path = layout.root / "nan.json"
    blank.write(path)
    assert '"p999_ms": NaN' in path.read_text()
    summary = PointResult.read(path).summary
    assert summary is not None
    assert math.isnan(summary.p999_ms)


def test_older_schema_is_refused_with_what_to_do(layout: RunLayout) -> None:
    """An old run is refused by name and version, with the commit that wrote it and the remedy."""
    _edit(layout.meta, schema_version=2)
    with pytest.raises(IncompatibleRunError) as info:
        RunMeta.read(layout.meta)
    message = str(info.value)
    assert f"{layout.meta} uses run schema 2 (written at commit 0123456789ab)" in message
    assert f"this servingbench reads schema {SCHEMA_VERSION}" in message
    assert "make bench" in message


def test_file_without_a_version_is_schema_1(layout: RunLayout) -> None:
    """The first round's files had no version field: they are read as schema 1 and refused."""
    doc = json.loads(_point_path(layout).read_text())
    del doc["schema_version"]
    _point_path(layout).write_text(json.dumps(doc))
    with pytest.raises(IncompatibleRunError, match="uses run schema 1; this servingbench reads"):
        PointResult.read(_point_path(layout))


def test_newer_schema_is_refused_too(layout: RunLayout) -> None:
    """A reader never guesses at fields a newer version moved."""
    _edit(_point_path(layout), schema_version=SCHEMA_VERSION + 1)
    with pytest.raises(IncompatibleRunError, match=f"uses run schema {SCHEMA_VERSION + 1}"):
        PointResult.read(_point_path(layout))


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("{not json", "is not valid JSON"),
        ("[1, 2]", "must hold a JSON object"),
    ],
)
def test_unreadable_file_is_an_incompatible_run(tmp_path: Path, text: str, expected: str) -> None:
    """Garbage is reported as a run-contract problem, naming the file."""
    path = tmp_path / "meta.json"
    path.write_text(text)
    with pytest.raises(IncompatibleRunError, match=expected) as info:
        RunMeta.read(path)
    assert str(path) in str(info.value)


def test_unknown_field_is_refused(layout: RunLayout) -> None:
    """extra="forbid": a field this version does not know is not silently dropped."""
    _edit(_point_path(layout), mystery=1)
    with pytest.raises(IncompatibleRunError, match="does not match its schema") as info:
        PointResult.read(_point_path(layout))
    assert "mystery" in str(info.value)


def test_sweep_settings_are_typed_where_the_report_reads_them(layout: RunLayout) -> None:
    """The settings a report or gate reads are checked on reading; the rest are kept verbatim."""
    meta = RunMeta.read(layout.meta)
    assert meta.sweep.window_s > 0
    assert "concurrency" in meta.sweep.model_dump()  # an untyped setting, kept
    doc = json.loads(layout.meta.read_text())
    doc["sweep"]["window_s"] = "one second"
    layout.meta.write_text(json.dumps(doc))
    with pytest.raises(IncompatibleRunError, match="window_s"):
        RunMeta.read(layout.meta)


def test_load_run_refuses_an_old_run(layout: RunLayout) -> None:
    """The report's entry point passes the refusal on rather than half-reading the run."""
    _edit(layout.meta, schema_version=1)
    with pytest.raises(IncompatibleRunError, match="uses run schema 1"):
        load_run(layout)


def test_write_is_atomic_and_readable(layout: RunLayout) -> None:
    """Written through a temp file and a rename: no temp file left, and readable by others."""
    meta = RunMeta.read(layout.meta)
    meta.notes.append("rewritten")
    meta.write(layout.meta)
    assert RunMeta.read(layout.meta).notes[-1] == "rewritten"
    assert not list(layout.root.glob(".*.tmp"))
    assert stat.S_IMODE(layout.meta.stat().st_mode) == 0o644
