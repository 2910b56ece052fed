"""Counting the lines of Python a call runs: the learner-facing half of "is it vectorised?".

It needs the standard library alone, so that the grader's sandbox can count where the learner's
code runs, PyTorch or no PyTorch. A count kept in the learner's own process can be forged: the
grader also measures CPU time from outside the sandbox (``checks.cpu_growth_problem``).
"""

from __future__ import annotations

import sys
from collections.abc import Callable


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
