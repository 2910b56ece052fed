"""The book's sources follow the conventions: one MyST page per toc entry, JB2-compatible MyST."""

from __future__ import annotations

import re

import pytest
import yaml
from conftest import BOOK, toc_pages

PAGES = toc_pages()
# MyST that Jupyter Book 2 does not read, or that the design rules out.
FORBIDDEN = {
    "{eval-rst}": "raw reST",
    "{glue": "glue (use an executed cell instead)",
    "{eval}": "inline evaluation",
    "```{raw}": "raw blocks",
}


def test_every_book_source_is_in_the_toc_and_every_toc_entry_exists():
    sources = {
        p.relative_to(BOOK).with_suffix("").as_posix()
        for p in BOOK.rglob("*.md")
        if "_build" not in p.parts and p.name not in ("STYLE.md", "AUDIT.md")  # guides, not pages
    }
    assert sources == set(PAGES)


@pytest.mark.parametrize("page", PAGES)
def test_pages_are_myst_notebooks_with_a_jupytext_header(page):
    text = (BOOK / f"{page}.md").read_text(encoding="utf-8")
    assert re.fullmatch(r"[a-z0-9-]+(/[a-z0-9-]+)?", page), f"{page}: use lowercase kebab-case"
    header = yaml.safe_load(text.split("---")[1])
    assert header["jupytext"]["text_representation"]["format_name"] == "myst"
    assert header["kernelspec"]["name"] == "python3"
    for marker, why in FORBIDDEN.items():
        assert marker not in text, f"{page} uses {why}"


def test_each_assignment_comes_after_the_pages_it_says_to_read_first():
    # The assignments' table names, per assignment, its pages and the chapters to read first.
    table = (BOOK / "assignments" / "index.md").read_text(encoding="utf-8")
    rows = [line for line in table.splitlines() if re.match(r"\| \d \|", line)]
    assert len(rows) == 4
    for row in rows:
        cells = row.split("|")
        own = {f"assignments/{name}" for name in re.findall(r"\]\(([a-z-]+)\.md\)", cells[2])}
        first = {re.sub(r"^\.\./", "", name) for name in re.findall(r"\]\(([a-z./-]+)\.md\)",
                                                                     cells[5])}
        assert own and own <= set(PAGES), row
        for page in first:
            assert PAGES.index(page) < min(PAGES.index(p) for p in own), (page, own)
        # and before the performance chapter, which builds on the assignments' code
        assert max(PAGES.index(p) for p in own) < PAGES.index("performance/algorithms"), own
