"""Scoring (autograder/score.py): the instructor's tests run here against stand-ins, each test
cell scores its points or 0 with a message. Most of these use a fake session (the learner's
functions run in this process, answers cross as plain data); one grades a notebook end to end
with the runner as a plain subprocess, without bubblewrap."""

from __future__ import annotations

import nbformat
import pytest

from autograder import score
from autograder.remote import trusted_tensor
from autograder.replies import learner_error
from autograder.sandboxed import wire
from autograder.score import SetupError, grade_notebook, grade_submission, run_tests


def code(source: str, *, tags: tuple[str, ...] = (), **nbgrader) -> nbformat.NotebookNode:
    """A code cell with nbgrader's metadata (grade_id, grade, solution, locked, points)."""
    cell = nbformat.v4.new_code_cell(source)
    if nbgrader:
        cell.metadata["nbgrader"] = {"schema_version": 3, "grade": False, "solution": False,
                                     "locked": False, **nbgrader}
    if tags:
        cell.metadata["tags"] = list(tags)
    return cell


def graded(grade_id: str, source: str, points: float = 1) -> nbformat.NotebookNode:
    return code(source, grade_id=grade_id, grade=True, locked=True, points=points)


def answer(grade_id: str, source: str) -> nbformat.NotebookNode:
    return code(source, grade_id=grade_id, solution=True)


SOURCE = nbformat.v4.new_notebook(cells=[
    nbformat.v4.new_markdown_cell("# A tiny assignment"),
    code("import warnings\n\nFOUR = 4\n", tags=("test-setup",), grade_id="setup", locked=True),
    answer("double", "def double(x):\n    ### BEGIN SOLUTION\n    return 2 * x\n"
                     "    ### END SOLUTION\n"),
    answer("triple", "def triple(x):\n    ### BEGIN SOLUTION\n    return 3 * x\n"
                     "    ### END SOLUTION\n"),
    graded("test_pass", '"""Passes, printing and warning."""\nprint("noise")\n'
                      'warnings.warn("a warning")\nassert double(2) == FOUR\n', points=2),
    graded("test_fail", 'assert double(2) == 5, "double(2) should be 5"\n'),
    graded("test_bare", "assert double(0) == 1\n", points=1.5),
    graded("test_missing", "assert triple(1) == 3\n"),
    graded("test_name", "undefined_helper()\n"),
    graded("test_raises", "double(-1)\n"),
    graded("test_long", 'assert False, "x" * 5000\n'),
])


class FakeSession:
    """The sandbox's side played here: the learner's functions are Python functions, and
    arguments and results cross as plain data, as they do from a real sandbox."""

    def __init__(self, functions: dict, kinds: dict[str, str], errors: dict | None = None):
        self.functions, self.kinds, self.errors = functions, kinds, errors or {}
        self.calls: list[str] = []

    def request(self, header: dict, arrays: list) -> tuple[dict, dict]:
        self.calls.append(header["name"])
        sent = {f"a{i}": array for i, array in enumerate(arrays)}
        decoder = wire.Decoder(sent, make_tensor=trusted_tensor)
        args, kwargs = decoder(header["args"]), decoder(header["kwargs"])
        try:
            value = self.functions[header["name"]](*args, **kwargs)
        except Exception as error:  # noqa: BLE001  (the learner's: it crosses as data)
            return {"ok": False, "error": {"type": type(error).__name__, "message": str(error),
                                           "bases": [c.__name__ for c in type(error).__mro__]}}, {}
        encoder = wire.Encoder(strict=False)
        reply = {"ok": True, "value": encoder(value)}
        return reply, {f"a{i}": array for i, array in enumerate(encoder.arrays)}


def double(x):
    if x < 0:
        raise ValueError("negative input")
    return 2 * x


def test_each_test_cell_scores_its_points_or_zero_with_its_message():
    session = FakeSession({"double": double}, {"double": "function", "triple": "missing"})
    results = {r.grade_id: r for r in run_tests(SOURCE, session)}
    assert list(results) == ["test_pass", "test_fail", "test_bare", "test_missing", "test_name",
                             "test_raises", "test_long"]
    assert results["test_pass"] == score.TestResult("test_pass", 2.0, 2.0, None)  # noise is free
    assert results["test_fail"] == score.TestResult("test_fail", 1.0, 0.0, "double(2) should be 5")
    assert results["test_bare"] == score.TestResult("test_bare", 1.5, 0.0, "a check failed")
    assert results["test_missing"].message.startswith("triple is not defined: keep the name")
    assert results["test_name"].message == "NameError: name 'undefined_helper' is not defined"
    assert results["test_raises"].message == "ValueError: negative input"
    assert results["test_long"].message == "x" * score.MAX_MESSAGE + " …"
    assert sum(r.score for r in results.values()) == 2.0
    assert "triple" not in session.calls


