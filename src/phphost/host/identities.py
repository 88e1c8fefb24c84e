"""Users, groups, directories and ACLs. Each function records its undo in the
journal before it changes anything."""

from __future__ import annotations

import grp
import os
import pwd

from phphost.host.journal import Journal
from phphost.host.runner import run


def create_group(journal: Journal, name: str) -> None:
    journal.record({"k": "group", "name": name})
    run(["groupadd", name])


def create_user(journal: Journal, name: str, group: str, home: str, system: bool) -> None:
    journal.record({"k": "user", "name": name})
    argv = ["useradd", "--no-create-home", "--home-dir", home,
            "--shell", "/usr/sbin/nologin", "--gid", group]
    run([*argv, "--system", name] if system else [*argv, name])


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


def ensure_dir(journal: Journal, path: str, owner: str, group: str, mode: int,
               exists: bool) -> None:
    uid, gid = pwd.getpwnam(owner).pw_uid, grp.getgrnam(group).gr_gid
    if exists:
        st = os.stat(path)
        journal.record({"k": "dirmode", "path": path, "uid": st.st_uid, "gid": st.st_gid,
                        "mode": st.st_mode & 0o7777})
    else:
        journal.record({"k": "dir", "path": path})
        os.mkdir(path, 0o700)
    os.chown(path, uid, gid)
    os.chmod(path, mode)


def set_acl(path: str, entries: tuple[str, ...], recursive: bool) -> None:
    """Grant ACL entries. Recursive grants use X (execute on directories only)."""
    if recursive:
        spec = ",".join(e.replace("r-x", "rX") for e in entries)
        run(["setfacl", "-R", "-m", spec, path])
    else:
        run(["setfacl", "-m", ",".join(entries), path])
