"""Per-request views of one point for the notebook: histogram, CDF, latency over time, errors.

They answer the questions a summary cannot: is the tail a few stragglers or a second mode,
did latency drift during the point, did the warm-up really end before measuring started, and
which errors happened.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from servingbench.report.plots import measured_latency_ms
from servingbench.report.png import new_figure
from servingbench.runs.records import RequestRecords
from servingbench.runs.stats import outcome_counts

SIZE = (9.0, 4.0)

TOP_REASON = "top reason"

__all__ = [
    "TOP_REASON",
    "errors_by_outcome",
    "latency_cdf_single_figure",
    "latency_histogram_figure",
    "latency_timeline_figure",
]


def latency_histogram_figure(records: RequestRecords, title: str, bins: int = 100) -> Figure:
    """Histogram of successful post-warm-up latencies, with p50 and p99 drawn in."""
    latency = measured_latency_ms(records)
    fig = new_figure(title, SIZE)
    ax = fig.add_subplot()
    if latency.size:
        ax.hist(latency, bins=bins, color="C0")
        for q, style in ((50, "-"), (99, "--")):
            value = float(np.percentile(latency, q))
            ax.axvline(value, color="k", linestyle=style, label=f"p{q} = {value:.3f} ms")
        ax.legend()
    ax.set_xlabel("latency (ms)")
    ax.set_ylabel("requests")
    return fig


def latency_cdf_single_figure(records: RequestRecords, title: str) -> Figure:
    """Empirical CDF of one point's successful post-warm-up latencies (log x axis)."""
    latency = measured_latency_ms(records)
    fig = new_figure(title, SIZE)
    ax = fig.add_subplot()
    if latency.size:
        ax.plot(latency, np.arange(1, latency.size + 1) / latency.size)
        ax.set_xscale("log")
    ax.set_xlabel("latency (ms)")
    ax.set_ylabel("fraction of requests")
    ax.grid(True, which="both", alpha=0.3)
    return fig


def latency_timeline_figure(
    records: RequestRecords, title: str, max_points: int = 20_000
) -> Figure:
    """Every request's latency at its intended start (failures in red), outside the measured
    interval shaded: drift, stalls, and whether the warm-up covered the start-up transient.

    Latency here is from the intended start (in a closed loop, the send), as every table counts
    it; large points are thinned to `max_points` evenly spaced requests.
    """
    fig = new_figure(title, SIZE)
    ax = fig.add_subplot()
    if len(records):
        step = max(1, len(records) // max_points)
        start_s = records.intended_ns[::step] / 1e9
        latency_ms = records.response_ns[::step] / 1e6
        ok = records.ok[::step]
        ax.scatter(start_s[ok], latency_ms[ok], s=2, color="C0", label="ok")
        if (~ok).any():
            ax.scatter(start_s[~ok], latency_ms[~ok], s=6, color="C3", label="not ok")
        ax.axvspan(0, records.from_ns / 1e9, color="grey", alpha=0.25, label="not measured")
        end_s = max(float(start_s.max()), records.to_ns / 1e9)
        ax.axvspan(records.to_ns / 1e9, end_s, color="grey", alpha=0.25)
        ax.set_yscale("log")
        ax.legend(loc="upper right")
    ax.set_xlabel("intended start (s since the point started)")
    ax.set_ylabel("latency (ms)")
    return fig


def errors_by_outcome(records: RequestRecords) -> pd.DataFrame:
    """Measured requests per outcome class (ok included), their share, the commonest reason."""
    counts = outcome_counts(records, include_ok=True)
    total = sum(counts.values())
    measured = records.measured().reasons
    rows = []
    for label, count in counts.items():
        reasons = measured.get(label, {})
        rows.append(
            {
                "outcome": label,
                "requests": count,
                "share_pct": 100 * count / total,
                TOP_REASON: max(reasons, key=lambda r: reasons[r]) if reasons else "",
            }
        )
    return pd.DataFrame(rows, columns=["outcome", "requests", "share_pct", TOP_REASON])
