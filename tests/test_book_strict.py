"""`make book` is strict (execution errors and warnings fail it) and reuses its execution cache."""

from __future__ import annotations

import os
import re
import shutil

import pytest
from conftest import BOOK, make, make_book, toc_pages

# each test runs `make book` on a scratch book or the real one
pytestmark = [pytest.mark.book, pytest.mark.slow]

HEADER = """---
jupytext:
  text_representation:
    extension: .md
    format_name: myst
kernelspec:
  name: python3
  display_name: Python 3
---

# Scratch page

"""


def scratch_book(tmp_path, body: str):
    """A one-page book with the real configuration, to see how `make book` treats ``body``."""
    book = tmp_path / "book"
    book.mkdir()
    shutil.copy(BOOK / "_config.yml", book)
    shutil.copytree(BOOK / "_ext", book / "_ext")
    (book / "_toc.yml").write_text("format: jb-book\nroot: page\n")
    (book / "page.md").write_text(HEADER + body)
    return book


@pytest.mark.parametrize(
    ("body", "builds", "evidence"),
    [
        ("```{code-cell} ipython3\n:tags: [raises-exception]\n1 / 0\n```\n", True, None),
        ("```{code-cell} ipython3\n1 / 0\n```\n", False, "ZeroDivisionError"),
        ("See [a page that does not exist](missing.md).\n", False, "missing"),
    ],
    ids=["tagged-error-is-shown", "execution-error-fails", "broken-link-fails"],
)
def test_make_book_fails_on_errors_and_warnings(tmp_path, body, builds, evidence):
    result = make("book", f"BOOK={scratch_book(tmp_path, body)}")
    log = result.stdout + result.stderr
    assert (result.returncode == 0) == builds, log[-3000:]
    if evidence:
        assert evidence in log


def test_a_rebuild_with_nothing_changed_reuses_the_execution_cache(built_book):
    # --all re-reads every page; each must come from the cache, none be executed again.
    result = make_book("BOOK_ARGS=--all")
    log = result.stdout + result.stderr
    assert result.returncode == 0, log[-3000:]
    assert "Executing" not in log
    cached = set(re.findall(r"book/(\S+)\.md: Using cached notebook", log))
    assert cached == set(toc_pages())


def test_only_a_change_to_the_figure_code_reruns_the_pages(tmp_path):
    package = tmp_path / "package"
    for part in ("figures", "grading"):
        (package / part).mkdir(parents=True)
        (package / part / "helpers.py").write_text(f"# a {part} helper\n")
    book = scratch_book(tmp_path, "```{code-cell} ipython3\n1 + 1\n```\n")

    def build():
        result = make("book", f"BOOK={book}", f"PACKAGE={package}")
        assert result.returncode == 0, (result.stdout + result.stderr)[-3000:]
        return result.stdout + result.stderr

    def touch(path):
        os.utime(path, (path.stat().st_atime, path.stat().st_mtime + 10))

    assert "Executing" in build()
    assert "Executing" not in build()  # nothing changed: the cache answers
    touch(package / "grading" / "helpers.py")
    assert "Executing" not in build()  # the grading code is not the book's
    touch(package / "figures" / "helpers.py")
    assert "Executing" in build()  # the figure code changed: pages run again
