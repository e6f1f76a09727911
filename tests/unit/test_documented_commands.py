"""Every command the docs show is one the code accepts: README.md and docs/**/*.md, read as a
reader copies from them, through the real parser and settings validation, running nothing.

Commands are taken from shell blocks (```bash and the like: a line, with `\\` continuations
joined; untagged blocks are layouts and diagrams) and from inline code spans (which may wrap).
`make TARGET VAR=...` becomes the servingbench command its Makefile recipe runs (`$(SB) bench
$(ARGS)`), with the variables given; `servingbench ...` and `.venv/bin/servingbench ...` are
read directly. In the docs, `<name>` is a placeholder (filled
with a dummy word) and `...` stands for what the reader fills in (dropped with the flag before
it). An inline span naming a bare command (`make bench`, `servingbench worker`) only has to name
one that exists; a fenced line is checked in full.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import re
import shlex
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from servingbench.cli import COMMANDS, _build_parser
from servingbench.commands import bench
from servingbench.commands.stack_options import settings_from_args
from servingbench.paths import project_root
from servingbench.sweep.settings import BenchSettings, load_settings

ROOT = project_root()
PLACEHOLDER = "placeholder"
SHELL_BLOCKS = ("bash", "sh", "shell", "console", "zsh", "shell-session")

KNOWN_DOC_ERRORS: dict[str, str] = {}
"""Documented commands known to be wrong until the doc text is fixed (a strict xfail: when the
text is fixed, the entry must go, see `test_known_doc_errors_are_still_in_the_docs`)."""


def _sweep_settings(args: argparse.Namespace) -> BenchSettings:
    return load_settings(args.config, bench.cli_overrides(args), quick=args.quick)


VALIDATE: dict[str, Callable[[argparse.Namespace], Any]] = {
    "bench": _sweep_settings,
    "calibrate": _sweep_settings,  # calibrate takes the sweep's settings and flags
    "serve-all": settings_from_args,
}
"""The settings each command builds before it starts anything (what its `run` does first)."""


@dataclass(frozen=True)
class Documented:
    where: str  # file:line
    text: str  # the command as the docs show it
    argv: list[str] | None  # servingbench's argv; None: a make target that runs no servingbench
    full: bool  # checked in full (else: only that the command exists)
    make_target: str | None = None

    def __str__(self) -> str:
        return f"{self.where}: {self.text}"


def _doc_files() -> list[Path]:
    return [ROOT / "README.md", *sorted((ROOT / "docs").glob("**/*.md"))]


def _snippets(text: str) -> Iterator[tuple[int, str, bool]]:
    """(line number, text, fenced?) of every command-like line or inline span."""
    fence = re.compile(r"^(```|~~~) *([\w-]*)[^\n]*\n(.*?)^\1", re.MULTILINE | re.DOTALL)
    for match in fence.finditer(text):
        if match.group(2) not in SHELL_BLOCKS:
            continue
        first = text.count("\n", 0, match.start(3)) + 1
        lines = match.group(3).split("\n")
        i = 0
        while i < len(lines):
            start, joined = first + i, lines[i]
            while joined.rstrip().endswith("\\") and i + 1 < len(lines):
                i += 1
                joined = joined.rstrip()[:-1] + " " + lines[i].strip()
            yield start, joined, True
            i += 1
    prose = fence.sub(lambda m: "\n" * m.group(0).count("\n"), text)
    for match in re.finditer(r"(?<!`)`([^`]+)`(?!`)", prose):
        if "\n\n" not in match.group(1):
            line = prose.count("\n", 0, match.start()) + 1
            yield line, " ".join(match.group(1).split()), False


def _makefile_recipes() -> dict[str, str | None]:
    """Make target -> the servingbench command line its recipe runs (None: it runs none)."""
    recipes: dict[str, str | None] = {}
    target = None
    for line in (ROOT / "Makefile").read_text().splitlines():
        head = re.match(r"^([a-z][a-z-]*):", line)
        if head:
            target = head.group(1)
            recipes[target] = None
        elif target and line.startswith("\t"):
            run = re.search(r"\$\(SB\) ([^;]*)", line)
            if run:
                recipes[target] = run.group(1)
        elif line.strip() and not line.startswith(("ifeq", "else", "endif", "#")):
            target = None
    return recipes


def _expand(recipe: str, variables: dict[str, str]) -> str:
    """The recipe's `$(VAR)` and `$(if $(VAR),TEXT)`, as make expands them."""
    text = re.sub(r"\$\((\w+)\)", lambda m: variables.get(m.group(1), ""), recipe)
    return re.sub(r"\$\(if ([^,]*),([^)]*)\)", lambda m: m.group(2) if m.group(1) else "", text)


def _tokens(text: str) -> list[list[str]]:
    """Shell words of each command in `text` (split at `&&`, `||`, `;`, `|`; comments off)."""
    text = re.sub(r"<([a-z][\w-]*)>", PLACEHOLDER, text)
    try:
        words = shlex.split(text, comments=True)
    except ValueError:
        return []
    out: list[list[str]] = []
    current: list[str] = []
    for word in words:
        if word in ("&&", "||", ";", "|"):
            out.append(current)
            current = []
        else:
            current.append(word)
    return [*out, current]


def _fill_in(argv: list[str]) -> list[str]:
    """Drop each `...` the reader fills in, with the flag it belongs to."""
    out: list[str] = []
    for word in argv:
        if word in ("...", "…"):
            if out and out[-1].startswith("-"):
                out.pop()
            continue
        out.append(word)
    return out


