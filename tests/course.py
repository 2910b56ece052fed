"""Run the real nbgrader on a scratch copy of the course, the way an instructor would."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import nbformat
from nbgrader.api import Gradebook

from autograder import grade as grader

ROOT = grader.REPOSITORY
SOLUTIONS = ROOT / "solutions"
NOTEBOOKS = ROOT / "notebooks"


def assignments() -> list[str]:
    return sorted(p.name for p in SOLUTIONS.iterdir() if p.is_dir()) if SOLUTIONS.is_dir() else []


def nbgrader(*args: str, root: Path | None = None) -> subprocess.CompletedProcess:
    """``nbgrader ARGS`` with the course's configuration, in ``root`` if given (its gradebook
    is then ``root/autograder/gradebook.db``), as the grader runs it."""
    return grader.nbgrader(root or ROOT, *args)


def answer_cells(notebook) -> dict[str, nbformat.NotebookNode]:
    """The notebook's answer cells by grade_id (the function or class each one defines)."""
    return {c.metadata["nbgrader"]["grade_id"]: c for c in notebook.cells
            if c.metadata.get("nbgrader", {}).get("solution")}


def without_solution_markers(source: str) -> str:
    """An answer cell's source as the instructor's answer alone: nbgrader's markers dropped."""
    markers = ("### BEGIN SOLUTION", "### END SOLUTION")
    return "\n".join(line for line in source.splitlines() if line.strip() not in markers)


class ScratchCourse:
    """A course folder under ``root`` holding one released assignment and its gradebook."""

    def __init__(self, root: Path, assignment: str, *, copy_of: ScratchCourse | None = None):
        """nbgrader generates ``assignment`` in ``root``; or, given ``copy_of`` (a course of
        the same assignment, nothing submitted yet), its folder is copied: the same release
        and gradebook, without running nbgrader again."""
        self.root, self.assignment = root, assignment
        if copy_of is not None:
            assert copy_of.assignment == assignment
            shutil.copytree(copy_of.root, root)
            return
        shutil.copytree(SOLUTIONS / assignment, root / "solutions" / assignment)
        result = nbgrader("generate_assignment", assignment, "--force", root=root)
        assert result.returncode == 0, result.stdout + result.stderr

    def released(self) -> dict[str, nbformat.NotebookNode]:
        folder = self.root / "notebooks" / self.assignment
        return {p.stem: nbformat.read(p, as_version=4) for p in sorted(folder.glob("*.ipynb"))}

    def source(self) -> dict[str, nbformat.NotebookNode]:
        folder = self.root / "solutions" / self.assignment
        return {p.stem: nbformat.read(p, as_version=4) for p in sorted(folder.glob("*.ipynb"))}

    def submit(self, student: str, notebooks: dict[str, nbformat.NotebookNode]) -> None:
        folder = self.root / "autograder" / "submitted" / student / self.assignment
        folder.mkdir(parents=True, exist_ok=True)
        for name, notebook in notebooks.items():
            nbformat.write(notebook, folder / f"{name}.ipynb")

    def autograde(self) -> subprocess.CompletedProcess:
        return nbgrader("autograde", self.assignment, "--force", root=self.root)

    def score(self, student: str) -> tuple[float, float]:
        with Gradebook(grader.gradebook_url(self.root)) as gradebook:
            submission = gradebook.find_submission(self.assignment, student)
            return submission.score, submission.max_score

    def feedback(self, student: str) -> str:
        """Everything the autograded notebooks show: outputs, errors and their messages."""
        folder = self.root / "autograder" / "autograded" / student / self.assignment
        parts = []
        for path in sorted(folder.glob("*.ipynb")):
            for cell in nbformat.read(path, as_version=4).cells:
                for output in cell.get("outputs", []):
                    parts += [output.get("text", ""), output.get("evalue", "")]
        return "\n".join(parts)


def definitions(path: Path) -> dict:
    """A notebook's imports, functions, classes and literal constants, run without the rest.

    Test cells and everything else (timings, demonstrations) are skipped, so the result is the
    notebook's code as a module: ``definitions(p)["conv2d_numpy"]``.
    """
    import ast

    namespace: dict = {"__name__": f"notebook_{path.stem}"}
    for cell in nbformat.read(path, as_version=4).cells:
        if cell.cell_type != "code" or cell.metadata.get("nbgrader", {}).get("grade"):
            continue
        try:
            tree = ast.parse(cell.source)
        except SyntaxError:
            continue  # IPython syntax (magics): not a definition
        keep = []
        for node in tree.body:
            literal = isinstance(node, ast.Assign) and _is_literal(node.value)
            if literal or isinstance(node, (ast.Import, ast.ImportFrom, ast.FunctionDef,
                                            ast.ClassDef)):
                keep.append(node)
        exec(compile(ast.Module(keep, []), str(path), "exec"), namespace)  # noqa: S102
    return namespace


def _is_literal(node) -> bool:
    import ast

    try:
        ast.literal_eval(node)
        return True
    except ValueError:
        return False
