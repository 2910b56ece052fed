"""Downloads made at different times merge (issue 17; autograder/collect.py's copy_learner):
per learner and notebook the newest submission, by the LMS's own order (Canvas's attachment
id, Blackboard's attempt time, the time a zip was made for Moodle, file times for a folder),
is the one graded, whatever order the instructor grades the downloads in. An older file is
listed ("older than the submission already graded"), a newer one replaces the graded one and
is graded, the same file again keeps its grade.

The unit tests collect real zips and folders into a scratch course; the last ones grade one
small Canvas class of 01-shapes with ``make grade``'s entry point, three downloads in the wrong
order (a module-scoped fixture shared by the tests that check it)."""

from __future__ import annotations

import contextlib
import csv
import io
import json
import os
import shutil
import zipfile
from datetime import datetime
from pathlib import Path

import pytest
from course import NOTEBOOKS, SOLUTIONS
from nbgrader.api import Gradebook

from autograder import collect as collecting
from autograder import grade
from autograder.collect import collect, submitted_time
from autograder.grade import Course

NOTEBOOK = "conv2d-numpy"
FILE = f"{NOTEBOOK}.ipynb"
OLDER = "older than the submission already graded ("
MONDAY, WEDNESDAY = (2026, 3, 2, 9, 0, 0), (2026, 3, 4, 9, 0, 0)


def scratch_course(root: Path, *notebooks: str) -> Course:
    """A course whose assignment has these notebooks (their names are all collecting reads)."""
    course = Course(root / "course", "02-numpy")
    course.source.mkdir(parents=True)
    for notebook in notebooks:
        (course.source / f"{notebook}.ipynb").write_text("{}")
    return course


@pytest.fixture
def course(tmp_path) -> Course:
    return scratch_course(tmp_path, NOTEBOOK)


def download(path: Path, members: dict[str, str | bytes], when=WEDNESDAY) -> Path:
    """A zip as an LMS makes it: every member stamped with the time the zip was made."""
    with zipfile.ZipFile(path, "w") as bundle:
        for name, data in members.items():
            bundle.writestr(zipfile.ZipInfo(name, date_time=when), data)
    return path


def files_of(course: Course, student: str) -> dict[str, str]:
    folder = course.folder("submitted", student)
    return {p.relative_to(folder).as_posix(): p.read_text() for p in sorted(folder.rglob("*"))
            if p.is_file()}


# --- collecting: the newest per learner and notebook, whatever the order -------------------

CANVAS_MONDAY = {f"lovelaceada_11_5001_{FILE}": "ada's first try",
                 f"hopperbo_12_5002_{FILE}": "bo's only submission"}
CANVAS_WEDNESDAY = {f"lovelaceada_LATE_11_6001_{NOTEBOOK}-1.ipynb": "ada's resubmission",
                    f"hopperbo_12_5002_{FILE}": "bo's only submission"}


@pytest.mark.parametrize("wrong_order", [False, True])
def test_canvas_downloads_merge_to_the_newest_attachment(course, tmp_path, wrong_order):
    monday = download(tmp_path / "monday.zip", CANVAS_MONDAY, MONDAY)
    wednesday = download(tmp_path / "wednesday.zip", CANVAS_WEDNESDAY)
    first, second = (wednesday, monday) if wrong_order else (monday, wednesday)
    assert collect(course, first).refused == {}
    refused = collect(course, second).refused
    assert files_of(course, "lovelaceada") == {FILE: "ada's resubmission"}
    assert files_of(course, "hopperbo") == {FILE: "bo's only submission"}
    if wrong_order:  # Monday's file of ada is listed; bo's, the same file, is not
        assert refused == {f"lovelaceada_11_5001_{FILE}": (
            f"{OLDER}lovelaceada_LATE_11_6001_{NOTEBOOK}-1.ipynb, from wednesday.zip)")}
    else:
        assert refused == {}


