"""`make bench` runs end to end (in its quick form: a smoke test, never a timed assertion)."""

import re

import pytest
from conftest import make

#: `make bench` grades a class with `make grade`, in the sandbox, and times it.
pytestmark = [pytest.mark.sandbox, pytest.mark.slow]


@pytest.fixture(scope="module")
def quick_bench() -> str:
    """What `make bench BENCH_ARGS=--quick` prints: both benchmarks, run once for the module."""
    result = make("bench", "BENCH_ARGS=--quick")
    assert result.returncode == 0, (result.stdout + result.stderr)[-3000:]
    return result.stdout


def test_make_bench_reports_every_implementation_and_its_ratio(quick_bench):
    rows = [line for line in quick_bench.splitlines() if line.startswith("example")]
    assert len(rows) == 3
    for row in rows:
        # Timings and ratios for both implementations; no target: it is set for larger layers.
        assert re.search(r"(\s+\d+\.\d+ ms){3}\s+numpy \d+\.\d+x, torch \d+\.\d+x$", row), row


def test_make_bench_reports_both_grading_throughputs_and_their_ratio(quick_bench):
    assert re.search(r"^Grading 3 honest submissions of 02-numpy on \d+ CPUs \(--quick",
                     quick_bench, re.M), quick_bench[-2000:]
    for grader in (r"make grade \(sandbox, \d+ workers\)", r"nbgrader autograde \(sequential\)"):
        line = rf"^{grader}\s+\d+\.\d s\s+\d+\.\d submissions/min$"
        assert re.search(line, quick_bench, re.M), quick_bench[-2000:]
    assert re.search(r"^make grade / nbgrader autograde: \d+\.\d\dx \(target >= 3x\)$",
                     quick_bench, re.M), quick_bench[-2000:]
    # Speed is only reported; the marks are checked: an honest learner gets all of them.
    assert "Both graders gave all 3 learners full marks." in quick_bench
