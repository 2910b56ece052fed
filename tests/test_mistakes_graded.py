"""The corpus of wrong implementations, graded by the real nbgrader as learners' submissions:
each scores below a correct one, and its feedback names its mistake."""

from __future__ import annotations

import copy

import pytest
from course import ScratchCourse, answer_cells
from mistakes.corpus import MISTAKES, source

# the whole mistake corpus graded by plain nbgrader (minutes)
pytestmark = pytest.mark.slow

NOTEBOOK = "conv2d-numpy"


@pytest.fixture(scope="module")
def graded(tmp_path_factory) -> ScratchCourse:
    """One batch: every corpus submission pasted into the released conv2d_numpy answer cell."""
    course = ScratchCourse(tmp_path_factory.mktemp("course"), "02-numpy")
    for name in MISTAKES:
        notebooks = copy.deepcopy(course.released())
        answer_cells(notebooks[NOTEBOOK])["conv2d_numpy"].source = source(name)
        course.submit(name, notebooks)
    result = course.autograde()
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return course


@pytest.mark.parametrize("name", [name for name in MISTAKES if name != "correct"])
def test_a_mistake_scores_below_the_correct_version_and_is_named(graded, name):
    score, max_score = graded.score(name)
    correct, _ = graded.score("correct")
    assert score < correct < max_score  # the control's naive cells are unwritten
    assert MISTAKES[name].feedback in graded.feedback(name), graded.feedback(name)[-2000:]
