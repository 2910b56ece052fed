"""``make grade``: grade a whole class in parallel, safely, and resumably.

    python -m autograder.grade ASSIGNMENT SUBMISSIONS [--workers N] [--unsafe] [--force]

SUBMISSIONS is a folder with one sub-folder per learner (``<student_id>/<notebook>.ipynb``)
or an LMS zip, read by autograder/collect.py: learners are named by the zip's top-level names
only (``<student_id>/...`` or ``<student_id>_..._<notebook>.ipynb``), and whatever cannot be
collected is listed with its reason. Every submission is copied to autograder/submitted/,
graded in the sandbox (autograder/score.py), recorded in the nbgrader gradebook, and handed
back as feedback HTML in autograder/feedback/; all scores
go to autograder/grades.csv. A learner's grade is written the moment it is ready, with a
fingerprint of the submission and the tests: a run that was interrupted, or the same batch
graded again, reuses it (``--force`` grades everything again).

The hidden tests' inputs are drawn with the course secret (autograder/secret.py), made on first
use in autograder/course-secret; ``--no-secret`` draws them from the published seeds instead,
as a learner's own notebook does.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import csv
import hashlib
import json
import multiprocessing
import os
import shutil
import subprocess
import sys
import tempfile
import time
import warnings
from dataclasses import asdict
from pathlib import Path

import nbformat

from autograder import grader_files, plain, secret
from autograder.cgroup import cgroup_note, cgroup_problem
from autograder.collect import collect
from autograder.sandbox import Limits, bwrap_problem

REPOSITORY = Path(__file__).resolve().parents[1]


def gradebook_url(root: Path) -> str:
    return f"sqlite:///{root / 'autograder' / 'gradebook.db'}"


class Course:
    """Where things are, for the repository or a scratch copy of it (``--root``)."""

    def __init__(self, root: Path, assignment: str, *, grader: Path = REPOSITORY,
                 key: str | None = None):
        self.root, self.assignment = root, assignment
        self.grader = grader  # the folder holding the grader's code (autograder/, convcourse/)
        self.key = key  # the course key the hidden inputs are drawn with (None: published seeds)
        self.source = root / "solutions" / assignment
        self.release = root / "notebooks" / assignment
        self.work = root / "autograder"
        self.db_url = gradebook_url(root)

    def notebooks(self) -> list[str]:
        return sorted(p.stem for p in self.source.glob("*.ipynb"))

    def folder(self, kind: str, student: str) -> Path:
        return self.work / kind / student / self.assignment

    def fingerprint(self) -> str:
        """What a grade depends on besides the submission: the tests, the grader (every
        file of :func:`autograder.grader_files`; not the book's figures) and the course key
        (a digest of it), which decides the hidden inputs."""
        digest = hashlib.sha256()
        if self.key:
            digest.update(b"course key\0" + secret.key_digest(self.key).encode() + b"\0")
        files = {f"{kind}/{path.name}": path for kind, folder in (("source", self.source),
                                                                  ("release", self.release))
                 for path in sorted(folder.glob("*.ipynb"))}
        files |= grader_files(self.grader)
        for name, path in files.items():
            digest.update(name.encode() + b"\0" + path.read_bytes() + b"\0")
        return digest.hexdigest()


# --- nbgrader ----------------------------------------------------------------------------------

def nbgrader(root: Path, *args: str) -> subprocess.CompletedProcess:
    """Run an nbgrader command on the course in ``root`` with this course's configuration."""
    (root / "autograder").mkdir(parents=True, exist_ok=True)  # where its gradebook lives
    tool = Path(sys.executable).parent / "nbgrader"
    env = {**os.environ, "JUPYTER_CONFIG_PATH": str(REPOSITORY / "autograder"),
           "PATH": f"{tool.parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    return subprocess.run([str(tool), *args, f"--CourseDirectory.root={root}",
                           f"--CourseDirectory.db_url={gradebook_url(root)}"],
                          cwd=root, env=env, capture_output=True, text=True, check=False)


# --- the gradebook ------------------------------------------------------------------------------

