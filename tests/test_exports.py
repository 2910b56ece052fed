"""The gradebook is the one source of truth (autograder/exports.py, autograder/report.py): what
goes out (grades.csv, the Canvas and Moodle imports, the roster's check, the class report) is
rebuilt from a real nbgrader gradebook, manual scores and comments included, and an automatic
regrade (grade.record) never overwrites a manual score. No sandbox: test_class.py grades a
class end to end."""

from __future__ import annotations

import csv
import json
import os
import shutil
import sys
from pathlib import Path

import nbformat
import pytest
from nbgrader.api import Gradebook

from autograder import exports, report
from autograder.grade import Course, record
from autograder.roster import Roster
from convcourse.grading.diagnose import MISTAKES

#: Each test copies a real gradebook (nbgrader makes the first with alembic: seconds).
pytestmark = pytest.mark.slow

ASSIGNMENT, NOTEBOOK = "01-shapes", "shapes"
CELLS = {"test_a": 2.0, "test_b": 3.0}


@pytest.fixture(scope="module")
def empty_gradebook(tmp_path_factory) -> Path:
    """A gradebook of the assignment, made once (nbgrader runs alembic to make one)."""
    course = Course(tmp_path_factory.mktemp("gradebook"), ASSIGNMENT)
    course.work.mkdir(parents=True)
    with pytest.MonkeyPatch.context() as patch:  # alembic is the environment's, on PATH
        patch.setenv("PATH", f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
        with Gradebook(course.db_url) as gradebook:
            gradebook.add_assignment(ASSIGNMENT)
            gradebook.add_notebook(NOTEBOOK, ASSIGNMENT)
            for name, points in CELLS.items():
                gradebook.add_grade_cell(name, NOTEBOOK, ASSIGNMENT, max_score=points,
                                         cell_type="code")
            gradebook.add_solution_cell("answer", NOTEBOOK, ASSIGNMENT)
            gradebook.add_grade_cell("answer", NOTEBOOK, ASSIGNMENT, max_score=0,
                                     cell_type="code")
    return course.work / "gradebook.db"


@pytest.fixture
def course(tmp_path, empty_gradebook) -> Course:
    course = Course(tmp_path / "course", ASSIGNMENT)
    course.work.mkdir(parents=True)
    shutil.copyfile(empty_gradebook, course.work / "gradebook.db")
    return course


def graded(student: str, scores: dict[str, float], message: str | None = None) -> dict:
    tests = [{"grade_id": name, "points": CELLS[name], "score": scores.get(name, 0.0),
              "message": None if scores.get(name) == CELLS[name] else message or "failed"}
             for name in CELLS]
    for test in tests:  # as make grade's workers write it (grade.grade_student)
        test["mistake"] = report.named_mistake(test["message"])
    return {"student_id": student, "assignment": ASSIGNMENT, "score": sum(scores.values()),
            "max_score": sum(CELLS.values()), "problem": None,
            "notebooks": {NOTEBOOK: {"tests": tests, "notes": []}}}


def record_all(course: Course, results: list[dict]) -> None:
    for result in results:
        folder = course.folder("autograded", result["student_id"])
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "result.json").write_text(json.dumps(result))
    with Gradebook(course.db_url) as gradebook:
        for result in results:
            record(gradebook, course, result)


def rows(path: Path) -> list[dict]:
    with path.open(newline="", encoding="utf-8") as file:
        return list(csv.DictReader(file))


def gradebook_scores(course: Course) -> dict[str, float]:
    with Gradebook(course.db_url) as gradebook:
        return {s.student.id: s.score for s in gradebook.find_assignment(ASSIGNMENT).submissions}


def test_a_manual_score_and_comment_survive_a_regrade_and_reach_every_export(course):
    record_all(course, [graded("ada", {"test_a": 2.0, "test_b": 3.0}),
                        graded("bo", {})])
    with Gradebook(course.db_url) as gradebook:
        gradebook.find_grade("test_b", NOTEBOOK, ASSIGNMENT, "bo").manual_score = 2.0
        gradebook.find_comment("answer", NOTEBOOK, ASSIGNMENT, "bo").manual_comment = "see me"
        gradebook.db.commit()
    record_all(course, [graded("bo", {})])  # the automatic regrade (tests changed, --force)
    rebuilt = exports.rebuild(course.work, course.db_url, ASSIGNMENT)
    assert gradebook_scores(course) == {"ada": 5.0, "bo": 2.0}
    grades = {row["student_id"]: row for row in rows(course.work / "grades.csv")}
    assert {s: float(r["score"]) for s, r in grades.items()} == gradebook_scores(course)
    assert grades["bo"]["manually_graded"] == "yes" and grades["ada"]["manually_graded"] == ""
    bo = next(g for g in rebuilt["grades"] if g.student_id == "bo")
    assert bo.comments == {"answer": "see me"} and bo.tests["test_b"] == 2.0
    canvas = {row["SIS User ID"]: row for row in rows(course.work / "exports" / "canvas.csv")}
    assert {s: float(r[ASSIGNMENT]) for s, r in canvas.items()} == gradebook_scores(course)


