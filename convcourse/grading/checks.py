"""Checks that the assignments' tests call: run a learner's function, compare with PyTorch,
and fail with one sentence that says what is wrong.

Every check raises ``AssertionError`` with a message naming the function, the inputs and the
problem; an exception inside the learner's function is reported, not propagated. A function
that is still nbgrader's stub raises :class:`NotWritten` (an ``AssertionError`` too). Checks of
many cases go through :func:`check_all`, which fails once, listing the first few failures.
"""

from __future__ import annotations

import contextlib
import functools
import linecache
import re
import sys
import time
import traceback
from collections.abc import Callable, Iterable
from pathlib import Path

import numpy as np
import torch
from torch import nn

from convcourse.grading.cases import shared_traits
from convcourse.grading.diagnose import diagnose
from convcourse.grading.guard import library_convolutions
from convcourse.grading.lines import count_python_lines
from convcourse.reference import Conv2dCase, as_tensor, exact_float32, reference_conv2d


class NotWritten(AssertionError):
    """The learner's function is still nbgrader's stub: it raises ``NotImplementedError()``.

    An ``AssertionError``, so a test cell that meets it fails as any failed check does; a type
    of its own, so that the checks can tell it from a wrong answer without reading its words
    (it is reported as it is, never prefixed by a call, and a list of cases stops at it).
    """

    def __init__(self, fn: Callable):
        super().__init__(f"{name_of(fn)} is not written yet (it raises NotImplementedError): "
                         "replace its body.")


class LearnerRaised(AssertionError):
    """The learner's code raised an exception (other than the stub's) where a value was due.

    Its message names the exception and, where it can be found, the learner's own line that
    raised it (:func:`learner_line`).
    """


def is_stub(error: BaseException) -> bool:
    """Whether ``error`` is nbgrader's placeholder, ``raise NotImplementedError()``: no message."""
    return isinstance(error, NotImplementedError) and not str(error)


def name_of(fn: Callable) -> str:
    """The name a learner gave ``fn`` (a function or a class), as feedback shows it."""
    return getattr(fn, "__name__", type(fn).__name__)


#: Where code that is not the learner's lives: this package, the grader, installed libraries.
_NOT_LEARNERS = (str(Path(__file__).resolve().parents[1]), sys.prefix, sys.base_prefix,
                 sys.exec_prefix, "<frozen")
#: The names the grader gives its own test cells (autograder/score.py).
_GRADERS_CELLS = ("<test>", "<test set-up>")


def _is_learners(filename: str) -> bool:
    """Whether a frame's file is the learner's: a notebook cell or a file of theirs, never this
    package, the grader's test cells or an installed library."""
    if filename in _GRADERS_CELLS or "autograder" in Path(filename).parts:
        return False
    return not filename.startswith(_NOT_LEARNERS)


def _cell_name(filename: str) -> str:
    """A frame's file as a learner knows it: ``cell conv2d_numpy``, ``cell 12``, a file name."""
    sandboxed = re.fullmatch(r"<cell (.*)>", filename)
    if sandboxed:
        return f"cell {sandboxed.group(1)}"
    ipython = re.fullmatch(r"<ipython-input-(\d+)-[0-9a-f]+>", filename)
    if ipython:
        return f"cell In[{ipython.group(1)}]"
    if re.search(r"ipykernel_\d+", filename):
        return f"cell {Path(filename).stem}"  # IPython 8: /tmp/ipykernel_<pid>/<hash>.py
    return Path(filename).name


def learner_line(error: BaseException) -> str | None:
    """Where the learner's own code raised ``error``: ``line 12 of cell conv2d_numpy,
    `out = x @ w```, from the deepest of the learner's frames; None if none is theirs.

    An exception from a function that ran in another process (the grader's sandbox) carries
    its frames as text (``learner_frames``: objects with ``cell``, ``lineno``, ``name`` and
    ``line``), and nothing is looked up for them: a file name that came from elsewhere is never
    a path to read. Otherwise the frames come from the traceback, leaving out this package, the
    grader's cells and installed libraries, so that feedback never shows the checks' or the
    hidden tests' source.
    """
    carried = getattr(error, "learner_frames", None)
    if carried is not None:
        if not carried:
            return None
        frame = carried[-1]
        return _where(f"cell {frame.cell}", frame.lineno, frame.name, frame.line)
    own = [frame for frame in traceback.extract_tb(error.__traceback__)
           if _is_learners(frame.filename)]
    if not own:
        return None
    frame = own[-1]
    source = frame.line or linecache.getline(frame.filename, frame.lineno or 0)
    return _where(_cell_name(frame.filename), frame.lineno, frame.name, source)


