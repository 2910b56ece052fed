"""The Gradescope autograder: the zip holds the grader and one assignment, nothing else, and its
run_autograder grades a submission the way Gradescope runs it (a scratch /autograder, the zip
unpacked into source/, the upload in submission/), sandboxed, into a results.json of
Gradescope's format (https://gradescope-autograders.readthedocs.io/en/latest/specs/) that never
shows hidden-test source: each test cell's visible checks at once, its points (make grade's)
once grades are published."""

from __future__ import annotations

import io
import json
import math
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import nbformat
import pytest
from course import NOTEBOOKS, ROOT, SOLUTIONS, answer_cells, assignments, without_solution_markers
from mistakes.corpus import MISTAKES
from mistakes.corpus import source as mistake_source

from autograder import gradescope
from autograder.gradescope import ZIP_TIME, bundle_files
from autograder.notebook import grade_cells, hidden_test_lines, nbgrader_meta
from autograder.score import NotebookResult, split_test_cell
from autograder.score import TestResult as Result
from autograder.secret import course_key
from convcourse.grading.cases import COURSE_KEY

ASSIGNMENT = "02-numpy"
NOTEBOOK = "conv2d-numpy.ipynb"
SOURCE = SOLUTIONS / ASSIGNMENT / NOTEBOOK
RELEASE = NOTEBOOKS / ASSIGNMENT / NOTEBOOK


def graded_cells() -> dict[str, float]:
    """grade_id -> points of the source notebook's test cells."""
    return {nbgrader_meta(c)["grade_id"]: float(nbgrader_meta(c)["points"])
            for c in grade_cells(nbformat.read(SOURCE, as_version=4))}


def hidden_cells_and_lines() -> tuple[set[str], list[str]]:
    """The test cells holding hidden tests, and the hidden tests' lines worth looking for."""
    cells, lines = set(), []
    for cell in grade_cells(nbformat.read(SOURCE, as_version=4)):
        if hidden_test_lines(cell):
            cells.add(nbgrader_meta(cell)["grade_id"])
            lines += [line for line in hidden_test_lines(cell) if len(line) >= 20]
    return cells, lines


def repository_files(*paths: str) -> set[str]:
    """The repository's files under ``paths`` as git knows them (committed or new, not
    ignored): the grader without its working folders, read independently of the grader."""
    listed = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard",
                             "--", *paths], cwd=ROOT, capture_output=True, text=True,
                            check=True).stdout.splitlines()
    return {name for name in listed if (ROOT / name).is_file()}


#: What the zip carries of the grader: the Python files of autograder/ and of the parts of
#: convcourse/ that grading uses (not the book's figures).
GRADER = {name for name in repository_files("autograder", "convcourse/__init__.py",
                                            "convcourse/reference.py", "convcourse/grading")
          if name.endswith(".py")}


