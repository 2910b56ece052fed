"""The hostile corpus (tests/hostile/corpus.py) graded in one batch by ``make grade``'s CLI,
sandboxed, beside two honest learners.

Every entry must score exactly what it deserves, cell by cell; nothing a learner does may
reach another learner's files, the gradebook, grades.csv, the network or files outside its
sandbox, nor outlive it; the gradebook, result.json and grades.csv must agree; and no feedback
may show a line of the hidden tests.
"""

from __future__ import annotations

import csv
import json
import os
import re
import secrets
import select
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import nbformat
import pytest
from bs4 import BeautifulSoup
from hostile.corpus import (
    ASSIGNMENT,
    ENTRIES,
    FILE,
    INFLATING_REPLY,
    MARKUP,
    NOTEBOOK,
    VICTIMS,
    Kit,
    Targets,
)
from nbgrader.api import Gradebook

from autograder.notebook import grade_cells, hidden_test_lines, nbgrader_meta
from autograder.sandboxed import wire

REPOSITORY = Path(__file__).resolve().parents[1]
LIMITS = ["--call-timeout", "5", "--cells-timeout", "15"]  # small: hanging entries cost little
NAMES = [entry.name for entry in ENTRIES]
BY_NAME = {entry.name: entry for entry in ENTRIES}
SOURCE = nbformat.read(REPOSITORY / "solutions" / ASSIGNMENT / FILE, as_version=4)

# Hostile code is never run unsandboxed: without bubblewrap these skip (in CI they fail).
pytestmark = [pytest.mark.sandbox, pytest.mark.slow]


class Listener:
    """Counts connections to a TCP port on localhost and to an abstract unix socket."""

    def __init__(self):
        self.tcp = socket.create_server(("127.0.0.1", 0))
        self.port = self.tcp.getsockname()[1]
        self.name = f"hostile-corpus-{secrets.token_hex(6)}"
        self.unix = socket.socket(socket.AF_UNIX)
        self.unix.bind("\0" + self.name)
        self.unix.listen()
        self.connections: list[str] = []
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._accept, daemon=True)

    def _accept(self) -> None:
        while not self.stopped.is_set():
            for server in select.select([self.tcp, self.unix], [], [], 0.2)[0]:
                connection, address = server.accept()
                self.connections.append(f"{server.family.name} {address!r}")
                connection.close()

    def __enter__(self) -> Listener:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stopped.set()
        self.thread.join()
        self.tcp.close()
        self.unix.close()


@dataclass
class Batch:
    root: Path
    submissions: Path
    targets: Targets
    before: dict[str, dict[str, bytes]]   # every learner's folder, before grading
    canaries: dict[Path, bytes]           # files hostile code aims at, before grading
    run: subprocess.CompletedProcess
    seconds: float
    connections: list[str]                # what reached the listener
    escaped: list[str]                    # the fork bomb's children alive after grading

    def result(self, student: str) -> dict:
        return json.loads((self.folder("autograded", student) / "result.json").read_text())

    def folder(self, kind: str, student: str) -> Path:
        return self.root / "autograder" / kind / student / ASSIGNMENT


def files(folder: Path) -> dict[str, bytes]:
    """A folder's regular files (not links) by relative path, with their bytes."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*"))
            if p.is_file() and not p.is_symlink()}


def sleepers(marker: str) -> list[int]:
    """Processes running ``sleep MARKER``: the fork bomb's children."""
    found = []
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and (entry / "cmdline").read_bytes().split(b"\0")[:2] == \
                    [b"sleep", marker.encode()]:
                found.append(int(entry.name))
        except OSError:
            continue
    return found


def reap(marker: str) -> list[str]:
    """The fork bomb's children still alive after a grace period (then killed)."""
    deadline = time.monotonic() + 5
    while sleepers(marker) and time.monotonic() < deadline:
        time.sleep(0.2)
    left = sleepers(marker)
    for pid in left:
        os.kill(pid, signal.SIGKILL)
    return [f"pid {pid}" for pid in left]


