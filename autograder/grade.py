"""``make grade``: grade a whole class in parallel, safely, and resumably.

    python -m autograder.grade ASSIGNMENT SUBMISSIONS [--workers N] [--unsafe] [--force]
                               [--lms canvas|moodle|blackboard|brightspace] [--roster CSV]
                               [--db URL] [--deadline 2026-12-01T23:59:00+00:00]

SUBMISSIONS is a folder with one sub-folder per learner (``<student_id>/<notebook>.ipynb``)
or an LMS download (a zip or its folder), read by autograder/collect.py: learners are named by
the top-level names only, as Canvas, Moodle, Blackboard or Brightspace name them (``--lms``
reads only that LMS's names; without it each is read as the first that fits), and the newest
submission of each learner's notebook is graded. Every file is graded under a student id or
listed, with its reason, in the summary and in autograder/not-graded.csv. Every submission is
copied to autograder/submitted/, graded in the sandbox (autograder/score.py), recorded in the
nbgrader gradebook, and handed back as feedback HTML in autograder/feedback/.

The gradebook is the one source of truth: after every batch, autograder/grades.csv, the LMS
imports in autograder/exports/ and the class report in autograder/report/ are rebuilt from it
(every learner of every batch, manual scores and comments from formgrader included); a regrade
never overwrites a manual score. A learner's grade is written the moment it is ready, with a
fingerprint of the submission and the tests: a run that was interrupted, or the same batch
graded again, reuses it (``--force`` grades everything again, once: run it again after a
Ctrl-C and it goes on where it stopped). ``--roster`` (student_id, lms_id, name, section)
maps the LMS's names to student ids and lists who handed in nothing.

The hidden tests' inputs are drawn with the course secret (autograder/secret.py), made on first
use in autograder/course-secret; ``--no-secret`` draws them from the published seeds instead,
as a learner's own notebook does.

The gradebook is the one plain nbgrader uses (CONVCOURSE_DB_URL, autograder/settings.py; any
SQLAlchemy URL), or ``--db``. nbgrader's exchange works on it: submissions collected with
``nbgrader collect`` are graded with SUBMISSIONS=autograder/submitted, each with the time it
was handed in as far as it can be trusted (autograder/exchange.py), and their feedback is
ready for ``nbgrader release_feedback``. ``--deadline`` sets the assignment's due date; a
later submission gets the late penalty of the course's LateSubmissionPlugin.
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
from datetime import datetime, timezone
from pathlib import Path

import nbformat

from autograder import exchange, exports, grader_files, plain, report, secret, settings
from autograder.cgroup import cgroup_note, cgroup_problem
from autograder.collect import LMSES, Person, collect
from autograder.roster import Roster
from autograder.sandbox import Limits, bwrap_problem

REPOSITORY = Path(__file__).resolve().parents[1]


def gradebook_url(root: Path) -> str:
    """The course's gradebook, as plain nbgrader finds it (autograder/settings.py)."""
    return settings.db_url(root)


class Course:
    """Where things are, for the repository or a scratch copy of it (``--root``)."""

    def __init__(self, root: Path, assignment: str, *, grader: Path = REPOSITORY,
                 key: str | None = None, db_url: str | None = None):
        self.root, self.assignment = root, assignment
        self.grader = grader  # the folder holding the grader's code (autograder/, convcourse/)
        self.key = key  # the course key the hidden inputs are drawn with (None: published seeds)
        self.source = root / "solutions" / assignment
        self.release = root / "notebooks" / assignment
        self.work = root / "autograder"
        self.db_url = db_url or gradebook_url(root)
        self.course_id = settings.course_id()
        self._late_policy = None

    def notebooks(self) -> list[str]:
        return sorted(p.stem for p in self.source.glob("*.ipynb"))

    def folder(self, kind: str, student: str) -> Path:
        return self.work / kind / student / self.assignment

    def late_policy(self):
        """nbgrader's late-submission plugin as the course's nbgrader configuration sets it
        (``LateSubmissionPlugin.penalty_method``, from CONVCOURSE_LATE_PENALTY, or a plugin
        class of the course's own, ``AssignLatePenalties.plugin_class``)."""
        if self._late_policy is None:
            from nbgrader.preprocessors import AssignLatePenalties
            from traitlets.config.loader import PyFileConfigLoader

            config = PyFileConfigLoader("nbgrader_config.py",
                                        str(REPOSITORY / "autograder")).load_config()
            assigner = AssignLatePenalties(config=config)
            assigner.init_plugin()
            self._late_policy = assigner.plugin_inst
        return self._late_policy

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

