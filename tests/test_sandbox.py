"""The bubblewrap sandbox (autograder/sandbox.py). Its command line is read without running
it: what it binds (the sandboxed folder, read-only, as one; the shared package's grading part,
not the book's figures; nothing else of the repository), what it unshares, and the limits it
passes on. The tests marked ``sandbox`` start a real one and look around inside."""

from __future__ import annotations

import dataclasses
import signal
import sys
from pathlib import Path

import pytest

from autograder import SANDBOXED, sandbox
from autograder.remote import RemoteFunction
from autograder.sandbox import Limits, bwrap_command, describe_exit, runner_limits
from autograder.session import Session

REPOSITORY = Path(__file__).resolve().parents[1]
CONVCOURSE = REPOSITORY / "convcourse"
#: bwrap's options that take a source path and a target path.
BINDS = {"--bind", "--ro-bind", "--dev-bind", "--bind-try", "--ro-bind-try", "--dev-bind-try"}


def binds(command: list[str]) -> list[tuple[str, str, str]]:
    """(option, source, target) of every bind in a bwrap command line."""
    return [(option, command[i + 1], command[i + 2]) for i, option in enumerate(command)
            if option in BINDS]


@pytest.fixture(scope="module")
def command() -> list[str]:
    return bwrap_command(3, Limits(file_bytes=5 << 20, threads=2))


def test_the_sandboxed_folder_is_bound_read_only_as_one_folder(command):
    assert ("--ro-bind", str(SANDBOXED), "/grader") in binds(command)
    inside = [b for b in binds(command) if Path(b[1]).is_relative_to(SANDBOXED)]
    assert {source for _, source, _ in inside} <= {str(SANDBOXED), str(SANDBOXED / "absent")}


def test_only_the_grading_part_of_the_shared_package_is_bound(command):
    sources = {source for _, source, _ in binds(command)}
    assert {str(CONVCOURSE / part) for part in ("__init__.py", "reference.py", "grading")} \
        <= sources
    assert not [arg for arg in command if "figures" in arg]
    assert str(CONVCOURSE) not in sources


def test_nothing_else_of_the_repository_is_bound(command):
    allowed = {SANDBOXED, SANDBOXED / "absent", Path(sys.prefix).resolve(),
               *(CONVCOURSE / part for part in ("__init__.py", "reference.py", "grading"))}
    from_repository = {Path(source) for _, source, _ in binds(command)
                       if Path(source).is_relative_to(REPOSITORY)}
    assert from_repository <= allowed  # not the repository, solutions/, autograder/, ...


def test_every_bind_is_read_only_but_the_gpus_device_files(command):
    assert {option for option, _, target in binds(command)
            if not target.startswith("/dev/")} == {"--ro-bind"}


def test_scipy_is_covered_by_the_absent_package_wherever_it_is_installed(command):
    covered = {target for option, source, target in binds(command)
               if source == str(SANDBOXED / "absent")}
    assert covered == {str(path) for path in sandbox.absent_package_dirs()}
    scipy = pytest.importorskip("scipy")
    assert str(Path(scipy.__file__).resolve().parent) in covered


def test_no_network_no_environment_and_bounded_private_folders(command):
    for option in ("--unshare-net", "--unshare-pid", "--unshare-ipc", "--die-with-parent",
                   "--new-session", "--clearenv"):
        assert option in command
    text = " ".join(command)
    assert f"--size {5 << 20} --tmpfs /tmp" in text
    assert f"--size {5 << 20} --tmpfs /home/learner" in text
    assert "--setenv OMP_NUM_THREADS 2" in text and "--setenv HOME /home/learner" in text


