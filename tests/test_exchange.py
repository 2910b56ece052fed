"""nbgrader's exchange on this course's layout, with the nbgrader CLI, and the late policy.

One class, once: the instructor releases 01-shapes into an exchange folder set by
CONVCOURSE_EXCHANGE (the gradebook by CONVCOURSE_DB_URL: every command below reads them, none
is told where on its command line); Ada and Bo (two homes) fetch it, solve it and submit it,
Ada before the deadline and Bo after, and Bo then rewrites the time in his submission to one
before the deadline; the instructor collects, grades with make grade's code (the deadline given
as DEADLINE, nbgrader's ``zero`` penalty as CONVCOURSE_LATE_PENALTY), and releases the feedback
with no learner named; both learners fetch theirs.

The unit tests at the end check how a submission's time is read and trusted
(autograder/exchange.py; THREATS.md, section 1)."""

from __future__ import annotations

import csv
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from conftest import public_folder
from course import NOTEBOOKS, ROOT, SOLUTIONS
from nbgrader.api import Gradebook
from nbgrader.utils import parse_utc

from autograder import exchange, settings

ASSIGNMENT, NOTEBOOK = "01-shapes", "shapes"
COURSE_ID = "conv2d-course"
TOOLS = Path(sys.executable).parent


def nbgrader(*args: str, env: dict, cwd: Path) -> subprocess.CompletedProcess:
    """A plain nbgrader command, as a user types it; it must succeed."""
    done = subprocess.run([str(TOOLS / "nbgrader"), *args], cwd=cwd, env=env, text=True,
                          capture_output=True, check=False, timeout=300)
    assert done.returncode == 0, f"nbgrader {' '.join(args)}:\n{done.stderr[-3000:]}"
    return done


#: The course's settings (autograder/settings.py) and make grade's: none may leak in.
SETTINGS = (settings.DB_URL, settings.EXCHANGE, settings.COURSE_ID, settings.LATE_PENALTY,
            "DB", "DEADLINE")


def clean_environment() -> dict:
    """This process's environment less Jupyter's settings and the course's."""
    return {key: value for key, value in os.environ.items()
            if not key.startswith("JUPYTER") and key not in SETTINGS}


@dataclass
class Class:
    root: Path                      # the instructor's course
    exchange: Path
    homes: dict[str, Path]          # learner -> home
    instructor: dict                # the instructor's environment
    deadline: datetime              # naive UTC, as nbgrader keeps it
    claimed: str                    # the time Bo wrote into his submission
    grade: subprocess.CompletedProcess
    released: subprocess.CompletedProcess

    def db_url(self) -> str:
        return self.instructor["CONVCOURSE_DB_URL"]

    def fetched(self, student: str) -> list[Path]:
        return sorted((self.homes[student] / ASSIGNMENT / "feedback").glob(f"*/{NOTEBOOK}.html"))


def learner_environment(home: Path, exchange_root: Path) -> dict:
    """A learner's: their own home, and the two lines of nbgrader configuration a hub gives
    every learner (the exchange, the course id); nothing of the instructor's."""
    (home / ".jupyter").mkdir(parents=True)
    (home / ".jupyter" / "nbgrader_config.py").write_text(
        f"c = get_config()\nc.Exchange.root = {str(exchange_root)!r}\n"
        f"c.CourseDirectory.course_id = {COURSE_ID!r}\n")
    return {**clean_environment(), "HOME": str(home),
            "PATH": f"{TOOLS}{os.pathsep}{os.environ.get('PATH', '')}"}


def hand_in(student: str, home: Path, env: dict) -> None:
    """Fetch the release, put the instructor's answers in it, submit (both learners are this
    test's one system user: ``--student`` says who, as nbgrader's get_username would)."""
    nbgrader("fetch_assignment", ASSIGNMENT, env=env, cwd=home)
    shutil.copyfile(SOLUTIONS / ASSIGNMENT / f"{NOTEBOOK}.ipynb",
                    home / ASSIGNMENT / f"{NOTEBOOK}.ipynb")
    nbgrader("submit", ASSIGNMENT, f"--student={student}", env=env, cwd=home)


