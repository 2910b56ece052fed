"""Checks that the assignments' tests call: run a learner's function, compare with PyTorch,
and fail with one sentence that says what is wrong.

Every check raises ``AssertionError`` with a message naming the function, the inputs and the
problem; an exception inside the learner's function is reported, not propagated.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import torch
from torch import nn

from convcourse.diagnose import diagnose
from convcourse.guard import library_convolutions
from convcourse.reference import Conv2dCase, as_tensor


def _name(fn: Callable) -> str:
    return getattr(fn, "__name__", type(fn).__name__)


def _call(fn: Callable, *args, **kwargs):
    """Call the learner's ``fn`` with library convolutions refused; report what went wrong."""
    with library_convolutions() as used:
        try:
            result = fn(*args, **kwargs)
        except NotImplementedError:
            raise AssertionError(f"{_name(fn)} is not written yet (it raises "
                                 "NotImplementedError): replace its body.") from None
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


def run_case(fn: Callable, case: Conv2dCase, *, kind: str, padding_mode: bool = True) -> None:
    """Run ``fn`` on one case, with NumPy arrays (``kind='numpy'``) or tensors, and check it."""
    actual = _call(fn, *case.inputs(kind), **case.arguments(padding_mode=padding_mode))
    problem = diagnose(actual, case)
    if problem:
        raise AssertionError(f"{_name(fn)}({case.describe()}): {problem}")


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
    """Run every case; fail once, listing how many failed and the first ``show`` of them."""
    cases = list(cases)
    failures = []
    for case in cases:
        try:
            run_case(fn, case, kind=kind, padding_mode=padding_mode)
        except AssertionError as failure:
            failures.append(str(failure))
    if failures:
        listed = "\n- ".join(failures[:show])
        raise AssertionError(f"{len(failures)} of {len(cases)} cases failed:\n- {listed}")


def expected_output_shape(input_shape, out_channels, kernel_size, stride=1, padding=0,
                          dilation=1, groups=1) -> tuple[int, ...] | Exception:
    """What ``nn.Conv2d`` outputs for an input of ``input_shape``, or the error it raises."""
    try:
        conv = nn.Conv2d(input_shape[-3], out_channels, kernel_size, stride, padding, dilation,
                         groups, device="meta")
        return tuple(conv(torch.empty(input_shape, device="meta")).shape)
    except (ValueError, RuntimeError, TypeError) as error:
        return error


def check_output_shape(fn: Callable, input_shape, out_channels, kernel_size, **arguments) -> None:
    """Check ``fn`` against the shape ``nn.Conv2d`` produces, or its refusal (``ValueError``)."""
    expected = expected_output_shape(input_shape, out_channels, kernel_size, **arguments)
    call = f"{_name(fn)}({tuple(input_shape)}, {out_channels}, {kernel_size!r}" + "".join(
        f", {k}={v!r}" for k, v in arguments.items()) + ")"
    if isinstance(expected, Exception):
        try:
            got = fn(input_shape, out_channels, kernel_size, **arguments)
        except ValueError:
            return
        except Exception as error:  # noqa: BLE001
            raise AssertionError(f"{call} raised {type(error).__name__}, expected ValueError "
                                 f"(nn.Conv2d refuses: {expected})") from None
        raise AssertionError(f"{call} returned {got!r}, but nn.Conv2d refuses this "
                             f"configuration ({expected}): raise ValueError.")
    got = _call(fn, input_shape, out_channels, kernel_size, **arguments)
    if not isinstance(got, tuple) or got != expected:
        raise AssertionError(f"{call} returned {got!r}, expected {expected!r}.")


def check_equal(fn: Callable, expected, *args, **kwargs) -> None:
    """Check that ``fn(*args, **kwargs) == expected`` (weight shapes, parameter counts)."""
    got = _call(fn, *args, **kwargs)
    if type(got) is not type(expected) or got != expected:
        call = f"{_name(fn)}(" + ", ".join([*map(repr, args), *(
            f"{k}={v!r}" for k, v in kwargs.items())]) + ")"
        raise AssertionError(f"{call} returned {got!r}, expected {expected!r}.")


