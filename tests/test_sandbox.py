"""The bubblewrap sandbox (autograder/sandbox.py). Its command line is read without running
it: what it binds (the sandboxed folder, read-only, as one; the shared package's grading part,
not the book's figures; nothing else of the repository), what it unshares, and the limits it
passes on. The tests marked ``sandbox`` start a real one and look around inside; those of
issue 15 try its limits as a whole (its control group: memory, processes, CPU time, the kill)
and its user of its own, and the fallback where cgroups cannot be used."""

from __future__ import annotations

import concurrent.futures
import ctypes
import dataclasses
import errno
import os
import platform
import signal
import sys
import uuid
from pathlib import Path

import pytest
import torch

from autograder import SANDBOXED, cgroup, sandbox, uids
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


def test_pytorch_is_covered_too_where_the_assignment_is_numpy_only():
    torch_dir = str(Path(torch.__file__).resolve().parent)
    for absent, covered in [(("scipy",), False), (("scipy", "torch"), True)]:
        command = bwrap_command(0, Limits(absent=absent))
        assert (torch_dir in {target for _, source, target in binds(command)
                              if source == str(SANDBOXED / "absent")}) is covered
        assert runner_limits(-1, Limits(absent=absent), isolated=True)["absent"] == list(absent)
    for wrong in [(), ("torch",), ("scipy", "numpy")]:  # SciPy always; nothing unknown
        with pytest.raises(ValueError, match="a sandbox lacks SciPy"):
            Limits(absent=wrong)


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
    as_root = runner_limits(70001, limits, isolated=True)
    assert as_root["uid"] == 70001 and as_root["alone"] is True
    assert (as_root["RLIMIT_NPROC"], as_root["RLIMIT_CPU"], as_root["RLIMIT_DATA"],
            as_root["RLIMIT_FSIZE"], as_root["RLIMIT_CORE"]) == (9, 7, 1 << 30, 1 << 20, 0)
    assert as_root["sys_path"] == [str(CONVCOURSE.parent)]
    unsafe = runner_limits(-1, limits, isolated=False)
    assert unsafe["alone"] is False  # never kill(-1) outside a sandbox
    monkeypatch.setattr(sandbox.os, "getuid", lambda: 1000)
    as_user = runner_limits(-1, limits, isolated=True)
    assert as_user["RLIMIT_NPROC"] == 0  # it would count all of ours


def test_a_sandbox_gets_a_user_of_its_own_only_from_a_grader_that_is_root(monkeypatch):
    drawn = iter([uids.FIRST_UID + 5, uids.FIRST_UID + 6])
    monkeypatch.setattr(sandbox, "fresh_uid", lambda: next(drawn))
    monkeypatch.setattr(sandbox.os, "getuid", lambda: 0)
    assert [sandbox.sandbox_user(True), sandbox.sandbox_user(True)] == \
        [uids.FIRST_UID + 5, uids.FIRST_UID + 6]
    assert sandbox.sandbox_user(False) == -1  # unisolated: no user to become
    monkeypatch.setattr(sandbox.os, "getuid", lambda: 1000)
    assert sandbox.sandbox_user(True) == -1  # bwrap's user namespace instead


def test_user_ids_are_drawn_once_each_even_by_graders_running_together(tmp_path):
    counter = tmp_path / "run" / "uids-drawn"
    with concurrent.futures.ProcessPoolExecutor(4) as pool:
        drawn = list(pool.map(uids.fresh_uid, [counter] * 40))
    assert sorted(drawn) == list(range(uids.FIRST_UID, uids.FIRST_UID + 40))
    counter.write_text("damaged")
    with pytest.raises(ValueError):
        uids.fresh_uid(counter)  # never starts again from the first id


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
    assert session.errors["figures"].type == "ModuleNotFoundError"
    assert "library convolutions" in session.errors["scipy"].message
    assert seen["grader"] == sorted(p.name for p in SANDBOXED.iterdir())
    assert not seen["grader writable"] and seen["home writable"]
    assert set(seen["repository"]) <= {"convcourse", Path(sys.prefix).name}  # the environment
    assert sorted(seen["convcourse"]) == ["__init__.py", "grading", "reference.py"]


LOOK_FOR_TORCH = f"""
import os, sys
TORCH = {str(Path(torch.__file__).resolve().parent)!r}

def look():
    return {{"loaded": sorted(name for name in sys.modules if name.split(".")[0] == "torch"),
             "files": sorted(os.listdir(TORCH)),
             "library": os.path.exists(os.path.join(TORCH, "lib"))}}


def conv(x, w):
    from numpy.lib.stride_tricks import sliding_window_view
    return (sliding_window_view(x, w.shape) * w).sum(axis=(-2, -1))
"""


