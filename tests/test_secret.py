"""The course secret: hidden grids drawn from it differ from the published ones, the same secret
gives the same grades and a new one grades again, learner code never sees the key, and a table
of answers precomputed from the published seeds passes without a secret and fails with one."""

from __future__ import annotations

import io
import json
import os
import shutil
import stat
import subprocess
import sys
import zipfile
from pathlib import Path

import nbformat
import pytest
import torch
from course import NOTEBOOKS, ROOT, SOLUTIONS
from hostile.corpus import (
    ASSIGNMENT,
    ENTRIES,
    FILE,
    NOTEBOOK,
    Kit,
    Targets,
    drawn_cells,
    notebook,
)

from autograder import gradescope, secret
from autograder.grade import Course
from convcourse.grading import module_checks
from convcourse.grading.cases import COURSE_KEY, conv2d_cases, course_seed

KEY = secret.course_key(b"0123456789abcdef" * 4)


@pytest.fixture
def keyed(monkeypatch):
    """This process draws its hidden grids with KEY (as a grading worker does)."""
    monkeypatch.setenv(COURSE_KEY, KEY)


@pytest.fixture
def public(monkeypatch):
    monkeypatch.delenv(COURSE_KEY, raising=False)


def test_without_a_key_the_published_seeds_are_used(public):
    assert [course_seed(s) for s in (0, 109, 210)] == [0, 109, 210]


def test_with_a_key_each_published_seed_becomes_another_fixed_one(keyed, monkeypatch):
    seeds = [course_seed(s) for s in (0, 109, 210)]
    assert seeds == [course_seed(s) for s in (0, 109, 210)]  # the same key, the same seeds
    assert len(set(seeds)) == 3 and all(0 <= s < 2 ** 63 and s not in (0, 109, 210)
                                        for s in seeds)
    monkeypatch.setenv(COURSE_KEY, secret.course_key(b"another secret, as long as needed"))
    assert [course_seed(s) for s in (0, 109, 210)] != seeds


def first_inputs(seed: int) -> torch.Tensor:
    return conv2d_cases(seed, devices=["cpu"], dtypes=(torch.float64,))[0].x


def test_the_hidden_grid_and_the_module_checks_draw_through_the_key(public, monkeypatch):
    grid, grad_output = first_inputs(210), module_checks._grad_output((2, 3), torch.ones(1))
    monkeypatch.setenv(COURSE_KEY, KEY)
    assert not torch.equal(first_inputs(210), grid)
    assert torch.equal(first_inputs(210), first_inputs(210))
    assert not torch.equal(module_checks._grad_output((2, 3), torch.ones(1)), grad_output)


def test_the_secret_is_made_once_kept_private_and_announced_once(tmp_path):
    said = io.StringIO()
    made = secret.load_or_create(tmp_path, announce=said)
    path = secret.secret_path(tmp_path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert made.decode() in said.getvalue() and str(path) in said.getvalue()
    again = io.StringIO()
    assert secret.load_or_create(tmp_path, announce=again) == made and again.getvalue() == ""
    key = secret.course_key(made)
    assert made.decode() not in key and len(key) == 64


def test_a_short_secret_is_refused_with_what_to_do(tmp_path):
    secret.secret_path(tmp_path).write_text("1234\n")
    with pytest.raises(SystemExit, match="delete the file"):
        secret.load_or_create(tmp_path)


def test_the_secret_is_ignored_by_git():
    checked = subprocess.run(["git", "check-ignore", "-q", "autograder/course-secret"], cwd=ROOT,
                             check=False)
    assert checked.returncode == 0


def test_the_fingerprint_follows_the_key_and_is_unchanged_without_one():
    plain = Course(ROOT, ASSIGNMENT).fingerprint()
    assert Course(ROOT, ASSIGNMENT, key=None).fingerprint() == plain
    keyed_print = Course(ROOT, ASSIGNMENT, key=KEY).fingerprint()
    assert keyed_print != plain
    assert Course(ROOT, ASSIGNMENT, key=KEY).fingerprint() == keyed_print
    assert Course(ROOT, ASSIGNMENT, key=KEY[::-1]).fingerprint() != keyed_print


def test_learner_code_is_started_without_the_key(keyed):
    assert COURSE_KEY not in secret.without_key(dict(os.environ))


def test_the_gradescope_zip_carries_the_key_never_the_secret(tmp_path):
    root = tmp_path / "course"
    for part in ("autograder", "convcourse"):
        shutil.copytree(ROOT / part, root / part,
                        ignore=shutil.ignore_patterns("__pycache__", "dist", "course-secret"))
    for kind, folder in (("solutions", SOLUTIONS), ("notebooks", NOTEBOOKS)):
        shutil.copytree(folder / ASSIGNMENT, root / kind / ASSIGNMENT)
    made = secret.load_or_create(root / "autograder", announce=io.StringIO())
    key = secret.course_key(made)
    with zipfile.ZipFile(gradescope.build(ASSIGNMENT, root, key=key)) as archive:
        assert archive.read("autograder/course-key").decode().strip() == key
        assert not any(made in archive.read(name) for name in archive.namelist())
    with zipfile.ZipFile(gradescope.build(ASSIGNMENT, root)) as archive:
        assert "autograder/course-key" not in archive.namelist()


# --- graded for real: make grade's CLI, in the sandbox ------------------------------------------

#: A correct notebook whose scratch cell reports what the learner's process can see of the key.
KEY_READER = ('import os\nraise RuntimeError("the course key seen: " + '
              f'repr(os.environ.get("{COURSE_KEY}")))')


def grade(root: Path, submissions: Path, *extra: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "autograder.grade", ASSIGNMENT, str(submissions), "--root",
         str(root), "--workers", "2", *extra],
        cwd=ROOT, capture_output=True, text=True, check=False, timeout=900,
        env={key: value for key, value in os.environ.items() if key != COURSE_KEY})