@pytest.mark.parametrize(("kinds", "errors", "says"), [
    ({"triple": "other"}, {}, "triple is defined, but not as a function or class"),
    ({"triple": "missing"},
     {"triple": learner_error({"type": "IndentationError", "message": "oops"})},
     "because the cell that defines it raised IndentationError: oops"),
])
def test_a_missing_answer_says_why_it_is_missing(kinds, errors, says):
    session = FakeSession({}, {"double": "function", **kinds}, errors)
    results = {r.grade_id: r for r in run_tests(SOURCE, session)}
    assert says in results["test_missing"].message


def test_a_broken_test_set_up_is_the_graders_failure_not_a_score():
    broken = nbformat.v4.new_notebook(cells=[
        code("import not_a_module\n", tags=("test-setup",), grade_id="setup", locked=True),
        graded("test_pass", "assert True\n")])
    with pytest.raises(SetupError, match="setup failed: ModuleNotFoundError"):
        run_tests(broken, FakeSession({}, {}))


def test_a_notebook_that_cannot_be_read_scores_zero_everywhere_and_says_why(tmp_path):
    path = tmp_path / "tiny.ipynb"
    path.write_text('{"cells": [oops')
    result = grade_notebook(SOURCE, SOURCE, path)
    assert result.score == 0 and result.max_score == 8.5
    assert "tiny.ipynb is not a valid Jupyter notebook" in result.problem
    assert {t.message for t in result.tests} == {result.problem}
    assert "Notes from the grader" in result.feedback.cells[0].source


def write(notebook, path):
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(notebook, path)
    return path


def test_each_notebook_of_an_assignment_is_looked_for_and_graded_once(tmp_path):
    for name in ("first", "second"):
        write(SOURCE, tmp_path / "sources" / f"{name}.ipynb")
        write(SOURCE, tmp_path / "releases" / f"{name}.ipynb")
    (tmp_path / "submission").mkdir()
    (tmp_path / "submission" / "second.ipynb").write_text("not json")
    first, second = grade_submission(tmp_path / "sources", tmp_path / "releases",
                                     tmp_path / "submission")
    assert first.submitted is None and first.result.name == "first"
    assert "no notebook named first.ipynb was found in the submission (notebooks submitted: " \
           "second.ipynb)" in first.result.problem
    assert second.submitted == tmp_path / "submission" / "second.ipynb"
    assert "second.ipynb is not a valid Jupyter notebook" in second.result.problem


def test_a_notebook_is_graded_end_to_end_by_the_runner_without_bubblewrap(tmp_path):
    submission = nbformat.v4.new_notebook(cells=[
        code("FOUR = 4\n", grade_id="setup", locked=True),
        answer("double", "def double(x):\n    return x + x\n"),
        answer("triple", "def triple(x):\n    return 3 * x\n  oops\n"),
        code("raise RuntimeError('a scratch cell fails')\n"),
        *(cell for cell in SOURCE.cells if score.nbgrader_meta(cell).get("grade")),
    ])
    result = grade_notebook(SOURCE, SOURCE, write(submission, tmp_path / "tiny.ipynb"),
                            isolated=False)
    scores = {t.grade_id: t.score for t in result.tests}
    assert scores == {"test_pass": 2.0, "test_fail": 0.0, "test_bare": 0.0,
                      "test_missing": 0.0, "test_name": 0.0, "test_raises": 1.0,
                      "test_long": 0.0}  # the learner's double does not refuse -1: it passes
    missing = next(t for t in result.tests if t.grade_id == "test_missing")
    assert "because the cell that defines it raised IndentationError" in missing.message
    assert result.notes == ["cell 4 from the top (it begins: raise RuntimeError('a scratch "
                            "cell fails')) raised RuntimeError while it was graded: a scratch "
                            "cell fails"]
    outputs = {score.nbgrader_meta(c).get("grade_id"): c.outputs for c in result.feedback.cells
               if c.cell_type == "code"}
    assert outputs["test_pass"][0]["text"] == "Passed: 2 of 2 points.\n"
    assert outputs["test_fail"][0]["evalue"] == "double(2) should be 5"
    assert outputs["triple"][0]["ename"] == "IndentationError"
