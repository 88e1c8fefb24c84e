"""Root: a pool answers verify's own probes with crafted data to make root, which acts
on what probes report, touch a file outside the run's scratch. The pool plants a
symlink (and a directory for '..' walks) in a dir it writes that root can see (its
temp dir unjailed; a jailed pool's /tmp is a private tmpfs root never sees, so its
session dir or first writable dir) that lead to a root-only
victim file, then answers a session probe with a session file through the link, an
absolute path outside its scratch, or a '..' path; and answers other probes with
5 MiB, deeply nested JSON, or no JSON. Each crafted session answer goes through
exactly the code verify uses for real answers (fixtures.session_canary, then a
scratch cleanup), and cleanup is also handed a path through the planted link.

Blocked: every crafted answer is rejected and the victim keeps its content.
BREACHED: the victim changed or vanished, or a crafted answer was accepted."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from phphost import layout
from phphost.render.fpm import jail_root
from phphost.spec.model import Pool
from phphost.verify import fixtures, scratch
from phphost.verify.answers import HostileAnswer
from phphost.verify.attack import Attack
from phphost.verify.context import Ctx
from phphost.verify.errors import VerifyError
from phphost.verify.result import Result, judged, not_applicable

FAMILY = "root"
PROBE = "answers.php"
POOL_TMP = "/tmp"       # sys_get_temp_dir() of a pool (FPM clears TMPDIR)
SESSION_DIR = layout.PHP_SESSION_DIR   # a jailed pool's with the sessions feature
VICTIM_PARENT = "/run"  # root 0755: outside every tenant tree, jail and scratch


@dataclass(frozen=True)
class Victim:
    dir: str
    file: str
    content: bytes


@contextlib.contextmanager
def victim(mark: str, pool: str) -> Iterator[Victim]:
    """A root-only file outside the scratch. Its directory's name carries the run's
    mark, so a check of names alone would take it for the run's own."""
    directory = os.path.join(VICTIM_PARENT, f"phphost-{mark}-victim-{pool}")
    os.mkdir(directory, 0o700)
    path = os.path.join(directory, "secret")
    content = f"victim of {mark} in {pool}\n".encode()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(content)
    try:
        yield Victim(directory, path, content)
    finally:
        scratch.remove(directory)


def damage(v: Victim) -> str | None:
    """What happened to the victim (None: untouched)."""
    try:
        with open(v.file, "rb") as fh:
            now = fh.read()
    except FileNotFoundError:
        return f"removed {v.file}"
    return None if now == v.content else f"changed {v.file}"


@dataclass(frozen=True)
class Plan:
    """Names the pool plants in its temp dir, and their host paths (computed here)."""

    link: str
    hop: str
    host_tmp: str
    inside: str = POOL_TMP      # the same dir as the pool sees it

    def host(self, name: str) -> str:
        return os.path.join(self.host_tmp, name)


def planting_dir(pool: Pool) -> str | None:
    """Pure: where the pool plants, as it sees the dir (None: nowhere root can see)."""
    if not pool.jail.enabled:
        return POOL_TMP
    if "sessions" in pool.jail.features:
        return SESSION_DIR
    return pool.writable[0] if pool.writable else None


def _plan(ctx: Ctx) -> Plan | None:
    inside = planting_dir(ctx.pool)
    if inside is None:
        return None
    top = jail_root(ctx.pool.name) if ctx.pool.jail.enabled and inside == SESSION_DIR else ""
    return Plan(ctx.name(f"answers-link-{ctx.pool.name}"),
                ctx.name(f"answers-dir-{ctx.pool.name}"), top + inside, inside)


def _plant(ctx: Ctx, plan: Plan, v: Victim, sandbox: scratch.Scratch,
           answer: dict[str, Any] | None = None) -> dict[str, Any]:
    """Have the pool plant the link and dir (tracked by their host paths, so cleanup
    removes them) and answer `answer`; a failed plant is a failed control."""
    for name in (plan.link, plan.hop):
        sandbox.track(plan.host(name))
    out = ctx.probe(PROBE, {"links": {plan.link: v.dir}, "dirs": [plan.hop],
                            "answer": answer or {}, "dir": plan.inside})
    planted = out.get("planted")
    if out.get("tmp") != plan.inside or not isinstance(planted, list) or not all(
            isinstance(p, dict) and p.get("ok") is True for p in planted):
        raise VerifyError(f"control failed: pool {ctx.pool.name} could not plant its links in "
                          f"{plan.inside} (answered tmp={str(out.get('tmp'))[:80]!r}), so "
                          "nothing it answers proves anything")
    return out


