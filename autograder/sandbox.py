"""The bubblewrap sandbox in which a learner's code runs, and nothing else does.

Inside: a read-only system and Python environment, the parts of the shared ``convcourse``
package that grading uses (not the book's figures), the folder ``autograder/sandboxed/``
(mounted read-only as ``/grader``: the runner and what it needs), a private ``/tmp`` and home of
bounded size, no network, its own process tree, a user of its own (autograder/uids.py), and
limits on CPU time, memory, processes, file size and open files: per process, and for memory and
processes also for the whole sandbox (its control group, autograder/cgroup.py, which also
counts its CPU time for the grader). Not inside: the rest of the repository (``solutions/``,
hidden tests, the grader and its gradebook, other learners' folders). The grader talks to it
through two pipes, with deadlines: a call that does not answer in time is killed with the whole
sandbox.
"""

from __future__ import annotations

import json
import os
import select
import shutil
import signal
import subprocess
import sys
import threading
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

from autograder import CONVCOURSE_PARTS, SANDBOXED
from autograder.cgroup import Cgroup, CgroupUnavailable, sandbox_cgroup, tree_cpu_seconds
from autograder.secret import without_key
from autograder.uids import fresh_uid

#: Where the sandbox sees the folder autograder/sandboxed/.
INSIDE = Path("/grader")


@dataclass(frozen=True)
class Limits:
    """What one submission may use. Times are wall-clock seconds unless named CPU."""

    call_seconds: float = 60.0         # one call of the learner's code
    cells_seconds: float = 120.0       # running all of the learner's cells once
    submission_seconds: float = 900.0  # everything for one notebook
    cpu_seconds: int = 900             # RLIMIT_CPU of the sandboxed process
    memory_bytes: int = 4 << 30        # RLIMIT_DATA (heap and private mappings) of each
                                       # process, and the cap of all of them together
    processes: int = 64                # RLIMIT_NPROC and the cgroup's pids.max (threads
                                       # count too)
    file_bytes: int = 64 << 20         # RLIMIT_FSIZE, and the size of /tmp and home
    output_bytes: int = 32 << 10       # printed output kept for the feedback
    threads: int = 1                   # OMP/MKL threads of the learner's process
    restarts: int = 2                  # sandbox deaths a function may cause before it is
                                       # no longer called
    absent: tuple[str, ...] = ("scipy",)  # packages the learner's code cannot import

    def __post_init__(self):
        if "scipy" not in self.absent or not set(self.absent) <= set(CAN_BE_ABSENT):
            raise ValueError(f"a sandbox lacks SciPy and may lack only {CAN_BE_ABSENT}, "
                             f"not {self.absent}")


class SandboxUnavailable(RuntimeError):
    """bubblewrap is missing or cannot create a sandbox on this machine."""


class SandboxDied(RuntimeError):
    """The sandboxed process ended (crash, ``os._exit``, a limit) or broke the protocol."""


class SandboxTimeout(RuntimeError):
    """The sandboxed process did not answer in time; it has been killed."""


def bwrap_problem() -> str | None:
    """Why bubblewrap cannot sandbox here (``None`` when it can): checked by running it."""
    bwrap = shutil.which("bwrap")
    if bwrap is None:
        return ("bubblewrap (bwrap) is not installed: install the Debian package 'bubblewrap' "
                "(apt-get install bubblewrap)")
    try:
        probe = subprocess.run([*bwrap_command(0), "--", sys.executable, "-I", "-c", "pass"],
                               capture_output=True, text=True, timeout=60, check=False)
    except (OSError, subprocess.TimeoutExpired) as error:
        return f"bubblewrap could not start: {error}"
    if probe.returncode != 0:
        return f"bubblewrap could not create a sandbox: {probe.stderr.strip()[-500:]}"
    return None


def convcourse_dir() -> Path:
    """The folder of the shared package, as this Python imports it."""
    import convcourse

    return Path(convcourse.__file__).resolve().parent


