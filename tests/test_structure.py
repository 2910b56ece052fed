"""The structural diagnosis (convcourse.grading.structure): mistakes outside the table of known
mistakes are named by how the output relates to the right one, a crash by the learner's own
line, and a correct output is never blamed."""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch
from mistakes import unlisted
from mistakes.corpus import load

from autograder.replies import LearnerFrame
from convcourse.grading.cases import conv2d_cases
from convcourse.grading.checks import LearnerRaised, call_learner, check_conv2d, learner_line
from convcourse.grading.diagnose import diagnose, mistake_outputs
from convcourse.grading.structure import explain_shape, explain_values
from convcourse.reference import TOLERANCES, Conv2dCase, as_tensor, reference_conv2d

NAMES = sorted(unlisted.UNLISTED)
CPU = [c for c in conv2d_cases(0) if c.x.device.type == "cpu"]
#: What nn.Conv2d's size formula reads like in a message (removed before measuring).
FORMULA = re.compile(r"nn\.Conv2d gives H_out = .*?, and likewise W_out = [^.]*\.")


@pytest.fixture(autouse=True)
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def inputs(case: dict):
    """The mistake's case as seeded NumPy arrays and conv2d's keyword arguments."""
    rng = np.random.default_rng(0)
    dtype = case.get("dtype", "float64")
    x = rng.standard_normal(case["x_shape"]).astype(dtype)
    weight = rng.standard_normal(case["weight_shape"]).astype(dtype)
    bias = rng.standard_normal(case["weight_shape"][0]).astype(dtype) if case["bias"] else None
    arguments = {k: v for k, v in case.items()
                 if k not in ("x_shape", "weight_shape", "bias", "dtype")}
    return x, weight, bias, arguments


def feedback(name: str) -> str:
    """The diagnosis of mistake ``name`` without the call it describes and without the size
    formula: what is left must name the culprit on its own."""
    mistake = unlisted.UNLISTED[name]
    conv2d_numpy = load(name, unlisted.source(name))["conv2d_numpy"]
    x, weight, bias, arguments = inputs(mistake.case)
    case = Conv2dCase(as_tensor(x), as_tensor(weight), None if bias is None else as_tensor(bias),
                      **arguments)
    try:
        output = call_learner(conv2d_numpy, x.copy(), weight.copy(),
                              None if bias is None else bias.copy(), **arguments)
    except LearnerRaised as crash:
        return str(crash)
    message = diagnose(output, case)
    assert message, f"{name}: its output passed"
    return FORMULA.sub("", message)


@pytest.mark.parametrize("name", NAMES)
def test_no_unlisted_mistake_is_in_the_table(name):
    """Else it would be named by the table, and would measure nothing here."""
    mistake = unlisted.UNLISTED[name]
    conv2d_numpy = load(name, unlisted.source(name))["conv2d_numpy"]
    x, weight, bias, arguments = inputs(mistake.case)
    case = Conv2dCase(as_tensor(x), as_tensor(weight), None if bias is None else as_tensor(bias),
                      **arguments)
    try:
        output = torch.from_numpy(np.asarray(conv2d_numpy(x, weight, bias, **arguments)))
    except ValueError:
        return  # a crash: no output to compare
    tolerance = TOLERANCES[case.x.dtype]
    matched = [m.name for m, o in mistake_outputs(case) if o.shape == output.shape
               and torch.allclose(o.double(), output.double(), **tolerance)]
    assert matched == []


@pytest.mark.parametrize("name", [
    pytest.param(name, marks=() if unlisted.UNLISTED[name].named else pytest.mark.xfail(
        strict=True, reason="not named yet")) for name in NAMES])
def test_an_unlisted_mistake_is_named(name):
    message = feedback(name)
    assert unlisted.UNLISTED[name].feedback in message, message
    assert "\n" not in message and "Traceback" not in message


def test_most_unlisted_mistakes_are_named():
    """The measure: of the mistakes the table does not list, the share whose feedback names
    the culprit once the call and the formula are taken out."""
    named = [name for name in NAMES if unlisted.UNLISTED[name].feedback in feedback(name)]
    assert len(NAMES) >= 12
    assert len(named) / len(NAMES) >= 0.75, sorted(set(NAMES) - set(named))


@pytest.mark.parametrize("case", CPU, ids=[c.describe() for c in CPU])
def test_no_rule_blames_a_correct_output(case):
    expected = reference_conv2d(case)
    tolerance = TOLERANCES[case.x.dtype]
    assert explain_values(expected.double(), case, expected, tolerance) is None
    assert explain_shape(tuple(expected.shape), case, tuple(expected.shape)) is None


