"""The suite's rule for what the machine lacks: outside CI a test that needs the sandbox or
the browser skips and names the missing package; under CI=true every skip is a failure."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

from conftest import ROOT

SCRATCH_TESTS = '''
import pytest

@pytest.mark.sandbox
def test_needs_the_sandbox():
    pass

@pytest.mark.browser
def test_needs_the_browser():
    pass

def test_skips_for_its_own_reason():
    pytest.skip("a reason of its own")
'''


def run_scratch_suite(tmp_path, *, ci: bool) -> subprocess.CompletedProcess:
    """The three tests above, under this suite's conftest, on a PATH with no bwrap or
    Chromium (just this Python's folder)."""
    shutil.copy(ROOT / "tests" / "conftest.py", tmp_path)
    shutil.copy(ROOT / "pyproject.toml", tmp_path)  # the registered markers
    (tmp_path / "test_scratch.py").write_text(SCRATCH_TESTS)
    env = {key: value for key, value in os.environ.items() if key != "CI"}
    env.update(PATH=os.path.dirname(sys.executable), PYTHONPATH=str(ROOT),
               **({"CI": "true"} if ci else {}))
    return subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-rA",
                           "-o", "testpaths=.", str(tmp_path)],
                          cwd=tmp_path, env=env, capture_output=True, text=True, check=False)


def test_outside_ci_a_missing_sandbox_or_browser_skips_and_names_the_package(tmp_path):
    result = run_scratch_suite(tmp_path, ci=False)
    assert result.returncode == 0, result.stdout[-3000:]
    assert "3 skipped" in result.stdout
    assert "needs the sandbox: bubblewrap (bwrap) is not installed" in result.stdout
    assert "needs the browser: chromium and chromedriver not found" in result.stdout


def test_under_ci_every_skip_is_a_failure(tmp_path):
    result = run_scratch_suite(tmp_path, ci=True)
    assert result.returncode == 1, result.stdout[-3000:]
    # a skip in set-up (a missing package) reads as an error, one in the test as a failure
    assert "1 failed, 2 errors" in result.stdout
    for reason in ("needs the sandbox", "needs the browser", "a reason of its own"):
        assert f"CI runs every test, but this one skipped: Skipped: {reason}" in result.stdout
