"""`make check`: a learner grades their own notebook, hidden tests included, and reads each
test's points and the feedback of those that failed in the terminal."""

from __future__ import annotations

import copy
import re
from pathlib import Path

import nbformat
import pytest
from conftest import make
from course import NOTEBOOKS, SOLUTIONS, answer_cells, assignments, without_solution_markers
from mistakes.unlisted import source as unlisted_source

from autograder.check import find_assignment
from autograder.notebook import grade_cells, nbgrader_meta

ASSIGNMENT, NOTEBOOK = "02-numpy", "conv2d-numpy"
LINE = re.compile(r"^  (ok  |FAIL) (\d+(?:\.\d+)?)/(\d+(?:\.\d+)?)  (\S+)$", re.MULTILINE)


@pytest.mark.parametrize("assignment", assignments())
def test_every_assignments_notebook_is_found_by_folder_and_by_name(assignment, tmp_path):
    for path in sorted((NOTEBOOKS / assignment).glob("*.ipynb")):
        assert find_assignment(path, SOLUTIONS.parent) == (assignment, path.stem)
        elsewhere = tmp_path / path.name  # a copy in the learner's own folder
        elsewhere.write_bytes(path.read_bytes())
        assert find_assignment(elsewhere, SOLUTIONS.parent) == (assignment, path.stem)


def test_a_renamed_copy_in_its_assignments_folder_is_that_notebook(tmp_path):
    folder = tmp_path / "my-course" / ASSIGNMENT
    folder.mkdir(parents=True)
    copy_of = folder / "conv2d-numpy (1).ipynb"
    copy_of.write_bytes((NOTEBOOKS / ASSIGNMENT / f"{NOTEBOOK}.ipynb").read_bytes())
    assert find_assignment(copy_of, SOLUTIONS.parent) == (ASSIGNMENT, NOTEBOOK)


def test_an_unknown_notebook_is_refused_with_the_course_notebooks(tmp_path):
    stray = tmp_path / "homework.ipynb"
    stray.write_text("{}")
    with pytest.raises(SystemExit, match=f"{ASSIGNMENT}/{NOTEBOOK}.ipynb"):
        find_assignment(stray, SOLUTIONS.parent)


def test_without_a_notebook_make_check_says_how_to_call_it():
    run = make("check")
    assert run.returncode != 0 and "usage: make check NOTEBOOK=" in run.stdout + run.stderr


# --- checked for real ---------------------------------------------------------------------------

def learners_notebook(folder: Path, answers: dict[str, str | None]) -> Path:
    """The released notebook with some answers written: name -> source (None: the
    instructor's answer); the others stay nbgrader's stubs."""
    release = nbformat.read(NOTEBOOKS / ASSIGNMENT / f"{NOTEBOOK}.ipynb", as_version=4)
    solved = answer_cells(nbformat.read(SOLUTIONS / ASSIGNMENT / f"{NOTEBOOK}.ipynb",
                                        as_version=4))
    notebook = copy.deepcopy(release)
    for name, text in answers.items():
        answer_cells(notebook)[name].source = (without_solution_markers(solved[name].source)
                                               if text is None else text)
    path = folder / f"{NOTEBOOK}.ipynb"
    folder.mkdir(parents=True)
    nbformat.write(notebook, path)
    return path


def points() -> dict[str, float]:
    source = nbformat.read(SOLUTIONS / ASSIGNMENT / f"{NOTEBOOK}.ipynb", as_version=4)
    return {nbgrader_meta(c)["grade_id"]: float(nbgrader_meta(c)["points"])
            for c in grade_cells(source)}


def checked(path: Path) -> tuple[str, dict[str, tuple[float, float]]]:
    run = make("check", f"NOTEBOOK={path}")
    assert run.returncode == 0, run.stdout + run.stderr[-3000:]
    scores = {grade_id: (float(score), float(out_of))
              for _, score, out_of, grade_id in LINE.findall(run.stdout)}
    return run.stdout, scores


@pytest.mark.slow
def test_a_solved_a_partly_solved_and_a_released_notebook(tmp_path):
    wanted = points()
    total = sum(wanted.values())

    text, scores = checked(learners_notebook(tmp_path / "solved",
                                             {"conv2d_naive": None, "conv2d_numpy": None}))
    assert scores == {g: (p, p) for g, p in wanted.items()}
    assert f"Score: {total:g} of {total:g} points." in text
    assert ("runs in the bubblewrap sandbox" in text) != ("runs WITHOUT the sandbox" in text)

    text, scores = checked(learners_notebook(tmp_path / "partly", {
        "conv2d_naive": None, "conv2d_numpy": unlisted_source("mean_instead_of_sum")}))
    naive = {g: p for g, p in wanted.items() if g.startswith("test_naive_")}
    assert scores == {g: (p if g in naive else 0.0, p) for g, p in wanted.items()}
    assert f"Score: {sum(naive.values()):g} of {total:g} points." in text
    assert "you averaged (np.mean) where conv2d sums" in text  # a failing test's feedback

    text, scores = checked(learners_notebook(tmp_path / "released", {}))
    assert scores == {g: (0.0, p) for g, p in wanted.items()}
    assert "conv2d_naive is not written yet" in text and "### BEGIN HIDDEN" not in text
