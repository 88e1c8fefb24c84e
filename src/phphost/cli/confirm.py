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
import json
import os
import time
from collections.abc import Callable, Collection

from phphost.errors import PhphostError
from phphost.facts.jailcache import RACY_NS, Gone, forget_objects
from phphost.facts.jails import gather_jails
from phphost.forked import end, fork_worker, reap
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
        """After the builds: fork the scan (forked.fork_worker: only from a
        single-threaded process)."""
        if self.done or self.pid is not None:
            return
        try:
            theirs, mine = os.pipe()
        except OSError:
            return

        def scan() -> None:
            os.close(mine)
            time.sleep(RACY_NS / 1e9)
            _scan(self.model, self.pools, _removed(theirs))

        def keep(pid: int) -> None:
            self.pid, self.pipe = pid, mine

        forked = fork_worker(scan, "the scan of the new jails (the apply itself is done)", keep)
        os.close(theirs)
        if not forked:
            os.close(mine)

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
        reap(self.pid)
        self.pid = None

    def cancel(self) -> None:
        """The apply failed: its jails may be rolled back; no record of them (the
        child writes only once finish() has told it what the GC removed)."""
        self.done = True
        if self.pipe is not None:
            os.close(self.pipe)             # EOF without a word: the child writes nothing
            self.pipe = None
        if self.pid is not None:
            end(self.pid)                   # our own child, by pid
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