@pytest.mark.parametrize("late", ["LATE", "late"])  # some Canvas versions lower-case it
def test_canvas_orders_by_attachment_id_before_late(course, tmp_path, late):
    """LATE is as the due date stood when the zip was made: after an extension a newer
    submission is no longer LATE, and an earlier download's LATE file is still the older."""
    before = download(tmp_path / "before.zip", {f"lovelaceada_{late}_11_700_{FILE}": "late"})
    after = download(tmp_path / "after.zip", {f"lovelaceada_11_800_{FILE}": "extended"})
    collect(course, after)
    refused = collect(course, before).refused
    assert files_of(course, "lovelaceada") == {FILE: "extended"}
    assert refused[f"lovelaceada_{late}_11_700_{FILE}"].startswith(OLDER)


def test_the_same_file_again_is_left_as_it_is(course, tmp_path):
    archive = download(tmp_path / "monday.zip", CANVAS_MONDAY)
    collect(course, archive)
    folder = course.folder("submitted", "hopperbo")
    stamp = (folder / FILE).stat().st_mtime_ns
    record = collecting.record_path(course, "hopperbo").read_bytes()
    assert collect(course, archive).refused == {}
    assert (folder / FILE).stat().st_mtime_ns == stamp  # not copied again
    assert collecting.record_path(course, "hopperbo").read_bytes() == record


def test_a_later_copy_of_the_graded_file_counts_for_its_order(course, tmp_path):
    """Ada hands in X (attachment 100), Y (150), then X again (200). Graded in the order
    X, X again, Y: the second X changes no byte, yet Y must still be the older."""
    collect(course, download(tmp_path / "a.zip", {f"lovelaceada_11_100_{FILE}": "X"}))
    again = collect(course, download(tmp_path / "c.zip", {f"lovelaceada_11_200_{FILE}": "X"}))
    older = collect(course, download(tmp_path / "b.zip", {f"lovelaceada_11_150_{FILE}": "Y"}))
    assert again.refused == {} and files_of(course, "lovelaceada") == {FILE: "X"}
    assert older.refused[f"lovelaceada_11_150_{FILE}"] == \
        f"{OLDER}lovelaceada_11_200_{FILE}, from c.zip)"


def test_a_file_as_new_as_the_graded_one_but_other_bytes_is_listed(course, tmp_path):
    """One attachment id, two contents: no LMS makes that; the graded file stays, and the
    other is listed, not silently dropped."""
    collect(course, download(tmp_path / "a.zip", {f"lovelaceada_11_100_{FILE}": "graded"}))
    other = collect(course, download(tmp_path / "b.zip", {f"lovelaceada_11_100_{FILE}": "x"}))
    assert files_of(course, "lovelaceada") == {FILE: "graded"}
    assert other.refused == {f"lovelaceada_11_100_{FILE}": (
        f"as new as, yet no copy of, the submission already graded "
        f"(lovelaceada_11_100_{FILE}, from a.zip)")}


def test_a_download_of_late_resubmitters_only_changes_only_them(course, tmp_path):
    collect(course, download(tmp_path / "monday.zip", CANVAS_MONDAY, MONDAY))
    bo = collecting.record_path(course, "hopperbo").read_bytes()
    late = download(tmp_path / "late.zip", {f"lovelaceada_LATE_11_6001_{FILE}": "late"})
    assert collect(course, late).students == ["lovelaceada"]
    assert files_of(course, "lovelaceada") == {FILE: "late"}
    assert files_of(course, "hopperbo") == {FILE: "bo's only submission"}
    assert collecting.record_path(course, "hopperbo").read_bytes() == bo


