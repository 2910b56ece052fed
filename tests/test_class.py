"""A real class loses no grade (issue 17): ``make grade``'s CLI on a 32-learner Canvas download
of 01-shapes with what real classes hold (names with apostrophes and letters beyond ASCII, two
learners of one name, files at the zip's top level, a late resubmission, a duplicate member),
then a Ctrl-C and the run again, a manual score and comment in the gradebook, and a later
download regraded with ``--force``; and a download holding one learner per LMS format.

Checked after each run: every member of the zip is graded under a student id or listed in
autograder/not-graded.csv with its reason; the newest submission is graded; grades.csv and
the LMS exports equal the gradebook (every learner of every batch, the manual score included);
the class report's counts equal the result files'; the feedback shows the manual score and
comment. Most learners hand in the released notebook (graded 0 quickly); a few the solution.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import warnings
import zipfile
from pathlib import Path

import pytest
from course import NOTEBOOKS, ROOT, SOLUTIONS
from nbgrader.api import Gradebook

pytestmark = [pytest.mark.slow, pytest.mark.sandbox]

ASSIGNMENT, NOTEBOOK = "01-shapes", "shapes"
FILE = f"{NOTEBOOK}.ipynb"
SOLVED = (SOLUTIONS / ASSIGNMENT / FILE).read_bytes()
STUB = (NOTEBOOKS / ASSIGNMENT / FILE).read_bytes()
LIMITS = ["--call-timeout", "5", "--cells-timeout", "15", "--workers", "2"]

#: The roster: student id, Canvas user id, name (as the registry writes it), section.
NAMED = [("s01", "1001", "Mary O'Brien"), ("s02", "1002", "Jürgen Müller"),
         ("s03", "1003", "John Smith"), ("s04", "1004", "John Smith"),
         ("s05", "1005", "Zoë Ng")]
ROSTER = NAMED + [(f"s{n:02d}", str(1000 + n), f"Learner{n} Class") for n in range(6, 33)]
ABSENT = ("s33", "1033", "Absent Learner")


def canvas_name(name: str) -> str:
    """Canvas's name part: the sortable name (last, first) lower-cased, non-word characters
    dropped (an apostrophe vanishes, Unicode letters stay)."""
    first, last = name.rsplit(" ", 1)
    return "".join(char for char in f"{last}{first}".lower() if char.isalnum())


def member(student: str, suffix: str = "", attachment: int = 0, late: bool = False) -> str:
    _, user, name = next(row for row in ROSTER if row[0] == student)
    number = attachment or 5000 + int(user)
    return f"{canvas_name(name)}{'_LATE' if late else ''}_{user}_{number}_{NOTEBOOK}{suffix}.ipynb"


def class_zip(path: Path) -> tuple[Path, dict[str, bytes], set[str]]:
    """The download: (the zip, each learner's notebook that must be graded, the members that
    must be listed as not graded)."""
    graded = {student: STUB for student, _, _ in ROSTER}
    graded |= {"s01": SOLVED, "s02": SOLVED, "s04": SOLVED}
    with zipfile.ZipFile(path, "w") as bundle:
        for student, _, _ in ROSTER:
            if student not in ("s01", "s06"):
                bundle.writestr(member(student), graded[student])
        bundle.writestr(member("s01"), STUB)  # Mary's first try, then her late resubmission
        bundle.writestr(member("s01", "-1", attachment=9001, late=True), SOLVED)
        bundle.writestr(member("s06"), b'{"a duplicate": "the same name twice"}')
        with warnings.catch_warnings():  # zipfile's note on the duplicate: wanted here
            warnings.simplefilter("ignore")
            bundle.writestr(member("s06"), STUB)  # the later of the two is kept
        bundle.writestr(FILE, SOLVED)  # a top-level notebook naming no one
        bundle.writestr("readme.txt", b"the instructor's note")
    listed = {member("s01"), member("s06"), FILE, "readme.txt"}
    return path, graded, listed


def grade(root: Path, batch: Path, *extra: str, background: bool = False):
    command = [sys.executable, "-m", "autograder.grade", ASSIGNMENT, str(batch), "--root",
               str(root), "--roster", str(root / "roster.csv"), *LIMITS, *extra]
    options = dict(cwd=ROOT, text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    if background:
        return subprocess.Popen(command, **options,
                                preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    return subprocess.run(command, check=False, timeout=900, **options)


def rows(path: Path) -> list[dict]:
    with path.open(newline="", encoding="utf-8") as file:
        return list(csv.DictReader(file))


def gradebook(root: Path) -> dict[str, float]:
    with Gradebook(f"sqlite:///{root / 'autograder' / 'gradebook.db'}") as book:
        return {s.student.id: s.score for s in book.find_assignment(ASSIGNMENT).submissions}


def results(root: Path) -> dict[str, dict]:
    folder = root / "autograder" / "autograded"
    return {path.parents[1].name: json.loads(path.read_text())
            for path in folder.glob(f"*/{ASSIGNMENT}/result.json")}


def assert_outputs_equal_the_gradebook(root: Path) -> None:
    book = gradebook(root)
    work = root / "autograder"
    assert {r["student_id"]: float(r["score"]) for r in rows(work / "grades.csv")} == book
    canvas = {r["SIS User ID"]: r[ASSIGNMENT] for r in rows(work / "exports" / "canvas.csv")}
    assert {s: float(v) for s, v in canvas.items() if v} == book
    assert canvas.get(ABSENT[0]) == ""
    moodle = {r["ID number"]: r[ASSIGNMENT] for r in rows(work / "exports" / "moodle.csv")}
    users = {student: user for student, user, _ in [*ROSTER, ABSENT]}
    assert {s: float(moodle[users[s]]) for s in book} == book
    report = {(r["kind"], r["what"]): r for r in rows(work / "report" / f"{ASSIGNMENT}.csv")}
    # (a result a Ctrl-C kept from the gradebook is recorded by the next run, which reuses it)
    graded = {student: r for student, r in results(root).items() if student in book}
    assert sum(int(r["count"]) for (kind, _), r in report.items() if kind == "score") == \
        len(book) == len(graded)
    for (kind, what), r in report.items():
        if kind == "test":
            grade_id = what.split(":")[0]
            passed = sum(t["score"] == t["points"] for g in graded.values()
                         for t in g["notebooks"][NOTEBOOK]["tests"] if t["grade_id"] == grade_id)
            assert (int(r["count"]), int(r["of / learners"])) == (passed, len(graded)), what


@pytest.fixture(scope="module")
def course(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("class") / "course"
    for kind, folder in (("solutions", SOLUTIONS), ("notebooks", NOTEBOOKS)):
        shutil.copytree(folder / ASSIGNMENT, root / kind / ASSIGNMENT)
    with (root / "roster.csv").open("w", newline="", encoding="utf-8") as file:
        writer = csv.writer(file)
        writer.writerow(["student_id", "lms_id", "name", "section"])
        writer.writerows([[s, u, n, "A"] for s, u, n in [*ROSTER, ABSENT]])
    return root


def test_a_class_download_is_graded_whole_through_a_ctrl_c(course, tmp_path):
    archive, expected, listed = class_zip(tmp_path / "canvas.zip")
    run = grade(course, archive, background=True)
    deadline = time.monotonic() + 600
    while len(results(course)) < 3 and time.monotonic() < deadline and run.poll() is None:
        time.sleep(0.2)
    time.sleep(1)  # the grader records what the workers sent
    run.send_signal(signal.SIGINT)
    out, err = run.communicate(timeout=300)
    assert run.returncode == 130, out[-3000:] + err[-3000:]
    assert len(gradebook(course)) < 32  # what was graded is in grades.csv, and only that
    assert_outputs_equal_the_gradebook(course)
    again = grade(course, archive)
    assert again.returncode == 0, again.stdout[-3000:] + again.stderr[-3000:]
    assert "graded before were reused" in again.stdout.splitlines()[0]
    assert "RuntimeWarning" not in again.stderr
    scores = gradebook(course)
    assert set(scores) == set(expected)
    for student, data in expected.items():
        submitted = course / "autograder" / "submitted" / student / ASSIGNMENT / FILE
        assert submitted.read_bytes() == data, student
        assert (scores[student] == 22) == (data == SOLVED), student
    not_graded = {r["file"]: r["reason"] for r in rows(course / "autograder" /
                                                        "not-graded.csv")}
    assert set(not_graded) == listed
    assert "older submission of s01" in not_graded[member("s01")]
    assert "same name" in not_graded[member("s06")]
    assert "no student id" in not_graded[FILE]
    assert "  roster: s33: on the roster, no submission" in again.stdout
    assert "Class report:" in again.stdout
    assert_outputs_equal_the_gradebook(course)


def test_a_manual_score_survives_a_later_download_graded_with_force(course, tmp_path):
    with Gradebook(f"sqlite:///{course / 'autograder' / 'gradebook.db'}") as book:
        book.find_grade("test_weight_shape", NOTEBOOK, ASSIGNMENT, "s05").manual_score = 2.0
        book.find_comment("conv2d_num_params", NOTEBOOK, ASSIGNMENT,
                          "s05").manual_comment = "Nearly: see the bias term."
        book.db.commit()
    late = tmp_path / "late.zip"
    with zipfile.ZipFile(late, "w") as bundle:
        bundle.writestr(member("s05", "-1", attachment=9500, late=True), STUB)
        bundle.writestr(member("s06", "-1", attachment=9600, late=True), SOLVED)
    run = grade(course, late, "--force")
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    scores = gradebook(course)
    assert len(scores) == 32 and scores["s05"] == 2.0 and scores["s06"] == 22
    rows_by_id = {r["student_id"]: r for r in rows(course / "autograder" / "grades.csv")}
    assert rows_by_id["s05"]["manually_graded"] == "yes"
    assert_outputs_equal_the_gradebook(course)
    page = (course / "autograder" / "feedback" / "s05" / ASSIGNMENT / f"{NOTEBOOK}.html")
    text = page.read_text()
    assert "Score: 2.0 / 22.0" in text and "Nearly: see the bias term." in text


def test_one_learner_per_lms_format_is_recognised_and_graded(tmp_path):
    root = tmp_path / "course"
    for kind, folder in (("solutions", SOLUTIONS), ("notebooks", NOTEBOOKS)):
        shutil.copytree(folder / ASSIGNMENT, root / kind / ASSIGNMENT)
    archive = tmp_path / "mixed.zip"
    with zipfile.ZipFile(archive, "w") as bundle:
        bundle.writestr(f"lovelaceada_11_501_{FILE}", SOLVED)
        bundle.writestr(f"Mary O'Brien_77_assignsubmission_file_/{FILE}", SOLVED)
        bundle.writestr(f"Jürgen Müller_78_assignsubmission_file_{FILE}", STUB)
        bundle.writestr(f"A1_jdoe3_attempt_2026-11-02-18-30-05_{FILE}", SOLVED)
        bundle.writestr(f"13394-80551 - Eric Gillotti - Mar 29, 2026 1205 PM/{FILE}", SOLVED)
        bundle.writestr(f"13395-80552 - Zoë Ng - Mar 29, 2026 1210 PM - {FILE}", STUB)
    run = subprocess.run([sys.executable, "-m", "autograder.grade", ASSIGNMENT, str(archive),
                          "--root", str(root), *LIMITS], cwd=ROOT, text=True,
                         capture_output=True, timeout=900, check=False,
                         env={**os.environ})
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    assert gradebook(root) == {"lovelaceada": 22, "Mary-OBrien": 22, "Jurgen-Muller": 0,
                               "jdoe3": 22, "Eric-Gillotti": 22, "Zoe-Ng": 0}
    with Gradebook(f"sqlite:///{root / 'autograder' / 'gradebook.db'}") as book:
        assert str(book.find_submission(ASSIGNMENT, "jdoe3").timestamp).startswith(
            "2026-11-02 18:30:05")
        assert book.find_student("lovelaceada").lms_user_id == "11"
