"""Feedback names the mistake: every mistake of the corpus (tests/mistakes/) gets its sentence,
a correct output is never blamed, and odd returns get a plain sentence, never a traceback."""

from __future__ import annotations

import ast
import inspect

import numpy as np
import pytest
import torch
from mistakes import corpus

from convcourse.grading.cases import conv2d_cases
from convcourse.grading.checks import check_conv2d, check_conv2d_cases
from convcourse.grading.diagnose import MISTAKES, UNDECIDED, close, diagnose, mistake_outputs
from convcourse.reference import Conv2dCase, reference_conv2d

CORPUS = sorted(corpus.MISTAKES)
CASES = conv2d_cases(0)
CPU_FLOAT64 = [c for c in CASES if c.x.dtype == torch.float64 and c.x.device.type == "cpu"]
#: Every mistake the feedback promises to name has a file in the corpus.
REQUIRED = {
    "correct", "flipped_kernel", "padding_total", "dilation_off_by_one", "groups_ignored",
    "bias_missing", "bias_twice", "stride_dilation_swapped", "kernel_transposed",
    "channels_swapped", "wrong_dtype", "returns_none", "returns_list", "nan_output",
}
CASE_KEYS = {"x_shape", "weight_shape", "stride", "padding", "dilation", "groups", "bias",
             "padding_mode", "dtype"}


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny tensors: one thread is fastest, and threads thrash on a busy machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def inputs(case: dict):
    """The corpus file's case as NumPy arrays (seeded) and check_conv2d's keyword arguments."""
    rng = np.random.default_rng(0)
    dtype = case.get("dtype", "float64")
    x = rng.standard_normal(case["x_shape"]).astype(dtype)
    weight = rng.standard_normal(case["weight_shape"]).astype(dtype)
    bias = rng.standard_normal(case["weight_shape"][0]).astype(dtype) if case["bias"] else None
    arguments = {k: v for k, v in case.items()
                 if k not in ("x_shape", "weight_shape", "bias", "dtype")}
    return x, weight, bias, arguments


def test_the_corpus_has_every_promised_mistake():
    assert REQUIRED <= set(CORPUS)


@pytest.mark.parametrize("name", CORPUS)
def test_each_submission_is_self_contained_numpy(name):
    tree = ast.parse(corpus.source(name))
    imported = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            imported.add(node.module.split(".")[0])
    assert imported == {"numpy"}, f"{name} imports {sorted(imported)}: numpy only"
    parameters = inspect.signature(corpus.load(name)["conv2d_numpy"]).parameters
    assert [(p.name, p.default) for p in parameters.values()] == [
        ("x", inspect.Parameter.empty), ("weight", inspect.Parameter.empty), ("bias", None),
        ("stride", 1), ("padding", 0), ("dilation", 1), ("groups", 1),
        ("padding_mode", "zeros")]
    mistake = corpus.MISTAKES[name]
    assert mistake.feedback is None or (isinstance(mistake.feedback, str) and mistake.feedback)
    assert set(mistake.case) <= CASE_KEYS and {"x_shape", "weight_shape", "bias"} <= set(
        mistake.case)


@pytest.mark.parametrize("name", CORPUS)
def test_each_mistake_gets_its_feedback(name):
    mistake, conv2d_numpy = corpus.MISTAKES[name], corpus.load(name)["conv2d_numpy"]
    x, weight, bias, arguments = inputs(mistake.case)
    if mistake.feedback is None:
        check_conv2d(conv2d_numpy, x, weight, bias, **arguments)
        return
    with pytest.raises(AssertionError) as failure:
        check_conv2d(conv2d_numpy, x, weight, bias, **arguments)
    message = str(failure.value)
    assert mistake.feedback in message, f"{name}: {message}"
    assert "\n" not in message and "Traceback" not in message


def test_the_control_passes_the_whole_grid():
    control = corpus.load("correct")["conv2d_numpy"]
    check_conv2d_cases(control, conv2d_cases(0, devices=["cpu"]), kind="numpy")


