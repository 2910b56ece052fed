"""Fixtures shared by the test suite: the repository's paths and one strict build of the book."""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
#: Under CI=true every test must run: `make test` installs what they need (test-packages).
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
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


@functools.cache
def browser_problem() -> str | None:
    """Why headless Chromium cannot run the browser tests here (None: it can)."""
    missing = [name for name in ("chromium", "chromedriver") if shutil.which(name) is None]
    if missing:
        return (f"{' and '.join(missing)} not found: install Debian's chromium and "
                "chromium-driver (make test installs them)")
    return None


@functools.cache
def sandbox_problem() -> str | None:
    """Why the grader's bubblewrap sandbox cannot run here (None: it can)."""
    from autograder.sandbox import bwrap_problem

    return bwrap_problem()


#: The markers that say a test needs something of the machine, and how to find it missing.
NEEDS = {"browser": browser_problem, "sandbox": sandbox_problem}


def pytest_runtest_setup(item):
    """A test that needs Chromium or the sandbox skips where it is missing, saying what to
    install."""
    for marker, problem in NEEDS.items():
        if item.get_closest_marker(marker) and (why := problem()):
            pytest.skip(f"needs the {marker}: {why}")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """In CI nothing skips: a skip there would turn a check that never ran green."""
    report = (yield).get_result()
    if IN_CI and report.skipped and not hasattr(report, "wasxfail"):
        reason = report.longrepr[-1] if isinstance(report.longrepr, tuple) else report.longrepr
        report.outcome = "failed"
        report.longrepr = f"CI runs every test, but this one skipped: {reason}"
