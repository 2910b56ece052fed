"""The class report: what a batch says about the class, after every ``make grade``.

``autograder/report/<assignment>.html`` (plots drawn as inline SVG: it opens offline) and the
same numbers in ``autograder/report/<assignment>.csv``: the score histogram (the gradebook's
scores, manual ones included), each test's pass rate (named by the docstring its test cell
opens with), the most common named mistakes (the diagnoses of convcourse.grading, with their
counts and which learners), and the submissions whose code hung, crashed or was stopped. The
per-test results come from each learner's result.json. :func:`table` is the short version
``make grade`` prints.

Learner text (ids) reaches HTML only through :func:`html.escape`, and CSV through
:func:`autograder.plain.csv_field`.
"""

from __future__ import annotations

import ast
import csv
import functools
import html
import json
from dataclasses import dataclass, field
from pathlib import Path

import nbformat

from autograder import plain

#: Most named mistakes shown.
MOST_MISTAKES = 10


@dataclass
class ClassReport:
    assignment: str
    scores: dict[str, float]                      # student -> score (the gradebook's)
    max_score: float
    titles: dict[str, str]                        # test grade_id -> what it checks
    passed: dict[str, list[str]] = field(default_factory=dict)   # grade_id -> who passed
    failed: dict[str, list[str]] = field(default_factory=dict)   # grade_id -> who failed
    mistakes: dict[str, set[str]] = field(default_factory=dict)  # mistake -> who made it
    stopped: dict[str, str] = field(default_factory=dict)        # student -> the first note

    def histogram(self, bins: int = 10) -> list[tuple[float, float, int]]:
        """(low, high, how many) for ``bins`` equal ranges of 0..max_score (the last closed)."""
        width = (self.max_score or 1) / bins
        counts = [0] * bins
        for score in self.scores.values():
            counts[min(int(score / width), bins - 1) if score > 0 else 0] += 1
        return [(i * width, (i + 1) * width, counts[i]) for i in range(bins)]


def cell_titles(source) -> dict[str, str]:
    """Each test cell's grade_id -> the first line of the docstring it opens with (the design
    has every test cell say what it checks), else its grade_id."""
    titles = {}
    for cell in source.cells:
        meta = cell.get("metadata", {}).get("nbgrader", {})
        if cell.cell_type != "code" or not meta.get("grade") or meta.get("solution"):
            continue
        title = meta.get("grade_id", "")
        try:
            body = ast.parse(cell.source).body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant) \
                    and isinstance(body[0].value.value, str):
                title = body[0].value.value.strip().splitlines()[0]
        except (SyntaxError, IndexError, ValueError):
            pass
        titles[meta.get("grade_id", "")] = title
    return titles


@functools.cache
def _mistake_names() -> list[tuple[str, str]]:
    """(what a failure message holds when a mistake is named, the mistake's name)."""
    from convcourse.grading import backward, diagnose

    named = [(m.advice.split("{")[0][:50], m.name) for m in diagnose.MISTAKES]
    named += [(m.message[:50], m.message.split(":")[0].split(".")[0][:70])
              for m in backward.MISTAKES]
    return named


def named_mistake(message: str | None) -> str | None:
    """The mistake a test's failure message names (None: it names none). Called where a
    learner is graded (result.json keeps it as the test's ``mistake``), which has the checks
    and PyTorch loaded already: make grade's own process, which writes the report, needs
    neither."""
    return next((name for marker, name in _mistake_names() if message and marker in message),
                None)


def build(work: Path, source_folder: Path, assignment: str,
          scores: dict[str, float], max_score: float) -> ClassReport:
    """The report of ``assignment`` for the learners in ``scores`` (the gradebook's)."""
    titles: dict[str, str] = {}
    for path in sorted(source_folder.glob("*.ipynb")):
        titles |= cell_titles(nbformat.read(path, as_version=4))
    report = ClassReport(assignment, scores, max_score, titles)
    for student in sorted(scores):
        path = work / "autograded" / student / assignment / "result.json"
        try:
            result = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        for notebook in result.get("notebooks", {}).values():
            if notebook.get("notes") and student not in report.stopped:
                report.stopped[student] = str(notebook["notes"][0])
            for test in notebook.get("tests", []):
                grade_id, message = test.get("grade_id", ""), test.get("message")
                passed = message is None and test.get("score") == test.get("points")
                (report.passed if passed else report.failed).setdefault(
                    grade_id, []).append(student)
                if isinstance(name := test.get("mistake"), str):
                    report.mistakes.setdefault(name, set()).add(student)
    return report


def common_mistakes(report: ClassReport) -> list[tuple[str, list[str]]]:
    ranked = sorted(report.mistakes.items(), key=lambda item: (-len(item[1]), item[0]))
    return [(name, sorted(who)) for name, who in ranked[:MOST_MISTAKES]]


