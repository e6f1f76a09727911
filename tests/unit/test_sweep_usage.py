"""CPU accounting of a point: our processes' usage over the window, and what other processes
took from our cores (the `contended` flag's figure), on known /proc-like samples."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections import namedtuple

import psutil
import pytest

from servingbench.runs.point import ProcessUsage
from servingbench.sweep.usage import (
    Tracked,
    UsageSampler,
    _Sample,
    _Series,
    _usage,
    busy_seconds,
    other_percent,
)

# psutil's per-core entry on Linux, field for field (`psutil.cpu_times(percpu=True)[i]`)
Times = namedtuple(
    "Times",
    "user nice system idle iowait irq softirq steal guest guest_nice",
)
S = 1_000_000_000


def _usage_of(
    cpu_seconds: float,
    cpus: list[int] | None,
    role: str = "server",
    name: str = "server",
    percent: float = 0.0,
) -> ProcessUsage:
    return ProcessUsage.model_validate(
        {
            "role": role,
            "name": name,
            "pids": [1],
            "cpu_percent": percent,
            "cpu_seconds": cpu_seconds,
            "rss_bytes": 0,
            "cpus": cpus,
        }
    )


# --- busy time per core ---------------------------------------------------------------------


CORE = Times(
    user=2.0,
    nice=0.25,
    system=1.0,
    idle=5.0,
    iowait=0.5,
    irq=0.125,
    softirq=0.125,
    steal=0.5,
    guest=0.0,
    guest_nice=0.0,
)
"""One core's counters: 4 s busy (user, nice, system, irq, softirq, steal), 5.5 s not."""


def test_busy_time_is_everything_but_idle_and_iowait() -> None:
    """iowait is a core waiting, not working; steal and irq are time taken from us."""
    core = CORE
    assert busy_seconds([core, core._replace(user=0.0)]) == [4.0, 2.0]


def test_guest_time_is_not_counted_twice() -> None:
    """Linux already counts guest time in user (and guest_nice in nice): adding the guest
    fields again inflates a VM host's busy time and flags `contended` points that were not
    (psutil's own `_cpu_tot_time` subtracts guest and guest_nice on Linux too)."""
    core = CORE._replace(guest=1.5, guest_nice=0.25)
    assert busy_seconds([core]) == [4.0]


def test_busy_time_of_this_machine_is_one_figure_per_core() -> None:
    """Read through psutil as the sampler does: one non-negative figure per logical core."""
    busy = busy_seconds(psutil.cpu_times(percpu=True))
    assert len(busy) == psutil.cpu_count()
    assert all(b >= 0 for b in busy)


# --- other processes on our cores -----------------------------------------------------------


def test_other_percent_subtracts_our_processes_pinned_inside_the_cores() -> None:
    """Core 1 was busy 1.5 s of 2 s, our server (pinned to core 1) used 1 s: others took
    0.5 s in 2 s, i.e. 25 % of a core."""
    busy = [3.0, 1.5]
    assert other_percent(busy, 2.0, [1], [_usage_of(1.0, [1])]) == pytest.approx(25.0)
    # two cores, one process pinned to each: (3.0 + 1.5 - 2.0 - 0.5) / 2 s
    both = [_usage_of(2.0, [0]), _usage_of(0.5, [1])]
    assert other_percent(busy, 2.0, [0, 1], both) == pytest.approx(100.0)


def test_other_percent_counts_unpinned_or_wider_processes_as_others() -> None:
    """A process pinned to more cores than these (or not at all) may have run elsewhere, so
    its time cannot be attributed to these cores."""
    busy = [3.0, 1.5]
    wider = [_usage_of(1.0, [0, 1]), _usage_of(1.0, None)]
    assert other_percent(busy, 2.0, [1], wider) == pytest.approx(75.0)


def test_other_percent_never_goes_negative_and_skips_missing_cores() -> None:
    """Sampling jitter can make our time exceed the core's: that is zero others, not fewer;
    a core beyond the machine's count adds nothing."""
    assert other_percent([0.0, 1.0], 2.0, [1], [_usage_of(1.2, [1])]) == 0.0
    assert other_percent([0.0, 1.0], 2.0, [1, 7], []) == pytest.approx(50.0)


@pytest.mark.parametrize(
    ("busy", "elapsed", "cores"),
    [([1.0], 1.0, None), ([1.0], 1.0, []), ([1.0], 0.0, [0]), ([], 1.0, [0])],
)
def test_other_percent_is_unknown_without_pinning_or_samples(
    busy: list[float], elapsed: float, cores: list[int] | None
) -> None:
    """Unpinned: nothing can be attributed; no interval: nothing was measured."""
    assert other_percent(busy, elapsed, cores, []) is None


# --- our processes over the window ----------------------------------------------------------


def _series(samples: list[_Sample], cpus: list[int] | None = None) -> _Series:
    return _Series(Tracked("server", "api", list, cpus), samples)


