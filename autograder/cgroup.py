"""Each sandbox's processes as one group: caps on their memory and number together, their CPU
time read from outside, and a kill that reaches every one of them.

The per-process limits of the runner (RLIMIT_DATA, RLIMIT_NPROC: autograder/sandboxed/runner.py)
hold for one process each: a learner's code that starts 64 processes may hold 64 times the
memory cap. A control group (cgroup) counts all the processes of a sandbox together, however
they were started, and the kernel, not the sandbox, keeps its accounts. Every sandbox gets a
fresh one, made by the trusted grader beside or under its own cgroup before the sandbox
starts:

- cgroup v1 (one hierarchy per controller, such as ``/sys/fs/cgroup/memory``): a directory in
  each of the memory, pids and cpuacct hierarchies;
- cgroup v2 (one hierarchy): one directory beside the grader's own cgroup (cgroup v2 lets no
  cgroup that holds processes pass controllers down), with the memory and pids controllers
  passed down by their parent (``cgroup.subtree_control``).

Where neither can be used (not root, no controller, read-only, switched off with
``CONVCOURSE_CGROUPS=off``), :func:`cgroup_problem` says why and sandboxes run with the
per-process limits only (:func:`cgroup_note` says so in a summary); :func:`tree_cpu_seconds`
then reads the CPU time from /proc.
"""

from __future__ import annotations

import errno
import functools
import os
import re
import signal
import time
import uuid
from pathlib import Path

#: Set to ``off`` to give sandboxes no cgroup (the tests of the fallback do).
SWITCH = "CONVCOURSE_CGROUPS"

#: Puts the shell that runs it into the cgroups named by its arguments (up to ``--``), then
#: becomes the command after them. Writing "0" to cgroup.procs moves the writer itself, so the
#: sandbox's first process is inside before any of its code runs, and all it starts is too.
#: (Popen's preexec_fn could do the same after the fork, but it is unsafe in a grader with
#: threads, which this one has; moving bwrap once started would race with what it runs.)
JOIN = 'while [ "$1" != -- ]; do echo 0 > "$1" || exit 125; shift; done; shift; exec "$@"'


class CgroupUnavailable(RuntimeError):
    """No cgroup can be made for a sandbox here (the message says why)."""


class Cgroup:
    """The control group of one sandbox: created with its caps before the sandbox starts,
    joined by the sandbox's first process (:meth:`wrap`), killed and removed with it.
    ``directories`` maps a controller (memory, pids, cpuacct or cpu) to its directory; in
    cgroup v2 they are all one directory."""

    def __init__(self, directories: dict[str, Path]):
        self.directories = directories

    @property
    def paths(self) -> list[Path]:
        return sorted(set(self.directories.values()))

    def wrap(self, command: list[str]) -> list[str]:
        """``command``, started inside this cgroup (see :data:`JOIN`)."""
        return ["/bin/sh", "-c", JOIN, "join-cgroup",
                *(str(path / "cgroup.procs") for path in self.paths), "--", *command]

    def limit(self, memory_bytes: int, processes: int) -> None:
        raise NotImplementedError

    def memory_peak(self) -> int | None:
        """The most memory (bytes) its processes held together so far, where the kernel
        says."""
        raise NotImplementedError

    def cpu_seconds(self) -> float | None:
        """CPU time (user and system) of all its processes so far, the ended ones included;
        None where no CPU accounting controller is mounted."""
        raise NotImplementedError

    def pids(self) -> list[int]:
        """The processes in it now (host pids)."""
        return [int(pid) for pid in read(self.directories["pids"] / "cgroup.procs").split()]

    def kill(self, timeout: float = 10.0) -> None:
        """SIGKILL every process in it until none is left. No process can start meanwhile
        (pids.max 0), so a fork loop cannot outrun the kill."""
        write(self.directories["pids"] / "pids.max", 0)
        deadline = time.monotonic() + timeout
        while (pids := self.pids()) and time.monotonic() < deadline:
            for pid in pids:  # a pid read here cannot be reused this soon (systemd does so too)
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            time.sleep(0.002)

    def remove(self, timeout: float = 5.0) -> None:
        """Remove its directories, waiting for its killed processes to finish exiting."""
        deadline = time.monotonic() + timeout
        for path in self.paths:
            while True:
                try:
                    path.rmdir()
                    break
                except FileNotFoundError:
                    break
                except OSError as error:
                    if error.errno != errno.EBUSY or time.monotonic() > deadline:
                        raise
                    time.sleep(0.005)


class CgroupV1(Cgroup):
    """A directory in each of the memory, pids and (where mounted) cpuacct hierarchies."""

    def limit(self, memory_bytes: int, processes: int) -> None:
        memory = self.directories["memory"]
        write(memory / "memory.limit_in_bytes", memory_bytes)
        if (swap := memory / "memory.memsw.limit_in_bytes").exists():
            write(swap, memory_bytes)  # memory and swap together: nothing more in swap
        write(self.directories["pids"] / "pids.max", processes)

    def memory_peak(self) -> int | None:
        return int(read(self.directories["memory"] / "memory.max_usage_in_bytes"))

    def cpu_seconds(self) -> float | None:
        if "cpuacct" not in self.directories:
            return None
        return int(read(self.directories["cpuacct"] / "cpuacct.usage")) / 1e9  # nanoseconds


