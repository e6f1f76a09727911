"""The report's content, assembled once as plain blocks that `markdown` and `html` both render.

Keeping content apart from format means report.md and report.html can never disagree: the
numbers, the flag marks and the wording are decided here, the renderers only lay them out.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from servingbench.report.load import RunData
from servingbench.report.tables import FLAG_MARK, ReportTables

__all__ = [
    "FLAG_MARK",
    "NA",
    "Block",
    "Bullets",
    "Heading",
    "Image",
    "Paragraph",
    "Table",
    "build_document",
    "fmt",
    "frame_table",
    "get_path",
    "metadata_blocks",
]

NA = "n/a"


@dataclass(frozen=True)
class Heading:
    text: str
    level: int = 2


@dataclass(frozen=True)
class Paragraph:
    text: str


@dataclass(frozen=True)
class Bullets:
    items: tuple[str, ...]


@dataclass(frozen=True)
class Table:
    """Cells already formatted as text; `marked[r][c]` flags one cell, `row_marked[r]` a row."""

    header: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]
    marked: tuple[tuple[bool, ...], ...]
    row_marked: tuple[bool, ...]


@dataclass(frozen=True)
class Image:
    """A PNG inside the run folder, referenced by file name."""

    file: str
    caption: str


Block = Heading | Paragraph | Bullets | Table | Image


def fmt(value: Any, digits: int = 2) -> str:
    """A number with fixed decimals; missing values as "n/a"."""
    if value is None or value is pd.NA:
        return NA
    if isinstance(value, float):
        return NA if math.isnan(value) else f"{value:.{digits}f}"
    return str(value)


def frame_table(
    frame: pd.DataFrame,
    formats: dict[str, Callable[[Any], str]] | None = None,
    marked_rows: Sequence[bool] | None = None,
    marked_cells: pd.DataFrame | None = None,
    index_name: str | None = None,
) -> Table:
    """A DataFrame as a `Table`; with `index_name` the index becomes the first column.

    Marks come per row (`marked_rows`) or per cell (`marked_cells`, same shape as `frame`).
    """
    formats = formats or {}
    cols = list(frame.columns)
    header = ([index_name] if index_name else []) + [str(c) for c in cols]
    cell_marks: list[list[bool]] = (
        marked_cells.reindex(index=frame.index, columns=frame.columns)
        .fillna(False)
        .astype(bool)
        .to_numpy()
        .tolist()
        if marked_cells is not None
        else [[False] * len(cols)] * len(frame)
    )
    rows, marks = [], []
    for (idx, row), flags in zip(frame.iterrows(), cell_marks, strict=True):
        cells = [fmt(idx)] if index_name else []
        cells += [formats.get(str(c), fmt)(row[c]) for c in cols]
        rows.append(tuple(cells))
        marks.append(tuple(([False] if index_name else []) + flags))
    row_marks = tuple(bool(m) for m in marked_rows) if marked_rows is not None else ()
    return Table(tuple(header), tuple(rows), tuple(marks), row_marks or (False,) * len(rows))


def get_path(mapping: Any, *keys: str) -> Any:
    """mapping[k1][k2]..., or None when any level is missing or not a dict."""
    for key in keys:
        if not isinstance(mapping, dict) or key not in mapping:
            return None
        mapping = mapping[key]
    return mapping


def _text(value: Any, nested: bool = False) -> str:
    if value is None or (isinstance(value, str | dict | list) and not value):
        return NA
    if isinstance(value, dict):
        text = ", ".join(f"{k}={_text(v, nested=True)}" for k, v in value.items())
        return f"{{{text}}}" if nested else text
    if isinstance(value, list):
        return " ".join(str(v) for v in value)
    return str(value)


def metadata_blocks(meta: dict[str, Any]) -> list[Block]:
    """Run metadata, every optional key shown as "n/a" when absent."""
    memory = get_path(meta, "hardware", "memory_total_bytes")
    dirty = get_path(meta, "git", "dirty")
    commit = _text(get_path(meta, "git", "commit"))
    blocks: list[Block] = [
        Heading("Run"),
        Bullets(
            (
                f"run id: {_text(meta.get('run_id'))}",
                f"status: {_text(meta.get('status'))}",
                f"started: {_text(meta.get('started_at'))}, "
                f"finished: {_text(meta.get('finished_at'))}",
                f"git commit: {commit}" + (" (uncommitted changes)" if dirty else ""),
            )
        ),
        Heading("Hardware and software"),
        Bullets(
            (
                f"CPU: {_text(get_path(meta, 'hardware', 'cpu_model'))}, "
                f"{_text(get_path(meta, 'hardware', 'logical_cores'))} logical cores",
                f"memory: {fmt(memory / 2**30, 1) + ' GiB' if memory else NA}",
                f"OS: {_text(get_path(meta, 'hardware', 'os'))}",
                f"Python: {_text(get_path(meta, 'software', 'python'))}",
                f"packages: {_text(get_path(meta, 'software', 'packages'))}",
            )
        ),
        Heading("Sweep"),
        Bullets(tuple(f"{k}: {_text(v)}" for k, v in (meta.get("sweep") or {}).items()) or (NA,)),
        Heading("Servers"),
    ]
    servers = meta.get("servers") or {}
    if not isinstance(servers, dict) or not servers:
        blocks.append(Paragraph(NA))
    for name, spec in servers.items() if isinstance(servers, dict) else []:
        blocks.append(
            Bullets(
                (
                    f"{name}: backend {_text(get_path(spec, 'backend'))}, "
                    f"cpus {_text(get_path(spec, 'cpus'))}",
                    f"command: {_text(get_path(spec, 'argv'))}",
                    f"config: {_text(get_path(spec, 'config'))}",
                )
                + ((f"failed to start: {spec['failure']}",) if get_path(spec, "failure") else ())
            )
        )
    pinning = meta.get("pinning")
    notes = meta.get("notes") or []
    blocks += [
        Heading("Pinning"),
        Bullets(tuple(f"{k}: {_text(v)}" for k, v in pinning.items()))
        if isinstance(pinning, dict) and pinning
        else Paragraph(_text(pinning)),
        Heading("Notes"),
        Bullets(tuple(str(n) for n in notes)) if notes else Paragraph(NA),
    ]
    return blocks


def _seconds(value: Any) -> str:
    return NA if value is None or math.isnan(value) else f"{value / 1000:.6f}"


def _series_blocks(data: RunData, tables: ReportTables) -> Iterable[Block]:
    """Per series, the seed lab's table (latencies in seconds) plus req/s, errors and flags."""
    yield Heading("Results per series (latency in seconds)")
    yield Paragraph(
        f"Latencies of successful requests after warm-up, recomputed from requests.npz. "
        f"{FLAG_MARK} marks a flagged point: its numbers are not a clean measurement "
        "(client-bound: the load generator, not the server, was the limit; unstable: the last "
        "windows disagreed on req/s or p50; errors: at least one measured request failed, see "
        "error %; failed: the point did not run)."
    )
    for series in data.series:
        part = tables.summary[tables.summary["series"] == series]
        frame = pd.DataFrame(
            {
                "N": part["concurrency"].to_numpy(),
                "avg": part["avg_ms"].to_numpy(),
                "q25": part["p25_ms"].to_numpy(),
                "q50": part["p50_ms"].to_numpy(),
                "q90": part["p90_ms"].to_numpy(),
                "q95": part["p95_ms"].to_numpy(),
                "q99": part["p99_ms"].to_numpy(),
                "req/s": part["req_s"].to_numpy(),
                "error %": part["error_rate_pct"].to_numpy(),
                "flags": part["flags"].to_numpy(),
            }
        )
        latency = dict.fromkeys(("avg", "q25", "q50", "q90", "q95", "q99"), _seconds)
        yield Heading(series, level=3)
        yield frame_table(
            frame,
            formats={
                **latency,
                "req/s": lambda v: fmt(v, 1),
                "error %": lambda v: fmt(v, 2),
                "flags": lambda v: str(v) or "-",
            },
            marked_rows=list(part["flags"] != ""),
        )


