"""Formgrader's per-row "Autograde" button runs nothing of a learner's (autograder/formgrader.py).

End to end: a scratch course is graded by ``make grade``'s command (sandboxed: result.json,
the gradebook); a real Jupyter server with nbgrader's formgrader, configured as the course
configures it, is asked to autograde that learner the way the button asks (a POST to its
API). It answers with the command that grades in the sandbox, and the learner's code did not
run (a cell of theirs that leaves a mark outside any sandbox left none), result.json and the
grade are as they were. The control, on the same course: plain ``nbgrader autograde``, the
same Autograde the button ran before, runs that cell (the mark appears) and empties the
autograded folder, result.json with it.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import nbformat
import pytest
from course import NOTEBOOKS, ROOT, SOLUTIONS, nbgrader
from nbgrader.api import Gradebook

from autograder.grade import gradebook_url

ASSIGNMENT, NOTEBOOK, STUDENT = "01-shapes", "shapes", "ada"
#: The scratch course's nbgrader configuration: the course's own, on the scratch folders (as
#: make grade runs nbgrader on a course in another folder, autograder/grade.py's nbgrader()).
SCRATCH_CONFIG = """\
c = get_config()  # noqa: F821
load_subconfig({course!r})  # noqa: F821
c.CourseDirectory.root = {root!r}
c.CourseDirectory.db_url = {db_url!r}
"""
COMMAND = f"make grade ASSIGNMENT={ASSIGNMENT} SUBMISSIONS=autograder/submitted"


def load_config(folder: Path):
    from traitlets.config.loader import PyFileConfigLoader

    return PyFileConfigLoader("nbgrader_config.py", str(folder)).load_config()


def test_only_formgraders_autograde_is_switched_off():
    """The course's configuration gives the Autograde that formgrader's API makes the
    refusing exporter, and leaves the command line's Autograde (and any other) alone."""
    from nbconvert.exporters import NotebookExporter
    from nbgrader.apps import AutogradeApp, NbGraderAPI
    from nbgrader.converters import Autograde
    from nbgrader.coursedir import CourseDirectory

    config = load_config(ROOT / "autograder")
    coursedir = CourseDirectory(config=config)
    coursedir.assignment_id = "02-numpy"
    button = Autograde(coursedir=coursedir, parent=NbGraderAPI(coursedir, config=config))
    assert button.exporter_class.__name__ == "SandboxOnly"
    command_line = Autograde(coursedir=coursedir, parent=AutogradeApp(config=config))
    assert command_line.exporter_class is NotebookExporter
    with pytest.raises(RuntimeError, match=r"(?s)switched off.*make grade ASSIGNMENT=02-numpy"):
        button.exporter_class(parent=button)


# --- end to end --------------------------------------------------------------------------------

def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def request(url: str, token: str, *, method: str = "GET") -> tuple[int, bytes]:
    call = urllib.request.Request(url, method=method, data=b"" if method == "POST" else None,
                                  headers={"Authorization": f"token {token}"})
    try:
        with urllib.request.urlopen(call, timeout=60) as answer:
            return answer.status, answer.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()
    except OSError:
        return 0, b""


class Formgrader:
    """``jupyter server`` on the course in ``root``, nbgrader's extensions as installed, the
    course's nbgrader configuration on that course (``scratch/config``: JUPYTER_CONFIG_PATH)."""

    def __init__(self, root: Path, scratch: Path):
        self.port, self.token = free_port(), os.urandom(16).hex()
        self.log = (scratch / "server.log").open("w")
        env = {**os.environ, "JUPYTER_CONFIG_PATH": str(scratch / "config"),
               "JUPYTER_RUNTIME_DIR": str(scratch / "runtime")}
        self.process = subprocess.Popen(
            [sys.executable, "-m", "jupyter_server", f"--ServerApp.root_dir={root}",
             "--ServerApp.ip=127.0.0.1", f"--ServerApp.port={self.port}",
             "--ServerApp.open_browser=False", "--ServerApp.allow_root=True",
             f"--IdentityProvider.token={self.token}"],
            cwd=root, env=env, stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 60
        while request(self.url("api/status"), self.token)[0] != 200:
            assert self.process.poll() is None and time.monotonic() < deadline, \
                (scratch / "server.log").read_text()[-3000:]
            time.sleep(0.3)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}/{path}"

    def call(self, path: str, method: str = "GET"):
        status, body = request(self.url(path), self.token, method=method)
        assert status == 200, (status, body[:2000])
        return json.loads(body)

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
        self.log.close()


