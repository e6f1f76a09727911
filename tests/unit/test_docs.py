"""The documentation: the README stays a front page, and every link in it and in docs/ resolves.

`mkdocs build --strict` checks the links between docs/ pages (anchors included, see
`validation` in mkdocs.yml) and that every page is in `nav`. The front pages outside docs/
(README.md, results/README.md) are not part of the site, so their relative links are checked
here, the way GitHub resolves them.
"""

from __future__ import annotations

import collections
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from servingbench.paths import project_root

ROOT = project_root()
README_MAX_LINES = 150
FRONT_PAGES = ("README.md", "results/README.md")
"""Markdown read on GitHub, outside the docs site."""

_FENCE = re.compile(r"^\s*(```|~~~)")
_LINK = re.compile(r"(?<!!)\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")
_HEADING = re.compile(r"^(#{1,6})\s+(.+?)\s*#*\s*$")


def _prose(text: str) -> list[str]:
    """The lines outside fenced code blocks (a `[x](y)` in a code block is not a link)."""
    lines, fenced = [], False
    for line in text.splitlines():
        if _FENCE.match(line):
            fenced = not fenced
        elif not fenced:
            lines.append(line)
    return lines


def github_anchor(heading: str) -> str:
    """The id GitHub gives a heading: its text lower-cased, punctuation dropped, spaces to `-`."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link's text only
    text = re.sub(r"[`*]", "", text).strip().lower()
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def anchors(markdown: Path) -> set[str]:
    """Every heading id of a Markdown file, duplicates numbered `-1`, `-2` as GitHub does."""
    seen: collections.Counter[str] = collections.Counter()
    ids = set()
    for line in _prose(markdown.read_text()):
        match = _HEADING.match(line)
        if match:
            slug = github_anchor(match.group(2))
            ids.add(f"{slug}-{seen[slug]}" if seen[slug] else slug)
            seen[slug] += 1
    return ids


def broken_links(markdown: Path) -> list[str]:
    """The relative links of `markdown` whose file, or heading in that file, does not exist."""
    broken = []
    for line in _prose(markdown.read_text()):
        for target in _LINK.findall(line):
            if re.match(r"[a-z][a-z0-9+.-]*:", target):  # https:, mailto:
                continue
            path, _, anchor = target.partition("#")
            file = (markdown.parent / path).resolve() if path else markdown
            if not file.exists():
                broken.append(f"{target}: no file {file}")
            elif anchor and file.suffix == ".md" and anchor not in anchors(file):
                broken.append(f"{target}: no heading #{anchor} in {file.name}")
    return broken


def _mkdocs_build(config: Path, site: Path) -> subprocess.CompletedProcess[str]:
    """`mkdocs build --strict`, with the network closed: a plugin or theme fetching anything
    (fonts, social cards) fails instead of reaching out."""
    closed = "http://127.0.0.1:9"  # the discard port: nothing listens
    env = {
        **os.environ,
        "NO_MKDOCS_2_WARNING": "1",  # Material's notice about its future, not a build warning
        "HTTP_PROXY": closed,
        "HTTPS_PROXY": closed,
        "http_proxy": closed,
        "https_proxy": closed,
        "NO_PROXY": "",
        "no_proxy": "",
    }
    return subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "-f", str(config), "-d", str(site)],
        capture_output=True,
        text=True,
        check=False,
        env=env,
        cwd=config.parent,
        timeout=120,
    )


def test_readme_is_a_front_page() -> None:
    lines = (ROOT / "README.md").read_text().splitlines()
    assert len(lines) <= README_MAX_LINES, (
        f"README.md has {len(lines)} lines; the manual belongs in docs/ (at most "
        f"{README_MAX_LINES} here)"
    )


@pytest.mark.parametrize("page", FRONT_PAGES)
def test_front_page_links_resolve(page: str) -> None:
    markdown = ROOT / page
    assert _LINK.search(markdown.read_text()), f"{page} links nowhere"
    assert broken_links(markdown) == []


def test_readme_links_every_docs_page() -> None:
    """Where to read on: no page of the manual is out of reach from the front page."""
    linked = {
        (ROOT / target.partition("#")[0]).resolve()
        for line in _prose((ROOT / "README.md").read_text())
        for target in _LINK.findall(line)
    }
    pages = set((ROOT / "docs").glob("*.md"))
    assert pages
    assert sorted(p.name for p in pages - linked) == []


def test_the_link_check_finds_a_missing_file_and_a_missing_heading(tmp_path: Path) -> None:
    (tmp_path / "other.md").write_text("# Other\n\n## A run folder\n\n```\n# not a heading\n```\n")
    page = tmp_path / "README.md"
    page.write_text(
        "# Page\n\n## The instrument (`make calibrate`)\n\n"
        "[ok](other.md) [ok](other.md#a-run-folder) [ok](#the-instrument-make-calibrate) "
        "[ok](https://example.com/x.md)\n"
        "[gone](missing.md) [gone](other.md#not-a-heading) [gone](#nowhere)\n"
        "```\n[in code](not-a-link.md)\n```\n"
    )
    assert [b.split(":")[0] for b in broken_links(page)] == [
        "missing.md",
        "other.md#not-a-heading",
        "#nowhere",
    ]


def test_mkdocs_builds_the_site_strictly_and_offline(tmp_path: Path) -> None:
    site = tmp_path / "site"
    result = _mkdocs_build(ROOT / "mkdocs.yml", site)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "WARNING" not in output, output
    pages = sorted(p.stem for p in (ROOT / "docs").glob("*.md"))
    for page in pages:
        built = site / "index.html" if page == "index" else site / page / "index.html"
        assert built.is_file(), f"{page}.md was not built"
    html = "\n".join(p.read_text() for p in site.rglob("*.html"))
    assert "fonts.googleapis.com" not in html  # theme.font: false
    assert (site / "search" / "search_index.json").is_file()


def test_a_broken_link_fails_the_docs_build(tmp_path: Path) -> None:
    """The strict build is what catches a broken link or anchor: a copy with one must fail."""
    shutil.copy(ROOT / "mkdocs.yml", tmp_path / "mkdocs.yml")
    shutil.copytree(ROOT / "docs", tmp_path / "docs")
    index = tmp_path / "docs" / "index.md"
    index.write_text(index.read_text() + "\n[gone](serving.md#no-such-heading)\n")
    result = _mkdocs_build(tmp_path / "mkdocs.yml", tmp_path / "site")
    assert result.returncode != 0
    assert "no-such-heading" in result.stdout + result.stderr