def _where(cell: str, lineno, function: str | None, source: str) -> str:
    """``line 12 of cell conv2d_numpy (in helper): `out = x @ w```."""
    where = f"line {lineno} of {cell}"
    if function not in ("<module>", "", None):
        where += f" (in {function})"
    source = (source or "").strip()
    if len(source) > 120:
        source = source[:117] + "..."
    return where + (f": `{source}`" if source else "")


def _raised(fn: Callable, error: BaseException) -> LearnerRaised:
    """The report of ``error``, raised by the learner's ``fn``: what, and at which line."""
    text = str(error)
    if len(text) > 300:
        text = text[:297] + "..."
    message = f"{name_of(fn)} raised {type(error).__name__}" + (f": {text}" if text else "")
    line = learner_line(error)
    return LearnerRaised(message + (f" (at {line})" if line else ""))


def call_learner(fn: Callable, *args, **kwargs):
    """``fn(*args, **kwargs)`` with library convolutions refused; a failure is reported.

    Raises :class:`NotWritten` for the stub, :class:`LearnerRaised` for any other exception of
    the learner's (with the learner's line that raised it, :func:`learner_line`), and
    ``AssertionError`` saying so when ``fn`` used a library convolution.
    """
    with library_convolutions() as used:
        try:
            result = fn(*args, **kwargs)
        except NotImplementedError as error:
            if is_stub(error):
                raise NotWritten(fn) from None
            raise _raised(fn, error) from None
        except Exception as error:  # noqa: BLE001  (any failure of learner code is reported)
            if not used:
                raise _raised(fn, error) from None
    if used:
        raise AssertionError(
            f"{name_of(fn)} called a library convolution ({', '.join(sorted(set(used)))}): a "
            "graded function must compute the convolution itself, so this scores 0."
        )
    return result


def call_text(fn: Callable, args: tuple = (), kwargs: dict | None = None) -> str:
    """How a call reads in feedback: ``name(arg, ..., key=value)``."""
    shown = [repr(a) for a in args] + [f"{k}={v!r}" for k, v in (kwargs or {}).items()]
    return f"{name_of(fn)}({', '.join(shown)})"


@contextlib.contextmanager
def about(call: str):
    """Prefix a failure inside the block with the call it happened in: ``call: problem``.

    :class:`NotWritten` passes unchanged: it concerns the function, not one call of it.
    """
    try:
        yield
    except NotWritten:
        raise
    except AssertionError as failure:
        raise AssertionError(f"{call}: {failure}") from None


def fail_if(problem: str | None) -> None:
    """Raise ``AssertionError(problem)`` when there is a problem (a sentence), else nothing."""
    if problem:
        raise AssertionError(problem)


def check_all(items: Iterable, check_one: Callable, *, what: str = "cases",
              show: int = 3, traits: Callable[[list, list], str | None] | None = None) -> None:
    """Check every item in order with ``check_one``; fail once, listing the failures.

    ``check_one(item)`` fails by raising ``AssertionError`` or by returning a sentence (the
    problem); it passes by returning ``None``. The checks stop at the ``show``-th failure,
    and the message says how many items were not run: a test cell passes or fails as a
    whole, and diagnosing a failure is the slow part. A :class:`NotWritten` stops them at
    once and is raised as it is: every item would fail for the same reason. ``traits(failed,
    passed)``, where given, says what the failing items share that the passing ones lack
    (:func:`convcourse.grading.cases.shared_traits`): it comes before the first failure.
    """
    items = list(items)
    failures: list[str] = []
    failed, passed = [], []
    for item in items:
        try:
            problem = check_one(item)
        except NotWritten:
            raise
        except AssertionError as failure:
            problem = str(failure) or "a check failed"
        (failed if problem else passed).append(item)
        if problem:
            failures.append(problem)
            if len(failures) == show:
                break
    if not failures:
        return
    run = len(failed) + len(passed)
    left = len(items) - run
    counted = (f"{len(failures)} of the first {run} of {len(items)} {what} failed (the other "
               f"{left} were not run)" if left else f"{len(failures)} of {len(items)} {what} "
               "failed")
    shared = traits(failed, passed) if traits else None
    raise AssertionError(counted + (f"; {shared}" if shared else "") + ":\n- "
                         + "\n- ".join(failures))


