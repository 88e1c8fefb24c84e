"""Resources: what one pool's PHP can do to the machine and to other pools beyond
files and processes: SysV IPC shared with another pool, programs run from a
writable /tmp, (and, with cgroups, fork and memory limits).

IPC: the target pool creates a sysvshm segment, a shmop segment and a message queue
(mode 0666, as PHP's defaults give) holding a canary; the attacker looks for them
without creating anything. Control: the attacker finds its own. Each pool's master
has its own IPC namespace (the launcher), so another pool's keys do not exist there.
Semaphores live in the same per-namespace key space; PHP cannot tell an existing set
from one it just created, so they are not probed separately."""

from __future__ import annotations

import base64
import contextlib
import struct
import time
import zlib
from typing import Any

from phphost.facts import cgroups
from phphost.spec.limits import pool_limits
from phphost.verify.attack import Attack
from phphost.verify.context import Ctx
from phphost.verify.errors import VerifyError
from phphost.verify.result import Result, judged, not_applicable

FAMILY = "resources"


def ipc_key(run_id: str, pool: str) -> int:
    """Pure: a SysV key for this run and pool (a multiple of 4: key .. key+2 are used)."""
    return ((zlib.crc32(f"{run_id}/{pool}".encode()) & 0x0FFFFFFF) | 0x10000000) & ~3


def ipc_hits(found: object, canary: str) -> list[str]:
    """Pure: the objects of a read answer that hold the canary (hex for segments)."""
    if not isinstance(found, dict):
        return []
    hexed = canary.encode().hex()
    hits = []
    for name, value in sorted(found.items()):
        if isinstance(value, str) and (canary in value or hexed in value):
            hits.append(f"{name}: holds the canary")
        elif value is not None:
            hits.append(f"{name}: exists ({str(value)[:40]!r})")
    return hits


def _ipc(ctx: Ctx, pool_name: str, op: str, key: int, canary: str) -> dict[str, Any]:
    pool = ctx.model.pool(pool_name)
    out = ctx.run.probes.run(pool, "ipc.php", {"op": op, "key": key, "canary": canary})
    if not out.get("have"):
        raise VerifyError(f"pool {pool_name}: PHP has no sysvshm/shmop/sysvmsg")
    return out


def ipc(ctx: Ctx) -> Result:
    target, me = ctx.target_pool.name, ctx.pool.name
    mine, theirs = ipc_key(ctx.run.run_id, f"{me}>{target}:own"), \
        ipc_key(ctx.run.run_id, f"{me}>{target}")
    canary = ctx.name(f"ipc-{target}")
    own = ctx.name(f"ipc-{me}-own")
    try:
        made = _ipc(ctx, me, "create", mine, own)
        seen = _ipc(ctx, me, "read", mine, own)
        if len(ipc_hits(seen.get("found"), own)) < 3:
            raise VerifyError(f"control failed: pool {me} does not find its own IPC objects "
                              f"(create {made}, read {seen.get('found')})")
        made = _ipc(ctx, target, "create", theirs, canary)
        if not (made.get("shm") and made.get("shmop") and made.get("msg")):
            raise VerifyError(f"pool {target} could not create its IPC objects: {made}")
        out = _ipc(ctx, me, "read", theirs, canary)
    finally:
        for pool, key in ((me, mine), (target, theirs), (me, theirs)):
            with contextlib.suppress(VerifyError):
                _ipc(ctx, pool, "remove", key, "")
    tried = (f"pool {target} makes a sysvshm and a shmop segment and a message queue "
             f"(keys {theirs:#x}..{theirs + 2:#x}, mode 0666); PHP in pool {me} opens them")
    return judged(ipc_hits(out.get("found"), canary), tried,
                  "no such key in this pool (own objects found: the control)")




# --- programs written to /tmp ----------------------------------------------------------

EXEC_MARK = b"phphost-verify-exec\n"


