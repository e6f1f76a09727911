"""Figures on known data: each breakdown bar stacks to its client latency in both renderers, a
server that reports no request duration gets a "not attributed" part, and the interactive
charts carry intervals in their hover text and one legend entry per series."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import numpy as np
import pytest
from matplotlib.patches import Rectangle

from servingbench.report import breakdown, load_run, plots
from servingbench.report.figure import INTERVAL, FigureSpec
from servingbench.report.interactive import plotly_figure
from servingbench.report.load import RunData
from servingbench.report.png import draw
from servingbench.runs.point import PointKey
from tests.synthetic_run import Series, Shape, make_run

IRIS_COST_MS = 0.05
"""The synthetic run's in-process cost of iris (one row): the model part of a server without
a model metric."""

# series -> (client latency, the server's request duration, its model stage), ms
KNOWN: dict[str, tuple[float, float | None, float | None]] = {
    "fastapi-rest": (1.0, 0.8, 0.3),  # everything reported
    "kserve-rest": (2.0, None, 0.7),  # only the model stage, as KServe
    "mlserver-rest": (1.6, 1.5, None),  # no model stage: the in-process cost stands in
    "mlserver-grpc": (1.0, 1.2, None),  # the server's mean above the client's: cut to it
}
SERIES = tuple(Series(label) for label in KNOWN)


def _shape(series: Series, key: PointKey) -> Shape:
    latency, server, model = KNOWN[series.label]
    return Shape(latency_ms=latency, server_ms=server, model_ms=model)


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> RunData:
    base = tmp_path_factory.mktemp("runs")
    return load_run(make_run(base, series=SERIES, levels=(1, 2), repeats=2, shape=_shape))


@pytest.fixture(scope="module")
def spec(data: RunData) -> FigureSpec:
    return breakdown.breakdown_figure(data, 1)


def _parts(spec: FigureSpec) -> dict[str, dict[str, float]]:
    """series -> segment key -> ms (0 for a segment the figure leaves out)."""
    by_name = {name: key for key, (name, _, _) in breakdown.SEGMENTS.items()}
    out: dict[str, dict[str, float]] = {}
    for i, category in enumerate(spec.categories):
        values = dict.fromkeys(breakdown.SEGMENTS, 0.0)
        for segment in spec.segments:
            values[by_name[segment.name]] = segment.values[i]
        out[category.split("\n")[0]] = values
    return out


def test_every_bar_stacks_to_the_client_latency(spec: FigureSpec) -> None:
    (client,) = spec.traces
    totals = [sum(s.values[i] for s in spec.segments) for i in range(len(spec.categories))]
    assert client.y == pytest.approx([latency for latency, _, _ in KNOWN.values()], rel=1e-9)
    assert totals == pytest.approx(client.y, rel=1e-9)


def test_parts_of_each_bar(spec: FigureSpec) -> None:
    parts = _parts(spec)
    assert parts["fastapi-rest"] == pytest.approx(
        {
            "model_metric": 0.3,
            "model_in_process": 0,
            "queue": 0,
            "framework": 0.5,
            "outside": 0.2,
            "not_attributed": 0,
        }
    )
    # KServe: its model stage, and the rest of its client latency not attributed
    assert parts["kserve-rest"] == pytest.approx(
        {
            "model_metric": 0.7,
            "model_in_process": 0,
            "queue": 0,
            "framework": 0,
            "outside": 0,
            "not_attributed": 1.3,
        }
    )
    assert parts["mlserver-rest"] == pytest.approx(
        {
            "model_metric": 0,
            "model_in_process": IRIS_COST_MS,
            "queue": 0,
            "framework": 1.5 - IRIS_COST_MS,
            "outside": 0.1,
            "not_attributed": 0,
        }
    )
    assert parts["mlserver-grpc"] == pytest.approx(
        {
            "model_metric": 0,
            "model_in_process": IRIS_COST_MS,
            "queue": 0,
            "framework": 1.0 - IRIS_COST_MS,
            "outside": 0,
            "not_attributed": 0,
        }
    )


def test_table_keeps_the_uncut_figures(data: RunData) -> None:
    table = breakdown.breakdown_table(data)
    at_one = table[table["level"] == 1].set_index("series")
    unattributed = at_one["not_attributed_ms"].to_dict()
    assert unattributed["kserve-rest"] == pytest.approx(1.3)
    assert np.isnan(unattributed["fastapi-rest"])
    assert at_one["outside_ms"].to_dict()["mlserver-grpc"] == pytest.approx(-0.2)


def test_both_renderers_stack_to_the_client_latency(spec: FigureSpec) -> None:
    expected = [latency for latency, _, _ in KNOWN.values()]
    heights: dict[float, float] = defaultdict(float)
    for patch in draw(spec).axes[0].patches:
        assert isinstance(patch, Rectangle)
        heights[round(patch.get_x() + patch.get_width() / 2, 6)] += patch.get_height()
    assert [heights[x] for x in sorted(heights)] == pytest.approx(expected)
    bars = [t for t in plotly_figure(spec).data if t.type == "bar"]
    assert np.sum([list(b.y) for b in bars], axis=0) == pytest.approx(expected)
    assert {b.name for b in bars} == {s.name for s in spec.segments}


def test_a_run_where_every_server_reports_its_duration_has_no_unattributed_part(
    tmp_path: Path,
) -> None:
    data = load_run(make_run(tmp_path, series=SERIES[:1], levels=(1,), repeats=2, shape=_shape))
    spec = breakdown.breakdown_figure(data, 1)
    names = {s.name for s in spec.segments}
    assert breakdown.SEGMENTS["not_attributed"][0] not in names
    assert breakdown.SEGMENTS["outside"][0] in names


def test_interactive_hover_and_legend(data: RunData) -> None:
    """Each point's hover text has its value and interval; a series' p50 and p99 share one
    legend entry (one click hides both)."""
    spec = plots.level_latency_figure(data)
    fig = plotly_figure(spec)
    lines = [t for t in fig.data if t.legendgroup in data.lines]
    assert len(lines) == 2 * len(data.lines)
    for line in data.lines:
        mine = [t for t in lines if t.legendgroup == line]
        assert [t.showlegend for t in mine] == [True, False]
    trace = spec.traces[0]
    shown = next(t for t in lines if t.legendgroup == trace.group)
    assert list(shown.y) == pytest.approx(trace.y)
    assert f"{INTERVAL} " in shown.text[0]
    assert list(shown.error_y.array) == pytest.approx(np.subtract(trace.y_high, trace.y))
