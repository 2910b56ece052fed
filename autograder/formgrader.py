"""Formgrader's per-row "Autograde" button, switched off: it would grade a learner unsandboxed.

The button asks formgrader's API for plain ``nbgrader autograde`` of one learner: nbgrader
first empties the learner's autograded folder (``make grade``'s result.json and feedback
notebooks with it), then runs the learner's cells in a Jupyter kernel of the grader's own, the
kernel that also runs the hidden tests (autograder/THREATS.md says what a learner's code can
do there). nbgrader 0.9 has no setting that hands that work to another grader, but the first
object its Autograde makes from the configuration, before it touches any file, is its
exporter. autograder/nbgrader_config.py names :class:`SandboxOnly` as the exporter of the
Autograde that formgrader's API makes, and of no other (``c.NbGraderAPI.Autograde``: the
``nbgrader autograde`` command is untouched). It refuses at once with the command that grades
in the sandbox, which formgrader shows in its error window: nothing runs, nothing changes.

nbgrader_config.py loads this file by its path (the Jupyter server does not have the
repository on its import path), so it imports nothing of the grader.
"""

from __future__ import annotations

import shlex

from nbconvert.exporters import Exporter


class AutogradeSwitchedOff(RuntimeError):
    """Formgrader's Autograde was asked for, and refused."""


def refusal(assignment: str) -> str:
    """What the instructor is told instead, with the command for ``assignment``."""
    return (
        "Formgrader's Autograde is switched off in this course: it would run the learner's "
        "notebook unsandboxed, in the grader's own kernel. Nothing was run and nothing was "
        "changed. Grade in the bubblewrap sandbox from a terminal in the course folder:\n\n"
        f"    make grade ASSIGNMENT={shlex.quote(assignment)} SUBMISSIONS=autograder/submitted"
        "\n\nIt grades the submissions collected there (those graded before and unchanged keep "
        "their grade; add GRADE_ARGS=--force to grade them all again), records the scores in "
        "this gradebook and writes the feedback. Then reload this page.")


class SandboxOnly(Exporter):
    """In place of Autograde's exporter: refuses before anything is read, run or removed."""

    def __init__(self, config=None, **kwargs):
        autograde = kwargs.get("parent")
        coursedir = getattr(autograde, "coursedir", None)
        message = refusal(str(getattr(coursedir, "assignment_id", "") or "<assignment>"))
        if autograde is not None:
            autograde.log.error(message)  # formgrader shows the log above the traceback
        raise AutogradeSwitchedOff(message)