@pytest.mark.parametrize("wrong_order", [False, True])
def test_blackboard_attempts_merge_and_the_newest_time_is_recorded(course, tmp_path,
                                                                   wrong_order):
    first = download(tmp_path / "first.zip", {
        f"A2_jdoe3_attempt_2026-11-01-10-00-00_{FILE}": "first attempt",
        "A2_jdoe3_attempt_2026-11-01-10-00-00.txt": "Name: Jane Doe (first)"})
    second = download(tmp_path / "second.zip", {
        f"A2_jdoe3_attempt_2026-11-02-18-30-05_{FILE}": "second attempt"})
    for batch in (second, first) if wrong_order else (first, second):
        refused = collect(course, batch).refused
    # the first attempt's details went with it: listed, or replaced by the second attempt
    assert files_of(course, "jdoe3") == {FILE: "second attempt",
                                         "timestamp.txt": "2026-11-02 18:30:05\n"}
    assert set(refused) == ({f"A2_jdoe3_attempt_2026-11-01-10-00-00_{FILE}",
                             "A2_jdoe3_attempt_2026-11-01-10-00-00.txt"} if wrong_order else
                            set())
    assert submitted_time(course.folder("submitted", "jdoe3")) == datetime(2026, 11, 2, 18, 30, 5)


def test_moodle_downloads_are_ordered_by_when_the_zip_was_made(course, tmp_path):
    """Moodle's names give no order; a download made later holds each learner's newest
    submission as of then, so its members (stamped when the zip was made) are the newer."""
    def moodle(name: str, when, mary: str) -> Path:
        return download(tmp_path / name, {
            f"Mary O'Brien_1234_assignsubmission_file_/{FILE}": mary,
            f"Jürgen Müller_1235_assignsubmission_file_/{FILE}": "jürgen's"}, when)

    collect(course, moodle("wednesday.zip", WEDNESDAY, "mary's second"))
    refused = collect(course, moodle("monday.zip", MONDAY, "mary's first")).refused
    assert files_of(course, "Mary-OBrien") == {FILE: "mary's second"}
    assert list(refused) == [f"Mary O'Brien_1234_assignsubmission_file_/{FILE}"]
    assert refused[f"Mary O'Brien_1234_assignsubmission_file_/{FILE}"].startswith(OLDER)


def test_folders_are_ordered_by_their_file_times(course, tmp_path):
    def folder(name: str, text: str, when: int) -> Path:
        (tmp_path / name / "ada").mkdir(parents=True)
        (tmp_path / name / "ada" / FILE).write_text(text)
        os.utime(tmp_path / name / "ada" / FILE, (when, when))
        return tmp_path / name

    collect(course, folder("later", "newer work", 2_000_000_000))
    refused = collect(course, folder("earlier", "older work", 1_900_000_000)).refused
    assert files_of(course, "ada") == {FILE: "newer work"}
    assert refused[f"ada/{FILE}"] == f"{OLDER}ada/{FILE}, from later)"


def test_each_notebook_is_merged_on_its_own_and_other_files_go_with_their_submission(
        tmp_path):
    """A download of only one notebook's resubmission keeps the other notebook graded; the
    files that are no notebook of the assignment (notes, a notebook under a name of the
    learner's own) are those of the newest submission, whatever order they came in."""
    course = scratch_course(tmp_path, "shapes", NOTEBOOK)
    first = download(tmp_path / "a.zip", {"lovelaceada_11_100_shapes.ipynb": "shapes",
                                          f"lovelaceada_11_101_{FILE}": "first",
                                          "lovelaceada_11_102_notes.txt": "first notes",
                                          "lovelaceada_11_103_my-draft.ipynb": "a draft"})
    second = download(tmp_path / "b.zip", {f"lovelaceada_11_200_{FILE}": "second",
                                           "lovelaceada_11_201_notes.txt": "second notes"})
    collect(course, first)
    assert collect(course, second).refused == {}
    expected = {"shapes.ipynb": "shapes", FILE: "second", "notes.txt": "second notes"}
    assert files_of(course, "lovelaceada") == expected
    refused = collect(course, first).refused  # graded again: all of it older
    assert files_of(course, "lovelaceada") == expected
    assert refused["lovelaceada_11_103_my-draft.ipynb"] == \
        f"{OLDER}lovelaceada_11_200_{FILE}, from b.zip)"
    assert set(refused) == {f"lovelaceada_11_101_{FILE}", "lovelaceada_11_102_notes.txt",
                            "lovelaceada_11_103_my-draft.ipynb"}  # shapes: the very same


