"""Checks that the assignments' tests call: run a learner's function, compare with PyTorch,
and fail with one sentence that says what is wrong.

Every check raises ``AssertionError`` with a message naming the function, the inputs and the
problem; an exception inside the learner's function is reported, not propagated.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable, Iterable

import numpy as np
import torch
from torch import nn

from convcourse.grading.diagnose import diagnose
from convcourse.grading.guard import library_convolutions
from convcourse.reference import Conv2dCase, as_tensor, exact_float32


def _name(fn: Callable) -> str:
    return getattr(fn, "__name__", type(fn).__name__)


def _call(fn: Callable, *args, **kwargs):
    """Call the learner's ``fn`` with library convolutions refused; report what went wrong."""
    with library_convolutions() as used:
        try:
            result = fn(*args, **kwargs)
        except NotImplementedError as error:
            if not str(error):  # nbgrader's stub: `raise NotImplementedError()`
                raise AssertionError(f"{_name(fn)} is not written yet (it raises "
                                     "NotImplementedError): replace its body.") from None
            raise AssertionError(f"{_name(fn)} raised NotImplementedError: {error}") from None
        except Exception as error:  # noqa: BLE001  (any failure of learner code is reported)
            if not used:
                message = f"{_name(fn)} raised {type(error).__name__}: {error}"
                raise AssertionError(message) from None
    if used:
        raise AssertionError(
            f"{_name(fn)} called a library convolution ({', '.join(sorted(set(used)))}): a graded "
            "function must compute the convolution itself, so this scores 0."
        )
    return result


def call_text(fn: Callable, args: tuple = (), kwargs: dict | None = None) -> str:
    """How a call reads in feedback: ``name(arg, ..., key=value)``."""
    shown = [repr(a) for a in args] + [f"{k}={v!r}" for k, v in (kwargs or {}).items()]
    return f"{_name(fn)}({', '.join(shown)})"


def located(call: str, problem: str) -> str:
    """``problem`` prefixed by the call it happened in (not for an unwritten function)."""
    return problem if "is not written yet" in problem else f"{call}: {problem}"


@contextlib.contextmanager
def _about(call: str):
    """Say which call a failure inside the block happened in."""
    try:
        yield
    except AssertionError as failure:
        raise AssertionError(located(call, str(failure))) from None


def run_case(fn: Callable, case: Conv2dCase, *, kind: str, padding_mode: bool = True) -> None:
    """Run ``fn`` on one case, with NumPy arrays (``kind='numpy'``) or tensors, and check it."""
    with _about(f"on {case.describe()}"), exact_float32():  # as exact as the reference
        actual = _call(fn, *case.inputs(kind), **case.arguments(padding_mode=padding_mode))
    problem = _wrong_kind(actual, kind) or diagnose(actual, case)
    if problem:
        raise AssertionError(f"{_name(fn)}({case.describe()}): {problem}")


def _wrong_kind(actual, kind: str) -> str | None:
    """A NumPy function must return an array, a torch one a tensor (for autograd and devices)."""
    if kind == "numpy" and isinstance(actual, torch.Tensor):
        return "it returned a torch.Tensor: a NumPy function must return a NumPy array."
    if kind == "torch" and isinstance(actual, np.ndarray):
        return ("it returned a NumPy array: return a torch.Tensor on x.device, computed with "
                "tensor operations so that autograd can follow it.")
    return None


def check_conv2d(fn: Callable, x, weight, bias=None, **arguments) -> None:
    """Check ``fn(x, weight, bias, **arguments)`` against ``F.conv2d`` / ``nn.Conv2d``.

    ``fn`` gets fresh copies of the inputs, of the same kind (NumPy arrays or tensors).
    """
    case = Conv2dCase(as_tensor(x), as_tensor(weight), None if bias is None else as_tensor(bias),
                      **arguments)
    kind = "torch" if isinstance(x, torch.Tensor) else "numpy"
    run_case(fn, case, kind=kind, padding_mode="padding_mode" in arguments)


def check_conv2d_cases(fn: Callable, cases: Iterable[Conv2dCase], *, kind: str,
                       padding_mode: bool = True, show: int = 3) -> None:
    """Run the cases in order; fail at the ``show``-th failing one, listing those failures.

    A test cell passes or fails as a whole, so the rest of the grid is not run: each failure
    is diagnosed (a few dozen candidate mistakes), which is the slow part.
    """
    cases = list(cases)
    failures, tried = [], 0
    for case in cases:
        tried += 1
        try:
            run_case(fn, case, kind=kind, padding_mode=padding_mode)
        except AssertionError as failure:
            failures.append(str(failure))
            if len(failures) == show:
                break
    if failures:
        listed = "\n- ".join(failures)
        raise AssertionError(f"{len(failures)} of the first {tried} of {len(cases)} cases "
                             f"failed:\n- {listed}")


