"""What the sandbox's replies may say, checked on the grader's side before anything uses them.

Every frame from a sandbox has passed the wire's budget (:data:`wire.REPLY`: bytes, values,
depth, text lengths); this module checks its *shape*: each field has the type it should, every
text is bounded, and whatever does not fit is a :class:`wire.WireError` — a failure of the
learner's code, never of the grader. The learner's process can write anything into the reply
pipe, so nothing here is a path, a module or a name to look up: a frame of the learner's
traceback keeps only its cell's label, line number, function name and the line's text, as the
sandbox copied them from the learner's own cells (the threat model, autograder/THREATS.md,
boundary 2).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from autograder import plain
from autograder.sandboxed.wire import WireError

#: What a learner's exception type may be called on this side (else ``LearnerError``).
_TYPE_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,99}")
#: The file name the runner gives a learner's cell (autograder/sandboxed/runner.py).
_CELL = re.compile(r"<cell (.{1,200})>", re.DOTALL)
KINDS = ("function", "class", "other", "missing")


@dataclass(frozen=True)
class LearnerFrame:
    """One frame of the learner's own cells: where (the cell's label and the line), in which
    function, and the line's text as the sandbox read it from the cell."""

    cell: str
    lineno: int
    name: str
    line: str


@dataclass(frozen=True)
class LearnerError:
    """A learner's exception as plain, bounded text."""

    type: str
    bases: tuple[str, ...]
    message: str
    traceback: str
    frames: tuple[LearnerFrame, ...]


def _text(value, limit: int) -> str:
    if not isinstance(value, str):
        raise WireError(f"expected a text, got {type(value).__name__}")
    return plain.block(value, limit)


def _frame(row) -> LearnerFrame | None:
    """A frame row ``[file, line, function, text]``; None unless its file is a cell."""
    if not (isinstance(row, list) and len(row) == 4 and isinstance(row[0], str)
            and type(row[1]) is int and isinstance(row[2], str) and isinstance(row[3], str)):
        raise WireError("a traceback frame is not [file, line, function, text]")
    cell = _CELL.fullmatch(row[0])
    if cell is None:
        return None
    return LearnerFrame(plain.line(cell.group(1), 100), max(0, min(row[1], 10**6)),
                        plain.line(row[2], 100), plain.line(row[3], 300))


def learner_error(error) -> LearnerError:
    """The ``error`` field of a reply (or of a cell's outcome), checked and bounded."""
    if not isinstance(error, dict):
        raise WireError("an error is not a JSON object")
    name = error.get("type", "Exception")
    name = name if isinstance(name, str) and _TYPE_NAME.fullmatch(name) else "LearnerError"
    bases = error.get("bases", [])
    bases = tuple(str(b)[:40] for b in bases[:20]) if isinstance(bases, list) else ()
    rows = error.get("frames", [])
    if not isinstance(rows, list):
        raise WireError("an error's frames are not a list")
    frames = tuple(frame for frame in map(_frame, rows[-5:]) if frame is not None)
    return LearnerError(name, bases, _text(error.get("message", ""), 4000),
                        _text(error.get("traceback", ""), 8000), frames)


def names(reply: dict, key: str) -> list[str]:
    """A list of operator names in a reply (the convolutions or operators the call used)."""
    found = reply.get(key) or []
    if not isinstance(found, list):
        raise WireError(f"a reply's {key!r} is not a list")
    return [plain.line(name, 100) for name in found[:5]]


def cell_event(event: dict, count: int) -> int:
    """The index of the cell a ``cell`` event says is starting: one of the ``count`` sent."""
    index = event.get("index")
    if type(index) is not int or not 0 <= index < count:
        raise WireError(f"a cell event names no cell that was sent ({str(index)[:20]!r})")
    return index


def done_event(event: dict, count: int, wanted: list[str]) -> tuple[list, dict[str, str]]:
    """The cells' outcomes (None or a :class:`LearnerError` each, ``count`` at most) and what
    each wanted name is in the sandbox (one of :data:`KINDS`), from the ``done`` event."""
    if event.get("event") != "done":
        raise WireError("the cells' run ended without a 'done' event")
    outcomes, kinds = event.get("errors") or [], event.get("names") or {}
    if not isinstance(outcomes, list) or len(outcomes) > count or not isinstance(kinds, dict):
        raise WireError("a 'done' event does not list the cells' outcomes and the names")
    errors = [None if outcome is None else learner_error(outcome) for outcome in outcomes]
    return errors, {name: kinds[name] if kinds.get(name) in KINDS else "missing"
                    for name in wanted}