def nbgrader(root: Path, *args: str, db_url: str | None = None) -> subprocess.CompletedProcess:
    """Run an nbgrader command on the course in ``root`` with this course's configuration
    (and the gradebook ``db_url``, by default the course's)."""
    (root / "autograder").mkdir(parents=True, exist_ok=True)  # where its gradebook lives
    tool = Path(sys.executable).parent / "nbgrader"
    env = {**os.environ, "JUPYTER_CONFIG_PATH": str(REPOSITORY / "autograder"),
           "PATH": f"{tool.parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    return subprocess.run([str(tool), *args, f"--CourseDirectory.root={root}",
                           f"--CourseDirectory.db_url={db_url or gradebook_url(root)}"],
                          cwd=root, env=env, capture_output=True, text=True, check=False)


# --- the gradebook ------------------------------------------------------------------------------

def ensure_gradebook(course: Course, tries: int = 3) -> None:
    """The gradebook knows the assignment's cells as the source has them (else nbgrader's
    generate_assignment records them, releasing into a scratch folder, not notebooks/). A
    shared gradebook may be made by another grader at the same moment, and nbgrader's making
    of it then fails in one of them: that one looks again."""
    from autograder.notebook import grade_cells, nbgrader_meta

    wanted = {(path.stem, nbgrader_meta(c)["grade_id"], float(nbgrader_meta(c)["points"]))
              for path in course.source.glob("*.ipynb")
              for c in grade_cells(nbformat.read(path, as_version=4))}
    course.work.mkdir(parents=True, exist_ok=True)
    for attempt in range(tries):
        if _gradebook_cells(course) == wanted:
            return
        try:
            _generate_assignment(course)
            return
        except Exception as error:  # noqa: BLE001  (nbgrader's, or the database's)
            failure = f"{type(error).__name__}: {error}"
        time.sleep(1 + attempt)
    raise SystemExit(f"grade: nbgrader generate_assignment failed:\n{failure[-3000:]}")


def _generate_assignment(course: Course) -> None:
    """``nbgrader generate_assignment`` with the course's configuration, run in this process
    (a command of its own would start Python and import nbgrader again, about 1 CPU-s),
    releasing into a scratch folder: only what it records in the gradebook is wanted."""
    import logging

    from nbgrader.converters import GenerateAssignment
    from nbgrader.coursedir import CourseDirectory
    from traitlets.config.loader import PyFileConfigLoader

    config = PyFileConfigLoader("nbgrader_config.py",
                                path=str(REPOSITORY / "autograder")).load_config()
    quiet = logging.getLogger("autograder.generate_assignment")
    quiet.setLevel(logging.ERROR)
    with tempfile.TemporaryDirectory() as scratch:
        config.CourseDirectory.root = str(course.root)
        config.CourseDirectory.db_url = course.db_url
        config.CourseDirectory.course_id = course.course_id
        config.CourseDirectory.release_directory = scratch
        coursedir = CourseDirectory(config=config, log=quiet)
        coursedir.assignment_id = course.assignment
        app = GenerateAssignment(coursedir=coursedir, config=config, log=quiet)
        app.force = True
        app.start()


def schema_version() -> str:
    """The version nbgrader's migrations give its gradebook schema, read in this process. To
    make a new gradebook nbgrader asks the ``alembic`` command for it, a Python process of
    its own that imports nbgrader again (1-2 CPU-s, more than grading a learner's notebook):
    :func:`_gradebook_cells` hands nbgrader this function instead."""
    from alembic.config import Config
    from alembic.script import ScriptDirectory
    from nbgrader.dbutil import ALEMBIC_DIR

    config = Config()
    config.set_main_option("script_location", ALEMBIC_DIR)
    return ScriptDirectory.from_config(config).get_current_head()


def _gradebook_cells(course: Course) -> set[tuple[str, str, float]] | None:
    """The assignment's grade cells as the gradebook knows them (None: not at all)."""
    import nbgrader.api
    from nbgrader.api import Gradebook

    nbgrader.api.get_alembic_version = schema_version  # what a new gradebook records

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with Gradebook(course.db_url, course.course_id) as gradebook:
                assignment = gradebook.find_assignment(course.assignment)
                return {(nb.name, cell.name, float(cell.max_score))
                        for nb in assignment.notebooks for cell in nb.grade_cells}
    except Exception:  # noqa: BLE001  (no gradebook yet, or the assignment is not in it)
        return None