def bound_paths() -> list[Path]:
    """What the sandbox sees of this machine besides /usr and /etc, at the same paths: the
    Python installation, the environment's packages and the parts of the shared convcourse
    package that grading uses."""
    paths = [Path(sys.base_prefix), Path(sys.prefix), Path(sys.exec_prefix),
             *(convcourse_dir() / part for part in CONVCOURSE_PARTS)]
    kept: list[Path] = []
    for path in sorted({p.resolve() for p in paths}, key=lambda p: (len(p.parts), str(p))):
        if path.parts[:2] == ("/", "usr") or any(path.is_relative_to(k) for k in kept):
            continue
        kept.append(path)
    return kept


#: Packages a sandbox can lack, each covered by ``sandboxed/absent/`` (which says why): SciPy's
#: correlate and convolve are library convolutions, and a function bound to one at import would
#: escape any watch in the learner's own process, so SciPy is never there; PyTorch is left out
#: where the assignment is NumPy only (its notebook's metadata, :func:`notebook.sandbox_lacks`),
#: so that none of its convolutions exists for the learner's code to reach.
CAN_BE_ABSENT = ("scipy", "torch")


def absent_package_dirs(absent: tuple[str, ...] = ("scipy",)) -> list[Path]:
    """Where the sandbox could find the ``absent`` packages: the environment, the Python install
    and the system's Python packages under /usr."""
    roots = [*bound_paths(), Path("/usr"), Path("/usr/local")]
    return sorted({found for root in roots for name in absent
                   for found in root.glob(f"lib/python3*/*-packages/{name}") if found.is_dir()})


def bwrap_command(slot: int, limits: Limits | None = None) -> list[str]:
    """The bwrap command line (up to the program it runs) for the worker ``slot``."""
    limits = limits or Limits()
    command = ["bwrap", "--unshare-pid", "--unshare-net", "--unshare-ipc", "--unshare-uts",
               "--unshare-cgroup-try", "--die-with-parent", "--new-session",
               "--ro-bind", "/usr", "/usr", "--ro-bind", "/etc", "/etc"]
    if os.getuid() != 0:
        command.append("--unshare-user")
    for top in ("bin", "lib", "lib32", "lib64", "sbin"):
        host = Path("/") / top
        if host.is_symlink():
            command += ["--symlink", os.readlink(host), str(host)]
        elif host.is_dir():
            command += ["--ro-bind", str(host), str(host)]
    # The private /tmp first: paths bound below may lie under /tmp, and must stay visible.
    command += ["--proc", "/proc", "--dev", "/dev",
                "--perms", "1777", "--size", str(limits.file_bytes), "--tmpfs", "/tmp",
                "--perms", "0755", "--dir", "/home",
                "--perms", "0777", "--size", str(limits.file_bytes), "--tmpfs", "/home/learner"]
    made: set[Path] = {Path("/"), Path("/tmp"), Path("/home")}
    for path in [*bound_paths(), INSIDE]:
        for parent in reversed(path.parents):
            if parent not in made and not parent.is_relative_to("/usr"):
                command += ["--perms", "0755", "--dir", str(parent)]
                made.add(parent)
    for path in bound_paths():
        command += ["--ro-bind", str(path), str(path)]
    for path in absent_package_dirs(limits.absent):
        command += ["--ro-bind", str(SANDBOXED / "absent"), str(path)]
    command += ["--ro-bind", str(SANDBOXED), str(INSIDE),
                "--chdir", "/home/learner", "--clearenv"]
    for name, value in {"HOME": "/home/learner", "PATH": "/usr/local/bin:/usr/bin:/bin",
                        "LANG": "C.UTF-8", "TMPDIR": "/tmp", "MPLBACKEND": "Agg",
                        "PYTHONDONTWRITEBYTECODE": "1", "OMP_NUM_THREADS": str(limits.threads),
                        "MKL_NUM_THREADS": str(limits.threads)}.items():
        command += ["--setenv", name, value]
    gpus = sorted(str(p) for p in Path("/dev").glob("nvidia*"))
    for device in gpus:  # the GPU, where there is one (CUDA needs its device files and /sys)
        command += ["--dev-bind", device, device]
    if gpus:
        command += ["--ro-bind", "/sys", "/sys"]
    return command


