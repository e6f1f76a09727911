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

from servingbench.report import breakdown, openloop
from servingbench.report.figure import FigureSpec
from servingbench.report.load import RunData
from servingbench.report.tables import FLAG_MARK, ReportTables
from servingbench.report.verdict import verdict_sentences
from servingbench.runs.meta import ArtifactSummary, RunMeta

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
    """A PNG inside the run folder, referenced by file name; `figure` is what it draws, for a
    format that can show it interactively."""

    file: str
    caption: str
    figure: FigureSpec | None = None


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


def _text(value: Any, nested: bool = False) -> str:
    if value is None or (isinstance(value, str | dict | list) and not value):
        return NA
    if isinstance(value, dict):
        text = ", ".join(f"{k}={_text(v, nested=True)}" for k, v in value.items())
        return f"{{{text}}}" if nested else text
    if isinstance(value, list):
        return " ".join(str(v) for v in value)
    return str(value)


def _model_line(name: str, artifact: ArtifactSummary) -> str:
    """One served model: what it is, where it came from, and where the rows sent came from."""
    origin = f"added from {artifact.source}" if artifact.source else "trained by `make train`"
    return (
        f"{name}: {artifact.description}; {artifact.n_features} features, {origin}, "
        f"sha256 {artifact.sha256[:12]}; requests carry {artifact.held_out_rows} rows from: "
        f"{artifact.inputs}"
    )


def metadata_blocks(meta: RunMeta) -> list[Block]:
    """Run metadata: machine, software, each environment's versions, servers, pinning, notes."""
    hw = meta.hardware
    blocks: list[Block] = [
        Heading("Run"),
        Bullets(
            (
                f"run id: {meta.run_id}",
                f"status: {meta.status}",
                f"started: {meta.started_at}, finished: {_text(meta.finished_at)}",
                f"git commit: {_text(meta.git.commit)}"
                + (" (uncommitted changes)" if meta.git.dirty else ""),
                f"command: {' '.join(meta.argv)}",
            )
        ),
        Heading("Hardware and software"),
        Bullets(
            (
                f"CPU: {hw.cpu_model}, {_text(hw.logical_cores)} logical cores",
                f"memory: {hw.memory_total_bytes / 2**30:.1f} GiB",
                f"OS: {hw.os}",
                f"Python: {meta.software.python}",
                f"harness packages: {_text(meta.software.packages)}",
                *(f"{name} environment: {_text(v)}" for name, v in meta.environments.items()),
            )
        ),
        Heading("Sweep"),
        Bullets(
            tuple(f"{k}: {_text(v)}" for k, v in meta.sweep.model_dump(mode="json").items())
            or (NA,)
        ),
        Heading("Models"),
        Bullets(tuple(_model_line(name, a) for name, a in meta.artifacts.items()) or (NA,)),
        Heading("Servers"),
    ]
    if not meta.servers:
        blocks.append(Paragraph(NA))
    for name, server in meta.servers.items():
        blocks.append(
            Bullets(
                (
                    f"{name}: backend {server.backend}, configuration {server.server_config}, "
                    f"cores {_text(server.cpus)}, start-up {_text(server.startup_s)} s",
                    f"command: {_text(server.argv)}",
                    f"overrides: {_text(server.overrides)}",
                )
                + ((f"failed to start: {server.failure}",) if server.failure else ())
            )
        )
    parity = meta.parity
    blocks += [
        Heading("Parity"),
        Paragraph(
            NA
            if parity is None
            else f"{parity.status}: {sum(c.passed for c in parity.checks)} of "
            f"{len(parity.checks)} checks passed"
        ),
        Heading("Pinning"),
        Bullets(tuple(f"{k}: {_text(v)}" for k, v in meta.pinning.model_dump().items())),
        Heading("Notes"),
        Bullets(tuple(meta.notes)) if meta.notes else Paragraph(NA),
    ]
    return blocks


def _seconds(value: Any) -> str:
    return NA if value is None or not math.isfinite(value) else f"{value / 1000:.6f}"


def _interval(row: pd.Series, column: str, digits: int) -> str:
    """`centre (lo to hi)` of one aggregated figure."""
    value, lo, hi = row[column], row.get(f"{column}_lo"), row.get(f"{column}_hi")
    if value is None or not math.isfinite(value):
        return NA
    if lo is None or not math.isfinite(lo):
        return f"{value:.{digits}f}"
    return f"{value:.{digits}f} ({lo:.{digits}f} to {hi:.{digits}f})"


