"""A learner's feedback page (autograder/feedback.py) read in headless Chromium, offline: the
sentence that says what is wrong is seen without scrolling sideways, and the index names each
test by what it checks."""

from __future__ import annotations

import nbformat
import pytest
from course import NOTEBOOKS, SOLUTIONS
from test_book_browser import browser  # noqa: F401  (the fixture: Chromium, no network)

from autograder.feedback import feedback_html
from autograder.report import cell_titles
from autograder.score import ungraded
from convcourse.grading.diagnose import MISTAKES

pytestmark = pytest.mark.browser
ASSIGNMENT, NOTEBOOK = "02-numpy", "conv2d-numpy"

MEASURE = """
const pre = [...document.querySelectorAll('div.output_area pre, div.output_subarea pre')]
    .find(p => p.textContent.includes(arguments[0]));
if (!pre) return null;
const range = document.createRange();
range.selectNodeContents(pre);
const right = Math.max(...[...range.getClientRects()].map(r => r.right));
return {right: right, viewport: document.documentElement.clientWidth,
        overflow: pre.scrollWidth - pre.clientWidth,
        index: [...document.querySelectorAll('#toc a')].map(a => a.textContent)};
"""


def test_the_diagnosis_is_seen_without_scrolling_sideways(browser, tmp_path):  # noqa: F811
    source = nbformat.read(SOLUTIONS / ASSIGNMENT / f"{NOTEBOOK}.ipynb", as_version=4)
    release = nbformat.read(NOTEBOOKS / ASSIGNMENT / f"{NOTEBOOK}.ipynb", as_version=4)
    diagnosis = MISTAKES[0].advice.split("{")[0]
    message = f"conv2d_numpy(x, weight, padding=1) on x (2, 3, 8, 8): {diagnosis}" * 2
    result = ungraded(source, release, NOTEBOOK, message)
    page = tmp_path / "feedback.html"
    page.write_text(feedback_html(result, student="ada", assignment=ASSIGNMENT))
    browser.get(page.as_uri())
    seen = browser.execute_script(MEASURE, diagnosis[:40])
    assert seen is not None
    assert seen["overflow"] <= 0 and seen["right"] <= seen["viewport"], seen
    titles = list(cell_titles(source).values())
    assert "Test cell" not in seen["index"] and titles[0] in seen["index"], seen["index"]


MATH = """
const shown = [...document.querySelectorAll('math')].map(m => m.getBoundingClientRect())
    .filter(box => box.width > 0 && box.height > 0).length;
return {shown: shown, text: document.body.innerText};
"""


def test_the_instructors_math_is_drawn_offline(browser, tmp_path):  # noqa: F811
    source = nbformat.read(SOLUTIONS / ASSIGNMENT / f"{NOTEBOOK}.ipynb", as_version=4)
    release = nbformat.read(NOTEBOOKS / ASSIGNMENT / f"{NOTEBOOK}.ipynb", as_version=4)
    written = sum(cell.source.count("$") for cell in release.cells
                  if cell.cell_type == "markdown")
    assert written > 10  # the notebook's prose has math to draw
    page = tmp_path / "feedback.html"
    page.write_text(feedback_html(ungraded(source, release, NOTEBOOK, "not graded"),
                                  student="ada", assignment=ASSIGNMENT))
    browser.get(page.as_uri())  # no network: MathJax from its CDN cannot load
    seen = browser.execute_script(MATH)
    assert seen["shown"] > 5
    assert "\\text" not in seen["text"] and "$C_" not in seen["text"]
