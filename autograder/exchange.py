"""nbgrader's exchange, on the grader's side: when a submission was handed in, and the files
``nbgrader release_feedback`` reads beside each learner's feedback.

**When.** A submission's ``timestamp.txt`` says when it was handed in; nbgrader reads it for
the gradebook's submission time, formgrader's check that a submission was graded, ``collect
--update`` and the late policy. How far it is trusted depends on who wrote it (THREATS.md,
section 1):

- our collector writes it from what an LMS names (Blackboard's attempt time, Brightspace's
  date): trusted as far as the LMS's names are;
- ``nbgrader submit`` writes it, and names the learner's folder in the exchange's inbound,
  *as the learner*: a learner with a terminal can write any time into either. What no learner
  can set back is the time the kernel records at every change of a file (its ctime). So for a
  submission that came through the exchange (it holds the ``submission_secret.txt`` that
  ``nbgrader submit`` made, and the inbound folder with that secret is found), the time is the
  last change the kernel saw to that folder (:func:`exchange_time`);
- otherwise it is the learner's word (their own file in a folder or zip batch).

Every time is read strictly (:func:`parse_time`), and is never later than when make grade
reads it: an impossible time is replaced by that. :func:`settle_time` writes the result back
in nbgrader's own format, so the gradebook, formgrader and the exchange read one time.

**Feedback.** ``release_feedback`` opens ``timestamp.txt`` and ``submission_secret.txt`` in
every learner's feedback folder and names the released page by a hash of the secret, which
``fetch_feedback`` recomputes from the learner's copy: :func:`hand_back` writes both.
"""

from __future__ import annotations

import os
import pwd
import re
import secrets
import stat
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

from autograder import settings

TIMESTAMP = "timestamp.txt"
SECRET = "submission_secret.txt"
#: nbgrader's default Exchange.timestamp_format, in UTC (nbgrader keeps times as naive UTC).
TIME_FORMAT = "%Y-%m-%d %H:%M:%S.%f UTC"
#: A time as nbgrader writes it in UTC, its default (``2026-12-01 23:59:00.123456 UTC``), or
#: as our collector does (``2026-12-01 23:59:00``): nothing else is read as a time. nbgrader's
#: own reading (``nbgrader.utils.parse_utc``) gives these the same time; numeric offsets it
#: reads as seconds, and zone names it may not know, so neither is taken.
TIME = re.compile(r"(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d)(?:\.(\d{1,6}))?(?: UTC| GMT)?",
                  re.ASCII)
#: No submission of this course is older.
EARLIEST = datetime(2000, 1, 1)
#: What nbgrader's submit writes as the secret: secrets.token_hex(64).
SECRET_FORM = re.compile(r"[0-9a-f]{32,256}")
#: The most bytes read of either file, and the most entries of an inbound folder looked at.
MAX_BYTES = 512
MAX_ENTRIES = 2000


def utc(seconds: float) -> datetime:
    """A POSIX time as nbgrader keeps times: naive, in UTC."""
    return datetime.fromtimestamp(seconds, timezone.utc).replace(tzinfo=None)


def parse_time(text: str) -> datetime | None:
    """The time ``text`` holds, as naive UTC; None unless it is one of the forms of
    :data:`TIME`, exactly (surrounding white space aside)."""
    match = TIME.fullmatch(text.strip())
    if match is None:
        return None
    day, fraction = match.groups()
    try:
        when = datetime.strptime(day, "%Y-%m-%d %H:%M:%S")
    except ValueError:
        return None
    return when + timedelta(microseconds=int((fraction or "0").ljust(6, "0")))


def read_small(path: Path) -> str | None:
    """A small ASCII file's text; None where it is missing, a link, not a regular file, larger
    than :data:`MAX_BYTES` or not ASCII."""
    try:
        descriptor = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError:
        return None
    with os.fdopen(descriptor, "rb") as file:
        if not stat.S_ISREG(os.fstat(descriptor).st_mode):
            return None
        data = file.read(MAX_BYTES + 1)
    if len(data) > MAX_BYTES or not data.isascii():
        return None
    return data.decode("ascii")


def read_time(folder: Path) -> datetime | None:
    """The time in ``folder``'s timestamp.txt (None: none, or not a time)."""
    text = read_small(folder / TIMESTAMP)
    return parse_time(text) if text is not None else None


