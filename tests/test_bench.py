"""`make bench` runs end to end (in its quick form: a smoke test, never a timed assertion)."""

import re

from conftest import make


def test_make_bench_reports_every_implementation_and_its_ratio():
    result = make("bench", "BENCH_ARGS=--quick")
    assert result.returncode == 0, (result.stdout + result.stderr)[-3000:]
    rows = [line for line in result.stdout.splitlines() if line.startswith("example")]
    assert len(rows) == 3
    for row in rows:
        # Timings and ratios for both implementations; no target: it is set for larger layers.
        assert re.search(r"(\s+\d+\.\d+ ms){3}\s+numpy \d+\.\d+x, torch \d+\.\d+x$", row), row
