"""A PostgreSQL gradebook (any SQLAlchemy URL works; a class on several machines shares one):
make grade's code grades into it, grades.csv and plain nbgrader read the same grades, and two
batches graded at once into one new gradebook lose nothing.

The server is real: Debian's postgresql (``make test`` installs it), a cluster made for this
module in a folder of its own, run as an unprivileged user (PostgreSQL refuses root), listening
on a Unix socket in that folder only."""

from __future__ import annotations

import csv
import os
import pwd
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest
from course import NOTEBOOKS, ROOT, SOLUTIONS
from nbgrader.api import Gradebook
from test_exchange import clean_environment

pytestmark = [pytest.mark.slow, pytest.mark.sandbox]

ASSIGNMENT, NOTEBOOK = "01-shapes", "shapes"
COURSE_ID = "conv2d-course"
USER = "convcourse"  # the cluster's superuser, trusted on its socket


def postgres_tools() -> Path | None:
    """The folder of PostgreSQL's server programs: Debian keeps them off the PATH, in
    /usr/lib/postgresql/<version>/bin (the newest), elsewhere they are on it."""
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"),
                   key=lambda p: int(p.parts[-3]) if p.parts[-3].isdigit() else 0)
    if found:
        return found[-1].parent
    initdb = shutil.which("initdb")
    return Path(initdb).parent if initdb else None


@dataclass
class Server:
    socket: Path

    def url(self, database: str) -> str:
        return f"postgresql+psycopg://{USER}@/{database}?host={self.socket}"

    def create(self, database: str) -> str:
        """A new, empty database; its SQLAlchemy URL."""
        with psycopg.connect(host=str(self.socket), user=USER, dbname="postgres",
                             autocommit=True) as connection:
            connection.execute(f'CREATE DATABASE "{database}"')
        return self.url(database)


@pytest.fixture(scope="module")
def server():
    tools = postgres_tools()
    if tools is None:
        pytest.skip("PostgreSQL's initdb was not found: install Debian's postgresql "
                    "(make test installs it)")
    # In /tmp: every user may pass through it (pytest's folder is its user's own, 0700), and
    # the socket's path stays short (a Unix socket's may have 107 bytes).
    folder = Path(tempfile.mkdtemp(prefix="convcourse-postgres-", dir="/tmp"))
    become = []
    if os.geteuid() == 0:  # PostgreSQL runs as no superuser: as nobody, owning the folder
        nobody = pwd.getpwnam("nobody")
        os.chown(folder, nobody.pw_uid, nobody.pw_gid)
        become = ["setpriv", f"--reuid={nobody.pw_uid}", f"--regid={nobody.pw_gid}",
                  "--clear-groups"]
    data = folder / "data"
    made = subprocess.run([*become, str(tools / "initdb"), "-D", str(data), "-U", USER,
                           "--auth=trust", "--no-sync", "--encoding=UTF8", "--no-locale"],
                          capture_output=True, text=True, check=False, timeout=120)
    assert made.returncode == 0, made.stderr[-3000:]
    log = folder / "server.log"  # a file, not a pipe: a full pipe would stop the server
    with log.open("w") as out:
        process = subprocess.Popen(
            [*become, str(tools / "postgres"), "-D", str(data), "-k", str(folder),
             "-c", "listen_addresses=", "-c", "fsync=off", "-c", "shared_buffers=16MB",
             "-c", "max_connections=40"], stdout=out, stderr=subprocess.STDOUT)
    try:
        ready = Server(folder)
        for _ in range(300):
            try:
                psycopg.connect(host=str(folder), user=USER, dbname="postgres").close()
                break
            except psycopg.OperationalError:
                assert process.poll() is None, log.read_text()[-3000:]
                time.sleep(0.1)
        else:
            pytest.fail("PostgreSQL did not start in 30 s")
        yield ready
    finally:
        process.send_signal(signal.SIGQUIT)  # PostgreSQL's immediate shutdown: a scratch cluster
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        shutil.rmtree(folder, ignore_errors=True)


def course(folder: Path, learners: dict[str, str]) -> tuple[Path, Path]:
    """A scratch course of the assignment and a class folder: learner -> 'solved' (the
    instructor's notebook) or 'stub' (the release)."""
    root, batch = folder / "course", folder / "batch"
    for kind, source in (("solutions", SOLUTIONS), ("notebooks", NOTEBOOKS)):
        shutil.copytree(source / ASSIGNMENT, root / kind / ASSIGNMENT)
    for student, kind in learners.items():
        (batch / student).mkdir(parents=True)
        shutil.copyfile((SOLUTIONS if kind == "solved" else NOTEBOOKS) / ASSIGNMENT /
                        f"{NOTEBOOK}.ipynb", batch / student / f"{NOTEBOOK}.ipynb")
    return root, batch