@pytest.mark.sandbox
def test_a_numpy_only_sandbox_has_no_pytorch_at_all_and_says_why():
    import numpy as np

    cells = [{"label": "look", "source": LOOK_FOR_TORCH},
             {"label": "imports", "source": "import torch.nn.functional as F\n"}]
    with Session(cells, ["look", "conv"], slot=0,
                 limits=Limits(absent=("scipy", "torch"))) as session:
        seen = RemoteFunction(session, "look")()
        x, w = np.arange(20.0).reshape(4, 5), np.ones((2, 2))
        out = RemoteFunction(session, "conv")(x, w)
    assert seen == {"loaded": [], "files": ["__init__.py"], "library": False}
    error = session.errors["imports"]
    assert error.type == "ModuleNotFoundError" and "graded with NumPy alone" in error.message
    assert np.array_equal(out, x[:-1, :-1] + x[1:, :-1] + x[:-1, 1:] + x[1:, 1:])


# --- limits per sandbox and a fresh identity per sandbox (issue 15) --------------------------

def run_cells(source: str, names: list[str], limits: Limits | None = None, **session):
    """A started session whose one cell is ``source`` (the learner's code of a test)."""
    return Session([{"label": "cell", "source": source}], names, slot=0,
                   limits=limits or Limits(), **session)


@pytest.fixture
def cgroups():
    """Skips where sandboxes get no cgroup here, saying why (not root, no controllers)."""
    if problem := cgroup.cgroup_problem():
        pytest.skip(problem)


@pytest.fixture
def probed_again():
    """cgroup.cgroup_problem tries once per process: again for this test, and after it."""
    cgroup.probe.cache_clear()
    yield
    cgroup.probe.cache_clear()


HOLD = """
import os, time


def hold(count, size):
    '''Start count processes that each write size bytes and keep them; return how many held
    their bytes at the same time, at most (each says so through a pipe; a death ends it).'''
    read, write = os.pipe()
    os.set_blocking(read, False)
    index_of = {}
    for index in range(count):
        pid = os.fork()
        if pid == 0:
            block = b"x" * size
            os.write(write, bytes([index]))
            time.sleep(600)
            os._exit(0)
        index_of[pid] = index
    holding, ended, most = set(), set(), 0
    deadline = time.monotonic() + 60
    while len(ended) < count and time.monotonic() < deadline:
        try:
            holding |= set(os.read(read, 64))
        except BlockingIOError:
            pass
        pid, _ = os.waitpid(-1, os.WNOHANG)
        while pid:
            holding.discard(index_of[pid])
            ended.add(index_of[pid])
            pid = os.waitpid(-1, os.WNOHANG)[0] if len(ended) < count else 0
        most = max(most, len(holding))
        if len(holding | ended) == count:
            break
        time.sleep(0.01)
    for pid in index_of:
        try:
            os.kill(pid, 9)
        except ProcessLookupError:
            pass
    return most


HELD = hold(8, 256 << 20)


def held():
    return HELD
"""


@pytest.mark.sandbox
def test_the_memory_cap_holds_for_all_processes_of_a_sandbox_together(cgroups):
    limits = Limits(memory_bytes=1 << 30)
    with run_cells(HOLD, ["held"], limits) as session:
        held = RemoteFunction(session, "held")()
        assert held * (256 << 20) <= limits.memory_bytes, f"{held} processes held 256 MB at once"
        assert session.sandbox.cgroup.memory_peak() <= limits.memory_bytes


FORK = """
import os, time


def fork_until_refused(most):
    '''Start processes (each waits) until the kernel refuses one; return how many started
    and the refusal's errno.'''
    started, refused = [], None
    for _ in range(most):
        try:
            pid = os.fork()
        except OSError as error:
            refused = error.errno
            break
        if pid == 0:
            time.sleep(600)
            os._exit(0)
        started.append(pid)
    for pid in started:
        os.kill(pid, 9)
        os.waitpid(pid, 0)
    return len(started), refused
"""


@pytest.mark.sandbox
def test_the_process_cap_stops_a_fork_loop_across_the_whole_sandbox(cgroups):
    limits = Limits(processes=16)
    with run_cells(FORK, ["fork_until_refused"], limits) as session:
        started, refused = RemoteFunction(session, "fork_until_refused")(100)
        events = (session.sandbox.cgroup.directories["pids"] / "pids.events").read_text()
    assert refused == errno.EAGAIN and started < limits.processes
    # the cgroup refused it (it counts bwrap's processes too), before the user's RLIMIT_NPROC
    assert int(events.split()[1]) > 0


