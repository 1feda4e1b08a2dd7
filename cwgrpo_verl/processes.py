"""Whether a process runs, read the way Linux (and verl) sees it: one place for the reward's pool, the report's
leftover folders and the tools that clean up after a run."""

from __future__ import annotations

import os
import sys


def stat(pid: int) -> tuple[str, int] | None:
    """``(state, session id)`` of ``pid`` from ``/proc``, or None when it is gone or cannot be read."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            fields = fh.read().rsplit(")", 1)[1].split()
        return fields[0], int(fields[3])
    except (OSError, ValueError, IndexError):
        return None


def alive(pid: int) -> bool:
    """True while ``pid`` runs; a killed process waiting to be reaped (a zombie) counts as gone."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    found = stat(pid)
    if found is None:
        return not sys.platform.startswith("linux")  # no /proc to ask: os.kill's answer
    return found[0] != "Z"
