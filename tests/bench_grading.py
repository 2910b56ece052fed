"""`make bench`, second part: how fast `make grade` grades a class, against plain nbgrader.

One batch of honest submissions of 02-numpy (the released notebook with the instructor's
answers in its answer cells, each learner's copy marked with its id) is graded twice, in
scratch course folders: (a) by ``python -m autograder.grade`` (the sandbox on, its default
workers; the wall time of the whole command) and (b) by plain ``nbgrader autograde``, which
runs one notebook after the other in a Jupyter kernel (the wall time of that command only).
Both must give every learner full marks. The two are timed in rounds, each round grading the
whole batch with both, in an order that alternates from round to round, each time in fresh
folders (make grade would otherwise reuse its saved grades); the ratio is the median of the
rounds' ratios. Target (design): make grade >= 3x nbgrader. When it is missed, one more
make grade run with a single worker splits the ratio into its two measured factors: the
parallel speed-up of the workers, and how much faster one sandboxed grading is than nbgrader's.
"""

from __future__ import annotations

import argparse
import csv
import os
import shutil
import statistics
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


def time_make_grade(batch: dict, scratch: Path, workers: int | None = None
                    ) -> tuple[float, dict[str, tuple[float, float]]]:
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
                             str(submissions), "--root", str(root)]
                            + ([] if workers is None else ["--workers", str(workers)]),
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
    parser.add_argument("--rounds", type=int, default=3, help="times each grader grades it")
    parser.add_argument("--quick", action="store_true",
                        help="3 submissions, 1 round: a smoke test, not a measurement")
    parser.add_argument("--repeats", type=int, help=argparse.SUPPRESS)  # bench.py's, ignored
    parser.add_argument("--tiny", action="store_true", help=argparse.SUPPRESS)  # bench.py's
    parser.add_argument("--threads", type=int, help=argparse.SUPPRESS)  # bench.py's
    options = parser.parse_args()
    count = 3 if options.quick else options.submissions
    rounds = 1 if options.quick else options.rounds
    workers = os.cpu_count() or 1  # make grade's default
    batch = honest_submissions(count)
    print(f"\nGrading {count} honest submissions of {ASSIGNMENT} on {os.cpu_count()} CPUs, "
          f"{rounds} round(s), load {os.getloadavg()[0]:.1f}"
          + (" (--quick: a smoke test, not a measurement)" if options.quick else ""))
    graders = {f"make grade (sandbox, {workers} workers)": time_make_grade,
               "nbgrader autograde (sequential)": time_nbgrader}
    seconds = {label: [] for label in graders}
    scores = {}
    with tempfile.TemporaryDirectory(prefix="bench-grading-") as scratch:
        for number in range(rounds):
            order = list(graders) if number % 2 == 0 else list(graders)[::-1]
            for label in order:
                folder = Path(scratch) / f"round{number}-{label.split()[0]}"
                took, scores[label] = graders[label](batch, folder)
                seconds[label].append(took)
        ours, plain = (seconds[label] for label in graders)
        ratios = [p / o for p, o in zip(plain, ours, strict=True)]
        ratio = statistics.median(ratios)
        for label, times in seconds.items():
            median = statistics.median(times)
            print(f"{label:36} {median:7.1f} s {60 * count / median:7.1f} submissions/min "
                  f"(median of {', '.join(f'{t:.1f}' for t in times)} s)")
        print(f"make grade / nbgrader autograde: {ratio:.2f}x, rounds "
              f"{min(ratios):.2f}-{max(ratios):.2f}x (target >= {TARGET:g}x) "
              f"{'PASS' if ratio >= TARGET else 'MISS'}")
        if ratio < TARGET and not options.quick:
            one, _ = time_make_grade(batch, Path(scratch) / "one-worker", workers=1)
            print(f"  what limits it: with 1 worker make grade takes {one:.1f} s, so one "
                  f"sandboxed grading is {statistics.median(plain) / one:.2f}x nbgrader's, and "
                  f"{workers} workers on {os.cpu_count()} CPUs speed that up "
                  f"{one / statistics.median(ours):.2f}x (at most {os.cpu_count()}x)")
    failures = {grader: short_of_full_marks(batch, got) for grader, got
                in zip(("make grade", "nbgrader autograde"), scores.values(), strict=True)}
    for grader, short in failures.items():
        if short:
            print(f"!!! {grader} did NOT give full marks to: {', '.join(short)}")
    if any(failures.values()):
        sys.exit(1)
    print(f"Both graders gave all {count} learners full marks.")


if __name__ == "__main__":
    main()
