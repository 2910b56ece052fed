"""The collector (autograder/collect.py): a folder of learners' folders or an LMS zip becomes
autograder/submitted/<student_id>/<assignment>/, whoever wrote the batch.

The unit tests build real zips and folders in tmp_path and call :func:`collect` on a scratch
course, one test per rule; the last test grades the hostile batches of
tests/hostile/submissions.py with ``make grade``'s CLI beside two honest learners.
"""

from __future__ import annotations

import csv
import io
import os
import re
import signal
import stat
import subprocess
import sys
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import pytest
from hostile.corpus import ASSIGNMENT, FILE, VICTIMS, Kit, Targets
from hostile.submissions import (
    ATTACKS,
    FOLDER,
    FULL,
    ZIP,
    Attack,
    FolderBatch,
    ZipBatch,
    build_batch,
    own_notebook,
)

from autograder import collect as collect_module
from autograder import plain
from autograder.collect import collect
from autograder.grade import Course

REPOSITORY = Path(__file__).resolve().parents[1]
LIMITS = ["--call-timeout", "5", "--cells-timeout", "15"]


# --- collecting, rule by rule ------------------------------------------------------------------

@pytest.fixture
def course(tmp_path) -> Course:
    """A scratch course with the assignment's notebook (its name is all collecting reads)."""
    course = Course(tmp_path / "course", ASSIGNMENT)
    course.source.mkdir(parents=True)
    (course.source / FILE).write_text("{}")
    return course


def write_zip(path: Path, members: dict[str, bytes | str]) -> Path:
    """A zip of plain members (a forged one: tests/hostile/submissions.py's ZipBatch)."""
    batch = ZipBatch(path)
    for name, data in members.items():
        batch.file(name, data.encode() if isinstance(data, str) else data)
    batch.close()
    return path


def files_of(course: Course, student: str) -> dict[str, bytes]:
    folder = course.folder("submitted", student)
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*"))
            if p.is_file()}


def everything_under(root: Path) -> set[str]:
    return {p.relative_to(root).as_posix() for p in root.rglob("*")}


def test_who_a_file_belongs_to_comes_only_from_the_top_level_name(course, tmp_path):
    archive = write_zip(tmp_path / "class.zip", {
        f"victim/{FILE}": "victim's",
        f"attacker/victim/{ASSIGNMENT}/{FILE}": "planted",
        f"attacker/victim_111_222_{FILE}": "planted too",
        f"attacker/nested/deeper/victim/{FILE}": "and this"})
    students, refused = collect(course, archive)
    assert students == ["attacker", "victim"] and refused == {}
    assert files_of(course, "victim") == {FILE: b"victim's"}
    assert set(files_of(course, "attacker")) == {
        f"victim/{ASSIGNMENT}/{FILE}", f"victim_111_222_{FILE}",
        f"nested/deeper/victim/{FILE}"}


def test_an_lms_file_is_named_by_its_lms_naming(course, tmp_path):
    archive = write_zip(tmp_path / "class.zip", {
        f"smithjohn_12345_67890_{FILE}": "john's",
        "ada_attempt_1_Conv2d_NumPy.ipynb": "ada's",
        "bo_1_2_conv2d-numpy-1.ipynb": "bo's resubmission",
        f"conv_1_{FILE}": "a learner whose id begins the notebook's name"})
    students, refused = collect(course, archive)
    assert students == ["ada", "bo", "conv", "smithjohn"] and refused == {}
    assert files_of(course, "smithjohn") == {FILE: b"john's"}
    assert files_of(course, "ada") == {FILE: b"ada's"}  # the assignment's name
    assert files_of(course, "bo") == {FILE: b"bo's resubmission"}  # Canvas's copy, -1
    assert files_of(course, "conv") == {FILE: b"a learner whose id begins the notebook's name"}


def test_the_naming_rules_are_one_table_of_patterns():
    assert {naming.kind for naming in collect_module.NAMINGS} == {"folder", "file"}
    assert all(isinstance(naming.pattern, re.Pattern) and "who" in naming.pattern.groupindex
               for naming in collect_module.NAMINGS)


@pytest.mark.parametrize("name", ["conv2d_numpy.ipynb", "conv2d-numpy.ipynb",
                                  "CONV2D_NUMPY (1).ipynb", "conv2d_numpy_final.ipynb",
                                  "notes.txt", "ada_1_helper.py"])