def crafted_sessions(plan: Plan, v: Victim, sid: str) -> dict[str, dict[str, str]]:
    """Session answers a compromised pool could give. Pure."""
    base = {"handler": "files", "id": sid}
    dotdot = f"{plan.inside}/{plan.hop}" + "/.." * 24 + v.file
    return {
        "session file through a planted symlink":
            {**base, "dir": plan.inside, "file": f"{plan.inside}/{plan.link}/secret"},
        "session file outside the scratch": {**base, "dir": v.dir, "file": v.file},
        "session file with '..'": {**base, "dir": plan.inside, "file": dotdot},
    }


def _session_case(ctx: Ctx, plan: Plan, v: Victim, what: str, answer: dict[str, str],
                  ) -> tuple[str | None, str]:
    """(breach or None, evidence) for one crafted session answer."""
    sandbox = scratch.Scratch(ctx.run.run_id)
    out = _plant(ctx, plan, v, sandbox, answer)
    accepted = None
    try:
        canary = fixtures.session_canary(sandbox, ctx.pool, answer["id"], "token", out)
        accepted = f"accepted (session file {canary.file if canary else None})"
    except HostileAnswer as err:
        line = f"{what}: rejected ({err.problem[:160]})"
    problems = sandbox.cleanup()
    hurt = damage(v)
    if hurt is not None:
        return f"{what}: root {hurt}", f"{what}: root {hurt}"
    if accepted is not None:
        return f"{what}: {accepted}", f"{what}: {accepted}"
    return None, line + (f"; cleanup left {problems}" if problems else "")


def _cleanup_case(ctx: Ctx, plan: Plan, v: Victim) -> tuple[str | None, str]:
    """Cleanup handed a path through the link the pool planted (as a bug would)."""
    sandbox = scratch.Scratch(ctx.run.run_id)
    _plant(ctx, plan, v, sandbox)
    through = os.path.join(plan.host(plan.link), "secret")
    sandbox.track(through)
    problems = [p for p in sandbox.cleanup() if p.startswith(through)]
    hurt = damage(v)
    if hurt is not None:
        return f"cleanup of {through}: root {hurt}", f"cleanup of {through}: root {hurt}"
    return None, f"cleanup of {through}: {problems[0] if problems else 'nothing removed'}"


BAD_ANSWERS: dict[str, dict[str, Any]] = {
    "a 5 MiB answer": {"pad": 5 << 20},
    "JSON nested 64 levels deep": {"raw": '{"a":' * 64 + "1" + "}" * 64},
    "JSON that is not an object": {"raw": "[1, 2, 3]"},
    "not JSON": {"raw": '{"handler": "files", '},
}


def _parse_case(ctx: Ctx, what: str, args: dict[str, Any]) -> tuple[str | None, str]:
    try:
        out = ctx.probe(PROBE, args)
    except VerifyError as err:
        return None, f"{what}: rejected ({str(err)[:160]})"
    return f"{what}: accepted ({len(repr(out))} characters)", f"{what}: accepted"


def probe_answers(ctx: Ctx) -> Result:
    plan = _plan(ctx)
    if plan is None:
        return not_applicable("the pool writes nothing root sees (a private /tmp, no "
                              "sessions, no writable dir)")
    sid = fixtures.session_id(ctx.run.scratch, ctx.pool)
    results: list[tuple[str | None, str]] = []
    with victim(ctx.run.scratch.mark, ctx.pool.name) as v:
        for what, answer in crafted_sessions(plan, v, sid).items():
            results.append(_session_case(ctx, plan, v, what, answer))
        results.append(_cleanup_case(ctx, plan, v))
    results += [_parse_case(ctx, what, args) for what, args in BAD_ANSWERS.items()]
    tried = (f"PHP in pool {ctx.pool.name} plants {plan.inside}/{plan.link} -> a root-only "
             f"victim in {VICTIM_PARENT}, answers session, path and malformed answers")
    return judged([b for b, _ in results if b], tried, "; ".join(line for _, line in results))


ATTACKS = [
    Attack("root.probe-answers", FAMILY, "crafted probe answers (planted symlinks, paths "
           "outside the scratch, '..', huge or malformed JSON) do not make root touch a file",
           "pool", probe_answers),
]