TRACES = """
import ctypes, os

libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long
ADD_KEY, KEYCTL, KEYCTL_SEARCH = 248, 250, 10  # x86_64
RINGS = {"user": -4, "session": -3}
IPC_KEY, IPC_CREAT = 0x5EED, 0o1000


def plant(name):
    '''Leave traces called name: a key in this user's keyring and in the session keyring, a
    SysV shared memory segment and a file in /dev/shm (where it can).'''
    for ring in RINGS.values():
        libc.syscall(ADD_KEY, b"user", name.encode(), b"secret", 6, ring)
    libc.shmget(IPC_KEY, 4096, IPC_CREAT | 0o666)
    try:
        with open(os.path.join("/dev/shm", name), "w"):
            pass
    except OSError:
        pass
    return os.getuid()


def find(name):
    '''The traces called name found here, and who we are.'''
    found = [label for label, ring in RINGS.items()
             if libc.syscall(KEYCTL, KEYCTL_SEARCH, ring, b"user", name.encode(), 0) >= 0]
    if libc.shmget(IPC_KEY, 0, 0) >= 0:
        found.append("SysV shared memory")
    if os.listdir("/dev/shm"):
        found.append("/dev/shm")
    return os.getuid(), found
"""


@pytest.mark.sandbox
@pytest.mark.skipif(platform.machine() != "x86_64", reason="the keyctl syscall numbers in the "
                    "learner's code of this test are x86_64's")
def test_each_sandbox_is_a_user_of_its_own_and_nothing_of_it_reaches_the_next():
    join_a_session_keyring()
    name = f"convcourse-{uuid.uuid4()}"
    with run_cells(TRACES, ["plant"]) as first:
        planter = RemoteFunction(first, "plant")(name)
    with run_cells(TRACES, ["find"]) as second:
        finder, found = RemoteFunction(second, "find")(name)
    assert (planter == finder, found) == (False, [])  # another user, and no trace of the first


def join_a_session_keyring() -> None:
    """Give this process (the grader's side) a session keyring, as a login session or a
    container has: every process it starts inherits it unless it joins a new one."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.syscall.restype = ctypes.c_long
    assert libc.syscall(250, 1, None) > 0, os.strerror(ctypes.get_errno())  # KEYCTL_JOIN_...


BURN = """
import os, threading, time


def spin(seconds):
    end = time.thread_time() + seconds
    while time.thread_time() < end:
        pass


def burn(seconds, where):
    '''Use seconds of CPU time: here, in a thread of its own or in a child process.'''
    if where == "thread":
        thread = threading.Thread(target=spin, args=(seconds,))
        thread.start()
        thread.join()
    elif where == "child":
        pid = os.fork()
        if pid == 0:
            spin(seconds)
            os._exit(0)
        os.waitpid(pid, 0)
    else:
        spin(seconds)
"""


def burned(session, wheres: tuple[str, ...]) -> dict[str, float]:
    """The CPU time the grader reads from outside for a call that uses 0.3 s, by where."""
    used = {}
    for where in wheres:
        before = session.sandbox.cpu_seconds()
        RemoteFunction(session, "burn")(0.3, where)
        used[where] = session.sandbox.cpu_seconds() - before
    return used


@pytest.mark.sandbox
def test_the_cpu_time_of_a_call_is_read_from_outside_threads_and_children_included(cgroups):
    with run_cells(BURN, ["burn"]) as session:
        used = burned(session, ("here", "thread", "child"))
    assert all(0.25 <= seconds <= 0.6 for seconds in used.values()), used


LEAVE = """
import os, time


def leave_behind():
    '''Start a process that leaves this one's tree (a daemon: two forks, a new session).'''
    if os.fork() == 0:
        os.setsid()
        if os.fork() == 0:
            time.sleep(600)
        os._exit(0)
    os.wait()