def test_a_top_level_file_that_names_no_learner_is_refused_not_a_phantom(course, tmp_path,
                                                                          name):
    archive = write_zip(tmp_path / "class.zip", {name: "{}", f"ada/{FILE}": "{}"})
    students, refused = collect(course, archive)
    assert students == ["ada"]
    assert refused.keys() == {name} and "no student id in the file name" in refused[name]


@pytest.mark.parametrize("name", [ASSIGNMENT, "Conv2d_Numpy", "conv2d-numpy"])
def test_a_top_level_folder_named_as_the_assignment_is_not_a_learner(course, tmp_path, name):
    students, refused = collect(course, write_zip(tmp_path / "class.zip", {
        f"{name}/ada/{FILE}": "{}"}))
    assert students == [] and "not a student id" in refused[name]


@pytest.mark.parametrize("name", ["..", ".", "-1+1", "@sum", "+x", "=1", "bad name!",
                                  "victim\n", "vi\u0441tim", "a\u200bb", "x" * 101, "_ada",
                                  ".hidden"])
def test_a_student_id_is_checked_before_any_path_is_built(course, tmp_path, name):
    """In a folder's name and in an LMS file's: nothing is written for it, anywhere."""
    archive = write_zip(tmp_path / "class.zip", {f"{name}/{FILE}": "{}",
                                                 f"{name}_1_{FILE}": "{}"})
    students, refused = collect(course, archive)
    assert students == []
    assert any("not a usable student id" in why for why in refused.values()), refused
    assert everything_under(course.root) == {"solutions", f"solutions/{ASSIGNMENT}",
                                             f"solutions/{ASSIGNMENT}/{FILE}"}


@pytest.mark.parametrize("name", ["CON", "nul", "Com1", "lpt9.smith"])
def test_a_student_id_windows_keeps_for_a_device_is_refused(course, tmp_path, name):
    students, refused = collect(course, write_zip(tmp_path / "class.zip",
                                                  {f"{name}/{FILE}": "{}"}))
    assert students == [] and "Windows" in refused[name]


def test_a_learners_folder_that_resolves_outside_submitted_is_refused(course, tmp_path):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (course.work / "submitted").mkdir(parents=True)
    (course.work / "submitted" / "ada").symlink_to(elsewhere)
    students, refused = collect(course, write_zip(tmp_path / "class.zip", {
        f"ada/{FILE}": "{}", f"bo/{FILE}": "{}"}))
    assert students == ["bo"] and "outside autograder/submitted/" in refused["ada"]
    assert list(elsewhere.iterdir()) == []


@pytest.mark.parametrize(("name", "why"), [
    ("/abs/ada/x.ipynb", "absolute"),
    (f"ada/../bo/{FILE}", "outside the learner's folder"),
    (f"ada/sub/../../bo/{FILE}", "outside the learner's folder"),
    (f"ada//{FILE}", "outside the learner's folder"),
    (f"ada/./{FILE}", "outside the learner's folder"),
    (f"ada/..\\bo\\{FILE}", "backslash"),
    ("ada/" + "x" * 300, "longer than 255"),
])
def test_a_member_whose_path_would_leave_its_folder_is_refused(course, tmp_path, name, why):
    students, refused = collect(course, write_zip(tmp_path / "class.zip", {
        name: "planted", f"ada/{FILE}": "ada's"}))
    assert students == ["ada"] and files_of(course, "ada") == {FILE: b"ada's"}
    assert list(refused.values()) == [refused[plain.line(name)]] and why in refused[
        plain.line(name)]
    assert {path.split("/")[0] for path in everything_under(tmp_path)} == {"class.zip",
                                                                           "course"}
    assert everything_under(course.work) == {"submitted", "submitted/ada",
                                             f"submitted/ada/{ASSIGNMENT}",
                                             f"submitted/ada/{ASSIGNMENT}/{FILE}",
                                             f"submitted/ada/{ASSIGNMENT}.collected.json"}


