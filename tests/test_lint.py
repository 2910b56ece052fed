"""The code, notebooks included, is lint-clean and the pre-commit configuration is valid."""

import subprocess
import sys
from pathlib import Path

from conftest import ROOT

BIN = Path(sys.executable).parent
#: Every folder of code: the package, the grader, the tests, the book's extensions, and the
#: solution notebooks (ruff reads their code cells).
LINTED = ("convcourse", "autograder", "tests", "book/_ext", "solutions")


def test_ruff_finds_nothing():
    result = subprocess.run(
        [BIN / "ruff", "check", *LINTED],
        cwd=ROOT, capture_output=True, text=True, check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_pre_commit_config_is_valid():
    result = subprocess.run(
        [BIN / "pre-commit", "validate-config", ".pre-commit-config.yaml"],
        cwd=ROOT, capture_output=True, text=True, check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
