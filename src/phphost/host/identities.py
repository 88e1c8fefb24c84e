"""Users, groups, directories and ACLs. Each function records its undo in the
journal before it changes anything."""

from __future__ import annotations

import base64
import contextlib
import ctypes
import grp
import os
import pwd
import re
import stat
import time
from collections.abc import Iterator, Sequence

from phphost import files, layout, safefs
from phphost.errors import HostError
from phphost.host.journal import Journal
from phphost.runner import run


def create_group(journal: Journal, name: str) -> None:
    journal.record({"k": "group", "name": name})
    if name == layout.MAIL_GROUP:
        run(["groupadd", "--system", name])
        return
    gid = next_tenant_id("gid")
    run(["groupadd", "--gid", str(gid), name])


def record_group(journal: Journal, name: str) -> None:
    """Journal a group that create_user(..., with_group=True) will make."""
    journal.record({"k": "group", "name": name})


def create_user(journal: Journal, name: str, group: str, home: str, system: bool,
                with_group: bool = False) -> None:
    """with_group (a tenant user whose own group is new, journaled by record_group): the
    group is made first, by groupadd."""
    journal.record({"k": "user", "name": name})
    argv = ["useradd", "--no-create-home", "--home-dir", home, "--shell", layout.NOLOGIN,
            "--gid", group]
    if not system:
        # a tenant's user: below phphost's pool range, above every tenant uid given before
        # (useradd's own choice, the highest used uid + 1, handed a removed pool's uid or a
        # destroyed tenant's to the next tenant, with the files that one left behind); its
        # new group likewise above every tenant gid given before
        old_uid, old_gid = home_owner_ids(home)
        if with_group and group == name:
            gid = old_gid if old_gid is not None else next_tenant_id("gid")
            run(["groupadd", "--gid", str(gid), group])
        uid = old_uid if old_uid is not None else next_tenant_id("uid")
        run([*argv, "--uid", str(uid), name])
        return
    # a pool's runtime user: from phphost's own range (layout), below every pool uid
    # given before, so a new pool never inherits what a removed one left behind
    # (the uid is recorded before useradd: a failure after it only skips a number)
    uid = next_pool_uid_ceiling()
    record_pool_uid(uid)
    run([*argv, "--system", "--uid", str(uid), name])


_NAME = re.compile(r"[a-z_][a-z0-9_.-]{0,31}")


