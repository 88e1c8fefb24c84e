"""Run a Python function as another user, in a forked child: for work that root
would otherwise do by path in a place that user can write (the demo scripts put
content into tenant homes this way, so a tenant's symlink only ever reaches what
the tenant itself may reach)."""

from __future__ import annotations

import os
import sys
import traceback
from collections.abc import Callable

from phphost.errors import HostError

RESULT_LIMIT = 1 << 20


def call_as(uid: int, gid: int, what: Callable[[], str | None], umask: int = 0o027) -> str | None:
    """`what()` with uid/gid (no supplementary groups); its return value comes back
    through a pipe. HostError if it raised (the child prints the traceback)."""
    sys.stdout.flush()
    sys.stderr.flush()
    rfd, wfd = os.pipe()
    pid = os.fork()
    if pid == 0:        # pragma: no cover - the child
        os.close(rfd)
        _child(wfd, uid, gid, what, umask)
    os.close(wfd)
    with os.fdopen(rfd, "rb") as fh:
        data = fh.read(RESULT_LIMIT + 2)
    _, status = os.waitpid(pid, 0)
    if os.waitstatus_to_exitcode(status) != 0:
        raise HostError(f"a step run as uid {uid} failed (above)")
    if not data or len(data) > RESULT_LIMIT + 1:
        return None
    return data[1:].decode() if data[:1] == b"1" else None


def _child(wfd: int, uid: int, gid: int, what: Callable[[], str | None], umask: int) -> None:
    status = 1
    try:
        os.setgroups([])
        os.setgid(gid)
        os.setuid(uid)
        os.umask(umask)
        result = what()
        with os.fdopen(wfd, "wb") as out:
            out.write(b"0" if result is None else b"1" + result.encode())
        status = 0
    except BaseException:
        traceback.print_exc()
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(status)
