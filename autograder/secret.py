"""The course secret: what keeps the hidden tests' inputs unknown in an open course.

The hidden tests draw their inputs from published seeds (``conv2d_cases(210)``), and the
solutions are public, so anyone could compute nn.Conv2d's answers for those inputs ahead of
time and submit a lookup table. ``make grade`` therefore draws them from seeds that also depend
on a secret of the instructor's (:func:`convcourse.grading.cases.course_seed`):

- the secret is 32 random bytes in ``autograder/course-secret`` (git-ignored, readable by its
  owner only), created on first use and announced once; keep it for as long as the course
  runs (the same secret gives the same grades), and change it to get fresh hidden inputs;
- what grading uses is the *course key*, ``HMAC-SHA256(secret, "conv2d-course hidden seeds")``:
  set as ``$CONVCOURSE_COURSE_KEY`` in the trusted grader's process only. The sandbox starts
  from a cleared environment and the unsandboxed runner from one without it, so learner code
  never sees the key, and the secret never leaves the instructor's machine (the Gradescope zip
  carries the key, never the secret);
- a grade's fingerprint covers a digest of the key, so a changed secret grades again.

What a hostile submission can do with what it can read. In the sandbox: not the secret (not
mounted), not the key (a cleared environment; its own process namespace hides the grader's
/proc/<pid>/environ), not the hidden tests. It does receive the inputs of each call it answers
(it must, to compute), and it could put them into an exception message, which its feedback
shows (at most 3000 characters a test cell): a learner who may submit again and again, and
sees each feedback, could gather hidden inputs over many submissions and then paste a table
for them. Publish hidden-test feedback only once grading is over (Gradescope does so for the
cells with hidden tests), and make a new secret for each run of the course. Were the key
learnt, it reveals this course's hidden inputs until the secret changes, never the secret
(HMAC is one-way). Unsandboxed (``--unsafe``), learner code runs as the grader's user and can
read the secret file, the grader's environment and everything else: the secret protects
nothing there. A learner's own ``make check`` uses the published seeds.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
import sys
from pathlib import Path

from convcourse.grading import COURSE_KEY

#: The secret's file, in the course's autograder/ folder.
SECRET_FILE = "course-secret"
#: The key's file in a Gradescope zip (beside the grader's code, outside the sandbox's view).
KEY_FILE = "course-key"
_PURPOSE = b"conv2d-course hidden seeds"


def secret_path(work: Path) -> Path:
    return work / SECRET_FILE


def load_or_create(work: Path, *, announce=sys.stderr) -> bytes:
    """The course secret kept in ``work`` (the course's autograder/ folder); made on first use,
    then printed once with where it is kept."""
    path = secret_path(work)
    if path.is_file():
        text = path.read_text().strip()
        if len(text) < 32:
            raise SystemExit(f"grade: the course secret in {path} is too short (at least 32 "
                             "hexadecimal digits): delete the file to make a new one")
        return text.encode()
    work.mkdir(parents=True, exist_ok=True)
    text = secrets.token_hex(32)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w") as file:
        file.write(text + "\n")
    print(f"grade: created the course secret {text}\n"
          f"  kept in {path} (git-ignored; back it up, never publish it). The hidden tests' "
          "inputs are drawn from it: the same secret gives the same grades, a new one new "
          "inputs.", file=announce)
    return text.encode()


def course_key(secret: bytes) -> str:
    """The key grading uses: an HMAC of the secret, never the secret itself."""
    return hmac.new(secret, _PURPOSE, hashlib.sha256).hexdigest()


def key_digest(key: str | None) -> str:
    """What a grade's fingerprint records of the key (a one-way digest; '' without a key)."""
    return hashlib.sha256(key.encode()).hexdigest() if key else ""


def use_key(key: str | None) -> None:
    """Make ``key`` the one this (trusted) process draws hidden inputs with; None: the
    published seeds."""
    if key:
        os.environ[COURSE_KEY] = key
    else:
        os.environ.pop(COURSE_KEY, None)


def without_key(environment: dict[str, str]) -> dict[str, str]:
    """``environment`` without the course key: what learner code may be started with."""
    return {name: value for name, value in environment.items() if name != COURSE_KEY}
