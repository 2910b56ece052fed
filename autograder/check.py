"""``make check``: a self-paced learner grades their own notebook, hidden tests included.

    python -m autograder.check NOTEBOOK [--root ROOT]

The notebook's assignment is found from its path (``notebooks/02-numpy/...``) or, failing
that, from its name (``conv2d-numpy.ipynb`` belongs to 02-numpy). It is graded exactly as
``make grade`` grades a submission (:func:`autograder.score.grade_notebook`: the learner's
cells in the bubblewrap sandbox, every test here), and each test's points and feedback are
printed. The hidden tests draw their inputs from the published seeds, as the notebook's own
test cells do: a learner has no course secret. Where bubblewrap cannot run, the notebook runs
without the sandbox, and this says so: for your own notebook on your own machine that is
acceptable, for anyone else's it is not (use ``make grade``).
"""

from __future__ import annotations

import argparse
import sys
import textwrap
from pathlib import Path

import nbformat

from autograder import secret

REPOSITORY = Path(__file__).resolve().parents[1]


def find_assignment(notebook: Path, root: Path) -> tuple[str, str]:
    """``(assignment, notebook name)`` of the course in ``root`` that ``notebook`` is a copy of:
    by the folder it is in where that is an assignment's, else by its file name."""
    by_assignment: dict[str, list[str]] = {}
    for path in sorted((root / "solutions").glob("*/*.ipynb")):
        by_assignment.setdefault(path.parent.name, []).append(path.stem)
    if not by_assignment:
        raise SystemExit(f"check: no assignments in {root / 'solutions'}")
    for folder in notebook.resolve().parents:
        if folder.name in by_assignment:
            names = by_assignment[folder.name]
            if notebook.stem in names:
                return folder.name, notebook.stem
            if len(names) == 1:
                return folder.name, names[0]
    owners = [a for a, names in by_assignment.items() if notebook.stem in names]
    if len(owners) == 1:
        return owners[0], notebook.stem
    known = ", ".join(f"{a}/{n}.ipynb" for a, names in by_assignment.items() for n in names)
    raise SystemExit(f"check: {notebook} is not one of the course's notebooks ({known}): keep "
                     "its name, or keep it in its assignment's folder (notebooks/<assignment>/)")


def sandboxed() -> tuple[bool, str]:
    """Whether to use the sandbox, and the line that says so."""
    from autograder.sandbox import bwrap_problem

    problem = bwrap_problem()
    if problem is None:
        return True, "Your code runs in the bubblewrap sandbox, as when it is graded."
    return False, (f"NOTE: {problem}; so your code runs WITHOUT the sandbox, as a plain process "
                   "with your rights. That is fine for your own notebook on your own machine; "
                   "never check someone else's notebook this way.")


def report(result, *, assignment: str, notebook: Path) -> str:
    """The terminal report: each test's points, and the feedback of those that failed."""
    lines = [f"{notebook} graded as {assignment}/{result.name}.ipynb, hidden tests included:"]
    if result.problem:
        lines.append(f"  not graded: {result.problem}")
    for test in result.tests:
        mark = "ok  " if test.message is None else "FAIL"
        lines.append(f"  {mark} {test.score:g}/{test.points:g}  {test.grade_id}")
        if test.message is not None and not result.problem:
            shown = test.message if len(test.message) <= 1500 else test.message[:1500] + " …"
            lines += textwrap.indent(textwrap.fill(shown, 92, replace_whitespace=False)
                                     if "\n" not in shown else shown, " " * 9).splitlines()
    lines += [f"  note: {note}" for note in result.notes]
    lines.append(f"Score: {result.score:g} of {result.max_score:g} points.")
    return "\n".join(lines)


def check(notebook: Path, root: Path = REPOSITORY) -> tuple[object, str]:
    """Grade ``notebook`` against its assignment; the result and the report to print."""
    from autograder.score import grade_notebook

    assignment, name = find_assignment(notebook, root)
    source = nbformat.read(root / "solutions" / assignment / f"{name}.ipynb", as_version=4)
    release = nbformat.read(root / "notebooks" / assignment / f"{name}.ipynb", as_version=4)
    isolated, how = sandboxed()
    secret.use_key(None)  # the published seeds: what the learner's own test cells draw
    result = grade_notebook(source, release, notebook, name=name, isolated=isolated)
    return result, how + "\n" + report(result, assignment=assignment, notebook=notebook)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m autograder.check", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("notebook", type=Path, help="your notebook, e.g. "
                        "notebooks/02-numpy/conv2d-numpy.ipynb")
    parser.add_argument("--root", type=Path, default=REPOSITORY,
                        help="the course folder (default: this repository)")
    args = parser.parse_args(argv)
    if not args.notebook.is_file():
        print(f"check: {args.notebook} is not a file", file=sys.stderr)
        return 2
    _, text = check(args.notebook, args.root.resolve())
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