def test_usage_is_the_cpu_difference_between_the_window_samples() -> None:
    """Samples at 0..3 s, window [1 s, 3 s]: CPU seconds are the difference of the two samples
    framing it; a process born in between counts from zero; memory is the window's peak."""
    samples = [
        _Sample(0 * S, {10: 0.0}, rss=900, pss=900, uss=800),
        _Sample(1 * S, {10: 1.0, 11: 0.5}, rss=100),
        _Sample(2 * S, {10: 2.0, 11: 0.6}, rss=300, pss=250, uss=200),
        _Sample(3 * S, {10: 2.5, 11: 0.7, 12: 0.3}, rss=200),
    ]
    usage = _usage(_series(samples, [0]), 1 * S, 3 * S)
    assert usage is not None
    assert usage.cpu_seconds == pytest.approx(1.5 + 0.2 + 0.3)
    assert usage.cpu_percent == pytest.approx(100.0)  # 2 s of CPU in 2 s
    assert usage.busiest_process_percent == pytest.approx(75.0)  # pid 10: 1.5 s in 2 s
    assert usage.pids == [10, 11, 12]
    assert (usage.rss_bytes, usage.pss_bytes, usage.uss_bytes) == (300, 250, 200)
    assert (usage.role, usage.name, usage.cpus) == ("server", "api", [0])


def test_usage_of_a_window_shorter_than_two_samples_spans_the_run() -> None:
    """One sample cannot give a rate: the whole run's figures stand in (never a division by
    zero); memory comes from any sample that read it."""
    samples = [_Sample(0, {1: 0.0}, rss=10), _Sample(4 * S, {1: 1.0}, rss=20, pss=15, uss=5)]
    usage = _usage(_series(samples), 1 * S, 2 * S)
    assert usage is not None
    assert usage.cpu_percent == pytest.approx(25.0)
    assert (usage.rss_bytes, usage.pss_bytes) == (20, 15)
    assert _usage(_series([]), 0, S) is None


def test_single_sample_gives_zero_percent_not_an_error() -> None:
    """A tree seen once (it died right away) has no elapsed time to divide by."""
    usage = _usage(_series([_Sample(S, {1: 3.0}, rss=5)]), 0, 2 * S)
    assert usage is not None
    assert (usage.cpu_percent, usage.cpu_seconds, usage.busiest_process_percent) == (0, 0, 0)


# --- the sampler on this process ------------------------------------------------------------


def test_sampler_sees_this_process_and_attributes_idle_servers() -> None:
    """A real sampler on the test's own process: its pid, its CPU while it spins, its memory;
    and interference adds up the idle servers that are not the one measured."""
    me = psutil.Process()
    # samples taken by the caller (as an interleaved session does), not by the thread: a
    # thread would compete with the spin below for the GIL and might not sample inside it
    s = UsageSampler([Tracked("harness", "pytest", lambda: [me], [0])])
    start = s.take(with_memory=True)
    spent = time.process_time()  # CPU time, not wall time: a busy machine gives less of it
    while time.process_time() - spent < 0.1:
        pass
    end = s.take(with_memory=True)
    (usage,) = s.usage(start, end)
    assert os.getpid() in usage.pids  # with its children (the session's servers, if any)
    assert usage.cpu_seconds > 0.0
    assert usage.rss_bytes > 10_000_000
    assert usage.pss_bytes > 0
    others = [
        _usage_of(0.3, [0], "server", "mlserver-default", 30.0),  # the one measured
        _usage_of(0.1, [0], "server", "fastapi-batching", 12.5),  # idle beside it
        _usage_of(0.5, [0], "generator", "locust", 50.0),
    ]
    interference = s.interference(start, end, others, None, [0], "mlserver-default")
    assert interference.idle_servers_percent == pytest.approx(12.5)
    assert interference.server_other_percent is None  # servers unpinned
    assert interference.generator_other_percent is not None
    assert interference.generator_other_percent >= 0.0


def test_each_process_is_counted_once_by_the_first_tree_holding_it() -> None:
    """The harness's tree holds the load generator (its child), as the sweep's does: the
    child's CPU belongs to the generator alone, or the generator core's "other" time would
    subtract it twice and `contended` could never fire there."""
    child = subprocess.Popen(
        [sys.executable, "-c", "import time\nt = time.process_time()\n"
         "while time.process_time() - t < 0.6: pass"]
    )  # fmt: skip
    try:
        spinner = psutil.Process(child.pid)
        me = psutil.Process()
        tracked = [
            Tracked("generator", "locust", lambda: [spinner], [0]),
            Tracked("harness", "pytest", lambda: [me], [0], memory=False),
        ]
        with UsageSampler(tracked, interval_s=0.02) as sampler:
            start = time.perf_counter_ns()
            child.wait(timeout=60)
        end = time.perf_counter_ns()
    finally:
        child.kill()
        child.wait()
    generator, harness = sampler.usage(start, end)
    assert generator.pids == [child.pid]
    assert child.pid not in harness.pids
    assert generator.cpu_seconds > 0.3
    assert harness.cpu_seconds < generator.cpu_seconds / 2
