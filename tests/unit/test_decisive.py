"""When an interleaved session stops: every headline req/s ratio's interval within the precision.

The headline pairs are the report verdict's (the fastest series against each other backend's
best, or every other series of a single backend); the judge reads the counts each Locust
process writes after its slices and cuts every schedule at the next block once decisive.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from time import perf_counter_ns

import numpy as np
import pytest

from servingbench.loadgen.schedule import counts_path, cut_path
from servingbench.sweep.decisive import (
    OwnSlice,
    SessionJudge,
    blocks_within,
    headline_ratios,
    widest,
)


def _rates(centre: float, spread: float, blocks: int, seed: int) -> list[float]:
    rng = np.random.default_rng(seed)
    return list(centre * np.exp(rng.normal(0.0, spread, blocks)))


def test_the_fastest_series_is_compared_with_each_other_backend_s_best() -> None:
    rates = {
        ("ours-rest", 10): _rates(1500, 0.02, 12, 1),
        ("ours-v2", 10): _rates(1300, 0.02, 12, 2),  # same backend: not a headline
        ("mlserver-rest", 10): _rates(600, 0.02, 12, 3),
        ("mlserver-grpc", 10): _rates(700, 0.02, 12, 4),
        ("ray-rest", 10): _rates(100, 0.02, 12, 5),
    }
    backend_of = {
        "ours-rest": "fastapi",
        "ours-v2": "fastapi",
        "mlserver-rest": "mlserver",
        "mlserver-grpc": "mlserver",
        "ray-rest": "ray",
    }
    headlines = headline_ratios(rates, backend_of)
    assert [(h.best, h.other) for h in headlines] == [
        ("ours-rest", "mlserver-grpc"),
        ("ours-rest", "ray-rest"),
    ]
    assert headlines[0].ratio.ratio == pytest.approx(1500 / 700, rel=0.05)


def test_with_one_backend_every_other_series_is_a_headline() -> None:
    """An A/A run (two configurations of one server) compares them, not nothing."""
    rates = {("a", 1): _rates(1000, 0.05, 10, 1), ("b", 1): _rates(990, 0.05, 10, 2)}
    headlines = headline_ratios(rates, {"a": "fastapi", "b": "fastapi"})
    assert len(headlines) == 1
    assert {headlines[0].best, headlines[0].other} == {"a", "b"}


def test_the_widest_interval_decides_and_grows_with_the_noise() -> None:
    backend_of = {"a": "x", "b": "y", "c": "z"}
    rates = {
        ("a", 50): _rates(1500, 0.02, 16, 1),
        ("b", 50): _rates(700, 0.02, 16, 2),
        ("c", 50): _rates(400, 0.12, 16, 3),  # a spiky server
    }
    top = widest(headline_ratios(rates, backend_of))
    assert top is not None
    assert top.other == "c"
    assert top.half_width > 0.03
    steady = headline_ratios({k: v for k, v in rates.items() if k[0] != "c"}, backend_of)
    assert widest(steady) is not None
    assert widest(steady).half_width < 0.03  # type: ignore[union-attr]
    assert "at 50 users" in top.text()


def test_a_single_block_has_no_interval() -> None:
    (one,) = headline_ratios({("a", 1): [10.0], ("b", 1): [5.0]}, {"a": "x", "b": "y"})
    assert math.isinf(one.half_width)


@pytest.mark.parametrize(
    ("seconds", "block_s", "expected"), [(300, 30, 10), (480, 30, 16), (100, 30, 10), (5, 0, 10)]
)
def test_blocks_fit_the_time_left_and_never_fall_below_the_least(
    seconds: float, block_s: float, expected: int
) -> None:
    assert blocks_within(seconds, block_s) == expected


def _session(tmp_path: Path, blocks: int) -> dict[Path, list[OwnSlice]]:
    """Two processes, one level, a warm-up slice and `blocks` measured slices each."""
    return {
        tmp_path / f"schedule-{name}.json": [
            OwnSlice(name, 10, block) for block in range(blocks + 1)
        ]
        for name in ("fast", "slow")
    }


def _write_counts(path: Path, counts: list[float]) -> None:
    counts_path(path).write_text(json.dumps([round(c) for c in counts]))


def test_the_judge_cuts_every_schedule_once_the_ratio_is_tight(tmp_path: Path) -> None:
    schedules = _session(tmp_path, 16)
    fast, slow = schedules
    _write_counts(fast, [0, *_rates(1800, 0.01, 12, 1)])
    _write_counts(slow, [0, *_rates(900, 0.01, 12, 2)])
    judge = SessionJudge(schedules, {"fast": "a", "slow": "b"}, 1.2, 0.03)
    next_block = perf_counter_ns() + 500_000_000
    assert judge(9, next_block) is None  # fewer than the least blocks: no cut, only a state
    assert "aiming at ±3 %" in judge.state()
    assert not any(cut_path(path).exists() for path in schedules)
    assert judge(12, next_block) == next_block
    assert judge.stopped_after == 12
    for path in schedules:
        assert int(cut_path(path).read_text()) == next_block
    assert judge.state().startswith("decisive after 12 blocks")


def test_the_judge_goes_on_while_a_ratio_is_wide(tmp_path: Path) -> None:
    schedules = _session(tmp_path, 16)
    fast, slow = schedules
    _write_counts(fast, [0, *_rates(1800, 0.01, 12, 1)])
    _write_counts(slow, [0, *_rates(900, 0.15, 12, 2)])
    judge = SessionJudge(schedules, {"fast": "a", "slow": "b"}, 1.2, 0.03)
    assert judge(12, perf_counter_ns() + 500_000_000) is None
    assert not any(cut_path(path).exists() for path in schedules)
    assert "aiming at ±3 %" in judge.state()


def test_a_slice_whose_counts_are_late_is_left_out_of_the_judgement(tmp_path: Path) -> None:
    """The last slice of a block waits for its slowest answer before its process writes the
    counts; the judge does not wait past the next block's start for it, and judges the blocks
    before (or not at all, if fewer than the least)."""
    schedules = _session(tmp_path, 16)
    fast, slow = schedules
    _write_counts(fast, [0, *_rates(1800, 0.01, 11, 1)])
    _write_counts(slow, [0, *_rates(900, 0.01, 10, 2)])  # block 11 not in yet
    judge = SessionJudge(schedules, {"fast": "a", "slow": "b"}, 1.2, 0.03)
    next_block = perf_counter_ns() + 400_000_000
    assert judge(11, next_block) == next_block  # on blocks 1 to 10
    assert judge.judged_on == 10
    assert perf_counter_ns() < next_block
    _write_counts(slow, [0, *_rates(900, 0.01, 9, 2)])
    judge = SessionJudge(schedules, {"fast": "a", "slow": "b"}, 1.2, 0.03)
    assert judge(11, perf_counter_ns() + 400_000_000) is None  # 9 complete blocks only


def test_a_cut_that_would_come_too_late_is_not_written(tmp_path: Path) -> None:
    schedules = _session(tmp_path, 16)
    fast, slow = schedules
    _write_counts(fast, [0, *_rates(1800, 0.01, 12, 1)])
    _write_counts(slow, [0, *_rates(900, 0.01, 12, 2)])
    judge = SessionJudge(schedules, {"fast": "a", "slow": "b"}, 1.2, 0.03)
    assert judge(12, perf_counter_ns() + 1_000_000) is None  # the next block is 1 ms away
    assert not any(cut_path(path).exists() for path in schedules)
