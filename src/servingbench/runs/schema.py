"""The versioned base of every file in a run folder: written and read by the same pydantic models.

Each file carries `schema_version`. A reader refuses a file of another version with a message
that says what to do, instead of guessing at fields that moved: results are only worth what
their reader can prove about them.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Self

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from servingbench.atomic import atomic_write_text

__all__ = ["SCHEMA_VERSION", "IncompatibleRunError", "Record", "Versioned"]

SCHEMA_VERSION = 4
"""Version 1: the first round's files (untyped meta.json). 2: typed meta, calibration and point
files. 3: points measured until stable, repeats, open-loop and server timing fields. 4: a reason
per request record, successful requests per window, connects inside timed requests."""


class IncompatibleRunError(ValueError):
    """A run file written by another schema version (or not by servingbench at all)."""


class Record(BaseModel):
    """Every model of the run contract: unknown fields refused, NaN written as NaN.

    A figure that could not be measured is NaN in memory; JSON has no NaN, and `null` would not
    read back as a float, so files use the `NaN` constant (which Python's json reads).
    """

    model_config = ConfigDict(extra="forbid", ser_json_inf_nan="constants")


class Versioned(Record):
    """A JSON file of the run contract: knows its schema version."""

    schema_version: int = Field(
        default=SCHEMA_VERSION, description="Run-contract version this file was written with."
    )

    def write(self, path: Path) -> None:
        """Atomically: a reader sees the old file or the new one, never half of one."""
        atomic_write_text(path, self.model_dump_json(indent=2) + "\n")

    @classmethod
    def read(cls, path: Path) -> Self:
        """Parse `path`, refusing another schema version with what to do about it."""
        try:
            doc: Any = json.loads(path.read_bytes())
        except json.JSONDecodeError as exc:
            raise IncompatibleRunError(f"{path} is not valid JSON: {exc}") from None
        if not isinstance(doc, dict):
            raise IncompatibleRunError(f"{path} must hold a JSON object")
        version = doc.get("schema_version", 1)
        if version != SCHEMA_VERSION:
            commit = (
                (doc.get("git") or {}).get("commit") if isinstance(doc.get("git"), dict) else None
            )
            hint = f" (written at commit {commit[:12]})" if isinstance(commit, str) else ""
            raise IncompatibleRunError(
                f"{path} uses run schema {version}{hint}; this servingbench reads schema "
                f"{SCHEMA_VERSION}. Re-run the benchmark (`make bench`) to get a readable run, "
                "or read this one with the servingbench version that wrote it."
            )
        try:
            return cls.model_validate(doc)
        except ValidationError as exc:
            raise IncompatibleRunError(f"{path} does not match its schema: {exc}") from None
