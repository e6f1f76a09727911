"""Where each file of a run lives. A run is `results/<run-id>/`, never reused or overwritten.

results/<run-id>/
  meta.json                         run metadata: hardware, versions, servers, pinning, sweep
  points/<point-id>/point.json      one point: its key, measurements, flags, summary
  points/<point-id>/requests.npz    raw per-request records (see runs.records)
  points/<point-id>/locust.json     Locust's own statistics (--json-file), kept for reference
  bench.log                         the sweep's progress lines, as the terminal showed them
  summary.json                      findings and gates for machines (runs.summary), by the
                                    bench, rewritten by `servingbench report`
  summary.csv, report.md, report.html, *.png   written by `servingbench report`

A Locust run hands its results to the sweep in a records folder of its own (`GeneratorFiles`,
hidden inside the point's folder); once checked, its records file is renamed to the point's
`requests.npz`, and the folder is removed.
"""

from __future__ import annotations

import datetime as dt
import os
from dataclasses import dataclass
from pathlib import Path

from servingbench.paths import results_dir

__all__ = [
    "LOCUST_STATS_FILE",
    "LOG_FILE",
    "META_FILE",
    "POINT_FILE",
    "RECORDS_FILE",
    "GeneratorFiles",
    "RunLayout",
    "create_run",
    "find_run",
    "latest_run",
]

META_FILE = "meta.json"
LOG_FILE = "bench.log"
POINT_FILE = "point.json"
RECORDS_FILE = "requests.npz"
LOCUST_STATS_FILE = "locust.json"


@dataclass(frozen=True)
class GeneratorFiles:
    """What one Locust run (its master, or its only process) writes into its records folder
    (`LoadSettings.records_dir`) when it ends, for the sweep to read."""

    folder: Path

    @property
    def records(self) -> Path:
        """The raw per-request records (`runs.records`), before the sweep checks them."""
        return self.folder / "records.npz"

    @property
    def report(self) -> Path:
        """`runs.point.GeneratorReport`: the measured interval, why it stopped, the workers."""
        return self.folder / "generator.json"

    def metrics(self, end: str) -> Path:
        """The server's Prometheus text, scraped at the measured interval's `from` / `to` end."""
        return self.folder / f"metrics-{end}.txt"


@dataclass(frozen=True)
class RunLayout:
    root: Path

    @property
    def run_id(self) -> str:
        return self.root.name

    @property
    def meta(self) -> Path:
        return self.root / META_FILE

    @property
    def log(self) -> Path:
        return self.root / LOG_FILE

    @property
    def points_dir(self) -> Path:
        return self.root / "points"

    def point_dir(self, pid: str) -> Path:
        return self.points_dir / pid

    def point_dirs(self) -> list[Path]:
        """Every point folder that has a finished `point.json`, in sorted order."""
        if not self.points_dir.is_dir():
            return []
        return sorted(p for p in self.points_dir.iterdir() if (p / POINT_FILE).is_file())


def create_run(base: Path | None = None, run_id: str | None = None) -> RunLayout:
    """Make a new, empty run folder; refuse to reuse an existing one."""
    base = base or results_dir()
    base.mkdir(parents=True, exist_ok=True)
    if run_id is not None:
        root = base / run_id
        root.mkdir(parents=False, exist_ok=False)  # FileExistsError: runs are never overwritten
    else:
        stamp = f"{dt.datetime.now():%Y%m%d-%H%M%S}-{os.getpid()}"
        for attempt in range(1, 1000):  # two runs of one process within a second
            root = base / (stamp if attempt == 1 else f"{stamp}-{attempt}")
            try:
                root.mkdir(parents=False, exist_ok=False)
                break
            except FileExistsError:
                continue
        else:
            raise FileExistsError(f"no free run id under {base} for {stamp}")
    (root / "points").mkdir()
    return RunLayout(root)


def latest_run(base: Path | None = None) -> RunLayout:
    """The newest run folder that has a meta.json."""
    base = base or results_dir()
    runs = [p for p in base.iterdir() if (p / META_FILE).is_file()] if base.is_dir() else []
    if not runs:
        raise FileNotFoundError(f"no run with a {META_FILE} under {base}: run `make bench` first")
    return RunLayout(max(runs, key=lambda p: ((p / META_FILE).stat().st_mtime, p.name)))


def find_run(name_or_path: str, base: Path | None = None) -> RunLayout:
    """A run given by id (folder under results/) or by path."""
    candidate = Path(name_or_path)
    if not candidate.is_dir():
        candidate = (base or results_dir()) / name_or_path
    if not (candidate / META_FILE).is_file():
        raise FileNotFoundError(f"{candidate} is not a run folder (no {META_FILE})")
    return RunLayout(candidate)
