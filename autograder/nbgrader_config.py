"""nbgrader's configuration for this course, for the layout in the design:

solutions/<assignment>/  instructor sources (solution regions, visible and hidden tests)
notebooks/<assignment>/  what `nbgrader generate_assignment` makes of them (committed)
autograder/...           submitted/, autograded/, feedback/, gradebook.db (git-ignored)

nbgrader finds this file from anywhere: `make venv` puts a one-line loader of it into the
environment's etc/jupyter/nbgrader_config.py, and the Makefile also sets
JUPYTER_CONFIG_PATH=autograder. So `nbgrader autograde 02-numpy` works from the repository root.
Note: plain `nbgrader autograde` runs learners' code unsandboxed, in the kernel that also runs
the tests; `make grade` (autograder/grade.py) is the trusted, sandboxed way to grade.
"""

from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
HERE = Path(__file__).resolve().parent

c = get_config()  # noqa: F821  (provided by nbgrader when it loads this file)

c.CourseDirectory.course_id = "conv2d-course"
c.CourseDirectory.root = str(ROOT)
c.CourseDirectory.source_directory = "solutions"
c.CourseDirectory.release_directory = "notebooks"
c.CourseDirectory.submitted_directory = "autograder/submitted"
c.CourseDirectory.autograded_directory = "autograder/autograded"
c.CourseDirectory.feedback_directory = "autograder/feedback"
c.CourseDirectory.solution_directory = "autograder/solution"
c.CourseDirectory.source_with_tests_directory = "autograder/source_with_tests"
c.CourseDirectory.db_url = f"sqlite:///{HERE / 'gradebook.db'}"

# What a learner finds in place of each solution region.
c.ClearSolutions.code_stub = {"python": "# YOUR CODE HERE\nraise NotImplementedError()"}
c.Execute.timeout = 600

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
