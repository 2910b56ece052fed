"""Grade one submitted notebook: the learner's cells run in the sandbox, the instructor's
tests run here, against the learner's functions through stand-ins (:mod:`autograder.remote`).

What the sandbox runs: every code cell of the submission in its order, except the graded
test cells and the instructor's cells tagged ``skip-when-grading`` (demonstrations and timings
that define nothing a learner's code uses), with locked cells put back as the instructor
wrote them (as nbgrader does).
What the grader runs: the source notebook's cells tagged ``test-setup`` (imports and helpers
the tests need), then each graded test cell, hidden tests included. A test cell scores its
points when it raises nothing, else 0 with the exception's message as feedback; tracebacks,
which would show the hidden tests' source, are never kept.
"""

from __future__ import annotations

import contextlib
import copy
import html
import io
import re
import time
import warnings
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import nbformat

from autograder import wire
from autograder.remote import RemoteClass, RemoteFunction
from autograder.sandbox import Limits, Sandbox, SandboxDied, SandboxTimeout, SandboxUnavailable

#: Cells of the source notebook that the grader runs before the tests (imports, helpers).
SETUP_TAG = "test-setup"
#: Locked cells the sandbox leaves out: they only demonstrate or time things.
SKIP_TAG = "skip-when-grading"
MAX_NOTEBOOK_BYTES = 20 << 20
MAX_MESSAGE = 3000


class SetupError(RuntimeError):
    """The instructor's own test set-up failed: grading cannot run (not the learner's fault)."""


def nbgrader_meta(cell) -> dict:
    meta = cell.get("metadata", {}).get("nbgrader", {}) if isinstance(cell, dict) else {}
    return meta if isinstance(meta, dict) else {}


HIDDEN_TESTS = ("### BEGIN HIDDEN TESTS", "### END HIDDEN TESTS")


def hidden_test_lines(cell) -> list[str]:
    """The non-blank lines of a test cell's hidden tests (none: the cell has no hidden tests)."""
    begin, end = HIDDEN_TESTS
    if begin not in cell.source:
        return []
    region = cell.source.split(begin, 1)[1].split(end, 1)[0]
    return [line.strip() for line in region.splitlines() if line.strip()]


def grade_cells(notebook) -> list:
    return [c for c in notebook.cells if nbgrader_meta(c).get("grade")
            and not nbgrader_meta(c).get("solution") and c.cell_type == "code"]


def answer_names(notebook) -> list[str]:
    """The functions and classes the learner writes: the answer cells' grade_ids."""
    return [nbgrader_meta(c)["grade_id"] for c in notebook.cells
            if nbgrader_meta(c).get("solution") and c.cell_type == "code"]


@dataclass
class TestResult:
    grade_id: str
    points: float
    score: float
    message: str | None = None  # why it failed; None when it passed


@dataclass
class NotebookResult:
    name: str
    tests: list[TestResult]
    problem: str | None = None            # why nothing could be graded (no or broken notebook)
    notes: list[str] = field(default_factory=list)  # cells stopped, sandbox deaths …
    printed: str = ""
    feedback: nbformat.NotebookNode | None = None

    @property
    def score(self) -> float:
        return sum(t.score for t in self.tests)

    @property
    def max_score(self) -> float:
        return sum(t.points for t in self.tests)


def ungraded(source, release, name: str, problem: str) -> NotebookResult:
    """The result of a notebook that could not be graded at all: every test 0, and why."""
    tests = [TestResult(nbgrader_meta(c)["grade_id"], float(nbgrader_meta(c)["points"]), 0.0,
                        problem) for c in grade_cells(source)]
    result = NotebookResult(name, tests, problem=problem)
    result.feedback = feedback_notebook(release, None, result, {})
    return result


# --- finding and reading the submission ----------------------------------------------------------

