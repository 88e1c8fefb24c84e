"""Undo journal of an apply. Every change is recorded *before* it is made;
rollback replays the records in reverse. A journal left behind by a killed
apply is rolled back at the start of the next one, which then converges."""

from __future__ import annotations

import base64
import contextlib
import json
import os
import shutil
from collections.abc import Callable
from typing import Any

from phphost import files, layout, safefs
from phphost.errors import PhphostError
from phphost.host import cgroups, jails, nftables, services
from phphost.runner import run

Entry = dict[str, Any]


class Journal:
    def __init__(self, directory: str = layout.JOURNAL_DIR) -> None:
        self.dir = directory
        self.log = os.path.join(directory, "entries.jsonl")
        self.count = 0

    def exists(self) -> bool:
        return os.path.exists(self.log)

    def begin(self) -> None:
        os.makedirs(os.path.join(self.dir, "files"), mode=0o700, exist_ok=True)
        open(self.log, "a").close()
        self.count = len(self.entries())

    def record(self, entry: Entry) -> None:
        with open(self.log, "a", encoding="utf-8") as fh:
            fh.write(json.dumps(entry) + "\n")
            fh.flush()
            os.fsync(fh.fileno())
        self.count += 1

    def record_path(self, path: str) -> None:
        """Before a file or symlink at path changes: keep what is there now."""
        entry: Entry = {"k": "path", "path": path, "backup": None, "link": None}
        if os.path.islink(path):
            entry["link"] = os.readlink(path)
        elif os.path.exists(path):
            backup = os.path.join(self.dir, "files", str(self.count))
            shutil.copy2(path, backup)
            st = os.stat(path)
            entry.update(backup=backup, mode=st.st_mode & 0o7777, uid=st.st_uid, gid=st.st_gid)
        self.record(entry)

    def record_modules(self, confdir: str = layout.APACHE_DIR) -> None:
        """Before a2enmod/a2dismod: every link in mods-enabled (a2enmod also enables
        what a module depends on, e.g. ssl brings socache_shmcb)."""
        enabled = os.path.join(confdir, "mods-enabled")
        links = {n: os.readlink(os.path.join(enabled, n)) for n in sorted(os.listdir(enabled))
                 if os.path.islink(os.path.join(enabled, n))}
        self.record({"k": "modset", "path": enabled, "links": links})

    def entries(self) -> list[Entry]:
        try:
            with open(self.log, encoding="utf-8") as fh:
                lines = fh.read().splitlines()
        except FileNotFoundError:
            return []
        out = []
        for line in lines:
            try:
                out.append(json.loads(line))
            except ValueError:
                break       # a torn last line: the change it announced never started
        return out

    def rollback(self) -> list[str]:
        """Undo every recorded change, newest first. Returns what was undone."""
        done = []
        for entry in reversed(self.entries()):
            what = f"{entry['k']} {entry.get('path') or entry.get('name')}"
            try:
                _UNDO[entry["k"]](entry)
            except (OSError, PhphostError) as err:   # one refusal must not stop the rest
                what += f" (not undone: {err})"
            done.append(what)
        self.close()
        return done

    def close(self) -> None:
        shutil.rmtree(self.dir, ignore_errors=True)


def _undo_path(e: Entry) -> None:
    path = e["path"]
    _remove_temp_files(path)
    if os.path.islink(path) or os.path.exists(path):
        if os.path.isdir(path) and not os.path.islink(path):
            return
        files.remove(path)
    if e.get("link"):
        files.atomic_symlink(path, e["link"])
    elif e.get("backup"):
        with open(e["backup"], "rb") as fh:     # binary-safe: the launcher is a program
            files.atomic_write(path, fh.read(), e["mode"], e["uid"], e["gid"])


def _remove_temp_files(path: str) -> None:
    """Temp files of an atomic write that was killed half-way."""
    directory = os.path.dirname(path)
    for name in os.listdir(directory) if os.path.isdir(directory) else []:
        if name.startswith(".phphost-") or name.endswith(".phphost-tmp"):
            files.remove(os.path.join(directory, name))


def _undo_module(e: Entry) -> None:
    tool = "a2enmod" if e["was_enabled"] else "a2dismod"
    run([tool, "-q", "-f", e["name"]] if tool == "a2dismod" else [tool, "-q", e["name"]],
        check=False)


def _undo_modset(e: Entry) -> None:
    """Make mods-enabled exactly the recorded set of links again."""
    enabled, want = e["path"], e["links"]
    for name in os.listdir(enabled):
        path = os.path.join(enabled, name)
        if os.path.islink(path) and want.get(name) != os.readlink(path):
            os.unlink(path)
    for name, target in want.items():
        if not os.path.lexists(os.path.join(enabled, name)):
            os.symlink(target, os.path.join(enabled, name))


def _undo_jail(e: Entry) -> None:
    """A jail this apply built from nothing (no master ever ran in it)."""
    jails.remove(e["name"])


def _undo_nft(e: Entry) -> None:
    """The network policy as it was: the old file loaded again, or no table."""
    if e.get("old"):
        nftables.load_text(e["old"])
    else:
        nftables.delete()


def _undo_group(e: Entry) -> None:
    run(["groupdel", e["name"]], check=False)


def _undo_user(e: Entry) -> None:
    run(["userdel", e["name"]], check=False)


def _undo_usergroup(e: Entry) -> None:
    run(["usermod", "-g", e["old"], e["name"]], check=False)


def _undo_dir(e: Entry) -> None:
    safefs.remove_empty_dir(e["path"])   # only ever an empty dir we created; never recursive


def _undo_dirmode(e: Entry) -> None:
    with contextlib.suppress(OSError, PhphostError):
        safefs.set_owner_mode(e["path"], e["uid"], e["gid"], e["mode"])


def _undo_acl(e: Entry) -> None:
    """Put back the ACL xattrs recorded before a grant, walking from the granted
    directory by descriptor: a path swapped for a symlink since is skipped."""
    for rel, access, default in e["items"]:
        with contextlib.suppress(OSError, PhphostError):
            fd = safefs.open_below(e["path"], rel)
            if fd is None:
                continue
            try:
                safefs.restore_acl(fd, _unb64(access), _unb64(default))
            finally:
                os.close(fd)


def _undo_cgroupfile(e: Entry) -> None:
    cgroups.undo_file(e["path"], e["old"])


def _undo_cgroupdir(e: Entry) -> None:
    cgroups.undo_dir(e["path"])


def _undo_nproc(e: Entry) -> None:
    services.set_nproc(e["name"], int(e["old"]))    # best effort (raising may need a restart)


def _unb64(text: str | None) -> bytes | None:
    return None if text is None else base64.b64decode(text)


_UNDO: dict[str, Callable[[Entry], None]] = {
    "path": _undo_path,
    "module": _undo_module,
    "modset": _undo_modset,
    "jail": _undo_jail,
    "nft": _undo_nft,
    "group": _undo_group,
    "user": _undo_user,
    "usergroup": _undo_usergroup,
    "dir": _undo_dir,
    "dirmode": _undo_dirmode,
    "acl": _undo_acl,
    "cgroupfile": _undo_cgroupfile,
    "cgroupdir": _undo_cgroupdir,
    "nproc": _undo_nproc,
}
