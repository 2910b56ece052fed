"""The ungraded cells of the solutions' notebooks, run as a learner runs them (every code cell
but the tests, in order, in one namespace): the speed cells of assignments 2 and 3 while a busy
loop holds every core (they warn and claim nothing), and the training run of assignment 4 (it
compares the two loss curves)."""

from __future__ import annotations

import contextlib
import io
import multiprocessing
import os
from pathlib import Path

import nbformat
import pytest
from course import SOLUTIONS
from test_timing import CLAIMS

from autograder.notebook import grade_cells


def run_ungraded(notebook_path: Path, edit=lambda label, source: source) -> dict[str, str]:
    """What each code cell but the tests printed, by its grade_id; ``edit(label, source)`` may
    change a cell's source first (fewer epochs)."""
    notebook = nbformat.read(notebook_path, as_version=4)
    tests = {id(cell) for cell in grade_cells(notebook)}
    namespace: dict = {"__name__": "__main__"}
    printed: dict[str, str] = {}
    for cell in notebook.cells:
        if cell.cell_type != "code" or id(cell) in tests:
            continue
        label = cell.metadata.get("nbgrader", {}).get("grade_id", "")
        with contextlib.redirect_stdout(io.StringIO()) as out:
            exec(compile(edit(label, cell.source), label, "exec"), namespace)  # noqa: S102
        printed[label] = out.getvalue()
    return printed


def spin() -> None:
    while True:
        pass


@contextlib.contextmanager
def every_core_busy():
    spinners = [multiprocessing.get_context("fork").Process(target=spin, daemon=True)
                for _ in range(len(os.sched_getaffinity(0)))]
    for spinner in spinners:
        spinner.start()
    try:
        yield
    finally:
        for spinner in spinners:
            spinner.kill()
            spinner.join()


@pytest.mark.slow
@pytest.mark.parametrize(("notebook", "cells"), [
    ("02-numpy/conv2d-numpy.ipynb",
     {"loops-are-slow", "einsum-optimize", "im2col-matmul", "benchmark"}),
    ("03-torch/conv2d-torch.ipynb", {"benchmark"}),
])
def test_the_speed_cells_warn_on_a_busy_machine_and_claim_nothing(notebook, cells):
    with every_core_busy():
        printed = run_ungraded(SOLUTIONS / notebook)
    speed = {label: text for label, text in printed.items() if "the time of" in text}
    assert set(speed) == cells
    for label, text in speed.items():
        verdicts = [line for line in text.splitlines() if "the time of" in line]
        assert all("Warning:" in line for line in verdicts), (label, text)
        assert not CLAIMS.search(text), (label, text)
    assert "cannot be told" in speed["benchmark"]  # the goal: neither met nor missed


@pytest.mark.slow
def test_the_training_run_of_assignment_4_compares_the_loss_curves():
    printed = run_ungraded(SOLUTIONS / "04-gradients/conv2d-backward.ipynb",
                           lambda label, source: source.replace("epochs=10", "epochs=2"))
    text = printed["training-run"]
    assert "after 2 epochs" in text and "largest gap between the curves" in text
    rows = [line.split() for line in text.splitlines() if line.strip()[:1].isdigit()]
    assert [int(row[0]) for row in rows] == [1, 2]
    library, yours = ([float(row[i]) for row in rows] for i in (1, 2))
    assert library[1] < library[0] and yours[1] < yours[0]  # both fall
    assert max(abs(a - b) for a, b in zip(library, yours, strict=True)) < 1e-3  # and agree
