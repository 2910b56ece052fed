"""The batch grader's parts (autograder/grade.py) that need no sandbox: collecting a class from
a folder or an LMS zip, the keys and the fingerprint that decide whether a grade is reused,
the CSV and the summary. That the whole command grades a class is test_grader.py's."""

from __future__ import annotations

import csv
import shutil
import zipfile
from pathlib import Path

import pytest

from autograder import collect as collecting
from autograder import grade, grader_files
from autograder.grade import Course, collect, submission_key, summary

REPOSITORY = Path(__file__).resolve().parents[1]
ASSIGNMENT = "01-shapes"


def learner(folder: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_text(text)
    return folder


@pytest.fixture
def course(tmp_path) -> Course:
    return Course(tmp_path / "course", ASSIGNMENT)


def test_a_class_folder_is_collected_under_the_learners_ids(course, tmp_path, monkeypatch):
    """Each learner's plain files under their folder's name; everything else is listed with
    the reason (tests/test_collect.py has one test per rule)."""
    monkeypatch.setattr(collecting, "MAX_SUBMISSION_BYTES", 100)
    batch = tmp_path / "batch"
    learner(batch / "ada", {"shapes.ipynb": "ada's", "extra/notes.txt": "kept",
                            "huge.ipynb": "x" * 101})
    learner(batch / "bo" / ASSIGNMENT, {"shapes.ipynb": "bo's"})  # nbgrader's own layout
    learner(batch / "bad name!", {"shapes.ipynb": "?"})
    learner(batch / ".hidden-but-valid-looking", {"shapes.ipynb": "?"})
    (batch / "loose.ipynb").write_text("not in a learner's folder")
    (batch / "cy").symlink_to(batch / "ada")
    (batch / "ada" / "linked.ipynb").symlink_to(batch / "loose.ipynb")
    students, refused = collect(course, batch)
    assert students == ["ada", "bo"]
    assert set(refused) == {"bad name!", ".hidden-but-valid-looking", "loose.ipynb", "cy",
                            "ada/huge.ipynb", "ada/linked.ipynb"}
    assert "not a usable student id" in refused["bad name!"]
    assert "not a usable student id" in refused[".hidden-but-valid-looking"]
    assert "no student id in the file name" in refused["loose.ipynb"]
    assert "link" in refused["cy"] and "link" in refused["ada/linked.ipynb"]
    assert "larger than" in refused["ada/huge.ipynb"]
    ada = course.folder("submitted", "ada")
    assert sorted(p.relative_to(ada).as_posix() for p in ada.rglob("*") if p.is_file()) == \
        ["extra/notes.txt", "shapes.ipynb"]  # no link, nothing oversized
    assert (course.folder("submitted", "bo") / "shapes.ipynb").read_text() == "bo's"


def test_collecting_again_replaces_what_a_learner_submitted_before(course, tmp_path):
    batch = tmp_path / "batch"
    learner(batch / "ada", {"old.ipynb": "first"})
    collect(course, batch)
    shutil.rmtree(batch / "ada")
    learner(batch / "ada", {"new.ipynb": "second"})
    collect(course, batch)
    assert [p.name for p in course.folder("submitted", "ada").iterdir()] == ["new.ipynb"]


def test_something_that_is_neither_a_folder_nor_a_zip_is_refused(course, tmp_path):
    (tmp_path / "class.tar").write_text("")
    with pytest.raises(SystemExit, match="neither a folder"):
        collect(course, tmp_path / "class.tar")


def test_an_lms_zip_is_collected_by_its_file_names_and_unusable_names_are_listed(course,
                                                                                 tmp_path):
    shutil.copytree(REPOSITORY / "solutions" / ASSIGNMENT, course.source)
    archive = tmp_path / "download.zip"
    with zipfile.ZipFile(archive, "w") as bundle:
        bundle.writestr("ada_attempt_1_shapes.ipynb", "{}")
        bundle.writestr("bad name!_shapes.ipynb", "{}")
    students, refused = collect(course, archive)
    assert (course.folder("submitted", "ada") / "shapes.ipynb").read_text() == "{}"
    assert students == ["ada"]
    assert list(refused) == ["bad name!_shapes.ipynb"]
    assert "not a usable student id" in refused["bad name!_shapes.ipynb"]


def test_a_submissions_key_follows_its_files_and_the_fingerprint(course):
    folder = learner(course.folder("submitted", "ada"), {"shapes.ipynb": "v1"})
    key = submission_key(course, "ada", "fingerprint")
    assert submission_key(course, "ada", "fingerprint") == key
    assert submission_key(course, "ada", "another fingerprint") != key
    (folder / "shapes.ipynb").write_text("v2")
    assert submission_key(course, "ada", "fingerprint") != key
    (folder / "shapes.ipynb").write_text("v1")
    (folder / "shapes.ipynb").rename(folder / "renamed.ipynb")
    assert submission_key(course, "ada", "fingerprint") != key


def test_a_submissions_time_is_not_part_of_its_key(course):
    """A time settled again (a learner's impossible timestamp.txt becomes the time it was
    read) changes the late penalty, not the grade: the learner is not graded again."""
    folder = learner(course.folder("submitted", "ada"), {"shapes.ipynb": "v1",
                                                         "timestamp.txt": "2026-12-01 10:00:00"})
    key = submission_key(course, "ada", "fingerprint")
    (folder / "timestamp.txt").write_text("2026-12-06 08:15:00.000000 UTC")
    assert submission_key(course, "ada", "fingerprint") == key
    (folder / "notes" / "timestamp.txt").parent.mkdir()
    (folder / "notes" / "timestamp.txt").write_text("a learner's file of that name, elsewhere")
    assert submission_key(course, "ada", "fingerprint") != key


def test_a_previous_grade_is_reused_only_under_the_same_key(course):
    result = course.folder("autograded", "ada") / "result.json"
    result.parent.mkdir(parents=True)
    result.write_text('{"key": "k1", "score": 3}')
    assert grade.previous_result(course, "ada", "k1") == {"key": "k1", "score": 3}
    assert grade.previous_result(course, "ada", "k2") is None
    result.write_text("{broken")
    assert grade.previous_result(course, "ada", "k1") is None


@pytest.fixture
def grader_copy(tmp_path) -> Path:
    """A copy of the repository's grader (autograder/, convcourse/) and one assignment."""
    root = tmp_path / "grader"
    for folder in ("autograder", "convcourse", f"solutions/{ASSIGNMENT}",
                   f"notebooks/{ASSIGNMENT}"):
        shutil.copytree(REPOSITORY / folder, root / folder,
                        ignore=shutil.ignore_patterns("__pycache__", "submitted", "autograded",
                                                      "feedback", "dist", "*.db", "*.csv"))
    return root


def fingerprint(root: Path) -> str:
    return Course(root, ASSIGNMENT, grader=root).fingerprint()


def touch(path: Path) -> None:
    path.write_text(path.read_text() + "\n# changed\n")


def test_the_fingerprint_follows_the_grading_code_and_not_the_books_figures(grader_copy):
    before = fingerprint(grader_copy)
    assert fingerprint(grader_copy) == before
    touch(next((grader_copy / "convcourse" / "figures").glob("*.py")))
    assert fingerprint(grader_copy) == before
    for changed in ("convcourse/grading/checks.py", "convcourse/reference.py",
                    "autograder/sandboxed/runner.py", "autograder/score.py",
                    f"solutions/{ASSIGNMENT}/shapes.ipynb"):
        touch(grader_copy / changed)
        assert fingerprint(grader_copy) != before, changed
        before = fingerprint(grader_copy)


def test_a_new_file_of_the_grader_is_in_the_fingerprint(grader_copy):
    before = fingerprint(grader_copy)
    (grader_copy / "autograder" / "sandboxed" / "helper.py").write_text("HELP = 1\n")
    assert "autograder/sandboxed/helper.py" in grader_files(grader_copy)
    assert fingerprint(grader_copy) != before


def test_the_graders_files_are_its_python_packages_and_no_working_folder(grader_copy):
    work = grader_copy / "autograder"
    learner(work / "submitted" / "ada" / ASSIGNMENT, {"helper.py": "a learner's file"})
    (work / "gradebook.db").write_text("")
    files = grader_files(grader_copy)
    assert "autograder/sandboxed/absent/__init__.py" in files
    assert "convcourse/grading/checks.py" in files and "convcourse/reference.py" in files
    assert not [name for name in files if "submitted" in name or "figures" in name
                or not name.endswith(".py")]


GRADED = {"student_id": "ada", "score": 3.0, "max_score": 4.0, "problem": None,
          "notebooks": {"shapes": {"notes": []}}}


def test_not_graded_csv_keeps_other_batches_and_replaces_this_ones(course):
    course.work.mkdir(parents=True)
    first = grade.write_not_graded(course, "class.zip", {"loose.ipynb": "no student id"}, {})
    grade.write_not_graded(course, "late.zip", {"=x.ipynb": "no student id"}, {})
    grade.write_not_graded(course, "class.zip", {"other.txt": "why"}, {"dee": "OSError"})
    with first.open(newline="") as file:
        rows = [tuple(row.values()) for row in csv.DictReader(file)]
    assert rows == [(ASSIGNMENT, "late.zip", "'=x.ipynb", "no student id"),
                    (ASSIGNMENT, "class.zip", "other.txt", "why"),
                    (ASSIGNMENT, "class.zip", "dee",
                     "the grader failed (run again to retry): OSError")]


def test_a_forced_regrade_that_was_interrupted_goes_on_where_it_stopped(course):
    """--force grades again what was graded before the forced run began, once: run again
    after a Ctrl-C, it reuses what the forced run graded."""
    result = course.folder("autograded", "ada") / "result.json"
    result.parent.mkdir(parents=True)
    result.write_text('{"key": "k", "graded_at": 1.0}')
    since = grade.forced_since(course, force=True)
    assert grade.previous_result(course, "ada", "k", since) is None  # graded before: again
    assert grade.forced_since(course, force=True) == since  # the interrupted run's start
    result.write_text(f'{{"key": "k", "graded_at": {since + 1}}}')
    assert grade.previous_result(course, "ada", "k", since) is not None
    grade.forced_done(course)
    assert grade.forced_since(course, force=True) > since
    assert grade.forced_since(course, force=False) is None


def test_the_summary_counts_and_names_who_had_a_problem():
    results = [GRADED, {**GRADED, "student_id": "bo", "score": 1.0, "problem": "a crash"},
               {**GRADED, "student_id": "cy", "notebooks": {"shapes": {"notes": ["hung"]}}}]
    text = summary(results, {"bad name!": "not a usable id"}, {"dee": "OSError: disk"}, 60)
    lines = text.splitlines()
    assert lines[0] == "Graded 3 submissions in 60 s (3.0 per minute)."
    reused = summary([{**GRADED, "reused": True}, GRADED], {}, {}, 30).splitlines()[0]
    assert reused == "Graded 1 submissions in 30 s (2.0 per minute); 1 graded before were reused."
    assert lines[1] == "Mean score 2.33 of 4."
    assert "  bo: a crash" in lines
    assert any(line.startswith("  code that crashed, hung or was stopped") and
               line.endswith(": cy") for line in lines)
    assert "  not graded: 'bad name!': not a usable id" in lines
    assert "  not graded, the grader failed (run again to retry): dee: OSError: disk" in lines
    assert summary([], {}, {}, 0) == "Graded 0 submissions in 0 s."


def test_the_schema_version_read_in_process_is_the_one_the_alembic_command_gives():
    """make grade makes a new gradebook without nbgrader's `alembic heads` process: the
    version it records is the one that command prints."""
    import subprocess
    import sys
    from pathlib import Path

    from nbgrader.dbutil import _temp_alembic_ini

    with _temp_alembic_ini("sqlite:////nowhere/gradebook.db") as ini:  # as nbgrader runs it
        heads = subprocess.run([str(Path(sys.executable).parent / "alembic"), "-c", ini,
                                "heads"], capture_output=True, text=True, check=True).stdout
    assert heads.split()[0] == grade.schema_version()
