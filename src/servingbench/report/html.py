"""`report.html`: the report's blocks as one standalone page with interactive charts.

A figure the document describes (`Image.figure`) is drawn by `interactive` (Plotly): hover
for a value and its interval, click the legend to hide a series, drag to zoom. plotly.js is
embedded once, in the page's head, so the page opens offline, mailed or outside the run folder;
an image without a description is embedded as base64 PNG. Flagged cells get a coloured
background, a tooltip and the same mark as in report.md.
"""

from __future__ import annotations

import base64
from collections.abc import Sequence
from html import escape
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
from servingbench.report.interactive import figure_div, plotly_js

__all__ = ["render_html", "write_html"]

_STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 80em; color: #222; }
table { border-collapse: collapse; margin: 0.5em 0 1.5em; font-variant-numeric: tabular-nums; }
th, td { border: 1px solid #ccc; padding: 0.2em 0.6em; text-align: right; }
th { background: #f0f0f0; }
td.flagged, tr.flagged td { background: #ffe2b8; }
figure { margin: 1em 0; }
img { max-width: 100%; }
"""


def _table(table: Table) -> str:
    head = "".join(f"<th>{escape(h)}</th>" for h in table.header)
    rows = []
    for cells, cell_marks, row_mark in zip(table.rows, table.marked, table.row_marked, strict=True):
        marks = (cell_marks[0] or row_mark, *cell_marks[1:])
        tds = "".join(
            f'<td class="flagged" title="flagged point">{escape(c)} {FLAG_MARK}</td>'
            if m
            else f"<td>{escape(c)}</td>"
            for c, m in zip(cells, marks, strict=True)
        )
        attr = ' class="flagged" title="flagged point"' if row_mark else ""
        rows.append(f"<tr{attr}>{tds}</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"


def _image(root: Path, image: Image) -> str:
    caption = f"<figcaption>{escape(image.caption)} ({escape(image.file)})</figcaption>"
    if image.figure is not None:
        return f"<figure>{figure_div(image.figure)}{caption}</figure>"
    data = base64.b64encode((root / image.file).read_bytes()).decode("ascii")
    return (
        f'<figure><img alt="{escape(image.caption)}" src="data:image/png;base64,{data}">'
        f"{caption}</figure>"
    )


def _block(root: Path, block: Block) -> str:
    match block:
        case Heading(text, level):
            return f"<h{level}>{escape(text)}</h{level}>"
        case Paragraph(text):
            return f"<p>{escape(text)}</p>"
        case Bullets(items):
            return "<ul>" + "".join(f"<li>{escape(i)}</li>" for i in items) + "</ul>"
        case Table():
            return _table(block)
        case Image():
            return _image(root, block)
    raise TypeError(f"unknown block {block!r}")


def render_html(blocks: Sequence[Block], root: Path, title: str) -> str:
    """A complete HTML page; `root` is where the blocks' image files are."""
    body = "\n".join(_block(root, b) for b in blocks)
    charts = any(isinstance(b, Image) and b.figure is not None for b in blocks)
    script = f'<script type="text/javascript">{plotly_js()}</script>' if charts else ""
    return (
        f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{escape(title)}</title><style>{_STYLE}</style>{script}</head>\n"
        f"<body>\n{body}\n</body></html>\n"
    )


def write_html(blocks: Sequence[Block], path: Path, title: str) -> Path:
    atomic_write_text(path, render_html(blocks, path.parent, title))
    return path
