"""Gradescope: one assignment's autograder as a zip, and the grading of one submission with it.

Build it (the instructor, in the repository)::

    python -m autograder.gradescope ASSIGNMENT [--root ROOT] [--unsafe]

writes ``ROOT/autograder/dist/ASSIGNMENT-gradescope.zip``: Gradescope's ``setup.sh`` and
``run_autograder`` at its root (from ``autograder/gradescope/``), the grader (the Python files
of ``autograder/`` and the parts of ``convcourse/`` that grading uses, found by walking the
folders: :func:`autograder.grader_files`), that assignment's ``solutions/`` and
``notebooks/`` folders, and ``autograder/course-key``, the course key that the hidden tests'
inputs are drawn with (an HMAC of the course secret, autograder/secret.py; never the secret;
left out with ``--no-secret``); nothing else.

Gradescope unpacks it into ``/autograder/source`` and, for each submission, runs
``run_autograder``, which calls::

    python -m autograder.gradescope ASSIGNMENT --grade [--unsafe]

That finds the submitted notebook in ``$AUTOGRADER_ROOT/submission/`` (default ``/autograder``),
grades it as ``make grade`` does (:func:`autograder.score.grade_submission`: the learner's cells in
the bubblewrap sandbox, the instructor's tests here) and writes
``$AUTOGRADER_ROOT/results/results.json`` in Gradescope's format: the score, a summary, and the
entries of each graded test cell (:func:`test_entries`). A cell with hidden tests has two:
its visible checks, the ones in the learner's own notebook, shown at once and worth no points
of their own; and the cell's points, earned as ``make grade`` earns them (every check passes,
the hidden ones included), shown once grades are published. So a learner sees on submission
which of their notebook's checks pass, and nothing of the hidden tests; and the total is
``make grade``'s. Where bubblewrap cannot run, it refuses (score 0, and a result that says why)
unless the zip was built with ``--unsafe``; it then grades without the sandbox and says so.
"""

from __future__ import annotations

import argparse
import ast
import json
import os
import re
import sys
import time
import traceback
import zipfile
from pathlib import Path

from autograder import grader_files, plain, secret

REPOSITORY = Path(__file__).resolve().parents[1]
#: Gradescope's two files, kept as templates beside this module.
TEMPLATES = "autograder/gradescope"
EXECUTABLE = {"setup.sh", "run_autograder"}
SKIPPED_DIRECTORIES = {"__pycache__", ".ipynb_checkpoints"}
ZIP_TIME = (1980, 1, 1, 0, 0, 0)  # the same bytes for the same files, on every build
#: Gradescope stops an autograder after 10 minutes unless told otherwise: grading each
#: notebook stops well before, so that results.json is always written.
SECONDS_PER_SUBMISSION = 480.0


# --- building the zip --------------------------------------------------------------------------

def _tree(folder: Path) -> list[Path]:
    """The files under ``folder``, without caches, checkpoints and hidden files."""
    files = []
    for directory, subdirectories, names in os.walk(folder):
        subdirectories[:] = [d for d in subdirectories
                             if d not in SKIPPED_DIRECTORIES and not d.startswith(".")]
        files += [Path(directory) / name for name in names
                  if not name.startswith(".") and not name.endswith(".pyc")]
    return files


def bundle_files(root: Path, assignment: str) -> dict[str, Path]:
    """What the zip holds: its path in the zip -> the file in ``root``."""
    files = {name: root / TEMPLATES / name for name in sorted(EXECUTABLE)}
    files |= grader_files(root)
    for folder in (f"solutions/{assignment}", f"notebooks/{assignment}"):
        if not (root / folder).is_dir():
            raise SystemExit(f"{root / folder} is missing: is {assignment!r} an assignment of "
                             f"the course in {root}?")
        files |= {path.relative_to(root).as_posix(): path for path in _tree(root / folder)}
    missing = [str(path) for path in files.values() if not path.is_file()]
    if missing:
        raise SystemExit("cannot build the autograder, these files are missing: "
                         + ", ".join(missing))
    return files


def run_autograder_script(template: str, assignment: str, unsafe: bool) -> str:
    return (template.replace("@ASSIGNMENT@", assignment)
            .replace(" @UNSAFE@", " --unsafe" if unsafe else ""))