def tiny_elf(message: bytes = EXEC_MARK) -> bytes:
    """Pure: a static x86-64 ELF that writes `message` to stdout and exits 0: needs no
    library, so it runs in any jail whose filesystem lets it."""
    base = 0x400000
    code_at = 64 + 56
    code = (b"\xb8\x01\x00\x00\x00"            # mov eax, 1 (write)
            b"\xbf\x01\x00\x00\x00"            # mov edi, 1
            b"\x48\x8d\x35\x10\x00\x00\x00"    # lea rsi, [rip + 16] (the message)
            + b"\xba" + struct.pack("<I", len(message))   # mov edx, len
            + b"\x0f\x05"                      # syscall
            b"\xb8\x3c\x00\x00\x00"            # mov eax, 60 (exit)
            b"\x31\xff"                        # xor edi, edi
            b"\x0f\x05")                       # syscall
    size = code_at + len(code) + len(message)
    header = (b"\x7fELF\x02\x01\x01" + bytes(9)
              + struct.pack("<HHIQQQIHHHHHH", 2, 0x3E, 1, base + code_at, 64, 0, 0, 64, 56, 1,
                            0, 0, 0))
    phdr = struct.pack("<IIQQQQQQ", 1, 5, 0, base, base, size, size, 0x1000)
    return header + phdr + code + message


def exec_hits(rows: object) -> list[str]:
    """Pure: the directories where the written program ran and printed the marker."""
    if not isinstance(rows, list):
        return []
    mark = EXEC_MARK.decode().strip()
    return [f"{row.get('dir')}: ran it ({str(row.get('output'))[:40]!r})" for row in rows
            if isinstance(row, dict) and mark in str(row.get("output", ""))]


def tmp_exec(ctx: Ctx) -> Result:
    pool = ctx.pool
    if not pool.jail.enabled:
        return not_applicable("pool not jailed (the host's filesystems are its own)")
    dirs = ["/tmp", *pool.writable]
    elf = base64.b64encode(tiny_elf()).decode()
    out = ctx.probe("exec.php", {"elf": elf, "name": ctx.name("exec"), "dirs": dirs})
    rows = out.get("dirs")
    if not out.get("have"):
        raise VerifyError(f"pool {pool.name}: PHP has no proc_open")
    tried = (f"PHP in pool {pool.name} writes a static ELF to {', '.join(dirs)}, chmod 0700, "
             "proc_open([path])")
    if not isinstance(rows, list) or not any(isinstance(r, dict) and r.get("written")
                                             for r in rows):
        raise VerifyError(f"control failed: pool {pool.name} could write none of "
                          f"{', '.join(dirs)}: {rows!r:.300}")
    shown = "; ".join(f"{r.get('dir')}: " + _outcome(r) for r in rows if isinstance(r, dict))
    return judged(exec_hits(rows), tried, f"not run: {shown}")


def _outcome(row: dict[str, Any]) -> str:
    """Pure: how one directory's attempt ended, for the evidence."""
    if not row.get("written"):
        return f"not written ({str(row.get('error'))[:80]})"
    if row.get("ran"):
        status = row.get("status")
        return f"exit {status}" + (" (exec refused: noexec)" if status == 127 else "") \
            + (f", stderr {str(row.get('error'))[:60]!r}" if row.get("error") else "")
    return f"proc_open failed ({str(row.get('error'))[:80]})"


# --- fork loop and memory hog ----------------------------------------------------------

FORK_SLACK = 16
MEMORY_SLACK = 64 * 1024 * 1024
RECOVERY_SECONDS = 30.0


def fork_verdict(created: int, pids_max: int) -> bool:
    """Pure: did the fork loop pass the limit? Under it, the launcher, the master and
    the worker itself already count, so `pids_max` children are impossible."""
    return created >= pids_max