@pytest.mark.parametrize("case", CASES, ids=[c.describe() for c in CASES])
def test_a_correct_output_is_never_blamed(case):
    expected = reference_conv2d(case)
    assert diagnose(expected, case) is None
    assert diagnose(expected.cpu().numpy(), case) is None
    # Computed another way: in float64 and rounded to the case's dtype, or nudged within
    # float64's tolerance.
    other = reference_conv2d(case.with_(x=case.x.double(), weight=case.weight.double(),
                                        bias=None if case.bias is None else case.bias.double()))
    assert diagnose(other.to(case.x.dtype), case) is None
    if case.x.dtype == torch.float64:
        assert diagnose(expected * (1 + 1e-9), case) is None


def test_mistakes_that_coincide_with_the_answer_are_no_candidates():
    x = torch.randn(1, 2, 6, 6, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    weight = torch.ones(3, 2, 3, 3, dtype=torch.float64)  # symmetric: flipped == not flipped
    case = Conv2dCase(x, weight, torch.zeros(3, dtype=torch.float64), padding=1)
    names = {mistake.name for mistake, _ in mistake_outputs(case)}
    assert not names & {"flipped kernel", "kernel transposed", "bias missing", "bias added twice"}
    assert "padding ignored" in names


@pytest.mark.parametrize("case", CPU_FLOAT64, ids=[c.describe() for c in CPU_FLOAT64])
def test_every_mistake_output_is_named(case):
    expected = reference_conv2d(case)
    outputs = mistake_outputs(case, expected)
    assert outputs
    for mistake, output in outputs:
        message = diagnose(output, case, expected)
        # The named mistake is this one, or another that gives exactly the same output.
        alike = [m.message(case) for m, o in outputs if o.shape == output.shape
                 and close(o, output)]
        assert message and any(advice in message for advice in alike), (mistake.name, message)


def test_every_mistake_in_the_table_shows_somewhere_in_the_grid():
    shown = {m.name for case in CPU_FLOAT64 for m, _ in mistake_outputs(case)}
    assert shown == {m.name for m in MISTAKES}


class _Unreadable:
    def __array__(self, *args, **kwargs):
        raise RuntimeError("nothing here")

    def __len__(self):
        raise RuntimeError("nothing here")


CASE = CASES[0]  # x (2, 3, 7, 7) float64, weight (4, 3, 3, 3), bias (4,)
RIGHT = reference_conv2d(CASE).numpy()
ODD = {
    "None": (None, "forget the `return`"),
    "a list of the right values": (RIGHT.tolist(), "whose values are right"),
    "a list of wrong values": ((2 * RIGHT).tolist(), "it returned a list"),
    "a ragged list": ([[1.0, 2.0], [3.0]], "it returned a list"),
    "a tuple": ((RIGHT, 1), "it returned a tuple of 2 items"),
    "a string": ("done", "it returned str"),
    "a dict": ({"out": RIGHT}, "it returned dict"),
    "a number": (3.5, "a single number"),
    "a NumPy scalar": (np.float64(2.0), "a single number"),
    "a 0-d array": (np.array(2.0), "summed everything into one number"),
    "a complex array": (RIGHT.astype(complex), "complex"),
    "an object array": (np.array([[1, 2], [3]], dtype=object), "Python objects"),
    "an object array of the right shape": (RIGHT.astype(object), "Python objects"),
    "a boolean array": (RIGHT > 0, "booleans"),
    "a text array": (np.array(["a", "b"]), "not numbers"),
    "an integer array": (RIGHT.astype(int), "truncated"),
    "NaN": (np.where(RIGHT > 1, np.nan, RIGHT), "NaN"),
    "inf": (np.where(RIGHT > 1, np.inf, RIGHT), "inf"),
    "float32 for float64": (RIGHT.astype(np.float32), "the dtype is float32, expected float64"),
    "float16 for float64": (RIGHT.astype(np.float16), "the dtype is float16"),
    "a huge array": (np.broadcast_to(0.0, (10**6, 10**6)), "expected (2, 4, 5, 5)"),
    "a huge array of rank 4": (np.broadcast_to(0.0, (10**4, 10**4, 5, 5)), "x.shape[0] = 2"),
    "an unreadable object": (_Unreadable(), "it returned _Unreadable"),
    "a generator": ((v for v in RIGHT), "it returned generator"),
    "a tensor elsewhere": (torch.empty(RIGHT.shape, device="meta"), "x is on cpu"),
    "a 2-d slice": (RIGHT[0, 0], "2 axes instead of 4"),
}


@pytest.mark.parametrize("value, phrase", ODD.values(), ids=ODD.keys())
def test_odd_returns_get_a_plain_sentence(value, phrase):
    message = diagnose(value, CASE)
    assert isinstance(message, str) and phrase in message, message
    assert "\n" not in message and "Traceback" not in message and message.endswith(".")


@pytest.mark.parametrize("value", [RIGHT, torch.from_numpy(RIGHT).requires_grad_(),
                                   RIGHT.astype(">f8"), np.broadcast_to(RIGHT, RIGHT.shape)],
                         ids=["array", "tensor needing grad", "big-endian", "read-only view"])
def test_right_values_in_any_form_of_the_right_dtype_pass(value):
    assert diagnose(value, CASE) is None


@pytest.mark.parametrize("returned, phrase", [
    ("text", "it returned str"), (float("nan"), "a single number"), (None, "return"),
], ids=["str", "nan", "None"])
def test_check_conv2d_reports_odd_returns_in_one_sentence(returned, phrase):
    x, weight, bias = CASE.inputs("numpy")
    with pytest.raises(AssertionError) as failure:
        check_conv2d(lambda *args, **kwargs: returned, x, weight, bias)
    assert phrase in str(failure.value) and "\n" not in str(failure.value)


def test_a_wrong_shape_always_gets_the_expected_shape_and_the_formula():
    case = CASES[3]  # stride (2, 1), padding 1
    message = diagnose(np.zeros((2, 3, 6, 7)), case)
    assert "expected (2, 3, 5, 8)" in message
    assert "floor((9 + 2*1 - 1*(3 - 1) - 1) / 2) + 1 = 5" in message
    assert "W_out = floor((8 + 2*1 - 1*(3 - 1) - 1) / 1) + 1 = 8" in message


def test_a_wrong_shape_alone_names_no_mistake_and_is_described():
    """Zeros of the size that 'padding ignored' gives: many slips give that size, and the
    values are not that mistake's, so the size is described, not blamed on padding."""
    case = CASES[3]  # padding 1: without it, H_out = 4 and W_out = 6
    message = diagnose(np.zeros((2, 3, 4, 6)), case)
    assert "you did not pad x" not in message and "likely cause" not in message
    assert "Your H_out = 4 is 1 row short along the height (nn.Conv2d gives 5)" in message
    assert "Your W_out = 6 is 2 columns short along the width (nn.Conv2d gives 8)" in message


def test_two_mistakes_with_one_output_are_told_apart_by_a_probe_or_not_named():
    """With padding 1, 'padding ignored' and 'padding read as the total' (1 // 2 = 0) give the
    same output: from the output alone neither is named; running the function again on a
    probe with more padding tells which."""
    case = CASES[3]  # padding 1
    unpadded = reference_conv2d(case.with_(padding=0))
    undecided = diagnose(unpadded, case)
    assert UNDECIDED in undecided and "Your output matches a known mistake" not in undecided
    assert "you did not pad x" in undecided and "as if `padding` were the total" in undecided

    def never_pads(x, weight, bias=None, padding=0, **arguments):
        return corpus.load("correct")["conv2d_numpy"](x, weight, bias, padding=0, **arguments)

    x, weight, bias = case.inputs("numpy")
    with pytest.raises(AssertionError) as failure:
        check_conv2d(never_pads, x, weight, bias, **case.arguments())
    named = str(failure.value)
    assert "Your output matches a known mistake: you did not pad x" in named
    assert UNDECIDED not in named and "as if `padding` were the total" not in named


def test_where_the_values_differ_gives_a_hint():
    # (x (2, 2, 9, 8), padding 1, stride (2, 1)): wrong values only where the window sees padding
    case = CASES[3]
    expected = reference_conv2d(case)
    border = expected.clone()
    border[..., 0, :] += 1
    assert "overlaps the padding" in diagnose(border, case)
    bias_elsewhere = expected + torch.tensor([0.5, 0.0, 0.0], dtype=torch.float64)[:, None, None]
    assert "points at the bias" in diagnose(bias_elsewhere, case)
    second_image = expected.clone()
    second_image[1] *= 1.5
    assert "only image 1 of 2 is wrong" in diagnose(second_image, case)