def ensure_gradebook(course: Course) -> None:
    """The gradebook knows the assignment's cells as the source has them (else nbgrader's
    generate_assignment records them, releasing into a scratch folder, not notebooks/)."""
    from nbgrader.api import Gradebook

    from autograder.notebook import grade_cells, nbgrader_meta

    wanted = {(path.stem, nbgrader_meta(c)["grade_id"], float(nbgrader_meta(c)["points"]))
              for path in course.source.glob("*.ipynb")
              for c in grade_cells(nbformat.read(path, as_version=4))}
    course.work.mkdir(parents=True, exist_ok=True)
    try:
        with Gradebook(course.db_url) as gradebook:
            assignment = gradebook.find_assignment(course.assignment)
            known = {(nb.name, cell.name, float(cell.max_score))
                     for nb in assignment.notebooks for cell in nb.grade_cells}
        if known == wanted:
            return
    except Exception:  # noqa: BLE001, S110  (no gradebook yet, or the assignment is not in it)
        pass
    with tempfile.TemporaryDirectory() as scratch:
        result = nbgrader(course.root, "generate_assignment", course.assignment, "--force",
                          f"--CourseDirectory.release_directory={scratch}")
    if result.returncode != 0:
        raise SystemExit(f"grade: nbgrader generate_assignment failed:\n{result.stderr[-3000:]}")


