"""The scan of the jails an apply built, which lets the next plan trust them without a
walk (facts/jailcache.py), run in a child process while apply goes on.

At 1,000 new jails the scan takes about 15 s of one core, and apply's files and
services phases leave the second core mostly idle: apply forks the scan as soon as
its jail builds are done (`start`, called by host/apply.execute) and waits for it
before it lets go of its lock (`finish`). The child waits RACY_NS first, so that no
jail is too fresh to record. A failed apply ends the child (`cancel`: SIGTERM to
its pid, then waits for it; the cache file is written atomically, and a half-done
scan writes nothing); a killed apply ends it too (PR_SET_PDEATHSIG). Without a
fork (threads running, or the builds never reached) `finish` scans in the process
itself, as apply did before.

A problem the scan finds is the next plan's to report: the apply itself is done."""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import sys
import threading
import time
from types import FrameType

from phphost.errors import PhphostError
from phphost.facts.jailcache import RACY_NS
from phphost.facts.jails import gather_jails
from phphost.plan import actions as A
from phphost.spec.model import Model


class JailConfirm:
    def __init__(self, model: Model, plan: A.Plan) -> None:
        self.model = model
        self.built = {a.pool for a in plan.actions if isinstance(a, A.BuildJail)}
        self.pid: int | None = None
        self.done = not self.built

    def start(self) -> None:
        """After the builds: fork the scan (only from a single-threaded process: a
        lock some other thread held at the fork would stay held in the child)."""
        if self.done or self.pid is not None or threading.active_count() > 1:
            return
        sys.stdout.flush()
        sys.stderr.flush()
        parent = os.getpid()
        pid = os.fork()
        if pid == 0:
            _child(self.model, self.built, parent)
        self.pid = pid

    def finish(self) -> None:
        """Wait for the child, or scan here if none was started."""
        if self.done:
            return
        self.done = True
        if self.pid is None:
            _scan(self.model, self.built)
            return
        _reap(self.pid)
        self.pid = None

    def cancel(self) -> None:
        """The apply failed: its jails may be rolled back; no record of them."""
        self.done = True
        if self.pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signal.SIGTERM)       # our own child, by pid
            _reap(self.pid)
            self.pid = None


def _scan(model: Model, built: set[str]) -> None:
    with contextlib.suppress(PhphostError, OSError):
        gather_jails(model, built)


def _reap(pid: int) -> None:
    while True:
        try:
            os.waitpid(pid, 0)
            return
        except InterruptedError:
            continue
        except ChildProcessError:
            return


def _stop(_signum: int, _frame: FrameType | None) -> None:
    raise SystemExit(1)


PR_SET_PDEATHSIG = 1      # <sys/prctl.h>


def _die_with(parent: int) -> None:
    """SIGTERM when apply's process ends, also when it is killed (its lock, which this
    process shares, is then let go at once)."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
    if os.getppid() != parent:      # it ended before the line above
        raise SystemExit(1)


def _child(model: Model, built: set[str], parent: int) -> None:
    """The forked scan: never returns, never runs the parent's exit handlers or
    flushes its buffers (os._exit)."""
    code = 0
    try:
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, _stop)
        _die_with(parent)
        time.sleep(RACY_NS / 1e9)
        _scan(model, built)
    except SystemExit:
        code = 1
    except BaseException as err:    # a bug: one line, as main() says it
        code = 1
        with contextlib.suppress(OSError, ValueError):
            os.write(2, f"phphost: internal error in the scan of the new jails: "
                        f"{type(err).__name__}: {err} (the apply itself is done)\n".encode())
    finally:
        os._exit(code)
