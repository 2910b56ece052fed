"""Learner text as plain text (autograder/plain.py): one line for a terminal, a CSV field no
spreadsheet reads as a formula, Markdown that shows as typed, and the feedback page that the
grader's notes become."""

from __future__ import annotations

import nbformat
import pytest
from bs4 import BeautifulSoup

from autograder import plain
from autograder.feedback import feedback_html, feedback_notebook
from autograder.score import NotebookResult
from autograder.score import TestResult as Outcome

#: What a learner can put into a name or a message: escape sequences, line breaks, a
#: right-to-left override, Markdown and HTML.
HOSTILE = ("\x1b[2J\x1b[31mred\x07\r\n# Heading\n| a | b |\n|---|---|\n[a link](http://x.test) "
           "<img src=x onerror=alert(1)> **bold** `code` $x$ \u202eexe.txt")


def test_a_line_holds_no_control_or_format_character_and_is_bounded():
    text = plain.line(HOSTILE)
    assert "\n" not in text and "\x1b" not in text and "\u202e" not in text
    assert all(char.isprintable() for char in text)
    assert plain.line("x" * 500, 300) == "x" * 300 + " …"
    assert plain.line("müller o'brien 李") == "müller o'brien 李"  # letters stay letters


def test_a_block_keeps_its_line_breaks_only():
    assert plain.block("one\r\ntwo\x1b[0m\nthree") == "one\ntwo?[0m\nthree"


@pytest.mark.parametrize("start", ["=", "+", "-", "@", "\t=", "\r=", "  @"])
def test_a_csv_field_is_never_a_formula(start):
    field = plain.csv_field(start + 'HYPERLINK("http://x.test","click")')
    assert field.startswith("'")
    assert plain.csv_field("smithjohn") == "smithjohn"


def test_markdown_of_learner_text_renders_as_the_text_itself():
    html = BeautifulSoup(_rendered_notes([HOSTILE]), "html.parser")
    [note] = html.find(string="Notes from the grader").find_parent("div").find_all("li")
    assert note.find_all(True) == []  # text only: no heading, table, link, image, bold, code
    assert "# Heading | a | b |" in note.get_text()
    assert "[a link](http://x.test) <img src=x onerror=alert(1)> **bold**" in note.get_text()


def _rendered_notes(notes: list[str]) -> str:
    """The feedback page of a one-cell notebook whose result carries ``notes``."""
    release = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("x = 1")])
    result = NotebookResult("tiny", [Outcome("t", 1.0, 0.0, HOSTILE)], notes=notes)
    result.feedback = feedback_notebook(release, None, result, {})
    return feedback_html(result, student="s", assignment="a")


def test_a_pasted_megabyte_does_not_make_a_megabyte_page():
    solution = {"nbgrader": {"grade": False, "solution": True, "locked": False,
                             "grade_id": "f", "schema_version": 3}}
    release = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("def f(): ...",
                                                                         metadata=solution)])
    submission = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(
        "def f():\n" + "    x = 1  # padding\n" * 50_000, metadata=solution)])
    result = NotebookResult("tiny", [Outcome("t", 1.0, 0.0, "wrong")])
    result.feedback = feedback_notebook(release, submission, result, {})
    page = feedback_html(result, student="s", assignment="a")
    assert len(submission.cells[0].source) > 900_000 and len(page) < 600_000
    assert "more characters of this cell are not shown here" in page
