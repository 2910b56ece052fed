"""`make test` sets the machine up itself: the Debian packages the suite needs are installed
when it can (root, or password-less sudo), and otherwise it stops before anything runs, with
the one command that installs them."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
from conftest import ROOT

#: What `make test` needs of the machine, by the command (or file) that shows it is there.
NEEDED = {"bwrap": "bubblewrap", "chromium": "chromium", "chromedriver": "chromium-driver",
          "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf": "fonts-dejavu-core"}
#: The tools the Makefile's own recipe uses before it decides.
TOOLS = ("make", "sh", "id")


def bare_path(tmp_path: Path) -> str:
    """A PATH with make and a shell but none of the packages (and no sudo, no apt-get)."""
    folder = tmp_path / "bin"
    folder.mkdir()
    for tool in TOOLS:
        (folder / tool).symlink_to(shutil.which(tool))
    folder.chmod(0o755)
    tmp_path.chmod(0o755)
    return str(folder)


def as_a_user(command: list[str]) -> list[str]:
    """``command`` run as an unprivileged user (``nobody`` when the tests run as root)."""
    if os.geteuid() != 0:
        return command
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        pytest.skip("needs setpriv (util-linux) to drop root")
    return [setpriv, "--reuid=nobody", "--regid=nogroup", "--clear-groups", *command]


def test_without_root_or_sudo_make_test_stops_at_once_with_the_command_to_run(tmp_path):
    result = subprocess.run(
        as_a_user([shutil.which("make"), "--no-print-directory", "-C", str(ROOT), "test"]),
        env={"PATH": bare_path(tmp_path), "HOME": str(tmp_path)},
        capture_output=True, text=True, check=False, timeout=60)
    # No command is on that PATH; a file is missing only if this machine lacks it.
    missing = [package for need, package in NEEDED.items()
               if not (need.startswith("/") and Path(need).exists())]
    assert result.returncode != 0
    message = [line for line in result.stderr.splitlines() if line.startswith("make: missing")]
    assert message == [
        f"make: missing Debian packages: {' '.join(missing)}; install them with: "
        f"sudo apt-get install -y --no-install-recommends {' '.join(missing)}"
    ], result.stderr
    assert result.stdout == "", "nothing may run before the packages are there"

