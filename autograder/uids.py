"""A user of its own for every sandbox started on this host since boot.

The kernel keeps state per user that a sandbox's processes do not take with them when they
end, or that all processes of one user share while they run: the user and user-session
keyrings (kept until reboot), the key quota, the count of processes (RLIMIT_NPROC), inotify
instances, message-queue bytes. A user per worker slot passed all of it from one learner to the
next, and two graders on one host shared users. So the grader, as root, draws a user id for
each sandbox start from a counter that only goes up: it lives in /run, a tmpfs that starts
empty at boot as the keyrings do, and is locked while it is read and increased, so that
graders running at the same time (worker processes, two ``make grade`` runs) never draw the
same id.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

#: The first id drawn: systemd's unused range 0x70000000-0x7FFDFFFF, above the ids it gives
#: containers (524288-1879048191) and below its foreign range (see systemd's UIDS-GIDS.md).
#: A host whose /etc/subuid hands out ids here must move it.
FIRST_UID = 0x7000_0000
#: How many ids are drawn before they come round again (after that many sandboxes in one boot).
UID_COUNT = 1 << 26
#: The counter: the number of ids drawn since boot, as 20 digits (rewritten in place).
COUNTER = Path("/run/convcourse/uids-drawn")


def fresh_uid(counter: Path = COUNTER) -> int:
    """A user id that no sandbox on this host has had since boot (the grader must be root)."""
    counter.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd = os.open(counter, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)  # released when fd is closed
        drawn = int(os.pread(fd, 64, 0) or b"0")  # a damaged counter raises: no id twice
        os.pwrite(fd, f"{drawn + 1:020d}".encode(), 0)
    finally:
        os.close(fd)
    return FIRST_UID + drawn % UID_COUNT