def test_grades_csv_holds_every_learner_of_every_batch(course):
    record_all(course, [graded(f"l{n}", {"test_a": 2.0}) for n in range(30)])
    record_all(course, [graded("late1", {}), graded("late2", {"test_b": 3.0})])
    exports.rebuild(course.work, course.db_url, ASSIGNMENT)
    students = [row["student_id"] for row in rows(course.work / "grades.csv")]
    assert len(students) == 32 and set(students) == set(gradebook_scores(course))


def test_the_lms_exports_use_the_rosters_ids_and_list_who_is_missing(course, tmp_path):
    (tmp_path / "roster.csv").write_text("student_id,lms_id,name,section\n"
                                         "ada,4711,Ada Lovelace,A\ncy,4712,Cy Young,B\n")
    roster = Roster.load(tmp_path / "roster.csv")
    record_all(course, [graded("ada", {"test_a": 2.0}), graded("=stranger", {})])
    rebuilt = exports.rebuild(course.work, course.db_url, ASSIGNMENT, roster)
    assert rebuilt["roster"] == [["cy", "on the roster, no submission"],
                                 ["=stranger", "submitted, not on the roster"]]
    canvas = rows(course.work / "exports" / "canvas.csv")
    assert [(r["Student"], r["ID"], r["Section"], r[ASSIGNMENT]) for r in canvas] == [
        ("Ada Lovelace", "4711", "A", "2"), ("Cy Young", "4712", "B", ""),
        ("'=stranger", "", "", "0")]
    moodle = rows(course.work / "exports" / "moodle.csv")
    assert [(r["ID number"], r[ASSIGNMENT]) for r in moodle] == [
        ("4711", "2"), ("4712", ""), ("'=stranger", "0")]
    check = rows(course.work / "exports" / "roster-check.csv")
    assert [r["student_id"] for r in check] == ["cy", "'=stranger"]


def test_the_class_report_counts_what_the_result_files_hold(course, tmp_path):
    flipped = MISTAKES[0].advice.split("{")[0]
    results = [graded("ada", {"test_a": 2.0, "test_b": 3.0}),
               graded("bo", {"test_a": 2.0}, message=f"conv2d: {flipped}"),
               graded("cy", {}, message=f"conv2d: {flipped}"),
               graded("dee", {"test_b": 3.0})]
    results[3]["notebooks"][NOTEBOOK]["notes"] = ["your code ran past its time limit"]
    record_all(course, results)
    source = tmp_path / "source"
    source.mkdir()
    notebook = nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_code_cell('"""Sizes of the three examples."""\nassert True',
                                  metadata={"nbgrader": {"grade": True, "grade_id": "test_a",
                                                         "points": 2}}),
        nbformat.v4.new_code_cell("assert True", metadata={
            "nbgrader": {"grade": True, "grade_id": "test_b", "points": 3}})])
    nbformat.write(notebook, source / f"{NOTEBOOK}.ipynb")
    scores = gradebook_scores(course)
    built, paths = report.write(course.work, source, ASSIGNMENT, scores, 5.0)
    assert report.pass_rates(built) == [("test_a", "Sizes of the three examples.", 2, 4),
                                        ("test_b", "test_b", 2, 4)]
    assert report.common_mistakes(built) == [(MISTAKES[0].name, ["bo", "cy"])]
    assert built.stopped == {"dee": "your code ran past its time limit"}
    assert sum(count for _, _, count in built.histogram()) == 4
    assert [count for _, _, count in built.histogram(5)] == [1, 0, 1, 1, 1]
    page = paths[0].read_text()
    assert "Sizes of the three examples." in page and "<svg" in page and "dee" in page
    csv_rows = rows(paths[1])
    assert [r["count"] for r in csv_rows if r["kind"] == "mistake"] == ["2"]
