"""Fixtures shared by the test suite: the repository's paths and one strict build of the book."""

from __future__ import annotations

import contextlib
import fcntl
import fnmatch
import functools
import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]


def _share_the_cores() -> None:
    """On pytest-xdist's workers, each worker's share of the cores for the thread pools of
    PyTorch, OpenMP and the BLAS, in this process and every process it starts (kernels, the
    book's build, make grade). Left alone, each pool takes every core: two workers on two
    cores then run four busy threads whose barriers wait for a descheduled peer, and the
    training test took 5x the CPU time (43 s, not 8.7, measured on 2 cores)."""
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    if workers > 1:
        share = str(max(1, len(os.sched_getaffinity(0)) // workers))
        for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
            os.environ.setdefault(name, share)


_share_the_cores()

#: A course's settings (autograder/settings.py) and make grade's DB=/DEADLINE=: an instructor
#: who exported them would otherwise have the tests grade into their real gradebook.
for _name in ("CONVCOURSE_DB_URL", "CONVCOURSE_EXCHANGE", "CONVCOURSE_COURSE_ID",
              "CONVCOURSE_LATE_PENALTY", "DB", "DEADLINE"):
    os.environ.pop(_name, None)
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


def make_book(*args: str) -> subprocess.CompletedProcess:
    """``make book ARGS`` on the real book, never two at once on book/_build: another test
    process (a pytest-xdist worker, another run in this clone) waits for the lock on book/,
    and its build then finds the execution cache."""
    folder = os.open(BOOK, os.O_RDONLY | os.O_DIRECTORY)
    try:
        fcntl.flock(folder, fcntl.LOCK_EX)  # released when the folder is closed
        return make("book", *args)
    finally:
        os.close(folder)


@pytest.fixture(scope="session")
def built_book() -> BuiltBook:
    """The book built once per session by `make book`: strict, executed, cached."""
    result = make_book()
    log = result.stdout + result.stderr
    assert result.returncode == 0, f"`make book` failed:\n{log[-6000:]}"
    return BuiltBook(html=HTML, log=log)


# --- on pytest-xdist's workers (`make test`: -n logical --dist loadfile) ------------------------
#: Each test file runs on one worker, so that a module's fixture (a graded batch, a generated
#: course) is made once. The files that build or read the book count as one file: one worker
#: builds it, once, and runs them all. (Not xdist_group with --dist loadgroup: under pytest
#: 9.2 it no longer groups anything, pytest-xdist issue 1386.)
BOOK_FILES = "test_book*.py"


def book_file(path: str | Path) -> bool:
    return fnmatch.fnmatch(Path(path).name, BOOK_FILES)


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config, log):
    """--dist loadfile, the book's files one unit of work, and the units handed out in the
    order the workers collected them (below), not by their number of tests."""
    if config.getvalue("dist") != "loadfile":
        return None
    from xdist.scheduler import LoadFileScheduling

    class BookFilesTogether(LoadFileScheduling):
        def _split_scope(self, nodeid: str) -> str:
            file = super()._split_scope(nodeid)
            return BOOK_FILES if book_file(file) else file

    config.option.loadscopereorder = False
    return BookFilesTogether(config, log)


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(config, items):
    """On a worker, the longest work first, so that quick files fill the end of the run: the
    book's files (the build), then each file with a slow test, then the rest; the order of
    the tests of one file is kept."""
    if not hasattr(config, "workerinput"):
        return
    slow = {item.path for item in items if item.get_closest_marker("slow")}
    items.sort(key=lambda item: 0 if book_file(item.path) else 1 if item.path in slow else 2)


#: Where a folder for another user can go: the first whose every parent that user can enter.
SHARED_TEMP = (tempfile.gettempdir(), "/tmp", "/var/tmp", "/dev/shm")


@contextlib.contextmanager
def public_folder(prefix: str, *copies: Path):
    """A fresh folder that every user can enter and read, holding copies of ``copies`` (files
    or folders of the repository, bytecode caches left out), removed afterwards: for a test
    that runs something as another user, whom the clone itself, or pytest's own temporary
    folders (mode 0700), may shut out. Skips where no temporary folder is open to all."""
    base = next((Path(folder) for folder in SHARED_TEMP if Path(folder).is_dir() and all(
        p.stat().st_mode & 0o001 for p in (Path(folder), *Path(folder).parents))), None)
    if base is None:
        pytest.skip(f"no temporary folder that every user can enter: {SHARED_TEMP}")
    folder = Path(tempfile.mkdtemp(prefix=prefix, dir=base))
    try:
        for path in copies:
            if path.is_dir():
                shutil.copytree(path, folder / path.name,
                                ignore=shutil.ignore_patterns("__pycache__"))
            else:
                shutil.copy(path, folder / path.name)
        for path in (folder, *folder.rglob("*")):
            path.chmod(0o755 if path.is_dir() else 0o644)
        yield folder
    finally:
        shutil.rmtree(folder)


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