@pytest.fixture(scope="module")
def scratch(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("gradescope")


@pytest.fixture(scope="module")
def course(scratch) -> Path:
    """A copy of what the zip needs, plus what it must leave out."""
    root = scratch / "course"
    for name in GRADER:
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(ROOT / name, root / name)
    for folder in ("autograder/gradescope", "convcourse/figures", f"solutions/{ASSIGNMENT}",
                   f"notebooks/{ASSIGNMENT}", "solutions/01-shapes", "notebooks/01-shapes"):
        shutil.copytree(ROOT / folder, root / folder,
                        ignore=shutil.ignore_patterns("__pycache__"))
    decoys = ["autograder/gradebook.db", "tests/test_secret.py", "convcourse/__pycache__/x.pyc",
              "autograder/submitted/ada/02-numpy/helper.py", "autograder/grades.csv",
              "autograder/sandboxed/__pycache__/wire.cpython-311.pyc",
              f"solutions/{ASSIGNMENT}/.ipynb_checkpoints/conv2d-numpy-checkpoint.ipynb"]
    for decoy in decoys:
        (root / decoy).parent.mkdir(parents=True, exist_ok=True)
        (root / decoy).write_text("not for the zip")
    return root


def build(course: Path, *flags: str) -> bytes:
    done = subprocess.run([sys.executable, "-m", "autograder.gradescope", ASSIGNMENT,
                           "--root", str(course), *flags],
                          cwd=ROOT, capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    return (course / "autograder" / "dist" / f"{ASSIGNMENT}-gradescope.zip").read_bytes()


def install(bundle: bytes, autograder: Path) -> Path:
    """Unpack the zip into ``autograder/source`` as Gradescope does, file modes included."""
    with zipfile.ZipFile(io.BytesIO(bundle)) as archive:
        for entry in archive.infolist():
            target = autograder / "source" / entry.filename
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(archive.read(entry))
            target.chmod(entry.external_attr >> 16 & 0o777)
    return autograder


@pytest.fixture(scope="module")
def bundle(course) -> bytes:
    return build(course)


@pytest.fixture(scope="module")
def autograder(bundle, scratch) -> Path:
    return install(bundle, scratch / "autograder")


@pytest.fixture(scope="module")
def unsafe_autograder(course, scratch) -> Path:
    return install(build(course, "--unsafe"), scratch / "unsafe-autograder")


@pytest.fixture(scope="module")
def no_bwrap(scratch) -> str:
    """A PATH with what run_autograder uses, but no bwrap."""
    folder = scratch / "bin"
    folder.mkdir()
    for tool in ("bash", "mkdir", "rm"):
        (folder / tool).symlink_to(shutil.which(tool))
    return str(folder)


def run_autograder(autograder: Path, upload: dict[str, bytes | Path], *,
                   path: str | None = None, python: str = sys.executable,
                   ) -> tuple[subprocess.CompletedProcess, dict]:
    """Put ``upload`` (name -> content, or a Path to link to) in submission/, run
    run_autograder, and return the run and its results.json."""
    for folder in ("submission", "results"):
        shutil.rmtree(autograder / folder, ignore_errors=True)
    for name, content in upload.items():
        target = autograder / "submission" / name
        target.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, Path):
            target.symlink_to(content)
        else:
            target.write_bytes(content)
    env = {**os.environ, "AUTOGRADER_ROOT": str(autograder), "PYTHON": python}
    if path is not None:
        env["PATH"] = path
    done = subprocess.run([autograder / "source" / "run_autograder"], cwd=autograder, env=env,
                          capture_output=True, text=True, timeout=300, check=False)
    results_file = autograder / "results" / "results.json"
    assert results_file.is_file(), done.stdout + done.stderr
    return done, json.loads(results_file.read_text())


#: Gradescope's results.json, as its specification lists the fields (the page named at the top).
TOP_LEVEL = {"score", "execution_time", "output", "output_format", "test_output_format",
             "test_name_format", "visibility", "stdout_visibility", "extra_data", "tests",
             "leaderboard"}
TEST_FIELDS = {"score", "max_score", "status", "name", "name_format", "number", "output",
               "output_format", "tags", "visibility", "extra_data"}
VISIBILITIES = {"hidden", "after_due_date", "after_published", "visible"}
FORMATS = {"text", "html", "simple_format", "md", "ansi"}


def check_gradescope_format(results: dict) -> None:
    """Only fields the specification names, each of its type and values; finite numbers."""
    assert set(results) <= TOP_LEVEL, set(results) - TOP_LEVEL
    number = (int, float)
    assert isinstance(results["score"], number) and math.isfinite(results["score"])
    assert isinstance(results.get("output", ""), str)
    assert results.get("output_format", "text") in FORMATS
    assert results.get("visibility", "visible") in VISIBILITIES
    for test in results["tests"]:
        assert set(test) <= TEST_FIELDS, set(test) - TEST_FIELDS
        assert isinstance(test["name"], str) and test["name"]
        assert isinstance(test["output"], str)
        for key in ("score", "max_score"):
            assert isinstance(test[key], number) and math.isfinite(test[key]), test
        assert test["status"] in ("passed", "failed")
        assert test["visibility"] in VISIBILITIES and test["output_format"] in FORMATS


def check_results(results: dict) -> None:
    """Gradescope's format; a test cell without hidden tests is one entry shown at once; one
    with hidden tests is its visible checks at once (no points) then its points after
    publication; the points add up to the notebook's, and no hidden-test source is shown."""
    check_gradescope_format(results)
    points = graded_cells()
    hidden, hidden_lines = hidden_cells_and_lines()
    tests = results["tests"]
    expected = []
    for grade_id, most in points.items():
        expected += ([(grade_id, "visible", 0.0), (grade_id, "after_published", most)]
                     if grade_id in hidden else [(grade_id, "visible", most)])
    assert [(t["name"].split(":")[0], t["visibility"], t["max_score"]) for t in tests] == \
        expected
    for test in tests:
        assert 0 <= test["score"] <= test["max_score"]
        if test["max_score"] > 0:
            assert test["status"] == ("passed" if test["score"] == test["max_score"]
                                      else "failed")
        assert test["output"].strip()
    for shown, counted in zip(tests, tests[1:], strict=False):  # a cell's two entries
        if shown["max_score"] == 0 and shown["status"] == "failed":
            assert counted["score"] == 0  # no points where the notebook's own checks fail
    assert sum(t["max_score"] for t in tests) == sum(points.values())
    assert results["score"] == sum(t["score"] for t in tests)
    shown = json.dumps(results)
    leaked = [line for line in hidden_lines if json.dumps(line)[1:-1] in shown]
    assert not leaked, leaked


def test_the_zip_holds_the_grader_and_one_assignment_only(course, bundle):
    expected = {"setup.sh", "run_autograder", f"solutions/{ASSIGNMENT}/{NOTEBOOK}",
                f"notebooks/{ASSIGNMENT}/{NOTEBOOK}", "autograder/course-key"}
    expected |= GRADER
    made = (course / "autograder" / "course-secret").read_text().strip()  # on first use
    with zipfile.ZipFile(io.BytesIO(bundle)) as archive:
        entries = archive.infolist()
        script = archive.read("run_autograder").decode()
        key = archive.read("autograder/course-key").decode().strip()
        assert not any(made.encode() in archive.read(entry) for entry in entries)
    assert key == course_key(made.encode())  # the HMAC of the secret, never the secret
    names = [entry.filename for entry in entries]
    assert names == sorted(names) and set(names) == expected
    for entry in entries:
        assert entry.date_time == ZIP_TIME
        mode = entry.external_attr >> 16
        assert mode == (0o100755 if entry.filename in ("setup.sh", "run_autograder")
                        else 0o100644), entry.filename
    assert script.startswith("#!") and f" {ASSIGNMENT} --grade" in script and "@" not in script
    assert not [line for line in script.splitlines() if "--grade" in line and "--unsafe" in line]
    assert build(course) == bundle  # the same files give the same bytes


def test_setup_installs_bubblewrap_and_the_pinned_dependencies():
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    setup = (ROOT / "autograder" / "gradescope" / "setup.sh").read_text()
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    pins = project["dependencies"]
    pins += [pin for pin in project["optional-dependencies"]["course"]
             if pin.startswith("scikit-learn")]  # the grader's side of assignment 4 reads it
    for pin in pins:
        assert f'"{pin}"' in setup, f"setup.sh does not install {pin} as pyproject.toml pins it"
    torch_pin = next(pin for pin in pins if pin.startswith("torch"))
    assert f'"{torch_pin}" --index-url https://download.pytorch.org/whl/cpu' in setup
    assert "bubblewrap" in setup and '"nbformat' in setup and '"nbconvert' in setup


def test_a_new_file_of_the_grader_goes_into_the_zip(course, tmp_path):
    """The zip's grader is found by walking its folders: nothing to list by hand."""
    copy = tmp_path / "course"
    shutil.copytree(course, copy)
    (copy / "autograder" / "sandboxed" / "helper.py").write_text("HELP = 1\n")
    (copy / "convcourse" / "grading" / "more.py").write_text("MORE = 1\n")
    files = bundle_files(copy, ASSIGNMENT)
    assert {"autograder/sandboxed/helper.py", "convcourse/grading/more.py"} <= set(files)
    assert set(files) - {"autograder/sandboxed/helper.py", "convcourse/grading/more.py"} == \
        set(bundle_files(course, ASSIGNMENT))


@pytest.mark.sandbox
@pytest.mark.slow
def test_the_solutions_under_another_name_and_folder_score_full_marks(autograder):
    done, results = run_autograder(autograder, {"work/Conv2d_NumPy (1).ipynb":
                                                SOURCE.read_bytes()})
    assert done.returncode == 0, done.stdout + done.stderr
    check_results(results)
    assert results["score"] == sum(graded_cells().values())
    assert "Graded work/Conv2d_NumPy (1).ipynb as conv2d-numpy.ipynb" in results["output"]
    assert "WITHOUT" not in results["output"]


@pytest.mark.parametrize("assignment", assignments())
def test_the_visible_checks_are_the_cells_as_learners_have_them(assignment):
    """What the grader runs as a cell's visible checks is that cell of the released notebook
    (nbgrader's generate_assignment output, committed), and its hidden checks the rest."""
    for source_path in sorted((SOLUTIONS / assignment).glob("*.ipynb")):
        source = nbformat.read(source_path, as_version=4)
        release = nbformat.read(NOTEBOOKS / assignment / source_path.name, as_version=4)
        released = {nbgrader_meta(c).get("grade_id"): c.source for c in release.cells}
        for cell in grade_cells(source):
            visible, hidden = split_test_cell(cell.source)
            assert visible.rstrip() == released[nbgrader_meta(cell)["grade_id"]].rstrip()
            assert [line.strip() for line in hidden.splitlines() if line.strip()] == \
                hidden_test_lines(cell)


def test_a_cell_whose_hidden_tests_cannot_run_apart_is_one_entry_after_publication():
    looped = ('"""Checks in a loop."""\nfor n in range(3):\n    assert n >= 0\n'
              '    ### BEGIN HIDDEN TESTS\n    assert n < 3\n    ### END HIDDEN TESTS\n')
    assert split_test_cell(looped) is None
    cell = nbformat.v4.new_code_cell(looped, metadata={"nbgrader": {
        "grade": True, "solution": False, "grade_id": "test_loop", "points": 2}})
    notebook = nbformat.v4.new_notebook(cells=[cell])
    entries = gradescope.test_entries(NotebookResult("n", [Result("test_loop", 2.0, 2.0)]),
                           notebook, notebook)
    assert [(e["visibility"], e["max_score"], e["score"]) for e in entries] == \
        [("after_published", 2.0, 2.0)]


def test_the_visible_entry_is_decided_by_the_visible_checks_alone():
    """Three outcomes of a cell with hidden tests, as the grader reports them: its visible
    entry says only what the notebook's own checks said; the hidden checks' message and
    outcome show in the entry with the points, after publication."""
    source = nbformat.read(SOURCE, as_version=4)
    release = nbformat.read(RELEASE, as_version=4)
    cells = list(graded_cells())[:3]
    result = NotebookResult("conv2d-numpy", [
        Result(cells[0], 3.0, 3.0, None, True),
        Result(cells[1], 1.0, 0.0, "HIDDEN-CHECK-SAID-THIS", True),
        Result(cells[2], 2.0, 0.0, "VISIBLE-CHECK-SAID-THIS", False)])
    entries = gradescope.test_entries(result, source, release)
    shown = [e for e in entries if e["visibility"] == "visible"]
    counted = [e for e in entries if e["visibility"] == "after_published"]
    assert [e["status"] for e in shown] == ["passed", "passed", "failed"]
    assert [(e["score"], e["max_score"]) for e in shown] == [(0.0, 0.0)] * 3
    assert "HIDDEN-CHECK-SAID-THIS" not in json.dumps(shown)
    assert shown[2]["output"] == "VISIBLE-CHECK-SAID-THIS"
    assert [(e["status"], e["score"], e["max_score"]) for e in counted] == \
        [("passed", 3.0, 3.0), ("failed", 0.0, 1.0), ("failed", 0.0, 2.0)]
    assert "HIDDEN-CHECK-SAID-THIS" in counted[1]["output"]
    assert "did not run" in counted[2]["output"]


def partly_wrong() -> bytes:
    """conv2d_naive solved; conv2d_numpy with one mistake of the corpus (the odd extra row of
    'same' padding put first), which some cells' visible checks catch and some only their
    hidden checks."""
    notebook = nbformat.read(RELEASE, as_version=4)
    solved = answer_cells(nbformat.read(SOURCE, as_version=4))
    answer_cells(notebook)["conv2d_naive"].source = without_solution_markers(
        solved["conv2d_naive"].source)
    answer_cells(notebook)["conv2d_numpy"].source = mistake_source("same_extra_first")
    return nbformat.writes(notebook).encode()


def make_grade(course: Path, notebook: bytes, scratch: Path) -> dict:
    """make grade's own grading of one learner (autograder.grade.grade_student, what its
    workers run) on a copy of the course, the hidden inputs drawn with the course key that
    the zip carries; its result.json."""
    from autograder import grade
    from autograder.sandbox import Limits

    root = scratch / "make-grade"
    for folder in (f"solutions/{ASSIGNMENT}", f"notebooks/{ASSIGNMENT}"):
        shutil.copytree(course / folder, root / folder)
    learner = root / "autograder" / "submitted" / "partly" / ASSIGNMENT
    learner.mkdir(parents=True)
    (learner / NOTEBOOK).write_bytes(notebook)
    key = course_key((course / "autograder" / "course-secret").read_text().strip().encode())
    with pytest.MonkeyPatch.context() as patch:  # it sets the key in this process's environment
        patch.setenv(COURSE_KEY, "")
        return grade.grade_student(str(root), ASSIGNMENT, "partly", "k", Limits(),
                                   isolated=True, course_key=key)


@pytest.mark.sandbox
@pytest.mark.slow
def test_a_partly_wrong_notebook_sees_its_visible_checks_and_totals_as_make_grade(
        autograder, course, tmp_path):
    notebook = partly_wrong()
    done, results = run_autograder(autograder, {NOTEBOOK: notebook})
    assert done.returncode == 0, done.stdout + done.stderr
    check_results(results)
    graded = make_grade(course, notebook, tmp_path)
    made = {t["grade_id"]: t["score"] for t in graded["notebooks"]["conv2d-numpy"]["tests"]}
    counted = {t["name"].split(":")[0]: t["score"] for t in results["tests"]
               if t["max_score"] > 0}
    assert counted == made and results["score"] == graded["score"] < graded["max_score"]
    shown = {t["name"].split(":")[0]: t for t in results["tests"] if t["max_score"] == 0}
    points = graded_cells()
    outcomes = {"all pass": [g for g in shown if made[g] == points[g]],
                "hidden checks fail": [g for g in shown if shown[g]["status"] == "passed"
                                       and made[g] == 0],
                "visible checks fail": [g for g in shown if shown[g]["status"] == "failed"]}
    assert all(outcomes.values()), outcomes  # each kind is in this notebook
    assert all(shown[g]["visibility"] == "visible" for g in shown)
    said = [shown[g]["output"] for g in outcomes["visible checks fail"]]
    assert any(MISTAKES["same_extra_first"].feedback in text for text in said), said


@pytest.mark.sandbox
@pytest.mark.slow
def test_the_release_scores_zero_and_says_what_is_not_written(autograder):
    done, results = run_autograder(autograder, {NOTEBOOK: RELEASE.read_bytes()})
    assert done.returncode == 0, done.stdout + done.stderr
    check_results(results)
    assert results["score"] == 0
    assert all("not written yet" in t["output"] for t in results["tests"])
    assert f"Graded {NOTEBOOK}: 0 of {sum(graded_cells().values()):g} points." \
        in results["output"]


@pytest.mark.sandbox
def test_an_invalid_notebook_scores_zero_and_says_why(autograder):
    done, results = run_autograder(autograder, {NOTEBOOK: b'{"cells": [oops'})
    assert done.returncode == 0, done.stdout + done.stderr
    check_results(results)
    assert results["score"] == 0
    assert "is not a valid Jupyter notebook" in results["output"]


@pytest.mark.sandbox
def test_a_link_is_not_a_submission(autograder):
    """A learner's link to the solutions inside the autograder is not graded."""
    solutions = autograder / "source" / "solutions" / ASSIGNMENT / NOTEBOOK
    done, results = run_autograder(autograder, {NOTEBOOK: solutions, "notes.txt": b"hello"})
    assert done.returncode == 0, done.stdout + done.stderr
    check_results(results)
    assert results["score"] == 0
    assert "no notebook named conv2d-numpy.ipynb was found" in results["output"]


def test_without_bubblewrap_it_refuses(autograder, no_bwrap):
    done, results = run_autograder(autograder, {NOTEBOOK: SOURCE.read_bytes()}, path=no_bwrap)
    assert done.returncode != 0
    assert results["score"] == 0 and results["tests"] == []
    assert "not graded" in results["output"] and "bubblewrap" in results["output"]


@pytest.mark.slow  # grades, unsandboxed
def test_built_unsafe_it_grades_without_bubblewrap_and_says_so(unsafe_autograder, no_bwrap):
    done, results = run_autograder(unsafe_autograder, {NOTEBOOK: RELEASE.read_bytes()},
                                   path=no_bwrap)
    assert done.returncode == 0, done.stdout + done.stderr
    check_results(results)
    assert results["score"] == 0
    assert all("not written yet" in t["output"] for t in results["tests"])
    assert "Graded WITHOUT the sandbox" in results["output"]


def test_when_the_grader_cannot_start_gradescope_still_gets_a_result(autograder):
    done, results = run_autograder(autograder, {NOTEBOOK: SOURCE.read_bytes()},
                                   python=str(autograder / "no-such-python"))
    assert done.returncode != 0
    assert results["score"] == 0 and results["tests"] == []
    assert "stopped before it could grade" in results["output"]