@pytest.fixture(scope="module")
def taught(tmp_path_factory) -> Class:
    tmp = tmp_path_factory.mktemp("exchange")
    root, exchange_root = tmp / "course", tmp / "exchange"
    for kind, folder in (("solutions", SOLUTIONS), ("notebooks", NOTEBOOKS)):
        shutil.copytree(folder / ASSIGNMENT, root / kind / ASSIGNMENT)
    (root / "autograder").mkdir()  # the grader's folder, where the gradebook is
    instructor = {**clean_environment(), "JUPYTER_CONFIG_PATH": str(ROOT / "autograder"),
                  "PATH": f"{TOOLS}{os.pathsep}{os.environ.get('PATH', '')}",
                  "CONVCOURSE_EXCHANGE": str(exchange_root),
                  "CONVCOURSE_DB_URL": f"sqlite:///{root / 'autograder' / 'gradebook.db'}",
                  "CONVCOURSE_LATE_PENALTY": "zero"}
    course = f"--CourseDirectory.root={root}"
    nbgrader("release_assignment", ASSIGNMENT, course, env=instructor, cwd=root)

    homes = {student: tmp / student for student in ("ada", "bo")}
    envs = {student: learner_environment(home, exchange_root) for student, home in homes.items()}
    hand_in("ada", homes["ada"], envs["ada"])
    deadline = datetime.now(timezone.utc)  # after Ada's last byte, before Bo's first
    time.sleep(0.05)
    hand_in("bo", homes["bo"], envs["bo"])
    # Bo owns his folder in the inbound: he says he handed in an hour before the deadline.
    [inbound] = (exchange_root / COURSE_ID / "inbound").glob(f"bo+{ASSIGNMENT}+*")
    claimed = f"{deadline - timedelta(hours=1):%Y-%m-%d %H:%M:%S.%f} UTC"
    (inbound / exchange.TIMESTAMP).write_text(claimed)

    nbgrader("collect", ASSIGNMENT, course, env=instructor, cwd=root)
    grade = subprocess.run(
        [sys.executable, "-m", "autograder.grade", ASSIGNMENT,
         str(root / "autograder" / "submitted"), "--root", str(root), "--workers", "2"],
        cwd=ROOT, env={**instructor, "DEADLINE": deadline.isoformat()}, text=True,
        capture_output=True, check=False, timeout=600)
    assert grade.returncode == 0, grade.stdout + grade.stderr[-3000:]
    released = nbgrader("release_feedback", ASSIGNMENT, course, env=instructor, cwd=root)
    for student, home in homes.items():
        nbgrader("fetch_feedback", ASSIGNMENT, f"--student={student}", env=envs[student],
                 cwd=home)
    return Class(root, exchange_root, homes, instructor, deadline.replace(tzinfo=None),
                 claimed, grade, released)


def submissions(taught: Class) -> dict:
    with Gradebook(taught.db_url(), COURSE_ID) as gradebook:
        return {s.student.id: (s.timestamp, s.score, s.late_submission_penalty)
                for s in gradebook.find_assignment(ASSIGNMENT).submissions}


# --- the round trip ------------------------------------------------------------------------------

@pytest.mark.slow
@pytest.mark.sandbox
def test_every_learners_feedback_goes_back_through_the_exchange(taught):
    """release_feedback with no learner named releases both (it stopped at the first, on a
    missing timestamp.txt); each learner fetches exactly the page make grade wrote."""
    assert taught.released.stderr.count("Releasing feedback for student") == 2
    for student in taught.homes:
        [page] = taught.fetched(student)
        written = taught.root / "autograder" / "feedback" / student / ASSIGNMENT
        assert page.read_bytes() == (written / f"{NOTEBOOK}.html").read_bytes()
        assert "Score:" in page.read_text()


