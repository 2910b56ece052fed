"""The hostile corpus (tests/hostile/corpus.py) graded in one batch by ``make grade``'s CLI,
sandboxed, beside two honest learners.

Every entry must score exactly what it deserves, cell by cell; nothing a learner does may
reach another learner's files, the gradebook, grades.csv, the network or files outside its
sandbox, nor outlive it; the gradebook, result.json and grades.csv must agree; and no feedback
may show a line of the hidden tests. What comes back from a sandbox, however forged, must stay
data of bounded size and work for the trusted grader: it never makes the grader read a file,
grow past its memory, overrun a learner's deadline, stop the batch, or put learner-made
markup or control characters into what people read (notes, the terminal).
"""

from __future__ import annotations

import csv
import io
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
CALL_SECONDS, SUBMISSION_SECONDS = 5, 45
LIMITS = ["--call-timeout", str(CALL_SECONDS), "--cells-timeout", "15",  # small: hanging
          "--submission-timeout", str(SUBMISSION_SECONDS)]               # entries cost little
#: The most a trusted grading process may take: about three times what one does.
TRUSTED_MEMORY = 1 << 30
NAMES = [entry.name for entry in ENTRIES]
BY_NAME = {entry.name: entry for entry in ENTRIES}
SOURCE = nbformat.read(REPOSITORY / "solutions" / ASSIGNMENT / FILE, as_version=4)

# Hostile code is never run unsandboxed: without bubblewrap these skip (in CI they fail).
pytestmark = [pytest.mark.sandbox, pytest.mark.slow]


class Background:
    """A thread that runs ``_run`` while the ``with`` block runs; ``_run`` returns once
    ``stopped`` is set, then ``close`` releases what the watcher holds."""

    def __init__(self):
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        raise NotImplementedError

    def close(self) -> None:
        """Nothing to release by default."""

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stopped.set()
        self.thread.join()
        self.close()


class Listener(Background):
    """Counts connections to a TCP port on localhost and to an abstract unix socket."""

    def __init__(self):
        super().__init__()
        self.tcp = socket.create_server(("127.0.0.1", 0))
        self.port = self.tcp.getsockname()[1]
        self.name = f"hostile-corpus-{secrets.token_hex(6)}"
        self.unix = socket.socket(socket.AF_UNIX)
        self.unix.bind("\0" + self.name)
        self.unix.listen()
        self.connections: list[str] = []

    def _run(self) -> None:
        while not self.stopped.is_set():
            for server in select.select([self.tcp, self.unix], [], [], 0.2)[0]:
                connection, address = server.accept()
                self.connections.append(f"{server.family.name} {address!r}")
                connection.close()

    def close(self) -> None:
        self.tcp.close()
        self.unix.close()


class MemoryWatch(Background):
    """The largest peak memory (VmHWM) of the grader's own processes while the batch runs: the
    grade command and what it starts, but not the sandboxes (bwrap and what runs inside)."""

    def __init__(self, pid: int):
        super().__init__()
        self.pid, self.peak = pid, 0

    def trusted(self) -> list[int]:
        children: dict[int, list[tuple[int, str]]] = {}
        for entry in Path("/proc").iterdir():
            try:
                stat = (entry / "stat").read_text() if entry.name.isdigit() else ""
            except OSError:
                continue
            if stat:  # "pid (name) state ppid ...": the name may hold spaces and parentheses
                name, rest = stat[stat.index("(") + 1:stat.rindex(")")], stat[stat.rindex(")") + 2:]
                children.setdefault(int(rest.split()[1]), []).append((int(entry.name), name))
        found, todo = [], [self.pid]
        while todo:
            pid = todo.pop()
            found.append(pid)
            todo += [child for child, name in children.get(pid, []) if name != "bwrap"]
        return found

    def _run(self) -> None:
        while not self.stopped.wait(0.25):
            for pid in self.trusted():
                try:
                    status = Path(f"/proc/{pid}/status").read_text()
                except OSError:
                    continue
                peak = re.search(r"^VmHWM:\s+(\d+) kB", status, re.MULTILINE)
                self.peak = max(self.peak, int(peak.group(1)) << 10 if peak else 0)