def refusal_problem(fn: Callable, args: tuple = (), kwargs: dict | None = None, *,
                    reason: str) -> str | None:
    """``None`` if ``fn(*args, **kwargs)`` raises ``ValueError``; else what it did instead,
    as ``"raised TypeError (...), expected ValueError: <reason>."``.

    ``reason`` says why a ``ValueError`` is due. The stub raises :class:`NotWritten`. The call
    is not guarded against library convolutions: refusing computes nothing, and a
    constructor that refuses (``nn.Conv2d``'s) raises before it could convolve.
    """
    try:
        result = fn(*args, **(kwargs or {}))
    except ValueError:
        return None
    except Exception as error:  # noqa: BLE001  (any other failure is reported)
        if is_stub(error):
            raise NotWritten(fn) from None
        said = str(error)[:200]
        did = f"raised {type(error).__name__}" + (f" ({said})" if said else "")
    else:
        built = isinstance(fn, type) or isinstance(result, nn.Module)  # a layer's constructor
        did = "accepted these arguments" if built else f"returned {_shown(result)}"
    return f"{did}, expected ValueError: {reason}."


def _shown(value) -> str:
    """A short description of a returned value: its shape for an array, else its repr."""
    shape = getattr(value, "shape", None)
    if shape is not None and not isinstance(value, tuple):
        return f"a {type(value).__name__} of shape {tuple(shape)}"
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def check_refuses(fn: Callable, reason: str, *args, **kwargs) -> None:
    """Check that ``fn(*args, **kwargs)`` raises ``ValueError``; ``reason`` says why it should
    (for example ``"groups=3 does not divide the 4 input channels"``)."""
    with about(name_of(fn)):
        fail_if(refusal_problem(fn, args, kwargs, reason=reason))


def run_case(fn: Callable, case: Conv2dCase, *, kind: str, padding_mode: bool = True) -> None:
    """Run ``fn`` on one case, with NumPy arrays (``kind='numpy'``) or tensors, and check it.

    A mistake is named only if it also predicts ``fn``'s outputs on the diagnosis's probe
    cases, so ``fn`` may run again on those."""
    def rerun(other: Conv2dCase):
        with exact_float32():
            return call_learner(fn, *other.inputs(kind),
                                **other.arguments(padding_mode=padding_mode))

    with about(f"on {case.describe()}"):
        actual = rerun(case)  # as exact as the reference
    with about(f"{name_of(fn)}({case.describe()})"):
        fail_if(_wrong_kind(actual, kind) or diagnose(actual, case, rerun=rerun))


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
    """:func:`run_case` on each case, through :func:`check_all` (it stops at the ``show``-th
    failure)."""
    check_all(cases, lambda case: run_case(fn, case, kind=kind, padding_mode=padding_mode),
              what="cases", show=show, traits=shared_traits)


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
    with about(call):
        if isinstance(expected, Exception):
            fail_if(refusal_problem(fn, (input_shape, out_channels, kernel_size), arguments,
                                    reason=f"the configuration is invalid ({expected})"))
            return
        got = call_learner(fn, input_shape, out_channels, kernel_size, **arguments)
        if not isinstance(got, tuple) or got != expected:
            raise AssertionError(f"returned {got!r}, expected {expected!r}.")
        if any(type(size) is not int for size in got):
            raise AssertionError(f"returned {got!r}: every size must be a Python int, as in "
                                 "torch.Size (use // rather than / and int()).")


def check_equal(fn: Callable, expected, *args, **kwargs) -> None:
    """Check that ``fn(*args, **kwargs) == expected`` (weight shapes, parameter counts)."""
    with about(call_text(fn, args, kwargs)):
        got = call_learner(fn, *args, **kwargs)
        if type(got) is not type(expected) or got != expected:
            raise AssertionError(f"returned {got!r}, expected {expected!r}.")


def check_shapes(fn: Callable, configurations: Iterable[tuple], *, show: int = 3) -> None:
    """:func:`check_output_shape` on each ``(input_shape, out_channels, kernel_size, options)``,
    through :func:`check_all` (it stops at the ``show``-th failure)."""
    check_all(configurations,
              lambda config: check_output_shape(fn, *config[:3], **config[3]),
              what="configurations", show=show)


def python_lines(fn: Callable, *args, **kwargs) -> int:
    """:func:`count_python_lines`, counted where ``fn`` runs: a function that runs in another
    process (the grader's sandbox) offers its own ``python_lines``."""
    elsewhere = getattr(fn, "python_lines", None)
    if callable(elsewhere):
        return elsewhere(*args, **kwargs)
    return count_python_lines(fn, *args, **kwargs)


