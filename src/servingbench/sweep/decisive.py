"""When an interleaved session has measured enough: its headline ratios are decisive.

A comparison's headline (as the report's verdict states it) is, at each user count, the req/s
of the fastest series against that of the best series of every other backend; with a single
backend, against every other series (an A/A run, or configurations of one server). Each ratio
has a 95 % interval from the blocks, paired block by block (`report.intervals.paired_ratio`).

How many blocks that takes depends on the servers: on this machine one slice's req/s varies by
3 to 11 % between blocks, server by server, and that variation is mostly the server's own (a
pair's variation is close to the sum of both), so a ratio narrows only with more blocks. Rather
than one fixed count that is too few for noisy servers and wasted on steady ones, a session
without `--blocks` runs at least `MIN_BLOCKS`, then judges after each block whether every
headline interval lies within `--ratio-precision`, and stops there, or when the run's time
budget leaves no room for another block.

The judgement runs mid-session on the requests each slice started (whole slices, settle
included): close to the figures the points get afterwards, which the report states as they are.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from servingbench.loadgen.schedule import read_counts, write_cut
from servingbench.report.intervals import Ratio, headline_pairs, paired_ratio

__all__ = [
    "MIN_BLOCKS",
    "Headline",
    "OwnSlice",
    "SessionJudge",
    "blocks_within",
    "headline_ratios",
    "widest",
]

MIN_BLOCKS = 10
"""Blocks a session without --blocks always measures: enough for a t-interval (t = 2.26) and
for the report's per-block figures, whatever the judgement says earlier."""


@dataclass(frozen=True)
class Headline:
    """One headline ratio: `best` (the fastest series at `users`) against `other`."""

    users: int
    best: str
    other: str
    ratio: Ratio

    @property
    def half_width(self) -> float:
        return self.ratio.half_width

    def text(self) -> str:
        return (
            f"±{self.half_width * 100:.1f} % ({self.best} against {self.other} at "
            f"{self.users} user{'s' if self.users != 1 else ''})"
        )


def headline_ratios(
    rates: Mapping[tuple[str, int], Sequence[float]], backend_of: Mapping[str, str]
) -> list[Headline]:
    """The headline ratios (`report.intervals.headline_pairs`) at each user count, from
    `rates[(series, users)]`: req/s per block in block order, NaN for a block without one."""
    out = []
    for users in sorted({users for _, users in rates}):
        centre = {s: _log_mean(values) for (s, at), values in rates.items() if at == users}
        for best, other in headline_pairs(centre, backend_of):
            ratio = paired_ratio(rates[(best, users)], rates[(other, users)])
            out.append(Headline(users, best, other, ratio))
    return out


def widest(headlines: Sequence[Headline]) -> Headline | None:
    """The headline ratio with the widest interval (None without any)."""
    return max(headlines, key=lambda h: h.half_width, default=None)


def blocks_within(seconds: float, block_s: float, minimum: int = MIN_BLOCKS) -> int:
    """How many blocks of `block_s` fit in `seconds`, and never fewer than `minimum`."""
    if block_s <= 0:
        return minimum
    return max(minimum, math.floor(seconds / block_s))


def _log_mean(values: Sequence[float]) -> float:
    arr = np.asarray([v for v in values if math.isfinite(v) and v > 0], dtype=float)
    return float(np.log(arr).mean()) if arr.size else math.nan


CUT_MARGIN_NS = 30_000_000
"""A cut is written at least this long before the slice it cuts at (each process reads it as
that slice is due), or not at all: then the next block runs and the judgement is made again."""
POLL_S = 0.005


@dataclass(frozen=True)
class OwnSlice:
    """One slice of one Locust process, in its schedule's order: whose, at what level, which
    block (0 is the warm-up)."""

    series: str
    users: int
    block: int


class SessionJudge:
    """Judges after each block whether the session is decisive and, once it is, cuts every
    process's schedule at the next block (see the module docstring).

    `schedules` maps each live process's schedule file to its slices; `slice_s` turns a slice's
    started requests into req/s. After each call, `state()` says where the session stands.
    """

    def __init__(
        self,
        schedules: Mapping[Path, Sequence[OwnSlice]],
        backend_of: Mapping[str, str],
        slice_s: float,
        precision: float,
        min_blocks: int = MIN_BLOCKS,
    ) -> None:
        self.schedules, self.backend_of = schedules, backend_of
        self.slice_s, self.precision = slice_s, precision
        self.min_blocks = min_blocks
        self.stopped_after: int | None = None
        self.latest: Headline | None = None
        """The widest headline ratio at the last judgement."""
        self.judged_on = 0
        """The blocks the last judgement read."""

    def state(self) -> str:
        """`widest headline ±4.1 % (a against b at 10 users)`, or a decision (for progress)."""
        if self.latest is None:
            return ""
        text = f"widest headline req/s interval {self.latest.text()}"
        if self.stopped_after is None:
            return f"{text}, aiming at ±{self.precision * 100:g} %"
        return (
            f"decisive after {self.stopped_after} blocks: every headline req/s ratio within "
            f"±{self.precision * 100:g} % (judged on {self.judged_on} blocks; {text})"
        )

    def __call__(self, block: int, next_start_ns: int) -> int | None:
        """After `block`, with the next block due at `next_start_ns`: the cut (that time), or
        None to go on. Before `min_blocks` it only keeps `state()` current."""
        if block < 2:
            return None
        complete = self._complete_blocks(block, next_start_ns - 2 * CUT_MARGIN_NS)
        if complete < 2:
            return None
        top = widest(headline_ratios(self._rates(complete), self.backend_of))
        self.latest, self.judged_on = top, complete
        if complete < self.min_blocks or top is None or top.half_width > self.precision:
            return None
        if time.perf_counter_ns() > next_start_ns - CUT_MARGIN_NS:
            return None  # too late to cut before the next block: judged again after it
        for path in self.schedules:
            write_cut(path, next_start_ns)
        self.stopped_after = block
        return next_start_ns

    def _complete_blocks(self, block: int, deadline_ns: int) -> int:
        """The last block whose every slice has its counts by `deadline_ns` (`block`, or one
        before it when a slow answer holds up the last slice's)."""
        while True:
            have = {path: len(read_counts(path)) for path in self.schedules}
            if all(self._through(path, block) <= n for path, n in have.items()):
                return block
            if time.perf_counter_ns() + POLL_S * 1e9 > deadline_ns:
                break
            time.sleep(POLL_S)
        if all(self._through(path, block - 1) <= n for path, n in have.items()):
            return block - 1
        return 0

    def _through(self, path: Path, block: int) -> int:
        """How many of the process's slices belong to blocks up to `block`."""
        return sum(1 for s in self.schedules[path] if s.block <= block)

    def _rates(self, blocks: int) -> dict[tuple[str, int], list[float]]:
        rates: dict[tuple[str, int], list[float]] = {}
        for path, own in self.schedules.items():
            counts = read_counts(path)
            for one, count in zip(own, counts, strict=False):
                if 1 <= one.block <= blocks:
                    row = rates.setdefault((one.series, one.users), [math.nan] * blocks)
                    row[one.block - 1] = count / self.slice_s
        return rates
