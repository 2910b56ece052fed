"""`make bench` runs end to end (in its quick form: a smoke test, never a timed assertion)."""

import re

from conftest import make


def test_make_bench_reports_every_implementation_and_its_ratio():
    result = make("bench", "BENCH_ARGS=--quick")
    assert result.returncode == 0, (result.stdout + result.stderr)[-3000:]
    rows = [line for line in result.stdout.splitlines() if line.startswith("example")]
    assert len(rows) == 3
    for row in rows:
        assert re.search(r"numpy \d+\.\d+x \(<= 2\.5x\), torch \d+\.\d+x \(<= 1\.5x\)", row), row
