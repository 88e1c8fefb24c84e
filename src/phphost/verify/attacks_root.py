"""Root: a tenant (or its pool) plants symlinks where phphost, as root, creates,
chowns, chmods, grants ACLs, reads TLS files, rolls back and purges, and then root
does exactly that with phphost's own code. The attack checks what root touched:
root-only sentinel files and a directory outside every tenant's tree must keep
their owner, mode, ACLs and content.

The root-side operations run on scratch paths of this run only (a directory named
verify-<run id>-... in the tenant's docroot or writable dir), never on the tenant's
real dirs, so the live sites keep serving."""

from __future__ import annotations

import base64
import contextlib
import grp
import hashlib
import os
import pwd
import shutil
import stat
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from phphost import layout, safefs
from phphost.errors import PhphostError
from phphost.facts.gather import read_dir
from phphost.facts.hostview import RealHostView
from phphost.host import identities
from phphost.host.jailbuild import build_jail
from phphost.host.journal import Journal
from phphost.jail.closure import Closure
from phphost.jail.manifest import Entry, Manifest
from phphost.plan.desired import WEB_ACL_READ, WEB_ACL_TRAVERSE
from phphost.spec.model import Tenant
from phphost.verify.attack import Attack
from phphost.verify.context import Ctx
from phphost.verify.fixtures import code_dir, data_dirs
from phphost.verify.fsops import op, run_ops
from phphost.verify.result import Result, judged, not_applicable

FAMILY = "root"
# what an undone journal would set if it followed a link: every bit a tenant wants
_OPEN_ACL = base64.b64encode(safefs.encode_acl([(0x01, 7, 0xFFFFFFFF), (0x04, 7, 0xFFFFFFFF),
                                                (0x20, 7, 0xFFFFFFFF)])).decode("ascii")


@dataclass(frozen=True)
class Sentinels:
    """Root-only things outside every tenant tree, in a 0700 dir of this run."""

    base: str
    file: str
    dir: str

    def paths(self) -> list[str]:
        return [self.file, self.dir, os.path.join(self.dir, "inside")]

    def snapshot(self) -> dict[str, str]:
        return {p: fingerprint(p) for p in self.paths()}