class CgroupV2(Cgroup):
    """One directory, with the memory and pids controllers."""

    def limit(self, memory_bytes: int, processes: int) -> None:
        path = self.paths[0]
        write(path / "memory.max", memory_bytes)
        if (swap := path / "memory.swap.max").exists():
            write(swap, 0)
        write(path / "pids.max", processes)

    def memory_peak(self) -> int | None:
        peak = self.paths[0] / "memory.peak"  # since Linux 5.19
        return int(read(peak)) if peak.exists() else None

    def cpu_seconds(self) -> float | None:
        stat = dict(line.split() for line in read(self.paths[0] / "cpu.stat").splitlines())
        return int(stat["usage_usec"]) / 1e6

    def kill(self, timeout: float = 10.0) -> None:
        if (kill := self.paths[0] / "cgroup.kill").exists():  # since Linux 5.14: all at once
            write(kill, 1)
        super().kill(timeout)


def read(path: Path) -> str:
    return path.read_text()


def write(path: Path, value) -> None:
    with open(path, "w") as file:
        file.write(str(value))


# --- where the grader's own cgroups are --------------------------------------------------------

def own_cgroups(membership: str, mountinfo: str) -> dict[str, Path]:
    """The directories of this process's own cgroups, by controller ("" for the cgroup v2
    hierarchy), from the texts of /proc/self/cgroup and /proc/self/mountinfo."""
    mounts = []  # (controllers, root, mount point); controllers {""} for cgroup v2
    for line in mountinfo.splitlines():
        left, _, right = line.partition(" - ")
        fields, kind = left.split(), right.split()
        if len(fields) > 4 and len(kind) > 2 and kind[0] in ("cgroup", "cgroup2"):
            controllers = {""} if kind[0] == "cgroup2" else set(kind[2].split(","))
            mounts.append((controllers, unescape(fields[3]), Path(unescape(fields[4]))))
    found: dict[str, Path] = {}
    for line in membership.splitlines():
        _, controllers, path = line.split(":", 2)
        names = controllers.split(",")  # [""] for cgroup v2
        for served, root, mountpoint in mounts:
            relative = os.path.relpath(path, root)
            if set(names) <= served and not relative.startswith(".."):  # it shows our cgroup
                found.update(dict.fromkeys(names, mountpoint / relative))
                break
    return found


def unescape(field: str) -> str:
    """A path of /proc/self/mountinfo, with its octal escapes (``\\040`` for a space) undone."""
    return re.sub(r"\\([0-7]{3})", lambda match: chr(int(match.group(1), 8)), field)


@functools.cache
def layout() -> tuple[type[Cgroup], dict[str, Path]]:
    """The kind of cgroup a sandbox gets here and under which directories, by controller:
    cgroup v1 where the memory controller is in a v1 hierarchy (under the grader's own
    cgroups), else cgroup v2 (see :func:`v2_parent`)."""
    own = own_cgroups(read(Path("/proc/self/cgroup")), read(Path("/proc/self/mountinfo")))
    if "memory" in own:
        if "pids" not in own:
            raise CgroupUnavailable("no cgroup v1 hierarchy has the pids controller")
        return CgroupV1, {name: own[name] for name in ("memory", "pids", "cpuacct")
                          if name in own}
    if "" not in own:
        raise CgroupUnavailable("no cgroup hierarchy with the memory controller is mounted")
    parent = v2_parent(own[""])
    available = read(parent / "cgroup.controllers").split()
    if missing := {"memory", "pids"} - set(available):
        raise CgroupUnavailable(f"the cgroup v2 {parent} offers no {' and '.join(sorted(missing))}"
                                " controller to its children (cgroup.controllers)")
    pass_down(parent)
    return CgroupV2, dict.fromkeys(("memory", "pids", "cpu"), parent)


def v2_parent(own: Path) -> Path:
    """Where the sandboxes' cgroups go in cgroup v2: beside the grader's own. A cgroup that
    passes controllers down may hold no process (but the root), and the grader's own holds
    the grader. Only where the grader's is the root of what is mounted, under it."""
    return own.parent if (own.parent / "cgroup.procs").exists() else own