"""


def running(pid: int) -> bool:
    """Whether a process may still run code: not a zombie, nor exiting (PF_EXITING, 0x4: a
    namespace's init that was killed waits there, past its cgroup, for its namespace to end)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    except FileNotFoundError:
        return False
    return fields[0] != "Z" and not int(fields[6]) & 0x4


@pytest.mark.parametrize("isolated", [pytest.param(True, marks=pytest.mark.sandbox), False])
def test_a_kill_ends_every_process_of_the_sandbox_and_removes_its_cgroup(cgroups, isolated):
    with run_cells(LEAVE, ["leave_behind"], isolated=isolated) as session:
        RemoteFunction(session, "leave_behind")()
        box = session.sandbox
        pids, paths = box.cgroup.pids(), box.cgroup.paths
        assert len(pids) >= 2  # the runner and the daemon at least
        box.kill()
        assert not [path for path in paths if path.exists()]
        assert not [pid for pid in pids if running(pid)]


@pytest.mark.sandbox
def test_without_cgroups_sandboxes_still_run_and_the_grader_is_told_why(monkeypatch):
    monkeypatch.setenv(cgroup.SWITCH, "off")
    assert "switched off" in cgroup.cgroup_problem() and cgroup.cgroup_note()
    with run_cells(BURN, ["burn"]) as session:
        assert session.sandbox.cgroup is None
        used = burned(session, ("here", "thread", "child"))  # from /proc, ended ones too
    assert all(0.25 <= seconds <= 0.6 for seconds in used.values()), used


def test_a_grader_that_cannot_make_cgroups_is_told_why(monkeypatch, probed_again):
    def refused(*args):
        raise PermissionError(13, "Permission denied", "/sys/fs/cgroup/memory/convcourse-1")

    monkeypatch.setattr(cgroup, "create_cgroup", refused)
    assert "Permission denied" in cgroup.cgroup_problem()
    assert cgroup.sandbox_cgroup(1 << 30, 64) is None


HYBRID = """\
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu,cpuacct rw,relatime - cgroup cgroup rw,cpu,cpuacct
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
39 31 0:36 / /sys/fs/cgroup/pids rw,relatime - cgroup cgroup rw,pids
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
"""


@pytest.mark.parametrize(("membership", "mountinfo", "expected"), [
    ("8:pids:/\n4:memory:/jobs/7\n2:cpu,cpuacct:/\n0::/\n", HYBRID,
     {"pids": "/sys/fs/cgroup/pids", "memory": "/sys/fs/cgroup/memory/jobs/7",
      "cpu": "/sys/fs/cgroup/cpu,cpuacct", "cpuacct": "/sys/fs/cgroup/cpu,cpuacct",
      "": "/sys/fs/cgroup/unified"}),
    ("0::/user.slice/grader.scope\n",
     "30 24 0:26 / /sys/fs/cgroup rw shared:4 - cgroup2 cgroup2 rw,nsdelegate\n",
     {"": "/sys/fs/cgroup/user.slice/grader.scope"}),
    ("0::/elsewhere\n",  # a mount of another part of the hierarchy does not show ours
     "30 24 0:26 /docker/1 /sys/fs/cgroup rw - cgroup2 cgroup2 rw\n", {}),
])
def test_the_graders_own_cgroups_are_found_from_proc(membership, mountinfo, expected):
    assert cgroup.own_cgroups(membership, mountinfo) == \
        {name: Path(path) for name, path in expected.items()}


def test_a_cgroup_v2_beside_the_graders_gets_its_caps_and_counts_cpu_time(tmp_path, monkeypatch):
    """cgroup v2 where this machine has none: its files as the kernel names them, in folders."""
    root, grader = tmp_path, tmp_path / "grader"
    grader.mkdir()
    for folder in (root, grader):
        (folder / "cgroup.procs").write_text("")
    (root / "cgroup.controllers").write_text("cpu memory pids\n")
    (root / "cgroup.subtree_control").write_text("\n")
    monkeypatch.setattr(cgroup, "own_cgroups", lambda *texts: {"": grader})
    kind, parents = cgroup.layout.__wrapped__()  # not the cached layout of this machine
    assert (kind, set(parents.values())) == (cgroup.CgroupV2, {root})
    assert (root / "cgroup.subtree_control").read_text() == "+memory +pids"
    monkeypatch.setattr(cgroup, "layout", lambda: (kind, parents))
    made = cgroup.create_cgroup("convcourse-1-sandbox-x", 1 << 30, 16)
    assert made.paths == [root / "convcourse-1-sandbox-x"]
    files = {name: (made.paths[0] / name).read_text() for name in ("memory.max", "pids.max")}
    assert files == {"memory.max": str(1 << 30), "pids.max": "16"}
    (made.paths[0] / "cpu.stat").write_text("usage_usec 1500000\nuser_usec 1000000\n")
    assert made.cpu_seconds() == 1.5
    assert made.memory_peak() is None  # before Linux 5.19
    (made.paths[0] / "cgroup.procs").write_text("")
    (made.paths[0] / "cgroup.kill").write_text("")
    made.kill()
    assert (made.paths[0] / "cgroup.kill").read_text() == "1"