def submitted_notebooks(folder: Path) -> list[Path]:
    """The notebooks under ``folder``, shallowest first. Only plain files inside it count:
    a link could point at the solutions (or anywhere else on this machine)."""
    if not folder.is_dir() or folder.is_symlink():
        return []
    inside = folder.resolve()
    found = [path for path in folder.rglob("*.ipynb")
             if not any(part.startswith(".") or part == "__MACOSX"
                        for part in path.relative_to(folder).parts)
             and not path.is_symlink() and path.is_file()
             and path.resolve().is_relative_to(inside)]
    return sorted(found, key=lambda path: (len(path.parts), str(path)))


def _name_key(name: str) -> str:
    return re.sub(r"[^a-z0-9]", "", Path(name).stem.lower())


def choose_notebook(candidates: list[Path], expected: str, *, alone: bool) -> Path | None:
    """The submitted notebook to grade as ``expected``: one of that name; else one whose name
    contains it, give or take case and punctuation (``Conv2d_NumPy (1).ipynb``); else, where the
    assignment has one notebook, the only notebook submitted."""
    for path in candidates:
        if path.name == expected:
            return path
    key = _name_key(expected)
    for path in candidates:
        if key in _name_key(path.name):
            return path
    return candidates[0] if alone and len(candidates) == 1 else None


def read_submission(path: Path) -> nbformat.NotebookNode:
    """The submitted notebook, or ValueError saying why it cannot be read."""
    if not path.is_file():
        raise ValueError(f"no notebook named {path.name} was submitted")
    if path.stat().st_size > MAX_NOTEBOOK_BYTES:
        raise ValueError(f"{path.name} is larger than {MAX_NOTEBOOK_BYTES >> 20} MB")
    try:
        notebook = nbformat.reads(path.read_text(encoding="utf-8", errors="replace"),
                                  as_version=4)
        cells = notebook.cells
        assert isinstance(cells, list)
    except Exception as error:  # noqa: BLE001  (any way of not being a notebook)
        raise ValueError(f"{path.name} is not a valid Jupyter notebook ({type(error).__name__}: "
                         f"{str(error)[:300]})") from None
    return notebook


def learner_program(submission, source) -> list[dict]:
    """The cells the sandbox runs, in the submission's order (see the module's docstring)."""
    left_out = {nbgrader_meta(c)["grade_id"] for c in grade_cells(source)}
    left_out |= {nbgrader_meta(c).get("grade_id") for c in source.cells
                 if SKIP_TAG in c.metadata.get("tags", []) and nbgrader_meta(c).get("locked")}
    locked = {nbgrader_meta(c)["grade_id"]: c.source for c in source.cells
              if c.cell_type == "code" and nbgrader_meta(c).get("locked")
              and not nbgrader_meta(c).get("grade") and not nbgrader_meta(c).get("solution")}
    program, seen = [], set()
    for index, cell in enumerate(submission.cells):
        if not isinstance(cell, dict) or cell.get("cell_type") != "code":
            continue
        grade_id = nbgrader_meta(cell).get("grade_id")
        grade_id = grade_id if isinstance(grade_id, str) else None
        if grade_id in left_out:
            continue
        code = locked[grade_id] if grade_id in locked else cell.get("source", "")
        seen.add(grade_id)
        program.append({"label": grade_id or f"{index + 1}", "source": str(code)})
    missing = [{"label": nbgrader_meta(c)["grade_id"], "source": c.source}
               for c in source.cells if SETUP_TAG in c.metadata.get("tags", [])
               and nbgrader_meta(c).get("grade_id") not in seen]
    return missing + program  # a deleted set-up cell (the imports) is put back first