# --- what a learner controls cannot make a file look newer ------------------------------------

def test_a_learners_file_name_cannot_make_it_newer_or_anothers(course, tmp_path):
    """The learner picks the name after the LMS's part; the order and the learner are read
    from the LMS's part, from the left: Blackboard's time, Canvas's attachment id."""
    collect(course, download(tmp_path / "a.zip", {
        f"A2_asmith_attempt_2026-11-02-10-00-00_{FILE}": "asmith's own",
        f"A2_jdoe3_attempt_2026-11-01-10-00-00_asmith_attempt_2099-01-01-00-00-00_{FILE}":
            "jdoe3 posing as asmith, in 2099",
        f"lovelaceada_11_900_99999999_{FILE}": "ada's, named to look newer"}))
    assert files_of(course, "asmith") == {FILE: "asmith's own",
                                          "timestamp.txt": "2026-11-02 10:00:00\n"}
    assert files_of(course, "jdoe3") == {FILE: "jdoe3 posing as asmith, in 2099",
                                         "timestamp.txt": "2026-11-01 10:00:00\n"}
    later = collect(course, download(tmp_path / "b.zip", {f"lovelaceada_11_950_{FILE}": "new"}))
    assert later.refused == {} and files_of(course, "lovelaceada") == {FILE: "new"}


def test_the_record_counts_only_where_the_folder_is_as_it_says(course, tmp_path):
    """The collector's record is its own; where the folder was changed by hand, or the record
    is garbage, nothing orders the files there and the later batch's replaces them."""
    newer = download(tmp_path / "newer.zip", {f"lovelaceada_11_900_{FILE}": "newer",
                                              f"hopperbo_12_901_{FILE}": "bo's newer"})
    older = download(tmp_path / "older.zip", {f"lovelaceada_11_800_{FILE}": "older",
                                              f"hopperbo_12_801_{FILE}": "bo's older"})
    collect(course, newer)
    (course.folder("submitted", "lovelaceada") / FILE).write_text("edited by hand")
    collecting.record_path(course, "hopperbo").write_text('{"files": {"x": [1]}}')
    assert collect(course, older).refused == {}
    assert files_of(course, "lovelaceada") == {FILE: "older"}
    assert files_of(course, "hopperbo") == {FILE: "bo's older"}
    record = json.loads(collecting.record_path(course, "hopperbo").read_text())
    assert record["files"][FILE]["order"] == [801, 0, 0]  # rewritten by the collector


def test_a_member_with_an_impossible_date_costs_nothing(course, tmp_path):
    """A forged header's date (month 0) is no time: the member is collected all the same."""
    archive = download(tmp_path / "forged.zip", {f"ada/{FILE}": "ada's"}, (1980, 0, 0, 0, 0, 0))
    assert collect(course, archive).students == ["ada"]
    assert files_of(course, "ada") == {FILE: "ada's"}


# --- graded: three Canvas downloads of 01-shapes, in the wrong order ------------------------

ASSIGNMENT, SHAPES = "01-shapes", "shapes.ipynb"
SOLVED = (SOLUTIONS / ASSIGNMENT / SHAPES).read_bytes()
STUB = (NOTEBOOKS / ASSIGNMENT / SHAPES).read_bytes()
#: Canvas downloads: Wednesday's (each learner's newest so far), Monday's (older), and one
#: of the late resubmitters only. Graded in that order.
DOWNLOADS = {
    "wednesday.zip": {"lovelaceada_LATE_11_6001_shapes-1.ipynb": SOLVED,
                      "hopperbo_12_5002_shapes.ipynb": STUB},
    "monday.zip": {"lovelaceada_11_5001_shapes.ipynb": STUB,
                   "hopperbo_12_5002_shapes.ipynb": STUB},
    "late.zip": {"hopperbo_LATE_12_7002_shapes-1.ipynb": SOLVED},
}