@pytest.fixture(scope="module")
def batch(tmp_path_factory) -> Batch:
    """Build the course and every learner's folder, then grade them all in one batch."""
    base = tmp_path_factory.mktemp("hostile")
    root, submissions = base / "course", base / "submissions"
    for kind in ("solutions", "notebooks"):
        shutil.copytree(REPOSITORY / kind / ASSIGNMENT, root / kind / ASSIGNMENT)
    marker = f"{5000 + secrets.randbelow(1000)}.{secrets.randbelow(10 ** 6):06d}"
    for canary in (root / "canary.txt", base / "canary.txt"):
        canary.write_text(f"a canary: {marker}\n")
    with Listener() as listener:
        targets = Targets(root, submissions, VICTIMS[0], listener.port, listener.name, marker,
                          base / "canary.txt")
        kit = Kit.for_course(root, targets)
        for entry in ENTRIES:
            (submissions / entry.name).mkdir(parents=True)
            entry.build(kit, submissions / entry.name)
        before = {entry.name: files(submissions / entry.name) for entry in ENTRIES}
        canaries = {path: path.read_bytes() for path in (
            root / "canary.txt", base / "canary.txt", *(root / "solutions").rglob("*.ipynb"),
            *(root / "notebooks").rglob("*.ipynb"))}
        started = time.monotonic()
        run = subprocess.run(
            [sys.executable, "-m", "autograder.grade", ASSIGNMENT, str(submissions),
             "--root", str(root), "--workers", "2", *LIMITS],
            cwd=REPOSITORY, capture_output=True, text=True, timeout=900, check=False)
        seconds = time.monotonic() - started
        escaped = reap(marker)
    return Batch(root, submissions, targets, before, canaries, run, seconds,
                 listener.connections, escaped)


# --- the batch as a whole ----------------------------------------------------------------------

def test_the_batch_is_graded_to_the_end(batch):
    assert batch.run.returncode == 0, batch.run.stdout[-3000:] + batch.run.stderr[-3000:]
    for name in NAMES:
        assert (batch.folder("autograded", name) / "result.json").is_file(), name


def test_nothing_reached_the_network(batch):
    assert batch.connections == []


def test_no_child_outlives_its_sandbox(batch):
    assert batch.escaped == []


def test_canaries_are_unchanged(batch):
    changed = [str(path) for path, content in batch.canaries.items()
               if not path.is_file() or path.read_bytes() != content]
    assert changed == []


def test_no_file_appears_beside_the_course(batch):
    """Hostile code that wrote outside its sandbox would leave files here."""
    assert sorted(p.name for p in batch.root.iterdir()) == ["autograder", "canary.txt",
                                                            "notebooks", "solutions"]
    assert sorted(p.name for p in batch.submissions.iterdir()) == sorted(NAMES)


def test_the_gradebook_agrees_with_result_json_and_grades_csv(batch):
    with (batch.root / "autograder" / "grades.csv").open(newline="") as file:
        rows = {row["student_id"]: row for row in csv.DictReader(file)}
    assert sorted(rows) == sorted(NAMES)
    with Gradebook(f"sqlite:///{batch.root / 'autograder' / 'gradebook.db'}") as gradebook:
        for name in NAMES:
            result = batch.result(name)
            submission = gradebook.find_submission(ASSIGNMENT, name)
            assert (submission.score, submission.max_score) == \
                (result["score"], result["max_score"]), name
            assert (float(rows[name]["score"]), float(rows[name]["max_score"])) == \
                (result["score"], result["max_score"]), name
            cells = {grade.name: grade.score for notebook in submission.notebooks
                     for grade in notebook.grades}
            tests = {t["grade_id"]: t["score"]
                     for t in result["notebooks"][NOTEBOOK]["tests"]}
            assert cells == tests, name


# --- each learner ------------------------------------------------------------------------------

