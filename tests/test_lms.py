"""Collecting a class as each LMS downloads it (autograder/collect.py's NAMINGS): one realistic
zip per format, learners' names with apostrophes, spaces and letters of any script, the
newest of several submissions graded and the others listed, and a roster that maps the LMS's
names to student ids. Collecting only: test_class.py grades a class end to end."""

from __future__ import annotations

import os
import zipfile
from datetime import datetime
from pathlib import Path

import pytest
import test_collect

from autograder import collect as collecting
from autograder.collect import collect, folder_id, who_problem
from autograder.grade import Course
from autograder.roster import Roster

ASSIGNMENT, NOTEBOOK = "02-numpy", "conv2d-numpy"
FILE = f"{NOTEBOOK}.ipynb"
course = test_collect.course  # the fixture: a scratch course of the assignment


def zip_of(path: Path, members: dict[str, str]) -> Path:
    with zipfile.ZipFile(path, "w") as bundle:
        for name, text in members.items():
            bundle.writestr(name, text)
    return path


def files_of(course: Course, student: str) -> dict[str, str]:
    folder = course.folder("submitted", student)
    return {p.relative_to(folder).as_posix(): p.read_text() for p in sorted(folder.rglob("*"))
            if p.is_file()}


def test_canvas_the_user_id_tells_learners_apart_and_the_newest_attachment_wins(course,
                                                                               tmp_path):
    """Canvas: <lastfirst>[_LATE]_<user id>_<attachment id>_<name>; a reused name is -1."""
    archive = zip_of(tmp_path / "canvas.zip", {
        f"obrienmary_101_5000_{FILE}": "first try",
        f"obrienmary_LATE_101_5100_{NOTEBOOK}-1.ipynb": "late resubmission",
        f"müllerjürgen_102_5001_{FILE}": "jürgen's",
        f"smithjohn_103_5002_{FILE}": "one John Smith",
        f"smithjohn_104_5003_{FILE}": "another John Smith",
        "obrienmary_101_text.html": "<p>a text entry</p>",
        f"anon_77_5004_{FILE}": "anonymous grading"})
    students, refused = collect(course, archive)
    assert students == ["anon", "mullerjurgen", "obrienmary", "smithjohn-103", "smithjohn-104"]
    assert files_of(course, "obrienmary") == {FILE: "late resubmission",
                                              "text.html": "<p>a text entry</p>"}
    assert files_of(course, "mullerjurgen") == {FILE: "jürgen's"}
    assert files_of(course, "smithjohn-104") == {FILE: "another John Smith"}
    assert list(refused) == [f"obrienmary_101_5000_{FILE}"]
    assert "older submission" in refused[f"obrienmary_101_5000_{FILE}"]


def test_canvas_a_larger_attachment_id_is_newer_whatever_the_order_in_the_zip(course,
                                                                              tmp_path):
    archive = zip_of(tmp_path / "canvas.zip", {f"adalovelace_7_900_{FILE}": "newer",
                                               f"adalovelace_7_800_{FILE}": "older"})
    students, refused = collect(course, archive)
    assert files_of(course, "adalovelace") == {FILE: "newer"}
    assert "the newer one, adalovelace_7_900" in refused[f"adalovelace_7_800_{FILE}"]


def test_moodle_a_folder_per_learner_and_the_older_flat_form(course, tmp_path):
    """Moodle 3.1+: <Full Name>_<participant id>_assignsubmission_file_/<file>; before 3.1 one
    flat file <Full Name>_<participant id>_assignsubmission_file_<file>."""
    folders = zip_of(tmp_path / "moodle.zip", {
        f"Mary O'Brien_1234_assignsubmission_file_/{FILE}": "mary's",
        f"Jürgen Müller_1235_assignsubmission_file_/{FILE}": "jürgen's",
        "Jürgen Müller_1235_assignsubmission_onlinetext_/onlinetext.html": "<p>notes</p>",
        f"王芳_1236_assignsubmission_file_/{FILE}": "fang's",
        f"Participant_1237_assignsubmission_file_/{FILE}": "blind marking"})
    students, refused = collect(course, folders)
    assert refused == {}
    assert students == ["Jurgen-Muller", "Mary-OBrien", "Participant", folder_id("王芳")]
    assert files_of(course, "Jurgen-Muller") == {FILE: "jürgen's", "onlinetext.html":
                                                 "<p>notes</p>"}
    assert folder_id("王芳").startswith("xn--")
    flat = zip_of(tmp_path / "moodle-flat.zip", {
        f"Ada Lovelace_88_assignsubmission_file_{FILE}": "ada's"})
    assert collect(course, flat).students == ["Ada-Lovelace"]
    assert files_of(course, "Ada-Lovelace") == {FILE: "ada's"}


