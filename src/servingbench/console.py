"""Plain-text tables for command output (no pandas import just to print a few rows)."""

from __future__ import annotations

from collections.abc import Sequence

__all__ = ["format_table", "mib"]


def format_table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """Left-aligned columns separated by two spaces, with a dashed rule under the header."""
    cells = [[str(h) for h in headers], *[[str(c) for c in row] for row in rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    lines = [
        "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in cells
    ]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def mib(n_bytes: int) -> str:
    return f"{n_bytes / 2**20:.0f} MiB"
