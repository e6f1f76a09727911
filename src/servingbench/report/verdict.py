"""The report's opening: what the run found, in plain words, each number with its interval.

Sentences are built from the same tables as the rest of the report, one short function per
finding, each printing only what its run measured:
- throughput: the fastest series at the highest load every series reached, and the paired
  ratio to the best series of every other backend;
- one user: each series' median latency, and what the instrument itself adds there (measured
  beside the harness with wrk on the real servers, or calibrated on no-op servers, or unknown,
  and how to learn it);
- cost: the server's CPU per request, a figure the machine's drift barely moves;
- capacity (closed loop, and open loop under an SLO), the tails that too few requests bound,
  the decision chart's crossovers (only when the run varied the model's cost), deployed
  targets, and how many points were measured and flagged.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable

import pandas as pd

from servingbench.report import breakdown, openloop
from servingbench.report.intervals import Estimate, Ratio, headline_pairs, verdict
from servingbench.report.load import RunData
from servingbench.report.tables import ReportTables, paired, series_title
from servingbench.runs.stats import samples_to_bound
from servingbench.runs.summary import level_text

__all__ = ["verdict_sentences"]


def _estimate(row: pd.Series, column: str) -> Estimate:
    return Estimate(row[column], row[f"{column}_lo"], row[f"{column}_hi"], int(row["repeats"]))


def _headline_work(agg: pd.DataFrame) -> tuple[pd.DataFrame, str]:
    """The points of one model and rows per request (the fewest rows, the first model), and
    how to name them when the run has several: the verdict compares like with like, and the
    breakdown and decision chart cover the others."""
    combos = agg[["model", "rows_per_request"]].drop_duplicates()
    if len(combos) <= 1:
        return agg, ""
    rows = int(combos["rows_per_request"].min())
    model = str(combos[combos["rows_per_request"] == rows]["model"].iloc[0])
    chosen = agg[(agg["model"] == model) & (agg["rows_per_request"] == rows)]
    return chosen, f" ({model}, {rows} row{'s' if rows != 1 else ''} per request)"


def _users(level: float) -> str:
    return level_text("closed", level)


def _levels(levels: list[float], load: str) -> str:
    """Load levels in words: `1, 10 and 50 users`, `1 user`, or `54 and 59 req/s` (open loop)."""
    shown = [f"{level:g}" for level in levels]
    listed = shown[0] if len(shown) == 1 else ", ".join(shown[:-1]) + " and " + shown[-1]
    if load == "open":
        return f"{listed} req/s"
    return f"{listed} user{'' if shown == ['1'] else 's'}"


def _common_top_level(agg: pd.DataFrame) -> float | None:
    closed = agg[(agg["load"] == "closed") & (agg["repeats"] > 0)]
    if closed.empty:
        return None
    levels = [set(g["level"]) for _, g in closed.groupby("line")]
    common = set.intersection(*levels)
    return max(common) if common else None


def _samples(data: RunData) -> str:
    """What the intervals are across: repeats, or an interleaved session's blocks."""
    methods = set(data.points["method"]) if "method" in data.points else {"points"}
    return "blocks" if methods == {"interleaved"} else "repeats"


def _ratio_text(r: Ratio) -> str:
    if r.has_interval:
        return f"{r.ratio:.2f}x ({r.low:.2f} to {r.high:.2f}x)"
    if math.isfinite(r.ratio):
        return f"{r.ratio:.2f}x (one sample: no interval)"
    return "n/a"


def _throughput(data: RunData, tables: ReportTables) -> list[str]:
    agg, work = _headline_work(data.closed)
    level = _common_top_level(agg)
    if level is None:
        return []
    at = agg[(agg["level"] == level) & (agg["load"] == "closed") & (agg["repeats"] > 0)]
    best = at.sort_values("rps", ascending=False).iloc[0]
    fastest = series_title(data, best["line"], False)
    out = [
        f"At {_users(level)}{work} the most req/s came from {fastest}: "
        f"{_estimate(best, 'rps').text(0)} req/s, p99 {_estimate(best, 'p99_ms').text(2)} ms."
    ]
    for backend, group in at.groupby("backend", sort=False):
        if backend == best["backend"]:
            continue
        other = group.sort_values("rps", ascending=False).iloc[0]
        rps = paired(data, best["line"], other["line"], level, "rps")
        p99 = paired(data, best["line"], other["line"], level, "p99_ms")
        them = series_title(data, other["line"], False)
        call = verdict(rps, True, tables.min_effect)
        if call in ("better", "worse"):
            out.append(
                f"It served {_ratio_text(rps)} the req/s of {them} (the best of its backend), "
                f"with {_ratio_text(p99)} its p99."
            )
        elif call == "no significant difference":
            out.append(f"Against {them}: no significant difference in req/s ({_ratio_text(rps)}).")
        else:
            out.append(f"Against {them}: {_ratio_text(rps)} the req/s.")
    return out