def create_pool_users(journal: Journal, users: Sequence[tuple[str, str]]) -> None:
    """Many pool runtime users (name, primary group) in one change of /etc/passwd and
    /etc/shadow, instead of one useradd each (about 40 ms each: its own lock, writes,
    fsyncs and cache flushes; 1,000 pools took 40 s). Exactly what `useradd --system
    --no-create-home --home-dir /nonexistent --shell nologin --gid GROUP --uid UID`
    writes (no password: "!", no aging), with uids below every pool uid given before
    (the recorded floor is lowered first), under glibc's lckpwdf(), the lock shadow's
    tools take before they touch these files. Each file is replaced atomically, the
    previous one kept as FILE- as shadow's tools do; shadow before passwd, so an
    interruption leaves at most a shadow line without its user (dropped next time)."""
    if not users:
        return
    for name, group in users:
        if not _NAME.fullmatch(name) or not _NAME.fullmatch(group):
            raise HostError(f"not a user or group name phphost makes: {name!r}, {group!r}")
    gids = {}
    for _name, group in users:
        try:
            gids[group] = grp.getgrnam(group).gr_gid
        except KeyError:
            raise HostError(f"group {group!r} does not exist: it is made before its "
                            "pool users; run apply again") from None
    with _account_lock():
        passwd = _read_lines(layout.USER_DB)
        taken = {line.split(":", 1)[0] for line in passwd}
        clash = sorted(taken & {name for name, _g in users})
        if clash:
            raise HostError(f"user(s) {', '.join(clash[:5])} appeared meanwhile; run apply again")
        top = next_pool_uid_ceiling()
        bottom = top - len(users) + 1
        if bottom < layout.POOL_UID_MIN:
            raise HostError(f"phphost's pool uid range {layout.POOL_UID_MIN}-"
                            f"{layout.POOL_UID_MAX} has room for {top - layout.POOL_UID_MIN + 1}"
                            f" more pool users, not {len(users)} ({layout.POOL_UID_FLOOR})")
        used = {line.split(":")[2] for line in passwd if line.count(":") >= 6}
        record_pool_uid(bottom)
        day = int(time.time() // 86400)
        new_passwd, new_shadow = [], []
        for i, (name, group) in enumerate(users):
            uid = top - i
            if str(uid) in used:
                raise HostError(f"uid {uid} is in use outside phphost's record; run apply again")
            journal.record({"k": "user", "name": name})
            new_passwd.append(f"{name}:x:{uid}:{gids[group]}::/nonexistent:{layout.NOLOGIN}")
            new_shadow.append(f"{name}:!:{day}::::::")
        names = {name for name, _g in users}
        shadow = [line for line in _read_lines(layout.USER_SHADOW_DB)
                  if line.split(":", 1)[0] not in names]     # orphans of an interruption
        _replace(layout.USER_SHADOW_DB, shadow + new_shadow)
        _replace(layout.USER_DB, passwd + new_passwd)
    if os.path.exists(layout.NSCD):
        run([layout.NSCD, "-i", "passwd"], check=False)


# what Debian 12's login.defs gives a user useradd makes (tenant users)
SUBID_MIN, SUBID_MAX, SUBID_COUNT = 100000, 600100000, 65536


def create_tenant_users(journal: Journal, users: Sequence[tuple[str, str]]) -> None:
    """Many tenant users (name, home), each with a new group of its name (journaled by
    record_group), in one change of the account files: what `useradd --no-create-home
    --home-dir HOME --shell nologin --user-group -K UID_MAX=29999` writes for each
    (passwd, shadow with the login.defs aging 0:99999:7, group, gshadow, and a range of
    65,536 subordinate uids and gids above the ones given), under lckpwdf. uids are the
    highest tenant uid in use plus one and up, below the pool range; the group gets the
    same number when it is free. Written groups first, passwd last: an interruption
    leaves at most groups, subordinate ranges or shadow lines without their user, which
    the next apply uses or replaces."""
    if not users:
        return
    for name, home in users:
        if not _NAME.fullmatch(name) or not home.startswith("/") or any(
                c in home for c in ":\n\r\0"):
            raise HostError(f"not a user or home phphost makes: {name!r}, {home!r}")
    names = {name for name, _h in users}
    with _account_lock():
        db = {path: _read_lines(path) for path in (
            layout.USER_DB, layout.USER_SHADOW_DB, layout.GROUP_DB, layout.GROUP_SHADOW_DB,
            layout.SUBUID_DB, layout.SUBGID_DB)}
        users_now = _fields(db[layout.USER_DB])
        clash = sorted(names & users_now.keys())
        if clash:
            raise HostError(f"user(s) {', '.join(clash[:5])} appeared meanwhile; run apply again")
        groups_now = _fields(db[layout.GROUP_DB])
        clash = sorted(names & groups_now.keys())
        if clash:
            raise HostError(f"group(s) {', '.join(clash[:5])} appeared meanwhile; run apply again")
        marks = _tenant_marks()
        uids_used = {_num(f[2]) for f in users_now.values()}
        gids_used = {_num(f[2]) for f in groups_now.values()}
        old: list[tuple[int | None, int | None]] = []
        for _name, home in users:           # one claim per id: homes may share an owner
            old_uid, old_gid = home_owner_ids(home, uids_used, gids_used)
            old.append((old_uid, old_gid))
            uids_used |= {old_uid} if old_uid is not None else set()
            gids_used |= {old_gid} if old_gid is not None else set()
        fresh = iter(_allocate(sum(u is None for u, _g in old), uids_used, marks[0]))
        uids = [u if u is not None else next(fresh) for u, _g in old]
        gid_top = max([marks[1], *(g for g in gids_used if g < layout.POOL_UID_MIN)])
        day = int(time.time() // 86400)
        add: dict[str, list[str]] = {path: [] for path in db}
        sub_u, sub_g = _subid_next(db[layout.SUBUID_DB]), _subid_next(db[layout.SUBGID_DB])
        for (name, home), uid, (_u, old_gid) in zip(users, uids, old, strict=True):
            gid = old_gid if old_gid is not None else \
                uid if uid not in gids_used and uid > gid_top else gid_top + 1
            if gid >= layout.POOL_UID_MIN:
                raise HostError(f"no gid left for tenant groups below {layout.POOL_UID_MIN} "
                                f"(phphost's pool range; {layout.TENANT_ID_MARK})")
            gids_used.add(gid)
            gid_top = max(gid_top, gid)
            journal.record({"k": "user", "name": name})
            add[layout.GROUP_DB].append(f"{name}:x:{gid}:")
            add[layout.GROUP_SHADOW_DB].append(f"{name}:!::")
            add[layout.SUBUID_DB].append(f"{name}:{sub_u}:{SUBID_COUNT}")
            add[layout.SUBGID_DB].append(f"{name}:{sub_g}:{SUBID_COUNT}")
            add[layout.USER_SHADOW_DB].append(f"{name}:!:{day}:0:99999:7:::")
            add[layout.USER_DB].append(f"{name}:x:{uid}:{gid}::{home}:{layout.NOLOGIN}")
            sub_u, sub_g = sub_u + SUBID_COUNT, sub_g + SUBID_COUNT
        if max(sub_u, sub_g) - 1 > SUBID_MAX:
            raise HostError("no subordinate uid/gid ranges left for so many tenant users "
                            f"({layout.SUBUID_DB}, {layout.SUBGID_DB})")
        _record_tenant_marks(max(marks[0], *uids), gid_top)     # before the accounts
        for path in (layout.GROUP_SHADOW_DB, layout.GROUP_DB, layout.SUBUID_DB,
                     layout.SUBGID_DB, layout.USER_SHADOW_DB, layout.USER_DB):
            kept = [line for line in db[path] if line.split(":", 1)[0] not in names]
            _replace(path, kept + add[path])     # orphans of an interruption replaced
    if os.path.exists(layout.NSCD):
        run([layout.NSCD, "-i", "passwd"], check=False)
        run([layout.NSCD, "-i", "group"], check=False)


def _fields(lines: list[str]) -> dict[str, list[str]]:
    return {f[0]: f for f in (line.split(":") for line in lines) if len(f) >= 3}


def _num(text: str) -> int:
    return int(text) if text.isdigit() else -1


def _allocate(count: int, used: set[int], mark: int = 0) -> list[int]:
    """`count` uids one after another: above the highest tenant uid in use and the
    highest phphost ever gave (`mark`), below the pool range."""
    uid = max([u for u in used if layout.TENANT_ID_MIN <= u < layout.POOL_UID_MIN]
              + [layout.TENANT_ID_MIN - 1, mark]) + 1
    out: list[int] = []
    while len(out) < count:
        if uid >= layout.POOL_UID_MIN:
            raise HostError(f"no uid left for tenant users below {layout.POOL_UID_MIN} "
                            "(phphost's pool range)")
        if uid not in used:
            out.append(uid)
        uid += 1
    return out


def _subid_next(lines: list[str]) -> int:
    """The first subordinate id above every range given (useradd's default)."""
    ends = [int(f[1]) + int(f[2]) for f in (line.split(":") for line in lines)
            if len(f) == 3 and f[1].isdigit() and f[2].isdigit()]
    return max([SUBID_MIN, *ends])


def remove_pool_users(names: Sequence[str]) -> list[str]:
    """Remove those of these users that are pool users (a uid in phphost's pool range,
    member of no group but their primary one, which is not their own) in one change of
    /etc/passwd and /etc/shadow under lckpwdf, as userdel would for such a user (no
    home, mail spool or subordinate ids to remove). Returns the names it did not
    remove: those are for userdel."""
    members = {m for g in grp.getgrall() for m in g.gr_mem}
    pools = {u.pw_name for u in pwd.getpwall()
             if layout.POOL_UID_MIN <= u.pw_uid <= layout.POOL_UID_MAX}
    mine = {n for n in names if n in pools and n not in members and _no_own_group(n)}
    if mine:
        with _account_lock():
            passwd = _read_lines(layout.USER_DB)
            shadow = _read_lines(layout.USER_SHADOW_DB)
            _replace(layout.USER_SHADOW_DB, [line for line in shadow
                                             if line.split(":", 1)[0] not in mine])
            _replace(layout.USER_DB, [line for line in passwd
                                      if line.split(":", 1)[0] not in mine])
        if os.path.exists(layout.NSCD):
            run([layout.NSCD, "-i", "passwd"], check=False)
    return [n for n in names if n not in mine]


def _no_own_group(name: str) -> bool:
    try:
        grp.getgrnam(name)
    except KeyError:
        return True
    return False


@contextlib.contextmanager
def _account_lock() -> Iterator[None]:
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.lckpwdf() != 0:
        raise HostError("could not lock the account files (lckpwdf: "
                        f"{os.strerror(ctypes.get_errno())}); is another useradd or "
                        "passwd running? Run apply again")
    try:
        yield
    finally:
        libc.ulckpwdf()


def _read_lines(path: str) -> list[str]:
    with open(path, encoding="utf-8") as fh:
        return fh.read().splitlines()


def _replace(path: str, lines: list[str]) -> None:
    """path replaced atomically by lines, same mode and owner; the old file kept as
    path- (as shadow's tools keep it)."""
    st = os.stat(path, follow_symlinks=False)
    if not stat.S_ISREG(st.st_mode):
        raise HostError(f"{path} is not a regular file")
    with open(path, "rb") as fh:
        old = fh.read()
    mode = stat.S_IMODE(st.st_mode)
    files.atomic_write(path + "-", old, mode, st.st_uid, st.st_gid)
    files.atomic_write(path, "".join(line + "\n" for line in lines), mode, st.st_uid,
                       st.st_gid)


def next_pool_uid_ceiling() -> int:
    """The highest uid the next pool user may get: one below the lowest pool uid ever
    handed out (the recorded floor, or a pool-range user that exists now)."""
    floor = min([layout.POOL_UID_MAX + 1, _recorded_floor(),
                 *(u.pw_uid for u in pwd.getpwall()
                   if layout.POOL_UID_MIN <= u.pw_uid <= layout.POOL_UID_MAX)])
    if floor - 1 < layout.POOL_UID_MIN:
        raise HostError(
            f"phphost's pool uid range {layout.POOL_UID_MIN}-{layout.POOL_UID_MAX} is used "
            f"up ({layout.POOL_UID_FLOOR}): uids of removed pools are never given again, "
            "because their files and ACL entries may remain. To hand them out again, chown "
            "or remove what removed pools left behind, then delete that file")
    return floor - 1


def _recorded_floor() -> int:
    text = files.read_text(layout.POOL_UID_FLOOR)
    if not text:
        return layout.POOL_UID_MAX + 1
    try:
        return int(text.strip())
    except ValueError:
        raise HostError(f"{layout.POOL_UID_FLOOR}: not a uid ({text.strip()[:40]!r}); it "
                        "holds the lowest pool uid phphost gave out. Write that number "
                        "there (the lowest uid of a pool user, or of files they left)"
                        ) from None


def record_pool_uid(uid: int) -> None:
    if layout.POOL_UID_MIN <= uid < _recorded_floor():
        os.makedirs(layout.STATE_DIR, 0o700, exist_ok=True)
        files.atomic_write(layout.POOL_UID_FLOOR, f"{uid}\n", 0o600)


def home_owner_ids(home: str, uids: set[int] | None = None, gids: set[int] | None = None,
                   ) -> tuple[int | None, int | None]:
    """The uid and gid owning an existing home directory that no account has now, in
    the tenant range: a tenant removed without --purge left that home, and the tenant
    that gets the home back gets those ids back (and with them its files). Any other
    new tenant never gets them (next_tenant_id). `uids`/`gids`: the ids in use, when
    the caller has read the account files itself. (None, None) for anything else."""
    try:
        st = os.lstat(home)
    except OSError:
        return None, None
    if not stat.S_ISDIR(st.st_mode):
        return None, None
    in_use_u = uids if uids is not None else {u.pw_uid for u in pwd.getpwall()}
    in_use_g = gids if gids is not None else {g.gr_gid for g in grp.getgrall()}

    def free(n: int, used: set[int]) -> bool:
        return layout.TENANT_ID_MIN <= n < layout.POOL_UID_MIN and n not in used
    return (st.st_uid if free(st.st_uid, in_use_u) else None,
            st.st_gid if free(st.st_gid, in_use_g) else None)


def next_tenant_id(kind: str) -> int:
    """The uid (kind "uid") or gid ("gid") for a new tenant user or group: one above the
    highest phphost ever gave and every one in use in the tenant range, recorded before
    the account is made (a failure after it only skips a number)."""
    index = 0 if kind == "uid" else 1
    marks = _tenant_marks()
    used = (u.pw_uid for u in pwd.getpwall()) if kind == "uid" else \
        (g.gr_gid for g in grp.getgrall())
    top = max([marks[index], layout.TENANT_ID_MIN - 1,
               *(n for n in used if layout.TENANT_ID_MIN <= n < layout.POOL_UID_MIN)])
    if top + 1 >= layout.POOL_UID_MIN:
        raise HostError(
            f"no {kind} left for a tenant below phphost's pool range ({layout.POOL_UID_MIN}); "
            f"{layout.TENANT_ID_MARK} holds the highest tenant uid and gid phphost gave. "
            "Lower it only after chowning what destroyed tenants left behind")
    marks[index] = top + 1
    _record_tenant_marks(marks[0], marks[1])
    return top + 1


def _record_tenant_marks(uid: int, gid: int) -> None:
    os.makedirs(layout.STATE_DIR, 0o700, exist_ok=True)
    files.atomic_write(layout.TENANT_ID_MARK, f"{uid} {gid}\n", 0o600)


def _tenant_marks() -> list[int]:
    text = files.read_text(layout.TENANT_ID_MARK)
    if not text:
        return [0, 0]
    parts = text.split()
    if len(parts) != 2 or not all(p.isdigit() for p in parts):
        raise HostError(f"{layout.TENANT_ID_MARK}: not 'UID GID' ({text.strip()[:40]!r}); "
                        "it holds the highest tenant uid and gid phphost gave. Write those "
                        "two numbers there")
    return [int(parts[0]), int(parts[1])]


def set_primary_group(journal: Journal, name: str, group: str) -> None:
    old = grp.getgrgid(pwd.getpwnam(name).pw_gid).gr_name
    journal.record({"k": "usergroup", "name": name, "old": old})
    run(["usermod", "-g", group, name])


def remove_user(name: str) -> None:
    try:
        pwd.getpwnam(name)
    except KeyError:
        return
    run(["userdel", name])


def remove_group(name: str) -> None:
    """Also a no-op when userdel already removed the user's own group."""
    try:
        grp.getgrnam(name)
    except KeyError:
        return
    run(["groupdel", name])


def ensure_dir(journal: Journal, path: str, owner: str, group: str, mode: int) -> None:
    """Create (mkdirat) or fix the directory at path through descriptors: a symlink
    or a non-directory there, or an untrusted symlink above it, is refused."""
    uid, gid = pwd.getpwnam(owner).pw_uid, grp.getgrnam(group).gr_gid
    old = safefs.dir_state(path)
    if old is None:
        journal.record({"k": "dir", "path": path})
        if not safefs.make_dir(path):
            old = safefs.dir_state(path)
    if old is not None:
        journal.record({"k": "dirmode", "path": path, "uid": old.uid, "gid": old.gid,
                        "mode": old.mode})
    safefs.set_owner_mode(path, uid, gid, mode)


def set_acl(journal: Journal, path: str, entries: tuple[str, ...], recursive: bool) -> None:
    """Grant ACL entries on path (and, when recursive, on every directory and regular
    file below it) through descriptors, after journaling the ACLs that change."""
    before = _acl_snapshot(path, entries, recursive)
    journal.record({"k": "acl", "path": path, "items": before})
    for _rel, fd in _targets(path, recursive):
        safefs.grant(fd, entries)


def _targets(path: str, recursive: bool) -> Iterator[tuple[str, int]]:
    if recursive:
        yield from safefs.walk_tree(path)
        return
    with safefs.opened_dir(path) as fd:
        yield ".", fd


def _acl_snapshot(path: str, entries: tuple[str, ...], recursive: bool) -> list[list[str | None]]:
    """[relative path, access xattr, default xattr] (base64, None when absent) of
    every target whose ACL the grant will change."""
    out: list[list[str | None]] = []
    for rel, fd in _targets(path, recursive):
        access, default = safefs.acl_blobs(fd)
        if not _has(fd, entries):
            out.append([rel, _b64(access), _b64(default)])
    return out


def _has(fd: int, entries: tuple[str, ...]) -> bool:
    have = safefs.named_entries(fd)
    return all(e in have or _file_form(e) in have for e in entries
               if not (e.startswith("default:") and not _is_dir(fd)))


def _file_form(entry: str) -> str:
    return entry[:-1] + "-" if entry.endswith("r-x") else entry


def _is_dir(fd: int) -> bool:
    return stat.S_ISDIR(os.fstat(fd).st_mode)


def _b64(blob: bytes | None) -> str | None:
    return None if blob is None else base64.b64encode(blob).decode("ascii")
