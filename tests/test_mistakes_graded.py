"""The corpus of wrong implementations, graded by the real nbgrader as learners' submissions:
each scores below a correct one, and its feedback names its mistake; so does a mistake that only
the structural diagnosis names (tests/mistakes/unlisted.py). A third of the corpus goes through
nbgrader here; all of it is named in tests/test_diagnose.py."""

from __future__ import annotations

import copy
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from course import ScratchCourse, answer_cells
from mistakes import unlisted
from mistakes.corpus import MISTAKES, source

# a third of the mistake corpus graded by plain nbgrader (a minute)
pytestmark = pytest.mark.slow

NOTEBOOK = "conv2d-numpy"
#: Unlisted mistakes graded here (all of them are checked in tests/test_structure.py): the one
#: whose message needs the notebook's own traceback.
UNLISTED = ("kernel_spans_swapped",)  # a crash, shown at the learner's own line
#: The whole corpus is named by the checks in tests/test_diagnose.py (in-process, seconds);
#: here, through nbgrader, the control and every third mistake (a minute on two cores).
GRADED = ["correct", *[name for name in MISTAKES if name != "correct"][::3]]
SUBMISSIONS = {**{name: source(name) for name in GRADED},
               **{name: unlisted.source(name) for name in UNLISTED}}


class Batch:
    """The submissions graded as shards, one scratch course each, autograded side by side."""

    def __init__(self, root: Path, shards: int):
        names = list(SUBMISSIONS)
        self.course_of: dict[str, ScratchCourse] = {}
        first = ScratchCourse(root / "shard0", "02-numpy")  # generated once, then copied
        courses = [first, *(ScratchCourse(root / f"shard{index}", "02-numpy", copy_of=first)
                            for index in range(1, shards))]
        for index, course in enumerate(courses):
            for name in names[index::shards]:
                notebooks = copy.deepcopy(course.released())
                answer_cells(notebooks[NOTEBOOK])["conv2d_numpy"].source = SUBMISSIONS[name]
                course.submit(name, notebooks)
                self.course_of[name] = course
        with ThreadPoolExecutor(shards) as pool:  # each autograde is a process of its own
            for result in pool.map(ScratchCourse.autograde, courses):
                assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]

    def score(self, name: str) -> tuple[float, float]:
        return self.course_of[name].score(name)

    def feedback(self, name: str) -> str:
        return self.course_of[name].feedback(name)


@pytest.fixture(scope="module")
def graded(tmp_path_factory) -> Batch:
    """Every corpus submission pasted into the released conv2d_numpy answer cell, graded by
    nbgrader in two shards at once (one per core of a CI machine)."""
    return Batch(tmp_path_factory.mktemp("course"), shards=2)


@pytest.mark.parametrize("name", [name for name in SUBMISSIONS if name != "correct"])
def test_a_mistake_scores_below_the_correct_version_and_is_named(graded, name):
    score, max_score = graded.score(name)
    correct, _ = graded.score("correct")
    assert score < correct < max_score  # the control's naive cells are unwritten
    phrase = (MISTAKES[name] if name in MISTAKES else unlisted.UNLISTED[name]).feedback
    assert phrase in graded.feedback(name), graded.feedback(name)[-2000:]