def test_link_and_device_members_are_refused_and_their_learner_collected(course, tmp_path):
    batch = ZipBatch(tmp_path / "class.zip")
    batch.link(f"ada/{FILE}", str(course.source / FILE))
    batch.link(f"ada/{ASSIGNMENT}", str(course.source))
    batch.special("ada/device")
    batch.special("ada/pipe", stat.S_IFIFO)
    batch.file("ada/notes.txt", b"kept")
    batch.close()
    students, refused = collect(course, batch.path)
    assert students == ["ada"] and files_of(course, "ada") == {"notes.txt": b"kept"}
    assert {label: why.split(":")[0] for label, why in refused.items()} == {
        f"ada/{FILE}": "a link", f"ada/{ASSIGNMENT}": "a link",
        "ada/device": "not a regular file (a device, pipe or socket)",
        "ada/pipe": "not a regular file (a device, pipe or socket)"}


@pytest.mark.parametrize("name", ["more.zip", "more.tar.gz", "more.TGZ", "more.7z", "more.rar",
                                  "more.tar", "more.ZIP"])
def test_an_archive_in_the_batch_is_listed_and_never_unpacked(course, tmp_path, name):
    inner = io.BytesIO()
    with zipfile.ZipFile(inner, "w") as archive:
        archive.writestr(f"bo/{FILE}", "planted")
    students, refused = collect(course, write_zip(tmp_path / "class.zip", {
        f"ada/{name}": inner.getvalue(), f"ada/{FILE}": "ada's"}))
    assert students == ["ada"] and files_of(course, "ada") == {FILE: b"ada's"}
    assert "never unpacked" in refused[f"ada/{name}"]
    folder = tmp_path / "folder"
    (folder / "cy").mkdir(parents=True)
    (folder / "cy" / name).write_bytes(inner.getvalue())
    assert "never unpacked" in collect(course, folder)[1][f"cy/{name}"]


def test_a_member_declaring_more_than_the_limit_is_refused_unread(course, tmp_path):
    batch = ZipBatch(tmp_path / "class.zip")
    batch.declare(f"ada/{FILE}", b"small", 0xE800_0000)
    batch.file("ada/notes.txt", b"kept")
    batch.close()
    students, refused = collect(course, batch.path)
    assert students == ["ada"] and files_of(course, "ada") == {"notes.txt": b"kept"}
    assert "larger than 50 MB" in refused[f"ada/{FILE}"]


def test_a_member_inflating_too_many_times_is_refused_unread(course, tmp_path, monkeypatch):
    monkeypatch.setattr(collect_module, "RATIO_FLOOR", 1000)
    students, refused = collect(course, write_zip(tmp_path / "class.zip", {
        "ada/zeros.txt": bytes(200_000), "ada/text.txt": bytes(range(256)) * 10}))
    assert "zip bomb" in refused["ada/zeros.txt"] and set(files_of(course, "ada")) == {
        "text.txt"}


def test_reading_stops_at_the_limit_whatever_the_size_declared(tmp_path, monkeypatch):
    monkeypatch.setattr(collect_module, "MAX_SUBMISSION_BYTES", 3 * collect_module.CHUNK)
    opened = []

    def endless():
        opened.append(1)
        return io.BufferedReader(io.BytesIO(bytes(10 * collect_module.CHUNK)))

    file = collect_module.File("ada/lies.bin", PurePosixPath("lies.bin"), 10, endless)
    with pytest.raises(collect_module.Refused, match="larger than"):
        collect_module.copy_file(file, tmp_path, budget=1 << 40)
    assert opened == [1] and not (tmp_path / "lies.bin").exists()


def test_a_learners_total_and_number_of_files_are_limited(course, tmp_path, monkeypatch):
    monkeypatch.setattr(collect_module, "MAX_LEARNER_BYTES", 2500)
    monkeypatch.setattr(collect_module, "MAX_LEARNER_FILES", 4)
    students, refused = collect(course, write_zip(tmp_path / "class.zip", {
        **{f"ada/{n}.bin": bytes(1000) for n in range(3)},
        **{f"bo/{n}.txt": b"x" for n in range(7)}}))
    assert students == ["ada", "bo"]
    assert set(files_of(course, "ada")) == {"0.bin", "1.bin"}
    assert "learner's 0 MB" in refused["ada/2.bin"]
    assert set(files_of(course, "bo")) == {"0.txt", "1.txt", "2.txt", "3.txt"}
    assert refused["bo"].startswith("3 files beyond the first 4")