def case_of(*shape, weight=(3, 2, 3, 3), bias=True, **arguments) -> Conv2dCase:
    generator = torch.Generator().manual_seed(1)

    def draw(*size):
        return torch.randn(*size, generator=generator, dtype=torch.float64)

    return Conv2dCase(draw(*shape), draw(*weight), draw(weight[0]) if bias else None,
                      **arguments)


def explained(case: Conv2dCase, values: torch.Tensor) -> str | None:
    return explain_values(values, case, reference_conv2d(case), TOLERANCES[torch.float64])


def test_a_factor_is_named_with_what_it_equals():
    case = case_of(1, 1, 6, 6, weight=(2, 1, 3, 3), bias=False)
    assert "1/9 times" in explained(case, reference_conv2d(case) / 9)
    assert "kH·kW" in explained(case_of(1, 2, 6, 6, bias=False),
                                reference_conv2d(case_of(1, 2, 6, 6, bias=False)) / 9)
    assert "2 times the right one" in explained(case, 2 * reference_conv2d(case))


def test_an_activation_before_the_bias_is_named():
    case = case_of(1, 2, 6, 6)
    expected = reference_conv2d(case)
    bias = case.bias[:, None, None]
    assert "tanh to the output (before adding the bias)" in explained(
        case, torch.tanh(expected - bias) + bias)


def test_bfloat16_rounding_is_named_for_a_float32_case():
    case = case_of(1, 2, 6, 6)
    case = case.with_(x=case.x.float(), weight=case.weight.float(), bias=case.bias.float())
    rounded = reference_conv2d(case.with_(x=case.x.bfloat16().float(),
                                          weight=case.weight.bfloat16().float()))
    message = explain_values(rounded.double(), case, reference_conv2d(case),
                             TOLERANCES[torch.float32])
    assert "the rounding of bfloat16" in message


def test_a_shift_without_bias_is_named():
    case = case_of(1, 2, 6, 6, bias=False)
    shifted = reference_conv2d(case) + torch.tensor([0.5, 1.0, -2.0], dtype=torch.float64)[
        :, None, None]
    assert "although bias is None" in explained(case, shifted)


def test_each_wrong_axis_is_explained_and_the_right_ones_are_named():
    case = case_of(1, 2, 9, 8, stride=2, padding=1)
    expected = tuple(reference_conv2d(case).shape)  # (1, 3, 5, 4)
    message = explain_shape((1, 3, 5, 8), case, expected)
    assert "W_out = 8 is what stride 1 gives along the width" in message
    assert "as if stride were ignored" in message and "(N, C_out, H_out are right.)" in message
    assert "x's number of channels C_in" in explain_shape((1, 2, 5, 4), case, expected)
    swapped = case_of(1, 2, 9, 8, stride=(2, 1), padding=1)  # expected (1, 3, 5, 8)
    assert "you passed stride=(2, 1): is the pair read as (width, height)?" in explain_shape(
        (1, 3, 9, 4), swapped, (1, 3, 5, 8))


def test_a_crash_names_the_learners_line_and_no_frame_of_the_checks():
    text = ("import numpy as np\n\ndef conv2d_numpy(x, weight, bias=None, **arguments):\n"
            "    flat = weight.reshape(5, -1)\n    return flat\n")
    conv2d_numpy = load("crash", text)["conv2d_numpy"]
    with pytest.raises(AssertionError) as failure:
        check_conv2d(conv2d_numpy, np.ones((1, 2, 5, 5)), np.ones((3, 2, 3, 3)))
    message = str(failure.value)
    assert "raised ValueError" in message
    assert "line 4 of <mistake crash> (in conv2d_numpy): `flat = weight.reshape(5, -1)`" in message
    assert "checks.py" not in message and "numpy/" not in message


def test_a_crash_in_the_graders_cells_is_never_shown():
    """The grader names its test cells <test>: a frame there is never the learner's."""
    code = compile("def hidden(x):\n    raise KeyError('secret line')\n", "<test>", "exec")
    namespace: dict = {}
    exec(code, namespace)  # noqa: S102  (a stand-in for a hidden test's helper)
    with pytest.raises(LearnerRaised) as failure:
        call_learner(namespace["hidden"], 1)
    assert "raised KeyError" in str(failure.value) and "(at " not in str(failure.value)


def test_a_sandboxed_crash_brings_its_learners_frames():
    """A stand-in's exception carries the sandbox's frames (cells named <cell label>)."""
    error = RuntimeError("boom")
    error.learner_frames = (LearnerFrame("conv2d_numpy", 12, "conv2d_numpy", "out = x @ w"),)
    assert learner_line(error) == "line 12 of cell conv2d_numpy (in conv2d_numpy): `out = x @ w`"