def _documented_in(
    path: Path, recipes: dict[str, str | None], root: Path = ROOT
) -> Iterator[Documented]:
    name = path.relative_to(root).as_posix()
    for line, text, fenced in _snippets(path.read_text()):
        for words in _tokens(text):
            if not words:
                continue
            where = f"{name}:{line}"
            if words[0] == "make" and len(words) > 1:
                variables = dict(w.split("=", 1) for w in words[1:] if "=" in w)
                for target in [w for w in words[1:] if "=" not in w and not w.startswith("-")]:
                    recipe = recipes.get(target)
                    argv = None
                    if recipe is not None:
                        argv = _fill_in(shlex.split(_expand(recipe, variables)))
                    yield Documented(where, text, argv, fenced or bool(variables), target)
            elif Path(words[0]).name == "servingbench" and len(words) > 1:
                yield Documented(where, text, _fill_in(words[1:]), fenced or len(words) > 2)


def documented_commands() -> list[Documented]:
    recipes = _makefile_recipes()
    return [cmd for path in _doc_files() if path.is_file() for cmd in _documented_in(path, recipes)]


DOCUMENTED = documented_commands()


def _known_error(command: Documented) -> str | None:
    return next((why for text, why in KNOWN_DOC_ERRORS.items() if text in command.text), None)


def _cases() -> list[Any]:
    cases = []
    for command in DOCUMENTED:
        why = _known_error(command)
        marks = [pytest.mark.xfail(reason=why, strict=True, raises=AssertionError)] if why else []
        cases.append(pytest.param(command, id=str(command)[:120], marks=marks))
    return cases


@pytest.fixture(autouse=True)
def _no_settings_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Only the documented command counts, not the shell running the tests; paths such as
    `--config loadtests/...` are relative to the checkout, as the docs assume."""
    for name in [n for n in os.environ if n.startswith("SERVINGBENCH_")]:
        monkeypatch.delenv(name)
    monkeypatch.chdir(ROOT)


def _check(command: Documented) -> None:
    if command.make_target is not None:
        assert command.make_target in _makefile_recipes(), f"{command}: no such make target"
    argv = command.argv
    if argv is None:
        return
    if argv[0] == PLACEHOLDER:  # `servingbench <command> --help`: any command
        return
    assert argv[0] in COMMANDS, f"{command}: no servingbench command {argv[0]!r}"
    if not command.full or {"-h", "--help"} & set(argv):
        return
    errors = io.StringIO()
    try:
        with contextlib.redirect_stderr(errors):
            args = _build_parser(argv[0]).parse_args(argv)
    except SystemExit:
        message = f"{command}\n  servingbench {shlex.join(argv)}\n{errors.getvalue()}"
        raise AssertionError(message) from None
    validate = VALIDATE.get(argv[0])
    if validate is not None:
        try:
            validate(args)
        except (ValueError, FileNotFoundError) as exc:  # pydantic's ValidationError included
            raise AssertionError(f"{command}\n  invalid settings: {exc}") from None


@pytest.mark.parametrize("command", _cases())
def test_documented_command_is_accepted(command: Documented) -> None:
    _check(command)


def test_the_docs_show_commands_of_each_kind() -> None:
    """The reader above finds what the README shows (so the check cannot pass on nothing)."""
    targets = {c.make_target for c in DOCUMENTED if c.full}
    assert {"bench", "parity", "report", "serve-all"} <= targets
    direct = {c.argv[0] for c in DOCUMENTED if c.make_target is None and c.argv and c.full}
    assert {"compare", "worker"} <= direct
    assert any(c.argv and "--config" in c.argv for c in DOCUMENTED)


def test_known_doc_errors_are_still_in_the_docs() -> None:
    stale = [text for text in KNOWN_DOC_ERRORS if not any(text in c.text for c in DOCUMENTED)]
    assert not stale, f"the docs no longer show {stale}: remove them from KNOWN_DOC_ERRORS"


SAMPLE = """\
Run `make bench ARGS="--quick
--scenarios fastapi-rest"` or `servingbench worker`.

```bash
make train && make bench ARGS="--target mlserver-rest=http://h:1 \\
                 --scenarios mlserver-rest"   # a comment
.venv/bin/servingbench compare <run> <baseline>
make report RUN=<run-id>
make bench ARGS="--remote-workers 2 --target ..."
```
"""


def test_the_reader_finds_what_a_reader_copies(tmp_path: Path) -> None:
    doc = tmp_path / "README.md"
    doc.write_text(SAMPLE)
    found = [
        (c.where, c.make_target, c.argv, c.full)
        for c in _documented_in(doc, _makefile_recipes(), tmp_path)
    ]
    targeted = ["--target", "mlserver-rest=http://h:1", "--scenarios", "mlserver-rest"]
    assert [(where.split(":")[1], *rest) for where, *rest in found] == [
        ("5", "train", ["train"], True),
        ("5", "bench", ["bench", *targeted], True),
        ("7", None, ["compare", PLACEHOLDER, PLACEHOLDER], True),
        ("8", "report", ["report", "--run", PLACEHOLDER], True),
        ("9", "bench", ["bench", "--remote-workers", "2"], True),
        ("1", "bench", ["bench", "--quick", "--scenarios", "fastapi-rest"], True),
        ("2", None, ["worker"], False),
    ]


def test_a_wrong_flag_is_reported_with_the_parsers_message() -> None:
    text = 'make bench ARGS="--targets compose"'
    wrong = Documented("README.md:1", text, ["bench", "--targets", "compose"], True, "bench")
    with pytest.raises(AssertionError, match="unrecognized arguments: --targets compose"):
        _check(wrong)


def test_invalid_settings_are_reported() -> None:
    wrong = Documented("README.md:1", "x", ["bench", "--concurrency", "0"], True, "bench")
    with pytest.raises(AssertionError, match=r"(?s)invalid settings: .*values must be >= 1"):
        _check(wrong)