#: The least CPU time (seconds) by which a call on the larger input may outgrow the call on
#: the smaller one before its growth is looked at: timer, allocator and fork noise stay below
#: it (a call that forks a 300 MB process varied by 6 ms).
CPU_NOISE_SECONDS = 0.01
#: A loop once per output position costs at least one step of Python with a small array
#: operation per position; a call that grows by this share of that cost is such a loop.
LOOP_SHARE = 0.25


@functools.lru_cache(maxsize=1)
def python_step_seconds() -> float:
    """CPU time of one step of a loop over output positions on this machine: a window of
    2x3x3 values multiplied by a kernel and summed (least of three runs of 2000 steps)."""
    window, kernel = np.ones((2, 8, 8)), np.ones((2, 3, 3))
    runs = []
    for _ in range(3):
        start = time.thread_time()
        for step in range(2000):
            (window[:, step % 6:step % 6 + 3, 1:4] * kernel).sum()
        runs.append((time.thread_time() - start) / 2000)
    return min(runs)


def _positions(array) -> int:
    """Images times rows times columns of an input ``(N, C, H, W)`` or ``(C, H, W)``."""
    shape = np.shape(array)
    return int(np.prod(shape)) // max(int(shape[-3]), 1) if len(shape) >= 3 else 1


def cpu_growth_problem(fn: Callable, small: tuple, large: tuple,
                       wrong: Callable[[object, int], str | None] | None = None) -> str | None:
    """Why ``fn`` is not vectorised by its CPU time, or None. Only where ``fn`` runs in a
    process that the grader measures from outside (its sandbox: ``fn.timed_call``): a line
    count is kept by the learner's own process, and can be forged; CPU time cannot be made
    smaller by the learner's code. ``small`` and ``large`` are two calls (args, kwargs); the
    larger call may take more CPU time than the smaller one by :data:`CPU_NOISE_SECONDS`, or
    by :data:`LOOP_SHARE` of one Python step (:func:`python_step_seconds`) per position of
    its first argument, whichever is more. ``wrong(value, i)`` says what is wrong with the
    answer of a timed call of ``small`` (i = 0) or ``large`` (1): a function that answered
    timed calls quickly and wrongly would otherwise pass."""
    measure = getattr(fn, "timed_call", None)
    if not callable(measure):
        return None
    spent = []
    for index, (args, kwargs) in enumerate((small, large)):
        least = float("inf")
        for _ in range(3):
            value, seconds = measure(*args, **kwargs)
            if wrong is not None and (problem := wrong(value, index)) is not None:
                return f"{name_of(fn)} gave a wrong answer while its CPU time was measured: " \
                       f"{problem}"
            least = min(least, seconds)
        spent.append(least)
    steps = _positions(large[0][0]) - _positions(small[0][0])
    if spent[1] - spent[0] <= max(CPU_NOISE_SECONDS, LOOP_SHARE * steps * python_step_seconds()):
        return None
    return (f"{name_of(fn)} took {1000 * spent[0]:.1f} ms of CPU time on the small input but "
            f"{1000 * spent[1]:.0f} ms on the large one (measured outside your code), as much "
            "as a loop that runs once per image or per output position. Replace it with array "
            "operations (a loop over the kernel's taps or over the groups is fine).")


def check_vectorised(fn: Callable, small, large, *args, **kwargs) -> None:
    """Check that ``fn(x, *args, **kwargs)`` runs about as many lines of Python for
    ``x=large`` as for ``x=small``, and, where it runs in the grader's sandbox, takes about as
    little CPU time more as array operations would: a loop over images or output positions
    does not."""
    lines = [python_lines(fn, x, *args, **kwargs) for x in (small, large)]
    if lines[1] > lines[0] + 25:
        raise AssertionError(
            f"{name_of(fn)} ran {lines[0]} lines of Python for x of shape {small.shape} but "
            f"{lines[1]} for x of shape {large.shape}: a loop runs once per image or per output "
            "position. Replace it with array operations (a loop over the kernel's taps or over "
            "the groups is fine).")
    weight, bias = (*args, kwargs.get("bias"))[:2]
    arguments = {name: value for name, value in kwargs.items() if name != "bias"}
    cases = [Conv2dCase(as_tensor(x), as_tensor(weight),
                        None if bias is None else as_tensor(bias), **arguments)
             for x in (small, large)]
    expected = [reference_conv2d(case) for case in cases]  # once, for the six timed answers
    fail_if(cpu_growth_problem(fn, ((small, *args), kwargs), ((large, *args), kwargs),
                               lambda value, i: diagnose(value, cases[i], expected[i])))
