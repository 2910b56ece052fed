"""Fixtures shared by the test suite: the repository's paths and one strict build of the book."""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
BOOK = ROOT / "book"
HTML = BOOK / "_build" / "html"


def make(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    """Run ``make ARGS`` in the repository, as a user would, with output captured as text."""
    return subprocess.run(
        ["make", "--no-print-directory", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        env={**os.environ, "NO_COLOR": "1"},
        check=False,
    )


def toc_pages(toc_file: Path = BOOK / "_toc.yml") -> list[str]:
    """Every page of the book's table of contents, in reading order (names without suffix)."""
    toc = yaml.safe_load(toc_file.read_text())
    pages = [toc["root"]]

    def walk(entries):
        for entry in entries:
            if "file" in entry:
                pages.append(entry["file"])
            walk(entry.get("sections", []))
            walk(entry.get("chapters", []))

    walk(toc.get("parts", []))
    return pages


@dataclass(frozen=True)
class BuiltBook:
    html: Path
    log: str

    def page(self, name: str) -> Path:
        return self.html / f"{name}.html"


@pytest.fixture(scope="session")
def built_book() -> BuiltBook:
    """The book built once per session by `make book`: strict, executed, cached."""
    result = make("book")
    log = result.stdout + result.stderr
    assert result.returncode == 0, f"`make book` failed:\n{log[-6000:]}"
    return BuiltBook(html=HTML, log=log)
