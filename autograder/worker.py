"""What each of make grade's worker processes needs before its first learner, made once in the
forkserver that forks them all (grade._pool preloads this module): PyTorch, the scorer and the
report's mistake names imported, and the feedback pages' exporter built, its templates compiled
by one page rendered here. Each worker made that itself before: 0.75 CPU-s a worker."""

import nbformat
import torch  # noqa: F401  (the learners' functions are checked with it)

from autograder import feedback, report
from autograder.score import NotebookResult

report.named_mistake(None)
feedback.feedback_html(
    NotebookResult("warm-up", [], feedback=nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_markdown_cell("The size is $H_\\text{out}$."),
        nbformat.v4.new_code_cell("x = 1", outputs=[nbformat.v4.new_output(
            "error", ename="Failed", evalue="warm", traceback=["Failed: warm"])])])),
    student="warm-up", assignment="warm-up")
