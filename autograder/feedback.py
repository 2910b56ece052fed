"""Feedback: the learner's notebook with each test's outcome (:func:`feedback_notebook`), and
that notebook as HTML (:func:`feedback_html`).

The HTML is rendered as ``nbgrader generate_feedback`` renders it (nbgrader's own feedback
template, made easier to read by :func:`readable`), from the scores just computed rather than
from the gradebook: so every worker writes its learners' pages in parallel. Where the gradebook
holds manual scores or comments, ``make grade`` renders that learner's pages again from it
after the batch (:func:`regenerate`). The instructor's math is MathML on the page, so it reads
offline. nbgrader and latex2mathml are imported only to render HTML: Gradescope's image, which
writes no HTML, does not have them.
"""

from __future__ import annotations

import copy
import functools
import html
import json
import re
from pathlib import Path
from typing import TYPE_CHECKING

import nbformat

from autograder import plain
from autograder.notebook import nbgrader_meta
from autograder.report import cell_titles

if TYPE_CHECKING:  # the results are made in score.py, which makes their feedback here
    from autograder.score import NotebookResult


# --- the feedback notebook -----------------------------------------------------------------------

def _error_output(name: str, message: str, traceback: str = "") -> nbformat.NotebookNode:
    lines = (traceback.splitlines() if traceback else []) + [f"{name}: {message}"]
    return nbformat.v4.new_output("error", ename=name, evalue=message, traceback=lines)


#: The most of one answer cell a feedback page shows: a page stays small whatever was pasted.
MAX_ANSWER = 20_000


def shown(source: str) -> str:
    """An answer cell's source as the page shows it: all of it, or its first
    :data:`MAX_ANSWER` characters and how many more there were."""
    if len(source) <= MAX_ANSWER:
        return source
    return (source[:MAX_ANSWER] + f"\n# ... ({len(source) - MAX_ANSWER} more characters of "
            "this cell are not shown here)\n")


def feedback_notebook(release, submission, result: NotebookResult, errors: dict):
    """The released notebook with the learner's answers in it and each test's outcome as its
    output: the visible tests' source only, never the hidden ones."""
    notebook = copy.deepcopy(release)
    answers = {}
    if submission is not None:
        for cell in submission.cells:
            meta = nbgrader_meta(cell)
            if meta.get("solution") and isinstance(meta.get("grade_id"), str):
                answers[meta["grade_id"]] = shown(str(cell.get("source", "")))
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
                f"- {plain.markdown(note)}" for note in notes),
            metadata={"convcourse": {"learner_text": True}}))
    return notebook


#: TeX as the instructor's markdown writes it: $$display$$ or $inline$ (not a lone "$").
MATH = re.compile(r"\$\$(.+?)\$\$|(?<![\\$])\$(?![\s$])([^$\n]+?)(?<![\s\\])\$", re.S)
#: What markdown shows as written: fenced blocks and code spans.
CODE = re.compile(r"(```.*?```|`[^`\n]*`)", re.S)


def _mathml(match: re.Match) -> str:
    import latex2mathml.converter  # HTML only, as nbgrader: Gradescope's image writes none

    display = match.group(1) is not None
    try:
        return latex2mathml.converter.convert(match.group(1) if display else match.group(2),
                                              display="block" if display else "inline")
    except Exception:  # noqa: BLE001  (TeX it cannot read stays as written)
        return match.group(0)


def offline_math(markdown: str) -> str:
    """The math of an instructor's markdown as MathML, which a browser draws with no script
    and no network (the page's MathJax would come from the internet); code stays as written."""
    parts = CODE.split(markdown)
    return "".join(part if index % 2 else MATH.sub(_mathml, part)
                   for index, part in enumerate(parts))


# --- as HTML -----------------------------------------------------------------------------------

