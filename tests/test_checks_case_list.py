"""The checks' shared mechanisms: one way to check many cases (``check_all``), one sign of an
unwritten function (``NotWritten``), one way to expect a ``ValueError`` (``refusal_problem``),
and the timings of the speed cells."""

from __future__ import annotations

import numpy as np
import pytest
from mistakes import correct

from convcourse.grading.cases import conv2d_cases
from convcourse.grading.checks import (
    LearnerRaised,
    NotWritten,
    about,
    call_learner,
    check_all,
    check_conv2d,
    check_conv2d_cases,
    check_refuses,
    check_shapes,
    is_stub,
    refusal_problem,
)
from convcourse.grading.timing import medians, seconds_for_one_call


def stub(*args, **kwargs):
    raise NotImplementedError()


class Recorder:
    """A ``check_one`` that records the items it saw and fails on those in ``failing``, by
    raising for even items and by returning the problem for odd ones."""

    def __init__(self, failing):
        self.failing, self.seen = set(failing), []

    def __call__(self, item):
        self.seen.append(item)
        if item not in self.failing:
            return None
        if item % 2 == 0:
            raise AssertionError(f"item {item} is wrong")
        return f"item {item} is wrong"


# --- check_all -------------------------------------------------------------------------------

def test_check_all_runs_every_item_when_all_pass():
    check = Recorder(failing=[])
    check_all(iter(range(7)), check)  # any iterable, a generator included
    assert check.seen == list(range(7))


def test_check_all_stops_at_the_show_th_failure_and_says_what_was_not_run():
    check = Recorder(failing=[1, 4, 6, 8])
    with pytest.raises(AssertionError) as failure:
        check_all(range(10), check, what="widgets", show=3)
    assert check.seen == list(range(7))  # items 7, 8 and 9 never ran
    assert str(failure.value) == ("3 of the first 7 of 10 widgets failed (the other 3 were not "
                                  "run):\n- item 1 is wrong\n- item 4 is wrong\n- item 6 is wrong")
    assert type(failure.value) is AssertionError


def test_check_all_lists_every_failure_when_there_are_fewer_than_show():
    check = Recorder(failing=[2, 5])
    with pytest.raises(AssertionError) as failure:
        check_all(range(6), check)
    assert check.seen == list(range(6))
    assert str(failure.value) == "2 of 6 cases failed:\n- item 2 is wrong\n- item 5 is wrong"


def test_check_all_stopping_at_the_last_item_leaves_nothing_unrun():
    check = Recorder(failing=[0, 1, 2])
    with pytest.raises(AssertionError, match=r"^3 of 3 cases failed:\n") as failure:
        check_all(range(3), check)
    assert "not run" not in str(failure.value)


def test_check_all_raises_not_written_at_once_and_as_it_is():
    seen = []
    unwritten = NotWritten(stub)

    def check_one(item):
        seen.append(item)
        if item == 2:
            raise unwritten
        if item == 1:
            return "item 1 is wrong"
        return None

    with pytest.raises(NotWritten) as failure:
        check_all(range(5), check_one)
    assert failure.value is unwritten and seen == [0, 1, 2]


def test_check_all_does_not_swallow_other_exceptions():
    def check_one(item):
        raise KeyError(item)

    with pytest.raises(KeyError):
        check_all([1], check_one)


def test_case_lists_stop_at_the_third_wrong_case():
    cases = conv2d_cases(0, devices=["cpu"])

    def no_bias(x, weight, bias=None, **arguments):
        return correct.conv2d_numpy(x, weight, None, **arguments)

    with pytest.raises(AssertionError) as failure:
        check_conv2d_cases(no_bias, cases, kind="numpy")
    run = [i for i, case in enumerate(cases) if case.bias is not None][2] + 1
    message = str(failure.value)
    assert message.startswith(f"3 of the first {run} of {len(cases)} cases failed (the other "
                              f"{len(cases) - run} were not run):\n- no_bias(x ")
    assert message.count("\n- ") == 3 and message.count("you did not add it") == 3


# --- NotWritten ------------------------------------------------------------------------------

def test_the_stub_is_not_written_and_fails_as_an_assertion():
    assert is_stub(NotImplementedError()) and not is_stub(NotImplementedError("later"))
    with pytest.raises(NotWritten) as failure:
        call_learner(stub, 1)
    assert isinstance(failure.value, AssertionError)
    assert str(failure.value) == ("stub is not written yet (it raises NotImplementedError): "
                                  "replace its body.")
    assert failure.value.__cause__ is None


def test_other_exceptions_of_the_learner_are_reported_not_as_unwritten():
    def unfinished(x):
        raise NotImplementedError("the strides are not written yet")

    def broken(x):
        return x[5]

    for fn, words in [(unfinished, "unfinished raised NotImplementedError: the strides are "
                                   "not written yet"),
                      (broken, "broken raised IndexError")]:
        with pytest.raises(LearnerRaised) as failure:
            call_learner(fn, [1, 2])
        assert not isinstance(failure.value, NotWritten)
        assert str(failure.value).startswith(words)


def test_about_prefixes_failures_but_not_not_written():
    with pytest.raises(AssertionError, match=r"^f\(1\): it is wrong$"):
        with about("f(1)"):
            raise AssertionError("it is wrong")
    unwritten = NotWritten(stub)
    with pytest.raises(NotWritten) as failure:
        with about("f(1)"):
            raise unwritten
    assert failure.value is unwritten