def _uncompared(data: RunData, missing: pd.DataFrame) -> str:
    """The series wrk cannot time (gRPC): calibration's figure for them, or how to get one."""
    names = ", ".join(series_title(data, line, False) for line in missing["line"])
    added = missing["instrument_added_ms"].dropna() if "instrument_added_ms" in missing else None
    if added is None or added.empty:
        return (
            f"wrk speaks no gRPC, and this run found no calibration, so what the harness adds "
            f"to {names} was not measured: run `make calibrate` once on this machine."
        )
    low, high = added.min(), added.max()
    spread = f"{low:.3f}" if round(low, 3) == round(high, 3) else f"{low:.3f} to {high:.3f}"
    return (
        f"wrk speaks no gRPC, so for {names} the harness's share is calibration's figure "
        f"against no-op servers only: about {spread} ms."
    )


def _instrument(data: RunData, at: pd.DataFrame) -> str:
    """What the harness itself adds at one user, from the best evidence the run has."""
    wrk = at[at["instrument_pairs"] > 0] if "instrument_pairs" in at else at.iloc[0:0]
    if not wrk.empty:
        parts = [
            f"{series_title(data, r['line'], False)} "
            f"{Estimate(r['instrument_p50_ms'], r['instrument_p50_ms_lo'], r['instrument_p50_ms_hi'], int(r['instrument_pairs'])).text(3, ' ms')}"  # noqa: E501
            for _, r in wrk.iterrows()
        ]
        text = (
            "Measured on the same servers in the same blocks, the harness's median latency "
            "minus wrk's (one connection) was: " + "; ".join(parts) + "."
        )
        missing = at[~at["line"].isin(wrk["line"])]
        if not missing.empty:
            text += " " + _uncompared(data, missing)
        return text
    added = at["instrument_added_ms"].dropna()
    if not added.empty:
        low, high = added.min(), added.max()
        spread = f"{low:.3f}" if round(low, 3) == round(high, 3) else f"{low:.3f} to {high:.3f}"
        return (
            f"The harness itself adds about {spread} ms at that load, calibrated against no-op "
            "servers only (`make calibrate`); with wrk installed the run would measure it on "
            "the real servers."
        )
    return (
        "What the harness itself adds to these figures was not measured: install wrk (apt "
        "install wrk) to measure it beside each REST series, or run `make calibrate`."
    )


def _one_user(data: RunData) -> list[str]:
    agg, work = _headline_work(data.closed)
    at = agg[(agg["level"] == 1) & (agg["load"] == "closed") & (agg["repeats"] > 0)]
    if at.empty:
        return []
    ordered = at.sort_values("p50_ms")
    parts = [
        f"{series_title(data, r['line'], False)} {_estimate(r, 'p50_ms').text(3)} ms"
        for _, r in ordered.iterrows()
    ]
    text = f"At 1 user{work} the median latency was: " + "; ".join(parts) + "."
    return [text, _instrument(data, ordered)]


def _cost(data: RunData) -> list[str]:
    """Server CPU per request at the highest common load: the cost the drift barely moves."""
    agg, work = _headline_work(data.closed)
    level = _common_top_level(agg)
    if level is None:
        return []
    at = agg[(agg["level"] == level) & agg["server_us_per_request"].notna()]
    if at.empty:
        return []
    parts = [
        f"{series_title(data, r['line'], False)} {_estimate(r, 'server_us_per_request').text(0)}"
        for _, r in at.sort_values("server_us_per_request").iterrows()
    ]
    return [
        f"Server CPU per request at {_users(level)}{work}, in µs of its process tree: "
        + "; ".join(parts)
        + "."
    ]


def _capacity(tables: ReportTables, data: RunData) -> list[str]:
    if tables.capacity.empty:
        return []
    parts = []
    for _, row in tables.capacity.iterrows():
        title = series_title(data, row["line"])
        if math.isfinite(row["max_rps"]):
            est = Estimate(row["max_rps"], row["rps_lo"], row["rps_hi"], 2)
            parts.append(f"{title} {est.text(0)} ({row['result'].split(' at ')[-1]})")
        else:
            parts.append(f"{title}: {row['result']}")
    return [f"Most req/s with p99 ≤ {tables.bound_ms:g} ms: " + "; ".join(parts) + "."]


def _tails(data: RunData) -> list[str]:
    """Which p99 and p99.9 figures rest on too few requests to be bounded."""
    agg = data.aggregate
    if agg.empty or "p99_bounded" not in agg:
        return []
    out = []
    for name, label, q in (("p99", "p99", 0.99), ("p999", "p99.9", 0.999)):
        thin = agg[(agg["repeats"] > 0) & ~agg[f"{name}_bounded"].astype(bool)]
        if thin.empty:
            continue
        where = "; ".join(
            f"{series_title(data, str(line))} at {_levels(list(part['level']), str(load))}"
            for (line, load), part in thin.groupby(["line", "load"], sort=False)
        )
        out.append(
            f"The {label} of {where} rests on too few requests to bound it (a point needs "
            f"{samples_to_bound(q):,} successful requests to bound its {label} at 99 % "
            "confidence): read it as an estimate, not a guarantee."
        )
    return out


