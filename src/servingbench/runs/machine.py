"""The machine and software a measurement was made on, recorded beside every result."""

from __future__ import annotations

from pydantic import Field

from servingbench.runs.schema import Record

__all__ = ["GitInfo", "Hardware", "Software"]


class GitInfo(Record):
    commit: str | None
    dirty: bool | None = Field(description="uncommitted changes when the run started")


class Hardware(Record):
    cpu_model: str
    logical_cores: int | None
    physical_cores: int | None
    cpu_max_mhz: float | None
    memory_total_bytes: int
    os: str
    kernel: str
    affinity_available: bool


class Software(Record):
    python: str
    implementation: str
    packages: dict[str, str] = Field(description="the harness environment's versions")
