"""Reading notebooks: the instructor's (nbgrader's cell metadata, test cells, hidden tests) and
the learner's (finding the submitted file, reading it, and the program the sandbox runs).

What the sandbox runs (:func:`learner_program`): every code cell of the submission in its
order, except the graded test cells and the instructor's cells tagged ``skip-when-grading``
(demonstrations, timings and a training run that define nothing a test uses: no grader runs
them, plain nbgrader neither, as autograder/nbgrader_config.py tells its executor) or
``not-in-sandbox`` (the tests' own imports, which run beside the tests only: plain nbgrader,
which runs tests and answers in one kernel, runs them too), with locked cells put back as the
instructor wrote them (as nbgrader does), and the source's ``test-setup`` cells put back first
where the learner deleted them (unless tagged to stay out).

What the sandbox lacks (:func:`sandbox_lacks`): SciPy always; PyTorch too where the
instructor's notebook says so in its metadata, ``"convcourse": {"sandbox_lacks": ["torch"]}``
(the NumPy assignment).
"""

from __future__ import annotations

import re
from pathlib import Path

import nbformat

#: Cells of the source notebook that the grader runs before the tests (imports, helpers).
SETUP_TAG = "test-setup"
#: Locked cells no grader runs: they only demonstrate or time things.
SKIP_TAG = "skip-when-grading"
#: Locked cells that run beside the tests, never in the sandbox (the tests' own imports).
OUTSIDE_TAG = "not-in-sandbox"
MAX_NOTEBOOK_BYTES = 20 << 20
HIDDEN_TESTS = ("### BEGIN HIDDEN TESTS", "### END HIDDEN TESTS")


# --- the instructor's notebooks ------------------------------------------------------------------

def nbgrader_meta(cell) -> dict:
    meta = cell.get("metadata", {}).get("nbgrader", {}) if isinstance(cell, dict) else {}
    return meta if isinstance(meta, dict) else {}


def hidden_test_lines(cell) -> list[str]:
    """The non-blank lines of a test cell's hidden tests (none: the cell has no hidden tests)."""
    begin, end = HIDDEN_TESTS
    if begin not in cell.source:
        return []
    region = cell.source.split(begin, 1)[1].split(end, 1)[0]
    return [line.strip() for line in region.splitlines() if line.strip()]


def sandbox_lacks(notebook) -> tuple[str, ...]:
    """The packages that the sandbox grading this (instructor's) notebook lacks, SciPy first."""
    meta = notebook.metadata.get("convcourse", {})
    asked = meta.get("sandbox_lacks", []) if isinstance(meta, dict) else []
    return ("scipy", *sorted(set(asked) - {"scipy"}))


def grade_cells(notebook) -> list:
    return [c for c in notebook.cells if nbgrader_meta(c).get("grade")
            and not nbgrader_meta(c).get("solution") and c.cell_type == "code"]


def answer_names(notebook) -> list[str]:
    """The functions and classes the learner writes: the answer cells' grade_ids."""
    return [nbgrader_meta(c)["grade_id"] for c in notebook.cells
            if nbgrader_meta(c).get("solution") and c.cell_type == "code"]


# --- finding and reading the submission ----------------------------------------------------------

def submitted_notebooks(folder: Path) -> list[Path]:
    """The notebooks under ``folder``, shallowest first. Only plain files inside it count:
    a link could point at the solutions (or anywhere else on this machine)."""
    if not folder.is_dir() or folder.is_symlink():
        return []
    inside = folder.resolve()
    found = [path for path in folder.rglob("*.ipynb")
             if not any(part.startswith(".") or part == "__MACOSX"
                        for part in path.relative_to(folder).parts)
             and not path.is_symlink() and path.is_file()
             and path.resolve().is_relative_to(inside)]
    return sorted(found, key=lambda path: (len(path.parts), str(path)))


def _name_key(name: str) -> str:
    return re.sub(r"[^a-z0-9]", "", Path(name).stem.lower())


def choose_notebook(candidates: list[Path], expected: str, *, alone: bool) -> Path | None:
    """The submitted notebook to grade as ``expected``: one of that name; else one whose name
    contains it, give or take case and punctuation (``Conv2d_NumPy (1).ipynb``); else, where the
    assignment has one notebook, the only notebook submitted."""
    for path in candidates:
        if path.name == expected:
            return path
    key = _name_key(expected)
    for path in candidates:
        if key in _name_key(path.name):
            return path
    return candidates[0] if alone and len(candidates) == 1 else None


def read_submission(path: Path) -> nbformat.NotebookNode:
    """The submitted notebook, or ValueError saying why it cannot be read."""
    if not path.is_file():
        raise ValueError(f"no notebook named {path.name} was submitted")
    if path.stat().st_size > MAX_NOTEBOOK_BYTES:
        raise ValueError(f"{path.name} is larger than {MAX_NOTEBOOK_BYTES >> 20} MB")
    try:
        notebook = nbformat.reads(path.read_text(encoding="utf-8", errors="replace"),
                                  as_version=4)
        cells = notebook.cells
        assert isinstance(cells, list)
    except Exception as error:  # noqa: BLE001  (any way of not being a notebook)
        raise ValueError(f"{path.name} is not a valid Jupyter notebook ({type(error).__name__}: "
                         f"{str(error)[:300]})") from None
    return notebook


def cell_name(piece: dict) -> str:
    """How notes name a cell of the program: an instructor's cell by its name; a learner's own
    cell, which has none, by its place in the notebook (every cell counted from the top, as
    the label says) and its first line, since the feedback page shows no numbers."""
    label, source = str(piece.get("label", "")), str(piece.get("source", ""))
    if not label.isdigit():
        return f"cell {label}"
    first = next((line.strip() for line in source.splitlines() if line.strip()), "")
    return f"cell {label} from the top (it begins: {first[:60]})"


def learner_program(submission, source) -> list[dict]:
    """The cells the sandbox runs, in the submission's order (see the module's docstring)."""
    left_out = {nbgrader_meta(c)["grade_id"] for c in grade_cells(source)}
    left_out |= {nbgrader_meta(c).get("grade_id") for c in source.cells
                 if {SKIP_TAG, OUTSIDE_TAG} & set(c.metadata.get("tags", []))
                 and nbgrader_meta(c).get("locked")}
    locked = {nbgrader_meta(c)["grade_id"]: c.source for c in source.cells
              if c.cell_type == "code" and nbgrader_meta(c).get("locked")
              and not nbgrader_meta(c).get("grade") and not nbgrader_meta(c).get("solution")}
    program, seen = [], set()
    for index, cell in enumerate(submission.cells):
        if not isinstance(cell, dict) or cell.get("cell_type") != "code":
            continue
        grade_id = nbgrader_meta(cell).get("grade_id")
        grade_id = grade_id if isinstance(grade_id, str) else None
        if grade_id in left_out:
            continue
        code = locked[grade_id] if grade_id in locked else cell.get("source", "")
        seen.add(grade_id)
        program.append({"label": grade_id or f"{index + 1}", "source": str(code)})
    missing = [{"label": nbgrader_meta(c)["grade_id"], "source": c.source}
               for c in source.cells if SETUP_TAG in c.metadata.get("tags", [])
               and nbgrader_meta(c).get("grade_id") not in seen | left_out]
    return missing + program  # a deleted set-up cell (the imports) is put back first
