"""Feedback HTML, rendered as ``nbgrader generate_feedback`` renders it (nbgrader's own
feedback template), from the scores just computed rather than from the gradebook: so every
worker writes its learners' pages in parallel, and ``nbgrader generate_feedback`` later
(after manual grading, say) renders the same notebooks again."""

from __future__ import annotations

import copy
import functools
from pathlib import Path

from autograder.score import NotebookResult, nbgrader_meta


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