@pytest.mark.slow
@pytest.mark.sandbox
def test_the_gradebook_has_each_submission_time_and_formgrader_shows_it(taught):
    """The time recorded is the one formgrader compares with the submission's timestamp.txt:
    equal, so formgrader lists both as graded, with their times (it showed "None")."""
    from nbgrader.apps.api import NbGraderAPI
    from nbgrader.coursedir import CourseDirectory

    recorded = submissions(taught)
    assert recorded["ada"][0] <= taught.deadline < recorded["bo"][0]
    coursedir = CourseDirectory(
        root=str(taught.root), submitted_directory="autograder/submitted",
        autograded_directory="autograder/autograded", db_url=taught.db_url(),
        course_id=COURSE_ID)
    shown = {s["student"]: s for s in NbGraderAPI(coursedir).get_submissions(ASSIGNMENT)}
    for student in ("ada", "bo"):
        assert shown[student]["autograded"] is True
        assert shown[student]["display_timestamp"] is not None
        assert shown[student]["score"] == recorded[student][1]


# --- the late policy ----------------------------------------------------------------------------

@pytest.mark.slow
@pytest.mark.sandbox
def test_a_late_submission_gets_nbgraders_penalty_in_the_gradebook_csv_and_feedback(taught):
    recorded = submissions(taught)
    full = recorded["ada"][1]
    assert full > 0 and recorded["bo"][1] == full            # both solved it
    assert not recorded["ada"][2] and recorded["bo"][2] == full  # "zero": all of Bo's points
    with Gradebook(taught.db_url(), COURSE_ID) as gradebook:
        assert gradebook.find_assignment(ASSIGNMENT).duedate == taught.deadline
    with (taught.root / "autograder" / "grades.csv").open(newline="") as file:
        rows = {row["student_id"]: row for row in csv.DictReader(file)}
    assert (float(rows["ada"]["score"]), float(rows["ada"]["late_penalty"])) == (full, 0)
    assert (float(rows["bo"]["score"]), float(rows["bo"]["late_penalty"])) == (0, full)
    with (taught.root / "autograder" / "exports" / "canvas.csv").open(newline="") as file:
        canvas = {row["SIS User ID"]: row[ASSIGNMENT] for row in csv.DictReader(file)}
    assert (float(canvas["ada"]), float(canvas["bo"])) == (full, 0)
    [bo], [ada] = taught.fetched("bo"), taught.fetched("ada")
    assert f"Late submission penalty (Score: -{full:.1f})" in bo.read_text()
    assert f"Score: 0.0 / {full:.1f}" in bo.read_text()
    assert "Late submission penalty" not in ada.read_text().split("</style>")[-1]
    assert "late: bo:" in taught.grade.stdout and "late: ada:" not in taught.grade.stdout


@pytest.mark.slow
@pytest.mark.sandbox
def test_plain_nbgrader_export_agrees_with_grades_csv(taught, tmp_path):
    """nbgrader's own export of the same gradebook (found through CONVCOURSE_DB_URL alone)."""
    nbgrader("export", f"--CourseDirectory.root={taught.root}", f"--to={tmp_path / 'x.csv'}",
             env=taught.instructor, cwd=taught.root)
    with (tmp_path / "x.csv").open(newline="") as file:
        exported = {row["student_id"]: row for row in csv.DictReader(file)}
    with (taught.root / "autograder" / "grades.csv").open(newline="") as file:
        ours = {row["student_id"]: row for row in csv.DictReader(file)}
    assert set(exported) == set(ours) == {"ada", "bo"}
    for student, row in ours.items():
        assert float(exported[student]["score"]) == float(row["score"])
        assert float(exported[student]["late_submission_penalty"]) == float(row["late_penalty"])


@pytest.mark.slow
@pytest.mark.sandbox
def test_a_time_the_learner_wrote_into_the_exchange_is_not_the_one_recorded(taught):
    """Bo's own timestamp.txt says an hour before the deadline; the kernel's record of his
    folder in the inbound says after it, and that is what counts."""
    submitted = taught.root / "autograder" / "submitted" / "bo" / ASSIGNMENT
    assert parse_utc(taught.claimed) < taught.deadline
    recorded = submissions(taught)["bo"][0]
    assert recorded > taught.deadline
    assert parse_utc((submitted / exchange.TIMESTAMP).read_text()) == recorded