def pass_rates(report: ClassReport) -> list[tuple[str, str, int, int]]:
    """(grade_id, what it checks, passed, graded) for each test, in the notebook's order."""
    rows = []
    for grade_id, title in report.titles.items():
        passed = len(report.passed.get(grade_id, []))
        rows.append((grade_id, title, passed, passed + len(report.failed.get(grade_id, []))))
    return rows


# --- the CSV, the page, the table -----------------------------------------------------------------

def write_csv(report: ClassReport, path: Path) -> Path:
    rows = [["score", f"{low:g}-{high:g}", count, ""] for low, high, count in report.histogram()]
    rows += [["test", f"{grade_id}: {title}", passed, graded]
             for grade_id, title, passed, graded in pass_rates(report)]
    rows += [["mistake", name, len(who), " ".join(who)] for name, who in common_mistakes(report)]
    rows += [["stopped", student, 1, note] for student, note in report.stopped.items()]
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="", encoding="utf-8") as file:
        writer = csv.writer(file)
        writer.writerow(["kind", "what", "count", "of / learners"])
        writer.writerows([[plain.csv_field(cell) for cell in row] for row in rows])
    return path


def _bars(items: list[tuple[str, float, str]], most: float) -> str:
    """A horizontal bar chart as SVG: (label, value, text at the bar's end) each."""
    height, width = 22, 360
    out = [f'<svg role="img" width="{width + 300}" height="{height * len(items) + 4}" '
           f'xmlns="http://www.w3.org/2000/svg">']
    for row, (label, value, text) in enumerate(items):
        y = row * height + 2
        length = 0 if not most else width * value / most
        out.append(f'<text x="0" y="{y + 15}" font-size="13">{html.escape(label[:38])}</text>'
                   f'<rect x="290" y="{y + 3}" width="{length:.1f}" height="{height - 6}" '
                   f'fill="#4878a8"/><text x="{296 + length:.1f}" y="{y + 15}" '
                   f'font-size="13">{html.escape(text)}</text>')
    return "".join(out) + "</svg>"


def write_html(report: ClassReport, path: Path) -> Path:
    histogram = report.histogram()
    scores = list(report.scores.values())
    mean = sum(scores) / len(scores) if scores else 0
    rates = pass_rates(report)
    parts = [
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>",
        f"<title>Class report: {html.escape(report.assignment)}</title>",
        "<style>body{font-family:sans-serif;max-width:60rem;margin:2rem auto;padding:0 1rem}"
        "td,th{padding:.2rem .6rem;text-align:left;vertical-align:top}"
        "td{overflow-wrap:anywhere}</style></head><body>",
        f"<h1>Class report: {html.escape(report.assignment)}</h1>",
        f"<p>{len(scores)} learners, mean score {mean:.2f} of {report.max_score:g}.</p>",
        "<h2>Scores</h2>",
        _bars([(f"{low:g} to {high:g}", count, str(count)) for low, high, count in histogram],
              max((c for _, _, c in histogram), default=0)),
        "<h2>Pass rate per test</h2>",
        _bars([(title, passed / graded if graded else 0, f"{passed} of {graded}")
               for _, title, passed, graded in rates], 1),
        "<h2>Most common mistakes</h2>",
        "<table><tr><th>mistake</th><th>learners</th><th>who</th></tr>",
        *(f"<tr><td>{html.escape(name)}</td><td>{len(who)}</td>"
          f"<td>{html.escape(', '.join(who))}</td></tr>" for name, who in common_mistakes(report)),
        "</table>",
        "<h2>Code that hung, crashed or was stopped</h2>",
        "<table>", *(f"<tr><td>{html.escape(student)}</td><td>{html.escape(note)}</td></tr>"
                     for student, note in report.stopped.items()), "</table>",
        "</body></html>"]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(parts), encoding="utf-8")
    return path


def table(report: ClassReport) -> list[str]:
    """The report in a few lines for the terminal (learner text made plain by the caller)."""
    lines = ["  Scores: " + "  ".join(f"{low:g}-{high:g}: {count}"
                                      for low, high, count in report.histogram(5))]
    hardest = sorted(pass_rates(report), key=lambda row: row[2] / max(row[3], 1))[:5]
    lines += [f"  passed by {passed} of {graded}: {title}"
              for _, title, passed, graded in hardest if graded]
    lines += [f"  mistake made by {len(who)}: {name}" for name, who in
              common_mistakes(report)[:5]]
    return lines


def write(work: Path, source_folder: Path, assignment: str, scores: dict[str, float],
          max_score: float) -> tuple[ClassReport, list[Path]]:
    report = build(work, source_folder, assignment, scores, max_score)
    folder = work / "report"
    return report, [write_html(report, folder / f"{assignment}.html"),
                    write_csv(report, folder / f"{assignment}.csv")]