def test_checks_raise_not_written_for_the_stub_without_a_call_prefix():
    x, weight = np.ones((1, 1, 4, 4)), np.ones((1, 1, 3, 3))
    for check in [lambda: check_conv2d(stub, x, weight),
                  lambda: check_conv2d_cases(stub, conv2d_cases(0, devices=["cpu"]),
                                             kind="numpy"),
                  lambda: check_refuses(stub, "groups=0", x, weight, groups=0),
                  lambda: check_shapes(stub, [((1, 1, 8, 8), 2, 3, {}), ((1, 1, 8, 8), 0, 3,
                                                                         {})])]:
        with pytest.raises(NotWritten) as failure:
            check()
        assert str(failure.value).startswith("stub is not written yet")


def test_the_words_not_written_yet_decide_nothing():
    """A learner's message that happens to say "is not written yet" is an ordinary failure:
    prefixed by its call, and not taken for the stub."""

    def says_so(x, weight, bias=None, **arguments):
        raise ValueError("this part is not written yet")

    with pytest.raises(AssertionError) as failure:
        check_conv2d(says_so, np.ones((1, 1, 4, 4)), np.ones((1, 1, 3, 3)))
    assert not isinstance(failure.value, NotWritten)
    assert str(failure.value).startswith("on x (1, 1, 4, 4) float64")
    assert "says_so raised ValueError: this part is not written yet" in str(failure.value)


# --- refusals --------------------------------------------------------------------------------

def test_refusal_problem_says_what_happened_instead_of_a_value_error():
    def refuses(*args):
        raise ValueError("no")

    def wrong_error(*args):
        raise TypeError("bad groups")

    def silent(*args):
        raise RuntimeError()

    assert refusal_problem(refuses, (1,), reason="groups=0") is None
    assert refusal_problem(wrong_error, (1,), reason="groups=0") == (
        "raised TypeError (bad groups), expected ValueError: groups=0.")
    assert refusal_problem(silent, (1,), reason="groups=0") == (
        "raised RuntimeError, expected ValueError: groups=0.")
    assert refusal_problem(lambda: np.zeros((2, 3)), reason="groups=0") == (
        "returned a ndarray of shape (2, 3), expected ValueError: groups=0.")
    assert refusal_problem(lambda: (1, 8, 2, 2), reason="groups=0") == (
        "returned (1, 8, 2, 2), expected ValueError: groups=0.")
    assert refusal_problem(dict, reason="groups=0") == (
        "accepted these arguments, expected ValueError: groups=0.")
    with pytest.raises(NotWritten):
        refusal_problem(stub, reason="groups=0")


def test_check_refuses_names_the_function_and_the_reason():
    def refuses(x, weight, groups=1):
        raise ValueError(f"groups={groups} is refused")

    def accepts(x, weight, groups=1):
        return np.zeros((1, 6, 3, 3))

    check_refuses(refuses, "groups=0", 1, 2, groups=0)
    with pytest.raises(AssertionError) as failure:
        check_refuses(accepts, "groups=3 does not divide the 4 input channels", 1, 2, groups=3)
    assert str(failure.value) == (
        "accepts: returned a ndarray of shape (1, 6, 3, 3), expected ValueError: groups=3 does "
        "not divide the 4 input channels.")


def test_check_shapes_lists_the_wrong_configurations():
    def always_one(input_shape, out_channels, kernel_size, **options):
        return (1, out_channels, 1, 1)

    configurations = [((1, 1, 3, 3), 2, 3, {}), ((1, 1, 8, 8), 2, 3, {}),
                      ((1, 1, 8, 8), 0, 3, {})]
    with pytest.raises(AssertionError) as failure:
        check_shapes(always_one, configurations)
    message = str(failure.value)
    assert message.startswith("2 of 3 configurations failed:\n- always_one((1, 1, 8, 8), 2, 3): "
                              "returned (1, 2, 1, 1), expected (1, 2, 6, 6).\n- ")
    assert "returned (1, 0, 1, 1), expected ValueError: the configuration is invalid" in message


# --- timing ----------------------------------------------------------------------------------

def test_medians_times_each_function_in_turn_after_its_warmups():
    calls, syncs = [], []
    functions = {"a": lambda: calls.append("a"), "b": lambda: calls.append("b")}
    seconds = medians(functions, repeats=3, warmups=2, sync=lambda: syncs.append(1))
    assert calls == ["a", "b"] * 2 + ["a", "b", "b", "a", "a", "b"]  # warm-ups, then in turn
    assert set(seconds) == {"a", "b"} and all(s >= 0 for s in seconds.values())
    assert len(syncs) == 2 * 3 * 2  # before and after each timed call


def test_seconds_for_one_call_notes_an_unwritten_or_failing_function(capsys):
    assert seconds_for_one_call(stub) is None
    assert capsys.readouterr().out == "stub is not written yet: nothing to time.\n"
    assert seconds_for_one_call(lambda: 1 / 0) is None
    assert "failed (ZeroDivisionError" in capsys.readouterr().out
    assert seconds_for_one_call(sorted, [3, 1, 2]) >= 0