def build(assignment: str, root: Path = REPOSITORY, *, unsafe: bool = False,
          key: str | None = None) -> Path:
    """Write ``root/autograder/dist/<assignment>-gradescope.zip`` and return its path; with
    ``key``, the course key goes in too (autograder/course-key)."""
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*", assignment):
        raise SystemExit(f"{assignment!r} is not an assignment's name (a folder of solutions/)")
    root = Path(root).resolve()
    files = bundle_files(root, assignment)
    target = root / "autograder" / "dist" / f"{assignment}-gradescope.zip"
    target.parent.mkdir(parents=True, exist_ok=True)
    contents = {name: files[name].read_bytes() for name in files}
    if key:
        contents[f"autograder/{secret.KEY_FILE}"] = key.encode() + b"\n"
    with zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as archive:
        for name in sorted(contents):
            data = contents[name]
            if name == "run_autograder":
                data = run_autograder_script(data.decode(), assignment, unsafe).encode()
            entry = zipfile.ZipInfo(name, date_time=ZIP_TIME)
            entry.create_system = 3  # Unix, so that unzip applies the modes below
            entry.external_attr = (0o100755 if name in EXECUTABLE else 0o100644) << 16
            entry.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(entry, data)
    return target


# --- grading -----------------------------------------------------------------------------------

def _summary(cell) -> str:
    """The first sentence or so of a test cell's docstring (what it checks), on one line."""
    try:
        docstring = ast.get_docstring(ast.parse(cell.source)) or ""
    except SyntaxError:
        return ""
    return " ".join(docstring.split())[:200]


def _entry(name: str, score: float, max_score: float, failure: str | None, passed: str,
           visibility: str) -> dict:
    """One entry of Gradescope's ``tests``: ``failure`` (learner text, shown as typed, never
    as Markdown) where it failed, else ``passed``."""
    return {"name": name, "score": score, "max_score": max_score,
            "status": "passed" if failure is None else "failed",
            "output": passed if failure is None else plain.block(failure),
            "output_format": "text", "visibility": visibility}


def test_entries(result, source, release) -> list[dict]:
    """Gradescope's entries for one notebook's test cells, named as the released notebook
    names them (the learner has seen it). A cell without hidden tests: one entry, shown at
    once. A cell with hidden tests that run apart from its visible checks
    (:func:`autograder.score.split_test_cell`): its visible checks at once, as feedback worth
    0 points, decided by those checks alone (``visible_passed``); then its points, earned only
    when every check passes (as ``make grade`` gives them), after grades are published. The
    visible entry never says anything of the hidden checks. A cell whose hidden tests cannot
    run apart: one entry, after grades are published."""
    from autograder.notebook import grade_cells, hidden_test_lines, nbgrader_meta
    from autograder.score import split_test_cell

    hidden = {nbgrader_meta(c)["grade_id"]: (split_test_cell(c.source) is not None)
              for c in grade_cells(source) if hidden_test_lines(c)}
    summaries = {nbgrader_meta(c).get("grade_id"): _summary(c) for c in release.cells
                 if c.cell_type == "code"}
    entries = []
    for test in result.tests:
        summary = summaries.get(test.grade_id)
        name = f"{test.grade_id}: {summary}" if summary else test.grade_id
        if test.grade_id not in hidden:
            entries.append(_entry(name, test.score, test.points, test.message, "Passed.",
                                  "visible"))
            continue
        if hidden[test.grade_id]:
            entries.append(_entry(
                f"{name} [the checks in your notebook, no points of their own]", 0.0, 0.0,
                None if test.visible_passed else test.message,
                "Passed: the checks this cell shows in your notebook pass.", "visible"))
        failure = test.message
        if failure is not None and test.visible_passed is False:
            failure = f"The hidden checks did not run: the visible checks failed ({failure})"
        entries.append(_entry(f"{name} [all checks, hidden ones included]", test.score,
                              test.points, failure, "Passed, hidden checks included.",
                              "after_published"))
    return entries


def refusal(problem: str) -> dict:
    return {"score": 0.0, "tests": [], "output": (
        "This submission was not graded: the sandbox that learners' code runs in cannot run "
        f"here ({problem}). This is not a problem with your work: please tell your instructor. "
        "(Instructors: fix the image, or rebuild the autograder with --unsafe to grade without "
        "the sandbox.)")}


