"""CPU and memory of the servers and the load generator while a point runs (psutil, in a thread).

Samples carry `time.perf_counter_ns()` stamps: on Linux that is CLOCK_MONOTONIC, the same clock
the Locust processes stamp requests with, so the measured window (warm-up end to last answer)
is cut exactly from the samples after the run instead of guessed while it runs.
"""

from __future__ import annotations

import bisect
import contextlib
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

import psutil

from servingbench.runs.point import ProcessUsage

__all__ = ["Tracked", "UsageSampler"]


@dataclass(frozen=True)
class Tracked:
    """A process tree to watch; `roots` is called at each sample (the tree may grow)."""

    role: Literal["server", "generator"]
    name: str
    roots: Callable[[], list[psutil.Process]]
    cpus: list[int] | None = None


@dataclass
class _Sample:
    t_ns: int
    cpu: dict[int, float]  # pid -> user + system seconds
    rss: int


@dataclass
class _Series:
    tracked: Tracked
    samples: list[_Sample] = field(default_factory=list)


def _tree(roots: list[psutil.Process]) -> list[psutil.Process]:
    members: dict[int, psutil.Process] = {}
    for root in roots:
        members[root.pid] = root
        with contextlib.suppress(psutil.Error):
            members.update({c.pid: c for c in root.children(recursive=True)})
    return list(members.values())


def _sample(tracked: Tracked) -> _Sample:
    cpu: dict[int, float] = {}
    rss = 0
    for proc in _tree(tracked.roots()):
        with contextlib.suppress(psutil.Error), proc.oneshot():
            times = proc.cpu_times()
            cpu[proc.pid] = times.user + times.system
            rss += proc.memory_info().rss
    return _Sample(time.perf_counter_ns(), cpu, rss)


class UsageSampler:
    """Samples every tracked tree every `interval_s` until stopped."""

    def __init__(self, tracked: list[Tracked], interval_s: float = 0.25) -> None:
        self._series = [_Series(t) for t in tracked]
        self._interval_s = interval_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="usage-sampler", daemon=True)

    def _take(self) -> None:
        for series in self._series:
            sample = _sample(series.tracked)
            if sample.cpu:
                series.samples.append(sample)

    def _loop(self) -> None:
        while not self._stop.is_set():
            self._take()
            self._stop.wait(self._interval_s)

    def __enter__(self) -> UsageSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def usage(self, start_ns: int | None, end_ns: int | None) -> list[ProcessUsage]:
        """Each tree's CPU % over [start_ns, end_ns] (nearest samples inside) and its peak RSS."""
        return [u for s in self._series if (u := _usage(s, start_ns, end_ns)) is not None]


def _usage(series: _Series, start_ns: int | None, end_ns: int | None) -> ProcessUsage | None:
    samples = series.samples
    if not samples:
        return None
    stamps = [s.t_ns for s in samples]
    first = bisect.bisect_left(stamps, start_ns) if start_ns is not None else 0
    last = bisect.bisect_right(stamps, end_ns) - 1 if end_ns is not None else len(samples) - 1
    if last <= first:  # window shorter than two samples: widen to the whole run
        first, last = 0, len(samples) - 1
    a, b = samples[first], samples[last]
    seconds = sum(cpu - a.cpu.get(pid, 0.0) for pid, cpu in b.cpu.items())
    elapsed_s = (b.t_ns - a.t_ns) / 1e9
    tracked = series.tracked
    return ProcessUsage(
        role=tracked.role,
        name=tracked.name,
        pids=sorted(set(a.cpu) | set(b.cpu)),
        cpu_percent=100.0 * seconds / elapsed_s if elapsed_s > 0 else 0.0,
        cpu_seconds=seconds,
        rss_bytes=max(s.rss for s in samples[first : last + 1]),
        cpus=tracked.cpus,
    )
