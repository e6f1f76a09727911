"""How far along the sweep is: each unit of work's position, the time elapsed, and what is left.

The unit is whatever the method measures one at a time: a point (`--method points`, open loop
at fixed rates, the closed-loop peaks of `--rates auto`), or a slice of an interleaved session
(its schedule is fixed, so its length is known before the first slice). A capacity search
(`--slo`) decides its probes as it goes: its total is unknown, and the line says so instead of
guessing. The time left is the stage's mean time per unit so far times the units left.

Where the output is a terminal, a live `rich` progress bar sits under the lines; otherwise each
line is printed plainly. Every line also goes to the run's `bench.log`.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import IO, Any, Self

__all__ = ["Progress", "clock_text", "remaining_s"]


def remaining_s(done: int, total: int | None, elapsed_s: float) -> float | None:
    """Seconds left for `total` units when `done` took `elapsed_s`: None while nothing is done
    or the total is unknown."""
    if total is None or done <= 0:
        return None
    return max(0, total - done) * elapsed_s / done


def clock_text(seconds: float) -> str:
    """`42s`, `3m05s`, `1h02m`."""
    s = round(seconds)
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s // 3600}h{s % 3600 // 60:02d}m"


class Progress:
    """The sweep's commentary: `progress(text)` prints a line; `begin`, `advance` count units.

    `emit` prints one plain line (default `print`); with `live`, a rich bar shows the position
    below the lines instead (for a terminal). `clock` is injectable for tests.
    """

    def __init__(
        self,
        emit: Callable[[str], None] = print,
        *,
        live: bool = False,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.emit, self.clock = emit, clock
        self.started = clock()
        self.unit = "points"
        self.total: int | None = None
        self.done = 0
        self.unknown = ""
        """Why the total is unknown, when it is."""
        self.stage_started = self.started
        self._log: IO[str] | None = None
        self._bar: Any = None
        self._task: Any = None
        if live:
            self._start_bar()

    @classmethod
    def for_terminal(cls, stream: IO[str] | None = None) -> Progress:
        """A live bar when `stream` (default stdout) is a terminal, plain lines otherwise."""
        stream = stream or sys.stdout
        return cls(live=stream.isatty())

    def _start_bar(self) -> None:
        from rich.console import Console
        from rich.progress import BarColumn, TextColumn
        from rich.progress import Progress as Bar

        self._bar = Bar(
            TextColumn("{task.description}"),
            BarColumn(),
            console=Console(highlight=False),
            transient=True,
        )
        self._task = self._bar.add_task("", total=None)
        self._bar.start()
        console = self._bar.console
        self.emit = lambda text: console.print(text, markup=False, highlight=False)

    def log_to(self, path: Path) -> None:
        """Append every line from now on to `path` too (the run's bench.log)."""
        path.parent.mkdir(parents=True, exist_ok=True)
        self._log = path.open("a", encoding="utf-8")

    def __call__(self, text: str) -> None:
        self.emit(text)
        if self._log is not None:
            self._log.write(text + "\n")
            self._log.flush()

    def begin(self, total: int | None, unit: str, unknown: str = "") -> None:
        """A stage of `total` units (None: unknown, `unknown` saying why) starts now."""
        self.unit, self.total, self.done, self.unknown = unit, total, 0, unknown
        self.stage_started = self.clock()
        self._refresh()

    def expect(self, total: int | None) -> None:
        """The stage's total is now known better (e.g. once the open-loop rates are)."""
        self.total = total
        self._refresh()

    def advance(self, text: str | None = None, units: int = 1) -> None:
        """`units` more done; with `text`, a line led by the position (`position()`)."""
        self.done += units
        self._refresh()
        if text is not None:
            self(f"{self.position()} {text}")

    def position(self) -> str:
        """`[23/54 points] 3m02s, about 4m10s left`, or why the time left is unknown."""
        now = self.clock()
        total = "?" if self.total is None else str(self.total)
        left = remaining_s(self.done, self.total, now - self.stage_started)
        if left is not None:
            eta = f"about {clock_text(left)} left"
        elif self.total is None:
            eta = f"time left unknown ({self.unknown})" if self.unknown else "time left unknown"
        else:
            eta = "time left: after the first"
        return f"[{self.done}/{total} {self.unit}] {clock_text(now - self.started)}, {eta}"

    def _refresh(self) -> None:
        if self._bar is not None:
            self._bar.update(
                self._task, completed=self.done, total=self.total, description=self.position()
            )

    def close_log(self) -> None:
        if self._log is not None:
            self._log.close()
            self._log = None

    def close(self) -> None:
        if self._bar is not None:
            self._bar.stop()
            self._bar = None
        self.close_log()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()