@pytest.mark.slow
def test_a_deadline_or_penalty_that_cannot_be_used_is_a_clear_error(tmp_path):
    """Before anything is collected: what is wrong, and how to write it."""
    root = tmp_path / "course"
    shutil.copytree(SOLUTIONS / ASSIGNMENT, root / "solutions" / ASSIGNMENT)
    for settings_given, says in (
            ({"DEADLINE": "2026-12-01T23:59"}, "has no UTC offset"),
            ({"DEADLINE": "1st of December"}, "2026-12-01T23:59:00+00:00"),
            ({"CONVCOURSE_LATE_PENALTY": "half"}, "set CONVCOURSE_LATE_PENALTY to none or zero")):
        run = subprocess.run(
            [sys.executable, "-m", "autograder.grade", ASSIGNMENT, str(tmp_path / "class"),
             "--root", str(root), "--unsafe"],
            cwd=ROOT, env={**clean_environment(), **settings_given}, text=True,
            capture_output=True, check=False, timeout=300)
        assert run.returncode == 2 and says in run.stderr, run.stderr[-2000:]
        assert not (root / "autograder" / "submitted").exists()


# --- reading a submission's time -----------------------------------------------------------------

@pytest.mark.parametrize("text", ["2026-12-01 23:59:00.123456 UTC", "2026-12-01 23:59:00",
                                  "2026-12-01 23:59:00.5 GMT", "2026-12-01 23:59:00\n"])
def test_the_times_nbgrader_and_the_collector_write_are_read_as_nbgrader_reads_them(text):
    assert exchange.parse_time(text) == parse_utc(text.strip())


@pytest.mark.parametrize("text", [
    "2026-12-01T23:59:00", "2026-12-01 23:59:00 CET", "2026-12-01 23:59:00 +0100",
    "2026-13-01 00:00:00", "2026-12-01 23:59:00.1234567", "yesterday", "",
    "２０２６-12-01 23:59:00", "2026-12-01 23:59:00 UTC trailing"])
def test_anything_else_is_not_a_time(text):
    """Offsets nbgrader reads as seconds (``+0100``), zone names it may not know, ISO's T,
    other digits than ASCII's, anything around a time."""
    assert exchange.parse_time(text) is None