def grade(assignment: str, root: Path, autograder_root: Path, *,
          unsandboxed: str | None = None) -> dict:
    """Grade the submission in ``autograder_root/submission`` and return Gradescope's result;
    in the sandbox, or without it when ``unsandboxed`` says why."""
    # Imported here, not at the top: building the zip needs none of the grader's imports.
    from autograder.sandbox import Limits
    from autograder.score import grade_submission

    started = time.monotonic()
    key_file = root / "autograder" / secret.KEY_FILE  # hidden inputs: the course's own
    secret.use_key(key_file.read_text().strip() if key_file.is_file() else None)
    summary = [] if unsandboxed is None else [
        f"Graded WITHOUT the sandbox ({unsandboxed}): this autograder was built with --unsafe."]
    releases = root / "notebooks" / assignment
    submission = autograder_root / "submission"
    count = len(list(releases.glob("*.ipynb")))
    limits = Limits(submission_seconds=SECONDS_PER_SUBMISSION / max(count, 1))
    tests, score = [], 0.0
    for notebook in grade_submission(root / "solutions" / assignment, releases, submission,
                                     limits=limits, isolated=unsandboxed is None):
        result = notebook.result
        if notebook.submitted is not None:
            where = notebook.submitted.relative_to(submission).as_posix()
            expected = f"{result.name}.ipynb"
            label = plain.line(where if where == expected else f"{where} as {expected}")
            summary.append(f"Graded {label}: {result.score:g} of {result.max_score:g} points.")
        summary += [plain.line(note, 2000) for note in
                    ([result.problem] if result.problem else []) + result.notes]
        tests += test_entries(result, notebook.source, notebook.release)
        score += result.score
    if any(entry["visibility"] == "after_published" for entry in tests):
        summary.append("Each test's checks in your notebook are shown now (no points of their "
                       "own); its points, earned when every check passes, hidden ones "
                       "included, are shown once grades are published.")
    return {"score": score, "output": "\n".join(summary), "output_format": "text", "tests": tests,
            "execution_time": round(time.monotonic() - started, 1)}


def write_results(results: dict, autograder_root: Path) -> Path:
    path = autograder_root / "results" / "results.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    return path


def grade_and_report(assignment: str, root: Path, *, unsafe: bool) -> int:
    """run_autograder's work: always a results.json; exit status 0 when it holds a grade."""
    from autograder.sandbox import bwrap_problem

    autograder_root = Path(os.environ.get("AUTOGRADER_ROOT", "/autograder"))
    status = 0
    try:
        problem = bwrap_problem()
        if problem and not unsafe:
            results, status = refusal(problem), 1
            print(results["output"], file=sys.stderr)
        else:
            results = grade(assignment, root, autograder_root, unsandboxed=problem)
    except Exception as error:  # noqa: BLE001  (the grader's own failure: say so, loudly)
        traceback.print_exc()  # to Gradescope's log, which learners do not see
        results = {"score": 0.0, "tests": [], "output": (
            f"The autograder failed ({type(error).__name__}) before it could grade this "
            "submission. This is not a problem with your work: please tell your instructor.")}
        status = 1
    write_results(results, autograder_root)
    print(f"score {results['score']:g}")
    print(results["output"])
    for entry in results["tests"]:
        print(f"  {entry['score']:g}/{entry['max_score']:g} {entry['name'][:70]}"
              + ("" if entry["status"] == "passed" else f"\n      {entry['output'][:300]}"))
    return status


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m autograder.gradescope",
        description="Build a Gradescope autograder zip for one assignment into "
                    "ROOT/autograder/dist/.")
    parser.add_argument("assignment", help="a folder of solutions/, e.g. 02-numpy")
    parser.add_argument("--root", type=Path, default=REPOSITORY,
                        help="the course repository (default: this one)")
    parser.add_argument("--unsafe", action="store_true",
                        help="where bubblewrap cannot run, grade without the sandbox instead "
                             "of refusing (learners' code can then read the hidden tests)")
    parser.add_argument("--no-secret", action="store_true",
                        help="leave the course key out: hidden tests drawn from the published "
                             "seeds")
    parser.add_argument("--grade", action="store_true",
                        help="instead, grade the submission in $AUTOGRADER_ROOT/submission "
                             "(default /autograder): what run_autograder does on Gradescope")
    options = parser.parse_args(argv)
    if options.grade:
        return grade_and_report(options.assignment, options.root.resolve(),
                                unsafe=options.unsafe)
    key = None if options.no_secret else secret.course_key(
        secret.load_or_create(options.root.resolve() / "autograder"))
    target = build(options.assignment, options.root, unsafe=options.unsafe, key=key)
    print(f"wrote {target}" + (" (grades without the sandbox where bubblewrap cannot run)"
                               if options.unsafe else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
