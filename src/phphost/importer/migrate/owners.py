"""Stage 6's ownership changes in the tenant homes: what changes owner, group or mode
when the sites stop running as the web user and start running as their tenant's pool
users (docs/migrate.md, stage 6). Computed and shown before anything changes; each
change recorded (the old owner, group and mode) before it is made, so going back puts
exactly those back.

The rule (three parties: the tenant owns code, its pools read it through the tenant
group and write only to the spec's `writable` dirs, Apache reads through ACLs):

- the home: the tenant's, 0750 (what `phphost apply` makes it);
- a `writable` dir and everything below it: the tenant's user and group, the group
  may read and write (dirs 2770: setgid, so new files keep the tenant group), no
  world-write;
- everything else: what the web user owned becomes the tenant user's, what its group
  held becomes the tenant group's; the group gets the owner's read and execute bits,
  never write (outside `writable` the pool, a member of the tenant group, must not
  write); world-write is removed everywhere. Root's and other users' files keep
  their owner.

Symlinks, FIFOs, devices and sockets are never touched (the walk never follows a
link); a regular file the web user owns with more than one hard link is refused: it
may be another tenant's file, linked in while everything ran as one user. A file that
changes hands loses its setuid and setgid bits (the web user's PHP could have made
one, to run as the tenant later), and each change is made, and undone, only on the
file it was listed for (device and inode), never on one swapped in at its path."""

from __future__ import annotations

import grp
import os
import posixpath
import pwd
import stat
from collections.abc import Iterable
from dataclasses import dataclass

from phphost import safefs
from phphost.errors import PlanError
from phphost.importer.tomlout import printable
from phphost.spec.model import Model, Tenant

HOME, WRITABLE_ROOT, WRITABLE, OTHER = "home", "writable-root", "writable", "other"


@dataclass(frozen=True)
class Change:
    """One path whose owner, group or mode changes: from uid/gid/mode (numbers, as
    they are now) to the tenant's user/group (None: kept) and new_mode."""

    path: str
    uid: int
    gid: int
    mode: int                  # permission bits, setgid/sticky included
    owner: str | None          # the tenant user it goes to, None: unchanged
    group: str | None          # the tenant group it goes to, None: unchanged
    new_mode: int
    dev: int = 0               # the file it is (st_dev, st_ino): a path swapped for
    ino: int = 0               # another file since is left alone, forward and back

    def record(self) -> tuple[str, int, int, int, int, int]:
        """What migrate.json keeps to put it back: (path, uid, gid, mode, dev, ino)."""
        return self.path, self.uid, self.gid, self.mode, self.dev, self.ino

    def line(self) -> str:
        """For the listing; a tenant's path with a newline or escape cannot fake lines."""
        owner = self.owner or _name(self.uid, pwd)
        group = self.group or _name(self.gid, grp)
        return (f"{printable(self.path)}: {_name(self.uid, pwd)}:{_name(self.gid, grp)} "
                f"{self.mode:04o} -> {owner}:{group} {self.new_mode:04o}")


def _name(ident: int, db: object) -> str:
    try:
        if db is pwd:
            return pwd.getpwuid(ident).pw_name
        return grp.getgrgid(ident).gr_name
    except KeyError:
        return str(ident)


def where(rel_path: str, writable: Iterable[str]) -> str:
    """Where an absolute path lies for the rule: HOME is given by the caller."""
    for top in writable:
        if rel_path == top:
            return WRITABLE_ROOT
        if rel_path.startswith(top.rstrip("/") + "/"):
            return WRITABLE
    return OTHER


def new_state(place: str, is_dir: bool, uid: int, gid: int, mode: int,
              web: tuple[int, int]) -> tuple[bool, bool, int]:
    """(to the tenant user, to the tenant group, new mode) for one path. Pure."""
    mode &= 0o7777
    if place == HOME:
        return True, True, 0o750
    if place in (WRITABLE_ROOT, WRITABLE):
        if is_dir:
            return True, True, 0o2770 | (mode & 0o005)
        return True, True, (mode & 0o1755) | 0o660
    owner, group = uid == web[0], gid == web[1]
    new = mode & ~0o002
    if group:
        owner_bits = (mode >> 6) & 0o5
        new = (new & ~0o070) | (owner_bits << 3)
    if not is_dir and (owner or group):
        new &= ~0o6000         # never a set-id file of the tenant's (module docstring)
    return owner, group, new


def changes_for(tenant: Tenant, writable: list[str], web: tuple[int, int],
                tenant_ids: tuple[int, int] | None = None) -> list[Change]:
    """Every path of the tenant's home whose owner, group or mode the rule changes,
    walked by descriptor (safefs.walk_tree: no symlink followed). tenant_ids: the
    tenant's uid/gid once they exist (a path already right is then not listed)."""
    out: list[Change] = []
    for rel, fd in safefs.walk_tree(tenant.home):
        st = os.fstat(fd)
        path = tenant.home if rel == "." else posixpath.join(tenant.home, rel)
        place = HOME if rel == "." else where(path, writable)
        is_dir = stat.S_ISDIR(st.st_mode)
        to_user, to_group, mode = new_state(place, is_dir, st.st_uid, st.st_gid,
                                            st.st_mode, web)
        if tenant_ids is not None and (to_user and st.st_uid == tenant_ids[0]):
            to_user = False
        if tenant_ids is not None and (to_group and st.st_gid == tenant_ids[1]):
            to_group = False
        if not to_user and not to_group and mode == st.st_mode & 0o7777:
            continue
        refuse_shared(path, st)
        out.append(Change(path, st.st_uid, st.st_gid, st.st_mode & 0o7777,
                          tenant.user if to_user else None, tenant.group if to_group else None,
                          mode, st.st_dev, st.st_ino))
    return out


