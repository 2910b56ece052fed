"""The timing harness of the notebooks' speed cells and of ``make bench``
(convcourse/grading/timing.py): what a cell may claim is decided by the numbers, and on a busy
machine it warns instead of claiming (tests/test_ungraded_cells.py runs the cells themselves)."""

from __future__ import annotations

import re

import pytest

from convcourse.grading import timing
from convcourse.grading.timing import Rounds, rounds, verdict

CLAIMS = re.compile(r"It meets the goal|It misses the goal|It is at the edge of the goal")


@pytest.fixture
def quiet_load(monkeypatch):
    monkeypatch.setattr(timing.os, "getloadavg", lambda: (0.1, 0.1, 0.1))


def timed(ratios, held=1.0) -> Rounds:
    return Rounds({"ours": [r * 0.01 for r in ratios], "theirs": [0.01] * len(ratios)}, held)


@pytest.mark.parametrize(("ratios", "claim"), [
    ([2.0, 2.1, 2.2, 2.1, 2.0], "It meets the goal of at most 2.5x."),
    ([3.0, 3.1, 3.2, 3.1, 3.0], "It misses the goal of at most 2.5x."),
    ([2.4, 2.5, 2.6, 2.5, 2.4], "It is at the edge of the goal of 2.5x: run the cell again."),
])
def test_a_goal_is_claimed_only_as_the_rounds_show_it(quiet_load, ratios, claim):
    said = verdict(timed(ratios), "ours", "theirs", goal=2.5)
    assert said.endswith(claim) and "Warning" not in said
    assert "median of 5 rounds" in said


@pytest.mark.parametrize(("ratios", "held", "doubt"), [
    ([2.0, 2.1, 2.2, 2.1, 2.0], 0.6, "had a core only 60% of the time"),
    ([1.0, 3.0, 1.5, 2.5, 2.0], 1.0, "The rounds disagree"),
])
def test_a_busy_machine_or_disagreeing_rounds_warn_and_claim_nothing(quiet_load, ratios, held,
                                                                     doubt):
    said = verdict(timed(ratios, held), "ours", "theirs", goal=2.5)
    assert "Warning:" in said and doubt in said and not CLAIMS.search(said)
    assert "cannot be told" in said


def test_a_load_above_the_cores_warns(monkeypatch):
    monkeypatch.setattr(timing.os, "getloadavg", lambda: (64.0, 64.0, 64.0))
    assert "load is 64.0" in verdict(timed([2.0] * 5), "ours", "theirs", goal=2.5)


def test_rounds_take_turns_and_time_every_call():
    order = []
    timed_calls = rounds({name: (lambda n=name: order.append(n)) for name in "abc"}, 3,
                         warmups=1)
    assert order == list("abc") + list("abc") + list("bca") + list("cab")  # warm-up, rotated
    assert {name: len(seconds) for name, seconds in timed_calls.seconds.items()} == \
        {"a": 3, "b": 3, "c": 3}
    assert 0 <= timed_calls.held <= 1
