"""Timings for the notebooks' ungraded speed cells and for ``make bench`` (tests/bench.py).

Functions compared with each other are timed in turn, one call of each per round, so that a
change in the machine's load touches all of them alike; the median of the rounds is reported.
A timing is never a test: nothing here raises because something is slow.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable

from convcourse.grading.checks import is_stub, name_of


def medians(functions: dict[str, Callable[[], object]], *, repeats: int = 5, warmups: int = 1,
            sync: Callable[[], object] | None = None) -> dict[str, float]:
    """Median seconds of one call of each function, over ``repeats`` rounds taken in turn.

    Each function first runs ``warmups`` times untimed (caches, lazy initialisation).
    ``sync`` runs before each clock read: on a GPU, pass ``torch.cuda.synchronize``, which
    waits until the work queued so far is done.
    """
    sync = sync or (lambda: None)
    for function in functions.values():
        for _ in range(warmups):
            function()
    times: dict[str, list[float]] = {name: [] for name in functions}
    for _ in range(repeats):
        for name, function in functions.items():
            sync()
            start = time.perf_counter()
            function()
            sync()
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(seconds) for name, seconds in times.items()}


def seconds_for_one_call(fn: Callable, *args, **kwargs) -> float | None:
    """How long ``fn(*args, **kwargs)`` takes once; ``None``, with a note printed, when ``fn`` is
    not written yet or fails (a speed cell says so and carries on: it is not a test)."""
    start = time.perf_counter()
    try:
        fn(*args, **kwargs)
    except Exception as error:  # noqa: BLE001  (a note, not a crash, in an ungraded cell)
        if is_stub(error):
            print(f"{name_of(fn)} is not written yet: nothing to time.")
        else:
            print(f"{name_of(fn)} failed ({type(error).__name__}: {error}): make its tests pass "
                  "first.")
        return None
    return time.perf_counter() - start