def test_blackboard_the_latest_attempt_wins_and_its_time_is_recorded(course, tmp_path):
    """Blackboard: <assignment>_<username>_attempt_<YYYY-MM-DD-HH-MM-SS>_<file>, and a .txt
    of the attempt's details."""
    archive = zip_of(tmp_path / "blackboard.zip", {
        f"Assignment 2_jdoe3_attempt_2026-11-01-09-00-00_{FILE}": "first attempt",
        f"Assignment 2_jdoe3_attempt_2026-11-02-18-30-05_{FILE}": "second attempt",
        "Assignment 2_jdoe3_attempt_2026-11-02-18-30-05.txt": "Name: Jane Doe",
        f"Assignment 2_asmith_attempt_2026-11-01-10-00-00_{FILE}": "asmith's"})
    students, refused = collect(course, archive)
    assert students == ["asmith", "jdoe3"]
    assert files_of(course, "jdoe3") == {FILE: "second attempt",
                                         "blackboard-details.txt": "Name: Jane Doe",
                                         "timestamp.txt": "2026-11-02 18:30:05\n"}
    assert "older submission of jdoe3" in refused[
        f"Assignment 2_jdoe3_attempt_2026-11-01-09-00-00_{FILE}"]


def test_brightspace_folders_and_flat_files_by_name_and_date(course, tmp_path):
    """Brightspace: <submission id>-<n> - <First Last> - <Mon D, YYYY HHMM AM>/<file> (the
    older form flat, `` - <file>`` after the date), and its index.html."""
    archive = zip_of(tmp_path / "brightspace.zip", {
        f"13394-80551 - Eric Gillotti - Mar 29, 2026 1205 PM/{FILE}": "eric's first",
        f"13401-80551 - Eric Gillotti - Mar 30, 2026 905 AM/{FILE}": "eric's second",
        f"13402-80552 - Zoë Ng - Mar 29, 2026 1110 PM - {FILE}": "zoë's",
        "index.html": "<html>the download's index</html>"})
    students, refused = collect(course, archive)
    assert students == ["Eric-Gillotti", "Zoe-Ng"]
    assert files_of(course, "Eric-Gillotti") == {FILE: "eric's second",
                                                 "timestamp.txt": "2026-03-30 09:05:00\n"}
    assert set(refused) == {f"13394-80551 - Eric Gillotti - Mar 29, 2026 1205 PM/{FILE}",
                            "index.html"}
    assert "Brightspace's index" in refused["index.html"]


def test_lms_chooses_one_format_only(course, tmp_path):
    archive = zip_of(tmp_path / "mixed.zip", {f"ada_1_2_{FILE}": "canvas",
                                              f"bo_{FILE}": "generic"})
    students, refused = collect(course, archive, lms="canvas")
    assert students == ["ada"] and "no student id" in refused[f"bo_{FILE}"]
    with pytest.raises(SystemExit, match="LMS='webct' is none of"):
        collect(course, archive, lms="webct")