def record(gradebook, course: Course, graded: dict, person: Person | None = None) -> bool:
    """Write one learner's automatic scores into the (open) nbgrader gradebook, with the time
    of the submission (its timestamp.txt, settled by :func:`autograder.exchange.settle_time`),
    the LMS's id of the learner where the batch named one, and the late penalty; then the
    files nbgrader's release_feedback reads beside the feedback. A manual score or comment
    (formgrader's) is never touched: nbgrader counts a manual score in place of the automatic
    one. Whether the late penalty changed (the feedback page then shows the old one)."""
    student, assignment = graded["student_id"], course.assignment
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # SQLAlchemy's notes on nbgrader's own session use
        lms_id = {"canvas": person.key, "blackboard": person.who}.get(person.lms) \
            if person is not None else None
        gradebook.update_or_create_student(student, **({"lms_user_id": lms_id} if lms_id
                                                       else {}))
        when = exchange.read_time(course.folder("submitted", student))
        submission = gradebook.update_or_create_submission(
            assignment, student, **({"timestamp": when} if when else {}))
        for notebook in submission.notebooks:
            tests = {t["grade_id"]: t for t in
                     graded["notebooks"].get(notebook.name, {}).get("tests", [])}
            for grade in notebook.grades:
                grade.auto_score = tests.get(grade.name, {}).get("score", 0.0)
                grade.needs_manual_grade = False
        gradebook.db.commit()
        changed = late_penalties(course, submission)
        gradebook.db.commit()
    exchange.hand_back(course.folder("submitted", student), course.folder("feedback", student))
    return changed


def late_penalties(course: Course, submission) -> bool:
    """Each notebook's late penalty, as nbgrader's autograde assigns it: none where the
    submission was on time (its time against the assignment's due date and the learner's
    extension), else what the course's LateSubmissionPlugin says, between 0 and the notebook's
    score. Whether any changed."""
    late = submission.total_seconds_late
    changed = False
    for notebook in submission.notebooks:
        penalty = None
        if late > 0:
            penalty = course.late_policy().late_submission_penalty(
                submission.student.id, notebook.score, late)
            if penalty is not None:
                penalty = min(max(float(penalty), 0.0), float(notebook.score))
        changed |= (notebook.late_submission_penalty or 0) != (penalty or 0)
        notebook.late_submission_penalty = penalty
    return changed


def write_not_graded(course: Course, batch: str, refused: dict[str, str],
                     failures: dict[str, str]) -> Path:
    """autograder/not-graded.csv: what this batch did not grade, and why; the rows of other
    batches and assignments kept."""
    path = course.work / "not-graded.csv"
    header = ["assignment", "batch", "file", "reason"]
    rows = []
    if path.is_file():
        with path.open(newline="", encoding="utf-8") as file:
            rows = [[row.get(h, "") for h in header] for row in csv.DictReader(file)
                    if (row.get("assignment"), row.get("batch")) !=
                    (course.assignment, plain.csv_field(batch))]
    rows += [[course.assignment, batch, label, why] for label, why in refused.items()]
    rows += [[course.assignment, batch, student, f"the grader failed (run again to retry): "
                                                 f"{why}"] for student, why in failures.items()]
    return exports.write_rows(path, header, rows)


# --- grading one learner (in a worker process) ---------------------------------------------------

_SLOT = 0


def _start_worker(slots, threads: int) -> None:
    global _SLOT
    _SLOT = slots.get()
    import torch

    torch.set_num_threads(threads)


def submission_key(course: Course, student: str, fingerprint: str) -> str:
    """What a grade was made for: the tests and grader (``fingerprint``) and every file the
    learner handed in, but its time (timestamp.txt), which the tests never read: a time
    settled again (exchange.settle_time) changes the late penalty, applied as the grade is
    recorded, not the grade."""
    digest = hashlib.sha256(fingerprint.encode())
    folder = course.folder("submitted", student)
    for path in sorted(folder.rglob("*")):
        if path == folder / exchange.TIMESTAMP:
            continue
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
            "notes": result.notes,
            "tests": [{**asdict(t), "mistake": report.named_mistake(t.message)}
                      for t in result.tests]}
    notebooks = graded["notebooks"].values()
    graded["score"] = sum(n["score"] for n in notebooks)
    graded["max_score"] = sum(n["max_score"] for n in notebooks)
    problems = [n["problem"] for n in notebooks if n["problem"]]
    graded["problem"] = "; ".join(problems) or None
    graded["seconds"] = round(time.monotonic() - started, 2)
    graded["graded_at"] = time.time()
    part = autograded / "result.json.part"
    part.write_text(json.dumps(graded, indent=1))
    part.replace(autograded / "result.json")
    return graded