@pytest.fixture
def submitted(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv("CONVCOURSE_EXCHANGE", str(tmp_path / "exchange"))
    monkeypatch.setenv("CONVCOURSE_COURSE_ID", COURSE_ID)
    folder = tmp_path / "submitted" / "ada" / ASSIGNMENT
    folder.mkdir(parents=True)
    return folder


def settled(folder: Path) -> datetime | None:
    return exchange.settle_time(folder, "ada", ASSIGNMENT)


def test_a_learners_own_time_in_a_batch_is_kept_where_it_could_be_true(submitted):
    (submitted / exchange.TIMESTAMP).write_text("2026-01-02 03:04:05")
    assert settled(submitted) == datetime(2026, 1, 2, 3, 4, 5)
    assert (submitted / exchange.TIMESTAMP).read_text() == "2026-01-02 03:04:05"  # untouched


@pytest.mark.parametrize("text", ["2999-01-01 00:00:00", "1970-01-01 00:00:00", "soon",
                                  "x" * 10_000])
def test_a_time_that_cannot_be_true_becomes_when_the_grader_read_it(submitted, text):
    (submitted / exchange.TIMESTAMP).write_text(text)
    before = exchange.utc(time.time())
    when = settled(submitted)
    assert before <= when <= exchange.utc(time.time())
    assert parse_utc((submitted / exchange.TIMESTAMP).read_text()) == when  # as nbgrader reads


def test_no_time_is_made_up_where_the_batch_gives_none(submitted):
    assert settled(submitted) is None
    assert not (submitted / exchange.TIMESTAMP).exists()


def test_a_link_is_not_read_as_a_time(submitted, tmp_path):
    (tmp_path / "elsewhere.txt").write_text("2026-01-02 03:04:05")
    (submitted / exchange.TIMESTAMP).symlink_to(tmp_path / "elsewhere.txt")
    assert settled(submitted) != datetime(2026, 1, 2, 3, 4, 5)
    assert not (submitted / exchange.TIMESTAMP).is_symlink()  # replaced, never followed
    assert (tmp_path / "elsewhere.txt").read_text() == "2026-01-02 03:04:05"


def test_an_exchange_submission_is_timed_by_the_kernel_not_by_its_file(submitted, tmp_path):
    """Found by its secret in the inbound: its last change, whatever its timestamp.txt says;
    another folder of the learner's, with another secret, does not count."""
    secret = "ab" * 64
    for folder in (submitted, inbound := tmp_path / "exchange" / COURSE_ID / "inbound" /
                   f"ada+{ASSIGNMENT}+2026-01-01 00:00:00.000000 UTC+x"):
        folder.mkdir(parents=True, exist_ok=True)
        (folder / exchange.SECRET).write_text(secret)
        (folder / exchange.TIMESTAMP).write_text("2026-01-01 00:00:00.000000 UTC")
    other = inbound.with_name(f"ada+{ASSIGNMENT}+2027-01-01 00:00:00.000000 UTC+y")
    other.mkdir()
    (other / exchange.SECRET).write_text("cd" * 64)
    os.utime(inbound / exchange.TIMESTAMP, (0, 0))  # a learner may set file times: not ctime
    changed = max(p.lstat().st_ctime for p in (inbound, *inbound.iterdir()))
    assert settled(submitted) == exchange.utc(changed)


def test_a_folder_hidden_from_the_grader_counts_only_if_the_learners_own(tmp_path):
    """Run as a grader that is not root: a learner's own inbound folder made unreadable (after
    it was collected) still times their submission; one that another account made under
    their name does not. The learner is the account ``nobody``; the grader, uid 12345."""
    if os.geteuid() != 0:
        pytest.skip("needs root, to make folders of other accounts (CI runs as root)")
    import pwd

    nobody = pwd.getpwnam("nobody")
    # the grader's code and the exchange where uid 12345 can read them (not the clone's folder)
    with public_folder("convcourse-exchange-", ROOT / "autograder", ROOT / "convcourse") as top:
        inbound = top / COURSE_ID / "inbound"
        inbound.mkdir(parents=True)
        inbound.chmod(0o755)
        for name, owner in (("hidden", nobody.pw_uid), ("planted", 54321)):
            folder = inbound / f"nobody+{ASSIGNMENT}+{name}"
            folder.mkdir()
            (folder / exchange.SECRET).write_text("ef" * 64)
            os.chown(folder, owner, nobody.pw_gid)
            os.chown(folder / exchange.SECRET, owner, nobody.pw_gid)
            folder.chmod(0)
            time.sleep(0.05)  # the planted folder changes later (ctime ticks are coarse)
        hidden = (inbound / f"nobody+{ASSIGNMENT}+hidden").lstat().st_ctime
        ask = (f"from autograder import exchange; print(exchange.exchange_time("
               f"'nobody', {ASSIGNMENT!r}, {'ab' * 64!r}).isoformat())")
        run = subprocess.run(["setpriv", "--reuid=12345", "--regid=12345", "--clear-groups",
                              sys.executable, "-c", ask], cwd=top, text=True,
                             capture_output=True, check=False, timeout=60,
                             env={**clean_environment(), "CONVCOURSE_EXCHANGE": str(top),
                                  "CONVCOURSE_COURSE_ID": COURSE_ID})
        assert run.returncode == 0, run.stderr[-2000:]
        assert datetime.fromisoformat(run.stdout.strip()) == exchange.utc(hidden)


def test_feedback_gets_what_release_feedback_reads(submitted, tmp_path):
    feedback = tmp_path / "feedback"
    feedback.mkdir()
    (submitted / exchange.TIMESTAMP).write_text("2026-01-02 03:04:05")
    (submitted / exchange.SECRET).write_text("ab" * 64)
    exchange.hand_back(submitted, feedback)
    assert (feedback / exchange.SECRET).read_text() == "ab" * 64
    assert parse_utc((feedback / exchange.TIMESTAMP).read_text()) == datetime(2026, 1, 2, 3, 4, 5)
    # no secret of nbgrader's form (not through the exchange): one of its own, kept
    (submitted / exchange.SECRET).write_text("../../not a secret")
    (feedback / exchange.SECRET).unlink()
    exchange.hand_back(submitted, feedback)
    own = (feedback / exchange.SECRET).read_text()
    assert exchange.SECRET_FORM.fullmatch(own)
    exchange.hand_back(submitted, feedback)
    assert (feedback / exchange.SECRET).read_text() == own