def test_a_zip_with_more_members_than_any_class_is_refused_whole(course, tmp_path,
                                                                 monkeypatch):
    monkeypatch.setattr(collect_module, "MAX_MEMBERS", 3)
    archive = write_zip(tmp_path / "class.zip", {f"ada/{n}": "x" for n in range(4)})
    with pytest.raises(SystemExit, match="more than any class"):
        collect(course, archive)


def test_a_bad_member_costs_only_that_file(course, tmp_path):
    """A bad CRC: the learner keeps their other files, the others are collected."""
    batch = ZipBatch(tmp_path / "class.zip")
    batch.file(f"ada/{FILE}", b"ada's")
    batch.corrupt("ada/notes.txt", b"notes" * 100)
    batch.file(f"bo/{FILE}", b"bo's")
    batch.close()
    students, refused = collect(course, batch.path)
    assert students == ["ada", "bo"]
    assert files_of(course, "ada") == {FILE: b"ada's"}
    assert files_of(course, "bo") == {FILE: b"bo's"}
    assert list(refused) == ["ada/notes.txt"] and "Bad CRC" in refused["ada/notes.txt"]


def test_of_two_files_of_the_same_name_the_later_is_kept_and_the_other_listed(course,
                                                                              tmp_path):
    batch = ZipBatch(tmp_path / "class.zip")
    batch.file(f"ada/{FILE}", b"first")
    batch.file(f"ada/{FILE}", b"second")
    batch.file(f"bo/{FILE}", b"bo's folder")
    batch.file(f"bo_1_2_{FILE}", b"bo's LMS file")
    batch.file("cy/x", b"a file")
    batch.file("cy/x/y", b"then a folder of the same name")
    batch.close()
    students, refused = collect(course, batch.path)
    assert students == ["ada", "bo", "cy"]
    assert files_of(course, "ada") == {FILE: b"second"}
    assert files_of(course, "bo") == {FILE: b"bo's LMS file"}
    assert files_of(course, "cy") == {"x": b"a file"}
    assert "same name" in refused[f"ada/{FILE}"]
    assert "same name" in refused[f"bo/{FILE}"] and "same name" in refused["cy/x/y"]


def test_something_that_is_not_a_zip_is_a_clear_error(course, tmp_path):
    (tmp_path / "class.zip").write_bytes(b"PK\x03\x04 but not a zip at all")
    with pytest.raises(SystemExit, match="not a zip file that can be read"):
        collect(course, tmp_path / "class.zip")


def test_macos_metadata_is_no_learner(course, tmp_path):
    students, refused = collect(course, write_zip(tmp_path / "class.zip", {
        f"__MACOSX/ada/._{FILE}": "resource fork", f"ada/{FILE}": "ada's"}))
    assert students == ["ada"] and files_of(course, "ada") == {FILE: b"ada's"}
    assert "macOS" in refused["__MACOSX"]


def test_links_in_a_folder_batch_are_refused_at_any_depth(course, tmp_path):
    batch = tmp_path / "batch"
    (batch / "ada" / "deep" / "deeper").mkdir(parents=True)
    (batch / "ada" / FILE).write_text("ada's")
    (batch / "ada" / "deep" / "deeper" / "linked.ipynb").symlink_to(course.source / FILE)
    (batch / "ada" / "deep" / "folder").symlink_to(course.source)
    (batch / "ada" / "broken").symlink_to(tmp_path / "nowhere")
    (batch / "bo").symlink_to(batch / "ada")
    students, refused = collect(course, batch)
    assert students == ["ada"] and files_of(course, "ada") == {FILE: b"ada's"}
    assert set(refused) == {"ada/deep/deeper/linked.ipynb", "ada/deep/folder", "ada/broken",
                            "bo"}
    assert all("link" in why for why in refused.values())


def test_the_assignment_folder_is_used_only_where_it_is_a_real_folder(course, tmp_path):
    batch = tmp_path / "batch"
    (batch / "ada" / ASSIGNMENT).mkdir(parents=True)
    (batch / "ada" / ASSIGNMENT / FILE).write_text("ada's")
    (batch / "ada" / "01-shapes").mkdir()
    (batch / "ada" / "01-shapes" / "shapes.ipynb").write_text("another assignment's")
    (batch / "bo").mkdir()
    (batch / "bo" / ASSIGNMENT).symlink_to(course.source)
    (batch / "bo" / FILE).write_text("bo's")
    students, refused = collect(course, batch)
    assert students == ["ada", "bo"]
    assert files_of(course, "ada") == {FILE: b"ada's"}
    assert files_of(course, "bo") == {FILE: b"bo's"}
    assert list(refused) == [f"bo/{ASSIGNMENT}"] and "link" in refused[f"bo/{ASSIGNMENT}"]


