"""`servingbench report`: a pure function from a run folder to tables, plots and documents in it.

One module per output (GuideLLM's `benchmark/outputs/` layout): `load` reads the folder,
`tables` writes the CSVs; `plots`, `breakdown` and `openloop` describe each figure once
(`figure.FigureSpec`), `gallery` picks the report's figures, `png` draws them for report.md
and `interactive` for report.html; `document` assembles the content once and `markdown` /
`html` render it; `compare` sets a run beside a baseline run; `explore` holds the per-request
views the notebook uses. `build.build_report` runs them all.
"""

from servingbench.report.build import Report, build_report
from servingbench.report.load import RunData, load_run
from servingbench.report.settings import ReportSettings

__all__ = ["Report", "ReportSettings", "RunData", "build_report", "load_run"]
