"""Timings for the notebooks' ungraded speed cells and for ``make bench`` (tests/bench.py).

Functions compared with each other are timed in turn, one call of each per round, the order
rotating between rounds, so that a change in the machine's load touches all of them alike
(:func:`rounds`). What a speed cell may say is decided by :func:`verdict`: the median of the
rounds' ratios, their spread, and whether the machine let this process run; a claim about a
goal is made only when the numbers support it. A timing is never a test: nothing here raises
because something is slow.
"""

from __future__ import annotations

import contextlib
import os
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass

from convcourse.grading.checks import is_stub, name_of

#: Below this share of the timed wall-clock time on a core, the process waited for one: the
#: machine was busy and the numbers are off by that much.
HELD_AT_LEAST = 0.9
#: Rounds whose ratios spread wider than this (interquartile range over median) disagree.
SPREAD_AT_MOST = 0.25


@dataclass
class Rounds:
    """Seconds per call of each function, one list per function in the order of the rounds,
    and ``held``: the share of the timed wall-clock time this thread spent on a core (work on
    one thread, :func:`one_thread`, is all on this one; None where a ``sync`` waited for a
    GPU, which this thread does not run)."""

    seconds: dict[str, list[float]]
    held: float | None

    def median(self, name: str) -> float:
        return statistics.median(self.seconds[name])

    def ratios(self, name: str, reference: str) -> list[float]:
        """Round by round, ``name``'s time over ``reference``'s."""
        return [a / b for a, b in zip(self.seconds[name], self.seconds[reference], strict=True)]


def rounds(calls: dict[str, Callable[[], object]], repeats: int = 7, *, warmups: int = 1,
           sync: Callable[[], object] | None = None) -> Rounds:
    """Time each of ``calls`` ``repeats`` times, one call of each per round, after ``warmups``
    untimed rounds (caches, lazy initialisation). ``sync`` runs before each clock read: on a
    GPU, pass ``torch.cuda.synchronize``, which waits until the work queued so far is done."""
    on_gpu, sync = sync is not None, sync or (lambda: None)
    names = list(calls)
    for _ in range(warmups):
        for name in names:
            calls[name]()
    seconds: dict[str, list[float]] = {name: [] for name in names}
    wall = cpu = 0.0
    for r in range(repeats):
        shift = r % len(names)
        for name in names[shift:] + names[:shift]:
            sync()
            start, start_cpu = time.perf_counter(), time.thread_time()
            calls[name]()
            sync()
            seconds[name].append(time.perf_counter() - start)
            wall, cpu = wall + seconds[name][-1], cpu + time.thread_time() - start_cpu
    return Rounds(seconds, held=None if on_gpu else min(cpu / wall, 1.0) if wall > 0 else 1.0)


def medians(functions: dict[str, Callable[[], object]], *, repeats: int = 5, warmups: int = 1,
            sync: Callable[[], object] | None = None) -> dict[str, float]:
    """Median seconds of one call of each function, over ``repeats`` :func:`rounds`."""
    timed = rounds(functions, repeats, warmups=warmups, sync=sync)
    return {name: timed.median(name) for name in functions}


@contextlib.contextmanager
def one_thread():
    """PyTorch and NumPy's BLAS on one thread for the block. A call split over several threads
    waits for the slowest of them, and on a busy machine that is whichever lost its core: one
    thread measures the same work the same way, busy or not (and ``Rounds.held`` can tell)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # NumPy then keeps its threads; the note in machine() says how many
        limits = contextlib.nullcontext()
    else:
        limits = threadpool_limits(1)
    try:
        with limits:
            yield
    finally:
        torch.set_num_threads(before)


def busy(timed: Rounds) -> str | None:
    """Why the machine was too busy to trust ``timed`` (None: it was not): this thread waited
    for a core, or the load average is above the number of cores."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else 0.0
    if timed.held is not None and timed.held < HELD_AT_LEAST:
        return (f"this notebook had a core only {timed.held:.0%} of the time it was timed: "
                "other programs were running")
    if load > (cores or 1):
        return f"the machine's load is {load:.1f} on {cores} cores"
    return None


def verdict(timed: Rounds, name: str, reference: str, *, goal: float | None = None) -> str:
    """What the rounds say about ``name`` against ``reference``: the median of the rounds'
    ratios with the middle half of them, a warning where the machine was busy or the rounds
    disagree, and, given a ``goal`` (at most that many times ``reference``'s time), whether it
    is met: only when every doubt is ruled out, else that it cannot be told."""
    ratios = timed.ratios(name, reference)
    middle = statistics.median(ratios)
    low, _, high = statistics.quantiles(ratios, n=4) if len(ratios) > 1 else (middle,) * 3
    words = [f"{name} took {middle:.3g}x the time of {reference} (median of {len(ratios)} "
             f"rounds; the middle half {low:.3g}x-{high:.3g}x)."]
    doubts = []
    if (why := busy(timed)) is not None:
        doubts.append(f"The machine was busy ({why}).")
    if high - low > SPREAD_AT_MOST * middle:
        doubts.append("The rounds disagree by more than a quarter.")
    if doubts:
        words += ["Warning:", *doubts, "Run the cell again when the machine is quiet."]
    if goal is not None:
        if doubts:
            words.append(f"Whether it meets the goal of {goal:g}x cannot be told from these "
                         "numbers.")
        elif high <= goal:
            words.append(f"It meets the goal of at most {goal:g}x.")
        elif low > goal:
            words.append(f"It misses the goal of at most {goal:g}x.")
        else:
            words.append(f"It is at the edge of the goal of {goal:g}x: run the cell again.")
    return " ".join(words)


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