def pass_down(parent: Path) -> None:
    """Let the cgroups made under ``parent`` (cgroup v2) use the memory and pids controllers.
    The kernel refuses it where ``parent`` holds processes itself (other than the root): the
    grader should then run in a cgroup of its own inside a delegated one, e.g. under
    ``systemd-run -p Delegate=yes -p DelegateSubgroup=grader``."""
    control = parent / "cgroup.subtree_control"
    if {"memory", "pids"} <= set(read(control).split()):
        return
    try:
        write(control, "+memory +pids")
    except OSError as error:
        why = f"{control}: {error.strerror}"
        if error.errno == errno.EBUSY:
            why += "; it holds processes: run the grader in a cgroup of its own below it"
        raise CgroupUnavailable(f"the cgroup v2 {parent} cannot pass the memory and pids "
                                f"controllers to its children ({why})") from None


# --- one sandbox's cgroup ------------------------------------------------------------------------

def create_cgroup(name: str, memory_bytes: int, processes: int) -> Cgroup:
    """A new cgroup ``name`` where :func:`layout` says, with the caps on memory (all its
    processes together, swap included) and on processes (threads count too)."""
    kind, parents = layout()
    cgroup = kind({controller: parent / name for controller, parent in parents.items()})
    try:
        for path in cgroup.paths:
            path.mkdir()
        cgroup.limit(memory_bytes, processes)
    except BaseException:
        cgroup.remove()
        raise
    return cgroup


def sandbox_cgroup(memory_bytes: int, processes: int) -> Cgroup | None:
    """A fresh cgroup for one sandbox; None where :func:`cgroup_problem` says why not."""
    if cgroup_problem():
        return None
    return create_cgroup(new_name("sandbox"), memory_bytes, processes)


def new_name(purpose: str) -> str:
    """A name no other cgroup has: it says whose and what for (the grader's process id)."""
    return f"convcourse-{os.getpid()}-{purpose}-{uuid.uuid4().hex[:12]}"


def cgroup_problem() -> str | None:
    """Why sandboxes get no cgroup here (None: they do), found by making one: say it once per
    batch, as for bubblewrap."""
    if os.environ.get(SWITCH, "").lower() == "off":
        why = f"switched off with {SWITCH}=off"
    elif (why := probe()) is None:
        return None
    return (f"sandboxes get no control group here ({why}), so memory and processes are limited "
            "per process only: a learner's processes together may hold more than the memory cap")


@functools.cache
def probe() -> str | None:
    """Why no cgroup can be made here (None: one can), tried once per grader process, which
    also removes what graders that were killed left behind."""
    try:
        create_cgroup(new_name("probe"), 64 << 20, 8).remove()
    except (CgroupUnavailable, OSError) as error:
        return str(error)
    remove_left_behind(set(layout()[1].values()))
    return None


def remove_left_behind(parents: set[Path]) -> None:
    """Remove the empty cgroups of graders that no longer run (killed before they could);
    a cgroup with a process in it stays (the kernel refuses)."""
    for parent in parents:
        for path in parent.glob("convcourse-*-*"):
            owner = path.name.split("-")[1]
            if owner.isdigit() and not Path(f"/proc/{owner}").exists():
                try:
                    path.rmdir()
                except OSError:
                    pass  # not empty, or removed meanwhile


def cgroup_note() -> str | None:
    """A line for a grading summary where sandboxes ran without a cgroup (None otherwise)."""
    if cgroup_problem() is None:
        return None
    return ("Sandboxes had no control group (memory and processes were limited per process "
            "only, not per sandbox): see the grader's output.")


# --- without a cgroup: CPU time from /proc -------------------------------------------------------

def tree_cpu_seconds(root: int) -> float:
    """CPU time (user and system) of process ``root`` and all its descendants, from /proc:
    each process alive now by its own CPU clock (its threads, the ended ones included, to the
    nanosecond), and each descendant that ended and was waited for by the time the kernel then
    adds to its parent's account (in ticks of 10 ms). In a sandbox, whose init is bwrap's and
    waits for every orphan, that is all of it. It misses what only a cgroup counts: a process
    that left the tree (reparented to an init outside it: without bwrap), and a process that
    ends between the two reads of this function."""
    total = 0.0
    for pid, waited_for in process_tree(root).items():
        try:
            total += time.clock_gettime_ns((~pid << 3) | 2) / 1e9  # the process's CPU clock
        except OSError:
            pass  # it has ended meanwhile
        total += waited_for
    return total


def process_tree(root: int) -> dict[int, float]:
    """``root`` and every process below it now, each with the CPU seconds of its children
    that ended and were waited for (from the parent of each process in /proc/PID/stat:
    /proc/PID/task/*/children needs a kernel option that is often missing)."""
    children: dict[int, list[int]] = {}
    waited_for: dict[int, float] = {}
    tick = os.sysconf("SC_CLK_TCK")
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rpartition(")")[2].split()
        except OSError:
            continue  # ended meanwhile
        pid = int(stat.parent.name)
        children.setdefault(int(fields[1]), []).append(pid)
        waited_for[pid] = (int(fields[13]) + int(fields[14])) / tick  # cutime, cstime
    found, todo = {}, [root]
    while todo:
        pid = todo.pop()
        found[pid] = waited_for.get(pid, 0.0)
        todo += children.get(pid, [])
    return found
