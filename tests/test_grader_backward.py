"""Assignment 4 through `make grade`'s sandbox: the solution scores full marks, the release 0,
submissions that let PyTorch do the work score nothing for it, with the reason, and a classic
mistake is named.

What the sandbox must carry for this assignment, beyond assignments 1-3: a learner's
``autograd.Function`` (called as ``.apply``, its backward run once per gradcheck direction),
a test's function of ``x`` (a probe, by name) and the NumPy-only rule of ``conv2d_backward``.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
from course import NOTEBOOKS, ROOT, SOLUTIONS
from mistakes import backward as corpus

pytestmark = [pytest.mark.slow, pytest.mark.sandbox]

ASSIGNMENT, NOTEBOOK = "04-gradients", "conv2d-backward"

#: conv2d_backward by autograd of F.conv2d: the one rule, broken through PyTorch.
BY_AUTOGRAD = '''
def conv2d_backward(grad_out, x, weight, stride=1, padding=0, dilation=1, groups=1, bias=True):
    import torch
    x_t, w_t = torch.from_numpy(x).requires_grad_(), torch.from_numpy(weight).requires_grad_()
    out = torch.nn.functional.conv2d(x_t, w_t, None, stride, padding, dilation, groups)
    grad_x, grad_w = torch.autograd.grad(out, (x_t, w_t), torch.from_numpy(grad_out))
    return grad_x.numpy(), grad_w.numpy(), grad_out.sum(axis=(0, 2, 3)) if bias else None
'''
#: conv2d_backward through a torch reimplementation without any convolution operator.
BY_UNFOLD = '''
def conv2d_backward(grad_out, x, weight, stride=1, padding=0, dilation=1, groups=1, bias=True):
    import torch
    import torch.nn.functional as F
    x_t, w_t = torch.from_numpy(x).requires_grad_(), torch.from_numpy(weight).requires_grad_()
    columns = F.unfold(x_t, weight.shape[2:], dilation, padding, stride)
    out = (w_t.reshape(w_t.shape[0], -1) @ columns).reshape(grad_out.shape)
    grad_x, grad_w = torch.autograd.grad(out, (x_t, w_t), torch.from_numpy(grad_out))
    return grad_x.numpy(), grad_w.numpy(), grad_out.sum(axis=(0, 2, 3)) if bias else None
'''
#: NumpyConv2dFunction computing with F.conv2d forward and torch.nn.grad backward.
BY_LIBRARY = '''
class NumpyConv2dFunction(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
        ctx.save_for_backward(x, weight)
        ctx.options, ctx.has_bias = (stride, padding, dilation, groups), bias is not None
        return F.conv2d(x, weight, bias, stride, padding, dilation, groups)

    @staticmethod
    def backward(ctx, grad_output):
        x, weight = ctx.saved_tensors
        grad_x = torch.nn.grad.conv2d_input(x.shape, weight, grad_output, *ctx.options)
        grad_w = torch.nn.grad.conv2d_weight(x, weight.shape, grad_output, *ctx.options)
        grad_b = grad_output.sum((0, 2, 3)) if ctx.has_bias else None
        return grad_x, grad_w, grad_b, None, None, None, None
'''
BACKWARD_TESTS = {"test_backward_basic", "test_backward_bias", "test_backward_stride",
                  "test_backward_padding", "test_backward_dilation", "test_backward_groups",
                  "test_backward_unbatched", "test_backward_dtype", "test_backward_everything",
                  "test_backward_vectorised", "test_backward_refuses"}
FUNCTION_TESTS = {"test_function", "test_function_gradcheck", "test_training"}


def with_answers(**answers: str) -> nbformat.NotebookNode:
    """The solution notebook with some answer cells replaced."""
    notebook = nbformat.read(SOLUTIONS / ASSIGNMENT / f"{NOTEBOOK}.ipynb", as_version=4)
    for cell in notebook.cells:
        grade_id = cell.metadata.get("nbgrader", {}).get("grade_id")
        if grade_id in answers:
            cell.source = answers[grade_id]
    return notebook


@pytest.fixture(scope="module")
def results(tmp_path_factory) -> dict[str, dict]:
    """One sandboxed batch: each learner's per-test results."""
    tmp = tmp_path_factory.mktemp("backward")
    root, folder = tmp / "course", tmp / "submissions"
    for kind, source in (("solutions", SOLUTIONS), ("notebooks", NOTEBOOKS)):
        shutil.copytree(source / ASSIGNMENT, root / kind / ASSIGNMENT)
    learners = {
        "solved": with_answers(),
        "blank": nbformat.read(NOTEBOOKS / ASSIGNMENT / f"{NOTEBOOK}.ipynb", as_version=4),
        "by_autograd": with_answers(conv2d_backward=BY_AUTOGRAD),
        "by_unfold": with_answers(conv2d_backward=BY_UNFOLD),
        "by_library": with_answers(NumpyConv2dFunction=BY_LIBRARY),
        "kernel_flipped": with_answers(conv2d_backward=corpus.source("kernel_flipped")),
    }
    for student, notebook in learners.items():
        (folder / student).mkdir(parents=True)
        nbformat.write(notebook, folder / student / f"{NOTEBOOK}.ipynb")
    result = subprocess.run(
        [sys.executable, "-m", "autograder.grade", ASSIGNMENT, str(folder), "--root", str(root)],
        cwd=ROOT, env=dict(os.environ), text=True, capture_output=True, check=False)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    graded = {}
    for student in learners:
        path = Path(root, "autograder", "autograded", student, ASSIGNMENT, "result.json")
        graded[student] = json.loads(path.read_text())["notebooks"][NOTEBOOK]
    return graded