@functools.lru_cache(maxsize=1)
def _exporter():
    import nbgrader
    from nbconvert import HTMLExporter, TemplateExporter
    from nbconvert.filters.highlight import Highlight2HTML
    from nbconvert.filters.widgetsdatatypefilter import WidgetsDataTypeFilter
    from nbconvert.preprocessors import CSSHTMLHeaderPreprocessor
    from traitlets.config import Config

    class FeedbackExporter(HTMLExporter):
        """nbconvert's HTML exporter less its last step, which parses the finished page again
        (BeautifulSoup) to add JupyterLab's tabindex and a stock alt text to images: nothing
        on nbgrader's classic feedback template, and 60% of the time a page takes."""

        def from_notebook_node(self, nb, resources=None, **kw):
            resources = self._init_resources(resources)
            info = nb.metadata.get("language_info", {})
            self.register_filter("highlight_code", Highlight2HTML(
                pygments_lexer=info.get("pygments_lexer", info.get("name")), parent=self))
            self.register_filter("filter_data_type", WidgetsDataTypeFilter(
                notebook_metadata=self._nb_metadata, parent=self, resources=resources))
            return TemplateExporter.from_notebook_node(self, nb, resources, **kw)

    formgrader = Path(nbgrader.__file__).parent / "server_extensions" / "formgrader"
    config = Config()
    config.HTMLExporter.template_name = "feedback"
    config.HTMLExporter.extra_template_basedirs = [str(formgrader / "templates")]
    config.HTMLExporter.extra_template_paths = [
        str(formgrader / "static" / "node_modules" / "bootstrap" / "dist" / "css")]
    exporter = FeedbackExporter(config=config)
    exporter.register_preprocessor(CSSHTMLHeaderPreprocessor(), enabled=True)
    return exporter


def feedback_html(result: NotebookResult, *, student: str, assignment: str,
                  comments: dict[str, str] | None = None, late_penalty: float = 0.0) -> str:
    """The page: the feedback notebook with each test's score, the instructor's manual
    comments (formgrader's, by answer cell) where there are any, and the late penalty (the
    score shown is after it, as nbgrader's own feedback shows it)."""
    notebook = copy.deepcopy(result.feedback)
    scores = {t.grade_id: t for t in result.tests}
    for cell in notebook.cells:
        if cell.cell_type == "markdown" and not cell.metadata.get("convcourse"):
            cell.source = offline_math(cell.source)  # the instructor's text, not the learner's
        meta = nbgrader_meta(cell)
        if meta.get("grade") and meta.get("grade_id") in scores:
            meta["score"] = scores[meta["grade_id"]].score
            meta["points"] = scores[meta["grade_id"]].points
        if meta.get("solution"):
            meta["comment"] = (comments or {}).get(meta.get("grade_id"))
    resources = {"nbgrader": {"score": result.score - late_penalty,
                              "max_score": result.max_score,
                              "late_penalty": late_penalty, "notebook": result.name,
                              "assignment": assignment, "student": student}}
    page, _ = _exporter().from_notebook_node(notebook, resources=resources)
    return readable(page, cell_titles(notebook))


#: A failure's message wraps at the page's width: what it says is wrong is seen at once.
WRAP = ("<style>div.output_area pre, div.output_subarea pre {white-space: pre-wrap; "
        "overflow-wrap: anywhere; word-break: normal}</style>")


def readable(page: str, titles: dict[str, str]) -> str:
    """nbgrader's page made easier to read: messages wrapped, and each test of the index
    named by what it checks (the docstring its cell opens with) instead of "Test cell"."""
    page = page.replace("</head>", WRAP + "</head>", 1)
    for grade_id, title in titles.items():
        page = page.replace(f'<a href="#{grade_id}">Test cell</a>',
                            f'<a href="#{grade_id}">{html.escape(title)}</a>', 1)
    return page


def regenerate(autograded: Path, feedback: Path, scores: dict[str, float],
               comments: dict[str, str], *, student: str, assignment: str,
               late: dict[str, float] | None = None) -> None:
    """Render a learner's pages again from what the gradebook holds: ``scores`` (each cell's,
    manual scores in place of automatic ones), the manual ``comments`` and the ``late``
    penalty of each notebook; the messages and notebooks are the grader's, from result.json
    and the autograded notebooks."""
    from autograder.score import NotebookResult, TestResult

    try:
        graded = json.loads((autograded / "result.json").read_text())
    except (OSError, ValueError):
        return
    for name, notebook in graded.get("notebooks", {}).items():
        path = autograded / f"{name}.ipynb"
        if not path.is_file():
            continue
        tests = [TestResult(t["grade_id"], t["points"], scores.get(t["grade_id"], t["score"]),
                            t.get("message")) for t in notebook.get("tests", [])]
        result = NotebookResult(name, tests, feedback=nbformat.read(path, as_version=4))
        feedback.mkdir(parents=True, exist_ok=True)
        (feedback / f"{name}.html").write_text(
            feedback_html(result, student=student, assignment=assignment, comments=comments,
                          late_penalty=(late or {}).get(name, 0.0)),
            encoding="utf-8")