@pytest.mark.parametrize("name", NAMES)
def test_each_test_cell_passes_exactly_when_deserved(batch, name):
    tests = batch.result(name)["notebooks"][NOTEBOOK]["tests"]
    expected = BY_NAME[name].expected([t["grade_id"] for t in tests])
    wrong = {t["grade_id"]: t["message"] or "passed" for t in tests
             if (t["score"] == t["points"]) != expected[t["grade_id"]]}
    assert wrong == {}, f"{name}: {BY_NAME[name].what}"


@pytest.mark.parametrize("name", NAMES)
def test_the_points_are_the_instructors(batch, name):
    points = sum(float(nbgrader_meta(cell)["points"]) for cell in grade_cells(SOURCE))
    assert batch.result(name)["max_score"] == points


@pytest.mark.parametrize("name", NAMES)
def test_a_learners_folder_is_unchanged_and_copied_as_it_was(batch, name):
    assert files(batch.submissions / name) == batch.before[name]
    assert files(batch.folder("submitted", name)) == batch.before[name]


def feedback_text(batch: Batch, name: str) -> str:
    """What the learner reads: the autograded notebook's sources and outputs."""
    notebook = nbformat.read(batch.folder("autograded", name) / FILE, as_version=4)
    parts = []
    for cell in notebook.cells:
        parts.append(cell.source)
        for output in cell.get("outputs", []):
            parts += [output.get("text", ""), output.get("evalue", ""),
                      "\n".join(output.get("traceback", []))]
    return "\n".join(parts)


def html_text(batch: Batch, name: str) -> str:
    html = (batch.folder("feedback", name) / f"{NOTEBOOK}.html").read_text()
    return BeautifulSoup(html, "html.parser").get_text()


@pytest.mark.parametrize("name", [e.name for e in ENTRIES if e.says])
def test_the_feedback_says_why(batch, name):
    text = feedback_text(batch, name)
    missing = [phrase for phrase in BY_NAME[name].says if phrase not in text]
    assert missing == [], text[:3000]


def _hidden_lines() -> list[str]:
    """The hidden tests' lines that appear nowhere in the released notebook."""
    release = nbformat.read(REPOSITORY / "notebooks" / ASSIGNMENT / FILE, as_version=4)
    public = {line.strip() for cell in release.cells for line in cell.source.splitlines()}
    return [line for cell in grade_cells(SOURCE) for line in hidden_test_lines(cell)
            if len(line) > 25 and line not in public]


HIDDEN = _hidden_lines()


@pytest.mark.parametrize("name", NAMES)
def test_no_feedback_shows_hidden_tests(batch, name):
    shown = {"autograded notebook": feedback_text(batch, name),
             "feedback page": html_text(batch, name)}
    leaks = [(where, line) for where, text in shown.items() for line in HIDDEN if line in text]
    assert leaks == []


@pytest.mark.parametrize("name", NAMES)
def test_no_feedback_page_carries_a_learners_markup(batch, name):
    html = (batch.folder("feedback", name) / f"{NOTEBOOK}.html").read_text()
    assert re.search(r"<[^>]*\bonerror\s*=", html) is None, MARKUP


# --- the assignment and the wire ----------------------------------------------------------------

@pytest.mark.parametrize("cell", grade_cells(SOURCE), ids=lambda c: nbgrader_meta(c)["grade_id"])
def test_every_graded_cell_has_hidden_tests(cell):
    """A cell with visible tests only is passed by answers hard-coded for their inputs."""
    assert hidden_test_lines(cell)


def test_a_forged_reply_cannot_inflate_in_the_grader():
    """A few MB of deflated .npz written by the learner's code in the runner's place must be
    refused before it is inflated, not become hundreds of MB in the trusted grader."""
    namespace: dict = {}
    exec("import numpy as np\n" + INFLATING_REPLY, namespace)  # noqa: S102  (our own snippet)
    blob = namespace["_inflating_archive"](320 << 20)
    assert len(blob) < wire.MAX_MESSAGE // 16
    with pytest.raises(wire.WireError):
        wire.unpack(b'{"ok": true}', blob)
