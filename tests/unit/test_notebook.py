"""The exploration notebook runs end to end on a run folder, and is committed without outputs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import nbformat
import pytest
from nbclient import NotebookClient

from servingbench.paths import project_root
from servingbench.report.load import RUN_ENV
from tests.synthetic_run import make_run

NOTEBOOK = project_root() / "notebooks" / "explore_results.ipynb"


def _read() -> Any:
    return nbformat.read(NOTEBOOK, as_version=4)  # type: ignore[no-untyped-call]


def test_notebook_is_committed_without_outputs() -> None:
    nb = _read()
    for cell in nb.cells:
        if cell.cell_type == "code":
            assert cell.outputs == []
            assert cell.execution_count is None


@pytest.mark.integration
def test_notebook_executes_on_a_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    layout = make_run(tmp_path)
    monkeypatch.setenv(RUN_ENV, str(layout.root))  # the kernel inherits this environment
    nb = _read()
    # kernel "python3": ipykernel's own spec, started with this interpreter (the venv's)
    client = NotebookClient(
        nb, kernel_name="python3", timeout=120, resources={"metadata": {"path": str(tmp_path)}}
    )
    client.execute()
    outputs = [o for cell in nb.cells if cell.cell_type == "code" for o in cell.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    text = "".join(o.get("text", "") for o in outputs if o.output_type == "stream")
    assert f"run {layout.run_id}" in text
    images = [o for o in outputs if "image/png" in o.get("data", {})]
    assert len(images) >= 7  # 4 run-level plots and 3 per-request views