def read_secret(folder: Path) -> str | None:
    """The submission secret in ``folder``, as nbgrader's submit wrote it (None: none, or not
    of that form)."""
    text = read_small(folder / SECRET)
    return text if text is not None and SECRET_FORM.fullmatch(text) else None


# --- when a submission was handed in ------------------------------------------------------------

def inbound() -> Path:
    """The exchange's inbound folder of this course, as nbgrader's collect reads it."""
    root = settings.exchange_root() or settings.NBGRADER_EXCHANGE
    return Path(root) / settings.course_id() / "inbound"


def last_change(folder: Path) -> float:
    """The latest ctime of ``folder`` and of everything in it (links not followed); past
    :data:`MAX_ENTRIES` entries, now (a learner who fills a folder only makes it later)."""
    latest, seen = folder.lstat().st_ctime, 0
    for directory, folders, names in os.walk(folder):
        for name in folders + names:
            seen += 1
            if seen > MAX_ENTRIES:
                return time.time()
            try:
                latest = max(latest, os.lstat(os.path.join(directory, name)).st_ctime)
            except OSError:
                continue  # gone while read: its folder's ctime changed with it
    return latest


def exchange_time(student: str, assignment: str, secret: str) -> datetime | None:
    """When the kernel last saw a change to the learner's inbound folder of this submission;
    None where the exchange holds no such folder (or is not on this machine)."""
    try:
        entries = [entry for entry in inbound().iterdir()
                   if entry.name.startswith(f"{student}+{assignment}+")]
    except OSError:
        return None
    try:
        account = pwd.getpwnam(student).pw_uid
    except KeyError:
        account = None  # not a user of this machine (a hub on Kubernetes: everyone is jovyan)
    times = []
    for entry in entries:
        try:
            if stat.S_ISDIR(entry.lstat().st_mode) and _may_be(entry, secret, account):
                times.append(last_change(entry))
        except OSError:
            continue  # removed while read
    return utc(max(times)) if times else None


def _may_be(entry: Path, secret: str, account: int | None) -> bool:
    """Whether the inbound folder ``entry`` may hold the submission of ``secret``: it holds that
    secret; or it cannot be read and belongs to the learner's own account (a learner who hides
    their folder makes it no earlier: its last change is the one that hid it; another's hidden
    folder under their name does not count)."""
    path = entry / SECRET
    if not os.access(entry, os.R_OK | os.X_OK) or (path.exists() and
                                                   not os.access(path, os.R_OK)):
        return account is not None and entry.lstat().st_uid == account
    return read_small(path) == secret


def settle_time(folder: Path, student: str, assignment: str) -> datetime | None:
    """Decide when the submission in ``folder`` (``submitted/<student>/<assignment>``) was
    handed in, write it there as nbgrader writes it, and return it (None: nothing says)."""
    now = utc(time.time())
    claimed = read_time(folder)
    secret = read_secret(folder)
    when = exchange_time(student, assignment, secret) if secret else None
    if when is None:
        if not os.path.lexists(folder / TIMESTAMP):
            return None
        when = claimed
        if when is None or not EARLIEST <= when <= now:
            when = now  # not a time it could have been handed in: the latest it could be
    when = min(when, now)
    if when != claimed:
        _write(folder / TIMESTAMP, f"{when:{TIME_FORMAT}}")
    return when


def _write(path: Path, text: str) -> None:
    """Write a small file whole, replacing (never following) whatever has its name."""
    part = path.with_name(f".{path.name}.{secrets.token_hex(4)}.part")
    descriptor = os.open(part, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644)
    with os.fdopen(descriptor, "w", encoding="ascii") as file:
        file.write(text)
    os.replace(part, path)


# --- feedback ------------------------------------------------------------------------------------

def hand_back(submitted: Path, feedback: Path) -> None:
    """Beside the feedback pages in ``feedback``: the submission's time and its secret, as
    ``release_feedback`` reads them. A submission that did not come through the exchange has no
    secret: it gets one of its own (kept across runs), so its page is released under a name
    no one can guess, and the class's release goes on."""
    if not feedback.is_dir() or feedback.is_symlink():
        return
    when = read_time(submitted)
    _write(feedback / TIMESTAMP, f"{when:{TIME_FORMAT}}" if when is not None else "")
    secret = read_secret(submitted) or read_secret(feedback) or secrets.token_hex(64)
    if read_small(feedback / SECRET) != secret:
        _write(feedback / SECRET, secret)
