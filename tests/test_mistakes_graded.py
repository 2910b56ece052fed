"""The corpus of wrong implementations, graded by the real nbgrader as learners' submissions:
each scores below a correct one, and its feedback names its mistake."""

from __future__ import annotations

import copy
import runpy
from pathlib import Path

import pytest
from course import ScratchCourse, answer_cells

MISTAKES = sorted(p for p in (Path(__file__).parent / "mistakes").glob("*.py")
                  if not p.name.startswith("_"))
NOTEBOOK = "conv2d-numpy"


@pytest.fixture(scope="module")
def graded(tmp_path_factory) -> ScratchCourse:
    """One batch: every corpus file pasted into the released notebook's conv2d_numpy cell."""
    course = ScratchCourse(tmp_path_factory.mktemp("course"), "02-numpy")
    for path in MISTAKES:
        notebooks = copy.deepcopy(course.released())
        answer_cells(notebooks[NOTEBOOK])["conv2d_numpy"].source = path.read_text()
        course.submit(path.stem, notebooks)
    result = course.autograde()
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return course


def test_the_corpus_has_a_correct_control_and_every_listed_mistake():
    names = {p.stem for p in MISTAKES}
    assert "correct" in names and len(names) >= 11


@pytest.mark.parametrize("path", [p for p in MISTAKES if p.stem != "correct"],
                         ids=lambda p: p.stem)
def test_a_mistake_scores_below_the_correct_version_and_is_named(graded, path):
    feedback = runpy.run_path(str(path))["FEEDBACK"]
    score, max_score = graded.score(path.stem)
    correct, _ = graded.score("correct")
    assert score < correct < max_score  # the control's naive cells are unwritten
    assert feedback in graded.feedback(path.stem), graded.feedback(path.stem)[-2000:]
