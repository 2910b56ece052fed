"""`make test` sets the machine up itself: the Debian packages the suite needs are installed
when it can (root, or password-less sudo), and otherwise it stops before anything runs, with
the one command that installs them."""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
from pathlib import Path

import pytest
from conftest import ROOT, public_folder

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


@pytest.fixture
def public_copy():
    """A folder open to every user, holding what `make test` reads (the Makefile, and
    pyproject.toml that the environment's stamp depends on) in ``course/``."""
    with public_folder("convcourse-make-") as folder:
        (folder / "course").mkdir()
        for name in ("Makefile", "pyproject.toml"):
            shutil.copy(ROOT / name, folder / "course")
        for path in (folder / "course", *(folder / "course").iterdir()):
            path.chmod(0o755 if path.is_dir() else 0o644)
        yield folder


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