def result(root: Path, student: str) -> dict:
    return json.loads((root / "autograder" / "autograded" / student / ASSIGNMENT /
                       "result.json").read_text())


def passed(graded: dict) -> dict[str, bool]:
    return {t["grade_id"]: t["score"] == t["points"]
            for t in graded["notebooks"][NOTEBOOK]["tests"]}


@pytest.mark.sandbox
@pytest.mark.slow
def test_a_pasted_table_passes_the_published_seeds_and_fails_under_the_secret(tmp_path):
    root, submissions = tmp_path / "course", tmp_path / "submissions"
    for kind, folder in (("solutions", SOLUTIONS), ("notebooks", NOTEBOOKS)):
        shutil.copytree(folder / ASSIGNMENT, root / kind / ASSIGNMENT)
    kit = Kit.for_course(root, Targets(root, submissions, "nobody", 0, "none", "0", tmp_path))
    table = next(entry for entry in ENTRIES if entry.name == "pasted-table")
    for name, build in (("pasted-table", table.build),
                        ("key-reader", notebook(scratch=[KEY_READER]))):
        (submissions / name).mkdir(parents=True)
        build(kit, submissions / name)
    drawn = set(drawn_cells())
    # The vectorised cell times calls from outside the sandbox, calls the table never saw
    # (and refuses): that cell fails with or without a secret.
    timed = {"test_numpy_vectorised"}

    # Without a secret (what a learner's own notebook runs): the threat is real.
    run = grade(root, submissions, "--no-secret")
    assert run.returncode == 0, run.stdout + run.stderr[-3000:]
    assert {g for g, ok in passed(result(root, "pasted-table")).items() if not ok} == timed
    assert not secret.secret_path(root / "autograder").exists()

    # make grade as instructors run it: a secret is made and announced, everything regraded.
    run = grade(root, submissions)
    assert run.returncode == 0, run.stdout + run.stderr[-3000:]
    path = secret.secret_path(root / "autograder")
    assert f"created the course secret {path.read_text().strip()}" in run.stderr
    assert str(path) in run.stderr
    cells = passed(result(root, "pasted-table"))
    assert {g for g, ok in cells.items() if not ok} == drawn | timed and drawn
    reader = result(root, "key-reader")
    assert all(passed(reader).values())
    assert "the course key seen: None" in " ".join(reader["notebooks"][NOTEBOOK]["notes"])
    key = secret.course_key(path.read_text().strip().encode())
    autograded = root / "autograder" / "autograded"
    assert not any(key in p.read_text(errors="replace") for p in autograded.rglob("*")
                   if p.is_file())

    # The same secret again: the grades are reused, and graded afresh they are the same.
    kept = {name: result(root, name) for name in ("pasted-table", "key-reader")}
    run = grade(root, submissions)
    assert run.returncode == 0 and "created the course secret" not in run.stderr
    assert {name: result(root, name) for name in kept} == kept
    run = grade(root, submissions, "--force")
    assert run.returncode == 0, run.stderr[-3000:]
    assert {name: passed(result(root, name)) for name in kept} == {
        name: passed(graded) for name, graded in kept.items()}
    assert nbformat.read(submissions / "pasted-table" / FILE, as_version=4)  # untouched
