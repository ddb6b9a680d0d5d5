"""Named durable steps where the fault-injection tests make a process die or its disk fill up.

``WORKBENCH_CRASH_AT=publish:targets-written`` makes the process SIGKILL itself when it
reaches that step; ``WORKBENCH_DISK_FULL_AT=pull:extracted`` raises ``ENOSPC`` there, as a
full disk would. Both are for tests only: unset (always, in production) a step costs one
dictionary lookup. The steps are listed in docs/distribution.md ("Guarantees").
"""

from __future__ import annotations

import errno
import os
import signal

CRASH_ENV = "WORKBENCH_CRASH_AT"
DISK_FULL_ENV = "WORKBENCH_DISK_FULL_AT"


def step(name: str) -> None:
    """Mark a durable step: die here, or fail as a full disk would, if a test asked for it."""
    if os.environ.get(CRASH_ENV) == name:
        os.kill(os.getpid(), signal.SIGKILL)
    if os.environ.get(DISK_FULL_ENV) == name:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), name)
