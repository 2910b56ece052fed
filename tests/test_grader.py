"""`make grade` as an instructor meets it: one command over a class, resumable, refusing to run
unsandboxed unless told to, reading LMS zips, and leaving a gradebook that plain nbgrader
commands (export, generate_feedback) use from the repository root.

The hostile corpus lives in test_grader_corpus.py; this file checks the machinery."""

from __future__ import annotations

import csv
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import nbformat
import pytest
from course import NOTEBOOKS, ROOT, SOLUTIONS
from nbgrader.api import Gradebook

#: Every test here runs `make grade` on a small class; all but one in the sandbox (marked).
pytestmark = pytest.mark.slow

ASSIGNMENT = "01-shapes"  # the quickest notebook to grade
NOTEBOOK = "shapes"


def scratch_root(tmp_path: Path) -> Path:
    root = tmp_path / "course"
    for kind, folder in (("solutions", SOLUTIONS), ("notebooks", NOTEBOOKS)):
        shutil.copytree(folder / ASSIGNMENT, root / kind / ASSIGNMENT)
    return root


def class_folder(tmp_path: Path, learners: dict[str, str]) -> Path:
    """learners: id -> 'solved' (the instructor's notebook) or 'stub' (the release)."""
    folder = tmp_path / "submissions"
    for student, kind in learners.items():
        source = (SOLUTIONS if kind == "solved" else NOTEBOOKS) / ASSIGNMENT / f"{NOTEBOOK}.ipynb"
        (folder / student).mkdir(parents=True)
        shutil.copyfile(source, folder / student / f"{NOTEBOOK}.ipynb")
    return folder


