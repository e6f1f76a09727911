"""`report.md`: the report's blocks as GitHub-flavoured Markdown (plots as relative image links)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from servingbench.atomic import atomic_write_text
from servingbench.report.document import (
    FLAG_MARK,
    Block,
    Bullets,
    Heading,
    Image,
    Paragraph,
    Table,
)

__all__ = ["render_markdown", "write_markdown"]


def _cell(text: str, marked: bool) -> str:
    text = text.replace("|", "\\|")
    return f"{text} {FLAG_MARK}" if marked else text


def _table(table: Table) -> str:
    lines = [
        "| " + " | ".join(table.header) + " |",
        "|" + "|".join("---" for _ in table.header) + "|",
    ]
    for cells, cell_marks, row_mark in zip(table.rows, table.marked, table.row_marked, strict=True):
        # a flagged row is marked once, on its first cell, to keep the numbers readable
        marks = (cell_marks[0] or row_mark, *cell_marks[1:])
        lines.append("| " + " | ".join(map(_cell, cells, marks)) + " |")
    return "\n".join(lines)


def _block(block: Block) -> str:
    match block:
        case Heading(text, level):
            return f"{'#' * level} {text}"
        case Paragraph(text):
            return text
        case Bullets(items):
            return "\n".join(f"- {item}" for item in items)
        case Table():
            return _table(block)
        case Image(file, caption):
            return f"![{caption}]({file})"
    raise TypeError(f"unknown block {block!r}")


def render_markdown(blocks: Sequence[Block]) -> str:
    return "\n\n".join(_block(b) for b in blocks) + "\n"


def write_markdown(blocks: Sequence[Block], path: Path) -> Path:
    atomic_write_text(path, render_markdown(blocks))
    return path
