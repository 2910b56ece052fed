"""`make bench`, second part: how fast `make grade` grades a class, against plain nbgrader.

One batch of honest submissions of 02-numpy (the released notebook with the instructor's
answers in its answer cells, each learner's copy marked with its id) is graded twice, in
scratch course folders: (a) by ``python -m autograder.grade`` (the sandbox on, its default
workers; the wall time of the whole command) and (b) by plain ``nbgrader autograde``, which
runs one notebook after the other in a Jupyter kernel (the wall time of that command only).
Both must give every learner full marks. Target (design): make grade >= 3x nbgrader.
"""

from __future__ import annotations

import argparse
import csv
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import nbformat
from course import NOTEBOOKS, ROOT, SOLUTIONS, ScratchCourse, answer_cells, without_solution_markers

ASSIGNMENT = "02-numpy"
TARGET = 3.0
def honest_submissions(count: int) -> dict[str, dict[str, nbformat.NotebookNode]]:
    """``count`` learners' notebooks by student id: the release, answered as the instructor
    would, with a comment naming the learner so that no two submissions are the same file."""
    batch = {}
    for number in range(1, count + 1):
        student = f"learner{number:03d}"
        notebooks = {}
        for released in sorted((NOTEBOOKS / ASSIGNMENT).glob("*.ipynb")):
            notebook = nbformat.read(released, as_version=4)
            answers = answer_cells(nbformat.read(SOLUTIONS / ASSIGNMENT / released.name,
                                                 as_version=4))
            for grade_id, cell in answer_cells(notebook).items():
                cell.source = f"# {student}\n" + without_solution_markers(answers[grade_id].source)
            notebooks[released.stem] = notebook
        batch[student] = notebooks
    return batch


def checked(result: subprocess.CompletedProcess, what: str) -> None:
    if result.returncode != 0:
        sys.exit(f"bench_grading: {what} failed (exit {result.returncode}):\n"
                 f"{result.stdout[-3000:]}{result.stderr[-3000:]}")


def time_make_grade(batch: dict, scratch: Path) -> tuple[float, dict[str, tuple[float, float]]]:
    """Seconds for the whole ``python -m autograder.grade`` command; scores from grades.csv."""
    root, submissions = scratch / "course", scratch / "submissions"
    for folder in ("solutions", "notebooks"):
        shutil.copytree(ROOT / folder / ASSIGNMENT, root / folder / ASSIGNMENT)
    for student, notebooks in batch.items():
        (submissions / student).mkdir(parents=True)
        for name, notebook in notebooks.items():
            nbformat.write(notebook, submissions / student / f"{name}.ipynb")
    started = time.perf_counter()
    result = subprocess.run([sys.executable, "-m", "autograder.grade", ASSIGNMENT,
                             str(submissions), "--root", str(root)],
                            cwd=ROOT, capture_output=True, text=True, check=False)
    seconds = time.perf_counter() - started
    checked(result, "python -m autograder.grade")
    with (root / "autograder" / "grades.csv").open(newline="") as file:
        scores = {row["student_id"]: (float(row["score"]), float(row["max_score"]))
                  for row in csv.DictReader(file)}
    return seconds, scores


def time_nbgrader(batch: dict, scratch: Path) -> tuple[float, dict[str, tuple[float, float]]]:
    """Seconds for ``nbgrader autograde`` alone; scores from its gradebook."""
    course = ScratchCourse(scratch / "nbgrader-course", ASSIGNMENT)
    for student, notebooks in batch.items():
        course.submit(student, notebooks)
    started = time.perf_counter()
    result = course.autograde()
    seconds = time.perf_counter() - started
    checked(result, "nbgrader autograde")
    return seconds, {student: course.score(student) for student in batch}


def short_of_full_marks(batch: dict, scores: dict[str, tuple[float, float]]) -> list[str]:
    missing = [f"{student} (not graded)" for student in batch if student not in scores]
    return missing + [f"{student} ({score:g}/{most:g})" for student, (score, most)
                      in sorted(scores.items()) if most <= 0 or score != most]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--submissions", type=int, default=20, help="learners in the batch")
    parser.add_argument("--quick", action="store_true",
                        help="3 submissions: a smoke test, not a measurement")
    options = parser.parse_args()
    count = 3 if options.quick else options.submissions
    workers = os.cpu_count() or 1  # make grade's default
    batch = honest_submissions(count)
    print(f"\nGrading {count} honest submissions of {ASSIGNMENT} on {os.cpu_count()} CPUs"
          + (" (--quick: a smoke test, not a measurement)" if options.quick else ""))
    with tempfile.TemporaryDirectory(prefix="bench-grading-") as scratch:
        grade_seconds, grade_scores = time_make_grade(batch, Path(scratch))
        plain_seconds, plain_scores = time_nbgrader(batch, Path(scratch))
    timings = {f"make grade (sandbox, {workers} workers)": grade_seconds,
               "nbgrader autograde (sequential)": plain_seconds}
    for label, seconds in timings.items():
        print(f"{label:36} {seconds:7.1f} s {60 * count / seconds:7.1f} submissions/min")
    print(f"make grade / nbgrader autograde: {plain_seconds / grade_seconds:.2f}x "
          f"(target >= {TARGET:g}x)")
    failures = {grader: short_of_full_marks(batch, scores) for grader, scores
                in (("make grade", grade_scores), ("nbgrader autograde", plain_scores))}
    for grader, short in failures.items():
        if short:
            print(f"!!! {grader} did NOT give full marks to: {', '.join(short)}")
    if any(failures.values()):
        sys.exit(1)
    print(f"Both graders gave all {count} learners full marks.")


if __name__ == "__main__":
    main()
