"""Work forked off into a child process of phphost, so that it runs on the second
core while phphost goes on: apply's scan of the jails it built (cli/confirm.py) and
the plan's check of the jails its cache trusts (facts/jails.py).

The child never returns into the caller's stack (whose handlers would roll back an
apply) and never runs exit handlers or flushes the parent's buffers (os._exit). It
is forked only from a single-threaded process: a lock another thread held at the fork
would stay held in the child. SIGINT and SIGTERM are blocked across the fork until the
child has its own handlers; it ends when its parent does, also when the parent is
killed (PR_SET_PDEATHSIG)."""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import sys
import threading
from collections.abc import Callable
from types import FrameType

STOPS = {signal.SIGINT, signal.SIGTERM}
PR_SET_PDEATHSIG = 1      # <sys/prctl.h>


def fork_worker(body: Callable[[], None], what: str, keep: Callable[[int], None]) -> bool:
    """Fork a child that runs body() and exits (0; 1 when body raised or was stopped);
    keep(pid) is called with its pid before SIGINT and SIGTERM are let through again,
    so a signal that came meanwhile never loses the child. False when no child could
    be forked (another thread runs, fork failed): the caller then does the work
    itself. what: names the work in the one line the child prints when body fails
    unexpectedly."""
    if threading.active_count() > 1:
        return False
    with contextlib.suppress(OSError, ValueError, AttributeError):
        sys.stdout.flush()
        sys.stderr.flush()
    parent = os.getpid()
    held = signal.pthread_sigmask(signal.SIG_BLOCK, STOPS)
    try:
        pid = os.fork()
        if pid == 0:
            _child(body, what, parent, held)
        keep(pid)
        return True
    except OSError:
        return False
    finally:
        if os.getpid() == parent:
            signal.pthread_sigmask(signal.SIG_SETMASK, held)


def _child(body: Callable[[], None], what: str, parent: int,
           mask: set[int | signal.Signals]) -> None:
    code = 0
    try:
        for sig in STOPS:
            signal.signal(sig, _stop)
        _die_with(parent)
        signal.pthread_sigmask(signal.SIG_SETMASK, mask)
        body()
    except SystemExit:
        code = 1
    except BaseException as err:    # a bug: one line, as cli/main.py says it
        code = 1
        with contextlib.suppress(OSError, ValueError):
            os.write(2, f"phphost: internal error in {what}: {type(err).__name__}: "
                        f"{err}\n".encode())
    finally:
        os._exit(code)


def _stop(_signum: int, _frame: FrameType | None) -> None:
    raise SystemExit(1)


def _die_with(parent: int) -> None:
    """SIGTERM when the parent ends, also when it is killed (a lock it shares with
    the child is then let go at once)."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
    if os.getppid() != parent:      # it ended before the line above
        raise SystemExit(1)


def reap(pid: int) -> int | None:
    """Wait for our child; its exit status (None: not ours, or already reaped)."""
    while True:
        try:
            return os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])
        except InterruptedError:
            continue
        except ChildProcessError:
            return None


def end(pid: int) -> None:
    """SIGTERM to our own child, by pid, and wait for it."""
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    reap(pid)


def write_all(fd: int, data: bytes) -> None:
    """Everything to a pipe (a write may take only part once it is full)."""
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def read_all(fd: int) -> bytes:
    """Everything from a pipe until its writer closes it; fd is closed after."""
    chunks = []
    try:
        while chunk := os.read(fd, 1 << 16):
            chunks.append(chunk)
    finally:
        os.close(fd)
    return b"".join(chunks)