def test_a_named_pipe_is_refused_without_waiting_for_a_writer(course, tmp_path):
    batch = tmp_path / "batch"
    (batch / "ada").mkdir(parents=True)
    os.mkfifo(batch / "ada" / FILE)
    os.mkfifo(batch / "bo_1_conv2d-numpy.ipynb")
    def waited(*_) -> None:
        raise TimeoutError("collect opened a named pipe and waited for a writer")

    previous = signal.signal(signal.SIGALRM, waited)
    signal.alarm(20)  # a pipe opened for reading would wait here for ever
    try:
        students, refused = collect(course, batch)
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)
    assert students == ["ada"] and files_of(course, "ada") == {}
    assert set(refused) == {f"ada/{FILE}", "bo_1_conv2d-numpy.ipynb"}
    assert all("not a regular file" in why for why in refused.values())


def test_an_oversized_file_in_a_folder_is_listed_not_read(course, tmp_path):
    batch = tmp_path / "batch"
    (batch / "ada").mkdir(parents=True)
    with (batch / "ada" / "weights.bin").open("wb") as file:
        file.truncate(60 << 20)  # sparse: 60 MB that take no room
    students, refused = collect(course, batch)
    assert students == ["ada"] and files_of(course, "ada") == {}
    assert "larger than 50 MB" in refused["ada/weights.bin"]


@pytest.mark.parametrize("name", ["\x1b[2Jgraded.ipynb", "line\nbreak.ipynb",
                                  "right\u202eto-left.ipynb", "=cmd|' /C calc'!A0.ipynb",
                                  "-draft.ipynb", "@home.ipynb"])
def test_a_name_the_learner_chose_inside_their_folder_is_theirs_to_choose(course, tmp_path,
                                                                          name):
    """Escape sequences, line breaks, a leading =: the file stays in the learner's folder,
    and whoever shows its name makes it plain (autograder/plain.py)."""
    students, refused = collect(course, write_zip(tmp_path / "class.zip",
                                                  {f"ada/{name}": "ada's"}))
    assert students == ["ada"] and files_of(course, "ada") == {name: b"ada's"}
    assert refused == {}


def test_every_name_a_teacher_reads_is_plain_text(course, tmp_path):
    names = ["\x1b[31mred/x", "ada/\x1b]0;title\x07/../x.ipynb", "ada/\r\rover\\x.ipynb",
             "\u202eevil_1_conv2d-numpy.ipynb", "bo\u0000/x", "cy/\x1b[2J.zip"]
    students, refused = collect(course, write_zip(tmp_path / "class.zip",
                                                  dict.fromkeys(names, "x")))
    assert len(refused) == 6
    for label, why in refused.items():
        assert label == plain.line(label) and why == plain.line(why), (label, why)


def test_a_batch_holding_the_graders_own_folder_is_refused(course):
    (course.work / "submitted").mkdir(parents=True)
    with pytest.raises(SystemExit, match="grader's own"):
        collect(course, course.root)


def test_nbgraders_layout_in_place_is_taken_as_it_is(course, tmp_path):
    submitted = course.work / "submitted"
    (submitted / "ada" / ASSIGNMENT).mkdir(parents=True)
    (submitted / "ada" / ASSIGNMENT / FILE).write_text("ada's")
    (submitted / "bo").mkdir()  # another assignment only
    (submitted / "cy").symlink_to(submitted / "ada")
    students, refused = collect(course, submitted)
    assert students == ["ada"] and set(refused) == {"cy"}


# --- the hostile batches, graded end to end ----------------------------------------------------

#: What the grader may write in its folder: anything else there was written by a batch.
GRADERS_OWN = {"submitted", "autograded", "feedback", "gradebook.db", "grades.csv",
               "course-secret", "downloaded", "not-graded.csv", "exports", "report"}