class Session:
    """The sandbox for one notebook, as the stand-ins' channel: started on first use; after
    a death or a timeout, started again for the next call, until one function has caused
    ``limits.restarts`` of them (it is then no longer called)."""

    def __init__(self, program: list[dict], names: list[str], *, slot: int, limits: Limits,
                 isolated: bool = True):
        self.program, self.names = program, names
        self.slot, self.limits, self.isolated = slot, limits, isolated
        self.sandbox: Sandbox | None = None
        self.deadline = time.monotonic() + limits.submission_seconds
        self.skipped: set[int] = set()           # program indices left out
        self.errors: dict[str, dict] = {}        # cell label -> the learner's exception
        self.kinds: dict[str, str] = {}
        self.deaths: Counter = Counter()
        self.disabled: dict[str, str] = {}
        self.notes: list[str] = []
        self.printed = ""

    def __enter__(self) -> Session:
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def stop(self) -> None:
        if self.sandbox is not None:
            self.sandbox.kill()
            self.printed = self.sandbox.printed()
            self.sandbox = None

    def left(self) -> float:
        return self.deadline - time.monotonic()

    def start(self) -> None:
        """Start a sandbox and run the learner's cells; a cell that hangs or kills the
        process is left out and the rest run again without it (at most three times)."""
        for _ in range(4):
            sandbox = Sandbox(self.slot, self.limits, isolated=self.isolated)
            sandbox.start()
            running = [i for i in range(len(self.program)) if i not in self.skipped]
            deadline = time.monotonic() + min(self.limits.cells_seconds, max(self.left(), 1))
            current = None
            try:
                sandbox.send({"cells": [self.program[i] for i in running], "names": self.names},
                             deadline=deadline)
                while True:
                    event, _ = sandbox.receive(deadline=deadline)
                    if event.get("event") == "cell":
                        current = running[int(event["index"])]
                        continue
                    break
            except (SandboxTimeout, SandboxDied, wire.WireError) as failure:
                sandbox.kill()
                self.printed = sandbox.printed()
                if current is None:  # before any learner code ran: the grader's failure
                    raise SandboxUnavailable(f"the sandbox did not start: {failure} "
                                             f"{self.printed[-500:]}") from None
                label = self.program[current]["label"]
                why = (f"did not finish within {self.limits.cells_seconds:g} s"
                       if isinstance(failure, SandboxTimeout) else f"stopped the process: "
                       f"{failure}")
                self.skipped.add(current)
                self.notes.append(f"Your cell {label} {why}; it was left out and the other "
                                  "cells were run again without it.")
                continue
            errors = event.get("errors") or []
            self.errors = {self.program[i]["label"]: error
                           for i, error in zip(running, errors, strict=False) if error}
            self.kinds = {str(k): str(v) for k, v in (event.get("names") or {}).items()}
            self.sandbox = sandbox
            return
        self.notes.append("Your cells were left out one after another; grading went on "
                          "without them.")
        self.kinds = {}

    def request(self, header: dict, arrays) -> tuple[dict, dict]:
        subject = header.get("name") or header.get("subject") or "your code"
        if subject in self.disabled:
            raise SandboxDied(self.disabled[subject])
        if self.left() <= 0:
            raise SandboxTimeout(f"the {self.limits.submission_seconds:g} s this notebook may "
                                 "take are used up")
        if self.sandbox is None:
            self.start()
        timeout = min(self.limits.call_seconds, self.left())
        try:
            return self.sandbox.request(header, arrays, timeout=timeout)
        except SandboxTimeout:
            failure = SandboxTimeout(f"{subject} did not answer within {timeout:g} s (an "
                                     "endless loop, or far too slow?), so it was stopped")
        except (SandboxDied, wire.WireError) as died:
            failure = SandboxDied(f"the sandbox stopped while running {subject}: {died}")
        self.stop()
        self.deaths[subject] += 1
        if self.deaths[subject] >= self.limits.restarts:
            self.disabled[subject] = f"{failure} — {subject} is not called again"
        self.notes.append(str(failure))
        raise failure


# --- what runs here ----------------------------------------------------------------------------

@contextlib.contextmanager
def _quiet():
    """The tests' printing and warnings are not feedback."""
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()), \
            warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


