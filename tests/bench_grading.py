"""`make bench`, second part: what `make grade` costs per submission, against plain nbgrader.

For each assignment timed here (02-numpy and 04-gradients), one batch of honest submissions
(the released notebook with the instructor's answers in its answer cells, each learner's copy
marked with its id) is graded twice, in scratch course folders: (a) by ``python -m
autograder.grade`` (the sandbox on, its default workers; the whole command) and (b) by plain
``nbgrader autograde``, which runs one notebook after the other in a Jupyter kernel (that
command only). Both must give every learner full marks. The two are timed in rounds, each
round grading the whole batch with both, in an order that alternates from round to round,
each time in fresh folders (make grade would otherwise reuse its saved grades).

Two costs are reported per grader, medians of the rounds: the wall-clock time of the batch,
and the CPU time (user + system) of the command's whole process tree divided by the number of
submissions: every process it started, sandboxes, kernels and worker pools included
(:class:`TreeCpu` says how it is counted). CPU seconds hardly depend on how many cores are
free, which wall-clock ratios on a shared machine do. Target (design): at most 1.5 CPU-s per
honest 02-numpy submission, sandbox on. ``--workers 1 2 3`` runs make grade once more with
each count and says which was fastest on this machine.
"""

from __future__ import annotations

import argparse
import csv
import ctypes
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import nbformat
from course import NOTEBOOKS, ROOT, SOLUTIONS, ScratchCourse, answer_cells, without_solution_markers

#: What a full run grades: submissions in the batch and rounds, per assignment. Grading one
#: 04-gradients notebook trains a small network, which plain nbgrader takes some 40 s for.
SIZES = {"02-numpy": (10, 3), "04-gradients": (3, 1)}
#: The design's grading cost: CPU seconds per honest submission, sandbox on.
CPU_TARGETS = {"02-numpy": 1.5}