def fork(ctx: Ctx) -> Result:
    pool = ctx.pool
    lim = pool_limits(pool)
    n = min(4096, lim.pids_max + FORK_SLACK)
    ctx.run.probes.run(pool, "whoami.php")
    out = ctx.probe("fork.php", {"n": n, "prog": f"/{ctx.name('no-such-program')}"})
    if not out.get("have"):
        raise VerifyError(f"pool {pool.name}: PHP has no proc_open")
    created = out.get("created")
    if not isinstance(created, int) or created < 0:
        raise VerifyError(f"pool {pool.name}: fork probe answered {out!r:.200}")
    tried = (f"PHP in pool {pool.name} forks up to {n} children with proc_open and keeps "
             f"them (pids_max {lim.pids_max}, RLIMIT_NPROC {lim.nproc})")
    if fork_verdict(created, lim.pids_max):
        return judged([f"{created} children forked, past pids_max {lim.pids_max}"], tried, "")
    return judged([], tried, f"{created} children, then: {str(out.get('error'))[:120]}")


def _serves(ctx: Ctx, pool_name: str, deadline: float) -> bool:
    pool = ctx.model.pool(pool_name)
    while True:
        try:
            ctx.run.probes.run(pool, "whoami.php")
            return True
        except VerifyError:
            if time.monotonic() > deadline:
                return False
            time.sleep(0.5)


def memory(ctx: Ctx) -> Result:
    """A SysV segment past memory_max, filled from one worker: the kernel must kill the
    pool (or the hog) before it is all written, the pool must serve again and every
    other pool must have kept serving."""
    pool = ctx.pool
    lim = pool_limits(pool)
    if lim.memory_max is None:
        return not_applicable("no memory limit (memory_limit = -1 and no memory_max)")
    size = lim.memory_max + MEMORY_SLACK
    ctx.run.probes.run(pool, "whoami.php")
    host = cgroups.detect()
    kills_before = cgroups.oom_kills(host, pool.name)
    tried = (f"PHP in pool {pool.name} fills a {size >> 20}M SysV segment (past memory_max "
             f"{lim.memory_max >> 20}M; PHP's memory_limit does not count it)")
    try:
        out: dict[str, Any] | None = ctx.probe(
            "memory.php", {"size": size, "key": ipc_key(ctx.run.run_id, f"mem:{pool.name}")})
        killed = ""
    except VerifyError as err:
        out, killed = None, str(err)
    deadline = time.monotonic() + RECOVERY_SECONDS
    others = [p.name for p in ctx.model.pools if p.name != pool.name]
    down = [p for p in others if not _serves(ctx, p, deadline)]
    back = _serves(ctx, pool.name, deadline)
    hits = [f"pool {p} stopped serving" for p in down]
    if out is not None:
        if not out.get("have"):
            raise VerifyError(f"pool {pool.name}: PHP has no shmop")
        written = out.get("written")
        if isinstance(written, int) and written >= size - (1 << 20):
            hits.append(f"wrote {written >> 20}M, past memory_max {lim.memory_max >> 20}M")
        seen = f"stopped at {int(written or 0) >> 20}M: {str(out.get('error'))[:100]}"
    else:
        seen = f"the worker was killed ({killed[:100]})"
    kills_after = cgroups.oom_kills(host, pool.name)
    if kills_before is not None and kills_after is not None:
        seen += f"; OOM kills in its cgroup {kills_before} -> {kills_after}"
    if not back:
        raise VerifyError(f"pool {pool.name} did not serve again within "
                          f"{RECOVERY_SECONDS:.0f}s after the hog ({seen})")
    return judged(hits, tried, f"{seen}; pool {pool.name} serves again; "
                  f"{len(others)} other pool(s) kept serving")


ATTACKS = (
    Attack("resources.ipc", FAMILY, "SysV shared memory and message queues of another pool",
           "pool>pool", ipc),
    Attack("resources.tmp-exec", FAMILY, "run a program written to /tmp or a writable dir",
           "pool", tmp_exec),
    Attack("resources.fork", FAMILY, "fork past the pool's pids limit", "pool", fork),
    Attack("resources.memory", FAMILY, "use memory past the pool's memory limit", "pool",
           memory),
)