def test_the_runner_is_told_its_limits(monkeypatch):
    limits = Limits(cpu_seconds=7, memory_bytes=1 << 30, processes=9, file_bytes=1 << 20)
    monkeypatch.setattr(sandbox.os, "getuid", lambda: 0)
    as_root = runner_limits(2, limits, isolated=True)
    assert as_root["uid"] == sandbox.UID_BASE + 2 and as_root["alone"] is True
    assert (as_root["RLIMIT_NPROC"], as_root["RLIMIT_CPU"], as_root["RLIMIT_DATA"],
            as_root["RLIMIT_FSIZE"], as_root["RLIMIT_CORE"]) == (9, 7, 1 << 30, 1 << 20, 0)
    assert as_root["sys_path"] == [str(CONVCOURSE.parent)]
    unsafe = runner_limits(2, limits, isolated=False)
    assert unsafe["uid"] == -1 and unsafe["alone"] is False  # never kill(-1) outside a sandbox
    monkeypatch.setattr(sandbox.os, "getuid", lambda: 1000)
    as_user = runner_limits(2, limits, isolated=True)
    assert as_user["uid"] == -1 and as_user["RLIMIT_NPROC"] == 0  # it would count all of ours


def test_limits_are_fixed_values():
    limits = Limits()
    assert limits.restarts == 2 and limits.call_seconds < limits.submission_seconds
    with pytest.raises(dataclasses.FrozenInstanceError):
        limits.call_seconds = 1  # type: ignore[misc]
    assert dataclasses.replace(limits, call_seconds=1).call_seconds == 1


def test_a_missing_bwrap_is_named(monkeypatch):
    monkeypatch.setattr(sandbox.shutil, "which", lambda name: None)
    assert "apt-get install bubblewrap" in sandbox.bwrap_problem()


@pytest.mark.parametrize(("code", "words"), [
    (None, "it stopped answering"),
    (0, "it exited with status 0"),
    (3, "it exited with status 3"),
    (-signal.SIGKILL, "SIGKILL (killed: out of memory or over a limit)"),
    (-signal.SIGSEGV, "SIGSEGV (a segmentation fault)"),
    (-signal.SIGXCPU, "over its CPU time limit"),
    (128 + signal.SIGXFSZ, "SIGXFSZ (wrote a file over the size limit)"),  # as bwrap reports it
    (-signal.SIGTERM, "it was ended by SIGTERM"),
])
def test_an_exit_status_is_said_in_words(code, words):
    assert words in describe_exit(code)


PROBE = """
import os


def probe():
    def writable(path):
        try:
            with open(os.path.join(path, "x"), "w"):
                return True
        except OSError:
            return False

    return {"grader": sorted(os.listdir("/grader")),
            "grader writable": writable("/grader"),
            "repository": sorted(os.listdir(REPOSITORY)),
            "convcourse": sorted(os.listdir(os.path.join(REPOSITORY, "convcourse"))),
            "home writable": writable(os.path.expanduser("~"))}
"""


@pytest.mark.sandbox
def test_inside_the_learner_sees_the_grading_helpers_but_not_the_figures_or_the_repository():
    cells = [{"label": "probe", "source": f"REPOSITORY = {str(REPOSITORY)!r}\n" + PROBE},
             {"label": "grading", "source": "import convcourse.grading.checks\n"
                                            "import convcourse.grading.cases\n"
                                            "import convcourse.reference\n"},
             {"label": "figures", "source": "import convcourse.figures\n"},
             {"label": "scipy", "source": "import scipy.signal\n"}]
    with Session(cells, ["probe"], slot=0, limits=Limits()) as session:
        seen = RemoteFunction(session, "probe")()
    assert "grading" not in session.errors
    assert session.errors["figures"]["type"] == "ModuleNotFoundError"
    assert "library convolutions" in session.errors["scipy"]["message"]
    assert seen["grader"] == sorted(p.name for p in SANDBOXED.iterdir())
    assert not seen["grader writable"] and seen["home writable"]
    assert set(seen["repository"]) <= {"convcourse", Path(sys.prefix).name}  # the environment
    assert sorted(seen["convcourse"]) == ["__init__.py", "grading", "reference.py"]
