"""The session of one notebook: the sandbox its learner's cells run in, as the stand-ins
(autograder/remote.py) see it. They talk through :meth:`Session.request`; the session starts
the sandbox, runs the cells, and starts it again after a death or a timeout.
"""

from __future__ import annotations

import time
from collections import Counter

from autograder import replies
from autograder.notebook import cell_name
from autograder.sandbox import Limits, Sandbox, SandboxDied, SandboxTimeout, SandboxUnavailable
from autograder.sandboxed import wire


class Session:
    """The sandbox of one notebook, as the stand-ins talk to it: started on first use; after
    a death or a timeout, started again for the next call, until one function has caused
    ``limits.restarts`` of them (it is then no longer called).

    ``program`` is the learner's cells (:func:`autograder.notebook.learner_program`), ``names``
    the functions and classes the tests need. After the start, ``kinds`` says what each name
    is in the sandbox (function, class, other, missing), ``errors`` holds the cells' exceptions
    by label, and ``notes`` what went wrong on the way (for the feedback)."""

    def __init__(self, program: list[dict], names: list[str], *, slot: int, limits: Limits,
                 isolated: bool = True):
        self.program, self.names = program, names
        self.slot, self.limits, self.isolated = slot, limits, isolated
        self.sandbox: Sandbox | None = None
        self.deadline = time.monotonic() + limits.submission_seconds
        self.skipped: set[int] = set()           # program indices left out
        self.errors: dict[str, replies.LearnerError] = {}  # cell label -> its exception
        self.kinds: dict[str, str] = {}
        self.deaths: Counter = Counter()
        self.disabled: dict[str, str] = {}
        self.notes: list[str] = []
        self.printed = ""
        self.measure_cpu = False  # read the sandbox's CPU time around the next requests
        self.call_cpu_seconds = 0.0  # CPU time of the last measured request, read from outside

    def __enter__(self) -> Session:
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def stop(self) -> None:
        if self.sandbox is not None:
            self.sandbox.kill()
            self.printed = self.sandbox.printed()
            self.sandbox = None

    def left(self) -> float:
        return self.deadline - time.monotonic()

    def start(self) -> None:
        """Start a sandbox and run the learner's cells; a cell that hangs or kills the
        process is left out and the rest run again without it (at most three times)."""
        for _ in range(4):
            sandbox = Sandbox(self.slot, self.limits, isolated=self.isolated)
            sandbox.start()
            running = [i for i in range(len(self.program)) if i not in self.skipped]
            deadline = time.monotonic() + min(self.limits.cells_seconds, max(self.left(), 1))
            current = None
            try:
                sandbox.send({"cells": [self.program[i] for i in running], "names": self.names},
                             deadline=deadline)
                while True:
                    event, _ = sandbox.receive(deadline=deadline)
                    if event.get("event") != "cell":
                        break
                    current = running[replies.cell_event(event, len(running))]
                errors, self.kinds = replies.done_event(event, len(running), self.names)
            except (SandboxTimeout, SandboxDied, wire.WireError) as failure:
                sandbox.kill()
                self.printed = sandbox.printed()
                if current is None:  # before any learner code ran: the grader's failure
                    raise SandboxUnavailable(f"the sandbox did not start: {failure} "
                                             f"{self.printed[-500:]}") from None
                why = (f"did not finish within {self.limits.cells_seconds:g} s"
                       if isinstance(failure, SandboxTimeout) else f"stopped the process: "
                       f"{failure}")
                self.skipped.add(current)
                self.notes.append(f"Your {cell_name(self.program[current])} {why}; it was left "
                                  "out and the other cells were run again without it.")
                continue
            self.errors = {self.program[i]["label"]: error
                           for i, error in zip(running, errors, strict=False) if error}
            self.sandbox = sandbox
            return
        self.notes.append("Your cells were left out one after another; grading went on "
                          "without them.")
        self.kinds = {}

    def request(self, header: dict, arrays) -> tuple[dict, dict]:
        """Ask the sandbox (starting one if none runs); a death or a timeout is noted and
        raised as SandboxDied or SandboxTimeout, with a message for the learner."""
        subject = header.get("name") or header.get("subject") or "your code"
        if subject in self.disabled:
            raise SandboxDied(self.disabled[subject])
        if self.left() <= 0:
            raise SandboxTimeout(f"the {self.limits.submission_seconds:g} s this notebook may "
                                 "take are used up")
        if self.sandbox is None:
            self.start()
        timeout = min(self.limits.call_seconds, self.left())
        try:
            if not self.measure_cpu:
                return self.sandbox.ask(header, arrays, timeout=timeout)
            before = self.sandbox.cpu_seconds()
            answer = self.sandbox.ask(header, arrays, timeout=timeout)
            self.call_cpu_seconds = self.sandbox.cpu_seconds() - before
            return answer
        except SandboxTimeout:
            failure = SandboxTimeout(f"{subject} did not answer within {timeout:g} s (an "
                                     "endless loop, or far too slow?), so it was stopped")
        except (SandboxDied, wire.WireError) as died:
            failure = SandboxDied(f"the sandbox stopped while running {subject}: {died}")
        self.stop()
        self.deaths[subject] += 1
        if self.deaths[subject] >= self.limits.restarts:
            self.disabled[subject] = f"{failure} — {subject} is not called again"
        self.notes.append(str(failure))
        raise failure
