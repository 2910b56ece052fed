"""Score one submitted notebook: the learner's cells run in the sandbox (autograder/session.py),
the instructor's tests run here, against the learner's functions through stand-ins
(autograder/remote.py).

What the grader runs: the source notebook's cells tagged ``test-setup`` (imports and helpers
the tests need), then each graded test cell, hidden tests included: first its visible checks
(the cell as learners have it, :func:`split_test_cell`), then, if they pass, its hidden ones.
A test cell scores its points when it raises nothing, else 0 with the exception's message as
feedback; whether its visible checks passed is kept apart (``TestResult.visible_passed``, which
Gradescope shows before grades are published). Tracebacks, which would show the hidden tests'
source, are never kept. What the sandbox runs is said in autograder/notebook.py.
"""

from __future__ import annotations

import contextlib
import io
import warnings
from dataclasses import dataclass, field, replace
from pathlib import Path

import nbformat

from autograder.feedback import feedback_notebook
from autograder.notebook import (
    HIDDEN_TESTS,
    SETUP_TAG,
    answer_names,
    cell_name,
    choose_notebook,
    grade_cells,
    learner_program,
    nbgrader_meta,
    read_submission,
    sandbox_lacks,
    submitted_notebooks,
)
from autograder.remote import RemoteClass, RemoteFunction
from autograder.sandbox import Limits, SandboxDied, SandboxTimeout
from autograder.session import Session

#: The longest failure message kept for a test (longer ones are cut, with an ellipsis).
MAX_MESSAGE = 3000


class SetupError(RuntimeError):
    """The instructor's own test set-up failed: grading cannot run (not the learner's fault)."""


@dataclass
class TestResult:
    grade_id: str
    points: float
    score: float
    message: str | None = None  # why it failed; None when it passed
    #: Whether the cell's visible checks passed (they run first, and alone decide this); None
    #: where they were not run apart from its hidden ones (see split_test_cell).
    visible_passed: bool | None = None


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
                f"{error.type}: {error.message[:300]}")
    return (f"{name} is not defined: keep the name given in the notebook (was it renamed, or "
            "its cell deleted or never run?).")


def split_test_cell(source: str) -> tuple[str, str] | None:
    """A test cell's visible checks and its hidden ones, each a program of its own: the
    visible are the cell as nbgrader releases it (every line outside its hidden regions, the
    marker lines matched as nbgrader matches them), the hidden the lines inside. None where
    the cell has no hidden tests, or where they cannot run apart (a region inside a block)."""
    begin, end = (marker.lstrip("# ") for marker in HIDDEN_TESTS)
    visible, hidden, inside = [], [], False
    for line in source.splitlines(keepends=True):
        if begin in line or end in line:
            inside = begin in line
        else:
            (hidden if inside else visible).append(line)
    programs = "".join(visible), "".join(hidden)
    if not programs[1].strip():
        return None
    try:
        for program in programs:
            compile(program, "<test>", "exec")
    except SyntaxError:
        return None
    return programs


def _run_checks(code: str, namespace: dict, session: Session, api: set[str]) -> str | None:
    """Run checks of a test cell here; why they failed (None: they passed)."""
    message = None
    with _quiet():
        try:
            exec(compile(code, "<test>", "exec"), namespace)  # noqa: S102
        except AssertionError as failure:
            message = str(failure) or "a check failed"
        except NameError as failure:
            name = getattr(failure, "name", None)
            message = (_missing_message(name, session) if name in api
                       else f"NameError: {failure}")
        except (SandboxTimeout, SandboxDied) as failure:  # a sentence for the learner,
            message = str(failure)                        # not the grader's class name
        except Exception as failure:  # noqa: BLE001  (the learner's, or the sandbox's)
            message = f"{type(failure).__name__}: {failure}"
    if message is not None and len(message) > MAX_MESSAGE:
        message = message[:MAX_MESSAGE] + " …"
    return message


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
        split, visible_passed = split_test_cell(cell.source), None
        if split is None:
            message = _run_checks(cell.source, namespace, session, api)
        else:  # the visible checks alone decide visible_passed: nothing hidden has run yet
            message = _run_checks(split[0], namespace, session, api)
            visible_passed = message is None
            if visible_passed:
                message = _run_checks(split[1], namespace, session, api)
        results.append(TestResult(meta["grade_id"], points, 0.0 if message else points,
                                  message, visible_passed))
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
    limits = replace(limits or Limits(), absent=sandbox_lacks(source))
    session = Session(program, answer_names(source), slot=slot, limits=limits,
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
    pieces = {piece["label"]: piece for piece in session.program}
    notes = [f"{cell_name(pieces.get(label, {'label': label}))} raised {error.type} while it "
             f"was graded: {error.message[:300]}"
             for label, error in session.errors.items() if label not in answers]
    return notes[:most] + ([f"... and {len(notes) - most} more cells raised errors"]
                           if len(notes) > most else [])
