"""The sweep's position, elapsed time and time left: the arithmetic, the lines, the log, and
plain lines (no live bar, no terminal codes) where the output is not a terminal."""

from __future__ import annotations

import io
import subprocess
import sys
from pathlib import Path

import pytest

from servingbench.sweep.progress import Progress, clock_text, remaining_s


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


@pytest.mark.parametrize(
    ("done", "total", "elapsed", "left"),
    [
        (0, 54, 0.0, None),  # nothing measured yet: no estimate
        (1, 54, 8.0, 424.0),
        (23, 54, 184.0, 248.0),  # 8 s a point, 31 points left
        (54, 54, 432.0, 0.0),
        (60, 54, 480.0, 0.0),  # more than planned (a revised total): nothing left, not negative
        (5, None, 40.0, None),  # a search: the total is unknown
    ],
)
def test_time_left_is_the_mean_so_far_times_the_units_left(
    done: int, total: int | None, elapsed: float, left: float | None
) -> None:
    assert remaining_s(done, total, elapsed) == left


def test_clock_text() -> None:
    assert [clock_text(s) for s in (0.4, 42, 185, 3720)] == ["0s", "42s", "3m05s", "1h02m"]


def test_lines_lead_with_position_elapsed_and_time_left(tmp_path: Path) -> None:
    clock, lines = Clock(), list[str]()
    progress = Progress(lines.append, clock=clock)
    progress.log_to(tmp_path / "bench.log")
    clock.now += 30  # servers starting: counted as elapsed, not as a point's time
    progress("parity: passed")
    progress.begin(4, "points")
    assert progress.position() == "[0/4 points] 30s, time left: after the first"
    clock.now += 10
    progress.advance("fastapi-rest N=1 rep 1")
    clock.now += 14
    progress.advance("fastapi-rest N=10 rep 1")
    assert lines == [
        "parity: passed",
        "[1/4 points] 40s, about 30s left fastapi-rest N=1 rep 1",
        "[2/4 points] 54s, about 24s left fastapi-rest N=10 rep 1",
    ]
    progress.begin(None, "probes", "a search picks its probes as it goes")
    clock.now += 5
    progress.advance("probe")
    assert lines[-1] == (
        "[1/? probes] 59s, time left unknown (a search picks its probes as it goes) probe"
    )
    progress.close()
    assert (tmp_path / "bench.log").read_text().splitlines() == lines


def test_a_revised_total_moves_the_estimate() -> None:
    clock, lines = Clock(), list[str]()
    progress = Progress(lines.append, clock=clock)
    progress.begin(10, "slices")
    clock.now += 20
    progress.advance(units=2)
    progress.expect(6)
    assert progress.position() == "[2/6 slices] 20s, about 40s left"


def test_plain_lines_when_not_a_terminal(capsys: pytest.CaptureFixture[str]) -> None:
    with Progress.for_terminal(io.StringIO()) as progress:
        progress.begin(2, "points")
        progress.advance("one")
    out = capsys.readouterr().out
    assert out.startswith("[1/2 points] ")
    assert out.endswith(" one\n")
    assert "\x1b" not in out  # no terminal codes


def test_a_piped_bench_prints_plain_lines() -> None:
    """What `servingbench bench | tee` sees: stdout is a pipe, so no bar, only lines."""
    script = (
        "from servingbench.sweep.progress import Progress\n"
        "with Progress.for_terminal() as p:\n"
        "    p.begin(3, 'points')\n"
        "    for name in 'abc':\n"
        "        p.advance(name)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=True
    )
    lines = done.stdout.splitlines()
    assert [line.split("]")[0] for line in lines] == ["[1/3 points", "[2/3 points", "[3/3 points"]
    assert "\x1b" not in done.stdout + done.stderr
