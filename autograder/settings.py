"""The course's settings that change from one installation to the next, read from the
environment here and nowhere else:

- ``CONVCOURSE_DB_URL``: the gradebook, any SQLAlchemy URL (for a class on several machines,
  ``postgresql+psycopg://grader@dbhost/conv2d``); default: SQLite in the course's
  autograder/gradebook.db;
- ``CONVCOURSE_EXCHANGE``: nbgrader's exchange folder (``Exchange.root``); default: nbgrader's
  own, /usr/local/share/nbgrader/exchange;
- ``CONVCOURSE_COURSE_ID``: the course's id in the exchange and the gradebook; default:
  conv2d-course;
- ``CONVCOURSE_LATE_PENALTY``: ``LateSubmissionPlugin.penalty_method``, nbgrader's ``none``
  (the default) or ``zero``.

autograder/nbgrader_config.py hands them to nbgrader, and ``make grade`` (autograder/grade.py)
reads the same, so plain ``nbgrader`` commands and ``make grade`` use one gradebook and one
exchange. Only the standard library here: nbgrader's configuration file loads this module by
its path.
"""

from __future__ import annotations

import os
from pathlib import Path

DB_URL = "CONVCOURSE_DB_URL"
EXCHANGE = "CONVCOURSE_EXCHANGE"
COURSE_ID = "CONVCOURSE_COURSE_ID"
LATE_PENALTY = "CONVCOURSE_LATE_PENALTY"

#: nbgrader's default Exchange.root, used where CONVCOURSE_EXCHANGE is not set.
NBGRADER_EXCHANGE = "/usr/local/share/nbgrader/exchange"


def _read(name: str) -> str | None:
    return os.environ.get(name, "").strip() or None


def db_url(root: Path) -> str:
    """The gradebook of the course in ``root``."""
    return _read(DB_URL) or f"sqlite:///{Path(root) / 'autograder' / 'gradebook.db'}"


def exchange_root() -> str | None:
    """CONVCOURSE_EXCHANGE (None: not set here; nbgrader then uses its own default)."""
    return _read(EXCHANGE)


def course_id() -> str:
    return _read(COURSE_ID) or "conv2d-course"


def penalty_method() -> str | None:
    """CONVCOURSE_LATE_PENALTY, as set: nbgrader's LateSubmissionPlugin checks it (make grade
    says so before it grades)."""
    return _read(LATE_PENALTY)
