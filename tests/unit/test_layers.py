"""The layering of `src/servingbench`: the import-linter contracts of pyproject.toml are kept
(no import cycle between packages or between the modules of one package; the report never
imports the backend registry), and the check sees an import written inside a function, the
way the old cycles hid."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

from servingbench.paths import project_root

LINT_IMPORTS = Path(sys.executable).parent / "lint-imports"


def _lint(config: Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    """In its own process: import-linter reconfigures logging (muting every other logger) and
    puts its working directory on sys.path."""
    argv = [str(LINT_IMPORTS), "--config", str(config), "--no-cache"]
    return subprocess.run(argv, cwd=cwd, capture_output=True, text=True, timeout=120, check=False)


def test_the_layering_contracts_are_kept() -> None:
    """A broken contract prints the import chain that breaks it."""
    done = _lint(project_root() / "pyproject.toml", project_root())
    assert done.returncode == 0, done.stdout + done.stderr


def _package(root: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))


def test_a_cycle_through_an_import_inside_a_function_is_caught(tmp_path: Path) -> None:
    """The same contracts on a small package whose only cycle closes in a function body, and
    whose report reaches the registry in a function body too: both contracts break."""
    _package(
        tmp_path,
        {
            "layered/__init__.py": "",
            "layered/servers.py": "",
            "layered/report/__init__.py": "",
            "layered/report/plots.py": """
                def draw() -> None:
                    from layered.servers import __name__ as registry
            """,
            "layered/sweep/__init__.py": "",
            "layered/sweep/settings.py": """
                def validate() -> None:
                    from layered.sweep.targets import __name__ as targets
            """,
            "layered/sweep/targets.py": "from layered.sweep.settings import __name__ as s\n",
        },
    )
    pyproject = (project_root() / "pyproject.toml").read_text()
    section = "\n[tool.importlinter]\n"
    contracts = pyproject.partition(section)[2].partition("\n[tool.pytest")[0]
    config = tmp_path / "importlinter.toml"
    config.write_text(section + contracts.replace("servingbench", "layered"))
    done = _lint(config, tmp_path)  # `layered` is importable from the working directory
    out = done.stdout + done.stderr
    assert done.returncode == 1, out
    assert "2 broken" in out, out
    assert "No cycles are allowed in layered.sweep" in out, out
    assert "layered.report.plots -> layered.servers" in out, out
