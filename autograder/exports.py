"""Everything a class's grades go out as, rebuilt from the gradebook after every batch: the
gradebook is the one source of truth (manual scores and comments from formgrader included), so
nothing here remembers a batch.

- ``autograder/grades.csv``: one row per learner and assignment, every learner of every batch
  (the score after any late penalty, and the penalty);
- ``autograder/exports/canvas.csv``: Canvas's gradebook import (the columns of Canvas's own
  gradebook export, which its import reads back: ``Student, ID, SIS User ID, SIS Login ID,
  Section``, then one column per assignment; rows are matched by ``ID``, Canvas's user id);
- ``autograder/exports/moodle.csv``: Moodle's "Import grades from CSV" (a header row, one
  column naming the learner, which the import maps to an id number or username, and one
  column per grade item);
- ``autograder/exports/roster-check.csv``: with a roster, who handed in nothing and whose
  submissions name no one on it.

Learner text (ids, names, problems) goes through :func:`autograder.plain.csv_field`.
"""

from __future__ import annotations

import csv
import json
import warnings
from dataclasses import dataclass, field
from pathlib import Path

from autograder import plain
from autograder.roster import Roster


@dataclass
class Grade:
    """One learner's grade for one assignment, as the gradebook has it."""

    student_id: str
    assignment: str
    score: float
    max_score: float
    manual: bool = False                       # a manual score or comment was given
    lms_id: str = ""                           # the LMS's id, where a batch named it
    problem: str = ""                          # why the grader could not grade it all
    tests: dict[str, float] = field(default_factory=dict)      # cell -> score (manual or not)
    comments: dict[str, str] = field(default_factory=dict)    # answer cell -> manual comment
    late: dict[str, float] = field(default_factory=dict)      # notebook -> late penalty (> 0)

    @property
    def late_penalty(self) -> float:
        """What the late policy took off (``score`` is what is left: the grade)."""
        return sum(self.late.values())


def read_gradebook(db_url: str, course_id: str = "default_course") -> list[Grade]:
    """Every submission of every assignment in the gradebook, manual scores and late
    penalties included (the score is after the penalty, as nbgrader's export has it)."""
    from nbgrader.api import Gradebook

    grades = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # SQLAlchemy's notes on nbgrader's own session use
        with Gradebook(db_url, course_id) as gradebook:
            for assignment in gradebook.assignments:
                for submission in assignment.submissions:
                    cells = [g for nb in submission.notebooks for g in nb.grades]
                    comments = [c for nb in submission.notebooks for c in nb.comments]
                    manual = any(g.manual_score is not None for g in cells) or \
                        any(c.manual_comment for c in comments)
                    late = {nb.name: float(nb.late_submission_penalty)
                            for nb in submission.notebooks if nb.late_submission_penalty}
                    grades.append(Grade(
                        submission.student.id, assignment.name,
                        max(0.0, float(submission.score) - sum(late.values())),
                        float(submission.max_score), manual,
                        submission.student.lms_user_id or "",
                        tests={g.name: float(g.score) for g in cells},
                        comments={c.name: c.manual_comment for c in comments
                                  if c.manual_comment}, late=late))
    return sorted(grades, key=lambda g: (g.assignment, g.student_id))


def _problem(work: Path, grade: Grade) -> str:
    """The grader's note on a learner's whole submission (no notebook, say), from result.json."""
    path = work / "autograded" / grade.student_id / grade.assignment / "result.json"
    try:
        return json.loads(path.read_text()).get("problem") or ""
    except (OSError, ValueError, AttributeError):
        return ""


def write_rows(path: Path, header: list[str], rows: list[list]) -> Path:
    """A CSV written whole or not at all; every cell plain text."""
    path.parent.mkdir(parents=True, exist_ok=True)
    scratch = path.with_suffix(".csv.part")
    with scratch.open("w", newline="", encoding="utf-8") as file:
        writer = csv.writer(file)
        writer.writerow(header)
        writer.writerows([[plain.csv_field(cell) for cell in row] for row in rows])
    scratch.replace(path)
    return path


def _number(value: float) -> str:
    return f"{value:g}"


def write_grades(work: Path, grades: list[Grade], roster: Roster | None) -> Path:
    """autograder/grades.csv: every learner of every assignment, as the gradebook has them."""
    rows = []
    for grade in grades:
        member = roster.by_id.get(grade.student_id) if roster else None
        rows.append([grade.student_id, member.name if member else "",
                     member.section if member else "", grade.assignment,
                     _number(grade.score), _number(grade.max_score),
                     "yes" if grade.manual else "", _number(grade.late_penalty), grade.problem])
    return write_rows(work / "grades.csv", ["student_id", "name", "section", "assignment", "score",
                                        "max_score", "manually_graded", "late_penalty",
                                        "problem"], rows)


def _learners(grades: list[Grade], roster: Roster | None) -> list[str]:
    """Every learner: the roster's, in its order, then those of the gradebook it lacks."""
    known = [m.student_id for m in roster.members] if roster else []
    return known + sorted({g.student_id for g in grades} - set(known))


def write_lms_exports(work: Path, grades: list[Grade], roster: Roster | None) -> list[Path]:
    """The Canvas and Moodle imports: one row per learner, one column per assignment (empty
    where the learner handed nothing in)."""
    assignments = sorted({g.assignment for g in grades})
    by = {(g.student_id, g.assignment): g for g in grades}
    lms_ids = {g.student_id: g.lms_id for g in grades if g.lms_id}
    canvas, moodle = [], []
    for student in _learners(grades, roster):
        member = roster.by_id.get(student) if roster else None
        lms_id = (member.lms_id if member else "") or lms_ids.get(student, "")
        scores = [_number(by[student, a].score) if (student, a) in by else ""
                  for a in assignments]
        name = member.name if member and member.name else student
        canvas.append([name, lms_id, student, "", member.section if member else "", *scores])
        moodle.append([lms_id or student, name, *scores])
    folder = work / "exports"
    return [write_rows(folder / "canvas.csv", ["Student", "ID", "SIS User ID", "SIS Login ID",
                                           "Section", *assignments], canvas),
            write_rows(folder / "moodle.csv", ["ID number", "Full name", *assignments], moodle)]


def roster_check(grades: list[Grade], roster: Roster, assignment: str) -> list[list[str]]:
    """With a roster: (student id, what) for each learner on it without a submission of
    ``assignment``, and each submission of a learner not on it."""
    handed_in = {g.student_id for g in grades if g.assignment == assignment}
    rows = [[m.student_id, "on the roster, no submission"] for m in roster.members
            if m.student_id not in handed_in]
    rows += [[student, "submitted, not on the roster"] for student in sorted(handed_in)
             if student not in roster.by_id]
    return rows


def rebuild(work: Path, db_url: str, assignment: str, roster: Roster | None = None,
            course_id: str = "default_course") -> dict[str, object]:
    """Rebuild grades.csv and every export from the gradebook; what was written, and the
    roster's check of ``assignment`` (empty without a roster)."""
    grades = read_gradebook(db_url, course_id)
    for grade in grades:
        grade.problem = _problem(work, grade)
    check = roster_check(grades, roster, assignment) if roster else []
    paths = [write_grades(work, grades, roster), *write_lms_exports(work, grades, roster)]
    if roster:
        paths.append(write_rows(work / "exports" / "roster-check.csv", ["student_id", "what"],
                            check))
    return {"paths": paths, "grades": grades, "roster": check}