def trusted_namespace(source) -> dict:
    """Run the source notebook's ``test-setup`` cells here: the tests' imports and helpers."""
    namespace: dict = {"__name__": "__grader__"}
    with _quiet():
        for cell in source.cells:
            if cell.cell_type == "code" and SETUP_TAG in cell.metadata.get("tags", []):
                try:
                    exec(compile(cell.source, "<test set-up>", "exec"), namespace)  # noqa: S102
                except Exception as error:  # noqa: BLE001
                    raise SetupError(f"the test set-up cell {nbgrader_meta(cell).get('grade_id')}"
                                     f" failed: {type(error).__name__}: {error}") from None
    return namespace


def _missing_message(name: str, session: Session) -> str:
    """Why a function or class the tests need is not defined."""
    kind = session.kinds.get(name, "missing")
    if kind == "other":
        return f"{name} is defined, but not as a function or class: define it with def/class."
    if name in session.errors:
        error = session.errors[name]
        return (f"{name} is not defined, because the cell that defines it raised "
                f"{error.get('type')}: {str(error.get('message'))[:300]}")
    return (f"{name} is not defined: keep the name given in the notebook (was it renamed, or "
            "its cell deleted or never run?).")


def run_tests(source, session: Session) -> list[TestResult]:
    namespace = trusted_namespace(source)
    api = set(answer_names(source))
    for name in api:
        kind = session.kinds.get(name)
        if kind in ("function", "class"):
            namespace[name] = (RemoteClass if kind == "class" else RemoteFunction)(session, name)
    results = []
    for cell in grade_cells(source):
        meta = nbgrader_meta(cell)
        points = float(meta.get("points", 0))
        message = None
        with _quiet():
            try:
                exec(compile(cell.source, "<test>", "exec"), namespace)  # noqa: S102
            except AssertionError as failure:
                message = str(failure) or "a check failed"
            except NameError as failure:
                name = getattr(failure, "name", None)
                message = (_missing_message(name, session) if name in api
                           else f"NameError: {failure}")
            except Exception as failure:  # noqa: BLE001  (the learner's, or the sandbox's)
                message = f"{type(failure).__name__}: {failure}"
        if message is not None and len(message) > MAX_MESSAGE:
            message = message[:MAX_MESSAGE] + " …"
        results.append(TestResult(meta["grade_id"], points, 0.0 if message else points,
                                  message))
    return results


def grade_notebook(source, release, path: Path, *, name: str | None = None, slot: int = 0,
                   limits: Limits | None = None, isolated: bool = True) -> NotebookResult:
    """Grade the submitted notebook at ``path`` against its ``source`` (with hidden tests),
    as the notebook ``name`` of the assignment (by default, the file's own name)."""
    name = name or Path(path).stem
    try:
        submission = read_submission(Path(path))
    except ValueError as problem:
        return ungraded(source, release, name, str(problem))
    program = learner_program(submission, source)
    session = Session(program, answer_names(source), slot=slot, limits=limits or Limits(),
                      isolated=isolated)
    with session:  # SandboxUnavailable propagates: not a grade, a failure of the grader
        tests = run_tests(source, session)
    result = NotebookResult(name, tests, notes=session.notes + _cell_error_notes(source, session),
                            printed=session.printed)
    result.feedback = feedback_notebook(release, submission, result, session.errors)
    return result


@dataclass
class GradedNotebook:
    """One notebook of an assignment, graded: the result, the instructor's notebooks it was
    graded against, and the learner's file it was read from (None: none was found)."""

    result: NotebookResult
    source: nbformat.NotebookNode
    release: nbformat.NotebookNode
    submitted: Path | None


