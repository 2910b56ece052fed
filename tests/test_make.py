"""`make test` sets the machine up itself: the Debian packages the suite needs are installed
when it can (root, or password-less sudo), and otherwise it stops before anything runs, with
the one command that installs them."""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest
from conftest import ROOT

#: What `make test` needs of the machine, by the command (or file) that shows it is there.
#: What `make test` needs, as the Makefile lists it (command or file: Debian package), in its
#: order: the sandbox's, the browser's, the book's compiler, PostgreSQL's initdb (a file off the
#: PATH, wherever this machine's version keeps it), the JupyterHub test's Node.js and npm.
INITDB = next(iter(sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))), "initdb")
NEEDED = {"bwrap": "bubblewrap", "chromium": "chromium", "chromedriver": "chromium-driver",
          "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf": "fonts-dejavu-core",
          "g++": "g++", INITDB: "postgresql", "node": "nodejs", "npm": "npm"}
#: The tools the Makefile's own recipe uses before it decides.
TOOLS = ("make", "sh", "id")


#: Where a folder for another user can go: the first whose every parent that user can enter.
SHARED_TEMP = (tempfile.gettempdir(), "/tmp", "/var/tmp", "/dev/shm")


@pytest.fixture
def public_copy():
    """A fresh folder that any user can enter and read, holding a copy of what `make test`
    reads (the Makefile, and pyproject.toml that the environment's stamp depends on) in
    ``course/``: the clone itself, or pytest's own temporary folders (mode 0700), may be
    closed to the user the test runs make as."""
    base = next((Path(folder) for folder in SHARED_TEMP if Path(folder).is_dir() and all(
        p.stat().st_mode & 0o001 for p in (Path(folder), *Path(folder).parents))), None)
    if base is None:
        pytest.skip(f"no temporary folder that every user can enter: {SHARED_TEMP}")
    folder = Path(tempfile.mkdtemp(prefix="convcourse-make-", dir=base))
    try:
        (folder / "course").mkdir()
        for name in ("Makefile", "pyproject.toml"):
            shutil.copy(ROOT / name, folder / "course")
        for path in (folder, *folder.rglob("*")):
            path.chmod(0o755 if path.is_dir() else 0o644)
        yield folder
    finally:
        shutil.rmtree(folder)


def bare_path(folder: Path) -> str:
    """A PATH with make and a shell but none of the packages (and no sudo, no apt-get)."""
    bin_folder = folder / "bin"
    bin_folder.mkdir()
    for tool in TOOLS:
        (bin_folder / tool).symlink_to(shutil.which(tool))
    bin_folder.chmod(0o755)
    return str(bin_folder)


def as_a_user(command: list[str]) -> list[str]:
    """``command`` run as an unprivileged user (``nobody`` when the tests run as root)."""
    if os.geteuid() != 0:
        return command
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        pytest.skip("needs setpriv (util-linux) to drop root")
    return [setpriv, "--reuid=nobody", "--regid=nogroup", "--clear-groups", *command]


def test_without_root_or_sudo_make_test_stops_at_once_with_the_command_to_run(public_copy):
    course = public_copy / "course"
    result = subprocess.run(
        as_a_user([shutil.which("make"), "--no-print-directory", "-C", str(course), "test"]),
        env={"PATH": bare_path(public_copy), "HOME": str(public_copy)},
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