def honest_submissions(assignment: str, count: int) -> dict[str, dict[str, nbformat.NotebookNode]]:
    """``count`` learners' notebooks by student id: the release, answered as the instructor
    would, with a comment naming the learner so that no two submissions are the same file."""
    batch = {}
    for number in range(1, count + 1):
        student = f"learner{number:03d}"
        notebooks = {}
        for released in sorted((NOTEBOOKS / assignment).glob("*.ipynb")):
            notebook = nbformat.read(released, as_version=4)
            answers = answer_cells(nbformat.read(SOLUTIONS / assignment / released.name,
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


# ---- CPU time of a process tree ------------------------------------------------------------

def become_subreaper() -> bool:
    """Make this process the one that inherits its descendants' orphans (Linux's
    PR_SET_CHILD_SUBREAPER), so that it can wait for them and their CPU time is counted."""
    try:
        return ctypes.CDLL(None, use_errno=True).prctl(36, 1, 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


def reap_orphans(deadline_s: float = 30.0) -> bool:
    """Wait for every child this process still has (orphans it inherited); False if some
    were still running after ``deadline_s``."""
    end = time.monotonic() + deadline_s
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return True  # none left
        if pid == 0:
            if time.monotonic() > end:
                return False
            time.sleep(0.05)


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


class TreeCpu:
    """The CPU time (user + system) of every process started inside ``with TreeCpu() as
    tree:``, their descendants included: ``tree.seconds`` after the block, and ``tree.exact``,
    whether nothing can have escaped the count.

    Where the grader's sandboxes get cgroup v1 groups (root on such a machine), the bench
    joins a cgroup of its own for the block: the processes started in it stay in it, the
    sandboxes' groups nest inside it, and its cpuacct counter holds them all. Elsewhere it is
    getrusage(RUSAGE_CHILDREN), with this process the child subreaper: exact for every process
    that is waited for, but the kernel counts nothing for the processes of a pid namespace
    ended by force (a sandbox killed when its notebook is done, as make grade's are), so
    there the figure is a lower bound."""

    def __enter__(self) -> TreeCpu:
        reap_orphans(0)
        self.group, self.home = self._own_cgroup()
        self.exact = self.group is not None
        if self.group is not None:
            for path in self.group.paths:
                (path / "cgroup.procs").write_text(str(os.getpid()))
        self.started = children_cpu()
        return self

    def __exit__(self, *exc) -> None:
        self.exact &= reap_orphans()
        self.seconds = children_cpu() - self.started
        if self.group is not None:
            self.seconds = self.group.cpu_seconds()
            for path in self.home:
                (path / "cgroup.procs").write_text(str(os.getpid()))
            self.group.remove()

    @staticmethod
    def _own_cgroup():
        """A fresh cgroup v1 beside this process's own (and those directories), or (None,
        []) where the sandboxes' cgroups would not nest in it."""
        from autograder import cgroup
        try:
            kind, parents = cgroup.layout()
            if kind is not cgroup.CgroupV1 or "cpuacct" not in parents \
                    or cgroup.cgroup_problem() is not None:
                return None, []
            return cgroup.create_cgroup(cgroup.new_name("bench"), 1 << 45, 1 << 16), \
                list(parents.values())
        except (cgroup.CgroupUnavailable, OSError):
            return None, []


@dataclass
class Cost:
    """One grading of a batch: wall-clock seconds, and CPU seconds of its process tree."""

    wall: float
    cpu: float
    exact: bool = True  # False: a lower bound (see TreeCpu)


def measured(command: Callable[[], subprocess.CompletedProcess], what: str) -> Cost:
    """Run ``command`` (it starts a process and waits for it) and measure what it cost."""
    with TreeCpu() as tree:
        started = time.perf_counter()
        result = command()
        wall = time.perf_counter() - started
    checked(result, what)
    return Cost(wall, tree.seconds, tree.exact)


# ---- The two graders -----------------------------------------------------------------------

def make_grade(assignment: str, batch: dict, scratch: Path, workers: int | None = None
               ) -> tuple[Cost, dict[str, tuple[float, float]]]:
    """The whole ``python -m autograder.grade`` command; scores from grades.csv."""
    root, submissions = scratch / "course", scratch / "submissions"
    for folder in ("solutions", "notebooks"):
        shutil.copytree(ROOT / folder / assignment, root / folder / assignment)
    for student, notebooks in batch.items():
        (submissions / student).mkdir(parents=True)
        for name, notebook in notebooks.items():
            nbformat.write(notebook, submissions / student / f"{name}.ipynb")
    command = [sys.executable, "-m", "autograder.grade", assignment, str(submissions),
               "--root", str(root)] + ([] if workers is None else ["--workers", str(workers)])
    cost = measured(lambda: subprocess.run(command, cwd=ROOT, capture_output=True, text=True,
                                           check=False), "python -m autograder.grade")
    with (root / "autograder" / "grades.csv").open(newline="") as file:
        scores = {row["student_id"]: (float(row["score"]), float(row["max_score"]))
                  for row in csv.DictReader(file)}
    return cost, scores


def plain_nbgrader(assignment: str, batch: dict, scratch: Path
                   ) -> tuple[Cost, dict[str, tuple[float, float]]]:
    """``nbgrader autograde`` alone; scores from its gradebook."""
    course = ScratchCourse(scratch / "nbgrader-course", assignment)
    for student, notebooks in batch.items():
        course.submit(student, notebooks)
    cost = measured(course.autograde, "nbgrader autograde")
    return cost, {student: course.score(student) for student in batch}


def short_of_full_marks(batch: dict, scores: dict[str, tuple[float, float]]) -> list[str]:
    missing = [f"{student} (not graded)" for student in batch if student not in scores]
    return missing + [f"{student} ({score:g}/{most:g})" for student, (score, most)
                      in sorted(scores.items()) if most <= 0 or score != most]


def cost_line(label: str, costs: list[Cost], count: int) -> str:
    wall = statistics.median(c.wall for c in costs)
    cpu = statistics.median(c.cpu for c in costs) / count
    missing = "" if all(c.exact for c in costs) else " (a lower bound: see TreeCpu)"
    return (f"{label:36} {wall:7.1f} s {60 * count / wall:7.1f} submissions/min "
            f"{cpu:6.2f} CPU-s/submission (wall {', '.join(f'{c.wall:.1f}' for c in costs)} s)"
            f"{missing}")


def bench_assignment(assignment: str, count: int, rounds: int, workers: list[int],
                     scratch: Path, quick: bool) -> list[str]:
    """Grade one assignment's batch with both graders; print the costs; return what fell
    short of full marks."""
    batch = honest_submissions(assignment, count)
    default = os.cpu_count() or 1  # make grade's default
    print(f"\nGrading {count} honest submissions of {assignment} on {os.cpu_count()} CPUs, "
          f"{rounds} round(s), load {os.getloadavg()[0]:.1f}"
          + (" (--quick: a smoke test, not a measurement)" if quick else ""))
    graders = {f"make grade (sandbox, {default} workers)": partial(make_grade, assignment),
               "nbgrader autograde (sequential)": partial(plain_nbgrader, assignment)}
    costs = {label: [] for label in graders}
    scores = {}
    for number in range(rounds):
        order = list(graders) if number % 2 == 0 else list(graders)[::-1]
        for label in order:
            folder = scratch / f"{assignment}-round{number}-{label.split()[0]}"
            cost, scores[label] = graders[label](batch, folder)
            costs[label].append(cost)
    for label, measured_costs in costs.items():
        print(cost_line(label, measured_costs, count))
    ours, plain = costs.values()
    walls = [p.wall / o.wall for p, o in zip(plain, ours, strict=True)]
    cpus = [p.cpu / o.cpu for p, o in zip(plain, ours, strict=True)]
    print(f"make grade / nbgrader autograde: {statistics.median(walls):.2f}x faster by the "
          f"wall clock (rounds {min(walls):.2f}-{max(walls):.2f}x), "
          f"{statistics.median(cpus):.2f}x less CPU (rounds {min(cpus):.2f}-{max(cpus):.2f}x)")
    cpu = statistics.median(c.cpu for c in ours) / count
    if assignment in CPU_TARGETS:
        target = CPU_TARGETS[assignment]
        print(f"make grade costs {cpu:.2f} CPU-s per honest {assignment} submission, sandbox "
              f"on (target <= {target:g}) {'PASS' if cpu <= target else 'MISS'}")
    if workers:
        by_count = {w: make_grade(assignment, batch, scratch / f"{assignment}-{w}-workers",
                                  workers=w)[0] for w in workers}
        fastest = min(by_count, key=lambda w: by_count[w].wall)
        print("make grade by workers: " + ", ".join(
            f"{w}: {c.wall:.1f} s, {c.cpu / count:.2f} CPU-s/submission"
            for w, c in by_count.items()) + f"; fastest here: {fastest} workers (load "
            f"{os.getloadavg()[0]:.1f})")
    return [f"{grader} on {assignment}: {', '.join(short)}" for grader, short in
            zip(("make grade", "nbgrader autograde"),
                (short_of_full_marks(batch, got) for got in scores.values()), strict=True)
            if short]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--submissions", type=int,
                        help="learners in each batch (default: 10 for 02-numpy, 3 for 04)")
    parser.add_argument("--rounds", type=int,
                        help="times each grader grades it (default: 3 for 02-numpy, 1 for 04)")
    parser.add_argument("--assignments", nargs="+", choices=list(SIZES),
                        help="which assignments to grade (default: both; 02-numpy for --quick)")
    parser.add_argument("--workers", type=int, nargs="+", default=[],
                        help="also time make grade once with each of these worker counts")
    parser.add_argument("--quick", action="store_true",
                        help="3 submissions of 02-numpy, 1 round: a smoke test, not a "
                             "measurement")
    parser.add_argument("--repeats", type=int, help=argparse.SUPPRESS)  # bench.py's, ignored
    parser.add_argument("--tiny", action="store_true", help=argparse.SUPPRESS)  # bench.py's
    parser.add_argument("--threads", type=int, help=argparse.SUPPRESS)  # bench.py's
    options = parser.parse_args()
    assignments = options.assignments or (["02-numpy"] if options.quick else list(SIZES))
    if not become_subreaper():
        print("note: this system cannot make the bench a child subreaper: the CPU time of a "
              "process whose parent exits before it is not counted")
    short = []
    with tempfile.TemporaryDirectory(prefix="bench-grading-") as scratch:
        for assignment in assignments:
            count, rounds = (3, 1) if options.quick else SIZES[assignment]
            short += bench_assignment(assignment, options.submissions or count,
                                      options.rounds or rounds, options.workers, Path(scratch),
                                      options.quick)
    for line in short:
        print(f"!!! did NOT give full marks: {line}")
    if short:
        sys.exit(1)
    print(f"Both graders gave every learner of {' and '.join(assignments)} full marks.")


if __name__ == "__main__":
    main()