def _series_blocks(data: RunData) -> Iterable[Block]:
    """Per series, the seed lab's table (latency in seconds), plus req/s with its interval."""
    yield Heading("Results per series (latency in seconds)")
    yield Paragraph(
        "Geometric means over the repeats of each point, recomputed from requests.npz; req/s "
        "with its "
        "95 % interval across repeats. Latencies are of successful requests meant to start in "
        f"the measured interval. {FLAG_MARK} marks a point one of whose repeats was flagged "
        "(see Flags below)."
    )
    agg = data.aggregate
    for line in data.lines:
        part = agg[agg["line"] == line]
        level_name = "rate" if (part["load"] == "open").any() else "N"
        frame = pd.DataFrame(
            {
                level_name: part["level"].to_numpy(),
                "repeats": part["repeats"].to_numpy(),
                "avg": part["avg_ms"].to_numpy(),
                "q50": part["p50_ms"].to_numpy(),
                "q99": part["p99_ms"].to_numpy(),
                "q99.9": part["p999_ms"].to_numpy(),
                "req/s": [_interval(r, "rps", 0) for _, r in part.iterrows()],
                "error %": (part["error_rate"] * 100).to_numpy(),
                "flags": part["flags"].to_numpy(),
            }
        )
        latency = dict.fromkeys(("avg", "q50", "q99", "q99.9"), _seconds)
        yield Heading(line, level=3)
        yield frame_table(
            frame,
            formats={
                **latency,
                level_name: lambda v: f"{v:g}",
                "error %": lambda v: fmt(v, 2),
                "flags": lambda v: str(v) or "-",
            },
            marked_rows=list(part["flagged"]),
        )


def _capacity_blocks(tables: ReportTables) -> Iterable[Block]:
    yield Heading(f"Capacity: most req/s with p99 ≤ {tables.bound_ms:g} ms")
    yield Paragraph(
        "A load level counts when none of its repeats failed or erred and its p99 interval lies "
        "within the bound (its value, with one repeat). req/s is the geometric mean with its 95 % "
        f"interval across repeats. {FLAG_MARK} marks a level with another flag (see Flags)."
    )
    frame = tables.capacity.assign(
        req_s=[
            _interval(
                pd.Series({"rps": r.max_rps, "rps_lo": r.rps_lo, "rps_hi": r.rps_hi}), "rps", 0
            )
            for r in tables.capacity.itertuples()
        ]
    )[["line", "req_s", "p99_ms", "result"]]
    # a level counts despite other flags (e.g. client-bound): its row is marked like any other
    marked = [bool(flags) for flags in tables.capacity["flags"]]
    yield frame_table(frame, {"p99_ms": lambda v: fmt(v, 2)}, marked_rows=marked)


def _ratio_frame(table: pd.DataFrame) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "line": table["line"],
            "against": table["baseline"],
            "level": table["level"].map(lambda v: f"{v:g}"),
            "ratio (95 % interval)": [
                NA if not math.isfinite(r) else
                (f"{r:.2f}x ({lo:.2f} to {hi:.2f})" if math.isfinite(lo) else f"{r:.2f}x")
                for r, lo, hi in zip(table["ratio"], table["low"], table["high"], strict=True)
            ],
            "verdict": table["verdict"],
        }
    )  # fmt: skip


def _pairing(data: RunData) -> str:
    """How the ratios were paired, which is what makes their intervals narrow or wide."""
    if any(point.method == "interleaved" for point in data.results.values()):
        return (
            "block by block (each block ran one short slice of every series, in random order, "
            "seconds apart, so drift slower than a block cancels)"
        )
    return (
        "repeat by repeat (repeat k of every series ran in the same pass, minutes apart, so "
        "only drift slower than a pass cancels)"
    )


def _comparison_blocks(data: RunData, tables: ReportTables) -> Iterable[Block]:
    """Series side by side by level (geometric means), and each divided by the baseline."""
    yield Heading("Comparison across series")
    yield Paragraph(
        f"Geometric means over repeats; {FLAG_MARK} marks a value from a flagged point."
    )
    yield Heading("req/s by load level", level=3)
    yield frame_table(
        tables.rps,
        dict.fromkeys(map(str, tables.rps.columns), lambda v: fmt(v, 1)),
        marked_cells=tables.flagged,
        index_name="level",
    )
    yield Heading("p99 latency (ms) by load level", level=3)
    yield frame_table(tables.p99, marked_cells=tables.flagged, index_name="level")
    if tables.baseline and tables.rps_ratio is not None and tables.p99_ratio is not None:
        yield Heading(f"Against {tables.baseline}", level=3)
        yield Paragraph(
            f"Each series divided by {tables.baseline} at the same level, {_pairing(data)}. A "
            "difference is called better or worse only when its 95 % interval excludes 1 and "
            f"it is at least {tables.min_effect:.0%}; otherwise: no significant difference."
        )
        yield Paragraph("req/s ratio (above 1: more throughput)")
        yield frame_table(_ratio_frame(tables.rps_ratio))
        yield Paragraph("p99 ratio (below 1: lower latency)")
        yield frame_table(_ratio_frame(tables.p99_ratio))


FLAG_MEANINGS = {
    "failed": "the point could not run (see its failure reason)",
    "errors": "some measured requests failed",
    "incomplete": "requests were still in flight when the stop's grace period ended (a hang)",
    "unstable": "the windows did not settle within the cap",
    "client-bound": "the load generator, not the server, was the limit",
    "generator-late": "open loop: requests went out late",
    "dropped": "open loop: arrivals found no free slot and were not sent",
    "contended": (
        "other processes, or the run's idle servers, used a share of the server's or the "
        "generator's cores"
    ),
    "clock-unbounded": "a worker's clock offset could not be bounded",
    "worker-lost": "a worker's records did not all arrive",
}