def expected_output_shape(input_shape, out_channels, kernel_size, stride=1, padding=0,
                          dilation=1, groups=1) -> tuple[int, ...] | Exception:
    """What ``nn.Conv2d`` outputs for an input of ``input_shape``, or why the contract refuses.

    This is the contract of assignment 1's ``conv2d_output_shape``. It refuses wherever
    ``nn.Conv2d`` on the CPU refuses a batch of one, in its constructor or in its forward pass,
    and in two more places: an input without channels (PyTorch warns, then returns an output
    with 0 channels whatever ``out_channels`` says), and a sequence argument that is not a pair
    (PyTorch accepts ``stride=(2,)``). An empty batch, ``N = 0``, is valid, as in PyTorch, and
    gets the answer of a batch of one with ``N = 0``: with no data to compute, PyTorch skips
    some checks (it accepts ``dilation=0``), and the contract does not.

    The shape comes from ``nn.Conv2d`` itself, run on the meta device (shapes only, no data).
    The meta device skips the forward pass's checks of the argument values, so those are made
    here first. The refusal is returned, not raised: a ``ValueError`` naming the problem, or
    the error PyTorch raised. Values that are not ints (a float size, say) are left to PyTorch.
    """
    import warnings

    def items(value) -> tuple | None:
        """An int-or-sequence argument as a tuple; None if it is neither."""
        if isinstance(value, int):
            return (value,)
        try:
            return tuple(value)
        except TypeError:
            return None

    dims = None if isinstance(input_shape, str) else items(input_shape)
    if dims is None or len(dims) not in (3, 4):
        return ValueError(f"input_shape must be (C_in, H, W) or (N, C_in, H, W), got "
                          f"{input_shape!r}")
    if all(isinstance(size, int) for size in dims):
        if len(dims) == 4 and dims[0] < 0:
            return ValueError(f"the batch size N cannot be negative, got {dims[0]}")
        if dims[-3] < 1:
            return ValueError(f"the input needs at least one channel, got C_in = {dims[-3]}")
        if min(dims[-2:]) < 1:
            return ValueError(f"the input's height and width must be positive, got "
                              f"{dims[-2]}x{dims[-1]}")
    if isinstance(out_channels, int) and out_channels < 1:
        return ValueError(f"out_channels must be positive, got {out_channels}")
    for name, value in [("kernel_size", kernel_size), ("stride", stride),
                        ("dilation", dilation), ("padding", padding)]:
        values = None if isinstance(value, str) else items(value)
        if values is None:
            continue  # padding='same'/'valid' or an unknown string: nn.Conv2d decides below
        if not isinstance(value, int) and len(values) != 2:
            return ValueError(f"{name} must be an int or a pair of ints, got {value!r}")
        smallest = 0 if name == "padding" else 1
        if any(isinstance(v, int) and v < smallest for v in values):
            rule = "cannot be negative" if name == "padding" else "must be positive"
            return ValueError(f"{name} {rule}, got {value!r}")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # 'same' with an even kernel: a note about speed
            conv = nn.Conv2d(dims[-3], out_channels, kernel_size, stride, padding, dilation,
                             groups, device="meta")
            return tuple(conv(torch.empty(dims, device="meta")).shape)
    except (ValueError, RuntimeError, TypeError) as error:
        return error


def check_output_shape(fn: Callable, input_shape, out_channels, kernel_size, **arguments) -> None:
    """Check ``fn`` against the shape ``nn.Conv2d`` produces, or its refusal (``ValueError``)."""
    expected = expected_output_shape(input_shape, out_channels, kernel_size, **arguments)
    call = call_text(fn, (tuple(input_shape), out_channels, kernel_size), arguments)
    if isinstance(expected, Exception):
        try:
            got = fn(input_shape, out_channels, kernel_size, **arguments)
        except ValueError:
            return
        except Exception as error:  # noqa: BLE001
            raise AssertionError(f"{call} raised {type(error).__name__}, expected ValueError "
                                 f"(the configuration is invalid: {expected})") from None
        raise AssertionError(f"{call} returned {got!r}, but the configuration is invalid "
                             f"({expected}): raise ValueError.")
    with _about(call):
        got = _call(fn, input_shape, out_channels, kernel_size, **arguments)
    if not isinstance(got, tuple) or got != expected:
        raise AssertionError(f"{call} returned {got!r}, expected {expected!r}.")
    if any(type(size) is not int for size in got):
        raise AssertionError(f"{call} returned {got!r}: every size must be a Python int, "
                             "as in torch.Size (use // rather than / and int()).")


def check_equal(fn: Callable, expected, *args, **kwargs) -> None:
    """Check that ``fn(*args, **kwargs) == expected`` (weight shapes, parameter counts)."""
    call = call_text(fn, args, kwargs)
    with _about(call):
        got = _call(fn, *args, **kwargs)
    if type(got) is not type(expected) or got != expected:
        raise AssertionError(f"{call} returned {got!r}, expected {expected!r}.")


def count_python_lines(fn: Callable, *args, **kwargs) -> int:
    """How many lines of Python ``fn(*args, **kwargs)`` runs outside installed libraries.

    A loop over images or output positions runs its body once per pass, so the count grows
    with the input; array operations run the same few lines whatever the size.
    """
    libraries = (sys.prefix, sys.base_prefix, sys.exec_prefix, "<frozen")
    count = 0

    def tracer(frame, event, arg):
        nonlocal count
        if frame.f_code.co_filename.startswith(libraries):
            return None  # NumPy's own Python code is not the learner's: not counted
        count += event == "line"
        return tracer

    tampered = []

    def watch(frame, event, arg):  # sees every call of sys.settrace/setprofile, first included
        if event == "c_call" and arg in (sys.settrace, sys.setprofile):
            tampered.append(arg.__name__)

    previous, previous_profile = sys.gettrace(), sys.getprofile()
    sys.settrace(tracer)
    sys.setprofile(watch)
    try:
        fn(*args, **kwargs)
    finally:
        during = tuple(tampered)  # before our own calls below, which the watch would see
        sys.setprofile(previous_profile)
        sys.settrace(previous)
    if during:
        raise RuntimeError(f"the function called sys.{during[0]} while its lines were counted: "
                           "the count cannot be trusted, so the check fails.")
    return count


def python_lines(fn: Callable, *args, **kwargs) -> int:
    """:func:`count_python_lines`, counted where ``fn`` runs: a function that runs in another
    process (the grader's sandbox) offers its own ``python_lines``."""
    elsewhere = getattr(fn, "python_lines", None)
    if callable(elsewhere):
        return elsewhere(*args, **kwargs)
    return count_python_lines(fn, *args, **kwargs)
