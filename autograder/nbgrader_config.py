"""nbgrader's configuration for this course, for the layout in the design:

solutions/<assignment>/  instructor sources (solution regions, visible and hidden tests)
notebooks/<assignment>/  what `nbgrader generate_assignment` makes of them (committed)
autograder/...           submitted/, autograded/, feedback/, gradebook.db (git-ignored)

nbgrader finds this file from anywhere: `make venv` puts a one-line loader of it into the
environment's etc/jupyter/nbgrader_config.py, and the Makefile also sets
JUPYTER_CONFIG_PATH=autograder. So `nbgrader autograde 02-numpy` works from the repository root.
Note: plain `nbgrader autograde` runs learners' code unsandboxed, in the kernel that also runs
the tests; `make grade` (autograder/grade.py) is the trusted, sandboxed way to grade.

What changes between installations (the gradebook's URL, the exchange folder, the course id,
the late penalty) is not written here: autograder/settings.py reads it from CONVCOURSE_*
environment variables, and make grade reads the same, so both use one gradebook.
"""

import runpy
from pathlib import Path
from types import SimpleNamespace

ROOT = Path(__file__).resolve().parent.parent
HERE = Path(__file__).resolve().parent


def neighbour(name: str) -> SimpleNamespace:
    """autograder/<name>.py, run by its path: nbgrader loads this file from anywhere, with no
    repository on sys.path (settings.py and formgrader.py import nothing of the grader)."""
    return SimpleNamespace(**runpy.run_path(str(HERE / f"{name}.py")))


settings = neighbour("settings")

c = get_config()  # noqa: F821  (provided by nbgrader when it loads this file)

c.CourseDirectory.course_id = settings.course_id()
# Set only where the variable is (else nbgrader's own default, or a hub's /etc/jupyter config).
if exchange := settings.exchange_root():
    c.Exchange.root = exchange
if penalty := settings.penalty_method():
    c.LateSubmissionPlugin.penalty_method = penalty
c.CourseDirectory.root = str(ROOT)
c.CourseDirectory.source_directory = "solutions"
c.CourseDirectory.release_directory = "notebooks"
c.CourseDirectory.submitted_directory = "autograder/submitted"
c.CourseDirectory.autograded_directory = "autograder/autograded"
c.CourseDirectory.feedback_directory = "autograder/feedback"
c.CourseDirectory.solution_directory = "autograder/solution"
c.CourseDirectory.source_with_tests_directory = "autograder/source_with_tests"
c.CourseDirectory.db_url = settings.db_url(ROOT)

# What a learner finds in place of each solution region.
c.ClearSolutions.code_stub = {"python": "# YOUR CODE HERE\nraise NotImplementedError()"}
c.Execute.timeout = 600
# Cells that only demonstrate or time things (a training run, benchmarks) run in no grading:
# plain nbgrader (autograde, validate) skips them as the sandboxed grader does.
c.Execute.skip_cells_with_tag = "skip-when-grading"

# LMS zips: `make grade SUBMISSIONS=class.zip` does NOT use nbgrader's zip_collect. It reads the
# zip itself (autograder/collect.py, whose NAMINGS table holds the naming rules): whose a file is
# comes only from its top-level name, nested archives are never unpacked, links and escaping
# paths are refused, and a bad member costs only that file. zip_collect matches this pattern
# anywhere in a file's path (a learner's folder can then name another learner), unpacks archives
# inside archives without a limit, and stops at the first duplicate. The settings below are only
# for instructors who run plain `nbgrader zip_collect` on downloads they trust: the download goes
# to autograder/downloaded/<assignment>/archive/, and file names are matched by this pattern,
# `<student_id>_<anything_>notebook.ipynb` or `<student_id>/<notebook>.ipynb`, whose id starts
# with a letter or digit (never `.`, `..` or a spreadsheet formula).
c.ZipCollectApp.downloaded_directory = "autograder/downloaded"
c.FileNameCollectorPlugin.named_regexp = (
    r"^(?:.*/)?(?P<student_id>[A-Za-z0-9][A-Za-z0-9.@+-]*)(?:/|_(?:[^/]*_)?)"
    r"(?P<file_id>[^/_]+\.ipynb)$"
)

# Formgrader's per-row "Autograde" button would empty the learner's autograded folder and run
# their notebook unsandboxed, in the grader's own kernel: switched off for the Autograde that
# formgrader's API makes (and no other: `nbgrader autograde` is untouched). It answers with the
# command that grades in the sandbox, `make grade`; autograder/formgrader.py says how.
c.NbGraderAPI.Autograde.exporter_class = neighbour("formgrader").SandboxOnly