def _flags_blocks(data: RunData) -> Iterable[Block]:
    """Every flag raised, what it means, on how many points, and one reason as an example."""
    yield Heading("Flags")
    examples: dict[str, tuple[int, str]] = {}
    for point in data.results.values():
        for flag in point.flags:
            count, reason = examples.get(flag, (0, point.flag_reasons.get(flag, "")))
            examples[flag] = (count + 1, reason)
    if not examples:
        yield Paragraph("No point was flagged.")
        return
    yield Bullets(
        tuple(
            f"{flag} ({count} point{'s' if count > 1 else ''}): {FLAG_MEANINGS.get(flag, '')}; "
            f"e.g. {reason}"
            for flag, (count, reason) in examples.items()
        )
    )


def _open_blocks(data: RunData) -> Iterable[Block]:
    slo = openloop.slo_of(data)
    if not openloop.has_open(data) or slo is None:
        return
    table = openloop.capacity_table(data, slo)
    yield Heading(f"Capacity under the SLO ({slo.text}), open loop")
    needed = slo.requests_needed()
    bounded = (
        f"each holds the {needed:,} requests that bound its tightest percentile at 99 % "
        "confidence, "
        if needed
        else ""
    )
    yield Paragraph(
        "Arrivals on a schedule (latency from each request's intended start, so a stalled "
        "server shows in full). A rate meets the SLO when none of its repeats failed to run, "
        f"{bounded}and the medians over its repeats meet it, a request that failed, "
        "timed out or was dropped counting as infinitely late; the capacity is the highest rate "
        "that met it, up to the lowest that did not. "
        f"{FLAG_MARK} marks a capacity whose points were flagged (see Flags)."
    )
    yield frame_table(
        table[
            [
                "line",
                "result",
                "achieved_rps",
                "p99_ms",
                "goodput",
                "closed_peak_rps",
                "of_peak",
                "probes",
                "search",
            ]
        ],
        {
            "achieved_rps": lambda v: fmt(v, 0),
            "p99_ms": lambda v: fmt(v, 2),
            "goodput": lambda v: fmt(v, 0),
            "closed_peak_rps": lambda v: fmt(v, 0),
            "of_peak": lambda v: fmt(v, 2),
        },
        marked_rows=[bool(flags) for flags in table["flags"]],
    )


def _breakdown_blocks(data: RunData) -> Iterable[Block]:
    table = breakdown.breakdown_table(data)
    if not breakdown.has_breakdown(table):
        return
    yield Heading("Where the time goes (closed loop, mean ms)")
    yield Paragraph(
        "client = server + outside (network, client, queue in front of the server); server = "
        "model + queue + framework. Server, model and queue are the server's own metrics, "
        "differenced over the measured interval; model falls back to the in-process cost "
        "(model_source) where a backend counts no model stage. header = the mean of our "
        "service's Server-Timing `app` as the client recorded it. not_attributed = client minus "
        "model and queue, where the server reports no request duration (so its framework and "
        "outside cannot be told apart)."
    )
    yield frame_table(table, {c: (lambda v: fmt(v, 3)) for c in table.columns if c.endswith("_ms")})
    if breakdown.varies_cost(data):
        decision = breakdown.decision_table(data)
        yield Heading("When the choice of server matters")
        yield Paragraph(
            "At the lowest load: overhead = client latency minus the model's own in-process "
            "cost. A small model is mostly overhead, so the server decides the latency; as the "
            "model's cost grows, the share falls, and under 10 % the server hardly matters. "
            "vs_ours: latency relative to our fastest series for the same model and rows."
        )
        yield Bullets(tuple(breakdown.crossovers(data)))
        yield frame_table(
            decision,
            {
                "model_cost_ms": lambda v: fmt(v, 3),
                "client_ms": lambda v: fmt(v, 3),
                "overhead_ms": lambda v: fmt(v, 3),
                "overhead_share": lambda v: fmt(100 * v, 1),
                "vs_ours": lambda v: fmt(v, 2),
            },
        )


def build_document(
    data: RunData, tables: ReportTables, plots: Sequence[tuple[Path, FigureSpec]]
) -> list[Block]:
    """The whole report: the verdict, capacity, plots, comparisons, the breakdown, per-series
    tables, flags, then metadata."""
    blocks: list[Block] = [Heading(f"servingbench report: {data.meta.run_id}", level=1)]
    blocks += [Heading("Verdict"), Bullets(tuple(verdict_sentences(data, tables)))]
    blocks += _open_blocks(data)
    if openloop.closed_capacity_applies(data):
        blocks += _capacity_blocks(tables)
    blocks.append(Heading("Plots"))
    blocks += [Image(path.name, spec.caption, spec) for path, spec in plots]
    if not data.closed.empty:
        blocks += _comparison_blocks(data, tables)
    blocks += _breakdown_blocks(data)
    blocks += _series_blocks(data)
    blocks += _flags_blocks(data)
    blocks += metadata_blocks(data.meta)
    return blocks