def grade(command: list[str], timeout: float) -> tuple[subprocess.CompletedProcess, int]:
    """Run ``make grade``'s command; what it printed, and its processes' peak memory. Past
    ``timeout`` its processes are killed, sandboxes included, and TimeoutExpired raised."""
    process = subprocess.Popen(command, cwd=REPOSITORY, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    with MemoryWatch(process.pid) as watch:
        try:
            stdout, stderr = process.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            for pid in reversed(watch.trusted()):  # a stalled worker would outlive the command
                try:
                    os.kill(pid, signal.SIGKILL)
                except OSError:
                    pass
            process.communicate()
            raise
    return subprocess.CompletedProcess(command, process.returncode, stdout, stderr), watch.peak


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
    peak_memory: int                      # the most any trusted grading process held, bytes

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
        run, peak_memory = grade(
            [sys.executable, "-m", "autograder.grade", ASSIGNMENT, str(submissions),
             "--root", str(root), "--workers", "2", *LIMITS], timeout=900)
        seconds = time.monotonic() - started
        escaped = reap(marker)
    return Batch(root, submissions, targets, before, canaries, run, seconds,
                 listener.connections, escaped, peak_memory)


# --- the batch as a whole ----------------------------------------------------------------------

def test_the_batch_is_graded_to_the_end(batch):
    assert batch.run.returncode == 0, batch.run.stdout[-3000:] + batch.run.stderr[-3000:]
    for name in NAMES:
        assert (batch.folder("autograded", name) / "result.json").is_file(), name


def test_the_summary_and_grades_csv_are_the_graders_own_text(batch):
    """make grade's summary and grades.csv quote learner-made text (a notebook's file name,
    say) as text: no control character reaches the terminal or the file, every line of the
    summary is one the grader starts, and each line of grades.csv is one record."""
    controls = re.compile(r"[\x00-\x09\x0b-\x1f\x7f-\x9f]")
    assert controls.search(batch.run.stdout) is None, batch.run.stdout[-3000:]
    assert controls.search(batch.run.stderr) is None, batch.run.stderr[-3000:]
    started = re.compile(r"Graded \d+ submissions in |Mean score |  \S|Scores: |Gradebook: ")
    assert [line for line in batch.run.stdout.splitlines() if not started.match(line)] == []
    grades = (batch.root / "autograder" / "grades.csv").read_bytes().decode()
    assert controls.search(grades.replace("\r\n", "\n")) is None
    assert len(grades.splitlines()) == len(list(csv.reader(io.StringIO(grades, newline=""))))


def test_the_grader_stays_small(batch):
    """What comes back from a sandbox is bounded data, however it was made: no reply or event
    grows a trusted grading process past TRUSTED_MEMORY."""
    assert batch.peak_memory < TRUSTED_MEMORY, f"{batch.peak_memory >> 20} MiB"


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


@pytest.mark.parametrize("name", [e.name for e in ENTRIES if e.visible is not None])
def test_the_visible_checks_pass_exactly_when_deserved(batch, name):
    """A table of answers to the tests' calls, computed beforehand and pasted into the notebook,
    passes the visible checks it covers (so a cell with visible checks alone would score), while
    the cells' hidden tests fail it (test_each_test_cell_passes_exactly_when_deserved)."""
    tests = batch.result(name)["notebooks"][NOTEBOOK]["tests"]
    expected = BY_NAME[name].expected_visible([t["grade_id"] for t in tests])
    wrong = {t["grade_id"]: t["message"] or "passed" for t in tests
             if t["visible_passed"] is not expected[t["grade_id"]]}
    assert wrong == {}, f"{name}: {BY_NAME[name].what}"


@pytest.mark.parametrize("name", NAMES)
def test_a_learners_own_cell_raises_only_where_meant(batch, name):
    """A scratch cell that raised in the sandbox for a reason the entry does not intend (PyTorch
    is absent there, say) would stop the attack it holds: the entry would pass untested."""
    notes = batch.result(name)["notebooks"][NOTEBOOK]["notes"]
    raised = [note for note in notes if "while it was graded" in note]
    assert bool(raised) is BY_NAME[name].cells_raise, raised or BY_NAME[name].what


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


@pytest.mark.parametrize("name", NAMES)
def test_each_learner_is_graded_within_the_deadline(batch, name):
    """The submission deadline bounds a learner's grading, the grader's own work on what the
    sandbox sent included (give or take the last call and the feedback's rendering)."""
    assert batch.result(name)["seconds"] <= SUBMISSION_SECONDS + CALL_SECONDS + 10


@pytest.mark.parametrize("name", NAMES)
def test_the_feedback_stays_small(batch, name):
    """What a learner's code reports is cut to size: no autograded notebook or feedback page
    passes 1 MB (an honest one is about a third of that)."""
    pages = (batch.folder("autograded", name) / FILE,
             batch.folder("feedback", name) / f"{NOTEBOOK}.html")
    sizes = {page.name: page.stat().st_size for page in pages}
    assert max(sizes.values()) < 1 << 20, sizes


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


def sources(files: dict[str, bytes]) -> str:
    """Every cell's source of the notebooks among these files (by path), one after another."""
    found = []
    for path, content in files.items():
        if not path.endswith(".ipynb"):
            continue
        try:
            cells = nbformat.reads(content.decode(errors="replace"), as_version=4).cells
        except Exception:  # noqa: BLE001, S112  (not a notebook: the not-json entry)
            continue
        found += [cell.source for cell in cells]
    return "\n".join(found)


RELEASED = sources({FILE: (REPOSITORY / "notebooks" / ASSIGNMENT / FILE).read_bytes()})


@pytest.mark.parametrize("name", NAMES)
def test_no_feedback_shows_files_of_the_grading_machine(batch, name):
    """The grader never opens a path that the sandbox names: no feedback quotes the canary, or
    a line of another learner's notebook that is in neither the release nor this learner's."""
    shown = feedback_text(batch, name) + "\n" + html_text(batch, name)
    assert f"a canary: {batch.targets.marker}" not in shown
    known = RELEASED + "\n" + sources(batch.before[name])
    private = {line.strip() for other in VICTIMS if other != name
               for line in sources(batch.before[other]).splitlines()
               if len(line.strip()) >= 30 and line.strip() not in known}
    assert sorted(line for line in private if line in shown) == []


@pytest.mark.parametrize("name", NAMES)
def test_the_notes_are_plain_text(batch, name):
    """The grader's notes (a Markdown cell of the feedback) quote learner-made text (messages,
    class names, cell labels, file names) as text: they render as a bulleted list, with no
    heading, table, link or code block of a learner's making."""
    html = (batch.folder("feedback", name) / f"{NOTEBOOK}.html").read_text()
    title = BeautifulSoup(html, "html.parser").find("strong", string="Notes from the grader")
    if title is None:
        return  # no notes
    notes = title.find_parent(class_="rendered_html")
    assert {tag.name for tag in notes.find_all(True)} <= {"p", "strong", "ul", "li"}, str(notes)


@pytest.mark.parametrize("name", NAMES)
def test_no_feedback_page_carries_a_learners_markup(batch, name):
    html = (batch.folder("feedback", name) / f"{NOTEBOOK}.html").read_text()
    assert re.search(r"<[^>]*\bonerror\s*=", html) is None, MARKUP


# --- the assignment and the wire ----------------------------------------------------------------

@pytest.mark.parametrize("cell", grade_cells(SOURCE), ids=lambda c: nbgrader_meta(c)["grade_id"])
def test_every_graded_cell_has_hidden_tests(cell):
    """A cell with visible tests only is passed by answers hard-coded for their inputs (the
    hard-coded entries pass such checks: test_the_visible_checks_pass_exactly_when_deserved)."""
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