@pytest.fixture(scope="module")
def graded(tmp_path_factory) -> dict[str, dict]:
    """Grade the downloads one after the other in one course with make grade's entry point
    (in this process: one pool's start-up for the three, ``make grade`` runs the same main);
    after each, what it said, the gradebook's scores, when each learner was last graded, each
    one's graded notebook and the batch's rows of not-graded.csv."""
    base = tmp_path_factory.mktemp("merge")
    root = base / "course"
    for kind, folder in (("solutions", SOLUTIONS), ("notebooks", NOTEBOOKS)):
        shutil.copytree(folder / ASSIGNMENT, root / kind / ASSIGNMENT)
    work, seen = root / "autograder", {}
    for name, members in DOWNLOADS.items():
        with zipfile.ZipFile(base / name, "w") as bundle:
            for member, data in members.items():
                bundle.writestr(member, data)
        said = io.StringIO()
        with contextlib.redirect_stdout(said):
            status = grade.main([ASSIGNMENT, str(base / name), "--root", str(root),
                                 "--workers", "2", "--call-timeout", "5",
                                 "--cells-timeout", "15"])
        assert status == 0, said.getvalue()[-3000:]
        with Gradebook(f"sqlite:///{work / 'gradebook.db'}") as book:
            scores = {s.student.id: s.score for s in book.find_assignment(ASSIGNMENT).submissions}
        with (work / "not-graded.csv").open(newline="", encoding="utf-8") as file:
            listed = {row["file"]: row["reason"] for row in csv.DictReader(file)
                      if row["batch"] == name}
        seen[name] = {
            "said": said.getvalue().splitlines()[0], "scores": scores, "listed": listed,
            "graded_at": {path.parents[1].name: json.loads(path.read_text())["graded_at"]
                          for path in (work / "autograded").glob(f"*/{ASSIGNMENT}/result.json")},
            "submitted": {student: (work / "submitted" / student / ASSIGNMENT / SHAPES)
                          .read_bytes() for student in scores}}
    return seen


@pytest.mark.slow
@pytest.mark.sandbox
def test_the_newest_download_graded_first_stays_graded(graded):
    wednesday, monday = graded["wednesday.zip"], graded["monday.zip"]
    assert wednesday["scores"] == {"lovelaceada": 22, "hopperbo": 0}
    assert wednesday["said"].startswith("Graded 2 submission")
    assert monday["scores"] == wednesday["scores"]
    assert monday["submitted"] == wednesday["submitted"] == {"lovelaceada": SOLVED,
                                                             "hopperbo": STUB}
    assert monday["graded_at"] == wednesday["graded_at"]  # nobody graded again
    assert monday["said"].startswith("Graded 0 submission") and "2 graded before" in \
        monday["said"]
    assert monday["listed"] == {"lovelaceada_11_5001_shapes.ipynb": (
        f"{OLDER}lovelaceada_LATE_11_6001_shapes-1.ipynb, from wednesday.zip)")}


@pytest.mark.slow
@pytest.mark.sandbox
def test_a_download_of_late_resubmitters_regrades_them_only(graded):
    monday, late = graded["monday.zip"], graded["late.zip"]
    assert late["scores"] == {"lovelaceada": 22, "hopperbo": 22}
    assert late["submitted"] == {"lovelaceada": SOLVED, "hopperbo": SOLVED}
    assert late["listed"] == {} and late["said"].startswith("Graded 1 submission")
    assert late["graded_at"]["hopperbo"] > monday["graded_at"]["hopperbo"]
    assert late["graded_at"]["lovelaceada"] == monday["graded_at"]["lovelaceada"]