def grade_submission(sources: Path, releases: Path, submission: Path, *, slot: int = 0,
                     limits: Limits | None = None, isolated: bool = True) -> list[GradedNotebook]:
    """Grade each notebook of an assignment (its releases in ``releases``, their sources in
    ``sources``) as found in the learner's ``submission`` folder; a submitted file is graded
    as one notebook at most."""
    release_paths = sorted(releases.glob("*.ipynb"))
    candidates = submitted_notebooks(submission)
    graded = []
    for release_path in release_paths:
        source = nbformat.read(sources / release_path.name, as_version=4)
        release = nbformat.read(release_path, as_version=4)
        found = choose_notebook(candidates, release_path.name, alone=len(release_paths) == 1)
        if found is None:
            seen = ", ".join(p.relative_to(submission).as_posix() for p in candidates) or "none"
            result = ungraded(source, release, release_path.stem, (
                f"no notebook named {release_path.name} was found in the submission (notebooks "
                f"submitted: {seen}); upload the notebook you worked in"))
        else:
            candidates.remove(found)
            result = grade_notebook(source, release, found, name=release_path.stem, slot=slot,
                                    limits=limits, isolated=isolated)
        graded.append(GradedNotebook(result, source, release, found))
    return graded


def _cell_error_notes(source, session: Session, most: int = 5) -> list[str]:
    """Errors of cells other than answer cells (those show their own error in the feedback):
    a scratch cell's failure scores nothing, but what it would have defined is missing."""
    answers = set(answer_names(source))
    notes = [f"cell {label} raised {error.get('type')} while it was graded: "
             f"{str(error.get('message'))[:300]}"
             for label, error in session.errors.items() if label not in answers]
    return notes[:most] + ([f"... and {len(notes) - most} more cells raised errors"]
                           if len(notes) > most else [])


# --- feedback ----------------------------------------------------------------------------------

def _error_output(name: str, message: str, traceback: str = "") -> nbformat.NotebookNode:
    lines = (traceback.splitlines() if traceback else []) + [f"{name}: {message}"]
    return nbformat.v4.new_output("error", ename=name, evalue=message, traceback=lines)


def feedback_notebook(release, submission, result: NotebookResult, errors: dict):
    """The released notebook with the learner's answers in it and each test's outcome as its
    output: the visible tests' source only, never the hidden ones."""
    notebook = copy.deepcopy(release)
    answers = {}
    if submission is not None:
        for cell in submission.cells:
            meta = nbgrader_meta(cell)
            if meta.get("solution") and isinstance(meta.get("grade_id"), str):
                answers[meta["grade_id"]] = str(cell.get("source", ""))
    outcomes = {t.grade_id: t for t in result.tests}
    for cell in notebook.cells:
        meta = nbgrader_meta(cell)
        grade_id = meta.get("grade_id")
        if cell.cell_type != "code":
            continue
        cell.outputs, cell.execution_count = [], None
        if meta.get("solution") and submission is not None:
            cell.source = answers.get(grade_id, "# (This answer cell is missing from your "
                                                "submission.)\n" + cell.source)
            if grade_id in errors:
                error = errors[grade_id]
                cell.outputs = [_error_output(str(error.get("type")), str(error.get("message")),
                                              str(error.get("traceback", "")))]
        if grade_id in outcomes:
            outcome = outcomes[grade_id]
            cell.outputs = ([nbformat.v4.new_output("stream", name="stdout", text=(
                f"Passed: {outcome.score:g} of {outcome.points:g} points.\n"))]
                if outcome.message is None else [_error_output("Failed", outcome.message)])
    notes = ([result.problem] if result.problem else []) + result.notes
    if notes:  # notes quote learner-made text (cell labels, messages): escaped, never markup
        notebook.cells.insert(0, nbformat.v4.new_markdown_cell(
            "**Notes from the grader**\n\n" + "\n".join(
                f"- {html.escape(note)}".replace("*", "&#42;").replace("`", "&#96;")
                .replace("[", "&#91;").replace("_", "&#95;") for note in notes)))
    return notebook