@dataclass
class Outcome:
    """What grading a batch left behind."""

    run: subprocess.CompletedProcess
    seconds: float
    scores: dict[str, tuple[float, float]]    # grades.csv: student id -> (score, max_score)
    cells: list[str]                          # every cell of grades.csv
    submitted: dict[str, dict[str, bytes]]    # each learner's collected files (small ones)
    stored: dict[str, tuple[int, int]]        # each learner's collected files: count, bytes
    beside: list[str]                         # what appeared in autograder/ beside its own
    outside: list[str]                        # what appeared outside autograder/
    footprint: tuple[int, int]                # files and bytes in autograder/ (all copies)
    kit: Kit                                  # what the batch was built from


def paths_under(folder: Path) -> set[str]:
    return {str(p.relative_to(folder)) for p in folder.rglob("*")} if folder.exists() else set()


def scratch_course(base: Path) -> tuple[Path, Kit]:
    root = base / "course"
    for kind in ("solutions", "notebooks"):
        target = root / kind / ASSIGNMENT
        target.mkdir(parents=True)
        for path in (REPOSITORY / kind / ASSIGNMENT).glob("*.ipynb"):
            target.joinpath(path.name).write_bytes(path.read_bytes())
    targets = Targets(root, base / "batch", VICTIMS[0], 0, "", "", base / "canary.txt")
    return root, Kit.for_course(root, targets)


def collected(root: Path) -> tuple[dict, dict]:
    files, stored = {}, {}
    submitted = root / "autograder" / "submitted"
    for learner in sorted(submitted.iterdir()) if submitted.is_dir() else []:
        paths = [p for p in learner.rglob("*") if p.is_file() and not p.is_symlink()]
        stored[learner.name] = (len(paths), sum(p.stat().st_size for p in paths))
        folder = learner / ASSIGNMENT
        files[learner.name] = {str(p.relative_to(folder)): p.read_bytes() for p in paths
                               if p.is_relative_to(folder) and p.stat().st_size < 1 << 20}
    return files, stored


def grade_hostile(repository: Path, base: Path, form: str, attacks: list[Attack]) -> Outcome:
    """Build a batch of the honest learners and ``attacks`` in ``form`` under ``base``, and
    grade it with the CLI of the grader in ``repository``."""
    root, kit = scratch_course(base)
    batch = (ZipBatch(base / "batch.zip") if form == ZIP else FolderBatch(base / "batch"))
    build_batch(kit, batch, attacks)
    before = paths_under(base)
    started = time.monotonic()
    run = subprocess.run([sys.executable, "-m", "autograder.grade", ASSIGNMENT, str(batch.path),
                          "--root", str(root), "--workers", "2", *LIMITS],
                         cwd=repository, capture_output=True, text=True, timeout=900,
                         check=False)
    seconds = time.monotonic() - started
    cells, scores = [], {}
    grades = root / "autograder" / "grades.csv"
    if grades.is_file():
        with grades.open(newline="") as file:
            for row in csv.DictReader(file):
                cells += list(row.values())
                scores[row["student_id"]] = (float(row["score"]), float(row["max_score"]))
    submitted, stored = collected(root)
    work = root / "autograder"
    beside = sorted(p.name for p in work.iterdir() if p.name not in GRADERS_OWN) \
        if work.is_dir() else []
    outside = sorted(path for path in paths_under(base) - before
                     if not Path(path).is_relative_to("course/autograder"))
    sizes = [p.stat().st_size for p in work.rglob("*") if p.is_file() and not p.is_symlink()]
    return Outcome(run, seconds, scores, cells, submitted, stored, beside, outside,
                   (len(sizes), sum(sizes)), kit)