def test_a_roster_maps_names_and_lms_ids_to_student_ids(course, tmp_path):
    roster_path = tmp_path / "roster.csv"
    roster_path.write_text("Student ID,LMS ID,Name,Section\n"
                           "s001,101,Mary O'Brien,A\n"
                           "s002,,Jürgen Müller,B\n"
                           "s003,,Eric Gillotti,A\n", encoding="utf-8")
    roster = Roster.load(roster_path)
    archive = zip_of(tmp_path / "canvas.zip", {f"obrienmary_101_1_{FILE}": "mary's",
                                               f"müllerjürgen_555_2_{FILE}": "jürgen's",
                                               f"nobodyknown_9_3_{FILE}": "a stranger's"})
    students, _ = collect(course, archive, roster=roster)
    assert students == ["nobodyknown", "s001", "s002"]
    assert files_of(course, "s002") == {FILE: "jürgen's"}
    brightspace = zip_of(tmp_path / "brightspace.zip", {
        f"1-2 - Eric Gillotti - Mar 29, 2026 1205 PM/{FILE}": "eric's"})
    assert collect(course, brightspace, roster=roster).students == ["s003"]


def test_a_roster_without_a_student_id_column_is_a_clear_error(tmp_path):
    (tmp_path / "roster.csv").write_text("name,section\nAda,A\n")
    with pytest.raises(SystemExit, match="no student_id column"):
        Roster.load(tmp_path / "roster.csv")


@pytest.mark.parametrize(("who", "student"), [
    ("Mary O'Brien", "Mary-OBrien"), ("o'brienmary", "obrienmary"), ("Zoë", "Zoe"),
    ("Łukasz Żółć", "Lukasz-Zolc"), ("Gillotti, Eric", "Gillotti-Eric"), ("ada", "ada"),
    ("Jean-Luc Picard", "Jean-Luc-Picard")])
def test_a_name_becomes_a_safe_folder_name(who, student):
    assert who_problem(who) is None
    assert folder_id(who) == student and collecting.STUDENT_ID.fullmatch(student)


@pytest.mark.parametrize("who", ["vi\u0441tim", "a\u200bb", "bad name!", "x/y", "_ada",
                                 "ada\n", "=1+1", "\u202eevil"])
def test_a_name_with_look_alikes_controls_or_markup_names_no_one(who):
    assert "not a usable student id" in who_problem(who)


def test_a_later_download_older_than_the_submission_collected_is_listed(course, tmp_path):
    """Downloads made at different times merge: the newer submission of each learner stays."""
    newer = zip_of(tmp_path / "newer.zip", {
        f"A_jdoe3_attempt_2026-11-02-10-00-00_{FILE}": "newer"})
    older = zip_of(tmp_path / "older.zip", {
        f"A_jdoe3_attempt_2026-11-01-10-00-00_{FILE}": "older",
        f"A_asmith_attempt_2026-11-01-10-00-00_{FILE}": "asmith's"})
    collect(course, newer)
    students, refused = collect(course, older)
    assert students == ["asmith", "jdoe3"]
    assert files_of(course, "jdoe3")[FILE] == "newer"
    assert "older than the submission already graded (" in refused[
        f"A_jdoe3_attempt_2026-11-01-10-00-00_{FILE}"]
    assert collecting.submitted_time(course.folder("submitted", "jdoe3")) == \
        datetime(2026, 11, 2, 10)


def test_copies_of_a_notebook_in_a_learners_folder_the_newest_file_wins(course, tmp_path):
    batch = tmp_path / "batch"
    (batch / "ada").mkdir(parents=True)
    (batch / "ada" / FILE).write_text("old")
    (batch / "ada" / f"{NOTEBOOK} (1).ipynb").write_text("new")
    os.utime(batch / "ada" / FILE, (1_000_000, 1_000_000))
    students, refused = collect(course, batch)
    assert files_of(course, "ada") == {FILE: "new"}
    assert "older submission of ada" in refused[f"ada/{FILE}"]


def test_two_names_that_fold_into_one_id_are_not_one_learner(course, tmp_path):
    batch = tmp_path / "batch"
    for name in ("o'brien", "obrien"):
        (batch / name).mkdir(parents=True)
        (batch / name / FILE).write_text(f"{name}'s")
    students, refused = collect(course, batch)
    assert students == ["obrien"] and files_of(course, "obrien") == {FILE: "o'brien's"}
    assert "becomes the student id of another learner" in refused["obrien"]