def refuse_shared(path: str, st: os.stat_result) -> None:
    """A regular file with more than one hard link is not handed over: it may be
    another site's file, linked in while every site ran as the web user."""
    if stat.S_ISREG(st.st_mode) and st.st_nlink > 1:
        raise PlanError(f"{path}: a file with {st.st_nlink} hard links that stage 6 would "
                        "give to the tenant; a hard link may be another site's file, "
                        "linked in while every site ran as the web user. Replace it by a "
                        "copy (cp --remove-destination) or remove it, then run migrate "
                        "again. Nothing was changed")


def writable_of(model: Model, tenant: str) -> list[str]:
    return sorted({w for p in model.pools if p.tenant == tenant for w in p.writable})


def plan(model: Model, web_user: str) -> list[Change]:
    """Every change of every tenant home, before anything changed."""
    try:
        pw = pwd.getpwnam(web_user)
    except KeyError as err:
        raise PlanError(f"the old Apache's User {web_user!r} is no user of this host") from err
    web = (pw.pw_uid, pw.pw_gid)
    out: list[Change] = []
    for tenant in model.tenants:
        if not os.path.isdir(tenant.home):
            continue              # apply makes it; nothing in it to change
        try:
            out += changes_for(tenant, writable_of(model, tenant.name), web)
        except safefs.UnsafePath as err:
            raise PlanError(f"stage 6 cannot walk {tenant.home}: {err}. Nothing was "
                            "changed") from err
    return out


def make(changes: list[Change]) -> list[str]:
    """The changes made, each on a descriptor of the path opened without following
    a symlink and checked to be the file it was (same mode type, owner): a path that
    is gone or was swapped since is skipped and named."""
    skipped: list[str] = []
    uids = {u: pwd.getpwnam(u).pw_uid for u in {c.owner for c in changes if c.owner}}
    gids = {g: grp.getgrnam(g).gr_gid for g in {c.group for c in changes if c.group}}
    for c in changes:
        uid = uids[c.owner] if c.owner else c.uid
        gid = gids[c.group] if c.group else c.gid
        if not _set(c.path, (c.dev, c.ino), {c.uid, uid}, uid, gid, c.new_mode):
            skipped.append(c.path)
    return skipped


def restore(records: Iterable[tuple[str, int, int, int, int, int]],
            now_ids: set[int]) -> list[str]:
    """The recorded owners and modes put back, where the path is still the file it was
    (device and inode) and still owned by the tenant (or its pools, now_ids) or by whom
    it was; skipped paths named. A file put in its place since is never given the
    recorded owner (root's, for a root-owned path) or mode (set-id bits included)."""
    skipped: list[str] = []
    for path, uid, gid, mode, dev, ino in records:
        if not _set(path, (dev, ino), {uid} | now_ids, uid, gid, mode):
            skipped.append(path)
    return skipped


def _open(path: str) -> int | None:
    """A descriptor of the directory or regular file at path, reached from / without
    following a symlink a user could have planted; None when it is gone or unsafe."""
    try:
        with safefs.parent(path) as (pfd, name, _trusted):
            return safefs.open_at(pfd, name, path)
    except (OSError, safefs.UnsafePath):
        return None


def _set(path: str, same: tuple[int, int], allowed: set[int], uid: int, gid: int,
         mode: int) -> bool:
    fd = _open(path)
    if fd is None:
        return False
    try:
        st = os.fstat(fd)
        if (st.st_dev, st.st_ino) != same or st.st_uid not in allowed:
            return False           # another file, or someone else's since: not ours
        try:
            refuse_shared(path, st)        # linked in since the listing
        except PlanError:
            return False
        os.fchown(fd, uid, gid)
        safefs.chmod_fd(fd, mode)      # after fchown (it clears setgid); with an ACL
        return True                     # (apply's docroot grant) the group entry too
    finally:
        os.close(fd)


def handed_back(model: Model, web: tuple[int, int], ids: set[int],
                recorded: set[str]) -> int:
    """Going back: files and dirs in `writable` dirs that the pools or the tenant made
    since stage 6 (owned by one of ids, not in the record) become the web user's, so the
    web user's masters can write them again. How many."""
    count = 0
    for pool in model.pools:
        for top in pool.writable:
            if not os.path.isdir(top):
                continue
            try:
                walked = list(safefs.walk_tree(top))
            except safefs.UnsafePath:
                continue
            for rel, fd in walked:
                del fd
                path = top if rel == "." else posixpath.join(top, rel)
                if path in recorded:
                    continue
                if _set_if_owned(path, ids, web):
                    count += 1
    return count


def _set_if_owned(path: str, ids: set[int], web: tuple[int, int]) -> bool:
    fd = _open(path)
    if fd is None:
        return False
    try:
        st = os.fstat(fd)
        if st.st_uid not in ids or (stat.S_ISREG(st.st_mode) and st.st_nlink > 1):
            return False
        mode = st.st_mode & (0o7777 if stat.S_ISDIR(st.st_mode) else 0o1777)   # no set-id
        os.fchown(fd, web[0], web[1])
        safefs.chmod_fd(fd, mode)
        return True
    finally:
        os.close(fd)
