"""Feedback never names the wrong mistake: the realistic corpus (tests/mistakes/realistic/),
whole wrong functions written as learners write them, each with its true cause, goes through
the assignments' own test cells. Every failure's message names the true cause or describes
what is wrong without a name, in the visible tests and in the whole cells (``make check``);
and most entries are named right in the visible tests."""

from __future__ import annotations

import ast
import inspect
import re
from pathlib import Path

import pytest
from mistakes.realistic import ENTRIES, NAMES, UNDECIDED, failures, verdict

from convcourse.grading import diagnose

GRADING = Path(diagnose.__file__).parent
NAMED_RIGHT = 0.85  # the share of entries the visible tests must name right


@pytest.fixture(scope="module")
def visible() -> dict[str, dict[str, str]]:
    return {name: failures(name, hidden=False) for name in ENTRIES}


def test_the_corpus_is_large_and_covers_every_function_and_the_issues_four():
    assert len(ENTRIES) >= 30
    assert {entry.target for entry in ENTRIES.values()} == {
        "conv2d_naive", "conv2d_numpy", "conv2d_backward"}
    causes = {entry.cause for entry in ENTRIES.values()}
    assert {"'same' split evenly", "stride on the taps", "dilation on the windows",
            "computed in float32"} <= causes
    assert causes <= set(NAMES)


@pytest.mark.parametrize("name", sorted(ENTRIES))
def test_each_entry_is_a_whole_function_of_numpy(name):
    """A learner's whole function (loops, or vectorised), not a one-line edit of ours."""
    entry = ENTRIES[name]
    function = getattr(entry.module, name.split(":")[1])
    body = ast.parse(inspect.getsource(function)).body[0].body
    assert len(body) >= 4, f"{name} is too short to be a learner's whole function"
    imported = {node.names[0].name.split(".")[0] for node in ast.walk(
        ast.parse(inspect.getsource(entry.module))) if isinstance(node, ast.Import)}
    assert imported <= {"numpy", "math"}


def test_every_name_is_in_the_feedbacks_own_words():
    """A reworded advice would make a name invisible to :func:`verdict`: each phrase that
    marks a name must stand in the grading code."""
    source = " ".join(" ".join(path.read_text().split()) for path in GRADING.glob("*.py"))
    source = re.sub(r"""(["'])\s+f?(["'])""", "", source)  # implicit concatenations joined

    def stands(phrase: str) -> bool:  # a dtype in a phrase may be a {field} in the source
        pattern = re.sub(r"b?float(?:16|32|64)", r"(?:\g<0>|{[^}]*})", re.escape(phrase))
        return re.search(pattern, source) is not None

    missing = [phrase for phrases in NAMES.values() for phrase in phrases
               if not stands(phrase)]
    assert not missing, missing
    assert UNDECIDED in source


@pytest.mark.parametrize("name", sorted(ENTRIES))
def test_no_visible_test_names_a_wrong_mistake(visible, name):
    found = visible[name]
    assert found, f"{name} passes every visible test: it measures nothing"
    cause = ENTRIES[name].cause
    wrong = {cell: message for cell, message in found.items()
             if verdict(message, cause) == "wrong"}
    assert not wrong, wrong


def test_most_entries_are_named_right_in_the_visible_tests(visible):
    named = [name for name, found in visible.items()
             if any(verdict(message, ENTRIES[name].cause) == "right"
                    for message in found.values())]
    assert len(named) >= NAMED_RIGHT * len(ENTRIES), sorted(set(ENTRIES) - set(named))


@pytest.mark.parametrize("name", sorted(ENTRIES))
def test_no_whole_test_cell_names_a_wrong_mistake(name):
    """The hidden tests too, as ``make check`` runs them (the published seeds)."""
    cause = ENTRIES[name].cause
    wrong = {cell: message for cell, message in failures(name, hidden=True).items()
             if verdict(message, cause) == "wrong"}
    assert not wrong, wrong


def test_a_grid_failure_says_first_what_the_failing_cases_share():
    found = failures("naive:same_split_evenly", hidden=True)["test_naive_everything"]
    head = found.split("\n- ")[0]
    assert "every failing case has an even kernel with padding='same'" in head
    assert "and none of the" in head and "that passed has" in head


def test_the_verdicts_mean_what_they_say():
    assert verdict("you did not pad x: ...", "padding ignored") == "right"
    assert verdict("you did not pad x: ...", "flipped kernel") == "wrong"
    assert verdict("the values differ at 3 of 9 positions", "flipped kernel") == "described"
    both = f"... and {UNDECIDED} ... you did not pad x ... as if `padding` were the total"
    assert verdict(both, "padding ignored") == "described"
    assert verdict(both, "flipped kernel") == "wrong"