def environment(**chosen: str) -> dict:
    """The instructor's: the course's nbgrader configuration, and only the ``chosen``
    settings (none leaks in from this process's environment)."""
    return {**clean_environment(), "JUPYTER_CONFIG_PATH": str(ROOT / "autograder"),
            "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
            **chosen}


def grade(root: Path, batch: Path, env: dict, *, background: bool = False):
    """make grade's code on the batch (one worker: the suite runs on two cores)."""
    command = [sys.executable, "-m", "autograder.grade", ASSIGNMENT, str(batch),
               "--root", str(root), "--workers", "1"]
    options = dict(cwd=ROOT, env=env, text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    if background:
        return subprocess.Popen(command, **options)
    return subprocess.run(command, check=False, timeout=600, **options)


def in_gradebook(url: str) -> dict[str, float]:
    with Gradebook(url, COURSE_ID) as gradebook:
        return {s.student.id: s.score for s in gradebook.find_assignment(ASSIGNMENT).submissions}


def grades_csv(root: Path) -> dict[str, float]:
    with (root / "autograder" / "grades.csv").open(newline="") as file:
        return {row["student_id"]: float(row["score"]) for row in csv.DictReader(file)}


def full_marks() -> float:
    import nbformat

    return sum(c.metadata["nbgrader"]["points"] for c in nbformat.read(
        SOLUTIONS / ASSIGNMENT / f"{NOTEBOOK}.ipynb", as_version=4).cells
        if c.metadata.get("nbgrader", {}).get("grade"))


@dataclass
class Graded:
    url: str
    roots: dict[tuple[str, ...], Path]     # the learners of each batch -> its course folder
    runs: list[tuple[str, str]]            # what each grader printed (stdout, stderr)


@pytest.fixture(scope="module")
def two_batches(server, tmp_path_factory) -> Graded:
    """Two graders (two course folders, as on two machines) start on one empty database at the
    same moment: the first told the gradebook as the course's setting (CONVCOURSE_DB_URL, which
    plain nbgrader reads too), the second as make grade DB=... passes it."""
    url = server.create("class")
    tmp = tmp_path_factory.mktemp("postgres")
    started = []
    for name, learners, setting in (("first", {"cy": "solved", "dee": "stub"},
                                     "CONVCOURSE_DB_URL"),
                                    ("second", {"eve": "stub", "fay": "solved"}, "DB")):
        root, batch = course(tmp / name, learners)
        started.append((tuple(learners), root,
                        grade(root, batch, environment(**{setting: url}), background=True)))
    runs = []
    for _, _, process in started:
        out, err = process.communicate(timeout=600)
        assert process.returncode == 0, out + err[-3000:]
        runs.append((out, err))
    return Graded(url, {learners: root for learners, root, _ in started}, runs)


def test_two_batches_graded_at_once_into_one_new_gradebook_lose_nothing(two_batches):
    """Both finish, and the gradebook holds every learner of both, each with their score; no
    SQLite gradebook appears beside either course."""
    full = full_marks()
    assert in_gradebook(two_batches.url) == {"cy": full, "dee": 0, "eve": 0, "fay": full}
    for root in two_batches.roots.values():
        assert not (root / "autograder" / "gradebook.db").exists()
    for out, _ in two_batches.runs:
        assert f"Gradebook: postgresql+psycopg://{USER}@/class?host=" in out


def test_grades_csv_and_plain_nbgrader_read_what_the_gradebook_holds(two_batches, tmp_path):
    """Each grader's grades.csv has its learners as the gradebook has them; plain nbgrader
    export, told nothing but CONVCOURSE_DB_URL, reads every learner of both batches."""
    book = in_gradebook(two_batches.url)
    for learners, root in two_batches.roots.items():
        assert {s: grades_csv(root)[s] for s in learners} == {s: book[s] for s in learners}
    root = next(iter(two_batches.roots.values()))
    exported = tmp_path / "export.csv"
    plain = subprocess.run([str(Path(sys.executable).parent / "nbgrader"), "export",
                            f"--CourseDirectory.root={root}", f"--to={exported}"], cwd=root,
                           env=environment(CONVCOURSE_DB_URL=two_batches.url),
                           capture_output=True, text=True, check=False, timeout=300)
    assert plain.returncode == 0, plain.stderr[-3000:]
    with exported.open(newline="") as file:
        assert {row["student_id"]: float(row["score"]) for row in csv.DictReader(file)} == book


def test_a_gradebook_that_cannot_be_opened_is_a_clear_error(server, tmp_path):
    """Before anything is graded: what is wrong, and where the URL comes from."""
    root, batch = course(tmp_path, {"ada": "stub"})
    for url, says in ((server.url("no_such_database"), "cannot open the gradebook"),
                      ("postgresql+psycopg2://x@/y", "driver 'psycopg2'"),
                      ("not a url", "not an SQLAlchemy URL")):
        run = grade(root, batch, environment(DB=url))
        assert run.returncode == 2 and says in run.stderr, run.stderr[-2000:]
        assert not (root / "autograder" / "submitted").exists()