def _settled(data: RunData) -> list[str]:
    points = data.points.drop_duplicates("point_id")
    if points.empty:
        return []
    measured = points[points["has_records"]]
    counts = Counter(f for text in points["flags"] for f in text.split(",") if f)
    flagged = int(points["flagged"].sum())
    interleaved = measured[measured["method"] == "interleaved"]
    parts = []
    if not interleaved.empty:
        blocks = int(data.points[data.points["method"] == "interleaved"]["repeat"].max())
        parts.append(f"{len(interleaved)} measured in {blocks} interleaved blocks")
        parts[-1] += _stopped(data, interleaved["point_id"], blocks)
    by_points = measured[measured["method"] != "interleaved"]
    if not by_points.empty:
        converged = int((by_points["converged"] == True).sum())  # noqa: E712 (nullable column)
        parts.append(f"{len(by_points)} measured until stable, {converged} settled before the cap")
    failed = len(points) - len(measured)
    text = f"{len(points)} points: " + "; ".join(parts)
    if failed:
        text += f"; {failed} could not run"
    text += f"; {flagged} flagged"
    if counts:
        text += " (" + ", ".join(f"{f} {n}" for f, n in counts.most_common()) + ")"
    return [text + "."]


def _stopped(data: RunData, point_ids: Iterable[str], blocks: int) -> str:
    """Why the session measured `blocks` blocks, when it chose (`sweep.decisive`): it was
    decisive, or its time budget ran out; with the widest headline interval as measured."""
    plans = [data.results[p].interleave for p in point_ids if p in data.results]
    plan = next((p for p in plans if p is not None), None)
    if plan is None or plan.max_blocks is None or plan.ratio_precision is None:
        return ""
    aim = f"±{plan.ratio_precision * 100:g} %"
    widest = _widest_headline(data)
    if widest is None:
        return f" (up to {plan.max_blocks} fitted the time budget; nothing to compare)"
    half, line, other, level = widest
    worst = (
        f"±{half * 100:.1f} %, {series_title(data, line, False)} against "
        f"{series_title(data, other, False)} at {_users(level)}"
    )
    if blocks < plan.max_blocks:
        return (
            f", stopped once every headline req/s ratio was within {aim} (of the {plan.max_blocks}"
            f" the time budget allowed; the widest interval {worst})"
        )
    verdict = "within" if half <= plan.ratio_precision else "wider than"
    return (
        f", all the time budget allowed (`--budget`); the widest headline req/s interval is "
        f"{worst}: {verdict} the {aim} aimed for"
    )


def _widest_headline(data: RunData) -> tuple[float, str, str, float] | None:
    """The headline req/s ratio with the widest interval over the closed-loop levels, as
    (half-width, fastest line, other line, level)."""
    agg, _ = _headline_work(data.closed)
    found = []
    for level in sorted(set(agg["level"])) if not agg.empty else []:
        at = agg[(agg["level"] == level) & (agg["repeats"] > 0)]
        speed = dict(zip(at["line"], at["rps"], strict=True))
        backend_of = dict(zip(at["line"], at["backend"], strict=True))
        for line, other in headline_pairs(speed, backend_of):
            half = paired(data, line, other, level, "rps").half_width
            found.append((half, line, other, float(level)))
    return max(found, default=None)


def _open_capacity(data: RunData) -> list[str]:
    slo = openloop.slo_of(data)
    if slo is None or not openloop.has_open(data):
        return []
    table = openloop.capacity_table(data, slo)
    parts = [
        f"{series_title(data, str(r.line))}: {r.result}{' (flagged)' if r.flags else ''}"
        for r in table.itertuples()
    ]
    return [f"Highest arrival rate meeting {slo.text} (open loop): " + "; ".join(parts) + "."]


def _targets(data: RunData) -> list[str]:
    if not data.meta.targets:
        return []
    return [
        "These servers were deployed targets, not started by the run: their CPU and memory "
        "were not measured, and what else ran beside them is unknown."
    ]


def verdict_sentences(data: RunData, tables: ReportTables) -> list[str]:
    """The opening paragraph of report.md/.html, sentence by sentence."""
    closed = not data.closed.empty
    return [
        *_open_capacity(data),
        *(_throughput(data, tables) if closed else []),
        *(_one_user(data) if closed else []),
        *(_cost(data) if closed else []),
        *(_capacity(tables, data) if openloop.closed_capacity_applies(data) else []),
        *_tails(data),
        *breakdown.crossovers(data),
        *_targets(data),
        *_settled(data),
    ]