def record(gradebook, assignment: str, graded: dict) -> None:
    """Write one learner's scores into the (open) nbgrader gradebook."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # SQLAlchemy's notes on nbgrader's own session use
        gradebook.update_or_create_student(graded["student_id"])
        submission = gradebook.update_or_create_submission(assignment, graded["student_id"])
        for notebook in submission.notebooks:
            tests = {t["grade_id"]: t for t in
                     graded["notebooks"].get(notebook.name, {}).get("tests", [])}
            for grade in notebook.grades:
                grade.auto_score = tests.get(grade.name, {}).get("score", 0.0)
                grade.needs_manual_grade = False
        gradebook.db.commit()


def write_csv(course: Course, results: list[dict]) -> Path:
    """autograder/grades.csv: this assignment's rows replaced, other assignments' kept."""
    path = course.work / "grades.csv"
    rows = []
    if path.exists():
        with path.open(newline="") as file:
            rows = [row for row in csv.DictReader(file) if row["assignment"] != course.assignment]
    for graded in results:  # learner text (ids, problems naming their files) as plain text
        rows.append({"student_id": plain.csv_field(graded["student_id"]),
                     "assignment": course.assignment, "score": f"{graded['score']:g}",
                     "max_score": f"{graded['max_score']:g}",
                     "problem": plain.csv_field(graded.get("problem") or "")})
    rows.sort(key=lambda row: (row["assignment"], row["student_id"]))
    scratch = path.with_suffix(".csv.part")
    with scratch.open("w", newline="") as file:
        writer = csv.DictWriter(file, ["student_id", "assignment", "score", "max_score",
                                       "problem"])
        writer.writeheader()
        writer.writerows(rows)
    scratch.replace(path)
    return path


# --- grading one learner (in a worker process) ---------------------------------------------------

_SLOT = 0


def _start_worker(slots, threads: int) -> None:
    global _SLOT
    _SLOT = slots.get()
    import torch

    torch.set_num_threads(threads)


def submission_key(course: Course, student: str, fingerprint: str) -> str:
    digest = hashlib.sha256(fingerprint.encode())
    folder = course.folder("submitted", student)
    for path in sorted(folder.rglob("*")):
        if path.is_file() and not path.is_symlink():  # a link is never followed (THREATS.md)
            digest.update(str(path.relative_to(folder)).encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


def grade_student(root: str, assignment: str, student: str, key: str, limits: Limits,
                  isolated: bool, course_key: str | None = None) -> dict:
    """Grade every notebook of one learner, the hidden inputs drawn with ``course_key``; write
    the autograded notebooks, the feedback HTML and, last, result.json (its presence means:
    graded)."""
    import torch

    from autograder.feedback import feedback_html
    from autograder.score import grade_submission

    secret.use_key(course_key)  # in this trusted worker only; the sandbox never has it
    torch.manual_seed(0)  # each learner from the same random state, whoever was graded before
    course = Course(Path(root), assignment, key=course_key)
    autograded, feedback = course.folder("autograded", student), course.folder("feedback",
                                                                               student)
    for folder in (autograded, feedback):
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
    started = time.monotonic()
    graded = {"student_id": student, "assignment": assignment, "key": key, "notebooks": {}}
    for notebook in grade_submission(course.source, course.release,
                                     course.folder("submitted", student), slot=_SLOT,
                                     limits=limits, isolated=isolated):
        result = notebook.result
        nbformat.write(result.feedback, autograded / f"{result.name}.ipynb")
        (feedback / f"{result.name}.html").write_text(
            feedback_html(result, student=student, assignment=assignment), encoding="utf-8")
        graded["notebooks"][result.name] = {
            "score": result.score, "max_score": result.max_score, "problem": result.problem,
            "notes": result.notes, "tests": [asdict(t) for t in result.tests]}
    notebooks = graded["notebooks"].values()
    graded["score"] = sum(n["score"] for n in notebooks)
    graded["max_score"] = sum(n["max_score"] for n in notebooks)
    problems = [n["problem"] for n in notebooks if n["problem"]]
    graded["problem"] = "; ".join(problems) or None
    graded["seconds"] = round(time.monotonic() - started, 2)
    part = autograded / "result.json.part"
    part.write_text(json.dumps(graded, indent=1))
    part.replace(autograded / "result.json")
    return graded


def previous_result(course: Course, student: str, key: str) -> dict | None:
    path = course.folder("autograded", student) / "result.json"
    try:
        graded = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return graded if graded.get("key") == key else None


# --- the batch ---------------------------------------------------------------------------------

class Progress:
    """One line that redraws itself: a bar, counts and the time so far."""

    def __init__(self, total: int):
        self.total, self.done, self.failed = total, 0, 0
        self.started = time.monotonic()
        self.live = sys.stderr.isatty()

    def update(self, graded: dict) -> None:
        self.done += 1
        self.failed += bool(graded.get("problem"))
        width = 30
        filled = width * self.done // max(self.total, 1)
        line = (f"[{'#' * filled}{'.' * (width - filled)}] {self.done}/{self.total} graded"
                f"{f', {self.failed} with problems' if self.failed else ''} "
                f"({time.monotonic() - self.started:.0f} s)")
        if self.live:
            print(f"\r{line}", end="", file=sys.stderr, flush=True)
        elif self.done == self.total or self.done % 10 == 0:
            print(line, file=sys.stderr, flush=True)

    def close(self) -> None:
        if self.live:
            print(file=sys.stderr)


def _pool(workers: int) -> concurrent.futures.ProcessPoolExecutor:
    # Workers fork from a server that has imported the heavy modules once (torch, nbconvert).
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(["autograder.grade", "autograder.score",
                                    "autograder.feedback", "nbconvert", "torch"])
    slots = context.Queue()
    for slot in range(workers):
        slots.put(slot)
    threads = max(1, (os.cpu_count() or 1) // workers)
    return concurrent.futures.ProcessPoolExecutor(
        max_workers=workers, mp_context=context, initializer=_start_worker,
        initargs=(slots, threads))


def _ready() -> None:
    """A task that only starts a worker."""


def grade_batch(course: Course, students: list[str], *, workers: int, limits: Limits,
                isolated: bool, force: bool) -> tuple[list[dict], dict[str, str], bool]:
    """Grade (or reuse) every learner's submission; record each in the gradebook as it comes.
    Returns the results, the failures and whether the batch ran to the end. A submission the
    grader itself failed on (not the learner's code) gets no grade: it is listed in the
    failures, and the next run tries it again."""
    from nbgrader.api import Gradebook

    fingerprint = course.fingerprint()
    keys = {student: submission_key(course, student, fingerprint) for student in students}
    results, todo = [], []
    for student in students:
        kept = None if force else previous_result(course, student, keys[student])
        if kept is None:
            todo.append(student)
        else:
            results.append(kept)
    pool = _pool(workers) if todo else None
    if pool is not None:  # the workers start while nbgrader prepares the gradebook
        for _ in range(workers):
            pool.submit(_ready)
    ensure_gradebook(course)
    progress = Progress(len(students))
    failures: dict[str, str] = {}
    complete = pool is None
    with Gradebook(course.db_url) as gradebook:
        for graded in results:
            record(gradebook, course.assignment, graded)
            progress.update(graded)
        if pool is not None:
            complete = _grade_in(pool, course, todo, keys, gradebook, results, failures,
                                 progress, limits=limits, isolated=isolated)
    progress.close()
    return results, failures, complete


def _grade_in(pool, course: Course, todo: list[str], keys: dict, gradebook, results: list,
              failures: dict, progress: Progress, *, limits: Limits, isolated: bool) -> bool:
    """Grade ``todo`` in the worker pool, recording each grade as it arrives; whether all
    were graded (False after Ctrl-C)."""
    complete = False
    try:
        futures = {pool.submit(grade_student, str(course.root), course.assignment, student,
                               keys[student], limits, isolated, course.key): student
                   for student in todo}
        for future in concurrent.futures.as_completed(futures):
            student = futures[future]
            try:
                graded = future.result()
            except Exception as error:  # noqa: BLE001  (ours, not the learner's: no grade)
                failures[student] = f"{type(error).__name__}: {str(error)[:500]}"
                progress.update({"problem": "grader"})
                continue
            record(gradebook, course.assignment, graded)
            results.append(graded)
            progress.update(graded)
        complete = True
    except KeyboardInterrupt:
        print("\ngrade: interrupted; what was graded is kept, run the same command again to "
              "grade the rest.", file=sys.stderr)
    finally:
        if not complete:
            for process in list(getattr(pool, "_processes", {}).values()):
                process.terminate()
        pool.shutdown(wait=complete, cancel_futures=True)
    return complete


def summary(results: list[dict], refused: dict[str, str], failures: dict[str, str],
            seconds: float) -> str:
    """What make grade prints at the end: one line of text per learner named, whatever
    their file names or messages hold (:func:`autograder.plain.line`)."""
    return "\n".join(plain.line(line, 2000) for line in
                     _summary_lines(results, refused, failures, seconds))


def _summary_lines(results: list[dict], refused: dict[str, str], failures: dict[str, str],
                   seconds: float) -> list[str]:
    scores = [r["score"] for r in results]
    with_problems = [r for r in results if r.get("problem")]
    lines = [f"Graded {len(results)} submissions in {seconds:.0f} s"
             + (f" ({60 * len(results) / seconds:.1f} per minute)" if seconds else "") + "."]
    if results:
        best = max(r["max_score"] for r in results)
        lines.append(f"Mean score {sum(scores) / len(scores):.2f} of {best:g}.")
    for r in with_problems:
        lines.append(f"  {r['student_id']}: {r['problem']}")
    stopped = [r["student_id"] for r in results
               if any(n.get("notes") for n in r.get("notebooks", {}).values())]
    if stopped:
        lines.append(f"  code that crashed, hung or was stopped (scored by what still ran; the "
                     f"reasons are in their feedback): {', '.join(stopped)}")
    for student, why in refused.items():
        lines.append(f"  not graded: {student!r}: {why}")
    for student, why in failures.items():
        lines.append(f"  not graded, the grader failed (run again to retry): {student}: {why}")
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m autograder.grade", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("assignment")
    parser.add_argument("submissions", type=Path)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--root", type=Path, default=REPOSITORY,
                        help="the course folder (default: this repository)")
    parser.add_argument("--force", action="store_true", help="grade again what was graded")
    parser.add_argument("--no-secret", action="store_true",
                        help="draw the hidden tests' inputs from the published seeds, not with "
                             "the course secret (autograder/course-secret)")
    parser.add_argument("--unsafe", action="store_true",
                        help="grade without the bubblewrap sandbox (learner code then runs "
                             "with this user's rights)")
    defaults = Limits()
    parser.add_argument("--call-timeout", type=float, default=defaults.call_seconds)
    parser.add_argument("--cells-timeout", type=float, default=defaults.cells_seconds)
    parser.add_argument("--submission-timeout", type=float, default=defaults.submission_seconds)
    args = parser.parse_args(argv)

    course = Course(args.root.resolve(), args.assignment)
    if not course.source.is_dir() or not course.notebooks():
        print(f"grade: no assignment {args.assignment!r}: {course.source} has no notebooks",
              file=sys.stderr)
        return 2
    problem = bwrap_problem()
    if problem and not args.unsafe:
        print(f"grade: REFUSED. Learner code must run in a sandbox, and {problem}.\n"
              "Install bubblewrap, or pass --unsafe (make grade UNSAFE=1) to run learner code "
              "unisolated on this machine.", file=sys.stderr)
        return 3
    if args.unsafe:
        print("grade: WARNING: --unsafe: learner code runs WITHOUT the sandbox, with your "
              "rights on this machine.", file=sys.stderr)
    elif (weaker := cgroup_problem()) is not None:
        print(f"grade: WARNING: {weaker}.", file=sys.stderr)
    limits = Limits(call_seconds=args.call_timeout, cells_seconds=args.cells_timeout,
                    submission_seconds=args.submission_timeout)
    if not args.no_secret:
        course.key = secret.course_key(secret.load_or_create(course.work))
    started = time.monotonic()
    students, refused = collect(course, args.submissions)
    if not students:
        reasons = "".join(f"\n  not graded: {who!r}: {why}" for who, why in refused.items())
        print(f"grade: no submissions found in {args.submissions} (expected <student_id>/"
              f"<notebook>.ipynb folders, or a zip of them){reasons}", file=sys.stderr)
        return 2
    results, failures, complete = grade_batch(
        course, students, workers=max(1, args.workers), limits=limits,
        isolated=not args.unsafe, force=args.force)
    csv_path = write_csv(course, results)
    print(summary(results, refused, failures, time.monotonic() - started))
    if not args.unsafe and (note := cgroup_note()) is not None:
        print(note)
    print(f"Scores: {csv_path}; feedback: {course.work / 'feedback'}/<student>/"
          f"{course.assignment}/")
    return 130 if not complete else 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
