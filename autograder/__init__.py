"""The course's grader: ``make grade`` (grade.py) and the Gradescope export (gradescope.py)."""

#: The files, relative to this folder, that decide a score: the scorer, the sandbox and what
#: runs inside it. A change to any of them grades everything again, and Gradescope's zip
#: carries all of them.
SCORER_FILES = ("score.py", "remote.py", "sandbox.py", "runner.py", "seal.py", "wire.py",
                "absent/__init__.py")
