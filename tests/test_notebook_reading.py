"""Reading notebooks (autograder/notebook.py): which submitted file is graded as which
notebook, what makes a file unreadable, and the program the sandbox runs: the submission's
code cells in order, locked cells as the instructor wrote them, demonstrations and test
cells left out, deleted set-up cells put back."""

from __future__ import annotations

import os
from pathlib import Path

import nbformat
import pytest

from autograder import notebook
from autograder.notebook import (
    answer_names,
    cell_name,
    choose_notebook,
    grade_cells,
    hidden_test_lines,
    learner_program,
    read_submission,
    sandbox_lacks,
    submitted_notebooks,
)

NOTEBOOK = "conv2d-numpy.ipynb"


def cell(source: str, *, tags: tuple[str, ...] = (), **nbgrader) -> nbformat.NotebookNode:
    made = nbformat.v4.new_code_cell(source)
    if nbgrader:
        made.metadata["nbgrader"] = {"grade": False, "solution": False, "locked": False,
                                     **nbgrader}
    if tags:
        made.metadata["tags"] = list(tags)
    return made


def test_the_notebook_is_found_by_its_name_give_or_take_case_and_punctuation():
    exact, copy, other = Path("a/conv2d-numpy.ipynb"), Path("Conv2d_NumPy (1).ipynb"), \
        Path("homework.ipynb")
    assert choose_notebook([copy, exact, other], NOTEBOOK, alone=True) == exact
    assert choose_notebook([other, copy], NOTEBOOK, alone=True) == copy
    assert choose_notebook([other], NOTEBOOK, alone=True) == other  # the only one submitted
    assert choose_notebook([other], NOTEBOOK, alone=False) is None
    assert choose_notebook([other, Path("scratch.ipynb")], NOTEBOOK, alone=True) is None
    assert choose_notebook([], NOTEBOOK, alone=True) is None


def test_only_plain_notebooks_inside_the_folder_count_shallowest_first(tmp_path):
    folder = tmp_path / "submission"
    for name in ("deep/er/b.ipynb", "deep/a.ipynb", "top.ipynb", ".hidden/x.ipynb",
                 "__MACOSX/top.ipynb", "deep/.ipynb_checkpoints/a-checkpoint.ipynb",
                 "notes.txt"):
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_text("{}")
    (tmp_path / "solution.ipynb").write_text("{}")
    os.symlink(tmp_path / "solution.ipynb", folder / "linked.ipynb")
    os.symlink(tmp_path, folder / "linked-folder")
    found = [p.relative_to(folder).as_posix() for p in submitted_notebooks(folder)]
    assert found == ["top.ipynb", "deep/a.ipynb", "deep/er/b.ipynb"]


def test_a_missing_or_linked_submission_folder_has_no_notebooks(tmp_path):
    assert submitted_notebooks(tmp_path / "nothing") == []
    (tmp_path / "real").mkdir()
    (tmp_path / "real" / "a.ipynb").write_text("{}")
    os.symlink(tmp_path / "real", tmp_path / "link")
    assert submitted_notebooks(tmp_path / "link") == []


def test_an_unreadable_submission_says_why(tmp_path, monkeypatch):
    with pytest.raises(ValueError, match="no notebook named a.ipynb was submitted"):
        read_submission(tmp_path / "a.ipynb")
    broken = tmp_path / "broken.ipynb"
    broken.write_text('{"cells": [oops')
    with pytest.raises(ValueError, match=r"broken.ipynb is not a valid Jupyter notebook \("):
        read_submission(broken)
    not_a_notebook = tmp_path / "list.ipynb"
    not_a_notebook.write_text("[1, 2, 3]")
    with pytest.raises(ValueError, match="not a valid Jupyter notebook"):
        read_submission(not_a_notebook)
    fine = tmp_path / "fine.ipynb"
    nbformat.write(nbformat.v4.new_notebook(cells=[cell("x = 1")]), fine)
    assert read_submission(fine).cells[0].source == "x = 1"
    monkeypatch.setattr(notebook, "MAX_NOTEBOOK_BYTES", 10)
    with pytest.raises(ValueError, match="fine.ipynb is larger than"):
        read_submission(fine)