def fingerprint(path: str, list_dirs: bool = True) -> str:
    """Owner, mode, xattrs with their values (ACLs: system.posix_acl_*), and content
    hash (or a directory's entries) of path, never following a symlink; "gone" when
    missing."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return "gone"
    xattrs = [f"{name}={_digest(os.getxattr(path, name, follow_symlinks=False))}"
              for name in sorted(os.listxattr(path, follow_symlinks=False))]
    if stat.S_ISREG(st.st_mode):
        with open(os.open(path, os.O_RDONLY | os.O_NOFOLLOW), "rb") as fh:
            what = hashlib.sha256(fh.read()).hexdigest()
    elif stat.S_ISDIR(st.st_mode):
        what = "dir:" + ",".join(sorted(os.listdir(path))) if list_dirs else "dir"
    else:
        what = "other"
    return f"{st.st_uid}:{st.st_gid} {stat.S_IMODE(st.st_mode):04o} {xattrs} {what}"


def _digest(blob: bytes) -> str:
    return hashlib.sha256(blob).hexdigest()[:16]


@contextlib.contextmanager
def sentinels(mark: str) -> Iterator[Sentinels]:
    os.makedirs(layout.RUN_DIR, exist_ok=True)
    base = tempfile.mkdtemp(prefix=f"{mark}-root-", dir=layout.RUN_DIR)
    s = Sentinels(base, os.path.join(base, "secret"), os.path.join(base, "dir"))
    try:
        with open(os.open(s.file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "w") as fh:
            fh.write(f"root only {mark}\n")
        os.mkdir(s.dir, 0o700)
        with open(os.open(os.path.join(s.dir, "inside"), os.O_WRONLY | os.O_CREAT, 0o600),
                  "w") as fh:
            fh.write("root only\n")
        yield s
    finally:
        shutil.rmtree(base, ignore_errors=True)


@dataclass(frozen=True)
class Planted:
    """A scratch directory with links to the sentinels in it."""

    top: str              # the directory root's recursive grant starts at
    link_file: str        # -> the sentinel file
    link_dir: str         # -> the sentinel dir


RootOp = tuple[str, Callable[[], str | None]]
"""(what root does, the call). The call returns a breach it saw itself (e.g. plan
reading the swapped dir as a good one, root reading a root-only file's content), or
None; a PhphostError/OSError from it means root refused. Sentinels are compared
after every step as well."""


def _journal_undo(where: Planted, base: str) -> str | None:
    """A rollback whose journal names the planted paths (as a killed apply's would)."""
    j = Journal(os.path.join(base, "journal"))
    j.begin()
    j.record({"k": "dir", "path": os.path.join(where.link_dir, "inside")})
    j.record({"k": "dirmode", "path": where.link_dir, "uid": 0, "gid": 0, "mode": 0o4777})
    j.record({"k": "acl", "path": where.top, "items": [
        [os.path.basename(where.link_file), _OPEN_ACL, None],
        [f"{os.path.basename(where.link_dir)}/inside", _OPEN_ACL, None]]})
    j.rollback()
    return None


def _jail_rebuild(where: Planted, base: str, sent: Sentinels, uid: int, gid: int) -> str | None:
    """A jail rebuild where the pool has planted links in a directory of the jail it
    owns (its /tmp, its session dir: root does not descend into those, the pool can
    rename anything there): `sess`, a pool dir of the manifest, is a link to the
    root-only dir, `key.pem`, a file of the manifest, a link to the root-only file.
    The jail is a scratch one in root's run dir, never a live pool's."""
    del where
    root = os.path.join(base, "jail")
    tmp = os.path.join(root, "tmp")
    os.makedirs(tmp, mode=0o755, exist_ok=True)
    os.chown(tmp, uid, gid)
    os.chmod(tmp, 0o700)
    for name, target in (("sess", sent.dir), ("key.pem", sent.file)):
        link = os.path.join(tmp, name)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(link)
        os.symlink(target, link)
        os.lchown(link, uid, gid)       # as the pool would have made it
    content = b"jail file\n"
    manifest = Manifest("verify", uid, gid, (
        Entry("/", "dir", mode=0o755),
        Entry("/tmp", "dir", mode=0o700, owner="pool"),
        Entry("/tmp/key.pem", "file", mode=0o644, content=content,
              digest=hashlib.sha256(content).hexdigest()),
        Entry("/tmp/sess", "dir", mode=0o700, owner="pool")))
    build_jail(manifest, root, store_dir=os.path.join(base, "store"))
    return None


def root_ops(tenant: Tenant, where: Planted, sent: Sentinels) -> list[RootOp]:
    """What plan, apply, rollback, the TLS check, a jail rebuild and destroy --purge
    do, aimed at the planted paths."""
    base = sent.base
    uid, gid = pwd.getpwnam(tenant.user).pw_uid, grp.getgrnam(tenant.group).gr_gid

    def journal() -> Journal:
        j = Journal(os.path.join(base, "scratch-journal"))
        j.begin()
        return j

    def facts() -> str | None:
        unsafe: dict[str, str] = {}
        fact = read_dir(where.link_dir, unsafe)
        if where.link_dir not in unsafe:
            return f"plan took {where.link_dir} for a directory ({fact}): apply would act on it"
        return None

    def tls() -> str | None:
        data = safefs.read_file(where.link_file, root_only=True)
        secret = Path(sent.file).read_bytes()
        if data == secret:
            return (f"root read the root-only {sent.file} through {where.link_file} (apache2 "
                    "would load it as a site's key)")
        return None

    def call(fn: Callable[[], object]) -> Callable[[], str | None]:
        def run() -> str | None:
            fn()
            return None
        return run

    return [
        ("plan reads the swapped dir", facts),
        ("apply fixes a writable dir that is a link",
         call(lambda: identities.ensure_dir(journal(), where.link_dir, tenant.user,
                                            tenant.group, 0o2770))),
        ("apply creates a dir below a link",
         call(lambda: identities.ensure_dir(journal(), os.path.join(where.link_dir, "sub"),
                                            tenant.user, tenant.group, 0o2770))),
        ("apply grants the docroot ACL recursively",
         call(lambda: identities.set_acl(journal(), where.top, WEB_ACL_READ, True))),
        ("apply grants traverse on a swapped dir",
         call(lambda: identities.set_acl(journal(), where.link_dir, (WEB_ACL_TRAVERSE,),
                                         False))),
        ("rollback of a journal naming the links", lambda: _journal_undo(where, base)),
        ("the TLS check reads a key that is a link", tls),
        ("a jail rebuild over links the pool planted in its jail dir",
         lambda: _jail_rebuild(where, base, sent, uid, gid)),
        ("destroy --purge of a home that is a link",
         call(lambda: safefs.remove_tree(where.link_dir))),
    ]


def judge_ops(ops: list[RootOp], sent: Sentinels) -> tuple[list[str], list[str]]:
    """(breaches, what happened): each op runs, then the sentinels are compared."""
    before = sent.snapshot()
    breaches: list[str] = []
    seen: list[str] = []
    for name, call in ops:
        try:
            found = call()
            seen.append(f"{name}: done")
            if found:
                breaches.append(f"{name}: {found}")
        except (PhphostError, OSError) as err:
            seen.append(f"{name}: refused ({_short(err)})")
        now = sent.snapshot()
        for path, fp in now.items():
            if fp != before[path]:
                breaches.append(f"{name}: root changed {path} ({before[path]} -> {fp})")
        before = now
    return breaches, seen


def _short(err: BaseException) -> str:
    text = str(err).splitlines()[0] if str(err) else type(err).__name__
    return text[:120]


def _plant_as_tenant(ctx: Ctx, directory: str, sent: Sentinels) -> Planted:
    name = ctx.name(f"root-{ctx.site.name}")
    top = ctx.run.scratch.mkdir(ctx.tenant, os.path.join(directory, name))
    link_file = ctx.run.scratch.symlink(ctx.tenant, sent.file, os.path.join(top, "key.pem"))
    link_dir = ctx.run.scratch.symlink(ctx.tenant, sent.dir, os.path.join(top, "uploads"))
    return Planted(top, link_file, link_dir)


def tenant_links(ctx: Ctx) -> Result:
    """The tenant plants links in its docroot; root then does its work there."""
    with sentinels(ctx.run.scratch.mark) as sent:
        planted = _plant_as_tenant(ctx, code_dir(ctx.model, ctx.tenant), sent)
        breaches, seen = judge_ops(root_ops(ctx.tenant, planted, sent), sent)
    return judged(breaches, f"tenant {ctx.tenant.name} links {planted.top}/key.pem and "
                  "/uploads to root-only files; root then does its work there",
                  "; ".join(seen))


def pool_links(ctx: Ctx) -> Result:
    """The pool's PHP plants links in its writable dir; root then does its work there."""
    dirs = [d for d in data_dirs(ctx.model, ctx.tenant) if d in ctx.pool.writable]
    if not dirs:
        return not_applicable(f"pool {ctx.pool.name} has no writable dirs")
    with sentinels(ctx.run.scratch.mark) as sent:
        top = os.path.join(dirs[0], ctx.name(f"root-{ctx.pool.name}"))
        planted = Planted(top, os.path.join(top, "key.pem"), os.path.join(top, "uploads"))
        ctx.run.scratch.mkdir(ctx.tenant, top)
        with safefs.opened_dir(top) as fd:   # the pool can rename it: never chmod by path
            os.fchmod(fd, 0o2770)     # the pool (group) plants into it, like a data dir
        for path in (planted.link_file, planted.link_dir):
            ctx.run.scratch.track(path)
        results = run_ops(ctx.run.probes, ctx.pool, [
            op("symlink", planted.link_file, target=sent.file),
            op("symlink", planted.link_dir, target=sent.dir)])
        if not all(r["ok"] for r in results):
            return not_applicable(f"pool {ctx.pool.name} could not plant links: {results!r}")
        breaches, seen = judge_ops(root_ops(ctx.tenant, planted, sent), sent)
    return judged(breaches, f"PHP in pool {ctx.pool.name} links {top}/key.pem and /uploads "
                  "to root-only files; root then does its work there", "; ".join(seen))


def _closure_of(program: str) -> tuple[str, Closure | None]:
    """What jail.programs does with a program path: its closure, from the real host."""
    closure = Closure(RealHostView())
    try:
        closure.add_program(program)
    except PhphostError as err:
        return f"refused ({_short(err)})", None
    except OSError as err:
        return f"refused ({err.strerror or err})", None
    return "accepted", closure


def program_closure(ctx: Ctx) -> Result:
    """The tenant names its own files as jail programs (as a spec's jail.programs
    may): a script whose `#!` is a root-only file, a symlink to one, and an ELF it
    wrote (ldd runs the loader on it; its libraries are whatever the tenant makes them).
    Root must read none of them; the root-only file must never land in a closure."""
    with sentinels(ctx.run.scratch.mark) as sent:
        top = ctx.run.scratch.mkdir(ctx.tenant, os.path.join(code_dir(ctx.model, ctx.tenant),
                                                             ctx.name(f"closure-{ctx.site.name}")))
        with open("/usr/bin/true", "rb") as fh:
            elf = fh.read()
        planted = {
            "a script with #! naming a root-only file":
                ctx.run.scratch.write(ctx.tenant, os.path.join(top, "hashbang"),
                                      f"#!{sent.file}\n".encode()),
            "a symlink to a root-only file":
                ctx.run.scratch.symlink(ctx.tenant, sent.file, os.path.join(top, "linked")),
            "an ELF the tenant wrote":
                ctx.run.scratch.write(ctx.tenant, os.path.join(top, "tool"), elf),
        }
        breaches: list[str] = []
        seen: list[str] = []
        for what, path in planted.items():
            verdict, closure = _closure_of(path)
            seen.append(f"{what}: {verdict}")
            if closure is None:
                continue
            needs = sorted(closure.needs)
            secret = [n for n in needs if n.startswith(sent.base)]
            breaches.append(f"{what} ({path}): root read it and took its closure"
                            + (f", copying the root-only {', '.join(secret)} into the jail"
                               if secret else f" ({len(needs)} paths)"))
    return judged(breaches, f"tenant {ctx.tenant.name} names {top}/hashbang (#!{sent.file}), "
                  f"/linked (-> it) and /tool (its own ELF) as jail programs",
                  "; ".join(seen))


ATTACKS = (
    Attack("root.tenant-links", FAMILY, "symlinks a tenant plants in its docroot do not "
           "steer root's chown/chmod/ACL/rollback/TLS read/purge", "site", tenant_links),
    Attack("root.pool-links", FAMILY, "symlinks a pool plants in its writable dir do not "
           "steer root's chown/chmod/ACL/rollback/TLS read/purge", "pool", pool_links),
    Attack("root.program-closure", FAMILY, "a tenant's files named as jail programs (#! of a "
           "root-only file, a link to one, its own ELF) are never read nor copied by root",
           "site", program_closure),
)