def sandbox_user(isolated: bool) -> int:
    """The user a new sandbox runs as: where the grader is root, one of its own, which no
    sandbox on this host had before (autograder/uids.py); -1 (stay who it is) where the grader
    is a normal user (bwrap then gives the sandbox a user namespace of its own) or runs learner
    code unisolated (the instructor's choice)."""
    return fresh_uid() if isolated and os.getuid() == 0 else -1


def runner_limits(uid: int, limits: Limits, *, isolated: bool) -> dict:
    """What the runner applies to itself before it runs any learner code (see its
    ``limit_myself``): the user to become (``uid``, from :func:`sandbox_user`), and resource
    limits of each process (0: not limited)."""
    root = os.getuid() == 0
    return {
        "uid": uid,
        "alone": isolated,  # in a process namespace of its own
        # as a normal user the process limit would count all of the user's processes
        "RLIMIT_NPROC": limits.processes if root else 0,
        "RLIMIT_CPU": limits.cpu_seconds, "RLIMIT_DATA": limits.memory_bytes,
        "RLIMIT_FSIZE": limits.file_bytes, "RLIMIT_CORE": 0, "RLIMIT_NOFILE": 256,
        "absent": list(limits.absent),  # the runner does without what the sandbox lacks
        # where convcourse is, for an environment that has it on PYTHONPATH only
        "sys_path": [str(convcourse_dir().parent)],
    }


