"""A run's own gates, for CI without a baseline run: `--fail-if` and `--fail-on-flags`.

`--fail-if` is an objective in `--slo`'s words and with its meaning (`runs.slo`): each series
at each level is judged by `Slo.judge` on its samples (the repeats of a point, or the blocks of
an interleaved one: the samples the report's intervals are across), a request that failed or was
never answered counting as infinitely late. `--fail-on-flags` fails on any point that raised
one of the named flags. The run's settings (meta.json) say which gates it has, so
`servingbench report` judges the same gates again.
"""

from __future__ import annotations

from collections.abc import Sequence

from servingbench.report.load import RunData
from servingbench.runs.records import RequestRecords
from servingbench.runs.slo import Slo, parse_slo
from servingbench.runs.summary import GateFailure, GateOutcome

__all__ = ["judge_gates"]


def _samples(data: RunData, point_ids: Sequence[str]) -> list[RequestRecords | None]:
    """What `Slo.judge` takes as repeats: each point's records, or an interleaved point's
    slices; None for a point that could not run."""
    out: list[RequestRecords | None] = []
    for point_id in point_ids:
        point = data.results[point_id]
        if point.summary is None:
            out.append(None)
            continue
        records = data.records(point_id)
        if point.method == "interleaved" and records.slices is not None:
            out += [records.slice(i) for i in range(len(records.slices))]
        else:
            out.append(records)
    return out


def _objective_failures(data: RunData, slo: Slo) -> list[GateFailure]:
    failures = []
    for _, row in data.aggregate.iterrows():
        point_ids = row["point_ids"].split(",")
        met, why = slo.judge(_samples(data, point_ids))
        if not met:
            failures.append(
                GateFailure(
                    gate=f"--fail-if {slo.text}",
                    line=row["line"],
                    load=row["load"],
                    level=float(row["level"]),
                    why=why,
                )
            )
    return failures


def _flag_failures(data: RunData, flags: Sequence[str]) -> list[GateFailure]:
    failures = []
    rows = data.points.drop_duplicates("point_id").set_index("point_id")
    for point_id, point in data.results.items():
        for flag in (f for f in point.flags if f in flags):
            row = rows.loc[point_id]
            failures.append(
                GateFailure(
                    gate=f"--fail-on-flags {flag}",
                    line=str(row["line"]),
                    load=point.key.load,
                    level=float(point.key.level),
                    why=point.flag_reasons.get(flag, flag),
                    point_id=point_id,
                )
            )
    return failures


def judge_gates(data: RunData) -> GateOutcome:
    """The gates recorded in the run's settings, judged on its points (see the module doc)."""
    fail_if = data.meta.sweep.fail_if
    flags = data.meta.sweep.fail_on_flags
    failures = []
    if fail_if and not data.aggregate.empty:
        failures += _objective_failures(data, parse_slo(fail_if))
    if flags:
        failures += _flag_failures(data, flags)
    return GateOutcome(fail_if=fail_if, fail_on_flags=flags, passed=not failures, failures=failures)
