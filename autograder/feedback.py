"""Feedback: the learner's notebook with each test's outcome (:func:`feedback_notebook`), and
that notebook as HTML (:func:`feedback_html`).

The HTML is rendered as ``nbgrader generate_feedback`` renders it (nbgrader's own feedback
template), from the scores just computed rather than from the gradebook: so every worker
writes its learners' pages in parallel, and ``nbgrader generate_feedback`` later (after
manual grading, say) renders the same notebooks again. nbgrader is imported only to render
HTML: Gradescope's image, which writes no HTML, does not have it.
"""

from __future__ import annotations

import copy
import functools
from pathlib import Path
from typing import TYPE_CHECKING

import nbformat

from autograder import plain
from autograder.notebook import nbgrader_meta

if TYPE_CHECKING:  # the results are made in score.py, which makes their feedback here
    from autograder.score import NotebookResult


# --- the feedback notebook -----------------------------------------------------------------------

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
                cell.outputs = [_error_output(error.type, error.message, error.traceback)]
        if grade_id in outcomes:
            outcome = outcomes[grade_id]
            cell.outputs = ([nbformat.v4.new_output("stream", name="stdout", text=(
                f"Passed: {outcome.score:g} of {outcome.points:g} points.\n"))]
                if outcome.message is None else [_error_output("Failed", outcome.message)])
    notes = ([result.problem] if result.problem else []) + result.notes
    if notes:  # notes quote learner-made text (cell labels, messages): one line of text each
        notebook.cells.insert(0, nbformat.v4.new_markdown_cell(
            "**Notes from the grader**\n\n" + "\n".join(
                f"- {plain.markdown(note)}" for note in notes)))
    return notebook


# --- as HTML -----------------------------------------------------------------------------------

@functools.lru_cache(maxsize=1)
def _exporter():
    import nbgrader
    from nbconvert import HTMLExporter
    from nbconvert.preprocessors import CSSHTMLHeaderPreprocessor
    from traitlets.config import Config

    formgrader = Path(nbgrader.__file__).parent / "server_extensions" / "formgrader"
    config = Config()
    config.HTMLExporter.template_name = "feedback"
    config.HTMLExporter.extra_template_basedirs = [str(formgrader / "templates")]
    config.HTMLExporter.extra_template_paths = [
        str(formgrader / "static" / "node_modules" / "bootstrap" / "dist" / "css")]
    exporter = HTMLExporter(config=config)
    exporter.register_preprocessor(CSSHTMLHeaderPreprocessor(), enabled=True)
    return exporter


def feedback_html(result: NotebookResult, *, student: str, assignment: str) -> str:
    notebook = copy.deepcopy(result.feedback)
    scores = {t.grade_id: t for t in result.tests}
    for cell in notebook.cells:
        meta = nbgrader_meta(cell)
        if meta.get("grade") and meta.get("grade_id") in scores:
            meta["score"] = scores[meta["grade_id"]].score
            meta["points"] = scores[meta["grade_id"]].points
        if meta.get("solution"):
            meta["comment"] = None
    resources = {"nbgrader": {"score": result.score, "max_score": result.max_score,
                              "late_penalty": 0, "notebook": result.name,
                              "assignment": assignment, "student": student}}
    html, _ = _exporter().from_notebook_node(notebook, resources=resources)
    return html
