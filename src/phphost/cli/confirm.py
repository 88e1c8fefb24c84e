"""The scan of the jails an apply built, which lets the next plan trust them without a
walk (facts/jailcache.py), run in a child process while apply goes on.

At 1,000 new jails the scan takes about 15 s of one core, and apply's files and
services phases leave the second core mostly idle: apply forks the scan as soon as
its jail builds are done (`built`, called by host/apply.execute) and waits for it
before it lets go of its lock (`finish`). The child waits RACY_NS first, so that no
jail is too fresh to record. Before it writes the cache it waits for apply's last
step, the store's garbage collection after the commit point (`collected`), and
leaves the objects that removed out of the recorded store (facts/jails.py _Run.save);
it writes nothing when apply does not get there. A failed apply ends the child
(`cancel`: EOF on the pipe, SIGTERM to its pid, then waits for it); a killed apply
ends it too (PR_SET_PDEATHSIG). Without a fork (threads running, or the builds never
reached) `finish` scans in the process itself, as apply did before.

A problem the scan finds is the next plan's to report: the apply itself is done."""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Collection
from types import FrameType

from phphost.errors import PhphostError
from phphost.facts.jailcache import RACY_NS, Gone, forget_objects
from phphost.facts.jails import gather_jails
from phphost.plan import actions as A
from phphost.spec.model import Model


class JailConfirm:
    """host/apply.JailHook for apply's scan of the jails it built (and, in an apply
    that built none, the cache's record of the store after the garbage collection)."""

    def __init__(self, model: Model, plan: A.Plan) -> None:
        self.model = model
        self.pools = {a.pool for a in plan.actions if isinstance(a, A.BuildJail)}
        self.pid: int | None = None
        self.pipe: int | None = None            # to the child: what the GC removed
        self.removed: list[Gone] = []
        self.done = not self.pools

    def built(self) -> None:
        """After the builds: fork the scan (only from a single-threaded process: a
        lock some other thread held at the fork would stay held in the child)."""
        if self.done or self.pid is not None or threading.active_count() > 1:
            return
        try:
            sys.stdout.flush()
            sys.stderr.flush()
            theirs, mine = os.pipe()
        except (OSError, ValueError, AttributeError):   # stdout closed, no fds: no child
            return
        parent = os.getpid()
        # SIGINT/SIGTERM held until the child has its own handlers: apply's raise
        # Interrupted, whose rollback the child must never run (up the stack it shares)
        held = signal.pthread_sigmask(signal.SIG_BLOCK, STOPS)
        try:
            pid = os.fork()
        except OSError:
            os.close(theirs)
            os.close(mine)
            return
        finally:
            if os.getpid() == parent:
                signal.pthread_sigmask(signal.SIG_SETMASK, held)
        if pid == 0:
            try:
                os.close(mine)
                _child(self.model, self.pools, parent, theirs, held)
            finally:
                os._exit(1)
        os.close(theirs)
        self.pid, self.pipe = pid, mine

    def collected(self, removed: list[Gone]) -> None:
        self.removed = removed
        if not self.pools:      # no scan of this apply writes the cache after the GC
            forget_objects(removed)

    def finish(self) -> None:
        """Apply is done: tell the child what the GC removed and wait for it, or scan
        here if no child was started."""
        if self.done:
            return
        self.done = True
        if self.pid is None:
            removed = self.removed
            _scan(self.model, self.pools, lambda: removed)
            return
        assert self.pipe is not None
        with contextlib.suppress(OSError), os.fdopen(self.pipe, "wb") as out:
            self.pipe = None
            out.write(json.dumps(self.removed).encode())
        _reap(self.pid)
        self.pid = None

    def cancel(self) -> None:
        """The apply failed: its jails may be rolled back; no record of them (the
        child writes only once finish() has told it what the GC removed)."""
        self.done = True
        if self.pipe is not None:
            os.close(self.pipe)             # EOF without a word: the child writes nothing
            self.pipe = None
        if self.pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signal.SIGTERM)       # our own child, by pid
            _reap(self.pid)
            self.pid = None


def _scan(model: Model, built: set[str],
          settle: Callable[[], Collection[Gone] | None] | None = None) -> None:
    with contextlib.suppress(PhphostError, OSError):
        gather_jails(model, built, settle=settle)


def _removed(fd: int) -> Callable[[], list[Gone] | None]:
    """What the parent says the GC removed, once it has said it (None: it ended
    without a word, or garbled)."""
    def read() -> list[Gone] | None:
        with os.fdopen(fd, "rb") as pipe:
            text = pipe.read()
        try:
            said = json.loads(text) if text else None
        except ValueError:
            return None
        if not isinstance(said, list):
            return None
        out: list[Gone] = []
        for item in said:
            if not (isinstance(item, list) and len(item) == 3 and isinstance(item[0], int)
                    and isinstance(item[1], int) and isinstance(item[2], str)):
                return None
            out.append((item[0], item[1], item[2]))
        return out
    return read


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


STOPS = {signal.SIGINT, signal.SIGTERM}


def _child(model: Model, built: set[str], parent: int, pipe: int,
           mask: set[int | signal.Signals]) -> None:
    """The forked scan (SIGINT and SIGTERM blocked until its handlers are set): never
    returns, never runs the parent's exit handlers or flushes its buffers (os._exit)."""
    code = 0
    try:
        for sig in STOPS:
            signal.signal(sig, _stop)
        _die_with(parent)
        signal.pthread_sigmask(signal.SIG_SETMASK, mask)
        time.sleep(RACY_NS / 1e9)
        _scan(model, built, _removed(pipe))
    except SystemExit:
        code = 1
    except BaseException as err:    # a bug: one line, as main() says it
        code = 1
        with contextlib.suppress(OSError, ValueError):
            os.write(2, f"phphost: internal error in the scan of the new jails: "
                        f"{type(err).__name__}: {err} (the apply itself is done)\n".encode())
    finally:
        os._exit(code)