class Sandbox:
    """One sandboxed runner process: started, asked (:meth:`ask`), killed. The session of
    one notebook (autograder/session.py) starts one, and another after a death."""

    def __init__(self, slot: int, limits: Limits, *, isolated: bool = True):
        self.slot, self.limits, self.isolated = slot, limits, isolated
        self.process: subprocess.Popen | None = None
        self.cgroup: Cgroup | None = None  # None where cgroup.cgroup_problem() says why
        self.uid = -1  # the user it runs as (sandbox_user)
        self.output = bytearray()
        self.output_total = 0

    def start(self) -> None:
        try:
            self.cgroup = sandbox_cgroup(self.limits.memory_bytes, self.limits.processes)
            self.uid = sandbox_user(self.isolated)
        except (OSError, CgroupUnavailable) as error:
            self.kill()
            raise SandboxUnavailable(f"the sandbox's control group or user could not be "
                                     f"made: {error}") from None
        to_child, self.requests = os.pipe()
        self.replies, from_child = os.pipe()
        # Without isolation (the instructor's explicit choice) only the process and its limits
        # stand between the learner's code and this machine.
        prefix = bwrap_command(self.slot, self.limits) if self.isolated else []
        folder = INSIDE if self.isolated else SANDBOXED
        limits = runner_limits(self.uid, self.limits, isolated=self.isolated)
        command = [*prefix, sys.executable, "-I", str(folder / "runner.py"), str(to_child),
                   str(from_child), json.dumps(limits)]
        if self.cgroup is not None:  # in it before the first process runs anything
            command = self.cgroup.wrap(command)
        try:
            self.process = subprocess.Popen(  # never with the course key (secret.py)
                command, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT, pass_fds=(to_child, from_child),
                env=without_key(dict(os.environ)))
        finally:
            if self.process is None:
                self.kill()
        os.close(to_child)
        os.close(from_child)
        os.set_blocking(self.replies, False)
        threading.Thread(target=self._drain, args=(self.process.stdout,), daemon=True).start()

    def _drain(self, stream) -> None:
        """Keep the first bytes of what the learner's code prints; read (and drop) the rest,
        so that printing megabytes never blocks it."""
        while chunk := stream.read1(1 << 16):
            self.output_total += len(chunk)
            room = self.limits.output_bytes - len(self.output)
            if room > 0:
                self.output += chunk[:room]

    def printed(self) -> str:
        text = self.output.decode(errors="replace")
        if self.output_total > len(self.output):
            text += f"\n… ({self.output_total - len(self.output)} more bytes not kept)"
        return text

    # --- frames with deadlines --------------------------------------------------------------

    # (wire imports PyTorch, which `make grade`'s own process, only handing out the work,
    # never needs: the workers that talk to sandboxes import it here)

    def send(self, header: dict, arrays=(), *, deadline: float) -> None:
        from autograder.sandboxed import wire

        view = memoryview(wire.pack(header, list(arrays)))
        while view:
            self._wait(self.requests, deadline, write=True)
            try:
                view = view[os.write(self.requests, view[:1 << 16]):]
            except BrokenPipeError:
                raise self._died() from None

    def receive(self, *, deadline: float) -> tuple[dict, dict]:
        from autograder.sandboxed import wire

        return wire.receive(lambda size: self._read(size, deadline), wire.REPLY)

    def ask(self, header: dict, arrays=(), *, timeout: float) -> tuple[dict, dict]:
        """Send one request and wait for its reply, for ``timeout`` seconds at most."""
        deadline = time.monotonic() + timeout
        self.send(header, arrays, deadline=deadline)
        return self.receive(deadline=deadline)

    def _read(self, size: int, deadline: float) -> bytes:
        chunks, left = [], size
        while left:
            self._wait(self.replies, deadline)
            try:
                chunk = os.read(self.replies, min(left, 1 << 20))
            except BlockingIOError:
                continue
            if not chunk:
                raise self._died()
            chunks.append(chunk)
            left -= len(chunk)
        return b"".join(chunks)

    def _wait(self, fd: int, deadline: float, write: bool = False) -> None:
        left = deadline - time.monotonic()
        ready = select.select([], [fd], [], max(left, 0))[1] if write else \
            select.select([fd], [], [], max(left, 0))[0]
        if not ready:
            self.kill()
            raise SandboxTimeout("no answer in time")

    def _died(self) -> SandboxDied:
        code = None
        if self.process is not None:
            try:
                code = self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                pass
        self.kill()
        return SandboxDied(describe_exit(code))

    def cpu_seconds(self) -> float:
        """CPU time (user and system) that all processes of this running sandbox used so far,
        as the kernel counts it for the grader, never as the sandbox says. From its cgroup:
        exact to the microsecond, threads and child processes included, the ended ones too.
        Without one, from /proc over its process tree (``cgroup.tree_cpu_seconds`` says what
        that misses)."""
        if self.cgroup is not None and (seconds := self.cgroup.cpu_seconds()) is not None:
            return seconds
        if self.process is None or self.process.poll() is not None:
            raise SandboxDied("the sandbox has ended: its CPU time went with it")
        return tree_cpu_seconds(self.process.pid)

    def kill(self) -> None:
        """End every process of the sandbox (with a cgroup, also those that left its process
        tree or namespace), remove its cgroup and close the pipes."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()  # first: once it has ended, nothing more can join the cgroup
        if self.cgroup is not None:
            self.cgroup.kill()
        if self.process is not None:
            self.process.wait()
        if self.cgroup is not None:
            try:
                self.cgroup.remove()
            except OSError as error:  # a process stuck in the kernel: its cgroup stays
                warnings.warn(f"a sandbox's cgroup could not be removed: {error}",
                              stacklevel=2)
            self.cgroup = None
        for fd in ("requests", "replies"):
            if getattr(self, fd, None) is not None:
                try:
                    os.close(getattr(self, fd))
                except OSError:
                    pass
                setattr(self, fd, None)


def describe_exit(code: int | None) -> str:
    """A sandbox's exit status in words."""
    if code is None:
        return "it stopped answering"
    if code < 0:
        name = signal.Signals(-code).name if -code in signal.Signals._value2member_map_ else code
        meaning = {"SIGSEGV": " (a segmentation fault)", "SIGKILL": " (killed: out of memory or "
                   "over a limit)", "SIGXCPU": " (over its CPU time limit)",
                   "SIGXFSZ": " (wrote a file over the size limit)"}.get(str(name), "")
        return f"it was ended by {name}{meaning}"
    # bwrap reports the sandboxed process's death by a signal as exit status 128 + signal
    if code > 128 and code - 128 in signal.Signals._value2member_map_:
        return describe_exit(-(code - 128))
    return f"it exited with status {code}"