def previous_result(course: Course, student: str, key: str,
                    since: float | None = None) -> dict | None:
    """The learner's grade, where it was made for this submission and these tests (``key``)
    and, given ``since``, no earlier than that."""
    path = course.folder("autograded", student) / "result.json"
    try:
        graded = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(graded, dict) or graded.get("key") != key:
        return None
    if since is not None and not graded.get("graded_at", 0) >= since:
        return None
    return graded


def forced_since(course: Course, force: bool) -> float | None:
    """With ``--force``, when the forced regrade began: now, or, where a forced run was
    interrupted, when that one began (so running it again goes on where it stopped)."""
    marker = course.work / "autograded" / f".forced-{course.assignment}"
    if not force:
        return None
    try:
        return float(marker.read_text())
    except (OSError, ValueError):
        marker.parent.mkdir(parents=True, exist_ok=True)
        now = time.time()
        marker.write_text(repr(now))
        return now


def forced_done(course: Course) -> None:
    (course.work / "autograded" / f".forced-{course.assignment}").unlink(missing_ok=True)


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
    # Workers fork from a server that has made what they need once (autograder/worker.py).
    context = multiprocessing.get_context("forkserver")
    # (not autograder.grade itself: run as ``-m``, each worker runs it again as __mp_main__,
    # and runpy warns where it was imported before)
    context.set_forkserver_preload(["autograder.worker"])
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
                isolated: bool, force: bool, people: dict[str, Person] | None = None,
                deadline: datetime | None = None
                ) -> tuple[list[dict], dict[str, str], bool, set[str]]:
    """Grade (or reuse) every learner's submission; record each in the gradebook as it comes,
    the assignment's due date first where ``deadline`` gives one. Returns the results, the
    failures, whether the batch ran to the end, and the learners whose late penalty changed.
    A submission the grader itself failed on (not the learner's code) gets no grade: it is
    listed in the failures, and the next run tries it again. A reused result is marked
    ``reused``."""
    from nbgrader.api import Gradebook

    fingerprint = course.fingerprint()
    keys = {student: submission_key(course, student, fingerprint) for student in students}
    since = forced_since(course, force)
    results, todo = [], []
    for student in students:
        kept = previous_result(course, student, keys[student], since)
        if kept is None:
            todo.append(student)
        else:
            results.append({**kept, "reused": True})
    pool = _pool(workers) if todo else None
    if pool is not None:  # the workers start while nbgrader prepares the gradebook
        for _ in range(workers):
            pool.submit(_ready)
    ensure_gradebook(course)
    progress = Progress(len(students))
    failures: dict[str, str] = {}
    complete = pool is None
    people = people or {}
    changed: set[str] = set()
    with Gradebook(course.db_url, course.course_id) as gradebook:
        if deadline is not None:
            gradebook.update_or_create_assignment(course.assignment, duedate=deadline)
        for graded in results:
            if record(gradebook, course, graded, people.get(graded["student_id"])):
                changed.add(graded["student_id"])
            progress.update(graded)
        if pool is not None:
            complete = _grade_in(pool, course, todo, keys, gradebook, results, failures,
                                 progress, limits=limits, isolated=isolated, people=people,
                                 changed=changed)
    progress.close()
    if complete and force:
        forced_done(course)
    return results, failures, complete, changed


def _grade_in(pool, course: Course, todo: list[str], keys: dict, gradebook, results: list,
              failures: dict, progress: Progress, *, limits: Limits, isolated: bool,
              people: dict[str, Person], changed: set[str]) -> bool:
    """Grade ``todo`` in the worker pool, recording each grade as it arrives (and in
    ``changed``, who the late penalty changed for); whether all were graded (False after
    Ctrl-C)."""
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
            if record(gradebook, course, graded, people.get(student)):
                changed.add(student)
            results.append(graded)
            progress.update(graded)
        complete = True
    except KeyboardInterrupt:
        print("\ngrade: interrupted; what was graded is kept (and in grades.csv), run the same "
              "command again to grade the rest.", file=sys.stderr)
    finally:
        if not complete:
            for process in list(getattr(pool, "_processes", {}).values()):
                process.terminate()
        pool.shutdown(wait=complete, cancel_futures=True)
    return complete


