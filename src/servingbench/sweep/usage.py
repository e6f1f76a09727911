"""CPU and memory of our processes, and of everything else on our cores, while a point runs.

A thread samples, every `interval_s`: each tracked process tree's per-process CPU times, the
PSS/USS of the trees that ask for it less often (reading smaps costs more), and the machine's
per-core CPU times. Samples carry `time.perf_counter_ns()` stamps, the clock the load generator
stamps requests with, so the measured window is cut exactly from the samples after the run.

The sampler shares a machine with what it measures, so it stays cheap: tree membership is
refreshed from one walk of /proc once a second (or when a tree's roots change), and a tick
reads only the known processes' CPU times. The sweep keeps its own process, this thread
included, off the generator's cores: its ticks would otherwise delay the load generator's
arrivals in bursts.

Every process is counted once, by the first tracked tree that holds it (the generator, then the
servers, then the harness, whose own tree holds all of them as children).

Interference is per-core busy time (user, system, irq, ..., steal) over the window minus the CPU
time of our own processes pinned to those cores: what other processes (or the hypervisor) took
from the cores the measurement relies on.
"""

from __future__ import annotations

import bisect
import contextlib
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import psutil

from servingbench.runs.point import Interference, ProcessUsage
from servingbench.stack.processes import memory_of

__all__ = ["Tracked", "UsageSampler", "busy_seconds", "other_percent", "parent_map"]

Role = Literal["server", "generator", "harness"]
REFRESH_S = 1.0
"""How often tree membership is re-read from /proc (roots that change trigger it at once)."""


@dataclass(frozen=True)
class Tracked:
    """A process tree to watch; `roots` is called at each sample (the tree may grow).

    `memory`: also sample its PSS/USS (the measured server's and the generator's are worth
    the smaps reads; idle servers' are not)."""

    role: Role
    name: str
    roots: Callable[[], list[psutil.Process]]
    cpus: list[int] | None = None
    memory: bool = True


@dataclass
class _Sample:
    t_ns: int
    cpu: dict[int, float]  # pid -> user + system seconds
    rss: int
    pss: int | None = None
    uss: int | None = None


@dataclass
class _Series:
    tracked: Tracked
    samples: list[_Sample] = field(default_factory=list)
    members: dict[int, psutil.Process] = field(default_factory=dict)
    roots: tuple[int, ...] = ()


@dataclass
class _CoreSample:
    t_ns: int
    busy: list[float]  # per core: seconds not idle (steal included)


def parent_map(proc: Path = Path("/proc")) -> dict[int, int]:
    """pid -> parent pid of every process, from one walk of /proc (what psutil's `children`
    does once per call)."""
    parents = {}
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError, ValueError, IndexError):
            stat = (entry / "stat").read_bytes()
            # "pid (comm) state ppid ...": comm may hold spaces and parentheses
            parents[int(entry.name)] = int(stat[stat.rindex(b")") + 2 :].split(None, 2)[1])
    return parents


def _descendants(roots: Iterable[int], parents: dict[int, int]) -> list[int]:
    children: dict[int, list[int]] = {}
    for pid, parent in parents.items():
        children.setdefault(parent, []).append(pid)
    out, todo = [], list(roots)
    while todo:
        pid = todo.pop()
        if pid in parents and pid not in out:
            out.append(pid)
            todo += children.get(pid, [])
    return out


def busy_seconds(times: Sequence[object]) -> list[float]:
    """Per core: everything but idle and iowait (psutil's `cpu_times(percpu=True)` entries).

    Linux already counts guest time in user and guest_nice in nice, so those two fields are
    left out of the sum, as psutil's own `cpu_percent` does.
    """
    out = []
    for t in times:
        total = sum(getattr(t, name) for name in t._fields)  # type: ignore[attr-defined]
        idle = getattr(t, "idle", 0.0) + getattr(t, "iowait", 0.0)
        guest = getattr(t, "guest", 0.0) + getattr(t, "guest_nice", 0.0)
        out.append(total - idle - guest)
    return out


def _sample(series: _Series, with_memory: bool, t_ns: int) -> _Sample:
    cpu: dict[int, float] = {}
    rss = 0
    alive = []
    for pid, proc in series.members.items():
        with contextlib.suppress(psutil.Error):
            times = proc.cpu_times()
            cpu[pid] = times.user + times.system
            alive.append(proc)
    sample = _Sample(t_ns, cpu, rss)
    if with_memory and alive:
        memory = memory_of(alive)
        sample.rss, sample.pss, sample.uss = memory.rss, memory.pss, memory.uss
    return sample


