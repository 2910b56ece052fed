"""The course's grader: ``make grade`` (grade.py) and the Gradescope export (gradescope.py).

The trust boundary is a folder: ``sandboxed/`` holds what runs inside the bubblewrap sandbox
(the sandbox mounts it, read-only, as one folder); everything else here runs in the trusted
grader. Which files make up the grader is read from the folders, never listed by hand:
:func:`grader_files` is both what a grade's fingerprint covers and what Gradescope's zip
carries.
"""

from __future__ import annotations

import os
from pathlib import Path

HERE = Path(__file__).resolve().parent
#: The code that runs inside the sandbox (see its __init__.py).
SANDBOXED = HERE / "sandboxed"
#: The parts of the shared package that grading uses: the sandbox is given these and nothing
#: else of ``convcourse`` (not the book's figures), and a grade depends on them.
CONVCOURSE_PARTS = ("__init__.py", "reference.py", "grading")


def package_files(folder: Path) -> list[Path]:
    """The Python files of the package in ``folder`` and of its sub-packages (the folders
    holding an ``__init__.py``), sorted. Anything else, such as the grader's working folders
    (submitted/, feedback/, ...), caches and the gradebook, is not part of it."""
    files = []
    for directory, subdirectories, names in os.walk(folder):
        subdirectories[:] = sorted(d for d in subdirectories
                                   if (Path(directory) / d / "__init__.py").is_file())
        files += [Path(directory) / name for name in sorted(names) if name.endswith(".py")]
    return files


def convcourse_parts(convcourse: Path) -> list[Path]:
    """The files of :data:`CONVCOURSE_PARTS` in the ``convcourse`` folder."""
    files = []
    for part in CONVCOURSE_PARTS:
        path = convcourse / part
        files += package_files(path) if path.is_dir() else [path]
    return files


def grader_files(root: Path) -> dict[str, Path]:
    """The grader of the course folder ``root``: each file's path relative to ``root`` (as
    Gradescope's zip names it) -> the file. That is every Python file of the ``autograder``
    package, ``sandboxed/`` included, and the parts of ``convcourse`` that grading uses."""
    files = [*package_files(root / "autograder"), *convcourse_parts(root / "convcourse")]
    return {path.relative_to(root).as_posix(): path for path in files}