def summary(results: list[dict], refused: dict[str, str], failures: dict[str, str],
            seconds: float, extra: list[str] = ()) -> str:
    """What make grade prints at the end: one line of text per learner named, whatever
    their file names or messages hold (:func:`autograder.plain.line`); ``extra`` lines (the
    roster's check, the class report's table) after it."""
    return "\n".join(plain.line(line, 2000) for line in
                     [*_summary_lines(results, refused, failures, seconds), *extra])


def _summary_lines(results: list[dict], refused: dict[str, str], failures: dict[str, str],
                   seconds: float) -> list[str]:
    scores = [r["score"] for r in results]
    with_problems = [r for r in results if r.get("problem")]
    graded = sum(not r.get("reused") for r in results)
    lines = [f"Graded {graded} submissions in {seconds:.0f} s"
             + (f" ({60 * graded / seconds:.1f} per minute)" if seconds and graded else "")
             + (f"; {len(results) - graded} graded before were reused" if graded < len(results)
                else "") + "."]
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
    # make grade LMS=... ROSTER=...: make hands its command line's variables to the command
    parser.add_argument("--lms", choices=LMSES, default=os.environ.get("LMS") or None,
                        help="read the batch's names as this LMS names them (default: $LMS, "
                             "else each as the first LMS's naming that fits)")
    parser.add_argument("--roster", type=Path, default=os.environ.get("ROSTER") or None,
                        help="a CSV of the class (student_id, lms_id, name, section); "
                             "default: $ROSTER")
    parser.add_argument("--db", default=os.environ.get("DB") or None,
                        help="the gradebook, an SQLAlchemy URL (default: $DB, else "
                             "$CONVCOURSE_DB_URL as plain nbgrader reads it, else "
                             "autograder/gradebook.db)")
    parser.add_argument("--deadline", type=parse_deadline,
                        default=os.environ.get("DEADLINE") or None,
                        help="the assignment's due date, ISO 8601 with its UTC offset, e.g. "
                             "2026-12-01T23:59:00+00:00 (default: $DEADLINE, else the one the "
                             "gradebook has); later submissions get the course's late penalty")
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

    course = Course(args.root.resolve(), args.assignment, db_url=args.db)
    if not course.source.is_dir() or not course.notebooks():
        print(f"grade: no assignment {args.assignment!r}: {course.source} has no notebooks",
              file=sys.stderr)
        return 2
    course.work.mkdir(parents=True, exist_ok=True)
    if (wrong := gradebook_problem(course.db_url) or late_policy_problem(course)) is not None:
        print(f"grade: {wrong}", file=sys.stderr)
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
    submissions = args.submissions.expanduser()
    roster = Roster.load(args.roster.expanduser()) if args.roster else None
    collected = collect(course, submissions, lms=args.lms, roster=roster)
    students, refused = collected.students, collected.refused
    if not students:
        write_not_graded(course, submissions.name, refused, {})
        reasons = "".join(f"\n  not graded: {who!r}: {why}" for who, why in refused.items())
        print(plain.block(f"grade: no submissions found in {submissions} (expected "
                          f"<student_id>/<notebook>.ipynb folders, or an LMS zip){reasons}"),
              file=sys.stderr)
        return 2
    for student in list(students):  # each submission's time, from what can be trusted
        try:
            exchange.settle_time(course.folder("submitted", student), student,
                                 course.assignment)
        except OSError as error:
            students.remove(student)
            refused[student] = (f"its {exchange.TIMESTAMP} could not be written "
                                f"({plain.line(error, 120)}): run again to retry")
    results, failures, complete, changed = grade_batch(
        course, students, workers=max(1, args.workers), limits=limits,
        isolated=not args.unsafe, force=args.force, people=collected.people,
        deadline=args.deadline)
    not_graded = write_not_graded(course, submissions.name, refused, failures)
    paths, extra = rebuild_outputs(course, roster, changed)
    print(summary(results, refused, failures, time.monotonic() - started, extra))
    if not args.unsafe and (note := cgroup_note()) is not None:
        print(note)
    print(f"Gradebook: {shown_url(course.db_url)}")
    print(f"Scores: {paths[0]} (every learner, from the gradebook); LMS imports: "
          f"{paths[1].parent}/; class report: {paths[-2]}; not graded: {not_graded}; "
          f"feedback: {course.work / 'feedback'}/<student>/{course.assignment}/")
    return 130 if not complete else 1 if failures else 0