SOURCE = nbformat.v4.new_notebook(cells=[
    cell("import numpy as np\n", tags=("test-setup",), grade_id="imports", locked=True),
    cell("def f(x):\n    ### BEGIN SOLUTION\n    return x\n    ### END SOLUTION\n",
         grade_id="f", solution=True),
    cell("CONSTANT = 3  # the instructor's\n", grade_id="constant", locked=True),
    cell("%timeit f(1)\n", tags=("skip-when-grading",), grade_id="timing", locked=True),
    cell('"""f is right."""\nassert f(1) == 1\n### BEGIN HIDDEN TESTS\nassert f(2) == 2\n\n'
         "### END HIDDEN TESTS\n", grade_id="test_f", grade=True, locked=True, points=2),
    nbformat.v4.new_markdown_cell("Some prose."),
])


def test_the_instructors_notebook_is_read_for_answers_tests_and_hidden_tests():
    assert answer_names(SOURCE) == ["f"]
    assert [c.metadata["nbgrader"]["grade_id"] for c in grade_cells(SOURCE)] == ["test_f"]
    assert hidden_test_lines(grade_cells(SOURCE)[0]) == ["assert f(2) == 2"]
    assert hidden_test_lines(SOURCE.cells[1]) == []


def test_the_sandbox_runs_the_learners_cells_with_the_locked_ones_as_written():
    submission = nbformat.v4.new_notebook(cells=[
        cell("import numpy as np\n", grade_id="imports", locked=True),
        cell("def f(x):\n    return x + 0\n", grade_id="f", solution=True),
        cell("CONSTANT = 1000  # changed by the learner\n", grade_id="constant", locked=True),
        cell("%timeit f(1)\n", grade_id="timing", locked=True),
        cell("assert True  # the learner emptied the test\n", grade_id="test_f", grade=True),
        nbformat.v4.new_markdown_cell("notes"),
        cell("scratch = f(2)\n"),
    ])
    assert learner_program(submission, SOURCE) == [
        {"label": "imports", "source": "import numpy as np\n"},
        {"label": "f", "source": "def f(x):\n    return x + 0\n"},
        {"label": "constant", "source": "CONSTANT = 3  # the instructor's\n"},
        {"label": "7", "source": "scratch = f(2)\n"},
    ]


def test_a_deleted_set_up_cell_is_put_back_first():
    submission = nbformat.v4.new_notebook(cells=[
        cell("def f(x):\n    return np.asarray(x)\n", grade_id="f", solution=True)])
    assert learner_program(submission, SOURCE) == [
        {"label": "imports", "source": "import numpy as np\n"},
        {"label": "f", "source": "def f(x):\n    return np.asarray(x)\n"},
    ]


def test_the_tests_own_imports_run_beside_the_grader_never_in_the_sandbox():
    reference = cell("import torch\n", tags=("test-setup", "not-in-sandbox"),
                     grade_id="reference", locked=True)
    source = nbformat.v4.new_notebook(cells=[*SOURCE.cells[:1], reference, *SOURCE.cells[1:]])
    kept = cell("def f(x):\n    return x\n", grade_id="f", solution=True)
    for submission in ([kept], [reference, kept]):  # deleted, or kept by the learner
        program = learner_program(nbformat.v4.new_notebook(cells=submission), source)
        assert [piece["label"] for piece in program] == ["imports", "f"]


def test_the_instructors_notebook_says_what_its_sandbox_lacks():
    assert sandbox_lacks(SOURCE) == ("scipy",)
    numpy_only = nbformat.v4.new_notebook(metadata={"convcourse": {"sandbox_lacks": ["torch"]}})
    assert sandbox_lacks(numpy_only) == ("scipy", "torch")
    numpy_only.metadata["convcourse"] = "torch"  # not the documented shape: nothing asked
    assert sandbox_lacks(numpy_only) == ("scipy",)
    course = Path(__file__).resolve().parents[1]
    assert {path.parent.name for path in course.glob("solutions/*/*.ipynb")
            if "torch" in sandbox_lacks(nbformat.read(path, as_version=4))} == {"02-numpy"}


@pytest.mark.parametrize("label", ["setup", "4", "113"])
def test_notes_name_a_cell_as_the_learner_sees_it(label):
    name = cell_name({"label": label, "source": "\n  x = compute()  \nmore\n"})
    assert name == (f"cell {label} from the top (it begins: x = compute())"
                    if label.isdigit() else f"cell {label}")


def test_odd_cells_are_read_as_plain_code_or_skipped():
    submission = nbformat.v4.new_notebook(cells=[cell("a = 1\n", grade_id=["not", "a", "str"])])
    submission.cells.append(nbformat.NotebookNode({"cell_type": "code", "source": "b = 2\n",
                                                   "metadata": {"nbgrader": "not a dict"}}))
    assert [step["label"] for step in learner_program(submission, SOURCE)] == ["imports", "1",
                                                                                "2"]