def scores(result: dict) -> dict[str, float]:
    return {test["grade_id"]: test["score"] for test in result["tests"]}


def messages(result: dict, tests: set[str]) -> str:
    return "\n".join(t["message"] or "" for t in result["tests"] if t["grade_id"] in tests)


def test_the_solution_scores_full_marks_in_the_sandbox(results):
    assert results["solved"]["score"] == results["solved"]["max_score"] > 0, results["solved"]
    assert results["solved"]["notes"] == []  # no cell failed in the sandbox


def test_the_release_scores_zero_and_says_what_is_not_written(results):
    assert results["blank"]["score"] == 0
    assert "not written yet" in messages(results["blank"], BACKWARD_TESTS)


@pytest.mark.parametrize("learner", ["by_autograd", "by_unfold"])
def test_a_backward_by_pytorch_scores_nothing_for_it(results, learner):
    got = scores(results[learner])
    assert all(got[test] == 0 for test in BACKWARD_TESTS), got
    # the honest parts still score (the Function runs this backward, so it may not)
    assert got["test_numerical_gradient"] > 0 and got["test_conv2d_numpy"] > 0, got
    assert "PyTorch operators" in messages(results[learner], BACKWARD_TESTS - {
        "test_backward_vectorised", "test_backward_refuses"})


def test_a_function_computed_by_library_convolutions_scores_nothing_for_it(results):
    got = scores(results["by_library"])
    assert all(got[test] == 0 for test in FUNCTION_TESTS), got
    assert all(got[test] > 0 for test in BACKWARD_TESTS), got
    assert "library convolution" in messages(results["by_library"], FUNCTION_TESTS)


def test_a_classic_mistake_is_named_in_the_feedback_and_costs_only_its_tests(results):
    """The backward corpus is named test by test in test_backward.py; here one mistake goes
    the instructor's way, through the sandbox."""
    got = scores(results["kernel_flipped"])
    failed = {test for test, score in got.items() if score == 0}
    assert failed and failed <= BACKWARD_TESTS | FUNCTION_TESTS, got  # the Function uses it
    assert corpus.MISTAKES["kernel_flipped"].feedback in messages(results["kernel_flipped"],
                                                                  BACKWARD_TESTS)