def rebuild_outputs(course: Course, roster: Roster | None,
                    changed: set[str] = frozenset()) -> tuple[list[Path], list[str]]:
    """After a batch (finished or not): grades.csv, the LMS imports and the class report,
    rebuilt from the gradebook, and the feedback of learners graded by hand, submitted late
    or whose late penalty ``changed`` rendered again from it (manual scores and comments,
    the penalty). The paths written, and the lines to print."""
    from autograder.feedback import regenerate

    rebuilt = exports.rebuild(course.work, course.db_url, course.assignment, roster,
                              course.course_id)
    grades = [g for g in rebuilt["grades"] if g.assignment == course.assignment]
    for grade in grades:
        if grade.manual or grade.late or grade.student_id in changed:
            regenerate(course.folder("autograded", grade.student_id),
                       course.folder("feedback", grade.student_id), grade.tests,
                       grade.comments, student=grade.student_id, assignment=course.assignment,
                       late=grade.late)
    class_report, report_paths = report.write(
        course.work, course.source, course.assignment, {g.student_id: g.score for g in grades},
        max((g.max_score for g in grades), default=0))
    lines = [f"  roster: {student}: {what}" for student, what in rebuilt["roster"]]
    lines += [f"  late: {g.student_id}: {g.late_penalty:g} points off (late penalty)"
              for g in grades if g.late]
    lines += ["  Class report:", *report.table(class_report)]
    return [*rebuilt["paths"], *report_paths], lines


# --- the course's settings ------------------------------------------------------------------------

def parse_deadline(text: str) -> datetime:
    """``--deadline``/DEADLINE: an ISO 8601 time with its UTC offset, as nbgrader keeps due
    dates (naive, in UTC)."""
    try:
        when = datetime.fromisoformat(text.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a time: write it as ISO 8601 with its UTC offset, e.g. "
            "2026-12-01T23:59:00+00:00") from None
    if when.tzinfo is None:
        raise argparse.ArgumentTypeError(
            f"{text!r} has no UTC offset, so it could be any of 24 hours: add yours, e.g. "
            f"{text.strip()}+00:00 (UTC) or {text.strip()}+01:00")
    return when.astimezone(timezone.utc).replace(tzinfo=None)


def shown_url(url: str) -> str:
    """A gradebook's URL as it may be printed: without its password."""
    import sqlalchemy

    return sqlalchemy.engine.make_url(url).render_as_string(hide_password=True)


def gradebook_problem(url: str) -> str | None:
    """Why the gradebook at ``url`` cannot be opened (None: it can), in a sentence that says
    what to change; the URL shown without its password."""
    import sqlalchemy

    try:
        shown = shown_url(url)
    except Exception:  # noqa: BLE001  (whatever SQLAlchemy cannot read as a URL)
        return ("the gradebook's URL (DB= or CONVCOURSE_DB_URL) is not an SQLAlchemy URL: "
                "write it as e.g. postgresql+psycopg://user@host/dbname or "
                "sqlite:////path/to/gradebook.db")
    try:
        engine = sqlalchemy.create_engine(url)
        with engine.connect():
            pass
        engine.dispose()
    except ModuleNotFoundError as error:
        return (f"the gradebook {shown} needs the database driver {error.name!r}, which is "
                "not installed (for PostgreSQL: pip install 'psycopg[binary]')")
    except Exception as error:  # noqa: BLE001  (the driver's own words say what is wrong)
        return (f"cannot open the gradebook {shown}: {plain.line(error, 300)} (check DB= or "
                "CONVCOURSE_DB_URL)")
    return None


def late_policy_problem(course: Course) -> str | None:
    """Why the course's late penalty cannot be used (None: it can)."""
    try:
        course.late_policy()
    except Exception as error:  # noqa: BLE001  (nbgrader's trait error names what is wrong)
        return (f"the late penalty cannot be used: {plain.line(error, 300)} (set "
                f"{settings.LATE_PENALTY} to none or zero, the methods of nbgrader's "
                "LateSubmissionPlugin)")
    return None


if __name__ == "__main__":
    sys.exit(main())