@pytest.fixture(scope="module")
def course(tmp_path_factory):
    """A scratch course with one learner graded by make grade's command; its mark file."""
    scratch = tmp_path_factory.mktemp("formgrader")
    root, mark = scratch / "course", scratch / "learner-code-ran-here"
    for kind in (SOLUTIONS, NOTEBOOKS):
        shutil.copytree(kind / ASSIGNMENT, root / kind.name / ASSIGNMENT)
    (scratch / "config").mkdir()
    (scratch / "config" / "nbgrader_config.py").write_text(SCRATCH_CONFIG.format(
        course=str(ROOT / "autograder" / "nbgrader_config.py"), root=str(root),
        db_url=gradebook_url(root)))
    notebook = nbformat.read(SOLUTIONS / ASSIGNMENT / f"{NOTEBOOK}.ipynb", as_version=4)
    notebook.cells.append(nbformat.v4.new_code_cell(  # the learner's own cell
        f"try:\n    open({str(mark)!r}, 'w').write('ran')\nexcept OSError:\n    pass\n"))
    (scratch / "batch" / STUDENT).mkdir(parents=True)
    nbformat.write(notebook, scratch / "batch" / STUDENT / f"{NOTEBOOK}.ipynb")
    graded = subprocess.run(
        [sys.executable, "-m", "autograder.grade", ASSIGNMENT, str(scratch / "batch"),
         "--root", str(root), "--workers", "1"],
        cwd=ROOT, capture_output=True, text=True, timeout=300, check=False)
    assert graded.returncode == 0, graded.stdout[-3000:] + graded.stderr[-3000:]
    assert not mark.exists()  # graded in the sandbox
    return root, mark, scratch


def score(root: Path) -> tuple[float, float]:
    with Gradebook(gradebook_url(root)) as gradebook:
        submission = gradebook.find_submission(ASSIGNMENT, STUDENT)
        return submission.score, submission.max_score


@pytest.mark.sandbox
@pytest.mark.slow
def test_the_autograde_button_runs_nothing_and_says_how_to_grade(course):
    root, mark, scratch = course
    autograded = root / "autograder" / "autograded" / STUDENT / ASSIGNMENT
    before = {path.name: path.read_bytes() for path in autograded.iterdir()}
    assert "result.json" in before and f"{NOTEBOOK}.ipynb" in before
    graded = score(root)
    assert graded[0] == graded[1] > 0  # the solutions, full marks

    server = Formgrader(root, scratch)
    try:
        listed = server.call(f"formgrader/api/submissions/{ASSIGNMENT}")
        answer = server.call(f"formgrader/api/submission/{ASSIGNMENT}/{STUDENT}/autograde",
                             "POST")
    finally:
        server.stop()
    row = next(row for row in listed if row["student"] == STUDENT)
    assert row["autograded"] and row["score"] == graded[0]  # make grade's grade, as recorded
    assert answer["success"] is False
    assert "switched off" in answer["log"] and COMMAND in answer["log"]
    assert "AutogradeSwitchedOff" in answer["error"]
    assert not mark.exists()
    assert {path.name: path.read_bytes() for path in autograded.iterdir()} == before
    assert score(root) == graded


@pytest.mark.sandbox
@pytest.mark.slow
def test_the_control_plain_autograde_runs_the_learners_code_and_the_named_command_mends_it(
        course):
    """What the button ran before: nbgrader's own Autograde, here from the command line (which
    the course leaves as it is) — the learner's cell runs on this machine, and make grade's
    result.json is gone. Then the command the button names, run as given from the course
    folder, grades the learner again in the sandbox."""
    root, mark, _ = course
    result = root / "autograder" / "autograded" / STUDENT / ASSIGNMENT / "result.json"
    done = nbgrader("autograde", ASSIGNMENT, f"--student={STUDENT}", "--force", root=root)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert mark.read_text() == "ran"
    assert not result.exists()

    mark.unlink()
    assignment, submissions = (COMMAND.split(f"{name}=")[1].split()[0]
                               for name in ("ASSIGNMENT", "SUBMISSIONS"))
    graded = subprocess.run([sys.executable, "-m", "autograder.grade", assignment, submissions,
                             "--root", str(root), "--workers", "1"],
                            cwd=root, env={**os.environ, "PYTHONPATH": str(ROOT)},
                            capture_output=True, text=True, timeout=300, check=False)
    assert graded.returncode == 0, graded.stdout[-3000:] + graded.stderr[-3000:]
    assert json.loads(result.read_text())["score"] == score(root)[0] == score(root)[1] > 0
    assert not mark.exists()