def _bound_blocks(tables: ReportTables) -> Iterable[Block]:
    """The at-a-glance answer: the most req/s each series sustained under the p99 bound."""
    yield Heading(f"At a glance: max throughput with p99 ≤ {tables.bound_ms:g} ms")
    yield Paragraph(
        'The "result" column counts only unflagged points ("none": no unflagged point met the '
        f'bound). "incl_flagged" shows a faster point, marked {FLAG_MARK}, that is only unstable '
        "or client-bound, error-free and within the bound."
    )
    yield frame_table(
        tables.under_bound,
        formats={"max_req_s": lambda v: fmt(v, 1), "p99_ms": lambda v: fmt(v, 2)},
    )


def _comparison_blocks(tables: ReportTables) -> Iterable[Block]:
    """Series side by side by concurrency, and divided by the baseline series."""
    yield Heading("Comparison across series")
    yield Paragraph(f"{FLAG_MARK} marks a value from a flagged point.")
    yield Heading("req/s by concurrency", level=3)
    yield frame_table(
        tables.rps,
        dict.fromkeys(map(str, tables.rps.columns), lambda v: fmt(v, 1)),
        marked_cells=tables.flagged,
        index_name="N",
    )
    yield Heading("p99 latency (ms) by concurrency", level=3)
    yield frame_table(tables.p99, marked_cells=tables.flagged, index_name="N")
    if tables.baseline and tables.rps_ratio is not None and tables.p99_ratio is not None:
        yield Heading(f"Ratio to baseline {tables.baseline}", level=3)
        yield Paragraph(
            f"Each series divided by {tables.baseline} at the same concurrency "
            "(req/s: above 1 is more throughput; p99: below 1 is lower latency)."
        )
        for name, ratio in (("req/s ratio", tables.rps_ratio), ("p99 ratio", tables.p99_ratio)):
            yield Paragraph(name)
            yield frame_table(ratio, marked_cells=tables.flagged, index_name="N")


def build_document(
    data: RunData, tables: ReportTables, plots: Sequence[tuple[Path, str]]
) -> list[Block]:
    """The whole report: at a glance, plots, per-series tables, comparisons, then metadata."""
    title = data.meta.get("run_id") or data.run_id
    blocks: list[Block] = [Heading(f"servingbench report: {title}", level=1)]
    blocks += _bound_blocks(tables)
    blocks.append(Heading("Plots"))
    blocks += [Image(path.name, caption) for path, caption in plots]
    blocks += _comparison_blocks(tables)
    blocks += _series_blocks(data, tables)
    blocks += metadata_blocks(data.meta)
    return blocks