def harms(outcome: Outcome, form: str, attacks: list[Attack]) -> list[str]:
    """What the batch achieved that it does not deserve (empty: it was collected rightly)."""
    found, kit = [], outcome.kit
    honest = {own_notebook(kit, student): student for student in VICTIMS}
    if outcome.run.returncode != 0:
        found.append(f"the batch failed (exit {outcome.run.returncode}): "
                     f"{outcome.run.stderr.strip()[-300:]}")
    expected = {student: FULL for student in VICTIMS}
    expected |= {s: score for a in attacks if form in a.forms for s, score in a.graded}
    extra, missing = sorted(set(outcome.scores) - set(expected)), sorted(set(expected) -
                                                                      set(outcome.scores))
    if extra:
        found.append(f"graded learners the batch does not name: {extra}")
    if missing:
        found.append(f"not graded: {missing}")
    for student, score in expected.items():
        got, most = outcome.scores.get(student, (None, None))
        if got is not None and (got == most) != (score == FULL) or score != FULL and got:
            found.append(f"{student} scored {got:g} of {most:g}, deserving {score} marks")
    for data, student in honest.items():
        if outcome.submitted.get(student) != {FILE: data}:
            found.append(f"{student}'s folder holds {sorted(outcome.submitted.get(student, {}))}"
                         ", not their notebook alone")
    for student, path in (kept for a in attacks if form in a.forms for kept in a.kept):
        if _planter(outcome.submitted.get(student, {}).get(path, b"")) != student:
            found.append(f"{student} lost {path}, which is theirs")
    solution = (kit.targets.root / "solutions" / ASSIGNMENT / FILE).read_bytes()
    for student, files in outcome.submitted.items():
        for name, data in files.items():
            owner = honest.get(data) or _planter(data)
            if data == solution or owner not in (None, student):
                found.append(f"{student} got {name}, which is {owner or 'the solution'}'s")
    if outcome.beside:
        found.append(f"wrote in autograder/ beside its own folders: {outcome.beside}")
    if outcome.outside:
        found.append(f"wrote outside autograder/: {outcome.outside[:5]}")
    for student, (count, size) in outcome.stored.items():
        if count > 1000 or size > 100 << 20:
            found.append(f"stored {count} files, {size >> 20} MB for {student}")
    count, size = outcome.footprint
    if count > 5000 or size > 300 << 20:
        found.append(f"left {count} files, {size >> 20} MB in autograder/")
    formulas = [cell for cell in outcome.cells if cell.startswith(("=", "+", "-", "@"))]
    if formulas:
        found.append(f"grades.csv holds cells a spreadsheet reads as formulas: {formulas}")
    if any(char in outcome.run.stdout + outcome.run.stderr for char in "\x1b\r\x07"):
        found.append("control characters reached the terminal")
    return found


def _planter(data: bytes) -> str | None:
    """Who planted these bytes (None: they are not a planted file)."""
    text = data.decode(errors="replace")
    if text.startswith('{"planted by": "'):
        return text.split('"')[3]
    return None


def unlisted(outcome: Outcome, form: str, attacks: list[Attack]) -> list[str]:
    """The members that deserve to be listed as not graded, with the reason, and are not."""
    lines = outcome.run.stdout.splitlines()
    missing = []
    for attack in attacks:
        if form not in attack.forms:
            continue
        for label, why in attack.refused:
            shown = plain.line(label)
            if not any((shown in line or repr(shown)[1:-1] in line) and why in line
                       for line in lines if "not graded" in line):
                missing.append(f"{attack.name}: {shown!r} ({why})")
    return missing


@pytest.mark.sandbox
@pytest.mark.slow
@pytest.mark.parametrize("form", [ZIP, FOLDER])
def test_a_hostile_batch_is_collected_rightly_and_graded_to_the_end(tmp_path, form):
    """Every attack of this form at once (an LMS zip, or a folder of learners' folders), beside
    two honest learners: they score full marks with their own files, no one gets another's
    file or a phantom grade, nothing is written outside autograder/, the exit status is 0, and
    every hostile member is listed with its reason."""
    outcome = grade_hostile(REPOSITORY, tmp_path, form, ATTACKS)
    assert harms(outcome, form, ATTACKS) == [], outcome.run.stdout[-3000:]
    assert unlisted(outcome, form, ATTACKS) == [], outcome.run.stdout[-3000:]


# --- the attacks one by one, for the record of what the grader did before ---------------------

def record(repository: Path, base: Path, attacks: list[Attack] = ATTACKS) -> list[tuple]:
    """Each attack alone beside the honest learners, in each form it has: (attack, form, its
    harms, its members not listed). How tests/hostile/submissions.py was run against the
    grader that came before autograder/collect.py (a worktree of that commit as
    ``repository``)."""
    rows = []
    for attack in attacks:
        for form in attack.forms:
            folder = base / f"{attack.name}-{form}"
            folder.mkdir(parents=True)
            outcome = grade_hostile(repository, folder, form, [attack])
            rows.append((attack.name, form, harms(outcome, form, [attack]),
                         unlisted(outcome, form, [attack])))
    return rows