def grade(root: Path, submissions: Path, *extra: str, env: dict | None = None,
          background: bool = False):
    command = [sys.executable, "-m", "autograder.grade", ASSIGNMENT, str(submissions),
               "--root", str(root), *extra]
    options = dict(cwd=ROOT, env={**os.environ, **(env or {})}, text=True,
                   stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    if background:  # Ctrl-C reaches it even where the suite runs as a background job (which
        # starts with SIGINT ignored, and Python then installs no KeyboardInterrupt handler)
        return subprocess.Popen(command, **options, preexec_fn=_interruptible)
    return subprocess.run(command, check=False, **options)


def _interruptible() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def grades_csv(root: Path) -> dict[str, tuple[float, float]]:
    with (root / "autograder" / "grades.csv").open(newline="") as file:
        return {row["student_id"]: (float(row["score"]), float(row["max_score"]))
                for row in csv.DictReader(file)}


def result_file(root: Path, student: str) -> Path:
    return root / "autograder" / "autograded" / student / ASSIGNMENT / "result.json"


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    """A small class graded once: two who solved it, one who submitted the release."""
    tmp = tmp_path_factory.mktemp("grade")
    root = scratch_root(tmp)
    run = grade(root, class_folder(tmp, {"ada": "solved", "bo": "stub", "cy": "solved"}),
                "--workers", "2")
    assert run.returncode == 0, run.stdout + run.stderr[-3000:]
    return root, run


@pytest.mark.sandbox
def test_one_command_grades_the_class_into_csv_gradebook_and_feedback(graded):
    root, run = graded
    full = sum(c.metadata["nbgrader"]["points"] for c in nbformat.read(
        SOLUTIONS / ASSIGNMENT / f"{NOTEBOOK}.ipynb", as_version=4).cells
        if c.metadata.get("nbgrader", {}).get("grade"))
    assert grades_csv(root) == {"ada": (full, full), "bo": (0, full), "cy": (full, full)}
    with Gradebook(f"sqlite:///{root}/autograder/gradebook.db") as gradebook:
        for student, (score, _) in grades_csv(root).items():
            assert gradebook.find_submission(ASSIGNMENT, student).score == score
    for student in ("ada", "bo", "cy"):
        page = root / "autograder" / "feedback" / student / ASSIGNMENT / f"{NOTEBOOK}.html"
        assert "Score:" in page.read_text()
    assert "not written yet" in (root / "autograder" / "feedback" / "bo" / ASSIGNMENT /
                                 f"{NOTEBOOK}.html").read_text()
    assert "Graded 3 submissions" in run.stdout and "Mean score" in run.stdout


@pytest.mark.sandbox
def test_grading_the_same_batch_again_reuses_the_grades(graded, tmp_path):
    root, _ = graded
    before = {s: result_file(root, s).stat().st_mtime_ns for s in ("ada", "bo", "cy")}
    again = grade(root, root / "autograder" / "submitted")
    assert again.returncode == 0, again.stderr[-2000:]
    assert {s: result_file(root, s).stat().st_mtime_ns for s in before} == before
    assert grades_csv(root)["ada"][0] == grades_csv(root)["ada"][1]


@pytest.mark.sandbox
def test_plain_nbgrader_commands_work_from_the_repository_root(graded, tmp_path):
    """The environment carries the course's nbgrader config: no JUPYTER_CONFIG_PATH needed."""
    root, _ = graded
    env = {k: v for k, v in os.environ.items() if k != "JUPYTER_CONFIG_PATH"}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    where = [f"--CourseDirectory.root={root}",
             f"--CourseDirectory.db_url=sqlite:///{root}/autograder/gradebook.db"]
    nbgrader = str(Path(sys.executable).parent / "nbgrader")
    export = subprocess.run([nbgrader, "export", *where, f"--to={tmp_path / 'export.csv'}"],
                            cwd=ROOT, env=env, capture_output=True, text=True, check=False)
    assert export.returncode == 0, export.stderr[-2000:]
    assert "No nbgrader_config.py file found" not in export.stderr
    with (tmp_path / "export.csv").open(newline="") as file:
        exported = {row["student_id"]: float(row["raw_score"]) for row in csv.DictReader(file)}
    assert exported == {s: score for s, (score, _) in grades_csv(root).items()}
    feedback = subprocess.run([nbgrader, "generate_feedback", ASSIGNMENT, "--force", *where],
                              cwd=ROOT, env=env, capture_output=True, text=True, check=False)
    assert feedback.returncode == 0, feedback.stderr[-2000:]


@pytest.mark.sandbox
def test_an_interrupted_run_keeps_what_was_graded_and_the_next_run_finishes(tmp_path):
    root = scratch_root(tmp_path)
    learners = {f"l{i}": "solved" for i in range(4)}
    submissions = class_folder(tmp_path, learners)
    run = grade(root, submissions, "--workers", "1", background=True)
    deadline = time.monotonic() + 300
    while not result_file(root, "l0").exists() and time.monotonic() < deadline:
        time.sleep(0.2)
    run.send_signal(signal.SIGINT)
    run.communicate(timeout=120)
    assert run.returncode == 130
    done = {s for s in learners if result_file(root, s).exists()}
    assert "l0" in done and len(done) < 4
    kept = {s: result_file(root, s).stat().st_mtime_ns for s in done}
    finish = grade(root, submissions, "--workers", "2")
    assert finish.returncode == 0, finish.stderr[-2000:]
    assert {s: result_file(root, s).stat().st_mtime_ns for s in done} == kept
    assert all(score == most for score, most in grades_csv(root).values())
    assert set(grades_csv(root)) == set(learners)


@pytest.mark.sandbox
def test_an_lms_zip_is_collected_by_its_file_names(tmp_path):
    root = scratch_root(tmp_path)
    archive = tmp_path / "download.zip"
    with zipfile.ZipFile(archive, "w") as bundle:
        bundle.write(SOLUTIONS / ASSIGNMENT / f"{NOTEBOOK}.ipynb", f"ada_{NOTEBOOK}.ipynb")
        bundle.write(NOTEBOOKS / ASSIGNMENT / f"{NOTEBOOK}.ipynb",
                     f"bo_attempt_2026-11-01_{NOTEBOOK}.ipynb")
    run = grade(root, archive, "--workers", "2")
    assert run.returncode == 0, run.stdout + run.stderr[-3000:]
    scores = grades_csv(root)
    assert set(scores) == {"ada", "bo"}
    assert scores["ada"][0] == scores["ada"][1] > 0 and scores["bo"][0] == 0


def test_without_bubblewrap_it_refuses_unless_told_to_run_unsafe(tmp_path):
    root = scratch_root(tmp_path)
    submissions = class_folder(tmp_path, {"ada": "solved"})
    no_bwrap = {"PATH": str(Path(sys.executable).parent)}
    refused = grade(root, submissions, env=no_bwrap)
    assert refused.returncode == 3
    assert "REFUSED" in refused.stderr and "bubblewrap" in refused.stderr
    assert not result_file(root, "ada").exists()
    unsafe = grade(root, submissions, "--unsafe", env=no_bwrap)
    assert unsafe.returncode == 0, unsafe.stderr[-2000:]
    assert "WITHOUT the sandbox" in unsafe.stderr
    assert grades_csv(root)["ada"][0] == grades_csv(root)["ada"][1]
    graded = json.loads(result_file(root, "ada").read_text())
    assert graded["score"] == graded["max_score"]


@pytest.mark.sandbox
def test_a_learner_folder_with_an_unusable_name_is_reported_not_graded(tmp_path):
    root = scratch_root(tmp_path)
    submissions = class_folder(tmp_path, {"ada": "solved"})
    (submissions / "bad name!").mkdir()
    run = grade(root, submissions)
    assert run.returncode == 0
    assert "not graded: 'bad name!'" in run.stdout
    assert set(grades_csv(root)) == {"ada"}


@pytest.mark.sandbox
def test_nbgraders_own_layout_is_graded_under_the_students_name(tmp_path):
    """<student>/<assignment>/<notebook>.ipynb, as nbgrader's submitted/ folder has it."""
    root = scratch_root(tmp_path)
    submissions = tmp_path / "collected"
    (submissions / "ada" / ASSIGNMENT).mkdir(parents=True)
    shutil.copyfile(SOLUTIONS / ASSIGNMENT / f"{NOTEBOOK}.ipynb",
                    submissions / "ada" / ASSIGNMENT / f"{NOTEBOOK}.ipynb")
    run = grade(root, submissions)
    assert run.returncode == 0, run.stderr[-2000:]
    assert set(grades_csv(root)) == {"ada"}
    assert grades_csv(root)["ada"][0] == grades_csv(root)["ada"][1]