class UsageSampler:
    """Samples every tracked tree and every core every `interval_s` until stopped."""

    def __init__(
        self, tracked: list[Tracked], interval_s: float = 0.25, memory_every: int = 4
    ) -> None:
        self._series = [_Series(t) for t in tracked]
        self._cores: list[_CoreSample] = []
        self._interval_s = interval_s
        self._memory_every = memory_every
        self._refreshed = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="usage-sampler", daemon=True)

    def _refresh(self) -> None:
        """Each tree's members from one /proc walk; a pid is claimed by the first tree."""
        parents = parent_map()
        claimed: set[int] = set()
        for series in self._series:
            roots = [p for p in series.tracked.roots() if p.pid not in claimed]
            series.roots = tuple(p.pid for p in roots)
            known = {p.pid: p for p in roots} | series.members
            members = {}
            for pid in _descendants(series.roots, parents):
                if pid in claimed:
                    continue
                claimed.add(pid)
                with contextlib.suppress(psutil.Error):
                    members[pid] = known[pid] if pid in known else psutil.Process(pid)
            series.members = members
        self._refreshed = time.monotonic()

    def _stale(self) -> bool:
        if time.monotonic() - self._refreshed >= REFRESH_S:
            return True
        return any(tuple(p.pid for p in s.tracked.roots()) != s.roots for s in self._series)

    def take(self, with_memory: bool = False) -> int:
        """One sample of every tree and every core now; returns its stamp. A caller that
        takes its own samples (no thread) gets a tree's usage between two of them exactly:
        `usage(a, b)` with the two stamps."""
        if self._stale():
            self._refresh()
        t_ns = time.perf_counter_ns()  # one stamp for the whole sample
        for series in self._series:
            sample = _sample(series, with_memory and series.tracked.memory, t_ns)
            if sample.cpu:
                series.samples.append(sample)
        self._cores.append(_CoreSample(t_ns, busy_seconds(psutil.cpu_times(percpu=True))))
        return t_ns

    def _take(self, tick: int) -> None:
        self.take(with_memory=tick % self._memory_every == 0)

    def _loop(self) -> None:
        tick = 0
        while not self._stop.is_set():
            self._take(tick)
            tick += 1
            self._stop.wait(self._interval_s)

    def __enter__(self) -> UsageSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self._take(0)  # a last sample, memory included

    def usage(self, start_ns: int, end_ns: int) -> list[ProcessUsage]:
        """Each tree's CPU % over [start_ns, end_ns] (nearest samples inside), its peak memory."""
        return [u for s in self._series if (u := _usage(s, start_ns, end_ns)) is not None]

    def interference(
        self,
        start_ns: int,
        end_ns: int,
        usage: list[ProcessUsage],
        server_cores: list[int] | None,
        generator_cores: list[int] | None,
        measured_server: str | None,
    ) -> Interference:
        """Other processes' CPU on the server and generator cores over the window."""
        stamps = [c.t_ns for c in self._cores]
        first, last = _bounds(stamps, start_ns, end_ns)
        elapsed_s = (stamps[last] - stamps[first]) / 1e9 if self._cores else 0.0
        busy = (
            [b - a for a, b in zip(self._cores[first].busy, self._cores[last].busy, strict=True)]
            if elapsed_s > 0
            else []
        )
        idle_servers = sum(
            u.cpu_percent for u in usage if u.role == "server" and u.name != measured_server
        )
        return Interference(
            server_cores=server_cores,
            generator_cores=generator_cores,
            server_other_percent=other_percent(busy, elapsed_s, server_cores, usage),
            generator_other_percent=other_percent(busy, elapsed_s, generator_cores, usage),
            idle_servers_percent=idle_servers,
        )


def other_percent(
    busy_s: list[float],
    elapsed_s: float,
    cores: list[int] | None,
    usage: list[ProcessUsage],
) -> float | None:
    """Busy time of `cores` minus our processes pinned inside them, in % of one core.

    None when the cores are not pinned (then our processes may run anywhere and nothing can be
    attributed) or nothing was sampled. Processes pinned to a superset of `cores` are not ours
    to subtract here, which is why the harness pins every process it starts.
    """
    if not cores or elapsed_s <= 0 or not busy_s:
        return None
    core_set = set(cores)
    total = sum(busy_s[c] for c in cores if c < len(busy_s))
    own = sum(u.cpu_seconds for u in usage if u.cpus and set(u.cpus) <= core_set)
    return max(0.0, 100.0 * (total - own) / elapsed_s)


def _bounds(stamps: list[int], start_ns: int, end_ns: int) -> tuple[int, int]:
    if not stamps:
        return 0, 0
    first = bisect.bisect_left(stamps, start_ns)
    last = bisect.bisect_right(stamps, end_ns) - 1
    if last <= first:  # window shorter than two samples: widen to the whole run
        first, last = 0, len(stamps) - 1
    return first, last


def _usage(series: _Series, start_ns: int, end_ns: int) -> ProcessUsage | None:
    samples = series.samples
    if not samples:
        return None
    first, last = _bounds([s.t_ns for s in samples], start_ns, end_ns)
    a, b = samples[first], samples[last]
    per_pid = {pid: cpu - a.cpu.get(pid, 0.0) for pid, cpu in b.cpu.items()}
    seconds = sum(per_pid.values())
    elapsed_s = (b.t_ns - a.t_ns) / 1e9
    window = samples[first : last + 1]
    with_memory = [s for s in window if s.pss is not None] or [
        s for s in samples if s.pss is not None
    ]
    tracked = series.tracked
    return ProcessUsage(
        role=tracked.role,
        name=tracked.name,
        pids=sorted(set(a.cpu) | set(b.cpu)),
        cpu_percent=100.0 * seconds / elapsed_s if elapsed_s > 0 else 0.0,
        cpu_seconds=seconds,
        busiest_process_percent=100.0 * max(per_pid.values(), default=0.0) / elapsed_s
        if elapsed_s > 0
        else 0.0,
        rss_bytes=max((s.rss for s in with_memory), default=0),
        pss_bytes=max((s.pss or 0) for s in with_memory) if with_memory else 0,
        uss_bytes=max((s.uss or 0) for s in with_memory) if with_memory else 0,
        cpus=tracked.cpus,
    )
